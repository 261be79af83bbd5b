"""Export of one site's data of one module: every row of the site in each of the module's tables (and
its widget storage), as NDJSON, one file per table, in a zip stored in S3 and handed out through a
presigned download URL.

Rows are read in the caller's unit, as ``authenticated`` under row-level security and filtered by the
site, through a server-side cursor (the archive is written as the rows stream in, spooled to disk past
32 MiB). The object is uploaded before the unit commits its audit row, so an export that is recorded
exists. Owners and admins may export (what a purge deletes, they can take first).
"""

from __future__ import annotations

import json
import tempfile
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

from ..core import audit, storage
from ..core.db import Unit
from ..core.settings import get_settings
from ..core.tenancy import require_site_access
from ..core.wire import CamelModel
from .site_modules import get_installation

SPOOL_BYTES = 32 * 1024 * 1024
WIDGET_STORAGE = "module_data"  # the archive's name for the widget storage rows


class ExportResult(CamelModel):
    export_id: uuid.UUID
    site_id: uuid.UUID
    module_id: uuid.UUID
    module_slug: str | None
    version: str | None
    format: str
    key: str
    size_bytes: int
    tables: dict[str, int]  # rows per file (table name, and module_data for widget storage)
    url: str
    expires_at: datetime


def export_module_data(unit: Unit, site_id: uuid.UUID, module_id: uuid.UUID) -> ExportResult:
    access = require_site_access(unit, site_id, manage=True)
    installation = get_installation(unit, site_id, module_id)
    registry = unit.fetchone("SELECT schema_name, table_names FROM public.module_database_registry "
                             "WHERE module_id = %s AND uses_schema", (module_id,))
    export_id = uuid.uuid4()
    exported_at = datetime.now(UTC)
    counts: dict[str, int] = {}
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            if registry and registry["schema_name"]:
                for table in sorted(registry["table_names"] or []):
                    query = sql.SQL("SELECT to_jsonb(t)::text AS line FROM {} t WHERE t.site_id = %s "
                                    "ORDER BY t.created_at, t.id").format(
                        sql.Identifier(registry["schema_name"], table))
                    counts[table] = _write_lines(unit, archive, f"{table}.ndjson", query, (site_id,))
            counts[WIDGET_STORAGE] = _write_lines(
                unit, archive, f"{WIDGET_STORAGE}.ndjson",
                sql.SQL("SELECT jsonb_build_object('key', d.key, 'value', d.value, 'created_at', d.created_at, "
                        "'updated_at', d.updated_at)::text AS line FROM public.module_data d "
                        "WHERE d.site_id = %s AND d.module_id = %s ORDER BY d.key"), (site_id, module_id))
            archive.writestr("export.json", json.dumps({
                "exportId": str(export_id), "siteId": str(site_id), "moduleId": str(module_id),
                "moduleSlug": installation.slug, "version": installation.installed_version,
                "exportedAt": exported_at.isoformat(), "format": "ndjson", "tables": counts}, indent=2))
        size = spool.tell()
        spool.seek(0)
        key = f"exports/{access.agency_id}/{site_id}/{module_id}/{export_id}.zip"
        audit.record(unit, "installation.exported", agency_id=access.agency_id, site_id=site_id,
                     target_type="installation", target_id=installation.id,
                     details={"module_id": str(module_id), "export_id": str(export_id), "key": key, "tables": counts})
        storage.put_file(key, spool, content_type="application/zip")
    filename = f"{installation.slug or module_id}-{site_id}-{exported_at:%Y%m%dT%H%M%SZ}.zip"
    return ExportResult(
        export_id=export_id, site_id=site_id, module_id=module_id, module_slug=installation.slug,
        version=installation.installed_version, format="zip", key=key, size_bytes=size, tables=counts,
        url=storage.download_url(key, filename=filename),
        expires_at=exported_at + timedelta(seconds=get_settings().export_url_ttl_seconds))


def _write_lines(unit: Unit, archive: zipfile.ZipFile, name: str, query: sql.SQL | sql.Composed, params: tuple[Any, ...]) -> int:
    """Stream the query's ``line`` column into ``name`` in the archive, one line per row."""
    count = 0
    with archive.open(name, "w") as out, unit.conn.cursor(name=f"export_{uuid.uuid4().hex[:12]}") as cursor:
        cursor.itersize = 2000
        cursor.execute(query, params)
        for row in cursor:
            out.write(row["line"].encode("utf-8") + b"\n")
            count += 1
    return count
