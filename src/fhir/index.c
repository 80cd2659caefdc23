/* fhir room, search index: which values of a resource its search parameters
 * see. The one idea: the FHIRPath expression of each parameter (search.c)
 * is evaluated here once, when the resource is written, into entries the
 * store keeps and compares with plain SQL (store.h, "FHIR search index"),
 * so that a search never parses a stored resource. Everything that writes
 * resources (the http room's API, the twin's reports) takes its entries
 * from this one function, so a search cannot tell who wrote a resource.
 *
 *   Patient, Observation,   identifier (token: system, value)
 *   DiagnosticReport, Device
 *   Observation             subject, patient (reference), code, category, status (token),
 *                           date (effectiveDateTime/Period/Instant as a range)
 *   DiagnosticReport        subject, patient, code, category, status, conclusion
 *                           (conclusionCode), date, result (reference, for _include)
 *   Device                  patient
 *   Provenance              target
 *
 * (identifier is indexed on Provenance too, which has one: it costs nothing
 * and the parameter may be declared there later.) A coding in either MDC
 * system is indexed under both, so that code=urn:oid:2.16.840.1.113883.6.24|131328
 * finds an ECG coded with urn:iso:std:iso:11073:10101 and the other way
 * round. status is a FHIR `code`: it is indexed with its value set's system,
 * so that status=final and status=http://hl7.org/fhir/observation-status|final
 * both match. A value that does not parse (a malformed date, an absolute
 * reference) is simply not indexed: whether it may be stored at all is
 * validation's business. Strings in the entries point into the json_t,
 * which must outlive them, or into copies the index owns. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static int add(ct_fhir_index *x, const ct_fhir_index_entry *e)
{
    if (x->n == x->cap) {
        if (x->cap >= CT_FHIR_INDEX_MAX_ENTRIES)
            return CT_ELIMIT;
        size_t cap = x->cap ? 2 * x->cap : 16;
        ct_fhir_index_entry *n = realloc(x->e, cap * sizeof *n);
        if (!n)
            return CT_ENOMEM;
        x->e = n;
        x->cap = cap;
    }
    x->e[x->n++] = *e;
    return 0;
}

static int text_ok(const char *s)
{
    return s && *s && strlen(s) <= CT_FHIR_INDEX_MAX_TEXT;
}

static int add_token(ct_fhir_index *x, const char *param, const char *system, const char *code)
{
    if (!text_ok(code) || (system && !text_ok(system)))
        return 0;
    ct_fhir_index_entry e = {.param = param, .kind = CT_FHIR_INDEX_TOKEN, .system = system, .code = code};
    return add(x, &e);
}

static int add_coding(ct_fhir_index *x, const char *param, const json_t *coding)
{
    const char *sys = json_string_value(json_object_get(coding, "system"));
    const char *code = json_string_value(json_object_get(coding, "code"));
    int rc = add_token(x, param, sys, code);
    if (rc || !sys)
        return rc;
    if (strcmp(sys, CT_FHIR_SYS_MDC) == 0)
        return add_token(x, param, CT_FHIR_SYS_MDC_ISO, code);
    if (strcmp(sys, CT_FHIR_SYS_MDC_ISO) == 0)
        return add_token(x, param, CT_FHIR_SYS_MDC, code);
    return 0;
}

static int add_concept(ct_fhir_index *x, const char *param, const json_t *cc)
{
    const json_t *codings = json_object_get(cc, "coding");
    for (size_t i = 0; i < json_array_size(codings); i++) {
        int rc = add_coding(x, param, json_array_get(codings, i));
        if (rc)
            return rc;
    }
    return 0;
}

static int add_concepts(ct_fhir_index *x, const char *param, const json_t *arr)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int rc = add_concept(x, param, json_array_get(arr, i));
        if (rc)
            return rc;
    }
    return 0;
}

/* Identifier.system and .value as a token; an identifier without a value
 * cannot be searched and is left out. */
static int add_identifiers(ct_fhir_index *x, const json_t *res)
{
    const json_t *ids = json_object_get(res, "identifier");
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const json_t *idf = json_array_get(ids, i);
        int rc = add_token(x, "identifier", json_string_value(json_object_get(idf, "system")),
                           json_string_value(json_object_get(idf, "value")));
        if (rc)
            return rc;
    }
    return 0;
}

static const char *keep(ct_fhir_index *x, const char *s)
{
    if (x->n_owned == x->cap_owned) {
        size_t cap = x->cap_owned ? 2 * x->cap_owned : 8;
        char **n = realloc(x->owned, cap * sizeof *n);
        if (!n)
            return NULL;
        x->owned = n;
        x->cap_owned = cap;
    }
    char *c = strdup(s);
    if (c)
        x->owned[x->n_owned++] = c;
    return c;
}

/* A reference "Type/id[/_history/v]" on this server (absolute URLs name
 * other servers and are not searched); patient_param also gets it when it
 * points to a Patient. A versioned reference is indexed by its id. */
static int add_reference(ct_fhir_index *x, const char *param, const char *patient_param, const json_t *ref)
{
    const char *s = json_string_value(json_object_get(ref, "reference"));
    ct_fhir_ref parsed;
    if (!s || ct_fhir_ref_parse(s, NULL, &parsed, NULL) != 0 || parsed.kind != CT_FHIR_REF_RELATIVE)
        return 0;
    const char *type = keep(x, parsed.type), *id = keep(x, parsed.id);
    if (!type || !id)
        return CT_ENOMEM;
    ct_fhir_index_entry e = {.param = param, .kind = CT_FHIR_INDEX_REFERENCE, .ref_type = type, .ref_id = id};
    int rc = add(x, &e);
    if (rc == 0 && patient_param && strcmp(type, "Patient") == 0) {
        e.param = patient_param;
        rc = add(x, &e);
    }
    if (rc == 0 && strcmp(type, "Patient") == 0 && !x->patient[0] && strlen(id) < sizeof x->patient)
        strcpy(x->patient, id);
    return rc;
}

static int parse_dt(const json_t *v, ct_fhir_dt_kind kind, ct_fhir_datetime *out)
{
    const char *s = json_string_value(v);
    return s && ct_fhir_datetime_parse(s, strlen(s), kind, NULL, out, NULL) == 0;
}

static int add_effective(ct_fhir_index *x, const char *param, const json_t *res)
{
    ct_fhir_datetime dt;
    ct_fhir_index_entry e = {.param = param, .kind = CT_FHIR_INDEX_DATE};
    if (parse_dt(json_object_get(res, "effectiveDateTime"), CT_FHIR_DT_DATETIME, &dt) ||
        parse_dt(json_object_get(res, "effectiveInstant"), CT_FHIR_DT_INSTANT, &dt)) {
        e.start_ms = dt.start_ms;
        e.end_ms = dt.end_ms;
        return add(x, &e);
    }
    const json_t *period = json_object_get(res, "effectivePeriod");
    if (!json_is_object(period))
        return 0;
    int has_start = parse_dt(json_object_get(period, "start"), CT_FHIR_DT_DATETIME, &dt);
    e.start_ms = has_start ? dt.start_ms : CT_FHIR_INDEX_TIME_MIN;
    int has_end = parse_dt(json_object_get(period, "end"), CT_FHIR_DT_DATETIME, &dt);
    e.end_ms = has_end ? dt.end_ms : CT_FHIR_INDEX_TIME_MAX;
    if ((!has_start && !has_end) || e.start_ms >= e.end_ms)
        return 0;
    return add(x, &e);
}

static int add_status(ct_fhir_index *x, const json_t *res, const char *system)
{
    return add_token(x, "status", system, json_string_value(json_object_get(res, "status")));
}

int ct_fhir_index_extract(const json_t *res, const char *type, ct_fhir_index *out)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(res) || !type)
        return CT_EINVAL;
    int rc = add_identifiers(out, res);
    if (rc == 0 && strcmp(type, "Observation") == 0) {
        if ((rc = add_reference(out, "subject", "patient", json_object_get(res, "subject"))) ||
            (rc = add_concept(out, "code", json_object_get(res, "code"))) ||
            (rc = add_concepts(out, "category", json_object_get(res, "category"))) ||
            (rc = add_status(out, res, "http://hl7.org/fhir/observation-status")))
            goto out;
        rc = add_effective(out, "date", res);
    } else if (rc == 0 && strcmp(type, "DiagnosticReport") == 0) {
        if ((rc = add_reference(out, "subject", "patient", json_object_get(res, "subject"))) ||
            (rc = add_concept(out, "code", json_object_get(res, "code"))) ||
            (rc = add_concepts(out, "category", json_object_get(res, "category"))) ||
            (rc = add_concepts(out, "conclusion", json_object_get(res, "conclusionCode"))) ||
            (rc = add_status(out, res, "http://hl7.org/fhir/diagnostic-report-status")) ||
            (rc = add_effective(out, "date", res)))
            goto out;
        const json_t *results = json_object_get(res, "result");
        for (size_t i = 0; i < json_array_size(results) && rc == 0; i++)
            rc = add_reference(out, "result", NULL, json_array_get(results, i));
    } else if (rc == 0 && strcmp(type, "Device") == 0) {
        rc = add_reference(out, "patient", NULL, json_object_get(res, "patient"));
    } else if (rc == 0 && strcmp(type, "Provenance") == 0) {
        const json_t *targets = json_object_get(res, "target");
        for (size_t i = 0; i < json_array_size(targets) && rc == 0; i++)
            rc = add_reference(out, "target", NULL, json_array_get(targets, i));
    }
out:
    if (rc)
        ct_fhir_index_free(out);
    return rc;
}

void ct_fhir_index_free(ct_fhir_index *x)
{
    free(x->e);
    for (size_t i = 0; i < x->n_owned; i++)
        free(x->owned[i]);
    free(x->owned);
    x->e = NULL;
    x->owned = NULL;
    x->n = x->cap = x->n_owned = x->cap_owned = 0;
}
