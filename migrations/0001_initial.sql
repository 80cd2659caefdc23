-- 0001_initial: patients, records of ECG signals, annotations and FHIR
-- resources with their versions.
--
-- Released migrations are never edited: the store keeps the SHA-256 of every
-- applied file and refuses to open a database whose history disagrees with
-- the binary. Change the schema by adding 0002_*.sql. The runner wraps each
-- file in its own transaction and keeps its own table, schema_migration; a
-- file must not contain BEGIN/COMMIT.
--
-- Times are integer milliseconds since 1970-01-01 UTC (*_ms). Text limits
-- (name lengths ...) are checked by the C code, which knows its buffers; the
-- CHECKs below state what must hold whoever writes.

-- One person whose ECG we hold. identifier is the stable external key
-- ("mitdb-100", an MRN); the integer id never leaves the database.
CREATE TABLE patient (
    id          INTEGER PRIMARY KEY,
    identifier  TEXT NOT NULL UNIQUE CHECK (length(identifier) >= 1),
    name        TEXT NOT NULL DEFAULT '',
    sex         TEXT NOT NULL DEFAULT '' CHECK (sex IN ('', 'M', 'F')),
    age_years   INTEGER CHECK (age_years IS NULL OR age_years BETWEEN 0 AND 150)
) STRICT;

-- A recording: a WFDB record imported from files, or a live stream. (source,
-- name) is its identity ("mitdb", "100"); content_sha256 identifies the
-- imported files so that a re-import can tell "same" from "different".
-- n_samples is per signal.
CREATE TABLE record (
    id              INTEGER PRIMARY KEY,
    patient_id      INTEGER REFERENCES patient(id),
    source          TEXT NOT NULL CHECK (length(source) >= 1),
    name            TEXT NOT NULL CHECK (length(name) >= 1),
    fs_hz           REAL NOT NULL CHECK (fs_hz > 0),
    n_samples       INTEGER NOT NULL CHECK (n_samples >= 0),
    n_signals       INTEGER NOT NULL CHECK (n_signals >= 0),
    content_sha256  TEXT CHECK (content_sha256 IS NULL OR
                                (length(content_sha256) = 64 AND
                                 content_sha256 NOT GLOB '*[^0-9a-f]*')),
    comments        TEXT NOT NULL DEFAULT '',
    imported_ms     INTEGER NOT NULL CHECK (imported_ms >= 0),
    UNIQUE (source, name)
) STRICT;
CREATE INDEX record_by_patient ON record(patient_id);

-- One signal (lead) of a record, with WFDB's calibration: physical value =
-- (adu - baseline_adu) / gain_adu_per_unit, in units. n_samples grows as
-- samples are appended (live streams); it is never below what is stored.
CREATE TABLE signal (
    id                   INTEGER PRIMARY KEY,
    record_id            INTEGER NOT NULL REFERENCES record(id) ON DELETE CASCADE,
    idx                  INTEGER NOT NULL CHECK (idx >= 0),
    description          TEXT NOT NULL DEFAULT '',
    units                TEXT NOT NULL DEFAULT '',
    gain_adu_per_unit    REAL NOT NULL CHECK (gain_adu_per_unit >= 0),
    baseline_adu         INTEGER NOT NULL,
    adc_zero             INTEGER NOT NULL,
    adc_resolution_bits  INTEGER NOT NULL CHECK (adc_resolution_bits BETWEEN 0 AND 32),
    initial_value        INTEGER NOT NULL,
    checksum             INTEGER NOT NULL CHECK (checksum BETWEEN -32768 AND 32767),
    n_samples            INTEGER NOT NULL CHECK (n_samples >= 0),
    UNIQUE (record_id, idx)
) STRICT;

-- Samples of a signal, 3600 to a block (CT_STORE_BLOCK_SAMPLES), as
-- little-endian int16. Block k holds samples [3600k, 3600k + n_samples); every
-- block but the last is full and there are no gaps, so a signal's stored
-- length is its last block's start_sample + n_samples. A rowid table on
-- purpose: a 7200-byte row fits one 8 KiB page of a table b-tree, while a
-- WITHOUT ROWID table (an index b-tree) keeps at most ~2 KiB of a row in its
-- page and chains the rest through overflow pages (6-14% larger, slower). The
-- UNIQUE index is the key range reads walk.
CREATE TABLE signal_block (
    signal_id     INTEGER NOT NULL REFERENCES signal(id) ON DELETE CASCADE,
    start_sample  INTEGER NOT NULL CHECK (start_sample >= 0 AND start_sample % 3600 = 0),
    n_samples     INTEGER NOT NULL CHECK (n_samples BETWEEN 1 AND 3600),
    samples       BLOB NOT NULL CHECK (length(samples) = 2 * n_samples),
    UNIQUE (signal_id, start_sample)
) STRICT;

-- Annotations of a record by an annotator ("atr" for the reference, or a
-- detector's name), in WFDB's vocabulary. aux is NULL when empty.
CREATE TABLE annotation (
    id         INTEGER PRIMARY KEY,
    record_id  INTEGER NOT NULL REFERENCES record(id) ON DELETE CASCADE,
    annotator  TEXT NOT NULL CHECK (length(annotator) >= 1),
    sample     INTEGER NOT NULL CHECK (sample >= 0),
    code       INTEGER NOT NULL CHECK (code BETWEEN 0 AND 49),
    subtype    INTEGER NOT NULL DEFAULT 0 CHECK (subtype BETWEEN -128 AND 127),
    chan       INTEGER NOT NULL DEFAULT 0 CHECK (chan BETWEEN 0 AND 255),
    num        INTEGER NOT NULL DEFAULT 0 CHECK (num BETWEEN -128 AND 127),
    aux        TEXT CHECK (aux IS NULL OR length(aux) >= 1)
) STRICT;
CREATE INDEX annotation_by_time ON annotation(record_id, annotator, sample);

-- FHIR resources. Every create, update and delete adds a row to
-- resource_version (history and vread read it); a delete adds a marker
-- (deleted = 1, body NULL). resource holds the current version of each
-- (type, id) so that read and search touch one row; it always points at an
-- existing version. resource_version is a rowid table because bodies run to
-- hundreds of KiB (an Observation with SampledData); resource's rows are
-- small, so it is keyed by (type, id) directly.
CREATE TABLE resource_version (
    type             TEXT NOT NULL CHECK (length(type) BETWEEN 1 AND 64 AND
                                          type GLOB '[A-Z]*' AND type NOT GLOB '*[^A-Za-z]*'),
    id               TEXT NOT NULL CHECK (length(id) BETWEEN 1 AND 64 AND
                                          id NOT GLOB '*[^A-Za-z0-9.-]*'),
    version          INTEGER NOT NULL CHECK (version >= 1),
    last_updated_ms  INTEGER NOT NULL CHECK (last_updated_ms >= 0),
    deleted          INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    body             TEXT CHECK ((deleted = 0) = (body IS NOT NULL)),
    PRIMARY KEY (type, id, version)
) STRICT;
-- _history of a type and of the whole server, newest first, and _since.
CREATE INDEX resource_version_by_time ON resource_version(last_updated_ms);
CREATE INDEX resource_version_by_type_time ON resource_version(type, last_updated_ms);

CREATE TABLE resource (
    type             TEXT NOT NULL,
    id               TEXT NOT NULL,
    version          INTEGER NOT NULL CHECK (version >= 1),
    last_updated_ms  INTEGER NOT NULL CHECK (last_updated_ms >= 0),
    deleted          INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    PRIMARY KEY (type, id),
    FOREIGN KEY (type, id, version) REFERENCES resource_version(type, id, version)
) STRICT, WITHOUT ROWID;
-- Search by type in _lastUpdated order, skipping deleted resources cheaply.
CREATE INDEX resource_by_type_time ON resource(type, deleted, last_updated_ms);
