/* store/search: what the FHIR API needs beyond versions (resources.c):
 * writes that carry their search index and preconditions, history, and
 * search.
 *
 * The one idea: the store does not know FHIR, it knows rows. The caller
 * (the http room) extracts each search parameter's values from a resource
 * and hands them over with the body; ct_store_resource_write replaces the
 * resource's rows in resource_search in the same transaction as the new
 * version (migrations/0003_fhir_search.sql), so a search can never see an
 * index that describes another version. A search is one SQL statement built
 * from the query: each clause becomes `r.id IN (SELECT id FROM
 * resource_search WHERE type, param, kind and the values)`, which the
 * partial indexes of 0003 answer with a range scan, ANDed together; the
 * total is the same WHERE under count(*), both read on one snapshot.
 *
 * Cost: a write is one statement per index value (tens for an ECG
 * Observation). A search costs its clauses' index ranges plus one primary
 * key probe per candidate; sorting by a parameter is a correlated
 * subquery per match, fine for pages of hundreds, and the place to add a
 * sort column when a type grows to millions of resources. Paging is by
 * offset: simple and stateless, but a page boundary shifts when resources
 * are written between two pages; a cursor on (sort key, id) would not. */
#include "store_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    enum ct_store_stmt_id id;
    const char *sql;
} search_sql[] = {
    {STMT_SEARCH_BEGIN_READ, "BEGIN DEFERRED"},
    {STMT_SEARCH_CURRENT, "SELECT version, last_updated_ms, deleted FROM resource WHERE type = ?1 AND id = ?2"},
    {STMT_SEARCH_NEVER_EXISTED, "SELECT 1 FROM resource_version WHERE type = ?1 AND id = ?2 LIMIT 1"},
    {STMT_SEARCH_INDEX_DELETE, "DELETE FROM resource_search WHERE type = ?1 AND id = ?2"},
    {STMT_SEARCH_INDEX_INSERT,
     "INSERT INTO resource_search(type, id, param, kind, system, code, start_ms, end_ms, ref_type,"
     " ref_id, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"},
    {STMT_SEARCH_HISTORY,
     "SELECT version, last_updated_ms, deleted, body FROM resource_version"
     " WHERE type = ?1 AND id = ?2 AND last_updated_ms >= ?3 ORDER BY version DESC LIMIT ?4 OFFSET ?5"},
    {STMT_SEARCH_HISTORY_COUNT,
     "SELECT count(*) FROM resource_version WHERE type = ?1 AND id = ?2 AND last_updated_ms >= ?3"},
    {STMT_SEARCH_REFERENCE,
     "SELECT ref_id FROM resource_search WHERE type = ?1 AND id = ?2 AND param = ?3 AND kind = 2"
     " ORDER BY rowid LIMIT 1"},
    {STMT_SEARCH_GET_CURRENT,
     "SELECT r.version, r.last_updated_ms, v.body FROM resource r JOIN resource_version v"
     " ON v.type = r.type AND v.id = r.id AND v.version = r.version"
     " WHERE r.type = ?1 AND r.id = ?2 AND r.deleted = 0"},
};

static sqlite3_stmt *search_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err)
{
    if (!st->stmt[id]) {
        const char *sql = NULL;
        for (size_t i = 0; i < sizeof search_sql / sizeof search_sql[0]; i++)
            if (search_sql[i].id == id)
                sql = search_sql[i].sql;
        return ct_store_stmt_from(st, id, sql, "search", err);
    }
    return st->stmt[id];
}

/* ---- transactions ----------------------------------------------------------
 * A write here is several store operations (the version, then the index):
 * outside a caller's transaction it opens one of its own; inside one it is a
 * savepoint, so that a failure leaves the caller's transaction as it was. */

static int txn_enter(ct_store *st, int *own, ct_error *err)
{
    if (st->in_txn) {
        *own = 0;
        return ct_store_op_begin(st, err);
    }
    *own = 1;
    return ct_store_begin(st, err);
}

static int txn_leave(ct_store *st, int own, int rc, ct_error *err)
{
    if (!own)
        return ct_store_op_end(st, rc, err);
    if (rc == CT_OK)
        return ct_store_commit(st, err);
    ct_store_rollback(st);
    return rc;
}

/* Reads go through one snapshot unless the caller's transaction is one. */
static int read_begin(ct_store *st, int *started, ct_error *err)
{
    *started = 0;
    if (st->in_txn)
        return CT_OK;
    if (!sqlite3_get_autocommit(st->db))
        return ct_error_set(err, CT_EDB, "%s: a transaction is open on this connection", st->path);
    sqlite3_stmt *s = search_stmt(st, STMT_SEARCH_BEGIN_READ, err);
    if (!s)
        return CT_EDB;
    int rc = sqlite3_step(s);
    ct_store_stmt_done(s);
    if (rc != SQLITE_DONE)
        return ct_store_db_error(st, err, "%s: cannot begin a read transaction", st->path);
    st->in_txn = 1;
    st->txn_broken = 0;
    *started = 1;
    return CT_OK;
}

static void read_end(ct_store *st, int started)
{
    if (started)
        ct_store_rollback(st);
}

/* ---- checks ------------------------------------------------------------------ */

static int check_name(const char *s, size_t max, const char *what, ct_error *err)
{
    if (!s || !*s)
        return ct_error_set(err, CT_EINVAL, "%s is missing", what);
    if (strnlen(s, max + 1) > max)
        return ct_error_set(err, CT_EINVAL, "%s is longer than %zu bytes", what, max);
    return CT_OK;
}

static int check_value_text(const char *s, int required, const char *param, const char *what, ct_error *err)
{
    if (!s) {
        if (required)
            return ct_error_set(err, CT_EINVAL, "index value of %s: %s is missing", param, what);
        return CT_OK;
    }
    size_t n = strnlen(s, CT_STORE_INDEX_MAX_TEXT + 1);
    if (n > CT_STORE_INDEX_MAX_TEXT)
        return ct_error_set(err, CT_ELIMIT, "index value of %s: %s is longer than %d bytes", param, what,
                            CT_STORE_INDEX_MAX_TEXT);
    if (n == 0 && what[0] != 't') /* an empty text is a value; an empty code or id is not */
        return ct_error_set(err, CT_EINVAL, "index value of %s: %s is empty", param, what);
    return CT_OK;
}

static int check_entries(const ct_store_index_entry *e, size_t n, ct_error *err)
{
    if (n > CT_STORE_INDEX_MAX_ENTRIES)
        return ct_error_set(err, CT_ELIMIT, "%zu index values, more than the %d one version may carry", n,
                            CT_STORE_INDEX_MAX_ENTRIES);
    if (n && !e)
        return ct_error_set(err, CT_EINVAL, "index entries missing");
    for (size_t i = 0; i < n; i++) {
        int rc = check_name(e[i].param, 64, "index parameter name", err);
        if (rc)
            return rc;
        switch (e[i].kind) {
        case CT_STORE_INDEX_TOKEN:
            if ((rc = check_value_text(e[i].code, 1, e[i].param, "code", err)) ||
                (rc = check_value_text(e[i].system, 0, e[i].param, "system", err)))
                return rc;
            break;
        case CT_STORE_INDEX_DATE:
            if (e[i].start_ms >= e[i].end_ms)
                return ct_error_set(err, CT_EINVAL, "index value of %s: date range ends before it starts",
                                    e[i].param);
            break;
        case CT_STORE_INDEX_REFERENCE:
            if ((rc = check_value_text(e[i].ref_id, 1, e[i].param, "reference id", err)) ||
                (rc = check_value_text(e[i].ref_type, 0, e[i].param, "reference type", err)))
                return rc;
            break;
        case CT_STORE_INDEX_STRING:
            if ((rc = check_value_text(e[i].text, 1, e[i].param, "text", err)))
                return rc;
            break;
        default:
            return ct_error_set(err, CT_EINVAL, "index value of %s: unknown kind %d", e[i].param, (int)e[i].kind);
        }
    }
    return CT_OK;
}

/* ---- current state ---------------------------------------------------------------- */

typedef struct current {
    int exists;
    int64_t version;
    int64_t last_updated_ms;
    int deleted;
} current;

static int read_current(ct_store *st, const char *type, const char *id, current *c, ct_error *err)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *s = search_stmt(st, STMT_SEARCH_CURRENT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s), ret = CT_OK;
    if (rc == SQLITE_ROW) {
        c->exists = 1;
        c->version = sqlite3_column_int64(s, 0);
        c->last_updated_ms = sqlite3_column_int64(s, 1);
        c->deleted = sqlite3_column_int(s, 2);
    } else if (rc != SQLITE_DONE) {
        ret = ct_store_db_error(st, err, "reading %s/%s", type, id);
    }
    ct_store_stmt_done(s);
    return ret;
}

static void fill_info(ct_store_version_info *out, const current *c, int created)
{
    if (!out)
        return;
    out->version = c->exists ? c->version : 0;
    out->last_updated_ms = c->exists ? c->last_updated_ms : 0;
    out->deleted = c->exists && c->deleted;
    out->created = created;
}

static int index_delete(ct_store *st, const char *type, const char *id, ct_error *err)
{
    sqlite3_stmt *s = search_stmt(st, STMT_SEARCH_INDEX_DELETE, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s) == SQLITE_DONE ? CT_OK : ct_store_db_error(st, err, "dropping the index of %s/%s", type, id);
    ct_store_stmt_done(s);
    return rc;
}

static int index_insert(ct_store *st, const char *type, const char *id, const ct_store_index_entry *e,
                        size_t n, ct_error *err)
{
    sqlite3_stmt *s = search_stmt(st, STMT_SEARCH_INDEX_INSERT, err);
    if (!s)
        return CT_EDB;
    int rc = CT_OK;
    for (size_t i = 0; i < n && rc == CT_OK; i++) {
        sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, e[i].param, -1, SQLITE_STATIC);
        sqlite3_bind_int(s, 4, (int)e[i].kind);
        switch (e[i].kind) {
        case CT_STORE_INDEX_TOKEN:
            if (e[i].system && e[i].system[0])
                sqlite3_bind_text(s, 5, e[i].system, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 6, e[i].code, -1, SQLITE_STATIC);
            break;
        case CT_STORE_INDEX_DATE:
            sqlite3_bind_int64(s, 7, e[i].start_ms);
            sqlite3_bind_int64(s, 8, e[i].end_ms);
            break;
        case CT_STORE_INDEX_REFERENCE:
            if (e[i].ref_type)
                sqlite3_bind_text(s, 9, e[i].ref_type, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 10, e[i].ref_id, -1, SQLITE_STATIC);
            break;
        case CT_STORE_INDEX_STRING:
            sqlite3_bind_text(s, 11, e[i].text, -1, SQLITE_STATIC);
            break;
        }
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = ct_store_db_error(st, err, "indexing %s of %s/%s", e[i].param, type, id);
        ct_store_stmt_done(s);
    }
    return rc;
}

/* ---- writes ------------------------------------------------------------------------ */

static int write_op(ct_store *st, const ct_store_write *w, ct_store_version_info *out, ct_error *err)
{
    current c;
    int rc = read_current(st, w->type, w->id, &c, err);
    if (rc)
        return rc;
    if (w->if_absent) {
        int ever = c.exists;
        if (!ever) {
            /* resource points at the newest version, so no row there means
             * none ever; checked on resource_version too in case a future
             * purge keeps versions. */
            sqlite3_stmt *s = search_stmt(st, STMT_SEARCH_NEVER_EXISTED, err);
            if (!s)
                return CT_EDB;
            sqlite3_bind_text(s, 1, w->type, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 2, w->id, -1, SQLITE_STATIC);
            int step = sqlite3_step(s);
            ct_store_stmt_done(s);
            if (step == SQLITE_ROW)
                ever = 1;
            else if (step != SQLITE_DONE)
                return ct_store_db_error(st, err, "reading %s/%s", w->type, w->id);
        }
        if (ever) {
            fill_info(out, &c, 0);
            return ct_error_set(err, CT_EEXIST, "%s/%s already exists", w->type, w->id);
        }
    }
    if (w->if_match > 0 && (!c.exists || c.deleted || c.version != w->if_match)) {
        fill_info(out, &c, 0);
        if (!c.exists)
            return ct_error_set(err, CT_EEXIST, "%s/%s does not exist, so it is not at version %lld", w->type,
                                w->id, (long long)w->if_match);
        if (c.deleted)
            return ct_error_set(err, CT_EEXIST, "%s/%s is deleted (version %lld), not at version %lld",
                                w->type, w->id, (long long)c.version, (long long)w->if_match);
        return ct_error_set(err, CT_EEXIST, "%s/%s is at version %lld, not %lld", w->type, w->id,
                            (long long)c.version, (long long)w->if_match);
    }
    int created = !c.exists || c.deleted;
    int64_t version = 0;
    if ((rc = ct_store_resource_put(st, w->type, w->id, w->json, w->len, &version, err)) ||
        (rc = index_delete(st, w->type, w->id, err)) ||
        (rc = index_insert(st, w->type, w->id, w->index, w->n_index, err)) ||
        (rc = read_current(st, w->type, w->id, &c, err)))
        return rc;
    if (c.version != version)
        return ct_error_set(err, CT_EDB, "%s/%s: wrote version %lld but the resource is at %lld", w->type,
                            w->id, (long long)version, (long long)c.version);
    fill_info(out, &c, created);
    return CT_OK;
}

int ct_store_resource_write(ct_store *st, const ct_store_write *w, ct_store_version_info *out,
                            ct_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!st || !w || !w->json)
        return ct_error_set(err, CT_EINVAL, "ct_store_resource_write: missing argument");
    int rc, own;
    if ((rc = check_name(w->type, 64, "resource type", err)) || (rc = check_name(w->id, 64, "resource id", err)) ||
        (rc = check_entries(w->index, w->n_index, err)))
        return rc;
    if (w->if_match < 0)
        return ct_error_set(err, CT_EINVAL, "%s/%s: if_match %lld is not a version", w->type, w->id,
                            (long long)w->if_match);
    if ((rc = txn_enter(st, &own, err)) != CT_OK)
        return rc;
    return txn_leave(st, own, write_op(st, w, out, err), err);
}

static int remove_op(ct_store *st, const char *type, const char *id, int64_t if_match,
                     ct_store_version_info *out, ct_error *err)
{
    current c;
    int rc = read_current(st, type, id, &c, err);
    if (rc)
        return rc;
    if (!c.exists)
        return ct_error_set(err, CT_ENOTFOUND, "no %s/%s", type, id);
    if (if_match > 0 && c.version != if_match) {
        fill_info(out, &c, 0);
        return ct_error_set(err, CT_EEXIST, "%s/%s is at version %lld, not %lld", type, id,
                            (long long)c.version, (long long)if_match);
    }
    if (c.deleted) {
        fill_info(out, &c, 0);
        return CT_OK;
    }
    int64_t version;
    if ((rc = ct_store_resource_delete(st, type, id, &version, err)) || (rc = index_delete(st, type, id, err)) ||
        (rc = read_current(st, type, id, &c, err)))
        return rc;
    fill_info(out, &c, 0);
    return CT_OK;
}

int ct_store_resource_remove(ct_store *st, const char *type, const char *id, int64_t if_match,
                             ct_store_version_info *out, ct_error *err)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_resource_remove: no store");
    int rc, own;
    if ((rc = check_name(type, 64, "resource type", err)) || (rc = check_name(id, 64, "resource id", err)))
        return rc;
    if ((rc = txn_enter(st, &own, err)) != CT_OK)
        return rc;
    return txn_leave(st, own, remove_op(st, type, id, if_match, out, err), err);
}

/* ---- rows ---------------------------------------------------------------------------- */

void ct_store_rows_free(ct_store_rows *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->rows[i].json);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

static int rows_push(ct_store *st, ct_store_rows *r, const char *type, const char *id, int64_t version,
                     int64_t last_updated_ms, int deleted, sqlite3_stmt *s, int body_col, ct_error *err)
{
    if (ct_store_grow((void **)&r->rows, &r->cap, r->n, sizeof *r->rows, 16) != 0)
        return ct_error_set(err, CT_ENOMEM, "out of memory for %zu rows", r->n + 1);
    ct_store_row *row = &r->rows[r->n];
    memset(row, 0, sizeof *row);
    if (strlen(type) >= sizeof row->type || strlen(id) >= sizeof row->id)
        return ct_error_set(err, CT_EDB, "%s: stored type or id %.64s is too long", st->path, id);
    strcpy(row->type, type);
    strcpy(row->id, id);
    row->version = version;
    row->last_updated_ms = last_updated_ms;
    row->deleted = deleted;
    if (!deleted) {
        const unsigned char *body = sqlite3_column_text(s, body_col);
        size_t len = (size_t)sqlite3_column_bytes(s, body_col);
        if (!body)
            return ct_error_set(err, CT_EDB, "%s: %s/%s version %lld has no body", st->path, type, id,
                                (long long)version);
        row->json = malloc(len + 1);
        if (!row->json)
            return ct_error_set(err, CT_ENOMEM, "out of memory for a %zu-byte resource", len);
        memcpy(row->json, body, len);
        row->json[len] = '\0';
        row->len = len;
        r->bytes += len;
    }
    r->n++;
    return CT_OK;
}

/* ---- history ---------------------------------------------------------------------- */

static int history_op(ct_store *st, const char *type, const char *id, int64_t since_ms, int64_t offset,
                      int count, ct_store_rows *out, int64_t *total, ct_error *err)
{
    current c;
    int rc = read_current(st, type, id, &c, err);
    if (rc)
        return rc;
    if (!c.exists)
        return ct_error_set(err, CT_ENOTFOUND, "no %s/%s", type, id);
    sqlite3_stmt *s = search_stmt(st, STMT_SEARCH_HISTORY_COUNT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, since_ms);
    if (sqlite3_step(s) == SQLITE_ROW) {
        if (total)
            *total = sqlite3_column_int64(s, 0);
    } else {
        rc = ct_store_db_error(st, err, "counting the versions of %s/%s", type, id);
    }
    ct_store_stmt_done(s);
    if (rc || count == 0)
        return rc;
    if (!(s = search_stmt(st, STMT_SEARCH_HISTORY, err)))
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, since_ms);
    sqlite3_bind_int(s, 4, count);
    sqlite3_bind_int64(s, 5, offset);
    int step;
    while (rc == CT_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->n > 0 && out->bytes >= CT_STORE_PAGE_MAX_BYTES)
            break;
        rc = rows_push(st, out, type, id, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
                       sqlite3_column_int(s, 2), s, 3, err);
    }
    if (rc == CT_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "reading the history of %s/%s", type, id);
    ct_store_stmt_done(s);
    return rc;
}

int ct_store_resource_history(ct_store *st, const char *type, const char *id, int64_t since_ms,
                              int64_t offset, int count, ct_store_rows *out, int64_t *total,
                              ct_error *err)
{
    if (total)
        *total = 0;
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_resource_history: missing argument");
    memset(out, 0, sizeof *out);
    int rc, started;
    if ((rc = check_name(type, 64, "resource type", err)) || (rc = check_name(id, 64, "resource id", err)))
        return rc;
    if (offset < 0 || count < 0 || count > CT_STORE_PAGE_MAX_ROWS)
        return ct_error_set(err, CT_EINVAL, "history page: offset %lld, count %d out of range",
                            (long long)offset, count);
    if (since_ms < 0)
        since_ms = 0;
    if ((rc = read_begin(st, &started, err)) != CT_OK)
        return rc;
    rc = history_op(st, type, id, since_ms, offset, count, out, total, err);
    read_end(st, started);
    if (rc)
        ct_store_rows_free(out);
    return rc;
}

int ct_store_resource_reference(ct_store *st, const char *type, const char *id, const char *param,
                                char *ref_id, size_t cap, ct_error *err)
{
    if (!st || !type || !id || !param || !ref_id || cap == 0)
        return ct_error_set(err, CT_EINVAL, "ct_store_resource_reference: missing argument");
    ref_id[0] = '\0';
    sqlite3_stmt *s = search_stmt(st, STMT_SEARCH_REFERENCE, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, param, -1, SQLITE_STATIC);
    int step = sqlite3_step(s), rc;
    if (step == SQLITE_ROW)
        rc = ct_store_copy_text(st, s, 0, ref_id, cap, "reference", err);
    else if (step == SQLITE_DONE)
        rc = ct_error_set(err, CT_ENOTFOUND, "%s/%s has no %s", type, id, param);
    else
        rc = ct_store_db_error(st, err, "reading %s of %s/%s", param, type, id);
    ct_store_stmt_done(s);
    return rc;
}

/* ---- search ------------------------------------------------------------------------- */

/* Parameters of the statement being built, bound in order (?1, ?2 ...). */
typedef struct bind {
    const char *text;   /* NULL: integer */
    int64_t num;
} bind;

typedef struct sqlb {
    sqlite3_str *sql;
    bind *b;
    int n, cap;
    int oom;
} sqlb;

static int sqlb_bind_text(sqlb *q, const char *t)
{
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 32;
        bind *nb = realloc(q->b, (size_t)cap * sizeof *nb);
        if (!nb) {
            q->oom = 1;
            return 0;
        }
        q->b = nb;
        q->cap = cap;
    }
    q->b[q->n].text = t;
    q->b[q->n].num = 0;
    return ++q->n;
}

static int sqlb_bind_int(sqlb *q, int64_t v)
{
    int i = sqlb_bind_text(q, NULL);
    if (i)
        q->b[i - 1].num = v;
    return i;
}

/* Appends text where each '?' is the next parameter, taken from args in
 * order: 's' a string, 'i' an int64. */
static void emit(sqlb *q, const char *text, const char *kinds, ...)
{
    va_list ap;
    va_start(ap, kinds);
    for (const char *p = text; *p; p++) {
        if (*p != '?') {
            sqlite3_str_appendchar(q->sql, 1, *p);
            continue;
        }
        int idx = 0;
        if (*kinds == 's')
            idx = sqlb_bind_text(q, va_arg(ap, const char *));
        else
            idx = sqlb_bind_int(q, va_arg(ap, int64_t));
        kinds++;
        sqlite3_str_appendf(q->sql, "?%d", idx);
    }
    va_end(ap);
}

/* The date comparisons of FHIR R4 search on a target range [ts, te) given
 * as SQL expressions. */
static void emit_date(sqlb *q, const char *ts, const char *te, const ct_store_search_value *v)
{
    char buf[256];
    int64_t ss = v->start_ms, se = v->end_ms;
    switch (v->cmp) {
    case CT_STORE_CMP_EQ:
        snprintf(buf, sizeof buf, "(%s >= ? AND %s <= ?)", ts, te);
        emit(q, buf, "ii", ss, se);
        break;
    case CT_STORE_CMP_NE:
        snprintf(buf, sizeof buf, "NOT (%s >= ? AND %s <= ?)", ts, te);
        emit(q, buf, "ii", ss, se);
        break;
    case CT_STORE_CMP_GT:
        snprintf(buf, sizeof buf, "(%s > ?)", te);
        emit(q, buf, "i", se);
        break;
    case CT_STORE_CMP_LT:
        snprintf(buf, sizeof buf, "(%s < ?)", ts);
        emit(q, buf, "i", ss);
        break;
    case CT_STORE_CMP_GE:
        snprintf(buf, sizeof buf, "(%s > ? OR (%s >= ? AND %s <= ?))", te, ts, te);
        emit(q, buf, "iii", se, ss, se);
        break;
    case CT_STORE_CMP_LE:
        snprintf(buf, sizeof buf, "(%s < ? OR (%s >= ? AND %s <= ?))", ts, ts, te);
        emit(q, buf, "iii", ss, ss, se);
        break;
    case CT_STORE_CMP_SA:
        snprintf(buf, sizeof buf, "(%s >= ?)", ts);
        emit(q, buf, "i", se);
        break;
    case CT_STORE_CMP_EB:
        snprintf(buf, sizeof buf, "(%s <= ?)", te);
        emit(q, buf, "i", ss);
        break;
    case CT_STORE_CMP_OVERLAP:
        snprintf(buf, sizeof buf, "(%s < ? AND %s > ?)", ts, te);
        emit(q, buf, "ii", se, ss);
        break;
    }
}

/* LIKE pattern text with '%', '_' and '\' escaped. */
static char *like_escape(const char *s, int leading, int trailing)
{
    size_t n = strlen(s);
    char *out = malloc(2 * n + 3);
    if (!out)
        return NULL;
    size_t o = 0;
    if (leading)
        out[o++] = '%';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' || s[i] == '_' || s[i] == '\\')
            out[o++] = '\\';
        out[o++] = s[i];
    }
    if (trailing)
        out[o++] = '%';
    out[o] = '\0';
    return out;
}

typedef struct search_ctx {
    sqlb q;
    char **owned;      /* LIKE patterns made here, freed at the end */
    size_t n_owned, cap_owned;
} search_ctx;

static const char *own(search_ctx *c, char *s)
{
    if (!s) {
        c->q.oom = 1;
        return "";
    }
    if (c->n_owned == c->cap_owned) {
        size_t cap = c->cap_owned ? 2 * c->cap_owned : 8;
        char **n = realloc(c->owned, cap * sizeof *n);
        if (!n) {
            free(s);
            c->q.oom = 1;
            return "";
        }
        c->owned = n;
        c->cap_owned = cap;
    }
    c->owned[c->n_owned++] = s;
    return s;
}

static void emit_index_value(search_ctx *c, ct_store_index_kind kind, const ct_store_search_value *v)
{
    sqlb *q = &c->q;
    switch (kind) {
    case CT_STORE_INDEX_TOKEN:
        if (v->code && v->system && !v->system[0])
            emit(q, "(s.code = ? AND s.system IS NULL)", "s", v->code);
        else if (v->code && v->system)
            emit(q, "(s.code = ? AND s.system = ?)", "ss", v->code, v->system);
        else if (v->code)
            emit(q, "(s.code = ?)", "s", v->code);
        else if (v->system && v->system[0])
            emit(q, "(s.system = ?)", "s", v->system);
        else
            emit(q, "(s.system IS NULL)", "");
        break;
    case CT_STORE_INDEX_DATE:
        emit_date(q, "s.start_ms", "s.end_ms", v);
        break;
    case CT_STORE_INDEX_REFERENCE:
        if (v->ref_type)
            emit(q, "(s.ref_id = ? AND s.ref_type = ?)", "ss", v->ref_id ? v->ref_id : "", v->ref_type);
        else
            emit(q, "(s.ref_id = ?)", "s", v->ref_id ? v->ref_id : "");
        break;
    case CT_STORE_INDEX_STRING: {
        const char *t = v->text ? v->text : "";
        if (v->match == CT_STORE_STRING_EXACT)
            emit(q, "(s.text = ?)", "s", t);
        else
            emit(q, "(s.text LIKE ? ESCAPE '\\')", "s",
                 own(c, like_escape(t, v->match == CT_STORE_STRING_CONTAINS, 1)));
        break;
    }
    }
}

static int check_query(const ct_store_search_query *q, ct_error *err)
{
    if (!q->type || !*q->type || strlen(q->type) > 64)
        return ct_error_set(err, CT_EINVAL, "search: no resource type");
    if (q->n_clauses > CT_STORE_SEARCH_MAX_CLAUSES)
        return ct_error_set(err, CT_ELIMIT, "search: %zu clauses, at most %d", q->n_clauses,
                            CT_STORE_SEARCH_MAX_CLAUSES);
    if (q->n_sort > CT_STORE_SEARCH_MAX_SORT)
        return ct_error_set(err, CT_ELIMIT, "search: %zu sort keys, at most %d", q->n_sort, CT_STORE_SEARCH_MAX_SORT);
    if (q->count < 0 || q->count > CT_STORE_PAGE_MAX_ROWS || q->offset < 0)
        return ct_error_set(err, CT_EINVAL, "search: page of %d from %lld is out of range", q->count,
                            (long long)q->offset);
    if (!q->include_param != !q->include_type)
        return ct_error_set(err, CT_EINVAL, "search: an include needs a parameter and a type");
    size_t values = 0;
    for (size_t i = 0; i < q->n_clauses; i++) {
        const ct_store_search_clause *cl = &q->clauses[i];
        if (cl->field == CT_STORE_FIELD_INDEX && (!cl->param || !*cl->param || strlen(cl->param) > 64))
            return ct_error_set(err, CT_EINVAL, "search: clause %zu names no parameter", i + 1);
        if (cl->missing < 0 && (cl->n_values == 0 || !cl->values))
            return ct_error_set(err, CT_EINVAL, "search: clause %zu has no value", i + 1);
        if (cl->missing < 0 && cl->field == CT_STORE_FIELD_ID)
            for (size_t k = 0; k < cl->n_values; k++)
                if (!cl->values[k].code)
                    return ct_error_set(err, CT_EINVAL, "search: clause %zu: _id without an id", i + 1);
        values += cl->missing < 0 ? cl->n_values : 0;
    }
    if (values > CT_STORE_SEARCH_MAX_VALUES)
        return ct_error_set(err, CT_ELIMIT, "search: %zu values, at most %d", values, CT_STORE_SEARCH_MAX_VALUES);
    for (size_t i = 0; i < q->n_sort; i++)
        if (q->sort[i].field == CT_STORE_FIELD_INDEX &&
            (!q->sort[i].param || (q->sort[i].kind != CT_STORE_INDEX_DATE && q->sort[i].kind != CT_STORE_INDEX_TOKEN &&
                                   q->sort[i].kind != CT_STORE_INDEX_STRING)))
            return ct_error_set(err, CT_EINVAL, "search: sort key %zu is not a date, token or string", i + 1);
    return CT_OK;
}

static void emit_where(search_ctx *c, const ct_store_search_query *q)
{
    sqlb *b = &c->q;
    emit(b, " WHERE r.type = ? AND r.deleted = 0", "s", q->type);
    for (size_t i = 0; i < q->n_clauses; i++) {
        const ct_store_search_clause *cl = &q->clauses[i];
        if (cl->field != CT_STORE_FIELD_INDEX && cl->missing >= 0) {
            /* id and lastUpdated are never missing. */
            emit(b, cl->missing ? " AND 0" : "", "");
            continue;
        }
        if (cl->field == CT_STORE_FIELD_INDEX && cl->missing >= 0) {
            emit(b, cl->missing ? " AND r.id NOT IN (SELECT s.id FROM resource_search s WHERE s.type = r.type AND s.param = ?)"
                                : " AND r.id IN (SELECT s.id FROM resource_search s WHERE s.type = r.type AND s.param = ?)",
                 "s", cl->param);
            continue;
        }
        emit(b, " AND (", "");
        if (cl->field != CT_STORE_FIELD_INDEX) {
            for (size_t k = 0; k < cl->n_values; k++) {
                const ct_store_search_value *v = &cl->values[k];
                if (k)
                    emit(b, " OR ", "");
                if (cl->field == CT_STORE_FIELD_ID)
                    emit(b, "r.id = ?", "s", v->code);
                else
                    emit_date(b, "r.last_updated_ms", "(r.last_updated_ms + 1)", v);
            }
        } else {
            emit(b, "r.id IN (SELECT s.id FROM resource_search s WHERE s.type = ? AND s.param = ?", "ss", q->type,
                 cl->param);
            sqlite3_str_appendf(b->sql, " AND s.kind = %d AND (", (int)cl->kind);
            for (size_t k = 0; k < cl->n_values; k++) {
                if (k)
                    emit(b, " OR ", "");
                emit_index_value(c, cl->kind, &cl->values[k]);
            }
            emit(b, "))", "");
        }
        emit(b, ")", "");
    }
}

static void emit_order(search_ctx *c, const ct_store_search_query *q)
{
    sqlb *b = &c->q;
    if (q->n_sort == 0) {
        emit(b, " ORDER BY r.last_updated_ms, r.id", "");
        return;
    }
    emit(b, " ORDER BY ", "");
    for (size_t i = 0; i < q->n_sort; i++) {
        const ct_store_sort_key *k = &q->sort[i];
        const char *dir = k->descending ? " DESC" : "";
        if (i)
            emit(b, ", ", "");
        if (k->field == CT_STORE_FIELD_ID) {
            sqlite3_str_appendf(b->sql, "r.id%s", dir);
        } else if (k->field == CT_STORE_FIELD_LAST_UPDATED) {
            sqlite3_str_appendf(b->sql, "r.last_updated_ms%s", dir);
        } else {
            const char *col = k->kind == CT_STORE_INDEX_DATE ? "start_ms" : k->kind == CT_STORE_INDEX_TOKEN ? "code" : "text";
            /* Ascending by the smallest value, descending by the largest:
             * the first resources listed are those that reach furthest. */
            sqlite3_str_appendf(b->sql, "(SELECT %s(s.%s) FROM resource_search s WHERE s.type = r.type AND s.id = r.id"
                                       " AND s.kind = %d AND s.param = ",
                                k->descending ? "max" : "min", col, (int)k->kind);
            emit(b, "?)", "s", k->param);
            sqlite3_str_appendf(b->sql, "%s NULLS LAST", dir);
        }
    }
    emit(b, ", r.id", "");
}

static int prepare_built(ct_store *st, search_ctx *c, sqlite3_stmt **out, ct_error *err)
{
    *out = NULL;
    int len = sqlite3_str_length(c->q.sql);
    if (c->q.oom || sqlite3_str_errcode(c->q.sql) != SQLITE_OK)
        return ct_error_set(err, CT_ENOMEM, "out of memory building a search");
    const char *sql = sqlite3_str_value(c->q.sql);
    if (sqlite3_prepare_v2(st->db, sql ? sql : "", len, out, NULL) != SQLITE_OK) {
        int rc = ct_store_db_error(st, err, "%s: preparing a search", st->path);
        sqlite3_finalize(*out);
        *out = NULL;
        return rc;
    }
    for (int i = 0; i < c->q.n; i++) {
        int r = c->q.b[i].text ? sqlite3_bind_text(*out, i + 1, c->q.b[i].text, -1, SQLITE_STATIC)
                               : sqlite3_bind_int64(*out, i + 1, c->q.b[i].num);
        if (r != SQLITE_OK) {
            sqlite3_finalize(*out);
            *out = NULL;
            return ct_store_db_error(st, err, "%s: binding search parameter %d", st->path, i + 1);
        }
    }
    return CT_OK;
}

static void ctx_reset(search_ctx *c)
{
    if (c->q.sql)
        sqlite3_free(sqlite3_str_finish(c->q.sql));
    c->q.sql = NULL;
    c->q.n = 0;
    c->q.oom = 0;
}

static void ctx_free(search_ctx *c)
{
    ctx_reset(c);
    free(c->q.b);
    for (size_t i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->owned);
}

static int contains_row(const ct_store_rows *r, const char *type, const char *id)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->rows[i].id, id) == 0 && strcmp(r->rows[i].type, type) == 0)
            return 1;
    return 0;
}

/* The current resources that the matches refer to through include_param. */
static int run_include(ct_store *st, const ct_store_search_query *q, ct_store_search_result *out, ct_error *err)
{
    sqlite3_stmt *refs = NULL;
    if (sqlite3_prepare_v2(st->db,
                           "SELECT ref_id FROM resource_search WHERE type = ?1 AND id = ?2 AND param = ?3"
                           " AND kind = 2 AND ref_type = ?4 ORDER BY rowid",
                           -1, &refs, NULL) != SQLITE_OK) {
        sqlite3_finalize(refs);
        return ct_store_db_error(st, err, "%s: preparing an include", st->path);
    }
    int rc = CT_OK;
    size_t n_matches = out->matches.n;
    for (size_t i = 0; i < n_matches && rc == CT_OK; i++) {
        sqlite3_bind_text(refs, 1, q->type, -1, SQLITE_STATIC);
        sqlite3_bind_text(refs, 2, out->matches.rows[i].id, -1, SQLITE_STATIC);
        sqlite3_bind_text(refs, 3, q->include_param, -1, SQLITE_STATIC);
        sqlite3_bind_text(refs, 4, q->include_type, -1, SQLITE_STATIC);
        int step;
        while (rc == CT_OK && (step = sqlite3_step(refs)) == SQLITE_ROW) {
            const char *ref_id = (const char *)sqlite3_column_text(refs, 0);
            if (!ref_id || strlen(ref_id) > 64)
                continue;
            char id[65];
            strcpy(id, ref_id);
            if (contains_row(&out->included, q->include_type, id) ||
                (strcmp(q->type, q->include_type) == 0 && contains_row(&out->matches, q->type, id)))
                continue;
            if (out->included.n >= CT_STORE_PAGE_MAX_ROWS ||
                out->matches.bytes + out->included.bytes >= CT_STORE_PAGE_MAX_BYTES)
                break;
            sqlite3_stmt *g = search_stmt(st, STMT_SEARCH_GET_CURRENT, err);
            if (!g) {
                rc = CT_EDB;
                break;
            }
            sqlite3_bind_text(g, 1, q->include_type, -1, SQLITE_STATIC);
            sqlite3_bind_text(g, 2, id, -1, SQLITE_STATIC);
            int gs = sqlite3_step(g);
            if (gs == SQLITE_ROW)
                rc = rows_push(st, &out->included, q->include_type, id, sqlite3_column_int64(g, 0),
                               sqlite3_column_int64(g, 1), 0, g, 2, err);
            else if (gs != SQLITE_DONE)
                rc = ct_store_db_error(st, err, "reading %s/%s", q->include_type, id);
            ct_store_stmt_done(g);
        }
        if (rc == CT_OK && step != SQLITE_ROW && step != SQLITE_DONE)
            rc = ct_store_db_error(st, err, "following %s of %s/%s", q->include_param, q->type,
                                   out->matches.rows[i].id);
        sqlite3_reset(refs);
        sqlite3_clear_bindings(refs);
    }
    sqlite3_finalize(refs);
    return rc;
}

static int search_op(ct_store *st, const ct_store_search_query *q, ct_store_search_result *out, ct_error *err)
{
    search_ctx c;
    memset(&c, 0, sizeof c);
    sqlite3_stmt *s = NULL;
    int rc;

    c.q.sql = sqlite3_str_new(st->db);
    emit(&c.q, "SELECT count(*) FROM resource r", "");
    emit_where(&c, q);
    if ((rc = prepare_built(st, &c, &s, err)) != CT_OK)
        goto done;
    if (sqlite3_step(s) == SQLITE_ROW)
        out->total = sqlite3_column_int64(s, 0);
    else
        rc = ct_store_db_error(st, err, "%s: counting the matches of a search", st->path);
    sqlite3_finalize(s);
    s = NULL;
    if (rc || q->count == 0 || q->offset >= out->total)
        goto done;

    ctx_reset(&c);
    c.q.sql = sqlite3_str_new(st->db);
    emit(&c.q,
         "SELECT r.id, r.version, r.last_updated_ms, v.body FROM resource r JOIN resource_version v"
         " ON v.type = r.type AND v.id = r.id AND v.version = r.version",
         "");
    emit_where(&c, q);
    emit_order(&c, q);
    emit(&c.q, " LIMIT ? OFFSET ?", "ii", (int64_t)q->count, q->offset);
    if ((rc = prepare_built(st, &c, &s, err)) != CT_OK)
        goto done;
    int step;
    while (rc == CT_OK && (step = sqlite3_step(s)) == SQLITE_ROW) {
        if (out->matches.n > 0 && out->matches.bytes >= CT_STORE_PAGE_MAX_BYTES)
            break;
        const char *id = (const char *)sqlite3_column_text(s, 0);
        rc = rows_push(st, &out->matches, q->type, id ? id : "", sqlite3_column_int64(s, 1),
                       sqlite3_column_int64(s, 2), 0, s, 3, err);
    }
    if (rc == CT_OK && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "%s: running a search", st->path);
    sqlite3_finalize(s);
    s = NULL;
    if (rc == CT_OK && q->include_param)
        rc = run_include(st, q, out, err);
done:
    ctx_free(&c);
    return rc;
}

int ct_store_search(ct_store *st, const ct_store_search_query *q, ct_store_search_result *out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ct_store_search: no result");
    memset(out, 0, sizeof *out);
    if (!st || !q)
        return ct_error_set(err, CT_EINVAL, "ct_store_search: missing argument");
    int rc = check_query(q, err), started;
    if (rc)
        return rc;
    if ((rc = read_begin(st, &started, err)) != CT_OK)
        return rc;
    rc = search_op(st, q, out, err);
    read_end(st, started);
    return rc;
}

void ct_store_search_result_free(ct_store_search_result *r)
{
    if (!r)
        return;
    ct_store_rows_free(&r->matches);
    ct_store_rows_free(&r->included);
    r->total = 0;
}
