"""cdk-nag AwsSolutions checks: no unacknowledged error, and every acknowledgment says why."""

from __future__ import annotations

import json
from pathlib import Path

from aws_cdk import Validations


def test_cdk_nag_reports_no_unacknowledged_errors(any_synth):
    # synth raises when a validation plugin fails; the report must also list no error.
    report = Path(any_synth.outdir) / "validation-report.json"
    assert report.exists(), "no policy validation ran: AwsSolutionsChecks is not registered"
    plugins = json.loads(report.read_text())["pluginReports"]
    errors = [(p["pluginName"], v["ruleName"]) for p in plugins for v in p["violations"] if v["severity"] == "error"]
    assert errors == []


def test_every_acknowledgment_gives_a_specific_reason(any_synth):
    acknowledgments = []
    for construct in any_synth.app.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                # {rule id: reason}; CDK acknowledges some of its own CloudFormation lint findings too.
                acknowledgments += [(rule, reason) for rule, reason in entry.data.items() if "AwsSolutions-" in rule]
    assert acknowledgments
    for rule, reason in acknowledgments:
        assert len(reason) >= 40, (rule, reason)
