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

from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import computed_field

from ..automation import outbox
from ..core import audit, queues
from ..core.db import Unit
from ..core.errors import Conflict, NotFound, PaymentRequired
from ..core.tenancy import require_site_access, site_access_from
from ..core.wire import CamelModel
from ..marketplace import catalog as marketplace
from ..provisioning.versions import parse_version
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
    for its database to be provisioned (a provision job is queued after commit).

    Two round trips: every check in one statement (with the unit's opening), then the write, its
    lifecycle event and its audit row in one guarded statement that carries the COMMIT."""
    state = _install_state(unit, site_id, module_id)
    if state is None:  # a site the caller cannot see
        raise NotFound("Site not found", code="site_not_found")
    site_access_from({"id": state["site_id"], "agency_id": state["site_agency_id"], "role": state["site_role"]},
                     manage=True)
    if state["id"] is None:
        raise NotFound("Module not found", code="module_not_found")
    from ..provisioning.errors import ManifestError  # manifests are validated on install, not at cold start
    from ..provisioning.manifest import validate_manifest

    raw_manifest = state["manifest"] if isinstance(state["manifest"], dict) else {}
    module = marketplace.Module.from_row({key: state[key] for key in _MODULE_KEYS})
    manifest_error: ManifestError | None = None
    try:
        manifest, _ = validate_manifest(raw_manifest)
    except ManifestError as exc:
        manifest, manifest_error = None, exc
    if not state["subscribed"]:
        raise PaymentRequired(
            f"The agency has no active subscription to '{module.name}': subscribe or purchase it first",
            code="subscription_required",
        )
    if manifest_error is not None or manifest is None:
        raise Conflict(f"'{module.name}' cannot be installed: {manifest_error}", code="invalid_manifest",
                       details=manifest_error.problems if manifest_error else None)
    active = set(state["active_slugs"] or [])
    missing = [slug for slug in dict.fromkeys(manifest.dependencies) if slug not in active]
    if missing:
        raise Conflict(
            f"'{module.name}' needs {', '.join(missing)} installed and enabled on this site first",
            code="missing_dependencies", details=[{"slug": slug} for slug in missing],
        )
    if state["purge_after"] is not None:
        raise Conflict(f"'{module.name}' is scheduled to be purged from this site at {state['purge_after']}: "
                       "undo the purge (DELETE …/purge) before installing it again", code="purge_pending")
    # private.install_module is the only write path (authenticated may not write installations): it
    # checks the subscription again and decides the status (provisioning until the module's schema is
    # at the manifest's version); a twin that inserted first is re-enabled, never inserted twice. The
    # same statement writes the lifecycle event and the audit row the outcome calls for, and commits.
    written = unit.write_path_row(_INSTALL, {
        "site": site_id, "module": module_id, "config": Jsonb(config) if config is not None else None,
        "slug": module.slug, "actor": str(installed_by), "version": manifest.version}, commit=True)
    row = written["result"]
    if row.get("refused") == "subscription_required":
        raise PaymentRequired(
            f"The agency has no active subscription to '{module.name}': subscribe or purchase it first",
            code="subscription_required",
        )
    previous = row.pop("previous_status")
    installation = Installation.model_validate(row)
    if written["event_id"] is not None:
        outbox.dispatch_after_commit(unit, [written["event_id"]])
    if installation.status == "provisioning":
        job = {"action": "provision", "moduleId": str(module_id), "siteId": str(site_id),
               "installationId": str(installation.id)}
        unit.after_commit(lambda: _queue_provision(job))
        return installation, 202
    return installation, 200 if previous == "active" else 201


_MODULE_KEYS = [column.strip().removeprefix("m.") for column in marketplace.MODULE_COLUMNS.split(",")]

# The write and what it calls for, in one statement (run as the write role, with the caller's claims):
# ``marketplace.module.installed`` when the installation became active now (``lifecycle.PAYLOAD_KEYS``,
# as ``lifecycle.emit`` writes it), and ``installation.created|enabled`` in the audit log when its status
# changed. The CTEs run in order: the write, then the event, then the audit row. ``event_id`` is the
# event's when it is to be sent (``private.events_to_send``: no workflow listening, it was marked at
# insert, migration 0180).
_INSTALL = """
    WITH ins AS MATERIALIZED (SELECT private.install_module(%(site)s, %(module)s, %(config)s) AS r),
    ev AS MATERIALIZED (
      SELECT private.log_platform_event(
               %(site)s, NULL, 'marketplace.module.installed',
               jsonb_build_object('site_id', r -> 'site_id', 'agency_id', r -> 'agency_id', 'module_id', r -> 'module_id',
                                  'module_slug', %(slug)s::text, 'installation_id', r -> 'id',
                                  'version', r -> 'installed_version', 'actor_id', %(actor)s::text,
                                  'status', r -> 'status', 'previous_status', r -> 'previous_status'),
               'marketplace', 'installation', r ->> 'id') AS id
      FROM ins
      WHERE r ->> 'refused' IS NULL AND r ->> 'status' = 'active' AND (r ->> 'previous_status') IS DISTINCT FROM 'active'),
    au AS MATERIALIZED (
      SELECT private.record_audit(
               CASE WHEN r ->> 'previous_status' IS NULL THEN 'installation.created' ELSE 'installation.enabled' END,
               (r ->> 'agency_id')::uuid, %(site)s, 'installation', r ->> 'id',
               jsonb_build_object('module_id', %(module)s::text, 'module_slug', %(slug)s::text,
                                  'version', %(version)s::text, 'status', r -> 'status',
                                  'previous_status', r -> 'previous_status')) AS id
      FROM ins
      WHERE r ->> 'refused' IS NULL AND (r ->> 'previous_status') IS DISTINCT FROM r ->> 'status')
    SELECT ins.r AS result, (SELECT (private.events_to_send(ARRAY[ev.id]))[1] FROM ev) AS event_id,
           (SELECT count(*) FROM au) AS audited FROM ins
"""


def _queue_provision(job: dict[str, Any]) -> None:
    try:
        queues.send_message(queues.PROVISION, job)
    except Exception:  # committed: a repeated install re-queues the job
        log.exception("provision job not queued; installing again will queue it", extra={"job": job})


def _install_state(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID) -> dict[str, Any] | None:
    """What the install checks need, in one statement: the site and the caller's role there, the
    published module, whether the agency has an active subscription to it, the slugs active and enabled
    on the site (its dependencies must be among them) and a pending purge of the module there. None
    when the caller cannot see the site."""
    return unit.fetchone(sql.SQL(
        """
        SELECT s.id AS site_id, s.agency_id AS site_agency_id, private.site_role(s.id) AS site_role,
          {module_columns},
          EXISTS (SELECT 1 FROM public.agency_module_subscriptions sub
                  WHERE sub.agency_id = s.agency_id AND sub.module_id = %(module)s AND sub.status = 'active')
            AS subscribed,
          ARRAY(SELECT d.slug FROM public.site_module_installations i JOIN public.modules_v2 d ON d.id = i.module_id
                 WHERE i.site_id = s.id AND i.status = 'active' AND i.is_enabled) AS active_slugs,
          (SELECT i.purge_after FROM public.site_module_installations i
           WHERE i.site_id = s.id AND i.module_id = %(module)s AND i.purge_after IS NOT NULL) AS purge_after
        FROM public.sites s
        LEFT JOIN public.modules_v2 m ON m.id = %(module)s AND m.status = 'published'
        WHERE s.id = %(site)s
        """).format(module_columns=sql.SQL(marketplace.MODULE_COLUMNS)),
        {"site": site_id, "module": module_id})


def require_no_dependents(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID) -> None:
    """409 ``module_in_use`` while a module enabled on the site names this one among its dependencies
    (disabling or purging it would break that module)."""
    rows = unit.fetchall(
        """
        SELECT d.slug FROM public.site_module_installations di
        JOIN public.modules_v2 d ON d.id = di.module_id
        JOIN public.modules_v2 m ON m.id = %(module)s
        WHERE di.site_id = %(site)s AND di.module_id <> %(module)s AND di.is_enabled
          AND di.status IN ('active', 'provisioning') AND d.manifest -> 'dependencies' ? m.slug
        ORDER BY d.slug
        """, {"site": site_id, "module": module_id})
    if rows:
        slugs = [r["slug"] for r in rows]
        raise Conflict(f"Disable {', '.join(slugs)} first: they depend on this module", code="module_in_use",
                       details=[{"slug": s} for s in slugs])


def disable_module(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID, *,
                   actor_id: uuid.UUID | None = None) -> Installation:
    """Disable a module on a site; its data is kept, and installing it again re-enables it.
    The request that disables it emits ``marketplace.module.disabled``; a repeat changes nothing."""
    require_site_access(unit, site_id, manage=True)
    require_no_dependents(unit, site_id, module_id)
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
