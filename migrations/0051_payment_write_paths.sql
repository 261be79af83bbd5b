-- Payment state, prices and installation status are written only through the functions below (or
-- by the service: the Paddle webhook, the provisioner). Before this, an owner or admin connected as
-- `authenticated` (PostgREST on Supabase) could UPDATE its pending paid subscription to `active` with
-- price 0, or INSERT an active installation of a module it never paid for: the `*_write` policies
-- checked only which agency a row belonged to.
--
-- Now `authenticated` may only SELECT agency_module_subscriptions, site_module_installations and
-- payment_checkouts (one SELECT policy each). Every change a request makes goes through a
-- SECURITY DEFINER function in schema `private` (empty search_path) that checks the caller's role
-- itself, from the request's JWT claims, and decides the values that matter: a free subscription is
-- free and active, a paid one starts `pending` at the module's own price, the retail price follows
-- the markup rule, a checkout's amount is its subscription's wholesale price, an installation needs
-- an active subscription and is `active` only when its module's database is provisioned at the
-- manifest's version. The shared layer checks the same rules first (tenancy and payment are enforced
-- twice); these functions are the database's half.
--
-- Who may call them: only the role `dramac_backend`, which the API's login role is granted and
-- switches to for the one statement of the call (`dramac_common.db.Unit.call_write_path`); neither
-- `anon` nor `authenticated` (nor PUBLIC) may execute them, so PostgREST can never reach them
-- (splinter 0028/0029: no SECURITY DEFINER function is executable by anon or authenticated).
--
-- Each function is VOLATILE PL/pgSQL, so in READ COMMITTED every statement in it takes a new
-- snapshot: "insert, or when a twin inserted first, read what it committed" is an INSERT ... ON
-- CONFLICT followed by a SELECT that sees the twin's row (the fix for the subscribe 201/500 race,
-- where a fallback read in the same statement could not see it).

-- The backend's write role ------------------------------------------------------------------------

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dramac_backend') THEN
    CREATE ROLE dramac_backend NOLOGIN NOINHERIT;
  END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
  NULL;  -- roles are per server: another database's migration created it a moment ago
END
$$;
DO $$
BEGIN
  IF NOT pg_has_role(current_user, 'dramac_backend', 'MEMBER') THEN
    EXECUTE format('GRANT dramac_backend TO %I', current_user);
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'could not grant dramac_backend to %', current_user;
END
$$;
GRANT USAGE ON SCHEMA private TO dramac_backend;

-- Privileges and policies -------------------------------------------------------------------------

REVOKE ALL ON public.agency_module_subscriptions, public.site_module_installations, public.payment_checkouts
  FROM anon, authenticated;
GRANT SELECT ON public.agency_module_subscriptions, public.site_module_installations, public.payment_checkouts
  TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.agency_module_subscriptions, public.site_module_installations,
  public.payment_checkouts TO service_role;

DROP POLICY IF EXISTS agency_module_subscriptions_write ON public.agency_module_subscriptions;
DROP POLICY IF EXISTS site_module_installations_write ON public.site_module_installations;
DROP POLICY IF EXISTS payment_checkouts_write ON public.payment_checkouts;

-- payment_events and idempotency_records stay as 0010 left them: RLS on, no policy, no grant to
-- anon or authenticated (the webhook and the idempotency store run as the service).
REVOKE ALL ON public.payment_events, public.idempotency_records FROM anon, authenticated;

-- Helpers ---------------------------------------------------------------------------------------

-- Whether the caller may manage the agency: an owner or admin of it, or a super admin.
CREATE OR REPLACE FUNCTION private.can_manage_agency(p_agency_id uuid) RETURNS boolean
  LANGUAGE sql STABLE SET search_path = ''
  AS $$
    SELECT p_agency_id = ANY (private.managed_agency_ids()) OR private.is_super_admin()
  $$;

-- The contract's markup rule in integer cents: wholesale + round_half_up(wholesale * pct / 100),
-- wholesale + fixed, or wholesale. Out of the integer range is an error (22003), never a wrap.
CREATE OR REPLACE FUNCTION private.retail_price_cents(p_wholesale integer, p_markup_type text, p_markup_value integer)
  RETURNS integer
  LANGUAGE sql IMMUTABLE SET search_path = ''
  AS $$
    SELECT (p_wholesale::bigint + CASE p_markup_type
              WHEN 'percentage' THEN (2 * p_wholesale::bigint * p_markup_value + 100) / 200
              WHEN 'fixed' THEN p_markup_value::bigint
              ELSE 0 END)::integer
  $$;

-- The module's slug and name as the caller may see them (modules_v2's own policy: published
-- modules, or every module for a super admin), for the rows these functions return.
CREATE OR REPLACE FUNCTION private.visible_module_names(p_module_id uuid) RETURNS jsonb
  LANGUAGE sql STABLE SET search_path = ''
  AS $$
    SELECT coalesce((SELECT jsonb_build_object('slug', m.slug, 'module_name', m.name)
                     FROM public.modules_v2 m
                     WHERE m.id = p_module_id AND (m.status = 'published' OR private.is_super_admin())),
                    jsonb_build_object('slug', NULL, 'module_name', NULL))
  $$;

-- Subscriptions ---------------------------------------------------------------------------------

-- Subscribe an agency to a published free module: insert it active at price 0, or reactivate a
-- pending/canceled one. Returns the row and "changed" (false: it already was active).
CREATE OR REPLACE FUNCTION private.subscribe_free_module(p_agency_id uuid, p_module_id uuid) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_currency text;
    v_row public.agency_module_subscriptions;
  BEGIN
    IF NOT private.can_manage_agency(p_agency_id) THEN
      RAISE EXCEPTION 'only a manager of the agency may subscribe it to a module' USING ERRCODE = '42501';
    END IF;
    SELECT m.currency INTO v_currency FROM public.modules_v2 m
    WHERE m.id = p_module_id AND m.status = 'published' AND m.pricing_type = 'free';
    IF NOT FOUND THEN
      RAISE EXCEPTION 'only a published free module can be subscribed to without paying' USING ERRCODE = '42501';
    END IF;
    INSERT INTO public.agency_module_subscriptions AS s
      (agency_id, module_id, status, billing_cycle, wholesale_price_cents, markup_type, markup_value,
       retail_price_cents, currency, activated_at)
    VALUES (p_agency_id, p_module_id, 'active', 'free', 0, 'none', 0, 0, v_currency, now())
    ON CONFLICT (agency_id, module_id) DO UPDATE
      SET status = 'active', activated_at = now(), canceled_at = NULL, past_due_at = NULL,
          billing_cycle = 'free', wholesale_price_cents = 0, markup_type = 'none', markup_value = 0,
          retail_price_cents = 0, currency = EXCLUDED.currency
      WHERE s.status <> 'active'
    RETURNING s.* INTO v_row;
    IF FOUND THEN
      RETURN to_jsonb(v_row) || jsonb_build_object('changed', true);
    END IF;
    -- Already active: the conflict waited for the row's writer to commit, so this new statement sees it.
    SELECT s.* INTO v_row FROM public.agency_module_subscriptions s
    WHERE s.agency_id = p_agency_id AND s.module_id = p_module_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'the subscription changed while subscribing; try again' USING ERRCODE = '40001';
    END IF;
    RETURN to_jsonb(v_row) || jsonb_build_object('changed', false);
  END
  $$;

-- Start buying a published paid module: insert a pending subscription at the module's price, or
-- turn a pending/canceled one into a new pending purchase (the price snapshotted anew). An active
-- or past-due subscription is returned unchanged. Returns the row and "previous_status" (null: new).
CREATE OR REPLACE FUNCTION private.claim_pending_subscription(p_agency_id uuid, p_module_id uuid,
    p_markup_type text, p_markup_value integer, p_provider text) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_module public.modules_v2;
    v_row public.agency_module_subscriptions;
    v_previous text;
    v_value integer := CASE WHEN p_markup_type = 'none' THEN 0 ELSE p_markup_value END;
    v_retail integer;
  BEGIN
    IF NOT private.can_manage_agency(p_agency_id) THEN
      RAISE EXCEPTION 'only a manager of the agency may buy a module' USING ERRCODE = '42501';
    END IF;
    SELECT m.* INTO v_module FROM public.modules_v2 m
    WHERE m.id = p_module_id AND m.status = 'published' AND m.pricing_type <> 'free';
    IF NOT FOUND THEN
      RAISE EXCEPTION 'only a published paid module can be bought' USING ERRCODE = '42501';
    END IF;
    v_retail := private.retail_price_cents(v_module.wholesale_price_cents, p_markup_type, v_value);
    INSERT INTO public.agency_module_subscriptions AS s
      (agency_id, module_id, status, billing_cycle, wholesale_price_cents, markup_type, markup_value,
       retail_price_cents, currency, payment_provider)
    VALUES (p_agency_id, p_module_id, 'pending', v_module.pricing_type, v_module.wholesale_price_cents,
            p_markup_type, v_value, v_retail, v_module.currency, p_provider)
    ON CONFLICT (agency_id, module_id) DO NOTHING
    RETURNING s.* INTO v_row;
    IF FOUND THEN
      RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', NULL);
    END IF;
    SELECT s.* INTO v_row FROM public.agency_module_subscriptions s
    WHERE s.agency_id = p_agency_id AND s.module_id = p_module_id
    FOR UPDATE;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'the subscription changed while purchasing; try again' USING ERRCODE = '40001';
    END IF;
    v_previous := v_row.status;
    IF v_previous IN ('active', 'past_due') THEN
      RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', v_previous);
    END IF;
    UPDATE public.agency_module_subscriptions s
    SET status = 'pending', billing_cycle = v_module.pricing_type, wholesale_price_cents = v_module.wholesale_price_cents,
        markup_type = p_markup_type, markup_value = v_value, retail_price_cents = v_retail,
        currency = v_module.currency, payment_provider = p_provider, canceled_at = NULL, past_due_at = NULL
    WHERE s.id = v_row.id
    RETURNING s.* INTO v_row;
    RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', v_previous);
  END
  $$;

-- Record the checkout a provider opened for a pending subscription; the subscription's open
-- checkouts are superseded. Amount, currency and cycle are the subscription's, never the caller's.
CREATE OR REPLACE FUNCTION private.open_checkout(p_subscription_id uuid, p_checkout_id uuid, p_provider text,
    p_provider_checkout_id text, p_url text) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_sub public.agency_module_subscriptions;
    v_checkout public.payment_checkouts;
  BEGIN
    SELECT s.* INTO v_sub FROM public.agency_module_subscriptions s WHERE s.id = p_subscription_id FOR UPDATE;
    IF NOT FOUND OR NOT private.can_manage_agency(v_sub.agency_id) THEN
      RAISE EXCEPTION 'only a manager of the agency may open a checkout' USING ERRCODE = '42501';
    END IF;
    IF v_sub.status <> 'pending' THEN
      RAISE EXCEPTION 'the subscription is no longer pending; try again' USING ERRCODE = '40001';
    END IF;
    UPDATE public.payment_checkouts c SET status = 'superseded'
    WHERE c.subscription_id = v_sub.id AND c.status = 'open';
    INSERT INTO public.payment_checkouts
      (id, agency_id, subscription_id, module_id, provider, provider_checkout_id, amount_cents, currency,
       billing_cycle, checkout_url, created_by)
    VALUES (p_checkout_id, v_sub.agency_id, v_sub.id, v_sub.module_id, p_provider, p_provider_checkout_id,
            v_sub.wholesale_price_cents, v_sub.currency, v_sub.billing_cycle, p_url, auth.uid())
    RETURNING * INTO v_checkout;
    RETURN to_jsonb(v_checkout) || jsonb_build_object('url', v_checkout.checkout_url);
  END
  $$;

-- Change the agency's markup on a subscription; the retail price follows from the wholesale
-- snapshot. NULL when there is no such subscription the caller may manage.
CREATE OR REPLACE FUNCTION private.set_subscription_markup(p_agency_id uuid, p_subscription_id uuid,
    p_markup_type text, p_markup_value integer) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_row public.agency_module_subscriptions;
    v_names jsonb;
    v_value integer := CASE WHEN p_markup_type = 'none' THEN 0 ELSE p_markup_value END;
  BEGIN
    UPDATE public.agency_module_subscriptions s
    SET markup_type = p_markup_type, markup_value = v_value,
        retail_price_cents = private.retail_price_cents(s.wholesale_price_cents, p_markup_type, v_value)
    WHERE s.id = p_subscription_id AND s.agency_id = p_agency_id AND private.can_manage_agency(s.agency_id)
    RETURNING s.* INTO v_row;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    v_names := private.visible_module_names(v_row.module_id);
    RETURN to_jsonb(v_row) || jsonb_build_object('module_slug', v_names -> 'slug', 'module_name', v_names -> 'module_name');
  END
  $$;

-- Installations -----------------------------------------------------------------------------------

-- Install or re-enable a module on a site. Needs an active subscription of the site's agency
-- (otherwise {"refused": "subscription_required"} and nothing changes). A new or re-enabled
-- installation is `active` when the module needs no database of its own or its schema is
-- provisioned at the manifest's version, else `provisioning`; an active one stays active.
-- Returns the row, "previous_status" (null: new) and the module's visible slug and name.
CREATE OR REPLACE FUNCTION private.install_module(p_site_id uuid, p_module_id uuid, p_config jsonb) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid;
    v_module public.modules_v2;
    v_tables jsonb;
    v_ready boolean;
    v_status text;
    v_previous text;
    v_row public.site_module_installations;
  BEGIN
    SELECT s.agency_id INTO v_agency FROM public.sites s WHERE s.id = p_site_id;
    IF NOT FOUND OR NOT private.can_manage_agency(v_agency) THEN
      RAISE EXCEPTION 'only a manager of the site''s agency may install modules' USING ERRCODE = '42501';
    END IF;
    SELECT m.* INTO v_module FROM public.modules_v2 m WHERE m.id = p_module_id AND m.status = 'published';
    IF NOT FOUND THEN
      RAISE EXCEPTION 'only a published module can be installed' USING ERRCODE = '42501';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.agency_module_subscriptions s
                   WHERE s.agency_id = v_agency AND s.module_id = p_module_id AND s.status = 'active') THEN
      RETURN jsonb_build_object('refused', 'subscription_required');
    END IF;
    v_tables := v_module.manifest #> '{database,tables}';
    v_ready := NOT (v_module.module_type IN ('app', 'system', 'custom')
                    AND coalesce(jsonb_typeof(v_tables) = 'array' AND jsonb_array_length(v_tables) > 0, false))
               OR EXISTS (SELECT 1 FROM public.module_database_registry r
                          WHERE r.module_id = p_module_id AND r.status = 'active'
                            AND r.version = coalesce(v_module.manifest ->> 'version', '0.0.0'));
    v_status := CASE WHEN v_ready THEN 'active' ELSE 'provisioning' END;
    INSERT INTO public.site_module_installations AS i
      (site_id, module_id, agency_id, status, is_enabled, config, error, installed_by)
    VALUES (p_site_id, p_module_id, v_agency, v_status, true, coalesce(p_config, '{}'::jsonb), NULL, auth.uid())
    ON CONFLICT (site_id, module_id) DO NOTHING
    RETURNING i.* INTO v_row;
    IF NOT FOUND THEN
      -- Installed before (or by a twin that just committed): lock it and re-enable it.
      SELECT i.* INTO v_row FROM public.site_module_installations i
      WHERE i.site_id = p_site_id AND i.module_id = p_module_id
      FOR UPDATE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'the installation changed while installing; try again' USING ERRCODE = '40001';
      END IF;
      v_previous := v_row.status;
      UPDATE public.site_module_installations i
      SET status = CASE WHEN i.status = 'active' THEN 'active' ELSE v_status END,
          error = CASE WHEN i.status = 'active' THEN i.error END,
          is_enabled = true,
          config = coalesce(p_config, i.config)
      WHERE i.id = v_row.id
      RETURNING i.* INTO v_row;
    END IF;
    RETURN to_jsonb(v_row) || jsonb_build_object('previous_status', v_previous)
           || private.visible_module_names(p_module_id);
  END
  $$;

-- Disable a module on a site (its data is kept). NULL when it is not installed there.
CREATE OR REPLACE FUNCTION private.disable_module(p_site_id uuid, p_module_id uuid) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid;
    v_row public.site_module_installations;
  BEGIN
    SELECT s.agency_id INTO v_agency FROM public.sites s WHERE s.id = p_site_id;
    IF NOT FOUND OR NOT private.can_manage_agency(v_agency) THEN
      RAISE EXCEPTION 'only a manager of the site''s agency may disable modules' USING ERRCODE = '42501';
    END IF;
    UPDATE public.site_module_installations i SET status = 'disabled', is_enabled = false
    WHERE i.site_id = p_site_id AND i.module_id = p_module_id
    RETURNING i.* INTO v_row;
    IF NOT FOUND THEN
      RETURN NULL;
    END IF;
    RETURN to_jsonb(v_row) || private.visible_module_names(p_module_id);
  END
  $$;

REVOKE ALL ON FUNCTION private.can_manage_agency(uuid), private.retail_price_cents(integer, text, integer),
  private.visible_module_names(uuid), private.subscribe_free_module(uuid, uuid),
  private.claim_pending_subscription(uuid, uuid, text, integer, text),
  private.open_checkout(uuid, uuid, text, text, text), private.set_subscription_markup(uuid, uuid, text, integer),
  private.install_module(uuid, uuid, jsonb), private.disable_module(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.subscribe_free_module(uuid, uuid),
  private.claim_pending_subscription(uuid, uuid, text, integer, text),
  private.open_checkout(uuid, uuid, text, text, text), private.set_subscription_markup(uuid, uuid, text, integer),
  private.install_module(uuid, uuid, jsonb), private.disable_module(uuid, uuid) TO dramac_backend;
