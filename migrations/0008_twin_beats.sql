-- 0008_twin_beats: every beat the live twin's detector found, per stream
-- (docs/twin.md), so that what the detector said stays readable after the
-- twin's in-memory view of recent beats has moved on (GET /api/beats).
--
-- One row per beat, keyed by (stream, sample): a beat is stored once, and a
-- retry after a failed write, or the same beats written again, adds
-- nothing. WITHOUT ROWID: the key is the table's B-tree order, so a row is
-- its five small integers and a reader's range on (stream_id, sample) is
-- one contiguous walk. Measured (tests/store/test_beat_rows.c): 15 bytes of
-- payload, 20 bytes per beat on disk with the B-tree's cells and free
-- space, so about 2.2 MB per patient-day at 75 beats a minute, under 2% of
-- that day's two leads of samples.
--
-- Values are stored as integers to stay small: the class as its MIT
-- mnemonic, the detector's averaged heart rate in tenths of a beat per
-- minute (0 unknown), the RR interval in whole milliseconds (0 for a
-- stream's or a detector's first beat). Samples are stream indices: sample
-- s was taken at twin_stream.t0_ms + s * 1000 / fs_hz.
CREATE TABLE twin_beat (
    stream_id  INTEGER NOT NULL REFERENCES twin_stream(id),
    sample     INTEGER NOT NULL CHECK (sample >= 0),
    cls        TEXT NOT NULL CHECK (cls IN ('N', 'A', 'V', 'F', 'Q')),
    hr_dbpm    INTEGER NOT NULL CHECK (hr_dbpm BETWEEN 0 AND 10000),
    rr_ms      INTEGER NOT NULL CHECK (rr_ms >= 0),
    PRIMARY KEY (stream_id, sample)
) STRICT, WITHOUT ROWID;
