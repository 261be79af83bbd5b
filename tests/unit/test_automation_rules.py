"""Pure rules of the automation engine: filters, templates, the registry, SSRF checks, step configs."""

from __future__ import annotations

import ipaddress

import pytest
from dramac_common.automation import filters, outbound, registry, templates
from dramac_common.automation.steps import validate_step

PAYLOAD = {"status": "active", "lead_score": 72, "tags": ["vip", "web"], "company": {"name": "Acme"},
           "ratio": 0.5, "flag": True, "nothing": None}


@pytest.mark.parametrize("filter_, expected", [
    ({}, True),
    ({"status": "active"}, True),
    ({"status": "archived"}, False),
    ({"lead_score": {"gte": 50}}, True),
    ({"lead_score": {"gt": 72}}, False),
    ({"lead_score": {"gte": 50, "lt": 72}}, False),
    ({"lead_score": 72.0}, True),
    ({"lead_score": "72"}, False),
    ({"status": {"in": ["active", "lead"]}}, True),
    ({"status": {"nin": ["active"]}}, False),
    ({"tags": {"contains": "vip"}}, True),
    ({"company.name": "Acme"}, True),
    ({"company.size": {"exists": False}}, True),
    ({"nothing": {"exists": True}}, False),
    ({"flag": 1}, False),
    ({"lead_score": {"gt": "a"}}, False),
    ({"missing": {"neq": "x"}}, True),
    ({"status": "active", "lead_score": {"lt": 10}}, False),
])
def test_filters_match_payload_fields(filter_, expected):
    assert filters.matches(filters.validate_filter(filter_), PAYLOAD) is expected


@pytest.mark.parametrize("bad", [[], {"x": {"gte": 1, "nope": 2}}, {"x": {"in": 3}}, {"x": {"exists": "yes"}},
                                 {"": 1}, {"x": {"gt": [1]}}])
def test_malformed_filters_are_refused(bad):
    with pytest.raises(filters.FilterError):
        filters.validate_filter(bad)


CONTEXT = {"event": {"payload": {"score": 72, "name": "Ada", "items": [{"sku": "A1"}], "meta": {"a": 1}}},
           "steps": {"1": {"output": {"status": 201}}}, "variables": {"count": 3}}


@pytest.mark.parametrize("value, expected", [
    ("{{event.payload.score}}", 72),
    ("{{ event.payload.score }}", 72),
    ("Score: {{event.payload.score}}", "Score: 72"),
    ("{{event.payload.meta}}", {"a": 1}),
    ("m={{event.payload.meta}}", 'm={"a":1}'),
    ("{{event.payload.items.0.sku}}", "A1"),
    ("{{steps.1.output.status}}", 201),
    ("{{variables.count}}", 3),
    ("[{{event.payload.missing}}]", "[]"),
    ("{{event.payload.missing}}", None),
    ({"nested": ["{{variables.count}}", "x"]}, {"nested": [3, "x"]}),
    (5, 5),
])
def test_templates_render_and_keep_json_types(value, expected):
    assert templates.render(value, CONTEXT) == expected


@pytest.mark.parametrize("text, position, problem", [
    ("{{env.SECRET}}", 2, "unknown template root"),
    ("{{event.headers.x}}", 2, "unknown event field"),
    ("{{steps.x.output}}", 2, "steps.<position>.output"),
    ("{{steps.3.output.a}}", 3, "does not run before step 3"),
    ("{{variables}}", 2, "name the variable"),
    ("{{event..x}}", 2, "malformed"),
])
def test_template_validation_names_the_problem(text, position, problem):
    [found] = templates.validate_templates({"url": text}, position=position)
    assert found["field"] == "url" and problem in found["message"]


def test_manifest_declares_events_and_default_crud_events():
    manifest = {"events": ["contact.created", {"name": "deal.won", "payload": {"amount": "number"}}, "Bad Name"],
                "database": {"tables": [{"name": "contacts", "entity": "contact"}, {"name": "invoices"}]}}
    events = {e.event_type: e for e in registry.manifest_events("my-crm", manifest)}
    assert {"my_crm.contact.created", "my_crm.contact.updated", "my_crm.contact.deleted", "my_crm.deal.won",
            "my_crm.invoice.created", "my_crm.invoice.deleted"} <= set(events)
    assert events["my_crm.deal.won"].payload_schema == {"amount": "number"}
    assert all(registry.EVENT_TYPE_RE.match(t) for t in events)


def test_documented_events_cover_crm_booking_ecommerce_forms_and_marketplace():
    documented = set(registry.DOCUMENTED_EVENTS)
    assert {"crm.deal.updated", "booking.appointment.confirmed",
            "ecommerce.order.paid", "ecommerce.cart.abandoned", "form.submitted",
            *(f"marketplace.module.{a}" for a in ("installed", "disabled", "upgraded", "uninstalled", "purged"))
            } <= documented
    # advertised only when something emits them: a deal's stage events are a manifest's to declare
    assert not {"crm.deal.stage_changed", "crm.deal.won", "crm.deal.lost"} & documented


def test_payload_kinds_are_checked():
    definition = registry.DOCUMENTED_EVENTS["crm.contact.created"]
    assert registry.validate_payload(definition, {"lead_score": 3, "extra": [1]})
    with pytest.raises(Exception, match="lead_score: expected integer"):
        registry.validate_payload(definition, {"lead_score": 3.5})
    with pytest.raises(Exception, match="id: expected uuid"):
        registry.validate_payload(definition, {"id": "not-a-uuid"})


@pytest.mark.parametrize("address, forbidden", [
    ("127.0.0.1", True), ("10.1.2.3", True), ("172.16.0.1", True), ("192.168.1.1", True),
    ("169.254.169.254", True), ("100.64.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("240.0.0.1", True), ("::1", True), ("fe80::1", True), ("fc00::1", True), ("ff02::1", True),
    ("::ffff:127.0.0.1", True), ("::ffff:169.254.169.254", True), ("2002:7f00:1::", True),
    ("93.184.216.34", False), ("2606:4700:4700::1111", False), ("::ffff:93.184.216.34", False),
])
def test_ssrf_guard_classifies_addresses(address, forbidden):
    assert outbound.is_forbidden_address(ipaddress.ip_address(address)) is forbidden


def test_loopback_hostname_is_refused_without_the_setting(env):
    env.unset("AUTOMATION_ALLOW_PRIVATE_HTTP")
    with pytest.raises(outbound.OutboundRefused, match="private, loopback or reserved"):
        outbound.request("GET", "http://localhost:9/")
    with pytest.raises(outbound.OutboundRefused, match="only absolute http and https"):
        outbound.request("GET", "file:///etc/passwd")
    with pytest.raises(outbound.OutboundRefused, match="credentials"):
        outbound.request("GET", "https://user:pw@example.com/")


def test_step_config_problems_point_at_the_field():
    assert validate_step("delay", {"seconds": 30}, position=1, where="steps.0") == []
    problems = validate_step("set_variable", {"name": "{{x}}", "value": 1}, position=1, where="steps.0")
    assert problems and all(p["field"].startswith("steps.0.config.name") for p in problems)
    assert validate_step("condition", {"field": "event.payload.x", "operator": "in",
                                       "value": "{{variables.allowed}}"}, position=2, where="s") == []
