/* http room, search and history: FHIR queries turned into store queries,
 * and their results into Bundles. The one idea: the fhir room parses the
 * query (ct_fhir_search_parse: every prefix, modifier, _count, _sort and
 * what is ignored or refused), this file maps each clause onto the search
 * index (store.h) one to one, and writes the Bundle as text around the
 * stored resources, which are never parsed again (fhir_text.c).
 *
 * Paging is by _offset: the next link is the same canonical query with
 * _offset moved past what this page holds (a page may stop short of
 * _count when its bodies reach CT_STORE_PAGE_MAX_BYTES). total counts
 * every match, on the same snapshot as the page. Parameters the server
 * ignored (lenient handling) come back as an OperationOutcome entry with
 * search.mode "outcome", so a client can see that its search was wider
 * than it asked. */
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

/* ---- mapping --------------------------------------------------------------------------------- */

typedef ct_http_mapped_query mapped_query;

static ct_store_cmp cmp_of(ct_fhir_prefix p)
{
    switch (p) {
    case CT_FHIR_PFX_EQ: return CT_STORE_CMP_EQ;
    case CT_FHIR_PFX_NE: return CT_STORE_CMP_NE;
    case CT_FHIR_PFX_GT: return CT_STORE_CMP_GT;
    case CT_FHIR_PFX_LT: return CT_STORE_CMP_LT;
    case CT_FHIR_PFX_GE: return CT_STORE_CMP_GE;
    case CT_FHIR_PFX_LE: return CT_STORE_CMP_LE;
    case CT_FHIR_PFX_SA: return CT_STORE_CMP_SA;
    case CT_FHIR_PFX_EB: return CT_STORE_CMP_EB;
    case CT_FHIR_PFX_AP: return CT_STORE_CMP_OVERLAP;
    }
    return CT_STORE_CMP_EQ;
}

static ct_store_index_kind kind_of(ct_fhir_param_type t)
{
    switch (t) {
    case CT_FHIR_PARAM_DATE: return CT_STORE_INDEX_DATE;
    case CT_FHIR_PARAM_TOKEN: return CT_STORE_INDEX_TOKEN;
    case CT_FHIR_PARAM_REFERENCE: return CT_STORE_INDEX_REFERENCE;
    case CT_FHIR_PARAM_STRING: return CT_STORE_INDEX_STRING;
    }
    return CT_STORE_INDEX_TOKEN;
}

static ct_store_field field_of(const char *name)
{
    if (strcmp(name, "_id") == 0)
        return CT_STORE_FIELD_ID;
    if (strcmp(name, "_lastUpdated") == 0)
        return CT_STORE_FIELD_LAST_UPDATED;
    return CT_STORE_FIELD_INDEX;
}

/* A date value as a store comparison; ap is widened here as R4 recommends
 * (10% of the distance between now and the value, as ct_fhir_date_matches). */
static void map_date(const ct_fhir_search_value *v, int64_t now_ms, ct_store_search_value *o)
{
    o->cmp = cmp_of(v->prefix);
    o->start_ms = v->date.start_ms;
    o->end_ms = v->date.end_ms;
    if (v->prefix == CT_FHIR_PFX_AP) {
        int64_t gap = now_ms > o->start_ms ? now_ms - o->start_ms : o->start_ms - now_ms;
        int64_t widen = gap / 10;
        o->start_ms -= widen;
        o->end_ms = o->end_ms > INT64_MAX - widen ? INT64_MAX : o->end_ms + widen;
    }
}

void ct_http_search_map(const ct_fhir_search *s, int64_t now_ms, ct_http_mapped_query *m)
{
    memset(m, 0, sizeof *m);
    size_t nv = 0;
    for (size_t i = 0; i < s->n_clauses; i++) {
        const ct_fhir_search_clause *c = &s->clauses[i];
        ct_store_search_clause *o = &m->clauses[i];
        o->field = field_of(c->param->name);
        o->param = c->param->name;
        o->kind = kind_of(c->param->type);
        o->missing = -1;
        if (c->modifier == CT_FHIR_MOD_MISSING) {
            o->missing = c->n_values > 0 && c->values[0].missing ? 1 : 0;
            continue;
        }
        o->values = &m->values[nv];
        for (size_t k = 0; k < c->n_values && nv < CT_FHIR_SEARCH_MAX_VALUES; k++, nv++) {
            const ct_fhir_search_value *v = &c->values[k];
            ct_store_search_value *ov = &m->values[nv];
            switch (c->param->type) {
            case CT_FHIR_PARAM_DATE:
                map_date(v, now_ms, ov);
                break;
            case CT_FHIR_PARAM_TOKEN:
                ov->system = v->system;
                ov->code = v->code;
                break;
            case CT_FHIR_PARAM_REFERENCE:
                /* A versioned reference searches by its id: versions are
                 * not indexed. */
                ov->ref_type = v->ref_type;
                ov->ref_id = v->ref_id;
                break;
            case CT_FHIR_PARAM_STRING:
                ov->text = v->text;
                ov->match = c->modifier == CT_FHIR_MOD_EXACT      ? CT_STORE_STRING_EXACT
                            : c->modifier == CT_FHIR_MOD_CONTAINS ? CT_STORE_STRING_CONTAINS
                                                                  : CT_STORE_STRING_PREFIX;
                break;
            }
            o->n_values++;
        }
    }
    for (size_t i = 0; i < s->n_sort; i++) {
        m->sort[i].field = field_of(s->sort[i].param->name);
        m->sort[i].param = s->sort[i].param->name;
        m->sort[i].kind = kind_of(s->sort[i].param->type);
        m->sort[i].descending = s->sort[i].descending;
    }
    m->q.type = s->resource_type;
    m->q.n_clauses = s->n_clauses;
    m->q.clauses = m->clauses;
    m->q.n_sort = s->n_sort;
    m->q.sort = m->sort;
    m->q.offset = s->offset;
    m->q.count = s->count > CT_STORE_PAGE_MAX_ROWS ? CT_STORE_PAGE_MAX_ROWS : s->count;
    if (s->include_result) {
        m->q.include_param = "result";
        m->q.include_type = "Observation";
    }
}

/* A token bound to a patient searches that patient's compartment only: one
 * more clause, ANDed with the client's, the same one a client would send
 * as patient=Patient/ID (or _id=ID on Patient). A type without a "patient"
 * index (Provenance) then matches nothing, as compartment.c says. The
 * clauses are copied into space of the caller's with room for it. */
typedef struct compartment_query {
    ct_store_search_clause clauses[CT_FHIR_SEARCH_MAX_CLAUSES + 1];
    ct_store_search_value value;
} compartment_query;

static void restrict_to(ct_store_search_query *q, const char *type, const char *patient, compartment_query *cq)
{
    memcpy(cq->clauses, q->clauses, q->n_clauses * sizeof q->clauses[0]);
    ct_store_search_clause *c = &cq->clauses[q->n_clauses];
    memset(c, 0, sizeof *c);
    memset(&cq->value, 0, sizeof cq->value);
    c->missing = -1;
    c->n_values = 1;
    c->values = &cq->value;
    if (strcmp(type, "Patient") == 0) {
        c->field = CT_STORE_FIELD_ID;
        cq->value.code = patient;
    } else {
        c->field = CT_STORE_FIELD_INDEX;
        c->param = "patient";
        c->kind = CT_STORE_INDEX_REFERENCE;
        cq->value.ref_type = "Patient";
        cq->value.ref_id = patient;
    }
    q->clauses = cq->clauses;
    q->n_clauses++;
}

static int parse_query(ct_http_fhir *f, const char *type, const char *query, size_t len, ct_fhir_handling h,
                       ct_fhir_search **out, ct_http_result *r)
{
    ct_fhir_issue is;
    if (ct_fhir_search_parse(type, query ? query : "", query ? len : 0, h, out, &is) != 0) {
        r->issue = is;
        r->status = is.http_status >= 400 ? is.http_status : 400;
        if (is.http_status >= 500)
            ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: search: %s", f->req->request_id,
                        is.diagnostics);
        return -1;
    }
    return 0;
}

int ct_http_search_count_matches(ct_http_fhir *f, const char *type, const char *query, char *id_out,
                                 ct_http_result *r)
{
    id_out[0] = '\0';
    ct_fhir_search *s = NULL;
    /* Strict: ignoring a criterion would widen the match and hand back a
     * resource that is not the one meant. */
    if (parse_query(f, type, query, strlen(query), CT_FHIR_HANDLING_STRICT, &s, r) != 0) {
        char msg[CT_FHIR_DIAG_MAX + 32];
        int w = snprintf(msg, sizeof msg, "If-None-Exist: %s", r->issue.diagnostics);
        size_t cut = w < 0 ? 0 : (size_t)w < sizeof r->issue.diagnostics ? (size_t)w : sizeof r->issue.diagnostics - 1;
        memcpy(r->issue.diagnostics, msg, cut);
        r->issue.diagnostics[cut] = '\0';
        return -1;
    }
    mapped_query *m = malloc(sizeof *m);
    if (!m) {
        ct_fhir_search_free(s);
        return ct_http_result_fail(r, 503, CT_FHIR_IT_TRANSIENT, NULL, "out of memory");
    }
    ct_http_search_map(s, now_ms(), m);
    m->q.offset = 0;
    m->q.count = 2;
    m->q.n_sort = 0;
    m->q.include_param = m->q.include_type = NULL;
    compartment_query cq;
    const char *bound = ct_http_compartment(f->req, type, CT_HTTP_PERM_S);
    if (bound)
        restrict_to(&m->q, type, bound, &cq);
    ct_store_search_result res;
    ct_error err = {0};
    int rc = ct_store_search(f->st, &m->q, &res, &err);
    int n = -1;
    if (rc == 0) {
        n = res.total > 1 ? 2 : (int)res.total;
        if (n == 1 && res.matches.n == 1)
            snprintf(id_out, CT_FHIR_ID_MAX + 1, "%s", res.matches.rows[0].id);
    } else {
        ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: If-None-Exist search: %s", f->req->request_id,
                    err.msg);
        ct_http_result_fail(r, 500, CT_FHIR_IT_EXCEPTION, NULL,
                            "the server could not run the If-None-Exist search; request id %s",
                            f->req->request_id);
    }
    ct_store_search_result_free(&res);
    free(m);
    ct_fhir_search_free(s);
    return n;
}

/* ---- Bundles as text ---------------------------------------------------------------------------- */

static void bundle_open(ct_http_buf *b, const char *type)
{
    char id[37], now[CT_FHIR_INSTANT_CAP];
    if (ct_http_new_id(id) != 0)
        snprintf(id, sizeof id, "bundle");
    if (ct_fhir_instant_format(now_ms(), now, sizeof now) != 0)
        snprintf(now, sizeof now, "1970-01-01T00:00:00.000Z");
    ct_http_buf_printf(b, "{\"resourceType\":\"Bundle\",\"id\":\"%s\",\"meta\":{\"lastUpdated\":\"%s\"},"
                          "\"type\":\"%s\"",
                       id, now, type);
}

static void put_link(ct_http_buf *b, int *first, const char *relation, const char *url)
{
    ct_http_buf_puts(b, *first ? ",\"link\":[" : ",");
    *first = 0;
    ct_http_buf_puts(b, "{\"relation\":");
    ct_http_buf_put_json_string(b, relation);
    ct_http_buf_puts(b, ",\"url\":");
    ct_http_buf_put_json_string(b, url);
    ct_http_buf_puts(b, "}");
}

static void put_entry_resource(ct_http_fhir *f, ct_http_buf *b, int *first, const ct_store_row *row,
                               const char *mode)
{
    size_t len = 0;
    char *res = ct_http_resource_serve(row->json, row->len, row->type, row->id, row->version, row->last_updated_ms,
                                       &len);
    if (!res) {
        b->failed = b->failed ? b->failed : CT_ENOMEM;
        return;
    }
    ct_http_buf_puts(b, *first ? ",\"entry\":[" : ",");
    *first = 0;
    ct_http_buf_puts(b, "{\"fullUrl\":\"");
    ct_http_buf_printf(b, "%s/%s/%s\",\"resource\":", f->base, row->type, row->id);
    ct_http_buf_put(b, res, len);
    free(res);
    ct_http_buf_printf(b, ",\"search\":{\"mode\":\"%s\"}}", mode);
}

static int take_bundle(ct_http_fhir *f, ct_http_buf *b, ct_http_result *r)
{
    if (b->failed == CT_ELIMIT) {
        ct_http_buf_free(b);
        return ct_http_result_fail(r, 413, CT_FHIR_IT_TOO_COSTLY, NULL,
                                   "the answer would be too large; ask for fewer entries with _count");
    }
    if (b->failed) {
        ct_http_buf_free(b);
        ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: out of memory building a Bundle",
                    f->req->request_id);
        return ct_http_result_fail(r, 503, CT_FHIR_IT_TRANSIENT, NULL, "out of memory; try a smaller _count");
    }
    r->body = ct_http_buf_take(b, &r->body_len);
    r->status = 200;
    return r->body ? 0 : ct_http_result_fail(r, 503, CT_FHIR_IT_TRANSIENT, NULL, "out of memory");
}

/* Largest Bundle we build: every body at its page limit plus the wrapping. */
#define BUNDLE_MAX_BYTES (2 * CT_STORE_PAGE_MAX_BYTES + 64 * 1024 * 1024)

/* ---- search ------------------------------------------------------------------------------------- */

/* The patient a search is restricted to, for the audit log. */
static const char *search_patient(const ct_fhir_search *s)
{
    for (size_t i = 0; i < s->n_clauses; i++) {
        const ct_fhir_search_clause *c = &s->clauses[i];
        if (c->param->type == CT_FHIR_PARAM_REFERENCE && c->modifier != CT_FHIR_MOD_MISSING && c->n_values == 1 &&
            c->values[0].ref_type && strcmp(c->values[0].ref_type, "Patient") == 0)
            return c->values[0].ref_id;
    }
    if (strcmp(s->resource_type, "Patient") == 0)
        for (size_t i = 0; i < s->n_clauses; i++)
            if (strcmp(s->clauses[i].param->name, "_id") == 0 && s->clauses[i].n_values == 1 &&
                s->clauses[i].modifier == CT_FHIR_MOD_NONE)
                return s->clauses[i].values[0].code;
    return "";
}

int ct_http_op_search(ct_http_fhir *f, const char *type, const char *query, size_t len, ct_http_result *r)
{
    ct_fhir_search *s = NULL;
    if (parse_query(f, type, query, len, f->prefer.strict ? CT_FHIR_HANDLING_STRICT : CT_FHIR_HANDLING_LENIENT,
                    &s, r) != 0)
        return -1;
    if (s->format[0] && !ct_http_format_json(s->format)) {
        ct_fhir_search_free(s);
        return ct_http_result_fail(r, 406, CT_FHIR_IT_NOT_SUPPORTED, "_format",
                                   "this server answers in JSON only (_format=json)");
    }
    mapped_query *m = malloc(sizeof *m);
    if (!m) {
        ct_fhir_search_free(s);
        return ct_http_result_fail(r, 503, CT_FHIR_IT_TRANSIENT, NULL, "out of memory");
    }
    ct_http_search_map(s, now_ms(), m);
    compartment_query cq;
    const char *bound = ct_http_compartment(f->req, type, CT_HTTP_PERM_S);
    if (bound)
        restrict_to(&m->q, type, bound, &cq);
    ct_store_search_result res;
    ct_error err = {0};
    int rc = ct_store_search(f->st, &m->q, &res, &err);
    free(m);
    if (rc != 0) {
        ct_store_search_result_free(&res);
        ct_fhir_search_free(s);
        ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: search: %s", f->req->request_id, err.msg);
        return ct_http_result_fail(r, err.code == CT_ELIMIT ? 413 : 500,
                                   err.code == CT_ELIMIT ? CT_FHIR_IT_TOO_COSTLY : CT_FHIR_IT_EXCEPTION, NULL,
                                   "the server could not run the search; request id %s", f->req->request_id);
    }

    ct_http_buf b;
    ct_http_buf_init(&b, BUNDLE_MAX_BYTES);
    bundle_open(&b, "searchset");
    ct_http_buf_printf(&b, ",\"total\":%lld", (long long)res.total);
    /* The canonical query percent-encodes, so it may be three times the
     * raw one. */
    const size_t qcap = CT_FHIR_SEARCH_MAX_QUERY * 3 + 256, ucap = qcap + 512;
    char *q = malloc(qcap), *url = malloc(ucap);
    int first = 1;
    int64_t shown = (int64_t)res.matches.n;
    if (!q || !url)
        b.failed = CT_ENOMEM;
    if (q && url && ct_fhir_search_format(s, s->offset, q, qcap) == 0) {
        snprintf(url, ucap, "%s/%s?%s", f->base, type, q);
        put_link(&b, &first, "self", url);
        if (ct_fhir_search_format(s, 0, q, qcap) == 0) {
            snprintf(url, ucap, "%s/%s?%s", f->base, type, q);
            put_link(&b, &first, "first", url);
        }
        if (s->count > 0 && s->offset > 0) {
            int64_t prev = s->offset > s->count ? s->offset - s->count : 0;
            if (ct_fhir_search_format(s, prev, q, qcap) == 0) {
                snprintf(url, ucap, "%s/%s?%s", f->base, type, q);
                put_link(&b, &first, "previous", url);
            }
        }
        if (s->count > 0 && shown > 0 && s->offset + shown < res.total &&
            ct_fhir_search_format(s, s->offset + shown, q, qcap) == 0) {
            snprintf(url, ucap, "%s/%s?%s", f->base, type, q);
            put_link(&b, &first, "next", url);
        }
    }
    free(q);
    free(url);
    if (!first)
        ct_http_buf_puts(&b, "]");
    first = 1;
    for (size_t i = 0; i < res.matches.n; i++)
        put_entry_resource(f, &b, &first, &res.matches.rows[i], "match");
    for (size_t i = 0; i < res.included.n; i++) {
        /* An included resource is read on the caller's behalf: its type
         * needs the read permission, and a patient/ grant keeps it inside
         * the compartment (a report of patient A may name any Observation
         * as its result). */
        const ct_store_row *row = &res.included.rows[i];
        ct_http_grant g = ct_http_caller_grant(f->req, row->type, CT_HTTP_PERM_R);
        if (g == CT_HTTP_GRANT_NONE)
            continue;
        if (g == CT_HTTP_GRANT_PATIENT) {
            char owner[CT_FHIR_ID_MAX + 1];
            ct_http_patient_of_current(f->st, row->type, row->id, owner, sizeof owner);
            if (!ct_http_in_compartment(f->req->caller.patient, owner))
                continue;
        }
        put_entry_resource(f, &b, &first, row, "include");
    }
    if (s->n_issues > 0) {
        char *oo = ct_fhir_operation_outcome_dump(s->issues, s->n_issues);
        if (oo) {
            ct_http_buf_puts(&b, first ? ",\"entry\":[" : ",");
            first = 0;
            ct_http_buf_puts(&b, "{\"resource\":");
            ct_http_buf_puts(&b, oo);
            ct_http_buf_puts(&b, ",\"search\":{\"mode\":\"outcome\"}}");
            free(oo);
        }
    }
    if (!first)
        ct_http_buf_puts(&b, "]");
    ct_http_buf_puts(&b, "}");

    /* The audit detail: what was asked (the canonical query) and how much
     * came back. Patient identifiers in the query belong in the audit log,
     * which is where an auditor looks for who searched for whom. */
    char detail[1400];
    {
        char canon[1024];
        if (ct_fhir_search_format(s, s->offset, canon, sizeof canon) != 0)
            snprintf(canon + sizeof canon - 4, 4, "...");
        ct_http_buf d;
        ct_http_buf_init(&d, sizeof detail - 1);
        ct_http_buf_puts(&d, "{\"query\":");
        ct_http_buf_put_json_string(&d, canon);
        ct_http_buf_printf(&d, ",\"total\":%lld,\"returned\":%zu,\"included\":%zu}", (long long)res.total,
                           res.matches.n, res.included.n);
        snprintf(detail, sizeof detail, "%s", d.failed || !d.p ? "{}" : d.p);
        ct_http_buf_free(&d);
    }
    char patient[CT_FHIR_ID_MAX + 1];
    snprintf(patient, sizeof patient, "%s", bound && bound[0] ? bound : search_patient(s));
    ct_store_search_result_free(&res);
    ct_fhir_search_free(s);
    if (take_bundle(f, &b, r) != 0)
        return -1;

    if (!f->in_txn && ct_store_begin(f->st, &err) != 0)
        goto audit_failed;
    if (ct_http_audit(f, "search", type, "", 0, patient, detail, &err) != 0) {
        if (!f->in_txn)
            ct_store_rollback(f->st);
        goto audit_failed;
    }
    if (!f->in_txn && ct_store_commit(f->st, &err) != 0)
        goto audit_failed;
    return 0;
audit_failed:
    ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: audit: %s", f->req->request_id, err.msg);
    return ct_http_result_fail(r, 500, CT_FHIR_IT_EXCEPTION, NULL,
                               "the server could not record this search in the audit log, so it is not "
                               "answered; request id %s",
                               f->req->request_id);
}

/* ---- history ------------------------------------------------------------------------------------- */

static int query_int(const char *query, const char *name, int64_t max, int64_t *out, ct_http_result *r)
{
    char v[32];
    int got = ct_http_query_get(query, name, v, sizeof v);
    if (got == 0)
        return 0;
    char *end = NULL;
    long long n = got > 0 ? strtoll(v, &end, 10) : -1;
    if (got < 0 || !v[0] || *end || n < 0 || n > max)
        return ct_http_result_fail(r, 400, CT_FHIR_IT_VALUE, name, "%s must be a whole number from 0 to %lld",
                                   name, (long long)max);
    *out = n;
    return 0;
}

int ct_http_op_history(ct_http_fhir *f, const char *type, const char *id, const char *query, ct_http_result *r)
{
    int64_t count = CT_FHIR_SEARCH_DEFAULT_COUNT, offset = 0, since_ms = 0;
    if (query_int(query, "_count", CT_STORE_PAGE_MAX_ROWS, &count, r) != 0 ||
        query_int(query, "_offset", CT_FHIR_SEARCH_MAX_OFFSET, &offset, r) != 0)
        return -1;
    char since[64];
    int got = ct_http_query_get(query, "_since", since, sizeof since);
    if (got != 0) {
        ct_fhir_datetime dt;
        ct_fhir_issue is;
        if (got < 0 || ct_fhir_datetime_parse(since, strlen(since), CT_FHIR_DT_INSTANT, "_since", &dt, &is) != 0)
            return ct_http_result_fail(r, 400, CT_FHIR_IT_VALUE, "_since",
                                       "_since must be an instant, e.g. 2026-01-01T00:00:00Z");
        since_ms = dt.start_ms < 0 ? 0 : dt.start_ms;
    }
    /* A bound token sees the history of a resource of its patient, and
     * only versions that were its patient's (compartment.c). */
    const char *bound = ct_http_compartment(f->req, type, CT_HTTP_PERM_R);
    if (bound) {
        char current[CT_FHIR_ID_MAX + 1];
        ct_http_patient_of_current(f->st, type, id, current, sizeof current);
        if (!ct_http_in_compartment(bound, current))
            return ct_http_result_fail(r, 404, CT_FHIR_IT_NOT_FOUND, NULL, "there is no %s with id %s", type, id);
    }
    ct_store_rows rows;
    int64_t total = 0;
    ct_error err = {0};
    int rc = ct_store_resource_history(f->st, type, id, since_ms, offset, (int)count, &rows, &total, &err);
    if (rc == CT_ENOTFOUND)
        return ct_http_result_fail(r, 404, CT_FHIR_IT_NOT_FOUND, NULL, "there is no %s with id %s", type, id);
    for (size_t i = 0; bound && rc == CT_OK && i < rows.n; i++) {
        char was[CT_FHIR_ID_MAX + 1];
        ct_http_patient_of_body(type, id, rows.rows[i].json, rows.rows[i].len, was, sizeof was);
        if (!rows.rows[i].deleted && !ct_http_in_compartment(bound, was)) {
            ct_store_rows_free(&rows);
            return ct_http_result_fail(r, 404, CT_FHIR_IT_NOT_FOUND, NULL, "there is no %s with id %s", type, id);
        }
    }
    if (rc != 0) {
        ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: history: %s", f->req->request_id, err.msg);
        return ct_http_result_fail(r, 500, CT_FHIR_IT_EXCEPTION, NULL,
                                   "the server could not read the history; request id %s", f->req->request_id);
    }
    ct_http_buf b;
    ct_http_buf_init(&b, BUNDLE_MAX_BYTES);
    bundle_open(&b, "history");
    ct_http_buf_printf(&b, ",\"total\":%lld", (long long)total);
    int first = 1;
    char url[600];
    char since_q[80] = "";
    if (got > 0) {
        char inst[CT_FHIR_INSTANT_CAP];
        if (ct_fhir_instant_format(since_ms, inst, sizeof inst) == 0)
            snprintf(since_q, sizeof since_q, "&_since=%s", inst);
    }
    snprintf(url, sizeof url, "%s/%s/%s/_history?_count=%lld&_offset=%lld%s", f->base, type, id, (long long)count,
             (long long)offset, since_q);
    put_link(&b, &first, "self", url);
    if (offset > 0) {
        int64_t prev = offset > count ? offset - count : 0;
        snprintf(url, sizeof url, "%s/%s/%s/_history?_count=%lld&_offset=%lld%s", f->base, type, id,
                 (long long)count, (long long)prev, since_q);
        put_link(&b, &first, "previous", url);
    }
    if (count > 0 && rows.n > 0 && offset + (int64_t)rows.n < total) {
        snprintf(url, sizeof url, "%s/%s/%s/_history?_count=%lld&_offset=%lld%s", f->base, type, id,
                 (long long)count, (long long)(offset + (int64_t)rows.n), since_q);
        put_link(&b, &first, "next", url);
    }
    ct_http_buf_puts(&b, "]");
    first = 1;
    for (size_t i = 0; i < rows.n; i++) {
        const ct_store_row *row = &rows.rows[i];
        ct_http_buf_puts(&b, first ? ",\"entry\":[" : ",");
        first = 0;
        ct_http_buf_printf(&b, "{\"fullUrl\":\"%s/%s/%s\"", f->base, type, id);
        if (!row->deleted) {
            size_t len = 0;
            char *res = ct_http_resource_serve(row->json, row->len, type, id, row->version, row->last_updated_ms,
                                               &len);
            if (!res) {
                b.failed = b.failed ? b.failed : CT_ENOMEM;
                break;
            }
            ct_http_buf_puts(&b, ",\"resource\":");
            ct_http_buf_put(&b, res, len);
            free(res);
        }
        /* Which interaction made each version is not stored: the first is
         * shown as a create, later ones as updates, markers as deletes. */
        const char *method = row->deleted ? "DELETE" : row->version == 1 ? "POST" : "PUT";
        char when[CT_FHIR_INSTANT_CAP] = "";
        ct_fhir_instant_format(row->last_updated_ms, when, sizeof when);
        if (row->version == 1 && !row->deleted)
            ct_http_buf_printf(&b, ",\"request\":{\"method\":\"%s\",\"url\":\"%s\"}", method, type);
        else
            ct_http_buf_printf(&b, ",\"request\":{\"method\":\"%s\",\"url\":\"%s/%s\"}", method, type, id);
        ct_http_buf_printf(&b, ",\"response\":{\"status\":\"%s\",\"etag\":\"W/\\\"%lld\\\"\",\"lastModified\":\"%s\"}}",
                           row->deleted ? "204" : row->version == 1 ? "201" : "200", (long long)row->version, when);
    }
    if (!first)
        ct_http_buf_puts(&b, "]");
    ct_http_buf_puts(&b, "}");
    ct_store_rows_free(&rows);
    if (take_bundle(f, &b, r) != 0)
        return -1;

    char patient[CT_FHIR_ID_MAX + 1] = "";
    if (strcmp(type, "Patient") == 0)
        snprintf(patient, sizeof patient, "%s", id);
    else if (ct_store_resource_reference(f->st, type, id, "patient", patient, sizeof patient, NULL) != 0)
        patient[0] = '\0';
    if (!f->in_txn && ct_store_begin(f->st, &err) != 0)
        goto audit_failed;
    if (ct_http_audit(f, "history", type, id, 0, patient, NULL, &err) != 0) {
        if (!f->in_txn)
            ct_store_rollback(f->st);
        goto audit_failed;
    }
    if (!f->in_txn && ct_store_commit(f->st, &err) != 0)
        goto audit_failed;
    return 0;
audit_failed:
    ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: audit: %s", f->req->request_id, err.msg);
    return ct_http_result_fail(r, 500, CT_FHIR_IT_EXCEPTION, NULL,
                               "the server could not record this access in the audit log, so it is not "
                               "answered; request id %s",
                               f->req->request_id);
}
