-- A transaction.completed activates only the payment a checkout asked for (transaction id, amount,
-- currency); one that matches nothing we opened is recorded with outcome 'mismatch' and the reason,
-- and changes nothing. Every recorded event names the checkout it paid for, when there is one.
ALTER TABLE public.payment_events DROP CONSTRAINT IF EXISTS payment_events_outcome_check;
ALTER TABLE public.payment_events ADD CONSTRAINT payment_events_outcome_check
  CHECK (outcome IN ('received', 'applied', 'unchanged', 'stale', 'mismatch', 'ignored', 'unmatched'));
ALTER TABLE public.payment_events
  ADD COLUMN IF NOT EXISTS checkout_id uuid REFERENCES public.payment_checkouts (id) ON DELETE SET NULL,
  ADD COLUMN IF NOT EXISTS detail text;
CREATE INDEX IF NOT EXISTS payment_events_checkout_idx ON public.payment_events (checkout_id);
