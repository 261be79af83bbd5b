"""Deploy-time migration: applies the bundled ``migrations/`` to the Aurora database.

CloudFormation runs this function through a CDK Trigger on every deploy that changes it (the
migrations are part of its code, so a new migration always changes it), before the HTTP API's
stage is created or updated: a schema the handlers need exists before traffic reaches them.
It connects to the cluster's writer endpoint (not the RDS Proxy: DDL and the migration advisory
lock want one long session), with the credentials in the Secrets Manager secret.
A failure raises, which fails the Trigger and rolls the deployment back.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dramac_common.core import db
from dramac_common.core.migrate import apply_migrations, default_migrations_dir
from dramac_common.core.settings import get_settings

log = logging.getLogger("dramac.migrate")
log.setLevel(get_settings().log_level)


def migrations_dir() -> Path:
    """``DRAMAC_MIGRATIONS_DIR``, or the ``migrations/`` folder bundled next to this file."""
    if get_settings().migrations_dir:
        return default_migrations_dir()
    bundled = Path(__file__).resolve().parent / "migrations"
    return bundled if bundled.is_dir() else default_migrations_dir()


def handler(event: dict[str, Any] | None, context: Any) -> dict[str, Any]:
    applied = apply_migrations(db.database_url(), migrations_dir())
    log.info("migrations applied: %s", ", ".join(applied) or "none pending")
    return {"applied": applied}
