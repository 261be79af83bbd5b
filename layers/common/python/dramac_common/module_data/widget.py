"""Key-value storage for widget and integration modules, over ``public.module_data``.

The same feel as ``ModuleDatabaseSDK`` (get, set, delete, list keys) for modules without tables of
their own. Rows are scoped to (module, site) by the SDK and, through row-level security on
``module_data``, by the database.
"""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from ..core.db import Unit
from ..core.errors import ValidationFailed
from ..core.jsonbody import unstorable
from .gate import ModuleTarget, require_enabled_module
from .values import fetch_exact

MAX_KEY_LENGTH = 255
MAX_KEYS_LISTED = 1000


def _key(key: Any) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise ValidationFailed(f"A key is a string of 1 to {MAX_KEY_LENGTH} characters", code="invalid_key",
                               details=[{"field": "key", "message": "1 to 255 characters"}])
    problem = unstorable(key)
    if problem:
        raise ValidationFailed(f"key: {problem}", code="invalid_key", details=[{"field": "key", "message": problem}])
    return key


class WidgetStorage:
    """``module_data`` for one module on one site, inside the caller's unit of work."""

    def __init__(self, unit: Unit, target: ModuleTarget, site_id: uuid.UUID):
        self.unit = unit
        self.module_id = target.module_id
        self.site_id = site_id

    @classmethod
    def for_request(cls, unit: Unit, *, site_id: uuid.UUID, module: uuid.UUID | str,
                    write: bool = False) -> WidgetStorage:
        """Inside a user's or site API key's unit; the module must be enabled and active on the site
        (``write``: the request changes values; the module's ``clientAccess`` decides for client users)."""
        return cls(unit, require_enabled_module(unit, site_id, module, write=write), site_id)

    def get(self, key: str, default: Any = None) -> Any:
        rows = fetch_exact(
            self.unit, "SELECT value FROM public.module_data WHERE module_id = %s AND site_id = %s AND key = %s",
            (self.module_id, self.site_id, _key(key)))
        return default if not rows else rows[0]["value"]

    def set(self, key: str, value: Any) -> dict[str, Any]:
        return fetch_exact(
            self.unit,
            """
            INSERT INTO public.module_data (module_id, site_id, key, value) VALUES (%s, %s, %s, %s)
            ON CONFLICT (module_id, site_id, key) DO UPDATE SET value = EXCLUDED.value
            RETURNING key, value, created_at, updated_at
            """,
            (self.module_id, self.site_id, _key(key), Jsonb(value)))[0]

    def delete(self, key: str) -> bool:
        cur = self.unit.execute(
            "DELETE FROM public.module_data WHERE module_id = %s AND site_id = %s AND key = %s",
            (self.module_id, self.site_id, _key(key)))
        return cur.rowcount > 0

    def list_keys(self, prefix: str | None = None, *, limit: int = MAX_KEYS_LISTED) -> list[str]:
        pattern = None
        if prefix:
            pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = self.unit.fetchall(
            """
            SELECT key FROM public.module_data
            WHERE module_id = %s AND site_id = %s AND (%s::text IS NULL OR key LIKE %s::text)
            ORDER BY key LIMIT %s
            """,
            (self.module_id, self.site_id, pattern, pattern, max(0, min(limit, MAX_KEYS_LISTED))))
        return [r["key"] for r in rows]
