/* ct_test_httpd: a plain-HTTP file server for the client's integration tests,
 * on civetweb, bound to 127.0.0.1 on a port the kernel picks. It serves one
 * directory read-only and can misbehave on purpose, so that tests can prove
 * the client's retries, resume and verification instead of trusting them:
 *
 *   --fail-first N     the first N requests for each path answer 503
 *   --cut-after BYTES  the first body sent for each path stops after BYTES
 *                      bytes and the connection is closed
 *   --no-range         Range is ignored: always 200 with the whole file
 *   --corrupt PATH     the byte in the middle of PATH (e.g. /100.dat) is
 *                      flipped in every response that carries it
 *   --lifetime SEC     exit after SEC seconds even without SIGTERM (600)
 *   --tls PEM          speak HTTPS with the key and certificate in PEM
 *
 * The one idea: the server writes the responses itself (civetweb parses the
 * requests and owns the sockets) so that each fault lands on an exact byte.
 * Range support is single-range "bytes=N-" and "bytes=N-M" with 206 and
 * Content-Range, 416 past the end; other forms are ignored (200), as RFC 9110
 * allows. Prints "port N" on stdout first, then one line per request,
 * written before the response so that a client that has its answer can
 * count on the line being there:
 *   GET /100.dat range=bytes=1000- status=206 body=1949000 cut=no
 * (body: the bytes this response carries, after a cut), and exits on
 * SIGTERM or SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>

#define MAX_PATHS 1024
#define MAX_CORRUPT 16
#define PATH_LEN 256

typedef struct path_state {
    char path[PATH_LEN];
    int requests;   /* requests seen for this path */
    int bodies;     /* 2xx bodies started for this path */
} path_state;

typedef struct server {
    char root[PATH_MAX];
    int fail_first;
    long long cut_after; /* -1: off */
    int no_range;
    char corrupt[MAX_CORRUPT][PATH_LEN];
    int n_corrupt;
    pthread_mutex_t lock; /* guards paths and stdout */
    path_state paths[MAX_PATHS];
    int n_paths;
} server;

static void log_line(server *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_line(server *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s->lock);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&s->lock);
    va_end(ap);
}

/* Paths are plain: /name or /dir/name with [A-Za-z0-9._-], no dot segments. */
static int path_ok(const char *p)
{
    size_t n = strlen(p);
    if (n < 2 || n >= PATH_LEN || p[0] != '/')
        return 0;
    for (const char *q = p; *q; q++) {
        char ch = *q;
        int plain = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                    ch == '.' || ch == '_' || ch == '-' || ch == '/';
        if (!plain)
            return 0;
        if (ch == '/' && (q[1] == '.' || q[1] == '/' || q[1] == '\0'))
            return 0; /* no hidden files, dot segments, empty segments or directories */
    }
    return 1;
}

/* Counts one request for path; returns its state (NULL when the table is full). */
static path_state *note_request(server *s, const char *path, int *requests)
{
    pthread_mutex_lock(&s->lock);
    path_state *ps = NULL;
    for (int i = 0; i < s->n_paths; i++)
        if (strcmp(s->paths[i].path, path) == 0)
            ps = &s->paths[i];
    if (!ps && s->n_paths < MAX_PATHS) {
        ps = &s->paths[s->n_paths++];
        snprintf(ps->path, sizeof ps->path, "%s", path);
    }
    if (ps)
        *requests = ++ps->requests;
    pthread_mutex_unlock(&s->lock);
    return ps;
}

static int take_first_body(server *s, path_state *ps)
{
    pthread_mutex_lock(&s->lock);
    int first = ps->bodies++ == 0;
    pthread_mutex_unlock(&s->lock);
    return first;
}

static int is_corrupt(const server *s, const char *path)
{
    for (int i = 0; i < s->n_corrupt; i++)
        if (strcmp(s->corrupt[i], path) == 0)
            return 1;
    return 0;
}

/* "bytes=N-" or "bytes=N-M"; returns 1 and fills start/end (end -1 for open)
 * for a single range we serve, 0 to ignore the header. */
static int parse_range(const char *h, long long *start, long long *end)
{
    if (strncmp(h, "bytes=", 6) != 0)
        return 0;
    const char *p = h + 6;
    char *e;
    if (*p < '0' || *p > '9')
        return 0; /* suffix ranges ("-500") are not needed by our client */
    errno = 0;
    long long a = strtoll(p, &e, 10);
    if (errno || *e != '-')
        return 0;
    p = e + 1;
    long long b = -1;
    if (*p) {
        if (*p < '0' || *p > '9')
            return 0;
        b = strtoll(p, &e, 10);
        if (errno || *e != '\0' || b < a)
            return 0; /* multiple ranges, junk, or an inverted range */
    }
    *start = a;
    *end = b;
    return 1;
}

static void reply_status(server *s, struct mg_connection *conn, const char *method, const char *path,
                         int status, const char *text, const char *range_hdr)
{
    log_line(s, "%s %s range=%s status=%d body=0 cut=no", method, path, range_hdr ? range_hdr : "-",
             status);
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
              "Connection: close\r\n\r\n%s\n",
              status, text, strlen(text) + 1, text);
}

static int handle(struct mg_connection *conn, void *cbdata)
{
    server *s = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *method = ri->request_method;
    const char *path = ri->local_uri ? ri->local_uri : "";
    const char *range_hdr = mg_get_header(conn, "Range");
    int is_head = strcmp(method, "HEAD") == 0;

    if (!is_head && strcmp(method, "GET") != 0) {
        reply_status(s, conn, method, "-", 405, "Method Not Allowed", range_hdr);
        return 405;
    }
    if (!path_ok(path)) {
        reply_status(s, conn, method, "-", 404, "Not Found", range_hdr);
        return 404;
    }
    int requests = 0;
    path_state *ps = note_request(s, path, &requests);
    if (!ps) {
        reply_status(s, conn, method, path, 500, "Too Many Paths", range_hdr);
        return 500;
    }
    if (requests <= s->fail_first) {
        reply_status(s, conn, method, path, 503, "Service Unavailable", range_hdr);
        return 503;
    }

    char file[PATH_MAX + PATH_LEN];
    snprintf(file, sizeof file, "%s%s", s->root, path);
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        reply_status(s, conn, method, path, 404, "Not Found", range_hdr);
        return 404;
    }
    long long size = (long long)st.st_size;
    long long start = 0, end = size - 1;
    int partial = 0;
    if (range_hdr && !s->no_range) {
        long long a, b;
        if (parse_range(range_hdr, &a, &b)) {
            if (a >= size) {
                log_line(s, "%s %s range=%s status=416 body=0 cut=no", method, path, range_hdr);
                mg_printf(conn,
                          "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */%lld\r\n"
                          "Content-Length: 0\r\nConnection: close\r\n\r\n",
                          size);
                close(fd);
                return 416;
            }
            start = a;
            end = b < 0 || b >= size ? size - 1 : b;
            partial = 1;
        }
    }
    long long length = end - start + 1;
    if (size == 0)
        length = 0;
    int status = partial ? 206 : 200;
    char content_range[96] = "";
    if (partial)
        snprintf(content_range, sizeof content_range, "Content-Range: bytes %lld-%lld/%lld\r\n", start,
                 end, size);
    long long budget = length;
    int cut = 0;
    if (!is_head && s->cut_after >= 0 && take_first_body(s, ps) && s->cut_after < length) {
        budget = s->cut_after;
        cut = 1;
    }
    log_line(s, "%s %s range=%s status=%d body=%lld cut=%s", method, path,
             range_hdr ? range_hdr : "-", status, is_head ? 0 : budget, cut ? "yes" : "no");
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: application/octet-stream\r\nContent-Length: %lld\r\n"
              "%s%sConnection: close\r\n\r\n",
              status, partial ? "Partial Content" : "OK", length, content_range,
              s->no_range ? "" : "Accept-Ranges: bytes\r\n");

    long long flip_at = is_corrupt(s, path) && size > 0 ? size / 2 : -1;
    long long sent = 0;
    char buf[65536];
    while (!is_head && sent < budget) {
        size_t want = (size_t)(budget - sent < (long long)sizeof buf ? budget - sent : (long long)sizeof buf);
        ssize_t n = pread(fd, buf, want, (off_t)(start + sent));
        if (n <= 0)
            break;
        long long at = start + sent;
        if (flip_at >= at && flip_at < at + n)
            buf[flip_at - at] ^= 0x5a;
        if (mg_write(conn, buf, (size_t)n) != n) {
            log_line(s, "write-failed method=%s path=%s after=%lld", method, path, sent);
            break;
        }
        sent += n;
    }
    close(fd);
    /* Returning ends the request; keep-alive is off, so civetweb closes the
     * connection and a cut body reaches the client as a short read. */
    return status;
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    fprintf(stderr, "ct_test_httpd: %s\n", message);
    return 1;
}

/* civetweb's listener notices mg_stop only when its poll wakes, up to two
 * seconds later; knocking on the port wakes it at once, so tests that start
 * and stop many servers stay fast. */
typedef struct waker {
    int port;
    atomic_int done;
} waker;

static void *knock(void *arg)
{
    waker *w = arg;
    for (int i = 0; i < 300 && !atomic_load(&w->done); i++) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        (void)connect(fd, (struct sockaddr *)&a, sizeof a);
        close(fd);
    }
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ct_test_httpd [--fail-first N] [--cut-after BYTES] [--no-range]\n"
                 "                     [--corrupt /PATH]... [--lifetime SECONDS] [--tls PEM] DIR\n");
}

static int parse_ll(const char *s, long long lo, long long hi, long long *out)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"fail-first", required_argument, NULL, 'f'}, {"cut-after", required_argument, NULL, 'c'},
        {"no-range", no_argument, NULL, 'n'},         {"corrupt", required_argument, NULL, 'x'},
        {"lifetime", required_argument, NULL, 'l'},   {"tls", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    server *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    s->cut_after = -1;
    long long lifetime_s = 600, v;
    const char *tls_pem = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (parse_ll(optarg, 0, 1000, &v) != 0) {
                fprintf(stderr, "ct_test_httpd: --fail-first takes 0..1000\n");
                return 2;
            }
            s->fail_first = (int)v;
            break;
        case 'c':
            if (parse_ll(optarg, 0, LLONG_MAX, &s->cut_after) != 0) {
                fprintf(stderr, "ct_test_httpd: --cut-after takes a byte count\n");
                return 2;
            }
            break;
        case 'n': s->no_range = 1; break;
        case 'x':
            if (s->n_corrupt == MAX_CORRUPT || optarg[0] != '/' || strlen(optarg) >= PATH_LEN) {
                fprintf(stderr, "ct_test_httpd: --corrupt takes up to %d paths like /100.dat\n",
                        MAX_CORRUPT);
                return 2;
            }
            snprintf(s->corrupt[s->n_corrupt++], PATH_LEN, "%s", optarg);
            break;
        case 'l':
            if (parse_ll(optarg, 1, 86400, &lifetime_s) != 0) {
                fprintf(stderr, "ct_test_httpd: --lifetime takes 1..86400 seconds\n");
                return 2;
            }
            break;
        case 't': tls_pem = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    if (!realpath(argv[optind], s->root)) {
        fprintf(stderr, "ct_test_httpd: %s: %s\n", argv[optind], strerror(errno));
        return 2;
    }
    pthread_mutex_init(&s->lock, NULL);

    /* Signals are taken synchronously by this thread; civetweb's threads
     * inherit the mask and never see them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    mg_init_library(tls_pem ? MG_FEATURES_TLS : 0);
    const char *options[] = {"listening_ports", tls_pem ? "127.0.0.1:0s" : "127.0.0.1:0",
                             "num_threads", "4", "enable_keep_alive", "no",
                             "request_timeout_ms", "10000",
                             tls_pem ? "ssl_certificate" : NULL, tls_pem, NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.log_message = log_message;
    struct mg_context *ctx = mg_start(&cb, s, options);
    if (!ctx) {
        fprintf(stderr, "ct_test_httpd: could not start the server\n");
        mg_exit_library();
        return 1;
    }
    mg_set_request_handler(ctx, "**", handle, s);
    struct mg_server_port ports[4];
    int n = mg_get_server_ports(ctx, 4, ports);
    if (n < 1) {
        fprintf(stderr, "ct_test_httpd: no listening port\n");
        mg_stop(ctx);
        mg_exit_library();
        return 1;
    }
    log_line(s, "port %d", ports[0].port);

    struct timespec limit = {.tv_sec = (time_t)lifetime_s, .tv_nsec = 0};
    int sig;
    do {
        sig = sigtimedwait(&stop, NULL, &limit);
    } while (sig < 0 && errno == EINTR);
    if (sig < 0)
        fprintf(stderr, "ct_test_httpd: lifetime of %lld s reached, stopping\n", lifetime_s);
    waker w = {.port = ports[0].port};
    atomic_init(&w.done, 0);
    pthread_t knocker;
    int knocking = pthread_create(&knocker, NULL, knock, &w) == 0;
    mg_stop(ctx);
    if (knocking) {
        atomic_store(&w.done, 1);
        pthread_join(knocker, NULL);
    }
    mg_exit_library();
    pthread_mutex_destroy(&s->lock);
    free(s);
    return 0;
}
