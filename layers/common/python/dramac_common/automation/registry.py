"""The event registry: which event types exist, with their payload schemas.

Two sources:
- ``DOCUMENTED_EVENTS``: the platform's documented events (CRM, booking, e-commerce, forms,
  marketplace, automation), always known. Only events something emits are listed: a stage change,
  won or lost deal is the manifest's to declare (``manifest.events``), not the platform's.
- Installed modules: a module's manifest may declare ``"events": ["contact.created", ...]`` (or
  objects ``{"name": "contact.created", "payload": {"id": "uuid"}}``), and every table of
  ``manifest.database.tables`` gets ``<entity>.created|updated|deleted`` (entity from the manifest,
  default: the table name without a trailing ``s``). They are prefixed with the module's slug
  (``-`` becomes ``_``): slug ``crm`` + ``contact.created`` → ``crm.contact.created``.

An event type is known on a site when it is documented or declared by a module installed there.
Payload schemas map a field to its kind (``string``, ``number``, ``integer``, ``boolean``,
``object``, ``array``, ``uuid``, ``datetime``, ``any``); a payload is refused when a listed field
is present with a value of another kind. Fields not listed are allowed (events carry whole records).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any, NamedTuple

from ..core.db import Unit
from ..core.errors import Forbidden, ValidationFailed

EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,3}\Z")
_NOT_SEGMENT_RE = re.compile(r"[^a-z0-9_]+")

# Events the platform records when the change happens (an installation, a subscription, an incoming
# webhook): never posted from outside, never a site API key's to write.
PLATFORM_EVENT_PREFIXES = frozenset({"marketplace", "automation"})


def is_platform_event(event_type: str) -> bool:
    return event_type.split(".", 1)[0] in PLATFORM_EVENT_PREFIXES


def event_segment(text: str) -> str:
    """``Contact-Form`` → ``contact_form``: slugs may hold hyphens, event types may not. A module's
    events start with its slug as a segment (the database computes the same in
    ``private.api_key_event_prefixes``)."""
    segment = _NOT_SEGMENT_RE.sub("_", text.lower()).strip("_")
    if not segment or not segment[0].isalpha():
        segment = f"x{segment}"
    return segment


def validate_event_type(event_type: str) -> str:
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.match(event_type):
        raise ValidationFailed(
            f"invalid event type {event_type!r}: expected '<module>.<entity>.<action>' in lower case",
            code="invalid_event_type",
        )
    return event_type


_CONTACT = {"id": "uuid", "email": "string", "first_name": "string", "last_name": "string",
            "status": "string", "lead_score": "integer", "company_id": "uuid"}
_DEAL = {"id": "uuid", "name": "string", "amount": "number", "currency": "string", "stage": "string",
         "contact_id": "uuid", "company_id": "uuid"}
_APPOINTMENT = {"id": "uuid", "service_id": "uuid", "customer_email": "string", "customer_name": "string",
                "starts_at": "datetime", "ends_at": "datetime", "status": "string"}
_SUBSCRIPTION = {"subscription_id": "uuid", "agency_id": "uuid", "module_id": "uuid", "module_slug": "string",
                 "status": "string", "previous_status": "string", "billing_cycle": "string",
                 "wholesale_price_cents": "integer", "markup_type": "string", "markup_value": "integer",
                 "retail_price_cents": "integer", "currency": "string"}
# marketplace.module.*: the payload of installations.lifecycle (and of the provisioner's activation).
_LIFECYCLE = {"site_id": "uuid", "agency_id": "uuid", "module_id": "uuid", "module_slug": "string",
              "installation_id": "uuid", "version": "string", "actor_id": "uuid", "status": "string",
              "previous_status": "string"}
_ORDER = {"id": "uuid", "order_number": "string", "customer_email": "string", "total": "number",
          "currency": "string", "status": "string", "items": "array"}


class EventDefinition(NamedTuple):
    event_type: str
    category: str
    name: str
    description: str
    payload_schema: dict[str, str]
    source_module: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"eventType": self.event_type, "category": self.category, "name": self.name,
                "description": self.description, "payloadSchema": self.payload_schema,
                "sourceModule": self.source_module}


def _event(event_type: str, category: str, name: str, description: str, schema: dict[str, str]) -> EventDefinition:
    return EventDefinition(event_type, category, name, description, schema)


DOCUMENTED_EVENTS: dict[str, EventDefinition] = {
    e.event_type: e
    for e in (
        _event("crm.contact.created", "CRM", "Contact created", "A contact was created", _CONTACT),
        _event("crm.contact.updated", "CRM", "Contact updated", "A contact was updated (payload carries `previous`)",
               {**_CONTACT, "previous": "object"}),
        _event("crm.contact.deleted", "CRM", "Contact deleted", "A contact was deleted", _CONTACT),
        _event("crm.company.created", "CRM", "Company created", "A company was created",
               {"id": "uuid", "name": "string", "domain": "string"}),
        _event("crm.deal.created", "CRM", "Deal created", "A deal was created", _DEAL),
        _event("crm.deal.updated", "CRM", "Deal updated", "A deal was updated (payload carries `previous`)",
               {**_DEAL, "previous": "object"}),
        _event("crm.deal.deleted", "CRM", "Deal deleted", "A deal was deleted", _DEAL),
        _event("booking.appointment.created", "Booking", "Appointment created", "An appointment was booked",
               _APPOINTMENT),
        _event("booking.appointment.confirmed", "Booking", "Appointment confirmed", "An appointment was confirmed",
               _APPOINTMENT),
        _event("booking.appointment.cancelled", "Booking", "Appointment cancelled", "An appointment was cancelled",
               {**_APPOINTMENT, "reason": "string"}),
        _event("booking.appointment.completed", "Booking", "Appointment completed", "An appointment took place",
               _APPOINTMENT),
        _event("ecommerce.order.created", "E-commerce", "Order created", "An order was placed", _ORDER),
        _event("ecommerce.order.paid", "E-commerce", "Order paid", "An order was paid", _ORDER),
        _event("ecommerce.order.shipped", "E-commerce", "Order shipped", "An order was shipped",
               {**_ORDER, "tracking_number": "string"}),
        _event("ecommerce.cart.abandoned", "E-commerce", "Cart abandoned", "A cart was left without checkout",
               {"id": "uuid", "customer_email": "string", "total": "number", "items": "array"}),
        _event("form.submitted", "Forms", "Form submitted", "A site form was submitted",
               {"form_id": "string", "form_name": "string", "data": "object", "page_url": "string"}),
        _event("form.field_updated", "Forms", "Form field updated", "A form's field definition changed",
               {"form_id": "string", "field": "string"}),
        *(
            _event(f"marketplace.module.{action}", "Marketplace", f"Module {action}", description,
                   {**_LIFECYCLE, **extra})
            for action, description, extra in (
                ("installed", "A module became active on the site (installed or re-enabled)", {}),
                ("disabled", "A module was disabled on the site; its data is kept", {}),
                ("upgraded", "The site moved to a newer version of a module",
                 {"from_version": "string", "to_version": "string"}),
                ("uninstalled", "An owner asked to purge a module's data from the site; it is deleted after "
                 "the grace period unless undone", {"purge_after": "datetime"}),
                ("purged", "A module's data was deleted from the site after the grace period",
                 {"deleted": "object"}),
            )
        ),
        *(
            _event(f"marketplace.subscription.{action}", "Marketplace", f"Subscription {action.replace('_', ' ')}",
                   description, _SUBSCRIPTION)
            for action, description in (
                ("created", "An agency subscribed to a module, or started buying one (agency-level)"),
                ("activated", "An agency's subscription became active (agency-level)"),
                ("canceled", "An agency's subscription was canceled (agency-level)"),
                ("past_due", "An agency's subscription payment is past due (agency-level)"),
            )
        ),
        _event("automation.webhook.received", "Automation", "Webhook received",
               "An incoming automation webhook was called",
               {"webhook_id": "uuid", "webhook_name": "string", "body": "any", "query": "object"}),
    )
}


def slug_prefix(slug: str) -> str:
    """The first segment of a module's event types: the one the module data SDK writes them with."""
    return event_segment(slug)


def _entity_of(table: dict[str, Any]) -> str | None:
    entity = table.get("entity")
    if isinstance(entity, str) and entity:
        return entity
    name = table.get("name")
    if not isinstance(name, str) or not name:
        return None
    return name[:-1] if name.endswith("s") and len(name) > 1 else name


def manifest_events(slug: str, manifest: dict[str, Any] | None, module_name: str | None = None) -> list[EventDefinition]:
    """The events a module's manifest declares, fully qualified with the module's slug."""
    if not isinstance(manifest, dict):
        return []
    prefix, category = slug_prefix(slug), module_name or slug
    if prefix in PLATFORM_EVENT_PREFIXES:  # a module slugged "marketplace" cannot pose as the platform
        return []
    found: dict[str, EventDefinition] = {}
    tables = ((manifest.get("database") or {}).get("tables") or []) if isinstance(manifest.get("database"), dict) else []
    for table in tables if isinstance(tables, list) else []:
        entity = _entity_of(table) if isinstance(table, dict) else None
        if not entity:
            continue
        schema = {"id": "uuid", **{c["name"]: "any" for c in table.get("columns") or []
                                   if isinstance(c, dict) and isinstance(c.get("name"), str)}}
        for action in ("created", "updated", "deleted"):
            event_type = f"{prefix}.{entity}.{action}"
            found[event_type] = EventDefinition(event_type, category, f"{entity.replace('_', ' ').title()} {action}",
                                                f"A {entity} was {action}", schema, slug)
    for declared in manifest.get("events") or []:
        name, schema = (declared, {}) if isinstance(declared, str) else (
            (declared.get("name"), declared.get("payload") or {}) if isinstance(declared, dict) else (None, {}))
        if not isinstance(name, str) or not name:
            continue
        event_type = name if name.startswith(f"{prefix}.") else f"{prefix}.{name}"
        if not EVENT_TYPE_RE.match(event_type):
            continue
        previous = found.get(event_type)
        found[event_type] = EventDefinition(
            event_type, category, previous.name if previous else name, previous.description if previous else name,
            {**(previous.payload_schema if previous else {}), **(schema if isinstance(schema, dict) else {})}, slug)
    return list(found.values())


def installed_modules(unit: Unit, site_id: uuid.UUID | str) -> list[dict[str, Any]]:
    """The modules installed on a site (any installation that did not fail): slug, name, manifest.

    A request's unit asks ``private.site_installed_modules`` (members and the site's own API key
    see the site's modules); a worker's service unit reads the tables as their owner."""
    if unit.claims is not None:
        rows = unit.fetchall("SELECT slug, name, manifest FROM private.site_installed_modules(%s)", (site_id,))
    else:
        rows = unit.fetchall(
            """
            SELECT m.slug, m.name, m.manifest FROM public.site_module_installations i
            JOIN public.modules_v2 m ON m.id = i.module_id
            WHERE i.site_id = %s AND i.status <> 'failed'
            """,
            (site_id,),
        )
    return rows


def installed_module_events(unit: Unit, site_id: uuid.UUID | str) -> dict[str, EventDefinition]:
    """Events declared by the modules installed on a site (any installation that did not fail)."""
    events: dict[str, EventDefinition] = {}
    for row in installed_modules(unit, site_id):
        for definition in manifest_events(row["slug"], row["manifest"], row["name"]):
            events[definition.event_type] = definition
    return events


def site_events(unit: Unit, site_id: uuid.UUID | str) -> dict[str, EventDefinition]:
    """Every event type known on a site: documented, then the installed modules' (which may refine them)."""
    return {**DOCUMENTED_EVENTS, **installed_module_events(unit, site_id)}


def require_known_event(unit: Unit, site_id: uuid.UUID | str | None, event_type: Any) -> EventDefinition:
    """The definition of an event type known on the site; ``ValidationFailed`` otherwise."""
    if not isinstance(event_type, str) or not EVENT_TYPE_RE.match(event_type):
        raise ValidationFailed(
            f"invalid event type {event_type!r}: expected '<module>.<entity>.<action>' in lower case",
            code="invalid_event_type")
    definition = DOCUMENTED_EVENTS.get(event_type)
    if definition is None and site_id is not None:
        definition = installed_module_events(unit, site_id).get(event_type)
    if definition is None:
        raise ValidationFailed(
            f"unknown event type {event_type!r}: not a documented event, nor declared by a module installed on this site",
            code="unknown_event_type")
    return definition


def require_key_may_emit(unit: Unit, site_id: uuid.UUID | str | None, event_type: str, *,
                         installed_source: str | None = None) -> None:
    """A site API key (claims of role ``site_api_key``) writes only events of its modules: the event
    type's first segment is the slug of a module installed on its site that the key may use (its
    ``modules``, or every installed module when that is null). Platform events never. 403
    ``api_key_scope`` otherwise; the database holds keys to the same rule (``automation_events_log``
    policies). Other callers are not limited here. ``installed_source``: the slug of a module the
    caller has found installed and enabled on the site (the data SDK), which spares the lookup."""
    claims = unit.claims or {}
    if claims.get("role") != "site_api_key":
        return
    prefix = event_type.split(".", 1)[0]
    if prefix in PLATFORM_EVENT_PREFIXES:
        raise Forbidden(f"{prefix}.* events are recorded by the platform itself; an API key cannot emit them",
                        code="api_key_scope")
    limit = claims.get("modules")

    def usable(slug: str) -> bool:
        return limit is None or (isinstance(limit, list) and slug in limit)

    if installed_source is not None and slug_prefix(installed_source) == prefix and usable(installed_source):
        return
    rows = installed_modules(unit, site_id) if site_id is not None else []
    scope = sorted({slug_prefix(row["slug"]) for row in rows if usable(row["slug"])} - PLATFORM_EVENT_PREFIXES)
    if prefix not in scope:
        raise Forbidden(
            f"This API key may emit only the events of its modules ({', '.join(scope) or 'none installed'}); "
            f"{event_type!r} is not one of them", code="api_key_scope")


def _kind_ok(kind: str, value: Any) -> bool:
    if value is None or kind == "any":
        return True
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "uuid":
        if isinstance(value, uuid.UUID):
            return True
        try:
            uuid.UUID(str(value))
            return isinstance(value, str)
        except ValueError:
            return False
    if kind == "datetime":
        if isinstance(value, datetime):
            return True
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            return isinstance(value, str)
        except ValueError:
            return False
    return True


def validate_payload(definition: EventDefinition, payload: Any) -> dict[str, Any]:
    """The payload if it is an object whose listed fields have their schema's kinds."""
    if not isinstance(payload, dict):
        raise ValidationFailed("an event payload is a JSON object", code="invalid_payload")
    problems = [
        {"field": name, "message": f"expected {kind}, got {type(payload[name]).__name__}"}
        for name, kind in definition.payload_schema.items()
        if name in payload and not _kind_ok(kind, payload[name])
    ]
    if problems:
        first = problems[0]
        raise ValidationFailed(
            f"invalid payload for {definition.event_type}: {first['field']}: {first['message']}",
            code="invalid_payload", details=problems)
    return payload
