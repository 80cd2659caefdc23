/* policy room, evaluation: turns one patient's beats and rhythm/quality
 * events into alert transitions (RAISED, UPDATED, CLEARED), following the
 * patient's rules.
 *
 * The one idea: every rule reduces, at any instant, to one of three states:
 * ALARM (its condition holds), CLEAR (its clear condition holds), or NEUTRAL
 * (neither: inside the hysteresis band, or unknown because the signal cannot
 * be analysed). One engine does the rest for all rules: an alert is RAISED
 * once ALARM has held for the rule's onset delay, and CLEARED once CLEAR has
 * held for its clear delay; NEUTRAL restarts both clocks and so freezes an
 * open alert (an alert is never cleared because we stopped seeing, only
 * because we saw the patient recover). Rules whose condition is an event
 * rather than a level (a pause, a complete episode) are "pulses": they raise
 * at once and start the clear clock at the event's end, so a burst of pauses
 * is one alert, not many.
 *
 * Time is the sample index. Conditions change only at inputs (beats, events)
 * or at instants known in advance (a deadline, the asystole threshold after
 * the last beat, a PVC leaving its window), so ct_policy_advance jumps from
 * one such instant to the next and stamps each transition with the exact
 * sample at which it is due: the alerts are the same whatever the chunking.
 *
 * Heart rate is the median of the last 8 RR intervals (at least 4) whose two
 * beats lie in analysable signal, as bedside monitors average over the last
 * beats; the median, unlike the mean, ignores one missed or one extra beat.
 * It is unknown after 5 s without a beat (asystole takes over then).
 *
 * Cost: a beat costs O(rules) plus sorting 8 intervals; advancing costs
 * O(rules) per due instant. Memory is fixed at creation: the PVC window ring
 * (5 beats per second of window, i.e. 300 bpm) and the run ring (min_beats). */
#include <assert.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"

#define HR_RR_N 8
#define HR_RR_MIN 4
#define HR_STALE_MS 5000.0
#define PVC_MAX_PER_S 5.0
#define MAX_SAMPLE (INT64_MAX / 4)
#define NEVER INT64_MAX

enum { C_NEUTRAL = 0, C_ALARM, C_CLEAR };
enum { Q_OK = 0, Q_FLAT, Q_NOISE, Q_LEADOFF };

static const char *const quality_names[] = {"ok", "flat", "noise", "lead-off"};

typedef struct cond {
    int state;
    int64_t since;  /* when the state began (ALARM, CLEAR) */
    int64_t onset;  /* ALARM: the onset to report */
    int xalarm;     /* beyond the extreme limit (heart rate rules) */
    ct_policy_values v;
} cond;

typedef struct rule_state {
    int open;
    uint64_t id;
    ct_policy_priority prio;
    ct_policy_transition last_transition;
    int64_t cond_since;  /* ALARM held since, -1 if not in ALARM */
    int64_t cond_onset;
    int64_t xcond_since; /* extreme held since, -1 */
    int64_t clear_since; /* CLEAR held since, -1 */
    int64_t onset;       /* of the open alert */
    double threshold;
    ct_policy_values last, worst;
} rule_state;

typedef struct episode {
    int open;
    int64_t onset, end; /* end -1 until closed */
} episode;

struct ct_policy_eval {
    ct_policy_rules rules;
    char patient_id[CT_POLICY_PATIENT_ID_MAX];
    double fs_hz;
    int n_leads;
    ct_policy_sink sink;
    int finished;
    int64_t now;

    /* Rule parameters in samples. */
    int64_t onset_smp[CT_POLICY_N_RULES], clear_smp[CT_POLICY_N_RULES];
    int64_t pause_smp, asys_smp, pvc_window_smp, hr_stale_smp, learn_smp;

    /* Signal quality: the best lead decides, since one clean lead is enough
     * for the detector. */
    unsigned char lead_q[CT_ECG_MAX_LEADS];
    int quality;
    int64_t quality_since;
    int relearn;         /* leads were off: the detector relearns when they return */
    int64_t rhythm_from; /* rhythm analysable from here; NEVER while quality is not ok */
    int64_t asys_from;   /* asystole analysable from here; NEVER during noise or lead-off */

    /* Beats. */
    int64_t last_beat;
    int64_t rr[HR_RR_N];
    int rr_n, rr_head;
    double hr_bpm;

    /* Pause: the last one seen. */
    int64_t pause_end;
    double pause_ms;

    /* Ventricular run in progress. */
    int run_n, run_qualified;
    int64_t run_first, run_qual_at, run_end;
    double run_rate_bpm;
    int64_t *run_ring; /* samples of the last min_beats V beats */
    int run_cap, run_head, run_len;

    episode af, vt;
    int vf;            /* the open ventricular episode is flutter/fibrillation */
    const char *vt_label;
    int64_t gap_from;  /* pauses and asystole are timed from here at the earliest */

    /* V beats in the PVC window, oldest first from pvc_head. */
    int64_t *pvc;
    size_t pvc_cap, pvc_head, pvc_n;

    rule_state rs[CT_POLICY_N_RULES];
    uint64_t next_id;
    size_t bytes;
};

/* ---- helpers ----------------------------------------------------------------- */

static int64_t smp_of_s(const ct_policy_eval *e, double s)
{
    return (int64_t)llround(s * e->fs_hz);
}

static double ms_of_smp(const ct_policy_eval *e, int64_t n)
{
    return (double)n * 1000.0 / e->fs_hz;
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int rhythm_ok(const ct_policy_eval *e)
{
    return e->quality == Q_OK && e->now >= e->rhythm_from;
}

static const ct_policy_common *common(const ct_policy_eval *e, int r)
{
    return ct_policy_common_ofc(&e->rules, r);
}

static double hr_now(const ct_policy_eval *e)
{
    if (!rhythm_ok(e) || e->rr_n < HR_RR_MIN || e->last_beat < 0 ||
        e->now - e->last_beat > e->hr_stale_smp)
        return 0.0;
    return e->hr_bpm;
}

static void hr_update(ct_policy_eval *e)
{
    int64_t v[HR_RR_N];
    int n = e->rr_n;
    memcpy(v, e->rr, sizeof v);
    for (int i = 1; i < n; i++) /* insertion sort of at most 8 */
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            int64_t t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    double med = (n % 2) ? (double)v[n / 2] : ((double)v[n / 2 - 1] + (double)v[n / 2]) / 2.0;
    e->hr_bpm = med > 0 ? 60.0 * e->fs_hz / med : 0.0;
}

static void rhythm_reset(ct_policy_eval *e)
{
    e->rr_n = e->rr_head = 0;
    e->hr_bpm = 0;
    if (e->run_qualified)
        e->run_end = e->now;
    e->run_n = e->run_qualified = e->run_len = e->run_head = 0;
    e->run_rate_bpm = 0;
}

static double pvc_per_min(const ct_policy_eval *e)
{
    return (double)e->pvc_n * 60.0 / e->rules.pvc_burden.window_s;
}

static void pvc_expire(ct_policy_eval *e)
{
    while (e->pvc_n > 0 && e->pvc[e->pvc_head] + e->pvc_window_smp <= e->now) {
        e->pvc_head = (e->pvc_head + 1) % e->pvc_cap;
        e->pvc_n--;
    }
}

static void pvc_push(ct_policy_eval *e, int64_t s)
{
    if (e->pvc_n == e->pvc_cap) { /* beyond 300 bpm of V beats: drop the oldest */
        e->pvc_head = (e->pvc_head + 1) % e->pvc_cap;
        e->pvc_n--;
    }
    e->pvc[(e->pvc_head + e->pvc_n) % e->pvc_cap] = s;
    e->pvc_n++;
}

/* ---- what each rule sees now ------------------------------------------------------ */

static cond neutral(void)
{
    cond c;
    memset(&c, 0, sizeof c);
    c.state = C_NEUTRAL;
    c.since = c.onset = -1;
    return c;
}

static cond in_state(int state, int64_t since, int64_t onset)
{
    cond c = neutral();
    c.state = state;
    c.since = since;
    c.onset = onset;
    return c;
}

static cond eval_hr(const ct_policy_eval *e, const ct_policy_hr_rule *r, int high)
{
    double hr = hr_now(e);
    if (hr <= 0)
        return neutral();
    cond c;
    if (high ? hr > r->threshold_bpm : hr < r->threshold_bpm) {
        c = in_state(C_ALARM, e->now, e->now);
        c.xalarm = high ? hr > r->extreme_bpm : hr < r->extreme_bpm;
    } else if (high ? hr <= r->threshold_bpm - r->clear_hysteresis_bpm
                    : hr >= r->threshold_bpm + r->clear_hysteresis_bpm) {
        c = in_state(C_CLEAR, e->now, -1);
    } else {
        c = neutral();
    }
    c.v.hr_bpm = hr;
    return c;
}

/* The last beat, or the start of analysable signal if later: a gap is
 * measured only over signal we could see. */
static int64_t asystole_ref(const ct_policy_eval *e)
{
    return max64(max64(e->last_beat, e->asys_from), e->gap_from);
}

static cond eval_asystole(const ct_policy_eval *e)
{
    /* Ventricular flutter has no QRS to time but is not asystole. */
    if (e->asys_from == NEVER || e->now < e->asys_from || (e->vt.open && e->vf))
        return neutral();
    int64_t ref = asystole_ref(e);
    cond c;
    if (e->now - ref >= e->asys_smp) {
        c = in_state(C_ALARM, ref + e->asys_smp, ref);
        c.v.pause_ms = ms_of_smp(e, e->now - ref);
    } else {
        c = in_state(C_CLEAR, ref, -1);
    }
    return c;
}

static cond eval_vrun(const ct_policy_eval *e)
{
    cond c;
    if (e->vt.open) {
        c = in_state(C_ALARM, max64(e->vt.onset, e->rhythm_from), e->vt.onset);
        c.v.rhythm = e->vt_label;
    } else if (e->run_qualified) {
        c = in_state(C_ALARM, e->run_qual_at, e->run_first);
    } else {
        c = in_state(C_CLEAR, max64(max64(e->run_end, e->vt.end), e->rhythm_from), -1);
    }
    /* A slow run (an idioventricular rhythm) is not what this alert is about. */
    if (e->run_qualified) {
        c.v.run_beats = e->run_n;
        c.v.run_rate_bpm = e->run_rate_bpm;
    }
    return c;
}

static cond eval_afib(const ct_policy_eval *e)
{
    cond c;
    if (e->af.open) {
        int64_t since = max64(e->af.onset, e->rhythm_from);
        c = in_state(C_ALARM, since, since);
        c.v.af_duration_s = (double)(e->now - since) / e->fs_hz;
    } else {
        c = in_state(C_CLEAR, max64(e->af.end, e->rhythm_from), -1);
    }
    return c;
}

static cond eval_pvc(const ct_policy_eval *e)
{
    const ct_policy_pvc_rule *r = &e->rules.pvc_burden;
    double rate = pvc_per_min(e);
    cond c;
    if (rate > r->threshold_per_min)
        c = in_state(C_ALARM, e->now, e->now);
    else if (rate <= r->threshold_per_min - r->clear_hysteresis_per_min)
        c = in_state(C_CLEAR, e->now, -1);
    else
        c = neutral();
    c.v.pvc_per_min = rate;
    return c;
}

static cond eval_rule(const ct_policy_eval *e, int r)
{
    if (!common(e, r)->enabled)
        return neutral();
    if (r == CT_POLICY_SIGNAL_LOSS) {
        cond c = e->quality == Q_OK ? in_state(C_CLEAR, e->quality_since, -1)
                                    : in_state(C_ALARM, e->quality_since, e->quality_since);
        if (e->quality != Q_OK)
            c.v.quality = quality_names[e->quality];
        return c;
    }
    if (r == CT_POLICY_ASYSTOLE)
        return eval_asystole(e); /* armed on a flat line too: that is what asystole looks like */
    if (!rhythm_ok(e))
        return neutral();
    switch (r) {
    case CT_POLICY_HR_HIGH:
        return eval_hr(e, &e->rules.hr_high, 1);
    case CT_POLICY_HR_LOW:
        return eval_hr(e, &e->rules.hr_low, 0);
    case CT_POLICY_PAUSE: {
        cond c = in_state(C_CLEAR, max64(e->pause_end, e->rhythm_from), -1);
        c.v.pause_ms = e->pause_ms;
        return c;
    }
    case CT_POLICY_VENTRICULAR_RUN:
        return eval_vrun(e);
    case CT_POLICY_AFIB:
        return eval_afib(e);
    case CT_POLICY_PVC_BURDEN:
        return eval_pvc(e);
    }
    return neutral();
}

/* ---- the engine ------------------------------------------------------------------- */

static int quality_rank(const char *q)
{
    if (!q)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(q, quality_names[i]) == 0)
            return i;
    return Q_NOISE;
}

static void merge_worst(int r, ct_policy_values *w, const ct_policy_values *v)
{
    switch (r) {
    case CT_POLICY_HR_HIGH:
        if (v->hr_bpm > w->hr_bpm)
            w->hr_bpm = v->hr_bpm;
        break;
    case CT_POLICY_HR_LOW:
        if (v->hr_bpm > 0 && (w->hr_bpm <= 0 || v->hr_bpm < w->hr_bpm))
            w->hr_bpm = v->hr_bpm;
        break;
    case CT_POLICY_PAUSE:
    case CT_POLICY_ASYSTOLE:
        if (v->pause_ms > w->pause_ms)
            w->pause_ms = v->pause_ms;
        break;
    case CT_POLICY_VENTRICULAR_RUN:
        if (v->run_beats > w->run_beats)
            w->run_beats = v->run_beats;
        if (v->run_rate_bpm > w->run_rate_bpm)
            w->run_rate_bpm = v->run_rate_bpm;
        if (v->rhythm && (!w->rhythm || strcmp(v->rhythm, "(VFL") == 0))
            w->rhythm = v->rhythm;
        break;
    case CT_POLICY_AFIB:
        if (v->af_duration_s > w->af_duration_s)
            w->af_duration_s = v->af_duration_s;
        break;
    case CT_POLICY_PVC_BURDEN:
        if (v->pvc_per_min > w->pvc_per_min)
            w->pvc_per_min = v->pvc_per_min;
        break;
    case CT_POLICY_SIGNAL_LOSS:
        if (quality_rank(v->quality) > quality_rank(w->quality))
            w->quality = v->quality;
        break;
    }
}

static double base_threshold(const ct_policy_eval *e, int r)
{
    const ct_policy_rules *p = &e->rules;
    switch (r) {
    case CT_POLICY_HR_HIGH:
        return p->hr_high.threshold_bpm;
    case CT_POLICY_HR_LOW:
        return p->hr_low.threshold_bpm;
    case CT_POLICY_PAUSE:
        return p->pause.threshold_ms;
    case CT_POLICY_ASYSTOLE:
        return p->asystole.threshold_ms;
    case CT_POLICY_VENTRICULAR_RUN:
        return p->ventricular_run.min_beats;
    case CT_POLICY_AFIB:
        return p->afib.min_duration_s;
    case CT_POLICY_PVC_BURDEN:
        return p->pvc_burden.threshold_per_min;
    }
    return 0;
}

static const ct_policy_hr_rule *hr_rule(const ct_policy_eval *e, int r)
{
    if (r == CT_POLICY_HR_HIGH)
        return &e->rules.hr_high;
    if (r == CT_POLICY_HR_LOW)
        return &e->rules.hr_low;
    return NULL;
}

static void emit(ct_policy_eval *e, int r, ct_policy_transition t, int64_t end, int ended)
{
    rule_state *rs = &e->rs[r];
    rs->last_transition = t;
    if (!e->sink.on_alert)
        return;
    ct_policy_alert a;
    memset(&a, 0, sizeof a);
    a.transition = t;
    a.id = rs->id;
    a.rule = (ct_policy_rule)r;
    a.priority = rs->prio;
    a.patient_id = e->patient_id;
    a.fs_hz = e->fs_hz;
    a.sample = e->now;
    a.onset_sample = rs->onset;
    a.end_sample = t == CT_POLICY_CLEARED ? end : -1;
    a.threshold = rs->threshold;
    a.values = rs->last;
    a.worst = rs->worst;
    a.stream_ended = ended;
    e->sink.on_alert(e->sink.ctx, &a);
}

static void raise_alert(ct_policy_eval *e, int r, int64_t onset, const ct_policy_values *v, int extreme)
{
    rule_state *rs = &e->rs[r];
    const ct_policy_hr_rule *hr = hr_rule(e, r);
    rs->open = 1;
    rs->id = ++e->next_id;
    rs->onset = onset;
    rs->prio = common(e, r)->priority;
    rs->threshold = base_threshold(e, r);
    if (hr && extreme && hr->extreme_priority > rs->prio) {
        rs->prio = hr->extreme_priority;
        rs->threshold = hr->extreme_bpm;
    }
    rs->last = *v;
    memset(&rs->worst, 0, sizeof rs->worst);
    if (!hr)
        rs->worst.hr_bpm = v->hr_bpm; /* context: the rate when it was raised */
    merge_worst(r, &rs->worst, v);
    rs->clear_since = -1;
    emit(e, r, CT_POLICY_RAISED, -1, 0);
}

static void clear_alert(ct_policy_eval *e, int r, int64_t end, int ended)
{
    rule_state *rs = &e->rs[r];
    emit(e, r, CT_POLICY_CLEARED, end, ended);
    rs->open = 0;
    rs->cond_since = rs->xcond_since = rs->clear_since = -1;
}

/* Moves a rule's clocks for what it sees now. */
static void apply(rule_state *rs, const cond *c)
{
    if (c->state == C_ALARM) {
        rs->clear_since = -1;
        if (rs->cond_since < 0) {
            rs->cond_since = c->since;
            rs->cond_onset = c->onset;
        }
        if (!c->xalarm)
            rs->xcond_since = -1;
        else if (rs->xcond_since < 0)
            rs->xcond_since = c->since > rs->cond_since ? c->since : rs->cond_since;
    } else if (c->state == C_CLEAR) {
        rs->cond_since = rs->xcond_since = -1;
        if (rs->clear_since < 0)
            rs->clear_since = c->since;
    } else {
        rs->cond_since = rs->xcond_since = rs->clear_since = -1;
    }
}

static void fill_hr(const ct_policy_eval *e, ct_policy_values *v)
{
    if (v->hr_bpm <= 0)
        v->hr_bpm = hr_now(e);
}

static void step(ct_policy_eval *e)
{
    pvc_expire(e);
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        rule_state *rs = &e->rs[r];
        cond c = eval_rule(e, r);
        fill_hr(e, &c.v);
        apply(rs, &c);
        if (!rs->open) {
            if (rs->cond_since >= 0 && e->now >= rs->cond_since + e->onset_smp[r]) {
                /* Beyond the extreme limit now: no point raising at the
                 * lower priority only to escalate a moment later. */
                raise_alert(e, r, rs->cond_onset, &c.v, c.xalarm);
            }
            continue;
        }
        if (c.state != C_NEUTRAL) {
            rs->last = c.v;
            merge_worst(r, &rs->worst, &c.v);
        }
        const ct_policy_hr_rule *hr = hr_rule(e, r);
        if (hr && rs->prio < hr->extreme_priority && rs->xcond_since >= 0 &&
            e->now >= rs->xcond_since + e->onset_smp[r]) {
            rs->prio = hr->extreme_priority;
            rs->threshold = hr->extreme_bpm;
            emit(e, r, CT_POLICY_UPDATED, -1, 0);
        }
        if (rs->clear_since >= 0 && e->now >= rs->clear_since + e->clear_smp[r])
            clear_alert(e, r, rs->clear_since, 0);
    }
}

/* The next instant after which something may change without an input. */
static int64_t next_wakeup(const ct_policy_eval *e)
{
    int64_t w = NEVER;
#define AT(x)                                                                                      \
    do {                                                                                           \
        int64_t x_ = (x);                                                                          \
        if (x_ < w)                                                                                \
            w = x_;                                                                                \
    } while (0)
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        const rule_state *rs = &e->rs[r];
        if (!rs->open && rs->cond_since >= 0)
            AT(rs->cond_since + e->onset_smp[r]);
        if (rs->open && rs->clear_since >= 0)
            AT(rs->clear_since + e->clear_smp[r]);
        const ct_policy_hr_rule *hr = hr_rule(e, r);
        if (rs->open && hr && rs->prio < hr->extreme_priority && rs->xcond_since >= 0)
            AT(rs->xcond_since + e->onset_smp[r]);
    }
    if (e->rhythm_from != NEVER && e->rhythm_from > e->now)
        AT(e->rhythm_from);
    /* Instants that only may change a condition are due strictly later than
     * now; rule deadlines at or before now are consumed by step(). */
    if (e->asys_from != NEVER) {
        if (e->asys_from > e->now)
            AT(e->asys_from);
        else if (e->rules.asystole.c.enabled && asystole_ref(e) + e->asys_smp > e->now)
            AT(asystole_ref(e) + e->asys_smp);
    }
    if (e->last_beat >= 0 && e->last_beat + e->hr_stale_smp + 1 > e->now)
        AT(e->last_beat + e->hr_stale_smp + 1);
    if (e->pvc_n > 0)
        AT(e->pvc[e->pvc_head] + e->pvc_window_smp);
#undef AT
    return w;
}

/* Evaluates every instant up to t at which something is due, then t. */
static void run_until(ct_policy_eval *e, int64_t t)
{
    int stalled = 0;
    for (;;) {
        int64_t w = next_wakeup(e);
        if (w > t)
            break;
        if (w > e->now) {
            e->now = w;
            stalled = 0;
        } else if (stalled++) {
            /* Every due deadline fires in step(); if one did not, stop
             * rather than spin. */
            assert(!"a due instant was not consumed");
            break;
        }
        step(e);
    }
    if (t > e->now) {
        e->now = t;
        step(e);
    }
}

/* An event-like condition (a pause, a whole episode): raises at once if no
 * alert is open, and restarts the clear clock at the event's end. */
static void pulse(ct_policy_eval *e, int r, int64_t onset, int64_t end, const ct_policy_values *v)
{
    rule_state *rs = &e->rs[r];
    if (!common(e, r)->enabled)
        return;
    ct_policy_values vv = *v;
    fill_hr(e, &vv);
    if (!rs->open) {
        raise_alert(e, r, onset, &vv, 0);
    } else {
        rs->last = vv;
        merge_worst(r, &rs->worst, &vv);
    }
    rs->cond_since = -1;
    rs->clear_since = max64(end, rs->clear_since);
}

/* ---- inputs -------------------------------------------------------------------------- */

static int bad_sample(int64_t s)
{
    return s < 0 || s > MAX_SAMPLE;
}

int ct_policy_eval_beat(ct_policy_eval *e, const ct_ecg_beat *b)
{
    if (!e || !b || e->finished || bad_sample(b->sample) ||
        (e->last_beat >= 0 && b->sample <= e->last_beat))
        return CT_EINVAL;
    run_until(e, b->sample);
    int64_t s = b->sample, prev = e->last_beat;
    e->last_beat = s;
    if (!(e->quality == Q_OK && s >= e->rhythm_from)) {
        /* Outside analysable signal a beat only ends an asystole. */
        step(e);
        return 0;
    }
    if (prev >= 0 && prev >= e->rhythm_from && prev >= e->gap_from && !(e->vt.open && e->vf)) {
        e->rr[e->rr_head] = s - prev;
        e->rr_head = (e->rr_head + 1) % HR_RR_N;
        if (e->rr_n < HR_RR_N)
            e->rr_n++;
        hr_update(e);
        if (s - prev >= e->pause_smp) {
            e->pause_end = s;
            e->pause_ms = ms_of_smp(e, s - prev);
            ct_policy_values v;
            memset(&v, 0, sizeof v);
            v.pause_ms = e->pause_ms;
            pulse(e, CT_POLICY_PAUSE, prev, s, &v);
        }
    }
    if (b->cls == CT_BEAT_V) {
        if (e->run_n == 0) {
            e->run_first = s;
            e->run_len = e->run_head = 0;
        }
        e->run_n++;
        e->run_ring[e->run_head] = s;
        e->run_head = (e->run_head + 1) % e->run_cap;
        if (e->run_len < e->run_cap)
            e->run_len++;
        e->run_rate_bpm = e->run_n > 1 ? 60.0 * e->fs_hz * (e->run_n - 1) / (double)(s - e->run_first) : 0;
        if (!e->run_qualified && e->run_len == e->run_cap) {
            /* The oldest of the last min_beats V beats sits at run_head. */
            int64_t span = s - e->run_ring[e->run_head % e->run_cap];
            double rate = 60.0 * e->fs_hz * (e->run_cap - 1) / (double)span;
            if (rate >= e->rules.ventricular_run.min_rate_bpm) {
                e->run_qualified = 1;
                e->run_qual_at = s;
            }
        }
        pvc_push(e, s);
    } else {
        if (e->run_qualified)
            e->run_end = s;
        e->run_n = e->run_qualified = e->run_len = 0;
        e->run_rate_bpm = 0;
    }
    step(e);
    return 0;
}

static void set_quality(ct_policy_eval *e, int lead, int q, int64_t at)
{
    if (at > e->now)
        run_until(e, at);
    if (lead < 0)
        memset(e->lead_q, q, sizeof e->lead_q);
    else
        e->lead_q[lead] = (unsigned char)q;
    int best = Q_LEADOFF;
    for (int l = 0; l < e->n_leads; l++)
        if (e->lead_q[l] < best)
            best = e->lead_q[l];
    if (best == e->quality) {
        step(e);
        return;
    }
    int prev = e->quality;
    at = max64(at, e->quality_since);
    /* The detector relearns a lead that comes back from being off, even by
     * way of noise. */
    if (best == Q_LEADOFF)
        e->relearn = 1;
    int64_t grace = e->relearn ? e->learn_smp : 0;
    if (best == Q_OK || best == Q_FLAT)
        e->relearn = 0;
    e->quality = best;
    e->quality_since = at;
    if (best == Q_OK) {
        e->rhythm_from = at + grace;
    } else {
        e->rhythm_from = NEVER;
        rhythm_reset(e);
    }
    if (best == Q_OK || best == Q_FLAT) {
        if (prev == Q_NOISE || prev == Q_LEADOFF)
            e->asys_from = at + grace;
    } else {
        e->asys_from = NEVER;
    }
    step(e);
}

static void close_episode(ct_policy_eval *e, episode *ep, int64_t end)
{
    if (ep->open) {
        ep->open = 0;
        ep->end = max64(end, ep->onset);
        if (ep == &e->vt && e->vf)
            e->gap_from = max64(e->gap_from, ep->end);
    }
}

static void rhythm_event(ct_policy_eval *e, const ct_ecg_event *ev)
{
    char label[sizeof ev->label + 1];
    memcpy(label, ev->label, sizeof ev->label);
    label[sizeof ev->label] = '\0';
    int is_af = strcmp(label, "(AFIB") == 0;
    int is_vfl = strcmp(label, "(VFL") == 0;
    int is_vt = strcmp(label, "(VT") == 0 || is_vfl;
    int64_t s = ev->sample;
    if (s > e->now)
        run_until(e, s);
    episode *mine = is_af ? &e->af : is_vt ? &e->vt : NULL;
    if (ev->end_sample >= 0) {
        int64_t end = ev->end_sample < s ? s : ev->end_sample;
        if (mine && mine->open && mine->onset == s) { /* the open episode, now closed */
            close_episode(e, mine, end);
        } else {
            close_episode(e, &e->af, s);
            close_episode(e, &e->vt, s);
            if (is_vfl)
                e->gap_from = max64(e->gap_from, end);
            /* A whole episode reported at once, inside analysable signal. */
            if (mine && rhythm_ok(e) && s >= e->rhythm_from) {
                ct_policy_values v;
                memset(&v, 0, sizeof v);
                if (is_af && (double)(end - s) >= e->rules.afib.min_duration_s * e->fs_hz) {
                    v.af_duration_s = (double)(end - s) / e->fs_hz;
                    e->af.end = end;
                    pulse(e, CT_POLICY_AFIB, s, end, &v);
                } else if (is_vt) {
                    e->vt.end = end;
                    v.rhythm = is_vfl ? "(VFL" : "(VT";
                    pulse(e, CT_POLICY_VENTRICULAR_RUN, s, end, &v);
                }
            }
        }
    } else {
        if (!is_af)
            close_episode(e, &e->af, s);
        if (!is_vt || (e->vt.open && e->vf != is_vfl)) /* VT to flutter is a new episode */
            close_episode(e, &e->vt, s);
        if (mine && !mine->open) {
            mine->open = 1;
            mine->onset = s;
            mine->end = -1;
            if (is_vt) {
                e->vf = is_vfl;
                e->vt_label = is_vfl ? "(VFL" : "(VT";
            }
        }
    }
    step(e);
}

int ct_policy_eval_event(ct_policy_eval *e, const ct_ecg_event *ev)
{
    if (!e || !ev || e->finished || bad_sample(ev->sample) || ev->end_sample > MAX_SAMPLE)
        return CT_EINVAL;
    switch (ev->kind) {
    case CT_EVENT_QUALITY: {
        if (ev->lead < -1 || ev->lead >= e->n_leads)
            return CT_EINVAL;
        char label[sizeof ev->label + 1];
        memcpy(label, ev->label, sizeof ev->label);
        label[sizeof ev->label] = '\0';
        set_quality(e, ev->lead, quality_rank(label), ev->sample);
        if (ev->end_sample >= 0 && quality_rank(label) != Q_OK)
            set_quality(e, ev->lead, Q_OK, max64(ev->end_sample, ev->sample));
        return 0;
    }
    case CT_EVENT_RHYTHM:
        rhythm_event(e, ev);
        return 0;
    case CT_EVENT_PAUSE:
    case CT_EVENT_ASYSTOLE:
    case CT_EVENT_VRUN:
        return 0;
    }
    return CT_EINVAL;
}

int ct_policy_advance(ct_policy_eval *e, int64_t now_sample)
{
    if (!e || e->finished || bad_sample(now_sample))
        return CT_EINVAL;
    run_until(e, now_sample);
    return 0;
}

int ct_policy_eval_finish(ct_policy_eval *e, int64_t end_sample)
{
    if (!e || e->finished || bad_sample(end_sample))
        return CT_EINVAL;
    run_until(e, end_sample);
    for (int r = 0; r < CT_POLICY_N_RULES; r++)
        if (e->rs[r].open)
            clear_alert(e, r, e->rs[r].clear_since >= 0 ? e->rs[r].clear_since : e->now, 1);
    e->finished = 1;
    return 0;
}

/* ---- life cycle and queries --------------------------------------------------------------- */

int ct_policy_eval_new(const ct_policy *p, const ct_policy_eval_config *cfg,
                       const ct_policy_sink *sink, ct_policy_eval **out, ct_error *err)
{
    if (!p || !cfg || !out)
        return ct_error_set(err, CT_EINVAL, "ct_policy_eval_new: NULL argument");
    *out = NULL;
    const char *pid = cfg->patient_id ? cfg->patient_id : "";
    if (strlen(pid) >= CT_POLICY_PATIENT_ID_MAX)
        return ct_error_set(err, CT_EINVAL, "policy evaluator: patient id longer than %d bytes",
                            CT_POLICY_PATIENT_ID_MAX - 1);
    if (!(cfg->fs_hz >= CT_ECG_MIN_FS_HZ && cfg->fs_hz <= CT_ECG_MAX_FS_HZ))
        return ct_error_set(err, CT_EINVAL, "policy evaluator %s: sampling frequency %g Hz outside %g..%g",
                            pid, cfg->fs_hz, CT_ECG_MIN_FS_HZ, CT_ECG_MAX_FS_HZ);
    if (cfg->n_leads < 1 || cfg->n_leads > CT_ECG_MAX_LEADS)
        return ct_error_set(err, CT_EINVAL, "policy evaluator %s: %d leads, expected 1..%d", pid,
                            cfg->n_leads, CT_ECG_MAX_LEADS);
    if (bad_sample(cfg->start_sample))
        return ct_error_set(err, CT_EINVAL, "policy evaluator %s: start sample %lld out of range", pid,
                            (long long)cfg->start_sample);
    ct_policy_rules rules;
    ct_policy_rules_for(p, cfg->patient_id, &rules);

    size_t pvc_cap = (size_t)ceil(rules.pvc_burden.window_s * PVC_MAX_PER_S) + 1;
    size_t run_cap = (size_t)rules.ventricular_run.min_beats;
    size_t bytes = sizeof(ct_policy_eval) + (pvc_cap + run_cap) * sizeof(int64_t);
    ct_policy_eval *e = calloc(1, bytes);
    if (!e)
        return ct_error_set(err, CT_ENOMEM, "policy evaluator %s: out of memory", pid);
    e->rules = rules;
    memcpy(e->patient_id, pid, strlen(pid) + 1);
    e->fs_hz = cfg->fs_hz;
    e->n_leads = cfg->n_leads;
    if (sink)
        e->sink = *sink;
    e->bytes = bytes;
    e->pvc = (int64_t *)(void *)(e + 1);
    e->pvc_cap = pvc_cap;
    e->run_ring = e->pvc + pvc_cap;
    e->run_cap = (int)run_cap;

    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        e->clear_smp[r] = smp_of_s(e, common(e, r)->clear_delay_s);
        e->rs[r].cond_since = e->rs[r].xcond_since = e->rs[r].clear_since = -1;
    }
    e->onset_smp[CT_POLICY_HR_HIGH] = smp_of_s(e, rules.hr_high.onset_delay_s);
    e->onset_smp[CT_POLICY_HR_LOW] = smp_of_s(e, rules.hr_low.onset_delay_s);
    e->onset_smp[CT_POLICY_AFIB] = smp_of_s(e, rules.afib.min_duration_s);
    e->onset_smp[CT_POLICY_PVC_BURDEN] = smp_of_s(e, rules.pvc_burden.onset_delay_s);
    e->onset_smp[CT_POLICY_SIGNAL_LOSS] = smp_of_s(e, rules.signal_loss.onset_delay_s);
    e->pause_smp = smp_of_s(e, rules.pause.threshold_ms / 1000.0);
    e->asys_smp = smp_of_s(e, rules.asystole.threshold_ms / 1000.0);
    e->pvc_window_smp = smp_of_s(e, rules.pvc_burden.window_s);
    e->hr_stale_smp = smp_of_s(e, HR_STALE_MS / 1000.0);
    e->learn_smp = smp_of_s(e, CT_ECG_LEARN_MS / 1000.0);

    e->now = cfg->start_sample;
    e->quality = Q_OK;
    e->quality_since = cfg->start_sample;
    /* The detector reports no beat while it learns the signal. */
    e->rhythm_from = e->asys_from = cfg->start_sample + e->learn_smp;
    e->last_beat = e->pause_end = e->run_end = e->gap_from = -1;
    e->af.end = e->vt.end = -1;
    *out = e;
    return 0;
}

void ct_policy_eval_free(ct_policy_eval *e)
{
    free(e);
}

const ct_policy_rules *ct_policy_eval_rules(const ct_policy_eval *e)
{
    return &e->rules;
}

size_t ct_policy_eval_memory_bytes(const ct_policy_eval *e)
{
    return e ? e->bytes : 0;
}

size_t ct_policy_eval_open_alerts(const ct_policy_eval *e, ct_policy_alert *out, size_t max)
{
    size_t n = 0;
    if (!e)
        return 0;
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        const rule_state *rs = &e->rs[r];
        if (!rs->open)
            continue;
        if (n < max && out) {
            ct_policy_alert *a = &out[n];
            memset(a, 0, sizeof *a);
            a->transition = rs->last_transition;
            a->id = rs->id;
            a->rule = (ct_policy_rule)r;
            a->priority = rs->prio;
            a->patient_id = e->patient_id;
            a->fs_hz = e->fs_hz;
            a->sample = e->now;
            a->onset_sample = rs->onset;
            a->end_sample = -1;
            a->threshold = rs->threshold;
            a->values = rs->last;
            a->worst = rs->worst;
        }
        n++;
    }
    return n;
}

int ct_policy_alert_describe(const ct_policy_alert *a, char *buf, size_t size)
{
    int cleared = a->transition == CT_POLICY_CLEARED;
    const ct_policy_values *v = cleared ? &a->worst : &a->values;
    char what[200];
    switch (a->rule) {
    case CT_POLICY_HR_HIGH:
    case CT_POLICY_HR_LOW:
        snprintf(what, sizeof what, "Heart rate %s: %s%.0f bpm (limit %.0f bpm)",
                 a->rule == CT_POLICY_HR_HIGH ? "high" : "low", cleared ? "reached " : "", v->hr_bpm,
                 a->threshold);
        break;
    case CT_POLICY_PAUSE:
        snprintf(what, sizeof what, "Pause: %.1f s without a beat (limit %.1f s)", v->pause_ms / 1000.0,
                 a->threshold / 1000.0);
        break;
    case CT_POLICY_ASYSTOLE:
        snprintf(what, sizeof what, "Asystole: no beat for %.1f s (limit %.1f s)", v->pause_ms / 1000.0,
                 a->threshold / 1000.0);
        break;
    case CT_POLICY_VENTRICULAR_RUN:
        if (v->rhythm && strcmp(v->rhythm, "(VFL") == 0)
            snprintf(what, sizeof what, "Ventricular flutter or fibrillation");
        else if (v->run_beats > 0)
            snprintf(what, sizeof what, "Ventricular run: %d beats at %.0f bpm", v->run_beats,
                     v->run_rate_bpm);
        else
            snprintf(what, sizeof what, "Ventricular tachycardia");
        break;
    case CT_POLICY_AFIB:
        snprintf(what, sizeof what, "Atrial fibrillation for %.0f s", v->af_duration_s);
        break;
    case CT_POLICY_PVC_BURDEN:
        snprintf(what, sizeof what, "PVCs: %.0f per minute (limit %.0f)", v->pvc_per_min, a->threshold);
        break;
    case CT_POLICY_SIGNAL_LOSS:
        snprintf(what, sizeof what, "ECG signal lost (%s)", v->quality ? v->quality : "unknown");
        break;
    default:
        snprintf(what, sizeof what, "unknown rule %d", (int)a->rule);
        break;
    }
    if (cleared) {
        double dur_s = (double)(a->end_sample - a->onset_sample) / a->fs_hz;
        if (a->stream_ended)
            return snprintf(buf, size, "%s; still present when the stream ended, after %.0f s", what,
                            dur_s);
        return snprintf(buf, size, "%s; lasted %.0f s", what, dur_s);
    }
    return snprintf(buf, size, "%s", what);
}
