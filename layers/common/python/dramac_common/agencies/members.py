"""An agency's people: its team (owner, admin, member) and its client users (each of one client).

Reading the list is the team's; adding someone, changing a role and removing someone are the owners'
(``core.tenancy``: ``Action.VIEW_MEMBERS`` / ``Action.MANAGE_MEMBERS``). Writes go through
``private.set_agency_role`` / ``private.remove_agency_user`` (migration 0120), which check the caller
again; a trigger keeps at least one owner in every agency, serialised on the agency's row, so two
owners demoting each other at the same moment end with one of them still owner (409 ``last_owner``).
Every change is written to the audit log in its transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import psycopg

from ..core import audit
from ..core.db import Unit
from ..core.errors import BadRequest, Conflict, NotFound
from ..core.tenancy import Action, refusal, require_agency_access
from ..core.wire import CamelModel

AgencyRole = Literal["owner", "admin", "member", "client"]
LAST_OWNER_CONSTRAINT = "agency_last_owner"


class AgencyUser(CamelModel):
    user_id: uuid.UUID
    email: str | None = None
    full_name: str | None = None
    role: AgencyRole
    client_id: uuid.UUID | None = None
    created_at: dt.datetime | None = None


_PEOPLE = """
    SELECT m.user_id, p.email, p.full_name, m.role, NULL::uuid AS client_id, m.created_at
    FROM public.agency_members m LEFT JOIN public.profiles p ON p.id = m.user_id
    WHERE m.agency_id = %(agency)s AND (%(user)s::uuid IS NULL OR m.user_id = %(user)s::uuid)
    UNION ALL
    SELECT c.user_id, p.email, p.full_name, 'client', c.client_id, c.created_at
    FROM public.client_users c LEFT JOIN public.profiles p ON p.id = c.user_id
    WHERE c.agency_id = %(agency)s AND (%(user)s::uuid IS NULL OR c.user_id = %(user)s::uuid)
    ORDER BY created_at, user_id
"""


def list_people(unit: Unit, agency_id: uuid.UUID) -> list[AgencyUser]:
    require_agency_access(unit, agency_id, action=Action.VIEW_MEMBERS)
    return [AgencyUser.model_validate(r) for r in unit.fetchall(_PEOPLE, {"agency": agency_id, "user": None})]


def _person(unit: Unit, agency_id: uuid.UUID, user_id: uuid.UUID) -> AgencyUser | None:
    row = unit.fetchone(_PEOPLE, {"agency": agency_id, "user": user_id})
    return AgencyUser.model_validate(row) if row else None


def _require_client(unit: Unit, agency_id: uuid.UUID, role: str, client_id: uuid.UUID | None) -> None:
    if role == "client" and client_id is None:
        raise BadRequest("A client user needs clientId: the client whose sites it sees", code="client_required")
    if role != "client" and client_id is not None:
        raise BadRequest("clientId is for client users only", code="client_not_allowed")
    if client_id is not None and unit.fetchone(
            "SELECT 1 FROM public.clients WHERE id = %s AND agency_id = %s", (client_id, agency_id)) is None:
        raise NotFound("Client not found", code="client_not_found")


def _find_user(unit: Unit, user_id: uuid.UUID | None, email: str | None) -> uuid.UUID:
    """An existing user, by id or (case-insensitively) by email. Through a security-definer lookup: a
    profile is not visible to an owner before its user joins the agency."""
    if (user_id is None) == (email is None):
        raise BadRequest("Name the user by userId or by email (one of them)", code="user_required")
    found: uuid.UUID | None = unit.call_write_path("find_user", user_id, email)
    if found is None:
        raise NotFound("No user with this id or email has signed up", code="user_not_found")
    return found


@contextmanager
def _member_write(last_owner: str) -> Iterator[None]:
    """A member write path's refusals as the caller's answers: the last-owner trigger's (409
    ``last_owner``), and a caller whose ownership a concurrent change took meanwhile (403: the write
    paths lock the agency before they check it, migration 0170). Either ends the unit (rolled back)."""
    try:
        yield
    except psycopg.errors.CheckViolation as exc:
        if exc.diag.constraint_name == LAST_OWNER_CONSTRAINT:
            raise Conflict(last_owner, code="last_owner") from exc
        raise
    except psycopg.errors.InsufficientPrivilege as exc:
        raise refusal(Action.MANAGE_MEMBERS) from exc


def _set_role(unit: Unit, agency_id: uuid.UUID, user_id: uuid.UUID, role: str,
              client_id: uuid.UUID | None) -> dict[str, object]:
    with _member_write("The agency would have no owner left: make someone else owner first"):
        result: dict[str, object] = unit.call_write_path("set_agency_role", agency_id, user_id, role, client_id)
    return result


def add_person(unit: Unit, agency_id: uuid.UUID, *, user_id: uuid.UUID | None, email: str | None,
               role: str, client_id: uuid.UUID | None) -> tuple[AgencyUser, bool]:
    """Give an existing user a role in the agency. Returns the person and whether it is new to the
    agency (a repeat with the same role changes nothing and answers the same)."""
    require_agency_access(unit, agency_id, action=Action.MANAGE_MEMBERS)
    _require_client(unit, agency_id, role, client_id)
    user = _find_user(unit, user_id, email)
    result = _set_role(unit, agency_id, user, role, client_id)
    previous = result.get("previous_role")
    if previous != role or role == "client":
        audit.record(unit, "member.added" if previous is None else "member.role_changed", agency_id=agency_id,
                     target_type="user", target_id=user, details={"role": role, "previous_role": previous,
                                                                   "client_id": str(client_id) if client_id else None})
    person = _person(unit, agency_id, user)
    assert person is not None  # written just now, in this transaction
    return person, previous is None


def change_role(unit: Unit, agency_id: uuid.UUID, user_id: uuid.UUID, *, role: str,
                client_id: uuid.UUID | None) -> AgencyUser:
    require_agency_access(unit, agency_id, action=Action.MANAGE_MEMBERS)
    _require_client(unit, agency_id, role, client_id)
    try:
        result = _set_role(unit, agency_id, user_id, role, client_id)
    except psycopg.errors.ForeignKeyViolation as exc:  # no such user at all
        raise NotFound("This user is not in the agency", code="member_not_found") from exc
    if result.get("previous_role") is None:
        # not (or no longer: the write path reads it under the agency's lock) in the agency: raising
        # rolls back the row the write path gave them, so a role change never brings a removed person back
        raise NotFound("This user is not in the agency", code="member_not_found")
    audit.record(unit, "member.role_changed", agency_id=agency_id, target_type="user", target_id=user_id,
                 details={"role": role, "previous_role": result.get("previous_role"),
                          "client_id": str(client_id) if client_id else None})
    person = _person(unit, agency_id, user_id)
    assert person is not None
    return person


def remove_person(unit: Unit, agency_id: uuid.UUID, user_id: uuid.UUID) -> AgencyUser:
    require_agency_access(unit, agency_id, action=Action.MANAGE_MEMBERS)
    person = _person(unit, agency_id, user_id)
    if person is None:
        raise NotFound("This user is not in the agency", code="member_not_found")
    with _member_write("The agency's last owner cannot be removed: make someone else owner first"):
        removed = unit.call_write_path("remove_agency_user", agency_id, user_id)
    if removed is None:  # a concurrent removal won
        raise NotFound("This user is not in the agency", code="member_not_found")
    audit.record(unit, "member.removed", agency_id=agency_id, target_type="user", target_id=user_id,
                 details={"role": person.role})
    return person
