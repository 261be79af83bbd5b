-- Platform tables of the contract (section 4): tenancy, marketplace, installations,
-- module storage registry and the automation tables. Every foreign key is indexed.

CREATE SCHEMA IF NOT EXISTS private;

CREATE OR REPLACE FUNCTION private.set_updated_at() RETURNS trigger
  LANGUAGE plpgsql
  SET search_path = ''
  AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- Tenancy ------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.profiles (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  email text,
  full_name text,
  is_super_admin boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.agencies (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.agency_members (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id uuid NOT NULL REFERENCES public.agencies (id) ON DELETE CASCADE,
  user_id uuid NOT NULL REFERENCES public.profiles (id) ON DELETE CASCADE,
  role text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (agency_id, user_id)
);
CREATE INDEX IF NOT EXISTS agency_members_user_id_idx ON public.agency_members (user_id, agency_id, role);

CREATE TABLE IF NOT EXISTS public.clients (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id uuid NOT NULL REFERENCES public.agencies (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, agency_id)
);
CREATE INDEX IF NOT EXISTS clients_agency_id_idx ON public.clients (agency_id);

CREATE TABLE IF NOT EXISTS public.sites (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id uuid NOT NULL REFERENCES public.agencies (id) ON DELETE CASCADE,
  client_id uuid NOT NULL,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  subdomain text NOT NULL UNIQUE CHECK (subdomain ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  custom_domain text UNIQUE CHECK (custom_domain IS NULL OR custom_domain = lower(custom_domain)),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, agency_id),
  -- a site's client belongs to the site's agency
  FOREIGN KEY (client_id, agency_id) REFERENCES public.clients (id, agency_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sites_agency_id_idx ON public.sites (agency_id);
CREATE INDEX IF NOT EXISTS sites_client_id_idx ON public.sites (client_id, agency_id);

-- Marketplace ----------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.modules_v2 (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z][a-z0-9_-]{0,62}$'),
  name text NOT NULL,
  description text NOT NULL DEFAULT '',
  module_type text NOT NULL CHECK (module_type IN ('widget', 'app', 'integration', 'system', 'custom')),
  status text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published', 'deprecated')),
  pricing_type text NOT NULL DEFAULT 'free' CHECK (pricing_type IN ('free', 'one_time', 'monthly', 'yearly')),
  wholesale_price_cents integer NOT NULL DEFAULT 0 CHECK (wholesale_price_cents >= 0),
  currency text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
  manifest jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS modules_v2_published_idx ON public.modules_v2 (name) WHERE status = 'published';

CREATE TABLE IF NOT EXISTS public.agency_module_subscriptions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id uuid NOT NULL REFERENCES public.agencies (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES public.modules_v2 (id) ON DELETE RESTRICT,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'canceled', 'past_due')),
  billing_cycle text CHECK (billing_cycle IN ('free', 'one_time', 'monthly', 'yearly')),
  wholesale_price_cents integer NOT NULL DEFAULT 0 CHECK (wholesale_price_cents >= 0),
  markup_type text NOT NULL DEFAULT 'none' CHECK (markup_type IN ('none', 'percentage', 'fixed')),
  markup_value integer NOT NULL DEFAULT 0 CHECK (markup_value >= 0),
  retail_price_cents integer NOT NULL DEFAULT 0 CHECK (retail_price_cents >= 0),
  currency text NOT NULL DEFAULT 'USD',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  canceled_at timestamptz,
  UNIQUE (agency_id, module_id),
  CHECK (markup_type <> 'percentage' OR markup_value <= 1000)
);
CREATE INDEX IF NOT EXISTS agency_module_subscriptions_module_id_idx ON public.agency_module_subscriptions (module_id);

-- Installations and module storage --------------------------------------------

CREATE TABLE IF NOT EXISTS public.site_module_installations (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id uuid NOT NULL,
  module_id uuid NOT NULL REFERENCES public.modules_v2 (id) ON DELETE CASCADE,
  agency_id uuid NOT NULL REFERENCES public.agencies (id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'provisioning' CHECK (status IN ('provisioning', 'active', 'failed', 'disabled')),
  is_enabled boolean NOT NULL DEFAULT true,
  config jsonb NOT NULL DEFAULT '{}'::jsonb,
  error text,
  installed_at timestamptz NOT NULL DEFAULT now(),
  installed_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (site_id, module_id),
  FOREIGN KEY (site_id, agency_id) REFERENCES public.sites (id, agency_id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS site_module_installations_module_id_idx ON public.site_module_installations (module_id);
CREATE INDEX IF NOT EXISTS site_module_installations_agency_id_idx ON public.site_module_installations (agency_id);
CREATE INDEX IF NOT EXISTS site_module_installations_site_agency_idx ON public.site_module_installations (site_id, agency_id);

CREATE TABLE IF NOT EXISTS public.module_database_registry (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  module_id uuid NOT NULL REFERENCES public.modules_v2 (id) ON DELETE CASCADE,
  module_short_id text NOT NULL UNIQUE CHECK (module_short_id ~ '^[a-f0-9]{8}$'),
  uses_schema boolean NOT NULL DEFAULT false,
  schema_name text CHECK (schema_name IS NULL OR schema_name ~ '^mod_[a-f0-9]{8}$'),
  table_names text[] NOT NULL DEFAULT '{}',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'migrating', 'deprecated')),
  version text NOT NULL DEFAULT '0.0.0',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (module_id)
);

CREATE TABLE IF NOT EXISTS public.module_data (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  module_id uuid NOT NULL REFERENCES public.modules_v2 (id) ON DELETE CASCADE,
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  key text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  value jsonb NOT NULL DEFAULT 'null'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (module_id, site_id, key)
);
CREATE INDEX IF NOT EXISTS module_data_site_id_idx ON public.module_data (site_id, module_id);

-- Automation ---------------------------------------------------------------

CREATE TABLE IF NOT EXISTS public.automation_events_log (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  event_type text NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*){1,3}$'),
  payload jsonb NOT NULL DEFAULT '{}'::jsonb,
  source_module text,
  source_entity_type text,
  source_entity_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- transactional outbox: set once the event was handed to the events queue
  dispatched_at timestamptz
);
CREATE INDEX IF NOT EXISTS automation_events_log_site_idx ON public.automation_events_log (site_id, created_at DESC);
CREATE INDEX IF NOT EXISTS automation_events_log_undispatched_idx
  ON public.automation_events_log (created_at) WHERE dispatched_at IS NULL;

CREATE TABLE IF NOT EXISTS public.automation_workflows (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  description text NOT NULL DEFAULT '',
  is_active boolean NOT NULL DEFAULT true,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS automation_workflows_site_id_idx ON public.automation_workflows (site_id);

CREATE TABLE IF NOT EXISTS public.workflow_steps (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workflow_id uuid NOT NULL REFERENCES public.automation_workflows (id) ON DELETE CASCADE,
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  position integer NOT NULL CHECK (position >= 0),
  step_type text NOT NULL CHECK (step_type IN
    ('condition', 'delay', 'http_request', 'create_record', 'update_record', 'set_variable', 'send_email')),
  config jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workflow_id, position)
);
CREATE INDEX IF NOT EXISTS workflow_steps_site_id_idx ON public.workflow_steps (site_id);

CREATE TABLE IF NOT EXISTS public.automation_event_subscriptions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workflow_id uuid NOT NULL REFERENCES public.automation_workflows (id) ON DELETE CASCADE,
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  event_type text NOT NULL,
  filter jsonb NOT NULL DEFAULT '{}'::jsonb,
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS automation_event_subscriptions_match_idx
  ON public.automation_event_subscriptions (site_id, event_type) WHERE is_active;
CREATE INDEX IF NOT EXISTS automation_event_subscriptions_workflow_id_idx
  ON public.automation_event_subscriptions (workflow_id);

CREATE TABLE IF NOT EXISTS public.workflow_executions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workflow_id uuid NOT NULL REFERENCES public.automation_workflows (id) ON DELETE CASCADE,
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  event_id uuid REFERENCES public.automation_events_log (id) ON DELETE SET NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN
    ('pending', 'running', 'waiting', 'completed', 'failed', 'cancelled')),
  context jsonb NOT NULL DEFAULT '{}'::jsonb,
  next_position integer NOT NULL DEFAULT 0,
  resume_at timestamptz,
  started_at timestamptz,
  completed_at timestamptz,
  error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  -- one execution per (event, workflow), however often the event is delivered
  UNIQUE (event_id, workflow_id)
);
CREATE INDEX IF NOT EXISTS workflow_executions_workflow_id_idx ON public.workflow_executions (workflow_id, created_at DESC);
CREATE INDEX IF NOT EXISTS workflow_executions_site_id_idx ON public.workflow_executions (site_id, created_at DESC);

CREATE TABLE IF NOT EXISTS public.step_execution_logs (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  execution_id uuid NOT NULL REFERENCES public.workflow_executions (id) ON DELETE CASCADE,
  step_id uuid REFERENCES public.workflow_steps (id) ON DELETE SET NULL,
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  position integer NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'completed', 'failed', 'skipped')),
  input jsonb,
  output jsonb,
  error text,
  attempts integer NOT NULL DEFAULT 1,
  started_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  duration_ms integer,
  UNIQUE (execution_id, position)
);
CREATE INDEX IF NOT EXISTS step_execution_logs_step_id_idx ON public.step_execution_logs (step_id);
CREATE INDEX IF NOT EXISTS step_execution_logs_site_id_idx ON public.step_execution_logs (site_id);

CREATE TABLE IF NOT EXISTS public.automation_connections (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  service_type text NOT NULL,
  name text NOT NULL,
  config jsonb NOT NULL DEFAULT '{}'::jsonb,
  secret_arn text,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'error', 'disabled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS automation_connections_site_id_idx ON public.automation_connections (site_id);

CREATE TABLE IF NOT EXISTS public.automation_webhooks (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  workflow_id uuid REFERENCES public.automation_workflows (id) ON DELETE CASCADE,
  name text NOT NULL DEFAULT '',
  event_type text NOT NULL,
  token_hash text NOT NULL UNIQUE,
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now(),
  last_received_at timestamptz
);
CREATE INDEX IF NOT EXISTS automation_webhooks_site_id_idx ON public.automation_webhooks (site_id);
CREATE INDEX IF NOT EXISTS automation_webhooks_workflow_id_idx ON public.automation_webhooks (workflow_id);

CREATE TABLE IF NOT EXISTS public.workflow_variables (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workflow_id uuid NOT NULL REFERENCES public.automation_workflows (id) ON DELETE CASCADE,
  site_id uuid NOT NULL REFERENCES public.sites (id) ON DELETE CASCADE,
  key text NOT NULL CHECK (key ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$'),
  value jsonb,
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (workflow_id, key)
);
CREATE INDEX IF NOT EXISTS workflow_variables_site_id_idx ON public.workflow_variables (site_id);

-- updated_at triggers on the tables that carry the column
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['profiles', 'agencies', 'clients', 'sites', 'modules_v2',
    'agency_module_subscriptions', 'site_module_installations', 'module_database_registry',
    'module_data', 'automation_workflows', 'automation_connections', 'workflow_variables']
  LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS set_updated_at ON public.%I', t);
    EXECUTE format('CREATE TRIGGER set_updated_at BEFORE UPDATE ON public.%I '
                   'FOR EACH ROW EXECUTE FUNCTION private.set_updated_at()', t);
  END LOOP;
END
$$;
