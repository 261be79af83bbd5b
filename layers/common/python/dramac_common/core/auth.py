"""Who is calling: the one place a request's credentials become a caller.

Three credentials, one answer each:

- JWT claims verified by API Gateway's authorizer (``dramac dev`` verifies them locally), found in the
  event's ``requestContext.authorizer.jwt.claims``: a ``Caller``.
- A bearer token verified by the handler itself, on routes that also accept a site API key and so
  cannot sit behind the authorizer (it would refuse key-only requests): a ``Caller``.
- A site API key in ``X-Api-Key``: a ``SiteApiKey``, bound to one site.

A site API key looks like ``dk_live_<key id, 32 hex>_<secret, 43 url-safe characters>``. Only SHA-256
of the whole key is stored (256 random bits make a slow hash unnecessary) and compared in constant
time. A verified key becomes database claims ``{"role": "site_api_key", "site_id": ...}``, which
``private.readable_site_ids()`` / ``writable_site_ids()`` turn into exactly that one site, so
row-level security bounds a key as it bounds a user. The claims carry no ``sub``: a key never acts
with its creator's other rights. (Creating, rotating and revoking keys: ``installations.api_keys``.)

JWT verification is written once, in ``verify_jwt`` (PyJWT); ``dramac dev``'s gateway and its
``dramac token`` use it too. The domain router verifies sessions at the edge with its own
standard-library verifier (a Lambda@Edge bundle cannot carry this layer); both are tested against
the same token vectors.

FastAPI dependencies: ``CallerDep`` (JWT routes) and ``PrincipalDep`` (JWT-or-API-key routes).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, NamedTuple

from fastapi import Depends, Request

from . import db
from .errors import NotFound, Unauthorized
from .inplace import call_blocking
from .settings import JWT_AUDIENCE, get_settings

# -- callers ---------------------------------------------------------------------------------------


class Caller(NamedTuple):
    """The signed-in user, from verified JWT claims."""

    user_id: uuid.UUID
    claims: dict[str, Any]

    @classmethod
    def from_claims(cls, claims: dict[str, Any] | None) -> Caller:
        if not claims or not claims.get("sub"):
            raise Unauthorized("Sign in to use this API", code="unauthorized")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise Unauthorized("The token's subject is not a user id", code="invalid_token") from exc
        return cls(user_id=user_id, claims=dict(claims))

    @property
    def db_claims(self) -> dict[str, Any]:
        """The claims the database sees (auth.uid(), auth.jwt()); ``role`` is always ``authenticated``."""
        return {**self.claims, "sub": str(self.user_id), "role": "authenticated"}


class SiteApiKey(NamedTuple):
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


# -- JWT -------------------------------------------------------------------------------------------

REQUIRED_CLAIMS = ("sub", "exp", "aud")
LEEWAY_SECONDS = 30


def verify_jwt(token: str, key: Any, *, algorithms: Sequence[str], audience: str | None,
               issuer: str | None) -> dict[str, Any]:
    """The claims of a token signed with ``key`` by one of ``algorithms``, for ``audience`` (and
    ``issuer`` when given), not expired (30 s of clock skew); ``jwt.InvalidTokenError`` otherwise."""
    import jwt  # only requests that carry a bearer to these routes pay for it

    claims: dict[str, Any] = jwt.decode(token, key, algorithms=list(algorithms), audience=audience, issuer=issuer,
                                        options={"require": list(REQUIRED_CLAIMS)}, leeway=LEEWAY_SECONDS)
    return claims


_jwks_clients: dict[str, Any] = {}


def _jwks_client(url: str) -> Any:
    if url not in _jwks_clients:
        import jwt

        _jwks_clients[url] = jwt.PyJWKClient(url, cache_keys=True)
    return _jwks_clients[url]


def verified_bearer_claims(token: str) -> dict[str, Any]:
    """A bearer token verified by the handler itself, with the authorizer's settings:
    ``DRAMAC_JWT_JWKS_URL`` (+ ``DRAMAC_JWT_ISSUER``, ``DRAMAC_JWT_AUDIENCE``) for asymmetric tokens,
    else the HS256 secret."""
    import jwt

    settings = get_settings()
    if not settings.jwt_jwks_url and not settings.jwt_secret_configured and settings.in_lambda:
        # In AWS the documented local secret would let anyone sign tokens: fail closed until configured.
        raise Unauthorized("Bearer tokens are not accepted here until DRAMAC_JWT_JWKS_URL is configured; "
                           "use X-Api-Key", code="invalid_token")
    try:
        if settings.jwt_jwks_url:
            signing_key = _jwks_client(settings.jwt_jwks_url).get_signing_key_from_jwt(token).key
            return verify_jwt(token, signing_key, algorithms=("RS256", "ES256"), audience=settings.jwt_audience,
                              issuer=settings.jwt_issuer)
        return verify_jwt(token, settings.jwt_secret, algorithms=("HS256",), audience=settings.jwt_audience,
                          issuer=settings.jwt_issuer)
    except jwt.PyJWTError as exc:
        raise Unauthorized("The bearer token is not valid", code="invalid_token") from exc


def dev_token_claims(token: str) -> dict[str, Any]:
    """The claims of a token of the local stack (``dramac token``: HS256, the dev secret, issuer
    ``dramac-local``); ``jwt.InvalidTokenError`` otherwise. ``dramac dev``'s gateway verifies with it."""
    from .settings import DEV_JWT_ISSUER

    return verify_jwt(token, get_settings().jwt_secret, algorithms=("HS256",), audience=JWT_AUDIENCE,
                      issuer=DEV_JWT_ISSUER)


# -- site API keys ---------------------------------------------------------------------------------

KEY_PREFIX = "dk_live_"
KEY_RE = re.compile(r"^dk_live_([0-9a-f]{32})_([A-Za-z0-9_-]{43})\Z")
TOUCH_INTERVAL_SECONDS = 60  # last_used_at is refreshed at most this often, not on every request
_INVALID_KEY = "The API key is not valid (unknown, revoked or expired)"


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def new_key(key_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{key_id.hex}_{secrets.token_urlsafe(32)}"


def key_prefix(key_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{key_id.hex}"


def verify_api_key(presented: str) -> SiteApiKey:
    """The key's scope, or 401 ``invalid_api_key``; the same answer whatever is wrong with it."""
    match = KEY_RE.match(presented.strip()) if isinstance(presented, str) else None
    if not match:
        raise Unauthorized(_INVALID_KEY, code="invalid_api_key")
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
            raise Unauthorized(_INVALID_KEY, code="invalid_api_key")
        if row["stale"]:
            unit.execute("UPDATE public.site_api_keys SET last_used_at = now() WHERE id = %s", (key_id,))
    return SiteApiKey(key_id=row["id"], site_id=row["site_id"], agency_id=row["agency_id"],
                      modules=tuple(row["modules"]) if row["modules"] is not None else None,
                      created_by=row["created_by"])


# -- the request's caller --------------------------------------------------------------------------


def _authorizer_claims(event: dict[str, Any]) -> dict[str, Any] | None:
    claims = ((event.get("requestContext") or {}).get("authorizer") or {}).get("jwt", {}).get("claims")
    return claims if isinstance(claims, dict) else None


def caller_from_event(event: dict[str, Any]) -> Caller:
    """The caller of a JWT route: the claims API Gateway's authorizer verified; else 401."""
    claims = _authorizer_claims(event)
    if claims is None:
        raise Unauthorized("Sign in to use this API", code="unauthorized")
    return Caller.from_claims(claims)


def is_api_key(token: str) -> bool:
    """Whether a credential has the shape of a site API key (a bearer may be one, as supabase-js sends it)."""
    return token.strip().startswith(KEY_PREFIX)


def principal_from_event(event: dict[str, Any]) -> Principal:
    """The caller of a JWT-or-API-key route: the authorizer's claims when a JWT authorizer (or
    ``dramac dev``) verified a bearer; else a bearer verified here; else the ``X-Api-Key``; else 401.

    Supabase clients send a site API key as ``apikey`` and, without a signed-in user, as the bearer too:
    a bearer shaped like a key is verified as a key, and ``apikey`` is a key header like ``X-Api-Key``.
    With a user's bearer, the user acts; an ``apikey`` sent alongside must still be a valid key (as
    Supabase's gateway requires)."""
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    apikey = (headers.get("apikey") or "").strip()
    claims = _authorizer_claims(event)
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if claims is None and token and is_api_key(token):
        if apikey and apikey != token:
            raise Unauthorized("The apikey header and the bearer name different keys", code="invalid_api_key")
        return verify_api_key(token)
    if claims is not None or token:
        caller = Caller.from_claims(claims if claims is not None else verified_bearer_claims(token))
        if apikey:
            verify_api_key(apikey)
        return caller
    key = apikey or (headers.get("x-api-key") or "").strip()
    if key:
        return verify_api_key(key)
    raise Unauthorized("Sign in, or send a site API key in X-Api-Key", code="unauthorized")


async def current_caller(request: Request) -> Caller:
    """FastAPI dependency of JWT routes. A coroutine, though it never awaits: FastAPI would run a sync
    dependency in its thread pool, and under Mangum that starts a new OS thread on every request
    (``core.inplace``). It only reads the claims the authorizer verified, so it never blocks a shared
    event loop either."""
    return caller_from_event(request.scope.get("aws.event") or {})


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency of JWT-or-API-key routes. Verifying a key reads the database (and a bearer may
    need the JWKS): in place under Mangum, in the thread pool under an ASGI server (``core.inplace``)."""
    return await call_blocking(principal_from_event, request.scope.get("aws.event") or {})


CallerDep = Annotated[Caller, Depends(current_caller)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
