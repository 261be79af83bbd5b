"""The HTTP API's route table: which function answers which contract route, and how callers
authenticate. The local gateway routes by it and the CDK app creates one API Gateway route per entry,
so the two cannot drift apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property

JWT = "jwt"  # API Gateway's JWT authorizer (dramac dev verifies the bearer token itself)
NONE = "none"  # no authorizer: public, or the handler verifies a signature of its own
# A bearer JWT or a site API key (X-Api-Key). In AWS these routes have no authorizer (API Gateway's JWT
# authorizer would refuse key-only requests before the function runs, docs/module_data.md), so the
# handler verifies the key or the bearer itself; dramac dev passes them on the same way, without claims.
JWT_OR_API_KEY = "jwt_or_api_key"


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway syntax: /api/sites/{siteId}/modules/{moduleId}
    function: str
    auth: str = JWT
    summary: str = field(default="", compare=False)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        regex = ""
        for part in re.split(r"(\{[^}]+\})", self.path):
            if part.startswith("{") and part.endswith("+}"):
                regex += f"(?P<{part[1:-2]}>.+)"
            elif part.startswith("{"):
                regex += f"(?P<{part[1:-1]}>[^/]+)"
            else:
                regex += re.escape(part)
        return re.compile(f"^{regex}$")

    @property
    def specificity(self) -> tuple[int, int]:
        """API Gateway prefers literal segments over variables, and variables over greedy ones."""
        literal = sum(1 for seg in self.path.split("/") if seg and not seg.startswith("{"))
        greedy = 1 if "+}" in self.path else 0
        return (-greedy, literal)


ROUTES: tuple[Route, ...] = (
    Route("GET", "/api/health", "subscribe", NONE, "liveness and database reachability"),
    Route("GET", "/api/modules", "subscribe", JWT, "the published catalogue"),
    Route("POST", "/api/modules/subscribe", "subscribe", JWT, "subscribe an agency to a free module"),
    Route("GET", "/api/agencies/{agencyId}/audit-log", "subscribe", JWT, "the agency's audit trail (owners)"),
    Route("POST", "/api/modules/{moduleId}/purchase", "purchase", JWT, "start buying a paid module"),
    Route("POST", "/api/webhooks/paddle", "purchase", NONE, "Paddle notifications (Paddle-Signature)"),
    Route("GET", "/api/agencies/{agencyId}/subscriptions", "purchase", JWT, "the agency's subscriptions and prices"),
    Route("PATCH", "/api/agencies/{agencyId}/subscriptions/{subscriptionId}", "purchase", JWT,
          "change a subscription's markup"),
    # An agency's team and client users (docs/roles.md)
    Route("GET", "/api/agencies/{agencyId}/members", "agencies", JWT, "the agency's team and client users"),
    Route("POST", "/api/agencies/{agencyId}/members", "agencies", JWT, "add a user with a role (owners)"),
    Route("PATCH", "/api/agencies/{agencyId}/members/{userId}", "agencies", JWT, "change a user's role (owners)"),
    Route("DELETE", "/api/agencies/{agencyId}/members/{userId}", "agencies", JWT, "remove a user (owners)"),
    Route("POST", "/api/sandbox/checkouts/{checkoutId}/complete", "purchase", JWT,
          "complete a sandbox checkout (PAYMENT_PROVIDER=sandbox only)"),
    Route("POST", "/api/agencies/{agencyId}/subscriptions/{subscriptionId}/cancel", "purchase", JWT,
          "cancel a subscription (owner): free at once, paid at the end of the billing period"),
    Route("POST", "/api/sandbox/subscriptions/{subscriptionId}/end-period", "purchase", JWT,
          "end a sandbox subscription's billing period: delivers its scheduled subscription.canceled"),
    # The catalogue's admin side (super admins): functions/catalog
    Route("POST", "/api/admin/modules", "catalog", JWT, "create a draft module"),
    Route("GET", "/api/admin/modules", "catalog", JWT, "every module, whatever its status"),
    Route("GET", "/api/admin/modules/{moduleId}", "catalog", JWT, "a module with its versions and the current one"),
    Route("POST", "/api/admin/modules/{moduleId}/versions", "catalog", JWT,
          "add a version (manifest validated, dry run answered)"),
    Route("GET", "/api/admin/modules/{moduleId}/versions/{version}", "catalog", JWT, "one version with its manifest"),
    Route("POST", "/api/admin/modules/{moduleId}/versions/{version}/dry-run", "catalog", JWT,
          "the exact DDL on a fresh site and as an upgrade"),
    Route("POST", "/api/admin/modules/{moduleId}/versions/{version}/publish", "catalog", JWT,
          "publish a version that provisions"),
    Route("POST", "/api/admin/modules/{moduleId}/versions/{version}/deprecate", "catalog", JWT,
          "deprecate a version"),
    Route("POST", "/api/admin/modules/{moduleId}/versions/{version}/unpublish", "catalog", JWT,
          "withdraw a version"),
    # Automation (contract section 6)
    Route("POST", "/api/sites/{siteId}/automation/workflows", "automation", JWT, "create a workflow"),
    Route("GET", "/api/sites/{siteId}/automation/workflows", "automation", JWT, "list workflows"),
    Route("GET", "/api/sites/{siteId}/automation/workflows/{workflowId}", "automation", JWT, "read a workflow"),
    Route("PATCH", "/api/sites/{siteId}/automation/workflows/{workflowId}", "automation", JWT, "update a workflow"),
    Route("DELETE", "/api/sites/{siteId}/automation/workflows/{workflowId}", "automation", JWT, "delete a workflow"),
    Route("GET", "/api/sites/{siteId}/automation/executions", "automation", JWT, "list executions"),
    Route("GET", "/api/sites/{siteId}/automation/executions/{executionId}", "automation", JWT,
          "an execution with its step logs"),
    Route("POST", "/api/sites/{siteId}/automation/executions/{executionId}/cancel", "automation", JWT,
          "cancel a pending, running or waiting execution"),
    Route("POST", "/api/sites/{siteId}/automation/executions/{executionId}/rerun", "automation", JWT,
          "re-run a failed or cancelled execution as a new one"),
    Route("POST", "/api/sites/{siteId}/automation/events", "automation", JWT_OR_API_KEY,
          "emit an event (manage role or site API key)"),
    Route("GET", "/api/sites/{siteId}/automation/event-types", "automation", JWT, "the site's event types"),
    Route("POST", "/api/sites/{siteId}/automation/webhooks", "automation", JWT, "create an incoming webhook"),
    Route("GET", "/api/sites/{siteId}/automation/webhooks", "automation", JWT, "list incoming webhooks"),
    Route("DELETE", "/api/sites/{siteId}/automation/webhooks/{webhookId}", "automation", JWT,
          "delete an incoming webhook"),
    Route("POST", "/api/sites/{siteId}/automation/connections", "automation", JWT,
          "create a connection (credentials, answered masked)"),
    Route("GET", "/api/sites/{siteId}/automation/connections", "automation", JWT, "list connections (masked)"),
    Route("GET", "/api/sites/{siteId}/automation/connections/{connectionId}", "automation", JWT,
          "read a connection (masked)"),
    Route("POST", "/api/sites/{siteId}/automation/connections/{connectionId}/rotate", "automation", JWT,
          "replace a connection's credentials"),
    Route("DELETE", "/api/sites/{siteId}/automation/connections/{connectionId}", "automation", JWT,
          "delete a connection"),
    Route("POST", "/api/webhooks/automation/{token}", "automation", NONE, "an incoming webhook call (secret URL)"),
    Route("GET", "/api/sites/{siteId}/modules", "install", JWT, "installations on a site"),
    Route("GET", "/api/sites/{siteId}/modules/{moduleId}", "install", JWT, "one installation (poll while provisioning)"),
    Route("POST", "/api/sites/{siteId}/modules/{moduleId}", "install", JWT, "install or re-enable a module on a site"),
    Route("DELETE", "/api/sites/{siteId}/modules/{moduleId}", "install", JWT, "disable a module on a site"),
    Route("GET", "/api/sites/{siteId}/modules/{moduleId}/upgrade", "install", JWT,
          "what upgrading the site's module would do"),
    Route("POST", "/api/sites/{siteId}/modules/{moduleId}/upgrade", "install", JWT,
          "upgrade the site's module to a newer version"),
    Route("POST", "/api/sites/{siteId}/modules/{moduleId}/export", "install", JWT,
          "export the site's data of the module (NDJSON per table, zip, presigned URL)"),
    Route("POST", "/api/sites/{siteId}/modules/{moduleId}/purge", "install", JWT,
          "schedule purging the site's data of the module (owner, confirmed, grace period)"),
    Route("DELETE", "/api/sites/{siteId}/modules/{moduleId}/purge", "install", JWT,
          "undo a pending purge during its grace period"),
    # module data API (contract section 5) and site API keys: functions/module_api
    Route("GET", "/api/sites/{siteId}/modules/{moduleId}/data/{table}", "module_api", JWT_OR_API_KEY,
          "a module table's rows, PostgREST-style filters"),
    Route("POST", "/api/sites/{siteId}/modules/{moduleId}/data/{table}", "module_api", JWT_OR_API_KEY,
          "create one row or many"),
    Route("POST", "/api/sites/{siteId}/modules/{moduleId}/data/_batch", "module_api", JWT_OR_API_KEY,
          "several operations in one transaction"),
    Route("GET", "/api/sites/{siteId}/modules/{moduleId}/data/{table}/{id}", "module_api", JWT_OR_API_KEY,
          "one row"),
    Route("PATCH", "/api/sites/{siteId}/modules/{moduleId}/data/{table}/{id}", "module_api", JWT_OR_API_KEY,
          "update one row"),
    Route("DELETE", "/api/sites/{siteId}/modules/{moduleId}/data/{table}/{id}", "module_api", JWT_OR_API_KEY,
          "delete one row"),
    # the same tables in PostgREST's wire protocol (supabase-js, postgrest-js, postgrest-py): docs/module_data_rest.md
    # (…/rest/v1/{table} too: supabase-js appends rest/v1 to the URL it is given, here …/modules/{moduleId})
    *(Route(method, f"/api/sites/{{siteId}}/modules/{{moduleId}}/{base}/{{table}}", "module_api", JWT_OR_API_KEY,
            summary)
      for base in ("rest", "rest/v1")
      for method, summary in (("GET", "rows, PostgREST protocol"), ("HEAD", "count only, PostgREST protocol"),
                              ("POST", "insert or upsert, PostgREST protocol"),
                              ("PATCH", "update filtered rows, PostgREST protocol"),
                              ("DELETE", "delete filtered rows, PostgREST protocol"))),
    Route("GET", "/api/sites/{siteId}/modules/{moduleId}/storage", "module_api", JWT_OR_API_KEY,
          "widget storage keys"),
    Route("GET", "/api/sites/{siteId}/modules/{moduleId}/storage/{key}", "module_api", JWT_OR_API_KEY,
          "a widget storage value"),
    Route("PUT", "/api/sites/{siteId}/modules/{moduleId}/storage/{key}", "module_api", JWT_OR_API_KEY,
          "set a widget storage value"),
    Route("DELETE", "/api/sites/{siteId}/modules/{moduleId}/storage/{key}", "module_api", JWT_OR_API_KEY,
          "delete a widget storage value"),
    Route("POST", "/api/sites/{siteId}/api-keys", "module_api", JWT, "create (or rotate) a site API key"),
    Route("GET", "/api/sites/{siteId}/api-keys", "module_api", JWT, "the site's API keys, without secrets"),
    Route("DELETE", "/api/sites/{siteId}/api-keys/{keyId}", "module_api", JWT, "revoke a site API key"),
)


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route for a request and its path parameters, or None (404, or 405 via ``allowed_methods``)."""
    candidates = []
    for route in ROUTES:
        if route.method not in (method, "ANY"):
            continue
        m = route.pattern.match(path)
        if m:
            candidates.append((route.specificity, route, m.groupdict()))
    if not candidates:
        return None
    candidates.sort(key=lambda c: c[0], reverse=True)
    _, route, params = candidates[0]
    return route, params


def allowed_methods(path: str) -> list[str]:
    return sorted({r.method for r in ROUTES if r.pattern.match(path)})


def functions() -> list[str]:
    return sorted({r.function for r in ROUTES})
