/* http room, negotiation: the header and query rules of FHIR's RESTful API
 * that decide whether a request is understood before anything is read or
 * stored: Content-Type (415), Accept and _format (406), Prefer (return and
 * handling), If-Match ETags, and the few things every response needs (an
 * HTTP date, a new id). The one idea: every function here is pure, takes
 * the header value as text and is tested on its own
 * (tests/http/test_fhir_negotiate.c), so the handlers only ask questions.
 *
 * We speak JSON only. application/json is accepted as a synonym of
 * application/fhir+json in both directions (R4 3.1.0.1.8), and
 * application/json+fhir, the DSTU2 name, on the way in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "fhir_internal.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Copies the token [s, e) trimmed and lower-cased into out. */
static void token_lower(const char *s, const char *e, char *out, size_t cap)
{
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    size_t n = 0;
    for (; s < e && n + 1 < cap; s++)
        out[n++] = (char)((*s >= 'A' && *s <= 'Z') ? *s + 32 : *s);
    out[n] = '\0';
    if (s < e && cap) /* too long to be a type we know: make it match nothing */
        out[0] = '\0';
}

static int media_is_json(const char *m)
{
    return strcmp(m, "application/fhir+json") == 0 || strcmp(m, "application/json") == 0 ||
           strcmp(m, "application/json+fhir") == 0;
}

static int media_is_xml(const char *m)
{
    return strcmp(m, "application/fhir+xml") == 0 || strcmp(m, "application/xml") == 0 ||
           strcmp(m, "text/xml") == 0 || strcmp(m, "application/xml+fhir") == 0;
}

ct_http_media ct_http_content_type(const char *value)
{
    if (!value)
        return CT_HTTP_MEDIA_NONE;
    const char *semi = strchr(value, ';');
    const char *end = semi ? semi : value + strlen(value);
    char m[64];
    token_lower(value, end, m, sizeof m);
    if (!m[0])
        return strspn(value, " \t") == strlen(value) ? CT_HTTP_MEDIA_NONE : CT_HTTP_MEDIA_OTHER;
    ct_http_media kind = media_is_json(m)                                  ? CT_HTTP_MEDIA_FHIR_JSON
                         : strcmp(m, "application/x-www-form-urlencoded") == 0 ? CT_HTTP_MEDIA_FORM
                         : media_is_xml(m)                                 ? CT_HTTP_MEDIA_XML
                                                                           : CT_HTTP_MEDIA_OTHER;
    /* Parameters: only a UTF-8 charset is understood; others are ignored. */
    while (semi && kind != CT_HTTP_MEDIA_OTHER) {
        const char *p = semi + 1;
        semi = strchr(p, ';');
        const char *pe = semi ? semi : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (!eq)
            continue;
        char name[32], val[32];
        token_lower(p, eq, name, sizeof name);
        token_lower(eq + 1, pe, val, sizeof val);
        if (strcmp(name, "charset") == 0) {
            size_t vl = strlen(val);
            if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
                memmove(val, val + 1, vl - 2);
                val[vl - 2] = '\0';
            }
            if (strcmp(val, "utf-8") != 0 && strcmp(val, "utf8") != 0)
                return CT_HTTP_MEDIA_OTHER;
        }
    }
    return kind;
}

/* q of an Accept element's parameters ("q=0.5"); 1 when absent. */
static double accept_q(const char *params, const char *end)
{
    while (params && params < end) {
        const char *semi = memchr(params, ';', (size_t)(end - params));
        const char *pe = semi ? semi : end;
        char tok[32];
        token_lower(params, pe, tok, sizeof tok);
        if (tok[0] == 'q' && tok[1] == '=') {
            char *stop;
            double q = strtod(tok + 2, &stop);
            if (*stop != '\0' || q < 0 || q > 1)
                return 1; /* malformed: treat as absent, as most servers do */
            return q;
        }
        params = semi ? semi + 1 : end;
    }
    return 1;
}

int ct_http_accept_json(const char *value, int *plain)
{
    if (plain)
        *plain = 0;
    if (!value || strspn(value, " \t") == strlen(value))
        return 1;
    double best_fhir = -1, best_json = -1, best_any = -1;
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *semi = memchr(p, ';', (size_t)(e - p));
        char m[64];
        token_lower(p, semi ? semi : e, m, sizeof m);
        double q = accept_q(semi ? semi + 1 : NULL, e);
        if (strcmp(m, "application/fhir+json") == 0 || strcmp(m, "application/json+fhir") == 0) {
            if (q > best_fhir)
                best_fhir = q;
        } else if (strcmp(m, "application/json") == 0) {
            if (q > best_json)
                best_json = q;
        } else if (strcmp(m, "*/*") == 0 || strcmp(m, "application/*") == 0) {
            if (q > best_any)
                best_any = q;
        }
        p = comma ? comma + 1 : e;
    }
    /* An explicit q=0 on a type excludes it even when a wildcard admits it. */
    double fhir = best_fhir >= 0 ? best_fhir : best_any;
    double json = best_json >= 0 ? best_json : best_any;
    if (fhir <= 0 && json <= 0)
        return 0;
    if (plain)
        *plain = json > fhir;
    return 1;
}

int ct_http_format_json(const char *value)
{
    char m[64];
    token_lower(value, value + strlen(value), m, sizeof m);
    /* A '+' in a query arrives as a space: "application/fhir json". */
    for (char *c = m; *c; c++)
        if (*c == ' ')
            *c = '+';
    return strcmp(m, "json") == 0 || media_is_json(m);
}

void ct_http_prefer_parse(const char *value, ct_http_prefer *out)
{
    memset(out, 0, sizeof *out);
    if (!value)
        return;
    const char *p = value;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *semi = memchr(p, ';', (size_t)(e - p));
        const char *te = semi ? semi : e;
        const char *eq = memchr(p, '=', (size_t)(te - p));
        char name[32], val[40];
        token_lower(p, eq ? eq : te, name, sizeof name);
        token_lower(eq ? eq + 1 : te, te, val, sizeof val);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            memmove(val, val + 1, vl - 2);
            val[vl - 2] = '\0';
        }
        if (strcmp(name, "return") == 0) {
            if (strcmp(val, "minimal") == 0)
                out->ret = CT_HTTP_RETURN_MINIMAL;
            else if (strcmp(val, "representation") == 0)
                out->ret = CT_HTTP_RETURN_REPRESENTATION;
            else if (strcmp(val, "operationoutcome") == 0)
                out->ret = CT_HTTP_RETURN_OUTCOME;
        } else if (strcmp(name, "handling") == 0) {
            if (strcmp(val, "strict") == 0)
                out->strict = 1;
            else if (strcmp(val, "lenient") == 0)
                out->strict = 0;
        }
        p = comma ? comma + 1 : e;
    }
}

int ct_http_etag_parse(const char *value, int64_t *version)
{
    if (!value)
        return CT_EFORMAT;
    const char *p = value;
    while (is_space(*p))
        p++;
    if (p[0] == 'W' && p[1] == '/')
        p += 2;
    if (*p++ != '"')
        return CT_EFORMAT;
    int64_t v = 0;
    const char *digits = p;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return CT_EFORMAT;
        v = v * 10 + (*p++ - '0');
    }
    if (p == digits || *p++ != '"' || v < 1)
        return CT_EFORMAT;
    while (is_space(*p))
        p++;
    if (*p)
        return CT_EFORMAT;
    *version = v;
    return 0;
}

void ct_http_date_format(int64_t t_ms, char *buf, size_t cap)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t t = (time_t)(t_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, cap, "Thu, 01 Jan 1970 00:00:00 GMT");
        return;
    }
    snprintf(buf, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes [s, e) into out; -1 on a bad escape, a NUL or overflow. */
static int decode(const char *s, const char *e, char *out, size_t cap)
{
    size_t n = 0;
    for (; s < e; s++) {
        char c = *s;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (e - s < 3 || hexval(s[1]) < 0 || hexval(s[2]) < 0)
                return -1;
            c = (char)(hexval(s[1]) * 16 + hexval(s[2]));
            s += 2;
            if (c == '\0')
                return -1;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

int ct_http_query_get(const char *query, const char *name, char *out, size_t cap)
{
    if (!query || cap == 0)
        return 0;
    size_t nl = strlen(name);
    const char *p = query;
    while (*p) {
        const char *amp = strchr(p, '&');
        const char *e = amp ? amp : p + strlen(p);
        const char *eq = memchr(p, '=', (size_t)(e - p));
        char key[64];
        if (eq && (size_t)(eq - p) < sizeof key && decode(p, eq, key, sizeof key) == 0 &&
            strlen(key) == nl && memcmp(key, name, nl) == 0)
            return decode(eq + 1, e, out, cap) == 0 ? 1 : -1;
        p = amp ? amp + 1 : e;
    }
    return 0;
}

int ct_http_new_id(char out[37])
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof r) != 1)
        return CT_ENOMEM;
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40); /* version 4 */
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[r[i] >> 4];
        out[o++] = hex[r[i] & 15];
    }
    out[o] = '\0';
    return 0;
}
