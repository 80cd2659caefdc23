/* http room, FHIR REST handlers: one function per route of the FHIR API
 * (router.c lists them with the scope each needs). The one idea: a handler
 * does the checks every FHIR request passes in a fixed order, each
 * answered with an OperationOutcome that says what to fix, and only then
 * runs the interaction (fhir_ops.c, fhir_search.c):
 *
 *   _format and Accept ............................. 406
 *   Content-Type of a body ......................... 415
 *   no database .................................... 503
 *   body over max_body_bytes (chunked too) ......... 413
 *   malformed JSON, If-Match, query ................ 400
 *   wrong resourceType, id mismatch, invalid ....... 422
 *   the interaction: 200, 201, 404, 410, 412
 *
 * Nothing is written before every check has passed, and a write and its
 * audit entry commit together, so a refused request leaves no trace in the
 * database. Responses carry ETag (W/"version"), Last-Modified and, for a
 * create, Location; Prefer: return=minimal|representation|OperationOutcome
 * chooses the body of a create or update. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/embedded.h"
#include "cardiotwin/version.h"
#include "fhir_internal.h"

/* fhir/CapabilityStatement.json, embedded by cmake/embed.cmake. */
extern const ct_embedded_file ct_fhir_artefacts[];
extern const size_t ct_fhir_artefacts_count;

#define VERSION_PLACEHOLDER "@CARDIOTWIN_VERSION@"

int ct_http_capability_init(ct_http_server *srv, ct_error *err)
{
    const ct_embedded_file *cs = NULL;
    for (size_t i = 0; i < ct_fhir_artefacts_count; i++)
        if (strcmp(ct_fhir_artefacts[i].name, "CapabilityStatement.json") == 0)
            cs = &ct_fhir_artefacts[i];
    if (!cs)
        return ct_error_set(err, CT_EINVAL, "this build has no embedded CapabilityStatement");
    const char *text = (const char *)cs->data;
    const char *at = strstr(text, VERSION_PLACEHOLDER);
    if (!at)
        return ct_error_set(err, CT_EINVAL, "the embedded CapabilityStatement has no %s", VERSION_PLACEHOLDER);
    size_t head = (size_t)(at - text), pl = strlen(VERSION_PLACEHOLDER), vl = strlen(CT_VERSION);
    size_t n = cs->size - pl + vl;
    char *out = malloc(n + 1);
    if (!out)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    memcpy(out, text, head);
    memcpy(out + head, CT_VERSION, vl);
    memcpy(out + head + vl, at + pl, cs->size - head - pl);
    out[n] = '\0';
    srv->capability = out;
    srv->capability_len = n;
    return CT_OK;
}

int ct_http_fhir_path_parse(const char *path, ct_http_fhir_path *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(path, "/fhir/", 6) != 0)
        return -1;
    const char *p = path + 6;
    size_t tl = strcspn(p, "/");
    if (tl == 0 || tl > CT_FHIR_TYPE_MAX)
        return -1;
    for (size_t i = 0; i < tl; i++)
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')))
            return -1;
    memcpy(out->type, p, tl);
    p += tl;
    while (*p == '/') {
        p++;
        size_t sl = strcspn(p, "/");
        if (out->n_seg == CT_HTTP_FHIR_MAX_SEGS || sl > CT_FHIR_ID_MAX)
            return -1;
        memcpy(out->seg[out->n_seg++], p, sl);
        p += sl;
    }
    return 0;
}

static const char *content_type(const ct_http_fhir *f)
{
    return f && f->plain_json ? "application/json; charset=utf-8" : "application/fhir+json; charset=utf-8";
}

int ct_http_fhir_send_issue(ct_http_req *req, const ct_fhir_issue *issue)
{
    char *oo = ct_fhir_operation_outcome_dump(issue, 1);
    ct_http_resp r = {
        .status = issue->http_status >= 400 ? issue->http_status : 500,
        .content_type = "application/fhir+json; charset=utf-8",
        .body = oo ? oo : "",
        .body_len = oo ? strlen(oo) : 0,
        /* A 413 may leave the rest of a body unread: do not read it. */
        .close = issue->http_status == 413,
    };
    int rc = ct_http_send(req, &r);
    free(oo);
    return rc;
}

int ct_http_fhir_fail(ct_http_req *req, int status, ct_fhir_issue_type code, const char *fmt, ...)
{
    char msg[CT_FHIR_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ct_fhir_issue is;
    ct_fhir_issue_set(&is, 0, status, CT_FHIR_SEV_ERROR, code, NULL, "%s", msg);
    return ct_http_fhir_send_issue(req, &is);
}

/* The base URL clients should use in links: the Host they reached us by,
 * when it looks like a host, else the address we listen on. */
static void base_url(ct_http_req *req, char *buf, size_t cap)
{
    const char *host = mg_get_header(req->conn, "Host");
    size_t n = host ? strlen(host) : 0;
    int ok = n > 0 && n < 256;
    for (size_t i = 0; ok && i < n; i++) {
        char c = host[i];
        ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
             c == ':' || c == '[' || c == ']';
    }
    if (ok) {
        snprintf(buf, cap, "https://%s/fhir", host);
        return;
    }
    char url[96];
    if (ct_http_url(req->srv, url, sizeof url) == 0) {
        size_t ul = strlen(url);
        if (ul && url[ul - 1] == '/')
            url[ul - 1] = '\0';
        snprintf(buf, cap, "%s/fhir", url);
    } else {
        snprintf(buf, cap, "/fhir");
    }
}

/* 406 unless the answer may be JSON. */
static int negotiate(ct_http_req *req, ct_http_fhir *f)
{
    char fmt[64];
    int got = ct_http_query_get(req->query, "_format", fmt, sizeof fmt);
    if (got < 0 || (got > 0 && !ct_http_format_json(fmt)))
        return ct_http_fhir_fail(req, 406, CT_FHIR_IT_NOT_SUPPORTED,
                                 "_format asks for something this server does not write: it answers in JSON "
                                 "only (_format=json, or leave _format out)");
    int plain = 0;
    if (!ct_http_accept_json(mg_get_header(req->conn, "Accept"), &plain))
        return ct_http_fhir_fail(req, 406, CT_FHIR_IT_NOT_SUPPORTED,
                                 "Accept excludes JSON: this server answers with application/fhir+json (or "
                                 "application/json) only");
    if (f)
        f->plain_json = plain;
    return 0;
}

int ct_http_fhir_begin(ct_http_req *req, ct_http_fhir *f, int has_body, ct_http_media want)
{
    memset(f, 0, sizeof *f);
    f->req = req;
    int st = negotiate(req, f);
    if (st)
        return st;
    if (has_body) {
        const char *ct = mg_get_header(req->conn, "Content-Type");
        ct_http_media m = ct_http_content_type(ct);
        int empty = !req->unread_body;
        if (want == CT_HTTP_MEDIA_FORM) {
            if (m != CT_HTTP_MEDIA_FORM && !(m == CT_HTTP_MEDIA_NONE && empty))
                return ct_http_fhir_fail(req, 415, CT_FHIR_IT_NOT_SUPPORTED,
                                         "POST _search takes its parameters as "
                                         "Content-Type: application/x-www-form-urlencoded");
        } else if (m == CT_HTTP_MEDIA_NONE) {
            return ct_http_fhir_fail(req, 415, CT_FHIR_IT_NOT_SUPPORTED,
                                     "the request has no Content-Type; send Content-Type: application/fhir+json");
        } else if (m == CT_HTTP_MEDIA_XML) {
            return ct_http_fhir_fail(req, 415, CT_FHIR_IT_NOT_SUPPORTED,
                                     "this server reads FHIR JSON only, not XML; send "
                                     "Content-Type: application/fhir+json");
        } else if (m != CT_HTTP_MEDIA_FHIR_JSON) {
            return ct_http_fhir_fail(req, 415, CT_FHIR_IT_NOT_SUPPORTED,
                                     "Content-Type must be application/fhir+json or application/json (UTF-8)");
        }
    }
    ct_http_prefer_parse(mg_get_header(req->conn, "Prefer"), &f->prefer);
    ct_error err = {0};
    int rc = ct_http_store_acquire(req, &f->st, &err);
    if (rc == CT_EUNSUPPORTED)
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT,
                                 "the FHIR API is not available: the server runs without a database");
    if (rc != 0) {
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: database: %s", req->request_id, err.msg);
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT,
                                 "the database is not available; request id %s", req->request_id);
    }
    base_url(req, f->base, sizeof f->base);
    return 0;
}

int ct_http_fhir_body(ct_http_req *req, char **body, size_t *len)
{
    int rc = ct_http_read_body(req, body, len);
    switch (rc) {
    case CT_OK:
        return 0;
    case CT_ELIMIT:
        return ct_http_fhir_fail(req, 413, CT_FHIR_IT_TOO_COSTLY,
                                 "the request body is larger than this server's limit of %lld bytes; send "
                                 "less at a time (e.g. shorter ECG Observations)",
                                 (long long)req->srv->opt.max_body_bytes);
    case CT_EUNSUPPORTED:
        return ct_http_fhir_fail(req, 417, CT_FHIR_IT_NOT_SUPPORTED,
                                 "the only Expect this server meets is 100-continue");
    case CT_ENOMEM:
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory reading the request body");
    default:
        return ct_http_fhir_fail(req, 400, CT_FHIR_IT_INCOMPLETE,
                                 "the request body ended before its announced length, or its chunked "
                                 "encoding is broken");
    }
}

int ct_http_fhir_respond(ct_http_fhir *f, ct_http_result *r, int with_resource)
{
    ct_http_req *req = f->req;
    if (r->status >= 400 || r->status == 0) {
        if (r->status == 0)
            ct_fhir_issue_set(&r->issue, 0, 500, CT_FHIR_SEV_ERROR, CT_FHIR_IT_EXCEPTION, NULL,
                              "internal error; request id %s", req->request_id);
        r->issue.http_status = r->status ? r->status : 500;
        return ct_http_fhir_send_issue(req, &r->issue);
    }
    ct_http_header h[3];
    size_t nh = 0;
    char etag[40], modified[CT_HTTP_DATE_CAP], location[sizeof f->base + 200];
    if (r->version > 0) {
        snprintf(etag, sizeof etag, "W/\"%lld\"", (long long)r->version);
        h[nh++] = (ct_http_header){"ETag", etag};
        ct_http_date_format(r->last_updated_ms, modified, sizeof modified);
        h[nh++] = (ct_http_header){"Last-Modified", modified};
        if (r->status == 201) {
            snprintf(location, sizeof location, "%s/%s/%s/_history/%lld", f->base, r->type, r->id,
                     (long long)r->version);
            h[nh++] = (ct_http_header){"Location", location};
        }
    }
    ct_http_resp resp = {.status = r->status, .headers = h, .n_headers = nh};
    char *oo = NULL;
    if (with_resource && f->prefer.ret == CT_HTTP_RETURN_MINIMAL) {
        /* Headers only. */
    } else if (with_resource && f->prefer.ret == CT_HTTP_RETURN_OUTCOME) {
        ct_fhir_issue is;
        ct_fhir_issue_set(&is, 0, r->status, CT_FHIR_SEV_INFORMATION, CT_FHIR_IT_INFORMATIONAL, NULL,
                          "%s/%s version %lld %s", r->type, r->id, (long long)r->version,
                          r->status == 201 ? "created" : r->status == 200 && r->body ? "stored" : "");
        oo = ct_fhir_operation_outcome_dump(&is, 1);
        resp.content_type = content_type(f);
        resp.body = oo ? oo : "";
        resp.body_len = oo ? strlen(oo) : 0;
    } else if (r->body) {
        resp.content_type = content_type(f);
        resp.body = r->body;
        resp.body_len = r->body_len;
    }
    int rc = ct_http_send(req, &resp);
    free(oo);
    return rc;
}

/* ---- the routes --------------------------------------------------------------------------- */

int ct_http_handle_metadata(ct_http_req *req)
{
    int st = negotiate(req, NULL);
    if (st)
        return st;
    int plain = 0;
    ct_http_accept_json(mg_get_header(req->conn, "Accept"), &plain);
    ct_http_resp r = {
        .status = 200,
        .content_type = plain ? "application/json; charset=utf-8" : "application/fhir+json; charset=utf-8",
        .body = req->srv->capability,
        .body_len = req->srv->capability_len,
        /* Public and the same for everyone: caches may keep it briefly. */
        .cache_control = "public, max-age=300",
    };
    return ct_http_send(req, &r);
}

/* The id in segment i of the path: a FHIR id, else 404 saying why. */
static int path_id(ct_http_req *req, const ct_http_fhir_path *p, size_t i, const char **id)
{
    const char *s = p->n_seg > i ? p->seg[i] : "";
    if (ct_fhir_id_valid(s, strlen(s))) {
        *id = s;
        return 0;
    }
    if (strcmp(s, "_history") == 0)
        return ct_http_fhir_fail(req, 404, CT_FHIR_IT_NOT_SUPPORTED,
                                 "history of a whole type is not supported; ask for one resource's: "
                                 "/fhir/%s/ID/_history",
                                 p->type);
    return ct_http_fhir_fail(req, 404, CT_FHIR_IT_NOT_FOUND,
                             "there is no %s with that id: an id is 1 to 64 of A-Z a-z 0-9 - .", p->type);
}

static int if_match(ct_http_req *req, int64_t *version)
{
    *version = 0;
    const char *h = mg_get_header(req->conn, "If-Match");
    if (!h)
        return 0;
    if (ct_http_etag_parse(h, version) != 0)
        return ct_http_fhir_fail(req, 400, CT_FHIR_IT_VALUE,
                                 "If-Match must be the ETag of a version, e.g. If-Match: W/\"3\"");
    return 0;
}

static int finish(ct_http_fhir *f, ct_http_result *r, int with_resource)
{
    int st = ct_http_fhir_respond(f, r, with_resource);
    ct_http_result_clear(r);
    return st;
}

int ct_http_handle_fhir_create(ct_http_req *req)
{
    ct_http_fhir_path p;
    ct_http_fhir f;
    ct_http_fhir_path_parse(req->path, &p);
    int st = ct_http_fhir_begin(req, &f, 1, CT_HTTP_MEDIA_FHIR_JSON);
    if (st)
        return st;
    char *body = NULL;
    size_t len = 0;
    if ((st = ct_http_fhir_body(req, &body, &len)) != 0)
        return st;
    char id[37];
    ct_http_result r = {0};
    ct_http_prepared prep;
    if (ct_http_new_id(id) != 0) {
        free(body);
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "no random bytes for a new id");
    }
    if (ct_http_prepare_body(&f, body, len, p.type, NULL, id, &prep, &r) == 0) {
        const char *ine = mg_get_header(req->conn, "If-None-Exist");
        ct_http_op_create(&f, &prep, ine, &r);
    }
    ct_http_prepared_free(&prep);
    free(body);
    return finish(&f, &r, 1);
}

int ct_http_handle_fhir_update(ct_http_req *req)
{
    ct_http_fhir_path p;
    ct_http_fhir f;
    ct_http_fhir_path_parse(req->path, &p);
    const char *id;
    int64_t version;
    int st;
    if ((st = path_id(req, &p, 0, &id)) != 0 || (st = if_match(req, &version)) != 0 ||
        (st = ct_http_fhir_begin(req, &f, 1, CT_HTTP_MEDIA_FHIR_JSON)) != 0)
        return st;
    char *body = NULL;
    size_t len = 0;
    if ((st = ct_http_fhir_body(req, &body, &len)) != 0)
        return st;
    ct_http_result r = {0};
    ct_http_prepared prep;
    if (ct_http_prepare_body(&f, body, len, p.type, id, NULL, &prep, &r) == 0)
        ct_http_op_update(&f, &prep, version, &r);
    ct_http_prepared_free(&prep);
    free(body);
    return finish(&f, &r, 1);
}

int ct_http_handle_fhir_delete(ct_http_req *req)
{
    ct_http_fhir_path p;
    ct_http_fhir f;
    ct_http_fhir_path_parse(req->path, &p);
    const char *id;
    int64_t version;
    int st;
    if ((st = path_id(req, &p, 0, &id)) != 0 || (st = if_match(req, &version)) != 0 ||
        (st = ct_http_fhir_begin(req, &f, 0, CT_HTTP_MEDIA_NONE)) != 0)
        return st;
    ct_http_result r = {0};
    ct_http_op_delete(&f, p.type, id, version, &r);
    return finish(&f, &r, 0);
}

int ct_http_handle_fhir_read(ct_http_req *req)
{
    ct_http_fhir_path p;
    ct_http_fhir f;
    ct_http_fhir_path_parse(req->path, &p);
    const char *id;
    int st;
    if ((st = path_id(req, &p, 0, &id)) != 0 || (st = ct_http_fhir_begin(req, &f, 0, CT_HTTP_MEDIA_NONE)) != 0)
        return st;
    ct_http_result r = {0};
    ct_http_op_read(&f, p.type, id, 0, &r);
    return finish(&f, &r, 0);
}

int ct_http_handle_fhir_vread(ct_http_req *req)
{
    ct_http_fhir_path p;
    ct_http_fhir f;
    ct_http_fhir_path_parse(req->path, &p);
    const char *id;
    int st;
    if ((st = path_id(req, &p, 0, &id)) != 0)
        return st;
    const char *v = p.seg[2];
    char *end = NULL;
    long long version = strtoll(v, &end, 10);
    if (!*v || *end || version < 1 || v[0] == '0' || v[0] == '+' || v[0] == '-')
        return ct_http_fhir_fail(req, 404, CT_FHIR_IT_NOT_FOUND,
                                 "%s/%s has no version \"%.20s\": versions are 1, 2, 3 ...", p.type, id, v);
    if ((st = ct_http_fhir_begin(req, &f, 0, CT_HTTP_MEDIA_NONE)) != 0)
        return st;
    ct_http_result r = {0};
    ct_http_op_read(&f, p.type, id, version, &r);
    return finish(&f, &r, 0);
}

int ct_http_handle_fhir_history(ct_http_req *req)
{
    ct_http_fhir_path p;
    ct_http_fhir f;
    ct_http_fhir_path_parse(req->path, &p);
    const char *id;
    int st;
    if ((st = path_id(req, &p, 0, &id)) != 0 || (st = ct_http_fhir_begin(req, &f, 0, CT_HTTP_MEDIA_NONE)) != 0)
        return st;
    ct_http_result r = {0};
    ct_http_op_history(&f, p.type, id, req->query ? req->query : "", &r);
    return finish(&f, &r, 0);
}

int ct_http_handle_fhir_search(ct_http_req *req)
{
    ct_http_fhir_path p;
    ct_http_fhir f;
    ct_http_fhir_path_parse(req->path, &p);
    int post = (req->method_bit & CT_HTTP_POST) != 0;
    int st = ct_http_fhir_begin(req, &f, post, CT_HTTP_MEDIA_FORM);
    if (st)
        return st;
    const char *q = req->query ? req->query : "";
    char *body = NULL, *all = NULL;
    size_t len = 0;
    if (post) {
        if ((st = ct_http_fhir_body(req, &body, &len)) != 0)
            return st;
        /* R4: parameters may come in the URL and the body; both count. */
        size_t ql = strlen(q);
        if (ql + len + 2 > CT_FHIR_SEARCH_MAX_QUERY + 2) {
            free(body);
            return ct_http_fhir_fail(req, 413, CT_FHIR_IT_TOO_LONG,
                                     "the search parameters are longer than %d bytes; use fewer",
                                     CT_FHIR_SEARCH_MAX_QUERY);
        }
        all = malloc(ql + len + 2);
        if (!all) {
            free(body);
            return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
        }
        snprintf(all, ql + len + 2, "%s%s%s", q, ql && len ? "&" : "", body);
        q = all;
    }
    ct_http_result r = {0};
    ct_http_op_search(&f, p.type, q, strlen(q), &r);
    free(body);
    free(all);
    return finish(&f, &r, 0);
}
