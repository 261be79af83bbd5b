"""Pieces of the purchase tests: signed Paddle notifications, and loopback HTTP servers (a Paddle API
stub, and a gateway that hands webhooks to the real handler)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WEBHOOK = "/api/webhooks/paddle"
SANDBOX_SECRET = "dramac-sandbox-paddle-webhook-secret"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def paddle_event(event_type: str, *, subscription_id: uuid.UUID | None = None, occurred_at: datetime | None = None,
                 event_id: str | None = None, data: dict[str, Any] | None = None,
                 agency_id: uuid.UUID | None = None) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    if subscription_id:
        custom["subscription_id"] = str(subscription_id)
    if agency_id:
        custom["agency_id"] = str(agency_id)
    default_id = "txn_" if event_type.startswith("transaction.") else "sub_"
    return {
        "event_id": event_id or f"evt_{uuid.uuid4().hex}",
        "event_type": event_type,
        "occurred_at": iso(occurred_at or datetime.now(UTC)),
        "notification_id": f"ntf_{uuid.uuid4().hex}",
        "data": {"id": f"{default_id}{uuid.uuid4().hex[:20]}", "status": "completed", "custom_data": custom,
                 **(data or {})},
    }


def latest_checkout(owner_conn: Any, subscription_id: uuid.UUID) -> dict[str, Any]:
    return owner_conn.execute(
        "SELECT id, provider_checkout_id, amount_cents, currency, status FROM payment_checkouts "
        "WHERE subscription_id = %s ORDER BY created_at DESC LIMIT 1", (subscription_id,)).fetchone()


def completed_event(owner_conn: Any, subscription_id: uuid.UUID, *, checkout: dict[str, Any] | None = None,
                    occurred_at: datetime | None = None, event_id: str | None = None,
                    transaction_id: str | None = None, total: int | None = None, tax: int = 0,
                    currency: str | None = None, paddle_subscription_id: str | None = "sub_01testpaddle",
                    agency_id: uuid.UUID | None = None, origin: str = "web") -> dict[str, Any]:
    """A ``transaction.completed`` as Paddle sends it for the subscription's latest checkout (or
    ``checkout``): its transaction id, its amount (plus ``tax`` on top) and currency, our ids in
    ``custom_data``; any of them can be overridden to make a payment we did not ask for."""
    checkout = checkout or latest_checkout(owner_conn, subscription_id)
    currency = currency or checkout["currency"]
    charged = checkout["amount_cents"] + tax if total is None else total
    event = paddle_event("transaction.completed", subscription_id=subscription_id, occurred_at=occurred_at,
                         event_id=event_id, agency_id=agency_id, data={
                             "id": transaction_id or checkout["provider_checkout_id"],
                             "origin": origin, "currency_code": currency,
                             "subscription_id": paddle_subscription_id,
                             "details": {"totals": {
                                 "subtotal": str(charged - tax), "discount": "0", "tax": str(tax),
                                 "total": str(charged), "credit": "0", "balance": "0",
                                 "grand_total": str(charged), "currency_code": currency}}})
    event["data"]["custom_data"]["checkout_id"] = str(checkout["id"])
    return event


def renewal_event(owner_conn: Any, subscription_id: uuid.UUID, *, paddle_subscription_id: str = "sub_01testpaddle",
                  **kw: Any) -> dict[str, Any]:
    """A renewal: a new transaction of the linked Paddle subscription (no checkout of ours opened it)."""
    return completed_event(owner_conn, subscription_id, transaction_id=f"txn_renewal_{uuid.uuid4().hex[:16]}",
                           paddle_subscription_id=paddle_subscription_id, origin="subscription_recurring", **kw)


def minutes_ago(n: float) -> datetime:
    return datetime.now(UTC) - timedelta(minutes=n)


def signed(event: dict[str, Any] | bytes, secret: str = SANDBOX_SECRET, *, ts: int | None = None,
           extra_h1: list[str] | None = None) -> tuple[bytes, dict[str, str]]:
    from dramac_common.payments.signature import compute_h1

    raw = event if isinstance(event, bytes) else json.dumps(event).encode()
    ts = int(time.time()) if ts is None else ts
    h1s = [compute_h1(secret, ts, raw), *(extra_h1 or [])]
    header = f"ts={ts};" + ";".join(f"h1={h}" for h in h1s)
    return raw, {"content-type": "application/json", "paddle-signature": header}


class Recorded:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []


@contextmanager
def loopback_server(respond: Callable[[str, str, dict[str, str], bytes], tuple[int, Any]]) -> Iterator[
        tuple[str, Recorded]]:
    """An HTTP server on 127.0.0.1 (a free port) answering with ``respond(method, path, headers, body)``."""
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # http.server's naming
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            recorded.requests.append({"method": "POST", "path": self.path, "headers": headers, "body": body})
            status, payload = respond("POST", self.path, headers, body)
            out = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()


def forward_to_function(name: str) -> Callable[[str, str, dict[str, str], bytes], tuple[int, Any]]:
    """A ``respond`` that hands the request to a function's real handler, as the gateway would."""
    from dramac_dev.events import LocalContext, call_handler, http_event
    from dramac_dev.functions_loader import get_handler

    handler = get_handler(name)

    def respond(method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        event = http_event(method, path, raw_body=body or None, headers=headers)
        result = call_handler(handler, event, LocalContext(name))
        return int(result["statusCode"]), json.loads(result.get("body") or "{}")

    return respond
