/* Users and logins against a real SQLite file: ct_http_user_* (users.c)
 * and ct_http_login / ct_http_logout (sessions.c) over the rows of
 * migrations/0006_users.sql. The password is stored only as a KDF output
 * with its parameters and salt, a wrong password and an unknown name get
 * the same answer, five failures lock the account (even against the right
 * password) until the lock ends or an operator unlocks it, each step has
 * its audit entry, a password stored with old parameters is re-hashed at
 * login, and the database refuses what must never happen. Tests use cheap
 * scrypt parameters except where the default is the point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

static const ct_audit_actor op = {"root", "operator", "cli"};
static const char pw[] = "correct horse battery";
static ct_http_kdf_params cheap;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ct-users.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/ct.db", f->dir);
    ct_error err = {0};
    if (ct_store_open(f->db, &f->st, &err) != CT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(cheap.kdf, sizeof cheap.kdf, "scrypt");
    cheap.cost = 1024;
    cheap.block = 8;
    cheap.parallel = 1;
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

static int64_t audit_size(ct_store *st)
{
    int64_t seq = 0;
    unsigned char h[32];
    assert_int_equal(ct_store_audit_last(st, &seq, h, NULL), 0);
    return seq;
}

static void last_audit(ct_store *st, ct_store_audit_row *row)
{
    assert_int_equal(ct_store_audit_get(st, audit_size(st), row, NULL), 0);
}

static int side_sql(const char *db, const char *sql)
{
    sqlite3 *c = NULL;
    assert_int_equal(sqlite3_open(db, &c), SQLITE_OK);
    int rc = sqlite3_exec(c, sql, NULL, NULL, NULL);
    sqlite3_close(c);
    return rc;
}

static void make_user(fixture *f, const char *name, const char *role, const ct_http_kdf_params *kdf,
                      ct_store_user *row)
{
    ct_http_user_spec spec = {.name = name, .role = role, .password = pw, .password_len = strlen(pw), .kdf = kdf};
    ct_error err = {0};
    int rc = ct_http_user_create(f->st, &spec, &op, row, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
}

/* 1 when the file holds the n bytes at p anywhere. */
static int file_holds(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return 0;
    static char buf[1 << 22];
    size_t got = fread(buf, 1, sizeof buf, fp);
    fclose(fp);
    for (size_t i = 0; i + n <= got; i++)
        if (memcmp(buf + i, p, n) == 0)
            return 1;
    return 0;
}

static void test_create_and_check(void **state)
{
    fixture *f = *state;
    int64_t before = audit_size(f->st);
    ct_store_user u;
    /* The default parameters: the real cost, measured in docs/security.md. */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    make_user(f, "alice", "clinician", NULL, &u);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    print_message("one scrypt N=2^17 r=8 p=1 hash (with the insert): %.0f ms\n", ms);
    assert_true(u.id > 0);
    assert_int_equal(audit_size(f->st), before + 1);
    ct_store_audit_row row;
    last_audit(f->st, &row);
    assert_string_equal(row.action, "user-create");
    assert_string_equal(row.actor, "root");
    assert_non_null(strstr(row.detail, "scrypt N=131072 r=8 p=1"));

    /* What is stored: the parameters, a 16-byte salt, a 32-byte hash. */
    ct_store_user got;
    assert_int_equal(ct_store_user_get_by_name(f->st, "alice", &got, NULL), 0);
    assert_string_equal(got.kdf, "scrypt");
    assert_int_equal(got.kdf_cost, 131072);
    assert_int_equal(got.kdf_block, 8);
    assert_int_equal(got.kdf_parallel, 1);
    assert_int_equal(got.salt_len, 16);
    assert_string_equal(ct_http_user_state(&got, 0), "active");
    int match = -1;
    ct_error err = {0};
    assert_int_equal(ct_http_password_check(&got, pw, strlen(pw), &match, &err), 0);
    assert_int_equal(match, 1);
    assert_int_equal(ct_http_password_check(&got, "correct horse batterY", strlen(pw), &match, &err), 0);
    assert_int_equal(match, 0);
    assert_int_equal(ct_http_password_check(&got, pw, strlen(pw) - 1, &match, &err), 0);
    assert_int_equal(match, 0);
    /* The password is nowhere in the database file or its WAL. */
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    assert_false(file_holds(f->db, pw, strlen(pw)));
    assert_false(file_holds(wal, pw, strlen(pw)));
    /* Two users with one password get different salts and hashes. */
    ct_store_user b;
    make_user(f, "bob", "admin", &cheap, &b);
    assert_memory_not_equal(b.salt, got.salt, 16);
    assert_memory_not_equal(b.hash, got.hash, 32);
}

static void test_create_refusals(void **state)
{
    fixture *f = *state;
    ct_store_user u;
    make_user(f, "alice", "clinician", &cheap, &u);
    int64_t before = audit_size(f->st);
    struct {
        const char *name, *role, *patient, *password;
        int rc;
        const char *says;
    } cases[] = {
        {"alice", "clinician", NULL, pw, CT_EEXIST, "already exists"},
        {"9lives", "clinician", NULL, pw, CT_EINVAL, "start with a letter"},
        {"a b", "clinician", NULL, pw, CT_EINVAL, "A-Z a-z"},
        {"carol", "device", NULL, pw, CT_EINVAL, "token"},
        {"carol", "root", NULL, pw, CT_EINVAL, "clinician, auditor or admin"},
        {"carol", "admin", "pat-1", pw, CT_EINVAL, "only a clinician"},
        {"carol", "clinician", "no-such-patient", pw, CT_ENOTFOUND, "no Patient/no-such-patient"},
        {"carol", "clinician", "bad id!", pw, CT_EINVAL, "FHIR id"},
        {"carol", "clinician", NULL, "short-pw-11", CT_EINVAL, "at least 12"},
        {"carol", "clinician", NULL, "twelve chars\nand a newline", CT_EINVAL, "control character"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_http_user_spec spec = {.name = cases[i].name, .role = cases[i].role, .patient = cases[i].patient,
                                  .password = cases[i].password, .password_len = strlen(cases[i].password),
                                  .kdf = &cheap};
        ct_error err = {0};
        int rc = ct_http_user_create(f->st, &spec, &op, NULL, &err);
        if (rc != cases[i].rc || !strstr(err.msg, cases[i].says))
            fail_msg("case %zu: rc %d (want %d), '%s' (want '%s')", i, rc, cases[i].rc, err.msg, cases[i].says);
    }
    /* 12 characters of UTF-8 (more bytes) is enough; 11 are not. */
    ct_http_user_spec spec = {.name = "dora", .role = "auditor", .password = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                                                                             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                                                                             "\xc3\xa9\xc3\xa9\xc3\xa9",
                              .kdf = &cheap};
    spec.password_len = strlen(spec.password);
    ct_error err = {0};
    assert_int_equal(ct_http_user_create(f->st, &spec, &op, NULL, &err), CT_EINVAL);
    assert_int_equal(audit_size(f->st), before);
    /* No operator: refused. */
    spec.password = pw;
    spec.password_len = strlen(pw);
    ct_audit_actor nobody = {"", "operator", "cli"};
    assert_int_equal(ct_http_user_create(f->st, &spec, &nobody, NULL, &err), CT_EINVAL);
    assert_int_equal(audit_size(f->st), before);
    assert_int_equal(ct_http_user_create(f->st, &spec, &op, NULL, &err), 0);
    assert_int_equal(audit_size(f->st), before + 1);
}

static int login(fixture *f, const char *name, const char *password, int64_t t_ms, ct_http_login_result *res)
{
    ct_error err = {0};
    int rc = ct_http_login(f->st, name, password, strlen(password), "10.0.0.7", "req-1", t_ms, &cheap, NULL, res,
                           &err);
    if (rc != 0)
        fail_msg("login: %s", err.msg);
    return res->outcome;
}

static void test_login_lockout(void **state)
{
    fixture *f = *state;
    ct_store_user u;
    make_user(f, "alice", "clinician", &cheap, &u);
    ct_http_login_result r;
    /* A day ahead of the clock: the locks made below are still in force
     * when ct_http_user_unlock reads the real clock. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = (int64_t)ts.tv_sec * 1000 + 86400000;
    int64_t n0 = audit_size(f->st);
    assert_int_equal(login(f, "alice", pw, t, &r), CT_HTTP_LOGIN_OK);
    assert_true(ct_http_secret_well_formed(r.cookie, strlen(r.cookie)));
    assert_int_equal(strlen(r.session.csrf), CT_HTTP_SECRET_LEN);
    assert_int_equal(r.session.expires_ms, t + CT_HTTP_SESSION_MAX_MS);
    assert_int_equal(r.session.idle_ms, CT_HTTP_SESSION_IDLE_MS);
    ct_store_audit_row row;
    last_audit(f->st, &row);
    assert_string_equal(row.action, "login");
    assert_string_equal(row.actor, "alice");
    assert_string_equal(row.client, "10.0.0.7");
    assert_string_equal(row.request_id, "req-1");
    assert_int_equal(row.outcome, 0);
    assert_int_equal(audit_size(f->st), n0 + 1);
    /* The session is found by the cookie's hash alone. */
    unsigned char h[32];
    assert_int_equal(ct_http_token_hash(r.cookie, strlen(r.cookie), h), 0);
    ct_store_session s;
    ct_store_user su;
    assert_int_equal(ct_store_session_find_hash(f->st, h, &s, &su, NULL), 0);
    assert_string_equal(su.name, "alice");
    assert_string_equal(s.csrf, r.session.csrf);
    char wal[160];
    snprintf(wal, sizeof wal, "%s-wal", f->db);
    assert_false(file_holds(f->db, r.cookie, strlen(r.cookie)));
    assert_false(file_holds(wal, r.cookie, strlen(r.cookie)));

    /* A wrong password and an unknown name: the same outcome. */
    assert_int_equal(login(f, "alice", "wrong password!", t, &r), CT_HTTP_LOGIN_REFUSED);
    last_audit(f->st, &row);
    assert_int_equal(row.outcome, CT_AUDIT_OUTCOME_SERIOUS_FAILURE);
    assert_string_equal(row.outcome_desc, "login refused: wrong password");
    assert_int_equal(login(f, "mallory", pw, t, &r), CT_HTTP_LOGIN_REFUSED);
    last_audit(f->st, &row);
    assert_string_equal(row.actor, "mallory");
    assert_string_equal(row.outcome_desc, "login refused: no such user");
    /* A name that cannot exist is not written as given (a password typed
     * in the name field). */
    assert_int_equal(login(f, "my secret pass", pw, t, &r), CT_HTTP_LOGIN_REFUSED);
    last_audit(f->st, &row);
    assert_string_equal(row.actor, "unknown");

    /* Four more failures: the fifth in a row locks, with its own entry. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(login(f, "alice", "wrong password!", t + i, &r), CT_HTTP_LOGIN_REFUSED);
    last_audit(f->st, &row);
    assert_non_null(strstr(row.outcome_desc, "account locked until"));
    assert_int_equal(ct_store_user_get_by_name(f->st, "alice", &u, NULL), 0);
    assert_int_equal(u.locked_until_ms, t + 3 + CT_HTTP_LOGIN_LOCK_MS);
    assert_string_equal(ct_http_user_state(&u, t + 4), "locked");
    /* Locked: even the right password, and the wait is told. */
    assert_int_equal(login(f, "alice", pw, t + 60000, &r), CT_HTTP_LOGIN_LOCKED);
    assert_int_equal(r.retry_after_ms, 3 + CT_HTTP_LOGIN_LOCK_MS - 60000);
    last_audit(f->st, &row);
    assert_string_equal(row.outcome_desc, "login refused: the account is locked");
    /* After the lock: the right password opens a session. */
    assert_int_equal(login(f, "alice", pw, t + 4 + CT_HTTP_LOGIN_LOCK_MS, &r), CT_HTTP_LOGIN_OK);
    assert_int_equal(ct_store_user_get_by_name(f->st, "alice", &u, NULL), 0);
    assert_int_equal(u.failed_count, 0);
    assert_int_equal(u.last_login_ms, t + 4 + CT_HTTP_LOGIN_LOCK_MS);

    /* Lock again, then an operator unlocks. */
    for (int i = 0; i < CT_HTTP_LOGIN_MAX_FAILURES; i++)
        login(f, "alice", "wrong password!", t + 2 * CT_HTTP_LOGIN_LOCK_MS, &r);
    assert_int_equal(login(f, "alice", pw, t + 2 * CT_HTTP_LOGIN_LOCK_MS, &r), CT_HTTP_LOGIN_LOCKED);
    int was = 0;
    int64_t n1 = audit_size(f->st);
    assert_int_equal(ct_http_user_unlock(f->st, "alice", &op, &was, NULL), 0);
    assert_int_equal(audit_size(f->st), n1 + 1);
    last_audit(f->st, &row);
    assert_string_equal(row.action, "user-update");
    assert_non_null(strstr(row.detail, "\"unlock\""));
    assert_int_equal(was, 1);
    assert_int_equal(login(f, "alice", pw, t + 2 * CT_HTTP_LOGIN_LOCK_MS, &r), CT_HTTP_LOGIN_OK);
    assert_int_equal(ct_http_user_unlock(f->st, "nobody", &op, &was, NULL), CT_ENOTFOUND);

    /* Logout ends the session once; a second logout writes nothing. */
    int64_t n2 = audit_size(f->st);
    assert_int_equal(ct_http_logout(f->st, r.session.id, "alice", "clinician", "", "10.0.0.7", "req-2", NULL), 0);
    assert_int_equal(audit_size(f->st), n2 + 1);
    last_audit(f->st, &row);
    assert_string_equal(row.action, "logout");
    assert_int_equal(ct_http_logout(f->st, r.session.id, "alice", "clinician", "", "10.0.0.7", "req-3", NULL), 0);
    assert_int_equal(audit_size(f->st), n2 + 1);
    assert_int_equal(ct_http_token_hash(r.cookie, strlen(r.cookie), h), 0);
    assert_int_equal(ct_store_session_find_hash(f->st, h, &s, NULL, NULL), 0);
    assert_true(s.ended_ms > 0);
    assert_string_equal(s.end_reason, "logout");
}

static void test_unknown_names_lock_too(void **state)
{
    fixture *f = *state;
    ct_http_limiter *l = ct_http_limiter_new();
    assert_non_null(l);
    ct_http_login_result r;
    ct_error err = {0};
    for (int i = 0; i < CT_HTTP_LOGIN_MAX_FAILURES; i++) {
        assert_int_equal(ct_http_login(f->st, "ghost", pw, strlen(pw), "10.0.0.8", "", 0, &cheap, l, &r, &err), 0);
        assert_int_equal(r.outcome, CT_HTTP_LOGIN_REFUSED);
    }
    assert_int_equal(ct_http_login(f->st, "ghost", pw, strlen(pw), "10.0.0.8", "", 0, &cheap, l, &r, &err), 0);
    assert_int_equal(r.outcome, CT_HTTP_LOGIN_LOCKED);
    assert_true(r.retry_after_ms > CT_HTTP_LOGIN_LOCK_MS - 60000 && r.retry_after_ms <= CT_HTTP_LOGIN_LOCK_MS);
    ct_http_limiter_free(l);
}

static void test_disable_and_passwd(void **state)
{
    fixture *f = *state;
    ct_store_user u;
    make_user(f, "alice", "clinician", &cheap, &u);
    ct_http_login_result r1, r2;
    assert_int_equal(login(f, "alice", pw, 0, &r1), CT_HTTP_LOGIN_OK);
    /* A new password ends the open session; the old password fails. */
    const char *pw2 = "another long passphrase";
    ct_error err = {0};
    assert_int_equal(ct_http_user_set_password(f->st, "alice", "too short", 9, &cheap, &op, &err), CT_EINVAL);
    assert_int_equal(ct_http_user_set_password(f->st, "alice", pw2, strlen(pw2), &cheap, &op, &err), 0);
    unsigned char h[32];
    ct_store_session s;
    assert_int_equal(ct_http_token_hash(r1.cookie, strlen(r1.cookie), h), 0);
    assert_int_equal(ct_store_session_find_hash(f->st, h, &s, NULL, NULL), 0);
    assert_string_equal(s.end_reason, "password");
    assert_int_equal(login(f, "alice", pw, 0, &r2), CT_HTTP_LOGIN_REFUSED);
    assert_int_equal(login(f, "alice", pw2, 0, &r2), CT_HTTP_LOGIN_OK);
    assert_int_equal(ct_http_user_set_password(f->st, "zed", pw2, strlen(pw2), &cheap, &op, &err), CT_ENOTFOUND);

    /* Disabling ends sessions, refuses logins like a wrong password, and
     * is final. */
    int already = -1;
    int64_t n = audit_size(f->st);
    assert_int_equal(ct_http_user_disable(f->st, "alice", &op, &already, &err), 0);
    assert_int_equal(already, 0);
    assert_int_equal(audit_size(f->st), n + 1);
    assert_int_equal(ct_http_token_hash(r2.cookie, strlen(r2.cookie), h), 0);
    assert_int_equal(ct_store_session_find_hash(f->st, h, &s, NULL, NULL), 0);
    assert_string_equal(s.end_reason, "disabled");
    assert_int_equal(login(f, "alice", pw2, 0, &r2), CT_HTTP_LOGIN_REFUSED);
    assert_int_equal(ct_http_user_disable(f->st, "alice", &op, &already, &err), 0);
    assert_int_equal(already, 1);
    assert_int_equal(audit_size(f->st), n + 2); /* the refused login, no second disable */
    assert_int_equal(ct_http_user_set_password(f->st, "alice", pw2, strlen(pw2), &cheap, &op, &err), CT_EINVAL);
    assert_int_equal(ct_store_user_get_by_name(f->st, "alice", &u, NULL), 0);
    assert_string_equal(ct_http_user_state(&u, 0), "disabled");
    /* The name is never given again. */
    ct_http_user_spec spec = {.name = "alice", .role = "admin", .password = pw, .password_len = strlen(pw),
                              .kdf = &cheap};
    assert_int_equal(ct_http_user_create(f->st, &spec, &op, NULL, &err), CT_EEXIST);
}

static void test_rehash_on_login(void **state)
{
    fixture *f = *state;
    ct_store_user u;
    ct_http_kdf_params old;
    snprintf(old.kdf, sizeof old.kdf, "pbkdf2-sha256");
    old.cost = 1000;
    old.block = 1;
    old.parallel = 1;
    make_user(f, "alice", "clinician", &old, &u);
    ct_http_login_result r;
    assert_int_equal(login(f, "alice", pw, 0, &r), CT_HTTP_LOGIN_OK);
    ct_store_user now;
    assert_int_equal(ct_store_user_get_by_name(f->st, "alice", &now, NULL), 0);
    assert_string_equal(now.kdf, "scrypt");
    assert_int_equal(now.kdf_cost, cheap.cost);
    assert_memory_not_equal(now.salt, u.salt, 16);
    ct_store_audit_row row;
    last_audit(f->st, &row);
    assert_non_null(strstr(row.detail, "\"rehashed\":\"scrypt\""));
    /* The new hash still opens. */
    assert_int_equal(login(f, "alice", pw, 0, &r), CT_HTTP_LOGIN_OK);
    last_audit(f->st, &row);
    assert_null(strstr(row.detail, "rehashed"));
}

static void test_database_refuses(void **state)
{
    fixture *f = *state;
    ct_store_user u;
    make_user(f, "alice", "clinician", &cheap, &u);
    assert_int_not_equal(side_sql(f->db, "DELETE FROM app_user"), SQLITE_OK);
    assert_int_not_equal(side_sql(f->db, "UPDATE app_user SET role = 'admin'"), SQLITE_OK);
    assert_int_not_equal(side_sql(f->db, "UPDATE app_user SET name = 'eve'"), SQLITE_OK);
    assert_int_equal(ct_http_user_disable(f->st, "alice", &op, NULL, NULL), 0);
    assert_int_not_equal(side_sql(f->db, "UPDATE app_user SET disabled_ms = NULL, disabled_by = NULL"), SQLITE_OK);
    assert_int_not_equal(side_sql(f->db, "UPDATE app_user SET kdf = 'md5'"), SQLITE_OK);
    /* A row with absurd KDF parameters (written behind the server's back)
     * is refused before OpenSSL runs, never a crash or 1 TiB. */
    assert_int_equal(side_sql(f->db, "UPDATE app_user SET kdf_cost = 1099511627776"), SQLITE_OK);
    assert_int_equal(ct_store_user_get_by_name(f->st, "alice", &u, NULL), 0);
    int match = -1;
    ct_error err = {0};
    assert_int_equal(ct_http_password_check(&u, pw, strlen(pw), &match, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "user alice"));
    assert_int_equal(match, 0);
    /* A salt of the wrong size is a database error naming the user. */
    assert_int_not_equal(side_sql(f->db, "UPDATE app_user SET salt = x'00'"), SQLITE_OK);
}

static void test_audit_chain_verifies(void **state)
{
    fixture *f = *state;
    ct_store_user u;
    make_user(f, "alice", "clinician", &cheap, &u);
    ct_http_login_result r;
    login(f, "alice", pw, 0, &r);
    login(f, "alice", "nope nope nope", 0, &r);
    ct_http_user_unlock(f->st, "alice", &op, NULL, NULL);
    ct_http_user_disable(f->st, "alice", &op, NULL, NULL);
    ct_audit_report rep;
    ct_error err = {0};
    assert_int_equal(ct_audit_verify(f->st, 1, NULL, &rep, &err), 0);
    assert_int_equal(rep.ok, 1);
    assert_int_equal(rep.log_size, 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_and_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_lockout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_names_lock_too, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disable_and_passwd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rehash_on_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_database_refuses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_chain_verifies, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
