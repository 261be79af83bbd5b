"""Benchmark 2: warm latency and database round trips of subscribe, purchase, install and a module
data read, each invoked in process through its real Lambda handler with a real API Gateway v2
event on real PostgreSQL, against two baselines run beside it: the request's own SQL, recorded as
its handler sent it and replayed bare on a second connection right after it (``_OwnSql``), and the
minimum raw SQL doing the same writes (or read) in one statement on an autocommit owner connection.

Round trips are counted from libpq's protocol trace (bench/roundtrips.py) of the pool's single
connection, on separate traced requests (tracing is not free, so timed requests run untraced).
Queue sends after commit go to moto's in-process SQS; their time is reported beside the total.

For a quick look: BENCH_WARM_REQUESTS (timed requests per row, default 300) and BENCH_WARM_ONLY (a
comma-separated list of the handlers to run, e.g. ``install,module_api``; default all).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from .common import Section, median, percentile, ratio

REQUESTS = int(os.environ.get("BENCH_WARM_REQUESTS", "300"))
WARMUP = 30
TRACED = 10
MANY_AGENCIES = 1000  # the separate many-agency case: one user in this many agencies
# a quick look at some requests only: BENCH_WARM_ONLY=install,module_api (the handlers' names; default all)
ONLY = {name.strip() for name in os.environ.get("BENCH_WARM_ONLY", "").split(",") if name.strip()}


def _owner_setup(conn: Any, n: int) -> dict[str, Any]:
    """Fresh targets so every timed write is a real insert: agencies, sites, a provisioned CRM."""
    from dramac_common.core.naming import get_module_schema_name
    from dramac_common.provisioning import provisioner

    from dramac_dev import seed

    user = seed.DEMO_USER_ID
    # Realistic tenancy: every subscribe and purchase is made by the owner of a new agency who belongs to that
    # agency alone (the policies' helpers cost more with every membership; a real user has one or a few).
    owners_sub = [seed.create_user(conn) for _ in range(n)]
    owners_buy = [seed.create_user(conn) for _ in range(n)]
    agencies_sub = [seed.create_agency(conn, owner=owner, name=f"sub {i}") for i, owner in enumerate(owners_sub)]
    agencies_buy = [seed.create_agency(conn, owner=owner, name=f"buy {i}") for i, owner in enumerate(owners_buy)]
    # The send path: agencies (again one owner each) with a workflow on one of their sites listening to
    # marketplace.subscription.created, so subscribe sends that event (the agencies above have no workflow:
    # their events are marked received when written and not sent, the common case: migration 0180)
    owners_heard = [seed.create_user(conn) for _ in range(n)]
    agencies_heard = [seed.create_agency(conn, owner=owner, name=f"heard {i}") for i, owner in enumerate(owners_heard)]
    for agency in agencies_heard:
        _listening_site(conn, agency)
    # The separate many-agency case: a user (an operator of many client agencies) who is a member of
    # MANY_AGENCIES agencies besides the demo one, reading the same rows.
    crowded = seed.create_user(conn)
    seed.add_member(conn, seed.DEMO_AGENCY_ID, crowded, "member")
    conn.execute("""WITH a AS (INSERT INTO public.agencies (name) SELECT 'many ' || g FROM generate_series(1, %s) g
                              RETURNING id)
                    INSERT INTO public.agency_members (agency_id, user_id, role) SELECT id, %s, 'owner' FROM a""",
                 (MANY_AGENCIES, crowded))
    client = seed.create_client(conn, seed.DEMO_AGENCY_ID)
    sites = [seed.create_site(conn, seed.DEMO_AGENCY_ID, client_id=client) for _ in range(n)]
    for module in (seed.DEMO_WIDGET_MODULE_ID, seed.DEMO_FREE_MODULE_ID):
        conn.execute(
            """INSERT INTO public.agency_module_subscriptions (agency_id, module_id, status, billing_cycle,
                 wholesale_price_cents, markup_type, markup_value, retail_price_cents, currency, activated_at)
               VALUES (%s, %s, 'active', 'free', 0, 'none', 0, 0, 'USD', now()) ON CONFLICT DO NOTHING""",
            (seed.DEMO_AGENCY_ID, module))
    provisioner.provision_module(seed.DEMO_FREE_MODULE_ID)
    schema = get_module_schema_name(seed.DEMO_FREE_MODULE_ID)
    conn.execute(
        """INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status, is_enabled, config)
           VALUES (%s, %s, %s, 'active', true, '{}') ON CONFLICT DO NOTHING""",
        (seed.DEMO_SITE_ID, seed.DEMO_FREE_MODULE_ID, seed.DEMO_AGENCY_ID))
    conn.execute(
        f"""INSERT INTO {schema}.contacts (site_id, email, first_name, lead_score)
            SELECT %s, 'c' || g || '@example.test', 'C' || g, g %% 100 FROM generate_series(1, 500) g""",
        (seed.DEMO_SITE_ID,))
    return {"user": user, "agencies_sub": agencies_sub, "agencies_buy": agencies_buy, "sites": sites,
            "schema": schema, "owners_sub": owners_sub, "owners_buy": owners_buy, "crowded": crowded,
            "owners_heard": owners_heard, "agencies_heard": agencies_heard}


def _listening_site(conn: Any, agency: uuid.UUID) -> None:
    """A site of the agency with an active workflow subscribed to marketplace.subscription.created."""
    from dramac_dev import seed

    site = seed.create_site(conn, agency, client_id=seed.create_client(conn, agency))
    conn.execute("""WITH w AS (INSERT INTO public.automation_workflows (site_id, name) VALUES (%s, 'listener')
                               RETURNING id)
                    INSERT INTO public.automation_event_subscriptions (workflow_id, site_id, event_type)
                    SELECT id, %s, 'marketplace.subscription.created' FROM w""", (site, site))


def _requests(setup: dict[str, Any]) -> dict[str, tuple[str, Callable[[int], dict[str, Any]]]]:
    from dramac_dev import seed
    from dramac_dev.events import http_event

    def claims_of(user: Any) -> dict[str, Any]:
        return {"sub": str(user), "aud": "authenticated", "role": "authenticated", "iss": "dramac-local",
                "exp": 4102444800, "iat": 1700000000}

    claims = claims_of(setup["user"])
    crm, widget, paid = seed.DEMO_FREE_MODULE_ID, seed.DEMO_WIDGET_MODULE_ID, seed.DEMO_PAID_MODULE_ID
    return {
        "subscribe (free module, new subscription)": ("subscribe", lambda i: http_event(
            "POST", "/api/modules/subscribe", claims=claims_of(setup["owners_sub"][i]),
            body={"agencyId": str(setup["agencies_sub"][i]), "moduleId": str(crm)})),
        SUBSCRIBE_HEARD: ("subscribe", lambda i: http_event(
            "POST", "/api/modules/subscribe", claims=claims_of(setup["owners_heard"][i]),
            body={"agencyId": str(setup["agencies_heard"][i]), "moduleId": str(crm)})),
        "purchase (paid module, pending subscription + checkout + event)": ("purchase", lambda i: http_event(
            "POST", f"/api/modules/{paid}/purchase", claims=claims_of(setup["owners_buy"][i]),
            body={"agencyId": str(setup["agencies_buy"][i]), "markupType": "percentage", "markupValue": 20})),
        "install (module without a schema, new installation)": ("install", lambda i: http_event(
            "POST", f"/api/sites/{setup['sites'][i]}/modules/{widget}", claims=claims, body={})),
        "module data read (50 contacts of a site)": ("module_api", lambda i: http_event(
            "GET", f"/api/sites/{seed.DEMO_SITE_ID}/modules/{crm}/data/contacts", claims=claims,
            query={"limit": "50", "order": "created_at.desc"})),
        f"many-agency case: the same read by a user in {MANY_AGENCIES + 1:,} agencies": ("module_api", lambda i: http_event(
            "GET", f"/api/sites/{seed.DEMO_SITE_ID}/modules/{crm}/data/contacts", claims=claims_of(setup["crowded"]),
            query={"limit": "50", "order": "created_at.desc"})),
        # the same 50-row filtered read on both surfaces (issue 15: /rest costs no more than the envelope)
        FILTERED_ENVELOPE: ("module_api", lambda i: http_event(
            "GET", f"/api/sites/{seed.DEMO_SITE_ID}/modules/{crm}/data/contacts", claims=claims,
            query={"lead_score": "gte.10", "status": "eq.lead", "limit": "50", "order": "created_at.desc"})),
        FILTERED_REST: ("module_api", lambda i: http_event(
            "GET", f"/api/sites/{seed.DEMO_SITE_ID}/modules/{crm}/rest/contacts", claims=claims,
            query={"lead_score": "gte.10", "status": "eq.lead", "limit": "50", "order": "created_at.desc"})),
    }


SUBSCRIBE_HEARD = "subscribe, a workflow listening (its created event is sent)"
FILTERED_ENVELOPE = "module data filtered read, envelope API (…/data/contacts, 50 rows)"
FILTERED_REST = "module data filtered read, PostgREST surface (…/rest/contacts, 50 rows)"


def _replay_targets(conn: Any, setup: dict[str, Any]) -> dict[str, list[dict[uuid.UUID, uuid.UUID]]]:
    """For each write, per request, its target's ids → those of a twin target for the bare replay of its SQL:
    an agency of its own with an owner who belongs to it alone (subscribe, purchase), a site (install)."""
    from dramac_dev import seed

    n = len(setup["sites"])
    twins: dict[str, list[dict[uuid.UUID, uuid.UUID]]] = {}
    for function, key in (("subscribe", "sub"), ("purchase", "buy"), (SUBSCRIBE_HEARD, "heard")):
        twins[function] = []
        for owner, agency in zip(setup[f"owners_{key}"], setup[f"agencies_{key}"], strict=True):
            twin_owner = seed.create_user(conn)
            twin = seed.create_agency(conn, owner=twin_owner)
            if key == "heard":  # the replay's event is heard too
                _listening_site(conn, twin)
            twins[function].append({owner: twin_owner, agency: twin})
    client = seed.create_client(conn, seed.DEMO_AGENCY_ID)
    twins["install"] = [{site: seed.create_site(conn, seed.DEMO_AGENCY_ID, client_id=client)}
                        for site in setup["sites"][:n]]
    return twins


def _baselines(conn: Any, setup: dict[str, Any]) -> dict[str, Callable[[int], Any]]:
    """The minimum raw SQL for the same effect: one statement, autocommit, as the owner."""
    from dramac_dev import seed

    crm, widget, paid = seed.DEMO_FREE_MODULE_ID, seed.DEMO_WIDGET_MODULE_ID, seed.DEMO_PAID_MODULE_ID
    extra = {key: [seed.create_agency(conn) for _ in range(len(setup["sites"]))] for key in ("sub", "buy", "heard")}
    client = seed.create_client(conn, seed.DEMO_AGENCY_ID)
    sites = [seed.create_site(conn, seed.DEMO_AGENCY_ID, client_id=client) for _ in range(len(setup["sites"]))]
    subscribe = """INSERT INTO public.agency_module_subscriptions (agency_id, module_id, status, billing_cycle,
                     wholesale_price_cents, markup_type, markup_value, retail_price_cents, currency, activated_at)
                   VALUES (%s, %s, 'active', 'free', 0, 'none', 0, 0, 'USD', now()) RETURNING *"""
    purchase = """WITH s AS (
                    INSERT INTO public.agency_module_subscriptions (agency_id, module_id, status, billing_cycle,
                      wholesale_price_cents, markup_type, markup_value, retail_price_cents, currency, payment_provider)
                    VALUES (%(agency)s, %(module)s, 'pending', 'monthly', 1999, 'percentage', 20, 2399, 'USD', 'sandbox')
                    RETURNING *),
                  c AS (
                    INSERT INTO public.payment_checkouts (id, agency_id, subscription_id, module_id, provider,
                      provider_checkout_id, amount_cents, currency, billing_cycle, checkout_url, created_by)
                    SELECT %(checkout)s, s.agency_id, s.id, s.module_id, 'sandbox', 'txn_' || %(checkout)s, 1999, 'USD',
                           'monthly', '/x', %(user)s FROM s RETURNING id)
                  INSERT INTO public.automation_events_log (agency_id, event_type, payload, source_module,
                    source_entity_type, source_entity_id)
                  SELECT s.agency_id, 'marketplace.subscription.created', to_jsonb(s), 'marketplace', 'subscription',
                         s.id::text FROM s, c RETURNING *"""
    install = """INSERT INTO public.site_module_installations (site_id, module_id, agency_id, status, is_enabled,
                   config, installed_by) VALUES (%s, %s, %s, 'active', true, '{}', %s) RETURNING *"""
    read = (f"SELECT * FROM {setup['schema']}.contacts WHERE site_id = %s "
            "ORDER BY created_at DESC, id DESC LIMIT 50")
    filtered = (f"SELECT * FROM {setup['schema']}.contacts WHERE site_id = %s AND lead_score >= 10 "
                "AND status = 'lead' ORDER BY created_at DESC, id DESC LIMIT 50")
    return {
        "subscribe": lambda i: conn.execute(subscribe, (extra["sub"][i], crm)).fetchall(),
        SUBSCRIBE_HEARD: lambda i: conn.execute(subscribe, (extra["heard"][i], crm)).fetchall(),
        "purchase": lambda i: conn.execute(purchase, {"agency": extra["buy"][i], "module": paid,
                                                      "checkout": uuid.uuid4(), "user": setup["user"]}).fetchall(),
        "install": lambda i: conn.execute(install, (sites[i], widget, seed.DEMO_AGENCY_ID, setup["user"])).fetchall(),
        "module_api": lambda i: conn.execute(read, (seed.DEMO_SITE_ID,)).fetchall(),
        FILTERED_ENVELOPE: lambda i: conn.execute(filtered, (seed.DEMO_SITE_ID,)).fetchall(),
        FILTERED_REST: lambda i: conn.execute(filtered, (seed.DEMO_SITE_ID,)).fetchall(),
    }


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_ANY_FORM = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def _uuids_in(value: Any) -> list[uuid.UUID]:
    """The ids in a statement's parameters (``UUID`` values, and ids written out in text or JSON), in order."""
    from psycopg.types.json import Json, Jsonb

    if isinstance(value, uuid.UUID):
        return [value]
    if isinstance(value, str):
        return [uuid.UUID(found) for found in _UUID.findall(value)]
    if isinstance(value, Json | Jsonb):
        return _uuids_in(value.obj)
    if isinstance(value, dict):
        return [u for item in value.values() for u in _uuids_in(item)]
    if isinstance(value, list | tuple):
        return [u for item in value for u in _uuids_in(item)]
    return []


def _swap(value: Any, ids: dict[uuid.UUID, uuid.UUID]) -> Any:
    """``value`` with every id of ``ids`` replaced, whether a ``UUID`` or written in text (with or without
    dashes), in a list, a dict or a JSON parameter."""
    from psycopg.types.json import Json, Jsonb

    if not ids:
        return value
    if isinstance(value, uuid.UUID):
        return ids.get(value, value)
    if isinstance(value, str):
        def one(match: re.Match[str]) -> str:
            new = ids.get(uuid.UUID(match.group()))
            if new is None:
                return match.group()
            return str(new) if "-" in match.group() else new.hex
        return _UUID_ANY_FORM.sub(one, value)
    if isinstance(value, Json | Jsonb):
        return type(value)(_swap(value.obj, ids), value.dumps)
    if isinstance(value, dict):
        return {key: _swap(item, ids) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_swap(item, ids) for item in value)
    return value


def _answer_ids(cursor: Any) -> list[uuid.UUID]:
    """The ids in a statement's answer (its text-format values), in order."""
    result = cursor.pgresult
    if result is None:
        return []
    return [uuid.UUID(found) for row in range(result.ntuples) for field in range(result.nfields)
            for found in _UUID.findall((result.get_value(row, field) or b"").decode())]


class _OwnSql:
    """One request's own SQL as its handler sent it (``bench.roundtrips.StatementRecorder``), ready to run
    bare on another connection against another target, in the same round trips: each pipeline as one
    pipeline, each statement alone as alone, every answer fetched.

    The ids change so that a write really inserts again: the target's ids (``targets``: the request's agency,
    owner or site for the replay's), the ids the handler made up (in no parameter of the event and in no
    earlier answer: fresh ones), and the ids it read from an earlier answer (the replay's own answer, paired
    in order; the only Python the replay runs between round trips).
    """

    def __init__(self, conn: Any, recorded: list[Any], event: dict[str, Any], targets: dict[uuid.UUID, uuid.UUID]):
        received = set(_uuids_in(json.dumps(event)))
        ids, read, answers = dict(targets), set[uuid.UUID](), []
        for statement in recorded:
            for found in _uuids_in(statement.params):
                if found not in received and found not in read and found not in ids:
                    ids[found] = uuid.uuid4()  # made up by the handler
            answer = _answer_ids(statement.cursor)
            answers.append(answer)
            read.update(answer)
        used = {u for statement in recorded for u in _uuids_in(statement.params)} & read
        self.recorded = recorded
        self.queries = [_swap(s.query if isinstance(s.query, str | bytes) else s.query.as_string(conn), ids)
                        for s in recorded]
        self.params = [_swap(s.params, ids) for s in recorded]
        self.learn = [answer if used & set(answer) else None for answer in answers]  # answers read later
        self.relearn = [bool(used & set(_uuids_in(s.params))) for s in recorded]  # params that read them
        self.groups: list[tuple[bool, list[int]]] = []
        for k, statement in enumerate(recorded):
            if statement.pipeline is not None and k and recorded[k - 1].pipeline == statement.pipeline:
                self.groups[-1][1].append(k)
            else:
                self.groups.append((statement.pipeline is not None, [k]))
        self.rowcounts: list[int] = []

    def run(self, conn: Any) -> None:
        learned: dict[uuid.UUID, uuid.UUID] = {}
        rowcounts = [0] * len(self.recorded)
        for pipelined, group in self.groups:
            cursors = []
            with conn.pipeline() if pipelined else contextlib.nullcontext():
                for k in group:
                    params = _swap(self.params[k], learned) if self.relearn[k] else self.params[k]
                    cursors.append(conn.execute(self.queries[k], params, **self.recorded[k].options))
            for k, cursor in zip(group, cursors, strict=True):
                rowcounts[k] = cursor.rowcount
                learn = self.learn[k]
                if learn is not None:
                    learned.update(zip(learn, _answer_ids(cursor), strict=True))
                while True:  # a text of several statements answers with several results
                    if cursor.description is not None:
                        cursor.fetchall()
                    if not cursor.nextset():
                        break
        self.rowcounts = rowcounts

    def check(self) -> None:
        """The replay touched as many rows, statement by statement, as the request did."""
        expected = [s.cursor.rowcount for s in self.recorded]
        if self.rowcounts != expected:
            raise RuntimeError(f"the bare replay's row counts {self.rowcounts} differ from the request's {expected}")


def handler_environment() -> dict[str, str | None]:
    """The environment the handlers run in during a benchmark (returns what it replaced, for restoring):
    the pool's one connection, emulated AWS, and rate limits a benchmark's hundreds of requests a second
    do not exhaust (the reads still take a token: its cost is measured)."""
    saved = {k: os.environ.get(k) for k in ("DRAMAC_DB_POOL_MAX", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "SQS_ENDPOINT_URL", "DRAMAC_PLAN_LIMITS")}
    os.environ.update({"DRAMAC_DB_POOL_MAX": "1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1",
                       "DRAMAC_PLAN_LIMITS": json.dumps({plan: {"siteRate": 1_000_000, "siteBurst": 1_000_000}
                                                         for plan in ("free", "standard", "pro")})})
    os.environ.pop("SQS_ENDPOINT_URL", None)
    return saved


def run(env: dict[str, str]) -> Section:
    import psycopg
    from dramac_common.core import aws, db, queues
    from dramac_common.core.settings import reset_settings
    from moto import mock_aws
    from psycopg.rows import dict_row

    from dramac_dev.events import LocalContext
    from dramac_dev.functions_loader import get_handler
    from dramac_dev.sqs_local import create_queues

    from .roundtrips import RoundTripCounter, StatementRecorder, traced_pool_connection

    saved = handler_environment()
    reset_settings()
    db.close_pool()
    total = REQUESTS + WARMUP + TRACED
    section = Section("2. Warm latency and round trips", "make bench (bench/warm_latency.py)",
                      ["request", "p50", "p99", "round trips", "of which queue send (moto)",
                       "own SQL bare p50", "own SQL round trips", "p50 vs own SQL",
                       "raw SQL (minimum statement) p50", "raw SQL round trips", "p50 vs raw",
                       "goal (≤ 3 ms, trips, ≤ 2× own SQL)"])
    queue_time = [0.0]
    real_send, real_send_many = queues.send_message, queues.send_messages

    def timed_send(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_send(*a, **kw)
        finally:
            queue_time[0] += time.perf_counter() - t

    def timed_send_many(*a: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_send_many(*a, **kw)
        finally:
            queue_time[0] += time.perf_counter() - t

    try:
        with mock_aws(), psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn, \
                psycopg.connect(env["DATABASE_URL"], autocommit=True, row_factory=dict_row) as bare:
            aws.reset_session()  # one made before moto was imported (the seed's) would not be stubbed
            queues.reset_client()
            queue_urls = list(create_queues(queues.sqs_client(), get_settings_prefix()).values())
            queues.send_message, queues.send_messages = timed_send, timed_send_many

            def drain() -> None:
                """Empty the queues between requests (untimed): moto's send slows with every queued message
                (1.5 ms empty, 21 ms at 1,000, 59 ms at 3,000), which would measure moto, not the handler."""
                client = queues.sqs_client()
                for queue_url in queue_urls:  # receive and delete (moto allows one purge a minute, as SQS does)
                    while True:
                        got = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
                        if not got:
                            break
                        client.delete_message_batch(QueueUrl=queue_url, Entries=[
                            {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got)])

            setup = _owner_setup(conn, total)
            baselines = _baselines(conn, setup)
            replay_targets = _replay_targets(conn, setup)
            baseline_counter, bare_counter = RoundTripCounter(conn), RoundTripCounter(bare)
            with traced_pool_connection() as counter:
                recorder = StatementRecorder(counter.conn)
                for label, (function, make_event) in _requests(setup).items():
                    if ONLY and function not in ONLY:
                        continue
                    handler = get_handler(function)
                    context = LocalContext(function)
                    events = [make_event(i) for i in range(total)]
                    targets = replay_targets.get(label) or replay_targets.get(function, [])
                    statuses = set()
                    latencies, queue_share, own_latencies, trips, own_trips = [], [], [], [], []
                    for i in range(total):
                        traced = i >= WARMUP + REQUESTS
                        queue_time[0] = 0.0
                        with _measured(counter, traced) as result, \
                                recorder.record() as statements:
                            start = time.perf_counter()
                            statuses.add(handler(events[i], context)["statusCode"])
                            took = time.perf_counter() - start
                        trips += result
                        if WARMUP <= i < WARMUP + REQUESTS:
                            latencies.append(took)
                            queue_share.append(queue_time[0])
                        drain()
                        # the same request's own SQL, bare, against a target of its own (untimed preparation)
                        own = _OwnSql(counter.conn, statements, events[i], targets[i] if targets else {})
                        with _measured(bare_counter, traced) as result:
                            start = time.perf_counter()
                            own.run(bare)
                            took = time.perf_counter() - start
                        own_trips += result
                        own.check()
                        if WARMUP <= i < WARMUP + REQUESTS:
                            own_latencies.append(took)
                    if not statuses <= {200, 201, 202}:
                        raise RuntimeError(f"{label}: unexpected statuses {statuses}")
                    raw = baselines.get(label) or baselines[function]
                    raw_latencies = []
                    for i in range(total):
                        if i >= WARMUP + REQUESTS:
                            with baseline_counter.measure() as raw_trips:
                                raw(i)
                            continue
                        start = time.perf_counter()
                        raw(i)
                        if i >= WARMUP:
                            raw_latencies.append(time.perf_counter() - start)
                    p50, own_p50, raw_p50 = median(latencies), median(own_latencies), median(raw_latencies)
                    section.rows.append([label, f"{p50 * 1000:.2f} ms", f"{percentile(latencies, 99) * 1000:.2f} ms",
                                         _trips(trips), f"{median(queue_share) * 1000:.2f} ms",
                                         f"{own_p50 * 1000:.2f} ms", _trips(own_trips), ratio(p50, own_p50),
                                         f"{raw_p50 * 1000:.2f} ms", str(raw_trips[0]), ratio(p50, raw_p50),
                                         _verdict(p50, own_p50, max(trips), 2 if function == "module_api" else 3)])
            baseline_counter.close()
            bare_counter.close()
    finally:
        queues.send_message, queues.send_messages = real_send, real_send_many
        db.close_pool()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()
        queues.reset_client()
    section.notes += [
        f"{REQUESTS} timed requests each after {WARMUP} warm-up requests; every write request targets a fresh "
        "agency or site, so each one really inserts; round trips counted on {TRACED} further requests".replace(
            "{TRACED}", str(TRACED)),
        "round trips: F→B turns in libpq's protocol trace of the pool's only connection, including any after-commit "
        "SQL (a write's events are sent after commit with no transaction after the send: the event processor marks "
        "them received); raw SQL is one statement on an autocommit owner connection",
        "own SQL bare: every statement the handler sent for that very request (its rate-limit token, BEGIN, "
        "set_config of the claims and role, the statements, COMMIT), "
        "recorded from psycopg's execute on the pool's connection with its pipelines, then replayed right after it "
        "on a second connection (same login, autocommit, dict rows, no FastAPI/Mangum/pydantic/handler code), "
        "pipeline for pipeline, every answer fetched; a write replays against a fresh agency (with its owner's "
        "claims) or site prepared for it, with the ids the handler made up replaced by fresh ones and those it "
        "read from an answer taken from the replay's own answer, and must touch as many rows, statement by "
        "statement, as the request did; the queue send (moto) is not SQL and is not in it",
        "tenancy: each subscribe and purchase is made by the owner of a fresh agency who belongs to that agency "
        "alone; install and read by the demo user (one agency); the many-agency row is a user in "
        f"{MANY_AGENCIES + 1:,} agencies; the queues are drained after every request (untimed), so each send "
        "meets an empty moto queue",
        "events: no workflow listens on the agencies and sites of the rows above but one, so their events are "
        "marked received when written and not sent (migration 0180: the common case); the row 'subscribe, a "
        "workflow listening' has a workflow on a site of each of its agencies (and of its replay's) subscribed "
        "to marketplace.subscription.created, so that event is sent after commit (the send path)",
        "goal: p50 ≤ 3 ms with ≤ 3 round trips (reads ≤ 2), and p50 ≤ 2× the same request's own SQL run bare on "
        "one connection; a row not met says which parts miss",
    ]
    return section


def _measured(counter: Any, traced: bool) -> contextlib.AbstractContextManager[list[int]]:
    """The round trips of a traced request (``RoundTripCounter.measure``); an untimed one counts none."""
    return counter.measure() if traced else contextlib.nullcontext([])


def _verdict(p50: float, own_p50: float, trips: int, max_trips: int) -> str:
    """``met``, or ``not met`` and each part of the goal as it stands (what misses first)."""
    parts = [(p50 <= 0.003, f"{p50 * 1000:.2f} ms {'≤' if p50 <= 0.003 else '>'} 3 ms"),
             (p50 <= 2 * own_p50, f"{p50 / own_p50:.1f}× own SQL {'≤' if p50 <= 2 * own_p50 else '>'} 2×"),
             (trips <= max_trips, f"{trips} trips {'≤' if trips <= max_trips else '>'} {max_trips}")]
    if all(ok for ok, _ in parts):
        return "met"
    return "not met: " + "; ".join(text for ok, text in sorted(parts, key=lambda part: part[0]))


def _trips(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def get_settings_prefix() -> str:
    from dramac_common.core.settings import get_settings

    return get_settings().queue_prefix

