"""Domain router: the Lambda@Edge viewer-request function in front of the DRAMAC app.

It does at the edge what `src/proxy.ts` and the auth middleware do in the
Next.js app (contract section 8):

1. the Host header is normalised; an invalid host is a 400;
2. a tenant site (`<label>.<platform site domain>` or a custom domain) has its
   uri rewritten to `/site/<host><uri>` and is served without auth;
3. on an app domain, public paths pass through; anything else needs a valid
   session cookie (else 302 to the login page), and a signed-in user who has
   not finished onboarding is sent to the onboarding page.

Standard library only and no network or database call per request: settings
and public keys come from `config.json`, bundled beside this file. The rules
live in the `edge_router` package (`edge_router.routing`).
"""

import os
import time

from edge_router.config import RouterConfig, load_config
from edge_router.routing import route_request

_HERE = os.path.dirname(os.path.abspath(__file__))
_config: RouterConfig | None = None


def handler(event: dict, context: object) -> dict:
    """CloudFront viewer-request entry point: the request to forward, or a generated response."""
    request = event["Records"][0]["cf"]["request"]
    return route_request(request, _config or current_config(), time.time())


def current_config() -> RouterConfig:
    """Loaded once per container, on the first request."""
    global _config
    if _config is None:
        _config = load_config(_HERE)
    return _config
