/* wfdb room, headers: parses a WFDB header (RECORD.hea) into ct_wfdb_header.
 *
 * The one idea: a header is a record line followed by one line per signal,
 * with '#' comment lines and blank lines allowed anywhere; every field after
 * the first few is optional and takes WFDB's default when absent (fs 250 Hz,
 * gain 200 ADC units per mV, baseline = ADC zero, units "mV"). WFDB itself
 * reads fields with atoi()/strtod() and accepts "2x0" as 2; we accept exactly
 * the grammar of WFDB's header(5) page and refuse anything else with a message
 * naming the record, the line and the field, because a misread gain or
 * checksum silently corrupts everything downstream.
 *
 * Numbers are parsed by hand rather than with strtod(), so that a process
 * that calls setlocale() with a decimal comma still reads "360.5" right. */
#include "cardiotwin/wfdb.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* A slice of the header text: tokens are never copied until they are known
 * to fit their destination. */
typedef struct span {
    const char *p;
    size_t n;
} span;

typedef struct pctx {
    const char *rec; /* record name for messages */
    int line;        /* 1-based line number of the line being parsed */
    ct_error *err;
} pctx;

static int failf(const pctx *c, int code, const char *fmt, ...) CT_PRINTF(3, 4);
static int failf(const pctx *c, int code, const char *fmt, ...)
{
    char msg[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ct_error_set(c->err, code, "record %s: line %d: %s", c->rec, c->line, msg);
}

/* A token as it may appear in a message: at most 40 bytes, control bytes
 * shown as '?', so that a hostile header cannot forge extra log lines. */
typedef struct shown {
    char s[48];
} shown;

static shown show(span t)
{
    shown out;
    size_t n = t.n > 40 ? 40 : t.n;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)t.p[i];
        out.s[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (t.n > 40) {
        memcpy(out.s + n, "...", 3);
        n += 3;
    }
    out.s[n] = '\0';
    return out;
}

static int is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static int next_token(span *rest, span *tok)
{
    const char *p = rest->p, *e = rest->p + rest->n;
    while (p < e && is_blank(*p))
        p++;
    const char *q = p;
    while (q < e && !is_blank(*q))
        q++;
    tok->p = p;
    tok->n = (size_t)(q - p);
    rest->p = q;
    rest->n = (size_t)(e - q);
    return tok->n > 0;
}

static span trim(span t)
{
    while (t.n && is_blank(t.p[0])) {
        t.p++;
        t.n--;
    }
    while (t.n && (is_blank(t.p[t.n - 1]) || t.p[t.n - 1] == '\r'))
        t.n--;
    return t;
}

static span sub(span t, size_t from, size_t to)
{
    span s = {t.p + from, to - from};
    return s;
}

static size_t find_char(span t, size_t from, char ch)
{
    for (size_t i = from; i < t.n; i++)
        if (t.p[i] == ch)
            return i;
    return t.n;
}

enum { NUM_OK = 0, NUM_SYNTAX = -1, NUM_RANGE = -2 };

/* A whole span as a decimal integer (optional sign) within [lo, hi]. */
static int span_int(span t, int64_t lo, int64_t hi, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (t.n && (t.p[0] == '+' || t.p[0] == '-')) {
        neg = t.p[0] == '-';
        i = 1;
    }
    if (i == t.n)
        return NUM_SYNTAX;
    uint64_t v = 0;
    int overflow = 0;
    for (; i < t.n; i++) {
        char ch = t.p[i];
        if (ch < '0' || ch > '9')
            return NUM_SYNTAX;
        if (v > (UINT64_MAX - 9) / 10)
            overflow = 1;
        else
            v = v * 10 + (uint64_t)(ch - '0');
    }
    if (overflow || v > (uint64_t)INT64_MAX)
        return NUM_RANGE;
    int64_t s = neg ? -(int64_t)v : (int64_t)v;
    if (s < lo || s > hi)
        return NUM_RANGE;
    *out = s;
    return NUM_OK;
}

/* A whole span as a finite decimal real: [sign] digits [. digits] [e [sign] digits]. */
static int span_real(span t, double *out)
{
    static const double p10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                 1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = 0;
    int neg = 0;
    if (t.n && (t.p[0] == '+' || t.p[0] == '-')) {
        neg = t.p[0] == '-';
        i = 1;
    }
    uint64_t mant = 0;
    int sig = 0, digits = 0;
    long exp10 = 0;
    for (; i < t.n && t.p[i] >= '0' && t.p[i] <= '9'; i++, digits++) {
        if (sig < 18) {
            mant = mant * 10 + (uint64_t)(t.p[i] - '0');
            if (mant)
                sig++;
        } else {
            exp10++;
        }
    }
    if (i < t.n && t.p[i] == '.') {
        for (i++; i < t.n && t.p[i] >= '0' && t.p[i] <= '9'; i++, digits++) {
            if (sig < 18) {
                mant = mant * 10 + (uint64_t)(t.p[i] - '0');
                if (mant)
                    sig++;
                exp10--;
            }
        }
    }
    if (!digits)
        return NUM_SYNTAX;
    if (i < t.n && (t.p[i] == 'e' || t.p[i] == 'E')) {
        i++;
        int eneg = 0;
        if (i < t.n && (t.p[i] == '+' || t.p[i] == '-')) {
            eneg = t.p[i] == '-';
            i++;
        }
        long e = 0;
        int edigits = 0;
        for (; i < t.n && t.p[i] >= '0' && t.p[i] <= '9'; i++, edigits++)
            if (e < 100000)
                e = e * 10 + (t.p[i] - '0');
        if (!edigits)
            return NUM_SYNTAX;
        exp10 += eneg ? -e : e;
    }
    if (i != t.n)
        return NUM_SYNTAX;
    double v = (double)mant;
    if (mant == 0 || exp10 < -400) {
        v = 0.0;
    } else if (exp10 > 400) {
        return NUM_RANGE;
    } else if (exp10 > 0) {
        for (; exp10 > 22; exp10 -= 22)
            v *= p10[22];
        v *= p10[exp10];
    } else {
        for (; exp10 < -22; exp10 += 22)
            v /= p10[22];
        v /= p10[-exp10];
    }
    if (!isfinite(v))
        return NUM_RANGE;
    *out = neg ? -v : v;
    return NUM_OK;
}

static int copy_span(char *dst, size_t cap, span t)
{
    if (t.n >= cap)
        return -1;
    memcpy(dst, t.p, t.n);
    dst[t.n] = '\0';
    return 0;
}

static int only_chars(span t, const char *allowed)
{
    for (size_t i = 0; i < t.n; i++)
        if (!t.p[i] || !strchr(allowed, t.p[i]))
            return 0;
    return 1;
}

/* An integer field of a signal line; `what` names it in messages. */
static int signal_int(const pctx *c, int s, const char *what, span t, int64_t lo, int64_t hi,
                      int64_t *out)
{
    int rc = span_int(t, lo, hi, out);
    if (rc == NUM_SYNTAX)
        return failf(c, CT_EFORMAT, "signal %d: %s '%s' is not an integer", s, what, show(t).s);
    if (rc == NUM_RANGE)
        return failf(c, CT_EFORMAT, "signal %d: %s '%s' is outside %lld..%lld", s, what,
                     show(t).s, (long long)lo, (long long)hi);
    return 0;
}

/* ---- record line: name[/nseg] nsig [fs[/cfreq[(base)]] [nsamp [time [date]]]] ---- */

static int parse_frequencies(const pctx *c, span t, ct_wfdb_header *h)
{
    size_t slash = find_char(t, 0, '/');
    span fs = sub(t, 0, slash);
    double v;
    int rc = span_real(fs, &v);
    if (rc != NUM_OK)
        return failf(c, CT_EFORMAT, "sampling frequency '%s' is not a number", show(fs).s);
    if (!(v > 0.0))
        return failf(c, CT_EFORMAT, "sampling frequency %s must be above 0 Hz", show(fs).s);
    if (v > 1e6)
        return failf(c, CT_EFORMAT, "sampling frequency %s Hz is absurd (above 1e6)",
                     show(fs).s);
    h->fs_hz = v;
    if (slash == t.n)
        return 0;

    size_t paren = find_char(t, slash + 1, '(');
    span cf = sub(t, slash + 1, paren);
    rc = span_real(cf, &v);
    if (rc != NUM_OK)
        return failf(c, CT_EFORMAT, "counter frequency '%s' is not a number", show(cf).s);
    if (!(v > 0.0))
        return failf(c, CT_EFORMAT, "counter frequency %s must be above 0", show(cf).s);
    h->counter_freq_hz = v;
    if (paren == t.n)
        return 0;
    if (t.p[t.n - 1] != ')' || t.n - 1 <= paren)
        return failf(c, CT_EFORMAT, "base counter in '%s' lacks its closing ')'", show(t).s);
    span bc = sub(t, paren + 1, t.n - 1);
    if (span_real(bc, &v) != NUM_OK)
        return failf(c, CT_EFORMAT, "base counter '%s' is not a number", show(bc).s);
    h->base_counter = v;
    return 0;
}

static int parse_record_line(pctx *c, span line, const char *expect, ct_wfdb_header *h)
{
    span rest = line, tok;
    next_token(&rest, &tok);

    size_t slash = find_char(tok, 0, '/');
    span name = sub(tok, 0, slash);
    if (slash < tok.n) {
        span nseg = sub(tok, slash + 1, tok.n);
        int64_t n;
        if (span_int(nseg, 0, INT_MAX, &n) != NUM_OK)
            return failf(c, CT_EFORMAT, "number of segments '%s' is not a count",
                         show(nseg).s);
        return failf(c, CT_EUNSUPPORTED, "multi-segment record (%lld segments) is not supported",
                     (long long)n);
    }
    if (name.n == 0)
        return failf(c, CT_EFORMAT, "record name missing before '/'");
    if (copy_span(h->record_name, sizeof h->record_name, name) != 0)
        return failf(c, CT_EFORMAT, "record name '%s' is longer than %zu bytes", show(name).s,
                     sizeof h->record_name - 1);
    if (expect && strcmp(expect, h->record_name) != 0)
        return failf(c, CT_EFORMAT, "header names record '%s', not '%s'", show(name).s, expect);
    if (!expect)
        c->rec = h->record_name;

    if (!next_token(&rest, &tok))
        return failf(c, CT_EFORMAT, "number of signals missing after the record name");
    int64_t nsig;
    int rc = span_int(tok, 0, INT64_MAX, &nsig);
    if (rc == NUM_SYNTAX)
        return failf(c, CT_EFORMAT, "number of signals '%s' is not a count", show(tok).s);
    if (rc == NUM_RANGE)
        return failf(c, CT_EFORMAT, "number of signals '%s' is negative or too large",
                     show(tok).s);
    if (nsig > CT_WFDB_MAX_SIGNALS)
        return failf(c, CT_ELIMIT, "%lld signals, at most %d are supported", (long long)nsig,
                     CT_WFDB_MAX_SIGNALS);
    h->n_signals = (int)nsig;

    if (!next_token(&rest, &tok))
        return 0;
    if ((rc = parse_frequencies(c, tok, h)) != 0)
        return rc;

    if (!next_token(&rest, &tok))
        return 0;
    int64_t ns;
    rc = span_int(tok, INT64_MIN + 1, INT64_MAX, &ns);
    if (rc != NUM_OK)
        return failf(c, CT_EFORMAT, "number of samples '%s' is not a count", show(tok).s);
    if (ns < 0)
        return failf(c, CT_EFORMAT, "number of samples %lld is negative", (long long)ns);
    if (ns > ((int64_t)1 << 48))
        return failf(c, CT_ELIMIT, "number of samples %lld is absurd", (long long)ns);
    h->n_samples = ns;

    if (!next_token(&rest, &tok))
        return 0;
    if (!only_chars(tok, "0123456789:."))
        return failf(c, CT_EFORMAT, "base time '%s' is not hh:mm:ss", show(tok).s);
    if (copy_span(h->base_time, sizeof h->base_time, tok) != 0)
        return failf(c, CT_EFORMAT, "base time '%s' is too long", show(tok).s);

    if (!next_token(&rest, &tok))
        return 0;
    if (!only_chars(tok, "0123456789/"))
        return failf(c, CT_EFORMAT, "base date '%s' is not dd/mm/yyyy", show(tok).s);
    if (copy_span(h->base_date, sizeof h->base_date, tok) != 0)
        return failf(c, CT_EFORMAT, "base date '%s' is too long", show(tok).s);

    if (next_token(&rest, &tok))
        return failf(c, CT_EFORMAT, "unexpected field '%s' after the base date", show(tok).s);
    return 0;
}

/* ---- signal line: file format[xspf][:skew][+offset] [gain[(base)][/units] [adcres
 *      [adczero [initval [checksum [blocksize [description]]]]]]] ---- */

static int known_wfdb_format(int64_t f)
{
    static const int formats[] = {0, 8, 16, 24, 32, 61, 80, 160, 212, 310, 311, 508, 516, 524};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
        if (formats[i] == f)
            return 1;
    return 0;
}

static int parse_format(const pctx *c, int s, span t, ct_wfdb_signal *sig)
{
    size_t i = 0;
    while (i < t.n && t.p[i] >= '0' && t.p[i] <= '9')
        i++;
    int64_t fmt;
    if (i == 0 || span_int(sub(t, 0, i), 0, INT_MAX, &fmt) != NUM_OK)
        return failf(c, CT_EFORMAT, "signal %d: format '%s' is not a number", s, show(t).s);
    int seen_x = 0, seen_skew = 0, seen_off = 0;
    int64_t spf = 1, skew = 0, offset = 0;
    while (i < t.n) {
        char mod = t.p[i++];
        size_t j = i;
        while (j < t.n && t.p[j] >= '0' && t.p[j] <= '9')
            j++;
        span num = sub(t, i, j);
        int64_t v = 0;
        int *seen = mod == 'x' ? &seen_x : mod == ':' ? &seen_skew : mod == '+' ? &seen_off : NULL;
        if (!seen || *seen || span_int(num, 0, INT64_MAX, &v) != NUM_OK)
            return failf(c, CT_EFORMAT,
                         "signal %d: format '%s' is not format[xspf][:skew][+offset]", s,
                         show(t).s);
        *seen = 1;
        if (mod == 'x')
            spf = v;
        else if (mod == ':')
            skew = v;
        else
            offset = v;
        i = j;
    }
    if (fmt != 16 && fmt != 80 && fmt != 212) {
        if (known_wfdb_format(fmt))
            return failf(c, CT_EUNSUPPORTED,
                         "signal %d: format %lld is not supported (only 212, 16 and 80 are)", s,
                         (long long)fmt);
        return failf(c, CT_EFORMAT, "signal %d: %lld is not a WFDB signal format", s,
                     (long long)fmt);
    }
    if (spf < 1)
        return failf(c, CT_EFORMAT, "signal %d: samples per frame must be at least 1", s);
    if (spf > 1)
        return failf(c, CT_EUNSUPPORTED,
                     "signal %d: %lld samples per frame (a multi-frequency record) is not "
                     "supported",
                     s, (long long)spf);
    if (skew > INT_MAX)
        return failf(c, CT_EFORMAT, "signal %d: skew %lld is absurd", s, (long long)skew);
    if (offset > CT_WFDB_MAX_DAT_BYTES)
        return failf(c, CT_ELIMIT, "signal %d: byte offset %lld is beyond the largest signal "
                     "file we read", s, (long long)offset);
    sig->format = (int)fmt;
    sig->samples_per_frame = (int)spf;
    sig->skew = (int)skew;
    sig->byte_offset = offset;
    return 0;
}

static int parse_gain(const pctx *c, int s, span t, ct_wfdb_signal *sig, int *baseline_given)
{
    size_t stop = 0;
    while (stop < t.n && t.p[stop] != '(' && t.p[stop] != '/')
        stop++;
    span g = sub(t, 0, stop);
    double gain;
    if (span_real(g, &gain) != NUM_OK)
        return failf(c, CT_EFORMAT, "signal %d: gain '%s' is not a number", s, show(g).s);
    if (gain == 0.0) {
        sig->gain_adu_per_unit = 200.0; /* WFDB_DEFGAIN: an uncalibrated signal */
        sig->gain_given = 0;
    } else {
        sig->gain_adu_per_unit = gain;
        sig->gain_given = 1;
    }
    size_t i = stop;
    if (i < t.n && t.p[i] == '(') {
        size_t close = find_char(t, i + 1, ')');
        if (close == t.n)
            return failf(c, CT_EFORMAT, "signal %d: baseline in '%s' lacks its closing ')'", s,
                         show(t).s);
        int64_t b;
        int rc = signal_int(c, s, "baseline", sub(t, i + 1, close), INT_MIN, INT_MAX, &b);
        if (rc != 0)
            return rc;
        sig->baseline_adu = (int)b;
        *baseline_given = 1;
        i = close + 1;
    }
    if (i < t.n) {
        if (t.p[i] != '/')
            return failf(c, CT_EFORMAT,
                         "signal %d: '%s' is not gain[(baseline)][/units]", s, show(t).s);
        span units = sub(t, i + 1, t.n);
        if (units.n == 0)
            return failf(c, CT_EFORMAT, "signal %d: units missing after '/' in '%s'", s,
                         show(t).s);
        if (copy_span(sig->units, sizeof sig->units, units) != 0)
            return failf(c, CT_EFORMAT, "signal %d: units '%s' are longer than %zu bytes", s,
                         show(units).s, sizeof sig->units - 1);
    }
    return 0;
}

static int parse_signal_line(const pctx *c, span line, int s, ct_wfdb_signal *sig)
{
    memset(sig, 0, sizeof *sig);
    sig->samples_per_frame = 1;
    sig->gain_adu_per_unit = 200.0;
    strcpy(sig->units, "mV");

    span rest = line, tok;
    next_token(&rest, &tok);
    if (copy_span(sig->file_name, sizeof sig->file_name, tok) != 0)
        return failf(c, CT_EFORMAT, "signal %d: file name is longer than %zu bytes", s,
                     sizeof sig->file_name - 1);
    if (!next_token(&rest, &tok))
        return failf(c, CT_EFORMAT, "signal %d: format missing after the file name", s);
    int rc = parse_format(c, s, tok, sig);
    if (rc != 0)
        return rc;
    sig->adc_resolution_bits = sig->format == 212 ? 12 : sig->format == 16 ? 16 : 8;

    int baseline_given = 0;
    if (next_token(&rest, &tok) && (rc = parse_gain(c, s, tok, sig, &baseline_given)) != 0)
        return rc;

    int64_t v;
    if (tok.n && next_token(&rest, &tok)) {
        if ((rc = signal_int(c, s, "ADC resolution", tok, 0, 32, &v)) != 0)
            return rc;
        if (v > 0) /* 0 means "not stated": keep the format's own width */
            sig->adc_resolution_bits = (int)v;
    }
    if (tok.n && next_token(&rest, &tok)) {
        if ((rc = signal_int(c, s, "ADC zero", tok, INT_MIN, INT_MAX, &v)) != 0)
            return rc;
        sig->adc_zero = (int)v;
    }
    if (!baseline_given)
        sig->baseline_adu = sig->adc_zero;
    sig->initial_value = sig->adc_zero;
    if (tok.n && next_token(&rest, &tok)) {
        if ((rc = signal_int(c, s, "initial value", tok, INT_MIN, INT_MAX, &v)) != 0)
            return rc;
        sig->initial_value = (int)v;
        sig->has_initial_value = 1;
    }
    if (tok.n && next_token(&rest, &tok)) {
        if ((rc = signal_int(c, s, "checksum", tok, INT_MIN, INT_MAX, &v)) != 0)
            return rc;
        sig->checksum = (int)v;
        sig->has_checksum = 1;
    }
    if (tok.n && next_token(&rest, &tok)) {
        if ((rc = signal_int(c, s, "block size", tok, 0, INT_MAX, &v)) != 0)
            return rc;
        sig->block_size = (int)v;
    }
    if (tok.n) {
        span desc = trim(rest);
        if (copy_span(sig->description, sizeof sig->description, desc) != 0)
            return failf(c, CT_EFORMAT, "signal %d: description is %zu bytes, at most %zu fit",
                         s, desc.n, sizeof sig->description - 1);
    }
    return 0;
}

/* Signals of one file must be listed together and agree on how the file is
 * laid out: WFDB reads a file once per run of equal names. */
static int check_file_groups(const pctx *c, const ct_wfdb_header *h, int s)
{
    const ct_wfdb_signal *cur = &h->signals[s];
    if (s == 0)
        return 0;
    const ct_wfdb_signal *prev = &h->signals[s - 1];
    if (strcmp(cur->file_name, prev->file_name) == 0) {
        if (cur->format != prev->format)
            return failf(c, CT_EFORMAT, "signal %d shares %s with signal %d but has format %d, "
                         "not %d", s, cur->file_name, s - 1, cur->format, prev->format);
        if (cur->byte_offset != prev->byte_offset)
            return failf(c, CT_EFORMAT, "signal %d shares %s with signal %d but has byte "
                         "offset %lld, not %lld", s, cur->file_name, s - 1,
                         (long long)cur->byte_offset, (long long)prev->byte_offset);
        if (cur->block_size != prev->block_size)
            return failf(c, CT_EFORMAT, "signal %d shares %s with signal %d but has block "
                         "size %d, not %d", s, cur->file_name, s - 1, cur->block_size,
                         prev->block_size);
        return 0;
    }
    for (int k = 0; k < s - 1; k++)
        if (strcmp(cur->file_name, h->signals[k].file_name) == 0)
            return failf(c, CT_EFORMAT, "signal %d uses %s again after another file; the "
                         "signals of one file must be listed together", s, cur->file_name);
    return 0;
}

static void add_comment(ct_wfdb_header *h, size_t *used, span body)
{
    if (body.n && body.p[0] == ' ') {
        body.p++;
        body.n--;
    }
    body = trim(body);
    size_t need = (*used ? 1 : 0) + body.n;
    if (h->comments_truncated || *used + need >= sizeof h->comments) {
        h->comments_truncated = 1;
        return;
    }
    if (*used)
        h->comments[(*used)++] = '\n';
    memcpy(h->comments + *used, body.p, body.n);
    *used += body.n;
    h->comments[*used] = '\0';
}

static int parse_text(const char *text, size_t len, const char *record_name, ct_wfdb_header *out,
                      ct_error *err)
{
    pctx c = {record_name ? record_name : "(unnamed)", 0, err};
    if (len > (size_t)CT_WFDB_MAX_HEADER_BYTES)
        return ct_error_set(err, CT_ELIMIT, "record %s: header is %zu bytes, more than the %d "
                            "allowed", c.rec, len, CT_WFDB_MAX_HEADER_BYTES);
    if (!text || len == 0)
        return ct_error_set(err, CT_EFORMAT, "record %s: header is empty", c.rec);
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        c.line = 1;
        for (const char *q = text; q < nul; q++)
            c.line += *q == '\n';
        return failf(&c, CT_EFORMAT, "NUL byte in a text header");
    }

    out->fs_hz = 250.0; /* WFDB_DEFFREQ */
    out->n_samples = -1;
    size_t comments_used = 0;
    int have_record = 0, n_read = 0;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        span line = {p, (size_t)(le - p)};
        p = nl ? nl + 1 : end;
        c.line++;
        line = trim(line);
        if (line.n == 0)
            continue;
        if (line.p[0] == '#') {
            add_comment(out, &comments_used, sub(line, 1, line.n));
            continue;
        }
        /* Names, units and descriptions end up in messages and logs: a
         * control byte in them could forge or garble a line. */
        for (size_t i = 0; i < line.n; i++) {
            unsigned char ch = (unsigned char)line.p[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return failf(&c, CT_EFORMAT, "control byte 0x%02x at column %zu", ch, i + 1);
        }
        int rc;
        if (!have_record) {
            if ((rc = parse_record_line(&c, line, record_name, out)) != 0)
                return rc;
            have_record = 1;
        } else if (n_read < out->n_signals) {
            if ((rc = parse_signal_line(&c, line, n_read, &out->signals[n_read])) != 0)
                return rc;
            if ((rc = check_file_groups(&c, out, n_read)) != 0)
                return rc;
            n_read++;
        } else {
            return failf(&c, CT_EFORMAT, "unexpected line '%s' after the %d signal lines",
                         show(line).s, out->n_signals);
        }
    }
    if (!have_record)
        return ct_error_set(err, CT_EFORMAT, "record %s: header has no record line", c.rec);
    if (n_read < out->n_signals)
        return ct_error_set(err, CT_EFORMAT, "record %s: header ends after %d of its %d signal "
                            "lines", c.rec, n_read, out->n_signals);
    return 0;
}

int ct_wfdb_header_parse(const char *text, size_t len, const char *record_name,
                         ct_wfdb_header *out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_header_parse: no header to fill");
    memset(out, 0, sizeof *out);
    int rc = parse_text(text, len, record_name, out, err);
    if (rc != 0)
        memset(out, 0, sizeof *out); /* no half-parsed header reaches the caller */
    return rc;
}

int ct_wfdb_header_read(const char *record_path, ct_wfdb_header *out, ct_error *err)
{
    if (!record_path || !out)
        return ct_error_set(err, CT_EINVAL, "ct_wfdb_header_read: no record path");
    const char *name = ct_wfdb_io_basename(record_path);
    if (!*name)
        return ct_error_set(err, CT_EINVAL, "record path '%s' has no record name", record_path);
    char path[4096], who[128];
    snprintf(who, sizeof who, "record %s", name);
    if (ct_wfdb_io_sibling(path, sizeof path, record_path, name, ".hea") != 0)
        return ct_error_set(err, CT_EINVAL, "%s: record path is too long", who);
    uint8_t *text;
    size_t len;
    int rc = ct_wfdb_io_read_file(path, who, CT_WFDB_MAX_HEADER_BYTES, &text, &len, err);
    if (rc != 0) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    rc = ct_wfdb_header_parse((const char *)text, len, name, out, err);
    free(text);
    return rc;
}
