-- The seed's five roles (docs/roles.md): super admin, agency owner, agency admin, agency member and
-- client user, enforced here as in dramac_common.core.tenancy (the same rules, named the same way).
--
-- * Billing is the owner's: a request may create or change an agency's subscriptions only as an owner
--   of the agency (or a super admin). A trigger on agency_module_subscriptions says so for every write
--   path at once (subscribe, purchase, markup, cancel); workers (no claims) are not requests.
-- * Member management is the owner's: agency_members is written by owners (and super admins) only,
--   and an agency never loses its last owner (a trigger, serialised on the agency's row).
-- * Members work with module data: private.writable_site_ids() now answers every site of the
--   caller's agencies (it only ever gated module data, widget storage and the site events those
--   writes emit); installs, keys and automation stay managed_site_ids() / managed_agency_ids().
-- * Client users (public.client_users) belong to one client of an agency and reach that client's
--   sites only: module data they may read (and write where the module's manifest says
--   "clientAccess": "write"; "none" hides the module from them), nothing else.

-- Client users ------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.client_users (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id uuid NOT NULL REFERENCES public.agencies (id) ON DELETE CASCADE,
  client_id uuid NOT NULL,
  user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- one client per agency for a user
  UNIQUE (agency_id, user_id),
  FOREIGN KEY (client_id, agency_id) REFERENCES public.clients (id, agency_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS client_users_user_id_idx ON public.client_users (user_id, client_id);
CREATE INDEX IF NOT EXISTS client_users_client_agency_idx ON public.client_users (client_id, agency_id);

ALTER TABLE public.client_users ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.client_users FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.client_users TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.client_users TO service_role;

-- Helpers -----------------------------------------------------------------------------------------

-- The caller's role in an agency: super_admin, owner, admin, member, client, or NULL (none).
CREATE OR REPLACE FUNCTION private.agency_role(p_agency_id uuid) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN private.is_super_admin() THEN 'super_admin'
      ELSE coalesce(
        (SELECT m.role FROM public.agency_members m WHERE m.agency_id = p_agency_id AND m.user_id = auth.uid()),
        (SELECT 'client' FROM public.client_users c WHERE c.agency_id = p_agency_id AND c.user_id = auth.uid()))
    END
  $$;

-- The caller's role on a site: as in its agency, except that a client user has one only on its client's sites.
CREATE OR REPLACE FUNCTION private.site_role(p_site_id uuid) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN private.is_super_admin() THEN (SELECT 'super_admin' FROM public.sites s WHERE s.id = p_site_id)
      ELSE coalesce(
        (SELECT m.role FROM public.sites s
         JOIN public.agency_members m ON m.agency_id = s.agency_id AND m.user_id = auth.uid()
         WHERE s.id = p_site_id),
        (SELECT 'client' FROM public.sites s
         JOIN public.client_users c ON c.client_id = s.client_id AND c.agency_id = s.agency_id AND c.user_id = auth.uid()
         WHERE s.id = p_site_id))
    END
  $$;

-- Sites of the clients the caller is a client user of.
CREATE OR REPLACE FUNCTION private.client_site_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s
    JOIN public.client_users c ON c.client_id = s.client_id AND c.agency_id = s.agency_id
    WHERE c.user_id = auth.uid()
  $$;

-- Whether the caller may bill the agency (subscribe, purchase, markup, cancel) or manage its members:
-- an owner of it, or a super admin.
CREATE OR REPLACE FUNCTION private.can_own_agency(p_agency_id uuid) RETURNS boolean
  LANGUAGE sql STABLE SET search_path = ''
  AS $$
    SELECT p_agency_id = ANY (private.owned_agency_ids()) OR private.is_super_admin()
  $$;

-- What a module's manifest lets client users do with its data: none, read (the default) or write.
CREATE OR REPLACE FUNCTION private.module_client_access(p_module_id uuid) RETURNS text
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE m.manifest ->> 'clientAccess' WHEN 'none' THEN 'none' WHEN 'write' THEN 'write' ELSE 'read' END
    FROM public.modules_v2 m WHERE m.id = p_module_id
  $$;

-- The modules whose data client users may read (p_write false: clientAccess read or write) or write.
CREATE OR REPLACE FUNCTION private.client_module_ids(p_write boolean) RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(m.id), '{}') FROM public.modules_v2 m
    WHERE CASE WHEN p_write THEN m.manifest ->> 'clientAccess' = 'write'
               ELSE coalesce(m.manifest ->> 'clientAccess', 'read') IN ('read', 'write') END
  $$;

-- Event-type prefixes a client user may emit (by writing module data): modules clients may write.
CREATE OR REPLACE FUNCTION private.client_event_prefixes() RETURNS text[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(array_agg(DISTINCT btrim(regexp_replace(m.slug, '[^a-z0-9_]+', '_', 'g'), '_')), '{}')
    FROM public.modules_v2 m WHERE m.manifest ->> 'clientAccess' = 'write'
  $$;

-- Sites whose module data (and widget storage, and the site events those writes emit) the caller may
-- write: every site of its agencies (owners, admins and members work with module data), or its API key's.
CREATE OR REPLACE FUNCTION private.writable_site_ids() RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN auth.jwt() ->> 'role' = 'site_api_key' THEN
        ARRAY[(auth.jwt() ->> 'site_id')::uuid]
      ELSE private.member_site_ids()
    END
  $$;

-- Module tables and widget storage: agency users and keys as before, plus the client users of the
-- site's client as far as the module's manifest lets them.
CREATE OR REPLACE FUNCTION private.module_readable_site_ids(p_module_id uuid) RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN (SELECT private.api_key_module_ids()) IS NOT NULL
           AND NOT p_module_id = ANY ((SELECT private.api_key_module_ids())::uuid[]) THEN '{}'::uuid[]
      WHEN auth.jwt() ->> 'role' = 'site_api_key' THEN private.readable_site_ids()
      -- support: every site (an array rather than "OR is_super_admin()" in the policy, which would cost
      -- every other caller its index scans: bench/rls_policy.py)
      WHEN private.is_super_admin() THEN (SELECT coalesce(array_agg(s.id), '{}') FROM public.sites s)
      WHEN private.module_client_access(p_module_id) IN ('read', 'write')
        THEN private.readable_site_ids() || private.client_site_ids()
      ELSE private.readable_site_ids()
    END
  $$;

CREATE OR REPLACE FUNCTION private.module_writable_site_ids(p_module_id uuid) RETURNS uuid[]
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT CASE
      WHEN (SELECT private.api_key_module_ids()) IS NOT NULL
           AND NOT p_module_id = ANY ((SELECT private.api_key_module_ids())::uuid[]) THEN '{}'::uuid[]
      WHEN auth.jwt() ->> 'role' = 'site_api_key' THEN private.writable_site_ids()
      WHEN private.module_client_access(p_module_id) = 'write'
        THEN private.writable_site_ids() || private.client_site_ids()
      ELSE private.writable_site_ids()
    END
  $$;

REVOKE ALL ON FUNCTION private.agency_role(uuid), private.site_role(uuid), private.client_site_ids(),
  private.can_own_agency(uuid), private.module_client_access(uuid), private.client_module_ids(boolean),
  private.client_event_prefixes() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.agency_role(uuid), private.site_role(uuid), private.client_site_ids(),
  private.can_own_agency(uuid), private.module_client_access(uuid), private.client_module_ids(boolean),
  private.client_event_prefixes() TO authenticated, service_role;

DROP POLICY IF EXISTS client_users_select ON public.client_users;
CREATE POLICY client_users_select ON public.client_users FOR SELECT TO authenticated
  USING (user_id = (SELECT auth.uid())
         OR agency_id = ANY ((SELECT private.member_agency_ids())::uuid[])
         OR (SELECT private.is_super_admin()));

-- Client users see their client's row and its sites (nothing else of the agency).
DROP POLICY IF EXISTS sites_select ON public.sites;
CREATE POLICY sites_select ON public.sites FOR SELECT TO authenticated
  USING (agency_id = ANY ((SELECT private.member_agency_ids())::uuid[])
         OR id = ANY ((SELECT private.client_site_ids())::uuid[])
         OR (SELECT private.is_super_admin()));
DROP POLICY IF EXISTS clients_select ON public.clients;
CREATE POLICY clients_select ON public.clients FOR SELECT TO authenticated
  USING (agency_id = ANY ((SELECT private.member_agency_ids())::uuid[])
         OR id IN (SELECT c.client_id FROM public.client_users c WHERE c.user_id = (SELECT auth.uid()))
         OR (SELECT private.is_super_admin()));

-- The module data gate's lookup (0031) also answers a client user on its client's sites, and says
-- who the caller is there (private.site_role) and the site's agency: the gate applies the module's
-- clientAccess and records a super admin's reads in the audit log.
DROP FUNCTION IF EXISTS private.module_data_target(uuid, uuid, text);
CREATE FUNCTION private.module_data_target(p_site_id uuid, p_module_id uuid, p_module_slug text)
  RETURNS TABLE (module_id uuid, slug text, module_type text, manifest jsonb,
                 installation_status text, is_enabled boolean,
                 schema_name text, table_names text[], registry_version text, registry_updated_at timestamptz,
                 caller_role text, agency_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT m.id, m.slug, m.module_type, m.manifest, i.status, i.is_enabled,
           r.schema_name, r.table_names, r.version, r.updated_at,
           CASE WHEN auth.jwt() ->> 'role' = 'site_api_key' THEN NULL ELSE private.site_role(p_site_id) END,
           (SELECT s.agency_id FROM public.sites s WHERE s.id = p_site_id)
    FROM public.modules_v2 m
    LEFT JOIN public.site_module_installations i ON i.module_id = m.id AND i.site_id = p_site_id
    LEFT JOIN public.module_database_registry r ON r.module_id = m.id
    WHERE (m.id = p_module_id OR m.slug = p_module_slug)
      AND (p_site_id = ANY ((SELECT private.readable_site_ids())::uuid[])
           OR p_site_id = ANY ((SELECT private.client_site_ids())::uuid[])
           OR (SELECT private.is_super_admin()))
  $$;
REVOKE ALL ON FUNCTION private.module_data_target(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.module_data_target(uuid, uuid, text) TO authenticated, service_role;

-- Widget storage: as before (0071) for agency users, keys and super admins (who no longer write), plus
-- client users of the site's client as the module's clientAccess says.
DO $$
DECLARE
  key_scope constant text := '((SELECT private.api_key_module_ids()) IS NULL '
                             'OR module_id = ANY ((SELECT private.api_key_module_ids())::uuid[]))';
  readers text := format('(site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) AND %s) '
                         'OR (site_id = ANY ((SELECT private.client_site_ids())::uuid[]) '
                         '    AND module_id = ANY ((SELECT private.client_module_ids(false))::uuid[])) '
                         'OR (SELECT private.is_super_admin())', key_scope);
  writers text := format('(site_id = ANY ((SELECT private.writable_site_ids())::uuid[]) AND %s) '
                         'OR (site_id = ANY ((SELECT private.client_site_ids())::uuid[]) '
                         '    AND module_id = ANY ((SELECT private.client_module_ids(true))::uuid[]))', key_scope);
BEGIN
  DROP POLICY IF EXISTS module_data_select ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_select ON public.module_data FOR SELECT TO authenticated USING (%s)', readers);
  DROP POLICY IF EXISTS module_data_insert ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_insert ON public.module_data FOR INSERT TO authenticated WITH CHECK (%s)',
                 writers);
  DROP POLICY IF EXISTS module_data_update ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_update ON public.module_data FOR UPDATE TO authenticated '
                 'USING (%s) WITH CHECK (%s)', writers, writers);
  DROP POLICY IF EXISTS module_data_delete ON public.module_data;
  EXECUTE format('CREATE POLICY module_data_delete ON public.module_data FOR DELETE TO authenticated USING (%s)', writers);
END
$$;

-- Site events written with module data: also a client user's, for the modules it may write (platform
-- events stay the backend's, 0074).
DO $$
DECLARE
  key_scope constant text := '((SELECT private.api_key_event_prefixes()) IS NULL '
                             'OR split_part(event_type, ''.'', 1) = ANY ((SELECT private.api_key_event_prefixes())::text[]))';
BEGIN
  DROP POLICY IF EXISTS automation_events_log_insert ON public.automation_events_log;
  EXECUTE format(
    'CREATE POLICY automation_events_log_insert ON public.automation_events_log FOR INSERT TO authenticated WITH CHECK ('
    '((site_id = ANY ((SELECT private.writable_site_ids())::uuid[]) AND %s) '
    'OR (site_id = ANY ((SELECT private.client_site_ids())::uuid[]) '
    '    AND split_part(event_type, ''.'', 1) = ANY ((SELECT private.client_event_prefixes())::text[])) '
    'OR (SELECT private.is_super_admin())) '
    'AND split_part(event_type, ''.'', 1) NOT IN (''marketplace'', ''automation''))',
    key_scope);
  -- ... and reads back what it wrote (INSERT ... RETURNING): the events of those modules on its sites,
  -- which tell nothing its module data does not.
  DROP POLICY IF EXISTS automation_events_log_select ON public.automation_events_log;
  EXECUTE format(
    'CREATE POLICY automation_events_log_select ON public.automation_events_log FOR SELECT TO authenticated USING ('
    '(site_id = ANY ((SELECT private.readable_site_ids())::uuid[]) AND %s) '
    'OR (site_id IS NULL AND agency_id = ANY ((SELECT private.member_agency_ids())::uuid[])) '
    'OR (site_id = ANY ((SELECT private.client_site_ids())::uuid[]) '
    '    AND split_part(event_type, ''.'', 1) = ANY ((SELECT private.client_event_prefixes())::text[])) '
    'OR (SELECT private.is_super_admin()))', key_scope);
END
$$;

-- The catalogue is no client user's: a user who is a client user somewhere and no agency's member sees none.
DROP POLICY IF EXISTS modules_v2_select ON public.modules_v2;
CREATE POLICY modules_v2_select ON public.modules_v2 FOR SELECT TO authenticated
  USING ((status = 'published'
          AND (cardinality((SELECT private.member_agency_ids())::uuid[]) > 0
               OR NOT EXISTS (SELECT 1 FROM public.client_users c WHERE c.user_id = (SELECT auth.uid()))))
         OR (SELECT private.is_super_admin()));

-- Module tables keep 0073's policies (private.secure_module_table): they call
-- private.module_readable_site_ids / module_writable_site_ids by name, so the definitions above apply
-- to every module table, provisioned or to come, at once.

-- Billing is the owner's ----------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION private.require_billing_role() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid := CASE WHEN TG_OP = 'DELETE' THEN OLD.agency_id ELSE NEW.agency_id END;
  BEGIN
    -- workers (the payment webhook, the relay) run without request claims
    IF auth.uid() IS NOT NULL AND NOT private.can_own_agency(v_agency) THEN
      RAISE EXCEPTION 'only an owner of the agency may change its subscriptions' USING ERRCODE = '42501';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END
  $$;
REVOKE ALL ON FUNCTION private.require_billing_role() FROM PUBLIC;

DROP TRIGGER IF EXISTS subscriptions_owner_only ON public.agency_module_subscriptions;
CREATE TRIGGER subscriptions_owner_only BEFORE INSERT OR UPDATE OR DELETE ON public.agency_module_subscriptions
  FOR EACH ROW EXECUTE FUNCTION private.require_billing_role();

-- Member management is the owner's --------------------------------------------------------------------

DO $$
DECLARE
  owners constant text := 'agency_id = ANY ((SELECT private.owned_agency_ids())::uuid[]) OR (SELECT private.is_super_admin())';
BEGIN
  DROP POLICY IF EXISTS agency_members_insert ON public.agency_members;
  EXECUTE format('CREATE POLICY agency_members_insert ON public.agency_members FOR INSERT TO authenticated '
                 'WITH CHECK (%s)', owners);
  DROP POLICY IF EXISTS agency_members_update ON public.agency_members;
  EXECUTE format('CREATE POLICY agency_members_update ON public.agency_members FOR UPDATE TO authenticated '
                 'USING (%s) WITH CHECK (%s)', owners, owners);
  DROP POLICY IF EXISTS agency_members_delete ON public.agency_members;
  EXECUTE format('CREATE POLICY agency_members_delete ON public.agency_members FOR DELETE TO authenticated '
                 'USING (%s)', owners);
END
$$;

-- An agency keeps at least one owner, and a user has one role in an agency (a member or a client
-- user, not both). Both checks hold the agency's row lock, so two concurrent changes (two owners
-- demoting each other) are serialised and the second sees the first.
CREATE OR REPLACE FUNCTION private.guard_agency_roles() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    PERFORM 1 FROM public.agencies a WHERE a.id = NEW.agency_id FOR UPDATE;
    IF TG_TABLE_NAME = 'agency_members' AND EXISTS (
        SELECT 1 FROM public.client_users c WHERE c.agency_id = NEW.agency_id AND c.user_id = NEW.user_id) THEN
      RAISE EXCEPTION 'this user is a client user of the agency' USING ERRCODE = '23505';
    END IF;
    IF TG_TABLE_NAME = 'client_users' AND EXISTS (
        SELECT 1 FROM public.agency_members m WHERE m.agency_id = NEW.agency_id AND m.user_id = NEW.user_id) THEN
      RAISE EXCEPTION 'this user is a member of the agency' USING ERRCODE = '23505';
    END IF;
    RETURN NEW;
  END
  $$;

CREATE OR REPLACE FUNCTION private.keep_an_owner() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    IF OLD.role <> 'owner' OR (TG_OP = 'UPDATE' AND NEW.role = 'owner' AND NEW.agency_id = OLD.agency_id) THEN
      RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    PERFORM 1 FROM public.agencies a WHERE a.id = OLD.agency_id FOR UPDATE;
    IF FOUND  -- else the agency itself is being deleted
       AND EXISTS (SELECT 1 FROM public.profiles p WHERE p.id = OLD.user_id)  -- a deleted user leaves anyway
       AND NOT EXISTS (SELECT 1 FROM public.agency_members m
                       WHERE m.agency_id = OLD.agency_id AND m.role = 'owner' AND m.user_id <> OLD.user_id) THEN
      RAISE EXCEPTION 'an agency keeps at least one owner' USING ERRCODE = '23514', CONSTRAINT = 'agency_last_owner';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
  END
  $$;
REVOKE ALL ON FUNCTION private.keep_an_owner() FROM PUBLIC;

REVOKE ALL ON FUNCTION private.guard_agency_roles() FROM PUBLIC;

DROP TRIGGER IF EXISTS agency_members_guard_roles ON public.agency_members;
CREATE TRIGGER agency_members_guard_roles BEFORE INSERT OR UPDATE ON public.agency_members
  FOR EACH ROW EXECUTE FUNCTION private.guard_agency_roles();
DROP TRIGGER IF EXISTS agency_members_keep_an_owner ON public.agency_members;
CREATE TRIGGER agency_members_keep_an_owner BEFORE UPDATE OR DELETE ON public.agency_members
  FOR EACH ROW EXECUTE FUNCTION private.keep_an_owner();
DROP TRIGGER IF EXISTS client_users_guard_roles ON public.client_users;
CREATE TRIGGER client_users_guard_roles BEFORE INSERT OR UPDATE ON public.client_users
  FOR EACH ROW EXECUTE FUNCTION private.guard_agency_roles();

-- The write paths of member management (the backend's role only): give a user a role in an agency
-- (owner, admin, member, or client with its client), and take it away. An owner or a super admin only.
CREATE OR REPLACE FUNCTION private.set_agency_role(p_agency_id uuid, p_user_id uuid, p_role text, p_client_id uuid)
  RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_previous text;
  BEGIN
    IF NOT private.can_own_agency(p_agency_id) THEN
      RAISE EXCEPTION 'only an owner of the agency may manage its members' USING ERRCODE = '42501';
    END IF;
    IF p_role NOT IN ('owner', 'admin', 'member', 'client') OR (p_role = 'client') <> (p_client_id IS NOT NULL) THEN
      RAISE EXCEPTION 'a role is owner, admin, member, or client with its client' USING ERRCODE = '22023';
    END IF;
    PERFORM 1 FROM public.agencies a WHERE a.id = p_agency_id FOR UPDATE;
    v_previous := coalesce(
      (SELECT m.role FROM public.agency_members m WHERE m.agency_id = p_agency_id AND m.user_id = p_user_id),
      (SELECT 'client' FROM public.client_users c WHERE c.agency_id = p_agency_id AND c.user_id = p_user_id));
    IF p_role = 'client' THEN
      DELETE FROM public.agency_members m WHERE m.agency_id = p_agency_id AND m.user_id = p_user_id;
      INSERT INTO public.client_users (agency_id, client_id, user_id) VALUES (p_agency_id, p_client_id, p_user_id)
      ON CONFLICT (agency_id, user_id) DO UPDATE SET client_id = EXCLUDED.client_id;
    ELSE
      DELETE FROM public.client_users c WHERE c.agency_id = p_agency_id AND c.user_id = p_user_id;
      INSERT INTO public.agency_members (agency_id, user_id, role) VALUES (p_agency_id, p_user_id, p_role)
      ON CONFLICT (agency_id, user_id) DO UPDATE SET role = EXCLUDED.role
      WHERE public.agency_members.role IS DISTINCT FROM EXCLUDED.role;
    END IF;
    RETURN jsonb_build_object('user_id', p_user_id, 'role', p_role, 'client_id', p_client_id,
                              'previous_role', v_previous);
  END
  $$;

CREATE OR REPLACE FUNCTION private.remove_agency_user(p_agency_id uuid, p_user_id uuid) RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_role text;
    v_client uuid;
  BEGIN
    IF NOT private.can_own_agency(p_agency_id) THEN
      RAISE EXCEPTION 'only an owner of the agency may manage its members' USING ERRCODE = '42501';
    END IF;
    DELETE FROM public.agency_members m WHERE m.agency_id = p_agency_id AND m.user_id = p_user_id
    RETURNING m.role INTO v_role;
    IF v_role IS NULL THEN
      DELETE FROM public.client_users c WHERE c.agency_id = p_agency_id AND c.user_id = p_user_id
      RETURNING 'client', c.client_id INTO v_role, v_client;
    END IF;
    IF v_role IS NULL THEN
      RETURN NULL;
    END IF;
    RETURN jsonb_build_object('user_id', p_user_id, 'role', v_role, 'client_id', v_client);
  END
  $$;

REVOKE ALL ON FUNCTION private.set_agency_role(uuid, uuid, text, uuid), private.remove_agency_user(uuid, uuid)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.set_agency_role(uuid, uuid, text, uuid), private.remove_agency_user(uuid, uuid)
  TO dramac_backend;

-- An owner adds a user by id or email before the user can see the agency (so before its profile is
-- visible to the owner): the id of the one matching user, nothing else about it. Backend only (the
-- route asks after checking that the caller owns the agency: no one else can probe for emails).
CREATE OR REPLACE FUNCTION private.find_user(p_user_id uuid, p_email text) RETURNS uuid
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT p.id FROM public.profiles p
    WHERE (p_user_id IS NOT NULL AND p.id = p_user_id)
       OR (p_user_id IS NULL AND p_email IS NOT NULL AND lower(p.email) = lower(p_email))
    ORDER BY p.created_at, p.id
    LIMIT 1
  $$;
REVOKE ALL ON FUNCTION private.find_user(uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.find_user(uuid, text) TO dramac_backend;
CREATE INDEX IF NOT EXISTS profiles_email_lower_idx ON public.profiles (lower(email));
