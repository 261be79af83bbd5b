"""The properties Supabase's database linter (splinter) checks, read from the PostgreSQL catalog.

Each rule is a query returning one row per offence (``what``: the object and what is wrong). The
rules follow splinter's lints of the same number -- the same catalogs, the same notion of an exposed
schema (here: ``public`` and every module schema ``mod_<8 hex>``, all reachable through PostgREST)
-- and are stricter where splinter matches text: any call of ``auth.*``, ``current_setting`` or a
``private`` helper in a policy must be wrapped in ``(SELECT ...)``, and the request roles must hold
no privilege row-level security does not govern. Splinter's INFO-level lints (unused indexes, RLS
enabled without a policy) are not errors and are not checked.
"""

from __future__ import annotations

import re
from typing import Any

# Schemas splinter never lints (its own list), plus PostgreSQL's internal ones.
SYSTEM_SCHEMAS = (
    "_timescaledb_cache", "_timescaledb_catalog", "_timescaledb_config", "_timescaledb_internal", "auth", "cron",
    "extensions", "graphql", "graphql_public", "information_schema", "net", "pgmq", "pgroonga", "pgsodium",
    "pgsodium_masks", "pgtle", "pgbouncer", "pg_catalog", "realtime", "repack", "storage", "supabase_functions",
    "supabase_migrations", "tiger", "topology", "vault", "pg_toast",
)
EXPOSED = "(n.nspname = 'public' OR n.nspname ~ '^mod_[a-f0-9]{8}$')"
LINTED = "(n.nspname <> ALL (%(system)s) AND n.nspname !~ '^pg_(temp|toast_temp)_')"
NOT_EXTENSION = "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')"

RULES: dict[str, str] = {
    # 0013 rls_disabled_in_public / 0007 policy_exists_rls_disabled: every table a request can reach
    # has row-level security; module tables have it forced (their owner is the provisioner's role).
    "rls_enabled_on_exposed_tables": f"""
        SELECT format('%%I.%%I: row-level security is off', n.nspname, c.relname) AS what
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND {EXPOSED} AND NOT c.relrowsecurity AND {NOT_EXTENSION}
        UNION ALL
        SELECT format('%%I.%%I: row-level security is not forced', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname ~ '^mod_[a-f0-9]{{8}}$' AND NOT c.relforcerowsecurity
        UNION ALL
        SELECT format('%%I.%%I: has policies but row-level security is off', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {LINTED} AND NOT c.relrowsecurity AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid)
    """,
    # 0006 multiple_permissive_policies: one permissive policy per (role, command).
    "one_permissive_policy_per_role_and_command": f"""
        SELECT format('%%I.%%I: %%s policies for %%s %%s: %%s', n.nspname, c.relname, count(*), r.rolname, a.cmd,
                      string_agg(p.polname, ', ' ORDER BY p.polname)) AS what
        FROM pg_policy p
        JOIN pg_class c ON c.oid = p.polrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_roles r ON p.polroles @> ARRAY[r.oid] OR p.polroles = ARRAY[0::oid]
        CROSS JOIN LATERAL unnest(CASE p.polcmd WHEN 'r' THEN ARRAY['SELECT'] WHEN 'a' THEN ARRAY['INSERT']
                                                WHEN 'w' THEN ARRAY['UPDATE'] WHEN 'd' THEN ARRAY['DELETE']
                                                ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE'] END) AS a(cmd)
        WHERE p.polpermissive AND {LINTED} AND NOT r.rolbypassrls AND r.rolname !~ '^pg_' AND {NOT_EXTENSION}
        GROUP BY n.nspname, c.relname, r.rolname, a.cmd
        HAVING count(*) > 1
    """,
    # 0015 rls_references_user_metadata; 0024 rls_policy_always_true (writes of anon/authenticated/PUBLIC).
    "no_user_metadata_or_always_true_write_policies": f"""
        SELECT format('%%I.%%I policy %%I: %%s', pp.schemaname, pp.tablename, pp.policyname,
                      CASE WHEN concat(pp.qual, pp.with_check) LIKE '%%user_metadata%%'
                           THEN 'reads user_metadata, which users edit themselves'
                           ELSE 'lets every row through' END) AS what
        FROM pg_policies pp JOIN pg_namespace n ON n.nspname = pp.schemaname
        WHERE {LINTED} AND (
          concat(pp.qual, pp.with_check) LIKE '%%user_metadata%%'
          OR (pp.permissive = 'PERMISSIVE' AND pp.roles && ARRAY['public', 'anon', 'authenticated']::name[] AND (
                (pp.cmd IN ('UPDATE', 'DELETE', 'ALL')
                 AND (pp.qual IS NULL OR replace(lower(pp.qual), ' ', '') IN ('true', '(true)', '1=1', '(1=1)')))
                OR (pp.cmd IN ('INSERT', 'UPDATE', 'ALL')
                    AND (replace(lower(coalesce(pp.with_check, '')), ' ', '') IN ('true', '(true)', '1=1', '(1=1)')
                         OR (pp.cmd = 'INSERT' AND pp.with_check IS NULL))))))
    """,
    # 0011 function_search_path_mutable.
    "functions_have_a_fixed_search_path": f"""
        SELECT format('%%I.%%s: search_path is not fixed', n.nspname, p.oid::regprocedure) AS what
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        WHERE {LINTED}
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
          AND NOT EXISTS (SELECT 1 FROM unnest(coalesce(p.proconfig, '{{}}')) cfg WHERE cfg LIKE 'search_path=%%')
    """,
    # 0028/0029: security-definer functions callable by anon or authenticated in an exposed schema;
    # anon may call no security-definer function anywhere.
    "definer_functions_are_not_exposed": f"""
        SELECT format('%%s: security definer, executable by %%s', p.oid::regprocedure, r.rolname) AS what
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
        CROSS JOIN (VALUES ('anon'), ('authenticated')) AS r(rolname)
        WHERE p.prosecdef AND {LINTED} AND has_function_privilege(r.rolname, p.oid, 'EXECUTE')
          AND ({EXPOSED} OR (r.rolname = 'anon' AND has_schema_privilege('anon', n.oid, 'USAGE')))
    """,
    # TRUNCATE is outside row-level security, REFERENCES and TRIGGER are no request's business, and
    # anon (no sign-in) reaches no table at all. (Supabase's default privileges grant all of them.)
    "request_roles_hold_only_rls_governed_privileges": f"""
        SELECT format('%%I.%%I: %%s holds %%s', n.nspname, c.relname, r.rolname, pr.privilege) AS what
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        CROSS JOIN (VALUES ('anon'), ('authenticated')) AS r(rolname)
        CROSS JOIN (VALUES ('TRUNCATE'), ('REFERENCES'), ('TRIGGER'), ('SELECT'), ('INSERT'), ('UPDATE'),
                           ('DELETE')) AS pr(privilege)
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {EXPOSED}
          AND (pr.privilege IN ('TRUNCATE', 'REFERENCES', 'TRIGGER') OR r.rolname = 'anon')
          AND (has_table_privilege(r.rolname, c.oid, pr.privilege)
               OR (pr.privilege IN ('SELECT', 'INSERT', 'UPDATE', 'REFERENCES')
                   AND has_any_column_privilege(r.rolname, c.oid, pr.privilege)))
    """,
    # 0010 security_definer_view, 0016 materialized_view_in_api, 0017 foreign_table_in_api,
    # 0002 auth_users_exposed: nothing exposed bypasses row-level security.
    "no_exposed_relation_bypasses_rls": f"""
        SELECT format('%%I.%%I: %%s readable by a request role', n.nspname, c.relname,
                      CASE c.relkind WHEN 'v' THEN 'security-definer view' WHEN 'm' THEN 'materialized view'
                                     ELSE 'foreign table' END) AS what
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE {EXPOSED} AND (has_table_privilege('anon', c.oid, 'SELECT')
                             OR has_table_privilege('authenticated', c.oid, 'SELECT'))
          AND (c.relkind IN ('m', 'f')
               OR (c.relkind = 'v' AND NOT coalesce(lower(c.reloptions::text)::text[], '{{}}')
                   && ARRAY['security_invoker=1', 'security_invoker=true', 'security_invoker=yes',
                            'security_invoker=on']))
    """,
    # 0014 extension_in_public, 0021 fkey_to_auth_unique, 0018 unsupported_reg_types.
    "no_extension_in_public_no_key_to_auth_uniques_no_reg_columns": f"""
        SELECT format('extension %%I is installed in public', e.extname) AS what
        FROM pg_extension e WHERE e.extnamespace = 'public'::regnamespace AND e.extname <> 'plpgsql'
        UNION ALL
        SELECT format('%%s: foreign key %%I references a unique key of auth', con.conrelid::regclass, con.conname)
        FROM pg_constraint con JOIN pg_class r ON r.oid = con.confrelid JOIN pg_index i ON i.indexrelid = con.conindid
        WHERE con.contype = 'f' AND r.relnamespace = 'auth'::regnamespace AND i.indisunique AND NOT i.indisprimary
        UNION ALL
        SELECT format('%%I.%%I.%%I is of type %%s', n.nspname, c.relname, a.attname, t.typname)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_type t ON t.oid = a.atttypid
        WHERE {LINTED} AND t.typnamespace = 'pg_catalog'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
          AND t.typname IN ('regcollation', 'regconfig', 'regdictionary', 'regnamespace', 'regoper', 'regoperator',
                            'regproc', 'regprocedure')
    """,
    # 0001 unindexed_foreign_keys (INFO in splinter, a rule of this project), 0009 duplicate_index,
    # 0004 no_primary_key.
    "keys_indexed_indexes_distinct_tables_keyed": f"""
        SELECT format('%%s: foreign key %%I has no index leading with its columns', con.conrelid::regclass,
                      con.conname) AS what
        FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
        WHERE con.contype = 'f' AND {LINTED}
          AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = con.conrelid AND i.indisvalid
                          AND (string_to_array(i.indkey::text, ' ')::int2[])[1:array_length(con.conkey, 1)]
                              = con.conkey)
        UNION ALL
        SELECT format('%%I.%%I: identical indexes %%s', ix.schemaname, ix.tablename,
                      string_agg(ix.indexname, ', ' ORDER BY ix.indexname))
        FROM pg_indexes ix JOIN pg_namespace n ON n.nspname = ix.schemaname
        WHERE {LINTED}
        GROUP BY ix.schemaname, ix.tablename, replace(ix.indexdef, ix.indexname, '')
        HAVING count(*) > 1
        UNION ALL
        SELECT format('%%I.%%I: no primary key', n.nspname, c.relname)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind = 'r' AND {LINTED} AND {NOT_EXTENSION}
          AND NOT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
    """,
    # A module table's foreign keys stay inside its site: (site_id, column) -> (site_id, key) of a table
    # of the same schema. Nothing else, not even site_id -> public.sites(id) (migration 0090).
    "module_foreign_keys_stay_in_their_site": """
        SELECT format('%%s: foreign key %%I %%s', con.conrelid::regclass, con.conname,
                      CASE WHEN r.relnamespace <> c.relnamespace THEN 'leaves the module''s schema'
                           ELSE 'does not pair site_id with site_id' END) AS what
        FROM pg_constraint con
        JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class r ON r.oid = con.confrelid
        WHERE con.contype = 'f' AND n.nspname ~ '^mod_[a-f0-9]{8}$'
          AND NOT (r.relnamespace = c.relnamespace
                   AND (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = con.conkey[1])
                       = 'site_id'
                   AND (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = r.oid AND a.attnum = con.confkey[1])
                       = 'site_id')
    """,
}

# 0003 auth_rls_initplan, stricter: every call a policy makes of auth.*, current_setting or a private
# helper is the whole of a (SELECT ...), so it runs once per statement, not once per row.
POLICY_EXPRESSIONS = f"""
    SELECT pp.schemaname, pp.tablename, pp.policyname, pp.qual, pp.with_check
    FROM pg_policies pp JOIN pg_namespace n ON n.nspname = pp.schemaname WHERE {LINTED}
"""
_PER_ROW_CALL = re.compile(r"\b(?:auth\.\w+|private\.\w+|current_setting)\s*\(")
_WRAPPED = re.compile(r"\(\s*SELECT\s+$", re.IGNORECASE)


def per_row_calls(expression: str | None) -> list[str]:
    """The helper calls in a deparsed policy expression that are not the whole of a ``(SELECT ...)``."""
    found = []
    for match in _PER_ROW_CALL.finditer(expression or ""):
        if not _WRAPPED.search(expression[:match.start()]):
            found.append(match.group(0).rstrip("("))
    return found


def findings(conn: Any, rule: str) -> list[str]:
    """The offences against one rule in the database ``conn`` is connected to, sorted."""
    if rule == "policy_helpers_run_once_per_statement":
        rows = conn.execute(POLICY_EXPRESSIONS, {"system": list(SYSTEM_SCHEMAS)}).fetchall()
        out = []
        for row in rows:
            row = row if isinstance(row, dict) else dict(zip(("schemaname", "tablename", "policyname", "qual",
                                                               "with_check"), row, strict=True))
            for expression in (row["qual"], row["with_check"]):
                for call in per_row_calls(expression):
                    out.append(f"{row['schemaname']}.{row['tablename']} policy {row['policyname']}: {call}() "
                               "runs once per row; wrap it in (SELECT ...)")
        return sorted(set(out))
    rows = conn.execute(RULES[rule], {"system": list(SYSTEM_SCHEMAS)}).fetchall()
    return sorted(r["what"] if isinstance(r, dict) else r[0] for r in rows)


ALL_RULES = [*RULES, "policy_helpers_run_once_per_statement"]
