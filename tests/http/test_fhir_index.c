/* What the FHIR API indexes from a resource (the values each search
 * parameter sees) and what it refuses to store (validation): both MDC
 * systems for one coding, status with its value set's system, dates as
 * ranges by precision and open periods, references and the patient a
 * resource is about; each required element and each SampledData problem
 * with its FHIRPath. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/fhir_internal.h"

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("test JSON: %s", e.text);
    return j;
}

static const ct_store_index_entry *find(const ct_http_index *x, const char *param, size_t nth)
{
    for (size_t i = 0; i < x->n; i++)
        if (strcmp(x->e[i].param, param) == 0 && nth-- == 0)
            return &x->e[i];
    return NULL;
}

static size_t count(const ct_http_index *x, const char *param)
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
    ct_http_index x;
    assert_int_equal(ct_http_index_extract(o, "Observation", &x), 0);
    assert_string_equal(x.patient, "p-1");
    assert_int_equal(count(&x, "code"), 3); /* both MDC systems, and the code without a system */
    const ct_store_index_entry *e = find(&x, "code", 0);
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
    assert_int_equal(e->kind, CT_STORE_INDEX_REFERENCE);
    assert_string_equal(e->ref_type, "Patient");
    assert_string_equal(e->ref_id, "p-1");
    assert_string_equal(find(&x, "patient", 0)->ref_id, "p-1");
    e = find(&x, "date", 0);
    assert_int_equal(e->kind, CT_STORE_INDEX_DATE);
    assert_true(e->start_ms == ct_fhir_utc_ms(2026, 1, 1, 10, 0, 0, 0));
    assert_true(e->end_ms == CT_STORE_TIME_MAX); /* an open period */
    ct_http_index_free(&x);
    json_decref(o);

    /* Precision makes the range; a subject that is not a Patient is no patient. */
    o = parse("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
              "\"subject\":{\"reference\":\"Group/g\"},\"effectiveDateTime\":\"2026-02\"}");
    assert_int_equal(ct_http_index_extract(o, "Observation", &x), 0);
    assert_string_equal(x.patient, "");
    assert_null(find(&x, "patient", 0));
    assert_string_equal(find(&x, "subject", 0)->ref_type, "Group");
    e = find(&x, "date", 0);
    assert_true(e->start_ms == ct_fhir_utc_ms(2026, 2, 1, 0, 0, 0, 0));
    assert_true(e->end_ms == ct_fhir_utc_ms(2026, 3, 1, 0, 0, 0, 0));
    ct_http_index_free(&x);
    json_decref(o);

    /* What does not parse is not indexed (validation decides the rest). */
    o = parse("{\"resourceType\":\"Observation\",\"effectiveDateTime\":\"yesterday\",\"subject\":{\"reference\":\"http://other/Patient/1\"},"
              "\"effectivePeriod\":{\"start\":\"2026-01-02T00:00:00Z\",\"end\":\"2026-01-01T00:00:00Z\"}}");
    assert_int_equal(ct_http_index_extract(o, "Observation", &x), 0);
    assert_null(find(&x, "date", 0));
    assert_null(find(&x, "subject", 0));
    ct_http_index_free(&x);
    json_decref(o);
}

static void test_report_device_provenance_index(void **state)
{
    (void)state;
    json_t *d = parse("{\"resourceType\":\"DiagnosticReport\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"http://loinc.org\",\"code\":\"11524-6\"}]},"
                      "\"subject\":{\"reference\":\"Patient/p\"},\"effectiveDateTime\":\"2026-01-01T00:00:00.5Z\","
                      "\"result\":[{\"reference\":\"Observation/a\"},{\"reference\":\"Observation/b/_history/2\"}],"
                      "\"conclusionCode\":[{\"coding\":[{\"system\":\"http://snomed.info/sct\",\"code\":\"164889003\"}]}]}");
    ct_http_index x;
    assert_int_equal(ct_http_index_extract(d, "DiagnosticReport", &x), 0);
    assert_int_equal(count(&x, "result"), 2);
    assert_string_equal(find(&x, "result", 1)->ref_id, "b");
    assert_string_equal(find(&x, "conclusion", 0)->code, "164889003");
    assert_string_equal(find(&x, "status", 0)->system, "http://hl7.org/fhir/diagnostic-report-status");
    const ct_store_index_entry *e = find(&x, "date", 0);
    assert_true(e->end_ms - e->start_ms == 100); /* tenths of a second */
    assert_string_equal(x.patient, "p");
    ct_http_index_free(&x);
    json_decref(d);

    json_t *dev = parse("{\"resourceType\":\"Device\",\"patient\":{\"reference\":\"Patient/q\"}}");
    assert_int_equal(ct_http_index_extract(dev, "Device", &x), 0);
    assert_string_equal(find(&x, "patient", 0)->ref_id, "q");
    assert_string_equal(x.patient, "q");
    ct_http_index_free(&x);
    json_decref(dev);

    json_t *pv = parse("{\"resourceType\":\"Provenance\",\"target\":[{\"reference\":\"DiagnosticReport/r\"},{\"reference\":\"Observation/o\"}]}");
    assert_int_equal(ct_http_index_extract(pv, "Provenance", &x), 0);
    assert_int_equal(count(&x, "target"), 2);
    assert_string_equal(x.patient, "");
    ct_http_index_free(&x);
    json_decref(pv);
}

static void expect_invalid(const char *text, const char *type, const char *expr, const char *words)
{
    json_t *j = parse(text);
    ct_fhir_issue is;
    memset(&is, 0, sizeof is);
    int rc = ct_http_fhir_validate(j, type, &is);
    json_decref(j);
    if (rc == 0)
        fail_msg("accepted: %s", text);
    assert_int_equal(is.http_status, 422);
    if (strcmp(is.expression, expr) != 0)
        fail_msg("expression %s, wanted %s (%s)", is.expression, expr, is.diagnostics);
    if (!strstr(is.diagnostics, words))
        fail_msg("diagnostics \"%s\" lack \"%s\"", is.diagnostics, words);
}

#define ECG_HEAD                                                                                                  \
    "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"coding\":[{\"system\":\"urn:oid:2.16.840.1.113883.6.24\",\"code\":\"131328\"}]}," \
    "\"subject\":{\"reference\":\"Patient/p\"},\"effectiveDateTime\":\"2026-01-01T10:00:00Z\",\"component\":[{\"code\":{\"coding\":[{\"system\":\"urn:oid:2.16.840.1.113883.6.24\",\"code\":\"131329\"}]},\"valueSampledData\":"
#define OTHER_HEAD "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"pressure\"},\"valueSampledData\":"

static void test_validation(void **state)
{
    (void)state;
    json_t *ok = parse(ECG_HEAD "{\"origin\":{\"value\":0},\"period\":2.5,\"dimensions\":1,\"data\":\"1 2 3\"}}]}");
    ct_fhir_issue is;
    assert_int_equal(ct_http_fhir_validate(ok, "Observation", &is), 0);
    json_decref(ok);

    expect_invalid("{\"resourceType\":\"Observation\",\"code\":{\"text\":\"x\"}}", "Observation", "Observation.status", "status is required");
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"done\",\"code\":{\"text\":\"x\"}}", "Observation", "Observation.status", "one of");
    expect_invalid("{\"resourceType\":\"Observation\",\"status\":\"final\"}", "Observation", "Observation.code", "code is required");
    expect_invalid("{\"resourceType\":\"DiagnosticReport\",\"status\":\"partial\",\"code\":\"x\"}", "DiagnosticReport", "DiagnosticReport.code", "CodeableConcept");
    expect_invalid("{\"resourceType\":\"Provenance\",\"recorded\":\"2026-01-01T00:00:00Z\",\"agent\":[{\"who\":{\"display\":\"x\"}}]}", "Provenance", "Provenance.target", "target is required");
    expect_invalid("{\"resourceType\":\"Provenance\",\"target\":[{\"reference\":\"Patient/p\"}],\"recorded\":\"2026-01-01\",\"agent\":[{\"who\":{\"display\":\"x\"}}]}",
                   "Provenance", "Provenance.recorded", "");
    expect_invalid("{\"resourceType\":\"Patient\",\"active\":null}", "Patient", "Patient.active", "");

    /* The ECG profile (the fhir room's checks). */
    expect_invalid(ECG_HEAD "{\"origin\":{\"value\":0},\"dimensions\":1,\"data\":\"1 2 3\"}}]}", "Observation",
                   "Observation.component[0].valueSampledData.period", "");
    expect_invalid(ECG_HEAD "{\"origin\":{\"value\":0},\"period\":2.5,\"dimensions\":1}}]}", "Observation",
                   "Observation.component[0].valueSampledData.data", "");
    expect_invalid(ECG_HEAD "{\"origin\":{\"value\":0},\"period\":2.5,\"dimensions\":1,\"data\":\"1 +2 3\"}}]}", "Observation",
                   "Observation.component[0].valueSampledData.data", "");

    /* Any other SampledData: what R4 requires, data that parses and fits. */
    expect_invalid(OTHER_HEAD "{\"period\":1,\"dimensions\":1,\"data\":\"1\"}}", "Observation", "Observation.valueSampledData.origin", "origin.value");
    expect_invalid(OTHER_HEAD "{\"origin\":{\"value\":0},\"dimensions\":1,\"data\":\"1\"}}", "Observation", "Observation.valueSampledData.period", "period");
    expect_invalid(OTHER_HEAD "{\"origin\":{\"value\":0},\"period\":0,\"dimensions\":1,\"data\":\"1\"}}", "Observation", "Observation.valueSampledData.period", "above 0");
    expect_invalid(OTHER_HEAD "{\"origin\":{\"value\":0},\"period\":1,\"data\":\"1\"}}", "Observation", "Observation.valueSampledData.dimensions", "dimensions");
    expect_invalid(OTHER_HEAD "{\"origin\":{\"value\":0},\"period\":1,\"dimensions\":1}}", "Observation", "Observation.valueSampledData.data", "needs data");
    expect_invalid(OTHER_HEAD "{\"origin\":{\"value\":0},\"period\":1,\"dimensions\":1,\"data\":\"1 .5\"}}", "Observation",
                   "Observation.valueSampledData.data", "value 2 (\".5\")");
    expect_invalid(OTHER_HEAD "{\"origin\":{\"value\":0},\"period\":1,\"dimensions\":2,\"data\":\"1 2 3\"}}", "Observation",
                   "Observation.valueSampledData.data", "not a multiple of dimensions (2)");
    json_t *multi = parse(OTHER_HEAD "{\"origin\":{\"value\":0},\"period\":1,\"dimensions\":2,\"data\":\"1 -2.5e3 E  U\"}}");
    assert_int_equal(ct_http_fhir_validate(multi, "Observation", &is), 0);
    json_decref(multi);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_observation_index),
        cmocka_unit_test(test_report_device_provenance_index),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
