/* store/beat_rows: the SQL behind the live twin's stored beats
 * (migrations/0008_twin_beats.sql): many small rows written in batches,
 * read back by ranges of stream samples.
 *
 * The one idea: a beat is identified by its stream and its sample, which
 * is the table's primary key (WITHOUT ROWID), and an insert that finds the
 * key taken does nothing. That makes a write idempotent: the twin may
 * retry a batch after a failure, or write beats it already wrote, and
 * every beat is still stored exactly once. A batch is one operation, so a
 * failure half-way leaves none of it. Both statements are cached like the
 * store's other hot ones (a batch costs binds and steps, never a parse);
 * the rare stream lookup is prepared per call. */
#include "store_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *beat_sql(enum ct_store_stmt_id id)
{
    switch (id) {
    case STMT_TWIN_BEAT_INSERT:
        return "INSERT INTO twin_beat(stream_id, sample, cls, hr_dbpm, rr_ms) VALUES (?1, ?2, ?3, ?4, ?5)"
               " ON CONFLICT(stream_id, sample) DO NOTHING";
    case STMT_TWIN_BEAT_READ:
        return "SELECT sample, cls, hr_dbpm, rr_ms FROM twin_beat WHERE stream_id = ?1 AND sample >= ?2"
               " AND sample < ?3 ORDER BY sample LIMIT ?4";
    default:
        return NULL;
    }
}

static sqlite3_stmt *beat_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err)
{
    if (!st->stmt[id]) {
        const char *sql = beat_sql(id);
        return ct_store_stmt_from(st, id, sql, "beat", err);
    }
    return st->stmt[id];
}

static int class_ok(char c)
{
    return c == 'N' || c == 'A' || c == 'V' || c == 'F' || c == 'Q';
}

static int check_beat(const ct_store_twin_beat *b, size_t i, ct_error *err)
{
    if (b->sample < 0)
        return ct_error_set(err, CT_EINVAL, "beat %zu of stream %lld: sample %lld is negative", i,
                            (long long)b->stream_id, (long long)b->sample);
    if (!class_ok(b->cls))
        return ct_error_set(err, CT_EINVAL, "beat %zu of stream %lld at sample %lld: class 0x%02x is not one of "
                            "N A V F Q", i, (long long)b->stream_id, (long long)b->sample, (unsigned char)b->cls);
    if (!(b->hr_bpm >= 0 && b->hr_bpm <= 1000))
        return ct_error_set(err, CT_EINVAL, "beat %zu of stream %lld at sample %lld: heart rate %g bpm is outside "
                            "0..1000", i, (long long)b->stream_id, (long long)b->sample, b->hr_bpm);
    if (!(b->rr_ms >= 0 && b->rr_ms <= 1e12))
        return ct_error_set(err, CT_EINVAL, "beat %zu of stream %lld at sample %lld: RR interval %g ms is negative "
                            "or out of range", i, (long long)b->stream_id, (long long)b->sample, b->rr_ms);
    return CT_OK;
}

static int insert_op(ct_store *st, sqlite3_stmt *q, const ct_store_twin_beat *beats, size_t n, size_t *added,
                     ct_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const ct_store_twin_beat *b = &beats[i];
        char cls[2] = {b->cls, '\0'};
        sqlite3_bind_int64(q, 1, b->stream_id);
        sqlite3_bind_int64(q, 2, b->sample);
        sqlite3_bind_text(q, 3, cls, 1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)llround(b->hr_bpm * 10.0));
        sqlite3_bind_int64(q, 5, (sqlite3_int64)llround(b->rr_ms));
        int rc = sqlite3_step(q);
        if (rc != SQLITE_DONE) {
            int out = ct_store_db_error(st, err, "%s: storing beat %zu of %zu (stream %lld, sample %lld)", st->path,
                                        i, n, (long long)b->stream_id, (long long)b->sample);
            ct_store_stmt_done(q);
            return out;
        }
        *added += (size_t)sqlite3_changes(st->db);
        sqlite3_reset(q);
    }
    ct_store_stmt_done(q);
    return CT_OK;
}

int ct_store_twin_beats_insert(ct_store *st, const ct_store_twin_beat *beats, size_t n, size_t *n_new,
                               ct_error *err)
{
    if (n_new)
        *n_new = 0;
    if (!st || (n && !beats))
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_beats_insert: missing argument");
    int rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = check_beat(&beats[i], i, err)) != CT_OK)
            return rc;
    if (n == 0)
        return CT_OK;
    sqlite3_stmt *q = beat_stmt(st, STMT_TWIN_BEAT_INSERT, err);
    if (!q)
        return CT_EDB;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    size_t added = 0;
    rc = ct_store_op_end(st, insert_op(st, q, beats, n, &added, err), err);
    if (rc == CT_OK && n_new)
        *n_new = added;
    return rc;
}

int ct_store_twin_beats_read(ct_store *st, int64_t stream_id, int64_t from_sample, int64_t to_sample, size_t max,
                             ct_store_twin_beat *out, size_t *n_out, int *more, ct_error *err)
{
    if (n_out)
        *n_out = 0;
    if (more)
        *more = 0;
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_beats_read: missing argument");
    if (max < 1 || max > CT_STORE_TWIN_BEATS_READ_MAX)
        return ct_error_set(err, CT_EINVAL, "reading beats: at most %zu asked, the limit is 1..%d", max,
                            CT_STORE_TWIN_BEATS_READ_MAX);
    if (to_sample <= from_sample)
        return CT_OK;
    sqlite3_stmt *q = beat_stmt(st, STMT_TWIN_BEAT_READ, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, stream_id);
    sqlite3_bind_int64(q, 2, from_sample);
    sqlite3_bind_int64(q, 3, to_sample);
    /* One more than asked: whether another page follows, without a count. */
    sqlite3_bind_int64(q, 4, (sqlite3_int64)max + 1);
    size_t n = 0;
    int rc, ret = CT_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (n == max) {
            if (more)
                *more = 1;
            rc = SQLITE_DONE;
            break;
        }
        ct_store_twin_beat *b = &out[n];
        const unsigned char *cls = sqlite3_column_text(q, 1);
        b->stream_id = stream_id;
        b->sample = sqlite3_column_int64(q, 0);
        b->cls = cls ? (char)cls[0] : '\0';
        b->hr_bpm = (double)sqlite3_column_int64(q, 2) / 10.0;
        b->rr_ms = (double)sqlite3_column_int64(q, 3);
        /* The table's CHECK keeps these right; a file written by
         * something else is refused rather than passed on. */
        if (!class_ok(b->cls) || b->sample < from_sample) {
            ret = ct_error_set(err, CT_EDB, "%s: stream %lld: the beat stored at sample %lld is not a valid beat",
                               st->path, (long long)stream_id, (long long)b->sample);
            break;
        }
        n++;
    }
    if (ret == CT_OK && rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s: reading the beats of stream %lld", st->path, (long long)stream_id);
    ct_store_stmt_done(q);
    if (ret != CT_OK) {
        if (more)
            *more = 0;
        return ret;
    }
    *n_out = n;
    return CT_OK;
}

int ct_store_twin_stream_get(ct_store *st, const char *patient, int64_t seq, ct_store_twin_stream *out,
                             ct_error *err)
{
    if (!st || !patient || !out || seq < 0)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_stream_get: missing argument");
    sqlite3_stmt *s = NULL;
    const char *sql = "SELECT " CT_STORE_TWIN_STREAM_COLUMNS
                      " FROM twin_stream WHERE patient = ?1 AND (?2 = 0 OR seq = ?2) ORDER BY seq DESC LIMIT 1";
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
        int rc = ct_store_db_error(st, err, "%s: preparing \"%.60s\"", st->path, sql);
        sqlite3_finalize(s);
        return rc;
    }
    sqlite3_bind_text(s, 1, patient, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, seq);
    int ret = CT_OK;
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        ret = ct_store_twin_stream_read_row(st, s, out, err);
        if (ret == CT_OK && !(out->fs_hz > 0))
            ret = ct_error_set(err, CT_EDB, "%s: stream %lld has sampling rate %g", st->path, (long long)out->id,
                               out->fs_hz);
    } else if (rc == SQLITE_DONE) {
        if (seq)
            ret = ct_error_set(err, CT_ENOTFOUND, "Patient/%s has no stream %lld", patient, (long long)seq);
        else
            ret = ct_error_set(err, CT_ENOTFOUND, "Patient/%s has no stream", patient);
    } else {
        ret = ct_store_db_error(st, err, "%s: looking up the streams of Patient/%s", st->path, patient);
    }
    sqlite3_finalize(s);
    return ret;
}
