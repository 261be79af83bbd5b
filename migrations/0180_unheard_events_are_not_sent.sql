-- Events no workflow listens to are not sent to the events queue (issue 14). Before this, every event
-- a write recorded was sent after commit (one SendMessageBatch on the request path), became an SQS
-- message and an event-processor invocation, and was matched against no subscription on most sites: a
-- module data batch of 1,000 rows sent 1,000 messages for nothing.
--
-- Now an event is matched against the subscriptions active when it is written: a BEFORE INSERT
-- trigger marks it received (dispatched_at = now()) when no active subscription of an active workflow
-- listens to it (private.event_has_listeners, the same match as the processor's
-- dramac_common.automation.dal.BATCH_SUBSCRIPTIONS), and the writers send only the events still
-- unmarked: the relay never sends a marked event. A subscription committed after an event was
-- inserted does not see it; before this it saw it only when it committed before the processor read
-- the event (docs/automation.md).
--
-- The write paths that return event ids for the queue (subscribe 0164, purchase 0165, the provisioner's
-- activation 0177) are redefined below to return only the ids still to send; install's write path does
-- the same in its statement (installations.site_modules._INSTALL) through private.events_to_send.

-- Whether an active subscription of an active workflow listens to an event: the site's own for a site
-- event; one on any site of the agency for an agency-level event (p_site_id NULL). One indexed probe
-- (automation_event_subscriptions_match_idx), planned once per session.
CREATE OR REPLACE FUNCTION private.event_has_listeners(p_site_id uuid, p_agency_id uuid, p_event_type text)
  RETURNS boolean
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    IF p_site_id IS NOT NULL THEN
      RETURN EXISTS (
        SELECT 1 FROM public.automation_event_subscriptions s
          JOIN public.automation_workflows w ON w.id = s.workflow_id AND w.is_active
         WHERE s.site_id = p_site_id AND s.event_type = p_event_type AND s.is_active);
    END IF;
    RETURN EXISTS (
      SELECT 1 FROM public.sites st
        JOIN public.automation_event_subscriptions s
          ON s.site_id = st.id AND s.event_type = p_event_type AND s.is_active
        JOIN public.automation_workflows w ON w.id = s.workflow_id AND w.is_active
       WHERE st.agency_id = p_agency_id);
  END
  $$;

-- The trigger: an event nobody listens to is written received, so no writer sends it and the relay
-- leaves it alone. Security definer: the inserting role (a user's, under RLS) need not see the
-- subscriptions of other sites of the agency to be matched against them.
CREATE OR REPLACE FUNCTION private.mark_unheard_event() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    IF NOT private.event_has_listeners(NEW.site_id, NEW.agency_id, NEW.event_type) THEN
      NEW.dispatched_at := now();
    END IF;
    RETURN NEW;
  END
  $$;

DROP TRIGGER IF EXISTS automation_events_log_unheard ON public.automation_events_log;
CREATE TRIGGER automation_events_log_unheard
  BEFORE INSERT ON public.automation_events_log
  FOR EACH ROW WHEN (NEW.dispatched_at IS NULL)
  EXECUTE FUNCTION private.mark_unheard_event();

-- The events of p_ids still to send (not marked at insert), in their order. Volatile: called as the
-- last statement of a write path, or from the select list of the statement whose functions wrote the
-- events, it reads them with a snapshot that sees those inserts.
CREATE OR REPLACE FUNCTION private.events_to_send(p_ids uuid[]) RETURNS uuid[]
  LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(e.id ORDER BY p.n), '{}'::uuid[])
      FROM unnest(p_ids) WITH ORDINALITY AS p(id, n)
      JOIN public.automation_events_log e ON e.id = p.id AND e.dispatched_at IS NULL
  $$;

REVOKE ALL ON FUNCTION private.event_has_listeners(uuid, uuid, text), private.mark_unheard_event(),
  private.events_to_send(uuid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.events_to_send(uuid[]) TO dramac_backend;

-- Subscribe (0164): the same, its event ids those still to send.
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
      v_events := private.events_to_send(v_events);
    END IF;
    RETURN jsonb_build_object('role', v_role, 'module', v_module, 'subscription', v_sub, 'event_ids', to_jsonb(v_events));
  END
  $$;

-- Purchase (0165): the same, its event id null when the event is not to be sent.
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
    IF v_event IS NOT NULL THEN
      v_event := (private.events_to_send(ARRAY[v_event]))[1];
    END IF;
    RETURN jsonb_build_object('checkout', v_checkout, 'event_id', v_event);
  END
  $$;

-- The provisioner's activation (0177): the same, its event ids those the trigger left unmarked (the
-- insert's RETURNING shows the row as the trigger wrote it).
CREATE OR REPLACE FUNCTION private.activate_provisioned_installations(p_module_id uuid, p_schema_version text)
  RETURNS TABLE (activated bigint, upgraded bigint, event_ids uuid[])
  LANGUAGE plpgsql VOLATILE SET search_path = '' SET plan_cache_mode = force_generic_plan
  AS $$
  #variable_conflict use_column
  BEGIN
    RETURN QUERY
    WITH done AS (
      UPDATE public.site_module_installations SET status = 'active', error = NULL
       WHERE module_id = p_module_id AND status = 'provisioning'
      RETURNING id, site_id, agency_id, module_id, status, 'provisioning'::text AS previous_status,
                installed_version AS version, coalesce(updated_by, installed_by) AS actor),
    waiting AS (
      SELECT id, installed_version AS from_version FROM public.site_module_installations
       WHERE module_id = p_module_id AND target_version IS NOT NULL AND status <> 'provisioning'
         AND p_schema_version IS NOT NULL
         AND private.semver_key(target_version) <= private.semver_key(p_schema_version)
         FOR UPDATE),
    up AS (
      UPDATE public.site_module_installations i SET installed_version = i.target_version, target_version = NULL
        FROM waiting w WHERE i.id = w.id
      RETURNING i.id, i.site_id, i.agency_id, i.module_id, i.status, i.status AS previous_status,
                i.installed_version AS version, coalesce(i.updated_by, i.installed_by) AS actor, w.from_version),
    m AS (SELECT slug FROM public.modules_v2 WHERE id = p_module_id),
    ev AS (
      INSERT INTO public.automation_events_log
        (site_id, event_type, payload, source_module, source_entity_type, source_entity_id)
      SELECT d.site_id, 'marketplace.module.installed',
             jsonb_build_object('site_id', d.site_id, 'agency_id', d.agency_id, 'module_id', d.module_id,
               'module_slug', m.slug, 'installation_id', d.id, 'version', d.version, 'actor_id', d.actor,
               'status', d.status, 'previous_status', d.previous_status),
             'marketplace', 'installation', d.id::text
        FROM done d CROSS JOIN m
      UNION ALL
      SELECT d.site_id, 'marketplace.module.upgraded',
             jsonb_build_object('site_id', d.site_id, 'agency_id', d.agency_id, 'module_id', d.module_id,
               'module_slug', m.slug, 'installation_id', d.id, 'version', d.version, 'actor_id', d.actor,
               'status', d.status, 'previous_status', d.previous_status)
             || jsonb_build_object('from_version', d.from_version, 'to_version', d.version),
             'marketplace', 'installation', d.id::text
        FROM up d CROSS JOIN m
      RETURNING id, dispatched_at)
    SELECT (SELECT count(*) FROM done), (SELECT count(*) FROM up),
           ARRAY(SELECT id FROM ev WHERE dispatched_at IS NULL);
  END
  $$;
