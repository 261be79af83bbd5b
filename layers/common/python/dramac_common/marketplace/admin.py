"""The catalogue's admin side (super admins): modules, their versions, publishing.

A module is created as a draft; versions (semver, each with its manifest) are added to it, validated
by the provisioner's own validator when added, and dry-run (``provisioning.dry_run``: the DDL on a
fresh site and as an upgrade from the previous version, executed and rolled back). A version is
published only when its dry run succeeds, so nothing an agency can install fails to provision.
Versions never change once written (migration 0111); their status moves draft → published →
deprecated | unpublished. ``modules_v2`` follows: its manifest is the current version's (the highest
published), its status published / deprecated / draft from its versions.

Every change writes an audit row (``catalog.*``) in its transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from psycopg.types.json import Jsonb
from pydantic import Field

from ..core import audit
from ..core.db import Unit
from ..core.errors import Conflict, NotFound, ValidationFailed
from ..core.naming import SLUG_PATTERN
from ..core.tenancy import require_super_admin
from ..core.wire import CamelModel
from ..provisioning.errors import ManifestError
from ..provisioning.versions import parse_version

# The manifest validator and the dry run are imported by the routes that add or test a version, not at
# the cold start of a function whose usual first request lists modules
if TYPE_CHECKING:
    from ..provisioning.dry_run import DryRun

ModuleType = Literal["widget", "app", "integration", "system", "custom"]
PricingType = Literal["free", "one_time", "monthly", "yearly"]

ADMIN_MODULE_COLUMNS = """
    m.id, m.slug, m.name, m.description, m.module_type, m.status, m.pricing_type, m.wholesale_price_cents,
    m.currency, m.current_version, m.created_at, m.updated_at
"""
VERSION_COLUMNS = "v.id, v.module_id, v.version, v.status, v.changelog, v.created_at, v.created_by, v.published_at"


class NewModule(CamelModel):
    slug: str = Field(min_length=1, max_length=63, pattern=SLUG_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    module_type: ModuleType
    pricing_type: PricingType = "free"
    wholesale_price_cents: int = Field(default=0, ge=0, le=100_000_000)
    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")


class NewVersion(CamelModel):
    version: str | None = Field(default=None, max_length=32)
    manifest: dict[str, Any]
    changelog: str = Field(default="", max_length=10_000)


class VersionInfo(CamelModel):
    id: uuid.UUID
    module_id: uuid.UUID
    version: str
    status: str
    changelog: str
    created_at: datetime
    created_by: uuid.UUID | None
    published_at: datetime | None
    manifest: dict[str, Any] | None = None
    dry_run: dict[str, Any] | None = None


class AdminModule(CamelModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    module_type: str
    status: str
    pricing_type: str
    wholesale_price_cents: int
    currency: str
    current_version: str | None
    created_at: datetime
    updated_at: datetime
    versions: list[VersionInfo] = Field(default_factory=list)


def create_module(unit: Unit, body: NewModule) -> AdminModule:
    """A draft module without versions (a taken slug is 409 ``unique_violation``)."""
    require_super_admin(unit)
    if body.pricing_type == "free" and body.wholesale_price_cents:
        raise ValidationFailed("a free module has no price", code="invalid_price")
    if body.pricing_type != "free" and body.wholesale_price_cents <= 0:
        raise ValidationFailed("a paid module needs wholesalePriceCents > 0", code="invalid_price")
    row = unit.fetchrow(
        f"INSERT INTO public.modules_v2 AS m (slug, name, description, module_type, status, pricing_type, "
        f"wholesale_price_cents, currency) VALUES (%s, %s, %s, %s, 'draft', %s, %s, %s) RETURNING {ADMIN_MODULE_COLUMNS}",
        (body.slug, body.name, body.description, body.module_type, body.pricing_type, body.wholesale_price_cents,
         body.currency))
    audit.record(unit, "catalog.module_created", agency_id=None, target_type="module", target_id=row["id"],
                 details={"slug": body.slug, "module_type": body.module_type, "pricing_type": body.pricing_type})
    return AdminModule.model_validate(row)


def list_modules(unit: Unit) -> list[AdminModule]:
    require_super_admin(unit)
    rows = unit.fetchall(f"SELECT {ADMIN_MODULE_COLUMNS} FROM public.modules_v2 m ORDER BY m.name, m.slug")
    return [AdminModule.model_validate(r) for r in rows]


def get_module(unit: Unit, module_id: uuid.UUID) -> AdminModule:
    """The module with every version (newest first) and its current version."""
    require_super_admin(unit)
    row = unit.fetchone(
        f"SELECT {ADMIN_MODULE_COLUMNS}, (SELECT coalesce(jsonb_agg(to_jsonb(v) ORDER BY private.semver_key(v.version) "
        f"DESC), '[]'::jsonb) FROM (SELECT {VERSION_COLUMNS} FROM public.module_versions v WHERE v.module_id = m.id) v) "
        "AS versions FROM public.modules_v2 m WHERE m.id = %s", (module_id,))
    if row is None:
        raise NotFound("Module not found", code="module_not_found")
    return AdminModule.model_validate(row)


def _module_row(unit: Unit, module_id: uuid.UUID, *, lock: bool = False) -> dict[str, Any]:
    row = unit.fetchone(f"SELECT {ADMIN_MODULE_COLUMNS} FROM public.modules_v2 m WHERE m.id = %s"
                        + (" FOR UPDATE" if lock else ""), (module_id,))
    if row is None:
        raise NotFound("Module not found", code="module_not_found")
    return row


def _version_row(unit: Unit, module_id: uuid.UUID, version: str) -> dict[str, Any]:
    row = unit.fetchone(f"SELECT {VERSION_COLUMNS}, v.manifest FROM public.module_versions v "
                        "WHERE v.module_id = %s AND v.version = %s", (module_id, version))
    if row is None:
        raise NotFound(f"Version {version} of this module not found", code="version_not_found")
    return row


def _previous_release(unit: Unit, module_id: uuid.UUID, version: str) -> dict[str, Any] | None:
    """The version sites would upgrade from: the highest published or deprecated version below ``version``."""
    return unit.fetchone(
        "SELECT v.version, v.manifest FROM public.module_versions v WHERE v.module_id = %s "
        "AND v.status IN ('published', 'deprecated') AND private.semver_key(v.version) < private.semver_key(%s) "
        "ORDER BY private.semver_key(v.version) DESC LIMIT 1", (module_id, version))


def add_version(unit: Unit, module_id: uuid.UUID, body: NewVersion) -> VersionInfo:
    """Store a draft version after validating its manifest (400 ``invalid_manifest`` with the problems).
    Versions only grow: a version not above every existing one is 409 ``version_not_newer``."""
    from ..provisioning.manifest import validate_manifest

    require_super_admin(unit)
    module = _module_row(unit, module_id, lock=True)
    try:
        _, definition = validate_manifest(body.manifest)
    except ManifestError as exc:
        raise ValidationFailed(str(exc), code="invalid_manifest", details=exc.problems) from exc
    if body.version is not None and body.version != definition.version:
        raise ValidationFailed(f"version {body.version} differs from the manifest's version {definition.version}",
                               code="version_mismatch")
    newest = unit.fetchone(
        "SELECT v.version FROM public.module_versions v WHERE v.module_id = %s "
        "ORDER BY private.semver_key(v.version) DESC LIMIT 1", (module_id,))
    if newest is not None and parse_version(newest["version"]) >= parse_version(definition.version):
        raise Conflict(f"version {definition.version} is not newer than {newest['version']}: versions only grow",
                       code="version_not_newer")
    row = unit.fetchrow(
        "INSERT INTO public.module_versions AS v (module_id, version, manifest, changelog, created_by) "
        f"VALUES (%s, %s, %s, %s, auth.uid()) RETURNING {VERSION_COLUMNS}, v.manifest",
        (module_id, definition.version, Jsonb(body.manifest), body.changelog))
    audit.record(unit, "catalog.version_added", agency_id=None, target_type="module", target_id=module_id,
                 details={"slug": module["slug"], "version": definition.version})
    return VersionInfo.model_validate(row)


def get_version(unit: Unit, module_id: uuid.UUID, version: str) -> VersionInfo:
    require_super_admin(unit)
    return VersionInfo.model_validate(_version_row(unit, module_id, version))


class DryRunInputs(NamedTuple):
    """What a dry run needs, read in the caller's unit; ``run_dry_run`` runs it after that unit ends
    (the dry run takes a connection of its own, which must not wait on one the request holds)."""

    version: VersionInfo
    module_id: uuid.UUID
    module_type: str
    manifest: dict[str, Any]
    previous_version: str | None
    previous_manifest: dict[str, Any] | None


def dry_run_inputs(unit: Unit, module_id: uuid.UUID, version: str) -> DryRunInputs:
    require_super_admin(unit)
    module = _module_row(unit, module_id)
    row = _version_row(unit, module_id, version)
    previous = _previous_release(unit, module_id, version)
    return DryRunInputs(VersionInfo.model_validate(row), module_id, module["module_type"], row["manifest"],
                        previous["version"] if previous else None, previous["manifest"] if previous else None)


def run_dry_run(inputs: DryRunInputs) -> DryRun:
    """The plan on a fresh site, as an upgrade from the previous version, and against the live schema."""
    from ..provisioning.dry_run import dry_run

    previous = (inputs.previous_version, inputs.previous_manifest) if inputs.previous_version else None
    try:
        return dry_run(inputs.module_id, inputs.module_type, inputs.manifest, previous=previous)
    except ManifestError as exc:  # stored before a validator change: say so, never publish it
        raise Conflict(str(exc), code="invalid_manifest", details=exc.problems) from exc


VersionAction = Literal["publish", "deprecate", "unpublish"]
_ALLOWED_FROM: dict[str, tuple[str, ...]] = {
    "publish": ("draft", "deprecated"), "deprecate": ("published",), "unpublish": ("published", "deprecated"),
}
_TO_STATUS = {"publish": "published", "deprecate": "deprecated", "unpublish": "unpublished"}


def change_version_status(unit: Unit, module_id: uuid.UUID, version: str, action: VersionAction, *,
                          tested: DryRun | None = None, tested_previous: str | None = None) -> AdminModule:
    """Publish, deprecate or unpublish a version, then bring ``modules_v2`` in line (current version,
    manifest, status), with the module row locked so concurrent changes apply one after the other.
    Publishing needs the dry run the caller ran (``tested``), which must have succeeded and have been
    run against the same previous version (else 409 ``conflict_retry``)."""
    require_super_admin(unit)
    module = _module_row(unit, module_id, lock=True)
    row = _version_row(unit, module_id, version)
    target = _TO_STATUS[action]
    if row["status"] == target:
        return get_module(unit, module_id)  # already so: nothing changes
    if row["status"] not in _ALLOWED_FROM[action]:
        raise Conflict(f"a {row['status']} version cannot be {target}", code="invalid_version_status")
    if action == "publish":
        if tested is None or not tested.can_provision:
            problems = tested.problems if tested else ["no dry run"]
            raise Conflict(f"version {version} cannot provision, so it cannot be published: {'; '.join(problems)}",
                           code="cannot_provision", details=problems)
        previous = _previous_release(unit, module_id, version)
        if (previous["version"] if previous else None) != tested_previous:
            raise Conflict("another version was published meanwhile; publish again", code="conflict_retry")
    unit.execute(
        "UPDATE public.module_versions SET status = %s, "
        "published_at = CASE WHEN %s = 'published' THEN coalesce(published_at, now()) ELSE published_at END "
        "WHERE module_id = %s AND version = %s", (target, target, module_id, version))
    after = unit.fetchrow(
        """
        WITH best AS (SELECT v.version, v.manifest FROM public.module_versions v
                      WHERE v.module_id = %(m)s AND v.status = 'published'
                      ORDER BY private.semver_key(v.version) DESC LIMIT 1)
        UPDATE public.modules_v2 m SET
          status = CASE WHEN EXISTS (SELECT 1 FROM best) THEN 'published'
                        WHEN EXISTS (SELECT 1 FROM public.module_versions v
                                     WHERE v.module_id = %(m)s AND v.status = 'deprecated') THEN 'deprecated'
                        ELSE 'draft' END,
          current_version = (SELECT version FROM best),
          manifest = coalesce((SELECT manifest FROM best), m.manifest),
          updated_at = now()
        WHERE m.id = %(m)s RETURNING m.status, m.current_version
        """, {"m": module_id})
    audit.record(unit, f"catalog.version_{target}", agency_id=None, target_type="module", target_id=module_id,
                 details={"slug": module["slug"], "version": version, "previous_status": row["status"],
                          "module_status": after["status"], "current_version": after["current_version"]})
    return get_module(unit, module_id)
