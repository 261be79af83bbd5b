-- The helpers of the subscribe, purchase and install write paths in PL/pgSQL, same answers (issue 14).
--
-- private.events_to_send, private.retail_price_cents and private.subscription_event_payload were
-- LANGUAGE sql with SECURITY DEFINER or a SET search_path, which PostgreSQL never inlines: each call
-- parsed and planned its body again, as the row-level security helpers did before migration 0160.
-- Measured with track_functions on a warm connection, events_to_send took 0.125 ms a purchase (one
-- call), retail_price_cents 0.027 ms a call (two a purchase): more than the checkout's insert. A
-- PL/pgSQL function keeps its statements' plans for the session and evaluates a plain expression
-- without the executor. Signatures, volatility, SECURITY DEFINER, search_path, owners and grants are
-- kept (CREATE OR REPLACE keeps owners and grants).

-- The events of p_ids still to send (not marked at insert), in their order. Volatile: called as the
-- last statement of a write path, or from the select list of the statement whose functions wrote the
-- events, it reads them with a snapshot that sees those inserts (as the SQL version did).
CREATE OR REPLACE FUNCTION private.events_to_send(p_ids uuid[]) RETURNS uuid[]
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = ''
  AS $$
  BEGIN
    RETURN (SELECT coalesce(array_agg(e.id ORDER BY p.n), '{}'::uuid[])
              FROM unnest(p_ids) WITH ORDINALITY AS p(id, n)
              JOIN public.automation_events_log e ON e.id = p.id AND e.dispatched_at IS NULL);
  END
  $$;

-- The contract's markup rule in integer cents: wholesale + round_half_up(wholesale * pct / 100),
-- wholesale + fixed, or wholesale. Out of the integer range is an error (22003), never a wrap.
CREATE OR REPLACE FUNCTION private.retail_price_cents(p_wholesale integer, p_markup_type text, p_markup_value integer)
  RETURNS integer
  LANGUAGE plpgsql IMMUTABLE SET search_path = ''
  AS $$
  BEGIN
    RETURN (p_wholesale::bigint + CASE p_markup_type
              WHEN 'percentage' THEN (2 * p_wholesale::bigint * p_markup_value + 100) / 200
              WHEN 'fixed' THEN p_markup_value::bigint
              ELSE 0 END)::integer;
  END
  $$;

-- The payload of marketplace.subscription.* events, as dramac_common.marketplace.catalog builds it.
CREATE OR REPLACE FUNCTION private.subscription_event_payload(p_sub jsonb, p_module_slug text, p_previous text)
  RETURNS jsonb
  LANGUAGE plpgsql IMMUTABLE SET search_path = ''
  AS $$
  BEGIN
    RETURN jsonb_build_object(
      'subscription_id', p_sub -> 'id', 'agency_id', p_sub -> 'agency_id', 'module_id', p_sub -> 'module_id',
      'module_slug', p_module_slug, 'status', p_sub -> 'status', 'previous_status', p_previous,
      'billing_cycle', p_sub -> 'billing_cycle', 'wholesale_price_cents', p_sub -> 'wholesale_price_cents',
      'markup_type', p_sub -> 'markup_type', 'markup_value', p_sub -> 'markup_value',
      'retail_price_cents', p_sub -> 'retail_price_cents', 'currency', p_sub -> 'currency');
  END
  $$;
