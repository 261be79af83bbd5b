"""Scheduled outbox relay (EventBridge, every minute): sends events that were committed but never
reached the events queue, and resume messages of executions whose message was lost
(``dramac_common.automation.relay``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from dramac_common.automation import relay

logger = Logger(service="relay")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = relay.run_relay()
    logger.info("relay run", extra=result)
    return result
