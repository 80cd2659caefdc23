/* http room, GET /api/beats: the beats the live twin's detector found in a
 * patient's stream, as stored (twin_beat, docs/twin.md), a page at a time:
 *
 *   GET /api/beats?patient=ID[&stream=N][&from_sample=A][&to_sample=B][&limit=N]
 *   {"patient":"ID","stream":N,"fs_hz":360,"t0_ms":...,
 *    "beats":[{"sample":N,"cls":"V","hr_bpm":72.3,"rr_ms":833}],"next_from_sample":N|null}
 *
 * The one idea: paging by sample, not by offset. A stream's beats only
 * ever grow at its end, so "the beats from sample A on" names the same
 * beats whenever it is asked, and a client that asks again from
 * next_from_sample until it is null reads every stored beat once, however
 * the twin writes meanwhile; each page is one walk of the table's primary
 * key. Samples are stream indices (sample s was taken at t0_ms + s * 1000 /
 * fs_hz); stream N is the patient's N-th stream (1, 2, ...), the latest
 * when not given.
 *
 * It keeps the rules of the other reads of patient data: the router has
 * checked the route's scope (Observation.r: beats are derived from the
 * ECG Observations); a caller bound to a patient may name only that patient
 * (another is 403); parameters are checked before the database is touched
 * (an unknown or repeated one is 400, so that a misspelt from_sample does
 * not silently read from 0); and the answer is sent only once its audit
 * entry is written (action "search", type Observation). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/fhir.h"
#include "dash_internal.h"

#define BEATS_DEFAULT 1000
#define BEATS_MAX 10000 /* about 600 kB of JSON: a quarter hour at a time */

static const char *const known_params[] = {"patient", "stream", "from_sample", "to_sample", "limit"};
#define N_PARAMS (sizeof known_params / sizeof known_params[0])

/* Every name in the query is one of ours, and none comes twice. 0, or the
 * status sent. */
static int check_names(ct_http_req *req)
{
    int seen[N_PARAMS] = {0};
    const char *q = req->query ? req->query : "";
    while (*q) {
        size_t len = strcspn(q, "&");
        size_t name_len = strcspn(q, "=&");
        if (len > 0) {
            size_t k = 0;
            while (k < N_PARAMS && !(strlen(known_params[k]) == name_len && !strncmp(q, known_params[k], name_len)))
                k++;
            char msg[200];
            if (k == N_PARAMS) {
                snprintf(msg, sizeof msg, "unknown parameter \"%.*s\"; /api/beats takes patient, stream, "
                         "from_sample, to_sample and limit", (int)(name_len < 40 ? name_len : 40), q);
                return ct_http_send_error(req, 400, msg);
            }
            if (seen[k]++) {
                snprintf(msg, sizeof msg, "the %s parameter is given twice", known_params[k]);
                return ct_http_send_error(req, 400, msg);
            }
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return 0;
}

/* A query parameter into buf: 1 found, 0 absent, -1 too long. */
static int param(const ct_http_req *req, const char *name, char *buf, size_t cap)
{
    if (!req->query)
        return 0;
    int n = mg_get_var(req->query, strlen(req->query), name, buf, cap);
    if (n == -1)
        return 0;
    return n < 0 ? -1 : 1;
}

/* An optional integer parameter in lo..hi. 0 (with *v set when present),
 * or the status sent. */
static int int_param(ct_http_req *req, const char *name, int64_t lo, int64_t hi, int64_t *v)
{
    char buf[32];
    int f = param(req, name, buf, sizeof buf);
    if (f == 0)
        return 0;
    char *end = NULL;
    long long x = 0;
    if (f > 0 && buf[0] >= '0' && buf[0] <= '9') {
        errno = 0;
        x = strtoll(buf, &end, 10);
    }
    if (f < 0 || !end || *end || errno || x < lo || x > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s must be a whole number from %lld to %lld", name, (long long)lo, (long long)hi);
        return ct_http_send_error(req, 400, msg);
    }
    *v = x;
    return 0;
}

static int fail_internal(ct_http_req *req, const char *what, const ct_error *err)
{
    ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: %s: %s", req->request_id, what, err->msg);
    return ct_http_send_error(req, 500, "the server could not read its database; see its log");
}

int ct_http_handle_api_beats(ct_http_req *req)
{
    int rc = check_names(req);
    if (rc != 0)
        return rc;
    char patient[CT_FHIR_ID_MAX + 2];
    int f = param(req, "patient", patient, sizeof patient);
    if (f <= 0 || !patient[0])
        return ct_http_send_error(req, 400, f < 0 ? "the patient parameter is too long"
                                                  : "the patient parameter is required (?patient=ID)");
    if (!ct_fhir_id_valid(patient, strlen(patient)))
        return ct_http_send_error(req, 400, "the patient parameter is not a FHIR id ([A-Za-z0-9.-], at most 64)");
    if (req->caller.patient[0] && strcmp(req->caller.patient, patient) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "this access is bound to Patient/%s and cannot see another patient",
                 req->caller.patient);
        return ct_http_send_error(req, 403, msg);
    }
    int64_t seq = 0, from = 0, to = INT64_MAX, limit = BEATS_DEFAULT;
    if ((rc = int_param(req, "stream", 1, INT32_MAX, &seq)) ||
        (rc = int_param(req, "from_sample", 0, INT64_MAX - 1, &from)) ||
        (rc = int_param(req, "to_sample", 1, INT64_MAX, &to)) ||
        (rc = int_param(req, "limit", 1, BEATS_MAX, &limit)))
        return rc;
    if (to <= from) {
        char msg[160];
        snprintf(msg, sizeof msg, "to_sample (%lld) must be greater than from_sample (%lld)", (long long)to,
                 (long long)from);
        return ct_http_send_error(req, 400, msg);
    }

    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != 0)
        return ct_http_send_error(req, 503, "the database is not available");
    ct_store_twin_stream s;
    rc = ct_store_twin_stream_get(st, patient, seq, &s, &err);
    if (rc == CT_ENOTFOUND) {
        char msg[200];
        if (seq)
            snprintf(msg, sizeof msg, "Patient/%s has no stream %lld", patient, (long long)seq);
        else
            snprintf(msg, sizeof msg, "Patient/%s has no ECG stream", patient);
        return ct_http_send_error(req, 404, msg);
    }
    if (rc != 0)
        return fail_internal(req, "finding the stream", &err);
    ct_store_twin_beat *rows = malloc((size_t)limit * sizeof *rows);
    if (!rows)
        return ct_http_send_error(req, 503, "out of memory; try again");
    size_t n = 0;
    int more = 0;
    if (ct_store_twin_beats_read(st, s.id, from, to, (size_t)limit, rows, &n, &more, &err) != 0) {
        free(rows);
        return fail_internal(req, "reading beats", &err);
    }

    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_str(&d, "api", "/api/beats");
    ct_audit_detail_int(&d, "stream", s.seq);
    ct_audit_detail_int(&d, "from_sample", from);
    if (to != INT64_MAX)
        ct_audit_detail_int(&d, "to_sample", to);
    ct_audit_detail_int(&d, "beats", (int64_t)n);
    const char *client = req->ri && req->ri->remote_addr[0] ? req->ri->remote_addr : "";
    if (ct_http_dash_audit(st, &req->caller, client, req->request_id, "search", "Observation", "", patient,
                           ct_audit_detail_json(&d), &err) != 0) {
        free(rows);
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: audit entry: %s", req->request_id, err.msg);
        return ct_http_send_error(req, 503, "the access could not be recorded in the audit log, so it is refused; "
                                            "try again");
    }

    json_t *beats = json_array();
    for (size_t i = 0; beats && i < n; i++) {
        const ct_store_twin_beat *b = &rows[i];
        char cls[2] = {b->cls, '\0'};
        /* 0 in the store means "none": the detector had no rate yet, or
         * the beat is the first of its detector. */
        json_t *o = json_pack("{s:I,s:s,s:o,s:o}", "sample", (json_int_t)b->sample, "cls", cls, "hr_bpm",
                              b->hr_bpm > 0 ? json_real(b->hr_bpm) : json_null(), "rr_ms",
                              b->rr_ms > 0 ? json_integer((json_int_t)b->rr_ms) : json_null());
        if (!o || json_array_append_new(beats, o) != 0) {
            json_decref(beats);
            beats = NULL;
        }
    }
    json_t *next = more && n ? json_integer((json_int_t)(rows[n - 1].sample + 1)) : json_null();
    free(rows);
    json_t *body = NULL;
    if (beats) /* json_pack takes both references, even when it fails */
        body = json_pack("{s:s,s:I,s:f,s:I,s:o,s:o}", "patient", patient, "stream", (json_int_t)s.seq, "fs_hz",
                         s.fs_hz, "t0_ms", (json_int_t)s.t0_ms, "beats", beats, "next_from_sample", next);
    else
        json_decref(next);
    /* Six significant digits: rates are stored to 0.1 bpm, and 72.3 must
     * not come out as 72.299999999999997. */
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(body);
    if (!text)
        return ct_http_send_error(req, 503, "out of memory building the answer; try again");
    rc = ct_http_send_json(req, 200, text);
    free(text);
    return rc;
}
