"""The module catalogue's admin side (platform super admins only; anyone else 403 ``super_admin_required``).
Capability: ``dramac_common.marketplace`` (``admin``).

Routes:
  POST /api/admin/modules                                          create a draft module
  GET  /api/admin/modules                                          every module, whatever its status
  GET  /api/admin/modules/{moduleId}                               a module with every version and the current one
  POST /api/admin/modules/{moduleId}/versions                      add a version {"version"?, "manifest", "changelog"?}:
                                                                   validated, stored as a draft, answered with its dry run
  GET  /api/admin/modules/{moduleId}/versions/{version}            one version with its manifest
  POST /api/admin/modules/{moduleId}/versions/{version}/dry-run    the exact DDL on a fresh site and as an upgrade
  POST /api/admin/modules/{moduleId}/versions/{version}/publish    publish (only when its dry run succeeds)
  POST /api/admin/modules/{moduleId}/versions/{version}/deprecate  no new installs or upgrades to it
  POST /api/admin/modules/{moduleId}/versions/{version}/unpublish  withdraw it from the catalogue
"""

from typing import Any

from dramac_common.core import db
from dramac_common.core.api import ModuleId, ModuleVersion, create_app, envelope, lambda_handler
from dramac_common.core.auth import CallerDep
from dramac_common.core.wire import Envelope
from dramac_common.marketplace import admin
from dramac_common.marketplace.admin import AdminModule, NewModule, NewVersion, VersionInfo
from fastapi.responses import JSONResponse

app = create_app("DRAMAC: module catalogue (super admins)")


@app.post("/api/admin/modules", response_model=Envelope[AdminModule], status_code=201)
def create_module(body: NewModule, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(admin.create_module(unit, body), status_code=201)


@app.get("/api/admin/modules", response_model=Envelope[list[AdminModule]])
def list_modules(caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(admin.list_modules(unit))


@app.get("/api/admin/modules/{moduleId}", response_model=Envelope[AdminModule])
def get_module(module_id: ModuleId, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(admin.get_module(unit, module_id))


@app.post("/api/admin/modules/{moduleId}/versions", response_model=Envelope[VersionInfo], status_code=201)
def add_version(module_id: ModuleId, body: NewVersion, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        added = admin.add_version(unit, module_id, body)
    with db.user_unit(caller.db_claims) as unit:
        inputs = admin.dry_run_inputs(unit, module_id, added.version)
    plan = admin.run_dry_run(inputs)
    return envelope(added.model_copy(update={"dry_run": plan.as_dict()}), status_code=201)


@app.get("/api/admin/modules/{moduleId}/versions/{version}", response_model=Envelope[VersionInfo])
def get_version(module_id: ModuleId, version: ModuleVersion, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(admin.get_version(unit, module_id, version))


@app.post("/api/admin/modules/{moduleId}/versions/{version}/dry-run", response_model=Envelope[dict[str, Any]])
def dry_run(module_id: ModuleId, version: ModuleVersion, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        inputs = admin.dry_run_inputs(unit, module_id, version)
    return envelope(admin.run_dry_run(inputs).as_dict())


@app.post("/api/admin/modules/{moduleId}/versions/{version}/publish", response_model=Envelope[AdminModule])
def publish(module_id: ModuleId, version: ModuleVersion, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        inputs = admin.dry_run_inputs(unit, module_id, version)
    tested = admin.run_dry_run(inputs)
    with db.user_unit(caller.db_claims) as unit:
        return envelope(admin.change_version_status(unit, module_id, version, "publish", tested=tested,
                                                    tested_previous=inputs.previous_version))


@app.post("/api/admin/modules/{moduleId}/versions/{version}/deprecate", response_model=Envelope[AdminModule])
def deprecate(module_id: ModuleId, version: ModuleVersion, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(admin.change_version_status(unit, module_id, version, "deprecate"))


@app.post("/api/admin/modules/{moduleId}/versions/{version}/unpublish", response_model=Envelope[AdminModule])
def unpublish(module_id: ModuleId, version: ModuleVersion, caller: CallerDep) -> JSONResponse:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(admin.change_version_status(unit, module_id, version, "unpublish"))


handler = lambda_handler(app, service="catalog")
