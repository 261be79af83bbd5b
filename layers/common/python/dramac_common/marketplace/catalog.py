"""The module marketplace: the published catalogue and agencies' subscriptions to modules.

SQL for ``modules_v2`` and ``agency_module_subscriptions`` lives here. Every function takes the
caller's unit of work, so row-level security applies to whatever it reads or writes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field

from ..automation.outbox import dispatch_after_commit, log_automation_event
from ..core.db import Unit
from ..core.errors import NotFound, PaymentRequired
from ..core.tenancy import Action, require_agency_role, require_catalogue_access, roles_allowed
from ..core.wire import CamelModel

MODULE_COLUMNS = """
    m.id, m.slug, m.name, m.description, m.module_type, m.status, m.pricing_type,
    m.wholesale_price_cents, m.currency, m.manifest
"""
SUBSCRIPTION_COLUMNS = """
    s.id, s.agency_id, s.module_id, s.status, s.billing_cycle, s.wholesale_price_cents, s.markup_type,
    s.markup_value, s.retail_price_cents, s.currency, s.created_at, s.updated_at, s.activated_at, s.canceled_at
"""


class Module(CamelModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    module_type: str
    status: str
    pricing_type: str
    wholesale_price_cents: int
    currency: str
    version: str | None = None
    dependencies: list[str] = Field(default_factory=list)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Module:
        manifest = row.get("manifest") or {}
        deps = manifest.get("dependencies") if isinstance(manifest, dict) else None
        return cls(
            **{k: v for k, v in row.items() if k != "manifest"},
            version=manifest.get("version") if isinstance(manifest, dict) else None,
            dependencies=[d for d in deps if isinstance(d, str)] if isinstance(deps, list) else [],
        )

    @property
    def is_free(self) -> bool:
        return self.pricing_type == "free"


class Subscription(CamelModel):
    id: uuid.UUID
    agency_id: uuid.UUID
    module_id: uuid.UUID
    status: str
    billing_cycle: str | None
    wholesale_price_cents: int
    markup_type: str
    markup_value: int
    retail_price_cents: int
    currency: str
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None
    canceled_at: datetime | None


def subscription_event_payload(sub: dict[str, Any], module_slug: str | None, previous: str | None) -> dict[str, Any]:
    """The payload of every ``marketplace.subscription.*`` event (the database builds the same one in
    ``private.subscription_event_payload``, migration 0164)."""
    return {
        "subscription_id": str(sub["id"]),
        "agency_id": str(sub["agency_id"]),
        "module_id": str(sub["module_id"]),
        "module_slug": module_slug,
        "status": sub["status"],
        "previous_status": previous,
        "billing_cycle": sub["billing_cycle"],
        "wholesale_price_cents": sub["wholesale_price_cents"],
        "markup_type": sub["markup_type"],
        "markup_value": sub["markup_value"],
        "retail_price_cents": sub["retail_price_cents"],
        "currency": sub["currency"],
    }


def emit_subscription_event(unit: Unit, action: str, sub: dict[str, Any], *, module_slug: str | None = None,
                            previous_status: str | None = None) -> None:
    """``marketplace.subscription.<action>``: an agency-level automation event (no site)."""
    log_automation_event(
        unit, None, f"marketplace.subscription.{action}",
        subscription_event_payload(sub, module_slug, previous_status),
        agency_id=sub["agency_id"], source_module="marketplace", source_entity_type="subscription",
        source_entity_id=sub["id"],
    )


def list_published_modules(unit: Unit) -> list[Module]:
    """The published catalogue (403 for a client user: the marketplace is the agencies')."""
    require_catalogue_access(unit)
    rows = unit.fetchall(
        f"SELECT {MODULE_COLUMNS} FROM public.modules_v2 m WHERE m.status = 'published' ORDER BY m.name, m.slug"
    )
    return [Module.from_row(r) for r in rows]


def get_published_module(unit: Unit, module_id: uuid.UUID) -> Module:
    row = unit.fetchone(
        f"SELECT {MODULE_COLUMNS} FROM public.modules_v2 m WHERE m.id = %s AND m.status = 'published'",
        (module_id,),
    )
    if row is None:
        raise NotFound("Module not found", code="module_not_found")
    return Module.from_row(row)


def subscribe_to_free_module(unit: Unit, agency_id: uuid.UUID, module_id: uuid.UUID) -> tuple[Subscription, bool]:
    """Subscribe an agency to a free module. Returns the subscription and whether it became active
    now (False: it already was, and nothing changed). Billing: the agency's owners only.

    One statement, ``private.subscribe_to_free_module`` (migration 0164): the caller's role in the agency,
    the module, the write, its two events (created, activated) and its audit row, in the order the
    checks below are answered. It writes nothing when the role or the module refuses, and returns what
    it found: the refusal is this function's, from the same matrix as every agency check. Since a
    refusal has written nothing, the statement carries the unit's COMMIT either way (the unit's one
    round trip with its opening). The subscription is inserted, or a canceled/pending one reactivated;
    an active one is returned unchanged, also when a twin request inserted it a moment ago."""
    result = unit.call_write_path("subscribe_to_free_module", agency_id, module_id, roles_allowed(Action.BILL),
                                  commit=True)
    require_agency_role(agency_id, result["role"], Action.BILL)
    module = result["module"]
    if module is None:
        raise NotFound("Module not found", code="module_not_found")
    if module["pricing_type"] != "free":
        raise PaymentRequired(f"'{module['name']}' is a paid module: purchase it instead", code="payment_required")
    row = result["subscription"]
    changed = bool(row.pop("changed"))
    dispatch_after_commit(unit, [uuid.UUID(e) for e in result["event_ids"]])
    return Subscription.model_validate(row), changed


def get_published_module_with_manifest(unit: Unit, module_id: uuid.UUID) -> tuple[Module, dict[str, Any]]:
    """The published module and its raw manifest (the install path validates it)."""
    row = unit.fetchone(
        f"SELECT {MODULE_COLUMNS} FROM public.modules_v2 m WHERE m.id = %s AND m.status = 'published'",
        (module_id,),
    )
    if row is None:
        raise NotFound("Module not found", code="module_not_found")
    manifest = row.get("manifest")
    return Module.from_row(row), manifest if isinstance(manifest, dict) else {}
