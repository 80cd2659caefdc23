/* Unit tests of the device simulator's pure parts: how a record is cut into
 * Observations, the effective time of each, the schedule they are due on,
 * the Patient id derived from a record path, bearer tokens (syntax and the
 * token file's rules) and the one-line summary of an OperationOutcome. The
 * requests themselves are in test_stream_request.c. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cardiotwin/client.h"
#include "cardiotwin/fhir.h"

/* ---- cutting -------------------------------------------------------------------- */

static void test_plan_mitdb_record(void **state)
{
    (void)state;
    ct_client_stream_plan p;
    ct_error err = {0};
    /* An MIT-BIH record: 650000 samples at 360 Hz, 10 s per Observation. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, 0.0, &p, &err), 0);
    assert_int_equal(p.samples_per_obs, 3600);
    assert_int_equal(p.n_samples, 650000);
    assert_int_equal(p.n_obs, 181);
    int64_t first, count;
    ct_client_stream_obs_range(&p, 0, &first, &count);
    assert_int_equal(first, 0);
    assert_int_equal(count, 3600);
    ct_client_stream_obs_range(&p, 179, &first, &count);
    assert_int_equal(first, 179 * 3600);
    assert_int_equal(count, 3600);
    /* The last one is shorter: 650000 - 180 * 3600 = 2000 samples. */
    ct_client_stream_obs_range(&p, 180, &first, &count);
    assert_int_equal(first, 648000);
    assert_int_equal(count, 2000);
    /* The Observations cover the record exactly, in order, without overlap. */
    int64_t next = 0;
    for (int64_t k = 0; k < p.n_obs; k++) {
        ct_client_stream_obs_range(&p, k, &first, &count);
        assert_int_equal(first, next);
        assert_true(count >= 1 && count <= p.samples_per_obs);
        next = first + count;
    }
    assert_int_equal(next, 650000);
}

static void test_plan_exact_multiple_and_limits(void **state)
{
    (void)state;
    ct_client_stream_plan p;
    /* 36000 samples are exactly 10 Observations of 10 s: no short last one. */
    assert_int_equal(ct_client_stream_plan_make(36000, 360.0, 10.0, 0.0, &p, NULL), 0);
    assert_int_equal(p.n_obs, 10);
    int64_t first, count;
    ct_client_stream_obs_range(&p, 9, &first, &count);
    assert_int_equal(count, 3600);
    /* --limit-seconds 3 with 1 s Observations: three of 360 samples. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 1.0, 3.0, &p, NULL), 0);
    assert_int_equal(p.n_samples, 1080);
    assert_int_equal(p.n_obs, 3);
    /* A limit beyond the record is the whole record. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, 5000.0, &p, NULL), 0);
    assert_int_equal(p.n_samples, 650000);
    assert_int_equal(p.n_obs, 181);
    /* A limit that is not a whole number of Observations ends in a short one. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, 25.0, &p, NULL), 0);
    assert_int_equal(p.n_obs, 3);
    ct_client_stream_obs_range(&p, 2, &first, &count);
    assert_int_equal(count, 1800);
    /* Fractions of a second, rounded to whole samples. */
    assert_int_equal(ct_client_stream_plan_make(1000, 360.0, 0.5, 0.0, &p, NULL), 0);
    assert_int_equal(p.samples_per_obs, 180);
    assert_int_equal(p.n_obs, 6);
    assert_int_equal(ct_client_stream_plan_make(1000, 250.0, 0.01, 0.0, &p, NULL), 0);
    assert_int_equal(p.samples_per_obs, 3); /* 2.5 rounds up */
    /* One sample per Observation is the smallest cut. */
    assert_int_equal(ct_client_stream_plan_make(5, 360.0, 1.0 / 360.0, 0.0, &p, NULL), 0);
    assert_int_equal(p.samples_per_obs, 1);
    assert_int_equal(p.n_obs, 5);
}

static void test_plan_refusals(void **state)
{
    (void)state;
    ct_client_stream_plan p;
    ct_error err = {0};
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 0.0, 0.0, &p, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "seconds per observation 0"));
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, -1.0, 0.0, &p, &err), CT_EINVAL);
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 3600.5, 0.0, &p, &err), CT_EINVAL);
    /* 3600 s at 360 Hz is 1,296,000 samples: more than an Observation may carry. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 3600.0, 0.0, &p, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "1296000 samples"));
    /* Less than one sample. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 0.001, 0.0, &p, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "less than one sample"));
    assert_int_equal(ct_client_stream_plan_make(650000, 0.0, 10.0, 0.0, &p, &err), CT_EINVAL);
    assert_int_equal(ct_client_stream_plan_make(650000, 1e9, 10.0, 0.0, &p, &err), CT_EINVAL);
    assert_int_equal(ct_client_stream_plan_make(0, 360.0, 10.0, 0.0, &p, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "no samples"));
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, -1.0, &p, &err), CT_EINVAL);
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, 0.0001, &p, &err), CT_EINVAL);
    double nan = NAN;
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, nan, 0.0, &p, &err), CT_EINVAL);
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, nan, &p, &err), CT_EINVAL);
    assert_int_equal(ct_client_stream_plan_make(650000, nan, 10.0, 0.0, &p, &err), CT_EINVAL);
    assert_int_equal(p.n_obs, 0); /* nothing half-filled after a refusal */
}

/* ---- effective times and the schedule --------------------------------------------- */

static void test_effective_times_follow_each_other(void **state)
{
    (void)state;
    ct_client_stream_plan p;
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, 0.0, &p, NULL), 0);
    const int64_t t0 = 1795305600000; /* 2026-11-22T00:00:00Z */
    assert_int_equal(ct_client_stream_sample_ms(&p, t0, 0), t0);
    assert_int_equal(ct_client_stream_sample_ms(&p, t0, 3600), t0 + 10000);
    assert_int_equal(ct_client_stream_sample_ms(&p, t0, 650000), t0 + 1805556); /* 1805.5556 s */
    /* From the absolute index: sample 1 is 2.78 ms, written 3; sample 2 is
     * 5.56 ms, written 6, not 3 + 3. */
    assert_int_equal(ct_client_stream_sample_ms(&p, t0, 1), t0 + 3);
    assert_int_equal(ct_client_stream_sample_ms(&p, t0, 2), t0 + 6);
    assert_int_equal(ct_client_stream_sample_ms(&p, t0, 3), t0 + 8);
    /* No drift over a day of samples at 360 Hz. */
    assert_int_equal(ct_client_stream_sample_ms(&p, t0, (int64_t)360 * 86400), t0 + 86400000);
    /* Each Observation starts 10 s after the one before, whatever k. */
    for (int64_t k = 1; k < p.n_obs; k++) {
        int64_t a, b, n;
        ct_client_stream_obs_range(&p, k - 1, &a, &n);
        ct_client_stream_obs_range(&p, k, &b, &n);
        assert_int_equal(ct_client_stream_sample_ms(&p, t0, b) - ct_client_stream_sample_ms(&p, t0, a), 10000);
    }
    /* Times before 1970 are fine too. */
    assert_int_equal(ct_client_stream_sample_ms(&p, -1000, 360), 0);
}

static void test_due_times(void **state)
{
    (void)state;
    ct_client_stream_plan p;
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 10.0, 0.0, &p, NULL), 0);
    /* Real time: an Observation leaves when its last sample is acquired. */
    assert_int_equal(ct_client_stream_due_ms(&p, 0, 1.0), 10000);
    assert_int_equal(ct_client_stream_due_ms(&p, 1, 1.0), 20000);
    assert_int_equal(ct_client_stream_due_ms(&p, 179, 1.0), 1800000);
    /* The short last one leaves at the end of the record. */
    assert_int_equal(ct_client_stream_due_ms(&p, 180, 1.0), 1805556);
    /* Ten times faster, half speed. */
    assert_int_equal(ct_client_stream_due_ms(&p, 0, 10.0), 1000);
    assert_int_equal(ct_client_stream_due_ms(&p, 180, 10.0), 180556);
    assert_int_equal(ct_client_stream_due_ms(&p, 0, 0.5), 20000);
    /* Unpaced: everything is due at once. */
    for (int64_t k = 0; k < p.n_obs; k++)
        assert_int_equal(ct_client_stream_due_ms(&p, k, 0.0), 0);
    /* Every full Observation is exactly N / speed after the one before: the
     * schedule comes from k, so no rounding accumulates. */
    for (int64_t k = 1; k < 180; k++)
        assert_int_equal(ct_client_stream_due_ms(&p, k, 1.0) - ct_client_stream_due_ms(&p, k - 1, 1.0), 10000);
    /* At a speed whose period is not a whole number of ms, the error stays
     * under 1 ms at every k instead of growing. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 1.0, 0.0, &p, NULL), 0);
    for (int64_t k = 0; k < p.n_obs - 1; k++) {
        double exact = (double)(k + 1) * 1000.0 / 3.0;
        double got = (double)ct_client_stream_due_ms(&p, k, 3.0);
        assert_true(got - exact < 0.5 + 1e-9 && exact - got <= 0.5 + 1e-9);
    }
    /* 3 Observations of 1 s at speed 1: the last one is due after 3 s. */
    assert_int_equal(ct_client_stream_plan_make(650000, 360.0, 1.0, 3.0, &p, NULL), 0);
    assert_int_equal(ct_client_stream_due_ms(&p, 2, 1.0), 3000);
}

/* ---- the Patient's id ------------------------------------------------------------- */

typedef struct dirs {
    char root[64];
    char mitdb[96];
    char bad[96];
    char cwd[PATH_MAX];
} dirs;

static int dirs_setup(void **state)
{
    dirs *d = calloc(1, sizeof *d);
    assert_non_null(d);
    snprintf(d->root, sizeof d->root, "/tmp/ct_stream_test_XXXXXX");
    assert_non_null(mkdtemp(d->root));
    snprintf(d->mitdb, sizeof d->mitdb, "%s/mitdb", d->root);
    snprintf(d->bad, sizeof d->bad, "%s/my_db", d->root);
    assert_int_equal(mkdir(d->mitdb, 0755), 0);
    assert_int_equal(mkdir(d->bad, 0755), 0);
    assert_non_null(getcwd(d->cwd, sizeof d->cwd));
    *state = d;
    return 0;
}

static int dirs_teardown(void **state)
{
    dirs *d = *state;
    assert_int_equal(chdir(d->cwd), 0);
    rmdir(d->mitdb);
    rmdir(d->bad);
    rmdir(d->root);
    free(d);
    return 0;
}

static void test_patient_id(void **state)
{
    dirs *d = *state;
    char id[CT_FHIR_ID_MAX + 1];
    char path[256];
    ct_error err = {0};
    snprintf(path, sizeof path, "%s/100", d->mitdb);
    assert_int_equal(ct_client_stream_patient_id(path, id, sizeof id, &err), 0);
    assert_string_equal(id, "mitdb-100");
    /* The folder's real name, through "." and "..". */
    snprintf(path, sizeof path, "%s/./../mitdb/./106", d->mitdb);
    assert_int_equal(ct_client_stream_patient_id(path, id, sizeof id, &err), 0);
    assert_string_equal(id, "mitdb-106");
    /* A bare record name: the current folder. */
    assert_int_equal(chdir(d->mitdb), 0);
    assert_int_equal(ct_client_stream_patient_id("201", id, sizeof id, &err), 0);
    assert_string_equal(id, "mitdb-201");
    assert_int_equal(ct_client_stream_patient_id("../mitdb/201", id, sizeof id, &err), 0);
    assert_string_equal(id, "mitdb-201");
    /* '_' is not allowed in a FHIR id: the message says to name the patient. */
    snprintf(path, sizeof path, "%s/100", d->bad);
    assert_int_equal(ct_client_stream_patient_id(path, id, sizeof id, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "'my_db-100' is not a FHIR id"));
    assert_non_null(strstr(err.msg, "name the patient"));
    assert_string_equal(id, "");
    /* Not a record path at all. */
    assert_int_equal(ct_client_stream_patient_id("mitdb/", id, sizeof id, &err), CT_EINVAL);
    assert_int_equal(ct_client_stream_patient_id("", id, sizeof id, &err), CT_EINVAL);
    /* More than 64 characters. */
    char longname[80];
    memset(longname, 'a', 70);
    longname[70] = '\0';
    snprintf(path, sizeof path, "%s/%s", d->mitdb, longname);
    assert_int_equal(ct_client_stream_patient_id(path, id, sizeof id, &err), CT_EINVAL);
    /* A buffer too small for a valid id. */
    assert_int_equal(ct_client_stream_patient_id("201", id, 5, &err), CT_ELIMIT);
}

/* ---- tokens ----------------------------------------------------------------------- */

static void test_token_syntax(void **state)
{
    (void)state;
    assert_true(ct_client_token_ok("abc"));
    assert_true(ct_client_token_ok("Zm9vYmFy+/-._~=="));
    assert_true(ct_client_token_ok("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln"));
    assert_false(ct_client_token_ok(""));
    assert_false(ct_client_token_ok(NULL));
    assert_false(ct_client_token_ok("="));
    assert_false(ct_client_token_ok("a=b"));
    assert_false(ct_client_token_ok("a b"));
    assert_false(ct_client_token_ok("abc\r\nX-Evil: 1"));
    assert_false(ct_client_token_ok("caf\xc3\xa9"));
    char big[CT_CLIENT_MAX_TOKEN + 2];
    memset(big, 'a', sizeof big);
    big[CT_CLIENT_MAX_TOKEN] = '\0';
    assert_true(ct_client_token_ok(big));
    big[CT_CLIENT_MAX_TOKEN] = 'a';
    big[CT_CLIENT_MAX_TOKEN + 1] = '\0';
    assert_false(ct_client_token_ok(big));
}

static void put(const char *path, const char *text, size_t len, mode_t mode)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static void test_token_file(void **state)
{
    dirs *d = *state;
    char path[128], tok[CT_CLIENT_MAX_TOKEN + 1];
    ct_error err = {0};
    snprintf(path, sizeof path, "%s/token", d->root);
    const char *secret = "s3cr3tTOKENvalue0123456789abcdef";

    put(path, "s3cr3tTOKENvalue0123456789abcdef\n", 33, 0600);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), 0);
    assert_string_equal(tok, secret);
    put(path, "s3cr3tTOKENvalue0123456789abcdef\r\n", 34, 0400);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), 0);
    assert_string_equal(tok, secret);
    put(path, "s3cr3tTOKENvalue0123456789abcdef", 32, 0600);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), 0);
    assert_string_equal(tok, secret);

    /* Others may read it: refused, the token neither returned nor quoted. */
    put(path, "s3cr3tTOKENvalue0123456789abcdef\n", 33, 0644);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_null(strstr(err.msg, "s3cr3t"));
    assert_string_equal(tok, "");
    put(path, "s3cr3tTOKENvalue0123456789abcdef\n", 33, 0620);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), CT_EINVAL);

    /* Two lines, a space, an empty file: refused without quoting. */
    put(path, "s3cr3t\nsecond\n", 14, 0600);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "RFC 6750"));
    assert_null(strstr(err.msg, "s3cr3t"));
    assert_string_equal(tok, "");
    put(path, "s3cr3t value\n", 13, 0600);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), CT_EINVAL);
    assert_null(strstr(err.msg, "s3cr3t"));
    put(path, "", 0, 0600);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "empty"));

    /* Too long for the limit, or for the caller's buffer. */
    char *big = malloc(CT_CLIENT_MAX_TOKEN + 10);
    assert_non_null(big);
    memset(big, 'x', CT_CLIENT_MAX_TOKEN + 10);
    put(path, big, CT_CLIENT_MAX_TOKEN + 10, 0600);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), CT_ELIMIT);
    put(path, big, CT_CLIENT_MAX_TOKEN, 0600);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), 0);
    assert_int_equal(strlen(tok), CT_CLIENT_MAX_TOKEN);
    char small[16];
    assert_int_equal(ct_client_token_read_file(path, small, sizeof small, &err), CT_ELIMIT);
    free(big);

    /* Missing, or not a regular file. */
    unlink(path);
    assert_int_equal(ct_client_token_read_file(path, tok, sizeof tok, &err), CT_EIO);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(ct_client_token_read_file(d->mitdb, tok, sizeof tok, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));
}

/* ---- OperationOutcome ---------------------------------------------------------------- */

static void summary_of(const char *body, char *out, size_t cap)
{
    ct_client_outcome_summary(body, body ? strlen(body) : 0, out, cap);
}

static void test_outcome_summary(void **state)
{
    (void)state;
    char s[CT_ERROR_MSG_MAX];
    summary_of("{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"value\","
               "\"diagnostics\":\"data value 7 does not parse\",\"expression\":"
               "[\"Observation.component[1].valueSampledData.data\"]},{\"severity\":\"warning\","
               "\"code\":\"processing\",\"details\":{\"text\":\"second issue\"}},{\"severity\":\"error\","
               "\"code\":\"invalid\"}]}",
               s, sizeof s);
    assert_string_equal(s, "data value 7 does not parse (at Observation.component[1].valueSampledData.data); "
                           "second issue; invalid");
    /* One line, whatever the server wrote. */
    summary_of("{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"value\","
               "\"diagnostics\":\"two\\nlines\\r\\tand a tab\"}]}",
               s, sizeof s);
    assert_string_equal(s, "two lines  and a tab");
    /* Cut to the buffer. */
    char small[8];
    summary_of("{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"value\","
               "\"diagnostics\":\"a long message\"}]}",
               small, sizeof small);
    assert_string_equal(small, "a long ");
    /* Anything else gives nothing. */
    summary_of("{\"resourceType\":\"Patient\",\"issue\":[{\"diagnostics\":\"x\"}]}", s, sizeof s);
    assert_string_equal(s, "");
    summary_of("<html>502 Bad Gateway</html>", s, sizeof s);
    assert_string_equal(s, "");
    summary_of("{\"resourceType\":\"OperationOutcome\",\"issue\":{}}", s, sizeof s);
    assert_string_equal(s, "");
    summary_of("", s, sizeof s);
    assert_string_equal(s, "");
    summary_of(NULL, s, sizeof s);
    assert_string_equal(s, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_mitdb_record),
        cmocka_unit_test(test_plan_exact_multiple_and_limits),
        cmocka_unit_test(test_plan_refusals),
        cmocka_unit_test(test_effective_times_follow_each_other),
        cmocka_unit_test(test_due_times),
        cmocka_unit_test_setup_teardown(test_patient_id, dirs_setup, dirs_teardown),
        cmocka_unit_test(test_token_syntax),
        cmocka_unit_test_setup_teardown(test_token_file, dirs_setup, dirs_teardown),
        cmocka_unit_test(test_outcome_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
