"""An agency's people: its team and its client users (docs/roles.md).
Capability: ``dramac_common.agencies`` (``members``).

Routes:
  GET    /api/agencies/{agencyId}/members            the team and client users (the team reads)
  POST   /api/agencies/{agencyId}/members            add an existing user with a role (owners)
  PATCH  /api/agencies/{agencyId}/members/{userId}   change a role (owners; the last owner stays)
  DELETE /api/agencies/{agencyId}/members/{userId}   remove someone (owners; the last owner stays)
"""

import uuid
from typing import Annotated

from dramac_common.agencies import members
from dramac_common.agencies.members import AgencyRole, AgencyUser
from dramac_common.core import db
from dramac_common.core.api import AgencyId, create_app, envelope, lambda_handler
from dramac_common.core.auth import CallerDep
from dramac_common.core.wire import CamelModel, Envelope
from fastapi import Path
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field

app = create_app("DRAMAC agencies: members and client users")

UserId = Annotated[uuid.UUID, Path(alias="userId")]


class AddMemberRequest(CamelModel):
    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID | None = None
    email: str | None = Field(default=None, min_length=3, max_length=320)
    role: AgencyRole
    client_id: uuid.UUID | None = None


class ChangeRoleRequest(CamelModel):
    model_config = ConfigDict(extra="forbid")

    role: AgencyRole
    client_id: uuid.UUID | None = None


@app.get("/api/agencies/{agencyId}/members", response_model=Envelope[list[AgencyUser]])
def list_members(agency_id: AgencyId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(members.list_people(unit, agency_id))


@app.post("/api/agencies/{agencyId}/members", response_model=Envelope[AgencyUser], status_code=201)
def add_member(agency_id: AgencyId, body: AddMemberRequest, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        person, new = members.add_person(unit, agency_id, user_id=body.user_id, email=body.email, role=body.role,
                                         client_id=body.client_id)
    return envelope(person, status_code=201 if new else 200)


@app.patch("/api/agencies/{agencyId}/members/{userId}", response_model=Envelope[AgencyUser])
def change_member_role(agency_id: AgencyId, user_id: UserId, body: ChangeRoleRequest,
                       caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(members.change_role(unit, agency_id, user_id, role=body.role, client_id=body.client_id))


@app.delete("/api/agencies/{agencyId}/members/{userId}", response_model=Envelope[AgencyUser])
def remove_member(agency_id: AgencyId, user_id: UserId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(members.remove_person(unit, agency_id, user_id))


handler = lambda_handler(app, service="agencies")
