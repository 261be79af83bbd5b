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
and public keys come from `config.json`, bundled beside this file.
"""

import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:  # loaded by file path (tests, `dramac invoke`), not as the Lambda root
    sys.path.append(_HERE)

from domain_router_cloudfront import (  # noqa: E402
    RouteRejected,
    error_response,
    first_header_value,
    forwarded_request,
    redirect_response,
)
from domain_router_config import RouterConfig, load_config  # noqa: E402
from domain_router_hosts import normalise_host, site_host_for  # noqa: E402
from domain_router_paths import is_public_path, is_under, login_location, normalise_path  # noqa: E402
from domain_router_session import onboarding_finished, session_token  # noqa: E402

_config: RouterConfig | None = None


def handler(event: dict, context: object) -> dict:
    """CloudFront viewer-request entry point: the request to forward, or a generated response."""
    request = event["Records"][0]["cf"]["request"]
    return route_request(request, current_config(), time.time())


def current_config() -> RouterConfig:
    """Loaded once per container, on the first request."""
    global _config
    if _config is None:
        _config = load_config(_HERE, os.environ)
    return _config


def route_request(request: dict, config: RouterConfig, now: float) -> dict:
    """Host first (400/404 for hosts that are no site and no app), then the path, then site or app rules."""
    try:
        host = normalise_host(first_header_value(request, "host"))
        site_host = site_host_for(host, config)
        path = normalise_path(request.get("uri"))
    except RouteRejected as rejection:
        return error_response(rejection.status)
    if site_host is not None:
        return forwarded_request(request, f"/site/{site_host}{path}", site_host=site_host)
    return route_app_request(request, path, config, now)


def route_app_request(request: dict, path: str, config: RouterConfig, now: float) -> dict:
    """App domain: public paths pass, the rest needs a session and finished onboarding."""
    if is_public_path(path, config):
        return forwarded_request(request, path)
    claims = config.sessions.verify(session_token(request, config.session_cookie), now)
    if claims is None:
        return redirect_response(login_location(config.login_path, path, request.get("querystring")))
    if must_finish_onboarding(claims, path, config):
        return redirect_response(config.onboarding_path)
    return forwarded_request(request, path)


def must_finish_onboarding(claims: dict, path: str, config: RouterConfig) -> bool:
    return not onboarding_finished(claims, config.onboarding_claims) and not is_under(
        path, config.onboarding_path
    )
