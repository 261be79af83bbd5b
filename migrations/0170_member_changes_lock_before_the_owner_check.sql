-- Member changes of one agency are serialized before the caller's ownership is checked.
--
-- set_agency_role and remove_agency_user checked private.can_own_agency and only then locked the
-- agency's row, so two owners demoting each other at the same moment could both pass the check: the
-- second then met the last-owner trigger (409) or, when the first had already committed before its
-- check, a refusal (42501), depending on timing. Now the lock comes first and the check reads what
-- the previous change left: the second caller is no owner any more and is refused (403 forbidden).

CREATE OR REPLACE FUNCTION private.set_agency_role(p_agency_id uuid, p_user_id uuid, p_role text, p_client_id uuid)
  RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_previous text;
  BEGIN
    IF p_role NOT IN ('owner', 'admin', 'member', 'client') OR (p_role = 'client') <> (p_client_id IS NOT NULL) THEN
      RAISE EXCEPTION 'a role is owner, admin, member, or client with its client' USING ERRCODE = '22023';
    END IF;
    PERFORM 1 FROM public.agencies a WHERE a.id = p_agency_id FOR UPDATE;
    IF NOT private.can_own_agency(p_agency_id) THEN  -- after the lock: as the previous change left it
      RAISE EXCEPTION 'only an owner of the agency may manage its members' USING ERRCODE = '42501';
    END IF;
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
    PERFORM 1 FROM public.agencies a WHERE a.id = p_agency_id FOR UPDATE;
    IF NOT private.can_own_agency(p_agency_id) THEN  -- after the lock: as the previous change left it
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

