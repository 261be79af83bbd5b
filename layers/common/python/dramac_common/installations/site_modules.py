"""Modules installed on sites (``site_module_installations``): install, re-enable, disable, read,
and the guards other functions use (``get_site_enabled_modules``, ``is_module_enabled_for_site``).

Every function takes the caller's unit of work, so row-level security applies to what it reads and
writes. Installing a module whose database must be provisioned leaves the installation
``provisioning`` and queues a provision job after commit; the provisioner activates it.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb
from pydantic import computed_field

from ..core import audit, queues
from ..core.db import Unit
from ..core.errors import Conflict, NotFound, PaymentRequired
from ..core.tenancy import require_site_access
from ..core.wire import CamelModel
from ..marketplace import catalog as marketplace
from ..provisioning.errors import ManifestError
from ..provisioning.manifest import parse_version, validate_manifest
from . import lifecycle

log = logging.getLogger(__name__)

INSTALLATION_COLUMNS = """
    i.id, i.site_id, i.agency_id, i.module_id, m.slug, m.name AS module_name, i.status, i.is_enabled,
    i.config, i.error, i.installed_at, i.updated_at, i.installed_version, i.target_version,
    m.current_version AS latest_version, i.purge_after
"""
# A deprecated module stays visible as an installation (its slug is hidden from non-admins by RLS).
JOIN_MODULE = "LEFT JOIN public.modules_v2 m ON m.id = i.module_id"
SELECT_INSTALLATIONS = f"SELECT {INSTALLATION_COLUMNS} FROM public.site_module_installations i {JOIN_MODULE}"


class Installation(CamelModel):
    id: uuid.UUID
    site_id: uuid.UUID
    agency_id: uuid.UUID
    module_id: uuid.UUID
    slug: str | None
    module_name: str | None
    status: str
    is_enabled: bool
    config: dict[str, Any]
    error: str | None
    installed_at: datetime
    updated_at: datetime
    installed_version: str | None = None  # the version the site runs
    target_version: str | None = None  # an upgrade waiting for the provisioner
    latest_version: str | None = None  # the module's current version in the catalogue
    purge_after: datetime | None = None  # a pending purge deletes the site's data then (undoable until)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def upgrade_available(self) -> bool:
        """A newer version than the site runs is published (owners and admins may upgrade to it)."""
        if not self.latest_version or not self.installed_version:
            return False
        try:
            return parse_version(self.latest_version) > parse_version(self.installed_version)
        except ValueError:
            return False

    # the contract's spelling, next to the API's camelCase (mypy cannot see through pydantic's documented pattern)
    @computed_field(alias="is_enabled")  # type: ignore[prop-decorator]
    @property
    def is_enabled_contract(self) -> bool:
        return self.is_enabled


def list_installations(unit: Unit, site_id: uuid.UUID) -> list[Installation]:
    require_site_access(unit, site_id)
    rows = unit.fetchall(SELECT_INSTALLATIONS + " WHERE i.site_id = %s ORDER BY i.installed_at, i.id", (site_id,))
    return [Installation.model_validate(r) for r in rows]


def get_installation(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID) -> Installation:
    require_site_access(unit, site_id)
    row = unit.fetchone(SELECT_INSTALLATIONS + " WHERE i.site_id = %s AND i.module_id = %s", (site_id, module_id))
    if row is None:
        raise NotFound("The module is not installed on this site", code="installation_not_found")
    return Installation.model_validate(row)


def install_module(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID, *, installed_by: uuid.UUID,
                   config: dict[str, Any] | None = None) -> tuple[Installation, int]:
    """Install or re-enable a module on a site. Returns the installation and the HTTP status:
    201 it became active now, 200 it already was (nothing changed but ``config``), 202 it waits
    for its database to be provisioned (a provision job is queued after commit)."""
    access = require_site_access(unit, site_id, manage=True)
    module, raw_manifest = marketplace.get_published_module_with_manifest(unit, module_id)
    manifest_error: ManifestError | None = None
    try:
        manifest, _ = validate_manifest(raw_manifest)
    except ManifestError as exc:
        manifest, manifest_error = None, exc
    state = _install_state(unit, access.agency_id, site_id, module_id, manifest.dependencies if manifest else [])
    if not state["subscribed"]:
        raise PaymentRequired(
            f"The agency has no active subscription to '{module.name}': subscribe or purchase it first",
            code="subscription_required",
        )
    if manifest_error is not None or manifest is None:
        raise Conflict(f"'{module.name}' cannot be installed: {manifest_error}", code="invalid_manifest",
                       details=manifest_error.problems if manifest_error else None)
    missing = [slug for slug in dict.fromkeys(manifest.dependencies) if slug not in state["present_dependencies"]]
    if missing:
        raise Conflict(
            f"'{module.name}' needs {', '.join(missing)} installed and enabled on this site first",
            code="missing_dependencies", details=[{"slug": slug} for slug in missing],
        )
    pending = unit.fetchone("SELECT purge_after FROM public.site_module_installations "
                            "WHERE site_id = %s AND module_id = %s AND purge_after IS NOT NULL", (site_id, module_id))
    if pending is not None:
        raise Conflict(f"'{module.name}' is scheduled to be purged from this site at {pending['purge_after']}: "
                       "undo the purge (DELETE …/purge) before installing it again", code="purge_pending")
    # private.install_module is the only write path (authenticated may not write installations): it
    # checks the subscription again and decides the status (provisioning until the module's schema is
    # at the manifest's version); a twin that inserted first is re-enabled, never inserted twice.
    row = unit.call_write_path("install_module", site_id, module_id, Jsonb(config) if config is not None else None)
    if row.get("refused") == "subscription_required":
        raise PaymentRequired(
            f"The agency has no active subscription to '{module.name}': subscribe or purchase it first",
            code="subscription_required",
        )
    previous = row.pop("previous_status")
    installation = Installation.model_validate(row)
    if installation.status == "active" and previous != "active":
        lifecycle.emit(unit, "installed", row, module_slug=module.slug, version=installation.installed_version,
                       actor_id=installed_by, previous_status=previous)
    if previous != installation.status or previous is None:
        audit.record(unit, "installation.enabled" if previous else "installation.created",
                     agency_id=installation.agency_id, site_id=site_id, target_type="installation",
                     target_id=installation.id, details={"module_id": str(module_id), "module_slug": module.slug,
                                                          "version": manifest.version, "status": installation.status,
                                                          "previous_status": previous})
    if installation.status == "provisioning":
        job = {"action": "provision", "moduleId": str(module_id), "siteId": str(site_id),
               "installationId": str(installation.id)}
        unit.after_commit(lambda: _queue_provision(job))
        return installation, 202
    return installation, 200 if previous == "active" else 201


def _queue_provision(job: dict[str, Any]) -> None:
    try:
        queues.send_message(queues.PROVISION, job)
    except Exception:  # committed: a repeated install re-queues the job
        log.exception("provision job not queued; installing again will queue it", extra={"job": job})


def _install_state(unit: Unit, agency_id: uuid.UUID, site_id: uuid.UUID, module_id: uuid.UUID,
                   dependencies: list[str]) -> dict[str, Any]:
    """What the install checks need, in one round trip: whether the agency has an active subscription,
    and which of the manifest's dependencies are active and enabled on the site."""
    return unit.fetchrow(
        """
        SELECT
          EXISTS (SELECT 1 FROM public.agency_module_subscriptions s
                  WHERE s.agency_id = %(agency)s AND s.module_id = %(module)s AND s.status = 'active') AS subscribed,
          ARRAY(SELECT m.slug FROM public.site_module_installations i JOIN public.modules_v2 m ON m.id = i.module_id
                 WHERE i.site_id = %(site)s AND i.status = 'active' AND i.is_enabled
                   AND m.slug = ANY(%(deps)s::text[])) AS present_dependencies
        """,
        {"agency": agency_id, "module": module_id, "site": site_id, "deps": list(dependencies)},
    )


def disable_module(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID, *,
                   actor_id: uuid.UUID | None = None) -> Installation:
    """Disable a module on a site; its data is kept, and installing it again re-enables it.
    The request that disables it emits ``marketplace.module.disabled``; a repeat changes nothing."""
    require_site_access(unit, site_id, manage=True)
    dependents = unit.fetchall(
        """
        SELECT d.slug FROM public.site_module_installations di
        JOIN public.modules_v2 d ON d.id = di.module_id
        JOIN public.modules_v2 m ON m.id = %(module)s
        WHERE di.site_id = %(site)s AND di.module_id <> %(module)s AND di.is_enabled
          AND di.status IN ('active', 'provisioning') AND d.manifest -> 'dependencies' ? m.slug
        ORDER BY d.slug
        """,
        {"site": site_id, "module": module_id},
    )
    if dependents:
        slugs = [r["slug"] for r in dependents]
        raise Conflict(f"Disable {', '.join(slugs)} first: they depend on this module", code="module_in_use",
                       details=[{"slug": s} for s in slugs])
    row = unit.call_write_path("disable_module", site_id, module_id)
    if row is None:
        raise NotFound("The module is not installed on this site", code="installation_not_found")
    previous = row.pop("previous_status")
    installation = Installation.model_validate(row)
    if previous != "disabled":
        version = installation.installed_version
        lifecycle.emit(unit, "disabled", row, module_slug=installation.slug, version=version, actor_id=actor_id,
                       previous_status=previous)
        audit.record(unit, "installation.disabled", agency_id=installation.agency_id, site_id=site_id,
                     target_type="installation", target_id=installation.id,
                     details={"module_id": str(module_id), "module_slug": installation.slug, "version": version,
                              "previous_status": previous})
    return installation


def get_site_enabled_modules(unit: Unit, site_id: uuid.UUID) -> set[str]:
    """Slugs of the modules active and enabled on the site (empty for a site the caller cannot see)."""
    rows = unit.fetchall(
        "SELECT m.slug FROM public.site_module_installations i JOIN public.modules_v2 m ON m.id = i.module_id "
        "WHERE i.site_id = %s AND i.status = 'active' AND i.is_enabled",
        (site_id,),
    )
    return {r["slug"] for r in rows}


def is_module_enabled_for_site(unit: Unit, site_id: uuid.UUID, slug_or_id: str | uuid.UUID) -> bool:
    """Whether the module (by slug or id) is active and enabled on the site: the guard of module routes."""
    try:
        module_id = slug_or_id if isinstance(slug_or_id, uuid.UUID) else uuid.UUID(str(slug_or_id))
    except ValueError:
        module_id = None
    row = unit.fetchone(
        "SELECT 1 FROM public.site_module_installations i JOIN public.modules_v2 m ON m.id = i.module_id "
        "WHERE i.site_id = %s AND i.status = 'active' AND i.is_enabled AND "
        + ("i.module_id = %s" if module_id else "m.slug = %s"),
        (site_id, module_id or str(slug_or_id)),
    )
    return row is not None
