/* store/audit_rows: the SQL behind the audit log (migrations/0002_audit.sql).
 *
 * The one idea: the store only moves rows; what they mean belongs to the
 * audit room. Appending is the one place where the two meet, because the
 * next entry's seq and prev_hash must be read under the same write lock as
 * the insert that uses them: ct_store_audit_append_row reads the head,
 * hands the row to the audit room's seal callback to be hashed, and inserts
 * it, all inside one operation (a transaction of its own or a savepoint of
 * the caller's). Reading is by iterators over one statement each, so that
 * verify and export walk a log of any length in constant memory; a read
 * snapshot keeps the rows and the checkpoints of one walk consistent. */
#include "store_impl.h"

#include <stdlib.h>
#include <string.h>

/* Our statements live in the store's cache (finalized by ct_store_close),
 * but their SQL is here, next to the code that binds them. */
static const struct {
    enum ct_store_stmt_id id;
    const char *sql;
} audit_sql[] = {
    {STMT_AUDIT_BEGIN_READ, "BEGIN DEFERRED"},
    {STMT_AUDIT_LAST, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"},
    {STMT_AUDIT_INSERT,
     "INSERT INTO audit_log(seq, time_ms, actor, actor_role, client, action, resource_type,"
     " resource_id, resource_version, patient, outcome, outcome_desc, request_id, detail,"
     " prev_hash, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"},
    {STMT_AUDIT_GET, NULL}, /* ROW_SELECT " WHERE seq = ?1", built below */
    {STMT_CKPT_INSERT,
     "INSERT INTO audit_checkpoint(id, size, head_hash, merkle_root, time_ms, key_id, signature,"
     " frontier) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"},
    {STMT_CKPT_LATEST, NULL},
    {STMT_CKPT_AT_OR_BELOW, NULL},
};

#define ROW_COLUMNS                                                                    \
    "seq, time_ms, actor, actor_role, client, action, resource_type, resource_id,"     \
    " resource_version, patient, outcome, outcome_desc, request_id, detail, prev_hash, hash"
#define CKPT_COLUMNS "id, size, head_hash, merkle_root, time_ms, key_id, signature, frontier"

static const char *stmt_text(enum ct_store_stmt_id id)
{
    switch (id) {
    case STMT_AUDIT_GET:
        return "SELECT " ROW_COLUMNS " FROM audit_log WHERE seq = ?1";
    case STMT_CKPT_LATEST:
        return "SELECT " CKPT_COLUMNS " FROM audit_checkpoint ORDER BY id DESC LIMIT 1";
    case STMT_CKPT_AT_OR_BELOW:
        return "SELECT " CKPT_COLUMNS " FROM audit_checkpoint WHERE size <= ?1 ORDER BY size DESC LIMIT 1";
    default:
        break;
    }
    for (size_t i = 0; i < sizeof audit_sql / sizeof audit_sql[0]; i++)
        if (audit_sql[i].id == id)
            return audit_sql[i].sql;
    return NULL;
}

static sqlite3_stmt *audit_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err)
{
    if (!st->stmt[id]) {
        const char *sql = stmt_text(id);
        return ct_store_stmt_from(st, id, sql, "audit", err);
    }
    return st->stmt[id];
}

/* ---- reading rows ------------------------------------------------------------ */

static int copy_blob32(ct_store *st, sqlite3_stmt *s, int col, unsigned char out[32], const char *what,
                       int64_t seq, ct_error *err)
{
    const void *b = sqlite3_column_blob(s, col);
    int n = sqlite3_column_bytes(s, col);
    if (!b || n != 32 || sqlite3_column_type(s, col) != SQLITE_BLOB)
        return ct_error_set(err, CT_EFORMAT, "%s: audit entry %lld: %s is %d bytes of %s, not a 32-byte hash",
                            st->path, (long long)seq, what, b ? n : 0,
                            sqlite3_column_type(s, col) == SQLITE_BLOB ? "blob" : "another type");
    memcpy(out, b, 32);
    return CT_OK;
}

static int copy_field(ct_store *st, sqlite3_stmt *s, int col, char *dst, size_t cap, const char *what,
                      int64_t seq, ct_error *err)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    size_t len = (size_t)sqlite3_column_bytes(s, col);
    if (!t) {
        if (sqlite3_column_type(s, col) != SQLITE_NULL)
            return ct_store_db_error(st, err, "%s: reading audit entry %lld", st->path, (long long)seq);
        len = 0;
    }
    if (len >= cap)
        return ct_error_set(err, CT_EFORMAT, "%s: audit entry %lld: %s is %zu bytes, more than the %zu "
                            "an entry may hold", st->path, (long long)seq, what, len, cap - 1);
    if (memchr(t ? (const char *)t : "", '\0', len))
        return ct_error_set(err, CT_EFORMAT, "%s: audit entry %lld: %s holds a NUL byte", st->path,
                            (long long)seq, what);
    if (len)
        memcpy(dst, t, len);
    dst[len] = '\0';
    return CT_OK;
}

/* Reads one row of ROW_COLUMNS. */
static int read_row(ct_store *st, sqlite3_stmt *s, ct_store_audit_row *r, ct_error *err)
{
    memset(r, 0, sizeof *r);
    r->seq = sqlite3_column_int64(s, 0);
    r->time_ms = sqlite3_column_int64(s, 1);
    int64_t seq = r->seq;
    int rc;
    if ((rc = copy_field(st, s, 2, r->actor, sizeof r->actor, "actor", seq, err)) ||
        (rc = copy_field(st, s, 3, r->actor_role, sizeof r->actor_role, "actor_role", seq, err)) ||
        (rc = copy_field(st, s, 4, r->client, sizeof r->client, "client", seq, err)) ||
        (rc = copy_field(st, s, 5, r->action, sizeof r->action, "action", seq, err)) ||
        (rc = copy_field(st, s, 6, r->resource_type, sizeof r->resource_type, "resource_type", seq, err)) ||
        (rc = copy_field(st, s, 7, r->resource_id, sizeof r->resource_id, "resource_id", seq, err)))
        return rc;
    r->resource_version = sqlite3_column_int64(s, 8);
    if ((rc = copy_field(st, s, 9, r->patient, sizeof r->patient, "patient", seq, err)))
        return rc;
    r->outcome = (int)sqlite3_column_int64(s, 10);
    if ((rc = copy_field(st, s, 11, r->outcome_desc, sizeof r->outcome_desc, "outcome_desc", seq, err)) ||
        (rc = copy_field(st, s, 12, r->request_id, sizeof r->request_id, "request_id", seq, err)))
        return rc;
    r->has_detail = sqlite3_column_type(s, 13) != SQLITE_NULL;
    if (r->has_detail && (rc = copy_field(st, s, 13, r->detail, sizeof r->detail, "detail", seq, err)))
        return rc;
    if ((rc = copy_blob32(st, s, 14, r->prev_hash, "prev_hash", seq, err)) ||
        (rc = copy_blob32(st, s, 15, r->hash, "hash", seq, err)))
        return rc;
    return CT_OK;
}

int ct_store_audit_last(ct_store *st, int64_t *seq, unsigned char hash[32], ct_error *err)
{
    if (!st || !seq || !hash)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_last: missing argument");
    *seq = 0;
    memset(hash, 0, 32);
    sqlite3_stmt *s = audit_stmt(st, STMT_AUDIT_LAST, err);
    if (!s)
        return CT_EDB;
    int rc = sqlite3_step(s);
    int ret = CT_OK;
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(s, 0);
        ret = copy_blob32(st, s, 1, hash, "hash", *seq, err);
    } else if (rc != SQLITE_DONE) {
        ret = ct_store_db_error(st, err, "%s: reading the audit log's last entry", st->path);
    }
    ct_store_stmt_done(s);
    return ret;
}

int ct_store_audit_get(ct_store *st, int64_t seq, ct_store_audit_row *out, ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_get: missing argument");
    sqlite3_stmt *s = audit_stmt(st, STMT_AUDIT_GET, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, seq);
    int rc = sqlite3_step(s);
    int ret;
    if (rc == SQLITE_ROW)
        ret = read_row(st, s, out, err);
    else if (rc == SQLITE_DONE)
        ret = ct_error_set(err, CT_ENOTFOUND, "%s: no audit entry %lld", st->path, (long long)seq);
    else
        ret = ct_store_db_error(st, err, "%s: reading audit entry %lld", st->path, (long long)seq);
    ct_store_stmt_done(s);
    return ret;
}

/* ---- appending ------------------------------------------------------------------- */

static int append_op(ct_store *st, ct_store_audit_row *row, ct_store_audit_seal_fn seal, void *ctx,
                     ct_error *err)
{
    int64_t last = 0;
    int rc = ct_store_audit_last(st, &last, row->prev_hash, err);
    if (rc != CT_OK)
        return rc;
    row->seq = last + 1;
    if ((rc = seal(ctx, row, err)) != CT_OK)
        return rc;
    sqlite3_stmt *s = audit_stmt(st, STMT_AUDIT_INSERT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, row->seq);
    sqlite3_bind_int64(s, 2, row->time_ms);
    sqlite3_bind_text(s, 3, row->actor, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, row->actor_role, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 5, row->client, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 6, row->action, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, row->resource_type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, row->resource_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, row->resource_version);
    sqlite3_bind_text(s, 10, row->patient, -1, SQLITE_STATIC);
    sqlite3_bind_int(s, 11, row->outcome);
    sqlite3_bind_text(s, 12, row->outcome_desc, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 13, row->request_id, -1, SQLITE_STATIC);
    if (row->has_detail)
        sqlite3_bind_text(s, 14, row->detail, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(s, 14);
    sqlite3_bind_blob(s, 15, row->prev_hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 16, row->hash, 32, SQLITE_STATIC);
    rc = sqlite3_step(s);
    int ret = CT_OK;
    if (rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s: appending audit entry %lld", st->path, (long long)row->seq);
    ct_store_stmt_done(s);
    return ret;
}

int ct_store_audit_append_row(ct_store *st, ct_store_audit_row *row, ct_store_audit_seal_fn seal,
                              void *ctx, ct_error *err)
{
    if (!st || !row || !seal)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_append_row: missing argument");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, append_op(st, row, seal, ctx, err), err);
}

/* ---- iterating rows ------------------------------------------------------------------ */

struct ct_store_audit_iter {
    ct_store *st;
    sqlite3_stmt *s;
};

int ct_store_audit_iter_open(ct_store *st, int64_t from_seq, ct_store_audit_iter **out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_iter_open: no output pointer");
    *out = NULL;
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_iter_open: no store");
    ct_store_audit_iter *it = calloc(1, sizeof *it);
    if (!it)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    it->st = st;
    if (sqlite3_prepare_v2(st->db, "SELECT " ROW_COLUMNS " FROM audit_log WHERE seq >= ?1 ORDER BY seq",
                           -1, &it->s, NULL) != SQLITE_OK) {
        int rc = ct_store_db_error(st, err, "%s: reading the audit log", st->path);
        sqlite3_finalize(it->s);
        free(it);
        return rc;
    }
    sqlite3_bind_int64(it->s, 1, from_seq);
    *out = it;
    return CT_OK;
}

int ct_store_audit_iter_next(ct_store_audit_iter *it, ct_store_audit_row *out, ct_error *err)
{
    if (!it || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_iter_next: missing argument");
    int rc = sqlite3_step(it->s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return ct_store_db_error(it->st, err, "%s: reading the audit log", it->st->path);
    rc = read_row(it->st, it->s, out, err);
    return rc == CT_OK ? 1 : rc;
}

void ct_store_audit_iter_close(ct_store_audit_iter *it)
{
    if (!it)
        return;
    sqlite3_finalize(it->s);
    free(it);
}

/* ---- checkpoints ------------------------------------------------------------------------ */

static int read_checkpoint(ct_store *st, sqlite3_stmt *s, ct_store_checkpoint_row *cp, ct_error *err)
{
    memset(cp, 0, sizeof *cp);
    cp->id = sqlite3_column_int64(s, 0);
    cp->size = sqlite3_column_int64(s, 1);
    cp->time_ms = sqlite3_column_int64(s, 4);
    const char *what = NULL;
    const void *head = sqlite3_column_blob(s, 2), *root = sqlite3_column_blob(s, 3),
               *sig = sqlite3_column_blob(s, 6), *fr = sqlite3_column_blob(s, 7);
    const unsigned char *key = sqlite3_column_text(s, 5);
    int fr_len = sqlite3_column_bytes(s, 7);
    if (!head || sqlite3_column_bytes(s, 2) != 32)
        what = "head_hash is not 32 bytes";
    else if (!root || sqlite3_column_bytes(s, 3) != 32)
        what = "merkle_root is not 32 bytes";
    else if (!sig || sqlite3_column_bytes(s, 6) != 64)
        what = "signature is not 64 bytes";
    else if (!key || sqlite3_column_bytes(s, 5) != 64)
        what = "key_id is not 64 hex digits";
    else if (fr_len % 32 != 0 || fr_len > 64 * 32 || (fr_len && !fr))
        what = "frontier is not a list of 32-byte hashes";
    if (what)
        return ct_error_set(err, CT_EFORMAT, "%s: checkpoint %lld: %s", st->path, (long long)cp->id, what);
    memcpy(cp->head_hash, head, 32);
    memcpy(cp->merkle_root, root, 32);
    memcpy(cp->signature, sig, 64);
    memcpy(cp->key_id, key, 64);
    cp->key_id[64] = '\0';
    cp->n_frontier = fr_len / 32;
    if (fr_len)
        memcpy(cp->frontier, fr, (size_t)fr_len);
    return CT_OK;
}

static int one_checkpoint(ct_store *st, enum ct_store_stmt_id id, int64_t arg, ct_store_checkpoint_row *out,
                          ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "checkpoint lookup: missing argument");
    sqlite3_stmt *s = audit_stmt(st, id, err);
    if (!s)
        return CT_EDB;
    if (id == STMT_CKPT_AT_OR_BELOW)
        sqlite3_bind_int64(s, 1, arg);
    int rc = sqlite3_step(s);
    int ret;
    if (rc == SQLITE_ROW)
        ret = read_checkpoint(st, s, out, err);
    else if (rc == SQLITE_DONE)
        ret = CT_ENOTFOUND;
    else
        ret = ct_store_db_error(st, err, "%s: reading audit checkpoints", st->path);
    ct_store_stmt_done(s);
    return ret;
}

int ct_store_checkpoint_latest(ct_store *st, ct_store_checkpoint_row *out, ct_error *err)
{
    return one_checkpoint(st, STMT_CKPT_LATEST, 0, out, err);
}

int ct_store_checkpoint_at_or_below(ct_store *st, int64_t max_size, ct_store_checkpoint_row *out,
                                    ct_error *err)
{
    return one_checkpoint(st, STMT_CKPT_AT_OR_BELOW, max_size, out, err);
}

static int checkpoint_insert_op(ct_store *st, const ct_store_checkpoint_row *cp, ct_error *err)
{
    sqlite3_stmt *s = audit_stmt(st, STMT_CKPT_INSERT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, cp->id);
    sqlite3_bind_int64(s, 2, cp->size);
    sqlite3_bind_blob(s, 3, cp->head_hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, cp->merkle_root, 32, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, cp->time_ms);
    sqlite3_bind_text(s, 6, cp->key_id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 7, cp->signature, 64, SQLITE_STATIC);
    /* An empty blob, not NULL: the column is NOT NULL. */
    sqlite3_bind_blob(s, 8, cp->n_frontier ? (const void *)cp->frontier : "", cp->n_frontier * 32,
                      SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int ret = CT_OK;
    if (rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s: storing audit checkpoint %lld", st->path, (long long)cp->id);
    ct_store_stmt_done(s);
    return ret;
}

int ct_store_checkpoint_insert(ct_store *st, const ct_store_checkpoint_row *cp, ct_error *err)
{
    if (!st || !cp)
        return ct_error_set(err, CT_EINVAL, "ct_store_checkpoint_insert: missing argument");
    if (cp->n_frontier < 0 || cp->n_frontier > 64)
        return ct_error_set(err, CT_EINVAL, "ct_store_checkpoint_insert: %d frontier hashes", cp->n_frontier);
    if (ct_store_check_text(cp->key_id, sizeof cp->key_id, 1, "checkpoint key_id", err) != CT_OK)
        return CT_EINVAL;
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, checkpoint_insert_op(st, cp, err), err);
}

struct ct_store_checkpoint_iter {
    ct_store *st;
    sqlite3_stmt *s;
};

int ct_store_checkpoint_iter_open(ct_store *st, ct_store_checkpoint_iter **out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ct_store_checkpoint_iter_open: no output pointer");
    *out = NULL;
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_checkpoint_iter_open: no store");
    ct_store_checkpoint_iter *it = calloc(1, sizeof *it);
    if (!it)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    it->st = st;
    if (sqlite3_prepare_v2(st->db, "SELECT " CKPT_COLUMNS " FROM audit_checkpoint ORDER BY id", -1,
                           &it->s, NULL) != SQLITE_OK) {
        int rc = ct_store_db_error(st, err, "%s: reading audit checkpoints", st->path);
        sqlite3_finalize(it->s);
        free(it);
        return rc;
    }
    *out = it;
    return CT_OK;
}

int ct_store_checkpoint_iter_next(ct_store_checkpoint_iter *it, ct_store_checkpoint_row *out,
                                  ct_error *err)
{
    if (!it || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_checkpoint_iter_next: missing argument");
    int rc = sqlite3_step(it->s);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc != SQLITE_ROW)
        return ct_store_db_error(it->st, err, "%s: reading audit checkpoints", it->st->path);
    rc = read_checkpoint(it->st, it->s, out, err);
    return rc == CT_OK ? 1 : rc;
}

void ct_store_checkpoint_iter_close(ct_store_checkpoint_iter *it)
{
    if (!it)
        return;
    sqlite3_finalize(it->s);
    free(it);
}

/* ---- read snapshot ------------------------------------------------------------------------ */

int ct_store_audit_read_begin(ct_store *st, int *started, ct_error *err)
{
    if (!st || !started)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_read_begin: missing argument");
    *started = 0;
    if (st->in_txn)
        return CT_OK;
    /* A ROLLBACK that failed earlier can leave a transaction nobody owns. */
    if (!sqlite3_get_autocommit(st->db))
        return ct_error_set(err, CT_EDB, "%s: a transaction is open on this connection", st->path);
    sqlite3_stmt *s = audit_stmt(st, STMT_AUDIT_BEGIN_READ, err);
    if (!s)
        return CT_EDB;
    int rc = sqlite3_step(s);
    ct_store_stmt_done(s);
    if (rc != SQLITE_DONE)
        return ct_store_db_error(st, err, "%s: cannot begin a read transaction", st->path);
    /* Marked as a transaction so that a store write in between would be a
     * savepoint of it rather than a BEGIN that fails. */
    st->in_txn = 1;
    st->txn_broken = 0;
    *started = 1;
    return CT_OK;
}

void ct_store_audit_read_end(ct_store *st, int started)
{
    if (st && started)
        ct_store_rollback(st);
}
