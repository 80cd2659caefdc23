/* Tests of what the twin writes: each builder's output against the
 * elements the FHIR R4 specification requires of that resource (and the
 * codes docs/fhir.md promises), the example DiagnosticReport in fhir/examples
 * being exactly what the builder writes, refusals of invalid input, and
 * Bundles of every type with exact reference counting (ASan checks it). */
#include "fhir_test_util.h"

static const char *str(const json_t *o, const char *path)
{
    /* path: "a.b.0.c": object keys and array indexes */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (tok[0] >= '0' && tok[0] <= '9') ? json_array_get(cur, (size_t)atoi(tok))
                                               : json_object_get(cur, tok);
    return json_is_string(cur) ? json_string_value(cur) : NULL;
}

static const json_t *get(const json_t *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = o;
    for (char *tok = strtok(buf, "."); tok && cur; tok = strtok(NULL, "."))
        cur = (tok[0] >= '0' && tok[0] <= '9') ? json_array_get(cur, (size_t)atoi(tok))
                                               : json_object_get(cur, tok);
    return cur;
}

#define assert_str(o, path, want)                                                         \
    do {                                                                                  \
        const char *got_ = str(o, path);                                                  \
        if (!got_ || strcmp(got_, want) != 0)                                             \
            fail_msg("%s is '%s', want '%s'", path, got_ ? got_ : "(none)", want);       \
    } while (0)

/* The resource passes the generic shape check (no empty elements ...). */
static void assert_valid(const json_t *r, const char *type)
{
    ct_fhir_issue is;
    if (ct_fhir_validate_resource(r, type, &is))
        fail_msg("%s invalid: %s at %s", type, is.diagnostics, is.expression);
}

static const char *const results[] = {"hr-1", "pvc-1"};
static const ct_fhir_finding example_findings[] = {CT_FHIR_FINDING_PVC, CT_FHIR_FINDING_BIGEMINY,
                                                   CT_FHIR_FINDING_PAUSE};

static ct_fhir_report_in example_report_in(void)
{
    ct_fhir_report_in in;
    memset(&in, 0, sizeof in);
    in.id = "ecg-alert-1";
    in.status = "final";
    in.patient_id = "p100";
    in.start_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0);
    in.end_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 5, 0, 0);
    in.issued_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 5, 1, 250);
    in.identifier_system = "https://cardiotwin.example/fhir/alert";
    in.identifier_value = "p100-2026-11-22T10:00:00Z-pvc";
    in.result_ids = results;
    in.n_results = 2;
    in.conclusion = "Frequent premature ventricular contractions in ventricular bigeminy, "
                    "and one pause of 2.1 s. Mean heart rate 78/min.";
    in.findings = example_findings;
    in.n_findings = 3;
    return in;
}

static void test_report(void **state)
{
    (void)state;
    ct_fhir_report_in in = example_report_in();
    ct_error err;
    json_t *r = ct_fhir_report_build(&in, &err);
    assert_non_null(r);
    assert_valid(r, "DiagnosticReport");
    /* R4 DiagnosticReport requires status, code; we promise the rest. */
    assert_str(r, "status", "final");
    assert_str(r, "category.0.coding.0.system", "http://terminology.hl7.org/CodeSystem/v2-0074");
    assert_str(r, "category.0.coding.0.code", "EC");
    assert_str(r, "category.1.coding.0.system", "http://loinc.org");
    assert_str(r, "category.1.coding.0.code", "LP29708-2");
    assert_str(r, "code.coding.0.system", "http://loinc.org");
    assert_str(r, "code.coding.0.code", "11524-6");
    assert_str(r, "subject.reference", "Patient/p100");
    assert_str(r, "effectivePeriod.start", "2026-11-22T10:00:00.000Z");
    assert_str(r, "effectivePeriod.end", "2026-11-22T10:05:00.000Z");
    assert_str(r, "issued", "2026-11-22T10:05:01.250Z");
    assert_str(r, "result.0.reference", "Observation/hr-1");
    assert_str(r, "result.1.reference", "Observation/pvc-1");
    assert_str(r, "identifier.0.value", "p100-2026-11-22T10:00:00Z-pvc");
    assert_str(r, "conclusionCode.0.coding.0.system", "http://snomed.info/sct");
    assert_str(r, "conclusionCode.0.coding.0.code", "427172004");
    assert_str(r, "conclusionCode.1.coding.0.code", "11157007");
    assert_str(r, "conclusionCode.2.text", "Pause");
    assert_null(get(r, "conclusionCode.2.coding"));
    assert_null(get(r, "derivedFrom")); /* not an R4 DiagnosticReport element */
    /* The example in fhir/examples is exactly this report. */
    size_t len;
    char *text = read_source_file("fhir/examples/diagnosticreport-cardiotwin-example.json", &len);
    json_t *file;
    ct_fhir_issue is;
    assert_int_equal(ct_fhir_parse(text, len, NULL, &file, &is), 0);
    free(text);
    if (!json_equal(file, r)) {
        char *s = json_dumps(r, JSON_INDENT(2));
        fail_msg("fhir/examples/diagnosticreport-cardiotwin-example.json differs from the builder:\n%s", s);
    }
    json_decref(file);
    json_decref(r);
    /* Open period, no results, no findings, no conclusion. */
    in.id = NULL;
    in.end_ms = -1;
    in.n_results = 0;
    in.n_findings = 0;
    in.conclusion = NULL;
    in.identifier_system = in.identifier_value = NULL;
    r = ct_fhir_report_build(&in, &err);
    assert_non_null(r);
    assert_valid(r, "DiagnosticReport");
    assert_null(get(r, "id"));
    assert_null(get(r, "effectivePeriod.end"));
    assert_null(get(r, "result"));
    assert_null(get(r, "conclusionCode"));
    json_decref(r);
}

static void test_report_refusals(void **state)
{
    (void)state;
    ct_error err;
    ct_fhir_report_in in = example_report_in();
    in.status = "done";
    assert_null(ct_fhir_report_build(&in, &err));
    assert_int_equal(err.code, CT_EINVAL);
    assert_non_null(strstr(err.msg, "status"));
    in = example_report_in();
    in.patient_id = NULL;
    assert_null(ct_fhir_report_build(&in, &err));
    in = example_report_in();
    in.end_ms = in.start_ms - 1;
    assert_null(ct_fhir_report_build(&in, &err));
    assert_non_null(strstr(err.msg, "reversed"));
    in = example_report_in();
    const char *bad_results[] = {"ok", "not ok"};
    in.result_ids = bad_results;
    assert_null(ct_fhir_report_build(&in, &err));
    assert_non_null(strstr(err.msg, "result 1"));
    in = example_report_in();
    ct_fhir_finding bad_f[] = {(ct_fhir_finding)99};
    in.findings = bad_f;
    in.n_findings = 1;
    assert_null(ct_fhir_report_build(&in, &err));
    in = example_report_in();
    in.identifier_value = NULL;
    assert_null(ct_fhir_report_build(&in, &err));
    in = example_report_in();
    in.conclusion = "\xc3";
    assert_null(ct_fhir_report_build(&in, &err));
    assert_null(ct_fhir_report_build(NULL, &err));
}

static void test_findings_table(void **state)
{
    (void)state;
    static const struct {
        ct_fhir_finding f;
        const char *code;
    } want[] = {
        {CT_FHIR_FINDING_SINUS_RHYTHM, "426783006"}, {CT_FHIR_FINDING_AF, "164889003"},
        {CT_FHIR_FINDING_AFL, "164890007"},          {CT_FHIR_FINDING_PVC, "427172004"},
        {CT_FHIR_FINDING_PAC, "284470004"},          {CT_FHIR_FINDING_VT, "164895002"},
        {CT_FHIR_FINDING_VF, "164896001"},           {CT_FHIR_FINDING_SINUS_BRADY, "426177001"},
        {CT_FHIR_FINDING_SINUS_TACHY, "427084000"},  {CT_FHIR_FINDING_BIGEMINY, "11157007"},
        {CT_FHIR_FINDING_TRIGEMINY, "251180001"},    {CT_FHIR_FINDING_COUPLET, "251182009"},
        {CT_FHIR_FINDING_ASYSTOLE, "397829000"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_string_equal(ct_fhir_finding_snomed(want[i].f), want[i].code);
        assert_non_null(ct_fhir_finding_display(want[i].f));
    }
    assert_null(ct_fhir_finding_snomed(CT_FHIR_FINDING_PAUSE));
    assert_string_equal(ct_fhir_finding_display(CT_FHIR_FINDING_PAUSE), "Pause");
    assert_null(ct_fhir_finding_display(CT_FHIR_FINDING_COUNT_));
}

static ct_fhir_derived_in derived_in(void)
{
    static const char *const src[] = {"ecg-1", "ecg-2"};
    ct_fhir_derived_in in;
    memset(&in, 0, sizeof in);
    in.id = "hr-1";
    in.patient_id = "p100";
    in.start_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0);
    in.end_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 5, 0, 0);
    in.issued_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 5, 1, 0);
    in.device_id = "detector";
    in.derived_from_ids = src;
    in.n_derived_from = 2;
    return in;
}

static void test_derived(void **state)
{
    (void)state;
    ct_error err;
    ct_fhir_derived_in in = derived_in();
    json_t *o = ct_fhir_heart_rate_build(&in, 78.26, &err);
    assert_non_null(o);
    assert_valid(o, "Observation");
    /* R4 Observation requires status and code; vital signs require category,
     * subject, effective and the UCUM /min unit. */
    assert_str(o, "status", "final");
    assert_str(o, "meta.profile.0", "http://hl7.org/fhir/StructureDefinition/heartrate");
    assert_str(o, "category.0.coding.0.code", "vital-signs");
    assert_str(o, "category.0.coding.0.system", "http://terminology.hl7.org/CodeSystem/observation-category");
    assert_str(o, "code.coding.0.system", "http://loinc.org");
    assert_str(o, "code.coding.0.code", "8867-4");
    assert_str(o, "subject.reference", "Patient/p100");
    assert_str(o, "effectivePeriod.start", "2026-11-22T10:00:00.000Z");
    assert_str(o, "issued", "2026-11-22T10:05:01.000Z");
    assert_str(o, "device.reference", "Device/detector");
    assert_str(o, "derivedFrom.1.reference", "Observation/ecg-2");
    assert_str(o, "valueQuantity.system", "http://unitsofmeasure.org");
    assert_str(o, "valueQuantity.code", "/min");
    assert_true(json_real_value(get(o, "valueQuantity.value")) == 78.3);
    json_decref(o);
    o = ct_fhir_heart_rate_build(&in, 60.0, &err);
    assert_true(json_is_integer(get(o, "valueQuantity.value")));
    json_decref(o);
    assert_null(ct_fhir_heart_rate_build(&in, -1, &err));
    assert_null(ct_fhir_heart_rate_build(&in, 0.0 / 0.0, &err));

    in.id = "pvc-1";
    in.end_ms = -1;
    in.issued_ms = -1;
    in.status = "preliminary";
    o = ct_fhir_count_build(&in, CT_FHIR_METRIC_PVC, 42, &err);
    assert_non_null(o);
    assert_valid(o, "Observation");
    assert_str(o, "status", "preliminary");
    assert_str(o, "code.coding.0.system", CT_FHIR_METRIC_SYSTEM);
    assert_str(o, "code.coding.0.code", "pvc-count");
    assert_str(o, "effectiveDateTime", "2026-11-22T10:00:00.000Z");
    assert_null(get(o, "issued"));
    assert_int_equal(json_integer_value(get(o, "valueInteger")), 42);
    json_decref(o);
    assert_null(ct_fhir_count_build(&in, CT_FHIR_METRIC_COUNT_, 1, &err));
    assert_null(ct_fhir_count_build(&in, CT_FHIR_METRIC_PVC, -1, &err));
    assert_null(ct_fhir_count_build(&in, CT_FHIR_METRIC_PVC, (int64_t)1 << 40, &err));
    in.status = "bogus";
    assert_null(ct_fhir_count_build(&in, CT_FHIR_METRIC_PVC, 1, &err));
    in = derived_in();
    in.device_id = "bad id";
    assert_null(ct_fhir_count_build(&in, CT_FHIR_METRIC_PVC, 1, &err));
    assert_string_equal(ct_fhir_metric_code(CT_FHIR_METRIC_VRUNS), "vrun-count");
    assert_null(ct_fhir_metric_code(CT_FHIR_METRIC_COUNT_));
}

static void test_device_provenance(void **state)
{
    (void)state;
    ct_error err;
    json_t *d = ct_fhir_device_build("detector", "cardiotwin detector", "0.1.0", &err);
    assert_non_null(d);
    assert_valid(d, "Device");
    assert_str(d, "deviceName.0.name", "cardiotwin detector");
    assert_str(d, "deviceName.0.type", "model-name");
    assert_str(d, "version.0.value", "0.1.0");
    json_decref(d);
    assert_null(ct_fhir_device_build("detector", "", "0.1.0", &err));
    assert_null(ct_fhir_device_build("bad id", "n", "0.1.0", &err));
    assert_null(ct_fhir_device_build(NULL, "n", NULL, &err));

    const char *targets[] = {"DiagnosticReport/ecg-alert-1", "Observation/hr-1"};
    const char *sources[] = {"Observation/ecg-1", "urn:uuid:0b8f3b0e-6e5c-4a4e-9e0b-2f1c3d4e5f60"};
    ct_fhir_provenance_in in = {"prov-1", targets, 2, ct_fhir_utc_ms(2026, 11, 22, 10, 5, 1, 0),
                                "detector", sources, 2};
    json_t *p = ct_fhir_provenance_build(&in, &err);
    assert_non_null(p);
    assert_valid(p, "Provenance");
    /* R4 Provenance requires target, recorded and agent.who. */
    assert_str(p, "target.0.reference", "DiagnosticReport/ecg-alert-1");
    assert_str(p, "target.1.reference", "Observation/hr-1");
    assert_str(p, "recorded", "2026-11-22T10:05:01.000Z");
    assert_str(p, "agent.0.who.reference", "Device/detector");
    assert_str(p, "agent.0.type.coding.0.code", "performer");
    assert_str(p, "entity.0.role", "derivation");
    assert_str(p, "entity.1.what.reference", "urn:uuid:0b8f3b0e-6e5c-4a4e-9e0b-2f1c3d4e5f60");
    assert_str(p, "activity.coding.0.code", "CREATE");
    json_decref(p);
    in.n_sources = 0;
    p = ct_fhir_provenance_build(&in, &err);
    assert_null(get(p, "entity"));
    json_decref(p);
    in.n_targets = 0;
    assert_null(ct_fhir_provenance_build(&in, &err));
    in.n_targets = 2;
    const char *bad[] = {"DiagnosticReport/x", "nope"};
    in.target_refs = bad;
    assert_null(ct_fhir_provenance_build(&in, &err));
    assert_non_null(strstr(err.msg, "target 1"));
}

static void test_bundles(void **state)
{
    (void)state;
    ct_error err;
    json_t *b = ct_fhir_bundle_new("searchset", &err);
    assert_non_null(b);
    assert_int_equal(ct_fhir_bundle_set_total(b, 2, &err), 0);
    assert_int_equal(ct_fhir_bundle_add_link(b, "self", "https://h/fhir/Observation?_count=1&_offset=0", &err), 0);
    assert_int_equal(ct_fhir_bundle_add_link(b, "next", "https://h/fhir/Observation?_count=1&_offset=1", &err), 0);
    ct_fhir_entry_in e;
    memset(&e, 0, sizeof e);
    e.response_last_modified_ms = -1;
    e.full_url = "https://h/fhir/Patient/p1";
    e.resource = json_pack("{s:s,s:s}", "resourceType", "Patient", "id", "p1");
    e.search_mode = "match";
    assert_int_equal(ct_fhir_bundle_add_entry(b, &e, &err), 0);
    assert_null(e.resource); /* stolen */
    ct_fhir_issue warn;
    ct_fhir_issue_set(&warn, 0, 200, CT_FHIR_SEV_WARNING, CT_FHIR_IT_NOT_SUPPORTED, "foo", "foo ignored");
    memset(&e, 0, sizeof e);
    e.response_last_modified_ms = -1;
    e.resource = ct_fhir_operation_outcome(&warn, 1);
    e.search_mode = "outcome";
    assert_int_equal(ct_fhir_bundle_add_entry(b, &e, &err), 0);
    assert_valid(b, "Bundle");
    assert_str(b, "type", "searchset");
    assert_int_equal(json_integer_value(get(b, "total")), 2);
    assert_str(b, "link.1.relation", "next");
    assert_str(b, "entry.0.search.mode", "match");
    assert_str(b, "entry.0.resource.id", "p1");
    assert_str(b, "entry.1.resource.resourceType", "OperationOutcome");
    /* An invalid entry is refused and its resource released (ASan watches). */
    memset(&e, 0, sizeof e);
    e.response_last_modified_ms = -1;
    e.resource = json_pack("{s:s}", "resourceType", "Patient");
    e.search_mode = "sometimes";
    assert_int_equal(ct_fhir_bundle_add_entry(b, &e, &err), CT_EINVAL);
    assert_null(e.resource);
    assert_int_equal(json_array_size(get(b, "entry")), 2);
    json_decref(b);

    b = ct_fhir_bundle_new("history", &err);
    memset(&e, 0, sizeof e);
    e.full_url = "https://h/fhir/Patient/p1";
    e.request_method = "DELETE";
    e.request_url = "Patient/p1";
    e.response_status = "200 OK";
    e.response_last_modified_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0);
    assert_int_equal(ct_fhir_bundle_add_entry(b, &e, &err), 0);
    assert_int_equal(ct_fhir_bundle_set_total(b, 1, &err), 0);
    assert_str(b, "entry.0.request.method", "DELETE");
    assert_null(get(b, "entry.0.resource"));
    assert_str(b, "entry.0.response.lastModified", "2026-11-22T10:00:00.000Z");
    assert_valid(b, "Bundle");
    json_decref(b);

    b = ct_fhir_bundle_new("transaction-response", &err);
    memset(&e, 0, sizeof e);
    e.response_status = "201 Created";
    e.response_location = "Observation/o1/_history/1";
    e.response_etag = "W/\"1\"";
    e.response_last_modified_ms = -1;
    e.response_outcome = ct_fhir_operation_outcome(&warn, 1);
    assert_int_equal(ct_fhir_bundle_add_entry(b, &e, &err), 0);
    assert_null(e.response_outcome);
    assert_str(b, "entry.0.response.status", "201 Created");
    assert_str(b, "entry.0.response.location", "Observation/o1/_history/1");
    assert_str(b, "entry.0.response.etag", "W/\"1\"");
    assert_str(b, "entry.0.response.outcome.resourceType", "OperationOutcome");
    /* total belongs to searchset and history only. */
    assert_int_equal(ct_fhir_bundle_set_total(b, 1, &err), CT_EINVAL);
    /* A response field without a status is refused; outcome released. */
    memset(&e, 0, sizeof e);
    e.response_location = "x";
    e.response_last_modified_ms = -1;
    e.response_outcome = ct_fhir_operation_outcome(&warn, 1);
    assert_int_equal(ct_fhir_bundle_add_entry(b, &e, &err), CT_EINVAL);
    assert_null(e.response_outcome);
    memset(&e, 0, sizeof e);
    e.request_method = "GET";
    e.response_last_modified_ms = -1;
    assert_int_equal(ct_fhir_bundle_add_entry(b, &e, &err), CT_EINVAL); /* method without url */
    assert_valid(b, "Bundle");
    json_decref(b);

    b = ct_fhir_bundle_new("batch-response", &err);
    assert_non_null(b);
    assert_int_equal(ct_fhir_bundle_add_link(b, "", "x", &err), CT_EINVAL);
    json_decref(b);
    assert_null(ct_fhir_bundle_new("collection", &err));
    json_t *notb = json_pack("{s:s}", "resourceType", "Patient");
    assert_int_equal(ct_fhir_bundle_add_link(notb, "self", "x", &err), CT_EINVAL);
    assert_int_equal(ct_fhir_bundle_add_entry(notb, NULL, &err), CT_EINVAL);
    json_decref(notb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report),      cmocka_unit_test(test_report_refusals),
        cmocka_unit_test(test_findings_table), cmocka_unit_test(test_derived),
        cmocka_unit_test(test_device_provenance), cmocka_unit_test(test_bundles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
