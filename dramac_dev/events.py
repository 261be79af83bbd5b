"""Builds the Lambda events AWS would send: API Gateway HTTP API (payload v2) and SQS.

The local gateway, the pollers, ``dramac invoke`` fixtures and the tests all build events here,
so every handler is always exercised with the event shape it gets in AWS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlencode


def http_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: bytes | str | None = None,
    query: dict[str, str] | str | None = None,
    headers: dict[str, str] | None = None,
    claims: dict[str, Any] | None = None,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway v2 event. ``body`` is JSON-encoded; ``raw_body`` is sent as given."""
    if route_key is None:
        from .routes import match

        found = match(method, path)
        if found:
            route_key = found[0].route_key
            path_parameters = path_parameters if path_parameters is not None else found[1]
        else:
            route_key = "$default"
    lower_headers = {k.lower(): v for k, v in (headers or {}).items()}
    payload: str | None = None
    is_base64 = False
    if raw_body is not None:
        if isinstance(raw_body, bytes):
            try:
                payload = raw_body.decode("utf-8")
            except UnicodeDecodeError:
                payload, is_base64 = base64.b64encode(raw_body).decode("ascii"), True
        else:
            payload = raw_body
    elif body is not None:
        payload = json.dumps(body)
        lower_headers.setdefault("content-type", "application/json")
    if payload is not None:
        lower_headers.setdefault("content-length", str(len(payload.encode("utf-8"))))
    raw_query = query if isinstance(query, str) else urlencode(query or {}, doseq=True)
    query_params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        query_params[key] = f"{query_params[key]},{value}" if key in query_params else value
    now = time.time()
    request_context: dict[str, Any] = {
        "accountId": "000000000000",
        "apiId": "local",
        "domainName": lower_headers.get("host", "localhost"),
        "domainPrefix": "local",
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": lower_headers.get("user-agent", ""),
        },
        "requestId": request_id or uuid.uuid4().hex,
        "routeKey": route_key,
        "stage": "$default",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }
    if claims is not None:
        request_context["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": lower_headers,
        "requestContext": request_context,
        "isBase64Encoded": is_base64,
    }
    cookies = lower_headers.pop("cookie", None)
    if cookies:
        event["cookies"] = [c.strip() for c in cookies.split(";") if c.strip()]
    if query_params:
        event["queryStringParameters"] = query_params
    if path_parameters:
        event["pathParameters"] = path_parameters
    if payload is not None:
        event["body"] = payload
    return event


def sqs_record(body: str, *, queue_arn: str, message_id: str | None = None, receive_count: int = 1,
               receipt_handle: str | None = None) -> dict[str, Any]:
    message_id = message_id or str(uuid.uuid4())
    now_ms = str(int(time.time() * 1000))
    return {
        "messageId": message_id,
        "receiptHandle": receipt_handle or message_id,
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": now_ms,
            "SenderId": "000000000000",
            "ApproximateFirstReceiveTimestamp": now_ms,
        },
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode("utf-8")).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": queue_arn.split(":")[3] if queue_arn.count(":") >= 4 else "us-east-1",
    }


def sqs_event(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": records}


PADDLE_WEBHOOK_ROUTE = "POST /api/webhooks/paddle"


def sign_paddle_webhook(function: str, event: dict[str, Any], *, now: int | None = None) -> dict[str, Any]:
    """The event with its ``Paddle-Signature`` made again, as Paddle would sign the same body now with
    the secret this machine's purchase function verifies with (``PADDLE_WEBHOOK_SECRET``, or the
    sandbox's documented default). Raises ValueError for anything but a Paddle webhook sample."""
    from dramac_common.payments.config import get_payment_config
    from dramac_common.payments.signature import sign

    if function != "purchase" or event.get("routeKey") != PADDLE_WEBHOOK_ROUTE:
        raise ValueError(f"signPaddleWebhook applies to the purchase function's {PADDLE_WEBHOOK_ROUTE} events only")
    secret = get_payment_config().webhook_secret
    if not secret:
        raise ValueError("signPaddleWebhook needs PADDLE_WEBHOOK_SECRET (or PAYMENT_PROVIDER=sandbox)")
    body = event.get("body") or ""
    raw = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode("utf-8")
    headers = {k: v for k, v in (event.get("headers") or {}).items() if k.lower() != "paddle-signature"}
    headers["paddle-signature"] = sign(secret, raw, ts=int(time.time()) if now is None else now)
    return {**event, "headers": headers}


class LocalContext:
    """The parts of the Lambda context object that handlers and Powertools read."""

    def __init__(self, function_name: str, timeout_s: int = 30, memory_mb: int = 512):
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:000000000000:function:{function_name}"
        self.memory_limit_in_mb = memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def call_handler(handler: Any, event: dict[str, Any], context: Any) -> Any:
    """Invoke a handler from any thread. Lambda calls handlers on a thread with an event loop
    (Mangum relies on one); the local gateway's worker threads get their own, once."""
    import asyncio

    try:
        asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())
    return handler(event, context)
