"""The module data API (contract section 5) and site API keys.
Capabilities: ``dramac_common.module_data``; the keys that unlock it are managed here too
(``dramac_common.installations.api_keys``).

Routes (``{module}`` is the module's id or slug):
  GET    /api/sites/{siteId}/modules/{moduleId}/data/{table}         rows: PostgREST-style filters, select,
                                                                     order, limit, offset, count=exact
  POST   /api/sites/{siteId}/modules/{moduleId}/data/{table}         create one (object) or many (array)
  POST   /api/sites/{siteId}/modules/{moduleId}/data/_batch          several operations, one transaction
  GET    /api/sites/{siteId}/modules/{moduleId}/data/{table}/{id}    one row
  PATCH  /api/sites/{siteId}/modules/{moduleId}/data/{table}/{id}    update one row
  DELETE /api/sites/{siteId}/modules/{moduleId}/data/{table}/{id}    delete one row
  GET    /api/sites/{siteId}/modules/{moduleId}/storage              widget storage: keys (?prefix=)
  GET|PUT|DELETE /api/sites/{siteId}/modules/{moduleId}/storage/{key}  widget storage: one value
  POST|GET /api/sites/{siteId}/api-keys, DELETE /api/sites/{siteId}/api-keys/{keyId}   (manage role)
  GET|HEAD|POST|PATCH|DELETE /api/sites/{siteId}/modules/{moduleId}/rest/{table}
                                                                     PostgREST's wire protocol over the same SDK

JSON numbers are exact both ways: a number with a fraction arrives as ``Decimal`` (never a float) and
``numeric`` values are written back with all their digits.

Creating POSTs (rows, _batch, api-keys) honour an Idempotency-Key: a repeat with the same key answers
the first answer (a created key's secret is shown once, so its replay carries no secret).
Data and storage routes accept a JWT (docs/roles.md: owners, admins and members read and write; client
users on their client's sites as the module's ``clientAccess`` says; super admins read, audited) or a
site API key (``X-Api-Key``: its own site, its modules, reads and writes).
"""

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any

import psycopg
from dramac_common.core import db, jsonbody
from dramac_common.core.api import KeyId, ModuleRef, SiteId, create_app, envelope, lambda_handler, logger
from dramac_common.core.auth import CallerDep, PrincipalDep, principal_from_event, principal_id
from dramac_common.core.errors import ApiError, BadRequest, NotFound, database_error
from dramac_common.core.idempotency import IdempotencyKey, idempotent_response
from dramac_common.core.inplace import call_blocking
from dramac_common.core.tenancy import Action, site_unit
from dramac_common.core.wire import CamelModel, Envelope
from dramac_common.installations.api_keys import (
    ApiKeyInfo,
    CreatedApiKey,
    create_api_key,
    list_api_keys,
    revoke_api_key,
    without_secret,
)
from dramac_common.module_data import ModuleDatabaseSDK, WidgetStorage, parse_query_params
from fastapi import Body, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import Response
from pydantic import ConfigDict, Field

app = create_app("DRAMAC module data API", exact_numbers=True)

SITE = "/api/sites/{siteId}"
DATA = SITE + "/modules/{moduleId}/data"
STORAGE = SITE + "/modules/{moduleId}/storage"
REST = SITE + "/modules/{moduleId}/rest"
JsonBody = Annotated[Any, Body()]  # any JSON document: the SDK checks it against the module's tables


class RowsEnvelope(Envelope[list[dict[str, Any]]]):
    count: int | None = None  # with ?count=exact: every matching row, not only this page


class StorageValue(CamelModel):
    key: str
    value: Any


class StorageDeleted(CamelModel):
    key: str
    deleted: bool


_EXACT_NUMBERS: dict[Any, Callable[[Any], Any]] = {Decimal: jsonbody.finite, float: jsonbody.finite}


def data_response(data: Any, status_code: int = 200, *, count: int | None = None) -> Response:
    """Rows in the envelope, numbers exact: ``numeric`` values keep every digit (a JSON number literal,
    as PostgREST writes them); NaN and infinities are strings, as in PostgreSQL's own JSON."""
    content = {"success": True, "data": data}
    if count is not None:  # ?count=exact
        content["count"] = count
    return Response(exact_json(content), status_code=status_code, media_type="application/json")


def _leaf(value: Any) -> Any:
    """A value simplejson cannot write itself, as ``jsonable_encoder`` writes it: the common column
    types directly, anything else (intervals, inet, bytea, a model) through ``jsonable_encoder``."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.date | dt.time):  # a datetime is a date
        return value.isoformat()
    return jsonable_encoder(value, custom_encoder=_EXACT_NUMBERS)


def exact_json(data: Any) -> str:
    """``data`` as JSON text with exact numbers (what ``data_response`` writes; replays keep it).

    simplejson walks the rows once and asks ``_leaf`` only for what it cannot write itself; walking
    them first with ``jsonable_encoder`` cost a quarter of a 50-row read. A NaN or an infinity (a
    ``numeric`` or ``float8`` column may hold one; JSON has none) is refused by the fast walk, and that
    rare answer takes the old path, which writes them as the strings ``to_json`` gives."""
    try:
        return jsonbody.dumps(data, default=_leaf)
    except ValueError:
        return jsonbody.dumps(jsonable_encoder(data, custom_encoder=_EXACT_NUMBERS))


READ, WRITE = Action.READ_MODULE_DATA, Action.WRITE_MODULE_DATA


def open_sdk(unit: db.Unit, site_id: uuid.UUID, module: str, *, write: bool = False) -> ModuleDatabaseSDK:
    """The module's data for this request; a site API key's module scope and a client user's
    ``clientAccess`` are checked by the shared gate."""
    return ModuleDatabaseSDK.for_request(unit, site_id=site_id, module=module, write=write)


def open_storage(unit: db.Unit, site_id: uuid.UUID, module: str, *, write: bool = False) -> WidgetStorage:
    return WidgetStorage.for_request(unit, site_id=site_id, module=module, write=write)


# -- module data ---------------------------------------------------------------------------------

@app.post(DATA + "/_batch", response_model=Envelope[list[Any]])
def batch(request: Request, site_id: SiteId, module: ModuleRef, body: JsonBody,
          principal: PrincipalDep, idempotency_key: IdempotencyKey = None) -> Response:
    operations = body.get("operations") if isinstance(body, dict) else body
    if not isinstance(operations, list):
        raise BadRequest('The body is {"operations": [...]}', code="invalid_batch")

    def act() -> tuple[int, Any]:
        with site_unit(principal, site_id, action=WRITE, gated=True) as unit:
            return 200, open_sdk(unit, site_id, module, write=True).batch(operations)

    return idempotent_response(request, scope="module-data-batch", principal=principal_id(principal),
                               fingerprint={"siteId": str(site_id), "module": module, "body": body}, action=act,
                               data_json=exact_json)


@app.get(DATA + "/{table}", response_model=RowsEnvelope)
def list_rows(request: Request, table: str, site_id: SiteId, module: ModuleRef,
              principal: PrincipalDep) -> Response:
    query = parse_query_params(request.query_params.multi_items())
    with site_unit(principal, site_id, action=READ, gated=True) as unit:
        rows, count = open_sdk(unit, site_id, module).query(table, query, last=True)
    return data_response(rows, count=count if query.count else None)


@app.post(DATA + "/{table}", response_model=Envelope[dict[str, Any] | list[dict[str, Any]]], status_code=201)
def create_rows(request: Request, table: str, site_id: SiteId, module: ModuleRef,
                body: JsonBody, principal: PrincipalDep,
                idempotency_key: IdempotencyKey = None) -> Response:
    if not isinstance(body, dict | list):
        raise BadRequest("The body is an object of column values, or an array of them", code="invalid_body")

    def act() -> tuple[int, Any]:
        with site_unit(principal, site_id, action=WRITE, gated=True) as unit:
            rows = open_sdk(unit, site_id, module, write=True).create(table, body)
        return 201, rows[0] if isinstance(body, dict) else rows

    return idempotent_response(request, scope="module-data-create", principal=principal_id(principal),
                               fingerprint={"siteId": str(site_id), "module": module, "table": table, "body": body},
                               action=act, data_json=exact_json)


@app.get(DATA + "/{table}/{row_id}", response_model=Envelope[dict[str, Any]])
def get_row(request: Request, table: str, row_id: str, site_id: SiteId, module: ModuleRef,
            principal: PrincipalDep) -> Response:
    query = parse_query_params(request.query_params.multi_items())
    with site_unit(principal, site_id, action=READ, gated=True) as unit:
        row = open_sdk(unit, site_id, module).find_by_id(table, row_id, select=query.select)
    if row is None:
        raise NotFound("No such row on this site", code="row_not_found")
    return data_response(row)


@app.patch(DATA + "/{table}/{row_id}", response_model=Envelope[dict[str, Any]])
def update_row(table: str, row_id: str, site_id: SiteId, module: ModuleRef,
               body: JsonBody, principal: PrincipalDep) -> Response:
    if not isinstance(body, dict):
        raise BadRequest("The body is an object of column values", code="invalid_body")
    with site_unit(principal, site_id, action=WRITE, gated=True) as unit:
        row = open_sdk(unit, site_id, module, write=True).update_by_id(table, row_id, body)
    if row is None:
        raise NotFound("No such row on this site", code="row_not_found")
    return data_response(row)


@app.delete(DATA + "/{table}/{row_id}", response_model=Envelope[dict[str, Any]])
def delete_row(table: str, row_id: str, site_id: SiteId, module: ModuleRef,
               principal: PrincipalDep) -> Response:
    with site_unit(principal, site_id, action=WRITE, gated=True) as unit:
        row = open_sdk(unit, site_id, module, write=True).delete_by_id(table, row_id)
    if row is None:
        raise NotFound("No such row on this site", code="row_not_found")
    return data_response(row)


# -- the PostgREST surface ------------------------------------------------------------------------

async def rest_table(request: Request, table: str, site_ref: Annotated[str, Path(alias="siteId")],
                     module: Annotated[str, Path(alias="moduleId")]) -> Response:
    """supabase-js, postgrest-js and postgrest-py work here unchanged (docs/module_data_rest.md); the
    ``/rest/v1/{table}`` alias is where supabase-js looks. Every answer, refusals included, is PostgREST's
    (``{"code", "message", "details", "hint"}``), never the envelope; the site and module are checked by
    the same gate as the envelope API's, so their refusals come in PostgREST's shape too."""
    from dramac_common.module_data import rest  # on the first PostgREST request, not at every cold start

    body = await request.body()
    event = request.scope.get("aws.event") or {}
    headers = {k.lower(): v for k, v in request.headers.items()}
    params = request.query_params.multi_items()
    try:
        # in place under Mangum, in the thread pool under an ASGI server (core.inplace), as a sync route runs
        result = await call_blocking(rest.serve, lambda: principal_from_event(event), request.method,
                                     site_ref, module, table, params, headers, body)
    except (ApiError, psycopg.Error) as exc:
        error = exc if isinstance(exc, ApiError) else database_error(exc)
        if error is None:
            logger.exception("unexpected database error", extra={"sqlstate": getattr(exc, "sqlstate", None)})
            error = rest.RestError(500, "PGRST000", "Internal error")
        status, content, extra = rest.rest_error_body(error)
        return Response(jsonbody.dumps(content), status_code=status, headers=extra,
                        media_type="application/json; charset=utf-8")
    media = rest.OBJECT_MEDIA_TYPE if result.single else "application/json"
    text = "" if result.body is None or request.method == "HEAD" else exact_json(result.body)
    return Response(text, status_code=result.status, headers=result.headers,
                    media_type=f"{media}; charset=utf-8" if result.body is not None else None)


for _method in ("GET", "HEAD", "POST", "PATCH", "DELETE"):  # one operation (and operation id) per method
    app.add_api_route(REST + "/{table}", rest_table, methods=[_method], operation_id=f"rest_{_method.lower()}",
                      response_model=list[dict[str, Any]], summary=f"{_method}: PostgREST's protocol over a module table")
    app.add_api_route(REST + "/v1/{table}", rest_table, methods=[_method], operation_id=f"rest_v1_{_method.lower()}",
                      response_model=list[dict[str, Any]],
                      summary=f"{_method}: the same, where supabase-js looks (its URL + rest/v1)")


# -- widget storage ------------------------------------------------------------------------------

@app.get(STORAGE, response_model=Envelope[list[str]])
def list_storage_keys(site_id: SiteId, module: ModuleRef, principal: PrincipalDep,
                      prefix: str | None = None) -> Response:
    with site_unit(principal, site_id, action=READ, gated=True) as unit:
        keys = open_storage(unit, site_id, module).list_keys(prefix)
    return data_response(keys)


@app.get(STORAGE + "/{key}", response_model=Envelope[StorageValue])
def get_storage_value(key: str, site_id: SiteId, module: ModuleRef,
                      principal: PrincipalDep) -> Response:
    missing = object()
    with site_unit(principal, site_id, action=READ, gated=True) as unit:
        value = open_storage(unit, site_id, module).get(key, missing)
    if value is missing:
        raise NotFound("No such key", code="key_not_found")
    return data_response({"key": key, "value": value})


@app.put(STORAGE + "/{key}", response_model=Envelope[dict[str, Any]])
def set_storage_value(key: str, site_id: SiteId, module: ModuleRef, body: JsonBody,
                      principal: PrincipalDep) -> Response:
    if not isinstance(body, dict) or "value" not in body:
        raise BadRequest('The body is {"value": <any JSON>}', code="invalid_body")
    with site_unit(principal, site_id, action=WRITE, gated=True) as unit:
        row = open_storage(unit, site_id, module, write=True).set(key, body["value"])
    return data_response(row)


@app.delete(STORAGE + "/{key}", response_model=Envelope[StorageDeleted])
def delete_storage_value(key: str, site_id: SiteId, module: ModuleRef,
                         principal: PrincipalDep) -> Response:
    with site_unit(principal, site_id, action=WRITE, gated=True) as unit:
        deleted = open_storage(unit, site_id, module, write=True).delete(key)
    if not deleted:
        raise NotFound("No such key", code="key_not_found")
    return data_response({"key": key, "deleted": True})


# -- site API keys -------------------------------------------------------------------------------

class CreateApiKeyRequest(CamelModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)
    modules: list[str] | None = None
    expires_at: dt.datetime | None = None
    rotates_key_id: uuid.UUID | None = None
    overlap_seconds: int | None = None


@app.post(SITE + "/api-keys", response_model=Envelope[CreatedApiKey], status_code=201)
def create_key(body: CreateApiKeyRequest, request: Request, site_id: SiteId,
               caller: CallerDep, idempotency_key: IdempotencyKey = None) -> Response:
    def act() -> tuple[int, Any]:
        with db.user_unit(caller.db_claims) as unit:
            return 201, create_api_key(unit, caller, site_id, name=body.name, modules=body.modules,
                                       expires_at=body.expires_at, rotates_key_id=body.rotates_key_id,
                                       overlap_seconds=body.overlap_seconds)

    # the key is shown once: a replay answers the same key (id, prefix) without the secret
    return idempotent_response(request, scope="api-key-create", principal=str(caller.user_id),
                               fingerprint={"siteId": str(site_id), "body": body.model_dump(mode="json", by_alias=True)},
                               action=act, stored=without_secret)


@app.get(SITE + "/api-keys", response_model=Envelope[list[ApiKeyInfo]])
def list_keys(site_id: SiteId, caller: CallerDep) -> Response:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(list_api_keys(unit, site_id))


@app.delete(SITE + "/api-keys/{keyId}", response_model=Envelope[ApiKeyInfo])
def revoke_key(site_id: SiteId, key_id: KeyId,
               caller: CallerDep) -> Response:
    with db.user_unit(caller.db_claims) as unit:
        return envelope(revoke_api_key(unit, site_id, key_id))


handler = lambda_handler(app, service="module_api")
