-- Which version of a module each site runs. A module's schema is shared by every site that installs it
-- and is provisioned at one version (module_database_registry.version); a site runs its own version
-- (installed_version), never above the schema's, since upgrades are additive only (docs/lifecycle.md).
-- target_version is an upgrade waiting for the provisioner to bring the schema up to it.

ALTER TABLE public.site_module_installations ADD COLUMN IF NOT EXISTS installed_version text;
ALTER TABLE public.site_module_installations ADD COLUMN IF NOT EXISTS target_version text;

UPDATE public.site_module_installations i SET installed_version = m.manifest ->> 'version'
FROM public.modules_v2 m
WHERE m.id = i.module_id AND i.installed_version IS NULL AND private.semver_key(m.manifest ->> 'version') IS NOT NULL;

-- A new installation runs the module's current version (its manifest's), set here so that every
-- path that inserts one (the install write path, the seed, an operator) records it.
CREATE OR REPLACE FUNCTION private.installation_set_updated_by() RETURNS trigger
  LANGUAGE plpgsql SET search_path = ''
  AS $$
  BEGIN
    NEW.updated_by := coalesce(auth.uid(), NEW.updated_by);
    IF TG_OP = 'INSERT' AND NEW.installed_version IS NULL THEN
      SELECT m.manifest ->> 'version' INTO NEW.installed_version FROM public.modules_v2 m WHERE m.id = NEW.module_id;
    END IF;
    RETURN NEW;
  END
  $$;

-- Whether the module's data lives in a schema of its own for this manifest (app, system and custom
-- modules with tables), as provisioning.provisioner.needs_schema decides.
CREATE OR REPLACE FUNCTION private.manifest_needs_schema(p_module_type text, p_manifest jsonb) RETURNS boolean
  LANGUAGE sql IMMUTABLE SET search_path = ''
  AS $$
    SELECT p_module_type IN ('app', 'system', 'custom')
           AND coalesce(jsonb_typeof(p_manifest #> '{database,tables}') = 'array'
                        AND jsonb_array_length(p_manifest #> '{database,tables}') > 0, false)
  $$;
REVOKE ALL ON FUNCTION private.manifest_needs_schema(text, jsonb) FROM PUBLIC;

-- Upgrade a site's installation to a published version above the one it runs. When the module's
-- schema is already at that version or above (or the module has no schema) the site moves at once
-- ("outcome": "upgraded"); otherwise the version waits in target_version for the provisioner
-- ("outcome": "queued"). Refusals come back as {"refused": <code>, ...} and change nothing.
CREATE OR REPLACE FUNCTION private.upgrade_installation(p_site_id uuid, p_module_id uuid, p_to_version text)
  RETURNS jsonb
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid;
    v_row public.site_module_installations;
    v_module public.modules_v2;
    v_target public.module_versions;
    v_from text;
    v_ready boolean;
  BEGIN
    SELECT s.agency_id INTO v_agency FROM public.sites s WHERE s.id = p_site_id;
    IF NOT FOUND OR NOT private.can_manage_agency(v_agency) THEN
      RAISE EXCEPTION 'only a manager of the site''s agency may upgrade modules' USING ERRCODE = '42501';
    END IF;
    SELECT i.* INTO v_row FROM public.site_module_installations i
    WHERE i.site_id = p_site_id AND i.module_id = p_module_id FOR UPDATE;
    IF NOT FOUND THEN
      RETURN jsonb_build_object('refused', 'installation_not_found');
    END IF;
    IF v_row.status <> 'active' OR NOT v_row.is_enabled THEN
      RETURN jsonb_build_object('refused', 'installation_not_active', 'status', v_row.status);
    END IF;
    SELECT m.* INTO v_module FROM public.modules_v2 m WHERE m.id = p_module_id;
    SELECT v.* INTO v_target FROM public.module_versions v
    WHERE v.module_id = p_module_id AND v.version = p_to_version AND v.status = 'published';
    IF NOT FOUND THEN
      RETURN jsonb_build_object('refused', 'version_not_available');
    END IF;
    v_from := v_row.installed_version;
    IF private.semver_key(p_to_version) <= coalesce(private.semver_key(v_from), ARRAY[0, 0, 0]) THEN
      RETURN jsonb_build_object('refused', CASE WHEN p_to_version = v_from THEN 'already_at_version'
                                               ELSE 'downgrade_not_supported' END, 'from_version', v_from);
    END IF;
    v_ready := NOT private.manifest_needs_schema(v_module.module_type, v_target.manifest)
               OR EXISTS (SELECT 1 FROM public.module_database_registry r
                          WHERE r.module_id = p_module_id AND r.status = 'active'
                            AND private.semver_key(r.version) >= private.semver_key(p_to_version));
    UPDATE public.site_module_installations i
    SET installed_version = CASE WHEN v_ready THEN p_to_version ELSE i.installed_version END,
        target_version = CASE WHEN v_ready THEN NULL ELSE p_to_version END
    WHERE i.id = v_row.id
    RETURNING i.* INTO v_row;
    RETURN to_jsonb(v_row) || jsonb_build_object('from_version', v_from,
                                                 'outcome', CASE WHEN v_ready THEN 'upgraded' ELSE 'queued' END)
           || private.visible_module_names(p_module_id);
  END
  $$;
REVOKE ALL ON FUNCTION private.upgrade_installation(uuid, uuid, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.upgrade_installation(uuid, uuid, text) TO dramac_backend;

-- A module written by SQL as published (the seed, an operator) names its manifest's version as the
-- current one, as the catalogue would; the catalogue's own writes set the same value.
CREATE OR REPLACE FUNCTION private.module_current_version() RETURNS trigger
  LANGUAGE plpgsql SET search_path = ''
  AS $$
  BEGIN
    IF NEW.status = 'published' AND private.semver_key(NEW.manifest ->> 'version') IS NOT NULL
       AND (TG_OP = 'INSERT' OR NEW.current_version IS NULL OR NEW.manifest IS DISTINCT FROM OLD.manifest) THEN
      NEW.current_version := NEW.manifest ->> 'version';
    END IF;
    RETURN NEW;
  END
  $$;
REVOKE ALL ON FUNCTION private.module_current_version() FROM PUBLIC;
DROP TRIGGER IF EXISTS modules_v2_current_version ON public.modules_v2;
CREATE TRIGGER modules_v2_current_version BEFORE INSERT OR UPDATE ON public.modules_v2
  FOR EACH ROW EXECUTE FUNCTION private.module_current_version();

UPDATE public.modules_v2 SET current_version = manifest ->> 'version'
WHERE current_version IS NULL AND status = 'published' AND private.semver_key(manifest ->> 'version') IS NOT NULL;
