"""Calling the real handlers: claims for a user, and a client that invokes a function's Lambda handler
with API Gateway v2 events, as API Gateway would."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any


def claims_for(user_id: uuid.UUID) -> dict[str, Any]:
    return {"sub": str(user_id), "aud": "authenticated", "role": "authenticated", "iss": "dramac-local",
            "exp": 4102444800, "iat": 1700000000}


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def data(self) -> Any:
        return self.body.get("data")


class FunctionClient:
    """Invokes a function's real Lambda handler with API Gateway v2 events, as API Gateway would."""

    def __init__(self, name: str):
        from dramac_dev.functions_loader import get_handler

        self.name = name
        self.handler = get_handler(name)

    def request(self, method: str, path: str, *, user: uuid.UUID | None = None, body: Any = None,
                raw_body: str | bytes | None = None, query: dict[str, str] | str | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        from dramac_dev.events import LocalContext, call_handler, http_event

        event = http_event(method, path, body=body, raw_body=raw_body, query=query, headers=headers,
                           claims=claims_for(user) if user else None)
        # call_handler gives a thread without one the event loop Mangum needs (concurrency tests)
        result = call_handler(self.handler, event, LocalContext(self.name))
        text = result.get("body") or "{}"
        return Reply(int(result["statusCode"]), json.loads(text), result.get("headers") or {})

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Reply:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Reply:
        return self.request("DELETE", path, **kw)
