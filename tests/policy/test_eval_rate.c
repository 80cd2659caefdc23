/* Tests of the evaluator's heart-rate rules and of what holds for every rule:
 * raising after exactly the onset delay, clearing with hysteresis, no
 * flapping around a limit, escalation, per-patient overrides, disabled rules,
 * and the same alerts whatever the chunking of time. */
#include "policy_test_util.h"

static void test_hr_high_onset_and_clear(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, "p");
    sim_for(&s, 30, RR_BPM(70));
    int fast_from = s.n_beats;
    sim_for(&s, 30, RR_BPM(140));
    int slow_from = s.n_beats;
    sim_for(&s, 40, RR_BPM(70));

    assert_int_equal(s.rec->n, 2);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED, 0);
    int64_t onset = first_beat_where(&s, fast_from, 120, 1, 0);
    assert_int_equal(r->onset_sample, onset);
    assert_int_equal(r->sample, onset + SEC(10)); /* exactly the onset delay */
    assert_int_equal(r->priority, CT_POLICY_MEDIUM);
    assert_true(r->threshold == 120);
    assert_true(fabs(r->values.hr_bpm - 60.0 * FS / RR_BPM(140)) < 1e-9);
    assert_int_equal(r->end_sample, -1);
    assert_string_equal(r->patient_id, "p");
    assert_true(r->fs_hz == FS);

    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_CLEARED, 0);
    int64_t end = first_beat_where(&s, slow_from, 115, 0, 1);
    assert_int_equal(c->id, r->id);
    assert_int_equal(c->end_sample, end);
    assert_int_equal(c->sample, end + SEC(10));
    assert_int_equal(c->onset_sample, onset);
    assert_true(fabs(c->worst.hr_bpm - 60.0 * FS / RR_BPM(140)) < 1e-9);
    assert_int_equal(c->stream_ended, 0);
    sim_close(&s);
}

/* The condition must hold for the whole delay. Going from 70 to 140 bpm,
 * the median rate passes 120 at the 5th fast interval; coming back, it drops
 * below 120 at the 4th slow one. So 20 fast beats keep it above 120 for
 * 15 x 154 + 4 x 309 = 3546 samples (9.85 s): no alert; 21 fast beats, for
 * 3700 samples (10.3 s): an alert. */
static void excursion(int n_fast, int64_t want_samples, int want_alerts)
{
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    int from = s.n_beats;
    sim_beats(&s, n_fast, RR_BPM(140), CT_BEAT_N);
    int back = s.n_beats;
    sim_for(&s, 30, RR_BPM(70));
    int64_t above = first_beat_where(&s, from, 120, 1, 0);
    int64_t below = first_beat_where(&s, back, 120, 0, 1);
    assert_int_equal(below - above, want_samples);
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED), want_alerts);
    if (want_alerts)
        assert_int_equal(rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED, 0)->sample, above + SEC(10));
    sim_close(&s);
}

static void test_hr_high_short_excursion(void **state)
{
    (void)state;
    excursion(20, 3546, 0);
    excursion(21, 3700, 1);
}

static void test_hr_high_escalation(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 30, RR_BPM(140));
    int xfrom = s.n_beats;
    sim_for(&s, 30, RR_BPM(180));
    sim_for(&s, 40, RR_BPM(70));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, 0), 3);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED, 0);
    const ct_policy_alert *u = rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_UPDATED, 0);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_CLEARED, 0);
    assert_int_equal(r->priority, CT_POLICY_MEDIUM);
    int64_t xonset = first_beat_where(&s, xfrom, 150, 1, 0);
    assert_int_equal(u->sample, xonset + SEC(10));
    assert_int_equal(u->priority, CT_POLICY_HIGH);
    assert_true(u->threshold == 150);
    assert_int_equal(u->id, r->id);
    assert_int_equal(u->onset_sample, r->onset_sample);
    /* The priority stays up until the alert clears. */
    assert_int_equal(c->priority, CT_POLICY_HIGH);
    assert_true(fabs(c->worst.hr_bpm - 60.0 * FS / RR_BPM(180)) < 1e-9);
    sim_close(&s);

    /* Straight past the extreme limit: raised high, no update. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 30, RR_BPM(180));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, 0), 1);
    assert_int_equal(rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED, 0)->priority, CT_POLICY_HIGH);
    sim_close(&s);

    /* extreme_priority equal to priority: no escalation. */
    sim_open(&s, "{\"version\":1,\"rules\":{\"hr_high\":{\"extreme_priority\":\"medium\"}}}", NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 30, RR_BPM(140));
    sim_for(&s, 30, RR_BPM(180));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, 0), 1);
    assert_int_equal(rec_get(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED, 0)->priority, CT_POLICY_MEDIUM);
    sim_close(&s);
}

static void test_hr_low(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    int from = s.n_beats;
    sim_for(&s, 40, RR_BPM(45));
    int back = s.n_beats;
    sim_for(&s, 30, RR_BPM(70));
    assert_int_equal(s.rec->n, 2);
    const ct_policy_alert *r = rec_get(s.rec, CT_POLICY_HR_LOW, CT_POLICY_RAISED, 0);
    int64_t onset = first_beat_where(&s, from, 50, 0, 0);
    assert_int_equal(r->onset_sample, onset);
    assert_int_equal(r->sample, onset + SEC(10));
    assert_int_equal(r->priority, CT_POLICY_MEDIUM);
    const ct_policy_alert *c = rec_get(s.rec, CT_POLICY_HR_LOW, CT_POLICY_CLEARED, 0);
    int64_t end = first_beat_where(&s, back, 55, 1, 1);
    assert_int_equal(c->end_sample, end);
    assert_int_equal(c->sample, end + SEC(10));
    assert_true(fabs(c->worst.hr_bpm - 60.0 * FS / RR_BPM(45)) < 1e-9);
    sim_close(&s);

    /* Below the extreme limit: high priority. */
    sim_open(&s, NULL, NULL);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 40, RR_BPM(35));
    assert_int_equal(rec_get(s.rec, CT_POLICY_HR_LOW, CT_POLICY_RAISED, 0)->priority, CT_POLICY_HIGH);
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_LOW, CT_POLICY_UPDATED), 0);
    sim_close(&s);
}

/* A rate that hovers around the limit for three minutes. */
static void hover(sim *s)
{
    sim_for(s, 30, RR_BPM(70));
    for (int i = 0; i < 15; i++) {
        sim_for(s, 6, RR_BPM(117));
        sim_for(s, 6, RR_BPM(124));
    }
    sim_for(s, 40, RR_BPM(70));
}

static void test_hover_does_not_flap(void **state)
{
    (void)state;
    sim s;
    /* Default policy: no excursion lasts the 10 s onset delay. */
    sim_open(&s, NULL, NULL);
    hover(&s);
    assert_int_equal(s.rec->n, 0);
    sim_close(&s);

    /* Without an onset delay it raises once, and the 5 bpm hysteresis keeps
     * it from clearing until the rate really comes down. */
    sim_open(&s, "{\"version\":1,\"rules\":{\"hr_high\":{\"onset_delay_s\":0,\"clear_delay_s\":0}}}", NULL);
    hover(&s);
    assert_int_equal(s.rec->n, 2);
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED), 1);
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_CLEARED), 1);
    sim_close(&s);

    /* Hysteresis alone (clear delay 0) is enough, and so is the clear delay
     * alone (hysteresis 0): each keeps the alert from flapping. */
    sim_open(&s, "{\"version\":1,\"rules\":{\"hr_high\":{\"onset_delay_s\":0,\"clear_delay_s\":10,"
                 "\"clear_hysteresis_bpm\":0}}}", NULL);
    hover(&s);
    assert_int_equal(s.rec->n, 2);
    sim_close(&s);

    /* With neither, the same stream flaps: what the two are there for. */
    sim_open(&s, "{\"version\":1,\"rules\":{\"hr_high\":{\"onset_delay_s\":0,\"clear_delay_s\":0,"
                 "\"clear_hysteresis_bpm\":0}}}", NULL);
    hover(&s);
    assert_true(rec_count(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED) >= 14);
    sim_close(&s);
}

/* A stream that makes every rule raise at least once. */
static void scenario(sim *s)
{
    sim_for(s, 30, RR_BPM(70));
    sim_for(s, 30, RR_BPM(140));             /* hr_high */
    sim_for(s, 30, RR_BPM(70));
    sim_for(s, 30, RR_BPM(45));              /* hr_low */
    sim_for(s, 20, RR_BPM(70));
    sim_beat(s, SEC(3.5), CT_BEAT_N);        /* pause */
    sim_for(s, 10, RR_BPM(70));
    sim_beat(s, SEC(6), CT_BEAT_N);          /* asystole (and a pause) */
    sim_for(s, 20, RR_BPM(70));
    sim_beats(s, 5, RR_BPM(150), CT_BEAT_V); /* ventricular run */
    sim_for(s, 20, RR_BPM(70));
    for (int i = 0; i < 20; i++) {           /* PVC burden, 18.75 per minute */
        sim_beats(s, 3, RR_BPM(75), CT_BEAT_N);
        sim_beat(s, RR_BPM(75), CT_BEAT_V);
    }
    sim_for(s, 40, RR_BPM(70));
    sim_event(s, CT_EVENT_RHYTHM, s->t + 1, -1, -1, "(AFIB"); /* afib */
    sim_for(s, 40, RR_BPM(70));
    sim_event(s, CT_EVENT_RHYTHM, s->t + 1, -1, -1, "(N");
    sim_for(s, 70, RR_BPM(70));
    sim_event(s, CT_EVENT_QUALITY, s->t + 1, -1, -1, "lead-off"); /* signal_loss */
    sim_advance(s, s->t + SEC(20));
    sim_event(s, CT_EVENT_QUALITY, s->t + SEC(20), -1, -1, "ok");
    s->t += SEC(20);
    sim_for(s, 30, RR_BPM(70));
    assert_int_equal(ct_policy_eval_finish(s->ev, s->t + 1), 0);
}

static void test_every_rule_raises_and_clears(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    scenario(&s);
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        if (rec_count(s.rec, (ct_policy_rule)r, CT_POLICY_RAISED) < 1)
            fail_msg("rule %s never raised", ct_policy_rule_name((ct_policy_rule)r));
        /* Every alert raised is cleared by the patient, not by the end of the stream. */
        assert_int_equal(rec_count(s.rec, (ct_policy_rule)r, CT_POLICY_RAISED),
                         rec_count(s.rec, (ct_policy_rule)r, CT_POLICY_CLEARED));
        for (int i = 0; i < s.rec->n; i++)
            assert_int_equal(s.rec->a[i].stream_ended, 0);
    }
    /* One open alert per rule at a time: transitions alternate, ids pair up. */
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        int open = 0;
        uint64_t id = 0;
        for (int i = 0; i < s.rec->n; i++) {
            const ct_policy_alert *a = &s.rec->a[i];
            if ((int)a->rule != r)
                continue;
            if (a->transition == CT_POLICY_RAISED) {
                assert_int_equal(open, 0);
                open = 1;
                id = a->id;
            } else {
                assert_int_equal(open, 1);
                assert_int_equal(a->id, id);
                if (a->transition == CT_POLICY_CLEARED)
                    open = 0;
            }
        }
    }
    /* Transitions come in time order. */
    for (int i = 1; i < s.rec->n; i++)
        assert_true(s.rec->a[i].sample >= s.rec->a[i - 1].sample);
    sim_close(&s);
}

static void test_disabled_rules_never_raise(void **state)
{
    (void)state;
    char json[1024];
    int used = snprintf(json, sizeof json, "{\"version\":1,\"rules\":{");
    for (int r = 0; r < CT_POLICY_N_RULES; r++)
        used += snprintf(json + used, sizeof json - (size_t)used, "%s\"%s\":{\"enabled\":false}",
                         r ? "," : "", ct_policy_rule_name((ct_policy_rule)r));
    snprintf(json + used, sizeof json - (size_t)used, "}}");
    sim s;
    sim_open(&s, json, NULL);
    scenario(&s);
    assert_int_equal(s.rec->n, 0);
    sim_close(&s);

    /* One rule off: that rule is silent, the others are not. */
    for (int r = 0; r < CT_POLICY_N_RULES; r++) {
        snprintf(json, sizeof json, "{\"version\":1,\"rules\":{\"%s\":{\"enabled\":false}}}",
                 ct_policy_rule_name((ct_policy_rule)r));
        sim_open(&s, json, NULL);
        scenario(&s);
        for (int o = 0; o < CT_POLICY_N_RULES; o++) {
            int n = rec_count(s.rec, (ct_policy_rule)o, CT_POLICY_RAISED);
            if (o == r ? n != 0 : n == 0)
                fail_msg("with %s disabled, %s raised %d times", ct_policy_rule_name((ct_policy_rule)r),
                         ct_policy_rule_name((ct_policy_rule)o), n);
        }
        sim_close(&s);
    }
}

static int same_transitions(const rec *a, const rec *b)
{
    if (a->n != b->n)
        return 0;
    for (int i = 0; i < a->n; i++) {
        const ct_policy_alert *x = &a->a[i], *y = &b->a[i];
        if (x->transition != y->transition || x->rule != y->rule || x->id != y->id ||
            x->sample != y->sample || x->onset_sample != y->onset_sample ||
            x->end_sample != y->end_sample || x->priority != y->priority)
            return 0;
    }
    return 1;
}

/* Time comes from samples only: advancing every sample, every 97 samples or
 * never between beats gives the same transitions at the same samples. */
static void test_chunking_invariance(void **state)
{
    (void)state;
    sim a, b, c;
    sim_open(&a, NULL, NULL);
    scenario(&a);
    sim_open(&b, NULL, NULL);
    b.advance_step = 1;
    scenario(&b);
    sim_open(&c, NULL, NULL);
    c.advance_step = 97;
    scenario(&c);
    assert_true(a.rec->n > 10);
    assert_true(same_transitions(a.rec, b.rec));
    assert_true(same_transitions(a.rec, c.rec));
    sim_close(&a);
    sim_close(&b);
    sim_close(&c);
}

static void test_patient_override_applies_to_that_patient(void **state)
{
    (void)state;
    const char *pol = "{\"version\":1,\"patients\":{\"athlete\":{\"rules\":{\"hr_low\":{\"threshold_bpm\":38,"
                      "\"extreme_bpm\":30}}}}}";
    sim s;
    sim_open(&s, pol, "athlete");
    assert_true(ct_policy_eval_rules(s.ev)->hr_low.threshold_bpm == 38);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 60, RR_BPM(45));
    assert_int_equal(s.rec->n, 0);
    sim_close(&s);

    sim_open(&s, pol, "someone-else");
    assert_true(ct_policy_eval_rules(s.ev)->hr_low.threshold_bpm == 50);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 60, RR_BPM(45));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_LOW, CT_POLICY_RAISED), 1);
    sim_close(&s);
}

/* The evaluator copies its rules: the policy can go (a reload) while it runs. */
static void test_policy_freed_while_evaluating(void **state)
{
    (void)state;
    sim s;
    sim_open(&s, NULL, NULL);
    ct_policy_free(s.pol);
    s.pol = NULL;
    size_t bytes = ct_policy_eval_memory_bytes(s.ev);
    assert_true(bytes > 0 && bytes < 64 * 1024);
    sim_for(&s, 30, RR_BPM(70));
    sim_for(&s, 30, RR_BPM(140));
    assert_int_equal(rec_count(s.rec, CT_POLICY_HR_HIGH, CT_POLICY_RAISED), 1);
    assert_int_equal(ct_policy_eval_memory_bytes(s.ev), bytes);
    sim_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hr_high_onset_and_clear),
        cmocka_unit_test(test_hr_high_short_excursion),
        cmocka_unit_test(test_hr_high_escalation),
        cmocka_unit_test(test_hr_low),
        cmocka_unit_test(test_hover_does_not_flap),
        cmocka_unit_test(test_every_rule_raises_and_clears),
        cmocka_unit_test(test_disabled_rules_never_raise),
        cmocka_unit_test(test_chunking_invariance),
        cmocka_unit_test(test_patient_override_applies_to_that_patient),
        cmocka_unit_test(test_policy_freed_while_evaluating),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
