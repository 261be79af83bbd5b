"""The router's settings: `config.json` bundled beside the code, or the local dev configuration.

Lambda@Edge has no environment variables, so a deployed router reads its
settings from the `config.json` that `bundle.py` writes into the bundle.
Without that file (running from the source tree) the local configuration is
used only when `DRAMAC_ROUTER_LOCAL=1`; otherwise the router fails closed:
default routing, no keys, so no session is ever valid.
"""

import json
import os
import re
from collections.abc import Mapping

from .cloudfront import RouteRejected
from .defaults import DEFAULT_SETTINGS
from .hosts import normalise_host
from .paths import is_public_path, prefix_pattern
from .tokens import JwkError, SessionVerifier, public_key_from_jwk

CONFIG_FILE_NAME = "config.json"
LOCAL_ENV_FLAG = "DRAMAC_ROUTER_LOCAL"

class ConfigError(ValueError):
    """The router's configuration is unusable; raised at load, never per request."""


class RouterConfig:
    """Parsed, validated settings (see DEFAULT_SETTINGS for the keys)."""

    __slots__ = (
        "app_domains",
        "host_routes",
        "login_path",
        "mode",
        "onboarding_claims",
        "onboarding_path",
        "platform_site_domain",
        "public_files",
        "public_prefix_pattern",
        "public_prefixes",
        "reserved_site_labels",
        "session_cookie",
        "sessions",
    )
    mode: str
    app_domains: frozenset[str]
    platform_site_domain: str
    reserved_site_labels: frozenset[str]
    public_prefixes: tuple[str, ...]
    public_prefix_pattern: re.Pattern[str]  # the prefixes, precompiled (paths.prefix_pattern)
    public_files: frozenset[str]
    session_cookie: str
    login_path: str
    onboarding_path: str
    onboarding_claims: tuple[tuple[str, ...], ...]
    sessions: SessionVerifier
    host_routes: dict[str | None, tuple[int, str | None]]  # raw Host value -> route (hosts.host_route)


def load_config(directory: str, environ: Mapping[str, str] | None = None) -> RouterConfig:
    """Bundled `config.json` if present; else local settings when flagged; else fail-closed defaults.

    The router's one read of the environment (``os.environ`` unless given): at the edge there is
    none, so only the source tree's ``DRAMAC_ROUTER_LOCAL`` and ``DRAMAC_JWT_SECRET`` matter."""
    environ = os.environ if environ is None else environ
    try:
        with open(os.path.join(directory, CONFIG_FILE_NAME), "rb") as config_file:
            bundled = json.load(config_file)
    except FileNotFoundError:
        if environ.get(LOCAL_ENV_FLAG) == "1":
            from .local import local_settings  # source tree only; never bundled

            return parse_settings(local_settings(environ))
        return parse_settings(DEFAULT_SETTINGS)
    except ValueError as error:
        raise ConfigError(f"{CONFIG_FILE_NAME} is not valid JSON: {error}") from None
    if not isinstance(bundled, dict):
        raise ConfigError(f"{CONFIG_FILE_NAME} must hold a JSON object")
    return parse_settings({**DEFAULT_SETTINGS, **bundled})


def parse_settings(settings: dict) -> RouterConfig:
    """Validate a complete settings dict; ConfigError names the first problem found."""
    if "static_extensions" in settings:
        raise ConfigError("static_extensions is no longer a setting: a path never becomes public by how it "
                          "ends (`/dashboard;.js`); list static folders in public_prefixes and files in public_files")
    unknown = set(settings) - set(DEFAULT_SETTINGS)
    if unknown:
        raise ConfigError(f"unknown settings: {', '.join(sorted(unknown))}")
    mode = settings["mode"]
    if mode not in ("production", "local"):
        raise ConfigError("mode must be 'production' or 'local'")
    secret = settings["hs256_secret"]
    if secret is not None and (mode != "local" or not isinstance(secret, str) or not secret):
        raise ConfigError("hs256_secret is accepted only as a non-empty string in a local-mode configuration")

    config = RouterConfig()
    config.mode = mode
    config.app_domains = frozenset(
        _host(domain, "app_domains") for domain in _strings(settings, "app_domains")
    )
    config.platform_site_domain = _host(settings["platform_site_domain"], "platform_site_domain")
    config.reserved_site_labels = frozenset(
        label.lower() for label in _strings(settings, "reserved_site_labels")
    )
    config.public_prefixes = tuple(
        _path(prefix, "public_prefixes").rstrip("/") for prefix in _strings(settings, "public_prefixes")
    )
    if "" in config.public_prefixes:
        raise ConfigError("public_prefixes must not contain '/': that would make every path public")
    config.public_prefix_pattern = prefix_pattern(config.public_prefixes)
    config.host_routes = {}
    config.public_files = frozenset(
        _path(path, "public_files") for path in _strings(settings, "public_files")
    )
    config.session_cookie = _string(settings, "session_cookie")
    config.login_path = _path(settings["login_path"], "login_path")
    config.onboarding_path = _path(settings["onboarding_path"], "onboarding_path")
    config.onboarding_claims = tuple(
        tuple(claim.split(".")) for claim in _strings(settings, "onboarding_claims")
    )
    if not is_public_path(config.login_path, config):
        raise ConfigError("login_path must be a public path, or every redirect to it would loop")
    config.sessions = SessionVerifier(
        _public_keys(settings["jwks"]),
        hs256_secret=secret.encode("utf-8") if secret else None,
        audience=_optional_string(settings, "audience"),
        issuer=_optional_string(settings, "issuer"),
        clock_skew_seconds=_skew(settings["clock_skew_seconds"]),
    )
    return config


def _public_keys(jwks: object) -> list:
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise ConfigError('jwks must be a JWK set: {"keys": [...]}')
    try:
        return [public_key_from_jwk(jwk) for jwk in keys]
    except JwkError as error:
        raise ConfigError(str(error)) from None


def _strings(settings: dict, name: str) -> list:
    values = settings[name]
    if not isinstance(values, list) or not all(isinstance(value, str) and value for value in values):
        raise ConfigError(f"{name} must be a list of non-empty strings")
    return values


def _string(settings: dict, name: str) -> str:
    value = settings[name]
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a non-empty string")
    return value


def _optional_string(settings: dict, name: str) -> str | None:
    return None if settings[name] is None else _string(settings, name)


def _host(value: object, name: str) -> str:
    try:
        return normalise_host(value)
    except RouteRejected:
        raise ConfigError(f"{name}: {value!r} is not a valid host name") from None


def _path(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        raise ConfigError(f"{name}: {value!r} must be an absolute path such as /login")
    return value


def _skew(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 300:
        raise ConfigError("clock_skew_seconds must be a number of seconds between 0 and 300")
    return float(value)
