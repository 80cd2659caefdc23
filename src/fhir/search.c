/* fhir room, search: a FHIR R4 query string turned into clauses the store
 * can run, and back into the canonical query of a Bundle's self/next link.
 *
 * The one idea: parsing is separate from searching. A query is decoded once
 * (%XX, '+'), split into parameters ('&', ANDed) and values (',', ORed,
 * with FHIR's '\' escapes), and every value is parsed by the type of its
 * parameter (date with prefix and implicit range, token system|code,
 * reference Type/id, string). The result is plain data with every count
 * bounded, so a hostile query costs at most its length. What we do not
 * understand is never silently dropped: it becomes a warning the server
 * returns in an OperationOutcome (lenient handling), or a 400 under
 * `Prefer: handling=strict`, as FHIR R4 search prescribes. Unsupported
 * modifiers are always a 400: ignoring one would widen a search. */
#include "cardiotwin/fhir.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define COMMON_PARAMS                                                                     \
    {"_id", CT_FHIR_PARAM_TOKEN, "Resource.id", NULL, 1},                                 \
    {"_lastUpdated", CT_FHIR_PARAM_DATE, "Resource.meta.lastUpdated", NULL, 1}

static const ct_fhir_search_param obs_params[] = {
    COMMON_PARAMS,
    {"identifier", CT_FHIR_PARAM_TOKEN, "Observation.identifier", NULL, 0},
    {"patient", CT_FHIR_PARAM_REFERENCE, "Observation.subject.where(resolve() is Patient)", "Patient", 0},
    {"subject", CT_FHIR_PARAM_REFERENCE, "Observation.subject", NULL, 0},
    {"code", CT_FHIR_PARAM_TOKEN, "Observation.code", NULL, 0},
    {"date", CT_FHIR_PARAM_DATE, "Observation.effective", NULL, 1},
    {"category", CT_FHIR_PARAM_TOKEN, "Observation.category", NULL, 0},
    {"status", CT_FHIR_PARAM_TOKEN, "Observation.status", NULL, 1},
};
static const ct_fhir_search_param report_params[] = {
    COMMON_PARAMS,
    {"identifier", CT_FHIR_PARAM_TOKEN, "DiagnosticReport.identifier", NULL, 0},
    {"patient", CT_FHIR_PARAM_REFERENCE, "DiagnosticReport.subject.where(resolve() is Patient)", "Patient", 0},
    {"code", CT_FHIR_PARAM_TOKEN, "DiagnosticReport.code", NULL, 0},
    {"date", CT_FHIR_PARAM_DATE, "DiagnosticReport.effective", NULL, 1},
    {"status", CT_FHIR_PARAM_TOKEN, "DiagnosticReport.status", NULL, 1},
    {"conclusion", CT_FHIR_PARAM_TOKEN, "DiagnosticReport.conclusionCode", NULL, 0},
};
static const ct_fhir_search_param common_params[] = {COMMON_PARAMS};
/* identifier: what conditional create finds a Patient by (its MRN), and
 * how an upstream server's resources are matched with ours. */
static const ct_fhir_search_param patient_params[] = {
    COMMON_PARAMS,
    {"identifier", CT_FHIR_PARAM_TOKEN, "Patient.identifier", NULL, 0},
};
static const ct_fhir_search_param device_params[] = {
    COMMON_PARAMS,
    {"identifier", CT_FHIR_PARAM_TOKEN, "Device.identifier", NULL, 0},
};
/* The audit log (GET /fhir/AuditEvent): not a stored type, but searched
 * with the same grammar. agent is a token here (R4 has a reference): an
 * entry names its actor by an identifier, the token or user name. */
static const ct_fhir_search_param audit_params[] = {
    {"_id", CT_FHIR_PARAM_TOKEN, "AuditEvent.id", NULL, 0},
    {"date", CT_FHIR_PARAM_DATE, "AuditEvent.recorded", NULL, 1},
    {"patient", CT_FHIR_PARAM_REFERENCE, "AuditEvent.entity.what.where(resolve() is Patient)", "Patient", 0},
    {"agent", CT_FHIR_PARAM_TOKEN, "AuditEvent.agent.who.identifier", NULL, 0},
    {"action", CT_FHIR_PARAM_TOKEN, "AuditEvent.action", NULL, 0},
    {"subtype", CT_FHIR_PARAM_TOKEN, "AuditEvent.subtype", NULL, 0},
    {"entity-type", CT_FHIR_PARAM_TOKEN, "AuditEvent.entity.type", NULL, 0},
    {"outcome", CT_FHIR_PARAM_TOKEN, "AuditEvent.outcome", NULL, 0},
};

const ct_fhir_search_param *ct_fhir_search_params(const char *resource_type, size_t *n)
{
    *n = 0;
    if (resource_type && strcmp(resource_type, "AuditEvent") == 0) {
        *n = sizeof audit_params / sizeof *audit_params;
        return audit_params;
    }
    if (!resource_type || !ct_fhir_supported_type(resource_type))
        return NULL;
    if (strcmp(resource_type, "Observation") == 0) {
        *n = sizeof obs_params / sizeof *obs_params;
        return obs_params;
    }
    if (strcmp(resource_type, "DiagnosticReport") == 0) {
        *n = sizeof report_params / sizeof *report_params;
        return report_params;
    }
    if (strcmp(resource_type, "Patient") == 0) {
        *n = sizeof patient_params / sizeof *patient_params;
        return patient_params;
    }
    if (strcmp(resource_type, "Device") == 0) {
        *n = sizeof device_params / sizeof *device_params;
        return device_params;
    }
    *n = sizeof common_params / sizeof *common_params;
    return common_params;
}

const char *ct_fhir_param_type_name(ct_fhir_param_type t)
{
    switch (t) {
    case CT_FHIR_PARAM_DATE: return "date";
    case CT_FHIR_PARAM_TOKEN: return "token";
    case CT_FHIR_PARAM_REFERENCE: return "reference";
    case CT_FHIR_PARAM_STRING: return "string";
    }
    return "string";
}

static const char *const prefix_names[] = {"eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap"};

const char *ct_fhir_prefix_name(ct_fhir_prefix p)
{
    return (unsigned)p < 9 ? prefix_names[p] : "eq";
}

/* --- parse context ------------------------------------------------------ */

typedef struct pctx {
    ct_fhir_search *s;
    ct_fhir_handling handling;
    ct_fhir_issue *issue;
    const ct_fhir_search_param *params;
    size_t n_params;
} pctx;

static char *arena_alloc(ct_fhir_search *s, size_t n)
{
    if (s->arena_cap_ - s->arena_used_ < n)
        return NULL;
    char *p = s->arena_ + s->arena_used_;
    s->arena_used_ += n;
    return p;
}

static int bad_request(pctx *c, ct_fhir_issue_type code, const char *param, const char *fmt, ...)
    CT_PRINTF(4, 5);
static int bad_request(pctx *c, ct_fhir_issue_type code, const char *param, const char *fmt, ...)
{
    char msg[CT_FHIR_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ct_fhir_fail(c->issue, CT_EFORMAT, 400, code, param, "%s", msg);
}

static int too_many(pctx *c, const char *param, const char *what, int max)
{
    return ct_fhir_fail(c->issue, CT_ELIMIT, 413, CT_FHIR_IT_TOO_COSTLY, param,
                        "the search has more than %d %s", max, what);
}

/* Something we do not understand: a warning (lenient) or a 400 (strict). */
static int not_understood(pctx *c, const char *param, const char *fmt, ...) CT_PRINTF(3, 4);
static int not_understood(pctx *c, const char *param, const char *fmt, ...)
{
    char msg[CT_FHIR_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->handling == CT_FHIR_HANDLING_STRICT)
        return ct_fhir_fail(c->issue, CT_EFORMAT, 400, CT_FHIR_IT_NOT_SUPPORTED, param, "%s", msg);
    ct_fhir_search *s = c->s;
    if (s->n_issues < CT_FHIR_SEARCH_MAX_ISSUES)
        ct_fhir_issue_set(&s->issues[s->n_issues++], 0, 200, CT_FHIR_SEV_WARNING,
                          CT_FHIR_IT_NOT_SUPPORTED, param, "%s; it was ignored", msg);
    return 0;
}

/* --- decoding ----------------------------------------------------------- */

static int hexval(char h)
{
    if (h >= '0' && h <= '9')
        return h - '0';
    if (h >= 'a' && h <= 'f')
        return h - 'a' + 10;
    if (h >= 'A' && h <= 'F')
        return h - 'A' + 10;
    return -1;
}

/* Decodes %XX and '+' of src[0..n) into a new arena string. */
static int url_decode(pctx *c, const char *src, size_t n, char **out)
{
    char *d = arena_alloc(c->s, n + 1);
    if (!d)
        return too_many(c, NULL, "bytes after decoding", CT_FHIR_SEARCH_MAX_QUERY);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = src[i];
        if (ch == '%') {
            int hi = i + 1 < n ? hexval(src[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(src[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return bad_request(c, CT_FHIR_IT_STRUCTURE, NULL,
                                   "the query has a '%%' not followed by two hex digits");
            ch = (char)(hi * 16 + lo);
            if (ch == '\0')
                return bad_request(c, CT_FHIR_IT_STRUCTURE, NULL, "the query decodes to a NUL byte");
            i += 2;
        } else if (ch == '+') {
            ch = ' ';
        } else if ((unsigned char)ch < 0x20 || ch == 0x7f) {
            return bad_request(c, CT_FHIR_IT_STRUCTURE, NULL,
                               "the query has a control character; percent-encode it");
        }
        d[o++] = ch;
    }
    d[o] = '\0';
    if (!ct_fhir_utf8_valid((const unsigned char *)d, o, NULL))
        return bad_request(c, CT_FHIR_IT_STRUCTURE, NULL, "the query is not UTF-8 once decoded");
    *out = d;
    return 0;
}

/* Copies s[0..n) without FHIR's escapes ('\' before , | $ \). */
static char *unescape(pctx *c, const char *s, size_t n)
{
    char *d = arena_alloc(c->s, n + 1);
    if (!d)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n &&
            (s[i + 1] == ',' || s[i + 1] == '|' || s[i + 1] == '$' || s[i + 1] == '\\'))
            i++;
        d[o++] = s[i];
    }
    d[o] = '\0';
    return d;
}

/* Index of the first unescaped `sep` in s[0..n), or n. */
static size_t find_unescaped(const char *s, size_t n, char sep)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\\' && i + 1 < n) {
            i++;
            continue;
        }
        if (s[i] == sep)
            return i;
    }
    return n;
}

static int parse_int(const char *s, int64_t max, int64_t *out)
{
    if (!*s)
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > max)
            return 1;
    }
    *out = v;
    return 0;
}

/* --- values by type ----------------------------------------------------- */

static int parse_value(pctx *c, const ct_fhir_search_param *p, ct_fhir_modifier mod,
                       const char *mod_type, const char *s, size_t n, ct_fhir_search_value *v)
{
    char *text = unescape(c, s, n);
    if (!text)
        return too_many(c, p->name, "bytes after decoding", CT_FHIR_SEARCH_MAX_QUERY);
    char shown[96];
    ct_fhir_shown(text, strlen(text), 60, shown, sizeof shown);
    if (n == 0)
        return bad_request(c, CT_FHIR_IT_VALUE, p->name, "%s has an empty value between commas", p->name);
    if (mod == CT_FHIR_MOD_MISSING) {
        if (strcmp(text, "true") == 0)
            v->missing = 1;
        else if (strcmp(text, "false") == 0)
            v->missing = 0;
        else
            return bad_request(c, CT_FHIR_IT_VALUE, p->name, "%s:missing takes true or false, not \"%s\"",
                               p->name, shown);
        return 0;
    }
    switch (p->type) {
    case CT_FHIR_PARAM_DATE: {
        const char *d = text;
        v->prefix = CT_FHIR_PFX_EQ;
        if (d[0] >= 'a' && d[0] <= 'z' && d[1] >= 'a' && d[1] <= 'z') {
            int found = 0;
            for (int k = 0; k < 9; k++)
                if (d[0] == prefix_names[k][0] && d[1] == prefix_names[k][1]) {
                    v->prefix = (ct_fhir_prefix)k;
                    found = 1;
                }
            if (!found)
                return bad_request(c, CT_FHIR_IT_VALUE, p->name,
                                   "%s: \"%s\" has an unknown prefix; use eq, ne, gt, lt, ge, le, sa, eb or ap",
                                   p->name, shown);
            d += 2;
        }
        ct_fhir_issue sub;
        if (ct_fhir_datetime_parse(d, strlen(d), CT_FHIR_DT_SEARCH, p->name, &v->date, &sub) != 0)
            return bad_request(c, CT_FHIR_IT_VALUE, p->name, "%s: %s", p->name, sub.diagnostics);
        return 0;
    }
    case CT_FHIR_PARAM_TOKEN: {
        size_t bar = find_unescaped(s, n, '|');
        if (bar == n) {
            v->system = NULL;
            v->code = text;
        } else {
            v->system = unescape(c, s, bar);
            v->code = bar + 1 < n ? unescape(c, s + bar + 1, n - bar - 1) : NULL;
            if (!v->system || (bar + 1 < n && !v->code))
                return too_many(c, p->name, "bytes after decoding", CT_FHIR_SEARCH_MAX_QUERY);
            if (!v->system[0] && !v->code)
                return bad_request(c, CT_FHIR_IT_VALUE, p->name, "%s: \"|\" alone names no system and no code",
                                   p->name);
        }
        if (strcmp(p->name, "_id") == 0 && (v->system || !ct_fhir_id_valid(text, strlen(text))))
            return bad_request(c, CT_FHIR_IT_VALUE, p->name, "_id: \"%s\" is not a FHIR id", shown);
        return 0;
    }
    case CT_FHIR_PARAM_REFERENCE: {
        ct_fhir_ref ref;
        if (mod == CT_FHIR_MOD_TYPE || !strchr(text, '/')) {
            if (!ct_fhir_id_valid(text, strlen(text)))
                return bad_request(c, CT_FHIR_IT_VALUE, p->name, "%s: \"%s\" is not a FHIR id", p->name, shown);
            v->ref_type = mod == CT_FHIR_MOD_TYPE ? mod_type : p->target;
            v->ref_id = text;
            return 0;
        }
        if (ct_fhir_ref_parse(text, p->name, &ref, NULL) != 0 || ref.kind != CT_FHIR_REF_RELATIVE)
            return bad_request(c, CT_FHIR_IT_VALUE, p->name,
                               "%s: \"%s\" is not Type/ID or an ID (absolute URLs are not searched)",
                               p->name, shown);
        if (p->target && strcmp(ref.type, p->target) != 0)
            return bad_request(c, CT_FHIR_IT_VALUE, p->name, "%s refers to a %s, not a %s", p->name,
                               p->target, ref.type);
        /* The pieces go back into the value's own arena copy. */
        size_t tl = strlen(ref.type), il = strlen(ref.id), vl = strlen(ref.version);
        char *t = arena_alloc(c->s, tl + il + vl + 3);
        if (!t)
            return too_many(c, p->name, "bytes after decoding", CT_FHIR_SEARCH_MAX_QUERY);
        memcpy(t, ref.type, tl + 1);
        memcpy(t + tl + 1, ref.id, il + 1);
        v->ref_type = t;
        v->ref_id = t + tl + 1;
        if (vl) {
            memcpy(t + tl + il + 2, ref.version, vl + 1);
            v->ref_version = t + tl + il + 2;
        }
        return 0;
    }
    case CT_FHIR_PARAM_STRING:
        v->text = text;
        return 0;
    }
    return 0;
}

static int parse_modifier(pctx *c, const ct_fhir_search_param *p, const char *m,
                          ct_fhir_modifier *mod)
{
    *mod = CT_FHIR_MOD_NONE;
    if (!m)
        return 0;
    if (strcmp(m, "missing") == 0) {
        *mod = CT_FHIR_MOD_MISSING;
        return 0;
    }
    if (p->type == CT_FHIR_PARAM_STRING && (strcmp(m, "exact") == 0 || strcmp(m, "contains") == 0)) {
        *mod = m[0] == 'e' ? CT_FHIR_MOD_EXACT : CT_FHIR_MOD_CONTAINS;
        return 0;
    }
    if (p->type == CT_FHIR_PARAM_REFERENCE && m[0] >= 'A' && m[0] <= 'Z') {
        size_t n = strlen(m);
        int ok = n <= CT_FHIR_TYPE_MAX;
        for (size_t i = 0; ok && i < n; i++)
            ok = (m[i] >= 'A' && m[i] <= 'Z') || (m[i] >= 'a' && m[i] <= 'z');
        if (ok && (!p->target || strcmp(m, p->target) == 0)) {
            *mod = CT_FHIR_MOD_TYPE;
            return 0;
        }
    }
    char shown[80];
    ct_fhir_shown(m, strlen(m), 40, shown, sizeof shown);
    return bad_request(c, CT_FHIR_IT_NOT_SUPPORTED, p->name,
                       "modifier :%s is not supported on %s (%s); supported: :missing%s", shown,
                       p->name, ct_fhir_param_type_name(p->type),
                       p->type == CT_FHIR_PARAM_STRING      ? ", :exact, :contains"
                       : p->type == CT_FHIR_PARAM_REFERENCE ? ", :Type"
                                                            : "");
}

static const ct_fhir_search_param *find_param(const pctx *c, const char *name)
{
    for (size_t i = 0; i < c->n_params; i++)
        if (strcmp(c->params[i].name, name) == 0)
            return &c->params[i];
    return NULL;
}

static int add_clause(pctx *c, const ct_fhir_search_param *p, const char *modifier,
                      const char *value)
{
    ct_fhir_search *s = c->s;
    ct_fhir_modifier mod;
    int rc = parse_modifier(c, p, modifier, &mod);
    if (rc)
        return rc;
    if (!value[0])
        return not_understood(c, p->name, "%s has no value", p->name);
    if (s->n_clauses == CT_FHIR_SEARCH_MAX_CLAUSES)
        return too_many(c, p->name, "parameters", CT_FHIR_SEARCH_MAX_CLAUSES);
    ct_fhir_search_clause *cl = &s->clauses[s->n_clauses];
    memset(cl, 0, sizeof *cl);
    cl->param = p;
    cl->modifier = mod;
    cl->raw = value;
    cl->values = &s->values_[s->n_values_used_];
    size_t n = strlen(value), start = 0;
    if (mod == CT_FHIR_MOD_MISSING && find_unescaped(value, n, ',') != n)
        return bad_request(c, CT_FHIR_IT_VALUE, p->name, "%s:missing takes one value", p->name);
    while (start <= n) {
        size_t end = start + find_unescaped(value + start, n - start, ',');
        if (s->n_values_used_ == CT_FHIR_SEARCH_MAX_VALUES)
            return too_many(c, p->name, "values", CT_FHIR_SEARCH_MAX_VALUES);
        ct_fhir_search_value *v = &s->values_[s->n_values_used_];
        memset(v, 0, sizeof *v);
        rc = parse_value(c, p, mod, modifier, value + start, end - start, v);
        if (rc)
            return rc;
        s->n_values_used_++;
        cl->n_values++;
        start = end + 1;
    }
    s->n_clauses++;
    return 0;
}

static int parse_sort(pctx *c, const char *value)
{
    ct_fhir_search *s = c->s;
    if (s->n_sort)
        return bad_request(c, CT_FHIR_IT_VALUE, "_sort", "_sort appears twice; give one list, e.g. _sort=-date,status");
    size_t n = strlen(value), start = 0;
    while (start <= n) {
        size_t end = start;
        while (end < n && value[end] != ',')
            end++;
        char key[CT_FHIR_TYPE_MAX + 2];
        size_t kl = end - start;
        int desc = kl > 0 && value[start] == '-';
        if (desc) {
            start++;
            kl--;
        }
        if (kl == 0 || kl >= sizeof key)
            return bad_request(c, CT_FHIR_IT_VALUE, "_sort", "_sort has an empty or overlong key");
        memcpy(key, value + start, kl);
        key[kl] = '\0';
        const ct_fhir_search_param *p = find_param(c, key);
        char shown[80];
        ct_fhir_shown(key, kl, 40, shown, sizeof shown);
        if (!p || !p->sortable) {
            int rc = not_understood(c, "_sort", "_sort by \"%s\" is not supported for %s", shown,
                                    s->resource_type);
            if (rc)
                return rc;
        } else {
            for (size_t k = 0; k < s->n_sort; k++)
                if (s->sort[k].param == p)
                    return bad_request(c, CT_FHIR_IT_VALUE, "_sort", "_sort names %s twice", p->name);
            if (s->n_sort == CT_FHIR_SEARCH_MAX_SORT)
                return too_many(c, "_sort", "sort keys", CT_FHIR_SEARCH_MAX_SORT);
            s->sort[s->n_sort].param = p;
            s->sort[s->n_sort].descending = desc;
            s->n_sort++;
        }
        start = end + 1;
    }
    return 0;
}

/* One name=value pair, both decoded. */
static int parse_pair(pctx *c, char *name, const char *value, int *seen_count, int *seen_offset)
{
    ct_fhir_search *s = c->s;
    char *colon = strchr(name, ':');
    const char *modifier = NULL;
    if (colon) {
        *colon = '\0';
        modifier = colon + 1;
    }
    char shown[80];
    ct_fhir_shown(name, strlen(name), 40, shown, sizeof shown);
    if (!name[0])
        return not_understood(c, NULL, "the query has a value without a parameter name");
    if (name[0] == '_' && !find_param(c, name)) {
        if (modifier && strcmp(name, "_include") != 0)
            return bad_request(c, CT_FHIR_IT_NOT_SUPPORTED, name, "%s takes no modifier", shown);
        if (strcmp(name, "_count") == 0) {
            int64_t v = 0;
            if (*seen_count)
                return bad_request(c, CT_FHIR_IT_VALUE, "_count", "_count appears twice");
            *seen_count = 1;
            int r = parse_int(value, 1000000000, &v);
            if (r < 0)
                return bad_request(c, CT_FHIR_IT_VALUE, "_count", "_count must be a whole number >= 0");
            if (r > 0 || v > CT_FHIR_SEARCH_MAX_COUNT) {
                v = CT_FHIR_SEARCH_MAX_COUNT;
                if (s->n_issues < CT_FHIR_SEARCH_MAX_ISSUES)
                    ct_fhir_issue_set(&s->issues[s->n_issues++], 0, 200, CT_FHIR_SEV_INFORMATION,
                                      CT_FHIR_IT_INFORMATIONAL, "_count",
                                      "_count was lowered to %d, the most one page holds",
                                      CT_FHIR_SEARCH_MAX_COUNT);
            }
            s->count = (int)v;
            s->count_given = 1;
            return 0;
        }
        if (strcmp(name, "_offset") == 0) {
            int64_t v = 0;
            if (*seen_offset)
                return bad_request(c, CT_FHIR_IT_VALUE, "_offset", "_offset appears twice");
            *seen_offset = 1;
            int r = parse_int(value, CT_FHIR_SEARCH_MAX_OFFSET, &v);
            if (r < 0)
                return bad_request(c, CT_FHIR_IT_VALUE, "_offset", "_offset must be a whole number >= 0");
            if (r > 0)
                return bad_request(c, CT_FHIR_IT_TOO_COSTLY, "_offset",
                                   "_offset is beyond %d; narrow the search instead",
                                   CT_FHIR_SEARCH_MAX_OFFSET);
            s->offset = v;
            return 0;
        }
        if (strcmp(name, "_sort") == 0)
            return parse_sort(c, value);
        if (strcmp(name, "_include") == 0) {
            if (!modifier && strcmp(s->resource_type, "DiagnosticReport") == 0 &&
                strcmp(value, "DiagnosticReport:result") == 0) {
                s->include_result = 1;
                return 0;
            }
            char sv[80];
            ct_fhir_shown(value, strlen(value), 40, sv, sizeof sv);
            return not_understood(c, "_include", "_include%s%s=%s is not supported (only "
                                  "DiagnosticReport:result)",
                                  modifier ? ":" : "", modifier ? modifier : "", sv);
        }
        if (strcmp(name, "_format") == 0) {
            if (strlen(value) >= sizeof s->format)
                return bad_request(c, CT_FHIR_IT_VALUE, "_format", "_format is too long");
            snprintf(s->format, sizeof s->format, "%s", value);
            return 0;
        }
        if (strcmp(name, "_pretty") == 0)
            return 0;
        return not_understood(c, name, "search parameter %s is not supported", shown);
    }
    const ct_fhir_search_param *p = find_param(c, name);
    if (!p)
        return not_understood(c, name, "search parameter %s is not supported for %s (chains "
                              "and _has are not supported either)",
                              shown, s->resource_type);
    return add_clause(c, p, modifier, value);
}

int ct_fhir_search_parse(const char *resource_type, const char *query, size_t len,
                         ct_fhir_handling handling, ct_fhir_search **out, ct_fhir_issue *issue)
{
    *out = NULL;
    pctx c = {NULL, handling, issue, NULL, 0};
    c.params = ct_fhir_search_params(resource_type, &c.n_params);
    if (!c.params)
        return ct_fhir_fail(issue, CT_EFORMAT, 400, CT_FHIR_IT_NOT_SUPPORTED, NULL,
                            "resource type is not one this server searches");
    if (!query && len)
        return ct_fhir_fail(issue, CT_EINVAL, 500, CT_FHIR_IT_EXCEPTION, NULL, "query is NULL");
    if (len > CT_FHIR_SEARCH_MAX_QUERY)
        return ct_fhir_fail(issue, CT_ELIMIT, 413, CT_FHIR_IT_TOO_LONG, NULL,
                            "the query is %zu bytes, over the limit of %d; use fewer parameters",
                            len, CT_FHIR_SEARCH_MAX_QUERY);
    ct_fhir_search *s = calloc(1, sizeof *s);
    /* Decoded strings are never longer than the raw ones; each value may be
     * copied twice more (unescaped, split) and every string ends in a NUL. */
    size_t cap = 6 * len + 1024;
    char *arena = s ? malloc(cap) : NULL;
    if (!s || !arena) {
        free(s);
        free(arena);
        return ct_fhir_fail(issue, CT_ENOMEM, 500, CT_FHIR_IT_EXCEPTION, NULL, "out of memory");
    }
    s->arena_ = arena;
    s->arena_cap_ = cap;
    snprintf(s->resource_type, sizeof s->resource_type, "%s", resource_type);
    s->count = CT_FHIR_SEARCH_DEFAULT_COUNT;
    c.s = s;
    int seen_count = 0, seen_offset = 0, rc = 0;
    size_t start = 0;
    while (start < len) {
        size_t end = start;
        while (end < len && query[end] != '&')
            end++;
        if (end > start) {
            size_t eq = start;
            while (eq < end && query[eq] != '=')
                eq++;
            char *name, *value;
            if ((rc = url_decode(&c, query + start, eq - start, &name)) != 0 ||
                (rc = url_decode(&c, eq < end ? query + eq + 1 : "", eq < end ? end - eq - 1 : 0,
                                 &value)) != 0 ||
                (rc = parse_pair(&c, name, value, &seen_count, &seen_offset)) != 0)
                break;
        }
        start = end + 1;
    }
    if (rc) {
        ct_fhir_search_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void ct_fhir_search_free(ct_fhir_search *s)
{
    if (s) {
        free(s->arena_);
        free(s);
    }
}

/* --- formatting --------------------------------------------------------- */

typedef struct outbuf {
    char *p;
    size_t cap, n;
    int over;
} outbuf;

static void put_raw(outbuf *b, const char *s)
{
    for (; *s; s++) {
        if (b->n + 1 >= b->cap) {
            b->over = 1;
            return;
        }
        b->p[b->n++] = *s;
    }
}

/* Percent-encodes all but unreserved characters and the FHIR separators
 * that keep their meaning unencoded (',' '|' ':' '/'). */
static void put_enc(outbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char tmp[4] = {(char)ch, 0, 0, 0};
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == ',' || ch == '|' ||
              ch == ':' || ch == '/')) {
            tmp[0] = '%';
            tmp[1] = hex[ch >> 4];
            tmp[2] = hex[ch & 15];
        }
        put_raw(b, tmp);
    }
}

int ct_fhir_search_format(const ct_fhir_search *s, int64_t offset, char *buf, size_t cap)
{
    if (!s || !buf || cap == 0)
        return CT_EINVAL;
    outbuf b = {buf, cap, 0, 0};
    for (size_t i = 0; i < s->n_clauses; i++) {
        const ct_fhir_search_clause *cl = &s->clauses[i];
        if (b.n)
            put_raw(&b, "&");
        put_raw(&b, cl->param->name);
        if (cl->modifier == CT_FHIR_MOD_MISSING)
            put_raw(&b, ":missing");
        else if (cl->modifier == CT_FHIR_MOD_EXACT)
            put_raw(&b, ":exact");
        else if (cl->modifier == CT_FHIR_MOD_CONTAINS)
            put_raw(&b, ":contains");
        else if (cl->modifier == CT_FHIR_MOD_TYPE) {
            put_raw(&b, ":");
            put_raw(&b, cl->values[0].ref_type);
        }
        put_raw(&b, "=");
        put_enc(&b, cl->raw);
    }
    if (s->n_sort) {
        put_raw(&b, b.n ? "&_sort=" : "_sort=");
        for (size_t i = 0; i < s->n_sort; i++) {
            if (i)
                put_raw(&b, ",");
            if (s->sort[i].descending)
                put_raw(&b, "-");
            put_raw(&b, s->sort[i].param->name);
        }
    }
    if (s->include_result)
        put_raw(&b, b.n ? "&_include=DiagnosticReport:result" : "_include=DiagnosticReport:result");
    char num[64];
    snprintf(num, sizeof num, "%s_count=%d&_offset=%lld", b.n ? "&" : "", s->count,
             (long long)(offset < 0 ? 0 : offset));
    put_raw(&b, num);
    buf[b.n < cap ? b.n : cap - 1] = '\0';
    return b.over ? CT_ELIMIT : 0;
}
