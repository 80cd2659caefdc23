/* Tests of the streaming detector on synthetic ECG with known beats: sums of
 * Gaussian P, Q, R, S and T waves at known times (normal beats), and wide
 * beats with a discordant T and no P (ventricular beats), in two leads,
 * with baseline wander and a little deterministic noise. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cardiotwin/ecg.h"

#define GAIN 200.0
#define MAX_TRUTH 4096
#define MAX_OUT 8192

typedef struct wave {
    double t_s, amp_mv, sigma_s;
} wave;

static const wave normal_beat[] = {
    {-0.170, 0.12, 0.022}, {-0.028, -0.08, 0.008}, {0.0, 1.10, 0.009},
    {0.028, -0.25, 0.009}, {0.260, 0.30, 0.045},
};
static const wave ventricular_beat[] = {
    {-0.010, 1.20, 0.026}, {0.060, -0.45, 0.028}, {0.300, -0.45, 0.060},
};

typedef struct truth {
    double t_s[MAX_TRUTH];
    int is_v[MAX_TRUTH];
    int n;
} truth;

typedef struct signal2 {
    int16_t *lead[2];
    size_t n;
    double fs;
} signal2;

static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

/* Renders the beats of tr into two leads at fs (lead 1 is a scaled copy
 * with its own T wave), baseline 0 ADC units. */
static void render(const truth *tr, double dur_s, double fs, signal2 *out)
{
    size_t n = (size_t)(dur_s * fs);
    out->n = n;
    out->fs = fs;
    double *acc0 = calloc(n, sizeof *acc0);
    double *acc1 = calloc(n, sizeof *acc1);
    assert_non_null(acc0);
    assert_non_null(acc1);
    for (int b = 0; b < tr->n; b++) {
        const wave *w = tr->is_v[b] ? ventricular_beat : normal_beat;
        int nw = tr->is_v[b] ? 3 : 5;
        for (int k = 0; k < nw; k++) {
            double c = tr->t_s[b] + w[k].t_s;
            long i0 = (long)floor((c - 5 * w[k].sigma_s) * fs);
            long i1 = (long)ceil((c + 5 * w[k].sigma_s) * fs);
            for (long i = i0 < 0 ? 0 : i0; i <= i1 && i < (long)n; i++) {
                double x = ((double)i / fs - c) / w[k].sigma_s;
                double v = w[k].amp_mv * exp(-0.5 * x * x);
                acc0[i] += v;
                /* Lead 1: smaller QRS, larger T (a V1-like view). */
                acc1[i] += (k == nw - 1 ? 1.2 : 0.6) * v;
            }
        }
    }
    uint32_t seed = 12345;
    for (int l = 0; l < 2; l++) {
        out->lead[l] = malloc(n * sizeof(int16_t));
        assert_non_null(out->lead[l]);
    }
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / fs;
        double wander = 0.08 * sin(2 * M_PI * 0.25 * t);
        double nz0 = ((double)(lcg(&seed) % 5) - 2.0);
        double nz1 = ((double)(lcg(&seed) % 5) - 2.0);
        out->lead[0][i] = (int16_t)lrint((acc0[i] + wander) * GAIN + nz0);
        out->lead[1][i] = (int16_t)lrint((acc1[i] - wander) * GAIN + nz1);
    }
    free(acc0);
    free(acc1);
}

static void free_signal(signal2 *s)
{
    free(s->lead[0]);
    free(s->lead[1]);
}

/* Regular rhythm at rr_s where every v_every-th beat is replaced by a
 * premature V beat (coupling 0.6 RR, then a compensatory pause): v_every 2
 * is bigeminy, 3 trigeminy, 0 none. */
static void make_truth(truth *tr, double dur_s, double rr_s, int v_every)
{
    tr->n = 0;
    double t = 0.5;
    int k = 0;
    while (t < dur_s - 1.0 && tr->n < MAX_TRUTH) {
        k++;
        int v = v_every > 0 && k % v_every == 0 && k > 1;
        tr->t_s[tr->n] = v ? t - 0.4 * rr_s : t;
        tr->is_v[tr->n++] = v;
        t += rr_s;
    }
}

typedef struct capture {
    ct_ecg_beat beats[MAX_OUT];
    int n_beats;
    ct_ecg_event events[MAX_OUT];
    int n_events;
} capture;

static void on_beat(void *ctx, const ct_ecg_beat *b)
{
    capture *c = ctx;
    assert_non_null(b->features);
    if (c->n_beats < MAX_OUT) {
        c->beats[c->n_beats] = *b;
        c->beats[c->n_beats].features = NULL;
        c->n_beats++;
    }
}

static void on_event(void *ctx, const ct_ecg_event *e)
{
    capture *c = ctx;
    if (c->n_events < MAX_OUT)
        c->events[c->n_events++] = *e;
}

static ct_ecg_detector *make_detector(double fs, int n_leads, capture *cap)
{
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = fs;
    cfg.n_leads = n_leads;
    for (int l = 0; l < n_leads; l++)
        cfg.gain_adu_per_mv[l] = GAIN;
    ct_ecg_sink sink = {on_beat, on_event, cap};
    ct_ecg_detector *d = NULL;
    ct_error err;
    assert_int_equal(ct_ecg_detector_new(&cfg, &sink, &d, &err), 0);
    assert_non_null(d);
    return d;
}

/* Pushes the signal in chunks of `chunk` frames (0: whole). lead1 may be
 * replaced (NULL: absent). */
static void run(ct_ecg_detector *d, const signal2 *s, int n_leads, const int16_t *lead1,
                int use_lead1_override, size_t chunk)
{
    size_t i = 0;
    if (chunk == 0)
        chunk = s->n;
    while (i < s->n) {
        size_t m = s->n - i < chunk ? s->n - i : chunk;
        const int16_t *ptr[2] = {s->lead[0] + i, NULL};
        if (n_leads > 1) {
            const int16_t *l1 = use_lead1_override ? lead1 : s->lead[1];
            ptr[1] = l1 ? l1 + i : NULL;
        }
        assert_int_equal(ct_ecg_detector_push(d, ptr, m), 0);
        i += m;
    }
    ct_ecg_detector_finish(d);
}

/* Every true beat after the learning period is found within tol_s, nothing
 * else is reported, and the classes are right. */
static void check_beats(const capture *c, const truth *tr, double fs, double dur_s, double tol_s,
                        int check_classes)
{
    double start = CT_ECG_LEARN_MS / 1000.0 + 0.5;
    int found = 0, expected = 0, v_right = 0, v_total = 0;
    for (int b = 0; b < tr->n; b++) {
        if (tr->t_s[b] < start || tr->t_s[b] > dur_s - 0.5)
            continue;
        expected++;
        int hit = -1;
        for (int k = 0; k < c->n_beats; k++)
            if (fabs((double)c->beats[k].sample / fs - tr->t_s[b]) <= tol_s)
                hit = k;
        if (hit < 0) {
            print_error("beat at %.3f s (%s) not found\n", tr->t_s[b], tr->is_v[b] ? "V" : "N");
            continue;
        }
        found++;
        if (check_classes && tr->t_s[b] > 10.0) {
            if (tr->is_v[b]) {
                v_total++;
                v_right += c->beats[hit].cls == CT_BEAT_V;
            } else if (c->beats[hit].cls == CT_BEAT_V) {
                print_error("normal beat at %.3f s called V\n", tr->t_s[b]);
                fail();
            }
        }
    }
    assert_int_equal(found, expected);
    /* Nothing but true beats. */
    for (int k = 0; k < c->n_beats; k++) {
        double t = (double)c->beats[k].sample / fs;
        int ok = 0;
        for (int b = 0; b < tr->n && !ok; b++)
            ok = fabs(t - tr->t_s[b]) <= tol_s;
        if (!ok) {
            print_error("extra beat at %.3f s\n", t);
            fail();
        }
    }
    if (check_classes && v_total > 0)
        assert_true(v_right * 10 >= v_total * 9);
}

static void test_rates(void **state)
{
    (void)state;
    static const double rates[] = {125, 250, 360, 500, 1000};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
        double fs = rates[r];
        truth *tr = malloc(sizeof *tr);
        capture *cap = calloc(1, sizeof *cap);
        assert_non_null(tr);
        assert_non_null(cap);
        make_truth(tr, 60.0, 0.8, 5);
        signal2 s;
        render(tr, 60.0, fs, &s);
        ct_ecg_detector *d = make_detector(fs, 2, cap);
        run(d, &s, 2, NULL, 0, 0);
        /* R peaks within 2 samples or 10 ms, whichever is larger; the wide
         * V beats (R 26 ms sigma) within 20 ms. */
        double tol = fmax(2.0 / fs, 0.010);
        check_beats(cap, tr, fs, 60.0, 0.020, 1);
        for (int b = 0; b < tr->n; b++) {
            if (tr->is_v[b] || tr->t_s[b] < 3.0)
                continue;
            for (int k = 0; k < cap->n_beats; k++) {
                double dt = (double)cap->beats[k].sample / fs - tr->t_s[b];
                if (fabs(dt) < 0.1)
                    assert_true(fabs(dt) <= tol);
            }
        }
        ct_ecg_detector_free(d);
        free_signal(&s);
        free(cap);
        free(tr);
    }
}

static void assert_same(const capture *a, const capture *b)
{
    assert_int_equal(a->n_beats, b->n_beats);
    for (int k = 0; k < a->n_beats; k++) {
        assert_int_equal(a->beats[k].sample, b->beats[k].sample);
        assert_int_equal(a->beats[k].cls, b->beats[k].cls);
        assert_int_equal(a->beats[k].reported_at, b->beats[k].reported_at);
        assert_int_equal(a->beats[k].template_id, b->beats[k].template_id);
        assert_true(a->beats[k].confidence == b->beats[k].confidence);
    }
    assert_int_equal(a->n_events, b->n_events);
    for (int k = 0; k < a->n_events; k++) {
        assert_int_equal(a->events[k].kind, b->events[k].kind);
        assert_int_equal(a->events[k].sample, b->events[k].sample);
        assert_int_equal(a->events[k].end_sample, b->events[k].end_sample);
        assert_string_equal(a->events[k].label, b->events[k].label);
    }
}

static void test_chunking_invariance(void **state)
{
    (void)state;
    double fs = 360.0;
    truth *tr = malloc(sizeof *tr);
    assert_non_null(tr);
    make_truth(tr, 40.0, 0.75, 4);
    signal2 s;
    render(tr, 40.0, fs, &s);
    /* A lead-off stretch on lead 1 in the middle makes the test harder. */
    static const size_t chunks[] = {0, 1, 7, 113, 4096};
    capture *ref = NULL;
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        capture *cap = calloc(1, sizeof *cap);
        assert_non_null(cap);
        ct_ecg_detector *d = make_detector(fs, 2, cap);
        run(d, &s, 2, NULL, 0, chunks[c]);
        assert_true(ct_ecg_detector_samples(d) == (int64_t)s.n);
        ct_ecg_detector_free(d);
        assert_true(cap->n_beats > 40);
        if (!ref) {
            ref = cap;
        } else {
            assert_same(ref, cap);
            free(cap);
        }
    }
    free(ref);
    free_signal(&s);
    free(tr);
}

static void test_bad_lead1_keeps_lead0_beats(void **state)
{
    (void)state;
    double fs = 360.0;
    truth *tr = malloc(sizeof *tr);
    assert_non_null(tr);
    make_truth(tr, 60.0, 0.8, 6);
    signal2 s;
    render(tr, 60.0, fs, &s);
    int16_t *alt = malloc(s.n * sizeof *alt);
    assert_non_null(alt);
    uint32_t seed = 99;
    for (int mode = 0; mode < 4; mode++) {
        const int16_t *l1 = alt;
        for (size_t i = 0; i < s.n; i++) {
            switch (mode) {
            case 0: alt[i] = 0; break;      /* zeros */
            case 1: alt[i] = 1500; break;   /* flat line at an offset */
            case 2:                          /* strong noise, +-2 mV */
                alt[i] = (int16_t)((int)(lcg(&seed) % 801) - 400);
                break;
            default: l1 = NULL; break;       /* lead off */
            }
        }
        capture *cap = calloc(1, sizeof *cap);
        assert_non_null(cap);
        ct_ecg_detector *d = make_detector(fs, 2, cap);
        run(d, &s, 2, l1, 1, 1000);
        ct_ecg_detector_free(d);
        check_beats(cap, tr, fs, 60.0, 0.020, 0);
        free(cap);
    }
    free(alt);
    free_signal(&s);
    free(tr);
}

static void test_latency_bound(void **state)
{
    (void)state;
    static const double rates[] = {125, 360, 1000};
    for (size_t r = 0; r < 3; r++) {
        double fs = rates[r];
        truth *tr = malloc(sizeof *tr);
        capture *cap = calloc(1, sizeof *cap);
        assert_non_null(tr);
        assert_non_null(cap);
        make_truth(tr, 30.0, 0.7, 3);
        signal2 s;
        render(tr, 30.0, fs, &s);
        ct_ecg_detector *d = make_detector(fs, 2, cap);
        run(d, &s, 2, NULL, 0, 1);
        ct_ecg_detector_free(d);
        check_beats(cap, tr, fs, 30.0, 0.020, 0);
        for (int k = 0; k < cap->n_beats; k++) {
            int64_t lat = cap->beats[k].reported_at - cap->beats[k].sample;
            assert_true(lat >= 0);
            assert_true((double)lat <= fs * CT_ECG_MAX_LATENCY_MS / 1000.0);
        }
        free_signal(&s);
        free(cap);
        free(tr);
    }
}

static int has_event(const capture *c, ct_ecg_event_kind kind, const char *label)
{
    for (int k = 0; k < c->n_events; k++)
        if (c->events[k].kind == kind && (!label || strcmp(c->events[k].label, label) == 0))
            return k + 1;
    return 0;
}

static void test_flat_line(void **state)
{
    (void)state;
    double fs = 250.0;
    size_t n = (size_t)(20 * fs);
    int16_t *flat = malloc(n * sizeof *flat);
    assert_non_null(flat);
    for (size_t i = 0; i < n; i++)
        flat[i] = 1024;
    capture *cap = calloc(1, sizeof *cap);
    assert_non_null(cap);
    ct_ecg_detector *d = make_detector(fs, 2, cap);
    const int16_t *ptr[2] = {flat, flat};
    assert_int_equal(ct_ecg_detector_push(d, ptr, n), 0);
    ct_ecg_detector_finish(d);
    ct_ecg_detector_free(d);
    assert_int_equal(cap->n_beats, 0);
    int k = has_event(cap, CT_EVENT_QUALITY, "flat");
    assert_true(k > 0);
    /* Both leads, then the whole detector, report it; no asystole claimed. */
    int whole = 0;
    for (int i = 0; i < cap->n_events; i++)
        if (cap->events[i].kind == CT_EVENT_QUALITY && cap->events[i].lead == -1 &&
            strcmp(cap->events[i].label, "flat") == 0)
            whole = 1;
    assert_true(whole);
    assert_false(has_event(cap, CT_EVENT_ASYSTOLE, NULL));
    assert_false(has_event(cap, CT_EVENT_RHYTHM, NULL));
    free(cap);
    free(flat);
}

/* Runs a hand-made beat sequence at 360 Hz and returns what came out. */
static capture *run_sequence(const truth *tr, double dur_s)
{
    signal2 s;
    render(tr, dur_s, 360.0, &s);
    capture *cap = calloc(1, sizeof *cap);
    assert_non_null(cap);
    ct_ecg_detector *d = make_detector(360.0, 2, cap);
    run(d, &s, 2, NULL, 0, 512);
    ct_ecg_detector_free(d);
    free_signal(&s);
    return cap;
}

static void test_vt_run(void **state)
{
    (void)state;
    truth *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    double t = 0.5;
    while (t < 20.0) {
        tr->t_s[tr->n] = t;
        tr->is_v[tr->n++] = 0;
        t += 0.8;
    }
    double vt_start = t - 0.3;
    for (int k = 0; k < 6; k++) {
        tr->t_s[tr->n] = vt_start + 0.4 * k;
        tr->is_v[tr->n++] = 1;
    }
    t = vt_start + 0.4 * 5 + 1.0;
    while (t < 35.0) {
        tr->t_s[tr->n] = t;
        tr->is_v[tr->n++] = 0;
        t += 0.8;
    }
    capture *cap = run_sequence(tr, 35.0);
    int k = has_event(cap, CT_EVENT_VRUN, "run");
    assert_true(k > 0);
    assert_true(cap->events[k - 1].value >= 5.0 && cap->events[k - 1].value <= 6.0);
    k = has_event(cap, CT_EVENT_RHYTHM, "(VT");
    assert_true(k > 0);
    assert_true(fabs((double)cap->events[k - 1].sample / 360.0 - vt_start) < 0.45);
    /* And the normal rhythm is claimed before and after. */
    assert_true(has_event(cap, CT_EVENT_RHYTHM, "(N"));
    free(cap);
    free(tr);
}

static void test_pause(void **state)
{
    (void)state;
    truth *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    double t = 0.5;
    while (t < 15.0) {
        tr->t_s[tr->n] = t;
        tr->is_v[tr->n++] = 0;
        t += 0.8;
    }
    double last = t - 0.8;
    t = last + 3.0; /* a 3 s pause */
    while (t < 25.0) {
        tr->t_s[tr->n] = t;
        tr->is_v[tr->n++] = 0;
        t += 0.8;
    }
    capture *cap = run_sequence(tr, 25.0);
    int k = has_event(cap, CT_EVENT_PAUSE, NULL);
    assert_true(k > 0);
    assert_true(fabs(cap->events[k - 1].value - 3000.0) < 40.0);
    assert_true(fabs((double)cap->events[k - 1].sample / 360.0 - last) < 0.03);
    assert_false(has_event(cap, CT_EVENT_ASYSTOLE, NULL));
    free(cap);
    free(tr);
}

static void test_asystole(void **state)
{
    (void)state;
    truth *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    double t = 0.5;
    while (t < 12.0) {
        tr->t_s[tr->n] = t;
        tr->is_v[tr->n++] = 0;
        t += 0.8;
    }
    capture *cap = run_sequence(tr, 20.0);
    int k = has_event(cap, CT_EVENT_ASYSTOLE, NULL);
    assert_true(k > 0);
    assert_int_equal(cap->events[k - 1].end_sample, -1);
    free(cap);
    free(tr);
}

static void test_bigeminy(void **state)
{
    (void)state;
    truth *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    make_truth(tr, 40.0, 0.9, 2); /* N V N V ... */
    capture *cap = run_sequence(tr, 40.0);
    assert_true(has_event(cap, CT_EVENT_RHYTHM, "(B"));
    free(cap);
    free(tr);
}

static void test_trigeminy(void **state)
{
    (void)state;
    truth *tr = calloc(1, sizeof *tr);
    assert_non_null(tr);
    make_truth(tr, 40.0, 0.8, 3); /* N N V N N V ... */
    capture *cap = run_sequence(tr, 40.0);
    assert_true(has_event(cap, CT_EVENT_RHYTHM, "(T"));
    free(cap);
    free(tr);
}

static void test_config_errors(void **state)
{
    (void)state;
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = 360;
    cfg.n_leads = 1;
    cfg.gain_adu_per_mv[0] = 200;
    ct_ecg_detector *d = NULL;
    ct_error err;
    cfg.fs_hz = 100;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, &err), CT_EINVAL);
    assert_null(d);
    assert_non_null(strstr(err.msg, "100 Hz"));
    cfg.fs_hz = 2000;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, &err), CT_EINVAL);
    cfg.fs_hz = 360;
    cfg.n_leads = 0;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, &err), CT_EINVAL);
    cfg.n_leads = CT_ECG_MAX_LEADS + 1;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, &err), CT_EINVAL);
    cfg.n_leads = 1;
    cfg.gain_adu_per_mv[0] = 0;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, &err), CT_EINVAL);
    cfg.gain_adu_per_mv[0] = NAN;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, &err), CT_EINVAL);
    cfg.gain_adu_per_mv[0] = 200;
    cfg.baseline_adu[0] = 1 << 20;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "baseline"));
    cfg.baseline_adu[0] = 0;
    assert_int_equal(ct_ecg_detector_new(NULL, NULL, &d, &err), CT_EINVAL);
    cfg.gain_adu_per_mv[0] = 200;
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, NULL, &err), CT_EINVAL);

    /* A detector with no sink runs; push after finish is refused. */
    assert_int_equal(ct_ecg_detector_new(&cfg, NULL, &d, NULL), 0);
    assert_true(ct_ecg_detector_memory_bytes(d) > sizeof(ct_ecg_config));
    int16_t buf[100] = {0};
    const int16_t *ptr[1] = {buf};
    assert_int_equal(ct_ecg_detector_push(d, ptr, 100), 0);
    assert_int_equal(ct_ecg_detector_push(d, NULL, 100), CT_EINVAL);
    assert_int_equal(ct_ecg_detector_push(NULL, ptr, 100), CT_EINVAL);
    ct_ecg_detector_finish(d);
    assert_int_equal(ct_ecg_detector_push(d, ptr, 100), CT_EINVAL);
    ct_ecg_detector_free(d);
    ct_ecg_detector_free(NULL);

    assert_string_equal(ct_ecg_beat_class_mnemonic(CT_BEAT_N), "N");
    assert_string_equal(ct_ecg_beat_class_mnemonic(CT_BEAT_S), "A");
    assert_string_equal(ct_ecg_beat_class_mnemonic(CT_BEAT_V), "V");
    assert_string_equal(ct_ecg_beat_class_mnemonic(CT_BEAT_F), "F");
    assert_string_equal(ct_ecg_beat_class_mnemonic(CT_BEAT_Q), "Q");
}

/* Garbage in: full-range noise, rail-to-rail square waves, a lead that comes
 * and goes every few samples, at the rate extremes. Nothing may crash or
 * overflow (the sanitizer build runs this), and beats stay within bounds. */
static void test_hostile_input(void **state)
{
    (void)state;
    static const double rates[] = {125, 1000};
    for (int r = 0; r < 2; r++) {
        double fs = rates[r];
        size_t n = (size_t)(40 * fs);
        int16_t *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        assert_non_null(a);
        assert_non_null(b);
        uint32_t seed = 7;
        for (size_t i = 0; i < n; i++) {
            a[i] = (int16_t)(lcg(&seed) & 0xffff);
            b[i] = (i / 37) & 1 ? INT16_MAX : INT16_MIN;
        }
        capture *cap = calloc(1, sizeof *cap);
        assert_non_null(cap);
        ct_ecg_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fs_hz = fs;
        cfg.n_leads = 2;
        cfg.gain_adu_per_mv[0] = cfg.gain_adu_per_mv[1] = 1.0;
        cfg.baseline_adu[0] = -65536;
        cfg.baseline_adu[1] = 65536;
        ct_ecg_sink sink = {on_beat, on_event, cap};
        ct_ecg_detector *d = NULL;
        assert_int_equal(ct_ecg_detector_new(&cfg, &sink, &d, NULL), 0);
        size_t i = 0, k = 0;
        while (i < n) {
            size_t m = 1 + (k * 7919) % 97;
            if (m > n - i)
                m = n - i;
            const int16_t *ptr[2] = {a + i, (k % 3) ? b + i : NULL};
            assert_int_equal(ct_ecg_detector_push(d, ptr, m), 0);
            assert_int_equal(ct_ecg_detector_push(d, ptr, 0), 0);
            i += m;
            k++;
        }
        ct_ecg_detector_finish(d);
        assert_true(ct_ecg_detector_samples(d) == (int64_t)n);
        ct_ecg_detector_free(d);
        for (int j = 0; j < cap->n_beats; j++) {
            assert_true(cap->beats[j].sample >= 0 && cap->beats[j].sample < (int64_t)n);
            assert_true(cap->beats[j].reported_at - cap->beats[j].sample <=
                        (int64_t)(fs * CT_ECG_MAX_LATENCY_MS / 1000.0));
            assert_true(cap->beats[j].confidence >= 0.0f && cap->beats[j].confidence <= 1.0f);
        }
        free(cap);
        free(a);
        free(b);
    }
}

static void test_twelve_leads(void **state)
{
    (void)state;
    double fs = 500.0;
    truth *tr = malloc(sizeof *tr);
    assert_non_null(tr);
    make_truth(tr, 30.0, 0.7, 0);
    signal2 s;
    render(tr, 30.0, fs, &s);
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = fs;
    cfg.n_leads = CT_ECG_MAX_LEADS;
    for (int l = 0; l < CT_ECG_MAX_LEADS; l++) {
        cfg.gain_adu_per_mv[l] = GAIN;
        cfg.baseline_adu[l] = 0;
    }
    capture *cap = calloc(1, sizeof *cap);
    assert_non_null(cap);
    ct_ecg_sink sink = {on_beat, on_event, cap};
    ct_ecg_detector *d = NULL;
    assert_int_equal(ct_ecg_detector_new(&cfg, &sink, &d, NULL), 0);
    const int16_t *ptr[CT_ECG_MAX_LEADS];
    for (int l = 0; l < CT_ECG_MAX_LEADS; l++)
        ptr[l] = s.lead[l & 1];
    assert_int_equal(ct_ecg_detector_push(d, ptr, s.n), 0);
    ct_ecg_detector_finish(d);
    ct_ecg_detector_free(d);
    check_beats(cap, tr, fs, 30.0, 0.020, 0);
    free(cap);
    free_signal(&s);
    free(tr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_chunking_invariance),
        cmocka_unit_test(test_bad_lead1_keeps_lead0_beats),
        cmocka_unit_test(test_latency_bound),
        cmocka_unit_test(test_flat_line),
        cmocka_unit_test(test_vt_run),
        cmocka_unit_test(test_pause),
        cmocka_unit_test(test_asystole),
        cmocka_unit_test(test_bigeminy),
        cmocka_unit_test(test_trigeminy),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_hostile_input),
        cmocka_unit_test(test_twelve_leads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
