"""Scheduled purges (EventBridge, every few minutes): deletes the site data of modules whose owners
asked for a purge once the grace period is over. Capability: ``dramac_common.installations`` (``purge``).

Each due installation is purged in its own transaction (the site's rows in the module's tables, its
widget storage, the installation; ``marketplace.module.purged``); one that fails is due again next run.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from dramac_common.installations import purge

logger = Logger(service="purger")


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    summary = purge.run_due_purges()
    logger.info("purges run", extra=summary)
    return {k: int(v) for k, v in summary.items()}
