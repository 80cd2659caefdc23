/* Tests of the conformance artefacts in fhir/: each one is a valid resource
 * that the server can serve, and each agrees with the code it describes
 * (the CapabilityStatement lists exactly the search parameters of
 * ct_fhir_search_params, the ValueSet exactly the leads of ct_fhir_leads,
 * the CodeSystem exactly the metrics, the profile our canonical URL), so
 * that neither can drift from the other unnoticed. */
#include "fhir_test_util.h"

static json_t *load(const char *rel, const char *type)
{
    size_t len;
    char *text = read_source_file(rel, &len);
    json_t *j;
    ct_fhir_issue is;
    if (ct_fhir_parse(text, len, NULL, &j, &is))
        fail_msg("%s: %s", rel, is.diagnostics);
    free(text);
    if (ct_fhir_validate_resource(j, type, &is))
        fail_msg("%s: %s at %s", rel, is.diagnostics, is.expression);
    const char *url = json_string_value(json_object_get(j, "url"));
    if (url && strncmp(url, CT_FHIR_CANONICAL_BASE "/", strlen(CT_FHIR_CANONICAL_BASE) + 1) != 0)
        fail_msg("%s: url %s is not under " CT_FHIR_CANONICAL_BASE, rel, url);
    return j;
}

static void test_capability_statement(void **state)
{
    (void)state;
    json_t *cs = load("fhir/CapabilityStatement.json", "CapabilityStatement");
    assert_string_equal(json_string_value(json_object_get(cs, "fhirVersion")), CT_FHIR_VERSION);
    assert_string_equal(json_string_value(json_object_get(cs, "kind")), "instance");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cs, "software"), "name")), "cardiotwin");
    /* The version is filled in when served. */
    assert_string_equal(json_string_value(json_object_get(json_object_get(cs, "software"), "version")),
                        "@CARDIOTWIN_VERSION@");
    json_t *fmt = json_object_get(cs, "format");
    int has_json = 0;
    for (size_t i = 0; i < json_array_size(fmt); i++)
        has_json |= strcmp(json_string_value(json_array_get(fmt, i)), "json") == 0;
    assert_true(has_json);
    json_t *rest = json_array_get(json_object_get(cs, "rest"), 0);
    assert_string_equal(json_string_value(json_object_get(rest, "mode")), "server");
    json_t *sys = json_object_get(rest, "interaction");
    assert_int_equal(json_array_size(sys), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(sys, 0), "code")), "batch");
    assert_string_equal(json_string_value(json_object_get(json_array_get(sys, 1), "code")), "transaction");
    json_t *res = json_object_get(rest, "resource");
    static const char *const types[] = {"Patient", "Observation", "DiagnosticReport", "Device", "Provenance"};
    static const char *const inter[] = {"read", "vread", "update", "delete", "history-instance", "create", "search-type"};
    assert_int_equal(json_array_size(res), 6);
    /* The audit log: read and search only, with exactly the parser's parameters. */
    {
        json_t *ae = json_array_get(res, 5);
        assert_string_equal(json_string_value(json_object_get(ae, "type")), "AuditEvent");
        json_t *ia = json_object_get(ae, "interaction");
        assert_int_equal(json_array_size(ia), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(ia, 0), "code")), "read");
        assert_string_equal(json_string_value(json_object_get(json_array_get(ia, 1), "code")), "search-type");
        size_t n;
        const ct_fhir_search_param *p = ct_fhir_search_params("AuditEvent", &n);
        json_t *sp = json_object_get(ae, "searchParam");
        assert_int_equal(json_array_size(sp), n);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(json_string_value(json_object_get(json_array_get(sp, i), "name")), p[i].name);
            assert_string_equal(json_string_value(json_object_get(json_array_get(sp, i), "type")),
                                ct_fhir_param_type_name(p[i].type));
        }
    }
    for (size_t t = 0; t < 5; t++) {
        json_t *r = json_array_get(res, t);
        const char *type = json_string_value(json_object_get(r, "type"));
        assert_string_equal(type, types[t]);
        assert_int_equal(ct_fhir_supported_type(type), 1);
        json_t *ia = json_object_get(r, "interaction");
        assert_int_equal(json_array_size(ia), 7);
        for (size_t i = 0; i < 7; i++)
            assert_string_equal(json_string_value(json_object_get(json_array_get(ia, i), "code")), inter[i]);
        assert_true(json_is_true(json_object_get(r, "conditionalCreate")));
        /* Exactly the parameters the parser knows, in its order. */
        size_t n;
        const ct_fhir_search_param *p = ct_fhir_search_params(type, &n);
        json_t *sp = json_object_get(r, "searchParam");
        if (json_array_size(sp) != n)
            fail_msg("%s: %zu searchParam in the CapabilityStatement, %zu in the parser", type,
                     json_array_size(sp), n);
        for (size_t i = 0; i < n; i++) {
            json_t *e = json_array_get(sp, i);
            assert_string_equal(json_string_value(json_object_get(e, "name")), p[i].name);
            assert_string_equal(json_string_value(json_object_get(e, "type")), ct_fhir_param_type_name(p[i].type));
        }
        if (strcmp(type, "Observation") == 0)
            assert_string_equal(json_string_value(json_array_get(json_object_get(r, "supportedProfile"), 0)),
                                CT_FHIR_ECG_PROFILE);
        if (strcmp(type, "DiagnosticReport") == 0)
            assert_string_equal(json_string_value(json_array_get(json_object_get(r, "searchInclude"), 0)),
                                "DiagnosticReport:result");
    }
    json_decref(cs);
}

static void test_profile_and_valueset(void **state)
{
    (void)state;
    json_t *sd = load("fhir/StructureDefinition-cardiotwin-ecg-observation.json", "StructureDefinition");
    assert_string_equal(json_string_value(json_object_get(sd, "url")), CT_FHIR_ECG_PROFILE);
    assert_string_equal(json_string_value(json_object_get(sd, "type")), "Observation");
    assert_string_equal(json_string_value(json_object_get(sd, "fhirVersion")), CT_FHIR_VERSION);
    assert_string_equal(json_string_value(json_object_get(sd, "derivation")), "constraint");
    json_t *vs = load("fhir/ValueSet-cardiotwin-ecg-leads.json", "ValueSet");
    const char *vs_url = json_string_value(json_object_get(vs, "url"));
    json_t *els = json_object_get(json_object_get(sd, "differential"), "element");
    int seen_binding = 0, seen_max = 0, seen_dim = 0;
    for (size_t i = 0; i < json_array_size(els); i++) {
        json_t *e = json_array_get(els, i);
        const char *id = json_string_value(json_object_get(e, "id"));
        assert_non_null(id);
        assert_string_equal(id, json_string_value(json_object_get(e, "path")));
        if (strcmp(id, "Observation.component.code") == 0) {
            assert_string_equal(json_string_value(json_object_get(json_object_get(e, "binding"), "valueSet")), vs_url);
            seen_binding = 1;
        }
        if (strcmp(id, "Observation.component") == 0) {
            char max[8];
            snprintf(max, sizeof max, "%d", CT_FHIR_ECG_MAX_LEADS);
            assert_string_equal(json_string_value(json_object_get(e, "max")), max);
            seen_max = 1;
        }
        if (strcmp(id, "Observation.component.value[x].dimensions") == 0) {
            assert_int_equal(json_integer_value(json_object_get(e, "fixedPositiveInt")), 1);
            seen_dim = 1;
        }
    }
    assert_true(seen_binding && seen_max && seen_dim);
    /* The ValueSet: every accepted lead, in both MDC system URIs, and nothing else. */
    size_t n;
    const ct_fhir_lead_info *leads = ct_fhir_leads(&n);
    json_t *inc = json_object_get(json_object_get(vs, "compose"), "include");
    assert_int_equal(json_array_size(inc), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(inc, 0), "system")), CT_FHIR_SYS_MDC);
    assert_string_equal(json_string_value(json_object_get(json_array_get(inc, 1), "system")), CT_FHIR_SYS_MDC_ISO);
    for (size_t s = 0; s < 2; s++) {
        json_t *concepts = json_object_get(json_array_get(inc, s), "concept");
        assert_int_equal(json_array_size(concepts), n);
        for (size_t i = 0; i < n; i++) {
            json_t *c = json_array_get(concepts, i);
            assert_int_equal(atoi(json_string_value(json_object_get(c, "code"))), leads[i].mdc_code);
            assert_string_equal(json_string_value(json_object_get(c, "display")), leads[i].mdc_name);
        }
    }
    json_decref(vs);
    json_decref(sd);
}

static void test_codesystem(void **state)
{
    (void)state;
    json_t *cs = load("fhir/CodeSystem-cardiotwin-ecg-metric.json", "CodeSystem");
    assert_string_equal(json_string_value(json_object_get(cs, "url")), CT_FHIR_METRIC_SYSTEM);
    json_t *concepts = json_object_get(cs, "concept");
    assert_int_equal(json_array_size(concepts), CT_FHIR_METRIC_COUNT_);
    assert_int_equal(json_integer_value(json_object_get(cs, "count")), CT_FHIR_METRIC_COUNT_);
    for (int m = 0; m < CT_FHIR_METRIC_COUNT_; m++) {
        json_t *c = json_array_get(concepts, (size_t)m);
        assert_string_equal(json_string_value(json_object_get(c, "code")), ct_fhir_metric_code((ct_fhir_metric)m));
        assert_string_equal(json_string_value(json_object_get(c, "display")), ct_fhir_metric_display((ct_fhir_metric)m));
    }
    json_decref(cs);
}

static void test_readme_names_every_file(void **state)
{
    (void)state;
    char *readme = read_source_file("fhir/README.md", NULL);
    static const char *const files[] = {
        "CapabilityStatement.json", "StructureDefinition-cardiotwin-ecg-observation.json",
        "ValueSet-cardiotwin-ecg-leads.json", "CodeSystem-cardiotwin-ecg-metric.json",
        "examples/observation-example-sample-data.json",
        "examples/diagnosticreport-cardiotwin-example.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        if (!strstr(readme, files[i]))
            fail_msg("fhir/README.md does not explain %s", files[i]);
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capability_statement),
        cmocka_unit_test(test_profile_and_valueset),
        cmocka_unit_test(test_codesystem),
        cmocka_unit_test(test_readme_names_every_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
