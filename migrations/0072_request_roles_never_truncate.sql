-- TRUNCATE is outside row-level security: a role holding it empties a table whatever the policies
-- say. REFERENCES and TRIGGER (and MAINTAIN, PostgreSQL 17) are no request's business either. Plain
-- PostgreSQL never gave them to the request roles here, but Supabase's default privileges hand ALL
-- of them to anon and authenticated on every table created in public, and 0003 only added grants.
-- The request roles keep exactly SELECT, INSERT, UPDATE and DELETE where they had them.
-- (Track A's tables -- subscriptions, installations, payments, idempotency records, site API keys --
-- are left to its own migrations.)
DO $$
DECLARE
  t text;
  extra text := CASE WHEN current_setting('server_version_num')::int >= 170000
                     THEN 'TRUNCATE, REFERENCES, TRIGGER, MAINTAIN' ELSE 'TRUNCATE, REFERENCES, TRIGGER' END;
BEGIN
  FOR t IN
    SELECT c.relname FROM pg_catalog.pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
      AND c.relname NOT IN ('agency_module_subscriptions', 'site_module_installations', 'payment_checkouts',
                            'payment_events', 'idempotency_records', 'site_api_keys')
    ORDER BY c.relname
  LOOP
    EXECUTE format('REVOKE %s ON public.%I FROM anon, authenticated', extra, t);
  END LOOP;
END
$$;
