-- The owners' read of the audit trail (GET /api/agencies/{agencyId}/audit-log) pages newest first by
-- id (a keyset cursor: ids only grow, while occurred_at is the writing transaction's start time).
CREATE INDEX IF NOT EXISTS audit_log_agency_page_idx ON public.audit_log (agency_id, id DESC);
