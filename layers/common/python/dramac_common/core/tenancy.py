"""Who may do what on which agency or site: the one place these rules live (docs/roles.md).

The seed's five roles are ``Role``; what a route does is an ``Action``; ``MATRIX`` says which roles may
take each action. The database holds the same rules (migration 0120: ``private.agency_role``,
``private.site_role``, ``private.can_own_agency``, the module data helpers), so a caller that reaches
the tables directly (``authenticated``, as on Supabase) meets them too.

Checks run inside the caller's unit of work, as ``authenticated``: a resource the caller cannot see
does not exist for it (404); a caller who can see it but whose role may not take the action gets 403.
Client users see their client's sites only, and of those only the module data (a module's manifest
says ``clientAccess``: ``none``, ``read`` (default) or ``write``). Super admins see everything, read
module data of every site (each read audited) and write none of it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, NamedTuple

from . import db
from .auth import Principal, SiteApiKey
from .db import Unit
from .errors import Forbidden, NotFound
from .ratelimit import RateLimit


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    OWNER = "owner"
    ADMIN = "admin"
    MEMBER = "member"
    CLIENT = "client"


class Action(StrEnum):
    VIEW_CATALOGUE = "view_catalogue"  # GET /api/modules
    BILL = "bill"  # subscribe, purchase, markup, cancel, complete a sandbox checkout
    VIEW_SUBSCRIPTIONS = "view_subscriptions"
    MANAGE_MEMBERS = "manage_members"  # add, change the role of, remove members and client users
    VIEW_MEMBERS = "view_members"
    OPERATE = "operate"  # install/disable/upgrade modules, site API keys, automation: the agency's operations
    VIEW_OPERATIONS = "view_operations"  # installations, workflows, executions, event types, webhooks
    READ_MODULE_DATA = "read_module_data"  # client users: unless the manifest says clientAccess "none"
    WRITE_MODULE_DATA = "write_module_data"  # client users: when the manifest says clientAccess "write"
    MANAGE_CATALOGUE = "manage_catalogue"  # the platform's module catalogue: modules, versions, publishing
    DESTROY_DATA = "destroy_data"  # purge a module's data from a site (and undo a pending purge)


_AGENCY_TEAM = frozenset({Role.SUPER_ADMIN, Role.OWNER, Role.ADMIN, Role.MEMBER})

MATRIX: dict[Action, frozenset[Role]] = {
    Action.VIEW_CATALOGUE: _AGENCY_TEAM,
    Action.BILL: frozenset({Role.SUPER_ADMIN, Role.OWNER}),
    Action.VIEW_SUBSCRIPTIONS: _AGENCY_TEAM,
    Action.MANAGE_MEMBERS: frozenset({Role.SUPER_ADMIN, Role.OWNER}),
    Action.VIEW_MEMBERS: _AGENCY_TEAM,
    Action.OPERATE: frozenset({Role.SUPER_ADMIN, Role.OWNER, Role.ADMIN}),
    Action.VIEW_OPERATIONS: _AGENCY_TEAM,
    Action.READ_MODULE_DATA: _AGENCY_TEAM | {Role.CLIENT},
    Action.WRITE_MODULE_DATA: frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER, Role.CLIENT}),
    Action.MANAGE_CATALOGUE: frozenset({Role.SUPER_ADMIN}),
    Action.DESTROY_DATA: frozenset({Role.SUPER_ADMIN, Role.OWNER}),
}

# Kept for callers that still ask "owner or admin?" (manage=True is Action.OPERATE).
MANAGE_ROLES = frozenset({Role.OWNER.value, Role.ADMIN.value, Role.SUPER_ADMIN.value})

CLIENT_ACCESS_LEVELS = ("none", "read", "write")

_REFUSALS: dict[Action, str] = {
    Action.VIEW_CATALOGUE: "Client users do not see the marketplace",
    Action.BILL: "Only an owner of the agency may change its billing",
    Action.MANAGE_MEMBERS: "Only an owner of the agency may manage its members",
    Action.OPERATE: "Only an owner or admin of the agency may change this",
    Action.WRITE_MODULE_DATA: "Your role may not change this module's data",
    Action.DESTROY_DATA: "Only an owner of the agency may purge a module's data",
}


def allows(role: str | None, action: Action) -> bool:
    """Whether ``role`` may take ``action`` (for client users, before the module's ``clientAccess``)."""
    return role is not None and role in MATRIX[action]


def _action(manage: bool, action: Action | None, read: Action) -> Action:
    return action if action is not None else (Action.OPERATE if manage else read)


def refusal(action: Action) -> Forbidden:
    """The 403 for a role the matrix does not allow to take ``action``."""
    return Forbidden(_REFUSALS.get(action, "Your role may not do this"), code="forbidden")


class AgencyAccess(NamedTuple):
    agency_id: uuid.UUID
    role: str

    @property
    def can_manage(self) -> bool:
        return allows(self.role, Action.OPERATE)

    @property
    def is_owner(self) -> bool:
        return allows(self.role, Action.BILL)


class SiteAccess(NamedTuple):
    site_id: uuid.UUID
    agency_id: uuid.UUID
    role: str

    @property
    def can_manage(self) -> bool:
        return allows(self.role, Action.OPERATE)


def require_agency_access(unit: Unit, agency_id: uuid.UUID, *, manage: bool = False,
                          action: Action | None = None) -> AgencyAccess:
    """The caller's role in the agency, if it may take ``action`` there (``manage``: OPERATE; neither:
    VIEW_OPERATIONS). 404 for anyone outside the agency's team (client users included: the agency's
    business is not theirs), 403 for a team role the matrix does not allow."""
    wanted = _action(manage, action, Action.VIEW_OPERATIONS)
    row = unit.fetchone("SELECT a.id, private.agency_role(a.id) AS role FROM public.agencies a WHERE a.id = %s",
                        (agency_id,))
    return require_agency_role(agency_id, row["role"] if row is not None else None, wanted)


def require_agency_role(agency_id: uuid.UUID, role: str | None, action: Action) -> AgencyAccess:
    """``require_agency_access``'s verdict on a role already read (``private.agency_role``, e.g. by a
    write path that checks and writes in one statement): 404 outside the agency's team, 403 for a team
    role the matrix does not allow."""
    if role is None or role == Role.CLIENT:
        raise NotFound("Agency not found", code="agency_not_found")
    if not allows(role, action):
        raise refusal(action)
    return AgencyAccess(agency_id=agency_id, role=role)


def roles_allowed(action: Action) -> list[str]:
    """The roles the matrix lets take ``action``, for a write path that checks them in the database."""
    return sorted(role.value for role in MATRIX[action])


def require_site_access(unit: Unit, site_id: uuid.UUID, *, manage: bool = False,
                        action: Action | None = None) -> SiteAccess:
    """The caller's role on the site, if it may take ``action`` there (``manage``: OPERATE; neither:
    VIEW_OPERATIONS). 404 when the caller cannot see the site (another agency's, or for a client user
    another client's); 403 when it can but its role may not."""
    row = unit.fetchone("SELECT s.id, s.agency_id, private.site_role(s.id) AS role FROM public.sites s WHERE s.id = %s",
                        (site_id,))
    return site_access_from(row, manage=manage, action=action)


def require_role(role: str | None, action: Action) -> None:
    """403 unless ``role`` (the caller's on a site or agency it can see) may take ``action``."""
    if not allows(role, action):
        raise refusal(action)


def site_access_from(row: dict[str, Any] | None, *, manage: bool = False, action: Action | None = None) -> SiteAccess:
    """``require_site_access`` for a row the caller read itself (``id``, ``agency_id`` and ``role`` of the
    site as ``private.site_role`` says, or None), e.g. in one statement with the rest of its checks."""
    wanted = _action(manage, action, Action.VIEW_OPERATIONS)
    if row is None or row["role"] is None:
        raise NotFound("Site not found", code="site_not_found")
    if not allows(row["role"], wanted):
        raise refusal(wanted)
    return SiteAccess(site_id=row["id"], agency_id=row["agency_id"], role=row["role"])


def require_super_admin(unit: Unit) -> None:
    """The platform's own operations (the module catalogue): super admins only, 403 for anyone else."""
    row = unit.fetchone("SELECT (SELECT private.is_super_admin()) AS is_super_admin")
    if row is None or not row["is_super_admin"]:
        raise Forbidden("Only a platform super admin may manage the module catalogue", code="super_admin_required")


def require_catalogue_access(unit: Unit) -> None:
    """403 for a client user who is no agency's member: the marketplace is the agencies'."""
    row = unit.fetchrow(
        """
        SELECT (SELECT private.is_super_admin()) AS is_super_admin,
               cardinality((SELECT private.member_agency_ids())::uuid[]) > 0 AS is_member,
               EXISTS (SELECT 1 FROM public.client_users c WHERE c.user_id = (SELECT auth.uid())) AS is_client
        """)
    if row["is_client"] and not (row["is_member"] or row["is_super_admin"]):
        raise refusal(Action.VIEW_CATALOGUE)


def client_access(manifest: dict[str, Any] | None) -> str:
    """What a module's manifest lets client users do with its data: none, read (default) or write."""
    value = (manifest or {}).get("clientAccess")
    return value if value in CLIENT_ACCESS_LEVELS else "read"


def require_module_data_role(role: str | None, manifest: dict[str, Any] | None, *, write: bool) -> None:
    """The module-level part of the matrix, once the module is known: a client user reads a module's
    data unless its manifest says ``clientAccess: "none"`` (then the module is not there for it: 404)
    and writes only when it says ``"write"``; a super admin never writes. ``role`` None is a site API
    key or a worker's scope, bounded by its key scope instead."""
    if role == Role.CLIENT:
        level = client_access(manifest)
        if level == "none":
            raise NotFound("This module is not installed on the site", code="module_not_installed")
        if write and level != "write":
            raise Forbidden("This module's data is read-only for client users", code="forbidden")
    if write and role is not None and not allows(role, Action.WRITE_MODULE_DATA):
        raise refusal(Action.WRITE_MODULE_DATA)


@contextmanager
def site_unit(principal: Principal, site_id: uuid.UUID, *, manage: bool = False,
              action: Action | None = None, gated: bool = False) -> Iterator[Unit]:
    """A unit of work on one site: a user must hold a role the matrix allows for ``action`` there
    (``manage``: OPERATE); a site API key must be the site's own (keys may read and write module data
    and emit events: that is what they are for). The unit of the data and events routes: the site's
    rate limit, and the key's, apply (``core.ratelimit``; 429).

    ``gated``: the route's first statement is the module gate (``module_data.gate.require_enabled_module``
    given the same ``action``), which answers only for a site the caller can read (404 ``site_not_found``
    otherwise) and applies the matrix to the caller's role there (403), in the round trip of the unit's
    opening: the separate site check is skipped.

    The unit is about this one site (``db.user_unit(site_id=...)``): module tables' policies prove that
    site alone, at a cost that does not grow with the caller's memberships."""
    if isinstance(principal, SiteApiKey):
        principal.require_site(site_id)
        with db.user_unit(principal.db_claims, RateLimit(site_id, principal.key_id), site_id=site_id) as unit:
            yield unit
        return
    with db.user_unit(principal.db_claims, RateLimit(site_id, user_id=principal.user_id), site_id=site_id) as unit:
        if not gated:
            require_site_access(unit, site_id, manage=manage, action=action)
        yield unit
