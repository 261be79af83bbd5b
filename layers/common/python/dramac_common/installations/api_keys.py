"""Site API keys, managed by a site's managers: created, listed, rotated and revoked.

A site's integrations send a key as ``X-Api-Key`` to read and write that one site's module data; how a
presented key is verified, and what it may do, is ``core.auth`` (the key's format lives there too). A
key is shown once, when created; a replay of its creation (Idempotency-Key) carries no secret.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from ..core import audit
from ..core.auth import Caller, hash_key, key_prefix, new_key
from ..core.db import Unit
from ..core.errors import Conflict, NotFound, ValidationFailed
from ..core.settings import get_settings
from ..core.tenancy import require_site_access
from ..core.wire import CamelModel

SLUG_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
MAX_ROTATION_OVERLAP_SECONDS = 30 * 24 * 3600


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


def create_api_key(unit: Unit, caller: Caller, site_id: uuid.UUID, *, name: str = "",
                   modules: list[str] | None = None, expires_at: dt.datetime | None = None,
                   rotates_key_id: uuid.UUID | None = None, overlap_seconds: int | None = None) -> CreatedApiKey:
    """A new key for the site (manage role). With ``rotates_key_id`` the old key keeps working for the
    overlap period (default ``DRAMAC_API_KEY_ROTATION_OVERLAP_SECONDS``, 24 h) and the new one inherits its name and modules;
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
        row = unit.fetchrow(
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
    audit.record(unit, "api_key.rotated" if rotates_key_id else "api_key.created", agency_id=site.agency_id,
                 site_id=site_id, target_type="api_key", target_id=key_id,
                 details={"name": row["name"], "prefix": row["key_prefix"], "modules": row["modules"],
                          "expiresAt": row["expires_at"].isoformat() if row["expires_at"] else None,
                          **({"rotatesKeyId": str(rotates_key_id)} if rotates_key_id else {})})
    return CreatedApiKey(key=key, **ApiKeyInfo.from_row(row).model_dump())


def _rotate(unit: Unit, old_key_id: uuid.UUID, values: dict[str, Any], overlap_seconds: int | None) -> dict[str, Any]:
    """Shorten the old key to the overlap and insert its successor, in one statement. The unique
    successor index makes a second rotation (sequential or racing) insert nothing."""
    overlap = get_settings().api_key_rotation_overlap_seconds if overlap_seconds is None else overlap_seconds
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


def list_api_keys(unit: Unit, site_id: uuid.UUID) -> list[ApiKeyInfo]:
    require_site_access(unit, site_id, manage=True)
    rows = unit.fetchall(f"SELECT {_KEY_COLUMNS} FROM public.site_api_keys WHERE site_id = %s "
                         "ORDER BY created_at DESC, id", (site_id,))
    return [ApiKeyInfo.from_row(r) for r in rows]


def revoke_api_key(unit: Unit, site_id: uuid.UUID, key_id: uuid.UUID) -> ApiKeyInfo:
    """Revoke at once (idempotent: revoking a revoked key returns it unchanged)."""
    site = require_site_access(unit, site_id, manage=True)
    row = unit.fetchone(
        f"""
        UPDATE public.site_api_keys SET revoked_at = coalesce(revoked_at, now())
        WHERE id = %s AND site_id = %s
        RETURNING {_KEY_COLUMNS}, revoked_at = now() AS revoked_now
        """,
        (key_id, site_id),
    )
    if row is None:
        raise NotFound("No API key with that id on this site", code="api_key_not_found")
    if row.pop("revoked_now"):  # revoking a revoked key changes nothing and records nothing
        audit.record(unit, "api_key.revoked", agency_id=site.agency_id, site_id=site_id, target_type="api_key",
                     target_id=key_id, details={"name": row["name"], "prefix": row["key_prefix"]})
    return ApiKeyInfo.from_row(row)
