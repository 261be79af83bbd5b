"""Upgrading a site's installation to a newer published version of its module.

A module's schema is shared by every site that installs it and sits at one version (the registry's);
each site runs its own version (``installed_version``), never above the schema's. Upgrading a site:

- to a version the schema already has (another site upgraded first, or the module has no schema):
  the site moves at once (200) and ``marketplace.module.upgraded`` is emitted in that transaction;
- to a version above the schema's: the plan (``ddl.plan_schema`` against the live catalog) must be
  additive, else 409 ``destructive_upgrade`` with the planner's reason; the version waits in
  ``target_version`` and a provision job brings the schema up (202), after which the provisioner moves
  every site waiting for that version and emits their events in the same transaction.

``preview_upgrade`` answers the same decision and the exact statements without changing anything.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ..core import audit, queues
from ..core.db import Unit
from ..core.errors import Conflict, NotFound
from ..core.naming import generate_module_short_id, get_module_schema_name
from ..core.tenancy import require_site_access
from ..core.wire import CamelModel
from ..provisioning.versions import parse_version
from . import lifecycle
from .site_modules import Installation, get_installation

log = logging.getLogger(__name__)


class UpgradePreview(CamelModel):
    module_id: uuid.UUID
    from_version: str | None
    to_version: str | None
    available_versions: list[str]  # published versions above the site's, oldest first
    schema_version: str | None  # the version the module's shared schema is provisioned at
    statements: list[str]  # the DDL the upgrade runs (empty: the schema already has it)
    runs: str | None  # "now" | "provision_queue"
    allowed: bool
    reason: str | None = None
    code: str | None = None


def preview_upgrade(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID,
                    to_version: str | None = None) -> UpgradePreview:
    """What upgrading the site's installation would do (owners and admins)."""
    require_site_access(unit, site_id, manage=True)
    installation = get_installation(unit, site_id, module_id)
    return _preview(unit, installation, to_version)


def _preview(unit: Unit, installation: Installation, to_version: str | None) -> UpgradePreview:
    # provisioning (manifests, DDL planning) is imported on the first upgrade, not at the function's cold start
    from ..provisioning import ddl
    from ..provisioning.errors import ManifestError, ProvisioningRefused
    from ..provisioning.manifest import validate_manifest
    from ..provisioning.provisioner import needs_schema

    module_id = installation.module_id
    state = unit.fetchrow(
        """
        SELECT m.module_type, m.current_version,
               (SELECT r.version FROM public.module_database_registry r WHERE r.module_id = m.id) AS schema_version,
               (SELECT coalesce(jsonb_agg(v.version ORDER BY private.semver_key(v.version)), '[]'::jsonb)
                  FROM public.module_versions v WHERE v.module_id = m.id AND v.status = 'published'
                   AND private.semver_key(v.version) > coalesce(private.semver_key(%(from)s), ARRAY[0, 0, 0]))
                 AS available,
               (SELECT v.manifest FROM public.module_versions v WHERE v.module_id = m.id AND v.status = 'published'
                   AND v.version = coalesce(%(to)s, m.current_version)) AS target_manifest
        FROM (SELECT %(module)s::uuid AS id) k LEFT JOIN public.modules_v2 m ON m.id = k.id
        """, {"module": module_id, "from": installation.installed_version, "to": to_version})
    available = list(state["available"] or [])
    target = to_version or state["current_version"]
    preview = UpgradePreview(module_id=module_id, from_version=installation.installed_version, to_version=target,
                             available_versions=available, schema_version=state["schema_version"], statements=[],
                             runs=None, allowed=False)
    if state["module_type"] is None or target is None or state["target_manifest"] is None:
        return preview.model_copy(update={"reason": f"version {target} is not published", "code":
                                          "version_not_available"})
    if installation.status != "active" or not installation.is_enabled:
        return preview.model_copy(update={"reason": f"the installation is {installation.status}: it must be active",
                                          "code": "installation_not_active"})
    if installation.installed_version and parse_version(target) <= parse_version(installation.installed_version):
        same = target == installation.installed_version
        return preview.model_copy(update={
            "reason": f"the site already runs {installation.installed_version}" if same
            else f"{target} is older than {installation.installed_version}: downgrades are not supported",
            "code": "already_at_version" if same else "downgrade_not_supported"})
    try:
        _, definition = validate_manifest(state["target_manifest"])
    except ManifestError as exc:
        return preview.model_copy(update={"reason": str(exc), "code": "invalid_manifest"})
    schema_version = state["schema_version"]
    if not needs_schema(state["module_type"], definition) or (
            schema_version and parse_version(schema_version) >= parse_version(target)):
        return preview.model_copy(update={"allowed": True, "runs": "now"})
    schema = get_module_schema_name(generate_module_short_id(module_id))
    catalog = ddl.CatalogState.from_row(unit.fetchrow(ddl.catalog_query(schema)))
    try:
        plan = ddl.plan_schema(schema, definition, catalog, module_id)
    except ProvisioningRefused as exc:
        return preview.model_copy(update={"reason": str(exc), "code": "destructive_upgrade"})
    return preview.model_copy(update={"allowed": True, "runs": "provision_queue",
                                      "statements": [text for _, text in plan.texts]})


def upgrade_module(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID, *, to_version: str | None,
                   actor_id: uuid.UUID | None) -> tuple[Installation, int]:
    """Upgrade the site's installation (owners and admins): 200 upgraded now, 202 queued for the
    provisioner; 409 with the reason when the upgrade is refused (nothing changes)."""
    require_site_access(unit, site_id, manage=True)
    installation = get_installation(unit, site_id, module_id)
    preview = _preview(unit, installation, to_version)
    if not preview.allowed or preview.to_version is None:
        status_error = NotFound if preview.code == "version_not_available" else Conflict
        raise status_error(f"Upgrade refused: {preview.reason}", code=preview.code or "upgrade_refused")
    row = unit.call_write_path("upgrade_installation", site_id, module_id, preview.to_version)
    if "refused" in row:  # a twin upgraded (or disabled) it a moment ago
        raise Conflict(f"Upgrade refused: {row['refused'].replace('_', ' ')}", code=row["refused"])
    from_version, outcome = row.pop("from_version"), row.pop("outcome")
    upgraded = Installation.model_validate(row)
    audit.record(unit, "installation.upgraded" if outcome == "upgraded" else "installation.upgrade_requested",
                 agency_id=upgraded.agency_id, site_id=site_id, target_type="installation", target_id=upgraded.id,
                 details={"module_id": str(module_id), "from_version": from_version,
                          "to_version": preview.to_version, "statements": len(preview.statements)})
    if outcome == "upgraded":
        lifecycle.emit(unit, "upgraded", row, module_slug=upgraded.slug, version=upgraded.installed_version,
                       actor_id=actor_id, previous_status=upgraded.status,
                       extra={"from_version": from_version, "to_version": upgraded.installed_version})
        return upgraded, 200
    job = {"action": "provision", "moduleId": str(module_id), "siteId": str(site_id),
           "installationId": str(upgraded.id), "version": preview.to_version}
    unit.after_commit(lambda: _queue(job))
    return upgraded, 202


def _queue(job: dict[str, Any]) -> None:
    try:
        queues.send_message(queues.PROVISION, job)
    except Exception:  # committed: the relay does not cover provision jobs; upgrading again re-queues it
        log.exception("upgrade job not queued; upgrading again will queue it", extra={"job": job})
