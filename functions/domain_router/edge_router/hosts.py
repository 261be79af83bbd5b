"""Host header rules: normalise the host and decide whether it is the app or a tenant site."""

import re

from .cloudfront import RouteRejected

MAX_HOST_LENGTH = 253
MAX_HOST_HEADER_LENGTH = MAX_HOST_LENGTH + 7  # a port and a trailing dot on top of a full-length name

HOST_ROUTE_CACHE_SIZE = 1024  # distinct Host header values remembered per container (cleared when full)

# One precompiled pass over the whole name: dot-separated DNS labels of 1-63 letters, digits, hyphens.
_HOST_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT_SUFFIX = re.compile(r":([0-9]{1,5})\Z")


def normalise_host(raw: object) -> str:
    """Lower-case host without port or trailing dot; RouteRejected(400) when it is not a DNS name.

    Internationalised names must arrive in their ASCII (punycode, `xn--`) form:
    raw non-ASCII is refused rather than converted, so one site has one spelling.
    """
    if not isinstance(raw, str) or not raw or len(raw) > MAX_HOST_HEADER_LENGTH or not raw.isascii():
        raise RouteRejected(400)
    host = raw.lower()
    if ":" in host:
        port = _PORT_SUFFIX.search(host)
        if port is None or int(port.group(1)) > 65535:
            raise RouteRejected(400)
        host = host[: port.start()]
    if host.endswith("."):
        host = host[:-1]
    if not host or len(host) > MAX_HOST_LENGTH or not _HOST_NAME.fullmatch(host):
        raise RouteRejected(400)
    if "xn--" in host:
        for label in host.split("."):
            if label.startswith("xn--") and not _is_canonical_punycode(label):
                raise RouteRejected(400)
    return host


def host_route(raw: object, config) -> tuple[int, str | None]:
    """What a raw Host header value means: ``(0, None)`` an app domain, ``(0, site host)`` a tenant
    site, ``(400 or 404, None)`` a rejection. Remembered per raw value in ``config.host_routes``
    (bounded): a container sees the same few hosts on almost every request."""
    try:
        route: tuple[int, str | None] = (0, site_host_for(normalise_host(raw), config))
    except RouteRejected as rejection:
        route = (rejection.status, None)
    if raw is None or isinstance(raw, str):
        routes = config.host_routes
        if len(routes) >= HOST_ROUTE_CACHE_SIZE:
            routes.clear()
        routes[raw] = route
    return route


def site_host_for(host: str, config) -> str | None:
    """The tenant site a normalised host names, or None for an app domain.

    RouteRejected(404) for names that can never be a site: the bare platform
    domain, nested or reserved platform subdomains, and single-label hosts;
    RouteRejected(400) for IP literals.
    """
    if host in config.app_domains:
        return None
    platform = config.platform_site_domain
    if host == platform:
        raise RouteRejected(404)
    if host.endswith("." + platform):
        label = host[: -len(platform) - 1]
        if "." in label or label in config.reserved_site_labels:
            raise RouteRejected(404)
        return host
    if host.rsplit(".", 1)[-1].isdigit():  # no top-level domain is numeric: this is an IPv4 literal
        raise RouteRejected(400)
    if "." not in host:
        raise RouteRejected(404)
    return host  # a custom domain; the origin looks it up


def _is_canonical_punycode(label: str) -> bool:
    """`xn--` labels must decode to non-ASCII and re-encode to the same label."""
    try:
        decoded = label[4:].encode("ascii").decode("punycode")
        return not decoded.isascii() and "xn--" + decoded.encode("punycode").decode("ascii") == label
    except (UnicodeError, ValueError):
        return False
