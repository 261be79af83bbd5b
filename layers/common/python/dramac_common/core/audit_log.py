"""The audit trail's read (``GET /api/agencies/{agencyId}/audit-log``): the agency's owners and super
admins page through ``public.audit_log`` (written by ``core.audit.record``), newest first.

Only subscribe serves this route, so its models live here rather than beside ``record``, which every
writing function imports.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, NamedTuple

from . import jsonbody
from .db import Unit
from .errors import Forbidden, ValidationFailed
from .tenancy import require_agency_access
from .wire import CamelModel

ACTION_FILTER = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?\Z")
MAX_PAGE = 200


class AuditEntry(CamelModel):
    id: int
    occurred_at: datetime
    agency_id: uuid.UUID | None
    site_id: uuid.UUID | None
    actor_user_id: uuid.UUID | None
    actor_key_id: uuid.UUID | None
    actor_role: str
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]


class AuditPage(CamelModel):
    entries: list[AuditEntry]
    next_before: int | None  # pass as ``before`` for the next (older) page; None: this is the last


class AuditFilter(NamedTuple):
    action: str | None = None  # exact (``api_key.revoked``) or a prefix (``api_key.*``)
    site_id: uuid.UUID | None = None
    actor_user_id: uuid.UUID | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None  # occurred_at >= since
    until: datetime | None = None  # occurred_at < until
    before: int | None = None  # keyset cursor: entries older than this id
    limit: int = 50


def list_entries(unit: Unit, agency_id: uuid.UUID, where: AuditFilter) -> AuditPage:
    """The agency's trail, newest first, one page: 404 for an agency the caller is not in, 403 for a
    member who is not an owner (row-level security returns nothing to them either)."""
    access = require_agency_access(unit, agency_id)
    if access.role not in ("owner", "super_admin"):
        raise Forbidden("Only the agency's owners may read its audit log", code="forbidden")
    if where.action is not None and not ACTION_FILTER.match(where.action):
        raise ValidationFailed("action must be an action (api_key.revoked) or a prefix (api_key.*)",
                               code="validation_error", details=[{"field": "action", "message": "not an action"}])
    jsonbody.check_value({"targetType": where.target_type, "targetId": where.target_id}, where="query")
    prefix = where.action[:-1] if where.action and where.action.endswith(".*") else None
    rows = unit.fetchall(
        """
        SELECT id, occurred_at, agency_id, site_id, actor_user_id, actor_key_id, actor_role, action, target_type,
               target_id, details
        FROM public.audit_log
        WHERE agency_id = %(agency)s
          AND (%(action)s::text IS NULL OR action = %(action)s)
          AND (%(prefix)s::text IS NULL OR starts_with(action, %(prefix)s))
          AND (%(site)s::uuid IS NULL OR site_id = %(site)s)
          AND (%(actor)s::uuid IS NULL OR actor_user_id = %(actor)s)
          AND (%(target_type)s::text IS NULL OR target_type = %(target_type)s)
          AND (%(target_id)s::text IS NULL OR target_id = %(target_id)s)
          AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s)
          AND (%(before)s::bigint IS NULL OR id < %(before)s)
        ORDER BY id DESC
        LIMIT %(limit)s
        """,
        {"agency": agency_id, "action": None if prefix else where.action, "prefix": prefix,
         "site": where.site_id, "actor": where.actor_user_id, "target_type": where.target_type,
         "target_id": where.target_id, "since": where.since, "until": where.until, "before": where.before,
         "limit": where.limit + 1},
    )
    page = rows[: where.limit]
    more = len(rows) > where.limit
    return AuditPage(entries=[AuditEntry.model_validate(r) for r in page],
                     next_before=page[-1]["id"] if more and page else None)
