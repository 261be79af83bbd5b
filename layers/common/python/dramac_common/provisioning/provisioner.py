"""Provisioning jobs: one transaction each, under a per-module advisory lock.

``provision_module`` reads the module, its registry rows, the schema's catalog state and whether any
installation waits (with the transaction's BEGIN: one round trip), validates the manifest (once per
module version and container), plans the DDL and runs it together with the registry upsert, the
waiting installations' status update and the COMMIT, in one script (one round trip) and one
transaction: everything commits or nothing does. The advisory lock is keyed by the module's short id, so concurrent or redelivered jobs for one
module run one after the other, and each later job finds nothing left to do; two modules whose ids
share a short id serialise too, and the second is refused instead of sharing the first's schema.

``deprovision_module`` (operators only) drops the schema and the registry row once no site uses the
module; ``purge_site_data`` deletes one site's rows from every table of the module, as that site,
under row-level security (``installations.purge`` runs it for an owner's purge after its grace period).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ..automation import outbox
from ..core import db
from ..core.naming import generate_module_short_id, get_module_schema_name
from . import ddl, registry
from .errors import (
    ManifestError,
    PermanentProvisioningError,
    ProvisioningRefused,
    TransientProvisioningError,
)
from .expressions import sql_literal
from .manifest import SchemaDefinition, validate_manifest
from .versions import parse_version

log = logging.getLogger(__name__)

LOCK_CLASS = 0x50524F56  # "PROV": the first key of pg_advisory_xact_lock(int, int)
SCHEMA_MODULE_TYPES = frozenset({"app", "system", "custom"})
LOCK_TIMEOUT = "5s"  # DDL waits at most this long for a table lock (a module table in use)
# SQLSTATE classes where retrying cannot help: data exceptions, integrity violations, syntax and
# access rules, unsupported features. Anything else (connections, deadlocks, timeouts) is transient.
# data, integrity, syntax/access, unsupported, dependent objects, check option, program limits
PERMANENT_SQLSTATE_CLASSES = ("22", "23", "42", "0A", "2B", "44", "54")


def needs_schema(module_type: str, definition: SchemaDefinition) -> bool:
    """App, system and custom modules with tables get a schema; widgets and integrations use module_data."""
    return module_type in SCHEMA_MODULE_TYPES and bool(definition.tables)


def lock_key(short_id: str) -> int:
    """The short id's 32 bits as the signed int4 pg_advisory_xact_lock takes."""
    value = int(short_id, 16)
    return value - (1 << 32) if value >= 1 << 31 else value


def lock_statement(short_id: str) -> str:
    return f"SELECT pg_catalog.pg_advisory_xact_lock({LOCK_CLASS:d}, {lock_key(short_id):d})"


@dataclass
class ProvisionResult:
    module_id: uuid.UUID
    action: str  # created | upgraded | unchanged | no_schema
    version: str
    schema_name: str | None = None
    tables: list[str] = field(default_factory=list)
    activated: int = 0


def _state_query(module_id: uuid.UUID, short_id: str, schema: str, version: str | None = None) -> str:
    """The module (its manifest: the current version's, or ``version``'s when one is named, each with its
    SHA-256), its registry rows and its schema's catalog state: private.provisioning_state (migrations
    0177, 0195 and 0210), a function so that a session plans it once (as text it took 1.1 ms to plan, 0.3 ms
    to run), and plans the catalog read only when the schema exists."""
    return (f"SELECT * FROM private.provisioning_state({sql_literal(module_id)}, {sql_literal(short_id)}, "
            f"{sql_literal(schema)}, {sql_literal(version)})")


def _lock_and_read(unit: db.Unit, module_id: uuid.UUID, short_id: str, schema: str,
                   version: str | None = None) -> dict[str, Any]:
    """Take the module's lock, then read its state: two statements, one round trip with the unit's
    opening (BEGIN and its settings travel ahead of them in the same simple query). Each statement
    gets its own snapshot, so the read sees whatever the previous lock holder committed."""
    cur = unit.execute(lock_statement(short_id) + "; " + _state_query(module_id, short_id, schema, version))
    cur.nextset()
    row = cur.fetchone()
    if row is None:
        raise LookupError("the state query returned no row")
    return row


def _activate_statement(module_id: uuid.UUID, schema_version: str | None) -> str:
    """Activate the module's waiting installations and finish the upgrades waiting for the schema
    (``target_version`` at or below ``schema_version``), and in the same statement write one
    ``marketplace.module.installed`` or ``.upgraded`` event per installation (the payload of
    ``installations.lifecycle``; the actor is the user who asked): the function
    private.activate_provisioned_installations (migrations 0177, 0180 and 0195), whose statements run
    (and are planned) only when an installation waits."""
    return (f"SELECT * FROM private.activate_provisioned_installations({sql_literal(module_id)}, "
            f"{sql_literal(schema_version)})")


def _run_script(unit: db.Unit, texts: list[tuple[str | None, str]], *, commit: bool = False,
                want_row: bool = True) -> dict[str, Any] | None:
    """Run statements (their text, each tagged with its table or None) as one simple-protocol script
    (``commit``: with the unit's ``COMMIT``, in the same round trip); returns the row of the last statement
    that returns rows (``want_row``; else None, without going through the script's results). A database
    error is reported with the table whose statement failed, when the server says where."""
    script = ";\n".join(text for _, text in texts)
    try:
        cur = unit.execute(script, commit=commit)
    except psycopg.Error as exc:
        raise _classify(exc, texts) from exc
    if not want_row:
        return None
    row = None
    while True:
        if cur.description:
            row = cur.fetchone()
        if not cur.nextset():
            return row


def _classify(exc: psycopg.Error, texts: list[tuple[str | None, str]]) -> Exception:
    state = exc.sqlstate or ""
    message = (exc.diag.message_primary or str(exc)).strip()
    if not state.startswith(PERMANENT_SQLSTATE_CLASSES):
        return TransientProvisioningError(f"the database could not complete the job ({message})")
    table = exc.diag.table_name
    if not table and exc.diag.statement_position:
        offset, position = 0, int(exc.diag.statement_position)
        for name, text in texts:
            if offset <= position <= offset + len(text) + 2:
                table = name
                break
            offset += len(text) + 2
    return ProvisioningRefused(f"table {table}: {message}" if table else message)


def provision_module(module_id: uuid.UUID | str, version: str | None = None) -> ProvisionResult:
    """Create or upgrade the module's schema, activate its waiting installations and finish the
    upgrades waiting for it. Idempotent. ``version``: provision that published version's manifest (a
    site's upgrade) instead of the current one; a schema already at or above it is left as it is."""
    module_id = uuid.UUID(str(module_id))
    short_id = generate_module_short_id(module_id)
    schema = get_module_schema_name(short_id)
    try:
        with db.service_unit() as unit:
            state = _lock_and_read(unit, module_id, short_id, schema, version)
            module_type = state["module_type"]
            if module_type is None:
                raise ProvisioningRefused("the module no longer exists")
            if version is not None and state["version_manifest"] is None:
                raise ProvisioningRefused(f"version {version} of the module is not published")
            manifest_text = state["manifest"] if version is None else state["version_manifest"]
            definition = _validated(module_id, version, manifest_text)
            # no installation waiting when the state was read: no activation (one that starts waiting
            # later has its own job queued, which runs after this one: provisioning_state, migration 0195)
            waiting = bool(state["waiting"])
            if not needs_schema(module_type, definition):
                row = _run_script(unit, [(None, _activate_statement(module_id, definition.version))],
                                  commit=True) if waiting else None
                return ProvisionResult(module_id, "no_schema", definition.version,
                                       activated=_activated(unit, row, waiting))
            entries = [registry.RegistryEntry.from_json(e) for e in state["registry"]]
            action, parts, schema_version = _plan(module_id, short_id, schema, definition, entries,
                                                  ddl.CatalogState.from_row(state), keep_newer=version is not None)
            if waiting:
                parts.append((None, _activate_statement(module_id, schema_version)))
            row = _run_script(unit, parts, commit=True, want_row=waiting) if parts else None
            return ProvisionResult(module_id, action, definition.version, schema, definition.table_names,
                                   _activated(unit, row, waiting))
    except psycopg.OperationalError as exc:
        raise TransientProvisioningError(f"the database was unavailable ({str(exc).strip()[:200]})") from exc


# Validated manifests, per container: validation is a pure function of the manifest, and one module
# version is provisioned again and again (each site's upgrade to it is a job, and a redelivered job runs
# twice). Keyed by the module, the version asked for and the SHA-256 of the manifest's jsonb text (as the
# state query returns it), so an edited manifest is validated afresh; the plan is built from the
# cached definition, never from a manifest it was not validated from. Refused manifests are not kept.
_VALIDATED: OrderedDict[tuple[uuid.UUID, str | None, str], SchemaDefinition] = OrderedDict()
_VALIDATED_MAX = 256
_validated_lock = threading.Lock()


def _validated(module_id: uuid.UUID, version: str | None, manifest_text: str) -> SchemaDefinition:
    """The definition validated from the manifest (its jsonb text), remembered per container."""
    key = (module_id, version, hashlib.sha256(manifest_text.encode()).hexdigest())
    with _validated_lock:
        definition = _VALIDATED.get(key)
        if definition is not None:
            _VALIDATED.move_to_end(key)
            return definition
    _, definition = validate_manifest(json.loads(manifest_text))
    with _validated_lock:
        _VALIDATED[key] = definition
        if len(_VALIDATED) > _VALIDATED_MAX:
            _VALIDATED.popitem(last=False)
    return definition


def _activated(unit: db.Unit, row: dict[str, Any] | None, ran: bool = True) -> int:
    """How many installations the activation statement (the script's last, when it ``ran``) made
    active; its events go to the events queue once the job's transaction commits."""
    if not ran:
        return 0
    if row is None:
        raise LookupError("the activation statement returned no row")
    outbox.dispatch_after_commit(unit, list(row["event_ids"]))
    return int(row["activated"])


def _plan(module_id: uuid.UUID, short_id: str, schema: str, definition: SchemaDefinition,
          entries: list[registry.RegistryEntry], catalog: ddl.CatalogState, *, keep_newer: bool = False
          ) -> tuple[str, list[tuple[str | None, str]], str]:
    """The action, its statements and the schema's version once they ran. ``keep_newer``: a schema
    above the manifest's version is left as it is (a site upgrading to a version others passed)
    instead of being refused as a downgrade."""
    owner = next((e for e in entries if e.module_short_id == short_id), None)
    if owner is not None and owner.module_id != module_id:
        raise ProvisioningRefused(
            f"short id collision: schema {schema} already belongs to module {owner.module_id}, whose id starts "
            f"with the same 8 hex characters as {module_id}; the module needs a different id"
        )
    if owner is None and catalog.schema_exists:
        raise ProvisioningRefused(f"schema {schema} exists but is not registered to this module; refusing to use it")
    if owner is not None:
        if parse_version(owner.version) > parse_version(definition.version):
            if keep_newer:
                return "unchanged", [], owner.version
            raise ProvisioningRefused(
                f"the schema is at version {owner.version}, newer than the manifest's {definition.version}; "
                "downgrades are not supported"
            )
        if owner.version == definition.version:
            return "unchanged", [], owner.version
    plan = ddl.plan_schema(schema, definition, catalog, module_id)
    parts: list[tuple[str | None, str]] = [(None, "SET LOCAL lock_timeout = " + sql_literal(LOCK_TIMEOUT))]
    if owner is None:
        # A new schema: every statement acts on objects it has just created, empty, so none can run long
        # but for a lock wait (the registry's or an installation's row), which lock_timeout bounds. The
        # unit's statement_timeout would arm and disarm a timer around each of its statements (some 35
        # for the CRM: about 0.1 ms of server CPU), so the script runs without it.
        parts.append((None, "SET LOCAL statement_timeout = 0"))
    parts += plan.texts
    parts.append((None, registry.upsert_text(module_id, short_id, schema, definition.table_names,
                                             definition.version)))
    return ("created" if owner is None else "upgraded"), parts, definition.version


def mark_installations_failed(module_id: uuid.UUID | str, error: str) -> int:
    """Fail the module's installations that wait for provisioning, with a readable error."""
    with db.service_unit() as unit:
        cur = unit.execute(
            "UPDATE public.site_module_installations SET status = 'failed', error = %s "
            "WHERE module_id = %s AND status = 'provisioning'",
            (error[:2000], uuid.UUID(str(module_id))),
        )
        return int(cur.rowcount)


def abandon_upgrades(module_id: uuid.UUID | str, version: str, error: str) -> int:
    """An upgrade the provisioner refused: the sites waiting for it stay on the version they run,
    with the reason in ``error``."""
    with db.service_unit() as unit:
        cur = unit.execute(
            "UPDATE public.site_module_installations SET target_version = NULL, error = %s "
            "WHERE module_id = %s AND target_version = %s",
            (f"Upgrade to {version} failed: {error}"[:2000], uuid.UUID(str(module_id)), version))
        return int(cur.rowcount)


def deprovision_module(module_id: uuid.UUID | str) -> bool:
    """Drop the module's schema and registry row: an operator's action, never a site's uninstall, and
    only when no site uses the module any more (every installation purged); refused otherwise.
    Returns False when nothing was provisioned."""
    module_id = uuid.UUID(str(module_id))
    short_id = generate_module_short_id(module_id)
    schema = get_module_schema_name(short_id)
    with db.service_unit() as unit:
        state = _lock_and_read(unit, module_id, short_id, schema)
        entries = [registry.RegistryEntry.from_json(e) for e in state["registry"]]
        own = next((e for e in entries if e.module_id == module_id), None)
        if own is None:
            return False
        users = unit.fetchrow("SELECT count(*) AS n FROM public.site_module_installations WHERE module_id = %s",
                              (module_id,))["n"]
        if users:
            raise ProvisioningRefused(
                f"{users} site(s) still have the module installed (disabled ones keep their data): purge them first")
        _run_script(unit, [
            (None, sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)).as_string()),
            (None, registry.delete_statement(module_id).as_string()),
        ], commit=True, want_row=False)
    return True


def purge_site_data(module_id: uuid.UUID | str, site_id: uuid.UUID | str) -> dict[str, int]:
    """Delete one site's rows from every table of the module; returns the rows deleted per table."""
    module_id, site_id = uuid.UUID(str(module_id)), uuid.UUID(str(site_id))
    with db.service_unit() as unit:
        return delete_site_rows(unit, module_id, site_id)


def delete_site_rows(unit: db.Unit, module_id: uuid.UUID, site_id: uuid.UUID) -> dict[str, int]:
    """In ``unit`` (a service unit), under the module's lock: delete one site's rows from every table of
    the module. The deletes run as ``authenticated`` scoped to that one site (the claims of a site API
    key), so row-level security guarantees no other site's row is touched, whatever the statements
    say; the unit's role and claims are restored afterwards."""
    short_id = generate_module_short_id(module_id)
    schema = get_module_schema_name(short_id)
    state = _lock_and_read(unit, module_id, short_id, schema)
    own = next((e for e in map(registry.RegistryEntry.from_json, state["registry"]) if e.module_id == module_id),
               None)
    if own is None or not state["schema_exists"]:
        return {}
    tables = _children_first(unit, schema, list(state["tables"]))
    claims = json.dumps({"role": "site_api_key", "site_id": str(site_id)})
    parts: list[tuple[str | None, sql.Composable]] = [(None, sql.SQL(
        "SELECT set_config('request.jwt.claims', {}, true), set_config('role', 'authenticated', true)"
    ).format(sql.Literal(claims)))]
    parts += [(t, sql.SQL("WITH d AS (DELETE FROM {} WHERE site_id = {} RETURNING 1) SELECT {} AS t, count(*) AS n "
                          "FROM d").format(sql.Identifier(schema, t), sql.Literal(site_id), sql.Literal(t)))
              for t in tables]
    parts.append((None, sql.SQL("RESET ROLE; SELECT set_config('request.jwt.claims', '', true)")))
    texts = ";\n".join(p.as_string(unit.conn) for _, p in parts)
    cur = unit.execute(texts)
    deleted: dict[str, int] = {}
    while True:
        if cur.description and cur.description[0].name == "t":
            row = cur.fetchone()
            if row is not None:
                deleted[row["t"]] = row["n"]
        if not cur.nextset():
            break
    return deleted


def _children_first(unit: db.Unit, schema: str, tables: list[str]) -> list[str]:
    """Tables ordered so that a referencing table comes before the table it references."""
    edges = unit.fetchall(
        "SELECT c.relname AS child, p.relname AS parent FROM pg_catalog.pg_constraint con "
        "JOIN pg_catalog.pg_class c ON c.oid = con.conrelid JOIN pg_catalog.pg_class p ON p.oid = con.confrelid "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND n.oid = p.relnamespace "
        "WHERE con.contype = 'f' AND n.nspname = %s AND c.oid <> p.oid",
        (schema,),
    )
    children = {t: {e["child"] for e in edges if e["parent"] == t} for t in tables}
    ordered: list[str] = []
    remaining = sorted(tables)
    while remaining:
        # a table whose referencing tables are all already ordered; cycles fall back to name order
        ready = [t for t in remaining if children[t] <= set(ordered)] or remaining[:1]
        ordered.append(ready[0])
        remaining.remove(ready[0])
    return ordered


# Queue jobs --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobOutcome:
    action: str
    module_id: uuid.UUID
    status: str  # done | failed
    detail: dict[str, Any] = field(default_factory=dict)


def run_job(action: str, module_id: uuid.UUID, *, site_id: uuid.UUID | None = None, version: str | None = None,
            receive_count: int = 1, max_receives: int = 5) -> JobOutcome:
    """Run one queue job. Permanent errors fail the installations at once and consume the message;
    other errors propagate (the message is retried) and, on the last allowed receive, fail the
    installations first, so the message lands in the dead-letter queue with its outcome recorded."""
    try:
        if action == "provision":
            result = provision_module(module_id, version)
            return JobOutcome(action, module_id, "done", {"result": result.action, "activated": result.activated,
                                                          "version": result.version, "schema": result.schema_name})
        if action == "deprovision":
            return JobOutcome(action, module_id, "done", {"dropped": deprovision_module(module_id)})
        if action == "purge_site":
            if site_id is None:
                raise ProvisioningRefused("purge_site needs a siteId")
            return JobOutcome(action, module_id, "done", {"deleted": purge_site_data(module_id, site_id)})
        raise ProvisioningRefused(f"unknown action {action!r}")
    except PermanentProvisioningError as exc:
        log.warning("provisioning job refused", extra={"action": action, "module_id": str(module_id),
                                                        "error": str(exc)})
        if action == "provision":
            mark_installations_failed(module_id, str(exc))
            if version is not None:
                abandon_upgrades(module_id, version, str(exc))
        return JobOutcome(action, module_id, "failed", {"error": str(exc)})
    except Exception as exc:
        if action == "provision" and receive_count >= max_receives:
            summary = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            try:
                mark_installations_failed(
                    module_id, f"Provisioning failed after {receive_count} attempts: {summary}")
            except Exception:  # the database may be the thing that is down
                log.exception("could not mark installations failed")
        raise


__all__ = [
    "ManifestError", "ProvisionResult", "deprovision_module", "lock_key", "mark_installations_failed",
    "needs_schema", "provision_module", "purge_site_data", "run_job",
]
