"""Which module a data request is for, and whether that module may be used on the site now.

One round trip through ``private.module_data_target`` (migration 0031): the module, the site's
installation and the module's registry row, returned only when the caller may read the site (a
member, a client user of the site's client, a super admin, or a site API key / worker scope for that
very site). The module-level part of the role matrix is applied here, once the module is known
(``core.tenancy.require_module_data_role``: a module's ``clientAccess`` for client users), and a super
admin's read is recorded in the audit log (``module_data.read``), in the request's transaction.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from ..core import audit
from ..core.db import Unit
from ..core.errors import Conflict, Forbidden, NotFound
from ..core.jsonbody import unstorable
from ..core.tenancy import Action, Role, require_module_data_role, require_role


class ModuleTarget(NamedTuple):
    module_id: uuid.UUID
    slug: str
    module_type: str
    manifest: dict[str, Any]
    schema_name: str | None
    table_names: list[str]
    registry_version: str | None
    registry_updated_at: Any

    @property
    def uses_module_data(self) -> bool:
        """Widgets and integrations store in ``public.module_data`` instead of tables of their own."""
        return self.module_type in ("widget", "integration")


def require_key_module(unit: Unit, slug: str) -> None:
    """403 unless the unit's caller may use the module: anyone but a site API key limited to others."""
    claims = unit.claims or {}
    limit = claims.get("modules")
    if claims.get("role") == "site_api_key" and limit is not None and (not isinstance(limit, list) or slug not in limit):
        raise Forbidden(f"This API key may not use the module {slug!r}", code="api_key_scope")


def _module_ref(module: uuid.UUID | str) -> tuple[uuid.UUID | None, str | None]:
    if isinstance(module, uuid.UUID):
        return module, None
    try:
        return uuid.UUID(str(module)), None
    except ValueError:
        return None, str(module)


def _names_no_module(slug: str | None) -> bool:
    """A slug no module can have (one PostgreSQL could not even compare): the module is simply not there."""
    return slug is not None and unstorable(slug) is not None


def _not_installed(unit: Unit, site_id: uuid.UUID, action: Action | None) -> NotFound:
    """The 404 for a module the gate did not find: a user who cannot see the site is told so, and one
    whose role may not take ``action`` there gets its 403 (the gate stands in for the site check of a
    gated unit; a key or a worker scope has had its site checked already)."""
    claims = unit.claims or {}
    if unit.claims is not None and claims.get("role") != "site_api_key":
        role = unit.fetchrow("SELECT private.site_role(%s) AS role", (site_id,))["role"]
        if role is None:
            return NotFound("Site not found", code="site_not_found")
        if action is not None:
            require_role(role, action)
    return NotFound("This module is not installed on the site", code="module_not_installed")


def require_enabled_module(unit: Unit, site_id: uuid.UUID, module: uuid.UUID | str, *,
                           write: bool = False, action: Action | None = None) -> ModuleTarget:
    """The module (by id or slug) if it is installed, enabled and active on the site.

    404 when the site or module is not visible, the module is not installed or it is disabled;
    409 while its database is still being provisioned (poll the installation) or provisioning failed;
    403 ``api_key_scope`` for a site API key whose ``modules`` do not include it (every route that
    reaches module data or widget storage comes through here; the database's policies agree);
    for a client user, 404 when the module's ``clientAccess`` is ``none`` and 403 on a ``write``
    unless it is ``write``. With ``action``, first 403 for a user whose role on the site the matrix does
    not allow it (the site check of ``site_unit(gated=True)``, done here).
    """
    module_id, slug = _module_ref(module)
    if _names_no_module(slug):
        raise _not_installed(unit, site_id, action)
    row = unit.fetchone("SELECT * FROM private.module_data_target(%s, %s, %s)", (site_id, module_id, slug))
    if row is None:
        raise _not_installed(unit, site_id, action)
    if action is not None and row["caller_role"] is not None:  # None: a key or a worker, bound by its scope
        require_role(row["caller_role"], action)
    require_key_module(unit, row["slug"])
    if row["installation_status"] is None:
        raise NotFound("This module is not installed on the site", code="module_not_installed")
    require_module_data_role(row["caller_role"], row["manifest"] if isinstance(row["manifest"], dict) else {},
                             write=write)
    status, enabled = row["installation_status"], row["is_enabled"]
    if status == "disabled" or not enabled:
        raise NotFound("This module is disabled on the site", code="module_disabled")
    if status == "provisioning":
        raise Conflict("This module's database is still being provisioned; try again shortly",
                       code="module_provisioning")
    if status == "failed":
        raise Conflict("Provisioning this module's database failed; reinstall it to retry",
                       code="module_provisioning_failed")
    if row["caller_role"] == Role.SUPER_ADMIN and not write:
        audit.record(unit, "module_data.read", agency_id=row["agency_id"], site_id=site_id,
                     target_type="module", target_id=row["module_id"], details={"module": row["slug"]})
    return ModuleTarget(
        module_id=row["module_id"], slug=row["slug"], module_type=row["module_type"],
        manifest=row["manifest"] if isinstance(row["manifest"], dict) else {},
        schema_name=row["schema_name"], table_names=list(row["table_names"] or []),
        registry_version=row["registry_version"], registry_updated_at=row["registry_updated_at"],
    )
