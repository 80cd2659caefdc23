/* What the FHIR API refuses to store (validation, src/http/fhir_validate.c):
 * each required element and each SampledData problem with its FHIRPath; and
 * the http room's copy of the fhir room's index entries into the store's
 * type. The index rules themselves are tested in tests/fhir/test_index.c. */
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

/* The store's entries are the fhir room's, field for field. */
static void test_index_copy(void **state)
{
    (void)state;
    json_t *o = parse("{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"},"
                      "\"identifier\":[{\"system\":\"s\",\"value\":\"v\"}],"
                      "\"subject\":{\"reference\":\"Patient/p-1\"},\"effectiveDateTime\":\"2026-02\"}");
    ct_http_index h;
    ct_fhir_index f;
    assert_int_equal(ct_http_index_extract(o, "Observation", &h), 0);
    assert_int_equal(ct_fhir_index_extract(o, "Observation", &f), 0);
    assert_int_equal(h.n, f.n);
    assert_true(h.n >= 5);
    assert_string_equal(h.patient, "p-1");
    for (size_t i = 0; i < h.n; i++) {
        assert_string_equal(h.e[i].param, f.e[i].param);
        assert_int_equal((int)h.e[i].kind, (int)f.e[i].kind);
        if (h.e[i].kind == CT_STORE_INDEX_TOKEN) {
            assert_string_equal(h.e[i].code, f.e[i].code);
            if (f.e[i].system)
                assert_string_equal(h.e[i].system, f.e[i].system);
            else
                assert_null(h.e[i].system);
        } else if (h.e[i].kind == CT_STORE_INDEX_DATE) {
            assert_true(h.e[i].start_ms == f.e[i].start_ms && h.e[i].end_ms == f.e[i].end_ms);
        } else {
            assert_string_equal(h.e[i].ref_type, f.e[i].ref_type);
            assert_string_equal(h.e[i].ref_id, f.e[i].ref_id);
        }
    }
    ct_fhir_index_free(&f);
    ct_http_index_free(&h);
    ct_http_index_free(&h); /* twice is harmless */
    json_decref(o);
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
        cmocka_unit_test(test_index_copy),
        cmocka_unit_test(test_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
