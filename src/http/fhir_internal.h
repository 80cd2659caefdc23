/* Inside the http room: the FHIR API's pieces. fhir_text.c (buffers and
 * JSON text that keeps every number exactly as the client wrote it),
 * fhir_negotiate.c (Accept, Content-Type, _format, Prefer, If-Match, dates,
 * the query), fhir_index.c (search parameter values of a resource),
 * fhir_validate.c (what we accept), fhir_ops.c (the interactions, shared
 * by the REST handlers and the Bundle processor), fhir_handlers.c,
 * fhir_search.c, fhir_bundle.c, fhir_audit.c, store_pool.c. The pure
 * functions are declared here for tests/http/test_fhir_*.c. */
#ifndef CT_HTTP_FHIR_INTERNAL_H
#define CT_HTTP_FHIR_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "cardiotwin/fhir.h"
#include "cardiotwin/store.h"
#include "http_internal.h"

/* ---- a growable byte buffer with a ceiling (fhir_text.c) ------------------- */
typedef struct ct_http_buf {
    char *p;        /* NUL-terminated once anything was put */
    size_t n, cap;
    size_t max;     /* most bytes it may hold; past it, failed = CT_ELIMIT */
    int failed;     /* 0, CT_ENOMEM or CT_ELIMIT: later puts do nothing */
} ct_http_buf;

void ct_http_buf_init(ct_http_buf *b, size_t max);
void ct_http_buf_put(ct_http_buf *b, const void *s, size_t n);
void ct_http_buf_puts(ct_http_buf *b, const char *s);
void ct_http_buf_printf(ct_http_buf *b, const char *fmt, ...) CT_PRINTF(2, 3);
/* s as a JSON string literal, quotes included. */
void ct_http_buf_put_json_string(ct_http_buf *b, const char *s);
/* A jansson value, compact. */
void ct_http_buf_put_json(ct_http_buf *b, const json_t *v);
/* The bytes (malloc'd, NUL-terminated; "" when empty); the buffer is empty afterwards. */
char *ct_http_buf_take(ct_http_buf *b, size_t *len);
void ct_http_buf_free(ct_http_buf *b);

/* ---- JSON text (fhir_text.c) ---------------------------------------------------
 * jansson reads numbers into doubles and writes them back with 17 digits:
 * "1.612" would be stored as 1.6120000000000001 and "0.010" as 0.01, and
 * FHIR says a decimal's precision is significant. So a resource is stored
 * as the client's own text, minified, with only what the server owns
 * rewritten (id, meta.versionId, meta.lastUpdated and, in a transaction,
 * urn:uuid references). These functions work on text that ct_fhir_parse
 * has accepted. */

/* urn:uuid:... -> Type/id, for a transaction. */
typedef struct ct_http_ref_map {
    size_t n;
    const char *const *from;
    const char *const *to;
} ct_http_ref_map;

/* p points at a value (after optional whitespace); returns the first byte
 * after it, or NULL when the text is not JSON. */
const char *ct_http_json_skip(const char *p, const char *end);
/* The value of member `key` of the object at [p, end): [*vs, *ve). 0 found,
 * CT_ENOTFOUND, or CT_EFORMAT when [p, end) is not an object. */
int ct_http_json_member(const char *p, const char *end, const char *key, const char **vs,
                        const char **ve);
/* The i-th element of the array at [p, end). */
int ct_http_json_element(const char *p, const char *end, size_t i, const char **vs, const char **ve);
/* Copies the value at [p, end) without insignificant whitespace, replacing
 * every "reference" string found in map (map may be NULL). */
int ct_http_json_copy(ct_http_buf *out, const char *p, const char *end, const ct_http_ref_map *map);

/* The stored form of a resource: {"resourceType":T,"id":ID,"meta":{...},
 * ...the rest in the client's order}, with meta.versionId and
 * meta.lastUpdated dropped (the store's row is their truth) and the client's
 * id replaced. CT_EFORMAT when the text is not an object or meta is not an
 * object. */
int ct_http_resource_canonical(const char *text, size_t len, const char *type, const char *id,
                               const ct_http_ref_map *map, ct_http_buf *out);
/* A stored resource as served: meta.versionId and meta.lastUpdated put
 * back. Bodies not in the stored form (written by other means) are parsed
 * and rebuilt. NULL when out of memory or the body is not JSON. */
char *ct_http_resource_serve(const char *stored, size_t len, const char *type, const char *id,
                             int64_t version, int64_t last_updated_ms, size_t *out_len);

/* ---- negotiation and headers (fhir_negotiate.c) -------------------------------- */
typedef enum ct_http_media {
    CT_HTTP_MEDIA_NONE = 0,   /* no Content-Type */
    CT_HTTP_MEDIA_FHIR_JSON,  /* application/fhir+json, application/json(+fhir) */
    CT_HTTP_MEDIA_FORM,       /* application/x-www-form-urlencoded */
    CT_HTTP_MEDIA_XML,        /* application/fhir+xml, application/xml, text/xml */
    CT_HTTP_MEDIA_OTHER
} ct_http_media;

/* Content-Type: the media type, with a charset other than UTF-8 counted as
 * OTHER (we read UTF-8 only). */
ct_http_media ct_http_content_type(const char *value);
/* Accept: 1 when it admits JSON (no header, *\/\*, application/\*,
 * application/fhir+json, application/json, with q > 0); *plain = 1 when it
 * asks for application/json rather than application/fhir+json. */
int ct_http_accept_json(const char *value, int *plain);
/* _format: 1 for json, application/json, application/fhir+json; 0 otherwise. */
int ct_http_format_json(const char *value);

typedef enum ct_http_return {
    CT_HTTP_RETURN_DEFAULT = 0,     /* representation */
    CT_HTTP_RETURN_MINIMAL,
    CT_HTTP_RETURN_REPRESENTATION,
    CT_HTTP_RETURN_OUTCOME
} ct_http_return;

typedef struct ct_http_prefer {
    ct_http_return ret;
    int strict;                     /* handling=strict */
} ct_http_prefer;
/* Prefer: return=minimal|representation|OperationOutcome, handling=strict|lenient
 * (comma-separated, repeated headers joined); unknown preferences are ignored
 * as RFC 7240 says. */
void ct_http_prefer_parse(const char *value, ct_http_prefer *out);

/* If-Match / ETag: W/"3" or "3" -> 3. CT_EFORMAT otherwise. */
int ct_http_etag_parse(const char *value, int64_t *version);
/* RFC 7231 IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT" (30 bytes + NUL). */
#define CT_HTTP_DATE_CAP 32
void ct_http_date_format(int64_t t_ms, char *buf, size_t cap);
/* The first value of `name` in a query string, percent-decoded ('+' is a
 * space). 1 found, 0 absent, -1 malformed or longer than cap - 1. */
int ct_http_query_get(const char *query, const char *name, char *out, size_t cap);
/* A FHIR id made of 128 random bits, as a UUID (36 characters + NUL). */
int ct_http_new_id(char out[37]);

/* ---- search parameter values of a resource (fhir_index.c) --------------------------- */
typedef struct ct_http_index {
    ct_store_index_entry *e;   /* the fhir room's entries, as the store takes them */
    size_t n;
    ct_fhir_index src;         /* what their strings point into (with the resource's json_t) */
    char patient[CT_FHIR_ID_MAX + 1]; /* the patient the resource is about, "" if none */
} ct_http_index;

/* Every value we index for `type`: ct_fhir_index_extract's entries (the
 * one extractor, shared with the twin), copied into the store's type.
 * CT_ENOMEM / CT_ELIMIT. */
int ct_http_index_extract(const json_t *res, const char *type, ct_http_index *out);
void ct_http_index_free(ct_http_index *x);

/* ---- validation (fhir_validate.c) --------------------------------------------------- */
/* What a resource of `type` must be before it is stored: the fhir room's
 * generic shape, the elements R4 requires that we rely on (Observation and
 * DiagnosticReport status and code, Provenance target, recorded and agent),
 * the ECG profile for an Observation coded MDC 131328, and the elements R4
 * requires of any other SampledData. 422 issues naming the element. */
int ct_http_fhir_validate(const json_t *res, const char *type, ct_fhir_issue *issue);
/* The same, and when res is an ECG Observation, its samples as the profile
 * check read them: *ecg (malloc'd, ct_fhir_ecg_free then free; NULL for any
 * other resource), so that the twin does not parse the 7200 values again. */
int ct_http_fhir_validate_keep(const json_t *res, const char *type, struct ct_fhir_ecg **ecg,
                               ct_fhir_issue *issue);

/* ---- the interactions (fhir_ops.c) ------------------------------------------------------ */
typedef struct ct_http_fhir {
    ct_http_req *req;
    ct_store *st;
    char base[400];            /* "https://host:port/fhir", no trailing slash */
    ct_http_prefer prefer;
    int plain_json;            /* answer application/json */
    int in_txn;                /* a Bundle transaction is open: ops neither begin nor commit */
} ct_http_fhir;

/* What one interaction produced, for a response or a Bundle entry. */
typedef struct ct_http_result {
    int status;                /* 200, 201, 4xx, 5xx */
    ct_fhir_issue issue;       /* status >= 400, or an informational one */
    char type[CT_FHIR_TYPE_MAX + 1];
    char id[CT_FHIR_ID_MAX + 1];
    int64_t version;           /* 0 when none */
    int64_t last_updated_ms;
    char *body;                /* malloc'd: the resource (with meta) or a Bundle; NULL if none */
    size_t body_len;
} ct_http_result;

void ct_http_result_clear(ct_http_result *r);
/* Fills r as an error (status from issue->http_status) and returns -1. */
int ct_http_result_fail(ct_http_result *r, int status, ct_fhir_issue_type code, const char *expression,
                        const char *fmt, ...) CT_PRINTF(5, 6);

/* A resource ready to be written: parsed, validated, in stored form, with
 * its index. */
typedef struct ct_http_prepared {
    json_t *json;
    char *stored;
    size_t stored_len;
    ct_http_index index;
    char type[CT_FHIR_TYPE_MAX + 1];
    char id[CT_FHIR_ID_MAX + 1];
    struct ct_fhir_ecg *ecg;   /* an ECG Observation's samples, read by validation; else NULL */
} ct_http_prepared;

/* From a request body (REST): parsed with the server's limits, resourceType
 * checked against `type`, id checked against `id` for an update (NULL for a
 * create, whose id is `new_id`), validated. 0, or -1 with r filled. */
int ct_http_prepare_body(ct_http_fhir *f, const char *body, size_t len, const char *type, const char *id,
                         const char *new_id, ct_http_prepared *p, ct_http_result *r);
/* From a resource inside a Bundle (already parsed once), with urn:uuid
 * references mapped: the text is rewritten first, then parsed again and
 * validated, so that what is checked is what is stored. */
int ct_http_prepare_text(ct_http_fhir *f, const char *text, size_t len, const char *type, const char *id,
                         const ct_http_ref_map *map, ct_http_prepared *p, ct_http_result *r);
void ct_http_prepared_free(ct_http_prepared *p);

/* Each runs inside the caller's transaction when there is one (a Bundle),
 * else in its own, and appends its audit entry in the same one. */
int ct_http_op_create(ct_http_fhir *f, ct_http_prepared *p, const char *if_none_exist, ct_http_result *r);
int ct_http_op_update(ct_http_fhir *f, ct_http_prepared *p, int64_t if_match, ct_http_result *r);
int ct_http_op_delete(ct_http_fhir *f, const char *type, const char *id, int64_t if_match, ct_http_result *r);
/* version 0: read; > 0: vread. */
int ct_http_op_read(ct_http_fhir *f, const char *type, const char *id, int64_t version, ct_http_result *r);
/* query: the parameters ([p, p + len), as in a URL); r->body gets the
 * searchset Bundle. */
int ct_http_op_search(ct_http_fhir *f, const char *type, const char *query, size_t len, ct_http_result *r);
int ct_http_op_history(ct_http_fhir *f, const char *type, const char *id, const char *query, ct_http_result *r);

/* A parsed FHIR search as a store query (fhir_search.c): one store clause
 * per FHIR clause, dates compared as R4 says (ap widened by 10% of the
 * distance from now_ms), _include=DiagnosticReport:result as following the
 * indexed "result" references to Observations. Points into s. */
typedef struct ct_http_mapped_query {
    ct_store_search_query q;
    ct_store_search_clause clauses[CT_FHIR_SEARCH_MAX_CLAUSES];
    ct_store_search_value values[CT_FHIR_SEARCH_MAX_VALUES];
    ct_store_sort_key sort[CT_FHIR_SEARCH_MAX_SORT];
} ct_http_mapped_query;
void ct_http_search_map(const ct_fhir_search *s, int64_t now_ms, ct_http_mapped_query *m);

/* Conditional create's lookup: how many resources match (0, 1 or 2 for
 * "more"), and the id of the one. -1 with r filled on a bad query. */
int ct_http_search_count_matches(ct_http_fhir *f, const char *type, const char *query, char *id_out,
                                 ct_http_result *r);

/* ---- responses (fhir_handlers.c) ------------------------------------------------------------ */
/* Sends an interaction's result: the status, Location / ETag /
 * Last-Modified when it names a version, and per Prefer the resource, an
 * OperationOutcome or nothing. */
int ct_http_fhir_respond(ct_http_fhir *f, ct_http_result *r, int with_resource);
/* Sends an OperationOutcome for one issue with its status. */
int ct_http_fhir_send_issue(ct_http_req *req, const ct_fhir_issue *issue);
int ct_http_fhir_fail(ct_http_req *req, int status, ct_fhir_issue_type code, const char *fmt, ...)
    CT_PRINTF(4, 5);
/* The checks every FHIR request passes first: _format and Accept (406),
 * and for a body the Content-Type (415). Then a store. 0, or the status sent. */
int ct_http_fhir_begin(ct_http_req *req, ct_http_fhir *f, int has_body, ct_http_media want);
/* Reads the request body (ct_http_read_body) and answers 413 / 400 itself. */
int ct_http_fhir_body(ct_http_req *req, char **body, size_t *len);

/* ---- audit (fhir_audit.c) ------------------------------------------------------------------ */
/* The one place an API access to patient data is written to the audit log,
 * with the caller from the request context. Runs in the store's current
 * transaction (the change and its entry commit together). */
int ct_http_audit(ct_http_fhir *f, const char *action, const char *type, const char *id, int64_t version,
                  const char *patient, const char *detail, ct_error *err);

/* ---- the audit log over the API (fhir_auditevent.c) ------------------------------------------ */
/* Entries one page of GET /fhir/AuditEvent holds at most (each AuditEvent
 * carries its canonical bytes, up to 10 KiB with a full detail). */
#define CT_HTTP_AUDIT_PAGE_MAX 100
/* A parsed AuditEvent search as a store query, with the storage its
 * clauses point into (and into s, which must outlive it). */
typedef struct ct_http_audit_query {
    ct_store_audit_query q;
    ct_store_audit_term terms[CT_STORE_AUDIT_MAX_TERMS];
    size_t n_terms;
} ct_http_audit_query;
/* Maps each FHIR clause (date with every prefix on the recorded time,
 * patient, agent, action, subtype, entity-type, outcome, _id, :missing)
 * onto store terms, the sort (default newest first, _sort=date or -date)
 * and the page (_count lowered to CT_HTTP_AUDIT_PAGE_MAX, with an issue
 * added to s). Pure. 0, or -1 with issue (413 when the query needs more
 * clauses or terms than the store takes). */
int ct_http_audit_query_map(ct_fhir_search *s, int64_t now_ms, ct_http_audit_query *out, ct_fhir_issue *issue);
int ct_http_handle_audit_search(ct_http_req *req);
int ct_http_handle_audit_read(ct_http_req *req);

/* ---- patient compartments (compartment.c) -------------------------------------------------- */
/* Which patient bounds the caller's `perms` on `type`: NULL when its
 * scopes grant them on every resource of the type, else the id of the
 * patient its token is bound to ("" if it has none: nothing is inside). */
const char *ct_http_compartment(const ct_http_req *req, const char *type, unsigned perms);
/* 1 when bound is NULL (no restriction) or names the same, non-empty patient. */
int ct_http_in_compartment(const char *bound, const char *patient);
/* The patient a resource belongs to, "" for none: a Patient itself; the
 * indexed "patient" reference of an Observation, DiagnosticReport or
 * Device; nothing for other types. Of the current stored version (one
 * index probe), of a version's JSON body (parsed), of a prepared write. */
void ct_http_patient_of_current(ct_store *st, const char *type, const char *id, char *out, size_t cap);
void ct_http_patient_of_body(const char *type, const char *id, const char *json, size_t len, char *out, size_t cap);
const char *ct_http_patient_of_prepared(const ct_http_prepared *p);

/* ---- routes ------------------------------------------------------------------------------- */
int ct_http_handle_metadata(ct_http_req *req);
int ct_http_handle_fhir_create(ct_http_req *req);
int ct_http_handle_fhir_read(ct_http_req *req);
int ct_http_handle_fhir_vread(ct_http_req *req);
int ct_http_handle_fhir_update(ct_http_req *req);
int ct_http_handle_fhir_delete(ct_http_req *req);
int ct_http_handle_fhir_history(ct_http_req *req);
int ct_http_handle_fhir_search(ct_http_req *req);
int ct_http_handle_fhir_bundle(ct_http_req *req);

/* The type and the path segments after /fhir: "/fhir/Observation/1/_history/2"
 * -> type "Observation", seg = {"1", "_history", "2"}. */
#define CT_HTTP_FHIR_MAX_SEGS 4
typedef struct ct_http_fhir_path {
    char type[CT_FHIR_TYPE_MAX + 1];
    size_t n_seg;
    char seg[CT_HTTP_FHIR_MAX_SEGS][CT_FHIR_ID_MAX + 2];
} ct_http_fhir_path;
/* 0, or -1 when the path is not /fhir/Type[/...] with short segments. */
int ct_http_fhir_path_parse(const char *path, ct_http_fhir_path *out);

#endif
