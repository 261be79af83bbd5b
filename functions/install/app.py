"""Modules on sites: install, re-enable, disable and read site_modules.
Capability: ``dramac_common.installations`` (``site_modules``).

Routes:
  GET    /api/sites/{siteId}/modules              installations on the site (read)
  GET    /api/sites/{siteId}/modules/{moduleId}   one installation; poll it while it provisions (read)
  POST   /api/sites/{siteId}/modules/{moduleId}   install or re-enable {"config"?} (manage): 201 active,
                                                  200 already active, 202 provisioning (a job is queued)
  DELETE /api/sites/{siteId}/modules/{moduleId}   disable; the site's module data is kept (manage)
"""

from __future__ import annotations

from typing import Any

from dramac_common.core import db
from dramac_common.core.api import ModuleId, SiteId, create_app, envelope, lambda_handler
from dramac_common.core.auth import CallerDep
from dramac_common.core.wire import CamelModel, Envelope
from dramac_common.installations import site_modules
from dramac_common.installations.site_modules import Installation
from fastapi.responses import JSONResponse

app = create_app("DRAMAC: site module installations")


class InstallRequest(CamelModel):
    config: dict[str, Any] | None = None


@app.get("/api/sites/{siteId}/modules", response_model=Envelope[list[Installation]])
def list_site_modules(site_id: SiteId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(site_modules.list_installations(unit, site_id))


@app.get("/api/sites/{siteId}/modules/{moduleId}", response_model=Envelope[Installation])
def get_site_module(site_id: SiteId, module_id: ModuleId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(site_modules.get_installation(unit, site_id, module_id))


@app.post("/api/sites/{siteId}/modules/{moduleId}", response_model=Envelope[Installation], status_code=201)
def install_site_module(site_id: SiteId, module_id: ModuleId, caller: CallerDep,
                        body: InstallRequest | None = None) -> JSONResponse:
    config = body.config if body else None
    with db.user_unit(caller.db_claims) as unit:
        installation, status = site_modules.install_module(unit, site_id, module_id, installed_by=caller.user_id,
                                                            config=config)
    return envelope(installation, status_code=status)


@app.delete("/api/sites/{siteId}/modules/{moduleId}", response_model=Envelope[Installation])
def disable_site_module(site_id: SiteId, module_id: ModuleId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(site_modules.disable_module(unit, site_id, module_id, actor_id=caller.user_id))


handler = lambda_handler(app, service="install")
