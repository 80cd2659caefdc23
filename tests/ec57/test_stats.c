/* Gross and average statistics over records (sumstats' rules) from
 * hand-filled matrices and AF tallies, with the arithmetic done by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "cardiotwin/ec57.h"

enum { N = CT_EC57_N, S = CT_EC57_S, V = CT_EC57_V, F = CT_EC57_F, Q = CT_EC57_Q,
       O = CT_EC57_O, X = CT_EC57_X };

static int close_to(double a, double b)
{
    return fabs(a - b) < 1e-9;
}

static void test_gross_and_average(void **state)
{
    (void)state;
    ct_ec57_beat_stats recs[3];
    memset(recs, 0, sizeof recs);
    recs[0].m[N][N] = 90;
    recs[0].m[N][O] = 10;
    recs[0].m[V][V] = 1;
    recs[0].m[V][N] = 1;
    recs[1].m[N][N] = 10;
    /* recs[2] is empty: defined nowhere, so in no average. */
    ct_ec57_beat_summary g, a;
    ct_ec57_beat_summary_gross(recs, 3, &g);
    ct_ec57_beat_summary_average(recs, 3, &a);
    /* Gross QRS Se = (90+1+1+10) / (102+10) */
    assert_int_equal(g.qrs_se.num, 102);
    assert_int_equal(g.qrs_se.den, 112);
    assert_true(close_to(g.qrs_se.percent, 100.0 * 102 / 112));
    /* Average QRS Se = (92/102 + 10/10) / 2 */
    assert_int_equal(a.qrs_se.den, 2);
    assert_true(close_to(a.qrs_se.percent, 100.0 * (92.0 / 102.0 + 1.0) / 2.0));
    /* VEB Se only defined for record 0: 1/2 either way. */
    assert_true(close_to(g.veb_se.percent, 50.0));
    assert_int_equal(a.veb_se.den, 1);
    assert_true(close_to(a.veb_se.percent, 50.0));
    /* No SVEB anywhere: undefined, not 0 and not 100. */
    assert_false(g.sveb_se.defined);
    assert_false(a.sveb_se.defined);
    assert_true(isnan(a.sveb_se.percent));
    assert_int_equal(a.sveb_se.den, 0);
    assert_false(g.rr_rms_ms.defined);
}

/* bxb counts a fusion beat called S as a false SVEB; sumstats does not. */
static void test_sveb_pp_bxb_vs_sumstats(void **state)
{
    (void)state;
    ct_ec57_beat_stats r;
    memset(&r, 0, sizeof r);
    r.m[S][S] = 3;
    r.m[N][S] = 1;
    r.m[F][S] = 1;
    r.m[Q][S] = 2; /* neither counts Qs */
    ct_ec57_beat_summary rec, g, a;
    ct_ec57_beat_summary_record(&r, &rec);
    ct_ec57_beat_summary_gross(&r, 1, &g);
    ct_ec57_beat_summary_average(&r, 1, &a);
    assert_int_equal(rec.sveb_pp.num, 3);
    assert_int_equal(rec.sveb_pp.den, 5);
    assert_int_equal(g.sveb_pp.num, 3);
    assert_int_equal(g.sveb_pp.den, 4);
    assert_true(close_to(a.sveb_pp.percent, 75.0));
}

static void test_stats_add(void **state)
{
    (void)state;
    ct_ec57_beat_stats acc, r;
    memset(&acc, 0, sizeof acc);
    memset(&r, 0, sizeof r);
    r.m[X][V] = 2;
    r.rr_pairs = 3;
    r.rr_sq_err_samples2 = 12.0;
    r.test_shutdown_samples = 360;
    ct_ec57_beat_stats_add(&acc, &r);
    ct_ec57_beat_stats_add(&acc, &r);
    assert_int_equal(acc.m[X][V], 4);
    assert_int_equal(acc.rr_pairs, 6);
    assert_true(acc.rr_sq_err_samples2 == 24.0);
    assert_int_equal(acc.test_shutdown_samples, 720);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&acc, &s);
    /* X-row beats are false detections: QRS +P 0/4, VEB +P 0/4. */
    assert_int_equal(s.qrs_pp.den, 4);
    assert_int_equal(s.veb_pp.den, 4);
    assert_false(s.qrs_se.defined);
}

static void test_epicmp_round(void **state)
{
    (void)state;
    assert_int_equal(ct_ec57_epicmp_round(62.5), 63); /* printf("%.0f") would give 62 */
    assert_int_equal(ct_ec57_epicmp_round(49.999), 50);
    assert_int_equal(ct_ec57_epicmp_round(0.4), 0);
    assert_int_equal(ct_ec57_epicmp_round(100.0), 100);
}

/* sumstats rebuilds duration statistics from epicmp's text: durations in ms,
 * percentages rounded to integers, one overlap per record from the longer
 * side. */
static void test_af_gross_average(void **state)
{
    (void)state;
    ct_ec57_af_stats r[2];
    memset(r, 0, sizeof r);
    r[0].fs_hz = r[1].fs_hz = 360.0;
    r[0].se_tp = 1;
    r[0].pp_tp = 1;
    r[0].ref_duration_samples = 36000; /* 100 s */
    r[0].ref_overlap_samples = 18000;  /* 50% */
    r[0].test_duration_samples = 18000; /* 50 s */
    r[0].test_overlap_samples = 18000;  /* 100% */
    r[1].se_tp = 1;
    r[1].se_fn = 1;
    r[1].pp_tp = 1;
    r[1].pp_fp = 2;
    r[1].ref_duration_samples = 3600;  /* 10 s */
    r[1].ref_overlap_samples = 1200;   /* 33.3% -> 33 */
    r[1].test_duration_samples = 7200; /* 20 s */
    r[1].test_overlap_samples = 1200;  /* 16.7% -> 17 */
    ct_ec57_af_summary rec, g, a;
    ct_ec57_af_summary_record(&r[1], &rec);
    assert_true(close_to(rec.duration_se.percent, 100.0 / 3.0));
    assert_int_equal(ct_ec57_epicmp_round(rec.duration_pp.percent), 17);
    ct_ec57_af_summary_gross(r, 2, &g);
    ct_ec57_af_summary_average(r, 2, &a);
    assert_int_equal(g.episode_se.num, 2);
    assert_int_equal(g.episode_se.den, 3);
    assert_int_equal(g.episode_pp.num, 2);
    assert_int_equal(g.episode_pp.den, 4);
    /* overlap = 100000 ms x 0.50 (record 0: ref longer) + 20000 x 0.17
     * (record 1: test longer) = 53400 ms; ref total 110000, test 70000. */
    assert_int_equal(g.duration_se.num, 53400);
    assert_int_equal(g.duration_se.den, 110000);
    assert_int_equal(g.duration_pp.den, 70000);
    assert_true(close_to(a.episode_se.percent, 75.0));
    assert_true(close_to(a.episode_pp.percent, 100.0 * (1.0 + 1.0 / 3.0) / 2.0));
    assert_true(close_to(a.duration_se.percent, (50.0 + 33.0) / 2.0));
    assert_true(close_to(a.duration_pp.percent, (100.0 + 17.0) / 2.0));

    /* No AF anywhere: everything undefined. */
    memset(r, 0, sizeof r);
    r[0].fs_hz = r[1].fs_hz = 360.0;
    ct_ec57_af_summary_gross(r, 2, &g);
    ct_ec57_af_summary_average(r, 2, &a);
    assert_false(g.episode_se.defined || g.episode_pp.defined || g.duration_se.defined ||
                 g.duration_pp.defined);
    assert_false(a.episode_se.defined || a.episode_pp.defined || a.duration_se.defined ||
                 a.duration_pp.defined);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gross_and_average),
        cmocka_unit_test(test_sveb_pp_bxb_vs_sumstats),
        cmocka_unit_test(test_stats_add),
        cmocka_unit_test(test_epicmp_round),
        cmocka_unit_test(test_af_gross_average),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
