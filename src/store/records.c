/* store/records: patients, records, signals, their samples and annotations.
 *
 * The one idea: samples are stored as blocks of CT_STORE_BLOCK_SAMPLES
 * little-endian int16, block k holding samples [k*3600, k*3600 + 3600) of one
 * signal, never as a row per sample. An MIT-BIH record (2 x 650000 samples)
 * is 362 rows of 7200 bytes, read back in one index walk. Stored samples are
 * contiguous from sample 0 and immutable: a write may only extend them, so a
 * live stream appends by rewriting its last, partial block, and a repeated
 * write of the same samples (a retried upload) is harmless while a
 * conflicting one is refused. Every public write is all-or-nothing
 * (ct_store_op_begin/end). */
#include "store_impl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ANNOTATOR_MAX 64

/* Explicit byte order: the database file moves between machines. */
static void encode_le16(unsigned char *dst, const int16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint16_t u = (uint16_t)src[i];
        dst[2 * i] = (unsigned char)(u & 0xff);
        dst[2 * i + 1] = (unsigned char)(u >> 8);
    }
}

static int16_t decode_le16(const unsigned char *p)
{
    int u = p[0] | (p[1] << 8);
    return (int16_t)(u >= 0x8000 ? u - 0x10000 : u);
}

static int is_constraint(ct_store *st, int ext)
{
    return sqlite3_extended_errcode(st->db) == ext;
}

/* ---- patients ----------------------------------------------------------------- */

static int patient_row(ct_store *st, sqlite3_stmt *s, ct_store_patient *p, ct_error *err)
{
    int rc;
    p->id = sqlite3_column_int64(s, 0);
    if ((rc = ct_store_copy_text(st, s, 1, p->identifier, sizeof p->identifier, "patient identifier", err)) ||
        (rc = ct_store_copy_text(st, s, 2, p->name, sizeof p->name, "patient name", err)) ||
        (rc = ct_store_copy_text(st, s, 3, p->sex, sizeof p->sex, "patient sex", err)))
        return rc;
    p->age_years = sqlite3_column_type(s, 4) == SQLITE_NULL ? -1 : sqlite3_column_int(s, 4);
    return CT_OK;
}

/* Looks the identifier up; CT_ENOTFOUND (without touching err) if absent. */
static int patient_lookup(ct_store *st, const char *identifier, ct_store_patient *out, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, STMT_PATIENT_GET, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, identifier, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int ret;
    if (rc == SQLITE_ROW)
        ret = patient_row(st, s, out, err);
    else if (rc == SQLITE_DONE)
        ret = CT_ENOTFOUND;
    else
        ret = ct_store_db_error(st, err, "looking up patient %s", identifier);
    ct_store_stmt_done(s);
    return ret;
}

int ct_store_patient_get(ct_store *st, const char *identifier, ct_store_patient *out, ct_error *err)
{
    if (!st || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_patient_get: missing argument");
    int rc = ct_store_check_text(identifier, sizeof out->identifier, 1, "patient identifier", err);
    if (rc != CT_OK)
        return rc;
    rc = patient_lookup(st, identifier, out, err);
    if (rc == CT_ENOTFOUND)
        return ct_error_set(err, CT_ENOTFOUND, "no patient %s", identifier);
    return rc;
}

static int patient_ensure_op(ct_store *st, ct_store_patient *p, ct_error *err)
{
    ct_store_patient found;
    int rc = patient_lookup(st, p->identifier, &found, err);
    if (rc == CT_OK) {
        p->id = found.id;
        return CT_OK;
    }
    if (rc != CT_ENOTFOUND)
        return rc;
    sqlite3_stmt *s = ct_store_stmt(st, STMT_PATIENT_INSERT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, p->identifier, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, p->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, p->sex, -1, SQLITE_STATIC);
    if (p->age_years >= 0)
        sqlite3_bind_int(s, 4, p->age_years);
    rc = CT_OK;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "inserting patient %s", p->identifier);
    else
        p->id = sqlite3_last_insert_rowid(st->db);
    ct_store_stmt_done(s);
    return rc;
}

int ct_store_patient_ensure(ct_store *st, ct_store_patient *p, ct_error *err)
{
    if (!st || !p)
        return ct_error_set(err, CT_EINVAL, "ct_store_patient_ensure: missing argument");
    int rc;
    if ((rc = ct_store_check_text(p->identifier, sizeof p->identifier, 1, "patient identifier", err)) ||
        (rc = ct_store_check_text(p->name, sizeof p->name, 0, "patient name", err)) ||
        (rc = ct_store_check_text(p->sex, sizeof p->sex, 0, "patient sex", err)))
        return rc;
    if (strcmp(p->sex, "") != 0 && strcmp(p->sex, "M") != 0 && strcmp(p->sex, "F") != 0)
        return ct_error_set(err, CT_EINVAL, "patient %s: sex '%s' is not M, F or empty", p->identifier, p->sex);
    if (p->age_years > 150)
        return ct_error_set(err, CT_EINVAL, "patient %s: age %d is not plausible", p->identifier, p->age_years);
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, patient_ensure_op(st, p, err), err);
}

/* ---- records and signals ------------------------------------------------------------ */

int ct_store_record_find(ct_store *st, const char *source, const char *name,
                         ct_store_record *out, ct_error *err)
{
    if (!st || !source || !name || !out)
        return ct_error_set(err, CT_EINVAL, "ct_store_record_find: missing argument");
    sqlite3_stmt *s = ct_store_stmt(st, STMT_RECORD_FIND, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_text(s, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, name, -1, SQLITE_STATIC);
    int rc = sqlite3_step(s);
    int ret = CT_OK;
    if (rc == SQLITE_ROW) {
        memset(out, 0, sizeof *out);
        out->id = sqlite3_column_int64(s, 0);
        out->patient_id = sqlite3_column_int64(s, 1); /* NULL reads as 0 */
        out->fs_hz = sqlite3_column_double(s, 4);
        out->n_samples = sqlite3_column_int64(s, 5);
        out->n_signals = sqlite3_column_int(s, 6);
        out->imported_ms = sqlite3_column_int64(s, 9);
        ret = ct_store_copy_text(st, s, 2, out->name, sizeof out->name, "record name", err);
        if (ret == CT_OK)
            ret = ct_store_copy_text(st, s, 3, out->source, sizeof out->source, "record source", err);
        if (ret == CT_OK)
            ret = ct_store_copy_text(st, s, 7, out->content_sha256, sizeof out->content_sha256,
                                     "record content_sha256", err);
        if (ret == CT_OK)
            ret = ct_store_copy_text(st, s, 8, out->comments, sizeof out->comments, "record comments", err);
    } else if (rc == SQLITE_DONE) {
        ret = ct_error_set(err, CT_ENOTFOUND, "no record %s/%s", source, name);
    } else {
        ret = ct_store_db_error(st, err, "looking up record %s/%s", source, name);
    }
    ct_store_stmt_done(s);
    return ret;
}

static int check_sha_hex(const char *sha, ct_error *err)
{
    size_t len = strnlen(sha, 65);
    if (len == 0)
        return CT_OK;
    if (len != 64)
        return ct_error_set(err, CT_EINVAL, "content_sha256 must be 64 hex digits, not %zu characters", len);
    for (size_t i = 0; i < 64; i++) {
        char c = sha[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return ct_error_set(err, CT_EINVAL, "content_sha256 must be lower-case hex");
    }
    return CT_OK;
}

static int record_insert_op(ct_store *st, ct_store_record *rec, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, STMT_RECORD_INSERT, err);
    if (!s)
        return CT_EDB;
    if (rec->patient_id > 0)
        sqlite3_bind_int64(s, 1, rec->patient_id);
    sqlite3_bind_text(s, 2, rec->source, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, rec->name, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 4, rec->fs_hz);
    sqlite3_bind_int64(s, 5, rec->n_samples);
    sqlite3_bind_int(s, 6, rec->n_signals);
    if (rec->content_sha256[0])
        sqlite3_bind_text(s, 7, rec->content_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, rec->comments, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 9, rec->imported_ms);
    int rc = CT_OK;
    if (sqlite3_step(s) == SQLITE_DONE) {
        rec->id = sqlite3_last_insert_rowid(st->db);
    } else if (is_constraint(st, SQLITE_CONSTRAINT_UNIQUE)) {
        rc = ct_error_set(err, CT_EEXIST, "record %s/%s is already stored", rec->source, rec->name);
    } else if (is_constraint(st, SQLITE_CONSTRAINT_FOREIGNKEY)) {
        rc = ct_error_set(err, CT_ENOTFOUND, "record %s/%s: patient %lld does not exist",
                          rec->source, rec->name, (long long)rec->patient_id);
    } else {
        rc = ct_store_db_error(st, err, "inserting record %s/%s", rec->source, rec->name);
    }
    ct_store_stmt_done(s);
    return rc;
}

int ct_store_record_insert(ct_store *st, ct_store_record *rec, ct_error *err)
{
    if (!st || !rec)
        return ct_error_set(err, CT_EINVAL, "ct_store_record_insert: missing argument");
    int rc;
    if ((rc = ct_store_check_text(rec->source, sizeof rec->source, 1, "record source", err)) ||
        (rc = ct_store_check_text(rec->name, sizeof rec->name, 1, "record name", err)) ||
        (rc = ct_store_check_text(rec->content_sha256, sizeof rec->content_sha256, 0, "content_sha256", err)) ||
        (rc = ct_store_check_text(rec->comments, sizeof rec->comments, 0, "record comments", err)) ||
        (rc = check_sha_hex(rec->content_sha256, err)))
        return ct_error_prefix(err, "record %.63s", rec->name);
    if (!(rec->fs_hz > 0 && rec->fs_hz < 1e9) || rec->n_samples < 0 || rec->n_signals < 0 ||
        rec->patient_id < 0 || rec->imported_ms < 0)
        return ct_error_set(err, CT_EINVAL, "record %s/%s: fs_hz %g, n_samples %lld, n_signals %d, "
                            "patient %lld or imported_ms %lld out of range", rec->source, rec->name,
                            rec->fs_hz, (long long)rec->n_samples, rec->n_signals,
                            (long long)rec->patient_id, (long long)rec->imported_ms);
    if (rec->imported_ms == 0)
        rec->imported_ms = ct_store_now_ms();
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, record_insert_op(st, rec, err), err);
}

static int record_delete_op(ct_store *st, int64_t record_id, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, STMT_RECORD_DELETE, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, record_id);
    int rc = CT_OK;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "deleting record %lld", (long long)record_id);
    else if (sqlite3_changes(st->db) == 0)
        rc = ct_error_set(err, CT_ENOTFOUND, "no record %lld", (long long)record_id);
    ct_store_stmt_done(s);
    return rc;
}

int ct_store_record_delete(ct_store *st, int64_t record_id, ct_error *err)
{
    if (!st)
        return ct_error_set(err, CT_EINVAL, "ct_store_record_delete: no store");
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, record_delete_op(st, record_id, err), err);
}

static int signal_insert_op(ct_store *st, ct_store_signal *sig, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, STMT_SIGNAL_INSERT, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, sig->record_id);
    sqlite3_bind_int(s, 2, sig->index);
    sqlite3_bind_text(s, 3, sig->description, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, sig->units, -1, SQLITE_STATIC);
    sqlite3_bind_double(s, 5, sig->gain_adu_per_unit);
    sqlite3_bind_int(s, 6, sig->baseline_adu);
    sqlite3_bind_int(s, 7, sig->adc_zero);
    sqlite3_bind_int(s, 8, sig->adc_resolution_bits);
    sqlite3_bind_int(s, 9, sig->initial_value);
    sqlite3_bind_int(s, 10, sig->checksum);
    sqlite3_bind_int64(s, 11, sig->n_samples);
    int rc = CT_OK;
    if (sqlite3_step(s) == SQLITE_DONE) {
        sig->id = sqlite3_last_insert_rowid(st->db);
    } else if (is_constraint(st, SQLITE_CONSTRAINT_FOREIGNKEY)) {
        rc = ct_error_set(err, CT_ENOTFOUND, "signal %d: record %lld does not exist", sig->index,
                          (long long)sig->record_id);
    } else if (is_constraint(st, SQLITE_CONSTRAINT_UNIQUE)) {
        rc = ct_error_set(err, CT_EEXIST, "record %lld already has a signal %d",
                          (long long)sig->record_id, sig->index);
    } else {
        rc = ct_store_db_error(st, err, "inserting signal %d of record %lld", sig->index,
                               (long long)sig->record_id);
    }
    ct_store_stmt_done(s);
    return rc;
}

int ct_store_signal_insert(ct_store *st, ct_store_signal *sig, ct_error *err)
{
    if (!st || !sig)
        return ct_error_set(err, CT_EINVAL, "ct_store_signal_insert: missing argument");
    int rc;
    if ((rc = ct_store_check_text(sig->description, sizeof sig->description, 0, "signal description", err)) ||
        (rc = ct_store_check_text(sig->units, sizeof sig->units, 0, "signal units", err)))
        return ct_error_prefix(err, "signal %d of record %lld", sig->index, (long long)sig->record_id);
    if (sig->index < 0 || !(sig->gain_adu_per_unit >= 0 && sig->gain_adu_per_unit < 1e12) ||
        sig->adc_resolution_bits < 0 || sig->adc_resolution_bits > 32 ||
        sig->checksum < -32768 || sig->checksum > 32767 || sig->n_samples < 0)
        return ct_error_set(err, CT_EINVAL, "signal %d of record %lld: index, gain %g, resolution %d bits, "
                            "checksum %d or n_samples %lld out of range", sig->index,
                            (long long)sig->record_id, sig->gain_adu_per_unit, sig->adc_resolution_bits,
                            sig->checksum, (long long)sig->n_samples);
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, signal_insert_op(st, sig, err), err);
}

int ct_store_signals_list(ct_store *st, int64_t record_id, ct_store_signal **out,
                          size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_signals_list: missing argument");
    *out = NULL;
    *n_out = 0;
    sqlite3_stmt *s = ct_store_stmt(st, STMT_SIGNAL_LIST, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, record_id);
    ct_store_signal *v = NULL;
    size_t n = 0, cap = 0;
    int rc, ret = CT_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 4) != 0) {
            ret = ct_error_set(err, CT_ENOMEM, "out of memory listing signals of record %lld",
                               (long long)record_id);
            break;
        }
        ct_store_signal *g = &v[n];
        memset(g, 0, sizeof *g);
        g->id = sqlite3_column_int64(s, 0);
        g->record_id = sqlite3_column_int64(s, 1);
        g->index = sqlite3_column_int(s, 2);
        g->gain_adu_per_unit = sqlite3_column_double(s, 5);
        g->baseline_adu = sqlite3_column_int(s, 6);
        g->adc_zero = sqlite3_column_int(s, 7);
        g->adc_resolution_bits = sqlite3_column_int(s, 8);
        g->initial_value = sqlite3_column_int(s, 9);
        g->checksum = sqlite3_column_int(s, 10);
        g->n_samples = sqlite3_column_int64(s, 11);
        if ((ret = ct_store_copy_text(st, s, 3, g->description, sizeof g->description,
                                      "signal description", err)) ||
            (ret = ct_store_copy_text(st, s, 4, g->units, sizeof g->units, "signal units", err)))
            break;
        n++;
    }
    if (ret == CT_OK && rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "listing signals of record %lld", (long long)record_id);
    ct_store_stmt_done(s);
    if (ret != CT_OK) {
        free(v);
        return ret;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}

/* ---- samples ------------------------------------------------------------------------ */

/* A block row as stored: checked against the invariants the schema's
 * CHECKs state, because a read must never trust a file. */
typedef struct block_row {
    int64_t start;
    int n;
    const unsigned char *bytes;
} block_row;

static int read_block_row(ct_store *st, sqlite3_stmt *s, int64_t signal_id, block_row *b, ct_error *err)
{
    b->start = sqlite3_column_int64(s, 0);
    int64_t n = sqlite3_column_int64(s, 1);
    b->bytes = sqlite3_column_blob(s, 2);
    int64_t len = sqlite3_column_bytes(s, 2);
    if (b->start < 0 || b->start % CT_STORE_BLOCK_SAMPLES != 0 || n < 1 || n > CT_STORE_BLOCK_SAMPLES ||
        len != 2 * n || !b->bytes)
        return ct_error_set(err, CT_EDB, "%s: signal %lld: the block at sample %lld is damaged "
                            "(%lld samples, %lld bytes)", st->path, (long long)signal_id,
                            (long long)b->start, (long long)n, (long long)len);
    b->n = (int)n;
    return CT_OK;
}

/* n_samples of the signal; CT_ENOTFOUND when there is no such signal. */
static int signal_n_samples(ct_store *st, int64_t signal_id, int64_t *n_out, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, STMT_SIGNAL_GET, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, signal_id);
    int rc = sqlite3_step(s);
    int ret = CT_OK;
    if (rc == SQLITE_ROW)
        *n_out = sqlite3_column_int64(s, 0);
    else if (rc == SQLITE_DONE)
        ret = ct_error_set(err, CT_ENOTFOUND, "no signal %lld", (long long)signal_id);
    else
        ret = ct_store_db_error(st, err, "looking up signal %lld", (long long)signal_id);
    ct_store_stmt_done(s);
    return ret;
}

/* Samples stored (the last block's end). When keep_partial is set and the
 * last block is partial, its bytes are copied to st->block for appending. */
static int stored_end(ct_store *st, int64_t signal_id, int keep_partial, int64_t *end, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, STMT_BLOCK_LAST, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, signal_id);
    int rc = sqlite3_step(s);
    int ret = CT_OK;
    *end = 0;
    if (rc == SQLITE_ROW) {
        block_row b;
        ret = read_block_row(st, s, signal_id, &b, err);
        if (ret == CT_OK) {
            *end = b.start + b.n;
            if (keep_partial && b.n < CT_STORE_BLOCK_SAMPLES)
                memcpy(st->block, b.bytes, 2 * (size_t)b.n);
        }
    } else if (rc != SQLITE_DONE) {
        ret = ct_store_db_error(st, err, "reading the last block of signal %lld", (long long)signal_id);
    }
    ct_store_stmt_done(s);
    return ret;
}

/* Walks the blocks covering [start, start + n) in order. For each stored
 * sample, `visit` gets the position and the decoded value; *n_done counts
 * the samples visited (contiguous from start). One statement, so the walk
 * sees one consistent snapshot. */
typedef int (*sample_visit_fn)(void *ctx, int64_t pos, const unsigned char *le16, size_t count,
                               ct_error *err);

static int walk_blocks(ct_store *st, int64_t signal_id, int64_t start, int64_t n,
                       sample_visit_fn visit, void *ctx, int64_t *n_done, ct_error *err)
{
    const int64_t B = CT_STORE_BLOCK_SAMPLES;
    int64_t end = start + n;
    int64_t expect = start - start % B;
    *n_done = 0;
    sqlite3_stmt *s = ct_store_stmt(st, STMT_BLOCK_RANGE, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, signal_id);
    sqlite3_bind_int64(s, 2, expect);
    sqlite3_bind_int64(s, 3, end);
    int rc, ret = CT_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        block_row b;
        if ((ret = read_block_row(st, s, signal_id, &b, err)) != CT_OK)
            break;
        if (b.start != expect) {
            ret = ct_error_set(err, CT_EDB, "%s: signal %lld: block at sample %lld is missing; the "
                               "stored samples are damaged", st->path, (long long)signal_id,
                               (long long)expect);
            break;
        }
        int64_t from = start > b.start ? start : b.start;
        int64_t to = end < b.start + b.n ? end : b.start + b.n;
        if (to > from) {
            ret = visit(ctx, from, b.bytes + 2 * (from - b.start), (size_t)(to - from), err);
            if (ret != CT_OK)
                break;
            *n_done += to - from;
        }
        if (b.n < B)
            break; /* the last block: a later row would be a gap */
        expect = b.start + B;
    }
    if (ret == CT_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = ct_store_db_error(st, err, "reading samples of signal %lld", (long long)signal_id);
    ct_store_stmt_done(s);
    return ret;
}

typedef struct read_ctx {
    int16_t *out;
    int64_t start;
} read_ctx;

static int visit_copy(void *ctx, int64_t pos, const unsigned char *le16, size_t count, ct_error *err)
{
    read_ctx *c = ctx;
    int16_t *dst = c->out + (pos - c->start);
    for (size_t i = 0; i < count; i++)
        dst[i] = decode_le16(le16 + 2 * i);
    return CT_OK;
}

typedef struct compare_ctx {
    const int16_t *samples;
    int64_t start;
    int64_t signal_id;
} compare_ctx;

static int visit_compare(void *ctx, int64_t pos, const unsigned char *le16, size_t count, ct_error *err)
{
    compare_ctx *c = ctx;
    const int16_t *want = c->samples + (pos - c->start);
    for (size_t i = 0; i < count; i++) {
        int16_t have = decode_le16(le16 + 2 * i);
        if (have != want[i])
            return ct_error_set(err, CT_EEXIST, "signal %lld: sample %lld is stored as %d, this write "
                                "has %d; stored samples are never overwritten", (long long)c->signal_id,
                                (long long)(pos + (int64_t)i), have, want[i]);
    }
    return CT_OK;
}

static int put_block(ct_store *st, enum ct_store_stmt_id id, int64_t signal_id, int64_t block_start,
                     int n, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, id, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, signal_id);
    sqlite3_bind_int64(s, 2, block_start);
    sqlite3_bind_int(s, 3, n);
    sqlite3_bind_blob(s, 4, st->block, 2 * n, SQLITE_STATIC);
    int rc = CT_OK;
    if (sqlite3_step(s) != SQLITE_DONE)
        rc = ct_store_db_error(st, err, "writing samples %lld..%lld of signal %lld", (long long)block_start,
                               (long long)(block_start + n - 1), (long long)signal_id);
    else if (sqlite3_changes(st->db) != 1)
        rc = ct_error_set(err, CT_EDB, "%s: signal %lld: the block at sample %lld vanished while "
                          "appending", st->path, (long long)signal_id, (long long)block_start);
    ct_store_stmt_done(s);
    return rc;
}

static int samples_write_op(ct_store *st, int64_t signal_id, int64_t start, const int16_t *samples,
                            int64_t n, ct_error *err)
{
    const int64_t B = CT_STORE_BLOCK_SAMPLES;
    int64_t declared = 0, end = 0, have = 0;
    int rc;
    if ((rc = signal_n_samples(st, signal_id, &declared, err)) != CT_OK ||
        (rc = stored_end(st, signal_id, 1, &have, err)) != CT_OK)
        return rc;
    end = start + n;
    if (start > have)
        return ct_error_set(err, CT_EINVAL, "signal %lld: a write at sample %lld would leave a gap "
                            "(%lld samples stored; writes must continue them)", (long long)signal_id,
                            (long long)start, (long long)have);
    if (start < have) {
        compare_ctx c = {samples, start, signal_id};
        int64_t overlap = (end < have ? end : have) - start, seen = 0;
        if ((rc = walk_blocks(st, signal_id, start, overlap, visit_compare, &c, &seen, err)) != CT_OK)
            return rc;
        if (seen != overlap)
            return ct_error_set(err, CT_EDB, "%s: signal %lld: %lld samples stored but only %lld "
                                "readable", st->path, (long long)signal_id, (long long)have,
                                (long long)(start + seen));
    }
    int64_t pos = have > start ? have : start;
    if (pos < end && pos % B != 0) {
        /* Fill up the partial last block (its bytes are in st->block). */
        int64_t in_block = pos % B;
        int64_t take = end - pos < B - in_block ? end - pos : B - in_block;
        encode_le16(st->block + 2 * in_block, samples + (pos - start), (size_t)take);
        if ((rc = put_block(st, STMT_BLOCK_UPDATE, signal_id, pos - in_block, (int)(in_block + take), err)) != CT_OK)
            return rc;
        pos += take;
    }
    while (pos < end) {
        int64_t take = end - pos < B ? end - pos : B;
        encode_le16(st->block, samples + (pos - start), (size_t)take);
        if ((rc = put_block(st, STMT_BLOCK_INSERT, signal_id, pos, (int)take, err)) != CT_OK)
            return rc;
        pos += take;
    }
    /* A live stream grows: the signal's and its record's n_samples follow
     * (an import declares them up front, so this is skipped there). */
    for (int i = 0; i < 2 && rc == CT_OK && end > declared; i++) {
        sqlite3_stmt *s = ct_store_stmt(st, i == 0 ? STMT_SIGNAL_GROW : STMT_RECORD_GROW, err);
        if (!s)
            return CT_EDB;
        sqlite3_bind_int64(s, 1, signal_id);
        sqlite3_bind_int64(s, 2, end);
        if (sqlite3_step(s) != SQLITE_DONE)
            rc = ct_store_db_error(st, err, "updating the length of signal %lld", (long long)signal_id);
        ct_store_stmt_done(s);
    }
    return rc;
}

int ct_store_samples_write(ct_store *st, int64_t signal_id, int64_t start_sample,
                           const int16_t *samples, size_t n, ct_error *err)
{
    if (!st || (!samples && n > 0))
        return ct_error_set(err, CT_EINVAL, "ct_store_samples_write: missing argument");
    if (start_sample < 0)
        return ct_error_set(err, CT_EINVAL, "signal %lld: negative start sample %lld",
                            (long long)signal_id, (long long)start_sample);
    if (n == 0)
        return CT_OK;
    if (n > (size_t)(INT64_MAX / 2) || (int64_t)n > INT64_MAX / 2 - start_sample)
        return ct_error_set(err, CT_ELIMIT, "signal %lld: %zu samples at %lld is beyond any signal",
                            (long long)signal_id, n, (long long)start_sample);
    int rc = ct_store_op_begin(st, err);
    if (rc != CT_OK)
        return rc;
    return ct_store_op_end(st, samples_write_op(st, signal_id, start_sample, samples, (int64_t)n, err), err);
}

int ct_store_samples_read(ct_store *st, int64_t signal_id, int64_t start_sample,
                          int16_t *out, size_t n, size_t *n_read, ct_error *err)
{
    if (n_read)
        *n_read = 0;
    if (!st || !n_read || (!out && n > 0))
        return ct_error_set(err, CT_EINVAL, "ct_store_samples_read: missing argument");
    if (start_sample < 0)
        return ct_error_set(err, CT_EINVAL, "signal %lld: negative start sample %lld",
                            (long long)signal_id, (long long)start_sample);
    int64_t want = n > (size_t)(INT64_MAX / 2) ? INT64_MAX / 2 : (int64_t)n;
    if (want > INT64_MAX / 2 - start_sample)
        want = INT64_MAX / 2 - start_sample;
    int64_t got = 0;
    if (want > 0) {
        read_ctx c = {out, start_sample};
        int rc = walk_blocks(st, signal_id, start_sample, want, visit_copy, &c, &got, err);
        if (rc != CT_OK)
            return rc;
    }
    if (got == 0) {
        int64_t declared;
        int rc = signal_n_samples(st, signal_id, &declared, err);
        if (rc != CT_OK)
            return rc;
    }
    *n_read = (size_t)got;
    return CT_OK;
}

int ct_store_samples_stored(ct_store *st, int64_t signal_id, int64_t *n_out, ct_error *err)
{
    if (!st || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_samples_stored: missing argument");
    *n_out = 0;
    int64_t declared, end;
    int rc = signal_n_samples(st, signal_id, &declared, err);
    if (rc == CT_OK)
        rc = stored_end(st, signal_id, 0, &end, err);
    if (rc == CT_OK)
        *n_out = end;
    return rc;
}

/* ---- annotations ------------------------------------------------------------------- */

static int annotations_write_op(ct_store *st, int64_t record_id, const char *annotator,
                                const ct_store_annotation *ann, size_t n, ct_error *err)
{
    sqlite3_stmt *s = ct_store_stmt(st, STMT_ANN_INSERT, err);
    if (!s)
        return CT_EDB;
    int rc = CT_OK;
    for (size_t i = 0; i < n && rc == CT_OK; i++) {
        const ct_store_annotation *a = &ann[i];
        sqlite3_bind_int64(s, 1, record_id);
        sqlite3_bind_text(s, 2, annotator, -1, SQLITE_STATIC);
        sqlite3_bind_int64(s, 3, a->sample);
        sqlite3_bind_int(s, 4, a->code);
        sqlite3_bind_int(s, 5, a->subtype);
        sqlite3_bind_int(s, 6, a->chan);
        sqlite3_bind_int(s, 7, a->num);
        if (a->aux[0])
            sqlite3_bind_text(s, 8, a->aux, -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(s, 8);
        if (sqlite3_step(s) != SQLITE_DONE) {
            if (is_constraint(st, SQLITE_CONSTRAINT_FOREIGNKEY))
                rc = ct_error_set(err, CT_ENOTFOUND, "annotations %s: record %lld does not exist",
                                  annotator, (long long)record_id);
            else
                rc = ct_store_db_error(st, err, "record %lld: writing annotation %zu (%s) at sample %lld",
                                       (long long)record_id, i, annotator, (long long)a->sample);
        }
        sqlite3_reset(s);
    }
    ct_store_stmt_done(s);
    return rc;
}

int ct_store_annotations_write(ct_store *st, int64_t record_id, const char *annotator,
                               const ct_store_annotation *ann, size_t n, ct_error *err)
{
    if (!st || (!ann && n > 0))
        return ct_error_set(err, CT_EINVAL, "ct_store_annotations_write: missing argument");
    int rc = ct_store_check_text(annotator, ANNOTATOR_MAX, 1, "annotator", err);
    if (rc != CT_OK)
        return ct_error_prefix(err, "record %lld", (long long)record_id);
    /* Check everything first: a bad item must not cost a rollback. */
    for (size_t i = 0; i < n; i++) {
        const ct_store_annotation *a = &ann[i];
        if (a->sample < 0 || a->code < 0 || a->code > 49 || a->subtype < -128 || a->subtype > 127 ||
            a->chan < 0 || a->chan > 255 || a->num < -128 || a->num > 127)
            return ct_error_set(err, CT_EINVAL, "record %lld, annotator %s: annotation %zu (sample %lld, "
                                "code %d, subtype %d, chan %d, num %d) is out of MIT's ranges",
                                (long long)record_id, annotator, i, (long long)a->sample, a->code,
                                a->subtype, a->chan, a->num);
        if (strnlen(a->aux, sizeof a->aux) == sizeof a->aux)
            return ct_error_set(err, CT_EINVAL, "record %lld, annotator %s: annotation %zu: aux is not "
                                "NUL-terminated within %zu bytes", (long long)record_id, annotator, i,
                                sizeof a->aux);
    }
    if (n == 0)
        return CT_OK;
    if ((rc = ct_store_op_begin(st, err)) != CT_OK)
        return rc;
    return ct_store_op_end(st, annotations_write_op(st, record_id, annotator, ann, n, err), err);
}

int ct_store_annotations_read(ct_store *st, int64_t record_id, const char *annotator,
                              ct_store_annotation **out, size_t *n_out, ct_error *err)
{
    if (!st || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_store_annotations_read: missing argument");
    *out = NULL;
    *n_out = 0;
    int rc = ct_store_check_text(annotator, ANNOTATOR_MAX, 1, "annotator", err);
    if (rc != CT_OK)
        return rc;
    sqlite3_stmt *s = ct_store_stmt(st, STMT_ANN_READ, err);
    if (!s)
        return CT_EDB;
    sqlite3_bind_int64(s, 1, record_id);
    sqlite3_bind_text(s, 2, annotator, -1, SQLITE_STATIC);
    ct_store_annotation *v = NULL;
    size_t n = 0, cap = 0;
    int ret = CT_OK;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (ct_store_grow((void **)&v, &cap, n, sizeof *v, 256) != 0) {
            ret = ct_error_set(err, CT_ENOMEM, "out of memory reading annotations %s of record %lld",
                               annotator, (long long)record_id);
            break;
        }
        ct_store_annotation *a = &v[n];
        a->sample = sqlite3_column_int64(s, 0);
        a->code = sqlite3_column_int(s, 1);
        a->subtype = sqlite3_column_int(s, 2);
        a->chan = sqlite3_column_int(s, 3);
        a->num = sqlite3_column_int(s, 4);
        if ((ret = ct_store_copy_text(st, s, 5, a->aux, sizeof a->aux, "annotation aux", err)) != CT_OK)
            break;
        n++;
    }
    if (ret == CT_OK && rc != SQLITE_DONE)
        ret = ct_store_db_error(st, err, "reading annotations %s of record %lld", annotator,
                                (long long)record_id);
    ct_store_stmt_done(s);
    if (ret != CT_OK) {
        free(v);
        return ret;
    }
    *out = v;
    *n_out = n;
    return CT_OK;
}
