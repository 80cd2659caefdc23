/* store/user_rows: the rows behind dashboard users and their login
 * sessions (migrations/0006_users.sql). The http room decides what a
 * password, a lockout and a session mean (src/http/users.c, sessions.c);
 * this file only moves rows, checking each field before SQLite would so
 * that a refusal names the field.
 *
 * The one idea: nothing stored here opens anything. A password is kept as
 * a KDF output with the parameters that made it (so that the cost can be
 * raised user by user), a session as the SHA-256 of the cookie the browser
 * holds, found through a unique index; rows are never deleted, only
 * disabled or ended, and triggers keep who a user is fixed. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USER_COLUMNS                                                                                  \
    "u.id, u.name, u.role, u.patient, u.kdf, u.kdf_cost, u.kdf_block, u.kdf_parallel, u.salt, u.hash," \
    " u.created_ms, u.created_by, u.password_ms, u.disabled_ms, u.disabled_by, u.failed_count,"        \
    " u.locked_until_ms, u.last_login_ms"
#define N_USER_COLUMNS 18
#define SESSION_COLUMNS                                                                                  \
    "s.id, s.cookie_sha256, s.user_id, s.csrf, s.client, s.created_ms, s.last_seen_ms, s.idle_ms," \
    " s.expires_ms, s.ended_ms, s.end_reason"

static const struct {
    enum ct_store_stmt_id id;
    const char *sql;
} user_sql[] = {
    {STMT_USER_INSERT,
     "INSERT INTO app_user(name, role, patient, kdf, kdf_cost, kdf_block, kdf_parallel, salt, hash, created_ms,"
     " created_by, password_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id"},
    {STMT_USER_GET, "SELECT " USER_COLUMNS " FROM app_user u WHERE u.id = ?1"},
    {STMT_USER_GET_BY_NAME, "SELECT " USER_COLUMNS " FROM app_user u WHERE u.name = ?1"},
    {STMT_USER_LIST, "SELECT " USER_COLUMNS " FROM app_user u ORDER BY u.id"},
    {STMT_USER_SET_PASSWORD,
     "UPDATE app_user SET kdf = ?2, kdf_cost = ?3, kdf_block = ?4, kdf_parallel = ?5, salt = ?6, hash = ?7,"
     " password_ms = ?8, failed_count = 0, locked_until_ms = 0 WHERE id = ?1"},
    {STMT_USER_DISABLE,
     "UPDATE app_user SET disabled_ms = ?2, disabled_by = ?3 WHERE id = ?1 AND disabled_ms IS NULL"},
    {STMT_USER_LOGIN_STATE,
     "UPDATE app_user SET failed_count = ?2, locked_until_ms = ?3,"
     " last_login_ms = CASE WHEN ?4 > 0 THEN ?4 ELSE last_login_ms END WHERE id = ?1"},
    {STMT_SESSION_INSERT,
     "INSERT INTO app_session(cookie_sha256, user_id, csrf, client, created_ms, last_seen_ms, idle_ms, expires_ms)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id"},
    {STMT_SESSION_FIND_HASH,
     "SELECT " SESSION_COLUMNS ", " USER_COLUMNS
     " FROM app_session s JOIN app_user u ON u.id = s.user_id WHERE s.cookie_sha256 = ?1"},
    /* The interval test is in the WHERE, so that two workers stamping the
     * same session at once write once. */
    {STMT_SESSION_TOUCH,
     "UPDATE app_session SET last_seen_ms = ?2 WHERE id = ?1 AND ended_ms IS NULL AND last_seen_ms <= ?2 - ?3"},
    {STMT_SESSION_END,
     "UPDATE app_session SET ended_ms = ?2, end_reason = ?3 WHERE id = ?1 AND ended_ms IS NULL"},
    {STMT_SESSION_END_USER,
     "UPDATE app_session SET ended_ms = ?2, end_reason = ?3 WHERE user_id = ?1 AND ended_ms IS NULL"},
};

static sqlite3_stmt *user_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err)
{
    if (!st->stmt[id]) {
        const char *sql = NULL;
        for (size_t i = 0; i < sizeof user_sql / sizeof user_sql[0]; i++)
            if (user_sql[i].id == id)
                sql = user_sql[i].sql;
        return ct_store_stmt_from(st, id, sql, "user", err);
    }
    return st->stmt[id];
}

/* ---- field checks (the schema's CHECKs, with a message that names the field) ---- */


static int check_kdf(const ct_store_user *u, ct_error *err)
{
    if (strcmp(u->kdf, "scrypt") != 0 && strcmp(u->kdf, "pbkdf2-sha256") != 0)
        return ct_error_set(err, CT_EINVAL, "user %s: KDF '%.15s' is not scrypt or pbkdf2-sha256", u->name, u->kdf);
    if (u->kdf_cost < 1 || u->kdf_block < 1 || u->kdf_parallel < 1)
        return ct_error_set(err, CT_EINVAL, "user %s: KDF parameters must be at least 1", u->name);
    if (u->salt_len < 16 || u->salt_len > CT_STORE_USER_SALT_MAX)
        return ct_error_set(err, CT_EINVAL, "user %s: a salt of %zu bytes is outside 16..%d", u->name, u->salt_len,
                            CT_STORE_USER_SALT_MAX);
    return CT_OK;
}

static int check_user(const ct_store_user *u, ct_error *err)
{
    if (!ct_store_name_ok(u->name, CT_STORE_USER_NAME_MAX))
        return ct_error_set(err, CT_EINVAL,
                            "user name '%.80s' must be 1 to %d of A-Z a-z 0-9 . _ - and start with a letter", u->name,
                            CT_STORE_USER_NAME_MAX);
    if (strcmp(u->role, "clinician") != 0 && strcmp(u->role, "auditor") != 0 && strcmp(u->role, "admin") != 0)
        return ct_error_set(err, CT_EINVAL, "user %s: role '%.15s' is not clinician, auditor or admin", u->name,
                            u->role);
    int rc = ct_store_check_text(u->created_by, sizeof u->created_by, 1, "user creator", err);
    if (rc != CT_OK)
        return rc;
    if (u->patient[0] && !ct_store_printable(u->patient))
        return ct_error_set(err, CT_EINVAL, "user %s: the patient id holds a space or control character", u->name);
    if (u->created_ms < 0)
        return ct_error_set(err, CT_EINVAL, "user %s: negative creation time", u->name);
    return check_kdf(u, err);
}

/* ---- rows ----------------------------------------------------------------------- */

/* Reads the user columns starting at column c0. */
static int read_user(ct_store *st, sqlite3_stmt *q, int c0, ct_store_user *u, ct_error *err)
{
    memset(u, 0, sizeof *u);
    u->id = sqlite3_column_int64(q, c0);
    int rc;
    if ((rc = ct_store_copy_text(st, q, c0 + 1, u->name, sizeof u->name, "app_user.name", err)) ||
        (rc = ct_store_copy_text(st, q, c0 + 2, u->role, sizeof u->role, "app_user.role", err)) ||
        (rc = ct_store_copy_text(st, q, c0 + 3, u->patient, sizeof u->patient, "app_user.patient", err)) ||
        (rc = ct_store_copy_text(st, q, c0 + 4, u->kdf, sizeof u->kdf, "app_user.kdf", err)))
        return rc;
    u->kdf_cost = sqlite3_column_int64(q, c0 + 5);
    u->kdf_block = sqlite3_column_int64(q, c0 + 6);
    u->kdf_parallel = sqlite3_column_int64(q, c0 + 7);
    int salt_len = sqlite3_column_bytes(q, c0 + 8);
    const void *salt = sqlite3_column_blob(q, c0 + 8);
    if (!salt || salt_len < 16 || salt_len > CT_STORE_USER_SALT_MAX)
        return ct_error_set(err, CT_EDB, "%s: user %lld: the stored salt is %d bytes, not 16..%d", st->path,
                            (long long)u->id, salt_len, CT_STORE_USER_SALT_MAX);
    memcpy(u->salt, salt, (size_t)salt_len);
    u->salt_len = (size_t)salt_len;
    if (sqlite3_column_bytes(q, c0 + 9) != 32 || !sqlite3_column_blob(q, c0 + 9))
        return ct_error_set(err, CT_EDB, "%s: user %lld: the stored password hash is not 32 bytes", st->path,
                            (long long)u->id);
    memcpy(u->hash, sqlite3_column_blob(q, c0 + 9), 32);
    u->created_ms = sqlite3_column_int64(q, c0 + 10);
    if ((rc = ct_store_copy_text(st, q, c0 + 11, u->created_by, sizeof u->created_by, "app_user.created_by", err)))
        return rc;
    u->password_ms = sqlite3_column_int64(q, c0 + 12);
    u->disabled_ms = sqlite3_column_int64(q, c0 + 13);
    if ((rc = ct_store_copy_text(st, q, c0 + 14, u->disabled_by, sizeof u->disabled_by, "app_user.disabled_by",
                                 err)))
        return rc;
    u->failed_count = sqlite3_column_int64(q, c0 + 15);
    u->locked_until_ms = sqlite3_column_int64(q, c0 + 16);
    u->last_login_ms = sqlite3_column_int64(q, c0 + 17);
    return CT_OK;
}

static int read_session(ct_store *st, sqlite3_stmt *q, ct_store_session *s, ct_error *err)
{
    memset(s, 0, sizeof *s);
    s->id = sqlite3_column_int64(q, 0);
    if (sqlite3_column_bytes(q, 1) != 32 || !sqlite3_column_blob(q, 1))
        return ct_error_set(err, CT_EDB, "%s: session %lld: the stored cookie hash is not 32 bytes", st->path,
                            (long long)s->id);
    memcpy(s->cookie_sha256, sqlite3_column_blob(q, 1), 32);
    s->user_id = sqlite3_column_int64(q, 2);
    int rc;
    if ((rc = ct_store_copy_text(st, q, 3, s->csrf, sizeof s->csrf, "app_session.csrf", err)) ||
        (rc = ct_store_copy_text(st, q, 4, s->client, sizeof s->client, "app_session.client", err)))
        return rc;
    s->created_ms = sqlite3_column_int64(q, 5);
    s->last_seen_ms = sqlite3_column_int64(q, 6);
    s->idle_ms = sqlite3_column_int64(q, 7);
    s->expires_ms = sqlite3_column_int64(q, 8);
    s->ended_ms = sqlite3_column_int64(q, 9);
    return ct_store_copy_text(st, q, 10, s->end_reason, sizeof s->end_reason, "app_session.end_reason", err);
}

/* Steps a bound write; *changed says how many rows it changed, which the
 * caller turns into CT_ENOTFOUND or CT_EEXIST as the write means. */
static int step_write(ct_store *st, sqlite3_stmt *q, int *changed, const char *what, ct_error *err)
{
    int rc = sqlite3_step(q);
    *changed = sqlite3_changes(st->db);
    ct_store_stmt_done(q);
    if (rc != SQLITE_DONE)
        return ct_store_db_error(st, err, "%s: %s", st->path, what);
    return CT_OK;
}

static int insert_user_op(ct_store *st, ct_store_user *u, ct_error *err)
{
    sqlite3_stmt *q = user_stmt(st, STMT_USER_INSERT, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_text(q, 1, u->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, u->role, -1, SQLITE_STATIC);
    if (u->patient[0])
        sqlite3_bind_text(q, 3, u->patient, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, 3);
    sqlite3_bind_text(q, 4, u->kdf, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, u->kdf_cost);
    sqlite3_bind_int64(q, 6, u->kdf_block);
    sqlite3_bind_int64(q, 7, u->kdf_parallel);
    sqlite3_bind_blob(q, 8, u->salt, (int)u->salt_len, SQLITE_STATIC);
    sqlite3_bind_blob(q, 9, u->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(q, 10, u->created_ms);
    sqlite3_bind_text(q, 11, u->created_by, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 12, u->password_ms);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc == SQLITE_ROW) {
        u->id = sqlite3_column_int64(q, 0);
        rc = sqlite3_step(q);
    }
    if (rc != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(st->db);
        if (ext == SQLITE_CONSTRAINT_UNIQUE)
            out = ct_error_set(err, CT_EEXIST, "a user named %s already exists (names are never reused)", u->name);
        else
            out = ct_store_db_error(st, err, "%s: inserting user %s", st->path, u->name);
    }
    ct_store_stmt_done(q);
    return out;
}

int ct_store_user_insert(ct_store *st, ct_store_user *u, ct_error *err)
{
    if (!st || !u)
        return ct_error_set(err, CT_EINVAL, "ct_store_user_insert: missing argument");
    int rc = check_user(u, err);
    if (rc != CT_OK)
        return rc;
    if (u->created_ms == 0)
        u->created_ms = ct_store_now_ms();
    if (u->password_ms == 0)
        u->password_ms = u->created_ms;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    rc = ct_store_op_end(st, insert_user_op(st, u, err), err);
    if (rc != CT_OK)
        u->id = 0;
    return rc;
}

static int get_user_one(ct_store *st, sqlite3_stmt *q, ct_store_user *out, const char *what, ct_error *err)
{
    int rc = sqlite3_step(q);
    int res;
    if (rc == SQLITE_ROW)
        res = read_user(st, q, 0, out, err);
    else if (rc == SQLITE_DONE)
        res = ct_error_set(err, CT_ENOTFOUND, "no user %s", what);
    else
        res = ct_store_db_error(st, err, "%s: reading user %s", st->path, what);
    ct_store_stmt_done(q);
    return res;
}

int ct_store_user_get(ct_store *st, int64_t id, ct_store_user *out, ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_user_get: missing argument");
    sqlite3_stmt *q = user_stmt(st, STMT_USER_GET, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    char what[32];
    snprintf(what, sizeof what, "%lld", (long long)id);
    return get_user_one(st, q, out, what, err);
}

int ct_store_user_get_by_name(ct_store *st, const char *name, ct_store_user *out, ct_error *err)
{
    if (!st || !name || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_user_get_by_name: missing argument");
    if (!ct_store_name_ok(name, CT_STORE_USER_NAME_MAX))
        return ct_error_set(err, CT_ENOTFOUND, "no user %.80s (a user name starts with a letter)", name);
    sqlite3_stmt *q = user_stmt(st, STMT_USER_GET_BY_NAME, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    return get_user_one(st, q, out, name, err);
}

int ct_store_user_list(ct_store *st, ct_store_user **out, size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_user_list: missing argument");
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *q = user_stmt(st, STMT_USER_LIST, err);
    if (!q)
        return CT_EDB;
    ct_store_user *v = NULL;
    size_t n = 0, cap = 0;
    int res = CT_OK, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 16) != 0) {
            res = ct_error_set(err, CT_ENOMEM, "out of memory listing %zu users", n);
            break;
        }
        if ((res = read_user(st, q, 0, &v[n], err)) != CT_OK)
            break;
        n++;
    }
    if (res == CT_OK && rc != SQLITE_DONE)
        res = ct_store_db_error(st, err, "%s: listing users", st->path);
    ct_store_stmt_done(q);
    if (res != CT_OK) {
        free(v);
        return res;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}

static int set_password_op(ct_store *st, const ct_store_user *u, int64_t at_ms, ct_error *err)
{
    sqlite3_stmt *q = user_stmt(st, STMT_USER_SET_PASSWORD, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, u->id);
    sqlite3_bind_text(q, 2, u->kdf, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 3, u->kdf_cost);
    sqlite3_bind_int64(q, 4, u->kdf_block);
    sqlite3_bind_int64(q, 5, u->kdf_parallel);
    sqlite3_bind_blob(q, 6, u->salt, (int)u->salt_len, SQLITE_STATIC);
    sqlite3_bind_blob(q, 7, u->hash, 32, SQLITE_STATIC);
    sqlite3_bind_int64(q, 8, at_ms);
    int changed = 0;
    int rc = step_write(st, q, &changed, "setting a password", err);
    if (rc == CT_OK && !changed)
        rc = ct_error_set(err, CT_ENOTFOUND, "no user %lld", (long long)u->id);
    return rc;
}

int ct_store_user_set_password(ct_store *st, const ct_store_user *u, int64_t at_ms, ct_error *err)
{
    if (!st || !u)
        return ct_error_set(err, CT_EINVAL, "ct_store_user_set_password: missing argument");
    int rc = check_kdf(u, err);
    if (rc != CT_OK)
        return rc;
    if (at_ms <= 0)
        at_ms = ct_store_now_ms();
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, set_password_op(st, u, at_ms, err), err);
}

static int disable_op(ct_store *st, int64_t id, int64_t at_ms, const char *by, ct_error *err)
{
    sqlite3_stmt *q = user_stmt(st, STMT_USER_DISABLE, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, at_ms);
    sqlite3_bind_text(q, 3, by, -1, SQLITE_STATIC);
    int changed = 0;
    int rc = step_write(st, q, &changed, "disabling a user", err);
    if (rc != CT_OK || changed)
        return rc;
    ct_store_user u;
    ct_error gerr = {0};
    int g = ct_store_user_get(st, id, &u, &gerr);
    if (g == CT_ENOTFOUND)
        return ct_error_set(err, CT_ENOTFOUND, "no user %lld", (long long)id);
    if (g != CT_OK)
        return ct_error_set(err, g, "%s", gerr.msg);
    return ct_error_set(err, CT_EEXIST, "user %s is already disabled", u.name);
}

int ct_store_user_disable(ct_store *st, int64_t id, int64_t at_ms, const char *by, ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_user_disable: missing argument");
    int rc = ct_store_check_text(by, 128, 1, "who disables the user", err);
    if (rc != CT_OK)
        return rc;
    if (at_ms <= 0)
        at_ms = ct_store_now_ms();
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, disable_op(st, id, at_ms, by, err), err);
}

static int login_state_op(ct_store *st, int64_t id, int64_t failed, int64_t locked_until, int64_t last_login,
                          ct_error *err)
{
    sqlite3_stmt *q = user_stmt(st, STMT_USER_LOGIN_STATE, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, failed);
    sqlite3_bind_int64(q, 3, locked_until);
    sqlite3_bind_int64(q, 4, last_login);
    int changed = 0;
    int rc = step_write(st, q, &changed, "recording a login", err);
    if (rc == CT_OK && !changed)
        rc = ct_error_set(err, CT_ENOTFOUND, "no user %lld", (long long)id);
    return rc;
}

int ct_store_user_set_login_state(ct_store *st, int64_t id, int64_t failed_count, int64_t locked_until_ms,
                                  int64_t last_login_ms, ct_error *err)
{
    if (!st || failed_count < 0 || locked_until_ms < 0)
        return ct_error_set(err, CT_EINVAL, "ct_store_user_set_login_state: bad argument");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, login_state_op(st, id, failed_count, locked_until_ms, last_login_ms, err), err);
}

/* ---- sessions ---------------------------------------------------------------------- */

static int insert_session_op(ct_store *st, ct_store_session *s, ct_error *err)
{
    sqlite3_stmt *q = user_stmt(st, STMT_SESSION_INSERT, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_blob(q, 1, s->cookie_sha256, 32, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, s->user_id);
    sqlite3_bind_text(q, 3, s->csrf, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, s->client, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 5, s->created_ms);
    sqlite3_bind_int64(q, 6, s->last_seen_ms);
    sqlite3_bind_int64(q, 7, s->idle_ms);
    sqlite3_bind_int64(q, 8, s->expires_ms);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc == SQLITE_ROW) {
        s->id = sqlite3_column_int64(q, 0);
        rc = sqlite3_step(q);
    }
    if (rc != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(st->db);
        if (ext == SQLITE_CONSTRAINT_FOREIGNKEY)
            out = ct_error_set(err, CT_ENOTFOUND, "a session for user %lld, who does not exist",
                               (long long)s->user_id);
        else if (ext == SQLITE_CONSTRAINT_UNIQUE)
            out = ct_error_set(err, CT_EEXIST, "a session with the same cookie hash already exists");
        else
            out = ct_store_db_error(st, err, "%s: inserting a session of user %lld", st->path,
                                    (long long)s->user_id);
    }
    ct_store_stmt_done(q);
    return out;
}

int ct_store_session_insert(ct_store *st, ct_store_session *s, ct_error *err)
{
    if (!st || !s)
        return ct_error_set(err, CT_EINVAL, "ct_store_session_insert: missing argument");
    size_t cl = strnlen(s->csrf, sizeof s->csrf);
    if (cl < 32 || cl >= sizeof s->csrf)
        return ct_error_set(err, CT_EINVAL, "session: the CSRF token is %zu characters, not 32..64", cl);
    int rc = ct_store_check_text(s->client, sizeof s->client, 0, "session client address", err);
    if (rc != CT_OK)
        return rc;
    if (s->created_ms <= 0)
        s->created_ms = ct_store_now_ms();
    if (s->last_seen_ms <= 0)
        s->last_seen_ms = s->created_ms;
    if (s->idle_ms <= 0 || s->expires_ms <= s->created_ms)
        return ct_error_set(err, CT_EINVAL, "session: idle time and expiry must lie after its creation");
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    rc = ct_store_op_end(st, insert_session_op(st, s, err), err);
    if (rc != CT_OK)
        s->id = 0;
    return rc;
}

int ct_store_session_find_hash(ct_store *st, const unsigned char sha256[32], ct_store_session *out,
                               ct_store_user *user, ct_error *err)
{
    if (!st || !sha256 || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_session_find_hash: missing argument");
    sqlite3_stmt *q = user_stmt(st, STMT_SESSION_FIND_HASH, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_blob(q, 1, sha256, 32, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int res;
    if (rc == SQLITE_ROW) {
        res = read_session(st, q, out, err);
        ct_store_user tmp;
        if (res == CT_OK)
            res = read_user(st, q, 11, user ? user : &tmp, err);
    } else if (rc == SQLITE_DONE) {
        /* Never the hash in a message: logs travel further than the
         * database, and the hash names the session. */
        res = ct_error_set(err, CT_ENOTFOUND, "no session with that cookie");
    } else {
        res = ct_store_db_error(st, err, "%s: reading a session", st->path);
    }
    ct_store_stmt_done(q);
    return res;
}

int ct_store_session_touch(ct_store *st, int64_t id, int64_t now_ms, int64_t min_interval_ms, ct_error *err)
{
    if (!st || now_ms <= 0 || min_interval_ms < 0)
        return ct_error_set(err, CT_EINVAL, "ct_store_session_touch: bad argument");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    sqlite3_stmt *q = user_stmt(st, STMT_SESSION_TOUCH, err);
    if (!q)
        return ct_store_op_end(st, CT_EDB, err);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, now_ms);
    sqlite3_bind_int64(q, 3, min_interval_ms);
    int changed = 0;
    return ct_store_op_end(st, step_write(st, q, &changed, "recording a session's request", err), err);
}

static int reason_ok(const char *r)
{
    return r && (strcmp(r, "logout") == 0 || strcmp(r, "disabled") == 0 || strcmp(r, "password") == 0);
}

int ct_store_session_end(ct_store *st, int64_t id, int64_t at_ms, const char *reason, int *ended, ct_error *err)
{
    if (ended)
        *ended = 0;
    if (!st || !reason_ok(reason))
        return ct_error_set(err, CT_EINVAL, "ct_store_session_end: missing argument or unknown reason");
    if (at_ms <= 0)
        at_ms = ct_store_now_ms();
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    sqlite3_stmt *q = user_stmt(st, STMT_SESSION_END, err);
    if (!q)
        return ct_store_op_end(st, CT_EDB, err);
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, at_ms);
    sqlite3_bind_text(q, 3, reason, -1, SQLITE_STATIC);
    int changed = 0;
    rc = step_write(st, q, &changed, "ending a session", err);
    if (rc == CT_OK && !changed) {
        /* Ended already, or never existed: only the second is an error. */
        sqlite3_stmt *e = NULL;
        if (sqlite3_prepare_v2(st->db, "SELECT 1 FROM app_session WHERE id = ?1", -1, &e, NULL) != SQLITE_OK) {
            rc = ct_store_db_error(st, err, "%s: looking a session up", st->path);
        } else {
            sqlite3_bind_int64(e, 1, id);
            int s = sqlite3_step(e);
            if (s == SQLITE_DONE)
                rc = ct_error_set(err, CT_ENOTFOUND, "no session %lld", (long long)id);
            else if (s != SQLITE_ROW)
                rc = ct_store_db_error(st, err, "%s: looking a session up", st->path);
        }
        sqlite3_finalize(e);
    }
    if (ended)
        *ended = changed > 0;
    return ct_store_op_end(st, rc, err);
}

int ct_store_session_end_user(ct_store *st, int64_t user_id, int64_t at_ms, const char *reason, int *n_ended,
                              ct_error *err)
{
    if (n_ended)
        *n_ended = 0;
    if (!st || !reason_ok(reason))
        return ct_error_set(err, CT_EINVAL, "ct_store_session_end_user: missing argument or unknown reason");
    if (at_ms <= 0)
        at_ms = ct_store_now_ms();
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    sqlite3_stmt *q = user_stmt(st, STMT_SESSION_END_USER, err);
    if (!q)
        return ct_store_op_end(st, CT_EDB, err);
    sqlite3_bind_int64(q, 1, user_id);
    sqlite3_bind_int64(q, 2, at_ms);
    sqlite3_bind_text(q, 3, reason, -1, SQLITE_STATIC);
    int changed = 0;
    rc = step_write(st, q, &changed, "ending a user's sessions", err);
    if (n_ended)
        *n_ended = changed;
    return ct_store_op_end(st, rc, err);
}
