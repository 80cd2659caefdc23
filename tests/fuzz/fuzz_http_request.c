/* libFuzzer harness for the HTTP request handling, end to end: one real
 * server (ct_http_start on 127.0.0.1, port 0, a generated certificate, a
 * temporary database holding a Patient and an admin token) is started once
 * in LLVMFuzzerInitialize, and each input becomes one HTTP/1.1 request sent
 * over a kept-alive TLS connection (OpenSSL client, the certificate
 * verified), whose whole response is read back. So civetweb's parser, the
 * router's path decoding, authorize(), every handler (FHIR reads, searches,
 * writes, Bundles, the audit log) and the response writer all run on
 * hostile input in the same process as the sanitizers.
 *
 * Input layout: byte 0 the method, byte 1 flags (bit 0: send the valid
 * token; bit 1: form instead of FHIR JSON content type; bit 2: chunked
 * body; bit 3: close the connection after), byte 2 a path prefix from the
 * table below (so that mutations land on real routes), then the rest of
 * the path and query up to '\n', then header lines up to an empty line,
 * then the body. CR and LF inside the path or a header are replaced: one
 * input is one request.
 *
 * What must hold: every response starts with a well-formed status line
 * ("HTTP/1.1 NNN ", or HTTP/1.0 for what civetweb refuses before routing;
 * 100 <= NNN <= 599, never 500: an internal error is a bug), its length is what its headers say, and afterwards GET /healthz
 * answers 200, on the same connection or a new one. Anything else traps. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/http.h"
#include "cardiotwin/store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The one server and client connection of this process: libFuzzer's
 * interface leaves no other place for state that outlives one input. */
static struct {
    ct_http_server *srv;
    int port;
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;
    char token[CT_HTTP_TOKEN_BUF];
    char dir[64];
} g;

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"};
static const char *const prefixes[] = {
    "/fhir/Patient",   "/fhir/Observation", "/fhir/DiagnosticReport", "/fhir/Device", "/fhir/Provenance",
    "/fhir/AuditEvent", "/fhir",            "/fhir/metadata",         "/healthz",     "/.well-known/smart-configuration",
    "/fhir/Patient/p1", "/fhir/AuditEvent/1", "/",                    "/api/alerts",  "/fhir/Observation/_search",
    "",
};

#define RESP_MAX (8 * 1024 * 1024)

static void die(const char *what)
{
    fprintf(stderr, "fuzz_http_request: %s\n", what);
    ERR_print_errors_fp(stderr);
    __builtin_trap();
}

static void disconnect(void)
{
    if (g.ssl) {
        SSL_shutdown(g.ssl);
        SSL_free(g.ssl);
        g.ssl = NULL;
    }
    if (g.fd >= 0)
        close(g.fd);
    g.fd = -1;
}

static void connect_tls(void)
{
    disconnect();
    g.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (g.fd < 0)
        die("socket");
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g.port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 20};
    setsockopt(g.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(g.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(g.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(g.fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        die("connect: the server is gone");
    g.ssl = SSL_new(g.ctx);
    if (!g.ssl || SSL_set_fd(g.ssl, g.fd) != 1 || SSL_set_tlsext_host_name(g.ssl, "localhost") != 1 ||
        SSL_set1_host(g.ssl, "localhost") != 1 || SSL_connect(g.ssl) != 1)
        die("TLS handshake with the server failed");
}

static int send_all(const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        int w = SSL_write(g.ssl, c, n > INT32_MAX ? INT32_MAX : (int)n);
        if (w <= 0)
            return -1;
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

typedef struct resp {
    char *buf;
    size_t n, cap;
    int eof;
} resp;

/* Reads more bytes; 0 on EOF or error (the server closed). */
static int more(resp *r)
{
    if (r->eof)
        return 0;
    if (r->cap - r->n < 16384) {
        if (r->cap >= RESP_MAX)
            die("response larger than 8 MiB");
        r->cap = r->cap ? r->cap * 2 : 65536;
        r->buf = realloc(r->buf, r->cap + 1);
        if (!r->buf)
            die("out of memory");
    }
    int k = SSL_read(g.ssl, r->buf + r->n, (int)(r->cap - r->n));
    if (k <= 0) {
        int e = SSL_get_error(g.ssl, k);
        if (e == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK))
            die("the server did not answer within 20 s");
        r->eof = 1;
        return 0;
    }
    r->n += (size_t)k;
    r->buf[r->n] = '\0';
    return 1;
}

static const char *find_header(const char *head, size_t head_len, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = head; p && p < head + head_len;) {
        const char *eol = memchr(p, '\n', (size_t)(head + head_len - p));
        if (!eol)
            break;
        if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':')
            return p + nl + 1;
        p = eol + 1;
    }
    return NULL;
}

/* Reads one whole response; returns its status and sets *closed when the
 * server ends the connection with it. Traps on anything malformed. */
static int read_response(int head_request, int *closed)
{
    resp r = {0};
    char *end = NULL;
    while (!(r.buf && (end = strstr(r.buf, "\r\n\r\n"))))
        if (!more(&r))
            break;
    if (!end) {
        /* A connection closed without a response: only acceptable if the
         * server never got a request (nothing was read at all). */
        free(r.buf);
        if (r.n == 0) {
            *closed = 1;
            return 0;
        }
        die("a response without a complete header");
    }
    /* civetweb answers a request line it cannot parse as HTTP/1.0. */
    if (r.n < 13 || (memcmp(r.buf, "HTTP/1.1 ", 9) != 0 && memcmp(r.buf, "HTTP/1.0 ", 9) != 0) || r.buf[12] != ' ' || r.buf[9] < '1' || r.buf[9] > '5' ||
        r.buf[10] < '0' || r.buf[10] > '9' || r.buf[11] < '0' || r.buf[11] > '9')
        die("malformed status line");
    int status = (r.buf[9] - '0') * 100 + (r.buf[10] - '0') * 10 + (r.buf[11] - '0');
    size_t head_len = (size_t)(end - r.buf) + 4;
    const char *cl = find_header(r.buf, head_len, "Content-Length");
    const char *conn = find_header(r.buf, head_len, "Connection");
    const char *te = find_header(r.buf, head_len, "Transfer-Encoding");
    *closed = conn && strncasecmp(conn + strspn(conn, " "), "close", 5) == 0;
    if (status == 100) {
        /* A final response follows. */
        memmove(r.buf, r.buf + head_len, r.n - head_len + 1);
        free(r.buf);
        return read_response(head_request, closed);
    }
    if (head_request || status == 204 || status == 304) {
        /* no body */
    } else if (cl) {
        char *e;
        long long want = strtoll(cl, &e, 10);
        if (want < 0 || want > RESP_MAX)
            die("bad Content-Length in a response");
        while (r.n - head_len < (size_t)want)
            if (!more(&r))
                die("response body shorter than its Content-Length");
        if (r.n - head_len > (size_t)want)
            die("response body longer than its Content-Length");
    } else if (te) {
        die("unexpected chunked response");
    } else {
        /* Delimited by the end of the connection. */
        while (more(&r))
            ;
        *closed = 1;
    }
    free(r.buf);
    return status;
}

static void check_healthz(void)
{
    static const char req[] = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!g.ssl)
            connect_tls();
        int closed = 0;
        if (send_all(req, sizeof req - 1) == 0) {
            int st = read_response(0, &closed);
            if (closed)
                disconnect();
            if (st == 200)
                return;
            if (st != 0)
                die("GET /healthz did not answer 200");
        }
        disconnect();
    }
    die("GET /healthz does not answer");
}

static int request(const char *raw, size_t n, int head_request)
{
    if (!g.ssl)
        connect_tls();
    int closed = 0, st = 0;
    if (send_all(raw, n) == 0)
        st = read_response(head_request, &closed);
    else
        closed = 1;
    if (closed)
        disconnect();
    return st;
}

/* At exit: the server stopped, its temporary directory removed. */
static void cleanup(void)
{
    disconnect();
    ct_http_stop(g.srv);
    g.srv = NULL;
    SSL_CTX_free(g.ctx);
    static const char *const files[] = {"ct.db", "ct.db-wal", "ct.db-shm", "ct.db-journal", CT_HTTP_CERT_FILE,
                                        CT_HTTP_KEY_FILE};
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g.dir, files[i]);
        unlink(path);
    }
    rmdir(g.dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    g.fd = -1;
    /* A database in memory-backed /dev/shm when there is one: every
     * request commits (its audit entry), and fsync on a disk would make
     * the fuzzer measure the disk. */
    snprintf(g.dir, sizeof g.dir, "/dev/shm/ct-fuzz-http.XXXXXX");
    if (!mkdtemp(g.dir)) {
        snprintf(g.dir, sizeof g.dir, "/tmp/ct-fuzz-http.XXXXXX");
        if (!mkdtemp(g.dir))
            die("mkdtemp");
    }
    char db[128];
    snprintf(db, sizeof db, "%s/ct.db", g.dir);
    ct_store *st = NULL;
    ct_error err = {0};
    ct_audit_actor by = {"fuzz", "operator", "cli"};
    ct_http_token_spec spec = {.name = "fuzz-admin", .role = "admin"};
    if (ct_store_open(db, &st, &err) != 0 ||
        ct_http_token_create(st, &spec, &by, g.token, sizeof g.token, NULL, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        die("cannot prepare the database");
    }
    ct_store_close(st);

    ct_http_options opt;
    ct_http_options_init(&opt);
    opt.bind_addr = "127.0.0.1";
    opt.port = 0;
    opt.state_dir = g.dir;
    opt.db_path = db;
    opt.threads = 4;
    opt.max_body_bytes = 1024 * 1024;
    opt.rate_limit_per_s = -1;
    if (ct_http_start(&opt, &g.srv, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        die("cannot start the server");
    }
    g.port = ct_http_port(g.srv);
    atexit(cleanup);
    g.ctx = SSL_CTX_new(TLS_client_method());
    if (!g.ctx || SSL_CTX_load_verify_locations(g.ctx, ct_http_cert_path(g.srv), NULL) != 1)
        die("cannot trust the server's certificate");
    SSL_CTX_set_verify(g.ctx, SSL_VERIFY_PEER, NULL);

    /* Something to find: a Patient, an Observation, so reads and searches
     * get past "not found". */
    char req[2048];
    static const char patient[] = "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"name\":[{\"family\":\"Fuzz\"}]}";
    int n = snprintf(req, sizeof req,
                     "PUT /fhir/Patient/p1 HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/fhir+json\r\nContent-Length: %zu\r\n\r\n%s",
                     g.token, sizeof patient - 1, patient);
    int status = request(req, (size_t)n, 0);
    if (status != 201 && status != 200)
        die("cannot store the seed Patient");
    check_healthz();
    return 0;
}

/* Copies n bytes of s into out, replacing what would end the line. */
static size_t put_line_bytes(char *out, const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (s[i] == '\r' || s[i] == '\n') ? '%' : (char)s[i];
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    const char *method = methods[data[0] % (sizeof methods / sizeof methods[0])];
    unsigned flags = data[1];
    const char *prefix = prefixes[data[2] % (sizeof prefixes / sizeof prefixes[0])];
    const uint8_t *p = data + 3, *end = data + size;

    const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
    const uint8_t *path_end = nl ? nl : end;
    size_t cap = size * 2 + 1024;
    char *req = malloc(cap);
    if (!req)
        return 0;
    size_t used = (size_t)snprintf(req, cap, "%s %s", method, prefix);
    used += put_line_bytes(req + used, p, (size_t)(path_end - p));
    used += (size_t)snprintf(req + used, cap - used, " HTTP/1.1\r\nHost: localhost\r\n");
    if (flags & 1)
        used += (size_t)snprintf(req + used, cap - used, "Authorization: Bearer %s\r\n", g.token);
    p = nl ? nl + 1 : end;
    /* Header lines up to an empty one. */
    while (p < end) {
        nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = nl ? nl : end;
        if (le == p) {
            p = le + 1;
            break;
        }
        const uint8_t *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            /* Header name bytes go as they are (a CR would only end the
             * line early). A name byte outside 33..126 used to end
             * civetweb's headers silently and let the body be read as a
             * second request; scripts/setup.sh's header-end fix makes it a
             * 400, and tests/integration/test_http_framing.sh checks it. */
            for (const uint8_t *c = p; c < colon; c++)
                req[used++] = *c == '\r' ? 'x' : (char)*c;
            used += put_line_bytes(req + used, colon, (size_t)(le - colon));
            req[used++] = '\r';
            req[used++] = '\n';
        }
        p = nl ? nl + 1 : end;
    }
    size_t body_len = (size_t)(end - p);
    int has_body = body_len > 0 || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0;
    if (has_body)
        used += (size_t)snprintf(req + used, cap - used, "Content-Type: %s\r\n",
                                 (flags & 2) ? "application/x-www-form-urlencoded" : "application/fhir+json");
    if (flags & 8)
        used += (size_t)snprintf(req + used, cap - used, "Connection: close\r\n");
    if (has_body && (flags & 4)) {
        used += (size_t)snprintf(req + used, cap - used, "Transfer-Encoding: chunked\r\n\r\n");
        if (body_len)
            used += (size_t)snprintf(req + used, cap - used, "%zx\r\n", body_len);
        memcpy(req + used, p, body_len);
        used += body_len;
        used += (size_t)snprintf(req + used, cap - used, "%s0\r\n\r\n", body_len ? "\r\n" : "");
    } else {
        used += (size_t)snprintf(req + used, cap - used, "Content-Length: %zu\r\n\r\n", has_body ? body_len : 0);
        memcpy(req + used, p, body_len);
        used += body_len;
    }
    int status = request(req, used, strcmp(method, "HEAD") == 0);
    free(req);
    if (status == 500)
        die("the server answered 500 (an internal error)");
    check_healthz();
    return 0;
}
