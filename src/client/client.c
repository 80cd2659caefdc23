/* client: the options, the libcurl handle and URL building for cardiotwin's
 * outbound HTTP. The one idea: everything a transfer may do is decided here,
 * before the first byte moves. Options are checked against hard ceilings
 * (retries, pauses, body size), the protocols are fixed to http and https,
 * and TLS peer verification is set on and never offered off, so that the
 * transfer code in download.c has nothing left to decide but how to react
 * to what the server does. */
#include "cardiotwin/client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardiotwin/version.h"
#include "client_internal.h"

int ct_client_global_init(ct_error *err)
{
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK)
        return ct_error_set(err, CT_ENET, "libcurl initialisation failed: %s", curl_easy_strerror(rc));
    /* Our transfers rely on the string forms of the protocol options (7.85). */
    const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
    if (!v || v->version_num < 0x075500) {
        curl_global_cleanup();
        return ct_error_set(err, CT_EUNSUPPORTED, "libcurl %s is too old: 7.85.0 or newer is needed",
                            v ? v->version : "?");
    }
    return CT_OK;
}

void ct_client_global_cleanup(void)
{
    curl_global_cleanup();
}

void ct_client_options_default(ct_client_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_retries = 4;
    o->backoff_base_ms = 1000;
    o->backoff_max_ms = 30000;
    o->connect_timeout_ms = 15000;
    o->stall_timeout_ms = 30000;
    o->stall_min_bytes_per_s = 1024;
    o->attempt_timeout_ms = 0;
    o->max_redirects = 5;
    o->max_bytes = (int64_t)256 * 1024 * 1024;
}

/* Header values go on the wire: printable ASCII only, so nothing can split a
 * header line. */
static int is_header_safe(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

int ct_client_options_check(const ct_client_options *o, ct_error *err)
{
    if (!o)
        return ct_error_set(err, CT_EINVAL, "client options: missing");
    if (o->max_retries < 0 || o->max_retries > CT_CLIENT_MAX_RETRIES)
        return ct_error_set(err, CT_EINVAL, "client options: max_retries %d is outside 0..%d",
                            o->max_retries, CT_CLIENT_MAX_RETRIES);
    if (o->backoff_base_ms < 1 || o->backoff_base_ms > CT_CLIENT_MAX_BACKOFF_MS)
        return ct_error_set(err, CT_EINVAL, "client options: backoff_base_ms %ld is outside 1..%ld",
                            o->backoff_base_ms, CT_CLIENT_MAX_BACKOFF_MS);
    if (o->backoff_max_ms < o->backoff_base_ms || o->backoff_max_ms > CT_CLIENT_MAX_BACKOFF_MS)
        return ct_error_set(err, CT_EINVAL,
                            "client options: backoff_max_ms %ld is outside backoff_base_ms..%ld",
                            o->backoff_max_ms, CT_CLIENT_MAX_BACKOFF_MS);
    if (o->connect_timeout_ms < 1 || o->connect_timeout_ms > 600000)
        return ct_error_set(err, CT_EINVAL, "client options: connect_timeout_ms %ld is outside 1..600000",
                            o->connect_timeout_ms);
    /* libcurl measures stalls in whole seconds. */
    if (o->stall_timeout_ms < 1000 || o->stall_timeout_ms > 3600000)
        return ct_error_set(err, CT_EINVAL, "client options: stall_timeout_ms %ld is outside 1000..3600000",
                            o->stall_timeout_ms);
    if (o->stall_min_bytes_per_s < 1 || o->stall_min_bytes_per_s > (1L << 30))
        return ct_error_set(err, CT_EINVAL, "client options: stall_min_bytes_per_s %ld is outside 1..%ld",
                            o->stall_min_bytes_per_s, 1L << 30);
    if (o->attempt_timeout_ms < 0 || o->attempt_timeout_ms > 86400000L)
        return ct_error_set(err, CT_EINVAL, "client options: attempt_timeout_ms %ld is outside 0..86400000",
                            o->attempt_timeout_ms);
    if (o->max_redirects < 0 || o->max_redirects > CT_CLIENT_MAX_REDIRECTS)
        return ct_error_set(err, CT_EINVAL, "client options: max_redirects %ld is outside 0..%d",
                            o->max_redirects, CT_CLIENT_MAX_REDIRECTS);
    if (o->max_bytes < 1 || o->max_bytes > CT_CLIENT_MAX_BYTES_CEILING)
        return ct_error_set(err, CT_EINVAL, "client options: max_bytes %lld is outside 1..%lld",
                            (long long)o->max_bytes, (long long)CT_CLIENT_MAX_BYTES_CEILING);
    if (o->user_agent) {
        size_t n = strlen(o->user_agent);
        if (n == 0 || n >= CT_CLIENT_UA_MAX || !is_header_safe(o->user_agent))
            return ct_error_set(err, CT_EINVAL,
                                "client options: user_agent must be 1..%d printable ASCII characters",
                                CT_CLIENT_UA_MAX - 1);
    }
    if (o->ca_file) {
        size_t n = strlen(o->ca_file);
        if (n == 0 || n >= CT_CLIENT_PATH_MAX)
            return ct_error_set(err, CT_EINVAL, "client options: ca_file must be 1..%d characters",
                                CT_CLIENT_PATH_MAX - 1);
    }
    return CT_OK;
}

long ct_client_backoff_ms(const ct_client_options *o, int retry)
{
    long wait_ms = o->backoff_base_ms;
    for (int i = 1; i < retry && wait_ms < o->backoff_max_ms; i++)
        wait_ms *= 2; /* bounded by CT_CLIENT_MAX_BACKOFF_MS * 2: no overflow */
    return wait_ms < o->backoff_max_ms ? wait_ms : o->backoff_max_ms;
}

/* Options that hold for every transfer of this client. Also called after
 * curl_easy_reset by request.c, so that every transfer starts from these and
 * nothing one kind of transfer set leaks into the next (the connection
 * cache survives a reset). A failure means the libcurl build lacks a feature
 * we rely on. */
CURLcode ct_client_apply_defaults(ct_client *c)
{
    CURL *h = c->curl;
    const ct_client_options *opt = &c->opt;
    CURLcode cc = CURLE_OK;
#define SETOPT(opt_, val_)                                                                          \
    do {                                                                                            \
        if (cc == CURLE_OK)                                                                         \
            cc = curl_easy_setopt(h, opt_, val_);                                                   \
    } while (0)
    SETOPT(CURLOPT_ERRORBUFFER, c->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, 1L);
    SETOPT(CURLOPT_MAXREDIRS, opt->max_redirects);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, opt->connect_timeout_ms);
    SETOPT(CURLOPT_LOW_SPEED_LIMIT, opt->stall_min_bytes_per_s);
    SETOPT(CURLOPT_LOW_SPEED_TIME, (opt->stall_timeout_ms + 999) / 1000);
    SETOPT(CURLOPT_TIMEOUT_MS, opt->attempt_timeout_ms);
    SETOPT(CURLOPT_USERAGENT, c->user_agent);
    SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
    if (opt->ca_file)
        SETOPT(CURLOPT_CAINFO, c->ca_file);
#undef SETOPT
    return cc;
}

int ct_client_new(const ct_client_options *opt, ct_client **out, ct_error *err)
{
    *out = NULL;
    int rc = ct_client_options_check(opt, err);
    if (rc)
        return rc;
    if (opt->ca_file && access(opt->ca_file, R_OK) != 0)
        return ct_error_set(err, CT_EINVAL, "CA file %s cannot be read", opt->ca_file);

    ct_client *c = calloc(1, sizeof *c);
    if (!c)
        return ct_error_set(err, CT_ENOMEM, "client: out of memory");
    c->opt = *opt;
    if (opt->user_agent)
        snprintf(c->user_agent, sizeof c->user_agent, "%s", opt->user_agent);
    else
        snprintf(c->user_agent, sizeof c->user_agent, "cardiotwin/%s", CT_VERSION);
    c->opt.user_agent = c->user_agent;
    if (opt->ca_file) {
        snprintf(c->ca_file, sizeof c->ca_file, "%s", opt->ca_file);
        c->opt.ca_file = c->ca_file;
    }

    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        return ct_error_set(err, CT_ENOMEM, "client: libcurl could not make a handle "
                                            "(was ct_client_global_init called?)");
    }
    CURLcode cc = ct_client_apply_defaults(c);
    if (cc != CURLE_OK) {
        ct_client_free(c);
        return ct_error_set(err, CT_EUNSUPPORTED, "client: libcurl refused an option: %s",
                            curl_easy_strerror(cc));
    }
    *out = c;
    return CT_OK;
}

void ct_client_free(ct_client *c)
{
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c);
}

/* ---- URLs ------------------------------------------------------------------ */

static int scheme_len(const char *url)
{
    if (strncmp(url, "https://", 8) == 0)
        return 8;
    if (strncmp(url, "http://", 7) == 0)
        return 7;
    return 0;
}

int ct_client_url_check(const char *url, ct_error *err)
{
    if (!url || !*url)
        return ct_error_set(err, CT_EINVAL, "URL is empty");
    size_t n = strnlen(url, CT_CLIENT_MAX_URL);
    if (n >= CT_CLIENT_MAX_URL)
        return ct_error_set(err, CT_EINVAL, "URL is longer than %d characters", CT_CLIENT_MAX_URL - 1);
    int s = scheme_len(url);
    if (!s)
        return ct_error_set(err, CT_EINVAL, "URL %s: only http:// and https:// are supported", url);
    if (url[s] == '\0' || url[s] == '/')
        return ct_error_set(err, CT_EINVAL, "URL %s has no host", url);
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return ct_error_set(err, CT_EINVAL, "URL %s holds a space, control or non-ASCII character "
                                                "(percent-encode it)", url);
    return CT_OK;
}

static int is_unreserved(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_' || ch == '~';
}

int ct_client_url_join(const char *base, const char *name, char *out, size_t out_size,
                       ct_error *err)
{
    if (out && out_size)
        out[0] = '\0';
    if (!out || out_size == 0)
        return ct_error_set(err, CT_EINVAL, "URL join: no output buffer");
    int rc = ct_client_url_check(base, err);
    if (rc)
        return ct_error_prefix(err, "base URL");
    if (strpbrk(base, "?#"))
        return ct_error_set(err, CT_EINVAL, "base URL %s has a query or fragment: a file name "
                                            "cannot be appended to it", base);
    if (!name || !*name)
        return ct_error_set(err, CT_EINVAL, "URL join: empty file name");
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strchr(name, '/'))
        return ct_error_set(err, CT_EINVAL, "URL join: '%s' is not a single file name", name);

    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(base);
    int need_slash = base[n - 1] != '/';
    size_t len = n + (size_t)need_slash;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        len += is_unreserved(*p) ? 1 : 3;
    if (len >= out_size || len >= CT_CLIENT_MAX_URL)
        return ct_error_set(err, CT_ELIMIT, "URL for %s would be %zu characters, room for %zu", name,
                            len, (out_size < CT_CLIENT_MAX_URL ? out_size : CT_CLIENT_MAX_URL) - 1);
    char *w = out;
    memcpy(w, base, n);
    w += n;
    if (need_slash)
        *w++ = '/';
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (is_unreserved(*p)) {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    *w = '\0';
    return CT_OK;
}
