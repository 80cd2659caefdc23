/* Stitching Observations into a patient's stream (record 100, cut by hand):
 * duplicates are harmless, overlaps with other data are refused and leave
 * nothing behind, gaps are detected, reported and never filled with beats,
 * a new sampling rate or lead set starts a new stream, and the three-step
 * ingest forgets an Observation whose transaction rolled back. */
#include "twin_test_util.h"

#define FS 360
#define OBS (10 * FS)

typedef struct fixture {
    tt_record *r;
    tt_db d;
    ct_twin *t;
    tt_beats beats;
} fixture;

static void setup(fixture *f, double bridge_s)
{
    memset(f, 0, sizeof *f);
    f->r = tt_load("100");
    tt_db_open(&f->d);
    ct_twin_options o;
    ct_twin_options_default(&o);
    o.gap_bridge_max_s = bridge_s;
    o.observer.on_beat = tt_on_beat;
    o.observer.ctx = &f->beats;
    ct_error err;
    if (ct_twin_new(&o, f->d.st, &f->t, &err) != 0)
        fail_msg("%s", err.msg);
}

static void teardown(fixture *f)
{
    ct_twin_free(f->t);
    tt_db_close(&f->d);
    tt_beats_free(&f->beats);
    tt_unload(f->r);
}

static int64_t at_ms(int64_t frame)
{
    return TT_T0_MS + frame * 1000 / FS;
}

static int ingest(fixture *f, const char *id, int64_t from, size_t n, int64_t start_ms, ct_twin_ingest_result *res,
                  ct_error *err)
{
    return tt_ingest(f->t, f->d.st, f->r, "p1", id, from, n, start_ms, res, err);
}

static void ok_ingest(fixture *f, const char *id, int64_t from, size_t n, int64_t start_ms, ct_twin_verdict want,
                      ct_twin_ingest_result *res)
{
    ct_error err;
    if (ingest(f, id, from, n, start_ms, res, &err) != 0)
        fail_msg("%s: %s", id, err.msg);
    if (res->verdict != want)
        fail_msg("%s: verdict %d, want %d (%s)", id, res->verdict, want, res->message);
    assert_int_equal(res->report_error, 0);
}

static int64_t next_sample(fixture *f)
{
    ct_twin_live v;
    ct_error err;
    assert_int_equal(ct_twin_live_read(f->t, "p1", 1, &v, &err), 0);
    int64_t n = v.next_sample;
    ct_twin_live_free(&v);
    return n;
}

static void test_duplicates_and_overlaps(void **state)
{
    (void)state;
    fixture f;
    setup(&f, 60);
    ct_twin_ingest_result res;
    ct_error err;
    ok_ingest(&f, "o0", 0, OBS, at_ms(0), CT_TWIN_STARTED, &res);
    assert_int_equal(res.stream_seq, 1);
    ok_ingest(&f, "o1", OBS, OBS, at_ms(OBS), CT_TWIN_APPENDED, &res);
    assert_int_equal(res.start_sample, OBS);

    /* The same Observation again, by id. */
    ok_ingest(&f, "o1", OBS, OBS, at_ms(OBS), CT_TWIN_DUPLICATE, &res);
    assert_non_null(strstr(res.message, "taken before"));
    /* The same samples at the same time under another id. */
    ok_ingest(&f, "o1-resent", OBS, OBS, at_ms(OBS), CT_TWIN_DUPLICATE, &res);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_source"), 2);
    assert_int_equal(next_sample(&f), 2 * OBS);

    /* Overlapping with other data: refused, nothing stored. */
    int16_t *other = malloc(OBS * sizeof *other);
    assert_non_null(other);
    memcpy(other, f.r->sig.samples[0] + OBS, OBS * sizeof *other);
    other[100] += 7;
    ct_fhir_ecg e;
    tt_observation(f.r, "p1", OBS, OBS, at_ms(OBS), other, 0, 0, &e);
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "o1-changed", &res, &err), CT_EEXIST);
    assert_non_null(strstr(err.msg, "different samples"));
    assert_non_null(strstr(err.msg, "o1-changed"));
    ct_fhir_ecg_free(&e);
    free(other);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_source"), 2);
    assert_int_equal(tt_count(&f.d, "SELECT next_sample FROM twin_stream"), 2 * OBS);
    assert_int_equal(next_sample(&f), 2 * OBS);

    /* Half resent, half new: the new half is taken. */
    ok_ingest(&f, "o2-half", OBS + OBS / 2, OBS, at_ms(OBS + OBS / 2), CT_TWIN_APPENDED, &res);
    assert_int_equal(res.overlap_samples, OBS / 2);
    assert_int_equal(res.n_samples, OBS / 2);
    assert_int_equal(next_sample(&f), 2 * OBS + OBS / 2);

    /* A start 1 ms late is within half a sample: it continues. */
    int64_t n0 = 2 * OBS + OBS / 2;
    ok_ingest(&f, "o3-jitter", n0, OBS, at_ms(n0) + 1, CT_TWIN_APPENDED, &res);
    assert_int_equal(res.start_sample, n0);
    assert_int_equal(res.gap_ms, 0);

    /* Before the stream began: refused. */
    assert_int_equal(ingest(&f, "early", 0, OBS, at_ms(0) - 20000, &res, &err), CT_EEXIST);
    assert_non_null(strstr(err.msg, "before the stored ECG"));

    /* A status the twin does not analyse, and a rate the detector cannot. */
    tt_observation(f.r, "p1", 0, OBS, at_ms(10 * OBS), NULL, 0, 0, &e);
    e.status = CT_FHIR_OBS_CANCELLED;
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "cancelled", &res, &err), 0);
    assert_int_equal(res.verdict, CT_TWIN_IGNORED);
    ct_fhir_ecg_free(&e);
    tt_observation(f.r, "p1", 0, OBS, at_ms(10 * OBS), NULL, 100, 0, &e);
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "slow", &res, &err), CT_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "100 Hz"));
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "not an id!", &res, &err), CT_EINVAL);
    ct_fhir_ecg_free(&e);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_source"), 4);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_stream"), 1);

    /* What is stored is what was sent, once. */
    ct_store_record rec;
    assert_int_equal(ct_store_record_find(f.d.st, "twin", "stream-1-0", &rec, &err), 0);
    assert_int_equal(rec.n_samples, 3 * OBS + OBS / 2);
    teardown(&f);
}

static void check_no_beats_in(const tt_beats *b, int64_t from, int64_t to)
{
    for (size_t i = 0; i < b->n; i++)
        if (b->sample[i] >= from && b->sample[i] < to)
            fail_msg("beat at %lld inside the gap [%lld, %lld)", (long long)b->sample[i], (long long)from,
                     (long long)to);
}

static size_t beats_in(const tt_beats *b, int64_t from, int64_t to)
{
    size_t n = 0;
    for (size_t i = 0; i < b->n; i++)
        n += b->sample[i] >= from && b->sample[i] < to;
    return n;
}

/* A signal-loss alert was stored, with the gap in its report. */
static void check_signal_loss(fixture *f, const char *fragment)
{
    ct_store_twin_alert *al = NULL;
    size_t n = 0;
    ct_error err;
    assert_int_equal(ct_store_twin_alerts_list(f->d.st, "p1", 0, 100, &al, &n, &err), 0);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(al[i].rule, "signal_loss") != 0)
            continue;
        found = 1;
        char *body = NULL;
        assert_int_equal(ct_store_resource_get(f->d.st, "DiagnosticReport", al[i].report_id, 0, &body, NULL,
                                               NULL, NULL, &err), 0);
        json_t *j = json_loads(body, 0, NULL);
        const char *c = json_string_value(json_object_get(j, "conclusion"));
        print_message("signal loss report (%s): %s\n", al[i].state, c);
        assert_non_null(strstr(c, fragment));
        json_decref(j);
        free(body);
    }
    free(al);
    assert_true(found);
}

static void test_gap_bridged(void **state)
{
    (void)state;
    fixture f;
    setup(&f, 60);
    ct_twin_ingest_result res;
    for (int k = 0; k < 6; k++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", k);
        ok_ingest(&f, id, k * OBS, OBS, at_ms(k * OBS), k ? CT_TWIN_APPENDED : CT_TWIN_STARTED, &res);
    }
    /* 30 s without ECG, then the stream goes on. */
    const int64_t gap_from = 6 * OBS, gap_to = 9 * OBS;
    ok_ingest(&f, "b0", gap_to, OBS, at_ms(gap_to), CT_TWIN_GAP, &res);
    assert_int_equal(res.gap_ms, 30000);
    assert_int_equal(res.new_segment, 0);
    assert_int_equal(res.start_sample, gap_to);
    assert_non_null(strstr(res.message, "gap"));
    for (int k = 1; k < 6; k++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", k);
        ok_ingest(&f, id, gap_to + k * OBS, OBS, at_ms(gap_to + k * OBS), CT_TWIN_APPENDED, &res);
    }
    ct_error err;
    assert_int_equal(ct_twin_stream_end(f.t, f.d.st, "p1", &err), 0);
    /* No beat invented in the gap; beats before and after it. */
    check_no_beats_in(&f.beats, gap_from, gap_to);
    assert_true(beats_in(&f.beats, 0, gap_from) > 60);
    assert_true(beats_in(&f.beats, gap_to, gap_to + 6 * OBS) > 60);
    check_signal_loss(&f, "No ECG was received for 30 s");
    /* The gap is stored as missing samples in the same segment. */
    ct_store_record rec;
    assert_int_equal(ct_store_record_find(f.d.st, "twin", "stream-1-0", &rec, &err), 0);
    assert_int_equal(rec.n_samples, 15 * OBS);
    ct_store_signal *sig = NULL;
    size_t nsig = 0;
    assert_int_equal(ct_store_signals_list(f.d.st, rec.id, &sig, &nsig, &err), 0);
    int16_t buf[OBS];
    size_t got = 0;
    assert_int_equal(ct_store_samples_read(f.d.st, sig[1].id, gap_from, buf, OBS, &got, &err), 0);
    for (size_t i = 0; i < got; i++)
        assert_int_equal(buf[i], CT_FHIR_SAMPLE_MISSING);
    assert_int_equal(ct_store_samples_read(f.d.st, sig[1].id, gap_to, buf, OBS, &got, &err), 0);
    assert_memory_equal(buf, f.r->sig.samples[1] + gap_to, sizeof buf);
    free(sig);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_segment"), 1);
    teardown(&f);
}

static void test_gap_long(void **state)
{
    (void)state;
    fixture f;
    setup(&f, 12); /* gaps over 12 s start a new stored segment */
    ct_twin_ingest_result res;
    for (int k = 0; k < 6; k++) {
        char id[16];
        snprintf(id, sizeof id, "a%d", k);
        ok_ingest(&f, id, k * OBS, OBS, at_ms(k * OBS), k ? CT_TWIN_APPENDED : CT_TWIN_STARTED, &res);
    }
    /* 20 minutes later. */
    const int64_t gap_from = 6 * OBS, gap_to = gap_from + 20 * 60 * FS;
    ok_ingest(&f, "b0", gap_from, OBS, at_ms(gap_to), CT_TWIN_GAP, &res);
    assert_int_equal(res.gap_ms, 20 * 60 * 1000);
    assert_int_equal(res.new_segment, 1);
    assert_int_equal(res.stream_seq, 1);
    for (int k = 1; k < 6; k++) {
        char id[16];
        snprintf(id, sizeof id, "b%d", k);
        ok_ingest(&f, id, gap_from + k * OBS, OBS, at_ms(gap_to + k * OBS), CT_TWIN_APPENDED, &res);
    }
    ct_error err;
    /* A resend of the first segment cannot be compared any more. */
    assert_int_equal(ingest(&f, "a5-again", 5 * OBS, OBS, at_ms(5 * OBS), &res, &err), CT_EEXIST);
    assert_non_null(strstr(err.msg, "before the stored ECG"));
    assert_int_equal(ct_twin_stream_end(f.t, f.d.st, "p1", &err), 0);
    check_no_beats_in(&f.beats, gap_from, gap_to);
    assert_true(beats_in(&f.beats, gap_to, gap_to + 6 * OBS) > 60);
    check_signal_loss(&f, "No ECG was received for 1200 s");
    /* Two stored segments of one stream; nothing stored for the gap. */
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_stream"), 1);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_segment"), 2);
    char name[64];
    snprintf(name, sizeof name, "stream-1-%lld", (long long)gap_to);
    ct_store_record rec;
    assert_int_equal(ct_store_record_find(f.d.st, "twin", name, &rec, &err), 0);
    assert_int_equal(rec.n_samples, 6 * OBS);
    assert_int_equal(ct_store_record_find(f.d.st, "twin", "stream-1-0", &rec, &err), 0);
    assert_int_equal(rec.n_samples, 6 * OBS);
    teardown(&f);
}

static void test_new_stream(void **state)
{
    (void)state;
    fixture f;
    setup(&f, 60);
    ct_twin_ingest_result res;
    ct_error err;
    ok_ingest(&f, "a0", 0, OBS, at_ms(0), CT_TWIN_STARTED, &res);
    ok_ingest(&f, "a1", OBS, OBS, at_ms(OBS), CT_TWIN_APPENDED, &res);
    /* The same leads at 250 Hz, right after: a new stream. */
    ct_fhir_ecg e;
    tt_observation(f.r, "p1", 2 * OBS, 2500, at_ms(2 * OBS), NULL, 250, 0, &e);
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "b0", &res, &err), 0);
    ct_fhir_ecg_free(&e);
    assert_int_equal(res.verdict, CT_TWIN_STARTED);
    assert_int_equal(res.stream_seq, 2);
    assert_non_null(strstr(res.message, "sampling rate"));
    ct_twin_live v;
    assert_int_equal(ct_twin_live_read(f.t, "p1", 0, &v, &err), 0);
    assert_int_equal(v.stream_seq, 2);
    assert_true(v.fs_hz == 250);
    assert_int_equal(v.next_sample, 2500);
    assert_int_equal(v.t0_ms, at_ms(2 * OBS));
    ct_twin_live_free(&v);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_stream WHERE state = 'ended'"), 1);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_stream WHERE state = 'live' AND seq = 2"), 1);
    /* One lead only: another stream. */
    tt_observation(f.r, "p1", 3 * OBS, 2500, at_ms(2 * OBS) + 10000, NULL, 250, 1, &e);
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "c0", &res, &err), 0);
    ct_fhir_ecg_free(&e);
    assert_int_equal(res.verdict, CT_TWIN_STARTED);
    assert_int_equal(res.stream_seq, 3);
    assert_non_null(strstr(res.message, "lead set"));
    /* A new stream reaching back into the old one's time: refused. */
    tt_observation(f.r, "p1", 0, OBS, at_ms(2 * OBS), NULL, 0, 0, &e);
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "d0", &res, &err), CT_EEXIST);
    assert_non_null(strstr(err.msg, "another sampling rate or lead set"));
    ct_fhir_ecg_free(&e);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_stream"), 3);
    teardown(&f);
}

static void test_three_steps(void **state)
{
    (void)state;
    fixture f;
    setup(&f, 60);
    ct_twin_ingest_result res;
    ct_error err;
    ct_fhir_ecg e;
    tt_observation(f.r, "p1", 0, OBS, at_ms(0), NULL, 0, 0, &e);
    ct_twin_ticket *tk = NULL;
    /* The patient's lock comes before the database's. */
    assert_int_equal(ct_store_begin(f.d.st, &err), 0);
    assert_int_equal(ct_twin_ecg_begin(f.t, f.d.st, &e, "x0", &tk, &res, &err), CT_EINVAL);
    assert_null(tk);
    ct_store_rollback(f.d.st);
    /* A transaction that rolls back: the twin forgets the Observation. */
    assert_int_equal(ct_twin_ecg_begin(f.t, f.d.st, &e, "x0", &tk, &res, &err), 0);
    assert_non_null(tk);
    assert_int_equal(ct_twin_ecg_write(tk, f.d.st, &err), CT_EINVAL); /* outside a transaction */
    assert_int_equal(ct_store_begin(f.d.st, &err), 0);
    assert_int_equal(ct_twin_ecg_write(tk, f.d.st, &err), 0);
    ct_store_rollback(f.d.st);
    assert_int_equal(ct_twin_ecg_end(tk, f.d.st, 0, &res, &err), 0);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_stream"), 0);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_source"), 0);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM record"), 0);
    /* Sent again, committed this time. */
    assert_int_equal(ct_twin_ecg_begin(f.t, f.d.st, &e, "x0", &tk, &res, &err), 0);
    assert_int_equal(res.verdict, CT_TWIN_STARTED);
    assert_int_equal(ct_store_begin(f.d.st, &err), 0);
    assert_int_equal(ct_twin_ecg_write(tk, f.d.st, &err), 0);
    assert_int_equal(ct_store_commit(f.d.st, &err), 0);
    assert_int_equal(ct_twin_ecg_end(tk, f.d.st, 1, &res, &err), 0);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_source WHERE observation_id = 'x0'"), 1);
    assert_int_equal(next_sample(&f), OBS);
    /* And again: a duplicate needs no ticket. */
    assert_int_equal(ct_twin_ecg_begin(f.t, f.d.st, &e, "x0", &tk, &res, &err), 0);
    assert_null(tk);
    assert_int_equal(res.verdict, CT_TWIN_DUPLICATE);
    ct_fhir_ecg_free(&e);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicates_and_overlaps),
        cmocka_unit_test(test_gap_bridged),
        cmocka_unit_test(test_gap_long),
        cmocka_unit_test(test_new_stream),
        cmocka_unit_test(test_three_steps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
