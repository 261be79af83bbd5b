"""Rate limits of the data and events routes: token buckets per site and per API key, limits per plan,
429 with Retry-After and the envelope; nothing a refused request asked for happens."""

from __future__ import annotations

import json
import threading

import pytest
from support.modules import make_crm


@pytest.fixture
def data_api(function_client):
    return function_client("module_api")


@pytest.fixture
def automation_api(function_client):
    return function_client("automation")


@pytest.fixture
def crm(owner_conn, make_module, tenant, other_tenant, aws):
    return make_crm(owner_conn, make_module, tenant, other_tenant)


def limits(env, **plans) -> None:
    env.set("DRAMAC_PLAN_LIMITS", json.dumps(plans))


def contacts(t, slug) -> str:
    return f"/api/sites/{t.site_id}/modules/{slug}/data/contacts"


def new_key(data_api, t) -> str:
    reply = data_api.post(f"/api/sites/{t.site_id}/api-keys", user=t.owner, body={})
    assert reply.status == 201, reply.body
    return reply.data["key"]


def test_a_burst_on_a_data_route_is_refused_with_429_retry_after_and_the_envelope(data_api, crm, tenant, env):
    limits(env, standard={"siteRate": 0.01, "siteBurst": 3})
    _, slug = crm
    statuses = [data_api.get(contacts(tenant, slug), user=tenant.owner) for _ in range(5)]
    assert [r.status for r in statuses] == [200, 200, 200, 429, 429]
    refused = statuses[3]
    assert refused.body == {"success": False, "code": "rate_limited",
                            "error": refused.body["error"]} and "this site" in refused.body["error"]
    assert 90 <= int(refused.headers["retry-after"]) <= 100  # one token at 0.01 per second


def test_the_bucket_refills_at_the_plans_rate(data_api, crm, tenant, env, owner_conn):
    limits(env, standard={"siteRate": 0.5, "siteBurst": 1})
    _, slug = crm
    assert [data_api.get(contacts(tenant, slug), user=tenant.owner).status for _ in range(2)] == [200, 429]
    # four seconds later (the clock moved back on the bucket, not slept): two tokens, capped at the burst of 1
    owner_conn.execute("UPDATE private.rate_buckets SET updated_at = updated_at - interval '4 seconds' "
                       "WHERE bucket = %s", (f"site:{tenant.site_id}",))
    assert [data_api.get(contacts(tenant, slug), user=tenant.owner).status for _ in range(2)] == [200, 429]


def test_a_key_over_its_limit_does_not_drain_its_sites_bucket(data_api, crm, tenant, env):
    limits(env, standard={"keyRate": 0.01, "keyBurst": 2, "siteRate": 0.01, "siteBurst": 6})
    _, slug = crm
    noisy, quiet = new_key(data_api, tenant), new_key(data_api, tenant)
    noisy_statuses = [data_api.get(contacts(tenant, slug), headers={"x-api-key": noisy}).status for _ in range(5)]
    assert noisy_statuses == [200, 200, 429, 429, 429]
    assert "this API key" in data_api.get(contacts(tenant, slug), headers={"x-api-key": noisy}).body["error"]
    quiet_statuses = [data_api.get(contacts(tenant, slug), headers={"x-api-key": quiet}).status for _ in range(2)]
    owner_statuses = [data_api.get(contacts(tenant, slug), user=tenant.owner).status for _ in range(3)]
    assert quiet_statuses == [200, 200] and owner_statuses == [200, 200, 429]  # the site's 6: 2 + 2 + 2


def test_strangers_cannot_drain_a_sites_bucket(data_api, crm, tenant, other_tenant, env):
    limits(env, standard={"siteRate": 0.01, "siteBurst": 2})
    _, slug = crm
    assert {data_api.get(contacts(tenant, slug), user=other_tenant.owner).status for _ in range(5)} == {404}
    assert [data_api.get(contacts(tenant, slug), user=tenant.member).status for _ in range(3)] == [200, 200, 429]


def test_a_refused_event_is_not_recorded(automation_api, tenant, env, aws, owner_conn):
    limits(env, standard={"siteRate": 0.01, "siteBurst": 2})
    path = f"/api/sites/{tenant.site_id}/automation/events"
    body = {"eventType": "crm.contact.created", "payload": {"email": "a@b.test"}}
    replies = [automation_api.post(path, user=tenant.owner, body=body) for _ in range(4)]
    assert [r.status for r in replies] == [202, 202, 429, 429]
    assert replies[2].body["code"] == "rate_limited" and replies[2].headers["retry-after"]
    count = owner_conn.execute("SELECT count(*) AS n FROM automation_events_log WHERE site_id = %s",
                               (tenant.site_id,)).fetchone()["n"]
    assert count == 2


def test_limits_follow_the_agencys_plan(data_api, crm, tenant, other_tenant, env, owner_conn):
    limits(env, free={"siteRate": 0.01, "siteBurst": 1}, standard={"siteRate": 0.01, "siteBurst": 3})
    _, slug = crm
    owner_conn.execute("INSERT INTO private.agency_plans (agency_id, plan) VALUES (%s, 'free')", (tenant.agency_id,))
    assert [data_api.get(contacts(tenant, slug), user=tenant.owner).status for _ in range(2)] == [200, 429]
    mine = [data_api.get(contacts(other_tenant, slug), user=other_tenant.owner).status for _ in range(4)]
    assert mine == [200, 200, 200, 429]


def test_a_concurrent_burst_lets_exactly_the_burst_through_and_never_fails(data_api, crm, tenant, env):
    limits(env, standard={"siteRate": 0.01, "siteBurst": 5})
    _, slug = crm
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(12)

    def call() -> None:
        start.wait()
        status = data_api.get(contacts(tenant, slug), user=tenant.owner).status
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [429] * 7


def test_malformed_plan_limits_are_refused_at_start():
    from dramac_common.core.settings import read_settings

    for raw in ('["free"]', '{"free": {"siteRate": -1}}', '{"free": {"burst": 3}}', '{"free": {"siteBurst": 0.5}}'):
        with pytest.raises(ValueError, match="DRAMAC_PLAN_LIMITS"):
            read_settings({"DRAMAC_PLAN_LIMITS": raw})
