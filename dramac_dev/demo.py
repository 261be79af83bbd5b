"""``dramac demo``: the whole story on a running local stack, over HTTP, with progress output.

An operator creates an agency, a client, a site and their owner (the seed helpers, as the table
owner); from then on everything goes through the API as that owner: subscribe the agency to the
``crm`` module, install it on the site and poll until its database is provisioned, create a
workflow on ``crm.contact.created`` (a condition ``lead_score >= 50``, an ``http_request`` to a
receiver this process runs, an ``update_record`` on the contact), create a contact over the module
data API, then poll the execution and print it with its step logs. Then a module's life: a super
admin publishes a new module, the owner installs it, 1.1.0 is published, the owner upgrades the site
and exports its data (``module_lifecycle``). ``run_story`` is what the e2e test runs too; ``main``
adds starting a stack when none answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

MODULE_SLUG = "crm"
HOT_LEAD_SCORE = 50
TERMINAL = ("completed", "failed", "cancelled")


class DemoFailed(Exception):
    """A step of the story did not do what it should; the message says which and why."""


@dataclass
class Tenant:
    owner_id: uuid.UUID
    agency_id: uuid.UUID
    client_id: uuid.UUID
    site_id: uuid.UUID


@dataclass
class StoryResult:
    tenant: Tenant
    module_id: str
    workflow_id: str
    contact: dict[str, Any]
    execution: dict[str, Any]
    contact_after: dict[str, Any]
    received: list[Any] = field(default_factory=list)
    lifecycle: dict[str, Any] = field(default_factory=dict)  # publish → install → upgrade → export

    @property
    def ok(self) -> bool:
        steps = [(s["type"], s["status"]) for s in self.execution.get("steps", [])]
        return (self.execution.get("status") == "completed"
                and steps == [("condition", "completed"), ("http_request", "completed"),
                              ("update_record", "completed")]
                and len(self.received) == 1 and self.contact_after.get("status") == "qualified"
                and self.lifecycle.get("installed_version") == "1.0.0"
                and self.lifecycle.get("upgraded_version") == "1.1.0"
                and self.lifecycle.get("exported_rows") == 1)


def create_tenant(conninfo: str) -> Tenant:
    """As an operator (the table owner, through the seed helpers): an owner, agency, client and site."""
    import psycopg

    from . import seed

    suffix = uuid.uuid4().hex[:6]
    with psycopg.connect(conninfo) as conn:
        owner = seed.create_user(conn, email=f"demo-owner-{suffix}@demo.test", full_name="Demo story owner")
        agency = seed.create_agency(conn, owner=owner, name=f"Demo story agency {suffix}")
        client = seed.create_client(conn, agency, name=f"Demo story client {suffix}")
        site = seed.create_site(conn, agency, client_id=client, name=f"Demo story site {suffix}",
                                subdomain=f"story-{suffix}")
        conn.commit()
    return Tenant(owner, agency, client, site)


def _data(reply: httpx.Response, expected: tuple[int, ...], what: str) -> Any:
    if reply.status_code not in expected:
        raise DemoFailed(f"{what}: HTTP {reply.status_code} {reply.text[:500]}")
    return reply.json().get("data")


def _poll(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: still not done after {timeout_s:.0f} s (last: {value})")
        time.sleep(0.3)
        value = fetch()
    return value


def workflow_definition(receiver_url: str) -> dict[str, Any]:
    return {
        "name": "Qualify hot leads",
        "triggerEventType": f"{MODULE_SLUG}.contact.created",
        "steps": [
            {"type": "condition", "config": {"field": "event.payload.lead_score", "operator": "gte",
                                             "value": HOT_LEAD_SCORE}},
            {"type": "http_request", "config": {
                "method": "POST", "url": f"{receiver_url}/hot-leads",
                "body": {"email": "{{event.payload.email}}", "score": "{{event.payload.lead_score}}"}}},
            {"type": "update_record", "config": {"module": MODULE_SLUG, "table": "contacts",
                                                 "id": "{{event.payload.id}}", "values": {"status": "qualified"}}},
        ],
    }


def run_story(base_url: str, conninfo: str, receiver_url: str, received: Callable[[], list[Any]], *,
              say: Callable[[str], None] = print, timeout_s: float = 60.0) -> StoryResult:
    """The demo's story against the stack at ``base_url`` (whose database is ``conninfo``)."""
    from .tokens import issue_token

    say("1. operator: creating an agency, a client, a site and their owner (seed helpers)")
    tenant = create_tenant(conninfo)
    say(f"   agency {tenant.agency_id}, site {tenant.site_id}, owner {tenant.owner_id}")
    headers = {"authorization": f"Bearer {issue_token(tenant.owner_id)}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as http:
        modules = _data(http.get("/api/modules"), (200,), "list the catalogue")
        module = next((m for m in modules if m["slug"] == MODULE_SLUG), None)
        if module is None:
            raise DemoFailed(f"the catalogue has no {MODULE_SLUG!r} module (is the stack seeded?)")
        module_id = module["id"]

        say(f"2. owner: subscribing the agency to {module['name']} ({MODULE_SLUG})")
        reply = http.post("/api/modules/subscribe", json={"agencyId": str(tenant.agency_id), "moduleId": module_id})
        if reply.status_code == 404:
            raise DemoFailed("the stack does not see the agency just created: the database given is not the "
                             "stack's (pass the DATABASE_URL it was started with)")
        _data(reply, (200, 201), "subscribe")

        site = f"/api/sites/{tenant.site_id}"
        say(f"3. owner: installing {MODULE_SLUG} on the site")
        installed = _data(http.post(f"{site}/modules/{module_id}", json={}), (201, 202), "install")
        if installed["status"] == "provisioning":
            say("   installation provisioning; waiting for the provisioner to create the module's schema")
        installation = _poll(lambda: _data(http.get(f"{site}/modules/{module_id}"), (200,), "read installation"),
                             lambda i: i["status"] != "provisioning", timeout_s, "provisioning")
        if installation["status"] != "active":
            raise DemoFailed(f"installation {installation['status']}: {installation.get('error')}")
        say("   installation active (the module's schema exists)")

        say(f"4. owner: creating a workflow on {MODULE_SLUG}.contact.created "
            f"(lead_score >= {HOT_LEAD_SCORE} → POST {receiver_url}/hot-leads → mark the contact qualified)")
        workflow = _data(http.post(f"{site}/automation/workflows", json=workflow_definition(receiver_url)), (201,),
                         "create workflow")
        say(f"   workflow {workflow['id']}")

        say("5. owner: creating a contact with lead_score 80 over the module data API")
        contacts = f"{site}/modules/{MODULE_SLUG}/data/contacts"
        contact = _data(http.post(contacts, json={"email": f"ada-{uuid.uuid4().hex[:6]}@example.test",
                                                  "first_name": "Ada", "lead_score": 80}), (201,), "create contact")
        say(f"   contact {contact['id']} ({contact['email']}, status {contact['status']})")

        say("6. waiting for the workflow's execution")
        executions = f"{site}/automation/executions"
        listed = _poll(lambda: _data(http.get(executions, params={"workflowId": workflow["id"]}), (200,),
                                     "list executions"),
                       lambda rows: bool(rows) and rows[0]["status"] in TERMINAL, timeout_s, "the execution")
        execution = _data(http.get(f"{executions}/{listed[0]['id']}"), (200,), "read execution")
        contact_after = _data(http.get(f"{contacts}/{contact['id']}"), (200,), "read contact")
    result = StoryResult(tenant, module_id, workflow["id"], contact, execution, contact_after, received())
    say(describe_execution(result))
    result.lifecycle = module_lifecycle(base_url, conninfo, tenant, say=say, timeout_s=timeout_s)
    return result


NOTES_V1: dict[str, Any] = {"version": "1.0.0", "database": {"tables": [
    {"name": "notes", "entity": "note", "columns": [{"name": "body", "type": "text", "nullable": False}]}]}}
NOTES_V2: dict[str, Any] = {"version": "1.1.0", "database": {"tables": [
    {"name": "notes", "entity": "note", "columns": [{"name": "body", "type": "text", "nullable": False},
                                                    {"name": "pinned", "type": "boolean", "default": "false"}]}]}}


def module_lifecycle(base_url: str, conninfo: str, tenant: Tenant, *, say: Callable[[str], None],
                     timeout_s: float) -> dict[str, Any]:
    """A module's life: a super admin publishes it, the owner installs it, the admin publishes 1.1.0,
    the owner upgrades the site to it and exports the site's data (downloaded through its URL)."""
    import io
    import json
    import zipfile

    import psycopg

    from . import seed
    from .tokens import issue_token

    with psycopg.connect(conninfo) as conn:
        operator = seed.create_user(conn, email=f"demo-operator-{uuid.uuid4().hex[:6]}@demo.test",
                                    full_name="Demo story operator", super_admin=True)
        conn.commit()
    slug = f"notes-{uuid.uuid4().hex[:6]}"
    site = f"/api/sites/{tenant.site_id}"
    with httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {issue_token(operator)}"},
                      timeout=30) as admin, \
            httpx.Client(base_url=base_url, headers={"authorization": f"Bearer {issue_token(tenant.owner_id)}"},
                         timeout=30) as owner:
        say(f"7. super admin: creating the module {slug}, adding 1.0.0 (dry run), publishing it")
        module = _data(admin.post("/api/admin/modules", json={"slug": slug, "name": "Notes", "moduleType": "app"}),
                       (201,), "create module")
        added = _data(admin.post(f"/api/admin/modules/{module['id']}/versions", json={"manifest": NOTES_V1}),
                      (201,), "add version 1.0.0")
        say(f"   dry run on a fresh site: {len(added['dryRun']['fresh']['statements'])} statements, "
            f"can provision: {added['dryRun']['canProvision']}")
        _data(admin.post(f"/api/admin/modules/{module['id']}/versions/1.0.0/publish"), (200,), "publish 1.0.0")

        say("8. owner: subscribing and installing it; waiting for its schema")
        _data(owner.post("/api/modules/subscribe", json={"agencyId": str(tenant.agency_id), "moduleId": module["id"]}),
              (200, 201), "subscribe")
        _data(owner.post(f"{site}/modules/{module['id']}", json={}), (201, 202), "install")
        installed = _poll(lambda: _data(owner.get(f"{site}/modules/{module['id']}"), (200,), "read installation"),
                          lambda i: i["status"] != "provisioning", timeout_s, "provisioning")
        if installed["status"] != "active":
            raise DemoFailed(f"installation {installed['status']}: {installed.get('error')}")
        _data(owner.post(f"{site}/modules/{slug}/data/notes", json={"body": "Call Ada back"}), (201,), "create note")

        say("9. super admin: publishing 1.1.0 (adds notes.pinned); owner: previewing and upgrading the site")
        _data(admin.post(f"/api/admin/modules/{module['id']}/versions", json={"manifest": NOTES_V2}), (201,),
              "add version 1.1.0")
        _data(admin.post(f"/api/admin/modules/{module['id']}/versions/1.1.0/publish"), (200,), "publish 1.1.0")
        preview = _data(owner.get(f"{site}/modules/{module['id']}/upgrade"), (200,), "preview the upgrade")
        for statement in preview["statements"]:
            say(f"   plan: {statement}")
        _data(owner.post(f"{site}/modules/{module['id']}/upgrade", json={}), (200, 202), "upgrade")
        upgraded = _poll(lambda: _data(owner.get(f"{site}/modules/{module['id']}"), (200,), "read installation"),
                         lambda i: i["installedVersion"] == "1.1.0" or i["error"], timeout_s, "the upgrade")
        say(f"   the site runs {upgraded['installedVersion']}")

        say("10. owner: exporting the site's data of the module and downloading it")
        export = _data(owner.post(f"{site}/modules/{module['id']}/export"), (201,), "export")
        download = httpx.get(export["url"], timeout=30)
        if download.status_code != 200:
            raise DemoFailed(f"download of the export: HTTP {download.status_code}")
        lines = zipfile.ZipFile(io.BytesIO(download.content)).read("notes.ndjson").decode().splitlines()
        say(f"   {export['key']}: {export['tables']}; first note: {json.loads(lines[0])['body'] if lines else None}")
    return {"module_id": module["id"], "installed_version": installed["installedVersion"],
            "upgraded_version": upgraded["installedVersion"], "exported_rows": len(lines),
            "export_tables": export["tables"]}


def describe_execution(result: StoryResult) -> str:
    execution = result.execution
    lines = [f"   execution {execution['id']}: {execution['status']}"
             + (f" ({execution['error']})" if execution.get("error") else "")]
    for step in execution.get("steps", []):
        detail = str(step.get("error") or step.get("output"))
        detail = detail if len(detail) <= 140 else detail[:139] + "…"
        lines.append(f"   step {step['position']} {step['type']:<14} {step['status']:<10} "
                     f"{step.get('durationMs', 0):>5} ms  {detail}")
    lines.append(f"   receiver got {len(result.received)} request(s): {result.received}")
    lines.append(f"   contact status now: {result.contact_after.get('status')}")
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------------

def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _start_stack(base_url: str, say: Callable[[str], None]) -> subprocess.Popen[str]:
    from .spawn import StackDidNotStart, spawn_dev

    parts = urlsplit(base_url)
    say(f"no stack answers at {base_url}; starting `dramac dev --port {parts.port}`")
    try:
        process, _ = spawn_dev(parts.hostname or "127.0.0.1", parts.port or 80)
    except StackDidNotStart as exc:
        raise DemoFailed(f"the local stack did not start: {exc}") from exc
    say(f"stack ready at {base_url}")
    return process


def stack_database(base_url: str, explicit: str | None) -> str:
    """The database of the stack at ``base_url``: what that stack recorded when it started (this
    checkout's ``.dramac/stacks/<port>.json``), else ``--database-url`` or ``DATABASE_URL``. Never the
    embedded server on a guess: that could be another database than the stack's."""
    from . import stackfile

    port = urlsplit(base_url).port or 80
    state = stackfile.read_state(port)
    if state is not None:
        if explicit and explicit != state.database_url:
            raise DemoFailed(f"--database-url is not the database of the stack at {base_url} (it uses the one in "
                             f"{stackfile.state_path(port)}); leave --database-url out")
        return state.database_url
    given = explicit or os.environ.get("DATABASE_URL")
    if not given:
        raise DemoFailed(f"the stack at {base_url} was not started from this checkout, so its database is "
                         "unknown: pass --database-url with the DATABASE_URL it was started with")
    return given


def check_database(conninfo: str) -> None:
    """The database answers and holds the stack's records (migrated and seeded), or one sentence why not."""
    import psycopg

    try:
        with psycopg.connect(conninfo, connect_timeout=5) as conn:
            seeded = conn.execute(
                "SELECT to_regclass('auth.users') IS NOT NULL AND to_regclass('public.modules_v2') IS NOT NULL"
            ).fetchone() == (True,) and conn.execute(
                "SELECT EXISTS (SELECT 1 FROM public.modules_v2 WHERE slug = %s)", (MODULE_SLUG,)).fetchone() == (True,)
    except psycopg.Error as exc:
        reason = (str(exc).strip().splitlines() or ["no reason given"])[0]
        raise DemoFailed(f"cannot use the stack's database: {reason}") from exc
    if not seeded:
        raise DemoFailed("the database given is not the stack's: it is not migrated and seeded "
                         "(pass the DATABASE_URL the stack was started with)")


def main(base_url: str, *, database_url: str | None = None, timeout_s: float = 60.0) -> int:
    import psycopg

    from .receiver import Receiver

    base_url = base_url.rstrip("/")
    process = None
    try:
        if not _answers(base_url):
            process = _start_stack(base_url, print)
        conninfo = stack_database(base_url, database_url)
        check_database(conninfo)
        with Receiver() as receiver:
            result = run_story(base_url, conninfo, receiver.url, lambda: [r.body for r in receiver.requests],
                               timeout_s=timeout_s)
    except DemoFailed as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    except (psycopg.Error, httpx.HTTPError, OSError) as exc:
        # the stack or its database went away mid-story: one line, not a traceback
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"demo failed: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    if not result.ok:
        print("demo failed: the execution did not complete as expected (see above)", file=sys.stderr)
        return 1
    print("demo completed: contact created → workflow ran → receiver called → contact qualified; "
          "module published → installed → upgraded → exported")
    return 0
