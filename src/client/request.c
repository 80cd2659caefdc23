/* client: one request to a FHIR server, answer kept in memory. The one idea:
 * the handle is reset to the client's defaults before and after each
 * request (curl_easy_reset keeps the connection cache), so a POST here and
 * a download in download.c share one connection pool and nothing else: no
 * method, header list or callback pointer set for one transfer survives
 * into the next.
 *
 * Each attempt is classified as download.c does: 2xx done; 408, 429, 5xx
 * and transient transfer failures retried after base * 2^(n-1) ms (a
 * Retry-After lengthens the pause up to the cap); anything else final. A
 * 4xx or 5xx answer's OperationOutcome is boiled down to one line of
 * diagnostics for the caller's message. Redirects are not followed: libcurl
 * would turn a redirected POST into a GET, and a FHIR server that moved
 * should be named by its new base, not silently followed with data.
 *
 * The bearer token lives only in the header list libcurl sends; messages
 * are built from the method, URL and answer, never from the headers. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cardiotwin/fhir.h"
#include "client_internal.h"

/* The answer being read, shared with libcurl's callbacks. */
typedef struct answer {
    ct_client_response *res;
    size_t max_bytes;
    size_t cap;
    int too_large;
    long retry_after_s;   /* -1 when absent or an HTTP date */
} answer;

static void copy_value(char *dst, size_t cap, const char *v, size_t len)
{
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(dst, v, len);
    dst[len] = '\0';
}

/* The value of "Name: value" when the line is that header, else NULL. */
static const char *header_value(const char *line, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    *vlen = (size_t)(end - v);
    return v;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    answer *a = ud;
    ct_client_response *r = a->res;
    size_t len = size * nitems;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new status line (1xx, then the real one): forget the last. */
        const char *p = memchr(buf, ' ', len);
        r->status = 0;
        if (p && (size_t)(p - buf) + 4 <= len && isdigit((unsigned char)p[1]) &&
            isdigit((unsigned char)p[2]) && isdigit((unsigned char)p[3]))
            r->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
        r->location[0] = r->etag[0] = r->content_type[0] = '\0';
        a->retry_after_s = -1;
        return len;
    }
    size_t vlen;
    const char *v;
    if ((v = header_value(buf, len, "Location", &vlen)) != NULL) {
        copy_value(r->location, sizeof r->location, v, vlen);
    } else if ((v = header_value(buf, len, "ETag", &vlen)) != NULL) {
        copy_value(r->etag, sizeof r->etag, v, vlen);
    } else if ((v = header_value(buf, len, "Content-Type", &vlen)) != NULL) {
        copy_value(r->content_type, sizeof r->content_type, v, vlen);
    } else if ((v = header_value(buf, len, "Retry-After", &vlen)) != NULL) {
        long s = 0;
        size_t i = 0;
        for (; i < vlen && i < 6 && v[i] >= '0' && v[i] <= '9'; i++)
            s = s * 10 + (v[i] - '0');
        a->retry_after_s = i > 0 && i < 6 ? s : -1;
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud)
{
    answer *a = ud;
    ct_client_response *r = a->res;
    size_t len = size * nmemb;
    if (len > a->max_bytes - r->body_len) {
        a->too_large = 1;
        return 0; /* libcurl aborts the transfer */
    }
    if (r->body_len + len + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < r->body_len + len + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) {
            a->too_large = 1;
            return 0;
        }
        r->body = nb;
        a->cap = cap;
    }
    memcpy(r->body + r->body_len, buf, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

/* ---- OperationOutcome ------------------------------------------------------------ */

/* Appends s to out as one line: control characters become spaces. */
static void append_line(char *out, size_t cap, size_t *used, const char *s)
{
    for (; *s && *used + 1 < cap; s++)
        out[(*used)++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    out[*used] = '\0';
}

void ct_client_outcome_summary(const char *body, size_t len, char *out, size_t cap)
{
    if (!out || cap == 0)
        return;
    out[0] = '\0';
    if (!body || len == 0)
        return;
    json_t *j = NULL;
    if (ct_fhir_parse(body, len, NULL, &j, NULL) != 0)
        return;
    const char *type = ct_fhir_resource_type(j);
    const json_t *issues = json_object_get(j, "issue");
    size_t used = 0;
    if (type && strcmp(type, "OperationOutcome") == 0 && json_is_array(issues)) {
        size_t i;
        const json_t *is;
        json_array_foreach(issues, i, is) {
            const char *text = json_string_value(json_object_get(is, "diagnostics"));
            if (!text)
                text = json_string_value(json_object_get(json_object_get(is, "details"), "text"));
            if (!text)
                text = json_string_value(json_object_get(is, "code"));
            if (!text)
                continue;
            if (used)
                append_line(out, cap, &used, "; ");
            append_line(out, cap, &used, text);
            const char *expr = json_string_value(json_array_get(json_object_get(is, "expression"), 0));
            if (expr) {
                append_line(out, cap, &used, " (at ");
                append_line(out, cap, &used, expr);
                append_line(out, cap, &used, ")");
            }
        }
    }
    json_decref(j);
}

/* ---- tokens ---------------------------------------------------------------------- */

int ct_client_token_ok(const char *s)
{
    if (!s)
        return 0;
    size_t n = strnlen(s, CT_CLIENT_MAX_TOKEN + 1);
    if (n == 0 || n > CT_CLIENT_MAX_TOKEN)
        return 0;
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~' || ch == '+' || ch == '/'))
            break;
    }
    if (i == 0)
        return 0;
    for (; i < n; i++)
        if (s[i] != '=')
            return 0;
    return 1;
}

int ct_client_token_read_file(const char *path, char *buf, size_t cap, ct_error *err)
{
    if (!path || !buf || cap < 2)
        return ct_error_set(err, CT_EINVAL, "token file: missing argument");
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ct_error_set(err, CT_EIO, "token file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ct_error_set(err, CT_EIO, "token file %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ct_error_set(err, CT_EINVAL, "token file %s is not a regular file", path);
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return ct_error_set(err, CT_EINVAL,
                            "token file %s can be read or written by group or others (mode %03o); "
                            "chmod 600 it, and ask for a new token if others may have read it",
                            path, (unsigned)(sb.st_mode & 0777));
    }
    /* Room for the longest token, CRLF, and one byte more to notice excess. */
    char tmp[CT_CLIENT_MAX_TOKEN + 4];
    size_t n = 0;
    int rc = CT_OK;
    for (;;) {
        ssize_t r = read(fd, tmp + n, sizeof tmp - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ct_error_set(err, CT_EIO, "token file %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0 || (n += (size_t)r) == sizeof tmp - 1)
            break;
    }
    close(fd);
    if (rc == CT_OK) {
        if (n > 0 && tmp[n - 1] == '\n')
            n--;
        if (n > 0 && tmp[n - 1] == '\r')
            n--;
        tmp[n] = '\0';
        if (n > CT_CLIENT_MAX_TOKEN || n + 1 > cap)
            rc = ct_error_set(err, CT_ELIMIT, "token file %s: the token is longer than %zu characters",
                              path, (size_t)CT_CLIENT_MAX_TOKEN < cap - 1 ? (size_t)CT_CLIENT_MAX_TOKEN : cap - 1);
        else if (n == 0)
            rc = ct_error_set(err, CT_EINVAL, "token file %s is empty", path);
        else if (!ct_client_token_ok(tmp))
            rc = ct_error_set(err, CT_EINVAL,
                              "token file %s: the token must be one line of A-Z a-z 0-9 - . _ ~ + / "
                              "followed by optional '=' (RFC 6750)",
                              path);
        else
            memcpy(buf, tmp, n + 1);
    }
    explicit_bzero(tmp, sizeof tmp);
    if (rc != CT_OK)
        explicit_bzero(buf, cap);
    return rc;
}

/* ---- the request ----------------------------------------------------------------- */

void ct_client_response_free(ct_client_response *res)
{
    if (!res)
        return;
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms, in slices of 100 ms so that should_stop is heard; returns 1
 * when it asked to stop. */
static int pause_ms(long ms, ct_client_stop_fn should_stop, void *ctx)
{
    int64_t until = mono_ms() + ms;
    for (;;) {
        if (should_stop && should_stop(ctx))
            return 1;
        int64_t left = until - mono_ms();
        if (left <= 0)
            return 0;
        if (left > 100)
            left = 100;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
    }
}

static int header_line_ok(const char *h)
{
    if (!h || !*h || !strchr(h, ':') || h[0] == ':')
        return 0;
    for (const char *p = h; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
            return 0;
    return strlen(h) < 8192;
}

static int media_type_ok(const char *s)
{
    size_t n = strnlen(s, 256);
    if (n == 0 || n >= 256)
        return 0;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static int check_request(const ct_client_request *req, ct_error *err)
{
    if (!req || !req->method || !req->url)
        return ct_error_set(err, CT_EINVAL, "request: missing method or URL");
    const char *m = req->method;
    if (strcmp(m, "GET") != 0 && strcmp(m, "POST") != 0 && strcmp(m, "PUT") != 0 && strcmp(m, "DELETE") != 0)
        return ct_error_set(err, CT_EINVAL, "request: method '%.16s' is not GET, POST, PUT or DELETE", m);
    int rc = ct_client_url_check(req->url, err);
    if (rc)
        return rc;
    if (req->body && (strcmp(m, "GET") == 0 || strcmp(m, "DELETE") == 0))
        return ct_error_set(err, CT_EINVAL, "request: %s %s cannot carry a body", m, req->url);
    if (req->bearer_token && !ct_client_token_ok(req->bearer_token))
        return ct_error_set(err, CT_EINVAL,
                            "request: the bearer token is not 1..%d characters of RFC 6750's alphabet",
                            CT_CLIENT_MAX_TOKEN);
    if (req->n_headers < 0 || req->n_headers > CT_CLIENT_MAX_EXTRA_HEADERS)
        return ct_error_set(err, CT_EINVAL, "request: %d extra headers, at most %d", req->n_headers,
                            CT_CLIENT_MAX_EXTRA_HEADERS);
    for (int i = 0; i < req->n_headers; i++)
        if (!header_line_ok(req->headers[i]))
            return ct_error_set(err, CT_EINVAL, "request: extra header %d is not one 'Name: value' line of "
                                                "printable ASCII", i);
    if ((req->content_type && !media_type_ok(req->content_type)) || (req->accept && !media_type_ok(req->accept)))
        return ct_error_set(err, CT_EINVAL, "request: content type or accept is not 1..255 printable "
                                            "ASCII characters");
    return CT_OK;
}

/* The header list of a request. The Authorization line is built in a
 * buffer that is wiped once libcurl has copied it. */
static struct curl_slist *make_headers(const ct_client_request *req)
{
    struct curl_slist *h = NULL, *t;
    char line[CT_CLIENT_MAX_TOKEN + 64];
#define ADD(s_)                                                                                     \
    do {                                                                                            \
        t = curl_slist_append(h, s_);                                                               \
        if (!t)                                                                                     \
            goto fail;                                                                              \
        h = t;                                                                                      \
    } while (0)
    if (req->bearer_token) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", req->bearer_token);
        t = curl_slist_append(h, line);
        explicit_bzero(line, sizeof line);
        if (!t)
            goto fail;
        h = t;
    }
    snprintf(line, sizeof line, "Accept: %s", req->accept ? req->accept : "application/fhir+json");
    ADD(line);
    if (req->body) {
        snprintf(line, sizeof line, "Content-Type: %s",
                 req->content_type ? req->content_type : "application/fhir+json");
        ADD(line);
    }
    /* No "Expect: 100-continue" round trip before each body. */
    ADD("Expect:");
    for (int i = 0; i < req->n_headers; i++)
        ADD(req->headers[i]);
#undef ADD
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

static CURLcode setup(ct_client *c, const ct_client_request *req, struct curl_slist *hdrs, answer *a)
{
    CURL *h = c->curl;
    curl_easy_reset(h);
    CURLcode cc = ct_client_apply_defaults(c);
#define SETOPT(opt_, val_)                                                                          \
    do {                                                                                            \
        if (cc == CURLE_OK)                                                                         \
            cc = curl_easy_setopt(h, opt_, val_);                                                   \
    } while (0)
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_URL, req->url);
    SETOPT(CURLOPT_HTTPHEADER, hdrs);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(CURLOPT_HEADERDATA, a);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, a);
    if (strcmp(req->method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(req->method, "DELETE") == 0) {
        SETOPT(CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        /* POSTFIELDS does not copy: the caller's body outlives the call. */
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(req->body ? req->body_len : 0));
        SETOPT(CURLOPT_POSTFIELDS, req->body ? req->body : "");
        if (strcmp(req->method, "PUT") == 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, "PUT");
    }
#undef SETOPT
    return cc;
}

enum outcome { OUT_DONE, OUT_RETRY, OUT_FAIL };

static enum outcome classify(const ct_client *c, const ct_client_request *req, const answer *a,
                             CURLcode rc, char *reason, size_t cap, int *code)
{
    const ct_client_response *r = a->res;
    *code = CT_ENET;
    if (a->too_large) {
        *code = CT_ELIMIT;
        if (r->status)
            snprintf(reason, cap, "%s %s: HTTP %ld with an answer larger than %zu bytes", req->method,
                     req->url, r->status, a->max_bytes);
        else
            snprintf(reason, cap, "%s %s: the answer is larger than %zu bytes", req->method, req->url,
                     a->max_bytes);
        return OUT_FAIL;
    }
    if (rc == CURLE_OK || (r->status >= 400 && rc == CURLE_PARTIAL_FILE)) {
        long s = r->status;
        if (s >= 200 && s < 300)
            return OUT_DONE;
        if (r->diagnostics[0]) {
            /* Appended rather than formatted: a long answer is cut, as intended. */
            snprintf(reason, cap, "%s %s: HTTP %ld: ", req->method, req->url, s);
            size_t used = strlen(reason);
            append_line(reason, cap, &used, r->diagnostics);
        } else if (s >= 300 && s < 400) {
            snprintf(reason, cap, "%s %s: HTTP %ld to %.256s (redirects are not followed: name the "
                                  "server's new address)", req->method, req->url, s,
                     r->location[0] ? r->location : "nowhere");
        } else {
            snprintf(reason, cap, "%s %s: HTTP %ld", req->method, req->url, s);
        }
        if (s == 404 || s == 410) {
            *code = CT_ENOTFOUND;
            return OUT_FAIL;
        }
        if (s == 408 || s == 429 || (s >= 500 && s <= 599))
            return OUT_RETRY;
        return OUT_FAIL;
    }
    snprintf(reason, cap, "%s %s: %s", req->method, req->url,
             c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    if (ct_client_curl_is_transient(rc))
        return OUT_RETRY;
    if (ct_client_curl_is_tls(rc))
        *code = CT_ETLS;
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        *code = CT_EINVAL;
    return OUT_FAIL;
}

int ct_client_send(ct_client *c, const ct_client_request *req, ct_client_response *res,
                   ct_error *err)
{
    if (!res)
        return ct_error_set(err, CT_EINVAL, "request: no response to fill");
    memset(res, 0, sizeof *res);
    if (!c)
        return ct_error_set(err, CT_EINVAL, "request: no client");
    int rc = check_request(req, err);
    if (rc)
        return rc;
    struct curl_slist *hdrs = make_headers(req);
    if (!hdrs)
        return ct_error_set(err, CT_ENOMEM, "%s %s: out of memory", req->method, req->url);
    ct_client_retry_fn on_retry = req->on_retry ? req->on_retry : c->opt.on_retry;
    void *retry_ctx = req->on_retry ? req->cb_ctx : c->opt.cb_ctx;
    size_t max_bytes = req->max_response_bytes ? req->max_response_bytes : CT_CLIENT_DEFAULT_MAX_RESPONSE;

    char reason[CT_ERROR_MSG_MAX];
    int retries_used = 0;
    for (;;) {
        /* Each attempt starts with an empty answer. */
        free(res->body);
        res->body = NULL;
        res->body_len = 0;
        res->diagnostics[0] = '\0';
        res->status = 0;
        answer a = {.res = res, .max_bytes = max_bytes, .retry_after_s = -1};
        c->errbuf[0] = '\0';
        CURLcode cc = setup(c, req, hdrs, &a);
        if (cc != CURLE_OK) {
            rc = ct_error_set(err, CT_EUNSUPPORTED, "%s %s: libcurl refused an option: %s", req->method,
                              req->url, curl_easy_strerror(cc));
            break;
        }
        cc = curl_easy_perform(c->curl);
        res->attempts++;
        if (res->status >= 400 && res->body_len > 0 && !a.too_large)
            ct_client_outcome_summary(res->body, res->body_len, res->diagnostics, sizeof res->diagnostics);
        int code;
        enum outcome out = classify(c, req, &a, cc, reason, sizeof reason, &code);
        if (out == OUT_DONE) {
            rc = CT_OK;
            break;
        }
        if (out == OUT_FAIL || req->no_retry) {
            rc = ct_error_set(err, code, "%s", reason);
            break;
        }
        if (retries_used >= c->opt.max_retries) {
            rc = ct_error_set(err, CT_ENET, "%s (gave up after %d attempt%s)", reason, res->attempts,
                              res->attempts == 1 ? "" : "s");
            break;
        }
        retries_used++;
        long wait_ms = ct_client_backoff_ms(&c->opt, retries_used);
        if (a.retry_after_s >= 0) {
            long asked_ms = a.retry_after_s * 1000L;
            if (asked_ms > c->opt.backoff_max_ms)
                asked_ms = c->opt.backoff_max_ms;
            if (asked_ms > wait_ms)
                wait_ms = asked_ms;
        }
        if (req->should_stop && req->should_stop(req->cb_ctx)) {
            res->stopped = 1;
            rc = ct_error_set(err, CT_ENET, "%s (stopped before retrying)", reason);
            break;
        }
        if (on_retry)
            on_retry(retry_ctx, res->attempts + 1, wait_ms, reason);
        if (pause_ms(wait_ms, req->should_stop, req->cb_ctx)) {
            res->stopped = 1;
            rc = ct_error_set(err, CT_ENET, "%s (stopped before retrying)", reason);
            break;
        }
    }
    /* Leave the handle as ct_client_new made it: the header list is freed
     * below, and libcurl must not keep a pointer into it or into `a`. */
    curl_easy_reset(c->curl);
    (void)ct_client_apply_defaults(c);
    curl_slist_free_all(hdrs);
    return rc;
}
