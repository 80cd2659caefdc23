/* twin/report: alert transitions into stored FHIR resources.
 *
 * The one idea: an alert is one DiagnosticReport whose versions follow the
 * alert. RAISED writes version 1 with status "preliminary" (the finding is
 * verified by the policy but the episode is still going on: FHIR's
 * "preliminary: verified early results are available, but not all results
 * are final") and an open effectivePeriod; UPDATED (an escalation) writes
 * another preliminary version; CLEARED writes the "final" version with the
 * period's end and the episode's worst values. Each version comes with new
 * versions of its derived Observations (heart rate, LOINC 8867-4, and the
 * counts behind the alert, from onset to end), a Provenance naming the
 * detector Device and the source ECG Observations, the alert row, the
 * outbox row when an upstream is configured, and an audit entry, all in ONE
 * transaction: a reader sees the whole version or none of it.
 *
 * Transitions are queued as the policy reports them (inside the detector's
 * callbacks, where nothing may block on the database) and written after
 * the push, in order. A write the store refuses leaves the transition at
 * the head of the queue; it is retried by the patient's next call, so
 * nothing the policy said is lost while the database is briefly unwell. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/version.h"
#include "twin_internal.h"

/* ---- the queue ------------------------------------------------------------------- */

void tw_alert_release(tw_alert *a)
{
    if (a && --a->refs <= 0)
        free(a);
}

void tw_pending_clear(tw_patient *p)
{
    for (size_t i = 0; i < p->n_pending; i++)
        tw_alert_release(p->pending[i].alert);
    p->n_pending = 0;
}

static int64_t sample_ms(int64_t t0_ms, double fs_hz, int64_t sample)
{
    return t0_ms + (int64_t)llround((double)sample * 1000.0 / fs_hz);
}

static void keep(char *dst, size_t cap, const char *s)
{
    snprintf(dst, cap, "%s", s ? s : "");
}

void tw_pending_add(ct_twin *t, tw_patient *p, const ct_policy_alert *a)
{
    (void)t;
    if ((unsigned)a->rule >= CT_POLICY_N_RULES)
        return;
    tw_alert *al = p->open[a->rule];
    if (a->transition == CT_POLICY_RAISED) {
        if (al) {
            /* The policy holds one alert per rule: a stale one is closed. */
            al->open = 0;
            tw_alert_release(al);
            p->open[a->rule] = NULL;
        }
        al = calloc(1, sizeof *al);
        char id[37];
        if (!al || tw_random_id(id) != CT_OK) {
            free(al);
            p->pending_overflow++;
            return;
        }
        al->refs = 1;
        al->open = 1;
        al->policy_id = a->id;
        al->stream_id = p->stream.id;
        al->rule = a->rule;
        al->priority = a->priority;
        al->onset_sample = a->onset_sample;
        al->onset_ms = sample_ms(p->stream.t0_ms, p->stream.fs_hz, a->onset_sample);
        snprintf(al->report_id, sizeof al->report_id, "%s", id);
        const ct_policy_rules *r = p->ev ? ct_policy_eval_rules(p->ev) : NULL;
        tw_counts_from_ring(p, a->onset_sample, a->sample, r ? r->pause.threshold_ms : 3000.0, &al->counts);
        p->open[a->rule] = al;
    } else if (!al || al->policy_id != a->id) {
        return; /* a transition of an alert this run never raised */
    }
    al->priority = a->priority;
    if (p->n_pending == p->cap_pending) {
        size_t cap = p->cap_pending ? 2 * p->cap_pending : 8;
        tw_pending *np = realloc(p->pending, cap * sizeof *np);
        if (!np) {
            p->pending_overflow++;
            return;
        }
        p->pending = np;
        p->cap_pending = cap;
    }
    tw_pending *w = &p->pending[p->n_pending];
    memset(w, 0, sizeof *w);
    w->alert = al;
    al->refs++;
    w->a = *a;
    w->a.patient_id = NULL;
    keep(w->quality, sizeof w->quality, a->values.quality);
    keep(w->rhythm, sizeof w->rhythm, a->values.rhythm);
    keep(w->worst_quality, sizeof w->worst_quality, a->worst.quality);
    keep(w->worst_rhythm, sizeof w->worst_rhythm, a->worst.rhythm);
    keep(w->live_rhythm, sizeof w->live_rhythm, p->rhythm);
    w->a.values.quality = a->values.quality ? w->quality : NULL;
    w->a.values.rhythm = a->values.rhythm ? w->rhythm : NULL;
    w->a.worst.quality = a->worst.quality ? w->worst_quality : NULL;
    w->a.worst.rhythm = a->worst.rhythm ? w->worst_rhythm : NULL;
    w->counts = al->counts;
    w->stream_id = p->stream.id;
    w->t0_ms = p->stream.t0_ms;
    w->fs_hz = p->stream.fs_hz;
    if (a->transition == CT_POLICY_CLEARED) {
        /* Beats that came during the clear delay are not the episode's. */
        const ct_policy_rules *r = p->ev ? ct_policy_eval_rules(p->ev) : NULL;
        tw_counts after;
        tw_counts_from_ring(p, a->end_sample + 1, INT64_MAX, r ? r->pause.threshold_ms : 3000.0, &after);
        w->counts.beats -= after.beats;
        w->counts.pvc -= after.pvc;
        w->counts.sveb -= after.sveb;
        w->counts.pauses -= after.pauses;
        if (w->counts.beats < 0 || w->counts.pvc < 0 || w->counts.sveb < 0 || w->counts.pauses < 0)
            memset(&w->counts, 0, sizeof w->counts);
        w->counts.vruns = al->counts.vruns;
        al->open = 0;
        p->open[a->rule] = NULL;
        tw_alert_release(al); /* the open reference; the queue's remains */
    }
    if (a->rule == CT_POLICY_SIGNAL_LOSS && p->gap_from >= 0 && p->gap_to > a->onset_sample - 1 &&
        p->gap_from <= a->sample)
        snprintf(w->note, sizeof w->note, "No ECG was received for %.0f s.",
                 (double)(p->gap_to - p->gap_from) / p->stream.fs_hz);
    p->n_pending++;
}

/* ---- building and storing one version ----------------------------------------------- */

/* The stored form: resourceType, id and meta first, as the http room
 * stores what clients send, so that a read serves it without re-parsing. */
static char *dump(json_t *res, size_t *len)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *meta = json_object_get(res, "meta");
    int bad = json_object_set(o, "resourceType", json_object_get(res, "resourceType")) ||
              json_object_set(o, "id", json_object_get(res, "id")) ||
              (meta ? json_object_set(o, "meta", meta) : json_object_set_new(o, "meta", json_object()));
    const char *k;
    json_t *v;
    json_object_foreach(res, k, v) {
        if (bad)
            break;
        if (strcmp(k, "resourceType") && strcmp(k, "id") && strcmp(k, "meta"))
            bad = json_object_set(o, k, v);
    }
    /* 15 significant digits: a rate rounded to 106.1 is written 106.1, not
     * 106.09999999999999. */
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(15));
    json_decref(o);
    if (s && len)
        *len = strlen(s);
    return s;
}

/* Writes a new version of res (steals it); *version_out gets its number. */
static int put(ct_store *st, json_t *res, const char *type, const char *id, int64_t *version_out, ct_error *err)
{
    if (!res)
        return err && err->code ? err->code : CT_ENOMEM;
    tw_index x = {0};
    size_t len = 0;
    char *body = dump(res, &len);
    int rc = body ? tw_index_extract(res, type, &x) : CT_ENOMEM;
    if (rc == CT_OK) {
        ct_store_write w = {.type = type, .id = id, .json = body, .len = len, .index = x.e, .n_index = x.n};
        ct_store_version_info vi;
        rc = ct_store_resource_write(st, &w, &vi, err);
        if (rc == CT_OK && version_out)
            *version_out = vi.version;
    } else {
        ct_error_set(err, rc, "%s/%s: cannot serialise or index it", type, id);
    }
    tw_index_free(&x);
    free(body);
    json_decref(res);
    return rc;
}

static size_t findings_for(const tw_pending *w, ct_fhir_finding *f)
{
    const ct_policy_alert *a = &w->a;
    const char *rh = w->live_rhythm;
    const char *vr = a->values.rhythm ? a->values.rhythm : a->worst.rhythm;
    size_t n = 0;
    switch (a->rule) {
    case CT_POLICY_HR_HIGH:
        f[n++] = strcmp(rh, "(AFIB") == 0  ? CT_FHIR_FINDING_AF
                 : strcmp(rh, "(VT") == 0 ? CT_FHIR_FINDING_VT
                                          : CT_FHIR_FINDING_SINUS_TACHY;
        break;
    case CT_POLICY_HR_LOW:
        f[n++] = strcmp(rh, "(AFIB") == 0 ? CT_FHIR_FINDING_AF : CT_FHIR_FINDING_SINUS_BRADY;
        break;
    case CT_POLICY_PAUSE:
        f[n++] = CT_FHIR_FINDING_PAUSE;
        break;
    case CT_POLICY_ASYSTOLE:
        f[n++] = CT_FHIR_FINDING_ASYSTOLE;
        break;
    case CT_POLICY_VENTRICULAR_RUN:
        f[n++] = vr && strcmp(vr, "(VFL") == 0 ? CT_FHIR_FINDING_VF : CT_FHIR_FINDING_VT;
        break;
    case CT_POLICY_AFIB:
        f[n++] = CT_FHIR_FINDING_AF;
        break;
    case CT_POLICY_PVC_BURDEN:
        f[n++] = CT_FHIR_FINDING_PVC;
        if (strcmp(rh, "(B") == 0)
            f[n++] = CT_FHIR_FINDING_BIGEMINY;
        else if (strcmp(rh, "(T") == 0)
            f[n++] = CT_FHIR_FINDING_TRIGEMINY;
        break;
    default:
        break; /* signal loss is not a finding about the heart */
    }
    return n;
}

/* The counts a rule rests on (docs/twin.md). */
static size_t metrics_for(ct_policy_rule rule, ct_fhir_metric *m)
{
    size_t n = 0;
    switch (rule) {
    case CT_POLICY_PAUSE:
        m[n++] = CT_FHIR_METRIC_PAUSES;
        break;
    case CT_POLICY_VENTRICULAR_RUN:
        m[n++] = CT_FHIR_METRIC_VRUNS;
        m[n++] = CT_FHIR_METRIC_PVC;
        break;
    case CT_POLICY_PVC_BURDEN:
        m[n++] = CT_FHIR_METRIC_PVC;
        break;
    case CT_POLICY_SIGNAL_LOSS:
        return 0;
    default:
        break;
    }
    m[n++] = CT_FHIR_METRIC_BEATS;
    return n;
}

static int64_t metric_count(const tw_counts *c, ct_fhir_metric m)
{
    switch (m) {
    case CT_FHIR_METRIC_BEATS: return c->beats;
    case CT_FHIR_METRIC_PVC: return c->pvc;
    case CT_FHIR_METRIC_SVEB: return c->sveb;
    case CT_FHIR_METRIC_PAUSES: return c->pauses;
    case CT_FHIR_METRIC_VRUNS: return c->vruns;
    default: return 0;
    }
}

static const char *transition_name(const ct_policy_alert *a)
{
    switch (a->transition) {
    case CT_POLICY_RAISED: return "raised";
    case CT_POLICY_UPDATED: return "updated";
    case CT_POLICY_CLEARED: return a->stream_ended ? "ended" : "cleared";
    }
    return "unknown";
}

static int audit_alert(ct_twin *t, ct_store *st, const char *patient, const tw_alert *al, int64_t row_id,
                       const char *transition, const char *priority, int64_t version, int64_t onset_ms,
                       int64_t end_ms, int64_t now, ct_error *err)
{
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    char when[CT_FHIR_INSTANT_CAP];
    ct_audit_detail_str(&d, "transition", transition);
    ct_audit_detail_str(&d, "rule", ct_policy_rule_name(al->rule));
    ct_audit_detail_str(&d, "priority", priority);
    ct_audit_detail_int(&d, "alert", row_id);
    if (ct_fhir_instant_format(onset_ms, when, sizeof when) == 0)
        ct_audit_detail_str(&d, "onset", when);
    if (end_ms >= 0 && ct_fhir_instant_format(end_ms, when, sizeof when) == 0)
        ct_audit_detail_str(&d, "end", when);
    ct_audit_entry e = {.time_ms = now,
                        .actor = {t->device_id, "device", ""},
                        .action = "alert",
                        .resource_type = "DiagnosticReport",
                        .resource_id = al->report_id,
                        .resource_version = version,
                        .patient = patient,
                        .outcome = CT_AUDIT_OUTCOME_SUCCESS,
                        .detail = ct_audit_detail_json(&d)};
    return ct_audit_append(st, &e, NULL, err);
}

#define MAX_DERIVED 4

/* A derived Observation with its identifier (the builders leave it out). */
static json_t *identified(json_t *obs, const char *id, ct_error *err)
{
    if (obs && json_object_set_new(obs, "identifier", json_pack("[{s:s,s:s}]", "system",
                                                                CT_TWIN_IDENTIFIER_SYSTEM, "value", id))) {
        json_decref(obs);
        ct_error_set(err, CT_ENOMEM, "Observation/%s: out of memory", id);
        return NULL;
    }
    return obs;
}

/* A Provenance; a version after the first records a revision (v3
 * DataOperation UPDATE), not a creation. */
static json_t *provenance(const ct_fhir_provenance_in *in, int64_t version, ct_error *err)
{
    json_t *p = ct_fhir_provenance_build(in, err);
    json_t *coding = json_array_get(json_object_get(json_object_get(p, "activity"), "coding"), 0);
    if (p && version > 1 &&
        (json_object_set_new(coding, "code", json_string("UPDATE")) ||
         json_object_set_new(coding, "display", json_string("revise")))) {
        json_decref(p);
        ct_error_set(err, CT_ENOMEM, "Provenance: out of memory");
        return NULL;
    }
    return p;
}

static int write_one(ct_twin *t, tw_patient *p, ct_store *st, tw_pending *w, ct_error *err)
{
    tw_alert *al = w->alert;
    const ct_policy_alert *a = &w->a;
    const int cleared = a->transition == CT_POLICY_CLEARED;
    const int64_t now = tw_now_ms();
    const int64_t onset_ms = sample_ms(w->t0_ms, w->fs_hz, a->onset_sample);
    int64_t last_sample = cleared ? a->end_sample : a->sample;
    if (last_sample < a->onset_sample)
        last_sample = a->onset_sample;
    const int64_t last_ms = sample_ms(w->t0_ms, w->fs_hz, last_sample);
    const char *status = cleared ? "final" : "preliminary";
    const char *priority = ct_policy_priority_name(a->priority);

    /* The source ECG: the Observations whose samples the alert spans. */
    size_t max_src = t->opt.max_sources, n_src = 0, n_src_total = 0;
    char(*src)[65] = malloc(max_src * sizeof *src);
    const char **src_ids = malloc(max_src * sizeof *src_ids);
    char(*src_refs)[80] = malloc(max_src * sizeof *src_refs);
    const char **src_ref_ptrs = malloc(max_src * sizeof *src_ref_ptrs);
    int rc = CT_OK;
    if (!src || !src_ids || !src_refs || !src_ref_ptrs) {
        rc = ct_error_set(err, CT_ENOMEM, "patient %s: out of memory for a report", p->id);
        goto done;
    }
    if ((rc = ct_store_twin_sources(st, w->stream_id, a->onset_sample, last_sample + 1, src, max_src, &n_src,
                                    &n_src_total, err)))
        goto done;
    for (size_t i = 0; i < n_src; i++) {
        src_ids[i] = src[i];
        snprintf(src_refs[i], sizeof src_refs[i], "Observation/%s", src[i]);
        src_ref_ptrs[i] = src_refs[i];
    }

    /* What people read. */
    char what[256], conclusion[1024];
    ct_policy_alert_describe(a, what, sizeof what);
    int cn = snprintf(conclusion, sizeof conclusion, "%s. Alert priority %s; %s", what, priority,
                      cleared ? (a->stream_ended ? "monitoring ended while it was open" : "ended")
                              : "ongoing");
    if (w->note[0] && cn > 0 && (size_t)cn < sizeof conclusion)
        cn += snprintf(conclusion + cn, sizeof conclusion - (size_t)cn, ". %s", w->note);
    if (n_src_total > n_src && cn > 0 && (size_t)cn < sizeof conclusion)
        snprintf(conclusion + cn, sizeof conclusion - (size_t)cn,
                 ". Derived from %zu ECG Observations; the first %zu are referenced", n_src_total, n_src);

    /* Derived Observations. */
    char ids[MAX_DERIVED][CT_FHIR_ID_MAX + 1];
    const char *result_ids[MAX_DERIVED];
    int64_t versions[MAX_DERIVED];
    size_t n_res = 0;
    ct_fhir_derived_in din = {.status = status,
                              .patient_id = p->id,
                              .start_ms = onset_ms,
                              .end_ms = last_ms > onset_ms ? last_ms : -1,
                              .issued_ms = now,
                              .device_id = t->device_id,
                              .derived_from_ids = src_ids,
                              .n_derived_from = n_src};
    double hr = cleared && (a->rule == CT_POLICY_HR_HIGH || a->rule == CT_POLICY_HR_LOW) ? a->worst.hr_bpm
                                                                                          : a->values.hr_bpm;
    ct_fhir_metric metrics[MAX_DERIVED];
    size_t n_metrics = metrics_for(a->rule, metrics);

    if ((rc = ct_store_begin(st, err)))
        goto done;
    if (hr > 0 && hr <= 1000) {
        if (snprintf(ids[n_res], sizeof ids[n_res], "%s-hr", al->report_id) >= (int)sizeof ids[n_res]) {
            rc = ct_error_set(err, CT_EINVAL, "report id %s is too long", al->report_id);
            goto rollback;
        }
        din.id = ids[n_res];
        if ((rc = put(st, identified(ct_fhir_heart_rate_build(&din, hr, err), ids[n_res], err), "Observation",
                      ids[n_res], &versions[n_res], err)))
            goto rollback;
        result_ids[n_res] = ids[n_res];
        n_res++;
    }
    for (size_t m = 0; m < n_metrics && n_res < MAX_DERIVED; m++) {
        if (snprintf(ids[n_res], sizeof ids[n_res], "%s-%s", al->report_id, ct_fhir_metric_code(metrics[m])) >=
            (int)sizeof ids[n_res]) {
            rc = ct_error_set(err, CT_EINVAL, "report id %s is too long", al->report_id);
            goto rollback;
        }
        din.id = ids[n_res];
        if ((rc = put(st,
                      identified(ct_fhir_count_build(&din, metrics[m], metric_count(&w->counts, metrics[m]), err),
                                 ids[n_res], err),
                      "Observation", ids[n_res], &versions[n_res], err)))
            goto rollback;
        result_ids[n_res] = ids[n_res];
        n_res++;
    }

    /* The report itself. */
    ct_fhir_finding findings[4];
    size_t n_findings = findings_for(w, findings);
    ct_fhir_report_in rin = {.id = al->report_id,
                             .status = status,
                             .patient_id = p->id,
                             .start_ms = onset_ms,
                             .end_ms = cleared ? last_ms : -1,
                             .issued_ms = now,
                             .identifier_system = CT_TWIN_IDENTIFIER_SYSTEM,
                             .identifier_value = al->report_id,
                             .result_ids = result_ids,
                             .n_results = n_res,
                             .conclusion = conclusion,
                             .findings = findings,
                             .n_findings = n_findings};
    int64_t version = 0;
    if ((rc = put(st, ct_fhir_report_build(&rin, err), "DiagnosticReport", al->report_id, &version, err)))
        goto rollback;

    /* Provenance of exactly these versions. */
    char targets[MAX_DERIVED + 1][CT_FHIR_TYPE_MAX + 2 * CT_FHIR_ID_MAX + 16];
    const char *target_ptrs[MAX_DERIVED + 1];
    snprintf(targets[0], sizeof targets[0], "DiagnosticReport/%s/_history/%lld", al->report_id, (long long)version);
    for (size_t i = 0; i < n_res; i++)
        snprintf(targets[i + 1], sizeof targets[i + 1], "Observation/%s/_history/%lld", result_ids[i],
                 (long long)versions[i]);
    for (size_t i = 0; i <= n_res; i++)
        target_ptrs[i] = targets[i];
    char prov_id[CT_FHIR_ID_MAX + 1];
    if (snprintf(prov_id, sizeof prov_id, "%s-prov-%lld", al->report_id, (long long)version) >= (int)sizeof prov_id) {
        rc = ct_error_set(err, CT_EINVAL, "report id %s is too long", al->report_id);
        goto rollback;
    }
    ct_fhir_provenance_in pin = {.id = prov_id,
                                 .target_refs = target_ptrs,
                                 .n_targets = n_res + 1,
                                 .recorded_ms = now,
                                 .device_id = t->device_id,
                                 .source_refs = src_ref_ptrs,
                                 .n_sources = n_src};
    if ((rc = put(st, provenance(&pin, version, err), "Provenance", prov_id, NULL, err)))
        goto rollback;

    /* The alert row. */
    ct_store_twin_alert row;
    memset(&row, 0, sizeof row);
    row.id = al->row_id;
    snprintf(row.patient, sizeof row.patient, "%s", p->id);
    row.stream_id = w->stream_id;
    snprintf(row.rule, sizeof row.rule, "%s", ct_policy_rule_name(a->rule));
    snprintf(row.priority, sizeof row.priority, "%s", priority);
    snprintf(row.state, sizeof row.state, "%s", cleared ? (a->stream_ended ? "ended" : "cleared") : "open");
    row.onset_sample = a->onset_sample;
    row.onset_ms = onset_ms;
    row.raised_sample = a->transition == CT_POLICY_RAISED ? a->sample : 0;
    row.raised_ms = a->transition == CT_POLICY_RAISED ? sample_ms(w->t0_ms, w->fs_hz, a->sample) : 0;
    row.end_sample = cleared ? last_sample : -1;
    row.end_ms = cleared ? last_ms : -1;
    snprintf(row.summary, sizeof row.summary, "%s", what);
    snprintf(row.report_id, sizeof row.report_id, "%s", al->report_id);
    row.report_version = version;
    row.created_ms = row.updated_ms = now;
    if (a->transition == CT_POLICY_RAISED)
        rc = ct_store_twin_alert_insert(st, &row, err);
    else
        rc = ct_store_twin_alert_update(st, &row, err);
    if (rc)
        goto rollback;
    if (t->upstream && (rc = ct_store_twin_outbox_add(st, "DiagnosticReport", al->report_id, version, err)))
        goto rollback;
    if ((rc = audit_alert(t, st, p->id, al, row.id, transition_name(a), priority, version, onset_ms,
                          cleared ? last_ms : -1, now, err)))
        goto rollback;
    if ((rc = ct_store_commit(st, err)))
        goto rollback;
    al->row_id = row.id;
    al->report_version = version;
    snprintf(al->summary, sizeof al->summary, "%s", what);
    goto done;
rollback:
    ct_store_rollback(st);
    ct_error_prefix(err, "patient %s: storing the %s %s alert", p->id, transition_name(a),
                    ct_policy_rule_name(a->rule));
done:
    free(src);
    free(src_ids);
    free(src_refs);
    free(src_ref_ptrs);
    return rc;
}

int tw_pending_write(ct_twin *t, tw_patient *p, ct_store *st, size_t *written, ct_error *err)
{
    *written = 0;
    if (!st || ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "patient %s: alert reports are written outside a transaction",
                            p->id);
    size_t done = 0;
    int rc = CT_OK;
    while (done < p->n_pending) {
        if ((rc = write_one(t, p, st, &p->pending[done], err)))
            break;
        tw_alert_release(p->pending[done].alert);
        done++;
    }
    if (done) {
        memmove(p->pending, p->pending + done, (p->n_pending - done) * sizeof *p->pending);
        p->n_pending -= done;
    }
    /* Fix the strings' pointers after the move. */
    for (size_t i = 0; i < p->n_pending; i++) {
        tw_pending *w = &p->pending[i];
        if (w->a.values.quality)
            w->a.values.quality = w->quality;
        if (w->a.values.rhythm)
            w->a.values.rhythm = w->rhythm;
        if (w->a.worst.quality)
            w->a.worst.quality = w->worst_quality;
        if (w->a.worst.rhythm)
            w->a.worst.rhythm = w->worst_rhythm;
    }
    *written = done;
    if (rc == CT_OK && p->pending_overflow) {
        /* Said once: the caller logs it; the transitions are gone. */
        rc = ct_error_set(err, CT_ENOMEM, "patient %s: %d alert transitions were lost for want of memory",
                          p->id, p->pending_overflow);
        p->pending_overflow = 0;
    }
    return rc;
}

/* ---- at start ------------------------------------------------------------------------ */

int tw_device_ensure(ct_twin *t, ct_store *st, ct_error *err)
{
    int rc = ct_store_resource_get(st, "Device", t->device_id, 0, NULL, NULL, NULL, NULL, NULL);
    if (rc == CT_OK)
        return CT_OK;
    json_t *d = ct_fhir_device_build(t->device_id, CT_TWIN_DEVICE_NAME, CT_VERSION, err);
    if (!d)
        return err ? err->code : CT_ENOMEM;
    if ((rc = ct_store_begin(st, err))) {
        json_decref(d);
        return rc;
    }
    int64_t version = 0;
    rc = put(st, d, "Device", t->device_id, &version, err);
    if (rc == CT_OK) {
        ct_audit_entry e = {.actor = {t->device_id, "device", ""},
                            .action = "create",
                            .resource_type = "Device",
                            .resource_id = t->device_id,
                            .resource_version = version,
                            .outcome = CT_AUDIT_OUTCOME_SUCCESS};
        rc = ct_audit_append(st, &e, NULL, err);
    }
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc)
        ct_store_rollback(st);
    return rc;
}

/* Takes a stored resource's latest version for a new one (the caller
 * changes it and puts it back). */
static json_t *load(ct_store *st, const char *type, const char *id, ct_error *err)
{
    char *body = NULL;
    int deleted = 0;
    int rc = ct_store_resource_get(st, type, id, 0, &body, NULL, NULL, &deleted, err);
    if (rc || !body) {
        free(body);
        if (!rc)
            ct_error_set(err, CT_ENOTFOUND, "%s/%s was deleted", type, id);
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, &je);
    free(body);
    if (!json_is_object(j)) {
        json_decref(j);
        ct_error_set(err, CT_EFORMAT, "%s/%s: stored JSON does not parse: %s", type, id, je.text);
        return NULL;
    }
    json_object_del(json_object_get(j, "meta"), "versionId");
    json_object_del(json_object_get(j, "meta"), "lastUpdated");
    return j;
}

/* One alert left open by a previous run: its report becomes final with the
 * end of what was received, saying that the end was not observed. */
static int end_orphan(ct_twin *t, ct_store *st, const ct_store_twin_alert *al, int64_t end_sample, int64_t end_ms,
                      ct_error *err)
{
    const int64_t now = tw_now_ms();
    int rc = ct_store_begin(st, err);
    if (rc)
        return rc;
    json_t *rep = load(st, "DiagnosticReport", al->report_id, err);
    if (!rep) {
        rc = err && err->code ? err->code : CT_ENOMEM;
        goto rollback;
    }
    char end_text[CT_FHIR_INSTANT_CAP], now_text[CT_FHIR_INSTANT_CAP];
    ct_fhir_instant_format(end_ms, end_text, sizeof end_text);
    ct_fhir_instant_format(now, now_text, sizeof now_text);
    const char *old = json_string_value(json_object_get(rep, "conclusion"));
    char conclusion[1280];
    snprintf(conclusion, sizeof conclusion, "%s. Monitoring stopped while the alert was open (the service "
             "restarted); its end was not observed", old ? old : al->summary);
    json_t *period = json_object_get(rep, "effectivePeriod");
    if (!json_is_object(period) || json_object_set_new(rep, "status", json_string("final")) ||
        json_object_set_new(period, "end", json_string(end_text)) ||
        json_object_set_new(rep, "issued", json_string(now_text)) ||
        json_object_set_new(rep, "conclusion", json_string(conclusion))) {
        json_decref(rep);
        rc = ct_error_set(err, CT_EFORMAT, "DiagnosticReport/%s: not a report the twin wrote", al->report_id);
        goto rollback;
    }
    /* Its derived Observations become final too. */
    const json_t *results = json_object_get(rep, "result");
    char targets[MAX_DERIVED + 1][CT_FHIR_TYPE_MAX + 2 * CT_FHIR_ID_MAX + 16];
    const char *target_ptrs[MAX_DERIVED + 1];
    size_t n_t = 1;
    for (size_t i = 0; i < json_array_size(results) && n_t <= MAX_DERIVED; i++) {
        ct_fhir_ref r;
        const char *ref = json_string_value(json_object_get(json_array_get(results, i), "reference"));
        if (!ref || ct_fhir_ref_parse(ref, NULL, &r, NULL) != 0 || strcmp(r.type, "Observation") != 0)
            continue;
        json_t *o = load(st, "Observation", r.id, err);
        if (!o) {
            rc = err && err->code ? err->code : CT_ENOMEM;
            json_decref(rep);
            goto rollback;
        }
        json_object_set_new(o, "status", json_string("final"));
        json_t *op = json_object_get(o, "effectivePeriod");
        if (json_is_object(op))
            json_object_set_new(op, "end", json_string(end_text));
        int64_t v = 0;
        if ((rc = put(st, o, "Observation", r.id, &v, err))) {
            json_decref(rep);
            goto rollback;
        }
        snprintf(targets[n_t], sizeof targets[n_t], "Observation/%s/_history/%lld", r.id, (long long)v);
        n_t++;
    }
    int64_t version = 0;
    if ((rc = put(st, rep, "DiagnosticReport", al->report_id, &version, err)))
        goto rollback;
    snprintf(targets[0], sizeof targets[0], "DiagnosticReport/%s/_history/%lld", al->report_id, (long long)version);
    for (size_t i = 0; i < n_t; i++)
        target_ptrs[i] = targets[i];
    char prov_id[CT_FHIR_ID_MAX + 1];
    if (snprintf(prov_id, sizeof prov_id, "%s-prov-%lld", al->report_id, (long long)version) >= (int)sizeof prov_id) {
        rc = ct_error_set(err, CT_EINVAL, "report id %s is too long", al->report_id);
        goto rollback;
    }
    ct_fhir_provenance_in pin = {.id = prov_id,
                                 .target_refs = target_ptrs,
                                 .n_targets = n_t,
                                 .recorded_ms = now,
                                 .device_id = t->device_id};
    if ((rc = put(st, provenance(&pin, version, err), "Provenance", prov_id, NULL, err)))
        goto rollback;
    ct_store_twin_alert row = *al;
    snprintf(row.state, sizeof row.state, "ended");
    row.end_sample = end_sample > al->onset_sample ? end_sample : al->onset_sample;
    row.end_ms = end_ms > al->onset_ms ? end_ms : al->onset_ms;
    row.report_version = version;
    row.updated_ms = now;
    if ((rc = ct_store_twin_alert_update(st, &row, err)))
        goto rollback;
    if (t->upstream && (rc = ct_store_twin_outbox_add(st, "DiagnosticReport", al->report_id, version, err)))
        goto rollback;
    tw_alert tmp;
    memset(&tmp, 0, sizeof tmp);
    snprintf(tmp.report_id, sizeof tmp.report_id, "%s", al->report_id);
    ct_policy_rule rule = CT_POLICY_HR_HIGH;
    for (int r = 0; r < CT_POLICY_N_RULES; r++)
        if (strcmp(ct_policy_rule_name((ct_policy_rule)r), al->rule) == 0)
            rule = (ct_policy_rule)r;
    tmp.rule = rule;
    if ((rc = audit_alert(t, st, al->patient, &tmp, al->id, "ended", al->priority, version, al->onset_ms,
                          row.end_ms, now, err)))
        goto rollback;
    if ((rc = ct_store_commit(st, err)))
        goto rollback;
    return CT_OK;
rollback:
    ct_store_rollback(st);
    return ct_error_prefix(err, "ending alert %lld left open by the previous run", (long long)al->id);
}

int tw_end_orphan_alerts(ct_twin *t, ct_store *st, ct_error *err)
{
    ct_store_twin_alert *open = NULL;
    size_t n = 0;
    int rc = ct_store_twin_alerts_list(st, NULL, 1, 100000, &open, &n, err);
    if (rc)
        return rc;
    ct_store_twin_stream *live = NULL;
    size_t n_live = 0;
    if (n && (rc = ct_store_twin_streams_live(st, &live, &n_live, err))) {
        free(open);
        return rc;
    }
    for (size_t i = 0; i < n && rc == CT_OK; i++) {
        /* The alert ends where its stream's ECG ended, as far as we know. */
        int64_t end_sample = open[i].onset_sample, end_ms = open[i].onset_ms;
        for (size_t k = 0; k < n_live; k++)
            if (live[k].id == open[i].stream_id) {
                end_sample = live[k].next_sample;
                end_ms = sample_ms(live[k].t0_ms, live[k].fs_hz, end_sample);
            }
        rc = end_orphan(t, st, &open[i], end_sample, end_ms, err);
    }
    free(open);
    free(live);
    return rc;
}
