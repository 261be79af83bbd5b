"""CloudFront Lambda@Edge shapes: reading request headers, forwarding requests, generated responses.

Headers in CloudFront events are a dict keyed by the lower-case name, each a
list of `{"key": <Name>, "value": <value>}`. Generated responses use string
status codes and the same header form.
"""

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
    values = header_values(request, name)
    return values[0] if values else None


def forwarded_request(request: dict, uri: str, site_host: str | None = None) -> dict:
    """The request to send on: new uri, client-sent `x-dramac-*` headers removed, site header set."""
    headers = {
        name: entries
        for name, entries in request_headers(request).items()
        if not (isinstance(name, str) and name.lower().startswith(ROUTER_HEADER_PREFIX))
    }
    if site_host is not None:
        headers[SITE_HOST_HEADER] = [{"key": "X-Dramac-Site-Host", "value": site_host}]
    return {**request, "uri": uri, "headers": headers}


def redirect_response(location: str) -> dict:
    """302 to a same-site relative location (callers pass only sanitised paths)."""
    return {
        "status": "302",
        "statusDescription": _STATUS_TEXT[302],
        "headers": {
            "location": [{"key": "Location", "value": location}],
            "cache-control": [{"key": "Cache-Control", "value": "no-store"}],
        },
    }


def error_response(status: int) -> dict:
    text = _STATUS_TEXT[status]
    return {
        "status": str(status),
        "statusDescription": text,
        "headers": {
            "content-type": [{"key": "Content-Type", "value": "text/plain; charset=utf-8"}],
            "cache-control": [{"key": "Cache-Control", "value": "no-store"}],
        },
        "body": text,
    }
