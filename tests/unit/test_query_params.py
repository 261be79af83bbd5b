"""PostgREST-style query parameters → the typed query model (pure parsing, no database)."""

import pytest
from dramac_common.core.errors import ValidationFailed
from dramac_common.module_data import Filter, Order, Query, filters_from_where, parse_query_params
from dramac_common.module_data.query import DEFAULT_LIMIT, order_from


def parse(text):
    from urllib.parse import parse_qsl

    return parse_query_params(parse_qsl(text, keep_blank_values=True))


def test_contract_example_parses_into_typed_filters():
    q = parse("status=eq.active&lead_score=gte.50&email=ilike.*@example.com&id=in.(a,b)&deleted_at=is.null")
    assert q.filters == (
        Filter("status", "eq", "active"), Filter("lead_score", "gte", "50"),
        Filter("email", "ilike", "%@example.com"), Filter("id", "in", ("a", "b")), Filter("deleted_at", "is", None))
    assert (q.limit, q.offset, q.count, q.select, q.order) == (DEFAULT_LIMIT, 0, False, None, ())


def test_select_order_limit_offset_count():
    q = parse("select=email,lead_score&order=created_at.desc,name.asc.nullslast&limit=10&offset=20&count=exact")
    assert q == Query((), ("email", "lead_score"), (Order("created_at", True), Order("name", False, "last")),
                      10, 20, True)


def test_values_keep_dots_and_quoted_in_lists_keep_commas():
    q = parse('email=eq.a.b@c.d&name=in.("Doe, Jane",Smith)&x=not.is.null')
    assert q.filters == (Filter("email", "eq", "a.b@c.d"), Filter("name", "in", ("Doe, Jane", "Smith")),
                         Filter("x", "is", None, negate=True))


def test_empty_in_list_and_is_booleans():
    q = parse("id=in.()&vip=is.true&gone=is.FALSE")
    assert q.filters == (Filter("id", "in", ()), Filter("vip", "is", True), Filter("gone", "is", False))


@pytest.mark.parametrize("text", [
    "a=between.1", "a=gte", "a=in.1,2", "a=is.maybe", 'a=in.("x)', "limit=-1", "limit=1001", "offset=x",
    "order=a.sideways", "order=A-B", "count=estimated", "select=a;b", "Bad-Col=eq.1", "a=not.unknown.1",
])
def test_malformed_parameters_raise_invalid_query_with_details(text):
    with pytest.raises(ValidationFailed) as err:
        parse(text)
    assert err.value.code == "invalid_query" and err.value.details


def test_all_problems_are_reported_together():
    with pytest.raises(ValidationFailed) as err:
        parse("a=nope.1&limit=x&order=b.up")
    assert {d["field"] for d in err.value.details} == {"a", "limit", "order"}


def test_sdk_where_mapping_becomes_filters():
    assert filters_from_where({"status": "active", "deleted_at": None, "id": ["a", "b"],
                               "lead_score": {"gte": 50, "not_eq": 70}}) == (
        Filter("status", "eq", "active"), Filter("deleted_at", "is", None), Filter("id", "in", ("a", "b")),
        Filter("lead_score", "gte", 50), Filter("lead_score", "eq", 70, negate=True))


@pytest.mark.parametrize("where", [{"a": {"between": 1}}, {"a; drop": 1}, {"a": {"in": 5}}, {"a": {"is": "x"}}])
def test_bad_where_mappings_are_refused(where):
    with pytest.raises(ValidationFailed):
        filters_from_where(where)


def test_order_by_accepts_em11_and_short_forms():
    assert order_from({"column": "name", "ascending": False}) == (Order("name", True),)
    assert order_from(["-created_at", "name"]) == (Order("created_at", True), Order("name"))
    assert order_from("lead_score.desc") == (Order("lead_score", True),)
