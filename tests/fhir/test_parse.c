/* Tests of JSON from outside: every way a body is refused before or by the
 * parser (413 for size, depth and token limits; 400 for NUL bytes, bad
 * UTF-8, a byte-order mark, syntax errors, duplicate keys), the minimal
 * resource shape (422 with the element's FHIRPath), and OperationOutcome. */
#include "fhir_test_util.h"

static int parse(const char *text, const ct_fhir_limits *lim, json_t **out, ct_fhir_issue *is)
{
    ct_fhir_issue_clear(is);
    return ct_fhir_parse(text, strlen(text), lim, out, is);
}

static void test_parse_ok(void **state)
{
    (void)state;
    json_t *j;
    ct_fhir_issue is;
    assert_int_equal(parse("{\"resourceType\":\"Patient\",\"id\":\"p1\"}", NULL, &j, &is), 0);
    assert_string_equal(ct_fhir_resource_type(j), "Patient");
    json_decref(j);
    /* UTF-8 in strings is fine: e, the micro sign, a CJK character, an emoji. */
    assert_int_equal(parse("{\"a\":\"\xc3\xa9 \xc2\xb5V \xe4\xb8\xad \xf0\x9f\x98\x80\"}", NULL, &j, &is), 0);
    json_decref(j);
}

static void test_size_limit(void **state)
{
    (void)state;
    ct_fhir_limits lim = ct_fhir_limits_default();
    assert_int_equal(lim.max_depth, 32);
    assert_true(lim.max_tokens == 200000);
    lim.max_bytes = 10;
    json_t *j = (json_t *)1;
    ct_fhir_issue is;
    int rc = parse("{\"a\":\"0123456789\"}", &lim, &j, &is);
    expect_issue(rc, &is, CT_ELIMIT, 413, CT_FHIR_IT_TOO_LONG, NULL, "over the limit of 10 bytes");
    assert_null(j);
    /* Exactly at the limit is accepted. */
    lim.max_bytes = 8;
    assert_int_equal(parse("{\"a\":1}", &lim, &j, &is), 0);
    json_decref(j);
}

static void test_depth_limit(void **state)
{
    (void)state;
    ct_fhir_limits lim = ct_fhir_limits_default();
    char deep[200];
    size_t n = 0;
    for (int i = 0; i < 33; i++)
        deep[n++] = '[';
    for (int i = 0; i < 33; i++)
        deep[n++] = ']';
    deep[n] = '\0';
    json_t *j;
    ct_fhir_issue is;
    int rc = parse(deep, &lim, &j, &is);
    expect_issue(rc, &is, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, NULL, "deeper than 32");
    /* 32 levels pass; brackets inside strings do not count. */
    assert_int_equal(parse(deep + 1, &lim, &j, &is), CT_EFORMAT); /* unbalanced: 400 */
    expect_issue(CT_EFORMAT, &is, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL, "malformed JSON");
    deep[32] = '\0';
    char ok[200];
    memcpy(ok, deep, 32);
    memcpy(ok + 32, "\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"", 36);
    size_t m = 68;
    for (int i = 0; i < 32; i++)
        ok[m++] = ']';
    ok[m] = '\0';
    assert_int_equal(parse(ok, &lim, &j, &is), 0);
    json_decref(j);
}

static void test_token_limit(void **state)
{
    (void)state;
    ct_fhir_limits lim = ct_fhir_limits_default();
    lim.max_tokens = 5;
    json_t *j;
    ct_fhir_issue is;
    /* [ 1 2 3 4 ] = 5 tokens: fine. A sixth is refused. */
    assert_int_equal(parse("[1,2,3,4]", &lim, &j, &is), 0);
    json_decref(j);
    int rc = parse("[1,2,3,4,5]", &lim, &j, &is);
    expect_issue(rc, &is, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, NULL, "more than 5 values");
    /* Keys count as tokens too. */
    rc = parse("{\"a\":1,\"b\":2,\"c\":3}", &lim, &j, &is);
    expect_issue(rc, &is, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, NULL, NULL);
}

static void test_malformed(void **state)
{
    (void)state;
    json_t *j;
    ct_fhir_issue is;
    static const struct {
        const char *body;
        size_t len;
        const char *frag;
    } cases[] = {
        {"", 0, "empty"},
        {"{\"a\":", 5, "malformed JSON"},
        {"{\"a\":1,}", 8, "malformed JSON"},
        {"{'a':1}", 7, "malformed JSON"},
        {"42", 2, "malformed JSON"},                        /* not an object or array */
        {"{\"a\":1} x", 9, "malformed JSON"},               /* trailing text */
        {"{\"a\":1,\"a\":2}", 13, "duplicate key"},
        {"{\"a\":\"x\\u0000y\"}", 16, "malformed JSON"},    /* escaped NUL */
        {"{\"a\":1e999}", 11, "malformed JSON"},            /* overflow */
        {"{\"a\":\"\xff\"}", 9, "not valid UTF-8"},
        {"{\"a\":\"\xc0\xaf\"}", 10, "not valid UTF-8"},    /* overlong '/' */
        {"{\"a\":\"\xed\xa0\x80\"}", 11, "not valid UTF-8"},/* surrogate */
        {"{\"a\":\"\xf4\x90\x80\x80\"}", 12, "not valid UTF-8"}, /* > U+10FFFF */
        {"{\"a\":\"\xe4\xb8\"}", 10, "not valid UTF-8"},    /* truncated */
        {"\xef\xbb\xbf{}", 5, "byte-order mark"},
        {"{\"a\":\"\\ud800\"}", 14, "malformed JSON"},      /* lone surrogate escape */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_fhir_issue_clear(&is);
        j = (json_t *)1;
        int rc = ct_fhir_parse(cases[i].body, cases[i].len, NULL, &j, &is);
        expect_issue(rc, &is, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL, cases[i].frag);
        assert_null(j);
    }
    /* A raw NUL byte is named with its offset. */
    const char nul[] = "{\"a\":\"x\0y\"}";
    int rc = ct_fhir_parse(nul, sizeof nul - 1, NULL, &j, &is);
    expect_issue(rc, &is, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL, "NUL byte at offset 7");
    /* The syntax error names line and column. */
    rc = parse("{\n\"a\": tru\n}", NULL, &j, &is);
    expect_issue(rc, &is, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL, "line 2");
}

static void validate(const char *text, const char *type, int want_rc, int status,
                     ct_fhir_issue_type code, const char *expr, const char *frag)
{
    json_t *j = json_of(text);
    ct_fhir_issue is;
    ct_fhir_issue_clear(&is);
    int rc = ct_fhir_validate_resource(j, type, &is);
    if (want_rc == 0) {
        if (rc)
            fail_msg("refused %s: %s (%s)", text, is.diagnostics, is.expression);
    } else {
        expect_issue(rc, &is, want_rc, status, code, expr, frag);
    }
    json_decref(j);
}

static void test_validate_resource(void **state)
{
    (void)state;
    validate("{\"resourceType\":\"Patient\",\"id\":\"a-1.B\"}", "Patient", 0, 0, 0, NULL, NULL);
    validate("{\"resourceType\":\"Device\"}", NULL, 0, 0, 0, NULL, NULL);
    validate("{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"A\",null]}],"
             "\"_name\":[null,{\"id\":\"x\"}]}", "Patient", 0, 0, 0, NULL, NULL);
    validate("[1]", "Patient", CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, NULL, "not an object");
    validate("{\"id\":\"1\"}", "Patient", CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, "resourceType", "missing");
    validate("{\"resourceType\":7}", "Patient", CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, "resourceType", "string");
    validate("{\"resourceType\":\"Observation\"}", "Patient", CT_EFORMAT, 422, CT_FHIR_IT_INVALID,
             "resourceType", "where a Patient is expected");
    validate("{\"resourceType\":\"Medication\"}", NULL, CT_EFORMAT, 422, CT_FHIR_IT_NOT_SUPPORTED,
             "resourceType", "not one this server stores");
    validate("{\"resourceType\":\"Patient\",\"id\":\"a b\"}", "Patient", CT_EFORMAT, 422,
             CT_FHIR_IT_VALUE, "Patient.id", "not a FHIR id");
    validate("{\"resourceType\":\"Patient\",\"id\":5}", "Patient", CT_EFORMAT, 422,
             CT_FHIR_IT_STRUCTURE, "Patient.id", "string");
    validate("{\"resourceType\":\"Patient\",\"id\":\"0123456789012345678901234567890123456789012345678901234567890123X\"}",
             "Patient", CT_EFORMAT, 422, CT_FHIR_IT_VALUE, "Patient.id", NULL);
    validate("{\"resourceType\":\"Patient\",\"active\":null}", "Patient", CT_EFORMAT, 422,
             CT_FHIR_IT_STRUCTURE, "Patient.active", "null");
    validate("{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"\"}]}", "Patient", CT_EFORMAT, 422,
             CT_FHIR_IT_STRUCTURE, "Patient.name[0].family", "empty strings");
    validate("{\"resourceType\":\"Patient\",\"name\":[]}", "Patient", CT_EFORMAT, 422,
             CT_FHIR_IT_STRUCTURE, "Patient.name", "empty arrays");
    validate("{\"resourceType\":\"Patient\",\"name\":[{}]}", "Patient", CT_EFORMAT, 422,
             CT_FHIR_IT_STRUCTURE, "Patient.name[0]", "empty objects");
    validate("{\"resourceType\":\"Patient\",\"meta\":{\"versionId\":\"1 2\"}}", "Patient", CT_EFORMAT,
             422, CT_FHIR_IT_VALUE, "Patient.meta.versionId", NULL);
    validate("{\"resourceType\":\"Patient\",\"meta\":{\"lastUpdated\":\"2026-01-01\"}}", "Patient",
             CT_EFORMAT, 422, CT_FHIR_IT_VALUE, "Patient.meta.lastUpdated", "instant");
    validate("{\"resourceType\":\"Patient\",\"meta\":{\"lastUpdated\":\"2026-01-01T00:00:00Z\"}}",
             "Patient", 0, 0, 0, NULL, NULL);
    assert_int_equal(ct_fhir_supported_type("Provenance"), 1);
    assert_int_equal(ct_fhir_supported_type("Bundle"), 0);
    assert_int_equal(ct_fhir_supported_type(NULL), 0);
}

static void test_operation_outcome(void **state)
{
    (void)state;
    ct_fhir_issue is[2];
    int rc = ct_fhir_issue_set(&is[0], CT_EFORMAT, 422, CT_FHIR_SEV_ERROR, CT_FHIR_IT_VALUE,
                               "Observation.component[1].valueSampledData.data",
                               "data value %d is bad\nsecond line", 3);
    assert_int_equal(rc, CT_EFORMAT);
    assert_null(strchr(is[0].diagnostics, '\n')); /* control bytes are neutralised */
    ct_fhir_issue_set(&is[1], 0, 200, CT_FHIR_SEV_WARNING, CT_FHIR_IT_NOT_SUPPORTED, NULL, "x");
    json_t *oo = ct_fhir_operation_outcome(is, 2);
    assert_non_null(oo);
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    json_t *arr = json_object_get(oo, "issue");
    assert_int_equal(json_array_size(arr), 2);
    json_t *i0 = json_array_get(arr, 0);
    assert_string_equal(json_string_value(json_object_get(i0, "severity")), "error");
    assert_string_equal(json_string_value(json_object_get(i0, "code")), "value");
    assert_string_equal(json_string_value(json_array_get(json_object_get(i0, "expression"), 0)),
                        "Observation.component[1].valueSampledData.data");
    assert_non_null(strstr(json_string_value(json_object_get(i0, "diagnostics")), "data value 3"));
    json_t *i1 = json_array_get(arr, 1);
    assert_string_equal(json_string_value(json_object_get(i1, "severity")), "warning");
    assert_string_equal(json_string_value(json_object_get(i1, "code")), "not-supported");
    assert_null(json_object_get(i1, "expression")); /* never an empty string or array */
    /* It is itself a valid resource. */
    ct_fhir_issue v;
    assert_int_equal(ct_fhir_validate_resource(oo, "OperationOutcome", &v), 0);
    json_decref(oo);
    char *s = ct_fhir_operation_outcome_dump(is, 1);
    assert_non_null(s);
    assert_non_null(strstr(s, "\"resourceType\":\"OperationOutcome\""));
    free(s);
    assert_null(ct_fhir_operation_outcome(is, 0));
    /* Text cut inside a UTF-8 character, or quoted from bad input, is
     * repaired: an OperationOutcome can always be built. */
    char longname[400];
    memset(longname, 'a', sizeof longname);
    for (size_t k = 1; k + 1 < sizeof longname; k += 2) {
        longname[k - 1] = '\xc3';
        longname[k] = '\xa9';
    }
    longname[sizeof longname - 1] = '\0';
    ct_fhir_issue_set(&is[0], CT_EFORMAT, 422, CT_FHIR_SEV_ERROR, CT_FHIR_IT_VALUE, "X.\xff", "%s", longname);
    assert_true(strlen(is[0].diagnostics) == CT_FHIR_DIAG_MAX - 1);
    assert_string_equal(is[0].expression, "X.?");
    oo = ct_fhir_operation_outcome(is, 1);
    assert_non_null(oo);
    json_decref(oo);
    json_t *pj = json_of("{\"resourceType\":\"Patient\",\"id\":\"a\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\"}");
    ct_fhir_issue v2;
    assert_int_equal(ct_fhir_validate_resource(pj, "Patient", &v2), CT_EFORMAT);
    oo = ct_fhir_operation_outcome(&v2, 1);
    assert_non_null(oo);
    json_decref(oo);
    json_decref(pj);
    assert_string_equal(ct_fhir_issue_type_name(CT_FHIR_IT_TOO_LONG), "too-long");
    assert_string_equal(ct_fhir_issue_type_name(CT_FHIR_IT_INFORMATIONAL), "informational");
    assert_string_equal(ct_fhir_issue_type_name(CT_FHIR_IT_MULTIPLE_MATCHES), "multiple-matches");
    assert_string_equal(ct_fhir_severity_name(CT_FHIR_SEV_FATAL), "fatal");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_depth_limit),     cmocka_unit_test(test_token_limit),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_validate_resource),
        cmocka_unit_test(test_operation_outcome),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
