-- 0005_tokens: bearer tokens for the API (docs/security.md).
--
-- A token is 256 random bits shown once, when `cardiotwin token create`
-- makes it; only its SHA-256 is kept here, so this file never holds a
-- credential. The server hashes the token a request presents and finds the
-- row by that hash (a unique index: one probe). The role names the SMART
-- scopes the token was granted; scopes holds them as granted at creation,
-- so that a later change to a role's definition never widens an existing
-- token. A token bound to a patient (patient not NULL) holds patient/
-- scopes and sees only that patient's compartment.
--
-- Rows are never deleted: a revoked token keeps its row (revoked_ms,
-- revoked_by), and its name is never given to another token, so that every
-- actor name in the audit log stands for one token only. Who created and
-- who revoked a token is also in the audit log (token-create,
-- token-revoke), written in the same transaction as the row.
CREATE TABLE api_token (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE
                  CHECK (length(name) BETWEEN 1 AND 64 AND name GLOB '[A-Za-z]*'
                         AND name NOT GLOB '*[^A-Za-z0-9._-]*'),
    token_sha256  BLOB NOT NULL UNIQUE CHECK (length(token_sha256) = 32),
    role          TEXT NOT NULL CHECK (role IN ('device', 'clinician', 'auditor', 'admin')),
    scopes        TEXT NOT NULL CHECK (length(scopes) BETWEEN 1 AND 255),
    patient       TEXT CHECK (patient IS NULL OR length(patient) BETWEEN 1 AND 64),
    created_ms    INTEGER NOT NULL CHECK (created_ms >= 0),
    created_by    TEXT NOT NULL CHECK (length(created_by) >= 1),
    expires_ms    INTEGER CHECK (expires_ms IS NULL OR expires_ms > created_ms),
    revoked_ms    INTEGER,
    revoked_by    TEXT,
    last_used_ms  INTEGER,
    CHECK ((revoked_ms IS NULL) = (revoked_by IS NULL))
) STRICT;

-- A revoked token stays revoked, and what a token is never changes: only
-- revocation and the last-use time may be written after the insert.
CREATE TRIGGER api_token_fixed BEFORE UPDATE ON api_token
WHEN OLD.revoked_ms IS NOT NULL AND (NEW.revoked_ms IS NOT OLD.revoked_ms OR NEW.revoked_by IS NOT OLD.revoked_by)
  OR NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.token_sha256 IS NOT OLD.token_sha256
  OR NEW.role IS NOT OLD.role OR NEW.scopes IS NOT OLD.scopes OR NEW.patient IS NOT OLD.patient
  OR NEW.created_ms IS NOT OLD.created_ms OR NEW.created_by IS NOT OLD.created_by
  OR NEW.expires_ms IS NOT OLD.expires_ms
BEGIN
    SELECT RAISE(ABORT, 'api_token: only revocation and the last use may change, and a revocation is final');
END;

CREATE TRIGGER api_token_no_delete BEFORE DELETE ON api_token
BEGIN
    SELECT RAISE(ABORT, 'api_token: tokens are revoked, never deleted');
END;
