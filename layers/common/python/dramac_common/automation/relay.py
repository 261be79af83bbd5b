"""The outbox relay, run on a schedule: sends what a crash kept from the events queue.

- Events no processor has received (``dispatched_at`` is the processor's receipt, set by the statement
  that reads a batch's events): the process died between commit and send, SQS was unreachable, the
  message was dead-lettered unread, or it is still queued behind a backlog older than the grace. Sent,
  then marked, in one transaction that holds their rows locked (``FOR UPDATE SKIP LOCKED``), so two
  relays never send the same batch and each event is sent by the relay once. If the commit fails after
  the send, the events go again next time; the processor's unique (event, workflow) execution makes a
  second delivery harmless.
- Executions whose message was lost: waiting past their resume time, or unfinished with an expired
  lease (their worker died and the message was dead-lettered): a resume message is sent. An execution
  that keeps stalling at the same step (it kills its worker, or times out, every time) is not resumed
  forever: past ``AUTOMATION_MAX_RELAY_RESUMES`` resumes at one step it is marked failed with the reason.

Only rows older than a grace period are touched, so the request's own send is not raced: the grace
(60 s) is far above the under-a-second delivery of a queue at rest (docs/automation.md).
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


def max_resumes() -> int:
    return get_settings().automation_max_relay_resumes


def resume_lost_executions(grace_s: float | None = None, limit: int = BATCH) -> dict[str, int]:
    """Resume messages for stalled executions; those resumed too often at one step fail instead."""
    grace_s = grace_seconds() if grace_s is None else grace_s
    cap = max_resumes()
    with db.service_unit() as unit:
        due = dal.executions_to_resume(unit, grace_s, limit)
        exhausted = [r["id"] for r in due if r["relay_resumes"] > cap]
        failed = dal.fail_stalled_executions(unit, exhausted, cap)
        for row in failed:
            log.error("execution %s failed: %s", row["id"], row["error"])
        resume = [r["id"] for r in due if r["relay_resumes"] <= cap]
        # sent inside the transaction: if the send fails, the counts roll back with it
        if resume:
            queues.send_messages(queues.EVENTS, [{"executionId": str(e)} for e in resume])
    return {"resumed": len(resume), "failed": len(failed)}


def run_relay(grace_s: float | None = None) -> dict[str, int]:
    events = relay_undispatched_events(grace_s)
    executions = resume_lost_executions(grace_s)
    if events or executions["resumed"]:
        log.warning("relay sent %d undispatched event(s) and %d resume message(s)", events, executions["resumed"])
    return {"eventsSent": events, "executionsResumed": executions["resumed"], "executionsFailed": executions["failed"]}
