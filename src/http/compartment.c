/* http room, patient compartments: what a token bound to one patient may
 * see and write. authorize() lets a request through on a patient/ scope;
 * the interactions (fhir_ops.c, fhir_search.c) then ask here which patient
 * bounds them and whether a resource belongs to that patient.
 *
 * The one idea: a resource belongs to a patient's compartment when it is
 * that Patient, or when its indexed "patient" reference names that Patient
 * (Observation and DiagnosticReport through subject, Device through
 * patient), the same values a search by patient= compares. R4's Patient
 * compartment also holds a Provenance whose target is the Patient itself;
 * the index does not record that, so a Provenance is in no compartment and
 * a bound token never sees one. The current version's patient comes from
 * the index (one probe); an older version's (vread, history) from its body,
 * parsed again, because a resource may have been moved from one patient to
 * another and its old versions belong to the old one. Outside the
 * compartment a resource reads as absent (404 with the not-found message),
 * so that a bound token cannot tell another patient's resource from no
 * resource at all. */
#include <stdio.h>
#include <string.h>

#include "fhir_internal.h"

const char *ct_http_compartment(const ct_http_req *req, const char *type, unsigned perms)
{
    ct_http_grant g = ct_http_caller_grant(req, type, perms);
    if (g == CT_HTTP_GRANT_ALL)
        return NULL;
    /* PATIENT, or NONE for a caller nobody should have let this far: the
     * bound patient, or "" which no resource belongs to. */
    return req->caller.patient;
}

int ct_http_in_compartment(const char *bound, const char *patient)
{
    if (!bound)
        return 1;
    return bound[0] && patient && strcmp(bound, patient) == 0;
}

static int has_patient_index(const char *type)
{
    return strcmp(type, "Observation") == 0 || strcmp(type, "DiagnosticReport") == 0 || strcmp(type, "Device") == 0;
}

void ct_http_patient_of_current(ct_store *st, const char *type, const char *id, char *out, size_t cap)
{
    out[0] = '\0';
    if (strcmp(type, "Patient") == 0) {
        snprintf(out, cap, "%s", id);
        return;
    }
    if (!has_patient_index(type) || ct_store_resource_reference(st, type, id, "patient", out, cap, NULL) != 0)
        out[0] = '\0';
}

/* The first "patient" entry of an index, as the store would find it. */
static const char *index_patient(const ct_http_index *x)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->e[i].kind == CT_STORE_INDEX_REFERENCE && strcmp(x->e[i].param, "patient") == 0)
            return x->e[i].ref_id;
    return "";
}

const char *ct_http_patient_of_prepared(const ct_http_prepared *p)
{
    if (strcmp(p->type, "Patient") == 0)
        return p->id;
    return has_patient_index(p->type) ? index_patient(&p->index) : "";
}

void ct_http_patient_of_body(const char *type, const char *id, const char *json, size_t len, char *out, size_t cap)
{
    out[0] = '\0';
    if (strcmp(type, "Patient") == 0) {
        snprintf(out, cap, "%s", id);
        return;
    }
    if (!has_patient_index(type) || !json)
        return;
    /* Stored bodies were parsed with the server's limits when written. */
    json_t *j = json_loadb(json, len, JSON_DECODE_ANY, NULL);
    ct_http_index x;
    if (j && ct_http_index_extract(j, type, &x) == 0) {
        snprintf(out, cap, "%s", index_patient(&x));
        ct_http_index_free(&x);
    }
    json_decref(j);
}
