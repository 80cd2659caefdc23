/* store/resources: FHIR resources with their versions.
 *
 * The one idea: nothing is overwritten. Every create, update and delete adds
 * a row to resource_version ((type, id, version) -> body), which is what
 * vread and _history read; a delete adds a marker row (deleted = 1, no
 * body). The resource table points each (type, id) at its current version,
 * so read and search cost one row, and the move from version n to n+1 is
 * conditional on the row still being at n, so a lost update cannot pass
 * unnoticed. Bodies are stored as given (the fhir room validates them);
 * this file checks only what the schema needs: a type, a FHIR id, a size. */
#include "store_impl.h"

#include <stdlib.h>
#include <string.h>

static int check_type_id(const char *type, const char *id, ct_error *err)
{
    if (!type || !id)
        return ct_error_set(err, CT_EINVAL, "resource: missing type or id");
    size_t tl = strnlen(type, 65);
    if (tl == 0 || tl > 64 || type[0] < 'A' || type[0] > 'Z')
        return ct_error_set(err, CT_EINVAL, "resource type '%.64s' is not a FHIR resource type", type);
    for (size_t i = 0; i < tl; i++) {
        char c = type[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return ct_error_set(err, CT_EINVAL, "resource type '%.64s' is not a FHIR resource type", type);
    }
    size_t il = strnlen(id, 65);
    if (il == 0 || il > 64)
        return ct_error_set(err, CT_EINVAL, "%s id must be 1 to 64 characters", type);
    for (size_t i = 0; i < il; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '.'))
            return ct_error_set(err, CT_EINVAL, "%s id '%.64s' has a character outside [A-Za-z0-9.-]",
                                type, id);
    }
    return CT_OK;
}

typedef struct current {
    int exists;
    int64_t version;
    int64_t last_updated_ms;
    int deleted;
} current;

static int read_current(ct_store *st, const char *type, const char *id, current *c, ct_error *err)
{
    memset(c, 0, sizeof *c);
    sqlite3_stmt *s = ct_store_stmt(st, STMT_RES_CURRENT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int ret = CT_OK;
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

/* Adds version c->version + 1 (a body, or a deletion marker when json is
 * NULL) and moves the resource row to it. */
static int add_version(ct_store *st, const char *type, const char *id, const current *c,
                       const char *json, size_t len, int64_t *version_out, ct_error *err)
{
    int64_t version = c->exists ? c->version + 1 : 1;
    int64_t now = ct_store_now_ms();
    /* A clock stepped back must not make version n+1 older than version n. */
    if (c->exists && now < c->last_updated_ms)
        now = c->last_updated_ms;
    int deleted = json == NULL;

    sqlite3_stmt *s = ct_store_stmt(st, STMT_RES_VERSION_INSERT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, version);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int(s, 5, deleted);
    if (json)
        sqlite3_bind_text(s, 6, json, (int)len, SQLITE_STATIC);
    int rc = CT_OK;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "writing %s/%s version %lld", type, id, (long long)version);
    ct_store_stmt_done(s);
    if (rc != CT_OK)
        return rc;

    if (!(s = ct_store_stmt(st, STMT_RES_UPSERT, err)))
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 3, version);
    sqlite3_bind_int64(s, 4, now);
    sqlite3_bind_int(s, 5, deleted);
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "moving %s/%s to version %lld", type, id, (long long)version);
    else if (sqlite3_changes(st->db) != 1)
        rc = ct_error_set(err, CT_EDB, "%s/%s changed while version %lld was written", type, id,
                          (long long)version);
    ct_store_stmt_done(s);
    if (rc == CT_OK && version_out)
        *version_out = version;
    return rc;
}

static int put_op(ct_store *st, const char *type, const char *id, const char *json, size_t len,
                  int64_t *version_out, ct_error *err)
{
    current c;
    int rc = read_current(st, type, id, &c, err);
    if (rc != CT_OK)
        return rc;
    return add_version(st, type, id, &c, json, len, version_out, err);
}

int ct_store_resource_put(ct_store *st, const char *type, const char *id,
                          const char *json, size_t len, int64_t *version_out, ct_error *err)
{
    if (!st || !json)
        return ct_error_set(err, CT_EINVAL, "ct_store_resource_put: missing argument");
    int rc = check_type_id(type, id, err);
    if (rc != CT_OK)
        return rc;
    if (len > CT_STORE_RESOURCE_MAX_BYTES)
        return ct_error_set(err, CT_ELIMIT, "%s/%s: body of %zu bytes exceeds the limit of %d",
                            type, id, len, CT_STORE_RESOURCE_MAX_BYTES);
    if (memchr(json, '\0', len))
        return ct_error_set(err, CT_EINVAL, "%s/%s: body holds a NUL byte", type, id);
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, put_op(st, type, id, json, len, version_out, err), err);
}

static int delete_op(ct_store *st, const char *type, const char *id, int64_t *version_out, ct_error *err)
{
    current c;
    int rc = read_current(st, type, id, &c, err);
    if (rc != CT_OK)
        return rc;
    if (!c.exists)
        return ct_error_set(err, CT_ENOTFOUND, "no %s/%s", type, id);
    if (c.deleted) {
        if (version_out)
            *version_out = c.version;
        return CT_OK;
    }
    return add_version(st, type, id, &c, NULL, 0, version_out, err);
}

int ct_store_resource_delete(ct_store *st, const char *type, const char *id,
                             int64_t *version_out, ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_resource_delete: no store");
    int rc = check_type_id(type, id, err);
    if (rc != CT_OK)
        return rc;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, delete_op(st, type, id, version_out, err), err);
}

int ct_store_resource_get(ct_store *st, const char *type, const char *id, int64_t version,
                          char **json, int64_t *version_out, int64_t *last_updated_ms,
                          int *deleted, ct_error *err)
{
    if (json)
        *json = NULL;
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_resource_get: no store");
    int rc = check_type_id(type, id, err);
    if (rc != CT_OK)
        return rc;
    if (version < 0)
        return ct_error_set(err, CT_EINVAL, "%s/%s: version %lld is not a version", type, id,
                            (long long)version);
    sqlite3_stmt *s = ct_store_stmt(st, version == 0 ? STMT_RES_GET_LATEST : STMT_RES_GET_VERSION, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, type, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, id, -1, SQLITE_STATIC);
    if (version > 0)
        sqlite3_bind_int64(s, 3, version);
    int step = sqlite3_step(s);
    rc = CT_OK;
    if (step == SQLITE_DONE) {
        rc = version == 0 ? ct_error_set(err, CT_ENOTFOUND, "no %s/%s", type, id)
                          : ct_error_set(err, CT_ENOTFOUND, "no %s/%s version %lld", type, id,
                                         (long long)version);
    } else if (step != SQLITE_ROW) {
        rc = ct_store_db_error(st, err, "reading %s/%s", type, id);
    } else {
        int is_deleted = sqlite3_column_int(s, 2);
        if (json && !is_deleted) {
            const unsigned char *body = sqlite3_column_text(s, 3);
            size_t len = (size_t)sqlite3_column_bytes(s, 3);
            char *copy = body ? malloc(len + 1) : NULL;
            if (!body) {
                rc = ct_error_set(err, CT_EDB, "%s: %s/%s has a version without a body", st->path, type, id);
            } else if (!copy) {
                rc = ct_error_set(err, CT_ENOMEM, "%s/%s: out of memory for %zu bytes", type, id, len);
            } else {
                memcpy(copy, body, len);
                copy[len] = '\0';
                *json = copy;
            }
        }
        if (rc == CT_OK) {
            if (version_out)
                *version_out = sqlite3_column_int64(s, 0);
            if (last_updated_ms)
                *last_updated_ms = sqlite3_column_int64(s, 1);
            if (deleted)
                *deleted = is_deleted;
        }
    }
    ct_store_stmt_done(s);
    return rc;
}
