/* libFuzzer harness for policy loading: any bytes must give either a policy
 * or a one-line error naming the file, never a crash, a leak or an
 * out-of-bounds read. A policy that loads must survive the round trip
 * (written out and loaded again, it writes out the same), and an evaluator
 * built from it must run a varied synthetic stream while keeping its promises:
 * transitions in time order, one open alert per rule, CLEARED after RAISED. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct watch {
    int open[CT_POLICY_N_RULES];
    uint64_t id[CT_POLICY_N_RULES];
    int64_t last_sample;
} watch;

static void on_alert(void *ctx, const ct_policy_alert *a)
{
    watch *w = ctx;
    if ((int)a->rule < 0 || a->rule >= CT_POLICY_N_RULES || a->sample < w->last_sample)
        abort();
    if (a->priority < CT_POLICY_LOW || a->priority > CT_POLICY_HIGH)
        abort();
    w->last_sample = a->sample;
    int r = (int)a->rule;
    switch (a->transition) {
    case CT_POLICY_RAISED:
        if (w->open[r] || a->onset_sample > a->sample)
            abort();
        w->open[r] = 1;
        w->id[r] = a->id;
        break;
    case CT_POLICY_UPDATED:
        if (!w->open[r] || w->id[r] != a->id)
            abort();
        break;
    case CT_POLICY_CLEARED:
        if (!w->open[r] || w->id[r] != a->id || a->end_sample > a->sample)
            abort();
        w->open[r] = 0;
        break;
    default:
        abort();
    }
    char line[256];
    ct_policy_alert_describe(a, line, sizeof line);
}

/* A stream that visits every rule: rates, V beats, pauses, rhythm and
 * quality events drawn from a generator seeded by the input, so that each
 * policy meets a different stream (a policy's bytes are mostly ASCII, too
 * narrow to drive the stream directly). */
static void run_stream(const ct_policy *p, const uint8_t *data, size_t size)
{
    uint32_t x = 2166136261u; /* FNV-1a of the input, then xorshift */
    for (size_t i = 0; i < size; i++)
        x = (x ^ data[i]) * 16777619u;
    watch w;
    memset(&w, 0, sizeof w);
    ct_policy_eval_config cfg = {"fuzz", 250.0, 2, 0};
    ct_policy_sink sink = {on_alert, &w};
    ct_policy_eval *ev = NULL;
    ct_error err;
    if (ct_policy_eval_new(p, &cfg, &sink, &ev, &err) != 0)
        abort();
    int64_t t = 0;
    for (int i = 0; i < 600; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        uint8_t b = (uint8_t)(x >> 8);
        int64_t rr = 40 + (int64_t)b * 4; /* 0.16 s .. 4.2 s at 250 Hz */
        t += rr;
        if ((b & 0x3f) == 7) {
            ct_ecg_event e;
            memset(&e, 0, sizeof e);
            e.kind = (b & 0x40) ? CT_EVENT_QUALITY : CT_EVENT_RHYTHM;
            e.sample = t - rr / 2;
            e.end_sample = (b & 0x80) ? t : -1;
            e.lead = e.kind == CT_EVENT_QUALITY ? (int)(b % 3) - 1 : -1;
            static const char *const labels[] = {"(AFIB", "(N", "(VT", "noise", "ok", "lead-off", "flat", "(VFL"};
            strcpy(e.label, labels[(b >> 3) & 7]);
            if (ct_policy_eval_event(ev, &e) != 0)
                abort();
        }
        ct_ecg_beat beat;
        memset(&beat, 0, sizeof beat);
        beat.sample = t;
        beat.cls = (b & 3) == 1 ? CT_BEAT_V : CT_BEAT_N;
        if (ct_policy_eval_beat(ev, &beat) != 0)
            abort();
        if ((b & 0x1f) == 3 && ct_policy_advance(ev, t + 2500) != 0)
            abort();
        if ((b & 0x1f) == 3)
            t += 2500;
    }
    ct_policy_alert open[CT_POLICY_N_RULES];
    size_t n = ct_policy_eval_open_alerts(ev, open, CT_POLICY_N_RULES);
    size_t n_open = 0;
    for (int r = 0; r < CT_POLICY_N_RULES; r++)
        n_open += (size_t)w.open[r];
    if (n != n_open)
        abort();
    if (ct_policy_eval_finish(ev, t + 1) != 0)
        abort();
    for (int r = 0; r < CT_POLICY_N_RULES; r++)
        if (w.open[r])
            abort();
    ct_policy_eval_free(ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ct_policy *p = NULL;
    ct_error err;
    ct_error_clear(&err);
    int rc = ct_policy_parse((const char *)data, size, "fuzz.json", &p, &err);
    if (rc != 0) {
        if (p || err.code != rc || strncmp(err.msg, "fuzz.json: ", 11) != 0 || strchr(err.msg, '\n'))
            abort();
        return 0;
    }
    char *a = NULL, *b = NULL;
    if (ct_policy_to_json(p, NULL, &a, &err) != 0)
        abort();
    ct_policy *q = NULL;
    if (ct_policy_parse(a, strlen(a), "round-trip", &q, &err) != 0)
        abort(); /* what we write, we must read back */
    if (ct_policy_to_json(q, NULL, &b, &err) != 0 || strcmp(a, b) != 0)
        abort();
    char *pj = NULL;
    if (ct_policy_to_json(p, "fuzz", &pj, &err) != 0)
        abort();
    ct_policy_rules r1, r2;
    if (ct_policy_rules_for(p, "fuzz", &r1) != ct_policy_rules_for(q, "fuzz", &r2))
        abort();
    run_stream(p, data, size);
    free(pj);
    free(a);
    free(b);
    ct_policy_free(q);
    ct_policy_free(p);
    return 0;
}
