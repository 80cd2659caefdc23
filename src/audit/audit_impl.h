/* Inside the audit room: hashing helpers, the table of actions, and the
 * verifier that both `audit verify` on a database and `audit verify --file`
 * on an export feed, item by item. Not a public header. */
#ifndef CARDIOTWIN_AUDIT_IMPL_H
#define CARDIOTWIN_AUDIT_IMPL_H

#include "cardiotwin/audit.h"

/* Canonical base of our FHIR artefacts; the same as the fhir room's
 * CT_FHIR_CANONICAL_BASE (this room does not depend on that one). */
#define CT_AUDIT_FHIR_BASE "https://cardiotwin.example/fhir"
#define CT_AUDIT_EXT_CHAIN CT_AUDIT_FHIR_BASE "/StructureDefinition/audit-chain"
#define CT_AUDIT_EXT_ITEM CT_AUDIT_FHIR_BASE "/StructureDefinition/audit-export-item"
#define CT_AUDIT_CS_ACTION CT_AUDIT_FHIR_BASE "/CodeSystem/audit-action"
#define CT_AUDIT_CS_ITEM CT_AUDIT_FHIR_BASE "/CodeSystem/audit-export-item"
#define CT_AUDIT_EXPORT_FORMAT "cardiotwin-audit-export"
#define CT_AUDIT_EXPORT_VERSION 1

/* ---- hashing ----------------------------------------------------------------- */
void ct_audit_sha256(const void *a, size_t alen, const void *b, size_t blen, unsigned char out[32]);
void ct_audit_node_hash(const unsigned char left[32], const unsigned char right[32], unsigned char out[32]);
void ct_audit_hex(const unsigned char *in, size_t n, char *out); /* out: 2n + 1 */
/* 0 when s is exactly 2n lower-case hex digits. */
int ct_audit_unhex(const char *s, unsigned char *out, size_t n);

/* ---- entries ------------------------------------------------------------------ */
/* UTC milliseconds since the epoch (CLOCK_REALTIME: what the entry claims). */
int64_t ct_audit_now_ms(void);
/* Checks every field of a record (lengths, UTF-8, controls, action,
 * outcome, detail a JSON object, times in range); CT_EINVAL naming the
 * field. Used when appending and when reading an export. */
int ct_audit_record_check(const ct_audit_record *r, ct_error *err);
/* Parses the canonical bytes back into a record (seq, time and texts; not
 * the hashes). CT_EFORMAT when they are not exactly one canonical entry. */
int ct_audit_canonical_parse(const unsigned char *p, size_t len, ct_audit_record *r, ct_error *err);

/* How an action appears in FHIR (IHE BALP). */
typedef struct ct_audit_action_map {
    const char *action;
    const char *type_system, *type_code, *type_display;
    const char *sub_system, *sub_code, *sub_display; /* sub_code NULL: rest, from the resource */
    char crude;                                      /* AuditEvent.action: C R U D E */
    int client_receives;                             /* 1: the client is BALP's Destination Role */
} ct_audit_action_map;
const ct_audit_action_map *ct_audit_action_lookup(const char *action);

/* ---- the verifier ----------------------------------------------------------------- */
/* Fed in log order: entries, subtree nodes (filtered exports), and each
 * checkpoint right after the entry it signs. Every call returns 0 or
 * CT_ECHECKSUM with err and the report naming what is wrong. */
typedef struct ct_audit_verifier {
    const ct_audit_key *key;
    ct_audit_report *rep;
    ct_audit_merkle tree;
    int64_t next_seq;           /* the next entry expected */
    int have_prev;              /* prev_hash/prev_seq: the entry just before next_seq was present */
    int64_t prev_seq;
    unsigned char prev_hash[32];
    int have_time;
    int64_t max_time_ms;
    int64_t last_cp_id;
    int64_t last_cp_size;
    const char *where;          /* "" or "FILE: " in messages */
    unsigned char canon[CT_AUDIT_CANONICAL_MAX];
} ct_audit_verifier;

void ct_audit_verifier_init(ct_audit_verifier *v, const ct_audit_key *key, ct_audit_report *rep,
                            const char *where);
/* Starts after a checkpoint whose signature was checked: its frontier
 * must fold to its signed root. */
int ct_audit_verifier_resume(ct_audit_verifier *v, const ct_audit_checkpoint_info *cp, ct_error *err);
int ct_audit_verifier_entry(ct_audit_verifier *v, const ct_audit_record *r, ct_error *err);
int ct_audit_verifier_node(ct_audit_verifier *v, int64_t first_seq, int64_t size,
                           const unsigned char root[32], ct_error *err);
/* Checks a checkpoint's id and signature only (those before a --from start). */
int ct_audit_verifier_signature(ct_audit_verifier *v, const ct_audit_checkpoint_info *cp, ct_error *err);
/* The full check at its position: the tree must be at cp->size. */
int ct_audit_verifier_checkpoint(ct_audit_verifier *v, const ct_audit_checkpoint_info *cp, ct_error *err);
/* The log ends at log_size (the verifier must be there). */
int ct_audit_verifier_finish(ct_audit_verifier *v, int64_t log_size, ct_error *err);
/* Records a failure (CT_ECHECKSUM) in err and the report. */
int ct_audit_fail(ct_audit_verifier *v, ct_error *err, int64_t bad_seq, int64_t bad_cp, const char *fmt, ...)
    CT_PRINTF(5, 6);

/* ---- export items (shared by the writers and the file reader) ------------------------ */
json_t *ct_audit_item_entry_json(const ct_audit_record *r);
json_t *ct_audit_item_checkpoint_json(const ct_audit_checkpoint_info *cp);
json_t *ct_audit_item_node_json(int64_t first_seq, int64_t size, const unsigned char root[32]);
/* The FHIR Basic resource that carries a non-entry item (its NDJSON object). */
json_t *ct_audit_item_to_basic(const char *kind, const char *id, json_t *item);

#endif
