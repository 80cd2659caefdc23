/* wfdb room, annotations: reads and writes MIT-format annotation files
 * (RECORD.ANNOTATOR, e.g. 100.atr), the format of PhysioNet's reference beat
 * labels and of what rdann, bxb and friends read.
 *
 * The one idea: the file is a stream of 16-bit little-endian words, each with
 * a 6-bit code on top and 10 bits of data below. Codes 1..49 are annotations
 * whose data is the time since the previous one; codes 59..63 are
 * pseudo-annotations: SKIP (a 32-bit interval, high half first, for gaps over
 * 1023 samples or going back), NUM, SUB and CHN (set the num, subtyp and chan
 * fields of the annotation just read) and AUX (a length, then that many bytes
 * padded to even). A zero word ends the file. As in WFDB's getann(), `num` and
 * `chan` carry over to the following annotations until changed, `subtype` and
 * `aux` do not; the encoder mirrors putann() choice for choice (NUM and CHN
 * only on change, SUB when nonzero, SKIP when the step is over 1023 or
 * negative, a SKIP-then-1 trick for code 0), so that a file written by WFDB
 * comes back byte for byte.
 *
 * Stricter than WFDB: a pseudo-annotation before the first annotation, codes
 * 50..58, an AUX longer than 255 bytes, a negative time, a file cut before its
 * end marker and bytes after it are all errors, where WFDB would make up
 * annotations or stop silently. */
#include "cardiotwin/wfdb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

enum { A_SKIP = 59, A_NUM = 60, A_SUB = 61, A_CHN = 62, A_AUX = 63 };
enum { MAX_RR = 1023 };                 /* largest step one annotation word holds */
#define MAX_SKIP ((int64_t)0x7fffffff) /* largest step one SKIP holds, either way */

/* WFDB's mnemonics (annot.c, cstring[]): undefined codes print as "[n]". */
static const char *const mnemonics[CT_ANN_ACMAX + 1] = {
    " ",    "N",    "L",    "R",    "a",    "V",    "F",    "J",    "A",    "S",
    "E",    "j",    "/",    "Q",    "~",    "[15]", "|",    "[17]", "s",    "T",
    "*",    "D",    "\"",   "=",    "p",    "B",    "^",    "t",    "+",    "u",
    "?",    "!",    "[",    "]",    "e",    "n",    "@",    "x",    "f",    "(",
    ")",    "r",    "[42]", "[43]", "[44]", "[45]", "[46]", "[47]", "[48]", "[49]",
};

/* WFDB's isqrs table (ecgmap.h): 1-13, 25, 30, 31, 34, 35, 38, 41. */
static const unsigned char beats[CT_ANN_ACMAX + 1] = {
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, /*  0 -  9 */
    1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 10 - 19 */
    0, 0, 0, 0, 0, 1, 0, 0, 0, 0, /* 20 - 29 */
    1, 1, 0, 0, 1, 1, 0, 0, 1, 0, /* 30 - 39 */
    0, 1, 0, 0, 0, 0, 0, 0, 0, 0, /* 40 - 49 */
};

const char *ct_wfdb_ann_mnemonic(int code)
{
    return code >= 0 && code <= CT_ANN_ACMAX ? mnemonics[code] : "?";
}

int ct_wfdb_ann_code(const char *mnemonic)
{
    if (!mnemonic)
        return -1;
    for (int c = 0; c <= CT_ANN_ACMAX; c++)
        if (strcmp(mnemonic, mnemonics[c]) == 0)
            return c;
    return -1;
}

int ct_wfdb_ann_is_beat(int code)
{
    return code >= 0 && code <= CT_ANN_ACMAX ? beats[code] : 0;
}

/* ---- reading ----------------------------------------------------------------- */

static int afail(ct_error *err, int code, const char *name, const char *fmt, ...) CT_PRINTF(4, 5);
static int afail(ct_error *err, int code, const char *name, const char *fmt, ...)
{
    char msg[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ct_error_set(err, code, "%s: %s", name, msg);
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] | ((unsigned)p[1] << 8);
}

/* The low 8 bits as a signed char, as WFDB's signed char fields keep them. */
static int low_s8(unsigned data)
{
    int x = (int)(data & 0xffu);
    return x >= 128 ? x - 256 : x;
}

static const char *pseudo_name(unsigned code)
{
    switch (code) {
    case A_NUM: return "NUM";
    case A_SUB: return "SUB";
    case A_CHN: return "CHN";
    default: return "AUX";
    }
}

int ct_wfdb_ann_parse(const uint8_t *buf, size_t len, const char *name, ct_wfdb_annotation **out,
                      size_t *n_out, ct_error *err)
{
    if (!out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_ann_parse: nowhere to put annotations");
    *out = NULL;
    *n_out = 0;
    if (!name)
        name = "annotation file";
    if (!buf && len)
        return ct_error_set(err, CT_EINVAL, "%s: no buffer", name);
    if ((uint64_t)len > (uint64_t)CT_WFDB_MAX_ANN_BYTES)
        return afail(err, CT_ELIMIT, name, "%zu bytes, more than the %lld allowed", len,
                     (long long)CT_WFDB_MAX_ANN_BYTES);

    ct_wfdb_annotation *v = NULL;
    size_t n = 0, cap = 0, pos = 0;
    int64_t t = 0; /* time of the next annotation, before its own step */
    int num = 0, chan = 0;
    int rc = 0;
    for (;;) {
        if (len - pos < 2) {
            if (pos == len)
                rc = afail(err, CT_EFORMAT, name, "ends at byte %zu without its end-of-file "
                           "marker (a zero word): the file is truncated", pos);
            else
                rc = afail(err, CT_EFORMAT, name, "ends in the middle of a word at byte %zu: "
                           "the file is truncated", pos);
            break;
        }
        size_t at = pos;
        unsigned w = get16(buf + pos);
        pos += 2;
        if (w == 0)
            break;
        unsigned code = w >> 10, data = w & 0x3ffu;
        if (code == A_SKIP) {
            if (len - pos < 4) {
                rc = afail(err, CT_EFORMAT, name, "SKIP at byte %zu is cut short by the end of "
                           "the file", at);
                break;
            }
            uint32_t u = ((uint32_t)get16(buf + pos) << 16) | get16(buf + pos + 2);
            pos += 4;
            t += u >= 0x80000000u ? (int64_t)u - ((int64_t)1 << 32) : (int64_t)u;
            continue;
        }
        if (code >= A_NUM) {
            if (n == 0) {
                rc = afail(err, CT_EFORMAT, name, "%s at byte %zu comes before the first "
                           "annotation", pseudo_name(code), at);
                break;
            }
            ct_wfdb_annotation *a = &v[n - 1];
            if (code == A_NUM) {
                a->num = num = low_s8(data);
            } else if (code == A_SUB) {
                a->subtype = low_s8(data);
            } else if (code == A_CHN) {
                a->chan = chan = (int)(data & 0xffu);
            } else {
                if (data > CT_WFDB_MAX_AUX) {
                    rc = afail(err, CT_EFORMAT, name, "AUX at byte %zu claims %u bytes, at most "
                               "%d are possible", at, data, CT_WFDB_MAX_AUX);
                    break;
                }
                size_t padded = (data + 1u) & ~1u;
                if (len - pos < padded) {
                    rc = afail(err, CT_EFORMAT, name, "AUX at byte %zu claims %u bytes but the "
                               "file ends %zu bytes later", at, data, len - pos);
                    break;
                }
                memcpy(a->aux, buf + pos, data);
                a->aux[data] = '\0';
                a->aux_len = (int)data;
                pos += padded;
            }
            continue;
        }
        if (code > CT_ANN_ACMAX) {
            rc = afail(err, CT_EFORMAT, name, "code %u at byte %zu is not an annotation code "
                       "(0..%d, or 59..63)", code, at, CT_ANN_ACMAX);
            break;
        }
        t += data;
        if (t < 0) {
            rc = afail(err, CT_EFORMAT, name, "annotation at byte %zu falls at sample %lld, "
                       "before the start of the record", at, (long long)t);
            break;
        }
        if (n == cap) {
            if (cap >= CT_WFDB_MAX_ANNOTATIONS) {
                rc = afail(err, CT_ELIMIT, name, "more than %d annotations",
                           CT_WFDB_MAX_ANNOTATIONS);
                break;
            }
            size_t ncap = cap ? cap * 2 : 1024;
            if (ncap > CT_WFDB_MAX_ANNOTATIONS)
                ncap = CT_WFDB_MAX_ANNOTATIONS;
            ct_wfdb_annotation *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                rc = afail(err, CT_ENOMEM, name, "no memory for %zu annotations", ncap);
                break;
            }
            v = nv;
            cap = ncap;
        }
        ct_wfdb_annotation *a = &v[n++];
        a->sample = t;
        a->code = (int)code;
        a->subtype = 0;
        a->chan = chan;
        a->num = num;
        a->aux_len = 0;
        a->aux[0] = '\0';
    }
    if (rc == 0 && pos != len)
        rc = afail(err, CT_EFORMAT, name, "%zu bytes follow the end-of-file marker at byte %zu",
                   len - pos, pos - 2);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *out = v;
    *n_out = n;
    return 0;
}

static int plain_name(const char *s, size_t max)
{
    size_t n = s ? strnlen(s, max + 1) : 0;
    return n > 0 && n <= max && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && !strchr(s, '/') &&
           !strchr(s, '\\');
}

int ct_wfdb_ann_read(const char *record_path, const char *annotator, ct_wfdb_annotation **out,
                     size_t *n_out, ct_error *err)
{
    if (out)
        *out = NULL;
    if (n_out)
        *n_out = 0;
    if (!record_path || !out || !n_out)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_ann_read: missing argument");
    const char *rec = ct_wfdb_io_basename(record_path);
    if (!*rec)
        return ct_error_set(err, CT_EINVAL, "record path '%s' has no record name", record_path);
    if (!plain_name(annotator, 64))
        return ct_error_set(err, CT_EINVAL, "record %s: annotator '%s' is not a plain name",
                            rec, annotator ? annotator : "");
    char path[4096], suffix[80], who[128], name[200];
    snprintf(suffix, sizeof suffix, ".%s", annotator);
    snprintf(who, sizeof who, "record %s", rec);
    snprintf(name, sizeof name, "%s.%s", rec, annotator);
    if (ct_wfdb_io_sibling(path, sizeof path, record_path, rec, suffix) != 0)
        return ct_error_set(err, CT_EINVAL, "%s: record path is too long", who);
    uint8_t *buf;
    size_t len;
    int rc = ct_wfdb_io_read_file(path, who, CT_WFDB_MAX_ANN_BYTES, &buf, &len, err);
    if (rc != 0)
        return rc;
    rc = ct_wfdb_ann_parse(buf, len, name, out, n_out, err);
    free(buf);
    return rc;
}

/* ---- writing ----------------------------------------------------------------- */

/* The encoder runs twice: once with p == NULL to measure, once to write. */
typedef struct emitter {
    uint8_t *p;
    uint64_t n;
} emitter;

static void put16(emitter *e, unsigned w)
{
    if (e->p) {
        e->p[e->n] = (uint8_t)(w & 0xffu);
        e->p[e->n + 1] = (uint8_t)((w >> 8) & 0xffu);
    }
    e->n += 2;
}

/* v is within [-2^31, 2^31 - 1]: PDP-11 order, high 16 bits first. */
static void put_skip(emitter *e, int64_t v)
{
    uint32_t u = (uint32_t)v;
    put16(e, (unsigned)A_SKIP << 10);
    put16(e, u >> 16);
    put16(e, u & 0xffffu);
}

/* Steps beyond a SKIP's reach take whole SKIPs of MAX_SKIP first, as in
 * putann(); the measuring pass counts them without looping. */
static void put_long_steps(emitter *e, int64_t *delta)
{
    uint64_t k = 0;
    if (*delta > MAX_SKIP)
        k = (uint64_t)(*delta - 1) / (uint64_t)MAX_SKIP;
    else if (*delta < -MAX_SKIP)
        k = (uint64_t)(-(*delta + 1)) / (uint64_t)MAX_SKIP;
    if (k == 0)
        return;
    int64_t step = *delta > 0 ? MAX_SKIP : -MAX_SKIP;
    if (e->p) {
        for (uint64_t i = 0; i < k; i++)
            put_skip(e, step);
    } else {
        e->n += 6 * k;
    }
    *delta -= (int64_t)k * step;
}

static int check_annotation(const ct_wfdb_annotation *a, size_t i, ct_error *err)
{
    const char *bad = NULL;
    if (a->sample < 0)
        bad = "sample is negative";
    else if (a->code < 0 || a->code > CT_ANN_ACMAX)
        bad = "code is outside 0..49";
    else if (a->subtype < -128 || a->subtype > 127)
        bad = "subtype is outside -128..127";
    else if (a->chan < 0 || a->chan > 255)
        bad = "chan is outside 0..255";
    else if (a->num < -128 || a->num > 127)
        bad = "num is outside -128..127";
    else if (a->aux_len < 0 || a->aux_len > CT_WFDB_MAX_AUX)
        bad = "aux_len is outside 0..255";
    if (bad)
        return ct_error_set(err, CT_EINVAL, "annotation %zu (sample %lld, code %d): %s", i,
                            (long long)a->sample, a->code, bad);
    return 0;
}

static int emit_all(emitter *e, const ct_wfdb_annotation *ann, size_t n, ct_error *err)
{
    int64_t prev_t = 0;
    int prev_chan = 0, prev_num = 0;
    for (size_t i = 0; i < n; i++) {
        const ct_wfdb_annotation *a = &ann[i];
        int rc = check_annotation(a, i, err);
        if (rc != 0)
            return rc;
        int64_t delta = a->sample - prev_t;
        put_long_steps(e, &delta);
        if (a->code == 0) {
            /* A zero word would read as the end of the file: step to one
             * sample before, then write the annotation one sample on. */
            put_skip(e, delta - 1);
            delta = 1;
        } else if (delta > MAX_RR || delta < 0) {
            put_skip(e, delta);
            delta = 0;
        }
        put16(e, (unsigned)delta | ((unsigned)a->code << 10));
        if (a->subtype != 0)
            put16(e, ((unsigned)A_SUB << 10) | ((unsigned)a->subtype & 0x3ffu));
        if (a->chan != prev_chan)
            put16(e, ((unsigned)A_CHN << 10) | ((unsigned)a->chan & 0x3ffu));
        if (a->num != prev_num)
            put16(e, ((unsigned)A_NUM << 10) | ((unsigned)a->num & 0x3ffu));
        if (a->aux_len > 0) {
            put16(e, ((unsigned)A_AUX << 10) | (unsigned)a->aux_len);
            if (e->p)
                memcpy(e->p + e->n, a->aux, (size_t)a->aux_len);
            e->n += (uint64_t)a->aux_len;
            if (a->aux_len & 1) {
                if (e->p)
                    e->p[e->n] = 0;
                e->n++;
            }
        }
        prev_t = a->sample;
        prev_chan = a->chan;
        prev_num = a->num;
        if (e->n > (uint64_t)CT_WFDB_MAX_ANN_BYTES)
            return ct_error_set(err, CT_ELIMIT, "annotations encode to more than the %lld bytes "
                                "an annotation file may hold", (long long)CT_WFDB_MAX_ANN_BYTES);
    }
    put16(e, 0);
    return 0;
}

int ct_wfdb_ann_encode(const ct_wfdb_annotation *ann, size_t n, uint8_t **buf, size_t *len,
                       ct_error *err)
{
    if (!buf || !len)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_ann_encode: nowhere to put the bytes");
    *buf = NULL;
    *len = 0;
    if (!ann && n)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_ann_encode: no annotations");
    emitter measure = {NULL, 0};
    int rc = emit_all(&measure, ann, n, err);
    if (rc != 0)
        return rc;
    uint8_t *out = malloc((size_t)measure.n);
    if (!out)
        return ct_error_set(err, CT_ENOMEM, "no memory for %llu bytes of annotations",
                            (unsigned long long)measure.n);
    emitter write = {out, 0};
    rc = emit_all(&write, ann, n, err);
    if (rc != 0 || write.n != measure.n) { /* the two passes must agree */
        free(out);
        return rc ? rc : ct_error_set(err, CT_EINVAL, "annotation encoder passes disagree");
    }
    *buf = out;
    *len = (size_t)write.n;
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ct_wfdb_ann_write(const char *dir, const char *record_name, const char *annotator,
                      const ct_wfdb_annotation *ann, size_t n, ct_error *err)
{
    if (!dir || !*dir)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_ann_write: no folder");
    if (!plain_name(record_name, 63))
        return ct_error_set(err, CT_EINVAL, "record name '%s' is not a plain name",
                            record_name ? record_name : "");
    if (!plain_name(annotator, 64))
        return ct_error_set(err, CT_EINVAL, "record %s: annotator '%s' is not a plain name",
                            record_name, annotator ? annotator : "");
    uint8_t *bytes;
    size_t len;
    int rc = ct_wfdb_ann_encode(ann, n, &bytes, &len, err);
    if (rc != 0)
        return ct_error_prefix(err, "record %s, annotator %s", record_name, annotator);

    char path[4096], tmp[4200];
    int pn = snprintf(path, sizeof path, "%s/%s.%s", dir, record_name, annotator);
    if (pn < 0 || (size_t)pn >= sizeof path) {
        free(bytes);
        return ct_error_set(err, CT_EINVAL, "record %s: folder path is too long", record_name);
    }
    snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(bytes);
        return ct_error_set(err, CT_EIO, "record %s: cannot create a file in %s: %s",
                            record_name, dir, strerror(e));
    }
    /* Written whole to a temporary file, flushed to disk, then renamed over
     * the target: a reader sees the old file or the new one, never half. */
    int failed = write_all(fd, bytes, len) != 0 || fsync(fd) != 0 || fchmod(fd, 0644) != 0;
    int e = errno;
    free(bytes);
    if (close(fd) != 0 && !failed) {
        failed = 1;
        e = errno;
    }
    if (!failed && rename(tmp, path) != 0) {
        failed = 1;
        e = errno;
    }
    if (failed) {
        unlink(tmp);
        return ct_error_set(err, CT_EIO, "record %s: cannot write %s: %s", record_name, path,
                            strerror(e));
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) { /* make the rename itself durable */
        int sync_failed = fsync(dfd) != 0;
        e = errno;
        close(dfd);
        if (sync_failed)
            return ct_error_set(err, CT_EIO, "record %s: wrote %s but could not sync %s: %s",
                                record_name, path, dir, strerror(e));
    }
    return 0;
}
