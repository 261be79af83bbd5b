-- A re-run replays its original's event: once retention has deleted that event (the execution kept
-- longer keeps no event_id), there is nothing to replay, and private.rerun_execution says so
-- ({"outcome": "event_pruned"}, a 409 event_pruned) instead of running the steps on an empty payload.

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
    IF v_old.event_id IS NULL THEN
      RETURN jsonb_build_object('outcome', 'event_pruned');
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

REVOKE ALL ON FUNCTION private.rerun_execution(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.rerun_execution(uuid, uuid, text) TO dramac_backend;
