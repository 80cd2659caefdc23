/* store/twin_rows: the SQL behind the live twin (migrations/0004_twin.sql):
 * streams, their stored segments, which Observation brought which samples,
 * alerts and the outbox.
 *
 * The one idea: as for the audit log, the store moves rows and the twin
 * room owns their meaning. Every write is one operation (a transaction of
 * its own or a savepoint of the caller's), so the twin can put a report's
 * resources, its alert row, its outbox row and its audit entry in one
 * transaction and have all or none of them. Statements are cached like the
 * rest of the store's; their SQL is here, next to the code that binds
 * them. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    enum ct_store_stmt_id id;
    const char *sql;
} twin_sql[] = {
    {STMT_TWIN_STREAM_INSERT,
     "INSERT INTO twin_stream(patient, seq, t0_ms, fs_hz, leads, next_sample, state, created_ms,"
     " updated_ms) VALUES (?1, (SELECT ifnull(max(seq), 0) + 1 FROM twin_stream WHERE patient = ?1),"
     " ?2, ?3, ?4, ?5, 'live', ?6, ?6) RETURNING id, seq"},
    {STMT_TWIN_STREAM_UPDATE,
     "UPDATE twin_stream SET next_sample = ?2, state = CASE WHEN ?3 THEN state ELSE 'ended' END,"
     " updated_ms = ?4 WHERE id = ?1 AND next_sample <= ?2"},
    {STMT_TWIN_STREAMS_LIVE,
     "SELECT " CT_STORE_TWIN_STREAM_COLUMNS " FROM twin_stream WHERE state = 'live' ORDER BY id"},
    {STMT_TWIN_SEGMENT_INSERT,
     "INSERT INTO twin_segment(stream_id, record_id, first_sample) VALUES (?1, ?2, ?3) RETURNING id"},
    {STMT_TWIN_SEGMENT_AT,
     "SELECT g.id, g.stream_id, g.record_id, g.first_sample, r.n_samples FROM twin_segment g"
     " JOIN record r ON r.id = g.record_id WHERE g.stream_id = ?1 AND g.first_sample <= ?2"
     " ORDER BY g.first_sample DESC LIMIT 1"},
    {STMT_TWIN_SEGMENT_LAST,
     "SELECT g.id, g.stream_id, g.record_id, g.first_sample, r.n_samples FROM twin_segment g"
     " JOIN record r ON r.id = g.record_id WHERE g.stream_id = ?1"
     " ORDER BY g.first_sample DESC LIMIT 1"},
    {STMT_TWIN_SOURCE_INSERT,
     "INSERT INTO twin_source(stream_id, start_sample, n_samples, observation_id, received_ms)"
     " VALUES (?1, ?2, ?3, ?4, ?5)"},
    {STMT_TWIN_SOURCE_FIND,
     "SELECT s.stream_id, s.start_sample, s.n_samples FROM twin_source s"
     " JOIN twin_stream t ON t.id = s.stream_id WHERE s.observation_id = ?2 AND t.patient = ?1"
     " ORDER BY s.stream_id DESC, s.start_sample DESC LIMIT 1"},
    /* Sources never overlap and are at most one Observation long, so the
     * ones that overlap [from, to) start after from - longest; the range
     * on the primary key keeps the scan short without a second index. */
    {STMT_TWIN_SOURCES,
     "SELECT observation_id FROM twin_source WHERE stream_id = ?1 AND start_sample < ?3"
     " AND start_sample + n_samples > ?2 ORDER BY start_sample LIMIT ?4"},
    {STMT_TWIN_SOURCES_COUNT,
     "SELECT count(*) FROM twin_source WHERE stream_id = ?1 AND start_sample < ?3"
     " AND start_sample + n_samples > ?2"},
    {STMT_TWIN_ALERT_INSERT,
     "INSERT INTO twin_alert(patient, stream_id, rule, priority, state, onset_sample, onset_ms,"
     " raised_sample, raised_ms, end_sample, end_ms, summary, report_id, report_version, created_ms,"
     " updated_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
     " RETURNING id"},
    {STMT_TWIN_ALERT_UPDATE,
     "UPDATE twin_alert SET priority = ?2, state = ?3, end_sample = ?4, end_ms = ?5, summary = ?6,"
     " report_version = ?7, updated_ms = ?8 WHERE id = ?1"},
    {STMT_TWIN_ALERT_GET, NULL}, /* built from ALERT_COLUMNS below */
    {STMT_TWIN_ALERT_ACK,
     "UPDATE twin_alert SET acknowledged_by = ?2, acknowledged_ms = ?3"
     " WHERE id = ?1 AND acknowledged_by IS NULL"},
    {STMT_TWIN_OUTBOX_ADD,
     "INSERT INTO twin_outbox(resource_type, resource_id, resource_version, state, next_attempt_ms,"
     " created_ms) VALUES (?1, ?2, ?3, 'pending', ?4, ?4)"
     " ON CONFLICT(resource_type, resource_id, resource_version) DO NOTHING"},
    {STMT_TWIN_OUTBOX_DUE,
     "SELECT id, resource_type, resource_id, resource_version, state, attempts, next_attempt_ms,"
     " created_ms, sent_ms, last_error FROM twin_outbox WHERE state = 'pending'"
     " AND next_attempt_ms <= ?1 ORDER BY next_attempt_ms, id LIMIT ?2"},
    {STMT_TWIN_OUTBOX_SETTLE,
     "UPDATE twin_outbox SET state = ?6, attempts = attempts + (id = ?4),"
     " next_attempt_ms = CASE WHEN ?6 = 'pending' THEN ?7 ELSE next_attempt_ms END, last_error = ?8,"
     " sent_ms = CASE WHEN ?6 = 'sent' THEN ?5 ELSE sent_ms END"
     " WHERE resource_type = ?1 AND resource_id = ?2 AND resource_version <= ?3 AND state <> 'sent'"},
    {STMT_TWIN_OUTBOX_MARK,
     "UPDATE twin_outbox SET state = ?2, attempts = attempts + 1, next_attempt_ms = ?3,"
     " last_error = ?4, sent_ms = CASE WHEN ?2 = 'sent' THEN ?5 ELSE sent_ms END WHERE id = ?1"},
};

#define ALERT_COLUMNS                                                                            \
    "id, patient, stream_id, rule, priority, state, onset_sample, onset_ms, raised_sample,"      \
    " raised_ms, end_sample, end_ms, summary, report_id, report_version, created_ms, updated_ms," \
    " acknowledged_by, acknowledged_ms"

static const char *stmt_text(enum ct_store_stmt_id id)
{
    if (id == STMT_TWIN_ALERT_GET)
        return "SELECT " ALERT_COLUMNS " FROM twin_alert WHERE id = ?1";
    for (size_t i = 0; i < sizeof twin_sql / sizeof twin_sql[0]; i++)
        if (twin_sql[i].id == id)
            return twin_sql[i].sql;
    return NULL;
}

static sqlite3_stmt *twin_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err)
{
    if (!st->stmt[id]) {
        const char *sql = stmt_text(id);
        return ct_store_stmt_from(st, id, sql, "twin", err);
    }
    return st->stmt[id];
}

int ct_store_in_transaction(const ct_store *st)
{
    return st && st->in_txn;
}

/* Runs a prepared write that returns nothing; CT_ENOTFOUND when it changed
 * no row and must_change is set. */
static int step_write(ct_store *st, sqlite3_stmt *s, int must_change, const char *what, ct_error *err)
{
    int rc = sqlite3_step(s);
    int out = CT_OK;
    if (rc != SQLITE_DONE)
        out = ct_store_db_error(st, err, "%s: %s", st->path, what);
    else if (must_change && sqlite3_changes(st->db) == 0)
        out = ct_error_set(err, CT_ENOTFOUND, "%s: %s: no such row", st->path, what);
    ct_store_stmt_done(s);
    return out;
}

static void bind_text(sqlite3_stmt *s, int col, const char *t)
{
    sqlite3_bind_text(s, col, t, -1, SQLITE_STATIC);
}

static void bind_opt_int(sqlite3_stmt *s, int col, int64_t v)
{
    if (v < 0)
        sqlite3_bind_null(s, col);
    else
        sqlite3_bind_int64(s, col, v);
}

/* ---- streams ----------------------------------------------------------------- */

static int stream_insert_op(ct_store *st, ct_store_twin_stream *s, ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_STREAM_INSERT, err);
    if (!q)
        return CT_EDB;
    int64_t now = ct_store_now_ms();
    bind_text(q, 1, s->patient);
    sqlite3_bind_int64(q, 2, s->t0_ms);
    sqlite3_bind_double(q, 3, s->fs_hz);
    bind_text(q, 4, s->leads);
    sqlite3_bind_int64(q, 5, s->next_sample);
    sqlite3_bind_int64(q, 6, now);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc == SQLITE_ROW) {
        s->id = sqlite3_column_int64(q, 0);
        s->seq = sqlite3_column_int64(q, 1);
        s->live = 1;
        s->created_ms = s->updated_ms = now;
        rc = sqlite3_step(q);
    }
    if (rc != SQLITE_DONE) {
        if ((sqlite3_extended_errcode(st->db) & 0xff) == SQLITE_CONSTRAINT &&
            sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_UNIQUE)
            out = ct_error_set(err, CT_EEXIST, "%s: patient %s already has a live stream", st->path,
                               s->patient);
        else
            out = ct_store_db_error(st, err, "%s: inserting the stream of patient %s", st->path,
                                    s->patient);
    }
    ct_store_stmt_done(q);
    return out;
}

int ct_store_twin_stream_insert(ct_store *st, ct_store_twin_stream *s, ct_error *err)
{
    if (!st || !s)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_stream_insert: missing argument");
    int rc;
    if ((rc = ct_store_check_text(s->patient, sizeof s->patient, 1, "stream patient", err)) ||
        (rc = ct_store_check_text(s->leads, sizeof s->leads, 1, "stream leads", err)))
        return rc;
    if (!(s->fs_hz > 0 && s->fs_hz < 1e6) || s->next_sample < 0)
        return ct_error_set(err, CT_EINVAL, "stream of patient %s: fs %g Hz or next sample %lld out of range",
                            s->patient, s->fs_hz, (long long)s->next_sample);
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, stream_insert_op(st, s, err), err);
}

static int stream_update_op(ct_store *st, int64_t id, int64_t next_sample, int live, ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_STREAM_UPDATE, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, next_sample);
    sqlite3_bind_int(q, 3, live ? 1 : 0);
    sqlite3_bind_int64(q, 4, ct_store_now_ms());
    int rc = sqlite3_step(q);
    int changed = sqlite3_changes(st->db);
    ct_store_stmt_done(q);
    if (rc != SQLITE_DONE)
        return ct_store_db_error(st, err, "%s: updating stream %lld", st->path, (long long)id);
    if (changed)
        return CT_OK;
    /* Nothing changed: say whether the stream is missing or the sample
     * went backwards (the rare path, so a statement of its own). */
    sqlite3_stmt *cur = NULL;
    if (sqlite3_prepare_v2(st->db, "SELECT next_sample FROM twin_stream WHERE id = ?1", -1, &cur, NULL) !=
        SQLITE_OK) {
        sqlite3_finalize(cur);
        return ct_store_db_error(st, err, "%s: reading stream %lld", st->path, (long long)id);
    }
    sqlite3_bind_int64(cur, 1, id);
    rc = sqlite3_step(cur);
    int64_t old = rc == SQLITE_ROW ? sqlite3_column_int64(cur, 0) : -1;
    sqlite3_finalize(cur);
    if (rc == SQLITE_ROW)
        return ct_error_set(err, CT_EINVAL, "stream %lld: next sample %lld is before %lld: streams only grow",
                            (long long)id, (long long)next_sample, (long long)old);
    if (rc == SQLITE_DONE)
        return ct_error_set(err, CT_ENOTFOUND, "%s: no twin stream %lld", st->path, (long long)id);
    return ct_store_db_error(st, err, "%s: reading stream %lld", st->path, (long long)id);
}

int ct_store_twin_stream_update(ct_store *st, int64_t stream_id, int64_t next_sample, int live,
                                ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_stream_update: missing argument");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, stream_update_op(st, stream_id, next_sample, live, err), err);
}

int ct_store_twin_stream_read_row(ct_store *st, sqlite3_stmt *q, ct_store_twin_stream *s, ct_error *err)
{
    memset(s, 0, sizeof *s);
    s->id = sqlite3_column_int64(q, 0);
    int rc;
    if ((rc = ct_store_copy_text(st, q, 1, s->patient, sizeof s->patient, "twin_stream.patient", err)))
        return rc;
    s->seq = sqlite3_column_int64(q, 2);
    s->t0_ms = sqlite3_column_int64(q, 3);
    s->fs_hz = sqlite3_column_double(q, 4);
    if ((rc = ct_store_copy_text(st, q, 5, s->leads, sizeof s->leads, "twin_stream.leads", err)))
        return rc;
    s->next_sample = sqlite3_column_int64(q, 6);
    const unsigned char *state = sqlite3_column_text(q, 7);
    s->live = state && strcmp((const char *)state, "live") == 0;
    s->created_ms = sqlite3_column_int64(q, 8);
    s->updated_ms = sqlite3_column_int64(q, 9);
    return CT_OK;
}

int ct_store_twin_streams_live(ct_store *st, ct_store_twin_stream **out, size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_streams_live: missing argument");
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_STREAMS_LIVE, err);
    if (!q)
        return CT_EDB;
    ct_store_twin_stream *v = NULL;
    size_t n = 0, cap = 0;
    int rc, ret = CT_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 8)) {
            ret = ct_error_set(err, CT_ENOMEM, "out of memory listing live streams");
            break;
        }
        if ((ret = ct_store_twin_stream_read_row(st, q, &v[n], err)) != CT_OK)
            break;
        n++;
    }
    if (ret == CT_OK && rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s: listing live streams", st->path);
    ct_store_stmt_done(q);
    if (ret != CT_OK) {
        free(v);
        return ret;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}

/* ---- segments and sources ------------------------------------------------------ */

static int segment_insert_op(ct_store *st, ct_store_twin_segment *g, ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_SEGMENT_INSERT, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, g->stream_id);
    sqlite3_bind_int64(q, 2, g->record_id);
    sqlite3_bind_int64(q, 3, g->first_sample);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc == SQLITE_ROW) {
        g->id = sqlite3_column_int64(q, 0);
        rc = sqlite3_step(q);
    }
    if (rc != SQLITE_DONE) {
        if (sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_FOREIGNKEY)
            out = ct_error_set(err, CT_ENOTFOUND, "%s: segment of stream %lld: no record %lld or no such stream",
                               st->path, (long long)g->stream_id, (long long)g->record_id);
        else
            out = ct_store_db_error(st, err, "%s: inserting a segment of stream %lld", st->path,
                                    (long long)g->stream_id);
    }
    ct_store_stmt_done(q);
    return out;
}

int ct_store_twin_segment_insert(ct_store *st, ct_store_twin_segment *seg, ct_error *err)
{
    if (!st || !seg || seg->first_sample < 0)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_segment_insert: missing argument or negative first sample");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, segment_insert_op(st, seg, err), err);
}

int ct_store_twin_segment_at(ct_store *st, int64_t stream_id, int64_t sample, ct_store_twin_segment *out,
                             ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_segment_at: missing argument");
    sqlite3_stmt *q = twin_stmt(st, sample < 0 ? STMT_TWIN_SEGMENT_LAST : STMT_TWIN_SEGMENT_AT, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, stream_id);
    if (sample >= 0)
        sqlite3_bind_int64(q, 2, sample);
    int rc = sqlite3_step(q);
    int out_rc = CT_OK;
    if (rc == SQLITE_ROW) {
        out->id = sqlite3_column_int64(q, 0);
        out->stream_id = sqlite3_column_int64(q, 1);
        out->record_id = sqlite3_column_int64(q, 2);
        out->first_sample = sqlite3_column_int64(q, 3);
        out->n_samples = sqlite3_column_int64(q, 4);
        if (sample >= 0 && sample >= out->first_sample + out->n_samples)
            out_rc = ct_error_set(err, CT_ENOTFOUND, "stream %lld has no stored sample %lld",
                                  (long long)stream_id, (long long)sample);
    } else if (rc == SQLITE_DONE) {
        out_rc = ct_error_set(err, CT_ENOTFOUND, "stream %lld has no stored segment%s", (long long)stream_id,
                              sample >= 0 ? " at that sample" : "");
    } else {
        out_rc = ct_store_db_error(st, err, "%s: finding a segment of stream %lld", st->path, (long long)stream_id);
    }
    ct_store_stmt_done(q);
    return out_rc;
}

static int source_insert_op(ct_store *st, int64_t stream_id, int64_t start, int64_t n, const char *obs,
                            ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_SOURCE_INSERT, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, stream_id);
    sqlite3_bind_int64(q, 2, start);
    sqlite3_bind_int64(q, 3, n);
    bind_text(q, 4, obs);
    sqlite3_bind_int64(q, 5, ct_store_now_ms());
    return step_write(st, q, 0, "recording an Observation's samples", err);
}

int ct_store_twin_source_insert(ct_store *st, int64_t stream_id, int64_t start_sample, int64_t n_samples,
                                const char *observation_id, ct_error *err)
{
    if (!st || start_sample < 0 || n_samples < 1)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_source_insert: missing argument or empty range");
    int rc = ct_store_check_text(observation_id, 65, 1, "observation id", err);
    if (rc)
        return rc;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, source_insert_op(st, stream_id, start_sample, n_samples, observation_id, err),
                           err);
}

int ct_store_twin_source_find(ct_store *st, const char *patient, const char *observation_id,
                              int64_t *stream_id, int64_t *start_sample, int64_t *n_samples, ct_error *err)
{
    if (!st || !patient || !observation_id)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_source_find: missing argument");
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_SOURCE_FIND, err);
    if (!q)
        return CT_EDB;
    bind_text(q, 1, patient);
    bind_text(q, 2, observation_id);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc == SQLITE_ROW) {
        if (stream_id)
            *stream_id = sqlite3_column_int64(q, 0);
        if (start_sample)
            *start_sample = sqlite3_column_int64(q, 1);
        if (n_samples)
            *n_samples = sqlite3_column_int64(q, 2);
    } else if (rc == SQLITE_DONE) {
        out = ct_error_set(err, CT_ENOTFOUND, "Observation/%s was not taken by the twin", observation_id);
    } else {
        out = ct_store_db_error(st, err, "%s: finding Observation/%s", st->path, observation_id);
    }
    ct_store_stmt_done(q);
    return out;
}

int ct_store_twin_sources(ct_store *st, int64_t stream_id, int64_t from_sample, int64_t to_sample,
                          char (*ids)[65], size_t max, size_t *n_out, size_t *n_total, ct_error *err)
{
    if (!st || !n_out || (max && !ids))
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_sources: missing argument");
    *n_out = 0;
    if (n_total)
        *n_total = 0;
    int ret = CT_OK;
    if (max) {
        sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_SOURCES, err);
        if (!q)
            return CT_EDB;
        sqlite3_bind_int64(q, 1, stream_id);
        sqlite3_bind_int64(q, 2, from_sample);
        sqlite3_bind_int64(q, 3, to_sample);
        sqlite3_bind_int64(q, 4, max > INT32_MAX ? INT32_MAX : (int64_t)max);
        int rc;
        while ((rc = sqlite3_step(q)) == SQLITE_ROW && *n_out < max) {
            if ((ret = ct_store_copy_text(st, q, 0, ids[*n_out], 65, "twin_source.observation_id", err)))
                break;
            (*n_out)++;
        }
        if (ret == CT_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
            ret = ct_store_db_error(st, err, "%s: listing the sources of stream %lld", st->path,
                                    (long long)stream_id);
        ct_store_stmt_done(q);
    }
    if (ret == CT_OK && n_total) {
        sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_SOURCES_COUNT, err);
        if (!q)
            return CT_EDB;
        sqlite3_bind_int64(q, 1, stream_id);
        sqlite3_bind_int64(q, 2, from_sample);
        sqlite3_bind_int64(q, 3, to_sample);
        if (sqlite3_step(q) == SQLITE_ROW)
            *n_total = (size_t)sqlite3_column_int64(q, 0);
        else
            ret = ct_store_db_error(st, err, "%s: counting the sources of stream %lld", st->path,
                                    (long long)stream_id);
        ct_store_stmt_done(q);
    }
    return ret;
}

/* ---- alerts --------------------------------------------------------------------- */

static int check_alert(const ct_store_twin_alert *a, ct_error *err)
{
    int rc;
    if ((rc = ct_store_check_text(a->patient, sizeof a->patient, 1, "alert patient", err)) ||
        (rc = ct_store_check_text(a->rule, sizeof a->rule, 1, "alert rule", err)) ||
        (rc = ct_store_check_text(a->priority, sizeof a->priority, 1, "alert priority", err)) ||
        (rc = ct_store_check_text(a->state, sizeof a->state, 1, "alert state", err)) ||
        (rc = ct_store_check_text(a->summary, sizeof a->summary, 0, "alert summary", err)) ||
        (rc = ct_store_check_text(a->report_id, sizeof a->report_id, 1, "alert report id", err)))
        return rc;
    int open = strcmp(a->state, "open") == 0;
    if (open != (a->end_sample < 0) || (a->end_sample < 0) != (a->end_ms < 0) || a->report_version < 1)
        return ct_error_set(err, CT_EINVAL, "alert of patient %s: state %s does not agree with its end, or "
                            "report version %lld", a->patient, a->state, (long long)a->report_version);
    return CT_OK;
}

static int alert_constraint(ct_store *st, const ct_store_twin_alert *a, const char *what, ct_error *err)
{
    if ((sqlite3_extended_errcode(st->db) & 0xff) == SQLITE_CONSTRAINT)
        return ct_error_set(err, CT_EINVAL, "%s: %s alert of patient %s (rule %s, state %s, priority %s): %s",
                            st->path, what, a->patient, a->rule, a->state, a->priority, sqlite3_errmsg(st->db));
    return ct_store_db_error(st, err, "%s: %s alert of patient %s", st->path, what, a->patient);
}

static int alert_insert_op(ct_store *st, ct_store_twin_alert *a, ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_ALERT_INSERT, err);
    if (!q)
        return CT_EDB;
    bind_text(q, 1, a->patient);
    sqlite3_bind_int64(q, 2, a->stream_id);
    bind_text(q, 3, a->rule);
    bind_text(q, 4, a->priority);
    bind_text(q, 5, a->state);
    sqlite3_bind_int64(q, 6, a->onset_sample);
    sqlite3_bind_int64(q, 7, a->onset_ms);
    sqlite3_bind_int64(q, 8, a->raised_sample);
    sqlite3_bind_int64(q, 9, a->raised_ms);
    bind_opt_int(q, 10, a->end_sample);
    if (a->end_sample < 0)
        sqlite3_bind_null(q, 11);
    else
        sqlite3_bind_int64(q, 11, a->end_ms);
    bind_text(q, 12, a->summary);
    bind_text(q, 13, a->report_id);
    sqlite3_bind_int64(q, 14, a->report_version);
    sqlite3_bind_int64(q, 15, a->created_ms);
    sqlite3_bind_int64(q, 16, a->updated_ms);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc == SQLITE_ROW) {
        a->id = sqlite3_column_int64(q, 0);
        rc = sqlite3_step(q);
    }
    if (rc != SQLITE_DONE)
        out = alert_constraint(st, a, "inserting the", err);
    ct_store_stmt_done(q);
    return out;
}

int ct_store_twin_alert_insert(ct_store *st, ct_store_twin_alert *a, ct_error *err)
{
    if (!st || !a)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_alert_insert: missing argument");
    int rc = check_alert(a, err);
    if (rc)
        return rc;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, alert_insert_op(st, a, err), err);
}

static int alert_update_op(ct_store *st, const ct_store_twin_alert *a, ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_ALERT_UPDATE, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, a->id);
    bind_text(q, 2, a->priority);
    bind_text(q, 3, a->state);
    bind_opt_int(q, 4, a->end_sample);
    if (a->end_sample < 0)
        sqlite3_bind_null(q, 5);
    else
        sqlite3_bind_int64(q, 5, a->end_ms);
    bind_text(q, 6, a->summary);
    sqlite3_bind_int64(q, 7, a->report_version);
    sqlite3_bind_int64(q, 8, a->updated_ms);
    int rc = sqlite3_step(q);
    int out = CT_OK;
    if (rc != SQLITE_DONE)
        out = alert_constraint(st, a, "updating the", err);
    else if (sqlite3_changes(st->db) == 0)
        out = ct_error_set(err, CT_ENOTFOUND, "%s: no alert %lld", st->path, (long long)a->id);
    ct_store_stmt_done(q);
    return out;
}

int ct_store_twin_alert_update(ct_store *st, const ct_store_twin_alert *a, ct_error *err)
{
    if (!st || !a)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_alert_update: missing argument");
    int rc = check_alert(a, err);
    if (rc)
        return rc;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, alert_update_op(st, a, err), err);
}

static int read_alert(ct_store *st, sqlite3_stmt *q, ct_store_twin_alert *a, ct_error *err)
{
    memset(a, 0, sizeof *a);
    a->id = sqlite3_column_int64(q, 0);
    int rc;
    if ((rc = ct_store_copy_text(st, q, 1, a->patient, sizeof a->patient, "twin_alert.patient", err)))
        return rc;
    a->stream_id = sqlite3_column_int64(q, 2);
    if ((rc = ct_store_copy_text(st, q, 3, a->rule, sizeof a->rule, "twin_alert.rule", err)) ||
        (rc = ct_store_copy_text(st, q, 4, a->priority, sizeof a->priority, "twin_alert.priority", err)) ||
        (rc = ct_store_copy_text(st, q, 5, a->state, sizeof a->state, "twin_alert.state", err)))
        return rc;
    a->onset_sample = sqlite3_column_int64(q, 6);
    a->onset_ms = sqlite3_column_int64(q, 7);
    a->raised_sample = sqlite3_column_int64(q, 8);
    a->raised_ms = sqlite3_column_int64(q, 9);
    int has_end = sqlite3_column_type(q, 10) != SQLITE_NULL;
    a->end_sample = has_end ? sqlite3_column_int64(q, 10) : -1;
    a->end_ms = has_end ? sqlite3_column_int64(q, 11) : -1;
    if ((rc = ct_store_copy_text(st, q, 12, a->summary, sizeof a->summary, "twin_alert.summary", err)) ||
        (rc = ct_store_copy_text(st, q, 13, a->report_id, sizeof a->report_id, "twin_alert.report_id", err)))
        return rc;
    a->report_version = sqlite3_column_int64(q, 14);
    a->created_ms = sqlite3_column_int64(q, 15);
    a->updated_ms = sqlite3_column_int64(q, 16);
    if ((rc = ct_store_copy_text(st, q, 17, a->acknowledged_by, sizeof a->acknowledged_by,
                                 "twin_alert.acknowledged_by", err)))
        return rc;
    a->acknowledged_ms = sqlite3_column_type(q, 18) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 18);
    return CT_OK;
}

int ct_store_twin_alert_get(ct_store *st, int64_t id, ct_store_twin_alert *out, ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_alert_get: missing argument");
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_ALERT_GET, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    int ret;
    if (rc == SQLITE_ROW)
        ret = read_alert(st, q, out, err);
    else if (rc == SQLITE_DONE)
        ret = ct_error_set(err, CT_ENOTFOUND, "no alert %lld", (long long)id);
    else
        ret = ct_store_db_error(st, err, "%s: reading alert %lld", st->path, (long long)id);
    ct_store_stmt_done(q);
    return ret;
}

static int ack_op(ct_store *st, int64_t id, const char *by, int64_t at_ms, ct_store_twin_alert *out,
                  ct_error *err)
{
    ct_store_twin_alert cur;
    int rc = ct_store_twin_alert_get(st, id, &cur, err);
    if (rc)
        return rc;
    if (cur.acknowledged_ms >= 0) {
        if (out)
            *out = cur;
        return ct_error_set(err, CT_EEXIST, "alert %lld was already acknowledged by %s", (long long)id,
                            cur.acknowledged_by);
    }
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_ALERT_ACK, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    bind_text(q, 2, by);
    sqlite3_bind_int64(q, 3, at_ms);
    if ((rc = step_write(st, q, 1, "acknowledging an alert", err)))
        return rc;
    if (out) {
        *out = cur;
        snprintf(out->acknowledged_by, sizeof out->acknowledged_by, "%s", by);
        out->acknowledged_ms = at_ms;
    }
    return CT_OK;
}

int ct_store_twin_alert_acknowledge(ct_store *st, int64_t id, const char *by, int64_t at_ms,
                                    ct_store_twin_alert *out, ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_alert_acknowledge: missing argument");
    int rc = ct_store_check_text(by, 128, 1, "acknowledging user", err);
    if (rc)
        return rc;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, ack_op(st, id, by, at_ms, out, err), err);
}

int ct_store_twin_alerts_list(ct_store *st, const char *patient, int open_only, size_t max,
                              ct_store_twin_alert **out, size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_alerts_list: missing argument");
    *out = NULL;
    *n_out = 0;
    if (max == 0)
        return CT_OK;
    /* Four shapes of one query; prepared per call, since a list is read
     * for people (the dashboard, the CLI), not per sample. */
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT " ALERT_COLUMNS " FROM twin_alert WHERE 1%s%s ORDER BY id DESC LIMIT ?2",
             patient ? " AND patient = ?1" : "", open_only ? " AND state = 'open'" : "");
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(st->db, sql, -1, &q, NULL) != SQLITE_OK) {
        sqlite3_finalize(q);
        return ct_store_db_error(st, err, "%s: listing alerts", st->path);
    }
    if (patient)
        bind_text(q, 1, patient);
    sqlite3_bind_int64(q, 2, max > INT32_MAX ? INT32_MAX : (int64_t)max);
    ct_store_twin_alert *v = NULL;
    size_t n = 0, cap = 0;
    int rc, ret = CT_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 8)) {
            ret = ct_error_set(err, CT_ENOMEM, "out of memory listing alerts");
            break;
        }
        if ((ret = read_alert(st, q, &v[n], err)) != CT_OK)
            break;
        n++;
    }
    if (ret == CT_OK && rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s: listing alerts", st->path);
    sqlite3_finalize(q);
    if (ret != CT_OK) {
        free(v);
        return ret;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}

/* ---- outbox --------------------------------------------------------------------- */

static int outbox_add_op(ct_store *st, const char *type, const char *id, int64_t version, ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_OUTBOX_ADD, err);
    if (!q)
        return CT_EDB;
    bind_text(q, 1, type);
    bind_text(q, 2, id);
    sqlite3_bind_int64(q, 3, version);
    sqlite3_bind_int64(q, 4, ct_store_now_ms());
    return step_write(st, q, 0, "queuing a resource for delivery", err);
}

int ct_store_twin_outbox_add(ct_store *st, const char *resource_type, const char *resource_id,
                             int64_t resource_version, ct_error *err)
{
    if (!st || resource_version < 1)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_outbox_add: missing argument or version < 1");
    int rc;
    if ((rc = ct_store_check_text(resource_type, 65, 1, "outbox resource type", err)) ||
        (rc = ct_store_check_text(resource_id, 65, 1, "outbox resource id", err)))
        return rc;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, outbox_add_op(st, resource_type, resource_id, resource_version, err), err);
}

int ct_store_twin_outbox_due(ct_store *st, int64_t now_ms, size_t max, ct_store_twin_outbox **out,
                             size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_outbox_due: missing argument");
    *out = NULL;
    *n_out = 0;
    if (max == 0)
        return CT_OK;
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_OUTBOX_DUE, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, now_ms);
    sqlite3_bind_int64(q, 2, max > INT32_MAX ? INT32_MAX : (int64_t)max);
    ct_store_twin_outbox *v = NULL;
    size_t n = 0, cap = 0;
    int rc, ret = CT_OK;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 8)) {
            ret = ct_error_set(err, CT_ENOMEM, "out of memory listing the outbox");
            break;
        }
        ct_store_twin_outbox *o = &v[n];
        memset(o, 0, sizeof *o);
        o->id = sqlite3_column_int64(q, 0);
        if ((ret = ct_store_copy_text(st, q, 1, o->resource_type, sizeof o->resource_type, "outbox type", err)) ||
            (ret = ct_store_copy_text(st, q, 2, o->resource_id, sizeof o->resource_id, "outbox id", err)))
            break;
        o->resource_version = sqlite3_column_int64(q, 3);
        if ((ret = ct_store_copy_text(st, q, 4, o->state, sizeof o->state, "outbox state", err)))
            break;
        o->attempts = sqlite3_column_int(q, 5);
        o->next_attempt_ms = sqlite3_column_int64(q, 6);
        o->created_ms = sqlite3_column_int64(q, 7);
        o->sent_ms = sqlite3_column_type(q, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(q, 8);
        /* An error text longer than the buffer is cut, not refused: it is
         * for people. */
        const unsigned char *e = sqlite3_column_text(q, 9);
        snprintf(o->last_error, sizeof o->last_error, "%s", e ? (const char *)e : "");
        n++;
    }
    if (ret == CT_OK && rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s: listing the outbox", st->path);
    ct_store_stmt_done(q);
    if (ret != CT_OK) {
        free(v);
        return ret;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}

static int outbox_mark_op(ct_store *st, int64_t id, const char *state, int64_t next_ms, const char *last_error,
                          ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_OUTBOX_MARK, err);
    if (!q)
        return CT_EDB;
    sqlite3_bind_int64(q, 1, id);
    bind_text(q, 2, state);
    sqlite3_bind_int64(q, 3, next_ms);
    char cut[256];
    snprintf(cut, sizeof cut, "%s", last_error ? last_error : "");
    sqlite3_bind_text(q, 4, cut, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 5, ct_store_now_ms());
    return step_write(st, q, 1, "recording a delivery attempt", err);
}

int ct_store_twin_outbox_mark(ct_store *st, int64_t id, const char *state, int64_t next_attempt_ms,
                              const char *last_error, ct_error *err)
{
    if (!st || !state ||
        (strcmp(state, "sent") != 0 && strcmp(state, "pending") != 0 && strcmp(state, "failed") != 0))
        return ct_error_set(err, CT_EINVAL, "outbox row %lld: state must be sent, pending or failed",
                            (long long)id);
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, outbox_mark_op(st, id, state, next_attempt_ms, last_error, err), err);
}

static int outbox_settle_op(ct_store *st, int64_t id, const char *type, const char *rid, int64_t upto,
                            const char *state, int64_t next_ms, const char *last_error, ct_error *err)
{
    sqlite3_stmt *q = twin_stmt(st, STMT_TWIN_OUTBOX_SETTLE, err);
    if (!q)
        return CT_EDB;
    bind_text(q, 1, type);
    bind_text(q, 2, rid);
    sqlite3_bind_int64(q, 3, upto);
    sqlite3_bind_int64(q, 4, id);
    sqlite3_bind_int64(q, 5, ct_store_now_ms());
    bind_text(q, 6, state);
    sqlite3_bind_int64(q, 7, next_ms);
    char cut[256];
    snprintf(cut, sizeof cut, "%s", last_error ? last_error : "");
    sqlite3_bind_text(q, 8, cut, -1, SQLITE_TRANSIENT);
    return step_write(st, q, 1, "recording a delivery attempt", err);
}

int ct_store_twin_outbox_settle(ct_store *st, int64_t id, const char *resource_type, const char *resource_id,
                                int64_t upto_version, const char *state, int64_t next_attempt_ms,
                                const char *last_error, ct_error *err)
{
    if (!st || !resource_type || !resource_id || !state ||
        (strcmp(state, "sent") != 0 && strcmp(state, "pending") != 0 && strcmp(state, "failed") != 0))
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_outbox_settle: missing argument or state not sent, "
                            "pending or failed");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, outbox_settle_op(st, id, resource_type, resource_id, upto_version, state,
                                                next_attempt_ms, last_error, err), err);
}
