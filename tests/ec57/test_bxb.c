/* Beat-by-beat comparison on hand-built annotation lists whose bxb outcome is
 * worked out by hand in each test's comment. Unless a test says otherwise:
 * 360 Hz, so the match window is 54 samples and the test period starts at
 * 108000 (5 min) and ends at 650000 (an MIT-BIH record's length). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ec57_fixtures.h"

#define FS 360.0
#define START 108000
#define END 650000
#define RR 300

enum { N = CT_EC57_N, S = CT_EC57_S, V = CT_EC57_V, F = CT_EC57_F, Q = CT_EC57_Q,
       O = CT_EC57_O, X = CT_EC57_X };

static fix_list ref, test;

static int setup(void **state)
{
    (void)state;
    memset(&ref, 0, sizeof ref);
    memset(&test, 0, sizeof test);
    return 0;
}

static ct_ec57_beat_stats compare_fs(double fs, int64_t start, int64_t end)
{
    ct_ec57_beat_stats st;
    ct_error err = {0};
    int rc = ct_ec57_compare_beats(ref.a, ref.n, test.a, test.n, fs, start, end, &st, &err);
    if (rc)
        fail_msg("compare failed: %s", err.msg);
    return st;
}

static ct_ec57_beat_stats compare(void)
{
    return compare_fs(FS, START, END);
}

/* Every cell of the matrix except those listed (as r, t, count triples, end
 * with -1) must be zero. */
static void assert_matrix(const ct_ec57_beat_stats *st, ...)
{
    int64_t want[CT_EC57_N_CLASSES][CT_EC57_N_CLASSES] = {{0}};
    va_list ap;
    va_start(ap, st);
    for (;;) {
        int r = va_arg(ap, int);
        if (r < 0)
            break;
        int t = va_arg(ap, int);
        want[r][t] = va_arg(ap, int);
    }
    va_end(ap);
    for (int r = 0; r < CT_EC57_N_CLASSES; r++)
        for (int t = 0; t < CT_EC57_N_CLASSES; t++)
            if (st->m[r][t] != want[r][t])
                fail_msg("cell %c%c is %lld, want %lld", ct_ec57_class_letter(r),
                         ct_ec57_class_letter(t) + ('a' - 'A'), (long long)st->m[r][t],
                         (long long)want[r][t]);
}

static void test_constants(void **state)
{
    (void)state;
    assert_int_equal(ct_ec57_match_window(360.0), 54);
    assert_int_equal(ct_ec57_match_window(1000.0), 150);
    assert_int_equal(ct_ec57_match_window(250.0), 38); /* strtim rounds 37.5 up */
    assert_int_equal(ct_ec57_match_window(128.0), 19);
    assert_int_equal(ct_ec57_standard_start(360.0), 108000);
    assert_int_equal(ct_ec57_standard_start(250.0), 75000);
}

static void test_class_mapping(void **state)
{
    (void)state;
    assert_int_equal(ct_ec57_beat_class(CT_ANN_NORMAL), N);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_LBBB), N);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_RBBB), N);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_BBB), N);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_APC), S);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_ABERR), S);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_NPC), S);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_SVPB), S);
    /* bxb, unlike the table in EC57's text, puts escape beats e, j, n in S. */
    assert_int_equal(ct_ec57_beat_class(CT_ANN_NESC), S);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_AESC), S);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_SVESC), S);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_PVC), V);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_VESC), V);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_RONT), V);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_FUSION), F);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_PACE), Q);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_PFUS), Q);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_UNKNOWN), Q);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_LEARN), Q);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_FLWAV), O);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_NOISE), -1);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_RHYTHM), -1);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_ARFCT), -1);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_NAPC), -1);
    assert_int_equal(ct_ec57_beat_class(CT_ANN_VFON), -1);
    assert_int_equal(ct_ec57_beat_class(0), -1);
    assert_int_equal(ct_ec57_beat_class(99), -1);
    assert_int_equal(ct_ec57_class_letter(X), 'X');
    assert_int_equal(ct_ec57_class_letter(7), '?');
}

/* Identical lists: every beat of the test period on the diagonal. */
static void test_exact_match(void **state)
{
    (void)state;
    fix_beats(&ref, 100, RR, 2000, CT_ANN_NORMAL);
    fix_beats(&test, 100, RR, 2000, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    /* Beats 100 + 300 i with 108000 <= t <= 599800: i = 360 .. 1999. */
    assert_matrix(&st, N, N, 1640, -1);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    assert_true(s.qrs_se.defined);
    assert_true(s.qrs_se.percent == 100.0);
    assert_int_equal(s.qrs_se.num, 1640);
    assert_int_equal(s.qrs_se.den, 1640);
    assert_true(s.qrs_pp.percent == 100.0);
    assert_int_equal(ct_ec57_reference_beats(&st), 1640);
    assert_int_equal(st.match_window_samples, 54);
    /* Every RR interval agrees: zero RMS error. The first pair's RRs are
     * valid too, measured from the beats before the start. */
    assert_int_equal(st.rr_pairs, 1640);
    assert_true(s.rr_rms_ms.defined && s.rr_rms_ms.percent == 0.0);
}

/* 1000 Hz: the window is exactly 150 samples. A test beat 149 or 150 ms away
 * matches; 151 ms away it is a miss (No) plus a false detection (On). */
static void window_case(int64_t shift, int matched)
{
    memset(&ref, 0, sizeof ref);
    memset(&test, 0, sizeof test);
    fix_beats(&ref, 301000, 1000, 10, CT_ANN_NORMAL);
    for (int i = 0; i < 10; i++)
        fix_add(&test, 301000 + i * 1000 + (i == 4 ? shift : 0), CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare_fs(1000.0, 300000, 400000);
    if (matched)
        assert_matrix(&st, N, N, 10, -1);
    else
        assert_matrix(&st, N, N, 9, N, O, 1, O, N, 1, -1);
}

static void test_window_edge_ms(void **state)
{
    (void)state;
    window_case(149, 1);
    window_case(150, 1);
    window_case(151, 0);
    window_case(-149, 1);
    window_case(-150, 1);
    window_case(-151, 0);
}

static void test_missed_beat(void **state)
{
    (void)state;
    fix_beats(&ref, 200000, RR, 20, CT_ANN_NORMAL);
    for (int i = 0; i < 20; i++)
        if (i != 7)
            fix_add(&test, 200000 + i * RR, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 19, N, O, 1, -1);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    assert_int_equal(s.qrs_se.num, 19);
    assert_int_equal(s.qrs_se.den, 20);
    assert_true(fabs(s.qrs_se.percent - 95.0) < 1e-12);
    assert_true(s.qrs_pp.percent == 100.0);
}

static void test_extra_beat(void **state)
{
    (void)state;
    fix_beats(&ref, 200000, RR, 20, CT_ANN_NORMAL);
    for (int i = 0; i < 20; i++) {
        fix_add(&test, 200000 + i * RR, CT_ANN_NORMAL);
        if (i == 5)
            fix_add(&test, 200000 + i * RR + 150, CT_ANN_PVC); /* a T wave called V */
    }
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 20, O, V, 1, -1);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    assert_true(s.qrs_se.percent == 100.0);
    assert_int_equal(s.qrs_pp.num, 20);
    assert_int_equal(s.qrs_pp.den, 21);
    /* No reference VEB: VEB Se undefined; the false V makes VEB +P 0/1. */
    assert_false(s.veb_se.defined);
    assert_true(isnan(s.veb_se.percent));
    assert_true(s.veb_pp.defined);
    assert_true(s.veb_pp.percent == 0.0);
    assert_int_equal(s.veb_fpr.num, 1);
    assert_int_equal(s.veb_fpr.den, 21);
}

/* Two test beats inside one reference beat's window: the nearer one (10
 * samples after) is paired, the farther one (20 before) is a false
 * detection, although it comes first. */
static void test_two_in_window(void **state)
{
    (void)state;
    fix_beats(&ref, 200000, RR, 10, CT_ANN_NORMAL);
    for (int i = 0; i < 10; i++) {
        int64_t t = 200000 + i * RR;
        if (i == 3) {
            fix_add(&test, t - 20, CT_ANN_PVC);
            fix_add(&test, t + 10, CT_ANN_NORMAL);
        } else {
            fix_add(&test, t, CT_ANN_NORMAL);
        }
    }
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 10, O, V, 1, -1);

    /* Mirror image: two reference beats near one test beat; the nearer
     * reference beat is matched, the other is missed. */
    setup(NULL);
    fix_beats(&test, 200000, RR, 10, CT_ANN_NORMAL);
    for (int i = 0; i < 10; i++) {
        int64_t t = 200000 + i * RR;
        if (i == 3) {
            fix_add(&ref, t - 20, CT_ANN_PVC);
            fix_add(&ref, t + 10, CT_ANN_NORMAL);
        } else {
            fix_add(&ref, t, CT_ANN_NORMAL);
        }
    }
    st = compare();
    assert_matrix(&st, N, N, 10, V, O, 1, -1);
}

/* bxb's November 2002 rule, with the example from its source: window 37,
 * ref 96 and 160, test 128 and 185. Test beat 128 is 32 from both reference
 * beats, but ref 160 has a better partner (185), so 96 and 128 pair. At
 * 244 Hz strtim(".15") is 37. */
static void test_lookahead_rule(void **state)
{
    (void)state;
    fix_add(&ref, 1096, CT_ANN_NORMAL);
    fix_add(&ref, 1160, CT_ANN_NORMAL);
    fix_add(&test, 1128, CT_ANN_NORMAL);
    fix_add(&test, 1185, CT_ANN_NORMAL);
    assert_int_equal(ct_ec57_match_window(244.0), 37);
    ct_ec57_beat_stats st = compare_fs(244.0, 1000, 2000);
    assert_matrix(&st, N, N, 2, -1);
}

static void test_class_confusions(void **state)
{
    (void)state;
    /* reference, test */
    static const int pairs[][2] = {
        {CT_ANN_PVC, CT_ANN_NORMAL},    /* Vn */
        {CT_ANN_NORMAL, CT_ANN_PVC},    /* Nv */
        {CT_ANN_APC, CT_ANN_NORMAL},    /* Sn */
        {CT_ANN_NORMAL, CT_ANN_APC},    /* Ns */
        {CT_ANN_FUSION, CT_ANN_PVC},    /* Fv */
        {CT_ANN_FUSION, CT_ANN_APC},    /* Fs */
        {CT_ANN_UNKNOWN, CT_ANN_NORMAL}, /* Qn */
        {CT_ANN_PACE, CT_ANN_FUSION},   /* Qf */
        {CT_ANN_PVC, CT_ANN_PVC},       /* Vv */
        {CT_ANN_PVC, CT_ANN_PVC},       /* Vv */
        {CT_ANN_APC, CT_ANN_APC},       /* Ss */
        {CT_ANN_LBBB, CT_ANN_UNKNOWN},  /* Nq */
        {CT_ANN_NESC, CT_ANN_APC},      /* Ss: j is S to bxb */
    };
    size_t np = sizeof pairs / sizeof pairs[0];
    for (size_t i = 0; i < np; i++) {
        fix_add(&ref, 200000 + (int64_t)i * RR, pairs[i][0]);
        fix_add(&test, 200000 + (int64_t)i * RR + 5, pairs[i][1]);
    }
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, V, N, 1, N, V, 1, S, N, 1, N, S, 1, F, V, 1, F, S, 1, Q, N, 1, Q, F, 1,
                  V, V, 2, S, S, 2, N, Q, 1, -1);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    /* VEB Se = Vv / (Vv + Vn) = 2/3; VEB +P = Vv / (Vv + Nv) = 2/3 (Fv is not
     * a false positive); SVEB Se = Ss / (Ss + Sn) = 2/3; SVEB +P per bxb =
     * Ss / (Ss + Ns + Fs) = 2/4. */
    assert_int_equal(s.veb_se.num, 2);
    assert_int_equal(s.veb_se.den, 3);
    assert_int_equal(s.veb_pp.num, 2);
    assert_int_equal(s.veb_pp.den, 3);
    assert_int_equal(s.sveb_se.num, 2);
    assert_int_equal(s.sveb_se.den, 3);
    assert_int_equal(s.sveb_pp.num, 2);
    assert_int_equal(s.sveb_pp.den, 4);
    /* VEB FPR = (Nv) / (VTN + Nv): VTN counts pairs where neither says V:
     * Sn Ns Fs Qn Qf Ss Ss Nq = 8. */
    assert_int_equal(s.veb_fpr.num, 1);
    assert_int_equal(s.veb_fpr.den, 9);
    assert_int_equal(s.qrs_se.num, 13);
    assert_int_equal(s.qrs_se.den, 13);
}

/* Beats of the learning period are not counted, however wrong the test is. */
static void test_learning_period_ignored(void **state)
{
    (void)state;
    fix_beats(&ref, 1000, RR, 300, CT_ANN_PVC);     /* up to 90700 */
    fix_beats(&test, 1150, RR / 2, 500, CT_ANN_NORMAL); /* junk up to 75975 */
    fix_beats(&ref, 200000, RR, 10, CT_ANN_NORMAL);
    fix_beats(&test, 200000, RR, 10, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 10, -1);
}

/* The start boundary, bxb's two special cases. */
static void test_start_boundary(void **state)
{
    (void)state;
    /* A test beat 10 samples before the start matches the first reference
     * beat, 20 after: counted. */
    fix_beats(&ref, START + 20, RR, 5, CT_ANN_NORMAL);
    fix_add(&test, START - 10, CT_ANN_NORMAL);
    fix_beats(&test, START + 20 + RR, RR, 4, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 5, -1);

    /* A test beat 10 after the start that belongs to a reference beat 20
     * before it is dropped, not counted as a false detection. */
    setup(NULL);
    fix_add(&ref, START - 20, CT_ANN_NORMAL);
    fix_beats(&ref, START - 20 + RR, RR, 5, CT_ANN_NORMAL);
    fix_add(&test, START + 10, CT_ANN_NORMAL);
    fix_beats(&test, START - 20 + RR, RR, 5, CT_ANN_NORMAL);
    st = compare();
    assert_matrix(&st, N, N, 5, -1);

    /* The drop applies only within the window after the start: a test beat
     * 60 samples in, 40 before a reference beat that has an exact partner, is
     * a false detection. */
    setup(NULL);
    fix_add(&ref, START - 200, CT_ANN_NORMAL);
    fix_beats(&ref, START + 100, RR, 5, CT_ANN_NORMAL);
    fix_add(&test, START + 60, CT_ANN_NORMAL);
    fix_beats(&test, START + 100, RR, 5, CT_ANN_NORMAL);
    st = compare();
    assert_matrix(&st, N, N, 5, O, N, 1, -1);
}

/* The end of the test period: a reference beat at the end is matched by a
 * test beat after it; reference beats after the end are not counted. */
static void test_end_boundary(void **state)
{
    (void)state;
    fix_beats(&ref, END - 5 * RR - 10, RR, 8, CT_ANN_NORMAL); /* 3 after END */
    fix_beats(&test, END - 5 * RR + 20, RR, 8, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    /* ref END-1510 .. END-10 (6 beats) pair with test beats 30 later, the
     * last one at END+20, past the end; then both streams stand past END and
     * the comparison stops: ref END+290 and END+590 are not counted. */
    assert_matrix(&st, N, N, 6, -1);
}

/* Reference VF ([ ... ]): everything inside is skipped, and test beats inside
 * are not counted as false detections; reference flutter waves (!) inside are
 * ignored too. */
static void test_vf_excluded(void **state)
{
    (void)state;
    fix_beats(&ref, 200000, RR, 10, CT_ANN_NORMAL); /* ... 202700 */
    fix_add(&ref, 203000, CT_ANN_VFON);
    fix_beats(&ref, 203100, 100, 30, CT_ANN_FLWAV);
    fix_add(&ref, 206500, CT_ANN_VFOFF);
    fix_beats(&ref, 207000, RR, 10, CT_ANN_NORMAL);
    fix_beats(&test, 200000, RR, 10, CT_ANN_NORMAL);
    fix_beats(&test, 203100, 250, 13, CT_ANN_PVC); /* detector calls VF beats V */
    fix_beats(&test, 207000, RR, 10, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 20, -1);

    /* A reference flutter wave outside VF is read as a beat of class O: a
     * test beat on it counts as a false detection (bxb's isqrs/amap). */
    setup(NULL);
    fix_beats(&ref, 200000, RR, 10, CT_ANN_NORMAL);
    fix_add(&ref, 203000, CT_ANN_FLWAV);
    fix_beats(&test, 200000, RR, 10, CT_ANN_NORMAL);
    fix_add(&test, 203000, CT_ANN_NORMAL);
    st = compare();
    assert_matrix(&st, N, N, 10, O, N, 1, -1);
}

/* Shutdown: in the reference (NOISE subtype -1 ... NOISE subtype 0) test
 * beats without partner are X; in the test, reference beats it misses are x
 * and the shutdown time is tallied. */
static void test_shutdown(void **state)
{
    (void)state;
    fix_beats(&ref, 200000, RR, 5, CT_ANN_NORMAL);
    fix_noise(&ref, 201400, -1);
    fix_noise(&ref, 203000, 0);
    fix_beats(&ref, 203100, RR, 5, CT_ANN_NORMAL);
    fix_beats(&test, 200000, RR, 5, CT_ANN_NORMAL);
    fix_beats(&test, 201500, RR, 5, CT_ANN_NORMAL); /* 201500 .. 202700 */
    fix_beats(&test, 203100, RR, 5, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 10, X, N, 5, -1);
    assert_int_equal(st.test_shutdown_samples, 0);

    setup(NULL);
    fix_beats(&ref, 200000, RR, 15, CT_ANN_NORMAL); /* ... 204200 */
    fix_beats(&test, 200000, RR, 5, CT_ANN_NORMAL);
    fix_noise(&test, 201400, 0x30);
    fix_noise(&test, 203000, 0);
    fix_beats(&test, 203000, RR, 5, CT_ANN_NORMAL);
    st = compare();
    /* ref 201500 .. 202900 (5 beats) fall in the test's shutdown. */
    assert_matrix(&st, N, N, 10, N, X, 5, -1);
    assert_int_equal(st.test_shutdown_samples, 1600);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    assert_int_equal(s.qrs_se.num, 10);
    assert_int_equal(s.qrs_se.den, 15); /* beats missed in shutdown still count */
}

/* AHA convention: one shutdown mark in the middle; shutdown runs from 54
 * samples after the current beat to 54 before the next annotation. */
static void test_shutdown_single_mark(void **state)
{
    (void)state;
    fix_beats(&ref, 200000, RR, 5, CT_ANN_NORMAL); /* ... 201200 */
    fix_beats(&ref, 203000, RR, 5, CT_ANN_NORMAL);
    fix_beats(&test, 200000, RR, 2, CT_ANN_NORMAL); /* 200000, 200300 */
    fix_noise(&test, 201000, -1);
    fix_beats(&test, 203000, RR, 5, CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    /* The mark is read while the test stream stands at 200300: shutdown
     * [200354, 202946]; ref 200600 .. 201200 are x. */
    assert_matrix(&st, N, N, 7, N, X, 3, -1);
    assert_int_equal(st.test_shutdown_samples, 202946 - 200354);
}

static void test_undefined_statistics(void **state)
{
    (void)state;
    ct_ec57_beat_stats st = compare(); /* nothing at all */
    assert_matrix(&st, -1);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    const ct_ec57_stat *all[] = {&s.qrs_se, &s.qrs_pp, &s.veb_se, &s.veb_pp, &s.veb_fpr,
                                 &s.sveb_se, &s.sveb_pp, &s.rr_rms_ms};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        assert_false(all[i]->defined);
        assert_true(isnan(all[i]->percent));
    }

    /* Reference beats but a silent test: Se defined (0%), +P undefined. */
    fix_beats(&ref, 200000, RR, 4, CT_ANN_NORMAL);
    st = compare();
    ct_ec57_beat_summary_record(&st, &s);
    assert_true(s.qrs_se.defined);
    assert_true(s.qrs_se.percent == 0.0);
    assert_false(s.qrs_pp.defined);
}

static void test_end_modes(void **state)
{
    (void)state;
    fix_beats(&ref, 200000, RR, 10, CT_ANN_NORMAL);
    fix_beats(&test, 200000, RR, 12, CT_ANN_NORMAL); /* 2 more at the end */
    ct_ec57_beat_stats st = compare_fs(FS, START, CT_EC57_END_OF_REFERENCE);
    assert_matrix(&st, N, N, 10, -1);
    st = compare_fs(FS, START, CT_EC57_END_OF_EITHER);
    assert_matrix(&st, N, N, 10, -1);
    st = compare_fs(FS, START, END);
    assert_matrix(&st, N, N, 10, O, N, 2, -1);
}

static void test_rr_error(void **state)
{
    (void)state;
    /* Test beats alternate 0 and +10 samples: every test RR is off by 10. */
    fix_beats(&ref, 200000, RR, 11, CT_ANN_NORMAL);
    for (int i = 0; i < 11; i++)
        fix_add(&test, 200000 + i * RR + (i % 2 ? 10 : 0), CT_ANN_NORMAL);
    ct_ec57_beat_stats st = compare();
    assert_matrix(&st, N, N, 11, -1);
    /* The first pair has no previous beat read (bxb's TT == 0): 10 pairs. */
    assert_int_equal(st.rr_pairs, 10);
    assert_true(st.rr_sq_err_samples2 == 1000.0);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    assert_true(fabs(s.rr_rms_ms.percent - 10.0 * 1000.0 / 360.0) < 1e-9);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ct_ec57_beat_stats st;
    ct_error err = {0};
    fix_add(&ref, 200, CT_ANN_NORMAL);
    fix_add(&ref, 100, CT_ANN_NORMAL);
    assert_int_equal(ct_ec57_compare_beats(ref.a, ref.n, NULL, 0, FS, START, END, &st, &err),
                     CT_EINVAL);
    assert_non_null(strstr(err.msg, "reference annotation 1"));
    assert_non_null(strstr(err.msg, "time order"));
    ref.n = 0;
    fix_add(&test, -5, CT_ANN_NORMAL);
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, test.a, test.n, FS, START, END, &st, &err),
                     CT_EINVAL);
    assert_non_null(strstr(err.msg, "test annotation 0"));
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, NULL, 0, 0.0, START, END, &st, &err),
                     CT_EINVAL);
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, NULL, 0, NAN, START, END, &st, &err),
                     CT_EINVAL);
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, NULL, 0, FS, 1000, 500, &st, &err),
                     CT_EINVAL);
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, NULL, 0, FS, -1, END, &st, &err), CT_EINVAL);
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, NULL, 0, FS, START, -2, &st, &err),
                     CT_EINVAL);
    assert_int_equal(ct_ec57_compare_beats(NULL, 3, NULL, 0, FS, START, END, &st, &err),
                     CT_EINVAL);
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, NULL, 0, FS, START, END, NULL, &err),
                     CT_EINVAL);
    /* err may be NULL */
    assert_int_equal(ct_ec57_compare_beats(NULL, 0, NULL, 0, 0.0, START, END, &st, NULL),
                     CT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_constants, setup),
        cmocka_unit_test_setup(test_class_mapping, setup),
        cmocka_unit_test_setup(test_exact_match, setup),
        cmocka_unit_test_setup(test_window_edge_ms, setup),
        cmocka_unit_test_setup(test_missed_beat, setup),
        cmocka_unit_test_setup(test_extra_beat, setup),
        cmocka_unit_test_setup(test_two_in_window, setup),
        cmocka_unit_test_setup(test_lookahead_rule, setup),
        cmocka_unit_test_setup(test_class_confusions, setup),
        cmocka_unit_test_setup(test_learning_period_ignored, setup),
        cmocka_unit_test_setup(test_start_boundary, setup),
        cmocka_unit_test_setup(test_end_boundary, setup),
        cmocka_unit_test_setup(test_vf_excluded, setup),
        cmocka_unit_test_setup(test_shutdown, setup),
        cmocka_unit_test_setup(test_shutdown_single_mark, setup),
        cmocka_unit_test_setup(test_undefined_statistics, setup),
        cmocka_unit_test_setup(test_end_modes, setup),
        cmocka_unit_test_setup(test_rr_error, setup),
        cmocka_unit_test_setup(test_bad_arguments, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
