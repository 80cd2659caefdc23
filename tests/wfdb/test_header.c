/* Tests of WFDB header parsing: the 28 real MIT-BIH headers field by field,
 * the grammar's optional parts and defaults, line endings and comments, and
 * one hand-made header for every way a header can be refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "wfdb_test_util.h"

/* Parses text as record "rec"; returns the code and keeps the message. */
static int parse(const char *text, ct_wfdb_header *h, ct_error *err)
{
    ct_error_clear(err);
    return ct_wfdb_header_parse(text, strlen(text), "rec", h, err);
}

/* Asserts that text is refused with `code` and a message holding each of
 * the NULL-terminated fragments. */
static void expect_refused(const char *text, int code, ...)
{
    ct_wfdb_header *h = malloc(sizeof *h);
    assert_non_null(h);
    ct_error err;
    int rc = parse(text, h, &err);
    if (rc != code)
        fail_msg("expected %d, got %d (%s) for:\n%s", code, rc, err.msg, text);
    assert_int_equal(err.code, code);
    va_list ap;
    va_start(ap, code);
    const char *frag;
    while ((frag = va_arg(ap, const char *)) != NULL)
        if (!strstr(err.msg, frag))
            fail_msg("message '%s' lacks '%s'", err.msg, frag);
    va_end(ap);
    /* A refused header leaves nothing half-filled behind. */
    assert_int_equal(h->n_signals, 0);
    assert_string_equal(h->record_name, "");
    free(h);
}

static void test_real_headers(void **state)
{
    (void)state;
    ct_wfdb_header *h = malloc(sizeof *h);
    assert_non_null(h);
    for (int r = 0; r < CT_TEST_N_RECORDS; r++) {
        char path[4096], dat[32];
        ct_test_record_path(path, sizeof path, ct_test_records[r]);
        ct_error err;
        int rc = ct_wfdb_header_read(path, h, &err);
        if (rc != 0)
            fail_msg("%s: %s", path, err.msg);
        assert_string_equal(h->record_name, ct_test_records[r]);
        assert_int_equal(h->n_segments, 0);
        assert_int_equal(h->n_signals, 2);
        assert_true(h->fs_hz == 360.0);
        assert_true(h->n_samples == 650000);
        assert_string_equal(h->base_time, "");
        assert_true(h->comments[0] != '\0');
        assert_int_equal(h->comments_truncated, 0);
        ct_test_fmt(dat, sizeof dat, "%s.dat", ct_test_records[r]);
        for (int s = 0; s < 2; s++) {
            const ct_wfdb_signal *g = &h->signals[s];
            assert_string_equal(g->file_name, dat);
            assert_int_equal(g->format, 212);
            assert_int_equal(g->samples_per_frame, 1);
            assert_int_equal(g->skew, 0);
            assert_true(g->byte_offset == 0);
            assert_true(g->gain_adu_per_unit == 200.0);
            assert_int_equal(g->gain_given, 1);
            assert_int_equal(g->adc_resolution_bits, 11);
            assert_int_equal(g->adc_zero, 1024);
            assert_int_equal(g->baseline_adu, 1024);
            assert_string_equal(g->units, "mV");
            assert_int_equal(g->has_initial_value, 1);
            assert_int_equal(g->has_checksum, 1);
            assert_int_equal(g->block_size, 0);
            assert_true(g->description[0] != '\0');
        }
    }
    free(h);
}

static void test_record_100(void **state)
{
    (void)state;
    ct_wfdb_header *h = malloc(sizeof *h);
    assert_non_null(h);
    char path[4096];
    ct_test_record_path(path, sizeof path, "100");
    ct_error err;
    assert_int_equal(ct_wfdb_header_read(path, h, &err), 0);
    assert_string_equal(h->signals[0].description, "MLII");
    assert_string_equal(h->signals[1].description, "V5");
    assert_int_equal(h->signals[0].initial_value, 995);
    assert_int_equal(h->signals[1].initial_value, 1011);
    assert_int_equal(h->signals[0].checksum, -22131);
    assert_int_equal(h->signals[1].checksum, 20052);
    assert_string_equal(h->comments, "69 M 1085 1629 x1\nAldomet, Inderal");
    free(h);
}

/* PhysioNet ships CRLF; many copies are LF. Both must parse to the same. */
static void test_crlf_and_lf_agree(void **state)
{
    (void)state;
    char path[4096];
    ct_test_fmt(path, sizeof path, "%s/100.hea", ct_test_mitdb());
    size_t len;
    unsigned char *crlf = ct_test_slurp(path, &len);
    assert_non_null(memchr(crlf, '\r', len)); /* the shared copy is CRLF */
    char *lf = malloc(len);
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (crlf[i] != '\r')
            lf[n++] = (char)crlf[i];
    ct_wfdb_header *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    ct_error err;
    assert_int_equal(ct_wfdb_header_parse((char *)crlf, len, "100", a, &err), 0);
    assert_int_equal(ct_wfdb_header_parse(lf, n, "100", b, &err), 0);
    assert_memory_equal(a, b, sizeof *a);
    assert_string_equal(b->signals[1].description, "V5");
    free(a);
    free(b);
    free(lf);
    free(crlf);
}

static void test_comments_and_blank_lines(void **state)
{
    (void)state;
    const char *text = "#wfdb 10.5\r\n"
                       "\r\n"
                       "   # indented comment\n"
                       "rec 2 360 100\n"
                       "\n"
                       "# between signals\n"
                       "rec.dat 212 200 11 1024 5 6 0 MLII\n"
                       "\t \n"
                       "rec.dat\t212  100(7)/uV   11 1024 8 9 0   lead V5 (chest)  \r\n"
                       "#trailing\n"
                       "# 69 M 1085 1629 x1";
    ct_wfdb_header h;
    ct_error err;
    assert_int_equal(parse(text, &h, &err), 0);
    assert_int_equal(h.n_signals, 2);
    assert_string_equal(h.signals[0].description, "MLII");
    assert_string_equal(h.signals[1].description, "lead V5 (chest)");
    assert_true(h.signals[1].gain_adu_per_unit == 100.0);
    assert_int_equal(h.signals[1].baseline_adu, 7);
    assert_string_equal(h.signals[1].units, "uV");
    assert_string_equal(h.comments, "wfdb 10.5\nindented comment\nbetween signals\ntrailing\n"
                                    "69 M 1085 1629 x1");
}

static void test_defaults(void **state)
{
    (void)state;
    ct_wfdb_header h;
    ct_error err;
    assert_int_equal(parse("rec 1\nrec.dat 16\n", &h, &err), 0);
    assert_true(h.fs_hz == 250.0);
    assert_true(h.counter_freq_hz == 0.0);
    assert_true(h.n_samples == -1);
    const ct_wfdb_signal *s = &h.signals[0];
    assert_int_equal(s->format, 16);
    assert_true(s->gain_adu_per_unit == 200.0);
    assert_int_equal(s->gain_given, 0);
    assert_int_equal(s->baseline_adu, 0);
    assert_string_equal(s->units, "mV");
    assert_int_equal(s->adc_resolution_bits, 16);
    assert_int_equal(s->adc_zero, 0);
    assert_int_equal(s->has_initial_value, 0);
    assert_int_equal(s->initial_value, 0);
    assert_int_equal(s->has_checksum, 0);
    assert_string_equal(s->description, "");

    /* Gain 0 means "uncalibrated": the default gain, flagged as not given;
     * the baseline defaults to the ADC zero. */
    assert_int_equal(parse("rec 1 500\nrec.dat 80 0 0 128\n", &h, &err), 0);
    assert_true(h.signals[0].gain_adu_per_unit == 200.0);
    assert_int_equal(h.signals[0].gain_given, 0);
    assert_int_equal(h.signals[0].adc_resolution_bits, 8);
    assert_int_equal(h.signals[0].adc_zero, 128);
    assert_int_equal(h.signals[0].baseline_adu, 128);
    assert_int_equal(h.signals[0].initial_value, 128);

    assert_int_equal(parse("rec 1\nrec.dat 212 400.5/uV\n", &h, &err), 0);
    assert_int_equal(h.signals[0].adc_resolution_bits, 12);
    assert_true(h.signals[0].gain_adu_per_unit == 400.5);
    assert_int_equal(h.signals[0].gain_given, 1);
    assert_string_equal(h.signals[0].units, "uV");
}

static void test_full_record_line(void **state)
{
    (void)state;
    ct_wfdb_header h;
    ct_error err;
    assert_int_equal(parse("rec 3 128.5/1000(-2.5) 12345 13:45:01.5 31/12/2001\n"
                           "rec.dat 16x1:0+512 1e3(-5)/mmHg 12 -3 -4 -5 0 ABP\n"
                           "rec.dat 16+512\n"
                           "other.dat 80\n",
                           &h, &err),
                     0);
    assert_true(h.fs_hz == 128.5);
    assert_true(h.counter_freq_hz == 1000.0);
    assert_true(h.base_counter == -2.5);
    assert_true(h.n_samples == 12345);
    assert_string_equal(h.base_time, "13:45:01.5");
    assert_string_equal(h.base_date, "31/12/2001");
    assert_true(h.signals[0].byte_offset == 512);
    assert_true(h.signals[0].gain_adu_per_unit == 1000.0);
    assert_int_equal(h.signals[0].baseline_adu, -5);
    assert_string_equal(h.signals[0].units, "mmHg");
    assert_int_equal(h.signals[0].adc_zero, -3);
    assert_int_equal(h.signals[0].initial_value, -4);
    assert_int_equal(h.signals[0].checksum, -5);
    assert_string_equal(h.signals[0].description, "ABP");
    assert_true(h.signals[1].byte_offset == 512);
    assert_string_equal(h.signals[2].file_name, "other.dat");

    /* The record name is checked only when the caller names the record. */
    assert_int_equal(ct_wfdb_header_parse("x 0\n", 4, NULL, &h, &err), 0);
    assert_string_equal(h.record_name, "x");
    assert_int_equal(h.n_signals, 0);
}

static void test_refused_record_lines(void **state)
{
    (void)state;
    expect_refused("rec/3 2 360\n", CT_EUNSUPPORTED, "record rec: line 1:", "multi-segment",
                   NULL);
    expect_refused("rec/x 2\n", CT_EFORMAT, "segments", NULL);
    expect_refused("other 1\nother.dat 212\n", CT_EFORMAT, "line 1", "'other'", NULL);
    expect_refused("rec\n", CT_EFORMAT, "number of signals missing", NULL);
    expect_refused("rec x\n", CT_EFORMAT, "number of signals 'x'", NULL);
    expect_refused("rec -1\n", CT_EFORMAT, "number of signals '-1'", NULL);
    expect_refused("rec 33 360\n", CT_ELIMIT, "33 signals", NULL);
    expect_refused("rec 0 36O\n", CT_EFORMAT, "sampling frequency '36O'", NULL);
    expect_refused("rec 0 0\n", CT_EFORMAT, "sampling frequency 0", NULL);
    expect_refused("rec 0 -360\n", CT_EFORMAT, "sampling frequency -360", NULL);
    expect_refused("rec 0 2e6\n", CT_EFORMAT, "absurd", NULL);
    expect_refused("rec 0 nan\n", CT_EFORMAT, "sampling frequency 'nan'", NULL);
    expect_refused("rec 0 1e999\n", CT_EFORMAT, "sampling frequency", NULL);
    expect_refused("rec 0 360/0\n", CT_EFORMAT, "counter frequency 0", NULL);
    expect_refused("rec 0 360/x\n", CT_EFORMAT, "counter frequency 'x'", NULL);
    expect_refused("rec 0 360/720(5\n", CT_EFORMAT, "closing ')'", NULL);
    expect_refused("rec 0 360/720(y)\n", CT_EFORMAT, "base counter 'y'", NULL);
    expect_refused("rec 0 360 -5\n", CT_EFORMAT, "number of samples -5 is negative", NULL);
    expect_refused("rec 0 360 12a\n", CT_EFORMAT, "number of samples '12a'", NULL);
    expect_refused("rec 0 360 99999999999999999999\n", CT_EFORMAT, "number of samples", NULL);
    expect_refused("rec 0 360 1000 noon\n", CT_EFORMAT, "base time 'noon'", NULL);
    expect_refused("rec 0 360 1000 12:00:00 1-1-2000\n", CT_EFORMAT, "base date", NULL);
    expect_refused("rec 0 360 1000 12:00:00 1/1/2000 extra\n", CT_EFORMAT, "'extra'", NULL);
    expect_refused("# only a comment\n\n", CT_EFORMAT, "no record line", NULL);
    expect_refused("", CT_EFORMAT, "empty", NULL);
    expect_refused("rec 0\nrec.dat 212\n", CT_EFORMAT, "line 2", "unexpected line", NULL);
    expect_refused("rec 1\nrec.dat 212 200 11 0 0 0 0 MLII\rV5\n", CT_EFORMAT, "line 2",
                   "control byte 0x0d at column 32", NULL);
    expect_refused("re\033c 0\n", CT_EFORMAT, "line 1", "control byte 0x1b", NULL);

    ct_wfdb_header h;
    ct_error err;
    static const char nul[] = "rec 0\n# a\0b\n";
    assert_int_equal(ct_wfdb_header_parse(nul, sizeof nul - 1, "rec", &h, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record rec: line 2: NUL byte in a text header");
}

static void test_refused_signal_lines(void **state)
{
    (void)state;
    expect_refused("rec 2\nrec.dat 212\n", CT_EFORMAT, "ends after 1 of its 2 signal lines",
                   NULL);
    expect_refused("rec 1\n\n# c\nrec.dat\n", CT_EFORMAT, "line 4", "signal 0",
                   "format missing", NULL);
    expect_refused("rec 1\nrec.dat 212x2\n", CT_EUNSUPPORTED, "line 2", "samples per frame",
                   NULL);
    expect_refused("rec 1\nrec.dat 212x0\n", CT_EFORMAT, "at least 1", NULL);
    expect_refused("rec 1\nrec.dat 310\n", CT_EUNSUPPORTED, "format 310", NULL);
    expect_refused("rec 1\nrec.dat 8\n", CT_EUNSUPPORTED, "format 8", NULL);
    expect_refused("rec 1\nrec.dat 999\n", CT_EFORMAT, "999 is not a WFDB signal format", NULL);
    expect_refused("rec 1\nrec.dat abc\n", CT_EFORMAT, "format 'abc'", NULL);
    expect_refused("rec 1\nrec.dat 212q\n", CT_EFORMAT, "format '212q'", NULL);
    expect_refused("rec 1\nrec.dat 212+\n", CT_EFORMAT, "format '212+'", NULL);
    expect_refused("rec 1\nrec.dat 212+1+2\n", CT_EFORMAT, "format '212+1+2'", NULL);
    expect_refused("rec 1\nrec.dat 212 2OO\n", CT_EFORMAT, "line 2", "gain '2OO'", NULL);
    expect_refused("rec 1\nrec.dat 212 200(0\n", CT_EFORMAT, "baseline", "')'", NULL);
    expect_refused("rec 1\nrec.dat 212 200(x)\n", CT_EFORMAT, "baseline 'x'", NULL);
    expect_refused("rec 1\nrec.dat 212 200(1)mV\n", CT_EFORMAT, "gain[(baseline)][/units]",
                   NULL);
    expect_refused("rec 1\nrec.dat 212 200/\n", CT_EFORMAT, "units missing", NULL);
    expect_refused("rec 1\nrec.dat 212 200/abcdefghijklmnopqrstuvwxyz0123456\n", CT_EFORMAT,
                   "units", "longer", NULL);
    expect_refused("rec 1\nrec.dat 212 200 1x\n", CT_EFORMAT, "ADC resolution '1x'", NULL);
    expect_refused("rec 1\nrec.dat 212 200 33\n", CT_EFORMAT, "ADC resolution '33'", NULL);
    expect_refused("rec 1\nrec.dat 212 200 11 zero\n", CT_EFORMAT, "ADC zero 'zero'", NULL);
    expect_refused("rec 1\nrec.dat 212 200 11 0 1.5\n", CT_EFORMAT, "initial value '1.5'",
                   NULL);
    expect_refused("rec 1\nrec.dat 212 200 11 0 0 0x10\n", CT_EFORMAT, "checksum '0x10'", NULL);
    expect_refused("rec 1\nrec.dat 212 200 11 0 0 0 -1\n", CT_EFORMAT, "block size '-1'",
                   NULL);
    char desc[400];
    ct_test_fmt(desc, sizeof desc, "rec 1\nrec.dat 212 200 11 0 0 0 0 %0200d\n", 0);
    expect_refused(desc, CT_EFORMAT, "description is 200 bytes", NULL);
    expect_refused("rec 2\na.dat 212\na.dat 16\n", CT_EFORMAT, "line 3",
                   "shares a.dat with signal 0 but has format 16", NULL);
    expect_refused("rec 2\na.dat 212+0\na.dat 212+6\n", CT_EFORMAT, "byte offset", NULL);
    expect_refused("rec 3\na.dat 16\nb.dat 16\na.dat 16\n", CT_EFORMAT, "line 4",
                   "uses a.dat again", NULL);
}

static void test_header_limits(void **state)
{
    (void)state;
    size_t big = (size_t)CT_WFDB_MAX_HEADER_BYTES + 1;
    char *text = malloc(big);
    memset(text, '#', big);
    memcpy(text, "rec 0\n", 6);
    ct_wfdb_header *h = malloc(sizeof *h);
    ct_error err;
    assert_int_equal(ct_wfdb_header_parse(text, big, "rec", h, &err), CT_ELIMIT);
    assert_non_null(strstr(err.msg, "record rec: header is"));

    /* Comments beyond the buffer are dropped whole lines at a time, and the
     * drop is flagged, not silent. */
    size_t n = 0;
    n += (size_t)sprintf(text + n, "rec 0\n");
    for (int i = 0; i < 300; i++)
        n += (size_t)sprintf(text + n, "# comment line %03d of a long clinical history\n", i);
    assert_int_equal(ct_wfdb_header_parse(text, n, "rec", h, &err), 0);
    assert_int_equal(h->comments_truncated, 1);
    size_t clen = strlen(h->comments);
    assert_true(clen < CT_WFDB_MAX_COMMENTS);
    assert_true(clen > CT_WFDB_MAX_COMMENTS - 60);
    assert_non_null(strstr(h->comments, "comment line 000 of"));
    /* It ends with a whole line. */
    assert_string_equal(h->comments + clen - strlen("long clinical history"),
                        "long clinical history");
    free(h);
    free(text);
}

static void test_read_errors(void **state)
{
    (void)state;
    ct_wfdb_header *h = malloc(sizeof *h);
    ct_error err;
    char *dir = ct_test_tempdir();
    char path[4096];
    ct_test_fmt(path, sizeof path, "%s/nothere", dir);
    assert_int_equal(ct_wfdb_header_read(path, h, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "record nothere: cannot open"));
    assert_non_null(strstr(err.msg, "nothere.hea"));

    /* The name inside the header must be the file's. */
    ct_test_write_text(dir, "copy.hea", "100 2 360 650000\n100.dat 212\n100.dat 212\n");
    ct_test_fmt(path, sizeof path, "%s/copy", dir);
    assert_int_equal(ct_wfdb_header_read(path, h, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record copy: line 1: header names record '100', not 'copy'");

    ct_test_write_text(dir, "ok.hea", "ok 1 100 10\nok.dat 80\n");
    ct_test_fmt(path, sizeof path, "%s/ok", dir);
    assert_int_equal(ct_wfdb_header_read(path, h, &err), 0);
    assert_true(h->n_samples == 10);
    assert_int_equal(ct_wfdb_header_read("", h, &err), CT_EINVAL);
    ct_test_rmdir(dir);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_headers),
        cmocka_unit_test(test_record_100),
        cmocka_unit_test(test_crlf_and_lf_agree),
        cmocka_unit_test(test_comments_and_blank_lines),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_full_record_line),
        cmocka_unit_test(test_refused_record_lines),
        cmocka_unit_test(test_refused_signal_lines),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_read_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
