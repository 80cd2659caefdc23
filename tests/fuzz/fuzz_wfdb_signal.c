/* libFuzzer harness for the signal decoding kernels: arbitrary bytes, any
 * signal count, more frames asked than the bytes hold. The kernels must stay
 * inside both buffers, decode exactly the whole frames present, and agree
 * sample for sample with a slow reference written from the format's
 * definition. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/wfdb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int reference(int format, const uint8_t *in, size_t k)
{
    if (format == 212) {
        const uint8_t *q = in + 3 * (k / 2);
        unsigned u = (k & 1) ? (unsigned)q[2] | ((unsigned)(q[1] >> 4) << 8)
                             : (unsigned)q[0] | ((unsigned)(q[1] & 15) << 8);
        int v = (u & 0x800) ? (int)u - 4096 : (int)u;
        return v == -2048 ? CT_WFDB_INVALID_SAMPLE : v;
    }
    if (format == 16) {
        unsigned u = (unsigned)in[2 * k] | ((unsigned)in[2 * k + 1] << 8);
        return (u & 0x8000) ? (int)u - 65536 : (int)u;
    }
    int v = (int)in[k] - 128;
    return v == -128 ? CT_WFDB_INVALID_SAMPLE : v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const int formats[] = {212, 16, 80};
    int format = formats[data[0] % 3];
    int nsig = 1 + data[1] % CT_WFDB_MAX_SIGNALS;
    const uint8_t *in = data + 2;
    size_t len = size - 2;
    /* The bytes go in an exact-size heap copy, so that ASan sees any read
     * past their end. */
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return 0;
    memcpy(copy, in, len);
    int64_t ask = (int64_t)(len * 2 / (size_t)nsig) + 2;
    int16_t *out[CT_WFDB_MAX_SIGNALS];
    for (int s = 0; s < nsig; s++)
        out[s] = malloc((size_t)ask * sizeof(int16_t));
    int64_t got = format == 212 ? ct_wfdb_decode_212(copy, len, nsig, ask, out)
                  : format == 16 ? ct_wfdb_decode_16(copy, len, nsig, ask, out)
                                 : ct_wfdb_decode_80(copy, len, nsig, ask, out);
    size_t total = format == 212 ? len / 3 * 2 + (len % 3 == 2) : format == 16 ? len / 2 : len;
    if (got != (int64_t)(total / (size_t)nsig))
        abort();
    for (int64_t f = 0; f < got; f++)
        for (int s = 0; s < nsig; s++)
            if (out[s][f] != reference(format, copy, (size_t)f * (size_t)nsig + (size_t)s))
                abort();
    for (int s = 0; s < nsig; s++) {
        /* The checksum of a prefix plus the rest is the checksum of all. */
        int whole = ct_wfdb_checksum16(out[s], got);
        int64_t half = got / 2;
        int parts = ct_wfdb_checksum16(out[s], half) + ct_wfdb_checksum16(out[s] + half, got - half);
        if (((unsigned)(whole - parts)) & 0xffffu)
            abort();
        free(out[s]);
    }
    free(copy);
    return 0;
}
