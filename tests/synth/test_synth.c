/* Tests of the synth room: option checks, determinism whatever the chunk
 * sizes, truth that matches the samples drawn (R peaks, PVC shape and
 * timing, AF irregularity), and the project's own detector scored against
 * the truth on five minutes of each rhythm, as bxb would: beats matched
 * within 150 ms, sensitivity and positive predictivity. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cardiotwin/ecg.h"
#include "cardiotwin/synth.h"

#define MAX_TRUTH 20000
#define MAX_DET 20000
#define MAX_EV 4000

/* ---- helpers ------------------------------------------------------------ */

typedef struct sig {
    int16_t *lead[CT_SYNTH_MAX_LEADS];
    size_t n;
    ct_synth_truth *truth;
    size_t n_truth;
} sig;

static ct_synth *make(const ct_synth_options *o)
{
    ct_synth *s = NULL;
    ct_error err;
    ct_error_clear(&err);
    int rc = ct_synth_new(o, &s, &err);
    if (rc)
        print_error("ct_synth_new: %s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

/* Generates n frames in chunks of `chunk`, gathering every truth item. */
static void gen(const ct_synth_options *o, size_t n, size_t chunk, sig *out)
{
    ct_synth *s = make(o);
    memset(out, 0, sizeof *out);
    out->n = n;
    for (int l = 0; l < CT_SYNTH_MAX_LEADS; l++) {
        out->lead[l] = calloc(n ? n : 1, sizeof(int16_t));
        assert_non_null(out->lead[l]);
    }
    out->truth = calloc(MAX_TRUTH, sizeof *out->truth);
    assert_non_null(out->truth);
    size_t i = 0;
    while (i < n) {
        size_t m = n - i < chunk ? n - i : chunk;
        int16_t *ptr[CT_SYNTH_MAX_LEADS] = {out->lead[0] + i, out->lead[1] + i};
        size_t got = 0;
        ct_synth_generate(s, ptr, m, out->truth + out->n_truth, MAX_TRUTH - out->n_truth, &got);
        for (size_t k = 0; k < got; k++) {
            int64_t smp = out->truth[out->n_truth + k].sample;
            assert_true(smp >= (int64_t)i && smp < (int64_t)(i + m));
        }
        out->n_truth += got;
        i += m;
    }
    assert_int_equal(ct_synth_frames(s), (int64_t)n);
    assert_int_equal(ct_synth_truth_dropped(s), 0);
    ct_synth_free(s);
}

static void sig_free(sig *g)
{
    for (int l = 0; l < CT_SYNTH_MAX_LEADS; l++)
        free(g->lead[l]);
    free(g->truth);
}

static int is_beat(const ct_synth_truth *t)
{
    return t->sym == 'N' || t->sym == 'V';
}

/* ---- options -------------------------------------------------------------- */

typedef struct bad_option {
    const char *name;
    void (*set)(ct_synth_options *o);
} bad_option;

static void bad_fs(ct_synth_options *o) { o->fs_hz = 100.0; }
static void bad_fs_nan(ct_synth_options *o) { o->fs_hz = NAN; }
static void bad_leads(ct_synth_options *o) { o->n_leads = 3; }
static void bad_leads0(ct_synth_options *o) { o->n_leads = 0; }
static void bad_gain(ct_synth_options *o) { o->gain_adu_per_mv = 0.0; }
static void bad_baseline(ct_synth_options *o) { o->baseline_adu = 40000; }
static void bad_hr(ct_synth_options *o) { o->hr_bpm = 300.0; }
static void bad_hr_low(ct_synth_options *o) { o->hr_bpm = 10.0; }
static void bad_hrv(ct_synth_options *o) { o->hrv_fraction = 0.5; }
static void bad_pvc(ct_synth_options *o) { o->pvc_per_min = 31.0; }
static void bad_pvc_neg(ct_synth_options *o) { o->pvc_per_min = -1.0; }
static void bad_vt_every(ct_synth_options *o) { o->vt_every_s = 1.0; }
static void bad_vt_beats(ct_synth_options *o) { o->vt_beats = 2; }
static void bad_vt_beats_hi(ct_synth_options *o) { o->vt_beats = 51; }
static void bad_vt_rate(ct_synth_options *o) { o->vt_rate_bpm = 90.0; }
static void bad_af_every(ct_synth_options *o) { o->af_every_s = -5.0; }
static void bad_af_dur(ct_synth_options *o) { o->af_duration_s = 5.0; }
static void bad_af_rate(ct_synth_options *o) { o->af_rate_bpm = INFINITY; }
static void bad_pause_every(ct_synth_options *o) { o->pause_every_s = 2.0; }
static void bad_pause_ms(ct_synth_options *o) { o->pause_ms = 1000.0; }
static void bad_noise(ct_synth_options *o) { o->noise_uv = 600.0; }
static void bad_wander(ct_synth_options *o) { o->wander_uv = 3000.0; }

static const bad_option bad_options[] = {
    {"fs_hz", bad_fs},
    {"fs_hz", bad_fs_nan},
    {"n_leads", bad_leads},
    {"n_leads", bad_leads0},
    {"gain_adu_per_mv", bad_gain},
    {"baseline_adu", bad_baseline},
    {"hr_bpm", bad_hr},
    {"hr_bpm", bad_hr_low},
    {"hrv_fraction", bad_hrv},
    {"pvc_per_min", bad_pvc},
    {"pvc_per_min", bad_pvc_neg},
    {"vt_every_s", bad_vt_every},
    {"vt_beats", bad_vt_beats},
    {"vt_beats", bad_vt_beats_hi},
    {"vt_rate_bpm", bad_vt_rate},
    {"af_every_s", bad_af_every},
    {"af_duration_s", bad_af_dur},
    {"af_rate_bpm", bad_af_rate},
    {"pause_every_s", bad_pause_every},
    {"pause_ms", bad_pause_ms},
    {"noise_uv", bad_noise},
    {"wander_uv", bad_wander},
};

static void test_options(void **state)
{
    (void)state;
    ct_synth_options o;
    ct_synth_options_default(&o);
    assert_true(o.fs_hz == 360.0);
    assert_int_equal(o.n_leads, 2);
    assert_true(o.hr_bpm == 72.0);
    ct_synth *s = make(&o);
    assert_int_equal(ct_synth_lead_code(s, 0), 131330);
    assert_int_equal(ct_synth_lead_code(s, 1), 131331);
    assert_int_equal(ct_synth_lead_code(s, 2), 0);
    assert_int_equal(ct_synth_lead_code(s, -1), 0);
    assert_string_equal(ct_synth_lead_name(s, 0), "II");
    assert_string_equal(ct_synth_lead_name(s, 1), "V1");
    assert_null(ct_synth_lead_name(s, 2));
    ct_synth_free(s);
    ct_synth_free(NULL);

    for (size_t k = 0; k < sizeof bad_options / sizeof bad_options[0]; k++) {
        ct_synth_options_default(&o);
        bad_options[k].set(&o);
        ct_error err;
        ct_error_clear(&err);
        ct_synth *bad = (ct_synth *)&o; /* must be overwritten with NULL */
        int rc = ct_synth_new(&o, &bad, &err);
        assert_int_equal(rc, CT_EINVAL);
        assert_int_equal(err.code, CT_EINVAL);
        assert_null(bad);
        if (!strstr(err.msg, bad_options[k].name))
            fail_msg("option %zu: message '%s' does not name %s", k, err.msg,
                     bad_options[k].name);
    }
    /* 0 means "never" for the *_every_s options and is valid. */
    ct_synth_options_default(&o);
    o.vt_every_s = 0;
    o.af_every_s = 0;
    o.pause_every_s = 0;
    s = make(&o);
    ct_synth_free(s);

    ct_error err;
    assert_int_equal(ct_synth_new(NULL, &s, &err), CT_EINVAL);
    assert_null(s);
    assert_int_equal(ct_synth_new(&o, NULL, &err), CT_EINVAL);
    assert_int_equal(ct_synth_new(&o, NULL, NULL), CT_EINVAL);
}

/* ---- determinism ------------------------------------------------------------ */

static void rich_options(ct_synth_options *o, uint64_t seed)
{
    ct_synth_options_default(o);
    o->pvc_per_min = 6;
    o->vt_every_s = 20;
    o->af_every_s = 20;
    o->af_duration_s = 15;
    o->pause_every_s = 15;
    o->seed = seed;
}

static void test_determinism(void **state)
{
    (void)state;
    ct_synth_options o;
    rich_options(&o, 42);
    size_t n = (size_t)(90 * o.fs_hz);
    sig a, b, c;
    gen(&o, n, 1, &a);
    gen(&o, n, 7, &b);
    gen(&o, n, 4096, &c);
    for (int l = 0; l < 2; l++) {
        assert_memory_equal(a.lead[l], b.lead[l], n * sizeof(int16_t));
        assert_memory_equal(a.lead[l], c.lead[l], n * sizeof(int16_t));
    }
    assert_true(a.n_truth > 100);
    assert_int_equal(a.n_truth, b.n_truth);
    assert_int_equal(a.n_truth, c.n_truth);
    assert_memory_equal(a.truth, b.truth, a.n_truth * sizeof *a.truth);
    assert_memory_equal(a.truth, c.truth, a.n_truth * sizeof *a.truth);

    /* Everything the model can do happened in those 90 s. */
    int seen_v = 0, seen_vt = 0, seen_af = 0, seen_pause = 0, seen_n = 0;
    for (size_t k = 0; k < a.n_truth; k++) {
        const ct_synth_truth *t = &a.truth[k];
        if (k > 0)
            assert_true(t->sample >= a.truth[k - 1].sample);
        seen_v += t->sym == 'V';
        seen_n += t->sym == 'N';
        seen_vt += t->sym == '+' && strcmp(t->aux, "(VT") == 0;
        seen_af += t->sym == '+' && strcmp(t->aux, "(AFIB") == 0;
        seen_pause += t->sym == '"' && strcmp(t->aux, "PAUSE") == 0;
        if (is_beat(t))
            assert_string_equal(t->aux, "");
    }
    assert_true(seen_v > 0 && seen_vt > 0 && seen_af > 0 && seen_pause > 0 && seen_n > 50);
    assert_int_equal(a.truth[0].sym, '+');
    assert_string_equal(a.truth[0].aux, "(N");

    /* Another seed, other samples. */
    sig d;
    rich_options(&o, 43);
    gen(&o, n, 4096, &d);
    assert_true(memcmp(a.lead[0], d.lead[0], n * sizeof(int16_t)) != 0);

    /* One lead: lead II is the same as with two. */
    sig e;
    rich_options(&o, 42);
    o.n_leads = 1;
    gen(&o, n, 333, &e);
    assert_memory_equal(a.lead[0], e.lead[0], n * sizeof(int16_t));
    assert_int_equal(a.n_truth, e.n_truth);
    sig_free(&a);
    sig_free(&b);
    sig_free(&c);
    sig_free(&d);
    sig_free(&e);
}

/* Truth items that do not fit are dropped and counted, never written. */
static void test_truth_cap(void **state)
{
    (void)state;
    ct_synth_options o;
    ct_synth_options_default(&o);
    ct_synth *s = make(&o);
    size_t n = (size_t)(20 * o.fs_hz);
    int16_t *l0 = calloc(n, sizeof *l0), *l1 = calloc(n, sizeof *l1);
    assert_non_null(l0);
    assert_non_null(l1);
    int16_t *ptr[2] = {l0, l1};
    ct_synth_truth tr[4];
    memset(tr, 0x55, sizeof tr);
    size_t got = 99;
    ct_synth_generate(s, ptr, n, tr, 2, &got);
    assert_int_equal(got, 2);
    /* 20 s at 72 bpm: about 24 beats and the opening rhythm label. */
    size_t dropped = ct_synth_truth_dropped(s);
    assert_true(dropped >= 18 && dropped <= 30);
    assert_int_equal((unsigned char)tr[2].sym, 0x55);
    ct_synth_generate(s, ptr, n, NULL, 0, &got);
    assert_int_equal(got, 0);
    assert_true(ct_synth_truth_dropped(s) > dropped + 18);
    assert_int_equal(ct_synth_frames(s), (int64_t)(2 * n));
    /* n = 0 changes nothing. */
    ct_synth_generate(s, ptr, 0, tr, 4, &got);
    assert_int_equal(got, 0);
    assert_int_equal(ct_synth_frames(s), (int64_t)(2 * n));
    free(l0);
    free(l1);
    ct_synth_free(s);
}

/* ---- truth against the samples ------------------------------------------- */

/* Largest |deviation from baseline| of lead l within +-half_ms of sample c. */
static size_t extremum(const sig *g, int l, int64_t c, double half_ms, double fs)
{
    int64_t h = (int64_t)(half_ms * fs / 1000.0);
    int64_t best = c;
    int best_v = -1;
    for (int64_t i = c - h; i <= c + h; i++) {
        if (i < 0 || i >= (int64_t)g->n)
            continue;
        int v = abs(g->lead[l][i]);
        if (v > best_v) {
            best_v = v;
            best = i;
        }
    }
    return (size_t)best;
}

/* Width of the lead II QRS at half its peak, in ms. */
static double half_width_ms(const sig *g, int64_t r, double fs)
{
    int peak = g->lead[0][r];
    int64_t a = r, b = r;
    while (a > 0 && g->lead[0][a] > peak / 2)
        a--;
    while (b + 1 < (int64_t)g->n && g->lead[0][b] > peak / 2)
        b++;
    return (double)(b - a) * 1000.0 / fs;
}

static void test_truth_matches_signal(void **state)
{
    (void)state;
    ct_synth_options o;
    rich_options(&o, 7);
    o.noise_uv = 0;
    o.wander_uv = 0;
    o.hrv_fraction = 0.0; /* the sinus interval is then exactly 60/hr */
    o.pvc_per_min = 8;
    double fs = o.fs_hz;
    size_t n = (size_t)(120 * fs);
    sig g;
    gen(&o, n, 1000, &g);

    double rr_n = 60.0 / o.hr_bpm;
    int n_beats = 0, n_v = 0, n_comp = 0, n_pause = 0;
    double w_n = 0, w_v = 0;
    int in_af = 0, in_vt = 0;
    for (size_t k = 0; k < g.n_truth; k++) {
        const ct_synth_truth *t = &g.truth[k];
        if (t->sym == '+') {
            in_af = strcmp(t->aux, "(AFIB") == 0;
            in_vt = strcmp(t->aux, "(VT") == 0;
        }
        if (t->sym == '"') {
            /* The pause ends at a beat, pause_ms after the one before. */
            assert_true(k >= 2 && g.truth[k - 1].sym == 'N');
            int64_t prev = -1;
            for (size_t j = k - 1; j-- > 0;)
                if (is_beat(&g.truth[j])) {
                    prev = g.truth[j].sample;
                    break;
                }
            assert_true(prev >= 0);
            double gap_ms = (double)(t->sample - prev) * 1000.0 / fs;
            assert_true(fabs(gap_ms - o.pause_ms) < 3.0);
            n_pause++;
        }
        if (!is_beat(t) || t->sample < 40 || t->sample + 400 >= (int64_t)n)
            continue;
        n_beats++;
        /* The R peak drawn is the extremum of lead II around it. */
        size_t x = extremum(&g, 0, t->sample, 60.0, fs);
        if (llabs((long long)x - (long long)t->sample) > 1)
            fail_msg("beat %c at %lld: lead II extremum at %zu", t->sym, (long long)t->sample, x);
        assert_true(g.lead[0][t->sample] > 150); /* upright, > 0.75 mV at 200 adu/mV */
        if (t->sym == 'V') {
            n_v++;
            w_v += half_width_ms(&g, t->sample, fs);
            /* T wave opposite to the QRS: lead II goes below -0.25 mV after it. */
            int tmin = 0;
            for (int64_t i = t->sample + (int64_t)(0.15 * fs); i < t->sample + (int64_t)(0.40 * fs); i++)
                if (g.lead[0][i] < tmin)
                    tmin = g.lead[0][i];
            assert_true(tmin < -50);
            /* An isolated PVC in sinus rhythm: premature, then a full
             * compensatory pause (N-V-N spans two sinus intervals). */
            if (!in_af && !in_vt && k >= 1 && k + 1 < g.n_truth && g.truth[k - 1].sym == 'N' &&
                g.truth[k + 1].sym == 'N') {
                double before = (double)(t->sample - g.truth[k - 1].sample) / fs;
                double span = (double)(g.truth[k + 1].sample - g.truth[k - 1].sample) / fs;
                assert_true(before < 0.7 * rr_n);
                assert_true(fabs(span - 2 * rr_n) < 0.01);
                n_comp++;
            }
        } else if (!in_af) {
            w_n += half_width_ms(&g, t->sample, fs);
            /* A sinus beat has its P wave: lead II rises above 0.1 mV in
             * the 250..100 ms before R. */
            int pmax = -1000;
            for (int64_t i = t->sample - (int64_t)(0.25 * fs); i < t->sample - (int64_t)(0.10 * fs); i++)
                if (g.lead[0][i] > pmax)
                    pmax = g.lead[0][i];
            assert_true(pmax > 20);
        }
    }
    int n_n = n_beats - n_v;
    assert_true(n_beats > 100);
    assert_true(n_v > 10);
    assert_true(n_comp > 3);
    assert_true(n_pause > 0);
    w_v /= n_v;
    w_n /= n_n;
    print_message("QRS half-width: N %.1f ms, V %.1f ms\n", w_n, w_v);
    assert_true(w_v > 2.5 * w_n);
    sig_free(&g);
}

/* RR irregularity: coefficient of variation of the intervals inside AF
 * episodes is about 0.2, in sinus rhythm small. */
static void test_af_irregular(void **state)
{
    (void)state;
    ct_synth_options o;
    ct_synth_options_default(&o);
    o.af_every_s = 30;
    o.af_duration_s = 120;
    o.seed = 11;
    double fs = o.fs_hz;
    size_t n = (size_t)(600 * fs);
    sig g;
    gen(&o, n, 4096, &g);
    double s_af = 0, ss_af = 0, s_n = 0, ss_n = 0;
    int n_af = 0, n_n = 0, in_af = 0, episodes = 0;
    int64_t prev = -1;
    for (size_t k = 0; k < g.n_truth; k++) {
        const ct_synth_truth *t = &g.truth[k];
        if (t->sym == '+') {
            in_af = strcmp(t->aux, "(AFIB") == 0;
            episodes += in_af;
            prev = -1; /* intervals across a change belong to neither */
            continue;
        }
        if (!is_beat(t))
            continue;
        if (prev >= 0) {
            double rr = (double)(t->sample - prev) / fs;
            if (in_af) {
                s_af += rr;
                ss_af += rr * rr;
                n_af++;
            } else {
                s_n += rr;
                ss_n += rr * rr;
                n_n++;
            }
        }
        prev = t->sample;
    }
    assert_true(episodes >= 3);
    assert_true(n_af > 300 && n_n > 100);
    double m_af = s_af / n_af, m_n = s_n / n_n;
    double cv_af = sqrt(ss_af / n_af - m_af * m_af) / m_af;
    double cv_n = sqrt(ss_n / n_n - m_n * m_n) / m_n;
    print_message("AF: mean RR %.3f s CV %.3f; sinus: mean RR %.3f s CV %.3f\n", m_af, cv_af, m_n,
                  cv_n);
    assert_true(fabs(m_af - 60.0 / o.af_rate_bpm) < 0.05);
    assert_true(cv_af > 0.15 && cv_af < 0.25);
    assert_true(fabs(m_n - 60.0 / o.hr_bpm) < 0.05);
    assert_true(cv_n < 0.06);
    sig_free(&g);
}

/* ---- the detector against the truth --------------------------------------- */

typedef struct det {
    int64_t sample[MAX_DET];
    ct_ecg_beat_class cls[MAX_DET];
    int n;
    ct_ecg_event ev[MAX_EV];
    int n_ev;
} det;

static void on_beat(void *ctx, const ct_ecg_beat *b)
{
    det *d = ctx;
    if (d->n < MAX_DET) {
        d->sample[d->n] = b->sample;
        d->cls[d->n] = b->cls;
        d->n++;
    }
}

static void on_event(void *ctx, const ct_ecg_event *e)
{
    det *d = ctx;
    if (d->n_ev < MAX_EV)
        d->ev[d->n_ev++] = *e;
}

typedef struct score {
    int tp, fn, fp;
    int v_truth, v_as_v, det_v, det_v_true;
    double se, ppv, v_se, v_ppv;
} score;

/* Runs the detector over the signal and scores the beats from 5 s (after the
 * detector's learning time) to 1 s before the end, one-to-one matching
 * within 150 ms. */
static score run_detector(const sig *g, const ct_synth_options *o, det *d)
{
    memset(d, 0, sizeof *d);
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = o->fs_hz;
    cfg.n_leads = o->n_leads;
    for (int l = 0; l < o->n_leads; l++) {
        cfg.gain_adu_per_mv[l] = o->gain_adu_per_mv;
        cfg.baseline_adu[l] = o->baseline_adu;
    }
    ct_ecg_sink sink = {on_beat, on_event, d};
    ct_ecg_detector *dd = NULL;
    ct_error err;
    assert_int_equal(ct_ecg_detector_new(&cfg, &sink, &dd, &err), 0);
    for (size_t i = 0; i < g->n; i += 4096) {
        size_t m = g->n - i < 4096 ? g->n - i : 4096;
        const int16_t *ptr[2] = {g->lead[0] + i, g->lead[1] + i};
        assert_int_equal(ct_ecg_detector_push(dd, ptr, m), 0);
    }
    ct_ecg_detector_finish(dd);
    ct_ecg_detector_free(dd);

    score sc;
    memset(&sc, 0, sizeof sc);
    int64_t lo = (int64_t)(5 * o->fs_hz), hi = (int64_t)g->n - (int64_t)o->fs_hz;
    int64_t win = (int64_t)(0.150 * o->fs_hz);
    char *used = calloc((size_t)d->n + 1, 1);
    assert_non_null(used);
    int j = 0;
    for (size_t k = 0; k < g->n_truth; k++) {
        const ct_synth_truth *t = &g->truth[k];
        if (!is_beat(t) || t->sample < lo || t->sample >= hi)
            continue;
        while (j < d->n && d->sample[j] < t->sample - win)
            j++;
        int best = -1;
        for (int q = j; q < d->n && d->sample[q] <= t->sample + win; q++)
            if (!used[q] && (best < 0 || llabs(d->sample[q] - t->sample) <
                                             llabs(d->sample[best] - t->sample)))
                best = q;
        if (t->sym == 'V')
            sc.v_truth++;
        if (best < 0) {
            sc.fn++;
            if (getenv("CT_SYNTH_DEBUG"))
                print_message("missed %c at %.3f s\n", t->sym, (double)t->sample / o->fs_hz);
            continue;
        }
        used[best] = 1;
        sc.tp++;
        used[best] = t->sym == 'V' ? 2 : 1;
        if (t->sym == 'V' && d->cls[best] == CT_BEAT_V)
            sc.v_as_v++;
    }
    for (int q = 0; q < d->n; q++) {
        if (d->sample[q] < lo || d->sample[q] >= hi)
            continue;
        if (d->cls[q] == CT_BEAT_V) {
            sc.det_v++;
            sc.det_v_true += used[q] == 2;
        }
        if (!used[q])
            sc.fp++;
    }
    free(used);
    sc.se = 100.0 * sc.tp / (sc.tp + sc.fn);
    sc.ppv = 100.0 * sc.tp / (sc.tp + sc.fp);
    sc.v_se = sc.v_truth ? 100.0 * sc.v_as_v / sc.v_truth : 100.0;
    sc.v_ppv = sc.det_v ? 100.0 * sc.det_v_true / sc.det_v : 100.0;
    return sc;
}

static void report(const char *name, const score *sc)
{
    print_message("%s: beats %d, FN %d, FP %d, Se %.2f%%, +P %.2f%%; V %d, V Se %.2f%%, V +P %.2f%%\n",
                  name, sc->tp + sc->fn, sc->fn, sc->fp, sc->se, sc->ppv, sc->v_truth, sc->v_se,
                  sc->v_ppv);
}

static void test_detector_sinus(void **state)
{
    (void)state;
    static det d;
    ct_synth_options o;
    ct_synth_options_default(&o);
    o.pvc_per_min = 2;
    o.pause_every_s = 60;
    o.seed = 101;
    sig g;
    gen(&o, (size_t)(300 * o.fs_hz), 4096, &g);
    score sc = run_detector(&g, &o, &d);
    report("sinus 72 bpm, 2 PVC/min, pauses", &sc);
    assert_true(sc.tp + sc.fn > 330);
    assert_true(sc.se >= 99.0);
    assert_true(sc.ppv >= 99.0);
    int pauses = 0, drawn = 0;
    for (int k = 0; k < d.n_ev; k++)
        pauses += d.ev[k].kind == CT_EVENT_PAUSE && d.ev[k].value >= o.pause_ms - 50;
    for (size_t k = 0; k < g.n_truth; k++)
        drawn += g.truth[k].sym == '"';
    print_message("pauses: %d drawn, %d detected\n", drawn, pauses);
    assert_true(drawn >= 4);
    assert_int_equal(pauses, drawn);
    sig_free(&g);
}

static void test_detector_pvc(void **state)
{
    (void)state;
    static det d;
    ct_synth_options o;
    ct_synth_options_default(&o);
    o.hr_bpm = 78;
    o.pvc_per_min = 10;
    o.vt_every_s = 45;
    o.noise_uv = 20;
    o.seed = 202;
    sig g;
    gen(&o, (size_t)(300 * o.fs_hz), 4096, &g);
    score sc = run_detector(&g, &o, &d);
    report("sinus 78 bpm, 10 PVC/min, 5-beat VT every ~45 s", &sc);
    assert_true(sc.v_truth > 40);
    assert_true(sc.se >= 99.0);
    assert_true(sc.ppv >= 99.0);
    assert_true(sc.v_se >= 90.0);
    int vt = 0;
    for (int k = 0; k < d.n_ev; k++)
        vt += d.ev[k].kind == CT_EVENT_RHYTHM && d.ev[k].end_sample < 0 &&
              strcmp(d.ev[k].label, "(VT") == 0;
    int vt_truth = 0;
    for (size_t k = 0; k < g.n_truth; k++)
        vt_truth += g.truth[k].sym == '+' && strcmp(g.truth[k].aux, "(VT") == 0;
    print_message("VT runs: %d drawn, %d detected\n", vt_truth, vt);
    assert_true(vt_truth >= 4);
    assert_true(vt >= vt_truth - 1);
    sig_free(&g);
}

/* Harder conditions: 250 Hz, more noise and wander, a faster rate. */
static void test_detector_noisy(void **state)
{
    (void)state;
    static det d;
    ct_synth_options o;
    ct_synth_options_default(&o);
    o.fs_hz = 250;
    o.hr_bpm = 95;
    o.hrv_fraction = 0.05;
    o.pvc_per_min = 6;
    o.noise_uv = 60;
    o.wander_uv = 400;
    o.seed = 404;
    sig g;
    gen(&o, (size_t)(300 * o.fs_hz), 4096, &g);
    score sc = run_detector(&g, &o, &d);
    report("250 Hz, 95 bpm, 6 PVC/min, noise 60 uV, wander 400 uV", &sc);
    assert_true(sc.se >= 99.0);
    assert_true(sc.ppv >= 99.0);
    assert_true(sc.v_se >= 90.0);
    sig_free(&g);
}

/* Seconds of [a, b) covered by the union of [s, e) spans. */
static double overlap_s(const int64_t *s, const int64_t *e, int n, int64_t a, int64_t b, double fs)
{
    int64_t tot = 0;
    for (int k = 0; k < n; k++) {
        int64_t lo = s[k] > a ? s[k] : a, hi = e[k] < b ? e[k] : b;
        if (hi > lo)
            tot += hi - lo;
    }
    return (double)tot / fs;
}

static void test_detector_af(void **state)
{
    (void)state;
    static det d;
    ct_synth_options o;
    ct_synth_options_default(&o);
    o.af_every_s = 40;
    o.af_duration_s = 60;
    o.pvc_per_min = 1;
    o.seed = 303;
    sig g;
    size_t n = (size_t)(300 * o.fs_hz);
    gen(&o, n, 4096, &g);
    score sc = run_detector(&g, &o, &d);
    report("sinus 72 / AF 110 bpm episodes of 60 s", &sc);
    assert_true(sc.se >= 99.0);
    assert_true(sc.ppv >= 99.0);

    /* Truth AF spans and detected (AFIB spans. */
    int64_t ts[32], te[32], ds[64], de[64];
    int nt = 0, nd = 0;
    for (size_t k = 0; k < g.n_truth && nt < 32; k++) {
        const ct_synth_truth *t = &g.truth[k];
        if (t->sym != '+')
            continue;
        if (nt > 0 && te[nt - 1] < 0)
            te[nt - 1] = t->sample;
        if (strcmp(t->aux, "(AFIB") == 0) {
            ts[nt] = t->sample;
            te[nt++] = -1;
        }
    }
    if (nt > 0 && te[nt - 1] < 0)
        te[nt - 1] = (int64_t)n;
    int64_t open = -1;
    for (int k = 0; k < d.n_ev && nd < 64; k++) {
        const ct_ecg_event *e = &d.ev[k];
        if (e->kind != CT_EVENT_RHYTHM)
            continue;
        if (strcmp(e->label, "(AFIB") == 0 && e->end_sample < 0)
            open = e->sample;
        else if (strcmp(e->label, "(AFIB") == 0 && open >= 0) {
            ds[nd] = open;
            de[nd++] = e->end_sample;
            open = -1;
        }
    }
    if (open >= 0 && nd < 64) {
        ds[nd] = open;
        de[nd++] = (int64_t)n;
    }
    for (int k = 0; k < nt && getenv("CT_SYNTH_DEBUG"); k++)
        print_message("truth AF %.1f..%.1f s\n", ts[k] / o.fs_hz, te[k] / o.fs_hz);
    for (int k = 0; k < nd && getenv("CT_SYNTH_DEBUG"); k++)
        print_message("detected AF %.1f..%.1f s\n", ds[k] / o.fs_hz, de[k] / o.fs_hz);
    /* The detector reads AF from the last 24 intervals: it needs about 10 s
     * to claim it and about 20 s to let go once sinus rhythm is back. Its
     * claims are scored against the truth spans and against the truth spans
     * stretched by that lag (what a reader of the strip would accept). */
    double fs = o.fs_hz;
    int64_t lag = (int64_t)(25 * fs);
    int64_t te_lag[32];
    double truth_s = 0, covered_s = 0, det_s = 0, det_true_s = 0, det_lag_s = 0;
    int found = 0;
    for (int k = 0; k < nt; k++) {
        double len = (double)(te[k] - ts[k]) / fs;
        double cov = overlap_s(ds, de, nd, ts[k], te[k], fs);
        truth_s += len;
        covered_s += cov;
        te_lag[k] = te[k] + lag;
        /* Found: a claim opens within 20 s of the onset. */
        for (int q = 0; q < nd; q++)
            if (ds[q] >= ts[k] && ds[q] <= ts[k] + (int64_t)(20 * fs)) {
                found++;
                break;
            }
    }
    for (int k = 0; k < nd; k++) {
        det_s += (double)(de[k] - ds[k]) / fs;
        det_true_s += overlap_s(ts, te, nt, ds[k], de[k], fs);
        det_lag_s += overlap_s(ts, te_lag, nt, ds[k], de[k], fs);
    }
    print_message("AF: %d episodes drawn (%.0f s), %d claimed within 20 s of onset; "
                  "duration Se %.1f%%, +P %.1f%% (%.1f%% allowing 25 s to let go)\n",
                  nt, truth_s, found, 100 * covered_s / truth_s, 100 * det_true_s / det_s,
                  100 * det_lag_s / det_s);
    assert_true(nt >= 2);
    assert_int_equal(found, nt);
    assert_int_equal(nd, nt); /* one claim per episode, none in sinus rhythm */
    assert_true(covered_s >= 0.8 * truth_s);
    assert_true(det_lag_s >= 0.99 * det_s);
    sig_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_truth_cap),
        cmocka_unit_test(test_truth_matches_signal),
        cmocka_unit_test(test_af_irregular),
        cmocka_unit_test(test_detector_sinus),
        cmocka_unit_test(test_detector_pvc),
        cmocka_unit_test(test_detector_af),
        cmocka_unit_test(test_detector_noisy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
