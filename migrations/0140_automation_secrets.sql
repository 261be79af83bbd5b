-- Connections hold credentials, encrypted at rest (envelope encryption: a KMS data key per save,
-- AES-256-GCM; see docs/automation.md), and header values typed into a step are kept the same way.
-- Additive only: rows from before (no auth_type) are not connections a workflow can use.
ALTER TABLE public.automation_connections ADD COLUMN IF NOT EXISTS auth_type text;
ALTER TABLE public.automation_connections ADD COLUMN IF NOT EXISTS secret_envelope jsonb;
ALTER TABLE public.automation_connections ADD COLUMN IF NOT EXISTS rotated_at timestamptz;
ALTER TABLE public.automation_connections ADD COLUMN IF NOT EXISTS created_by uuid;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'automation_connections_auth_type_check') THEN
    ALTER TABLE public.automation_connections ADD CONSTRAINT automation_connections_auth_type_check
      CHECK (auth_type IS NULL OR (auth_type IN ('bearer', 'api_key', 'basic', 'webhook_signing')
                                   AND secret_envelope IS NOT NULL AND name ~ '^[a-z][a-z0-9_]{0,62}$'));
  END IF;
END
$$;

-- A step refers to a connection by name: one per name and site.
CREATE UNIQUE INDEX IF NOT EXISTS automation_connections_site_name_key
  ON public.automation_connections (site_id, name) WHERE auth_type IS NOT NULL;

-- {"headers": {"<name>": <envelope>}}: the step's config.headers holds '********' in their place.
ALTER TABLE public.workflow_steps ADD COLUMN IF NOT EXISTS secret_envelopes jsonb NOT NULL DEFAULT '{}'::jsonb;
