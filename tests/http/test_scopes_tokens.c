/* Token lifecycle against a real SQLite file: ct_http_token_create and
 * ct_http_token_revoke (src/http/tokens.c) over the token rows
 * (src/store/token_rows.c, migrations/0005_tokens.sql). Only the hash is
 * stored, each change has its audit entry in the same transaction (and
 * none when the change is refused), names are never reused, and the
 * database itself refuses to un-revoke, rewrite or delete a token (checked
 * with a plain sqlite3 connection, as anyone holding the file could try). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "../../src/http/http_internal.h"
#include "cardiotwin/audit.h"
#include "cardiotwin/store.h"

typedef struct fixture {
    char dir[64];
    char db[128];
    ct_store *st;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ct-tokens.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/ct.db", f->dir);
    ct_error err = {0};
    if (ct_store_open(f->db, &f->st, &err) != CT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ct_store_close(f->st);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static const ct_audit_actor operator_actor = {"alice", "operator", "cli"};

static int64_t audit_size(ct_store *st)
{
    int64_t seq = 0;
    unsigned char h[32];
    assert_int_equal(ct_store_audit_last(st, &seq, h, NULL), 0);
    return seq;
}

/* One statement on a side connection; SQLITE_OK or the error code. */
static int side_sql(const char *db, const char *sql, char *msg, size_t cap)
{
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open(db, &c), SQLITE_OK);
    char *e = NULL;
    int rc = sqlite3_exec(c, sql, NULL, NULL, &e);
    if (msg)
        snprintf(msg, cap, "%s", e ? e : "");
    sqlite3_free(e);
    sqlite3_close(c);
    return rc;
}

static void hex(const unsigned char *h, char *out)
{
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", h[i]);
}

static void test_create_stores_only_the_hash(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    char tok[CT_HTTP_TOKEN_BUF];
    ct_store_token row;
    ct_http_token_spec spec = {.name = "ward3-gateway", .role = "device"};
    int64_t before = audit_size(f->st);
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &row, &err), 0);
    assert_true(ct_http_token_well_formed(tok, strlen(tok)));
    assert_true(row.id > 0);
    assert_string_equal(row.role, "device");
    assert_string_equal(row.scopes, "system/Observation.c system/Device.r");
    assert_string_equal(row.patient, "");
    assert_string_equal(row.created_by, "alice");
    assert_int_equal(row.expires_ms, 0);
    unsigned char h[32];
    assert_int_equal(ct_http_token_hash(tok, strlen(tok), h), 0);
    assert_memory_equal(row.sha256, h, 32);

    /* Found by its hash, and by nothing else. */
    ct_store_token found;
    assert_int_equal(ct_store_token_find_hash(f->st, h, &found, &err), 0);
    assert_int_equal(found.id, row.id);
    assert_string_equal(found.name, "ward3-gateway");
    h[0] ^= 1;
    assert_int_equal(ct_store_token_find_hash(f->st, h, &found, &err), CT_ENOTFOUND);

    /* One audit entry, by the operator, about the token, never holding it. */
    assert_int_equal(audit_size(f->st), before + 1);
    ct_audit_record rec;
    assert_int_equal(ct_store_audit_get(f->st, before + 1, &rec, &err), 0);
    assert_string_equal(rec.action, "token-create");
    assert_string_equal(rec.actor, "alice");
    assert_string_equal(rec.actor_role, "operator");
    assert_string_equal(rec.client, "cli");
    assert_non_null(strstr(rec.detail, "\"name\":\"ward3-gateway\""));
    assert_non_null(strstr(rec.detail, "\"role\":\"device\""));
    assert_null(strstr(rec.detail, tok));
    assert_null(strstr(rec.detail, tok + 3));
    char hx[65];
    hex(row.sha256, hx);
    assert_null(strstr(rec.detail, hx));

    /* Nowhere in the database file either (nor in its WAL). */
    ct_store_close(f->st);
    f->st = NULL;
    const char *suffixes[] = {"", "-wal"};
    for (int i = 0; i < 2; i++) {
        char path[160];
        snprintf(path, sizeof path, "%s%s", f->db, suffixes[i]);
        FILE *fp = fopen(path, "rb");
        if (!fp)
            continue;
        fseek(fp, 0, SEEK_END);
        long n = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        char *buf = malloc((size_t)n + 1);
        assert_non_null(buf);
        assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
        fclose(fp);
        buf[n] = '\0';
        for (long k = 0; k + 20 <= n; k++)
            if (memcmp(buf + k, tok + 3, 20) == 0)
                fail_msg("%s holds the token at byte %ld", path, k);
        free(buf);
    }
    assert_int_equal(ct_store_open(f->db, &f->st, &err), 0);
    ct_audit_report rep;
    assert_int_equal(ct_audit_verify(f->st, 1, NULL, &rep, &err), 0);
}

static void test_refusals_leave_nothing(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    char tok[CT_HTTP_TOKEN_BUF];
    ct_http_token_spec spec = {.name = "c1", .role = "clinician"};
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, NULL, &err), 0);
    int64_t audits = audit_size(f->st);
    static const struct {
        ct_http_token_spec spec;
        int code;
        const char *msg;
    } bad[] = {
        {{.name = "c1", .role = "clinician"}, CT_EEXIST, "already exists"},
        {{.name = "1abc", .role = "clinician"}, CT_EINVAL, "start with a letter"},
        {{.name = "", .role = "clinician"}, CT_EINVAL, "token name"},
        {{.name = "has space", .role = "clinician"}, CT_EINVAL, "token name"},
        {{.name = "x", .role = "root"}, CT_EINVAL, "device, clinician, auditor or admin"},
        {{.name = "x", .role = NULL}, CT_EINVAL, "role"},
        {{.name = "x", .role = "auditor", .patient = "p1"}, CT_EINVAL, "cannot be bound"},
        {{.name = "x", .role = "admin", .patient = "p1"}, CT_EINVAL, "cannot be bound"},
        {{.name = "x", .role = "clinician", .patient = "no such"}, CT_EINVAL, "not a FHIR id"},
        {{.name = "x", .role = "clinician", .patient = "p1"}, CT_ENOTFOUND, "no Patient/p1"},
        {{.name = "x", .role = "clinician", .expires_days = -1}, CT_EINVAL, "out of range"},
        {{.name = "x", .role = "clinician", .expires_days = CT_HTTP_TOKEN_MAX_DAYS + 1}, CT_EINVAL, "out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(tok, 'x', sizeof tok);
        ct_error_clear(&err);
        int rc = ct_http_token_create(f->st, &bad[i].spec, &operator_actor, tok, sizeof tok, NULL, &err);
        if (rc != bad[i].code || !strstr(err.msg, bad[i].msg))
            fail_msg("case %zu: %d '%s'", i, rc, err.msg);
        assert_string_equal(tok, ""); /* nothing handed out */
    }
    ct_store_token *list = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_token_list(f->st, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    free(list);
    assert_int_equal(audit_size(f->st), audits);

    /* No operator, a small buffer, a caller's open transaction. */
    ct_http_token_spec ok = {.name = "y", .role = "admin"};
    ct_audit_actor nobody = {"", "operator", "cli"};
    assert_int_equal(ct_http_token_create(f->st, &ok, &nobody, tok, sizeof tok, NULL, &err), CT_EINVAL);
    assert_int_equal(ct_http_token_create(f->st, &ok, NULL, tok, sizeof tok, NULL, &err), CT_EINVAL);
    assert_int_equal(ct_http_token_create(f->st, &ok, &operator_actor, tok, CT_HTTP_TOKEN_LEN, NULL, &err), CT_EINVAL);
    assert_int_equal(ct_store_begin(f->st, &err), 0);
    assert_int_equal(ct_http_token_create(f->st, &ok, &operator_actor, tok, sizeof tok, NULL, &err), CT_EINVAL);
    ct_store_rollback(f->st);

    /* The store's own checks, for callers that skip the http room's. */
    ct_store_token t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "z");
    snprintf(t.role, sizeof t.role, "superuser");
    snprintf(t.scopes, sizeof t.scopes, "system/*.cruds");
    snprintf(t.created_by, sizeof t.created_by, "alice");
    assert_int_equal(ct_store_token_insert(f->st, &t, &err), CT_EINVAL);
    snprintf(t.role, sizeof t.role, "admin");
    t.scopes[0] = '\0';
    assert_int_equal(ct_store_token_insert(f->st, &t, &err), CT_EINVAL);
    snprintf(t.scopes, sizeof t.scopes, "system/*.cruds");
    t.created_ms = 5000;
    t.expires_ms = 4000;
    assert_int_equal(ct_store_token_insert(f->st, &t, &err), CT_EINVAL);
    t.expires_ms = 0;
    assert_int_equal(ct_store_token_insert(f->st, &t, &err), 0);
    int64_t id = t.id;
    snprintf(t.name, sizeof t.name, "z2");
    assert_int_equal(ct_store_token_insert(f->st, &t, &err), CT_EEXIST); /* same (zero) hash */
    assert_non_null(strstr(err.msg, "same hash"));
    assert_int_equal(ct_store_token_get(f->st, id, &t, &err), 0);
    assert_string_equal(t.name, "z");
    assert_int_equal(ct_store_token_get(f->st, id + 100, &t, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_token_get_by_name(f->st, "nobody", &t, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_token_get_by_name(f->st, "9", &t, &err), CT_ENOTFOUND);
}

static void test_patient_and_expiry(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    char tok[CT_HTTP_TOKEN_BUF];
    ct_store_token row;
    const char *pat = "{\"resourceType\":\"Patient\",\"id\":\"pat-a\"}";
    int64_t v = 0;
    assert_int_equal(ct_store_resource_put(f->st, "Patient", "pat-a", pat, strlen(pat), &v, &err), 0);
    ct_http_token_spec spec = {
        .name = "cli-a", .role = "clinician", .patient = "pat-a", .expires_days = 30, .now_ms = 1700000000000};
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &row, &err), 0);
    assert_string_equal(row.scopes, "patient/*.rs");
    assert_string_equal(row.patient, "pat-a");
    assert_int_equal(row.created_ms, 1700000000000);
    assert_int_equal(row.expires_ms, 1700000000000 + 30LL * 86400000);
    assert_int_equal(ct_http_token_state_at(&row, row.expires_ms - 1), CT_HTTP_TOKEN_ACTIVE);
    assert_int_equal(ct_http_token_state_at(&row, row.expires_ms), CT_HTTP_TOKEN_EXPIRED);
    ct_audit_record rec;
    assert_int_equal(ct_store_audit_get(f->st, audit_size(f->st), &rec, &err), 0);
    assert_string_equal(rec.patient, "pat-a");
    assert_non_null(strstr(rec.detail, "\"expires\":\"2023-12-14T22:13:20.000Z\""));

    spec = (ct_http_token_spec){.name = "dev-a", .role = "device", .patient = "pat-a"};
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &row, &err), 0);
    assert_string_equal(row.scopes, "patient/Observation.c patient/Device.r");

    /* A deleted Patient cannot be bound to. */
    assert_int_equal(ct_store_resource_delete(f->st, "Patient", "pat-a", &v, &err), 0);
    spec = (ct_http_token_spec){.name = "cli-a2", .role = "clinician", .patient = "pat-a"};
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &row, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "deleted"));
}

static void test_revoke(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    char tok[CT_HTTP_TOKEN_BUF];
    ct_store_token a, b, row;
    ct_http_token_spec spec = {.name = "a", .role = "admin"};
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &a, &err), 0);
    spec.name = "b";
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &b, &err), 0);
    int64_t audits = audit_size(f->st);
    ct_audit_actor bob = {"bob", "operator", "cli"};
    int already = -1;
    assert_int_equal(ct_http_token_revoke(f->st, "a", &bob, &row, &already, &err), 0);
    assert_int_equal(already, 0);
    assert_int_equal(row.id, a.id);
    assert_true(row.revoked_ms > 0);
    assert_string_equal(row.revoked_by, "bob");
    assert_int_equal(audit_size(f->st), audits + 1);
    ct_audit_record rec;
    assert_int_equal(ct_store_audit_get(f->st, audits + 1, &rec, &err), 0);
    assert_string_equal(rec.action, "token-revoke");
    assert_string_equal(rec.actor, "bob");
    assert_non_null(strstr(rec.detail, "\"name\":\"a\""));

    /* The row says so; the state follows. */
    assert_int_equal(ct_store_token_find_hash(f->st, a.sha256, &row, &err), 0);
    assert_int_equal(ct_http_token_state_at(&row, row.revoked_ms + 1), CT_HTTP_TOKEN_REVOKED);

    /* Again: nothing written, and said so. */
    assert_int_equal(ct_http_token_revoke(f->st, "a", &bob, &row, &already, &err), 0);
    assert_int_equal(already, 1);
    assert_int_equal(audit_size(f->st), audits + 1);
    assert_int_equal(ct_store_token_revoke(f->st, a.id, 0, "bob", &err), CT_EEXIST);

    /* By id. */
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)b.id);
    assert_int_equal(ct_http_token_revoke(f->st, id, &bob, &row, &already, &err), 0);
    assert_string_equal(row.name, "b");
    assert_int_equal(audit_size(f->st), audits + 2);
    assert_int_equal(ct_http_token_revoke(f->st, "nobody", &bob, &row, &already, &err), CT_ENOTFOUND);
    assert_int_equal(ct_http_token_revoke(f->st, "999", &bob, &row, &already, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_token_revoke(f->st, 999, 0, "bob", &err), CT_ENOTFOUND);
    assert_int_equal(audit_size(f->st), audits + 2);

    /* A revoked name stays taken. */
    spec.name = "a";
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &row, &err), CT_EEXIST);
    ct_audit_report rep;
    assert_int_equal(ct_audit_verify(f->st, 1, NULL, &rep, &err), 0);
}

static void test_database_refuses_edits(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    char tok[CT_HTTP_TOKEN_BUF];
    ct_store_token t;
    ct_http_token_spec spec = {.name = "dev", .role = "device"};
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &t, &err), 0);
    char msg[256];
    static const char *const forbidden[] = {
        "UPDATE api_token SET role = 'admin'",
        "UPDATE api_token SET scopes = 'system/*.cruds'",
        "UPDATE api_token SET patient = 'p'",
        "UPDATE api_token SET expires_ms = 99999999999999",
        "UPDATE api_token SET name = 'other'",
        "UPDATE api_token SET token_sha256 = zeroblob(32)",
        "DELETE FROM api_token",
        "INSERT INTO api_token(name, token_sha256, role, scopes, created_ms, created_by)"
        " VALUES ('x', zeroblob(31), 'admin', 's', 1, 'a')",
        "INSERT INTO api_token(name, token_sha256, role, scopes, created_ms, created_by)"
        " VALUES ('x', zeroblob(32), 'root', 's', 1, 'a')",
        "INSERT INTO api_token(name, token_sha256, role, scopes, created_ms, created_by)"
        " VALUES ('9x', zeroblob(32), 'admin', 's', 1, 'a')",
        "INSERT INTO api_token(name, token_sha256, role, scopes, created_ms, created_by)"
        " VALUES ('x y', zeroblob(32), 'admin', 's', 1, 'a')",
    };
    for (size_t i = 0; i < sizeof forbidden / sizeof forbidden[0]; i++)
        if (side_sql(f->db, forbidden[i], msg, sizeof msg) == SQLITE_OK)
            fail_msg("the database accepted: %s", forbidden[i]);
    /* Revocation and last use are what may change; a revocation is final. */
    assert_int_equal(side_sql(f->db, "UPDATE api_token SET last_used_ms = 5", msg, sizeof msg), SQLITE_OK);
    assert_int_equal(side_sql(f->db, "UPDATE api_token SET revoked_ms = 7, revoked_by = 'x'", msg, sizeof msg),
                     SQLITE_OK);
    assert_int_not_equal(side_sql(f->db, "UPDATE api_token SET revoked_ms = NULL, revoked_by = NULL", msg, sizeof msg),
                         SQLITE_OK);
    assert_non_null(strstr(msg, "revocation is final"));
    assert_int_not_equal(side_sql(f->db, "UPDATE api_token SET revoked_ms = 8", msg, sizeof msg), SQLITE_OK);
    assert_int_not_equal(side_sql(f->db, "UPDATE api_token SET revoked_by = NULL", msg, sizeof msg), SQLITE_OK);
    assert_int_equal(ct_store_token_get(f->st, t.id, &t, &err), 0);
    assert_int_equal(t.revoked_ms, 7);
    assert_string_equal(t.role, "device");
}

static void test_touch(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    char tok[CT_HTTP_TOKEN_BUF];
    ct_store_token t;
    ct_http_token_spec spec = {.name = "busy", .role = "device"};
    assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, &t, &err), 0);
    assert_int_equal(t.last_used_ms, 0);
    int written = -1;
    int64_t t0 = 1800000000000;
    assert_int_equal(ct_store_token_touch(f->st, t.id, t0, 60000, &written, &err), 0);
    assert_int_equal(written, 1);
    assert_int_equal(ct_store_token_touch(f->st, t.id, t0 + 59999, 60000, &written, &err), 0);
    assert_int_equal(written, 0);
    assert_int_equal(ct_store_token_get(f->st, t.id, &t, &err), 0);
    assert_int_equal(t.last_used_ms, t0);
    assert_int_equal(ct_store_token_touch(f->st, t.id, t0 + 60000, 60000, &written, &err), 0);
    assert_int_equal(written, 1);
    assert_int_equal(ct_store_token_get(f->st, t.id, &t, &err), 0);
    assert_int_equal(t.last_used_ms, t0 + 60000);
    /* A use is not a token change: no audit entry. */
    int64_t audits = audit_size(f->st);
    assert_int_equal(ct_store_token_touch(f->st, t.id, t0 + 200000, 60000, &written, &err), 0);
    assert_int_equal(audit_size(f->st), audits);
    assert_int_equal(ct_store_token_touch(f->st, t.id, 0, 60000, &written, &err), CT_EINVAL);
    /* Inside a caller's transaction it is part of it. */
    assert_int_equal(ct_store_begin(f->st, &err), 0);
    assert_int_equal(ct_store_token_touch(f->st, t.id, t0 + 400000, 60000, &written, &err), 0);
    ct_store_rollback(f->st);
    assert_int_equal(ct_store_token_get(f->st, t.id, &t, &err), 0);
    assert_int_equal(t.last_used_ms, t0 + 200000);
}

static void test_list(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    char tok[CT_HTTP_TOKEN_BUF];
    ct_store_token *list = (ct_store_token *)1;
    size_t n = 9;
    assert_int_equal(ct_store_token_list(f->st, &list, &n, &err), 0);
    assert_null(list);
    assert_int_equal(n, 0);
    static const char *const names[] = {"r1", "r2", "r3", "r4"};
    static const char *const role[] = {"device", "clinician", "auditor", "admin"};
    for (int i = 0; i < 4; i++) {
        ct_http_token_spec spec = {.name = names[i], .role = role[i]};
        assert_int_equal(ct_http_token_create(f->st, &spec, &operator_actor, tok, sizeof tok, NULL, &err), 0);
    }
    assert_int_equal(ct_store_token_list(f->st, &list, &n, &err), 0);
    assert_int_equal(n, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(list[i].name, names[i]);
        assert_string_equal(list[i].role, role[i]);
        assert_string_equal(list[i].scopes, ct_http_role_lookup(role[i])->scopes);
        assert_true(i == 0 || list[i].id > list[i - 1].id);
    }
    free(list);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_stores_only_the_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_leave_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patient_and_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_refuses_edits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_touch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
