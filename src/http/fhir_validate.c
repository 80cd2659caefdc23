/* http room, validation: what a resource must be before the API stores it.
 * The one idea: the fhir room judges shapes (ct_fhir_validate_resource for
 * any resource, ct_fhir_ecg_from_json for an ECG Observation); this file
 * decides which of its checks apply to which resource and adds the few
 * R4 cardinalities and required bindings that searches and readers rely
 * on (an Observation without a status or code could not be searched by
 * them). It is not a full R4 validator: elements we do not use are stored
 * as sent, and docs/api.md says so.
 *
 * An Observation coded MDC 131328 (either MDC system) must meet the whole
 * ECG profile, since the twin reads its samples. Any other SampledData must
 * still carry what R4 requires of it (origin, period, dimensions) plus
 * data whose values parse and whose count is a multiple of dimensions: a
 * reader cannot use it otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

static int fail(ct_fhir_issue *issue, ct_fhir_issue_type code, const char *expr, const char *msg)
{
    return ct_fhir_issue_set(issue, CT_EFORMAT, 422, CT_FHIR_SEV_ERROR, code, expr, "%s", msg);
}

static int is_ecg(const json_t *res)
{
    const json_t *codings = json_object_get(json_object_get(res, "code"), "coding");
    for (size_t i = 0; i < json_array_size(codings); i++) {
        const json_t *c = json_array_get(codings, i);
        const char *sys = json_string_value(json_object_get(c, "system"));
        const char *code = json_string_value(json_object_get(c, "code"));
        if (sys && code && strcmp(code, "131328") == 0 &&
            (strcmp(sys, CT_FHIR_SYS_MDC) == 0 || strcmp(sys, CT_FHIR_SYS_MDC_ISO) == 0))
            return 1;
    }
    return 0;
}

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

static int check_status(const json_t *res, const char *type, const char *const *allowed, ct_fhir_issue *issue)
{
    char expr[80];
    snprintf(expr, sizeof expr, "%s.status", type);
    const json_t *st = json_object_get(res, "status");
    if (!st)
        return fail(issue, CT_FHIR_IT_REQUIRED, expr, "status is required");
    const char *s = json_string_value(st);
    if (!s)
        return fail(issue, CT_FHIR_IT_STRUCTURE, expr, "status must be a string");
    if (!in_list(s, allowed)) {
        char msg[CT_FHIR_DIAG_MAX];
        size_t n = 0;
        n += (size_t)snprintf(msg, sizeof msg, "status must be one of");
        for (const char *const *a = allowed; *a && n < sizeof msg; a++)
            n += (size_t)snprintf(msg + n, sizeof msg - n, "%s %s", a == allowed ? "" : ",", *a);
        return fail(issue, CT_FHIR_IT_CODE_INVALID, expr, msg);
    }
    return 0;
}

static int check_code(const json_t *res, const char *type, ct_fhir_issue *issue)
{
    char expr[80];
    snprintf(expr, sizeof expr, "%s.code", type);
    const json_t *c = json_object_get(res, "code");
    if (!c)
        return fail(issue, CT_FHIR_IT_REQUIRED, expr, "code is required (a CodeableConcept)");
    if (!json_is_object(c))
        return fail(issue, CT_FHIR_IT_STRUCTURE, expr, "code must be a CodeableConcept (an object)");
    return 0;
}

/* FHIR's decimal: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int decimal_ok(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i >= n)
        return 0;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

static int check_sampled_data(const json_t *sd, const char *expr, ct_fhir_issue *issue)
{
    char e[CT_FHIR_EXPR_MAX], msg[CT_FHIR_DIAG_MAX];
    if (!json_is_object(sd))
        return fail(issue, CT_FHIR_IT_STRUCTURE, expr, "SampledData must be an object");
    const json_t *origin = json_object_get(sd, "origin");
    snprintf(e, sizeof e, "%s.origin", expr);
    if (!json_is_number(json_object_get(origin, "value")))
        return fail(issue, CT_FHIR_IT_REQUIRED, e, "SampledData needs origin.value (the zero of the data)");
    snprintf(e, sizeof e, "%s.period", expr);
    const json_t *period = json_object_get(sd, "period");
    if (!period)
        return fail(issue, CT_FHIR_IT_REQUIRED, e, "SampledData needs period (milliseconds between samples)");
    if (!json_is_number(period) || json_number_value(period) <= 0)
        return fail(issue, CT_FHIR_IT_VALUE, e, "period must be a number of milliseconds above 0");
    snprintf(e, sizeof e, "%s.dimensions", expr);
    const json_t *dim = json_object_get(sd, "dimensions");
    if (!dim)
        return fail(issue, CT_FHIR_IT_REQUIRED, e, "SampledData needs dimensions (values per time point)");
    if (!json_is_integer(dim) || json_integer_value(dim) < 1 || json_integer_value(dim) > 1000)
        return fail(issue, CT_FHIR_IT_VALUE, e, "dimensions must be a whole number from 1 to 1000");
    snprintf(e, sizeof e, "%s.data", expr);
    const json_t *data = json_object_get(sd, "data");
    if (!data)
        return fail(issue, CT_FHIR_IT_REQUIRED, e, "SampledData needs data (the values, separated by spaces)");
    const char *s = json_string_value(data);
    if (!s)
        return fail(issue, CT_FHIR_IT_STRUCTURE, e, "data must be a string of values separated by spaces");
    size_t count = 0, len = json_string_length(data);
    for (size_t i = 0; i < len;) {
        while (i < len && s[i] == ' ')
            i++;
        size_t st = i;
        while (i < len && s[i] != ' ')
            i++;
        if (i == st)
            break;
        count++;
        size_t n = i - st;
        if (!(n == 1 && (s[st] == 'E' || s[st] == 'L' || s[st] == 'U')) && !decimal_ok(s + st, n)) {
            snprintf(msg, sizeof msg, "data value %zu (\"%.*s\") is not a decimal, E, L or U", count,
                     (int)(n > 24 ? 24 : n), s + st);
            return fail(issue, CT_FHIR_IT_VALUE, e, msg);
        }
    }
    if (count == 0)
        return fail(issue, CT_FHIR_IT_REQUIRED, e, "data holds no values");
    if (count % (size_t)json_integer_value(dim) != 0) {
        snprintf(msg, sizeof msg, "data holds %zu values, not a multiple of dimensions (%lld)", count,
                 (long long)json_integer_value(dim));
        return fail(issue, CT_FHIR_IT_VALUE, e, msg);
    }
    return 0;
}

static int check_observation(const json_t *res, ct_fhir_ecg **keep, ct_fhir_issue *issue)
{
    static const char *const statuses[] = {"registered", "preliminary", "final", "amended", "corrected",
                                           "cancelled", "entered-in-error", "unknown", NULL};
    int rc;
    if ((rc = check_status(res, "Observation", statuses, issue)) || (rc = check_code(res, "Observation", issue)))
        return rc;
    if (is_ecg(res)) {
        ct_fhir_ecg *ecg = malloc(sizeof *ecg);
        if (!ecg)
            return ct_fhir_issue_set(issue, CT_ENOMEM, 500, CT_FHIR_SEV_ERROR, CT_FHIR_IT_EXCEPTION, NULL,
                                     "out of memory reading the ECG");
        rc = ct_fhir_ecg_from_json(res, NULL, ecg, issue);
        if (rc == 0 && keep) {
            *keep = ecg;
            return 0;
        }
        if (rc == 0)
            ct_fhir_ecg_free(ecg);
        free(ecg);
        return rc;
    }
    const json_t *sd = json_object_get(res, "valueSampledData");
    if (sd && (rc = check_sampled_data(sd, "Observation.valueSampledData", issue)))
        return rc;
    const json_t *comps = json_object_get(res, "component");
    for (size_t i = 0; i < json_array_size(comps); i++) {
        sd = json_object_get(json_array_get(comps, i), "valueSampledData");
        char expr[80];
        snprintf(expr, sizeof expr, "Observation.component[%zu].valueSampledData", i);
        if (sd && (rc = check_sampled_data(sd, expr, issue)))
            return rc;
    }
    return 0;
}

static int check_report(const json_t *res, ct_fhir_issue *issue)
{
    static const char *const statuses[] = {"registered", "partial", "preliminary", "final", "amended",
                                           "corrected", "appended", "cancelled", "entered-in-error",
                                           "unknown", NULL};
    int rc = check_status(res, "DiagnosticReport", statuses, issue);
    return rc ? rc : check_code(res, "DiagnosticReport", issue);
}

static int check_provenance(const json_t *res, ct_fhir_issue *issue)
{
    const json_t *t = json_object_get(res, "target");
    if (!json_is_array(t) || json_array_size(t) == 0)
        return fail(issue, CT_FHIR_IT_REQUIRED, "Provenance.target",
                    "target is required: the resources this Provenance is about");
    if (!json_is_string(json_object_get(res, "recorded")))
        return fail(issue, CT_FHIR_IT_REQUIRED, "Provenance.recorded", "recorded is required (an instant)");
    const char *rec = json_string_value(json_object_get(res, "recorded"));
    ct_fhir_datetime dt;
    if (ct_fhir_datetime_parse(rec, strlen(rec), CT_FHIR_DT_INSTANT, "Provenance.recorded", &dt, issue) != 0) {
        issue->http_status = 422;
        return CT_EFORMAT;
    }
    const json_t *a = json_object_get(res, "agent");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return fail(issue, CT_FHIR_IT_REQUIRED, "Provenance.agent", "agent is required: who did it");
    return 0;
}

int ct_http_fhir_validate_keep(const json_t *res, const char *type, ct_fhir_ecg **ecg, ct_fhir_issue *issue)
{
    if (ecg)
        *ecg = NULL;
    int rc = ct_fhir_validate_resource(res, type, issue);
    if (rc)
        return rc;
    if (strcmp(type, "Observation") == 0)
        return check_observation(res, ecg, issue);
    if (strcmp(type, "DiagnosticReport") == 0)
        return check_report(res, issue);
    if (strcmp(type, "Provenance") == 0)
        return check_provenance(res, issue);
    return 0;
}

int ct_http_fhir_validate(const json_t *res, const char *type, ct_fhir_issue *issue)
{
    return ct_http_fhir_validate_keep(res, type, NULL, issue);
}
