"""The synthesized templates judged by the tools operators already trust: cfn-lint (0 errors, 0
warnings) and checkov (0 failed checks). What either accepts is accepted at the resource, in the
template's ``Metadata``, with a reason (infra/nag.py); a skip without a reason fails here too.

Both run on the default synthesis (backend and edge) and on the edge stack with a custom domain.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support.tools import tool


def template_files(*synths: Any) -> list[Path]:
    files = [path for s in synths for path in sorted(s.outdir.glob("*.template.json"))]
    assert files, "no template was synthesized"
    return files


@pytest.fixture(scope="module")
def templates(synth, domain_synth) -> list[Path]:
    return template_files(synth, domain_synth)


def test_cfn_lint_reports_nothing(templates):
    result = subprocess.run([tool("cfn-lint"), "--format", "parseable", "--", *map(str, templates)],
                            capture_output=True, text=True, timeout=600)
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    assert result.returncode == 0 and not findings, (
        "cfn-lint findings (fix them in infra/, or, only for what CDK itself generates, ignore the rule at "
        "the resource with infra.nag.ignore_cfn_lint and a reason):\n" + "\n".join(findings) + result.stderr)


def test_checkov_fails_nothing(templates):
    command = [tool("checkov", venv="checkov"), "--framework", "cloudformation", "--quiet", "--compact",
               "--output", "json", "--skip-download"]
    for path in templates:
        command += ["--file", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    reports = json.loads(result.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    failed = [f"{c['check_id']} {c['check_name']}: {c['resource']} ({Path(c['file_path']).name})"
              for report in reports for c in report["results"]["failed_checks"]]
    passed = sum(report["summary"]["passed"] for report in reports)
    assert passed > 100, f"checkov passed only {passed} checks: did it read the templates? {result.stderr[-2000:]}"
    assert not failed, ("checkov failed checks (fix them in infra/, or skip at the resource with "
                        "infra.nag.skip_checkov and a reason a reviewer would accept):\n" + "\n".join(failed))


def test_every_skip_and_ignore_carries_its_reason(templates):
    count = 0
    for path in templates:
        for logical_id, resource in json.loads(path.read_text())["Resources"].items():
            metadata = resource.get("Metadata", {})
            for skip in metadata.get("checkov", {}).get("skip", []):
                count += 1
                assert len(str(skip.get("comment", "")).split()) >= 5, f"{logical_id}: checkov {skip} has no reason"
            lint = metadata.get("cfn-lint", {})
            for rule in lint.get("config", {}).get("ignore_checks", []):
                count += 1
                assert len(str(lint.get("reasons", {}).get(rule, "")).split()) >= 5, (
                    f"{logical_id}: cfn-lint ignores {rule} without a reason")
    assert count, "no skip found at all: this check would pass vacuously"
