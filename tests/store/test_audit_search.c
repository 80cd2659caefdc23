/* The audit log's search (src/store/audit_search.c): the SQL the query
 * data turns into (every value a parameter, the limits refused by name),
 * and the rows it finds in a real database: each operator, ORs and ANDs,
 * the three orders, paging, the snapshot bound and the total. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <unistd.h>

#include "cardiotwin/store.h"

static int seal(void *ctx, ct_store_audit_row *row, ct_error *err)
{
    (void)ctx;
    (void)err;
    memset(row->hash, (int)(row->seq & 0xff), 32);
    return 0;
}

typedef struct fixture_row {
    int64_t time_ms;
    const char *actor, *action, *type, *id, *patient;
    int outcome;
    const char *detail;
} fixture_row;

/* Times go back at 4 (a clock step): seq and time orders differ there. */
static const fixture_row rows[] = {
    {1000, "dr-lee", "read", "Patient", "p1", "p1", 0, NULL},
    {2000, "gw-1", "create", "Observation", "o1", "p1", 0, NULL},
    {3000, "dr-lee", "search", "Observation", "", "p2", 0, "{\"query\":\"patient=p2\"}"},
    {2500, "root", "export", "AuditEvent", "", "", 0, "{\"format\":\"fhir\"}"},
    {5000, "gw-1", "create", "Observation", "o2", "p2", 8, NULL},
    {6000, "aud-1", "audit-read", "AuditEvent", "", "", 0, NULL},
};
#define N_ROWS (sizeof rows / sizeof rows[0])

static int setup(void **state)
{
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_store_open(":memory:", &st, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    for (size_t i = 0; i < N_ROWS; i++) {
        ct_store_audit_row r;
        memset(&r, 0, sizeof r);
        r.time_ms = rows[i].time_ms;
        snprintf(r.actor, sizeof r.actor, "%s", rows[i].actor);
        snprintf(r.actor_role, sizeof r.actor_role, "role");
        snprintf(r.action, sizeof r.action, "%s", rows[i].action);
        snprintf(r.resource_type, sizeof r.resource_type, "%s", rows[i].type);
        snprintf(r.resource_id, sizeof r.resource_id, "%s", rows[i].id);
        snprintf(r.patient, sizeof r.patient, "%s", rows[i].patient);
        r.outcome = rows[i].outcome;
        if (rows[i].detail) {
            r.has_detail = 1;
            snprintf(r.detail, sizeof r.detail, "%s", rows[i].detail);
        }
        if (ct_store_audit_append_row(st, &r, seal, NULL, &err) != 0) {
            fprintf(stderr, "%s\n", err.msg);
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

/* The seqs found, space-separated, and the total. */
static const char *find(ct_store *st, const ct_store_audit_query *q, int64_t *total)
{
    static char out[256];
    int64_t seqs[CT_STORE_AUDIT_PAGE_MAX];
    size_t n = 0;
    ct_error err = {0};
    if (ct_store_audit_find(st, q, seqs, CT_STORE_AUDIT_PAGE_MAX, &n, total, &err) != 0)
        fail_msg("find: %s", err.msg);
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(out + used, sizeof out - used, "%s%lld", i ? " " : "", (long long)seqs[i]);
    return out;
}

static ct_store_audit_query page(int count)
{
    ct_store_audit_query q;
    memset(&q, 0, sizeof q);
    q.count = count;
    return q;
}

static void test_sql_text(void **state)
{
    (void)state;
    char sql[1024];
    ct_error err = {0};
    ct_store_audit_query q = page(10);
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), 0);
    assert_string_equal(sql, "SELECT seq FROM audit_log WHERE seq <= ? ORDER BY seq DESC LIMIT ? OFFSET ?");
    assert_int_equal(ct_store_audit_query_sql(&q, 1, sql, sizeof sql, &err), 0);
    assert_string_equal(sql, "SELECT count(*) FROM audit_log WHERE seq <= ?");

    /* patient = ? AND (time range OR actor/action pair OR nothing) */
    ct_store_audit_term t1 = {1, {{CT_STORE_AUDIT_COL_PATIENT, CT_STORE_AUDIT_EQ, "p1'; DROP TABLE x;--", 0, 0}}};
    ct_store_audit_term t2[3] = {
        {1, {{CT_STORE_AUDIT_COL_TIME, CT_STORE_AUDIT_RANGE, NULL, 5, 9}}},
        {2,
         {{CT_STORE_AUDIT_COL_ACTION, CT_STORE_AUDIT_EQ, "search", 0, 0},
          {CT_STORE_AUDIT_COL_RESOURCE_TYPE, CT_STORE_AUDIT_ABSENT, NULL, 0, 0}}},
        {0, {{0}}},
    };
    ct_store_audit_term t3[2] = {
        {1, {{CT_STORE_AUDIT_COL_TIME, CT_STORE_AUDIT_OUTSIDE, NULL, 1, 2}}},
        {1, {{CT_STORE_AUDIT_COL_DETAIL, CT_STORE_AUDIT_PRESENT, NULL, 0, 0}}},
    };
    q.n_clauses = 3;
    q.clauses[0] = (ct_store_audit_clause){1, &t1};
    q.clauses[1] = (ct_store_audit_clause){3, t2};
    q.clauses[2] = (ct_store_audit_clause){2, t3};
    q.order = CT_STORE_AUDIT_TIME_ASC;
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), 0);
    assert_string_equal(sql, "SELECT seq FROM audit_log WHERE seq <= ? AND ((patient = ?)) AND "
                             "(((time_ms >= ? AND time_ms < ?)) OR (action = ? AND resource_type = '') OR 0) AND "
                             "(((time_ms < ? OR time_ms >= ?)) OR (detail IS NOT NULL)) "
                             "ORDER BY time_ms ASC, seq ASC LIMIT ? OFFSET ?");
    q.order = CT_STORE_AUDIT_TIME_DESC;
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), 0);
    assert_non_null(strstr(sql, "ORDER BY time_ms DESC, seq DESC"));
    /* The value never reaches the text. */
    assert_null(strstr(sql, "DROP"));

    /* Too small a buffer. */
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, 40, &err), CT_ELIMIT);
}

static void test_sql_refused(void **state)
{
    (void)state;
    char sql[512];
    ct_error err = {0};
    ct_store_audit_query q = page(CT_STORE_AUDIT_PAGE_MAX + 1);
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "page of 201 entries"));
    q = page(-1);
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    q = page(1);
    q.offset = CT_STORE_AUDIT_OFFSET_MAX + 1;
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "offset"));
    q = page(1);
    q.order = (ct_store_audit_order)7;
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    q = page(1);
    q.n_clauses = CT_STORE_AUDIT_MAX_CLAUSES + 1;
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "clauses"));
    q = page(1);
    q.n_clauses = 1;
    q.clauses[0] = (ct_store_audit_clause){0, NULL};
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "no term"));

    static const struct {
        ct_store_audit_cond c;
        const char *msg;
    } bad[] = {
        {{CT_STORE_AUDIT_COL_ACTOR, CT_STORE_AUDIT_RANGE, NULL, 0, 1}, "actor is not a number column"},
        {{CT_STORE_AUDIT_COL_TIME, CT_STORE_AUDIT_PRESENT, NULL, 0, 0}, "time_ms is always present"},
        {{CT_STORE_AUDIT_COL_DETAIL, CT_STORE_AUDIT_EQ, "x", 0, 0}, "detail = needs a value"},
        {{CT_STORE_AUDIT_COL_PATIENT, CT_STORE_AUDIT_EQ, NULL, 0, 0}, "patient = needs a value"},
        {{(ct_store_audit_col)99, CT_STORE_AUDIT_EQ, "x", 0, 0}, "unknown column 99"},
        {{CT_STORE_AUDIT_COL_SEQ, (ct_store_audit_op)42, NULL, 0, 0}, "unknown operator 42"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ct_store_audit_term t = {1, {bad[i].c}};
        q.clauses[0] = (ct_store_audit_clause){1, &t};
        assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: %s", i, err.msg);
    }
    ct_store_audit_term big = {CT_STORE_AUDIT_TERM_CONDS + 1, {{0}}};
    q.clauses[0] = (ct_store_audit_clause){1, &big};
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    /* More terms than the query may hold in all. */
    static ct_store_audit_term many[CT_STORE_AUDIT_MAX_TERMS + 1];
    for (size_t i = 0; i < CT_STORE_AUDIT_MAX_TERMS + 1; i++)
        many[i] = (ct_store_audit_term){1, {{CT_STORE_AUDIT_COL_SEQ, CT_STORE_AUDIT_EQ, NULL, (int64_t)i, 0}}};
    q.clauses[0] = (ct_store_audit_clause){CT_STORE_AUDIT_MAX_TERMS + 1, many};
    assert_int_equal(ct_store_audit_query_sql(&q, 0, sql, sizeof sql, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "terms"));
    /* The largest query the limits allow fits the runner's buffer. */
    q.clauses[0] = (ct_store_audit_clause){CT_STORE_AUDIT_MAX_TERMS, many};
    for (size_t i = 0; i < CT_STORE_AUDIT_MAX_TERMS; i++) {
        many[i].n = CT_STORE_AUDIT_TERM_CONDS;
        for (size_t c = 0; c < CT_STORE_AUDIT_TERM_CONDS; c++)
            many[i].c[c] = (ct_store_audit_cond){CT_STORE_AUDIT_COL_OUTCOME, CT_STORE_AUDIT_OUTSIDE, NULL, 0, 1};
    }
    static char huge[16384];
    assert_int_equal(ct_store_audit_query_sql(&q, 0, huge, sizeof huge, &err), 0);
}

static void test_find(void **state)
{
    ct_store *st = *state;
    int64_t total = -1;
    ct_store_audit_query q = page(50);
    assert_string_equal(find(st, &q, &total), "6 5 4 3 2 1");
    assert_int_equal(total, 6);
    q.order = CT_STORE_AUDIT_TIME_ASC;
    assert_string_equal(find(st, &q, &total), "1 2 4 3 5 6");
    q.order = CT_STORE_AUDIT_TIME_DESC;
    assert_string_equal(find(st, &q, &total), "6 5 3 4 2 1");

    /* Paging, and the snapshot bound. */
    q = page(2);
    q.offset = 2;
    assert_string_equal(find(st, &q, &total), "4 3");
    assert_int_equal(total, 6);
    q.max_seq = 4;
    q.offset = 0;
    assert_string_equal(find(st, &q, &total), "4 3");
    assert_int_equal(total, 4);
    q.count = 0;
    assert_string_equal(find(st, &q, &total), "");
    assert_int_equal(total, 4);

    /* patient = p1 */
    q = page(50);
    ct_store_audit_term p1 = {1, {{CT_STORE_AUDIT_COL_PATIENT, CT_STORE_AUDIT_EQ, "p1", 0, 0}}};
    q.n_clauses = 1;
    q.clauses[0] = (ct_store_audit_clause){1, &p1};
    assert_string_equal(find(st, &q, &total), "2 1");
    assert_int_equal(total, 2);
    /* ... OR actor = root */
    ct_store_audit_term or2[2] = {p1, {1, {{CT_STORE_AUDIT_COL_ACTOR, CT_STORE_AUDIT_EQ, "root", 0, 0}}}};
    q.clauses[0] = (ct_store_audit_clause){2, or2};
    assert_string_equal(find(st, &q, &total), "4 2 1");
    /* ... AND time in [1500, 3000) */
    ct_store_audit_term tr = {1, {{CT_STORE_AUDIT_COL_TIME, CT_STORE_AUDIT_RANGE, NULL, 1500, 3000}}};
    q.n_clauses = 2;
    q.clauses[1] = (ct_store_audit_clause){1, &tr};
    assert_string_equal(find(st, &q, &total), "4 2");
    /* time outside [1500, 5500) */
    ct_store_audit_term out = {1, {{CT_STORE_AUDIT_COL_TIME, CT_STORE_AUDIT_OUTSIDE, NULL, 1500, 5500}}};
    q.n_clauses = 1;
    q.clauses[0] = (ct_store_audit_clause){1, &out};
    assert_string_equal(find(st, &q, &total), "6 1");
    /* A term of two conditions: a create of an Observation that failed. */
    ct_store_audit_term two = {2,
                               {{CT_STORE_AUDIT_COL_ACTION, CT_STORE_AUDIT_EQ, "create", 0, 0},
                                {CT_STORE_AUDIT_COL_OUTCOME, CT_STORE_AUDIT_EQ, NULL, 8, 0}}};
    q.clauses[0] = (ct_store_audit_clause){1, &two};
    assert_string_equal(find(st, &q, &total), "5");
    /* Presence: with a patient; without a resource id; with a detail. */
    ct_store_audit_term pres = {1, {{CT_STORE_AUDIT_COL_PATIENT, CT_STORE_AUDIT_ABSENT, NULL, 0, 0}}};
    q.clauses[0] = (ct_store_audit_clause){1, &pres};
    assert_string_equal(find(st, &q, &total), "6 4");
    pres.c[0] = (ct_store_audit_cond){CT_STORE_AUDIT_COL_DETAIL, CT_STORE_AUDIT_PRESENT, NULL, 0, 0};
    assert_string_equal(find(st, &q, &total), "4 3");
    pres.c[0] = (ct_store_audit_cond){CT_STORE_AUDIT_COL_DETAIL, CT_STORE_AUDIT_ABSENT, NULL, 0, 0};
    assert_string_equal(find(st, &q, &total), "6 5 2 1");
    pres.c[0] = (ct_store_audit_cond){CT_STORE_AUDIT_COL_RESOURCE_ID, CT_STORE_AUDIT_PRESENT, NULL, 0, 0};
    assert_string_equal(find(st, &q, &total), "5 2 1");
    pres.c[0] = (ct_store_audit_cond){CT_STORE_AUDIT_COL_SEQ, CT_STORE_AUDIT_EQ, NULL, 3, 0};
    assert_string_equal(find(st, &q, &total), "3");
    /* A term without conditions matches nothing. */
    ct_store_audit_term none = {0, {{0}}};
    q.clauses[0] = (ct_store_audit_clause){1, &none};
    assert_string_equal(find(st, &q, &total), "");
    assert_int_equal(total, 0);
}

static void test_find_args(void **state)
{
    ct_store *st = *state;
    ct_error err = {0};
    int64_t seqs[4];
    size_t n;
    ct_store_audit_query q = page(5);
    assert_int_equal(ct_store_audit_find(st, &q, seqs, 4, &n, NULL, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "room for 4"));
    assert_int_equal(ct_store_audit_find(NULL, &q, seqs, 4, &n, NULL, &err), CT_EINVAL);
}

/* The indexes of 0007 exist and the append-only triggers of 0002 are intact. */
static void test_schema(void **state)
{
    ct_store *st = *state;
    char path[] = "/tmp/ct_audit_search_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    ct_store *fst = NULL;
    ct_error oerr = {0};
    assert_int_equal(ct_store_open(path, &fst, &oerr), 0);
    ct_store_close(fst);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    static const char *const names[] = {"audit_log_by_actor", "audit_log_by_action", "audit_log_by_patient",
                                        "audit_log_by_time", "audit_log_no_update", "audit_log_no_delete",
                                        "audit_log_append_only"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        sqlite3_stmt *s = NULL;
        assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name = ?1", -1, &s, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(s, 1, names[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(s), SQLITE_ROW);
        if (sqlite3_column_int(s, 0) != 1)
            fail_msg("%s is missing from the schema", names[i]);
        sqlite3_finalize(s);
    }
    sqlite3_close(db);
    unlink(path);
    char wal[64];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);

    ct_store_audit_query q = page(1);
    ct_store_audit_term a = {1, {{CT_STORE_AUDIT_COL_ACTOR, CT_STORE_AUDIT_EQ, "gw-1", 0, 0}}};
    q.n_clauses = 1;
    q.clauses[0] = (ct_store_audit_clause){1, &a};
    int64_t total = 0;
    assert_string_equal(find(st, &q, &total), "5");
    assert_int_equal(total, 2);
    ct_store_audit_row r;
    memset(&r, 0, sizeof r);
    ct_error err = {0};
    assert_int_equal(ct_store_audit_get(st, 2, &r, &err), 0);
    assert_string_equal(r.actor, "gw-1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_text),
        cmocka_unit_test(test_sql_refused),
        cmocka_unit_test_setup_teardown(test_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_find_args, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
