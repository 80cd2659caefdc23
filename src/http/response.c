/* http room, responses: the one way a handler answers. Every response
 * leaves through ct_http_send, so the security headers, Cache-Control and
 * the HEAD rule (headers, no body) are applied in one place and a new
 * handler cannot forget them.
 *
 * Headers go through civetweb's response-header API rather than one
 * buffered write: it costs a TLS record per header line (TCP_NODELAY keeps
 * that from waiting on delayed ACKs), but civetweb then keeps its own
 * keep-alive bookkeeping and Connection header right. If responses ever
 * dominate the profile, building the head in one buffer is the next step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cardiotwin/fhir.h"
#include "http_internal.h"

const ct_http_header ct_http_security_headers[] = {
    {"Strict-Transport-Security", "max-age=" CT_HTTP_HSTS_MAX_AGE},
    {"X-Content-Type-Options", "nosniff"},
    {"X-Frame-Options", "DENY"},
    /* An API: nothing in a response may load or run anything. The dashboard
     * will send its own, looser policy for its pages. */
    {"Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"},
    {"Referrer-Policy", "no-referrer"},
    {"Cross-Origin-Resource-Policy", "same-origin"},
};
const size_t ct_http_n_security_headers =
    sizeof ct_http_security_headers / sizeof ct_http_security_headers[0];

/* The one security header a response may replace: the dashboard's pages
 * load scripts and styles, which the API's policy forbids. */
static const char *header_value(const ct_http_resp *r, const ct_http_header *h)
{
    if (r->csp && strcmp(h->name, "Content-Security-Policy") == 0)
        return r->csp;
    return h->value;
}

/* After "100 Continue" civetweb counts the response as started and refuses
 * its header API, so the head is written here, and the connection closes
 * after it (civetweb's keep-alive bookkeeping no longer knows the
 * response). */
static int send_raw(ct_http_req *req, const ct_http_resp *r)
{
    struct mg_connection *c = req->conn;
    mg_disable_keep_alive(c);
    char head[4096];
    size_t n = 0;
    int w = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", r->status, mg_get_response_code_text(c, r->status));
#define ADD(name, value)                                                                             \
    do {                                                                                             \
        if (w >= 0 && (size_t)w < sizeof head - n) {                                                 \
            n += (size_t)w;                                                                          \
            w = snprintf(head + n, sizeof head - n, "%s: %s\r\n", (name), (value));                   \
        }                                                                                            \
    } while (0)
    for (size_t i = 0; i < ct_http_n_security_headers; i++)
        ADD(ct_http_security_headers[i].name, header_value(r, &ct_http_security_headers[i]));
    ADD("Cache-Control", r->cache_control ? r->cache_control : "no-store");
    if (r->allow)
        ADD("Allow", r->allow);
    if (r->www_authenticate)
        ADD("WWW-Authenticate", r->www_authenticate);
    if (r->content_type)
        ADD("Content-Type", r->content_type);
    for (size_t i = 0; i < r->n_headers; i++)
        ADD(r->headers[i].name, r->headers[i].value);
    if (req->request_id[0])
        ADD("X-Request-Id", req->request_id);
    char len[32];
    snprintf(len, sizeof len, "%zu", r->body_len);
    ADD("Content-Length", len);
    ADD("Connection", "close");
#undef ADD
    if (w < 0 || (size_t)w >= sizeof head - n)
        return -1;
    n += (size_t)w;
    if (n + 2 >= sizeof head)
        return -1;
    memcpy(head + n, "\r\n", 2);
    n += 2;
    if (mg_write(c, head, n) != (int)n)
        return -1;
    return 0;
}

int ct_http_send(ct_http_req *req, const ct_http_resp *r)
{
    struct mg_connection *c = req->conn;
    if (req->status != 0)
        return -1;
    if (req->sent_continue) {
        if (send_raw(req, r) != 0) {
            req->status = r->status;
            return -1;
        }
        req->status = r->status;
        if (r->body_len > 0 && !(req->method_bit & CT_HTTP_HEAD)) {
            int n = mg_write(c, r->body, r->body_len);
            if (n > 0)
                req->body_bytes = n;
        }
        return r->status;
    }
    if (mg_response_header_start(c, r->status) != 0)
        return -1;
    for (size_t i = 0; i < ct_http_n_security_headers; i++)
        mg_response_header_add(c, ct_http_security_headers[i].name,
                               header_value(r, &ct_http_security_headers[i]), -1);
    mg_response_header_add(c, "Cache-Control", r->cache_control ? r->cache_control : "no-store",
                           -1);
    if (r->allow)
        mg_response_header_add(c, "Allow", r->allow, -1);
    if (r->www_authenticate)
        mg_response_header_add(c, "WWW-Authenticate", r->www_authenticate, -1);
    if (r->content_type)
        mg_response_header_add(c, "Content-Type", r->content_type, -1);
    for (size_t i = 0; i < r->n_headers; i++)
        mg_response_header_add(c, r->headers[i].name, r->headers[i].value, -1);
    if (req->request_id[0])
        mg_response_header_add(c, "X-Request-Id", req->request_id, -1);
    char len[32];
    snprintf(len, sizeof len, "%zu", r->body_len);
    mg_response_header_add(c, "Content-Length", len, -1);

    /* A request body nobody read would make civetweb read and discard it
     * before the next request on this connection, however large it claims
     * to be; closing costs the client one handshake and bounds the work. */
    if (r->close || req->unread_body)
        mg_disable_keep_alive(c);
    mg_response_header_send(c);

    req->status = r->status;
    if (r->body_len > 0 && !(req->method_bit & CT_HTTP_HEAD)) {
        int n = mg_write(c, r->body, r->body_len);
        if (n > 0)
            req->body_bytes = n;
    }
    return r->status;
}

int ct_http_send_json(ct_http_req *req, int status, const char *json)
{
    ct_http_resp r = {
        .status = status,
        .content_type = "application/json",
        .body = json,
        .body_len = json ? strlen(json) : 0,
    };
    return ct_http_send(req, &r);
}

/* Stable machine-readable names, in the spirit of the status line. */
static const char *error_name(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 406: return "not_acceptable";
    case 415: return "unsupported_media_type";
    case 413: return "payload_too_large";
    case 429: return "too_many_requests";
    case 500: return "internal_error";
    case 503: return "unavailable";
    default: return status >= 500 ? "server_error" : "client_error";
    }
}

int ct_http_is_fhir_path(const char *path)
{
    return path && strncmp(path, "/fhir", 5) == 0 && (path[5] == '\0' || path[5] == '/');
}

/* The FHIR issue type that says what kind of failure a status is. */
static ct_fhir_issue_type issue_type_for(int status)
{
    switch (status) {
    case 400: return CT_FHIR_IT_INVALID;
    case 401: return CT_FHIR_IT_LOGIN;
    case 403: return CT_FHIR_IT_FORBIDDEN;
    case 404: return CT_FHIR_IT_NOT_FOUND;
    case 405: case 406: case 415: return CT_FHIR_IT_NOT_SUPPORTED;
    case 410: return CT_FHIR_IT_DELETED;
    case 412: return CT_FHIR_IT_CONFLICT;
    case 413: return CT_FHIR_IT_TOO_COSTLY;
    case 429: return CT_FHIR_IT_THROTTLED;
    case 503: return CT_FHIR_IT_TRANSIENT;
    default: return status >= 500 ? CT_FHIR_IT_EXCEPTION : CT_FHIR_IT_PROCESSING;
    }
}

int ct_http_send_error_resp(ct_http_req *req, const ct_http_resp *head, const char *message)
{
    if (ct_http_is_fhir_path(req->path)) {
        /* Under /fhir every error is an OperationOutcome, whoever answers:
         * the router (404, 405, 401, 413) or a handler. */
        ct_fhir_issue issue;
        ct_fhir_issue_set(&issue, 0, head->status, CT_FHIR_SEV_ERROR, issue_type_for(head->status), NULL, "%s",
                          message ? message : "");
        char *oo = ct_fhir_operation_outcome_dump(&issue, 1);
        ct_http_resp r = *head;
        r.content_type = "application/fhir+json; charset=utf-8";
        r.body = oo ? oo : "";
        r.body_len = oo ? strlen(oo) : 0;
        int rc = ct_http_send(req, &r);
        free(oo);
        return rc;
    }
    json_t *o = json_pack("{s:i,s:s,s:s}", "status", head->status, "error",
                          error_name(head->status), "message", message ? message : "");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    ct_http_resp r = *head;
    r.content_type = "application/json";
    r.body = text ? text : "{}";
    r.body_len = text ? strlen(text) : 2;
    int rc = ct_http_send(req, &r);
    free(text);
    return rc;
}

int ct_http_send_error(ct_http_req *req, int status, const char *message)
{
    ct_http_resp head = {.status = status};
    return ct_http_send_error_resp(req, &head, message);
}
