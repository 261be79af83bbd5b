-- Site API keys (contract section 5): a secret a site's integrations send as X-Api-Key to read and
-- write that one site's module data. Only a SHA-256 of the whole key is stored (keys carry 256
-- random bits, so a fast hash is enough); the key itself is shown once, at creation.
-- Keys are listed, created and revoked by the managers of the site's agency.

CREATE TABLE IF NOT EXISTS public.site_api_keys (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id uuid NOT NULL,
  agency_id uuid NOT NULL,
  name text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
  -- the public part of the key ("dk_live_<id hex>"), safe to show in listings
  key_prefix text NOT NULL UNIQUE,
  secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
  -- module slugs the key may use; NULL means every module installed on the site
  modules text[],
  created_by uuid REFERENCES public.profiles (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  last_used_at timestamptz,
  -- rotation: the key this one replaced (which then expires after an overlap period)
  rotated_from uuid REFERENCES public.site_api_keys (id) ON DELETE SET NULL,
  FOREIGN KEY (site_id, agency_id) REFERENCES public.sites (id, agency_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS site_api_keys_site_idx ON public.site_api_keys (site_id, agency_id, created_at DESC);
CREATE INDEX IF NOT EXISTS site_api_keys_agency_idx ON public.site_api_keys (agency_id);
CREATE INDEX IF NOT EXISTS site_api_keys_created_by_idx ON public.site_api_keys (created_by);
CREATE INDEX IF NOT EXISTS site_api_keys_rotated_from_idx ON public.site_api_keys (rotated_from);

ALTER TABLE public.site_api_keys ENABLE ROW LEVEL SECURITY;

REVOKE ALL ON public.site_api_keys FROM anon, authenticated;
-- the hash is never readable by a request; verification runs as the service role
GRANT SELECT (id, site_id, agency_id, name, key_prefix, modules, created_by, created_at, expires_at,
              revoked_at, last_used_at, rotated_from) ON public.site_api_keys TO authenticated;
GRANT INSERT ON public.site_api_keys TO authenticated;
GRANT UPDATE (name, expires_at, revoked_at) ON public.site_api_keys TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.site_api_keys TO service_role;

DROP POLICY IF EXISTS site_api_keys_manage ON public.site_api_keys;
CREATE POLICY site_api_keys_manage ON public.site_api_keys FOR ALL TO authenticated
  USING (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()))
  WITH CHECK (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));
