-- 0007_audit_search: indexes for GET /fhir/AuditEvent (docs/audit.md,
-- "Reading the log over the API").
--
-- 0002 already indexes the patient and the time of an entry. An auditor
-- also asks "what did this account do" (agent) and "every delete" (action,
-- subtype): without these, each such question reads the whole log. seq is
-- the rowid, so each index hands back its entries in log order and a page
-- that is newest first walks the index backwards and stops at the page.
-- Only indexes are added: the table and its append-only triggers are as
-- 0002 made them.
CREATE INDEX audit_log_by_actor ON audit_log(actor, seq);
CREATE INDEX audit_log_by_action ON audit_log(action, seq);
