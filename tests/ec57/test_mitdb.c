/* ec57 on the real MIT-BIH reference files ($CARDIOTWIN_MITDB):
 * - identity: each of the 28 .atr files scored against itself gives 100% and
 *   exactly the beats of the test period, class by class (the expected counts
 *   were computed independently of this code, by a separate decoder counting
 *   the beat codes at or after 5 min outside [ ] VF episodes);
 * - the matching edge: every beat of 100.atr moved by 54 samples (150 ms at
 *   360 Hz) still matches, by 55 nothing matches;
 * - a published bxb result: WFDB's own test suite (checkpkg/expected/bxb.out)
 *   scores record 100s, the first minute of 100, with "-f 0" and prints
 *   Nn = 74, QRS Se and +P 74/74, VEB FPR 0/74; a test file that detects every
 *   beat reproduces that table, and so must we;
 * - AF: the reference AF episodes of 201 and 203 against themselves. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cardiotwin/ec57.h"
#include "cardiotwin/wfdb.h"

#define START 108000
#define END 650000

static const char *mitdb_dir(void)
{
    const char *d = getenv("CARDIOTWIN_MITDB");
    if (!d || !*d)
        fail_msg("CARDIOTWIN_MITDB is not set (ctest sets it)");
    return d;
}

static void read_atr(const char *record, ct_wfdb_annotation **ann, size_t *n)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", mitdb_dir(), record);
    ct_error err = {0};
    if (ct_wfdb_ann_read(path, "atr", ann, n, &err) != 0)
        fail_msg("%s", err.msg);
}

static const struct {
    const char *record;
    int64_t beats;
    int64_t per_class[5]; /* N S V F Q */
} identity_table[] = {
    {"100", 1902, {1872, 29, 1, 0, 0}},
    {"101", 1523, {1518, 3, 0, 0, 2}},
    {"102", 1821, {1, 0, 3, 0, 1817}},
    {"103", 1729, {1727, 2, 0, 0, 0}},
    {"104", 1857, {98, 0, 1, 0, 1758}},
    {"105", 2155, {2121, 0, 29, 0, 5}},
    {"106", 1696, {1236, 0, 460, 0, 0}},
    {"107", 1784, {0, 0, 57, 0, 1727}},
    {"108", 1480, {1460, 5, 13, 2, 0}},
    {"109", 2099, {2067, 0, 32, 0, 0}},
    {"112", 2111, {2109, 2, 0, 0, 0}},
    {"114", 1604, {1559, 11, 30, 4, 0}},
    {"115", 1637, {1637, 0, 0, 0, 0}},
    {"116", 2017, {1918, 1, 98, 0, 0}},
    {"118", 1916, {1817, 86, 13, 0, 0}},
    {"119", 1661, {1297, 0, 364, 0, 0}},
    {"122", 2054, {2054, 0, 0, 0, 0}},
    {"124", 1367, {1293, 22, 47, 5, 0}},
    {"201", 1521, {1185, 136, 198, 2, 0}},
    {"203", 2481, {2103, 0, 373, 1, 4}},
    {"205", 2201, {2123, 2, 65, 11, 0}},
    {"207", 1592, {1376, 107, 109, 0, 0}},
    {"208", 2437, {1308, 2, 824, 301, 2}},
    {"209", 2519, {2146, 372, 1, 0, 0}},
    {"215", 2795, {2661, 2, 131, 1, 0}},
    {"220", 1694, {1601, 93, 0, 0, 0}},
    {"223", 2199, {1656, 80, 455, 8, 0}},
    {"230", 1859, {1858, 0, 1, 0, 0}},
};

static void test_identity_28_records(void **state)
{
    (void)state;
    size_t nrec = sizeof identity_table / sizeof identity_table[0];
    assert_int_equal(nrec, 28);
    ct_ec57_beat_stats *all = calloc(nrec, sizeof *all);
    assert_non_null(all);
    int64_t total = 0;
    for (size_t i = 0; i < nrec; i++) {
        ct_wfdb_annotation *ann = NULL;
        size_t n = 0;
        read_atr(identity_table[i].record, &ann, &n);
        ct_error err = {0};
        int rc = ct_ec57_compare_beats(ann, n, ann, n, 360.0, START, END, &all[i], &err);
        free(ann);
        if (rc)
            fail_msg("%s: %s", identity_table[i].record, err.msg);
        const ct_ec57_beat_stats *st = &all[i];
        for (int r = 0; r < CT_EC57_N_CLASSES; r++)
            for (int t = 0; t < CT_EC57_N_CLASSES; t++) {
                int64_t want = (r == t && r < 5) ? identity_table[i].per_class[r] : 0;
                if (st->m[r][t] != want)
                    fail_msg("record %s: cell %c%c is %lld, want %lld",
                             identity_table[i].record, ct_ec57_class_letter(r),
                             ct_ec57_class_letter(t) + ('a' - 'A'), (long long)st->m[r][t],
                             (long long)want);
            }
        assert_int_equal(ct_ec57_reference_beats(st), identity_table[i].beats);
        ct_ec57_beat_summary s;
        ct_ec57_beat_summary_record(st, &s);
        assert_true(s.qrs_se.defined && s.qrs_se.percent == 100.0);
        assert_true(s.qrs_pp.defined && s.qrs_pp.percent == 100.0);
        assert_int_equal(s.qrs_se.num, identity_table[i].beats);
        if (identity_table[i].per_class[CT_EC57_V] > 0)
            assert_true(s.veb_se.percent == 100.0 && s.veb_pp.percent == 100.0);
        else
            assert_false(s.veb_se.defined || s.veb_pp.defined);
        if (identity_table[i].per_class[CT_EC57_S] > 0)
            assert_true(s.sveb_se.percent == 100.0 && s.sveb_pp.percent == 100.0);
        else
            assert_false(s.sveb_se.defined);
        assert_true(s.veb_fpr.defined && s.veb_fpr.percent == 0.0);
        assert_true(s.rr_rms_ms.defined && s.rr_rms_ms.percent == 0.0);
        total += identity_table[i].beats;
    }
    ct_ec57_beat_summary g, a;
    ct_ec57_beat_summary_gross(all, nrec, &g);
    ct_ec57_beat_summary_average(all, nrec, &a);
    assert_int_equal(g.qrs_se.num, total);
    assert_true(g.qrs_se.percent == 100.0 && g.qrs_pp.percent == 100.0);
    assert_true(a.qrs_se.percent == 100.0);
    assert_int_equal(a.qrs_se.den, 28);
    assert_int_equal(a.veb_se.den, 22);  /* records with a VEB in the test period */
    assert_int_equal(a.sveb_se.den, 17); /* records with an SVEB */
    free(all);
}

/* 100.atr against its own beats, every one moved by shift samples. */
static void shifted_100(int64_t shift, ct_ec57_beat_stats *st)
{
    ct_wfdb_annotation *ann = NULL;
    size_t n = 0, n_moved = 0;
    read_atr("100", &ann, &n);
    ct_wfdb_annotation *moved = malloc(n * sizeof *moved);
    assert_non_null(moved);
    for (size_t i = 0; i < n; i++)
        if (ct_ec57_beat_class(ann[i].code) >= 0) {
            moved[n_moved] = ann[i];
            moved[n_moved++].sample += shift;
        }
    assert_int_equal(n_moved, 2273);
    ct_error err = {0};
    int rc = ct_ec57_compare_beats(ann, n, moved, n_moved, 360.0, START, END, st, &err);
    free(ann);
    free(moved);
    if (rc)
        fail_msg("%s", err.msg);
}

static void test_perturbation_edge(void **state)
{
    (void)state;
    static const int64_t shifts[] = {54, -54, 55, -55};
    for (size_t k = 0; k < 4; k++) {
        ct_ec57_beat_stats st;
        shifted_100(shifts[k], &st);
        int match = shifts[k] == 54 || shifts[k] == -54;
        int64_t diag = st.m[CT_EC57_N][CT_EC57_N] + st.m[CT_EC57_S][CT_EC57_S] +
                       st.m[CT_EC57_V][CT_EC57_V];
        int64_t missed = st.m[CT_EC57_N][CT_EC57_O] + st.m[CT_EC57_S][CT_EC57_O] +
                         st.m[CT_EC57_V][CT_EC57_O];
        int64_t extra = st.m[CT_EC57_O][CT_EC57_N] + st.m[CT_EC57_O][CT_EC57_S] +
                        st.m[CT_EC57_O][CT_EC57_V];
        ct_ec57_beat_summary s;
        ct_ec57_beat_summary_record(&st, &s);
        if (match) {
            /* 150 ms: every beat of the test period matched, class kept. */
            assert_int_equal(st.m[CT_EC57_N][CT_EC57_N], 1872);
            assert_int_equal(st.m[CT_EC57_S][CT_EC57_S], 29);
            assert_int_equal(st.m[CT_EC57_V][CT_EC57_V], 1);
            assert_int_equal(missed + extra, 0);
            assert_true(s.qrs_se.percent == 100.0 && s.qrs_pp.percent == 100.0);
        } else {
            /* 152.8 ms: nothing matches; every reference beat is missed and
             * every test beat in [start, end] is extra (one shifted beat
             * falls outside the period at either end). */
            assert_int_equal(diag, 0);
            assert_int_equal(st.m[CT_EC57_N][CT_EC57_O], 1872);
            assert_int_equal(st.m[CT_EC57_S][CT_EC57_O], 29);
            assert_int_equal(st.m[CT_EC57_V][CT_EC57_O], 1);
            assert_int_equal(extra, 1901);
            assert_int_equal(st.m[CT_EC57_O][CT_EC57_S], 29);
            assert_int_equal(st.m[CT_EC57_O][CT_EC57_V], 1);
            assert_true(s.qrs_se.defined && s.qrs_se.percent == 0.0);
            assert_true(s.qrs_pp.defined && s.qrs_pp.percent == 0.0);
        }
    }
}

static void test_published_checkpkg_100s(void **state)
{
    (void)state;
    /* 100s is 100 cut at 21600 samples (60 s); its .atr holds the
     * annotations of 100.atr before that. */
    ct_wfdb_annotation *ann = NULL;
    size_t n = 0;
    read_atr("100", &ann, &n);
    size_t cut = 0;
    while (cut < n && ann[cut].sample < 21600)
        cut++;
    ct_ec57_beat_stats st;
    ct_error err = {0};
    /* bxb -r 100s -a atr ann -f 0: start 0, end = record length 21600. */
    assert_int_equal(ct_ec57_compare_beats(ann, cut, ann, cut, 360.0, 0, 21600, &st, &err), 0);
    free(ann);
    /* The first minute holds 73 N beats and one A (S). */
    for (int r = 0; r < CT_EC57_N_CLASSES; r++)
        for (int t = 0; t < CT_EC57_N_CLASSES; t++)
            assert_int_equal(st.m[r][t], (r == t && r == CT_EC57_N) ? 73
                                         : (r == t && r == CT_EC57_S) ? 1 : 0);
    /* The published table is bxb's standard (-s) format, which has no S row
     * or column: its N row is Nn+Ns+Sn+Ss, its v column Nv+Sv and so on.
     *     N |   74    0    0    0    0    0   (n v f q o x), all else 0. */
    const int64_t(*m)[CT_EC57_N_CLASSES] = st.m;
    enum { N = CT_EC57_N, S = CT_EC57_S, V = CT_EC57_V, F = CT_EC57_F, Q = CT_EC57_Q,
           O = CT_EC57_O, X = CT_EC57_X };
    const int64_t table3[6][6] = {
        {m[N][N] + m[N][S] + m[S][N] + m[S][S], m[N][V] + m[S][V], m[N][F] + m[S][F],
         m[N][Q] + m[S][Q], m[N][O] + m[S][O], m[N][X] + m[S][X]},
        {m[V][N] + m[V][S], m[V][V], m[V][F], m[V][Q], m[V][O], m[V][X]},
        {m[F][N] + m[F][S], m[F][V], m[F][F], m[F][Q], m[F][O], m[F][X]},
        {m[Q][N] + m[Q][S], m[Q][V], m[Q][F], m[Q][Q], m[Q][O], m[Q][X]},
        {m[O][N] + m[O][S], m[O][V], m[O][F], m[O][Q], 0, 0},
        {m[X][N] + m[X][S], m[X][V], m[X][F], m[X][Q], 0, 0},
    };
    for (int r = 0; r < 6; r++)
        for (int t = 0; t < 6; t++)
            assert_int_equal(table3[r][t], (r == 0 && t == 0) ? 74 : 0);
    ct_ec57_beat_summary s;
    ct_ec57_beat_summary_record(&st, &s);
    /* QRS sensitivity: 100.00% (74/74); QRS positive predictivity: 100.00%
     * (74/74); VEB sensitivity and +P: - (0/0); VEB FPR: 0.000% (0/74);
     * total shutdown time 0 s. */
    assert_int_equal(s.qrs_se.num, 74);
    assert_int_equal(s.qrs_se.den, 74);
    assert_int_equal(s.qrs_pp.num, 74);
    assert_int_equal(s.qrs_pp.den, 74);
    assert_false(s.veb_se.defined);
    assert_int_equal(s.veb_se.den, 0);
    assert_false(s.veb_pp.defined);
    assert_int_equal(s.veb_fpr.num, 0);
    assert_int_equal(s.veb_fpr.den, 74);
    assert_int_equal(st.test_shutdown_samples, 0);
}

static void af_identity(const char *record, int64_t episodes, int64_t duration)
{
    ct_wfdb_annotation *ann = NULL;
    size_t n = 0;
    read_atr(record, &ann, &n);
    ct_ec57_af_stats st;
    ct_error err = {0};
    assert_int_equal(ct_ec57_compare_af(ann, n, ann, n, 360.0, START, END, &st, &err), 0);
    free(ann);
    assert_int_equal(st.se_tp, episodes);
    assert_int_equal(st.se_fn, 0);
    assert_int_equal(st.pp_tp, episodes);
    assert_int_equal(st.pp_fp, 0);
    assert_int_equal(st.ref_duration_samples, duration);
    assert_int_equal(st.ref_overlap_samples, duration);
    assert_int_equal(st.test_duration_samples, duration);
    assert_int_equal(st.test_overlap_samples, duration);
}

static void test_af_identity(void **state)
{
    (void)state;
    /* Episodes and their total length in the test period, counted
     * independently: 201 has 3 AF episodes ending after 5 min, the first
     * clipped at the start; 203 has 17, the last running to the end. */
    af_identity("201", 3, 110148);
    af_identity("203", 17, 417794);
    af_identity("100", 0, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identity_28_records),
        cmocka_unit_test(test_perturbation_edge),
        cmocka_unit_test(test_published_checkpkg_100s),
        cmocka_unit_test(test_af_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
