"""The deploy-time migration function (functions/migrate) on real PostgreSQL."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from dramac_common.core.settings import reset_settings

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


@pytest.fixture
def fresh_database(server_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from dramac_dev import localdb

    name, url = localdb.create_database(server_url, prefix="dramac_migrate")
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    try:
        yield url
    finally:
        monkeypatch.undo()
        reset_settings()
        localdb.drop_database(server_url, name)


@pytest.fixture
def bundled_migrations(tmp_path: Path, env) -> Path:
    """The migrations as the CDK app bundles them, pointed at by DRAMAC_MIGRATIONS_DIR."""
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS, target)
    env.set("DRAMAC_MIGRATIONS_DIR", str(target))
    return target


def _migrate_handler():
    from dramac_dev.functions_loader import get_handler

    return get_handler("migrate")


def test_migrate_function_applies_every_bundled_migration_to_an_empty_database(fresh_database, bundled_migrations):
    result = _migrate_handler()({"RequestType": "Create"}, None)

    assert result["applied"] == sorted(p.name for p in bundled_migrations.glob("*.sql"))
    with psycopg.connect(fresh_database) as conn:
        assert conn.execute("SELECT to_regclass('public.modules_v2')").fetchone()[0] == "modules_v2"


def test_migrate_function_applies_nothing_when_the_database_is_current(database_url, bundled_migrations,
                                                                      monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    reset_settings()

    assert _migrate_handler()({}, None) == {"applied": []}
