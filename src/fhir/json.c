/* fhir room, JSON from outside: issues, OperationOutcome, bounded parsing and
 * the minimal shape of a resource.
 *
 * The one idea: a body is judged on its raw bytes before jansson builds a
 * single node. One pass checks the size, the nesting depth, the number of
 * tokens, NUL bytes and UTF-8, so that a hostile body costs us at most its
 * own length in time and nothing in memory; only then does jansson parse it,
 * with duplicate keys refused. Every refusal is a ct_fhir_issue that already
 * knows its HTTP status (400 malformed, 413 too big, 422 not a resource we
 * can use) and the FHIRPath of the element at fault. */
#include "cardiotwin/fhir.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* --- small shared helpers ------------------------------------------------ */

void ct_path_init(ct_path *p, const char *root)
{
    p->n = 0;
    p->s[0] = '\0';
    ct_path_push(p, "%s", root);
}

size_t ct_path_push(ct_path *p, const char *fmt, ...)
{
    size_t old = p->n;
    if (p->n + 1 >= sizeof p->s)
        return old;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(p->s + p->n, sizeof p->s - p->n, fmt, ap);
    va_end(ap);
    if (w > 0) {
        size_t add = (size_t)w;
        p->n = p->n + add < sizeof p->s ? p->n + add : sizeof p->s - 1;
    }
    return old;
}

void ct_path_pop(ct_path *p, size_t len)
{
    if (len < sizeof p->s) {
        p->n = len;
        p->s[len] = '\0';
    }
}

void ct_fhir_shown(const char *s, size_t len, size_t max, char *out, size_t cap)
{
    size_t n = len > max ? max : len, o = 0;
    /* Never cut inside a UTF-8 character. */
    while (n < len && n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    if (cap == 0)
        return;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (len > max && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

int ct_fhir_utf8_valid(const unsigned char *s, size_t len, size_t *bad)
{
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            goto invalid;
        }
        if (len - i <= need)
            goto invalid;
        for (size_t k = 1; k <= need; k++) {
            unsigned char cc = s[i + k];
            if ((cc & 0xc0) != 0x80)
                goto invalid;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto invalid;
        i += need + 1;
    }
    return 1;
invalid:
    if (bad)
        *bad = i;
    return 0;
}

const char *ct_fhir_get_string(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int ct_fhir_get_number(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_number(v))
        return -1;
    *out = json_number_value(v);
    return 1;
}

int ct_fhir_decimal_parse(const char *s, size_t len, double *out, int64_t *ival, int *is_int)
{
    size_t i = 0;
    int neg = 0;
    if (i < len && s[i] == '-') {
        neg = 1;
        i++;
    }
    if (i >= len || s[i] < '0' || s[i] > '9')
        return -1;
    if (s[i] == '0' && i + 1 < len && s[i + 1] >= '0' && s[i + 1] <= '9')
        return -1; /* leading zeros are not FHIR decimals */
    /* Mantissa digits are accumulated exactly up to 19 digits; beyond that
     * they only shift the exponent (a decimal has no more meaning there). */
    uint64_t mant = 0;
    int digits = 0, exp10 = 0, fraction = 0;
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        if (digits < 19) {
            mant = mant * 10 + (uint64_t)(s[i] - '0');
            if (mant)
                digits++;
        } else {
            exp10++;
        }
    }
    if (i < len && s[i] == '.') {
        i++;
        if (i >= len || s[i] < '0' || s[i] > '9')
            return -1;
        fraction = 1;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t)(s[i] - '0');
                if (mant)
                    digits++;
                exp10--;
            }
        }
    }
    int has_exp = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        int eneg = 0, e = 0;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i >= len || s[i] < '0' || s[i] > '9')
            return -1;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 100000)
                e = e * 10 + (s[i] - '0');
        exp10 += eneg ? -e : e;
        has_exp = 1;
    }
    if (i != len)
        return -1;
    double v = (double)mant;
    if (exp10 > 0)
        v *= pow(10.0, exp10);
    else if (exp10 < 0)
        v /= pow(10.0, -exp10);
    if (!isfinite(v))
        return -1;
    *out = neg ? -v : v;
    *is_int = 0;
    if (!fraction && !has_exp && exp10 == 0 && mant <= (uint64_t)INT64_MAX) {
        *is_int = 1;
        if (ival)
            *ival = neg ? -(int64_t)mant : (int64_t)mant;
    }
    return 0;
}

/* --- issues -------------------------------------------------------------- */

static const char *const issue_type_names[] = {
    "invalid", "structure", "required", "value", "invariant", "security", "login",
    "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported",
    "duplicate", "multiple-matches", "not-found", "deleted", "too-long", "code-invalid",
    "extension", "too-costly", "business-rule", "conflict", "transient", "lock-error",
    "no-store", "exception", "timeout", "incomplete", "throttled", "informational"};

const char *ct_fhir_issue_type_name(ct_fhir_issue_type code)
{
    size_t i = (size_t)code;
    return i < sizeof issue_type_names / sizeof issue_type_names[0] ? issue_type_names[i]
                                                                    : "exception";
}

const char *ct_fhir_severity_name(ct_fhir_severity severity)
{
    switch (severity) {
    case CT_FHIR_SEV_FATAL: return "fatal";
    case CT_FHIR_SEV_ERROR: return "error";
    case CT_FHIR_SEV_WARNING: return "warning";
    case CT_FHIR_SEV_INFORMATION: return "information";
    }
    return "error";
}

void ct_fhir_issue_clear(ct_fhir_issue *issue)
{
    if (issue)
        memset(issue, 0, sizeof *issue);
}

/* Makes s one line of valid UTF-8 in place: control bytes and every byte of
 * a broken sequence (a message cut in the middle of a character, a name
 * quoted from bad input) become '?', so that an OperationOutcome can always
 * be built from an issue. */
static void sanitize(char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                s[i] = '?';
            i++;
            continue;
        }
        size_t bad;
        size_t len = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 1;
        if (len > n - i || !ct_fhir_utf8_valid((const unsigned char *)s + i, len, &bad)) {
            s[i++] = '?';
            continue;
        }
        i += len;
    }
}

static int issue_vset(ct_fhir_issue *issue, int ret, int http_status, ct_fhir_severity severity,
                      ct_fhir_issue_type code, const char *expression, const char *fmt,
                      va_list ap) CT_PRINTF(7, 0);
static int issue_vset(ct_fhir_issue *issue, int ret, int http_status, ct_fhir_severity severity,
                      ct_fhir_issue_type code, const char *expression, const char *fmt,
                      va_list ap)
{
    if (!issue)
        return ret;
    issue->http_status = http_status;
    issue->severity = severity;
    issue->code = code;
    vsnprintf(issue->diagnostics, sizeof issue->diagnostics, fmt, ap);
    sanitize(issue->diagnostics);
    snprintf(issue->expression, sizeof issue->expression, "%s", expression ? expression : "");
    sanitize(issue->expression);
    return ret;
}

int ct_fhir_issue_set(ct_fhir_issue *issue, int ret, int http_status, ct_fhir_severity severity,
                      ct_fhir_issue_type code, const char *expression, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    issue_vset(issue, ret, http_status, severity, code, expression, fmt, ap);
    va_end(ap);
    return ret;
}

int ct_fhir_fail(ct_fhir_issue *issue, int ret, int http_status, ct_fhir_issue_type code,
                 const char *expression, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    issue_vset(issue, ret, http_status, CT_FHIR_SEV_ERROR, code, expression, fmt, ap);
    va_end(ap);
    return ret;
}

/* --- OperationOutcome ---------------------------------------------------- */

json_t *ct_fhir_operation_outcome(const ct_fhir_issue *issues, size_t n)
{
    if (!issues || n == 0)
        return NULL;
    json_t *oo = json_object();
    json_t *arr = json_array();
    if (!oo || !arr || json_object_set_new(oo, "resourceType", json_string("OperationOutcome")) ||
        json_object_set(oo, "issue", arr))
        goto fail;
    for (size_t i = 0; i < n; i++) {
        const ct_fhir_issue *is = &issues[i];
        json_t *e = json_object();
        if (!e || json_array_append_new(arr, e))
            goto fail;
        if (json_object_set_new(e, "severity", json_string(ct_fhir_severity_name(is->severity))) ||
            json_object_set_new(e, "code", json_string(ct_fhir_issue_type_name(is->code))))
            goto fail;
        /* Empty strings are not allowed in FHIR JSON: omit, never write "". */
        if (is->diagnostics[0] &&
            json_object_set_new(e, "diagnostics", json_string(is->diagnostics)))
            goto fail;
        if (is->expression[0]) {
            json_t *ex = json_array();
            if (!ex || json_object_set_new(e, "expression", ex) ||
                json_array_append_new(ex, json_string(is->expression)))
                goto fail;
        }
    }
    json_decref(arr);
    return oo;
fail:
    json_decref(arr);
    json_decref(oo);
    return NULL;
}

char *ct_fhir_operation_outcome_dump(const ct_fhir_issue *issues, size_t n)
{
    json_t *oo = ct_fhir_operation_outcome(issues, n);
    if (!oo)
        return NULL;
    char *s = json_dumps(oo, JSON_COMPACT);
    json_decref(oo);
    return s;
}

/* --- parsing ------------------------------------------------------------- */

ct_fhir_limits ct_fhir_limits_default(void)
{
    ct_fhir_limits l = {CT_FHIR_DEFAULT_MAX_BYTES, CT_FHIR_DEFAULT_MAX_DEPTH,
                        CT_FHIR_DEFAULT_MAX_TOKENS};
    return l;
}

/* The pre-scan: a tokenizer that only counts. It does not judge the JSON
 * grammar (jansson does, next); it only guarantees that what jansson will
 * build is bounded. */
static int prescan(const unsigned char *p, size_t n, const ct_fhir_limits *lim,
                   ct_fhir_issue *issue)
{
    if (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
        return ct_fhir_fail(issue, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL,
                            "body starts with a UTF-8 byte-order mark; send JSON without it");
    const unsigned char *nul = memchr(p, 0, n);
    if (nul)
        return ct_fhir_fail(issue, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL,
                            "body has a NUL byte at offset %zu; JSON text cannot contain one",
                            (size_t)(nul - p));
    size_t bad;
    if (!ct_fhir_utf8_valid(p, n, &bad))
        return ct_fhir_fail(issue, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL,
                            "body is not valid UTF-8 (byte offset %zu); send UTF-8 JSON", bad);
    int in_string = 0, escape = 0, in_scalar = 0, depth = 0;
    size_t tokens = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        if (in_string) {
            if (escape)
                escape = 0;
            else if (c == '\\')
                escape = 1;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            in_scalar = 0;
            tokens++;
            break;
        case '{':
        case '[':
            in_scalar = 0;
            tokens++;
            if (++depth > lim->max_depth)
                return ct_fhir_fail(issue, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, NULL,
                                    "JSON nests deeper than %d levels (byte offset %zu)",
                                    lim->max_depth, i);
            break;
        case '}':
        case ']':
            in_scalar = 0;
            if (depth > 0)
                depth--;
            break;
        case ' ':
        case '\t':
        case '\r':
        case '\n':
        case ',':
        case ':':
            in_scalar = 0;
            break;
        default:
            if (!in_scalar) {
                in_scalar = 1;
                tokens++;
            }
            break;
        }
        if (tokens > lim->max_tokens)
            return ct_fhir_fail(issue, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, NULL,
                                "JSON has more than %zu values; split the request",
                                lim->max_tokens);
    }
    return 0;
}

int ct_fhir_parse(const char *body, size_t len, const ct_fhir_limits *lim, json_t **out,
                  ct_fhir_issue *issue)
{
    ct_fhir_limits dl = ct_fhir_limits_default();
    if (!lim)
        lim = &dl;
    if (out)
        *out = NULL;
    if (!out || (!body && len))
        return ct_fhir_fail(issue, CT_EINVAL, 500, CT_FHIR_IT_EXCEPTION, NULL,
                            "ct_fhir_parse called without a body or a result");
    if (len > lim->max_bytes)
        return ct_fhir_fail(issue, CT_ELIMIT, 413, CT_FHIR_IT_TOO_LONG, NULL,
                            "body is %zu bytes, over the limit of %zu bytes", len,
                            lim->max_bytes);
    if (len == 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL,
                            "body is empty; send a JSON resource");
    int rc = prescan((const unsigned char *)body, len, lim, issue);
    if (rc)
        return rc;
    json_error_t e;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        char text[JSON_ERROR_TEXT_LENGTH + 8];
        ct_fhir_shown(e.text, strlen(e.text), 120, text, sizeof text);
        if (json_error_code(&e) == json_error_duplicate_key)
            return ct_fhir_fail(issue, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL,
                                "JSON object has a duplicate key at line %d, column %d (%s); "
                                "each key may appear once",
                                e.line, e.column, text);
        return ct_fhir_fail(issue, CT_EFORMAT, 400, CT_FHIR_IT_STRUCTURE, NULL,
                            "malformed JSON at line %d, column %d: %s", e.line, e.column, text);
    }
    *out = j;
    return 0;
}

/* --- resource shape ------------------------------------------------------ */

static const char *const supported_types[] = {"Patient", "Observation", "DiagnosticReport",
                                              "Device", "Provenance"};

int ct_fhir_supported_type(const char *type)
{
    if (!type)
        return 0;
    for (size_t i = 0; i < sizeof supported_types / sizeof supported_types[0]; i++)
        if (strcmp(type, supported_types[i]) == 0)
            return 1;
    return 0;
}

const char *ct_fhir_resource_type(const json_t *res)
{
    return json_is_object(res) ? ct_fhir_get_string(res, "resourceType") : NULL;
}

/* FHIR's JSON representation rules, checked everywhere in the resource: no
 * null member values (null is only for aligning primitive arrays with their
 * extensions), no empty strings, objects or arrays. Recursion is bounded by
 * the depth the parser accepted; a guard keeps foreign trees safe too. */
static int check_json_rules(const json_t *v, ct_path *path, int depth, int in_array,
                            ct_fhir_issue *issue)
{
    if (depth > 64)
        return ct_fhir_fail(issue, CT_ELIMIT, 422, CT_FHIR_IT_TOO_COSTLY, path->s,
                            "resource nests deeper than 64 levels");
    switch (json_typeof(v)) {
    case JSON_NULL:
        if (!in_array)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path->s,
                                "null is not allowed here; omit the element instead");
        return 0;
    case JSON_STRING:
        if (json_string_length(v) == 0)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path->s,
                                "empty strings are not allowed; omit the element instead");
        return 0;
    case JSON_OBJECT: {
        if (json_object_size(v) == 0)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path->s,
                                "empty objects are not allowed; omit the element instead");
        const char *key;
        const json_t *child;
        json_object_foreach((json_t *)v, key, child) {
            size_t mark = ct_path_push(path, ".%s", key);
            int rc = check_json_rules(child, path, depth + 1, 0, issue);
            ct_path_pop(path, mark);
            if (rc)
                return rc;
        }
        return 0;
    }
    case JSON_ARRAY: {
        if (json_array_size(v) == 0)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path->s,
                                "empty arrays are not allowed; omit the element instead");
        for (size_t i = 0; i < json_array_size(v); i++) {
            size_t mark = ct_path_push(path, "[%zu]", i);
            int rc = check_json_rules(json_array_get(v, i), path, depth + 1, 1, issue);
            ct_path_pop(path, mark);
            if (rc)
                return rc;
        }
        return 0;
    }
    default:
        return 0;
    }
}

int ct_fhir_validate_resource(const json_t *res, const char *type, ct_fhir_issue *issue)
{
    if (!json_is_object(res))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, NULL,
                            "body is JSON but not an object; send one FHIR resource");
    const json_t *rt = json_object_get(res, "resourceType");
    if (!rt)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, "resourceType",
                            "resourceType is missing; a FHIR resource names its type");
    if (!json_is_string(rt))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, "resourceType",
                            "resourceType must be a string");
    const char *rts = json_string_value(rt);
    char shown[80];
    ct_fhir_shown(rts, strlen(rts), 40, shown, sizeof shown);
    if (type && strcmp(rts, type) != 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_INVALID, "resourceType",
                            "resourceType is \"%s\" where a %s is expected", shown, type);
    if (!type && !ct_fhir_supported_type(rts))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_NOT_SUPPORTED, "resourceType",
                            "resourceType \"%s\" is not one this server stores (Patient, "
                            "Observation, DiagnosticReport, Device, Provenance)",
                            shown);
    char root[CT_FHIR_TYPE_MAX + 1];
    snprintf(root, sizeof root, "%s", type ? type : rts);
    ct_path path;
    ct_path_init(&path, root);
    int rc = check_json_rules(res, &path, 0, 0, issue);
    if (rc)
        return rc;
    const json_t *id = json_object_get(res, "id");
    if (id) {
        snprintf(path.s, sizeof path.s, "%s.id", root);
        if (!json_is_string(id))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path.s,
                                "id must be a string");
        const char *ids = json_string_value(id);
        if (!ct_fhir_id_valid(ids, json_string_length(id))) {
            ct_fhir_shown(ids, json_string_length(id), 40, shown, sizeof shown);
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, path.s,
                                "id \"%s\" is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)",
                                shown);
        }
    }
    const json_t *meta = json_object_get(res, "meta");
    if (meta) {
        snprintf(path.s, sizeof path.s, "%s.meta", root);
        if (!json_is_object(meta))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path.s,
                                "meta must be an object");
        const json_t *vid = json_object_get(meta, "versionId");
        if (vid) {
            snprintf(path.s, sizeof path.s, "%s.meta.versionId", root);
            if (!json_is_string(vid) ||
                !ct_fhir_id_valid(json_string_value(vid), json_string_length(vid)))
                return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, path.s,
                                    "meta.versionId must be a FHIR id string");
        }
        const json_t *lu = json_object_get(meta, "lastUpdated");
        if (lu) {
            snprintf(path.s, sizeof path.s, "%s.meta.lastUpdated", root);
            if (!json_is_string(lu))
                return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path.s,
                                    "meta.lastUpdated must be a string (an instant)");
            ct_fhir_datetime dt;
            rc = ct_fhir_datetime_parse(json_string_value(lu), json_string_length(lu),
                                        CT_FHIR_DT_INSTANT, path.s, &dt, issue);
            if (rc)
                return rc;
        }
    }
    return 0;
}
