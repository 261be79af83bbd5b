"""Hypothesis strategies for the input classes PostgreSQL or Python refuse, so the fuzzing finds them:
values too large for an index, strings with NUL or lone surrogates, JSON nested thousands deep,
numbers no column or float holds, bytes that are not UTF-8, and odd Host / forwarding / signature
headers. ``mutations()`` draws one such change; ``apply`` plants it in an API Gateway v2 event built
from a schemathesis case (a leaf of the JSON body, a query parameter, a path parameter or a header).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

MARKER = "\u2603hostile\u2603"

# JSON texts: each is valid JSON syntax (or nearly) that a careless server turns into a 5xx
nesting = st.integers(min_value=65, max_value=5000).map(lambda n: "[" * n + "]" * n)
incompressible = st.integers(min_value=2800, max_value=7000).flatmap(
    lambda n: st.binary(min_size=n, max_size=n).map(lambda b: json.dumps(base64.b64encode(b).decode()[:n])))
unstorable_string = st.sampled_from([
    '"\\ud800"', '"x\\udfff"', '"\\udc00\\ud800"', '"a\\u0000b"', '"\\u0000"', '{"\\u0000": 1}', '{"\\ud800": 1}',
    '["\\ud83d"]',
])
absurd_number = st.sampled_from([
    "1e999999", "-1e999999", "1e309", "1e-400", "9" * 400, "1" * 5000, "-" + "9" * 30, "1.5", "1e28",
    "NaN", "Infinity", "-Infinity", "123456789012345678901234567890.123456789",
])
HOSTILE_JSON = st.one_of(nesting, incompressible, unstorable_string, absurd_number)

# raw query or path text: percent-encoded as a client would send it
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["%00", "a%00b", "%ED%A0%80", "%FF%FE", "%C0%AF", "9" * 400, "1e999999", "-1",
                     "2147483648", "9223372036854775808", "0000-01-01", "10000-01-01", "infinity", "NaN",
                     "eq.%00", "eq.%ED%A0%80", "in.(" + ",".join(["1"] * 2000) + ")", "%5B" * 300]),
    st.integers(min_value=300, max_value=7000).map(lambda n: "x" * n),
    st.binary(min_size=2800, max_size=7000).map(lambda b: quote(base64.b64encode(b).decode())),
)
HOSTILE_HEADERS = st.sampled_from([
    {"host": "a:b:c"}, {"host": "example.com:port"}, {"host": "[::1]:3000"}, {"host": "example.com:99999"},
    {"host": ""}, {"host": "exa mple.com"}, {"x-forwarded-port": "https"}, {"x-forwarded-port": "1,2"},
    {"x-forwarded-proto": "gopher"}, {"paddle-signature": "ts=" + "9" * 400 + ";h1=00"},
    {"paddle-signature": "ts=" + "1" * 5000 + ";h1=00"}, {"paddle-signature": "h1=" + "0" * 5000},
    {"idempotency-key": "k" * 5000}, {"content-type": "application/json; charset=utf-16"},
    {"x-api-key": "x" * 5000}, {"authorization": "Bearer " + "x" * 5000}, {"cookie": "a=" + "b" * 5000},
])


@dataclass(frozen=True)
class Mutation:
    where: str  # body | raw_body | query | path | header
    value: Any
    pick: int  # which leaf / parameter, modulo how many there are

    def __repr__(self) -> str:
        shown = self.value if not isinstance(self.value, str) or len(self.value) < 80 else (
            f"{self.value[:40]}…({len(self.value)} chars)")
        return f"Mutation({self.where}, {shown!r}, pick={self.pick})"


def mutations() -> st.SearchStrategy[Mutation]:
    pick = st.integers(min_value=0, max_value=1000)
    return st.one_of(
        st.builds(Mutation, st.just("body"), HOSTILE_JSON, pick),
        st.builds(Mutation, st.just("raw_body"), st.sampled_from([b'{"a": "\xff\xfe"}', b"\xef\xbb\xbf{}",
                                                                  b'{"a": "\xed\xa0\x80"}', b"\x00" * 10]), pick),
        st.builds(Mutation, st.just("query"), HOSTILE_TEXT, pick),
        st.builds(Mutation, st.just("path"), HOSTILE_TEXT, pick),
        st.builds(Mutation, st.just("header"), HOSTILE_HEADERS, pick),
    )


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every place a value may be planted: each leaf, and a new key in each object."""
    found: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        found.append((*path, "hostile"))
        for key, child in value.items():
            found += _leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _leaves(child, (*path, index))
    elif path:
        found.append(path)
    return found


def plant(body: Any, pick: int, json_text: str) -> str:
    """``body`` as JSON text with ``json_text`` (raw JSON) at one of its places (or as the whole body)."""
    if not isinstance(body, dict | list):
        return json_text
    places = _leaves(body)
    if not places:
        return json.dumps({"hostile": MARKER}).replace(json.dumps(MARKER), json_text)
    body = json.loads(json.dumps(body, default=str))
    *parents, last = places[pick % len(places)]
    target = body
    for key in parents:
        target = target[key]
    target[last] = MARKER
    return json.dumps(body, default=str).replace(json.dumps(MARKER), json_text, 1)


def apply(mutation: Mutation, *, body: Any, query: str, path: str, path_values: list[str],
          headers: dict[str, str]) -> tuple[Any, str, str, dict[str, str]]:
    """(raw body, raw query, path, headers) with the mutation planted."""
    raw: Any = None if body is None else json.dumps(body, default=str)
    if mutation.where == "body":
        raw = plant(body, mutation.pick, mutation.value)
        headers = {**headers, "content-type": "application/json"}
    elif mutation.where == "raw_body":
        raw = mutation.value
        headers = {**headers, "content-type": "application/json"}
    elif mutation.where == "query":
        names = [p.split("=")[0] for p in query.split("&") if p] or ["q"]
        name = names[mutation.pick % len(names)]
        query = "&".join([p for p in query.split("&") if p and p.split("=")[0] != name] + [f"{name}={mutation.value}"])
    elif mutation.where == "path" and path_values:
        from urllib.parse import unquote

        old = path_values[mutation.pick % len(path_values)]
        # API Gateway hands the function the decoded path (invalid UTF-8 arrives replaced)
        path = path.replace(old, unquote(mutation.value), 1) if old else path
    elif mutation.where == "header":
        headers = {**headers, **mutation.value}
    return raw, query, path, headers
