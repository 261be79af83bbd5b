"""The outbox relay, run on a schedule: sends what a crash kept from the events queue.

- Events committed but never dispatched (the process died between commit and send, or SQS was
  unreachable): sent, then marked dispatched, in one transaction that holds their rows locked
  (``FOR UPDATE SKIP LOCKED``), so two relays never send the same batch. If the commit fails after
  the send, the events go again next time; the processor's unique (event, workflow) execution makes
  that harmless.
- Executions whose message was lost: waiting past their resume time, or unfinished with an expired
  lease (their worker died and the message was dead-lettered): a resume message is sent.

Only rows older than a grace period are touched, so the normal after-commit send is not raced.
"""

from __future__ import annotations

import logging

from ..core import db, queues
from ..core.settings import get_settings
from . import dal

log = logging.getLogger(__name__)
BATCH = 500


def grace_seconds() -> float:
    return get_settings().automation_relay_grace_seconds


def relay_undispatched_events(grace_s: float | None = None, batch: int = BATCH) -> int:
    grace_s = grace_seconds() if grace_s is None else grace_s
    sent = 0
    while True:
        with db.service_unit() as unit:
            event_ids = dal.undispatched_events(unit, grace_s, batch)
            if event_ids:
                queues.send_messages(queues.EVENTS, [{"eventId": str(e)} for e in event_ids])
                dal.mark_dispatched(unit, event_ids)
        sent += len(event_ids)
        if len(event_ids) < batch:
            return sent


def resume_lost_executions(grace_s: float | None = None, limit: int = BATCH) -> int:
    grace_s = grace_seconds() if grace_s is None else grace_s
    with db.service_unit() as unit:
        execution_ids = dal.executions_to_resume(unit, grace_s, limit)
    if execution_ids:
        queues.send_messages(queues.EVENTS, [{"executionId": str(e)} for e in execution_ids])
    return len(execution_ids)


def run_relay(grace_s: float | None = None) -> dict[str, int]:
    events = relay_undispatched_events(grace_s)
    executions = resume_lost_executions(grace_s)
    if events or executions:
        log.warning("relay sent %d undispatched event(s) and %d resume message(s)", events, executions)
    return {"eventsSent": events, "executionsResumed": executions}
