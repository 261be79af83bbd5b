"""Benchmark 7: the PostgREST surface against the envelope API, the same 50-row filtered read of a site's
contacts (``lead_score=gte.10&status=eq.lead&limit=50&order=created_at.desc``) through the real
``module_api`` Lambda handler with real API Gateway v2 events on real PostgreSQL.

The two requests alternate (ABBA order), so both see the same machine: on a noisy machine the ratio
holds even when the absolute figures move. Round trips are counted from libpq's protocol trace.
"""

from __future__ import annotations

import os
import time
from typing import Any

from .common import Section, median, percentile, ratio

REQUESTS = int(os.environ.get("BENCH_REST_REQUESTS", "300"))
WARMUP = 30
TRACED = 10


def run(env: dict[str, str]) -> Section:
    import psycopg
    from dramac_common.core import db, queues
    from dramac_common.core.settings import reset_settings
    from moto import mock_aws

    from dramac_dev.events import LocalContext
    from dramac_dev.functions_loader import get_handler
    from dramac_dev.sqs_local import create_queues

    from .roundtrips import traced_pool_connection
    from .warm_latency import (
        FILTERED_ENVELOPE,
        FILTERED_REST,
        _owner_setup,
        _requests,
        get_settings_prefix,
        handler_environment,
    )

    saved = handler_environment()
    reset_settings()
    db.close_pool()
    section = Section("7. PostgREST surface and envelope API: the same filtered read",
                      "make bench (bench/rest_read.py)",
                      ["request", "p50", "p99", "round trips", "rows", "p50 vs envelope"])
    labels = (FILTERED_ENVELOPE, FILTERED_REST)
    try:
        with mock_aws(), psycopg.connect(env["DATABASE_URL"], autocommit=True) as conn:
            queues.reset_client()
            create_queues(queues.sqs_client(), get_settings_prefix())
            requests = _requests(_owner_setup(conn, 0))
            handler = get_handler("module_api")
            context = LocalContext("module_api")
            events = {label: requests[label][1](0) for label in labels}
            latencies: dict[str, list[float]] = {label: [] for label in labels}
            rows: dict[str, set[int]] = {label: set() for label in labels}

            def call(label: str) -> float:
                start = time.perf_counter()
                result = handler(events[label], context)
                elapsed = time.perf_counter() - start
                if result["statusCode"] != 200:
                    raise RuntimeError(f"{label}: {result['statusCode']} {result.get('body', '')[:300]}")
                rows[label].add(len(_rows(result["body"])))
                return elapsed

            for _ in range(WARMUP):
                for label in labels:
                    call(label)
            for i in range(REQUESTS):
                for label in (labels if i % 2 == 0 else labels[::-1]):
                    latencies[label].append(call(label))
            trips: dict[str, list[int]] = {label: [] for label in labels}
            with traced_pool_connection() as counter:
                for _ in range(TRACED):
                    for label in labels:
                        with counter.measure() as result:
                            call(label)
                        trips[label].append(result[0])
            base = median(latencies[FILTERED_ENVELOPE])
            for label in labels:
                p50 = median(latencies[label])
                section.rows.append([label, f"{p50 * 1000:.2f} ms", f"{percentile(latencies[label], 99) * 1000:.2f} ms",
                                     _span(trips[label]), ", ".join(map(str, sorted(rows[label]))), ratio(p50, base)])
    finally:
        db.close_pool()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings()
        queues.reset_client()
    section.notes += [
        f"{REQUESTS} timed requests of each after {WARMUP} warm-up pairs, alternating (ABBA), one pooled connection; "
        f"round trips counted on {TRACED} further requests of each",
        "both run the same gate, unit of work and single SQL statement; the PostgREST surface answers bare JSON "
        "(no envelope) with a Content-Range header",
        "issue 15's target: the /rest read costs no more than the envelope API's",
    ]
    return section


def _rows(body: str) -> list[Any]:
    import json

    data = json.loads(body)
    return data["data"] if isinstance(data, dict) else data


def _span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"
