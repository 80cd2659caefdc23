/* The dashboard's reads (src/store/dash_rows.c) on a real SQLite file:
 * the record list leaves out the live twin's segments and stops at its
 * cap; a record's patient is found by row id; a patient's stream is the
 * one that began last at or before a time; a stream's segments are those
 * overlapping a sample range, in order, at most as many as asked; and the
 * misses are CT_ENOTFOUND with the patient or id named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardiotwin/store.h"

typedef struct fx {
    char path[256];
    ct_store *st;
} fx;

static int64_t record_new(fx *f, const char *source, const char *name, int64_t patient_id, int64_t n_samples)
{
    ct_store_record r;
    memset(&r, 0, sizeof r);
    snprintf(r.source, sizeof r.source, "%s", source);
    snprintf(r.name, sizeof r.name, "%s", name);
    r.patient_id = patient_id;
    r.fs_hz = 360;
    r.n_signals = 1;
    ct_error err;
    if (ct_store_record_insert(f->st, &r, &err) != 0)
        fail_msg("%s", err.msg);
    ct_store_signal s;
    memset(&s, 0, sizeof s);
    s.record_id = r.id;
    s.gain_adu_per_unit = 200;
    if (ct_store_signal_insert(f->st, &s, &err) != 0)
        fail_msg("%s", err.msg);
    int16_t *v = calloc((size_t)n_samples + 1, sizeof *v);
    assert_non_null(v);
    if (n_samples > 0 && ct_store_samples_write(f->st, s.id, 0, v, (size_t)n_samples, &err) != 0)
        fail_msg("%s", err.msg);
    free(v);
    return r.id;
}

static int64_t stream_new(fx *f, const char *patient, int64_t t0_ms, int end)
{
    ct_store_twin_stream s;
    memset(&s, 0, sizeof s);
    snprintf(s.patient, sizeof s.patient, "%s", patient);
    s.t0_ms = t0_ms;
    s.fs_hz = 360;
    snprintf(s.leads, sizeof s.leads, "131330");
    ct_error err;
    if (ct_store_twin_stream_insert(f->st, &s, &err) != 0)
        fail_msg("%s", err.msg);
    if (end && ct_store_twin_stream_update(f->st, s.id, 0, 0, &err) != 0)
        fail_msg("%s", err.msg);
    return s.id;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->path, sizeof f->path, "/tmp/ct_dash_rows_XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    unlink(f->path);
    ct_error err;
    if (ct_store_open(f->path, &f->st, &err) != 0)
        fail_msg("%s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ct_store_close(f->st);
    char p[300];
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
    free(f);
    return 0;
}

static void test_records_list_leaves_out_segments(void **state)
{
    fx *f = *state;
    ct_error err;
    ct_store_patient p = {0};
    snprintf(p.identifier, sizeof p.identifier, "mitdb-106");
    p.age_years = -1;
    assert_int_equal(ct_store_patient_ensure(f->st, &p, &err), 0);
    record_new(f, "mitdb", "106", p.id, 10);
    record_new(f, "mitdb", "100", 0, 10);
    record_new(f, "other", "100", 0, 10);
    int64_t seg_rec = record_new(f, "twin", "stream-1-0", 0, 3600);
    int64_t sid = stream_new(f, "p1", 1000, 0);
    ct_store_twin_segment g = {0, sid, seg_rec, 0, 0};
    assert_int_equal(ct_store_twin_segment_insert(f->st, &g, &err), 0);

    ct_store_record *r = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_records_list(f->st, 0, &r, &n, &err), 0);
    assert_int_equal(n, 3); /* the segment's record is the twin's */
    assert_string_equal(r[0].source, "mitdb");
    assert_string_equal(r[0].name, "100");
    assert_string_equal(r[1].name, "106");
    assert_int_equal(r[1].n_samples, 10);
    assert_int_equal(r[1].patient_id, p.id);
    assert_string_equal(r[2].source, "other");
    free(r);
    assert_int_equal(ct_store_records_list(f->st, 2, &r, &n, &err), 0);
    assert_int_equal(n, 2);
    free(r);

    ct_store_patient q;
    assert_int_equal(ct_store_patient_by_id(f->st, p.id, &q, &err), 0);
    assert_string_equal(q.identifier, "mitdb-106");
    assert_int_equal(q.age_years, -1);
    assert_int_equal(ct_store_patient_by_id(f->st, p.id + 100, &q, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "no patient with id"));
    assert_int_equal(ct_store_records_list(f->st, 0, NULL, &n, &err), CT_EINVAL);
}

static void test_stream_at_and_segments(void **state)
{
    fx *f = *state;
    ct_error err;
    int64_t s1 = stream_new(f, "p1", 1000, 1);
    int64_t s2 = stream_new(f, "p1", 500000, 0);
    stream_new(f, "p2", 0, 0);
    ct_store_twin_stream s;
    assert_int_equal(ct_store_twin_stream_at(f->st, "p1", 2000, &s, &err), 0);
    assert_int_equal(s.id, s1);
    assert_int_equal(s.live, 0);
    assert_int_equal(ct_store_twin_stream_at(f->st, "p1", 600000, &s, &err), 0);
    assert_int_equal(s.id, s2);
    assert_int_equal(s.live, 1);
    assert_string_equal(s.leads, "131330");
    assert_int_equal(ct_store_twin_stream_at(f->st, "p1", 999, &s, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "Patient/p1"));
    assert_int_equal(ct_store_twin_stream_at(f->st, "p3", 999999, &s, &err), CT_ENOTFOUND);

    /* Segments of s2 at stream samples [0, 3600), [3600, 4600), [10000, 13600). */
    const int64_t first[] = {0, 3600, 10000}, len[] = {3600, 1000, 3600};
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "stream-%lld-%lld", (long long)s2, (long long)first[i]);
        ct_store_twin_segment g = {0, s2, record_new(f, "twin", name, 0, len[i]), first[i], 0};
        assert_int_equal(ct_store_twin_segment_insert(f->st, &g, &err), 0);
    }
    ct_store_twin_segment out[4];
    size_t n = 0;
    assert_int_equal(ct_store_twin_segments_range(f->st, s2, 3000, 10001, 4, out, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].first_sample, 0);
    assert_int_equal(out[0].n_samples, 3600);
    assert_int_equal(out[1].first_sample, 3600);
    assert_int_equal(out[1].n_samples, 1000);
    assert_int_equal(out[2].first_sample, 10000);
    assert_int_equal(ct_store_twin_segments_range(f->st, s2, 4600, 10000, 4, out, &n, &err), 0);
    assert_int_equal(n, 0); /* the gap between segments */
    assert_int_equal(ct_store_twin_segments_range(f->st, s2, 0, 20000, 2, out, &n, &err), 0);
    assert_int_equal(n, 2); /* at most max */
    assert_int_equal(ct_store_twin_segments_range(f->st, s1, 0, 20000, 4, out, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ct_store_twin_segments_range(f->st, s2, 0, 1, 0, out, &n, &err), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_list_leaves_out_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_at_and_segments, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
