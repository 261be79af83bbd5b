"""Every sample event in ``events/`` answers what its name says, on a database freshly migrated and
seeded by ``dramac seed`` (a copy of one seeded template, so no sample depends on another having run).

Each sample goes through what ``dramac invoke`` does with it (``prepare_sample``: its ``dramacInvoke``
directives, e.g. signing a Paddle webhook now) into the function's real handler, with the local
stack's settings and emulated AWS set up once for all (``dramac invoke`` itself, seeding and exit
codes included, is tested in ``test_seed_and_invoke.py``). The naming rules are ``events/README.md``'s.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

REPO = Path(__file__).resolve().parents[2]
EVENTS = REPO / "events"
SAMPLES = sorted(EVENTS.glob("*/*.json"))
STATUS_SUFFIX = re.compile(r"_(\d{3})$")
RETRIED_SUFFIX = "-retried"


def expected_status(sample: Path) -> int | None:
    """The status a sample's name promises (``..._404.json``), or None: a success."""
    match = STATUS_SUFFIX.search(sample.stem)
    return int(match.group(1)) if match else None


def sample_id(sample: Path) -> str:
    return f"{sample.parent.name}/{sample.name}"


class SeededCopies:
    """Copies of one database migrated and seeded as ``dramac seed`` leaves it. A sample that changes
    something gets a copy of its own; the samples that change nothing share one (an error answer must
    change nothing, a GET reads, the domain router has no database), which keeps this test quick."""

    def __init__(self, server_url: str, template: str):
        self.server_url = server_url
        self.template = template
        self.shared: str | None = None
        self.made: list[str] = []

    @staticmethod
    def changes_nothing(sample: Path, event: dict[str, Any]) -> bool:
        if sample.parent.name == "domain_router":
            return True
        status = expected_status(sample)
        method = event.get("requestContext", {}).get("http", {}).get("method")
        return "routeKey" in event and ((status is not None and status >= 400) or method == "GET")

    def copy(self) -> str:
        name = f"dramac_sample_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                          sql.Identifier(self.template)))
        self.made.append(name)
        return name

    def for_sample(self, sample: Path, event: dict[str, Any]) -> str:
        from dramac_dev import localdb

        if self.changes_nothing(sample, event):
            self.shared = self.shared or self.copy()
            name = self.shared
        else:
            name = self.copy()
        return localdb.with_dbname(self.server_url, name)

    def release(self, url: str) -> None:
        from psycopg.conninfo import conninfo_to_dict

        from dramac_dev import localdb

        name = conninfo_to_dict(url)["dbname"]
        if name != self.shared:
            localdb.drop_database(self.server_url, name)
            self.made.remove(name)


@pytest.fixture(scope="module")
def seeded_copies(server_url: str) -> Iterator[SeededCopies]:
    from dramac_common.core.migrate import apply_migrations

    from dramac_dev import localdb
    from dramac_dev.seed import seed_demo

    name, url = localdb.create_database(server_url, prefix="dramac_samples")
    copies = SeededCopies(server_url, name)
    try:
        apply_migrations(url)
        seed_demo(url)
        yield copies
    finally:
        for made in [*copies.made, name]:
            localdb.drop_database(server_url, made)


@pytest.fixture(scope="module")
def invoke_environment() -> Iterator[None]:
    """What ``dramac invoke`` sets up around a handler (the local stack's defaults, emulated AWS), once
    for the module; the process environment and the layer's pool are put back afterwards."""
    from dramac_common.core import db
    from dramac_common.core.settings import reset_settings

    from dramac_dev.cli import local_aws
    from dramac_dev.stack import local_runtime_defaults

    saved = dict(os.environ)
    local_runtime_defaults()
    try:
        with local_aws():
            yield
    finally:
        db.close_pool()
        os.environ.clear()
        os.environ.update(saved)
        reset_settings()


def invoke(function: str, event: dict[str, Any], database_url: str) -> Any:
    """The sample through ``dramac invoke``'s preparation into the function's handler, on that database."""
    from dramac_common.core import db
    from dramac_common.core.settings import reset_settings

    from dramac_dev.cli import prepare_sample
    from dramac_dev.events import LocalContext
    from dramac_dev.functions_loader import get_handler

    db.close_pool()
    os.environ["DATABASE_URL"] = database_url
    reset_settings()
    try:
        # a JSON round trip: the handler's result as `dramac invoke` prints it
        return json.loads(json.dumps(get_handler(function)(prepare_sample(function, event), LocalContext(function)),
                                     default=str))
    finally:
        db.close_pool()


def check_http(sample: Path, result: dict[str, Any]) -> None:
    status = int(result["statusCode"])
    body = json.loads(result.get("body") or "null")
    wanted = expected_status(sample)
    if sample.name.startswith("rest_"):  # the PostgREST surface: bare JSON rows, or no body (HEAD, minimal)
        assert wanted is None and 200 <= status < 300, f"{sample_id(sample)} answered {status}: {body}"
        assert body is None or (isinstance(body, list | dict) and "success" not in body), body
        return
    if wanted is None:
        assert 200 <= status < 300, f"{sample_id(sample)} answered {status}, not 2xx: {body}"
        assert body is None or body["success"] is True
    else:
        assert status == wanted, f"{sample_id(sample)} answered {status}, not {wanted}: {body}"
        assert body["success"] is False and body["code"], body


def check_sqs(sample: Path, event: dict[str, Any], result: dict[str, Any]) -> None:
    retried = [r["messageId"] for r in event["Records"] if r["messageId"].endswith(RETRIED_SUFFIX)]
    failures = [f["itemIdentifier"] for f in result["batchItemFailures"]]
    assert failures == retried, f"{sample_id(sample)}: batchItemFailures {failures}, expected {retried}"


def check_viewer_request(sample: Path, result: dict[str, Any]) -> None:
    wanted = expected_status(sample)
    if wanted is None:
        # the request goes on to the origin: the function returns it (maybe rewritten), no response
        assert "status" not in result and result["uri"].startswith("/"), result
        return
    assert result.get("status") == str(wanted), f"{sample_id(sample)} answered {result.get('status')}, not {wanted}"
    if 300 <= wanted < 400:
        location = result["headers"]["location"][0]["value"]
        assert location.startswith("/"), location


@pytest.mark.parametrize("sample", SAMPLES, ids=sample_id)
def test_sample_answers_what_its_name_says(sample: Path, seeded_copies: SeededCopies, invoke_environment) -> None:
    function = sample.parent.name
    event = json.loads(sample.read_text(encoding="utf-8"))
    url = seeded_copies.for_sample(sample, event)
    try:
        result = invoke(function, event, url)
    finally:
        seeded_copies.release(url)
    if event.get("version") == "2.0" and "routeKey" in event:
        check_http(sample, result)
    elif event.get("Records") and event["Records"][0].get("eventSource") == "aws:sqs":
        assert expected_status(sample) is None, "queue samples name no status"
        check_sqs(sample, event, result)
    elif event.get("Records") and "cf" in event["Records"][0]:
        check_viewer_request(sample, result)
    elif event.get("source") == "aws.events":  # the relay's schedule: a summary of what it did
        assert all(isinstance(v, int) and v >= 0 for v in result.values()) and result, result
    elif function == "migrate":  # the deploy trigger: the migrations it applied (none: the copy is migrated)
        assert result == {"applied": []}
    else:
        pytest.fail(f"{sample_id(sample)}: no rule for this kind of event; add one here and in events/README.md")


def test_every_route_and_function_has_a_sample() -> None:
    """The README's promise: a sample for every route (in its function's folder) and every function."""
    from dramac_dev.functions_loader import available_functions
    from dramac_dev.routes import ROUTES

    covered = set()
    for sample in SAMPLES:
        event = json.loads(sample.read_text(encoding="utf-8"))
        if "routeKey" in event:
            covered.add((sample.parent.name, event["routeKey"]))
    missing = [f"{r.route_key} ({r.function})" for r in ROUTES if (r.function, r.route_key) not in covered]
    assert missing == [], f"routes without a sample event: {missing}"
    assert sorted({s.parent.name for s in SAMPLES}) == available_functions()


def test_every_http_sample_targets_a_route_of_its_function() -> None:
    from dramac_dev.routes import match

    for sample in SAMPLES:
        event = json.loads(sample.read_text(encoding="utf-8"))
        if "routeKey" not in event:
            continue
        found = match(event["requestContext"]["http"]["method"], event["rawPath"])
        assert found, f"{sample_id(sample)}: no route for {event['rawPath']}"
        route, params = found
        assert (route.function, route.route_key) == (sample.parent.name, event["routeKey"]), sample_id(sample)
        assert (event.get("pathParameters") or {}) == params, sample_id(sample)


def test_samples_are_what_the_generator_writes() -> None:
    """``events/generate.py --check``: no sample edited by hand, none left over from a renamed one."""
    spec = importlib.util.spec_from_file_location("events_generate", EVENTS / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert generate.main(["--check"]) == 0


def test_names_follow_the_convention() -> None:
    for sample in SAMPLES:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", sample.stem), sample_id(sample)
        wanted = expected_status(sample)
        assert wanted is None or 300 <= wanted < 600, f"{sample_id(sample)}: a status suffix names a 3xx-5xx"
