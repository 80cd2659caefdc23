/* twin/outbox: delivering alert reports to an upstream FHIR server.
 *
 * The one idea: the outbox row is written in the same transaction as the
 * report version it names (report.c), so a report that exists will be
 * delivered, across crashes and restarts, and delivery can be retried
 * forever without creating anything twice, because what is sent is a
 * transaction Bundle of conditional updates keyed on identifiers the twin
 * owns (PUT DiagnosticReport?identifier=SYSTEM|ID, the same for each
 * result): the upstream creates the resource the first time and updates it
 * after. What is sent is always the report's latest stored state, never an
 * old version, so rows delivered out of order or twice cannot take the
 * upstream back in time; delivering it settles every row of that report
 * up to that version.
 *
 * One attempt per row per call: the retrying lives in the outbox (attempts,
 * next_attempt_ms with exponential backoff), not in a loop that a restart
 * would forget. 408, 429, 5xx and network failures are transient; any other
 * refusal fails the row with the upstream's own diagnostics, for an
 * operator to read and, once the cause is fixed, set back to pending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin_internal.h"

void ct_twin_push_options_default(ct_twin_push_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_attempts = 50;
    o->backoff_base_ms = 5000;
    o->backoff_max_ms = 600000;
    o->batch = 32;
}

static int check(const ct_twin_push_options *o, ct_error *err)
{
    if (!o->base_url ||
        (strncmp(o->base_url, "https://", 8) != 0 && strncmp(o->base_url, "http://", 7) != 0) ||
        strlen(o->base_url) > 2048)
        return ct_error_set(err, CT_EINVAL, "push: the upstream base URL must be an http(s) URL of at most 2048 bytes");
    if (o->max_attempts < 1 || o->max_attempts > 1000)
        return ct_error_set(err, CT_EINVAL, "push: max_attempts %d is outside 1..1000", o->max_attempts);
    if (o->backoff_base_ms < 1 || o->backoff_max_ms < o->backoff_base_ms || o->backoff_max_ms > 86400000L)
        return ct_error_set(err, CT_EINVAL, "push: backoff %ld..%ld ms is not 1 <= base <= max <= 1 day",
                            o->backoff_base_ms, o->backoff_max_ms);
    if (o->batch < 1 || o->batch > 1000)
        return ct_error_set(err, CT_EINVAL, "push: batch %zu is outside 1..1000", o->batch);
    return CT_OK;
}

static json_t *load_latest(ct_store *st, const char *type, const char *id, int64_t *version, ct_error *err)
{
    char *body = NULL;
    int deleted = 0;
    int rc = ct_store_resource_get(st, type, id, 0, &body, version, NULL, &deleted, err);
    if (rc)
        return NULL;
    if (!body) {
        ct_error_set(err, CT_ENOTFOUND, "%s/%s was deleted here", type, id);
        return NULL;
    }
    json_t *j = json_loads(body, JSON_REJECT_DUPLICATES, NULL);
    free(body);
    if (!json_is_object(j)) {
        json_decref(j);
        ct_error_set(err, CT_EFORMAT, "%s/%s: the stored JSON does not parse", type, id);
        return NULL;
    }
    return j;
}

/* The resource as upstream gets it: no id or meta of ours, no reference
 * to what only exists here. */
static void strip(json_t *res)
{
    json_object_del(res, "id");
    json_object_del(res, "meta");
    json_object_del(res, "device");
    json_object_del(res, "derivedFrom");
}

static int add_entry(json_t *entries, const char *full_url, json_t *res, const char *type, const char *id)
{
    char url[CT_FHIR_TYPE_MAX + 512];
    snprintf(url, sizeof url, "%s?identifier=%s|%s", type, CT_TWIN_IDENTIFIER_SYSTEM, id);
    json_t *e = json_pack("{s:s,s:o,s:{s:s,s:s}}", "fullUrl", full_url, "resource", res, "request", "method",
                          "PUT", "url", url);
    return e ? json_array_append_new(entries, e) : -1;
}

/* The transaction Bundle for a report's latest state; *version gets it. */
static char *bundle_for(ct_store *st, const char *report_id, int64_t *version, ct_error *err)
{
    json_t *rep = load_latest(st, "DiagnosticReport", report_id, version, err);
    if (!rep)
        return NULL;
    json_t *bundle = json_pack("{s:s,s:s,s:[]}", "resourceType", "Bundle", "type", "transaction", "entry");
    json_t *entries = json_object_get(bundle, "entry");
    int rc = bundle ? CT_OK : CT_ENOMEM;
    json_t *results = json_object_get(rep, "result");
    for (size_t i = 0; rc == CT_OK && i < json_array_size(results); i++) {
        json_t *ref = json_array_get(results, i);
        const char *s = json_string_value(json_object_get(ref, "reference"));
        ct_fhir_ref r;
        if (!s || ct_fhir_ref_parse(s, NULL, &r, NULL) != 0 || strcmp(r.type, "Observation") != 0) {
            rc = ct_error_set(err, CT_EFORMAT, "DiagnosticReport/%s: result %zu is not an Observation here",
                              report_id, i);
            break;
        }
        json_t *obs = load_latest(st, "Observation", r.id, NULL, err);
        char uuid[37], full[48];
        if (!obs || tw_random_id(uuid) != CT_OK) {
            json_decref(obs);
            rc = err && err->code ? err->code : CT_ENOMEM;
            break;
        }
        snprintf(full, sizeof full, "urn:uuid:%s", uuid);
        strip(obs);
        if (add_entry(entries, full, obs, "Observation", r.id) ||
            json_object_set_new(ref, "reference", json_string(full)))
            rc = ct_error_set(err, CT_ENOMEM, "push: out of memory");
    }
    char uuid[37], full[48];
    if (rc == CT_OK && tw_random_id(uuid) != CT_OK)
        rc = ct_error_set(err, CT_ENOMEM, "push: no random id");
    if (rc == CT_OK) {
        snprintf(full, sizeof full, "urn:uuid:%s", uuid);
        strip(rep);
        if (add_entry(entries, full, json_incref(rep), "DiagnosticReport", report_id))
            rc = ct_error_set(err, CT_ENOMEM, "push: out of memory");
    }
    char *text = rc == CT_OK ? json_dumps(bundle, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
    if (rc == CT_OK && !text)
        ct_error_set(err, CT_ENOMEM, "push: out of memory");
    json_decref(rep);
    json_decref(bundle);
    return text;
}

static int transient(long status)
{
    return status == 0 || status == 408 || status == 429 || status >= 500;
}

/* The wait before attempt number `attempt` + 1. */
static long backoff(const ct_twin_push_options *o, int attempt)
{
    long w = o->backoff_base_ms;
    for (int i = 1; i < attempt && w < o->backoff_max_ms; i++)
        w *= 2;
    return w < o->backoff_max_ms ? w : o->backoff_max_ms;
}

int ct_twin_push(ct_store *st, ct_client *c, const ct_twin_push_options *o, int64_t now_ms,
                 ct_twin_push_result *res, ct_error *err)
{
    ct_twin_push_result scratch;
    if (!res)
        res = &scratch;
    memset(res, 0, sizeof *res);
    if (!st || !c || !o)
        return ct_error_set(err, CT_EINVAL, "push: no store, client or options");
    int rc = check(o, err);
    if (rc)
        return rc;
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "push: call it outside a transaction");
    ct_store_twin_outbox *rows = NULL;
    size_t n = 0;
    if ((rc = ct_store_twin_outbox_due(st, now_ms, o->batch, &rows, &n, err)))
        return rc;
    /* What this call did for each row: a later row of the same report is
     * settled already (the latest state went out) or, after a failure,
     * left for the next call rather than sent again at once. */
    int64_t *done = calloc(n ? n : 1, sizeof *done);
    if (!done) {
        free(rows);
        return ct_error_set(err, CT_ENOMEM, "push: out of memory");
    }
    for (size_t i = 0; i < n && rc == CT_OK; i++) {
        const ct_store_twin_outbox *row = &rows[i];
        int skip = 0;
        for (size_t j = 0; j < i && !skip; j++)
            skip = done[j] != 0 && strcmp(rows[j].resource_type, row->resource_type) == 0 &&
                   strcmp(rows[j].resource_id, row->resource_id) == 0 &&
                   (done[j] < 0 || done[j] >= row->resource_version);
        if (skip) {
            done[i] = -1;
            continue;
        }
        done[i] = -1;
        int64_t latest = 0;
        ct_error berr;
        memset(&berr, 0, sizeof berr);
        char *body = NULL;
        if (strcmp(row->resource_type, "DiagnosticReport") != 0)
            ct_error_set(&berr, CT_EUNSUPPORTED, "%s is not a type the twin pushes", row->resource_type);
        else
            body = bundle_for(st, row->resource_id, &latest, &berr);
        if (!body) {
            if (berr.code == CT_ENOTFOUND || berr.code == CT_EFORMAT || berr.code == CT_EUNSUPPORTED) {
                rc = ct_store_twin_outbox_mark(st, row->id, "failed", row->next_attempt_ms, berr.msg, err);
                res->failed++;
                snprintf(res->last_error, sizeof res->last_error, "%s", berr.msg);
                continue;
            }
            rc = berr.code ? berr.code : CT_ENOMEM;
            if (err)
                *err = berr;
            break;
        }
        ct_client_request req;
        memset(&req, 0, sizeof req);
        req.method = "POST";
        req.url = o->base_url;
        req.body = body;
        req.body_len = strlen(body);
        req.bearer_token = o->bearer_token;
        req.no_retry = 1;
        ct_client_response resp;
        memset(&resp, 0, sizeof resp);
        ct_error serr;
        memset(&serr, 0, sizeof serr);
        int sent = ct_client_send(c, &req, &resp, &serr) == CT_OK;
        free(body);
        /* The outcome is the report's: every waiting row of it shares it. */
        if (sent) {
            rc = ct_store_twin_outbox_settle(st, row->id, row->resource_type, row->resource_id, latest, "sent", 0,
                                             "", err);
            res->sent++;
            done[i] = latest;
        } else {
            int attempt = row->attempts + 1;
            snprintf(res->last_error, sizeof res->last_error, "%s", serr.msg);
            int again = transient(resp.status) && attempt < o->max_attempts;
            rc = ct_store_twin_outbox_settle(st, row->id, row->resource_type, row->resource_id, latest,
                                             again ? "pending" : "failed", now_ms + backoff(o, attempt), serr.msg,
                                             err);
            if (again)
                res->retry++;
            else
                res->failed++;
        }
        ct_client_response_free(&resp);
    }
    free(done);
    free(rows);
    return rc;
}
