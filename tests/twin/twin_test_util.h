/* Helpers shared by the twin room's tests: MIT-BIH records (through
 * CARDIOTWIN_MITDB) cut into ECG Observations the way a bedside gateway
 * sends them, a store in a temporary file, a raw SQLite handle on the same
 * file for counting rows and injecting faults, and beat collection. */
#ifndef CT_TWIN_TEST_UTIL_H
#define CT_TWIN_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <sqlite3.h>

#include "cardiotwin/twin.h"

#define TT_T0_MS 1767225600000LL /* 2026-01-01T00:00:00Z */

typedef struct tt_record {
    ct_wfdb_header hdr;
    ct_wfdb_signals sig;
} tt_record;

static inline const char *tt_mitdb(void)
{
    const char *d = getenv("CARDIOTWIN_MITDB");
    return d && *d ? d : "../shared/data/mitdb";
}

static inline tt_record *tt_load(const char *name)
{
    tt_record *r = calloc(1, sizeof *r);
    assert_non_null(r);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", tt_mitdb(), name);
    ct_error err;
    if (ct_wfdb_header_read(path, &r->hdr, &err) != 0)
        fail_msg("%s", err.msg);
    if (ct_wfdb_signals_read(path, &r->hdr, &r->sig, &err) != 0)
        fail_msg("%s", err.msg);
    return r;
}

static inline void tt_unload(tt_record *r)
{
    ct_wfdb_signals_free(&r->sig);
    free(r);
}

/* Frames [from, from + n) of the record as an ECG Observation, through
 * JSON and back as a gateway's would arrive: ct_fhir_ecg_to_json, then
 * ct_fhir_ecg_from_json. start_ms is its effective start. samples_override
 * (may be NULL) replaces lead 0's samples; fs_override > 0 claims another
 * rate. */
static inline void tt_observation(const tt_record *r, const char *patient, int64_t from, size_t n,
                                  int64_t start_ms, const int16_t *samples_override, double fs_override,
                                  int n_leads, ct_fhir_ecg *out)
{
    ct_fhir_ecg_in in;
    memset(&in, 0, sizeof in);
    in.patient_id = patient;
    in.start_ms = start_ms;
    in.fs_hz = fs_override > 0 ? fs_override : r->hdr.fs_hz;
    in.n_samples = n;
    in.n_leads = n_leads > 0 ? n_leads : r->sig.n_signals;
    for (int l = 0; l < in.n_leads; l++) {
        const ct_wfdb_signal *s = &r->hdr.signals[l];
        const ct_fhir_lead_info *li = ct_fhir_lead_by_name(s->description);
        assert_non_null(li);
        in.leads[l].mdc_code = li->mdc_code;
        in.leads[l].text = s->description;
        in.leads[l].gain_adu_per_mv = s->gain_adu_per_unit;
        in.leads[l].baseline_adu = s->baseline_adu;
        in.leads[l].samples = l == 0 && samples_override ? samples_override : r->sig.samples[l] + from;
    }
    json_t *j = NULL;
    ct_error err;
    if (ct_fhir_ecg_to_json(&in, &j, &err) != 0)
        fail_msg("%s", err.msg);
    ct_fhir_issue is;
    if (ct_fhir_ecg_from_json(j, NULL, out, &is) != 0)
        fail_msg("%s", is.diagnostics);
    json_decref(j);
}

/* A store in a fresh temporary file. */
typedef struct tt_db {
    char path[256];
    ct_store *st;
    sqlite3 *raw;
} tt_db;

static inline void tt_db_open(tt_db *d)
{
    snprintf(d->path, sizeof d->path, "/tmp/ct_twin_test_XXXXXX");
    int fd = mkstemp(d->path);
    assert_true(fd >= 0);
    close(fd);
    unlink(d->path);
    ct_error err;
    if (ct_store_open(d->path, &d->st, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(sqlite3_open(d->path, &d->raw), SQLITE_OK);
    sqlite3_busy_timeout(d->raw, 5000);
}

static inline void tt_db_close(tt_db *d)
{
    ct_store_close(d->st);
    sqlite3_close(d->raw);
    char p[300];
    unlink(d->path);
    snprintf(p, sizeof p, "%s-wal", d->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", d->path);
    unlink(p);
}

/* One integer from a query on the raw handle. */
static inline int64_t tt_count(tt_db *d, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(d->raw, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(d->raw));
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static inline void tt_exec(tt_db *d, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(d->raw, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

/* Beats seen through the twin's observer. */
typedef struct tt_beats {
    int64_t *sample;
    char *cls;
    size_t n, cap;
    size_t alerts;
} tt_beats;

static inline void tt_on_beat(void *ctx, const char *patient, const ct_ecg_beat *b)
{
    (void)patient;
    tt_beats *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4096;
        c->sample = realloc(c->sample, c->cap * sizeof *c->sample);
        c->cls = realloc(c->cls, c->cap);
        assert_non_null(c->sample);
        assert_non_null(c->cls);
    }
    c->sample[c->n] = b->sample;
    c->cls[c->n] = ct_ecg_beat_class_mnemonic(b->cls)[0];
    c->n++;
}

static inline void tt_on_alert(void *ctx, const char *patient, const ct_policy_alert *a)
{
    (void)patient;
    (void)a;
    ((tt_beats *)ctx)->alerts++;
}

static inline void tt_beats_free(tt_beats *c)
{
    free(c->sample);
    free(c->cls);
    memset(c, 0, sizeof *c);
}

/* Ingests frames [from, from + n) of r as Observation obs_id. */
static inline int tt_ingest(ct_twin *t, ct_store *st, const tt_record *r, const char *patient, const char *obs_id,
                            int64_t from, size_t n, int64_t start_ms, ct_twin_ingest_result *res, ct_error *err)
{
    ct_fhir_ecg e;
    tt_observation(r, patient, from, n, start_ms, NULL, 0, 0, &e);
    int rc = ct_twin_ingest_ecg(t, st, &e, obs_id, res, err);
    ct_fhir_ecg_free(&e);
    return rc;
}

/* A record streamed as 10-second Observations from frame 0, obs ids
 * PREFIX-0, PREFIX-1 ...; fails on any refusal or report error. */
static inline void tt_stream(ct_twin *t, ct_store *st, const tt_record *r, const char *patient,
                             const char *prefix, int64_t n_frames)
{
    const int64_t step = (int64_t)(10 * r->hdr.fs_hz);
    for (int64_t k = 0; k * step < n_frames; k++) {
        int64_t from = k * step;
        size_t n = (size_t)(from + step <= n_frames ? step : n_frames - from);
        char id[64];
        snprintf(id, sizeof id, "%s-%lld", prefix, (long long)k);
        ct_twin_ingest_result res;
        ct_error err;
        int64_t start_ms = TT_T0_MS + (int64_t)((double)from * 1000.0 / r->hdr.fs_hz + 0.5);
        if (tt_ingest(t, st, r, patient, id, from, n, start_ms, &res, &err) != 0)
            fail_msg("%s: %s", id, err.msg);
        if (res.report_error)
            fail_msg("%s: %s", id, res.report_error_msg);
        assert_int_equal(res.verdict, k == 0 ? CT_TWIN_STARTED : CT_TWIN_APPENDED);
    }
}

#endif
