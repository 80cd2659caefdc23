/* http room, FHIR interactions: create, update, delete, read and vread,
 * independent of how they were asked for. The REST handlers
 * (fhir_handlers.c) and the Bundle processor (fhir_bundle.c) both call
 * these, so a Bundle entry behaves exactly as the same request sent alone.
 *
 * The one idea: an interaction ends in a ct_http_result (status, issue,
 * the version it names, a body), never in a response; whoever called it
 * decides how to send it. Each write runs in one SQLite transaction with
 * its audit entry: its own, or the Bundle's when f->in_txn is set, in which
 * case a failure leaves the rollback to the Bundle. A read takes its
 * snapshot first and then writes its audit entry in a short transaction of
 * its own, so that reads do not hold the write lock while they copy bodies.
 *
 * Every refusal says what to fix; internal failures are logged with the
 * request id and answered 500 with that id, never with SQL text. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/twin.h"
#include "fhir_internal.h"

void ct_http_result_clear(ct_http_result *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

int ct_http_result_fail(ct_http_result *r, int status, ct_fhir_issue_type code, const char *expression,
                        const char *fmt, ...)
{
    char msg[CT_FHIR_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->status = status;
    ct_fhir_issue_set(&r->issue, CT_EFORMAT, status, CT_FHIR_SEV_ERROR, code, expression, "%s", msg);
    return -1;
}

static int fail_issue(ct_http_result *r, const ct_fhir_issue *is)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->issue = *is;
    r->status = is->http_status >= 400 ? is->http_status : 400;
    r->issue.http_status = r->status;
    return -1;
}

/* The server's fault: logged with the request id, answered without detail. */
static int fail_internal(ct_http_fhir *f, ct_http_result *r, const char *what, const ct_error *err)
{
    ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: %s: %s", f->req->request_id, what,
                err && err->msg[0] ? err->msg : "failed");
    int status = err && err->code == CT_ENOMEM ? 503 : 500;
    return ct_http_result_fail(r, status, status == 503 ? CT_FHIR_IT_TRANSIENT : CT_FHIR_IT_EXCEPTION, NULL,
                               "the server could not %s; nothing was changed. The server log has the "
                               "details under request id %s",
                               what, f->req->request_id);
}

static int txn_begin(ct_http_fhir *f, ct_http_result *r)
{
    if (f->in_txn)
        return 0;
    ct_error err = {0};
    if (ct_store_begin(f->st, &err) != 0)
        return fail_internal(f, r, "begin a transaction", &err);
    return 0;
}

/* ok: the work succeeded and should commit. */
static int txn_end(ct_http_fhir *f, int ok, ct_http_result *r)
{
    if (f->in_txn)
        return ok ? 0 : -1;
    if (!ok) {
        ct_store_rollback(f->st);
        return -1;
    }
    ct_error err = {0};
    if (ct_store_commit(f->st, &err) != 0)
        return fail_internal(f, r, "commit the change", &err);
    return 0;
}

/* ---- preparing a resource ------------------------------------------------------------ */

void ct_http_prepared_free(ct_http_prepared *p)
{
    json_decref(p->json);
    free(p->stored);
    ct_http_index_free(&p->index);
    if (p->ecg) {
        ct_fhir_ecg_free(p->ecg);
        free(p->ecg);
    }
    memset(p, 0, sizeof *p);
}

static ct_fhir_limits body_limits(const ct_http_fhir *f)
{
    ct_fhir_limits lim = ct_fhir_limits_default();
    int64_t max = f->req->srv->opt.max_body_bytes;
    if (max > 0 && (uint64_t)max < (uint64_t)SIZE_MAX)
        lim.max_bytes = (size_t)max;
    return lim;
}

/* Stored form, index, and the prepared struct filled from a parsed,
 * validated resource. */
static int finish_prepare(ct_http_fhir *f, json_t *j, ct_fhir_ecg *ecg, const char *text, size_t len,
                          const char *type, const char *id, const ct_http_ref_map *map, ct_http_prepared *p,
                          ct_http_result *r)
{
    /* p owns both from here, whatever happens next (ct_http_prepared_free). */
    p->json = j;
    p->ecg = ecg;
    ct_http_buf b;
    ct_http_buf_init(&b, len + 1024);
    int rc = ct_http_resource_canonical(text, len, type, id, map, &b);
    if (rc != 0) {
        ct_http_buf_free(&b);
        if (rc == CT_ENOMEM)
            return fail_internal(f, r, "hold the resource in memory", NULL);
        return ct_http_result_fail(r, 422, CT_FHIR_IT_STRUCTURE, type,
                                   "the resource must be a JSON object whose meta, if any, is an object");
    }
    p->stored = ct_http_buf_take(&b, &p->stored_len);
    snprintf(p->type, sizeof p->type, "%s", type);
    snprintf(p->id, sizeof p->id, "%s", id);
    rc = ct_http_index_extract(j, type, &p->index);
    if (rc == CT_ELIMIT)
        return ct_http_result_fail(r, 413, CT_FHIR_IT_TOO_COSTLY, type,
                                   "the resource has more than %d searchable values (codings, identifiers, "
                                   "references); split it",
                                   CT_STORE_INDEX_MAX_ENTRIES);
    if (rc != 0 || !p->stored)
        return fail_internal(f, r, "index the resource", NULL);
    return 0;
}

static int check_type(const char *rt, const char *type, ct_http_result *r)
{
    if (!rt)
        return ct_http_result_fail(r, 422, CT_FHIR_IT_REQUIRED, "resourceType",
                                   "the body is not a FHIR resource: resourceType is missing");
    if (strcmp(rt, type) != 0)
        return ct_http_result_fail(r, 422, CT_FHIR_IT_INVALID, "resourceType",
                                   "resourceType is %.64s but this URL is for %s: send a %s here, or send "
                                   "the %.64s to /fhir/%.64s",
                                   rt, type, type, rt, rt);
    return 0;
}

int ct_http_prepare_body(ct_http_fhir *f, const char *body, size_t len, const char *type, const char *id,
                         const char *new_id, ct_http_prepared *p, ct_http_result *r)
{
    memset(p, 0, sizeof *p);
    ct_fhir_limits lim = body_limits(f);
    json_t *j = NULL;
    ct_fhir_issue is;
    if (ct_fhir_parse(body, len, &lim, &j, &is) != 0)
        return fail_issue(r, &is);
    if (!json_is_object(j)) {
        json_decref(j);
        return ct_http_result_fail(r, 422, CT_FHIR_IT_STRUCTURE, NULL,
                                   "the body is JSON but not an object; send a FHIR resource");
    }
    if (check_type(ct_fhir_resource_type(j), type, r) != 0) {
        json_decref(j);
        return -1;
    }
    char expr[80];
    snprintf(expr, sizeof expr, "%s.id", type);
    if (id) {
        const json_t *bid = json_object_get(j, "id");
        if (!bid) {
            json_decref(j);
            return ct_http_result_fail(r, 400, CT_FHIR_IT_REQUIRED, expr,
                                       "an update must carry the id of its URL: add \"id\": \"%s\"", id);
        }
        if (!json_is_string(bid) || strcmp(json_string_value(bid), id) != 0) {
            char shown[80] = "(not a string)";
            if (json_is_string(bid))
                snprintf(shown, sizeof shown, "\"%.64s\"", json_string_value(bid));
            json_decref(j);
            return ct_http_result_fail(r, 422, CT_FHIR_IT_INVALID, expr,
                                       "the resource's id %s does not match the id in the URL (\"%s\")", shown,
                                       id);
        }
    } else {
        /* R4: on create the server ignores any id the client sent. */
        json_object_del(j, "id");
    }
    ct_fhir_ecg *ecg = NULL;
    if (ct_http_fhir_validate_keep(j, type, &ecg, &is) != 0) {
        json_decref(j);
        return fail_issue(r, &is);
    }
    return finish_prepare(f, j, ecg, body, len, type, id ? id : new_id, NULL, p, r);
}

int ct_http_prepare_text(ct_http_fhir *f, const char *text, size_t len, const char *type, const char *id,
                         const ct_http_ref_map *map, ct_http_prepared *p, ct_http_result *r)
{
    memset(p, 0, sizeof *p);
    /* The rewritten text is what is checked and stored. */
    ct_http_buf b;
    ct_http_buf_init(&b, len + 1024 + 64 * (map ? map->n : 0));
    int rc = ct_http_resource_canonical(text, len, type, id, map, &b);
    if (rc != 0) {
        ct_http_buf_free(&b);
        return ct_http_result_fail(r, 422, CT_FHIR_IT_STRUCTURE, type,
                                   "the resource must be a JSON object whose meta, if any, is an object");
    }
    ct_fhir_limits lim = body_limits(f);
    json_t *j = NULL;
    ct_fhir_issue is;
    if (ct_fhir_parse(b.p, b.n, &lim, &j, &is) != 0) {
        ct_http_buf_free(&b);
        return fail_issue(r, &is);
    }
    ct_http_buf_free(&b);
    /* The stored form always has a meta (versionId and lastUpdated go in
     * there when served); an empty one is ours, not the client's. */
    const json_t *meta = json_object_get(j, "meta");
    if (json_is_object(meta) && json_object_size(meta) == 0)
        json_object_del(j, "meta");
    ct_fhir_ecg *ecg = NULL;
    if (ct_http_fhir_validate_keep(j, type, &ecg, &is) != 0) {
        json_decref(j);
        return fail_issue(r, &is);
    }
    return finish_prepare(f, j, ecg, text, len, type, id, map, p, r);
}

/* ---- results --------------------------------------------------------------------------- */

static void set_names(ct_http_result *r, const char *type, const char *id)
{
    snprintf(r->type, sizeof r->type, "%s", type);
    snprintf(r->id, sizeof r->id, "%s", id);
}

static int serve_body(ct_http_fhir *f, ct_http_result *r, const char *stored, size_t len)
{
    free(r->body);
    r->body = ct_http_resource_serve(stored, len, r->type, r->id, r->version, r->last_updated_ms, &r->body_len);
    if (!r->body)
        return fail_internal(f, r, "read the stored resource back", NULL);
    return 0;
}

/* The patient a stored resource is about, for the audit log. */
static void patient_of(ct_http_fhir *f, const char *type, const char *id, char *out, size_t cap)
{
    out[0] = '\0';
    if (strcmp(type, "Patient") == 0) {
        snprintf(out, cap, "%s", id);
        return;
    }
    if (ct_store_resource_reference(f->st, type, id, "patient", out, cap, NULL) != 0)
        out[0] = '\0';
}

static int audit(ct_http_fhir *f, ct_http_result *r, const char *action, const char *type, const char *id,
                 int64_t version, const char *patient, const char *detail)
{
    ct_error err = {0};
    if (ct_http_audit(f, action, type, id, version, patient, detail, &err) != 0)
        return fail_internal(f, r, "write the audit log", &err);
    return 0;
}

/* ---- create, update, delete -------------------------------------------------------------- */

/* A token bound to a patient writes only inside that patient's compartment
 * (compartment.c); the refusal names what would have been accepted. */
static int refuse_outside(ct_http_result *r, const char *bound, const char *what)
{
    return ct_http_result_fail(r, 403, CT_FHIR_IT_FORBIDDEN, NULL,
                               "this access token is bound to Patient/%s and may only %s resources of that "
                               "patient's compartment: Patient/%s itself, or an Observation, DiagnosticReport or "
                               "Device whose subject or patient is Patient/%s",
                               bound, what, bound, bound);
}

static int create_work(ct_http_fhir *f, ct_http_prepared *p, const char *if_none_exist, ct_http_result *r)
{
    const char *bound = ct_http_compartment(f->req, p->type, CT_HTTP_PERM_C);
    if (!ct_http_in_compartment(bound, ct_http_patient_of_prepared(p)))
        return refuse_outside(r, bound, "create");
    if (if_none_exist && *if_none_exist) {
        /* The search runs for the caller, and a match comes back whole. */
        if (ct_http_caller_grant(f->req, p->type, CT_HTTP_PERM_S) == CT_HTTP_GRANT_NONE) {
            char need[300];
            ct_http_scope_describe(p->type, CT_HTTP_PERM_S, need, sizeof need);
            return ct_http_result_fail(r, 403, CT_FHIR_IT_FORBIDDEN, NULL,
                                       "If-None-Exist searches %s for you and returns the match: it needs %s; "
                                       "send the create without If-None-Exist",
                                       p->type, need);
        }
        char found[CT_FHIR_ID_MAX + 1];
        int n = ct_http_search_count_matches(f, p->type, if_none_exist, found, r);
        if (n < 0)
            return -1;
        if (n > 1)
            return ct_http_result_fail(r, 412, CT_FHIR_IT_MULTIPLE_MATCHES, NULL,
                                       "If-None-Exist matches more than one %s; make the criteria name one "
                                       "resource (e.g. identifier=system|value)",
                                       p->type);
        if (n == 1) {
            /* FHIR: the existing resource, 200, nothing created. */
            char *json = NULL;
            int deleted = 0;
            ct_error err = {0};
            set_names(r, p->type, found);
            if (ct_store_resource_get(f->st, p->type, found, 0, &json, &r->version, &r->last_updated_ms, &deleted,
                                      &err) != 0 ||
                deleted || !json) {
                free(json);
                return fail_internal(f, r, "read the resource If-None-Exist found", &err);
            }
            int rc = serve_body(f, r, json, strlen(json));
            free(json);
            if (rc)
                return rc;
            char patient[CT_FHIR_ID_MAX + 1];
            patient_of(f, p->type, found, patient, sizeof patient);
            r->status = 200;
            return audit(f, r, "read", p->type, found, r->version, patient, NULL);
        }
    }
    ct_store_write w = {
        .type = p->type, .id = p->id, .json = p->stored, .len = p->stored_len,
        .if_absent = 1, .index = p->index.e, .n_index = p->index.n,
    };
    ct_store_version_info info;
    ct_error err = {0};
    int rc = ct_store_resource_write(f->st, &w, &info, &err);
    set_names(r, p->type, p->id);
    if (rc == CT_EEXIST)
        return ct_http_result_fail(r, 409, CT_FHIR_IT_DUPLICATE, NULL, "%s/%s already exists", p->type, p->id);
    if (rc != 0)
        return fail_internal(f, r, "store the resource", &err);
    r->version = info.version;
    r->last_updated_ms = info.last_updated_ms;
    r->status = 201;
    const char *patient = strcmp(p->type, "Patient") == 0 ? p->id : p->index.patient;
    if ((rc = audit(f, r, "create", p->type, p->id, r->version, patient, NULL)) != 0)
        return rc;
    return serve_body(f, r, p->stored, p->stored_len);
}

/* ---- ECG in: the live twin ------------------------------------------------------------------ */

/* An Observation coded MDC 131328 in either MDC system (the test
 * fhir_validate.c makes before it holds the resource to the ECG profile). */
static int is_ecg_observation(const ct_http_prepared *p)
{
    if (strcmp(p->type, "Observation") != 0 || !p->json)
        return 0;
    const json_t *coding = json_object_get(json_object_get(p->json, "code"), "coding");
    size_t i;
    const json_t *c;
    json_array_foreach(coding, i, c) {
        const char *sys = json_string_value(json_object_get(c, "system"));
        const char *code = json_string_value(json_object_get(c, "code"));
        if (sys && code && strcmp(code, "131328") == 0 &&
            (strcmp(sys, "urn:oid:2.16.840.1.113883.6.24") == 0 || strcmp(sys, "urn:iso:std:iso:11073:10101") == 0))
            return 1;
    }
    return 0;
}

/* A refusal of ct_twin_ecg_begin or ct_twin_ecg_write as the caller's
 * status: what the twin cannot take is the caller's to fix (409, 422), a
 * busy patient or a full twin is for later (503). */
static int twin_refusal(ct_http_fhir *f, ct_http_result *r, int rc, const ct_error *err)
{
    const char *msg = err->msg[0] ? err->msg : "the live twin refused the ECG";
    switch (rc) {
    case CT_EEXIST:
        return ct_http_result_fail(r, 409, CT_FHIR_IT_CONFLICT, "Observation.effective",
                                   "%s; nothing was stored", msg);
    case CT_EINVAL:
    case CT_EUNSUPPORTED:
    case CT_EFORMAT:
        return ct_http_result_fail(r, 422, CT_FHIR_IT_BUSINESS_RULE, "Observation", "%s; nothing was stored", msg);
    case CT_ELIMIT:
        return ct_http_result_fail(r, 503, CT_FHIR_IT_TRANSIENT, NULL, "%s; nothing was stored: retry later", msg);
    default:
        return fail_internal(f, r, "hand the ECG to the live twin", err);
    }
}

/* The create of an ECG Observation, in the twin's three steps: the patient
 * is locked before the transaction, its samples are written inside it, the
 * detector and the policy run after it (docs/twin.md, "Calling it"). */
static int create_ecg(ct_http_fhir *f, ct_http_prepared *p, const char *if_none_exist, ct_http_result *r)
{
    ct_twin *twin = f->req->srv->twin;
    /* Who may write decides before the twin looks at the samples: a
     * refusal must not depend on what the twin holds. */
    const char *bound = ct_http_compartment(f->req, p->type, CT_HTTP_PERM_C);
    if (!ct_http_in_compartment(bound, ct_http_patient_of_prepared(p)))
        return refuse_outside(r, bound, "create");
    /* Validation read the samples already (ct_http_prepare_*); only a
     * prepared resource that skipped it would need them read here. */
    ct_fhir_ecg own;
    ct_fhir_ecg *ecg = p->ecg;
    if (!ecg) {
        ct_fhir_issue is;
        if (ct_fhir_ecg_from_json(p->json, NULL, &own, &is) != 0)
            return fail_issue(r, &is);
        ecg = &own;
    }
    ct_twin_ticket *tk = NULL;
    ct_twin_ingest_result res;
    ct_error err = {0};
    int rc = ct_twin_ecg_begin(twin, f->st, ecg, p->id, &tk, &res, &err);
    if (rc == CT_EUNSUPPORTED) {
        /* A rate the detector cannot analyse (the specification's own 100 Hz
         * ekg example): a recording to keep, not a stream to monitor. */
        ct_http_log(f->req->srv, CT_HTTP_LOG_INFO, "request %s: Observation/%s stored, not monitored: %s",
                    f->req->request_id, p->id, err.msg);
        if (ecg == &own)
            ct_fhir_ecg_free(&own);
        if (txn_begin(f, r))
            return -1;
        return txn_end(f, create_work(f, p, if_none_exist, r) == 0, r);
    }
    if (rc != 0) {
        if (ecg == &own)
            ct_fhir_ecg_free(&own);
        return twin_refusal(f, r, rc, &err);
    }
    int wrote = 0, ok = 0;
    if (txn_begin(f, r) == 0) {
        ok = create_work(f, p, if_none_exist, r) == 0;
        /* 200: If-None-Exist found the Observation; nothing new to take. */
        if (ok && tk && r->status == 201) {
            rc = ct_twin_ecg_write(tk, f->st, &err);
            if (rc != 0) {
                ok = 0;
                twin_refusal(f, r, rc, &err);
            } else {
                wrote = 1;
            }
        }
        if (txn_end(f, ok, r) != 0)
            ok = 0;
    }
    if (tk) {
        ct_error end_err = {0};
        if (ct_twin_ecg_end(tk, f->st, ok && wrote, &res, &end_err) != 0)
            ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR, "request %s: Observation/%s: the live twin: %s",
                        f->req->request_id, p->id, end_err.msg);
        else if (res.report_error)
            ct_http_log(f->req->srv, CT_HTTP_LOG_ERROR,
                        "request %s: Observation/%s taken, but %zu alert report(s) wait for the database: %s",
                        f->req->request_id, p->id, res.reports_pending, res.report_error_msg);
    }
    if (ecg == &own)
        ct_fhir_ecg_free(&own);
    return ok ? 0 : -1;
}

int ct_http_op_create(ct_http_fhir *f, ct_http_prepared *p, const char *if_none_exist, ct_http_result *r)
{
    if (f->req->srv->twin && is_ecg_observation(p)) {
        /* The twin locks the patient before any transaction; inside a
         * transaction Bundle that order cannot be kept. */
        if (f->in_txn)
            return ct_http_result_fail(r, 422, CT_FHIR_IT_NOT_SUPPORTED, "Bundle.entry.resource",
                                       "an ECG Observation (MDC 131328) cannot be part of a transaction Bundle: "
                                       "the live twin takes each in a transaction of its own; post it alone or "
                                       "in a batch Bundle");
        return create_ecg(f, p, if_none_exist, r);
    }
    if (txn_begin(f, r))
        return -1;
    return txn_end(f, create_work(f, p, if_none_exist, r) == 0, r);
}

static int update_work(ct_http_fhir *f, ct_http_prepared *p, int64_t if_match, ct_http_result *r)
{
    const char *bound = ct_http_compartment(f->req, p->type, CT_HTTP_PERM_U);
    if (bound) {
        /* Both the version replaced and the new one must be the patient's.
         * An id that does not exist is refused like one of another
         * patient: creating by update would tell the two apart. */
        char current[CT_FHIR_ID_MAX + 1];
        ct_http_patient_of_current(f->st, p->type, p->id, current, sizeof current);
        if (!ct_http_in_compartment(bound, current) || !ct_http_in_compartment(bound, ct_http_patient_of_prepared(p)))
            return refuse_outside(r, bound, "update existing");
    }
    ct_store_write w = {
        .type = p->type, .id = p->id, .json = p->stored, .len = p->stored_len,
        .if_match = if_match, .index = p->index.e, .n_index = p->index.n,
    };
    ct_store_version_info info;
    ct_error err = {0};
    int rc = ct_store_resource_write(f->st, &w, &info, &err);
    set_names(r, p->type, p->id);
    if (rc == CT_EEXIST) {
        if (info.version == 0)
            return ct_http_result_fail(r, 412, CT_FHIR_IT_CONFLICT, NULL,
                                       "If-Match W/\"%lld\": %s/%s does not exist; create it without If-Match",
                                       (long long)if_match, p->type, p->id);
        if (info.deleted)
            return ct_http_result_fail(r, 412, CT_FHIR_IT_CONFLICT, NULL,
                                       "If-Match W/\"%lld\": %s/%s was deleted (version %lld); update it "
                                       "without If-Match to bring it back",
                                       (long long)if_match, p->type, p->id, (long long)info.version);
        return ct_http_result_fail(r, 412, CT_FHIR_IT_CONFLICT, NULL,
                                   "If-Match W/\"%lld\" does not match: %s/%s is at version %lld; read it "
                                   "again, apply your change and send If-Match: W/\"%lld\"",
                                   (long long)if_match, p->type, p->id, (long long)info.version,
                                   (long long)info.version);
    }
    if (rc != 0)
        return fail_internal(f, r, "store the resource", &err);
    r->version = info.version;
    r->last_updated_ms = info.last_updated_ms;
    r->status = info.created ? 201 : 200;
    const char *patient = strcmp(p->type, "Patient") == 0 ? p->id : p->index.patient;
    if ((rc = audit(f, r, info.created ? "create" : "update", p->type, p->id, r->version, patient, NULL)) != 0)
        return rc;
    return serve_body(f, r, p->stored, p->stored_len);
}

int ct_http_op_update(ct_http_fhir *f, ct_http_prepared *p, int64_t if_match, ct_http_result *r)
{
    /* The twin took the samples once, stitched into the patient's stream,
     * and its reports cite them: changing them afterwards would make the
     * stored Observation disagree with what was analysed. */
    if (f->req->srv->twin && is_ecg_observation(p))
        return ct_http_result_fail(r, 422, CT_FHIR_IT_BUSINESS_RULE, "Observation",
                                   "an ECG Observation (MDC 131328) cannot be updated: the live twin has taken "
                                   "its samples into Patient's ECG stream; post new data as a new Observation");
    if (txn_begin(f, r))
        return -1;
    return txn_end(f, update_work(f, p, if_match, r) == 0, r);
}

static int delete_work(ct_http_fhir *f, const char *type, const char *id, int64_t if_match, ct_http_result *r)
{
    char patient[CT_FHIR_ID_MAX + 1];
    patient_of(f, type, id, patient, sizeof patient);
    if (!ct_http_in_compartment(ct_http_compartment(f->req, type, CT_HTTP_PERM_D), patient)) {
        set_names(r, type, id);
        return ct_http_result_fail(r, 404, CT_FHIR_IT_NOT_FOUND, NULL, "there is no %s with id %s", type, id);
    }
    ct_store_version_info info;
    ct_error err = {0};
    int rc = ct_store_resource_remove(f->st, type, id, if_match, &info, &err);
    set_names(r, type, id);
    if (rc == CT_ENOTFOUND)
        return ct_http_result_fail(r, 404, CT_FHIR_IT_NOT_FOUND, NULL, "there is no %s with id %s", type, id);
    if (rc == CT_EEXIST)
        return ct_http_result_fail(r, 412, CT_FHIR_IT_CONFLICT, NULL,
                                   "If-Match W/\"%lld\" does not match: %s/%s is at version %lld",
                                   (long long)if_match, type, id, (long long)info.version);
    if (rc != 0)
        return fail_internal(f, r, "delete the resource", &err);
    r->version = info.version;
    r->last_updated_ms = info.last_updated_ms;
    r->status = 200;
    if ((rc = audit(f, r, "delete", type, id, r->version, patient, NULL)) != 0)
        return rc;
    ct_fhir_issue is;
    ct_fhir_issue_set(&is, 0, 200, CT_FHIR_SEV_INFORMATION, CT_FHIR_IT_INFORMATIONAL, NULL,
                      "%s/%s is deleted (version %lld); reading it now gives 410 Gone", type, id,
                      (long long)r->version);
    r->issue = is;
    r->body = ct_fhir_operation_outcome_dump(&is, 1);
    r->body_len = r->body ? strlen(r->body) : 0;
    return 0;
}

int ct_http_op_delete(ct_http_fhir *f, const char *type, const char *id, int64_t if_match, ct_http_result *r)
{
    if (txn_begin(f, r))
        return -1;
    return txn_end(f, delete_work(f, type, id, if_match, r) == 0, r);
}

/* ---- read and vread ------------------------------------------------------------------------ */

int ct_http_op_read(ct_http_fhir *f, const char *type, const char *id, int64_t version, ct_http_result *r)
{
    char *json = NULL;
    int deleted = 0;
    ct_error err = {0};
    set_names(r, type, id);
    /* Outside a bound token's compartment a resource reads as absent, with
     * the very message an absent one gets (compartment.c). A deleted one
     * has no indexed patient left, so it is absent too. */
    const char *bound = ct_http_compartment(f->req, type, CT_HTTP_PERM_R);
    int rc = CT_OK;
    if (bound) {
        char current[CT_FHIR_ID_MAX + 1];
        ct_http_patient_of_current(f->st, type, id, current, sizeof current);
        if (!ct_http_in_compartment(bound, current))
            rc = CT_ENOTFOUND;
    }
    if (rc == CT_OK)
        rc = ct_store_resource_get(f->st, type, id, version, &json, &r->version, &r->last_updated_ms, &deleted, &err);
    if (rc == CT_OK && bound && version > 0 && !deleted) {
        char was[CT_FHIR_ID_MAX + 1];
        ct_http_patient_of_body(type, id, json, strlen(json), was, sizeof was);
        if (!ct_http_in_compartment(bound, was)) {
            free(json);
            json = NULL;
            r->version = r->last_updated_ms = 0;
            rc = CT_ENOTFOUND;
        }
    }
    if (rc == CT_ENOTFOUND) {
        if (version > 0)
            return ct_http_result_fail(r, 404, CT_FHIR_IT_NOT_FOUND, NULL, "%s/%s has no version %lld", type, id,
                                       (long long)version);
        return ct_http_result_fail(r, 404, CT_FHIR_IT_NOT_FOUND, NULL, "there is no %s with id %s", type, id);
    }
    if (rc != 0)
        return fail_internal(f, r, "read the resource", &err);
    if (deleted) {
        int64_t v = r->version;
        ct_http_result_fail(r, 410, CT_FHIR_IT_DELETED, NULL,
                            "%s/%s %s deleted (version %lld); its earlier versions remain readable at "
                            "/fhir/%s/%s/_history",
                            type, id, version > 0 ? "version was a deletion:" : "was", (long long)v, type, id);
        r->version = 0;
        return -1;
    }
    rc = serve_body(f, r, json, strlen(json));
    free(json);
    if (rc)
        return rc;
    r->status = 200;
    char patient[CT_FHIR_ID_MAX + 1];
    patient_of(f, type, id, patient, sizeof patient);
    if (txn_begin(f, r))
        return -1;
    return txn_end(f, audit(f, r, version > 0 ? "vread" : "read", type, id, r->version, patient, NULL) == 0, r);
}
