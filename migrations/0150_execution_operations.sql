-- Operating executions: cancel, re-run, and a cap on the relay's resumes of a stalled execution.
--
-- Re-run: a failed (or cancelled) execution can be run again, from the step it stopped at or from
-- the start, as a NEW execution linked to the old one (rerun_of). An execution is re-run at most once
-- (unique rerun_of: two clicks at the same moment make one re-run); a re-run that fails is re-run in
-- turn. A re-run carries its original's event, so (event_id, workflow_id) is unique only among first
-- runs: the event processor's exactly-once guard is unchanged for them.
--
-- Relay cap: the relay counts how often it resumed an execution still stuck at the same step
-- (relay_resumes, relay_resume_position); past the cap (AUTOMATION_MAX_RELAY_RESUMES) it marks the
-- execution failed with the reason instead of resuming it forever.
--
-- Requests never write executions directly (0071 revoked that): cancel and re-run are private.*
-- functions only dramac_backend executes, checking the caller's manage role from the claims.

ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS rerun_of uuid;
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS rerun_from text
  CHECK (rerun_from IN ('start', 'failed_step'));
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS cancelled_by uuid;
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS relay_resumes integer NOT NULL DEFAULT 0;
ALTER TABLE public.workflow_executions ADD COLUMN IF NOT EXISTS relay_resume_position integer;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'workflow_executions_rerun_of_fkey') THEN
    ALTER TABLE public.workflow_executions ADD CONSTRAINT workflow_executions_rerun_of_fkey
      FOREIGN KEY (rerun_of) REFERENCES public.workflow_executions (id) ON DELETE SET NULL;
  END IF;
END
$$;
CREATE UNIQUE INDEX IF NOT EXISTS workflow_executions_rerun_of_key ON public.workflow_executions (rerun_of);

-- (event, workflow) unique among first runs only; start_executions names this index's predicate.
CREATE UNIQUE INDEX IF NOT EXISTS workflow_executions_first_run_key
  ON public.workflow_executions (event_id, workflow_id) WHERE rerun_of IS NULL;
ALTER TABLE public.workflow_executions DROP CONSTRAINT IF EXISTS workflow_executions_event_id_workflow_id_key;
-- the constraint's index also served lookups by event; keep one
CREATE INDEX IF NOT EXISTS workflow_executions_event_idx ON public.workflow_executions (event_id);

-- Cancel a pending, running or waiting execution of a site the caller manages. Steps not yet run
-- are logged skipped; a step caught running (a delay, an HTTP call in flight) is logged skipped with
-- why. A worker still holding the lease finds the execution no longer running at its next write and
-- stops without writing (its database step, if any, rolls back).
-- Returns {"outcome": "cancelled"|"not_found"|"finished", "status": the status found}.
CREATE OR REPLACE FUNCTION private.cancel_execution(p_site_id uuid, p_execution_id uuid) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_row public.workflow_executions;
    v_status text;
  BEGIN
    IF NOT (p_site_id = ANY (private.managed_site_ids()) OR private.is_super_admin()) THEN
      RETURN jsonb_build_object('outcome', 'not_found');
    END IF;
    UPDATE public.workflow_executions e SET
      status = 'cancelled', completed_at = now(), resume_at = NULL, lease_owner = NULL, lease_expires_at = NULL,
      error = 'cancelled', cancelled_by = auth.uid(), updated_at = now()
    WHERE e.id = p_execution_id AND e.site_id = p_site_id AND e.status IN ('pending', 'running', 'waiting')
    RETURNING e.* INTO v_row;
    IF NOT FOUND THEN
      SELECT e.status INTO v_status FROM public.workflow_executions e
      WHERE e.id = p_execution_id AND e.site_id = p_site_id;
      RETURN jsonb_build_object('outcome', CASE WHEN v_status IS NULL THEN 'not_found' ELSE 'finished' END,
                                'status', v_status);
    END IF;
    UPDATE public.step_execution_logs l SET
      status = 'skipped', completed_at = now(),
      error = 'execution cancelled while this step was running (an external call may have been made)'
    WHERE l.execution_id = v_row.id AND l.site_id = v_row.site_id AND l.status = 'running';
    INSERT INTO public.step_execution_logs
      (execution_id, step_id, site_id, position, step_type, status, attempts, started_at, completed_at, duration_ms)
    SELECT v_row.id, s.id, v_row.site_id, s.position, s.step_type, 'skipped', 0, now(), now(), 0
    FROM public.workflow_steps s WHERE s.workflow_id = v_row.workflow_id AND s.position >= v_row.next_position
    ON CONFLICT (execution_id, position) DO NOTHING;
    RETURN jsonb_build_object('outcome', 'cancelled', 'status', 'cancelled');
  END
  $$;

-- Re-run a failed or cancelled execution of a site the caller manages, as a new pending execution
-- (its worker takes it from the queue message the API sends after commit, or from the relay's sweep).
-- p_from 'start': from the first step with an empty context; 'failed_step': from the step the old one
-- stopped at, with the outputs of the steps before it (templates {{steps.N.output}} keep working).
-- Returns {"outcome": "created"|"not_found"|"not_rerunnable"|"already_rerun"|"no_steps", ...}.
CREATE OR REPLACE FUNCTION private.rerun_execution(p_site_id uuid, p_execution_id uuid, p_from text) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_old public.workflow_executions;
    v_first integer;
    v_new uuid;
    v_existing uuid;
  BEGIN
    IF p_from NOT IN ('start', 'failed_step') THEN
      RAISE EXCEPTION 'from must be start or failed_step' USING ERRCODE = '22023';
    END IF;
    IF NOT (p_site_id = ANY (private.managed_site_ids()) OR private.is_super_admin()) THEN
      RETURN jsonb_build_object('outcome', 'not_found');
    END IF;
    SELECT * INTO v_old FROM public.workflow_executions e WHERE e.id = p_execution_id AND e.site_id = p_site_id;
    IF NOT FOUND THEN
      RETURN jsonb_build_object('outcome', 'not_found');
    END IF;
    IF v_old.status NOT IN ('failed', 'cancelled') THEN
      RETURN jsonb_build_object('outcome', 'not_rerunnable', 'status', v_old.status);
    END IF;
    SELECT min(s.position) INTO v_first FROM public.workflow_steps s WHERE s.workflow_id = v_old.workflow_id;
    IF v_first IS NULL THEN
      RETURN jsonb_build_object('outcome', 'no_steps');
    END IF;
    INSERT INTO public.workflow_executions (workflow_id, site_id, event_id, status, context, next_position,
                                            rerun_of, rerun_from)
    VALUES (v_old.workflow_id, v_old.site_id, v_old.event_id, 'pending',
            CASE WHEN p_from = 'start' THEN '{}'::jsonb
                 ELSE jsonb_build_object('steps', coalesce(
                   (SELECT jsonb_object_agg(k, v) FROM jsonb_each(coalesce(v_old.context -> 'steps', '{}'::jsonb))
                      AS c(k, v) WHERE k ~ '^[0-9]+$' AND k::integer < v_old.next_position), '{}'::jsonb)) END,
            CASE WHEN p_from = 'start' THEN v_first ELSE greatest(v_old.next_position, v_first) END,
            v_old.id, p_from)
    ON CONFLICT (rerun_of) DO NOTHING
    RETURNING id INTO v_new;
    IF v_new IS NULL THEN
      SELECT e.id INTO v_existing FROM public.workflow_executions e WHERE e.rerun_of = v_old.id;
      RETURN jsonb_build_object('outcome', 'already_rerun', 'rerunId', v_existing);
    END IF;
    RETURN jsonb_build_object('outcome', 'created', 'id', v_new, 'workflowId', v_old.workflow_id);
  END
  $$;

REVOKE ALL ON FUNCTION private.cancel_execution(uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION private.rerun_execution(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.cancel_execution(uuid, uuid) TO dramac_backend;
GRANT EXECUTE ON FUNCTION private.rerun_execution(uuid, uuid, text) TO dramac_backend;
