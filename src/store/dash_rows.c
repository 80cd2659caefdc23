/* store/dash_rows: the reads behind the clinician's dashboard
 * (docs/dashboard.md): the imported records a viewer may replay, the
 * patient a record belongs to, and the stored streams and segments an
 * event strip is cut from.
 *
 * The one idea: these are rare, small reads (a page load, an alert
 * opened), so their statements are prepared per call rather than cached
 * with the hot ones in store_impl.h; every list is capped, because its
 * length comes from the database, which a read must not trust. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int prepare(ct_store *st, const char *sql, sqlite3_stmt **out, ct_error *err)
{
    if (sqlite3_prepare_v2(st->db, sql, -1, out, NULL) != SQLITE_OK) {
        int rc = ct_store_db_error(st, err, "%s: preparing \"%.60s\"", st->path, sql);
        sqlite3_finalize(*out);
        *out = NULL;
        return rc;
    }
    return CT_OK;
}

int ct_store_records_list(ct_store *st, size_t max, ct_store_record **out, size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_records_list: missing argument");
    *out = NULL;
    *n_out = 0;
    if (max == 0 || max > CT_STORE_RECORDS_LIST_MAX)
        max = CT_STORE_RECORDS_LIST_MAX;
    /* A live stream's segments are records too (0004_twin.sql); they are
     * the twin's, not something a person imported. */
    sqlite3_stmt *s = NULL;
    int ret = prepare(st,
                      "SELECT id, patient_id, name, source, fs_hz, n_samples, n_signals, content_sha256,"
                      " imported_ms FROM record r WHERE NOT EXISTS (SELECT 1 FROM twin_segment g"
                      " WHERE g.record_id = r.id) ORDER BY source, name LIMIT ?1",
                      &s, err);
    if (ret != CT_OK)
        return ret;
    sqlite3_bind_int64(s, 1, (sqlite3_int64)max);
    ct_store_record *v = NULL;
    size_t n = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 8) != 0) {
            ret = ct_error_set(err, CT_ENOMEM, "%s: out of memory listing records", st->path);
            break;
        }
        ct_store_record *r = &v[n];
        memset(r, 0, sizeof *r);
        r->id = sqlite3_column_int64(s, 0);
        r->patient_id = sqlite3_column_int64(s, 1);
        r->fs_hz = sqlite3_column_double(s, 4);
        r->n_samples = sqlite3_column_int64(s, 5);
        r->n_signals = sqlite3_column_int(s, 6);
        r->imported_ms = sqlite3_column_int64(s, 8);
        if ((ret = ct_store_copy_text(st, s, 2, r->name, sizeof r->name, "record name", err)) ||
            (ret = ct_store_copy_text(st, s, 3, r->source, sizeof r->source, "record source", err)) ||
            (ret = ct_store_copy_text(st, s, 7, r->content_sha256, sizeof r->content_sha256,
                                      "record content_sha256", err)))
            break;
        n++;
    }
    if (ret == CT_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = ct_store_db_error(st, err, "%s: listing records", st->path);
    sqlite3_finalize(s);
    if (ret != CT_OK) {
        free(v);
        return ret;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}

int ct_store_patient_by_id(ct_store *st, int64_t id, ct_store_patient *out, ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_patient_by_id: missing argument");
    sqlite3_stmt *s = NULL;
    int ret = prepare(st, "SELECT id, identifier, name, sex, age_years FROM patient WHERE id = ?1", &s, err);
    if (ret != CT_OK)
        return ret;
    sqlite3_bind_int64(s, 1, id);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->id = sqlite3_column_int64(s, 0);
        out->age_years = sqlite3_column_type(s, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 4);
        if ((ret = ct_store_copy_text(st, s, 1, out->identifier, sizeof out->identifier, "patient identifier",
                                      err)) == CT_OK &&
            (ret = ct_store_copy_text(st, s, 2, out->name, sizeof out->name, "patient name", err)) == CT_OK)
            ret = ct_store_copy_text(st, s, 3, out->sex, sizeof out->sex, "patient sex", err);
    } else if (rc == SQLITE_DONE) {
        ret = ct_error_set(err, CT_ENOTFOUND, "%s: no patient with id %lld", st->path, (long long)id);
    } else {
        ret = ct_store_db_error(st, err, "%s: reading patient %lld", st->path, (long long)id);
    }
    sqlite3_finalize(s);
    return ret;
}

int ct_store_twin_stream_at(ct_store *st, const char *patient, int64_t t_ms, ct_store_twin_stream *out,
                            ct_error *err)
{
    if (!st || !patient || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_stream_at: missing argument");
    sqlite3_stmt *s = NULL;
    int ret = prepare(st,
                      "SELECT " CT_STORE_TWIN_STREAM_COLUMNS
                      " FROM twin_stream WHERE patient = ?1 AND t0_ms <= ?2 ORDER BY t0_ms DESC, seq DESC LIMIT 1",
                      &s, err);
    if (ret != CT_OK)
        return ret;
    sqlite3_bind_text(s, 1, patient, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 2, t_ms);
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        ret = ct_store_twin_stream_read_row(st, s, out, err);
        if (ret == CT_OK && !(out->fs_hz > 0))
            ret = ct_error_set(err, CT_EDB, "%s: stream %lld has sampling rate %g", st->path, (long long)out->id,
                               out->fs_hz);
    } else if (rc == SQLITE_DONE) {
        ret = ct_error_set(err, CT_ENOTFOUND, "%s: Patient/%s has no stream at that time", st->path, patient);
    } else {
        ret = ct_store_db_error(st, err, "%s: looking up the streams of Patient/%s", st->path, patient);
    }
    sqlite3_finalize(s);
    return ret;
}

int ct_store_twin_segments_range(ct_store *st, int64_t stream_id, int64_t from_sample, int64_t to_sample,
                                 size_t max, ct_store_twin_segment *out, size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_twin_segments_range: missing argument");
    *n_out = 0;
    sqlite3_stmt *s = NULL;
    int ret = prepare(st,
                      "SELECT g.id, g.stream_id, g.record_id, g.first_sample, r.n_samples FROM twin_segment g"
                      " JOIN record r ON r.id = g.record_id WHERE g.stream_id = ?1 AND g.first_sample < ?3"
                      " AND g.first_sample + r.n_samples > ?2 ORDER BY g.first_sample LIMIT ?4",
                      &s, err);
    if (ret != CT_OK)
        return ret;
    sqlite3_bind_int64(s, 1, stream_id);
    sqlite3_bind_int64(s, 2, from_sample);
    sqlite3_bind_int64(s, 3, to_sample);
    sqlite3_bind_int64(s, 4, (sqlite3_int64)max);
    int rc = SQLITE_DONE;
    size_t n = 0;
    while (n < max && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        ct_store_twin_segment *g = &out[n++];
        g->id = sqlite3_column_int64(s, 0);
        g->stream_id = sqlite3_column_int64(s, 1);
        g->record_id = sqlite3_column_int64(s, 2);
        g->first_sample = sqlite3_column_int64(s, 3);
        g->n_samples = sqlite3_column_int64(s, 4);
    }
    if (n < max && rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "%s: listing the segments of stream %lld", st->path, (long long)stream_id);
    sqlite3_finalize(s);
    *n_out = ret == CT_OK ? n : 0;
    return ret;
}
