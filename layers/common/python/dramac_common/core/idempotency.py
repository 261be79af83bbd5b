"""``Idempotency-Key`` on the routes that create something new on every call.

Purchase, workflow create, webhook create, site API key create, event emission and module data
creation (``POST .../data/{table}`` and ``_batch``) honour the header the same way: a request with a
key runs once per (route, caller, key) and its answer is replayed to any repeat, with the header
``Idempotent-Replayed: true`` (see ``idempotency_store`` for the rules). Without a key each request is
a new request. Routes that already converge on one state (subscribe, install, disable, revoke,
markup, storage writes, the Paddle webhook) need no key: a repeat answers as a sequential repeat does.

Only requests that carry a key import the store (Powertools idempotency and boto3).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response

from .api import native_json
from .errors import ValidationFailed

HEADER = "idempotency-key"
REPLAYED_HEADER = "idempotent-replayed"
MAX_KEY_LENGTH = 255

Answer = tuple[int, Any]

# Declared on each route that honours it, so the OpenAPI document shows it (the value is read from the
# request by ``idempotent_response``).
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", description="Run this request once: a repeat with the same key (and the same "
    "request) answers the first answer again, with Idempotent-Replayed: true")]


def validate_idempotency_key(key: str) -> str:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters",
            code="invalid_idempotency_key",
        )
    return key


def request_key(request: Request, headers: Sequence[str] = (HEADER,)) -> str | None:
    """The request's idempotency key (the first of ``headers`` it carries), validated; None without one."""
    for name in headers:
        key = request.headers.get(name)
        if key is not None:
            return validate_idempotency_key(key)
    return None


def _envelope_text(data: Any) -> str:
    native = native_json(data)  # a model pydantic-core writes as jsonable_encoder would: 10x faster
    return native.decode() if native is not None else json.dumps(jsonable_encoder(data))


def idempotent_response(request: Request, *, scope: str, principal: str, fingerprint: dict[str, Any],
                        action: Callable[[], Answer], stored: Callable[[Any], Any] | None = None,
                        key_headers: Sequence[str] = (HEADER,),
                        data_json: Callable[[Any], str] = _envelope_text) -> Response:
    """Run ``action`` (which returns ``(status, data)``) once per Idempotency-Key, or every time
    without one. ``fingerprint`` is what makes two requests "the same" (the body and the path's ids);
    ``stored`` redacts the data kept for replays; ``key_headers`` are the headers that may carry the key;
    ``data_json`` writes the data as JSON text (the module data API's keeps numbers exact). The answer
    is kept as that text, so a replay is byte for byte what the first request answered."""
    key = request_key(request, key_headers)
    if key is None:
        status, data = action()
        return _response(status, data_json(data))
    from . import idempotency_store

    def act() -> dict[str, Any]:
        status, data = action()
        answer = {"statusCode": status, "data": data_json(data)}
        if stored:
            answer["stored"] = data_json(stored(jsonable_encoder(data)))
        return answer

    def redact(answer: dict[str, Any]) -> dict[str, Any]:
        return {"statusCode": answer["statusCode"], "data": answer.pop("stored", answer["data"])}

    answer = idempotency_store.run_once(
        scope=scope, principal=principal, key=key, request=fingerprint,
        lambda_context=request.scope.get("aws.context"), action=act, stored=redact if stored else None)
    response = _response(answer["statusCode"], answer["data"])
    if answer.get("replayed"):
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _response(status: int, data_text: str) -> Response:
    return Response('{"success": true, "data": ' + data_text + "}", status_code=status,
                    media_type="application/json")
