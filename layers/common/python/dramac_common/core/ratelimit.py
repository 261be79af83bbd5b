"""Per-site and per-API-key rate limits of the data and events routes: token buckets in PostgreSQL.

API Gateway's HTTP API throttles per route only, so the limits live here. Taking a token costs no
round trip of its own: ``statement`` is sent in front of the unit of work's opening statements, in the
same pipeline (``db._Opening``, ahead of the first statement), and commits on its own before the request's transaction
begins, so a bucket row is locked for microseconds, never for a whole request, and a request that
fails later has still spent its token. Buckets refill continuously (``rate`` per second up to
``burst``); the key's bucket is taken first, so a key throttled by its own limit does not drain its
site's. The limits are the plan's (``core.settings.PlanLimits``; the agency's plan is read by the
same statement, ``private.take_rate_tokens``, migration 0141).
"""

from __future__ import annotations

import json
import math
import uuid
from typing import NamedTuple

from psycopg import sql

from .errors import Throttled
from .settings import get_settings


class RateLimit(NamedTuple):
    """The buckets one request takes from: its site's and, with an API key, the key's."""

    site_id: uuid.UUID
    key_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None  # a user's request counts only when the user is a member of the site

    def statement(self) -> sql.Composed:
        """``SELECT … AS wait``: 0 when the request may go on, else the seconds until a token is back."""
        settings = get_settings()
        limits = {name: {"siteRate": p.site_rate, "siteBurst": p.site_burst, "keyRate": p.key_rate,
                         "keyBurst": p.key_burst} for name, p in settings.plan_limits.items()}
        return sql.SQL("SELECT private.take_rate_tokens({}::uuid, {}::uuid, {}::jsonb, {}, {}::uuid) AS wait").format(
            sql.Literal(str(self.site_id)), sql.Literal(str(self.key_id) if self.key_id else None),
            sql.Literal(json.dumps(limits)), sql.Literal(settings.default_plan),
            sql.Literal(str(self.user_id) if self.user_id else None))

    def refuse(self, wait_s: float) -> Throttled:
        retry_after = max(1, math.ceil(wait_s))
        whose = "this API key" if self.key_id else "this site"
        return Throttled(f"Too many requests for {whose}: retry after {retry_after} s", code="rate_limited",
                         headers={"Retry-After": str(retry_after)})
