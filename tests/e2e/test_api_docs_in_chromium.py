"""`dramac dev` serves the merged API document at /api/docs with Swagger UI from a Python package:
rendered by headless Chromium (Debian's `chromium`, installed by .ci/run), with no request leaving
the machine (the page and its scripts name no other host)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_docs_page_and_its_assets_are_local(local_stack):
    with local_stack.client() as http:
        page = http.get("/api/docs")
        document = http.get("/api/docs/openapi.json")
        script = http.get("/api/docs/assets/swagger-ui-bundle.js")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page.text), "the page loads something from another host"
    assert document.status_code == 200 and document.json()["openapi"] == "3.1.0"
    assert script.status_code == 200 and len(script.content) > 100_000


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium package is not installed (.ci/run installs it)")
def test_swagger_ui_renders_every_function_in_headless_chromium(local_stack, tmp_path):
    with local_stack.client() as http:
        document = http.get("/api/docs/openapi.json").json()
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={tmp_path}", "--virtual-time-budget=15000", "--dump-dom",
         f"{local_stack.url}/api/docs"],
        capture_output=True, text=True, timeout=120)
    dom = result.stdout
    assert "swagger-ui" in dom, f"Swagger UI did not start: {result.stderr[-2000:]}"
    assert "opblock" in dom, f"no operation rendered (was the document refused?): {dom[-2000:]}"
    for tag in (t["name"] for t in document["tags"]):
        assert f'data-tag="{tag}"' in dom or f'id="operations-tag-{tag}"' in dom, f"tag {tag} not rendered"
    assert "/api/health" in dom
    assert "Unable to render this definition" not in dom
