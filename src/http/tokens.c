/* http room, tokens: making, hashing and revoking the API's bearer tokens.
 * `cardiotwin token create|revoke` call these; auth.c checks what a
 * request presents against the same rows.
 *
 * The one idea: a token is 256 bits from OpenSSL's CSPRNG, so the server
 * can store SHA-256(token) and nothing else. A password needs a slow,
 * salted KDF because people choose few enough of them to try them all; a
 * 256-bit random value cannot be enumerated, so one fast hash already
 * makes the stored value useless to whoever steals the database, and being
 * unsalted it can be looked up by an index in one probe per request. The
 * "ct_" prefix lets secret scanners and people recognise a leaked token;
 * it carries no information. A token row and its audit entry are written in
 * one transaction: there is no token nobody is recorded to have made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "http_internal.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the token's text ------------------------------------------------------------------- */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* RFC 4648 section 5 without padding: 4 characters per 3 bytes. */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)in[i] << 16;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8;
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

int ct_http_token_generate(char *out, size_t cap, ct_error *err)
{
    if (!out || cap < CT_HTTP_TOKEN_BUF)
        return ct_error_set(err, CT_EINVAL, "ct_http_token_generate: the buffer needs %d bytes", CT_HTTP_TOKEN_BUF);
    out[0] = '\0';
    unsigned char raw[CT_HTTP_TOKEN_RANDOM_BYTES];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        OPENSSL_cleanse(raw, sizeof raw);
        return ct_error_set(err, CT_EIO, "OpenSSL's random generator gave no bytes; no token was made");
    }
    size_t pl = strlen(CT_HTTP_TOKEN_PREFIX);
    memcpy(out, CT_HTTP_TOKEN_PREFIX, pl);
    size_t n = b64url_encode(raw, sizeof raw, out + pl);
    OPENSSL_cleanse(raw, sizeof raw);
    if (pl + n != CT_HTTP_TOKEN_LEN) {
        OPENSSL_cleanse(out, cap);
        return ct_error_set(err, CT_EINVAL, "token length %zu is not %d", pl + n, CT_HTTP_TOKEN_LEN);
    }
    return CT_OK;
}

int ct_http_token_well_formed(const char *t, size_t n)
{
    size_t pl = strlen(CT_HTTP_TOKEN_PREFIX);
    if (!t || n != CT_HTTP_TOKEN_LEN || memcmp(t, CT_HTTP_TOKEN_PREFIX, pl) != 0)
        return 0;
    for (size_t i = pl; i < n; i++)
        if (!memchr(b64url, t[i], sizeof b64url - 1))
            return 0;
    /* 32 bytes are 256 bits; the last character carries 4 of them, so its
     * low 2 bits are 0 in a canonical encoding. Two spellings of one token
     * would hash differently: refuse the one we never make. */
    const char *last = memchr(b64url, t[n - 1], sizeof b64url - 1);
    return ((last - b64url) & 3) == 0;
}

int ct_http_token_hash(const char *t, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    return EVP_Digest(t, n, out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

/* ---- states ------------------------------------------------------------------------------ */

ct_http_token_state ct_http_token_state_at(const ct_store_token *t, int64_t t_ms)
{
    if (t->revoked_ms > 0)
        return CT_HTTP_TOKEN_REVOKED;
    if (t->expires_ms > 0 && t_ms >= t->expires_ms)
        return CT_HTTP_TOKEN_EXPIRED;
    return CT_HTTP_TOKEN_ACTIVE;
}

const char *ct_http_token_state_name(ct_http_token_state s)
{
    switch (s) {
    case CT_HTTP_TOKEN_ACTIVE: return "active";
    case CT_HTTP_TOKEN_EXPIRED: return "expired";
    case CT_HTTP_TOKEN_REVOKED: return "revoked";
    }
    return "unknown";
}

/* ---- create and revoke -------------------------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = s ? strnlen(s, CT_STORE_TOKEN_NAME_MAX + 1) : 0;
    if (n == 0 || n > CT_STORE_TOKEN_NAME_MAX || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static int check_actor(const ct_audit_actor *by, ct_error *err)
{
    if (!by || !by->name || !by->name[0] || !by->role || !by->role[0])
        return ct_error_set(err, CT_EINVAL, "a token change needs the operator who makes it");
    if (strlen(by->name) >= sizeof ((ct_store_token *)0)->created_by)
        return ct_error_set(err, CT_EINVAL, "operator name is longer than %zu bytes",
                            sizeof ((ct_store_token *)0)->created_by - 1);
    return CT_OK;
}

static int check_spec(const ct_http_token_spec *spec, const ct_http_role_info **role, ct_error *err)
{
    if (!spec)
        return ct_error_set(err, CT_EINVAL, "ct_http_token_create: missing argument");
    if (!name_ok(spec->name))
        return ct_error_set(err, CT_EINVAL,
                            "token name '%.80s' must be 1 to %d of A-Z a-z 0-9 . _ - and start with a letter",
                            spec->name ? spec->name : "", CT_STORE_TOKEN_NAME_MAX);
    *role = ct_http_role_lookup(spec->role);
    if (!*role)
        return ct_error_set(err, CT_EINVAL, "role '%.32s' does not exist: it is device, clinician, auditor or admin",
                            spec->role ? spec->role : "");
    const char *pat = spec->patient;
    if (pat && *pat) {
        if (!(*role)->patient_scopes)
            return ct_error_set(err, CT_EINVAL,
                                "a %s token cannot be bound to a patient: only device and clinician tokens can",
                                (*role)->name);
        if (!ct_fhir_id_valid(pat, strlen(pat)))
            return ct_error_set(err, CT_EINVAL, "patient '%.80s' is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)", pat);
    }
    if (spec->expires_days < 0 || spec->expires_days > CT_HTTP_TOKEN_MAX_DAYS)
        return ct_error_set(err, CT_EINVAL, "expiry of %d days is out of range 1..%d (0: never)", spec->expires_days,
                            CT_HTTP_TOKEN_MAX_DAYS);
    return CT_OK;
}

static int audit_token(ct_store *st, const char *action, const ct_audit_actor *by, const ct_store_token *t,
                       ct_error *err)
{
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_int(&d, "token_id", t->id);
    ct_audit_detail_str(&d, "name", t->name);
    ct_audit_detail_str(&d, "role", t->role);
    ct_audit_detail_str(&d, "scopes", t->scopes);
    if (t->expires_ms > 0) {
        char when[32];
        ct_audit_format_time(t->expires_ms, when, sizeof when);
        ct_audit_detail_str(&d, "expires", when);
    }
    const char *detail = ct_audit_detail_json(&d);
    if (!detail)
        return ct_error_set(err, CT_ELIMIT, "token %s: the audit detail does not fit", t->name);
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor = *by;
    e.action = action;
    e.resource_type = "";
    e.resource_id = "";
    e.patient = t->patient;
    e.outcome = CT_AUDIT_OUTCOME_SUCCESS;
    e.outcome_desc = "";
    e.request_id = "";
    e.detail = detail;
    return ct_audit_append(st, &e, NULL, err);
}

int ct_http_token_create(ct_store *st, const ct_http_token_spec *spec, const ct_audit_actor *by, char *token,
                         size_t cap, ct_store_token *row, ct_error *err)
{
    if (token && cap)
        token[0] = '\0';
    if (!st || !token || cap < CT_HTTP_TOKEN_BUF)
        return ct_error_set(err, CT_EINVAL, "ct_http_token_create: missing argument or a buffer under %d bytes",
                            CT_HTTP_TOKEN_BUF);
    const ct_http_role_info *role = NULL;
    int rc;
    if ((rc = check_spec(spec, &role, err)) != CT_OK || (rc = check_actor(by, err)) != CT_OK)
        return rc;
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "ct_http_token_create runs its own transaction, not inside one");

    ct_store_token t;
    memset(&t, 0, sizeof t);
    int bound = spec->patient && spec->patient[0];
    snprintf(t.name, sizeof t.name, "%s", spec->name);
    snprintf(t.role, sizeof t.role, "%s", role->name);
    if (ct_http_role_scopes(role->name, bound, t.scopes, sizeof t.scopes) != 0)
        return ct_error_set(err, CT_EINVAL, "role %s has no scopes to give", role->name);
    if (bound)
        snprintf(t.patient, sizeof t.patient, "%s", spec->patient);
    snprintf(t.created_by, sizeof t.created_by, "%s", by->name);
    t.created_ms = spec->now_ms > 0 ? spec->now_ms : now_ms();
    if (spec->expires_days > 0)
        t.expires_ms = t.created_ms + (int64_t)spec->expires_days * 86400000;

    char secret[CT_HTTP_TOKEN_BUF];
    if ((rc = ct_http_token_generate(secret, sizeof secret, err)) != CT_OK)
        return rc;
    if (ct_http_token_hash(secret, CT_HTTP_TOKEN_LEN, t.sha256) != 0) {
        OPENSSL_cleanse(secret, sizeof secret);
        return ct_error_set(err, CT_EIO, "OpenSSL could not hash the token; no token was made");
    }

    if ((rc = ct_store_begin(st, err)) != CT_OK) {
        OPENSSL_cleanse(secret, sizeof secret);
        return rc;
    }
    if (bound) {
        int deleted = 0;
        ct_error gerr = {0};
        int g = ct_store_resource_get(st, "Patient", t.patient, 0, NULL, NULL, NULL, &deleted, &gerr);
        if (g == CT_ENOTFOUND || (g == CT_OK && deleted))
            rc = ct_error_set(err, CT_ENOTFOUND,
                              "there is no Patient/%s in the database%s: a token bound to it would see "
                              "nothing; create the Patient first",
                              t.patient, deleted ? " (it was deleted)" : "");
        else if (g != CT_OK)
            rc = ct_error_set(err, g, "%s", gerr.msg);
    }
    if (rc == CT_OK)
        rc = ct_store_token_insert(st, &t, err);
    if (rc == CT_OK && (rc = audit_token(st, "token-create", by, &t, err)) != CT_OK)
        ct_error_prefix(err, "token %s: audit log", t.name);
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK) {
        ct_store_rollback(st);
        OPENSSL_cleanse(secret, sizeof secret);
        OPENSSL_cleanse(&t, sizeof t);
        return rc;
    }
    memcpy(token, secret, sizeof secret);
    OPENSSL_cleanse(secret, sizeof secret);
    if (row)
        *row = t;
    return CT_OK;
}

static int find_token(ct_store *st, const char *name_or_id, ct_store_token *t, ct_error *err)
{
    size_t n = strlen(name_or_id);
    int digits = n > 0 && n <= 18;
    for (size_t i = 0; digits && i < n; i++)
        digits = name_or_id[i] >= '0' && name_or_id[i] <= '9';
    if (digits)
        return ct_store_token_get(st, strtoll(name_or_id, NULL, 10), t, err);
    return ct_store_token_get_by_name(st, name_or_id, t, err);
}

int ct_http_token_revoke(ct_store *st, const char *name_or_id, const ct_audit_actor *by, ct_store_token *row,
                         int *already, ct_error *err)
{
    if (already)
        *already = 0;
    if (!st || !name_or_id || !*name_or_id)
        return ct_error_set(err, CT_EINVAL, "ct_http_token_revoke: missing argument");
    int rc = check_actor(by, err);
    if (rc != CT_OK)
        return rc;
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "ct_http_token_revoke runs its own transaction, not inside one");
    ct_store_token t;
    if ((rc = ct_store_begin(st, err)) != CT_OK)
        return rc;
    /* Read inside the write transaction: nobody revokes it in between. */
    rc = find_token(st, name_or_id, &t, err);
    if (rc == CT_OK && t.revoked_ms > 0) {
        ct_store_rollback(st);
        if (already)
            *already = 1;
        if (row)
            *row = t;
        return CT_OK;
    }
    int64_t at = now_ms();
    if (rc == CT_OK)
        rc = ct_store_token_revoke(st, t.id, at, by->name, err);
    if (rc == CT_OK) {
        t.revoked_ms = at;
        snprintf(t.revoked_by, sizeof t.revoked_by, "%s", by->name);
        if ((rc = audit_token(st, "token-revoke", by, &t, err)) != CT_OK)
            ct_error_prefix(err, "token %s: audit log", t.name);
    }
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK) {
        ct_store_rollback(st);
        return rc;
    }
    if (row)
        *row = t;
    return CT_OK;
}
