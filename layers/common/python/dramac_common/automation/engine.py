"""The execution engine: an event → one execution per matching workflow → its steps, in order.

Exactly-once bookkeeping:
- ``workflow_executions`` is unique per (event, workflow), so however often (and however
  concurrently) an event is delivered, each workflow gets one execution.
- An execution is leased to one worker (``dal.start_batch_executions`` / ``dal.claim_execution``); a
  duplicate delivery that finds the lease held acknowledges its message: the holder's own message
  stays unacknowledged until it finishes, and comes back if that worker dies.
- Each step's log row is written by the statement that checks the lease and advances the
  execution, in the same transaction as the step's database effects (``set_variable``,
  ``create_record``, ``update_record``): they commit once, and a redelivery continues after them.
- External effects cannot join the transaction. The attempt is committed (log row ``running``)
  before the call and the result after it. A crash in between leaves the outcome unknown: an HTTP
  call is made again on the next delivery, with the same ``Idempotency-Key`` header
  (``<execution id>:<position>``) so the receiver can discard the repeat (at least once); an e-mail
  is not sent again, the step fails with "outcome unknown" (at most once).

Batches (``handle_batch``, the event processor's SQS batch): the events are admitted in one
transaction that also runs every execution's steps up to its first external call; the steps a shared
transaction ran are logged and their executions advanced by one statement (``dal.finish_steps``), its
guards checked before commit; the batch's new executions are inserted once their first steps ran, in the
state those left them in, with their log rows (``dal.insert_finished_executions``: one insert, no update).
The batch's external calls are then made at once on the container's threads (each site has at most its
running slots among them), and the next transaction records their results and goes on. A shared transaction that must not commit (a guard fails, a statement or a
database step is refused) is rolled back and its executions go on one at a time, a transaction per
step, so one event's trouble neither fails nor repeats another's.

Delays never sleep: the execution turns ``waiting`` with ``resume_at`` and a resume message
``{"executionId"}`` is sent with ``DelaySeconds`` (at most 900; longer delays hop again). The relay
re-sends resume messages that were lost.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from ..core import db, queues
from ..core.errors import database_error, is_unavailable
from ..core.settings import get_settings
from . import admission, connections, dal, filters, vault
from .steps import STEP_TYPES, Outcome, StepFailed, StepResult, StepRuntime
from .templates import render

log = logging.getLogger(__name__)

MAX_QUEUE_DELAY_S = 900
MAX_CHAIN_DEPTH = 5  # the default of AUTOMATION_MAX_CHAIN_DEPTH: events caused by workflows causing events… stop here


def max_chain_depth() -> int:
    return get_settings().automation_max_chain_depth


def lease_seconds() -> float:
    return get_settings().automation_lease_seconds


class LeaseLost(Exception):
    """Another worker took the execution over (this one was too slow): stop without writing."""


@dataclass
class Execution:
    id: uuid.UUID
    workflow_id: uuid.UUID
    site_id: uuid.UUID
    event: dict[str, Any]
    steps: list[dict[str, Any]]
    next_position: int
    context: dict[str, Any]
    variables: dict[str, Any]
    outcome: str = "running"
    inserted: bool = True  # False: new in a batch's first transaction, inserted once its steps ran there
    _fixed: dict[str, Any] | None = field(default=None, repr=False)  # the template context's unchanging part

    def template_context(self) -> dict[str, Any]:
        if self._fixed is None:
            event = self.event
            self._fixed = {
                "event": {"id": str(event.get("id")) if event.get("id") else None, "type": event.get("event_type"),
                          "siteId": str(self.site_id), "payload": event.get("payload") or {},
                          "createdAt": str(event.get("created_at")) if event.get("created_at") else None},
                "execution": {"id": str(self.id)},
                "workflow": {"id": str(self.workflow_id)},
            }
        return {**self._fixed, "steps": self.context.setdefault("steps", {}), "variables": self.variables}

    def snapshot(self) -> tuple[int, dict[str, Any], dict[str, Any], str]:
        """What a step changes in memory, to go back to when a batch's transaction is rolled back."""
        context = dict(self.context)
        context["steps"] = dict(self.context.get("steps") or {})
        return self.next_position, context, dict(self.variables), self.outcome

    def restore(self, saved: tuple[int, dict[str, Any], dict[str, Any], str]) -> None:
        self.next_position, self.context, variables, self.outcome = saved
        self.variables.clear()
        self.variables.update(variables)


@dataclass
class StepCall:
    """One step, rendered, about to run; for an external step in a batch also its attempt (read after
    the transaction that recorded it) and, once made, the call's result or failure."""

    execution: Execution
    step: dict[str, Any]
    definition: Any
    runtime: StepRuntime
    rendered: dict[str, Any]
    raw: dict[str, Any]
    logged: dict[str, Any]
    hidden: list[str]
    next_position: int
    is_last: bool
    started: float
    attempt: Any = None  # the cursor of dal.record_attempt_later, then its row
    result: StepResult | None = None
    failure: StepFailed | None = None
    error: BaseException | None = None  # not the step's failure: the execution's message comes back


class BatchRetry(Exception):
    """A batch's transaction must not commit (a lease was lost, a statement refused): it is rolled back
    and its executions go on one at a time."""


@dataclass
class Summary:
    executions: list[dict[str, str]] = field(default_factory=list)

    def add(self, execution: Execution) -> None:
        self.executions.append({"id": str(execution.id), "workflowId": str(execution.workflow_id),
                                "status": execution.outcome})


def send_resume(execution_id: uuid.UUID | str, delay_s: float = 0) -> None:
    queues.send_message(queues.EVENTS, {"executionId": str(execution_id)},
                        delay_seconds=max(0, min(MAX_QUEUE_DELAY_S, int(delay_s + 0.999))))


def send_resume_after_commit(execution_id: uuid.UUID | str, delay_s: float = 0) -> None:
    """After commit the state is safe in the database: a failed send is left to the relay's sweep."""
    try:
        send_resume(execution_id, delay_s)
    except Exception:  # the relay re-sends resume messages of due executions
        log.warning("resume message for %s not sent; the relay will send it", execution_id, exc_info=True)


class Engine:
    """Runs executions for one worker; ``remaining_ms`` is the Lambda's clock (None: unbounded)."""

    def __init__(self, remaining_ms: Callable[[], int] | None = None):
        self.owner = uuid.uuid4()
        self.remaining_ms = remaining_ms
        self.lease_s = lease_seconds()
        self._needs_secrets: dict[Any, bool] = {}  # by step id: a batch's executions share their steps

    # Entry points ------------------------------------------------------------------------------

    @staticmethod
    def _stop_loop(unit: db.Unit, event: dict[str, Any], matching: list[dict[str, Any]]) -> None:
        """An event this deep was caused by workflows triggering workflows: each workflow it would start
        gets an execution that says so, and nothing runs."""
        depth, limit = event["chain_depth"], max_chain_depth()
        error = (f"stopped: trigger loop detected: this {event['event_type']} event was caused by {depth} chained "
                 f"workflow steps (limit {limit}); a step of a workflow writes what triggers workflows again")
        stopped = admission.record_stopped(unit, event, [s["workflow_id"] for s in matching],
                                           reason="loop_detected", error=error)
        if stopped:
            log.warning("event %s is %d workflow steps deep: %d workflow(s) stopped as a trigger loop",
                        event["id"], depth, stopped)

    def resume_execution(self, execution_id: uuid.UUID | str) -> Summary:
        summary = Summary()
        with db.service_unit() as unit:
            if not admission.may_continue(unit, execution_id):
                # every running slot of its site is taken: ask again a little later
                unit.after_commit(lambda: send_resume_after_commit(execution_id, admission.QUEUED_RETRY_S))
                summary.executions.append({"id": str(execution_id), "status": "queued"})
                return summary
            row = dal.claim_execution(unit, execution_id, self.owner, self.lease_s)
            if row is None:
                state = dal.execution_status(unit, execution_id)
                if state and state["status"] == "waiting" and state["wait_s"] > 1:
                    # A delay longer than one queue hop: send the next hop.
                    unit.after_commit(lambda: send_resume_after_commit(execution_id, state["wait_s"]))
                return summary
            event = dal.load_event(unit, row["event_id"]) if row["event_id"] else None
            executions = self._load(unit, [row], event or {})
        for execution in executions:
            self.run(execution)
            summary.add(execution)
        return summary

    # Batches -------------------------------------------------------------------------------------

    def process_events(self, event_ids: list[uuid.UUID], *,
                       together: bool = True) -> dict[uuid.UUID, Summary | BaseException]:
        """The events of one SQS batch, together: admitted, and their steps run up to their first external
        call, in one transaction; the rest in a few transactions shared by the batch (``run_batch``). Each
        event's outcome: its summary, or the exception that sends its message back; one event's failure
        leaves the others' outcomes alone: when the first transaction fails, each event goes again alone,
        admitted in a transaction of its own (``together=False``), its steps run as ``run_batch`` does.

        A site whose running slots this batch's own executions fill runs its other executions in a next
        wave, once the first are done (as a sequential worker would); slots other workers hold queue them."""
        summaries = {event_id: Summary() for event_id in event_ids}
        outcomes: dict[uuid.UUID, Summary | BaseException] = {}
        waiting = list(event_ids)
        reconnected = False
        while waiting:
            try:
                executions, deferred, calls = self._admit_batch(waiting, summaries, first_steps=together)
            except Exception as exc:
                if isinstance(exc, db.ConnectionLost) and not reconnected:
                    reconnected = True  # closed while idle (between invocations): nothing ran; again, on a new one
                    continue
                if len(waiting) == 1 and not together:
                    outcomes[waiting[0]] = exc
                    break
                # Rolled back as a whole: each event alone, so that a bad one fails alone.
                log.warning("the first transaction of %d events failed; each goes again alone", len(waiting),
                            exc_info=True)
                for event_id in waiting:
                    [alone] = self.process_events([event_id], together=False).values()
                    if isinstance(alone, BaseException):
                        outcomes[event_id] = alone
                    else:
                        summaries[event_id].executions += alone.executions
                break
            failures = self.run_batch(executions, calls)
            for execution in executions:
                event_id = execution.event["id"]
                if execution.id in failures:
                    outcomes.setdefault(event_id, failures[execution.id])
                else:
                    summaries[event_id].add(execution)
            waiting = [e for e in deferred if e not in outcomes]
        return {event_id: outcomes.get(event_id, summaries[event_id]) for event_id in event_ids}

    def _admit_batch(self, event_ids: list[uuid.UUID], summaries: dict[uuid.UUID, Summary], *,
                     first_steps: bool) -> tuple[list[Execution], set[uuid.UUID], list[StepCall] | None]:
        """The first transaction of a batch: its events, their matching workflows, each site's admission,
        the executions started and loaded, and (``first_steps``) their steps up to their first external
        call (``_steps_in``; the sites stay locked until it commits, a few milliseconds). Returns the
        executions, the events that have executions left for a next wave, and the calls to make."""
        queued: dict[uuid.UUID, list[dict[str, str]]] = {}
        deferred: set[uuid.UUID] = set()
        with db.service_unit() as unit:
            # One round trip, the transaction's opening with it: the answers are read once the pipeline's end
            # has brought them all (read inside it, they would cost a round trip more: a flush, then the sync).
            with unit.pipeline():
                # the sites first: a worker admitting the same events waits here, then sees what that one started
                capacities_of = admission.site_capacities(unit, event_ids)
                found, subscribed, existing = (dal.load_events(unit, event_ids), dal.batch_subscriptions(unit, event_ids),
                                               dal.batch_started(unit, event_ids))
                definitions_of = dal.subscribed_definitions(unit, event_ids)
            events = {row["id"]: row for row in found.fetchall()}
            subscriptions, started = subscribed.fetchall(), existing.fetchall()
            capacities, definitions = capacities_of(), definitions_of()
            by_event: dict[uuid.UUID, list[dict[str, Any]]] = {}
            for row in subscriptions:
                by_event.setdefault(row["event_id"], []).append(row)
            run: list[tuple[uuid.UUID, uuid.UUID]] = []  # executions left unfinished by a worker that died
            new_by_site: dict[uuid.UUID, list[tuple[uuid.UUID, uuid.UUID]]] = {}
            for event_id in event_ids:
                event = events.get(event_id)
                if event is None:
                    log.warning("event %s not found (deleted with its site?); nothing to run", event_id)
                    continue
                matching = [s for s in by_event.get(event_id, []) if self._matches(s, event)]
                if event["chain_depth"] >= max_chain_depth():
                    self._stop_loop(unit, event, matching)
                    continue
                had = {r["workflow_id"]: r["status"] for r in started if r["event_id"] == event_id}
                run += [(event_id, s["workflow_id"]) for s in matching if had.get(s["workflow_id"]) == "running"]
                for s in matching:
                    if s["workflow_id"] not in had:
                        new_by_site.setdefault(s["site_id"], []).append((event_id, s["workflow_id"]))
            if new_by_site.keys() - capacities.keys():  # subscribed since the statement above read them
                raise BatchRetry("the batch's workflows changed while it was admitted")
            new: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]] = []  # (event, workflow, site)
            if new_by_site:
                for site_id, pairs in new_by_site.items():
                    capacity = capacities[site_id]
                    admitted, refused = pairs[:capacity.volume_left], pairs[capacity.volume_left:]
                    now, later = admitted[:capacity.slots], admitted[capacity.slots:]
                    new += [(event_id, workflow_id, site_id) for event_id, workflow_id in now]
                    if now:  # this batch's own executions hold the site's slots: the rest run after them
                        deferred |= {event_id for event_id, _ in later}
                    else:
                        self._queue(unit, events, later, queued)
                    if refused:
                        self._refuse(unit, events, refused, capacity)
                        log.warning("site %s is over its hourly execution volume: %d not run", site_id, len(refused))
            rows: list[dict[str, Any]]
            fresh: list[dict[str, Any]] = []
            if first_steps:
                # New executions get their ids here and are inserted once their first steps ran (``_steps_in``):
                # one a concurrent worker inserted first is not, and the transaction is rolled back.
                rows = dal.start_batch_executions(unit, run, self.owner, self.lease_s) if run else []
                fresh = self._new_executions(new, definitions)
                rows += fresh
            else:
                rows = dal.start_batch_executions(unit, run + [(e, w) for e, w, _ in new], self.owner, self.lease_s)
            executions = self._load_batch(unit, rows, events, definitions)
            fresh_ids = {row["id"] for row in fresh}
            for execution in executions:
                execution.inserted = execution.id not in fresh_ids
            order = {event_id: n for n, event_id in enumerate(event_ids)}
            executions.sort(key=lambda execution: order[execution.event["id"]])  # the batch's order: last write wins
            calls = None
            if first_steps:
                calls = self._steps_in(unit, [(execution, None) for execution in executions], fresh)
        for event_id, entries in queued.items():
            summaries[event_id].executions += entries
        return executions, deferred, calls

    @staticmethod
    def _new_executions(new: list[tuple[uuid.UUID, uuid.UUID, uuid.UUID]],
                        definitions: tuple[dict[uuid.UUID, list[dict[str, Any]]], dict[uuid.UUID, dict[str, Any]]],
                        ) -> list[dict[str, Any]]:
        """The rows of a batch's new (event, workflow, site) executions, in (event, workflow) order (two
        workers inserting the same ones wait on each other in one order: no deadlock)."""
        steps = definitions[0]
        return [{"id": uuid.uuid4(), "event_id": event_id, "workflow_id": workflow_id, "site_id": site_id,
                 "next_position": min((s["position"] for s in steps.get(workflow_id, [])), default=0), "context": {}}
                for event_id, workflow_id, site_id in sorted(new, key=lambda n: (str(n[0]), str(n[1])))]

    @staticmethod
    def _queue(unit: db.Unit, events: dict[uuid.UUID, dict[str, Any]], pairs: list[tuple[uuid.UUID, uuid.UUID]],
               queued: dict[uuid.UUID, list[dict[str, str]]]) -> None:
        for event_id, workflow_ids in _by_event(pairs).items():
            for execution_id in admission.queue_executions(unit, events[event_id], workflow_ids):
                unit.after_commit(functools.partial(send_resume_after_commit, execution_id, admission.QUEUED_RETRY_S))
                queued.setdefault(event_id, []).append({"id": str(execution_id), "status": "queued"})

    @staticmethod
    def _refuse(unit: db.Unit, events: dict[uuid.UUID, dict[str, Any]], pairs: list[tuple[uuid.UUID, uuid.UUID]],
                capacity: admission.SiteCapacity) -> None:
        hourly = capacity.limits.max_executions_per_hour
        for event_id, workflow_ids in _by_event(pairs).items():
            admission.record_stopped(
                unit, events[event_id], workflow_ids, reason="volume_limit",
                error=f"not run: the site started {hourly} executions in the last hour, its plan's limit")

    @staticmethod
    def _load_batch(unit: db.Unit, rows: list[dict[str, Any]], events: dict[uuid.UUID, dict[str, Any]],
                    definitions: tuple[dict[uuid.UUID, list[dict[str, Any]]], dict[uuid.UUID, dict[str, Any]]],
                    ) -> list[Execution]:
        if not rows:
            return []
        steps, variables = definitions
        missing = list({r["workflow_id"] for r in rows} - steps.keys())  # subscribed since they were read
        if missing:
            more_steps, more_variables = dal.workflow_definitions(unit, missing)
            steps, variables = {**steps, **more_steps}, {**variables, **more_variables}
        return [Execution(r["id"], r["workflow_id"], r["site_id"], events[r["event_id"]], steps[r["workflow_id"]],
                          r["next_position"], r["context"] or {}, dict(variables.get(r["workflow_id"]) or {}))
                for r in rows]

    def run_batch(self, executions: list[Execution],
                  calls: list[StepCall] | None = None) -> dict[uuid.UUID, BaseException]:
        """Run executions together: every step that stays in the database (conditions, database steps,
        delays, the attempt before an external call) in one transaction for all of them, then their
        external calls at once (each site's at most its running slots, as admitted), then one transaction
        recording those results and going on, until every execution stops. Each step's guard (lease and
        position, ``dal.finish_steps``) is checked before the shared transaction commits; if one fails or a
        statement is refused, that transaction is rolled back and its executions go on one at a time
        (``run``), so one execution's trouble never undoes or repeats another's. ``calls``: the first
        transaction already ran (``_admit_batch``), these are the calls it left. Returns the executions
        whose message must come back, with why."""
        failures: dict[uuid.UUID, BaseException] = {}
        if calls is None:
            calls = self._advance([(execution, None) for execution in executions], failures)
        while calls:
            self._call_all(calls)
            active: list[tuple[Execution, StepCall | None]] = []
            for call in calls:
                if call.error is not None:
                    failures[call.execution.id] = call.error
                else:
                    active.append((call.execution, call))
            calls = self._advance(active, failures) if active else []
        return failures

    def _advance(self, active: list[tuple[Execution, StepCall | None]],
                 failures: dict[uuid.UUID, BaseException]) -> list[StepCall]:
        """One shared transaction: record the calls made, run every execution on to its next external call
        (whose attempt it records) or its end. Returns the calls to make."""
        saved = {execution.id: execution.snapshot() for execution, _ in active}
        try:
            with db.service_unit() as unit:
                return self._steps_in(unit, active)
        except Exception:
            log.warning("a batch's transaction was rolled back; its %d executions go on one at a time", len(active),
                        exc_info=True)
            for execution, _ in active:
                execution.restore(saved[execution.id])
            for execution, made in active:
                try:
                    self._go_on_alone(execution, made)
                except Exception as exc:  # noqa: BLE001 - this execution's message comes back with it
                    failures[execution.id] = exc
            return []

    def _steps_in(self, unit: db.Unit, active: list[tuple[Execution, StepCall | None]],
                  fresh: list[dict[str, Any]] | None = None) -> list[StepCall]:
        """A batch's shared transaction (``_advance``): raises when it must not commit. ``fresh``: the rows
        of new executions (``_admit_batch``), inserted after their steps ran, in the state those left them in
        (``dal.insert_finished_executions``); one a concurrent worker inserted first is not, and the
        transaction is rolled back."""
        calls: list[StepCall] = []
        checks: list[dict[str, Any]] = []
        try:
            self._steps_queued(unit, active, fresh, calls, checks)
        except psycopg.errors.SerializationFailure as exc:  # a statement's guard (dal.batch_guard)
            raise BatchRetry(str(exc)) from exc
        for execution, _ in active:
            execution.inserted = True
        for call in calls:
            call.attempt = call.attempt.fetchone()
        return calls

    def _steps_queued(self, unit: db.Unit, active: list[tuple[Execution, StepCall | None]],
                      fresh: list[dict[str, Any]] | None, calls: list[StepCall], checks: list[dict[str, Any]]) -> None:
        """``_steps_in``'s pipeline: every execution's segment, then the statements that write what they did,
        then ``COMMIT``."""
        with _Pipeline(unit) as pipeline:
            for execution, made in active:
                call = self._segment(unit, pipeline, checks, execution, made)
                if call is not None:
                    calls.append(call)
            # Steps' rows first: the attempts and releases below check the positions they advance. Each statement
            # checks its own guard (it raises when a lease was lost or another worker inserted an execution
            # first), so COMMIT travels with them: one round trip, and nothing commits when a guard fails. The
            # transaction's variables are written by the first of them.
            variables = pipeline.variable_writes or None
            if fresh:
                new = {execution.id: execution for execution, _ in active if not execution.inserted}
                for row in fresh:  # its state when none of its steps ran: a workflow without steps is done
                    row["status"] = "completed" if new[row["id"]].outcome == "completed" else "running"
                dal.insert_finished_executions(unit, fresh, self.owner, self.lease_s,
                                               [c for c in checks if c["execution_id"] in new], variables)
                checks, variables = [c for c in checks if c["execution_id"] not in new], None
            if checks:
                dal.finish_steps(unit, self.owner, self.lease_s, checks, variables)
                variables = None
            if variables:
                dal.set_variables(unit, variables)
            for call in calls:
                call.attempt = dal.record_attempt_later(
                    unit, execution_id=call.execution.id, owner=self.owner, lease_s=self.lease_s,
                    position=call.step["position"], step=call.step, input_=call.logged, guarded=True)
            for execution, _ in active:
                if execution.outcome == "continued":  # too little time left: a fresh invocation goes on
                    dal.release_lease(unit, execution.id, self.owner)
                    unit.after_commit(functools.partial(send_resume_after_commit, execution.id))
            unit.queue_commit()

    def _go_on_alone(self, execution: Execution, made: StepCall | None) -> None:
        """An execution of a batch whose shared transaction failed: on its own, a transaction per step."""
        try:
            if made is not None:
                if made.failure is not None:
                    self._fail(execution, made.step, made.logged, made.failure, made.started)
                    return
                assert made.result is not None
                self._record(execution, made.step, made.logged, made.result, made.next_position, made.is_last,
                             made.started)
                if made.result.outcome is not Outcome.CONTINUE or made.is_last:
                    return
        except LeaseLost:
            log.warning("execution %s was taken over by another worker", execution.id)
            execution.outcome = "taken_over"
            return
        self.run(execution)

    def _segment(self, unit: db.Unit, pipeline: _Pipeline, checks: list[dict[str, Any]], execution: Execution,
                 made: StepCall | None) -> StepCall | None:
        """``run`` for one execution inside a batch's transaction, up to its next external call."""
        if made is not None:
            if made.failure is not None:
                self._fail(execution, made.step, made.logged, made.failure, made.started, unit, checks)
                return None
            assert made.result is not None
            self._record(execution, made.step, made.logged, made.result, made.next_position, made.is_last,
                         made.started, unit, checks)
            if made.result.outcome is not Outcome.CONTINUE or made.is_last:
                return None
        pending = [s for s in execution.steps if s["position"] >= execution.next_position]
        if not pending:
            if execution.inserted:  # a new one is inserted completed
                dal.finish_empty_execution(unit, execution.id, self.owner)
            execution.outcome = "completed"
            return None
        for index, step in enumerate(pending):
            if self._seconds_left() < 20:
                # Hand the rest to a fresh invocation rather than be killed mid-step (``_advance`` releases it).
                execution.outcome = "continued"
                return None
            is_last = index + 1 == len(pending)
            next_position = step["position"] + 1 if is_last else pending[index + 1]["position"]
            went_on = self._step_in_batch(unit, pipeline, checks, execution, step, next_position, is_last)
            if isinstance(went_on, StepCall):
                return went_on
            if not went_on:
                return None
        return None

    def _step_in_batch(self, unit: db.Unit, pipeline: _Pipeline, checks: list[dict[str, Any]], execution: Execution,
                       step: dict[str, Any], next_position: int, is_last: bool) -> bool | StepCall:
        """``run_step`` in a batch's transaction; an external step returns its call, to make after commit."""
        started = time.monotonic()
        try:
            secrets = self._open_secrets(execution, step, unit)
        except StepFailed as failure:
            self._fail(execution, step, {}, failure, started, unit, checks)
            return False
        with vault.redacting(secrets.hidden + list(secrets.headers.values())) as hidden:
            call = self._prepare(execution, step, next_position, is_last, started, secrets, hidden)
            definition = call.definition
            try:
                if definition is None:
                    raise StepFailed(f"unknown step type {step['step_type']!r}")
                if definition.kind == "delay":
                    return self._run_delay(execution, step, call.logged, next_position, is_last, unit, checks)
                if definition.kind == "external":
                    return call  # its attempt is recorded once the batch's steps are (``_advance``)
                if definition.kind == "database":
                    if definition.emits_events:
                        # Events the step's writes emit are one level deeper than the event that started it.
                        dal.set_automation_depth(unit, int(execution.event.get("chain_depth") or 0) + 1)
                    call.runtime.unit, call.runtime.variable_writes = unit, pipeline.variable_writes
                    with pipeline.paused(not definition.pipelined):
                        result = self._call(definition, call.runtime, call.rendered, call.raw, shared=True)
                else:
                    result = self._call(definition, call.runtime, call.rendered, call.raw)
            except StepFailed as failure:
                if definition is not None and definition.kind == "database":
                    # its writes so far must not commit: on its own, the step's transaction is rolled back
                    raise BatchRetry(f"a database step failed: {failure.message}") from failure
                failure.message = vault.redact_text(failure.message, call.hidden)
                self._fail(execution, step, call.logged, failure, started, unit, checks)
                return False
            self._record(execution, step, call.logged, result, next_position, is_last, started, unit, checks)
            return result.outcome is Outcome.CONTINUE and not is_last

    def _call_all(self, calls: list[StepCall]) -> None:
        """Make the batch's external calls at once, on the container's threads (``MAX_PARALLEL_CALLS``).
        Each site has at most its running slots among them: admission gave the batch no more."""
        if len(calls) == 1:
            self._make(calls[0])
        elif calls:
            list(_call_pool().map(self._make, calls))

    def _make(self, call: StepCall) -> None:
        """``_run_external``'s call, its attempt recorded by the batch's transaction."""
        definition, attempt = call.definition, call.attempt
        try:
            with vault.redacting(call.hidden):
                try:
                    call.runtime.previous_attempts = attempt["attempts"]
                    if attempt["previous_status"] == "running" and definition.at_most_once:
                        raise StepFailed(f"{definition.name}: outcome unknown: an earlier attempt was interrupted; "
                                         "not repeated, to avoid sending twice", attempts=attempt["attempts"])
                    result = self._call(definition, call.runtime, call.rendered, call.raw)
                    result.attempts += attempt["attempts"]
                    call.result = result
                except StepFailed as failure:
                    failure.message = vault.redact_text(failure.message, call.hidden)
                    call.failure = failure
        except Exception as exc:  # noqa: BLE001 - this execution's message comes back with it
            call.error = exc

    # Running -----------------------------------------------------------------------------------

    @staticmethod
    def _matches(subscription: dict[str, Any], event: dict[str, Any]) -> bool:
        try:
            return filters.matches(subscription["filter"], event["payload"] or {})
        except filters.FilterError:
            log.warning("workflow %s has an invalid filter; skipped", subscription["workflow_id"])
            return False

    @staticmethod
    def _load(unit: db.Unit, rows: list[dict[str, Any]], event: dict[str, Any]) -> list[Execution]:
        if not rows:
            return []
        workflow_ids = list({r["workflow_id"] for r in rows})
        steps, variables = dal.workflow_definitions(unit, workflow_ids)
        return [Execution(r["id"], r["workflow_id"], r["site_id"], event, steps[r["workflow_id"]], r["next_position"],
                          r["context"] or {}, dict(variables[r["workflow_id"]])) for r in rows]

    def _seconds_left(self) -> float:
        return self.remaining_ms() / 1000.0 if self.remaining_ms else 3600.0

    def run(self, execution: Execution) -> None:
        pending = [s for s in execution.steps if s["position"] >= execution.next_position]
        if not pending:
            with db.service_unit() as unit:
                dal.finish_empty_execution(unit, execution.id, self.owner)
            execution.outcome = "completed"
            return
        try:
            for index, step in enumerate(pending):
                if self._seconds_left() < 20:
                    # Hand the rest to a fresh invocation rather than be killed mid-step.
                    with db.service_unit() as unit:
                        dal.release_lease(unit, execution.id, self.owner)
                    send_resume(execution.id)
                    execution.outcome = "continued"
                    return
                next_position = pending[index + 1]["position"] if index + 1 < len(pending) else step["position"] + 1
                if not self.run_step(execution, step, next_position, is_last=index + 1 == len(pending)):
                    return
        except LeaseLost:
            log.warning("execution %s was taken over by another worker", execution.id)
            execution.outcome = "taken_over"

    def run_step(self, execution: Execution, step: dict[str, Any], next_position: int, *, is_last: bool) -> bool:
        """Run one step and record it; False when the execution stops here (failed, waiting, stopped)."""
        started = time.monotonic()
        try:
            secrets = self._open_secrets(execution, step)
        except StepFailed as failure:
            self._fail(execution, step, {}, failure, started)
            return False
        with vault.redacting(secrets.hidden + list(secrets.headers.values())) as hidden:
            return self._run_step(execution, step, next_position, is_last, started, secrets, hidden)

    def _open_secrets(self, execution: Execution, step: dict[str, Any],
                      unit: db.Unit | None = None) -> connections.StepSecrets:
        """The step's connections and typed-in header values, opened just before it runs (most steps have none)."""
        needed = self._needs_secrets.get(step["id"])
        if needed is None:
            needed = self._needs_secrets[step["id"]] = connections.needs_secrets(step)
        if not needed:
            return connections.StepSecrets()
        try:
            with _within(unit) as current:
                return connections.resolve_step_secrets(current, execution.site_id, step)
        except connections.SecretsMissing as exc:
            raise StepFailed(str(exc)) from exc

    def _prepare(self, execution: Execution, step: dict[str, Any], next_position: int, is_last: bool,
                 started: float, secrets: connections.StepSecrets, hidden: list[str]) -> StepCall:
        """The step rendered against the execution so far: what it is called with and what it logs."""
        definition = STEP_TYPES.get(step["step_type"])
        context = {**execution.template_context(), "connections": secrets.connections}
        raw = dict(step["config"] or {})
        if secrets.headers:
            raw["headers"] = {**(raw.get("headers") or {}), **secrets.headers}
        rendered = {k: (v if k in definition.raw_keys else render(v, context)) for k, v in raw.items()} if definition else {}
        if secrets.headers:  # a typed-in value may hold templates: what it renders to is the secret
            hidden = vault.secret_strings([*hidden, *(str(rendered["headers"].get(h)) for h in secrets.headers)])
        logged = vault.redact(rendered, hidden)
        runtime = StepRuntime(execution.id, execution.workflow_id, execution.site_id, step["position"], context,
                              execution.variables, budget_s=max(1.0, min(60.0, self._seconds_left() - 15)),
                              auth=secrets.auth, hidden=hidden)
        return StepCall(execution, step, definition, runtime, rendered, raw, logged, hidden, next_position, is_last,
                        started)

    def _run_step(self, execution: Execution, step: dict[str, Any], next_position: int, is_last: bool,
                  started: float, secrets: connections.StepSecrets, hidden: list[str]) -> bool:
        call = self._prepare(execution, step, next_position, is_last, started, secrets, hidden)
        definition, runtime, rendered, raw, logged, hidden = (call.definition, call.runtime, call.rendered, call.raw,
                                                              call.logged, call.hidden)
        try:
            if definition is None:
                raise StepFailed(f"unknown step type {step['step_type']!r}")
            if definition.kind == "delay":
                return self._run_delay(execution, step, logged, next_position, is_last)
            if definition.kind == "database":
                result = self._run_in_transaction(execution, step, definition, runtime, rendered, raw, next_position,
                                                  is_last, started, logged)
                return result.outcome is Outcome.CONTINUE and not is_last
            if definition.kind == "external":
                result = self._run_external(execution, step, definition, runtime, rendered, raw, logged)
            else:
                result = self._call(definition, runtime, rendered, raw)
        except StepFailed as failure:
            failure.message = vault.redact_text(failure.message, hidden)
            self._fail(execution, step, logged, failure, started)
            return False
        self._record(execution, step, logged, result, next_position, is_last, started)
        return result.outcome is Outcome.CONTINUE and not is_last

    @staticmethod
    def _call(definition: Any, runtime: StepRuntime, rendered: dict[str, Any], raw: dict[str, Any], *,
              shared: bool = False) -> StepResult:
        """Run the step's executor; its output is written with every secret it used redacted (a receiver
        echoing a token back never puts it into the step log, the execution or a later step's templates).
        ``shared``: the step runs in a batch's transaction, which a refused statement ends for every
        execution in it: the error goes up, and the batch runs again one execution at a time."""
        try:
            result: StepResult = definition.execute(runtime, rendered, raw)
            result.output = vault.redact(result.output, runtime.hidden)
            return result
        except StepFailed:
            raise
        except psycopg.Error as exc:
            if shared or is_unavailable(exc):
                raise  # an outage or a lost race: the message comes back and the step runs again
            log.exception("step %s: the database refused a statement", definition.name)
            refused = database_error(exc)
            raise StepFailed(f"{definition.name} failed: "
                             f"{refused.message if refused else 'unexpected database error'}") from exc
        except Exception as exc:  # a step's own error fails the step, readably
            log.exception("step %s raised", definition.name)
            raise StepFailed(f"{definition.name} failed: {type(exc).__name__}: {exc}") from exc

    def _finish_args(self, execution: Execution, result: StepResult, next_position: int,
                     is_last: bool) -> dict[str, Any]:
        if result.outcome is Outcome.STOP:
            execution.outcome = "completed"
            return {"execution_status": "completed", "skip_rest": True}
        if is_last:
            execution.outcome = "completed"
            return {"execution_status": "completed"}
        return {}

    def _run_in_transaction(self, execution: Execution, step: dict[str, Any], definition: Any, runtime: StepRuntime,
                            rendered: dict[str, Any], raw: dict[str, Any], next_position: int, is_last: bool,
                            started: float, logged: dict[str, Any]) -> StepResult:
        """A database step: its effect, its log row and the execution's advance commit together."""
        with db.service_unit() as unit:
            # Events the step's writes emit are one level deeper than the event that started it.
            dal.set_automation_depth(unit, int(execution.event.get("chain_depth") or 0) + 1)
            runtime.unit = unit
            result = self._call(definition, runtime, rendered, raw)
            extra = self._finish_args(execution, result, next_position, is_last)
            self._finish(unit, None, execution, step, next_position=next_position, log_status="completed",
                         input_=logged, output=result.output, error=None, attempts=result.attempts,
                         duration_ms=_ms(started), **extra)
        execution.context.setdefault("steps", {})[str(step["position"])] = {"output": result.output}
        return result

    def _run_external(self, execution: Execution, step: dict[str, Any], definition: Any, runtime: StepRuntime,
                      rendered: dict[str, Any], raw: dict[str, Any], logged: dict[str, Any]) -> StepResult:
        with db.service_unit() as unit:
            attempt = dal.record_attempt(unit, execution_id=execution.id, owner=self.owner, lease_s=self.lease_s,
                                         position=step["position"], step=step, input_=logged)
        if attempt is None:
            raise LeaseLost()
        runtime.previous_attempts = attempt["attempts"]
        if attempt["previous_status"] == "running" and definition.at_most_once:
            raise StepFailed(f"{definition.name}: outcome unknown: an earlier attempt was interrupted; "
                             "not repeated, to avoid sending twice", attempts=attempt["attempts"])
        result = self._call(definition, runtime, rendered, raw)
        result.attempts += attempt["attempts"]
        return result

    def _finish(self, unit: db.Unit, checks: list[dict[str, Any]] | None, execution: Execution, step: dict[str, Any],
                **values: Any) -> None:
        """Write the step's log row and advance the execution (``dal.finish_step``). ``checks`` (a batch's
        transaction): kept, to be written with the batch's other steps (``dal.finish_steps``) and checked
        before that transaction commits."""
        arguments = {"execution_id": execution.id, "workflow_id": execution.workflow_id, "owner": self.owner,
                     "lease_s": self.lease_s, "step": step, **values}
        if checks is not None:
            checks.append(arguments)
        elif not dal.finish_step(unit, **arguments):
            raise LeaseLost()
        execution.next_position = values["next_position"]

    def _record(self, execution: Execution, step: dict[str, Any], rendered: dict[str, Any], result: StepResult,
                next_position: int, is_last: bool, started: float, unit: db.Unit | None = None,
                checks: list[dict[str, Any]] | None = None) -> None:
        extra = self._finish_args(execution, result, next_position, is_last)
        with _within(unit) as current:
            self._finish(current, checks, execution, step, next_position=next_position, log_status="completed",
                         input_=rendered, output=result.output, error=None, attempts=result.attempts,
                         duration_ms=_ms(started), **extra)
        execution.context.setdefault("steps", {})[str(step["position"])] = {"output": result.output}

    def _fail(self, execution: Execution, step: dict[str, Any], rendered: dict[str, Any], failure: StepFailed,
              started: float, unit: db.Unit | None = None, checks: list[dict[str, Any]] | None = None) -> None:
        message = f"step {step['position']} ({step['step_type']}) failed: {failure.message}"
        with _within(unit) as current:
            self._finish(current, checks, execution, step, next_position=step["position"], log_status="failed",
                         input_=rendered, output=None, error=failure.message, attempts=failure.attempts,
                         duration_ms=_ms(started), execution_status="failed", execution_error=message,
                         skip_rest=True)
        execution.outcome = "failed"

    def _run_delay(self, execution: Execution, step: dict[str, Any], rendered: dict[str, Any], next_position: int,
                   is_last: bool, unit: db.Unit | None = None, checks: list[dict[str, Any]] | None = None) -> bool:
        with _within(unit) as current:
            previous = dal.step_log(current, execution.id, step["position"])
            waited = previous is not None and previous["status"] == "running" and (previous["output"] or {}).get(
                "resumeAt")
            if previous is not None and waited:
                # Resumed: the wait is over (claim_execution only resumes due executions).
                output = {**previous["output"], "resumed": True}
                result = StepResult(output)
                extra = self._finish_args(execution, result, next_position, is_last)
                self._finish(current, checks, execution, step, next_position=next_position, log_status="completed",
                             input_=rendered, output=output, error=None, attempts=1,
                             duration_ms=previous["elapsed_ms"], **extra)
                execution.context.setdefault("steps", {})[str(step["position"])] = {"output": output}
                return not is_last
            seconds = int(rendered.get("seconds") or 0)
            resume_at = datetime.now(UTC) + timedelta(seconds=seconds)
            output = {"seconds": seconds, "resumeAt": resume_at.isoformat()}
            self._finish(current, checks, execution, step, next_position=step["position"], log_status="running",
                         input_=rendered, output=output, error=None, attempts=1, duration_ms=0,
                         execution_status="waiting", resume_at=resume_at)
            current.after_commit(lambda: send_resume_after_commit(execution.id, seconds))
        execution.outcome = "waiting"
        return False


def _by_event(pairs: list[tuple[uuid.UUID, uuid.UUID]]) -> dict[uuid.UUID, list[uuid.UUID]]:
    grouped: dict[uuid.UUID, list[uuid.UUID]] = {}
    for event_id, workflow_id in pairs:
        grouped.setdefault(event_id, []).append(workflow_id)
    return grouped


MAX_PARALLEL_CALLS = 16  # a container's external calls in flight at once (a batch holds at most 10 events)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _call_pool() -> ThreadPoolExecutor:
    """The container's threads for external calls, started on first use and kept."""
    global _pool
    if _pool is None:
        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(MAX_PARALLEL_CALLS, thread_name_prefix="step-call")
    return _pool


class _Pipeline:
    """A batch's transaction in pipeline mode: statements whose answers are read later travel together, the
    transaction's opening with the first of them (``db.Unit.pipeline``). ``paused`` leaves it for a step whose
    executor reads as it goes (the module data SDK)."""

    def __init__(self, unit: db.Unit):
        self.unit = unit
        self._pipeline: Any = None
        # the transaction's set_variable writes, sent together (``dal.set_variables``)
        self.variable_writes: dal.VariableWrites = {}

    def __enter__(self) -> _Pipeline:
        self._on()
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        self._off(kind, value, traceback)

    def _on(self) -> None:
        self._pipeline = self.unit.pipeline()
        self._pipeline.__enter__()

    def _off(self, kind: Any = None, value: Any = None, traceback: Any = None) -> None:
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is None:
            return
        if kind is None:
            pipeline.__exit__(None, None, None)  # sends what is queued and reads every answer (raises a refusal)
        else:
            with suppress(psycopg.Error):
                pipeline.__exit__(kind, value, traceback)

    @contextmanager
    def paused(self, pause: bool = True) -> Iterator[None]:
        if not pause:
            yield
            return
        self._off()
        try:
            yield
        finally:
            self._on()


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


@contextmanager
def _within(unit: db.Unit | None) -> Iterator[db.Unit]:
    """``unit`` (a batch's transaction), or a transaction of its own."""
    if unit is not None:
        yield unit
        return
    with db.service_unit() as own:
        yield own


def _parse(body: str | dict[str, Any]) -> tuple[str, uuid.UUID]:
    """``("eventId" | "executionId", id)`` of an events-queue message; ValueError when it is neither."""
    message = json.loads(body) if isinstance(body, str) else body
    if not isinstance(message, dict):
        raise ValueError("an events-queue message is a JSON object")
    for key in ("eventId", "executionId"):
        if message.get(key):
            return key, uuid.UUID(str(message[key]))
    raise ValueError("an events-queue message carries 'eventId' or 'executionId'")


def handle_message(body: str | dict[str, Any], remaining_ms: Callable[[], int] | None = None) -> Summary:
    """One events-queue message: ``{"eventId"}`` (a new event) or ``{"executionId"}`` (a resume)."""
    [outcome] = handle_batch([body], remaining_ms)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def handle_batch(bodies: list[str | dict[str, Any]],
                 remaining_ms: Callable[[], int] | None = None) -> list[Summary | BaseException]:
    """The messages of one SQS batch, each's outcome in order: its summary, or the exception that sends it
    back to the queue. The batch's events run together (``Engine.process_events``); resumes one by one."""
    engine = Engine(remaining_ms)
    outcomes: list[Summary | BaseException | None] = [None] * len(bodies)
    events: dict[uuid.UUID, list[int]] = {}
    resumes: list[tuple[int, uuid.UUID]] = []
    for index, body in enumerate(bodies):
        try:
            kind, ident = _parse(body)
        except (ValueError, TypeError) as exc:
            outcomes[index] = exc
            continue
        if kind == "eventId":
            events.setdefault(ident, []).append(index)  # a message delivered twice in one batch runs once
        else:
            resumes.append((index, ident))
    if events:
        for event_id, outcome in engine.process_events(list(events)).items():
            for index in events[event_id]:
                outcomes[index] = outcome
    for index, execution_id in resumes:
        try:
            outcomes[index] = engine.resume_execution(execution_id)
        except Exception as exc:  # noqa: BLE001 - this message comes back with it
            outcomes[index] = exc
    return [o if o is not None else Summary() for o in outcomes]
