/* Unit tests of the client room: option bounds, URL joining, backoff, and the
 * download state machine driven by a scripted HTTP responder on 127.0.0.1
 * (a thread that answers each connection with canned bytes, then closes), so
 * that every branch (resume, restart, retry, refusal, verification) is
 * exercised without the network and without timing luck. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "cardiotwin/client.h"
#include "cardiotwin/version.h"

/* ---- scripted responder ------------------------------------------------------ */

#define MAX_STEPS 8
#define REQ_MAX 4096

typedef struct step {
    char *bytes; /* the whole response as sent */
    size_t len;
} step;

typedef struct responder {
    int listen_fd;
    int port;
    int n_steps;
    step steps[MAX_STEPS];
    int served;
    char requests[MAX_STEPS][REQ_MAX];
    pthread_t thread;
} responder;

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) > 0;
}

static void *responder_main(void *arg)
{
    responder *r = arg;
    for (int i = 0; i < r->n_steps; i++) {
        if (!wait_readable(r->listen_fd, 10000))
            break; /* the client gave up earlier than the script expected */
        int fd = accept(r->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        size_t got = 0;
        char *req = r->requests[i];
        while (got < REQ_MAX - 1 && wait_readable(fd, 5000)) {
            ssize_t n = recv(fd, req + got, REQ_MAX - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        size_t off = 0;
        while (off < r->steps[i].len) {
            ssize_t n = send(fd, r->steps[i].bytes + off, r->steps[i].len - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        shutdown(fd, SHUT_WR);
        /* Let the client read everything before the socket goes away. */
        char sink[256];
        while (wait_readable(fd, 2000) && recv(fd, sink, sizeof sink, 0) > 0) {
        }
        close(fd);
        r->served = i + 1;
    }
    return NULL;
}

static int listen_local(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void responder_add(responder *r, const char *head, const char *body, size_t body_len)
{
    assert_true(r->n_steps < MAX_STEPS);
    size_t hl = strlen(head);
    step *s = &r->steps[r->n_steps++];
    s->bytes = malloc(hl + body_len + 1);
    assert_non_null(s->bytes);
    memcpy(s->bytes, head, hl);
    if (body_len)
        memcpy(s->bytes + hl, body, body_len);
    s->len = hl + body_len;
}

static void responder_start(responder *r)
{
    r->listen_fd = listen_local(&r->port);
    assert_int_equal(pthread_create(&r->thread, NULL, responder_main, r), 0);
}

static void responder_stop(responder *r)
{
    pthread_join(r->thread, NULL);
    close(r->listen_fd);
    for (int i = 0; i < r->n_steps; i++)
        free(r->steps[i].bytes);
}

/* ---- fixtures ---------------------------------------------------------------- */

#define BODY_LEN 1000

typedef struct fixture {
    char dir[64];
    char dest[128];
    char part[136];
    char url[128];
    char body[BODY_LEN];
    responder r;
    ct_client_options opt;
    int retries_seen;
    long waits_ms[CT_CLIENT_MAX_RETRIES + 1];
    char last_reason[CT_ERROR_MSG_MAX];
    int64_t last_done, last_total;
    int verify_calls;
    int verify_rc;
} fixture;

static void on_retry(void *ctx, int attempt, long wait_ms, const char *reason)
{
    fixture *f = ctx;
    assert_int_equal(attempt, f->retries_seen + 2);
    f->waits_ms[f->retries_seen++] = wait_ms;
    snprintf(f->last_reason, sizeof f->last_reason, "%s", reason);
}

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    fixture *f = ctx;
    f->last_done = done;
    f->last_total = total;
}

static int verify_cb(void *ctx, const char *part_path, ct_error *err)
{
    fixture *f = ctx;
    f->verify_calls++;
    /* The file being verified is the .part file, never the final name. */
    assert_string_equal(part_path, f->part);
    struct stat st;
    assert_int_not_equal(stat(f->dest, &st), 0);
    if (f->verify_rc)
        return ct_error_set(err, f->verify_rc, "verification refused %s", part_path);
    return 0;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ct_client_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->dest, sizeof f->dest, "%s/file.dat", f->dir);
    snprintf(f->part, sizeof f->part, "%s.part", f->dest);
    for (int i = 0; i < BODY_LEN; i++)
        f->body[i] = (char)('A' + (i * 7 + i / 26) % 26);
    ct_client_options_default(&f->opt);
    f->opt.max_retries = 3;
    f->opt.backoff_base_ms = 1;
    f->opt.backoff_max_ms = 4;
    f->opt.connect_timeout_ms = 5000;
    f->opt.attempt_timeout_ms = 20000;
    f->opt.max_bytes = 100000;
    f->opt.on_retry = on_retry;
    f->opt.on_progress = on_progress;
    f->opt.cb_ctx = f;
    f->last_total = -2;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    unlink(f->dest);
    unlink(f->part);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return ct_client_global_init(NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    ct_client_global_cleanup();
    return 0;
}

static void start(fixture *f)
{
    responder_start(&f->r);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/file.dat", f->r.port);
}

static int run(fixture *f, int64_t max_bytes, ct_client_result *res, ct_error *err)
{
    ct_client *c = NULL;
    assert_int_equal(ct_client_new(&f->opt, &c, err), 0);
    int rc = ct_client_download(c, f->url, f->dest, max_bytes, verify_cb, f, res, err);
    ct_client_free(c);
    responder_stop(&f->r);
    return rc;
}

static void write_file(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void assert_file_is(const char *path, const char *data, size_t len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char *buf = malloc(len + 16);
    assert_non_null(buf);
    size_t n = fread(buf, 1, len + 16, fp);
    fclose(fp);
    assert_int_equal(n, len);
    assert_memory_equal(buf, data, len);
    free(buf);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *head_200(char *buf, size_t size, size_t len)
{
    snprintf(buf, size, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", len);
    return buf;
}

static char *head_206(char *buf, size_t size, size_t start, size_t total)
{
    snprintf(buf, size,
             "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\n"
             "Content-Range: bytes %zu-%zu/%zu\r\nConnection: close\r\n\r\n",
             total - start, start, total - 1, total);
    return buf;
}

static const char *const head_503 =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy";

/* ---- options, URLs, backoff ---------------------------------------------------- */

static void test_options_default_valid(void **state)
{
    (void)state;
    ct_client_options o;
    ct_client_options_default(&o);
    ct_error err = {0};
    assert_int_equal(ct_client_options_check(&o, &err), 0);
    assert_int_equal(o.max_retries, 4);
    assert_true(o.max_bytes > 0);
}

static void test_options_bounds(void **state)
{
    (void)state;
    static const char *const fields[] = {
        "max_retries", "backoff_base_ms", "backoff_max_ms", "connect_timeout_ms", "stall_timeout_ms",
        "max_redirects", "max_bytes", "user_agent", "ca_file",
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        ct_client_options o;
        ct_client_options_default(&o);
        switch (i) {
        case 0: o.max_retries = CT_CLIENT_MAX_RETRIES + 1; break;
        case 1: o.backoff_base_ms = 0; break;
        case 2: o.backoff_max_ms = o.backoff_base_ms - 1; break;
        case 3: o.connect_timeout_ms = 0; break;
        case 4: o.stall_timeout_ms = 10; break;
        case 5: o.max_redirects = -1; break;
        case 6: o.max_bytes = 0; break;
        case 7: o.user_agent = "evil\r\nX-Injected: 1"; break;
        case 8: o.ca_file = ""; break;
        }
        ct_error err = {0};
        assert_int_equal(ct_client_options_check(&o, &err), CT_EINVAL);
        assert_non_null(strstr(err.msg, fields[i]));
    }
    ct_client_options o;
    ct_client_options_default(&o);
    o.max_retries = -1;
    ct_client *c = (ct_client *)&o; /* must be replaced by NULL on failure */
    assert_int_equal(ct_client_new(&o, &c, NULL), CT_EINVAL);
    assert_null(c);
    ct_client_options_default(&o);
    o.ca_file = "/nonexistent/ca.pem";
    ct_error err = {0};
    assert_int_equal(ct_client_new(&o, &c, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "/nonexistent/ca.pem"));
}

static void test_backoff_doubles_and_caps(void **state)
{
    (void)state;
    ct_client_options o;
    ct_client_options_default(&o);
    o.backoff_base_ms = 250;
    o.backoff_max_ms = 1500;
    assert_int_equal(ct_client_backoff_ms(&o, 1), 250);
    assert_int_equal(ct_client_backoff_ms(&o, 2), 500);
    assert_int_equal(ct_client_backoff_ms(&o, 3), 1000);
    assert_int_equal(ct_client_backoff_ms(&o, 4), 1500);
    assert_int_equal(ct_client_backoff_ms(&o, CT_CLIENT_MAX_RETRIES), 1500);
}

static void test_url_join(void **state)
{
    (void)state;
    char out[256];
    ct_error err = {0};
    assert_int_equal(ct_client_url_join("https://physionet.org/files/mitdb/1.0.0/", "100.hea", out,
                                        sizeof out, &err), 0);
    assert_string_equal(out, "https://physionet.org/files/mitdb/1.0.0/100.hea");
    assert_int_equal(ct_client_url_join("http://127.0.0.1:8080/x", "100.dat", out, sizeof out, &err), 0);
    assert_string_equal(out, "http://127.0.0.1:8080/x/100.dat");
    assert_int_equal(ct_client_url_join("http://h", "a b%~.-_", out, sizeof out, &err), 0);
    assert_string_equal(out, "http://h/a%20b%25~.-_");

    const char *bad_base[] = {"ftp://h/", "file:///etc/", "http://", "http:///x", "h/x",
                              "http://h/?q=1", "http://h/#f", "http://h/a b/", ""};
    for (size_t i = 0; i < sizeof bad_base / sizeof bad_base[0]; i++) {
        assert_int_equal(ct_client_url_join(bad_base[i], "100.hea", out, sizeof out, &err), CT_EINVAL);
        assert_string_equal(out, "");
    }
    const char *bad_name[] = {"", ".", "..", "a/b", "../100.hea", "/etc/passwd"};
    for (size_t i = 0; i < sizeof bad_name / sizeof bad_name[0]; i++)
        assert_int_equal(ct_client_url_join("http://h/", bad_name[i], out, sizeof out, &err),
                         CT_EINVAL);
    /* "http://h/100.hea" needs 17 bytes with the NUL. */
    assert_int_equal(ct_client_url_join("http://h/", "100.hea", out, 17, &err), 0);
    assert_int_equal(ct_client_url_join("http://h/", "100.hea", out, 16, &err), CT_ELIMIT);
    assert_string_equal(out, "");
}

/* ---- downloads ------------------------------------------------------------------ */

static void test_download_plain(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_file_is(f->dest, f->body, BODY_LEN);
    assert_false(exists(f->part));
    assert_int_equal(f->verify_calls, 1);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.resumed, 0);
    assert_int_equal(res.http_status, 200);
    assert_int_equal(res.bytes, BODY_LEN);
    assert_int_equal(f->last_done, BODY_LEN);
    assert_int_equal(f->last_total, BODY_LEN);
    /* The request itself: a GET without Range, with our User-Agent. */
    assert_non_null(strstr(f->r.requests[0], "GET /file.dat HTTP/1.1\r\n"));
    assert_non_null(strstr(f->r.requests[0], "User-Agent: cardiotwin/" CT_VERSION "\r\n"));
    assert_null(strstr(f->r.requests[0], "Range:"));
}

static void test_verify_refusal_keeps_final_name_empty(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    f->verify_rc = CT_ECHECKSUM;
    ct_error err = {0};
    assert_int_equal(run(f, 0, NULL, &err), CT_ECHECKSUM);
    assert_non_null(strstr(err.msg, "verification refused"));
    assert_false(exists(f->dest));
    assert_false(exists(f->part));
}

static void test_retry_on_503_then_success(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, head_503, "", 0);
    responder_add(&f->r, head_503, "", 0);
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(f->retries_seen, 2);
    assert_int_equal(f->waits_ms[0], 1);
    assert_int_equal(f->waits_ms[1], 2);
    assert_non_null(strstr(f->last_reason, "HTTP 503"));
    assert_file_is(f->dest, f->body, BODY_LEN);
}

static void test_retries_exhausted_on_5xx(void **state)
{
    fixture *f = *state;
    f->opt.max_retries = 2;
    for (int i = 0; i < 3; i++)
        responder_add(&f->r, head_503, "", 0);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), CT_ENET);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(f->r.served, 3);
    assert_non_null(strstr(err.msg, "HTTP 503"));
    assert_non_null(strstr(err.msg, "3 attempts"));
    assert_false(exists(f->dest));
}

static void test_429_honours_retry_after_within_cap(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r,
                  "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3600\r\nContent-Length: 0\r\n"
                  "Connection: close\r\n\r\n", "", 0);
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_int_equal(f->retries_seen, 1);
    /* An hour was asked for; the client's cap (4 ms) wins. */
    assert_int_equal(f->waits_ms[0], 4);
    assert_int_equal(res.attempts, 2);
}

static void test_404_fails_without_retry(void **state)
{
    fixture *f = *state;
    responder_add(&f->r, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\n",
                  "not found", 9);
    start(f);
    write_file(f->part, "stale", 5);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), CT_ENOTFOUND);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(res.http_status, 404);
    assert_int_equal(f->retries_seen, 0);
    assert_non_null(strstr(err.msg, "HTTP 404"));
    assert_non_null(strstr(err.msg, "/file.dat"));
    assert_false(exists(f->dest));
    assert_false(exists(f->part)); /* nothing to resume from a refusal */
}

static void test_403_fails_without_retry(void **state)
{
    fixture *f = *state;
    responder_add(&f->r, "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                  "", 0);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), CT_ENET);
    assert_int_equal(res.attempts, 1);
    assert_non_null(strstr(err.msg, "HTTP 403"));
}

static void test_cut_connection_resumes_with_range(void **state)
{
    fixture *f = *state;
    char head[256];
    /* The first response promises the whole body and stops at 400 bytes. */
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, 400);
    responder_add(&f->r, head_206(head, sizeof head, 400, BODY_LEN), f->body + 400, BODY_LEN - 400);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_non_null(strstr(f->r.requests[1], "Range: bytes=400-\r\n"));
    assert_int_equal(res.attempts, 2);
    assert_int_equal(res.resumed, 1);
    assert_int_equal(res.restarted, 0);
    assert_non_null(strstr(f->last_reason, "400 of 1000"));
    assert_file_is(f->dest, f->body, BODY_LEN);
    assert_false(exists(f->part));
    assert_int_equal(f->last_done, BODY_LEN);
    assert_int_equal(f->last_total, BODY_LEN);
}

static void test_existing_part_resumes(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, head_206(head, sizeof head, 123, BODY_LEN), f->body + 123, BODY_LEN - 123);
    start(f);
    write_file(f->part, f->body, 123);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_non_null(strstr(f->r.requests[0], "Range: bytes=123-\r\n"));
    assert_int_equal(res.resumed, 1);
    assert_file_is(f->dest, f->body, BODY_LEN);
}

static void test_200_to_range_restarts_from_zero(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    write_file(f->part, "garbage that must not stay in front", 35);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_non_null(strstr(f->r.requests[0], "Range: bytes=35-"));
    assert_int_equal(res.resumed, 0);
    assert_int_equal(res.restarted, 1);
    assert_file_is(f->dest, f->body, BODY_LEN);
}

static void test_200_same_length_as_part_is_still_written(void **state)
{
    fixture *f = *state;
    char head[256];
    /* .part already as long as the file, but with other bytes: a 200 of the
     * same length must replace them, not be taken for "already complete". */
    char stale[BODY_LEN];
    memset(stale, 'z', sizeof stale);
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    write_file(f->part, stale, BODY_LEN);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_int_equal(res.restarted, 1);
    assert_file_is(f->dest, f->body, BODY_LEN);
}

static void test_unwritable_destination(void **state)
{
    fixture *f = *state;
    ct_client *c = NULL;
    ct_error err = {0};
    assert_int_equal(ct_client_new(&f->opt, &c, &err), 0);
    char dest[160];
    snprintf(dest, sizeof dest, "%s/no-such-dir/file.dat", f->dir);
    ct_client_result res;
    assert_int_equal(ct_client_download(c, "http://127.0.0.1:9/x", dest, 0, NULL, NULL, &res, &err),
                     CT_EIO);
    assert_non_null(strstr(err.msg, "no-such-dir/file.dat.part"));
    assert_int_equal(res.attempts, 0);
    ct_client_free(c);
}

static void test_wrong_content_range_starts_over(void **state)
{
    fixture *f = *state;
    char head[256];
    /* Asked for 200-, the server answers from 100: the pieces would not fit. */
    responder_add(&f->r, head_206(head, sizeof head, 100, BODY_LEN), f->body + 100, BODY_LEN - 100);
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    write_file(f->part, f->body, 200);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_non_null(strstr(f->r.requests[0], "Range: bytes=200-"));
    assert_null(strstr(f->r.requests[1], "Range:"));
    assert_int_equal(res.attempts, 2);
    assert_file_is(f->dest, f->body, BODY_LEN);
}

static void test_416_starts_over_once(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r,
                  "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */1000\r\n"
                  "Content-Length: 0\r\nConnection: close\r\n\r\n", "", 0);
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    write_file(f->part, f->body, BODY_LEN);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(f->retries_seen, 0); /* a restart is not a retry: no pause */
    assert_file_is(f->dest, f->body, BODY_LEN);
}

static void test_content_length_over_limit_refused(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 999, &res, &err), CT_ELIMIT);
    assert_non_null(strstr(err.msg, "1000 bytes"));
    assert_non_null(strstr(err.msg, "999"));
    assert_int_equal(res.attempts, 1);
    assert_false(exists(f->dest));
    assert_false(exists(f->part));
}

static void test_unsized_body_over_limit_refused(void **state)
{
    fixture *f = *state;
    /* No Content-Length: the body runs until the connection closes. */
    responder_add(&f->r, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", f->body, BODY_LEN);
    start(f);
    f->opt.max_bytes = 500;
    ct_error err = {0};
    assert_int_equal(run(f, 0, NULL, &err), CT_ELIMIT);
    assert_non_null(strstr(err.msg, "larger than the limit of 500"));
    assert_false(exists(f->dest));
    assert_false(exists(f->part));
}

static void test_per_call_limit_cannot_raise_client_limit(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    f->opt.max_bytes = 999;
    ct_error err = {0};
    assert_int_equal(run(f, 1 << 20, NULL, &err), CT_ELIMIT);
}

static void test_redirect_followed(void **state)
{
    fixture *f = *state;
    char head[256];
    responder_add(&f->r, "HTTP/1.1 302 Found\r\nLocation: /moved.dat\r\nContent-Length: 5\r\n"
                         "Connection: close\r\n\r\nmoved", NULL, 0);
    responder_add(&f->r, head_200(head, sizeof head, BODY_LEN), f->body, BODY_LEN);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), 0);
    assert_non_null(strstr(f->r.requests[1], "GET /moved.dat "));
    assert_int_equal(res.attempts, 1);
    assert_file_is(f->dest, f->body, BODY_LEN);
}

static void test_redirect_loop_bounded(void **state)
{
    fixture *f = *state;
    f->opt.max_redirects = 2;
    for (int i = 0; i < 3; i++)
        responder_add(&f->r, "HTTP/1.1 302 Found\r\nLocation: /again\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n", NULL, 0);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), CT_ENET);
    assert_int_equal(res.attempts, 1); /* a loop is not transient */
    assert_int_equal(f->r.served, 3);
    assert_false(exists(f->dest));
}

static void test_redirect_to_file_refused(void **state)
{
    fixture *f = *state;
    responder_add(&f->r, "HTTP/1.1 302 Found\r\nLocation: file:///etc/passwd\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n", NULL, 0);
    start(f);
    ct_client_result res;
    ct_error err = {0};
    assert_int_equal(run(f, 0, &res, &err), CT_EINVAL);
    assert_int_equal(res.attempts, 1);
    assert_false(exists(f->dest));
}

static void test_connection_refused_retried_then_given_up(void **state)
{
    fixture *f = *state;
    int port;
    int fd = listen_local(&port);
    close(fd); /* nothing listens there now */
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/file.dat", port);
    f->opt.max_retries = 3;
    f->opt.backoff_base_ms = 1;
    f->opt.backoff_max_ms = 1000;
    ct_client *c = NULL;
    ct_error err = {0};
    assert_int_equal(ct_client_new(&f->opt, &c, &err), 0);
    ct_client_result res;
    int rc = ct_client_download(c, f->url, f->dest, 0, NULL, NULL, &res, &err);
    ct_client_free(c);
    assert_int_equal(rc, CT_ENET);
    assert_int_equal(res.attempts, 4);
    assert_int_equal(f->retries_seen, 3);
    assert_int_equal(f->waits_ms[0], 1);
    assert_int_equal(f->waits_ms[1], 2);
    assert_int_equal(f->waits_ms[2], 4);
    assert_non_null(strstr(err.msg, "4 attempts"));
    assert_false(exists(f->dest));
}

static void test_bad_urls_refused_before_any_request(void **state)
{
    fixture *f = *state;
    ct_client *c = NULL;
    ct_error err = {0};
    assert_int_equal(ct_client_new(&f->opt, &c, &err), 0);
    const char *bad[] = {"file:///etc/passwd", "ftp://example.org/x", "http://", "http://h/a b",
                         "http://h/\r\nX: y", "gopher://h/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(ct_client_download(c, bad[i], f->dest, 0, NULL, NULL, NULL, &err), CT_EINVAL);
    assert_int_equal(ct_client_download(c, "http://h/x", "", 0, NULL, NULL, NULL, &err), CT_EINVAL);
    ct_client_free(c);
    assert_false(exists(f->dest));
    assert_false(exists(f->part));
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_default_valid),
        cmocka_unit_test(test_options_bounds),
        cmocka_unit_test(test_backoff_doubles_and_caps),
        cmocka_unit_test(test_url_join),
        T(test_download_plain),
        T(test_verify_refusal_keeps_final_name_empty),
        T(test_retry_on_503_then_success),
        T(test_retries_exhausted_on_5xx),
        T(test_429_honours_retry_after_within_cap),
        T(test_404_fails_without_retry),
        T(test_403_fails_without_retry),
        T(test_cut_connection_resumes_with_range),
        T(test_existing_part_resumes),
        T(test_200_to_range_restarts_from_zero),
        T(test_200_same_length_as_part_is_still_written),
        T(test_unwritable_destination),
        T(test_wrong_content_range_starts_over),
        T(test_416_starts_over_once),
        T(test_content_length_over_limit_refused),
        T(test_unsized_body_over_limit_refused),
        T(test_per_call_limit_cannot_raise_client_limit),
        T(test_redirect_followed),
        T(test_redirect_loop_bounded),
        T(test_redirect_to_file_refused),
        T(test_connection_refused_retried_then_given_up),
        T(test_bad_urls_refused_before_any_request),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
