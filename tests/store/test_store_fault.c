/* Fault injection for the store, in the manner of SQLite's own tests: the
 * same transaction is run again and again, each time failing at the next
 * point, until it runs through. After every failure the database is opened
 * afresh and must pass integrity_check and hold exactly the state before
 * the transaction or exactly the state after it, never a mixture.
 *
 *  - I/O errors: a VFS shim wrapped around the default one fails the N-th
 *    write, sync or truncate, once ("transient") or from then on
 *    ("persistent", a dead disk; the store is closed while it is still dead).
 *  - Crashes: in a child process, the shim ends the process at the N-th
 *    write: before it, after it, or after writing half of it (a torn write).
 *    The parent then recovers the database.
 *  - Out of memory: SQLite's allocator fails at its N-th call (every call
 *    for the first 400, then every 11th), once or from then on, while a new
 *    database is opened, migrated and written to.
 *
 * The fault controls reach the shim through sqlite3_vfs.pAppData. SQLite's
 * allocator hooks take no context pointer, so the one control they need is
 * file-scope: it exists only in this test program. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cardiotwin/store.h"

/* ---- the VFS shim ---------------------------------------------------------- */

enum fault_mode {
    FAULT_IOERR_ONCE,
    FAULT_IOERR_PERSIST,
    FAULT_CRASH_BEFORE,
    FAULT_CRASH_AFTER,
    FAULT_CRASH_TORN,
};

typedef struct fault_ctl {
    sqlite3_vfs *real;
    int armed;
    enum fault_mode mode;
    int64_t countdown; /* faults at the operation that brings it to 0 */
    int fired;
} fault_ctl;

typedef struct fault_file {
    sqlite3_file base;
    fault_ctl *ctl;
    sqlite3_file *real;
} fault_file;

#define CRASH_EXIT 77

/* 1: this operation must fail (or the process end). */
static int fault_due(fault_ctl *c)
{
    if (!c->armed)
        return 0;
    if (c->fired)
        return c->mode == FAULT_IOERR_PERSIST;
    if (--c->countdown > 0)
        return 0;
    c->fired = 1;
    return 1;
}

static int ff_close(sqlite3_file *f)
{
    fault_file *p = (fault_file *)f;
    int rc = p->real->pMethods->xClose(p->real);
    return rc;
}

static int ff_read(sqlite3_file *f, void *buf, int amt, sqlite3_int64 off)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xRead(p->real, buf, amt, off);
}

static int ff_write(sqlite3_file *f, const void *buf, int amt, sqlite3_int64 off)
{
    fault_file *p = (fault_file *)f;
    if (fault_due(p->ctl)) {
        switch (p->ctl->mode) {
        case FAULT_IOERR_ONCE:
        case FAULT_IOERR_PERSIST:
            return SQLITE_IOERR_WRITE;
        case FAULT_CRASH_BEFORE:
            _exit(CRASH_EXIT);
        case FAULT_CRASH_AFTER:
            p->real->pMethods->xWrite(p->real, buf, amt, off);
            _exit(CRASH_EXIT);
        case FAULT_CRASH_TORN:
            p->real->pMethods->xWrite(p->real, buf, amt / 2, off);
            _exit(CRASH_EXIT);
        }
    }
    return p->real->pMethods->xWrite(p->real, buf, amt, off);
}

static int ff_truncate(sqlite3_file *f, sqlite3_int64 size)
{
    fault_file *p = (fault_file *)f;
    if (fault_due(p->ctl)) {
        if (p->ctl->mode >= FAULT_CRASH_BEFORE)
            _exit(CRASH_EXIT);
        return SQLITE_IOERR_TRUNCATE;
    }
    return p->real->pMethods->xTruncate(p->real, size);
}

static int ff_sync(sqlite3_file *f, int flags)
{
    fault_file *p = (fault_file *)f;
    if (fault_due(p->ctl)) {
        if (p->ctl->mode >= FAULT_CRASH_BEFORE)
            _exit(CRASH_EXIT);
        return SQLITE_IOERR_FSYNC;
    }
    return p->real->pMethods->xSync(p->real, flags);
}

static int ff_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xFileSize(p->real, size);
}

static int ff_lock(sqlite3_file *f, int lock)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xLock(p->real, lock);
}

static int ff_unlock(sqlite3_file *f, int lock)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xUnlock(p->real, lock);
}

static int ff_check_reserved(sqlite3_file *f, int *out)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xCheckReservedLock(p->real, out);
}

static int ff_file_control(sqlite3_file *f, int op, void *arg)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xFileControl(p->real, op, arg);
}

static int ff_sector_size(sqlite3_file *f)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xSectorSize(p->real);
}

static int ff_device_characteristics(sqlite3_file *f)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xDeviceCharacteristics(p->real);
}

static int ff_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xShmMap(p->real, pg, pgsz, extend, pp);
}

static int ff_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xShmLock(p->real, offset, n, flags);
}

static void ff_shm_barrier(sqlite3_file *f)
{
    fault_file *p = (fault_file *)f;
    p->real->pMethods->xShmBarrier(p->real);
}

static int ff_shm_unmap(sqlite3_file *f, int delete_flag)
{
    fault_file *p = (fault_file *)f;
    return p->real->pMethods->xShmUnmap(p->real, delete_flag);
}

/* No memory mapping: every page goes through xRead/xWrite, where faults
 * are injected. */
static int ff_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
    (void)f;
    (void)off;
    (void)amt;
    *pp = NULL;
    return SQLITE_OK;
}

static int ff_unfetch(sqlite3_file *f, sqlite3_int64 off, void *pg)
{
    (void)f;
    (void)off;
    (void)pg;
    return SQLITE_OK;
}

static const sqlite3_io_methods ff_methods = {
    3,          ff_close,         ff_read,       ff_write,         ff_truncate,
    ff_sync,    ff_file_size,     ff_lock,       ff_unlock,        ff_check_reserved,
    ff_file_control, ff_sector_size, ff_device_characteristics, ff_shm_map, ff_shm_lock,
    ff_shm_barrier, ff_shm_unmap, ff_fetch,      ff_unfetch,
};

static int fv_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    fault_ctl *c = vfs->pAppData;
    fault_file *p = (fault_file *)file;
    p->ctl = c;
    p->real = (sqlite3_file *)(p + 1);
    int rc = c->real->xOpen(c->real, name, p->real, flags, out_flags);
    p->base.pMethods = rc == SQLITE_OK && p->real->pMethods ? &ff_methods : NULL;
    return rc;
}

static int fv_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xDelete(c->real, name, sync_dir);
}

static int fv_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xAccess(c->real, name, flags, out);
}

static int fv_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xFullPathname(c->real, name, n, out);
}

static int fv_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xRandomness(c->real, n, out);
}

static int fv_sleep(sqlite3_vfs *vfs, int us)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xSleep(c->real, us);
}

static int fv_current_time(sqlite3_vfs *vfs, double *t)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xCurrentTime(c->real, t);
}

static int fv_get_last_error(sqlite3_vfs *vfs, int n, char *buf)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xGetLastError(c->real, n, buf);
}

static int fv_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *t)
{
    fault_ctl *c = vfs->pAppData;
    return c->real->xCurrentTimeInt64(c->real, t);
}

/* Makes the shim the default VFS; vfs and ctl must outlive every use. */
static void fault_install(sqlite3_vfs *vfs, fault_ctl *ctl)
{
    memset(ctl, 0, sizeof *ctl);
    ctl->real = sqlite3_vfs_find(NULL);
    assert_non_null(ctl->real);
    memset(vfs, 0, sizeof *vfs);
    vfs->iVersion = 2;
    vfs->szOsFile = (int)sizeof(fault_file) + ctl->real->szOsFile;
    vfs->mxPathname = ctl->real->mxPathname;
    vfs->zName = "ctfault";
    vfs->pAppData = ctl;
    vfs->xOpen = fv_open;
    vfs->xDelete = fv_delete;
    vfs->xAccess = fv_access;
    vfs->xFullPathname = fv_full_pathname;
    vfs->xRandomness = fv_randomness;
    vfs->xSleep = fv_sleep;
    vfs->xCurrentTime = fv_current_time;
    vfs->xGetLastError = fv_get_last_error;
    vfs->xCurrentTimeInt64 = fv_current_time_int64;
    assert_int_equal(sqlite3_vfs_register(vfs, 1), SQLITE_OK);
}

static void fault_arm(fault_ctl *c, enum fault_mode mode, int64_t at)
{
    c->mode = mode;
    c->countdown = at;
    c->fired = 0;
    c->armed = 1;
}

/* ---- the allocator hook ------------------------------------------------------ */

typedef struct oom_ctl {
    sqlite3_mem_methods real;
    int armed;
    int persistent;
    int64_t countdown;
    int fired;
} oom_ctl;

static oom_ctl oom; /* see the file comment: SQLite's hooks carry no context */

static int oom_due(void)
{
    if (!oom.armed)
        return 0;
    if (oom.fired)
        return oom.persistent;
    if (--oom.countdown > 0)
        return 0;
    oom.fired = 1;
    return 1;
}

static void *oom_malloc(int n)
{
    return oom_due() ? NULL : oom.real.xMalloc(n);
}

static void *oom_realloc(void *p, int n)
{
    return oom_due() ? NULL : oom.real.xRealloc(p, n);
}

static void oom_free(void *p)
{
    oom.real.xFree(p);
}

static int oom_size(void *p)
{
    return oom.real.xSize(p);
}

static int oom_roundup(int n)
{
    return oom.real.xRoundup(n);
}

static int oom_init(void *app)
{
    return oom.real.xInit(app);
}

static void oom_shutdown(void *app)
{
    oom.real.xShutdown(app);
}

/* ---- the transaction under test and its two admissible outcomes -------------- */

typedef struct fixture {
    char dir[256];
    char path[PATH_MAX];
    unsigned char *base_image; /* the database file before the transaction */
    size_t base_len;
    sqlite3_vfs vfs;
    fault_ctl ctl;
} fixture;

enum { BASE_N = 5000, NEW_N = 12000, APPEND_N = 3000, N_ANN = 300 };

static int16_t sample_at(int64_t sig, int64_t i)
{
    uint32_t x = (uint32_t)(sig * 7919 + i) * 2654435761u;
    int32_t u = (int32_t)(x >> 16);
    return (int16_t)(u >= 32768 ? u - 65536 : u);
}

static void samples(int64_t sig, int64_t from, int16_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        v[i] = sample_at(sig, from + (int64_t)i);
}

static int make_record(ct_store *st, const char *name, int n_signals, int64_t *rec_id, int64_t *ids,
                       ct_error *err)
{
    ct_store_record rec;
    memset(&rec, 0, sizeof rec);
    snprintf(rec.source, sizeof rec.source, "fault");
    snprintf(rec.name, sizeof rec.name, "%s", name);
    rec.fs_hz = 360;
    rec.n_signals = n_signals;
    int rc = ct_store_record_insert(st, &rec, err);
    for (int i = 0; rc == CT_OK && i < n_signals; i++) {
        ct_store_signal sig;
        memset(&sig, 0, sizeof sig);
        sig.record_id = rec.id;
        sig.index = i;
        sig.gain_adu_per_unit = 200;
        rc = ct_store_signal_insert(st, &sig, err);
        ids[i] = sig.id;
    }
    *rec_id = rec.id;
    return rc;
}

static void remove_db(fixture *f)
{
    char p[PATH_MAX + 8];
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
}

/* The state every run starts from: record "base" (one signal, BASE_N
 * samples, its last block partial) and Observation/o1 version 1. */
static void make_base(fixture *f)
{
    ct_store *st = NULL;
    ct_error err = {0};
    remove_db(f);
    if (ct_store_open(f->path, &st, &err) != CT_OK)
        fail_msg("open: %s", err.msg);
    int64_t rec, sig;
    int16_t v[BASE_N];
    assert_int_equal(make_record(st, "base", 1, &rec, &sig, &err), CT_OK);
    samples(sig, 0, v, BASE_N);
    assert_int_equal(ct_store_samples_write(st, sig, 0, v, BASE_N, &err), CT_OK);
    assert_int_equal(ct_store_resource_put(st, "Observation", "o1", "{\"v\":1}", 7, NULL, &err), CT_OK);
    ct_store_close(st);
    FILE *fp = fopen(f->path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long len = ftell(fp);
    assert_true(len > 0);
    rewind(fp);
    f->base_image = malloc((size_t)len);
    assert_non_null(f->base_image);
    assert_int_equal(fread(f->base_image, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    f->base_len = (size_t)len;
}

static void restore_base(fixture *f)
{
    remove_db(f);
    int fd = open(f->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, f->base_image, f->base_len), (ssize_t)f->base_len);
    close(fd);
}

/* The transaction: a new record with two signals, an append to the base
 * signal that rewrites its partial block, annotations, a new resource
 * version. Returns the first error. */
static int run_transaction(ct_store *st, int with_base, ct_error *err)
{
    int rc = ct_store_begin(st, err);
    if (rc != CT_OK)
        return rc;
    int64_t rec, ids[2];
    int16_t v[NEW_N];
    rc = make_record(st, "new", 2, &rec, ids, err);
    for (int s = 0; rc == CT_OK && s < 2; s++) {
        samples(ids[s], 0, v, NEW_N);
        rc = ct_store_samples_write(st, ids[s], 0, v, NEW_N, err);
    }
    if (rc == CT_OK && with_base) {
        ct_store_record base;
        ct_store_signal *sigs = NULL;
        size_t n = 0;
        rc = ct_store_record_find(st, "fault", "base", &base, err);
        if (rc == CT_OK)
            rc = ct_store_signals_list(st, base.id, &sigs, &n, err);
        if (rc == CT_OK && n == 1) {
            samples(sigs[0].id, BASE_N, v, APPEND_N);
            rc = ct_store_samples_write(st, sigs[0].id, BASE_N, v, APPEND_N, err);
        }
        free(sigs);
    }
    if (rc == CT_OK) {
        ct_store_annotation *a = calloc(N_ANN, sizeof *a);
        if (!a)
            return CT_ENOMEM;
        for (int i = 0; i < N_ANN; i++) {
            memset(&a[i], 0, sizeof a[i]);
            a[i].sample = i * 50;
            a[i].code = 1 + i % 10;
            if (i % 7 == 0)
                snprintf(a[i].aux, sizeof a[i].aux, "(N %d", i);
        }
        rc = ct_store_annotations_write(st, rec, "atr", a, N_ANN, err);
        free(a);
    }
    if (rc == CT_OK)
        rc = ct_store_resource_put(st, "Observation", "o1", with_base ? "{\"v\":2}" : "{\"v\":1}", 7,
                                   NULL, err);
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK)
        ct_store_rollback(st);
    return rc;
}

/* 0: the database is as before the transaction, 1: as after it. Anything
 * else fails the test. */
static int verify(const fixture *f, const char *when)
{
    sqlite3 *db = NULL;
    char ok[64] = "";
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW)
        snprintf(ok, sizeof ok, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(db);
    if (strcmp(ok, "ok") != 0)
        fail_msg("%s: integrity_check says %s", when, ok);

    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_store_open(f->path, &st, &err) != CT_OK)
        fail_msg("%s: reopen: %s", when, err.msg);
    ct_store_record base, rec;
    assert_int_equal(ct_store_record_find(st, "fault", "base", &base, &err), CT_OK);
    int has_new = ct_store_record_find(st, "fault", "new", &rec, &err) == CT_OK;
    ct_store_signal *sigs = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_signals_list(st, base.id, &sigs, &n, &err), CT_OK);
    assert_int_equal(n, 1);
    int64_t stored = 0;
    assert_int_equal(ct_store_samples_stored(st, sigs[0].id, &stored, &err), CT_OK);
    int16_t got[NEW_N], want[NEW_N];
    size_t nr = 0;
    assert_int_equal(ct_store_samples_read(st, sigs[0].id, 0, got, NEW_N, &nr, &err), CT_OK);
    samples(sigs[0].id, 0, want, nr);
    if (nr != (size_t)stored || memcmp(got, want, nr * sizeof *got) != 0)
        fail_msg("%s: base signal damaged", when);
    free(sigs);
    char *json = NULL;
    int64_t version = 0;
    assert_int_equal(ct_store_resource_get(st, "Observation", "o1", 0, &json, &version, NULL, NULL, &err), CT_OK);

    int after = has_new;
    if (!after) {
        if (stored != BASE_N || version != 1 || strcmp(json, "{\"v\":1}") != 0)
            fail_msg("%s: no new record, yet base has %lld samples and o1 is at version %lld",
                     when, (long long)stored, (long long)version);
    } else {
        if (stored != BASE_N + APPEND_N || version != 2 || strcmp(json, "{\"v\":2}") != 0)
            fail_msg("%s: new record, yet base has %lld samples and o1 is at version %lld",
                     when, (long long)stored, (long long)version);
        assert_int_equal(ct_store_signals_list(st, rec.id, &sigs, &n, &err), CT_OK);
        assert_int_equal(n, 2);
        for (size_t s2 = 0; s2 < 2; s2++) {
            assert_int_equal(ct_store_samples_read(st, sigs[s2].id, 0, got, NEW_N, &nr, &err), CT_OK);
            samples(sigs[s2].id, 0, want, NEW_N);
            if (nr != NEW_N || memcmp(got, want, sizeof got) != 0)
                fail_msg("%s: new signal %zu damaged", when, s2);
        }
        free(sigs);
        ct_store_annotation *a = NULL;
        assert_int_equal(ct_store_annotations_read(st, rec.id, "atr", &a, &n, &err), CT_OK);
        assert_int_equal(n, N_ANN);
        assert_string_equal(a[7].aux, "(N 7");
        free(a);
    }
    free(json);
    ct_store_close(st);
    return after;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    /* tmpfs when there is one: these tests are about what SQLite and the
     * store do at each fault, not about the disk, and thousands of fsyncs
     * on a real disk would take minutes. */
    snprintf(f->dir, sizeof f->dir, "%s/ct-store-fault-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
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
    char p[PATH_MAX + 8];
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
    sqlite3_vfs_unregister(&f->vfs);
    free(f->base_image);
    free(f);
    return 0;
}

/* ---- the tests --------------------------------------------------------------------- */

static void io_errors(fixture *f, enum fault_mode mode)
{
    fault_install(&f->vfs, &f->ctl);
    make_base(f);
    int befores = 0;
    for (int64_t at = 1;; at++) {
        restore_base(f);
        ct_store *st = NULL;
        ct_error err = {0};
        if (ct_store_open(f->path, &st, &err) != CT_OK)
            fail_msg("open: %s", err.msg);
        fault_arm(&f->ctl, mode, at);
        int rc = run_transaction(st, 1, &err);
        int fired = f->ctl.fired;
        if (fired && rc == CT_OK && mode == FAULT_IOERR_PERSIST)
            fail_msg("write %lld failed for good, yet the transaction succeeded", (long long)at);
        if (rc != CT_OK && err.code != CT_EDB)
            fail_msg("write %lld: error %d (%s)", (long long)at, err.code, err.msg);
        ct_store_close(st); /* still failing: the checkpoint cannot run */
        f->ctl.armed = 0;
        char when[64];
        snprintf(when, sizeof when, "I/O error at write %lld", (long long)at);
        int after = verify(f, when);
        if (rc == CT_OK && !after)
            fail_msg("%s: commit reported success, the data is not there", when);
        if (rc != CT_OK && after)
            fail_msg("%s: an error was reported (%s), yet the data is there", when, err.msg);
        befores += !after;
        if (!fired)
            break;
        if (at > 5000)
            fail_msg("the transaction never ran through");
    }
    assert_true(befores > 3); /* faults really did hit the transaction */
}

static void test_io_error_once(void **state)
{
    io_errors(*state, FAULT_IOERR_ONCE);
}

static void test_io_error_persistent(void **state)
{
    io_errors(*state, FAULT_IOERR_PERSIST);
}

static void crashes(fixture *f, enum fault_mode mode)
{
    fault_install(&f->vfs, &f->ctl);
    make_base(f);
    int crashed = 0, saw_after = 0;
    for (int64_t at = 1;; at++) {
        restore_base(f);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            ct_store *st = NULL;
            ct_error err = {0};
            if (ct_store_open(f->path, &st, &err) != CT_OK)
                _exit(2);
            fault_arm(&f->ctl, mode, at);
            int rc = run_transaction(st, 1, &err);
            /* A commit that returned is durable: crash before close. */
            if (rc == CT_OK && f->ctl.fired == 0)
                _exit(0);
            _exit(3);
        }
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        int code = WEXITSTATUS(status);
        char when[64];
        snprintf(when, sizeof when, "crash %d at write %lld", (int)mode, (long long)at);
        if (code != 0 && code != CRASH_EXIT)
            fail_msg("%s: child exit %d", when, code);
        int after = verify(f, when);
        if (code == 0) {
            if (!after)
                fail_msg("%s: committed, yet not there", when);
            break;
        }
        crashed++;
        saw_after += after;
        if (at > 5000)
            fail_msg("the transaction never ran through");
    }
    assert_true(crashed > 3);
    /* A crash after the commit record reached the WAL keeps the data; a
     * crash before it loses it: both must have been seen at least once in
     * the "after" mode. */
    if (mode == FAULT_CRASH_AFTER)
        assert_true(saw_after >= 1);
}

static void test_crash_before_write(void **state)
{
    crashes(*state, FAULT_CRASH_BEFORE);
}

static void test_crash_after_write(void **state)
{
    crashes(*state, FAULT_CRASH_AFTER);
}

static void test_crash_torn_write(void **state)
{
    crashes(*state, FAULT_CRASH_TORN);
}

/* Faults while a new database is created and migrated: the open fails with
 * the file's name, and the next open finishes the job. */
static void test_io_error_during_migration(void **state)
{
    fixture *f = *state;
    fault_install(&f->vfs, &f->ctl);
    int failed = 0;
    for (int64_t at = 1;; at++) {
        remove_db(f);
        ct_store *st = NULL;
        ct_error err = {0};
        fault_arm(&f->ctl, FAULT_IOERR_PERSIST, at);
        int rc = ct_store_open(f->path, &st, &err);
        int fired = f->ctl.fired;
        ct_store_close(st);
        f->ctl.armed = 0;
        if (rc != CT_OK) {
            failed++;
            if (!strstr(err.msg, f->path))
                fail_msg("open with a fault at write %lld: message without the file: %s", (long long)at,
                         err.msg);
        }
        assert_int_equal(ct_store_open(f->path, &st, &err), CT_OK);
        assert_int_equal(ct_store_schema_version(st), ct_store_schema_version_latest());
        ct_store_close(st);
        if (!fired)
            break;
        if (at > 5000)
            fail_msg("the open never ran through");
    }
    assert_true(failed > 1);
}

enum { OOM_DENSE = 400, OOM_STRIDE = 11 };

/* Out of memory in SQLite while a new database is opened, migrated and
 * written to, once (a transient failure) or from then on. */
static void test_out_of_memory(void **state)
{
    fixture *f = *state;
    int failures = 0;
    for (int persistent = 0; persistent < 2; persistent++) {
        /* Every allocation of the first OOM_DENSE (opening, the first
         * statements), then every OOM_STRIDE-th, shifted between the two
         * modes: an O(n^2) loop over all of them would take minutes. */
        for (int64_t at = 1;; at += at < OOM_DENSE ? 1 : OOM_STRIDE) {
            if (at == OOM_DENSE)
                at += persistent * (OOM_STRIDE / 2);
            remove_db(f);
            ct_store *st = NULL;
            ct_error err = {0};
            oom.persistent = persistent;
            oom.countdown = at;
            oom.fired = 0;
            oom.armed = 1;
            int rc = ct_store_open(f->path, &st, &err);
            if (rc == CT_OK)
                rc = run_transaction(st, 0, &err);
            int fired = oom.fired;
            ct_store_close(st);
            oom.armed = 0;
            if (rc != CT_OK) {
                failures++;
                if (err.code != CT_EDB && err.code != CT_ENOMEM && err.code != CT_EIO)
                    fail_msg("allocation %lld failed: error %d (%s)", (long long)at, err.code, err.msg);
            }
            /* Whatever happened, the file opens and is whole. */
            char when[64];
            snprintf(when, sizeof when, "out of memory at allocation %lld", (long long)at);
            if (access(f->path, F_OK) == 0) {
                ct_store *check = NULL;
                if (ct_store_open(f->path, &check, &err) != CT_OK)
                    fail_msg("%s: reopen: %s", when, err.msg);
                ct_store_record r;
                int has_base = ct_store_record_find(check, "fault", "base", &r, &err) == CT_OK;
                int has_new = ct_store_record_find(check, "fault", "new", &r, &err) == CT_OK;
                ct_store_close(check);
                if (has_base)
                    fail_msg("%s: the base record cannot exist here", when);
                if (has_new && rc != CT_OK)
                    fail_msg("%s: an error was reported, yet the data is there", when);
                if (!has_new && rc == CT_OK)
                    fail_msg("%s: success was reported, yet the data is not there", when);
            }
            if (!fired) {
                assert_int_equal(rc, CT_OK);
                break;
            }
            if (at > 100000)
                fail_msg("never ran through");
        }
    }
    assert_true(failures > 10);
}

/* An error in the middle of a long transaction (here: the caller gives up
 * after writing many blocks) leaves the database exactly as before. */
static void test_interrupted_transaction(void **state)
{
    fixture *f = *state;
    make_base(f);
    restore_base(f);
    ct_store *st = NULL;
    ct_error err = {0};
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_OK);
    assert_int_equal(ct_store_begin(st, &err), CT_OK);
    int64_t rec, ids[2];
    assert_int_equal(make_record(st, "new", 2, &rec, ids, &err), CT_OK);
    int16_t v[NEW_N];
    for (int round = 0; round < 20; round++) {
        samples(ids[0], (int64_t)round * NEW_N, v, NEW_N);
        assert_int_equal(ct_store_samples_write(st, ids[0], (int64_t)round * NEW_N, v, NEW_N, &err), CT_OK);
    }
    /* Far more than the page cache: SQLite has spilled pages to the WAL. */
    ct_store_rollback(st);
    ct_store_close(st);
    assert_int_equal(verify(f, "rollback after 600000 samples"), 0);
    assert_int_equal(ct_store_open(f->path, &st, &err), CT_OK);
    ct_store_record r;
    assert_int_equal(ct_store_record_find(st, "fault", "new", &r, &err), CT_ENOTFOUND);
    ct_store_close(st);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    /* The allocator hook must be in place before SQLite starts. */
    sqlite3_shutdown();
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &oom.real) != SQLITE_OK)
        return 1;
    sqlite3_mem_methods hooked = oom.real;
    hooked.xMalloc = oom_malloc;
    hooked.xRealloc = oom_realloc;
    hooked.xFree = oom_free;
    hooked.xSize = oom_size;
    hooked.xRoundup = oom_roundup;
    hooked.xInit = oom_init;
    hooked.xShutdown = oom_shutdown;
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &hooked) != SQLITE_OK || sqlite3_initialize() != SQLITE_OK)
        return 1;

    const struct CMUnitTest tests[] = {
        T(test_interrupted_transaction),
        T(test_io_error_once),
        T(test_io_error_persistent),
        T(test_crash_before_write),
        T(test_crash_after_write),
        T(test_crash_torn_write),
        T(test_io_error_during_migration),
        T(test_out_of_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
