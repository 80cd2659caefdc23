/* audit/checkpoint: signing the log's head.
 *
 * The one idea: a checkpoint is incremental and never signs what it has not
 * checked. It starts from the previous checkpoint, whose stored Merkle
 * frontier is proven by folding it to that checkpoint's signed root (and
 * whose signature is checked when it is our key's), re-hashes only the
 * entries added since, linking each to its predecessor from the previous
 * head, and signs the result. So the cost is proportional to the entries
 * since the last checkpoint, not to the log, and an entry altered after it
 * was written but before it was signed is refused here rather than vouched
 * for. All of it happens in one write transaction, so no entry can slip in
 * between the hashing and the insert. */
#include "audit_impl.h"

#include <stdlib.h>
#include <string.h>

static int sign_new(ct_store *st, const ct_audit_key *key, ct_audit_checkpoint_info *out, int *created,
                    ct_audit_verifier *v, ct_audit_checkpoint_info *latest, ct_audit_record *row, ct_error *err)
{
    int have_latest = 0;
    int rc = ct_store_checkpoint_latest(st, latest, err);
    if (rc == CT_OK)
        have_latest = 1;
    else if (rc != CT_ENOTFOUND)
        return rc;
    ct_error_clear(err);
    int64_t last = 0;
    unsigned char last_hash[32];
    if ((rc = ct_store_audit_last(st, &last, last_hash, err)) != CT_OK)
        return rc;
    if (last == 0) {
        memset(out, 0, sizeof *out);
        return CT_OK;
    }
    if (have_latest && latest->size == last) {
        *out = *latest;
        return CT_OK;
    }
    if (have_latest && latest->size > last)
        return ct_error_set(err, CT_ECHECKSUM, "the audit log ends at entry %lld but checkpoint %lld signed "
                            "%lld entries; not signing (run 'cardiotwin audit verify')", (long long)last,
                            (long long)latest->id, (long long)latest->size);

    if (have_latest) {
        /* A checkpoint of an earlier key cannot be checked with this one;
         * its frontier still has to fold to the root it signed. */
        if (strcmp(latest->key_id, ct_audit_key_id(key)) == 0 &&
            (rc = ct_audit_checkpoint_check_signature(key, latest, err)) != CT_OK)
            return ct_error_prefix(err, "not signing");
        if ((rc = ct_audit_verifier_resume(v, latest, err)) != CT_OK)
            return ct_error_prefix(err, "not signing");
        v->last_cp_id = latest->id;
        v->last_cp_size = latest->size;
        if ((rc = ct_store_audit_get(st, latest->size, row, err)) != CT_OK)
            return rc;
        if (memcmp(row->hash, latest->head_hash, 32) != 0)
            return ct_error_set(err, CT_ECHECKSUM, "not signing: entry %lld is not the head checkpoint %lld "
                                "signed (run 'cardiotwin audit verify')", (long long)latest->size,
                                (long long)latest->id);
    }
    ct_store_audit_iter *it = NULL;
    if ((rc = ct_store_audit_iter_open(st, v->next_seq, &it, err)) != CT_OK)
        return rc;
    int n;
    while ((n = ct_store_audit_iter_next(it, row, err)) == 1) {
        if ((rc = ct_audit_verifier_entry(v, row, err)) != CT_OK) {
            ct_store_audit_iter_close(it);
            return ct_error_prefix(err, "not signing");
        }
    }
    ct_store_audit_iter_close(it);
    if (n < 0)
        return n;
    if (v->next_seq - 1 != last)
        return ct_error_set(err, CT_ECHECKSUM, "not signing: the log's entries end at %lld, its last entry "
                            "is %lld", (long long)(v->next_seq - 1), (long long)last);

    ct_audit_checkpoint_info *cp = out;
    memset(cp, 0, sizeof *cp);
    cp->id = have_latest ? latest->id + 1 : 1;
    cp->size = last;
    memcpy(cp->head_hash, v->prev_hash, 32);
    ct_audit_merkle_root(&v->tree, cp->merkle_root);
    cp->time_ms = ct_audit_now_ms();
    cp->n_frontier = v->tree.n;
    memcpy(cp->frontier, v->tree.node, (size_t)v->tree.n * 32);
    if ((rc = ct_audit_checkpoint_sign(key, cp, err)) != CT_OK)
        return rc;
    if ((rc = ct_store_checkpoint_insert(st, cp, err)) != CT_OK)
        return rc;
    *created = 1;
    return CT_OK;
}

int ct_audit_checkpoint(ct_store *st, const ct_audit_key *key, ct_audit_checkpoint_info *out, int *created,
                        ct_error *err)
{
    if (!st || !key || !out)
        return ct_error_set(err, CT_EINVAL, "ct_audit_checkpoint: missing argument");
    int made = 0;
    if (created)
        *created = 0;
    if (!ct_audit_key_has_private(key))
        return ct_error_set(err, CT_EINVAL, "signing a checkpoint needs the private key, not the public one");
    ct_audit_verifier *v = malloc(sizeof *v);
    ct_audit_report *rep = malloc(sizeof *rep);
    ct_audit_checkpoint_info *latest = malloc(sizeof *latest);
    ct_audit_record *row = malloc(sizeof *row);
    int rc;
    if (!v || !rep || !latest || !row) {
        rc = ct_error_set(err, CT_ENOMEM, "out of memory");
        goto out;
    }
    ct_audit_verifier_init(v, key, rep, "");
    if ((rc = ct_store_begin(st, err)) != CT_OK)
        goto out;
    rc = sign_new(st, key, out, &made, v, latest, row, err);
    if (rc == CT_OK && made)
        rc = ct_store_commit(st, err);
    else
        ct_store_rollback(st);
    if (rc == CT_OK && created)
        *created = made;
out:
    free(v);
    free(rep);
    free(latest);
    free(row);
    return rc;
}
