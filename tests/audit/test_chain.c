/* Tests of the audit log's hash chain: the canonical bytes against vectors
 * computed without this code, appending (inside and outside a caller's
 * transaction, and every refused field), the triggers that make the
 * database refuse edits, and verification naming the first bad entry after
 * each kind of tampering done with a plain sqlite3 connection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/audit/audit_impl.h"
#include "audit_test_util.h"

static void hex_of(const unsigned char *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", b[i]);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

/* The entry of docs/audit.md's worked example. */
static void vector_record(ct_audit_record *r)
{
    memset(r, 0, sizeof *r);
    r->seq = 1;
    r->time_ms = INT64_C(1714564800000);
    strcpy(r->actor, "alice");
    strcpy(r->actor_role, "clinician");
    strcpy(r->client, "192.0.2.7");
    strcpy(r->action, "read");
    strcpy(r->resource_type, "Observation");
    strcpy(r->resource_id, "ecg-1");
    r->resource_version = 2;
    strcpy(r->patient, "mitdb-100");
    strcpy(r->request_id, "req-1");
}

/* The expected bytes and hashes were made without this code, with:
 *
 *   canon() {
 *     printf 'CTAUDIT1'
 *     printf '\x00\x00\x00\x00\x00\x00\x00\x01'   # seq 1
 *     printf '\x00\x00\x01\x8f\x34\x06\x9e\x00'   # time_ms 1714564800000
 *     printf '\x00\x00\x00\x05alice'               # actor
 *     printf '\x00\x00\x00\x09clinician'           # role
 *     printf '\x00\x00\x00\x09192.0.2.7'           # client
 *     printf '\x00\x00\x00\x04read'                # action
 *     printf '\x00\x00\x00\x0bObservation'         # resource type
 *     printf '\x00\x00\x00\x05ecg-1'               # resource id
 *     printf '\x00\x00\x00\x00\x00\x00\x00\x02'   # resource version 2
 *     printf '\x00\x00\x00\x09mitdb-100'           # patient
 *     printf '\x00\x00\x00\x00\x00\x00\x00\x00'   # outcome 0
 *     printf '\x00\x00\x00\x00'                    # outcome description ""
 *     printf '\x00\x00\x00\x05req-1'               # request id
 *     printf '\x00\x00\x00\x00'                    # no detail
 *   }
 *   { head -c 32 /dev/zero; canon; } | openssl dgst -sha256   # chain hash
 *   { printf '\x00'; canon; } | openssl dgst -sha256          # Merkle leaf
 */
static void test_canonical_vector(void **state)
{
    (void)state;
    ct_audit_record r;
    vector_record(&r);
    unsigned char buf[CT_AUDIT_CANONICAL_MAX];
    size_t n = ct_audit_canonical(&r, buf, sizeof buf);
    assert_int_equal(n, 137);
    char hex[2 * 137 + 1];
    hex_of(buf, n, hex);
    assert_string_equal(hex, "435441554449543100000000000000010000018f34069e0000000005616c69636500000009636c696e"
                             "696369616e000000093139322e302e322e3700000004726561640000000b4f6273657276617469"
                             "6f6e000000056563672d310000000000000002000000096d697464622d31303000000000000000"
                             "0000000000000000057265712d3100000000");
    unsigned char h[32];
    char hh[65];
    ct_audit_entry_hash(&r, h);
    hex_of(h, 32, hh);
    assert_string_equal(hh, "46107ce214a916066738a011c9cc04a32ea0fe4ea4a806311e38900b1247f701");
    ct_audit_leaf_hash(&r, h);
    hex_of(h, 32, hh);
    assert_string_equal(hh, "2ca662c905fdaee843aebf6c2fbf74cbc9a8f4e6868c51e6f31699230ecc8dd0");

    /* The canonical bytes give the entry back, exactly. */
    ct_audit_record back;
    ct_error err;
    assert_int_equal(ct_audit_canonical_parse(buf, n, &back, &err), CT_OK);
    memcpy(back.prev_hash, r.prev_hash, 32);
    memcpy(back.hash, r.hash, 32);
    assert_memory_equal(&back, &r, sizeof r);
    /* One byte more or less is not an entry. */
    assert_int_equal(ct_audit_canonical_parse(buf, n - 1, &back, &err), CT_EFORMAT);
    buf[n] = 0;
    assert_int_equal(ct_audit_canonical_parse(buf, n + 1, &back, &err), CT_EFORMAT);
    assert_contains(err.msg, "past the entry");
}

/* Entry 2 of the example: UTF-8, a detail, a failure, and entry 1's hash
 * before it. Made the same way:
 *   canon2() { printf 'CTAUDIT1'; printf '\x00\x00\x00\x00\x00\x00\x00\x02';
 *     printf '\x00\x00\x01\x8f\x34\x06\x9e\x01'; printf '\x00\x00\x00\x04Zo\xc3\xab';
 *     printf '\x00\x00\x00\x05admin'; printf '\x00\x00\x00\x00';
 *     printf '\x00\x00\x00\x0ctoken-create'; printf '\x00\x00\x00\x00'; printf '\x00\x00\x00\x00';
 *     printf '\x00\x00\x00\x00\x00\x00\x00\x00'; printf '\x00\x00\x00\x00';
 *     printf '\x00\x00\x00\x00\x00\x00\x00\x08'; printf '\x00\x00\x00\x06denied';
 *     printf '\x00\x00\x00\x00'; printf '\x00\x00\x00\x07{"a":1}'; }
 *   { printf '46107ce2...47f701' | xxd -r -p; canon2; } | openssl dgst -sha256
 *   { printf '\x01'; <leaf 1>; { printf '\x00'; canon2; } | openssl dgst -sha256 -binary; } | openssl dgst -sha256
 */
static void test_canonical_vector_2(void **state)
{
    (void)state;
    ct_audit_record r1, r;
    vector_record(&r1);
    memset(&r, 0, sizeof r);
    r.seq = 2;
    r.time_ms = INT64_C(1714564800001);
    strcpy(r.actor, "Zo\xc3\xab");
    strcpy(r.actor_role, "admin");
    strcpy(r.action, "token-create");
    r.outcome = 8;
    strcpy(r.outcome_desc, "denied");
    r.has_detail = 1;
    strcpy(r.detail, "{\"a\":1}");
    ct_audit_entry_hash(&r1, r.prev_hash);
    unsigned char h[32];
    char hh[65];
    ct_audit_entry_hash(&r, h);
    hex_of(h, 32, hh);
    assert_string_equal(hh, "1efae36957f16b0e21cf0df3cc066f84a483da9763bd8a52085411df78ffa7ac");
    ct_audit_leaf_hash(&r, h);
    hex_of(h, 32, hh);
    assert_string_equal(hh, "f61614c232802eef0e52d02841972376cf65bd6f15592cd4d015c8a4aebce719");
    ct_audit_merkle m;
    ct_audit_merkle_init(&m);
    unsigned char leaf[32];
    ct_audit_leaf_hash(&r1, leaf);
    ct_audit_merkle_add_leaf_hash(&m, leaf);
    ct_audit_leaf_hash(&r, leaf);
    ct_audit_merkle_add_leaf_hash(&m, leaf);
    ct_audit_merkle_root(&m, h);
    hex_of(h, 32, hh);
    assert_string_equal(hh, "4bc8928caebbd0ad593f714c63daf03591ef7df4d2063a412d770676a3792299");
}

/* The log stores the example entries with the same hashes. */
static void test_append_matches_vectors(void **state)
{
    fixture *f = *state;
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.time_ms = INT64_C(1714564800000);
    e.actor = (ct_audit_actor){"alice", "clinician", "192.0.2.7"};
    e.action = "read";
    e.resource_type = "Observation";
    e.resource_id = "ecg-1";
    e.resource_version = 2;
    e.patient = "mitdb-100";
    e.request_id = "req-1";
    ct_audit_record out;
    ct_error err;
    assert_int_equal(ct_audit_append(f->st, &e, &out, &err), CT_OK);
    char hh[65];
    hex_of(out.hash, 32, hh);
    assert_int_equal(out.seq, 1);
    assert_string_equal(hh, "46107ce214a916066738a011c9cc04a32ea0fe4ea4a806311e38900b1247f701");

    memset(&e, 0, sizeof e);
    e.time_ms = INT64_C(1714564800001);
    e.actor = (ct_audit_actor){"Zo\xc3\xab", "admin", NULL};
    e.action = "token-create";
    e.outcome = CT_AUDIT_OUTCOME_SERIOUS_FAILURE;
    e.outcome_desc = "denied";
    e.detail = "{\"a\":1}";
    assert_int_equal(ct_audit_append(f->st, &e, &out, &err), CT_OK);
    hex_of(out.hash, 32, hh);
    assert_int_equal(out.seq, 2);
    assert_string_equal(hh, "1efae36957f16b0e21cf0df3cc066f84a483da9763bd8a52085411df78ffa7ac");

    ct_audit_record got;
    assert_int_equal(ct_store_audit_get(f->st, 2, &got, &err), CT_OK);
    assert_memory_equal(&got, &out, sizeof got);
    ct_audit_report rep;
    assert_int_equal(ct_audit_verify(f->st, 0, NULL, &rep, &err), CT_OK);
    assert_true(rep.ok);
    assert_int_equal(rep.log_size, 2);
}

static void test_append_and_verify(void **state)
{
    fixture *f = *state;
    ct_audit_report rep;
    ct_error err;
    assert_int_equal(ct_audit_verify(f->st, 0, NULL, &rep, &err), CT_OK);
    assert_int_equal(rep.log_size, 0);
    append_many(f->st, 1, 200);
    assert_int_equal(ct_audit_verify(f->st, 0, NULL, &rep, &err), CT_OK);
    assert_true(rep.ok);
    assert_int_equal(rep.log_size, 200);
    assert_int_equal(rep.entries_checked, 200);
    assert_int_equal(rep.first_checked, 1);
    assert_int_equal(rep.checkpoints, 0);
    assert_int_equal(rep.time_warnings, 0);
    /* Entries link: each prev_hash is its predecessor's hash. */
    ct_audit_record a, b;
    assert_int_equal(ct_store_audit_get(f->st, 57, &a, &err), CT_OK);
    assert_int_equal(ct_store_audit_get(f->st, 58, &b, &err), CT_OK);
    assert_memory_equal(a.hash, b.prev_hash, 32);
    assert_int_equal(ct_store_audit_get(f->st, 201, &a, &err), CT_ENOTFOUND);
}

static void test_append_in_caller_transaction(void **state)
{
    fixture *f = *state;
    ct_error err;
    int64_t v = 0;
    sqlite3 *db = raw_open(f->db);
    /* Rolled back: neither the change nor its entry. */
    assert_int_equal(ct_store_begin(f->st, &err), CT_OK);
    assert_int_equal(ct_store_resource_put(f->st, "Observation", "o1", "{}", 2, &v, &err), CT_OK);
    assert_int_equal(append_n(f->st, 1), CT_OK);
    ct_store_rollback(f->st);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log"), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM resource_version"), 0);
    /* Committed: both, and nothing visible to others before the commit. */
    assert_int_equal(ct_store_begin(f->st, &err), CT_OK);
    assert_int_equal(ct_store_resource_put(f->st, "Observation", "o1", "{}", 2, &v, &err), CT_OK);
    assert_int_equal(append_n(f->st, 1), CT_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log"), 0);
    assert_int_equal(ct_store_commit(f->st, &err), CT_OK);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM resource_version"), 1);
    /* A refused entry leaves the caller's transaction usable. */
    assert_int_equal(ct_store_begin(f->st, &err), CT_OK);
    ct_audit_entry bad;
    memset(&bad, 0, sizeof bad);
    bad.actor = (ct_audit_actor){"x", "clinician", ""};
    bad.action = "frobnicate";
    assert_int_equal(ct_audit_append(f->st, &bad, NULL, &err), CT_EINVAL);
    assert_int_equal(append_n(f->st, 2), CT_OK);
    assert_int_equal(ct_store_commit(f->st, &err), CT_OK);
    assert_int_equal(raw_int(db, "SELECT max(seq) FROM audit_log"), 2);
    sqlite3_close(db);
}

static void test_append_refuses_bad_fields(void **state)
{
    fixture *f = *state;
    static char long_actor[200], long_detail[CT_AUDIT_DETAIL_MAX + 10];
    memset(long_actor, 'a', sizeof long_actor - 1);
    long_detail[0] = '{';
    memset(long_detail + 1, ' ', sizeof long_detail - 3);
    long_detail[sizeof long_detail - 2] = '}';
    static const struct {
        const char *field, *value, *want;
    } cases[] = {
        {"action", "frobnicate", "unknown action 'frobnicate'"},
        {"action", "", "action is empty"},
        {"actor", "", "actor is empty"},
        {"actor", long_actor, "actor is longer than 127 bytes"},
        {"role", NULL, "actor role is empty"},
        {"patient", "bad\xff", "patient is not UTF-8"},
        {"patient", "over\xc0\xaflong", "patient is not UTF-8"},
        {"patient", "surrogate\xed\xa0\x80", "patient is not UTF-8"},
        {"resource_id", "two\nlines", "resource id holds a control character"},
        {"detail", "[1,2]", "detail is JSON but not an object"},
        {"detail", "{\"a\":", "detail is not JSON"},
        {"detail", "{\"a\":1,\"a\":2}", "detail is not JSON"},
        {"detail", long_detail, "detail is longer than"},
        {"outcome", "3", "outcome 3 is not 0, 4, 8 or 12"},
        {"version", "-1", "resource version -1 is negative"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_audit_entry e;
        memset(&e, 0, sizeof e);
        e.actor = (ct_audit_actor){"alice", "clinician", "192.0.2.7"};
        e.action = "read";
        const char *fld = cases[i].field;
        if (!strcmp(fld, "action"))
            e.action = cases[i].value;
        else if (!strcmp(fld, "actor"))
            e.actor.name = cases[i].value;
        else if (!strcmp(fld, "role"))
            e.actor.role = cases[i].value;
        else if (!strcmp(fld, "patient"))
            e.patient = cases[i].value;
        else if (!strcmp(fld, "resource_id"))
            e.resource_id = cases[i].value;
        else if (!strcmp(fld, "detail"))
            e.detail = cases[i].value;
        else if (!strcmp(fld, "outcome"))
            e.outcome = atoi(cases[i].value);
        else if (!strcmp(fld, "version"))
            e.resource_version = atoi(cases[i].value);
        ct_error err;
        ct_error_clear(&err);
        int rc = ct_audit_append(f->st, &e, NULL, &err);
        if (rc != CT_EINVAL)
            fail_msg("case %zu (%s): rc %d, %s", i, fld, rc, err.msg);
        assert_contains(err.msg, cases[i].want);
    }
    ct_error err;
    int64_t seq = -1;
    unsigned char h[32];
    assert_int_equal(ct_store_audit_last(f->st, &seq, h, &err), CT_OK);
    assert_int_equal(seq, 0);
    assert_int_equal(ct_audit_append(NULL, NULL, NULL, &err), CT_EINVAL);
}

static void test_triggers_refuse_edits(void **state)
{
    fixture *f = *state;
    append_many(f->st, 1, 5);
    sqlite3 *db = raw_open(f->db);
    char msg[512];
    assert_int_equal(raw_exec_msg(db, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3", msg, sizeof msg),
                     SQLITE_CONSTRAINT);
    assert_contains(msg, "append-only: an entry cannot be changed");
    assert_int_equal(raw_exec_msg(db, "DELETE FROM audit_log WHERE seq = 5", msg, sizeof msg), SQLITE_CONSTRAINT);
    assert_contains(msg, "append-only: an entry cannot be deleted");
    /* INSERT OR REPLACE would delete the row it replaces. */
    assert_int_equal(raw_exec_msg(db, "INSERT OR REPLACE INTO audit_log SELECT * FROM audit_log WHERE seq = 2",
                                  msg, sizeof msg), SQLITE_CONSTRAINT);
    /* A gap, or a prev_hash that is not the last entry's hash. */
    assert_int_equal(raw_exec_msg(db, "INSERT INTO audit_log SELECT seq + 2, time_ms, actor, actor_role, client,"
                                      " action, resource_type, resource_id, resource_version, patient, outcome,"
                                      " outcome_desc, request_id, detail, hash, hash FROM audit_log WHERE seq = 5",
                                  msg, sizeof msg), SQLITE_CONSTRAINT);
    assert_contains(msg, "must follow the last one");
    assert_int_equal(raw_exec_msg(db, "INSERT INTO audit_log SELECT seq + 1, time_ms, actor, actor_role, client,"
                                      " action, resource_type, resource_id, resource_version, patient, outcome,"
                                      " outcome_desc, request_id, detail, prev_hash, hash FROM audit_log WHERE seq = 5",
                                  msg, sizeof msg), SQLITE_CONSTRAINT);
    /* The right predecessor is accepted by the database (the hash is the
     * verifier's business, not the trigger's). */
    assert_int_equal(raw_exec_msg(db, "INSERT INTO audit_log SELECT seq + 1, time_ms, actor, actor_role, client,"
                                      " action, resource_type, resource_id, resource_version, patient, outcome,"
                                      " outcome_desc, request_id, detail, hash, hash FROM audit_log WHERE seq = 5",
                                  msg, sizeof msg), SQLITE_OK);
    /* Checkpoints are append-only too. */
    raw_exec(db, "INSERT INTO audit_checkpoint VALUES (1, 3, (SELECT hash FROM audit_log WHERE seq = 3),"
                 " zeroblob(32), 0, '" "0000000000000000000000000000000000000000000000000000000000000000"
                 "', zeroblob(64), x'')");
    assert_int_equal(raw_exec_msg(db, "UPDATE audit_checkpoint SET size = 4", msg, sizeof msg), SQLITE_CONSTRAINT);
    assert_contains(msg, "a checkpoint cannot be changed");
    assert_int_equal(raw_exec_msg(db, "DELETE FROM audit_checkpoint", msg, sizeof msg), SQLITE_CONSTRAINT);
    assert_contains(msg, "a checkpoint cannot be deleted");
    /* A checkpoint must name an existing head with its real hash. */
    assert_int_equal(raw_exec_msg(db, "INSERT INTO audit_checkpoint VALUES (2, 4, zeroblob(32), zeroblob(32), 0,"
                                      " '0000000000000000000000000000000000000000000000000000000000000000',"
                                      " zeroblob(64), x'')", msg, sizeof msg), SQLITE_CONSTRAINT);
    assert_contains(msg, "must follow the last one and sign an existing head");
    assert_int_equal(raw_int(db, "SELECT count(*) FROM audit_log"), 6);
    sqlite3_close(db);
}

/* Builds a log of 10 entries, tampers with it as the sql says (triggers
 * dropped first), and expects verify to name bad_seq with want. */
static void expect_tamper(fixture *f, const char *sql, int64_t bad_seq, const char *want)
{
    append_many(f->st, 1, 10);
    sqlite3 *db = raw_open(f->db);
    drop_triggers(db);
    raw_exec(db, sql);
    sqlite3_close(db);
    ct_audit_report rep;
    ct_error err;
    ct_error_clear(&err);
    int rc = ct_audit_verify(f->st, 0, NULL, &rep, &err);
    if (rc != CT_ECHECKSUM)
        fail_msg("%s: verify returned %d (%s)", sql, rc, err.msg);
    assert_false(rep.ok);
    assert_int_equal(rep.bad_seq, bad_seq);
    assert_contains(err.msg, want);
    assert_string_equal(err.msg, rep.problem);
}

static void test_tamper_field(void **state)
{
    expect_tamper(*state, "UPDATE audit_log SET patient = 'mitdb-999' WHERE seq = 5", 5,
                  "entry 5: hash mismatch: the entry is not what was hashed (a field was changed)");
}

static void test_tamper_time(void **state)
{
    expect_tamper(*state, "UPDATE audit_log SET time_ms = time_ms + 1 WHERE seq = 7", 7, "entry 7: hash mismatch");
}

static void test_tamper_delete(void **state)
{
    expect_tamper(*state, "DELETE FROM audit_log WHERE seq = 5", 5,
                  "entry 5 missing (the chain jumps from entry 4 to 6)");
}

static void test_tamper_delete_range(void **state)
{
    expect_tamper(*state, "DELETE FROM audit_log WHERE seq BETWEEN 4 AND 6", 4,
                  "entries 4..6 missing (the chain jumps from entry 3 to 7)");
}

static void test_tamper_delete_first(void **state)
{
    expect_tamper(*state, "DELETE FROM audit_log WHERE seq = 1", 1, "entry 1 missing (the log starts at entry 2)");
}

/* Renumbered after a delete, so that seq has no gap. */
static void test_tamper_delete_renumber(void **state)
{
    expect_tamper(*state, "DELETE FROM audit_log WHERE seq = 5; UPDATE audit_log SET seq = seq - 1 WHERE seq > 5", 5,
                  "entry 5: prev_hash is not entry 4's hash (an entry was removed, inserted or moved here)");
}

static void test_tamper_swap(void **state)
{
    expect_tamper(*state,
                  "UPDATE audit_log SET seq = 1000 WHERE seq = 6; UPDATE audit_log SET seq = 6 WHERE seq = 5;"
                  " UPDATE audit_log SET seq = 5 WHERE seq = 1000",
                  5, "entry 5: prev_hash is not entry 4's hash");
}

static void test_tamper_insert(void **state)
{
    expect_tamper(*state,
                  "UPDATE audit_log SET seq = seq + 100 WHERE seq > 3; UPDATE audit_log SET seq = seq - 99 WHERE seq > 100;"
                  " INSERT INTO audit_log SELECT 4, time_ms, 'mallory', actor_role, client, action, resource_type,"
                  " resource_id, resource_version, patient, outcome, outcome_desc, request_id, detail, hash, hash"
                  " FROM audit_log WHERE seq = 3",
                  4, "entry 4: hash mismatch");
}

static void test_tamper_append_forged(void **state)
{
    expect_tamper(*state,
                  "INSERT INTO audit_log SELECT 11, time_ms, actor, actor_role, client, action, resource_type,"
                  " resource_id, resource_version, patient, outcome, outcome_desc, request_id, detail, hash,"
                  " zeroblob(32) FROM audit_log WHERE seq = 10",
                  11, "entry 11: hash mismatch");
}

static void test_tamper_first_prev(void **state)
{
    expect_tamper(*state, "UPDATE audit_log SET prev_hash = randomblob(32) WHERE seq = 1", 1,
                  "entry 1: prev_hash is not 32 zero bytes");
}

static void test_tamper_malformed_row(void **state)
{
    /* Longer than any entry cardiotwin writes: named, never truncated. */
    expect_tamper(*state, "UPDATE audit_log SET actor = hex(zeroblob(150)) WHERE seq = 6", 6,
                  "entry 6: actor is 300 bytes, more than the 127 an entry may hold");
}

static void test_tamper_unknown_action(void **state)
{
    /* An entry cardiotwin could not have written is named as such, before
     * its hash is even looked at. */
    expect_tamper(*state, "UPDATE audit_log SET action = 'Nope!' WHERE seq = 3", 3,
                  "entry 3: audit entry: action 'Nope!' is not a word");
}

static void test_time_going_back_is_a_warning(void **state)
{
    fixture *f = *state;
    append_many(f->st, 1, 5);
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor = (ct_audit_actor){"alice", "clinician", "192.0.2.7"};
    e.action = "read";
    e.time_ms = INT64_C(1714564800000) + 5000 - 3500; /* 3.5 s before entry 5 */
    ct_error err;
    assert_int_equal(ct_audit_append(f->st, &e, NULL, &err), CT_OK);
    e.time_ms = INT64_C(1714564800000) + 5000 - 500; /* within the tolerance */
    assert_int_equal(ct_audit_append(f->st, &e, NULL, &err), CT_OK);
    ct_audit_report rep;
    assert_int_equal(ct_audit_verify(f->st, 0, NULL, &rep, &err), CT_OK);
    assert_int_equal(rep.time_warnings, 1);
    assert_int_equal(rep.first_time_warning_seq, 6);
    assert_int_equal(rep.first_time_warning_back_ms, 3500);
}

static void test_now_is_used(void **state)
{
    fixture *f = *state;
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor = (ct_audit_actor){"alice", "clinician", NULL};
    e.action = "login";
    int64_t before = ct_audit_now_ms();
    ct_audit_record out;
    ct_error err;
    assert_int_equal(ct_audit_append(f->st, &e, &out, &err), CT_OK);
    assert_true(out.time_ms >= before && out.time_ms <= ct_audit_now_ms());
    assert_string_equal(out.client, "");
    assert_false(out.has_detail);
}

static void test_detail_builder(void **state)
{
    (void)state;
    ct_audit_detail *d = malloc(sizeof *d);
    assert_non_null(d);
    ct_audit_detail_init(d);
    assert_string_equal(ct_audit_detail_json(d), "{}");
    ct_audit_detail_str(d, "q", "a \"quoted\" \\ back\nslash\x01");
    ct_audit_detail_int(d, "n", -42);
    assert_string_equal(ct_audit_detail_json(d), "{\"q\":\"a \\\"quoted\\\" \\\\ back\\u000aslash\\u0001\",\"n\":-42}");
    json_error_t jerr;
    json_t *j = json_loads(ct_audit_detail_json(d), 0, &jerr);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "q")), "a \"quoted\" \\ back\nslash\x01");
    json_decref(j);
    static char big[CT_AUDIT_DETAIL_MAX];
    memset(big, 'x', sizeof big - 1);
    ct_audit_detail_str(d, "big", big);
    assert_null(ct_audit_detail_json(d));
    free(d);
}

static void test_parse_time(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long long ms;
    } ok[] = {
        {"2024-05-01", 1714521600000LL},
        {"2024-05-01T12:00Z", 1714564800000LL},
        {"2024-05-01T12:00:00Z", 1714564800000LL},
        {"2024-05-01T12:00:00.5Z", 1714564800500LL},
        {"2024-05-01T12:00:00.123456Z", 1714564800123LL},
        {"2024-05-01T14:00:00+02:00", 1714564800000LL},
        {"2024-05-01T07:30:00-04:30", 1714564800000LL},
        {"2024-02-29", 1709164800000LL},
        {"1714564800000", 1714564800000LL},
        {"0", 0},
    };
    ct_error err;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t t = -1;
        if (ct_audit_parse_time(ok[i].text, &t, &err) != CT_OK)
            fail_msg("%s: %s", ok[i].text, err.msg);
        assert_int_equal(t, ok[i].ms);
    }
    static const char *const bad[] = {"", "2024-05-01T12:00:00", "2023-02-29", "2024-13-01", "2024-05-01T24:00Z",
                                      "2024-05-01T12:00:60Z", "2024-05-01 12:00Z", "1969-12-31", "2024-05-01Tx",
                                      "2024-05-01T12:00:00.Z", "9999999999999999", "2024-05-01T12:00+15:00",
                                      "-5", "2024-5-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t t = 0;
        if (ct_audit_parse_time(bad[i], &t, &err) != CT_EINVAL)
            fail_msg("'%s' was accepted as %lld", bad[i], (long long)t);
    }
    assert_int_equal(ct_audit_parse_time("2024-05-01T12:00:00", &(int64_t){0}, &err), CT_EINVAL);
    assert_contains(err.msg, "has no zone");
    char buf[32];
    ct_audit_format_time(1714564800123LL, buf, sizeof buf);
    assert_string_equal(buf, "2024-05-01T12:00:00.123Z");
    ct_audit_format_time(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
}

static void test_actions(void **state)
{
    (void)state;
    static const char *const known[] = {"create", "read", "vread", "update", "patch", "delete", "search", "history",
                                        "export", "import", "login", "logout", "token-create", "token-revoke",
                                        "user-create", "user-update", "user-delete", "alert", "acknowledge",
                                        "policy-change"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        assert_true(ct_audit_action_known(known[i]));
    assert_false(ct_audit_action_known("READ"));
    assert_false(ct_audit_action_known(""));
    assert_false(ct_audit_action_known(NULL));
    char buf[CT_AUDIT_ACTOR_MAX + 1];
    ct_audit_actor a;
    ct_audit_actor_local(&a, buf, sizeof buf);
    assert_true(strlen(a.name) > 0);
    assert_string_equal(a.role, "operator");
    assert_string_equal(a.client, "cli");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_vector),
        cmocka_unit_test(test_canonical_vector_2),
        cmocka_unit_test_setup_teardown(test_append_matches_vectors, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_append_and_verify, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_append_in_caller_transaction, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_append_refuses_bad_fields, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_triggers_refuse_edits, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_field, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_time, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_range, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_first, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_delete_renumber, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_swap, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_insert, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_append_forged, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_first_prev, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_malformed_row, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_tamper_unknown_action, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_time_going_back_is_a_warning, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_now_is_used, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_detail_builder),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_actions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
