"""Modules on sites: install, re-enable, disable and read installations.

Routes:
  GET    /api/sites/{siteId}/modules              installations on the site (read)
  GET    /api/sites/{siteId}/modules/{moduleId}   one installation; poll it while it provisions (read)
  POST   /api/sites/{siteId}/modules/{moduleId}   install or re-enable {"config"?} (manage): 201 active,
                                                  200 already active, 202 provisioning (a job is queued)
  DELETE /api/sites/{siteId}/modules/{moduleId}   disable; the site's module data is kept (manage)
"""

from __future__ import annotations

import uuid
from typing import Any

from dramac_common.core import db
from dramac_common.core.api import Envelope, create_app, envelope, lambda_handler
from dramac_common.core.auth import Caller, current_caller
from dramac_common.installations import site_modules as installations
from fastapi import Depends, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel

app = create_app("DRAMAC: site module installations")

SiteId = Path(alias="siteId")
ModuleId = Path(alias="moduleId")


class InstallRequest(BaseModel):
    config: dict[str, Any] | None = None


@app.get("/api/sites/{siteId}/modules", response_model=Envelope[list[installations.Installation]])
def list_site_modules(site_id: uuid.UUID = SiteId, caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(installations.list_installations(unit, site_id))


@app.get("/api/sites/{siteId}/modules/{moduleId}", response_model=Envelope[installations.Installation])
def get_site_module(site_id: uuid.UUID = SiteId, module_id: uuid.UUID = ModuleId,
                    caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(installations.get_installation(unit, site_id, module_id))


@app.post("/api/sites/{siteId}/modules/{moduleId}", response_model=Envelope[installations.Installation],
          status_code=201)
def install_site_module(body: InstallRequest | None = None, site_id: uuid.UUID = SiteId,
                        module_id: uuid.UUID = ModuleId, caller: Caller = Depends(current_caller)) -> JSONResponse:
    config = body.config if body else None
    with db.user_unit(caller.db_claims) as unit:
        installation, status = installations.install_module(unit, site_id, module_id, installed_by=caller.user_id,
                                                            config=config)
    return envelope(installation, status_code=status)


@app.delete("/api/sites/{siteId}/modules/{moduleId}", response_model=Envelope[installations.Installation])
def disable_site_module(site_id: uuid.UUID = SiteId, module_id: uuid.UUID = ModuleId,
                        caller: Caller = Depends(current_caller)) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(installations.disable_module(unit, site_id, module_id))


handler = lambda_handler(app, service="install")
