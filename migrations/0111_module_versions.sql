-- The catalogue's versions: every version of a module with its manifest (semver), managed by super
-- admins through the catalogue API (functions/catalog). modules_v2 keeps the contract's columns: its
-- manifest is the current version's (the highest published), and its status follows the versions
-- (published while one is published, deprecated when only deprecated ones remain, else draft).
--
-- A version's number and manifest never change once written (a trigger refuses it to every role):
-- what was validated and dry-run is what gets published, and a published version is what sites run.
-- Only its status moves: draft -> published -> deprecated | unpublished (and deprecated <-> published).

CREATE TABLE IF NOT EXISTS public.module_versions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  module_id uuid NOT NULL REFERENCES public.modules_v2 (id) ON DELETE CASCADE,
  version text NOT NULL CHECK (version ~ '^(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})$'),
  manifest jsonb NOT NULL,
  status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'deprecated', 'unpublished')),
  changelog text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  created_by uuid,
  published_at timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (module_id, version)
);

ALTER TABLE public.modules_v2 ADD COLUMN IF NOT EXISTS current_version text;

-- semver as an integer array, for ordering versions (1.10.0 after 1.9.0)
CREATE OR REPLACE FUNCTION private.semver_key(p_version text) RETURNS integer[]
  LANGUAGE sql IMMUTABLE SET search_path = ''
  AS $$
    SELECT CASE WHEN p_version ~ '^[0-9]{1,9}\.[0-9]{1,9}\.[0-9]{1,9}$'
                THEN string_to_array(p_version, '.')::integer[] END
  $$;
REVOKE ALL ON FUNCTION private.semver_key(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.semver_key(text) TO authenticated, service_role;

CREATE OR REPLACE FUNCTION private.refuse_version_rewrite() RETURNS trigger
  LANGUAGE plpgsql SET search_path = ''
  AS $$
  BEGIN
    IF NEW.version IS DISTINCT FROM OLD.version OR NEW.manifest IS DISTINCT FROM OLD.manifest
       OR NEW.module_id IS DISTINCT FROM OLD.module_id THEN
      RAISE EXCEPTION 'a module version is immutable: add a new version instead' USING ERRCODE = '42501';
    END IF;
    IF OLD.status <> 'draft' AND NEW.status = 'draft' THEN
      RAISE EXCEPTION 'a published version cannot become a draft again' USING ERRCODE = '42501';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
  END
  $$;
REVOKE ALL ON FUNCTION private.refuse_version_rewrite() FROM PUBLIC;
DROP TRIGGER IF EXISTS module_versions_immutable ON public.module_versions;
CREATE TRIGGER module_versions_immutable BEFORE UPDATE ON public.module_versions
  FOR EACH ROW EXECUTE FUNCTION private.refuse_version_rewrite();

-- A module written by SQL (the seed, an operator, modules from before this migration) gets its manifest
-- recorded as a version, in the module's status, so that every installable module has its version row.
CREATE OR REPLACE FUNCTION private.record_manifest_version() RETURNS trigger
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_version text := NEW.manifest ->> 'version';
  BEGIN
    IF private.semver_key(v_version) IS NOT NULL THEN
      INSERT INTO public.module_versions (module_id, version, manifest, status, published_at)
      VALUES (NEW.id, v_version, NEW.manifest,
              CASE NEW.status WHEN 'published' THEN 'published' WHEN 'deprecated' THEN 'deprecated' ELSE 'draft' END,
              CASE WHEN NEW.status = 'published' THEN now() END)
      ON CONFLICT (module_id, version) DO NOTHING;
    END IF;
    RETURN NULL;
  END
  $$;
REVOKE ALL ON FUNCTION private.record_manifest_version() FROM PUBLIC;
DROP TRIGGER IF EXISTS modules_v2_record_version ON public.modules_v2;
CREATE TRIGGER modules_v2_record_version AFTER INSERT OR UPDATE OF manifest ON public.modules_v2
  FOR EACH ROW EXECUTE FUNCTION private.record_manifest_version();

INSERT INTO public.module_versions (module_id, version, manifest, status, published_at)
SELECT m.id, m.manifest ->> 'version', m.manifest,
       CASE m.status WHEN 'published' THEN 'published' WHEN 'deprecated' THEN 'deprecated' ELSE 'draft' END,
       CASE WHEN m.status = 'published' THEN m.updated_at END
FROM public.modules_v2 m
WHERE private.semver_key(m.manifest ->> 'version') IS NOT NULL
ON CONFLICT (module_id, version) DO NOTHING;

UPDATE public.modules_v2 SET current_version = manifest ->> 'version'
WHERE current_version IS NULL AND status = 'published' AND private.semver_key(manifest ->> 'version') IS NOT NULL;

CREATE INDEX IF NOT EXISTS module_versions_module_idx ON public.module_versions (module_id, status);

-- Row-level security: everyone signed in reads the published and deprecated versions of published
-- modules (what upgrades offer); super admins read and write everything. Deleting is for drafts only.
ALTER TABLE public.module_versions ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON public.module_versions FROM PUBLIC, anon, authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.module_versions TO authenticated;
GRANT ALL ON public.module_versions TO service_role;

DROP POLICY IF EXISTS module_versions_select ON public.module_versions;
CREATE POLICY module_versions_select ON public.module_versions FOR SELECT TO authenticated
  USING (status IN ('published', 'deprecated') OR (SELECT private.is_super_admin()));
DROP POLICY IF EXISTS module_versions_insert ON public.module_versions;
CREATE POLICY module_versions_insert ON public.module_versions FOR INSERT TO authenticated
  WITH CHECK ((SELECT private.is_super_admin()) AND status = 'draft');
DROP POLICY IF EXISTS module_versions_update ON public.module_versions;
CREATE POLICY module_versions_update ON public.module_versions FOR UPDATE TO authenticated
  USING ((SELECT private.is_super_admin())) WITH CHECK ((SELECT private.is_super_admin()));
DROP POLICY IF EXISTS module_versions_delete ON public.module_versions;
CREATE POLICY module_versions_delete ON public.module_versions FOR DELETE TO authenticated
  USING ((SELECT private.is_super_admin()) AND status = 'draft');
