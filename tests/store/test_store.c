/* Tests of the store room against real SQLite files in a fresh temporary
 * folder per test: opening and migrating (and refusing what must be
 * refused), patients, records, samples across block boundaries, annotations,
 * FHIR resource versions, foreign keys and transactions. A second
 * connection (plain sqlite3) looks at the file from outside, so that what
 * is asserted is what is on disk, not what the store believes. */
#define _XOPEN_SOURCE 700 /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "cardiotwin/embedded.h"
#include "cardiotwin/store.h"

typedef struct fixture {
    char dir[256];
    char path[PATH_MAX];
    ct_store *st;
} fixture;

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ct-store-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/cardiotwin.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ct_store_close(f->st);
    chmod(f->dir, 0700);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Opens the fixture's database with the embedded migrations. */
static ct_store *open_store(fixture *f)
{
    ct_error err = {0};
    int rc = ct_store_open(f->path, &f->st, &err);
    if (rc != CT_OK)
        fail_msg("open %s: %s", f->path, err.msg);
    return f->st;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        fail_msg("raw open %s: %s", path, db ? sqlite3_errmsg(db) : "?");
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    int64_t v = -999;
    if (sqlite3_step(s) == SQLITE_ROW)
        v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void raw_text(sqlite3 *db, const char *sql, char *out, size_t cap)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(db));
    out[0] = '\0';
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
}

static void raw_exec(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("exec %s: %s", sql, msg ? msg : "?");
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    assert_int_equal(EVP_Digest(data, len, md, &n, EVP_sha256(), NULL), 1);
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* A record with one signal, for the sample and annotation tests. */
static int64_t make_record(ct_store *st, const char *name, int n_signals, int64_t *signal_ids)
{
    ct_error err = {0};
    ct_store_record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.source, sizeof rec.source, "test");
    snprintf(rec.name, sizeof rec.name, "%s", name);
    rec.fs_hz = 360;
    rec.n_signals = n_signals;
    if (ct_store_record_insert(st, &rec, &err) != CT_OK)
        fail_msg("record %s: %s", name, err.msg);
    for (int i = 0; i < n_signals; i++) {
        ct_store_signal sig;
        memset(&sig, 0, sizeof sig);
        sig.record_id = rec.id;
        sig.index = i;
        snprintf(sig.description, sizeof sig.description, "lead%d", i);
        snprintf(sig.units, sizeof sig.units, "mV");
        sig.gain_adu_per_unit = 200;
        sig.adc_resolution_bits = 11;
        sig.adc_zero = 1024;
        sig.baseline_adu = 1024;
        if (ct_store_signal_insert(st, &sig, &err) != CT_OK)
            fail_msg("signal %d: %s", i, err.msg);
        signal_ids[i] = sig.id;
    }
    return rec.id;
}

/* Deterministic samples covering the whole int16 range, -32768 included. */
static void fill_samples(int16_t *v, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        int32_t u = (int32_t)((x >> 16) & 0xffff);
        v[i] = (int16_t)(u >= 32768 ? u - 65536 : u);
    }
    if (n > 1) {
        v[0] = -32768;
        v[1] = 32767;
    }
    if (n > 3601) {
        v[3600] = -1;
        v[3601] = -32768;
    }
}

/* ---- open and migrate -------------------------------------------------------- */

static void test_open_creates_and_migrates(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    assert_int_equal(ct_store_schema_version(st), ct_store_schema_version_latest());
    assert_true(ct_store_schema_version_latest() >= 1);
    assert_int_equal(ct_store_schema_version_latest(), (int)ct_migrations_count);

    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    /* A write makes SQLite create the -wal file: it must be private too. */
    ct_store_patient p = {.identifier = "p1", .age_years = -1};
    assert_int_equal(ct_store_patient_ensure(st, &p, NULL), CT_OK);
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", f->path);
    assert_int_equal(stat(wal, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    sqlite3 *db = raw_open(f->path);
    static const char *const tables[] = {"patient", "record", "signal", "signal_block", "annotation",
                                         "resource", "resource_version", "schema_migration"};
    for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
        char sql[256];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name='%s'",
                 tables[i]);
        if (raw_int(db, sql) != 1)
            fail_msg("table %s missing", tables[i]);
    }
    char mode[16];
    raw_text(db, "PRAGMA journal_mode", mode, sizeof mode);
    assert_string_equal(mode, "wal");
    assert_int_equal(raw_int(db, "PRAGMA page_size"), 8192);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), ct_store_schema_version_latest());
    assert_int_equal(raw_int(db, "PRAGMA application_id"), 0x4354776e);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migration"), (int64_t)ct_migrations_count);
    /* The recorded hash is the hash of the embedded file. */
    char want[65], got[65];
    sha256_hex(ct_migrations[0].data, ct_migrations[0].size, want);
    raw_text(db, "SELECT sha256 FROM schema_migration WHERE version = 1", got, sizeof got);
    assert_string_equal(got, want);
    raw_text(db, "SELECT name FROM schema_migration WHERE version = 1", got, sizeof got);
    assert_string_equal(got, "0001_initial.sql");
    char ok[16];
    raw_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    assert_string_equal(ok, "ok");
    sqlite3_close(db);
}

static void test_reopen_applies_nothing(void **state)
{
    fixture *f = *state;
    open_store(f);
    ct_store_close(f->st);
    f->st = NULL;
    sqlite3 *db = raw_open(f->path);
    /* Mark the row: a re-applied migration would replace applied_ms. */
    raw_exec(db, "UPDATE schema_migration SET applied_ms = 12345");
    sqlite3_close(db);

    open_store(f);
    assert_int_equal(ct_store_schema_version(f->st), ct_store_schema_version_latest());
    db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM schema_migration"), (int64_t)ct_migrations_count);
    assert_int_equal(raw_int(db, "SELECT min(applied_ms) FROM schema_migration"), 12345);
    sqlite3_close(db);
}

static void test_newer_schema_refused(void **state)
{
    fixture *f = *state;
    open_store(f);
    ct_store_close(f->st);
    f->st = NULL;
    sqlite3 *db = raw_open(f->path);
    /* One version past the newest this build knows, whatever that is. */
    int future = ct_store_schema_version_latest() + 1;
    char sql[256], future_msg[64];
    snprintf(sql, sizeof sql, "INSERT INTO schema_migration VALUES (%d, '%04d_future.sql', "
             "'0000000000000000000000000000000000000000000000000000000000000000', 1)", future, future);
    raw_exec(db, sql);
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", future);
    raw_exec(db, sql);
    sqlite3_close(db);
    snprintf(future_msg, sizeof future_msg, "schema version %d is newer", future);

    ct_error err = {0};
    ct_store *st = NULL;
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EVERSION);
    assert_null(st);
    assert_int_equal(err.code, CT_EVERSION);
    char want[PATH_MAX + 128];
    snprintf(want, sizeof want, "%s: schema version %d is newer than this cardiotwin (knows up to %d); "
             "upgrade cardiotwin", f->path, future, ct_store_schema_version_latest());
    assert_string_equal(err.msg, want);

    /* A schema_migration row alone (user_version untouched) is refused too. */
    db = raw_open(f->path);
    raw_exec(db, "PRAGMA user_version = 1");
    sqlite3_close(db);
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EVERSION);
    assert_contains(err.msg, future_msg);
}

static void test_tampered_migration_refused(void **state)
{
    fixture *f = *state;
    open_store(f);
    ct_store_close(f->st);
    f->st = NULL;
    sqlite3 *db = raw_open(f->path);
    raw_exec(db, "UPDATE schema_migration SET sha256 = "
                 "'1111111111111111111111111111111111111111111111111111111111111111' WHERE version = 1");
    sqlite3_close(db);
    ct_error err = {0};
    ct_store *st = NULL;
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EDB);
    assert_null(st);
    assert_contains(err.msg, f->path);
    assert_contains(err.msg, "0001_initial.sql");
    assert_contains(err.msg, "must never be edited");

    /* The other way round: the database is right, the binary's copy was
     * edited (same name, other text). */
    db = raw_open(f->path);
    char sha[65], sql[256];
    sha256_hex(ct_migrations[0].data, ct_migrations[0].size, sha);
    snprintf(sql, sizeof sql, "UPDATE schema_migration SET sha256 = '%s' WHERE version = 1", sha);
    raw_exec(db, sql);
    sqlite3_close(db);
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_OK);
    ct_store_close(st);
    static const char edit[] = "\n-- a harmless-looking edit\n";
    size_t len = ct_migrations[0].size + strlen(edit);
    unsigned char *edited = malloc(len + 1);
    assert_non_null(edited);
    memcpy(edited, ct_migrations[0].data, ct_migrations[0].size);
    memcpy(edited + ct_migrations[0].size, edit, strlen(edit) + 1);
    /* The binary's whole list, with only the first migration changed. */
    ct_embedded_file *m = calloc(ct_migrations_count, sizeof *m);
    assert_non_null(m);
    memcpy(m, ct_migrations, ct_migrations_count * sizeof *m);
    m[0] = (ct_embedded_file){"0001_initial.sql", edited, len};
    assert_int_equal(ct_store_open_migrations(f->path, m, ct_migrations_count, &st, &err), CT_EDB);
    assert_contains(err.msg, "must never be edited");
    free(edited);

    /* A renamed migration is refused as well. */
    m[0] = (ct_embedded_file){"0001_start.sql", ct_migrations[0].data, ct_migrations[0].size};
    assert_int_equal(ct_store_open_migrations(f->path, m, ct_migrations_count, &st, &err), CT_EDB);
    assert_contains(err.msg, "renamed");
    free(m);
}

static void test_added_migration_then_older_binary(void **state)
{
    fixture *f = *state;
    static const char extra[] = "CREATE TABLE beat (id INTEGER PRIMARY KEY, record_id INTEGER NOT NULL "
                                "REFERENCES record(id), sample INTEGER NOT NULL) STRICT;\n";
    /* The binary's own migrations plus one from a newer release. */
    const size_t known = ct_migrations_count;
    ct_embedded_file *m = calloc(known + 1, sizeof *m);
    assert_non_null(m);
    memcpy(m, ct_migrations, known * sizeof *m);
    char name[32];
    snprintf(name, sizeof name, "%04zu_beats.sql", known + 1);
    m[known] = (ct_embedded_file){name, (const unsigned char *)extra, sizeof extra - 1};
    ct_error err = {0};
    ct_store *st = NULL;
    /* The first version alone, then all of them on the next open. */
    assert_int_equal(ct_store_open_migrations(f->path, m, 1, &st, &err), CT_OK);
    assert_int_equal(ct_store_schema_version(st), 1);
    ct_store_close(st);
    assert_int_equal(ct_store_open_migrations(f->path, m, known + 1, &st, &err), CT_OK);
    assert_int_equal(ct_store_schema_version(st), (int)known + 1);
    ct_store_close(st);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'beat'"), 1);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), (int64_t)known + 1);
    sqlite3_close(db);
    free(m);
    /* This binary knows one version less. */
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EVERSION);
    char want[128];
    snprintf(want, sizeof want, "schema version %zu is newer than this cardiotwin (knows up to %zu)", known + 1,
             known);
    assert_contains(err.msg, want);
}

static void test_failing_migration_rolls_back(void **state)
{
    fixture *f = *state;
    static const char bad[] = "CREATE TABLE half_done (a INTEGER);\nCREATE TABLEX oops (b);\n";
    ct_embedded_file m[2] = {ct_migrations[0], {"0002_broken.sql", (const unsigned char *)bad, sizeof bad - 1}};
    ct_error err = {0};
    ct_store *st = NULL;
    assert_int_equal(ct_store_open_migrations(f->path, m, 2, &st, &err), CT_EDB);
    assert_null(st);
    assert_contains(err.msg, f->path);
    assert_contains(err.msg, "0002_broken.sql");
    assert_contains(err.msg, "syntax error");
    assert_contains(err.msg, "schema stays at version 1");
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'"), 0);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 1);
    assert_int_equal(raw_int(db, "SELECT max(version) FROM schema_migration"), 1);
    sqlite3_close(db);

    /* A migration that leaves a dangling foreign key is refused as well. */
    static const char dangling[] =
        "INSERT INTO signal(record_id, idx, gain_adu_per_unit, baseline_adu, adc_zero,"
        " adc_resolution_bits, initial_value, checksum, n_samples) VALUES (999, 0, 200, 0, 0, 11, 0, 0, 0);\n";
    ct_embedded_file m2[2] = {ct_migrations[0],
                              {"0002_dangling.sql", (const unsigned char *)dangling, sizeof dangling - 1}};
    assert_int_equal(ct_store_open_migrations(f->path, m2, 2, &st, &err), CT_EDB);
    assert_contains(err.msg, "0002_dangling.sql");
    assert_contains(err.msg, "missing record");
    db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal"), 0);
    sqlite3_close(db);
    /* And the database still opens with the good list. */
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_OK);
    ct_store_close(st);
}

static void test_bad_migration_lists(void **state)
{
    fixture *f = *state;
    static const unsigned char sql[] = "CREATE TABLE t (a);";
    ct_error err = {0};
    ct_store *st = NULL;
    ct_embedded_file gap[2] = {ct_migrations[0], {"0003_later.sql", sql, sizeof sql - 1}};
    assert_int_equal(ct_store_open_migrations(f->path, gap, 2, &st, &err), CT_EINVAL);
    assert_contains(err.msg, "0003_later.sql");
    assert_contains(err.msg, "expected version 0002");
    ct_embedded_file noprefix[1] = {{"initial.sql", sql, sizeof sql - 1}};
    assert_int_equal(ct_store_open_migrations(f->path, noprefix, 1, &st, &err), CT_EINVAL);
    assert_contains(err.msg, "NNNN_");
    ct_embedded_file upper[1] = {{"0001_Initial.sql", sql, sizeof sql - 1}};
    assert_int_equal(ct_store_open_migrations(f->path, upper, 1, &st, &err), CT_EINVAL);
    ct_embedded_file zero[1] = {{"0000_zero.sql", sql, sizeof sql - 1}};
    assert_int_equal(ct_store_open_migrations(f->path, zero, 1, &st, &err), CT_EINVAL);
    ct_embedded_file dup[2] = {ct_migrations[0], {"0001_again.sql", sql, sizeof sql - 1}};
    assert_int_equal(ct_store_open_migrations(f->path, dup, 2, &st, &err), CT_EINVAL);
    assert_int_equal(ct_store_open_migrations(f->path, NULL, 0, &st, &err), CT_EINVAL);
    /* None of these may have touched the disk. */
    assert_int_equal(access(f->path, F_OK), -1);
}

static void test_not_a_database(void **state)
{
    fixture *f = *state;
    char text[4096];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    FILE *fp = fopen(f->path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, sizeof text, fp), sizeof text);
    fclose(fp);
    ct_error err = {0};
    ct_store *st = NULL;
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EDB);
    assert_null(st);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s: file is not a database", f->path);
    assert_string_equal(err.msg, want);
    /* Untouched. */
    char back[sizeof text];
    fp = fopen(f->path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(back, 1, sizeof back, fp), sizeof back);
    assert_int_equal(fgetc(fp), EOF);
    fclose(fp);
    assert_memory_equal(back, text, sizeof text);
}

static void test_other_applications_database(void **state)
{
    fixture *f = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    raw_exec(db, "CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)");
    sqlite3_close(db);
    ct_error err = {0};
    ct_store *st = NULL;
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EDB);
    assert_contains(err.msg, "not cardiotwin's");
    db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema"), 1);
    raw_exec(db, "DROP TABLE moz_places; PRAGMA application_id = 1234");
    sqlite3_close(db);
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EDB);
    assert_contains(err.msg, "another application");
}

static void test_unopenable_paths(void **state)
{
    fixture *f = *state;
    ct_error err = {0};
    ct_store *st = NULL;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/no/such/dir/cardiotwin.db", f->dir);
    assert_int_equal(ct_store_open(path, &st, &err), CT_EIO);
    assert_null(st);
    assert_contains(err.msg, path);
    assert_contains(err.msg, "No such file or directory");
    /* A folder where the file should be. */
    assert_int_equal(mkdir(f->path, 0700), 0);
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_EDB);
    assert_contains(err.msg, f->path);
    assert_contains(err.msg, "unable to open database file");
    assert_int_equal(ct_store_open("", &st, &err), CT_EINVAL);
    assert_int_equal(ct_store_open(NULL, &st, &err), CT_EINVAL);
}

/* Runs body() in a child that cannot write to dir: as root (who ignores
 * permissions) the child first becomes nobody. Returns the child's exit
 * status; the child writes its error message to msg_path. */
static int run_unprivileged(void (*body)(const char *db_path, const char *msg_path), const char *db_path,
                            const char *msg_path)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(90);
        body(db_path, msg_path);
        _exit(91);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

static void write_msg(const char *msg_path, const char *msg)
{
    FILE *fp = fopen(msg_path, "w");
    if (fp) {
        fputs(msg, fp);
        fclose(fp);
    }
}

static void child_open_new(const char *db_path, const char *msg_path)
{
    ct_error err = {0};
    ct_store *st = NULL;
    int rc = ct_store_open(db_path, &st, &err);
    write_msg(msg_path, err.msg);
    ct_store_close(st);
    _exit(rc == CT_OK ? 0 : (rc == CT_EIO ? 10 : 11));
}

static void child_open_existing(const char *db_path, const char *msg_path)
{
    ct_error err = {0};
    ct_store *st = NULL;
    int rc = ct_store_open(db_path, &st, &err);
    write_msg(msg_path, err.msg);
    ct_store_close(st);
    _exit(rc == CT_OK ? 0 : (rc == CT_EDB ? 20 : 21));
}

static void read_msg(const char *msg_path, char *msg, size_t cap)
{
    FILE *fp = fopen(msg_path, "r");
    assert_non_null(fp);
    size_t n = fread(msg, 1, cap - 1, fp);
    msg[n] = '\0';
    fclose(fp);
    assert_int_equal(remove(msg_path), 0);
}

static void test_read_only_directory(void **state)
{
    fixture *f = *state;
    char ro[PATH_MAX], db_path[PATH_MAX + 32], msg_path[PATH_MAX + 32], msg[1024];
    snprintf(ro, sizeof ro, "%s/ro", f->dir);
    snprintf(db_path, sizeof db_path, "%s/cardiotwin.db", ro);
    snprintf(msg_path, sizeof msg_path, "%s/msg", f->dir);
    assert_int_equal(mkdir(ro, 0700), 0);
    /* The child (maybe nobody) must reach f->dir to write its message. */
    assert_int_equal(chmod(f->dir, 0777), 0);

    /* A new database in a folder we cannot write to. */
    assert_int_equal(chmod(ro, 0555), 0);
    assert_int_equal(run_unprivileged(child_open_new, db_path, msg_path), 10);
    read_msg(msg_path, msg, sizeof msg);
    assert_contains(msg, db_path);
    assert_contains(msg, "cannot create the database file: Permission denied");
    assert_int_equal(access(db_path, F_OK), -1);

    /* An existing database there, read-only or writable: SQLite cannot read
     * a WAL database without creating its -shm file, so the open must fail
     * and say where to look, and leave the file as it was. */
    assert_int_equal(chmod(ro, 0700), 0);
    ct_store *st = NULL;
    ct_error err = {0};
    assert_int_equal(ct_store_open(db_path, &st, &err), CT_OK);
    ct_store_patient p = {.identifier = "p1", .name = "Ada", .age_years = 36};
    assert_int_equal(ct_store_patient_ensure(st, &p, &err), CT_OK);
    ct_store_close(st);
    char wal[PATH_MAX + 64];
    snprintf(wal, sizeof wal, "%s-wal", db_path);
    assert_int_equal(access(wal, F_OK), -1); /* checkpointed and removed on close */
    struct stat before, after;
    for (int writable = 0; writable < 2; writable++) {
        assert_int_equal(chmod(ro, 0700), 0);
        if (writable && geteuid() == 0)
            assert_int_equal(chown(db_path, 65534, 65534), 0);
        assert_int_equal(chmod(db_path, writable ? 0600 : 0444), 0);
        assert_int_equal(chmod(ro, 0555), 0);
        assert_int_equal(stat(db_path, &before), 0);
        assert_int_equal(run_unprivileged(child_open_existing, db_path, msg_path), 20);
        read_msg(msg_path, msg, sizeof msg);
        assert_contains(msg, db_path);
        assert_contains(msg, "is its folder writable?");
        assert_int_equal(stat(db_path, &after), 0);
        assert_int_equal(after.st_size, before.st_size);
        assert_int_equal(after.st_mtime, before.st_mtime);
    }
    assert_int_equal(chmod(ro, 0700), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(db_path, 0, 0), 0);
    assert_int_equal(chmod(db_path, 0600), 0);
    /* Back in a writable folder, all is there. */
    assert_int_equal(ct_store_open(db_path, &st, &err), CT_OK);
    ct_store_patient got;
    assert_int_equal(ct_store_patient_get(st, "p1", &got, &err), CT_OK);
    assert_string_equal(got.name, "Ada");
    ct_store_close(st);
}

static void test_memory_database(void **state)
{
    (void)state;
    ct_store *st = NULL;
    ct_error err = {0};
    assert_int_equal(ct_store_open(":memory:", &st, &err), CT_OK);
    assert_int_equal(ct_store_schema_version(st), ct_store_schema_version_latest());
    int64_t sig[1];
    make_record(st, "m", 1, sig);
    int16_t v[5] = {1, -2, 3, -4, 5}, back[5];
    size_t nr = 0;
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, v, 5, &err), CT_OK);
    assert_int_equal(ct_store_samples_read(st, sig[0], 0, back, 5, &nr, &err), CT_OK);
    assert_int_equal(nr, 5);
    assert_memory_equal(v, back, sizeof v);
    ct_store_close(st);
}

/* ---- patients and records -------------------------------------------------------- */

static void test_patient_ensure_idempotent(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    ct_store_patient a = {.identifier = "mitdb-100", .name = "mitdb record 100", .sex = "M", .age_years = 69};
    assert_int_equal(ct_store_patient_ensure(st, &a, &err), CT_OK);
    assert_true(a.id > 0);
    ct_store_patient b = {.identifier = "mitdb-100", .name = "someone else", .sex = "F", .age_years = 3};
    assert_int_equal(ct_store_patient_ensure(st, &b, &err), CT_OK);
    assert_int_equal(b.id, a.id);
    ct_store_patient got;
    assert_int_equal(ct_store_patient_get(st, "mitdb-100", &got, &err), CT_OK);
    assert_int_equal(got.id, a.id);
    assert_string_equal(got.name, "mitdb record 100");
    assert_string_equal(got.sex, "M");
    assert_int_equal(got.age_years, 69);

    ct_store_patient c = {.identifier = "mitdb-101", .age_years = -1};
    assert_int_equal(ct_store_patient_ensure(st, &c, &err), CT_OK);
    assert_true(c.id != a.id);
    assert_int_equal(ct_store_patient_get(st, "mitdb-101", &got, &err), CT_OK);
    assert_int_equal(got.age_years, -1);
    assert_string_equal(got.sex, "");

    assert_int_equal(ct_store_patient_get(st, "nobody", &got, &err), CT_ENOTFOUND);
    assert_contains(err.msg, "nobody");
    ct_store_patient bad = {.identifier = "x", .sex = "male", .age_years = -1};
    assert_int_equal(ct_store_patient_ensure(st, &bad, &err), CT_EINVAL);
    ct_store_patient empty = {.age_years = -1};
    assert_int_equal(ct_store_patient_ensure(st, &empty, &err), CT_EINVAL);
    ct_store_patient old = {.identifier = "y", .age_years = 151};
    assert_int_equal(ct_store_patient_ensure(st, &old, &err), CT_EINVAL);
    ct_store_patient unterminated = {.age_years = -1};
    memset(unterminated.identifier, 'x', sizeof unterminated.identifier);
    assert_int_equal(ct_store_patient_ensure(st, &unterminated, &err), CT_EINVAL);

    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM patient"), 2);
    sqlite3_close(db);
}

static void test_records_unique(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    ct_store_patient p = {.identifier = "mitdb-100", .age_years = 69, .sex = "M"};
    assert_int_equal(ct_store_patient_ensure(st, &p, &err), CT_OK);
    ct_store_record rec;
    memset(&rec, 0, sizeof rec);
    rec.patient_id = p.id;
    snprintf(rec.source, sizeof rec.source, "mitdb");
    snprintf(rec.name, sizeof rec.name, "100");
    rec.fs_hz = 360;
    rec.n_samples = 650000;
    rec.n_signals = 2;
    snprintf(rec.content_sha256, sizeof rec.content_sha256, "%s",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    snprintf(rec.comments, sizeof rec.comments, "69 M 1085 1629 x1\nAldomet, Inderal");
    rec.imported_ms = 1700000000123;
    assert_int_equal(ct_store_record_insert(st, &rec, &err), CT_OK);
    assert_true(rec.id > 0);

    ct_store_record again = rec;
    again.id = 0;
    assert_int_equal(ct_store_record_insert(st, &again, &err), CT_EEXIST);
    assert_contains(err.msg, "mitdb/100");
    assert_int_equal(again.id, 0);

    ct_store_record got;
    assert_int_equal(ct_store_record_find(st, "mitdb", "100", &got, &err), CT_OK);
    assert_int_equal(got.id, rec.id);
    assert_int_equal(got.patient_id, p.id);
    assert_string_equal(got.name, "100");
    assert_string_equal(got.source, "mitdb");
    assert_true(got.fs_hz == 360.0);
    assert_int_equal(got.n_samples, 650000);
    assert_int_equal(got.n_signals, 2);
    assert_string_equal(got.content_sha256, rec.content_sha256);
    assert_string_equal(got.comments, rec.comments);
    assert_int_equal(got.imported_ms, 1700000000123);
    assert_int_equal(ct_store_record_find(st, "mitdb", "101", &got, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_record_find(st, "other", "100", &got, &err), CT_ENOTFOUND);

    /* Same name, other source: a different record. No patient, no hash, no
     * time: stored as NULL / now. */
    ct_store_record other;
    memset(&other, 0, sizeof other);
    snprintf(other.source, sizeof other.source, "live");
    snprintf(other.name, sizeof other.name, "100");
    other.fs_hz = 500;
    int64_t before = (int64_t)time(NULL) * 1000;
    assert_int_equal(ct_store_record_insert(st, &other, &err), CT_OK);
    assert_int_equal(ct_store_record_find(st, "live", "100", &got, &err), CT_OK);
    assert_int_equal(got.patient_id, 0);
    assert_string_equal(got.content_sha256, "");
    assert_true(got.imported_ms >= before - 1000 && got.imported_ms <= before + 60000);

    ct_store_record bad = other;
    snprintf(bad.name, sizeof bad.name, "bad");
    snprintf(bad.content_sha256, sizeof bad.content_sha256, "%s", "XYZ");
    assert_int_equal(ct_store_record_insert(st, &bad, &err), CT_EINVAL);
    bad.content_sha256[0] = '\0';
    bad.fs_hz = 0;
    assert_int_equal(ct_store_record_insert(st, &bad, &err), CT_EINVAL);
    bad.fs_hz = 360;
    bad.patient_id = 424242;
    assert_int_equal(ct_store_record_insert(st, &bad, &err), CT_ENOTFOUND);
    assert_contains(err.msg, "patient 424242");
    bad.patient_id = 0;
    bad.name[0] = '\0';
    assert_int_equal(ct_store_record_insert(st, &bad, &err), CT_EINVAL);

    ct_store_signal *sigs = NULL;
    size_t n = 99;
    assert_int_equal(ct_store_signals_list(st, rec.id, &sigs, &n, &err), CT_OK);
    assert_int_equal(n, 0);
    assert_null(sigs);
}

static void test_signals_and_foreign_keys(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t sig_ids[2];
    int64_t rec_id = make_record(st, "100", 2, sig_ids);

    ct_store_signal *sigs = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_signals_list(st, rec_id, &sigs, &n, &err), CT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(sigs[0].index, 0);
    assert_int_equal(sigs[1].index, 1);
    assert_int_equal(sigs[0].id, sig_ids[0]);
    assert_string_equal(sigs[1].description, "lead1");
    assert_string_equal(sigs[1].units, "mV");
    assert_true(sigs[0].gain_adu_per_unit == 200.0);
    assert_int_equal(sigs[0].adc_zero, 1024);
    assert_int_equal(sigs[0].adc_resolution_bits, 11);
    free(sigs);

    /* Foreign keys are enforced: a signal of a record that is not there. */
    ct_store_signal bogus;
    memset(&bogus, 0, sizeof bogus);
    bogus.record_id = 999999;
    bogus.gain_adu_per_unit = 200;
    assert_int_equal(ct_store_signal_insert(st, &bogus, &err), CT_ENOTFOUND);
    assert_contains(err.msg, "record 999999 does not exist");
    ct_store_annotation a = {.sample = 1, .code = 1};
    assert_int_equal(ct_store_annotations_write(st, 999999, "atr", &a, 1, &err), CT_ENOTFOUND);
    /* A signal index taken twice. */
    ct_store_signal dup;
    memset(&dup, 0, sizeof dup);
    dup.record_id = rec_id;
    dup.index = 1;
    assert_int_equal(ct_store_signal_insert(st, &dup, &err), CT_EEXIST);
    dup.index = 2;
    dup.checksum = 40000;
    assert_int_equal(ct_store_signal_insert(st, &dup, &err), CT_EINVAL);

    /* Deleting a record takes its signals, samples and annotations along. */
    int16_t v[5000];
    fill_samples(v, 5000, 3);
    assert_int_equal(ct_store_samples_write(st, sig_ids[0], 0, v, 5000, &err), CT_OK);
    assert_int_equal(ct_store_annotations_write(st, rec_id, "atr", &a, 1, &err), CT_OK);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal_block"), 2);
    assert_int_equal(ct_store_record_delete(st, rec_id, &err), CT_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal_block"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM annotation"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM record"), 0);
    assert_int_equal(ct_store_record_delete(st, rec_id, &err), CT_ENOTFOUND);
    /* Even from outside the store, with foreign keys on, the schema refuses
     * a block of a signal that does not exist. */
    raw_exec(db, "PRAGMA foreign_keys = ON");
    assert_int_not_equal(sqlite3_exec(db, "INSERT INTO signal_block VALUES (12345, 0, 1, x'0100')", NULL,
                                      NULL, NULL), SQLITE_OK);
    /* And the CHECKs hold: a blob that is not 2 bytes per sample, a block
     * off the 3600 grid, a version 0, a deletion marker with a body. */
    static const char *const refused[] = {
        "INSERT INTO signal_block SELECT id, 0, 2, x'0100' FROM signal LIMIT 1",
        "INSERT INTO signal_block SELECT id, 100, 1, x'0100' FROM signal LIMIT 1",
        "INSERT INTO resource_version VALUES ('Patient', 'a', 0, 0, 0, '{}')",
        "INSERT INTO resource_version VALUES ('Patient', 'a', 1, 0, 1, '{}')",
        "INSERT INTO resource_version VALUES ('Patient', 'a/b', 1, 0, 0, '{}')",
    };
    int64_t sig_c[1];
    make_record(st, "c", 1, sig_c);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (sqlite3_exec(db, refused[i], NULL, NULL, NULL) == SQLITE_OK)
            fail_msg("the schema accepted: %s", refused[i]);
    raw_exec(db, "INSERT INTO signal_block SELECT id, 0, 1, x'0100' FROM signal LIMIT 1");
    sqlite3_close(db);
}

/* ---- samples ----------------------------------------------------------------------- */

static void test_samples_across_blocks(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t sig[1];
    make_record(st, "100", 1, sig);
    enum { N = 10001 };
    int16_t *v = malloc(N * sizeof *v), *back = malloc((N + 10) * sizeof *back);
    assert_non_null(v);
    assert_non_null(back);
    fill_samples(v, N, 7);
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, v, N, &err), CT_OK);

    size_t nr = 0;
    memset(back, 0x55, (N + 10) * sizeof *back);
    assert_int_equal(ct_store_samples_read(st, sig[0], 0, back, N + 10, &nr, &err), CT_OK);
    assert_int_equal(nr, N);
    assert_memory_equal(back, v, N * sizeof *v);
    assert_int_equal((uint16_t)back[N], 0x5555);

    /* Windows that start and end inside blocks and straddle boundaries. */
    static const int64_t starts[] = {0, 1, 3599, 3600, 3601, 7199, 7200, 9999, 10000};
    static const size_t lens[] = {1, 2, 3601, 7201, 5};
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        for (size_t j = 0; j < sizeof lens / sizeof lens[0]; j++) {
            int64_t s = starts[i];
            size_t want = (size_t)(N - s) < lens[j] ? (size_t)(N - s) : lens[j];
            assert_int_equal(ct_store_samples_read(st, sig[0], s, back, lens[j], &nr, &err), CT_OK);
            assert_int_equal(nr, want);
            assert_memory_equal(back, v + s, want * sizeof *v);
        }
    }
    assert_int_equal(ct_store_samples_read(st, sig[0], N, back, 10, &nr, &err), CT_OK);
    assert_int_equal(nr, 0);
    assert_int_equal(ct_store_samples_read(st, sig[0], 1000000, back, 10, &nr, &err), CT_OK);
    assert_int_equal(nr, 0);
    assert_int_equal(ct_store_samples_read(st, sig[0], -1, back, 10, &nr, &err), CT_EINVAL);
    int64_t stored = 0;
    assert_int_equal(ct_store_samples_stored(st, sig[0], &stored, &err), CT_OK);
    assert_int_equal(stored, N);

    /* On disk: 3600 + 3600 + 2801 samples, little-endian, block-aligned. */
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal_block"), 3);
    assert_int_equal(raw_int(db, "SELECT group_concat(start_sample || ':' || n_samples, ',') = "
                                 "'0:3600,3600:3600,7200:2801' FROM (SELECT * FROM signal_block ORDER BY start_sample)"), 1);
    assert_int_equal(raw_int(db, "SELECT sum(length(samples)) FROM signal_block"), 2 * N);
    char hex[32];
    raw_text(db, "SELECT hex(substr(samples, 1, 4)) FROM signal_block WHERE start_sample = 0", hex, sizeof hex);
    assert_string_equal(hex, "0080FF7F"); /* -32768, 32767 */
    raw_text(db, "SELECT hex(substr(samples, 1, 4)) FROM signal_block WHERE start_sample = 3600", hex, sizeof hex);
    assert_string_equal(hex, "FFFF0080"); /* -1, -32768 */
    /* The signal's length follows what is stored. */
    assert_int_equal(raw_int(db, "SELECT n_samples FROM signal"), N);
    assert_int_equal(raw_int(db, "SELECT n_samples FROM record"), N);
    sqlite3_close(db);

    /* No such signal. */
    assert_int_equal(ct_store_samples_read(st, 4242, 0, back, 10, &nr, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_samples_write(st, 4242, 0, v, 10, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_samples_stored(st, 4242, &stored, &err), CT_ENOTFOUND);
    free(v);
    free(back);
}

static void test_samples_append_and_conflicts(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t sig[1];
    make_record(st, "live", 1, sig);
    enum { N = 12345 };
    int16_t *v = malloc(N * sizeof *v), *back = malloc(N * sizeof *back);
    assert_non_null(v);
    assert_non_null(back);
    fill_samples(v, N, 11);
    /* A live stream: pieces of odd sizes, most ending mid-block. */
    static const size_t pieces[] = {1, 359, 360, 2879, 1, 3600, 3601, 1000};
    int64_t at = 0;
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
        assert_int_equal(ct_store_samples_write(st, sig[0], at, v + at, pieces[i], &err), CT_OK);
        at += (int64_t)pieces[i];
        int64_t stored = 0;
        assert_int_equal(ct_store_samples_stored(st, sig[0], &stored, &err), CT_OK);
        assert_int_equal(stored, at);
    }
    assert_int_equal(at, 11801);
    size_t nr = 0;
    assert_int_equal(ct_store_samples_read(st, sig[0], 0, back, N, &nr, &err), CT_OK);
    assert_int_equal(nr, 11801);
    assert_memory_equal(back, v, 11801 * sizeof *v);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal_block"), 4);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal_block WHERE n_samples < 3600"), 1);

    /* The same samples again (a retried upload): harmless, nothing changes. */
    assert_int_equal(ct_store_samples_write(st, sig[0], 100, v + 100, 5000, &err), CT_OK);
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, v, 11801, &err), CT_OK);
    /* Overlap that continues past the end: the new part is appended. */
    assert_int_equal(ct_store_samples_write(st, sig[0], 11000, v + 11000, N - 11000, &err), CT_OK);
    assert_int_equal(ct_store_samples_read(st, sig[0], 0, back, N, &nr, &err), CT_OK);
    assert_int_equal(nr, N);
    assert_memory_equal(back, v, N * sizeof *v);

    /* A conflicting overlap is refused, even with a new tail: nothing of it
     * is written. */
    int16_t *w = malloc((N + 500) * sizeof *w);
    assert_non_null(w);
    memcpy(w, v, N * sizeof *v);
    fill_samples(w + N, 500, 99);
    w[7300] = (int16_t)(w[7300] ^ 1);
    assert_int_equal(ct_store_samples_write(st, sig[0], 7000, w + 7000, N + 500 - 7000, &err), CT_EEXIST);
    assert_contains(err.msg, "sample 7300");
    int64_t stored = 0;
    assert_int_equal(ct_store_samples_stored(st, sig[0], &stored, &err), CT_OK);
    assert_int_equal(stored, N);
    assert_int_equal(raw_int(db, "SELECT n_samples FROM signal"), N);
    /* A gap is refused. */
    assert_int_equal(ct_store_samples_write(st, sig[0], N + 1, v, 10, &err), CT_EINVAL);
    assert_contains(err.msg, "gap");
    assert_int_equal(ct_store_samples_write(st, sig[0], 2 * 3600 * 10, v, 3600, &err), CT_EINVAL);
    assert_int_equal(ct_store_samples_read(st, sig[0], 0, back, N, &nr, &err), CT_OK);
    assert_int_equal(nr, N);
    assert_memory_equal(back, v, N * sizeof *v);
    char ok[16];
    raw_text(db, "PRAGMA integrity_check", ok, sizeof ok);
    assert_string_equal(ok, "ok");
    sqlite3_close(db);

    /* Zero samples: nothing to do. Bad arguments: refused. */
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, NULL, 0, &err), CT_OK);
    assert_int_equal(ct_store_samples_write(st, sig[0], -5, v, 1, &err), CT_EINVAL);
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, NULL, 1, &err), CT_EINVAL);
    assert_int_equal(ct_store_samples_write(st, sig[0], INT64_MAX - 2, v, 10, &err), CT_ELIMIT);
    free(v);
    free(back);
    free(w);
}

/* ---- annotations ---------------------------------------------------------------------- */

static void test_annotations_roundtrip(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t sig[1];
    int64_t rec = make_record(st, "100", 1, sig);
    ct_store_annotation a[6];
    memset(a, 0, sizeof a);
    a[0] = (ct_store_annotation){.sample = 18, .code = 28, .aux = "(N"};
    a[1] = (ct_store_annotation){.sample = 77, .code = 1};
    a[2] = (ct_store_annotation){.sample = 370, .code = 5, .subtype = -128, .chan = 255, .num = 127};
    a[3] = (ct_store_annotation){.sample = 370, .code = 22, .subtype = 127, .num = -128, .aux = "note at the same sample"};
    a[4] = (ct_store_annotation){.sample = 662, .code = 8, .chan = 1, .num = 3};
    memset(a[5].aux, 'x', sizeof a[5].aux - 1);
    a[5].sample = 649999;
    a[5].code = 28;
    assert_int_equal(ct_store_annotations_write(st, rec, "atr", a, 6, &err), CT_OK);
    ct_store_annotation b = {.sample = 80, .code = 1};
    assert_int_equal(ct_store_annotations_write(st, rec, "qrs", &b, 1, &err), CT_OK);

    ct_store_annotation *got = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_annotations_read(st, rec, "atr", &got, &n, &err), CT_OK);
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(got[i].sample, a[i].sample);
        assert_int_equal(got[i].code, a[i].code);
        assert_int_equal(got[i].subtype, a[i].subtype);
        assert_int_equal(got[i].chan, a[i].chan);
        assert_int_equal(got[i].num, a[i].num);
        assert_string_equal(got[i].aux, a[i].aux);
    }
    free(got);
    assert_int_equal(ct_store_annotations_read(st, rec, "qrs", &got, &n, &err), CT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].sample, 80);
    free(got);
    assert_int_equal(ct_store_annotations_read(st, rec, "none", &got, &n, &err), CT_OK);
    assert_int_equal(n, 0);
    assert_null(got);

    /* One bad item: nothing of the batch is written. */
    ct_store_annotation c[3] = {{.sample = 1, .code = 1}, {.sample = 2, .code = 50}, {.sample = 3, .code = 1}};
    assert_int_equal(ct_store_annotations_write(st, rec, "bad", c, 3, &err), CT_EINVAL);
    assert_contains(err.msg, "annotation 1");
    c[1].code = 1;
    c[1].chan = 256;
    assert_int_equal(ct_store_annotations_write(st, rec, "bad", c, 3, &err), CT_EINVAL);
    c[1].chan = 0;
    c[1].sample = -1;
    assert_int_equal(ct_store_annotations_write(st, rec, "bad", c, 3, &err), CT_EINVAL);
    c[1].sample = 2;
    memset(c[1].aux, 'y', sizeof c[1].aux);
    assert_int_equal(ct_store_annotations_write(st, rec, "bad", c, 3, &err), CT_EINVAL);
    assert_int_equal(ct_store_annotations_write(st, rec, "", c, 1, &err), CT_EINVAL);
    assert_int_equal(ct_store_annotations_read(st, rec, "bad", &got, &n, &err), CT_OK);
    assert_int_equal(n, 0);
}

/* ---- resources ----------------------------------------------------------------------- */

static void test_resource_versions(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    const char *b1 = "{\"resourceType\":\"Observation\",\"id\":\"ecg-1\",\"status\":\"preliminary\"}";
    const char *b2 = "{\"resourceType\":\"Observation\",\"id\":\"ecg-1\",\"status\":\"final\"}";
    int64_t v = 0, v_got = 0, t1 = 0, t2 = 0, t3 = 0;
    int deleted = -1;
    char *json = NULL;
    assert_int_equal(ct_store_resource_put(st, "Observation", "ecg-1", b1, strlen(b1), &v, &err), CT_OK);
    assert_int_equal(v, 1);
    assert_int_equal(ct_store_resource_put(st, "Observation", "ecg-1", b2, strlen(b2), &v, &err), CT_OK);
    assert_int_equal(v, 2);

    assert_int_equal(ct_store_resource_get(st, "Observation", "ecg-1", 0, &json, &v_got, &t2, &deleted, &err), CT_OK);
    assert_string_equal(json, b2);
    assert_int_equal(v_got, 2);
    assert_int_equal(deleted, 0);
    free(json);
    assert_int_equal(ct_store_resource_get(st, "Observation", "ecg-1", 1, &json, &v_got, &t1, &deleted, &err), CT_OK);
    assert_string_equal(json, b1);
    assert_int_equal(v_got, 1);
    free(json);
    assert_true(t1 > 1600000000000 && t2 >= t1);

    assert_int_equal(ct_store_resource_delete(st, "Observation", "ecg-1", &v, &err), CT_OK);
    assert_int_equal(v, 3);
    json = (char *)"sentinel";
    assert_int_equal(ct_store_resource_get(st, "Observation", "ecg-1", 0, &json, &v_got, &t3, &deleted, &err), CT_OK);
    assert_null(json);
    assert_int_equal(deleted, 1);
    assert_int_equal(v_got, 3);
    assert_true(t3 >= t2);
    /* History survives the delete. */
    assert_int_equal(ct_store_resource_get(st, "Observation", "ecg-1", 2, &json, &v_got, NULL, &deleted, &err), CT_OK);
    assert_string_equal(json, b2);
    assert_int_equal(deleted, 0);
    free(json);
    /* Delete is idempotent: no new version. */
    assert_int_equal(ct_store_resource_delete(st, "Observation", "ecg-1", &v, &err), CT_OK);
    assert_int_equal(v, 3);
    /* Update after delete brings it back as the next version. */
    assert_int_equal(ct_store_resource_put(st, "Observation", "ecg-1", b1, strlen(b1), &v, &err), CT_OK);
    assert_int_equal(v, 4);
    assert_int_equal(ct_store_resource_get(st, "Observation", "ecg-1", 0, &json, &v_got, NULL, &deleted, &err), CT_OK);
    assert_string_equal(json, b1);
    assert_int_equal(deleted, 0);
    free(json);

    /* Same id, other type: another resource. Only the body pointer wanted. */
    assert_int_equal(ct_store_resource_put(st, "Patient", "ecg-1", "{}", 2, &v, &err), CT_OK);
    assert_int_equal(v, 1);
    assert_int_equal(ct_store_resource_get(st, "Patient", "ecg-1", 0, &json, NULL, NULL, NULL, &err), CT_OK);
    assert_string_equal(json, "{}");
    free(json);
    /* Stored as given: bytes beyond len are not taken. */
    assert_int_equal(ct_store_resource_put(st, "Patient", "p.2-x", "{\"a\":1}TRAILING", 7, &v, &err), CT_OK);
    assert_int_equal(ct_store_resource_get(st, "Patient", "p.2-x", 0, &json, NULL, NULL, NULL, &err), CT_OK);
    assert_string_equal(json, "{\"a\":1}");
    free(json);

    assert_int_equal(ct_store_resource_get(st, "Observation", "nope", 0, &json, NULL, NULL, NULL, &err), CT_ENOTFOUND);
    assert_contains(err.msg, "Observation/nope");
    assert_int_equal(ct_store_resource_get(st, "Observation", "ecg-1", 9, &json, NULL, NULL, NULL, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_resource_get(st, "Observation", "ecg-1", -1, &json, NULL, NULL, NULL, &err), CT_EINVAL);
    assert_int_equal(ct_store_resource_delete(st, "Observation", "nope", &v, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_resource_put(st, "Observation", "a/b", "{}", 2, &v, &err), CT_EINVAL);
    assert_int_equal(ct_store_resource_put(st, "observation", "a", "{}", 2, &v, &err), CT_EINVAL);
    assert_int_equal(ct_store_resource_put(st, "Observation", "", "{}", 2, &v, &err), CT_EINVAL);
    char longid[80];
    memset(longid, 'a', 65);
    longid[65] = '\0';
    assert_int_equal(ct_store_resource_put(st, "Observation", longid, "{}", 2, &v, &err), CT_EINVAL);
    longid[64] = '\0';
    assert_int_equal(ct_store_resource_put(st, "Observation", longid, "{}", 2, &v, &err), CT_OK);
    assert_int_equal(ct_store_resource_put(st, "Observation", "n", "{\0}", 3, &v, &err), CT_EINVAL);
    assert_int_equal(ct_store_resource_put(st, "Observation", "n", "{}", (size_t)CT_STORE_RESOURCE_MAX_BYTES + 1,
                                           &v, &err), CT_ELIMIT);

    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM resource_version WHERE type='Observation' AND id='ecg-1'"), 4);
    assert_int_equal(raw_int(db, "SELECT version FROM resource WHERE type='Observation' AND id='ecg-1'"), 4);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM resource_version WHERE deleted = 1 AND body IS NULL"), 1);
    sqlite3_close(db);
}

static void test_resource_time_never_goes_back(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t v = 0, t = 0;
    assert_int_equal(ct_store_resource_put(st, "Device", "d1", "{}", 2, &v, &err), CT_OK);
    /* Pretend the clock was far ahead when version 1 was written. */
    sqlite3 *db = raw_open(f->path);
    raw_exec(db, "UPDATE resource_version SET last_updated_ms = 32503680000000; "
                 "UPDATE resource SET last_updated_ms = 32503680000000");
    sqlite3_close(db);
    assert_int_equal(ct_store_resource_put(st, "Device", "d1", "{ }", 3, &v, &err), CT_OK);
    assert_int_equal(ct_store_resource_get(st, "Device", "d1", 0, NULL, &v, &t, NULL, &err), CT_OK);
    assert_int_equal(v, 2);
    assert_int_equal(t, 32503680000000);
}

/* ---- transactions ---------------------------------------------------------------------- */

static void count_rows(sqlite3 *db, int64_t out[7])
{
    static const char *const q[7] = {
        "SELECT count(*) FROM patient", "SELECT count(*) FROM record", "SELECT count(*) FROM signal",
        "SELECT count(*) FROM signal_block", "SELECT count(*) FROM annotation",
        "SELECT count(*) FROM resource", "SELECT count(*) FROM resource_version"};
    for (int i = 0; i < 7; i++)
        out[i] = raw_int(db, q[i]);
}

static void test_rollback_leaves_nothing(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t before[7], after[7];
    sqlite3 *db = raw_open(f->path);
    count_rows(db, before);

    assert_int_equal(ct_store_begin(st, &err), CT_OK);
    assert_int_equal(ct_store_begin(st, &err), CT_EINVAL);
    assert_contains(err.msg, "do not nest");
    ct_store_patient p = {.identifier = "mitdb-200", .age_years = 64, .sex = "M"};
    assert_int_equal(ct_store_patient_ensure(st, &p, &err), CT_OK);
    int64_t sig[2];
    int64_t rec = make_record(st, "200", 2, sig);
    enum { N = 3600 * 40 + 17 };
    int16_t *v = malloc(N * sizeof *v);
    assert_non_null(v);
    fill_samples(v, N, 5);
    for (int s = 0; s < 2; s++)
        assert_int_equal(ct_store_samples_write(st, sig[s], 0, v, N, &err), CT_OK);
    ct_store_annotation a = {.sample = 5, .code = 1, .aux = "x"};
    assert_int_equal(ct_store_annotations_write(st, rec, "atr", &a, 1, &err), CT_OK);
    assert_int_equal(ct_store_resource_put(st, "Observation", "o1", "{}", 2, NULL, &err), CT_OK);
    /* Another connection sees none of it while it is in flight (WAL). */
    count_rows(db, after);
    assert_memory_equal(before, after, sizeof before);
    ct_store_rollback(st);

    count_rows(db, after);
    assert_memory_equal(before, after, sizeof before);
    ct_store_record r;
    assert_int_equal(ct_store_record_find(st, "test", "200", &r, &err), CT_ENOTFOUND);
    ct_store_patient got;
    assert_int_equal(ct_store_patient_get(st, "mitdb-200", &got, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_commit(st, &err), CT_EINVAL);
    ct_store_rollback(st); /* nothing open: harmless */

    /* The same, committed, is all there. */
    assert_int_equal(ct_store_begin(st, &err), CT_OK);
    rec = make_record(st, "200", 2, sig);
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, v, N, &err), CT_OK);
    assert_int_equal(ct_store_commit(st, &err), CT_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal_block"), 41);
    sqlite3_close(db);
    free(v);
}

static void test_failed_call_keeps_transaction(void **state)
{
    fixture *f = *state;
    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t sig[1];
    assert_int_equal(ct_store_begin(st, &err), CT_OK);
    make_record(st, "a", 1, sig);
    int16_t v[5000];
    fill_samples(v, 5000, 1);
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, v, 4000, &err), CT_OK);
    /* This write fails half-way through (at the conflict, after its first
     * block was compared): the transaction goes on without it. */
    int16_t w[5000];
    memcpy(w, v, sizeof w);
    w[3999] = (int16_t)(w[3999] + 1);
    assert_int_equal(ct_store_samples_write(st, sig[0], 0, w, 5000, &err), CT_EEXIST);
    ct_store_record dup;
    memset(&dup, 0, sizeof dup);
    snprintf(dup.source, sizeof dup.source, "test");
    snprintf(dup.name, sizeof dup.name, "a");
    dup.fs_hz = 1;
    assert_int_equal(ct_store_record_insert(st, &dup, &err), CT_EEXIST);
    int64_t sig_b[1];
    make_record(st, "b", 1, sig_b);
    assert_int_equal(ct_store_commit(st, &err), CT_OK);

    ct_store_record r;
    assert_int_equal(ct_store_record_find(st, "test", "a", &r, &err), CT_OK);
    assert_int_equal(ct_store_record_find(st, "test", "b", &r, &err), CT_OK);
    int64_t stored = 0;
    assert_int_equal(ct_store_samples_stored(st, sig[0], &stored, &err), CT_OK);
    assert_int_equal(stored, 4000);
}

/* Real data: record 100 of MIT-BIH, decoded from format 212 here, stored and
 * read back; the header's first values and checksums must agree. */
static int decode_212(const unsigned char *in, size_t len, int16_t *s0, int16_t *s1, int64_t n)
{
    if (len < (size_t)n * 3)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        const unsigned char *p = in + 3 * i;
        int a = p[0] | ((p[1] & 0x0f) << 8);
        int b = p[2] | ((p[1] & 0xf0) << 4);
        s0[i] = (int16_t)(a >= 2048 ? a - 4096 : a);
        s1[i] = (int16_t)(b >= 2048 ? b - 4096 : b);
    }
    return 0;
}

static int checksum16(const int16_t *v, int64_t n)
{
    int32_t sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum = (int32_t)((sum + v[i]) & 0xffff);
    return sum >= 32768 ? sum - 65536 : sum;
}

static void test_mitdb_record_roundtrip(void **state)
{
    fixture *f = *state;
    const char *dir = getenv("CARDIOTWIN_MITDB");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/100.hea", dir ? dir : "../shared/data/mitdb");
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("%s: %s (set CARDIOTWIN_MITDB)", path, strerror(errno));
    char line[256];
    int first[2], sum[2];
    assert_non_null(fgets(line, sizeof line, fp));
    for (int s = 0; s < 2; s++) {
        assert_non_null(fgets(line, sizeof line, fp));
        assert_int_equal(sscanf(line, "%*s %*d %*d %*d %*d %d %d", &first[s], &sum[s]), 2);
    }
    fclose(fp);
    snprintf(path, sizeof path, "%s/100.dat", dir ? dir : "../shared/data/mitdb");
    enum { N = 650000 };
    unsigned char *dat = malloc(3 * N);
    int16_t *sig[2] = {malloc(N * sizeof(int16_t)), malloc(N * sizeof(int16_t))};
    int16_t *back = malloc(N * sizeof(int16_t));
    assert_non_null(dat);
    assert_non_null(back);
    fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fread(dat, 1, 3 * N, fp), 3 * N);
    fclose(fp);
    assert_int_equal(decode_212(dat, 3 * N, sig[0], sig[1], N), 0);

    ct_store *st = open_store(f);
    ct_error err = {0};
    int64_t ids[2];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ct_store_begin(st, &err), CT_OK);
    make_record(st, "100", 2, ids);
    for (int s = 0; s < 2; s++) /* in slices, as the importer does */
        for (int64_t at = 0; at < N; at += 3600 * 16) {
            size_t n = N - at < 3600 * 16 ? (size_t)(N - at) : 3600 * 16;
            assert_int_equal(ct_store_samples_write(st, ids[s], at, sig[s] + at, n, &err), CT_OK);
        }
    assert_int_equal(ct_store_commit(st, &err), CT_OK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    /* Generous (sanitizers, a busy machine): a row per sample or a
     * statement prepared per block would blow through it. */
    assert_true(secs < 5.0);

    for (int s = 0; s < 2; s++) {
        size_t nr = 0;
        assert_int_equal(ct_store_samples_read(st, ids[s], 0, back, N, &nr, &err), CT_OK);
        assert_int_equal(nr, N);
        assert_memory_equal(back, sig[s], N * sizeof(int16_t));
        assert_int_equal(back[0], first[s]);
        assert_int_equal(checksum16(back, N), sum[s]);
    }
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM signal_block"), 2 * ((N + 3599) / 3600));
    sqlite3_close(db);
    free(dat);
    free(sig[0]);
    free(sig[1]);
    free(back);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open_creates_and_migrates),
        T(test_reopen_applies_nothing),
        T(test_newer_schema_refused),
        T(test_tampered_migration_refused),
        T(test_added_migration_then_older_binary),
        T(test_failing_migration_rolls_back),
        T(test_bad_migration_lists),
        T(test_not_a_database),
        T(test_other_applications_database),
        T(test_unopenable_paths),
        T(test_read_only_directory),
        T(test_memory_database),
        T(test_patient_ensure_idempotent),
        T(test_records_unique),
        T(test_signals_and_foreign_keys),
        T(test_samples_across_blocks),
        T(test_samples_append_and_conflicts),
        T(test_annotations_roundtrip),
        T(test_resource_versions),
        T(test_resource_time_never_goes_back),
        T(test_rollback_leaves_nothing),
        T(test_failed_call_keeps_transaction),
        T(test_mitdb_record_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
