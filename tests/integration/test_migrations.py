"""Migrations apply in order, are recorded, and a second run is a no-op."""

from dramac_common.core.migrate import apply_migrations, default_migrations_dir, migration_files

CONTRACT_TABLES = {
    "profiles", "agencies", "agency_members", "clients", "sites", "modules_v2", "agency_module_subscriptions",
    "site_module_installations", "module_database_registry", "module_data", "automation_events_log",
    "automation_workflows", "workflow_steps", "automation_event_subscriptions", "workflow_executions",
    "step_execution_logs", "automation_connections", "automation_webhooks", "workflow_variables",
}


def test_every_migration_file_is_recorded(owner_conn):
    recorded = [r["name"] for r in owner_conn.execute("SELECT name FROM schema_migrations ORDER BY version")]
    assert recorded == [p.name for p in migration_files(default_migrations_dir())]


def test_running_migrations_twice_is_a_no_op(database_url, owner_conn):
    before = owner_conn.execute("SELECT count(*) AS n FROM pg_catalog.pg_class").fetchone()["n"]
    assert apply_migrations(database_url) == []
    assert apply_migrations(database_url) == []
    after = owner_conn.execute("SELECT count(*) AS n FROM pg_catalog.pg_class").fetchone()["n"]
    assert after == before


def test_every_contract_table_exists_with_rls_enabled(owner_conn):
    rows = owner_conn.execute(
        "SELECT relname, relrowsecurity FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
    ).fetchall()
    tables = {r["relname"]: r["relrowsecurity"] for r in rows}
    assert tables.keys() >= CONTRACT_TABLES
    assert all(tables[t] for t in CONTRACT_TABLES)


def test_every_foreign_key_is_indexed(owner_conn):
    unindexed = owner_conn.execute(
        """
        SELECT c.conrelid::regclass::text AS tbl, c.conname
        FROM pg_constraint c
        WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
          AND NOT EXISTS (
            SELECT 1 FROM pg_index i
            WHERE i.indrelid = c.conrelid
              AND (i.indkey::int2[])[0:array_length(c.conkey, 1) - 1] @> c.conkey
          )
        """
    ).fetchall()
    assert unindexed == []


def test_supabase_auth_emulation_reads_request_claims(owner_conn):
    with owner_conn.transaction():
        owner_conn.execute(
            "SELECT set_config('request.jwt.claims', %s, true)",
            ('{"sub": "00000000-0000-4000-8000-0000000000aa", "role": "authenticated"}',),
        )
        row = owner_conn.execute("SELECT auth.uid()::text AS uid, auth.jwt() ->> 'role' AS role").fetchone()
    assert row == {"uid": "00000000-0000-4000-8000-0000000000aa", "role": "authenticated"}


def test_request_roles_exist_and_service_role_bypasses_rls(owner_conn):
    roles = {
        r["rolname"]: r["rolbypassrls"]
        for r in owner_conn.execute(
            "SELECT rolname, rolbypassrls FROM pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')"
        )
    }
    assert roles == {"anon": False, "authenticated": False, "service_role": True}


def test_em11_helpers_exist_and_refuse_non_module_schemas(owner_conn):
    assert owner_conn.execute("SELECT module_schema_exists('mod_00000000') AS e").fetchone()["e"] is False
    assert owner_conn.execute("SELECT module_schema_exists('public') AS e").fetchone()["e"] is False
    assert owner_conn.execute("SELECT get_module_storage_size('public') AS s").fetchone()["s"] == 0
