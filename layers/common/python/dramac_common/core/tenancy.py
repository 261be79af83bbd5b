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

MANAGE_ROLES = frozenset({"owner", "admin", "super_admin"})
OWNER_ROLES = frozenset({"owner", "super_admin"})  # billing and destroying data


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


def require_site_owner(unit: Unit, site_id: uuid.UUID) -> SiteAccess:
    """A site of an agency the caller owns (or any, for a super admin): 404 for another agency's, 403
    for its admins and members."""
    access = require_site_access(unit, site_id)
    if access.role not in OWNER_ROLES:
        raise Forbidden("Only an owner of the agency may do this", code="owner_required")
    return access


def require_agency_owner(unit: Unit, agency_id: uuid.UUID) -> AgencyAccess:
    """An agency the caller owns (or any, for a super admin): 404 otherwise, 403 for admins and members."""
    access = require_agency_access(unit, agency_id)
    if access.role not in OWNER_ROLES:
        raise Forbidden("Only an owner of the agency may do this", code="owner_required")
    return access


def require_super_admin(unit: Unit) -> None:
    """The platform's own operations (the module catalogue): super admins only, 403 for anyone else."""
    row = unit.fetchone("SELECT (SELECT private.is_super_admin()) AS is_super_admin")
    if row is None or not row["is_super_admin"]:
        raise Forbidden("Only a platform super admin may manage the module catalogue", code="super_admin_required")


@contextmanager
def site_unit(principal: Principal, site_id: uuid.UUID, *, manage: bool) -> Iterator[Unit]:
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
