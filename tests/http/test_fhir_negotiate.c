/* The FHIR API's request rules, each on its own: Content-Type (415),
 * Accept and _format (406), Prefer, If-Match ETags, HTTP dates, query
 * values, new ids, the /fhir path and SMART scopes (tests/http/test_scopes.c
 * has the rest of them). Every refusal the server makes from a header is
 * decided here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/http/fhir_internal.h"

static void test_content_type(void **state)
{
    (void)state;
    assert_int_equal(ct_http_content_type(NULL), CT_HTTP_MEDIA_NONE);
    assert_int_equal(ct_http_content_type(""), CT_HTTP_MEDIA_NONE);
    assert_int_equal(ct_http_content_type("application/fhir+json"), CT_HTTP_MEDIA_FHIR_JSON);
    assert_int_equal(ct_http_content_type("Application/FHIR+JSON"), CT_HTTP_MEDIA_FHIR_JSON);
    assert_int_equal(ct_http_content_type("application/json"), CT_HTTP_MEDIA_FHIR_JSON);
    assert_int_equal(ct_http_content_type("application/json+fhir"), CT_HTTP_MEDIA_FHIR_JSON);
    assert_int_equal(ct_http_content_type("application/fhir+json; charset=utf-8"), CT_HTTP_MEDIA_FHIR_JSON);
    assert_int_equal(ct_http_content_type("application/fhir+json;charset=\"UTF-8\""), CT_HTTP_MEDIA_FHIR_JSON);
    assert_int_equal(ct_http_content_type("application/fhir+json; fhirVersion=4.0"), CT_HTTP_MEDIA_FHIR_JSON);
    assert_int_equal(ct_http_content_type("application/fhir+json; charset=latin1"), CT_HTTP_MEDIA_OTHER);
    assert_int_equal(ct_http_content_type("application/fhir+xml"), CT_HTTP_MEDIA_XML);
    assert_int_equal(ct_http_content_type("text/xml; charset=utf-8"), CT_HTTP_MEDIA_XML);
    assert_int_equal(ct_http_content_type("application/x-www-form-urlencoded"), CT_HTTP_MEDIA_FORM);
    assert_int_equal(ct_http_content_type("text/plain"), CT_HTTP_MEDIA_OTHER);
    assert_int_equal(ct_http_content_type("application/fhir+jsonx"), CT_HTTP_MEDIA_OTHER);
    /* A media type too long to be one we know is not cut into one. */
    assert_int_equal(ct_http_content_type("application/fhir+json" "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"),
                     CT_HTTP_MEDIA_OTHER);
}

static void test_accept(void **state)
{
    (void)state;
    int plain = -1;
    assert_true(ct_http_accept_json(NULL, &plain));
    assert_int_equal(plain, 0);
    assert_true(ct_http_accept_json("", &plain));
    assert_true(ct_http_accept_json("*/*", &plain));
    assert_int_equal(plain, 0);
    assert_true(ct_http_accept_json("application/fhir+json", &plain));
    assert_int_equal(plain, 0);
    assert_true(ct_http_accept_json("application/json", &plain));
    assert_int_equal(plain, 1);
    assert_true(ct_http_accept_json("application/json;q=0.9, application/fhir+json", &plain));
    assert_int_equal(plain, 0);
    assert_true(ct_http_accept_json("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", &plain));
    assert_true(ct_http_accept_json("application/*", NULL));
    assert_false(ct_http_accept_json("application/fhir+xml", NULL));
    assert_false(ct_http_accept_json("application/xml, text/html", NULL));
    assert_false(ct_http_accept_json("application/fhir+json;q=0", NULL));
    /* q=0 on both JSON types beats the wildcard. */
    assert_false(ct_http_accept_json("*/*, application/fhir+json;q=0, application/json;q=0", NULL));
    assert_true(ct_http_accept_json("*/*, application/fhir+json;q=0", &plain));
    assert_int_equal(plain, 1);
}

static void test_format(void **state)
{
    (void)state;
    assert_true(ct_http_format_json("json"));
    assert_true(ct_http_format_json("JSON"));
    assert_true(ct_http_format_json("application/json"));
    assert_true(ct_http_format_json("application/fhir+json"));
    assert_true(ct_http_format_json("application/fhir json")); /* '+' decoded as a space */
    assert_false(ct_http_format_json("xml"));
    assert_false(ct_http_format_json("application/fhir+xml"));
    assert_false(ct_http_format_json("html"));
    assert_false(ct_http_format_json(""));
}

static void test_prefer(void **state)
{
    (void)state;
    ct_http_prefer p;
    ct_http_prefer_parse(NULL, &p);
    assert_int_equal(p.ret, CT_HTTP_RETURN_DEFAULT);
    assert_int_equal(p.strict, 0);
    ct_http_prefer_parse("return=minimal", &p);
    assert_int_equal(p.ret, CT_HTTP_RETURN_MINIMAL);
    ct_http_prefer_parse("return=representation", &p);
    assert_int_equal(p.ret, CT_HTTP_RETURN_REPRESENTATION);
    ct_http_prefer_parse("return=OperationOutcome", &p);
    assert_int_equal(p.ret, CT_HTTP_RETURN_OUTCOME);
    ct_http_prefer_parse("handling=strict, return=\"minimal\"", &p);
    assert_int_equal(p.ret, CT_HTTP_RETURN_MINIMAL);
    assert_int_equal(p.strict, 1);
    ct_http_prefer_parse("respond-async; wait=10, handling=lenient", &p);
    assert_int_equal(p.strict, 0);
    assert_int_equal(p.ret, CT_HTTP_RETURN_DEFAULT);
    ct_http_prefer_parse("return=everything", &p);
    assert_int_equal(p.ret, CT_HTTP_RETURN_DEFAULT);
}

static void test_etag(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(ct_http_etag_parse("W/\"3\"", &v), 0);
    assert_int_equal(v, 3);
    assert_int_equal(ct_http_etag_parse("\"12\"", &v), 0);
    assert_int_equal(v, 12);
    assert_int_equal(ct_http_etag_parse(" W/\"9\" ", &v), 0);
    assert_int_equal(v, 9);
    const char *bad[] = {"3", "W/3", "W/\"\"", "W/\"0\"", "W/\"-1\"", "W/\"3\"x", "W/\"3", "w/\"3\"",
                         "W/\"99999999999999999999\"", "*", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ct_http_etag_parse(bad[i], &v), CT_EFORMAT);
    assert_int_equal(ct_http_etag_parse(NULL, &v), CT_EFORMAT);
}

static void test_date_and_id(void **state)
{
    (void)state;
    char buf[CT_HTTP_DATE_CAP];
    ct_http_date_format(784111777000LL, buf, sizeof buf);
    assert_string_equal(buf, "Sun, 06 Nov 1994 08:49:37 GMT");
    ct_http_date_format(0, buf, sizeof buf);
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    char a[37], b[37];
    assert_int_equal(ct_http_new_id(a), 0);
    assert_int_equal(ct_http_new_id(b), 0);
    assert_int_equal(strlen(a), 36);
    assert_true(ct_fhir_id_valid(a, strlen(a)));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_non_null(strchr("89ab", a[19]));
}

static void test_query_get(void **state)
{
    (void)state;
    char v[16];
    assert_int_equal(ct_http_query_get("a=1&_format=json&b=2", "_format", v, sizeof v), 1);
    assert_string_equal(v, "json");
    assert_int_equal(ct_http_query_get("_format=application%2Ffhir%2Bjson", "_format", v, sizeof v), -1); /* too long */
    char w[64];
    assert_int_equal(ct_http_query_get("_format=application%2Ffhir%2Bjson", "_format", w, sizeof w), 1);
    assert_string_equal(w, "application/fhir+json");
    assert_int_equal(ct_http_query_get("x=a+b", "x", v, sizeof v), 1);
    assert_string_equal(v, "a b");
    assert_int_equal(ct_http_query_get("x=%zz", "x", v, sizeof v), -1);
    assert_int_equal(ct_http_query_get("x=%00", "x", v, sizeof v), -1);
    assert_int_equal(ct_http_query_get("xx=1", "x", v, sizeof v), 0);
    assert_int_equal(ct_http_query_get(NULL, "x", v, sizeof v), 0);
    assert_int_equal(ct_http_query_get("%5Fcount=3", "_count", v, sizeof v), 1);
    assert_string_equal(v, "3");
}

static void test_path(void **state)
{
    (void)state;
    ct_http_fhir_path p;
    assert_int_equal(ct_http_fhir_path_parse("/fhir/Observation/abc/_history/2", &p), 0);
    assert_string_equal(p.type, "Observation");
    assert_int_equal(p.n_seg, 3);
    assert_string_equal(p.seg[0], "abc");
    assert_string_equal(p.seg[2], "2");
    assert_int_equal(ct_http_fhir_path_parse("/fhir/Patient", &p), 0);
    assert_int_equal(p.n_seg, 0);
    assert_int_equal(ct_http_fhir_path_parse("/fhir/Pat<ient", &p), -1);
    assert_int_equal(ct_http_fhir_path_parse("/fhir/", &p), -1);
    assert_int_equal(ct_http_fhir_path_parse("/other/Patient", &p), -1);
    assert_int_equal(ct_http_fhir_path_parse("/fhir/A/1/2/3/4/5", &p), -1);
    char long_seg[200];
    snprintf(long_seg, sizeof long_seg, "/fhir/Patient/%0100d", 1);
    assert_int_equal(ct_http_fhir_path_parse(long_seg, &p), -1);
    assert_true(ct_http_is_fhir_path("/fhir"));
    assert_true(ct_http_is_fhir_path("/fhir/x"));
    assert_false(ct_http_is_fhir_path("/fhirx"));
    assert_false(ct_http_is_fhir_path("/healthz"));
    assert_false(ct_http_is_fhir_path(NULL));
}

static void test_scopes(void **state)
{
    (void)state;
    assert_true(ct_http_scope_grants("system/*.cruds", "user/Observation.r"));
    assert_true(ct_http_scope_grants("user/Observation.rs", "user/Observation.r"));
    assert_true(ct_http_scope_grants("user/Observation.rs", "user/Observation.s"));
    assert_false(ct_http_scope_grants("user/Observation.rs", "user/Observation.c"));
    assert_false(ct_http_scope_grants("user/Patient.cruds", "user/Observation.r"));
    assert_true(ct_http_scope_grants("openid user/Patient.r user/Observation.cu", "user/Observation.u"));
    /* patient/ grants only inside one compartment, never what a user/ scope asks. */
    assert_false(ct_http_scope_grants("patient/*.cruds", "user/Observation.r"));
    /* SMART v1 names. */
    assert_true(ct_http_scope_grants("user/*.read", "user/Patient.s"));
    assert_false(ct_http_scope_grants("user/*.read", "user/Patient.d"));
    assert_true(ct_http_scope_grants("user/Patient.write", "user/Patient.d"));
    assert_true(ct_http_scope_grants("user/Patient.*", "user/Patient.c"));
    /* Letters out of order, unknown letters, empty parts: granted nothing. */
    assert_false(ct_http_scope_grants("user/Patient.rc", "user/Patient.r"));
    assert_false(ct_http_scope_grants("user/Patient.rx", "user/Patient.r"));
    assert_false(ct_http_scope_grants("user/.r", "user/Patient.r"));
    assert_false(ct_http_scope_grants("", "user/Patient.r"));
    assert_false(ct_http_scope_grants(NULL, "user/Patient.r"));
    assert_false(ct_http_scope_grants("user/Patient.r", "garbage"));
    /* A type that only starts like the one asked for. */
    assert_false(ct_http_scope_grants("user/Obs.r", "user/Observation.r"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_type), cmocka_unit_test(test_accept),  cmocka_unit_test(test_format),
        cmocka_unit_test(test_prefer),       cmocka_unit_test(test_etag),    cmocka_unit_test(test_date_and_id),
        cmocka_unit_test(test_query_get),    cmocka_unit_test(test_path),    cmocka_unit_test(test_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
