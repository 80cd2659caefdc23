/* store: opening cardiotwin's SQLite database, migrating it, and the
 * transactions every other store file builds on.
 *
 * The one idea: the schema is the ordered list of migrations compiled into
 * the binary (migrations/NNNN_name.sql, embedded by cmake/embed.cmake), and
 * the database remembers which of them it has seen, by version, name and
 * SHA-256, in schema_migration. Opening compares the two histories: a
 * database that is behind is brought forward one file per transaction; one
 * that is ahead (written by a newer cardiotwin) or whose history differs (a
 * released migration was edited) is refused before anything is written. The
 * connection runs in WAL mode (readers never block the writer; a crash loses
 * at most the transaction in flight), with foreign keys enforced, a busy
 * timeout instead of immediate SQLITE_BUSY, and SQLite's defensive settings.
 *
 * Every write transaction is BEGIN IMMEDIATE: it takes the write lock up
 * front, so two writers queue on the busy timeout instead of one failing
 * with SQLITE_BUSY halfway through (a deferred transaction that read first
 * cannot wait for the lock in WAL mode). */
#include "store_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cardiotwin/embedded.h"

#if SQLITE_VERSION_NUMBER < 3037000
#error "cardiotwin needs SQLite 3.37 or newer (STRICT tables, sqlite_schema)"
#endif

/* PRAGMA application_id: "CTwn", so that file(1) and we can tell a
 * cardiotwin database from another application's SQLite file. */
#define CT_STORE_APPLICATION_ID 0x4354776e
#define CT_STORE_BUSY_TIMEOUT_MS 5000
/* How long a TRUNCATE checkpoint waits for the writer and the readers. */
#define CT_STORE_CHECKPOINT_WAIT_MS 250

static const char *const stmt_sql[STMT_COUNT_] = {
    [STMT_BEGIN] = "BEGIN IMMEDIATE",
    [STMT_COMMIT] = "COMMIT",
    [STMT_ROLLBACK] = "ROLLBACK",
    [STMT_SAVEPOINT] = "SAVEPOINT ct_op",
    [STMT_RELEASE] = "RELEASE ct_op",
    [STMT_ROLLBACK_TO] = "ROLLBACK TO ct_op",
    [STMT_PATIENT_INSERT] =
        "INSERT INTO patient(identifier, name, sex, age_years) VALUES (?1, ?2, ?3, ?4)",
    [STMT_PATIENT_GET] =
        "SELECT id, identifier, name, sex, age_years FROM patient WHERE identifier = ?1",
    [STMT_RECORD_FIND] =
        "SELECT id, patient_id, name, source, fs_hz, n_samples, n_signals, content_sha256,"
        " comments, imported_ms FROM record WHERE source = ?1 AND name = ?2",
    [STMT_RECORD_INSERT] =
        "INSERT INTO record(patient_id, source, name, fs_hz, n_samples, n_signals,"
        " content_sha256, comments, imported_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    [STMT_RECORD_DELETE] = "DELETE FROM record WHERE id = ?1",
    [STMT_SIGNAL_INSERT] =
        "INSERT INTO signal(record_id, idx, description, units, gain_adu_per_unit, baseline_adu,"
        " adc_zero, adc_resolution_bits, initial_value, checksum, n_samples)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [STMT_SIGNAL_LIST] =
        "SELECT id, record_id, idx, description, units, gain_adu_per_unit, baseline_adu,"
        " adc_zero, adc_resolution_bits, initial_value, checksum, n_samples"
        " FROM signal WHERE record_id = ?1 ORDER BY idx",
    [STMT_SIGNAL_GET] = "SELECT n_samples FROM signal WHERE id = ?1",
    [STMT_SIGNAL_GROW] = "UPDATE signal SET n_samples = ?2 WHERE id = ?1 AND n_samples < ?2",
    [STMT_RECORD_GROW] =
        "UPDATE record SET n_samples = ?2 WHERE id = (SELECT record_id FROM signal WHERE id = ?1)"
        " AND n_samples < ?2",
    [STMT_BLOCK_LAST] =
        "SELECT start_sample, n_samples, samples FROM signal_block WHERE signal_id = ?1"
        " ORDER BY start_sample DESC LIMIT 1",
    [STMT_BLOCK_RANGE] =
        "SELECT start_sample, n_samples, samples FROM signal_block WHERE signal_id = ?1"
        " AND start_sample >= ?2 AND start_sample < ?3 ORDER BY start_sample",
    [STMT_BLOCK_INSERT] =
        "INSERT INTO signal_block(signal_id, start_sample, n_samples, samples) VALUES (?1, ?2, ?3, ?4)",
    [STMT_BLOCK_UPDATE] =
        "UPDATE signal_block SET n_samples = ?3, samples = ?4 WHERE signal_id = ?1 AND start_sample = ?2",
    [STMT_ANN_INSERT] =
        "INSERT INTO annotation(record_id, annotator, sample, code, subtype, chan, num, aux)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    [STMT_ANN_READ] =
        "SELECT sample, code, subtype, chan, num, aux FROM annotation"
        " WHERE record_id = ?1 AND annotator = ?2 ORDER BY sample, id",
    [STMT_RES_CURRENT] =
        "SELECT version, last_updated_ms, deleted FROM resource WHERE type = ?1 AND id = ?2",
    [STMT_RES_VERSION_INSERT] =
        "INSERT INTO resource_version(type, id, version, last_updated_ms, deleted, body)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* The WHERE makes the move from version n to n+1 conditional on the row
     * still being at n: a lost update shows up as zero changes. */
    [STMT_RES_UPSERT] =
        "INSERT INTO resource(type, id, version, last_updated_ms, deleted) VALUES (?1, ?2, ?3, ?4, ?5)"
        " ON CONFLICT(type, id) DO UPDATE SET version = excluded.version,"
        " last_updated_ms = excluded.last_updated_ms, deleted = excluded.deleted"
        " WHERE resource.version = excluded.version - 1",
    [STMT_RES_GET_LATEST] =
        "SELECT v.version, v.last_updated_ms, v.deleted, v.body FROM resource r"
        " JOIN resource_version v ON v.type = r.type AND v.id = r.id AND v.version = r.version"
        " WHERE r.type = ?1 AND r.id = ?2",
    [STMT_RES_GET_VERSION] =
        "SELECT version, last_updated_ms, deleted, body FROM resource_version"
        " WHERE type = ?1 AND id = ?2 AND version = ?3",
};

/* ---- small shared helpers ------------------------------------------------- */

int64_t ct_store_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ct_store_db_error(ct_store *st, ct_error *err, const char *fmt, ...)
{
    char what[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return ct_error_set(err, CT_EDB, "%s: %s", what, st && st->db ? sqlite3_errmsg(st->db) : "no database");
}

sqlite3_stmt *ct_store_stmt_from(ct_store *st, enum ct_store_stmt_id id, const char *sql, const char *what,
                                 ct_error *err)
{
    if (st->stmt[id])
        return st->stmt[id];
    if (!sql) {
        ct_error_set(err, CT_EINVAL, "%s: no SQL for %s statement %d", st->path, what, (int)id);
        return NULL;
    }
    if (sqlite3_prepare_v3(st->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st->stmt[id], NULL) != SQLITE_OK) {
        ct_store_db_error(st, err, "%s: preparing \"%.60s\"", st->path, sql);
        sqlite3_finalize(st->stmt[id]);
        st->stmt[id] = NULL;
        return NULL;
    }
    return st->stmt[id];
}

sqlite3_stmt *ct_store_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err)
{
    return ct_store_stmt_from(st, id, stmt_sql[id], "store", err);
}

int ct_store_name_ok(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return 0;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-'))
            return 0;
    }
    return 1;
}

int ct_store_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || *s == 0x7f)
            return 0;
    return 1;
}

int ct_store_grow(void **v, size_t *cap, size_t n, size_t elem_size, size_t first_cap)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : first_cap;
    if (ncap < *cap || ncap > SIZE_MAX / elem_size)
        return -1;
    void *nv = realloc(*v, ncap * elem_size);
    if (!nv)
        return -1;
    *v = nv;
    *cap = ncap;
    return 0;
}

void ct_store_stmt_done(sqlite3_stmt *s)
{
    if (s) {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
    }
}

int ct_store_copy_text(ct_store *st, sqlite3_stmt *s, int col, char *dst, size_t cap,
                       const char *what, ct_error *err)
{
    const unsigned char *txt = sqlite3_column_text(s, col);
    size_t len = (size_t)sqlite3_column_bytes(s, col);
    if (!txt) {
        if (sqlite3_column_type(s, col) != SQLITE_NULL)
            return ct_store_db_error(st, err, "reading %s", what);
        len = 0;
    }
    if (len >= cap)
        return ct_error_set(err, CT_EDB, "%s: stored %s is %zu bytes, more than the %zu this "
                            "build reads", st->path, what, len, cap - 1);
    if (len)
        memcpy(dst, txt, len);
    dst[len] = '\0';
    return CT_OK;
}

int ct_store_check_text(const char *s, size_t cap, int required, const char *field,
                        ct_error *err)
{
    if (!s)
        return ct_error_set(err, CT_EINVAL, "%s is missing", field);
    size_t len = strnlen(s, cap);
    if (len == cap)
        return ct_error_set(err, CT_EINVAL, "%s is longer than %zu bytes", field, cap - 1);
    if (required && len == 0)
        return ct_error_set(err, CT_EINVAL, "%s is empty", field);
    return CT_OK;
}

/* Runs a statement that takes no parameters and whose rows do not matter. */
static int step_simple(ct_store *st, enum ct_store_stmt_id id, ct_error *err, const char *what)
{
    sqlite3_stmt *s = ct_store_stmt(st, id, err);
    if (!s)
        return CT_EDB;
    int rc = sqlite3_step(s);
    int out = CT_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        out = ct_store_db_error(st, err, "%s: %s", st->path, what);
    ct_store_stmt_done(s);
    return out;
}

/* ---- transactions ---------------------------------------------------------- */

/* A ROLLBACK that failed (out of memory) can leave a transaction open that
 * nobody owns; end it before starting the next one. */
static void end_orphan_transaction(ct_store *st)
{
    if (!st->in_txn && !sqlite3_get_autocommit(st->db))
        step_simple(st, STMT_ROLLBACK, NULL, "rollback");
}

/* ct_store_wal_watch's callbacks (st->wal_watch). */
typedef struct wal_watch {
    void (*on_commit)(void *user, int wal_pages);
    void (*before_begin)(void *user);
    void *user;
} wal_watch;

int ct_store_begin(ct_store *st, ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_begin: no store");
    if (st->in_txn)
        return ct_error_set(err, CT_EINVAL, "%s: a transaction is already open (transactions do not nest)",
                            st->path);
    end_orphan_transaction(st);
    const wal_watch *w = st->wal_watch;
    if (w && w->before_begin)
        w->before_begin(w->user);
    int rc = step_simple(st, STMT_BEGIN, err, "cannot begin a transaction");
    if (rc != CT_OK)
        return rc;
    st->in_txn = 1;
    st->txn_broken = 0;
    return CT_OK;
}

int ct_store_commit(ct_store *st, ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_commit: no store");
    if (!st->in_txn)
        return ct_error_set(err, CT_EINVAL, "%s: commit without a transaction", st->path);
    if (st->txn_broken || sqlite3_get_autocommit(st->db)) {
        st->in_txn = 0;
        st->txn_broken = 0;
        return ct_error_set(err, CT_EDB, "%s: the transaction was rolled back after an earlier "
                            "error; nothing of it was written", st->path);
    }
    int rc = step_simple(st, STMT_COMMIT, err, "commit failed, nothing was written");
    if (rc != CT_OK && !sqlite3_get_autocommit(st->db))
        step_simple(st, STMT_ROLLBACK, NULL, "rollback");
    st->in_txn = 0;
    st->txn_broken = 0;
    return rc;
}

void ct_store_rollback(ct_store *st)
{
    if (!st || !st->in_txn)
        return;
    if (!sqlite3_get_autocommit(st->db))
        step_simple(st, STMT_ROLLBACK, NULL, "rollback");
    st->in_txn = 0;
    st->txn_broken = 0;
}

int ct_store_op_begin(ct_store *st, ct_error *err)
{
    if (!st->in_txn) {
        end_orphan_transaction(st);
        return step_simple(st, STMT_BEGIN, err, "cannot begin a transaction");
    }
    if (st->txn_broken || sqlite3_get_autocommit(st->db)) {
        st->txn_broken = 1;
        return ct_error_set(err, CT_EDB, "%s: the current transaction was rolled back after an "
                            "earlier error; roll back and start again", st->path);
    }
    return step_simple(st, STMT_SAVEPOINT, err, "cannot open a savepoint");
}

int ct_store_op_end(ct_store *st, int rc, ct_error *err)
{
    if (rc == CT_OK) {
        rc = step_simple(st, st->in_txn ? STMT_RELEASE : STMT_COMMIT, err,
                         st->in_txn ? "cannot release a savepoint" : "commit failed, nothing was written");
        if (rc == CT_OK)
            return CT_OK;
    }
    if (st->in_txn) {
        if (sqlite3_get_autocommit(st->db)) {
            /* SQLite rolled back the whole transaction (I/O error, disk
             * full ...): the caller must learn it at commit. */
            st->txn_broken = 1;
        } else if (step_simple(st, STMT_ROLLBACK_TO, NULL, "rollback to savepoint") != CT_OK ||
                   step_simple(st, STMT_RELEASE, NULL, "release savepoint") != CT_OK) {
            st->txn_broken = 1;
        }
    } else if (!sqlite3_get_autocommit(st->db)) {
        step_simple(st, STMT_ROLLBACK, NULL, "rollback");
    }
    return rc;
}

/* ---- migrations ---------------------------------------------------------------- */

static int sha256_hex(const unsigned char *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1 || md_len != 32)
        return CT_ENOMEM;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
    return CT_OK;
}

/* The version in "0007_add_beats.sql", or -1 when the name is not of that
 * form (four digits, '_', lower-case words, ".sql"). */
static int migration_version(const char *name)
{
    size_t len = strlen(name);
    if (len < 10 || strcmp(name + len - 4, ".sql") != 0 || name[4] != '_')
        return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    for (size_t i = 5; i < len - 4; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return -1;
    }
    return v;
}

/* A bad list is a build mistake, not a user's: say exactly what to fix. */
static int validate_migrations(const ct_embedded_file *m, size_t n, ct_error *err)
{
    if (!m || n == 0)
        return ct_error_set(err, CT_EINVAL, "no migrations are embedded in this build");
    if (n > 9999)
        return ct_error_set(err, CT_EINVAL, "%zu migrations: at most 9999 fit NNNN_", n);
    for (size_t i = 0; i < n; i++) {
        if (!m[i].name || !m[i].data)
            return ct_error_set(err, CT_EINVAL, "migration %zu has no name or no text", i + 1);
        int v = migration_version(m[i].name);
        if (v < 0)
            return ct_error_set(err, CT_EINVAL, "migration %s: name must be NNNN_lower_case_words.sql",
                                m[i].name);
        if ((size_t)v != i + 1)
            return ct_error_set(err, CT_EINVAL, "migration %s: expected version %04zu here (versions "
                                "start at 0001 and go up by one, without gaps)", m[i].name, i + 1);
        if (m[i].size == 0 || m[i].data[m[i].size] != '\0' ||
            strlen((const char *)m[i].data) != m[i].size)
            return ct_error_set(err, CT_EINVAL, "migration %s: empty, or holds a NUL byte", m[i].name);
    }
    return CT_OK;
}

int ct_store_schema_version_latest(void)
{
    if (ct_migrations_count == 0 || !ct_migrations[ct_migrations_count - 1].name)
        return 0;
    return migration_version(ct_migrations[ct_migrations_count - 1].name);
}

int ct_store_schema_version(ct_store *st)
{
    return st ? st->schema_version : -1;
}

/* Runs one SQL text with no parameters, for set-up and migrations. */
static int exec_sql(ct_store *st, const char *sql, ct_error *err, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        ct_error_set(err, CT_EDB, "%s: %s: %s", st->path, what, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return CT_EDB;
    }
    return CT_OK;
}

/* First column of the first row of sql as an integer (0 when no row). */
static int query_int(ct_store *st, const char *sql, int64_t *out, ct_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    *out = 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(s, 0);
            rc = SQLITE_DONE;
        }
    }
    int ret = CT_OK;
    if (rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s", st->path);
    sqlite3_finalize(s);
    return ret;
}

static int query_text(ct_store *st, const char *sql, char *out, size_t cap, ct_error *err)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
    out[0] = '\0';
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            const unsigned char *t = sqlite3_column_text(s, 0);
            snprintf(out, cap, "%s", t ? (const char *)t : "");
            rc = SQLITE_DONE;
        }
    }
    int ret = CT_OK;
    if (rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s", st->path);
    sqlite3_finalize(s);
    return ret;
}

/* Compares the database's migration history with ours; *applied gets the
 * newest version applied (0 for a new database). Nothing is written. */
static int check_history(ct_store *st, const ct_embedded_file *m, size_t n, int *applied,
                         ct_error *err)
{
    int64_t app_id = 0, has_table = 0, n_objects = 0, user_version = 0, newest = 0;
    int rc;
    *applied = 0;
    if ((rc = query_int(st, "PRAGMA application_id", &app_id, err)) != CT_OK ||
        (rc = query_int(st, "PRAGMA user_version", &user_version, err)) != CT_OK ||
        (rc = query_int(st, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND "
                            "name = 'schema_migration'", &has_table, err)) != CT_OK ||
        (rc = query_int(st, "SELECT count(*) FROM sqlite_schema", &n_objects, err)) != CT_OK)
        return rc;
    if (app_id != 0 && app_id != CT_STORE_APPLICATION_ID)
        return ct_error_set(err, CT_EDB, "%s: an SQLite database of another application "
                            "(application_id 0x%08llx), not cardiotwin's", st->path,
                            (unsigned long long)(uint32_t)app_id);
    if (!has_table) {
        if (n_objects > 0 || user_version != 0)
            return ct_error_set(err, CT_EDB, "%s: an SQLite database, but not cardiotwin's (it has "
                                "%lld schema objects and no schema_migration table)",
                                st->path, (long long)n_objects);
        return CT_OK;
    }
    if ((rc = query_int(st, "SELECT ifnull(max(version), 0) FROM schema_migration", &newest, err)) != CT_OK)
        return rc;
    int64_t seen = newest > user_version ? newest : user_version;
    if (seen > (int64_t)n)
        return ct_error_set(err, CT_EVERSION, "%s: schema version %lld is newer than this cardiotwin "
                            "(knows up to %zu); upgrade cardiotwin", st->path, (long long)seen, n);
    if (user_version != newest)
        return ct_error_set(err, CT_EDB, "%s: user_version is %lld but schema_migration ends at "
                            "version %lld; the migration history is damaged", st->path,
                            (long long)user_version, (long long)newest);

    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT version, name, sha256 FROM schema_migration ORDER BY version",
                           -1, &s, NULL) != SQLITE_OK)
        return ct_store_db_error(st, err, "%s: reading schema_migration", st->path);
    int expect = 1;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        int64_t v = sqlite3_column_int64(s, 0);
        const char *name = (const char *)sqlite3_column_text(s, 1);
        const char *sha = (const char *)sqlite3_column_text(s, 2);
        if (v != expect) {
            rc = ct_error_set(err, CT_EDB, "%s: schema_migration lists version %lld where %d was "
                              "expected; the migration history is damaged", st->path, (long long)v, expect);
            goto out;
        }
        const ct_embedded_file *f = &m[expect - 1];
        if (!name || strcmp(name, f->name) != 0) {
            rc = ct_error_set(err, CT_EDB, "%s: version %d was applied as %s, but this cardiotwin "
                              "calls it %s; a released migration must never be renamed",
                              st->path, expect, name ? name : "(null)", f->name);
            goto out;
        }
        char want[65];
        if (sha256_hex(f->data, f->size, want) != CT_OK) {
            rc = ct_error_set(err, CT_ENOMEM, "cannot compute SHA-256");
            goto out;
        }
        if (!sha || strcmp(sha, want) != 0) {
            rc = ct_error_set(err, CT_EDB, "%s: migration %s was applied with sha256 %.12s..., but "
                              "this cardiotwin's copy has %.12s...; a released migration must never be "
                              "edited (add a new one instead)", st->path, f->name, sha ? sha : "(null)", want);
            goto out;
        }
        expect++;
    }
    if (rc != SQLITE_DONE) {
        rc = ct_store_db_error(st, err, "%s: reading schema_migration", st->path);
        goto out;
    }
    *applied = expect - 1;
    rc = CT_OK;
out:
    sqlite3_finalize(s);
    return rc;
}

/* Applies migration `version` (1-based) in its own transaction. */
static int apply_migration(ct_store *st, const ct_embedded_file *f, int version, ct_error *err)
{
    char sha[65];
    if (sha256_hex(f->data, f->size, sha) != CT_OK)
        return ct_error_set(err, CT_ENOMEM, "cannot compute SHA-256");
    int rc = exec_sql(st, "BEGIN IMMEDIATE", err, "cannot begin the migration transaction");
    if (rc != CT_OK)
        return rc;
    int64_t done = 0;
    char sql[256];
    rc = exec_sql(st, "CREATE TABLE IF NOT EXISTS schema_migration ("
                      " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                      " sha256 TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
                  err, "creating schema_migration");
    /* Another process may have migrated while we waited for the lock. */
    if (rc == CT_OK) {
        snprintf(sql, sizeof sql, "SELECT count(*) FROM schema_migration WHERE version >= %d", version);
        rc = query_int(st, sql, &done, err);
    }
    if (rc == CT_OK && done) {
        exec_sql(st, "ROLLBACK", NULL, "rollback");
        return CT_OK;
    }
    if (rc == CT_OK) {
        snprintf(sql, sizeof sql, "PRAGMA application_id = %d", CT_STORE_APPLICATION_ID);
        rc = exec_sql(st, sql, err, "setting application_id");
    }
    if (rc == CT_OK) {
        char what[128];
        snprintf(what, sizeof what, "migration %s failed", f->name);
        rc = exec_sql(st, (const char *)f->data, err, what);
    }
    if (rc == CT_OK) {
        /* Foreign keys are off while migrating (a table rebuild needs them
         * off, and the pragma cannot change inside a transaction); check
         * what they would have refused before committing. */
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(st->db, "PRAGMA foreign_key_check", -1, &s, NULL) != SQLITE_OK) {
            rc = ct_store_db_error(st, err, "%s: checking foreign keys after %s", st->path, f->name);
        } else {
            int r = sqlite3_step(s);
            if (r == SQLITE_ROW) {
                const char *tbl = (const char *)sqlite3_column_text(s, 0);
                const char *parent = (const char *)sqlite3_column_text(s, 2);
                rc = ct_error_set(err, CT_EDB, "%s: migration %s leaves a row of %s pointing at a "
                                  "missing %s row (rowid %lld)", st->path, f->name, tbl ? tbl : "?",
                                  parent ? parent : "?", (long long)sqlite3_column_int64(s, 1));
            } else if (r != SQLITE_DONE) {
                rc = ct_store_db_error(st, err, "%s: checking foreign keys after %s", st->path, f->name);
            }
            sqlite3_finalize(s);
        }
    }
    if (rc == CT_OK) {
        sqlite3_stmt *s = NULL;
        if (sqlite3_prepare_v2(st->db, "INSERT INTO schema_migration(version, name, sha256, applied_ms)"
                               " VALUES (?1, ?2, ?3, ?4)", -1, &s, NULL) != SQLITE_OK) {
            rc = ct_store_db_error(st, err, "%s: recording %s", st->path, f->name);
        } else {
            sqlite3_bind_int(s, 1, version);
            sqlite3_bind_text(s, 2, f->name, -1, SQLITE_STATIC);
            sqlite3_bind_text(s, 3, sha, -1, SQLITE_STATIC);
            sqlite3_bind_int64(s, 4, ct_store_now_ms());
            if (sqlite3_step(s) != SQLITE_DONE)
                rc = ct_store_db_error(st, err, "%s: recording %s", st->path, f->name);
            sqlite3_finalize(s);
        }
    }
    if (rc == CT_OK) {
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", version);
        rc = exec_sql(st, sql, err, "setting user_version");
    }
    if (rc == CT_OK)
        rc = exec_sql(st, "COMMIT", err, "committing a migration");
    if (rc != CT_OK) {
        if (!sqlite3_get_autocommit(st->db))
            exec_sql(st, "ROLLBACK", NULL, "rollback");
        if (err) {
            char msg[CT_ERROR_MSG_MAX];
            memcpy(msg, err->msg, sizeof msg);
            ct_error_set(err, rc, "%s; rolled back, the schema stays at version %d", msg, version - 1);
        }
        return rc;
    }
    return CT_OK;
}

static int migrate(ct_store *st, const ct_embedded_file *m, size_t n, ct_error *err)
{
    int applied = 0;
    int rc = check_history(st, m, n, &applied, err);
    if (rc != CT_OK)
        return rc;
    if ((size_t)applied < n) {
        if (sqlite3_db_readonly(st->db, "main") == 1)
            return ct_error_set(err, CT_EDB, "%s: read-only, and its schema (version %d) must be "
                                "migrated to version %zu first", st->path, applied, n);
        if ((rc = exec_sql(st, "PRAGMA foreign_keys = OFF", err, "disabling foreign keys")) != CT_OK)
            return rc;
        for (size_t i = (size_t)applied; i < n && rc == CT_OK; i++)
            rc = apply_migration(st, &m[i], (int)i + 1, err);
        if (rc != CT_OK)
            return rc;
        /* Re-read: what another process applied meanwhile is checked too. */
        if ((rc = check_history(st, m, n, &applied, err)) != CT_OK)
            return rc;
    }
    st->schema_version = applied;
    return CT_OK;
}

/* ---- open and close ------------------------------------------------------------- */

/* SQLite would create the file 0644; patient data is the owner's alone, so
 * the file is created here first, 0600, and SQLite gives its -wal and -shm
 * files the same mode. *created tells the caller to remove it on failure. */
static int create_private(const char *path, int *created, ct_error *err)
{
    *created = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            return CT_OK;
        return ct_error_set(err, CT_EIO, "%s: cannot create the database file: %s", path, strerror(errno));
    }
    *created = 1;
    int rc = CT_OK;
    if (fchmod(fd, 0600) != 0)
        rc = ct_error_set(err, CT_EIO, "%s: cannot set mode 0600: %s", path, strerror(errno));
    close(fd);
    return rc;
}

/* Waiting for the write lock. SQLite's own busy timeout sleeps 1, 2, 5,
 * 10 ... up to 100 ms between attempts, so under several writers a waiting
 * one sleeps through many short transactions of the others (ours last about
 * a millisecond) and its wait grows far beyond the queue ahead of it: with
 * eight gateways posting ECG, a p99 of 200 ms for 3 ms of work. Here the
 * sleep starts at 50 us and doubles to at most 1 ms, so a writer retries
 * about as often as the lock changes hands; the total wait is bounded by
 * CT_STORE_BUSY_TIMEOUT_MS as before. Not a fair queue (a newcomer may take
 * the lock before an older waiter); a process-wide FIFO of writers would
 * be, at the cost of state shared by every connection. The count of calls
 * is all the state needed: the sleeps are a fixed sequence. */
#define BUSY_FIRST_US 50L
#define BUSY_STEPS 5   /* 50 .. 800 us, then 1 ms */
#define BUSY_MAX_US 1000L

static int busy_wait(void *ctx, int n)
{
    const ct_store *st = ctx;
    long limit_ms = st->busy_limit_ms > 0 ? st->busy_limit_ms : CT_STORE_BUSY_TIMEOUT_MS;
    long slept_us = n < BUSY_STEPS ? BUSY_FIRST_US * ((1L << n) - 1)
                                   : BUSY_FIRST_US * ((1L << BUSY_STEPS) - 1) + (long)(n - BUSY_STEPS) * BUSY_MAX_US;
    if (slept_us >= limit_ms * 1000L)
        return 0;
    long us = n < BUSY_STEPS ? BUSY_FIRST_US << n : BUSY_MAX_US;
    struct timespec d = {0, us * 1000L};
    nanosleep(&d, NULL);
    return 1;
}

static int configure(ct_store *st, ct_error *err)
{
    sqlite3 *db = st->db;
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_handler(db, busy_wait, st);
    /* Hardening: no schema tricks, no double-quoted strings taken as
     * literals (a typo in a migration must fail), no functions from the
     * schema run with our privileges. */
    sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DML, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_DQS_DDL, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, (int *)NULL);

    /* The first read of the file: this is where "file is not a database"
     * and "database disk image is malformed" surface. */
    int64_t n = 0;
    int rc = query_int(st, "SELECT count(*) FROM sqlite_schema", &n, err);
    if (rc != CT_OK) {
        int primary = sqlite3_extended_errcode(db) & 0xff;
        if (primary == SQLITE_READONLY || primary == SQLITE_CANTOPEN)
            return ct_error_set(err, CT_EDB, "%s: cannot read it: %s (SQLite must be able to create "
                                "%s-shm and %s-wal: is its folder writable?)", st->path,
                                sqlite3_errmsg(db), st->path, st->path);
        return rc;
    }

    /* A block of samples (7200 bytes) fits one 8 KiB page whole; with
     * SQLite's default 4 KiB it would spill onto two overflow pages. Only a
     * new, empty database can still choose. */
    if (n == 0 && (rc = exec_sql(st, "PRAGMA page_size = 8192", err, "setting the page size")) != CT_OK)
        return rc;

    const char *file = sqlite3_db_filename(db, "main");
    int in_memory = !file || !*file;
    int read_only = sqlite3_db_readonly(db, "main") == 1;
    if (!in_memory && !read_only) {
        char mode[32];
        if ((rc = query_text(st, "PRAGMA journal_mode = WAL", mode, sizeof mode, err)) != CT_OK)
            return ct_error_prefix(err, "cannot switch to WAL journal mode");
        if (strcmp(mode, "wal") != 0)
            return ct_error_set(err, CT_EDB, "%s: journal mode is '%s', not 'wal' (WAL needs a local "
                                "file system and a writable folder for the -wal and -shm files)",
                                st->path, mode);
        if ((rc = exec_sql(st, "PRAGMA synchronous = NORMAL", err, "setting synchronous")) != CT_OK)
            return rc;
    }
    return CT_OK;
}

static int enable_foreign_keys(ct_store *st, ct_error *err)
{
    int rc = exec_sql(st, "PRAGMA foreign_keys = ON", err, "enabling foreign keys");
    if (rc != CT_OK)
        return rc;
    int64_t on = 0;
    if ((rc = query_int(st, "PRAGMA foreign_keys", &on, err)) != CT_OK)
        return rc;
    if (on != 1)
        return ct_error_set(err, CT_EDB, "%s: this SQLite cannot enforce foreign keys", st->path);
    return CT_OK;
}

int ct_store_open_migrations(const char *path, const ct_embedded_file *migrations,
                             size_t n_migrations, ct_store **out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ct_store_open: no output pointer");
    *out = NULL;
    if (!path || !*path)
        return ct_error_set(err, CT_EINVAL, "ct_store_open: no database path");
    int rc = validate_migrations(migrations, n_migrations, err);
    if (rc != CT_OK)
        return rc;
    if (sqlite3_libversion_number() < 3037000)
        return ct_error_set(err, CT_EUNSUPPORTED, "SQLite %s is too old: cardiotwin needs 3.37 or "
                            "newer (STRICT tables)", sqlite3_libversion());
    ct_store *st = calloc(1, sizeof *st);
    if (!st)
        return ct_error_set(err, CT_ENOMEM, "%s: out of memory", path);
    if (strlen(path) >= sizeof st->path) {
        free(st);
        return ct_error_set(err, CT_EINVAL, "database path is longer than %zu bytes", sizeof st->path - 1);
    }
    memcpy(st->path, path, strlen(path) + 1);

    int created = 0;
    int in_memory = strcmp(path, ":memory:") == 0;
    if (!in_memory && (rc = create_private(path, &created, err)) != CT_OK) {
        free(st);
        return rc;
    }
    int src = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                              NULL);
    if (src != SQLITE_OK) {
        rc = ct_error_set(err, CT_EDB, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(src));
    } else if ((rc = configure(st, err)) == CT_OK && (rc = migrate(st, migrations, n_migrations, err)) == CT_OK) {
        rc = enable_foreign_keys(st, err);
    }
    if (rc != CT_OK) {
        ct_store_close(st);
        struct stat sb;
        if (created && stat(path, &sb) == 0 && sb.st_size == 0)
            unlink(path);
        return rc;
    }
    *out = st;
    return CT_OK;
}

/* ---- the write-ahead log --------------------------------------------------------- */


static int on_wal_commit(void *ctx, sqlite3 *db, const char *schema, int wal_pages)
{
    (void)db;
    (void)schema;
    const wal_watch *w = ctx;
    w->on_commit(w->user, wal_pages);
    return SQLITE_OK;
}

void ct_store_wal_watch(ct_store *st, void (*on_commit)(void *user, int wal_pages), void (*before_begin)(void *user),
                        void *user)
{
    if (!st || !st->db)
        return;
    if (!on_commit) {
        /* SQLite's default: a checkpoint by the commit that crosses 1000 pages. */
        sqlite3_wal_autocheckpoint(st->db, 1000);
        free(st->wal_watch);
        st->wal_watch = NULL;
        return;
    }
    wal_watch *w = st->wal_watch ? st->wal_watch : malloc(sizeof *w);
    if (!w) {
        /* Without memory for the watch the connection keeps checkpointing
         * by itself: slower, never unbounded. */
        return;
    }
    w->on_commit = on_commit;
    w->before_begin = before_begin;
    w->user = user;
    st->wal_watch = w;
    /* Replaces the automatic checkpoint, which is itself a wal hook. */
    sqlite3_wal_hook(st->db, on_wal_commit, w);
}

int ct_store_checkpoint(ct_store *st, ct_store_checkpoint_mode mode, int *wal_pages, int *copied, ct_error *err)
{
    int log = 0, ckpt = 0;
    if (wal_pages)
        *wal_pages = 0;
    if (copied)
        *copied = 0;
    if (!st || !st->db)
        return ct_error_set(err, CT_EINVAL, "ct_store_checkpoint: no store");
    if (st->in_txn)
        return ct_error_set(err, CT_EINVAL, "%s: cannot checkpoint inside a transaction", st->path);
    int m = mode == CT_STORE_CHECKPOINT_TRUNCATE ? SQLITE_CHECKPOINT_TRUNCATE : SQLITE_CHECKPOINT_PASSIVE;
    /* A TRUNCATE waits for the writer and the readers; its caller holds
     * new writers back meanwhile, so it must give up soon, not in 5 s. */
    st->busy_limit_ms = m == SQLITE_CHECKPOINT_TRUNCATE ? CT_STORE_CHECKPOINT_WAIT_MS : 0;
    int rc = sqlite3_wal_checkpoint_v2(st->db, "main", m, &log, &ckpt);
    st->busy_limit_ms = 0;
    if (wal_pages)
        *wal_pages = log > 0 ? log : 0;
    if (copied)
        *copied = ckpt > 0 ? ckpt : 0;
    /* A PASSIVE one finds another checkpoint under way (another
     * connection's): that one does the work. */
    if (rc == SQLITE_OK || ((rc & 0xff) == SQLITE_BUSY && m == SQLITE_CHECKPOINT_PASSIVE))
        return CT_OK;
    if ((rc & 0xff) == SQLITE_BUSY)
        return ct_error_set(err, CT_EDB, "%s: checkpoint: the WAL stayed in use for %d ms (%d of %d pages copied)",
                            st->path, m == SQLITE_CHECKPOINT_TRUNCATE ? CT_STORE_CHECKPOINT_WAIT_MS : 0, ckpt, log);
    return ct_error_set(err, CT_EDB, "%s: checkpoint: %s", st->path, sqlite3_errmsg(st->db));
}

int ct_store_open(const char *path, ct_store **out, ct_error *err)
{
    return ct_store_open_migrations(path, ct_migrations, ct_migrations_count, out, err);
}

void ct_store_close(ct_store *st)
{
    if (!st)
        return;
    if (st->db) {
        if (st->in_txn)
            ct_store_rollback(st);
        for (int i = 0; i < STMT_COUNT_; i++)
            sqlite3_finalize(st->stmt[i]);
        /* Statements are all finalized, so this cannot fail with BUSY. */
        sqlite3_close(st->db);
    }
    free(st->wal_watch);
    free(st);
}
