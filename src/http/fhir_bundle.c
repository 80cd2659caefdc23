/* http room, Bundles: POST /fhir with a batch or a transaction. Each entry
 * is the request it describes (method and url), run through the same
 * interactions as the REST handlers (fhir_ops.c, fhir_search.c), checked
 * against the caller's scopes one by one (ct_http_caller_grant), and
 * answered in a batch-response or transaction-response Bundle in the order
 * of the request.
 *
 * The one idea is the difference between the two. A batch runs each entry
 * on its own, in its own transaction: one entry's failure is that entry's
 * response and the others stand. A transaction is one SQLite transaction:
 * every entry is checked first (a malformed one fails the whole Bundle
 * before anything runs), ids are given to the creates, every urn:uuid
 * fullUrl is mapped to "Type/id" and rewritten in the references of every
 * resource before it is validated and stored, then the entries run in
 * R4's order (deletes, creates, updates, reads) and the first failure
 * rolls everything back, audit entries included, and is the answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fhir_internal.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#define CT_HTTP_BUNDLE_MAX_ENTRIES 1000

typedef enum op_kind { OP_CREATE, OP_UPDATE, OP_DELETE, OP_READ, OP_VREAD, OP_SEARCH, OP_HISTORY } op_kind;

typedef struct entry {
    size_t index;
    op_kind op;
    char type[CT_FHIR_TYPE_MAX + 1];
    char id[CT_FHIR_ID_MAX + 1];      /* url's id; for a create, the one given */
    int64_t version;                  /* vread */
    const char *query;                /* search: points into the parsed Bundle */
    const char *full_url;
    const char *if_none_exist;
    int64_t if_match;
    const char *res_text;             /* the resource's JSON text in the body */
    size_t res_len;
    int existing;                     /* a conditional create that found its match */
    char mapped_to[CT_FHIR_TYPE_MAX + CT_FHIR_ID_MAX + 2];
    ct_http_result r;
} entry;

/* "Bundle.entry[i]..." for messages. */
static int entry_fail(ct_http_result *r, size_t i, int status, ct_fhir_issue_type code, const char *what,
                      const char *msg)
{
    char expr[80];
    snprintf(expr, sizeof expr, "Bundle.entry[%zu]%s", i, what);
    return ct_http_result_fail(r, status, code, expr, "Bundle.entry[%zu]: %s", i, msg);
}

/* Reads entry i's request into e; -1 with e->r filled when it is not one
 * we can run. */
static int parse_entry(ct_http_fhir *f, const json_t *je, const char *etext, const char *eend, size_t i,
                       int transaction, entry *e)
{
    memset(e, 0, sizeof e[0]);
    e->index = i;
    if (!json_is_object(je))
        return entry_fail(&e->r, i, 400, CT_FHIR_IT_STRUCTURE, "", "an entry must be an object");
    const json_t *req = json_object_get(je, "request");
    const char *method = json_string_value(json_object_get(req, "method"));
    const char *url = json_string_value(json_object_get(req, "url"));
    if (!method || !url)
        return entry_fail(&e->r, i, 400, CT_FHIR_IT_REQUIRED, ".request",
                          "request.method and request.url are required in a batch or transaction");
    e->full_url = json_string_value(json_object_get(je, "fullUrl"));
    e->if_none_exist = json_string_value(json_object_get(req, "ifNoneExist"));
    const char *im = json_string_value(json_object_get(req, "ifMatch"));
    if (im && ct_http_etag_parse(im, &e->if_match) != 0)
        return entry_fail(&e->r, i, 400, CT_FHIR_IT_VALUE, ".request.ifMatch",
                          "ifMatch must be the ETag of a version, e.g. W/\"3\"");

    /* A url is relative to /fhir; our own absolute base is accepted too. */
    size_t bl = strlen(f->base);
    if (strncmp(url, f->base, bl) == 0 && url[bl] == '/')
        url += bl + 1;
    while (*url == '/')
        url++;
    const char *qmark = strchr(url, '?');
    size_t path_len = qmark ? (size_t)(qmark - url) : strlen(url);
    char path[CT_FHIR_TYPE_MAX + CT_FHIR_ID_MAX * 3 + 16];
    if (path_len + 7 >= sizeof path)
        return entry_fail(&e->r, i, 400, CT_FHIR_IT_VALUE, ".request.url", "request.url is too long");
    memcpy(path, "/fhir/", 6);
    memcpy(path + 6, url, path_len);
    path[6 + path_len] = '\0';
    ct_http_fhir_path p;
    if (ct_http_fhir_path_parse(path, &p) != 0)
        return entry_fail(&e->r, i, 400, CT_FHIR_IT_VALUE, ".request.url",
                          "request.url must be Type, Type/id, Type/id/_history[/version] or Type?query");
    if (!ct_fhir_supported_type(p.type)) {
        char msg[160];
        snprintf(msg, sizeof msg, "this server has no resource type %s", p.type);
        return entry_fail(&e->r, i, 404, CT_FHIR_IT_NOT_SUPPORTED, ".request.url", msg);
    }
    snprintf(e->type, sizeof e->type, "%s", p.type);
    if (p.n_seg >= 1 && strcmp(p.seg[0], "_search") != 0) {
        if (!ct_fhir_id_valid(p.seg[0], strlen(p.seg[0])))
            return entry_fail(&e->r, i, 400, CT_FHIR_IT_VALUE, ".request.url", "the id in request.url is not a FHIR id");
        snprintf(e->id, sizeof e->id, "%.64s", p.seg[0]);
    }
    int is_search_path = p.n_seg == 0 || (p.n_seg == 1 && strcmp(p.seg[0], "_search") == 0);
    const char *scope_perm = NULL;
    if (strcmp(method, "POST") == 0 && p.n_seg == 0 && !qmark) {
        e->op = OP_CREATE;
        scope_perm = "c";
    } else if (strcmp(method, "PUT") == 0 && p.n_seg == 1 && e->id[0] && !qmark) {
        e->op = OP_UPDATE;
        scope_perm = "u";
    } else if (strcmp(method, "DELETE") == 0 && p.n_seg == 1 && e->id[0] && !qmark) {
        e->op = OP_DELETE;
        scope_perm = "d";
    } else if (strcmp(method, "GET") == 0 && p.n_seg == 1 && e->id[0]) {
        e->op = OP_READ;
        scope_perm = "r";
    } else if (strcmp(method, "GET") == 0 && p.n_seg == 2 && e->id[0] && strcmp(p.seg[1], "_history") == 0) {
        e->op = OP_HISTORY;
        scope_perm = "r";
        e->query = qmark ? qmark + 1 : "";
    } else if (strcmp(method, "GET") == 0 && p.n_seg == 3 && e->id[0] && strcmp(p.seg[1], "_history") == 0) {
        char *end = NULL;
        long long v = strtoll(p.seg[2], &end, 10);
        if (!p.seg[2][0] || *end || v < 1)
            return entry_fail(&e->r, i, 400, CT_FHIR_IT_VALUE, ".request.url", "the version in request.url is not 1, 2, 3 ...");
        e->op = OP_VREAD;
        e->version = v;
        scope_perm = "r";
    } else if ((strcmp(method, "GET") == 0 || strcmp(method, "POST") == 0) && is_search_path &&
               (qmark || strcmp(method, "GET") == 0)) {
        e->op = OP_SEARCH;
        scope_perm = "s";
        e->query = qmark ? qmark + 1 : "";
    } else if (strcmp(method, "PATCH") == 0 || strcmp(method, "HEAD") == 0) {
        return entry_fail(&e->r, i, 405, CT_FHIR_IT_NOT_SUPPORTED, ".request.method",
                          "PATCH and HEAD are not supported in a Bundle; use PUT or GET");
    } else {
        char msg[400];
        snprintf(msg, sizeof msg, "%.16s %.60s is not an interaction this server runs (create: POST Type; update: "
                 "PUT Type/id; delete: DELETE Type/id; read: GET Type/id; search: GET Type?query)",
                 method, url);
        return entry_fail(&e->r, i, 400, CT_FHIR_IT_NOT_SUPPORTED, ".request", msg);
    }
    if (transaction && e->op == OP_SEARCH && e->query && strchr(e->query, '?'))
        return entry_fail(&e->r, i, 400, CT_FHIR_IT_VALUE, ".request.url", "request.url holds two '?'");

    if (ct_http_caller_grant(f->req, e->type, ct_http_perm_bit(scope_perm[0])) == CT_HTTP_GRANT_NONE) {
        char need[300], msg[400];
        ct_http_scope_describe(e->type, ct_http_perm_bit(scope_perm[0]), need, sizeof need);
        snprintf(msg, sizeof msg, "the access token does not allow this entry: it needs %s", need);
        return entry_fail(&e->r, i, 403, CT_FHIR_IT_FORBIDDEN, "", msg);
    }

    if (e->op == OP_CREATE || e->op == OP_UPDATE) {
        const json_t *res = json_object_get(je, "resource");
        if (!json_is_object(res))
            return entry_fail(&e->r, i, 400, CT_FHIR_IT_REQUIRED, ".resource", "a create or update needs a resource");
        const char *rt = ct_fhir_resource_type(res);
        if (!rt || strcmp(rt, e->type) != 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "resourceType is %.64s but request.url is for %s", rt ? rt : "missing", e->type);
            return entry_fail(&e->r, i, 422, CT_FHIR_IT_INVALID, ".resource.resourceType", msg);
        }
        if (e->op == OP_UPDATE) {
            const char *rid = json_string_value(json_object_get(res, "id"));
            if (!rid)
                return entry_fail(&e->r, i, 400, CT_FHIR_IT_REQUIRED, ".resource.id",
                                  "an update must carry the id of its request.url");
            if (strcmp(rid, e->id) != 0)
                return entry_fail(&e->r, i, 422, CT_FHIR_IT_INVALID, ".resource.id",
                                  "the resource's id does not match the id in request.url");
        }
        const char *res_end = NULL;
        if (ct_http_json_member(etext, eend, "resource", &e->res_text, &res_end) != 0)
            return entry_fail(&e->r, i, 400, CT_FHIR_IT_STRUCTURE, ".resource", "cannot find the resource's text");
        e->res_len = (size_t)(res_end - e->res_text);
    }
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200: return "200 OK";
    case 201: return "201 Created";
    case 204: return "204 No Content";
    case 400: return "400 Bad Request";
    case 401: return "401 Unauthorized";
    case 403: return "403 Forbidden";
    case 404: return "404 Not Found";
    case 405: return "405 Method Not Allowed";
    case 406: return "406 Not Acceptable";
    case 409: return "409 Conflict";
    case 410: return "410 Gone";
    case 412: return "412 Precondition Failed";
    case 413: return "413 Payload Too Large";
    case 415: return "415 Unsupported Media Type";
    case 422: return "422 Unprocessable Entity";
    case 503: return "503 Service Unavailable";
    default: return "500 Internal Server Error";
    }
}

static void run_entry(ct_http_fhir *f, entry *e, const ct_http_ref_map *map)
{
    ct_http_prepared prep;
    char new_id[37];
    switch (e->op) {
    case OP_CREATE:
        if (e->existing) {
            ct_http_op_read(f, e->type, e->id, 0, &e->r);
            break;
        }
        if (!e->id[0]) {
            if (ct_http_new_id(new_id) != 0) {
                ct_http_result_fail(&e->r, 503, CT_FHIR_IT_TRANSIENT, NULL, "no random bytes for a new id");
                break;
            }
            snprintf(e->id, sizeof e->id, "%s", new_id);
        }
        if (ct_http_prepare_text(f, e->res_text, e->res_len, e->type, e->id, map, &prep, &e->r) == 0)
            ct_http_op_create(f, &prep, f->in_txn ? NULL : e->if_none_exist, &e->r);
        ct_http_prepared_free(&prep);
        break;
    case OP_UPDATE:
        if (ct_http_prepare_text(f, e->res_text, e->res_len, e->type, e->id, map, &prep, &e->r) == 0)
            ct_http_op_update(f, &prep, e->if_match, &e->r);
        ct_http_prepared_free(&prep);
        break;
    case OP_DELETE:
        ct_http_op_delete(f, e->type, e->id, e->if_match, &e->r);
        break;
    case OP_READ:
        ct_http_op_read(f, e->type, e->id, 0, &e->r);
        break;
    case OP_VREAD:
        ct_http_op_read(f, e->type, e->id, e->version, &e->r);
        break;
    case OP_HISTORY:
        ct_http_op_history(f, e->type, e->id, e->query, &e->r);
        break;
    case OP_SEARCH:
        ct_http_op_search(f, e->type, e->query, strlen(e->query), &e->r);
        break;
    }
}

static void put_entry_response(ct_http_fhir *f, ct_http_buf *b, const entry *e, int first)
{
    const ct_http_result *r = &e->r;
    ct_http_buf_puts(b, first ? "{" : ",{");
    int ok = r->status >= 200 && r->status < 300;
    int resource_like = ok && r->body && e->op != OP_DELETE;
    if (ok && r->id[0] && r->version > 0 && e->op != OP_DELETE)
        ct_http_buf_printf(b, "\"fullUrl\":\"%s/%s/%s\",", f->base, r->type, r->id);
    int show = resource_like && (f->prefer.ret == CT_HTTP_RETURN_DEFAULT || f->prefer.ret == CT_HTTP_RETURN_REPRESENTATION ||
                                 e->op == OP_READ || e->op == OP_VREAD || e->op == OP_SEARCH || e->op == OP_HISTORY);
    if (show) {
        ct_http_buf_puts(b, "\"resource\":");
        ct_http_buf_put(b, r->body, r->body_len);
        ct_http_buf_puts(b, ",");
    }
    ct_http_buf_printf(b, "\"response\":{\"status\":\"%s\"", status_text(r->status));
    if (ok && r->version > 0) {
        if (e->op == OP_CREATE || e->op == OP_UPDATE)
            ct_http_buf_printf(b, ",\"location\":\"%s/%s/_history/%lld\"", r->type, r->id, (long long)r->version);
        char when[CT_FHIR_INSTANT_CAP];
        ct_http_buf_printf(b, ",\"etag\":\"W/\\\"%lld\\\"\"", (long long)r->version);
        if (ct_fhir_instant_format(r->last_updated_ms, when, sizeof when) == 0)
            ct_http_buf_printf(b, ",\"lastModified\":\"%s\"", when);
    }
    if (!ok) {
        char *oo = ct_fhir_operation_outcome_dump(&r->issue, 1);
        if (oo) {
            ct_http_buf_puts(b, ",\"outcome\":");
            ct_http_buf_puts(b, oo);
            free(oo);
        }
    } else if (e->op == OP_DELETE && r->body) {
        ct_http_buf_puts(b, ",\"outcome\":");
        ct_http_buf_put(b, r->body, r->body_len);
    } else if (f->prefer.ret == CT_HTTP_RETURN_OUTCOME && (e->op == OP_CREATE || e->op == OP_UPDATE)) {
        ct_fhir_issue is;
        ct_fhir_issue_set(&is, 0, r->status, CT_FHIR_SEV_INFORMATION, CT_FHIR_IT_INFORMATIONAL, NULL,
                          "%s/%s version %lld stored", r->type, r->id, (long long)r->version);
        char *oo = ct_fhir_operation_outcome_dump(&is, 1);
        if (oo) {
            ct_http_buf_puts(b, ",\"outcome\":");
            ct_http_buf_puts(b, oo);
            free(oo);
        }
    }
    ct_http_buf_puts(b, "}}");
}

static int respond_bundle(ct_http_fhir *f, const char *type, entry *es, size_t n)
{
    ct_http_buf b;
    ct_http_buf_init(&b, (size_t)3 * CT_STORE_PAGE_MAX_BYTES + (size_t)f->req->srv->opt.max_body_bytes * 2);
    char id[37], now[CT_FHIR_INSTANT_CAP];
    if (ct_http_new_id(id) != 0)
        snprintf(id, sizeof id, "bundle");
    ct_fhir_instant_format(now_ms(), now, sizeof now);
    ct_http_buf_printf(&b, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"},"
                           "\"type\":\"%s\"", id, now, type);
    if (n) {
        ct_http_buf_puts(&b, ",\"entry\":[");
        for (size_t i = 0; i < n; i++)
            put_entry_response(f, &b, &es[i], i == 0);
        ct_http_buf_puts(&b, "]");
    }
    ct_http_buf_puts(&b, "}");
    if (b.failed) {
        ct_http_buf_free(&b);
        return ct_http_fhir_fail(f->req, b.failed == CT_ELIMIT ? 413 : 503, CT_FHIR_IT_TOO_COSTLY,
                                 "the response Bundle would be too large; send fewer entries (what was asked was done)");
    }
    ct_http_resp resp = {
        .status = 200,
        .content_type = f->plain_json ? "application/json; charset=utf-8" : "application/fhir+json; charset=utf-8",
        .body = b.p,
        .body_len = b.n,
    };
    int rc = ct_http_send(f->req, &resp);
    ct_http_buf_free(&b);
    return rc;
}

static int op_rank(op_kind k)
{
    switch (k) {
    case OP_DELETE: return 0;
    case OP_CREATE: return 1;
    case OP_UPDATE: return 2;
    default: return 3;
    }
}

/* Ids for the creates (or the match of a conditional one) and the
 * urn:uuid map; -1 with the failing entry's result filled. */
static int plan_transaction(ct_http_fhir *f, entry *es, size_t n, const char **from, const char **to, size_t *n_map,
                            size_t *failed)
{
    *n_map = 0;
    for (size_t i = 0; i < n; i++) {
        entry *e = &es[i];
        if (e->op == OP_CREATE) {
            if (e->if_none_exist && *e->if_none_exist) {
                char found[CT_FHIR_ID_MAX + 1];
                int m = ct_http_search_count_matches(f, e->type, e->if_none_exist, found, &e->r);
                if (m < 0 || m > 1) {
                    if (m > 1)
                        ct_http_result_fail(&e->r, 412, CT_FHIR_IT_MULTIPLE_MATCHES, NULL,
                                            "ifNoneExist matches more than one %s", e->type);
                    *failed = i;
                    return -1;
                }
                if (m == 1) {
                    e->existing = 1;
                    snprintf(e->id, sizeof e->id, "%s", found);
                }
            }
            if (!e->id[0]) {
                char id[37];
                if (ct_http_new_id(id) != 0) {
                    ct_http_result_fail(&e->r, 503, CT_FHIR_IT_TRANSIENT, NULL, "no random bytes for a new id");
                    *failed = i;
                    return -1;
                }
                snprintf(e->id, sizeof e->id, "%s", id);
            }
        }
        /* Two entries acting on one resource would depend on their order. */
        if ((e->op == OP_CREATE && !e->existing) || e->op == OP_UPDATE || e->op == OP_DELETE)
            for (size_t k = 0; k < i; k++)
                if ((es[k].op == OP_UPDATE || es[k].op == OP_DELETE || es[k].op == OP_CREATE) &&
                    strcmp(es[k].type, e->type) == 0 && strcmp(es[k].id, e->id) == 0) {
                    char msg[400];
                    snprintf(msg, sizeof msg, "entries %zu and %zu both change %s/%s; a transaction may touch a "
                             "resource once", k, i, e->type, e->id);
                    entry_fail(&e->r, i, 400, CT_FHIR_IT_DUPLICATE, "", msg);
                    *failed = i;
                    return -1;
                }
        if ((e->op == OP_CREATE || e->op == OP_UPDATE) && e->full_url && strncmp(e->full_url, "urn:uuid:", 9) == 0) {
            snprintf(e->mapped_to, sizeof e->mapped_to, "%s/%s", e->type, e->id);
            from[*n_map] = e->full_url;
            to[*n_map] = e->mapped_to;
            (*n_map)++;
        }
    }
    return 0;
}

int ct_http_handle_fhir_bundle(ct_http_req *req)
{
    ct_http_fhir f;
    int st = ct_http_fhir_begin(req, &f, 1, CT_HTTP_MEDIA_FHIR_JSON);
    if (st)
        return st;
    char *body = NULL;
    size_t len = 0;
    if ((st = ct_http_fhir_body(req, &body, &len)) != 0)
        return st;
    ct_fhir_limits lim = ct_fhir_limits_default();
    lim.max_bytes = (size_t)req->srv->opt.max_body_bytes;
    json_t *bundle = NULL;
    ct_fhir_issue is;
    if (ct_fhir_parse(body, len, &lim, &bundle, &is) != 0) {
        free(body);
        return ct_http_fhir_send_issue(req, &is);
    }
    entry *es = NULL;
    size_t n = 0;
    const char *type = json_string_value(json_object_get(bundle, "type"));
    const json_t *entries = json_object_get(bundle, "entry");
    int transaction = type && strcmp(type, "transaction") == 0;
    if (!json_is_object(bundle) || !ct_fhir_resource_type(bundle) || strcmp(ct_fhir_resource_type(bundle), "Bundle") != 0) {
        st = ct_http_fhir_fail(req, 422, CT_FHIR_IT_INVALID,
                               "POST /fhir takes a Bundle of type batch or transaction; post other resources to "
                               "/fhir/TYPE");
        goto out;
    }
    if (!type || (!transaction && strcmp(type, "batch") != 0)) {
        st = ct_http_fhir_fail(req, 422, CT_FHIR_IT_CODE_INVALID, "Bundle.type must be batch or transaction");
        goto out;
    }
    if (entries && !json_is_array(entries)) {
        st = ct_http_fhir_fail(req, 422, CT_FHIR_IT_STRUCTURE, "Bundle.entry must be an array");
        goto out;
    }
    n = json_array_size(entries);
    if (n > CT_HTTP_BUNDLE_MAX_ENTRIES) {
        st = ct_http_fhir_fail(req, 413, CT_FHIR_IT_TOO_COSTLY, "the Bundle has %zu entries; at most %d are accepted",
                               n, CT_HTTP_BUNDLE_MAX_ENTRIES);
        goto out;
    }
    es = calloc(n ? n : 1, sizeof *es);
    if (!es) {
        st = ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
        goto out;
    }
    const char *arr_s = NULL, *arr_e = NULL;
    if (n && ct_http_json_member(body, body + len, "entry", &arr_s, &arr_e) != 0) {
        st = ct_http_fhir_fail(req, 400, CT_FHIR_IT_STRUCTURE, "cannot find Bundle.entry in the text");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const char *es_s = NULL, *es_e = NULL;
        if (ct_http_json_element(arr_s, arr_e, i, &es_s, &es_e) != 0) {
            entry_fail(&es[i].r, i, 400, CT_FHIR_IT_STRUCTURE, "", "cannot find the entry's text");
            continue;
        }
        if (parse_entry(&f, json_array_get(entries, i), es_s, es_e, i, transaction, &es[i]) != 0 && transaction) {
            st = ct_http_fhir_send_issue(req, &es[i].r.issue);
            goto out;
        }
    }

    if (!transaction) {
        for (size_t i = 0; i < n; i++)
            if (es[i].r.status == 0)
                run_entry(&f, &es[i], NULL);
        st = respond_bundle(&f, "batch-response", es, n);
        goto out;
    }

    const char **from = calloc(n ? n : 1, sizeof *from), **to = calloc(n ? n : 1, sizeof *to);
    if (!from || !to) {
        free(from);
        free(to);
        st = ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
        goto out;
    }
    ct_error err = {0};
    if (ct_store_begin(f.st, &err) != 0) {
        free(from);
        free(to);
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: transaction: %s", req->request_id, err.msg);
        st = ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "the database is busy; nothing was changed, try again");
        goto out;
    }
    f.in_txn = 1;
    size_t n_map = 0, failed = n;
    int ok = plan_transaction(&f, es, n, from, to, &n_map, &failed) == 0;
    ct_http_ref_map map = {n_map, from, to};
    for (int rank = 0; ok && rank < 4; rank++)
        for (size_t i = 0; ok && i < n; i++) {
            if (op_rank(es[i].op) != rank)
                continue;
            run_entry(&f, &es[i], &map);
            if (es[i].r.status < 200 || es[i].r.status >= 300) {
                ok = 0;
                failed = i;
            }
        }
    if (ok && ct_store_commit(f.st, &err) != 0) {
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: commit: %s", req->request_id, err.msg);
        ct_http_result_fail(&es[0].r, 500, CT_FHIR_IT_EXCEPTION, NULL,
                            "the transaction could not be committed; nothing was changed (request id %s)",
                            req->request_id);
        failed = 0;
        ok = 0;
    }
    if (!ok)
        ct_store_rollback(f.st);
    f.in_txn = 0;
    free(from);
    free(to);
    if (!ok) {
        ct_http_result *r = &es[failed < n ? failed : 0].r;
        if (r->issue.diagnostics[0] && strncmp(r->issue.diagnostics, "Bundle.entry[", 13) != 0) {
            char msg[CT_FHIR_DIAG_MAX + 96];
            int w = snprintf(msg, sizeof msg, "Bundle.entry[%zu]: %s (nothing in the transaction was stored)",
                             failed, r->issue.diagnostics);
            size_t cut = w < 0 ? 0 : (size_t)w < sizeof r->issue.diagnostics ? (size_t)w : sizeof r->issue.diagnostics - 1;
            memcpy(r->issue.diagnostics, msg, cut);
            r->issue.diagnostics[cut] = '\0';
        }
        r->issue.http_status = r->status;
        st = ct_http_fhir_send_issue(req, &r->issue);
        goto out;
    }
    st = respond_bundle(&f, "transaction-response", es, n);
out:
    for (size_t i = 0; es && i < n; i++)
        ct_http_result_clear(&es[i].r);
    free(es);
    json_decref(bundle);
    free(body);
    return st;
}
