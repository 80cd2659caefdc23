/* synth: synthetic ECG with known truth, for the live demo and for tests.
 *
 * The room draws a rhythm beat by beat (schedule.c), gives each beat a shape
 * made of Gaussian waves per lead (morph.c), and renders frames by summing,
 * at each frame, the waves of the few beats alive around it, plus
 * fibrillatory waves during atrial fibrillation, a respiratory baseline
 * wander and white noise.
 *
 * The one idea: every sample is a function of its frame index and of state
 * that advances in frame order only (the beat schedule, drawn ahead by a
 * fixed look-ahead, and the noise PRNG, two normals per frame), so a seed
 * gives the same samples whether the caller asks for 1 frame at a time or
 * 4096. Memory is fixed at creation (rings of beats and truth items); a
 * frame costs a few dozen exp() calls. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "synth_internal.h"

#define AF_F_HZ 6.0          /* fibrillatory wave: 360/min */
#define AF_FM_HZ 0.11        /* its frequency wanders by +-AF_DF_HZ at this rate */
#define AF_DF_HZ 1.2
#define AF_AM_HZ 0.23
#define AF_RAMP_S 0.3
static const double af_amp_mv[CT_SYNTH_MAX_LEADS] = {0.05, 0.10}; /* most visible in V1 */
static const double wander_scale[CT_SYNTH_MAX_LEADS] = {1.0, 0.7};

void ct_synth_options_default(ct_synth_options *o)
{
    memset(o, 0, sizeof *o);
    o->fs_hz = 360.0;
    o->n_leads = 2;
    o->gain_adu_per_mv = 200.0;
    o->baseline_adu = 0;
    o->hr_bpm = 72.0;
    o->hrv_fraction = 0.03;
    o->pvc_per_min = 0.0;
    o->vt_every_s = 0.0;
    o->vt_beats = 5;
    o->vt_rate_bpm = 170.0;
    o->af_every_s = 0.0;
    o->af_duration_s = 60.0;
    o->af_rate_bpm = 110.0;
    o->pause_every_s = 0.0;
    o->pause_ms = 3000.0;
    o->noise_uv = 15.0;
    o->wander_uv = 50.0;
    o->seed = 1;
}

/* NaN fails every comparison, so `!(lo <= x && x <= hi)` rejects it too. */
static int check_range(ct_error *err, const char *name, double x, double lo, double hi)
{
    if (!(x >= lo && x <= hi))
        return ct_error_set(err, CT_EINVAL, "synth: %s %g is outside %g..%g", name, x, lo, hi);
    return 0;
}

static int check_every(ct_error *err, const char *name, double x, double lo, double hi)
{
    if (x == 0.0)
        return 0;
    if (!(x >= lo && x <= hi))
        return ct_error_set(err, CT_EINVAL, "synth: %s %g is outside %g..%g (0: never)", name, x,
                            lo, hi);
    return 0;
}

static int validate(const ct_synth_options *o, ct_error *err)
{
    int rc;
    if ((rc = check_range(err, "fs_hz", o->fs_hz, 125.0, 1000.0)) ||
        (rc = check_range(err, "gain_adu_per_mv", o->gain_adu_per_mv, 1.0, 100000.0)) ||
        (rc = check_range(err, "hr_bpm", o->hr_bpm, 20.0, 250.0)) ||
        (rc = check_range(err, "hrv_fraction", o->hrv_fraction, 0.0, 0.2)) ||
        (rc = check_range(err, "pvc_per_min", o->pvc_per_min, 0.0, 30.0)) ||
        (rc = check_every(err, "vt_every_s", o->vt_every_s, 5.0, 86400.0)) ||
        (rc = check_range(err, "vt_rate_bpm", o->vt_rate_bpm, 100.0, 250.0)) ||
        (rc = check_every(err, "af_every_s", o->af_every_s, 10.0, 86400.0)) ||
        (rc = check_range(err, "af_duration_s", o->af_duration_s, 10.0, 3600.0)) ||
        (rc = check_range(err, "af_rate_bpm", o->af_rate_bpm, 40.0, 200.0)) ||
        (rc = check_every(err, "pause_every_s", o->pause_every_s, 5.0, 86400.0)) ||
        (rc = check_range(err, "pause_ms", o->pause_ms, 1500.0, 10000.0)) ||
        (rc = check_range(err, "noise_uv", o->noise_uv, 0.0, 500.0)) ||
        (rc = check_range(err, "wander_uv", o->wander_uv, 0.0, 2000.0)))
        return rc;
    if (o->n_leads < 1 || o->n_leads > CT_SYNTH_MAX_LEADS)
        return ct_error_set(err, CT_EINVAL, "synth: n_leads %d is outside 1..%d", o->n_leads,
                            CT_SYNTH_MAX_LEADS);
    if (o->vt_beats < 3 || o->vt_beats > 50)
        return ct_error_set(err, CT_EINVAL, "synth: vt_beats %d is outside 3..50", o->vt_beats);
    if (o->baseline_adu < INT16_MIN || o->baseline_adu > INT16_MAX)
        return ct_error_set(err, CT_EINVAL, "synth: baseline_adu %d is outside %d..%d",
                            o->baseline_adu, INT16_MIN, INT16_MAX);
    return 0;
}

int ct_synth_new(const ct_synth_options *o, ct_synth **out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "synth: no place to put the generator");
    *out = NULL;
    if (!o)
        return ct_error_set(err, CT_EINVAL, "synth: no options given");
    int rc = validate(o, err);
    if (rc)
        return rc;
    ct_synth *s = calloc(1, sizeof *s);
    if (!s)
        return ct_error_set(err, CT_ENOMEM, "synth: out of memory (%zu bytes)", sizeof *s);
    s->o = *o;
    /* Two streams from one seed: the beats must not depend on how many
     * noise numbers were drawn before them, nor the converse. */
    ct_synth_rng_seed(&s->rhythm_rng, o->seed);
    ct_synth_rng_seed(&s->noise_rng, o->seed ^ 0x6a09e667f3bcc909ull);
    s->resp_phase = 2.0 * M_PI * ct_synth_rng_uniform(&s->rhythm_rng);
    for (int l = 0; l < CT_SYNTH_MAX_LEADS; l++)
        s->wander_phase[l] = s->resp_phase + 0.4 * (double)l;
    s->af_phase = 2.0 * M_PI * ct_synth_rng_uniform(&s->rhythm_rng);
    double u = ct_synth_rng_uniform(&s->rhythm_rng);
    s->next_vt_s = o->vt_every_s * (0.1 + 0.4 * u);
    u = ct_synth_rng_uniform(&s->rhythm_rng);
    s->next_pause_s = o->pause_every_s * (0.1 + 0.4 * u);
    u = ct_synth_rng_uniform(&s->rhythm_rng);
    s->sinus_until_af_s = o->af_every_s * (0.1 + 0.4 * u);
    s->rhythm = SYN_RHY_SINUS;
    *out = s;
    return 0;
}

void ct_synth_free(ct_synth *s)
{
    free(s);
}

static double af_wave_mv(const ct_synth *s, int64_t i, double t_s, int lead)
{
    double env = 0.0;
    double ramp = AF_RAMP_S * s->o.fs_hz;
    for (int k = 0; k < s->n_af; k++) {
        if (i < s->af_from[k] || i >= s->af_to[k])
            continue;
        double a = (double)(i - s->af_from[k]) / ramp;
        double b = s->af_to[k] == INT64_MAX ? 1.0 : (double)(s->af_to[k] - i) / ramp;
        env = fmin(1.0, fmin(a, b));
    }
    if (env <= 0.0)
        return 0.0;
    double ph = 2.0 * M_PI * AF_F_HZ * t_s +
                (AF_DF_HZ / AF_FM_HZ) * sin(2.0 * M_PI * AF_FM_HZ * t_s) + s->af_phase;
    double am = 0.75 + 0.25 * sin(2.0 * M_PI * AF_AM_HZ * t_s + s->af_phase);
    double lead_ph = lead == 0 ? 0.0 : 0.9;
    return env * af_amp_mv[lead] * am * (sin(ph + lead_ph) + 0.35 * sin(2.0 * ph + 1.1));
}

static void retire(ct_synth *s, int64_t i)
{
    while (s->n_beats > 0 && s->beats[s->beat_head].last < i) {
        s->beat_head = (s->beat_head + 1) % SYN_BEAT_RING;
        s->n_beats--;
    }
    while (s->n_af > 0 && s->af_to[0] != INT64_MAX && s->af_to[0] < i) {
        memmove(s->af_from, s->af_from + 1, (size_t)(s->n_af - 1) * sizeof s->af_from[0]);
        memmove(s->af_to, s->af_to + 1, (size_t)(s->n_af - 1) * sizeof s->af_to[0]);
        s->n_af--;
    }
}

static int16_t to_adu(const ct_synth *s, double mv)
{
    double v = (double)s->o.baseline_adu + mv * s->o.gain_adu_per_mv;
    if (!(v > INT16_MIN))
        return INT16_MIN;
    if (v > INT16_MAX)
        return INT16_MAX;
    return (int16_t)lrint(v);
}

void ct_synth_generate(ct_synth *s, int16_t *const *leads, size_t n, ct_synth_truth *truth,
                       size_t truth_cap, size_t *n_truth)
{
    size_t nt = 0;
    if (!truth)
        truth_cap = 0;
    if (!s || !leads) {
        if (n_truth)
            *n_truth = 0;
        return;
    }
    const double fs = s->o.fs_hz;
    const int64_t lead_frames = (int64_t)ceil(SYN_LEAD_S * fs);
    for (size_t j = 0; j < n; j++) {
        int64_t i = s->frames;
        ct_synth_schedule(s, i + lead_frames);
        retire(s, i);
        double t_s = (double)i / fs;
        double mv[CT_SYNTH_MAX_LEADS] = {0.0, 0.0};
        for (unsigned k = 0; k < s->n_beats; k++) {
            const syn_beat *b = &s->beats[(s->beat_head + k) % SYN_BEAT_RING];
            if (i < b->first || i > b->last)
                continue;
            double dt = (double)(i - b->r) / fs;
            for (int l = 0; l < s->o.n_leads; l++)
                for (int w = 0; w < b->n_waves[l]; w++) {
                    const syn_wave *wv = &b->w[l][w];
                    double x = (dt - wv->t_s) / wv->sigma_s;
                    if (x > -6.0 && x < 6.0)
                        mv[l] += wv->amp_mv * exp(-0.5 * x * x);
                }
        }
        double wander = s->o.wander_uv / 1000.0;
        for (int l = 0; l < s->o.n_leads; l++) {
            mv[l] += wander * wander_scale[l] *
                     sin(2.0 * M_PI * SYN_RESP_HZ * t_s + s->wander_phase[l]);
            mv[l] += af_wave_mv(s, i, t_s, l);
        }
        /* Always two normals per frame, whatever n_leads: the noise of lead II
         * is then the same with one lead or two. */
        double z0 = ct_synth_rng_normal(&s->noise_rng);
        double z1 = ct_synth_rng_normal(&s->noise_rng);
        double nz = s->o.noise_uv / 1000.0;
        mv[0] += nz * z0;
        if (s->o.n_leads > 1)
            mv[1] += nz * z1;
        for (int l = 0; l < s->o.n_leads; l++)
            leads[l][j] = to_adu(s, mv[l]);

        while (s->n_truth > 0 && s->truth[s->truth_head].sample <= i) {
            if (nt < truth_cap)
                truth[nt++] = s->truth[s->truth_head];
            else
                s->truth_dropped++;
            s->truth_head = (s->truth_head + 1) % SYN_TRUTH_RING;
            s->n_truth--;
        }
        s->frames++;
    }
    if (n_truth)
        *n_truth = nt;
}

int64_t ct_synth_frames(const ct_synth *s)
{
    return s ? s->frames : 0;
}

size_t ct_synth_truth_dropped(const ct_synth *s)
{
    return s ? s->truth_dropped : 0;
}

int ct_synth_lead_code(const ct_synth *s, int l)
{
    static const int codes[CT_SYNTH_MAX_LEADS] = {131330, 131331};
    if (!s || l < 0 || l >= s->o.n_leads)
        return 0;
    return codes[l];
}

const char *ct_synth_lead_name(const ct_synth *s, int l)
{
    static const char *const names[CT_SYNTH_MAX_LEADS] = {"II", "V1"};
    if (!s || l < 0 || l >= s->o.n_leads)
        return NULL;
    return names[l];
}
