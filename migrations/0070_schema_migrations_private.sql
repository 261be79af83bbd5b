-- The migration runner's own bookkeeping is nobody's business but the runner's. public is the schema
-- PostgREST exposes, so the table gets row-level security (with no policy: nothing is visible or
-- writable through anon or authenticated) and loses every grant those roles had: 0003's
-- "GRANT ... ON ALL TABLES IN SCHEMA public TO authenticated", and on Supabase the default privileges
-- that hand every new table in public to anon and authenticated. The runner connects as the table's
-- owner, which RLS (not forced) does not restrict. New databases get the same at creation
-- (dramac_common.migrate); this file brings existing ones in line.

ALTER TABLE public.schema_migrations ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.schema_migrations FROM PUBLIC, anon, authenticated;
