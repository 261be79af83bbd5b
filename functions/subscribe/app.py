"""Marketplace entry points: the catalogue, free-module subscriptions and the health check.
Capability: ``dramac_common.marketplace`` (``catalog``).

Routes:
  GET  /api/health              liveness and database reachability (no auth)
  GET  /api/modules             the published catalogue (any signed-in user but a client user)
  POST /api/modules/subscribe   subscribe an agency to a free module (owners: billing, docs/roles.md)
  GET  /api/agencies/{agencyId}/audit-log   the agency's audit trail, newest first (owners), from
       ``dramac_common.core.audit_log``: ?action=&siteId=&actorUserId=&targetType=&targetId=&since=&until=
       &before=&limit=
"""

import uuid
from datetime import datetime
from typing import Annotated

from dramac_common.core import audit_log, db
from dramac_common.core.api import AgencyId, create_app, envelope, error_response, lambda_handler
from dramac_common.core.auth import CallerDep
from dramac_common.core.wire import CamelModel, Envelope
from dramac_common.marketplace import catalog
from dramac_common.marketplace.catalog import Module, Subscription
from fastapi import Query
from fastapi.responses import JSONResponse

app = create_app("DRAMAC marketplace: subscribe")


class SubscribeRequest(CamelModel):
    agency_id: uuid.UUID
    module_id: uuid.UUID


class Health(CamelModel):
    status: str
    database: str


@app.get("/api/health", response_model=Envelope[Health])
def health() -> JSONResponse:
    try:
        with db.service_unit() as unit:
            unit.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure to reach the database is "unavailable"
        return error_response(503, "The database is unreachable", "database_unavailable")
    return envelope(Health(status="ok", database="ok"))


@app.get("/api/modules", response_model=Envelope[list[Module]])
def list_modules(caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(catalog.list_published_modules(unit))


@app.post("/api/modules/subscribe", response_model=Envelope[Subscription], status_code=201)
def subscribe(body: SubscribeRequest, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        subscription, created = catalog.subscribe_to_free_module(unit, body.agency_id, body.module_id)
    return envelope(subscription, status_code=201 if created else 200)


@app.get("/api/agencies/{agencyId}/audit-log", response_model=Envelope[audit_log.AuditPage])
def read_audit_log(
    agency_id: AgencyId, caller: CallerDep,
    action: Annotated[str | None, Query(max_length=200)] = None,
    site_id: Annotated[uuid.UUID | None, Query(alias="siteId")] = None,
    actor_user_id: Annotated[uuid.UUID | None, Query(alias="actorUserId")] = None,
    target_type: Annotated[str | None, Query(alias="targetType", max_length=100)] = None,
    target_id: Annotated[str | None, Query(alias="targetId", max_length=200)] = None,
    since: datetime | None = None, until: datetime | None = None,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Annotated[int, Query(ge=1, le=audit_log.MAX_PAGE)] = 50,
) -> JSONResponse:
    where = audit_log.AuditFilter(action=action, site_id=site_id, actor_user_id=actor_user_id,
                                  target_type=target_type, target_id=target_id, since=since, until=until,
                                  before=before, limit=limit)
    with db.user_unit(caller.db_claims) as unit:
        return envelope(audit_log.list_entries(unit, agency_id, where))


handler = lambda_handler(app, service="subscribe")
