/* Shared by the audit room's tests: a fresh database in a temporary folder
 * per test, entries appended quickly, and a plain sqlite3 connection that
 * plays the attacker (dropping the triggers as anyone with the file can). */
#ifndef AUDIT_TEST_UTIL_H
#define AUDIT_TEST_UTIL_H

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/store.h"

typedef struct fixture {
    char dir[64];
    char db[128];
    ct_store *st;
} fixture;

static inline int fixture_setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ct-audit.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/ct.db", f->dir);
    ct_error err;
    if (ct_store_open(f->db, &f->st, &err) != CT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static inline int fixture_teardown(void **state)
{
    fixture *f = *state;
    ct_store_close(f->st);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

/* Appends entry number i (a read by one of two clinicians, about one of
 * two patients), time 1714564800000 + 1000 i. */
static inline int append_n(ct_store *st, int i)
{
    char rid[32], res[32];
    snprintf(rid, sizeof rid, "req-%d", i);
    snprintf(res, sizeof res, "ecg-%d", i);
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.time_ms = INT64_C(1714564800000) + 1000 * (int64_t)i;
    e.actor.name = i % 2 ? "alice" : "bob";
    e.actor.role = "clinician";
    e.actor.client = "192.0.2.7";
    e.action = i % 3 ? "read" : "search";
    e.resource_type = "Observation";
    e.resource_id = i % 3 ? res : "";
    e.resource_version = i % 3 ? 1 : 0;
    e.patient = i % 2 ? "mitdb-100" : "mitdb-101";
    e.request_id = rid;
    e.detail = i % 4 == 0 ? "{\"note\":\"x\"}" : NULL;
    ct_error err;
    int rc = ct_audit_append(st, &e, NULL, &err);
    if (rc != CT_OK)
        fprintf(stderr, "append %d: %s\n", i, err.msg);
    return rc;
}

static inline void append_many(ct_store *st, int from, int to)
{
    for (int i = from; i <= to; i++)
        if (append_n(st, i) != CT_OK)
            abort();
}

static inline sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        abort();
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Runs sql; returns SQLite's result code, and its message in msg. */
static inline int raw_exec_msg(sqlite3 *db, const char *sql, char *msg, size_t cap)
{
    char *m = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &m);
    if (msg)
        snprintf(msg, cap, "%s", m ? m : "");
    sqlite3_free(m);
    return rc;
}

static inline void raw_exec(sqlite3 *db, const char *sql)
{
    char msg[512];
    if (raw_exec_msg(db, sql, msg, sizeof msg) != SQLITE_OK) {
        fprintf(stderr, "%s: %s\n", sql, msg);
        abort();
    }
}

static inline long long raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    long long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

/* What an attacker with the file does first. */
static inline void drop_triggers(sqlite3 *db)
{
    raw_exec(db, "DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete;"
                 " DROP TRIGGER audit_log_append_only; DROP TRIGGER audit_checkpoint_no_update;"
                 " DROP TRIGGER audit_checkpoint_no_delete; DROP TRIGGER audit_checkpoint_append_only");
}

#endif
