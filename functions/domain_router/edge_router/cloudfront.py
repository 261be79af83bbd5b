"""CloudFront Lambda@Edge shapes: reading request headers, forwarding requests, generated responses.

Headers in CloudFront events are a dict keyed by the lower-case name, each a
list of `{"key": <Name>, "value": <value>}`. Generated responses use string
status codes and the same header form.
"""

import re

SITE_HOST_HEADER = "x-dramac-site-host"
ROUTER_HEADER_PREFIX = "x-dramac-"  # the router alone speaks in this header namespace

_STATUS_TEXT = {302: "Found", 400: "Bad Request", 404: "Not Found"}


class RouteRejected(Exception):
    """The request cannot be routed; becomes a generated error response."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def request_headers(request: dict) -> dict:
    headers = request.get("headers")
    return headers if isinstance(headers, dict) else {}


def header_values(request: dict, name: str) -> list[str]:
    """Every string value of one header (CloudFront may split a header into several entries)."""
    entries = request_headers(request).get(name)
    if not isinstance(entries, list):
        return []
    return [
        entry["value"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("value"), str)
    ]


def first_header_value(request: dict, name: str) -> str | None:
    """The first string value of one header (the Host header on every request: no list is built)."""
    headers = request.get("headers")
    entries = headers.get(name) if isinstance(headers, dict) else None
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict):
                value = entry.get("value")
                if isinstance(value, str):
                    return value
    return None


def forwarded_request(request: dict, uri: str, site_host: str | None = None) -> dict:
    """The request to send on: new uri, client-sent `x-dramac-*` headers removed, site header set.

    The common case (no client-sent `x-dramac-*` header, an app request) forwards the request's own
    headers object rather than a copy: the incoming event is CloudFront's, used once and not kept."""
    headers = request_headers(request)
    if _has_router_header(headers):
        headers = {
            name: entries
            for name, entries in headers.items()
            if not (isinstance(name, str) and name.lower().startswith(ROUTER_HEADER_PREFIX))
        }
    elif site_host is not None:
        headers = headers.copy()
    if site_host is not None:
        headers[SITE_HOST_HEADER] = [{"key": "X-Dramac-Site-Host", "value": site_host}]
    return {**request, "uri": uri, "headers": headers}


def redirect_response(location: str) -> dict:
    """302 to a same-site relative location (callers pass only sanitised paths)."""
    return {
        "status": "302",
        "statusDescription": "Found",
        "headers": {"location": [{"key": "Location", "value": location}], "cache-control": _NO_STORE},
    }


def error_response(status: int) -> dict:
    """A generated 400 or 404; its header entries are built once (a response is serialised, never
    modified, by Lambda@Edge)."""
    text = _STATUS_TEXT[status]
    return {"status": _STATUS_CODE[status], "statusDescription": text, "headers": _ERROR_HEADERS, "body": text}


def _has_router_header(headers: dict) -> bool:
    """Whether any header name starts with `x-dramac-` (any case): one precompiled search over the
    names joined by newlines (a name cannot hold one), not a loop in Python."""
    try:
        return _ROUTER_HEADER_NAME.search("\n".join(headers)) is not None
    except TypeError:  # a name that is not a string: let the careful filter decide
        return True


_ROUTER_HEADER_NAME = re.compile("^" + re.escape(ROUTER_HEADER_PREFIX), re.IGNORECASE | re.MULTILINE)
_NO_STORE = [{"key": "Cache-Control", "value": "no-store"}]
_ERROR_HEADERS = {
    "content-type": [{"key": "Content-Type", "value": "text/plain; charset=utf-8"}],
    "cache-control": _NO_STORE,
}
_STATUS_CODE = {status: str(status) for status in _STATUS_TEXT}
