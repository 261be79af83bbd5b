"""Scheduled retention (EventBridge, daily): deletes finished executions with their step logs, older
step logs and sent events after their retention periods, in bounded batches
(``dramac_common.automation.retention``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from dramac_common.automation import retention

logger = Logger(service="retention")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    result = retention.run_retention(remaining_ms=context.get_remaining_time_in_millis)
    logger.info("retention run", extra=result)
    return result
