/* http room, the audit log over the API: GET /fhir/AuditEvent (search) and
 * GET /fhir/AuditEvent/{seq} (read), for auditors.
 *
 * The one idea: an entry of the log is served exactly as `cardiotwin audit
 * export --format fhir` writes it (ct_audit_record_to_fhir, IHE BALP), with
 * its sequence number as id, so that what an auditor fetches here verifies
 * against the chain like an export does. The query is parsed by the fhir
 * room's search grammar (every date prefix, tokens, _count, _sort) and run
 * as SQL over the audit table (store/audit_search.c), never by loading the
 * log. A page lives inside a snapshot: the next link carries _snapshot=N
 * (the log's last entry when the first page was served), so appending,
 * which every read of the log itself does, never shifts a later page.
 *
 * Reading the log is audited too: one "audit-read" entry per request,
 * naming the query, written after the page was read and outside its
 * snapshot. It does not recurse: the entry is a plain append, and the only
 * thing that reads the log is a request, which writes one entry and no
 * more. The log is append-only: POST, PUT and DELETE on AuditEvent have no
 * route and answer 405. A caller bound to a patient never reads it (its
 * scopes do not grant AuditEvent, and this file refuses it again). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cardiotwin/audit.h"
#include "fhir_internal.h"

#define SYS_ENTITY_TYPE "http://terminology.hl7.org/CodeSystem/audit-entity-type"
#define SYS_BALP_ENTITY "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
#define SYS_RESOURCE_TYPES "http://hl7.org/fhir/resource-types"
#define SYS_ACTION "http://hl7.org/fhir/audit-event-action"
#define SYS_OUTCOME "http://hl7.org/fhir/audit-event-outcome"
#define SYS_CT_ACTION CT_FHIR_CANONICAL_BASE "/CodeSystem/audit-action"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- mapping a FHIR search onto the store's query ------------------------------------------ */

typedef struct mapper {
    ct_http_audit_query *out;
    ct_store_audit_clause *clause;
    ct_fhir_issue *issue;
    int overflow;
} mapper;

static ct_store_audit_term *new_term(mapper *m)
{
    ct_http_audit_query *o = m->out;
    if (o->n_terms == CT_STORE_AUDIT_MAX_TERMS) {
        m->overflow = 1;
        return NULL;
    }
    ct_store_audit_term *t = &o->terms[o->n_terms++];
    memset(t, 0, sizeof *t);
    if (m->clause->n_terms == 0)
        m->clause->terms = t;
    m->clause->n_terms++;
    return t;
}

static void cond(ct_store_audit_term *t, ct_store_audit_col col, ct_store_audit_op op, const char *text, int64_t lo,
                 int64_t hi)
{
    if (t && t->n < CT_STORE_AUDIT_TERM_CONDS)
        t->c[t->n++] = (ct_store_audit_cond){col, op, text, lo, hi};
}

static void nothing(mapper *m)
{
    new_term(m); /* a term without conditions matches no entry */
}

static void everything(mapper *m)
{
    cond(new_term(m), CT_STORE_AUDIT_COL_SEQ, CT_STORE_AUDIT_RANGE, NULL, INT64_MIN, INT64_MAX);
}

static void text_eq(mapper *m, ct_store_audit_col col, const char *v)
{
    cond(new_term(m), col, CT_STORE_AUDIT_EQ, v, 0, 0);
}

/* An entry's time is an instant, 1 ms wide: R4's comparisons of a target
 * range [t, t+1) with the search range [s, e) reduce to these intervals. */
static void date_term(mapper *m, const ct_fhir_search_value *v, int64_t now)
{
    int64_t s = v->date.start_ms, e = v->date.end_ms;
    ct_store_audit_op op = CT_STORE_AUDIT_RANGE;
    int64_t lo = s, hi = e;
    switch (v->prefix) {
    case CT_FHIR_PFX_EQ: break;
    case CT_FHIR_PFX_NE: op = CT_STORE_AUDIT_OUTSIDE; break;
    case CT_FHIR_PFX_GT:
    case CT_FHIR_PFX_SA: lo = e; hi = INT64_MAX; break;
    case CT_FHIR_PFX_LT:
    case CT_FHIR_PFX_EB: lo = INT64_MIN; hi = s; break;
    case CT_FHIR_PFX_GE: hi = INT64_MAX; break;
    case CT_FHIR_PFX_LE: lo = INT64_MIN; break;
    case CT_FHIR_PFX_AP: {
        /* Widened by 10% of the distance from now, as the other searches do. */
        int64_t gap = now > s ? now - s : s - now, w = gap / 10;
        lo = s > INT64_MIN + w ? s - w : INT64_MIN;
        hi = e < INT64_MAX - w ? e + w : INT64_MAX;
        break;
    }
    }
    cond(new_term(m), CT_STORE_AUDIT_COL_TIME, op, NULL, lo, hi);
}

static int parse_positive(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 18)
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v <= 0)
        return -1;
    *out = v;
    return 0;
}

static int sys_is(const char *sys, const char *want)
{
    return !sys || strcmp(sys, want) == 0;
}

static void action_term(mapper *m, const ct_fhir_search_value *v)
{
    int any = 0;
    if (v->code && strlen(v->code) == 1 && sys_is(v->system, SYS_ACTION))
        for (size_t i = 0; ct_audit_action_at(i); i++)
            if (ct_audit_action_crude(ct_audit_action_at(i)) == v->code[0]) {
                text_eq(m, CT_STORE_AUDIT_COL_ACTION, ct_audit_action_at(i));
                any = 1;
            }
    if (!any)
        nothing(m);
}

/* subtype: cardiotwin's own action code names an action whole; a
 * restful-interaction or DICOM code names the actions (and the shapes of
 * entry: with or without a resource type and id) whose AuditEvent carries
 * it, as ct_audit_action_subtype says. */
static void subtype_term(mapper *m, const ct_fhir_search_value *v)
{
    int any = 0;
    for (size_t i = 0; v->code && ct_audit_action_at(i); i++) {
        const char *a = ct_audit_action_at(i);
        if (sys_is(v->system, SYS_CT_ACTION) && strcmp(v->code, a) == 0) {
            text_eq(m, CT_STORE_AUDIT_COL_ACTION, a);
            any = 1;
            continue;
        }
        int shapes = 0;
        for (int s = 0; s < 4; s++) {
            const char *sys, *code;
            if (ct_audit_action_subtype(a, s & 1, (s >> 1) & 1, &sys, &code) && strcmp(code, v->code) == 0 &&
                sys_is(v->system, sys))
                shapes |= 1 << s;
        }
        if (shapes == 15) {
            text_eq(m, CT_STORE_AUDIT_COL_ACTION, a);
            any = 1;
            continue;
        }
        for (int s = 0; s < 4; s++) {
            if (!(shapes & (1 << s)))
                continue;
            ct_store_audit_term *t = new_term(m);
            cond(t, CT_STORE_AUDIT_COL_ACTION, CT_STORE_AUDIT_EQ, a, 0, 0);
            cond(t, CT_STORE_AUDIT_COL_RESOURCE_TYPE, (s & 1) ? CT_STORE_AUDIT_PRESENT : CT_STORE_AUDIT_ABSENT, NULL,
                 0, 0);
            cond(t, CT_STORE_AUDIT_COL_RESOURCE_ID, (s & 2) ? CT_STORE_AUDIT_PRESENT : CT_STORE_AUDIT_ABSENT, NULL,
                 0, 0);
            any = 1;
        }
    }
    if (!any)
        nothing(m);
}

/* entity-type: the codes our AuditEvents carry in entity.type (1 Person:
 * the patient, 2 System Object: a resource, 4 Other: the detail, BALP's
 * XrequestId), or a resource type ("Observation"), which R4's entity type
 * binding also admits. */
static void entity_term(mapper *m, const ct_fhir_search_value *v)
{
    const char *c = v->code, *sys = v->system;
    if (!c) {
        nothing(m);
        return;
    }
    if (sys_is(sys, SYS_ENTITY_TYPE) && strcmp(c, "1") == 0)
        cond(new_term(m), CT_STORE_AUDIT_COL_PATIENT, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
    else if (sys_is(sys, SYS_ENTITY_TYPE) && strcmp(c, "2") == 0)
        cond(new_term(m), CT_STORE_AUDIT_COL_RESOURCE_TYPE, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
    else if (sys_is(sys, SYS_ENTITY_TYPE) && strcmp(c, "4") == 0)
        cond(new_term(m), CT_STORE_AUDIT_COL_DETAIL, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
    else if (sys_is(sys, SYS_BALP_ENTITY) && strcmp(c, "XrequestId") == 0)
        cond(new_term(m), CT_STORE_AUDIT_COL_REQUEST_ID, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
    else if (sys_is(sys, SYS_RESOURCE_TYPES) && c[0] >= 'A' && c[0] <= 'Z')
        text_eq(m, CT_STORE_AUDIT_COL_RESOURCE_TYPE, c);
    else
        nothing(m);
}

static void value_term(mapper *m, const char *name, const ct_fhir_search_value *v, int64_t now)
{
    int64_t n;
    if (strcmp(name, "date") == 0) {
        date_term(m, v, now);
    } else if (strcmp(name, "_id") == 0) {
        if (v->code && parse_positive(v->code, &n) == 0)
            cond(new_term(m), CT_STORE_AUDIT_COL_SEQ, CT_STORE_AUDIT_EQ, NULL, n, 0);
        else
            nothing(m);
    } else if (strcmp(name, "patient") == 0) {
        if (v->ref_id && (!v->ref_type || strcmp(v->ref_type, "Patient") == 0))
            text_eq(m, CT_STORE_AUDIT_COL_PATIENT, v->ref_id);
        else
            nothing(m);
    } else if (strcmp(name, "agent") == 0) {
        /* The actor is an identifier without a system. */
        if (v->system && v->system[0])
            nothing(m);
        else if (!v->code)
            everything(m);
        else
            text_eq(m, CT_STORE_AUDIT_COL_ACTOR, v->code);
    } else if (strcmp(name, "action") == 0) {
        action_term(m, v);
    } else if (strcmp(name, "subtype") == 0) {
        subtype_term(m, v);
    } else if (strcmp(name, "entity-type") == 0) {
        entity_term(m, v);
    } else if (strcmp(name, "outcome") == 0) {
        if (v->code && sys_is(v->system, SYS_OUTCOME) &&
            (strcmp(v->code, "0") == 0 || strcmp(v->code, "4") == 0 || strcmp(v->code, "8") == 0 ||
             strcmp(v->code, "12") == 0))
            cond(new_term(m), CT_STORE_AUDIT_COL_OUTCOME, CT_STORE_AUDIT_EQ, NULL, atoi(v->code), 0);
        else
            nothing(m);
    } else {
        nothing(m);
    }
}

/* :missing. Only the patient (and the entities) can be absent from an
 * entry; every entry has a time, an agent, an action, a subtype (its own
 * action code) and an outcome. */
static void missing_term(mapper *m, const char *name, int missing)
{
    if (strcmp(name, "patient") == 0) {
        cond(new_term(m), CT_STORE_AUDIT_COL_PATIENT, missing ? CT_STORE_AUDIT_ABSENT : CT_STORE_AUDIT_PRESENT, NULL,
             0, 0);
    } else if (strcmp(name, "entity-type") == 0) {
        ct_store_audit_term *t = new_term(m);
        if (missing) {
            cond(t, CT_STORE_AUDIT_COL_RESOURCE_TYPE, CT_STORE_AUDIT_ABSENT, NULL, 0, 0);
            cond(t, CT_STORE_AUDIT_COL_PATIENT, CT_STORE_AUDIT_ABSENT, NULL, 0, 0);
            cond(t, CT_STORE_AUDIT_COL_REQUEST_ID, CT_STORE_AUDIT_ABSENT, NULL, 0, 0);
            cond(t, CT_STORE_AUDIT_COL_DETAIL, CT_STORE_AUDIT_ABSENT, NULL, 0, 0);
        } else {
            cond(t, CT_STORE_AUDIT_COL_RESOURCE_TYPE, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
            cond(new_term(m), CT_STORE_AUDIT_COL_PATIENT, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
            cond(new_term(m), CT_STORE_AUDIT_COL_REQUEST_ID, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
            cond(new_term(m), CT_STORE_AUDIT_COL_DETAIL, CT_STORE_AUDIT_PRESENT, NULL, 0, 0);
        }
    } else if (missing) {
        nothing(m);
    } else {
        everything(m);
    }
}

int ct_http_audit_query_map(ct_fhir_search *s, int64_t now, ct_http_audit_query *out, ct_fhir_issue *issue)
{
    memset(out, 0, sizeof *out);
    if (s->n_clauses > CT_STORE_AUDIT_MAX_CLAUSES)
        return ct_fhir_issue_set(issue, -1, 413, CT_FHIR_SEV_ERROR, CT_FHIR_IT_TOO_COSTLY, NULL,
                                 "an AuditEvent search takes at most %d parameters; this one has %zu",
                                 CT_STORE_AUDIT_MAX_CLAUSES, s->n_clauses);
    mapper m = {out, NULL, issue, 0};
    for (size_t i = 0; i < s->n_clauses; i++) {
        const ct_fhir_search_clause *c = &s->clauses[i];
        m.clause = &out->q.clauses[out->q.n_clauses++];
        for (size_t k = 0; k < c->n_values; k++) {
            if (c->modifier == CT_FHIR_MOD_MISSING)
                missing_term(&m, c->param->name, c->values[k].missing);
            else
                value_term(&m, c->param->name, &c->values[k], now);
        }
        if (m.overflow)
            return ct_fhir_issue_set(issue, -1, 413, CT_FHIR_SEV_ERROR, CT_FHIR_IT_TOO_COSTLY, c->param->name,
                                     "this AuditEvent search needs more than %d alternatives in all; ask for "
                                     "fewer values",
                                     CT_STORE_AUDIT_MAX_TERMS);
    }
    out->q.order = CT_STORE_AUDIT_NEWEST_FIRST;
    if (s->n_sort > 0 && strcmp(s->sort[0].param->name, "date") == 0)
        out->q.order = s->sort[0].descending ? CT_STORE_AUDIT_TIME_DESC : CT_STORE_AUDIT_TIME_ASC;
    if (s->count > CT_HTTP_AUDIT_PAGE_MAX) {
        s->count = CT_HTTP_AUDIT_PAGE_MAX;
        if (s->n_issues < CT_FHIR_SEARCH_MAX_ISSUES)
            ct_fhir_issue_set(&s->issues[s->n_issues++], 0, 200, CT_FHIR_SEV_INFORMATION,
                              CT_FHIR_IT_INFORMATIONAL, "_count",
                              "_count was lowered to %d, the most one page of AuditEvents holds",
                              CT_HTTP_AUDIT_PAGE_MAX);
    }
    out->q.count = s->count < 0 ? 0 : s->count;
    out->q.offset = s->offset;
    return 0;
}

/* ---- the handlers ------------------------------------------------------------------------------ */

/* The log is for auditors: even a scope that would grant it does not
 * reach it through a token bound to one patient. */
static int refuse_bound(ct_http_req *req)
{
    if (!req->caller.patient[0])
        return 0;
    ct_http_resp head = {.status = 403,
                         .www_authenticate = "Bearer realm=\"cardiotwin\", error=\"insufficient_scope\""};
    return ct_http_send_error_resp(req, &head,
                                   "a token bound to a patient cannot read the audit log; an auditor's token can");
}

/* Takes our own paging parameter out of the query (the fhir room's
 * grammar does not know it). 0, or -1 when it is malformed or repeated. */
static int take_snapshot(const char *q, char *rest, size_t cap, int64_t *snap)
{
    *snap = 0;
    size_t used = 0;
    int seen = 0;
    rest[0] = '\0';
    for (const char *p = q; *p;) {
        size_t n = strcspn(p, "&");
        if (n > 10 && strncmp(p, "_snapshot=", 10) == 0) {
            char v[24];
            if (seen || n - 10 >= sizeof v)
                return -1;
            memcpy(v, p + 10, n - 10);
            v[n - 10] = '\0';
            if (parse_positive(v, snap) != 0)
                return -1;
            seen = 1;
        } else if (n > 0) {
            if (used + n + 2 > cap)
                return -1;
            if (used)
                rest[used++] = '&';
            memcpy(rest + used, p, n);
            used += n;
            rest[used] = '\0';
        } else if (n == 10 && strncmp(p, "_snapshot=", 10) == 0) {
            return -1;
        }
        p += n;
        if (*p == '&')
            p++;
    }
    return 0;
}

static int send_json(ct_http_fhir *f, json_t *doc)
{
    ct_http_result r = {0};
    r.status = 200;
    r.body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!r.body)
        return ct_http_fhir_fail(f->req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
    r.body_len = strlen(r.body);
    int st = ct_http_fhir_respond(f, &r, 0);
    ct_http_result_clear(&r);
    return st;
}

static int audit_failed(ct_http_req *req, const ct_error *err)
{
    ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: audit: %s", req->request_id, err->msg);
    return ct_http_fhir_fail(req, 500, CT_FHIR_IT_EXCEPTION,
                             "the server could not record this read of the audit log, so it is not answered; "
                             "request id %s",
                             req->request_id);
}

static int add_link(json_t *links, const char *rel, const ct_http_fhir *f, const ct_fhir_search *s, int64_t offset,
                    int64_t snapshot)
{
    const size_t qcap = CT_FHIR_SEARCH_MAX_QUERY * 3 + 64;
    char *q = malloc(qcap), *url = malloc(qcap + sizeof f->base + 64);
    int bad = !q || !url || ct_fhir_search_format(s, offset, q, qcap) != 0;
    if (!bad) {
        snprintf(url, qcap + sizeof f->base + 64, "%s/AuditEvent?%s%s_snapshot=%" PRId64, f->base, q, q[0] ? "&" : "",
                 snapshot);
        bad = json_array_append_new(links, json_pack("{s:s, s:s}", "relation", rel, "url", url)) != 0;
    }
    free(q);
    free(url);
    return bad ? -1 : 0;
}

/* The entries of one page, read inside one snapshot. */
static int read_page(ct_http_fhir *f, const ct_http_audit_query *aq, int64_t want_snapshot, json_t *entries,
                     int64_t *snapshot, int64_t *total, size_t *returned, ct_error *err)
{
    int started = 0;
    int rc = ct_store_audit_read_begin(f->st, &started, err);
    if (rc)
        return rc;
    unsigned char head[32];
    int64_t last = 0;
    ct_store_audit_query q = aq->q;
    int64_t seqs[CT_HTTP_AUDIT_PAGE_MAX];
    size_t n = 0;
    ct_audit_record *row = malloc(sizeof *row);
    if (!row)
        rc = ct_error_set(err, CT_ENOMEM, "out of memory");
    if (!rc)
        rc = ct_store_audit_last(f->st, &last, head, err);
    if (!rc) {
        q.max_seq = want_snapshot > 0 && want_snapshot < last ? want_snapshot : last;
        *snapshot = q.max_seq;
        rc = ct_store_audit_find(f->st, &q, seqs, CT_HTTP_AUDIT_PAGE_MAX, &n, total, err);
    }
    for (size_t i = 0; !rc && i < n; i++) {
        if ((rc = ct_store_audit_get(f->st, seqs[i], row, err)) != 0)
            break;
        json_t *ev = ct_audit_record_to_fhir(row);
        char full[sizeof f->base + 48];
        snprintf(full, sizeof full, "%s/AuditEvent/%" PRId64, f->base, row->seq);
        if (!ev || json_array_append_new(entries, json_pack("{s:s, s:o, s:{s:s}}", "fullUrl", full, "resource", ev,
                                                            "search", "mode", "match")) != 0)
            rc = ct_error_set(err, CT_ENOMEM, "out of memory");
    }
    *returned = n;
    free(row);
    ct_store_audit_read_end(f->st, started);
    return rc;
}

/* The patient an audit-read names: the one asked for, when exactly one. */
static const char *searched_patient(const ct_fhir_search *s)
{
    const char *p = "";
    for (size_t i = 0; i < s->n_clauses; i++) {
        const ct_fhir_search_clause *c = &s->clauses[i];
        if (strcmp(c->param->name, "patient") != 0 || c->modifier == CT_FHIR_MOD_MISSING)
            continue;
        if (c->n_values != 1 || p[0] || !c->values[0].ref_id)
            return "";
        p = c->values[0].ref_id;
    }
    return strlen(p) <= CT_AUDIT_PATIENT_MAX ? p : "";
}

int ct_http_handle_audit_search(ct_http_req *req)
{
    int st = refuse_bound(req);
    if (st)
        return st;
    ct_http_fhir f;
    int post = (req->method_bit & CT_HTTP_POST) != 0;
    if ((st = ct_http_fhir_begin(req, &f, post, CT_HTTP_MEDIA_FORM)) != 0)
        return st;
    const char *url_q = req->query ? req->query : "";
    char *body = NULL;
    size_t blen = 0;
    if (post && (st = ct_http_fhir_body(req, &body, &blen)) != 0)
        return st;
    size_t ql = strlen(url_q);
    if (ql + blen + 2 > CT_FHIR_SEARCH_MAX_QUERY + 2) {
        free(body);
        return ct_http_fhir_fail(req, 413, CT_FHIR_IT_TOO_LONG,
                                 "the search parameters are longer than %d bytes; use fewer", CT_FHIR_SEARCH_MAX_QUERY);
    }
    char *all = malloc(ql + blen + 2), *rest = malloc(ql + blen + 2);
    if (!all || !rest) {
        free(body);
        free(all);
        free(rest);
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
    }
    snprintf(all, ql + blen + 2, "%s%s%s", url_q, ql && blen ? "&" : "", body ? body : "");
    free(body);
    int64_t snapshot = 0;
    int bad_snap = take_snapshot(all, rest, ql + blen + 2, &snapshot);
    free(all);
    if (bad_snap) {
        free(rest);
        return ct_http_fhir_fail(req, 400, CT_FHIR_IT_VALUE,
                                 "_snapshot must appear once, as a sequence number from a next link");
    }

    ct_fhir_search *s = NULL;
    ct_fhir_issue is;
    int rc = ct_fhir_search_parse("AuditEvent", rest, strlen(rest),
                                  f.prefer.strict ? CT_FHIR_HANDLING_STRICT : CT_FHIR_HANDLING_LENIENT, &s, &is);
    free(rest);
    if (rc != 0) {
        if (is.http_status < 400)
            is.http_status = 400;
        return ct_http_fhir_send_issue(req, &is);
    }
    if (s->format[0] && !ct_http_format_json(s->format)) {
        ct_fhir_search_free(s);
        return ct_http_fhir_fail(req, 406, CT_FHIR_IT_NOT_SUPPORTED, "this server answers in JSON only (_format=json)");
    }
    ct_http_audit_query *aq = malloc(sizeof *aq);
    if (!aq) {
        ct_fhir_search_free(s);
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
    }
    if (ct_http_audit_query_map(s, now_ms(), aq, &is) != 0) {
        free(aq);
        ct_fhir_search_free(s);
        return ct_http_fhir_send_issue(req, &is);
    }

    json_t *entries = json_array(), *links = json_array();
    int64_t snap = 0, total = 0;
    size_t returned = 0;
    ct_error err = {0};
    rc = entries && links ? read_page(&f, aq, snapshot, entries, &snap, &total, &returned, &err)
                          : ct_error_set(&err, CT_ENOMEM, "out of memory");
    free(aq);
    if (rc != 0) {
        json_decref(entries);
        json_decref(links);
        ct_fhir_search_free(s);
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: audit search: %s", req->request_id, err.msg);
        return ct_http_fhir_fail(req, 500, CT_FHIR_IT_EXCEPTION, "the server could not search the audit log; "
                                 "request id %s", req->request_id);
    }
    int lbad = add_link(links, "self", &f, s, s->offset, snap) || add_link(links, "first", &f, s, 0, snap);
    if (s->count > 0 && s->offset > 0)
        lbad |= add_link(links, "previous", &f, s, s->offset > s->count ? s->offset - s->count : 0, snap);
    if (s->count > 0 && returned > 0 && s->offset + (int64_t)returned < total)
        lbad |= add_link(links, "next", &f, s, s->offset + (int64_t)returned, snap);
    if (s->n_issues > 0) {
        json_t *oo = ct_fhir_operation_outcome(s->issues, s->n_issues);
        lbad |= !oo || json_array_append_new(entries, json_pack("{s:o, s:{s:s}}", "resource", oo, "search", "mode",
                                                                "outcome")) != 0;
    }
    json_t *bundle = json_pack("{s:s, s:s, s:I, s:o, s:o}", "resourceType", "Bundle", "type", "searchset", "total",
                               (json_int_t)total, "link", links, "entry", entries);
    if (bundle && json_array_size(entries) == 0)
        json_object_del(bundle, "entry");

    /* The audit-read entry: what was asked and how much came back. */
    char canon[1024];
    if (ct_fhir_search_format(s, s->offset, canon, sizeof canon) != 0)
        snprintf(canon + sizeof canon - 4, 4, "...");
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_str(&d, "query", canon);
    ct_audit_detail_int(&d, "snapshot", snap);
    ct_audit_detail_int(&d, "total", total);
    ct_audit_detail_int(&d, "returned", (int64_t)returned);
    const char *detail = ct_audit_detail_json(&d);
    char patient[CT_AUDIT_PATIENT_MAX + 1];
    snprintf(patient, sizeof patient, "%s", searched_patient(s));
    ct_fhir_search_free(s);
    if (!bundle || lbad) {
        json_decref(bundle);
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
    }
    if (ct_http_audit(&f, "audit-read", "AuditEvent", "", 0, patient, detail ? detail : "{}", &err) != 0) {
        json_decref(bundle);
        return audit_failed(req, &err);
    }
    return send_json(&f, bundle);
}

int ct_http_handle_audit_read(ct_http_req *req)
{
    int st = refuse_bound(req);
    if (st)
        return st;
    ct_http_fhir f;
    if ((st = ct_http_fhir_begin(req, &f, 0, CT_HTTP_MEDIA_NONE)) != 0)
        return st;
    const char *id = req->path + strlen("/fhir/AuditEvent/");
    int64_t seq;
    if (parse_positive(id, &seq) != 0)
        return ct_http_fhir_fail(req, 404, CT_FHIR_IT_NOT_FOUND,
                                 "there is no AuditEvent with this id: ids are the log's sequence numbers 1, 2, 3 ...");
    ct_audit_record *row = malloc(sizeof *row);
    if (!row)
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
    ct_error err = {0};
    int rc = ct_store_audit_get(f.st, seq, row, &err);
    if (rc == CT_ENOTFOUND) {
        free(row);
        return ct_http_fhir_fail(req, 404, CT_FHIR_IT_NOT_FOUND, "there is no AuditEvent %" PRId64
                                 " (the log is shorter)", seq);
    }
    if (rc != 0) {
        free(row);
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "request %s: audit read: %s", req->request_id, err.msg);
        return ct_http_fhir_fail(req, 500, CT_FHIR_IT_EXCEPTION, "the server could not read the audit log; "
                                 "request id %s", req->request_id);
    }
    json_t *ev = ct_audit_record_to_fhir(row);
    char sid[24];
    snprintf(sid, sizeof sid, "%" PRId64, seq);
    /* Reading an entry about a patient is an access to that patient's
     * trail: the audit-read names them. */
    rc = ev ? ct_http_audit(&f, "audit-read", "AuditEvent", sid, 0, row->patient, NULL, &err) : 0;
    free(row);
    if (!ev)
        return ct_http_fhir_fail(req, 503, CT_FHIR_IT_TRANSIENT, "out of memory");
    if (rc != 0) {
        json_decref(ev);
        return audit_failed(req, &err);
    }
    return send_json(&f, ev);
}
