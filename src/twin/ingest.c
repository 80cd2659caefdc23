/* twin/ingest: ECG Observations into a patient's stream, and the stream
 * through the detector and the policy.
 *
 * The one idea: a patient's stream is one sample-index space (sample s was
 * taken at t0 + s / fs), and an Observation is placed in it by its effective
 * start. One that starts where the stream ends (within half a sample)
 * continues it; one that starts later leaves a gap; one that starts earlier
 * overlaps what was taken and is accepted only if the overlapping samples
 * are the ones already stored (a resend), refused otherwise. The decision
 * is taken under the patient's lock before anything is written, the
 * samples are written in the caller's transaction, and only once that
 * transaction has committed are they pushed through the detector, whose
 * state cannot be rolled back.
 *
 * Gaps: the detector must not invent beats across a gap, and the policy
 * must learn that the patient was not monitored. Both follow from showing
 * the detector the gap as frames with every lead absent (NULL), exactly as
 * `cardiotwin detect` shows a record's invalid samples: no beat can be
 * found, the detector reports the leads off, and the policy's signal_loss
 * rule times the loss like any other. A gap up to gap_bridge_max_s is
 * stored as missing samples in the same segment; a longer one is shown for
 * gap_bridge_max_s only (so the cost of a gap is bounded whatever its
 * length), then the detector is replaced by a new one at the new start, the
 * samples go to a new stored segment, and the policy, whose clock is the
 * sample index, sees time jump. Alerts open before the gap stay open: the
 * policy freezes them while the signal is lost, since nobody saw the
 * patient recover. A change of sampling rate or lead set ends the stream
 * (its alerts are cleared as ended) and starts another. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin_internal.h"

#define CHUNK_FRAMES 4096

/* ---- what the detector and the policy report ------------------------------------ */

static void count_beat(tw_counts *c, const ct_ecg_beat *b, double pause_ms)
{
    c->beats++;
    c->pvc += b->cls == CT_BEAT_V;
    c->sveb += b->cls == CT_BEAT_S;
    c->pauses += b->rr_ms >= pause_ms && b->rr_ms > 0;
}

void tw_counts_from_ring(const tw_patient *p, int64_t from, int64_t to, double pause_ms, tw_counts *c)
{
    memset(c, 0, sizeof *c);
    if (!p->beats_cap)
        return;
    size_t start = (p->beats_head + p->beats_cap - p->beats_n) % p->beats_cap;
    for (size_t i = 0; i < p->beats_n; i++) {
        const ct_twin_live_beat *lb = &p->beats[(start + i) % p->beats_cap];
        if (lb->sample < from || lb->sample > to)
            continue;
        ct_ecg_beat b;
        memset(&b, 0, sizeof b);
        b.cls = lb->cls == 'V' ? CT_BEAT_V : lb->cls == 'A' ? CT_BEAT_S : CT_BEAT_N;
        b.rr_ms = lb->rr_ms;
        count_beat(c, &b, pause_ms);
    }
}

static double pause_threshold_ms(const tw_patient *p)
{
    const ct_policy_rules *r = p->ev ? ct_policy_eval_rules(p->ev) : NULL;
    return r ? r->pause.threshold_ms : 3000.0;
}

static void on_beat(void *ctx, const ct_ecg_beat *b0)
{
    tw_patient *p = ctx;
    ct_twin *t = p->twin;
    ct_ecg_beat b = *b0;
    b.sample += p->det_base;
    b.reported_at += p->det_base;
    p->call_beats++;
    tw_beat_queue(p, &b);
    if (p->beats_cap) {
        ct_twin_live_beat *lb = &p->beats[p->beats_head];
        lb->sample = b.sample;
        lb->t_ms = p->stream.t0_ms + (int64_t)llround((double)b.sample * 1000.0 / p->stream.fs_hz);
        lb->cls = ct_ecg_beat_class_mnemonic(b.cls)[0];
        lb->hr_bpm = b.hr_bpm;
        lb->rr_ms = b.rr_ms;
        p->beats_head = (p->beats_head + 1) % p->beats_cap;
        if (p->beats_n < p->beats_cap)
            p->beats_n++;
    }
    if (b.hr_bpm > 0)
        p->hr_bpm = b.hr_bpm;
    /* Counted before the policy sees the beat, so that an alert this beat
     * raises finds it in the ring. */
    double pause_ms = pause_threshold_ms(p);
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        tw_alert *a = p->open[r];
        if (a && a->open && b.sample >= a->onset_sample)
            count_beat(&a->counts, &b, pause_ms);
    }
    if (t->opt.observer.on_beat)
        t->opt.observer.on_beat(t->opt.observer.ctx, p->id, &b);
    if (p->ev)
        ct_policy_eval_beat(p->ev, &b);
}

/* An event in stream indices. */
static void take_event(tw_patient *p, const ct_ecg_event *ev)
{
    ct_twin *t = p->twin;
    if (ev->kind == CT_EVENT_RHYTHM && ev->end_sample == -1)
        snprintf(p->rhythm, sizeof p->rhythm, "%s", ev->label);
    else if (ev->kind == CT_EVENT_RHYTHM && strcmp(p->rhythm, ev->label) == 0)
        p->rhythm[0] = '\0';
    if (ev->kind == CT_EVENT_QUALITY && ev->lead == -1)
        snprintf(p->quality, sizeof p->quality, "%s", ev->label);
    if (ev->kind == CT_EVENT_VRUN)
        for (int r = 0; r < CT_POLICY_N_RULES; r++) {
            tw_alert *a = p->open[r];
            if (a && a->open && ev->sample >= a->onset_sample)
                a->counts.vruns++;
        }
    if (t->opt.observer.on_event)
        t->opt.observer.on_event(t->opt.observer.ctx, p->id, ev);
    if (p->ev)
        ct_policy_eval_event(p->ev, ev);
}

static void on_event(void *ctx, const ct_ecg_event *e0)
{
    tw_patient *p = ctx;
    ct_ecg_event ev = *e0;
    ev.sample += p->det_base;
    if (ev.end_sample != -1)
        ev.end_sample += p->det_base;
    take_event(p, &ev);
}

static void on_policy(void *ctx, const ct_policy_alert *a)
{
    tw_patient *p = ctx;
    ct_twin *t = p->twin;
    if (t->opt.observer.on_alert)
        t->opt.observer.on_alert(t->opt.observer.ctx, p->id, a);
    tw_pending_add(t, p, a);
}

/* ---- the analysis of a stream ----------------------------------------------------- */

static int64_t latency_samples(const tw_patient *p)
{
    return (int64_t)ceil(CT_ECG_MAX_LATENCY_MS * p->stream.fs_hz / 1000.0);
}

/* The policy learns that every beat up to the detector's horizon was
 * delivered (policy.h: the sample count minus the detector's latency). */
static void advance(tw_patient *p)
{
    if (!p->ev || !p->det)
        return;
    int64_t now = p->det_base + ct_ecg_detector_samples(p->det) - latency_samples(p);
    if (now > 0)
        ct_policy_advance(p->ev, now);
}

static int detector_new(tw_patient *p, int64_t base, ct_error *err)
{
    ct_ecg_detector_free(p->det);
    p->det = NULL;
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = p->stream.fs_hz;
    cfg.n_leads = p->n_leads;
    for (int l = 0; l < p->n_leads; l++) {
        cfg.gain_adu_per_mv[l] = p->gain[l];
        /* SampledData's origin may not be a whole number of ADC units; the
         * detector filters DC, so half a unit of offset changes nothing. */
        cfg.baseline_adu[l] = (int)lround(p->baseline[l]);
    }
    ct_ecg_sink sink = {on_beat, on_event, p};
    int rc = ct_ecg_detector_new(&cfg, &sink, &p->det, err);
    if (rc)
        return ct_error_prefix(err, "patient %s", p->id);
    p->det_base = base;
    return CT_OK;
}

static int rings_alloc(ct_twin *t, tw_patient *p, ct_error *err)
{
    size_t cap = (size_t)ceil(t->opt.live_seconds * p->stream.fs_hz);
    size_t bytes = cap * (size_t)p->n_leads * sizeof(int16_t);
    if (cap != p->ring_cap || !p->ring || bytes == 0) {
        int16_t *r = realloc(p->ring, bytes ? bytes : 1);
        if (!r)
            return ct_error_set(err, CT_ENOMEM, "patient %s: out of memory for %zu bytes of live samples", p->id,
                                bytes);
        p->ring = r;
        p->ring_cap = cap;
    }
    p->ring_n = 0;
    p->ring_end = 0;
    if (!p->beats) {
        p->beats = calloc(t->opt.live_beats, sizeof *p->beats);
        if (!p->beats)
            return ct_error_set(err, CT_ENOMEM, "patient %s: out of memory for the recent beats", p->id);
        p->beats_cap = t->opt.live_beats;
    }
    p->beats_n = p->beats_head = 0;
    return CT_OK;
}

int tw_analysis_start(ct_twin *t, tw_patient *p, int64_t first_sample, ct_error *err)
{
    tw_analysis_free(p);
    int rc = rings_alloc(t, p, err);
    if (rc)
        return rc;
    p->ring_end = first_sample;
    p->rhythm[0] = '\0';
    snprintf(p->quality, sizeof p->quality, "ok");
    p->hr_bpm = 0;
    p->gap_from = p->gap_to = -1;
    ct_policy_eval_config pc = {p->id, p->stream.fs_hz, p->n_leads, first_sample};
    ct_policy_sink ps = {on_policy, p};
    if ((rc = ct_policy_eval_new(t->policy, &pc, &ps, &p->ev, err)))
        return ct_error_prefix(err, "patient %s", p->id);
    return detector_new(p, first_sample, err);
}

void tw_analysis_free(tw_patient *p)
{
    ct_ecg_detector_free(p->det);
    p->det = NULL;
    ct_policy_eval_free(p->ev);
    p->ev = NULL;
}

void tw_analysis_finish(ct_twin *t, tw_patient *p)
{
    (void)t;
    if (p->det) {
        advance(p);
        ct_ecg_detector_finish(p->det);
    }
    if (p->ev)
        ct_policy_eval_finish(p->ev, p->stream.next_sample);
    tw_analysis_free(p);
    p->rhythm[0] = '\0';
    p->hr_bpm = 0;
}

/* ---- pushing frames -------------------------------------------------------------- */

static void ring_put(tw_patient *p, const int16_t *const *leads, size_t n)
{
    if (!p->ring_cap)
        return;
    size_t skip = n > p->ring_cap ? n - p->ring_cap : 0;
    for (size_t i = skip; i < n; i++) {
        size_t at = (size_t)((p->ring_end + (int64_t)i) % (int64_t)p->ring_cap);
        for (int l = 0; l < p->n_leads; l++)
            p->ring[(size_t)l * p->ring_cap + at] = leads && leads[l] ? leads[l][i] : CT_FHIR_SAMPLE_MISSING;
    }
    p->ring_end += (int64_t)n;
    p->ring_n = p->ring_n + n > p->ring_cap ? p->ring_cap : p->ring_n + n;
}

/* n frames with every lead absent: a gap, shown to the detector as leads
 * off (never as samples it could find beats in). */
static void push_absent(tw_patient *p, int64_t n)
{
    const int16_t *none[CT_ECG_MAX_LEADS] = {0};
    if (p->det)
        for (int64_t i = 0; i < n; i += CHUNK_FRAMES)
            ct_ecg_detector_push(p->det, none, (size_t)(n - i < CHUNK_FRAMES ? n - i : CHUNK_FRAMES));
    advance(p);
}

/* The Observation's samples [skip, skip + n) in stream lead order, as
 * ct_twin_run_record pushes a record: runs with the same leads present, a
 * missing sample making its lead absent for that frame. */
static void push_samples(tw_patient *p, const ct_fhir_ecg *ecg, const int *map, int64_t skip, int64_t n)
{
    const int nl = p->n_leads;
    const int16_t *src[CT_ECG_MAX_LEADS];
    for (int l = 0; l < nl; l++)
        src[l] = ecg->leads[map[l]].samples + skip;
    if (p->say_ok && p->ev) {
        /* A new detector says nothing until a lead changes state, but the
         * policy last heard "lead-off" from the one before it. */
        ct_ecg_event ok;
        memset(&ok, 0, sizeof ok);
        ok.kind = CT_EVENT_QUALITY;
        ok.sample = p->det_base;
        ok.end_sample = -1;
        ok.lead = -1;
        snprintf(ok.label, sizeof ok.label, "ok");
        take_event(p, &ok);
    }
    p->say_ok = 0;
    const int16_t *ptr[CT_ECG_MAX_LEADS];
    int64_t i = 0;
    while (i < n && p->det) {
        unsigned valid = 0;
        for (int l = 0; l < nl; l++)
            if (src[l][i] != CT_FHIR_SAMPLE_MISSING)
                valid |= 1u << l;
        int64_t j = i + 1;
        while (j < n && j - i < CHUNK_FRAMES) {
            unsigned v = 0;
            for (int l = 0; l < nl; l++)
                if (src[l][j] != CT_FHIR_SAMPLE_MISSING)
                    v |= 1u << l;
            if (v != valid)
                break;
            j++;
        }
        for (int l = 0; l < nl; l++)
            ptr[l] = (valid >> l) & 1u ? src[l] + i : NULL;
        ct_ecg_detector_push(p->det, ptr, (size_t)(j - i));
        i = j;
    }
    ring_put(p, src, (size_t)n);
    advance(p);
}

/* ---- deciding ---------------------------------------------------------------------- */

static int analysed_status(ct_fhir_obs_status s)
{
    return s == CT_FHIR_OBS_PRELIMINARY || s == CT_FHIR_OBS_FINAL || s == CT_FHIR_OBS_AMENDED ||
           s == CT_FHIR_OBS_CORRECTED;
}

static int check_ecg(const ct_fhir_ecg *e, const char *obs_id, ct_error *err)
{
    if (!obs_id || !ct_fhir_id_valid(obs_id, strlen(obs_id)))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: id \"%.64s\" is not a FHIR id", obs_id ? obs_id : "");
    if (!ct_fhir_id_valid(e->patient_id, strlen(e->patient_id)))
        return ct_error_set(err, CT_EINVAL, "Observation/%s: no patient", obs_id);
    if (e->n_leads < 1 || e->n_leads > CT_ECG_MAX_LEADS)
        return ct_error_set(err, CT_EINVAL, "Observation/%s: %d leads, the twin takes 1..%d", obs_id, e->n_leads,
                            CT_ECG_MAX_LEADS);
    size_t n = e->leads[0].n_samples;
    double fs = e->leads[0].fs_hz;
    if (n < 1)
        return ct_error_set(err, CT_EINVAL, "Observation/%s: no samples", obs_id);
    if (!(fs >= CT_ECG_MIN_FS_HZ && fs <= CT_ECG_MAX_FS_HZ))
        return ct_error_set(err, CT_EUNSUPPORTED,
                            "Observation/%s: sampling frequency %g Hz is outside the detector's %g..%g Hz", obs_id,
                            fs, CT_ECG_MIN_FS_HZ, CT_ECG_MAX_FS_HZ);
    for (int l = 0; l < e->n_leads; l++) {
        const ct_fhir_ecg_lead *L = &e->leads[l];
        if (!L->lead || !L->samples || L->n_samples != n || L->fs_hz != fs)
            return ct_error_set(err, CT_EINVAL, "Observation/%s: lead %d has no samples, or not as many at the "
                                "same rate as lead 0", obs_id, l);
        if (!(L->gain_adu_per_mv > 0 && L->gain_adu_per_mv < 1e7) || !(fabs(L->baseline_adu) < 1e6))
            return ct_error_set(err, CT_EINVAL, "Observation/%s: lead %s: gain %g or baseline %g out of range",
                                obs_id, L->lead->name, L->gain_adu_per_mv, L->baseline_adu);
        for (int k = 0; k < l; k++)
            if (e->leads[k].lead->mdc_code == L->lead->mdc_code)
                return ct_error_set(err, CT_EINVAL, "Observation/%s: lead %s is given twice", obs_id,
                                    L->lead->name);
    }
    return CT_OK;
}

/* map[l] = index in ecg of stream lead l; 0 when the lead sets differ. */
static int same_leads(const tw_patient *p, const ct_fhir_ecg *e, int *map)
{
    if (e->n_leads != p->n_leads)
        return 0;
    for (int l = 0; l < p->n_leads; l++) {
        map[l] = -1;
        for (int k = 0; k < e->n_leads; k++)
            if (e->leads[k].lead->mdc_code == p->lead_codes[l])
                map[l] = k;
        if (map[l] < 0)
            return 0;
    }
    return 1;
}

static int same_calibration(const tw_patient *p, const ct_fhir_ecg *e, const int *map)
{
    for (int l = 0; l < p->n_leads; l++) {
        const ct_fhir_ecg_lead *L = &e->leads[map[l]];
        if (fabs(L->gain_adu_per_mv - p->gain[l]) > 1e-9 * p->gain[l] ||
            fabs(L->baseline_adu - p->baseline[l]) > 1e-6)
            return 0;
    }
    return 1;
}

/* Do the Observation's samples [0, n) equal the stored stream samples [s0,
 * s0 + n)? 1 yes, 0 no, < 0 an error. */
static int equal_stored(ct_store *st, const tw_patient *p, const ct_fhir_ecg *e, const int *map, int64_t s0,
                        int64_t n, ct_error *err)
{
    int16_t buf[CHUNK_FRAMES];
    for (int l = 0; l < p->n_leads; l++) {
        const int16_t *src = e->leads[map[l]].samples;
        for (int64_t i = 0; i < n; i += CHUNK_FRAMES) {
            size_t want = (size_t)(n - i < CHUNK_FRAMES ? n - i : CHUNK_FRAMES), got = 0;
            int rc = ct_store_samples_read(st, p->signal_ids[l], s0 - p->seg_first_sample + i, buf, want, &got, err);
            if (rc)
                return rc;
            if (got != want || memcmp(buf, src + i, want * sizeof *buf) != 0)
                return 0;
        }
    }
    return 1;
}

/* A message for people: cut when too long. */
static void say(char *buf, size_t cap, const char *fmt, ...) CT_PRINTF(3, 4);
static void say(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static void ms_text(int64_t t_ms, char *buf, size_t cap)
{
    if (ct_fhir_instant_format(t_ms, buf, cap) != 0)
        snprintf(buf, cap, "%lld ms", (long long)t_ms);
}

/* Decides what the Observation is to the stream (under the patient's lock,
 * nothing written). Fills the ticket's plan and res. */
static int plan(ct_twin *t, ct_store *st, tw_patient *p, const ct_fhir_ecg *e, ct_twin_ticket *tk,
                ct_twin_ingest_result *res, ct_error *err)
{
    const double fs = e->leads[0].fs_hz;
    const int64_t n = (int64_t)e->leads[0].n_samples;
    const char *oid = tk->obs_id;
    int same_fs = p->has_stream && p->stream.fs_hz == fs;
    int leads_ok = p->has_stream && same_leads(p, e, tk->map);
    tk->n_new = n;
    if (!p->has_stream) {
        tk->new_stream = 1;
        tk->t0_ms = e->start_ms;
        for (int l = 0; l < e->n_leads; l++)
            tk->map[l] = l;
        tk->verdict = CT_TWIN_STARTED;
        say(res->message, sizeof res->message, "Observation/%s starts a stream of patient %s", oid, p->id);
        return CT_OK;
    }
    const double sfs = p->stream.fs_hz;
    const double pos = (double)(e->start_ms - p->stream.t0_ms) * sfs / 1000.0;
    const int64_t next = p->stream.next_sample;
    const double d = pos - (double)next;
    const double tol = t->opt.align_tolerance_samples + 1e-9;
    char when[CT_FHIR_INSTANT_CAP], expect[CT_FHIR_INSTANT_CAP];
    ms_text(e->start_ms, when, sizeof when);
    ms_text(p->stream.t0_ms + (int64_t)llround((double)next * 1000.0 / sfs), expect, sizeof expect);

    if (d < -tol) {
        /* It reaches back into what the stream holds: only a resend of the
         * same samples is acceptable. */
        int64_t s0 = llround(pos);
        if (!same_fs || !leads_ok)
            return ct_error_set(err, CT_EEXIST, "Observation/%s starts at %s, inside the ECG already taken for "
                                "patient %s (which runs to %s), with another sampling rate or lead set",
                                oid, when, p->id, expect);
        if (fabs(pos - (double)s0) > tol)
            return ct_error_set(err, CT_EEXIST, "Observation/%s starts at %s, inside the ECG already taken for "
                                "patient %s, between two of its samples", oid, when, p->id);
        if (s0 < p->seg_first_sample)
            return ct_error_set(err, CT_EEXIST, "Observation/%s starts at %s, before the stored ECG of patient "
                                "%s that a resend could be compared with; the stream runs to %s",
                                oid, when, p->id, expect);
        if (!same_calibration(p, e, tk->map))
            return ct_error_set(err, CT_EEXIST, "Observation/%s overlaps the ECG already taken for patient %s "
                                "(from %s to %s) with another scale (origin or factor)", oid, p->id, when, expect);
        int64_t overlap = next - s0 < n ? next - s0 : n;
        int eq = equal_stored(st, p, e, tk->map, s0, overlap, err);
        if (eq < 0)
            return eq;
        if (!eq)
            return ct_error_set(err, CT_EEXIST, "Observation/%s overlaps the ECG already taken for patient %s "
                                "(from %s to %s) with different samples", oid, p->id, when, expect);
        tk->start_sample = s0;
        tk->skip = overlap;
        tk->n_new = n - overlap;
        if (tk->n_new == 0) {
            tk->verdict = CT_TWIN_DUPLICATE;
            say(res->message, sizeof res->message, "Observation/%s repeats samples already taken for "
                     "patient %s: nothing to do", oid, p->id);
        } else {
            tk->verdict = CT_TWIN_APPENDED;
            say(res->message, sizeof res->message, "Observation/%s continues the ECG of patient %s; its "
                     "first %lld samples were already taken", oid, p->id, (long long)overlap);
        }
        return CT_OK;
    }
    if (!same_fs || !leads_ok) {
        tk->new_stream = 1;
        tk->t0_ms = e->start_ms;
        for (int l = 0; l < e->n_leads; l++)
            tk->map[l] = l;
        tk->verdict = CT_TWIN_STARTED;
        say(res->message, sizeof res->message, "Observation/%s changes the %s of patient %s's ECG: stream "
                 "%lld ends, stream %lld starts", oid, !same_fs ? "sampling rate" : "lead set", p->id,
                 (long long)p->stream.seq, (long long)p->stream.seq + 1);
        return CT_OK;
    }
    int64_t s0 = d <= tol ? next : llround(pos);
    tk->start_sample = s0;
    tk->gap_samples = s0 - next;
    int calib = same_calibration(p, e, tk->map);
    if (tk->gap_samples == 0) {
        tk->verdict = CT_TWIN_APPENDED;
        tk->new_segment = !calib;
        say(res->message, sizeof res->message, "Observation/%s continues the ECG of patient %s%s", oid, p->id,
                 calib ? "" : " with a new scale (a new stored segment)");
        return CT_OK;
    }
    tk->verdict = CT_TWIN_GAP;
    double gap_s = (double)tk->gap_samples / sfs;
    tk->bridge = calib && gap_s <= t->opt.gap_bridge_max_s;
    tk->new_segment = !tk->bridge;
    say(res->message, sizeof res->message, "Observation/%s for patient %s starts at %s, %.3f s after the "
             "ECG ended (%s): a gap%s", oid, p->id, when, gap_s, expect,
             tk->bridge ? ", kept as missing samples" : "; a new stored segment begins");
    return CT_OK;
}

int ct_twin_ecg_begin(ct_twin *t, ct_store *st, const ct_fhir_ecg *ecg, const char *observation_id,
                      ct_twin_ticket **ticket, ct_twin_ingest_result *res, ct_error *err)
{
    ct_twin_ingest_result scratch;
    if (!res)
        res = &scratch;
    memset(res, 0, sizeof *res);
    if (!ticket)
        return ct_error_set(err, CT_EINVAL, "twin: no place for the ticket");
    *ticket = NULL;
    if (!t || !st || !ecg)
        return ct_error_set(err, CT_EINVAL, "twin: no twin, store or ECG");
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "twin: ct_twin_ecg_begin must come before ct_store_begin (the "
                            "patient's lock is taken before the database's)");
    int rc = check_ecg(ecg, observation_id, err);
    if (rc)
        return rc;
    if (!analysed_status(ecg->status)) {
        res->verdict = CT_TWIN_IGNORED;
        say(res->message, sizeof res->message, "Observation/%s: the twin analyses preliminary, final, "
                 "amended and corrected ECG only", observation_id);
        return CT_OK;
    }
    tw_patient *p = tw_patient_get(t, ecg->patient_id, 1, err);
    if (!p)
        return err ? err->code : CT_ENOMEM;
    if ((rc = tw_lock(t, p, err)))
        return rc;
    /* Reports that could not be stored before are retried first: what the
     * policy said earlier goes out before anything newer. */
    if (p->n_pending) {
        size_t w = 0;
        ct_error perr;
        if (tw_pending_write(t, p, st, &w, &perr) != CT_OK && p->n_pending >= t->opt.max_pending) {
            tw_unlock(p);
            return ct_error_set(err, CT_ELIMIT, "patient %s: %zu alert reports are waiting for the database (%s); "
                                "no more ECG is taken until they are stored", p->id, p->n_pending, perr.msg);
        }
    }
    /* Beats the store refused wait in the patient's queue; past
     * max_pending_beats the ECG waits too, rather than the queue growing
     * without bound. */
    if (p->n_beat_q >= t->opt.max_pending_beats) {
        size_t w = 0;
        ct_error berr;
        if (tw_beats_write(t, p, st, &w, &berr) != CT_OK && p->n_beat_q >= t->opt.max_pending_beats) {
            tw_unlock(p);
            return ct_error_set(err, CT_ELIMIT, "patient %s: %zu beats are waiting for the database (%s); no more "
                                "ECG is taken until they are stored", p->id, p->n_beat_q, berr.msg);
        }
    }
    int64_t sid = 0, s_start = 0, s_n = 0;
    ct_error ferr;
    rc = ct_store_twin_source_find(st, p->id, observation_id, &sid, &s_start, &s_n, &ferr);
    if (rc == CT_OK) {
        tw_unlock(p);
        res->verdict = CT_TWIN_DUPLICATE;
        res->start_sample = s_start;
        say(res->message, sizeof res->message, "Observation/%s was taken before (samples %lld..%lld of a "
                 "stream of patient %s): nothing to do", observation_id, (long long)s_start,
                 (long long)(s_start + s_n - 1), p->id);
        return CT_OK;
    }
    if (rc != CT_ENOTFOUND) {
        tw_unlock(p);
        if (err)
            *err = ferr;
        return rc;
    }
    ct_twin_ticket *tk = calloc(1, sizeof *tk);
    if (!tk) {
        tw_unlock(p);
        return ct_error_set(err, CT_ENOMEM, "twin: out of memory");
    }
    tk->t = t;
    tk->p = p;
    tk->ecg = ecg;
    snprintf(tk->obs_id, sizeof tk->obs_id, "%s", observation_id);
    rc = plan(t, st, p, ecg, tk, res, err);
    res->verdict = tk->verdict;
    res->start_sample = tk->new_stream ? 0 : tk->start_sample;
    res->overlap_samples = tk->skip;
    res->n_samples = tk->n_new;
    res->new_segment = tk->new_segment || tk->new_stream;
    res->stream_seq = p->has_stream ? p->stream.seq + (tk->new_stream ? 1 : 0) : 1;
    if (tk->verdict == CT_TWIN_GAP)
        res->gap_ms = (int64_t)llround((double)tk->gap_samples * 1000.0 / p->stream.fs_hz);
    if (rc || tk->verdict == CT_TWIN_DUPLICATE) {
        free(tk);
        tw_unlock(p);
        return rc;
    }
    *ticket = tk;
    return CT_OK;
}

/* ---- writing ---------------------------------------------------------------------- */

static int segment_create(ct_twin_ticket *tk, ct_store *st, int64_t stream_id, int64_t stream_seq,
                          int64_t first_sample, ct_error *err)
{
    const ct_fhir_ecg *e = tk->ecg;
    ct_store_patient pat;
    memset(&pat, 0, sizeof pat);
    snprintf(pat.identifier, sizeof pat.identifier, "%s", e->patient_id);
    pat.age_years = -1;
    int rc = ct_store_patient_ensure(st, &pat, err);
    if (rc)
        return rc;
    ct_store_record rec;
    memset(&rec, 0, sizeof rec);
    rec.patient_id = pat.id;
    snprintf(rec.name, sizeof rec.name, "stream-%lld-%lld", (long long)stream_id, (long long)first_sample);
    snprintf(rec.source, sizeof rec.source, "twin");
    rec.fs_hz = e->leads[0].fs_hz;
    rec.n_signals = e->n_leads;
    snprintf(rec.comments, sizeof rec.comments, "live ECG of Patient/%s, stream %lld from sample %lld",
             e->patient_id, (long long)stream_seq, (long long)first_sample);
    if ((rc = ct_store_record_insert(st, &rec, err)))
        return rc;
    for (int l = 0; l < e->n_leads; l++) {
        const ct_fhir_ecg_lead *L = &e->leads[tk->map[l]];
        ct_store_signal sig;
        memset(&sig, 0, sizeof sig);
        sig.record_id = rec.id;
        sig.index = l;
        snprintf(sig.description, sizeof sig.description, "%s", L->text[0] ? L->text : L->lead->name);
        snprintf(sig.units, sizeof sig.units, "mV");
        sig.gain_adu_per_unit = L->gain_adu_per_mv;
        sig.baseline_adu = (int)lround(L->baseline_adu);
        sig.adc_resolution_bits = 16;
        if ((rc = ct_store_signal_insert(st, &sig, err)))
            return rc;
        tk->signal_ids[l] = sig.id;
    }
    ct_store_twin_segment seg = {0, stream_id, rec.id, first_sample, 0};
    if ((rc = ct_store_twin_segment_insert(st, &seg, err)))
        return rc;
    tk->seg_id = seg.id;
    tk->seg_record_id = rec.id;
    return CT_OK;
}

int ct_twin_ecg_write(ct_twin_ticket *tk, ct_store *st, ct_error *err)
{
    if (!tk || !st)
        return ct_error_set(err, CT_EINVAL, "twin: no ticket or store");
    if (!ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "twin: ct_twin_ecg_write belongs inside the caller's transaction");
    if (tk->written)
        return ct_error_set(err, CT_EINVAL, "twin: Observation/%s was written already", tk->obs_id);
    tw_patient *p = tk->p;
    const ct_fhir_ecg *e = tk->ecg;
    int rc = CT_OK;
    tk->stream = p->stream;
    int64_t seg_first = p->seg_first_sample;
    const int64_t *sig = p->signal_ids;
    if (tk->new_stream) {
        if (p->has_stream && (rc = ct_store_twin_stream_update(st, p->stream.id, p->stream.next_sample, 0, err)))
            goto out;
        memset(&tk->stream, 0, sizeof tk->stream);
        snprintf(tk->stream.patient, sizeof tk->stream.patient, "%s", e->patient_id);
        tk->stream.t0_ms = tk->t0_ms;
        tk->stream.fs_hz = e->leads[0].fs_hz;
        size_t o = 0;
        for (int l = 0; l < e->n_leads; l++)
            o += (size_t)snprintf(tk->stream.leads + o, sizeof tk->stream.leads - o, "%s%d", l ? "," : "",
                                  e->leads[tk->map[l]].lead->mdc_code);
        if ((rc = ct_store_twin_stream_insert(st, &tk->stream, err)) ||
            (rc = segment_create(tk, st, tk->stream.id, tk->stream.seq, 0, err)))
            goto out;
        seg_first = 0;
        sig = tk->signal_ids;
    } else if (tk->new_segment) {
        if ((rc = segment_create(tk, st, p->stream.id, p->stream.seq, tk->start_sample, err)))
            goto out;
        seg_first = tk->start_sample;
        sig = tk->signal_ids;
    } else {
        tk->seg_id = p->seg_id;
        tk->seg_record_id = p->seg_record_id;
        memcpy(tk->signal_ids, p->signal_ids, sizeof tk->signal_ids);
    }
    if (tk->bridge) {
        /* The gap, stored as missing samples: a segment's samples are
         * contiguous, and a reader sees where nothing was received. */
        static const int16_t missing_block[CHUNK_FRAMES] = {
#define M8 CT_FHIR_SAMPLE_MISSING, CT_FHIR_SAMPLE_MISSING, CT_FHIR_SAMPLE_MISSING, CT_FHIR_SAMPLE_MISSING, \
           CT_FHIR_SAMPLE_MISSING, CT_FHIR_SAMPLE_MISSING, CT_FHIR_SAMPLE_MISSING, CT_FHIR_SAMPLE_MISSING
#define M64 M8, M8, M8, M8, M8, M8, M8, M8
#define M512 M64, M64, M64, M64, M64, M64, M64, M64
            M512, M512, M512, M512, M512, M512, M512, M512};
#undef M512
#undef M64
#undef M8
        int64_t from = p->stream.next_sample;
        for (int l = 0; l < p->n_leads && rc == CT_OK; l++)
            for (int64_t i = 0; i < tk->gap_samples && rc == CT_OK; i += CHUNK_FRAMES) {
                size_t k = (size_t)(tk->gap_samples - i < CHUNK_FRAMES ? tk->gap_samples - i : CHUNK_FRAMES);
                rc = ct_store_samples_write(st, sig[l], from + i - seg_first, missing_block, k, err);
            }
        if (rc)
            goto out;
    }
    int64_t at = (tk->new_stream ? 0 : tk->start_sample) + tk->skip;
    for (int l = 0; l < e->n_leads && rc == CT_OK; l++)
        rc = ct_store_samples_write(st, sig[l], at - seg_first, e->leads[tk->map[l]].samples + tk->skip,
                                    (size_t)tk->n_new, err);
    if (rc == CT_OK)
        rc = ct_store_twin_source_insert(st, tk->stream.id, at, tk->n_new, tk->obs_id, err);
    if (rc == CT_OK)
        rc = ct_store_twin_stream_update(st, tk->stream.id, at + tk->n_new, 1, err);
    if (rc == CT_OK) {
        tk->stream.next_sample = at + tk->n_new;
        tk->written = 1;
    }
out:
    if (rc)
        ct_error_prefix(err, "Observation/%s of patient %s", tk->obs_id, p->id);
    return rc;
}

/* ---- after the commit: analysis ------------------------------------------------------ */

static void apply(ct_twin *t, ct_twin_ticket *tk, ct_twin_ingest_result *res)
{
    tw_patient *p = tk->p;
    const ct_fhir_ecg *e = tk->ecg;
    ct_error aerr;
    int rc = CT_OK;
    if (tk->new_stream) {
        if (p->has_stream)
            tw_analysis_finish(t, p);
        p->has_stream = 1;
        p->stream = tk->stream;
        p->stream.next_sample = 0;
        p->n_leads = e->n_leads;
        for (int l = 0; l < e->n_leads; l++)
            p->lead_codes[l] = e->leads[tk->map[l]].lead->mdc_code;
    } else if (tk->new_segment) {
        int64_t marker = (int64_t)ceil(t->opt.gap_bridge_max_s * p->stream.fs_hz);
        if (tk->gap_samples < marker)
            marker = tk->gap_samples;
        if (marker > 0) {
            p->gap_from = p->stream.next_sample;
            p->gap_to = tk->start_sample;
            push_absent(p, marker);
        }
    } else if (tk->bridge) {
        p->gap_from = p->stream.next_sample;
        p->gap_to = tk->start_sample;
        push_absent(p, tk->gap_samples);
        ring_put(p, NULL, (size_t)tk->gap_samples);
    }
    if (tk->new_stream || tk->new_segment) {
        p->seg_id = tk->seg_id;
        p->seg_record_id = tk->seg_record_id;
        p->seg_first_sample = tk->new_stream ? 0 : tk->start_sample;
        for (int l = 0; l < p->n_leads; l++) {
            const ct_fhir_ecg_lead *L = &e->leads[tk->map[l]];
            p->signal_ids[l] = tk->signal_ids[l];
            p->gain[l] = L->gain_adu_per_mv;
            p->baseline[l] = L->baseline_adu;
        }
    }
    int64_t at = (tk->new_stream ? 0 : tk->start_sample) + tk->skip;
    if (tk->new_stream) {
        rc = tw_analysis_start(t, p, 0, &aerr);
    } else if (!p->ev) {
        /* Analysis could not be set up before (out of memory): again. */
        rc = tw_analysis_start(t, p, at, &aerr);
    } else if (tk->new_segment || !p->det) {
        /* A new scale or a long gap: a new detector from here on. */
        rc = detector_new(p, at, &aerr);
        p->say_ok = rc == CT_OK && tk->new_segment;
        if (tk->new_segment) {
            /* The view shows one scale per lead: start it afresh. */
            p->ring_end = at;
            p->ring_n = 0;
        }
    }
    if (rc != CT_OK) {
        /* The samples are stored; without a detector they are not analysed
         * until one can be made (retried by the next Observation). */
        res->report_error = rc;
        snprintf(res->report_error_msg, sizeof res->report_error_msg, "%s", aerr.msg);
        tw_analysis_free(p);
    }
    p->call_beats = 0;
    push_samples(p, e, tk->map, tk->skip, tk->n_new);
    p->stream.next_sample = at + tk->n_new;
    p->updated_ms = tw_now_ms();
}

int ct_twin_ecg_end(ct_twin_ticket *tk, ct_store *st, int committed, ct_twin_ingest_result *res, ct_error *err)
{
    if (!tk)
        return ct_error_set(err, CT_EINVAL, "twin: no ticket");
    ct_twin_ingest_result scratch;
    if (!res) {
        res = &scratch;
        memset(res, 0, sizeof *res);
    }
    tw_patient *p = tk->p;
    ct_twin *t = tk->t;
    int rc = CT_OK;
    if (!committed || !tk->written) {
        say(res->message, sizeof res->message, "Observation/%s of patient %s was not stored: the twin "
                 "forgets it", tk->obs_id, p->id);
        tw_unlock(p);
        free(tk);
        return CT_OK;
    }
    if (!st || ct_store_in_transaction(st)) {
        rc = ct_error_set(err, CT_EINVAL, "twin: ct_twin_ecg_end runs after the caller's commit, outside a "
                          "transaction; the ECG was analysed, its reports are pending");
        st = NULL;
    }
    apply(t, tk, res);
    res->beats = p->call_beats;
    res->stream_seq = p->stream.seq; /* as stored: a patient's earlier streams count */
    /* The beats first, in one operation of their own: a report written
     * next may count them, and a reader of /api/beats should find them. */
    if (st) {
        ct_error berr;
        size_t w = 0;
        if (tw_beats_write(t, p, st, &w, &berr) != CT_OK) {
            res->report_error = berr.code;
            snprintf(res->report_error_msg, sizeof res->report_error_msg, "%s", berr.msg);
        }
        res->beats_stored = w;
    }
    res->beats_pending = p->n_beat_q;
    if (st && p->n_pending) {
        ct_error perr;
        size_t w = 0;
        if (tw_pending_write(t, p, st, &w, &perr) != CT_OK) {
            res->report_error = perr.code;
            snprintf(res->report_error_msg, sizeof res->report_error_msg, "%s", perr.msg);
        }
        res->reports_written = w;
    }
    res->reports_pending = p->n_pending;
    tw_unlock(p);
    free(tk);
    return rc;
}

int ct_twin_ingest_ecg(ct_twin *t, ct_store *st, const ct_fhir_ecg *ecg, const char *observation_id,
                       ct_twin_ingest_result *res, ct_error *err)
{
    ct_twin_ingest_result scratch;
    if (!res)
        res = &scratch;
    ct_twin_ticket *tk = NULL;
    int rc = ct_twin_ecg_begin(t, st, ecg, observation_id, &tk, res, err);
    if (rc || !tk)
        return rc;
    rc = ct_store_begin(st, err);
    if (rc == CT_OK)
        rc = ct_twin_ecg_write(tk, st, err);
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc)
        ct_store_rollback(st);
    int rc2 = ct_twin_ecg_end(tk, st, rc == CT_OK, res, rc ? NULL : err);
    return rc ? rc : rc2;
}
