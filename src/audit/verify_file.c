/* audit/verify_file: `audit verify --file`, an export checked without the
 * database.
 *
 * The one idea: read the file as a stream of items and feed the same
 * verifier the database walk uses; never hold the file. NDJSON is read a
 * line at a time. A FHIR Bundle is one JSON object, possibly gigabytes, so
 * it is not handed to a JSON parser whole: a small scanner walks its top
 * level (keys, and the elements of the "entry" array), cutting out one
 * value at a time, which jansson then parses and validates. Memory is
 * bounded by the largest single item (CT_AUDIT_FILE_ITEM_MAX), any
 * formatting (pretty-printed or not, keys in any order) is accepted, and
 * anything else in the file is refused with the line or Bundle entry at
 * fault. Every item must be exactly what the exporter would write for what
 * it claims: unknown keys are refused and each FHIR resource must equal the
 * one rebuilt from its hashed bytes, so nothing unverified can ride along. */
#include "audit_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

/* Top-level values of the Bundle other than "entry" (id, meta, timestamp). */
#define TOP_VALUE_MAX (64 * 1024)

/* ---- reading bytes ------------------------------------------------------------ */

typedef struct rd {
    FILE *f;                  /* NULL: reading mem */
    const unsigned char *mem;
    size_t mem_len;
    unsigned char buf[65536];
    size_t pos, len;
    int error;
    int64_t line;             /* 1-based line of the next byte */
} rd;

static int rd_fill(rd *r)
{
    if (r->pos < r->len)
        return 1;
    if (!r->f)
        return 0;
    r->len = fread(r->buf, 1, sizeof r->buf, r->f);
    r->pos = 0;
    if (r->len == 0 && ferror(r->f))
        r->error = 1;
    return r->len > 0;
}

static int rd_peek(rd *r)
{
    if (!r->f)
        return r->pos < r->mem_len ? r->mem[r->pos] : -1;
    return rd_fill(r) ? r->buf[r->pos] : -1;
}

static int rd_get(rd *r)
{
    int c = rd_peek(r);
    if (c >= 0) {
        r->pos++;
        if (c == '\n')
            r->line++;
    }
    return c;
}

static void skip_ws(rd *r)
{
    for (int c = rd_peek(r); c == ' ' || c == '\t' || c == '\n' || c == '\r'; c = rd_peek(r))
        rd_get(r);
}

typedef struct span {
    char *data;
    size_t len, cap, limit;
} span;

static int span_put(span *s, int c)
{
    if (s->len + 1 > s->limit)
        return -1;
    if (s->len + 1 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        if (cap > s->limit)
            cap = s->limit;
        char *d = realloc(s->data, cap);
        if (!d)
            return -2;
        s->data = d;
        s->cap = cap;
    }
    s->data[s->len++] = (char)c;
    return 0;
}

/* ---- the check of one file -------------------------------------------------------- */

typedef struct fcheck {
    rd *r;
    ct_audit_verifier *v;
    const char *name;
    int fhir;
    int64_t index;          /* Bundle entry number (1-based), FHIR */
    int64_t item_line;      /* line the current item starts on, NDJSON */
    int have_header, have_end;
    int64_t log_size;
    int64_t entries, nodes, checkpoints;
    ct_audit_record rec;
    ct_audit_checkpoint_info cp;
    char where[600];
} fcheck;

/* "FILE line 12: " or "FILE Bundle entry 12: " before a problem. */
static void set_where(fcheck *fc)
{
    if (fc->fhir)
        snprintf(fc->where, sizeof fc->where, "%s, Bundle entry %lld: ", fc->name, (long long)fc->index);
    else
        snprintf(fc->where, sizeof fc->where, "%s line %lld: ", fc->name, (long long)fc->item_line);
    fc->v->where = fc->where;
}

/* A malformed item stands where entry next_seq belongs: name both. Before
 * the header, the file is simply not an export. */
static int bad_item(fcheck *fc, ct_error *err, const char *what)
{
    if (!fc->have_header)
        return ct_error_set(err, CT_EFORMAT, "%snot a cardiotwin audit export (%s)", fc->v->where, what);
    return ct_audit_fail(fc->v, err, fc->v->next_seq, 0, "%s (where entry %lld is expected)", what,
                         (long long)fc->v->next_seq);
}

/* jansson quotes the input near an error; a message stays one line. */
static const char *printable(char *s)
{
    for (char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return s;
}

static int get_string(json_t *o, const char *key, char *dst, size_t cap, int required_nonempty)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return -1;
    size_t n = json_string_length(v);
    if (n >= cap || memchr(json_string_value(v), '\0', n) || (required_nonempty && n == 0))
        return -1;
    memcpy(dst, json_string_value(v), n + 1);
    return 0;
}

static int get_int(json_t *o, const char *key, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    if (x < min || x > max)
        return -1;
    *out = (int64_t)x;
    return 0;
}

static int get_hex(json_t *o, const char *key, unsigned char *out, size_t n)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? ct_audit_unhex(json_string_value(v), out, n) : -1;
}

/* Exactly these keys, no others. */
static int has_keys(json_t *o, const char *const *keys, size_t n)
{
    if (!json_is_object(o) || json_object_size(o) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!json_object_get(o, keys[i]))
            return 0;
    return 1;
}

static int parse_entry_item(json_t *o, ct_audit_record *r)
{
    static const char *const keys[] = {"type", "seq", "time_ms", "time", "actor", "role", "client", "action",
                                       "resource_type", "resource_id", "resource_version", "patient", "outcome",
                                       "outcome_desc", "request_id", "detail", "prev_hash", "hash"};
    if (!has_keys(o, keys, sizeof keys / sizeof keys[0]))
        return -1;
    memset(r, 0, sizeof *r);
    int64_t outcome = 0;
    char t[32], want[32];
    if (get_int(o, "seq", 1, INT64_MAX, &r->seq) || get_int(o, "time_ms", 0, INT64_MAX, &r->time_ms) ||
        get_string(o, "time", t, sizeof t, 1) || get_string(o, "actor", r->actor, sizeof r->actor, 0) ||
        get_string(o, "role", r->actor_role, sizeof r->actor_role, 0) ||
        get_string(o, "client", r->client, sizeof r->client, 0) ||
        get_string(o, "action", r->action, sizeof r->action, 0) ||
        get_string(o, "resource_type", r->resource_type, sizeof r->resource_type, 0) ||
        get_string(o, "resource_id", r->resource_id, sizeof r->resource_id, 0) ||
        get_int(o, "resource_version", 0, INT64_MAX, &r->resource_version) ||
        get_string(o, "patient", r->patient, sizeof r->patient, 0) || get_int(o, "outcome", 0, 12, &outcome) ||
        get_string(o, "outcome_desc", r->outcome_desc, sizeof r->outcome_desc, 0) ||
        get_string(o, "request_id", r->request_id, sizeof r->request_id, 0) || get_hex(o, "prev_hash", r->prev_hash, 32) ||
        get_hex(o, "hash", r->hash, 32))
        return -1;
    r->outcome = (int)outcome;
    json_t *d = json_object_get(o, "detail");
    if (json_is_string(d)) {
        if (get_string(o, "detail", r->detail, sizeof r->detail, 1))
            return -1;
        r->has_detail = 1;
    } else if (!json_is_null(d)) {
        return -1;
    }
    ct_audit_format_time(r->time_ms, want, sizeof want);
    return strcmp(t, want) == 0 ? 0 : -2;
}

static int parse_checkpoint_item(json_t *o, ct_audit_checkpoint_info *cp)
{
    static const char *const keys[] = {"type", "checkpoint", "size", "head_hash", "root", "time_ms", "key_id",
                                       "signature"};
    if (!has_keys(o, keys, sizeof keys / sizeof keys[0]))
        return -1;
    memset(cp, 0, sizeof *cp);
    unsigned char kid[32];
    if (get_int(o, "checkpoint", 1, INT64_MAX, &cp->id) || get_int(o, "size", 1, INT64_MAX, &cp->size) ||
        get_hex(o, "head_hash", cp->head_hash, 32) || get_hex(o, "root", cp->merkle_root, 32) ||
        get_int(o, "time_ms", 0, INT64_MAX, &cp->time_ms) || get_hex(o, "key_id", kid, 32) ||
        get_string(o, "key_id", cp->key_id, sizeof cp->key_id, 1) || get_hex(o, "signature", cp->signature, 64))
        return -1;
    return 0;
}

static const char *item_type(json_t *o)
{
    json_t *t = json_object_get(o, "type");
    return json_is_string(t) ? json_string_value(t) : "";
}

static int check_header(fcheck *fc, json_t *o, ct_error *err)
{
    static const char *const keys[] = {"type", "format", "version", "log_size", "exported_ms", "filter"};
    char fmt[64];
    int64_t version = 0, exported = 0;
    if (!has_keys(o, keys, sizeof keys / sizeof keys[0]) || strcmp(item_type(o), "header") != 0 ||
        get_string(o, "format", fmt, sizeof fmt, 1) || strcmp(fmt, CT_AUDIT_EXPORT_FORMAT) != 0)
        return ct_error_set(err, CT_EFORMAT, "%s: not a cardiotwin audit export (no export header first)", fc->name);
    if (get_int(o, "version", 1, INT32_MAX, &version) || get_int(o, "log_size", 0, INT64_MAX, &fc->log_size) ||
        get_int(o, "exported_ms", 0, INT64_MAX, &exported))
        return ct_error_set(err, CT_EFORMAT, "%s: the export header is malformed", fc->name);
    if (version != CT_AUDIT_EXPORT_VERSION)
        return ct_error_set(err, CT_EVERSION, "%s: export format version %lld; this cardiotwin reads version %d",
                            fc->name, (long long)version, CT_AUDIT_EXPORT_VERSION);
    ct_audit_report *rep = fc->v->rep;
    json_t *f = json_object_get(o, "filter");
    if (json_is_object(f)) {
        size_t known = 0;
        int64_t since = 0;
        char patient[CT_AUDIT_PATIENT_MAX + 1] = "";
        if (json_object_get(f, "since_ms")) {
            known++;
            if (get_int(f, "since_ms", 0, INT64_MAX, &since))
                return ct_error_set(err, CT_EFORMAT, "%s: the export header's filter is malformed", fc->name);
        }
        if (json_object_get(f, "patient")) {
            known++;
            if (get_string(f, "patient", patient, sizeof patient, 1))
                return ct_error_set(err, CT_EFORMAT, "%s: the export header's filter is malformed", fc->name);
        }
        if (known == 0 || known != json_object_size(f))
            return ct_error_set(err, CT_EFORMAT, "%s: the export header's filter is malformed", fc->name);
        rep->filtered = 1;
        char t[32] = "";
        if (json_object_get(f, "since_ms"))
            ct_audit_format_time(since, t, sizeof t);
        snprintf(rep->filter, sizeof rep->filter, "%s%s%s%s%s", t[0] ? "since " : "", t,
                 t[0] && patient[0] ? ", " : "", patient[0] ? "patient " : "", patient);
    } else if (!json_is_null(f)) {
        return ct_error_set(err, CT_EFORMAT, "%s: the export header's filter is malformed", fc->name);
    }
    fc->have_header = 1;
    rep->log_size = fc->log_size;
    return CT_OK;
}

/* One item in NDJSON form: the object itself, or what a Basic carries. */
static int check_item(fcheck *fc, json_t *o, ct_error *err)
{
    const char *type = item_type(o);
    if (!fc->have_header)
        return check_header(fc, o, err);
    if (fc->have_end)
        return bad_item(fc, err, "an item after the end line");
    if (strcmp(type, "entry") == 0) {
        int p = parse_entry_item(o, &fc->rec);
        if (p == -2)
            return ct_audit_fail(fc->v, err, fc->rec.seq, 0, "entry %lld: its time text does not match its "
                                 "time_ms (edited?)", (long long)fc->rec.seq);
        if (p != 0)
            return bad_item(fc, err, "a malformed entry");
        fc->entries++;
        return ct_audit_verifier_entry(fc->v, &fc->rec, err);
    }
    if (strcmp(type, "node") == 0) {
        static const char *const keys[] = {"type", "first_seq", "size", "hash"};
        int64_t first = 0, size = 0;
        unsigned char h[32];
        if (!has_keys(o, keys, 4) || get_int(o, "first_seq", 1, INT64_MAX, &first) ||
            get_int(o, "size", 1, INT64_MAX, &size) || get_hex(o, "hash", h, 32))
            return bad_item(fc, err, "a malformed subtree node");
        if (!fc->v->rep->filtered)
            return ct_audit_fail(fc->v, err, first, 0, "entries %lld.. are replaced by a subtree hash in an export "
                                 "whose header says it holds the whole log", (long long)first);
        fc->nodes++;
        return ct_audit_verifier_node(fc->v, first, size, h, err);
    }
    if (strcmp(type, "checkpoint") == 0) {
        if (parse_checkpoint_item(o, &fc->cp) != 0)
            return bad_item(fc, err, "a malformed checkpoint");
        fc->checkpoints++;
        return ct_audit_verifier_checkpoint(fc->v, &fc->cp, err);
    }
    if (strcmp(type, "end") == 0) {
        static const char *const keys[] = {"type", "log_size", "entries", "nodes", "checkpoints"};
        int64_t log_size = 0, entries = 0, nodes = 0, cps = 0;
        if (!has_keys(o, keys, 5) || get_int(o, "log_size", 0, INT64_MAX, &log_size) ||
            get_int(o, "entries", 0, INT64_MAX, &entries) || get_int(o, "nodes", 0, INT64_MAX, &nodes) ||
            get_int(o, "checkpoints", 0, INT64_MAX, &cps))
            return bad_item(fc, err, "a malformed end line");
        if (log_size != fc->log_size || entries != fc->entries || nodes != fc->nodes || cps != fc->checkpoints)
            return ct_audit_fail(fc->v, err, 0, 0, "the end line counts %lld entries, %lld nodes and %lld "
                                 "checkpoints of a log of %lld; the export holds %lld, %lld and %lld of %lld "
                                 "(items removed or added?)", (long long)entries, (long long)nodes,
                                 (long long)cps, (long long)log_size, (long long)fc->entries,
                                 (long long)fc->nodes, (long long)fc->checkpoints, (long long)fc->log_size);
        fc->have_end = 1;
        return ct_audit_verifier_finish(fc->v, fc->log_size, err);
    }
    return bad_item(fc, err, "an item of unknown type");
}

/* ---- FHIR resources ---------------------------------------------------------------------- */

static json_t *find_extension(json_t *list, const char *url)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        json_t *u = json_object_get(e, "url");
        if (json_is_string(u) && strcmp(json_string_value(u), url) == 0)
            return e;
    }
    return NULL;
}

static const char *sub_value(json_t *ext, const char *url, const char *value_key)
{
    json_t *e = find_extension(json_object_get(ext, "extension"), url);
    json_t *v = json_object_get(e, value_key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Strict base64: what decodes must re-encode to the same text. */
static int unbase64(const char *s, unsigned char *out, size_t cap, size_t *n)
{
    size_t len = strlen(s);
    if (len == 0 || len % 4 != 0 || len / 4 * 3 > cap)
        return -1;
    int got = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (got < 0)
        return -1;
    size_t pad = (s[len - 1] == '=') + (len > 1 && s[len - 2] == '=');
    *n = (size_t)got - pad;
    char *again = malloc(len + 1);
    if (!again)
        return -1;
    EVP_EncodeBlock((unsigned char *)again, out, (int)*n);
    int same = strcmp(again, s) == 0;
    free(again);
    return same ? 0 : -1;
}

static int check_audit_event(fcheck *fc, json_t *res, ct_error *err)
{
    json_t *chain = find_extension(json_object_get(res, "extension"), CT_AUDIT_EXT_CHAIN);
    const char *canon = sub_value(chain, "canonical", "valueBase64Binary");
    const char *prev = sub_value(chain, "prevHash", "valueString");
    const char *hash = sub_value(chain, "hash", "valueString");
    if (!fc->have_header)
        return bad_item(fc, err, "an AuditEvent before the export header");
    if (fc->have_end)
        return bad_item(fc, err, "an AuditEvent after the end item");
    unsigned char *bytes = malloc(CT_AUDIT_CANONICAL_MAX);
    size_t n = 0;
    ct_error local;
    int ok = bytes && canon && prev && hash && unbase64(canon, bytes, CT_AUDIT_CANONICAL_MAX, &n) == 0 &&
             ct_audit_canonical_parse(bytes, n, &fc->rec, &local) == CT_OK &&
             ct_audit_unhex(prev, fc->rec.prev_hash, 32) == 0 && ct_audit_unhex(hash, fc->rec.hash, 32) == 0;
    free(bytes);
    if (!ok)
        return bad_item(fc, err, "an AuditEvent without a readable audit-chain extension");
    fc->entries++;
    int rc = ct_audit_verifier_entry(fc->v, &fc->rec, err);
    if (rc != CT_OK)
        return rc;
    json_t *want = ct_audit_record_to_fhir(&fc->rec);
    if (!want)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    int same = json_equal(want, res);
    json_decref(want);
    if (!same)
        return ct_audit_fail(fc->v, err, fc->rec.seq, 0, "entry %lld: the AuditEvent says something else than "
                             "the entry its hashes cover (its readable fields were edited)", (long long)fc->rec.seq);
    return CT_OK;
}

static int check_basic(fcheck *fc, json_t *res, ct_error *err)
{
    json_t *ext = find_extension(json_object_get(res, "extension"), CT_AUDIT_EXT_ITEM);
    json_t *text = json_object_get(ext, "valueString");
    json_t *coding = json_array_get(json_object_get(json_object_get(res, "code"), "coding"), 0);
    json_t *kind = json_object_get(coding, "code");
    if (!json_is_string(text) || !json_is_string(kind))
        return bad_item(fc, err, "a Basic resource that is not an export item");
    json_error_t jerr;
    json_t *item = json_loadb(json_string_value(text), json_string_length(text), JSON_REJECT_DUPLICATES, &jerr);
    if (!item)
        return bad_item(fc, err, "an export item that is not JSON");
    int rc = check_item(fc, item, err);
    if (rc == CT_OK) {
        /* The Basic must be exactly the one that carries this item. */
        const char *type = item_type(item);
        char id[80];
        if (strcmp(type, "node") == 0)
            snprintf(id, sizeof id, "node-%lld-%lld", (long long)json_integer_value(json_object_get(item, "first_seq")),
                     (long long)json_integer_value(json_object_get(item, "size")));
        else if (strcmp(type, "checkpoint") == 0)
            snprintf(id, sizeof id, "checkpoint-%lld", (long long)json_integer_value(json_object_get(item, "checkpoint")));
        else
            snprintf(id, sizeof id, "export-%s", type);
        json_t *want = ct_audit_item_to_basic(type, id, item);
        int same = want && json_equal(want, res);
        json_decref(want);
        if (!same)
            rc = bad_item(fc, err, "a Basic resource that says something else than the export item it carries");
    }
    json_decref(item);
    return rc;
}

static int check_bundle_entry(fcheck *fc, span *s, ct_error *err)
{
    fc->index++;
    set_where(fc);
    json_error_t jerr;
    json_t *e = json_loadb(s->data, s->len, JSON_REJECT_DUPLICATES, &jerr);
    if (!e) {
        char what[300];
        snprintf(what, sizeof what, "not JSON: %s", printable(jerr.text));
        return bad_item(fc, err, what);
    }
    json_t *res = json_object_get(e, "resource");
    json_t *rt = json_object_get(res, "resourceType");
    int rc;
    if (!json_is_object(e) || json_object_size(e) != 1 || !json_is_string(rt))
        rc = bad_item(fc, err, "a Bundle entry that is not {\"resource\": ...}");
    else if (strcmp(json_string_value(rt), "AuditEvent") == 0)
        rc = check_audit_event(fc, res, err);
    else if (strcmp(json_string_value(rt), "Basic") == 0)
        rc = check_basic(fc, res, err);
    else
        rc = bad_item(fc, err, "a resource that is neither AuditEvent nor Basic");
    json_decref(e);
    return rc;
}

/* ---- the scanner ------------------------------------------------------------------------------ */

/* Cuts one JSON value out of the stream into s (jansson checks it later):
 * a string, an object or array (brackets counted, strings skipped), or a
 * scalar. Returns 0, or -1 for a value cut short or too long. */
static int cut_string(rd *r, span *s)
{
    if (rd_peek(r) != '"' || span_put(s, rd_get(r)))
        return -1;
    for (;;) {
        int c = rd_get(r);
        if (c < 0 || span_put(s, c))
            return -1;
        if (c == '\\') {
            c = rd_get(r);
            if (c < 0 || span_put(s, c))
                return -1;
        } else if (c == '"') {
            return 0;
        }
    }
}

static int cut_value(rd *r, span *s)
{
    s->len = 0;
    int c = rd_peek(r);
    if (c == '"')
        return cut_string(r, s);
    if (c == '{' || c == '[') {
        int64_t depth = 0;
        for (;;) {
            c = rd_peek(r);
            if (c < 0)
                return -1;
            if (c == '"') {
                if (cut_string(r, s))
                    return -1;
                continue;
            }
            if (span_put(s, rd_get(r)))
                return -1;
            if (c == '{' || c == '[')
                depth++;
            else if ((c == '}' || c == ']') && --depth == 0)
                return 0;
        }
    }
    while (c >= 0 && !strchr(",}] \t\r\n", c)) {
        if (span_put(s, rd_get(r)))
            return -1;
        c = rd_peek(r);
    }
    return s->len ? 0 : -1;
}

static int scan_fail(fcheck *fc, ct_error *err, const char *what)
{
    if (!fc->have_header)
        return ct_error_set(err, CT_EFORMAT, "%s line %lld: not a cardiotwin audit export (%s)", fc->name,
                            (long long)fc->r->line, what);
    snprintf(fc->where, sizeof fc->where, "%s line %lld: ", fc->name, (long long)fc->r->line);
    fc->v->where = fc->where;
    return ct_audit_fail(fc->v, err, fc->v->next_seq, 0, "%s (where entry %lld is expected)", what,
                         (long long)fc->v->next_seq);
}

/* The Bundle's "entry" array, element by element. */
static int scan_entries(fcheck *fc, span *s, ct_error *err)
{
    rd *r = fc->r;
    if (rd_get(r) != '[')
        return scan_fail(fc, err, "\"entry\" is not an array");
    skip_ws(r);
    if (rd_peek(r) == ']') {
        rd_get(r);
        return CT_OK;
    }
    for (;;) {
        skip_ws(r);
        if (cut_value(r, s))
            return scan_fail(fc, err, s->len >= s->limit ? "a Bundle entry larger than 1 MiB" : "a Bundle entry cut short");
        int rc = check_bundle_entry(fc, s, err);
        if (rc != CT_OK)
            return rc;
        skip_ws(r);
        int c = rd_get(r);
        if (c == ']')
            return CT_OK;
        if (c != ',')
            return scan_fail(fc, err, "expected ',' or ']' between Bundle entries");
    }
}

static int read_ndjson_lines(fcheck *fc, span *s, ct_error *err)
{
    rd *r = fc->r;
    for (;;) {
        int c = rd_peek(r);
        if (c < 0)
            return CT_OK;
        fc->item_line = r->line;
        s->len = 0;
        while ((c = rd_get(r)) >= 0 && c != '\n') {
            if (span_put(s, c))
                return scan_fail(fc, err, "a line longer than 1 MiB");
        }
        if (s->len > 0 && s->data[s->len - 1] == '\r')
            s->len--;
        size_t blank = 0;
        while (blank < s->len && (s->data[blank] == ' ' || s->data[blank] == '\t'))
            blank++;
        if (blank == s->len) {
            if (fc->have_end)
                continue; /* trailing blank lines */
            set_where(fc);
            return bad_item(fc, err, "an empty line");
        }
        set_where(fc);
        json_error_t jerr;
        json_t *o = json_loadb(s->data, s->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(o)) {
            json_decref(o);
            char what[300];
            snprintf(what, sizeof what, "not a JSON object%s%s", jerr.text[0] ? ": " : "", printable(jerr.text));
            return bad_item(fc, err, what);
        }
        int rc = check_item(fc, o, err);
        json_decref(o);
        if (rc != CT_OK)
            return rc;
    }
}

static int check_stream(fcheck *fc, ct_error *err)
{
    rd *r = fc->r;
    span s = {NULL, 0, 0, CT_AUDIT_FILE_ITEM_MAX};
    json_t *top = json_object();
    int rc = CT_OK, seen_entry = 0;
    if (!top)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    skip_ws(r);
    if (rd_get(r) != '{') {
        rc = scan_fail(fc, err, "it does not start with '{'");
        goto out;
    }
    skip_ws(r);
    if (rd_peek(r) == '}') {
        rc = scan_fail(fc, err, "an empty object");
        goto out;
    }
    /* The first object's members: an NDJSON header's, or the Bundle's. */
    for (;;) {
        skip_ws(r);
        s.limit = 1024;
        s.len = 0;
        if (cut_string(r, &s)) {
            rc = scan_fail(fc, err, "expected a member name");
            goto out;
        }
        json_error_t jerr;
        json_t *k = json_loadb(s.data, s.len, JSON_DECODE_ANY, &jerr);
        char key[1024];
        snprintf(key, sizeof key, "%s", json_is_string(k) ? json_string_value(k) : "");
        json_decref(k);
        skip_ws(r);
        if (rd_get(r) != ':') {
            rc = scan_fail(fc, err, "expected ':' after a member name");
            goto out;
        }
        skip_ws(r);
        if (strcmp(key, "entry") == 0) {
            if (seen_entry++) {
                rc = scan_fail(fc, err, "two \"entry\" arrays");
                goto out;
            }
            fc->fhir = 1;
            s.limit = CT_AUDIT_FILE_ITEM_MAX;
            if ((rc = scan_entries(fc, &s, err)) != CT_OK)
                goto out;
        } else {
            s.limit = TOP_VALUE_MAX;
            json_t *val = cut_value(r, &s) ? NULL
                                           : json_loadb(s.data, s.len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
            if (!val || json_object_get(top, key)) {
                json_decref(val);
                rc = scan_fail(fc, err, "a malformed or repeated member");
                goto out;
            }
            json_object_set_new(top, key, val);
        }
        skip_ws(r);
        int c = rd_get(r);
        if (c == '}')
            break;
        if (c != ',') {
            rc = scan_fail(fc, err, "expected ',' or '}' between members");
            goto out;
        }
    }
    if (fc->fhir) {
        json_t *rt = json_object_get(top, "resourceType"), *type = json_object_get(top, "type");
        if (!json_is_string(rt) || strcmp(json_string_value(rt), "Bundle") != 0 || !json_is_string(type) ||
            strcmp(json_string_value(type), "collection") != 0) {
            rc = fc->have_header ? ct_audit_fail(fc->v, err, 0, 0, "%s: not a Bundle of type collection", fc->name)
                                 : ct_error_set(err, CT_EFORMAT, "%s: not a cardiotwin audit export", fc->name);
            goto out;
        }
        skip_ws(r);
        if (rd_peek(r) >= 0) {
            rc = scan_fail(fc, err, "more after the Bundle");
            goto out;
        }
    } else {
        fc->item_line = 1;
        set_where(fc);
        if ((rc = check_item(fc, top, err)) != CT_OK)
            goto out;
        while (rd_peek(r) == ' ' || rd_peek(r) == '\t' || rd_peek(r) == '\r')
            rd_get(r);
        if (rd_peek(r) >= 0 && rd_get(r) != '\n') {
            rc = scan_fail(fc, err, "more on the header's line");
            goto out;
        }
        s.limit = CT_AUDIT_FILE_ITEM_MAX;
        if ((rc = read_ndjson_lines(fc, &s, err)) != CT_OK)
            goto out;
    }
    if (r->error) {
        rc = ct_error_set(err, CT_EIO, "%s: read error", fc->name);
        goto out;
    }
    if (!fc->have_header) {
        rc = ct_error_set(err, CT_EFORMAT, "%s: not a cardiotwin audit export (no export header)", fc->name);
        goto out;
    }
    if (!fc->have_end) {
        fc->v->where = "";
        rc = ct_audit_fail(fc->v, err, fc->v->next_seq, 0, "%s ends without its end item after entry %lld (cut "
                           "short?)", fc->name, (long long)(fc->v->next_seq - 1));
        goto out;
    }
out:
    fc->v->where = "";
    json_decref(top);
    free(s.data);
    return rc;
}

static int verify_rd(rd *r, const char *name, const ct_audit_key *key, ct_audit_report *report, ct_error *err)
{
    fcheck *fc = calloc(1, sizeof *fc);
    ct_audit_verifier *v = malloc(sizeof *v);
    ct_error local;
    ct_error_clear(&local);
    int rc;
    if (!fc || !v) {
        rc = ct_error_set(&local, CT_ENOMEM, "out of memory");
    } else {
        ct_audit_verifier_init(v, key, report, "");
        fc->r = r;
        fc->v = v;
        fc->name = name;
        r->line = 1;
        rc = check_stream(fc, &local);
    }
    /* A failure after the header has filled the report; a file that is not
     * an export at all has not. */
    if (rc != CT_OK && report->problem[0] == '\0')
        snprintf(report->problem, sizeof report->problem, "%s", local.msg);
    report->ok = rc == CT_OK;
    if (err && rc != CT_OK)
        *err = local;
    free(fc);
    free(v);
    return rc;
}

int ct_audit_verify_file(const char *path, const ct_audit_key *key, ct_audit_report *report, ct_error *err)
{
    if (!path || !report)
        return ct_error_set(err, CT_EINVAL, "ct_audit_verify_file: missing argument");
    memset(report, 0, sizeof *report);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ct_error_set(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || S_ISDIR(sb.st_mode)) {
        fclose(f);
        return ct_error_set(err, CT_EIO, "%s: not a file", path);
    }
    rd *r = calloc(1, sizeof *r);
    int rc;
    if (!r) {
        rc = ct_error_set(err, CT_ENOMEM, "out of memory");
    } else {
        r->f = f;
        rc = verify_rd(r, path, key, report, err);
    }
    free(r);
    fclose(f);
    return rc;
}

int ct_audit_verify_buffer(const char *data, size_t len, const char *name, const ct_audit_key *key,
                           ct_audit_report *report, ct_error *err)
{
    if ((!data && len) || !report)
        return ct_error_set(err, CT_EINVAL, "ct_audit_verify_buffer: missing argument");
    memset(report, 0, sizeof *report);
    rd *r = calloc(1, sizeof *r);
    if (!r)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    r->mem = (const unsigned char *)data;
    r->mem_len = len;
    int rc = verify_rd(r, name ? name : "export", key, report, err);
    free(r);
    return rc;
}
