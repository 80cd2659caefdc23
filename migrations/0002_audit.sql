-- 0002_audit: the tamper-evident audit log and its signed checkpoints.
--
-- audit_log is a hash chain: every entry stores the hash of the one before it
-- (prev_hash) and its own hash, SHA-256(prev_hash || canonical bytes of the
-- entry); docs/audit.md defines the canonical bytes. audit_checkpoint holds
-- Ed25519 signatures over the log's head (size, head hash, RFC 6962 Merkle
-- root), made with a key that is kept outside this database.
--
-- The triggers below make the database itself refuse to change or remove an
-- entry or a checkpoint, and refuse an entry that does not follow the last
-- one. They stop mistakes and casual edits, not an attacker who can drop a
-- trigger: against that, the chain and the signatures are what count, and
-- `cardiotwin audit verify` recomputes both.

-- One audit entry. Texts are UTF-8, '' when not applicable; lengths are
-- checked by the C code (include/cardiotwin/audit.h). outcome follows FHIR
-- AuditEvent.outcome: 0 success, 4 minor failure, 8 serious failure,
-- 12 major failure. detail is NULL or a JSON object.
CREATE TABLE audit_log (
    seq               INTEGER PRIMARY KEY CHECK (seq >= 1),
    time_ms           INTEGER NOT NULL CHECK (time_ms >= 0),
    actor             TEXT NOT NULL CHECK (length(actor) >= 1),
    actor_role        TEXT NOT NULL CHECK (length(actor_role) >= 1),
    client            TEXT NOT NULL,
    action            TEXT NOT NULL CHECK (length(action) >= 1),
    resource_type     TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    resource_version  INTEGER NOT NULL CHECK (resource_version >= 0),
    patient           TEXT NOT NULL,
    outcome           INTEGER NOT NULL CHECK (outcome IN (0, 4, 8, 12)),
    outcome_desc      TEXT NOT NULL,
    request_id        TEXT NOT NULL,
    detail            TEXT CHECK (detail IS NULL OR length(detail) >= 2),
    prev_hash         BLOB NOT NULL CHECK (length(prev_hash) = 32),
    hash              BLOB NOT NULL CHECK (length(hash) = 32)
) STRICT;
-- Export and GET /fhir/AuditEvent filter by patient and by time.
CREATE INDEX audit_log_by_patient ON audit_log(patient, seq) WHERE patient <> '';
CREATE INDEX audit_log_by_time ON audit_log(time_ms);

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: an entry cannot be changed');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only: an entry cannot be deleted');
END;

-- seq counts 1, 2, 3 ... without gaps, and each entry names its predecessor's
-- hash (32 zero bytes before the first). The max() is one probe of the rowid
-- b-tree.
CREATE TRIGGER audit_log_append_only BEFORE INSERT ON audit_log
WHEN NEW.seq IS NOT (SELECT ifnull(max(seq), 0) + 1 FROM audit_log)
  OR NEW.prev_hash IS NOT ifnull((SELECT hash FROM audit_log WHERE seq = NEW.seq - 1), zeroblob(32))
BEGIN
    SELECT RAISE(ABORT, 'audit_log: an entry must follow the last one (seq = last + 1, prev_hash = its hash)');
END;

-- A signed statement "the log's first `size` entries end in head_hash and
-- have Merkle root merkle_root" (the message is in docs/audit.md). id counts
-- 1, 2, 3 ... and is signed too, so that a removed checkpoint leaves a gap.
-- key_id is the hex SHA-256 of the raw Ed25519 public key. frontier is not
-- signed: it is the right edge of the Merkle tree at `size` (the roots of
-- its perfect subtrees, largest first, 32 bytes each), kept so that the next
-- checkpoint hashes only the entries added since; it is checked against the
-- signed root before it is used.
CREATE TABLE audit_checkpoint (
    id           INTEGER PRIMARY KEY CHECK (id >= 1),
    size         INTEGER NOT NULL UNIQUE CHECK (size >= 1),
    head_hash    BLOB NOT NULL CHECK (length(head_hash) = 32),
    merkle_root  BLOB NOT NULL CHECK (length(merkle_root) = 32),
    time_ms      INTEGER NOT NULL CHECK (time_ms >= 0),
    key_id       TEXT NOT NULL CHECK (length(key_id) = 64 AND key_id NOT GLOB '*[^0-9a-f]*'),
    signature    BLOB NOT NULL CHECK (length(signature) = 64),
    frontier     BLOB NOT NULL CHECK (length(frontier) % 32 = 0)
) STRICT;

CREATE TRIGGER audit_checkpoint_no_update BEFORE UPDATE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: a checkpoint cannot be changed');
END;

CREATE TRIGGER audit_checkpoint_no_delete BEFORE DELETE ON audit_checkpoint
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint is append-only: a checkpoint cannot be deleted');
END;

-- A checkpoint follows the previous one, signs more entries than it did, and
-- names an entry that exists with the head hash it claims.
CREATE TRIGGER audit_checkpoint_append_only BEFORE INSERT ON audit_checkpoint
WHEN NEW.id IS NOT (SELECT ifnull(max(id), 0) + 1 FROM audit_checkpoint)
  OR NEW.size <= (SELECT ifnull(max(size), 0) FROM audit_checkpoint)
  OR NEW.head_hash IS NOT (SELECT hash FROM audit_log WHERE seq = NEW.size)
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoint: a checkpoint must follow the last one and sign an existing head');
END;
