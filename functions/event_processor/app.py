"""Events-queue worker: each SQS message is an event to run workflows for (``{"eventId"}``) or an
execution to resume after a delay (``{"executionId"}``).

A batch's events run together (``dramac_common.automation.engine.handle_batch``: set-based admission,
shared transactions, external calls made at once). A message that fails is reported in
``batchItemFailures`` and comes back alone; the rest of the batch is deleted. Redelivery is harmless:
one execution per (event, workflow), and completed steps are never run again.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from dramac_common.automation import engine

logger = Logger(service="event_processor")
_context: Any = None


def _remaining_ms() -> int:
    return _context.get_remaining_time_in_millis() if _context is not None else 900_000


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    global _context
    _context = context
    records = event.get("Records") or []
    outcomes = engine.handle_batch([r.get("body") or "" for r in records], remaining_ms=_remaining_ms)
    failures = []
    for record, outcome in zip(records, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            logger.error("message failed; it comes back", extra={"messageId": record.get("messageId")},
                         exc_info=outcome)
            failures.append({"itemIdentifier": record["messageId"]})
        else:
            logger.info("message processed", extra={"messageId": record.get("messageId"),
                                                     "executions": outcome.executions})
    return {"batchItemFailures": failures}
