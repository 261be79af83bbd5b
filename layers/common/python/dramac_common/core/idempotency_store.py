"""The ``Idempotency-Key`` store: Powertools idempotency with a persistence layer on our PostgreSQL.

A record is keyed by the route's scope and a hash of (principal, Idempotency-Key), so two callers
never share a key and one key may be used on two routes. The first request with a key runs and its
answer (status and body) is stored for 24 hours; a repeat with the same key and the same request
returns that answer without running again (and creates nothing). A repeat with a different request
is ``422 idempotency_key_reused``. A repeat that arrives while the first is still running waits for
it (up to ``DRAMAC_IDEMPOTENCY_WAIT_MS``, bounded by the Lambda's remaining time) and then answers
as a sequential repeat would: the stored answer, or, when the first failed, by running itself; only
when the first outlasts the wait is it ``409 idempotency_in_progress``. Failures (any 4xx/5xx) are
not stored, as Powertools does: the client may fix the request and retry with the same key.

This module imports Powertools' idempotency utility (which pulls in boto3): ``idempotency`` imports
it lazily, only for requests that carry a key.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from . import db

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.idempotency.hook import IdempotentHookFunction
    from aws_lambda_powertools.utilities.typing import LambdaContext
from .errors import ApiError, Conflict, ServiceUnavailable
from .settings import get_settings

EXPIRES_AFTER_SECONDS = 24 * 60 * 60
_RECORD_COLUMNS = "idempotency_key, status, expiry_timestamp, in_progress_expiry_timestamp, response_data, payload_hash"
_FIRST_POLL_S = 0.02
_MAX_POLL_S = 0.25


class IdempotencyKeyReused(ApiError):
    status = 422
    code = "idempotency_key_reused"


class PostgresPersistenceLayer(BasePersistenceLayer):
    """Powertools' persistence contract over ``public.idempotency_records`` (service role)."""

    @staticmethod
    def _to_record(row: dict[str, Any]) -> DataRecord:
        return DataRecord(
            idempotency_key=row["idempotency_key"], status=row["status"], expiry_timestamp=row["expiry_timestamp"],
            in_progress_expiry_timestamp=row["in_progress_expiry_timestamp"],
            response_data=row["response_data"] or "", payload_hash=row["payload_hash"] or "",
        )

    def _get_record(self, idempotency_key: str) -> DataRecord:
        with db.service_unit() as unit:
            row = unit.fetchone(f"SELECT {_RECORD_COLUMNS} FROM public.idempotency_records WHERE idempotency_key = %s",
                                (idempotency_key,))
        if row is None:
            raise IdempotencyItemNotFoundError
        return self._to_record(row)

    def _put_record(self, data_record: DataRecord) -> None:
        """Insert, or take over a record that expired (or whose in-progress run timed out)."""
        now = int(time.time())
        with db.service_unit() as unit:
            inserted = unit.fetchone(
                """
                INSERT INTO public.idempotency_records AS r
                  (idempotency_key, status, expiry_timestamp, in_progress_expiry_timestamp, payload_hash)
                VALUES (%(key)s, %(status)s, %(expiry)s, %(in_progress_expiry)s, %(hash)s)
                ON CONFLICT (idempotency_key) DO UPDATE
                  SET status = EXCLUDED.status, expiry_timestamp = EXCLUDED.expiry_timestamp,
                      in_progress_expiry_timestamp = EXCLUDED.in_progress_expiry_timestamp,
                      payload_hash = EXCLUDED.payload_hash, response_data = NULL, created_at = now()
                  WHERE r.expiry_timestamp < %(now)s
                     OR (r.status = 'INPROGRESS' AND r.in_progress_expiry_timestamp < %(now_ms)s)
                RETURNING idempotency_key
                """,
                {"key": data_record.idempotency_key, "status": data_record.status,
                 "expiry": data_record.expiry_timestamp, "in_progress_expiry": data_record.in_progress_expiry_timestamp,
                 "hash": data_record.payload_hash, "now": now, "now_ms": now * 1000},
            )
            if inserted is not None:
                return
            # a new statement, so a new snapshot: it sees the record whose insert made ours conflict
            existing = unit.fetchone(
                f"SELECT {_RECORD_COLUMNS} FROM public.idempotency_records WHERE idempotency_key = %s",
                (data_record.idempotency_key,),
            )
        if existing is None:  # removed meanwhile: Powertools reads again and retries
            raise IdempotencyItemAlreadyExistsError
        old = self._to_record(existing)
        self._validate_payload(data_payload=data_record, stored_data_record=old)
        raise IdempotencyItemAlreadyExistsError(old_data_record=old)

    def _update_record(self, data_record: DataRecord) -> None:
        with db.service_unit() as unit:
            unit.execute(
                """UPDATE public.idempotency_records SET status = %s, expiry_timestamp = %s, response_data = %s
                   WHERE idempotency_key = %s""",
                (data_record.status, data_record.expiry_timestamp, data_record.response_data,
                 data_record.idempotency_key),
            )

    def _delete_record(self, data_record: DataRecord) -> None:
        with db.service_unit() as unit:
            unit.execute("DELETE FROM public.idempotency_records WHERE idempotency_key = %s",
                         (data_record.idempotency_key,))


_store = PostgresPersistenceLayer()


class _FallbackContext:
    """Lambda context stand-in: lets an in-progress record expire after 30 s when none is available."""

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _mark_replayed(response: dict[str, Any], _record: DataRecord) -> dict[str, Any]:
    return {**response, "replayed": True}


def _wait_budget_s(lambda_context: Any) -> float:
    """How long a repeat may wait for the first request with its key: the configured wait, and
    never so long that this invocation would time out (one second is kept to answer)."""
    budget = get_settings().idempotency_wait_ms / 1000
    remaining = getattr(lambda_context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        budget = min(budget, remaining() / 1000 - 1)
    return max(0.0, budget)


def run_once(*, scope: str, principal: str, key: str, request: dict[str, Any], lambda_context: Any,
             action: Callable[[], dict[str, Any]],
             stored: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run ``action`` once per (scope, principal, key); its JSON-able result is stored and replayed.
    A replayed result carries ``"replayed": True``. ``stored`` may redact what is kept (a secret shown
    once); the first caller still gets the whole result."""
    config = IdempotencyConfig(
        event_key_jmespath="[principal, idempotencyKey]",
        payload_validation_jmespath="request",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=EXPIRES_AFTER_SECONDS,
        hash_function="sha256",
        lambda_context=cast("LambdaContext", lambda_context if lambda_context is not None else _FallbackContext()),
        response_hook=cast("IdempotentHookFunction", _mark_replayed),
    )
    fresh: list[dict[str, Any]] = []

    @idempotent_function(data_keyword_argument="payload", persistence_store=_store, config=config, key_prefix=scope)
    def once(payload: dict[str, Any]) -> dict[str, Any]:
        result = action()
        fresh.append(result)
        return stored(result) if stored else result

    deadline = time.monotonic() + _wait_budget_s(lambda_context)
    pause = _FIRST_POLL_S
    while True:
        try:
            result = once(payload={"principal": principal, "idempotencyKey": key, "request": request})
            return fresh[0] if fresh else result
        except IdempotencyValidationError as exc:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request; use a new key",
                code="idempotency_key_reused") from exc
        except IdempotencyAlreadyInProgressError as exc:
            # the twin of this request is running: wait for its answer, as a client retrying would
            if time.monotonic() + pause > deadline:
                raise Conflict("A request with this Idempotency-Key is still being processed; retry shortly",
                               code="idempotency_in_progress") from exc
            time.sleep(pause)
            pause = min(pause * 2, _MAX_POLL_S)
        except IdempotencyPersistenceLayerError as exc:
            raise ServiceUnavailable("Could not record the request; try again shortly",
                                     code="idempotency_unavailable") from exc
