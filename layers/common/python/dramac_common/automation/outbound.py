"""Outbound HTTP for the ``http_request`` step: SSRF guard, timeouts, retries with backoff.

SSRF: the host is resolved once and every address it resolves to must be public; loopback,
private, link-local, multicast, reserved, unspecified, shared (100.64/10) and the IPv4 addresses
inside IPv6 (mapped, 6to4, Teredo) are refused, unless ``AUTOMATION_ALLOW_PRIVATE_HTTP=1``. The
connection then goes to the address that was checked (the hostname only travels in ``Host`` and
TLS SNI), so a DNS answer that changes between check and connect cannot redirect it. Redirects
are followed by hand, at most three, each target checked the same way.

Retries: network errors, 429 and 5xx are retried with exponential backoff and full jitter
(``sleep = uniform(0, min(cap, base * 2**attempt))``), bounded by the step's attempts and by a
total time budget; other 4xx fail at once.
"""

from __future__ import annotations

import ipaddress
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..core import jsonbody
from ..core.settings import get_settings

if TYPE_CHECKING:  # httpx costs ~100 ms of import: only the functions that send load it
    import httpx

MAX_RESPONSE_BYTES = 256 * 1024
MAX_TEXT_CHARS = 16 * 1024
MAX_REDIRECTS = 3
BACKOFF_CAP_S = 8.0
REDIRECT_CODES = (301, 302, 303, 307, 308)

_client: httpx.Client | None = None
_client_lock = threading.Lock()


class OutboundRefused(Exception):
    """A destination the SSRF policy refuses (never retried)."""


class OutboundFailed(Exception):
    """The request failed after its retries; ``attempts`` requests were made."""

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


@dataclass
class OutboundResponse:
    status: int
    headers: dict[str, str]
    body: Any
    attempts: int
    url: str


def private_addresses_allowed() -> bool:
    return get_settings().automation_allow_private_http


def backoff_base_s() -> float:
    return get_settings().automation_http_backoff_base_s


def reset_client() -> None:
    """Forget the container's HTTP client (tests change how outbound calls are made)."""
    global _client
    _client = None


def http_client() -> httpx.Client:
    import httpx

    global _client
    if _client is None:
        with _client_lock:
            if _client is None:
                # trust_env=False: no proxy or netrc from the environment may reroute a workflow's request
                _client = httpx.Client(follow_redirects=False, trust_env=False,
                                       limits=httpx.Limits(max_connections=20, max_keepalive_connections=10))
    return _client


def is_forbidden_address(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # ::ffff:a.b.c.d reaches a.b.c.d: judge that address
            return is_forbidden_address(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or not ip.is_global)


def resolve_checked(host: str, port: int) -> str:
    """The address to connect to for ``host``; ``OutboundRefused`` if any address it resolves to is private."""
    if not host:
        raise OutboundRefused("the URL has no host")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise OutboundFailed(f"cannot resolve {host!r}: {exc.strerror or exc}", attempts=1) from exc
    addresses = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone id
        addresses.append(ipaddress.ip_address(address))
    if not addresses:
        raise OutboundFailed(f"{host!r} resolves to no address", attempts=1)
    if not private_addresses_allowed():
        for ip in addresses:
            if is_forbidden_address(ip):
                raise OutboundRefused(
                    f"refused: {host!r} resolves to a private, loopback or reserved address ({ip}); "
                    "workflows may only call public addresses")
    return str(addresses[0])


def check_url(url: str) -> httpx.URL:
    """The URL if it is an absolute http(s) URL (checked before any template is rendered into it)."""
    import httpx

    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundRefused(f"invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise OutboundRefused(f"only absolute http and https URLs may be called, got {url!r}")
    if parsed.userinfo:
        raise OutboundRefused("credentials in the URL are not allowed: send them in a header")
    return parsed


def _send_once(method: str, url: httpx.URL, headers: dict[str, str], content: bytes | None,
               timeout_s: float) -> tuple[int, dict[str, str], bytes]:
    import httpx

    port = url.port or (443 if url.scheme == "https" else 80)
    address = resolve_checked(url.host, port)
    pinned = url.copy_with(host=address)
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    request_headers = {**headers, "host": url.netloc.decode("ascii")}
    body = bytearray()
    with http_client().stream(method, pinned, headers=request_headers, content=content,
                              timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
                              extensions=extensions) as response:
        for chunk in response.iter_bytes():
            body.extend(chunk)
            if len(body) > MAX_RESPONSE_BYTES:
                break
        return response.status_code, dict(response.headers), bytes(body[:MAX_RESPONSE_BYTES])


def _decode(headers: dict[str, str], raw: bytes) -> Any:
    """The response body as the step's output: its JSON when it is JSON the database can store, else
    its text (without NUL characters, which no text or jsonb column holds)."""
    if "json" in headers.get("content-type", "").lower():
        try:
            return jsonbody.loads(raw)
        except jsonbody.JsonRefused:
            pass
    return raw.decode("utf-8", errors="replace").replace("\x00", "\ufffd")[:MAX_TEXT_CHARS]


def request(method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None,
            timeout_s: float = 10.0, max_attempts: int = 3, budget_s: float = 60.0) -> OutboundResponse:
    """Send a request with the SSRF guard and retries. A dict or list body is sent as JSON."""
    import httpx

    headers = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    content: bytes | None = None
    if body is not None:
        if isinstance(body, (dict, list, int, float, bool)):
            content = json.dumps(body, default=str).encode()
            headers.setdefault("content-type", "application/json")
        else:
            content = str(body).encode()
    target = check_url(url)
    deadline = time.monotonic() + budget_s
    attempts, redirects = 0, 0
    while True:
        attempts += 1
        problem: str
        try:
            status, response_headers, raw = _send_once(method, target, headers, content,
                                                       max(0.5, min(timeout_s, deadline - time.monotonic())))
        except OutboundRefused:
            raise
        except OutboundFailed as exc:
            exc.attempts = attempts
            raise
        except httpx.TimeoutException:
            problem = f"timed out after {timeout_s:g}s calling {target.host}"
        except httpx.TransportError as exc:
            problem = f"network error calling {target.host}: {exc or type(exc).__name__}"
        else:
            if status in REDIRECT_CODES and "location" in response_headers:
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise OutboundFailed(f"more than {MAX_REDIRECTS} redirects from {url}", attempts)
                target = check_url(str(target.join(response_headers["location"])))
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, content = "GET", None
                    headers.pop("content-type", None)
                attempts -= 1  # a redirect is part of one attempt
                continue
            if status < 400:
                return OutboundResponse(status, response_headers, _decode(response_headers, raw), attempts,
                                        str(target))
            reason = httpx.codes.get_reason_phrase(status)
            problem = f"HTTP {status} {reason} from {target.host}{target.path}"
            if status != 429 and status < 500:
                raise OutboundFailed(problem, attempts)
        if attempts >= max_attempts:
            raise OutboundFailed(f"{problem} (after {attempts} attempts)", attempts)
        pause = random.uniform(0, min(BACKOFF_CAP_S, backoff_base_s() * 2 ** attempts))  # noqa: S311 - jitter
        if time.monotonic() + pause >= deadline:
            raise OutboundFailed(f"{problem} (gave up after {attempts} attempts: time budget spent)", attempts)
        time.sleep(pause)
