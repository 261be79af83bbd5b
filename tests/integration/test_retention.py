"""Retention (functions/retention): finished executions with their step logs, older step logs and sent
events are deleted after their periods, in batches; unfinished work and the audit log never are."""

from __future__ import annotations

import pytest
from support.automation import create_workflow

STEPS = [{"type": "set_variable", "config": {"name": "a", "value": 1}},
         {"type": "set_variable", "config": {"name": "b", "value": 2}}]


@pytest.fixture
def workflow(function_client, tenant):
    return create_workflow(function_client("automation"), tenant, STEPS)


def event(owner_conn, tenant, *, age_days: int, dispatched: bool = True):
    return owner_conn.execute(
        "INSERT INTO automation_events_log (site_id, event_type, payload, created_at, dispatched_at) "
        "VALUES (%s, 'crm.contact.created', '{}', now() - make_interval(days => %s), "
        "CASE WHEN %s THEN now() - make_interval(days => %s) END) RETURNING id",
        (tenant.site_id, age_days, dispatched, age_days)).fetchone()["id"]


def execution(owner_conn, tenant, workflow, *, age_days: int, status: str, event_id=None):
    row = owner_conn.execute(
        "INSERT INTO workflow_executions (workflow_id, site_id, event_id, status, created_at, started_at, next_position) "
        "VALUES (%s, %s, %s, %s, now() - make_interval(days => %s), now() - make_interval(days => %s), 3) "
        "RETURNING id", (workflow["id"], tenant.site_id, event_id, status, age_days, age_days)).fetchone()
    owner_conn.execute(
        "INSERT INTO step_execution_logs (execution_id, step_id, site_id, position, step_type, status, started_at) "
        "SELECT %s, s.id, s.site_id, s.position, s.step_type, 'completed', now() - make_interval(days => %s) "
        "FROM workflow_steps s WHERE s.workflow_id = %s", (row["id"], age_days, workflow["id"]))
    return row["id"]


def ids(owner_conn, table: str, column: str, value) -> set:
    query = f"SELECT id FROM {table} WHERE {column} = %s"
    return {r["id"] for r in owner_conn.execute(query, (value,)).fetchall()}


def step_log_count(owner_conn, execution_id) -> int:
    return owner_conn.execute("SELECT count(*) AS n FROM step_execution_logs WHERE execution_id = %s",
                              (execution_id,)).fetchone()["n"]


def test_old_finished_work_goes_and_everything_else_stays(owner_conn, tenant, workflow):
    from dramac_common.automation.retention import Periods, run_retention

    old_sent = [event(owner_conn, tenant, age_days=40) for _ in range(3)]
    old_unsent = event(owner_conn, tenant, age_days=40, dispatched=False)
    old_needed = event(owner_conn, tenant, age_days=40)
    recent = event(owner_conn, tenant, age_days=1)
    old_done = [execution(owner_conn, tenant, workflow, age_days=40, status=s, event_id=e)
                for s, e in zip(("completed", "failed", "cancelled"), old_sent, strict=True)]
    old_waiting = execution(owner_conn, tenant, workflow, age_days=40, status="waiting", event_id=old_needed)
    recent_done = execution(owner_conn, tenant, workflow, age_days=1, status="completed", event_id=recent)
    audited = owner_conn.execute("SELECT count(*) AS n FROM audit_log WHERE agency_id = %s",
                                 (tenant.agency_id,)).fetchone()["n"]
    assert audited >= 1  # the workflow's creation

    result = run_retention(Periods(executions_days=30, step_logs_days=30, events_days=30, batch_size=2))

    assert result["complete"] == 1
    assert ids(owner_conn, "workflow_executions", "workflow_id", workflow["id"]) == {old_waiting, recent_done}
    assert all(step_log_count(owner_conn, e) == 0 for e in old_done)
    assert step_log_count(owner_conn, old_waiting) == 2 and step_log_count(owner_conn, recent_done) == 2
    assert ids(owner_conn, "automation_events_log", "site_id", tenant.site_id) == {old_unsent, old_needed, recent}
    assert owner_conn.execute("SELECT count(*) AS n FROM audit_log WHERE agency_id = %s",
                              (tenant.agency_id,)).fetchone()["n"] == audited


def test_step_logs_can_be_kept_shorter_than_their_executions(owner_conn, tenant, workflow):
    from dramac_common.automation.retention import Periods, run_retention

    kept = execution(owner_conn, tenant, workflow, age_days=10, status="completed")
    running = execution(owner_conn, tenant, workflow, age_days=10, status="running")
    run_retention(Periods(executions_days=90, step_logs_days=7, events_days=90, batch_size=100))
    assert ids(owner_conn, "workflow_executions", "workflow_id", workflow["id"]) == {kept, running}
    assert step_log_count(owner_conn, kept) == 0
    assert step_log_count(owner_conn, running) == 2  # an unfinished execution's log is still being written


def test_an_execution_kept_longer_than_its_event_loses_only_the_link(owner_conn, tenant, workflow, function_client):
    from dramac_common.automation.retention import Periods, run_retention

    old = event(owner_conn, tenant, age_days=40)
    kept = execution(owner_conn, tenant, workflow, age_days=40, status="failed", event_id=old)
    run_retention(Periods(executions_days=365, step_logs_days=365, events_days=30, batch_size=100))
    row = owner_conn.execute("SELECT event_id FROM workflow_executions WHERE id = %s", (kept,)).fetchone()
    assert row["event_id"] is None and step_log_count(owner_conn, kept) == 2
    rerun = function_client("automation").post(f"/api/sites/{tenant.site_id}/automation/executions/{kept}/rerun",
                                               user=tenant.owner)
    assert rerun.status == 409 and rerun.body["code"] == "event_pruned"


def test_a_run_out_of_time_stops_and_the_next_continues(owner_conn, tenant, workflow):
    from dramac_common.automation.retention import Periods, run_retention

    old = [execution(owner_conn, tenant, workflow, age_days=40, status="completed") for _ in range(3)]
    periods = Periods(executions_days=30, step_logs_days=30, events_days=30, batch_size=1)
    assert run_retention(periods, remaining_ms=lambda: 1_000) == {
        "executionsDeleted": 0, "stepLogsDeleted": 0, "eventsDeleted": 0, "executionMinutesDeleted": 0,
        "complete": 0}
    assert ids(owner_conn, "workflow_executions", "workflow_id", workflow["id"]) == set(old)
    assert run_retention(periods)["executionsDeleted"] >= 3  # (and any other test's old execution)
    assert ids(owner_conn, "workflow_executions", "workflow_id", workflow["id"]) == set()


def test_the_scheduled_function_reads_its_periods_from_the_settings(owner_conn, tenant, workflow, env):
    from dramac_dev.events import LocalContext
    from dramac_dev.functions_loader import get_handler

    env.set("RETENTION_EXECUTIONS_DAYS", "5")
    six_days = execution(owner_conn, tenant, workflow, age_days=6, status="completed")
    four_days = execution(owner_conn, tenant, workflow, age_days=4, status="completed")
    result = get_handler("retention")({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}},
                                      LocalContext("retention"))
    assert result["executionsDeleted"] >= 1 and result["complete"] == 1
    assert ids(owner_conn, "workflow_executions", "workflow_id", workflow["id"]) == {four_days}
    assert six_days not in ids(owner_conn, "workflow_executions", "site_id", tenant.site_id)
