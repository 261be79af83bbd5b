"""One request's route: a site's host is rewritten to `/site/<host><uri>` (no auth); on an app domain,
public paths pass, the rest needs a valid session and finished onboarding (else a redirect)."""

from .cloudfront import (
    RouteRejected,
    error_response,
    first_header_value,
    forwarded_request,
    redirect_response,
)
from .config import RouterConfig
from .hosts import host_route
from .paths import is_public_path, is_under, login_location, normalise_path
from .session import onboarding_finished, session_token


def route_request(request: dict, config: RouterConfig, now: float) -> dict:
    """Host first (400/404 for hosts that are no site and no app), then the path, then site or app rules."""
    raw_host = first_header_value(request, "host")
    route = config.host_routes.get(raw_host)
    if route is None:
        route = host_route(raw_host, config)
    status, site_host = route
    if status:
        return error_response(status)
    try:
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
