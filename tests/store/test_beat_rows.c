/* The live twin's stored beats (src/store/beat_rows.c, migrations/
 * 0008_twin_beats.sql) on a real SQLite file: a beat is stored once however
 * often it is written (the idempotent insert a retry or a restart relies
 * on); a batch is all or nothing, whether a beat is refused by the checks,
 * by the database (an unknown stream, a failure injected by a trigger half
 * way) or rolled back with the caller's transaction; reads page through a
 * range in sample order without skipping or repeating a beat; the stream
 * lookup behind GET /api/beats; and the size of a stored beat, measured
 * on 100000 of them. A second connection checks what is on disk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "cardiotwin/store.h"

typedef struct fx {
    char path[256];
    ct_store *st;
    sqlite3 *raw;
    int64_t s1, s2;   /* two streams of patient p1 */
} fx;

static int64_t count(fx *f, const char *sql)
{
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(f->raw, sql, -1, &s, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(f->raw));
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void exec(fx *f, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(f->raw, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
}

static int64_t stream_new(fx *f, const char *patient)
{
    ct_store_twin_stream s;
    memset(&s, 0, sizeof s);
    snprintf(s.patient, sizeof s.patient, "%s", patient);
    s.t0_ms = 1767225600000LL;
    s.fs_hz = 360;
    snprintf(s.leads, sizeof s.leads, "131330,131331");
    ct_error err;
    if (ct_store_twin_stream_insert(f->st, &s, &err) != 0)
        fail_msg("%s", err.msg);
    /* Ended, so that the patient may have another. */
    if (ct_store_twin_stream_update(f->st, s.id, 0, 0, &err) != 0)
        fail_msg("%s", err.msg);
    return s.id;
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->path, sizeof f->path, "/tmp/ct_beat_rows_XXXXXX");
    int fd = mkstemp(f->path);
    assert_true(fd >= 0);
    close(fd);
    unlink(f->path);
    ct_error err;
    if (ct_store_open(f->path, &f->st, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(sqlite3_open(f->path, &f->raw), SQLITE_OK);
    sqlite3_busy_timeout(f->raw, 5000);
    f->s1 = stream_new(f, "p1");
    f->s2 = stream_new(f, "p1");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ct_store_close(f->st);
    sqlite3_close(f->raw);
    char p[300];
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
    free(f);
    return 0;
}

static ct_store_twin_beat beat(int64_t stream, int64_t sample, char cls, double hr, double rr)
{
    ct_store_twin_beat b = {stream, sample, cls, hr, rr};
    return b;
}

static void test_insert_once(void **state)
{
    fx *f = *state;
    ct_error err;
    ct_store_twin_beat b[4] = {beat(f->s1, 100, 'N', 72.34, 0), beat(f->s1, 400, 'V', 75.0, 833.4),
                               beat(f->s1, 650, 'A', 0, 694.6), beat(f->s2, 100, 'Q', 999.96, 12345)};
    size_t added = 99;
    assert_int_equal(ct_store_twin_beats_insert(f->st, b, 4, &added, &err), 0);
    assert_int_equal(added, 4);
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 4);
    /* The stored values: tenths of bpm, whole ms. */
    assert_int_equal(count(f, "SELECT hr_dbpm FROM twin_beat WHERE sample = 100 AND cls = 'N'"), 723);
    assert_int_equal(count(f, "SELECT rr_ms FROM twin_beat WHERE sample = 400"), 833);
    assert_int_equal(count(f, "SELECT rr_ms FROM twin_beat WHERE sample = 650"), 695);
    assert_int_equal(count(f, "SELECT hr_dbpm FROM twin_beat WHERE cls = 'Q'"), 10000);

    /* The same batch again (a retry): nothing added, nothing changed. */
    b[1].cls = 'F'; /* even if it now says otherwise: the first word stands */
    assert_int_equal(ct_store_twin_beats_insert(f->st, b, 4, &added, &err), 0);
    assert_int_equal(added, 0);
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 4);
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat WHERE cls = 'V'"), 1);
    /* A batch half old, half new: only the new half is added. */
    ct_store_twin_beat c[3] = {beat(f->s1, 650, 'A', 0, 694.6), beat(f->s1, 900, 'N', 80, 700),
                               beat(f->s1, 1200, 'N', 80, 833)};
    assert_int_equal(ct_store_twin_beats_insert(f->st, c, 3, &added, &err), 0);
    assert_int_equal(added, 2);
    char q[128];
    snprintf(q, sizeof q, "SELECT count(*) FROM twin_beat WHERE stream_id = %lld", (long long)f->s1);
    assert_int_equal(count(f, q), 5);
    /* Nothing to write is not an error. */
    assert_int_equal(ct_store_twin_beats_insert(f->st, NULL, 0, &added, &err), 0);
    assert_int_equal(added, 0);

    ct_store_twin_beat out[8];
    size_t n = 0;
    int more = 1;
    assert_int_equal(ct_store_twin_beats_read(f->st, f->s1, 0, INT64_MAX, 8, out, &n, &more, &err), 0);
    assert_int_equal(n, 5);
    assert_int_equal(more, 0);
    static const int64_t samples[5] = {100, 400, 650, 900, 1200};
    static const char cls[5] = {'N', 'V', 'A', 'N', 'N'};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].sample, samples[i]);
        assert_int_equal(out[i].cls, cls[i]);
        assert_int_equal(out[i].stream_id, f->s1);
    }
    assert_true(fabs(out[0].hr_bpm - 72.3) < 1e-9);
    assert_true(fabs(out[1].rr_ms - 833) < 1e-9);
    assert_true(out[2].hr_bpm == 0);
}

static void test_refused_whole(void **state)
{
    fx *f = *state;
    ct_error err;
    size_t added = 7;
    /* Each bad beat at the end of a good batch: nothing of it is written,
     * and the message names the beat. */
    struct {
        ct_store_twin_beat bad;
        const char *says;
    } cases[] = {
        {beat(f->s1, 500, 'X', 70, 800), "class"},
        {beat(f->s1, 500, '\0', 70, 800), "class"},
        {beat(f->s1, -1, 'N', 70, 800), "negative"},
        {beat(f->s1, 500, 'N', 1000.5, 800), "heart rate"},
        {beat(f->s1, 500, 'N', NAN, 800), "heart rate"},
        {beat(f->s1, 500, 'N', -3, 800), "heart rate"},
        {beat(f->s1, 500, 'N', 70, -1), "RR"},
        {beat(f->s1, 500, 'N', 70, INFINITY), "RR"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        ct_store_twin_beat b[2] = {beat(f->s1, 100, 'N', 70, 0), cases[k].bad};
        assert_int_equal(ct_store_twin_beats_insert(f->st, b, 2, &added, &err), CT_EINVAL);
        assert_int_equal(added, 0);
        if (!strstr(err.msg, cases[k].says) || !strstr(err.msg, "beat 1 of stream"))
            fail_msg("case %zu: \"%s\" does not say %s", k, err.msg, cases[k].says);
        assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 0);
    }
    /* A stream the database does not know: refused by its foreign key. */
    ct_store_twin_beat u[2] = {beat(f->s1, 100, 'N', 70, 0), beat(999, 100, 'N', 70, 0)};
    assert_int_equal(ct_store_twin_beats_insert(f->st, u, 2, &added, &err), CT_EDB);
    print_message("unknown stream: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "beat 1 of 2 (stream 999"));
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 0);

    /* A failure half-way through a batch of 1000 (a trigger standing for
     * a full disk): none of the batch stays. */
    exec(f, "CREATE TRIGGER fail_beat BEFORE INSERT ON twin_beat WHEN NEW.sample = 500000"
            " BEGIN SELECT RAISE(ABORT, 'injected failure'); END");
    ct_store_twin_beat *many = calloc(1000, sizeof *many);
    assert_non_null(many);
    for (int i = 0; i < 1000; i++)
        many[i] = beat(f->s1, 1000 * (int64_t)i, 'N', 70, 800);
    assert_int_equal(ct_store_twin_beats_insert(f->st, many, 1000, &added, &err), CT_EDB);
    assert_non_null(strstr(err.msg, "injected failure"));
    assert_non_null(strstr(err.msg, "beat 500 of 1000"));
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 0);
    exec(f, "DROP TRIGGER fail_beat");
    /* The same batch, retried once the store is well: all of it, once. */
    assert_int_equal(ct_store_twin_beats_insert(f->st, many, 1000, &added, &err), 0);
    assert_int_equal(added, 1000);
    assert_int_equal(ct_store_twin_beats_insert(f->st, many, 1000, &added, &err), 0);
    assert_int_equal(added, 0);
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 1000);
    free(many);
}

static void test_caller_transaction(void **state)
{
    fx *f = *state;
    ct_error err;
    size_t added = 0;
    ct_store_twin_beat b[2] = {beat(f->s1, 10, 'N', 60, 0), beat(f->s1, 370, 'N', 60, 1000)};
    /* Rolled back with the caller's transaction. */
    assert_int_equal(ct_store_begin(f->st, &err), 0);
    assert_int_equal(ct_store_twin_beats_insert(f->st, b, 2, &added, &err), 0);
    assert_int_equal(added, 2);
    ct_store_rollback(f->st);
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 0);
    /* A refused batch inside it leaves the transaction usable (savepoint). */
    ct_store_twin_beat bad[2] = {beat(f->s1, 730, 'N', 60, 1000), beat(4242, 1, 'N', 60, 0)};
    assert_int_equal(ct_store_begin(f->st, &err), 0);
    assert_int_equal(ct_store_twin_beats_insert(f->st, b, 2, &added, &err), 0);
    assert_int_equal(ct_store_twin_beats_insert(f->st, bad, 2, &added, &err), CT_EDB);
    assert_int_equal(ct_store_commit(f->st, &err), 0);
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat"), 2);
    assert_int_equal(count(f, "SELECT count(*) FROM twin_beat WHERE sample = 730"), 0);
}

static void test_read_pages(void **state)
{
    fx *f = *state;
    ct_error err;
    enum { N = 2500 };
    ct_store_twin_beat *b = calloc(N, sizeof *b);
    assert_non_null(b);
    for (int i = 0; i < N; i++)
        b[i] = beat(f->s1, 7 + 300 * (int64_t)i, i % 10 == 3 ? 'V' : 'N', 72, i ? 833 : 0);
    assert_int_equal(ct_store_twin_beats_insert(f->st, b, N, NULL, &err), 0);
    ct_store_twin_beat other = beat(f->s2, 7, 'F', 72, 0);
    assert_int_equal(ct_store_twin_beats_insert(f->st, &other, 1, NULL, &err), 0);

    /* Pages of 333 from sample 0: every beat once, in order. */
    ct_store_twin_beat page[333];
    int64_t from = 0;
    size_t seen = 0, pages = 0;
    for (;;) {
        size_t n = 0;
        int more = 0;
        assert_int_equal(ct_store_twin_beats_read(f->st, f->s1, from, INT64_MAX, 333, page, &n, &more, &err), 0);
        pages++;
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(page[i].sample, b[seen].sample);
            assert_int_equal(page[i].cls, b[seen].cls);
            seen++;
        }
        if (!more)
            break;
        assert_int_equal(n, 333);
        from = page[n - 1].sample + 1;
    }
    assert_int_equal(seen, N);
    assert_int_equal(pages, (N + 332) / 333);
    /* An exact fit: no "more" when the page ends at the range's last beat. */
    size_t n = 0;
    int more = 1;
    assert_int_equal(ct_store_twin_beats_read(f->st, f->s1, 0, 7 + 300 * 333, 333, page, &n, &more, &err), 0);
    assert_int_equal(n, 333);
    assert_int_equal(more, 0);
    /* [from, to): to is excluded. */
    assert_int_equal(ct_store_twin_beats_read(f->st, f->s1, 307, 907, 333, page, &n, &more, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(page[0].sample, 307);
    assert_int_equal(page[1].sample, 607);
    /* An empty or reversed range, another stream, bad limits. */
    assert_int_equal(ct_store_twin_beats_read(f->st, f->s1, 900, 900, 10, page, &n, &more, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ct_store_twin_beats_read(f->st, f->s2, 0, INT64_MAX, 10, page, &n, &more, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(page[0].cls, 'F');
    assert_int_equal(ct_store_twin_beats_read(f->st, f->s1, 0, 10, 0, page, &n, &more, &err), CT_EINVAL);
    assert_int_equal(ct_store_twin_beats_read(f->st, f->s1, 0, 10, CT_STORE_TWIN_BEATS_READ_MAX + 1, page, &n,
                                              &more, &err),
                     CT_EINVAL);
    free(b);
}

static void test_stream_get(void **state)
{
    fx *f = *state;
    ct_error err;
    ct_store_twin_stream s;
    assert_int_equal(ct_store_twin_stream_get(f->st, "p1", 0, &s, &err), 0);
    assert_int_equal(s.id, f->s2);
    assert_int_equal(s.seq, 2);
    assert_string_equal(s.patient, "p1");
    assert_true(s.fs_hz == 360);
    assert_int_equal(s.t0_ms, 1767225600000LL);
    assert_int_equal(ct_store_twin_stream_get(f->st, "p1", 1, &s, &err), 0);
    assert_int_equal(s.id, f->s1);
    assert_int_equal(ct_store_twin_stream_get(f->st, "p1", 3, &s, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "Patient/p1 has no stream 3"));
    assert_int_equal(ct_store_twin_stream_get(f->st, "p2", 0, &s, &err), CT_ENOTFOUND);
    assert_int_equal(ct_store_twin_stream_get(f->st, "p1", -1, &s, &err), CT_EINVAL);
}

/* What a beat costs on disk: 100000 beats of a day-long stream (samples up
 * to 31 million, so four-byte keys as in real life). */
static void test_bytes_per_beat(void **state)
{
    fx *f = *state;
    ct_error err;
    enum { N = 100000 };
    ct_store_twin_beat *b = calloc(N, sizeof *b);
    assert_non_null(b);
    for (int i = 0; i < N; i++)
        b[i] = beat(f->s1, 288 * (int64_t)i + (i * 7919) % 50, i % 13 == 5 ? 'V' : 'N', 60 + (i % 400) / 10.0,
                    i ? 790 + (i * 31) % 100 : 0);
    int64_t pages0 = count(f, "PRAGMA page_count");
    assert_int_equal(ct_store_twin_beats_insert(f->st, b, N, NULL, &err), 0);
    exec(f, "PRAGMA wal_checkpoint(TRUNCATE)");
    int64_t page_size = count(f, "PRAGMA page_size");
    int64_t grown = (count(f, "PRAGMA page_count") - pages0) * page_size;
    double per_beat = (double)grown / N;
    double payload = -1;
    sqlite3_stmt *s = NULL;
    if (sqlite3_prepare_v2(f->raw, "SELECT sum(payload), sum(pgsize) FROM dbstat WHERE name = 'twin_beat'", -1, &s,
                           NULL) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
        payload = sqlite3_column_double(s, 0) / N;
        per_beat = sqlite3_column_double(s, 1) / N;
    }
    sqlite3_finalize(s);
    print_message("twin_beat: %.1f bytes per beat on disk (pages), %.1f of payload; the file grew %.1f per beat\n",
                  per_beat, payload, (double)grown / N);
    /* Five small integers keyed WITHOUT ROWID: about 15 bytes of payload,
     * 20 with the cell and the pages' free space. A REAL column, or a rowid
     * table with its separate key index, would cost 8 bytes or more per
     * beat beyond this bound. */
    assert_true(payload < 0 || payload < 16.0);
    assert_true(per_beat < 24.0);
    assert_true((double)grown / N < 24.0);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caller_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_per_beat, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
