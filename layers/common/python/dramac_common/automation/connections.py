"""Connections: the credentials workflows use (API tokens, basic auth, webhook signing secrets), and
the secrets typed straight into a step's headers.

At rest both are envelopes (``vault``): a connection's secret fields in
``automation_connections.secret_envelope``, a step's header values in
``workflow_steps.secret_envelopes`` (the step's ``config.headers`` keeps ``MASK`` in their place). No
route ever answers a secret: connections answer their secret fields as ``MASK``, steps their secret
headers as ``MASK``. Values are opened only by the engine, just before the step that uses them runs
(``resolve_step_secrets``), and are redacted from everything the step writes or logs.

Steps use a connection with ``"connection": "<name>"`` (an ``http_request`` then authenticates as the
connection's type says) or with templates ``{{connections.<name>.<field>}}`` in its url, headers or body.
Only owners and admins (``tenancy``: the manage role) create, rotate and delete connections; each
change writes its audit row in the same transaction.
"""

import base64
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field

from ..core import audit
from ..core.db import Unit
from ..core.errors import Conflict, NotFound, ValidationFailed
from ..core.tenancy import require_site_access
from ..core.wire import CamelModel
from . import vault
from .templates import iter_strings, template_paths
from .vault import MASK

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"


@dataclass(frozen=True)
class AuthType:
    secret: tuple[str, ...]  # encrypted, answered as MASK
    public: tuple[str, ...] = ()  # kept in config, answered as they are
    defaults: dict[str, str] = field(default_factory=dict)


AUTH_TYPES: dict[str, AuthType] = {
    "bearer": AuthType(secret=("token",)),  # Authorization: Bearer <token>
    "api_key": AuthType(secret=("token",), public=("header",), defaults={"header": "X-Api-Key"}),
    "basic": AuthType(secret=("password",), public=("username",)),  # Authorization: Basic …
    "webhook_signing": AuthType(secret=("secret",)),  # Standard Webhooks signature headers
}

# Header values typed into a step are secrets, except those of these headers (never credentials).
PUBLIC_HEADERS = frozenset({"accept", "accept-language", "content-type", "content-language", "user-agent",
                            "cache-control", "x-request-id", "idempotency-key"})


class _Body(CamelModel):
    model_config = ConfigDict(extra="forbid")


class ConnectionCreate(_Body):
    name: str = Field(pattern=NAME_PATTERN)
    type: str
    service: str | None = Field(default=None, min_length=1, max_length=100)
    credentials: dict[str, str]


class ConnectionRotate(_Body):
    credentials: dict[str, str]


class Connection(CamelModel):
    id: uuid.UUID
    site_id: uuid.UUID
    name: str
    type: str
    service: str
    config: dict[str, Any]
    credentials: dict[str, str]  # every secret field, as MASK
    status: str
    created_at: datetime
    updated_at: datetime
    rotated_at: datetime | None


def _credentials(kind: str | None, credentials: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(public config, secret fields) of valid credentials; ``ValidationFailed`` naming the field."""
    if kind not in AUTH_TYPES:
        raise ValidationFailed(f"type must be one of {', '.join(AUTH_TYPES)}", code="validation_error",
                               details=[{"field": "type", "message": "unknown connection type"}])
    auth = AUTH_TYPES[kind]
    unknown = [k for k in credentials if k not in auth.secret + auth.public]
    if unknown:
        raise ValidationFailed(f"credentials.{unknown[0]}: not a field of a {kind} connection "
                               f"(its fields: {', '.join(auth.secret + auth.public)})", code="validation_error",
                               details=[{"field": f"credentials.{unknown[0]}", "message": "unknown field"}])
    for name in auth.secret + tuple(k for k in auth.public if k not in auth.defaults):
        value = credentials.get(name)
        # at least 3 characters: shorter strings are not redacted from logs (they would shred them)
        shortest = 3 if name in auth.secret else 1
        if not isinstance(value, str) or len(value.strip()) < shortest or len(value) > 8192 or value == MASK:
            raise ValidationFailed(f"credentials.{name}: required ({shortest} to 8192 characters, not the mask)",
                                   code="validation_error",
                                   details=[{"field": f"credentials.{name}", "message": "required"}])
    public = {**auth.defaults, **{k: credentials[k] for k in auth.public if credentials.get(k)}}
    return public, {k: credentials[k] for k in auth.secret}


_COLUMNS = """jsonb_build_object('id', c.id, 'siteId', c.site_id, 'name', c.name, 'type', c.auth_type,
    'service', c.service_type, 'config', c.config, 'status', c.status, 'createdAt', c.created_at,
    'updatedAt', c.updated_at, 'rotatedAt', c.rotated_at) AS connection"""


def _answer(row: dict[str, Any]) -> dict[str, Any]:
    connection: dict[str, Any] = row["connection"]
    auth = AUTH_TYPES.get(connection["type"])
    connection["credentials"] = dict.fromkeys(auth.secret if auth else (), MASK)
    return connection


def create_connection(unit: Unit, site_id: uuid.UUID, body: ConnectionCreate,
                      created_by: uuid.UUID | None) -> dict[str, Any]:
    access = require_site_access(unit, site_id, manage=True)
    public, secret = _credentials(body.type, body.credentials)
    envelope = vault.Sealer(site_id).seal(secret)
    row = unit.fetchone(
        f"""INSERT INTO public.automation_connections AS c
              (site_id, name, service_type, auth_type, config, secret_envelope, created_by)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (site_id, name) WHERE auth_type IS NOT NULL DO NOTHING
            RETURNING {_COLUMNS}""",
        (site_id, body.name, body.service or body.type, body.type, vault_json(public), vault_json(envelope),
         created_by),
    )
    if row is None:
        raise Conflict(f"A connection named {body.name!r} already exists on this site", code="connection_exists")
    connection = _answer(row)
    audit.record(unit, "connection.created", agency_id=access.agency_id, site_id=site_id,
                 target_type="automation_connection", target_id=connection["id"],
                 details={"name": body.name, "type": body.type})
    return connection


def list_connections(unit: Unit, site_id: uuid.UUID) -> list[dict[str, Any]]:
    require_site_access(unit, site_id)
    rows = unit.fetchall(f"SELECT {_COLUMNS} FROM public.automation_connections c "
                         "WHERE c.site_id = %s AND c.auth_type IS NOT NULL ORDER BY c.name", (site_id,))
    return [_answer(r) for r in rows]


def get_connection(unit: Unit, site_id: uuid.UUID, connection_id: uuid.UUID) -> dict[str, Any]:
    require_site_access(unit, site_id)
    row = unit.fetchone(f"SELECT {_COLUMNS} FROM public.automation_connections c "
                        "WHERE c.site_id = %s AND c.id = %s AND c.auth_type IS NOT NULL", (site_id, connection_id))
    if row is None:
        raise NotFound("Connection not found", code="connection_not_found")
    return _answer(row)


def rotate_connection(unit: Unit, site_id: uuid.UUID, connection_id: uuid.UUID,
                      body: ConnectionRotate) -> dict[str, Any]:
    """New credentials for the same connection (its type stays): workflows use them from the next step on."""
    access = require_site_access(unit, site_id, manage=True)
    current = unit.fetchone("SELECT auth_type FROM public.automation_connections "
                            "WHERE site_id = %s AND id = %s AND auth_type IS NOT NULL FOR UPDATE",
                            (site_id, connection_id))
    if current is None:
        raise NotFound("Connection not found", code="connection_not_found")
    public, secret = _credentials(current["auth_type"], body.credentials)
    envelope = vault.Sealer(site_id).seal(secret)
    row = unit.fetchrow(
        f"""UPDATE public.automation_connections c SET config = %s, secret_envelope = %s, rotated_at = now(),
                   status = 'active'
            WHERE c.site_id = %s AND c.id = %s RETURNING {_COLUMNS}""",
        (vault_json(public), vault_json(envelope), site_id, connection_id),
    )
    connection = _answer(row)
    audit.record(unit, "connection.rotated", agency_id=access.agency_id, site_id=site_id,
                 target_type="automation_connection", target_id=connection_id,
                 details={"name": connection["name"], "type": connection["type"]})
    return connection


def delete_connection(unit: Unit, site_id: uuid.UUID, connection_id: uuid.UUID) -> dict[str, Any]:
    access = require_site_access(unit, site_id, manage=True)
    row = unit.fetchone("DELETE FROM public.automation_connections WHERE site_id = %s AND id = %s "
                        "AND auth_type IS NOT NULL RETURNING name, auth_type", (site_id, connection_id))
    if row is None:
        raise NotFound("Connection not found", code="connection_not_found")
    audit.record(unit, "connection.deleted", agency_id=access.agency_id, site_id=site_id,
                 target_type="automation_connection", target_id=connection_id,
                 details={"name": row["name"], "type": row["auth_type"]})
    return {"id": str(connection_id), "deleted": True}


def vault_json(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)


# Steps: references and typed-in header secrets ---------------------------------------------------

def referenced_connections(config: dict[str, Any]) -> set[str]:
    """Names of the connections a step's config uses (its ``connection`` and its templates)."""
    names = set()
    if isinstance(config.get("connection"), str):
        names.add(config["connection"])
    for _, text in iter_strings(config):
        for path in template_paths(text):
            parts = path.split(".")
            if parts[0] == "connections" and len(parts) >= 2:
                names.add(parts[1])
    return names


def connection_problems(unit: Unit, site_id: uuid.UUID, step_type: str, config: dict[str, Any], *,
                        where: str) -> list[dict[str, Any]]:
    """A step may use connections only in an http_request, and only connections of its site."""
    names = referenced_connections(config)
    if not names:
        return []
    if step_type != "http_request":
        return [{"field": f"{where}.config", "message": "connections may only be used by http_request steps"}]
    rows = unit.fetchall("SELECT name FROM public.automation_connections WHERE site_id = %s AND name = ANY(%s) "
                         "AND auth_type IS NOT NULL", (site_id, sorted(names)))
    missing = sorted(names - {r["name"] for r in rows})
    return [{"field": f"{where}.config", "message": f"no connection named {name!r} on this site"} for name in missing]


def seal_step_headers(unit: Unit, site_id: uuid.UUID, workflow_id: uuid.UUID | None,
                      rows: list[dict[str, Any]]) -> None:
    """Replace the secret header values typed into ``http_request`` steps by ``MASK`` in their config and
    keep them as envelopes (``row["secret_envelopes"]``). A header sent back as ``MASK`` keeps the value
    stored for the same header of the step at the same position (a client saving what it read)."""
    previous = _stored_header_envelopes(unit, workflow_id) if workflow_id else {}
    sealer = vault.Sealer(site_id)
    problems = []
    for row in rows:
        row["secret_envelopes"] = {}
        if row["step_type"] != "http_request" or not isinstance(row["config"].get("headers"), dict):
            continue
        headers = dict(row["config"]["headers"])
        sealed: dict[str, Any] = {}
        for name, value in headers.items():
            if name.lower() in PUBLIC_HEADERS:
                continue
            if value == MASK:
                kept = previous.get((row["position"], name.lower()))
                if kept is None:
                    problems.append({"field": f"steps.{row['position'] - 1}.config.headers.{name}",
                                     "message": f"{MASK!r} stands for a stored value, and this header of this "
                                                "step has none: send the value"})
                    continue
                sealed[name] = kept
            else:
                sealed[name] = sealer.seal(value)
            headers[name] = MASK
        if sealed:
            row["config"] = {**row["config"], "headers": headers}
            row["secret_envelopes"] = {"headers": sealed}
    if problems:
        raise ValidationFailed(f"Invalid workflow: {problems[0]['field']}: {problems[0]['message']}",
                               code="validation_error", details=problems)


def _stored_header_envelopes(unit: Unit, workflow_id: uuid.UUID) -> dict[tuple[int, str], Any]:
    rows = unit.fetchall("SELECT position, secret_envelopes FROM public.workflow_steps WHERE workflow_id = %s",
                         (workflow_id,))
    kept = {}
    for row in rows:
        for name, envelope in ((row["secret_envelopes"] or {}).get("headers") or {}).items():
            kept[(row["position"], name.lower())] = envelope
    return kept


# The engine: opening a step's secrets -------------------------------------------------------------

@dataclass
class StepSecrets:
    """What one step may use: connections by name (their fields), the step's own header values, the
    connection that authenticates it, and every value that must never be written or logged."""

    connections: dict[str, dict[str, str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth: dict[str, str] | None = None
    hidden: list[str] = field(default_factory=list)


class SecretsMissing(Exception):
    """A step's connection was deleted, or a stored secret does not open."""


def needs_secrets(step: dict[str, Any]) -> bool:
    return bool(step.get("secret_envelopes")) or bool(referenced_connections(step.get("config") or {}))


def resolve_step_secrets(unit: Unit, site_id: uuid.UUID, step: dict[str, Any]) -> StepSecrets:
    config = step.get("config") or {}
    names = sorted(referenced_connections(config))
    rows = unit.fetchall(
        "SELECT name, auth_type, config, secret_envelope FROM public.automation_connections "
        "WHERE site_id = %s AND name = ANY(%s) AND auth_type IS NOT NULL AND status = 'active'", (site_id, names),
    ) if names else []
    found = {r["name"]: r for r in rows}
    missing = [n for n in names if n not in found]
    if missing:
        raise SecretsMissing(f"no active connection named {missing[0]!r} on this site")
    header_envelopes = (step.get("secret_envelopes") or {}).get("headers") or {}
    envelopes = [found[n]["secret_envelope"] for n in names] + list(header_envelopes.values())
    try:
        opened = vault.open_envelopes(site_id, envelopes)
    except vault.EnvelopeUnreadable as exc:
        raise SecretsMissing(str(exc)) from exc
    result = StepSecrets()
    for name, secret in zip(names, opened[:len(names)], strict=True):
        fields = {**(found[name]["config"] or {}), **secret, "type": found[name]["auth_type"]}
        result.connections[name] = fields
        result.hidden += [secret[k] for k in AUTH_TYPES[found[name]["auth_type"]].secret if k in secret]
        result.hidden += _derived(fields)
    result.headers = {name: str(value) for name, value in zip(header_envelopes, opened[len(names):], strict=True)}
    if isinstance(config.get("connection"), str):
        result.auth = result.connections[config["connection"]]
    return result


def _derived(fields: dict[str, str]) -> list[str]:
    """Forms of a secret that travel instead of it (and may be echoed back)."""
    if fields.get("type") == "basic":
        pair = base64.b64encode(f"{fields.get('username', '')}:{fields.get('password', '')}".encode()).decode()
        return [pair]
    return []
