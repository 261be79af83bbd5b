"""The audit trail: ``record`` writes who did what in the caller's transaction (migration 0075).

A change and its audit row commit together or not at all. The actor is taken by the database from the
unit's claims (a user, a site API key, or the platform for a worker's unit), never from the caller's
arguments; the row is readable by the agency's owners and super admins, and nobody can change it.
Actions are ``<thing>.<verb>`` (``installation.enabled``, ``api_key.rotated``, ``module_data.read``).
The owners' read of the trail is ``core.audit_log``, kept apart so that the functions that only
write audit rows do not define its models at their cold start.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from .db import Unit


def record(unit: Unit, action: str, *, agency_id: uuid.UUID | None, site_id: uuid.UUID | None = None,
           target_type: str | None = None, target_id: str | uuid.UUID | None = None,
           details: dict[str, Any] | None = None) -> int:
    """Append one audit row in ``unit``'s transaction; returns its id."""
    audit_id: int = unit.call_write_path(
        "record_audit", action, agency_id, site_id, target_type,
        str(target_id) if target_id is not None else None, Jsonb(details or {}))
    return audit_id
