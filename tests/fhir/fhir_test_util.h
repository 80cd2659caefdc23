/* Helpers shared by the fhir room's tests: checking an issue field by
 * field, reading files of the source tree, parsing JSON text. */
#ifndef CT_FHIR_TEST_UTIL_H
#define CT_FHIR_TEST_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cardiotwin/fhir.h"

/* Asserts rc and every field of the issue; expr NULL means "". */
static inline void expect_issue_(int rc, const ct_fhir_issue *is, int want_rc, int status,
                                 ct_fhir_issue_type code, const char *expr, const char *frag,
                                 const char *file, int line)
{
    if (rc != want_rc || is->http_status != status || is->code != code ||
        strcmp(is->expression, expr ? expr : "") != 0 || (frag && !strstr(is->diagnostics, frag)))
        fail_msg("%s:%d: got rc %d status %d code %s expr '%s' diag '%s'; want rc %d status %d "
                 "code %s expr '%s' fragment '%s'",
                 file, line, rc, is->http_status, ct_fhir_issue_type_name(is->code),
                 is->expression, is->diagnostics, want_rc, status, ct_fhir_issue_type_name(code),
                 expr ? expr : "", frag ? frag : "");
    /* A diagnostics line is one line a person can act on. */
    assert_true(is->diagnostics[0] != '\0');
    assert_null(strchr(is->diagnostics, '\n'));
}
#define expect_issue(rc, is, want_rc, status, code, expr, frag) \
    expect_issue_(rc, is, want_rc, status, code, expr, frag, __FILE__, __LINE__)

/* Reads CT_SOURCE_DIR/rel into a malloc'd NUL-terminated buffer. */
static inline char *read_source_file(const char *rel, size_t *len)
{
    const char *dir = getenv("CT_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s (is CT_SOURCE_DIR set?)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

/* Parses JSON text that the test itself wrote; fails the test if it is not. */
static inline json_t *json_of(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", e.text, text);
    return j;
}

#endif
