/* Tests of ECG Observations: the specification's ekg example read from
 * fhir/examples, build -> serialise -> parse -> extract giving back the very
 * same samples, quantisation of decimal data, and one hand-made
 * Observation for every way an ECG is refused, each with its 422, issue type
 * and the exact FHIRPath of the element at fault. */
#include "fhir_test_util.h"

#include <math.h>

/* Two leads (I, II), 250 Hz, 4 samples each, origin in uV, factor 5. */
static json_t *base(void)
{
    return json_of(
        "{\"resourceType\":\"Observation\",\"id\":\"o1\",\"status\":\"final\","
        "\"code\":{\"coding\":[{\"system\":\"urn:oid:2.16.840.1.113883.6.24\",\"code\":\"131328\"}]},"
        "\"subject\":{\"reference\":\"Patient/p1\"},"
        "\"effectiveDateTime\":\"2026-11-22T10:00:00.000Z\","
        "\"device\":{\"reference\":\"Device/gw-7\"},"
        "\"component\":["
        "{\"code\":{\"coding\":[{\"system\":\"urn:oid:2.16.840.1.113883.6.24\",\"code\":\"131329\"}]},"
        " \"valueSampledData\":{\"origin\":{\"value\":-5120,\"unit\":\"uV\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"uV\"},"
        "  \"period\":4,\"factor\":5,\"dimensions\":1,\"data\":\"1024 1030 E 1000\"}},"
        "{\"code\":{\"coding\":[{\"system\":\"urn:iso:std:iso:11073:10101\",\"code\":\"131330\"}],\"text\":\"MLII\"},"
        " \"valueSampledData\":{\"origin\":{\"value\":0,\"unit\":\"uV\",\"system\":\"http://unitsofmeasure.org\",\"code\":\"uV\"},"
        "  \"period\":4,\"factor\":5,\"dimensions\":1,\"data\":\"-1 0 1 L\"}}]}");
}

static json_t *sd(json_t *o, size_t i)
{
    return json_object_get(json_array_get(json_object_get(o, "component"), i), "valueSampledData");
}

static json_t *comp(json_t *o, size_t i)
{
    return json_array_get(json_object_get(o, "component"), i);
}

/* Asserts that o is refused as described, and consumes o. */
static void refused_(json_t *o, const ct_fhir_ecg_limits *lim, int want_rc, ct_fhir_issue_type code,
                     const char *expr, const char *frag, const char *file, int line)
{
    ct_fhir_ecg e;
    ct_fhir_issue is;
    ct_fhir_issue_clear(&is);
    int rc = ct_fhir_ecg_from_json(o, lim, &e, &is);
    expect_issue_(rc, &is, want_rc, 422, code, expr, frag, file, line);
    /* Nothing is left behind to free. */
    assert_int_equal(e.n_leads, 0);
    for (int l = 0; l < CT_FHIR_ECG_MAX_LEADS; l++)
        assert_null(e.leads[l].samples);
    json_decref(o);
}
#define refused(o, lim, rc, code, expr, frag) refused_(o, lim, rc, code, expr, frag, __FILE__, __LINE__)

static void test_base_ok(void **state)
{
    (void)state;
    json_t *o = base();
    ct_fhir_ecg e;
    ct_fhir_issue is;
    int rc = ct_fhir_ecg_from_json(o, NULL, &e, &is);
    if (rc)
        fail_msg("%s at %s", is.diagnostics, is.expression);
    assert_string_equal(e.id, "o1");
    assert_int_equal(e.status, CT_FHIR_OBS_FINAL);
    assert_string_equal(e.patient_id, "p1");
    assert_string_equal(e.device_id, "gw-7");
    assert_true(e.start_ms == ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0));
    assert_int_equal(e.start_precision, CT_FHIR_PREC_FRACTION);
    assert_true(e.end_ms == -1);
    assert_int_equal(e.n_leads, 2);
    assert_int_equal(e.leads[0].lead->mdc_code, 131329);
    assert_string_equal(e.leads[0].lead->name, "I");
    assert_string_equal(e.leads[0].text, "");
    assert_string_equal(e.leads[1].lead->name, "II");
    assert_string_equal(e.leads[1].text, "MLII");
    for (int l = 0; l < 2; l++) {
        assert_true(e.leads[l].fs_hz == 250.0);
        assert_true(e.leads[l].period_ms == 4.0);
        assert_int_equal(e.leads[l].n_samples, 4);
        assert_int_equal(e.leads[l].n_missing, 1);
        assert_int_equal(e.leads[l].exact, 1);
        assert_true(e.leads[l].gain_adu_per_mv == 200.0);
        assert_int_equal(e.leads[l].unit_assumed, 0);
    }
    assert_true(e.leads[0].baseline_adu == 1024.0);
    assert_true(e.leads[1].baseline_adu == 0.0);
    const int16_t want0[] = {1024, 1030, CT_FHIR_SAMPLE_MISSING, 1000};
    const int16_t want1[] = {-1, 0, 1, CT_FHIR_SAMPLE_MISSING};
    assert_memory_equal(e.leads[0].samples, want0, sizeof want0);
    assert_memory_equal(e.leads[1].samples, want1, sizeof want1);
    assert_int_equal(e.n_warnings, 0);
    ct_fhir_ecg_free(&e);
    ct_fhir_ecg_free(&e); /* twice is harmless */
    json_decref(o);
}

static void test_ekg_example(void **state)
{
    (void)state;
    size_t len;
    char *text = read_source_file("fhir/examples/observation-example-sample-data.json", &len);
    json_t *o;
    ct_fhir_issue is;
    assert_int_equal(ct_fhir_parse(text, len, NULL, &o, &is), 0);
    free(text);
    ct_fhir_ecg e;
    int rc = ct_fhir_ecg_from_json(o, NULL, &e, &is);
    if (rc)
        fail_msg("the specification's ekg example is refused: %s at %s", is.diagnostics, is.expression);
    assert_string_equal(e.id, "ekg");
    assert_string_equal(e.patient_id, "f001");
    assert_string_equal(e.device_id, ""); /* the example names its device by display only */
    /* 2015-02-19T09:30:35+01:00 */
    assert_true(e.start_ms == ct_fhir_utc_ms(2015, 2, 19, 8, 30, 35, 0));
    assert_int_equal(e.n_leads, 3);
    assert_string_equal(e.leads[0].lead->name, "I");
    assert_string_equal(e.leads[1].lead->name, "II");
    assert_string_equal(e.leads[2].lead->name, "III");
    for (int l = 0; l < 3; l++) {
        const ct_fhir_ecg_lead *L = &e.leads[l];
        assert_true(L->fs_hz == 100.0);
        assert_int_equal(L->n_samples, 116);
        assert_int_equal(L->exact, 1);
        assert_int_equal(L->samples[0], 2041);
        assert_int_equal(L->samples[115], 2073);
        assert_true(fabs(L->gain_adu_per_mv - 1000.0 / 1.612) < 1e-9);
        assert_true(fabs(L->baseline_adu + 2048.0 / 1.612) < 1e-9);
        assert_int_equal(L->has_lower && L->has_upper, 1);
        assert_true(L->lower_uv == -3300.0 && L->upper_uv == 3300.0);
        assert_int_equal(L->unit_assumed, 1);
    }
    /* No unit on origin: accepted, with one warning saying what was assumed. */
    assert_int_equal(e.n_warnings, 1);
    assert_int_equal(e.warnings[0].severity, CT_FHIR_SEV_WARNING);
    assert_non_null(strstr(e.warnings[0].diagnostics, "microvolts"));
    assert_string_equal(e.warnings[0].expression, "Observation.component[0].valueSampledData.origin");
    ct_fhir_ecg_free(&e);
    json_decref(o);
}

static void test_roundtrip(void **state)
{
    (void)state;
    enum { N = 3600 };
    static int16_t a[N], b[N], c[N];
    uint32_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        a[i] = (int16_t)((int)(x >> 16) % 2048 - 1024);
        b[i] = (int16_t)(i % 7 == 0 ? CT_FHIR_SAMPLE_MISSING : (i * 37) % 65535 - 32767);
        c[i] = (int16_t)(i & 1 ? 32767 : -32767);
    }
    ct_fhir_ecg_in in;
    memset(&in, 0, sizeof in);
    in.id = "seg-1";
    in.patient_id = "p100";
    in.device_id = "gw";
    in.identifier_system = "urn:cardiotwin:stream";
    in.identifier_value = "100-0";
    in.start_ms = ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0);
    in.fs_hz = 360.0;
    in.n_samples = N;
    in.n_leads = 3;
    in.leads[0] = (ct_fhir_ecg_lead_in){131330, "MLII", 200.0, 1024, a};
    in.leads[1] = (ct_fhir_ecg_lead_in){131335, NULL, 200.0, -3, b};
    in.leads[2] = (ct_fhir_ecg_lead_in){131331, "V1", 1000.0 / 1.612, 0, c};
    json_t *obs;
    ct_error err;
    assert_int_equal(ct_fhir_ecg_to_json(&in, &obs, &err), 0);
    /* Through the wire: dump, then the full outside path. */
    char *wire = json_dumps(obs, JSON_COMPACT);
    json_decref(obs);
    assert_non_null(wire);
    json_t *back;
    ct_fhir_issue is;
    assert_int_equal(ct_fhir_parse(wire, strlen(wire), NULL, &back, &is), 0);
    assert_int_equal(ct_fhir_validate_resource(back, "Observation", &is), 0);
    free(wire);
    ct_fhir_ecg e;
    int rc = ct_fhir_ecg_from_json(back, NULL, &e, &is);
    if (rc)
        fail_msg("%s at %s", is.diagnostics, is.expression);
    assert_string_equal(e.id, "seg-1");
    assert_string_equal(e.patient_id, "p100");
    assert_string_equal(e.device_id, "gw");
    assert_true(e.start_ms == in.start_ms);
    assert_true(e.end_ms == in.start_ms + 10000); /* 3600 samples at 360 Hz */
    assert_int_equal(e.n_leads, 3);
    const int16_t *src[3] = {a, b, c};
    for (int l = 0; l < 3; l++) {
        const ct_fhir_ecg_lead *L = &e.leads[l];
        assert_int_equal(L->lead->mdc_code, in.leads[l].mdc_code);
        assert_true(L->fs_hz == 360.0); /* 2.7777... ms snaps back to 360 Hz */
        assert_int_equal(L->n_samples, N);
        assert_int_equal(L->exact, 1);
        assert_memory_equal(L->samples, src[l], sizeof a);
        assert_true(fabs(L->gain_adu_per_mv - in.leads[l].gain_adu_per_mv) <
                    1e-12 * in.leads[l].gain_adu_per_mv);
        assert_true(fabs(L->baseline_adu - in.leads[l].baseline_adu) < 1e-9);
        assert_int_equal(L->unit_assumed, 0);
    }
    assert_string_equal(e.leads[0].text, "MLII");
    assert_int_equal(e.leads[1].n_missing, (N + 6) / 7);
    assert_int_equal(e.n_warnings, 0);
    /* The built Observation claims our profile and the spec's shape. */
    assert_string_equal(json_string_value(json_array_get(json_object_get(json_object_get(back, "meta"), "profile"), 0)),
                        CT_FHIR_ECG_PROFILE);
    json_t *sd0 = sd(back, 0);
    assert_int_equal(json_integer_value(json_object_get(sd0, "dimensions")), 1);
    assert_int_equal(json_integer_value(json_object_get(sd0, "factor")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(sd0, "origin"), "value")), -5120);
    assert_string_equal(json_string_value(json_object_get(json_object_get(sd0, "origin"), "code")), "uV");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(back, "identifier"), 0), "value")),
                        "100-0");
    ct_fhir_ecg_free(&e);
    json_decref(back);
}

static void test_build_refusals(void **state)
{
    (void)state;
    int16_t s[2] = {1, 2};
    ct_fhir_ecg_in in;
    memset(&in, 0, sizeof in);
    in.patient_id = "p";
    in.start_ms = 0;
    in.fs_hz = 250;
    in.n_samples = 2;
    in.n_leads = 1;
    in.leads[0] = (ct_fhir_ecg_lead_in){131329, NULL, 200, 0, s};
    json_t *o;
    ct_error err;
    assert_int_equal(ct_fhir_ecg_to_json(&in, &o, &err), 0);
    json_decref(o);
    ct_fhir_ecg_in bad = in;
    bad.patient_id = "a b";
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    assert_null(o);
    assert_non_null(strstr(err.msg, "patient"));
    bad = in;
    bad.leads[0].mdc_code = 131073;
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "131073"));
    bad = in;
    bad.leads[0].gain_adu_per_mv = 0;
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    bad = in;
    bad.fs_hz = 0;
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    bad = in;
    bad.n_leads = 2;
    bad.leads[1] = bad.leads[0];
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "repeats"));
    bad = in;
    bad.status = "done";
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    bad = in;
    bad.identifier_system = "s";
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    bad = in;
    bad.leads[0].text = "\xff";
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    bad = in;
    bad.start_ms = INT64_MAX / 2;
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
    bad = in;
    bad.n_samples = 0;
    assert_int_equal(ct_fhir_ecg_to_json(&bad, &o, &err), CT_EINVAL);
}

static void test_quantised(void **state)
{
    (void)state;
    /* Decimal millivolts: quantised to 1 uV per unit. */
    json_t *o = base();
    json_t *s0 = sd(o, 0), *s1 = sd(o, 1);
    json_object_set_new(s0, "origin", json_pack("{s:f,s:s,s:s,s:s}", "value", 0.1, "unit", "mV",
                                                "system", "http://unitsofmeasure.org", "code", "mV"));
    json_object_set_new(s0, "factor", json_real(0.5));
    json_object_set_new(s0, "data", json_string("0.5 -1.25 U 2.0004"));
    json_object_set_new(s1, "origin", json_pack("{s:i,s:s}", "value", 0, "unit", "\xc2\xb5V"));
    json_object_set_new(s1, "factor", json_real(0.1));
    json_object_set_new(s1, "data", json_string("40000 -10 0 10")); /* beyond int16: quantised */
    ct_fhir_ecg e;
    ct_fhir_issue is;
    int rc = ct_fhir_ecg_from_json(o, NULL, &e, &is);
    if (rc)
        fail_msg("%s at %s", is.diagnostics, is.expression);
    assert_int_equal(e.leads[0].exact, 0);
    assert_true(e.leads[0].gain_adu_per_mv == 1000.0 && e.leads[0].baseline_adu == 0.0);
    /* 0.5 * 0.5 mV + 0.1 mV = 350 uV; -1.25*0.5+0.1 = -525; 2.0004*0.5+0.1 = 1100.2 -> 1100 */
    const int16_t want0[] = {350, -525, CT_FHIR_SAMPLE_MISSING, 1100};
    assert_memory_equal(e.leads[0].samples, want0, sizeof want0);
    assert_true(fabs(e.leads[0].origin_uv - 100.0) < 1e-9 && fabs(e.leads[0].factor_uv - 500.0) < 1e-9);
    const int16_t want1q[] = {4000, -1, 0, 1};
    assert_memory_equal(e.leads[1].samples, want1q, sizeof want1q);
    assert_int_equal(e.leads[1].exact, 0);
    /* 1000000 * 0.1 uV does not fit: refused, naming the value. */
    ct_fhir_ecg_free(&e);
    json_object_set_new(s1, "data", json_string("1 2 3 1000000"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.component[1].valueSampledData.data",
            "data value 4 is 100000 uV");
    /* Exact integers with a negative factor are quantised too (gain > 0 for the detector). */
    o = base();
    json_object_set_new(sd(o, 1), "factor", json_integer(-1));
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    assert_int_equal(e.leads[1].exact, 0);
    const int16_t want1[] = {1, 0, -1, CT_FHIR_SAMPLE_MISSING};
    assert_memory_equal(e.leads[1].samples, want1, sizeof want1);
    ct_fhir_ecg_free(&e);
    json_decref(o);
    /* Spaces: runs of them are tolerated, and so are leading/trailing ones. */
    o = base();
    json_object_set_new(sd(o, 0), "data", json_string("  1024   1030 E 1000 "));
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    assert_int_equal(e.leads[0].n_samples, 4);
    ct_fhir_ecg_free(&e);
    json_decref(o);
    /* effectivePeriod: start and end; effectiveInstant. */
    o = base();
    json_object_del(o, "effectiveDateTime");
    json_object_set_new(o, "effectivePeriod", json_pack("{s:s,s:s}", "start", "2026-11-22T11:00:00+01:00",
                                                        "end", "2026-11-22T11:00:00.016+01:00"));
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    assert_true(e.start_ms == ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0));
    assert_true(e.end_ms == e.start_ms + 16);
    ct_fhir_ecg_free(&e);
    json_decref(o);
    /* A long lead text is cut on a character boundary, never inside one. */
    o = base();
    json_object_set_new(json_object_get(comp(o, 1), "code"), "text",
                        json_string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xc3\xa9"));
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    assert_string_equal(e.leads[1].text, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    ct_fhir_ecg_free(&e);
    json_decref(o);
    o = base();
    json_object_del(o, "effectiveDateTime");
    json_object_set_new(o, "effectiveInstant", json_string("2026-11-22T10:00:00Z"));
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    assert_int_equal(e.start_precision, CT_FHIR_PREC_SECOND);
    ct_fhir_ecg_free(&e);
    json_decref(o);
}

#define C0 "Observation.component[0]"
#define C1 "Observation.component[1]"
#define SD1 C1 ".valueSampledData"

static void test_refusals_resource(void **state)
{
    (void)state;
    json_t *o;
    o = base();
    json_object_set_new(o, "resourceType", json_string("Patient"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_INVALID, "resourceType", "where a Observation is expected");
    o = base();
    json_object_del(o, "status");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, "Observation.status", "status is required");
    o = base();
    json_object_set_new(o, "status", json_string("done"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_CODE_INVALID, "Observation.status", "one of");
    o = base();
    json_object_del(o, "code");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, "Observation.code", "131328");
    o = base();
    json_object_set_new(o, "code", json_pack("{s:[{s:s,s:s}]}", "coding", "system", "http://loinc.org", "code", "11524-6"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_CODE_INVALID, "Observation.code", "131328");
    o = base();
    json_object_del(o, "subject");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, "Observation.subject.reference", "Patient/ID");
    o = base();
    json_object_set_new(o, "subject", json_pack("{s:s}", "reference", "Group/g1"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.subject.reference", "Patient on this server");
    o = base();
    json_object_set_new(o, "subject", json_pack("{s:s}", "reference", "Patient/a b"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.subject.reference", "Type/id");
    o = base();
    json_object_set_new(o, "subject", json_pack("{s:s}", "reference", "https://other/fhir/Patient/1"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.subject.reference", "this server");
    o = base();
    json_object_set_new(o, "device", json_pack("{s:s}", "reference", "Patient/1"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.device.reference", "Device/ID");
    o = base();
    json_object_del(o, "effectiveDateTime");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, "Observation.effective[x]", "first sample");
    o = base();
    json_object_set_new(o, "effectiveDateTime", json_string("2026-11-22"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.effectiveDateTime", "to the second");
    o = base();
    json_object_set_new(o, "effectiveDateTime", json_string("2026-11-22T10:00:00"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.effectiveDateTime", "zone");
    o = base();
    json_object_set_new(o, "effectiveDateTime", json_string("2026-02-30T10:00:00Z"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.effectiveDateTime", "does not exist");
    o = base();
    json_object_del(o, "effectiveDateTime");
    json_object_set_new(o, "effectivePeriod", json_pack("{s:s}", "end", "2026-11-22T10:00:00Z"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, "Observation.effectivePeriod.start", "start");
    o = base();
    json_object_del(o, "effectiveDateTime");
    json_object_set_new(o, "effectivePeriod", json_pack("{s:s,s:s}", "start", "2026-11-22T10:00:00Z",
                                                        "end", "2026-11-22T09:00:00Z"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_INVARIANT, "Observation.effectivePeriod.end", "ends before");
    o = base();
    json_object_del(o, "effectiveDateTime");
    json_object_set_new(o, "effectiveTiming", json_pack("{s:[s]}", "event", "2026-11-22T10:00:00Z"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_NOT_SUPPORTED, "Observation.effectiveTiming", "Timing");
    o = base();
    json_object_set_new(o, "valueQuantity", json_pack("{s:i}", "value", 1));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_NOT_SUPPORTED, "Observation.value[x]", "component");
    o = base();
    json_object_del(o, "component");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, "Observation.component", "one component per lead");
    o = base();
    json_object_set_new(o, "component", json_array());
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_STRUCTURE, "Observation.component", "empty arrays");
    o = base();
    json_object_set_new(o, "subject", json_null());
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_STRUCTURE, "Observation.subject", "null");
    /* 13 leads: over the limit. */
    o = base();
    json_t *arr = json_object_get(o, "component");
    for (int i = 0; i < 11; i++)
        json_array_append_new(arr, json_deep_copy(json_array_get(arr, 0)));
    refused(o, NULL, CT_ELIMIT, CT_FHIR_IT_TOO_LONG, "Observation.component", "at most 12 leads");
    ct_fhir_ecg_limits lim = ct_fhir_ecg_limits_default();
    lim.max_leads = 1;
    refused(base(), &lim, CT_ELIMIT, CT_FHIR_IT_TOO_LONG, "Observation.component", "at most 1 leads");
}

static void test_refusals_components(void **state)
{
    (void)state;
    json_t *o;
    o = base();
    json_object_set_new(comp(o, 0), "code", json_pack("{s:[{s:s,s:s}]}", "coding", "system",
                                                      "urn:oid:2.16.840.1.113883.6.24", "code", "131073"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_CODE_INVALID, C0 ".code", "MDC code 131073 is not a lead");
    o = base();
    json_object_set_new(comp(o, 0), "code", json_pack("{s:[{s:s,s:s}]}", "coding", "system",
                                                      "http://loinc.org", "code", "131329"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_CODE_INVALID, C0 ".code", "must be coded in system");
    o = base();
    json_object_del(comp(o, 0), "code");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, C0 ".code", "naming its lead");
    o = base();
    json_object_set(comp(o, 1), "code", json_object_get(comp(o, 0), "code"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_DUPLICATE, C1 ".code", "lead I appears in component[0] and component[1]");
    o = base();
    json_object_del(comp(o, 1), "valueSampledData");
    json_object_set_new(comp(o, 1), "valueString", json_string("x"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, C1 ".value[x]", "valueSampledData");
    o = base();
    json_object_set_new(comp(o, 1), "valueSampledData", json_string("x"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_STRUCTURE, SD1, "must be an object");
    o = base();
    json_object_del(sd(o, 1), "origin");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, SD1 ".origin", "needs origin");
    o = base();
    json_object_del(json_object_get(sd(o, 1), "origin"), "value");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, SD1 ".origin.value", "numeric value");
    o = base();
    json_object_set_new(sd(o, 1), "origin", json_pack("{s:i,s:s}", "value", 0, "unit", "mmHg"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".origin.unit", "voltage");
    o = base();
    json_object_set_new(json_object_get(sd(o, 1), "origin"), "code", json_string("mm[Hg]"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".origin.code", "UCUM");
    o = base();
    json_object_del(sd(o, 1), "period");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, SD1 ".period", "needs period");
    o = base();
    json_object_set_new(sd(o, 1), "period", json_integer(0));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".period", "0.01 to 1000");
    o = base();
    json_object_set_new(sd(o, 1), "period", json_string("4"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".period", "0.01 to 1000");
    o = base();
    json_object_set_new(sd(o, 1), "period", json_integer(-4));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".period", NULL);
    o = base();
    json_object_set_new(sd(o, 1), "factor", json_integer(0));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".factor", "nonzero");
    o = base();
    json_object_set_new(sd(o, 1), "lowerLimit", json_string("low"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".lowerLimit", NULL);
    o = base();
    json_object_set_new(sd(o, 1), "upperLimit", json_true());
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".upperLimit", NULL);
    o = base();
    json_object_del(sd(o, 1), "dimensions");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, SD1 ".dimensions", "needs dimensions");
    o = base();
    json_object_set_new(sd(o, 1), "dimensions", json_integer(0));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".dimensions", "positive integer");
    o = base();
    json_object_set_new(sd(o, 1), "dimensions", json_real(1.5));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".dimensions", "positive integer");
    o = base();
    json_object_set_new(sd(o, 1), "dimensions", json_integer(3));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".data", "4 values, which is not a multiple of dimensions (3)");
    o = base();
    json_object_set_new(sd(o, 1), "dimensions", json_integer(2));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_NOT_SUPPORTED, SD1 ".dimensions", "one lead per component");
    o = base();
    json_object_del(sd(o, 1), "data");
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, SD1 ".data", "needs data");
    o = base();
    json_object_set_new(sd(o, 1), "data", json_integer(5));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_STRUCTURE, SD1 ".data", "must be a string");
    o = base();
    json_object_set_new(sd(o, 1), "data", json_string("   "));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_REQUIRED, SD1 ".data", "no values");
    static const struct {
        const char *data;
        const char *frag;
    } bad_data[] = {
        {"1 2 x 4", "data value 3 (\"x\")"},
        {"1,2 3 4", "data value 1 (\"1,2\")"},
        {"1 2 3 01", "data value 4"},
        {"1 2 3 +4", "data value 4"},
        {"1 2 3 .5", "data value 4"},
        {"1 2 3 5.", "data value 4"},
        {"1 2 3 1e", "data value 4"},
        {"1 2 3 e", "data value 4"},
        {"1 2 3 NaN", "data value 4"},
        {"1 2 3 1e400", "data value 4"},
        {"1\t2 3 4", "data value 1"},
        {"1 2 3 EE", "data value 4"},
        {"1 2 3 -", "data value 4"},
        /* Edges of the integer fast path: each must fall through to the
         * full decimal parser and be refused by it. */
        {"1 2 3 -01", "data value 4"},
        {"1 2 3 00", "data value 4"},
        {"1 2 3 --1", "data value 4"},
        {"1 2 3 1-2", "data value 4"},
        {"1 2 3 12a", "data value 4"},
        {"1 2 3 -x", "data value 4"},
    };
    for (size_t i = 0; i < sizeof bad_data / sizeof bad_data[0]; i++) {
        o = base();
        json_object_set_new(sd(o, 1), "data", json_string(bad_data[i].data));
        refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".data", bad_data[i].frag);
    }
    /* 1e3 is a FHIR decimal: accepted (quantised since the data are not all int16 integers). */
    o = base();
    json_object_set_new(sd(o, 1), "data", json_string("1e3 -2.5E-1 0 0"));
    ct_fhir_ecg e;
    ct_fhir_issue is;
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    assert_int_equal(e.leads[1].samples[0], 5000);
    assert_int_equal(e.leads[1].samples[1], -1); /* -1.25 uV rounds to -1 */
    ct_fhir_ecg_free(&e);
    json_decref(o);
    /* Per-lead sample limit. */
    ct_fhir_ecg_limits lim = ct_fhir_ecg_limits_default();
    lim.max_samples = 3;
    refused(base(), &lim, CT_ELIMIT, CT_FHIR_IT_TOO_LONG, C0 ".valueSampledData.data", "more than 3 values");
    /* Leads must agree on period and count. */
    o = base();
    json_object_set_new(sd(o, 1), "period", json_integer(5));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".period", "share one sampling rate");
    o = base();
    json_object_set_new(sd(o, 1), "data", json_string("1 2 3"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, SD1 ".data", "3 samples but component[0] has 4");
}

/* The integer fast path agrees with the general parser at its edges: the
 * int16 bounds, -0, five digits beyond int16 (the lead is quantised then),
 * and six digits (general parser). */
static void test_integer_edges(void **state)
{
    (void)state;
    json_t *o = base();
    json_object_set_new(sd(o, 1), "data", json_string("-0 32767 -32767 7"));
    ct_fhir_ecg e;
    ct_fhir_issue is;
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    const int16_t want[] = {0, 32767, -32767, 7};
    assert_int_equal(e.leads[1].exact, 1);
    assert_memory_equal(e.leads[1].samples, want, sizeof want);
    ct_fhir_ecg_free(&e);
    json_decref(o);
    /* 32768 and -32768 are not int16 samples we keep exactly: quantised at
     * 1 uV per unit (factor 5 uV: 5 * value), which here does not fit. */
    o = base();
    json_object_set_new(sd(o, 1), "data", json_string("0 32768 0 0"));
    refused(o, NULL, CT_EFORMAT, CT_FHIR_IT_VALUE, "Observation.component[1].valueSampledData.data",
            "data value 2 is 163840 uV");
    o = base();
    json_object_set_new(sd(o, 1), "factor", json_real(0.001));
    json_object_set_new(sd(o, 1), "data", json_string("-32768 99999 123456 -1"));
    assert_int_equal(ct_fhir_ecg_from_json(o, NULL, &e, &is), 0);
    assert_int_equal(e.leads[1].exact, 0);
    const int16_t wantq[] = {-33, 100, 123, 0}; /* 0.001 uV per unit, rounded half up */
    assert_memory_equal(e.leads[1].samples, wantq, sizeof wantq);
    ct_fhir_ecg_free(&e);
    json_decref(o);
}

static void test_lead_table(void **state)
{
    (void)state;
    size_t n;
    const ct_fhir_lead_info *all = ct_fhir_leads(&n);
    assert_int_equal(n, 12);
    static const struct {
        int code;
        const char *name;
    } want[] = {{131329, "I"},   {131330, "II"},  {131389, "III"}, {131390, "aVR"},
                {131391, "aVL"}, {131392, "aVF"}, {131331, "V1"},  {131332, "V2"},
                {131333, "V3"},  {131334, "V4"},  {131335, "V5"},  {131336, "V6"}};
    for (size_t i = 0; i < 12; i++) {
        const ct_fhir_lead_info *li = ct_fhir_lead_by_code(want[i].code);
        assert_non_null(li);
        assert_string_equal(li->name, want[i].name);
        assert_ptr_equal(ct_fhir_lead_by_name(want[i].name), li);
        assert_true(li >= all && li < all + n);
    }
    assert_int_equal(ct_fhir_lead_by_name("MLII")->mdc_code, 131330);
    assert_int_equal(ct_fhir_lead_by_name("MLIII")->mdc_code, 131389);
    assert_int_equal(ct_fhir_lead_by_name("avf")->mdc_code, 131392);
    assert_int_equal(ct_fhir_lead_by_name("v5")->mdc_code, 131335);
    assert_null(ct_fhir_lead_by_name("ML"));
    assert_null(ct_fhir_lead_by_name("V7"));
    assert_null(ct_fhir_lead_by_name(""));
    assert_null(ct_fhir_lead_by_name(NULL));
    assert_null(ct_fhir_lead_by_code(131073)); /* MDC_ECG_LEAD_I names a lead, not a potential */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base_ok),          cmocka_unit_test(test_ekg_example),
        cmocka_unit_test(test_roundtrip),        cmocka_unit_test(test_build_refusals),
        cmocka_unit_test(test_quantised),        cmocka_unit_test(test_refusals_resource),
        cmocka_unit_test(test_refusals_components), cmocka_unit_test(test_lead_table),
        cmocka_unit_test(test_integer_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
