/* Tests of signed checkpoints: the Ed25519 key files (created once, 0600,
 * public half beside them, refused when readable by others), the signed
 * message byte for byte, signatures that fail on a flipped bit or another
 * key, incremental checkpoints, and verification catching what only a
 * checkpoint can catch: a cut tail, an edit hidden by re-hashing the rest
 * of the chain, a removed or forged checkpoint. Also --from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <unistd.h>

#include "../../src/audit/audit_impl.h"
#include "audit_test_util.h"

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

static ct_audit_key *fixture_key(fixture *f)
{
    ct_audit_key *k = NULL;
    ct_error err;
    if (ct_audit_key_open_dir(f->dir, 1, &k, NULL, &err) != CT_OK)
        fail_msg("%s", err.msg);
    return k;
}

static ct_audit_key *fixture_pub(fixture *f)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, CT_AUDIT_PUB_FILE);
    ct_audit_key *k = NULL;
    ct_error err;
    if (ct_audit_key_load(path, &k, &err) != CT_OK)
        fail_msg("%s", err.msg);
    return k;
}

static void checkpoint(fixture *f, ct_audit_key *k, int64_t want_id, int64_t want_size)
{
    ct_audit_checkpoint_info cp;
    int created = -1;
    ct_error err;
    if (ct_audit_checkpoint(f->st, k, &cp, &created, &err) != CT_OK)
        fail_msg("checkpoint: %s", err.msg);
    assert_int_equal(created, 1);
    assert_int_equal(cp.id, want_id);
    assert_int_equal(cp.size, want_size);
}

static void test_key_files(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = NULL;
    ct_error err;
    int created = -1;
    /* Without create, a missing key is not made up. */
    assert_int_equal(ct_audit_key_open_dir(f->dir, 0, &k, &created, &err), CT_ENOTFOUND);
    assert_null(k);
    assert_int_equal(ct_audit_key_open_dir(f->dir, 1, &k, &created, &err), CT_OK);
    assert_int_equal(created, 1);
    assert_true(ct_audit_key_has_private(k));
    assert_int_equal(strlen(ct_audit_key_id(k)), 64);
    char path[256], pub[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, CT_AUDIT_KEY_FILE);
    snprintf(pub, sizeof pub, "%s/%s", f->dir, CT_AUDIT_PUB_FILE);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(pub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    /* Opening again gives the same key; the public file the same id. */
    ct_audit_key *k2 = NULL, *p = NULL;
    assert_int_equal(ct_audit_key_open_dir(f->dir, 1, &k2, &created, &err), CT_OK);
    assert_int_equal(created, 0);
    assert_string_equal(ct_audit_key_id(k), ct_audit_key_id(k2));
    assert_int_equal(ct_audit_key_load(pub, &p, &err), CT_OK);
    assert_false(ct_audit_key_has_private(p));
    assert_string_equal(ct_audit_key_id(k), ct_audit_key_id(p));
    /* No leftover temporary files. */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | grep -c '^\\.cardiotwin') -eq 0", f->dir);
    assert_int_equal(system(cmd), 0);

    /* A private key others can read is refused, like ssh does. */
    assert_int_equal(chmod(path, 0640), 0);
    ct_audit_key *bad = NULL;
    assert_int_equal(ct_audit_key_load(path, &bad, &err), CT_EINVAL);
    assert_contains(err.msg, "readable by others (mode 0640)");
    assert_int_equal(chmod(path, 0600), 0);
    /* Not a key at all. */
    snprintf(path, sizeof path, "%s/junk.pem", f->dir);
    FILE *fp = fopen(path, "w");
    fputs("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", fp);
    fclose(fp);
    assert_int_equal(ct_audit_key_load(path, &bad, &err), CT_EFORMAT);
    assert_contains(err.msg, "junk.pem: not a PEM public key");
    snprintf(path, sizeof path, "%s/none.pem", f->dir);
    assert_int_equal(ct_audit_key_load(path, &bad, &err), CT_ENOTFOUND);
    /* Another algorithm's key is refused. */
    snprintf(path, sizeof path, "%s/ec.pem", f->dir);
    snprintf(cmd, sizeof cmd, "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out '%s' 2>/dev/null"
             " && chmod 600 '%s'", path, path);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(ct_audit_key_load(path, &bad, &err), CT_EFORMAT);
    assert_contains(err.msg, "not an Ed25519 key");
    /* A public key cannot sign. */
    ct_audit_checkpoint_info cp;
    memset(&cp, 0, sizeof cp);
    assert_int_equal(ct_audit_checkpoint_sign(p, &cp, &err), CT_EINVAL);
    ct_audit_key_free(k);
    ct_audit_key_free(k2);
    ct_audit_key_free(p);
}

/* RFC 8032 section 7.1, test 1: the public key derived from the secret
 * seed is the published one, and our key id is SHA-256 of it. */
static void test_rfc8032_key(void **state)
{
    (void)state;
    unsigned char seed[32], pub[32], id[32];
    assert_int_equal(ct_audit_unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, 32), 0);
    assert_int_equal(ct_audit_unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pub, 32), 0);
    ct_audit_key *priv = NULL, *pubk = NULL;
    ct_error err;
    assert_int_equal(ct_audit_key_from_raw(seed, 1, &priv, &err), CT_OK);
    assert_int_equal(ct_audit_key_from_raw(pub, 0, &pubk, &err), CT_OK);
    ct_audit_sha256(pub, 32, NULL, 0, id);
    char hex[65];
    ct_audit_hex(id, 32, hex);
    assert_string_equal(ct_audit_key_id(priv), hex);
    assert_string_equal(ct_audit_key_id(pubk), hex);
    ct_audit_key_free(priv);
    ct_audit_key_free(pubk);
}

static void test_message_and_signature(void **state)
{
    (void)state;
    unsigned char seed[32];
    memset(seed, 7, sizeof seed);
    ct_audit_key *k = NULL, *other = NULL;
    ct_error err;
    assert_int_equal(ct_audit_key_from_raw(seed, 1, &k, &err), CT_OK);
    seed[0] = 8;
    assert_int_equal(ct_audit_key_from_raw(seed, 1, &other, &err), CT_OK);
    ct_audit_checkpoint_info cp;
    memset(&cp, 0, sizeof cp);
    cp.id = 3;
    cp.size = 50;
    memset(cp.head_hash, 0xab, 32);
    memset(cp.merkle_root, 0x01, 32);
    cp.time_ms = 1714564800123LL;
    char msg[CT_AUDIT_CHECKPOINT_MSG_MAX];
    size_t n = ct_audit_checkpoint_message(&cp, msg, sizeof msg);
    assert_string_equal(msg, "cardiotwin audit checkpoint v1\n"
                             "checkpoint 3\n"
                             "size 50\n"
                             "head abababababababababababababababababababababababababababababababab\n"
                             "root 0101010101010101010101010101010101010101010101010101010101010101\n"
                             "time_ms 1714564800123\n");
    assert_int_equal(n, strlen(msg));
    assert_int_equal(ct_audit_checkpoint_sign(k, &cp, &err), CT_OK);
    assert_string_equal(cp.key_id, ct_audit_key_id(k));
    assert_int_equal(ct_audit_checkpoint_check_signature(k, &cp, &err), CT_OK);
    /* Ed25519 is deterministic: the same message, the same signature. */
    ct_audit_checkpoint_info again = cp;
    assert_int_equal(ct_audit_checkpoint_sign(k, &again, &err), CT_OK);
    assert_memory_equal(again.signature, cp.signature, 64);

    /* Any flipped bit, of the signature or of what it signs, fails. */
    for (int bit = 0; bit < 64 * 8; bit += 37) {
        ct_audit_checkpoint_info t = cp;
        t.signature[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_equal(ct_audit_checkpoint_check_signature(k, &t, &err), CT_ECHECKSUM);
        assert_contains(err.msg, "checkpoint 3: the signature does not verify");
    }
    ct_audit_checkpoint_info t = cp;
    t.merkle_root[31] ^= 1;
    assert_int_equal(ct_audit_checkpoint_check_signature(k, &t, &err), CT_ECHECKSUM);
    t = cp;
    t.size++;
    assert_int_equal(ct_audit_checkpoint_check_signature(k, &t, &err), CT_ECHECKSUM);
    t = cp;
    t.id++;
    assert_int_equal(ct_audit_checkpoint_check_signature(k, &t, &err), CT_ECHECKSUM);
    t = cp;
    t.time_ms++;
    assert_int_equal(ct_audit_checkpoint_check_signature(k, &t, &err), CT_ECHECKSUM);
    /* Another key: named as such. */
    assert_int_equal(ct_audit_checkpoint_check_signature(other, &cp, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "was signed by key");
    /* Another key that claims our id still fails the signature. */
    t = cp;
    memcpy(t.key_id, ct_audit_key_id(other), 65);
    assert_int_equal(ct_audit_checkpoint_check_signature(other, &t, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "does not verify");
    ct_audit_key_free(k);
    ct_audit_key_free(other);
}

static void test_checkpoints_incremental(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = fixture_key(f);
    ct_audit_checkpoint_info cp;
    int created = -1;
    ct_error err;
    /* Empty log: nothing to sign. */
    assert_int_equal(ct_audit_checkpoint(f->st, k, &cp, &created, &err), CT_OK);
    assert_int_equal(created, 0);
    assert_int_equal(cp.id, 0);
    append_many(f->st, 1, 5);
    checkpoint(f, k, 1, 5);
    /* Nothing new: the latest is returned, nothing written. */
    assert_int_equal(ct_audit_checkpoint(f->st, k, &cp, &created, &err), CT_OK);
    assert_int_equal(created, 0);
    assert_int_equal(cp.id, 1);
    append_many(f->st, 6, 13);
    checkpoint(f, k, 2, 13);
    append_many(f->st, 14, 14);
    checkpoint(f, k, 3, 14);

    /* The signed root is the Merkle root of all leaves, recomputed here from
     * the rows; the frontier folds to it. */
    ct_audit_merkle m;
    ct_audit_merkle_init(&m);
    for (int s = 1; s <= 14; s++) {
        ct_audit_record r;
        assert_int_equal(ct_store_audit_get(f->st, s, &r, &err), CT_OK);
        unsigned char leaf[32];
        ct_audit_leaf_hash(&r, leaf);
        ct_audit_merkle_add_leaf_hash(&m, leaf);
    }
    unsigned char root[32];
    ct_audit_merkle_root(&m, root);
    ct_store_checkpoint_row latest;
    assert_int_equal(ct_store_checkpoint_latest(f->st, &latest, &err), CT_OK);
    assert_memory_equal(root, latest.merkle_root, 32);
    assert_int_equal(latest.n_frontier, 3); /* 14 = 8 + 4 + 2 */
    assert_int_equal(ct_audit_checkpoint_check_signature(k, &latest, &err), CT_OK);

    ct_audit_key *pub = fixture_pub(f);
    ct_audit_report rep;
    assert_int_equal(ct_audit_verify(f->st, 0, pub, &rep, &err), CT_OK);
    assert_int_equal(rep.checkpoints, 3);
    assert_int_equal(rep.signed_size, 14);
    assert_int_equal(rep.log_size, 14);
    assert_string_equal(rep.key_id, ct_audit_key_id(k));
    /* Without a key, checkpoints cannot be trusted: verification fails. */
    assert_int_equal(ct_audit_verify(f->st, 0, NULL, &rep, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "checkpoint 1: no public key to check its signature with");
    /* With another key, it says whose signature it is. */
    unsigned char seed[32] = {9};
    ct_audit_key *other = NULL;
    assert_int_equal(ct_audit_key_from_raw(seed, 0, &other, &err), CT_OK);
    assert_int_equal(ct_audit_verify(f->st, 0, other, &rep, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "checkpoint 1 was signed by key");
    assert_int_equal(rep.bad_checkpoint, 1);
    /* A public key cannot make checkpoints. */
    assert_int_equal(ct_audit_checkpoint(f->st, pub, &cp, &created, &err), CT_EINVAL);
    ct_audit_key_free(other);
    ct_audit_key_free(pub);
    ct_audit_key_free(k);
}

/* 12 entries, checkpoints at 5 and 10, then tampering. */
static void signed_log(fixture *f, ct_audit_key *k)
{
    append_many(f->st, 1, 5);
    checkpoint(f, k, 1, 5);
    append_many(f->st, 6, 10);
    checkpoint(f, k, 2, 10);
    append_many(f->st, 11, 12);
}

static void expect_verify_fails(fixture *f, ct_audit_key *pub, int64_t from, int64_t bad_seq, int64_t bad_cp,
                                const char *want)
{
    ct_audit_report rep;
    ct_error err;
    ct_error_clear(&err);
    int rc = ct_audit_verify(f->st, from, pub, &rep, &err);
    if (rc != CT_ECHECKSUM)
        fail_msg("verify returned %d: %s (expected '%s')", rc, err.msg, want);
    assert_contains(err.msg, want);
    assert_int_equal(rep.bad_seq, bad_seq);
    assert_int_equal(rep.bad_checkpoint, bad_cp);
}

static void test_cut_tail(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = fixture_key(f);
    signed_log(f, k);
    sqlite3 *db = raw_open(f->db);
    drop_triggers(db);
    raw_exec(db, "DELETE FROM audit_log WHERE seq > 8");
    sqlite3_close(db);
    /* The chain itself is intact: only the checkpoint shows the cut. */
    expect_verify_fails(f, k, 0, 9, 2, "the log ends at entry 8 but checkpoint 2 signed 10 entries (entries 9..10 "
                                       "were removed)");
    expect_verify_fails(f, k, 7, 9, 2, "the log ends at entry 8 but checkpoint 2 signed 10 entries");
    /* And checkpoint refuses to sign the cut log. */
    ct_audit_checkpoint_info cp;
    ct_error err;
    assert_int_equal(ct_audit_checkpoint(f->st, k, &cp, NULL, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "the audit log ends at entry 8 but checkpoint 2 signed 10 entries; not signing");
    ct_audit_key_free(k);
}

/* The attacker edits entry 3 and re-hashes 3..12 so that the chain holds. */
static void test_rehash_attack(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = fixture_key(f);
    signed_log(f, k);
    sqlite3 *db = raw_open(f->db);
    drop_triggers(db);
    raw_exec(db, "UPDATE audit_log SET patient = 'someone-else' WHERE seq = 3");
    unsigned char prev[32];
    ct_error err;
    for (int s = 3; s <= 12; s++) {
        ct_audit_record r;
        assert_int_equal(ct_store_audit_get(f->st, s, &r, &err), CT_OK);
        if (s > 3)
            memcpy(r.prev_hash, prev, 32);
        ct_audit_entry_hash(&r, r.hash);
        memcpy(prev, r.hash, 32);
        char sql[256], ph[65], hh[65];
        ct_audit_hex(r.prev_hash, 32, ph);
        ct_audit_hex(r.hash, 32, hh);
        snprintf(sql, sizeof sql, "UPDATE audit_log SET prev_hash = x'%s', hash = x'%s' WHERE seq = %d", ph, hh, s);
        raw_exec(db, sql);
    }
    sqlite3_close(db);
    expect_verify_fails(f, k, 0, 1, 1, "checkpoint 1 (signed 5 entries) does not match the log: its Merkle root "
                                       "differs, so an entry in 1..5 was changed, inserted or removed");
    /* --from 12 starts at checkpoint 2, whose head no longer matches. */
    expect_verify_fails(f, k, 12, 10, 2, "entry 10: its hash is not the head that checkpoint 2 signed");
    ct_audit_key_free(k);
}

static void test_rehash_after_last_good(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = fixture_key(f);
    signed_log(f, k);
    sqlite3 *db = raw_open(f->db);
    drop_triggers(db);
    raw_exec(db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 7");
    unsigned char prev[32];
    ct_error err;
    for (int s = 7; s <= 12; s++) {
        ct_audit_record r;
        assert_int_equal(ct_store_audit_get(f->st, s, &r, &err), CT_OK);
        if (s > 7)
            memcpy(r.prev_hash, prev, 32);
        ct_audit_entry_hash(&r, r.hash);
        memcpy(prev, r.hash, 32);
        char sql[256], ph[65], hh[65];
        ct_audit_hex(r.prev_hash, 32, ph);
        ct_audit_hex(r.hash, 32, hh);
        snprintf(sql, sizeof sql, "UPDATE audit_log SET prev_hash = x'%s', hash = x'%s' WHERE seq = %d", ph, hh, s);
        raw_exec(db, sql);
    }
    sqlite3_close(db);
    /* Checkpoint 1 still holds, so the range is 6..10. */
    expect_verify_fails(f, k, 0, 6, 2, "an entry in 6..10 was changed");
    ct_audit_key_free(k);
}

static void test_checkpoint_tampering(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = fixture_key(f);
    signed_log(f, k);
    sqlite3 *db = raw_open(f->db);
    drop_triggers(db);
    raw_exec(db, "UPDATE audit_checkpoint SET time_ms = time_ms + 1 WHERE id = 2");
    sqlite3_close(db);
    expect_verify_fails(f, k, 0, 0, 2, "checkpoint 2: the signature does not verify");
    db = raw_open(f->db);
    raw_exec(db, "UPDATE audit_checkpoint SET time_ms = time_ms - 1 WHERE id = 2");
    raw_exec(db, "DELETE FROM audit_checkpoint WHERE id = 1");
    sqlite3_close(db);
    expect_verify_fails(f, k, 0, 0, 1, "checkpoint 1 missing (the first checkpoint is 2)");
    ct_audit_key_free(k);
}

static void test_checkpoint_refuses_broken_chain(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = fixture_key(f);
    signed_log(f, k);
    sqlite3 *db = raw_open(f->db);
    drop_triggers(db);
    raw_exec(db, "UPDATE audit_log SET outcome = 8 WHERE seq = 11");
    sqlite3_close(db);
    ct_audit_checkpoint_info cp;
    int created = -1;
    ct_error err;
    assert_int_equal(ct_audit_checkpoint(f->st, k, &cp, &created, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "not signing: entry 11: hash mismatch");
    sqlite3 *db2 = raw_open(f->db);
    assert_int_equal(raw_int(db2, "SELECT count(*) FROM audit_checkpoint"), 2);
    /* A damaged frontier of the previous checkpoint is caught too. */
    raw_exec(db2, "UPDATE audit_log SET outcome = 0 WHERE seq = 11");
    raw_exec(db2, "UPDATE audit_checkpoint SET frontier = randomblob(64) WHERE id = 2");
    sqlite3_close(db2);
    assert_int_equal(ct_audit_checkpoint(f->st, k, &cp, &created, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "checkpoint 2: its stored Merkle frontier does not give its signed root");
    ct_audit_key_free(k);
}

static void test_verify_from(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = fixture_key(f);
    signed_log(f, k);
    ct_audit_report rep;
    ct_error err;
    /* From 12: starts after checkpoint 2 (10 entries), re-hashes 11..12. */
    assert_int_equal(ct_audit_verify(f->st, 12, k, &rep, &err), CT_OK);
    assert_int_equal(rep.started_at_checkpoint, 2);
    assert_int_equal(rep.first_checked, 11);
    assert_int_equal(rep.entries_checked, 2);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(rep.log_size, 12);
    /* From 6: after checkpoint 1; checkpoint 2 is checked in full. */
    assert_int_equal(ct_audit_verify(f->st, 6, k, &rep, &err), CT_OK);
    assert_int_equal(rep.started_at_checkpoint, 1);
    assert_int_equal(rep.first_checked, 6);
    assert_int_equal(rep.checkpoints, 2);
    /* From 5: no checkpoint below entry 5, so from the start. */
    assert_int_equal(ct_audit_verify(f->st, 5, k, &rep, &err), CT_OK);
    assert_int_equal(rep.started_at_checkpoint, 0);
    assert_int_equal(rep.first_checked, 1);

    /* An edit in entry 3 is outside what --from 12 re-hashes, not outside
     * what a full verify sees. */
    sqlite3 *db = raw_open(f->db);
    drop_triggers(db);
    raw_exec(db, "UPDATE audit_log SET client = '198.51.100.1' WHERE seq = 3");
    sqlite3_close(db);
    assert_int_equal(ct_audit_verify(f->st, 12, k, &rep, &err), CT_OK);
    expect_verify_fails(f, k, 0, 3, 0, "entry 3: hash mismatch");
    expect_verify_fails(f, k, 4, 3, 0, "entry 3: hash mismatch");
    /* The frontier --from resumes from must fold to the signed root. */
    db = raw_open(f->db);
    raw_exec(db, "UPDATE audit_checkpoint SET frontier = substr(frontier, 33) WHERE id = 2");
    sqlite3_close(db);
    expect_verify_fails(f, k, 12, 0, 2, "checkpoint 2: its stored Merkle frontier (1 hashes) does not fit its size 10");
    ct_audit_key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_key_files, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_rfc8032_key),
        cmocka_unit_test(test_message_and_signature),
        cmocka_unit_test_setup_teardown(test_checkpoints_incremental, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_cut_tail, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rehash_attack, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_rehash_after_last_good, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_tampering, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_checkpoint_refuses_broken_chain, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_verify_from, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
