/* fhir: FHIR R4 (4.0.1) JSON for cardiotwin. It parses what comes from
 * outside (bounded before jansson builds anything), validates it against what
 * we need, turns ECG Observations into samples and back, builds what the twin
 * emits (DiagnosticReport, derived Observations, Provenance, Device, Bundle,
 * OperationOutcome), and parses FHIR search parameters. It knows nothing of
 * HTTP or SQLite: every problem is a ct_fhir_issue that carries the HTTP
 * status, the FHIR issue type and the FHIRPath of the element at fault, so
 * the http room only has to serialise it. docs/fhir.md is the manual.
 *
 * Ownership: every json_t* returned is a new reference the caller releases
 * with json_decref(). A function documented as "stealing" a json_t* takes
 * that reference over, on success and on failure alike (jansson's _new
 * convention). */
#ifndef CARDIOTWIN_FHIR_H
#define CARDIOTWIN_FHIR_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cardiotwin/error.h"

#define CT_FHIR_VERSION "4.0.1"

/* Canonical base of our conformance artefacts (fhir/). ".example" is a
 * reserved name (RFC 2606): replace it, here and in fhir/, once the project
 * owns a domain (tests/fhir/test_artefacts.c checks that both agree). */
#define CT_FHIR_CANONICAL_BASE "https://cardiotwin.example/fhir"
#define CT_FHIR_ECG_PROFILE CT_FHIR_CANONICAL_BASE "/StructureDefinition/cardiotwin-ecg-observation"
#define CT_FHIR_METRIC_SYSTEM CT_FHIR_CANONICAL_BASE "/CodeSystem/cardiotwin-ecg-metric"

/* Code systems we write or accept. */
#define CT_FHIR_SYS_MDC "urn:oid:2.16.840.1.113883.6.24"
#define CT_FHIR_SYS_MDC_ISO "urn:iso:std:iso:11073:10101"
#define CT_FHIR_SYS_LOINC "http://loinc.org"
#define CT_FHIR_SYS_SNOMED "http://snomed.info/sct"
#define CT_FHIR_SYS_UCUM "http://unitsofmeasure.org"

/* ------------------------------------------------------------------------ */
/* Issues and OperationOutcome                                              */
/* ------------------------------------------------------------------------ */

typedef enum ct_fhir_severity {
    CT_FHIR_SEV_FATAL = 0,
    CT_FHIR_SEV_ERROR,
    CT_FHIR_SEV_WARNING,
    CT_FHIR_SEV_INFORMATION
} ct_fhir_severity;

/* The FHIR R4 IssueType value set (http://hl7.org/fhir/issue-type). */
typedef enum ct_fhir_issue_type {
    CT_FHIR_IT_INVALID = 0,
    CT_FHIR_IT_STRUCTURE,
    CT_FHIR_IT_REQUIRED,
    CT_FHIR_IT_VALUE,
    CT_FHIR_IT_INVARIANT,
    CT_FHIR_IT_SECURITY,
    CT_FHIR_IT_LOGIN,
    CT_FHIR_IT_UNKNOWN,
    CT_FHIR_IT_EXPIRED,
    CT_FHIR_IT_FORBIDDEN,
    CT_FHIR_IT_SUPPRESSED,
    CT_FHIR_IT_PROCESSING,
    CT_FHIR_IT_NOT_SUPPORTED,
    CT_FHIR_IT_DUPLICATE,
    CT_FHIR_IT_MULTIPLE_MATCHES,
    CT_FHIR_IT_NOT_FOUND,
    CT_FHIR_IT_DELETED,
    CT_FHIR_IT_TOO_LONG,
    CT_FHIR_IT_CODE_INVALID,
    CT_FHIR_IT_EXTENSION,
    CT_FHIR_IT_TOO_COSTLY,
    CT_FHIR_IT_BUSINESS_RULE,
    CT_FHIR_IT_CONFLICT,
    CT_FHIR_IT_TRANSIENT,
    CT_FHIR_IT_LOCK_ERROR,
    CT_FHIR_IT_NO_STORE,
    CT_FHIR_IT_EXCEPTION,
    CT_FHIR_IT_TIMEOUT,
    CT_FHIR_IT_INCOMPLETE,
    CT_FHIR_IT_THROTTLED,
    CT_FHIR_IT_INFORMATIONAL
} ct_fhir_issue_type;

#define CT_FHIR_DIAG_MAX 320
#define CT_FHIR_EXPR_MAX 160

/* One problem, ready for an OperationOutcome. http_status is what the
 * request should answer (400 malformed JSON or query, 413 over a size limit,
 * 422 valid JSON that is not a resource we can use); diagnostics says what
 * to fix in one sentence; expression is a FHIRPath such as
 * "Observation.component[1].valueSampledData.data" ("" when the problem is
 * not tied to one element). */
typedef struct ct_fhir_issue {
    int http_status;
    ct_fhir_severity severity;
    ct_fhir_issue_type code;
    char diagnostics[CT_FHIR_DIAG_MAX];
    char expression[CT_FHIR_EXPR_MAX];
} ct_fhir_issue;

/* Fills issue (may be NULL) and returns ret, so a caller can write
 * `return ct_fhir_issue_set(issue, CT_EFORMAT, 422, ...)`. Text that does
 * not fit is cut; control bytes are replaced by '?'. */
int ct_fhir_issue_set(ct_fhir_issue *issue, int ret, int http_status, ct_fhir_severity severity,
                      ct_fhir_issue_type code, const char *expression, const char *fmt, ...)
    CT_PRINTF(7, 8);
void ct_fhir_issue_clear(ct_fhir_issue *issue);
const char *ct_fhir_issue_type_name(ct_fhir_issue_type code);   /* "structure" ... */
const char *ct_fhir_severity_name(ct_fhir_severity severity);   /* "error" ... */

/* An OperationOutcome holding the n issues (n >= 1), or NULL when out of
 * memory or n == 0. */
json_t *ct_fhir_operation_outcome(const ct_fhir_issue *issues, size_t n);
/* The same, serialised compactly: malloc'd, NUL-terminated, caller frees. */
char *ct_fhir_operation_outcome_dump(const ct_fhir_issue *issues, size_t n);

/* ------------------------------------------------------------------------ */
/* Parsing JSON from outside                                                */
/* ------------------------------------------------------------------------ */

#define CT_FHIR_DEFAULT_MAX_BYTES ((size_t)16 * 1024 * 1024)
#define CT_FHIR_DEFAULT_MAX_DEPTH 32
#define CT_FHIR_DEFAULT_MAX_TOKENS ((size_t)200000)

/* Checked on the raw bytes before jansson allocates anything. A token is a
 * string (object keys included), number, literal, object or array. */
typedef struct ct_fhir_limits {
    size_t max_bytes;
    int max_depth;
    size_t max_tokens;
} ct_fhir_limits;

ct_fhir_limits ct_fhir_limits_default(void);

/* Parses body[0..len) into *out. Refused with 413 (CT_ELIMIT): over
 * max_bytes, max_depth or max_tokens. Refused with 400 (CT_EFORMAT): NUL
 * bytes, invalid UTF-8, a byte-order mark, JSON syntax errors, duplicate
 * keys, numbers out of range. lim NULL means the defaults. On failure *out
 * is NULL. Costs one pass over the bytes plus jansson's parse. */
int ct_fhir_parse(const char *body, size_t len, const ct_fhir_limits *lim, json_t **out,
                  ct_fhir_issue *issue);

/* The minimal shape every resource we store must have, for generic create
 * and update (Patient, Device, Provenance ...): a JSON object; resourceType
 * a string equal to `type` (any of ct_fhir_supported_type when type is
 * NULL); id, if present, a valid id; meta.versionId and meta.lastUpdated, if
 * present, well-formed; and FHIR's JSON rules: no null outside arrays, no
 * empty string, object or array anywhere. 422 (CT_EFORMAT) naming the
 * element. */
int ct_fhir_validate_resource(const json_t *res, const char *type, ct_fhir_issue *issue);

/* resourceType of res, or NULL when res is not an object with a string one. */
const char *ct_fhir_resource_type(const json_t *res);

/* 1 for the resource types this server stores: Patient, Observation,
 * DiagnosticReport, Device, Provenance. */
int ct_fhir_supported_type(const char *type);

/* ------------------------------------------------------------------------ */
/* Ids, references, date and time                                           */
/* ------------------------------------------------------------------------ */

#define CT_FHIR_ID_MAX 64
#define CT_FHIR_TYPE_MAX 64

/* 1 when s[0..len) matches FHIR's id: [A-Za-z0-9\-.]{1,64}. */
int ct_fhir_id_valid(const char *s, size_t len);

typedef enum ct_fhir_ref_kind {
    CT_FHIR_REF_RELATIVE = 0, /* "Patient/123", "Patient/123/_history/2" */
    CT_FHIR_REF_ABSOLUTE,     /* "https://host/fhir/Patient/123[/_history/2]" */
    CT_FHIR_REF_URN_UUID,     /* "urn:uuid:0b8f...": a Bundle-local name */
    CT_FHIR_REF_CONTAINED     /* "#p1" */
} ct_fhir_ref_kind;

typedef struct ct_fhir_ref {
    ct_fhir_ref_kind kind;
    char type[CT_FHIR_TYPE_MAX + 1];    /* "Patient"; "" for urn:uuid and contained */
    char id[CT_FHIR_ID_MAX + 1];        /* the id; the uuid; the contained id */
    char version[CT_FHIR_ID_MAX + 1];   /* "" when no _history part */
    char base[256];                     /* absolute: "https://host/fhir"; else "" */
} ct_fhir_ref;

/* Parses a Reference.reference string. 422 (CT_EFORMAT) on anything else,
 * with `expression` (may be NULL) as the element named in the issue. */
int ct_fhir_ref_parse(const char *s, const char *expression, ct_fhir_ref *out,
                      ct_fhir_issue *issue);

typedef enum ct_fhir_precision {
    CT_FHIR_PREC_YEAR = 0,
    CT_FHIR_PREC_MONTH,
    CT_FHIR_PREC_DAY,
    CT_FHIR_PREC_MINUTE,   /* search values only ("2026-11-22T10:00Z") */
    CT_FHIR_PREC_SECOND,
    CT_FHIR_PREC_FRACTION  /* seconds with a decimal fraction */
} ct_fhir_precision;

/* Which grammar a string must follow. */
typedef enum ct_fhir_dt_kind {
    CT_FHIR_DT_DATE = 0,  /* date: YYYY, YYYY-MM, YYYY-MM-DD */
    CT_FHIR_DT_DATETIME,  /* dateTime: a date, or a full time with seconds and a zone */
    CT_FHIR_DT_INSTANT,   /* instant: full time with seconds and a zone, always */
    CT_FHIR_DT_SEARCH     /* search value: dateTime, or hh:mm with a zone */
} ct_fhir_dt_kind;

/* A date or time as the range of UTC milliseconds it stands for:
 * "2026-11-22" is [2026-11-22T00:00Z, 2026-11-23T00:00Z); "10:00:00.1Z" is
 * 100 ms wide; "10:00:00.123Z" and finer are 1 ms wide. Values without a
 * time have no zone in FHIR; we take them as UTC days. */
typedef struct ct_fhir_datetime {
    int64_t start_ms;        /* inclusive */
    int64_t end_ms;          /* exclusive */
    ct_fhir_precision precision;
    int has_tz;              /* a zone was written */
    int tz_offset_min;       /* that zone, minutes east of UTC */
} ct_fhir_datetime;

/* Parses s[0..len). Refused (CT_EFORMAT, 422 unless a caller remaps it)
 * with a message naming the field: impossible dates (2026-02-30, 2100-02-29),
 * 24:00, a time without a zone, a zone beyond +/-14:00, year 0000. */
int ct_fhir_datetime_parse(const char *s, size_t len, ct_fhir_dt_kind kind, const char *expression,
                           ct_fhir_datetime *out, ct_fhir_issue *issue);

/* Writes t_ms as an instant, "2026-11-22T10:00:00.123Z" (24 chars + NUL).
 * CT_EINVAL if cap < 25 or t_ms is outside years 0001..9999. */
#define CT_FHIR_INSTANT_CAP 25
int ct_fhir_instant_format(int64_t t_ms, char *buf, size_t cap);

/* UTC milliseconds of a civil date and time (no range checks: callers pass
 * validated fields). Exposed for tests and for the store's date columns. */
int64_t ct_fhir_utc_ms(int year, int month, int day, int hour, int minute, int second, int ms);

/* ------------------------------------------------------------------------ */
/* ECG Observation <-> samples                                              */
/* ------------------------------------------------------------------------ */

#define CT_FHIR_ECG_CODE 131328              /* MDC_ECG_ELEC_POTL */
#define CT_FHIR_ECG_MAX_LEADS 12
#define CT_FHIR_ECG_DEFAULT_MAX_SAMPLES ((size_t)1000000)
/* A sample that is not there: "E", "L" or "U" in SampledData.data. Equal to
 * CT_WFDB_INVALID_SAMPLE, so the store and the detector treat it alike. */
#define CT_FHIR_SAMPLE_MISSING INT16_MIN

/* The leads we accept (fhir/ValueSet-cardiotwin-ecg-leads.json): MDC
 * electric potential codes of ISO/IEEE 11073-10101. */
typedef struct ct_fhir_lead_info {
    int mdc_code;          /* 131329 */
    const char *name;      /* "I" */
    const char *mdc_name;  /* "MDC_ECG_ELEC_POTL_I" */
} ct_fhir_lead_info;

/* The lead for an MDC code, or NULL when we do not accept it. */
const ct_fhir_lead_info *ct_fhir_lead_by_code(int mdc_code);
/* The lead for a signal name as WFDB records write it ("MLII" -> II, "V1",
 * "aVR" / "AVR", "I" ...), or NULL. Modified limb leads map to their limb
 * lead: MDC has no code of its own for MLII. */
const ct_fhir_lead_info *ct_fhir_lead_by_name(const char *name);
/* All accepted leads (n written to *n). */
const ct_fhir_lead_info *ct_fhir_leads(size_t *n);

typedef struct ct_fhir_ecg_limits {
    size_t max_samples;    /* per lead; default CT_FHIR_ECG_DEFAULT_MAX_SAMPLES */
    int max_leads;         /* 1..CT_FHIR_ECG_MAX_LEADS */
} ct_fhir_ecg_limits;

/* One lead, as int16 samples with the scale to read them:
 *   microvolts = (samples[i] - baseline_adu) * 1000 / gain_adu_per_mv.
 * When the data are integers that fit int16 (what a device sends: ADC codes
 * with origin and factor), samples are those integers unchanged (`exact`),
 * gain = 1000 / factor_uv and baseline = -origin_uv / factor_uv (not always
 * a whole number: the twin rounds it for the detector, an error under half
 * an ADC unit). Otherwise the physical values are quantised to 1 uV per unit
 * (gain 1000, baseline 0) and must lie within +/-32767 uV. */
typedef struct ct_fhir_ecg_lead {
    const ct_fhir_lead_info *lead;
    char text[32];             /* component.code.text when given ("MLII"), else ""; cut to 31
                                  bytes on a UTF-8 boundary */
    double period_ms;          /* SampledData.period */
    double fs_hz;              /* 1000 / period_ms, snapped to a whole number within 1 ppb */
    size_t n_samples;
    int16_t *samples;          /* owned by the ct_fhir_ecg */
    size_t n_missing;          /* E, L and U values, stored as CT_FHIR_SAMPLE_MISSING */
    double gain_adu_per_mv;
    double baseline_adu;
    int exact;                 /* 1: samples are the data values unchanged */
    double origin_uv;          /* origin.value in uV */
    double factor_uv;          /* factor in uV (1 when absent) */
    int has_lower, has_upper;
    double lower_uv, upper_uv; /* lowerLimit / upperLimit in uV */
    int unit_assumed;          /* origin had no unit: taken as uV (a warning is recorded) */
} ct_fhir_ecg_lead;

typedef enum ct_fhir_obs_status {
    CT_FHIR_OBS_REGISTERED = 0,
    CT_FHIR_OBS_PRELIMINARY,
    CT_FHIR_OBS_FINAL,
    CT_FHIR_OBS_AMENDED,
    CT_FHIR_OBS_CORRECTED,
    CT_FHIR_OBS_CANCELLED,
    CT_FHIR_OBS_ENTERED_IN_ERROR,
    CT_FHIR_OBS_UNKNOWN
} ct_fhir_obs_status;

#define CT_FHIR_ECG_MAX_WARNINGS 4

typedef struct ct_fhir_ecg {
    char id[CT_FHIR_ID_MAX + 1];          /* Observation.id, "" if none */
    ct_fhir_obs_status status;
    char patient_id[CT_FHIR_ID_MAX + 1];  /* from subject "Patient/ID" */
    char device_id[CT_FHIR_ID_MAX + 1];   /* from device "Device/ID", "" if none */
    int64_t start_ms;                     /* effective start, UTC */
    ct_fhir_precision start_precision;    /* SECOND or FRACTION */
    int64_t end_ms;                       /* effectivePeriod.end as written, -1 if none */
    int n_leads;
    ct_fhir_ecg_lead leads[CT_FHIR_ECG_MAX_LEADS];
    size_t n_warnings;                    /* things accepted with a caveat */
    ct_fhir_issue warnings[CT_FHIR_ECG_MAX_WARNINGS];
} ct_fhir_ecg;

ct_fhir_ecg_limits ct_fhir_ecg_limits_default(void);

/* Validates an ECG Observation (the profile in docs/fhir.md) and extracts
 * its samples into *out. Every refusal is 422 (CT_EFORMAT, or CT_ELIMIT for
 * a count over a limit) with the FHIRPath of the element at fault. All
 * leads must share one period and one sample count. lim NULL means the
 * defaults. On failure *out holds nothing to free. */
int ct_fhir_ecg_from_json(const json_t *obs, const ct_fhir_ecg_limits *lim, ct_fhir_ecg *out,
                          ct_fhir_issue *issue);
void ct_fhir_ecg_free(ct_fhir_ecg *ecg);

/* What ct_fhir_ecg_to_json needs: n_samples frames of n_leads int16 leads,
 * each with its WFDB-style scale. */
typedef struct ct_fhir_ecg_lead_in {
    int mdc_code;              /* an accepted lead */
    const char *text;          /* component.code.text, e.g. "MLII"; NULL for none */
    double gain_adu_per_mv;    /* > 0 */
    int baseline_adu;
    const int16_t *samples;    /* n_samples values; CT_FHIR_SAMPLE_MISSING is written "E" */
} ct_fhir_ecg_lead_in;

typedef struct ct_fhir_ecg_in {
    const char *id;            /* Observation.id, NULL for none (a create) */
    const char *status;        /* "final" when NULL */
    const char *patient_id;
    const char *device_id;     /* NULL for none */
    const char *identifier_system; /* both or neither: Observation.identifier, for */
    const char *identifier_value;  /* idempotent conditional create */
    int64_t start_ms;
    double fs_hz;              /* > 0 */
    size_t n_samples;          /* 1..max */
    int n_leads;
    ct_fhir_ecg_lead_in leads[CT_FHIR_ECG_MAX_LEADS];
} ct_fhir_ecg_in;

/* Builds the ECG Observation in the style of the specification's ekg
 * example (effectivePeriod start and end, one component per lead,
 * valueSampledData with origin and factor in uV, period, dimensions 1).
 * Reading it back with ct_fhir_ecg_from_json gives the same samples. */
int ct_fhir_ecg_to_json(const ct_fhir_ecg_in *in, json_t **out, ct_error *err);

/* ------------------------------------------------------------------------ */
/* What the twin emits                                                      */
/* ------------------------------------------------------------------------ */

/* ECG findings with their SNOMED CT codes (checked against published
 * mappings, see docs/fhir.md). A pause has no SNOMED CT finding that does
 * not presume its mechanism: it is written as text only. */
typedef enum ct_fhir_finding {
    CT_FHIR_FINDING_SINUS_RHYTHM = 0,   /* 426783006 */
    CT_FHIR_FINDING_AF,                 /* 164889003 atrial fibrillation */
    CT_FHIR_FINDING_AFL,                /* 164890007 atrial flutter */
    CT_FHIR_FINDING_PVC,                /* 427172004 premature ventricular contractions */
    CT_FHIR_FINDING_PAC,                /* 284470004 premature atrial contraction */
    CT_FHIR_FINDING_VT,                 /* 164895002 ventricular tachycardia */
    CT_FHIR_FINDING_VF,                 /* 164896001 ventricular fibrillation */
    CT_FHIR_FINDING_SINUS_BRADY,        /* 426177001 sinus bradycardia */
    CT_FHIR_FINDING_SINUS_TACHY,        /* 427084000 sinus tachycardia */
    CT_FHIR_FINDING_BIGEMINY,           /* 11157007 ventricular bigeminy */
    CT_FHIR_FINDING_TRIGEMINY,          /* 251180001 ventricular trigeminy */
    CT_FHIR_FINDING_COUPLET,            /* 251182009 paired ventricular premature complexes */
    CT_FHIR_FINDING_ASYSTOLE,           /* 397829000 asystole */
    CT_FHIR_FINDING_PAUSE,              /* text only */
    CT_FHIR_FINDING_COUNT_
} ct_fhir_finding;

/* SNOMED CT code ("164889003", or NULL for text-only findings) and display. */
const char *ct_fhir_finding_snomed(ct_fhir_finding f);
const char *ct_fhir_finding_display(ct_fhir_finding f);

/* Common parts of the resources the twin writes. Ids are FHIR ids of
 * resources on this server; references are written "Type/id". */
typedef struct ct_fhir_report_in {
    const char *id;                  /* NULL: none (a create) */
    const char *status;              /* "preliminary", "final" ... (required) */
    const char *patient_id;          /* required */
    int64_t start_ms, end_ms;        /* effectivePeriod; end_ms < 0: open */
    int64_t issued_ms;
    const char *identifier_system;   /* optional pair, for conditional create upstream */
    const char *identifier_value;
    const char *const *result_ids;   /* Observation ids (derived observations) */
    size_t n_results;
    const char *conclusion;          /* NULL for none */
    const ct_fhir_finding *findings; /* conclusionCode */
    size_t n_findings;
} ct_fhir_report_in;

/* DiagnosticReport: status, category (v2-0074 EC "Electrocardiac" and
 * LOINC LP29708-2 "Cardiology"), code LOINC 11524-6 "EKG study", subject,
 * effectivePeriod, issued, result, conclusion, conclusionCode. R4's
 * DiagnosticReport has no derivedFrom, and basedOn cannot point to an
 * Observation: the way back to the source ECG is the result Observations'
 * derivedFrom and the Provenance entities. NULL on invalid input or ENOMEM
 * (err says which). */
json_t *ct_fhir_report_build(const ct_fhir_report_in *in, ct_error *err);

typedef struct ct_fhir_derived_in {
    const char *id;                     /* NULL: none */
    const char *status;                 /* "final" when NULL */
    const char *patient_id;
    int64_t start_ms, end_ms;           /* effectivePeriod; end_ms < 0: effectiveDateTime */
    int64_t issued_ms;                  /* < 0: none */
    const char *device_id;              /* the detector Device, NULL for none */
    const char *const *derived_from_ids;/* source ECG Observation ids */
    size_t n_derived_from;
} ct_fhir_derived_in;

/* Heart rate Observation in the vital-signs shape: category vital-signs,
 * LOINC 8867-4, valueQuantity in UCUM "/min". */
json_t *ct_fhir_heart_rate_build(const ct_fhir_derived_in *in, double bpm, ct_error *err);

/* Counts behind an alert, coded in our metric CodeSystem
 * (fhir/CodeSystem-cardiotwin-ecg-metric.json). */
typedef enum ct_fhir_metric {
    CT_FHIR_METRIC_BEATS = 0,      /* "beat-count" all beats detected */
    CT_FHIR_METRIC_PVC,            /* "pvc-count" ventricular ectopic beats */
    CT_FHIR_METRIC_SVEB,           /* "sveb-count" supraventricular ectopic beats */
    CT_FHIR_METRIC_PAUSES,         /* "pause-count" */
    CT_FHIR_METRIC_VRUNS,          /* "vrun-count" couplets, triplets and runs */
    CT_FHIR_METRIC_COUNT_
} ct_fhir_metric;
const char *ct_fhir_metric_code(ct_fhir_metric m);
const char *ct_fhir_metric_display(ct_fhir_metric m);

json_t *ct_fhir_count_build(const ct_fhir_derived_in *in, ct_fhir_metric metric, int64_t count,
                            ct_error *err);

/* The detector as a Device: deviceName (model-name), version (software),
 * type text. */
json_t *ct_fhir_device_build(const char *id, const char *name, const char *version,
                             ct_error *err);

typedef struct ct_fhir_provenance_in {
    const char *id;                   /* NULL: none */
    const char *const *target_refs;   /* "DiagnosticReport/abc", "Observation/hr1" ... (>= 1) */
    size_t n_targets;
    int64_t recorded_ms;
    const char *device_id;            /* the detector, agent performer */
    const char *const *source_refs;   /* entities with role derivation: the source ECG */
    size_t n_sources;
} ct_fhir_provenance_in;

json_t *ct_fhir_provenance_build(const ct_fhir_provenance_in *in, ct_error *err);

/* Bundles. ct_fhir_bundle_new makes {"resourceType":"Bundle","type":type}
 * for type searchset, history, batch-response or transaction-response. */
json_t *ct_fhir_bundle_new(const char *type, ct_error *err);
int ct_fhir_bundle_set_total(json_t *bundle, int64_t total, ct_error *err);
int ct_fhir_bundle_add_link(json_t *bundle, const char *relation, const char *url, ct_error *err);

/* One Bundle.entry. Fields left NULL (or < 0 for times) are omitted. */
typedef struct ct_fhir_entry_in {
    const char *full_url;
    json_t *resource;              /* stolen */
    const char *search_mode;       /* searchset: "match", "include" or "outcome" */
    const char *request_method;    /* history: "POST", "PUT", "DELETE" */
    const char *request_url;       /* history: "Patient/1" */
    const char *response_status;   /* history, *-response: "201 Created" */
    const char *response_location; /* "Patient/1/_history/1" */
    const char *response_etag;     /* "W/\"1\"" */
    int64_t response_last_modified_ms;
    json_t *response_outcome;      /* stolen: an OperationOutcome */
} ct_fhir_entry_in;

/* Appends an entry; steals in->resource and in->response_outcome. */
int ct_fhir_bundle_add_entry(json_t *bundle, ct_fhir_entry_in *in, ct_error *err);

/* ------------------------------------------------------------------------ */
/* Search parameters                                                        */
/* ------------------------------------------------------------------------ */

#define CT_FHIR_SEARCH_MAX_QUERY 8192   /* bytes of query string */
#define CT_FHIR_SEARCH_MAX_CLAUSES 32   /* parameters ANDed */
#define CT_FHIR_SEARCH_MAX_VALUES 128   /* values in all, ORed within a clause */
#define CT_FHIR_SEARCH_MAX_SORT 4
#define CT_FHIR_SEARCH_MAX_ISSUES 8
#define CT_FHIR_SEARCH_DEFAULT_COUNT 50
#define CT_FHIR_SEARCH_MAX_COUNT 1000
#define CT_FHIR_SEARCH_MAX_OFFSET 1000000

typedef enum ct_fhir_param_type {
    CT_FHIR_PARAM_DATE = 0,
    CT_FHIR_PARAM_TOKEN,
    CT_FHIR_PARAM_REFERENCE,
    CT_FHIR_PARAM_STRING
} ct_fhir_param_type;

/* A search parameter this server implements (the CapabilityStatement lists
 * exactly these). */
typedef struct ct_fhir_search_param {
    const char *name;            /* "date" */
    ct_fhir_param_type type;
    const char *expression;      /* FHIRPath of what it searches */
    const char *target;          /* reference: the type a bare id means ("Patient"), else NULL */
    int sortable;
} ct_fhir_search_param;

/* The parameters of a resource type (NULL, *n = 0 for unsupported types). */
const ct_fhir_search_param *ct_fhir_search_params(const char *resource_type, size_t *n);
const char *ct_fhir_param_type_name(ct_fhir_param_type t);  /* "date", "token" ... */

typedef enum ct_fhir_prefix {
    CT_FHIR_PFX_EQ = 0, CT_FHIR_PFX_NE, CT_FHIR_PFX_GT, CT_FHIR_PFX_LT, CT_FHIR_PFX_GE,
    CT_FHIR_PFX_LE, CT_FHIR_PFX_SA, CT_FHIR_PFX_EB, CT_FHIR_PFX_AP
} ct_fhir_prefix;
const char *ct_fhir_prefix_name(ct_fhir_prefix p);   /* "eq" ... */

typedef enum ct_fhir_modifier {
    CT_FHIR_MOD_NONE = 0,
    CT_FHIR_MOD_MISSING,   /* any type: value "true" or "false" */
    CT_FHIR_MOD_EXACT,     /* string */
    CT_FHIR_MOD_CONTAINS,  /* string */
    CT_FHIR_MOD_TYPE       /* reference: "subject:Patient=123" */
} ct_fhir_modifier;

/* One value of a clause. Strings point into the ct_fhir_search. */
typedef struct ct_fhir_search_value {
    ct_fhir_prefix prefix;       /* date */
    ct_fhir_datetime date;       /* date */
    const char *system;          /* token: NULL any system; "" no system ("|code") */
    const char *code;            /* token: NULL any code ("system|"); _id: the id */
    const char *ref_type;        /* reference: NULL when only an id was given and no target */
    const char *ref_id;          /* reference */
    const char *ref_version;     /* reference: NULL unless "Type/id/_history/v" */
    const char *text;            /* string: the value, unescaped */
    int missing;                 /* :missing: 1 true, 0 false */
} ct_fhir_search_value;

typedef struct ct_fhir_search_clause {
    const ct_fhir_search_param *param;
    ct_fhir_modifier modifier;
    const char *raw;             /* the value as received (decoded, escapes kept) */
    size_t n_values;             /* >= 1, ORed */
    const ct_fhir_search_value *values;
} ct_fhir_search_clause;

typedef struct ct_fhir_sort_key {
    const ct_fhir_search_param *param;
    int descending;
} ct_fhir_sort_key;

typedef enum ct_fhir_handling {
    CT_FHIR_HANDLING_LENIENT = 0, /* unknown parameters ignored, with a warning */
    CT_FHIR_HANDLING_STRICT       /* Prefer: handling=strict: unknown parameters are a 400 */
} ct_fhir_handling;

typedef struct ct_fhir_search {
    char resource_type[CT_FHIR_TYPE_MAX + 1];
    size_t n_clauses;                      /* ANDed */
    ct_fhir_search_clause clauses[CT_FHIR_SEARCH_MAX_CLAUSES];
    int count;                             /* _count, default 50, clamped to 1000; 0: total only */
    int count_given;
    int64_t offset;                        /* _offset (our paging), default 0 */
    size_t n_sort;
    ct_fhir_sort_key sort[CT_FHIR_SEARCH_MAX_SORT];
    int include_result;                    /* _include=DiagnosticReport:result */
    char format[64];                       /* _format as given, "" if none (http decides) */
    size_t n_issues;                       /* warnings: ignored parameters, clamped _count */
    ct_fhir_issue issues[CT_FHIR_SEARCH_MAX_ISSUES];
    /* private: storage for values and strings */
    size_t n_values_used_;
    ct_fhir_search_value values_[CT_FHIR_SEARCH_MAX_VALUES];
    char *arena_;
    size_t arena_cap_, arena_used_;
} ct_fhir_search;

/* Parses a query string (without '?', as in a URL or a POST _search form
 * body) for resource_type. '&' separates parameters (ANDed; a repeated name
 * is one more clause), ',' separates values (ORed); '\' escapes ',', '|',
 * '$' and '\'; %XX and '+' are decoded. 400 (CT_EFORMAT) for malformed
 * values and unsupported modifiers; 413 (CT_ELIMIT) over the bounds above;
 * unknown parameters: a warning in s->issues (lenient) or a 400 (strict).
 * *out is malloc'd; free with ct_fhir_search_free. */
int ct_fhir_search_parse(const char *resource_type, const char *query, size_t len,
                         ct_fhir_handling handling, ct_fhir_search **out, ct_fhir_issue *issue);
void ct_fhir_search_free(ct_fhir_search *s);

/* Writes the query of the parameters actually applied, in a canonical form
 * (percent-encoded, one clause per parameter, then _sort, _include, _count
 * and _offset = offset). For Bundle.link self (offset = s->offset) and next
 * (offset = s->offset + s->count). CT_ELIMIT when cap is too small. */
int ct_fhir_search_format(const ct_fhir_search *s, int64_t offset, char *buf, size_t cap);

/* The FHIR R4 date comparison: does a target whose value spans
 * [target_start_ms, target_end_ms) match `prefix search`? target_end_ms may
 * be INT64_MAX for an open Period. `ap` matches when the ranges overlap
 * once the search range is widened on both sides by 10% of the distance
 * from now_ms to its start (R4's recommendation); with now inside the
 * search range, ap is plain overlap. */
int ct_fhir_date_matches(ct_fhir_prefix prefix, const ct_fhir_datetime *search,
                         int64_t target_start_ms, int64_t target_end_ms, int64_t now_ms);

/* ------------------------------------------------------------------------ */
/* Search index (src/fhir/index.c)                                          */
/* ------------------------------------------------------------------------ */
/* The values a resource's search parameters see, extracted once when it is
 * written; the store keeps them and searches run over them (the store
 * room's ct_store_index_entry has the same fields: its callers copy these
 * across). The one extractor for every writer: the API and the twin. */

typedef enum ct_fhir_index_kind {
    CT_FHIR_INDEX_TOKEN = 0,      /* system (NULL when none) and code */
    CT_FHIR_INDEX_DATE = 1,       /* [start_ms, end_ms) */
    CT_FHIR_INDEX_REFERENCE = 2   /* ref_type and ref_id */
} ct_fhir_index_kind;

/* Open ends of a date range (an effectivePeriod without start or end). */
#define CT_FHIR_INDEX_TIME_MIN INT64_MIN
#define CT_FHIR_INDEX_TIME_MAX INT64_MAX
/* Most entries one resource may have (CT_ELIMIT beyond), and the longest
 * text indexed: a longer code, system or value is left out. */
#define CT_FHIR_INDEX_MAX_ENTRIES 4096
#define CT_FHIR_INDEX_MAX_TEXT 1024

typedef struct ct_fhir_index_entry {
    const char *param;            /* "code", "identifier", "patient" ... */
    ct_fhir_index_kind kind;
    const char *system, *code;    /* token */
    int64_t start_ms, end_ms;     /* date */
    const char *ref_type, *ref_id;/* reference */
} ct_fhir_index_entry;

typedef struct ct_fhir_index {
    ct_fhir_index_entry *e;
    size_t n, cap;
    char **owned;                 /* copies the entries point into (reference parts) */
    size_t n_owned, cap_owned;
    char patient[CT_FHIR_ID_MAX + 1]; /* the first Patient referenced (subject ...), "" if none */
} ct_fhir_index;

/* Every value indexed for a resource of `type` (docs/api.md, "Search"):
 * identifier (Patient, Observation, DiagnosticReport, Device, Provenance);
 * Observation subject, patient, code, category, status, date;
 * DiagnosticReport the same plus conclusion and result (for _include);
 * Device patient; Provenance target. Codings in either MDC system are
 * indexed under both; status under its value set's system; dates as the
 * range their precision spans. What does not parse is left out. Strings
 * point into res (which must outlive the index) or into owned copies.
 * CT_EINVAL (res not an object), CT_ENOMEM, CT_ELIMIT; on failure *out
 * holds nothing. Free with ct_fhir_index_free. */
int ct_fhir_index_extract(const json_t *res, const char *type, ct_fhir_index *out);
void ct_fhir_index_free(ct_fhir_index *x);

#endif
