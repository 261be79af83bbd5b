"""Bad input, generated from each HTTP function's own OpenAPI document (schemathesis): every operation
of every function gets schema-conforming and schema-violating requests, sent to the real Lambda
handler as API Gateway v2 events with a real user's claims, on random ids and on the user's own site.
No request may produce a 5xx, and every response body is the contract's envelope (on the PostgREST
surface, ``…/rest/{table}``, PostgREST's own shapes).

Routes that read the raw ``Request`` (no request model in the document) still get their path and
query parameters fuzzed."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.world import reliability_settings

from dramac_dev.routes import functions as http_functions

JSON_TYPES = (None, "application/json")


def openapi_document(function: str) -> dict[str, Any]:
    """The function's OpenAPI document, as its own handler serves it at /openapi.json."""
    from support.handlers import FunctionClient

    reply = FunctionClient(function).get("/openapi.json")
    assert reply.status == 200, reply.body
    return reply.body


def operations(function: str) -> list[Any]:
    import schemathesis

    schema = schemathesis.openapi.from_dict(openapi_document(function))
    return [result.ok() for result in schema.get_all_operations()]


def is_envelope(body: Any) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
        return False
    if body["success"]:
        return "data" in body
    return isinstance(body.get("error"), str) and isinstance(body.get("code"), str) and bool(body["code"])


def is_postgrest(body: Any, status: int) -> bool:
    """The PostgREST surface (``…/rest/{table}``) answers as PostgREST does: rows (an array, or one object
    for ``single()``), or an error ``{"code", "message", "details", "hint"}`` with a code and a message."""
    if status < 400:
        return isinstance(body, list | dict)
    return (isinstance(body, dict) and set(body) == {"code", "message", "details", "hint"}
            and isinstance(body["code"], str) and bool(body["code"]) and isinstance(body["message"], str))


def check_answer(path: str, status: int, text: str, described: str) -> None:
    """Not a 5xx, and the contract's envelope (PostgREST's shape on the PostgREST surface, where a 201
    or 204 without ``return=representation`` and every HEAD have no body)."""
    assert status < 500, f"{described} -> {status} {text[:300]}"
    rest = "/rest/" in path
    if rest and not text and (status in (201, 204) or described.startswith("HEAD")):
        return
    try:
        body = json.loads(text)
    except ValueError:
        pytest.fail(f"{described} -> {status}, not JSON: {text[:300]}")
    # a path no route matches (a mutated segment holding a "/") is the router's 404, in the envelope
    # (and the Lambda entry point's own refusals before any route runs: a bad Host, a body too large)
    unrouted = is_envelope(body) and body.get("code") in ("route_not_found", "method_not_allowed", "invalid_host",
                                                      "payload_too_large")
    shaped = (is_postgrest(body, status) or unrouted) if rest else is_envelope(body)
    assert shaped, f"{described} -> {status} {text[:300]}"


def event_for(case: Any, claims: dict[str, Any]) -> dict[str, Any]:
    from dramac_dev.events import http_event

    raw_body = None
    headers = {str(k): str(v) for k, v in (case.headers or {}).items()}
    if not _is_not_set(case.body):
        if case.media_type in JSON_TYPES or "json" in (case.media_type or ""):
            raw_body = json.dumps(case.body, default=str)
            headers["content-type"] = "application/json"
        elif isinstance(case.body, bytes | str):
            raw_body = case.body
            headers["content-type"] = case.media_type
    query = [(str(k), str(v)) for k, values in (case.query or {}).items()
             for v in (values if isinstance(values, list) else [values]) if v is not None]
    from urllib.parse import urlencode

    path = unquote(case.formatted_path)  # API Gateway hands the function the decoded path
    return http_event(case.method.upper(), path, raw_body=raw_body, query=urlencode(query), headers=headers,
                      claims=claims)


def _is_not_set(value: Any) -> bool:
    from schemathesis.core import NotSet

    return isinstance(value, NotSet)


def case_strategies(operation: Any, own_ids: dict[str, str]) -> st.SearchStrategy:
    from schemathesis import GenerationMode

    names = {p.name for p in operation.path_parameters}
    own = {k: v for k, v in own_ids.items() if k in names}
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        for fixed in ({}, own) if own else ({},):
            try:
                strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=fixed or None))
            except Exception:  # an operation with nothing to negate has no negative cases
                continue
    return st.one_of(strategies)


@pytest.mark.parametrize("function", http_functions())
def test_no_generated_request_gets_a_5xx_or_leaves_the_envelope(function, world):
    from support.handlers import claims_for

    from dramac_dev.events import LocalContext
    from dramac_dev.functions_loader import get_handler

    handler = get_handler(function)
    agency = world.a
    # the module data API names a module by slug; the purchase route by id (the paid module)
    module = str(world.paid_module) if function == "purchase" else world.crm_slug
    own_ids = {"siteId": str(agency.site_id), "agencyId": str(agency.agency_id), "moduleId": module,
               "subscriptionId": str(agency.ids["subscriptionId"][0]), "table": "contacts",
               "workflowId": str(agency.ids["workflowId"][0])}

    every_operation = operations(function)
    assert every_operation, f"{function} documents no operation"

    @reliability_settings(scale=1 + len(every_operation) / 3)
    @given(case=st.one_of([case_strategies(op, own_ids) for op in every_operation]), user=st.sampled_from(agency.users))
    def check(case: Any, user: Any) -> None:
        result = handler(event_for(case, claims_for(user)), LocalContext(function))
        status = int(result["statusCode"])
        text = result.get("body") or ""
        described = f"{case.method.upper()} {case.formatted_path} query={case.query} body={case.body!r}"
        check_answer(case.formatted_path, status, text, described)

    check()


@pytest.mark.parametrize("function", http_functions())
def test_hostile_values_get_a_4xx_never_a_5xx(function, world):
    """The same generated requests with one hostile value planted (hostile_input): a string PostgreSQL
    cannot store, a value too large for an index, JSON nested thousands deep, a number no column
    holds, bytes that are not UTF-8, or an odd Host / forwarding / signature header."""
    from support.handlers import claims_for
    from support.hostile_input import apply, mutations

    from dramac_dev.events import LocalContext, http_event
    from dramac_dev.functions_loader import get_handler

    handler = get_handler(function)
    agency = world.a
    # the module data API names a module by slug; the purchase route by id (the paid module)
    module = str(world.paid_module) if function == "purchase" else world.crm_slug
    own_ids = {"siteId": str(agency.site_id), "agencyId": str(agency.agency_id), "moduleId": module,
               "subscriptionId": str(agency.ids["subscriptionId"][0]), "table": "contacts",
               "workflowId": str(agency.ids["workflowId"][0])}
    every_operation = operations(function)

    @reliability_settings(scale=1 + len(every_operation) / 3)
    @given(case=st.one_of([case_strategies(op, own_ids) for op in every_operation]),
           user=st.sampled_from(agency.users), mutation=mutations())
    def check(case: Any, user: Any, mutation: Any) -> None:
        from urllib.parse import urlencode

        body = None if _is_not_set(case.body) else case.body
        query = urlencode([(str(k), str(v)) for k, values in (case.query or {}).items()
                           for v in (values if isinstance(values, list) else [values]) if v is not None])
        headers = {str(k): str(v) for k, v in (case.headers or {}).items()}
        path_values = [unquote(str(v)) for v in (case.path_parameters or {}).values()]
        raw, query, path, headers = apply(mutation, body=body, query=query, path=unquote(case.formatted_path),
                                          path_values=path_values, headers=headers)
        event = http_event(case.method.upper(), path, raw_body=raw, query=query, headers=headers,
                           claims=claims_for(user))
        result = handler(event, LocalContext(function))
        status = int(result["statusCode"])
        text = result.get("body") or ""
        described = f"{case.method.upper()} {path[:200]} {mutation!r}"
        check_answer(path, status, text, described)
        assert "psycopg" not in text and "violates" not in text, f"{described} leaks: {text[:300]}"

    check()
