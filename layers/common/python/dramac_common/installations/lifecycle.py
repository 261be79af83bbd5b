"""Lifecycle events of a module on a site: ``marketplace.module.installed|disabled|upgraded|uninstalled|purged``.

Each is written to the automation outbox in the transaction of the change it reports (so an event
exists exactly when the change committed) and reaches the events queue after commit. The payload
names the site, the module, the version the site runs and the actor (the user whose request made the
change; for an installation the provisioner activates later, the user who asked for it).

The provisioner activates installations in a statement of its own and writes the same payload there
(``provisioning.provisioner``), and so does an install, in its one guarded statement
(``site_modules.install_module``); ``PAYLOAD_KEYS`` is the shape all of them produce.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Literal

from ..automation.outbox import log_automation_event, log_platform_events
from ..core.db import Unit

LifecycleAction = Literal["installed", "disabled", "upgraded", "uninstalled", "purged"]

PAYLOAD_KEYS = frozenset({"site_id", "agency_id", "module_id", "module_slug", "installation_id", "version",
                          "actor_id", "status", "previous_status"})


def payload(installation: Mapping[str, Any], *, module_slug: str | None, version: str | None,
            actor_id: uuid.UUID | None, previous_status: str | None,
            extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The payload of a lifecycle event for ``installation`` (a row of site_module_installations)."""
    return {
        "site_id": str(installation["site_id"]),
        "agency_id": str(installation["agency_id"]),
        "module_id": str(installation["module_id"]),
        "module_slug": module_slug,
        "installation_id": str(installation["id"]),
        "version": version,
        "actor_id": str(actor_id) if actor_id is not None else None,
        "status": installation["status"],
        "previous_status": previous_status,
        **(extra or {}),
    }


def emit(unit: Unit, action: LifecycleAction, installation: Mapping[str, Any], *, module_slug: str | None,
         version: str | None, actor_id: uuid.UUID | None, previous_status: str | None,
         extra: Mapping[str, Any] | None = None) -> uuid.UUID:
    """Write ``marketplace.module.<action>`` for ``installation`` (a row of site_module_installations)."""
    return log_automation_event(
        unit, installation["site_id"], f"marketplace.module.{action}",
        payload(installation, module_slug=module_slug, version=version, actor_id=actor_id,
                previous_status=previous_status, extra=extra),
        source_module="marketplace", source_entity_type="installation", source_entity_id=installation["id"],
    )


def emit_each(unit: Unit, action: LifecycleAction, installations: list[Mapping[str, Any]], *,
              module_slug: str | None, actor_id: uuid.UUID | None,
              extra: Mapping[str, Any] | None = None) -> list[uuid.UUID]:
    """``emit`` for many installations in one statement (a module disabled on every site of an agency):
    each row's own ``installed_version`` and ``previous_status``."""
    return log_platform_events(unit, [
        {"site_id": row["site_id"], "agency_id": None, "event_type": f"marketplace.module.{action}",
         "payload": payload(row, module_slug=module_slug, version=row.get("installed_version"), actor_id=actor_id,
                            previous_status=row["previous_status"], extra=extra),
         "source_module": "marketplace", "source_entity_type": "installation", "source_entity_id": row["id"]}
        for row in installations])
