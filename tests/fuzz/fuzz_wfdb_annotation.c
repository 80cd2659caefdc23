/* libFuzzer harness for MIT annotation files: whatever parses must encode,
 * and what it encodes to must parse back to the same annotations and encode
 * to the same bytes again (the encoder is a fixed point after one round). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/wfdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const ct_wfdb_annotation *a, const ct_wfdb_annotation *b)
{
    return a->sample == b->sample && a->code == b->code && a->subtype == b->subtype &&
           a->chan == b->chan && a->num == b->num && a->aux_len == b->aux_len &&
           memcmp(a->aux, b->aux, (size_t)a->aux_len) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ct_wfdb_annotation *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    ct_error err;
    int rc = ct_wfdb_ann_parse(data, size, "fuzz.atr", &a, &na, &err);
    if (rc != 0) {
        if (a || na || err.code != rc || !err.msg[0])
            abort();
        return 0;
    }
    for (size_t i = 0; i < na; i++) {
        const ct_wfdb_annotation *x = &a[i];
        if (x->sample < 0 || x->code < 0 || x->code > CT_ANN_ACMAX || x->subtype < -128 ||
            x->subtype > 127 || x->chan < 0 || x->chan > 255 || x->num < -128 ||
            x->num > 127 || x->aux_len < 0 || x->aux_len > CT_WFDB_MAX_AUX ||
            x->aux[x->aux_len] != '\0')
            abort();
    }
    uint8_t *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;
    rc = ct_wfdb_ann_encode(a, na, &enc, &len, &err);
    if (rc == CT_ELIMIT) { /* far-apart times can need more SKIPs than a file may hold */
        free(a);
        return 0;
    }
    if (rc != 0)
        abort();
    if (ct_wfdb_ann_parse(enc, len, "encoded", &b, &nb, &err) != 0 || nb != na)
        abort();
    for (size_t i = 0; i < na; i++)
        if (!same(&a[i], &b[i]))
            abort();
    if (ct_wfdb_ann_encode(b, nb, &enc2, &len2, &err) != 0 || len2 != len ||
        memcmp(enc, enc2, len) != 0)
        abort();
    free(enc2);
    free(enc);
    free(b);
    free(a);
    return 0;
}
