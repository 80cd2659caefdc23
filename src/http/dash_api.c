/* http room, the dashboard's JSON API (docs/dashboard.md): the sources a
 * viewer can watch (/api/sources), a patient's alerts (/api/alerts), their
 * acknowledgement, and the stored ECG strip around an alert (/api/strip).
 *
 * The one idea: these routes serve people, not FHIR clients, so they
 * answer small purpose-made JSON, but they keep every rule of the FHIR
 * API: the router has checked the route's scope; a caller bound to a
 * patient sees that patient only (another patient is 403 when named in the
 * query, 404 when reached through an alert id, so ids do not reveal what
 * exists); and every answer that carries patient data is preceded by its
 * audit entry, written before the response, so that no read goes
 * unrecorded (the response is refused if the entry cannot be written). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/fhir.h"
#include "dash_internal.h"

#define ALERTS_DEFAULT 50
#define ALERTS_MAX 500
#define STRIP_MAX_MS 60000
#define STRIP_MAX_SEGMENTS 64

/* ---- shared helpers --------------------------------------------------------------- */

json_t *ct_http_dash_alert_json(const ct_store_twin_alert *a)
{
    int acked = a->acknowledged_by[0] != '\0';
    return json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:o,s:s,s:s,s:b,s:o,s:o}", "id", (json_int_t)a->id, "patient",
                     a->patient, "rule", a->rule, "priority", a->priority, "state", a->state, "onset_ms",
                     (json_int_t)a->onset_ms, "end_ms",
                     a->end_ms >= 0 && strcmp(a->state, "open") != 0 ? json_integer(a->end_ms) : json_null(),
                     "summary", a->summary, "report_id", a->report_id, "acknowledged", acked, "acknowledged_by",
                     acked ? json_string(a->acknowledged_by) : json_null(), "acknowledged_ms",
                     acked && a->acknowledged_ms >= 0 ? json_integer(a->acknowledged_ms) : json_null());
}

void ct_http_dash_record_id(const ct_store_record *all, size_t n, size_t i, char *buf, size_t cap)
{
    int shared = 0;
    for (size_t j = 0; j < n && !shared; j++)
        shared = j != i && strcmp(all[j].name, all[i].name) == 0;
    if (shared)
        snprintf(buf, cap, "%s:%s", all[i].source, all[i].name);
    else
        snprintf(buf, cap, "%s", all[i].name);
}

long ct_http_dash_record_find(const ct_store_record *all, size_t n, const char *id)
{
    char buf[160];
    for (size_t i = 0; i < n && i < LONG_MAX; i++) {
        ct_http_dash_record_id(all, n, i, buf, sizeof buf);
        if (strcmp(buf, id) == 0)
            return (long)i;
    }
    return -1;
}

int ct_http_dash_lead_code(const char *name)
{
    const ct_fhir_lead_info *l = ct_fhir_lead_by_name(name);
    return l ? l->mdc_code : 0;
}

int ct_http_dash_audit(ct_store *st, const ct_http_caller *c, const char *client, const char *request_id,
                       const char *action, const char *type, const char *id, const char *patient,
                       const char *detail, ct_error *err)
{
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor.name = c->authenticated && c->subject[0] ? c->subject : "anonymous";
    e.actor.role = c->role[0] ? c->role : "unknown";
    e.actor.client = client ? client : "";
    e.action = action;
    e.resource_type = type ? type : "";
    e.resource_id = id ? id : "";
    e.patient = patient ? patient : "";
    e.outcome = CT_AUDIT_OUTCOME_SUCCESS;
    e.outcome_desc = "";
    e.request_id = request_id ? request_id : "";
    e.detail = detail;
    return ct_audit_append(st, &e, NULL, err);
}

/* ---- request helpers ---------------------------------------------------------------- */

static int send_json_obj(ct_http_req *req, int status, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return ct_http_send_error(req, 503, "out of memory building the answer; try again");
    int rc = ct_http_send_json(req, status, text);
    free(text);
    return rc;
}

static int fail_internal(ct_http_req *req, const char *what, const ct_error *err)
{
    ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: %s: %s", req->request_id, what, err->msg);
    return ct_http_send_error(req, 500, "the server could not read its database; see its log");
}

/* A query parameter into buf: 1 found, 0 absent, -1 too long. */
static int query_param(const ct_http_req *req, const char *name, char *buf, size_t cap)
{
    if (!req->query)
        return 0;
    int n = mg_get_var(req->query, strlen(req->query), name, buf, cap);
    if (n == -1)
        return 0;
    return n < 0 ? -1 : 1;
}

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!*s)
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The patient named by ?patient=, checked against the caller's binding.
 * Returns 0 with id filled, or the status it sent. */
static int patient_param(ct_http_req *req, char *id, size_t cap)
{
    int f = query_param(req, "patient", id, cap);
    if (f <= 0 || !id[0])
        return ct_http_send_error(req, 400, f < 0 ? "the patient parameter is too long"
                                                  : "the patient parameter is required (?patient=ID)");
    if (!ct_fhir_id_valid(id, strlen(id)))
        return ct_http_send_error(req, 400, "the patient parameter is not a FHIR id ([A-Za-z0-9.-], at most 64)");
    if (req->caller.patient[0] && strcmp(req->caller.patient, id) != 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "this access is bound to Patient/%s and cannot see another patient",
                 req->caller.patient);
        return ct_http_send_error(req, 403, msg);
    }
    return 0;
}

static const char *client_addr(const ct_http_req *req)
{
    return req->ri && req->ri->remote_addr[0] ? req->ri->remote_addr : "";
}

static int audit_or_fail(ct_http_req *req, ct_store *st, const char *action, const char *type, const char *patient,
                         const char *detail)
{
    ct_error err = {0};
    if (ct_http_dash_audit(st, &req->caller, client_addr(req), req->request_id, action, type, "", patient, detail,
                           &err) != 0) {
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: audit entry: %s", req->request_id, err.msg);
        return ct_http_send_error(req, 503, "the access could not be recorded in the audit log, so it is refused; "
                                            "try again");
    }
    return 0;
}

static json_t *lead_names(const int *codes, int n)
{
    json_t *a = json_array();
    for (int l = 0; a && l < n; l++) {
        const ct_fhir_lead_info *li = ct_fhir_lead_by_code(codes[l]);
        json_array_append_new(a, json_string(li ? li->name : "?"));
    }
    return a;
}

/* ---- GET /api/sources ---------------------------------------------------------------- */

static json_t *patient_entry(ct_twin *tw, const char *id)
{
    ct_twin_live v;
    ct_error err = {0};
    /* A sliver of samples: only the numerics are wanted here. */
    if (ct_twin_live_read(tw, id, 0.01, &v, &err) != 0)
        return NULL;
    json_t *o = json_pack("{s:s,s:b,s:f,s:o,s:f,s:s,s:s,s:I,s:I}", "id", v.patient_id, "live", v.stream_seq > 0,
                          "fs_hz", v.fs_hz, "leads", lead_names(v.lead_codes, v.n_leads), "hr_bpm", v.hr_bpm,
                          "rhythm", v.rhythm, "quality", v.quality, "alerts", (json_int_t)v.n_alerts, "updated_ms",
                          (json_int_t)v.updated_ms);
    ct_twin_live_free(&v);
    return o;
}

int ct_http_handle_api_sources(ct_http_req *req)
{
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != 0)
        return ct_http_send_error(req, 503, "the database is not available");
    json_t *patients = json_array(), *records = json_array();
    int rc = 0;
    ct_twin *tw = req->srv->twin;
    if (tw && req->caller.patient[0]) {
        json_t *p = patient_entry(tw, req->caller.patient);
        if (p)
            json_array_append_new(patients, p);
    } else if (tw) {
        char(*ids)[CT_FHIR_ID_MAX + 1] = NULL;
        size_t n = 0;
        if ((rc = ct_twin_patients(tw, &ids, &n, &err)) != 0) {
            json_decref(patients);
            json_decref(records);
            return fail_internal(req, "listing the live patients", &err);
        }
        for (size_t i = 0; i < n; i++) {
            json_t *p = patient_entry(tw, ids[i]);
            if (p)
                json_array_append_new(patients, p);
        }
        free(ids);
    }
    if (!req->caller.patient[0]) {
        ct_store_record *recs = NULL;
        size_t n = 0;
        if ((rc = ct_store_records_list(st, 0, &recs, &n, &err)) != 0) {
            json_decref(patients);
            json_decref(records);
            return fail_internal(req, "listing the records", &err);
        }
        for (size_t i = 0; i < n && rc == 0; i++) {
            ct_store_signal *sigs = NULL;
            size_t ns = 0;
            if ((rc = ct_store_signals_list(st, recs[i].id, &sigs, &ns, &err)) != 0)
                break;
            json_t *leads = json_array();
            for (size_t s = 0; s < ns; s++)
                json_array_append_new(leads, json_string(sigs[s].description));
            free(sigs);
            char id[160];
            ct_http_dash_record_id(recs, n, i, id, sizeof id);
            json_array_append_new(records, json_pack("{s:s,s:f,s:o,s:f}", "id", id, "fs_hz", recs[i].fs_hz, "leads",
                                                     leads, "duration_s",
                                                     recs[i].fs_hz > 0 ? (double)recs[i].n_samples / recs[i].fs_hz
                                                                       : 0.0));
        }
        free(recs);
        if (rc != 0) {
            json_decref(patients);
            json_decref(records);
            return fail_internal(req, "listing the records", &err);
        }
    }
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_str(&d, "api", "/api/sources");
    ct_audit_detail_int(&d, "patients", (int64_t)json_array_size(patients));
    ct_audit_detail_int(&d, "records", (int64_t)json_array_size(records));
    if ((rc = audit_or_fail(req, st, "search", "Patient", req->caller.patient, ct_audit_detail_json(&d))) != 0) {
        json_decref(patients);
        json_decref(records);
        return rc;
    }
    return send_json_obj(req, 200, json_pack("{s:o,s:o}", "patients", patients, "records", records));
}

/* ---- GET /api/alerts ------------------------------------------------------------------- */

int ct_http_handle_api_alerts(ct_http_req *req)
{
    char patient[CT_FHIR_ID_MAX + 2];
    int rc = patient_param(req, patient, sizeof patient);
    if (rc != 0)
        return rc;
    int64_t limit = ALERTS_DEFAULT;
    char buf[32];
    int f = query_param(req, "limit", buf, sizeof buf);
    if (f < 0 || (f > 0 && parse_i64(buf, 1, ALERTS_MAX, &limit) != 0)) {
        char msg[96];
        snprintf(msg, sizeof msg, "limit must be a number 1..%d", ALERTS_MAX);
        return ct_http_send_error(req, 400, msg);
    }
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != 0)
        return ct_http_send_error(req, 503, "the database is not available");
    ct_store_twin_alert *rows = NULL;
    size_t n = 0;
    if (ct_store_twin_alerts_list(st, patient, 0, (size_t)limit, &rows, &n, &err) != 0)
        return fail_internal(req, "listing alerts", &err);
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_str(&d, "api", "/api/alerts");
    ct_audit_detail_int(&d, "alerts", (int64_t)n);
    if ((rc = audit_or_fail(req, st, "search", "DiagnosticReport", patient, ct_audit_detail_json(&d))) != 0) {
        free(rows);
        return rc;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, ct_http_dash_alert_json(&rows[i]));
    free(rows);
    return send_json_obj(req, 200, json_pack("{s:o}", "alerts", a));
}

/* ---- POST /api/alerts/{id}/acknowledge ------------------------------------------------- */

int ct_http_handle_api_alert_ack(ct_http_req *req)
{
    static const char prefix[] = "/api/alerts/";
    const char *p = req->path + sizeof prefix - 1;
    size_t len = strcspn(p, "/");
    char idbuf[24];
    int64_t id = 0;
    if (len == 0 || len >= sizeof idbuf)
        return ct_http_send_error(req, 404, "no such alert");
    memcpy(idbuf, p, len);
    idbuf[len] = '\0';
    if (parse_i64(idbuf, 1, INT64_MAX, &id) != 0)
        return ct_http_send_error(req, 404, "no such alert (alert ids are positive numbers)");
    ct_twin *tw = req->srv->twin;
    ct_store *st = NULL;
    ct_error err = {0};
    if (!tw || ct_http_store_acquire(req, &st, &err) != 0)
        return ct_http_send_error(req, 503, "the live twin is not available");
    ct_store_twin_alert a;
    int rc = ct_store_twin_alert_get(st, id, &a, &err);
    if (rc == CT_ENOTFOUND || (rc == 0 && req->caller.patient[0] && strcmp(a.patient, req->caller.patient) != 0)) {
        char msg[96];
        snprintf(msg, sizeof msg, "no alert %lld", (long long)id);
        return ct_http_send_error(req, 404, msg);
    }
    if (rc != 0)
        return fail_internal(req, "reading an alert", &err);
    ct_audit_actor who = {req->caller.subject, req->caller.role[0] ? req->caller.role : "unknown", client_addr(req)};
    rc = ct_twin_acknowledge(tw, st, id, &who, &err);
    if (rc == CT_EEXIST || rc == CT_ENOTFOUND)
        return ct_http_send_error(req, rc == CT_EEXIST ? 409 : 404, err.msg);
    if (rc != 0)
        return fail_internal(req, "acknowledging an alert", &err);
    if (ct_store_twin_alert_get(st, id, &a, &err) != 0)
        return fail_internal(req, "reading an acknowledged alert", &err);
    return send_json_obj(req, 200, ct_http_dash_alert_json(&a));
}

/* ---- GET /api/strip ----------------------------------------------------------------------- */

/* Fills lead `l` of samples [s0, s1) of the stream from the segments that
 * hold them; samples no segment holds stay null. */
static int strip_fill(ct_store *st, const ct_store_twin_segment *segs, size_t n_segs, int n_leads, int64_t s0,
                      int64_t s1, int16_t *buf, json_t *leads_meta, ct_error *err)
{
    size_t n = (size_t)(s1 - s0);
    for (size_t i = 0; i < (size_t)n_leads * n; i++)
        buf[i] = CT_FHIR_SAMPLE_MISSING;
    for (size_t g = 0; g < n_segs; g++) {
        ct_store_signal *sigs = NULL;
        size_t ns = 0;
        int rc = ct_store_signals_list(st, segs[g].record_id, &sigs, &ns, err);
        if (rc != 0)
            return rc;
        int64_t a = segs[g].first_sample > s0 ? segs[g].first_sample : s0;
        int64_t b = segs[g].first_sample + segs[g].n_samples < s1 ? segs[g].first_sample + segs[g].n_samples : s1;
        for (int l = 0; l < n_leads && l < (int)ns && a < b; l++) {
            if (json_array_size(leads_meta) == (size_t)l) {
                const ct_fhir_lead_info *li = NULL;
                json_array_append_new(leads_meta,
                                      json_pack("{s:s,s:f,s:i}", "name",
                                                (li = ct_fhir_lead_by_name(sigs[l].description)) ? li->name
                                                                                                 : sigs[l].description,
                                                "gain_adu_per_mv", sigs[l].gain_adu_per_unit, "baseline_adu",
                                                sigs[l].baseline_adu));
            }
            size_t got = 0;
            rc = ct_store_samples_read(st, sigs[l].id, a - segs[g].first_sample, buf + (size_t)l * n + (size_t)(a - s0),
                                       (size_t)(b - a), &got, err);
            if (rc != 0) {
                free(sigs);
                return rc;
            }
        }
        free(sigs);
    }
    return 0;
}

int ct_http_handle_api_strip(ct_http_req *req)
{
    char patient[CT_FHIR_ID_MAX + 2];
    int rc = patient_param(req, patient, sizeof patient);
    if (rc != 0)
        return rc;
    char b0[32], b1[32];
    int64_t from_ms = 0, to_ms = 0;
    if (query_param(req, "from_ms", b0, sizeof b0) <= 0 || query_param(req, "to_ms", b1, sizeof b1) <= 0 ||
        parse_i64(b0, 0, INT64_MAX / 4, &from_ms) != 0 || parse_i64(b1, 0, INT64_MAX / 4, &to_ms) != 0)
        return ct_http_send_error(req, 400, "from_ms and to_ms are required: UTC milliseconds (from_ms < to_ms)");
    if (to_ms <= from_ms || to_ms - from_ms > STRIP_MAX_MS) {
        char msg[128];
        snprintf(msg, sizeof msg, "the strip must span more than 0 and at most %d ms (asked: %lld ms)", STRIP_MAX_MS,
                 (long long)(to_ms - from_ms));
        return ct_http_send_error(req, 400, msg);
    }
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != 0)
        return ct_http_send_error(req, 503, "the database is not available");
    ct_store_twin_stream s;
    rc = ct_store_twin_stream_at(st, patient, to_ms - 1, &s, &err);
    if (rc == CT_ENOTFOUND) {
        char msg[200];
        snprintf(msg, sizeof msg, "Patient/%s has no stored ECG before %lld ms", patient, (long long)to_ms);
        return ct_http_send_error(req, 404, msg);
    }
    if (rc != 0)
        return fail_internal(req, "finding the stream", &err);
    int codes[CT_ECG_MAX_LEADS];
    int n_leads = 0;
    for (const char *p = s.leads; *p && n_leads < CT_ECG_MAX_LEADS; p += strcspn(p, ","), p += *p == ',')
        codes[n_leads++] = atoi(p);
    double fs = s.fs_hz;
    int64_t s0 = (int64_t)ceil((double)(from_ms - s.t0_ms) * fs / 1000.0);
    int64_t s1 = (int64_t)ceil((double)(to_ms - s.t0_ms) * fs / 1000.0);
    if (s0 < 0)
        s0 = 0;
    if (s1 > s.next_sample)
        s1 = s.next_sample;
    if (s1 <= s0 || n_leads == 0) {
        char msg[200];
        snprintf(msg, sizeof msg, "Patient/%s has no stored ECG between %lld and %lld ms", patient,
                 (long long)from_ms, (long long)to_ms);
        return ct_http_send_error(req, 404, msg);
    }
    ct_store_twin_segment segs[STRIP_MAX_SEGMENTS];
    size_t n_segs = 0;
    if (ct_store_twin_segments_range(st, s.id, s0, s1, STRIP_MAX_SEGMENTS, segs, &n_segs, &err) != 0)
        return fail_internal(req, "listing the stream's segments", &err);
    size_t n = (size_t)(s1 - s0);
    int16_t *buf = malloc((size_t)n_leads * n * sizeof *buf);
    json_t *meta = json_array();
    if (!buf || !meta) {
        free(buf);
        json_decref(meta);
        return ct_http_send_error(req, 503, "out of memory; try again");
    }
    if (strip_fill(st, segs, n_segs, n_leads, s0, s1, buf, meta, &err) != 0) {
        free(buf);
        json_decref(meta);
        return fail_internal(req, "reading samples", &err);
    }
    /* Leads no segment described (all missing) still get their names. */
    for (int l = (int)json_array_size(meta); l < n_leads; l++) {
        const ct_fhir_lead_info *li = ct_fhir_lead_by_code(codes[l]);
        json_array_append_new(meta, json_pack("{s:s,s:n,s:n}", "name", li ? li->name : "?", "gain_adu_per_mv",
                                              "baseline_adu"));
    }
    json_t *samples = json_array();
    for (int l = 0; l < n_leads; l++) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++) {
            int16_t v = buf[(size_t)l * n + i];
            json_array_append_new(a, v == CT_FHIR_SAMPLE_MISSING ? json_null() : json_integer(v));
        }
        json_array_append_new(samples, a);
    }
    free(buf);
    /* Beats are kept in memory by the live twin only (the store holds the
     * reports, not each beat): those of the live stream still in view. */
    json_t *beats = json_array();
    ct_twin_live v;
    if (req->srv->twin && ct_twin_live_read(req->srv->twin, patient, 0.01, &v, &err) == 0) {
        if (v.stream_seq == s.seq)
            for (size_t i = 0; i < v.n_beats; i++)
                if (v.beats[i].sample >= s0 && v.beats[i].sample < s1) {
                    char cls[2] = {v.beats[i].cls, 0};
                    json_array_append_new(beats, json_pack("{s:I,s:s}", "sample", (json_int_t)v.beats[i].sample,
                                                           "cls", cls));
                }
        ct_twin_live_free(&v);
    }
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_str(&d, "api", "/api/strip");
    ct_audit_detail_int(&d, "stream", s.seq);
    ct_audit_detail_int(&d, "from_ms", from_ms);
    ct_audit_detail_int(&d, "to_ms", to_ms);
    if ((rc = audit_or_fail(req, st, "read", "Observation", patient, ct_audit_detail_json(&d))) != 0) {
        json_decref(meta);
        json_decref(samples);
        json_decref(beats);
        return rc;
    }
    return send_json_obj(req, 200,
                         json_pack("{s:f,s:I,s:I,s:o,s:o,s:o}", "fs_hz", fs, "t0_ms", (json_int_t)s.t0_ms, "first_sample",
                                   (json_int_t)s0, "leads", meta, "samples", samples, "beats", beats));
}
