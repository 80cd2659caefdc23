/* The policy on real rhythms: the reference annotations of the MIT-BIH
 * records (a perfect detector's output: every beat with its class, every
 * rhythm change, every noise mark) are fed to the default policy, and the
 * alerts must be what a cardiologist reading those records expects: nothing
 * of high priority in record 100 (sinus rhythm, one PVC), ventricular runs and
 * a PVC burden in 106, atrial fibrillation in 201 and 203, and no asystole in
 * any record, since none of them has one.
 *
 * The policy room links no WFDB reader, so this file reads the MIT
 * annotation format itself (WFDB's annot(5): 16-bit words, 6-bit code and
 * 10-bit time increment, with SKIP, NUM, SUB, CHN and AUX pseudo-codes). */
#include "policy_test_util.h"

#include <errno.h>

enum { A_SKIP = 59, A_NUM = 60, A_SUB = 61, A_CHN = 62, A_AUX = 63 };
enum { C_NOISE = 14, C_RHYTHM = 28 };

typedef struct ann {
    int64_t sample;
    int code, subtype;
    char aux[64];
} ann;

static const char *mitdb_dir(void)
{
    const char *d = getenv("CARDIOTWIN_MITDB");
    if (!d)
        fail_msg("CARDIOTWIN_MITDB is not set (run under ctest)");
    return d;
}

static ann *read_atr(const char *record, int *n_out)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.atr", mitdb_dir(), record);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    static unsigned char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(len > 0 && len < sizeof buf);
    int cap = (int)(len / 2) + 1, n = 0;
    ann *a = calloc((size_t)cap, sizeof *a);
    assert_non_null(a);
    int64_t t = 0;
    size_t i = 0;
    while (i + 1 < len) {
        unsigned w = (unsigned)buf[i] | (unsigned)buf[i + 1] << 8;
        i += 2;
        int code = (int)(w >> 10), val = (int)(w & 0x3ff);
        if (code == 0 && val == 0)
            break;
        if (code == A_SKIP) {
            assert_true(i + 4 <= len);
            /* A PDP-11 long: high 16 bits first, each half little-endian. */
            int32_t skip = (int32_t)((uint32_t)(buf[i] | buf[i + 1] << 8) << 16 |
                                     (uint32_t)(buf[i + 2] | buf[i + 3] << 8));
            i += 4;
            t += skip;
        } else if (code == A_SUB) {
            assert_true(n > 0);
            a[n - 1].subtype = (int)(signed char)(val & 0xff);
        } else if (code == A_AUX) {
            assert_true(n > 0 && i + (size_t)val <= len);
            size_t k = (size_t)val < sizeof a[n - 1].aux ? (size_t)val : sizeof a[n - 1].aux - 1;
            memcpy(a[n - 1].aux, buf + i, k);
            a[n - 1].aux[k] = '\0';
            i += (size_t)val + (val & 1);
        } else if (code == A_NUM || code == A_CHN) {
            /* not needed here */
        } else {
            t += val;
            assert_true(n < cap);
            a[n].sample = t;
            a[n].code = code;
            n++;
        }
    }
    *n_out = n;
    return a;
}

static int is_beat(int code)
{
    return (code >= 1 && code <= 13) || code == 25 || code == 34 || code == 35 || code == 38;
}

static ct_ecg_beat_class beat_class(int code)
{
    switch (code) {
    case 5:  /* V */
    case 10: /* E, ventricular escape */
        return CT_BEAT_V;
    case 4: case 7: case 8: case 9:
        return CT_BEAT_S;
    case 6:
        return CT_BEAT_F;
    case 12: case 13: case 38:
        return CT_BEAT_Q;
    default:
        return CT_BEAT_N;
    }
}

typedef struct summary {
    int raised[CT_POLICY_N_RULES];
    int high; /* alerts raised or escalated to high priority */
} summary;

static void run_record(const char *record, rec *r, summary *sum)
{
    int n;
    ann *a = read_atr(record, &n);
    ct_policy *p = policy_from(NULL);
    ct_policy_eval_config cfg = {record, FS, 2, 0};
    ct_policy_sink sink = {rec_sink, r};
    ct_policy_eval *ev = NULL;
    ct_error err;
    assert_int_equal(ct_policy_eval_new(p, &cfg, &sink, &ev, &err), 0);
    r->n = 0;
    for (int i = 0; i < n; i++) {
        const ann *x = &a[i];
        if (is_beat(x->code)) {
            ct_ecg_beat b;
            memset(&b, 0, sizeof b);
            b.sample = x->sample;
            b.cls = beat_class(x->code);
            /* Two annotations at one sample never happen for beats in MIT-BIH. */
            assert_int_equal(ct_policy_eval_beat(ev, &b), 0);
        } else if (x->code == C_RHYTHM && x->aux[0] == '(') {
            ct_ecg_event e;
            memset(&e, 0, sizeof e);
            e.kind = CT_EVENT_RHYTHM;
            e.sample = x->sample;
            e.end_sample = -1;
            e.lead = -1;
            memcpy(e.label, x->aux, strnlen(x->aux, sizeof e.label - 1));
            assert_int_equal(ct_policy_eval_event(ev, &e), 0);
        } else if (x->code == C_NOISE) {
            /* Subtype bits 0-1: lead 0/1 noisy; bits 4-5: unreadable; -1: all unreadable. */
            for (int lead = 0; lead < 2; lead++) {
                int bad = x->subtype == -1 || (x->subtype & (1 << lead)) || (x->subtype & (16 << lead));
                ct_ecg_event e;
                memset(&e, 0, sizeof e);
                e.kind = CT_EVENT_QUALITY;
                e.sample = x->sample;
                e.end_sample = -1;
                e.lead = lead;
                snprintf(e.label, sizeof e.label, "%s", bad ? "noise" : "ok");
                assert_int_equal(ct_policy_eval_event(ev, &e), 0);
            }
        }
    }
    assert_int_equal(ct_policy_eval_finish(ev, 650000), 0);
    memset(sum, 0, sizeof *sum);
    for (int i = 0; i < r->n; i++) {
        const ct_policy_alert *x = &r->a[i];
        if (x->transition == CT_POLICY_RAISED)
            sum->raised[x->rule]++;
        if (x->transition != CT_POLICY_CLEARED && x->priority == CT_POLICY_HIGH)
            sum->high++;
    }
    ct_policy_eval_free(ev);
    ct_policy_free(p);
    free(a);
}

static void print_summary(const char *record, const summary *s)
{
    printf("record %s:", record);
    for (int k = 0; k < CT_POLICY_N_RULES; k++)
        if (s->raised[k])
            printf(" %s %d", ct_policy_rule_name((ct_policy_rule)k), s->raised[k]);
    printf("\n");
}

static void test_record_100(void **state)
{
    (void)state;
    rec *r = calloc(1, sizeof *r);
    summary s;
    run_record("100", r, &s);
    print_summary("100", &s);
    assert_int_equal(s.high, 0);
    assert_int_equal(s.raised[CT_POLICY_VENTRICULAR_RUN], 0);
    assert_int_equal(s.raised[CT_POLICY_PVC_BURDEN], 0);
    assert_int_equal(s.raised[CT_POLICY_AFIB], 0);
    free(r);
}

static void test_record_106(void **state)
{
    (void)state;
    rec *r = calloc(1, sizeof *r);
    summary s;
    run_record("106", r, &s);
    print_summary("106", &s);
    /* 520 PVCs in 30 minutes, with couplets and runs of ventricular tachycardia. */
    assert_true(s.raised[CT_POLICY_PVC_BURDEN] >= 1);
    assert_true(s.raised[CT_POLICY_VENTRICULAR_RUN] >= 1);
    for (int i = 0; i < s.raised[CT_POLICY_VENTRICULAR_RUN]; i++) {
        const ct_policy_alert *v = rec_get(r, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_RAISED, i);
        assert_int_equal(v->priority, CT_POLICY_HIGH);
        /* What the alert amounted to: a run of at least 3 V beats at 100 bpm or more. */
        const ct_policy_alert *c = rec_get(r, CT_POLICY_VENTRICULAR_RUN, CT_POLICY_CLEARED, i);
        assert_int_equal(c->id, v->id);
        assert_true(c->worst.run_beats >= 3 && c->worst.run_rate_bpm >= 100);
    }
    assert_int_equal(s.raised[CT_POLICY_ASYSTOLE], 0);
    assert_int_equal(s.raised[CT_POLICY_AFIB], 0);
    free(r);
}

static void test_af_records(void **state)
{
    (void)state;
    const char *recs[] = {"201", "203"};
    for (int i = 0; i < 2; i++) {
        rec *r = calloc(1, sizeof *r);
        summary s;
        run_record(recs[i], r, &s);
        print_summary(recs[i], &s);
        assert_true(s.raised[CT_POLICY_AFIB] >= 1);
        const ct_policy_alert *af = rec_get(r, CT_POLICY_AFIB, CT_POLICY_RAISED, 0);
        assert_int_equal(af->sample - af->onset_sample, SEC(30));
        free(r);
    }
}

static void test_no_asystole_anywhere(void **state)
{
    (void)state;
    static const char *const recs[] = {"100", "101", "102", "103", "104", "105", "106",
                                       "107", "108", "109", "112", "114", "115", "116",
                                       "118", "119", "122", "124", "201", "203", "205",
                                       "207", "208", "209", "215", "220", "223", "230"};
    rec *r = calloc(1, sizeof *r);
    for (size_t i = 0; i < sizeof recs / sizeof recs[0]; i++) {
        summary s;
        run_record(recs[i], r, &s);
        print_summary(recs[i], &s);
        if (s.raised[CT_POLICY_ASYSTOLE])
            fail_msg("record %s: asystole raised", recs[i]);
    }
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_100),
        cmocka_unit_test(test_record_106),
        cmocka_unit_test(test_af_records),
        cmocka_unit_test(test_no_asystole_anywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
