/* wfdb room, signals: decodes the signal files of a record (formats 212, 16
 * and 80) into one int16 array per signal, and proves the result against the
 * header before anyone sees it.
 *
 * The one idea: a signal file is read whole with one fread() after its size
 * has been checked against what the header promises (too short and too long
 * are both errors: either means the header and the data have drifted apart),
 * then tight per-format loops turn interleaved frames into planar arrays.
 * Each signal's first value and 16-bit checksum are then compared with the
 * header, as WFDB's getvec() does, so that one flipped bit in 2 MB is caught.
 *
 * Format 212 packs two 12-bit samples in three bytes: byte 0 is the low 8 bits
 * of sample A, the low nibble of byte 1 its high 4 bits, the high nibble of
 * byte 1 the high 4 bits of sample B and byte 2 its low 8 bits. The pairing
 * runs over the sample stream, not the frame, so a file of an odd number of
 * signals shares byte triples between frames; a lone last sample takes two
 * bytes. Format 16 is little-endian int16; format 80 is offset binary
 * (byte - 128). Each format's most negative value marks a missing sample. */
#include "cardiotwin/wfdb.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "internal.h"

/* ---- decoding kernels ------------------------------------------------------ */

static inline int16_t from12(unsigned v)
{
    /* Sign-extend from bit 11 by arithmetic, avoiding implementation-defined
     * shifts of negative values. */
    int x = (int)v - (int)((v & 0x800u) << 1);
    return (int16_t)(x == -2048 ? CT_WFDB_INVALID_SAMPLE : x);
}

static inline int16_t from16(const uint8_t *q)
{
    int x = (int)(q[0] | ((unsigned)q[1] << 8)) - (int)(((unsigned)q[1] & 0x80u) << 9);
    return (int16_t)x;
}

static inline int16_t from80(uint8_t b)
{
    int x = (int)b - 128;
    return (int16_t)(x == -128 ? CT_WFDB_INVALID_SAMPLE : x);
}

static int kernel_args_ok(const uint8_t *in, size_t in_len, int n_signals, int64_t n_frames,
                          int16_t *const *out)
{
    if (n_signals < 1 || n_signals > CT_WFDB_MAX_SIGNALS || n_frames < 0)
        return 0;
    if (n_frames == 0)
        return 1;
    if (!out || (!in && in_len))
        return 0;
    for (int s = 0; s < n_signals; s++)
        if (!out[s])
            return 0;
    return 1;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

int64_t ct_wfdb_decode_212(const uint8_t *in, size_t in_len, int n_signals, int64_t n_frames,
                           int16_t *const *out)
{
    if (!kernel_args_ok(in, in_len, n_signals, n_frames, out))
        return CT_EINVAL;
    uint64_t avail = (uint64_t)(in_len / 3) * 2 + (in_len % 3 == 2);
    int64_t frames = min64(n_frames, (int64_t)(avail / (uint64_t)n_signals));
    if (frames == 0)
        return 0;

    if (n_signals == 2) { /* the MIT-BIH layout: one frame per byte triple */
        int16_t *a = out[0], *b = out[1];
        for (int64_t f = 0; f < frames; f++) {
            const uint8_t *q = in + 3 * f;
            a[f] = from12(q[0] | ((unsigned)(q[1] & 0x0f) << 8));
            b[f] = from12(q[2] | ((unsigned)(q[1] & 0xf0) << 4));
        }
        return frames;
    }
    if (n_signals == 1) {
        int16_t *a = out[0];
        int64_t f = 0;
        for (; f + 1 < frames; f += 2) {
            const uint8_t *q = in + 3 * (f / 2);
            a[f] = from12(q[0] | ((unsigned)(q[1] & 0x0f) << 8));
            a[f + 1] = from12(q[2] | ((unsigned)(q[1] & 0xf0) << 4));
        }
        if (f < frames) {
            const uint8_t *q = in + 3 * (f / 2);
            a[f] = from12(q[0] | ((unsigned)(q[1] & 0x0f) << 8));
        }
        return frames;
    }

    /* Any other count: walk the sample stream two at a time, carrying the
     * (signal, frame) position across triples. */
    uint64_t total = (uint64_t)frames * (uint64_t)n_signals, k = 0;
    int s = 0;
    int64_t f = 0;
    for (; k + 1 < total; k += 2) {
        const uint8_t *q = in + 3 * (k / 2);
        out[s][f] = from12(q[0] | ((unsigned)(q[1] & 0x0f) << 8));
        if (++s == n_signals) {
            s = 0;
            f++;
        }
        out[s][f] = from12(q[2] | ((unsigned)(q[1] & 0xf0) << 4));
        if (++s == n_signals) {
            s = 0;
            f++;
        }
    }
    if (k < total) {
        const uint8_t *q = in + 3 * (k / 2);
        out[s][f] = from12(q[0] | ((unsigned)(q[1] & 0x0f) << 8));
    }
    return frames;
}

int64_t ct_wfdb_decode_16(const uint8_t *in, size_t in_len, int n_signals, int64_t n_frames,
                          int16_t *const *out)
{
    if (!kernel_args_ok(in, in_len, n_signals, n_frames, out))
        return CT_EINVAL;
    int64_t frames = min64(n_frames, (int64_t)(in_len / 2 / (size_t)n_signals));
    if (n_signals == 2) {
        int16_t *a = out[0], *b = out[1];
        for (int64_t f = 0; f < frames; f++) {
            a[f] = from16(in + 4 * f);
            b[f] = from16(in + 4 * f + 2);
        }
        return frames;
    }
    const uint8_t *q = in;
    for (int64_t f = 0; f < frames; f++)
        for (int s = 0; s < n_signals; s++, q += 2)
            out[s][f] = from16(q);
    return frames;
}

int64_t ct_wfdb_decode_80(const uint8_t *in, size_t in_len, int n_signals, int64_t n_frames,
                          int16_t *const *out)
{
    if (!kernel_args_ok(in, in_len, n_signals, n_frames, out))
        return CT_EINVAL;
    int64_t frames = min64(n_frames, (int64_t)(in_len / (size_t)n_signals));
    const uint8_t *q = in;
    for (int64_t f = 0; f < frames; f++)
        for (int s = 0; s < n_signals; s++)
            out[s][f] = from80(*q++);
    return frames;
}

int ct_wfdb_checksum16(const int16_t *samples, int64_t n)
{
    uint32_t sum = 0; /* unsigned: wrap-around is the point, and defined */
    for (int64_t i = 0; samples && i < n; i++)
        sum += (uint32_t)(int32_t)samples[i];
    unsigned u = sum & 0xffffu;
    return u >= 0x8000u ? (int)u - 0x10000 : (int)u;
}

/* ---- reading a record -------------------------------------------------------- */

/* The value a format stores for a missing sample (what WFDB sums). */
static int raw_invalid(int format)
{
    return format == 212 ? -2048 : format == 80 ? -128 : CT_WFDB_INVALID_SAMPLE;
}

/* WFDB's checksum over the values as stored in the file: the kernels turned
 * each format's marker into CT_WFDB_INVALID_SAMPLE, so count those and put
 * the stored value back into the sum. */
static int stored_checksum(const int16_t *x, int64_t n, int format)
{
    uint32_t sum = 0, n_invalid = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += (uint32_t)(int32_t)x[i];
        n_invalid += x[i] == CT_WFDB_INVALID_SAMPLE;
    }
    sum += n_invalid * (uint32_t)(raw_invalid(format) - CT_WFDB_INVALID_SAMPLE);
    unsigned u = sum & 0xffffu;
    return u >= 0x8000u ? (int)u - 0x10000 : (int)u;
}

/* Bytes that `samples` samples (of all signals of one file) occupy. */
static int64_t bytes_for(int format, int64_t samples)
{
    switch (format) {
    case 212: return (samples * 3 + 1) / 2;
    case 16: return samples * 2;
    default: return samples;
    }
}

/* Whole samples held by `bytes` bytes, or -1 if they cannot end there. */
static int64_t samples_in(int format, int64_t bytes)
{
    switch (format) {
    case 212: return bytes % 3 == 1 ? -1 : bytes / 3 * 2 + (bytes % 3 == 2);
    case 16: return bytes % 2 ? -1 : bytes / 2;
    default: return bytes;
    }
}

/* An odd number of 212 samples ends in two bytes, but a writer that pads to
 * whole triples is as right; both sizes are accepted. */
static int size_matches(int format, int64_t samples, int64_t bytes)
{
    int64_t want = bytes_for(format, samples);
    return bytes == want || (format == 212 && (samples & 1) && bytes == want + 1);
}

typedef struct group {
    int first, count; /* signals [first, first + count) live in this file */
    FILE *f;
    int64_t file_bytes;
} group;

typedef struct rctx {
    const ct_wfdb_header *hdr;
    ct_error *err;
} rctx;

static int rfail(const rctx *c, int code, const char *fmt, ...) CT_PRINTF(3, 4);
static int rfail(const rctx *c, int code, const char *fmt, ...)
{
    char msg[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ct_error_set(c->err, code, "record %s: %s", c->hdr->record_name, msg);
}

/* "signal 0 (MLII)" or "signal 3" */
static const char *signal_label(const ct_wfdb_header *h, int s, char *buf, size_t cap)
{
    const char *d = h->signals[s].description;
    if (d[0])
        snprintf(buf, cap, "signal %d (%.*s)", s, (int)strnlen(d, sizeof h->signals[s].description),
                 d);
    else
        snprintf(buf, cap, "signal %d", s);
    return buf;
}

static int plain_file_name(const char *name)
{
    return name[0] && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
           !strchr(name, '/') && !strchr(name, '\\');
}

/* The header may come from a caller rather than from our parser: check
 * again everything the reader relies on. Fills groups, returns their count. */
static int plan_groups(const rctx *c, group *groups, int *n_groups)
{
    const ct_wfdb_header *h = c->hdr;
    if (h->n_signals < 0 || h->n_signals > CT_WFDB_MAX_SIGNALS)
        return rfail(c, CT_EINVAL, "%d signals, expected 0..%d", h->n_signals,
                     CT_WFDB_MAX_SIGNALS);
    if (h->n_samples < -1)
        return rfail(c, CT_EINVAL, "number of samples %lld is negative",
                     (long long)h->n_samples);
    if (h->n_samples > ((int64_t)1 << 48)) /* keeps every size product below 2^63 */
        return rfail(c, CT_ELIMIT, "number of samples %lld is absurd", (long long)h->n_samples);
    int ng = 0;
    for (int s = 0; s < h->n_signals; s++) {
        const ct_wfdb_signal *sig = &h->signals[s];
        char label[200];
        signal_label(h, s, label, sizeof label);
        if (sig->format != 212 && sig->format != 16 && sig->format != 80)
            return rfail(c, CT_EUNSUPPORTED, "%s: format %d is not supported (only 212, 16 "
                         "and 80 are)", label, sig->format);
        if (sig->samples_per_frame != 1)
            return rfail(c, CT_EUNSUPPORTED, "%s: %d samples per frame is not supported",
                         label, sig->samples_per_frame);
        if (sig->skew != 0)
            return rfail(c, CT_EUNSUPPORTED, "%s: skew %d is not supported", label, sig->skew);
        if (sig->block_size != 0)
            return rfail(c, CT_EUNSUPPORTED, "%s: block size %d is not supported", label,
                         sig->block_size);
        if (sig->byte_offset < 0)
            return rfail(c, CT_EINVAL, "%s: byte offset %lld is negative", label,
                         (long long)sig->byte_offset);
        if (!memchr(sig->file_name, '\0', sizeof sig->file_name) ||
            !plain_file_name(sig->file_name))
            return rfail(c, CT_EUNSUPPORTED, "%s: file name '%.64s' is not a plain name "
                         "beside the header", label, sig->file_name);
        if (ng > 0 && strcmp(sig->file_name, h->signals[groups[ng - 1].first].file_name) == 0) {
            const ct_wfdb_signal *lead = &h->signals[groups[ng - 1].first];
            if (sig->format != lead->format || sig->byte_offset != lead->byte_offset)
                return rfail(c, CT_EFORMAT, "%s: shares %s with signal %d but not its format "
                             "and byte offset", label, sig->file_name, groups[ng - 1].first);
            groups[ng - 1].count++;
            continue;
        }
        for (int g = 0; g < ng; g++)
            if (strcmp(sig->file_name, h->signals[groups[g].first].file_name) == 0)
                return rfail(c, CT_EFORMAT, "%s: uses %s again after another file", label,
                             sig->file_name);
        groups[ng].first = s;
        groups[ng].count = 1;
        groups[ng].f = NULL;
        groups[ng].file_bytes = 0;
        ng++;
    }
    *n_groups = ng;
    return 0;
}

/* Opens each file and settles the number of frames: the header's, checked
 * against every file's size, or (when the header omits it) the files' own. */
static int open_and_size(const rctx *c, const char *record_path, group *groups, int ng,
                         int64_t *n_frames)
{
    const ct_wfdb_header *h = c->hdr;
    int64_t frames = h->n_samples;
    const char *frames_from = NULL;
    for (int g = 0; g < ng; g++) {
        const ct_wfdb_signal *lead = &h->signals[groups[g].first];
        char path[4096];
        if (ct_wfdb_io_sibling(path, sizeof path, record_path, lead->file_name, "") != 0)
            return rfail(c, CT_EINVAL, "path of %s is too long", lead->file_name);
        groups[g].f = fopen(path, "rb");
        if (!groups[g].f) {
            int e = errno;
            return rfail(c, e == ENOENT ? CT_ENOTFOUND : CT_EIO, "cannot open %s: %s", path,
                         strerror(e));
        }
        struct stat st;
        if (fstat(fileno(groups[g].f), &st) != 0 || !S_ISREG(st.st_mode))
            return rfail(c, CT_EIO, "%s is not a regular file", path);
        int64_t size = (int64_t)st.st_size;
        groups[g].file_bytes = size;
        if (size > CT_WFDB_MAX_DAT_BYTES)
            return rfail(c, CT_ELIMIT, "%s is %lld bytes, more than the %lld we read",
                         lead->file_name, (long long)size, (long long)CT_WFDB_MAX_DAT_BYTES);
        int64_t data = size - lead->byte_offset;
        if (data < 0)
            return rfail(c, CT_EFORMAT, "%s is %lld bytes, shorter than its byte offset %lld",
                         lead->file_name, (long long)size, (long long)lead->byte_offset);
        int per_frame = groups[g].count;
        if (h->n_samples >= 0) {
            int64_t samples = h->n_samples * per_frame;
            int64_t want = lead->byte_offset + bytes_for(lead->format, samples);
            if (!size_matches(lead->format, samples, data)) {
                if (size < want)
                    return rfail(c, CT_EFORMAT, "%s is %lld bytes, header promises %lld",
                                 lead->file_name, (long long)size, (long long)want);
                return rfail(c, CT_EFORMAT, "%s is %lld bytes, header promises %lld (%lld "
                             "bytes too many)", lead->file_name, (long long)size,
                             (long long)want, (long long)(size - want));
            }
            continue;
        }
        int64_t samples = samples_in(lead->format, data);
        int64_t mine = samples < 0 ? -1 : samples / per_frame;
        if (mine < 0 || !size_matches(lead->format, mine * per_frame, data))
            return rfail(c, CT_EFORMAT, "%s holds %lld bytes after its %lld-byte offset, not a "
                         "whole number of frames of %d format-%d signals", lead->file_name,
                         (long long)data, (long long)lead->byte_offset, per_frame,
                         lead->format);
        if (frames_from && mine != frames)
            return rfail(c, CT_EFORMAT, "%s holds %lld samples per signal but %s holds %lld",
                         lead->file_name, (long long)mine, frames_from, (long long)frames);
        frames = mine;
        frames_from = lead->file_name;
    }
    *n_frames = frames < 0 ? 0 : frames;
    return 0;
}

static int read_and_decode(const rctx *c, group *gr, int64_t n_frames, ct_wfdb_signals *out)
{
    const ct_wfdb_signal *lead = &c->hdr->signals[gr->first];
    int64_t need = bytes_for(lead->format, n_frames * gr->count);
    if (need == 0)
        return 0;
    uint8_t *buf = malloc((size_t)need);
    if (!buf)
        return rfail(c, CT_ENOMEM, "no memory for %lld bytes of %s", (long long)need,
                     lead->file_name);
    size_t got = 0;
    if (fseeko(gr->f, (off_t)lead->byte_offset, SEEK_SET) == 0)
        got = fread(buf, 1, (size_t)need, gr->f);
    if (got != (size_t)need) {
        free(buf);
        return rfail(c, CT_EIO, "read %zu of %lld bytes of %s", got, (long long)need,
                     lead->file_name);
    }
    int64_t done;
    int16_t *const *dst = out->samples + gr->first;
    switch (lead->format) {
    case 212: done = ct_wfdb_decode_212(buf, (size_t)need, gr->count, n_frames, dst); break;
    case 16: done = ct_wfdb_decode_16(buf, (size_t)need, gr->count, n_frames, dst); break;
    default: done = ct_wfdb_decode_80(buf, (size_t)need, gr->count, n_frames, dst); break;
    }
    free(buf);
    if (done != n_frames) /* cannot happen: the buffer was sized for n_frames */
        return rfail(c, CT_EFORMAT, "%s decoded %lld of %lld frames", lead->file_name,
                     (long long)done, (long long)n_frames);
    return 0;
}

static int verify(const rctx *c, const ct_wfdb_signals *out)
{
    const ct_wfdb_header *h = c->hdr;
    for (int s = 0; s < h->n_signals; s++) {
        const ct_wfdb_signal *sig = &h->signals[s];
        const int16_t *x = out->samples[s];
        char label[200];
        signal_label(h, s, label, sizeof label);
        if (sig->has_initial_value && out->n_samples > 0) {
            int first = x[0] == CT_WFDB_INVALID_SAMPLE ? raw_invalid(sig->format) : x[0];
            if (first != sig->initial_value)
                return rfail(c, CT_ECHECKSUM, "%s: first sample %d in data, header says %d",
                             label, first, sig->initial_value);
        }
        if (sig->has_checksum) {
            int sum = stored_checksum(x, out->n_samples, sig->format);
            /* WFDB compares modulo 2^16: a header may write the sum unsigned. */
            if (((unsigned)sum - (unsigned)sig->checksum) & 0xffffu)
                return rfail(c, CT_ECHECKSUM, "%s: checksum %d in data, header says %d", label,
                             sum, sig->checksum);
        }
    }
    return 0;
}

int ct_wfdb_signals_read(const char *record_path, const ct_wfdb_header *hdr,
                         ct_wfdb_signals *out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_signals_read: nowhere to put the signals");
    memset(out, 0, sizeof *out);
    if (!record_path || !hdr)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_signals_read: no record path or header");
    if (!memchr(hdr->record_name, '\0', sizeof hdr->record_name))
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_signals_read: record name not terminated");

    rctx c = {hdr, err};
    group groups[CT_WFDB_MAX_SIGNALS];
    int ng = 0;
    int64_t n_frames = 0;
    int rc = plan_groups(&c, groups, &ng);
    if (rc == 0)
        rc = open_and_size(&c, record_path, groups, ng, &n_frames);
    if (rc == 0) {
        out->n_signals = hdr->n_signals;
        out->n_samples = n_frames;
        for (int s = 0; s < hdr->n_signals && rc == 0; s++) {
            out->samples[s] = malloc(n_frames > 0 ? (size_t)n_frames * sizeof(int16_t) : 1);
            if (!out->samples[s])
                rc = rfail(&c, CT_ENOMEM, "no memory for %lld samples", (long long)n_frames);
        }
    }
    for (int g = 0; g < ng && rc == 0; g++)
        rc = read_and_decode(&c, &groups[g], n_frames, out);
    for (int g = 0; g < ng; g++)
        if (groups[g].f)
            fclose(groups[g].f);
    if (rc == 0)
        rc = verify(&c, out);
    if (rc != 0)
        ct_wfdb_signals_free(out);
    return rc;
}

void ct_wfdb_signals_free(ct_wfdb_signals *s)
{
    if (!s)
        return;
    for (int i = 0; i < CT_WFDB_MAX_SIGNALS; i++)
        free(s->samples[i]);
    memset(s, 0, sizeof *s);
}
