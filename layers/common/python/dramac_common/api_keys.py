"""Site API keys: created, listed, rotated and revoked by a site's managers; sent as ``X-Api-Key`` by a
site's integrations to read and write that one site's module data.

A key looks like ``dk_live_<key id, 32 hex>_<secret, 43 url-safe characters>``. It is shown once; only
SHA-256 of the whole key is stored (256 random bits make a slow hash unnecessary) and compared in
constant time. A verified key becomes database claims ``{"role": "site_api_key", "site_id": ...}``,
which ``private.readable_site_ids()`` / ``writable_site_ids()`` turn into exactly that one site, so
row-level security bounds a key as it bounds a user. The claims carry no ``sub``: a key never acts
with its creator's other rights (another site, or a super admin's reach).

``current_principal`` (a FastAPI dependency) resolves the caller of a ``JWT_OR_API_KEY`` route, and
``site_unit`` is the one place a request becomes a unit of work for a site with either credential.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from . import db
from .api import CamelModel
from .errors import Conflict, NotFound, Unauthorized, ValidationFailed
from .tenancy import Caller, require_site_access

KEY_PREFIX = "dk_live_"
KEY_RE = re.compile(r"^dk_live_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
SLUG_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
DEFAULT_ROTATION_OVERLAP_SECONDS = 24 * 3600
MAX_ROTATION_OVERLAP_SECONDS = 30 * 24 * 3600
TOUCH_INTERVAL_SECONDS = 60  # last_used_at is refreshed at most this often, not on every request


def rotation_overlap_seconds() -> int:
    """How long a rotated key keeps working: ``DRAMAC_API_KEY_ROTATION_OVERLAP_SECONDS``, default 24 h."""
    raw = os.environ.get("DRAMAC_API_KEY_ROTATION_OVERLAP_SECONDS")
    return int(raw) if raw else DEFAULT_ROTATION_OVERLAP_SECONDS


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key(key_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{key_id.hex}_{secrets.token_urlsafe(32)}"


def key_prefix(key_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{key_id.hex}"


@dataclass(frozen=True)
class SiteApiKey:
    """A verified key: the one site it may use, and the modules (None: every installed module)."""

    key_id: uuid.UUID
    site_id: uuid.UUID
    agency_id: uuid.UUID
    modules: tuple[str, ...] | None
    created_by: uuid.UUID | None

    @property
    def db_claims(self) -> dict[str, Any]:
        return {"role": "site_api_key", "site_id": str(self.site_id), "sub": None, "key_id": str(self.key_id),
                "modules": list(self.modules) if self.modules is not None else None,
                "created_by": str(self.created_by) if self.created_by else None}

    def require_site(self, site_id: uuid.UUID) -> None:
        if site_id != self.site_id:
            raise NotFound("Site not found", code="site_not_found")


Principal = Caller | SiteApiKey


def principal_id(principal: Principal) -> str:
    """Who is asking, as the idempotency store keys it: a user's id, or ``key:<id>`` for a site API key."""
    return f"key:{principal.key_id}" if isinstance(principal, SiteApiKey) else str(principal.user_id)

_INVALID = "The API key is not valid (unknown, revoked or expired)"


def verify_api_key(presented: str) -> SiteApiKey:
    """The key's scope, or 401 ``invalid_api_key``; the same answer whatever is wrong with it."""
    match = KEY_RE.match(presented.strip()) if isinstance(presented, str) else None
    if not match:
        raise Unauthorized(_INVALID, code="invalid_api_key")
    key_id = uuid.UUID(match.group(1))
    with db.service_unit() as unit:
        row = unit.fetchone(
            """
            SELECT id, site_id, agency_id, secret_hash, modules, created_by,
                   revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) AS usable,
                   last_used_at IS NULL OR last_used_at < now() - make_interval(secs => %s) AS stale
            FROM public.site_api_keys WHERE id = %s
            """,
            (TOUCH_INTERVAL_SECONDS, key_id),
        )
        expected = bytes(row["secret_hash"]) if row else hashlib.sha256(b"").digest()
        if not hmac.compare_digest(expected, hash_key(presented.strip())) or not row or not row["usable"]:
            raise Unauthorized(_INVALID, code="invalid_api_key")
        if row["stale"]:
            unit.execute("UPDATE public.site_api_keys SET last_used_at = now() WHERE id = %s", (key_id,))
    return SiteApiKey(key_id=row["id"], site_id=row["site_id"], agency_id=row["agency_id"],
                      modules=tuple(row["modules"]) if row["modules"] is not None else None,
                      created_by=row["created_by"])


@contextmanager
def site_unit(principal: Principal, site_id: uuid.UUID, *, manage: bool) -> Iterator[db.Unit]:
    """A unit of work on one site: a user must be a member (and a manager when ``manage``); a site
    API key must be the site's own (keys may write: that is what they are for)."""
    if isinstance(principal, SiteApiKey):
        principal.require_site(site_id)
        with db.user_unit(principal.db_claims) as unit:
            yield unit
        return
    with db.user_unit(principal.db_claims) as unit:
        require_site_access(unit, site_id, manage=manage)
        yield unit


# -- management (the site's managers, as authenticated users) ---------------------------------

class ApiKeyInfo(CamelModel):
    id: uuid.UUID
    site_id: uuid.UUID
    name: str
    prefix: str
    modules: list[str] | None
    created_by: uuid.UUID | None
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    rotated_from: uuid.UUID | None
    status: str

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ApiKeyInfo:
        return cls(prefix=row["key_prefix"], **{k: v for k, v in row.items() if k != "key_prefix"})


class CreatedApiKey(ApiKeyInfo):
    key: str  # shown once


def without_secret(created: dict[str, Any]) -> dict[str, Any]:
    """A created key as kept for Idempotency-Key replays: everything but the key itself, which is
    shown once and never stored."""
    return {k: v for k, v in created.items() if k != "key"}


_KEY_COLUMNS = """id, site_id, name, key_prefix, modules, created_by, created_at, expires_at, revoked_at,
    last_used_at, rotated_from,
    CASE WHEN revoked_at IS NOT NULL THEN 'revoked'
         WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired' ELSE 'active' END AS status"""


def _check_modules(modules: list[str] | None) -> list[str] | None:
    if modules is None:
        return None
    bad = [m for m in modules if not isinstance(m, str) or not SLUG_RE.match(m)]
    if bad:
        raise ValidationFailed(f"Not module slugs: {', '.join(map(str, bad))}", code="invalid_modules",
                               details=[{"field": "modules", "message": "module slugs, e.g. crm"}])
    return sorted(set(modules))


def create_api_key(unit: db.Unit, caller: Caller, site_id: uuid.UUID, *, name: str = "",
                   modules: list[str] | None = None, expires_at: dt.datetime | None = None,
                   rotates_key_id: uuid.UUID | None = None, overlap_seconds: int | None = None) -> CreatedApiKey:
    """A new key for the site (manage role). With ``rotates_key_id`` the old key keeps working for the
    overlap period (default ``rotation_overlap_seconds()``) and the new one inherits its name and modules;
    a key is rotated once (409 ``api_key_already_rotated`` afterwards, however many rotations race)."""
    site = require_site_access(unit, site_id, manage=True)
    modules = _check_modules(modules)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=dt.UTC)
        if expires_at <= dt.datetime.now(dt.UTC):
            raise ValidationFailed("expiresAt must be in the future", code="invalid_expiry",
                                   details=[{"field": "expiresAt", "message": "must be in the future"}])
    key_id = uuid.uuid4()
    key = new_key(key_id)
    values = {"id": key_id, "site": site_id, "agency": site.agency_id, "name": name or "", "prefix": key_prefix(key_id),
              "hash": hash_key(key), "modules": modules, "by": caller.user_id, "expires": expires_at}
    if rotates_key_id is None:
        row = unit.fetchone(
            f"""
            INSERT INTO public.site_api_keys
              (id, site_id, agency_id, name, key_prefix, secret_hash, modules, created_by, expires_at)
            VALUES (%(id)s, %(site)s, %(agency)s, %(name)s, %(prefix)s, %(hash)s, %(modules)s, %(by)s, %(expires)s)
            RETURNING {_KEY_COLUMNS}
            """,
            values,
        )
    else:
        row = _rotate(unit, rotates_key_id, values, overlap_seconds)
    return CreatedApiKey(key=key, **ApiKeyInfo.from_row(row).model_dump())


def _rotate(unit: db.Unit, old_key_id: uuid.UUID, values: dict[str, Any], overlap_seconds: int | None) -> dict[str, Any]:
    """Shorten the old key to the overlap and insert its successor, in one statement. The unique
    successor index makes a second rotation (sequential or racing) insert nothing."""
    overlap = rotation_overlap_seconds() if overlap_seconds is None else overlap_seconds
    if not 0 <= overlap <= MAX_ROTATION_OVERLAP_SECONDS:
        raise ValidationFailed(f"overlapSeconds must be between 0 and {MAX_ROTATION_OVERLAP_SECONDS}",
                               code="invalid_overlap")
    row = unit.fetchone(
        f"""
        WITH old AS (
          UPDATE public.site_api_keys
          SET expires_at = LEAST(coalesce(expires_at, 'infinity'), now() + make_interval(secs => %(overlap)s))
          WHERE id = %(old)s AND site_id = %(site)s AND revoked_at IS NULL
            AND (expires_at IS NULL OR expires_at > now())
          RETURNING name, modules
        )
        INSERT INTO public.site_api_keys
          (id, site_id, agency_id, name, key_prefix, secret_hash, modules, created_by, expires_at, rotated_from)
        SELECT %(id)s, %(site)s, %(agency)s, coalesce(nullif(%(name)s, ''), old.name), %(prefix)s, %(hash)s,
               CASE WHEN %(inherit)s THEN old.modules ELSE %(modules)s::text[] END, %(by)s, %(expires)s, %(old)s
        FROM old
        ON CONFLICT (rotated_from, site_id) DO NOTHING
        RETURNING {_KEY_COLUMNS}
        """,
        {**values, "old": old_key_id, "overlap": overlap, "inherit": values["modules"] is None},
    )
    if row is not None:
        return row
    # Nothing inserted: a new statement (a new snapshot) sees the twin's committed rotation. An old key
    # that is no longer active is 404 (as a sequential repeat after the overlap answers; clock time,
    # not the transaction's start, decides), an active one that has its successor is 409.
    state = unit.fetchone(
        """
        SELECT k.revoked_at IS NULL AND (k.expires_at IS NULL OR k.expires_at > clock_timestamp()) AS active,
               (SELECT n.id FROM public.site_api_keys n WHERE n.rotated_from = k.id) AS successor
        FROM public.site_api_keys k WHERE k.id = %s AND k.site_id = %s
        """,
        (old_key_id, values["site"]),
    )
    if state is not None and state["active"] and state["successor"] is not None:
        raise Conflict("This API key was already rotated; use its successor, or rotate the successor",
                       code="api_key_already_rotated", details=[{"successorId": str(state["successor"])}])
    raise NotFound("No active API key with that id on this site", code="api_key_not_found")


def list_api_keys(unit: db.Unit, site_id: uuid.UUID) -> list[ApiKeyInfo]:
    require_site_access(unit, site_id, manage=True)
    rows = unit.fetchall(f"SELECT {_KEY_COLUMNS} FROM public.site_api_keys WHERE site_id = %s "
                         "ORDER BY created_at DESC, id", (site_id,))
    return [ApiKeyInfo.from_row(r) for r in rows]


def revoke_api_key(unit: db.Unit, site_id: uuid.UUID, key_id: uuid.UUID) -> ApiKeyInfo:
    """Revoke at once (idempotent: revoking a revoked key returns it unchanged)."""
    require_site_access(unit, site_id, manage=True)
    row = unit.fetchone(
        f"""
        UPDATE public.site_api_keys SET revoked_at = coalesce(revoked_at, now())
        WHERE id = %s AND site_id = %s
        RETURNING {_KEY_COLUMNS}
        """,
        (key_id, site_id),
    )
    if row is None:
        raise NotFound("No API key with that id on this site", code="api_key_not_found")
    return ApiKeyInfo.from_row(row)


# -- the request's principal on routes that accept a JWT or a site API key ---------------------

def _verified_bearer_claims(token: str) -> dict[str, Any]:
    """A bearer token verified by the handler itself. Routes that also accept ``X-Api-Key`` cannot sit
    behind API Gateway's JWT authorizer (it would refuse key-only requests), so in AWS they have no
    authorizer and the token is checked here with the authorizer's settings: ``DRAMAC_JWT_JWKS_URL``
    (+ ``DRAMAC_JWT_ISSUER``, ``DRAMAC_JWT_AUDIENCE``) for asymmetric tokens, else the HS256 secret."""
    import jwt  # only requests that carry a bearer to these routes pay for it

    from .settings import JWT_AUDIENCE, get_settings

    audience = os.environ.get("DRAMAC_JWT_AUDIENCE") or JWT_AUDIENCE
    issuer = os.environ.get("DRAMAC_JWT_ISSUER") or None
    jwks_url = os.environ.get("DRAMAC_JWT_JWKS_URL")
    if not jwks_url and not os.environ.get("DRAMAC_JWT_SECRET") and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        # In AWS the documented local secret would let anyone sign tokens: fail closed until configured.
        raise Unauthorized("Bearer tokens are not accepted here until DRAMAC_JWT_JWKS_URL is configured; "
                           "use X-Api-Key", code="invalid_token")
    try:
        if jwks_url:
            signing_key = _jwks_client(jwks_url).get_signing_key_from_jwt(token).key
            return jwt.decode(token, signing_key, algorithms=["RS256", "ES256"], audience=audience, issuer=issuer,
                              options={"require": ["sub", "exp", "aud"]}, leeway=30)
        return jwt.decode(token, get_settings().jwt_secret, algorithms=["HS256"], audience=audience, issuer=issuer,
                          options={"require": ["sub", "exp", "aud"]}, leeway=30)
    except jwt.PyJWTError as exc:
        raise Unauthorized("The bearer token is not valid", code="invalid_token") from exc


_jwks_clients: dict[str, Any] = {}


def _jwks_client(url: str) -> Any:
    if url not in _jwks_clients:
        import jwt

        _jwks_clients[url] = jwt.PyJWKClient(url, cache_keys=True)
    return _jwks_clients[url]


def principal_from_event(event: dict[str, Any]) -> Principal:
    """The caller of a JWT-or-API-key route: the authorizer's claims when a JWT authorizer (or
    ``dramac dev``) verified a bearer; else a bearer verified here; else the ``X-Api-Key``; else 401."""
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims")
    if isinstance(claims, dict):
        return Caller.from_claims(claims)
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return Caller.from_claims(_verified_bearer_claims(token.strip()))
    if headers.get("x-api-key"):
        return verify_api_key(headers["x-api-key"])
    raise Unauthorized("Sign in, or send a site API key in X-Api-Key", code="unauthorized")


def current_principal(request: Request) -> Principal:
    """FastAPI dependency of ``JWT_OR_API_KEY`` routes: the caller from the request's API Gateway event."""
    return principal_from_event(request.scope.get("aws.event") or {})
