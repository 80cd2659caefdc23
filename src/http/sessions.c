/* http room, sessions: the dashboard's login. POST /auth/login checks a
 * user's password and opens a session, GET /auth/session tells a new page
 * who it is and its CSRF token, POST /auth/logout ends it
 * (docs/dashboard.md, "Login"; docs/security.md, "Users and login").
 *
 * The one idea: a session is a bearer credential held by the browser in a
 * cookie it never shows to scripts (HttpOnly), sends only over TLS (Secure)
 * and only on requests that start on this site (SameSite=Strict): 256
 * random bits whose SHA-256 alone is stored, checked on every request like
 * a token (auth.c), with an idle timeout and an absolute lifetime. Because
 * a browser attaches cookies by itself, every request it authenticates
 * that could change something (any method but GET and HEAD) must also
 * carry the session's CSRF token in X-CSRF-Token, which only a page of this
 * origin can read (from the login or /auth/session answer); authorize()
 * in router.c enforces it.
 *
 * Guessing is made slow three ways: the KDF (users.c) makes each guess
 * cost a quarter of a second of the server's time, the login handler lets
 * one client address try CT_HTTP_LOGIN_PER_MIN times a minute, and
 * CT_HTTP_LOGIN_MAX_FAILURES failures in a row lock the account for
 * CT_HTTP_LOGIN_LOCK_MS (429 with Retry-After, even for the right password,
 * until it ends or an operator runs `cardiotwin user unlock`). An unknown
 * name is answered exactly like a wrong password, after the same KDF work,
 * and is "locked" the same way in memory, so neither the message, the time
 * nor the lockout tells which names exist. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "http_internal.h"

/* Login attempts one client address may make: a burst, then this many a minute. */
#define CT_HTTP_LOGIN_BURST 20.0
#define CT_HTTP_LOGIN_PER_MIN 10.0
/* A login body holds a name and a password: 4 KiB is plenty. */
#define LOGIN_BODY_MAX 4096
/* How often a session's last request is written (the idle clock's grain). */
#define SESSION_TOUCH_INTERVAL_MS 30000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- secrets, cookies, CSRF (pure) ------------------------------------------------------ */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* 32 random bytes as 43 characters of base64url without padding. */
static int new_secret(char out[CT_HTTP_SECRET_LEN + 1])
{
    unsigned char raw[33] = {0};
    if (RAND_bytes(raw, 32) != 1)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < 33; i += 3) {
        unsigned v = (unsigned)raw[i] << 16 | (unsigned)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        if (o < CT_HTTP_SECRET_LEN)
            out[o++] = b64url[v >> 6 & 63];
        if (o < CT_HTTP_SECRET_LEN)
            out[o++] = b64url[v & 63];
    }
    out[CT_HTTP_SECRET_LEN] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

int ct_http_secret_well_formed(const char *s, size_t n)
{
    if (!s || n != CT_HTTP_SECRET_LEN)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!memchr(b64url, s[i], sizeof b64url - 1))
            return 0;
    /* 256 bits in 43 characters: the last carries 4, its low 2 bits are 0
     * in the one spelling this server makes. */
    const char *last = memchr(b64url, s[n - 1], sizeof b64url - 1);
    return ((last - b64url) & 3) == 0;
}

int ct_http_cookie_get(const char *header, const char *name, char *out, size_t cap)
{
    if (cap)
        out[0] = '\0';
    if (!header || !name || !*name)
        return 0;
    size_t nl = strlen(name);
    int found = 0;
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *eq = memchr(p, '=', len);
        if (eq) {
            size_t kl = (size_t)(eq - p);
            while (kl > 0 && (p[kl - 1] == ' ' || p[kl - 1] == '\t'))
                kl--;
            if (kl == nl && memcmp(p, name, nl) == 0) {
                const char *v = eq + 1;
                size_t vl = len - (size_t)(v - p);
                while (vl > 0 && (*v == ' ' || *v == '\t')) {
                    v++;
                    vl--;
                }
                while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                    vl--;
                /* RFC 6265 allows a quoted value; ours never is, but a
                 * client may quote it. */
                if (vl >= 2 && v[0] == '"' && v[vl - 1] == '"') {
                    v++;
                    vl -= 2;
                }
                if (found || vl >= cap) {
                    if (cap)
                        OPENSSL_cleanse(out, cap);
                    return -1;
                }
                memcpy(out, v, vl);
                out[vl] = '\0';
                found = 1;
            }
        }
        p += len;
    }
    return found;
}

int ct_http_csrf_equal(const char *presented, const char *expected)
{
    if (!presented || !expected || !*expected)
        return 0;
    size_t a = strlen(presented), b = strlen(expected);
    if (a != b)
        return 0;
    return CRYPTO_memcmp(presented, expected, a) == 0;
}

void ct_http_lockout_after_failure(int64_t failed_before, int64_t t_ms, int64_t *failed_after,
                                   int64_t *locked_until_ms)
{
    int64_t n = failed_before < 0 ? 1 : failed_before + 1;
    if (n >= CT_HTTP_LOGIN_MAX_FAILURES) {
        /* The count starts again: after the lock, CT_HTTP_LOGIN_MAX_FAILURES
         * more attempts, not one. */
        *failed_after = 0;
        *locked_until_ms = t_ms + CT_HTTP_LOGIN_LOCK_MS;
    } else {
        *failed_after = n;
        *locked_until_ms = 0;
    }
}

/* ---- login and logout --------------------------------------------------------------------- */

static int audit_login(ct_store *st, const char *action, const char *name, const char *role, const char *patient,
                       const char *client, const char *request_id, int outcome, const char *why, const char *detail,
                       ct_error *err)
{
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor.name = name && *name ? name : "unknown";
    e.actor.role = role && *role ? role : "unknown";
    e.actor.client = client ? client : "";
    e.action = action;
    e.resource_type = "";
    e.resource_id = "";
    e.patient = patient ? patient : "";
    e.outcome = outcome;
    e.outcome_desc = why ? why : "";
    e.request_id = request_id ? request_id : "";
    e.detail = detail;
    return ct_audit_append(st, &e, NULL, err);
}

static int name_syntax_ok(const char *s)
{
    size_t n = s ? strnlen(s, CT_STORE_USER_NAME_MAX + 1) : 0;
    if (n == 0 || n > CT_STORE_USER_NAME_MAX || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

static int same_params(const ct_store_user *u, const ct_http_kdf_params *p)
{
    return strcmp(u->kdf, p->kdf) == 0 && u->kdf_cost == p->cost && u->kdf_block == p->block &&
           u->kdf_parallel == p->parallel;
}

/* The KDF work of a login that cannot succeed (unknown or disabled user):
 * the same parameters as a real check, on a salt nobody has. */
static void decoy_hash(const ct_http_kdf_params *p, const char *pw, size_t n, ct_http_limiter *gate)
{
    static const unsigned char salt[16] = "cardiotwin-decoy";
    unsigned char h[32];
    ct_http_kdf_gate_enter(gate);
    ct_http_password_hash(p, pw, n > CT_HTTP_PASSWORD_MAX ? CT_HTTP_PASSWORD_MAX : n, salt, sizeof salt, h, NULL);
    ct_http_kdf_gate_leave(gate);
    OPENSSL_cleanse(h, sizeof h);
}

static int refuse(ct_store *st, ct_http_login_result *out, const char *name, const char *role, const char *client,
                  const char *request_id, const char *why, ct_error *err)
{
    out->outcome = CT_HTTP_LOGIN_REFUSED;
    return audit_login(st, "login", name, role, NULL, client, request_id, CT_AUDIT_OUTCOME_SERIOUS_FAILURE, why, NULL,
                       err);
}

int ct_http_login(ct_store *st, const char *name, const char *password, size_t n, const char *client,
                  const char *request_id, int64_t t_ms, const ct_http_kdf_params *kdf, ct_http_limiter *gate,
                  ct_http_login_result *out, ct_error *err)
{
    memset(out, 0, sizeof *out);
    if (!st || !password)
        return ct_error_set(err, CT_EINVAL, "ct_http_login: missing argument");
    ct_http_kdf_params def;
    if (!kdf) {
        ct_http_kdf_default(&def);
        kdf = &def;
    }
    if (t_ms <= 0)
        t_ms = now_ms();
    /* A name that cannot exist is recorded as "unknown": it may well be a
     * password typed in the wrong field. */
    const char *shown = name_syntax_ok(name) ? name : "unknown";

    ct_store_user u;
    ct_error gerr = {0};
    int g = name_syntax_ok(name) ? ct_store_user_get_by_name(st, name, &u, &gerr) : CT_ENOTFOUND;
    if (g != CT_OK && g != CT_ENOTFOUND)
        return ct_error_set(err, g, "%s", gerr.msg);
    if (g == CT_ENOTFOUND) {
        /* An unknown name locks like a real one (in memory: a bucket of
         * CT_HTTP_LOGIN_MAX_FAILURES attempts refilled one per lock
         * period), or the lockout would tell which names exist. */
        char key[96];
        snprintf(key, sizeof key, "nouser:%s", shown);
        int64_t retry = 0;
        if (!ct_http_limiter_take(gate, key, 1000.0 / (double)CT_HTTP_LOGIN_LOCK_MS, CT_HTTP_LOGIN_MAX_FAILURES,
                                  ct_http_now_us(), &retry, NULL)) {
            out->outcome = CT_HTTP_LOGIN_LOCKED;
            out->retry_after_ms = retry;
            return audit_login(st, "login", shown, NULL, NULL, client, request_id, CT_AUDIT_OUTCOME_SERIOUS_FAILURE,
                               "login refused: no such user (attempts throttled)", NULL, err);
        }
    }
    if (g == CT_ENOTFOUND || u.disabled_ms > 0) {
        decoy_hash(kdf, password, n, gate);
        return refuse(st, out, shown, g == CT_OK ? u.role : NULL, client, request_id,
                      g == CT_OK ? "login refused: the user is disabled" : "login refused: no such user", err);
    }
    if (u.locked_until_ms > t_ms) {
        out->outcome = CT_HTTP_LOGIN_LOCKED;
        out->retry_after_ms = u.locked_until_ms - t_ms;
        return audit_login(st, "login", u.name, u.role, u.patient, client, request_id,
                           CT_AUDIT_OUTCOME_SERIOUS_FAILURE, "login refused: the account is locked", NULL, err);
    }
    if (n > CT_HTTP_PASSWORD_MAX) {
        decoy_hash(kdf, password, n, gate);
        n = 0; /* never matches: no stored password is this long */
    }
    int match = 0;
    ct_http_kdf_gate_enter(gate);
    int rc = n > 0 ? ct_http_password_check(&u, password, n, &match, err) : CT_OK;
    ct_http_kdf_gate_leave(gate);
    if (rc != CT_OK)
        return rc;
    /* A password stored with other parameters is re-hashed now, while the
     * password is at hand (before the write lock: the KDF is slow). */
    ct_store_user rehash;
    int do_rehash = match && !same_params(&u, kdf);
    if (do_rehash) {
        memset(&rehash, 0, sizeof rehash);
        rehash.id = u.id;
        snprintf(rehash.name, sizeof rehash.name, "%s", u.name);
        snprintf(rehash.kdf, sizeof rehash.kdf, "%s", kdf->kdf);
        rehash.kdf_cost = kdf->cost;
        rehash.kdf_block = kdf->block;
        rehash.kdf_parallel = kdf->parallel;
        rehash.salt_len = 16;
        ct_http_kdf_gate_enter(gate);
        int h = RAND_bytes(rehash.salt, 16) == 1
                    ? ct_http_password_hash(kdf, password, n, rehash.salt, 16, rehash.hash, NULL)
                    : CT_EIO;
        ct_http_kdf_gate_leave(gate);
        do_rehash = h == CT_OK;
    }

    if ((rc = ct_store_begin(st, err)) != CT_OK)
        return rc;
    /* Read again under the write lock: another worker may have counted a
     * failure, locked the account or changed the password meanwhile. */
    ct_store_user cur;
    rc = ct_store_user_get(st, u.id, &cur, err);
    if (rc == CT_OK && (cur.disabled_ms > 0 || CRYPTO_memcmp(cur.hash, u.hash, 32) != 0))
        match = 0;
    if (rc == CT_OK && cur.locked_until_ms > t_ms) {
        out->outcome = CT_HTTP_LOGIN_LOCKED;
        out->retry_after_ms = cur.locked_until_ms - t_ms;
        rc = audit_login(st, "login", cur.name, cur.role, cur.patient, client, request_id,
                         CT_AUDIT_OUTCOME_SERIOUS_FAILURE, "login refused: the account is locked", NULL, err);
    } else if (rc == CT_OK && match) {
        ct_store_session *s = &out->session;
        memset(s, 0, sizeof *s);
        unsigned char hash[32];
        if (new_secret(out->cookie) != 0 || new_secret(s->csrf) != 0 ||
            ct_http_token_hash(out->cookie, CT_HTTP_SECRET_LEN, hash) != 0) {
            rc = ct_error_set(err, CT_EIO, "OpenSSL gave no random bytes for a session");
        } else {
            memcpy(s->cookie_sha256, hash, 32);
            s->user_id = cur.id;
            snprintf(s->client, sizeof s->client, "%s", client ? client : "");
            s->created_ms = t_ms;
            s->last_seen_ms = t_ms;
            s->idle_ms = CT_HTTP_SESSION_IDLE_MS;
            s->expires_ms = t_ms + CT_HTTP_SESSION_MAX_MS;
            rc = ct_store_session_insert(st, s, err);
        }
        if (rc == CT_OK && do_rehash)
            rc = ct_store_user_set_password(st, &rehash, cur.password_ms, err);
        if (rc == CT_OK)
            rc = ct_store_user_set_login_state(st, cur.id, 0, 0, t_ms, err);
        if (rc == CT_OK) {
            ct_audit_detail d;
            ct_audit_detail_init(&d);
            ct_audit_detail_int(&d, "session_id", s->id);
            if (do_rehash)
                ct_audit_detail_str(&d, "rehashed", kdf->kdf);
            rc = audit_login(st, "login", cur.name, cur.role, cur.patient, client, request_id,
                             CT_AUDIT_OUTCOME_SUCCESS, "", ct_audit_detail_json(&d), err);
        }
        if (rc == CT_OK) {
            out->outcome = CT_HTTP_LOGIN_OK;
            out->user = cur;
        }
    } else if (rc == CT_OK) {
        int64_t failed = 0, locked = 0;
        ct_http_lockout_after_failure(cur.failed_count, t_ms, &failed, &locked);
        rc = ct_store_user_set_login_state(st, cur.id, failed, locked, 0, err);
        if (rc == CT_OK)
            rc = audit_login(st, "login", cur.name, cur.role, cur.patient, client, request_id,
                             CT_AUDIT_OUTCOME_SERIOUS_FAILURE,
                             cur.disabled_ms > 0 ? "login refused: the user is disabled"
                                                 : "login refused: wrong password",
                             NULL, err);
        if (rc == CT_OK && locked) {
            char why[160], until[32];
            ct_audit_format_time(locked, until, sizeof until);
            snprintf(why, sizeof why, "account locked until %s after %d failed logins in a row", until,
                     CT_HTTP_LOGIN_MAX_FAILURES);
            rc = audit_login(st, "login", cur.name, cur.role, cur.patient, client, request_id,
                             CT_AUDIT_OUTCOME_SERIOUS_FAILURE, why, NULL, err);
        }
        out->outcome = CT_HTTP_LOGIN_REFUSED;
    }
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK) {
        ct_store_rollback(st);
        OPENSSL_cleanse(out, sizeof *out);
    }
    if (do_rehash)
        OPENSSL_cleanse(&rehash, sizeof rehash);
    return rc;
}

int ct_http_logout(ct_store *st, int64_t session_id, const char *name, const char *role, const char *patient,
                   const char *client, const char *request_id, ct_error *err)
{
    if (!st || !name || !role)
        return ct_error_set(err, CT_EINVAL, "ct_http_logout: missing argument");
    int rc = ct_store_begin(st, err);
    if (rc != CT_OK)
        return rc;
    int ended = 0;
    rc = ct_store_session_end(st, session_id, 0, "logout", &ended, err);
    if (rc == CT_OK && ended) {
        ct_audit_detail d;
        ct_audit_detail_init(&d);
        ct_audit_detail_int(&d, "session_id", session_id);
        rc = audit_login(st, "logout", name, role, patient, client, request_id,
                         CT_AUDIT_OUTCOME_SUCCESS, "", ct_audit_detail_json(&d), err);
    }
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK)
        ct_store_rollback(st);
    return rc;
}

/* ---- checking a cookie (for auth.c) ------------------------------------------------------- */

ct_http_auth_result ct_http_session_check(ct_http_req *req, const char *cookie, const char **why)
{
    static const char *const unknown = "the session is not one this server opened; log in again";
    if (!ct_http_secret_well_formed(cookie, strlen(cookie))) {
        *why = unknown;
        return CT_HTTP_AUTH_INVALID;
    }
    unsigned char hash[32];
    if (ct_http_token_hash(cookie, CT_HTTP_SECRET_LEN, hash) != 0) {
        *why = "the server could not check the session";
        return CT_HTTP_AUTH_UNAVAILABLE;
    }
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != CT_OK) {
        OPENSSL_cleanse(hash, sizeof hash);
        if (err.code != CT_EUNSUPPORTED)
            ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: session check: %s", req->request_id, err.msg);
        *why = "the server cannot check sessions now: its database is not available";
        return CT_HTTP_AUTH_UNAVAILABLE;
    }
    ct_store_session s;
    ct_store_user u;
    int rc = ct_store_session_find_hash(st, hash, &s, &u, &err);
    OPENSSL_cleanse(hash, sizeof hash);
    if (rc == CT_ENOTFOUND) {
        *why = unknown;
        return CT_HTTP_AUTH_INVALID;
    }
    if (rc != CT_OK) {
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: session check: %s", req->request_id, err.msg);
        *why = "the server could not check the session; try again";
        return CT_HTTP_AUTH_UNAVAILABLE;
    }
    ct_http_caller *c = &req->caller;
    /* Named even when refused, for the audit of the refusal (router.c). */
    snprintf(c->refused_name, sizeof c->refused_name, "%s", u.name);
    snprintf(c->refused_role, sizeof c->refused_role, "%s", u.role);
    int64_t now = now_ms();
    if (s.ended_ms > 0) {
        *why = "the session has ended; log in again";
        return CT_HTTP_AUTH_INVALID;
    }
    if (u.disabled_ms > 0) {
        *why = "the user is disabled";
        return CT_HTTP_AUTH_INVALID;
    }
    if (now >= s.expires_ms || now - s.last_seen_ms > s.idle_ms) {
        *why = "the session has expired; log in again";
        return CT_HTTP_AUTH_INVALID;
    }
    int bound = u.patient[0] != '\0';
    if (ct_http_role_scopes(u.role, bound, c->scopes, sizeof c->scopes) != 0) {
        *why = "the user's role grants nothing here";
        return CT_HTTP_AUTH_INVALID;
    }
    c->refused_name[0] = c->refused_role[0] = '\0';
    snprintf(c->subject, sizeof c->subject, "%s", u.name);
    snprintf(c->role, sizeof c->role, "%s", u.role);
    c->authenticated = 1;
    c->token_id = 0;
    c->session_id = s.id;
    snprintf(c->csrf, sizeof c->csrf, "%s", s.csrf);
    c->session_expires_ms = s.expires_ms;
    snprintf(c->patient, sizeof c->patient, "%s", u.patient);
    if (s.last_seen_ms <= now - SESSION_TOUCH_INTERVAL_MS &&
        ct_store_session_touch(st, s.id, now, SESSION_TOUCH_INTERVAL_MS, &err) != CT_OK)
        ct_http_log(req->srv, CT_HTTP_LOG_WARNING, "request %s: recording the use of a session of %s: %s",
                    req->request_id, u.name, err.msg);
    return CT_HTTP_AUTH_OK;
}

/* ---- handlers ------------------------------------------------------------------------------ */

static const char *client_of(const ct_http_req *req)
{
    return req->ri && req->ri->remote_addr[0] ? req->ri->remote_addr : "";
}

static int send_too_many(ct_http_req *req, int64_t retry_ms, const char *message)
{
    char secs[24];
    snprintf(secs, sizeof secs, "%lld", (long long)((retry_ms + 999) / 1000 > 0 ? (retry_ms + 999) / 1000 : 1));
    ct_http_header h[] = {{"Retry-After", secs}};
    ct_http_resp head = {.status = 429, .headers = h, .n_headers = 1};
    return ct_http_send_error_resp(req, &head, message);
}

/* {"user","role","patient","csrf","expires_ms","idle_timeout_ms"}, the
 * answer of a login and of GET /auth/session. */
static char *session_json(const char *user, const char *role, const char *patient, const char *csrf,
                          int64_t expires_ms)
{
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "user", user, "role", role, "csrf", csrf, "expires_ms",
                          (json_int_t)expires_ms, "idle_timeout_ms", (json_int_t)CT_HTTP_SESSION_IDLE_MS);
    if (o && patient && *patient)
        json_object_set_new(o, "patient", json_string(patient));
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

int ct_http_handle_login(ct_http_req *req)
{
    ct_http_server *srv = req->srv;
    int64_t retry = 0;
    char key[96];
    snprintf(key, sizeof key, "login:%s", client_of(req));
    if (!ct_http_limiter_take(srv->limiter, key, CT_HTTP_LOGIN_PER_MIN / 60.0, CT_HTTP_LOGIN_BURST, ct_http_now_us(),
                              &retry, NULL))
        return send_too_many(req, retry, "too many login attempts from this address; wait and try again");
    /* JSON only: a cross-site HTML form can post form encodings and text,
     * never application/json, so a login cannot be forced from elsewhere. */
    const char *ctype = mg_get_header(req->conn, "Content-Type");
    if (!ctype || strncasecmp(ctype, "application/json", 16) != 0 || (ctype[16] && ctype[16] != ';' && ctype[16] != ' '))
        return ct_http_send_error(req, 415, "send the login as application/json: {\"username\":...,\"password\":...}");
    if (req->ri->content_length > LOGIN_BODY_MAX) {
        ct_http_resp head = {.status = 413, .close = 1};
        return ct_http_send_error_resp(req, &head, "a login body is at most 4096 bytes");
    }
    char *body = NULL;
    size_t len = 0;
    int rc = ct_http_read_body(req, &body, &len);
    if (rc == CT_ELIMIT || (rc == CT_OK && len > LOGIN_BODY_MAX)) {
        free(body);
        ct_http_resp head = {.status = 413, .close = 1};
        return ct_http_send_error_resp(req, &head, "a login body is at most 4096 bytes");
    }
    if (rc != CT_OK) {
        free(body);
        return ct_http_send_error(req, 400, "the login body could not be read");
    }
    json_error_t jerr;
    json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    OPENSSL_cleanse(body, len);
    free(body);
    const char *name = NULL, *password = NULL;
    size_t pw_len = 0;
    if (o && json_is_object(o)) {
        json_t *jn = json_object_get(o, "username"), *jp = json_object_get(o, "password");
        if (json_is_string(jn) && json_is_string(jp)) {
            name = json_string_value(jn);
            password = json_string_value(jp);
            pw_len = json_string_length(jp);
        }
    }
    if (!name || !password || strlen(password) != pw_len) {
        json_decref(o);
        return ct_http_send_error(req, 400, "the login body must be {\"username\":\"...\",\"password\":\"...\"}");
    }
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != CT_OK) {
        json_decref(o);
        return ct_http_send_error(req, 503, "the server cannot check logins now: its database is not available");
    }
    ct_http_login_result res;
    rc = ct_http_login(st, name, password, pw_len, client_of(req), req->request_id, 0, NULL, srv->limiter, &res, &err);
    /* jansson holds the password in the string's buffer: wipe it. */
    json_t *jp = json_object_get(o, "password");
    if (jp && json_string_length(jp) > 0)
        OPENSSL_cleanse((char *)json_string_value(jp), json_string_length(jp));
    json_decref(o);
    if (rc != CT_OK) {
        ct_http_log(srv, CT_HTTP_LOG_ERROR, "request %s: login: %s", req->request_id, err.msg);
        return ct_http_send_error(req, 503, "the login could not be recorded; try again");
    }
    if (res.outcome == CT_HTTP_LOGIN_LOCKED) {
        char msg[160];
        snprintf(msg, sizeof msg, "too many failed logins: the account is locked for %lld more minutes",
                 (long long)((res.retry_after_ms + 59999) / 60000));
        return send_too_many(req, res.retry_after_ms, msg);
    }
    if (res.outcome != CT_HTTP_LOGIN_OK) {
        /* One message whatever the reason, so that it tells nothing about
         * which names exist. */
        ct_http_resp head = {.status = 401, .www_authenticate = "Bearer realm=\"cardiotwin\""};
        return ct_http_send_error_resp(req, &head, "wrong user name or password");
    }
    snprintf(req->caller.subject, sizeof req->caller.subject, "%s", res.user.name);
    char *json = session_json(res.user.name, res.user.role, res.user.patient, res.session.csrf,
                              res.session.expires_ms);
    char cookie[160];
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=%lld",
             CT_HTTP_SESSION_COOKIE, res.cookie, (long long)(CT_HTTP_SESSION_MAX_MS / 1000));
    OPENSSL_cleanse(res.cookie, sizeof res.cookie);
    ct_http_header h[] = {{"Set-Cookie", cookie}};
    ct_http_resp r = {.status = 200,
                      .content_type = "application/json",
                      .body = json ? json : "{}",
                      .body_len = json ? strlen(json) : 2,
                      .headers = h,
                      .n_headers = 1};
    int sent = ct_http_send(req, &r);
    OPENSSL_cleanse(cookie, sizeof cookie);
    free(json);
    return sent;
}

/* 401 unless this request came with a session cookie (authorize() has
 * checked the session and, for logout, its CSRF token). */
static int no_session(ct_http_req *req)
{
    if (req->caller.session_id > 0)
        return 0;
    ct_http_resp head = {.status = 401, .www_authenticate = "Bearer realm=\"cardiotwin\""};
    return ct_http_send_error_resp(req, &head, "no session: this request was not made with a session cookie "
                                               "(log in with POST /auth/login)");
}

int ct_http_handle_session(ct_http_req *req)
{
    int st = no_session(req);
    if (st)
        return st;
    const ct_http_caller *c = &req->caller;
    char *json = session_json(c->subject, c->role, c->patient, c->csrf, c->session_expires_ms);
    int sent = json ? ct_http_send_json(req, 200, json) : ct_http_send_error(req, 500, "out of memory");
    free(json);
    return sent;
}

int ct_http_handle_logout(ct_http_req *req)
{
    int st = no_session(req);
    if (st)
        return st;
    ct_store *db = NULL;
    ct_error err = {0};
    const ct_http_caller *c = &req->caller;
    if (ct_http_store_acquire(req, &db, &err) != CT_OK ||
        ct_http_logout(db, c->session_id, c->subject, c->role, c->patient, client_of(req), req->request_id, &err) !=
            CT_OK) {
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: logout: %s", req->request_id, err.msg);
        return ct_http_send_error(req, 503, "the logout could not be recorded; try again");
    }
    ct_http_header h[] = {
        {"Set-Cookie", CT_HTTP_SESSION_COOKIE "=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"}};
    ct_http_resp r = {.status = 204, .headers = h, .n_headers = 1};
    return ct_http_send(req, &r);
}
