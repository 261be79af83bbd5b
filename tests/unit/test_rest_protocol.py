"""The PostgREST surface's protocol parsing (``module_data.rest``): pure functions, no database."""

import pytest
from dramac_common.core.errors import ValidationFailed
from dramac_common.module_data.query import Embed, Field, Filter, Logic
from dramac_common.module_data.rest import (
    RestError,
    content_range,
    parse_logic,
    parse_prefer,
    parse_range,
    parse_request,
    parse_select,
    range_status,
    rest_error_body,
    wants_object,
)


def test_select_columns_aliases_and_embeds():
    assert parse_select("id,mail:email") == (Field("id"), Field("email", "mail"))
    assert parse_select("name,staff:contacts!company_id!inner(email,companies(*))") == (
        Field("name"),
        Embed("contacts", (Field("email"), Embed("companies", (Field("*"),))), "staff", "company_id", True))
    for bad in ("a::text", "data->x", "...companies(name)", "Bad Name", "a(b", "x!hint", ""):
        with pytest.raises(ValueError):
            parse_select(bad)


def test_logic_trees_nest_and_keep_quoted_values():
    tree = parse_logic("or", '(a.eq.1,and(b.gt.2,not.or(c.is.null,d.in.("x,y",z))),e.not.like.*@x.org,f.eq."a,b")')
    assert tree == Logic("or", (
        Filter("a", "eq", "1"),
        Logic("and", (Filter("b", "gt", "2"),
                      Logic("or", (Filter("c", "is", None), Filter("d", "in", ("x,y", "z"))), True))),
        Filter("e", "like", "%@x.org", True),
        Filter("f", "eq", "a,b")))
    assert parse_logic("not.and", "(a.fts(english).cats,b.isdistinct.3)") == Logic(
        "and", (Filter("a", "fts", "cats", option="english"), Filter("b", "isdistinct", "3")), True)
    for bad in ("a.eq.1", "(a.eq.1", "(a.between.1)", "(nodot)"):
        with pytest.raises(ValueError):
            parse_logic("or", bad)


def test_request_parameters_and_their_refusals():
    request = parse_request([("select", "email"), ("lead_score", "gte.5"), ("or", "(a.eq.1,b.eq.2)"),
                             ("order", "email.desc.nullslast"), ("limit", "5000"), ("offset", "3"),
                             ("on_conflict", "email"), ("columns", '"email","lead_score"')])
    assert request.query.limit == 1000 and request.query.offset == 3  # db-max-rows caps a larger limit
    assert request.columns == ("email", "lead_score") and request.on_conflict == ("email",)
    assert len(request.conditions) == 2 and request.query.fields == (Field("email"),)
    assert parse_request([], range_header="10-19").query.offset == 10
    assert parse_request([], range_header="10-19").query.limit == 10
    with pytest.raises(RestError) as refused:
        parse_request([("lead_score", "between.1"), ("companies.name", "eq.x"), ("limit", "-1")])
    assert refused.value.status == 400 and refused.value.code == "PGRST100"
    assert all(f"{name}: " in refused.value.rest_details for name in ("lead_score", "companies.name", "limit"))


def test_prefer_range_and_accept():
    prefer = parse_prefer(["return=representation, count=exact,resolution=merge-duplicates", "tx=rollback"])
    assert (prefer.return_, prefer.count, prefer.resolution, prefer.tx) == (
        "representation", "exact", "merge-duplicates", "rollback")
    assert prefer.applied("count", "tx") == "count=exact, tx=rollback"
    assert parse_prefer(["something=else"]).return_ is None  # lenient by default
    with pytest.raises(RestError):
        parse_prefer(["handling=strict, something=else"])
    assert parse_range("junk") is None and parse_range("5-") == (5, None)
    with pytest.raises(RestError):
        parse_range("9-2")
    assert wants_object("application/vnd.pgrst.object+json") and not wants_object("application/json")
    assert not wants_object(None) and not wants_object("*/*")
    with pytest.raises(RestError) as unavailable:
        wants_object("text/csv")
    assert unavailable.value.status == 406


def test_content_range_and_status():
    assert content_range(0, 0, None) == "*/*" and content_range(0, 0, 0) == "*/0"
    assert content_range(10, 5, 100) == "10-14/100" and content_range(0, 3, None) == "0-2/*"
    assert range_status(0, 3, 3) == 200 and range_status(0, 3, 10) == 206 and range_status(0, 3, None) == 200
    assert range_status(0, 0, 0) == 200
    with pytest.raises(RestError):
        range_status(11, 0, 10)


def test_refusals_become_postgrest_errors():
    status, body, _ = rest_error_body(ValidationFailed("x: bad", code="invalid_value",
                                                       details=[{"field": "x", "message": "bad"}]))
    assert (status, body) == (400, {"code": "22P02", "details": "x: bad", "hint": None, "message": "x: bad"})
    status, body, _ = rest_error_body(ValidationFailed("delete needs a filter", code="filter_required"))
    assert status == 400 and body["code"] == "21000" and body["message"] == "DELETE requires a WHERE clause"
    status, _, headers = rest_error_body(RestError(401, "PGRST301", "bad token"))
    assert status == 401 and "WWW-Authenticate" in headers
