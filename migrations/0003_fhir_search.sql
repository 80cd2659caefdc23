-- 0003_fhir_search: what the FHIR API's search needs.
--
-- resource_search holds, for the current version of each resource, one row
-- per value of each search parameter: a token (system, code), a date range
-- [start_ms, end_ms), a reference (ref_type, ref_id) or a string. The http
-- room extracts the values from the resource when it is written and the
-- store replaces the resource's rows in the same transaction as the version
-- (src/store/search.c), so the index never describes a version other than
-- the current one. A deleted resource has no rows. History, ETags and
-- If-None-Exist need nothing new: history reads resource_version by its
-- primary key, an ETag is the version, and conditional create is a search.
--
-- kind: 0 token, 1 date, 2 reference, 3 string. Open date ends are stored as
-- the extremes of a 64-bit integer, so that every comparison is a plain one.
CREATE TABLE resource_search (
    type      TEXT NOT NULL,
    id        TEXT NOT NULL,
    param     TEXT NOT NULL CHECK (length(param) BETWEEN 1 AND 64),
    kind      INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 3),
    system    TEXT CHECK (system IS NULL OR length(system) >= 1),
    code      TEXT,
    start_ms  INTEGER,
    end_ms    INTEGER,
    ref_type  TEXT,
    ref_id    TEXT,
    text      TEXT,
    CHECK (kind <> 0 OR (code IS NOT NULL AND length(code) >= 1)),
    CHECK (kind <> 1 OR (start_ms IS NOT NULL AND end_ms IS NOT NULL AND start_ms < end_ms)),
    CHECK (kind <> 2 OR (ref_id IS NOT NULL AND length(ref_id) >= 1)),
    CHECK (kind <> 3 OR text IS NOT NULL),
    FOREIGN KEY (type, id) REFERENCES resource(type, id)
) STRICT;

-- One index per kind, each starting with (type, param) so that a clause is
-- a range scan of the values it asks for; the queries repeat "kind = N" so
-- that SQLite may use these partial indexes.
CREATE INDEX resource_search_token ON resource_search(type, param, code, system) WHERE kind = 0;
CREATE INDEX resource_search_date ON resource_search(type, param, start_ms, end_ms) WHERE kind = 1;
CREATE INDEX resource_search_ref ON resource_search(type, param, ref_id, ref_type) WHERE kind = 2;
CREATE INDEX resource_search_text ON resource_search(type, param, text) WHERE kind = 3;
-- Replacing a resource's rows, sorting by a parameter, following references
-- (_include) and :missing start from the resource.
CREATE INDEX resource_search_by_resource ON resource_search(type, id, param);
