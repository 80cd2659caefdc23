/* Tests of search parameter parsing: every date prefix with its implicit
 * range, tokens in their four forms, references, escapes and decoding,
 * _count/_offset/_sort/_include, unknown parameters under lenient and strict
 * handling, every refusal (400, 413), and the canonical query for links. */
#include "fhir_test_util.h"

static ct_fhir_search *ok(const char *type, const char *q, ct_fhir_handling h)
{
    ct_fhir_search *s;
    ct_fhir_issue is;
    int rc = ct_fhir_search_parse(type, q, strlen(q), h, &s, &is);
    if (rc)
        fail_msg("\"%s\" refused: %s", q, is.diagnostics);
    return s;
}

static void bad_(const char *type, const char *q, ct_fhir_handling h, int rc_want, int status,
                 ct_fhir_issue_type code, const char *expr, const char *frag, const char *file, int line)
{
    ct_fhir_search *s = (ct_fhir_search *)1;
    ct_fhir_issue is;
    ct_fhir_issue_clear(&is);
    int rc = ct_fhir_search_parse(type, q, strlen(q), h, &s, &is);
    expect_issue_(rc, &is, rc_want, status, code, expr, frag, file, line);
    assert_null(s);
}
#define bad(q, code, expr, frag) \
    bad_("Observation", q, CT_FHIR_HANDLING_LENIENT, CT_EFORMAT, 400, code, expr, frag, __FILE__, __LINE__)

static void test_dates(void **state)
{
    (void)state;
    static const struct {
        const char *q;
        ct_fhir_prefix p;
    } rows[] = {
        {"date=2026-11-22", CT_FHIR_PFX_EQ},   {"date=eq2026-11-22", CT_FHIR_PFX_EQ},
        {"date=ne2026-11-22", CT_FHIR_PFX_NE}, {"date=gt2026-11-22", CT_FHIR_PFX_GT},
        {"date=lt2026-11-22", CT_FHIR_PFX_LT}, {"date=ge2026-11-22", CT_FHIR_PFX_GE},
        {"date=le2026-11-22", CT_FHIR_PFX_LE}, {"date=sa2026-11-22", CT_FHIR_PFX_SA},
        {"date=eb2026-11-22", CT_FHIR_PFX_EB}, {"date=ap2026-11-22", CT_FHIR_PFX_AP},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        ct_fhir_search *s = ok("Observation", rows[i].q, CT_FHIR_HANDLING_STRICT);
        assert_int_equal(s->n_clauses, 1);
        assert_string_equal(s->clauses[0].param->name, "date");
        assert_int_equal(s->clauses[0].param->type, CT_FHIR_PARAM_DATE);
        assert_int_equal(s->clauses[0].n_values, 1);
        const ct_fhir_search_value *v = &s->clauses[0].values[0];
        assert_int_equal(v->prefix, rows[i].p);
        assert_true(v->date.start_ms == ct_fhir_utc_ms(2026, 11, 22, 0, 0, 0, 0));
        assert_true(v->date.end_ms == ct_fhir_utc_ms(2026, 11, 23, 0, 0, 0, 0));
        ct_fhir_search_free(s);
    }
    /* Implicit ranges by precision; a time with a zone ('+' sent raw
     * arrives as a space, %2B is a plus); repeated = AND, comma = OR. */
    ct_fhir_search *s = ok("Observation",
                           "date=ge2026&date=lt2026-11-22T10:00+01:00,2026-11-22T11:00:00%2B01:00"
                           "&_lastUpdated=gt2026-11",
                           CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->n_clauses, 3);
    assert_true(s->clauses[0].values[0].date.end_ms == ct_fhir_utc_ms(2027, 1, 1, 0, 0, 0, 0));
    assert_int_equal(s->clauses[1].n_values, 2);
    assert_int_equal(s->clauses[1].values[0].prefix, CT_FHIR_PFX_LT);
    assert_int_equal(s->clauses[1].values[0].date.precision, CT_FHIR_PREC_MINUTE);
    assert_true(s->clauses[1].values[0].date.start_ms == ct_fhir_utc_ms(2026, 11, 22, 9, 0, 0, 0));
    /* A value without a prefix is eq, even after one with a prefix. */
    assert_int_equal(s->clauses[1].values[1].prefix, CT_FHIR_PFX_EQ);
    assert_true(s->clauses[1].values[1].date.start_ms == ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0));
    assert_string_equal(s->clauses[2].param->name, "_lastUpdated");
    ct_fhir_search_free(s);
    bad("date=xx2026", CT_FHIR_IT_VALUE, "date", "unknown prefix");
    bad("date=2026-02-30", CT_FHIR_IT_VALUE, "date", "does not exist");
    bad("date=2026-11-22T10:00:00", CT_FHIR_IT_VALUE, "date", "zone");
    bad("date=ge", CT_FHIR_IT_VALUE, "date", "4-digit year");
    bad("date=2026,", CT_FHIR_IT_VALUE, "date", "empty value");
    bad("date=2026-11-22T24:00Z", CT_FHIR_IT_VALUE, "date", "24:00");
}

static void test_tokens_refs(void **state)
{
    (void)state;
    ct_fhir_search *s = ok("Observation",
                           "code=urn:oid:2.16.840.1.113883.6.24|131328,|bare,http://loinc.org|,8867-4"
                           "&status=final&category=a\\,b\\|c",
                           CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->n_clauses, 3);
    const ct_fhir_search_clause *c = &s->clauses[0];
    assert_int_equal(c->n_values, 4);
    assert_string_equal(c->values[0].system, "urn:oid:2.16.840.1.113883.6.24");
    assert_string_equal(c->values[0].code, "131328");
    assert_string_equal(c->values[1].system, "");      /* |code: no system */
    assert_string_equal(c->values[1].code, "bare");
    assert_string_equal(c->values[2].system, "http://loinc.org");
    assert_null(c->values[2].code);                      /* system|: any code */
    assert_null(c->values[3].system);                    /* code: any system */
    assert_string_equal(c->values[3].code, "8867-4");
    assert_string_equal(s->clauses[1].values[0].code, "final");
    assert_int_equal(s->clauses[2].n_values, 1);         /* escaped comma and bar */
    assert_null(s->clauses[2].values[0].system);
    assert_string_equal(s->clauses[2].values[0].code, "a,b|c");
    ct_fhir_search_free(s);

    s = ok("Observation", "patient=p1&subject=Patient/p2&subject:Patient=p3&patient=Patient/p4/_history/2&subject=d9",
           CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->n_clauses, 5);
    assert_string_equal(s->clauses[0].values[0].ref_type, "Patient"); /* bare id: the target type */
    assert_string_equal(s->clauses[0].values[0].ref_id, "p1");
    assert_string_equal(s->clauses[1].values[0].ref_type, "Patient");
    assert_string_equal(s->clauses[1].values[0].ref_id, "p2");
    assert_int_equal(s->clauses[2].modifier, CT_FHIR_MOD_TYPE);
    assert_string_equal(s->clauses[2].values[0].ref_type, "Patient");
    assert_string_equal(s->clauses[2].values[0].ref_id, "p3");
    assert_string_equal(s->clauses[3].values[0].ref_version, "2");
    assert_null(s->clauses[4].values[0].ref_type);                      /* subject has no single target */
    ct_fhir_search_free(s);

    s = ok("DiagnosticReport", "_id=r1,r2&conclusion=http://snomed.info/sct|164889003&code:missing=false",
           CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->clauses[0].n_values, 2);
    assert_string_equal(s->clauses[0].values[1].code, "r2");
    assert_string_equal(s->clauses[1].values[0].code, "164889003");
    assert_int_equal(s->clauses[2].modifier, CT_FHIR_MOD_MISSING);
    assert_int_equal(s->clauses[2].values[0].missing, 0);
    ct_fhir_search_free(s);

    bad("code=|", CT_FHIR_IT_VALUE, "code", "no system and no code");
    bad("patient=Device/1", CT_FHIR_IT_VALUE, "patient", "not a Device");
    bad("patient=a b", CT_FHIR_IT_VALUE, "patient", "not a FHIR id");
    bad("subject=https://x/fhir/Patient/1", CT_FHIR_IT_VALUE, "subject", "absolute URLs");
    bad("patient:Device=1", CT_FHIR_IT_NOT_SUPPORTED, "patient", "modifier :Device");
    bad("code:text=x", CT_FHIR_IT_NOT_SUPPORTED, "code", "modifier :text is not supported on code (token)");
    bad("code:missing=maybe", CT_FHIR_IT_VALUE, "code", "true or false");
    bad("code:missing=true,false", CT_FHIR_IT_VALUE, "code", "one value");
    bad("_id=a_b", CT_FHIR_IT_VALUE, "_id", "not a FHIR id");
}

static void test_subject_type_modifier_allowed(void **state)
{
    (void)state;
    /* subject has no single target: any type name is a valid modifier. */
    ct_fhir_search *s = ok("Observation", "subject:Device=1", CT_FHIR_HANDLING_STRICT);
    assert_string_equal(s->clauses[0].values[0].ref_type, "Device");
    ct_fhir_search_free(s);
}

static void test_control(void **state)
{
    (void)state;
    ct_fhir_search *s = ok("Observation", "", CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->n_clauses, 0);
    assert_int_equal(s->count, 50);
    assert_int_equal(s->count_given, 0);
    assert_true(s->offset == 0);
    ct_fhir_search_free(s);
    s = ok("DiagnosticReport", "_count=0&_offset=100&_sort=-date,status,_lastUpdated&_include=DiagnosticReport:result&_format=json&_pretty=true",
           CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->count, 0);
    assert_int_equal(s->count_given, 1);
    assert_true(s->offset == 100);
    assert_int_equal(s->n_sort, 3);
    assert_string_equal(s->sort[0].param->name, "date");
    assert_int_equal(s->sort[0].descending, 1);
    assert_int_equal(s->sort[1].descending, 0);
    assert_string_equal(s->sort[2].param->name, "_lastUpdated");
    assert_int_equal(s->include_result, 1);
    assert_string_equal(s->format, "json");
    assert_int_equal(s->n_issues, 0);
    ct_fhir_search_free(s);
    /* Over the page size: lowered, and said so. */
    s = ok("Observation", "_count=5000", CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->count, 1000);
    assert_int_equal(s->n_issues, 1);
    assert_int_equal(s->issues[0].severity, CT_FHIR_SEV_INFORMATION);
    ct_fhir_search_free(s);
    s = ok("Observation", "_count=99999999999999999999", CT_FHIR_HANDLING_STRICT);
    assert_int_equal(s->count, 1000);
    ct_fhir_search_free(s);
    bad("_count=-1", CT_FHIR_IT_VALUE, "_count", "whole number");
    bad("_count=ten", CT_FHIR_IT_VALUE, "_count", "whole number");
    bad("_count=", CT_FHIR_IT_VALUE, "_count", "whole number");
    bad("_count=1&_count=2", CT_FHIR_IT_VALUE, "_count", "twice");
    bad("_count:x=1", CT_FHIR_IT_NOT_SUPPORTED, "_count", "no modifier");
    bad("_offset=1000001", CT_FHIR_IT_TOO_COSTLY, "_offset", "narrow the search");
    bad("_offset=1.5", CT_FHIR_IT_VALUE, "_offset", NULL);
    bad("_sort=date&_sort=status", CT_FHIR_IT_VALUE, "_sort", "twice");
    bad("_sort=date,-date", CT_FHIR_IT_VALUE, "_sort", "names date twice");
    bad("_sort=,date", CT_FHIR_IT_VALUE, "_sort", "empty");
    bad("_sort=-", CT_FHIR_IT_VALUE, "_sort", "empty");
}

static void test_unknown_params(void **state)
{
    (void)state;
    const char *q = "foo=1&code:missing=true&_summary=count&subject.name=x&_sort=code&_include=Observation:patient&value-quantity=5";
    ct_fhir_search *s = ok("Observation", q, CT_FHIR_HANDLING_LENIENT);
    assert_int_equal(s->n_clauses, 1); /* only code:missing was understood */
    assert_int_equal(s->n_sort, 0);
    assert_int_equal(s->n_issues, 6);
    for (size_t i = 0; i < s->n_issues; i++) {
        assert_int_equal(s->issues[i].severity, CT_FHIR_SEV_WARNING);
        assert_int_equal(s->issues[i].code, CT_FHIR_IT_NOT_SUPPORTED);
        assert_non_null(strstr(s->issues[i].diagnostics, "ignored"));
    }
    assert_string_equal(s->issues[0].expression, "foo");
    assert_string_equal(s->issues[2].expression, "subject.name");
    ct_fhir_search_free(s);
    /* Strict: the first one is a 400. */
    bad_("Observation", q, CT_FHIR_HANDLING_STRICT, CT_EFORMAT, 400, CT_FHIR_IT_NOT_SUPPORTED, "foo",
         "search parameter foo is not supported for Observation", __FILE__, __LINE__);
    bad_("Observation", "code=", CT_FHIR_HANDLING_STRICT, CT_EFORMAT, 400, CT_FHIR_IT_NOT_SUPPORTED,
         "code", "has no value", __FILE__, __LINE__);
    bad_("Patient", "date=2026", CT_FHIR_HANDLING_STRICT, CT_EFORMAT, 400, CT_FHIR_IT_NOT_SUPPORTED,
         "date", "not supported for Patient", __FILE__, __LINE__);
    /* Lenient: an empty value is ignored with a warning. */
    s = ok("Observation", "code=&status=final", CT_FHIR_HANDLING_LENIENT);
    assert_int_equal(s->n_clauses, 1);
    assert_int_equal(s->n_issues, 1);
    ct_fhir_search_free(s);
    /* Never more warnings than the array holds. */
    char many[600] = "";
    for (int i = 0; i < 20; i++) {
        char p[24];
        snprintf(p, sizeof p, "%sx%d=1", i ? "&" : "", i);
        strcat(many, p);
    }
    s = ok("Observation", many, CT_FHIR_HANDLING_LENIENT);
    assert_int_equal(s->n_issues, CT_FHIR_SEARCH_MAX_ISSUES);
    ct_fhir_search_free(s);
}

static void test_decoding_and_limits(void **state)
{
    (void)state;
    ct_fhir_search *s = ok("Observation", "co%64e=a%20b+c&&status=%E2%9C%93", CT_FHIR_HANDLING_STRICT);
    assert_string_equal(s->clauses[0].param->name, "code");
    assert_string_equal(s->clauses[0].values[0].code, "a b c");
    assert_string_equal(s->clauses[1].values[0].code, "\xe2\x9c\x93");
    ct_fhir_search_free(s);
    bad("code=%4", CT_FHIR_IT_STRUCTURE, NULL, "two hex digits");
    bad("code=%zz", CT_FHIR_IT_STRUCTURE, NULL, "two hex digits");
    bad("code=%00", CT_FHIR_IT_STRUCTURE, NULL, "NUL");
    bad("code=%ff", CT_FHIR_IT_STRUCTURE, NULL, "UTF-8");
    bad("code=a\x01", CT_FHIR_IT_STRUCTURE, NULL, "control character");
    /* Bounds: query length, clauses, values, sort keys. */
    char *big = malloc(CT_FHIR_SEARCH_MAX_QUERY + 2);
    memset(big, 'a', CT_FHIR_SEARCH_MAX_QUERY + 1);
    big[CT_FHIR_SEARCH_MAX_QUERY + 1] = '\0';
    bad_("Observation", big, CT_FHIR_HANDLING_LENIENT, CT_ELIMIT, 413, CT_FHIR_IT_TOO_LONG, NULL,
         "over the limit", __FILE__, __LINE__);
    free(big);
    char q[2048] = "";
    for (int i = 0; i < 33; i++)
        strcat(q, i ? "&status=final" : "status=final");
    bad_("Observation", q, CT_FHIR_HANDLING_LENIENT, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, "status",
         "more than 32 parameters", __FILE__, __LINE__);
    strcpy(q, "status=a");
    for (int i = 0; i < 128; i++)
        strcat(q, ",a");
    bad_("Observation", q, CT_FHIR_HANDLING_LENIENT, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, "status",
         "more than 128 values", __FILE__, __LINE__);
    bad_("Observation", "_sort=date,status,code,_id,_lastUpdated", CT_FHIR_HANDLING_STRICT, CT_EFORMAT,
         400, CT_FHIR_IT_NOT_SUPPORTED, "_sort", "code", __FILE__, __LINE__);
    bad_("Medication", "code=1", CT_FHIR_HANDLING_LENIENT, CT_EFORMAT, 400, CT_FHIR_IT_NOT_SUPPORTED,
         NULL, "not one this server searches", __FILE__, __LINE__);
}

static void test_format(void **state)
{
    (void)state;
    ct_fhir_search *s = ok("DiagnosticReport",
                           "patient=Patient/p1&date=ge2026-11-22T10:00:00%2B01:00&foo=bar&code=a\\,b,c"
                           "&_sort=-date&_include=DiagnosticReport:result&_count=20&_offset=40",
                           CT_FHIR_HANDLING_LENIENT);
    char buf[512];
    assert_int_equal(ct_fhir_search_format(s, s->offset, buf, sizeof buf), 0);
    assert_string_equal(buf, "patient=Patient/p1&date=ge2026-11-22T10:00:00%2B01:00&code=a%5C,b,c"
                             "&_sort=-date&_include=DiagnosticReport:result&_count=20&_offset=40");
    assert_int_equal(ct_fhir_search_format(s, s->offset + s->count, buf, sizeof buf), 0);
    assert_non_null(strstr(buf, "&_count=20&_offset=60"));
    /* The formatted query parses back to the same search. */
    ct_fhir_search *t = ok("DiagnosticReport", buf, CT_FHIR_HANDLING_STRICT);
    assert_int_equal(t->n_clauses, 3);
    assert_string_equal(t->clauses[2].values[0].code, "a,b");
    assert_true(t->clauses[1].values[0].date.start_ms == s->clauses[1].values[0].date.start_ms);
    ct_fhir_search_free(t);
    assert_int_equal(ct_fhir_search_format(s, 0, buf, 20), CT_ELIMIT);
    assert_true(strlen(buf) < 20);
    ct_fhir_search_free(s);
    s = ok("Observation", "subject:Patient=x&code:missing=true", CT_FHIR_HANDLING_STRICT);
    assert_int_equal(ct_fhir_search_format(s, 0, buf, sizeof buf), 0);
    assert_string_equal(buf, "subject:Patient=x&code:missing=true&_count=50&_offset=0");
    ct_fhir_search_free(s);
}

static void test_param_tables(void **state)
{
    (void)state;
    size_t n;
    const ct_fhir_search_param *p = ct_fhir_search_params("Observation", &n);
    assert_int_equal(n, 9);
    assert_string_equal(p[0].name, "_id");
    assert_string_equal(p[2].name, "identifier");
    static const char *const with_identifier[] = {"Patient", "Observation", "DiagnosticReport", "Device"};
    for (size_t t = 0; t < 4; t++) {
        p = ct_fhir_search_params(with_identifier[t], &n);
        size_t found = 0;
        for (size_t i = 0; i < n; i++)
            found += strcmp(p[i].name, "identifier") == 0 && p[i].type == CT_FHIR_PARAM_TOKEN;
        assert_int_equal(found, 1);
    }
    assert_non_null(ct_fhir_search_params("Patient", &n));
    assert_int_equal(n, 3);
    assert_non_null(ct_fhir_search_params("Provenance", &n));
    assert_int_equal(n, 2);
    assert_null(ct_fhir_search_params("Bundle", &n));
    assert_int_equal(n, 0);
    assert_string_equal(ct_fhir_prefix_name(CT_FHIR_PFX_AP), "ap");
    assert_string_equal(ct_fhir_param_type_name(CT_FHIR_PARAM_REFERENCE), "reference");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dates),          cmocka_unit_test(test_tokens_refs),
        cmocka_unit_test(test_subject_type_modifier_allowed),
        cmocka_unit_test(test_control),        cmocka_unit_test(test_unknown_params),
        cmocka_unit_test(test_decoding_and_limits), cmocka_unit_test(test_format),
        cmocka_unit_test(test_param_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
