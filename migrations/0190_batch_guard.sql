-- A batch's shared transaction (dramac_common.automation.engine) checks its guards in SQL, so that its
-- COMMIT travels in the round trip of its last statements instead of waiting for Python to read their
-- counts first (issue 14: automation throughput). Each statement that writes what a batch ran ends with
-- private.batch_guard(<its check>, <why>): the executions it inserted are all of the batch's new ones
-- (no other worker inserted one first), the executions it advanced still held this worker's lease. A
-- failed check raises serialization_failure (40001, a lost race: try again), the pipeline skips the
-- COMMIT queued after it, and the engine rolls the transaction back and runs its executions one at a time.
CREATE OR REPLACE FUNCTION private.batch_guard(p_ok boolean, p_message text) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SET search_path = ''
  AS $$
  BEGIN
    IF p_ok IS NOT TRUE THEN
      RAISE EXCEPTION '%', p_message USING ERRCODE = '40001';
    END IF;
    RETURN true;
  END
  $$;
REVOKE ALL ON FUNCTION private.batch_guard(boolean, text) FROM PUBLIC;
