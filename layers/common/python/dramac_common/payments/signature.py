"""Paddle webhook signatures: ``Paddle-Signature: ts=<unix seconds>;h1=<hex>[;h1=<hex>...]``.

``h1 = HMAC-SHA256(secret, "<ts>:<raw body>")``, compared in constant time against every ``h1``
(Paddle sends one per active secret while a secret is rotated). ``ts`` must lie within
``tolerance`` seconds of now, either way (default 300 s): an old capture cannot be replayed later,
and a replay inside the window is a duplicate ``event_id``, which is a no-op.
"""

from __future__ import annotations

import hashlib
import hmac
import time

DEFAULT_TOLERANCE_SECONDS = 300
MAX_TS_DIGITS = 12  # unix seconds have 10 digits until the year 2286; more is not a timestamp


class SignatureError(Exception):
    """The request is not a webhook signed with our secret (the reason is for logs, not callers)."""


def compute_h1(secret: str, ts: int | str, raw_body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), f"{ts}:".encode() + raw_body, hashlib.sha256).hexdigest()


def sign(secret: str, raw_body: bytes, *, ts: int | None = None) -> str:
    """A ``Paddle-Signature`` header value (the sandbox provider and tests sign with it)."""
    ts = int(time.time()) if ts is None else ts
    return f"ts={ts};h1={compute_h1(secret, ts, raw_body)}"


def parse_header(header: str | None) -> tuple[str, list[str]]:
    """``(ts, [h1, ...])`` of a header value; raises SignatureError when malformed."""
    if not header:
        raise SignatureError("missing Paddle-Signature header")
    ts: str | None = None
    h1s: list[str] = []
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed Paddle-Signature header")
        if key == "ts":
            ts = value
        elif key == "h1":
            h1s.append(value.strip().lower())
    if ts is None or not h1s:
        raise SignatureError("Paddle-Signature needs ts and at least one h1")
    # checked before int(): hundreds of digits overflow the float comparison, thousands int() itself
    if not (ts.isascii() and ts.isdigit() and len(ts) <= MAX_TS_DIGITS):
        raise SignatureError("Paddle-Signature ts is not a unix timestamp")
    return ts, h1s


def verify(header: str | None, raw_body: bytes, secret: str, *, tolerance: int = DEFAULT_TOLERANCE_SECONDS,
           now: float | None = None) -> int:
    """Verify a webhook; returns its ``ts``. Raises SignatureError otherwise."""
    ts, h1s = parse_header(header)
    now = time.time() if now is None else now
    if abs(now - int(ts)) > tolerance:
        raise SignatureError("Paddle-Signature timestamp outside the tolerance")
    expected = compute_h1(secret, ts, raw_body).encode("ascii")
    # every candidate is compared, so timing does not reveal which one (if any) matched
    matched = False
    for candidate in h1s:
        matched |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("no h1 matches")
    return int(ts)
