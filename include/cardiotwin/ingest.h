/* ingest: brings outside ECG into the store. For now one source, WFDB records
 * (`cardiotwin import`): the record is read and verified whole (header,
 * signal checksums, reference annotations) before anything is written, then
 * stored in one transaction, so a bad record leaves the database as it was.
 *
 * A record is identified by (source, name) and by the SHA-256 of its files:
 * importing the same files again changes nothing; other files under the same
 * name are refused rather than silently mixed. */
#ifndef CARDIOTWIN_INGEST_H
#define CARDIOTWIN_INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/error.h"
#include "cardiotwin/store.h"

/* Called while samples are written: done and total in samples (all signals). */
typedef void (*ct_ingest_progress_fn)(void *ctx, int64_t done, int64_t total);

typedef struct ct_ingest_options {
    const char *source;         /* e.g. "mitdb"; NULL: the record's folder name */
    const char *annotator;      /* reference annotator, NULL: "atr" */
    int require_annotations;    /* 1: a missing annotation file is an error */
    ct_ingest_progress_fn progress;
    void *progress_ctx;
    /* Who imports, for the audit log entry written in the same transaction
     * as the record; NULL: {"unknown", "operator", "local"}. */
    const ct_audit_actor *actor;
} ct_ingest_options;

typedef struct ct_ingest_result {
    char record[64];
    char source[64];
    char patient[128];          /* the patient identifier, "<source>-<record>" */
    int n_signals;
    char leads[256];            /* "MLII, V5" */
    int64_t n_samples;          /* per signal */
    double fs_hz;
    double duration_s;
    size_t n_annotations;
    size_t n_beats;
    int already_present;        /* 1: identical record was there, nothing written (but a
                                   missing Patient resource) */
    int patient_resource;       /* 1: this import wrote the FHIR Patient/<patient>
                                   (identifier CT_FHIR_CANONICAL_BASE "/<source>-record"
                                   | record); 0: it existed, or <patient> is not a FHIR id */
    int64_t patient_resource_version; /* its version when written (1), else 0 */
} ct_ingest_result;

/* Imports the WFDB record at record_path (a path without extension). */
int ct_ingest_wfdb_record(ct_store *st, const char *record_path,
                          const ct_ingest_options *opt, ct_ingest_result *out, ct_error *err);

#endif
