/* store/audit_search: searching the audit log in SQL, for GET
 * /fhir/AuditEvent.
 *
 * The one idea: the query is plain data (clauses of terms of conditions,
 * store.h) and the SQL is generated from it by one pure function with a
 * fixed table of column names, so that every value is a bound parameter
 * and nothing a client sends can reach the SQL text. The same function
 * writes the page query and the count query, and the runner binds the
 * values by walking the query in the very order the writer did. Pages are
 * LIMIT/OFFSET inside a snapshot bound (seq <= max_seq): the log only grows
 * at its end, so with that bound a page means the same thing at every
 * request, however many entries were appended since the first page. */
#include "store_impl.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int is_text;
} cols[] = {
    [CT_STORE_AUDIT_COL_SEQ] = {"seq", 0},
    [CT_STORE_AUDIT_COL_TIME] = {"time_ms", 0},
    [CT_STORE_AUDIT_COL_OUTCOME] = {"outcome", 0},
    [CT_STORE_AUDIT_COL_ACTOR] = {"actor", 1},
    [CT_STORE_AUDIT_COL_ROLE] = {"actor_role", 1},
    [CT_STORE_AUDIT_COL_ACTION] = {"action", 1},
    [CT_STORE_AUDIT_COL_RESOURCE_TYPE] = {"resource_type", 1},
    [CT_STORE_AUDIT_COL_RESOURCE_ID] = {"resource_id", 1},
    [CT_STORE_AUDIT_COL_PATIENT] = {"patient", 1},
    [CT_STORE_AUDIT_COL_REQUEST_ID] = {"request_id", 1},
    [CT_STORE_AUDIT_COL_DETAIL] = {"detail", 1},
};
#define N_COLS (sizeof cols / sizeof cols[0])

typedef struct sqlbuf {
    char *p;
    size_t n, cap;
    int overflow;
} sqlbuf;

static void put(sqlbuf *b, const char *fmt, ...) CT_PRINTF(2, 3);
static void put(sqlbuf *b, const char *fmt, ...)
{
    if (b->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= b->cap - b->n)
        b->overflow = 1;
    else
        b->n += (size_t)w;
}

static int check_cond(const ct_store_audit_cond *c, ct_error *err)
{
    if ((unsigned)c->col >= N_COLS)
        return ct_error_set(err, CT_EINVAL, "audit search: unknown column %d", (int)c->col);
    int text = cols[c->col].is_text;
    switch (c->op) {
    case CT_STORE_AUDIT_EQ:
        if (c->col == CT_STORE_AUDIT_COL_DETAIL || (text && !c->text))
            return ct_error_set(err, CT_EINVAL, "audit search: %s = needs a value", cols[c->col].name);
        return CT_OK;
    case CT_STORE_AUDIT_RANGE:
    case CT_STORE_AUDIT_OUTSIDE:
        if (text)
            return ct_error_set(err, CT_EINVAL, "audit search: %s is not a number column", cols[c->col].name);
        return CT_OK;
    case CT_STORE_AUDIT_PRESENT:
    case CT_STORE_AUDIT_ABSENT:
        if (!text)
            return ct_error_set(err, CT_EINVAL, "audit search: %s is always present", cols[c->col].name);
        return CT_OK;
    }
    return ct_error_set(err, CT_EINVAL, "audit search: unknown operator %d", (int)c->op);
}

static int check_query(const ct_store_audit_query *q, ct_error *err)
{
    if (!q)
        return ct_error_set(err, CT_EINVAL, "audit search: no query");
    if (q->n_clauses > CT_STORE_AUDIT_MAX_CLAUSES)
        return ct_error_set(err, CT_EINVAL, "audit search: %zu clauses, at most %d", q->n_clauses,
                            CT_STORE_AUDIT_MAX_CLAUSES);
    if (q->count < 0 || q->count > CT_STORE_AUDIT_PAGE_MAX)
        return ct_error_set(err, CT_EINVAL, "audit search: page of %d entries, the limit is %d", q->count,
                            CT_STORE_AUDIT_PAGE_MAX);
    if (q->offset < 0 || q->offset > CT_STORE_AUDIT_OFFSET_MAX)
        return ct_error_set(err, CT_EINVAL, "audit search: offset %" PRId64 " is outside 0..%d", q->offset,
                            CT_STORE_AUDIT_OFFSET_MAX);
    if (q->order != CT_STORE_AUDIT_NEWEST_FIRST && q->order != CT_STORE_AUDIT_TIME_ASC &&
        q->order != CT_STORE_AUDIT_TIME_DESC)
        return ct_error_set(err, CT_EINVAL, "audit search: unknown order %d", (int)q->order);
    size_t terms = 0;
    for (size_t i = 0; i < q->n_clauses; i++) {
        const ct_store_audit_clause *cl = &q->clauses[i];
        if (cl->n_terms == 0 || !cl->terms)
            return ct_error_set(err, CT_EINVAL, "audit search: clause %zu has no term", i + 1);
        terms += cl->n_terms;
        if (terms > CT_STORE_AUDIT_MAX_TERMS)
            return ct_error_set(err, CT_EINVAL, "audit search: more than %d terms", CT_STORE_AUDIT_MAX_TERMS);
        for (size_t t = 0; t < cl->n_terms; t++) {
            if (cl->terms[t].n > CT_STORE_AUDIT_TERM_CONDS)
                return ct_error_set(err, CT_EINVAL, "audit search: a term of %zu conditions, at most %d",
                                    cl->terms[t].n, CT_STORE_AUDIT_TERM_CONDS);
            for (size_t c = 0; c < cl->terms[t].n; c++) {
                int rc = check_cond(&cl->terms[t].c[c], err);
                if (rc)
                    return rc;
            }
        }
    }
    return CT_OK;
}

static void put_cond(sqlbuf *b, const ct_store_audit_cond *c)
{
    const char *name = cols[c->col].name;
    int detail = c->col == CT_STORE_AUDIT_COL_DETAIL;
    switch (c->op) {
    case CT_STORE_AUDIT_EQ: put(b, "%s = ?", name); break;
    case CT_STORE_AUDIT_RANGE: put(b, "(%s >= ? AND %s < ?)", name, name); break;
    case CT_STORE_AUDIT_OUTSIDE: put(b, "(%s < ? OR %s >= ?)", name, name); break;
    case CT_STORE_AUDIT_PRESENT: put(b, detail ? "%s IS NOT NULL" : "%s <> ''", name); break;
    case CT_STORE_AUDIT_ABSENT: put(b, detail ? "%s IS NULL" : "%s = ''", name); break;
    }
}

int ct_store_audit_query_sql(const ct_store_audit_query *q, int count_only, char *sql, size_t cap, ct_error *err)
{
    int rc = check_query(q, err);
    if (rc)
        return rc;
    if (!sql || cap == 0)
        return ct_error_set(err, CT_EINVAL, "audit search: no buffer for the SQL");
    sqlbuf b = {sql, 0, cap, 0};
    sql[0] = '\0';
    put(&b, "SELECT %s FROM audit_log WHERE seq <= ?", count_only ? "count(*)" : "seq");
    for (size_t i = 0; i < q->n_clauses; i++) {
        const ct_store_audit_clause *cl = &q->clauses[i];
        put(&b, " AND (");
        for (size_t t = 0; t < cl->n_terms; t++) {
            const ct_store_audit_term *term = &cl->terms[t];
            if (t)
                put(&b, " OR ");
            if (term->n == 0) {
                put(&b, "0");
                continue;
            }
            put(&b, "(");
            for (size_t c = 0; c < term->n; c++) {
                if (c)
                    put(&b, " AND ");
                put_cond(&b, &term->c[c]);
            }
            put(&b, ")");
        }
        put(&b, ")");
    }
    if (!count_only) {
        /* seq breaks ties in time: the log's order is the truth, clocks
         * may step back. */
        static const char *const order[] = {" ORDER BY seq DESC", " ORDER BY time_ms ASC, seq ASC",
                                            " ORDER BY time_ms DESC, seq DESC"};
        put(&b, "%s LIMIT ? OFFSET ?", order[q->order]);
    }
    if (b.overflow)
        return ct_error_set(err, CT_ELIMIT, "audit search: the SQL needs more than %zu bytes", cap);
    return CT_OK;
}

/* Binds the values in the order ct_store_audit_query_sql wrote their "?". */
static int bind_all(sqlite3_stmt *s, const ct_store_audit_query *q, int count_only)
{
    int i = 1, bad = 0;
    bad |= sqlite3_bind_int64(s, i++, q->max_seq > 0 ? q->max_seq : INT64_MAX);
    for (size_t k = 0; k < q->n_clauses; k++) {
        const ct_store_audit_clause *cl = &q->clauses[k];
        for (size_t t = 0; t < cl->n_terms; t++)
            for (size_t c = 0; c < cl->terms[t].n; c++) {
                const ct_store_audit_cond *cd = &cl->terms[t].c[c];
                switch (cd->op) {
                case CT_STORE_AUDIT_EQ:
                    if (cols[cd->col].is_text)
                        bad |= sqlite3_bind_text(s, i++, cd->text, -1, SQLITE_STATIC);
                    else
                        bad |= sqlite3_bind_int64(s, i++, cd->lo);
                    break;
                case CT_STORE_AUDIT_RANGE:
                case CT_STORE_AUDIT_OUTSIDE:
                    bad |= sqlite3_bind_int64(s, i++, cd->lo);
                    bad |= sqlite3_bind_int64(s, i++, cd->hi);
                    break;
                case CT_STORE_AUDIT_PRESENT:
                case CT_STORE_AUDIT_ABSENT:
                    break;
                }
            }
    }
    if (!count_only) {
        bad |= sqlite3_bind_int64(s, i++, q->count);
        bad |= sqlite3_bind_int64(s, i++, q->offset);
    }
    return bad ? -1 : 0;
}

/* Big enough for the largest query the limits allow (64 terms of 4 range
 * conditions, about 50 bytes each, and the fixed parts). */
#define SQL_CAP 16384

static int run(ct_store *st, const ct_store_audit_query *q, int count_only, int64_t *seqs, size_t cap, size_t *n,
               int64_t *total, ct_error *err)
{
    char sql[SQL_CAP];
    int rc = ct_store_audit_query_sql(q, count_only, sql, sizeof sql, err);
    if (rc)
        return rc;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        rc = ct_store_db_error(st, err, "%s: preparing the audit search", st->path);
        sqlite3_finalize(s);
        return rc;
    }
    if (bind_all(s, q, count_only) != 0) {
        rc = ct_store_db_error(st, err, "%s: binding the audit search", st->path);
        sqlite3_finalize(s);
        return rc;
    }
    int step;
    while ((step = sqlite3_step(s)) == SQLITE_ROW) {
        if (count_only) {
            *total = sqlite3_column_int64(s, 0);
        } else if (*n < cap) {
            seqs[(*n)++] = sqlite3_column_int64(s, 0);
        }
    }
    if (step != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "%s: running the audit search", st->path);
    sqlite3_finalize(s);
    return rc;
}

int ct_store_audit_find(ct_store *st, const ct_store_audit_query *q, int64_t *seqs, size_t cap, size_t *n,
                        int64_t *total, ct_error *err)
{
    if (!st || !q || !n || (!seqs && q->count > 0))
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_find: missing argument");
    *n = 0;
    if (total)
        *total = 0;
    if ((size_t)q->count > cap)
        return ct_error_set(err, CT_EINVAL, "ct_store_audit_find: room for %zu entries, the page asks %d", cap,
                            q->count);
    int rc = CT_OK;
    if (q->count > 0)
        rc = run(st, q, 0, seqs, cap, n, NULL, err);
    if (rc == CT_OK && total)
        rc = run(st, q, 1, NULL, 0, n, total, err);
    return rc;
}
