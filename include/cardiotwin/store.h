/* store: cardiotwin's SQLite database. Opens a file in WAL mode with foreign
 * keys on and a busy timeout, applies the embedded migrations
 * (migrations/NNNN_name.sql) in order, each in its own transaction, records
 * what was applied, and refuses a database whose schema is newer than this
 * binary. It holds patients, records of ECG signals (samples stored as blocks
 * of little-endian int16, never a row per sample), annotations, and FHIR
 * resources with their versions.
 *
 * A ct_store is one connection: use it from one thread at a time. */
#ifndef CARDIOTWIN_STORE_H
#define CARDIOTWIN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/error.h"

typedef struct ct_store ct_store;

/* Samples per stored block: 10 s at 360 Hz. Blocks are the unit of I/O. */
#define CT_STORE_BLOCK_SAMPLES 3600

/* Largest FHIR resource body stored (bytes). */
#define CT_STORE_RESOURCE_MAX_BYTES (16 * 1024 * 1024)

/* Opens (creating if needed, mode 0600) and migrates. ":memory:" opens a
 * private in-memory database (tests). CT_EVERSION: written by a newer
 * cardiotwin. CT_EDB: not a database, another application's, a migration
 * history that differs from this binary's (an edited migration), or SQLite
 * failed; CT_EIO: the file cannot be created. Messages start with the path. */
int ct_store_open(const char *path, ct_store **out, ct_error *err);
/* The same with an explicit list of migrations instead of the embedded one
 * (NNNN_name.sql, versions 1..n in order): for tests and tools that must
 * exercise the migration rules. */
struct ct_embedded_file;
int ct_store_open_migrations(const char *path, const struct ct_embedded_file *migrations,
                             size_t n_migrations, ct_store **out, ct_error *err);
void ct_store_close(ct_store *st);

/* Schema version of the open database, and the newest this binary knows. */
int ct_store_schema_version(ct_store *st);
int ct_store_schema_version_latest(void);

/* Transactions (BEGIN IMMEDIATE). Nesting is an error. Every write function
 * is all-or-nothing by itself; inside a caller's transaction a failed call
 * leaves the transaction as it was before the call (a savepoint), unless
 * SQLite itself had to roll everything back (I/O error, disk full), in which
 * case later calls and ct_store_commit fail and say so. ct_store_rollback
 * does nothing when no transaction is open. */
int ct_store_begin(ct_store *st, ct_error *err);
int ct_store_commit(ct_store *st, ct_error *err);
void ct_store_rollback(ct_store *st);

/* ---- the write-ahead log (docs/store.md, "Checkpoints") ------------------
 * SQLite's automatic checkpoint runs inside the COMMIT that crossed 1000 WAL
 * pages, two fsyncs included, so one request in ~25 pays for the others. A
 * server turns it off on its request connections and checkpoints from a
 * thread of its own instead. */

/* Turns the automatic checkpoint of this connection off and calls
 * on_commit(user, wal_pages) after each of its commits with the WAL's size
 * in pages (SQLite's wal hook, on the committing thread, after the write
 * lock is released: it should only signal), and before_begin(user) (may be NULL) in ct_store_begin before
 * the write lock is asked for: the place where a checkpointer that must
 * empty the WAL can hold new transactions back (a stream of writers would
 * otherwise always take the lock first). on_commit NULL restores the
 * automatic checkpoint. No effect on an in-memory database. */
void ct_store_wal_watch(ct_store *st, void (*on_commit)(void *user, int wal_pages), void (*before_begin)(void *user),
                        void *user);

typedef enum ct_store_checkpoint_mode {
    CT_STORE_CHECKPOINT_PASSIVE,   /* copies what it can; never waits, never blocks writers */
    CT_STORE_CHECKPOINT_TRUNCATE   /* waits for writers (busy wait), copies everything, empties the WAL */
} ct_store_checkpoint_mode;

/* Copies WAL frames into the database file (and syncs both, as the
 * connection's synchronous setting says). *wal_pages: frames in the WAL
 * before, *copied: frames now in the database (equal when complete); either
 * may be NULL. A PASSIVE checkpoint that finds the WAL in use does what it
 * can and returns 0; CT_EDB when TRUNCATE could not get the locks within
 * 250 ms (its caller may be holding writers back), or on an I/O error. */
int ct_store_checkpoint(ct_store *st, ct_store_checkpoint_mode mode, int *wal_pages, int *copied, ct_error *err);

/* ---- patients ---------------------------------------------------------- */
typedef struct ct_store_patient {
    int64_t id;
    char identifier[128];   /* stable external id, e.g. "mitdb-100" */
    char name[128];         /* display name, may be empty */
    char sex[8];            /* "M", "F" or "" */
    int age_years;          /* -1 when unknown */
} ct_store_patient;

/* Finds the patient by identifier or inserts it; fills p->id. An existing
 * patient is left as stored (name, sex, age are not overwritten). */
int ct_store_patient_ensure(ct_store *st, ct_store_patient *p, ct_error *err);
int ct_store_patient_get(ct_store *st, const char *identifier, ct_store_patient *out, ct_error *err);

/* ---- records and signals -------------------------------------------------- */
typedef struct ct_store_record {
    int64_t id;
    int64_t patient_id;
    char name[64];            /* e.g. "100" */
    char source[64];          /* e.g. "mitdb" */
    double fs_hz;
    int64_t n_samples;        /* per signal */
    int n_signals;
    char content_sha256[65];  /* hex SHA-256 of the imported files, identity for re-imports */
    char comments[4096];
    int64_t imported_ms;      /* UTC ms */
} ct_store_record;

typedef struct ct_store_signal {
    int64_t id;
    int64_t record_id;
    int index;                /* 0-based signal number in the record */
    char description[128];    /* lead, e.g. "MLII" */
    char units[32];
    double gain_adu_per_unit;
    int baseline_adu;
    int adc_zero;
    int adc_resolution_bits;
    int initial_value;
    int checksum;
    int64_t n_samples;
} ct_store_signal;

/* Finds a record by (source, name). CT_ENOTFOUND when absent. */
int ct_store_record_find(ct_store *st, const char *source, const char *name,
                         ct_store_record *out, ct_error *err);
/* Inserts; fills rec->id. CT_EEXIST if (source, name) is taken.
 * patient_id 0: no patient. imported_ms 0: now. content_sha256 "": none. */
int ct_store_record_insert(ct_store *st, ct_store_record *rec, ct_error *err);
/* Deletes a record with its signals, samples and annotations.
 * CT_ENOTFOUND when absent. */
int ct_store_record_delete(ct_store *st, int64_t record_id, ct_error *err);
/* Inserts; fills sig->id. CT_ENOTFOUND if the record does not exist,
 * CT_EEXIST if the record already has a signal with that index. */
int ct_store_signal_insert(ct_store *st, ct_store_signal *sig, ct_error *err);
/* Signals of a record ordered by index; *out is malloc'd. */
int ct_store_signals_list(ct_store *st, int64_t record_id, ct_store_signal **out,
                          size_t *n_out, ct_error *err);

/* Appends n samples starting at start_sample, in blocks of
 * CT_STORE_BLOCK_SAMPLES. Stored samples are contiguous from sample 0 and
 * never change: start_sample may be at most the number stored (no gaps);
 * samples that overlap stored ones must equal them (writing the same data
 * again is harmless), else CT_EEXIST and nothing is written. The
 * signal's and its record's n_samples grow to cover what is stored (a live
 * stream). CT_ENOTFOUND: no such signal. */
int ct_store_samples_write(ct_store *st, int64_t signal_id, int64_t start_sample,
                           const int16_t *samples, size_t n, ct_error *err);
/* Reads up to n samples from start_sample into out; *n_read tells how many
 * (fewer at the end of what is stored). CT_ENOTFOUND: no such signal. */
int ct_store_samples_read(ct_store *st, int64_t signal_id, int64_t start_sample,
                          int16_t *out, size_t n, size_t *n_read, ct_error *err);
/* Number of samples stored for the signal: where the next append starts. */
int ct_store_samples_stored(ct_store *st, int64_t signal_id, int64_t *n_out, ct_error *err);

/* ---- annotations ------------------------------------------------------------ */
typedef struct ct_store_annotation {
    int64_t sample;
    int code;                 /* MIT annotation code */
    int subtype;
    int chan;
    int num;
    char aux[256];            /* NUL-terminated, may be empty */
} ct_store_annotation;

/* Adds n annotations of `annotator` (1..63 bytes) to the record, all or
 * none. Fields are checked against MIT's ranges (code 0..49, subtype and num
 * -128..127, chan 0..255, sample >= 0). CT_ENOTFOUND: no such record. */
int ct_store_annotations_write(ct_store *st, int64_t record_id, const char *annotator,
                               const ct_store_annotation *ann, size_t n, ct_error *err);
/* The record's annotations by `annotator`, in sample order (ties in the
 * order written); *out is malloc'd (NULL when *n_out is 0). */
int ct_store_annotations_read(ct_store *st, int64_t record_id, const char *annotator,
                              ct_store_annotation **out, size_t *n_out, ct_error *err);

/* ---- FHIR resources with versions ---------------------------------------------- */
/* type is a FHIR resource type ("Observation"), id a FHIR id
 * ([A-Za-z0-9.-]{1,64}). Versions count from 1; last_updated_ms (UTC) never
 * goes backwards within one resource, even if the clock does. */
/* Stores a new version of (type, id); version 1 when new, the next one after
 * the latest otherwise (also after a delete). *version_out gets the version
 * written. json (len bytes, no NUL inside, at most
 * CT_STORE_RESOURCE_MAX_BYTES) is stored as given. */
int ct_store_resource_put(ct_store *st, const char *type, const char *id,
                          const char *json, size_t len, int64_t *version_out, ct_error *err);
/* Reads version `version` (0: the latest). *json is malloc'd and
 * NUL-terminated; it is NULL when that version is a deletion marker, and then
 * *deleted is 1. CT_ENOTFOUND when there is no such version. Any of the
 * output pointers may be NULL. */
int ct_store_resource_get(ct_store *st, const char *type, const char *id, int64_t version,
                          char **json, int64_t *version_out, int64_t *last_updated_ms,
                          int *deleted, ct_error *err);
/* Writes a deletion marker as a new version. CT_ENOTFOUND when absent.
 * Deleting a deleted resource writes nothing and gives the marker's
 * version (FHIR: delete is idempotent). */
int ct_store_resource_delete(ct_store *st, const char *type, const char *id,
                             int64_t *version_out, ct_error *err);

/* ---- FHIR search index, history and search (src/store/search.c) -------------- */
/* A resource written with ct_store_resource_write carries the values of its
 * search parameters (extracted by the caller, who knows FHIR); the store
 * keeps them for the current version only and runs searches over them.
 * Resources written with ct_store_resource_put have no index rows and are
 * found only by _id and _lastUpdated. */
typedef enum ct_store_index_kind {
    CT_STORE_INDEX_TOKEN = 0,     /* system (optional) and code */
    CT_STORE_INDEX_DATE = 1,      /* [start_ms, end_ms) */
    CT_STORE_INDEX_REFERENCE = 2, /* ref_type (optional) and ref_id */
    CT_STORE_INDEX_STRING = 3     /* text */
} ct_store_index_kind;

/* Open ends of a date range. */
#define CT_STORE_TIME_MIN INT64_MIN
#define CT_STORE_TIME_MAX INT64_MAX
/* Most index values one version may carry; more is CT_ELIMIT. */
#define CT_STORE_INDEX_MAX_ENTRIES 4096
/* Longest token, reference or string value indexed (bytes). */
#define CT_STORE_INDEX_MAX_TEXT 1024

typedef struct ct_store_index_entry {
    const char *param;            /* search parameter, e.g. "code" (1..64 bytes) */
    ct_store_index_kind kind;
    const char *system;           /* token: NULL when the coding has none */
    const char *code;             /* token: required */
    int64_t start_ms, end_ms;     /* date: start < end */
    const char *ref_type;         /* reference: NULL when the type is not known */
    const char *ref_id;           /* reference: required */
    const char *text;             /* string: required */
} ct_store_index_entry;

/* Facts about one version, as written or found. */
typedef struct ct_store_version_info {
    int64_t version;              /* the version written (or, on CT_EEXIST, the current one; 0: none) */
    int64_t last_updated_ms;
    int deleted;                  /* the version is a deletion marker */
    int created;                  /* the write made the resource exist (new, or after a delete) */
} ct_store_version_info;

typedef struct ct_store_write {
    const char *type, *id;
    const char *json;             /* the body, stored as given */
    size_t len;
    int64_t if_match;             /* > 0: only if the current version is this one and not deleted */
    int if_absent;                /* 1: only if (type, id) has never been written */
    const ct_store_index_entry *index;
    size_t n_index;
} ct_store_write;

/* Writes a new version with its index rows, all or nothing (its own
 * transaction, or a savepoint of the caller's). CT_EEXIST when a
 * precondition fails (if_match is not the current version, or if_absent and
 * the resource exists); out->version then holds the current version (0 when
 * there is none) and nothing is written. CT_EINVAL or CT_ELIMIT for an index
 * entry the schema would refuse, naming it. */
int ct_store_resource_write(ct_store *st, const ct_store_write *w, ct_store_version_info *out,
                            ct_error *err);
/* Deletes (a marker version) and drops the index rows. if_match as above.
 * CT_ENOTFOUND when the resource never existed. Deleting a deleted
 * resource writes nothing: out describes the marker. */
int ct_store_resource_remove(ct_store *st, const char *type, const char *id, int64_t if_match,
                             ct_store_version_info *out, ct_error *err);

/* One version read back. json is malloc'd (NULL for a deletion marker). */
typedef struct ct_store_row {
    char type[65];
    char id[65];
    int64_t version;
    int64_t last_updated_ms;
    int deleted;
    char *json;
    size_t len;
} ct_store_row;

typedef struct ct_store_rows {
    ct_store_row *rows;
    size_t n, cap;
    size_t bytes;                 /* sum of the bodies' lengths */
} ct_store_rows;
void ct_store_rows_free(ct_store_rows *r);

/* Versions of one resource, newest first: `count` of them after skipping
 * `offset`, and (total, may be NULL) how many there are in all. since_ms >= 0
 * keeps versions written at or after it. CT_ENOTFOUND when the resource
 * never existed. Bodies stop being added once the page holds
 * CT_STORE_PAGE_MAX_BYTES (at least one row is always returned). */
#define CT_STORE_PAGE_MAX_BYTES ((size_t)32 * 1024 * 1024)
#define CT_STORE_PAGE_MAX_ROWS 1000
int ct_store_resource_history(ct_store *st, const char *type, const char *id, int64_t since_ms,
                              int64_t offset, int count, ct_store_rows *out, int64_t *total,
                              ct_error *err);

/* The first indexed reference of `param` of the current version, e.g. the
 * patient of an Observation. CT_ENOTFOUND when there is none. */
int ct_store_resource_reference(ct_store *st, const char *type, const char *id, const char *param,
                                char *ref_id, size_t cap, ct_error *err);

/* ---- search ---- */
typedef enum ct_store_cmp {
    CT_STORE_CMP_EQ = 0,  /* the value's range lies within [start, end) */
    CT_STORE_CMP_NE,      /* not EQ */
    CT_STORE_CMP_GT,      /* the value reaches past end */
    CT_STORE_CMP_LT,      /* the value starts before start */
    CT_STORE_CMP_GE,      /* GT or EQ */
    CT_STORE_CMP_LE,      /* LT or EQ */
    CT_STORE_CMP_SA,      /* the value starts at or after end */
    CT_STORE_CMP_EB,      /* the value ends at or before start */
    CT_STORE_CMP_OVERLAP  /* the ranges overlap (FHIR's ap, once widened by the caller) */
} ct_store_cmp;

typedef enum ct_store_string_match {
    CT_STORE_STRING_PREFIX = 0,   /* case-insensitive (ASCII) starts-with */
    CT_STORE_STRING_EXACT,
    CT_STORE_STRING_CONTAINS      /* case-insensitive (ASCII) */
} ct_store_string_match;

typedef struct ct_store_search_value {
    const char *system;           /* token: NULL any system, "" no system */
    const char *code;             /* token: NULL any code; _id: the id */
    ct_store_cmp cmp;             /* date, _lastUpdated */
    int64_t start_ms, end_ms;
    const char *ref_type;         /* reference: NULL any type */
    const char *ref_id;
    const char *text;             /* string */
    ct_store_string_match match;
} ct_store_search_value;

typedef enum ct_store_field {
    CT_STORE_FIELD_INDEX = 0,     /* an indexed parameter (param, kind) */
    CT_STORE_FIELD_ID,            /* Resource.id (values' code) */
    CT_STORE_FIELD_LAST_UPDATED   /* meta.lastUpdated (values' dates, 1 ms wide) */
} ct_store_field;

typedef struct ct_store_search_clause {
    ct_store_field field;
    const char *param;
    ct_store_index_kind kind;
    int missing;                  /* -1: match the values; 1: has no value; 0: has one */
    size_t n_values;              /* ORed; >= 1 unless missing >= 0 */
    const ct_store_search_value *values;
} ct_store_search_clause;

typedef struct ct_store_sort_key {
    ct_store_field field;
    const char *param;            /* INDEX: a date or token parameter */
    ct_store_index_kind kind;
    int descending;
} ct_store_sort_key;

#define CT_STORE_SEARCH_MAX_CLAUSES 64
#define CT_STORE_SEARCH_MAX_VALUES 256
#define CT_STORE_SEARCH_MAX_SORT 8

typedef struct ct_store_search_query {
    const char *type;
    size_t n_clauses;             /* ANDed */
    const ct_store_search_clause *clauses;
    size_t n_sort;                /* then by id; none: by last update, then id */
    const ct_store_sort_key *sort;
    int64_t offset;
    int count;                    /* 0..CT_STORE_PAGE_MAX_ROWS; 0: the total only */
    const char *include_param;    /* NULL, or follow this reference parameter of the matches ... */
    const char *include_type;     /* ... to the current resources of this type */
} ct_store_search_query;

typedef struct ct_store_search_result {
    int64_t total;                /* all matches, whatever the page */
    ct_store_rows matches;        /* this page, in order; may stop short at CT_STORE_PAGE_MAX_BYTES */
    ct_store_rows included;       /* distinct, current, not deleted, not among the matches */
} ct_store_search_result;

/* Runs a search on one read snapshot (or inside the caller's transaction).
 * Deleted resources never match. CT_EINVAL or CT_ELIMIT for a query that
 * breaks the limits above; out is cleared first and freed by the caller
 * with ct_store_search_result_free, on success and failure alike. */
int ct_store_search(ct_store *st, const ct_store_search_query *q, ct_store_search_result *out,
                    ct_error *err);
void ct_store_search_result_free(ct_store_search_result *r);

/* ---- audit log rows (the audit room's storage) ------------------------------ */
/* The store keeps the audit log's rows and checkpoints; the audit room
 * (include/cardiotwin/audit.h) owns their meaning: hashing, signing,
 * verifying. Use that room's API; these are its primitives. Text buffers
 * hold at most their size - 1 bytes. */
#define CT_STORE_AUDIT_DETAIL_MAX 8192

typedef struct ct_store_audit_row {
    int64_t seq;                  /* 1, 2, 3 ... */
    int64_t time_ms;              /* UTC ms */
    char actor[128];
    char actor_role[32];
    char client[64];
    char action[32];
    char resource_type[64];
    char resource_id[128];
    int64_t resource_version;     /* 0: none */
    char patient[128];
    int outcome;                  /* 0, 4, 8, 12 */
    char outcome_desc[256];
    char request_id[128];
    int has_detail;               /* 0: detail is NULL (stored as NULL) */
    char detail[CT_STORE_AUDIT_DETAIL_MAX + 1];
    unsigned char prev_hash[32];
    unsigned char hash[32];
} ct_store_audit_row;

/* Fills row->hash (and may adjust row->time_ms) once row->seq and
 * row->prev_hash are known. Returns 0 or a CT_E... code. */
typedef int (*ct_store_audit_seal_fn)(void *ctx, ct_store_audit_row *row, ct_error *err);

/* Appends one row as one operation (its own transaction, or a savepoint of
 * the caller's): reads the log's last entry under the write lock, sets
 * row->seq to its seq + 1 and row->prev_hash to its hash (32 zero bytes for
 * the first entry), calls seal, and inserts. The caller's other writes in
 * the same transaction commit or roll back together with the row. */
int ct_store_audit_append_row(ct_store *st, ct_store_audit_row *row, ct_store_audit_seal_fn seal,
                              void *ctx, ct_error *err);
/* The last entry's seq and hash; *seq 0 (and hash zeroed) when empty. */
int ct_store_audit_last(ct_store *st, int64_t *seq, unsigned char hash[32], ct_error *err);
/* One entry. CT_ENOTFOUND when there is no entry seq. */
int ct_store_audit_get(ct_store *st, int64_t seq, ct_store_audit_row *out, ct_error *err);

/* Rows in seq order from from_seq on, read with one statement. next returns
 * 1 with a row, 0 at the end, or a negative CT_E... code; out->seq is set
 * even when the row cannot be read (a value too long, a hash that is not
 * 32 bytes: CT_EFORMAT), so that the caller can name the entry. */
typedef struct ct_store_audit_iter ct_store_audit_iter;
int ct_store_audit_iter_open(ct_store *st, int64_t from_seq, ct_store_audit_iter **out, ct_error *err);
int ct_store_audit_iter_next(ct_store_audit_iter *it, ct_store_audit_row *out, ct_error *err);
void ct_store_audit_iter_close(ct_store_audit_iter *it);

typedef struct ct_store_checkpoint_row {
    int64_t id;                   /* 1, 2, 3 ... */
    int64_t size;                 /* entries 1..size are signed */
    unsigned char head_hash[32];
    unsigned char merkle_root[32];
    int64_t time_ms;
    char key_id[65];              /* hex SHA-256 of the raw Ed25519 public key */
    unsigned char signature[64];
    int n_frontier;               /* popcount(size) when well formed */
    unsigned char frontier[64][32];
} ct_store_checkpoint_row;

/* Inserts a checkpoint (the database refuses one that does not follow the
 * last or names a head that is not in the log). */
int ct_store_checkpoint_insert(ct_store *st, const ct_store_checkpoint_row *cp, ct_error *err);
/* The newest checkpoint; CT_ENOTFOUND when there is none. */
int ct_store_checkpoint_latest(ct_store *st, ct_store_checkpoint_row *out, ct_error *err);
/* The checkpoint with the largest size <= max_size; CT_ENOTFOUND if none. */
int ct_store_checkpoint_at_or_below(ct_store *st, int64_t max_size, ct_store_checkpoint_row *out,
                                    ct_error *err);
/* Checkpoints in id order (same contract as the row iterator). */
typedef struct ct_store_checkpoint_iter ct_store_checkpoint_iter;
int ct_store_checkpoint_iter_open(ct_store *st, ct_store_checkpoint_iter **out, ct_error *err);
int ct_store_checkpoint_iter_next(ct_store_checkpoint_iter *it, ct_store_checkpoint_row *out,
                                  ct_error *err);
void ct_store_checkpoint_iter_close(ct_store_checkpoint_iter *it);

/* A read snapshot: every read until ct_store_audit_read_end sees the same
 * committed state, without taking the write lock (a deferred transaction).
 * Inside a caller's transaction it does nothing (*started = 0), since that
 * transaction is already a snapshot. No writes in between. */
int ct_store_audit_read_begin(ct_store *st, int *started, ct_error *err);
void ct_store_audit_read_end(ct_store *st, int started);

/* ---- searching the audit log (src/store/audit_search.c) ----------------------
 * A query is an AND of clauses; a clause is an OR of terms; a term is an
 * AND of at most CT_STORE_AUDIT_TERM_CONDS conditions on one row's
 * columns. Values are always bound, never written into the SQL. The
 * indexes of migrations 0002 and 0007 (patient, time, actor, action) make
 * a selective clause one index walk; an unselective query is a scan of the
 * log in seq order, stopped at the page. */
#define CT_STORE_AUDIT_MAX_CLAUSES 16
#define CT_STORE_AUDIT_MAX_TERMS 64       /* over the whole query */
#define CT_STORE_AUDIT_TERM_CONDS 4
#define CT_STORE_AUDIT_PAGE_MAX 200       /* rows one page may ask for */
#define CT_STORE_AUDIT_OFFSET_MAX 1000000

typedef enum ct_store_audit_col {
    CT_STORE_AUDIT_COL_SEQ = 0,       /* integer */
    CT_STORE_AUDIT_COL_TIME,          /* integer, time_ms */
    CT_STORE_AUDIT_COL_OUTCOME,       /* integer */
    CT_STORE_AUDIT_COL_ACTOR,         /* text from here on */
    CT_STORE_AUDIT_COL_ROLE,
    CT_STORE_AUDIT_COL_ACTION,
    CT_STORE_AUDIT_COL_RESOURCE_TYPE,
    CT_STORE_AUDIT_COL_RESOURCE_ID,
    CT_STORE_AUDIT_COL_PATIENT,
    CT_STORE_AUDIT_COL_REQUEST_ID,
    CT_STORE_AUDIT_COL_DETAIL         /* PRESENT / ABSENT only (NULL or not) */
} ct_store_audit_col;

typedef enum ct_store_audit_op {
    CT_STORE_AUDIT_EQ = 0,    /* text = text; integer = lo */
    CT_STORE_AUDIT_RANGE,     /* integer in [lo, hi) */
    CT_STORE_AUDIT_OUTSIDE,   /* integer not in [lo, hi) */
    CT_STORE_AUDIT_PRESENT,   /* text <> ''; detail IS NOT NULL */
    CT_STORE_AUDIT_ABSENT     /* text = ''; detail IS NULL */
} ct_store_audit_op;

typedef struct ct_store_audit_cond {
    ct_store_audit_col col;
    ct_store_audit_op op;
    const char *text;         /* EQ on a text column */
    int64_t lo, hi;           /* integer columns */
} ct_store_audit_cond;

typedef struct ct_store_audit_term {
    size_t n;                 /* 0: matches nothing (a value that can never match) */
    ct_store_audit_cond c[CT_STORE_AUDIT_TERM_CONDS];
} ct_store_audit_term;

typedef struct ct_store_audit_clause {
    size_t n_terms;           /* >= 1, ORed */
    const ct_store_audit_term *terms;
} ct_store_audit_clause;

typedef enum ct_store_audit_order {
    CT_STORE_AUDIT_NEWEST_FIRST = 0,  /* seq descending: the log's own order, reversed */
    CT_STORE_AUDIT_TIME_ASC,          /* time_ms, then seq */
    CT_STORE_AUDIT_TIME_DESC
} ct_store_audit_order;

typedef struct ct_store_audit_query {
    size_t n_clauses;         /* ANDed; 0: every entry */
    ct_store_audit_clause clauses[CT_STORE_AUDIT_MAX_CLAUSES];
    int64_t max_seq;          /* > 0: only entries 1..max_seq (a page's snapshot) */
    ct_store_audit_order order;
    int64_t offset;           /* 0..CT_STORE_AUDIT_OFFSET_MAX */
    int count;                /* 0..CT_STORE_AUDIT_PAGE_MAX; 0: total only */
} ct_store_audit_query;

/* The SQL text of q: the page (count_only 0: "SELECT seq ... ORDER BY ...
 * LIMIT ? OFFSET ?") or the total (count_only 1: "SELECT count(*) ...").
 * Pure: exposed for tests. CT_EINVAL for a query outside the limits above
 * (naming what), CT_ELIMIT when cap is too small. */
int ct_store_audit_query_sql(const ct_store_audit_query *q, int count_only, char *sql, size_t cap,
                             ct_error *err);
/* Runs q: the seqs of the page's entries, in order, into seqs (cap >=
 * q->count), *n of them; *total (may be NULL) every match. Read the
 * entries with ct_store_audit_get; inside ct_store_audit_read_begin/_end
 * both reads see one snapshot. */
int ct_store_audit_find(ct_store *st, const ct_store_audit_query *q, int64_t *seqs, size_t cap, size_t *n,
                        int64_t *total, ct_error *err);

/* ---- the live twin's rows (src/store/twin_rows.c, migrations/0004_twin.sql) ---- */
/* The twin room (include/cardiotwin/twin.h) owns what these rows mean;
 * these are its primitives. Samples are stream sample indices, times UTC ms.
 * Each write is one operation: its own transaction, or a savepoint of the
 * caller's. */

/* 1 while a transaction begun with ct_store_begin is open on st. */
int ct_store_in_transaction(const ct_store *st);

#define CT_STORE_TWIN_LEADS_MAX 128   /* "131330,131331,...": 12 codes fit */

typedef struct ct_store_twin_stream {
    int64_t id;
    char patient[65];             /* FHIR Patient id */
    int64_t seq;                  /* 1, 2, ... per patient, set by insert */
    int64_t t0_ms;                /* time of sample 0 */
    double fs_hz;
    char leads[CT_STORE_TWIN_LEADS_MAX]; /* MDC codes in stream order, comma-separated */
    int64_t next_sample;          /* where the next Observation must start */
    int live;                     /* 1 live, 0 ended */
    int64_t created_ms, updated_ms;
} ct_store_twin_stream;

/* Inserts a live stream; fills s->id, s->seq and the times (created now).
 * CT_EEXIST when the patient already has a live stream. */
int ct_store_twin_stream_insert(ct_store *st, ct_store_twin_stream *s, ct_error *err);
/* Moves a stream's next_sample (never backwards: CT_EINVAL) and, with
 * live 0, ends it. CT_ENOTFOUND when there is no such stream. */
int ct_store_twin_stream_update(ct_store *st, int64_t stream_id, int64_t next_sample, int live,
                                ct_error *err);
/* Every live stream, in id order; *out is malloc'd (NULL when none). */
int ct_store_twin_streams_live(ct_store *st, ct_store_twin_stream **out, size_t *n_out,
                               ct_error *err);

typedef struct ct_store_twin_segment {
    int64_t id;
    int64_t stream_id;
    int64_t record_id;
    int64_t first_sample;         /* stream index of the record's sample 0 */
    int64_t n_samples;            /* the record's, when read */
} ct_store_twin_segment;

/* Inserts; fills seg->id. The record must exist (CT_ENOTFOUND). */
int ct_store_twin_segment_insert(ct_store *st, ct_store_twin_segment *seg, ct_error *err);
/* The segment holding stream sample `sample` (first_sample <= sample <
 * first_sample + n), or with sample -1 the stream's last segment.
 * CT_ENOTFOUND when there is none. */
int ct_store_twin_segment_at(ct_store *st, int64_t stream_id, int64_t sample,
                             ct_store_twin_segment *out, ct_error *err);

/* Records that Observation observation_id brought stream samples
 * [start_sample, start_sample + n_samples). */
int ct_store_twin_source_insert(ct_store *st, int64_t stream_id, int64_t start_sample,
                                int64_t n_samples, const char *observation_id, ct_error *err);
/* Where a patient's Observation went: CT_ENOTFOUND when the twin never
 * took it. stream_id, start_sample, n_samples may be NULL. */
int ct_store_twin_source_find(ct_store *st, const char *patient, const char *observation_id,
                              int64_t *stream_id, int64_t *start_sample, int64_t *n_samples,
                              ct_error *err);
/* Ids of the Observations whose samples overlap stream samples
 * [from_sample, to_sample), in time order, at most max of them written to
 * ids; *n_total (may be NULL) counts them all. */
int ct_store_twin_sources(ct_store *st, int64_t stream_id, int64_t from_sample, int64_t to_sample,
                          char (*ids)[65], size_t max, size_t *n_out, size_t *n_total,
                          ct_error *err);

typedef struct ct_store_twin_alert {
    int64_t id;
    char patient[65];
    int64_t stream_id;
    char rule[32];                /* ct_policy_rule_name */
    char priority[8];             /* "low", "medium", "high" */
    char state[8];                /* "open", "cleared", "ended" */
    int64_t onset_sample, onset_ms;
    int64_t raised_sample, raised_ms;
    int64_t end_sample, end_ms;   /* -1 while open */
    char summary[256];
    char report_id[65];           /* its DiagnosticReport */
    int64_t report_version;
    int64_t created_ms, updated_ms;
    char acknowledged_by[128];    /* "" when not acknowledged */
    int64_t acknowledged_ms;      /* -1 when not acknowledged */
} ct_store_twin_alert;

/* Inserts; fills a->id (created_ms and updated_ms are written as given). */
int ct_store_twin_alert_insert(ct_store *st, ct_store_twin_alert *a, ct_error *err);
/* Writes priority, state, end, summary, report_version and updated_ms of
 * alert a->id. CT_ENOTFOUND when there is no such alert. */
int ct_store_twin_alert_update(ct_store *st, const ct_store_twin_alert *a, ct_error *err);
int ct_store_twin_alert_get(ct_store *st, int64_t id, ct_store_twin_alert *out, ct_error *err);
/* Marks the alert acknowledged by `by` at at_ms. CT_ENOTFOUND: no such
 * alert; CT_EEXIST: already acknowledged (out, may be NULL, says by whom). */
int ct_store_twin_alert_acknowledge(ct_store *st, int64_t id, const char *by, int64_t at_ms,
                                    ct_store_twin_alert *out, ct_error *err);
/* A patient's alerts (patient NULL: everyone's), newest first, open ones
 * only with open_only; at most max. *out is malloc'd (NULL when none). */
int ct_store_twin_alerts_list(ct_store *st, const char *patient, int open_only, size_t max,
                              ct_store_twin_alert **out, size_t *n_out, ct_error *err);

typedef struct ct_store_twin_outbox {
    int64_t id;
    char resource_type[65];
    char resource_id[65];
    int64_t resource_version;
    char state[8];                /* "pending", "sent", "failed" */
    int attempts;
    int64_t next_attempt_ms;
    int64_t created_ms;
    int64_t sent_ms;              /* -1 until sent */
    char last_error[256];
} ct_store_twin_outbox;

/* Queues a resource version for delivery, due at once. Queuing the same
 * version twice writes nothing (it is delivered once). */
int ct_store_twin_outbox_add(ct_store *st, const char *resource_type, const char *resource_id,
                             int64_t resource_version, ct_error *err);
/* Pending rows due at now_ms, oldest first, at most max. *out malloc'd. */
int ct_store_twin_outbox_due(ct_store *st, int64_t now_ms, size_t max, ct_store_twin_outbox **out,
                             size_t *n_out, ct_error *err);
/* Records an attempt: state "sent" (sent_ms = now), "pending" (retry at
 * next_attempt_ms) or "failed"; attempts is incremented. CT_ENOTFOUND. */
int ct_store_twin_outbox_mark(ct_store *st, int64_t id, const char *state, int64_t next_attempt_ms,
                              const char *last_error, ct_error *err);
/* Records one attempt that carried a resource's state as of upto_version,
 * for every row of that resource up to that version not yet sent (the
 * latest state supersedes the versions before it): "sent" (sent_ms now),
 * "pending" (next attempt at next_attempt_ms) or "failed", with last_error;
 * row `id`, the one attempted, counts the attempt. CT_ENOTFOUND when no
 * row changed. */
int ct_store_twin_outbox_settle(ct_store *st, int64_t id, const char *resource_type,
                                const char *resource_id, int64_t upto_version, const char *state,
                                int64_t next_attempt_ms, const char *last_error, ct_error *err);

/* ---- API tokens (src/store/token_rows.c, migrations/0005_tokens.sql) ---- */
/* The http room (include/cardiotwin/http.h: ct_http_token_create ...) owns
 * what a token is and grants; these are its rows. Only the SHA-256 of a
 * token is stored. Times are UTC ms, 0 for "none" (never expires, not
 * revoked, never used). Rows are never deleted and names never reused. */
#define CT_STORE_TOKEN_NAME_MAX 64
#define CT_STORE_TOKEN_SCOPES_MAX 255

typedef struct ct_store_token {
    int64_t id;                   /* set by insert */
    char name[CT_STORE_TOKEN_NAME_MAX + 1];   /* [A-Za-z][A-Za-z0-9._-]* */
    unsigned char sha256[32];     /* of the token's characters */
    char role[16];                /* "device", "clinician", "auditor", "admin" */
    char scopes[CT_STORE_TOKEN_SCOPES_MAX + 1]; /* SMART scopes, space-separated */
    char patient[65];             /* FHIR Patient id the token is bound to, "" if none */
    int64_t created_ms;           /* 0 on insert: now */
    char created_by[128];         /* the operator */
    int64_t expires_ms;           /* 0: never */
    int64_t revoked_ms;           /* 0: not revoked */
    char revoked_by[128];
    int64_t last_used_ms;         /* 0: never used */
} ct_store_token;

/* Inserts; fills t->id (and t->created_ms when it was 0; revoked and last
 * use are not written). CT_EEXIST when the name, or the hash, is taken;
 * CT_EINVAL for a field the schema would refuse, naming it. */
int ct_store_token_insert(ct_store *st, ct_store_token *t, ct_error *err);
/* The token whose hash this is, revoked or not. CT_ENOTFOUND when none.
 * One probe of a unique index. */
int ct_store_token_find_hash(ct_store *st, const unsigned char sha256[32], ct_store_token *out,
                             ct_error *err);
/* By id, or by name. CT_ENOTFOUND when none. */
int ct_store_token_get(ct_store *st, int64_t id, ct_store_token *out, ct_error *err);
int ct_store_token_get_by_name(ct_store *st, const char *name, ct_store_token *out, ct_error *err);
/* Every token in id order; *out is malloc'd (NULL when none). */
int ct_store_token_list(ct_store *st, ct_store_token **out, size_t *n_out, ct_error *err);
/* Revokes token id at at_ms (0: now) by `by`. CT_ENOTFOUND: no such token;
 * CT_EEXIST: already revoked (nothing is written). */
int ct_store_token_revoke(ct_store *st, int64_t id, int64_t at_ms, const char *by, ct_error *err);
/* Sets last_used_ms to now_ms unless it is already within min_interval_ms
 * of it, so that a busy token costs one write per interval, not one per
 * request. *written (may be NULL) says whether it wrote. */
int ct_store_token_touch(ct_store *st, int64_t id, int64_t now_ms, int64_t min_interval_ms, int *written,
                         ct_error *err);

/* ---- dashboard users and sessions (src/store/user_rows.c, migrations/0006_users.sql) ---- */
/* The http room (include/cardiotwin/http.h: ct_http_user_create ...) owns
 * what a password, a login and a session mean; these are their rows. A
 * password is stored only as a KDF output with its KDF's name, parameters
 * and salt; a session only as the SHA-256 of its cookie. Times are UTC ms,
 * 0 for "none". Users are never deleted and names never reused. Each write
 * is one operation (its own transaction or a savepoint of the caller's). */
#define CT_STORE_USER_NAME_MAX 64
#define CT_STORE_USER_SALT_MAX 64

typedef struct ct_store_user {
    int64_t id;                   /* set by insert */
    char name[CT_STORE_USER_NAME_MAX + 1];    /* [A-Za-z][A-Za-z0-9._-]* */
    char role[16];                /* "clinician", "auditor", "admin" */
    char patient[65];             /* FHIR Patient id the user is bound to, "" if none */
    char kdf[16];                 /* "scrypt" or "pbkdf2-sha256" */
    int64_t kdf_cost;             /* scrypt N, or PBKDF2 iterations */
    int64_t kdf_block;            /* scrypt r (1 for PBKDF2) */
    int64_t kdf_parallel;         /* scrypt p (1 for PBKDF2) */
    unsigned char salt[CT_STORE_USER_SALT_MAX];
    size_t salt_len;              /* 16..CT_STORE_USER_SALT_MAX */
    unsigned char hash[32];       /* the KDF's output */
    int64_t created_ms;           /* 0 on insert: now */
    char created_by[128];
    int64_t password_ms;          /* when the password was set */
    int64_t disabled_ms;          /* 0: active */
    char disabled_by[128];
    int64_t failed_count;         /* failed logins since the last success or lock */
    int64_t locked_until_ms;      /* 0: not locked */
    int64_t last_login_ms;        /* 0: never */
} ct_store_user;

/* Inserts; fills u->id (and created_ms, password_ms when 0). CT_EEXIST when
 * the name is taken (ever); CT_EINVAL for a field the schema would refuse. */
int ct_store_user_insert(ct_store *st, ct_store_user *u, ct_error *err);
/* By id, or by name. CT_ENOTFOUND when none. */
int ct_store_user_get(ct_store *st, int64_t id, ct_store_user *out, ct_error *err);
int ct_store_user_get_by_name(ct_store *st, const char *name, ct_store_user *out, ct_error *err);
/* Every user in id order; *out is malloc'd (NULL when none). */
int ct_store_user_list(ct_store *st, ct_store_user **out, size_t *n_out, ct_error *err);
/* Replaces the password fields (kdf, parameters, salt, hash) of user u->id
 * with u's, sets password_ms to at_ms, and clears the failure count and the
 * lock. CT_ENOTFOUND when there is no such user. */
int ct_store_user_set_password(ct_store *st, const ct_store_user *u, int64_t at_ms, ct_error *err);
/* Disables user id. CT_ENOTFOUND: no such user; CT_EEXIST: already
 * disabled (nothing written). */
int ct_store_user_disable(ct_store *st, int64_t id, int64_t at_ms, const char *by, ct_error *err);
/* Writes the login bookkeeping: failure count, lock end (0: none) and, when
 * last_login_ms > 0, the last successful login. */
int ct_store_user_set_login_state(ct_store *st, int64_t id, int64_t failed_count, int64_t locked_until_ms,
                                  int64_t last_login_ms, ct_error *err);

typedef struct ct_store_session {
    int64_t id;                   /* set by insert */
    unsigned char cookie_sha256[32];
    int64_t user_id;
    char csrf[65];                /* 32..64 characters */
    char client[64];              /* address it was opened from */
    int64_t created_ms;
    int64_t last_seen_ms;
    int64_t idle_ms;              /* ends after this long without a request */
    int64_t expires_ms;           /* ends then whatever happens */
    int64_t ended_ms;             /* 0: open */
    char end_reason[16];          /* "logout", "disabled", "password"; "" while open */
} ct_store_session;

/* Inserts an open session; fills s->id. The user must exist (CT_ENOTFOUND). */
int ct_store_session_insert(ct_store *st, ct_store_session *s, ct_error *err);
/* The session whose cookie hash this is (open or not) and its user (user
 * may be NULL). CT_ENOTFOUND when none. One probe of a unique index. */
int ct_store_session_find_hash(ct_store *st, const unsigned char sha256[32], ct_store_session *out,
                               ct_store_user *user, ct_error *err);
/* Sets last_seen_ms to now_ms unless it is already within min_interval_ms
 * of it (one write per interval, not per request). */
int ct_store_session_touch(ct_store *st, int64_t id, int64_t now_ms, int64_t min_interval_ms, ct_error *err);
/* Ends session id (reason "logout" ...). *ended (may be NULL) is 0 when it
 * had already ended (nothing written). CT_ENOTFOUND: no such session. */
int ct_store_session_end(ct_store *st, int64_t id, int64_t at_ms, const char *reason, int *ended, ct_error *err);
/* Ends every open session of user_id; *n_ended (may be NULL) says how many. */
int ct_store_session_end_user(ct_store *st, int64_t user_id, int64_t at_ms, const char *reason, int *n_ended,
                              ct_error *err);

/* ---- the dashboard's reads (src/store/dash_rows.c; docs/dashboard.md) ---- */
#define CT_STORE_RECORDS_LIST_MAX 10000

/* The imported records (not the live twin's segments), by source and name,
 * at most max (0 or more than CT_STORE_RECORDS_LIST_MAX: that limit).
 * Comments are not read. *out is malloc'd (NULL when none). */
int ct_store_records_list(ct_store *st, size_t max, ct_store_record **out, size_t *n_out, ct_error *err);
/* The patient with this row id (a record's patient_id). CT_ENOTFOUND. */
int ct_store_patient_by_id(ct_store *st, int64_t id, ct_store_patient *out, ct_error *err);
/* The patient's stream (live or ended) that began last at or before t_ms:
 * the one holding that time if any does. CT_ENOTFOUND when none. */
int ct_store_twin_stream_at(ct_store *st, const char *patient, int64_t t_ms, ct_store_twin_stream *out,
                            ct_error *err);
/* The stream's segments overlapping stream samples [from_sample,
 * to_sample), in sample order, at most max written to out (n_samples
 * filled). */
int ct_store_twin_segments_range(ct_store *st, int64_t stream_id, int64_t from_sample, int64_t to_sample,
                                 size_t max, ct_store_twin_segment *out, size_t *n_out, ct_error *err);

/* ---- the live twin's beats (src/store/beat_rows.c, migrations/0008_twin_beats.sql) ---- */
/* Every beat the twin's detector found, one row per (stream, sample). The
 * twin room owns their meaning; docs/twin.md. */
#define CT_STORE_TWIN_BEATS_READ_MAX 100000  /* beats one read may return */

typedef struct ct_store_twin_beat {
    int64_t stream_id;            /* twin_stream.id */
    int64_t sample;               /* stream index of the R peak, >= 0 */
    char cls;                     /* 'N', 'A', 'V', 'F', 'Q' */
    double hr_bpm;                /* averaged rate at the beat, 0 unknown; stored to 0.1 bpm (0..1000) */
    double rr_ms;                 /* from the previous beat, 0 for the first; stored to 1 ms */
} ct_store_twin_beat;

/* Stores n beats as one operation (a transaction of its own, or a
 * savepoint of the caller's): all or none. A beat whose (stream, sample)
 * is stored already is left as it is, so writing the same beats again
 * (a retry, a restart) adds nothing; *n_new (may be NULL) counts the rows
 * added. CT_EINVAL (nothing written) for a class outside N A V F Q, a
 * negative sample, a rate outside 0..1000 bpm or a negative or non-finite
 * interval, naming the beat; CT_EDB when the stream does not exist. */
int ct_store_twin_beats_insert(ct_store *st, const ct_store_twin_beat *beats, size_t n, size_t *n_new,
                               ct_error *err);
/* The stream's beats with from_sample <= sample < to_sample, in sample
 * order, at most max (1..CT_STORE_TWIN_BEATS_READ_MAX, else CT_EINVAL)
 * into out. *more (may be NULL) is 1 when further beats lie in the range:
 * the next read starts at out[*n_out - 1].sample + 1. One indexed range
 * walk, O(log beats + max). */
int ct_store_twin_beats_read(ct_store *st, int64_t stream_id, int64_t from_sample, int64_t to_sample, size_t max,
                             ct_store_twin_beat *out, size_t *n_out, int *more, ct_error *err);
/* The patient's stream number seq (1, 2, ...), or with seq 0 the latest
 * (live or ended). CT_ENOTFOUND when there is none. */
int ct_store_twin_stream_get(ct_store *st, const char *patient, int64_t seq, ct_store_twin_stream *out,
                             ct_error *err);

#endif
