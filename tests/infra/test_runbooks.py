"""Every alarm the CDK app defines links to its runbook, and docs/runbooks.md has that section."""

from __future__ import annotations

import re
from pathlib import Path

from infra.backend_stack import RUNBOOKS

ROOT = Path(__file__).resolve().parents[2]


def _anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings (lower case; spaces to dashes; other punctuation dropped)."""
    text = (ROOT / RUNBOOKS).read_text(encoding="utf-8")
    headings = re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_alarm_names_a_runbook_section_that_exists(synth):
    alarms = synth.resources("AWS::CloudWatch::Alarm")
    assert alarms, "the backend stack defines alarms"
    anchors = _anchors()
    missing = []
    for logical_id, alarm in alarms.items():
        match = re.search(rf"Runbook: {re.escape(RUNBOOKS)}#([a-z0-9-]+)$", alarm["Properties"]["AlarmDescription"])
        assert match, f"{logical_id} names no runbook"
        if match.group(1) not in anchors:
            missing.append(match.group(1))
    assert not missing, f"docs/runbooks.md has no section for: {sorted(missing)}"


def test_the_runbooks_cover_each_queue_and_function_alarm(synth):
    described = {a["Properties"]["AlarmDescription"].rsplit("#", 1)[1]
                 for a in synth.resources("AWS::CloudWatch::Alarm").values()}
    for name in synth.backend.queues:
        camel = "".join(p.capitalize() for p in name.split("_"))
        assert {f"{camel}deadletteralarm".lower(), f"{camel}queueagealarm".lower()} <= described
    for name in synth.backend.functions:
        camel = "".join(p.capitalize() for p in name.split("_"))
        assert f"{camel}ErrorsAlarm".lower() in described
