"""Marketplace entry points: the catalogue, free-module subscriptions and the health check.

Routes:
  GET  /api/health              liveness and database reachability (no auth)
  GET  /api/modules             the published catalogue (any signed-in user)
  POST /api/modules/subscribe   subscribe an agency to a free module (manage role)
"""

from __future__ import annotations

import uuid

from dramac_common.core import db
from dramac_common.core.api import Envelope, create_app, envelope, error_response, lambda_handler
from dramac_common.core.auth import Caller, current_caller
from dramac_common.marketplace import catalog as marketplace
from fastapi import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

app = create_app("DRAMAC marketplace: subscribe")


class SubscribeRequest(BaseModel):
    agencyId: uuid.UUID  # noqa: N815 - the contract's field names
    moduleId: uuid.UUID  # noqa: N815


@app.get("/api/health")
def health() -> JSONResponse:
    try:
        with db.service_unit() as unit:
            unit.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any failure to reach the database is "unavailable"
        return error_response(503, "The database is unreachable", "database_unavailable")
    return envelope({"status": "ok", "database": "ok"})


@app.get("/api/modules", response_model=Envelope[list[marketplace.Module]])
def list_modules(caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(marketplace.list_published_modules(unit))


@app.post("/api/modules/subscribe", response_model=Envelope[marketplace.Subscription], status_code=201)
def subscribe(body: SubscribeRequest, caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        subscription, created = marketplace.subscribe_to_free_module(unit, body.agencyId, body.moduleId)
    return envelope(subscription, status_code=201 if created else 200)


handler = lambda_handler(app, service="subscribe")
