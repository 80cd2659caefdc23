/* synth/schedule: the rhythm model, one beat at a time.
 *
 * The one idea: the sinus node is a clock that keeps ticking whatever the
 * ventricles do, and every other rhythm is a departure from it that the
 * scheduler decides at each beat, from the previous beat only:
 *  - sinus beat: at the node's next tick; the node's interval carries heart
 *    rate variability (respiratory sinus arrhythmia at 0.3 Hz, a slow AR(1)
 *    drift and a white part, together hrv_fraction of the RR as SD);
 *  - PVC: premature, with the nearly fixed coupling interval of one focus
 *    (0.6 of the cycle, kept within 360..500 ms); the sinus tick it hides is lost, so the next sinus beat comes
 *    two sinus intervals after the one before the PVC (full compensatory
 *    pause). Never two in a row: a pair would be a couplet, not isolated;
 *  - ventricular run: vt_beats V beats at vt_rate_bpm (2% jitter), then a
 *    post-run pause of 1.4 sinus intervals (the sinus node is reset);
 *  - atrial fibrillation: RR drawn independently from a log-normal law
 *    with mean 60/af_rate_bpm and coefficient of variation 0.2 (the
 *    irregularly irregular rhythm of a fibrillating AV node), no P wave,
 *    fibrillatory waves added by the renderer over the episode;
 *  - sinus pause: the node is silent for pause_ms.
 * Runs, pauses and AF onsets come on average every *_every_s seconds as a
 * jittered clock (intervals uniform in 0.5..1.5 of the mean), the first one
 * early (0.1..0.5 of the mean), so that a demo or a short test shows it.
 * Every decision draws from the rhythm PRNG only, and depends on the beats
 * before, never on how far rendering has got: chunk sizes cannot change the
 * beats. */
#include <math.h>
#include <string.h>

#include "synth_internal.h"

#define AF_CV 0.2
#define MIN_RR_S 0.24

static double clampd(double x, double lo, double hi)
{
    return x < lo ? lo : x > hi ? hi : x;
}

static double fs(const ct_synth *s)
{
    return s->o.fs_hz;
}

static double now_s(const ct_synth *s)
{
    return (double)s->last_r / fs(s);
}

static double jittered(ct_synth *s, double every_s, int first)
{
    double u = ct_synth_rng_uniform(&s->rhythm_rng);
    return first ? every_s * (0.1 + 0.4 * u) : every_s * (0.5 + u);
}

static void push_truth(ct_synth *s, int64_t sample, char sym, const char *aux)
{
    if (s->n_truth == SYN_TRUTH_RING) { /* cannot happen with the look-ahead bound */
        s->truth_dropped++;
        return;
    }
    ct_synth_truth *t = &s->truth[(s->truth_head + s->n_truth) % SYN_TRUTH_RING];
    memset(t, 0, sizeof *t);
    t->sample = sample;
    t->sym = sym;
    if (aux) {
        size_t n = strlen(aux);
        if (n >= sizeof t->aux)
            n = sizeof t->aux - 1;
        memcpy(t->aux, aux, n);
    }
    s->n_truth++;
}

/* The next sinus interval, in seconds, with heart rate variability. */
static double sinus_rr_s(ct_synth *s, double t_s)
{
    double rr = 60.0 / s->o.hr_bpm;
    double h = s->o.hrv_fraction;
    /* Variance shares: 0.36 respiratory, 0.44 slow drift, 0.20 white. A
     * sinusoid of amplitude a has SD a/sqrt(2). Inspiration shortens RR. */
    double rsa = -h * 0.6 * M_SQRT2 * sin(2.0 * M_PI * SYN_RESP_HZ * t_s + s->resp_phase);
    const double a = 0.9;
    s->lf_state = a * s->lf_state +
                  h * sqrt(0.44) * sqrt(1.0 - a * a) * ct_synth_rng_normal(&s->rhythm_rng);
    double white = h * sqrt(0.20) * ct_synth_rng_normal(&s->rhythm_rng);
    return rr * clampd(1.0 + rsa + s->lf_state + white, 0.5, 1.5);
}

static double af_rr_s(ct_synth *s)
{
    double mean = 60.0 / s->o.af_rate_bpm;
    double sl = sqrt(log(1.0 + AF_CV * AF_CV));
    double x = exp(log(mean) - 0.5 * sl * sl + sl * ct_synth_rng_normal(&s->rhythm_rng));
    /* The AV node's refractory period bounds the shortest interval. */
    return clampd(x, fmax(MIN_RR_S, 0.5 * mean), 2.5 * mean);
}

static double vt_rr_s(ct_synth *s)
{
    double rr = 60.0 / s->o.vt_rate_bpm;
    return fmax(MIN_RR_S, rr * (1.0 + 0.02 * ct_synth_rng_normal(&s->rhythm_rng)));
}

/* Probability that a sinus (or conducted) beat is replaced by a PVC, such
 * that isolated PVCs come at pvc_per_min on average: with no PVC allowed
 * right after one, a fraction p / (1 + p) of the cycles are PVCs. */
static double pvc_probability(const ct_synth *s, double rate_bpm)
{
    double r = s->o.pvc_per_min;
    if (r <= 0.0)
        return 0.0;
    if (r >= 0.45 * rate_bpm)
        return 0.9;
    return r / (rate_bpm - r);
}

/* Coupling interval of a PVC for a cycle of cycle_s seconds, or 0 when the
 * cycle is too short for a premature beat to fit (tachycardia). */
static double pvc_coupling_s(double cycle_s)
{
    double c = clampd(0.6 * cycle_s, 0.36, 0.50);
    return c < 0.85 * cycle_s ? c : 0.0;
}

static void add_af_span(ct_synth *s, int64_t from)
{
    if (s->n_af == 4) { /* episodes last >= 10 s: the oldest is long over */
        memmove(s->af_from, s->af_from + 1, 3 * sizeof s->af_from[0]);
        memmove(s->af_to, s->af_to + 1, 3 * sizeof s->af_to[0]);
        s->n_af = 3;
    }
    s->af_from[s->n_af] = from;
    s->af_to[s->n_af] = INT64_MAX;
    s->n_af++;
}

static void add_beat(ct_synth *s, int64_t r, syn_kind kind, double qt_rr_s)
{
    if (s->n_beats == SYN_BEAT_RING) { /* cannot happen: see SYN_BEAT_RING */
        s->truth_dropped++;
        return;
    }
    double jitter = 1.0 + 0.02 * ct_synth_rng_normal(&s->rhythm_rng);
    syn_beat *b = &s->beats[(s->beat_head + s->n_beats) % SYN_BEAT_RING];
    b->r = r;
    ct_synth_morph(s, b, kind, qt_rr_s, jitter);
    s->n_beats++;
    push_truth(s, r, kind == SYN_VENTRICULAR ? 'V' : 'N', NULL);
}

static int64_t frame_at(const ct_synth *s, double t_frames)
{
    int64_t r = (int64_t)llround(t_frames);
    return r <= s->last_r ? s->last_r + 1 : r;
}

static const char *rhythm_label(const ct_synth *s)
{
    return s->rhythm == SYN_RHY_AF ? "(AFIB" : "(N";
}

static void schedule_one(ct_synth *s)
{
    const ct_synth_options *o = &s->o;
    double f = fs(s);
    double sinus_mean_s = 60.0 / o->hr_bpm;

    if (!s->started) {
        s->started = 1;
        /* The first P wave must lie inside the stream. */
        double t0 = SYN_LEAD_S + ct_synth_rng_uniform(&s->rhythm_rng) * sinus_mean_s;
        s->last_r = -1;
        int64_t r = frame_at(s, t0 * f);
        push_truth(s, r, '+', "(N");
        s->last_rr_s = sinus_mean_s;
        add_beat(s, r, SYN_SINUS, sinus_mean_s);
        s->last_r = r;
        s->sinus_next = (double)r + sinus_rr_s(s, t0) * f;
        return;
    }

    int64_t r;
    /* A ventricular run in progress. */
    if (s->vt_left > 0) {
        double rr = vt_rr_s(s);
        r = frame_at(s, (double)s->last_r + rr * f);
        add_beat(s, r, SYN_VENTRICULAR, rr);
        s->last_rr_s = rr;
        s->last_r = r;
        s->last_ectopic = 1;
        if (--s->vt_left == 0)
            s->vt_return = 1;
        return;
    }
    if (s->vt_return) {
        s->vt_return = 0;
        double rr;
        syn_kind kind;
        if (s->rhythm == SYN_RHY_AF) {
            rr = 1.2 * af_rr_s(s);
            kind = SYN_CONDUCTED;
        } else {
            rr = 1.4 * sinus_mean_s;
            kind = SYN_SINUS;
        }
        r = frame_at(s, (double)s->last_r + rr * f);
        push_truth(s, r, '+', rhythm_label(s));
        add_beat(s, r, kind, rr);
        s->last_rr_s = rr;
        s->last_r = r;
        s->last_ectopic = 0;
        if (kind == SYN_SINUS)
            s->sinus_next = (double)r + sinus_rr_s(s, (double)r / f) * f;
        return;
    }

    double rate_bpm = s->rhythm == SYN_RHY_AF ? o->af_rate_bpm : o->hr_bpm;
    double cycle_s = 60.0 / rate_bpm;
    if (o->vt_every_s > 0.0 && now_s(s) >= s->next_vt_s && !s->last_ectopic) {
        s->next_vt_s = now_s(s) + jittered(s, o->vt_every_s, 0);
        double rr = fmax(vt_rr_s(s), 0.55 * cycle_s);
        r = frame_at(s, (double)s->last_r + rr * f);
        push_truth(s, r, '+', "(VT");
        add_beat(s, r, SYN_VENTRICULAR, rr);
        s->last_rr_s = rr;
        s->last_r = r;
        s->last_ectopic = 1;
        s->vt_left = o->vt_beats - 1;
        return;
    }

    if (s->rhythm == SYN_RHY_SINUS) {
        if (o->af_every_s > 0.0 && s->sinus_until_af_s <= 0.0) {
            s->rhythm = SYN_RHY_AF;
            s->sinus_until_af_s = jittered(s, o->af_every_s, 0);
            add_af_span(s, s->last_r + (int64_t)llround(0.2 * f));
            s->af_end = s->last_r + (int64_t)llround(o->af_duration_s * f);
            double rr = af_rr_s(s);
            r = frame_at(s, (double)s->last_r + rr * f);
            push_truth(s, r, '+', "(AFIB");
            add_beat(s, r, SYN_CONDUCTED, rr);
            s->last_rr_s = rr;
            s->last_r = r;
            s->last_ectopic = 0;
            return;
        }
        double node_rr_s = (s->sinus_next - (double)s->last_r) / f;
        if (o->pause_every_s > 0.0 && now_s(s) >= s->next_pause_s && !s->last_ectopic) {
            s->next_pause_s = now_s(s) + jittered(s, o->pause_every_s, 0);
            double rr = o->pause_ms / 1000.0;
            r = frame_at(s, (double)s->last_r + rr * f);
            add_beat(s, r, SYN_SINUS, rr);
            push_truth(s, r, '"', "PAUSE");
            s->sinus_until_af_s -= rr;
            s->last_rr_s = rr;
            s->last_r = r;
            s->sinus_next = (double)r + sinus_rr_s(s, (double)r / f) * f;
            return;
        }
        double p = pvc_probability(s, o->hr_bpm);
        double rr = pvc_coupling_s(node_rr_s);
        if (!s->last_ectopic && p > 0.0 && rr > 0.0 && ct_synth_rng_uniform(&s->rhythm_rng) < p) {
            r = frame_at(s, (double)s->last_r + rr * f);
            add_beat(s, r, SYN_VENTRICULAR, s->last_rr_s);
            s->last_rr_s = rr;
            s->last_r = r;
            s->last_ectopic = 1;
            /* The hidden tick is lost; the next one is the node's own. */
            double t_tick = s->sinus_next / f;
            s->sinus_next += sinus_rr_s(s, t_tick) * f;
            s->sinus_until_af_s -= node_rr_s;
            return;
        }
        r = frame_at(s, s->sinus_next);
        rr = (double)(r - s->last_r) / f;
        add_beat(s, r, SYN_SINUS, rr);
        s->sinus_until_af_s -= rr;
        s->last_rr_s = rr;
        s->last_r = r;
        s->last_ectopic = 0;
        s->sinus_next = (double)r + sinus_rr_s(s, (double)r / f) * f;
        return;
    }

    /* Atrial fibrillation. */
    if (s->last_r >= s->af_end) {
        s->rhythm = SYN_RHY_SINUS;
        /* Fibrillatory waves stop before the first P wave of sinus rhythm. */
        s->af_to[s->n_af - 1] = s->last_r + (int64_t)llround(0.35 * f);
        double rr = 1.2 * sinus_mean_s;
        r = frame_at(s, (double)s->last_r + rr * f);
        push_truth(s, r, '+', "(N");
        add_beat(s, r, SYN_SINUS, rr);
        s->last_rr_s = rr;
        s->last_r = r;
        s->last_ectopic = 0;
        s->sinus_next = (double)r + sinus_rr_s(s, (double)r / f) * f;
        return;
    }
    double p = pvc_probability(s, o->af_rate_bpm);
    double rr = af_rr_s(s);
    double prr = pvc_coupling_s(cycle_s);
    if (!s->last_ectopic && p > 0.0 && prr > 0.0 && ct_synth_rng_uniform(&s->rhythm_rng) < p) {
        r = frame_at(s, (double)s->last_r + prr * f);
        add_beat(s, r, SYN_VENTRICULAR, cycle_s);
        s->last_rr_s = prr;
        s->last_r = r;
        s->last_ectopic = 1;
        return;
    }
    r = frame_at(s, (double)s->last_r + rr * f);
    add_beat(s, r, SYN_CONDUCTED, rr);
    s->last_rr_s = rr;
    s->last_r = r;
    s->last_ectopic = 0;
}

void ct_synth_schedule(ct_synth *s, int64_t until)
{
    while ((!s->started || s->last_r <= until) && s->n_beats < SYN_BEAT_RING &&
           s->n_truth + 3 <= SYN_TRUTH_RING)
        schedule_one(s);
}
