/* twin/index: the search index rows of the resources the twin writes
 * (DiagnosticReport, its derived Observations, Provenance, Device), so that
 * the FHIR API finds them exactly as it finds what clients post: by
 * patient, code, category, status, conclusion, date, result and identifier.
 *
 * The one idea: the rows come from the fhir room's extractor
 * (ct_fhir_index_extract), the very function the http room uses for what
 * clients post, since a search cannot tell who wrote a resource; here they
 * are only copied into the store's type. tests/twin checks the reports
 * through ct_store_search. */
#include <stdlib.h>
#include <string.h>

#include "twin_internal.h"

_Static_assert((int)CT_FHIR_INDEX_TOKEN == (int)CT_STORE_INDEX_TOKEN &&
                   (int)CT_FHIR_INDEX_DATE == (int)CT_STORE_INDEX_DATE &&
                   (int)CT_FHIR_INDEX_REFERENCE == (int)CT_STORE_INDEX_REFERENCE,
               "the fhir room's index kinds are the store's");

int tw_index_extract(const json_t *res, const char *type, tw_index *x)
{
    memset(x, 0, sizeof *x);
    int rc = ct_fhir_index_extract(res, type, &x->src);
    if (rc)
        return rc;
    if (x->src.n && !(x->e = calloc(x->src.n, sizeof *x->e))) {
        ct_fhir_index_free(&x->src);
        return CT_ENOMEM;
    }
    for (size_t i = 0; i < x->src.n; i++) {
        const ct_fhir_index_entry *f = &x->src.e[i];
        x->e[i] = (ct_store_index_entry){
            .param = f->param, .kind = (ct_store_index_kind)f->kind, .system = f->system, .code = f->code,
            .start_ms = f->start_ms, .end_ms = f->end_ms, .ref_type = f->ref_type, .ref_id = f->ref_id,
        };
    }
    x->n = x->src.n;
    return CT_OK;
}

void tw_index_free(tw_index *x)
{
    free(x->e);
    ct_fhir_index_free(&x->src);
    x->e = NULL;
    x->n = 0;
}
