/* client: downloading one URL to one file. The one idea: the file under its
 * final name is only ever the product of rename(2) after verification, so a
 * reader of DEST sees either nothing or a whole, checked file. Everything in
 * flight lives in DEST.part, which doubles as the resume state: its size is
 * the offset of the next Range request.
 *
 * Each attempt is classified after libcurl returns:
 *   done       2xx and the body complete              -> verify, rename
 *   retry      connection errors, timeouts, a cut      -> pause, attempt again
 *              body, HTTP 408, 429, 5xx                   (resuming .part)
 *   restart    416, or a 206 whose Content-Range does  -> drop .part, once,
 *              not start where .part ends                 without a pause
 *   fail       404/410, other 4xx, too large, TLS,     -> drop .part, report
 *              disk errors, bad redirects
 * A transient failure that used up the retries keeps .part for the next run.
 *
 * Pauses grow as base * 2^(n-1) up to a cap, without jitter: one command
 * downloading a few files does not synchronise with other clients. The
 * outbox, with many clients retrying against one upstream, will need jitter. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client_internal.h"

enum abort_reason { ABORT_NONE, ABORT_HTTP, ABORT_LIMIT, ABORT_IO, ABORT_RANGE };

/* The state of one attempt, shared with libcurl's callbacks. */
typedef struct xfer {
    const ct_client *c;
    int fd;
    int64_t offset;         /* bytes already in .part when the attempt began */
    int64_t base;           /* file offset of this response's first body byte */
    int64_t written;        /* body bytes written by this attempt */
    int64_t max_bytes;
    /* The response being read (reset at every status line: redirects, 1xx). */
    long status;
    int64_t content_length; /* -1 when absent */
    int64_t range_start;    /* from Content-Range, -1 when absent */
    int64_t range_total;    /* from Content-Range, -1 when absent or '*' */
    long retry_after_s;     /* -1 when absent or an HTTP date */
    int has_location;
    int headers_done;       /* the final 2xx response's headers are in */
    int restarted;          /* a 200 answered our Range request */
    enum abort_reason abort;
    int io_errno;
} xfer;

static int64_t parse_i64(const char *s, const char **end)
{
    int64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
        p++;
    }
    if (end)
        *end = p;
    return p == s ? -1 : v;
}

/* "Name: value" with a case-insensitive name; returns the value, blanks skipped. */
static const char *header_value(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
        return NULL;
    const char *v = line + n + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    return v;
}

static int end_of_headers(xfer *x)
{
    if (x->status >= 100 && x->status < 200)
        return 1; /* an interim response: the real one follows */
    if (x->status >= 300 && x->status < 400 && x->has_location)
        return 1; /* libcurl follows it (within max_redirects) */
    if (x->status < 200 || x->status >= 300) {
        x->abort = ABORT_HTTP;
        return 0;
    }
    if (x->status == 206) {
        /* A 206 must continue exactly where .part ends, or the file would be
         * stitched from the wrong pieces. */
        if (x->offset == 0 || x->range_start != x->offset) {
            x->abort = ABORT_RANGE;
            return 0;
        }
        x->base = x->offset;
    } else {
        x->base = 0;
        if (x->offset > 0) {
            /* The server sent the whole file: start .part over. */
            if (ftruncate(x->fd, 0) != 0) {
                x->io_errno = errno;
                x->abort = ABORT_IO;
                return 0;
            }
            x->restarted = 1;
        }
    }
    if ((x->content_length >= 0 && x->base + x->content_length > x->max_bytes) ||
        (x->status == 206 && x->range_total > x->max_bytes)) {
        x->abort = ABORT_LIMIT;
        return 0;
    }
    x->headers_done = 1;
    return 1;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer *x = ud;
    size_t len = size * nitems;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* "HTTP/1.1 206 Partial Content" or "HTTP/2 200" */
        const char *p = memchr(buf, ' ', len);
        x->status = 0;
        if (p && (size_t)(p - buf) + 4 <= len && isdigit((unsigned char)p[1]) &&
            isdigit((unsigned char)p[2]) && isdigit((unsigned char)p[3]))
            x->status = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
        x->content_length = -1;
        x->range_start = -1;
        x->range_total = -1;
        x->retry_after_s = -1;
        x->has_location = 0;
        x->headers_done = 0;
        return len;
    }
    if (x->headers_done)
        return len; /* trailers of a chunked body: nothing we use */
    if ((len == 2 && buf[0] == '\r' && buf[1] == '\n') || (len == 1 && buf[0] == '\n'))
        return end_of_headers(x) ? len : 0;

    /* libcurl hands a header line that is not NUL-terminated; copy it. */
    char line[512];
    size_t n = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, buf, n);
    line[n] = '\0';
    const char *v;
    if ((v = header_value(line, n, "Content-Length")) != NULL) {
        x->content_length = parse_i64(v, NULL);
    } else if ((v = header_value(line, n, "Content-Range")) != NULL) {
        /* bytes START-END/TOTAL (TOTAL may be '*') */
        if (strncasecmp(v, "bytes ", 6) == 0) {
            const char *e;
            x->range_start = parse_i64(v + 6, &e);
            if (x->range_start >= 0 && *e == '-') {
                const char *slash = strchr(e, '/');
                x->range_total = slash ? parse_i64(slash + 1, NULL) : -1;
            }
        }
    } else if ((v = header_value(line, n, "Retry-After")) != NULL) {
        int64_t s = parse_i64(v, NULL);
        x->retry_after_s = s >= 0 && s < 86400 ? (long)s : -1;
    } else if (header_value(line, n, "Location") != NULL) {
        x->has_location = 1;
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud)
{
    xfer *x = ud;
    size_t len = size * nmemb;
    if (!x->headers_done) {
        /* A body without a final 2xx header block: a 3xx without Location. */
        if (x->abort == ABORT_NONE)
            x->abort = ABORT_HTTP;
        return 0;
    }
    if ((int64_t)len > x->max_bytes - x->base - x->written) {
        x->abort = ABORT_LIMIT;
        return 0;
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(x->fd, buf + off, len - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            x->io_errno = errno;
            x->abort = ABORT_IO;
            return 0;
        }
        off += (size_t)w;
    }
    x->written += (int64_t)len;
    return len;
}

static int on_xferinfo(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    xfer *x = ud;
    if (x->headers_done && x->c->opt.on_progress) {
        int64_t total = dltotal > 0 ? x->base + (int64_t)dltotal : -1;
        x->c->opt.on_progress(x->c->opt.cb_ctx, x->base + (int64_t)dlnow, total);
    }
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

enum outcome { OUT_DONE, OUT_RETRY, OUT_RESTART, OUT_FAIL };

int ct_client_curl_is_transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR: /* mostly a connection reset mid-handshake */
        return 1;
    default:
        return 0;
    }
}

int ct_client_curl_is_tls(CURLcode rc)
{
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

/* Decides what an attempt's end means. reason gets one line for the retry
 * hook or the error; *code the CT_E... code for a failure. */
static enum outcome classify(const ct_client *c, const xfer *x, CURLcode rc, const char *url,
                             char *reason, size_t reason_size, int *code)
{
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    *code = CT_ENET;
    switch (x->abort) {
    case ABORT_LIMIT:
        *code = CT_ELIMIT;
        if (x->content_length >= 0 && x->base + x->content_length > x->max_bytes)
            snprintf(reason, reason_size, "%s is %" PRId64 " bytes, more than the limit of %" PRId64,
                     url, x->base + x->content_length, x->max_bytes);
        else
            snprintf(reason, reason_size, "%s is larger than the limit of %" PRId64 " bytes", url,
                     x->max_bytes);
        return OUT_FAIL;
    case ABORT_IO:
        *code = CT_EIO;
        snprintf(reason, reason_size, "writing the download of %s failed: %s", url,
                 strerror(x->io_errno));
        return OUT_FAIL;
    case ABORT_RANGE:
        snprintf(reason, reason_size,
                 "%s: asked for bytes from %" PRId64 ", the server's partial response starts at %" PRId64,
                 url, x->offset, x->range_start);
        return OUT_RESTART;
    case ABORT_HTTP:
    case ABORT_NONE:
        break;
    }
    if (x->abort == ABORT_HTTP || (rc == CURLE_OK && (x->status < 200 || x->status >= 300))) {
        long s = x->status;
        snprintf(reason, reason_size, "HTTP %ld from %s", s, url);
        if (s == 416 && x->offset > 0)
            return OUT_RESTART;
        if (s == 404 || s == 410) {
            *code = CT_ENOTFOUND;
            return OUT_FAIL;
        }
        if (s == 408 || s == 429 || (s >= 500 && s <= 599))
            return OUT_RETRY;
        return OUT_FAIL;
    }
    if (rc == CURLE_OK)
        return OUT_DONE;
    if (rc == CURLE_PARTIAL_FILE && x->content_length >= 0)
        snprintf(reason, reason_size, "%s: connection closed after %" PRId64 " of %" PRId64 " bytes",
                 url, x->base + x->written, x->base + x->content_length);
    else
        snprintf(reason, reason_size, "%s: %s", url, detail);
    if (ct_client_curl_is_transient(rc))
        return OUT_RETRY;
    if (ct_client_curl_is_tls(rc))
        *code = CT_ETLS;
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_URL_MALFORMAT)
        *code = CT_EINVAL;
    return OUT_FAIL;
}

/* Per-attempt options: everything that points at this attempt's state. */
static CURLcode setup_attempt(ct_client *c, const char *url, xfer *x)
{
    CURL *h = c->curl;
    char range[32]; /* libcurl copies it */
    snprintf(range, sizeof range, "%" PRId64 "-", x->offset);
    CURLcode cc = curl_easy_setopt(h, CURLOPT_URL, url);
    /* A download that started on https may not be redirected to plain http. */
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR,
                              strncmp(url, "https://", 8) == 0 ? "https" : "http,https");
    /* The Range header is set by hand rather than with RESUME_FROM: libcurl
     * then neither refuses a 200 answer (we restart from zero instead) nor
     * takes a 200 whose length equals .part for "already complete". */
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_RANGE, x->offset > 0 ? range : NULL);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xferinfo);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    if (cc == CURLE_OK)
        cc = curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    return cc;
}

static int fsync_close(int fd)
{
    int rc = fsync(fd);
    int saved = errno;
    if (close(fd) != 0 && rc == 0)
        return -1;
    errno = saved;
    return rc;
}

int ct_client_download(ct_client *c, const char *url, const char *dest_path, int64_t max_bytes,
                       ct_client_verify_fn verify, void *verify_ctx, ct_client_result *res,
                       ct_error *err)
{
    ct_client_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!c || !dest_path || !*dest_path)
        return ct_error_set(err, CT_EINVAL, "download: no client or destination");
    int rc = ct_client_url_check(url, err);
    if (rc)
        return rc;
    char part[CT_CLIENT_PATH_MAX];
    if ((size_t)snprintf(part, sizeof part, "%s.part", dest_path) >= sizeof part)
        return ct_error_set(err, CT_EINVAL, "download: destination path is too long");
    int64_t limit = c->opt.max_bytes;
    if (max_bytes > 0 && max_bytes < limit)
        limit = max_bytes;

    int retries_used = 0, restart_used = 0;
    char reason[CT_ERROR_MSG_MAX];
    for (;;) {
        struct stat st;
        int64_t offset = 0;
        if (stat(part, &st) == 0) {
            if (!S_ISREG(st.st_mode))
                return ct_error_set(err, CT_EIO, "%s exists and is not a regular file", part);
            offset = (int64_t)st.st_size;
            if (offset > limit) {
                /* Left by a run with a larger limit: it cannot be continued. */
                if (unlink(part) != 0)
                    return ct_error_set(err, CT_EIO, "cannot remove %s: %s", part, strerror(errno));
                offset = 0;
            }
        } else if (errno != ENOENT) {
            return ct_error_set(err, CT_EIO, "cannot examine %s: %s", part, strerror(errno));
        }
        int fd = open(part, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
            return ct_error_set(err, CT_EIO, "cannot open %s for writing: %s", part, strerror(errno));

        xfer x = {.c = c, .fd = fd, .offset = offset, .max_bytes = limit, .content_length = -1,
                  .range_start = -1, .range_total = -1, .retry_after_s = -1};
        c->errbuf[0] = '\0';
        CURLcode cc = setup_attempt(c, url, &x);
        if (cc != CURLE_OK) {
            close(fd);
            return ct_error_set(err, CT_EUNSUPPORTED, "download %s: libcurl refused an option: %s", url,
                                curl_easy_strerror(cc));
        }
        cc = curl_easy_perform(c->curl);
        res->attempts++;
        res->http_status = x.status;
        if (x.status == 206 && x.headers_done)
            res->resumed++;
        if (x.restarted)
            res->restarted++;

        int code = CT_ENET;
        enum outcome out = classify(c, &x, cc, url, reason, sizeof reason, &code);
        if (out == OUT_DONE) {
            if (fsync_close(fd) != 0) {
                rc = ct_error_set(err, CT_EIO, "cannot write %s: %s", part, strerror(errno));
                unlink(part);
                return rc;
            }
            break;
        }
        if (close(fd) != 0 && out != OUT_FAIL) {
            rc = ct_error_set(err, CT_EIO, "cannot write %s: %s", part, strerror(errno));
            unlink(part);
            return rc;
        }
        if (out == OUT_FAIL) {
            unlink(part);
            return ct_error_set(err, code, "%s", reason);
        }
        if (out == OUT_RESTART) {
            /* The server's idea of the file differs from .part: start over,
             * once; a second time means the server cannot be resumed from. */
            unlink(part);
            if (restart_used)
                return ct_error_set(err, CT_ENET, "%s (again after starting over)", reason);
            restart_used = 1;
            continue;
        }
        /* OUT_RETRY: .part keeps what arrived, the next attempt resumes. */
        if (retries_used >= c->opt.max_retries) {
            /* An empty .part holds nothing to resume: do not leave it. */
            if (stat(part, &st) == 0 && st.st_size == 0)
                unlink(part);
            return ct_error_set(err, CT_ENET, "%s (gave up after %d attempt%s)", reason, res->attempts,
                                res->attempts == 1 ? "" : "s");
        }
        retries_used++;
        long wait_ms = ct_client_backoff_ms(&c->opt, retries_used);
        if (x.retry_after_s >= 0) {
            long asked_ms = x.retry_after_s * 1000L;
            if (asked_ms > c->opt.backoff_max_ms)
                asked_ms = c->opt.backoff_max_ms;
            if (asked_ms > wait_ms)
                wait_ms = asked_ms;
        }
        if (c->opt.on_retry)
            c->opt.on_retry(c->opt.cb_ctx, res->attempts + 1, wait_ms, reason);
        sleep_ms(wait_ms);
    }

    struct stat st;
    if (stat(part, &st) != 0)
        return ct_error_set(err, CT_EIO, "cannot examine %s: %s", part, strerror(errno));
    res->bytes = (int64_t)st.st_size;
    if (verify) {
        ct_error verr = {0};
        rc = verify(verify_ctx, part, &verr);
        if (rc) {
            unlink(part);
            if (rc > 0)
                rc = CT_EFORMAT;
            if (!verr.msg[0])
                return ct_error_set(err, rc, "%s did not pass verification", url);
            return ct_error_set(err, rc, "%s", verr.msg);
        }
    }
    if (rename(part, dest_path) != 0) {
        rc = ct_error_set(err, CT_EIO, "cannot rename %s to %s: %s", part, dest_path, strerror(errno));
        unlink(part);
        return rc;
    }
    return CT_OK;
}
