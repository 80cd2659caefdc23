/* libFuzzer harness for WFDB header parsing: any bytes must give either a
 * header that keeps every promise of ct_wfdb_header (counts in range, strings
 * terminated, only the formats we decode) or an error with a one-line
 * message; never a crash, a hang or an out-of-bounds read. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/wfdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_terminated(const char *s, size_t cap)
{
    if (!memchr(s, '\0', cap))
        abort();
}

static void check(const ct_wfdb_header *h, int rc, const ct_error *err)
{
    if (rc != 0) {
        if (err->code != rc || !err->msg[0] || strchr(err->msg, '\n'))
            abort();
        if (h->n_signals != 0 || h->record_name[0])
            abort(); /* a refused header is left zeroed */
        return;
    }
    if (h->n_signals < 0 || h->n_signals > CT_WFDB_MAX_SIGNALS)
        abort();
    if (!(h->fs_hz > 0.0 && h->fs_hz <= 1e6) || h->n_samples < -1)
        abort();
    check_terminated(h->record_name, sizeof h->record_name);
    check_terminated(h->base_time, sizeof h->base_time);
    check_terminated(h->base_date, sizeof h->base_date);
    check_terminated(h->comments, sizeof h->comments);
    for (int s = 0; s < h->n_signals; s++) {
        const ct_wfdb_signal *g = &h->signals[s];
        if (g->format != 212 && g->format != 16 && g->format != 80)
            abort();
        if (g->samples_per_frame != 1 || g->skew < 0 || g->byte_offset < 0 ||
            g->block_size < 0 || g->gain_adu_per_unit == 0.0)
            abort();
        if (g->adc_resolution_bits < 1 || g->adc_resolution_bits > 32)
            abort();
        check_terminated(g->file_name, sizeof g->file_name);
        check_terminated(g->units, sizeof g->units);
        check_terminated(g->description, sizeof g->description);
        if (!g->file_name[0] || !g->units[0])
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ct_wfdb_header *h = malloc(sizeof *h);
    if (!h)
        return 0;
    ct_error err;
    ct_error_clear(&err);
    int rc = ct_wfdb_header_parse((const char *)data, size, "rec", h, &err);
    check(h, rc, &err);
    /* Without a name to check against, the header's own name is used. */
    ct_error_clear(&err);
    rc = ct_wfdb_header_parse((const char *)data, size, NULL, h, &err);
    check(h, rc, &err);
    free(h);
    return 0;
}
