-- The automation engine's bookkeeping, added to the tables of 0002 (additive only).
--
-- workflow_executions: a lease (owner + expiry) so that one worker at a time runs an execution,
-- even when the same event is delivered to two workers at once; a crashed worker's lease expires
-- and the next delivery (or the relay's sweep) takes the execution over.
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS lease_owner uuid;
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz;
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now();

-- The relay's sweeps: waiting executions that are due, and running ones whose worker vanished.
CREATE INDEX IF NOT EXISTS workflow_executions_waiting_idx
  ON public.workflow_executions (resume_at) WHERE status = 'waiting';
CREATE INDEX IF NOT EXISTS workflow_executions_unfinished_idx
  ON public.workflow_executions (lease_expires_at) WHERE status IN ('pending', 'running');

-- step_execution_logs: the step type, so a log reads without joining a step that may be gone.
ALTER TABLE public.step_execution_logs ADD COLUMN IF NOT EXISTS step_type text;

-- automation_events_log: how many workflow steps led to this event. An event written by a step
-- (create_record through the module data SDK) inherits the step's depth from the transaction-local
-- setting dramac.automation_depth, so workflows that trigger each other stop at a bounded depth.
ALTER TABLE public.automation_events_log ADD COLUMN IF NOT EXISTS chain_depth integer NOT NULL
  DEFAULT coalesce(nullif(current_setting('dramac.automation_depth', true), '')::integer, 0);

-- automation_webhooks: what the incoming endpoint last did, for the dashboard.
ALTER TABLE public.automation_webhooks ADD COLUMN IF NOT EXISTS last_event_id uuid;
