/* The search index of the fhir room (src/fhir/index.c), the one extractor
 * the API and the twin share: both MDC systems for one coding, status with
 * its value set's system, dates as ranges by precision and open periods,
 * references and the patient a resource is about, identifier on every type
 * that has the parameter, the shapes the twin builds, and the limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cardiotwin/fhir.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("test JSON: %s", e.text);
    return j;
}

static const ct_fhir_index_entry *find(const ct_fhir_index *x, const char *param, size_t nth)
{
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->e[i].param, param) == 0 && nth-- == 0)
            return &x->e[i];
    return NULL;
}

static size_t count(const ct_fhir_index *x, const char *param)
{
    size_t n = 0;
    for (size_t i = 0; i < x->n; i++)
        n += strcmp(x->e[i].param, param) == 0;
    return n;
}

static void test_observation_index(void **state)
{
    (void)state;
    json_t *o = parse("{\"resourceType\":\"Observation\",\"status\":\"final\","
                      "\"identifier\":[{\"system\":\"urn:ietf:rfc:3986\",\"value\":\"urn:uuid:1\"}],"
                      "\"category\":[{\"coding\":[{\"system\":\"http://terminology.hl7.org/CodeSystem/observation-category\",\"code\":\"procedure\"}]}],"
                      "\"code\":{\"coding\":[{\"system\":\"urn:oid:2.16.840.1.113883.6.24\",\"code\":\"131328\"},{\"code\":\"nosys\"},{\"system\":\"s\"}]},"
                      "\"subject\":{\"reference\":\"Patient/p-1\"},"
                      "\"effectivePeriod\":{\"start\":\"2026-01-01T10:00:00Z\"}}");
    ct_fhir_index x;
    assert_int_equal(ct_fhir_index_extract(o, "Observation", &x), 0);
    assert_string_equal(x.patient, "p-1");
    assert_int_equal(count(&x, "code"), 3); /* both MDC systems, and the code without a system */
    const ct_fhir_index_entry *e = find(&x, "code", 0);
    assert_string_equal(e->system, CT_FHIR_SYS_MDC);
    assert_string_equal(e->code, "131328");
    e = find(&x, "code", 1);
    assert_string_equal(e->system, CT_FHIR_SYS_MDC_ISO);
    e = find(&x, "code", 2);
    assert_null(e->system);
    assert_string_equal(e->code, "nosys");
    e = find(&x, "status", 0);
    assert_string_equal(e->system, "http://hl7.org/fhir/observation-status");
    assert_string_equal(e->code, "final");
    assert_string_equal(find(&x, "category", 0)->code, "procedure");
    assert_string_equal(find(&x, "identifier", 0)->code, "urn:uuid:1");
    e = find(&x, "subject", 0);
    assert_int_equal(e->kind, CT_FHIR_INDEX_REFERENCE);
    assert_string_equal(e->ref_type, "Patient");
    assert_string_equal(e->ref_id, "p-1");
    assert_string_equal(find(&x, "patient", 0)->ref_id, "p-1");
    e = find(&x, "date", 0);
    assert_int_equal(e->kind, CT_FHIR_INDEX_DATE);
    assert_true(e->start_ms == ct_fhir_utc_ms(2026, 1, 1, 10, 0, 0, 0));
    assert_true(e->end_ms == CT_FHIR_INDEX_TIME_MAX); /* an open period */
    ct_fhir_index_free(&x);
    json_decref(o);

    /* Precision makes the range; a subject that is not a Patient is no patient. */
    o = parse("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
              "\"subject\":{\"reference\":\"Group/g\"},\"effectiveDateTime\":\"2026-02\"}");
    assert_int_equal(ct_fhir_index_extract(o, "Observation", &x), 0);
    assert_string_equal(x.patient, "");
    assert_null(find(&x, "patient", 0));
    assert_string_equal(find(&x, "subject", 0)->ref_type, "Group");
    e = find(&x, "date", 0);
    assert_true(e->start_ms == ct_fhir_utc_ms(2026, 2, 1, 0, 0, 0, 0));
    assert_true(e->end_ms == ct_fhir_utc_ms(2026, 3, 1, 0, 0, 0, 0));
    ct_fhir_index_free(&x);
    json_decref(o);

    /* What does not parse is not indexed (validation decides the rest). */
    o = parse("{\"resourceType\":\"Observation\",\"effectiveDateTime\":\"yesterday\",\"subject\":{\"reference\":\"http://other/Patient/1\"},"
              "\"effectivePeriod\":{\"start\":\"2026-01-02T00:00:00Z\",\"end\":\"2026-01-01T00:00:00Z\"}}");
    assert_int_equal(ct_fhir_index_extract(o, "Observation", &x), 0);
    assert_null(find(&x, "date", 0));
    assert_null(find(&x, "subject", 0));
    ct_fhir_index_free(&x);
    json_decref(o);
}

static void test_report_device_provenance_index(void **state)
{
    (void)state;
    json_t *d = parse("{\"resourceType\":\"DiagnosticReport\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"11524-6\"}]},"
                      "\"subject\":{\"reference\":\"Patient/p\"},\"effectiveDateTime\":\"2026-01-01T00:00:00.5Z\","
                      "\"result\":[{\"reference\":\"Observation/a\"},{\"reference\":\"Observation/b/_history/2\"}],"
                      "\"conclusionCode\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"164889003\"}]}]}");
    ct_fhir_index x;
    assert_int_equal(ct_fhir_index_extract(d, "DiagnosticReport", &x), 0);
    assert_int_equal(count(&x, "result"), 2);
    assert_string_equal(find(&x, "result", 1)->ref_id, "b");
    assert_string_equal(find(&x, "conclusion", 0)->code, "164889003");
    assert_string_equal(find(&x, "status", 0)->system, "http://hl7.org/fhir/diagnostic-report-status");
    const ct_fhir_index_entry *e = find(&x, "date", 0);
    assert_true(e->end_ms - e->start_ms == 100); /* tenths of a second */
    assert_string_equal(x.patient, "p");
    ct_fhir_index_free(&x);
    json_decref(d);

    json_t *dev = parse("{\"resourceType\":\"Device\",\"patient\":{\"reference\":\"Patient/q\"}}");
    assert_int_equal(ct_fhir_index_extract(dev, "Device", &x), 0);
    assert_string_equal(find(&x, "patient", 0)->ref_id, "q");
    assert_string_equal(x.patient, "q");
    ct_fhir_index_free(&x);
    json_decref(dev);

    json_t *pv = parse("{\"resourceType\":\"Provenance\",\"target\":[{\"reference\":\"DiagnosticReport/r\"},{\"reference\":\"Observation/o\"}]}");
    assert_int_equal(ct_fhir_index_extract(pv, "Provenance", &x), 0);
    assert_int_equal(count(&x, "target"), 2);
    assert_string_equal(x.patient, "");
    ct_fhir_index_free(&x);
    json_decref(pv);
}


/* identifier on every type that has one; Patient's is what conditional
 * create by MRN finds. A value without a system is a token without one; an
 * identifier without a value cannot be searched. */
static void test_identifier_index(void **state)
{
    (void)state;
    static const char *const types[] = {"Patient", "Observation", "DiagnosticReport", "Device"};
    for (size_t t = 0; t < 4; t++) {
        char text[400];
        snprintf(text, sizeof text,
                 "{\"resourceType\":\"%s\",\"identifier\":[{\"system\":\"urn:oid:1.2.3\",\"value\":\"MRN-7\"},"
                 "{\"value\":\"local-1\"},{\"system\":\"urn:oid:9\"},{\"system\":\"\",\"value\":\"x\"}]}",
                 types[t]);
        json_t *j = parse(text);
        ct_fhir_index x;
        assert_int_equal(ct_fhir_index_extract(j, types[t], &x), 0);
        assert_int_equal(count(&x, "identifier"), 2);
        const ct_fhir_index_entry *e = find(&x, "identifier", 0);
        assert_int_equal(e->kind, CT_FHIR_INDEX_TOKEN);
        assert_string_equal(e->system, "urn:oid:1.2.3");
        assert_string_equal(e->code, "MRN-7");
        e = find(&x, "identifier", 1);
        assert_null(e->system);
        assert_string_equal(e->code, "local-1");
        ct_fhir_index_free(&x);
        json_decref(j);
    }
    /* A Patient indexes nothing else: no patient of its own. */
    json_t *p = parse("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Doe\"}]}");
    ct_fhir_index x;
    assert_int_equal(ct_fhir_index_extract(p, "Patient", &x), 0);
    assert_int_equal(x.n, 0);
    assert_string_equal(x.patient, "");
    ct_fhir_index_free(&x);
    json_decref(p);
}

/* The shapes the twin writes (builders.c) give the rows its searches rely
 * on: the report by patient, conclusion, status and identifier, its results
 * for _include, a derived Observation by patient and code. */
static void test_twin_shapes(void **state)
{
    (void)state;
    const char *results[] = {"r1-hr"};
    ct_fhir_finding f = CT_FHIR_FINDING_VT;
    ct_fhir_report_in in = {.id = "r1", .status = "preliminary", .patient_id = "mitdb-106",
                            .start_ms = ct_fhir_utc_ms(2026, 1, 1, 0, 0, 0, 0), .end_ms = -1,
                            .issued_ms = ct_fhir_utc_ms(2026, 1, 1, 0, 1, 0, 0),
                            .identifier_system = CT_FHIR_CANONICAL_BASE "/twin-resource", .identifier_value = "r1",
                            .result_ids = results, .n_results = 1, .conclusion = "VT", .findings = &f, .n_findings = 1};
    ct_error err;
    json_t *rep = ct_fhir_report_build(&in, &err);
    assert_non_null(rep);
    ct_fhir_index x;
    assert_int_equal(ct_fhir_index_extract(rep, "DiagnosticReport", &x), 0);
    assert_string_equal(find(&x, "patient", 0)->ref_id, "mitdb-106");
    assert_string_equal(find(&x, "conclusion", 0)->code, "164895002");
    assert_string_equal(find(&x, "status", 0)->code, "preliminary");
    assert_string_equal(find(&x, "identifier", 0)->code, "r1");
    assert_string_equal(find(&x, "result", 0)->ref_id, "r1-hr");
    const ct_fhir_index_entry *e = find(&x, "date", 0);
    assert_true(e->start_ms == in.start_ms && e->end_ms == CT_FHIR_INDEX_TIME_MAX);
    assert_string_equal(x.patient, "mitdb-106");
    ct_fhir_index_free(&x);
    json_decref(rep);

    const char *src[] = {"ecg-1"};
    ct_fhir_derived_in d = {.id = "r1-hr", .patient_id = "mitdb-106", .start_ms = in.start_ms,
                            .end_ms = in.start_ms + 60000, .issued_ms = -1, .device_id = "dev",
                            .derived_from_ids = src, .n_derived_from = 1};
    json_t *hr = ct_fhir_heart_rate_build(&d, 180, &err);
    assert_non_null(hr);
    assert_int_equal(ct_fhir_index_extract(hr, "Observation", &x), 0);
    assert_string_equal(find(&x, "patient", 0)->ref_id, "mitdb-106");
    assert_string_equal(find(&x, "code", 0)->code, "8867-4");
    assert_string_equal(find(&x, "category", 0)->code, "vital-signs");
    ct_fhir_index_free(&x);
    json_decref(hr);
}

/* Bad input: not an object, no type, and the entry ceiling. */
static void test_limits(void **state)
{
    (void)state;
    ct_fhir_index x;
    json_t *arr = json_array();
    assert_int_equal(ct_fhir_index_extract(arr, "Patient", &x), CT_EINVAL);
    assert_null(x.e);
    json_decref(arr);
    json_t *p = json_pack("{s:s}", "resourceType", "Patient");
    assert_int_equal(ct_fhir_index_extract(p, NULL, &x), CT_EINVAL);
    json_t *ids = json_array();
    for (int i = 0; i <= CT_FHIR_INDEX_MAX_ENTRIES; i++)
        json_array_append_new(ids, json_pack("{s:s}", "value", "v"));
    json_object_set_new(p, "identifier", ids);
    assert_int_equal(ct_fhir_index_extract(p, "Patient", &x), CT_ELIMIT);
    assert_null(x.e);
    assert_int_equal(x.n, 0);
    /* Exactly at the ceiling is fine. */
    json_array_remove(ids, 0);
    assert_int_equal(ct_fhir_index_extract(p, "Patient", &x), 0);
    assert_int_equal(x.n, CT_FHIR_INDEX_MAX_ENTRIES);
    ct_fhir_index_free(&x);
    /* A code longer than the store keeps is left out, not cut. */
    char *long_code = malloc(CT_FHIR_INDEX_MAX_TEXT + 2);
    memset(long_code, 'a', CT_FHIR_INDEX_MAX_TEXT + 1);
    long_code[CT_FHIR_INDEX_MAX_TEXT + 1] = '\0';
    json_object_set_new(p, "identifier", json_pack("[{s:s}]", "value", long_code));
    assert_int_equal(ct_fhir_index_extract(p, "Patient", &x), 0);
    assert_int_equal(x.n, 0);
    ct_fhir_index_free(&x);
    free(long_code);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observation_index),
        cmocka_unit_test(test_report_device_provenance_index),
        cmocka_unit_test(test_identifier_index),
        cmocka_unit_test(test_twin_shapes),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
