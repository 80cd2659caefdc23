/* The FHIR API's JSON text handling: resources are stored as the client's
 * own text (numbers exactly as written), with only the id, meta.versionId,
 * meta.lastUpdated and, in transactions, urn:uuid references changed; and
 * read back with the version and time put in. Also the buffer's ceiling
 * and every malformed input the walker must refuse without reading past
 * its end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/fhir_internal.h"

static char *canon(const char *text, const char *type, const char *id, const ct_http_ref_map *map, int *rc)
{
    ct_http_buf b;
    ct_http_buf_init(&b, 1 << 20);
    *rc = ct_http_resource_canonical(text, strlen(text), type, id, map, &b);
    if (*rc) {
        ct_http_buf_free(&b);
        return NULL;
    }
    return ct_http_buf_take(&b, NULL);
}

static void test_canonical_keeps_text(void **state)
{
    (void)state;
    int rc;
    char *s = canon("{ \"resourceType\" : \"Observation\",\n \"id\": \"client\", \"status\": \"final\",\n"
                    "  \"valueQuantity\": {\"value\": 1.50, \"comparator\": \"<\"},\n"
                    "  \"meta\": {\"versionId\": \"9\", \"profile\": [\"http://x\"], \"lastUpdated\": \"2000-01-01T00:00:00Z\"},\n"
                    "  \"note\": [{\"text\": \"a  b \\\" \\u00e9\"}], \"big\": 1e-7, \"n\": -0.0100 }",
                    "Observation", "srv-1", NULL, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "{\"resourceType\":\"Observation\",\"id\":\"srv-1\",\"meta\":{\"profile\":[\"http://x\"]},"
                           "\"status\":\"final\",\"valueQuantity\":{\"value\":1.50,\"comparator\":\"<\"},"
                           "\"note\":[{\"text\":\"a  b \\\" \\u00e9\"}],\"big\":1e-7,\"n\":-0.0100}");
    free(s);
    /* No meta: an empty one, which serve fills. */
    s = canon("{\"resourceType\":\"Patient\"}", "Patient", "p", NULL, &rc);
    assert_string_equal(s, "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{}}");
    size_t len = 0;
    char *out = ct_http_resource_serve(s, strlen(s), "Patient", "p", 3, 1700000000123LL, &len);
    assert_string_equal(out, "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"versionId\":\"3\","
                             "\"lastUpdated\":\"2023-11-14T22:13:20.123Z\"}}");
    assert_int_equal(len, strlen(out));
    free(out);
    free(s);
    /* A key written with an escape is still the key it spells. */
    s = canon("{\"resourceType\":\"Patient\",\"\\u0069d\":\"x\",\"m\\u0065ta\":{\"versionId\":\"2\",\"tag\":[{\"code\":\"t\"}]}}",
              "Patient", "p", NULL, &rc);
    assert_string_equal(s, "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"tag\":[{\"code\":\"t\"}]}}");
    out = ct_http_resource_serve(s, strlen(s), "Patient", "p", 1, 0, &len);
    assert_string_equal(out, "{\"resourceType\":\"Patient\",\"id\":\"p\",\"meta\":{\"versionId\":\"1\","
                             "\"lastUpdated\":\"1970-01-01T00:00:00.000Z\",\"tag\":[{\"code\":\"t\"}]}}");
    free(out);
    free(s);
}

static void test_canonical_refuses(void **state)
{
    (void)state;
    int rc;
    const char *bad[] = {"[]", "\"x\"", "{\"resourceType\":\"Patient\",\"meta\":[]}", "{\"a\":", "{\"a\":1", "{\"a\" 1}",
                         "{\"a\":1,}", "{\"a\":\"unterminated}", "", "{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *s = canon(bad[i], "Patient", "p", NULL, &rc);
        assert_null(s);
        assert_int_equal(rc, CT_EFORMAT);
    }
}

static void test_references_rewritten(void **state)
{
    (void)state;
    const char *from[] = {"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001", "urn:uuid:bbbbbbbb-0000-4000-8000-000000000002"};
    const char *to[] = {"Patient/p1", "Observation/o2"};
    ct_http_ref_map map = {2, from, to};
    int rc;
    char *s = canon("{\"resourceType\":\"DiagnosticReport\",\"subject\":{\"reference\":\"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001\"},"
                    "\"result\":[{\"reference\":\"urn:uuid:bbbbbbbb-0000-4000-8000-000000000002\",\"display\":\"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001\"},"
                    "{\"reference\":\"Observation/kept\"},{\"reference\":\"urn:uuid:cccccccc-0000-4000-8000-000000000003\"}],"
                    "\"contained\":[{\"resourceType\":\"Observation\",\"subject\":{\"reference\":\"urn:uuid:aaaaaaaa\\u002d0000-4000-8000-000000000001\"}}],"
                    "\"meta\":{\"source\":\"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001\"}}",
                    "DiagnosticReport", "d", &map, &rc);
    assert_int_equal(rc, 0);
    assert_string_equal(s, "{\"resourceType\":\"DiagnosticReport\",\"id\":\"d\","
                           "\"meta\":{\"source\":\"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001\"},"
                           "\"subject\":{\"reference\":\"Patient/p1\"},"
                           "\"result\":[{\"reference\":\"Observation/o2\",\"display\":\"urn:uuid:aaaaaaaa-0000-4000-8000-000000000001\"},"
                           "{\"reference\":\"Observation/kept\"},{\"reference\":\"urn:uuid:cccccccc-0000-4000-8000-000000000003\"}],"
                           "\"contained\":[{\"resourceType\":\"Observation\",\"subject\":{\"reference\":\"Patient/p1\"}}]}");
    free(s);
}

static void test_member_and_element(void **state)
{
    (void)state;
    const char *t = " {\"entry\" : [ {\"a\":1} , {\"resource\": {\"x\":[1,2]} } ], \"z\":null}";
    const char *end = t + strlen(t), *vs, *ve;
    assert_int_equal(ct_http_json_member(t, end, "entry", &vs, &ve), 0);
    const char *es, *ee;
    assert_int_equal(ct_http_json_element(vs, ve, 1, &es, &ee), 0);
    const char *rs, *re;
    assert_int_equal(ct_http_json_member(es, ee, "resource", &rs, &re), 0);
    assert_int_equal((int)(re - rs), (int)strlen("{\"x\":[1,2]}"));
    assert_memory_equal(rs, "{\"x\":[1,2]}", (size_t)(re - rs));
    assert_int_equal(ct_http_json_element(vs, ve, 2, &es, &ee), CT_ENOTFOUND);
    assert_int_equal(ct_http_json_member(t, end, "missing", &vs, &ve), CT_ENOTFOUND);
    const char *arr1 = "[1]", *arr0 = "[]";
    assert_int_equal(ct_http_json_member(arr1, arr1 + 3, "a", &vs, &ve), CT_EFORMAT);
    assert_int_equal(ct_http_json_element(arr0, arr0 + 2, 0, &vs, &ve), CT_ENOTFOUND);
    /* Cut short: never read past the end. The buffers are exactly as long
     * as the text (no NUL), so ASan would see a read past them. */
    static const char cut[] = {'{', '"', 'a', '"', ':', '[', '1', ',', '2'};
    assert_int_equal(ct_http_json_member(cut, cut + sizeof cut, "b", &vs, &ve), CT_EFORMAT);
    static const char str[] = {'"', 'a', 'b', 'c', '\\'};
    assert_null(ct_http_json_skip(str, str + sizeof str));
    assert_null(ct_http_json_skip(str, str));
}

static void test_serve_foreign_body(void **state)
{
    (void)state;
    /* Written by other means: rebuilt with meta. */
    const char *foreign = "{\"resourceType\":\"Device\",\"meta\":{\"versionId\":\"old\"},\"version\":[{\"value\":\"1\"}]}";
    size_t len;
    char *out = ct_http_resource_serve(foreign, strlen(foreign), "Device", "d1", 4, 1000, &len);
    assert_non_null(out);
    json_t *j = json_loads(out, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "d1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "meta"), "versionId")), "4");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "meta"), "lastUpdated")),
                        "1970-01-01T00:00:01.000Z");
    json_decref(j);
    free(out);
    assert_null(ct_http_resource_serve("not json", 8, "Device", "d1", 1, 0, &len));
}

static void test_buffer(void **state)
{
    (void)state;
    ct_http_buf b;
    ct_http_buf_init(&b, 10);
    ct_http_buf_puts(&b, "0123456789");
    assert_int_equal(b.failed, 0);
    ct_http_buf_puts(&b, "x");
    assert_int_equal(b.failed, CT_ELIMIT);
    ct_http_buf_free(&b);
    ct_http_buf_init(&b, 100);
    ct_http_buf_put_json_string(&b, "a\"b\\c\n\x01\x7f");
    assert_string_equal(b.p, "\"a\\\"b\\\\c\\n\\u0001\\u007f\"");
    size_t n;
    char *p = ct_http_buf_take(&b, &n);
    assert_int_equal(n, strlen(p));
    free(p);
    assert_null(b.p);
    ct_http_buf_init(&b, 100);
    p = ct_http_buf_take(&b, &n);
    assert_string_equal(p, "");
    assert_int_equal(n, 0);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_keeps_text), cmocka_unit_test(test_canonical_refuses),
        cmocka_unit_test(test_references_rewritten), cmocka_unit_test(test_member_and_element),
        cmocka_unit_test(test_serve_foreign_body),   cmocka_unit_test(test_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
