/* http room, server: starts and stops civetweb with cardiotwin's choices
 * and wires its callbacks to ours. The one idea: civetweb is configured so
 * that it does nothing on its own. There is one listening socket and it is
 * TLS (the "s" suffix; no plain-HTTP port, no redirect), no document root,
 * no CGI, no automatic CORS answers, no log files; TLS is set up entirely
 * by init_ssl (tls.c); every request goes to ct_http_dispatch (router.c);
 * civetweb's own messages go to the caller's on_log and its access lines
 * are dropped in favour of ours (which leave out the query string).
 *
 * What civetweb still answers by itself (a malformed request line, headers
 * over max_request_size) carries the same security headers through its
 * additional_header option, and HSTS through
 * strict_transport_security_max_age. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash_internal.h"
#include "http_internal.h"

void ct_http_options_init(ct_http_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->bind_addr = CT_HTTP_DEFAULT_BIND;
    opt->port = CT_HTTP_DEFAULT_PORT;
    opt->threads = CT_HTTP_DEFAULT_THREADS;
    opt->max_body_bytes = CT_HTTP_DEFAULT_MAX_BODY_BYTES;
    opt->rate_limit_per_s = CT_HTTP_DEFAULT_RATE_PER_S;
    opt->rate_limit_burst = CT_HTTP_DEFAULT_RATE_BURST;
}

void ct_http_log(ct_http_server *srv, ct_http_log_level level, const char *fmt, ...)
{
    if (!srv || !srv->opt.on_log)
        return;
    char msg[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv->opt.on_log(srv->opt.log_user, level, msg);
}

/* civetweb's error messages. While ct_http_start waits in mg_start2 they
 * explain its failure ("cannot bind to ...: Address already in use"), so
 * they are kept for the error rather than printed twice. */
static int on_civetweb_message(const struct mg_connection *conn, const char *message)
{
    ct_http_server *srv = mg_get_user_data(mg_get_context(conn));
    if (!srv)
        return 1;
    char line[CT_ERROR_MSG_MAX];
    const struct mg_request_info *ri = mg_get_request_info(conn);
    if (ri && ri->remote_addr[0])
        snprintf(line, sizeof line, "client %s: %s", ri->remote_addr, message);
    else
        snprintf(line, sizeof line, "%s", message);
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';

    pthread_mutex_lock(&srv->log_lock);
    int starting = srv->starting;
    /* The first message is the cause ("cannot bind to ..."); civetweb's
     * later ones only summarise it ("Failed to setup server ports"). */
    if (starting && !srv->start_msg[0])
        memcpy(srv->start_msg, line, sizeof line);
    pthread_mutex_unlock(&srv->log_lock);
    if (!starting)
        ct_http_log(srv, CT_HTTP_LOG_ERROR, "%s", line);
    return 1;
}

static int on_civetweb_access(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    (void)message;
    return 1; /* router.c reports each request itself */
}

/* civetweb's own error responses (a request line or headers it cannot
 * parse, headers over its limit) are written here rather than by civetweb:
 * civetweb 1.15 builds their status line from the client's HTTP version
 * string, so a request line with a space in its target ("GET /a b
 * HTTP/1.1") made it echo whatever followed -- the next header lines, a
 * bearer token among them -- into the status line. Found by
 * tests/fuzz/fuzz_http_request.c. Here the line is always HTTP/1.1, with
 * the security headers, and the connection closes. Returns 0: handled. */
static int on_http_error(struct mg_connection *conn, int status, const char *msg)
{
    (void)msg;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    static const char body_fmt[] = "Error %d: %s\n";
    char body[128];
    int blen = snprintf(body, sizeof body, body_fmt, status, mg_get_response_code_text(conn, status));
    if (blen < 0 || (size_t)blen >= sizeof body)
        blen = 0;
    char head[1024];
    size_t used = 0;
    int w = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, mg_get_response_code_text(conn, status));
    used = w > 0 ? (size_t)w : 0;
    for (size_t i = 0; i < ct_http_n_security_headers && used < sizeof head; i++) {
        w = snprintf(head + used, sizeof head - used, "%s: %s\r\n", ct_http_security_headers[i].name,
                     ct_http_security_headers[i].value);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used < sizeof head) {
        w = snprintf(head + used, sizeof head - used,
                     "Cache-Control: no-store\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\n",
                     blen);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used >= sizeof head)
        return 1; /* cannot happen with our headers; let civetweb answer */
    mg_write(conn, head, used);
    if (ri && ri->request_method && strcmp(ri->request_method, "HEAD") == 0)
        return 0;
    mg_write(conn, body, (size_t)blen);
    return 0;
}

static int on_init_ssl(void *ssl_ctx, void *user_data)
{
    ct_http_server *srv = user_data;
    return ct_http_tls_configure(srv, ssl_ctx, &srv->tls_err) == 0 ? 1 : -1;
}

/* Accepts "::1", "[::1]" and "127.0.0.1"; names are refused because
 * civetweb would resolve them once, silently, at start. */
static int parse_bind(ct_http_server *srv, const char *in, ct_error *err)
{
    char host[64];
    size_t n = strlen(in);
    if (n >= sizeof host)
        return ct_error_set(err, CT_EINVAL, "bind address is too long (%zu characters)", n);
    if (n >= 2 && in[0] == '[' && in[n - 1] == ']') {
        memcpy(host, in + 1, n - 2);
        host[n - 2] = '\0';
    } else {
        memcpy(host, in, n + 1);
    }
    unsigned char addr[16];
    if (inet_pton(AF_INET, host, addr) == 1)
        srv->bind_is_ipv6 = 0;
    else if (inet_pton(AF_INET6, host, addr) == 1)
        srv->bind_is_ipv6 = 1;
    else
        return ct_error_set(err, CT_EINVAL,
                            "bind address '%s' is not an IPv4 or IPv6 address "
                            "(e.g. 127.0.0.1, 0.0.0.0, ::1, ::)",
                            in);
    memcpy(srv->bind_addr, host, strlen(host) + 1);
    return 0;
}

static int copy_path(char *dst, size_t cap, const char *src, const char *what, ct_error *err)
{
    size_t n = strlen(src);
    if (n == 0)
        return ct_error_set(err, CT_EINVAL, "%s path is empty", what);
    if (n >= cap)
        return ct_error_set(err, CT_ELIMIT, "%s path is too long (%zu bytes)", what, n);
    memcpy(dst, src, n + 1);
    return 0;
}

static int check_options(const ct_http_options *opt, ct_error *err)
{
    if (opt->port < 0 || opt->port > 65535)
        return ct_error_set(err, CT_EINVAL, "port %d is out of range 0..65535", opt->port);
    if (opt->threads < 1 || opt->threads > CT_HTTP_MAX_THREADS)
        return ct_error_set(err, CT_EINVAL, "%d worker threads is out of range 1..%d",
                            opt->threads, CT_HTTP_MAX_THREADS);
    if (opt->max_body_bytes < 1 || opt->max_body_bytes > CT_HTTP_MAX_BODY_BYTES_LIMIT)
        return ct_error_set(err, CT_EINVAL, "body limit %lld bytes is out of range 1..%lld",
                            (long long)opt->max_body_bytes,
                            (long long)CT_HTTP_MAX_BODY_BYTES_LIMIT);
    if (!opt->cert_path != !opt->key_path)
        return ct_error_set(err, CT_EINVAL,
                            "a certificate needs its key and a key its certificate: give both or "
                            "neither");
    if (opt->client_cert_required && !opt->client_ca_file)
        return ct_error_set(err, CT_EINVAL, "a required client certificate needs a client CA file to verify it");
    if (opt->client_ca_file && !*opt->client_ca_file)
        return ct_error_set(err, CT_EINVAL, "the client CA file name is empty");
    /* NaN fails every comparison: written so that it fails these too. */
    if (!(opt->rate_limit_per_s < 0) && !(opt->rate_limit_per_s >= 0 && opt->rate_limit_per_s <= 1e6))
        return ct_error_set(err, CT_EINVAL, "a rate limit of %g requests a second is out of range 0..1000000 "
                            "(negative: no limit)", opt->rate_limit_per_s);
    if (!(opt->rate_limit_per_s < 0) && !(opt->rate_limit_burst >= 0 && opt->rate_limit_burst <= 1e6))
        return ct_error_set(err, CT_EINVAL, "a rate burst of %g requests is out of range 0..1000000",
                            opt->rate_limit_burst);
    if (!opt->cert_path && (!opt->state_dir || !*opt->state_dir))
        return ct_error_set(err, CT_EINVAL,
                            "no certificate and no state directory to keep a generated one in");
    return 0;
}

/* Certificate and key: the operator's, or the generated pair. */
static int prepare_tls(ct_http_server *srv, const ct_http_options *opt, ct_error *err)
{
    int rc;
    int strict = 0;
    if (opt->cert_path) {
        rc = copy_path(srv->cert_path, sizeof srv->cert_path, opt->cert_path, "certificate", err);
        if (rc == 0)
            rc = copy_path(srv->key_path, sizeof srv->key_path, opt->key_path, "key", err);
    } else {
        ct_http_tls_files files;
        rc = ct_http_tls_ensure_self_signed(opt->state_dir, &files, err);
        if (rc == 0) {
            memcpy(srv->cert_path, files.cert_path, sizeof srv->cert_path);
            memcpy(srv->key_path, files.key_path, sizeof srv->key_path);
            if (files.created)
                ct_http_log(srv, CT_HTTP_LOG_INFO,
                            "generated a self-signed certificate for localhost: %s (key %s)",
                            srv->cert_path, srv->key_path);
        }
        strict = 1;
    }
    if (rc == 0)
        rc = ct_http_tls_load(srv, strict, err);
    return rc == 0 ? ct_http_tls_load_client_ca(srv, err) : rc;
}

static void build_extra_headers(ct_http_server *srv)
{
    size_t used = 0;
    srv->extra_headers[0] = '\0';
    for (size_t i = 0; i < ct_http_n_security_headers; i++) {
        /* civetweb adds HSTS itself from strict_transport_security_max_age. */
        if (strcmp(ct_http_security_headers[i].name, "Strict-Transport-Security") == 0)
            continue;
        int w = snprintf(srv->extra_headers + used, sizeof srv->extra_headers - used, "%s: %s\r\n",
                         ct_http_security_headers[i].name, ct_http_security_headers[i].value);
        if (w < 0 || (size_t)w >= sizeof srv->extra_headers - used)
            break;
        used += (size_t)w;
    }
}

static void free_server(ct_http_server *srv)
{
    ct_http_dash_free(srv); /* its feeder reads the twin: stopped first */
    ct_http_demo_stop(srv);
    ct_http_twin_free(srv);
    ct_http_pool_free(srv);
    ct_http_limiter_free(srv->limiter);
    free(srv->capability);
    ct_http_tls_release(srv);
    if (srv->lib_initialized)
        mg_exit_library();
    pthread_mutex_destroy(&srv->log_lock);
    free(srv);
}

int ct_http_start(const ct_http_options *opt, ct_http_server **out, ct_error *err)
{
    if (out)
        *out = NULL;
    if (!opt || !out)
        return ct_error_set(err, CT_EINVAL, "ct_http_start needs options and a result pointer");
    int rc = check_options(opt, err);
    if (rc != 0)
        return rc;

    ct_http_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return ct_error_set(err, CT_ENOMEM, "out of memory starting the HTTPS server");
    if (pthread_mutex_init(&srv->log_lock, NULL) != 0) {
        free(srv);
        return ct_error_set(err, CT_ENOMEM, "cannot create a mutex");
    }
    srv->opt = *opt;
    if (srv->opt.rate_limit_per_s == 0)
        srv->opt.rate_limit_per_s = CT_HTTP_DEFAULT_RATE_PER_S;
    if (srv->opt.rate_limit_burst == 0)
        srv->opt.rate_limit_burst = CT_HTTP_DEFAULT_RATE_BURST;
    srv->limiter = ct_http_limiter_new();
    if (!srv->limiter) {
        pthread_mutex_destroy(&srv->log_lock);
        free(srv);
        return ct_error_set(err, CT_ENOMEM, "out of memory for the rate limiter");
    }
    /* Configuration that can be wrong (address, certificate, key) is
     * checked before the twin starts, so that a refusal is the only line
     * printed and nothing was started for nothing. */
    rc = ct_http_capability_init(srv, err);
    if (rc == 0)
        rc = ct_http_pool_init(srv, err);
    if (rc == 0)
        rc = parse_bind(srv, opt->bind_addr ? opt->bind_addr : CT_HTTP_DEFAULT_BIND, err);
    if (rc == 0)
        rc = prepare_tls(srv, opt, err);
    if (rc == 0)
        rc = ct_http_dash_init(srv, err);
    if (rc == 0)
        rc = ct_http_twin_init(srv, err);
    if (rc == 0)
        rc = ct_http_demo_init(srv, err);
    if (rc != 0) {
        free_server(srv);
        return rc;
    }
    srv->opt.bind_addr = srv->bind_addr;
    srv->opt.cert_path = srv->cert_path;
    srv->opt.key_path = srv->key_path;
    srv->opt.state_dir = NULL; /* not needed after start; the caller's strings may go */
    srv->opt.policy_path = NULL;
    srv->opt.upstream_url = srv->upstream_url[0] ? srv->upstream_url : NULL;
    srv->opt.upstream_ca_file = srv->upstream_ca[0] ? srv->upstream_ca : NULL;
    build_extra_headers(srv);

    unsigned want = MG_FEATURES_TLS | MG_FEATURES_IPV6 | MG_FEATURES_WEBSOCKET;
    unsigned got = mg_init_library(want);
    srv->lib_initialized = got != 0;
    if ((got & MG_FEATURES_TLS) == 0) {
        free_server(srv);
        return ct_error_set(err, CT_ETLS, "civetweb was built without TLS support");
    }

    char ports[96], threads[16];
    if (srv->bind_is_ipv6)
        snprintf(ports, sizeof ports, "[%s]:%ds", srv->bind_addr, opt->port);
    else
        snprintf(ports, sizeof ports, "%s:%ds", srv->bind_addr, opt->port);
    snprintf(threads, sizeof threads, "%d", opt->threads);
    const char *options[] = {
        "listening_ports", ports,
        "num_threads", threads,
        "ssl_protocol_version", "4", /* TLS 1.2+; tls.c sets the same minimum */
        "strict_transport_security_max_age", CT_HTTP_HSTS_MAX_AGE,
        "additional_header", srv->extra_headers,
        "enable_keep_alive", "yes",
        "keep_alive_timeout_ms", "5000",
        /* The TLS handshake, and then the request line and headers, must
         * each arrive within this (civetweb counts the headers' time from
         * the end of the handshake, not per byte): a peer that connects
         * and dribbles holds a worker 2 x 5 s at most. A body is paced in
         * body.c. docs/security.md, "Rate limits and slow clients". */
        "request_timeout_ms", "5000",
        "tcp_nodelay", "1",
        "access_control_allow_origin", "",
        "access_control_allow_methods", "",
        "access_control_allow_headers", "",
        "enable_directory_listing", "no",
        /* The router decodes the path itself and refuses ambiguous ones
         * (%00, %2F, encoded dot segments): see router.c. */
        "decode_url", "no",
        NULL, NULL,
    };
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.init_ssl = on_init_ssl;
    cb.log_message = on_civetweb_message;
    cb.log_access = on_civetweb_access;
    cb.http_error = on_http_error;
    struct mg_init_data init = {.callbacks = &cb, .user_data = srv, .configuration_options = options};
    char mg_err[256] = "";
    struct mg_error_data mg_error = {.text = mg_err, .text_buffer_size = sizeof mg_err};

    srv->starting = 1;
    srv->mg = mg_start2(&init, &mg_error);
    pthread_mutex_lock(&srv->log_lock);
    srv->starting = 0;
    pthread_mutex_unlock(&srv->log_lock);
    /* The SSL_CTX holds its own references now; drop ours so that the key
     * lives in one place only. */
    ct_http_tls_release(srv);

    if (!srv->mg) {
        if (srv->tls_err.code != CT_OK) {
            rc = ct_error_set(err, srv->tls_err.code, "%s", srv->tls_err.msg);
        } else {
            const char *why = srv->start_msg[0] ? srv->start_msg : mg_err[0] ? mg_err : "unknown error";
            rc = ct_error_set(err, CT_ENET, "cannot start the HTTPS server on %s port %d: %s",
                              srv->bind_addr, opt->port, why);
        }
        free_server(srv);
        return rc;
    }

    struct mg_server_port sp[4];
    int n = mg_get_server_ports(srv->mg, 4, sp);
    if (n < 1 || sp[0].port <= 0) {
        ct_http_stop(srv);
        return ct_error_set(err, CT_ENET, "the HTTPS server started but reports no port");
    }
    srv->port = sp[0].port;
    mg_set_request_handler(srv->mg, "/", ct_http_dispatch, srv);
    if ((rc = ct_http_dash_start(srv, err)) != 0) {
        ct_http_stop(srv);
        return rc;
    }
    if ((rc = ct_http_demo_start(srv, err)) != 0) {
        ct_http_stop(srv);
        return rc;
    }
    /* Started anyway: what civetweb complained about is still worth a look. */
    if (srv->start_msg[0])
        ct_http_log(srv, CT_HTTP_LOG_WARNING, "%s", srv->start_msg);
    *out = srv;
    return 0;
}

void ct_http_stop(ct_http_server *srv)
{
    if (!srv)
        return;
    if (srv->mg)
        mg_stop(srv->mg);
    srv->mg = NULL;
    free_server(srv);
}

int ct_http_port(const ct_http_server *srv)
{
    return srv ? srv->port : -1;
}

int ct_http_url(const ct_http_server *srv, char *buf, size_t cap)
{
    if (!srv || !buf || cap == 0)
        return CT_EINVAL;
    int w = srv->bind_is_ipv6 ? snprintf(buf, cap, "https://[%s]:%d/", srv->bind_addr, srv->port)
                              : snprintf(buf, cap, "https://%s:%d/", srv->bind_addr, srv->port);
    return (w < 0 || (size_t)w >= cap) ? CT_ELIMIT : 0;
}

const char *ct_http_cert_path(const ct_http_server *srv)
{
    return srv ? srv->cert_path : NULL;
}
