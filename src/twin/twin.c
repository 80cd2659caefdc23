/* twin/twin: the table of monitored patients and the entry points that are
 * not about ingesting ECG (creation, acknowledgment, the live view).
 *
 * The one idea: a ct_twin is shared by every HTTP worker, so it holds no
 * state outside its patients, and each patient has a mutex of its own. The
 * table's lock is held only to find or add a patient (a binary search in a
 * sorted array; adding is a memmove, O(n) but rare: once per patient). A
 * patient is never removed while the twin lives, so a pointer found under
 * the table lock stays valid after it is released. Patient locks are taken
 * with a timeout: a worker waiting behind a slow store gives up with
 * CT_ELIMIT ("busy") rather than hold its HTTP connection forever. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "cardiotwin/version.h"
#include "twin_internal.h"

void ct_twin_options_default(ct_twin_options *o)
{
    memset(o, 0, sizeof *o);
    o->align_tolerance_samples = 0.5;
    o->gap_bridge_max_s = 60.0;
    o->max_patients = 1000;
    o->live_seconds = 30.0;
    o->live_beats = 512;
    o->max_pending = 256;
    o->max_pending_beats = 20000;
    o->max_sources = 100;
    o->lock_timeout_ms = 10000;
    o->stream_idle_end_s = 86400;
}

static int check_options(const ct_twin_options *o, ct_error *err)
{
    if (!(o->align_tolerance_samples >= 0 && o->align_tolerance_samples <= 0.5))
        return ct_error_set(err, CT_EINVAL, "twin: align_tolerance_samples %g is outside 0..0.5",
                            o->align_tolerance_samples);
    if (!(o->gap_bridge_max_s >= 1 && o->gap_bridge_max_s <= 3600))
        return ct_error_set(err, CT_EINVAL, "twin: gap_bridge_max_s %g is outside 1..3600", o->gap_bridge_max_s);
    if (o->max_patients < 1 || o->max_patients > 100000)
        return ct_error_set(err, CT_EINVAL, "twin: max_patients %zu is outside 1..100000", o->max_patients);
    if (!(o->live_seconds >= 1 && o->live_seconds <= 600))
        return ct_error_set(err, CT_EINVAL, "twin: live_seconds %g is outside 1..600", o->live_seconds);
    if (o->live_beats < 16 || o->live_beats > 65536)
        return ct_error_set(err, CT_EINVAL, "twin: live_beats %zu is outside 16..65536", o->live_beats);
    if (o->max_pending < 8 || o->max_pending > 65536)
        return ct_error_set(err, CT_EINVAL, "twin: max_pending %zu is outside 8..65536", o->max_pending);
    if (o->max_pending_beats < 1000 || o->max_pending_beats > 1000000)
        return ct_error_set(err, CT_EINVAL, "twin: max_pending_beats %zu is outside 1000..1000000",
                            o->max_pending_beats);
    if (o->max_sources < 1 || o->max_sources > 1000)
        return ct_error_set(err, CT_EINVAL, "twin: max_sources %zu is outside 1..1000", o->max_sources);
    if (!(o->stream_idle_end_s >= 60 && o->stream_idle_end_s <= 365 * 86400.0))
        return ct_error_set(err, CT_EINVAL, "twin: stream_idle_end_s %g is outside 60..31536000",
                            o->stream_idle_end_s);
    if (o->lock_timeout_ms < 1 || o->lock_timeout_ms > 600000)
        return ct_error_set(err, CT_EINVAL, "twin: lock_timeout_ms %ld is outside 1..600000", o->lock_timeout_ms);
    if (o->upstream_base_url &&
        (strlen(o->upstream_base_url) > 2048 ||
         (strncmp(o->upstream_base_url, "https://", 8) != 0 && strncmp(o->upstream_base_url, "http://", 7) != 0)))
        return ct_error_set(err, CT_EINVAL, "twin: upstream base URL must be an http(s) URL of at most 2048 bytes");
    return CT_OK;
}

int64_t tw_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tw_random_id(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return CT_ENOMEM;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[r[i] >> 4];
        out[o++] = hex[r[i] & 15];
    }
    out[o] = '\0';
    return CT_OK;
}

/* ---- locks ------------------------------------------------------------------- */

int tw_lock(const ct_twin *t, tw_patient *p, ct_error *err)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    long ms = t->opt.lock_timeout_ms;
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    int rc = pthread_mutex_timedlock(&p->lock, &until);
    if (rc == 0)
        return CT_OK;
    if (rc == ETIMEDOUT)
        return ct_error_set(err, CT_ELIMIT, "patient %s is busy (another request has held it for %ld ms); "
                            "retry later", p->id, ms);
    return ct_error_set(err, CT_EINVAL, "patient %s: cannot take its lock (error %d)", p->id, rc);
}

void tw_unlock(tw_patient *p)
{
    pthread_mutex_unlock(&p->lock);
}

/* ---- the patient table ---------------------------------------------------------- */

/* Index of the first patient whose id is >= id. */
static size_t lower_bound(const ct_twin *t, const char *id)
{
    size_t lo = 0, hi = t->n_patients;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->patients[mid]->id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void patient_free(tw_patient *p)
{
    if (!p)
        return;
    tw_analysis_free(p);
    tw_pending_clear(p);
    tw_beats_free(p);
    for (int r = 0; r < CT_POLICY_N_RULES; r++)
        if (p->open[r]) {
            p->open[r]->open = 0;
            tw_alert_release(p->open[r]);
            p->open[r] = NULL;
        }
    free(p->ring);
    free(p->beats);
    free(p->pending);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

tw_patient *tw_patient_get(ct_twin *t, const char *id, int create, ct_error *err)
{
    if (!id || !ct_fhir_id_valid(id, strlen(id))) {
        ct_error_set(err, CT_EINVAL, "patient id \"%.64s\" is not a FHIR id", id ? id : "");
        return NULL;
    }
    pthread_mutex_lock(&t->table_lock);
    size_t i = lower_bound(t, id);
    tw_patient *p = i < t->n_patients && strcmp(t->patients[i]->id, id) == 0 ? t->patients[i] : NULL;
    if (p || !create) {
        pthread_mutex_unlock(&t->table_lock);
        if (!p)
            ct_error_set(err, CT_ENOTFOUND, "the twin holds no patient %s", id);
        return p;
    }
    /* create 2: a stream restored at start counts even beyond the limit;
     * refusing it would leave a patient unmonitored after a restart. */
    if (create != 2 && t->n_patients >= t->opt.max_patients) {
        pthread_mutex_unlock(&t->table_lock);
        ct_error_set(err, CT_ELIMIT, "patient %s: the twin already monitors %zu patients, its limit", id,
                     t->opt.max_patients);
        return NULL;
    }
    if (t->n_patients == t->cap_patients) {
        size_t cap = t->cap_patients ? 2 * t->cap_patients : 16;
        tw_patient **np = realloc(t->patients, cap * sizeof *np);
        if (!np) {
            pthread_mutex_unlock(&t->table_lock);
            ct_error_set(err, CT_ENOMEM, "patient %s: out of memory for the patient table", id);
            return NULL;
        }
        t->patients = np;
        t->cap_patients = cap;
    }
    p = calloc(1, sizeof *p);
    if (!p || pthread_mutex_init(&p->lock, NULL) != 0) {
        free(p);
        pthread_mutex_unlock(&t->table_lock);
        ct_error_set(err, CT_ENOMEM, "patient %s: out of memory", id);
        return NULL;
    }
    snprintf(p->id, sizeof p->id, "%s", id);
    p->twin = t;
    snprintf(p->quality, sizeof p->quality, "ok");
    memmove(t->patients + i + 1, t->patients + i, (t->n_patients - i) * sizeof *t->patients);
    t->patients[i] = p;
    t->n_patients++;
    pthread_mutex_unlock(&t->table_lock);
    return p;
}

/* ---- creation ------------------------------------------------------------------- */

/* Rebuilds a live stream of the previous run from its rows: stitching goes
 * on where it stopped; the detector starts afresh at next_sample. */
static int restore_stream(ct_twin *t, ct_store *st, const ct_store_twin_stream *s, ct_error *err)
{
    tw_patient *p = tw_patient_get(t, s->patient, 2, err);
    if (!p)
        return err ? err->code : CT_EINVAL;
    p->has_stream = 1;
    p->stream = *s;
    /* Lead codes, comma-separated. */
    p->n_leads = 0;
    const char *c = s->leads;
    while (*c && p->n_leads < CT_ECG_MAX_LEADS) {
        char *end;
        long v = strtol(c, &end, 10);
        if (end == c || v <= 0)
            return ct_error_set(err, CT_EFORMAT, "twin stream %lld: leads \"%s\" is not a list of MDC codes",
                                (long long)s->id, s->leads);
        p->lead_codes[p->n_leads++] = (int)v;
        c = *end == ',' ? end + 1 : end;
    }
    ct_store_twin_segment seg;
    int rc = ct_store_twin_segment_at(st, s->id, -1, &seg, err);
    if (rc)
        return rc;
    ct_store_signal *sig = NULL;
    size_t n_sig = 0;
    if ((rc = ct_store_signals_list(st, seg.record_id, &sig, &n_sig, err)))
        return rc;
    if ((int)n_sig != p->n_leads) {
        free(sig);
        return ct_error_set(err, CT_EFORMAT, "twin stream %lld: %zu signals stored for %d leads",
                            (long long)s->id, n_sig, p->n_leads);
    }
    p->seg_id = seg.id;
    p->seg_record_id = seg.record_id;
    p->seg_first_sample = seg.first_sample;
    for (int l = 0; l < p->n_leads; l++) {
        p->signal_ids[l] = sig[l].id;
        p->gain[l] = sig[l].gain_adu_per_unit;
        p->baseline[l] = sig[l].baseline_adu;
    }
    free(sig);
    return tw_analysis_start(t, p, s->next_sample, err);
}

int ct_twin_new(const ct_twin_options *opt, ct_store *st, ct_twin **out, ct_error *err)
{
    if (!out || !st)
        return ct_error_set(err, CT_EINVAL, "twin: no store or no place to put the twin");
    *out = NULL;
    ct_twin_options def;
    if (!opt) {
        ct_twin_options_default(&def);
        opt = &def;
    }
    int rc = check_options(opt, err);
    if (rc)
        return rc;
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "twin: create it outside a transaction");
    ct_twin *t = calloc(1, sizeof *t);
    if (!t)
        return ct_error_set(err, CT_ENOMEM, "twin: out of memory");
    if (pthread_mutex_init(&t->table_lock, NULL) != 0) {
        free(t);
        return ct_error_set(err, CT_ENOMEM, "twin: cannot create a mutex");
    }
    t->opt = *opt;
    if (opt->upstream_base_url && !(t->upstream = strdup(opt->upstream_base_url))) {
        ct_twin_free(t);
        return ct_error_set(err, CT_ENOMEM, "twin: out of memory");
    }
    t->opt.upstream_base_url = t->upstream;
    if (opt->policy) {
        t->policy = opt->policy;
    } else {
        if ((rc = ct_policy_load_default(&t->owned_policy, err))) {
            ct_twin_free(t);
            return rc;
        }
        t->policy = t->owned_policy;
    }
    t->opt.policy = t->policy;
    snprintf(t->device_id, sizeof t->device_id, "%s%s", CT_TWIN_DEVICE_ID_PREFIX, CT_VERSION);

    ct_store_twin_stream *live = NULL;
    size_t n_live = 0;
    if ((rc = tw_device_ensure(t, st, err)) || (rc = ct_store_twin_streams_live(st, &live, &n_live, err)) ||
        (rc = tw_end_orphan_alerts(t, st, err))) {
        free(live);
        ct_twin_free(t);
        return ct_error_prefix(err, "twin");
    }
    /* A stream that has received nothing for stream_idle_end_s was left
     * behind (a discharge without ct_twin_stream_end): it is ended, not
     * brought back. */
    int64_t now = tw_now_ms();
    for (size_t i = 0; i < n_live && rc == 0; i++) {
        if (now - live[i].updated_ms > (int64_t)(t->opt.stream_idle_end_s * 1000.0))
            rc = ct_store_twin_stream_update(st, live[i].id, live[i].next_sample, 0, err);
        else
            rc = restore_stream(t, st, &live[i], err);
    }
    free(live);
    if (rc) {
        ct_twin_free(t);
        return ct_error_prefix(err, "twin: restoring the live streams");
    }
    *out = t;
    return CT_OK;
}

void ct_twin_free(ct_twin *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_patients; i++)
        patient_free(t->patients[i]);
    free(t->patients);
    ct_policy_free(t->owned_policy);
    free(t->upstream);
    pthread_mutex_destroy(&t->table_lock);
    free(t);
}

const char *ct_twin_device_id(const ct_twin *t)
{
    return t ? t->device_id : NULL;
}

/* ---- acknowledgment ---------------------------------------------------------------- */

int ct_twin_acknowledge(ct_twin *t, ct_store *st, int64_t alert_id, const ct_audit_actor *who, ct_error *err)
{
    if (!t || !st || !who || !who->name || !who->name[0])
        return ct_error_set(err, CT_EINVAL, "acknowledge: no twin, store or user");
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "acknowledge: call it outside a transaction");
    int rc = ct_store_begin(st, err);
    if (rc)
        return rc;
    ct_store_twin_alert a;
    int64_t now = tw_now_ms();
    rc = ct_store_twin_alert_acknowledge(st, alert_id, who->name, now, &a, err);
    if (rc == CT_OK) {
        ct_audit_detail d;
        ct_audit_detail_init(&d);
        ct_audit_detail_int(&d, "alert", alert_id);
        ct_audit_detail_str(&d, "rule", a.rule);
        ct_audit_detail_str(&d, "priority", a.priority);
        ct_audit_detail_str(&d, "state", a.state);
        ct_audit_entry e = {.time_ms = now,
                            .actor = *who,
                            .action = "acknowledge",
                            .resource_type = "DiagnosticReport",
                            .resource_id = a.report_id,
                            .resource_version = a.report_version,
                            .patient = a.patient,
                            .outcome = CT_AUDIT_OUTCOME_SUCCESS,
                            .detail = ct_audit_detail_json(&d)};
        rc = ct_audit_append(st, &e, NULL, err);
    }
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc) {
        ct_store_rollback(st);
        return ct_error_prefix(err, "acknowledge alert %lld", (long long)alert_id);
    }
    /* The live view shows it at once. */
    tw_patient *p = tw_patient_get(t, a.patient, 0, NULL);
    if (p && tw_lock(t, p, NULL) == CT_OK) {
        for (int r = 0; r < CT_POLICY_N_RULES; r++)
            if (p->open[r] && p->open[r]->row_id == alert_id)
                p->open[r]->acknowledged = 1;
        tw_unlock(p);
    }
    return CT_OK;
}

/* ---- flush and end ------------------------------------------------------------------ */

int ct_twin_flush(ct_twin *t, ct_store *st, size_t *n_pending, ct_error *err)
{
    if (!t || !st)
        return ct_error_set(err, CT_EINVAL, "twin flush: no twin or store");
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "twin flush: call it outside a transaction");
    size_t left = 0;
    int ret = CT_OK;
    for (size_t i = 0;; i++) {
        pthread_mutex_lock(&t->table_lock);
        tw_patient *p = i < t->n_patients ? t->patients[i] : NULL;
        pthread_mutex_unlock(&t->table_lock);
        if (!p)
            break;
        /* The table only grows and keeps its order by id, so a patient
         * added meanwhile may be visited twice or shifted past: harmless
         * for a retry. */
        int rc = tw_lock(t, p, err);
        if (rc) {
            ret = rc;
            continue;
        }
        size_t w = 0;
        if (p->n_beat_q && (rc = tw_beats_write(t, p, st, &w, err)) != CT_OK)
            ret = rc;
        if (p->n_pending) {
            rc = tw_pending_write(t, p, st, &w, err);
            if (rc)
                ret = rc;
        }
        left += p->n_pending;
        tw_unlock(p);
    }
    if (n_pending)
        *n_pending = left;
    return ret;
}

int ct_twin_stream_end(ct_twin *t, ct_store *st, const char *patient_id, ct_error *err)
{
    if (!t || !st)
        return ct_error_set(err, CT_EINVAL, "twin: no twin or store");
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "twin: end a stream outside a transaction");
    tw_patient *p = tw_patient_get(t, patient_id, 0, err);
    if (!p)
        return err ? err->code : CT_ENOTFOUND;
    int rc = tw_lock(t, p, err);
    if (rc)
        return rc;
    if (!p->has_stream) {
        tw_unlock(p);
        return ct_error_set(err, CT_ENOTFOUND, "patient %s has no live stream", patient_id);
    }
    rc = ct_store_twin_stream_update(st, p->stream.id, p->stream.next_sample, 0, err);
    if (rc == CT_OK) {
        tw_analysis_finish(t, p);
        p->has_stream = 0;
        /* The detector's last beats came out of finish: stored first, and
         * whatever happens to them the reports are still tried. */
        size_t w = 0;
        ct_error berr;
        int brc = tw_beats_write(t, p, st, &w, &berr);
        rc = tw_pending_write(t, p, st, &w, err);
        if (rc == CT_OK && brc != CT_OK) {
            rc = brc;
            if (err)
                *err = berr;
        }
    }
    tw_unlock(p);
    return rc;
}

/* ---- patients and the live view -------------------------------------------------------- */

int ct_twin_patients(ct_twin *t, char (**ids)[CT_FHIR_ID_MAX + 1], size_t *n, ct_error *err)
{
    if (!t || !ids || !n)
        return ct_error_set(err, CT_EINVAL, "twin: missing argument");
    *ids = NULL;
    *n = 0;
    pthread_mutex_lock(&t->table_lock);
    size_t k = t->n_patients;
    char(*v)[CT_FHIR_ID_MAX + 1] = k ? malloc(k * sizeof *v) : NULL;
    if (k && !v) {
        pthread_mutex_unlock(&t->table_lock);
        return ct_error_set(err, CT_ENOMEM, "twin: out of memory listing patients");
    }
    for (size_t i = 0; i < k; i++)
        memcpy(v[i], t->patients[i]->id, sizeof v[i]);
    pthread_mutex_unlock(&t->table_lock);
    *ids = v;
    *n = k;
    return CT_OK;
}

static size_t patient_bytes(const tw_patient *p)
{
    return sizeof *p + ct_ecg_detector_memory_bytes(p->det) + ct_policy_eval_memory_bytes(p->ev) +
           p->ring_cap * (size_t)(p->n_leads > 0 ? p->n_leads : 0) * sizeof(int16_t) +
           p->beats_cap * sizeof *p->beats + p->cap_pending * sizeof *p->pending +
           p->cap_beat_q * sizeof *p->beat_q;
}

size_t ct_twin_patient_memory_bytes(const ct_twin *t, const char *patient_id)
{
    if (!t)
        return 0;
    tw_patient *p = tw_patient_get((ct_twin *)t, patient_id, 0, NULL);
    if (!p || tw_lock(t, p, NULL) != CT_OK)
        return 0;
    size_t b = patient_bytes(p);
    tw_unlock(p);
    return b;
}

void ct_twin_live_free(ct_twin_live *v)
{
    if (!v)
        return;
    for (int l = 0; l < CT_ECG_MAX_LEADS; l++)
        free(v->samples[l]);
    free(v->beats);
    memset(v, 0, sizeof *v);
}

int ct_twin_live_read(ct_twin *t, const char *patient_id, double seconds, ct_twin_live *out, ct_error *err)
{
    if (!t || !out)
        return ct_error_set(err, CT_EINVAL, "twin live view: missing argument");
    memset(out, 0, sizeof *out);
    if (!(seconds >= 0))
        return ct_error_set(err, CT_EINVAL, "twin live view: seconds %g is negative", seconds);
    tw_patient *p = tw_patient_get(t, patient_id, 0, err);
    if (!p)
        return err ? err->code : CT_ENOTFOUND;
    int rc = tw_lock(t, p, err);
    if (rc)
        return rc;
    snprintf(out->patient_id, sizeof out->patient_id, "%s", p->id);
    if (p->has_stream) {
        out->stream_seq = p->stream.seq;
        out->t0_ms = p->stream.t0_ms;
        out->fs_hz = p->stream.fs_hz;
        out->n_leads = p->n_leads;
        out->next_sample = p->stream.next_sample;
        for (int l = 0; l < p->n_leads; l++) {
            out->lead_codes[l] = p->lead_codes[l];
            out->gain_adu_per_mv[l] = p->gain[l];
            out->baseline_adu[l] = p->baseline[l];
        }
    }
    out->updated_ms = p->updated_ms;
    size_t n = p->ring_n;
    if (seconds > 0 && p->has_stream) {
        double want = seconds * p->stream.fs_hz;
        if (want < (double)n)
            n = (size_t)want;
    }
    out->first_sample = p->ring_end - (int64_t)n;
    out->n_samples = n;
    for (int l = 0; l < p->n_leads && n > 0 && rc == CT_OK; l++) {
        out->samples[l] = malloc(n * sizeof(int16_t));
        if (!out->samples[l]) {
            rc = ct_error_set(err, CT_ENOMEM, "twin live view: out of memory");
            break;
        }
        /* The ring's newest frame is at (ring_end - 1) mod cap. */
        const int16_t *ring = p->ring + (size_t)l * p->ring_cap;
        for (size_t i = 0; i < n; i++) {
            int64_t s = out->first_sample + (int64_t)i;
            out->samples[l][i] = ring[(size_t)(s % (int64_t)p->ring_cap)];
        }
    }
    if (rc == CT_OK && p->beats_n) {
        out->beats = malloc(p->beats_n * sizeof *out->beats);
        if (!out->beats)
            rc = ct_error_set(err, CT_ENOMEM, "twin live view: out of memory");
        else {
            size_t start = (p->beats_head + p->beats_cap - p->beats_n) % p->beats_cap;
            for (size_t i = 0; i < p->beats_n; i++)
                out->beats[i] = p->beats[(start + i) % p->beats_cap];
            out->n_beats = p->beats_n;
        }
    }
    out->hr_bpm = p->hr_bpm;
    snprintf(out->rhythm, sizeof out->rhythm, "%s", p->rhythm);
    snprintf(out->quality, sizeof out->quality, "%s", p->quality);
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        const tw_alert *a = p->open[r];
        if (!a)
            continue;
        ct_twin_live_alert *la = &out->alerts[out->n_alerts++];
        la->id = a->row_id;
        la->rule = a->rule;
        la->priority = a->priority;
        la->onset_ms = a->onset_ms;
        snprintf(la->report_id, sizeof la->report_id, "%s", a->report_id);
        snprintf(la->summary, sizeof la->summary, "%s", a->summary);
        la->acknowledged = a->acknowledged;
    }
    out->pending = p->n_pending;
    out->beats_pending = p->n_beat_q;
    out->memory_bytes = patient_bytes(p);
    tw_unlock(p);
    if (rc)
        ct_twin_live_free(out);
    return rc;
}
