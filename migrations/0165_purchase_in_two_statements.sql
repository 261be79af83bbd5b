-- Starting a purchase in two statements around the payment provider's call (issue 14: a write in as
-- few round trips as its work needs). Before this, POST /api/modules/{moduleId}/purchase made six
-- statements in turn: the caller's role in the agency, the module, private.claim_pending_subscription,
-- (the provider's checkout), private.open_checkout, private.log_platform_event, private.record_audit.
-- The provider needs the claimed subscription's id, so the work is two statements, before and after it:
--
-- private.start_purchase makes the checks the shared layer makes, in its order, then the claim:
-- - the caller's role in the agency: when it is not one of p_roles (the shared layer's role matrix for
--   billing) nothing is written and the role is returned (the API answers 404 or 403);
-- - the published module: when there is none, it is free, p_billing_cycle is not the one it is sold
--   on, or the markup would take the retail price out of the price columns' range, nothing is written
--   and the module is returned (the API answers 404 or 400, with the same messages as before);
-- - then private.claim_pending_subscription (which checks the caller and the module again).
-- Returns {"role", "module": {id, slug, name, pricing_type, wholesale_price_cents, currency},
-- "subscription": <row + "previous_status"> (absent when nothing was claimed)}.
--
-- private.open_purchase_checkout records the provider's checkout (private.open_checkout), the
-- subscription's event when the caller passes its payload (marketplace.subscription.created, for a
-- new or canceled subscription) and the purchase's audit row. Returns {"checkout", "event_id"}.

CREATE OR REPLACE FUNCTION private.start_purchase(p_agency_id uuid, p_module_id uuid, p_roles text[],
    p_billing_cycle text, p_markup_type text, p_markup_value integer, p_provider text) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_role text;
    v_module public.modules_v2;
    v_found jsonb;
  BEGIN
    SELECT private.agency_role(a.id) INTO v_role FROM public.agencies a WHERE a.id = p_agency_id;
    IF v_role IS NULL OR NOT v_role = ANY (p_roles) THEN
      RETURN jsonb_build_object('role', v_role);
    END IF;
    SELECT m.* INTO v_module FROM public.modules_v2 m WHERE m.id = p_module_id AND m.status = 'published';
    IF NOT FOUND THEN
      RETURN jsonb_build_object('role', v_role, 'module', NULL);
    END IF;
    v_found := jsonb_build_object('role', v_role, 'module', jsonb_build_object(
      'id', v_module.id, 'slug', v_module.slug, 'name', v_module.name, 'pricing_type', v_module.pricing_type,
      'wholesale_price_cents', v_module.wholesale_price_cents, 'currency', v_module.currency));
    IF v_module.pricing_type = 'free' OR coalesce(p_billing_cycle, v_module.pricing_type) <> v_module.pricing_type THEN
      RETURN v_found;
    END IF;
    BEGIN
      PERFORM private.retail_price_cents(v_module.wholesale_price_cents, p_markup_type,
                                         CASE WHEN p_markup_type = 'none' THEN 0 ELSE p_markup_value END);
    EXCEPTION WHEN numeric_value_out_of_range THEN
      RETURN v_found;  -- the API answers 400: the retail price would not fit
    END;
    RETURN v_found || jsonb_build_object('subscription', private.claim_pending_subscription(
      p_agency_id, p_module_id, p_markup_type, p_markup_value, p_provider));
  END
  $$;

CREATE OR REPLACE FUNCTION private.open_purchase_checkout(p_subscription_id uuid, p_checkout_id uuid, p_provider text,
    p_provider_checkout_id text, p_url text, p_event_payload jsonb, p_audit_details jsonb) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_checkout jsonb;
    v_event uuid;
  BEGIN
    v_checkout := private.open_checkout(p_subscription_id, p_checkout_id, p_provider, p_provider_checkout_id, p_url);
    IF p_event_payload IS NOT NULL THEN
      v_event := private.log_platform_event(NULL, (v_checkout ->> 'agency_id')::uuid, 'marketplace.subscription.created',
                                            p_event_payload, 'marketplace', 'subscription', p_subscription_id::text);
    END IF;
    PERFORM private.record_audit('subscription.purchase_started', (v_checkout ->> 'agency_id')::uuid, NULL,
                                 'subscription', p_subscription_id::text, p_audit_details);
    RETURN jsonb_build_object('checkout', v_checkout, 'event_id', v_event);
  END
  $$;

REVOKE ALL ON FUNCTION private.start_purchase(uuid, uuid, text[], text, text, integer, text),
  private.open_purchase_checkout(uuid, uuid, text, text, text, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.start_purchase(uuid, uuid, text[], text, text, integer, text),
  private.open_purchase_checkout(uuid, uuid, text, text, text, jsonb, jsonb) TO dramac_backend;
