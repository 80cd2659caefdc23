-- 0006_users: dashboard users and their sessions (docs/security.md, "Users
-- and login").
--
-- A user is a person who logs in to the dashboard with a name and a
-- password. Roles are the tokens' roles (clinician, auditor, admin; a
-- device has no password, it has a token) and a user may be bound to one
-- patient as a token may. The password is kept only as the output of a
-- slow, salted KDF, and the KDF's name and parameters are stored with each
-- user so that the cost can be raised later: a user hashed with old
-- parameters is re-hashed with the current ones at the next successful
-- login.
--
-- Rows are never deleted (a user is disabled), and names are never reused,
-- so that an actor name in the audit log stands for one person only.
CREATE TABLE app_user (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE
                    CHECK (length(name) BETWEEN 1 AND 64 AND name GLOB '[A-Za-z]*'
                           AND name NOT GLOB '*[^A-Za-z0-9._-]*'),
    role            TEXT NOT NULL CHECK (role IN ('clinician', 'auditor', 'admin')),
    patient         TEXT CHECK (patient IS NULL OR length(patient) BETWEEN 1 AND 64),
    -- scrypt: cost is N (a power of two), block r, parallel p.
    -- pbkdf2-sha256: cost is the iteration count, block and parallel 1.
    kdf             TEXT NOT NULL CHECK (kdf IN ('scrypt', 'pbkdf2-sha256')),
    kdf_cost        INTEGER NOT NULL CHECK (kdf_cost >= 1),
    kdf_block       INTEGER NOT NULL CHECK (kdf_block >= 1),
    kdf_parallel    INTEGER NOT NULL CHECK (kdf_parallel >= 1),
    salt            BLOB NOT NULL CHECK (length(salt) BETWEEN 16 AND 64),
    hash            BLOB NOT NULL CHECK (length(hash) = 32),
    created_ms      INTEGER NOT NULL CHECK (created_ms >= 0),
    created_by      TEXT NOT NULL CHECK (length(created_by) >= 1),
    password_ms     INTEGER NOT NULL,             -- when the password was last set
    disabled_ms     INTEGER,
    disabled_by     TEXT,
    failed_count    INTEGER NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
    locked_until_ms INTEGER NOT NULL DEFAULT 0,   -- 0: not locked
    last_login_ms   INTEGER,
    CHECK ((disabled_ms IS NULL) = (disabled_by IS NULL))
) STRICT;

-- Who a user is never changes; a disabled user stays disabled.
CREATE TRIGGER app_user_fixed BEFORE UPDATE ON app_user
WHEN OLD.disabled_ms IS NOT NULL AND (NEW.disabled_ms IS NOT OLD.disabled_ms OR NEW.disabled_by IS NOT OLD.disabled_by)
  OR NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.role IS NOT OLD.role
  OR NEW.patient IS NOT OLD.patient OR NEW.created_ms IS NOT OLD.created_ms OR NEW.created_by IS NOT OLD.created_by
BEGIN
    SELECT RAISE(ABORT, 'app_user: name, role, patient and creation are fixed, and disabling is final');
END;

CREATE TRIGGER app_user_no_delete BEFORE DELETE ON app_user
BEGIN
    SELECT RAISE(ABORT, 'app_user: users are disabled, never deleted');
END;

-- A login session. The cookie is 256 random bits the browser holds; the
-- database keeps its SHA-256 only (a stolen database opens no session).
-- The CSRF token is not a credential on its own (it is useless without the
-- cookie) and is kept as is, to be handed to a new page of the session.
-- A session ends at logout, when its user is disabled, after idle_ms
-- without a request, or at expires_ms whatever happens.
CREATE TABLE app_session (
    id            INTEGER PRIMARY KEY,
    cookie_sha256 BLOB NOT NULL UNIQUE CHECK (length(cookie_sha256) = 32),
    user_id       INTEGER NOT NULL REFERENCES app_user(id),
    csrf          TEXT NOT NULL CHECK (length(csrf) BETWEEN 32 AND 64),
    client        TEXT NOT NULL,                  -- address it was opened from
    created_ms    INTEGER NOT NULL,
    last_seen_ms  INTEGER NOT NULL,
    idle_ms       INTEGER NOT NULL CHECK (idle_ms > 0),
    expires_ms    INTEGER NOT NULL CHECK (expires_ms > created_ms),
    ended_ms      INTEGER,
    end_reason    TEXT CHECK (end_reason IS NULL OR end_reason IN ('logout', 'disabled', 'password')),
    CHECK ((ended_ms IS NULL) = (end_reason IS NULL))
) STRICT;
CREATE INDEX app_session_user ON app_session(user_id) WHERE ended_ms IS NULL;

CREATE TRIGGER app_session_fixed BEFORE UPDATE ON app_session
WHEN OLD.ended_ms IS NOT NULL AND (NEW.ended_ms IS NOT OLD.ended_ms OR NEW.end_reason IS NOT OLD.end_reason)
  OR NEW.id IS NOT OLD.id OR NEW.cookie_sha256 IS NOT OLD.cookie_sha256 OR NEW.user_id IS NOT OLD.user_id
  OR NEW.csrf IS NOT OLD.csrf OR NEW.created_ms IS NOT OLD.created_ms OR NEW.expires_ms IS NOT OLD.expires_ms
  OR NEW.idle_ms IS NOT OLD.idle_ms
BEGIN
    SELECT RAISE(ABORT, 'app_session: only the last request and the end may change, and an end is final');
END;
