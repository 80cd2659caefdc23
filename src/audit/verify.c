/* audit/verify: recomputing the chain and the Merkle tree and checking
 * every signed checkpoint against them.
 *
 * The one idea: one verifier, fed item by item in log order, serves the
 * database, the export files and the checkpoint writer alike. An entry is
 * checked against its own hash (content), against its predecessor's hash
 * (order, nothing removed or inserted), and added to the Merkle tree; a
 * checkpoint is checked when the tree has exactly its size: its id follows
 * the previous one, its signature verifies, and its root and head are the
 * recomputed ones. The first disagreement stops the walk and is reported
 * with the entry or checkpoint it concerns, in words that say what was
 * probably done: a changed field breaks an entry's own hash; a removed,
 * inserted or moved entry breaks the link to its predecessor or the seq
 * count; an edit hidden by re-hashing the rest of the chain breaks the
 * first checkpoint that covers it (which can then only name the range
 * between the last good checkpoint and itself); a cut tail leaves a
 * checkpoint beyond the end of the log.
 *
 * A clock that steps back is reported, not failed: seq orders the log and
 * the hashes protect it; time is a claim of the writer's clock. */
#include "audit_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char zero_hash[32];

void ct_audit_verifier_init(ct_audit_verifier *v, const ct_audit_key *key, ct_audit_report *rep,
                            const char *where)
{
    memset(v, 0, offsetof(ct_audit_verifier, canon));
    v->key = key;
    v->rep = rep;
    v->next_seq = 1;
    v->where = where ? where : "";
    ct_audit_merkle_init(&v->tree);
    memset(rep, 0, sizeof *rep);
    if (key)
        snprintf(rep->key_id, sizeof rep->key_id, "%s", ct_audit_key_id(key));
}

int ct_audit_fail(ct_audit_verifier *v, ct_error *err, int64_t bad_seq, int64_t bad_cp, const char *fmt, ...)
{
    char what[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    ct_audit_report *rep = v->rep;
    snprintf(rep->problem, sizeof rep->problem, "%s%s", v->where, what);
    rep->ok = 0;
    rep->bad_seq = bad_seq;
    rep->bad_checkpoint = bad_cp;
    return ct_error_set(err, CT_ECHECKSUM, "%s", rep->problem);
}

static int missing(ct_audit_verifier *v, ct_error *err, int64_t got)
{
    int64_t want = v->next_seq;
    if (want == 1)
        return ct_audit_fail(v, err, 1, 0, "entry 1 missing (the log starts at entry %lld)", (long long)got);
    if (got == want + 1)
        return ct_audit_fail(v, err, want, 0, "entry %lld missing (the chain jumps from entry %lld to %lld)",
                             (long long)want, (long long)(want - 1), (long long)got);
    return ct_audit_fail(v, err, want, 0, "entries %lld..%lld missing (the chain jumps from entry %lld to %lld)",
                         (long long)want, (long long)(got - 1), (long long)(want - 1), (long long)got);
}

int ct_audit_verifier_entry(ct_audit_verifier *v, const ct_audit_record *r, ct_error *err)
{
    if (r->seq < 1)
        return ct_audit_fail(v, err, v->next_seq, 0, "where entry %lld belongs, an entry claims seq %lld",
                             (long long)v->next_seq, (long long)r->seq);
    if (r->seq > v->next_seq)
        return missing(v, err, r->seq);
    if (r->seq < v->next_seq)
        return ct_audit_fail(v, err, r->seq, 0, "entry %lld appears again after entry %lld (duplicated or moved)",
                             (long long)r->seq, (long long)(v->next_seq - 1));
    ct_error local;
    ct_error_clear(&local);
    if (ct_audit_record_check(r, &local) != CT_OK)
        return ct_audit_fail(v, err, r->seq, 0, "entry %lld: %s; cardiotwin never writes such an entry",
                             (long long)r->seq, local.msg);
    if (r->seq == 1 && memcmp(r->prev_hash, zero_hash, 32) != 0)
        return ct_audit_fail(v, err, 1, 0, "entry 1: prev_hash is not 32 zero bytes (it was not the first "
                             "entry: entries before it were removed?)");
    if (r->seq > 1 && v->have_prev && memcmp(r->prev_hash, v->prev_hash, 32) != 0)
        return ct_audit_fail(v, err, r->seq, 0, "entry %lld: prev_hash is not entry %lld's hash (an entry was "
                             "removed, inserted or moved here)", (long long)r->seq, (long long)(r->seq - 1));
    size_t n = ct_audit_canonical(r, v->canon, sizeof v->canon);
    unsigned char h[32];
    ct_audit_sha256(r->prev_hash, 32, v->canon, n, h);
    if (memcmp(h, r->hash, 32) != 0)
        return ct_audit_fail(v, err, r->seq, 0, "entry %lld: hash mismatch: the entry is not what was hashed "
                             "(a field was changed)", (long long)r->seq);

    ct_audit_report *rep = v->rep;
    if (v->have_time && r->time_ms + CT_AUDIT_TIME_TOLERANCE_MS < v->max_time_ms) {
        if (rep->time_warnings++ == 0) {
            rep->first_time_warning_seq = r->seq;
            rep->first_time_warning_back_ms = v->max_time_ms - r->time_ms;
        }
    }
    if (!v->have_time || r->time_ms > v->max_time_ms)
        v->max_time_ms = r->time_ms;
    v->have_time = 1;

    unsigned char leaf[32];
    ct_audit_sha256("\0", 1, v->canon, n, leaf);
    ct_audit_merkle_add_leaf_hash(&v->tree, leaf);
    memcpy(v->prev_hash, r->hash, 32);
    v->have_prev = 1;
    v->prev_seq = r->seq;
    v->next_seq = r->seq + 1;
    if (rep->first_checked == 0)
        rep->first_checked = r->seq;
    rep->entries_checked++;
    return CT_OK;
}

int ct_audit_verifier_node(ct_audit_verifier *v, int64_t first_seq, int64_t size, const unsigned char root[32],
                           ct_error *err)
{
    if (first_seq > v->next_seq)
        return missing(v, err, first_seq);
    if (first_seq < v->next_seq)
        return ct_audit_fail(v, err, first_seq, 0, "the subtree over entries %lld.. overlaps entry %lld",
                             (long long)first_seq, (long long)(v->next_seq - 1));
    int log2 = -1;
    for (int b = 0; b < 62; b++)
        if (size == (int64_t)1 << b)
            log2 = b;
    if (log2 < 0 || (first_seq - 1) % size != 0)
        return ct_audit_fail(v, err, first_seq, 0, "the subtree over %lld entries from entry %lld is not a "
                             "perfect, aligned Merkle subtree", (long long)size, (long long)first_seq);
    if (ct_audit_merkle_add_subtree(&v->tree, log2, root) != CT_OK)
        return ct_audit_fail(v, err, first_seq, 0, "the subtree from entry %lld does not fit the tree",
                             (long long)first_seq);
    v->next_seq = first_seq + size;
    v->have_prev = 0;
    v->rep->nodes++;
    return CT_OK;
}

int ct_audit_verifier_signature(ct_audit_verifier *v, const ct_audit_checkpoint_info *cp, ct_error *err)
{
    if (cp->id != v->last_cp_id + 1) {
        if (cp->id <= v->last_cp_id)
            return ct_audit_fail(v, err, 0, cp->id, "checkpoint %lld appears again after checkpoint %lld",
                                 (long long)cp->id, (long long)v->last_cp_id);
        if (v->last_cp_id == 0)
            return ct_audit_fail(v, err, 0, v->last_cp_id + 1, "checkpoint 1 missing (the first checkpoint "
                                 "is %lld)", (long long)cp->id);
        return ct_audit_fail(v, err, 0, v->last_cp_id + 1, "checkpoint %lld missing (checkpoints jump from "
                             "%lld to %lld)", (long long)(v->last_cp_id + 1), (long long)v->last_cp_id,
                             (long long)cp->id);
    }
    if (cp->size <= v->last_cp_size)
        return ct_audit_fail(v, err, 0, cp->id, "checkpoint %lld signs %lld entries, no more than checkpoint "
                             "%lld's %lld", (long long)cp->id, (long long)cp->size, (long long)v->last_cp_id,
                             (long long)v->last_cp_size);
    if (!v->key)
        return ct_audit_fail(v, err, 0, cp->id, "checkpoint %lld: no public key to check its signature with "
                             "(give --pubkey %s)", (long long)cp->id, CT_AUDIT_PUB_FILE);
    ct_error local;
    ct_error_clear(&local);
    if (ct_audit_checkpoint_check_signature(v->key, cp, &local) != CT_OK)
        return ct_audit_fail(v, err, 0, cp->id, "%s", local.msg);
    v->last_cp_id = cp->id;
    v->last_cp_size = cp->size;
    return CT_OK;
}

int ct_audit_verifier_checkpoint(ct_audit_verifier *v, const ct_audit_checkpoint_info *cp, ct_error *err)
{
    int64_t at = v->next_seq - 1;
    if (cp->size > at)
        return ct_audit_fail(v, err, at + 1, cp->id, "checkpoint %lld signed %lld entries but only %lld come "
                             "before it (entries %lld..%lld were removed?)", (long long)cp->id,
                             (long long)cp->size, (long long)at, (long long)(at + 1), (long long)cp->size);
    if (cp->size < at)
        return ct_audit_fail(v, err, 0, cp->id, "checkpoint %lld signed %lld entries but comes after entry %lld "
                             "(checkpoints moved?)", (long long)cp->id, (long long)cp->size, (long long)at);
    int64_t good = v->last_cp_size;
    int rc = ct_audit_verifier_signature(v, cp, err);
    if (rc != CT_OK)
        return rc;
    unsigned char root[32];
    ct_audit_merkle_root(&v->tree, root);
    if (memcmp(root, cp->merkle_root, 32) != 0)
        return ct_audit_fail(v, err, good + 1, cp->id, "checkpoint %lld (signed %lld entries) does not match "
                             "the log: its Merkle root differs, so an entry in %lld..%lld was changed, "
                             "inserted or removed and the chain re-hashed to hide it", (long long)cp->id,
                             (long long)cp->size, (long long)(good + 1), (long long)cp->size);
    if (v->have_prev && v->prev_seq == cp->size && memcmp(v->prev_hash, cp->head_hash, 32) != 0)
        return ct_audit_fail(v, err, cp->size, cp->id, "checkpoint %lld signed another head hash for entry "
                             "%lld than the log's (the chain was re-hashed)", (long long)cp->id,
                             (long long)cp->size);
    v->rep->checkpoints++;
    v->rep->signed_size = cp->size;
    return CT_OK;
}

int ct_audit_verifier_resume(ct_audit_verifier *v, const ct_audit_checkpoint_info *cp, ct_error *err)
{
    if (ct_audit_merkle_restore(&v->tree, (uint64_t)cp->size, (const unsigned char(*)[32])cp->frontier,
                                cp->n_frontier) != CT_OK)
        return ct_audit_fail(v, err, 0, cp->id, "checkpoint %lld: its stored Merkle frontier (%d hashes) does "
                             "not fit its size %lld", (long long)cp->id, cp->n_frontier, (long long)cp->size);
    unsigned char root[32];
    ct_audit_merkle_root(&v->tree, root);
    if (memcmp(root, cp->merkle_root, 32) != 0)
        return ct_audit_fail(v, err, 0, cp->id, "checkpoint %lld: its stored Merkle frontier does not give its "
                             "signed root (the frontier was altered)", (long long)cp->id);
    v->next_seq = cp->size + 1;
    v->have_prev = 1;
    v->prev_seq = cp->size;
    memcpy(v->prev_hash, cp->head_hash, 32);
    return CT_OK;
}

int ct_audit_verifier_finish(ct_audit_verifier *v, int64_t log_size, ct_error *err)
{
    int64_t at = v->next_seq - 1;
    if (at < log_size)
        return ct_audit_fail(v, err, at + 1, 0, "the log ends at entry %lld but should hold %lld entries "
                             "(entries %lld..%lld were removed?)", (long long)at, (long long)log_size,
                             (long long)(at + 1), (long long)log_size);
    if (at > log_size)
        return ct_audit_fail(v, err, log_size + 1, 0, "the log holds %lld entries but should end at entry %lld",
                             (long long)at, (long long)log_size);
    v->rep->log_size = log_size;
    v->rep->ok = 1;
    return CT_OK;
}

/* ---- the database ------------------------------------------------------------------ */

/* The next checkpoint of the iterator; *have 0 at the end. A malformed
 * checkpoint row is a verification failure naming it. */
static int next_cp(ct_audit_verifier *v, ct_store_checkpoint_iter *it, ct_audit_checkpoint_info *cp, int *have,
                   ct_error *err)
{
    ct_error local;
    ct_error_clear(&local);
    int rc = ct_store_checkpoint_iter_next(it, cp, &local);
    if (rc == CT_EFORMAT)
        return ct_audit_fail(v, err, 0, cp->id, "%s", local.msg);
    if (rc < 0) {
        if (err)
            *err = local;
        return rc;
    }
    *have = rc;
    return CT_OK;
}

static int verify_db(ct_store *st, int64_t from_seq, ct_audit_verifier *v, ct_error *err)
{
    ct_audit_report *rep = v->rep;
    unsigned char last_hash[32];
    int64_t log_size = 0;
    int rc = ct_store_audit_last(st, &log_size, last_hash, err);
    if (rc != CT_OK)
        return rc;
    rep->log_size = log_size;

    ct_audit_checkpoint_info *start = calloc(1, sizeof *start), *cp = calloc(1, sizeof *cp);
    ct_audit_record *row = calloc(1, sizeof *row);
    ct_store_checkpoint_iter *cit = NULL;
    ct_store_audit_iter *rit = NULL;
    int have_start = 0, have_cp = 0;
    if (!start || !cp || !row) {
        rc = ct_error_set(err, CT_ENOMEM, "out of memory");
        goto out;
    }
    if (from_seq > 1) {
        ct_error local;
        ct_error_clear(&local);
        rc = ct_store_checkpoint_at_or_below(st, from_seq - 1, start, &local);
        if (rc == CT_EFORMAT) {
            rc = ct_audit_fail(v, err, 0, 0, "%s", local.msg);
            goto out;
        }
        if (rc != CT_OK && rc != CT_ENOTFOUND) {
            if (err)
                *err = local;
            goto out;
        }
        have_start = rc == CT_OK;
        rc = CT_OK;
    }
    if ((rc = ct_store_checkpoint_iter_open(st, &cit, err)) != CT_OK || (rc = next_cp(v, cit, cp, &have_cp, err)))
        goto out;
    if (have_start) {
        /* Checkpoints up to the start: ids and signatures only. */
        while (have_cp && cp->id <= start->id) {
            if ((rc = ct_audit_verifier_signature(v, cp, err)) != CT_OK || (rc = next_cp(v, cit, cp, &have_cp, err)))
                goto out;
        }
        if (v->last_cp_id != start->id) {
            rc = ct_audit_fail(v, err, 0, start->id, "checkpoint %lld is not among the checkpoints", (long long)start->id);
            goto out;
        }
        if ((rc = ct_audit_verifier_resume(v, start, err)) != CT_OK)
            goto out;
        ct_error local;
        ct_error_clear(&local);
        int g = ct_store_audit_get(st, start->size, row, &local);
        if (g == CT_ENOTFOUND) {
            rc = ct_audit_fail(v, err, log_size + 1, start->id, "the log ends at entry %lld but checkpoint %lld "
                               "signed %lld entries (entries %lld..%lld were removed)", (long long)log_size,
                               (long long)start->id, (long long)start->size, (long long)(log_size + 1),
                               (long long)start->size);
            goto out;
        }
        if (g != CT_OK) {
            rc = g == CT_EFORMAT ? ct_audit_fail(v, err, start->size, 0, "%s", local.msg) : g;
            if (g != CT_EFORMAT && err)
                *err = local;
            goto out;
        }
        if (memcmp(row->hash, start->head_hash, 32) != 0) {
            rc = ct_audit_fail(v, err, start->size, start->id, "entry %lld: its hash is not the head that "
                               "checkpoint %lld signed (the entry was changed or replaced)",
                               (long long)start->size, (long long)start->id);
            goto out;
        }
        rep->started_at_checkpoint = start->id;
        rep->checkpoints = start->id;
        rep->signed_size = start->size;
    }

    if ((rc = ct_store_audit_iter_open(st, v->next_seq, &rit, err)) != CT_OK)
        goto out;
    for (;;) {
        ct_error local;
        ct_error_clear(&local);
        int n = ct_store_audit_iter_next(rit, row, &local);
        if (n == 0)
            break;
        if (n == CT_EFORMAT) {
            rc = ct_audit_fail(v, err, row->seq, 0, "%s", local.msg);
            goto out;
        }
        if (n < 0) {
            if (err)
                *err = local;
            rc = n;
            goto out;
        }
        if ((rc = ct_audit_verifier_entry(v, row, err)) != CT_OK)
            goto out;
        while (have_cp && cp->size <= row->seq) {
            if ((rc = ct_audit_verifier_checkpoint(v, cp, err)) != CT_OK || (rc = next_cp(v, cit, cp, &have_cp, err)))
                goto out;
        }
    }
    if (have_cp) {
        int64_t end = v->next_seq - 1;
        rc = ct_audit_fail(v, err, end + 1, cp->id, "the log ends at entry %lld but checkpoint %lld signed %lld "
                           "entries (entries %lld..%lld were removed)", (long long)end, (long long)cp->id,
                           (long long)cp->size, (long long)(end + 1), (long long)cp->size);
        goto out;
    }
    rc = ct_audit_verifier_finish(v, log_size, err);
out:
    ct_store_audit_iter_close(rit);
    ct_store_checkpoint_iter_close(cit);
    free(start);
    free(cp);
    free(row);
    return rc;
}

int ct_audit_verify(ct_store *st, int64_t from_seq, const ct_audit_key *key, ct_audit_report *report,
                    ct_error *err)
{
    if (!st || !report)
        return ct_error_set(err, CT_EINVAL, "ct_audit_verify: missing argument");
    ct_audit_verifier *v = malloc(sizeof *v);
    if (!v)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    ct_audit_verifier_init(v, key, report, "");
    int started = 0;
    int rc = ct_store_audit_read_begin(st, &started, err);
    if (rc == CT_OK) {
        rc = verify_db(st, from_seq, v, err);
        ct_store_audit_read_end(st, started);
    }
    report->ok = rc == CT_OK;
    free(v);
    return rc;
}
