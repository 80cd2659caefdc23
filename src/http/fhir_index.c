/* http room, search index: the values a resource's search parameters see,
 * as the store takes them. The one idea: the rules are the fhir room's
 * (ct_fhir_index_extract, src/fhir/index.c), shared with the twin so that a
 * search cannot tell who wrote a resource; this file only copies its
 * entries into the store's type, field for field (the two rooms do not
 * know each other, the http room knows both). */
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

_Static_assert((int)CT_FHIR_INDEX_TOKEN == (int)CT_STORE_INDEX_TOKEN &&
                   (int)CT_FHIR_INDEX_DATE == (int)CT_STORE_INDEX_DATE &&
                   (int)CT_FHIR_INDEX_REFERENCE == (int)CT_STORE_INDEX_REFERENCE,
               "the fhir room's index kinds are the store's");
_Static_assert(CT_FHIR_INDEX_MAX_ENTRIES <= CT_STORE_INDEX_MAX_ENTRIES &&
                   CT_FHIR_INDEX_MAX_TEXT <= CT_STORE_INDEX_MAX_TEXT,
               "what the fhir room indexes fits the store's limits");

int ct_http_index_extract(const json_t *res, const char *type, ct_http_index *out)
{
    memset(out, 0, sizeof *out);
    int rc = ct_fhir_index_extract(res, type, &out->src);
    if (rc)
        return rc;
    if (out->src.n) {
        out->e = calloc(out->src.n, sizeof *out->e);
        if (!out->e) {
            ct_fhir_index_free(&out->src);
            return CT_ENOMEM;
        }
    }
    for (size_t i = 0; i < out->src.n; i++) {
        const ct_fhir_index_entry *f = &out->src.e[i];
        out->e[i] = (ct_store_index_entry){
            .param = f->param, .kind = (ct_store_index_kind)f->kind, .system = f->system, .code = f->code,
            .start_ms = f->start_ms, .end_ms = f->end_ms, .ref_type = f->ref_type, .ref_id = f->ref_id,
        };
    }
    out->n = out->src.n;
    memcpy(out->patient, out->src.patient, sizeof out->patient);
    return 0;
}

void ct_http_index_free(ct_http_index *x)
{
    free(x->e);
    ct_fhir_index_free(&x->src);
    x->e = NULL;
    x->n = 0;
    x->patient[0] = '\0';
}
