-- Rate limits of the data and events routes (token buckets) and the agencies' plans.
-- Both tables are the backend's alone: no request role may read or write them.

-- An agency's plan names its limits in the service's configuration (DRAMAC_PLAN_LIMITS); an agency
-- without a row has the default plan (DRAMAC_DEFAULT_PLAN). Set by operators (or billing), never by
-- the agency itself.
CREATE TABLE IF NOT EXISTS private.agency_plans (
  agency_id uuid PRIMARY KEY REFERENCES public.agencies (id) ON DELETE CASCADE,
  plan text NOT NULL CHECK (plan ~ '^[a-z][a-z0-9_]{0,30}$'),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One bucket per site ('site:<id>') and per API key ('key:<id>').
CREATE TABLE IF NOT EXISTS private.rate_buckets (
  bucket text PRIMARY KEY,
  tokens double precision NOT NULL,
  allowed boolean NOT NULL,
  updated_at timestamptz NOT NULL
);

ALTER TABLE private.agency_plans ENABLE ROW LEVEL SECURITY;
ALTER TABLE private.rate_buckets ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON private.agency_plans, private.rate_buckets FROM PUBLIC;
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    EXECUTE 'REVOKE ALL ON private.agency_plans, private.rate_buckets FROM anon, authenticated';
  END IF;
END
$$;

-- Take a token from the API key's bucket (when p_key_id is given), then from the site's, refilled at
-- the plan's rate since the bucket was last touched. Returns 0 when the request may go on, else the
-- seconds until a token is back (and takes nothing more). A user who is not a member of the site's
-- agency takes nothing: the request answers 404, and strangers cannot drain a site's bucket.
-- p_limits: {"<plan>": {"siteRate", "siteBurst", "keyRate", "keyBurst"}}.
CREATE OR REPLACE FUNCTION private.take_rate_tokens(p_site_id uuid, p_key_id uuid, p_limits jsonb,
                                                    p_default_plan text, p_user_id uuid DEFAULT NULL)
  RETURNS double precision
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  DECLARE
    v_agency uuid;
    v_plan text;
    v_limits jsonb;
    v_bucket text;
    v_rate double precision;
    v_burst double precision;
    v_tokens double precision;
    v_allowed boolean;
  BEGIN
    SELECT s.agency_id, p.plan INTO v_agency, v_plan
    FROM public.sites s LEFT JOIN private.agency_plans p ON p.agency_id = s.agency_id
    WHERE s.id = p_site_id;
    IF v_agency IS NULL THEN
      RETURN 0;  -- no such site: the request answers 404
    END IF;
    IF p_user_id IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM public.agency_members m WHERE m.agency_id = v_agency AND m.user_id = p_user_id
        UNION ALL SELECT 1 FROM public.profiles pr WHERE pr.id = p_user_id AND pr.is_super_admin) THEN
      RETURN 0;
    END IF;
    v_limits := coalesce(p_limits -> v_plan, p_limits -> p_default_plan);
    IF v_limits IS NULL THEN
      RETURN 0;
    END IF;
    FOR v_bucket, v_rate, v_burst IN
      SELECT b.bucket, b.rate, b.burst FROM (VALUES
        (1, 'key:' || p_key_id::text, (v_limits ->> 'keyRate')::double precision,
            (v_limits ->> 'keyBurst')::double precision),
        (2, 'site:' || p_site_id::text, (v_limits ->> 'siteRate')::double precision,
            (v_limits ->> 'siteBurst')::double precision)) AS b(n, bucket, rate, burst)
      WHERE b.bucket IS NOT NULL ORDER BY b.n
    LOOP
      INSERT INTO private.rate_buckets AS r (bucket, tokens, allowed, updated_at)
      VALUES (v_bucket, v_burst - 1, true, clock_timestamp())
      ON CONFLICT (bucket) DO UPDATE SET
        tokens = least(v_burst, r.tokens + greatest(0, extract(epoch FROM clock_timestamp() - r.updated_at)) * v_rate)
                 - CASE WHEN least(v_burst, r.tokens + greatest(0, extract(epoch FROM clock_timestamp() - r.updated_at))
                                   * v_rate) >= 1 THEN 1 ELSE 0 END,
        allowed = least(v_burst, r.tokens + greatest(0, extract(epoch FROM clock_timestamp() - r.updated_at))
                                 * v_rate) >= 1,
        updated_at = clock_timestamp()
      RETURNING r.tokens, r.allowed INTO v_tokens, v_allowed;
      IF NOT v_allowed THEN
        RETURN greatest(0.001, (1 - v_tokens) / v_rate);
      END IF;
    END LOOP;
    RETURN 0;
  END
  $$;

REVOKE ALL ON FUNCTION private.take_rate_tokens(uuid, uuid, jsonb, text, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION private.take_rate_tokens(uuid, uuid, jsonb, text, uuid) TO dramac_backend;
