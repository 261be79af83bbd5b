"""Events per second through the event processor: events → executions of a three-step workflow
(condition → set_variable → http_request to a local receiver), every row written.

    .venv/bin/python bench/automation_throughput.py [--events 200] [--repeats 5] [--batch-sizes 1,10]

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
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

    import psycopg
    from dramac_common import db, queues
    from dramac_common.automation import dal
    from dramac_common.migrate import apply_migrations
    from dramac_common.settings import reset_settings
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
            for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
                rates = []
                for _ in range(args.repeats):
                    ids = [r["id"] for r in conn.execute(
                        """INSERT INTO automation_events_log (site_id, event_type, payload, dispatched_at)
                           SELECT %s, 'crm.contact.created', jsonb_build_object('email', 'c' || g || '@example.test',
                                  'lead_score', 70, 'status', 'active'), now()
                           FROM generate_series(1, %s) g RETURNING id""", (site, args.events)).fetchall()]
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
                      f"(median of {args.repeats} × {args.events} events; runs: "
                      f"{', '.join(f'{r:.1f}' for r in rates)})", flush=True)
            assert workflow
    finally:
        db.close_pool()
        localdb.drop_database(server, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
