"""Who may do what on which agency or site: the one place these rules live.

Checks run inside the caller's unit of work, as ``authenticated``: a resource the caller cannot
see through row-level security does not exist for it (404), a member without the needed role
gets 403. Super admins may do everything.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from . import db
from .auth import Principal, SiteApiKey
from .db import Unit
from .errors import Forbidden, NotFound
from .ratelimit import RateLimit

MANAGE_ROLES = frozenset({"owner", "admin", "super_admin"})


@dataclass(frozen=True)
class AgencyAccess:
    agency_id: uuid.UUID
    role: str

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGE_ROLES


@dataclass(frozen=True)
class SiteAccess:
    site_id: uuid.UUID
    agency_id: uuid.UUID
    role: str

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGE_ROLES


def _role(row: dict[str, Any]) -> str:
    return "super_admin" if row["is_super_admin"] else row["role"]


def _check_manage(role: str | None, manage: bool, what: str) -> None:
    if manage and role not in MANAGE_ROLES:
        raise Forbidden(f"Only an owner or admin of the agency may change its {what}", code="forbidden")


def require_agency_access(unit: Unit, agency_id: uuid.UUID, *, manage: bool = False) -> AgencyAccess:
    row = unit.fetchone(
        """
        SELECT a.id, m.role, (SELECT private.is_super_admin()) AS is_super_admin
        FROM public.agencies a
        LEFT JOIN public.agency_members m ON m.agency_id = a.id AND m.user_id = (SELECT auth.uid())
        WHERE a.id = %s
        """,
        (agency_id,),
    )
    if row is None or (row["role"] is None and not row["is_super_admin"]):
        raise NotFound("Agency not found", code="agency_not_found")
    role = _role(row)
    _check_manage(role, manage, "modules")
    return AgencyAccess(agency_id=row["id"], role=role)


def require_site_access(unit: Unit, site_id: uuid.UUID, *, manage: bool = False) -> SiteAccess:
    row = unit.fetchone(
        """
        SELECT s.id, s.agency_id, m.role, (SELECT private.is_super_admin()) AS is_super_admin
        FROM public.sites s
        LEFT JOIN public.agency_members m ON m.agency_id = s.agency_id AND m.user_id = (SELECT auth.uid())
        WHERE s.id = %s
        """,
        (site_id,),
    )
    if row is None or (row["role"] is None and not row["is_super_admin"]):
        raise NotFound("Site not found", code="site_not_found")
    role = _role(row)
    _check_manage(role, manage, "sites")
    return SiteAccess(site_id=row["id"], agency_id=row["agency_id"], role=role)


@contextmanager
def site_unit(principal: Principal, site_id: uuid.UUID, *, manage: bool) -> Iterator[Unit]:
    """A unit of work on one site: a user must be a member (and a manager when ``manage``); a site
    API key must be the site's own (keys may write: that is what they are for). The unit of the data
    and events routes: the site's rate limit, and the key's, apply (``core.ratelimit``; 429)."""
    if isinstance(principal, SiteApiKey):
        principal.require_site(site_id)
        with db.user_unit(principal.db_claims, RateLimit(site_id, principal.key_id)) as unit:
            yield unit
        return
    with db.user_unit(principal.db_claims, RateLimit(site_id, user_id=principal.user_id)) as unit:
        require_site_access(unit, site_id, manage=manage)
        yield unit
