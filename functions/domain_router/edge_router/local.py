"""The local development configuration (`dramac dev`, `dramac invoke domain_router`).

Used only when the router runs from the source tree with `DRAMAC_ROUTER_LOCAL=1`
and by `bundle.py --mode local`. It is never copied into a bundle, so the
dev default secret never reaches an edge location. It runs only where the
project is installed, so the dev secret and issuer come from the one place
they are defined, the layer's settings: the router and `dramac token` agree.
"""

from collections.abc import Mapping

from dramac_common.core.settings import DEV_JWT_ISSUER, DEV_JWT_SECRET

from .defaults import DEFAULT_SETTINGS


def local_settings(environ: Mapping[str, str]) -> dict:
    """HS256 dev tokens (`DRAMAC_JWT_SECRET` or the dev default) and 127.0.0.1 as an app domain."""
    return {
        **DEFAULT_SETTINGS,
        "mode": "local",
        "app_domains": [*DEFAULT_SETTINGS["app_domains"], "127.0.0.1"],
        "issuer": DEV_JWT_ISSUER,
        "hs256_secret": environ.get("DRAMAC_JWT_SECRET") or DEV_JWT_SECRET,
    }
