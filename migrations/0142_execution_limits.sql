-- Execution limits per site: why an execution was stopped without running, and the index the
-- concurrency count uses (running executions of one site).
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS stop_reason text;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'workflow_executions_stop_reason_check') THEN
    ALTER TABLE public.workflow_executions ADD CONSTRAINT workflow_executions_stop_reason_check
      CHECK (stop_reason IS NULL OR stop_reason ~ '^[a-z][a-z_]{0,62}$');
  END IF;
END
$$;
CREATE INDEX IF NOT EXISTS workflow_executions_site_running_idx
  ON public.workflow_executions (site_id) WHERE status = 'running';
