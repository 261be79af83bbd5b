"""Purging a site's data of a module: asked by an owner, done after a grace period, undoable until then.

``request_purge`` (owners only, with the module's slug typed back as confirmation) disables the
installation and schedules the purge for ``DRAMAC_PURGE_GRACE_SECONDS`` later, emitting
``marketplace.module.uninstalled``; ``cancel_purge`` undoes it while the grace period lasts (the
installation stays disabled; installing again re-enables it with its data). ``run_due_purges`` (the
scheduled ``purger`` function) then deletes, per due installation and in one transaction: the site's
rows in each of the module's tables (as that site, under row-level security), its widget storage,
and the installation itself, emitting ``marketplace.module.purged``. The module's schema stays; the
operator path (``provisioner.deprovision_module``) drops it once no site has the module.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from ..core import audit, db
from ..core.db import Unit
from ..core.errors import Conflict, NotFound, ValidationFailed
from ..core.settings import get_settings
from ..core.tenancy import Action, require_site_access
from . import lifecycle
from .site_modules import Installation, get_installation, require_no_dependents

log = logging.getLogger(__name__)


def request_purge(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID, *, confirm: str | None,
                  actor_id: uuid.UUID | None) -> tuple[Installation, int]:
    """Schedule the purge (202); a purge already pending answers 200 unchanged."""
    access = require_site_access(unit, site_id, action=Action.DESTROY_DATA)
    installation = get_installation(unit, site_id, module_id)
    expected = installation.slug or str(module_id)
    if confirm != expected:
        raise ValidationFailed(
            f"Purging deletes this site's data of '{expected}' for good after the grace period: "
            f"confirm with {{\"confirm\": \"{expected}\"}}", code="confirmation_required")
    require_no_dependents(unit, site_id, module_id)
    grace = get_settings().purge_grace_seconds
    row = unit.call_write_path("request_module_purge", site_id, module_id, grace)
    if row is None:
        raise NotFound("The module is not installed on this site", code="installation_not_found")
    already, previous = row.pop("already"), row.pop("previous_status")
    scheduled = Installation.model_validate(row)
    if already:
        return scheduled, 200
    lifecycle.emit(unit, "uninstalled", row, module_slug=scheduled.slug, version=scheduled.installed_version,
                   actor_id=actor_id, previous_status=previous,
                   extra={"purge_after": scheduled.purge_after.isoformat() if scheduled.purge_after else None})
    audit.record(unit, "installation.purge_requested", agency_id=access.agency_id, site_id=site_id,
                 target_type="installation", target_id=scheduled.id,
                 details={"module_id": str(module_id), "purge_after": str(scheduled.purge_after),
                          "grace_seconds": grace})
    return scheduled, 202


def cancel_purge(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID) -> Installation:
    access = require_site_access(unit, site_id, action=Action.DESTROY_DATA)
    row = unit.call_write_path("cancel_module_purge", site_id, module_id)
    if row is None:
        raise NotFound("The module is not installed on this site", code="installation_not_found")
    if "refused" in row:
        raise Conflict("No purge is pending for this module on this site" if row["refused"] == "no_pending_purge"
                       else "The grace period is over: the purge is under way", code=row["refused"])
    restored = Installation.model_validate(row)
    audit.record(unit, "installation.purge_canceled", agency_id=access.agency_id, site_id=site_id,
                 target_type="installation", target_id=restored.id, details={"module_id": str(module_id)})
    return restored


def purge_installation(module_id: uuid.UUID, site_id: uuid.UUID) -> dict[str, int] | None:
    """Run one due purge in its own transaction; None when it is no longer due (undone meanwhile)."""
    with db.service_unit() as unit:
        # The rows first, counted, then the installation (whose deletion would purge them too, uncounted:
        # migration 0090); the lock keeps an undo from slipping in between.
        row = unit.fetchone(
            """
            SELECT i.*, (SELECT m.slug FROM public.modules_v2 m WHERE m.id = i.module_id) AS module_slug
            FROM public.site_module_installations i
            WHERE i.site_id = %s AND i.module_id = %s AND i.purge_after <= now()
            FOR UPDATE OF i
            """, (site_id, module_id))
        if row is None:
            return None
        from ..provisioning.provisioner import delete_site_rows  # the purger's work, not the API's cold start

        storage = unit.execute("DELETE FROM public.module_data WHERE site_id = %s AND module_id = %s",
                               (site_id, module_id)).rowcount
        deleted = {**delete_site_rows(unit, module_id, site_id), "module_data": int(storage)}
        unit.execute("DELETE FROM public.site_module_installations WHERE id = %s", (row["id"],))
        lifecycle.emit(unit, "purged", {**row, "status": "purged"}, module_slug=row["module_slug"],
                       version=row["installed_version"], actor_id=row["purge_requested_by"],
                       previous_status=row["status"], extra={"deleted": deleted})
        audit.record(unit, "installation.purged", agency_id=row["agency_id"], site_id=site_id,
                     target_type="installation", target_id=row["id"],
                     details={"module_id": str(module_id), "deleted": deleted,
                              "requested_by": str(row["purge_requested_by"])})
        return deleted


def run_due_purges(limit: int = 50) -> dict[str, Any]:
    """Purge the installations whose grace period is over (oldest first, at most ``limit`` a run)."""
    with db.service_unit() as unit:
        due = unit.fetchall("SELECT site_id, module_id FROM public.site_module_installations "
                            "WHERE purge_after <= now() ORDER BY purge_after LIMIT %s", (limit,))
    purged = failed = 0
    for item in due:
        try:
            if purge_installation(item["module_id"], item["site_id"]) is not None:
                purged += 1
        except Exception:  # one failing purge must not hold up the others; it is due again next run
            failed += 1
            log.exception("purge failed; it runs again next time", extra={k: str(v) for k, v in item.items()})
    return {"due": len(due), "purged": purged, "failed": failed}
