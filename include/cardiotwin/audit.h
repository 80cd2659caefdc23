/* audit: cardiotwin's tamper-evident audit log. Every action on patient data
 * appends one entry, in the same transaction as the change it records. The
 * entries form a hash chain (each stores SHA-256(previous hash || its own
 * canonical bytes)) and the leaves of an RFC 6962 Merkle tree, whose head is
 * signed from time to time with an Ed25519 key kept outside the database
 * (a checkpoint). ct_audit_verify recomputes both and names the first entry
 * that disagrees; exports (NDJSON, or a FHIR R4 Bundle of AuditEvent
 * following IHE BALP) carry what is needed to verify them offline.
 *
 * docs/audit.md defines the canonical bytes, the Merkle tree, the signed
 * checkpoint message and the export formats byte by byte, so that an auditor
 * can verify without this code. */
#ifndef CARDIOTWIN_AUDIT_H
#define CARDIOTWIN_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "cardiotwin/error.h"
#include "cardiotwin/store.h"

/* ---- entries ---------------------------------------------------------------- */

/* AuditEvent.outcome (FHIR R4, from DICOM). */
enum {
    CT_AUDIT_OUTCOME_SUCCESS = 0,
    CT_AUDIT_OUTCOME_MINOR_FAILURE = 4,   /* the request failed, e.g. refused input */
    CT_AUDIT_OUTCOME_SERIOUS_FAILURE = 8, /* e.g. access denied */
    CT_AUDIT_OUTCOME_MAJOR_FAILURE = 12,  /* e.g. the service failed */
};

/* Largest texts an entry holds, in bytes of UTF-8 (store.h's buffers - 1). */
#define CT_AUDIT_ACTOR_MAX 127
#define CT_AUDIT_ROLE_MAX 31
#define CT_AUDIT_CLIENT_MAX 63
#define CT_AUDIT_ACTION_MAX 31
#define CT_AUDIT_RESOURCE_TYPE_MAX 63
#define CT_AUDIT_RESOURCE_ID_MAX 127
#define CT_AUDIT_PATIENT_MAX 127
#define CT_AUDIT_OUTCOME_DESC_MAX 255
#define CT_AUDIT_REQUEST_ID_MAX 127
#define CT_AUDIT_DETAIL_MAX CT_STORE_AUDIT_DETAIL_MAX

/* Who did it. */
typedef struct ct_audit_actor {
    const char *name;    /* token name, user name, or the OS user of the CLI; required */
    const char *role;    /* "clinician", "device", "auditor", "admin", "operator", "system"; required */
    const char *client;  /* network address of the client, "cli", or "" */
} ct_audit_actor;

/* What one caller tells the log. NULL texts count as "". Actions are the
 * fixed list of ct_audit_action_known(): create read vread update patch
 * delete search history export import login logout token-create
 * token-revoke user-create user-update user-delete alert acknowledge
 * policy-change audit-read. */
typedef struct ct_audit_entry {
    int64_t time_ms;             /* UTC ms; 0: now */
    ct_audit_actor actor;
    const char *action;
    const char *resource_type;   /* FHIR resource type ("Observation") or "" */
    const char *resource_id;     /* "" when none (a search) */
    int64_t resource_version;    /* 0 when none */
    const char *patient;         /* patient identifier ("mitdb-100") or "" */
    int outcome;                 /* CT_AUDIT_OUTCOME_* */
    const char *outcome_desc;    /* "" on success; why it failed otherwise */
    const char *request_id;      /* X-Request-Id, or "" */
    const char *detail;          /* NULL, or a JSON object of at most CT_AUDIT_DETAIL_MAX bytes */
} ct_audit_entry;

/* An entry as the log holds it, with its position and hashes. */
typedef ct_store_audit_row ct_audit_record;

/* Appends one entry. Inside the caller's transaction (ct_store_begin) it
 * becomes part of it: the change and its entry commit together or not at
 * all. Without one it runs in a transaction of its own. Fields are checked
 * first (CT_EINVAL naming the field: unknown action, too long, not UTF-8, a
 * control character, a detail that is not a JSON object); out (may be NULL)
 * gets the entry as stored. Cost: one index probe, one insert and two
 * SHA-256 of under 10 KiB. */
int ct_audit_append(ct_store *st, const ct_audit_entry *e, ct_audit_record *out, ct_error *err);

/* 1 when action is one of the actions above. */
int ct_audit_action_known(const char *action);
/* The i-th known action (0, 1, ...), NULL past the last: for searches that
 * name actions by their FHIR codes. */
const char *ct_audit_action_at(size_t i);
/* Its AuditEvent.action: 'C', 'R', 'U', 'D' or 'E' ('E' when unknown). */
char ct_audit_action_crude(const char *action);
/* The subtype coding (besides the cardiotwin action code) that
 * ct_audit_record_to_fhir gives an entry of this action, holding a resource
 * type (has_type) and id (has_id): a restful-interaction code ("read",
 * "search-type", "history-instance") or a DICOM one ("110122" Login).
 * 1 with *system and *code set; 0 when the action has none. */
int ct_audit_action_subtype(const char *action, int has_type, int has_id, const char **system, const char **code);

/* The local user running this process (getpwuid of the effective uid, else
 * "uid N"), as an actor with role "operator" and client "cli"; name points
 * into buf. */
void ct_audit_actor_local(ct_audit_actor *out, char *buf, size_t cap);

/* Canonical bytes of an entry (docs/audit.md, "Canonical form"): what the
 * hashes cover. Returns the length (at most CT_AUDIT_CANONICAL_MAX), written
 * to out when cap allows. */
#define CT_AUDIT_CANONICAL_MAX 10240
size_t ct_audit_canonical(const ct_audit_record *r, unsigned char *out, size_t cap);
/* The entry's chain hash SHA-256(prev_hash || canonical) and its Merkle leaf
 * hash SHA-256(0x00 || canonical). */
void ct_audit_entry_hash(const ct_audit_record *r, unsigned char hash[32]);
void ct_audit_leaf_hash(const ct_audit_record *r, unsigned char leaf[32]);

/* A detail object built a field at a time, escaped as JSON. Texts must be
 * UTF-8; a detail that would not fit marks itself overflowed and
 * ct_audit_detail_json returns NULL. */
typedef struct ct_audit_detail {
    char json[CT_AUDIT_DETAIL_MAX + 1];
    size_t len;
    int overflow;
} ct_audit_detail;
void ct_audit_detail_init(ct_audit_detail *d);
void ct_audit_detail_str(ct_audit_detail *d, const char *key, const char *value);
void ct_audit_detail_int(ct_audit_detail *d, const char *key, int64_t value);
const char *ct_audit_detail_json(ct_audit_detail *d);

/* ---- the Merkle tree (RFC 6962, section 2.1) ------------------------------------- */

/* The right edge of a tree of `size` leaves: the roots of its perfect
 * subtrees, largest (leftmost) first, one per bit set in size. Appending a
 * leaf costs amortised one hash; the root of any size is at most 63 more.
 * Memory is fixed (2 KiB) whatever the size: the log is never loaded. */
typedef struct ct_audit_merkle {
    uint64_t size;
    int n;
    unsigned char node[64][32];
} ct_audit_merkle;

void ct_audit_merkle_init(ct_audit_merkle *m);
/* Adds one leaf given its data (hashed as SHA-256(0x00 || data)). */
void ct_audit_merkle_add(ct_audit_merkle *m, const void *data, size_t len);
/* Adds one leaf given its leaf hash. */
void ct_audit_merkle_add_leaf_hash(ct_audit_merkle *m, const unsigned char leaf[32]);
/* Adds a perfect subtree of 2^log2_size leaves given its root; the tree's
 * size must be a multiple of 2^log2_size (CT_EINVAL otherwise). */
int ct_audit_merkle_add_subtree(ct_audit_merkle *m, int log2_size, const unsigned char root[32]);
/* MTH of the leaves added so far; SHA-256("") for none. */
void ct_audit_merkle_root(const ct_audit_merkle *m, unsigned char root[32]);
/* Restores a tree from a stored frontier (n hashes, n == popcount(size)). */
int ct_audit_merkle_restore(ct_audit_merkle *m, uint64_t size, const unsigned char (*node)[32], int n);

/* ---- keys and checkpoints ------------------------------------------------------------ */

#define CT_AUDIT_KEY_FILE "cardiotwin-audit-key.pem"
#define CT_AUDIT_PUB_FILE "cardiotwin-audit-pub.pem"

/* An Ed25519 key: a private key (signs and verifies) or a public one. */
typedef struct ct_audit_key ct_audit_key;

/* Loads DIR/cardiotwin-audit-key.pem; with create, makes a new key when
 * there is none (mode 0600, written whole or not at all, safe against a
 * second process doing the same) and writes its public half to
 * DIR/cardiotwin-audit-pub.pem (0644) for auditors. *created (may be NULL)
 * tells which. A private key file readable by group or others is refused. */
int ct_audit_key_open_dir(const char *dir, int create, ct_audit_key **out, int *created, ct_error *err);
/* Loads a PEM file holding an Ed25519 private key (PKCS#8) or public key
 * (SubjectPublicKeyInfo). */
int ct_audit_key_load(const char *path, ct_audit_key **out, ct_error *err);
/* A key from raw bytes (RFC 8032): 32 bytes of private seed, or of public key. */
int ct_audit_key_from_raw(const unsigned char raw[32], int is_private, ct_audit_key **out, ct_error *err);
void ct_audit_key_free(ct_audit_key *k);
int ct_audit_key_has_private(const ct_audit_key *k);
/* Hex SHA-256 of the raw 32-byte public key: names the key in checkpoints. */
const char *ct_audit_key_id(const ct_audit_key *k);

typedef ct_store_checkpoint_row ct_audit_checkpoint_info;

/* The exact bytes a checkpoint's signature covers (docs/audit.md):
 *   "cardiotwin audit checkpoint v1\ncheckpoint <id>\nsize <size>\n"
 *   "head <hex>\nroot <hex>\ntime_ms <ms>\n"
 * Returns the length; at most CT_AUDIT_CHECKPOINT_MSG_MAX. */
#define CT_AUDIT_CHECKPOINT_MSG_MAX 256
size_t ct_audit_checkpoint_message(const ct_audit_checkpoint_info *cp, char *out, size_t cap);
/* Signs cp (fills signature and key_id) with a private key. */
int ct_audit_checkpoint_sign(const ct_audit_key *key, ct_audit_checkpoint_info *cp, ct_error *err);
/* 0 when cp's signature verifies under key and cp->key_id names key;
 * CT_ECHECKSUM otherwise, saying which. */
int ct_audit_checkpoint_check_signature(const ct_audit_key *key, const ct_audit_checkpoint_info *cp,
                                        ct_error *err);

/* Signs the log's current head, in a write transaction of its own (not
 * inside a caller's: CT_EINVAL). The entries added since the previous
 * checkpoint are re-hashed and checked against the chain (from that
 * checkpoint's head and its stored Merkle frontier, checked against its
 * signed root), so a checkpoint never vouches for a broken log
 * (CT_ECHECKSUM naming the entry). Cost: proportional to the entries added
 * since the last checkpoint. *created is 0 when there is nothing new to sign
 * (out then holds the latest checkpoint, or id 0 for an empty log). */
int ct_audit_checkpoint(ct_store *st, const ct_audit_key *key, ct_audit_checkpoint_info *out,
                        int *created, ct_error *err);

/* ---- verification ----------------------------------------------------------------------- */

/* An entry whose time is earlier than the latest time seen before it by
 * more than this is reported (not failed: clocks step back; seq, not time,
 * orders the log). */
#define CT_AUDIT_TIME_TOLERANCE_MS 1000

typedef struct ct_audit_report {
    int ok;                        /* 1: everything checked agrees */
    int64_t log_size;              /* entries in the log (the export's log_size) */
    int64_t first_checked;         /* first entry re-hashed */
    int64_t entries_checked;       /* entries re-hashed */
    int64_t started_at_checkpoint; /* --from: the checkpoint the walk started from, 0: from entry 1 */
    int64_t nodes;                 /* export: subtree hashes standing for filtered-out entries */
    int64_t checkpoints;           /* checkpoints verified (signature, head, root) */
    int64_t signed_size;           /* entries covered by the newest verified checkpoint */
    char key_id[65];               /* key the signatures were checked with, "" if none */
    int filtered;                  /* export: not the whole log */
    char filter[256];              /* export: the filter, as text */
    int64_t bad_seq;               /* first bad entry; 0 when the fault is not an entry's */
    int64_t bad_checkpoint;        /* checkpoint at fault, 0 if none */
    char problem[CT_ERROR_MSG_MAX]; /* the first problem, "" when ok */
    int64_t time_warnings;         /* entries more than the tolerance earlier than a predecessor */
    int64_t first_time_warning_seq;
    int64_t first_time_warning_back_ms;
} ct_audit_report;

/* Recomputes the chain and the Merkle tree and checks every checkpoint
 * (signature under key, head hash and root at its size, ids without gaps)
 * and that the log still reaches the newest checkpoint's size. from_seq
 * <= 1: from the first entry; otherwise from the newest checkpoint below
 * from_seq (its signature and its stored frontier checked first), or from
 * the first entry when there is none. key NULL: the log must have no
 * checkpoint. Returns 0 when the log verifies, CT_ECHECKSUM when it does
 * not (err and report->problem name the first bad entry or checkpoint),
 * another code when it could not be read. Reads one snapshot; constant
 * memory. */
int ct_audit_verify(ct_store *st, int64_t from_seq, const ct_audit_key *key, ct_audit_report *report,
                    ct_error *err);

/* Verifies an export file (NDJSON or FHIR Bundle, told apart by content)
 * without a database: the same checks, plus that the file's items cover the
 * log without gaps and that the FHIR resources say exactly what their
 * entries do. Streams: memory is bounded by the largest item
 * (CT_AUDIT_FILE_ITEM_MAX), not by the file. */
#define CT_AUDIT_FILE_ITEM_MAX (1024 * 1024)
int ct_audit_verify_file(const char *path, const ct_audit_key *key, ct_audit_report *report,
                         ct_error *err);
/* The same on bytes in memory (tests, fuzzing); name is used in messages. */
int ct_audit_verify_buffer(const char *data, size_t len, const char *name, const ct_audit_key *key,
                           ct_audit_report *report, ct_error *err);

/* ---- export ---------------------------------------------------------------------------------- */

typedef enum ct_audit_format {
    CT_AUDIT_FORMAT_NDJSON = 0,
    CT_AUDIT_FORMAT_FHIR = 1,
} ct_audit_format;

typedef struct ct_audit_export_options {
    ct_audit_format format;
    int has_since;
    int64_t since_ms;       /* with has_since: entries with time_ms >= since_ms */
    const char *patient;    /* NULL or "": every patient */
} ct_audit_export_options;

typedef struct ct_audit_export_result {
    int64_t log_size;
    int64_t entries;        /* entries written */
    int64_t nodes;          /* subtree hashes written for the others */
    int64_t checkpoints;
} ct_audit_export_result;

/* Writes the log (one snapshot) to out. A filtered export holds the
 * matching entries and, for each run of the others, the roots of the
 * perfect Merkle subtrees that cover it, so that the signed roots can still
 * be recomputed: it proves that each entry present is the entry at that
 * position of the signed log, not that no matching entry was left out.
 * Constant memory. */
int ct_audit_export(ct_store *st, const ct_audit_export_options *opt, FILE *out,
                    ct_audit_export_result *res, ct_error *err);

/* The entry as a FHIR R4 AuditEvent (IHE BALP patterns), with its canonical
 * bytes and hashes in an extension. New reference; NULL when out of memory. */
json_t *ct_audit_record_to_fhir(const ct_audit_record *r);

/* ---- time ----------------------------------------------------------------------------------- */

/* "2024-05-01T12:00:00.000Z" (always UTC and milliseconds); buf >= 25. */
void ct_audit_format_time(int64_t t_ms, char *buf, size_t cap);
/* Parses "2024-05-01", "2024-05-01T12:00[:00[.000]]" followed by Z or
 * +hh:mm/-hh:mm (a time without zone is refused: an audit trail does not
 * guess), or plain milliseconds since 1970. */
int ct_audit_parse_time(const char *s, int64_t *t_ms, ct_error *err);

#endif
