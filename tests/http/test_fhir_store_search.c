/* The store side of the FHIR API (src/store/search.c, migration 0003),
 * driven the way the http room drives it: writes with their index and
 * preconditions, removal, history, and searches parsed by the fhir room
 * and mapped by ct_http_search_map. The date prefixes are checked against
 * the fhir room's own definition (ct_fhir_date_matches) on resources with
 * ranges of every width, open ends included, so the SQL and the spec
 * cannot drift apart. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/fhir_internal.h"

static int setup(void **state)
{
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_store_open(":memory:", &st, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = st;
    return 0;
}

static int teardown(void **state)
{
    ct_store_close(*state);
    return 0;
}

/* Stores an Observation with the given index values. */
static void put(ct_store *st, const char *id, const ct_store_index_entry *e, size_t n)
{
    char body[128];
    snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"id\":\"%s\",\"meta\":{}}", id);
    ct_store_write w = {.type = "Observation", .id = id, .json = body, .len = strlen(body), .index = e, .n_index = n};
    ct_store_version_info info;
    ct_error err = {0};
    if (ct_store_resource_write(st, &w, &info, &err) != 0)
        fail_msg("write %s: %s", id, err.msg);
}

/* The ids a FHIR query finds, sorted and space-separated. */
static char *found(ct_store *st, const char *query, int64_t now_ms, int64_t *total)
{
    ct_fhir_search *s = NULL;
    ct_fhir_issue is;
    if (ct_fhir_search_parse("Observation", query, strlen(query), CT_FHIR_HANDLING_STRICT, &s, &is) != 0)
        fail_msg("%s: %s", query, is.diagnostics);
    ct_http_mapped_query *m = malloc(sizeof *m);
    assert_non_null(m);
    ct_http_search_map(s, now_ms, m);
    ct_store_search_result r;
    ct_error err = {0};
    if (ct_store_search(st, &m->q, &r, &err) != 0)
        fail_msg("%s: %s", query, err.msg);
    static char out[4096];
    out[0] = '\0';
    for (size_t i = 0; i < r.matches.n; i++) {
        strcat(out, i ? " " : "");
        strcat(out, r.matches.rows[i].id);
    }
    for (size_t i = 0; i < r.included.n; i++) {
        strcat(out, " +");
        strcat(out, r.included.rows[i].id);
    }
    if (total)
        *total = r.total;
    ct_store_search_result_free(&r);
    free(m);
    ct_fhir_search_free(s);
    return out;
}

static void test_write_preconditions_and_history(void **state)
{
    ct_store *st = *state;
    ct_store_index_entry tok = {.param = "status", .kind = CT_STORE_INDEX_TOKEN, .code = "final"};
    ct_store_write w = {.type = "Observation", .id = "w1", .json = "{}", .len = 2, .if_absent = 1, .index = &tok, .n_index = 1};
    ct_store_version_info info;
    ct_error err = {0};
    assert_int_equal(ct_store_resource_write(st, &w, &info, &err), 0);
    assert_int_equal(info.version, 1);
    assert_int_equal(info.created, 1);
    assert_int_equal(ct_store_resource_write(st, &w, &info, &err), CT_EEXIST);
    assert_int_equal(info.version, 1);
    w.if_absent = 0;
    w.if_match = 3;
    assert_int_equal(ct_store_resource_write(st, &w, &info, &err), CT_EEXIST);
    assert_non_null(strstr(err.msg, "is at version 1, not 3"));
    w.if_match = 1;
    assert_int_equal(ct_store_resource_write(st, &w, &info, &err), 0);
    assert_int_equal(info.version, 2);
    assert_int_equal(info.created, 0);
    assert_string_equal(found(st, "status=final", 0, NULL), "w1");

    /* Delete: a marker version, the index gone, If-Match checked. */
    assert_int_equal(ct_store_resource_remove(st, "Observation", "w1", 1, &info, &err), CT_EEXIST);
    assert_int_equal(ct_store_resource_remove(st, "Observation", "w1", 2, &info, &err), 0);
    assert_int_equal(info.version, 3);
    assert_int_equal(info.deleted, 1);
    assert_string_equal(found(st, "status=final", 0, NULL), "");
    assert_int_equal(ct_store_resource_remove(st, "Observation", "w1", 0, &info, &err), 0);
    assert_int_equal(info.version, 3);
    assert_int_equal(ct_store_resource_remove(st, "Observation", "never", 0, &info, &err), CT_ENOTFOUND);
    /* If-Match on a deleted resource fails; a plain update brings it back. */
    w.if_match = 3;
    assert_int_equal(ct_store_resource_write(st, &w, &info, &err), CT_EEXIST);
    assert_int_equal(info.deleted, 1);
    w.if_match = 0;
    assert_int_equal(ct_store_resource_write(st, &w, &info, &err), 0);
    assert_int_equal(info.version, 4);
    assert_int_equal(info.created, 1);
    /* if_absent refuses a resource that existed, even deleted. */
    w.if_absent = 1;
    assert_int_equal(ct_store_resource_write(st, &w, &info, &err), CT_EEXIST);

    ct_store_rows rows;
    int64_t total = 0;
    assert_int_equal(ct_store_resource_history(st, "Observation", "w1", 0, 0, 2, &rows, &total, &err), 0);
    assert_int_equal(total, 4);
    assert_int_equal(rows.n, 2);
    assert_int_equal(rows.rows[0].version, 4);
    assert_int_equal(rows.rows[1].version, 3);
    assert_int_equal(rows.rows[1].deleted, 1);
    assert_null(rows.rows[1].json);
    ct_store_rows_free(&rows);
    assert_int_equal(ct_store_resource_history(st, "Observation", "w1", 0, 3, 10, &rows, &total, &err), 0);
    assert_int_equal(rows.n, 1);
    assert_int_equal(rows.rows[0].version, 1);
    assert_string_equal(rows.rows[0].json, "{}");
    ct_store_rows_free(&rows);
    assert_int_equal(ct_store_resource_history(st, "Observation", "w1", INT64_MAX / 2, 0, 10, &rows, &total, &err), 0);
    assert_int_equal(total, 0);
    ct_store_rows_free(&rows);
    assert_int_equal(ct_store_resource_history(st, "Observation", "none", 0, 0, 10, &rows, &total, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_resource_history(st, "Observation", "w1", 0, 0, CT_STORE_PAGE_MAX_ROWS + 1, &rows,
                                               &total, &err), CT_EINVAL);

    /* Entries the schema would refuse are refused before anything is written. */
    ct_store_index_entry bad[] = {
        {.param = "code", .kind = CT_STORE_INDEX_TOKEN, .code = ""},
        {.param = "date", .kind = CT_STORE_INDEX_DATE, .start_ms = 5, .end_ms = 5},
        {.param = "", .kind = CT_STORE_INDEX_TOKEN, .code = "x"},
        {.param = "subject", .kind = CT_STORE_INDEX_REFERENCE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ct_store_write wb = {.type = "Observation", .id = "bad", .json = "{}", .len = 2, .index = &bad[i], .n_index = 1};
        assert_int_equal(ct_store_resource_write(st, &wb, &info, &err), CT_EINVAL);
    }
    assert_int_equal(ct_store_resource_history(st, "Observation", "bad", 0, 0, 1, &rows, &total, &err), CT_ENOTFOUND);
}

static void test_date_prefixes_match_the_spec(void **state)
{
    ct_store *st = *state;
    /* Ranges of every width around 2021-06-15, open ends too. */
    const int64_t day = 86400000LL, t0 = ct_fhir_utc_ms(2021, 6, 15, 0, 0, 0, 0);
    struct {
        const char *id;
        int64_t s, e;
    } res[] = {
        {"ms", t0 + 12 * 3600000LL, t0 + 12 * 3600000LL + 1},
        {"sec", t0 - 1000, t0},
        {"day", t0, t0 + day},
        {"month", ct_fhir_utc_ms(2021, 6, 1, 0, 0, 0, 0), ct_fhir_utc_ms(2021, 7, 1, 0, 0, 0, 0)},
        {"span", t0 - 40 * day, t0 + 400 * day},
        {"openend", t0 + day / 2, CT_STORE_TIME_MAX},
        {"openstart", CT_STORE_TIME_MIN, t0 - 3 * day},
        {"early", ct_fhir_utc_ms(2019, 1, 1, 0, 0, 0, 0), ct_fhir_utc_ms(2019, 1, 2, 0, 0, 0, 0)},
        {"late", ct_fhir_utc_ms(2024, 2, 29, 23, 59, 59, 0), ct_fhir_utc_ms(2024, 3, 1, 0, 0, 0, 0)},
    };
    const size_t nres = sizeof res / sizeof res[0];
    for (size_t i = 0; i < nres; i++) {
        ct_store_index_entry e = {.param = "date", .kind = CT_STORE_INDEX_DATE, .start_ms = res[i].s, .end_ms = res[i].e};
        put(st, res[i].id, &e, 1);
    }
    put(st, "nodate", NULL, 0);
    const char *values[] = {"2021", "2021-06", "2021-06-15", "2021-06-15T12:00:00Z", "2021-06-15T12:00:00.000Z",
                            "2021-06-14T23:59:59Z", "2019-01-01", "2024-02-29T23:59:59Z", "2030"};
    static const char *const prefixes[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};
    const int64_t now = ct_fhir_utc_ms(2026, 11, 22, 0, 0, 0, 0);
    int checked = 0;
    for (size_t v = 0; v < sizeof values / sizeof values[0]; v++)
        for (int p = 0; p < 9; p++) {
            char q[96];
            snprintf(q, sizeof q, "date=%s%s&_sort=_id&_count=100", prefixes[p], values[v]);
            ct_fhir_search *s = NULL;
            ct_fhir_issue is;
            assert_int_equal(ct_fhir_search_parse("Observation", q, strlen(q), CT_FHIR_HANDLING_STRICT, &s, &is), 0);
            /* The spec's answer, by brute force, in id order. */
            const char *ids[16];
            size_t n = 0;
            for (size_t i = 0; i < nres; i++)
                if (ct_fhir_date_matches(s->clauses[0].values[0].prefix, &s->clauses[0].values[0].date, res[i].s, res[i].e, now))
                    ids[n++] = res[i].id;
            ct_fhir_search_free(s);
            for (size_t a = 0; a < n; a++)
                for (size_t b = a + 1; b < n; b++)
                    if (strcmp(ids[b], ids[a]) < 0) {
                        const char *t = ids[a];
                        ids[a] = ids[b];
                        ids[b] = t;
                    }
            char want[512] = "";
            for (size_t i = 0; i < n; i++) {
                strcat(want, i ? " " : "");
                strcat(want, ids[i]);
            }
            const char *got = found(st, q, now, NULL);
            if (strcmp(got, want) != 0)
                fail_msg("%s: store found \"%s\", the spec says \"%s\"", q, got, want);
            checked++;
        }
    assert_int_equal(checked, 81);
    /* A resource without the parameter is found by :missing only. */
    assert_string_equal(found(st, "date:missing=true", now, NULL), "nodate");
    int64_t total = 0;
    found(st, "date:missing=false&_count=0", now, &total);
    assert_int_equal(total, (int64_t)nres);
}

static void test_tokens_references_sort_paging_include(void **state)
{
    ct_store *st = *state;
    ct_store_index_entry a[] = {
        {.param = "code", .kind = CT_STORE_INDEX_TOKEN, .system = "http://loinc.org", .code = "8867-4"},
        {.param = "status", .kind = CT_STORE_INDEX_TOKEN, .system = "http://hl7.org/fhir/observation-status", .code = "final"},
        {.param = "subject", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Patient", .ref_id = "p1"},
        {.param = "patient", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Patient", .ref_id = "p1"},
        {.param = "date", .kind = CT_STORE_INDEX_DATE, .start_ms = 3000, .end_ms = 4000},
    };
    ct_store_index_entry b[] = {
        {.param = "code", .kind = CT_STORE_INDEX_TOKEN, .code = "local"},
        {.param = "status", .kind = CT_STORE_INDEX_TOKEN, .system = "http://hl7.org/fhir/observation-status", .code = "amended"},
        {.param = "subject", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Group", .ref_id = "p1"},
        {.param = "date", .kind = CT_STORE_INDEX_DATE, .start_ms = 1000, .end_ms = 2000},
    };
    ct_store_index_entry c[] = {
        {.param = "code", .kind = CT_STORE_INDEX_TOKEN, .system = "http://loinc.org", .code = "other"},
        {.param = "status", .kind = CT_STORE_INDEX_TOKEN, .system = "http://hl7.org/fhir/observation-status", .code = "final"},
        {.param = "subject", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Patient", .ref_id = "p2"},
        {.param = "patient", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Patient", .ref_id = "p2"},
        {.param = "date", .kind = CT_STORE_INDEX_DATE, .start_ms = 5000, .end_ms = 6000},
    };
    put(st, "a", a, 5);
    put(st, "b", b, 4);
    put(st, "c", c, 5);
    assert_string_equal(found(st, "code=http://loinc.org|8867-4", 0, NULL), "a");
    assert_string_equal(found(st, "code=8867-4", 0, NULL), "a");
    assert_string_equal(found(st, "code=|local", 0, NULL), "b");
    assert_string_equal(found(st, "code=|8867-4", 0, NULL), "");
    assert_string_equal(found(st, "code=http://loinc.org|&_sort=_id", 0, NULL), "a c");
    assert_string_equal(found(st, "code=8867-4,local&_sort=-_id", 0, NULL), "b a");
    assert_string_equal(found(st, "status=final&code=other", 0, NULL), "c");
    assert_string_equal(found(st, "subject=p1&_sort=_id", 0, NULL), "a b");
    assert_string_equal(found(st, "subject=Patient/p1", 0, NULL), "a");
    assert_string_equal(found(st, "subject:Group=p1", 0, NULL), "b");
    assert_string_equal(found(st, "patient=p1", 0, NULL), "a");
    assert_string_equal(found(st, "patient=Patient/p2/_history/4", 0, NULL), "c");
    assert_string_equal(found(st, "patient:missing=true", 0, NULL), "b");
    assert_string_equal(found(st, "_id=b,c&_sort=_id", 0, NULL), "b c");
    assert_string_equal(found(st, "_id:missing=true", 0, NULL), "");
    assert_string_equal(found(st, "_sort=date", 0, NULL), "b a c");
    assert_string_equal(found(st, "_sort=-date", 0, NULL), "c a b");
    assert_string_equal(found(st, "_sort=status,-date", 0, NULL), "b c a");
    assert_string_equal(found(st, "_lastUpdated=gt2000-01-01&_sort=_id", 0, NULL), "a b c");
    assert_string_equal(found(st, "_lastUpdated=lt2000-01-01", 0, NULL), "");
    int64_t total = 0;
    assert_string_equal(found(st, "_sort=date&_count=2&_offset=1", 0, &total), "a c");
    assert_int_equal(total, 3);
    assert_string_equal(found(st, "_sort=date&_count=0", 0, &total), "");
    assert_int_equal(total, 3);
    assert_string_equal(found(st, "_sort=date&_offset=5", 0, &total), "");
    assert_int_equal(total, 3);

    char ref[CT_FHIR_ID_MAX + 1];
    ct_error err = {0};
    assert_int_equal(ct_store_resource_reference(st, "Observation", "a", "patient", ref, sizeof ref, &err), 0);
    assert_string_equal(ref, "p1");
    assert_int_equal(ct_store_resource_reference(st, "Observation", "b", "patient", ref, sizeof ref, &err), CT_ENOTFOUND);

    /* _include: a DiagnosticReport's results, current and not deleted, once each. */
    ct_store_index_entry r1[] = {
        {.param = "result", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Observation", .ref_id = "a"},
        {.param = "result", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Observation", .ref_id = "c"},
        {.param = "result", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Observation", .ref_id = "gone"},
    };
    ct_store_index_entry r2[] = {
        {.param = "result", .kind = CT_STORE_INDEX_REFERENCE, .ref_type = "Observation", .ref_id = "a"},
    };
    ct_store_write w1 = {.type = "DiagnosticReport", .id = "r1", .json = "{}", .len = 2, .index = r1, .n_index = 3};
    ct_store_write w2 = {.type = "DiagnosticReport", .id = "r2", .json = "{}", .len = 2, .index = r2, .n_index = 1};
    ct_store_version_info info;
    assert_int_equal(ct_store_resource_write(st, &w1, &info, &err), 0);
    assert_int_equal(ct_store_resource_write(st, &w2, &info, &err), 0);
    put(st, "gone", NULL, 0);
    assert_int_equal(ct_store_resource_remove(st, "Observation", "gone", 0, &info, &err), 0);
    ct_store_search_clause none[1];
    (void)none;
    ct_store_sort_key by_id = {.field = CT_STORE_FIELD_ID};
    ct_store_search_query q = {.type = "DiagnosticReport", .n_sort = 1, .sort = &by_id, .count = 10,
                               .include_param = "result", .include_type = "Observation"};
    ct_store_search_result res;
    assert_int_equal(ct_store_search(st, &q, &res, &err), 0);
    assert_int_equal(res.total, 2);
    assert_int_equal(res.matches.n, 2);
    assert_int_equal(res.included.n, 2);
    assert_string_equal(res.included.rows[0].id, "a");
    assert_string_equal(res.included.rows[1].id, "c");
    ct_store_search_result_free(&res);

    /* Queries out of bounds are refused, not run. */
    q.count = CT_STORE_PAGE_MAX_ROWS + 1;
    assert_int_equal(ct_store_search(st, &q, &res, &err), CT_EINVAL);
    ct_store_search_result_free(&res);
    q.count = 1;
    q.include_type = NULL;
    assert_int_equal(ct_store_search(st, &q, &res, &err), CT_EINVAL);
    ct_store_search_result_free(&res);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_preconditions_and_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_date_prefixes_match_the_spec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens_references_sort_paging_include, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
