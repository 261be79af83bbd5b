-- A site's executions per minute, so that admission reads a busy site's hourly volume from at most 61
-- rows instead of counting the site's executions of the last hour in their index (a cost that grew
-- with the site's volume: up to 100,000 index entries per batch on the pro plan).
--
-- Every insert into workflow_executions adds its rows to the minute they were created in, in the same
-- transaction (a statement-level trigger); as in the count, executions refused for volume (stop_reason 'volume_limit') do not
-- count. Admission holds the site's advisory lock while it reads the count and inserts
-- (automation/admission.py), so two batches of one site never exceed the cap between them; an insert
-- without that lock (a re-run from the API) waits for the minute's row at most until that transaction
-- ends. The rolling hour is read in whole minutes, up to a minute longer than an hour: the cap is never
-- exceeded, and a slot comes back at most a minute late. Rows older than that are deleted by retention
-- (automation/retention.py).

CREATE TABLE IF NOT EXISTS private.site_execution_minutes (
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  minute timestamptz NOT NULL,
  executions integer NOT NULL,
  PRIMARY KEY (site_id, minute)
);
CREATE INDEX IF NOT EXISTS site_execution_minutes_minute_idx ON private.site_execution_minutes (minute);
ALTER TABLE private.site_execution_minutes ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON private.site_execution_minutes FROM PUBLIC;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    EXECUTE 'REVOKE ALL ON private.site_execution_minutes FROM anon, authenticated';
  END IF;
END
$$;

-- Every statement that inserts executions adds them to the count, once per site: a statement-level
-- trigger over the rows it inserted (a transition table), so no writer (the engine's batches, admission's
-- queued and stopped rows, a re-run from the API, or one written later) can forget to count.
CREATE OR REPLACE FUNCTION private.count_started_executions() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    INSERT INTO private.site_execution_minutes AS m (site_id, minute, executions)
    SELECT s.site_id, date_trunc('minute', now()), count(*) FROM started s
     WHERE s.stop_reason IS DISTINCT FROM 'volume_limit'
     GROUP BY s.site_id ORDER BY s.site_id
    ON CONFLICT (site_id, minute) DO UPDATE SET executions = m.executions + EXCLUDED.executions;
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION private.count_started_executions() FROM PUBLIC;

DROP TRIGGER IF EXISTS workflow_executions_count_started ON public.workflow_executions;
CREATE TRIGGER workflow_executions_count_started AFTER INSERT ON public.workflow_executions
  REFERENCING NEW TABLE AS started FOR EACH STATEMENT EXECUTE FUNCTION private.count_started_executions();

-- The executions already counted by the hour that is running when this migration is applied.
INSERT INTO private.site_execution_minutes (site_id, minute, executions)
SELECT site_id, date_trunc('minute', created_at), count(*)
FROM public.workflow_executions
WHERE created_at >= date_trunc('minute', now() - interval '1 hour') AND stop_reason IS DISTINCT FROM 'volume_limit'
GROUP BY 1, 2
ON CONFLICT (site_id, minute) DO NOTHING;
