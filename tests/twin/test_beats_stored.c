/* The live twin stores every beat its detector finds (twin_beat): record
 * 106 streamed as 10-second Observations leaves in the store exactly the
 * beats of `cardiotwin detect` (ct_twin_detect_record), sample for sample
 * and class for class, whether the stream is ended by ct_twin_stream_end or
 * by an Observation with another lead set; a store that refuses the beats
 * loses none of them (they wait, the ECG keeps flowing, the next call or
 * ct_twin_flush stores each once); max_pending_beats bounds the wait; a
 * restart of the twin keeps what was stored and adds the rest once. */
#include "twin_test_util.h"

#define FS 360
#define OBS (10 * FS)

static ct_twin *twin_new(tt_db *d, tt_beats *seen, size_t max_pending_beats)
{
    ct_twin_options o;
    ct_twin_options_default(&o);
    if (max_pending_beats)
        o.max_pending_beats = max_pending_beats;
    if (seen) {
        o.observer.on_beat = tt_on_beat;
        o.observer.ctx = seen;
    }
    ct_twin *t = NULL;
    ct_error err;
    if (ct_twin_new(&o, d->st, &t, &err) != 0)
        fail_msg("%s", err.msg);
    return t;
}

/* The beats of ct_twin_detect_record on the whole record. */
static void reference_beats(const tt_record *r, tt_beats *out)
{
    ct_wfdb_annotation *a = NULL;
    size_t n = 0;
    ct_error err;
    if (ct_twin_detect_record(&r->hdr, &r->sig, -1, &a, &n, &err) != 0)
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        if (!ct_wfdb_ann_is_beat(a[i].code))
            continue;
        ct_ecg_beat b;
        memset(&b, 0, sizeof b);
        b.sample = a[i].sample;
        b.cls = a[i].code == CT_ANN_PVC ? CT_BEAT_V : a[i].code == CT_ANN_APC ? CT_BEAT_S
              : a[i].code == CT_ANN_FUSION ? CT_BEAT_F : a[i].code == CT_ANN_UNKNOWN ? CT_BEAT_Q : CT_BEAT_N;
        tt_on_beat(out, NULL, &b);
    }
    free(a);
}

/* Every stored beat of the patient's stream seq, read in pages of 1000 as
 * GET /api/beats reads them. */
static void stored_beats(ct_store *st, const char *patient, int64_t seq, tt_beats *out)
{
    ct_store_twin_stream s;
    ct_error err;
    if (ct_store_twin_stream_get(st, patient, seq, &s, &err) != 0)
        fail_msg("%s", err.msg);
    static ct_store_twin_beat page[1000];
    int64_t from = 0;
    for (;;) {
        size_t n = 0;
        int more = 0;
        if (ct_store_twin_beats_read(st, s.id, from, INT64_MAX, 1000, page, &n, &more, &err) != 0)
            fail_msg("%s", err.msg);
        for (size_t i = 0; i < n; i++) {
            ct_ecg_beat b;
            memset(&b, 0, sizeof b);
            b.sample = page[i].sample;
            b.cls = page[i].cls == 'V' ? CT_BEAT_V : page[i].cls == 'A' ? CT_BEAT_S : page[i].cls == 'F' ? CT_BEAT_F
                  : page[i].cls == 'Q' ? CT_BEAT_Q : CT_BEAT_N;
            assert_true(page[i].hr_bpm >= 0 && page[i].hr_bpm < 400);
            tt_on_beat(out, NULL, &b);
        }
        if (!more)
            break;
        from = page[n - 1].sample + 1;
    }
}

static void check_same(const char *what, const tt_beats *got, const tt_beats *want)
{
    print_message("%s: %zu stored, %zu expected\n", what, got->n, want->n);
    for (size_t i = 0; i < got->n && i < want->n; i++)
        if (got->sample[i] != want->sample[i] || got->cls[i] != want->cls[i])
            fail_msg("%s: beat %zu: stored %lld %c, expected %lld %c", what, i, (long long)got->sample[i],
                     got->cls[i], (long long)want->sample[i], want->cls[i]);
    assert_int_equal(got->n, want->n);
}

/* What each test starts from: a record, a fresh database, a twin on it,
 * and the beats its observer saw (seen), the reference (ref) and the store
 * holds (got). */
typedef struct fixture {
    tt_record *r;
    tt_db d;
    ct_twin *t;
    tt_beats seen, ref, got;
} fixture;

/* observe 0: the twin has no observer; max_pending_beats 0: the default. */
static void fixture_open(fixture *f, const char *record, int observe, size_t max_pending_beats)
{
    memset(f, 0, sizeof *f);
    f->r = tt_load(record);
    tt_db_open(&f->d);
    f->t = twin_new(&f->d, observe ? &f->seen : NULL, max_pending_beats);
}

static void fixture_close(fixture *f)
{
    tt_beats_free(&f->seen);
    tt_beats_free(&f->ref);
    tt_beats_free(&f->got);
    ct_twin_free(f->t);
    tt_db_close(&f->d);
    tt_unload(f->r);
}

/* Observation k (10 s from sample k * OBS on) of the fixture's record. */
static int obs_k(fixture *f, const char *patient, int64_t k, ct_twin_ingest_result *res, ct_error *err)
{
    char id[64];
    snprintf(id, sizeof id, "%s-%lld", patient, (long long)k);
    return tt_ingest(f->t, f->d.st, f->r, patient, id, k * OBS, OBS, TT_T0_MS + k * OBS * 1000 / FS, res, err);
}

/* Ends the patient's stream (the detector gives what it still holds) and
 * checks that the store has exactly the beats the observer saw. */
static void end_and_check(fixture *f, const char *patient, const char *what)
{
    ct_error err;
    assert_int_equal(ct_twin_stream_end(f->t, f->d.st, patient, &err), 0);
    stored_beats(f->d.st, patient, 1, &f->got);
    check_same(what, &f->got, &f->seen);
}

/* From here the store refuses every beat, until heal_beats. */
static void fail_beats(tt_db *d)
{
    tt_exec(d, "CREATE TRIGGER fail_beat BEFORE INSERT ON twin_beat BEGIN"
               " SELECT RAISE(ABORT, 'injected failure'); END");
}

static void heal_beats(tt_db *d)
{
    tt_exec(d, "DROP TRIGGER fail_beat");
}

static void test_record_106_stored(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "106", 1, 0);
    /* Each call stores the beats it found, at once. */
    size_t found = 0, stored = 0;
    const int64_t n_obs = (f.r->sig.n_samples + OBS - 1) / OBS;
    for (int64_t k = 0; k < n_obs; k++) {
        ct_twin_ingest_result res;
        ct_error err;
        char id[64];
        snprintf(id, sizeof id, "o106-%lld", (long long)k);
        int64_t from = k * OBS;
        size_t n = (size_t)(from + OBS <= f.r->sig.n_samples ? OBS : f.r->sig.n_samples - from);
        if (tt_ingest(f.t, f.d.st, f.r, "mitdb-106", id, from, n, TT_T0_MS + from * 1000 / FS, &res, &err) != 0)
            fail_msg("%s: %s", id, err.msg);
        assert_int_equal(res.report_error, 0);
        assert_int_equal(res.beats_stored, res.beats);
        assert_int_equal(res.beats_pending, 0);
        found += res.beats;
        stored += res.beats_stored;
        assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_beat"), (int64_t)stored);
    }
    assert_int_equal(found, f.seen.n);
    ct_error err;
    assert_int_equal(ct_twin_stream_end(f.t, f.d.st, "mitdb-106", &err), 0);
    reference_beats(f.r, &f.ref);
    stored_beats(f.d.st, "mitdb-106", 1, &f.got);
    /* Whatever the detector still held came out when the stream ended. */
    assert_true(f.got.n >= found);
    check_same("106 stored vs detect", &f.got, &f.ref);
    check_same("106 stored vs observer", &f.got, &f.seen);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_beat WHERE cls = 'V'"),
                     tt_count(&f.d, "SELECT count(*) FROM twin_beat WHERE cls = 'V' AND hr_dbpm > 0"));
    assert_true(tt_count(&f.d, "SELECT count(*) FROM twin_beat WHERE cls = 'V'") > 400);
    fixture_close(&f);
}

/* Another lead set ends the stream as ct_twin_stream_end does: how a
 * client that can only post Observations makes the detector finish. */
static void test_ended_by_new_leads(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "100", 0, 0);
    tt_stream(f.t, f.d.st, f.r, "mitdb-100", "o100", f.r->sig.n_samples);
    ct_fhir_ecg e;
    int64_t end_ms = TT_T0_MS + f.r->sig.n_samples * 1000 / FS + 1000;
    tt_observation(f.r, "mitdb-100", 0, 360, end_ms, NULL, 0, 1, &e);
    ct_twin_ingest_result res;
    ct_error err;
    assert_int_equal(ct_twin_ingest_ecg(f.t, f.d.st, &e, "o100-one-lead", &res, &err), 0);
    ct_fhir_ecg_free(&e);
    assert_int_equal(res.verdict, CT_TWIN_STARTED);
    assert_int_equal(res.stream_seq, 2);
    assert_int_equal(res.beats_pending, 0);
    reference_beats(f.r, &f.ref);
    stored_beats(f.d.st, "mitdb-100", 1, &f.got);
    check_same("100 stored vs detect", &f.got, &f.ref);
    fixture_close(&f);
}

/* The store refuses the beats for a while: none is lost, none doubled. */
static void test_store_failure(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "100", 1, 0);
    ct_twin_ingest_result res;
    ct_error err;
    int64_t k = 0;
    for (; k < 3; k++)
        assert_int_equal(obs_k(&f, "p100", k, &res, &err), 0);
    const int64_t before = tt_count(&f.d, "SELECT count(*) FROM twin_beat");
    assert_true(before > 20);
    fail_beats(&f.d);
    size_t waiting = 0;
    for (; k < 9; k++) {
        /* The ECG is taken; its beats wait. */
        assert_int_equal(obs_k(&f, "p100", k, &res, &err), 0);
        assert_int_equal(res.verdict, CT_TWIN_APPENDED);
        assert_int_equal(res.report_error, CT_EDB);
        assert_non_null(strstr(res.report_error_msg, "injected failure"));
        assert_non_null(strstr(res.report_error_msg, "beats (kept for the next call)"));
        assert_int_equal(res.beats_stored, 0);
        waiting += res.beats;
        assert_int_equal(res.beats_pending, waiting);
        assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_beat"), before);
    }
    print_message("%zu beats waited for the store: %s\n", waiting, res.report_error_msg);
    ct_twin_live v;
    assert_int_equal(ct_twin_live_read(f.t, "p100", 1, &v, &err), 0);
    assert_int_equal(v.beats_pending, waiting);
    ct_twin_live_free(&v);
    size_t pending = 0;
    assert_int_equal(ct_twin_flush(f.t, f.d.st, &pending, &err), CT_EDB);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_beat"), before);

    /* The store recovers: a flush stores every one, once. */
    heal_beats(&f.d);
    assert_int_equal(ct_twin_flush(f.t, f.d.st, &pending, &err), 0);
    assert_int_equal(tt_count(&f.d, "SELECT count(*) FROM twin_beat"), before + (int64_t)waiting);
    /* Then it fails again; the next Observation after it stores the rest. */
    fail_beats(&f.d);
    assert_int_equal(obs_k(&f, "p100", k++, &res, &err), 0);
    assert_true(res.beats_pending > 0);
    heal_beats(&f.d);
    assert_int_equal(obs_k(&f, "p100", k++, &res, &err), 0);
    assert_int_equal(res.report_error, 0);
    assert_int_equal(res.beats_pending, 0);
    assert_true(res.beats_stored > res.beats);
    for (; k < 30; k++)
        assert_int_equal(obs_k(&f, "p100", k, &res, &err), 0);
    end_and_check(&f, "p100", "stored after failures vs observer");
    fixture_close(&f);
}

/* max_pending_beats: past it, ECG waits (503) instead of the queue growing. */
static void test_pending_bound(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "100", 1, 1000);
    fail_beats(&f.d);
    ct_twin_ingest_result res;
    ct_error err;
    int64_t k = 0;
    int rc = 0;
    for (; k < 200 && rc == 0; k++)
        rc = obs_k(&f, "p100", k, &res, &err);
    assert_int_equal(rc, CT_ELIMIT);
    print_message("refused at Observation %lld: %s\n", (long long)(k - 1), err.msg);
    assert_non_null(strstr(err.msg, "beats are waiting for the database"));
    assert_non_null(strstr(err.msg, "injected failure"));
    assert_true(f.seen.n >= 1000 && f.seen.n < 1000 + 40);
    /* Nothing of the refused Observation was taken. */
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM twin_source WHERE observation_id = 'p100-%lld'", (long long)(k - 1));
    assert_int_equal(tt_count(&f.d, sql), 0);
    heal_beats(&f.d);
    /* The same Observation again: the queue is written first, then it is taken. */
    assert_int_equal(obs_k(&f, "p100", k - 1, &res, &err), 0);
    assert_int_equal(res.beats_pending, 0);
    end_and_check(&f, "p100", "stored after the bound vs observer");
    fixture_close(&f);
}

/* A restart: the stream is restored and goes on; beats stored before stay,
 * later ones are added once, into the same stream. */
static void test_restart(void **state)
{
    (void)state;
    fixture f;
    fixture_open(&f, "100", 1, 0);
    ct_twin_ingest_result res;
    ct_error err;
    int64_t k = 0;
    for (; k < 12; k++)
        assert_int_equal(obs_k(&f, "p100", k, &res, &err), 0);
    const int64_t first = tt_count(&f.d, "SELECT count(*) FROM twin_beat");
    assert_int_equal(first, (int64_t)f.seen.n);
    ct_twin_free(f.t);
    f.t = twin_new(&f.d, &f.seen, 0);
    for (; k < 24; k++) {
        assert_int_equal(obs_k(&f, "p100", k, &res, &err), 0);
        assert_int_equal(res.stream_seq, 1);
    }
    /* The restarted detector relearns for two seconds: fewer beats than an
     * uninterrupted run, but each one seen is stored once, in order. */
    end_and_check(&f, "p100", "stored across a restart vs observer");
    assert_true((int64_t)f.got.n > first + 100);
    assert_int_equal(tt_count(&f.d, "SELECT count(DISTINCT stream_id) FROM twin_beat"), 1);
    fixture_close(&f);
}

static void test_option_bounds(void **state)
{
    (void)state;
    tt_db d;
    tt_db_open(&d);
    ct_twin_options o;
    ct_twin *t = NULL;
    ct_error err;
    ct_twin_options_default(&o);
    assert_int_equal(o.max_pending_beats, 20000);
    o.max_pending_beats = 999;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "max_pending_beats 999 is outside 1000..1000000"));
    o.max_pending_beats = 1000001;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), CT_EINVAL);
    assert_null(t);
    tt_db_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_106_stored),
        cmocka_unit_test(test_ended_by_new_leads),
        cmocka_unit_test(test_store_failure),
        cmocka_unit_test(test_pending_bound),
        cmocka_unit_test(test_restart),
        cmocka_unit_test(test_option_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
