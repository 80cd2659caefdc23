/* The write-ahead log under the server's control (ct_store_wal_watch,
 * ct_store_checkpoint) on a real SQLite file: a watched connection reports
 * the WAL's size after each commit and never checkpoints by itself (the
 * WAL grows past SQLite's automatic 1000 pages); a PASSIVE checkpoint from
 * a second connection copies every frame while the writer's connection is
 * open and a reader sees every commit; TRUNCATE empties the -wal file; an
 * unwatched connection checkpoints by itself again; and the errors
 * (inside a transaction, no store). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cardiotwin/store.h"

typedef struct fx {
    char dir[256], path[300];
    ct_store *st;
    int calls, last_pages, max_pages, drops, begins;
} fx;

static void before_begin(void *user)
{
    fx *f = user;
    f->begins++;
}

static void on_commit(void *user, int wal_pages)
{
    fx *f = user;
    if (wal_pages < f->last_pages)
        f->drops++; /* the WAL was restarted from its start */
    f->calls++;
    f->last_pages = wal_pages;
    f->max_pages = wal_pages > f->max_pages ? wal_pages : f->max_pages;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ct_test_wal_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/ct.db", f->dir);
    ct_error err = {0};
    if (ct_store_open(f->path, &f->st, &err) != 0)
        fail_msg("%s", err.msg);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ct_store_close(f->st);
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", f->path, sfx[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static long wal_bytes(const fx *f)
{
    char p[320];
    snprintf(p, sizeof p, "%s-wal", f->path);
    struct stat sb;
    return stat(p, &sb) == 0 ? (long)sb.st_size : -1;
}

/* n resources of ~24 KB each (three overflow pages and more per commit). */
static void write_resources(ct_store *st, const char *prefix, int n)
{
    size_t len = 24 * 1024;
    char *body = malloc(len + 64);
    for (int i = 0; i < n; i++) {
        int w = snprintf(body, 64, "{\"resourceType\":\"Basic\",\"id\":\"%s-%d\",\"x\":\"", prefix, i);
        memset(body + w, 'a' + i % 26, len - (size_t)w - 2);
        memcpy(body + len - 2, "\"}", 2);
        char id[32];
        snprintf(id, sizeof id, "%s-%d", prefix, i);
        ct_error err = {0};
        if (ct_store_resource_put(st, "Basic", id, body, len, NULL, &err) != 0)
            fail_msg("%s", err.msg);
    }
    free(body);
}

static void test_watched_connection_leaves_checkpoints_to_others(void **state)
{
    fx *f = *state;
    ct_store_wal_watch(f->st, on_commit, before_begin, f);
    write_resources(f->st, "a", 400);
    assert_int_equal(f->calls, 400);
    /* SQLite would have checkpointed and restarted the WAL at 1000 pages. */
    assert_int_equal(f->drops, 0);
    assert_true(f->max_pages > 1000);
    assert_true(wal_bytes(f) > 1000L * 8192);

    /* A second connection, as the server's checkpoint thread: everything
     * is copied while the writer stays open. */
    ct_store *ck = NULL;
    ct_error err = {0};
    assert_int_equal(ct_store_open(f->path, &ck, &err), 0);
    int log = -1, copied = -1;
    assert_int_equal(ct_store_checkpoint(ck, CT_STORE_CHECKPOINT_PASSIVE, &log, &copied, &err), 0);
    assert_int_equal(log, f->last_pages);
    assert_int_equal(copied, log);
    /* The next commit starts the WAL over: the hook sees it small again. */
    write_resources(f->st, "b", 1);
    assert_int_equal(f->drops, 1);
    assert_true(f->last_pages < 20);
    /* Nothing was lost on the way: the reader sees all 401. */
    char *json = NULL;
    int64_t version = 0, updated_ms = 0;
    int deleted = 0;
    assert_int_equal(ct_store_resource_get(ck, "Basic", "a-399", 0, &json, &version, &updated_ms, &deleted, &err), 0);
    assert_non_null(json);
    assert_int_equal(strlen(json), 24 * 1024);
    free(json);
    assert_int_equal(ct_store_resource_get(ck, "Basic", "b-0", 0, &json, &version, &updated_ms, &deleted, &err), 0);
    assert_non_null(json);
    free(json);

    /* TRUNCATE empties the file. */
    assert_true(wal_bytes(f) > 0);
    assert_int_equal(ct_store_checkpoint(ck, CT_STORE_CHECKPOINT_TRUNCATE, &log, &copied, &err), 0);
    assert_int_equal(wal_bytes(f), 0);
    ct_store_close(ck);
}

static void test_unwatched_connection_checkpoints_itself(void **state)
{
    fx *f = *state;
    ct_store_wal_watch(f->st, on_commit, before_begin, f);
    write_resources(f->st, "a", 10);
    assert_int_equal(f->calls, 10);
    /* before_begin is for the caller's transactions (a put on its own does
     * not call it), once per ct_store_begin. */
    assert_int_equal(f->begins, 0);
    ct_error err = {0};
    assert_int_equal(ct_store_begin(f->st, &err), 0);
    ct_store_rollback(f->st);
    assert_int_equal(f->begins, 1);
    ct_store_wal_watch(f->st, NULL, NULL, NULL);
    assert_int_equal(ct_store_begin(f->st, &err), 0);
    ct_store_rollback(f->st);
    assert_int_equal(f->begins, 1);
    write_resources(f->st, "b", 400);
    assert_int_equal(f->calls, 10); /* the hook is gone */
    /* SQLite's own checkpoint kept the WAL near its 1000 pages. */
    assert_true(wal_bytes(f) < 1400L * 8192);
}

static void test_checkpoint_refusals(void **state)
{
    fx *f = *state;
    ct_error err = {0};
    assert_int_equal(ct_store_checkpoint(NULL, CT_STORE_CHECKPOINT_PASSIVE, NULL, NULL, &err), CT_EINVAL);
    assert_int_equal(ct_store_begin(f->st, &err), 0);
    assert_int_equal(ct_store_checkpoint(f->st, CT_STORE_CHECKPOINT_PASSIVE, NULL, NULL, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "inside a transaction"));
    ct_store_rollback(f->st);
    /* An empty WAL: nothing to copy, not an error. */
    int log = -1, copied = -1;
    assert_int_equal(ct_store_checkpoint(f->st, CT_STORE_CHECKPOINT_PASSIVE, &log, &copied, &err), 0);
    assert_int_equal(copied, log);
    /* A writer in the middle of its transaction on another connection:
     * TRUNCATE waits for it, gives up after 250 ms (not the 5 s of an
     * ordinary busy wait) and says so; the connection's ordinary busy wait
     * is 5 s again afterwards. */
    ct_store *other = NULL;
    assert_int_equal(ct_store_open(f->path, &other, &err), 0);
    write_resources(f->st, "a", 2);
    assert_int_equal(ct_store_begin(other, &err), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ct_store_checkpoint(f->st, CT_STORE_CHECKPOINT_TRUNCATE, &log, &copied, &err), CT_EDB);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms >= 200 && ms < 2000);
    assert_non_null(strstr(err.msg, "checkpoint"));
    assert_non_null(strstr(err.msg, "250 ms"));
    assert_non_null(strstr(err.msg, f->path));
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(ct_store_begin(f->st, &err), CT_EDB);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    assert_true(ms >= 4500);
    ct_store_rollback(other);
    ct_store_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_watched_connection_leaves_checkpoints_to_others, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwatched_connection_checkpoints_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refusals, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
