/* audit/export: the log as NDJSON or as a FHIR R4 Bundle of AuditEvent, in
 * a form that can be verified offline.
 *
 * The one idea: an export is the log's items in order (a header, the
 * entries, each checkpoint right after the entry it signs, an end line), so
 * that a verifier can stream it exactly as it streams the database. A
 * filtered export (--since, --patient) replaces each run of left-out entries
 * by the roots of the perfect Merkle subtrees that cover the run (the
 * canonical dyadic split of the range, at most two per power of two), so
 * the signed roots can still be recomputed: the auditor learns that every
 * entry present is, byte for byte, the entry at that position of the signed
 * log, and how many others there are, but nothing about them. What a
 * filtered export cannot prove is that the filter let through every
 * matching entry; docs/audit.md says so.
 *
 * The FHIR form carries the same items: each entry becomes an AuditEvent
 * following IHE BALP (type, subtype, action, agents, source, entities) with
 * its canonical bytes and hashes in an extension, and the other items
 * become Basic resources holding their NDJSON object. The verifier rebuilds
 * every resource from the verified bytes and requires equality, so the
 * readable BALP fields cannot be edited apart from the hashed ones. */
#include "audit_impl.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define SYS_ENTITY_TYPE "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define SYS_OBJECT_ROLE "http://terminology.hl7.org/CodeSystem/object-role"
#define SYS_SOURCE_TYPE "http://terminology.hl7.org/CodeSystem/security-source-type"
#define SYS_BALP_ENTITY "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
#define SYS_DCM "http://dicom.nema.org/resources/ontology/DCM"

/* ---- items as JSON ------------------------------------------------------------ */

static json_t *hex_json(const unsigned char *b, size_t n)
{
    char buf[129];
    ct_audit_hex(b, n, buf);
    return json_string(buf);
}

json_t *ct_audit_item_entry_json(const ct_audit_record *r)
{
    char t[32];
    ct_audit_format_time(r->time_ms, t, sizeof t);
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "type", json_string("entry")) ||
              json_object_set_new(o, "seq", json_integer(r->seq)) ||
              json_object_set_new(o, "time_ms", json_integer(r->time_ms)) ||
              json_object_set_new(o, "time", json_string(t)) ||
              json_object_set_new(o, "actor", json_string(r->actor)) ||
              json_object_set_new(o, "role", json_string(r->actor_role)) ||
              json_object_set_new(o, "client", json_string(r->client)) ||
              json_object_set_new(o, "action", json_string(r->action)) ||
              json_object_set_new(o, "resource_type", json_string(r->resource_type)) ||
              json_object_set_new(o, "resource_id", json_string(r->resource_id)) ||
              json_object_set_new(o, "resource_version", json_integer(r->resource_version)) ||
              json_object_set_new(o, "patient", json_string(r->patient)) ||
              json_object_set_new(o, "outcome", json_integer(r->outcome)) ||
              json_object_set_new(o, "outcome_desc", json_string(r->outcome_desc)) ||
              json_object_set_new(o, "request_id", json_string(r->request_id)) ||
              json_object_set_new(o, "detail", r->has_detail ? json_string(r->detail) : json_null()) ||
              json_object_set_new(o, "prev_hash", hex_json(r->prev_hash, 32)) ||
              json_object_set_new(o, "hash", hex_json(r->hash, 32));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ct_audit_item_checkpoint_json(const ct_audit_checkpoint_info *cp)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int bad = json_object_set_new(o, "type", json_string("checkpoint")) ||
              json_object_set_new(o, "checkpoint", json_integer(cp->id)) ||
              json_object_set_new(o, "size", json_integer(cp->size)) ||
              json_object_set_new(o, "head_hash", hex_json(cp->head_hash, 32)) ||
              json_object_set_new(o, "root", hex_json(cp->merkle_root, 32)) ||
              json_object_set_new(o, "time_ms", json_integer(cp->time_ms)) ||
              json_object_set_new(o, "key_id", json_string(cp->key_id)) ||
              json_object_set_new(o, "signature", hex_json(cp->signature, 64));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ct_audit_item_node_json(int64_t first_seq, int64_t size, const unsigned char root[32])
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (json_object_set_new(o, "type", json_string("node")) ||
        json_object_set_new(o, "first_seq", json_integer(first_seq)) ||
        json_object_set_new(o, "size", json_integer(size)) || json_object_set_new(o, "hash", hex_json(root, 32))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ct_audit_item_to_basic(const char *kind, const char *id, json_t *item)
{
    char *text = json_dumps(item, JSON_COMPACT);
    if (!text)
        return NULL;
    json_t *b = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:{s:[{s:s, s:s}]}}", "resourceType", "Basic", "id", id,
                          "extension", "url", CT_AUDIT_EXT_ITEM, "valueString", text, "code", "coding", "system",
                          CT_AUDIT_CS_ITEM, "code", kind);
    free(text);
    return b;
}

/* ---- entries as AuditEvent (IHE BALP) ------------------------------------------------ */

static int is_fhir_id(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'))
            return 0;
    }
    return 1;
}

static json_t *coding(const char *system, const char *code, const char *display)
{
    return display ? json_pack("{s:s, s:s, s:s}", "system", system, "code", code, "display", display)
                   : json_pack("{s:s, s:s}", "system", system, "code", code);
}

static int is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static json_t *chain_extension(const ct_audit_record *r)
{
    unsigned char canon[CT_AUDIT_CANONICAL_MAX];
    size_t n = ct_audit_canonical(r, canon, sizeof canon);
    char *b64 = malloc(4 * ((n + 2) / 3) + 1);
    if (!b64)
        return NULL;
    EVP_EncodeBlock((unsigned char *)b64, canon, (int)n);
    char prev[65], hash[65];
    ct_audit_hex(r->prev_hash, 32, prev);
    ct_audit_hex(r->hash, 32, hash);
    json_t *e = json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}", "url", CT_AUDIT_EXT_CHAIN, "extension",
                          "url", "canonical", "valueBase64Binary", b64, "url", "prevHash", "valueString", prev,
                          "url", "hash", "valueString", hash);
    free(b64);
    return e;
}

static json_t *entities(const ct_audit_record *r, const ct_audit_action_map *m)
{
    json_t *list = json_array();
    if (!list)
        return NULL;
    int bad = 0;
    if (r->resource_type[0]) {
        json_t *ent = json_object();
        bad |= !ent || json_array_append_new(list, ent);
        if (!bad && r->resource_id[0]) {
            json_t *what;
            if (is_fhir_id(r->resource_id)) {
                char ref[256];
                if (r->resource_version > 0)
                    snprintf(ref, sizeof ref, "%s/%s/_history/%lld", r->resource_type, r->resource_id,
                             (long long)r->resource_version);
                else
                    snprintf(ref, sizeof ref, "%s/%s", r->resource_type, r->resource_id);
                what = json_pack("{s:s}", "reference", ref);
            } else {
                what = json_pack("{s:s, s:{s:s}}", "type", r->resource_type, "identifier", "value", r->resource_id);
            }
            bad |= json_object_set_new(ent, "what", what);
        } else if (!bad) {
            bad |= json_object_set_new(ent, "name", json_string(r->resource_type));
        }
        int query = m && strcmp(m->action, "search") == 0;
        bad |= bad || json_object_set_new(ent, "type", coding(SYS_ENTITY_TYPE, "2", "System Object")) ||
               json_object_set_new(ent, "role", query ? coding(SYS_OBJECT_ROLE, "24", "Query")
                                                      : coding(SYS_OBJECT_ROLE, "4", "Domain Resource"));
    }
    if (!bad && r->patient[0])
        bad |= json_array_append_new(list, json_pack("{s:{s:{s:s}}, s:o, s:o}", "what", "identifier", "value",
                                                     r->patient, "type", coding(SYS_ENTITY_TYPE, "1", "Person"),
                                                     "role", coding(SYS_OBJECT_ROLE, "1", "Patient")));
    if (!bad && r->request_id[0])
        bad |= json_array_append_new(list, json_pack("{s:{s:{s:s}}, s:o}", "what", "identifier", "value",
                                                     r->request_id, "type",
                                                     coding(SYS_BALP_ENTITY, "XrequestId", NULL)));
    if (!bad && r->has_detail)
        bad |= json_array_append_new(list, json_pack("{s:o, s:s, s:[{s:s, s:s}]}", "type",
                                                     coding(SYS_ENTITY_TYPE, "4", "Other"), "name", "detail",
                                                     "detail", "type", "cardiotwin-detail", "valueString",
                                                     r->detail));
    if (bad) {
        json_decref(list);
        return NULL;
    }
    return list;
}

json_t *ct_audit_record_to_fhir(const ct_audit_record *r)
{
    const ct_audit_action_map *m = ct_audit_action_lookup(r->action);
    char id[32], t[32], outcome[8];
    snprintf(id, sizeof id, "%lld", (long long)r->seq);
    ct_audit_format_time(r->time_ms, t, sizeof t);
    snprintf(outcome, sizeof outcome, "%d", r->outcome);

    json_t *ev = json_object();
    if (!ev)
        return NULL;
    int bad = json_object_set_new(ev, "resourceType", json_string("AuditEvent")) ||
              json_object_set_new(ev, "id", json_string(id)) ||
              json_object_set_new(ev, "extension", json_pack("[o]", chain_extension(r)));

    /* An action this build does not know (a newer writer's) keeps its own
     * code and the generic DICOM "Application Activity". */
    if (m)
        bad |= json_object_set_new(ev, "type", coding(m->type_system, m->type_code, m->type_display));
    else
        bad |= json_object_set_new(ev, "type", coding(SYS_DCM, "110100", "Application Activity"));
    json_t *sub = json_array();
    bad |= !sub || json_object_set_new(ev, "subtype", sub);
    const char *sub_system, *code;
    if (!bad && m && ct_audit_action_subtype(r->action, r->resource_type[0] != 0, r->resource_id[0] != 0,
                                             &sub_system, &code))
        bad |= json_array_append_new(sub, coding(sub_system, code, m->sub_display ? m->sub_display : code));
    bad |= bad || json_array_append_new(sub, coding(CT_AUDIT_CS_ACTION, r->action, NULL));
    char crude[2] = {m ? m->crude : 'E', '\0'};
    bad |= bad || json_object_set_new(ev, "action", json_string(crude)) ||
           json_object_set_new(ev, "recorded", json_string(t)) ||
           json_object_set_new(ev, "outcome", json_string(outcome));
    if (!bad && r->outcome_desc[0])
        bad |= json_object_set_new(ev, "outcomeDesc", json_string(r->outcome_desc));

    /* BALP: the client is the Source of what flows, the Destination when it
     * receives data (read); the user and the client machine are one agent
     * here, the requestor. */
    int receives = m ? m->client_receives : 0;
    json_t *client = json_pack("{s:{s:[o]}, s:{s:{s:s}}, s:[{s:s}], s:b}", "type", "coding",
                               receives ? coding(SYS_DCM, "110152", "Destination Role ID")
                                        : coding(SYS_DCM, "110153", "Source Role ID"),
                               "who", "identifier", "value", r->actor, "role", "text", r->actor_role, "requestor", 1);
    if (client && r->client[0])
        bad |= json_object_set_new(client, "network",
                                   json_pack("{s:s, s:s}", "address", r->client, "type", is_ip(r->client) ? "2" : "1"));
    json_t *server = json_pack("{s:{s:[o]}, s:{s:s}, s:b}", "type", "coding",
                               receives ? coding(SYS_DCM, "110153", "Source Role ID")
                                        : coding(SYS_DCM, "110152", "Destination Role ID"),
                               "who", "display", "cardiotwin", "requestor", 0);
    /* json_array_append_new takes the value over even when it fails. */
    json_t *agents = json_array();
    bad |= json_array_append_new(agents, client);
    bad |= json_array_append_new(agents, server);
    bad |= json_object_set_new(ev, "agent", agents);
    bad |= bad || json_object_set_new(ev, "source", json_pack("{s:s, s:{s:s}, s:[o]}", "site", "cardiotwin",
                                                              "observer", "display", "cardiotwin", "type",
                                                              coding(SYS_SOURCE_TYPE, "4", "Application Server")));
    json_t *ents = bad ? NULL : entities(r, m);
    if (ents && json_array_size(ents) > 0)
        bad |= json_object_set_new(ev, "entity", ents);
    else if (ents)
        json_decref(ents);
    else
        bad = 1;
    if (bad) {
        json_decref(ev);
        return NULL;
    }
    return ev;
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct writer {
    FILE *out;
    ct_audit_format format;
    int64_t n_items;
    ct_audit_export_result *res;
} writer;

static int emit(writer *w, json_t *resource_or_item, ct_error *err)
{
    if (!resource_or_item)
        return ct_error_set(err, CT_ENOMEM, "out of memory while exporting");
    int rc = CT_OK;
    if (w->format == CT_AUDIT_FORMAT_NDJSON) {
        if (json_dumpf(resource_or_item, w->out, JSON_COMPACT) != 0 || fputc('\n', w->out) == EOF)
            rc = ct_error_set(err, CT_EIO, "writing the export failed");
    } else {
        json_t *entry = json_pack("{s:O}", "resource", resource_or_item);
        if (!entry || fputs(w->n_items ? ",\n" : "\n", w->out) == EOF || json_dumpf(entry, w->out, JSON_COMPACT) != 0)
            rc = ct_error_set(err, CT_EIO, "writing the export failed");
        json_decref(entry);
    }
    json_decref(resource_or_item);
    w->n_items++;
    return rc;
}

/* An NDJSON item, or in FHIR the Basic resource that carries it. */
static int emit_item(writer *w, const char *kind, const char *id, json_t *item, ct_error *err)
{
    if (w->format == CT_AUDIT_FORMAT_NDJSON || !item)
        return emit(w, item, err);
    json_t *basic = ct_audit_item_to_basic(kind, id, item);
    json_decref(item);
    return emit(w, basic, err);
}

/* The left-out entries since the last one written, as the canonical
 * dyadic split of their range: a stack of perfect, aligned subtrees where
 * two equal neighbours merge when the merged one is aligned too. */
typedef struct gap {
    int n;
    struct {
        int64_t first; /* seq of its first entry */
        int log2;
        unsigned char h[32];
    } b[130];
} gap;

static int gap_flush(writer *w, gap *g, ct_error *err)
{
    for (int i = 0; i < g->n; i++) {
        int64_t size = (int64_t)1 << g->b[i].log2;
        char id[64];
        snprintf(id, sizeof id, "node-%lld-%lld", (long long)g->b[i].first, (long long)size);
        int rc = emit_item(w, "node", id, ct_audit_item_node_json(g->b[i].first, size, g->b[i].h), err);
        if (rc != CT_OK)
            return rc;
        w->res->nodes++;
    }
    g->n = 0;
    return CT_OK;
}

static int gap_push(writer *w, gap *g, int64_t seq, const unsigned char leaf[32], ct_error *err)
{
    if (g->n > 0) {
        int64_t end = g->b[g->n - 1].first + ((int64_t)1 << g->b[g->n - 1].log2);
        if (end != seq) {
            int rc = gap_flush(w, g, err); /* the log itself has a hole: keep it visible */
            if (rc != CT_OK)
                return rc;
        }
    }
    g->b[g->n].first = seq;
    g->b[g->n].log2 = 0;
    memcpy(g->b[g->n].h, leaf, 32);
    g->n++;
    while (g->n >= 2) {
        int lo = g->b[g->n - 2].log2, hi = g->b[g->n - 1].log2;
        int64_t first = g->b[g->n - 2].first;
        if (lo != hi || lo >= 61 || (first - 1) % ((int64_t)2 << lo) != 0)
            break;
        ct_audit_node_hash(g->b[g->n - 2].h, g->b[g->n - 1].h, g->b[g->n - 2].h);
        g->b[g->n - 2].log2++;
        g->n--;
    }
    return CT_OK;
}

static int matches(const ct_audit_export_options *opt, const ct_audit_record *r)
{
    if (opt->has_since && r->time_ms < opt->since_ms)
        return 0;
    if (opt->patient && opt->patient[0] && strcmp(opt->patient, r->patient) != 0)
        return 0;
    return 1;
}

static int next_checkpoint(ct_store_checkpoint_iter *it, ct_audit_checkpoint_info *cp, int *have, ct_error *err)
{
    int rc = ct_store_checkpoint_iter_next(it, cp, err);
    if (rc < 0)
        return ct_error_prefix(err, "cannot export checkpoint %lld (run 'cardiotwin audit verify')", (long long)cp->id);
    *have = rc;
    return CT_OK;
}

static int emit_checkpoint(writer *w, const ct_audit_checkpoint_info *cp, ct_error *err)
{
    char id[64];
    snprintf(id, sizeof id, "checkpoint-%lld", (long long)cp->id);
    int rc = emit_item(w, "checkpoint", id, ct_audit_item_checkpoint_json(cp), err);
    if (rc == CT_OK)
        w->res->checkpoints++;
    return rc;
}

static int export_walk(ct_store *st, const ct_audit_export_options *opt, writer *w, gap *g, ct_error *err)
{
    ct_audit_export_result *res = w->res;
    unsigned char last_hash[32];
    int rc = ct_store_audit_last(st, &res->log_size, last_hash, err);
    if (rc != CT_OK)
        return rc;
    int64_t now = ct_audit_now_ms();
    char now_text[32];
    ct_audit_format_time(now, now_text, sizeof now_text);
    int filtered = opt->has_since || (opt->patient && opt->patient[0]);

    if (w->format == CT_AUDIT_FORMAT_FHIR &&
        fprintf(w->out, "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"timestamp\":\"%s\",\"entry\":[",
                now_text) < 0)
        return ct_error_set(err, CT_EIO, "writing the export failed");
    json_t *filter = filtered ? json_object() : json_null();
    if (filter && opt->has_since)
        json_object_set_new(filter, "since_ms", json_integer(opt->since_ms));
    if (filter && opt->patient && opt->patient[0])
        json_object_set_new(filter, "patient", json_string(opt->patient));
    json_t *header = filter ? json_pack("{s:s, s:s, s:i, s:I, s:I, s:o}", "type", "header", "format",
                                        CT_AUDIT_EXPORT_FORMAT, "version", CT_AUDIT_EXPORT_VERSION, "log_size",
                                        (json_int_t)res->log_size, "exported_ms", (json_int_t)now, "filter", filter)
                            : NULL;
    if ((rc = emit_item(w, "header", "export-header", header, err)) != CT_OK)
        return rc;

    ct_store_checkpoint_iter *cit = NULL;
    ct_store_audit_iter *rit = NULL;
    ct_audit_checkpoint_info *cp = malloc(sizeof *cp);
    ct_audit_record *row = malloc(sizeof *row);
    int have_cp = 0;
    if (!cp || !row) {
        rc = ct_error_set(err, CT_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = ct_store_checkpoint_iter_open(st, &cit, err)) != CT_OK ||
        (rc = next_checkpoint(cit, cp, &have_cp, err)) != CT_OK || (rc = ct_store_audit_iter_open(st, 1, &rit, err)))
        goto out;
    int n;
    while ((n = ct_store_audit_iter_next(rit, row, err)) == 1) {
        if (matches(opt, row)) {
            if ((rc = gap_flush(w, g, err)) != CT_OK)
                goto out;
            json_t *item = w->format == CT_AUDIT_FORMAT_NDJSON ? ct_audit_item_entry_json(row)
                                                                : ct_audit_record_to_fhir(row);
            if ((rc = emit(w, item, err)) != CT_OK)
                goto out;
            res->entries++;
        } else {
            unsigned char leaf[32];
            ct_audit_leaf_hash(row, leaf);
            if ((rc = gap_push(w, g, row->seq, leaf, err)) != CT_OK)
                goto out;
        }
        while (have_cp && cp->size <= row->seq) {
            if ((rc = gap_flush(w, g, err)) != CT_OK || (rc = emit_checkpoint(w, cp, err)) != CT_OK ||
                (rc = next_checkpoint(cit, cp, &have_cp, err)) != CT_OK)
                goto out;
        }
    }
    if (n < 0) {
        rc = ct_error_prefix(err, "cannot export the audit log (run 'cardiotwin audit verify')");
        goto out;
    }
    if ((rc = gap_flush(w, g, err)) != CT_OK)
        goto out;
    /* Checkpoints beyond the end of the log (a cut tail) are exported as
     * they are, for the verifier to report. */
    while (have_cp) {
        if ((rc = emit_checkpoint(w, cp, err)) != CT_OK || (rc = next_checkpoint(cit, cp, &have_cp, err)) != CT_OK)
            goto out;
    }
    json_t *end = json_pack("{s:s, s:I, s:I, s:I, s:I}", "type", "end", "log_size", (json_int_t)res->log_size,
                            "entries", (json_int_t)res->entries, "nodes", (json_int_t)res->nodes, "checkpoints",
                            (json_int_t)res->checkpoints);
    if ((rc = emit_item(w, "end", "export-end", end, err)) != CT_OK)
        goto out;
    if (w->format == CT_AUDIT_FORMAT_FHIR && fputs("\n]}\n", w->out) == EOF)
        rc = ct_error_set(err, CT_EIO, "writing the export failed");
out:
    ct_store_audit_iter_close(rit);
    ct_store_checkpoint_iter_close(cit);
    free(cp);
    free(row);
    return rc;
}

int ct_audit_export(ct_store *st, const ct_audit_export_options *opt, FILE *out, ct_audit_export_result *res,
                    ct_error *err)
{
    if (!st || !opt || !out)
        return ct_error_set(err, CT_EINVAL, "ct_audit_export: missing argument");
    if (opt->format != CT_AUDIT_FORMAT_NDJSON && opt->format != CT_AUDIT_FORMAT_FHIR)
        return ct_error_set(err, CT_EINVAL, "ct_audit_export: unknown format %d", (int)opt->format);
    ct_audit_export_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    gap *g = calloc(1, sizeof *g);
    if (!g)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    writer w = {out, opt->format, 0, res};
    int started = 0;
    int rc = ct_store_audit_read_begin(st, &started, err);
    if (rc == CT_OK) {
        rc = export_walk(st, opt, &w, g, err);
        ct_store_audit_read_end(st, started);
    }
    free(g);
    if (rc == CT_OK && (fflush(out) != 0 || ferror(out)))
        rc = ct_error_set(err, CT_EIO, "writing the export failed");
    return rc;
}
