-- Subscribing an agency to a free module in one statement (issue 14: a write in as few round trips
-- as its work needs). Before this, POST /api/modules/subscribe made six statements in turn: the
-- caller's role in the agency, the module, private.subscribe_free_module, two private.log_platform_event
-- calls and private.record_audit, each waiting for the one before.
--
-- private.subscribe_to_free_module makes the same checks and writes in that order, in one call:
-- - the caller's role in the agency (private.agency_role, what the shared layer's tenancy reads);
--   when it is not one of p_roles (the shared layer's role matrix for billing, passed by the caller
--   so the rule lives in one place) nothing is written and the role is returned: the shared layer
--   answers 404 or 403 from it exactly as for any other agency check;
-- - the published module: when there is none, or it is not free, nothing is written and the module
--   (or null) is returned: the shared layer answers 404 or 402;
-- - then private.subscribe_free_module (which checks the caller and the module again: the database's
--   half of the rule), and when the subscription changed, its two events (created, activated) and
--   its audit row, in the caller's transaction.
-- Returns {"role", "module": {id, slug, name, pricing_type}, "subscription": <row + "changed">,
-- "event_ids"}; the shared layer hands the event ids to the events queue once the transaction commits.

-- The payload of marketplace.subscription.* events, as dramac_common.marketplace.catalog builds it.
CREATE OR REPLACE FUNCTION private.subscription_event_payload(p_sub jsonb, p_module_slug text, p_previous text)
  RETURNS jsonb
  LANGUAGE sql IMMUTABLE SET search_path = ''
  AS $$
    SELECT jsonb_build_object(
      'subscription_id', p_sub -> 'id', 'agency_id', p_sub -> 'agency_id', 'module_id', p_sub -> 'module_id',
      'module_slug', p_module_slug, 'status', p_sub -> 'status', 'previous_status', p_previous,
      'billing_cycle', p_sub -> 'billing_cycle', 'wholesale_price_cents', p_sub -> 'wholesale_price_cents',
      'markup_type', p_sub -> 'markup_type', 'markup_value', p_sub -> 'markup_value',
      'retail_price_cents', p_sub -> 'retail_price_cents', 'currency', p_sub -> 'currency')
  $$;

CREATE OR REPLACE FUNCTION private.subscribe_to_free_module(p_agency_id uuid, p_module_id uuid, p_roles text[])
  RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_role text;
    v_module jsonb;
    v_sub jsonb;
    v_payload jsonb;
    v_events uuid[] := '{}';
  BEGIN
    SELECT private.agency_role(a.id) INTO v_role FROM public.agencies a WHERE a.id = p_agency_id;
    IF v_role IS NULL OR NOT v_role = ANY (p_roles) THEN
      RETURN jsonb_build_object('role', v_role);
    END IF;
    SELECT jsonb_build_object('id', m.id, 'slug', m.slug, 'name', m.name, 'pricing_type', m.pricing_type)
      INTO v_module
    FROM public.modules_v2 m WHERE m.id = p_module_id AND m.status = 'published';
    IF v_module IS NULL OR v_module ->> 'pricing_type' <> 'free' THEN
      RETURN jsonb_build_object('role', v_role, 'module', v_module);
    END IF;
    v_sub := private.subscribe_free_module(p_agency_id, p_module_id);
    IF (v_sub ->> 'changed')::boolean THEN
      -- a free subscription is created active: workflows on either event see it
      v_payload := private.subscription_event_payload(v_sub, v_module ->> 'slug', NULL);
      v_events := ARRAY[
        private.log_platform_event(NULL, p_agency_id, 'marketplace.subscription.created', v_payload, 'marketplace',
                                   'subscription', v_sub ->> 'id'),
        private.log_platform_event(NULL, p_agency_id, 'marketplace.subscription.activated', v_payload, 'marketplace',
                                   'subscription', v_sub ->> 'id')];
      PERFORM private.record_audit('subscription.subscribed', p_agency_id, NULL, 'subscription', v_sub ->> 'id',
                                   jsonb_build_object('moduleId', p_module_id, 'moduleSlug', v_module ->> 'slug'));
    END IF;
    RETURN jsonb_build_object('role', v_role, 'module', v_module, 'subscription', v_sub, 'event_ids', to_jsonb(v_events));
  END
  $$;

REVOKE ALL ON FUNCTION private.subscription_event_payload(jsonb, text, text),
  private.subscribe_to_free_module(uuid, uuid, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.subscribe_to_free_module(uuid, uuid, text[]) TO dramac_backend;
