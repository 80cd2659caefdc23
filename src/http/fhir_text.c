/* http room, JSON text: the FHIR API stores a resource as the client's own
 * JSON text, not as jansson would write it back. The one idea: jansson
 * holds numbers as doubles and prints them with 17 significant digits, so
 * a round trip turns "1.612" into 1.6120000000000001 and "0.010" into
 * 0.01, and FHIR says the precision of a decimal is part of its value. So
 * after ct_fhir_parse has judged a body (limits, UTF-8, syntax, duplicate
 * keys), these functions walk its text and copy it, minified, changing
 * only what the server owns: the id, meta.versionId and meta.lastUpdated,
 * and in a transaction the urn:uuid references. Reading it back puts the
 * version and time in from the store's row with one memcpy.
 *
 * The walker trusts its input to be JSON that ct_fhir_parse accepted (so
 * nesting is at most its depth limit, which bounds the recursion); it
 * still checks every bound and returns NULL or CT_EFORMAT on anything
 * else rather than read past the end. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fhir_internal.h"

/* ---- buffer ---------------------------------------------------------------------- */

void ct_http_buf_init(ct_http_buf *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

static int reserve(ct_http_buf *b, size_t more)
{
    if (b->failed)
        return -1;
    if (more > b->max || b->n > b->max - more) {
        b->failed = CT_ELIMIT;
        return -1;
    }
    if (b->n + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + more + 1)
        cap = cap > SIZE_MAX / 2 ? b->n + more + 1 : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = CT_ENOMEM;
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

void ct_http_buf_put(ct_http_buf *b, const void *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void ct_http_buf_puts(ct_http_buf *b, const char *s)
{
    ct_http_buf_put(b, s, strlen(s));
}

void ct_http_buf_printf(ct_http_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (w < 0 || (size_t)w >= sizeof tmp) {
        /* Only short, known texts go through here. */
        b->failed = b->failed ? b->failed : CT_ELIMIT;
        return;
    }
    ct_http_buf_put(b, tmp, (size_t)w);
}

void ct_http_buf_put_json_string(ct_http_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    ct_http_buf_put(b, "\"", 1);
    const char *run = s;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        ct_http_buf_put(b, run, (size_t)(p - run));
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        ct_http_buf_put(b, esc, n);
        run = p + 1;
    }
    ct_http_buf_puts(b, run);
    ct_http_buf_put(b, "\"", 1);
}

void ct_http_buf_put_json(ct_http_buf *b, const json_t *v)
{
    char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!t) {
        b->failed = b->failed ? b->failed : CT_ENOMEM;
        return;
    }
    ct_http_buf_puts(b, t);
    free(t);
}

char *ct_http_buf_take(ct_http_buf *b, size_t *len)
{
    char *p = b->p;
    size_t n = b->n;
    if (!p) {
        p = malloc(1);
        if (p)
            p[0] = '\0';
        n = 0;
    }
    b->p = NULL;
    b->n = b->cap = 0;
    if (len)
        *len = n;
    return p;
}

void ct_http_buf_free(ct_http_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

/* ---- walking JSON text -------------------------------------------------------------- */

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

/* p at the opening quote; returns the byte after the closing one. */
static const char *skip_string(const char *p, const char *end)
{
    if (p >= end || *p != '"')
        return NULL;
    for (p++; p < end; p++) {
        if (*p == '\\') {
            p++;
            continue;
        }
        if (*p == '"')
            return p + 1;
    }
    return NULL;
}

static const char *skip_value_depth(const char *p, const char *end, int depth)
{
    p = skip_ws(p, end);
    if (p >= end || depth > 64)
        return NULL;
    char c = *p;
    if (c == '"')
        return skip_string(p, end);
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        p = skip_ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (c == '{') {
                p = skip_string(skip_ws(p, end), end);
                if (!p)
                    return NULL;
                p = skip_ws(p, end);
                if (p >= end || *p != ':')
                    return NULL;
                p++;
            }
            p = skip_value_depth(p, end, depth + 1);
            if (!p)
                return NULL;
            p = skip_ws(p, end);
            if (p >= end)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p++;
        }
    }
    /* number or literal */
    const char *s = p;
    while (p < end && !is_ws(*p) && *p != ',' && *p != '}' && *p != ']' && *p != ':')
        p++;
    return p > s ? p : NULL;
}

const char *ct_http_json_skip(const char *p, const char *end)
{
    return skip_value_depth(p, end, 0);
}

/* Iterates the members of the object at *pp: on each call returns 1 with
 * the key (quotes included) and value ranges, 0 at the end, -1 on error. */
typedef struct member_iter {
    const char *p, *end;
    int started, done;
} member_iter;

static int iter_start(member_iter *it, const char *p, const char *end)
{
    memset(it, 0, sizeof *it);
    p = skip_ws(p, end);
    if (p >= end || *p != '{')
        return -1;
    it->p = p + 1;
    it->end = end;
    return 0;
}

static int iter_next(member_iter *it, const char **ks, const char **ke, const char **vs, const char **ve)
{
    if (it->done)
        return 0;
    const char *p = skip_ws(it->p, it->end);
    if (p >= it->end)
        return -1;
    if (!it->started && *p == '}') {
        it->done = 1;
        return 0;
    }
    if (it->started) {
        if (*p == '}') {
            it->done = 1;
            return 0;
        }
        if (*p != ',')
            return -1;
        p = skip_ws(p + 1, it->end);
    }
    it->started = 1;
    *ks = p;
    p = skip_string(p, it->end);
    if (!p)
        return -1;
    *ke = p;
    p = skip_ws(p, it->end);
    if (p >= it->end || *p != ':')
        return -1;
    *vs = skip_ws(p + 1, it->end);
    *ve = skip_value_depth(*vs, it->end, 1);
    if (!*ve)
        return -1;
    it->p = *ve;
    return 1;
}

/* Does the quoted key [ks, ke) equal `key`? Keys with escapes are compared
 * after decoding. */
static int key_is(const char *ks, const char *ke, const char *key)
{
    size_t n = (size_t)(ke - ks);
    size_t kl = strlen(key);
    if (n == kl + 2 && memcmp(ks + 1, key, kl) == 0)
        return 1;
    if (!memchr(ks, '\\', n))
        return 0;
    json_t *j = json_loadb(ks, n, JSON_DECODE_ANY, NULL);
    int eq = json_is_string(j) && strcmp(json_string_value(j), key) == 0;
    json_decref(j);
    return eq;
}

int ct_http_json_member(const char *p, const char *end, const char *key, const char **vs, const char **ve)
{
    member_iter it;
    if (iter_start(&it, p, end) != 0)
        return CT_EFORMAT;
    const char *ks, *ke, *s, *e;
    int r;
    while ((r = iter_next(&it, &ks, &ke, &s, &e)) == 1)
        if (key_is(ks, ke, key)) {
            *vs = s;
            *ve = e;
            return 0;
        }
    return r < 0 ? CT_EFORMAT : CT_ENOTFOUND;
}

int ct_http_json_element(const char *p, const char *end, size_t i, const char **vs, const char **ve)
{
    p = skip_ws(p, end);
    if (p >= end || *p != '[')
        return CT_EFORMAT;
    p = skip_ws(p + 1, end);
    if (p < end && *p == ']')
        return CT_ENOTFOUND;
    for (size_t k = 0;; k++) {
        const char *s = skip_ws(p, end);
        const char *e = skip_value_depth(s, end, 1);
        if (!e)
            return CT_EFORMAT;
        if (k == i) {
            *vs = s;
            *ve = e;
            return 0;
        }
        p = skip_ws(e, end);
        if (p >= end)
            return CT_EFORMAT;
        if (*p == ']')
            return CT_ENOTFOUND;
        if (*p != ',')
            return CT_EFORMAT;
        p++;
    }
}

/* The mapped replacement of the string literal [s, e), or NULL. */
static const char *mapped(const ct_http_ref_map *map, const char *s, const char *e)
{
    if (!map || map->n == 0)
        return NULL;
    size_t n = (size_t)(e - s);
    if (!memchr(s, '\\', n)) {
        for (size_t i = 0; i < map->n; i++) {
            size_t fl = strlen(map->from[i]);
            if (n == fl + 2 && memcmp(s + 1, map->from[i], fl) == 0)
                return map->to[i];
        }
        return NULL;
    }
    json_t *j = json_loadb(s, n, JSON_DECODE_ANY, NULL);
    const char *to = NULL;
    if (json_is_string(j))
        for (size_t i = 0; i < map->n && !to; i++)
            if (strcmp(json_string_value(j), map->from[i]) == 0)
                to = map->to[i];
    json_decref(j);
    return to;
}

/* Copies a scalar or string without whitespace outside strings. */
static void copy_min(ct_http_buf *out, const char *p, const char *end)
{
    const char *run = p;
    int in_str = 0;
    for (; p < end; p++) {
        char c = *p;
        if (in_str) {
            if (c == '\\')
                p++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (is_ws(c)) {
            ct_http_buf_put(out, run, (size_t)(p - run));
            run = p + 1;
        }
    }
    if (p > end)
        p = end;
    ct_http_buf_put(out, run, (size_t)(p - run));
}

static int copy_value(ct_http_buf *out, const char *p, const char *end, const ct_http_ref_map *map, int depth)
{
    p = skip_ws(p, end);
    if (p >= end || depth > 64)
        return CT_EFORMAT;
    if (!map || map->n == 0 || (*p != '{' && *p != '[')) {
        const char *e = skip_value_depth(p, end, depth);
        if (!e)
            return CT_EFORMAT;
        copy_min(out, p, e);
        return 0;
    }
    if (*p == '[') {
        ct_http_buf_put(out, "[", 1);
        const char *vs, *ve;
        for (size_t i = 0;; i++) {
            int r = ct_http_json_element(p, end, i, &vs, &ve);
            if (r == CT_ENOTFOUND)
                break;
            if (r)
                return r;
            if (i)
                ct_http_buf_put(out, ",", 1);
            if ((r = copy_value(out, vs, ve, map, depth + 1)) != 0)
                return r;
        }
        ct_http_buf_put(out, "]", 1);
        return 0;
    }
    member_iter it;
    if (iter_start(&it, p, end) != 0)
        return CT_EFORMAT;
    ct_http_buf_put(out, "{", 1);
    const char *ks, *ke, *vs, *ve;
    int r, first = 1;
    while ((r = iter_next(&it, &ks, &ke, &vs, &ve)) == 1) {
        if (!first)
            ct_http_buf_put(out, ",", 1);
        first = 0;
        copy_min(out, ks, ke);
        ct_http_buf_put(out, ":", 1);
        const char *to = (*vs == '"' && key_is(ks, ke, "reference")) ? mapped(map, vs, ve) : NULL;
        if (to)
            ct_http_buf_put_json_string(out, to);
        else if ((r = copy_value(out, vs, ve, map, depth + 1)) != 0)
            return r;
    }
    if (r < 0)
        return CT_EFORMAT;
    ct_http_buf_put(out, "}", 1);
    return 0;
}

int ct_http_json_copy(ct_http_buf *out, const char *p, const char *end, const ct_http_ref_map *map)
{
    int r = copy_value(out, p, end, map, 0);
    return r ? r : out->failed;
}

int ct_http_resource_canonical(const char *text, size_t len, const char *type, const char *id,
                               const ct_http_ref_map *map, ct_http_buf *out)
{
    const char *end = text + len;
    member_iter it;
    if (iter_start(&it, text, end) != 0)
        return CT_EFORMAT;
    ct_http_buf_puts(out, "{\"resourceType\":");
    ct_http_buf_put_json_string(out, type);
    ct_http_buf_puts(out, ",\"id\":");
    ct_http_buf_put_json_string(out, id);
    ct_http_buf_puts(out, ",\"meta\":{");
    const char *ms = NULL, *me = NULL;
    int r = ct_http_json_member(text, end, "meta", &ms, &me);
    if (r == CT_EFORMAT)
        return r;
    if (r == 0) {
        member_iter mi;
        if (iter_start(&mi, ms, me) != 0)
            return CT_EFORMAT;
        const char *ks, *ke, *vs, *ve;
        int first = 1;
        while ((r = iter_next(&mi, &ks, &ke, &vs, &ve)) == 1) {
            if (key_is(ks, ke, "versionId") || key_is(ks, ke, "lastUpdated"))
                continue;
            if (!first)
                ct_http_buf_put(out, ",", 1);
            first = 0;
            copy_min(out, ks, ke);
            ct_http_buf_put(out, ":", 1);
            if ((r = copy_value(out, vs, ve, map, 2)) != 0)
                return r;
        }
        if (r < 0)
            return CT_EFORMAT;
    }
    ct_http_buf_put(out, "}", 1);
    const char *ks, *ke, *vs, *ve;
    while ((r = iter_next(&it, &ks, &ke, &vs, &ve)) == 1) {
        if (key_is(ks, ke, "resourceType") || key_is(ks, ke, "id") || key_is(ks, ke, "meta"))
            continue;
        ct_http_buf_put(out, ",", 1);
        copy_min(out, ks, ke);
        ct_http_buf_put(out, ":", 1);
        const char *to = (*vs == '"' && key_is(ks, ke, "reference")) ? mapped(map, vs, ve) : NULL;
        if (to)
            ct_http_buf_put_json_string(out, to);
        else if ((r = copy_value(out, vs, ve, map, 1)) != 0)
            return r;
    }
    if (r < 0)
        return CT_EFORMAT;
    ct_http_buf_put(out, "}", 1);
    return out->failed;
}

char *ct_http_resource_serve(const char *stored, size_t len, const char *type, const char *id,
                             int64_t version, int64_t last_updated_ms, size_t *out_len)
{
    char when[CT_FHIR_INSTANT_CAP];
    if (ct_fhir_instant_format(last_updated_ms, when, sizeof when) != 0)
        return NULL;
    char vid[24];
    snprintf(vid, sizeof vid, "%lld", (long long)version);

    ct_http_buf b;
    ct_http_buf_init(&b, len + 256);
    ct_http_buf_puts(&b, "{\"resourceType\":");
    ct_http_buf_put_json_string(&b, type);
    ct_http_buf_puts(&b, ",\"id\":");
    ct_http_buf_put_json_string(&b, id);
    ct_http_buf_puts(&b, ",\"meta\":{");
    if (!b.failed && len > b.n && memcmp(stored, b.p, b.n) == 0) {
        size_t head = b.n;
        ct_http_buf_printf(&b, "\"versionId\":\"%s\",\"lastUpdated\":\"%s\"", vid, when);
        if (stored[head] != '}')
            ct_http_buf_put(&b, ",", 1);
        ct_http_buf_put(&b, stored + head, len - head);
        if (!b.failed)
            return ct_http_buf_take(&b, out_len);
        ct_http_buf_free(&b);
        return NULL;
    }
    ct_http_buf_free(&b);

    /* Not written by ct_http_resource_canonical: rebuild it (numbers then
     * come out as jansson writes them). */
    json_t *j = json_loadb(stored, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    json_t *meta = json_object_get(j, "meta");
    if (!json_is_object(meta)) {
        meta = json_object();
        json_object_set_new(j, "meta", meta);
    }
    json_object_set_new(j, "id", json_string(id));
    json_object_set_new(meta, "versionId", json_string(vid));
    json_object_set_new(meta, "lastUpdated", json_string(when));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (text && out_len)
        *out_len = strlen(text);
    return text;
}
