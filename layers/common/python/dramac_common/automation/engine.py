"""The execution engine: an event → one execution per matching workflow → its steps, in order.

Exactly-once bookkeeping:
- ``workflow_executions`` is unique per (event, workflow), so however often (and however
  concurrently) an event is delivered, each workflow gets one execution.
- An execution is leased to one worker (``dal.start_executions`` / ``dal.claim_execution``); a
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

Delays never sleep: the execution turns ``waiting`` with ``resume_at`` and a resume message
``{"executionId"}`` is sent with ``DelaySeconds`` (at most 900; longer delays hop again). The relay
re-sends resume messages that were lost.
"""

from __future__ import annotations

import functools
import json
import logging
import time
import uuid
from collections.abc import Callable
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

    def template_context(self) -> dict[str, Any]:
        event = self.event
        return {
            "event": {"id": str(event.get("id")) if event.get("id") else None, "type": event.get("event_type"),
                      "siteId": str(self.site_id), "payload": event.get("payload") or {},
                      "createdAt": str(event.get("created_at")) if event.get("created_at") else None},
            "steps": self.context.setdefault("steps", {}),
            "variables": self.variables,
            "execution": {"id": str(self.id)},
            "workflow": {"id": str(self.workflow_id)},
        }


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

    # Entry points ------------------------------------------------------------------------------

    def process_event(self, event_id: uuid.UUID | str) -> Summary:
        summary = Summary()
        with db.service_unit() as unit:
            event = dal.load_event(unit, event_id)
            if event is None:
                log.warning("event %s not found (deleted with its site?); nothing to run", event_id)
                return summary
            matching = [s for s in dal.active_subscriptions(unit, event) if self._matches(s, event)]
            if event["chain_depth"] >= max_chain_depth():
                self._stop_loop(unit, event, matching)
                return summary
            workflow_ids = self._admit(unit, event, matching, summary)
            claimed = dal.start_executions(unit, event, workflow_ids, self.owner, self.lease_s)
            executions = self._load(unit, claimed, event)
        for execution in executions:
            self.run(execution)
            summary.add(execution)
        return summary

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

    @staticmethod
    def _admit(unit: db.Unit, event: dict[str, Any], matching: list[dict[str, Any]], summary: Summary) -> list[Any]:
        """The workflows to start now. New executions pass their site's limits (``admission``): over the
        concurrency limit they are queued, over the hourly volume recorded as not run. Executions this
        event already has (a redelivery) go on as before."""
        started = admission.started_workflows(unit, event["id"])
        run = [s["workflow_id"] for s in matching if s["workflow_id"] in started["running"]]
        by_site: dict[Any, list[Any]] = {}
        for s in matching:
            if s["workflow_id"] not in started["all"]:
                by_site.setdefault(s["site_id"], []).append(s["workflow_id"])
        for site_id, workflow_ids in by_site.items():
            decided = admission.admit(unit, site_id, workflow_ids)
            run += decided.run
            for execution_id in admission.queue_executions(unit, event, decided.queue):
                unit.after_commit(functools.partial(send_resume_after_commit, execution_id, admission.QUEUED_RETRY_S))
                summary.executions.append({"id": str(execution_id), "status": "queued"})
            if decided.refuse:
                hourly = decided.limits.max_executions_per_hour
                admission.record_stopped(
                    unit, event, decided.refuse, reason="volume_limit",
                    error=f"not run: the site started {hourly} executions in the last hour, its plan's limit")
                log.warning("site %s is over its hourly execution volume: %d not run", site_id, len(decided.refuse))
        return run

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
        steps = dal.workflow_steps(unit, workflow_ids)
        variables = dal.workflow_variables(unit, workflow_ids)
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

    def _open_secrets(self, execution: Execution, step: dict[str, Any]) -> connections.StepSecrets:
        """The step's connections and typed-in header values, opened just before it runs (most steps have none)."""
        if not connections.needs_secrets(step):
            return connections.StepSecrets()
        try:
            with db.service_unit() as unit:
                return connections.resolve_step_secrets(unit, execution.site_id, step)
        except connections.SecretsMissing as exc:
            raise StepFailed(str(exc)) from exc

    def _run_step(self, execution: Execution, step: dict[str, Any], next_position: int, is_last: bool,
                  started: float, secrets: connections.StepSecrets, hidden: list[str]) -> bool:
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
    def _call(definition: Any, runtime: StepRuntime, rendered: dict[str, Any], raw: dict[str, Any]) -> StepResult:
        """Run the step's executor; its output is written with every secret it used redacted (a receiver
        echoing a token back never puts it into the step log, the execution or a later step's templates)."""
        try:
            result: StepResult = definition.execute(runtime, rendered, raw)
            result.output = vault.redact(result.output, runtime.hidden)
            return result
        except StepFailed:
            raise
        except psycopg.Error as exc:
            if is_unavailable(exc):
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
            if not dal.finish_step(unit, execution_id=execution.id, workflow_id=execution.workflow_id, owner=self.owner,
                                   lease_s=self.lease_s, step=step, next_position=next_position,
                                   log_status="completed", input_=logged, output=result.output, error=None,
                                   attempts=result.attempts, duration_ms=_ms(started), **extra):
                raise LeaseLost()
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

    def _record(self, execution: Execution, step: dict[str, Any], rendered: dict[str, Any], result: StepResult,
                next_position: int, is_last: bool, started: float) -> None:
        extra = self._finish_args(execution, result, next_position, is_last)
        with db.service_unit() as unit:
            if not dal.finish_step(unit, execution_id=execution.id, workflow_id=execution.workflow_id, owner=self.owner,
                                   lease_s=self.lease_s, step=step, next_position=next_position,
                                   log_status="completed", input_=rendered, output=result.output, error=None,
                                   attempts=result.attempts, duration_ms=_ms(started), **extra):
                raise LeaseLost()
        execution.context.setdefault("steps", {})[str(step["position"])] = {"output": result.output}

    def _fail(self, execution: Execution, step: dict[str, Any], rendered: dict[str, Any], failure: StepFailed,
              started: float) -> None:
        message = f"step {step['position']} ({step['step_type']}) failed: {failure.message}"
        with db.service_unit() as unit:
            if not dal.finish_step(unit, execution_id=execution.id, workflow_id=execution.workflow_id, owner=self.owner,
                                   lease_s=self.lease_s, step=step, next_position=step["position"],
                                   log_status="failed", input_=rendered, output=None, error=failure.message,
                                   attempts=failure.attempts, duration_ms=_ms(started), execution_status="failed",
                                   execution_error=message, skip_rest=True):
                raise LeaseLost()
        execution.outcome = "failed"

    def _run_delay(self, execution: Execution, step: dict[str, Any], rendered: dict[str, Any], next_position: int,
                   is_last: bool) -> bool:
        with db.service_unit() as unit:
            previous = dal.step_log(unit, execution.id, step["position"])
            waited = previous is not None and previous["status"] == "running" and (previous["output"] or {}).get(
                "resumeAt")
            if previous is not None and waited:
                # Resumed: the wait is over (claim_execution only resumes due executions).
                output = {**previous["output"], "resumed": True}
                result = StepResult(output)
                extra = self._finish_args(execution, result, next_position, is_last)
                if not dal.finish_step(unit, execution_id=execution.id, workflow_id=execution.workflow_id,
                                       owner=self.owner, lease_s=self.lease_s, step=step, next_position=next_position,
                                       log_status="completed", input_=rendered, output=output, error=None, attempts=1,
                                       duration_ms=previous["elapsed_ms"], **extra):
                    raise LeaseLost()
                execution.context.setdefault("steps", {})[str(step["position"])] = {"output": output}
                return not is_last
            seconds = int(rendered.get("seconds") or 0)
            resume_at = datetime.now(UTC) + timedelta(seconds=seconds)
            output = {"seconds": seconds, "resumeAt": resume_at.isoformat()}
            if not dal.finish_step(unit, execution_id=execution.id, workflow_id=execution.workflow_id, owner=self.owner,
                                   lease_s=self.lease_s, step=step, next_position=step["position"],
                                   log_status="running", input_=rendered, output=output, error=None, attempts=1,
                                   duration_ms=0, execution_status="waiting", resume_at=resume_at):
                raise LeaseLost()
            unit.after_commit(lambda: send_resume_after_commit(execution.id, seconds))
        execution.outcome = "waiting"
        return False


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def handle_message(body: str | dict[str, Any], remaining_ms: Callable[[], int] | None = None) -> Summary:
    """One events-queue message: ``{"eventId"}`` (a new event) or ``{"executionId"}`` (a resume)."""
    message = json.loads(body) if isinstance(body, str) else body
    if not isinstance(message, dict):
        raise ValueError("an events-queue message is a JSON object")
    engine = Engine(remaining_ms)
    if message.get("eventId"):
        return engine.process_event(uuid.UUID(str(message["eventId"])))
    if message.get("executionId"):
        return engine.resume_execution(uuid.UUID(str(message["executionId"])))
    raise ValueError("an events-queue message carries 'eventId' or 'executionId'")
