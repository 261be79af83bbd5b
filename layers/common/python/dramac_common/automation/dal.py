"""SQL of the automation tables: events, subscriptions, workflows, steps, executions, step logs,
variables and webhooks. Every function takes the caller's unit of work: the API's run as the user
(row-level security applies), the engine's and the relay's as the service.

Execution bookkeeping is built around two guards:
- ``workflow_executions`` is unique per (event, workflow): a redelivered event finds its executions;
- a lease (``lease_owner``, ``lease_expires_at``) lets one worker at a time run an execution; every
  step's transaction re-checks the lease and the position it is about to advance, in the same
  statement that writes the step's log row, so a step's database effects commit exactly once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from ..core.db import Unit


def _json(value: Any) -> Jsonb:
    return Jsonb(value, dumps=lambda v: json.dumps(v, default=str))


VariableWrites = dict[tuple[uuid.UUID, str], tuple[uuid.UUID, Any]]  # (workflow id, key) → (site id, value)

# ``set_variable`` for several variables (``%(variables)s``: ``_variable_rows``), a statement or a CTE of one
_SET_VARIABLES = """
    INSERT INTO public.workflow_variables (workflow_id, site_id, key, value)
    SELECT workflow_id, site_id, key, value
    FROM jsonb_to_recordset(%(variables)s) AS v(workflow_id uuid, site_id uuid, key text, value jsonb)
    ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"""


# Events ----------------------------------------------------------------------------------------

def load_event(unit: Unit, event_id: uuid.UUID | str) -> dict[str, Any] | None:
    return unit.fetchone(
        """SELECT id, site_id, agency_id, event_type, payload, source_module, source_entity_type,
                  source_entity_id, chain_depth, created_at
           FROM public.automation_events_log WHERE id = %s""",
        (event_id,),
    )


def load_events(unit: Unit, event_ids: list[uuid.UUID]) -> Any:
    """The events of a batch (a cursor: fetch after the pipeline's other statements are sent), marked
    received by the same statement: ``dispatched_at`` is set on those the queue delivered first (the
    request only sends them: ``automation.outbox``), so the relay leaves them alone once this commits."""
    return unit.execute(
        """WITH received AS (UPDATE public.automation_events_log SET dispatched_at = now()
                             WHERE id = ANY(%(events)s::uuid[]) AND dispatched_at IS NULL)
           SELECT id, site_id, agency_id, event_type, payload, source_module, source_entity_type,
                  source_entity_id, chain_depth, created_at
           FROM public.automation_events_log WHERE id = ANY(%(events)s::uuid[])""",
        {"events": event_ids},
    )


# The active subscriptions to each event's type whose workflow is active (``%(events)s``: a batch's event
# ids), each row naming its ``event_id``: the site's own for a site event; those of every site of the
# agency for an agency-level event (``site_id`` NULL). Two branches (one kind of event each) rather than
# one join on ``site = event's site OR site in the agency's``: each finds its subscriptions in their index
# by (site, event type), so the cost follows the batch, not how many sites subscribe to the same event type
# (with the OR, every active subscription to the type was read: 0.53 ms at 300 sites, four times a batch).
BATCH_SUBSCRIPTIONS = """
    SELECT ev.id AS event_id, s.workflow_id, s.filter, s.site_id
    FROM public.automation_events_log ev
    JOIN public.automation_event_subscriptions s ON s.site_id = ev.site_id AND s.event_type = ev.event_type
      AND s.is_active
    JOIN public.automation_workflows w ON w.id = s.workflow_id AND w.is_active
    WHERE ev.id = ANY(%(events)s::uuid[])
    UNION ALL
    SELECT ev.id, s.workflow_id, s.filter, s.site_id
    FROM public.automation_events_log ev
    JOIN public.sites site ON site.agency_id = ev.agency_id
    JOIN public.automation_event_subscriptions s ON s.site_id = site.id AND s.event_type = ev.event_type
      AND s.is_active
    JOIN public.automation_workflows w ON w.id = s.workflow_id AND w.is_active
    WHERE ev.id = ANY(%(events)s::uuid[]) AND ev.site_id IS NULL"""


def batch_subscriptions(unit: Unit, event_ids: list[uuid.UUID]) -> Any:
    """``BATCH_SUBSCRIPTIONS`` (a cursor: fetch after the pipeline's other statements are sent)."""
    return unit.execute(BATCH_SUBSCRIPTIONS, {"events": event_ids})


def subscribed_definitions(unit: Unit, event_ids: list[uuid.UUID]) -> Callable[[], tuple[
        dict[uuid.UUID, list[dict[str, Any]]], dict[uuid.UUID, dict[str, Any]]]]:
    """``workflow_definitions`` of every workflow subscribed to the events of a batch, sent now (pipeline
    mode) and read by calling the result: one statement, its steps' rows then its variables' per workflow."""
    rows = unit.execute(
        f"""WITH subscribed AS (SELECT DISTINCT workflow_id FROM ({BATCH_SUBSCRIPTIONS}) s)
            SELECT 'step' AS kind, st.id, st.workflow_id, st.position, st.step_type, st.config, st.secret_envelopes,
                   NULL::text AS key, NULL::jsonb AS value
            FROM public.workflow_steps st WHERE st.workflow_id IN (SELECT workflow_id FROM subscribed)
            UNION ALL
            SELECT 'variable', NULL, v.workflow_id, NULL, NULL, NULL, NULL, v.key, v.value
            FROM public.workflow_variables v WHERE v.workflow_id IN (SELECT workflow_id FROM subscribed)
            ORDER BY workflow_id, kind, position""",
        {"events": event_ids},
    )

    def read() -> tuple[dict[uuid.UUID, list[dict[str, Any]]], dict[uuid.UUID, dict[str, Any]]]:
        steps: list[dict[str, Any]] = []
        values: list[dict[str, Any]] = []
        for row in rows.fetchall():
            if row["kind"] == "step":
                steps.append({k: row[k] for k in ("id", "workflow_id", "position", "step_type", "config",
                                                  "secret_envelopes")})
            else:
                values.append(row)
        return _definitions(steps, values)

    return read


def batch_started(unit: Unit, event_ids: list[uuid.UUID]) -> Any:
    """The executions the events of a batch already have (a redelivery): ``event_id, workflow_id, status``."""
    return unit.execute(
        "SELECT event_id, workflow_id, status FROM public.workflow_executions WHERE event_id = ANY(%s::uuid[])",
        (event_ids,),
    )


def undispatched_events(unit: Unit, older_than_s: float, limit: int) -> list[uuid.UUID]:
    """Committed events never handed to the queue (locked until the relay's transaction ends)."""
    rows = unit.fetchall(
        """SELECT id FROM public.automation_events_log
           WHERE dispatched_at IS NULL AND created_at < now() - make_interval(secs => %s)
           ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED""",
        (older_than_s, limit),
    )
    return [r["id"] for r in rows]


def mark_dispatched(unit: Unit, event_ids: list[uuid.UUID]) -> None:
    unit.execute("UPDATE public.automation_events_log SET dispatched_at = now() WHERE id = ANY(%s)", (event_ids,))


# Executions ------------------------------------------------------------------------------------

EXECUTION_STATE = "id, workflow_id, site_id, event_id, status, next_position, context, started_at"

def start_batch_executions(unit: Unit, pairs: list[tuple[uuid.UUID, uuid.UUID]], owner: uuid.UUID,
                           lease_s: float) -> list[dict[str, Any]]:
    """Create the executions of a batch's (event, workflow) pairs (at most one per pair) and lease those
    this worker may run: the new ones, and earlier ones left unfinished by a worker whose lease expired.
    Rows are inserted in (event, workflow) order, so two workers given the same events in other orders wait
    on each other's rows in one order and never deadlock."""
    if not pairs:
        return []
    ordered = sorted(set(pairs))
    return unit.fetchall(
        f"""
        WITH started AS (
        INSERT INTO public.workflow_executions AS e
          (workflow_id, site_id, event_id, status, started_at, lease_owner, lease_expires_at, next_position)
        SELECT w.id, w.site_id, p.event_id, 'running', now(), %(owner)s, now() + make_interval(secs => %(lease)s),
               coalesce((SELECT min(s.position) FROM public.workflow_steps s WHERE s.workflow_id = w.id), 0)
        FROM unnest(%(events)s::uuid[], %(workflows)s::uuid[]) WITH ORDINALITY AS p(event_id, workflow_id, n)
        JOIN public.automation_workflows w ON w.id = p.workflow_id
        ORDER BY p.n
        ON CONFLICT (event_id, workflow_id) WHERE rerun_of IS NULL DO UPDATE
          SET status = 'running', lease_owner = EXCLUDED.lease_owner, lease_expires_at = EXCLUDED.lease_expires_at,
              started_at = coalesce(e.started_at, now()), updated_at = now()
          WHERE e.status IN ('pending', 'running') AND (e.lease_expires_at IS NULL OR e.lease_expires_at < now())
        RETURNING {EXECUTION_STATE}
        )
        SELECT {EXECUTION_STATE} FROM started
        """,
        {"owner": owner, "lease": lease_s, "events": [e for e, _ in ordered], "workflows": [w for _, w in ordered]},
    )


def insert_finished_executions(unit: Unit, rows: list[dict[str, Any]], owner: uuid.UUID, lease_s: float,
                               finished: list[dict[str, Any]], variables: VariableWrites | None = None) -> None:
    """A batch's new executions (ids chosen by the caller: ``id, event_id, workflow_id, site_id,
    next_position, status``), inserted in the state the steps the batch's transaction ran for them left
    them in, with those steps' log rows: one insert, not an insert and then ``finish_steps``'s update.
    ``finished`` holds ``finish_step``'s arguments for these executions, in the order the steps ran: an
    execution's last step decides its state (``status``, the row's, when none ran: ``completed`` for a
    workflow without steps), and one still running keeps its lease. One that an execution of the same
    (event, workflow) already holds is not inserted, nor are its logs, and the statement raises (40001,
    ``private.batch_guard``): the caller's transaction must not commit. Sent without waiting (pipeline mode)."""
    last: dict[uuid.UUID, dict[str, Any]] = {}
    outputs: dict[uuid.UUID, dict[str, Any]] = {}
    for f in finished:
        last[f["execution_id"]] = f
        steps = outputs.setdefault(f["execution_id"], {})
        if f["log_status"] == "completed":
            steps[str(f["step"]["position"])] = {"output": f["output"]}
    executions = []
    for r in rows:
        step = last.get(r["id"])
        status = (step.get("execution_status") or "running") if step else r["status"]
        executions.append({
            "id": r["id"], "workflow_id": r["workflow_id"], "site_id": r["site_id"], "event_id": r["event_id"],
            "status": status, "next_position": step["next_position"] if step else r["next_position"],
            "context": {"steps": outputs[r["id"]]} if step else {},
            "error": step.get("execution_error") if step else None,
            "resume_at": step.get("resume_at") if step else None, "leased": status == "running"})
    unit.execute(
        f"""
        WITH {_VARIABLES_CTE if variables else ""} entry AS ({_ENTRIES}), ex AS (
          INSERT INTO public.workflow_executions AS e
            (id, workflow_id, site_id, event_id, status, next_position, context, error, resume_at, started_at,
             completed_at, lease_owner, lease_expires_at)
          SELECT x.id, x.workflow_id, x.site_id, x.event_id, x.status, x.next_position, x.context, x.error,
                 x.resume_at, now(), CASE WHEN x.status IN ('completed', 'failed') THEN now() END,
                 CASE WHEN x.leased THEN %(owner)s::uuid END,
                 CASE WHEN x.leased THEN now() + make_interval(secs => %(lease)s) END
          FROM jsonb_to_recordset(%(executions)s) AS x(
            id uuid, workflow_id uuid, site_id uuid, event_id uuid, status text, next_position integer,
            context jsonb, error text, resume_at timestamptz, leased boolean)
          ON CONFLICT (event_id, workflow_id) WHERE rerun_of IS NULL DO NOTHING
          RETURNING e.id, e.site_id
        ), logged AS (
          INSERT INTO public.step_execution_logs
            (execution_id, step_id, site_id, position, step_type, status, input, output, error, attempts,
             started_at, completed_at, duration_ms)
          {_LOG_ROWS}
        ), skipped AS ({_SKIPPED_ROWS})
        SELECT private.batch_guard(count(*) = %(expected)s, 'another worker started one of the batch''s executions first')
        FROM ex
        """,
        {"entries": _json(_entries(finished)), "executions": _json(executions), "owner": owner, "lease": lease_s,
         "expected": len(executions), "variables": _variable_rows(variables) if variables else None},
    )


def claim_execution(unit: Unit, execution_id: uuid.UUID | str, owner: uuid.UUID, lease_s: float) -> dict[str, Any] | None:
    """Lease an execution that is due to continue: waiting and due, or unfinished with no live lease."""
    return unit.fetchone(
        f"""
        UPDATE public.workflow_executions SET
          status = 'running', resume_at = NULL, lease_owner = %(owner)s,
          lease_expires_at = now() + make_interval(secs => %(lease)s),
          started_at = coalesce(started_at, now()), updated_at = now()
        WHERE id = %(id)s AND (
          (status = 'waiting' AND resume_at <= now() + interval '1 second')
          OR (status IN ('pending', 'running') AND (lease_expires_at IS NULL OR lease_expires_at < now())))
        RETURNING {EXECUTION_STATE}
        """,
        {"id": execution_id, "owner": owner, "lease": lease_s},
    )


def execution_status(unit: Unit, execution_id: uuid.UUID | str) -> dict[str, Any] | None:
    return unit.fetchone(
        "SELECT id, status, resume_at, greatest(0, extract(epoch FROM resume_at - now()))::float AS wait_s "
        "FROM public.workflow_executions WHERE id = %s",
        (execution_id,),
    )


def workflow_definitions(unit: Unit, workflow_ids: list[uuid.UUID]) -> tuple[
        dict[uuid.UUID, list[dict[str, Any]]], dict[uuid.UUID, dict[str, Any]]]:
    """``workflow_steps`` and ``workflow_variables`` in one round trip."""
    with unit.conn.pipeline():
        steps = unit.execute(
            """SELECT id, workflow_id, position, step_type, config, secret_envelopes FROM public.workflow_steps
               WHERE workflow_id = ANY(%s) ORDER BY workflow_id, position""",
            (list(workflow_ids),),
        )
        values = unit.execute(
            "SELECT workflow_id, key, value FROM public.workflow_variables WHERE workflow_id = ANY(%s)",
            (list(workflow_ids),),
        )
        step_rows, value_rows = steps.fetchall(), values.fetchall()
    by_workflow, variables = _definitions(step_rows, value_rows)
    for workflow_id in workflow_ids:
        by_workflow.setdefault(workflow_id, [])
        variables.setdefault(workflow_id, {})
    return by_workflow, variables


def _definitions(step_rows: list[dict[str, Any]], value_rows: list[dict[str, Any]]) -> tuple[
        dict[uuid.UUID, list[dict[str, Any]]], dict[uuid.UUID, dict[str, Any]]]:
    by_workflow: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for row in step_rows:
        by_workflow.setdefault(row["workflow_id"], []).append(row)
    variables: dict[uuid.UUID, dict[str, Any]] = {}
    for row in value_rows:
        variables.setdefault(row["workflow_id"], {})[row["key"]] = row["value"]
    return by_workflow, variables


def step_log(unit: Unit, execution_id: uuid.UUID, position: int) -> dict[str, Any] | None:
    return unit.fetchone(
        """SELECT status, output, attempts, started_at,
                  (extract(epoch FROM now() - started_at) * 1000)::int AS elapsed_ms
           FROM public.step_execution_logs WHERE execution_id = %s AND position = %s""",
        (execution_id, position),
    )


def record_attempt(unit: Unit, *, execution_id: uuid.UUID, owner: uuid.UUID, lease_s: float, position: int,
                   step: dict[str, Any], input_: Any) -> dict[str, Any] | None:
    """Before an external effect (HTTP, e-mail): the step's log row as ``running``, committed, so a
    crash during the call is visible to the next delivery. Returns the previous log status (None
    the first time) and attempts so far, or None when this worker no longer holds the execution."""
    row = record_attempt_later(unit, execution_id=execution_id, owner=owner, lease_s=lease_s, position=position,
                               step=step, input_=input_).fetchone()
    return row if row and row["owned"] else None


def record_attempt_later(unit: Unit, *, execution_id: uuid.UUID, owner: uuid.UUID, lease_s: float, position: int,
                         step: dict[str, Any], input_: Any, guarded: bool = False) -> Any:
    """``record_attempt`` sent without waiting for its answer (pipeline mode): a cursor whose one row
    holds ``previous_status``, ``attempts`` and ``owned``; ``guarded``: the statement raises (40001,
    ``private.batch_guard``) when this worker no longer holds the execution, and the caller's transaction
    must not commit."""
    return unit.execute(
        """
        WITH ex AS (
          UPDATE public.workflow_executions SET lease_expires_at = now() + make_interval(secs => %(lease)s),
                 updated_at = now()
          WHERE id = %(execution)s AND lease_owner = %(owner)s AND status = 'running' AND next_position = %(position)s
          RETURNING id, site_id
        ), previous AS (
          SELECT status, attempts FROM public.step_execution_logs WHERE execution_id = %(execution)s AND position = %(position)s
        ), logged AS (
          INSERT INTO public.step_execution_logs
            (execution_id, step_id, site_id, position, step_type, status, input, attempts, started_at)
          SELECT ex.id, %(step_id)s, ex.site_id, %(position)s, %(step_type)s, 'running', %(input)s, 0, now() FROM ex
          ON CONFLICT (execution_id, position) DO UPDATE SET status = 'running', input = EXCLUDED.input
          RETURNING id
        )
        SELECT (SELECT status FROM previous) AS previous_status,
               coalesce((SELECT attempts FROM previous), 0) AS attempts,
               EXISTS (SELECT 1 FROM logged) AS owned,
               private.batch_guard(NOT %(guarded)s OR EXISTS (SELECT 1 FROM logged),
                                   'an execution of the batch was taken over') AS guard
        """,
        {"lease": lease_s, "execution": execution_id, "owner": owner, "position": position,
         "step_id": step["id"], "step_type": step["step_type"], "input": _json(input_), "guarded": guarded},
    )


def finish_step(
    unit: Unit,
    *,
    execution_id: uuid.UUID,
    workflow_id: uuid.UUID,
    owner: uuid.UUID,
    lease_s: float,
    step: dict[str, Any],
    next_position: int,
    log_status: str,
    input_: Any,
    output: Any,
    error: str | None,
    attempts: int,
    duration_ms: int,
    execution_status: str | None = None,
    execution_error: str | None = None,
    resume_at: datetime | None = None,
    skip_rest: bool = False,
) -> bool:
    """One statement: check the lease and position, advance the execution (and finish it when
    ``execution_status`` says so), write the step's log row, and mark later steps ``skipped`` when
    the execution stops early. False when this worker no longer holds the execution (nothing written)."""
    row = unit.fetchone(*_finish_step_statement(
        execution_id=execution_id, workflow_id=workflow_id, owner=owner, lease_s=lease_s, step=step,
        next_position=next_position, log_status=log_status, input_=input_, output=output, error=error,
        attempts=attempts, duration_ms=duration_ms, execution_status=execution_status,
        execution_error=execution_error, resume_at=resume_at, skip_rest=skip_rest))
    return bool(row and row["n"])


def _finish_step_statement(
    *,
    execution_id: uuid.UUID,
    workflow_id: uuid.UUID,
    owner: uuid.UUID,
    lease_s: float,
    step: dict[str, Any],
    next_position: int,
    log_status: str,
    input_: Any,
    output: Any,
    error: str | None,
    attempts: int,
    duration_ms: int,
    execution_status: str | None = None,
    execution_error: str | None = None,
    resume_at: datetime | None = None,
    skip_rest: bool = False,
) -> tuple[str, dict[str, Any]]:
    position = step["position"]
    step_context = {str(position): {"output": output}} if log_status == "completed" else {}
    release = execution_status is not None
    return (
        """
        WITH ex AS (
          UPDATE public.workflow_executions e SET
            next_position = %(next)s,
            context = jsonb_set(e.context, '{steps}', coalesce(e.context -> 'steps', '{}'::jsonb) || %(step_ctx)s),
            status = coalesce(%(status)s::text, e.status),
            completed_at = CASE WHEN %(status)s::text IN ('completed', 'failed') THEN now() ELSE e.completed_at END,
            error = coalesce(%(exec_error)s::text, e.error),
            resume_at = %(resume_at)s::timestamptz,
            lease_owner = CASE WHEN %(release)s THEN NULL ELSE e.lease_owner END,
            lease_expires_at = CASE WHEN %(release)s THEN NULL ELSE now() + make_interval(secs => %(lease)s) END,
            updated_at = now()
          WHERE e.id = %(execution)s AND e.lease_owner = %(owner)s AND e.status = 'running'
            AND e.next_position = %(position)s
          RETURNING e.id, e.site_id
        ), logged AS (
          INSERT INTO public.step_execution_logs AS l
            (execution_id, step_id, site_id, position, step_type, status, input, output, error, attempts,
             started_at, completed_at, duration_ms)
          SELECT ex.id, %(step_id)s, ex.site_id, %(position)s, %(step_type)s, %(log_status)s, %(input)s, %(output)s,
                 %(log_error)s, %(attempts)s, now() - make_interval(secs => %(duration_ms)s / 1000.0),
                 CASE WHEN %(log_status)s = 'running' THEN NULL ELSE now() END,
                 CASE WHEN %(log_status)s = 'running' THEN NULL ELSE %(duration_ms)s END
          FROM ex
          ON CONFLICT (execution_id, position) DO UPDATE SET
            status = EXCLUDED.status, input = EXCLUDED.input, output = EXCLUDED.output, error = EXCLUDED.error,
            attempts = EXCLUDED.attempts, completed_at = EXCLUDED.completed_at, duration_ms = EXCLUDED.duration_ms
          RETURNING l.id
        ), skipped AS (
          INSERT INTO public.step_execution_logs
            (execution_id, step_id, site_id, position, step_type, status, attempts, started_at, completed_at, duration_ms)
          SELECT ex.id, s.id, ex.site_id, s.position, s.step_type, 'skipped', 0, now(), now(), 0
          FROM ex JOIN public.workflow_steps s ON s.workflow_id = %(workflow)s AND s.position > %(position)s
          WHERE %(skip_rest)s
          ON CONFLICT (execution_id, position) DO NOTHING
        )
        SELECT count(*) AS n FROM logged
        """,
        {"next": next_position, "step_ctx": _json(step_context), "status": execution_status,
         "exec_error": execution_error, "resume_at": resume_at, "release": release, "lease": lease_s,
         "execution": execution_id, "owner": owner, "position": position, "step_id": step["id"],
         "step_type": step["step_type"], "log_status": log_status, "input": _json(input_), "output": _json(output),
         "log_error": error, "attempts": attempts, "duration_ms": duration_ms, "workflow": workflow_id,
         "skip_rest": skip_rest},
    )


def finish_steps(unit: Unit, owner: uuid.UUID, lease_s: float, finished: list[dict[str, Any]],
                 variables: VariableWrites | None = None) -> None:
    """``finish_step`` for every step a batch's transaction ran, in one statement sent without waiting
    (pipeline mode): it raises (40001, ``private.batch_guard``) unless it advanced every execution, that is
    unless one was taken over, and the caller's transaction must not commit. ``finished`` holds ``finish_step``'s arguments, in the order the steps ran; each execution's first
    step is checked against its lease and position, its last decides its state, and every step gets its
    log row (and, stopping early, the later steps theirs as ``skipped``). ``variables``: the transaction's
    ``set_variables``, written by the same statement."""
    unit.execute(
        f"""
        WITH {_VARIABLES_CTE if variables else ""} entry AS ({_ENTRIES}), first AS (
          SELECT DISTINCT ON (execution_id) execution_id, position FROM entry ORDER BY execution_id, n
        ), last AS (
          SELECT DISTINCT ON (execution_id) * FROM entry ORDER BY execution_id, n DESC
        ), outputs AS (
          SELECT execution_id, coalesce(jsonb_object_agg(position::text, jsonb_build_object('output', output))
                                          FILTER (WHERE log_status = 'completed'), '{{}}'::jsonb) AS steps
          FROM entry GROUP BY execution_id
        ), ex AS (
          UPDATE public.workflow_executions e SET
            next_position = last.next_position,
            context = jsonb_set(e.context, '{{steps}}', coalesce(e.context -> 'steps', '{{}}'::jsonb) || outputs.steps),
            status = coalesce(last.execution_status, e.status),
            completed_at = CASE WHEN last.execution_status IN ('completed', 'failed') THEN now() ELSE e.completed_at END,
            error = coalesce(last.execution_error, e.error),
            resume_at = last.resume_at,
            lease_owner = CASE WHEN last.execution_status IS NOT NULL THEN NULL ELSE e.lease_owner END,
            lease_expires_at = CASE WHEN last.execution_status IS NOT NULL THEN NULL
                                    ELSE now() + make_interval(secs => %(lease)s) END,
            updated_at = now()
          FROM first JOIN last USING (execution_id) JOIN outputs USING (execution_id)
          WHERE e.id = first.execution_id AND e.lease_owner = %(owner)s AND e.status = 'running'
            AND e.next_position = first.position
          RETURNING e.id, e.site_id
        ), logged AS (
          INSERT INTO public.step_execution_logs AS l
            (execution_id, step_id, site_id, position, step_type, status, input, output, error, attempts,
             started_at, completed_at, duration_ms)
          {_LOG_ROWS}
          ON CONFLICT (execution_id, position) DO UPDATE SET
            status = EXCLUDED.status, input = EXCLUDED.input, output = EXCLUDED.output, error = EXCLUDED.error,
            attempts = EXCLUDED.attempts, completed_at = EXCLUDED.completed_at, duration_ms = EXCLUDED.duration_ms
        ), skipped AS ({_SKIPPED_ROWS})
        SELECT private.batch_guard(count(*) = %(expected)s, 'an execution of the batch was taken over') FROM ex
        """,
        {"entries": _json(_entries(finished)), "owner": owner, "lease": lease_s,
         "expected": len({f["execution_id"] for f in finished}),
         "variables": _variable_rows(variables) if variables else None},
    )


# ``set_variables`` as the first CTE of ``finish_steps`` or ``insert_finished_executions``: a statement less
_VARIABLES_CTE = f"variables AS ({_SET_VARIABLES}),"

# ``finish_steps``' and ``insert_finished_executions``' steps (``entry``: ``_entries``, ``ex``: the executions
# written, ``id, site_id``): their log rows, and when one stopped its execution early, the later steps' as skipped
_ENTRIES = """
    SELECT * FROM jsonb_to_recordset(%(entries)s) AS x(
      n integer, execution_id uuid, workflow_id uuid, step_id uuid, position integer, step_type text,
      next_position integer, log_status text, input jsonb, output jsonb, log_error text, attempts integer,
      duration_ms integer, execution_status text, execution_error text, resume_at timestamptz, skip_rest boolean)"""
_LOG_ROWS = """
    SELECT ex.id, entry.step_id, ex.site_id, entry.position, entry.step_type, entry.log_status, entry.input,
           entry.output, entry.log_error, entry.attempts, now() - make_interval(secs => entry.duration_ms / 1000.0),
           CASE WHEN entry.log_status = 'running' THEN NULL ELSE now() END,
           CASE WHEN entry.log_status = 'running' THEN NULL ELSE entry.duration_ms END
    FROM entry JOIN ex ON ex.id = entry.execution_id"""
_SKIPPED_ROWS = """
    INSERT INTO public.step_execution_logs
      (execution_id, step_id, site_id, position, step_type, status, attempts, started_at, completed_at, duration_ms)
    SELECT ex.id, s.id, ex.site_id, s.position, s.step_type, 'skipped', 0, now(), now(), 0
    FROM entry JOIN ex ON ex.id = entry.execution_id
    JOIN public.workflow_steps s ON s.workflow_id = entry.workflow_id AND s.position > entry.position
    WHERE entry.skip_rest
    ON CONFLICT (execution_id, position) DO NOTHING"""


def _entries(finished: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``finish_step``'s arguments of a batch's steps as ``_ENTRIES`` reads them, numbered in the order they ran."""
    return [{"n": n, "execution_id": f["execution_id"], "workflow_id": f["workflow_id"], "step_id": f["step"]["id"],
             "position": f["step"]["position"], "step_type": f["step"]["step_type"],
             "next_position": f["next_position"], "log_status": f["log_status"], "input": f["input_"],
             "output": f["output"], "log_error": f["error"], "attempts": f["attempts"],
             "duration_ms": f["duration_ms"], "execution_status": f.get("execution_status"),
             "execution_error": f.get("execution_error"), "resume_at": f.get("resume_at"),
             "skip_rest": bool(f.get("skip_rest"))} for n, f in enumerate(finished)]


def finish_empty_execution(unit: Unit, execution_id: uuid.UUID, owner: uuid.UUID) -> None:
    unit.execute(
        """UPDATE public.workflow_executions SET status = 'completed', completed_at = now(), lease_owner = NULL,
                  lease_expires_at = NULL, updated_at = now()
           WHERE id = %s AND lease_owner = %s AND status = 'running'""",
        (execution_id, owner),
    )


def release_lease(unit: Unit, execution_id: uuid.UUID, owner: uuid.UUID) -> None:
    """Let another delivery continue at once (a worker stopping before its deadline)."""
    unit.execute(
        "UPDATE public.workflow_executions SET lease_expires_at = now(), updated_at = now() "
        "WHERE id = %s AND lease_owner = %s AND status = 'running'",
        (execution_id, owner),
    )


def executions_to_resume(unit: Unit, grace_s: float, limit: int) -> list[dict[str, Any]]:
    """Executions whose queue message must have been lost: waiting past their resume time, or
    unfinished with an expired lease (their worker crashed and the message went to the DLQ). Each is
    locked (``SKIP LOCKED``: two relays never take the same one) and its count of relay resumes at
    the same step is bumped (reset when it moved on since the last): ``relay_resumes``, ``position``."""
    return unit.fetchall(
        """
        WITH waiting AS (
          SELECT id FROM public.workflow_executions
          WHERE status = 'waiting' AND resume_at < now() - make_interval(secs => %(grace)s)
          ORDER BY resume_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        ), abandoned AS (
          SELECT id FROM public.workflow_executions
          WHERE status IN ('pending', 'running')
            AND coalesce(lease_expires_at, updated_at) < now() - make_interval(secs => %(grace)s)
          ORDER BY lease_expires_at LIMIT %(limit)s FOR UPDATE SKIP LOCKED
        )
        UPDATE public.workflow_executions e SET
          relay_resumes = CASE WHEN e.relay_resume_position = e.next_position THEN e.relay_resumes + 1 ELSE 1 END,
          relay_resume_position = e.next_position
        WHERE e.id IN (SELECT id FROM waiting UNION ALL SELECT id FROM abandoned)
        RETURNING e.id, e.site_id, e.workflow_id, e.next_position AS position, e.relay_resumes
        """,
        {"grace": grace_s, "limit": limit},
    )


def fail_stalled_executions(unit: Unit, execution_ids: list[uuid.UUID], max_resumes: int) -> list[dict[str, Any]]:
    """Give up on executions the relay resumed ``max_resumes`` times at the same step: failed, with the
    reason (and the step's last error, if it logged one); the stuck step's log row failed too, the
    later steps skipped."""
    if not execution_ids:
        return []
    return unit.fetchall(
        """
        WITH stuck AS (
          SELECT e.id, e.site_id, e.workflow_id, e.next_position, s.step_type, l.error AS last_error
          FROM public.workflow_executions e
          LEFT JOIN public.workflow_steps s ON s.workflow_id = e.workflow_id AND s.position = e.next_position
          LEFT JOIN public.step_execution_logs l ON l.execution_id = e.id AND l.position = e.next_position
          WHERE e.id = ANY(%(ids)s::uuid[]) AND e.status IN ('pending', 'running', 'waiting')
        ), failed AS (
          UPDATE public.workflow_executions e SET
            status = 'failed', completed_at = now(), resume_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
            updated_at = now(),
            error = format('stalled: the relay resumed it %%s times and it never got past step %%s (%%s)%%s; '
                           'gave up (AUTOMATION_MAX_RELAY_RESUMES)', %(max)s, stuck.next_position,
                           coalesce(stuck.step_type, 'no such step'),
                           coalesce(': last error: ' || stuck.last_error, ''))
          FROM stuck WHERE e.id = stuck.id
          RETURNING e.id, e.site_id, e.error
        ), step_failed AS (
          UPDATE public.step_execution_logs l SET status = 'failed', completed_at = now(),
                 error = coalesce(l.error, 'the execution stalled at this step')
          FROM stuck WHERE l.execution_id = stuck.id AND l.position = stuck.next_position AND l.status = 'running'
        ), skipped AS (
          INSERT INTO public.step_execution_logs
            (execution_id, step_id, site_id, position, step_type, status, attempts, started_at, completed_at,
             duration_ms)
          SELECT stuck.id, s.id, stuck.site_id, s.position, s.step_type, 'skipped', 0, now(), now(), 0
          FROM stuck JOIN public.workflow_steps s ON s.workflow_id = stuck.workflow_id
                                                  AND s.position > stuck.next_position
          ON CONFLICT (execution_id, position) DO NOTHING
        )
        SELECT id, site_id, error FROM failed
        """,
        {"ids": list(execution_ids), "max": max_resumes},
    )


# Variables ---------------------------------------------------------------------------------------

def set_variable(unit: Unit, workflow_id: uuid.UUID, site_id: uuid.UUID, key: str, value: Any) -> None:
    unit.execute(
        """INSERT INTO public.workflow_variables (workflow_id, site_id, key, value) VALUES (%s, %s, %s, %s)
           ON CONFLICT (workflow_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()""",
        (workflow_id, site_id, key, _json(value)),
    )


def _variable_rows(writes: VariableWrites) -> Jsonb:
    return _json([{"workflow_id": workflow_id, "site_id": site_id, "key": key, "value": value}
                  for (workflow_id, key), (site_id, value) in sorted(writes.items(),
                                                                     key=lambda w: (str(w[0][0]), w[0][1]))])


def set_variables(unit: Unit, writes: VariableWrites) -> None:
    """``set_variable`` for several variables in one statement."""
    unit.execute(_SET_VARIABLES, {"variables": _variable_rows(writes)})


def set_automation_depth(unit: Unit, depth: int) -> None:
    """Events written later in this transaction record ``depth`` as their chain depth."""
    unit.execute("SELECT set_config('dramac.automation_depth', %s, true)", (str(depth),))


# Workflows (the API) -----------------------------------------------------------------------------

_WORKFLOW_JSON = """
  jsonb_build_object(
    'id', w.id, 'siteId', w.site_id, 'name', w.name, 'description', w.description, 'isActive', w.is_active,
    'createdBy', w.created_by, 'createdAt', w.created_at, 'updatedAt', w.updated_at,
    'steps', coalesce((SELECT jsonb_agg(jsonb_build_object('id', s.id, 'position', s.position, 'type', s.step_type,
                                                           'config', s.config) ORDER BY s.position)
                       FROM public.workflow_steps s WHERE s.workflow_id = w.id), '[]'::jsonb),
    'subscription', (SELECT jsonb_build_object('id', sub.id, 'eventType', sub.event_type, 'filter', sub.filter,
                                               'isActive', sub.is_active)
                     FROM public.automation_event_subscriptions sub WHERE sub.workflow_id = w.id
                     ORDER BY sub.created_at LIMIT 1))
"""


def insert_workflow(unit: Unit, *, site_id: uuid.UUID, name: str, description: str, is_active: bool,
                    created_by: uuid.UUID | None, event_type: str, filter_: dict[str, Any],
                    steps: list[dict[str, Any]], workflow_id: uuid.UUID | None = None) -> uuid.UUID:
    """The workflow, its steps and its trigger subscription, in one statement (``workflow_id``: a
    chosen id, for the documented demo records; otherwise a new one)."""
    row = unit.fetchrow(
        """
        WITH wf AS (
          INSERT INTO public.automation_workflows (id, site_id, name, description, is_active, created_by)
          VALUES (coalesce(%(id)s::uuid, gen_random_uuid()), %(site)s, %(name)s, %(description)s, %(active)s,
                  %(by)s)
          RETURNING id, site_id, is_active
        ), st AS (
          INSERT INTO public.workflow_steps (workflow_id, site_id, position, step_type, config, secret_envelopes)
          SELECT wf.id, wf.site_id, s.position, s.step_type, s.config, coalesce(s.secret_envelopes, '{}')
          FROM wf, jsonb_to_recordset(%(steps)s)
            AS s(position integer, step_type text, config jsonb, secret_envelopes jsonb)
        ), sub AS (
          INSERT INTO public.automation_event_subscriptions (workflow_id, site_id, event_type, filter, is_active)
          SELECT wf.id, wf.site_id, %(event_type)s, %(filter)s, wf.is_active FROM wf
        )
        SELECT id FROM wf
        """,
        {"id": workflow_id, "site": site_id, "name": name, "description": description, "active": is_active,
         "by": created_by, "steps": _json(steps), "event_type": event_type, "filter": _json(filter_)},
    )
    workflow_id_: uuid.UUID = row["id"]
    return workflow_id_


def get_workflow(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID) -> dict[str, Any] | None:
    row = unit.fetchone(
        f"SELECT {_WORKFLOW_JSON} AS workflow FROM public.automation_workflows w WHERE w.site_id = %s AND w.id = %s",
        (site_id, workflow_id),
    )
    return row["workflow"] if row else None


def list_workflows(unit: Unit, site_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = unit.fetchall(
        f"SELECT {_WORKFLOW_JSON} AS workflow FROM public.automation_workflows w WHERE w.site_id = %s "
        "ORDER BY w.created_at, w.id",
        (site_id,),
    )
    return [r["workflow"] for r in rows]


def update_workflow(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID, *, name: str | None,
                    description: str | None, is_active: bool | None, event_type: str | None,
                    filter_: dict[str, Any] | None, steps: list[dict[str, Any]] | None) -> bool:
    """Change what was given; steps, when given, replace the workflow's steps. False: no such workflow."""
    row = unit.fetchone(
        """
        WITH wf AS (
          UPDATE public.automation_workflows SET
            name = coalesce(%(name)s, name), description = coalesce(%(description)s, description),
            is_active = coalesce(%(active)s, is_active)
          WHERE site_id = %(site)s AND id = %(id)s RETURNING id, site_id, is_active
        ), sub AS (
          UPDATE public.automation_event_subscriptions s SET
            event_type = coalesce(%(event_type)s, s.event_type), filter = coalesce(%(filter)s, s.filter),
            is_active = wf.is_active
          FROM wf WHERE s.workflow_id = wf.id
        )
        SELECT id FROM wf
        """,
        {"name": name, "description": description, "active": is_active, "site": site_id, "id": workflow_id,
         "event_type": event_type, "filter": _json(filter_) if filter_ is not None else None},
    )
    if row is None:
        return False
    if steps is not None:
        unit.execute("DELETE FROM public.workflow_steps WHERE workflow_id = %s", (workflow_id,))
        unit.execute(
            """INSERT INTO public.workflow_steps (workflow_id, site_id, position, step_type, config, secret_envelopes)
               SELECT %s, %s, s.position, s.step_type, s.config, coalesce(s.secret_envelopes, '{}')
               FROM jsonb_to_recordset(%s)
                 AS s(position integer, step_type text, config jsonb, secret_envelopes jsonb)""",
            (workflow_id, site_id, _json(steps)),
        )
    return True


def delete_workflow(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID) -> bool:
    row = unit.fetchone(
        "DELETE FROM public.automation_workflows WHERE site_id = %s AND id = %s RETURNING id", (site_id, workflow_id)
    )
    return row is not None


# Executions (the API) ----------------------------------------------------------------------------

_EXECUTION_JSON = """
  jsonb_build_object(
    'id', e.id, 'workflowId', e.workflow_id, 'siteId', e.site_id, 'eventId', e.event_id, 'status', e.status,
    'startedAt', e.started_at, 'completedAt', e.completed_at, 'resumeAt', e.resume_at, 'error', e.error,
    'createdAt', e.created_at, 'rerunOf', e.rerun_of, 'rerunFrom', e.rerun_from, 'cancelledBy', e.cancelled_by,
    'rerunId', (SELECT r.id FROM public.workflow_executions r WHERE r.rerun_of = e.id),
    'stopReason', e.stop_reason)
"""


def list_executions(unit: Unit, site_id: uuid.UUID, *, workflow_id: uuid.UUID | None, status: str | None,
                    limit: int, offset: int) -> list[dict[str, Any]]:
    rows = unit.fetchall(
        f"""SELECT {_EXECUTION_JSON} AS execution FROM public.workflow_executions e
            WHERE e.site_id = %(site)s AND (%(workflow)s::uuid IS NULL OR e.workflow_id = %(workflow)s)
              AND (%(status)s::text IS NULL OR e.status = %(status)s)
            ORDER BY e.created_at DESC, e.id LIMIT %(limit)s OFFSET %(offset)s""",
        {"site": site_id, "workflow": workflow_id, "status": status, "limit": limit, "offset": offset},
    )
    return [r["execution"] for r in rows]


def get_execution(unit: Unit, site_id: uuid.UUID, execution_id: uuid.UUID) -> dict[str, Any] | None:
    row = unit.fetchone(
        f"""SELECT {_EXECUTION_JSON} || jsonb_build_object(
              'event', (SELECT jsonb_build_object('id', ev.id, 'eventType', ev.event_type, 'payload', ev.payload,
                                                  'createdAt', ev.created_at)
                        FROM public.automation_events_log ev WHERE ev.id = e.event_id),
              'steps', coalesce((SELECT jsonb_agg(jsonb_build_object(
                  'id', l.id, 'stepId', l.step_id, 'position', l.position, 'type', l.step_type, 'status', l.status,
                  'input', l.input, 'output', l.output, 'error', l.error, 'attempts', l.attempts,
                  'startedAt', l.started_at, 'completedAt', l.completed_at, 'durationMs', l.duration_ms)
                  ORDER BY l.position)
                FROM public.step_execution_logs l WHERE l.execution_id = e.id), '[]'::jsonb)) AS execution
            FROM public.workflow_executions e WHERE e.site_id = %s AND e.id = %s""",
        (site_id, execution_id),
    )
    return row["execution"] if row else None


def cancel_execution(unit: Unit, site_id: uuid.UUID, execution_id: uuid.UUID) -> dict[str, Any]:
    """``private.cancel_execution`` (migration 0150): ``{"outcome": cancelled|not_found|finished, "status"}``."""
    result: dict[str, Any] = unit.call_write_path("cancel_execution", site_id, execution_id)
    return result


def rerun_execution(unit: Unit, site_id: uuid.UUID, execution_id: uuid.UUID, from_: str) -> dict[str, Any]:
    """``private.rerun_execution`` (migration 0150): ``{"outcome": created|not_found|not_rerunnable|
    already_rerun|no_steps, ...}``; created: ``id`` of the new pending execution."""
    result: dict[str, Any] = unit.call_write_path("rerun_execution", site_id, execution_id, from_)
    return result


# Webhooks ------------------------------------------------------------------------------------------

_WEBHOOK_COLUMNS = "id, site_id, workflow_id, name, event_type, is_active, created_at, last_received_at"


def insert_webhook(unit: Unit, *, site_id: uuid.UUID, name: str, event_type: str, workflow_id: uuid.UUID | None,
                   token_hash: str, webhook_id: uuid.UUID | None = None) -> dict[str, Any]:
    return unit.fetchrow(
        f"""INSERT INTO public.automation_webhooks (id, site_id, workflow_id, name, event_type, token_hash)
            VALUES (coalesce(%s::uuid, gen_random_uuid()), %s, %s, %s, %s, %s) RETURNING {_WEBHOOK_COLUMNS}""",
        (webhook_id, site_id, workflow_id, name, event_type, token_hash),
    )


def list_webhooks(unit: Unit, site_id: uuid.UUID) -> list[dict[str, Any]]:
    return unit.fetchall(
        f"SELECT {_WEBHOOK_COLUMNS} FROM public.automation_webhooks WHERE site_id = %s ORDER BY created_at, id",
        (site_id,),
    )


def delete_webhook(unit: Unit, site_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
    return unit.fetchone(
        "DELETE FROM public.automation_webhooks WHERE site_id = %s AND id = %s RETURNING id", (site_id, webhook_id)
    ) is not None


def webhook_by_token_hash(unit: Unit, token_hash: str) -> dict[str, Any] | None:
    return unit.fetchone(
        f"SELECT {_WEBHOOK_COLUMNS} FROM public.automation_webhooks WHERE token_hash = %s AND is_active",
        (token_hash,),
    )


def touch_webhook(unit: Unit, webhook_id: uuid.UUID, event_id: uuid.UUID) -> None:
    unit.execute(
        "UPDATE public.automation_webhooks SET last_received_at = now(), last_event_id = %s WHERE id = %s",
        (event_id, webhook_id),
    )


def workflow_exists(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID) -> bool:
    return unit.fetchone(
        "SELECT 1 AS ok FROM public.automation_workflows WHERE site_id = %s AND id = %s", (site_id, workflow_id)
    ) is not None
