/* store/token_rows: the rows behind the API's bearer tokens
 * (migrations/0005_tokens.sql). The http room decides what a token is,
 * how it is made and what it grants (src/http/tokens.c, scopes.c); this
 * file only moves rows, checking each field before SQLite would so that a
 * refusal names the field.
 *
 * The one idea: a token is found by the SHA-256 of what the client
 * presented, through the unique index on token_sha256, so the secret itself
 * is never stored, never compared byte by byte in C, and never needed to
 * list, revoke or audit a token. Every write is one operation (its own
 * transaction or a savepoint of the caller's), so that the http room can
 * put a token row and its audit entry in one transaction. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_COLUMNS                                                                              \
    "id, name, token_sha256, role, scopes, patient, created_ms, created_by, expires_ms, revoked_ms," \
    " revoked_by, last_used_ms"

static const struct {
    enum ct_store_stmt_id id;
    const char *sql;
} token_sql[] = {
    {STMT_TOKEN_INSERT,
     "INSERT INTO api_token(name, token_sha256, role, scopes, patient, created_ms, created_by, expires_ms)"
     " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id"},
    {STMT_TOKEN_FIND_HASH, "SELECT " TOKEN_COLUMNS " FROM api_token WHERE token_sha256 = ?1"},
    {STMT_TOKEN_GET, "SELECT " TOKEN_COLUMNS " FROM api_token WHERE id = ?1"},
    {STMT_TOKEN_GET_BY_NAME, "SELECT " TOKEN_COLUMNS " FROM api_token WHERE name = ?1"},
    {STMT_TOKEN_LIST, "SELECT " TOKEN_COLUMNS " FROM api_token ORDER BY id"},
    {STMT_TOKEN_REVOKE,
     "UPDATE api_token SET revoked_ms = ?2, revoked_by = ?3 WHERE id = ?1 AND revoked_ms IS NULL"},
    /* The interval test is in the WHERE, so that two workers stamping the
     * same token at once write once. */
    {STMT_TOKEN_TOUCH,
     "UPDATE api_token SET last_used_ms = ?2 WHERE id = ?1"
     " AND (last_used_ms IS NULL OR last_used_ms <= ?2 - ?3)"},
};

static sqlite3_stmt *token_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err)
{
    if (!st->stmt[id]) {
        const char *sql = NULL;
        for (size_t i = 0; i < sizeof token_sql / sizeof token_sql[0]; i++)
            if (token_sql[i].id == id)
                sql = token_sql[i].sql;
        return ct_store_stmt_from(st, id, sql, "token", err);
    }
    return st->stmt[id];
}

/* ---- field checks (the schema's CHECKs, with a message that names the field) ---- */


static int check_token(const ct_store_token *t, ct_error *err)
{
    int rc;
    if (!ct_store_name_ok(t->name, CT_STORE_TOKEN_NAME_MAX))
        return ct_error_set(err, CT_EINVAL,
                            "token name '%.80s' must be 1 to %d of A-Z a-z 0-9 . _ - starting with a letter",
                            t->name, CT_STORE_TOKEN_NAME_MAX);
    if (strcmp(t->role, "device") != 0 && strcmp(t->role, "clinician") != 0 && strcmp(t->role, "auditor") != 0 &&
        strcmp(t->role, "admin") != 0)
        return ct_error_set(err, CT_EINVAL, "token %s: role '%.20s' is not device, clinician, auditor or admin",
                            t->name, t->role);
    if ((rc = ct_store_check_text(t->scopes, sizeof t->scopes, 1, "token scopes", err)) ||
        (rc = ct_store_check_text(t->patient, sizeof t->patient, 0, "token patient", err)) ||
        (rc = ct_store_check_text(t->created_by, sizeof t->created_by, 1, "token creator", err)))
        return rc;
    if (t->patient[0] && !ct_store_printable(t->patient))
        return ct_error_set(err, CT_EINVAL, "token %s: the patient id holds a space or control character", t->name);
    if (t->created_ms < 0 || t->expires_ms < 0)
        return ct_error_set(err, CT_EINVAL, "token %s: negative creation or expiry time", t->name);
    return CT_OK;
}

/* ---- rows ----------------------------------------------------------------------- */

static int read_token(ct_store *st, sqlite3_stmt *q, ct_store_token *t, ct_error *err)
{
    memset(t, 0, sizeof *t);
    t->id = sqlite3_column_int64(q, 0);
    int rc;
    if ((rc = ct_store_copy_text(st, q, 1, t->name, sizeof t->name, "api_token.name", err)))
        return rc;
    if (sqlite3_column_bytes(q, 2) != 32 || !sqlite3_column_blob(q, 2))
        return ct_error_set(err, CT_EDB, "%s: token %lld: the stored hash is not 32 bytes", st->path,
                            (long long)t->id);
    memcpy(t->sha256, sqlite3_column_blob(q, 2), 32);
    if ((rc = ct_store_copy_text(st, q, 3, t->role, sizeof t->role, "api_token.role", err)) ||
        (rc = ct_store_copy_text(st, q, 4, t->scopes, sizeof t->scopes, "api_token.scopes", err)) ||
        (rc = ct_store_copy_text(st, q, 5, t->patient, sizeof t->patient, "api_token.patient", err)))
        return rc;
    t->created_ms = sqlite3_column_int64(q, 6);
    if ((rc = ct_store_copy_text(st, q, 7, t->created_by, sizeof t->created_by, "api_token.created_by", err)))
        return rc;
    t->expires_ms = sqlite3_column_int64(q, 8); /* NULL reads as 0: never */
    t->revoked_ms = sqlite3_column_int64(q, 9);
    if ((rc = ct_store_copy_text(st, q, 10, t->revoked_by, sizeof t->revoked_by, "api_token.revoked_by", err)))
        return rc;
    t->last_used_ms = sqlite3_column_int64(q, 11);
    return CT_OK;
}

static void bind_opt_text(sqlite3_stmt *q, int col, const char *s)
{
    if (s && *s)
        sqlite3_bind_text(q, col, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(q, col);
}

static void bind_opt_time(sqlite3_stmt *q, int col, int64_t t_ms)
{
    if (t_ms > 0)
        sqlite3_bind_int64(q, col, t_ms);
    else
        sqlite3_bind_null(q, col);
}

static int insert_op(ct_store *st, ct_store_token *t, ct_error *err)
{
    sqlite3_stmt *q = token_stmt(st, STMT_TOKEN_INSERT, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_text(q, 1, t->name, -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 2, t->sha256, 32, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, t->role, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, t->scopes, -1, SQLITE_STATIC);
    bind_opt_text(q, 5, t->patient);
    sqlite3_bind_int64(q, 6, t->created_ms);
    sqlite3_bind_text(q, 7, t->created_by, -1, SQLITE_STATIC);
    bind_opt_time(q, 8, t->expires_ms);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc == SQLITE_ROW) {
        t->id = sqlite3_column_int64(q, 0);
        rc = sqlite3_step(q);
    }
    if (rc != SQLITE_DONE) {
        int ext = sqlite3_extended_errcode(st->db);
        const char *msg = sqlite3_errmsg(st->db);
        if (ext == SQLITE_CONSTRAINT_UNIQUE && msg && strstr(msg, "api_token.name"))
            out = ct_error_set(err, CT_EEXIST, "a token named %s already exists (names are never reused)", t->name);
        else if (ext == SQLITE_CONSTRAINT_UNIQUE)
            out = ct_error_set(err, CT_EEXIST, "token %s: a token with the same hash already exists", t->name);
        else
            out = ct_store_db_error(st, err, "%s: inserting token %s", st->path, t->name);
    }
    ct_store_stmt_done(q);
    return out;
}

int ct_store_token_insert(ct_store *st, ct_store_token *t, ct_error *err)
{
    if (!st || !t)
        return ct_error_set(err, CT_EINVAL, "ct_store_token_insert: missing argument");
    int rc = check_token(t, err);
    if (rc != CT_OK)
        return rc;
    if (t->created_ms == 0)
        t->created_ms = ct_store_now_ms();
    if (t->expires_ms != 0 && t->expires_ms <= t->created_ms)
        return ct_error_set(err, CT_EINVAL, "token %s: it would expire before it is created", t->name);
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    rc = ct_store_op_end(st, insert_op(st, t, err), err);
    if (rc != CT_OK)
        t->id = 0;
    return rc;
}

/* Runs q (bound) and reads at most one row into out. */
static int get_one(ct_store *st, sqlite3_stmt *q, ct_store_token *out, const char *what, ct_error *err)
{
    int rc = sqlite3_step(q);
    int res;
    if (rc == SQLITE_ROW)
        res = read_token(st, q, out, err);
    else if (rc == SQLITE_DONE)
        res = ct_error_set(err, CT_ENOTFOUND, "no token %s", what);
    else
        res = ct_store_db_error(st, err, "%s: reading token %s", st->path, what);
    ct_store_stmt_done(q);
    return res;
}

int ct_store_token_find_hash(ct_store *st, const unsigned char sha256[32], ct_store_token *out, ct_error *err)
{
    if (!st || !sha256 || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_token_find_hash: missing argument");
    sqlite3_stmt *q = token_stmt(st, STMT_TOKEN_FIND_HASH, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_blob(q, 1, sha256, 32, SQLITE_STATIC);
    /* The message never shows the hash: it is as good as the token to
     * whoever can read the database, and the logs travel further. */
    return get_one(st, q, out, "with that hash", err);
}

int ct_store_token_get(ct_store *st, int64_t id, ct_store_token *out, ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_token_get: missing argument");
    sqlite3_stmt *q = token_stmt(st, STMT_TOKEN_GET, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    char what[32];
    snprintf(what, sizeof what, "%lld", (long long)id);
    return get_one(st, q, out, what, err);
}

int ct_store_token_get_by_name(ct_store *st, const char *name, ct_store_token *out, ct_error *err)
{
    if (!st || !name || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_token_get_by_name: missing argument");
    if (!ct_store_name_ok(name, CT_STORE_TOKEN_NAME_MAX))
        return ct_error_set(err, CT_ENOTFOUND, "no token %.80s (a token name starts with a letter)", name);
    sqlite3_stmt *q = token_stmt(st, STMT_TOKEN_GET_BY_NAME, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_text(q, 1, name, -1, SQLITE_STATIC);
    return get_one(st, q, out, name, err);
}

int ct_store_token_list(ct_store *st, ct_store_token **out, size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_token_list: missing argument");
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *q = token_stmt(st, STMT_TOKEN_LIST, err);
    if (!q)
        return CT_EDB;
    ct_store_token *v = NULL;
    size_t n = 0, cap = 0;
    int res = CT_OK, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 16) != 0) {
            res = ct_error_set(err, CT_ENOMEM, "out of memory listing %zu tokens", n);
            break;
        }
        if ((res = read_token(st, q, &v[n], err)) != CT_OK)
            break;
        n++;
    }
    if (res == CT_OK && rc != SQLITE_DONE)
        res = ct_store_db_error(st, err, "%s: listing tokens", st->path);
    ct_store_stmt_done(q);
    if (res != CT_OK) {
        free(v);
        return res;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}

static int revoke_op(ct_store *st, int64_t id, int64_t at_ms, const char *by, ct_error *err)
{
    sqlite3_stmt *q = token_stmt(st, STMT_TOKEN_REVOKE, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, at_ms);
    sqlite3_bind_text(q, 3, by, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    int changed = sqlite3_changes(st->db);
    ct_store_stmt_done(q);
    if (rc != SQLITE_DONE)
        return ct_store_db_error(st, err, "%s: revoking token %lld", st->path, (long long)id);
    if (changed)
        return CT_OK;
    ct_store_token t;
    ct_error gerr = {0};
    int g = ct_store_token_get(st, id, &t, &gerr);
    if (g == CT_ENOTFOUND)
        return ct_error_set(err, CT_ENOTFOUND, "no token %lld", (long long)id);
    if (g != CT_OK)
        return ct_error_set(err, g, "%s", gerr.msg);
    return ct_error_set(err, CT_EEXIST, "token %lld (%s) is already revoked", (long long)id, t.name);
}

int ct_store_token_revoke(ct_store *st, int64_t id, int64_t at_ms, const char *by, ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_token_revoke: missing argument");
    int rc = ct_store_check_text(by, 128, 1, "who revokes the token", err);
    if (rc != CT_OK)
        return rc;
    if (at_ms <= 0)
        at_ms = ct_store_now_ms();
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, revoke_op(st, id, at_ms, by, err), err);
}

static int touch_op(ct_store *st, int64_t id, int64_t now_ms, int64_t min_interval_ms, int *written,
                    ct_error *err)
{
    sqlite3_stmt *q = token_stmt(st, STMT_TOKEN_TOUCH, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, now_ms);
    sqlite3_bind_int64(q, 3, min_interval_ms);
    int rc = sqlite3_step(q);
    int changed = sqlite3_changes(st->db);
    ct_store_stmt_done(q);
    if (rc != SQLITE_DONE)
        return ct_store_db_error(st, err, "%s: recording the use of token %lld", st->path, (long long)id);
    if (written)
        *written = changed > 0;
    return CT_OK;
}

int ct_store_token_touch(ct_store *st, int64_t id, int64_t now_ms, int64_t min_interval_ms, int *written,
                         ct_error *err)
{
    if (written)
        *written = 0;
    if (!st || now_ms <= 0 || min_interval_ms < 0)
        return ct_error_set(err, CT_EINVAL, "ct_store_token_touch: bad argument");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, touch_op(st, id, now_ms, min_interval_ms, written, err), err);
}
