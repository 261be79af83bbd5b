"""Provisioning worker, fed by the ``provision`` queue (SQS, partial batch responses).
Capability: ``dramac_common.provisioning``.

Messages (JSON): ``{"action": "provision", "moduleId": ..., "siteId"?, "installationId"?, "version"?}`` —
create or upgrade the module's schema (to ``version``, a published version a site upgrades to, or the
current one), activate its waiting installations and finish the upgrades waiting for it; ``{"action": "deprovision",
"moduleId"}`` — an operator drops the module's schema; ``{"action": "purge_site", "moduleId",
"siteId"}`` — an operator deletes one site's rows of the module.

Each record is one job (``provisioner.run_job``): permanent failures (invalid manifest, short-id
collision, destructive upgrade) fail the installations at once and are not retried; other failures
are reported as batch item failures and retried, and on the last allowed receive
(``PROVISION_MAX_RECEIVES``, the queue's maxReceiveCount) the installations are marked failed before
the message goes to the dead-letter queue.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from dramac_common.core.settings import get_settings
from dramac_common.core.wire import CamelModel
from dramac_common.provisioning import provisioner
from pydantic import ConfigDict, ValidationError

logger = Logger(service="provision")
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class ProvisionJob(CamelModel):
    """A provision queue message (camelCase on the queue, as on the wire)."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["provision", "deprovision", "purge_site"] = "provision"
    module_id: uuid.UUID
    site_id: uuid.UUID | None = None
    installation_id: uuid.UUID | None = None
    version: str | None = None  # provision this published version (a site's upgrade), not the current one


def max_receives() -> int:
    return get_settings().provision_max_receives


def record_handler(record: SQSRecord) -> dict[str, Any]:
    try:
        job = ProvisionJob.model_validate_json(record.body)
    except ValidationError as exc:
        # A malformed message can never succeed: log it and let it go (no retry, nothing to mark).
        logger.error("malformed provision message dropped", extra={"message_id": record.message_id,
                                                                   "errors": exc.errors(include_url=False)})
        return {"status": "dropped"}
    receive_count = int(record.attributes.approximate_receive_count or 1)
    outcome = provisioner.run_job(job.action, job.module_id, site_id=job.site_id, version=job.version,
                                  receive_count=receive_count,
                                  max_receives=max_receives())
    logger.info("provision job finished", extra={"action": job.action, "module_id": str(job.module_id),
                                                 "status": outcome.status, **outcome.detail})
    return {"status": outcome.status, **outcome.detail}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                    context=context)
