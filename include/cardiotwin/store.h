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

#endif
