"""Identical requests at the same moment end as one request would: each write route is fired
``BURST`` times in parallel (threads released by one barrier) against the real Lambda handlers and
PostgreSQL. Every reply is what a sequential repeat would answer (one 201, the rest 200, ...), none is
a 5xx, nothing deadlocks, and the rows left behind are those of a single request."""

from __future__ import annotations

import pytest
from concurrency_support import BURST, fire, no_server_errors, statuses
from helpers import FunctionClient, emulated_queues


@pytest.fixture
def parallel_pool(database_url, monkeypatch):
    """A pool as large as the burst: N overlapping transactions, as N Lambda containers would run them."""
    from dramac_common import db
    from dramac_common.settings import reset_settings

    monkeypatch.setenv("DRAMAC_DB_POOL_MAX", str(BURST + 4))
    reset_settings()
    db.close_pool()
    yield
    db.close_pool()
    monkeypatch.undo()
    reset_settings()


@pytest.fixture
def queues(parallel_pool):
    with emulated_queues() as emulated:
        yield emulated


@pytest.fixture
def subscribe_api(queues):
    return FunctionClient("subscribe")


def test_parallel_subscribes_to_a_new_free_module_answer_one_201_and_the_rest_200(subscribe_api, tenant,
                                                                                   make_module, owner_conn):
    module = make_module(pricing_type="free")
    body = {"agencyId": str(tenant.agency_id), "moduleId": str(module)}
    replies = fire(BURST, lambda _: subscribe_api.post("/api/modules/subscribe", user=tenant.owner, body=body))
    no_server_errors(replies)
    assert statuses(replies) == {201: 1, 200: BURST - 1}
    assert len({r.data["id"] for r in replies}) == 1
    rows = owner_conn.execute("SELECT status FROM agency_module_subscriptions WHERE agency_id = %s AND module_id = %s",
                              (tenant.agency_id, module)).fetchall()
    assert rows == [{"status": "active"}]
    events = owner_conn.execute(
        "SELECT event_type, count(*) AS n FROM automation_events_log WHERE agency_id = %s "
        "AND payload ->> 'module_id' = %s GROUP BY event_type ORDER BY event_type",
        (tenant.agency_id, str(module))).fetchall()
    assert events == [{"event_type": "marketplace.subscription.activated", "n": 1},
                      {"event_type": "marketplace.subscription.created", "n": 1}]
