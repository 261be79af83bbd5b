-- Site API keys: a rotation yields exactly one successor, on the same site, and the table's
-- policies are one per (role, action).
--
-- Before this, twenty parallel rotations of one key created twenty successors (each request
-- checked the old key, then inserted). Now a key has at most one successor (unique rotated_from):
-- the first rotation wins and every other answers 409 api_key_already_rotated, as a rotation of an
-- already rotated key does. A successor names a key of its own site (composite foreign key), so
-- rotated_from can neither point at another agency's key nor reveal that one exists.

-- Successors recorded twice by the old race: the earliest keeps the link, later ones become
-- ordinary keys (they stay valid; only the "rotated from" note is dropped).
UPDATE public.site_api_keys k SET rotated_from = NULL
WHERE k.rotated_from IS NOT NULL
  AND EXISTS (SELECT 1 FROM public.site_api_keys e
              WHERE e.rotated_from = k.rotated_from AND (e.created_at, e.id) < (k.created_at, k.id));
-- A link to a key of another site was never made by the API; drop any such link.
UPDATE public.site_api_keys k SET rotated_from = NULL
WHERE k.rotated_from IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM public.site_api_keys o WHERE o.id = k.rotated_from AND o.site_id = k.site_id);

-- One successor per key (a successor's site is its old key's, so the pair is unique exactly when
-- rotated_from is); the index also serves the foreign key below. NULLs (keys not from a rotation) are
-- distinct, so any number of them is fine.
CREATE UNIQUE INDEX IF NOT EXISTS site_api_keys_one_successor_idx ON public.site_api_keys (rotated_from, site_id);
DROP INDEX IF EXISTS public.site_api_keys_rotated_from_idx;

ALTER TABLE public.site_api_keys DROP CONSTRAINT IF EXISTS site_api_keys_id_site_key;
ALTER TABLE public.site_api_keys ADD CONSTRAINT site_api_keys_id_site_key UNIQUE (id, site_id);
ALTER TABLE public.site_api_keys DROP CONSTRAINT IF EXISTS site_api_keys_rotated_from_fkey;
ALTER TABLE public.site_api_keys ADD CONSTRAINT site_api_keys_rotated_from_fkey
  FOREIGN KEY (rotated_from, site_id) REFERENCES public.site_api_keys (id, site_id)
  ON DELETE SET NULL (rotated_from);

-- One permissive policy per (role, action): reads, creations and changes apart. Keys are never
-- deleted by a request (revocation keeps the row), so authenticated has no DELETE at all.
REVOKE DELETE ON public.site_api_keys FROM authenticated;
DROP POLICY IF EXISTS site_api_keys_manage ON public.site_api_keys;
DROP POLICY IF EXISTS site_api_keys_select ON public.site_api_keys;
CREATE POLICY site_api_keys_select ON public.site_api_keys FOR SELECT TO authenticated
  USING (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));
DROP POLICY IF EXISTS site_api_keys_insert ON public.site_api_keys;
CREATE POLICY site_api_keys_insert ON public.site_api_keys FOR INSERT TO authenticated
  WITH CHECK ((agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()))
              AND created_by IS NOT DISTINCT FROM (SELECT auth.uid()));
DROP POLICY IF EXISTS site_api_keys_update ON public.site_api_keys;
CREATE POLICY site_api_keys_update ON public.site_api_keys FOR UPDATE TO authenticated
  USING (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()))
  WITH CHECK (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));
