-- EM-11 helpers over module schemas, with identifiers quoted by format(%I) and
-- restricted to module schemas (mod_<8 hex>), so they cannot be aimed at platform schemas.

CREATE OR REPLACE FUNCTION public.module_schema_exists(p_schema_name text) RETURNS boolean
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT p_schema_name ~ '^mod_[a-f0-9]{8}$'
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = p_schema_name)
  $$;

CREATE OR REPLACE FUNCTION public.get_module_tables(p_schema_name text)
  RETURNS TABLE (table_name text, row_count bigint)
  LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
DECLARE
  t record;
BEGIN
  IF p_schema_name !~ '^mod_[a-f0-9]{8}$' THEN
    RAISE EXCEPTION 'not a module schema: %', p_schema_name USING ERRCODE = '22023';
  END IF;
  FOR t IN
    SELECT c.relname FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = p_schema_name AND c.relkind IN ('r', 'p')
    ORDER BY c.relname
  LOOP
    table_name := t.relname;
    EXECUTE format('SELECT count(*) FROM %I.%I', p_schema_name, t.relname) INTO row_count;
    RETURN NEXT;
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.get_module_storage_size(p_schema_name text) RETURNS bigint
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = ''
  AS $$
    SELECT coalesce(sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::bigint
    FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = p_schema_name AND p_schema_name ~ '^mod_[a-f0-9]{8}$' AND c.relkind IN ('r', 'p')
  $$;

-- Table sizes and row counts of other tenants' modules are operator information.
REVOKE ALL ON FUNCTION public.module_schema_exists(text), public.get_module_tables(text),
  public.get_module_storage_size(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.module_schema_exists(text), public.get_module_tables(text),
  public.get_module_storage_size(text) TO service_role;
