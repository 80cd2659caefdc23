/* libFuzzer harness for FHIR search query strings. The first byte picks the
 * resource type and the handling; the rest is the query. A query must be
 * parsed into bounded clauses or refused with a 400/413 issue; an accepted
 * one is formatted back into its canonical query, which must parse again,
 * strictly, into the same clauses (the self and next links of a Bundle
 * depend on it). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/fhir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const types[] = {"Observation", "DiagnosticReport", "Patient", "Device",
                                    "Provenance", "Medication"};

static int same_value(ct_fhir_param_type t, const ct_fhir_search_value *a,
                      const ct_fhir_search_value *b)
{
#define SAME_STR(x, y) ((x) == NULL ? (y) == NULL : ((y) != NULL && strcmp((x), (y)) == 0))
    switch (t) {
    case CT_FHIR_PARAM_DATE:
        return a->prefix == b->prefix && a->date.start_ms == b->date.start_ms &&
               a->date.end_ms == b->date.end_ms;
    case CT_FHIR_PARAM_TOKEN:
        return SAME_STR(a->system, b->system) && SAME_STR(a->code, b->code);
    case CT_FHIR_PARAM_REFERENCE:
        return SAME_STR(a->ref_type, b->ref_type) && SAME_STR(a->ref_id, b->ref_id) &&
               SAME_STR(a->ref_version, b->ref_version);
    case CT_FHIR_PARAM_STRING:
        return SAME_STR(a->text, b->text);
    }
    return 0;
#undef SAME_STR
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *type = types[data[0] % 6];
    ct_fhir_handling h = (data[0] & 0x80) ? CT_FHIR_HANDLING_STRICT : CT_FHIR_HANDLING_LENIENT;
    ct_fhir_search *s = NULL;
    ct_fhir_issue is;
    int rc = ct_fhir_search_parse(type, (const char *)data + 1, size - 1, h, &s, &is);
    if (rc) {
        if (s || !is.diagnostics[0] || strchr(is.diagnostics, '\n') ||
            (is.http_status != 400 && is.http_status != 413))
            abort();
        json_t *oo = ct_fhir_operation_outcome(&is, 1);
        if (!oo)
            abort();
        json_decref(oo);
        return 0;
    }
    if (s->n_clauses > CT_FHIR_SEARCH_MAX_CLAUSES || s->n_sort > CT_FHIR_SEARCH_MAX_SORT ||
        s->n_issues > CT_FHIR_SEARCH_MAX_ISSUES || s->count < 0 ||
        s->count > CT_FHIR_SEARCH_MAX_COUNT || s->offset < 0 || s->offset > CT_FHIR_SEARCH_MAX_OFFSET)
        abort();
    if (s->n_issues) {
        json_t *oo = ct_fhir_operation_outcome(s->issues, s->n_issues);
        if (!oo)
            abort();
        json_decref(oo);
    }
    if (h == CT_FHIR_HANDLING_STRICT)
        for (size_t i = 0; i < s->n_issues; i++)
            if (s->issues[i].severity == CT_FHIR_SEV_WARNING)
                abort(); /* strict handling never ignores */
    for (size_t i = 0; i < s->n_clauses; i++) {
        const ct_fhir_search_clause *c = &s->clauses[i];
        if (!c->param || c->n_values < 1 || !c->raw)
            abort();
        for (size_t k = 0; k < c->n_values; k++)
            if (c->param->type == CT_FHIR_PARAM_DATE && c->modifier != CT_FHIR_MOD_MISSING &&
                c->values[k].date.end_ms <= c->values[k].date.start_ms)
                abort();
    }
    static char buf[1 << 16];
    if (ct_fhir_search_format(s, s->offset, buf, sizeof buf) != 0)
        abort();
    ct_fhir_search *t = NULL;
    if (ct_fhir_search_parse(type, buf, strlen(buf), CT_FHIR_HANDLING_STRICT, &t, &is) != 0)
        abort();
    if (t->n_clauses != s->n_clauses || t->count != s->count || t->offset != s->offset ||
        t->n_sort != s->n_sort || t->include_result != s->include_result)
        abort();
    for (size_t i = 0; i < s->n_clauses; i++) {
        const ct_fhir_search_clause *a = &s->clauses[i], *b = &t->clauses[i];
        if (a->param != b->param || a->modifier != b->modifier || a->n_values != b->n_values ||
            strcmp(a->raw, b->raw) != 0)
            abort();
        for (size_t k = 0; k < a->n_values; k++)
            if (a->modifier == CT_FHIR_MOD_MISSING ? a->values[k].missing != b->values[k].missing
                                                   : !same_value(a->param->type, &a->values[k], &b->values[k]))
                abort();
    }
    ct_fhir_search_free(t);
    ct_fhir_search_free(s);
    return 0;
}
