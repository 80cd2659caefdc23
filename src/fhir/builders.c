/* fhir room, builders: the resources the twin writes (DiagnosticReport,
 * heart-rate and count Observations, Provenance, the detector Device) and
 * the Bundles the API answers with.
 *
 * The one idea: each builder checks its inputs first (ids, status codes,
 * times in range, references that parse) and only then assembles JSON, so
 * a builder never returns a half-valid resource: it returns a complete one
 * or NULL with a ct_error naming the field. The codes written are fixed
 * here, once, with where they come from (docs/fhir.md lists them):
 * v2-0074 "EC" and LOINC LP29708-2 for the category, LOINC 11524-6 "EKG
 * study" for the report, LOINC 8867-4 for heart rate, SNOMED CT for the
 * findings. */
#include "cardiotwin/fhir.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#define SYS_V2_0074 "http://terminology.hl7.org/CodeSystem/v2-0074"
#define SYS_OBS_CATEGORY "http://terminology.hl7.org/CodeSystem/observation-category"

static const struct {
    const char *snomed;
    const char *display;
} findings[CT_FHIR_FINDING_COUNT_] = {
    [CT_FHIR_FINDING_SINUS_RHYTHM] = {"426783006", "Sinus rhythm"},
    [CT_FHIR_FINDING_AF] = {"164889003", "Atrial fibrillation"},
    [CT_FHIR_FINDING_AFL] = {"164890007", "Atrial flutter"},
    [CT_FHIR_FINDING_PVC] = {"427172004", "Premature ventricular contractions"},
    [CT_FHIR_FINDING_PAC] = {"284470004", "Premature atrial contraction"},
    [CT_FHIR_FINDING_VT] = {"164895002", "Ventricular tachycardia"},
    [CT_FHIR_FINDING_VF] = {"164896001", "Ventricular fibrillation"},
    [CT_FHIR_FINDING_SINUS_BRADY] = {"426177001", "Sinus bradycardia"},
    [CT_FHIR_FINDING_SINUS_TACHY] = {"427084000", "Sinus tachycardia"},
    [CT_FHIR_FINDING_BIGEMINY] = {"11157007", "Ventricular bigeminy"},
    [CT_FHIR_FINDING_TRIGEMINY] = {"251180001", "Ventricular trigeminy"},
    [CT_FHIR_FINDING_COUPLET] = {"251182009", "Paired ventricular premature complexes"},
    [CT_FHIR_FINDING_ASYSTOLE] = {"397829000", "Asystole"},
    [CT_FHIR_FINDING_PAUSE] = {NULL, "Pause"},
};

const char *ct_fhir_finding_snomed(ct_fhir_finding f)
{
    return (unsigned)f < CT_FHIR_FINDING_COUNT_ ? findings[f].snomed : NULL;
}

const char *ct_fhir_finding_display(ct_fhir_finding f)
{
    return (unsigned)f < CT_FHIR_FINDING_COUNT_ ? findings[f].display : NULL;
}

static const struct {
    const char *code;
    const char *display;
} metrics[CT_FHIR_METRIC_COUNT_] = {
    [CT_FHIR_METRIC_BEATS] = {"beat-count", "Beats detected"},
    [CT_FHIR_METRIC_PVC] = {"pvc-count", "Ventricular ectopic beats"},
    [CT_FHIR_METRIC_SVEB] = {"sveb-count", "Supraventricular ectopic beats"},
    [CT_FHIR_METRIC_PAUSES] = {"pause-count", "Pauses"},
    [CT_FHIR_METRIC_VRUNS] = {"vrun-count", "Ventricular couplets, triplets and runs"},
};

const char *ct_fhir_metric_code(ct_fhir_metric m)
{
    return (unsigned)m < CT_FHIR_METRIC_COUNT_ ? metrics[m].code : NULL;
}

const char *ct_fhir_metric_display(ct_fhir_metric m)
{
    return (unsigned)m < CT_FHIR_METRIC_COUNT_ ? metrics[m].display : NULL;
}

/* --- checks ------------------------------------------------------------- */

static int in_set(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        if (strcmp(s, set[i]) == 0)
            return 1;
    return 0;
}

static int id_ok(const char *id)
{
    return id && ct_fhir_id_valid(id, strlen(id));
}

static int text_ok(const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    return n >= 1 && n <= max && ct_fhir_utf8_valid((const unsigned char *)s, n, NULL);
}

static int ref_ok(const char *r)
{
    ct_fhir_ref ref;
    return r && ct_fhir_ref_parse(r, NULL, &ref, NULL) == 0;
}

/* Writes "Type/id" into buf. */
static const char *ref_of(char *buf, size_t cap, const char *type, const char *id)
{
    snprintf(buf, cap, "%s/%s", type, id);
    return buf;
}

/* set_new that tolerates a NULL value (jansson would ignore it silently
 * and leave the member out): NULL is a failure. */
static int put(json_t *obj, const char *key, json_t *v)
{
    return v ? json_object_set_new(obj, key, v) : -1;
}

static json_t *instant(int64_t t_ms)
{
    char buf[CT_FHIR_INSTANT_CAP];
    return ct_fhir_instant_format(t_ms, buf, sizeof buf) ? NULL : json_string(buf);
}

static int instant_ok(int64_t t_ms)
{
    char buf[CT_FHIR_INSTANT_CAP];
    return ct_fhir_instant_format(t_ms, buf, sizeof buf) == 0;
}

static json_t *reference(const char *type, const char *id)
{
    char buf[CT_FHIR_TYPE_MAX + CT_FHIR_ID_MAX + 2];
    return json_pack("{s:s}", "reference", ref_of(buf, sizeof buf, type, id));
}

static json_t *ref_array(const char *type, const char *const *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (json_array_append_new(a, reference(type, ids[i]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *period(int64_t start_ms, int64_t end_ms)
{
    json_t *p = json_object();
    if (!p || put(p, "start", instant(start_ms)) || (end_ms >= 0 && put(p, "end", instant(end_ms)))) {
        json_decref(p);
        return NULL;
    }
    return p;
}

static json_t *nomem(json_t *partial, ct_error *err, const char *what)
{
    json_decref(partial);
    ct_error_set(err, CT_ENOMEM, "%s: out of memory", what);
    return NULL;
}

/* --- DiagnosticReport --------------------------------------------------- */

static const char *const report_status[] = {"registered", "partial", "preliminary", "final",
                                            "amended", "corrected", "appended", "cancelled",
                                            "entered-in-error", "unknown"};
static const char *const obs_status[] = {"registered", "preliminary", "final", "amended",
                                         "corrected", "cancelled", "entered-in-error", "unknown"};

json_t *ct_fhir_report_build(const ct_fhir_report_in *in, ct_error *err)
{
    const char *what = "DiagnosticReport";
    if (!in || !in_set(in->status, report_status, sizeof report_status / sizeof *report_status)) {
        ct_error_set(err, CT_EINVAL, "%s: status is missing or not a DiagnosticReport status", what);
        return NULL;
    }
    if (!id_ok(in->patient_id) || (in->id && !id_ok(in->id))) {
        ct_error_set(err, CT_EINVAL, "%s: id or patient id is not a FHIR id", what);
        return NULL;
    }
    if (!instant_ok(in->start_ms) || (in->end_ms >= 0 && (!instant_ok(in->end_ms) || in->end_ms < in->start_ms)) ||
        !instant_ok(in->issued_ms)) {
        ct_error_set(err, CT_EINVAL, "%s: effective period or issued time is out of range or reversed", what);
        return NULL;
    }
    if ((in->identifier_system == NULL) != (in->identifier_value == NULL) ||
        (in->identifier_system && (!text_ok(in->identifier_system, 1024) || !text_ok(in->identifier_value, 1024)))) {
        ct_error_set(err, CT_EINVAL, "%s: identifier needs both system and value, as UTF-8 text", what);
        return NULL;
    }
    for (size_t i = 0; i < in->n_results; i++)
        if (!id_ok(in->result_ids[i])) {
            ct_error_set(err, CT_EINVAL, "%s: result %zu is not a FHIR id", what, i);
            return NULL;
        }
    if (in->conclusion && !text_ok(in->conclusion, 1 << 20)) {
        ct_error_set(err, CT_EINVAL, "%s: conclusion is not UTF-8 text", what);
        return NULL;
    }
    for (size_t i = 0; i < in->n_findings; i++)
        if ((unsigned)in->findings[i] >= CT_FHIR_FINDING_COUNT_) {
            ct_error_set(err, CT_EINVAL, "%s: finding %zu is not a known finding", what, i);
            return NULL;
        }
    json_t *r = json_object();
    if (!r || put(r, "resourceType", json_string("DiagnosticReport")))
        return nomem(r, err, what);
    if (in->id && put(r, "id", json_string(in->id)))
        return nomem(r, err, what);
    if (in->identifier_system &&
        put(r, "identifier", json_pack("[{s:s,s:s}]", "system", in->identifier_system, "value",
                                       in->identifier_value)))
        return nomem(r, err, what);
    /* v2-0074's display is published with two spaces after "EKG,". */
    if (put(r, "status", json_string(in->status)) ||
        put(r, "category",
            json_pack("[{s:[{s:s,s:s,s:s}]},{s:[{s:s,s:s,s:s}]}]", "coding", "system", SYS_V2_0074,
                      "code", "EC", "display", "Electrocardiac (e.g., EKG,  EEC, Holter)", "coding",
                      "system", CT_FHIR_SYS_LOINC, "code", "LP29708-2", "display", "Cardiology")) ||
        put(r, "code", json_pack("{s:[{s:s,s:s,s:s}],s:s}", "coding", "system", CT_FHIR_SYS_LOINC,
                                 "code", "11524-6", "display", "EKG study", "text",
                                 "ECG monitoring report")) ||
        put(r, "subject", reference("Patient", in->patient_id)) ||
        put(r, "effectivePeriod", period(in->start_ms, in->end_ms)) ||
        put(r, "issued", instant(in->issued_ms)))
        return nomem(r, err, what);
    if (in->n_results && put(r, "result", ref_array("Observation", in->result_ids, in->n_results)))
        return nomem(r, err, what);
    if (in->conclusion && put(r, "conclusion", json_string(in->conclusion)))
        return nomem(r, err, what);
    if (in->n_findings) {
        json_t *cc = json_array();
        if (put(r, "conclusionCode", cc))
            return nomem(r, err, what);
        for (size_t i = 0; i < in->n_findings; i++) {
            ct_fhir_finding f = in->findings[i];
            json_t *c = findings[f].snomed
                            ? json_pack("{s:[{s:s,s:s,s:s}],s:s}", "coding", "system",
                                        CT_FHIR_SYS_SNOMED, "code", findings[f].snomed, "display",
                                        findings[f].display, "text", findings[f].display)
                            : json_pack("{s:s}", "text", findings[f].display);
            if (json_array_append_new(cc, c) || !c)
                return nomem(r, err, what);
        }
    }
    return r;
}

/* --- derived Observations ----------------------------------------------- */

static int derived_ok(const ct_fhir_derived_in *in, const char *what, ct_error *err)
{
    if (!in || !id_ok(in->patient_id) || (in->id && !id_ok(in->id)) ||
        (in->device_id && !id_ok(in->device_id)))
        return ct_error_set(err, CT_EINVAL, "%s: id, patient id or device id is not a FHIR id", what);
    if (in->status && !in_set(in->status, obs_status, sizeof obs_status / sizeof *obs_status))
        return ct_error_set(err, CT_EINVAL, "%s: status is not an Observation status", what);
    if (!instant_ok(in->start_ms) ||
        (in->end_ms >= 0 && (!instant_ok(in->end_ms) || in->end_ms < in->start_ms)) ||
        (in->issued_ms >= 0 && !instant_ok(in->issued_ms)))
        return ct_error_set(err, CT_EINVAL, "%s: times are out of range or reversed", what);
    for (size_t i = 0; i < in->n_derived_from; i++)
        if (!id_ok(in->derived_from_ids[i]))
            return ct_error_set(err, CT_EINVAL, "%s: derivedFrom %zu is not a FHIR id", what, i);
    return 0;
}

/* The parts every derived Observation shares; the caller adds code,
 * category and value. */
static json_t *derived_base(const ct_fhir_derived_in *in)
{
    json_t *o = json_object();
    if (!o || put(o, "resourceType", json_string("Observation")) ||
        (in->id && put(o, "id", json_string(in->id))) ||
        put(o, "status", json_string(in->status ? in->status : "final")) ||
        put(o, "subject", reference("Patient", in->patient_id)) ||
        (in->end_ms >= 0 ? put(o, "effectivePeriod", period(in->start_ms, in->end_ms))
                         : put(o, "effectiveDateTime", instant(in->start_ms))) ||
        (in->issued_ms >= 0 && put(o, "issued", instant(in->issued_ms))) ||
        (in->device_id && put(o, "device", reference("Device", in->device_id))) ||
        (in->n_derived_from &&
         put(o, "derivedFrom", ref_array("Observation", in->derived_from_ids, in->n_derived_from)))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *ct_fhir_heart_rate_build(const ct_fhir_derived_in *in, double bpm, ct_error *err)
{
    const char *what = "heart rate Observation";
    if (derived_ok(in, what, err))
        return NULL;
    if (!(bpm >= 0 && bpm <= 1000)) {
        ct_error_set(err, CT_EINVAL, "%s: %g bpm is outside 0..1000", what, bpm);
        return NULL;
    }
    json_t *o = derived_base(in);
    /* The R4 vital signs profile fixes category, code and the UCUM unit. */
    double v = floor(bpm * 10 + 0.5) / 10;
    if (!o || put(o, "meta", json_pack("{s:[s]}", "profile", "http://hl7.org/fhir/StructureDefinition/heartrate")) ||
        put(o, "category", json_pack("[{s:[{s:s,s:s,s:s}],s:s}]", "coding", "system", SYS_OBS_CATEGORY,
                                     "code", "vital-signs", "display", "Vital Signs", "text",
                                     "Vital Signs")) ||
        put(o, "code", json_pack("{s:[{s:s,s:s,s:s}],s:s}", "coding", "system", CT_FHIR_SYS_LOINC,
                                 "code", "8867-4", "display", "Heart rate", "text", "Heart rate")) ||
        put(o, "valueQuantity", json_pack("{s:o,s:s,s:s,s:s}", "value",
                                          v == floor(v) ? json_integer((json_int_t)v) : json_real(v),
                                          "unit", "beats/minute", "system", CT_FHIR_SYS_UCUM,
                                          "code", "/min")))
        return nomem(o, err, what);
    return o;
}

json_t *ct_fhir_count_build(const ct_fhir_derived_in *in, ct_fhir_metric metric, int64_t count,
                            ct_error *err)
{
    const char *what = "count Observation";
    if (derived_ok(in, what, err))
        return NULL;
    if ((unsigned)metric >= CT_FHIR_METRIC_COUNT_ || count < 0 || count > INT32_MAX) {
        ct_error_set(err, CT_EINVAL, "%s: unknown metric or count %lld outside 0..2^31-1", what,
                     (long long)count);
        return NULL;
    }
    json_t *o = derived_base(in);
    if (!o ||
        put(o, "code", json_pack("{s:[{s:s,s:s,s:s}],s:s}", "coding", "system", CT_FHIR_METRIC_SYSTEM,
                                 "code", metrics[metric].code, "display", metrics[metric].display,
                                 "text", metrics[metric].display)) ||
        put(o, "valueInteger", json_integer((json_int_t)count)))
        return nomem(o, err, what);
    return o;
}

/* --- Device and Provenance ---------------------------------------------- */

json_t *ct_fhir_device_build(const char *id, const char *name, const char *version, ct_error *err)
{
    const char *what = "Device";
    if ((id && !id_ok(id)) || !text_ok(name, 256) || !text_ok(version, 64)) {
        ct_error_set(err, CT_EINVAL, "%s: id, name or version is missing or invalid", what);
        return NULL;
    }
    json_t *d = json_object();
    if (!d || put(d, "resourceType", json_string("Device")) || (id && put(d, "id", json_string(id))) ||
        put(d, "status", json_string("active")) ||
        put(d, "deviceName", json_pack("[{s:s,s:s}]", "name", name, "type", "model-name")) ||
        put(d, "type", json_pack("{s:s}", "text", "ECG beat and rhythm analysis software")) ||
        put(d, "version", json_pack("[{s:{s:s},s:s}]", "type", "text", "software", "value", version)))
        return nomem(d, err, what);
    return d;
}

json_t *ct_fhir_provenance_build(const ct_fhir_provenance_in *in, ct_error *err)
{
    const char *what = "Provenance";
    if (!in || in->n_targets == 0 || (in->id && !id_ok(in->id)) || !id_ok(in->device_id) ||
        !instant_ok(in->recorded_ms)) {
        ct_error_set(err, CT_EINVAL, "%s: needs targets, a recorded time and the detector device id", what);
        return NULL;
    }
    for (size_t i = 0; i < in->n_targets; i++)
        if (!ref_ok(in->target_refs[i])) {
            ct_error_set(err, CT_EINVAL, "%s: target %zu is not a reference", what, i);
            return NULL;
        }
    for (size_t i = 0; i < in->n_sources; i++)
        if (!ref_ok(in->source_refs[i])) {
            ct_error_set(err, CT_EINVAL, "%s: source %zu is not a reference", what, i);
            return NULL;
        }
    json_t *p = json_object(), *targets = json_array(), *entities = NULL;
    if (!p || !targets || put(p, "resourceType", json_string("Provenance")) ||
        (in->id && put(p, "id", json_string(in->id))) || json_object_set(p, "target", targets)) {
        json_decref(targets);
        return nomem(p, err, what);
    }
    for (size_t i = 0; i < in->n_targets; i++)
        if (json_array_append_new(targets, json_pack("{s:s}", "reference", in->target_refs[i]))) {
            json_decref(targets);
            return nomem(p, err, what);
        }
    json_decref(targets);
    char dev[CT_FHIR_ID_MAX + 8];
    if (put(p, "recorded", instant(in->recorded_ms)) ||
        put(p, "activity", json_pack("{s:[{s:s,s:s,s:s}]}", "coding", "system",
                                     "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                     "code", "CREATE", "display", "create")) ||
        put(p, "agent", json_pack("[{s:{s:[{s:s,s:s,s:s}]},s:{s:s}}]", "type", "coding", "system",
                                  "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                  "code", "performer", "display", "Performer", "who", "reference",
                                  ref_of(dev, sizeof dev, "Device", in->device_id))))
        return nomem(p, err, what);
    if (in->n_sources) {
        entities = json_array();
        if (put(p, "entity", entities))
            return nomem(p, err, what);
        for (size_t i = 0; i < in->n_sources; i++)
            if (json_array_append_new(entities, json_pack("{s:s,s:{s:s}}", "role", "derivation",
                                                          "what", "reference", in->source_refs[i])))
                return nomem(p, err, what);
    }
    return p;
}

/* --- Bundles ------------------------------------------------------------ */

static const char *const bundle_types[] = {"searchset", "history", "batch-response",
                                           "transaction-response"};

json_t *ct_fhir_bundle_new(const char *type, ct_error *err)
{
    if (!in_set(type, bundle_types, sizeof bundle_types / sizeof *bundle_types)) {
        ct_error_set(err, CT_EINVAL, "Bundle: type must be searchset, history, batch-response or "
                                     "transaction-response");
        return NULL;
    }
    json_t *b = json_pack("{s:s,s:s}", "resourceType", "Bundle", "type", type);
    if (!b)
        ct_error_set(err, CT_ENOMEM, "Bundle: out of memory");
    return b;
}

static int is_bundle(const json_t *b)
{
    const char *rt = ct_fhir_resource_type(b);
    return rt && strcmp(rt, "Bundle") == 0;
}

int ct_fhir_bundle_set_total(json_t *bundle, int64_t total, ct_error *err)
{
    const char *type = ct_fhir_get_string(bundle, "type");
    if (!is_bundle(bundle) || !type || (strcmp(type, "searchset") && strcmp(type, "history")) ||
        total < 0)
        return ct_error_set(err, CT_EINVAL, "Bundle: total belongs to searchset and history bundles, >= 0");
    if (json_object_set_new(bundle, "total", json_integer((json_int_t)total)))
        return ct_error_set(err, CT_ENOMEM, "Bundle: out of memory");
    return 0;
}

int ct_fhir_bundle_add_link(json_t *bundle, const char *relation, const char *url, ct_error *err)
{
    if (!is_bundle(bundle) || !text_ok(relation, 64) || !text_ok(url, 8192))
        return ct_error_set(err, CT_EINVAL, "Bundle: a link needs a relation and a url");
    json_t *links = json_object_get(bundle, "link");
    if (!links) {
        links = json_array();
        if (put(bundle, "link", links))
            return ct_error_set(err, CT_ENOMEM, "Bundle: out of memory");
    }
    if (json_array_append_new(links, json_pack("{s:s,s:s}", "relation", relation, "url", url)))
        return ct_error_set(err, CT_ENOMEM, "Bundle: out of memory");
    return 0;
}

static const char *const search_modes[] = {"match", "include", "outcome"};
static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};

int ct_fhir_bundle_add_entry(json_t *bundle, ct_fhir_entry_in *in, ct_error *err)
{
    json_t *resource = in ? in->resource : NULL, *outcome = in ? in->response_outcome : NULL;
    if (in) {
        in->resource = NULL;
        in->response_outcome = NULL;
    }
    int rc = 0;
    json_t *e = NULL;
    if (!is_bundle(bundle) || !in) {
        rc = ct_error_set(err, CT_EINVAL, "Bundle: add_entry needs a bundle and an entry");
        goto out;
    }
    if ((in->full_url && !text_ok(in->full_url, 8192)) ||
        (in->search_mode && !in_set(in->search_mode, search_modes, 3)) ||
        (in->request_method && !in_set(in->request_method, methods, 6)) ||
        ((in->request_method == NULL) != (in->request_url == NULL)) ||
        (in->request_url && !text_ok(in->request_url, 8192)) ||
        (in->response_location && !text_ok(in->response_location, 8192)) ||
        (in->response_etag && !text_ok(in->response_etag, 128)) ||
        (in->response_status && !text_ok(in->response_status, 128)) ||
        (in->response_last_modified_ms >= 0 && !instant_ok(in->response_last_modified_ms)) ||
        (!in->response_status && (in->response_location || in->response_etag || outcome ||
                                  in->response_last_modified_ms >= 0))) {
        rc = ct_error_set(err, CT_EINVAL, "Bundle: entry fields are invalid (a response needs a status)");
        goto out;
    }
    e = json_object();
    if (!e || (in->full_url && put(e, "fullUrl", json_string(in->full_url))))
        goto nomem;
    if (resource) {
        int r = json_object_set_new(e, "resource", resource);
        resource = NULL;
        if (r)
            goto nomem;
    }
    if (in->search_mode && put(e, "search", json_pack("{s:s}", "mode", in->search_mode)))
        goto nomem;
    if (in->request_method &&
        put(e, "request", json_pack("{s:s,s:s}", "method", in->request_method, "url", in->request_url)))
        goto nomem;
    if (in->response_status) {
        json_t *r = json_pack("{s:s}", "status", in->response_status);
        if (put(e, "response", r) ||
            (in->response_location && put(r, "location", json_string(in->response_location))) ||
            (in->response_etag && put(r, "etag", json_string(in->response_etag))) ||
            (in->response_last_modified_ms >= 0 &&
             put(r, "lastModified", instant(in->response_last_modified_ms))))
            goto nomem;
        if (outcome) {
            int x = json_object_set_new(r, "outcome", outcome);
            outcome = NULL;
            if (x)
                goto nomem;
        }
    }
    json_t *entries = json_object_get(bundle, "entry");
    if (!entries) {
        entries = json_array();
        if (put(bundle, "entry", entries))
            goto nomem;
    }
    rc = json_array_append_new(entries, e);
    e = NULL;
    if (rc)
        goto nomem;
    goto out;
nomem:
    rc = ct_error_set(err, CT_ENOMEM, "Bundle: out of memory");
out:
    json_decref(e);
    json_decref(resource);
    json_decref(outcome);
    return rc;
}
