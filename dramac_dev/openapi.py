"""One OpenAPI 3.1 document for the whole HTTP API, merged from every HTTP function's own FastAPI
document (``functions/<name>/app.py`` exposes its app as ``app``), keeping exactly the operations the
route table (``dramac_dev.routes.ROUTES``) gives API Gateway, with the security each route has there.

``make openapi`` writes it to docs/openapi.json (checked in; tests/unit/test_openapi.py fails when it
is stale); ``dramac dev`` serves it at /api/docs/openapi.json beside Swagger UI at /api/docs.
"""

from __future__ import annotations

import copy
import json
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any

from . import routes
from .functions_loader import available_functions, load_function

TITLE = "DRAMAC API"
DOCUMENT = Path("docs") / "openapi.json"
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                   "description": "A Supabase session token (API Gateway's JWT authorizer verifies it)"},
    "siteApiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                   "description": "A site API key (POST /api/sites/{siteId}/api-keys)"},
}
SECURITY: dict[str, list[dict[str, list[str]]]] = {
    routes.JWT: [{"bearerAuth": []}],
    routes.JWT_OR_API_KEY: [{"bearerAuth": []}, {"siteApiKey": []}],
    routes.NONE: [],
}


class OpenApiError(RuntimeError):
    """A function's document and the route table disagree."""


def function_document(name: str) -> dict[str, Any]:
    app = getattr(load_function(name), "app", None)
    if app is None or not hasattr(app, "openapi"):
        raise OpenApiError(f"functions/{name}/app.py serves routes of dramac_dev/routes.py but exposes no FastAPI "
                           "app as `app` (dramac_common.core.api.create_app): the merged document cannot include it")
    return copy.deepcopy(app.openapi())


def _rewrite_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (_renamed_ref(v, renames) if k == "$ref" and isinstance(v, str) else _rewrite_refs(v, renames))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, renames) for v in node]
    return node


def _renamed_ref(ref: str, renames: dict[str, str]) -> str:
    prefix = "#/components/schemas/"
    if ref.startswith(prefix) and ref[len(prefix):] in renames:
        return prefix + renames[ref[len(prefix):]]
    return ref


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def merged_document(functions: list[str] | None = None) -> dict[str, Any]:
    """The merged document. A route whose function folder exists but whose operation the function's
    app does not define raises ``OpenApiError`` naming both."""
    present = set(available_functions())
    names = [f for f in (functions or routes.functions()) if f in present]
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    operation_ids: set[str] = set()
    for name in names:
        document = function_document(name)
        own = document.get("components", {}).get("schemas", {})
        # Same name, different schema in two functions: this function's copy gets its name as a prefix.
        renames = {s: f"{_camel(name)}{s}" for s, schema in own.items() if s in schemas and schemas[s] != schema}
        document = _rewrite_refs(document, renames)
        for schema_name, schema in document.get("components", {}).get("schemas", {}).items():
            schemas[renames.get(schema_name, schema_name)] = schema
        # API Gateway's path and the app's may name a parameter differently ({id}, {row_id}): matched by
        # shape, written with the app's names (which its operation's parameters use).
        by_shape = {_shape(path): path for path in document.get("paths", {})}
        for route in (r for r in routes.ROUTES if r.function == name):
            path = by_shape.get(_shape(route.path), route.path)
            operation = document.get("paths", {}).get(path, {}).get(route.method.lower())
            if operation is None:
                raise OpenApiError(f"{route.route_key} is routed to functions/{name} (dramac_dev/routes.py), "
                                   f"but functions/{name}/app.py defines no such operation")
            operation = {**operation, "tags": [name]}
            if route.summary and "summary" not in operation:
                operation["summary"] = route.summary
            operation["security"] = SECURITY[route.auth]
            if operation.get("operationId") in operation_ids:
                operation["operationId"] = f"{name}_{operation['operationId']}"
            operation_ids.add(operation.get("operationId", ""))
            paths.setdefault(path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": version("dramac-backend"),
                 "description": "Every route of the DRAMAC HTTP API (docs/contract.md), one tag per function. "
                                "Responses use the contract's envelope: {success, data} or {success, error, code}."},
        "tags": [{"name": name, "description": f"functions/{name}"} for name in names],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": SECURITY_SCHEMES},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
