/* http room, credentials: who a request's bearer token or session cookie
 * belongs to. authorize() in router.c is the one caller of
 * ct_http_authenticate for routed requests and the one place routes'
 * scopes are compared with the caller's; this file turns an Authorization
 * header, or without one the ct_session cookie (sessions.c checks it), into
 * a ct_http_caller. A Bearer header wins over a cookie: a script that sends
 * a token means the token, whatever cookies the client also holds.
 *
 * The WebSocket feed calls ct_http_authenticate too, with a ct_http_req it
 * builds from the upgrade request where only conn, srv, ri and store are
 * set: this file reads nothing else (request_id may be empty, which only
 * shortens a log line), and the caller must return req->store to the pool
 * (ct_http_store_release) as the router does.
 *
 * The one idea: the token is hashed (SHA-256) and the hash is looked up in
 * the database through a unique index, on every request. The secret is
 * never compared byte by byte, so no timing reveals how much of a guess was
 * right (what the index walk reveals is about a hash nobody can invert),
 * and nothing is cached, so a revocation or an expiry takes effect at the
 * next request, on every worker, and in every server process sharing the
 * database. The price is one indexed SELECT per request on the connection
 * the request takes anyway, a few microseconds next to the TLS record it
 * arrived in; a cache would save that and add a window in which a revoked
 * token still works. The last use is written at most once a minute per
 * token (a conditional UPDATE), so a busy device costs one small write a
 * minute rather than one per Observation. */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cardiotwin/store.h"
#include "http_internal.h"

/* How often a token's last use is written. */
#define LAST_USE_INTERVAL_MS 60000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ct_http_auth_result ct_http_authenticate(ct_http_req *req, const char **why)
{
    static const char *const unknown = "the access token is not one this server issued (or it was mistyped)";
    *why = "";
    const char *h = mg_get_header(req->conn, "Authorization");
    if (!h) {
        char cookie[CT_HTTP_SECRET_LEN + 2];
        int got = ct_http_cookie_get(mg_get_header(req->conn, "Cookie"), CT_HTTP_SESSION_COOKIE, cookie, sizeof cookie);
        if (got == 0)
            return CT_HTTP_AUTH_NONE;
        if (got < 0) {
            /* Two session cookies (or one too long to be ours): which one
             * the client meant is not ours to guess. */
            *why = "the request carries a session cookie this server did not set; log in again";
            return CT_HTTP_AUTH_INVALID;
        }
        ct_http_auth_result r = ct_http_session_check(req, cookie, why);
        OPENSSL_cleanse(cookie, sizeof cookie);
        return r;
    }
    /* RFC 6750 2.1: the scheme is case-insensitive, then one or more spaces. */
    if (strncasecmp(h, "Bearer ", 7) != 0) {
        *why = "the Authorization header must be 'Bearer TOKEN'";
        return CT_HTTP_AUTH_INVALID;
    }
    const char *t = h + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    /* Only a token of our shape is worth a database probe. */
    if (!ct_http_token_well_formed(t, n)) {
        *why = unknown;
        return CT_HTTP_AUTH_INVALID;
    }
    unsigned char hash[32];
    if (ct_http_token_hash(t, n, hash) != 0) {
        *why = "the server could not check the access token";
        return CT_HTTP_AUTH_UNAVAILABLE;
    }
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != CT_OK) {
        OPENSSL_cleanse(hash, sizeof hash);
        if (err.code != CT_EUNSUPPORTED)
            ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: token check: %s", req->request_id, err.msg);
        *why = "the server cannot check access tokens now: its database is not available";
        return CT_HTTP_AUTH_UNAVAILABLE;
    }
    ct_store_token tok;
    int rc = ct_store_token_find_hash(st, hash, &tok, &err);
    OPENSSL_cleanse(hash, sizeof hash);
    if (rc == CT_ENOTFOUND) {
        *why = unknown;
        return CT_HTTP_AUTH_INVALID;
    }
    if (rc != CT_OK) {
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: token check: %s", req->request_id, err.msg);
        *why = "the server could not check the access token; try again";
        return CT_HTTP_AUTH_UNAVAILABLE;
    }
    int64_t now = now_ms();
    /* Named even when refused, for the audit of the refusal (router.c). */
    snprintf(req->caller.refused_name, sizeof req->caller.refused_name, "%s", tok.name);
    snprintf(req->caller.refused_role, sizeof req->caller.refused_role, "%s", tok.role);
    switch (ct_http_token_state_at(&tok, now)) {
    case CT_HTTP_TOKEN_REVOKED:
        *why = "the access token was revoked; ask an administrator for a new one";
        return CT_HTTP_AUTH_INVALID;
    case CT_HTTP_TOKEN_EXPIRED:
        *why = "the access token has expired; ask an administrator for a new one";
        return CT_HTTP_AUTH_INVALID;
    case CT_HTTP_TOKEN_ACTIVE:
        break;
    }
    ct_http_caller *c = &req->caller;
    c->refused_name[0] = c->refused_role[0] = '\0';
    c->authenticated = 1;
    c->token_id = tok.id;
    snprintf(c->subject, sizeof c->subject, "%s", tok.name);
    snprintf(c->role, sizeof c->role, "%s", tok.role);
    snprintf(c->scopes, sizeof c->scopes, "%s", tok.scopes);
    snprintf(c->patient, sizeof c->patient, "%s", tok.patient);
    if (tok.last_used_ms <= now - LAST_USE_INTERVAL_MS) {
        /* A failure here costs the record of a use, never the request. */
        if (ct_store_token_touch(st, tok.id, now, LAST_USE_INTERVAL_MS, NULL, &err) != CT_OK)
            ct_http_log(req->srv, CT_HTTP_LOG_WARNING, "request %s: recording the use of token %s: %s",
                        req->request_id, tok.name, err.msg);
    }
    return CT_HTTP_AUTH_OK;
}
