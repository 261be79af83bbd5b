"""CloudFront viewer-request events, for running the domain router locally."""

from __future__ import annotations

from typing import Any

_SKIP = {"connection", "content-length", "transfer-encoding"}


def viewer_request_event(method: str, host: str, uri: str, querystring: str, headers: dict[str, str],
                         client_ip: str) -> dict[str, Any]:
    cf_headers: dict[str, list[dict[str, str]]] = {}
    for key, value in headers.items():
        if key.lower() in _SKIP:
            continue
        cf_headers.setdefault(key.lower(), []).append({"key": key.title(), "value": value})
    cf_headers["host"] = [{"key": "Host", "value": host}]
    return {
        "Records": [{
            "cf": {
                "config": {"distributionDomainName": "local.cloudfront.net", "distributionId": "LOCAL",
                           "eventType": "viewer-request", "requestId": "local"},
                "request": {"clientIp": client_ip, "headers": cf_headers, "method": method,
                            "querystring": querystring, "uri": uri or "/"},
            }
        }]
    }
