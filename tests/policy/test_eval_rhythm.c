/* Tests of the evaluator's rhythm rules on synthetic beat streams: pause,
 * asystole, ventricular runs, atrial fibrillation episodes and PVC burden,
 * each at, just below and just above its limit. */
#include "policy_test_util.h"

static void test_pause(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(70));
    int64_t before = s.t;
    sim_beat(&s, SEC(3.5), CT_BEAT_N);
    int64_t after = s.t;
    sim_for(&s, 40, RR_BPM(70));
    assert_int_equal(s.rec->n, 2);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_PAUSE, CT_POLICY_RAISED, 0);
    assert_int_equal(r->onset_sample, before);
    assert_int_equal(r->sample, after); /* when the pause is known to be one */
    assert_int_equal(r->priority, CT_POLICY_MEDIUM);
    assert_true(r->values.pause_ms == 3500);
    assert_true(r->threshold == 3000);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_PAUSE, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, after);
    assert_int_equal(c->sample, after + SEC(30));
    sim_close(&s);

    /* 2.5 s is not a pause; exactly 3 s is. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(70));
    sim_beat(&s, SEC(2.5), CT_BEAT_N);
    sim_for(&s, 10, RR_BPM(70));
    sim_beat(&s, SEC(3) - 1, CT_BEAT_N);
    sim_for(&s, 40, RR_BPM(70));
    assert_int_equal(s.rec->n, 0);
    sim_beat(&s, SEC(3), CT_BEAT_N);
    assert_int_equal(rec_count(s.rec, CT_POLICY_PAUSE, CT_POLICY_RAISED), 1);
    sim_close(&s);
}

/* Pauses that repeat inside the clear delay are one alert, not many. */
static void test_pause_repeats_extend_one_alert(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(70));
    for (int i = 0; i < 5; i++) {
        sim_beat(&s, SEC(3.2 + 0.1 * i), CT_BEAT_N);
        sim_for(&s, 20, RR_BPM(70));
    }
    int64_t last_pause_end = 0;
    for (int i = 1; i < s.n_beats; i++)
        if (s.beats[i] - s.beats[i - 1] >= SEC(3))
            last_pause_end = s.beats[i];
    sim_for(&s, 40, RR_BPM(70));
    assert_int_equal(rec_count(s.rec, CT_POLICY_PAUSE, CT_POLICY_RAISED), 1);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_PAUSE, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->sample, last_pause_end + SEC(30));
    assert_true(fabs(c->worst.pause_ms - 3600) < 1e-9);
    sim_close(&s);
}

static void test_asystole(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(70));
    int64_t last = s.t;
    sim_advance(&s, last + SEC(4) - 1);
    assert_int_equal(s.rec->n, 0);
    sim_advance(&s, last + SEC(9));
    assert_int_equal(s.rec->n, 1);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_ASYSTOLE, CT_POLICY_RAISED, 0);
    assert_int_equal(r->sample, last + SEC(4));
    assert_int_equal(r->onset_sample, last);
    assert_int_equal(r->priority, CT_POLICY_HIGH);
    assert_true(r->values.pause_ms == 4000);
    /* Beats resume after 10 s. */
    sim_beat(&s, SEC(10), CT_BEAT_N);
    int64_t resumed = s.t;
    sim_for(&s, 30, RR_BPM(70));
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_ASYSTOLE, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, resumed);
    assert_int_equal(c->sample, resumed + SEC(10));
    assert_true(c->worst.pause_ms == 10000);
    /* The 10 s gap is also a pause, reported when it ended. */
    const ct_policy_alert *p = rec_get(s.rec, CT_POLICY_PAUSE, CT_POLICY_RAISED, 0);
    assert_int_equal(p->sample, resumed);
    assert_true(p->values.pause_ms == 10000);
    /* The heart rate was unknown during the gap, not "low". */
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_LOW, 0), 0);
    sim_close(&s);

    /* Without advance calls, the next beat brings the same alert at the same sample. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(70));
    last = s.t;
    sim_beat(&s, SEC(10), CT_BEAT_N);
    r = rec_get(s.rec, CT_POLICY_ASYSTOLE, CT_POLICY_RAISED, 0);
    assert_int_equal(r->sample, last + SEC(4));
    sim_close(&s);
}

static void test_ventricular_run(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(75));
    sim_beats(&s, 2, RR_BPM(150), CT_BEAT_V);
    int64_t first_v = s.beats[s.n_beats - 2];
    assert_int_equal(s.rec->n, 0); /* a couplet is not a run */
    sim_beat(&s, RR_BPM(150), CT_BEAT_V);
    int64_t third_v = s.t;
    assert_int_equal(s.rec->n, 1);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_RAISED, 0);
    assert_int_equal(r->priority, CT_POLICY_HIGH);
    assert_int_equal(r->sample, third_v);
    assert_int_equal(r->onset_sample, first_v);
    assert_int_equal(r->values.run_beats, 3);
    assert_true(fabs(r->values.run_rate_bpm - 150) < 1e-9);
    /* The run goes on, then a second one 10 s later: still one alert. */
    sim_beats(&s, 3, RR_BPM(150), CT_BEAT_V);
    sim_beat(&s, RR_BPM(75), CT_BEAT_N);
    sim_for(&s, 10, RR_BPM(75));
    sim_beats(&s, 4, RR_BPM(160), CT_BEAT_V);
    sim_beat(&s, RR_BPM(75), CT_BEAT_N);
    int64_t ended = s.t;
    sim_for(&s, 40, RR_BPM(75));
    assert_int_equal(rec_count(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_RAISED), 1);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, ended);
    assert_int_equal(c->sample, ended + SEC(30));
    assert_int_equal(c->worst.run_beats, 6);
    assert_true(fabs(c->worst.run_rate_bpm - 60.0 * FS / RR_BPM(160)) < 1e-9);
    sim_close(&s);

    /* Three V beats slower than 100 bpm are not a run (idioventricular). */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(75));
    sim_beats(&s, 6, RR_BPM(90), CT_BEAT_V);
    sim_for(&s, 10, RR_BPM(75));
    assert_int_equal(rec_count(s.rec, CT_POLICY_VENTRICULAR_RUN, 0), 0);
    sim_close(&s);

    /* min_beats 5 from the policy: four V beats do nothing, five raise. */
    sim_open(&s, "{\"version\":1,\"rules\":{\"ventricular_run\":{\"min_beats\":5}}}", NULL);
    sim_for(&s, 20, RR_BPM(75));
    sim_beats(&s, 4, RR_BPM(150), CT_BEAT_V);
    sim_beat(&s, RR_BPM(75), CT_BEAT_N);
    assert_int_equal(s.rec->n, 0);
    sim_beats(&s, 5, RR_BPM(150), CT_BEAT_V);
    assert_int_equal(rec_count(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_RAISED), 1);
    sim_close(&s);
}

/* A rhythm analysis that labels ventricular tachycardia raises the same rule. */
static void test_vt_episode(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(75));
    int64_t vt = s.t + 1;
    sim_event(&s, CT_EVENT_RHYTHM, vt, -1, -1, "(VT");
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_RAISED, 0);
    assert_int_equal(r->onset_sample, vt);
    assert_int_equal(r->priority, CT_POLICY_HIGH);
    sim_for(&s, 20, RR_BPM(75));
    int64_t n = s.t + 1;
    sim_event(&s, CT_EVENT_RHYTHM, n, -1, -1, "(N");
    sim_for(&s, 40, RR_BPM(75));
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, n);
    assert_int_equal(c->sample, n + SEC(30));
    sim_close(&s);
}

/* Ventricular flutter has no QRS complexes: it is reported as what it is,
 * at high priority, and not as asystole or a pause. */
static void test_ventricular_flutter(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(75));
    int64_t last = s.t;
    int64_t vf = s.t + SEC(0.5);
    sim_event(&s, CT_EVENT_RHYTHM, vf, -1, -1, "(VFL");
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_RAISED, 0);
    assert_int_equal(r->sample, vf);
    assert_int_equal(r->priority, CT_POLICY_HIGH);
    assert_string_equal(r->values.rhythm, "(VFL");
    sim_advance(&s, last + SEC(20));
    int64_t vf_end = last + SEC(20);
    sim_event(&s, CT_EVENT_RHYTHM, vf_end, -1, -1, "(N");
    s.t = vf_end;
    sim_for(&s, 60, RR_BPM(75));
    assert_int_equal(rec_count(s.rec, CT_POLICY_ASYSTOLE, 0), 0);
    assert_int_equal(rec_count(s.rec, CT_POLICY_PAUSE, 0), 0);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, vf_end);
    assert_int_equal(c->sample, vf_end + SEC(30));
    assert_string_equal(c->worst.rhythm, "(VFL");
    /* After the episode, a gap is timed again, from the episode's end at the earliest. */
    int64_t quiet = s.t;
    sim_advance(&s, quiet + SEC(5));
    assert_int_equal(rec_get(s.rec, CT_POLICY_ASYSTOLE, CT_POLICY_RAISED, 0)->sample, quiet + SEC(4));
    sim_close(&s);

    /* Without the episode, the same silence is asystole. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(75));
    last = s.t;
    sim_advance(&s, last + SEC(20));
    assert_int_equal(rec_get(s.rec, CT_POLICY_ASYSTOLE, CT_POLICY_RAISED, 0)->sample, last + SEC(4));
    assert_int_equal(rec_count(s.rec, CT_POLICY_VENTRICULAR_RUN, 0), 0);
    sim_close(&s);
}

static void test_afib(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(70));
    /* 20 s of AF: shorter than the 30 s minimum. */
    sim_event(&s, CT_EVENT_RHYTHM, s.t + 1, -1, -1, "(AFIB");
    sim_for(&s, 20, RR_BPM(70));
    sim_event(&s, CT_EVENT_RHYTHM, s.t + 1, -1, -1, "(N");
    sim_for(&s, 30, RR_BPM(70));
    assert_int_equal(s.rec->n, 0);
    /* 45 s of AF. */
    int64_t onset = s.t + 1;
    sim_event(&s, CT_EVENT_RHYTHM, onset, -1, -1, "(AFIB");
    sim_for(&s, 45, RR_BPM(70));
    int64_t end = s.t + 1;
    sim_event(&s, CT_EVENT_RHYTHM, end, -1, -1, "(N");
    sim_for(&s, 70, RR_BPM(70));
    assert_int_equal(s.rec->n, 2);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_AFIB, CT_POLICY_RAISED, 0);
    assert_int_equal(r->onset_sample, onset);
    assert_int_equal(r->sample, onset + SEC(30));
    assert_int_equal(r->priority, CT_POLICY_MEDIUM);
    assert_true(fabs(r->values.af_duration_s - 30) < 1e-9);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_AFIB, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, end);
    assert_int_equal(c->sample, end + SEC(60));
    assert_true(fabs(c->worst.af_duration_s - (double)(end - onset) / FS) < 1e-9);
    sim_close(&s);

    /* An episode delivered whole (end_sample set) counts by its length. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 60, RR_BPM(70));
    sim_event(&s, CT_EVENT_RHYTHM, s.t - SEC(50), s.t - SEC(30), -1, "(AFIB");
    assert_int_equal(s.rec->n, 0);
    int64_t whole = s.t - SEC(45);
    sim_event(&s, CT_EVENT_RHYTHM, whole, s.t - SEC(5), -1, "(AFIB");
    r = rec_get(s.rec, CT_POLICY_AFIB, CT_POLICY_RAISED, 0);
    assert_int_equal(r->onset_sample, whole);
    assert_int_equal(r->sample, s.t);
    assert_true(fabs(r->values.af_duration_s - 40) < 1e-9);
    int64_t whole_end = s.t - SEC(5);
    sim_for(&s, 70, RR_BPM(70));
    c = rec_get(s.rec, CT_POLICY_AFIB, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->sample, whole_end + SEC(60));
    sim_close(&s);

    /* The open episode closed by its own event with end_sample. */
    sim_open(&s, "{\"version\":1,\"rules\":{\"afib\":{\"min_duration_s\":10,\"clear_delay_s\":5}}}", NULL);
    sim_for(&s, 20, RR_BPM(70));
    onset = s.t + 1;
    sim_event(&s, CT_EVENT_RHYTHM, onset, -1, -1, "(AFIB");
    sim_for(&s, 15, RR_BPM(70));
    sim_event(&s, CT_EVENT_RHYTHM, onset, s.t, -1, "(AFIB");
    end = s.t;
    sim_for(&s, 10, RR_BPM(70));
    assert_int_equal(rec_get(s.rec, CT_POLICY_AFIB, CT_POLICY_RAISED, 0)->sample, onset + SEC(10));
    assert_int_equal(rec_get(s.rec, CT_POLICY_AFIB, CT_POLICY_CLEARED, 0)->sample, end + SEC(5));
    sim_close(&s);
}

/* Every fourth beat a V beat at 75 bpm: 18.75 PVCs per minute. */
static void pvc_phase(sim *s, int cycles, int64_t *v, int *nv)
{
    for (int i = 0; i < cycles; i++) {
        sim_beats(s, 3, RR_BPM(75), CT_BEAT_N);
        sim_beat(s, RR_BPM(75), CT_BEAT_V);
        v[(*nv)++] = s->t;
    }
}

static void test_pvc_burden(void **state)
{
    (void)state;
    int64_t v[64];
    int nv = 0;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(75));
    pvc_phase(&s, 40, v, &nv);
    sim_for(&s, 120, RR_BPM(75));
    assert_int_equal(s.rec->n, 2);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_PVC_BURDEN, CT_POLICY_RAISED, 0);
    /* The eleventh PVC in a minute is the one over the limit of 10. */
    assert_int_equal(r->sample, v[10]);
    assert_int_equal(r->onset_sample, v[10]);
    assert_true(r->values.pvc_per_min == 11);
    assert_int_equal(r->priority, CT_POLICY_LOW);
    /* Clear below 10 - 2 per minute, held 30 s: once v[nv-9] leaves the window. */
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_PVC_BURDEN, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, v[nv - 9] + SEC(60));
    assert_int_equal(c->sample, v[nv - 9] + SEC(60) + SEC(30));
    assert_true(c->worst.pvc_per_min >= 18 && c->worst.pvc_per_min <= 19);
    sim_close(&s);

    /* A patient whose limit is 20 per minute gets nothing from the same stream. */
    const char *pol = "{\"version\":1,\"patients\":{\"mitdb-106\":{\"rules\":{\"pvc_burden\":{\"threshold_per_min\":20}}}}}";
    nv = 0;
    sim_open(&s, pol, "mitdb-106");
    sim_for(&s, 20, RR_BPM(75));
    pvc_phase(&s, 40, v, &nv);
    assert_int_equal(s.rec->n, 0);
    sim_close(&s);
    nv = 0;
    sim_open(&s, pol, "mitdb-100");
    sim_for(&s, 20, RR_BPM(75));
    pvc_phase(&s, 40, v, &nv);
    assert_int_equal(rec_count(s.rec, CT_POLICY_PVC_BURDEN, CT_POLICY_RAISED), 1);
    sim_close(&s);

    /* A window of 30 s counts per minute as twice the count; with an onset delay. */
    nv = 0;
    sim_open(&s, "{\"version\":1,\"rules\":{\"pvc_burden\":{\"window_s\":30,\"onset_delay_s\":5}}}", NULL);
    sim_for(&s, 20, RR_BPM(75));
    pvc_phase(&s, 20, v, &nv);
    r = rec_get(s.rec, CT_POLICY_PVC_BURDEN, CT_POLICY_RAISED, 0);
    assert_int_equal(r->onset_sample, v[5]); /* 6 in 30 s = 12 per minute */
    assert_int_equal(r->sample, v[5] + SEC(5));
    sim_close(&s);
}

/* V beats faster than the window was sized for (300 bpm) saturate the count
 * instead of overrunning it. */
static void test_pvc_window_saturates(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 20, RR_BPM(75));
    sim_beats(&s, 600, RR_BPM(400), CT_BEAT_V);
    ct_policy_alert open[CT_POLICY_N_RULES];
    size_t n = ct_policy_eval_open_alerts(s.ev, open, CT_POLICY_N_RULES);
    int found = 0;
    for (size_t i = 0; i < n; i++)
        if (open[i].rule == CT_POLICY_PVC_BURDEN) {
            found = 1;
            assert_true(open[i].values.pvc_per_min == 301);
            assert_true(open[i].worst.pvc_per_min == 301);
        }
    assert_true(found);
    sim_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pause),
        cmocka_unit_test(test_pause_repeats_extend_one_alert),
        cmocka_unit_test(test_asystole),
        cmocka_unit_test(test_ventricular_run),
        cmocka_unit_test(test_vt_episode),
        cmocka_unit_test(test_ventricular_flutter),
        cmocka_unit_test(test_afib),
        cmocka_unit_test(test_pvc_burden),
        cmocka_unit_test(test_pvc_window_saturates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
