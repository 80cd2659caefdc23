/* http room, routing: civetweb hands every request to ct_http_dispatch,
 * which walks one static table of (methods, path, scope, handler). The
 * order of the steps is the design: check the request line and the body
 * size, find the route (404, or 405 with Allow when the path exists but the
 * method does not), decide who is calling and whether they hold the
 * route's scope (authorize, the single place for it), run the handler,
 * write the access record. A handler therefore never sees a request it did
 * not ask for or a caller nobody checked.
 *
 * The table is searched linearly, O(routes) string compares per request:
 * next to decrypting a TLS record that is noise until there are hundreds
 * of routes, when a trie on path segments would pay. Adding an endpoint is
 * one line here plus its handler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "dash_internal.h"
#include "fhir_internal.h"
#include "http_internal.h"

/* A path segment "*" matches one non-empty segment. Within a path the
 * first route whose path and method match wins, so "_search" and "_history"
 * come before the "*" that would otherwise take them as ids. */
#define GET_HEAD (CT_HTTP_GET | CT_HTTP_HEAD)
#define FHIR_TYPE_ROUTES(T)                                                                  \
    {GET_HEAD, "/fhir/" T, 0, T ".s", ct_http_handle_fhir_search},                           \
    {CT_HTTP_POST, "/fhir/" T, 0, T ".c", ct_http_handle_fhir_create},                       \
    {CT_HTTP_POST | GET_HEAD, "/fhir/" T "/_search", 0, T ".s", ct_http_handle_fhir_search}, \
    {GET_HEAD, "/fhir/" T "/*", 0, T ".r", ct_http_handle_fhir_read},                        \
    {CT_HTTP_PUT, "/fhir/" T "/*", 0, T ".u", ct_http_handle_fhir_update},                   \
    {CT_HTTP_DELETE, "/fhir/" T "/*", 0, T ".d", ct_http_handle_fhir_delete},                \
    {GET_HEAD, "/fhir/" T "/*/_history", 0, T ".r", ct_http_handle_fhir_history},            \
    {GET_HEAD, "/fhir/" T "/*/_history/*", 0, T ".r", ct_http_handle_fhir_vread}

/* A route's scope is "Type.p": the resource type and the one SMART
 * permission it needs, which a patient/, user/ or system/ scope may grant
 * (scopes.c). NULL: public: the health check, the FHIR and SMART
 * discovery documents and the login, none of which touches patient data. */
static const ct_http_route routes[] = {
    {GET_HEAD, "/healthz", 0, NULL, ct_http_handle_healthz},
    {GET_HEAD, "/fhir/metadata", 0, NULL, ct_http_handle_metadata},
    /* SMART App Launch 2.0: the document sits at the FHIR base URL +
     * "/.well-known/smart-configuration"; the server root has it too, where
     * tools that know only the origin look. */
    {GET_HEAD, "/.well-known/smart-configuration", 0, NULL, ct_http_handle_smart_configuration},
    {GET_HEAD, "/fhir/.well-known/smart-configuration", 0, NULL, ct_http_handle_smart_configuration},
    /* The dashboard's login (sessions.c): public, since it is where a
     * credential is obtained; the session and logout need the session. */
    {CT_HTTP_POST, "/auth/login", 0, NULL, ct_http_handle_login},
    {GET_HEAD, "/auth/session", 0, CT_HTTP_SCOPE_AUTHENTICATED, ct_http_handle_session},
    {CT_HTTP_POST, "/auth/logout", 0, CT_HTTP_SCOPE_AUTHENTICATED, ct_http_handle_logout},
    /* Bundles: each entry is checked against its own scope by the handler
     * (ct_http_caller_grant); "/fhir/" is where fhir-kit-client and others
     * post them. */
    {CT_HTTP_POST, "/fhir", 0, CT_HTTP_SCOPE_AUTHENTICATED, ct_http_handle_fhir_bundle},
    {CT_HTTP_POST, "/fhir/", 0, CT_HTTP_SCOPE_AUTHENTICATED, ct_http_handle_fhir_bundle},
    FHIR_TYPE_ROUTES("Patient"),
    FHIR_TYPE_ROUTES("Observation"),
    FHIR_TYPE_ROUTES("DiagnosticReport"),
    FHIR_TYPE_ROUTES("Device"),
    FHIR_TYPE_ROUTES("Provenance"),
    /* The dashboard (docs/dashboard.md): its static files are public (no
     * patient data); its API needs the scopes of the data it shows. */
    {GET_HEAD, "/", 0, NULL, ct_http_handle_static},
    {GET_HEAD, "/js", 1, NULL, ct_http_handle_static},
    {GET_HEAD, "/css", 1, NULL, ct_http_handle_static},
    {GET_HEAD, "/vendor", 1, NULL, ct_http_handle_static},
    {GET_HEAD, "/api/sources", 0, "Observation.r", ct_http_handle_api_sources},
    {GET_HEAD, "/api/alerts", 0, "DiagnosticReport.r", ct_http_handle_api_alerts},
    {CT_HTTP_POST, "/api/alerts/*/acknowledge", 0, "DiagnosticReport.r", ct_http_handle_api_alert_ack},
    {GET_HEAD, "/api/strip", 0, "Observation.r", ct_http_handle_api_strip},
    {GET_HEAD, "/api/beats", 0, "Observation.r", ct_http_handle_api_beats},
    /* The audit log, read-only: POST, PUT and DELETE find the path but no
     * method, and answer 405 (fhir_auditevent.c). */
    {GET_HEAD, "/fhir/AuditEvent", 0, "AuditEvent.s", ct_http_handle_audit_search},
    {CT_HTTP_POST | GET_HEAD, "/fhir/AuditEvent/_search", 0, "AuditEvent.s", ct_http_handle_audit_search},
    {GET_HEAD, "/fhir/AuditEvent/*", 0, "AuditEvent.r", ct_http_handle_audit_read},
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const struct {
    const char *name;
    unsigned bit;
} methods[] = {
    {"GET", CT_HTTP_GET},       {"HEAD", CT_HTTP_HEAD},     {"POST", CT_HTTP_POST},
    {"PUT", CT_HTTP_PUT},       {"DELETE", CT_HTTP_DELETE}, {"PATCH", CT_HTTP_PATCH},
    {"OPTIONS", CT_HTTP_OPTIONS},
};
#define N_METHODS (sizeof methods / sizeof methods[0])

static unsigned method_bit(const char *m)
{
    for (size_t i = 0; m && i < N_METHODS; i++)
        if (strcmp(m, methods[i].name) == 0)
            return methods[i].bit;
    return 0;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* "/fhir" matches "/fhir" and, for a prefix route, "/fhir/..." but never
 * "/fhirx". Returns what follows the route path, or NULL. */
static const char *match_path(const ct_http_route *r, const char *path)
{
    const char *pat = r->path, *p = path;
    while (*pat) {
        if (pat[0] == '*' && (pat[1] == '/' || pat[1] == '\0') && pat > r->path && pat[-1] == '/') {
            size_t seg = strcspn(p, "/");
            if (seg == 0)
                return NULL;
            p += seg;
            pat++;
            continue;
        }
        if (*pat != *p)
            return NULL;
        pat++;
        p++;
    }
    if (*p == '\0')
        return p;
    if (r->prefix && *p == '/')
        return p;
    return NULL;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes the path (civetweb is told not to, see server.c) and
 * refuses what would make two different requests look alike to a route:
 * a bad escape, an encoded NUL (it would cut the path short), an encoded
 * "/" (no resource name holds one) and dot segments that only appear once
 * decoded (civetweb already removed the literal ones). Returns a malloc'd
 * copy, or NULL. */
static char *decode_path(const char *raw)
{
    size_t n = strlen(raw);
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = raw[i];
        if (ch == '%') {
            int hi = hex_digit(raw[i + 1]);
            int lo = hi >= 0 ? hex_digit(raw[i + 2]) : -1;
            if (lo < 0)
                goto bad;
            ch = (char)(hi * 16 + lo);
            if (ch == '\0' || ch == '/')
                goto bad;
            i += 2;
        }
        d[j++] = ch;
    }
    d[j] = '\0';
    for (const char *p = d; (p = strchr(p, '/')) != NULL;) {
        const char *name = p + 1;
        size_t len = strcspn(name, "/");
        if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
            goto bad;
        p = name;
    }
    return d;
bad:
    free(d);
    return NULL;
}

static void allow_header(unsigned bits, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_METHODS; i++)
        if (bits & methods[i].bit) {
            int w = snprintf(buf + used, cap - used, "%s%s", used ? ", " : "", methods[i].name);
            if (w < 0 || (size_t)w >= cap - used)
                break;
            used += (size_t)w;
        }
}

/* ---- refused requests in the audit log ----------------------------------------------------
 * A refusal (401, 403) is written to the audit log, action as the route
 * would have been (read, search, create ...), outcome 8 (serious failure),
 * with the status, method and path in its detail, so that an auditor sees
 * who tried what. What is written is bounded, because a refusal costs the
 * client nothing and an audit entry is a write transaction that is kept
 * for ever:
 *  - a named caller (a valid credential refused 403 or a CSRF check, or a
 *    revoked or expired token, an ended session): a bucket per name, 20 at
 *    once then 1 a second;
 *  - an anonymous one (no credential, or one this server never issued):
 *    5 per client address at once then 1 a minute, and 60 at once then 1 a
 *    second for all addresses together.
 * Refusals over the bound are counted and the next entry written for that
 * bucket says how many were left out ("suppressed"); every one of them is
 * still in the access log. */
#define REFUSED_NAMED_RATE 1.0
#define REFUSED_NAMED_BURST 20.0
#define REFUSED_ADDR_RATE (1.0 / 60.0)
#define REFUSED_ADDR_BURST 5.0
#define REFUSED_ALL_RATE 1.0
#define REFUSED_ALL_BURST 60.0

/* A route's "Type.p" scope, split: the type into type (cap bytes) and the
 * permission letter returned; 0 (and type "") for a public route, one any
 * authenticated caller may use, or a type too long for type. */
static char route_scope(const ct_http_route *r, char *type, size_t cap)
{
    type[0] = '\0';
    const char *scope = r ? r->scope : NULL;
    if (!scope || strcmp(scope, CT_HTTP_SCOPE_AUTHENTICATED) == 0)
        return 0;
    const char *dot = strrchr(scope, '.');
    if (!dot || (size_t)(dot - scope) >= cap)
        return 0;
    snprintf(type, cap, "%.*s", (int)(dot - scope), scope);
    return dot[1];
}

static const char *refused_action(const ct_http_req *req)
{
    char type[CT_FHIR_TYPE_MAX + 1];
    switch (route_scope(req->route, type, sizeof type)) {
    case 'c': return "create";
    case 'r': return "read";
    case 'u': return "update";
    case 'd': return "delete";
    case 's': return "search";
    default: break;
    }
    if (req->method_bit & CT_HTTP_PUT)
        return "update";
    if (req->method_bit & CT_HTTP_DELETE)
        return "delete";
    if (req->method_bit & CT_HTTP_PATCH)
        return "patch";
    if (req->method_bit & CT_HTTP_POST)
        return "create";
    return "read";
}

static void audit_refusal(ct_http_req *req, int status, const char *name, const char *role, const char *why)
{
    ct_http_server *srv = req->srv;
    const char *addr = req->ri && req->ri->remote_addr[0] ? req->ri->remote_addr : "";
    int64_t now = ct_http_now_us(), suppressed = 0, more = 0;
    char key[192];
    if (name && *name) {
        snprintf(key, sizeof key, "refused:%s", name);
        if (!ct_http_limiter_take(srv->limiter, key, REFUSED_NAMED_RATE, REFUSED_NAMED_BURST, now, NULL,
                                  &suppressed))
            return;
    } else {
        snprintf(key, sizeof key, "refused-anon:%s", addr);
        if (!ct_http_limiter_take(srv->limiter, key, REFUSED_ADDR_RATE, REFUSED_ADDR_BURST, now, NULL, &suppressed))
            return;
        if (!ct_http_limiter_take(srv->limiter, "refused-anon", REFUSED_ALL_RATE, REFUSED_ALL_BURST, now, NULL,
                                  &more))
            return;
        suppressed += more;
    }
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_http_store_acquire(req, &st, &err) != CT_OK)
        return; /* no database: nothing to write to (and the refusal says so) */
    char type[CT_FHIR_TYPE_MAX + 1];
    route_scope(req->route, type, sizeof type);
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_int(&d, "status", status);
    ct_audit_detail_str(&d, "method", req->method);
    ct_audit_detail_str(&d, "path", req->path ? req->path : "");
    if (suppressed > 0)
        ct_audit_detail_int(&d, "suppressed", suppressed);
    char desc[CT_AUDIT_OUTCOME_DESC_MAX + 1];
    snprintf(desc, sizeof desc, "refused %d: %.200s", status, why);
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor.name = name && *name ? name : "anonymous";
    e.actor.role = role && *role ? role : "unknown";
    e.actor.client = addr;
    e.action = refused_action(req);
    e.resource_type = type;
    e.resource_id = "";
    e.patient = req->caller.patient;
    e.outcome = CT_AUDIT_OUTCOME_SERIOUS_FAILURE;
    e.outcome_desc = desc;
    e.request_id = req->request_id;
    /* A detail too large (a path near its limit) drops the detail, never
     * the entry. */
    e.detail = ct_audit_detail_json(&d);
    if (ct_audit_append(st, &e, NULL, &err) != CT_OK)
        ct_http_log(srv, CT_HTTP_LOG_ERROR, "request %s: recording a refused request in the audit log: %s",
                    req->request_id, err.msg);
}

/* The caller's token bucket (per token or per session). 0 to go on, or
 * the 429 it sent. */
static int rate_limit(ct_http_req *req)
{
    const ct_http_options *opt = &req->srv->opt;
    if (opt->rate_limit_per_s < 0)
        return 0;
    char key[48];
    if (req->caller.token_id > 0)
        snprintf(key, sizeof key, "tok:%lld", (long long)req->caller.token_id);
    else if (req->caller.session_id > 0)
        snprintf(key, sizeof key, "ses:%lld", (long long)req->caller.session_id);
    else
        return 0;
    int64_t retry_ms = 0;
    if (ct_http_limiter_take(req->srv->limiter, key, opt->rate_limit_per_s, opt->rate_limit_burst, ct_http_now_us(),
                             &retry_ms, NULL))
        return 0;
    char secs[24], msg[200];
    snprintf(secs, sizeof secs, "%lld", (long long)((retry_ms + 999) / 1000 > 0 ? (retry_ms + 999) / 1000 : 1));
    snprintf(msg, sizeof msg, "too many requests for this credential (%.0f a second, %.0f at once); retry after %s s",
             opt->rate_limit_per_s, opt->rate_limit_burst, secs);
    ct_http_header h[] = {{"Retry-After", secs}};
    ct_http_resp head = {.status = 429, .headers = h, .n_headers = 1};
    return ct_http_send_error_resp(req, &head, msg);
}

/* Who is calling, and may they use this route? The only place that reads
 * credentials (ct_http_authenticate) and compares the caller's scopes with
 * route->scope. Returns 0 to go on, or the status it sent. Public routes
 * never read credentials: they touch no data, so there is nothing to
 * decide and no reason to look a token up. A route that names a scope
 * refuses a caller without a valid token or session (401: none, or one
 * that is unknown, revoked, expired or ended), a caller over its rate
 * (429), a request authenticated by the session cookie that may change
 * something (not GET or HEAD) without the session's X-CSRF-Token (403),
 * and a caller whose scopes do not grant it (403). A patient/ grant lets
 * the request through to the handler, which keeps it inside the patient's
 * compartment (compartment.c). Refusals go to the audit log, bounded
 * (audit_refusal). */
static int authorize(ct_http_req *req)
{
    memset(&req->caller, 0, sizeof req->caller);
    snprintf(req->caller.subject, sizeof req->caller.subject, "-");
    if (!req->route->scope)
        return 0;
    const char *why = "";
    ct_http_auth_result auth = ct_http_authenticate(req, &why);
    char named[128] = "", named_role[32] = "";
    if (auth != CT_HTTP_AUTH_OK) {
        /* A refused credential that names someone (revoked, expired,
         * ended) is recorded under that name; the caller stays anonymous. */
        snprintf(named, sizeof named, "%s", req->caller.refused_name);
        snprintf(named_role, sizeof named_role, "%s", req->caller.refused_role);
        memset(&req->caller, 0, sizeof req->caller);
        snprintf(req->caller.subject, sizeof req->caller.subject, "-");
    }
    if (auth == CT_HTTP_AUTH_UNAVAILABLE)
        return ct_http_send_error(req, 503, why);
    if (auth == CT_HTTP_AUTH_INVALID) {
        audit_refusal(req, 401, named, named_role, why);
        ct_http_resp head = {.status = 401,
                             .www_authenticate = "Bearer realm=\"cardiotwin\", error=\"invalid_token\""};
        return ct_http_send_error_resp(req, &head, why);
    }
    if (auth == CT_HTTP_AUTH_NONE) {
        audit_refusal(req, 401, "", "", "no credentials");
        /* RFC 6750 3.1: no error code when no credentials were sent. */
        ct_http_resp head = {.status = 401, .www_authenticate = "Bearer realm=\"cardiotwin\""};
        return ct_http_send_error_resp(req, &head,
                                       "this resource needs an access token: send Authorization: Bearer TOKEN "
                                       "(an administrator makes one with 'cardiotwin token create') or log in");
    }
    int limited = rate_limit(req);
    if (limited)
        return limited;
    const ct_http_caller *c = &req->caller;
    /* A browser attaches the cookie to any request to this origin, even
     * one another site's page makes it send; only a page of this origin can
     * know the CSRF token to put in a header. */
    if (c->session_id > 0 && !(req->method_bit & (CT_HTTP_GET | CT_HTTP_HEAD)) &&
        !ct_http_csrf_equal(mg_get_header(req->conn, "X-CSRF-Token"), c->csrf)) {
        static const char msg[] = "a request made with the session cookie that changes something must carry the "
                                  "session's CSRF token in X-CSRF-Token (GET /auth/session gives it)";
        audit_refusal(req, 403, c->subject, c->role, "missing or wrong X-CSRF-Token");
        return ct_http_send_error(req, 403, msg);
    }
    if (strcmp(req->route->scope, CT_HTTP_SCOPE_AUTHENTICATED) == 0)
        return 0;
    char type[CT_FHIR_TYPE_MAX + 1];
    unsigned perm = ct_http_perm_bit(route_scope(req->route, type, sizeof type));
    if (perm && type[0] && ct_http_caller_grant(req, type, perm) != CT_HTTP_GRANT_NONE)
        return 0;
    char need[300], msg[1200];
    ct_http_scope_describe(type, perm, need, sizeof need);
    snprintf(msg, sizeof msg, "the %s '%s' (role %s) does not allow this: it needs %s; it holds %s%s%s",
             c->session_id > 0 ? "user" : "access token", c->subject, c->role, need, c->scopes,
             c->patient[0] ? " for Patient/" : "", c->patient);
    audit_refusal(req, 403, c->subject, c->role, msg);
    ct_http_resp head = {.status = 403,
                         .www_authenticate = "Bearer realm=\"cardiotwin\", error=\"insufficient_scope\""};
    return ct_http_send_error_resp(req, &head, msg);
}

ct_http_grant ct_http_caller_grant(const ct_http_req *req, const char *type, unsigned perms)
{
    const ct_http_caller *c = &req->caller;
    if (!c->authenticated)
        return CT_HTTP_GRANT_NONE;
    ct_http_grant g = ct_http_scopes_grant(c->scopes, type, perms);
    /* A patient/ scope without a patient to bind it to grants nothing. */
    if (g == CT_HTTP_GRANT_PATIENT && !c->patient[0])
        return CT_HTTP_GRANT_NONE;
    return g;
}

/* X-Request-Id as the client sent it when it is a plain token, otherwise
 * one made here: it ties the access log, the audit log and the client's
 * own logs together. */
static void set_request_id(ct_http_req *req)
{
    const char *h = mg_get_header(req->conn, "X-Request-Id");
    size_t n = h ? strlen(h) : 0;
    int ok = n >= 1 && n < sizeof req->request_id && n <= 64;
    for (size_t i = 0; ok && i < n; i++) {
        char c = h[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
             c == '.' || c == ':';
    }
    if (ok) {
        memcpy(req->request_id, h, n + 1);
        return;
    }
    unsigned char r[12];
    if (RAND_bytes(r, sizeof r) != 1) {
        req->request_id[0] = '\0';
        return;
    }
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof r; i++) {
        req->request_id[2 * i] = hex[r[i] >> 4];
        req->request_id[2 * i + 1] = hex[r[i] & 15];
    }
    req->request_id[2 * sizeof r] = '\0';
}

static int route(ct_http_req *req)
{
    const ct_http_server *srv = req->srv;
    const struct mg_request_info *ri = req->ri;

    if (!req->path || req->path[0] != '/')
        return ct_http_send_error(req, 400, "malformed request path");
    if (ri->content_length > srv->opt.max_body_bytes) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body exceeds the limit of %lld bytes; send less at a time",
                 (long long)srv->opt.max_body_bytes);
        ct_http_resp head = {.status = 413, .close = 1};
        return ct_http_send_error_resp(req, &head, msg);
    }

    unsigned allowed = 0;
    for (size_t i = 0; i < N_ROUTES; i++) {
        const char *rest = match_path(&routes[i], req->path);
        if (!rest)
            continue;
        if (routes[i].methods & req->method_bit) {
            req->route = &routes[i];
            req->path_rest = rest;
            break;
        }
        allowed |= routes[i].methods;
    }
    if (!req->route) {
        if (!allowed && ct_http_is_fhir_path(req->path)) {
            ct_http_fhir_path fp;
            if (ct_http_fhir_path_parse(req->path, &fp) == 0 && fp.type[0] && !ct_fhir_supported_type(fp.type) &&
                strcmp(fp.type, "AuditEvent") != 0) {
                char msg[200];
                snprintf(msg, sizeof msg, "this server has no resource type %s; it serves Patient, Observation, "
                         "DiagnosticReport, Device and Provenance", fp.type);
                return ct_http_send_error(req, 404, msg);
            }
            return ct_http_send_error(req, 404, "no FHIR endpoint at this path (see GET /fhir/metadata)");
        }
        if (!allowed)
            return ct_http_send_error(req, 404, "no resource at this path");
        char allow[96];
        allow_header(allowed, allow, sizeof allow);
        ct_http_resp head = {.status = 405, .allow = allow};
        return ct_http_send_error_resp(req, &head, "method not allowed on this resource");
    }

    int st = authorize(req);
    if (st != 0)
        return st;
    return req->route->fn(req);
}

int ct_http_dispatch(struct mg_connection *conn, void *cbdata)
{
    ct_http_req req = {0};
    req.conn = conn;
    req.srv = cbdata;
    req.ri = mg_get_request_info(conn);
    req.start_us = now_us();
    if (!req.ri)
        return 500;
    req.method = req.ri->request_method ? req.ri->request_method : "-";
    req.method_bit = method_bit(req.ri->request_method);
    char *decoded = req.ri->local_uri ? decode_path(req.ri->local_uri) : NULL;
    req.path = decoded;
    req.query = req.ri->query_string;
    /* civetweb leaves content_length at -1 both without a body and for a
     * chunked one: Transfer-Encoding tells them apart. */
    const char *te = mg_get_header(conn, "Transfer-Encoding");
    req.unread_body = req.ri->content_length > 0 || (te && strcasecmp(te, "identity") != 0);
    snprintf(req.caller.subject, sizeof req.caller.subject, "-");
    set_request_id(&req);
    ct_http_tls_peer(&req);

    route(&req);
    ct_http_store_release(&req);
    if (req.status == 0) {
        /* A handler returned without answering: a bug, but the client
         * still deserves a response. */
        ct_http_log(req.srv, CT_HTTP_LOG_ERROR, "%s %s: handler sent no response", req.method,
                    req.route ? req.route->path : "?");
        ct_http_send_error(&req, 500, "internal error");
    }

    const ct_http_options *opt = &req.srv->opt;
    if (opt->on_access) {
        ct_http_access rec = {
            .remote_addr = req.ri->remote_addr,
            .remote_port = req.ri->remote_port,
            .method = req.method,
            .path = req.path ? req.path : req.ri->local_uri ? req.ri->local_uri : "-",
            .status = req.status,
            .body_bytes = req.body_bytes,
            .duration_us = now_us() - req.start_us,
            .subject = req.caller.subject,
            .client_cert_subject = req.peer_sha256[0] ? req.peer_subject : NULL,
            .client_cert_sha256 = req.peer_sha256[0] ? req.peer_sha256 : NULL,
        };
        opt->on_access(opt->log_user, &rec);
    }
    free(decoded);
    /* civetweb records this as the status of the request. */
    return req.status > 0 ? req.status : 500;
}
