"""Dry runs: the exact DDL a module version would run, proven by running it and rolling it back.

``dry_run`` answers, for one version's manifest, what the provisioner would run on a fresh site (an
empty schema) and as an upgrade from the previous version, and whether it would succeed: the same
validator (``manifest.validate_manifest``) and planner (``ddl.plan_schema``) the provisioner uses
compute the statements for the module's real schema name, and the same plan is executed on a scratch
schema inside a transaction that is always rolled back. So "it can provision" is a fact the database
established, not a guess: a version whose dry run fails can never be published (``marketplace.admin``).

For the upgrade, the previous version is provisioned on the scratch schema first and the upgrade is
planned against what the catalog then holds, exactly as a real upgrade plans against the live schema.
``current`` plans against the live schema at the version it is provisioned at (nothing is run there).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from ..core import db
from ..core.naming import generate_module_short_id, get_module_schema_name
from . import ddl
from .errors import ManifestError, ProvisioningRefused
from .manifest import SchemaDefinition, validate_manifest
from .provisioner import _classify, needs_schema

SAVEPOINT = sql.SQL("SAVEPOINT dramac_dry_run")
ROLLBACK = sql.SQL("ROLLBACK TO SAVEPOINT dramac_dry_run")


@dataclass
class PlanResult:
    """One plan: its statements (SQL text, in order) and whether running them succeeded."""

    statements: list[str] = field(default_factory=list)
    ok: bool = True
    error: str | None = None
    from_version: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"statements": self.statements, "ok": self.ok, "error": self.error, "fromVersion": self.from_version}


@dataclass
class DryRun:
    version: str
    uses_schema: bool
    schema: str | None
    fresh: PlanResult
    upgrade: PlanResult | None
    current: PlanResult | None

    @property
    def can_provision(self) -> bool:
        return all(p.ok for p in (self.fresh, self.upgrade, self.current) if p is not None)

    @property
    def problems(self) -> list[str]:
        return [f"{name}: {p.error}" for name, p in (("fresh site", self.fresh), ("upgrade", self.upgrade),
                                                       ("current schema", self.current))
                if p is not None and not p.ok and p.error]

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "usesSchema": self.uses_schema, "schema": self.schema,
                "canProvision": self.can_provision, "problems": self.problems, "fresh": self.fresh.as_dict(),
                "upgrade": self.upgrade.as_dict() if self.upgrade else None,
                "current": self.current.as_dict() if self.current else None}


def dry_run(module_id: uuid.UUID, module_type: str, manifest: Any, *,
            previous: tuple[str, Any] | None = None) -> DryRun:
    """Plan and test-run ``manifest`` for the module. ``previous``: (version, manifest) of the version
    sites would upgrade from. Raises ``ManifestError`` when the manifest itself is invalid."""
    _, definition = validate_manifest(manifest)
    short_id = generate_module_short_id(module_id)
    schema = get_module_schema_name(short_id)
    if not needs_schema(module_type, definition):
        return DryRun(definition.version, False, None, PlanResult(), None, None)
    previous_definition: SchemaDefinition | None = None
    previous_version = None
    if previous is not None:
        previous_version = previous[0]
        try:
            _, previous_definition = validate_manifest(previous[1])
        except ManifestError:
            previous_definition = None
    with db.service_unit() as unit:
        try:
            scratch = _scratch_schema(unit)
            fresh = _fresh(unit, module_id, schema, scratch, definition)
            upgrade = None
            if previous_version is not None:
                upgrade = _upgrade(unit, module_id, schema, scratch, previous_definition, definition)
                upgrade.from_version = previous_version
            current = _current(unit, module_id, schema, definition)
        finally:
            unit.execute("ROLLBACK TO SAVEPOINT dramac_dry_run_outer")
    return DryRun(definition.version, True, schema, fresh, upgrade, current)


def _scratch_schema(unit: db.Unit) -> str:
    """A module-shaped schema name nothing uses, for the rolled-back test runs."""
    unit.execute("SAVEPOINT dramac_dry_run_outer")
    while True:
        name = get_module_schema_name(uuid.uuid4().hex[:8])
        if unit.fetchone("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %s", (name,)) is None:
            return name


def _statements(plan: ddl.Plan) -> list[str]:
    return [text for _, text in plan.texts]


def _execute(unit: db.Unit, plan: ddl.Plan) -> str | None:
    """Run the plan inside a savepoint; the error a real run would report, or None."""
    texts = list(plan.texts)
    if not texts:
        return None
    try:
        unit.execute(";\n".join(t for _, t in texts))
    except psycopg.Error as exc:
        unit.execute(ROLLBACK)
        return str(_classify(exc, texts))
    return None


def _fresh(unit: db.Unit, module_id: uuid.UUID, schema: str, scratch: str, definition: SchemaDefinition) -> PlanResult:
    shown = ddl.plan_schema(schema, definition, ddl.CatalogState(), module_id)
    unit.execute(SAVEPOINT)
    error = _execute(unit, ddl.plan_schema(scratch, definition, ddl.CatalogState(), module_id))
    unit.execute(ROLLBACK)
    return PlanResult(_statements(shown), error is None, error)


def _upgrade(unit: db.Unit, module_id: uuid.UUID, schema: str, scratch: str, previous: SchemaDefinition | None,
             definition: SchemaDefinition) -> PlanResult:
    if previous is None:
        return PlanResult([], False, "the previous version's manifest is invalid")
    unit.execute(SAVEPOINT)
    try:
        error = _execute(unit, ddl.plan_schema(scratch, previous, ddl.CatalogState(), module_id))
        if error is not None:
            return PlanResult([], False, f"the previous version does not provision: {error}")
        catalog = ddl.CatalogState.from_row(unit.fetchrow(ddl.catalog_query(scratch)))
        try:
            shown = ddl.plan_schema(schema, definition, catalog, module_id)
            tested = ddl.plan_schema(scratch, definition, catalog, module_id)
        except ProvisioningRefused as exc:
            return PlanResult([], False, str(exc))
        error = _execute(unit, tested)
        return PlanResult(_statements(shown), error is None, error)
    finally:
        unit.execute(ROLLBACK)


def _current(unit: db.Unit, module_id: uuid.UUID, schema: str, definition: SchemaDefinition) -> PlanResult | None:
    """Against the live schema (when the module is provisioned): planned, not run."""
    row = unit.fetchone("SELECT version FROM public.module_database_registry WHERE module_id = %s", (module_id,))
    if row is None:
        return None
    catalog = ddl.CatalogState.from_row(unit.fetchrow(ddl.catalog_query(schema)))
    try:
        plan = ddl.plan_schema(schema, definition, catalog, module_id)
    except ProvisioningRefused as exc:
        return PlanResult([], False, str(exc), row["version"])
    return PlanResult(_statements(plan), True, None, row["version"])
