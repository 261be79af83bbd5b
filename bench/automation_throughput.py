"""Events per second through the event processor: events → executions of a three-step workflow
(condition → set_variable → http_request to a local receiver), every row written.

    .venv/bin/python -m bench.automation_throughput [--events 200] [--repeats 5] [--batch-sizes 1,10]

Runs on the embedded PostgreSQL (or DATABASE_URL's server) in a scratch database, with moto SQS/SES
in process. Events are written beforehand (untimed); the timed part is the real event_processor
handler on SQS events of the given batch size, until every event's execution is completed. Prints
the median of the repeats per batch size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "ERROR")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ["AUTOMATION_ALLOW_PRIVATE_HTTP"] = "1"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-sizes", default="1,10")
    args = parser.parse_args()
    measure(args.events, args.repeats, [int(b) for b in args.batch_sizes.split(",")])
    return 0


def _raw_baseline(conn: Any, site: Any, workflow: Any, url: str, events: int, repeats: int) -> list[float]:
    """The minimum doing the same work per event: one autocommit statement writing the completed
    execution and its three step logs, and the same HTTP POST to the receiver."""
    import httpx

    statement = """
        WITH e AS (
          INSERT INTO public.workflow_executions (workflow_id, site_id, event_id, status, context, next_position,
                                                  started_at, completed_at)
          VALUES (%(workflow)s, %(site)s, %(event)s, 'completed', %(context)s, 4, now(), now()) RETURNING id)
        INSERT INTO public.step_execution_logs (execution_id, site_id, position, status, input, output, completed_at,
                                                duration_ms)
        SELECT e.id, %(site)s, p, 'completed', '{}'::jsonb, '{}'::jsonb, now(), 0 FROM e, generate_series(1, 3) p"""
    rates = []
    with httpx.Client() as client:
        for _ in range(repeats):
            ids = [r["id"] for r in conn.execute(
                """INSERT INTO automation_events_log (site_id, event_type, payload, dispatched_at)
                   SELECT %s, 'crm.contact.created', jsonb_build_object('email', 'c' || g || '@example.test',
                          'lead_score', 70, 'status', 'active'), now()
                   FROM generate_series(1, %s) g RETURNING id""", (site, events)).fetchall()]
            started = time.perf_counter()
            for event_id in ids:
                email = f"c{event_id.hex[:8]}@example.test"
                client.post(url, json={"email": email}).raise_for_status()
                conn.execute(statement, {"workflow": workflow, "site": site, "event": event_id,
                                         "context": json.dumps({"variables": {"last": email}})})
            rates.append(len(ids) / (time.perf_counter() - started))
    return rates


def measure(events: int, repeats: int, batch_sizes: list[int]) -> dict[Any, float]:
    """Median events/s per batch size (and ``"raw"`` for the raw SQL + HTTP baseline)."""
    import psycopg
    from dramac_common.automation import dal
    from dramac_common.core import db, queues
    from dramac_common.core.migrate import apply_migrations
    from dramac_common.core.settings import reset_settings
    from moto import mock_aws
    from psycopg.rows import dict_row

    from dramac_dev import localdb, seed
    from dramac_dev.events import LocalContext, sqs_event, sqs_record
    from dramac_dev.functions_loader import get_handler
    from dramac_dev.receiver import Receiver
    from dramac_dev.sqs_local import create_queues

    server = os.environ.get("DATABASE_URL") or localdb.embedded_server_url()
    name, url = localdb.create_database(server)
    try:
        apply_migrations(url)
        os.environ["DATABASE_URL"] = url
        os.environ["DRAMAC_DB_POOL_MAX"] = "4"
        reset_settings()
        with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn, Receiver() as receiver, mock_aws():
            queues.reset_client()
            create_queues(queues.sqs_client(), "dramac")
            owner = seed.create_user(conn)
            agency = seed.create_agency(conn, owner=owner)
            site = seed.create_site(conn, agency)
            with db.service_unit() as unit:
                workflow = dal.insert_workflow(
                    unit, site_id=site, name="bench", description="", is_active=True, created_by=owner,
                    event_type="crm.contact.created", filter_={"status": "active"},
                    steps=[{"position": 1, "step_type": "condition",
                            "config": {"field": "event.payload.lead_score", "operator": "gte", "value": 50}},
                           {"position": 2, "step_type": "set_variable",
                            "config": {"name": "last", "value": "{{event.payload.email}}"}},
                           {"position": 3, "step_type": "http_request",
                            "config": {"url": f"{receiver.url}/hook", "body": {"email": "{{event.payload.email}}"}}}])
            handler = get_handler("event_processor")
            arn = "arn:aws:sqs:us-east-1:000000000000:dramac-events"
            results = {}
            for batch_size in batch_sizes:
                rates = []
                for _ in range(repeats):
                    ids = [r["id"] for r in conn.execute(
                        """INSERT INTO automation_events_log (site_id, event_type, payload, dispatched_at)
                           SELECT %s, 'crm.contact.created', jsonb_build_object('email', 'c' || g || '@example.test',
                                  'lead_score', 70, 'status', 'active'), now()
                           FROM generate_series(1, %s) g RETURNING id""", (site, events)).fetchall()]
                    started = time.perf_counter()
                    for start in range(0, len(ids), batch_size):
                        records = [sqs_record(json.dumps({"eventId": str(i)}), queue_arn=arn)
                                   for i in ids[start:start + batch_size]]
                        result = handler(sqs_event(records), LocalContext("event_processor", timeout_s=900))
                        assert not result["batchItemFailures"], result
                    elapsed = time.perf_counter() - started
                    done = conn.execute(
                        """SELECT count(*) FILTER (WHERE e.status = 'completed') AS completed,
                                  (SELECT count(*) FROM step_execution_logs l WHERE l.execution_id = ANY(array_agg(e.id))
                                     AND l.status = 'completed') AS logs
                           FROM workflow_executions e WHERE e.event_id = ANY(%s)""", (ids,)).fetchone()
                    assert done == {"completed": len(ids), "logs": 3 * len(ids)}, done
                    rates.append(len(ids) / elapsed)
                results[batch_size] = statistics.median(rates)
                print(f"batch size {batch_size:>2}: {results[batch_size]:7.1f} events/s "
                      f"(median of {repeats} × {events} events; runs: "
                      f"{', '.join(f'{r:.1f}' for r in rates)})", flush=True)
            raw = _raw_baseline(conn, site, workflow,
                                f"{receiver.url}/hook", events, repeats)
            results["raw"] = statistics.median(raw)
            print(f"raw SQL + HTTP baseline: {results['raw']:7.1f} events/s", flush=True)
    finally:
        db.close_pool()
        localdb.drop_database(server, name)
    return results


def run(env: dict[str, str]) -> Any:
    from .common import Section, ratio

    events = int(os.environ.get("BENCH_AUTOMATION_EVENTS", "200"))
    repeats = int(os.environ.get("BENCH_AUTOMATION_REPEATS", "5"))
    saved = os.environ.get("DATABASE_URL")  # measure() makes its own scratch database on this server
    try:
        results = measure(events, repeats, [1, 10])
    finally:
        os.environ["DATABASE_URL"] = saved or ""
        from dramac_common.core.settings import reset_settings

        reset_settings()
    section = Section("5. Automation throughput", "make bench (bench/automation_throughput.py)",
                      ["delivery", "events/s", "ms per event", "vs raw SQL + HTTP"])
    for key, label in ((1, "event processor, SQS batch size 1"), (10, "event processor, SQS batch size 10"),
                       ("raw", "*baseline: one autocommit statement + the same HTTP POST per event*")):
        section.rows.append([label, f"{results[key]:,.0f}", f"{1000 / results[key]:.2f}",
                             ratio(results[key], results["raw"])])
    section.notes += [
        f"median of {repeats} runs × {events} events; three-step workflow (condition → set_variable → http_request "
        "to a local receiver), every execution and step log written and checked; moto SQS in process",
        "the target: at least 1,000 events per second per worker",
    ]
    return section



if __name__ == "__main__":
    sys.exit(main())
