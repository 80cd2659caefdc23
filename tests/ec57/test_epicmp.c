/* AF episode comparison on hand-built rhythm annotations, outcomes worked out
 * from epicmp's rules. 360 Hz, test period [108000, 650000]. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ec57_fixtures.h"

#define START 108000
#define END 650000

static fix_list ref, test;

static int setup(void **state)
{
    (void)state;
    memset(&ref, 0, sizeof ref);
    memset(&test, 0, sizeof test);
    return 0;
}

static ct_ec57_af_stats compare_end(int64_t end)
{
    ct_ec57_af_stats st;
    ct_error err = {0};
    if (ct_ec57_compare_af(ref.a, ref.n, test.a, test.n, 360.0, START, end, &st, &err))
        fail_msg("compare failed: %s", err.msg);
    return st;
}

static ct_ec57_af_stats compare(void)
{
    return compare_end(END);
}

static void assert_af(const ct_ec57_af_stats *st, int64_t se_tp, int64_t se_fn, int64_t pp_tp,
                      int64_t pp_fp, int64_t ref_dur, int64_t ref_ov, int64_t test_dur,
                      int64_t test_ov)
{
    assert_int_equal(st->se_tp, se_tp);
    assert_int_equal(st->se_fn, se_fn);
    assert_int_equal(st->pp_tp, pp_tp);
    assert_int_equal(st->pp_fp, pp_fp);
    assert_int_equal(st->ref_duration_samples, ref_dur);
    assert_int_equal(st->ref_overlap_samples, ref_ov);
    assert_int_equal(st->test_duration_samples, test_dur);
    assert_int_equal(st->test_overlap_samples, test_ov);
}

static void test_partial_overlap(void **state)
{
    (void)state;
    fix_rhythm(&ref, 1000, "(N");
    fix_rhythm(&ref, 200000, "(AFIB");
    fix_rhythm(&ref, 300000, "(N");
    fix_add(&test, 250000, CT_ANN_NORMAL); /* beats are ignored */
    fix_rhythm(&test, 250000, "(AFIB");
    fix_rhythm(&test, 350000, "(N");
    ct_ec57_af_stats st = compare();
    assert_af(&st, 1, 0, 1, 0, 100000, 50000, 100000, 50000);
    ct_ec57_af_summary s;
    ct_ec57_af_summary_record(&st, &s);
    assert_true(s.episode_se.percent == 100.0);
    assert_true(s.duration_se.percent == 50.0);
    assert_true(s.duration_pp.percent == 50.0);
}

static void test_no_overlap(void **state)
{
    (void)state;
    fix_rhythm(&ref, 200000, "(AFIB");
    fix_rhythm(&ref, 300000, "(N");
    fix_rhythm(&test, 400000, "(AFIB");
    fix_rhythm(&test, 450000, "(N");
    ct_ec57_af_stats st = compare();
    assert_af(&st, 0, 1, 0, 1, 100000, 0, 50000, 0);

    /* Touching is not overlapping: the test episode starts where the
     * reference one ends. */
    setup(NULL);
    fix_rhythm(&ref, 200000, "(AFIB");
    fix_rhythm(&ref, 300000, "(N");
    fix_rhythm(&test, 300000, "(AFIB");
    fix_rhythm(&test, 320000, "(N");
    st = compare();
    assert_af(&st, 0, 1, 0, 1, 100000, 0, 20000, 0);
}

/* Only the part after 5 minutes counts; an episode over before then is
 * ignored. The reference episode is clipped only when it is the one being
 * walked: in the +P pass it is a window and needs no clipping. */
static void test_learning_period(void **state)
{
    (void)state;
    fix_rhythm(&ref, 50000, "(AFIB");
    fix_rhythm(&ref, 150000, "(N");
    fix_rhythm(&test, 10000, "(AFIB");
    fix_rhythm(&test, 100000, "(N");
    fix_rhythm(&test, 140000, "(AFIB");
    fix_rhythm(&test, 160000, "(N");
    ct_ec57_af_stats st = compare();
    assert_af(&st, 1, 0, 1, 0, 42000, 10000, 20000, 10000);
}

/* An episode still open at the end of the list closes at the end of the
 * record (or at the last annotation, if later); the end clips it. */
static void test_open_episode(void **state)
{
    (void)state;
    fix_rhythm(&ref, 600000, "(AFIB");
    fix_rhythm(&test, 620000, "(AFIB");
    fix_rhythm(&test, 640000, "(N");
    ct_ec57_af_stats st = compare();
    assert_af(&st, 1, 0, 1, 0, 50000, 20000, 20000, 20000);

    /* With no record end (0), it closes at its last annotation. */
    setup(NULL);
    fix_rhythm(&ref, 600000, "(AFIB");
    fix_add(&ref, 610000, CT_ANN_NORMAL);
    fix_rhythm(&test, 600000, "(AFIB");
    fix_rhythm(&test, 605000, "(N");
    st = compare_end(0);
    assert_af(&st, 1, 0, 1, 0, 10000, 5000, 5000, 5000);
}

/* "(AFL" is not AF, a repeated "(AFIB" does not end an episode, and any
 * other rhythm does. No test episode: +P undefined, not 0 or 100. */
static void test_labels(void **state)
{
    (void)state;
    fix_rhythm(&ref, 200000, "(AFIB");
    fix_rhythm(&ref, 220000, "(AFIB");
    fix_rhythm(&ref, 300000, "(AFL");
    fix_rhythm(&ref, 400000, "(N");
    fix_rhythm(&test, 310000, "(AFL");
    fix_rhythm(&test, 390000, "(N");
    ct_ec57_af_stats st = compare();
    assert_af(&st, 0, 1, 0, 0, 100000, 0, 0, 0);
    ct_ec57_af_summary s;
    ct_ec57_af_summary_record(&st, &s);
    assert_true(s.episode_se.defined && s.episode_se.percent == 0.0);
    assert_false(s.episode_pp.defined);
    assert_true(isnan(s.episode_pp.percent));
    assert_false(s.duration_pp.defined);
}

/* A zero-length episode is still an episode to epicmp, and one with nothing
 * to overlap: a false negative even inside a test episode. */
static void test_zero_length_episode(void **state)
{
    (void)state;
    fix_rhythm(&ref, 200000, "(AFIB");
    fix_rhythm(&ref, 200000, "(N");
    fix_rhythm(&test, 150000, "(AFIB");
    fix_rhythm(&test, 250000, "(N");
    ct_ec57_af_stats st = compare();
    assert_af(&st, 0, 1, 0, 1, 0, 0, 100000, 0);
}

/* One long test episode covering two reference episodes. */
static void test_one_covers_two(void **state)
{
    (void)state;
    fix_rhythm(&ref, 200000, "(AFIB");
    fix_rhythm(&ref, 220000, "(N");
    fix_rhythm(&ref, 300000, "(AFIB");
    fix_rhythm(&ref, 330000, "(N");
    fix_rhythm(&test, 210000, "(AFIB");
    fix_rhythm(&test, 320000, "(N");
    ct_ec57_af_stats st = compare();
    /* Se: both reference episodes overlapped (10000 + 20000). +P: the test
     * episode overlaps both (10000 + 20000). */
    assert_af(&st, 2, 0, 1, 0, 50000, 30000, 110000, 30000);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ct_ec57_af_stats st;
    ct_error err = {0};
    assert_int_equal(ct_ec57_compare_af(NULL, 0, NULL, 0, 360.0, START, -1, &st, &err),
                     CT_EINVAL);
    assert_non_null(strstr(err.msg, "record length"));
    fix_rhythm(&ref, 300, "(AFIB");
    fix_rhythm(&ref, 200, "(N");
    assert_int_equal(ct_ec57_compare_af(ref.a, ref.n, NULL, 0, 360.0, START, END, &st, &err),
                     CT_EINVAL);
    assert_int_equal(ct_ec57_compare_af(NULL, 0, NULL, 0, 360.0, 5000, 100, &st, &err),
                     CT_EINVAL);
    assert_int_equal(ct_ec57_compare_af(NULL, 0, NULL, 0, 360.0, START, END, NULL, &err),
                     CT_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_partial_overlap, setup),
        cmocka_unit_test_setup(test_no_overlap, setup),
        cmocka_unit_test_setup(test_learning_period, setup),
        cmocka_unit_test_setup(test_open_episode, setup),
        cmocka_unit_test_setup(test_labels, setup),
        cmocka_unit_test_setup(test_zero_length_episode, setup),
        cmocka_unit_test_setup(test_one_covers_two, setup),
        cmocka_unit_test_setup(test_bad_arguments, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
