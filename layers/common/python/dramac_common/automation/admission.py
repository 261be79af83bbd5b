"""Per-site execution limits: how many executions of one site run at once, and how many it may start
per rolling hour (the site's plan, ``core.settings.PlanLimits``), so that one agency's burst (or a
trigger loop) cannot take every worker from the others.

Admission is decided under a per-site advisory lock held by the transaction that starts (or claims)
the executions, so concurrent workers count the same running executions and never admit more than
the limit between them. Over the concurrency limit an execution is created ``pending`` and queued: a
delayed resume message (and the relay's sweep, as for any lost message) brings it back, and it runs
when a slot is free. Over the hourly volume an execution is recorded ``failed`` with
``stop_reason = 'volume_limit'`` and does not run: visible, never silently dropped.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.db import Unit
from ..core.settings import plan_limits
from . import dal

QUEUED_RETRY_S = 10  # a queued execution asks again after this long


def _lock_site(unit: Unit, site_id: uuid.UUID) -> None:
    unit.execute("SELECT pg_advisory_xact_lock(hashtextextended('dramac.executions:' || %s::text, 0))", (site_id,))


# A site's executions started in the rolling hour, read in whole minutes (migration 0174: a trigger counts
# every statement's inserted executions per site and minute), so the cost stays the same
# however busy the site is; the hour is up to a minute longer, never shorter: the cap is never exceeded.
_RECENT = """(SELECT coalesce(sum(m.executions), 0) FROM private.site_execution_minutes m
              WHERE m.site_id = {site} AND m.minute >= date_trunc('minute', now() - interval '1 hour'))"""


def _site_state(unit: Unit, site_id: uuid.UUID) -> dict[str, Any]:
    """Running executions (live lease), executions admitted in the last hour, and the agency's plan."""
    return unit.fetchrow(
        f"""SELECT
             (SELECT count(*) FROM public.workflow_executions
              WHERE site_id = %(site)s AND status = 'running' AND lease_expires_at > now()) AS running,
             {_RECENT.format(site="%(site)s")} AS recent,
             (SELECT p.plan FROM public.sites s JOIN private.agency_plans p ON p.agency_id = s.agency_id
              WHERE s.id = %(site)s) AS plan""",
        {"site": site_id},
    )


@dataclass
class SiteCapacity:
    """What one site may start now: ``slots`` running places free, ``volume_left`` in this hour."""

    limits: Any
    slots: int
    volume_left: int


def site_capacities(unit: Unit, event_ids: list[uuid.UUID]) -> Callable[[], dict[uuid.UUID, SiteCapacity]]:
    """``admit``'s locks and counts for every site subscribed to the events of a batch, sent now (pipeline
    mode) and read by calling the result. The sites are locked in one order (two workers locking
    overlapping sets never deadlock), then counted as ``_site_state``."""
    sites = f"SELECT DISTINCT site_id FROM ({dal.BATCH_SUBSCRIPTIONS}) s"
    unit.execute(f"""SELECT count(pg_advisory_xact_lock(hashtextextended('dramac.executions:' || site_id::text, 0)))
                     FROM ({sites} ORDER BY site_id) sites""", {"events": event_ids})
    cursor = unit.execute(
        f"""SELECT site_id AS site,
              (SELECT count(*) FROM public.workflow_executions e
               WHERE e.site_id = sites.site_id AND e.status = 'running' AND e.lease_expires_at > now()) AS running,
              {_RECENT.format(site="sites.site_id")} AS recent,
              (SELECT p.plan FROM public.sites s JOIN private.agency_plans p ON p.agency_id = s.agency_id
               WHERE s.id = sites.site_id) AS plan
            FROM ({sites}) sites""",
        {"events": event_ids},
    )
    return lambda: {row["site"]: _capacity(row) for row in cursor.fetchall()}


def _capacity(row: dict[str, Any]) -> SiteCapacity:
    limits = plan_limits(row["plan"])
    return SiteCapacity(limits, slots=max(0, limits.max_running_executions - row["running"]),
                        volume_left=max(0, limits.max_executions_per_hour - row["recent"]))


def may_continue(unit: Unit, execution_id: uuid.UUID | str) -> bool:
    """Whether a pending, waiting or abandoned execution may take a running slot of its site now."""
    row = unit.fetchone("SELECT site_id, status FROM public.workflow_executions WHERE id = %s", (execution_id,))
    if row is None or row["status"] in ("completed", "failed", "cancelled"):
        return True  # nothing to admit: claiming finds nothing to run
    _lock_site(unit, row["site_id"])
    state = _site_state(unit, row["site_id"])
    return bool(state["running"] < plan_limits(state["plan"]).max_running_executions)


def queue_executions(unit: Unit, event: dict[str, Any], workflow_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Create the event's executions of these workflows ``pending``, without a lease (new ones only)."""
    if not workflow_ids:
        return []
    rows = unit.fetchall(
        """INSERT INTO public.workflow_executions (workflow_id, site_id, event_id, status, next_position)
           SELECT w.id, w.site_id, %(event)s, 'pending',
                  coalesce((SELECT min(s.position) FROM public.workflow_steps s WHERE s.workflow_id = w.id), 0)
           FROM public.automation_workflows w WHERE w.id = ANY(%(workflows)s::uuid[])
           ON CONFLICT (event_id, workflow_id) WHERE rerun_of IS NULL DO NOTHING
           RETURNING id""",
        {"event": event["id"], "workflows": list(workflow_ids)},
    )
    return [r["id"] for r in rows]


def record_stopped(unit: Unit, event: dict[str, Any], workflow_ids: list[uuid.UUID], *, reason: str,
                   error: str) -> int:
    """Executions that do not run, with why: ``failed``, ``stop_reason``, ``error`` (new ones only); all but
    those refused for volume count towards the site's hourly volume, as every execution created does."""
    if not workflow_ids:
        return 0
    rows = unit.fetchall(
        """INSERT INTO public.workflow_executions
             (workflow_id, site_id, event_id, status, next_position, started_at, completed_at, error, stop_reason)
           SELECT w.id, w.site_id, %(event)s, 'failed', 0, now(), now(), %(error)s, %(reason)s
           FROM public.automation_workflows w WHERE w.id = ANY(%(workflows)s::uuid[])
           ON CONFLICT (event_id, workflow_id) WHERE rerun_of IS NULL DO NOTHING
           RETURNING id""",
        {"event": event["id"], "workflows": list(workflow_ids), "error": error, "reason": reason},
    )
    return len(rows)
