/* ecg/rhythm: rhythm episodes and events from the beat sequence.
 *
 * The one idea: the rhythm is read from the classified beats and their
 * intervals only, over the last CT_RHY_HIST beats, and a new rhythm is
 * claimed only when it has held for a few beats (hysteresis), except
 * ventricular tachycardia, which is claimed at its third beat. While no lead
 * is usable (all off, flat or noisy) nothing is claimed: a detector that
 * cannot see must not say "asystole" or "normal".
 *
 * Rhythms (WFDB labels, in priority order):
 *   (VT    3 or more consecutive V beats faster than 100 bpm
 *   (AFIB  irregularly irregular: median |successive RR difference| over
 *          the last 24 intervals not touching a V beat above 10% of the
 *          median RR (off again under 6%); cf. Tateno & Glass 2001 and the
 *          RR-irregularity family of AF detectors
 *   (B     ventricular bigeminy: N V N V ... over 8 beats
 *   (T     ventricular trigeminy: N N V N N V ... over 9 beats
 *   (SVTA  averaged rate over 100 bpm (no P-wave analysis: sinus
 *          tachycardia is included)
 *   (SBR   averaged rate under 50 bpm
 *   (N     otherwise
 * Events: PAUSE when an interval reaches 2.0 s (reported with the beat that
 * ends it), ASYSTOLE when no beat has come for 4.0 s while a lead is usable
 * (reported then, closed by the next beat), VRUN for every couplet, triplet
 * or longer run of V beats when it ends. An episode is reported when it
 * opens (end_sample -1) and again when it closes (end_sample set). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ecg_internal.h"

enum { RHY_N = 0, RHY_SBR, RHY_SVTA, RHY_T, RHY_B, RHY_AFIB, RHY_VT, RHY_COUNT };

static const char *const rhythm_label[RHY_COUNT] = {"(N", "(SBR", "(SVTA", "(T", "(B", "(AFIB",
                                                    "(VT"};

#define PAUSE_MS 2000.0
#define ASYSTOLE_MS 4000.0
#define BRADY_BPM 50.0f
#define TACHY_BPM 100.0f
#define VT_BPM 100.0f
#define HOLD_BEATS 4
#define AF_HOLD_BEATS 4
#define AF_WINDOW 24
#define AF_ON 0.10f
#define AF_OFF 0.06f

void ct_rhythm_init(ct_rhythm *r, double fs_hz, int n_leads)
{
    memset(r, 0, sizeof *r);
    r->fs_hz = fs_hz;
    r->n_leads = n_leads;
    /* Asystole can be claimed once the levels are learnt, beats or not. */
    r->next_check = (int64_t)((CT_ECG_LEARN_MS + ASYSTOLE_MS) * fs_hz / 1000.0);
    r->rhythm = -1;
    r->cand = -1;
    r->last_beat = -1;
    for (int l = 0; l < CT_ECG_MAX_LEADS; l++)
        r->lead_q[l] = -1;
}

static void emit(ct_event_fn fn, void *ctx, ct_ecg_event_kind kind, int64_t start, int64_t end,
                 int lead, double value, const char *label)
{
    if (!fn)
        return;
    ct_ecg_event ev;
    memset(&ev, 0, sizeof ev);
    ev.kind = kind;
    ev.sample = start;
    ev.end_sample = end;
    ev.lead = lead;
    ev.value = value;
    snprintf(ev.label, sizeof ev.label, "%s", label);
    fn(ctx, &ev);
}

/* i-th most recent beat (0 = newest). */
static int idx(const ct_rhythm *r, int i)
{
    return (r->head - 1 - i + CT_RHY_HIST * 2) % CT_RHY_HIST;
}

static float median_f(float *v, int n)
{
    for (int i = 1; i < n; i++) {
        float x = v[i];
        int j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return n ? ((n & 1) ? v[n / 2] : 0.5f * (v[n / 2 - 1] + v[n / 2])) : 0.0f;
}

/* Irregularity: median |dRR| / median RR over intervals whose two ends are
 * not ventricular; -1 when too few. */
static float irregularity(const ct_rhythm *r)
{
    float rr[CT_RHY_HIST], d[CT_RHY_HIST];
    int n_rr = 0, n_d = 0;
    float prev = -1.0f;
    for (int i = r->n_b - 1; i >= 0 && i < CT_RHY_HIST; i--) {
        int k = idx(r, i);
        int kp = i + 1 < r->n_b ? idx(r, i + 1) : -1;
        int ok = r->b_rr_ms[k] > 0.0f && r->b_cls[k] != CT_BEAT_V &&
                 (kp < 0 || r->b_cls[kp] != CT_BEAT_V);
        if (!ok) {
            prev = -1.0f;
            continue;
        }
        if (n_rr >= AF_WINDOW + 1)
            break;
        rr[n_rr++] = r->b_rr_ms[k];
        if (prev > 0.0f)
            d[n_d++] = fabsf(r->b_rr_ms[k] - prev);
        prev = r->b_rr_ms[k];
    }
    if (n_d < AF_WINDOW * 3 / 4)
        return -1.0f;
    float mrr = median_f(rr, n_rr);
    return mrr > 0.0f ? median_f(d, n_d) / mrr : -1.0f;
}

/* The last period * cycles beats repeat "one V, period - 1 others", in any
 * phase (the newest beat may be either). */
static int pattern(const ct_rhythm *r, int period, int cycles)
{
    int need = period * cycles;
    if (r->n_b < need)
        return 0;
    for (int phase = 0; phase < period; phase++) {
        int ok = 1;
        for (int i = 0; i < need && ok; i++) {
            int is_v = r->b_cls[idx(r, i)] == CT_BEAT_V;
            ok = is_v == ((i + phase) % period == 0);
        }
        if (ok)
            return 1;
    }
    return 0;
}

static int classify_rhythm(ct_rhythm *r)
{
    if (r->vt_open)
        return RHY_VT;
    float irr = irregularity(r);
    /* Too few clean intervals (frequent V beats): no AF claim. */
    if (irr < 0.0f)
        r->af = 0;
    else if (!r->af && irr > AF_ON)
        r->af = 1;
    else if (r->af && irr < AF_OFF)
        r->af = 0;
    if (r->af)
        return RHY_AFIB;
    if (pattern(r, 2, 4))
        return RHY_B;
    if (pattern(r, 3, 3))
        return RHY_T;
    if (r->hr_bpm > TACHY_BPM)
        return RHY_SVTA;
    if (r->hr_bpm > 0.0f && r->hr_bpm < BRADY_BPM)
        return RHY_SBR;
    return RHY_N;
}

static void set_rhythm(ct_rhythm *r, int rhy, int64_t onset, ct_event_fn fn, void *ctx)
{
    if (r->rhythm == rhy)
        return;
    if (r->rhythm >= 0)
        emit(fn, ctx, CT_EVENT_RHYTHM, r->rhythm_since, onset, -1, 0.0, rhythm_label[r->rhythm]);
    r->rhythm = rhy;
    r->rhythm_since = onset;
    emit(fn, ctx, CT_EVENT_RHYTHM, onset, -1, -1, r->hr_bpm, rhythm_label[rhy]);
}

static void close_vrun(ct_rhythm *r, ct_event_fn fn, void *ctx)
{
    if (r->v_run >= 2) {
        const char *label = r->v_run == 2 ? "couplet" : (r->v_run == 3 ? "triplet" : "run");
        emit(fn, ctx, CT_EVENT_VRUN, r->v_run_start, r->v_run_last, -1, (double)r->v_run, label);
    }
    r->v_run = 0;
    r->vt_open = 0;
}

void ct_rhythm_beat(ct_rhythm *r, const ct_ecg_beat *b, ct_event_fn fn, void *ctx)
{
    int k = r->head;
    r->b_sample[k] = b->sample;
    r->b_cls[k] = (uint8_t)b->cls;
    r->b_rr_ms[k] = b->rr_ms;
    r->head = (r->head + 1) % CT_RHY_HIST;
    if (r->n_b < CT_RHY_HIST)
        r->n_b++;
    r->n_beats++;
    if (b->hr_bpm > 0.0f)
        r->hr_bpm = b->hr_bpm;

    if (r->asystole_open) {
        emit(fn, ctx, CT_EVENT_ASYSTOLE, r->asystole_start, b->sample, -1,
             (double)(b->sample - r->last_beat) * 1000.0 / r->fs_hz, "asystole");
        r->asystole_open = 0;
    }
    if (r->last_beat >= 0 && b->rr_ms >= PAUSE_MS && !r->all_bad)
        emit(fn, ctx, CT_EVENT_PAUSE, r->last_beat, b->sample, -1, b->rr_ms, "pause");
    r->last_beat = b->sample;
    r->next_check = b->sample + (int64_t)(ASYSTOLE_MS * r->fs_hz / 1000.0);

    /* Ventricular runs. */
    if (b->cls == CT_BEAT_V) {
        if (r->v_run == 0)
            r->v_run_start = b->sample;
        r->v_run++;
        r->v_run_last = b->sample;
        if (r->v_run >= 3 && !r->vt_open && !r->all_bad) {
            double dur_ms = (double)(b->sample - r->v_run_start) * 1000.0 / r->fs_hz;
            double bpm = dur_ms > 0 ? 60000.0 * (r->v_run - 1) / dur_ms : 0.0;
            if (bpm > VT_BPM) {
                r->vt_open = 1;
                set_rhythm(r, RHY_VT, r->v_run_start, fn, ctx);
                r->cand = RHY_VT;
                r->cand_count = 0;
            }
        }
    } else if (r->v_run > 0) {
        close_vrun(r, fn, ctx);
    }

    if (r->all_bad || r->n_b < 8)
        return;
    int rhy = classify_rhythm(r);
    if (rhy == r->rhythm) {
        r->cand = -1;
        r->cand_count = 0;
        return;
    }
    if (rhy != r->cand) {
        r->cand = rhy;
        r->cand_count = 0;
        r->cand_since = b->sample;
    }
    /* A rhythm is dated from where its evidence began. */
    int hold = rhy == RHY_VT ? 1 : (rhy == RHY_AFIB ? AF_HOLD_BEATS : HOLD_BEATS);
    if (++r->cand_count >= hold || r->rhythm < 0) {
        int64_t onset = r->cand_since;
        if (rhy == RHY_AFIB || rhy == RHY_B || rhy == RHY_T) {
            int back = rhy == RHY_AFIB ? AF_WINDOW / 2 : 8;
            if (back > r->n_b - 1)
                back = r->n_b - 1;
            onset = r->b_sample[idx(r, back)];
            if (r->rhythm >= 0 && onset < r->rhythm_since)
                onset = r->rhythm_since;
        }
        set_rhythm(r, rhy, onset, fn, ctx);
        r->cand = -1;
        r->cand_count = 0;
    }
}

static const char *quality_label(int q)
{
    switch (q) {
    case 0: return "ok";
    case 1: return "noise";
    case 2: return "flat";
    default: return "lead-off";
    }
}

void ct_rhythm_quality(ct_rhythm *r, const ct_qrs *q, ct_event_fn fn, void *ctx)
{
    int usable = 0, worst_bad = 3;
    int64_t now = q->n > 0 ? q->n - 1 : 0;
    for (int l = 0; l < q->n_leads; l++) {
        const ct_qrs_lead *L = &q->lead[l];
        int st;
        if (L->state == LEAD_OFF)
            st = 3;
        else if (L->state == LEAD_FLAT)
            st = 2;
        else if (L->noisy)
            st = 1;
        else
            st = 0;
        /* A lead settling after a change is judged when it is back. */
        if (L->state == LEAD_SETTLING)
            st = r->lead_q[l] >= 0 ? r->lead_q[l] : 0;
        if (st == 0)
            usable = 1;
        else if (st < worst_bad)
            worst_bad = st;
        if (st != r->lead_q[l] && !(r->lead_q[l] < 0 && st == 0)) {
            emit(fn, ctx, CT_EVENT_QUALITY, now, -1, l, 0.0, quality_label(st));
        }
        r->lead_q[l] = st;
    }
    int bad = !usable;
    if (bad != r->all_bad) {
        emit(fn, ctx, CT_EVENT_QUALITY, now, -1, -1, 0.0, bad ? quality_label(worst_bad) : "ok");
        r->all_bad = bad;
        if (bad) {
            /* Stop claiming: close the open rhythm and asystole. */
            if (r->rhythm >= 0)
                emit(fn, ctx, CT_EVENT_RHYTHM, r->rhythm_since, now, -1, 0.0,
                     rhythm_label[r->rhythm]);
            r->rhythm = -1;
            r->cand = -1;
            r->n_b = 0;
            r->af = 0;
            close_vrun(r, fn, ctx);
            if (r->asystole_open) {
                emit(fn, ctx, CT_EVENT_ASYSTOLE, r->asystole_start, now, -1, 0.0, "asystole");
                r->asystole_open = 0;
            }
            r->next_check = INT64_MAX;
        } else if (r->last_beat >= 0 || q->learned) {
            r->next_check = now + (int64_t)(ASYSTOLE_MS * r->fs_hz / 1000.0);
            r->last_beat = -1;
        }
    }
}

void ct_rhythm_tick(ct_rhythm *r, int64_t now, ct_event_fn fn, void *ctx)
{
    r->next_check = INT64_MAX;
    if (r->all_bad || r->asystole_open)
        return;
    /* Nothing for ASYSTOLE_MS while a lead could see: asystole. */
    r->asystole_open = 1;
    r->asystole_start = r->last_beat >= 0 ? r->last_beat : now - (int64_t)(ASYSTOLE_MS * r->fs_hz / 1000.0);
    emit(fn, ctx, CT_EVENT_ASYSTOLE, r->asystole_start, -1, -1, 0.0, "asystole");
    if (r->rhythm >= 0) {
        emit(fn, ctx, CT_EVENT_RHYTHM, r->rhythm_since, now, -1, 0.0, rhythm_label[r->rhythm]);
        r->rhythm = -1;
    }
    r->n_b = 0;
    r->af = 0;
    close_vrun(r, fn, ctx);
}

void ct_rhythm_finish(ct_rhythm *r, int64_t now, ct_event_fn fn, void *ctx)
{
    close_vrun(r, fn, ctx);
    if (r->rhythm >= 0)
        emit(fn, ctx, CT_EVENT_RHYTHM, r->rhythm_since, now, -1, 0.0, rhythm_label[r->rhythm]);
    if (r->asystole_open)
        emit(fn, ctx, CT_EVENT_ASYSTOLE, r->asystole_start, now, -1, 0.0, "asystole");
    r->rhythm = -1;
    r->asystole_open = 0;
}
