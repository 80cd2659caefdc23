/* http room, audit: the one function through which the FHIR API writes
 * the audit log (include/cardiotwin/audit.h). Every interaction that
 * touches patient data (create, read, vread, update, delete, search,
 * history, and each entry of a Bundle) calls it after its work succeeded
 * and before its transaction commits, so the change and its entry are
 * written together or not at all; for a read it runs in a transaction of
 * its own and the response is not sent if it fails: no access goes
 * unrecorded. The actor, role, client address and request id come from
 * the request context that authorize() filled. Refused requests (401,
 * 4xx) appear in the access log only: recording denied access belongs
 * with the per-user credentials still to come. */
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
    return ct_audit_append(f->st, &e, NULL, err);
}
