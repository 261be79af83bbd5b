-- Retention (functions/retention, daily): finished executions (their step logs cascade), step logs of
-- executions kept longer, and the events log are deleted after their periods, in bounded batches.
-- These indexes let each batch find the oldest rows without scanning the tables.
CREATE INDEX IF NOT EXISTS workflow_executions_finished_idx
  ON public.workflow_executions (created_at) WHERE status IN ('completed', 'failed', 'cancelled');
CREATE INDEX IF NOT EXISTS step_execution_logs_started_idx ON public.step_execution_logs (started_at);
CREATE INDEX IF NOT EXISTS automation_events_log_created_idx ON public.automation_events_log (created_at);
