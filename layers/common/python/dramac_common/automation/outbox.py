"""``log_automation_event``: the transactional outbox of the automation flow.

Event types must be known on the site (documented, or declared by a module installed there: see
``automation.registry``); an unknown or malformed type is refused with ``ValidationFailed``.

The event row is written in the caller's transaction (so an event exists exactly when the change
that caused it committed); after commit it is handed to the events queue, and that is all the request
does: the event processor marks it (``dispatched_at``) in the statement that reads it
(``dal.load_events``), so the mark is a receipt, committed with the admission of its workflows. An
event the processor has not received after the relay's grace period (60 s) is sent by the relay: the
request crashed between commit and send, SQS refused the send, or the message waited longer than that
in a backlog; the processor's unique (event, workflow) execution makes a second delivery harmless,
and the relay marks what it sends, so it sends an event once at most.

Why the request still sends after commit rather than leaving delivery to the relay: the relay runs
once a minute and only touches events older than its grace period, so a workflow would start one to
two minutes after the change instead of milliseconds after it. What the request pays is kept to its
floor instead: all the events of one unit of work go in one ``SendMessageBatch`` (subscribe writes
two; a lone event goes as a ``SendMessage``), and no transaction follows it. Measured for subscribe's two events (moto SQS, the ways
interleaved): a send and a marking transaction per event took 2.7 ms and 6 round trips of a 7.7 ms,
14-round-trip request; one send and a one-statement mark 1.3 ms and 1 round trip. The send alone,
the mark moved into the processor's read, took the requests' p50 down 16-19% beside that (subscribe,
purchase, install in one process, the two dispatches alternating: docs/performance.md), and cost the
processor nothing measurable (DB-only workflow, batches of 10: 608 events/s with the mark, 591 without).

An event no active workflow listens to when it is written is not sent at all (migration 0180): a
trigger on the outbox marks it received at insert (``private.event_has_listeners``, the processor's
match), and the writers here read the mark back with the insert and hand only the unmarked ones to
the queue; the relay never sends a marked event. A module data batch of 1,000 rows on a site without
workflows costs no send instead of 100 ``SendMessageBatch`` calls.

Events belong to a site (``site_id``) or, for agency-level events such as
``marketplace.subscription.activated``, to an agency (``site_id=None, agency_id=...``).

``events_for_rows`` is the statement-level form for writers that change many rows at once (the
module data SDK): it validates the event type the same way and returns the ``INSERT ... SELECT``
that writes one event per row a data-modifying CTE returns, so the change and its events are one
statement; the caller hands the returned ids to ``dispatch_after_commit``. Either way the chain depth
comes from the column default (the transaction's ``dramac.automation_depth``, set by workflow steps).
"""

from __future__ import annotations

import json
import logging
import uuid
import weakref
from typing import Any

from psycopg import sql
from psycopg.types.json import Jsonb

from ..core import queues
from ..core.db import Unit
from . import registry
from .registry import validate_event_type

log = logging.getLogger(__name__)

# The outbox's columns, in the order both writers below fill them; chain_depth takes its default.
_OUTBOX_COLUMNS = sql.SQL("site_id, agency_id, event_type, payload, source_module, source_entity_type, "
                          "source_entity_id")

def _json_dumps(value: Any) -> str:
    # Records carry UUIDs, timestamps and decimals: they travel as their text forms.
    return json.dumps(value, default=str)


def log_automation_event(
    unit: Unit,
    site_id: uuid.UUID | str | None,
    event_type: str,
    payload: dict[str, Any],
    *,
    source_module: str | None = None,
    source_entity_type: str | None = None,
    source_entity_id: str | uuid.UUID | None = None,
    agency_id: uuid.UUID | str | None = None,
) -> uuid.UUID:
    """Record an event in the caller's transaction; it reaches the events queue after commit.

    A site event names its site and must be known there (documented, or declared by a module
    installed on the site); an agency-level event passes ``site_id=None`` and ``agency_id`` and must
    be a documented event."""
    validate_event_type(event_type)
    event = {"site_id": site_id, "agency_id": agency_id, "event_type": event_type, "payload": payload,
             "source_module": source_module, "source_entity_type": source_entity_type,
             "source_entity_id": source_entity_id}
    if registry.is_platform_event(event_type):
        # only the backend writes platform events (migration 0074): a request role may not
        return log_platform_events(unit, [event])[0]
    _require_valid(unit, event)
    written = unit.fetchrow(
        sql.SQL("INSERT INTO public.automation_events_log ({}) VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id, dispatched_at IS NULL AS to_send").format(_OUTBOX_COLUMNS),
        (site_id, agency_id, event_type, Jsonb(payload, dumps=_json_dumps), source_module, source_entity_type,
         str(source_entity_id) if source_entity_id is not None else None))
    event_id: uuid.UUID = written["id"]
    if written["to_send"]:
        dispatch_after_commit(unit, [event_id])
    return event_id


def log_platform_events(unit: Unit, events: list[dict[str, Any]]) -> list[uuid.UUID]:
    """Several platform events (``marketplace.*``, ``automation.*``) in one statement, each recorded as
    ``log_automation_event`` records one: through ``private.log_platform_event``, in the caller's
    transaction, sent after commit. ``events``: dicts of ``site_id``, ``agency_id``, ``event_type``,
    ``payload``, ``source_module``, ``source_entity_type``, ``source_entity_id``. Their ids, in order."""
    if not events:
        return []
    for event in events:
        validate_event_type(event["event_type"])
        if not registry.is_platform_event(event["event_type"]):
            raise ValueError(f"not a platform event: {event['event_type']}")
        _require_valid(unit, event)
    rows = [{**event, "n": n, "source_entity_id": None if event.get("source_entity_id") is None
             else str(event["source_entity_id"])} for n, event in enumerate(events)]
    written = unit.write_path_row(
        "SELECT w.ids, private.events_to_send(w.ids) AS to_send FROM (SELECT array_agg(private.log_platform_event("
        "r.site_id, r.agency_id, r.event_type, coalesce(r.payload, '{}'::jsonb), r.source_module, "
        "r.source_entity_type, r.source_entity_id) ORDER BY r.n) AS ids "
        "FROM jsonb_to_recordset(%s) AS r(n int, site_id uuid, agency_id uuid, event_type text, payload jsonb, "
        "source_module text, source_entity_type text, source_entity_id text)) w",
        (Jsonb(rows, dumps=_json_dumps),))
    dispatch_after_commit(unit, list(written["to_send"]))
    ids: list[uuid.UUID] = written["ids"]
    return ids


def _require_valid(unit: Unit, event: dict[str, Any]) -> None:
    """An event's type well formed and known where it is written, and its site or agency named."""
    validate_event_type(event["event_type"])
    if event.get("site_id") is None and event.get("agency_id") is None:
        raise ValueError("an automation event needs a site_id or an agency_id")
    _require_known(unit, event.get("site_id"), event["event_type"])


def events_for_rows(
    unit: Unit,
    site_id: uuid.UUID | str,
    event_type: str,
    *,
    rows: str,
    payload: sql.Composable,
    source_module: str,
    source_entity_type: str | None,
    source_entity_id: sql.Composable,
    source_manifest: dict[str, Any] | None = None,
) -> tuple[sql.Composed, list[Any]]:
    """One site event per row of the CTE ``rows``: validates ``event_type`` as ``log_automation_event``
    does and returns ``(statement, params)``, an ``INSERT ... SELECT ... FROM rows RETURNING id, to_send``
    to use as a further CTE of the caller's statement (its params follow the statement's own). The
    caller hands to ``dispatch_after_commit`` the ids whose ``to_send`` is true: the others no workflow
    listens to (marked at insert, migration 0180).

    ``payload`` and ``source_entity_id`` are expressions over the row (alias ``r``). A caller that
    has checked that ``source_module`` is installed and enabled on the site passes its manifest, so an
    event the manifest declares is known without another query."""
    validate_event_type(event_type)
    _require_known(unit, site_id, event_type, source_module, source_manifest)
    statement = sql.SQL(
        "INSERT INTO public.automation_events_log ({columns}) "
        "SELECT %s, NULL, %s, {payload}, %s, %s, {entity_id} FROM {rows} AS r "
        "RETURNING id, dispatched_at IS NULL AS to_send"
    ).format(columns=_OUTBOX_COLUMNS, payload=payload, entity_id=source_entity_id, rows=sql.Identifier(rows))
    return statement, [site_id, event_type, source_module, source_entity_type]


# The events each open unit will hand to the queue when it commits: one send for all of them.
_pending: weakref.WeakKeyDictionary[Unit, list[uuid.UUID]] = weakref.WeakKeyDictionary()


def dispatch_after_commit(unit: Unit, event_ids: list[uuid.UUID]) -> None:
    """Hand the events written in this unit to the events queue once it commits, together with
    every other event the unit writes (one batched send)."""
    if not event_ids:
        return
    pending = _pending.get(unit)
    if pending is None:
        pending = _pending[unit] = []
        unit.after_commit(lambda: dispatch_events(_pending.pop(unit, pending)))
    pending.extend(event_ids)


def _require_known(unit: Unit, site_id: uuid.UUID | str | None, event_type: str, source_module: str | None = None,
                   source_manifest: dict[str, Any] | None = None) -> None:
    registry.require_key_may_emit(unit, site_id, event_type,
                                  installed_source=source_module if source_manifest is not None else None)
    if source_module and source_manifest is not None and any(
            e.event_type == event_type for e in registry.manifest_events(source_module, source_manifest)):
        return
    registry.require_known_event(unit, site_id, event_type)


def dispatch_events(event_ids: list[uuid.UUID]) -> None:
    """Send committed events to the events queue in one batched send; the processor marks them when it
    reads them. Failures are left for the relay: the change that caused the event has committed and
    must not be reported as failed."""
    try:
        queues.send_messages(queues.EVENTS, [{"eventId": str(e)} for e in event_ids])
    except Exception:  # the outbox relay sends whatever the processor never received
        log.warning("events not sent yet; the relay will send them", exc_info=True)
