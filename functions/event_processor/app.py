"""Events-queue worker: each SQS message is an event to run workflows for (``{"eventId"}``) or an
execution to resume after a delay (``{"executionId"}``).

Batches are processed with Powertools' ``BatchProcessor``: a message that fails is reported in
``batchItemFailures`` and comes back alone; the rest of the batch is deleted. Redelivery is
harmless: one execution per (event, workflow), and completed steps are never run again
(``dramac_common.automation.engine``).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from dramac_common.automation import engine

logger = Logger(service="event_processor")
processor = BatchProcessor(event_type=EventType.SQS)
_context: Any = None


def _remaining_ms() -> int:
    return _context.get_remaining_time_in_millis() if _context is not None else 900_000


def record_handler(record: SQSRecord) -> dict[str, Any]:
    summary = engine.handle_message(record.body, remaining_ms=_remaining_ms)
    logger.info("message processed", extra={"messageId": record.message_id, "executions": summary.executions})
    return {"executions": summary.executions}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    global _context
    _context = context
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
