/* GET /fhir/AuditEvent's query building (src/http/fhir_auditevent.c): a
 * FHIR query parsed by the fhir room and mapped onto the store's audit
 * search, run against a real log written through the audit room, one
 * parameter at a time (every date prefix, patient, agent, action, subtype,
 * entity-type, outcome, _id, :missing), with the sort, the page limit and
 * the refusals; and the scope rule that keeps the log from clinicians and
 * from tokens bound to a patient. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/fhir_internal.h"
#include "cardiotwin/audit.h"

/* 2026-03-01T10:00:00Z and the minutes after it. */
#define T0 INT64_C(1772359200000)
#define MIN_MS INT64_C(60000)

typedef struct entry {
    int64_t t_ms;
    const char *actor, *action, *type, *id, *patient;
    int outcome;
    const char *detail;
    const char *request_id;
} entry;

static const entry log_entries[] = {
    /* 1 */ {T0, "dr-lee", "read", "Patient", "p1", "p1", 0, NULL, "r1"},
    /* 2 */ {T0 + 1 * MIN_MS, "gw-1", "create", "Observation", "o1", "p1", 0, NULL, "r2"},
    /* 3 */ {T0 + 2 * MIN_MS, "dr-lee", "search", "Observation", "", "p2", 0, "{\"query\":\"patient=p2\"}", "r3"},
    /* 4 */ {T0 + 3 * MIN_MS, "root", "export", "AuditEvent", "", "", 0, "{\"format\":\"fhir\"}", ""},
    /* 5 */ {T0 + 4 * MIN_MS, "gw-1", "update", "Observation", "o1", "p1", 8, NULL, "r5"},
    /* 6 */ {T0 + 60 * MIN_MS, "admin-1", "delete", "Device", "d1", "", 0, NULL, "r6"},
    /* 7 */ {T0 + 61 * MIN_MS, "dr-lee", "history", "Observation", "o1", "p1", 0, NULL, "r7"},
    /* 8 */ {T0 + 62 * MIN_MS, "aud-1", "audit-read", "AuditEvent", "", "", 0, NULL, "r8"},
    /* 9 */ {T0 + 63 * MIN_MS, "dr-lee", "search", "", "", "", 0, NULL, "r9"},
    /* 10 */ {T0 + 24 * 60 * MIN_MS, "root", "token-create", "", "", "", 0, NULL, ""},
};
#define N_ENTRIES (sizeof log_entries / sizeof log_entries[0])

static int setup(void **state)
{
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_store_open(":memory:", &st, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    for (size_t i = 0; i < N_ENTRIES; i++) {
        const entry *x = &log_entries[i];
        ct_audit_entry e;
        memset(&e, 0, sizeof e);
        e.time_ms = x->t_ms;
        e.actor = (ct_audit_actor){x->actor, "clinician", "127.0.0.1"};
        e.action = x->action;
        e.resource_type = x->type;
        e.resource_id = x->id;
        e.patient = x->patient;
        e.outcome = x->outcome;
        e.outcome_desc = x->outcome ? "refused" : "";
        e.request_id = x->request_id;
        e.detail = x->detail;
        if (ct_audit_append(st, &e, NULL, &err) != 0) {
            fprintf(stderr, "entry %zu: %s\n", i + 1, err.msg);
            return -1;
        }
    }
    *state = st;
    return 0;
}

static int teardown(void **state)
{
    ct_store_close(*state);
    return 0;
}

static ct_fhir_search *parse(const char *query)
{
    ct_fhir_search *s = NULL;
    ct_fhir_issue is;
    if (ct_fhir_search_parse("AuditEvent", query, strlen(query), CT_FHIR_HANDLING_STRICT, &s, &is) != 0)
        fail_msg("%s: %s", query, is.diagnostics);
    return s;
}

/* The seqs a query finds (a page of 100), space-separated. */
static const char *found(ct_store *st, const char *query)
{
    static char out[512];
    ct_fhir_search *s = parse(query);
    ct_http_audit_query *aq = malloc(sizeof *aq);
    assert_non_null(aq);
    ct_fhir_issue is;
    if (ct_http_audit_query_map(s, T0 + 30 * MIN_MS, aq, &is) != 0)
        fail_msg("%s: %s", query, is.diagnostics);
    int64_t seqs[CT_HTTP_AUDIT_PAGE_MAX], total = -1;
    size_t n = 0;
    ct_error err = {0};
    if (ct_store_audit_find(st, &aq->q, seqs, CT_HTTP_AUDIT_PAGE_MAX, &n, &total, &err) != 0)
        fail_msg("%s: %s", query, err.msg);
    if (aq->q.count > 0 && (int64_t)n > total)
        fail_msg("%s: %zu rows but a total of %lld", query, n, (long long)total);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%lld", i ? " " : "", (long long)seqs[i]);
    free(aq);
    ct_fhir_search_free(s);
    return out;
}

/* One query and the seqs it must find, newest first unless it sorts. */
typedef struct search_case {
    const char *query;
    const char *want;
} search_case;

static void check_found(ct_store *st, const search_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *got = found(st, cases[i].query);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("?%s: found \"%s\", expected \"%s\"", cases[i].query, got, cases[i].want);
    }
}

static void test_default_and_sort(void **state)
{
    static const search_case cases[] = {
        {"", "10 9 8 7 6 5 4 3 2 1"},
        {"_sort=date", "1 2 3 4 5 6 7 8 9 10"},
        {"_sort=-date", "10 9 8 7 6 5 4 3 2 1"},
        {"_count=3", "10 9 8"},
        {"_count=3&_offset=3", "7 6 5"},
        {"_count=3&_offset=9", "1"},
        {"_count=0", ""},
    };
    check_found(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_date_prefixes(void **state)
{
    static const search_case cases[] = {
        {"date=2026-03-01&_sort=date", "1 2 3 4 5 6 7 8 9"},
        {"date=eq2026-03-02&_sort=date", "10"},
        {"date=ne2026-03-01&_sort=date", "10"},
        {"date=2026-03-01T10:02:00Z", "3"},
        {"date=gt2026-03-01T10:02:00Z&_sort=date", "4 5 6 7 8 9 10"},
        {"date=sa2026-03-01T10:02:00Z&_sort=date", "4 5 6 7 8 9 10"},
        {"date=ge2026-03-01T10:02:00Z&_sort=date", "3 4 5 6 7 8 9 10"},
        {"date=lt2026-03-01T10:02:00Z&_sort=date", "1 2"},
        {"date=eb2026-03-01T10:02:00Z&_sort=date", "1 2"},
        {"date=le2026-03-01T10:02:00Z&_sort=date", "1 2 3"},
        /* A time in another zone is the same instant. */
        {"date=2026-03-01T11:02:00%2B01:00", "3"},
        /* Two clauses AND: a range. */
        {"date=ge2026-03-01T10:01:00Z&date=lt2026-03-01T10:04:00Z&_sort=date", "2 3 4"},
        /* Values of one clause OR. */
        {"date=2026-03-01T10:00:00Z,2026-03-02&_sort=date", "1 10"},
        /* ap: now is 10:30; the minute [11:00, 11:01) is widened by 3 minutes
         * on each side (10% of 30 minutes): [10:57, 11:04) holds 6 7 8 9;
         * [09:57, 10:04) holds 1 2 3 4 but not 10:04 (5). */
        {"date=ap2026-03-01T11:00Z&_sort=date", "6 7 8 9"},
        {"date=ap2026-03-01T10:00Z&_sort=date", "1 2 3 4"},
    };
    check_found(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_tokens(void **state)
{
    static const search_case cases[] = {
        {"patient=p1", "7 5 2 1"},
        {"patient=Patient/p2", "3"},
        {"patient=p1,p2", "7 5 3 2 1"},
        {"patient=nobody", ""},
        {"patient:missing=true", "10 9 8 6 4"},
        {"patient:missing=false", "7 5 3 2 1"},
        {"agent=dr-lee", "9 7 3 1"},
        {"agent=gw-1,root", "10 5 4 2"},
        {"agent=somesystem|dr-lee", ""},
        {"agent=dr-lee&patient=p1", "7 1"},
        /* action: C R U D E as each action's AuditEvent.action. */
        {"action=C", "10 2"},
        {"action=R", "8 7 4 1"},
        {"action=U", "5"},
        {"action=D", "6"},
        {"action=E", "9 3"},
        {"action=http://hl7.org/fhir/audit-event-action|D", "6"},
        {"action=other|D", ""},
        {"action=X", ""},
        /* subtype: the interaction, by the shape of the entry. */
        {"subtype=read", "1"},
        {"subtype=search-type", "3"},
        {"subtype=search-system", "9"},
        {"subtype=http://hl7.org/fhir/restful-interaction|history-instance", "7"},
        {"subtype=history-type", ""},
        {"subtype=110137", "10"},
        {"subtype=http://dicom.nema.org/resources/ontology/DCM|110137", "10"},
        /* cardiotwin's own action codes name an action whole. */
        {"subtype=search", "9 3"},
        {"subtype=https://cardiotwin.example/fhir/CodeSystem/audit-action|audit-read", "8"},
        {"subtype=https://cardiotwin.example/fhir/CodeSystem/audit-action|read", "1"},
        {"subtype=create,delete", "6 2"},
        {"subtype=nothing", ""},
        /* entity-type */
        {"entity-type=1", "7 5 3 2 1"},
        {"entity-type=http://terminology.hl7.org/CodeSystem/audit-entity-type|2", "8 7 6 5 4 3 2 1"},
        {"entity-type=4", "4 3"},
        {"entity-type=XrequestId", "9 8 7 6 5 3 2 1"},
        {"entity-type=Device", "6"},
        {"entity-type=http://hl7.org/fhir/resource-types|Observation", "7 5 3 2"},
        {"entity-type:missing=true", "10"},
        {"entity-type=9", ""},
        /* outcome and _id */
        {"outcome=8", "5"},
        {"outcome=0&agent=gw-1", "2"},
        {"outcome=3", ""},
        {"_id=4,6", "6 4"},
        {"_id=0", ""},
        {"_id=abc", ""},
        {"_id=99", ""},
        /* Everything at once. */
        {"patient=p1&agent=gw-1&action=U&date=ge2026-03-01&subtype=update&entity-type=2&outcome=8&_id=5", "5"},
    };
    check_found(*state, cases, sizeof cases / sizeof cases[0]);
}

static void test_map_shape(void **state)
{
    (void)state;
    ct_fhir_search *s = parse("date=ge2026-03-01T10:00:00Z&patient=p1&_sort=date&_count=500&_offset=7");
    ct_http_audit_query *aq = malloc(sizeof *aq);
    assert_non_null(aq);
    ct_fhir_issue is;
    assert_int_equal(ct_http_audit_query_map(s, T0, aq, &is), 0);
    assert_int_equal(aq->q.n_clauses, 2);
    assert_int_equal(aq->q.order, CT_STORE_AUDIT_TIME_ASC);
    assert_int_equal(aq->q.count, CT_HTTP_AUDIT_PAGE_MAX);
    assert_int_equal(aq->q.offset, 7);
    const ct_store_audit_cond *c = &aq->q.clauses[0].terms[0].c[0];
    assert_int_equal(c->col, CT_STORE_AUDIT_COL_TIME);
    assert_int_equal(c->op, CT_STORE_AUDIT_RANGE);
    assert_true(c->lo == T0 && c->hi == INT64_MAX);
    c = &aq->q.clauses[1].terms[0].c[0];
    assert_int_equal(c->col, CT_STORE_AUDIT_COL_PATIENT);
    assert_string_equal(c->text, "p1");
    /* The lowered _count is told. */
    int told = 0;
    for (size_t i = 0; i < s->n_issues; i++)
        told |= strstr(s->issues[i].diagnostics, "lowered to 100") != NULL;
    assert_true(told);
    char sql[2048];
    ct_error err = {0};
    assert_int_equal(ct_store_audit_query_sql(&aq->q, 0, sql, sizeof sql, &err), 0);
    assert_string_equal(sql, "SELECT seq FROM audit_log WHERE seq <= ? AND (((time_ms >= ? AND time_ms < ?))) AND "
                             "((patient = ?)) ORDER BY time_ms ASC, seq ASC LIMIT ? OFFSET ?");
    free(aq);
    ct_fhir_search_free(s);
}

static void test_refusals(void **state)
{
    (void)state;
    ct_fhir_search *s = NULL;
    ct_fhir_issue is;
    /* The fhir room's grammar: a bad date, an unknown parameter (strict), a bad sort. */
    static const char *const bad[] = {"date=2026-13-01", "date=xx2026", "unknown=1", "_sort=agent",
                                      "patient:exact=p1", "_count=-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ct_fhir_search_parse("AuditEvent", bad[i], strlen(bad[i]), CT_FHIR_HANDLING_STRICT, &s, &is) == 0)
            fail_msg("%s was accepted", bad[i]);
        assert_true(is.http_status >= 400 && is.http_status < 500);
        ct_fhir_search_free(s);
        s = NULL;
    }
    /* More parameters than the store's query takes. */
    char q[1024] = "";
    for (int i = 0; i < CT_STORE_AUDIT_MAX_CLAUSES + 1; i++)
        strcat(q, i ? "&agent=a" : "agent=a");
    s = parse(q);
    ct_http_audit_query *aq = malloc(sizeof *aq);
    assert_non_null(aq);
    assert_int_equal(ct_http_audit_query_map(s, T0, aq, &is), -1);
    assert_int_equal(is.http_status, 413);
    ct_fhir_search_free(s);
    /* More alternatives than it takes: every R action, many times. */
    strcpy(q, "action=R");
    for (int i = 0; i < 20; i++)
        strcat(q, ",R");
    s = parse(q);
    assert_int_equal(ct_http_audit_query_map(s, T0, aq, &is), -1);
    assert_int_equal(is.http_status, 413);
    assert_non_null(strstr(is.diagnostics, "alternatives"));
    ct_fhir_search_free(s);
    free(aq);
}

/* Who reaches the log: a scope naming AuditEvent, or the system/ wildcard; never the
 * user/ or patient/ wildcard, never a patient/ scope. */
static void test_scopes(void **state)
{
    (void)state;
    static const struct {
        const char *scopes;
        ct_http_grant want;
    } cases[] = {
        {"system/AuditEvent.rs", CT_HTTP_GRANT_ALL},
        {"user/AuditEvent.rs", CT_HTTP_GRANT_ALL},
        {"system/*.cruds", CT_HTTP_GRANT_ALL},
        {"user/*.rs", CT_HTTP_GRANT_NONE},
        {"patient/*.rs", CT_HTTP_GRANT_NONE},
        {"patient/AuditEvent.rs", CT_HTTP_GRANT_NONE},
        {"user/*.rs patient/AuditEvent.rs", CT_HTTP_GRANT_NONE},
        {"system/Observation.c system/Device.r", CT_HTTP_GRANT_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_http_grant g = ct_http_scopes_grant(cases[i].scopes, "AuditEvent", CT_HTTP_PERM_S);
        if (g != cases[i].want)
            fail_msg("%s: grant %d, expected %d", cases[i].scopes, (int)g, (int)cases[i].want);
    }
    /* The wildcard still reaches every other type. */
    assert_int_equal(ct_http_scopes_grant("user/*.rs", "Observation", CT_HTTP_PERM_S), CT_HTTP_GRANT_ALL);
    assert_int_equal(ct_http_scopes_grant("patient/*.rs", "Observation", CT_HTTP_PERM_R), CT_HTTP_GRANT_PATIENT);
}

/* An entry read back is the export's AuditEvent, with its seq as id. */
static void test_same_shape_as_export(void **state)
{
    ct_store *st = *state;
    ct_audit_record r;
    ct_error err = {0};
    assert_int_equal(ct_store_audit_get(st, 8, &r, &err), 0);
    json_t *ev = ct_audit_record_to_fhir(&r);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "id")), "8");
    json_t *type = json_object_get(ev, "type");
    assert_string_equal(json_string_value(json_object_get(type, "code")), "110101");
    assert_string_equal(json_string_value(json_object_get(ev, "action")), "R");
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_default_and_sort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_date_prefixes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test(test_map_shape),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_scopes),
        cmocka_unit_test_setup_teardown(test_same_shape_as_export, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
