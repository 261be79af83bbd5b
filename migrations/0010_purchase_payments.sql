-- Paid modules: provider references on subscriptions, checkouts, received payment events,
-- the idempotency store of POST /api/modules/{moduleId}/purchase, and agency-level automation
-- events (marketplace.subscription.*), which belong to an agency rather than to one site.

-- Subscriptions: which provider objects they belong to, and the occurred_at of the last provider
-- event applied to them (older events never move a subscription backwards).
ALTER TABLE public.agency_module_subscriptions
  ADD COLUMN IF NOT EXISTS payment_provider text,
  ADD COLUMN IF NOT EXISTS provider_transaction_id text,
  ADD COLUMN IF NOT EXISTS provider_subscription_id text,
  ADD COLUMN IF NOT EXISTS last_payment_event_at timestamptz,
  ADD COLUMN IF NOT EXISTS past_due_at timestamptz;
CREATE INDEX IF NOT EXISTS agency_module_subscriptions_provider_subscription_idx
  ON public.agency_module_subscriptions (provider_subscription_id) WHERE provider_subscription_id IS NOT NULL;

-- One row per checkout a purchase opened; the provider's transaction id links webhooks back to it.
CREATE TABLE IF NOT EXISTS public.payment_checkouts (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id uuid NOT NULL REFERENCES public.agencies (id) ON DELETE CASCADE,
  subscription_id uuid NOT NULL REFERENCES public.agency_module_subscriptions (id) ON DELETE CASCADE,
  module_id uuid NOT NULL REFERENCES public.modules_v2 (id) ON DELETE CASCADE,
  provider text NOT NULL CHECK (provider IN ('paddle', 'sandbox')),
  provider_checkout_id text,
  status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'completed', 'superseded')),
  amount_cents integer NOT NULL CHECK (amount_cents >= 0),
  currency text NOT NULL,
  billing_cycle text NOT NULL,
  checkout_url text,
  created_by uuid,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz
);
CREATE INDEX IF NOT EXISTS payment_checkouts_subscription_idx ON public.payment_checkouts (subscription_id, created_at DESC);
CREATE INDEX IF NOT EXISTS payment_checkouts_agency_idx ON public.payment_checkouts (agency_id);
CREATE INDEX IF NOT EXISTS payment_checkouts_module_idx ON public.payment_checkouts (module_id);
CREATE UNIQUE INDEX IF NOT EXISTS payment_checkouts_provider_checkout_idx
  ON public.payment_checkouts (provider, provider_checkout_id) WHERE provider_checkout_id IS NOT NULL;

-- Every accepted (signature-verified) provider event, once: a repeated event_id is a no-op.
CREATE TABLE IF NOT EXISTS public.payment_events (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  provider text NOT NULL DEFAULT 'paddle',
  event_id text NOT NULL UNIQUE,
  event_type text NOT NULL,
  occurred_at timestamptz NOT NULL,
  subscription_id uuid REFERENCES public.agency_module_subscriptions (id) ON DELETE SET NULL,
  outcome text NOT NULL DEFAULT 'received'
    CHECK (outcome IN ('received', 'applied', 'unchanged', 'stale', 'ignored', 'unmatched')),
  payload jsonb NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS payment_events_subscription_idx ON public.payment_events (subscription_id, occurred_at);

-- Powertools idempotency records (a BasePersistenceLayer over PostgreSQL). Keys are hashes of
-- (caller, Idempotency-Key); only the service role reads or writes them.
CREATE TABLE IF NOT EXISTS public.idempotency_records (
  idempotency_key text PRIMARY KEY,
  status text NOT NULL CHECK (status IN ('INPROGRESS', 'COMPLETED')),
  expiry_timestamp bigint NOT NULL,
  in_progress_expiry_timestamp bigint,
  response_data text,
  payload_hash text,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idempotency_records_expiry_idx ON public.idempotency_records (expiry_timestamp);

ALTER TABLE public.payment_checkouts ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.payment_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.idempotency_records ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.payment_checkouts, public.payment_events,
  public.idempotency_records TO service_role;
GRANT SELECT, INSERT, UPDATE ON public.payment_checkouts TO authenticated;
REVOKE ALL ON public.payment_events, public.idempotency_records FROM authenticated, anon;
REVOKE ALL ON public.payment_checkouts FROM anon;

-- checkouts: members of the agency read, managers open them (payment_events and
-- idempotency_records have no policy for authenticated: webhooks and the store run as the service)
DROP POLICY IF EXISTS payment_checkouts_select ON public.payment_checkouts;
CREATE POLICY payment_checkouts_select ON public.payment_checkouts FOR SELECT TO authenticated
  USING (agency_id = ANY ((SELECT private.member_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));
DROP POLICY IF EXISTS payment_checkouts_write ON public.payment_checkouts;
CREATE POLICY payment_checkouts_write ON public.payment_checkouts FOR ALL TO authenticated
  USING (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()))
  WITH CHECK (agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]) OR (SELECT private.is_super_admin()));

-- Agency-level automation events: site_id becomes optional, agency_id names the agency, and
-- every row names at least one of them. Site events are unchanged.
ALTER TABLE public.automation_events_log
  ADD COLUMN IF NOT EXISTS agency_id uuid REFERENCES public.agencies (id) ON DELETE CASCADE;
ALTER TABLE public.automation_events_log ALTER COLUMN site_id DROP NOT NULL;
ALTER TABLE public.automation_events_log DROP CONSTRAINT IF EXISTS automation_events_log_scope_check;
ALTER TABLE public.automation_events_log
  ADD CONSTRAINT automation_events_log_scope_check CHECK (site_id IS NOT NULL OR agency_id IS NOT NULL);
CREATE INDEX IF NOT EXISTS automation_events_log_agency_idx
  ON public.automation_events_log (agency_id, created_at DESC) WHERE agency_id IS NOT NULL;

-- Agency events (no site): members of the agency read them, managers write them.
DROP POLICY IF EXISTS automation_events_log_agency_select ON public.automation_events_log;
CREATE POLICY automation_events_log_agency_select ON public.automation_events_log FOR SELECT TO authenticated
  USING (site_id IS NULL AND agency_id = ANY ((SELECT private.member_agency_ids())::uuid[]));
DROP POLICY IF EXISTS automation_events_log_agency_insert ON public.automation_events_log;
CREATE POLICY automation_events_log_agency_insert ON public.automation_events_log FOR INSERT TO authenticated
  WITH CHECK (site_id IS NULL AND agency_id = ANY ((SELECT private.managed_agency_ids())::uuid[]));
