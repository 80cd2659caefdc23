/* Tests of ct_twin_detect_record on real MIT-BIH records (found through
 * CARDIOTWIN_MITDB) and on hand-made records for the error cases. The beat
 * matching here is a plain nearest-beat match within EC57's 150 ms from the
 * fifth minute on: enough to hold the detector to its level; the exact bxb
 * rules are the ec57 room's. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cardiotwin/twin.h"
#include "cardiotwin/wfdb.h"

typedef struct rec {
    ct_wfdb_header hdr;
    ct_wfdb_signals sig;
    ct_wfdb_annotation *ref;
    size_t n_ref;
} rec;

static const char *mitdb(void)
{
    const char *d = getenv("CARDIOTWIN_MITDB");
    return d && *d ? d : "../shared/data/mitdb";
}

static rec *load(const char *name)
{
    rec *r = calloc(1, sizeof *r);
    assert_non_null(r);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", mitdb(), name);
    ct_error err;
    if (ct_wfdb_header_read(path, &r->hdr, &err) != 0) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_int_equal(ct_wfdb_signals_read(path, &r->hdr, &r->sig, &err), 0);
    assert_int_equal(ct_wfdb_ann_read(path, "atr", &r->ref, &r->n_ref, &err), 0);
    return r;
}

static void unload(rec *r)
{
    ct_wfdb_signals_free(&r->sig);
    free(r->ref);
    free(r);
}

/* AAMI class letter of an MIT beat code, '\0' for non-beats. */
static char aami(int code)
{
    switch (code) {
    case CT_ANN_NORMAL: case CT_ANN_LBBB: case CT_ANN_RBBB: case CT_ANN_BBB: return 'N';
    case CT_ANN_APC: case CT_ANN_ABERR: case CT_ANN_NPC: case CT_ANN_SVPB: case CT_ANN_NESC:
    case CT_ANN_AESC: case CT_ANN_SVESC: return 'S';
    case CT_ANN_PVC: case CT_ANN_VESC: case CT_ANN_RONT: return 'V';
    case CT_ANN_FUSION: return 'F';
    case CT_ANN_UNKNOWN: case CT_ANN_PACE: case CT_ANN_PFUS: return 'Q';
    default: return 0;
    }
}

typedef struct score {
    long tp, fn, fp, vtp, vfn, vfp;
} score;

static score match(const rec *r, const ct_wfdb_annotation *test, size_t n_test)
{
    score s = {0};
    double fs = r->hdr.fs_hz;
    int64_t start = (int64_t)(300 * fs), win = (int64_t)(0.15 * fs + 0.5);
    char *used = calloc(n_test + 1, 1);
    assert_non_null(used);
    size_t j = 0;
    for (size_t i = 0; i < r->n_ref; i++) {
        char c = aami(r->ref[i].code);
        if (!c || r->ref[i].sample < start)
            continue;
        int64_t t = r->ref[i].sample;
        while (j < n_test && test[j].sample < t - win)
            j++;
        size_t best = n_test;
        for (size_t k = j; k < n_test && test[k].sample <= t + win; k++)
            if (!used[k] && aami(test[k].code) &&
                (best == n_test || llabs(test[k].sample - t) < llabs(test[best].sample - t)))
                best = k;
        if (best == n_test) {
            s.fn++;
            s.vfn += c == 'V';
            continue;
        }
        used[best] = 1;
        s.tp++;
        char tc = aami(test[best].code);
        if (c == 'V')
            tc == 'V' ? s.vtp++ : s.vfn++;
        else if (tc == 'V' && c != 'F' && c != 'Q')
            s.vfp++;
    }
    for (size_t k = 0; k < n_test; k++)
        if (aami(test[k].code) && test[k].sample >= start && !used[k]) {
            s.fp++;
            s.vfp += aami(test[k].code) == 'V';
        }
    free(used);
    return s;
}

static void check_sorted(const ct_wfdb_annotation *a, size_t n)
{
    for (size_t i = 1; i < n; i++)
        assert_true(a[i].sample >= a[i - 1].sample);
}

static void test_record_100(void **state)
{
    (void)state;
    rec *r = load("100");
    ct_wfdb_annotation *a = NULL;
    size_t n = 0;
    ct_error err;
    assert_int_equal(ct_twin_detect_record(&r->hdr, &r->sig, -1, &a, &n, &err), 0);
    check_sorted(a, n);
    score s = match(r, a, n);
    double se = 100.0 * (double)s.tp / (double)(s.tp + s.fn);
    double pp = 100.0 * (double)s.tp / (double)(s.tp + s.fp);
    print_message("100 both leads: Se %.2f%% +P %.2f%% (TP %ld FN %ld FP %ld)\n", se, pp, s.tp,
                  s.fn, s.fp);
    assert_true(se > 99.5);
    assert_true(pp > 99.5);
    /* A normal sinus rhythm is claimed. */
    int rhythm_n = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i].code == CT_ANN_RHYTHM && strcmp(a[i].aux, "(N") == 0)
            rhythm_n = 1;
    assert_true(rhythm_n);
    free(a);

    /* One lead alone does as well on this clean record. */
    assert_int_equal(ct_twin_detect_record(&r->hdr, &r->sig, 0, &a, &n, &err), 0);
    s = match(r, a, n);
    assert_true(100.0 * (double)s.tp / (double)(s.tp + s.fn) > 99.5);
    assert_true(100.0 * (double)s.tp / (double)(s.tp + s.fp) > 99.5);
    free(a);
    unload(r);
}

static void test_record_106_veb(void **state)
{
    (void)state;
    rec *r = load("106");
    ct_wfdb_annotation *a = NULL;
    size_t n = 0;
    assert_int_equal(ct_twin_detect_record(&r->hdr, &r->sig, -1, &a, &n, NULL), 0);
    score s = match(r, a, n);
    double vse = 100.0 * (double)s.vtp / (double)(s.vtp + s.vfn);
    double vpp = 100.0 * (double)s.vtp / (double)(s.vtp + s.vfp);
    print_message("106: QRS TP %ld FN %ld FP %ld, VEB Se %.2f%% +P %.2f%%\n", s.tp, s.fn, s.fp,
                  vse, vpp);
    assert_true(100.0 * (double)s.tp / (double)(s.tp + s.fn) > 99.5);
    assert_true(vse > 95.0);
    assert_true(vpp > 95.0);
    free(a);
    unload(r);
}

/* Lead 1 of 100 replaced by silence, marked invalid (lead off): the beats
 * stay. */
static void test_invalid_samples_are_lead_off(void **state)
{
    (void)state;
    rec *r = load("100");
    for (int64_t i = 100000; i < 300000; i++)
        r->sig.samples[1][i] = CT_WFDB_INVALID_SAMPLE;
    ct_wfdb_annotation *a = NULL;
    size_t n = 0;
    assert_int_equal(ct_twin_detect_record(&r->hdr, &r->sig, -1, &a, &n, NULL), 0);
    score s = match(r, a, n);
    assert_true(100.0 * (double)s.tp / (double)(s.tp + s.fn) > 99.5);
    assert_true(100.0 * (double)s.tp / (double)(s.tp + s.fp) > 99.5);
    /* The lead-off stretch is reported as unreadable signal 1. */
    int noise = 0;
    for (size_t i = 0; i < n; i++)
        if (a[i].code == CT_ANN_NOISE && a[i].sample >= 100000 && a[i].sample < 101000 &&
            (a[i].subtype & 0x20))
            noise = 1;
    assert_true(noise);
    free(a);
    unload(r);
}

typedef struct kept {
    long beats, artifacts;
    int64_t *samples;
    size_t n, cap;
} kept;

static void keep_beat(void *ctx, const ct_ecg_beat *b)
{
    kept *k = ctx;
    assert_non_null(b->features);
    if (b->is_artifact) {
        k->artifacts++;
        return;
    }
    k->beats++;
    if (k->n < k->cap)
        k->samples[k->n++] = b->sample;
}

/* With CT_TWIN_KEEP_ARTIFACTS the dropped detections come too, flagged, and
 * the beats are exactly those of an ordinary run. */
static void test_keep_artifacts(void **state)
{
    (void)state;
    rec *r = load("105");
    kept k = {0};
    k.cap = 8192;
    k.samples = calloc(k.cap, sizeof *k.samples);
    assert_non_null(k.samples);
    ct_ecg_sink sink = {keep_beat, NULL, &k};
    assert_int_equal(ct_twin_run_record(&r->hdr, &r->sig, -1, &sink, CT_TWIN_KEEP_ARTIFACTS, NULL),
                     0);
    print_message("105: %ld beats, %ld artefacts dropped\n", k.beats, k.artifacts);
    assert_true(k.artifacts > 0);
    ct_wfdb_annotation *a = NULL;
    size_t n = 0;
    assert_int_equal(ct_twin_detect_record(&r->hdr, &r->sig, -1, &a, &n, NULL), 0);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (!ct_wfdb_ann_is_beat(a[i].code))
            continue;
        assert_true(j < k.n);
        assert_int_equal(a[i].sample, k.samples[j]);
        j++;
    }
    assert_int_equal(j, k.n);
    free(a);
    free(k.samples);
    unload(r);
}

static void test_errors(void **state)
{
    (void)state;
    ct_wfdb_header *hdr = calloc(1, sizeof *hdr);
    assert_non_null(hdr);
    snprintf(hdr->record_name, sizeof hdr->record_name, "x");
    hdr->fs_hz = 100.0;
    hdr->n_signals = 1;
    hdr->signals[0].gain_adu_per_unit = 200;
    hdr->signals[0].gain_given = 1;
    snprintf(hdr->signals[0].units, sizeof hdr->signals[0].units, "mV");
    int16_t buf[1000] = {0};
    ct_wfdb_signals sig;
    memset(&sig, 0, sizeof sig);
    sig.n_signals = 1;
    sig.n_samples = 1000;
    sig.samples[0] = buf;
    ct_wfdb_annotation *a = NULL;
    size_t n = 7;
    ct_error err;
    assert_int_equal(ct_twin_detect_record(hdr, &sig, -1, &a, &n, &err), CT_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "record x"));
    assert_non_null(strstr(err.msg, "100 Hz"));
    assert_null(a);
    assert_int_equal(n, 0);
    hdr->fs_hz = 250.0;
    assert_int_equal(ct_twin_detect_record(hdr, &sig, 3, &a, &n, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "lead 3"));
    assert_int_equal(ct_twin_detect_record(hdr, &sig, -1, NULL, &n, &err), CT_EINVAL);
    assert_int_equal(ct_twin_detect_record(NULL, &sig, -1, &a, &n, &err), CT_EINVAL);
    /* A short flat record: no beats, no crash, a flat-line note. */
    assert_int_equal(ct_twin_detect_record(hdr, &sig, 0, &a, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        assert_false(ct_wfdb_ann_is_beat(a[i].code));
    free(a);
    free(hdr);
}

static void test_event_annotations(void **state)
{
    (void)state;
    ct_ecg_event ev;
    memset(&ev, 0, sizeof ev);
    ct_wfdb_annotation a;
    ev.kind = CT_EVENT_RHYTHM;
    ev.sample = 42;
    ev.end_sample = -1;
    snprintf(ev.label, sizeof ev.label, "(AFIB");
    assert_int_equal(ct_twin_event_annotation(&ev, &a), 1);
    assert_int_equal(a.code, CT_ANN_RHYTHM);
    assert_int_equal(a.sample, 42);
    assert_string_equal(a.aux, "(AFIB");
    assert_int_equal(a.aux_len, 5);
    ev.end_sample = 100; /* the close of an episode is not an annotation */
    assert_int_equal(ct_twin_event_annotation(&ev, &a), 0);
    ev.kind = CT_EVENT_QUALITY;
    ev.lead = 1;
    snprintf(ev.label, sizeof ev.label, "noise");
    assert_int_equal(ct_twin_event_annotation(&ev, &a), 1);
    assert_int_equal(a.code, CT_ANN_NOISE);
    assert_int_equal(a.subtype, 0x02);
    snprintf(ev.label, sizeof ev.label, "lead-off");
    assert_int_equal(ct_twin_event_annotation(&ev, &a), 1);
    assert_int_equal(a.subtype, 0x20);
    snprintf(ev.label, sizeof ev.label, "ok");
    assert_int_equal(ct_twin_event_annotation(&ev, &a), 1);
    assert_int_equal(a.subtype, 0);
    ev.kind = CT_EVENT_PAUSE;
    ev.value = 2400;
    assert_int_equal(ct_twin_event_annotation(&ev, &a), 1);
    assert_int_equal(a.code, CT_ANN_NOTE);
    assert_string_equal(a.aux, "pause 2400 ms");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_100),
        cmocka_unit_test(test_record_106_veb),
        cmocka_unit_test(test_invalid_samples_are_lead_off),
        cmocka_unit_test(test_keep_artifacts),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_event_annotations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
