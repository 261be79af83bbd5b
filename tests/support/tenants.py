"""Tenants: an agency with an owner, an admin, a member, a client with a client user, and a site of
that client, written as an operator would (the ``make_tenant``, ``tenant`` and ``other_tenant`` fixtures)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


@dataclass
class Tenant:
    """An agency with an owner, an admin, a member, a client and a site."""

    agency_id: uuid.UUID
    owner: uuid.UUID
    admin: uuid.UUID
    member: uuid.UUID
    client_id: uuid.UUID
    site_id: uuid.UUID
    client_user: uuid.UUID  # a client user of client_id: sees site_id, and of it only module data


def create_tenant(owner_conn: Any) -> Tenant:
    from dramac_dev import seed

    owner = seed.create_user(owner_conn)
    admin = seed.create_user(owner_conn)
    member = seed.create_user(owner_conn)
    agency = seed.create_agency(owner_conn, owner=owner)
    seed.add_member(owner_conn, agency, admin, "admin")
    seed.add_member(owner_conn, agency, member, "member")
    client = seed.create_client(owner_conn, agency)
    site = seed.create_site(owner_conn, agency, client_id=client)
    client_user = seed.create_user(owner_conn)
    seed.add_client_user(owner_conn, agency, client, client_user)
    return Tenant(agency, owner, admin, member, client, site, client_user)
