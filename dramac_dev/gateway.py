"""The local API Gateway: verifies the bearer token, turns each HTTP request into an API Gateway v2
event for the real handler, and sends every non-``/api`` request through the domain router first,
as CloudFront would."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import jwt
from dramac_common.core.errors import error_envelope
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount
from starlette.routing import Route as StarletteRoute

from . import routes
from .events import LocalContext, call_handler, http_event
from .tokens import verify_token

log = logging.getLogger("dramac.gateway")
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(error_envelope(message, code), status_code=status)


def _bearer_claims(request: Request) -> dict[str, Any] | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    try:
        return verify_token(token.strip())
    except jwt.InvalidTokenError:
        return None


def lambda_result_to_response(result: dict[str, Any]) -> Response:
    body = result.get("body") or ""
    content = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    response = Response(content=content, status_code=int(result.get("statusCode", 200)))
    for key, value in (result.get("headers") or {}).items():
        if key.lower() != "content-length":
            response.headers[key] = str(value)
    for key, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.append(key, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.append("set-cookie", cookie)
    return response


def build_gateway(handlers: dict[str, Handler], domain_router: Handler | None = None) -> Starlette:
    async def api(request: Request) -> Response:
        path, method = request.url.path, request.method
        found = routes.match(method, path)
        if found is None:
            allowed = routes.allowed_methods(path)
            if allowed:
                return _error(405, f"Method not allowed; use {', '.join(allowed)}", "method_not_allowed")
            return _error(404, "No such route", "route_not_found")
        route, params = found
        handler = handlers.get(route.function)
        if handler is None:
            return _error(404, "No such route", "route_not_found")
        claims = None
        if route.auth == routes.JWT:
            claims = _bearer_claims(request)
            if claims is None:
                return _error(401, "A valid bearer token is required", "unauthorized")
        body = await request.body()
        event = http_event(
            method, path, raw_body=body if body else None, query=request.url.query,
            headers=dict(request.headers), claims=claims, route_key=route.route_key, path_parameters=params,
            source_ip=request.client.host if request.client else "127.0.0.1",
        )
        try:
            result = await run_in_threadpool(call_handler, handler, event, LocalContext(route.function))
        except Exception:  # as API Gateway does when a function crashes
            log.exception("%s raised", route.function)
            return _error(502, "The function failed", "function_error")
        return lambda_result_to_response(result)

    async def site(request: Request) -> Response:
        if domain_router is None:
            return _error(404, "No such route", "route_not_found")
        from .edge import viewer_request_event

        # CloudFront hands the router the path as the viewer sent it, percent-encoding intact
        raw_path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        event = viewer_request_event(request.method, request.headers.get("host", "localhost"), raw_path,
                                     request.url.query, dict(request.headers),
                                     request.client.host if request.client else "127.0.0.1")
        result = await run_in_threadpool(call_handler, domain_router, event, LocalContext("domain_router", timeout_s=5))
        if "status" in result:  # a generated response (redirect, 400, 404)
            response = Response(content=(result.get("body") or "").encode(), status_code=int(result["status"]))
            for values in (result.get("headers") or {}).values():
                for header in values:
                    response.headers.append(header["key"], header["value"])
            return response
        # No dashboard origin runs locally: say where CloudFront would have sent the request.
        query = f"?{result['querystring']}" if result.get("querystring") else ""
        headers = {v[0]["key"]: v[0]["value"] for k, v in (result.get("headers") or {}).items()
                   if k.startswith("x-dramac")}
        return JSONResponse({"success": True, "data": {"origin": "dashboard", "method": result.get("method"),
                                                        "uri": f"{result['uri']}{query}", "headers": headers}})

    async def dispatch(request: Request) -> Response:
        if request.url.path == "/api" or request.url.path.startswith("/api/"):
            return await api(request)
        return await site(request)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
    return Starlette(routes=[*docs_routes(handlers), StarletteRoute("/{path:path}", dispatch, methods=methods)])


DOCS_PATH = "/api/docs"


def docs_routes(handlers: dict[str, Handler]) -> list[BaseRoute]:
    """Swagger UI at /api/docs on the merged OpenAPI document of the functions this stack runs, its files
    from the swagger-ui-bundle-v2 package (no CDN: the page works offline). Local only: API Gateway
    has no such route."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from starlette.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    from .openapi import TITLE, merged_document

    document: dict[str, Any] = {}

    async def openapi(_: Request) -> Response:
        if not document:  # built once, on first use: the handlers are already loaded
            document.update(await run_in_threadpool(merged_document, sorted(handlers)))
        return JSONResponse(document)

    async def page(_: Request) -> Response:
        return get_swagger_ui_html(
            openapi_url=f"{DOCS_PATH}/openapi.json", title=f"{TITLE} (local)",
            swagger_js_url=f"{DOCS_PATH}/assets/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_PATH}/assets/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_PATH}/assets/favicon-32x32.png",
        )

    return [
        StarletteRoute(DOCS_PATH, page, methods=["GET"]),
        StarletteRoute(f"{DOCS_PATH}/openapi.json", openapi, methods=["GET"]),
        Mount(f"{DOCS_PATH}/assets", app=StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui"),
    ]


def dumps(result: Any) -> str:
    return json.dumps(result, indent=2, default=str)
