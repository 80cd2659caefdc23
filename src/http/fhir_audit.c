/* http room, audit: the one function through which the FHIR API writes
 * the audit log (include/cardiotwin/audit.h). Every interaction that
 * touches patient data (create, read, vread, update, delete, search,
 * history, and each entry of a Bundle) calls it after its work succeeded
 * and before its transaction commits, so the change and its entry are
 * written together or not at all; for a read it runs in a transaction of
 * its own and the response is not sent if it fails: no access goes
 * unrecorded. The actor, role, client address and request id come from
 * the request context that authorize() filled, and a verified client
 * certificate (mutual TLS) from the connection. Requests refused before
 * a handler runs (401, 403, 429) are recorded by router.c (audit_refusal),
 * bounded; other 4xx appear in the access log only. */
#include <string.h>

#include "cardiotwin/audit.h"
#include "fhir_internal.h"

int ct_http_audit(ct_http_fhir *f, const char *action, const char *type, const char *id, int64_t version,
                  const char *patient, const char *detail, ct_error *err)
{
    const ct_http_req *req = f->req;
    const ct_http_caller *c = &req->caller;
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor.name = c->authenticated && c->subject[0] ? c->subject : "anonymous";
    e.actor.role = c->role[0] ? c->role : "unknown";
    e.actor.client = req->ri && req->ri->remote_addr[0] ? req->ri->remote_addr : "";
    e.action = action;
    e.resource_type = type;
    e.resource_id = id ? id : "";
    e.resource_version = version > 0 ? version : 0;
    e.patient = patient ? patient : "";
    e.outcome = CT_AUDIT_OUTCOME_SUCCESS;
    e.outcome_desc = "";
    e.request_id = req->request_id;
    e.detail = detail;
    /* Over mutual TLS the entry also names the gateway's certificate: the
     * actor fields are the token's, the certificate is the connection's,
     * and both belong in the trail. The member goes first in the detail
     * object; a detail too full to take it is recorded as it is. */
    char with_cert[CT_AUDIT_DETAIL_MAX + 1];
    if (req->peer_sha256[0]) {
        ct_audit_detail d;
        ct_audit_detail_init(&d);
        ct_audit_detail_str(&d, "subject", req->peer_subject);
        ct_audit_detail_str(&d, "sha256", req->peer_sha256);
        const char *cert = ct_audit_detail_json(&d);
        const char *rest = detail && detail[0] == '{' ? detail + 1 : "}";
        while (*rest == ' ')
            rest++;
        int w = cert ? snprintf(with_cert, sizeof with_cert, "{\"client_cert\":%s%s%s", cert, *rest == '}' ? "" : ",",
                                rest)
                     : -1;
        if (w > 0 && (size_t)w < sizeof with_cert)
            e.detail = with_cert;
    }
    return ct_audit_append(f->st, &e, NULL, err);
}
