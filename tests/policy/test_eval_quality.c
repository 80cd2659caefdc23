/* Tests of signal quality in the evaluator: signal loss after its delay,
 * rhythm alerts suppressed (and open ones frozen, not cleared) while the
 * signal cannot be analysed, one clean lead being enough, asystole armed on a
 * flat line; and the evaluator's edges: finish, the open-alert snapshot, the
 * one-line description, and arguments it must refuse. */
#include "policy_test_util.h"

static void test_signal_loss(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    int64_t off = s.t + 1;
    sim_event(&s, CT_EVENT_QUALITY, off, -1, -1, "lead-off");
    /* What the detector finds in a disconnected lead is not a rhythm: a
     * burst of fast "beats", then nothing for 12 s. */
    sim_for(&s, 20, RR_BPM(150));
    sim_advance(&s, s.t + SEC(12));
    int64_t on = s.t + SEC(12);
    sim_event(&s, CT_EVENT_QUALITY, on, -1, -1, "ok");
    s.t = on;
    sim_for(&s, 30, RR_BPM(70));

    assert_int_equal(s.rec->n, 2);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_SIGNAL_LOSS, CT_POLICY_RAISED, 0);
    assert_int_equal(r->onset_sample, off);
    assert_int_equal(r->sample, off + SEC(10));
    assert_int_equal(r->priority, CT_POLICY_MEDIUM);
    assert_string_equal(r->values.quality, "lead-off");
    assert_true(r->threshold == 0);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_SIGNAL_LOSS, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->end_sample, on);
    assert_int_equal(c->sample, on + SEC(10));
    sim_close(&s);

    /* Shorter than the onset delay: nothing. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_event(&s, CT_EVENT_QUALITY, s.t + 1, -1, -1, "noise");
    sim_advance(&s, s.t + SEC(9));
    sim_event(&s, CT_EVENT_QUALITY, s.t + SEC(9), -1, -1, "ok");
    s.t += SEC(9);
    sim_for(&s, 30, RR_BPM(70));
    assert_int_equal(s.rec->n, 0);
    sim_close(&s);
}

/* One clean lead is enough for the detector: signal is lost only when every
 * lead is bad. An unknown quality label counts as noise. */
static void test_signal_loss_needs_every_lead(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_event(&s, CT_EVENT_QUALITY, s.t + 1, -1, 0, "lead-off");
    sim_for(&s, 30, RR_BPM(70));
    assert_int_equal(s.rec->n, 0);
    int64_t both = s.t + 1;
    sim_event(&s, CT_EVENT_QUALITY, both, -1, 1, "saturated");
    sim_advance(&s, both + SEC(20));
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_SIGNAL_LOSS, CT_POLICY_RAISED, 0);
    assert_int_equal(r->sample, both + SEC(10));
    assert_string_equal(r->values.quality, "noise"); /* the better of lead-off and noise */
    sim_close(&s);

    /* An episode delivered closed (end_sample set) ends at its end. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    int64_t a = s.t + 1;
    sim_event(&s, CT_EVENT_QUALITY, a, a + SEC(15), -1, "noise");
    sim_advance(&s, a + SEC(40));
    assert_int_equal(rec_get(s.rec, CT_POLICY_SIGNAL_LOSS, CT_POLICY_RAISED, 0)->sample, a + SEC(10));
    assert_int_equal(rec_get(s.rec, CT_POLICY_SIGNAL_LOSS, CT_POLICY_CLEARED, 0)->sample, a + SEC(25));
    sim_close(&s);
}

/* No rhythm alert while the signal is bad, whatever the beats say. */
static void test_no_rhythm_alerts_during_lead_off(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, "{\"version\":1,\"rules\":{\"signal_loss\":{\"enabled\":false}}}", NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_event(&s, CT_EVENT_QUALITY, s.t + 1, -1, -1, "lead-off");
    sim_for(&s, 60, RR_BPM(160));
    sim_beats(&s, 10, RR_BPM(180), CT_BEAT_V);
    for (int i = 0; i < 30; i++) {
        sim_beats(&s, 2, RR_BPM(75), CT_BEAT_N);
        sim_beat(&s, RR_BPM(75), CT_BEAT_V);
    }
    sim_event(&s, CT_EVENT_RHYTHM, s.t + 1, -1, -1, "(AFIB");
    sim_for(&s, 40, RR_BPM(40));
    sim_beat(&s, SEC(5), CT_BEAT_N);
    sim_advance(&s, s.t + SEC(30));
    assert_int_equal(s.rec->n, 0);
    sim_close(&s);

    /* Noise suppresses just the same; and when it ends, the AF that is
     * still going on is timed from the return of the signal. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_event(&s, CT_EVENT_QUALITY, s.t + 1, -1, -1, "noise");
    sim_event(&s, CT_EVENT_RHYTHM, s.t + 2, -1, -1, "(AFIB");
    sim_for(&s, 40, RR_BPM(140));
    int64_t back = s.t + 1;
    sim_event(&s, CT_EVENT_QUALITY, back, -1, -1, "ok");
    sim_for(&s, 40, RR_BPM(70));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, 0), 0);
    const ct_policy_alert *af = rec_get(s.rec, CT_POLICY_AFIB, CT_POLICY_RAISED, 0);
    assert_int_equal(af->onset_sample, back);
    assert_int_equal(af->sample, back + SEC(30));
    sim_close(&s);
}

/* An open alert is frozen while the signal is lost: it is cleared only once
 * the patient is seen to recover. */
static void test_open_alert_frozen_during_loss(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 30, RR_BPM(140));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED), 1);
    int64_t off = s.t + 1;
    sim_event(&s, CT_EVENT_QUALITY, off, -1, -1, "lead-off");
    sim_advance(&s, off + SEC(120));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_CLEARED), 0);
    int64_t on = off + SEC(120);
    sim_event(&s, CT_EVENT_QUALITY, on, -1, -1, "ok");
    s.t = on;
    int from = s.n_beats;
    sim_for(&s, 30, RR_BPM(70));
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_CLEARED, 0);
    /* The rate is known again at the fifth beat with an RR interval that
     * lies wholly after the 2 s the detector spends relearning. */
    int k = from;
    while (s.beats[k] < on + SEC(2))
        k++;
    assert_int_equal(c->end_sample, s.beats[k + 4]);
    assert_int_equal(c->sample, s.beats[k + 4] + SEC(10));
    /* Signal loss came and went around it. */
    assert_int_equal(rec_count(s.rec, CT_POLICY_SIGNAL_LOSS, CT_POLICY_RAISED), 1);
    sim_close(&s);
}

/* A flat line may be asystole: the asystole rule stays armed (and signal
 * loss raises too, since a flat line may also be a lead off). */
static void test_flat_line(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    int64_t last = s.t;
    sim_event(&s, CT_EVENT_QUALITY, last + SEC(1), -1, -1, "flat");
    sim_advance(&s, last + SEC(15));
    const ct_policy_alert *a = rec_get(s.rec, CT_POLICY_ASYSTOLE, CT_POLICY_RAISED, 0);
    assert_int_equal(a->sample, last + SEC(4));
    assert_int_equal(a->priority, CT_POLICY_HIGH);
    const ct_policy_alert *l = rec_get(s.rec, CT_POLICY_SIGNAL_LOSS, CT_POLICY_RAISED, 0);
    assert_int_equal(l->sample, last + SEC(11));
    assert_string_equal(l->values.quality, "flat");
    sim_close(&s);

    /* Lead-off: no asystole, however long. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_event(&s, CT_EVENT_QUALITY, s.t + SEC(1), -1, -1, "lead-off");
    sim_advance(&s, s.t + SEC(60));
    assert_int_equal(rec_count(s.rec, CT_POLICY_ASYSTOLE, 0), 0);
    assert_int_equal(rec_count(s.rec, CT_POLICY_SIGNAL_LOSS, 0), 1);
    sim_close(&s);
}

/* At the start of a stream the detector learns for 2 s: no asystole then. */
static void test_stream_start(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_advance(&s, SEC(6) - 1);
    assert_int_equal(s.rec->n, 0);
    sim_advance(&s, SEC(7));
    const ct_policy_alert *a = rec_get(s.rec, CT_POLICY_ASYSTOLE, CT_POLICY_RAISED, 0);
    assert_int_equal(a->sample, SEC(2) + SEC(4));
    assert_int_equal(a->onset_sample, SEC(2));
    sim_close(&s);
}

static void test_finish_and_snapshot(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, "bed-7");
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 30, RR_BPM(140));
    sim_for(&s, 60, RR_BPM(40));
    ct_policy_alert open[CT_POLICY_N_RULES];
    size_t n = ct_policy_eval_open_alerts(s.ev, open, CT_POLICY_N_RULES);
    assert_int_equal(n, 1);
    assert_int_equal(open[0].rule, CT_POLICY_HR_LOW);
    assert_int_equal(open[0].transition, CT_POLICY_RAISED);
    assert_string_equal(open[0].patient_id, "bed-7");
    assert_int_equal(ct_policy_eval_open_alerts(s.ev, NULL, 0), 1);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_HR_LOW, CT_POLICY_RAISED, 0);
    assert_int_equal(open[0].id, r->id);

    int64_t end = s.t + 100;
    assert_int_equal(ct_policy_eval_finish(s.ev, end), 0);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_HR_LOW, CT_POLICY_CLEARED, 0);
    assert_int_equal(c->stream_ended, 1);
    assert_int_equal(c->end_sample, end);
    assert_int_equal(c->sample, end);
    assert_int_equal(ct_policy_eval_open_alerts(s.ev, open, CT_POLICY_N_RULES), 0);
    /* Nothing is accepted after the end. */
    ct_ecg_beat b = {.sample = end + 1000, .cls = CT_BEAT_N};
    assert_int_equal(ct_policy_eval_beat(s.ev, &b), CT_EINVAL);
    assert_int_equal(ct_policy_advance(s.ev, end + 2000), CT_EINVAL);
    assert_int_equal(ct_policy_eval_finish(s.ev, end + 2000), CT_EINVAL);
    sim_close(&s);
}

static void test_describe(void **state)
{
    (void)state;
    ct_policy_alert a;
    memset(&a, 0, sizeof a);
    a.fs_hz = FS;
    a.transition = CT_POLICY_RAISED;
    a.rule = CT_POLICY_HR_HIGH;
    a.threshold = 120;
    a.values.hr_bpm = 134.4;
    char buf[256];
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "Heart rate high: 134 bpm (limit 120 bpm)");
    a.rule = CT_POLICY_PAUSE;
    a.threshold = 3000;
    a.values.pause_ms = 3500;
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "Pause: 3.5 s without a beat (limit 3.0 s)");
    a.rule = CT_POLICY_VENTRICULAR_RUN;
    a.values.run_beats = 5;
    a.values.run_rate_bpm = 151;
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "Ventricular run: 5 beats at 151 bpm");
    a.rule = CT_POLICY_SIGNAL_LOSS;
    a.values.quality = "lead-off";
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "ECG signal lost (lead-off)");
    a.transition = CT_POLICY_CLEARED;
    a.rule = CT_POLICY_AFIB;
    a.worst.af_duration_s = 95;
    a.onset_sample = 0;
    a.end_sample = SEC(95);
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "Atrial fibrillation for 95 s; lasted 95 s");
    a.stream_ended = 1;
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "Atrial fibrillation for 95 s; still present when the stream ended, after 95 s");
    a.stream_ended = 0;
    a.transition = CT_POLICY_RAISED;
    a.rule = CT_POLICY_VENTRICULAR_RUN;
    a.values.rhythm = "(VFL";
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "Ventricular flutter or fibrillation");
    a.values.rhythm = "(VT";
    a.values.run_beats = 0;
    ct_policy_alert_describe(&a, buf, sizeof buf);
    assert_string_equal(buf, "Ventricular tachycardia");
}

static void test_refused_arguments(void **state)
{
    (void)state;
    ct_policy *p = policy_from(NULL);
    ct_policy_eval *e = NULL;
    ct_error err;
    ct_policy_eval_config cfg = {"x", 50.0, 2, 0};
    assert_int_equal(ct_policy_eval_new(p, &cfg, NULL, &e, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "sampling frequency 50 Hz"));
    assert_null(e);
    cfg.fs_hz = FS;
    cfg.n_leads = 13;
    assert_int_equal(ct_policy_eval_new(p, &cfg, NULL, &e, &err), CT_EINVAL);
    cfg.n_leads = 0;
    assert_int_equal(ct_policy_eval_new(p, &cfg, NULL, &e, &err), CT_EINVAL);
    cfg.n_leads = 2;
    cfg.start_sample = -1;
    assert_int_equal(ct_policy_eval_new(p, &cfg, NULL, &e, &err), CT_EINVAL);
    cfg.start_sample = 0;
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    cfg.patient_id = longid;
    assert_int_equal(ct_policy_eval_new(p, &cfg, NULL, &e, &err), CT_EINVAL);
    cfg.patient_id = NULL;
    /* No sink is allowed (the evaluator still runs). */
    assert_int_equal(ct_policy_eval_new(p, &cfg, NULL, &e, &err), 0);
    ct_ecg_beat b = {.sample = 1000, .cls = CT_BEAT_N};
    assert_int_equal(ct_policy_eval_beat(e, &b), 0);
    assert_int_equal(ct_policy_eval_beat(e, &b), CT_EINVAL); /* same sample again */
    b.sample = 999;
    assert_int_equal(ct_policy_eval_beat(e, &b), CT_EINVAL);
    b.sample = -5;
    assert_int_equal(ct_policy_eval_beat(e, &b), CT_EINVAL);
    assert_int_equal(ct_policy_eval_beat(e, NULL), CT_EINVAL);
    assert_int_equal(ct_policy_eval_beat(NULL, &b), CT_EINVAL);
    ct_ecg_event ev = {.kind = CT_EVENT_QUALITY, .sample = 2000, .end_sample = -1, .lead = 2};
    snprintf(ev.label, sizeof ev.label, "noise");
    assert_int_equal(ct_policy_eval_event(e, &ev), CT_EINVAL); /* 2 leads: 0 and 1 */
    ev.lead = -2;
    assert_int_equal(ct_policy_eval_event(e, &ev), CT_EINVAL);
    ev.lead = 1;
    assert_int_equal(ct_policy_eval_event(e, &ev), 0);
    /* A label that fills all 16 bytes without a NUL is read safely. */
    ev.kind = CT_EVENT_RHYTHM;
    memset(ev.label, 'A', sizeof ev.label);
    assert_int_equal(ct_policy_eval_event(e, &ev), 0);
    ev.kind = (ct_ecg_event_kind)99;
    assert_int_equal(ct_policy_eval_event(e, &ev), CT_EINVAL);
    ev.kind = CT_EVENT_PAUSE; /* measured from the beats instead */
    assert_int_equal(ct_policy_eval_event(e, &ev), 0);
    assert_int_equal(ct_policy_advance(e, -1), CT_EINVAL);
    assert_int_equal(ct_policy_advance(e, 10), 0); /* the past: nothing to do */
    assert_int_equal(ct_policy_advance(e, INT64_MAX), CT_EINVAL);
    ct_policy_eval_free(e);
    ct_policy_eval_free(NULL);
    ct_policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signal_loss),
        cmocka_unit_test(test_signal_loss_needs_every_lead),
        cmocka_unit_test(test_no_rhythm_alerts_during_lead_off),
        cmocka_unit_test(test_open_alert_frozen_during_loss),
        cmocka_unit_test(test_flat_line),
        cmocka_unit_test(test_stream_start),
        cmocka_unit_test(test_finish_and_snapshot),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_refused_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
