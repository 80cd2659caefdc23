-- 0004_twin: the live twin's state (docs/twin.md): the ECG stream of each
-- monitored patient, the stored runs of samples it is made of, which
-- Observation brought which samples, the alerts raised on it, and the outbox
-- of reports waiting to be pushed to an upstream FHIR server.
--
-- A stream is one sample-index space: sample s was taken at
-- t0_ms + s * 1000 / fs_hz. Its policy evaluator counts time in those
-- indices, so a stream lives as long as the sampling rate and the lead set
-- stay the same. The samples themselves are stored in segments, one record
-- (0001_initial) each, because a record's samples are contiguous from 0:
-- a long gap, or a new calibration of the leads, starts a new segment of the
-- same stream. Short gaps are stored inside a segment as missing samples.

CREATE TABLE twin_stream (
    id           INTEGER PRIMARY KEY,
    patient      TEXT NOT NULL CHECK (length(patient) BETWEEN 1 AND 64),
    seq          INTEGER NOT NULL CHECK (seq >= 1),          -- 1, 2, ... per patient
    t0_ms        INTEGER NOT NULL,
    fs_hz        REAL NOT NULL CHECK (fs_hz > 0),
    leads        TEXT NOT NULL CHECK (length(leads) >= 1),   -- MDC codes in stream order, "131330,131331"
    next_sample  INTEGER NOT NULL CHECK (next_sample >= 0),  -- where the next Observation must start
    state        TEXT NOT NULL CHECK (state IN ('live', 'ended')),
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    UNIQUE (patient, seq)
) STRICT;
-- At most one live stream per patient: the database enforces what the
-- twin's per-patient lock promises.
CREATE UNIQUE INDEX twin_stream_live ON twin_stream(patient) WHERE state = 'live';

-- A run of stored samples: stream samples [first_sample, first_sample +
-- record.n_samples) are samples [0, n) of the record's signals (one signal
-- per lead, in stream order, with that segment's gain and baseline).
CREATE TABLE twin_segment (
    id            INTEGER PRIMARY KEY,
    stream_id     INTEGER NOT NULL REFERENCES twin_stream(id),
    record_id     INTEGER NOT NULL UNIQUE REFERENCES record(id),
    first_sample  INTEGER NOT NULL CHECK (first_sample >= 0),
    UNIQUE (stream_id, first_sample)
) STRICT;

-- Which Observation brought stream samples [start_sample, start_sample +
-- n_samples): the way back from a report to its source ECG, and how a
-- resent Observation is recognised as a duplicate.
CREATE TABLE twin_source (
    stream_id       INTEGER NOT NULL REFERENCES twin_stream(id),
    start_sample    INTEGER NOT NULL CHECK (start_sample >= 0),
    n_samples       INTEGER NOT NULL CHECK (n_samples >= 1),
    observation_id  TEXT NOT NULL CHECK (length(observation_id) BETWEEN 1 AND 64),
    received_ms     INTEGER NOT NULL,
    PRIMARY KEY (stream_id, start_sample)
) STRICT;
CREATE INDEX twin_source_by_observation ON twin_source(observation_id);

-- One alert of the policy: raised, maybe escalated, then cleared (the
-- patient's condition ended) or ended (monitoring stopped while it was
-- open). Its DiagnosticReport (report_id) gets a new version at every
-- transition; report_version is the latest. Samples are stream indices.
CREATE TABLE twin_alert (
    id               INTEGER PRIMARY KEY,
    patient          TEXT NOT NULL,
    stream_id        INTEGER NOT NULL REFERENCES twin_stream(id),
    rule             TEXT NOT NULL,
    priority         TEXT NOT NULL CHECK (priority IN ('low', 'medium', 'high')),
    state            TEXT NOT NULL CHECK (state IN ('open', 'cleared', 'ended')),
    onset_sample     INTEGER NOT NULL,
    onset_ms         INTEGER NOT NULL,
    raised_sample    INTEGER NOT NULL,
    raised_ms        INTEGER NOT NULL,
    end_sample       INTEGER,
    end_ms           INTEGER,
    summary          TEXT NOT NULL,
    report_id        TEXT NOT NULL UNIQUE,
    report_version   INTEGER NOT NULL CHECK (report_version >= 1),
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    acknowledged_by  TEXT,
    acknowledged_ms  INTEGER,
    CHECK ((end_sample IS NULL) = (state = 'open')),
    CHECK ((end_ms IS NULL) = (end_sample IS NULL)),
    CHECK ((acknowledged_by IS NULL) = (acknowledged_ms IS NULL))
) STRICT;
CREATE INDEX twin_alert_by_patient ON twin_alert(patient, id);
CREATE INDEX twin_alert_open ON twin_alert(state) WHERE state = 'open';

-- Reports to push upstream, one row per report version, written in the same
-- transaction as the version. The body is not copied: the deliverer reads
-- the version (and the resources it refers to) from resource_version.
-- state: pending (due at next_attempt_ms), sent, or failed (gave up:
-- last_error says why; an operator may set it back to pending).
CREATE TABLE twin_outbox (
    id                INTEGER PRIMARY KEY,
    resource_type     TEXT NOT NULL,
    resource_id       TEXT NOT NULL,
    resource_version  INTEGER NOT NULL CHECK (resource_version >= 1),
    state             TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    attempts          INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_ms   INTEGER NOT NULL,
    created_ms        INTEGER NOT NULL,
    sent_ms           INTEGER,
    last_error        TEXT NOT NULL DEFAULT '',
    UNIQUE (resource_type, resource_id, resource_version)
) STRICT;
CREATE INDEX twin_outbox_due ON twin_outbox(next_attempt_ms, id) WHERE state = 'pending';
