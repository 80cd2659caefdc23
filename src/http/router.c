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

#include "http_internal.h"

static const ct_http_route routes[] = {
    {CT_HTTP_GET | CT_HTTP_HEAD, "/healthz", 0, NULL, ct_http_handle_healthz},
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
    size_t n = strlen(r->path);
    if (strncmp(path, r->path, n) != 0)
        return NULL;
    if (path[n] == '\0')
        return path + n;
    if (r->prefix && path[n] == '/')
        return path + n;
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

/* Who is calling, and may they use this route? The only place that will
 * read credentials (bearer tokens, dashboard sessions) and compare granted
 * scopes with route->scope. Returns 0 to go on, or the status it sent.
 * Until credentials exist every caller is anonymous, so a route that names
 * a scope is refused: failing closed is the only safe default. */
static int authorize(ct_http_req *req)
{
    memset(&req->caller, 0, sizeof req->caller);
    snprintf(req->caller.subject, sizeof req->caller.subject, "-");
    if (!req->route->scope)
        return 0;
    ct_http_resp head = {.status = 401, .www_authenticate = "Bearer realm=\"cardiotwin\""};
    return ct_http_send_error_resp(req, &head, "this resource needs an access token");
}

static int route(ct_http_req *req)
{
    const ct_http_server *srv = req->srv;
    const struct mg_request_info *ri = req->ri;

    if (!req->path || req->path[0] != '/')
        return ct_http_send_error(req, 400, "malformed request path");
    if (ri->content_length > srv->opt.max_body_bytes) {
        char msg[96];
        snprintf(msg, sizeof msg, "request body exceeds %lld bytes",
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

    route(&req);
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
        };
        opt->on_access(opt->log_user, &rec);
    }
    free(decoded);
    /* civetweb records this as the status of the request. */
    return req.status > 0 ? req.status : 500;
}
