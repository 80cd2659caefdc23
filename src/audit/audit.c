/* audit: appending entries to the tamper-evident log, and their canonical
 * bytes.
 *
 * The one idea: an entry's hash covers a byte string that can be rebuilt
 * from the entry's fields alone, by anyone, in any language. Every field is
 * written in a fixed order, integers as 8 bytes big-endian and texts as a
 * 4-byte big-endian length followed by their UTF-8 bytes, after the magic
 * "CTAUDIT1" (format version 1). Length prefixes make the encoding
 * injective: no two different entries share canonical bytes, whatever
 * characters their texts hold, which a separator-based or JSON encoding
 * would have to argue for. The chain hash is SHA-256(prev_hash ||
 * canonical) with 32 zero bytes before the first entry; the Merkle leaf is
 * SHA-256(0x00 || canonical). docs/audit.md gives the layout byte by byte.
 *
 * Appending happens inside the caller's transaction: the store reads the
 * head under the write lock and calls back here to hash the row, so two
 * writers can never fork the chain, and a rolled-back change takes its
 * entry with it. */
#include "audit_impl.h"

#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

/* 9999-12-31T23:59:59.999Z: four-digit years keep the text form fixed. */
#define TIME_MAX_MS INT64_C(253402300799999)

#define DCM "http://dicom.nema.org/resources/ontology/DCM"
#define REST_TYPE "http://terminology.hl7.org/CodeSystem/audit-event-type"
#define REST_SUB "http://hl7.org/fhir/restful-interaction"

/* Every action cardiotwin writes and how IHE BALP (and DICOM's audit
 * vocabulary) names it. RESTful actions take their subtype from the
 * interaction; the others are DICOM events. */
static const ct_audit_action_map actions[] = {
    {"create", REST_TYPE, "rest", "Restful Operation", REST_SUB, "create", "create", 'C', 0},
    {"read", REST_TYPE, "rest", "Restful Operation", REST_SUB, "read", "read", 'R', 1},
    {"vread", REST_TYPE, "rest", "Restful Operation", REST_SUB, "vread", "vread", 'R', 1},
    {"update", REST_TYPE, "rest", "Restful Operation", REST_SUB, "update", "update", 'U', 0},
    {"patch", REST_TYPE, "rest", "Restful Operation", REST_SUB, "patch", "patch", 'U', 0},
    {"delete", REST_TYPE, "rest", "Restful Operation", REST_SUB, "delete", "delete", 'D', 0},
    /* BALP Query: the client sends the query, so it is the Source. */
    {"search", REST_TYPE, "rest", "Restful Operation", REST_SUB, NULL, NULL, 'E', 0},
    {"history", REST_TYPE, "rest", "Restful Operation", REST_SUB, NULL, NULL, 'R', 1},
    {"export", DCM, "110106", "Export", NULL, NULL, NULL, 'R', 1},
    {"import", DCM, "110107", "Import", NULL, NULL, NULL, 'C', 0},
    {"login", DCM, "110114", "User Authentication", DCM, "110122", "Login", 'E', 0},
    {"logout", DCM, "110114", "User Authentication", DCM, "110123", "Logout", 'E', 0},
    {"token-create", DCM, "110113", "Security Alert", DCM, "110137", "User Security Attributes Changed", 'C', 0},
    {"token-revoke", DCM, "110113", "Security Alert", DCM, "110137", "User Security Attributes Changed", 'D', 0},
    {"user-create", DCM, "110113", "Security Alert", DCM, "110137", "User Security Attributes Changed", 'C', 0},
    {"user-update", DCM, "110113", "Security Alert", DCM, "110137", "User Security Attributes Changed", 'U', 0},
    {"user-delete", DCM, "110113", "Security Alert", DCM, "110137", "User Security Attributes Changed", 'D', 0},
    {"alert", DCM, "110100", "Application Activity", NULL, NULL, NULL, 'C', 0},
    {"acknowledge", DCM, "110100", "Application Activity", NULL, NULL, NULL, 'U', 0},
    {"policy-change", DCM, "110113", "Security Alert", DCM, "110131", "Software Configuration", 'U', 0},
    /* GET /fhir/AuditEvent: the log itself was read (DICOM "Audit Log
     * Used"); the auditor receives the entries. */
    {"audit-read", DCM, "110101", "Audit Log Used", NULL, NULL, NULL, 'R', 1},
};

const ct_audit_action_map *ct_audit_action_lookup(const char *action)
{
    if (!action)
        return NULL;
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(actions[i].action, action) == 0)
            return &actions[i];
    return NULL;
}

int ct_audit_action_known(const char *action)
{
    return ct_audit_action_lookup(action) != NULL;
}

const char *ct_audit_action_at(size_t i)
{
    return i < sizeof actions / sizeof actions[0] ? actions[i].action : NULL;
}

char ct_audit_action_crude(const char *action)
{
    const ct_audit_action_map *m = ct_audit_action_lookup(action);
    return m ? m->crude : 'E';
}

int ct_audit_action_subtype(const char *action, int has_type, int has_id, const char **system, const char **code)
{
    const ct_audit_action_map *m = ct_audit_action_lookup(action);
    *system = *code = NULL;
    if (!m)
        return 0;
    const char *c = m->sub_code;
    /* A search or a history names its scope by what the entry holds. */
    if (!c && strcmp(m->action, "search") == 0)
        c = has_type ? "search-type" : "search-system";
    else if (!c && strcmp(m->action, "history") == 0)
        c = has_id ? "history-instance" : has_type ? "history-type" : "history-system";
    if (!c)
        return 0;
    *system = m->sub_system;
    *code = c;
    return 1;
}

/* ---- field checks ------------------------------------------------------------- */

/* Length of the UTF-8 sequence at s (well-formed: no overlong forms, no
 * surrogates, at most U+10FFFF), or 0. */
static size_t utf8_char(const unsigned char *s, size_t left)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* UTF-8 text of at most max bytes, without control characters. */
static int check_text(const char *s, size_t max, int required, const char *field, ct_error *err)
{
    size_t len = strnlen(s, max + 1);
    if (len > max)
        return ct_error_set(err, CT_EINVAL, "audit entry: %s is longer than %zu bytes", field, max);
    if (required && len == 0)
        return ct_error_set(err, CT_EINVAL, "audit entry: %s is empty", field);
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        if (p[i] < 0x20 || p[i] == 0x7f)
            return ct_error_set(err, CT_EINVAL, "audit entry: %s holds a control character (byte %zu)", field, i);
        size_t n = utf8_char(p + i, len - i);
        if (n == 0)
            return ct_error_set(err, CT_EINVAL, "audit entry: %s is not UTF-8 (byte %zu)", field, i);
        i += n;
    }
    return CT_OK;
}

static int check_action_word(const char *a, ct_error *err)
{
    for (const char *p = a; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
            return ct_error_set(err, CT_EINVAL, "audit entry: action '%.40s' is not a word of a-z, 0-9 and '-'", a);
    return CT_OK;
}

static int check_detail(const char *d, ct_error *err)
{
    size_t len = strnlen(d, CT_AUDIT_DETAIL_MAX + 1);
    if (len > CT_AUDIT_DETAIL_MAX)
        return ct_error_set(err, CT_EINVAL, "audit entry: detail is longer than %d bytes", CT_AUDIT_DETAIL_MAX);
    json_error_t jerr;
    json_t *j = json_loadb(d, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return ct_error_set(err, CT_EINVAL, "audit entry: detail is not JSON: %s (column %d)", jerr.text, jerr.column);
    int is_obj = json_is_object(j);
    json_decref(j);
    if (!is_obj)
        return ct_error_set(err, CT_EINVAL, "audit entry: detail is JSON but not an object");
    return CT_OK;
}

/* The strict check (appending) knows every action; the one used when
 * reading a log or an export only asks for the form of one, so that a log
 * written by a newer cardiotwin with more actions still verifies. */
static int record_check(const ct_audit_record *r, int strict, ct_error *err)
{
    int rc;
    if (r->seq < 1)
        return ct_error_set(err, CT_EINVAL, "audit entry: seq %lld is not positive", (long long)r->seq);
    if (r->time_ms < 0 || r->time_ms > TIME_MAX_MS)
        return ct_error_set(err, CT_EINVAL, "audit entry %lld: time_ms %lld is outside 1970..9999",
                            (long long)r->seq, (long long)r->time_ms);
    if ((rc = check_text(r->actor, CT_AUDIT_ACTOR_MAX, 1, "actor", err)) ||
        (rc = check_text(r->actor_role, CT_AUDIT_ROLE_MAX, 1, "actor role", err)) ||
        (rc = check_text(r->client, CT_AUDIT_CLIENT_MAX, 0, "client", err)) ||
        (rc = check_text(r->action, CT_AUDIT_ACTION_MAX, 1, "action", err)) ||
        (rc = check_action_word(r->action, err)) ||
        (rc = check_text(r->resource_type, CT_AUDIT_RESOURCE_TYPE_MAX, 0, "resource type", err)) ||
        (rc = check_text(r->resource_id, CT_AUDIT_RESOURCE_ID_MAX, 0, "resource id", err)) ||
        (rc = check_text(r->patient, CT_AUDIT_PATIENT_MAX, 0, "patient", err)) ||
        (rc = check_text(r->outcome_desc, CT_AUDIT_OUTCOME_DESC_MAX, 0, "outcome description", err)) ||
        (rc = check_text(r->request_id, CT_AUDIT_REQUEST_ID_MAX, 0, "request id", err)))
        return rc;
    if (strict && !ct_audit_action_known(r->action))
        return ct_error_set(err, CT_EINVAL, "audit entry: unknown action '%s'", r->action);
    if (r->resource_version < 0)
        return ct_error_set(err, CT_EINVAL, "audit entry: resource version %lld is negative",
                            (long long)r->resource_version);
    if (r->outcome != 0 && r->outcome != 4 && r->outcome != 8 && r->outcome != 12)
        return ct_error_set(err, CT_EINVAL, "audit entry: outcome %d is not 0, 4, 8 or 12", r->outcome);
    if (r->has_detail && (rc = check_detail(r->detail, err)) != CT_OK)
        return rc;
    return CT_OK;
}

int ct_audit_record_check(const ct_audit_record *r, ct_error *err)
{
    return record_check(r, 0, err);
}

/* ---- canonical bytes ------------------------------------------------------------- */

typedef struct canon_writer {
    unsigned char *out;
    size_t cap, len;
} canon_writer;

static void put_bytes(canon_writer *w, const void *p, size_t n)
{
    if (w->len + n <= w->cap && n)
        memcpy(w->out + w->len, p, n);
    w->len += n;
}

static void put_u64(canon_writer *w, uint64_t v)
{
    unsigned char b[8];
    for (int i = 7; i >= 0; i--) {
        b[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
    put_bytes(w, b, 8);
}

static void put_text(canon_writer *w, const char *s)
{
    size_t n = strlen(s);
    unsigned char b[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16), (unsigned char)(n >> 8),
                          (unsigned char)n};
    put_bytes(w, b, 4);
    put_bytes(w, s, n);
}

size_t ct_audit_canonical(const ct_audit_record *r, unsigned char *out, size_t cap)
{
    canon_writer w = {out, out ? cap : 0, 0};
    put_bytes(&w, "CTAUDIT1", 8);
    put_u64(&w, (uint64_t)r->seq);
    put_u64(&w, (uint64_t)r->time_ms);
    put_text(&w, r->actor);
    put_text(&w, r->actor_role);
    put_text(&w, r->client);
    put_text(&w, r->action);
    put_text(&w, r->resource_type);
    put_text(&w, r->resource_id);
    put_u64(&w, (uint64_t)r->resource_version);
    put_text(&w, r->patient);
    put_u64(&w, (uint64_t)(int64_t)r->outcome);
    put_text(&w, r->outcome_desc);
    put_text(&w, r->request_id);
    put_text(&w, r->has_detail ? r->detail : "");
    return w.len;
}

typedef struct canon_reader {
    const unsigned char *p;
    size_t len, at;
} canon_reader;

static int get_u64(canon_reader *c, int64_t *v)
{
    if (c->len - c->at < 8)
        return -1;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | c->p[c->at + (size_t)i];
    c->at += 8;
    if (u > (uint64_t)INT64_MAX)
        return -1;
    *v = (int64_t)u;
    return 0;
}

static int get_text(canon_reader *c, char *dst, size_t cap)
{
    if (c->len - c->at < 4)
        return -1;
    const unsigned char *b = c->p + c->at;
    uint32_t n = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    c->at += 4;
    if (n >= cap || c->len - c->at < n || memchr(c->p + c->at, '\0', n))
        return -1;
    memcpy(dst, c->p + c->at, n);
    dst[n] = '\0';
    c->at += n;
    return 0;
}

int ct_audit_canonical_parse(const unsigned char *p, size_t len, ct_audit_record *r, ct_error *err)
{
    memset(r, 0, sizeof *r);
    canon_reader c = {p, len, 0};
    int64_t outcome = 0;
    if (len < 8 || memcmp(p, "CTAUDIT1", 8) != 0)
        return ct_error_set(err, CT_EFORMAT, "canonical bytes do not start with CTAUDIT1");
    c.at = 8;
    if (get_u64(&c, &r->seq) || get_u64(&c, &r->time_ms) || get_text(&c, r->actor, sizeof r->actor) ||
        get_text(&c, r->actor_role, sizeof r->actor_role) || get_text(&c, r->client, sizeof r->client) ||
        get_text(&c, r->action, sizeof r->action) ||
        get_text(&c, r->resource_type, sizeof r->resource_type) ||
        get_text(&c, r->resource_id, sizeof r->resource_id) || get_u64(&c, &r->resource_version) ||
        get_text(&c, r->patient, sizeof r->patient) || get_u64(&c, &outcome) ||
        get_text(&c, r->outcome_desc, sizeof r->outcome_desc) ||
        get_text(&c, r->request_id, sizeof r->request_id) || get_text(&c, r->detail, sizeof r->detail))
        return ct_error_set(err, CT_EFORMAT, "canonical bytes are cut short or hold a field too long");
    if (c.at != len)
        return ct_error_set(err, CT_EFORMAT, "canonical bytes go on %zu bytes past the entry", len - c.at);
    if (outcome > 12)
        return ct_error_set(err, CT_EFORMAT, "canonical bytes: outcome %lld", (long long)outcome);
    r->outcome = (int)outcome;
    r->has_detail = r->detail[0] != '\0';
    return CT_OK;
}

void ct_audit_entry_hash(const ct_audit_record *r, unsigned char hash[32])
{
    unsigned char buf[CT_AUDIT_CANONICAL_MAX];
    size_t n = ct_audit_canonical(r, buf, sizeof buf);
    ct_audit_sha256(r->prev_hash, 32, buf, n, hash);
}

void ct_audit_leaf_hash(const ct_audit_record *r, unsigned char leaf[32])
{
    unsigned char buf[CT_AUDIT_CANONICAL_MAX];
    size_t n = ct_audit_canonical(r, buf, sizeof buf);
    ct_audit_sha256("\0", 1, buf, n, leaf);
}

/* ---- appending ----------------------------------------------------------------------- */

static int copy_in(char *dst, size_t cap, const char *src, const char *field, ct_error *err)
{
    if (!src)
        src = "";
    size_t n = strnlen(src, cap);
    if (n >= cap)
        return ct_error_set(err, CT_EINVAL, "audit entry: %s is longer than %zu bytes", field, cap - 1);
    memcpy(dst, src, n + 1);
    return CT_OK;
}

typedef struct seal_ctx {
    int64_t time_ms;
} seal_ctx;

/* Called by the store under the write lock, once seq and prev_hash are
 * known. The time is read here, as late as possible, so that entries that
 * queue for the lock are stamped in the order they enter the log. */
static int seal(void *ctx, ct_store_audit_row *row, ct_error *err)
{
    const seal_ctx *c = ctx;
    row->time_ms = c->time_ms ? c->time_ms : ct_audit_now_ms();
    if (row->time_ms < 0 || row->time_ms > TIME_MAX_MS)
        return ct_error_set(err, CT_EINVAL, "audit entry: the clock reads %lld ms, outside 1970..9999",
                            (long long)row->time_ms);
    ct_audit_entry_hash(row, row->hash);
    return CT_OK;
}

int ct_audit_append(ct_store *st, const ct_audit_entry *e, ct_audit_record *out, ct_error *err)
{
    if (!st || !e)
        return ct_error_set(err, CT_EINVAL, "ct_audit_append: missing argument");
    ct_audit_record *row = calloc(1, sizeof *row);
    if (!row)
        return ct_error_set(err, CT_ENOMEM, "out of memory for an audit entry");
    int rc;
    if ((rc = copy_in(row->actor, sizeof row->actor, e->actor.name, "actor", err)) ||
        (rc = copy_in(row->actor_role, sizeof row->actor_role, e->actor.role, "actor role", err)) ||
        (rc = copy_in(row->client, sizeof row->client, e->actor.client, "client", err)) ||
        (rc = copy_in(row->action, sizeof row->action, e->action, "action", err)) ||
        (rc = copy_in(row->resource_type, sizeof row->resource_type, e->resource_type, "resource type", err)) ||
        (rc = copy_in(row->resource_id, sizeof row->resource_id, e->resource_id, "resource id", err)) ||
        (rc = copy_in(row->patient, sizeof row->patient, e->patient, "patient", err)) ||
        (rc = copy_in(row->outcome_desc, sizeof row->outcome_desc, e->outcome_desc, "outcome description", err)) ||
        (rc = copy_in(row->request_id, sizeof row->request_id, e->request_id, "request id", err)))
        goto out;
    row->has_detail = e->detail != NULL;
    if (e->detail && (rc = copy_in(row->detail, sizeof row->detail, e->detail, "detail", err)))
        goto out;
    row->resource_version = e->resource_version;
    row->outcome = e->outcome;
    /* seq and time are not known yet; check the rest with placeholders. */
    row->seq = 1;
    row->time_ms = e->time_ms;
    if ((rc = record_check(row, 1, err)) != CT_OK)
        goto out;
    seal_ctx ctx = {e->time_ms};
    if ((rc = ct_store_audit_append_row(st, row, seal, &ctx, err)) != CT_OK) {
        ct_error_prefix(err, "audit log");
        goto out;
    }
    if (out)
        *out = *row;
out:
    free(row);
    return rc;
}

void ct_audit_actor_local(ct_audit_actor *out, char *buf, size_t cap)
{
    uid_t uid = geteuid();
    struct passwd pw, *res = NULL;
    char tmp[4096];
    if (cap == 0) {
        out->name = "";
    } else {
        if (getpwuid_r(uid, &pw, tmp, sizeof tmp, &res) == 0 && res && res->pw_name && res->pw_name[0] &&
            strlen(res->pw_name) < cap && strlen(res->pw_name) <= CT_AUDIT_ACTOR_MAX)
            snprintf(buf, cap, "%s", res->pw_name);
        else
            snprintf(buf, cap, "uid %lu", (unsigned long)uid);
        out->name = buf;
    }
    out->role = "operator";
    out->client = "cli";
}

/* ---- detail objects ---------------------------------------------------------------------- */

void ct_audit_detail_init(ct_audit_detail *d)
{
    d->json[0] = '{';
    d->json[1] = '}';
    d->json[2] = '\0';
    d->len = 1; /* before the closing brace */
    d->overflow = 0;
}

static void detail_put(ct_audit_detail *d, const char *s, size_t n)
{
    /* Room for the text and the closing "}\0". */
    if (d->overflow || d->len + n + 2 > sizeof d->json) {
        d->overflow = 1;
        return;
    }
    memcpy(d->json + d->len, s, n);
    d->len += n;
    d->json[d->len] = '}';
    d->json[d->len + 1] = '\0';
}

static void detail_string(ct_audit_detail *d, const char *s)
{
    detail_put(d, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            detail_put(d, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            detail_put(d, esc, 6);
        } else {
            detail_put(d, (const char *)p, 1);
        }
    }
    detail_put(d, "\"", 1);
}

static void detail_key(ct_audit_detail *d, const char *key)
{
    if (d->len > 1)
        detail_put(d, ",", 1);
    detail_string(d, key);
    detail_put(d, ":", 1);
}

void ct_audit_detail_str(ct_audit_detail *d, const char *key, const char *value)
{
    detail_key(d, key);
    detail_string(d, value);
}

void ct_audit_detail_int(ct_audit_detail *d, const char *key, int64_t value)
{
    char num[32];
    int n = snprintf(num, sizeof num, "%lld", (long long)value);
    detail_key(d, key);
    detail_put(d, num, (size_t)n);
}

const char *ct_audit_detail_json(ct_audit_detail *d)
{
    return d->overflow ? NULL : d->json;
}

/* ---- time ------------------------------------------------------------------------------------- */

int64_t ct_audit_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ct_audit_format_time(int64_t t_ms, char *buf, size_t cap)
{
    if (t_ms < 0 || t_ms > TIME_MAX_MS) {
        snprintf(buf, cap, "invalid");
        return;
    }
    time_t s = (time_t)(t_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(t_ms % 1000));
}

/* Reads exactly n digits. */
static int digits(const char **p, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return -1;
        x = x * 10 + (c - '0');
    }
    *p += n;
    *v = x;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int d[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : d[m - 1];
}

int ct_audit_parse_time(const char *s, int64_t *t_ms, ct_error *err)
{
    if (!s || !*s || !t_ms)
        return ct_error_set(err, CT_EINVAL, "no time given");
    size_t len = strlen(s);
    if (strspn(s, "0123456789") == len) {
        if (len > 15)
            return ct_error_set(err, CT_EINVAL, "time '%s': too many digits for milliseconds", s);
        long long v = strtoll(s, NULL, 10);
        if (v > TIME_MAX_MS)
            return ct_error_set(err, CT_EINVAL, "time '%s' is after 9999", s);
        *t_ms = v;
        return CT_OK;
    }
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, ms = 0, tz_min = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' || digits(&p, 2, &d))
        goto bad;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo))
        goto bad;
    if (*p == 'T') {
        p++;
        if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || h > 23 || mi > 59)
            goto bad;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &sec) || sec > 59)
                goto bad;
            if (*p == '.') {
                p++;
                int n = 0, scale = 100;
                while (*p >= '0' && *p <= '9') {
                    if (n++ < 3) {
                        ms += (*p - '0') * scale;
                        scale /= 10;
                    }
                    p++;
                }
                if (n == 0 || n > 9)
                    goto bad;
            }
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1, th, tm_;
            if (digits(&p, 2, &th) || *p++ != ':' || digits(&p, 2, &tm_) || th > 14 || tm_ > 59)
                goto bad;
            tz_min = sign * (th * 60 + tm_);
        } else {
            return ct_error_set(err, CT_EINVAL, "time '%s' has no zone: end it with Z or +hh:mm", s);
        }
    }
    if (*p != '\0')
        goto bad;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    int64_t v = (int64_t)t * 1000 + ms - (int64_t)tz_min * 60000;
    if (v < 0 || v > TIME_MAX_MS)
        return ct_error_set(err, CT_EINVAL, "time '%s' is before 1970 or after 9999", s);
    *t_ms = v;
    return CT_OK;
bad:
    return ct_error_set(err, CT_EINVAL, "time '%s' is not YYYY-MM-DD, YYYY-MM-DDThh:mm[:ss[.sss]]Z "
                        "(or +hh:mm), or milliseconds since 1970", s);
}
