"""Modules on sites: install, re-enable, disable and read site_modules.
Capability: ``dramac_common.installations`` (``site_modules``).

Routes:
  GET    /api/sites/{siteId}/modules              installations on the site (read)
  GET    /api/sites/{siteId}/modules/{moduleId}   one installation; poll it while it provisions (read)
  POST   /api/sites/{siteId}/modules/{moduleId}   install or re-enable {"config"?} (manage): 201 active,
                                                  200 already active, 202 provisioning (a job is queued)
  DELETE /api/sites/{siteId}/modules/{moduleId}   disable; the site's module data is kept (manage)
  GET    /api/sites/{siteId}/modules/{moduleId}/upgrade?toVersion=   what an upgrade would do: versions
                                                  above the site's, the DDL, allowed or why not (manage)
  POST   /api/sites/{siteId}/modules/{moduleId}/upgrade {"toVersion"?}   upgrade (manage; default: the
                                                  latest): 200 done, 202 queued for the provisioner, 409 refused
  POST   /api/sites/{siteId}/modules/{moduleId}/export   the site's data of the module as NDJSON per table in a
                                                  zip in S3, with a presigned download URL (manage): 201
  POST   /api/sites/{siteId}/modules/{moduleId}/purge {"confirm": "<slug>"}   schedule deleting the site's data of
                                                  the module after the grace period (owner): 202
  DELETE /api/sites/{siteId}/modules/{moduleId}/purge   undo a pending purge during the grace period (owner)
"""

from typing import Annotated, Any

from dramac_common.core import db
from dramac_common.core.api import ModuleId, SiteId, create_app, envelope, lambda_handler
from dramac_common.core.auth import CallerDep
from dramac_common.core.wire import CamelModel, Envelope
from dramac_common.installations import data_export, purge, site_modules, upgrades
from dramac_common.installations.data_export import ExportResult
from dramac_common.installations.site_modules import Installation
from dramac_common.installations.upgrades import UpgradePreview
from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import Field

app = create_app("DRAMAC: site module installations")


SEMVER = r"^(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})\.(0|[1-9]\d{0,8})$"


class InstallRequest(CamelModel):
    config: dict[str, Any] | None = None


class PurgeRequest(CamelModel):
    confirm: str | None = Field(default=None, max_length=200)


class UpgradeRequest(CamelModel):
    to_version: str | None = Field(default=None, pattern=SEMVER)


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


@app.get("/api/sites/{siteId}/modules/{moduleId}/upgrade", response_model=Envelope[UpgradePreview])
def preview_upgrade(site_id: SiteId, module_id: ModuleId, caller: CallerDep,
                    to_version: Annotated[str | None, Query(alias="toVersion", pattern=SEMVER)] = None) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(upgrades.preview_upgrade(unit, site_id, module_id, to_version))


@app.post("/api/sites/{siteId}/modules/{moduleId}/upgrade", response_model=Envelope[Installation])
def upgrade_site_module(site_id: SiteId, module_id: ModuleId, caller: CallerDep,
                        body: UpgradeRequest | None = None) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        installation, status = upgrades.upgrade_module(unit, site_id, module_id,
                                                       to_version=body.to_version if body else None,
                                                       actor_id=caller.user_id)
    return envelope(installation, status_code=status)


@app.post("/api/sites/{siteId}/modules/{moduleId}/export", response_model=Envelope[ExportResult], status_code=201)
def export_site_module_data(site_id: SiteId, module_id: ModuleId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(data_export.export_module_data(unit, site_id, module_id), status_code=201)


@app.post("/api/sites/{siteId}/modules/{moduleId}/purge", response_model=Envelope[Installation], status_code=202)
def purge_site_module_data(site_id: SiteId, module_id: ModuleId, caller: CallerDep,
                           body: PurgeRequest | None = None) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        installation, status = purge.request_purge(unit, site_id, module_id, confirm=body.confirm if body else None,
                                                   actor_id=caller.user_id)
    return envelope(installation, status_code=status)


@app.delete("/api/sites/{siteId}/modules/{moduleId}/purge", response_model=Envelope[Installation])
def cancel_site_module_purge(site_id: SiteId, module_id: ModuleId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(purge.cancel_purge(unit, site_id, module_id))


handler = lambda_handler(app, service="install")
