/* twin/index: the search index rows of the resources the twin writes
 * (DiagnosticReport, its derived Observations, Provenance, Device), so that
 * the FHIR API finds them exactly as it finds what clients post: by
 * patient, code, category, status, conclusion, date and result.
 *
 * The one idea: the rows must be the ones the http room's extractor
 * (src/http/fhir_index.c) would make for the same resource, since a search
 * cannot tell who wrote a resource; the twin cannot call that room (it sits
 * above us), so the same rules are applied here to the few shapes the twin
 * builds: tokens of every coding with their system, status under its value
 * set's system, references "Type/id" split into type and id (a Patient also
 * under "patient"), and effective[x] as a millisecond range. tests/twin
 * checks the reports through ct_store_search. */
#include <stdio.h>
#include <string.h>

#include "twin_internal.h"

#define MAX_ENTRIES (sizeof ((tw_index *)0)->e / sizeof ((tw_index *)0)->e[0])
#define MAX_TEXT (sizeof ((tw_index *)0)->text / sizeof ((tw_index *)0)->text[0])

static int add(tw_index *x, const ct_store_index_entry *e)
{
    if (x->n >= MAX_ENTRIES)
        return CT_ELIMIT;
    x->e[x->n++] = *e;
    return CT_OK;
}

static int add_token(tw_index *x, const char *param, const char *system, const char *code)
{
    if (!code || !*code || strlen(code) > CT_STORE_INDEX_MAX_TEXT ||
        (system && (!*system || strlen(system) > CT_STORE_INDEX_MAX_TEXT)))
        return CT_OK;
    ct_store_index_entry e = {.param = param, .kind = CT_STORE_INDEX_TOKEN, .system = system, .code = code};
    return add(x, &e);
}

static int add_concept(tw_index *x, const char *param, const json_t *cc)
{
    const json_t *codings = json_object_get(cc, "coding");
    for (size_t i = 0; i < json_array_size(codings); i++) {
        const json_t *c = json_array_get(codings, i);
        int rc = add_token(x, param, json_string_value(json_object_get(c, "system")),
                           json_string_value(json_object_get(c, "code")));
        if (rc)
            return rc;
    }
    return CT_OK;
}

static int add_concepts(tw_index *x, const char *param, const json_t *arr)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        int rc = add_concept(x, param, json_array_get(arr, i));
        if (rc)
            return rc;
    }
    return CT_OK;
}

static int add_reference(tw_index *x, const char *param, const char *patient_param, const json_t *ref)
{
    const char *s = json_string_value(json_object_get(ref, "reference"));
    ct_fhir_ref r;
    if (!s || ct_fhir_ref_parse(s, NULL, &r, NULL) != 0 || r.kind != CT_FHIR_REF_RELATIVE)
        return CT_OK;
    if (x->n_text + 2 > MAX_TEXT)
        return CT_ELIMIT;
    char *type = x->text[x->n_text++], *id = x->text[x->n_text++];
    snprintf(type, sizeof x->text[0], "%s", r.type);
    snprintf(id, sizeof x->text[0], "%s", r.id);
    ct_store_index_entry e = {.param = param, .kind = CT_STORE_INDEX_REFERENCE, .ref_type = type, .ref_id = id};
    int rc = add(x, &e);
    if (rc == CT_OK && patient_param && strcmp(type, "Patient") == 0) {
        e.param = patient_param;
        rc = add(x, &e);
    }
    return rc;
}

static int instant_ms(const json_t *v, int64_t *start, int64_t *end)
{
    const char *s = json_string_value(v);
    ct_fhir_datetime dt;
    if (!s || ct_fhir_datetime_parse(s, strlen(s), CT_FHIR_DT_DATETIME, NULL, &dt, NULL) != 0)
        return 0;
    *start = dt.start_ms;
    *end = dt.end_ms;
    return 1;
}

static int add_effective(tw_index *x, const json_t *res)
{
    ct_store_index_entry e = {.param = "date", .kind = CT_STORE_INDEX_DATE};
    if (instant_ms(json_object_get(res, "effectiveDateTime"), &e.start_ms, &e.end_ms))
        return add(x, &e);
    const json_t *period = json_object_get(res, "effectivePeriod");
    int64_t s0, s1, e0, e1;
    int has_start = instant_ms(json_object_get(period, "start"), &s0, &s1);
    int has_end = instant_ms(json_object_get(period, "end"), &e0, &e1);
    if (!has_start && !has_end)
        return CT_OK;
    e.start_ms = has_start ? s0 : CT_STORE_TIME_MIN;
    e.end_ms = has_end ? e1 : CT_STORE_TIME_MAX;
    return e.start_ms < e.end_ms ? add(x, &e) : CT_OK;
}

int tw_index_extract(const json_t *res, const char *type, tw_index *x)
{
    memset(x, 0, sizeof *x);
    int rc = CT_OK;
    const json_t *ids = json_object_get(res, "identifier");
    for (size_t i = 0; i < json_array_size(ids) && rc == CT_OK; i++) {
        const json_t *idf = json_array_get(ids, i);
        rc = add_token(x, "identifier", json_string_value(json_object_get(idf, "system")),
                       json_string_value(json_object_get(idf, "value")));
    }
    if (rc)
        return rc;
    if (strcmp(type, "Observation") == 0) {
        if ((rc = add_reference(x, "subject", "patient", json_object_get(res, "subject"))) ||
            (rc = add_concept(x, "code", json_object_get(res, "code"))) ||
            (rc = add_concepts(x, "category", json_object_get(res, "category"))) ||
            (rc = add_token(x, "status", "http://hl7.org/fhir/observation-status",
                            json_string_value(json_object_get(res, "status")))))
            return rc;
        return add_effective(x, res);
    }
    if (strcmp(type, "DiagnosticReport") == 0) {
        if ((rc = add_reference(x, "subject", "patient", json_object_get(res, "subject"))) ||
            (rc = add_concept(x, "code", json_object_get(res, "code"))) ||
            (rc = add_concepts(x, "category", json_object_get(res, "category"))) ||
            (rc = add_concepts(x, "conclusion", json_object_get(res, "conclusionCode"))) ||
            (rc = add_token(x, "status", "http://hl7.org/fhir/diagnostic-report-status",
                            json_string_value(json_object_get(res, "status")))) ||
            (rc = add_effective(x, res)))
            return rc;
        const json_t *results = json_object_get(res, "result");
        for (size_t i = 0; i < json_array_size(results) && rc == CT_OK; i++)
            rc = add_reference(x, "result", NULL, json_array_get(results, i));
        return rc;
    }
    if (strcmp(type, "Provenance") == 0) {
        const json_t *targets = json_object_get(res, "target");
        for (size_t i = 0; i < json_array_size(targets) && rc == CT_OK; i++)
            rc = add_reference(x, "target", NULL, json_array_get(targets, i));
        return rc;
    }
    return CT_OK;
}
