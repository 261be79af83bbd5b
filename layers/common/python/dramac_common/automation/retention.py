"""Retention: deletes what the automation keeps only for a while, in bounded batches (functions/retention,
daily in AWS; ``dramac retention`` locally).

- Finished executions (``completed``, ``failed``, ``cancelled``) created before the executions period;
  their step logs go with them (foreign key ``ON DELETE CASCADE``). Pending, running and waiting
  executions are never deleted, whatever their age (a 30-day delay is legitimate).
- Step logs of executions kept longer (their inputs and outputs are the bulk), after the step-log period.
- Events of the events log created before the events period that the relay has sent (``dispatched_at``
  set) and that no unfinished execution still needs; an execution kept longer loses only its link
  (``event_id`` set NULL by the foreign key).
- Sites' executions per minute (admission's hourly volume, migration 0174) once over two hours old.
- The audit log is never pruned (append-only, by trigger).

Each batch is one transaction (``FOR UPDATE SKIP LOCKED``: two runs never fight over rows) that
deletes at most ``RETENTION_BATCH_SIZE`` rows; a run stops when nothing old is left, or when the
Lambda's time is nearly up (the next run continues). Periods and batch size are settings
(``RETENTION_EXECUTIONS_DAYS`` 30, ``RETENTION_STEP_LOGS_DAYS`` = executions, ``RETENTION_EVENTS_DAYS``
30, ``RETENTION_BATCH_SIZE`` 5000). Why batched deletes rather than monthly partitions: BENCHMARKS.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..core import db
from ..core.settings import get_settings

log = logging.getLogger(__name__)

STOP_WITH_MS_LEFT = 20_000


@dataclass(frozen=True)
class Periods:
    executions_days: int
    step_logs_days: int
    events_days: int
    batch_size: int

    @classmethod
    def from_settings(cls) -> Periods:
        s = get_settings()
        return cls(s.retention_executions_days, s.retention_step_logs_days or s.retention_executions_days,
                   s.retention_events_days, s.retention_batch_size)


_EXECUTIONS = """
    DELETE FROM public.workflow_executions WHERE id IN (
      SELECT id FROM public.workflow_executions
      WHERE status IN ('completed', 'failed', 'cancelled') AND created_at < now() - make_interval(days => %(days)s)
      ORDER BY created_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
"""

_STEP_LOGS = """
    DELETE FROM public.step_execution_logs WHERE id IN (
      SELECT l.id FROM public.step_execution_logs l
      JOIN public.workflow_executions e ON e.id = l.execution_id
      WHERE l.started_at < now() - make_interval(days => %(days)s)
        AND e.status IN ('completed', 'failed', 'cancelled')
      ORDER BY l.started_at LIMIT %(batch)s FOR UPDATE OF l SKIP LOCKED)
"""

_EVENTS = """
    DELETE FROM public.automation_events_log WHERE id IN (
      SELECT ev.id FROM public.automation_events_log ev
      WHERE ev.created_at < now() - make_interval(days => %(days)s) AND ev.dispatched_at IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM public.workflow_executions e
                        WHERE e.event_id = ev.id AND e.status IN ('pending', 'running', 'waiting'))
      ORDER BY ev.created_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
"""


_EXECUTION_MINUTES = """
    DELETE FROM private.site_execution_minutes WHERE (site_id, minute) IN (
      SELECT site_id, minute FROM private.site_execution_minutes WHERE minute < now() - interval '2 hours'
      ORDER BY minute LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
"""


def _prune(statement: str, days: int, batch: int, time_left: Callable[[], bool]) -> tuple[int, bool]:
    """Delete in batches; returns (rows deleted, whether everything old is gone)."""
    deleted = 0
    while time_left():
        with db.service_unit() as unit:
            count = unit.execute(statement, {"days": days, "batch": batch}).rowcount
        deleted += count
        if count < batch:
            return deleted, True
    return deleted, False


def run_retention(periods: Periods | None = None, remaining_ms: Callable[[], int] | None = None) -> dict[str, int]:
    """One run: executions (with their step logs), then step logs kept longer, then events, then the sites'
    executions per minute. Returns how many rows each deleted, and ``complete`` 1 when nothing old is left
    (0: the time ran out first)."""
    periods = periods or Periods.from_settings()
    deadline = time.monotonic() + 3600

    def time_left() -> bool:
        if remaining_ms is not None:
            return remaining_ms() > STOP_WITH_MS_LEFT
        return time.monotonic() < deadline

    executions, done_executions = _prune(_EXECUTIONS, periods.executions_days, periods.batch_size, time_left)
    step_logs, done_logs = _prune(_STEP_LOGS, periods.step_logs_days, periods.batch_size, time_left)
    events, done_events = _prune(_EVENTS, periods.events_days, periods.batch_size, time_left)
    minutes, done_minutes = _prune(_EXECUTION_MINUTES, 0, periods.batch_size, time_left)
    result = {"executionsDeleted": executions, "stepLogsDeleted": step_logs, "eventsDeleted": events,
              "executionMinutesDeleted": minutes,
              "complete": int(done_executions and done_logs and done_events and done_minutes)}
    log.info("retention run", extra=result)
    return result
