/* Tests of signal decoding: the kernels against a bit-by-bit reference on
 * random bytes, all 28 MIT-BIH records with their checksums, and hand-made
 * records (formats 16, 80, 212, several files, byte offsets, no sample count)
 * for every way a record's data can disagree with its header. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "wfdb_test_util.h"

/* ---- an independent encoder, to make files the reader has never seen ---- */

static size_t enc212(const int *v, size_t n, uint8_t *out)
{
    size_t o = 0, i = 0;
    for (; i + 1 < n; i += 2) {
        unsigned a = (unsigned)v[i] & 0xfff, b = (unsigned)v[i + 1] & 0xfff;
        out[o++] = (uint8_t)(a & 0xff);
        out[o++] = (uint8_t)(((a >> 8) & 0x0f) | ((b >> 4) & 0xf0));
        out[o++] = (uint8_t)(b & 0xff);
    }
    if (i < n) {
        unsigned a = (unsigned)v[i] & 0xfff;
        out[o++] = (uint8_t)(a & 0xff);
        out[o++] = (uint8_t)((a >> 8) & 0x0f);
    }
    return o;
}

static size_t enc16(const int *v, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = (uint8_t)((unsigned)v[i] & 0xff);
        out[2 * i + 1] = (uint8_t)(((unsigned)v[i] >> 8) & 0xff);
    }
    return 2 * n;
}

static size_t enc80(const int *v, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(v[i] + 128);
    return n;
}

typedef struct tsig {
    const char *file;
    int format;
    int offset;
    const char *desc;
} tsig;

/* The 16-bit checksum as the test computes it, from stored values. */
static int sum16(const int *v, size_t n)
{
    long long s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    int u = (int)(s & 0xffff);
    return u >= 0x8000 ? u - 0x10000 : u;
}

/* Writes REC.hea and its signal files into dir. x[s][f] are the stored
 * values of signal s at frame f. Signals of one file must be adjacent. */
static void make_record(const char *dir, const char *rec, int nsig, const tsig *sigs, int nframes,
                        int *const *x, int write_nsamples)
{
    char hea[8192];
    size_t h = (size_t)snprintf(hea, sizeof hea, "%s %d 360", rec, nsig);
    if (write_nsamples)
        h += (size_t)snprintf(hea + h, sizeof hea - h, " %d", nframes);
    h += (size_t)snprintf(hea + h, sizeof hea - h, "\n");
    for (int s = 0; s < nsig;) {
        int e = s;
        while (e < nsig && strcmp(sigs[e].file, sigs[s].file) == 0)
            e++;
        int per = e - s;
        int *stream = malloc(sizeof(int) * (size_t)(per * nframes + 1));
        for (int f = 0; f < nframes; f++)
            for (int k = 0; k < per; k++)
                stream[f * per + k] = x[s + k][f];
        uint8_t *bytes = malloc((size_t)(sigs[s].offset + 2 * per * nframes + 4));
        memset(bytes, 0xab, (size_t)sigs[s].offset); /* a prolog the reader must skip */
        size_t n = (size_t)sigs[s].offset;
        size_t total = (size_t)(per * nframes);
        if (sigs[s].format == 212)
            n += enc212(stream, total, bytes + n);
        else if (sigs[s].format == 16)
            n += enc16(stream, total, bytes + n);
        else
            n += enc80(stream, total, bytes + n);
        ct_test_write(dir, sigs[s].file, bytes, n);
        free(bytes);
        free(stream);
        s = e;
    }
    for (int s = 0; s < nsig; s++) {
        char fmt[32];
        if (sigs[s].offset)
            ct_test_fmt(fmt, sizeof fmt, "%d+%d", sigs[s].format, sigs[s].offset);
        else
            ct_test_fmt(fmt, sizeof fmt, "%d", sigs[s].format);
        h += (size_t)snprintf(hea + h, sizeof hea - h, "%s %s 200 12 0 %d %d 0 %s\n",
                              sigs[s].file, fmt, nframes ? x[s][0] : 0,
                              sum16(x[s], (size_t)nframes), sigs[s].desc);
    }
    char name[128];
    ct_test_fmt(name, sizeof name, "%s.hea", rec);
    ct_test_write(dir, name, hea, h);
}

/* Deterministic values a format can hold (never its missing-sample marker). */
static int value_for(int format, int s, int f)
{
    unsigned r = (unsigned)(s * 7919 + f * 104729 + 12345) * 2654435761u;
    r >>= 8;
    switch (format) {
    case 212: return (int)(r % 4095) - 2047;
    case 16: return (int)(r % 65535) - 32767;
    default: return (int)(r % 255) - 127;
    }
}

typedef struct trec {
    int nsig, nframes;
    int *x[CT_WFDB_MAX_SIGNALS];
} trec;

static void trec_fill(trec *t, int nsig, int nframes, const tsig *sigs)
{
    t->nsig = nsig;
    t->nframes = nframes;
    for (int s = 0; s < nsig; s++) {
        t->x[s] = malloc(sizeof(int) * (size_t)(nframes + 1));
        for (int f = 0; f < nframes; f++)
            t->x[s][f] = value_for(sigs[s].format, s, f);
    }
}

static void trec_free(trec *t)
{
    for (int s = 0; s < t->nsig; s++)
        free(t->x[s]);
}

/* Reads dir/rec and returns the code; on success compares with t. */
static int read_back(const char *dir, const char *rec, const trec *t, ct_error *err)
{
    char path[4096];
    ct_test_fmt(path, sizeof path, "%s/%s", dir, rec);
    ct_wfdb_header *h = malloc(sizeof *h);
    int rc = ct_wfdb_header_read(path, h, err);
    if (rc == 0) {
        ct_wfdb_signals sig;
        rc = ct_wfdb_signals_read(path, h, &sig, err);
        if (rc == 0 && t) {
            assert_int_equal(sig.n_signals, t->nsig);
            assert_true(sig.n_samples == t->nframes);
            for (int s = 0; s < t->nsig; s++)
                for (int f = 0; f < t->nframes; f++)
                    if (sig.samples[s][f] != t->x[s][f])
                        fail_msg("%s signal %d frame %d: %d, expected %d", rec, s, f,
                                 sig.samples[s][f], t->x[s][f]);
        }
        if (rc != 0) { /* a failed read leaves nothing to free */
            assert_int_equal(sig.n_signals, 0);
            assert_null(sig.samples[0]);
        }
        ct_wfdb_signals_free(&sig);
    }
    free(h);
    return rc;
}

/* ---- kernels ---- */

static void test_kernel_known_values(void **state)
{
    (void)state;
    int16_t a[4], b[4], c[4];
    int16_t *out[3] = {a, b, c};
    /* 100.dat's first frame: 995 and 1011. */
    const uint8_t f212[] = {0xe3, 0x33, 0xf3, 0xff, 0x7f, 0x80, 0x00, 0x08, 0x01};
    assert_true(ct_wfdb_decode_212(f212, sizeof f212, 2, 3, out) == 3);
    assert_int_equal(a[0], 995);
    assert_int_equal(b[0], 1011);
    assert_int_equal(a[1], -1);   /* 0xfff */
    assert_int_equal(b[1], 1920); /* 0x780 */
    assert_int_equal(a[2], CT_WFDB_INVALID_SAMPLE); /* 0x800 = -2048, WFDB's marker */
    assert_int_equal(b[2], 1);

    const uint8_t f16[] = {0x01, 0x00, 0xff, 0xff, 0x00, 0x80, 0xff, 0x7f};
    assert_true(ct_wfdb_decode_16(f16, sizeof f16, 1, 4, out) == 4);
    assert_int_equal(a[0], 1);
    assert_int_equal(a[1], -1);
    assert_int_equal(a[2], -32768);
    assert_int_equal(a[3], 32767);

    const uint8_t f80[] = {0x80, 0x00, 0xff, 0x7f, 0x81, 0x01};
    assert_true(ct_wfdb_decode_80(f80, sizeof f80, 3, 2, out) == 2);
    assert_int_equal(a[0], 0);
    assert_int_equal(b[0], CT_WFDB_INVALID_SAMPLE);
    assert_int_equal(c[0], 127);
    assert_int_equal(a[1], -1);
    assert_int_equal(b[1], 1);
    assert_int_equal(c[1], -127);
}

/* Sample k of the stream, decoded bit by bit in the simplest way. */
static int ref_sample(int format, const uint8_t *in, size_t k)
{
    int v;
    if (format == 212) {
        const uint8_t *q = in + 3 * (k / 2);
        unsigned u = (k & 1) ? (unsigned)q[2] | ((unsigned)(q[1] >> 4) << 8)
                             : (unsigned)q[0] | ((unsigned)(q[1] & 15) << 8);
        v = (u & 0x800) ? (int)u - 4096 : (int)u;
        return v == -2048 ? CT_WFDB_INVALID_SAMPLE : v;
    }
    if (format == 16) {
        unsigned u = (unsigned)in[2 * k] | ((unsigned)in[2 * k + 1] << 8);
        return (u & 0x8000) ? (int)u - 65536 : (int)u;
    }
    v = (int)in[k] - 128;
    return v == -128 ? CT_WFDB_INVALID_SAMPLE : v;
}

static void test_kernels_match_reference(void **state)
{
    (void)state;
    enum { LEN = 3001 };
    uint8_t in[LEN];
    unsigned r = 1;
    for (int i = 0; i < LEN; i++) {
        r = r * 1103515245u + 12345u;
        in[i] = (uint8_t)(r >> 16);
    }
    static int16_t bufs[CT_WFDB_MAX_SIGNALS][LEN * 2];
    int16_t *out[CT_WFDB_MAX_SIGNALS];
    for (int s = 0; s < CT_WFDB_MAX_SIGNALS; s++)
        out[s] = bufs[s];
    const int formats[] = {212, 16, 80};
    const int nsigs[] = {1, 2, 3, 4, 5, 7, 12, 32};
    for (size_t fi = 0; fi < 3; fi++) {
        for (size_t ni = 0; ni < sizeof nsigs / sizeof nsigs[0]; ni++) {
            int ns = nsigs[ni], fmt = formats[fi];
            /* Every length, so that each way a file can end is met. */
            for (size_t len = 0; len <= 64; len++) {
                size_t total = fmt == 212 ? len / 3 * 2 + (len % 3 == 2)
                               : fmt == 16 ? len / 2
                                           : len;
                int64_t want = (int64_t)(total / (size_t)ns);
                int64_t got = fmt == 212 ? ct_wfdb_decode_212(in, len, ns, 1000, out)
                              : fmt == 16 ? ct_wfdb_decode_16(in, len, ns, 1000, out)
                                          : ct_wfdb_decode_80(in, len, ns, 1000, out);
                if (got != want)
                    fail_msg("format %d, %d signals, %zu bytes: %lld frames, expected %lld", fmt,
                             ns, len, (long long)got, (long long)want);
                for (int64_t f = 0; f < got; f++)
                    for (int s = 0; s < ns; s++)
                        assert_int_equal(out[s][f],
                                         ref_sample(fmt, in, (size_t)(f * ns + s)));
            }
            /* A long run, asked for fewer frames than the bytes hold. */
            int64_t ask = 500 / ns;
            int64_t got = fmt == 212 ? ct_wfdb_decode_212(in, LEN, ns, ask, out)
                          : fmt == 16 ? ct_wfdb_decode_16(in, LEN, ns, ask, out)
                                      : ct_wfdb_decode_80(in, LEN, ns, ask, out);
            assert_true(got == ask);
            for (int64_t f = 0; f < got; f++)
                for (int s = 0; s < ns; s++)
                    assert_int_equal(out[s][f], ref_sample(fmt, in, (size_t)(f * ns + s)));
        }
    }
}

static void test_kernel_arguments(void **state)
{
    (void)state;
    uint8_t in[6] = {0};
    int16_t a[4];
    int16_t *out[1] = {a};
    int16_t *none[1] = {NULL};
    assert_true(ct_wfdb_decode_212(in, 6, 0, 1, out) == CT_EINVAL);
    assert_true(ct_wfdb_decode_16(in, 6, CT_WFDB_MAX_SIGNALS + 1, 1, out) == CT_EINVAL);
    assert_true(ct_wfdb_decode_80(in, 6, 1, -1, out) == CT_EINVAL);
    assert_true(ct_wfdb_decode_80(in, 6, 1, 1, NULL) == CT_EINVAL);
    assert_true(ct_wfdb_decode_16(in, 6, 1, 1, none) == CT_EINVAL);
    assert_true(ct_wfdb_decode_212(NULL, 6, 1, 1, out) == CT_EINVAL);
    assert_true(ct_wfdb_decode_212(NULL, 0, 1, 0, NULL) == 0);
    assert_true(ct_wfdb_decode_212(in, 1, 1, 4, out) == 0); /* one byte holds no sample */
}

static void test_checksum16(void **state)
{
    (void)state;
    const int16_t a[] = {30000, 10000};
    assert_int_equal(ct_wfdb_checksum16(a, 2), 40000 - 65536);
    const int16_t b[] = {-1, -2, 3};
    assert_int_equal(ct_wfdb_checksum16(b, 3), 0);
    assert_int_equal(ct_wfdb_checksum16(b, 0), 0);
    assert_int_equal(ct_wfdb_checksum16(NULL, 5), 0);
    const int16_t c[] = {-32768, -32768, 5};
    assert_int_equal(ct_wfdb_checksum16(c, 3), 5);
}

/* ---- the 28 real records ---- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_real_records(void **state)
{
    (void)state;
    ct_wfdb_header *h = malloc(sizeof *h);
    double t0 = now_s();
    int64_t samples = 0;
    for (int r = 0; r < CT_TEST_N_RECORDS; r++) {
        char path[4096];
        ct_test_record_path(path, sizeof path, ct_test_records[r]);
        ct_error err;
        ct_wfdb_signals sig;
        if (ct_wfdb_header_read(path, h, &err) != 0 || ct_wfdb_signals_read(path, h, &sig, &err))
            fail_msg("%s: %s", path, err.msg);
        assert_int_equal(sig.n_signals, 2);
        assert_true(sig.n_samples == 650000);
        for (int s = 0; s < 2; s++) {
            /* Proven again here, independently of the reader's own check. */
            assert_int_equal(sig.samples[s][0], h->signals[s].initial_value);
            assert_int_equal(ct_wfdb_checksum16(sig.samples[s], sig.n_samples),
                             h->signals[s].checksum);
            int lo = 32767, hi = -32768;
            for (int64_t i = 0; i < sig.n_samples; i++) {
                if (sig.samples[s][i] < lo)
                    lo = sig.samples[s][i];
                if (sig.samples[s][i] > hi)
                    hi = sig.samples[s][i];
            }
            /* 11-bit ADC: every value within 0..2047, and the signal moves. */
            assert_true(lo >= 0 && hi <= 2047 && hi - lo > 100);
        }
        samples += 2 * sig.n_samples;
        ct_wfdb_signals_free(&sig);
        ct_wfdb_signals_free(&sig); /* freeing twice is harmless */
    }
    double dt = now_s() - t0;
    print_message("read %d records, %lld samples in %.3f s (%.1f M samples/s)\n",
                  CT_TEST_N_RECORDS, (long long)samples, dt, samples / dt / 1e6);
    /* The import of all 28 must stay well under 10 s, SQLite included. */
    assert_true(dt < 5.0);
    free(h);
}

/* ---- hand-made records ---- */

static void test_formats_16_80_212(void **state)
{
    (void)state;
    char *dir = ct_test_tempdir();
    ct_error err;

    const tsig s16[] = {{"f16.dat", 16, 0, "ABP"}, {"f16.dat", 16, 0, "PAP"},
                        {"f16.dat", 16, 0, "CVP"}};
    trec t;
    trec_fill(&t, 3, 101, s16);
    t.x[1][5] = -32768; /* format 16's own marker reads back as itself */
    make_record(dir, "f16", 3, s16, 101, t.x, 1);
    if (read_back(dir, "f16", &t, &err) != 0)
        fail_msg("%s", err.msg);
    trec_free(&t);

    const tsig s80[] = {{"f80.dat", 80, 0, "I"}, {"f80.dat", 80, 0, "II"}};
    trec_fill(&t, 2, 64, s80);
    make_record(dir, "f80", 2, s80, 64, t.x, 1);
    if (read_back(dir, "f80", &t, &err) != 0)
        fail_msg("%s", err.msg);
    trec_free(&t);

    /* Three 212 signals and an odd frame count: 21 samples, the last one
     * alone in two bytes, triples shared across frames. */
    const tsig s212[] = {{"f212.dat", 212, 0, "a"}, {"f212.dat", 212, 0, "b"},
                         {"f212.dat", 212, 0, "c"}};
    trec_fill(&t, 3, 7, s212);
    make_record(dir, "f212", 3, s212, 7, t.x, 1);
    char p[4096];
    ct_test_fmt(p, sizeof p, "%s/f212.dat", dir);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal((int)st.st_size, 32);
    if (read_back(dir, "f212", &t, &err) != 0)
        fail_msg("%s", err.msg);
    /* Padding the odd sample to a whole triple is accepted too. */
    FILE *f = fopen(p, "ab");
    fputc(0, f);
    fclose(f);
    if (read_back(dir, "f212", &t, &err) != 0)
        fail_msg("%s", err.msg);
    trec_free(&t);

    /* No signals at all is a valid record. */
    ct_test_write_text(dir, "empty.hea", "empty 0 360 1000\n");
    t.nsig = 0;
    t.nframes = 1000;
    assert_int_equal(read_back(dir, "empty", &t, &err), 0);

    /* A record of zero samples reads as zero samples. */
    ct_test_write_text(dir, "zero.hea", "zero 1 360 0\nzero.dat 16 200 16 0 0 0\n");
    ct_test_write(dir, "zero.dat", "", 0);
    t.nsig = 1;
    t.nframes = 0;
    assert_int_equal(read_back(dir, "zero", &t, &err), 0);
    ct_test_rmdir(dir);
}

static void test_multiple_files_and_offsets(void **state)
{
    (void)state;
    char *dir = ct_test_tempdir();
    ct_error err;
    const tsig sigs[] = {{"a.dat", 212, 0, "MLII"}, {"a.dat", 212, 0, "V1"},
                         {"b.dat", 16, 512, "ABP"}, {"c.dat", 80, 3, "resp"},
                         {"c.dat", 80, 3, "pleth"}};
    trec t;
    trec_fill(&t, 5, 333, sigs);
    make_record(dir, "multi", 5, sigs, 333, t.x, 1);
    if (read_back(dir, "multi", &t, &err) != 0)
        fail_msg("%s", err.msg);

    /* Without a sample count in the header, the files tell it... */
    make_record(dir, "nocount", 5, sigs, 333, t.x, 0);
    if (read_back(dir, "nocount", &t, &err) != 0)
        fail_msg("%s", err.msg);
    /* ...and they must agree. */
    char p[4096];
    ct_test_fmt(p, sizeof p, "%s/b.dat", dir);
    FILE *f = fopen(p, "ab");
    fwrite("\0\0", 1, 2, f);
    fclose(f);
    assert_int_equal(read_back(dir, "nocount", NULL, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record nocount: b.dat holds 334 samples per signal but a.dat "
                                 "holds 333");
    /* A file that cannot end where it does is refused, not rounded. */
    f = fopen(p, "ab");
    fputc(0, f);
    fclose(f);
    assert_int_equal(read_back(dir, "nocount", NULL, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "b.dat holds 669 bytes after its 512-byte offset, not a "
                                    "whole number of frames"));
    trec_free(&t);
    ct_test_rmdir(dir);
}

static void copy_prefix(const char *from, const char *dir, const char *name, size_t keep,
                        size_t extra, long flip_at)
{
    size_t len;
    unsigned char *data = ct_test_slurp(from, &len);
    size_t n = keep < len ? keep : len;
    data = realloc(data, n + extra + 1);
    memset(data + n, 0, extra);
    if (flip_at >= 0)
        data[flip_at] ^= 0x01;
    ct_test_write(dir, name, data, n + extra);
    free(data);
}

static void test_size_errors(void **state)
{
    (void)state;
    char *dir = ct_test_tempdir();
    ct_error err;
    char hea[4096], dat[4096];
    ct_test_fmt(hea, sizeof hea, "%s/100.hea", ct_test_mitdb());
    ct_test_fmt(dat, sizeof dat, "%s/100.dat", ct_test_mitdb());
    copy_prefix(hea, dir, "100.hea", (size_t)-1, 0, -1);

    copy_prefix(dat, dir, "100.dat", 1949998, 0, -1);
    assert_int_equal(read_back(dir, "100", NULL, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record 100: 100.dat is 1949998 bytes, header promises 1950000");

    copy_prefix(dat, dir, "100.dat", 1950000, 3, -1);
    assert_int_equal(read_back(dir, "100", NULL, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record 100: 100.dat is 1950003 bytes, header promises 1950000 "
                                 "(3 bytes too many)");

    /* One bit flipped in the low byte of a V5 sample, deep in the file. */
    copy_prefix(dat, dir, "100.dat", 1950000, 0, 3 * 400000 + 2);
    assert_int_equal(read_back(dir, "100", NULL, &err), CT_ECHECKSUM);
    assert_non_null(strstr(err.msg, "record 100: signal 1 (V5): checksum "));
    assert_non_null(strstr(err.msg, "in data, header says 20052"));

    /* The same bit of an MLII sample names MLII. */
    copy_prefix(dat, dir, "100.dat", 1950000, 0, 3 * 400000);
    assert_int_equal(read_back(dir, "100", NULL, &err), CT_ECHECKSUM);
    assert_non_null(strstr(err.msg, "record 100: signal 0 (MLII): checksum "));

    /* The intact copy reads. */
    copy_prefix(dat, dir, "100.dat", 1950000, 0, -1);
    assert_int_equal(read_back(dir, "100", NULL, &err), 0);

    /* Missing signal file. */
    char p[4096];
    ct_test_fmt(p, sizeof p, "%s/100.dat", dir);
    unlink(p);
    assert_int_equal(read_back(dir, "100", NULL, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "record 100: cannot open"));

    /* A file larger than we read whole is refused before any allocation
     * (a sparse file: it costs no disk). */
    int fd = open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)CT_WFDB_MAX_DAT_BYTES + 3), 0);
    close(fd);
    assert_int_equal(read_back(dir, "100", NULL, &err), CT_ELIMIT);
    assert_string_equal(err.msg, "record 100: 100.dat is 2147483651 bytes, more than the "
                                 "2147483648 we read");

    /* Shorter than its byte offset. */
    ct_test_write_text(dir, "off.hea", "off 1 360\noff.dat 16+100\n");
    ct_test_write(dir, "off.dat", "abcd", 4);
    assert_int_equal(read_back(dir, "off", NULL, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record off: off.dat is 4 bytes, shorter than its byte offset "
                                 "100");
    ct_test_rmdir(dir);
}

static void test_value_errors(void **state)
{
    (void)state;
    char *dir = ct_test_tempdir();
    ct_error err;
    const tsig sigs[] = {{"v.dat", 16, 0, "MLII"}, {"v.dat", 16, 0, "V5"}};
    trec t;
    trec_fill(&t, 2, 50, sigs);
    make_record(dir, "v", 2, sigs, 50, t.x, 1);
    assert_int_equal(read_back(dir, "v", &t, &err), 0);

    /* One changed byte: signal 1, frame 10, low byte. */
    char p[4096];
    ct_test_fmt(p, sizeof p, "%s/v.dat", dir);
    size_t len;
    unsigned char *d = ct_test_slurp(p, &len);
    d[10 * 4 + 2] ^= 0x10;
    ct_test_write(dir, "v.dat", d, len);
    assert_int_equal(read_back(dir, "v", NULL, &err), CT_ECHECKSUM);
    char want[256];
    int bad = sum16(t.x[1], 50);
    int changed = t.x[1][10] ^ 0x10; /* the low byte's bit 4, in a two's complement value */
    int now = sum16(t.x[1], 50) - t.x[1][10] + changed;
    now = ((now % 65536) + 65536) % 65536;
    ct_test_fmt(want, sizeof want, "record v: signal 1 (V5): checksum %d in data, header says %d",
             now >= 0x8000 ? now - 0x10000 : now, bad);
    assert_string_equal(err.msg, want);
    d[10 * 4 + 2] ^= 0x10;

    /* A wrong first sample in the header (file intact). */
    ct_test_write(dir, "v.dat", d, len);
    char hea[1024];
    ct_test_fmt(hea, sizeof hea,
             "v 2 360 50\nv.dat 16 200 12 0 %d %d 0 MLII\nv.dat 16 200 12 0 %d %d 0 V5\n",
             t.x[0][0] + 1, sum16(t.x[0], 50), t.x[1][0], sum16(t.x[1], 50));
    ct_test_write_text(dir, "v.hea", hea);
    assert_int_equal(read_back(dir, "v", NULL, &err), CT_ECHECKSUM);
    ct_test_fmt(want, sizeof want, "record v: signal 0 (MLII): first sample %d in data, header "
             "says %d", t.x[0][0], t.x[0][0] + 1);
    assert_string_equal(err.msg, want);

    /* Checksums written unsigned (as some writers do) agree modulo 2^16. */
    ct_test_fmt(hea, sizeof hea,
             "v 2 360 50\nv.dat 16 200 12 0 %d %d 0 MLII\nv.dat 16 200 12 0 %d %d 0 V5\n",
             t.x[0][0], sum16(t.x[0], 50) & 0xffff, t.x[1][0], sum16(t.x[1], 50) & 0xffff);
    ct_test_write_text(dir, "v.hea", hea);
    assert_int_equal(read_back(dir, "v", &t, &err), 0);
    free(d);
    trec_free(&t);
    ct_test_rmdir(dir);
}

/* Missing samples: WFDB sums the stored marker (-2048 in 212), and so must we,
 * while the caller sees CT_WFDB_INVALID_SAMPLE. */
static void test_invalid_samples(void **state)
{
    (void)state;
    char *dir = ct_test_tempdir();
    ct_error err;
    const tsig sigs[] = {{"m.dat", 212, 0, "MLII"}};
    trec t;
    trec_fill(&t, 1, 9, sigs);
    t.x[0][0] = -2048;
    t.x[0][4] = -2048;
    make_record(dir, "m", 1, sigs, 9, t.x, 1);
    t.x[0][0] = CT_WFDB_INVALID_SAMPLE;
    t.x[0][4] = CT_WFDB_INVALID_SAMPLE;
    if (read_back(dir, "m", &t, &err) != 0)
        fail_msg("%s", err.msg);
    trec_free(&t);

    const tsig s80[] = {{"n.dat", 80, 0, "x"}};
    trec_fill(&t, 1, 4, s80);
    t.x[0][2] = -128;
    make_record(dir, "n", 1, s80, 4, t.x, 1);
    t.x[0][2] = CT_WFDB_INVALID_SAMPLE;
    if (read_back(dir, "n", &t, &err) != 0)
        fail_msg("%s", err.msg);
    trec_free(&t);
    ct_test_rmdir(dir);
}

static void test_unsupported(void **state)
{
    (void)state;
    char *dir = ct_test_tempdir();
    ct_error err;
    char path[4096];
    ct_test_fmt(path, sizeof path, "%s/u", dir);
    ct_wfdb_header *h = calloc(1, sizeof *h);
    ct_wfdb_signals sig;

    ct_test_write_text(dir, "u.hea", "u 1 360 2\nu.dat 16:1\n");
    ct_test_write(dir, "u.dat", "\1\0\2\0", 4);
    assert_int_equal(ct_wfdb_header_read(path, h, &err), 0);
    assert_int_equal(h->signals[0].skew, 1);
    assert_int_equal(ct_wfdb_signals_read(path, h, &sig, &err), CT_EUNSUPPORTED);
    assert_string_equal(err.msg, "record u: signal 0: skew 1 is not supported");

    /* A header built by a caller is checked as strictly as a parsed one. */
    ct_test_write_text(dir, "u.hea", "u 1 360 2\nu.dat 16\n");
    assert_int_equal(ct_wfdb_header_read(path, h, &err), 0);
    assert_int_equal(ct_wfdb_signals_read(path, h, &sig, &err), 0);
    assert_int_equal(sig.samples[0][1], 2);
    ct_wfdb_signals_free(&sig);
    strcpy(h->signals[0].file_name, "../u.dat");
    assert_int_equal(ct_wfdb_signals_read(path, h, &sig, &err), CT_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "not a plain name"));
    strcpy(h->signals[0].file_name, "u.dat");
    h->signals[0].format = 310;
    assert_int_equal(ct_wfdb_signals_read(path, h, &sig, &err), CT_EUNSUPPORTED);
    h->signals[0].format = 16;
    h->n_signals = 40;
    assert_int_equal(ct_wfdb_signals_read(path, h, &sig, &err), CT_EINVAL);
    assert_int_equal(ct_wfdb_signals_read(NULL, h, &sig, &err), CT_EINVAL);
    free(h);
    ct_test_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_known_values),
        cmocka_unit_test(test_kernels_match_reference),
        cmocka_unit_test(test_kernel_arguments),
        cmocka_unit_test(test_checksum16),
        cmocka_unit_test(test_real_records),
        cmocka_unit_test(test_formats_16_80_212),
        cmocka_unit_test(test_multiple_files_and_offsets),
        cmocka_unit_test(test_size_errors),
        cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_invalid_samples),
        cmocka_unit_test(test_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
