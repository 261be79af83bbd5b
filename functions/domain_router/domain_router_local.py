"""The local development configuration (`dramac dev`, `dramac invoke domain_router`).

Used only when the router runs from the source tree with `DRAMAC_ROUTER_LOCAL=1`
and by `bundle.py --mode local`. It is never copied into a bundle, so the
dev default secret never reaches an edge location.
"""

from domain_router_config import DEFAULT_SETTINGS

# Used only when the shared layer is not importable; the layer's constant wins
# so that the router and `dramac token` always agree on the dev default.
FALLBACK_DEV_JWT_SECRET = "dramac-local-dev-secret"  # noqa: S105 - a documented, public dev default
LOCAL_ISSUER = "dramac-local"  # what `dramac token` puts in `iss`


def local_settings(environ) -> dict:
    """HS256 dev tokens (`DRAMAC_JWT_SECRET` or the dev default) and 127.0.0.1 as an app domain."""
    return {
        **DEFAULT_SETTINGS,
        "mode": "local",
        "app_domains": [*DEFAULT_SETTINGS["app_domains"], "127.0.0.1"],
        "issuer": LOCAL_ISSUER,
        "hs256_secret": environ.get("DRAMAC_JWT_SECRET") or dev_default_secret(),
    }


def dev_default_secret() -> str:
    """The project's built-in dev secret: the shared layer's, as `dramac token` uses it."""
    try:
        from dramac_common.core.settings import DEV_JWT_SECRET
    except ImportError:
        return FALLBACK_DEV_JWT_SECRET
    return DEV_JWT_SECRET
