/* Tests of MIT annotation files: the 28 MIT-BIH reference files (counts, and
 * parse-then-encode giving back the very bytes WFDB wrote), hand-encoded
 * words for every pseudo-annotation and every way a file can be broken, and
 * the atomic writer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "wfdb_test_util.h"

/* Beats per record as counted in shared/data/mitdb/README.md
 * (codes N L R a V F J A S E j / Q f e). */
static const int readme_beats[] = {
    2273, 1865, 2187, 2084, 2229, 2572, 2027, 2137, 1763, 2532, 2539, 1879, 1953, 2412,
    2278, 1987, 2476, 1619, 1963, 2980, 2656, 1860, 2955, 3005, 3363, 2048, 2605, 2256,
};

static ct_wfdb_annotation ann(int64_t sample, int code, int subtype, int chan, int num,
                              const char *aux)
{
    ct_wfdb_annotation a;
    memset(&a, 0, sizeof a);
    a.sample = sample;
    a.code = code;
    a.subtype = subtype;
    a.chan = chan;
    a.num = num;
    if (aux) {
        a.aux_len = (int)strlen(aux);
        memcpy(a.aux, aux, (size_t)a.aux_len + 1);
    }
    return a;
}

static void assert_same_annotations(const ct_wfdb_annotation *a, size_t na,
                                    const ct_wfdb_annotation *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        if (a[i].sample != b[i].sample || a[i].code != b[i].code ||
            a[i].subtype != b[i].subtype || a[i].chan != b[i].chan || a[i].num != b[i].num ||
            a[i].aux_len != b[i].aux_len || memcmp(a[i].aux, b[i].aux, (size_t)a[i].aux_len))
            fail_msg("annotation %zu differs: %lld %d/%d/%d/%d aux %d vs %lld %d/%d/%d/%d aux %d",
                     i, (long long)a[i].sample, a[i].code, a[i].subtype, a[i].chan, a[i].num,
                     a[i].aux_len, (long long)b[i].sample, b[i].code, b[i].subtype, b[i].chan,
                     b[i].num, b[i].aux_len);
    }
}

static int parse(const uint8_t *buf, size_t len, ct_wfdb_annotation **out, size_t *n,
                 ct_error *err)
{
    ct_error_clear(err);
    return ct_wfdb_ann_parse(buf, len, "t.atr", out, n, err);
}

static void test_mnemonics(void **state)
{
    (void)state;
    const char *expected = "NLRaVFJASEj/Q~";
    for (int c = 1; c <= 14; c++) {
        char m[2] = {expected[c - 1], 0};
        assert_string_equal(ct_wfdb_ann_mnemonic(c), m);
        assert_int_equal(ct_wfdb_ann_code(m), c);
    }
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_ARFCT), "|");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_NOTE), "\"");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_RHYTHM), "+");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_FLWAV), "!");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_VFON), "[");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_VFOFF), "]");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_NAPC), "x");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_PFUS), "f");
    assert_string_equal(ct_wfdb_ann_mnemonic(CT_ANN_RONT), "r");
    assert_string_equal(ct_wfdb_ann_mnemonic(15), "[15]");
    assert_string_equal(ct_wfdb_ann_mnemonic(49), "[49]");
    assert_string_equal(ct_wfdb_ann_mnemonic(50), "?");
    assert_string_equal(ct_wfdb_ann_mnemonic(-1), "?");
    for (int c = 0; c <= CT_ANN_ACMAX; c++)
        assert_int_equal(ct_wfdb_ann_code(ct_wfdb_ann_mnemonic(c)), c);
    assert_int_equal(ct_wfdb_ann_code("Z"), -1);
    assert_int_equal(ct_wfdb_ann_code(""), -1);
    assert_int_equal(ct_wfdb_ann_code(NULL), -1);

    /* WFDB's isqrs. */
    const int beats[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 25, 30, 31, 34, 35, 38, 41};
    int n_beats = 0;
    for (int c = -5; c < 70; c++)
        n_beats += ct_wfdb_ann_is_beat(c);
    assert_int_equal(n_beats, (int)(sizeof beats / sizeof beats[0]));
    for (size_t i = 0; i < sizeof beats / sizeof beats[0]; i++)
        assert_int_equal(ct_wfdb_ann_is_beat(beats[i]), 1);
    assert_int_equal(ct_wfdb_ann_is_beat(CT_ANN_NOISE), 0);
    assert_int_equal(ct_wfdb_ann_is_beat(CT_ANN_RHYTHM), 0);
}

static void test_record_100(void **state)
{
    (void)state;
    char path[4096];
    ct_test_record_path(path, sizeof path, "100");
    ct_wfdb_annotation *a;
    size_t n;
    ct_error err;
    if (ct_wfdb_ann_read(path, "atr", &a, &n, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(n, 2274);
    int beats = 0, counts[CT_ANN_ACMAX + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        beats += ct_wfdb_ann_is_beat(a[i].code);
        counts[a[i].code]++;
    }
    assert_int_equal(beats, 2273);
    assert_int_equal(counts[CT_ANN_NORMAL], 2239);
    assert_int_equal(counts[CT_ANN_APC], 33);
    assert_int_equal(counts[CT_ANN_PVC], 1);
    assert_int_equal(counts[CT_ANN_RHYTHM], 1);
    /* The first annotation opens the rhythm "(N"; WFDB's writer of the day
     * counted the string's NUL in the length. */
    assert_true(a[0].sample == 18);
    assert_int_equal(a[0].code, CT_ANN_RHYTHM);
    assert_int_equal(a[0].aux_len, 3);
    assert_memory_equal(a[0].aux, "(N\0", 4);
    assert_true(a[1].sample == 77);
    assert_true(a[n - 1].sample == 649991);
    free(a);

    ct_test_record_path(path, sizeof path, "nosuch");
    assert_int_equal(ct_wfdb_ann_read(path, "atr", &a, &n, &err), CT_ENOTFOUND);
    assert_null(a);
    ct_test_record_path(path, sizeof path, "100");
    assert_int_equal(ct_wfdb_ann_read(path, "../atr", &a, &n, &err), CT_EINVAL);
}

/* Every reference file: counts agree with the README, times are in order and
 * inside the record, and encoding gives back WFDB's bytes exactly. */
static void test_all_records_roundtrip(void **state)
{
    (void)state;
    for (int r = 0; r < CT_TEST_N_RECORDS; r++) {
        char path[4096], file[4200];
        ct_test_record_path(path, sizeof path, ct_test_records[r]);
        ct_test_fmt(file, sizeof file, "%s.atr", path);
        size_t len;
        unsigned char *orig = ct_test_slurp(file, &len);
        ct_wfdb_annotation *a;
        size_t n;
        ct_error err;
        if (ct_wfdb_ann_parse(orig, len, ct_test_records[r], &a, &n, &err) != 0)
            fail_msg("%s", err.msg);
        int listed = 0, isqrs = 0, flutter = 0;
        for (size_t i = 0; i < n; i++) {
            const char *m = ct_wfdb_ann_mnemonic(a[i].code);
            listed += m[1] == '\0' && strchr("NLRaVFJASEj/Qfe", m[0]) != NULL;
            isqrs += ct_wfdb_ann_is_beat(a[i].code);
            flutter += a[i].code == CT_ANN_FLWAV;
            assert_true(a[i].sample >= 0 && a[i].sample < 650000);
            if (i > 0)
                assert_true(a[i].sample >= a[i - 1].sample);
        }
        if (listed != readme_beats[r])
            fail_msg("%s: %d beats, README says %d", ct_test_records[r], listed,
                     readme_beats[r]);
        /* WFDB's isqrs also counts ventricular flutter waves ('!'). */
        assert_int_equal(isqrs, listed + flutter);
        if (strcmp(ct_test_records[r], "207") == 0)
            assert_int_equal(flutter, 472);

        uint8_t *enc;
        size_t elen;
        if (ct_wfdb_ann_encode(a, n, &enc, &elen, &err) != 0)
            fail_msg("%s: %s", ct_test_records[r], err.msg);
        if (elen != len || memcmp(enc, orig, len) != 0) {
            size_t i = 0;
            while (i < len && i < elen && enc[i] == orig[i])
                i++;
            fail_msg("%s.atr: encoding differs from WFDB's at byte %zu (%zu vs %zu bytes)",
                     ct_test_records[r], i, elen, len);
        }
        free(enc);
        free(a);
        free(orig);
    }
}

static void test_encode_exact_bytes(void **state)
{
    (void)state;
    const ct_wfdb_annotation in[] = {
        ann(10, CT_ANN_NORMAL, 0, 0, 0, NULL),
        ann(1500, CT_ANN_PVC, 3, 0, 0, NULL),       /* step > 1023: SKIP; SUB */
        ann(1600, CT_ANN_RHYTHM, 0, 0, 0, "(AFIB"), /* odd AUX: padded */
        ann(1700, CT_ANN_NORMAL, 0, 1, 2, NULL),    /* CHN and NUM on change */
        ann(1800, CT_ANN_NORMAL, 0, 1, 2, NULL),    /* ... and not again */
        ann(1700, CT_ANN_NORMAL, 0, 1, -1, NULL),   /* going back: SKIP -100 */
        ann(1701, CT_ANN_NOTQRS, 0, 1, -1, NULL),   /* code 0: SKIP then 1 */
    };
    const uint8_t want[] = {
        0x0a, 0x04,                                     /* N, +10 */
        0x00, 0xec, 0x00, 0x00, 0xd2, 0x05, 0x00, 0x14, /* SKIP 1490, V +0 */
        0x03, 0xf4,                                     /* SUB 3 */
        0x64, 0x70, 0x05, 0xfc, '(', 'A', 'F', 'I', 'B', 0x00,
        0x64, 0x04, 0x01, 0xf8, 0x02, 0xf0,             /* N +100, CHN 1, NUM 2 */
        0x64, 0x04,                                     /* N +100 */
        0x00, 0xec, 0xff, 0xff, 0x9c, 0xff, 0x00, 0x04, /* SKIP -100, N +0 */
        0xff, 0xf3,                                     /* NUM -1 */
        0x00, 0xec, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, /* SKIP 0, code 0 +1 */
        0x00, 0x00,                                     /* end of file */
    };
    size_t n = sizeof in / sizeof in[0];
    uint8_t *buf;
    size_t len;
    ct_error err;
    assert_int_equal(ct_wfdb_ann_encode(in, n, &buf, &len, &err), 0);
    assert_int_equal(len, sizeof want);
    assert_memory_equal(buf, want, sizeof want);
    ct_wfdb_annotation *out;
    size_t nout;
    assert_int_equal(parse(buf, len, &out, &nout, &err), 0);
    assert_same_annotations(in, n, out, nout);
    assert_string_equal(out[2].aux, "(AFIB");
    free(out);
    free(buf);

    /* Nothing to write is one end-of-file word. */
    assert_int_equal(ct_wfdb_ann_encode(NULL, 0, &buf, &len, &err), 0);
    assert_int_equal(len, 2);
    assert_int_equal(buf[0] | buf[1], 0);
    assert_int_equal(parse(buf, len, &out, &nout, &err), 0);
    assert_int_equal(nout, 0);
    free(out);
    free(buf);
}

static void test_long_gaps(void **state)
{
    (void)state;
    /* Beyond one SKIP's 2^31 - 1: WFDB chains SKIPs both ways. */
    const ct_wfdb_annotation in[] = {
        ann(5000000000LL, CT_ANN_NORMAL, 0, 0, 0, NULL),
        ann(0, CT_ANN_PVC, -128, 255, 127, NULL),
        ann(4294967294LL + 7, CT_ANN_NOTE, 0, 255, 127, "x"),
    };
    uint8_t *buf;
    size_t len;
    ct_error err;
    assert_int_equal(ct_wfdb_ann_encode(in, 3, &buf, &len, &err), 0);
    /* 3 SKIPs + word, 3 SKIPs + word + SUB + CHN + NUM, 2 SKIPs + word + AUX
     * (2 + 2), end. */
    assert_int_equal(len, (size_t)(3 * 6 + 2 + 3 * 6 + 2 + 6 + 2 * 6 + 2 + 4 + 2));
    ct_wfdb_annotation *out;
    size_t n;
    assert_int_equal(parse(buf, len, &out, &n, &err), 0);
    assert_same_annotations(in, 3, out, n);
    free(out);
    free(buf);
}

/* num and chan carry over to later annotations; subtype and aux do not. */
static void test_field_persistence(void **state)
{
    (void)state;
    const uint8_t words[] = {
        0x05, 0x04, 0x07, 0xf0, 0x02, 0xf8, /* N@5, NUM 7, CHN 2 */
        0x05, 0x04,                         /* N@10 */
        0x05, 0x14, 0x02, 0xf4, 0x01, 0xfc, 'q', 0x00, /* V@15, SUB 2, AUX "q" */
        0x00, 0xec, 0x00, 0x00, 0x02, 0x00, /* SKIP 2 (after V: still V's) */
        0xff, 0xf7,                         /* SUB 0x3ff: -1 for V */
        0x05, 0x04,                         /* N@22 */
        0x00, 0x00,
    };
    ct_wfdb_annotation *a;
    size_t n;
    ct_error err;
    assert_int_equal(parse(words, sizeof words, &a, &n, &err), 0);
    assert_int_equal(n, 4);
    const int64_t samples[] = {5, 10, 15, 22};
    const int subtypes[] = {0, 0, -1, 0};
    for (size_t i = 0; i < 4; i++) {
        assert_true(a[i].sample == samples[i]);
        assert_int_equal(a[i].num, 7);
        assert_int_equal(a[i].chan, 2);
        assert_int_equal(a[i].subtype, subtypes[i]);
        assert_int_equal(a[i].aux_len, i == 2 ? 1 : 0);
    }
    assert_string_equal(a[2].aux, "q");
    assert_string_equal(a[3].aux, "");

    /* Written back, the same annotations (NUM/CHN once, at the first). */
    uint8_t *buf;
    size_t len;
    assert_int_equal(ct_wfdb_ann_encode(a, n, &buf, &len, &err), 0);
    ct_wfdb_annotation *b;
    size_t nb;
    assert_int_equal(parse(buf, len, &b, &nb, &err), 0);
    assert_same_annotations(a, n, b, nb);
    free(b);
    free(buf);
    free(a);
}

static void expect_bad(const uint8_t *bytes, size_t len, int code, const char *msg)
{
    ct_wfdb_annotation *a = (ct_wfdb_annotation *)(uintptr_t)1;
    size_t n = 99;
    ct_error err;
    int rc = parse(bytes, len, &a, &n, &err);
    if (rc != code)
        fail_msg("expected %d, got %d (%s)", code, rc, err.msg);
    assert_string_equal(err.msg, msg);
    assert_null(a);
    assert_int_equal(n, 0);
}

static void test_broken_files(void **state)
{
    (void)state;
    expect_bad(NULL, 0, CT_EFORMAT,
               "t.atr: ends at byte 0 without its end-of-file marker (a zero word): the file "
               "is truncated");
    const uint8_t trunc[] = {0x0a, 0x04, 0x05, 0x04};
    expect_bad(trunc, 4, CT_EFORMAT,
               "t.atr: ends at byte 4 without its end-of-file marker (a zero word): the file "
               "is truncated");
    expect_bad(trunc, 3, CT_EFORMAT,
               "t.atr: ends in the middle of a word at byte 2: the file is truncated");
    const uint8_t skip[] = {0x0a, 0x04, 0x00, 0xec, 0x00, 0x00, 0x10};
    expect_bad(skip, sizeof skip, CT_EFORMAT, "t.atr: SKIP at byte 2 is cut short by the end "
                                              "of the file");
    const uint8_t aux[] = {0x0a, 0x04, 0x05, 0xfc, 'a', 'b', 0x00, 0x00};
    expect_bad(aux, sizeof aux, CT_EFORMAT,
               "t.atr: AUX at byte 2 claims 5 bytes but the file ends 4 bytes later");
    const uint8_t auxodd[] = {0x0a, 0x04, 0x03, 0xfc, 'a', 'b', 'c'}; /* pad byte missing */
    expect_bad(auxodd, sizeof auxodd, CT_EFORMAT,
               "t.atr: AUX at byte 2 claims 3 bytes but the file ends 3 bytes later");
    const uint8_t auxbig[] = {0x0a, 0x04, 0x2c, 0xfd, 0x00, 0x00};
    expect_bad(auxbig, sizeof auxbig, CT_EFORMAT,
               "t.atr: AUX at byte 2 claims 300 bytes, at most 255 are possible");
    const uint8_t first[] = {0x07, 0xf0, 0x0a, 0x04, 0x00, 0x00};
    expect_bad(first, sizeof first, CT_EFORMAT,
               "t.atr: NUM at byte 0 comes before the first annotation");
    const uint8_t code55[] = {0x0a, 0x04, 0x01, 0xdc, 0x00, 0x00};
    expect_bad(code55, sizeof code55, CT_EFORMAT,
               "t.atr: code 55 at byte 2 is not an annotation code (0..49, or 59..63)");
    const uint8_t back[] = {0x0a, 0x04, 0x00, 0xec, 0xff, 0xff, 0xf0, 0xff, 0x01, 0x04};
    expect_bad(back, sizeof back, CT_EFORMAT,
               "t.atr: annotation at byte 8 falls at sample -5, before the start of the record");
    const uint8_t tail[] = {0x0a, 0x04, 0x00, 0x00, 0xff};
    expect_bad(tail, sizeof tail, CT_EFORMAT,
               "t.atr: 1 bytes follow the end-of-file marker at byte 2");

    /* A SKIP may pass below zero on the way, as putann() does for code 0. */
    const uint8_t dip[] = {0x00, 0xec, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00};
    ct_wfdb_annotation *a;
    size_t n;
    ct_error err;
    assert_int_equal(parse(dip, sizeof dip, &a, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_true(a[0].sample == 0);
    assert_int_equal(a[0].code, 0);
    free(a);

    /* A file over the size limit is refused before it is looked at. */
    static uint8_t dummy[2];
    assert_int_equal(ct_wfdb_ann_parse(dummy, (size_t)CT_WFDB_MAX_ANN_BYTES + 1, "big.atr", &a, &n,
                                       &err),
                     CT_ELIMIT);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    uint8_t *buf = (uint8_t *)(uintptr_t)1;
    size_t len = 7;
    ct_error err;
    ct_wfdb_annotation a = ann(10, 60, 0, 0, 0, NULL);
    assert_int_equal(ct_wfdb_ann_encode(&a, 1, &buf, &len, &err), CT_EINVAL);
    assert_string_equal(err.msg, "annotation 0 (sample 10, code 60): code is outside 0..49");
    assert_null(buf);
    assert_int_equal(len, 0);
    a = ann(10, 1, 0, 256, 0, NULL);
    assert_int_equal(ct_wfdb_ann_encode(&a, 1, &buf, &len, &err), CT_EINVAL);
    a = ann(-1, 1, 0, 0, 0, NULL);
    assert_int_equal(ct_wfdb_ann_encode(&a, 1, &buf, &len, &err), CT_EINVAL);
    a = ann(1, 1, 128, 0, 0, NULL);
    assert_int_equal(ct_wfdb_ann_encode(&a, 1, &buf, &len, &err), CT_EINVAL);
    a = ann(1, 1, 0, 0, -129, NULL);
    assert_int_equal(ct_wfdb_ann_encode(&a, 1, &buf, &len, &err), CT_EINVAL);
    a = ann(1, 1, 0, 0, 0, NULL);
    a.aux_len = 256;
    assert_int_equal(ct_wfdb_ann_encode(&a, 1, &buf, &len, &err), CT_EINVAL);
    assert_int_equal(ct_wfdb_ann_encode(NULL, 1, &buf, &len, &err), CT_EINVAL);
    /* A time no file of ours could hold. */
    a = ann(INT64_MAX / 2, 1, 0, 0, 0, NULL);
    assert_int_equal(ct_wfdb_ann_encode(&a, 1, &buf, &len, &err), CT_ELIMIT);
}

static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_write_and_read_back(void **state)
{
    (void)state;
    char *dir = ct_test_tempdir();
    ct_error err;
    const ct_wfdb_annotation in[] = {
        ann(100, CT_ANN_RHYTHM, 0, 0, 0, "(N"),
        ann(360, CT_ANN_NORMAL, 0, 0, 0, NULL),
        ann(700, CT_ANN_PVC, 0, 0, 0, NULL),
        ann(5000, CT_ANN_NOISE, -1, 1, 0, NULL),
    };
    assert_int_equal(ct_wfdb_ann_write(dir, "rec", "test", in, 4, &err), 0);
    char path[4096];
    ct_test_fmt(path, sizeof path, "%s/rec", dir);
    ct_wfdb_annotation *out;
    size_t n;
    assert_int_equal(ct_wfdb_ann_read(path, "test", &out, &n, &err), 0);
    assert_same_annotations(in, 4, out, n);
    free(out);
    assert_int_equal(count_entries(dir), 1); /* no temporary file left behind */

    char file[4096];
    ct_test_fmt(file, sizeof file, "%s/rec.test", dir);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    size_t flen;
    unsigned char *bytes = ct_test_slurp(file, &flen);
    uint8_t *enc;
    size_t elen;
    assert_int_equal(ct_wfdb_ann_encode(in, 4, &enc, &elen, &err), 0);
    assert_int_equal(flen, elen);
    assert_memory_equal(bytes, enc, elen);
    free(bytes);
    free(enc);

    /* Writing again replaces the file whole. */
    assert_int_equal(ct_wfdb_ann_write(dir, "rec", "test", in + 1, 1, &err), 0);
    assert_int_equal(ct_wfdb_ann_read(path, "test", &out, &n, &err), 0);
    assert_same_annotations(in + 1, 1, out, n);
    free(out);

    /* A refused write leaves the old file as it was, and no litter. */
    ct_wfdb_annotation bad = ann(5, 77, 0, 0, 0, NULL);
    assert_int_equal(ct_wfdb_ann_write(dir, "rec", "test", &bad, 1, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "record rec, annotator test: annotation 0"));
    assert_int_equal(ct_wfdb_ann_read(path, "test", &out, &n, &err), 0);
    assert_same_annotations(in + 1, 1, out, n);
    free(out);
    assert_int_equal(count_entries(dir), 1);

    assert_int_equal(ct_wfdb_ann_write(dir, "../rec", "test", in, 1, &err), CT_EINVAL);
    assert_int_equal(ct_wfdb_ann_write(dir, "rec", "a/b", in, 1, &err), CT_EINVAL);
    assert_int_equal(ct_wfdb_ann_write(dir, "rec", "", in, 1, &err), CT_EINVAL);
    char missing[4096];
    ct_test_fmt(missing, sizeof missing, "%s/no/such/folder", dir);
    assert_int_equal(ct_wfdb_ann_write(missing, "rec", "test", in, 1, &err), CT_EIO);
    assert_non_null(strstr(err.msg, "record rec: cannot create a file in"));
    assert_int_equal(count_entries(dir), 1);
    ct_test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mnemonics),
        cmocka_unit_test(test_record_100),
        cmocka_unit_test(test_all_records_roundtrip),
        cmocka_unit_test(test_encode_exact_bytes),
        cmocka_unit_test(test_long_gaps),
        cmocka_unit_test(test_field_persistence),
        cmocka_unit_test(test_broken_files),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_write_and_read_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
