/* Helpers for the policy tests: a sink that records every alert transition,
 * and a synthetic patient that emits beats at chosen RR intervals (in
 * samples, so that every expected instant is exact). */
#ifndef CT_POLICY_TEST_UTIL_H
#define CT_POLICY_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/policy.h"

#define FS 360.0
#define SEC(x) ((int64_t)((x) * 360.0 + 0.5))
/* RR interval in samples for a rate in beats per minute. */
#define RR_BPM(bpm) ((int64_t)(60.0 * 360.0 / (bpm) + 0.5))
#define REC_MAX 4096

typedef struct rec {
    ct_policy_alert a[REC_MAX];
    int n;
} rec;

static inline void rec_sink(void *ctx, const ct_policy_alert *a)
{
    rec *r = ctx;
    if (r->n >= REC_MAX)
        fail_msg("more than %d alert transitions", REC_MAX);
    r->a[r->n++] = *a;
}

static inline int rec_count(const rec *r, ct_policy_rule rule, ct_policy_transition t)
{
    int n = 0;
    for (int i = 0; i < r->n; i++)
        if (r->a[i].rule == rule && (t == 0 || r->a[i].transition == t))
            n++;
    return n;
}

/* The nth (0-based) transition t of a rule; fails the test if absent. */
static inline const ct_policy_alert *rec_get(const rec *r, ct_policy_rule rule,
                                             ct_policy_transition t, int nth)
{
    for (int i = 0; i < r->n; i++)
        if (r->a[i].rule == rule && r->a[i].transition == t && nth-- == 0)
            return &r->a[i];
    fail_msg("no transition %d of rule %s", (int)t, ct_policy_rule_name(rule));
    return NULL;
}

static inline ct_policy *policy_from(const char *json)
{
    ct_policy *p = NULL;
    ct_error err;
    ct_error_clear(&err);
    int rc = json ? ct_policy_parse(json, strlen(json), "test.json", &p, &err)
                  : ct_policy_load_default(&p, &err);
    if (rc != 0)
        fail_msg("policy refused: %s", err.msg);
    return p;
}

/* A synthetic patient: beats one RR after another from sample `t`. */
typedef struct sim {
    ct_policy *pol;
    ct_policy_eval *ev;
    rec *rec;
    int64_t t;        /* sample of the last beat */
    int advance_step; /* > 0: advance time in steps this long between beats */
    int64_t *beats;   /* every beat fed, in order */
    int n_beats;
} sim;

#define SIM_MAX_BEATS 20000

static inline void sim_open(sim *s, const char *policy_json, const char *patient)
{
    memset(s, 0, sizeof *s);
    s->rec = calloc(1, sizeof *s->rec);
    s->beats = calloc(SIM_MAX_BEATS, sizeof *s->beats);
    assert_non_null(s->rec);
    assert_non_null(s->beats);
    s->pol = policy_from(policy_json);
    ct_policy_eval_config cfg = {patient, FS, 2, 0};
    ct_policy_sink sink = {rec_sink, s->rec};
    ct_error err;
    ct_error_clear(&err);
    if (ct_policy_eval_new(s->pol, &cfg, &sink, &s->ev, &err) != 0)
        fail_msg("eval_new: %s", err.msg);
    s->t = 0;
}

static inline void sim_close(sim *s)
{
    ct_policy_eval_free(s->ev);
    ct_policy_free(s->pol);
    free(s->rec);
    free(s->beats);
}

static inline void sim_advance(sim *s, int64_t to)
{
    assert_int_equal(ct_policy_advance(s->ev, to), 0);
}

/* One beat `rr` samples after the previous one. */
static inline void sim_beat(sim *s, int64_t rr, ct_ecg_beat_class cls)
{
    int64_t at = s->t + rr;
    if (s->advance_step > 0)
        for (int64_t x = s->t + s->advance_step; x < at; x += s->advance_step)
            sim_advance(s, x);
    ct_ecg_beat b;
    memset(&b, 0, sizeof b);
    b.sample = at;
    b.cls = cls;
    b.confidence = 1.0f;
    b.template_id = -1;
    assert_int_equal(ct_policy_eval_beat(s->ev, &b), 0);
    s->t = at;
    assert_true(s->n_beats < SIM_MAX_BEATS);
    s->beats[s->n_beats++] = at;
}

static inline void sim_beats(sim *s, int n, int64_t rr, ct_ecg_beat_class cls)
{
    for (int i = 0; i < n; i++)
        sim_beat(s, rr, cls);
}

/* Beats at `rr` until at least `seconds` have passed. */
static inline void sim_for(sim *s, double seconds, int64_t rr)
{
    int64_t end = s->t + SEC(seconds);
    while (s->t + rr <= end)
        sim_beat(s, rr, CT_BEAT_N);
}

static inline void sim_event(sim *s, ct_ecg_event_kind kind, int64_t sample, int64_t end,
                             int lead, const char *label)
{
    ct_ecg_event e;
    memset(&e, 0, sizeof e);
    e.kind = kind;
    e.sample = sample;
    e.end_sample = end;
    e.lead = lead;
    snprintf(e.label, sizeof e.label, "%s", label);
    assert_int_equal(ct_policy_eval_event(s->ev, &e), 0);
}

/* The heart rate the policy documents, computed independently: 60 s over
 * the median of the last 8 RR intervals ending at beat i. */
static inline double ref_hr(const sim *s, int i)
{
    double v[8];
    int n = 0;
    for (int k = i; k > 0 && n < 8; k--)
        v[n++] = (double)(s->beats[k] - s->beats[k - 1]);
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (v[b] < v[a]) {
                double t = v[a];
                v[a] = v[b];
                v[b] = t;
            }
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    return 60.0 * FS / med;
}

/* The first beat at or after index `from` whose reference rate satisfies
 * above ? rate > limit : rate < limit (or <= / >= with `inclusive`). */
static inline int64_t first_beat_where(const sim *s, int from, double limit, int above, int inclusive)
{
    for (int i = from; i < s->n_beats; i++) {
        double hr = ref_hr(s, i);
        int hit = above ? (inclusive ? hr >= limit : hr > limit) : (inclusive ? hr <= limit : hr < limit);
        if (hit)
            return s->beats[i];
    }
    fail_msg("no beat from %d with rate %s %g", from, above ? "above" : "below", limit);
    return -1;
}

#endif
