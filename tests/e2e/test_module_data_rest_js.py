"""The PostgREST surface with the real JavaScript clients: ``tests/e2e/postgrest_js.mjs`` (``@supabase/postgrest-js``
and ``@supabase/supabase-js`` from npm, installed by ``make test`` with ``npm ci``) run by Node against
``dramac dev``."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from support.modules import CRM_MANIFEST, make_crm

from dramac_dev.tokens import issue_token

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "e2e" / "postgrest_js.mjs"


def test_postgrest_js_and_supabase_js_work_unchanged(local_stack, owner_conn, make_module, tenant, other_tenant):
    node = shutil.which("node")
    assert node, "Node.js is required (it is for the CDK too)"
    assert (ROOT / "node_modules" / "@supabase" / "postgrest-js").is_dir(), \
        "run `npm ci` (make test does) to install @supabase/postgrest-js and @supabase/supabase-js"
    manifest = copy.deepcopy(CRM_MANIFEST)
    contacts = next(t for t in manifest["database"]["tables"] if t["name"] == "contacts")
    next(c for c in contacts["columns"] if c["name"] == "email")["unique"] = True
    _module_id, slug = make_crm(owner_conn, make_module, tenant, other_tenant, manifest=manifest)
    with local_stack.client(tenant.owner) as http:
        reply = http.post(f"/api/sites/{tenant.site_id}/api-keys", json={"name": "supabase-js"})
        assert reply.status_code == 201, reply.text
        key = reply.json()["data"]["key"]
    module_url = f"{local_stack.url}/api/sites/{tenant.site_id}/modules/{slug}"
    env = {**os.environ, "REST_URL": f"{module_url}/rest", "MODULE_URL": module_url,
           "OWNER_TOKEN": issue_token(tenant.owner), "MEMBER_TOKEN": issue_token(tenant.member), "SITE_KEY": key,
           "OTHER_SITE_URL": f"{local_stack.url}/api/sites/{other_tenant.site_id}/modules/{slug}/rest"}
    run = subprocess.run([node, str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "12 of 12 checks passed" in run.stdout, run.stdout
