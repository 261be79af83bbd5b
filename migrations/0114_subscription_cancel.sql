-- Canceling a subscription (an owner's billing decision). A free (or one-time) subscription is
-- canceled at once; a recurring paid one is canceled at the end of its billing period through the
-- payment provider: the request records the scheduled cancel (cancel_effective_at) and the provider's
-- subscription.canceled webhook finishes it. Either way the module's installations on the agency's
-- sites are disabled (their data kept), in the transaction that cancels.

ALTER TABLE public.agency_module_subscriptions ADD COLUMN IF NOT EXISTS cancel_requested_at timestamptz;
ALTER TABLE public.agency_module_subscriptions ADD COLUMN IF NOT EXISTS cancel_requested_by uuid;
ALTER TABLE public.agency_module_subscriptions ADD COLUMN IF NOT EXISTS cancel_effective_at timestamptz;

-- Cancel now (p_effective_at NULL) or schedule the cancel for p_effective_at. Returns the row with
-- "previous_status" and "changed"; {"refused": "not_active"} for a subscription that is not active.
CREATE OR REPLACE FUNCTION private.cancel_subscription(p_agency_id uuid, p_subscription_id uuid,
                                                       p_effective_at timestamptz) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_row public.agency_module_subscriptions;
    v_previous text;
  BEGIN
    IF NOT private.can_own_agency(p_agency_id) THEN
      RAISE EXCEPTION 'only an owner of the agency may cancel its subscriptions' USING ERRCODE = '42501';
    END IF;
    SELECT s.* INTO v_row FROM public.agency_module_subscriptions s
    WHERE s.id = p_subscription_id AND s.agency_id = p_agency_id FOR UPDATE;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    v_previous := v_row.status;
    IF v_row.status = 'canceled' THEN
      RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', v_previous, 'changed', false);
    END IF;
    IF v_row.status NOT IN ('active', 'past_due') THEN
      RETURN jsonb_build_object('refused', 'not_active', 'status', v_row.status);
    END IF;
    IF p_effective_at IS NULL THEN
      UPDATE public.agency_module_subscriptions s
      SET status = 'canceled', canceled_at = now(), cancel_requested_at = now(), cancel_requested_by = auth.uid(),
          cancel_effective_at = now()
      WHERE s.id = v_row.id RETURNING s.* INTO v_row;
    ELSIF v_row.cancel_requested_at IS NULL THEN
      UPDATE public.agency_module_subscriptions s
      SET cancel_requested_at = now(), cancel_requested_by = auth.uid(), cancel_effective_at = p_effective_at
      WHERE s.id = v_row.id RETURNING s.* INTO v_row;
    ELSE
      RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', v_previous, 'changed', false);
    END IF;
    RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', v_previous, 'changed', true);
  END
  $$;
REVOKE ALL ON FUNCTION private.cancel_subscription(uuid, uuid, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.cancel_subscription(uuid, uuid, timestamptz) TO dramac_backend;

-- Disable the module's installations on the agency's sites (a canceled subscription); returns, per
-- installation disabled, the row for its marketplace.module.disabled event (a jsonb array). Called by
-- the cancel request (as the backend role, for an owner of the agency) and by the webhook (the service,
-- without claims).
CREATE OR REPLACE FUNCTION private.disable_canceled_installations(p_agency_id uuid, p_module_id uuid)
  RETURNS jsonb
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
    WITH target AS (
      SELECT i.id, i.status AS previous_status FROM public.site_module_installations i
      WHERE i.agency_id = p_agency_id AND i.module_id = p_module_id AND i.status <> 'disabled'
        AND (coalesce(nullif(current_setting('request.jwt.claims', true), ''), '{}') = '{}'
             OR private.can_own_agency(p_agency_id))
      FOR UPDATE
    ), done AS (
      UPDATE public.site_module_installations i SET status = 'disabled', is_enabled = false, target_version = NULL,
        error = 'The agency''s subscription to this module was canceled'
      FROM target t WHERE i.id = t.id
      RETURNING i.*, t.previous_status
    )
    SELECT coalesce(jsonb_agg(to_jsonb(d)), '[]'::jsonb) FROM done d
  $$;
REVOKE ALL ON FUNCTION private.disable_canceled_installations(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.disable_canceled_installations(uuid, uuid) TO dramac_backend;
