-- A site's executions per minute, so that admission reads a busy site's hourly volume from at most 61
-- rows instead of counting the site's executions of the last hour in their index (a cost that grew
-- with the site's volume: up to 100,000 index entries per batch on the pro plan).
--
-- Every insert into workflow_executions adds its rows to the minute they were created in, in the same
-- transaction; as in the count, executions refused for volume (stop_reason 'volume_limit') do not
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

-- The engine's statements that insert executions add them to this count themselves, once per site and
-- statement (automation/dal.py, COUNT_STARTED). A re-run is inserted by private.rerun_execution (the
-- API): this trigger counts it, and only it (the condition keeps every other insert free of the call).
CREATE OR REPLACE FUNCTION private.count_rerun_execution() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    INSERT INTO private.site_execution_minutes AS m (site_id, minute, executions)
    VALUES (NEW.site_id, date_trunc('minute', NEW.created_at), 1)
    ON CONFLICT (site_id, minute) DO UPDATE SET executions = m.executions + 1;
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION private.count_rerun_execution() FROM PUBLIC;

DROP TRIGGER IF EXISTS workflow_executions_count_rerun ON public.workflow_executions;
CREATE TRIGGER workflow_executions_count_rerun AFTER INSERT ON public.workflow_executions
  FOR EACH ROW WHEN (NEW.rerun_of IS NOT NULL) EXECUTE FUNCTION private.count_rerun_execution();

-- The executions already counted by the hour that is running when this migration is applied.
INSERT INTO private.site_execution_minutes (site_id, minute, executions)
SELECT site_id, date_trunc('minute', created_at), count(*)
FROM public.workflow_executions
WHERE created_at >= date_trunc('minute', now() - interval '1 hour') AND stop_reason IS DISTINCT FROM 'volume_limit'
GROUP BY 1, 2
ON CONFLICT (site_id, minute) DO NOTHING;
