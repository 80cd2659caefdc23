/* Private helpers shared by the fhir room's sources. */
#ifndef CT_FHIR_INTERNAL_H
#define CT_FHIR_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/fhir.h"

/* A FHIRPath being built while walking a resource: "Observation" then
 * ".component[1]" then ".valueSampledData". Text that does not fit is cut
 * (the expression is for people; a cut one still points the right way). */
typedef struct ct_path {
    char s[CT_FHIR_EXPR_MAX];
    size_t n;
} ct_path;

void ct_path_init(ct_path *p, const char *root);
/* Appends and returns the previous length, to restore with ct_path_pop. */
size_t ct_path_push(ct_path *p, const char *fmt, ...) CT_PRINTF(2, 3);
void ct_path_pop(ct_path *p, size_t len);

/* ct_fhir_issue_set with severity error. */
int ct_fhir_fail(ct_fhir_issue *issue, int ret, int http_status, ct_fhir_issue_type code,
                 const char *expression, const char *fmt, ...) CT_PRINTF(6, 7);

/* Copies at most `max` bytes of s into out (cap >= max*1 + 4) for use in a
 * message: control bytes become '?', a cut string ends in "...". */
void ct_fhir_shown(const char *s, size_t len, size_t max, char *out, size_t cap);

/* 1 when s[0..len) is well-formed UTF-8 (no overlongs, surrogates or code
 * points above U+10FFFF); *bad receives the offset of the first bad byte. */
int ct_fhir_utf8_valid(const unsigned char *s, size_t len, size_t *bad);

/* Member lookup helpers: NULL when absent. */
const char *ct_fhir_get_string(const json_t *obj, const char *key);

/* Parses a FHIR decimal (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?)
 * in s[0..len) without locale; *is_int is 1 when it has no fraction or
 * exponent and fits int64. Returns 0, or -1 when malformed or not finite. */
int ct_fhir_decimal_parse(const char *s, size_t len, double *out, int64_t *ival, int *is_int);

/* Days from 1970-01-01 to a civil date (proleptic Gregorian). */
int64_t ct_fhir_days_from_civil(int64_t y, int m, int d);

/* A number member (integer or real) as a double; returns 1 if present and
 * numeric, 0 if absent, -1 if present but not a number. */
int ct_fhir_get_number(const json_t *obj, const char *key, double *out);

#endif
