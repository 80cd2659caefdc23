/* Unit tests of the client's FHIR requests (ct_client_send) and of the
 * device simulator (ct_client_stream_record) against a scripted responder on
 * 127.0.0.1: a thread that reads each request whole (headers and body) and
 * answers with canned bytes, then closes. So every branch (retry on 5xx,
 * stop on 4xx with the server's diagnostics, no redirects, bounded answers,
 * a stop asked between requests, pacing) is exercised without a server and
 * without timing luck, and what the client sent can be read back: the
 * request lines and headers, and each Observation through the fhir room. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cardiotwin/client.h"
#include "cardiotwin/fhir.h"
#include "cardiotwin/wfdb.h"

/* ---- scripted responder ------------------------------------------------------------ */

#define MAX_STEPS 12
#define REQ_MAX (512 * 1024)

typedef struct responder {
    int listen_fd;
    int port;
    int n_steps;
    char *steps[MAX_STEPS];   /* each answer as sent */
    int served;
    char *requests[MAX_STEPS];/* each request as received, NUL-terminated */
    size_t req_len[MAX_STEPS];
    pthread_t thread;
    int running;
} responder;

static int wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, timeout_ms) > 0;
}

/* The Content-Length of a request head, 0 when absent. */
static size_t content_length(const char *head)
{
    for (const char *p = head; (p = strchr(p, '\n')) != NULL; p++)
        if (strncasecmp(p + 1, "Content-Length:", 15) == 0)
            return (size_t)strtoul(p + 16, NULL, 10);
    return 0;
}

static void *responder_main(void *arg)
{
    responder *r = arg;
    for (int i = 0; i < r->n_steps; i++) {
        if (!wait_readable(r->listen_fd, 10000))
            break;
        int fd = accept(r->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        char *req = calloc(1, REQ_MAX);
        size_t got = 0, want = 0;
        int head_done = 0;
        while (got < REQ_MAX - 1 && wait_readable(fd, 5000)) {
            ssize_t n = recv(fd, req + got, REQ_MAX - 1 - got, 0);
            if (n <= 0)
                break;
            got += (size_t)n;
            req[got] = '\0';
            if (!head_done) {
                char *end = strstr(req, "\r\n\r\n");
                if (end) {
                    head_done = 1;
                    want = (size_t)(end + 4 - req) + content_length(req);
                }
            }
            if (head_done && got >= want)
                break;
        }
        r->requests[i] = req;
        r->req_len[i] = got;
        const char *ans = r->steps[i];
        size_t off = 0, len = strlen(ans);
        while (off < len) {
            ssize_t n = send(fd, ans + off, len - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        shutdown(fd, SHUT_WR);
        char sink[256];
        while (wait_readable(fd, 2000) && recv(fd, sink, sizeof sink, 0) > 0) {
        }
        close(fd);
        r->served = i + 1;
    }
    return NULL;
}

static void responder_add(responder *r, const char *fmt, ...) CT_PRINTF(2, 3);

static void responder_add(responder *r, const char *fmt, ...)
{
    assert_true(r->n_steps < MAX_STEPS);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    r->steps[r->n_steps++] = s;
}

/* Whether the request holds the header name (case-insensitively). */
static int has_header(const char *req, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = req; (p = strstr(p, "\r\n")) != NULL; p += 2) {
        if (p[2] == '\r')
            return 0; /* end of the head */
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
            return 1;
    }
    return 0;
}

/* A response with a body; Connection: close so each request is one step. */
static void answer(responder *r, int status, const char *extra, const char *body)
{
    responder_add(r, "HTTP/1.1 %d X\r\n%sContent-Type: application/fhir+json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                  status, extra ? extra : "", strlen(body), body);
}

static void outcome(responder *r, int status, const char *diagnostics)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"invalid\","
             "\"diagnostics\":\"%s\",\"expression\":[\"Observation.status\"]}]}",
             diagnostics);
    answer(r, status, NULL, body);
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

static void responder_start(responder *r)
{
    r->listen_fd = listen_local(&r->port);
    assert_int_equal(pthread_create(&r->thread, NULL, responder_main, r), 0);
    r->running = 1;
}

static void responder_join(responder *r)
{
    if (r->running) {
        pthread_join(r->thread, NULL);
        close(r->listen_fd);
        r->running = 0;
    }
}

static void responder_free(responder *r)
{
    responder_join(r);
    for (int i = 0; i < MAX_STEPS; i++) {
        free(r->steps[i]);
        free(r->requests[i]);
    }
    memset(r, 0, sizeof *r);
}

/* The body of request i (after the blank line). */
static const char *request_body(const responder *r, int i)
{
    const char *end = strstr(r->requests[i], "\r\n\r\n");
    assert_non_null(end);
    return end + 4;
}

/* A port nobody listens on. */
static int closed_port(void)
{
    int port;
    int fd = listen_local(&port);
    close(fd);
    return port;
}

/* ---- fixture ---------------------------------------------------------------------- */

#define TOKEN "tok-EN_value.42~+/=="
#define N_SAMPLES 300
#define FS 100

typedef struct fixture {
    responder r;
    ct_client_options opt;
    ct_client *c;
    char url[128];          /* http://127.0.0.1:PORT/fhir */
    char dir[64];
    char record[96];        /* DIR/r1 */
    int16_t sig[2][N_SAMPLES];
    /* hooks */
    int retries_seen;
    int retry_attempts[8];
    long retry_waits[8];
    int64_t retry_k[8];
    int stop_after_sent;    /* should_stop answers 1 once this many were sent (0: never) */
    int stop_now;
    int n_sent;
    int stop_on_retry;      /* the retry hook asks to stop */
    int began, patient_calls, patient_created;
    char last_location[256];
    ct_client_stream_callbacks cb;
} fixture;

static void on_retry(void *ctx, int attempt, long wait_ms, const char *reason)
{
    fixture *f = ctx;
    assert_true(f->retries_seen < 8);
    assert_null(strstr(reason, "tok-EN"));
    f->retry_attempts[f->retries_seen] = attempt;
    f->retry_waits[f->retries_seen++] = wait_ms;
    if (f->stop_on_retry)
        f->stop_now = 1;
}

static int stop_fn(void *ctx)
{
    fixture *f = ctx;
    return f->stop_now || (f->stop_after_sent && f->n_sent >= f->stop_after_sent);
}

static void write_text(const char *path, const char *text, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* DIR/NAME: two signals in format 16, N_SAMPLES at FS Hz; the descriptions
 * and units of the header lines are the caller's. */
static void write_record(fixture *f, const char *name, const char *desc0, const char *units0,
                         const char *desc1, const char *units1)
{
    char path[160], hea[1024];
    uint8_t *dat = malloc(N_SAMPLES * 4);
    assert_non_null(dat);
    for (int i = 0; i < N_SAMPLES; i++)
        for (int s = 0; s < 2; s++) {
            uint16_t u = (uint16_t)f->sig[s][i];
            dat[(i * 2 + s) * 2] = (uint8_t)(u & 0xff);
            dat[(i * 2 + s) * 2 + 1] = (uint8_t)(u >> 8);
        }
    snprintf(path, sizeof path, "%s/%s.dat", f->dir, name);
    write_text(path, (const char *)dat, N_SAMPLES * 4);
    free(dat);
    int n = snprintf(hea, sizeof hea,
                     "%s 2 %d %d\n"
                     "%s.dat 16 200(10)/%s 16 0 %d %d 0 %s\n"
                     "%s.dat 16 2/%s 16 0 %d %d 0 %s\n",
                     name, FS, N_SAMPLES, name, units0, f->sig[0][0], ct_wfdb_checksum16(f->sig[0], N_SAMPLES),
                     desc0, name, units1, f->sig[1][0], ct_wfdb_checksum16(f->sig[1], N_SAMPLES), desc1);
    snprintf(path, sizeof path, "%s/%s.hea", f->dir, name);
    write_text(path, hea, (size_t)n);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    ct_client_options_default(&f->opt);
    f->opt.max_retries = 3;
    f->opt.backoff_base_ms = 1;
    f->opt.backoff_max_ms = 4;
    f->opt.connect_timeout_ms = 5000;
    f->opt.attempt_timeout_ms = 20000;
    f->opt.on_retry = on_retry;
    f->opt.cb_ctx = f;
    snprintf(f->dir, sizeof f->dir, "/tmp/ct_stream_req_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->record, sizeof f->record, "%s/r1", f->dir);
    for (int i = 0; i < N_SAMPLES; i++) {
        f->sig[0][i] = (int16_t)((i * 37) % 2000 - 1000);
        f->sig[1][i] = (int16_t)(-((i * 13) % 500));
    }
    f->sig[1][150] = CT_WFDB_INVALID_SAMPLE; /* a missing sample travels as "E" */
    write_record(f, "r1", "II", "mV", "V1", "uV");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    responder_free(&f->r);
    ct_client_free(f->c);
    const char *names[] = {"r1", "r2", "r3", "r4"};
    char path[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(path, sizeof path, "%s/%s.hea", f->dir, names[i]);
        unlink(path);
        snprintf(path, sizeof path, "%s/%s.dat", f->dir, names[i]);
        unlink(path);
    }
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
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/fhir", f->r.port);
    assert_int_equal(ct_client_new(&f->opt, &f->c, NULL), 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- ct_client_send ------------------------------------------------------------------ */

static void test_post_sends_and_captures(void **state)
{
    fixture *f = *state;
    answer(&f->r, 201, "Location: http://h/fhir/Observation/7/_history/1\r\nETag: W/\"1\"\r\n", "");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Observation", f->url);
    const char *body = "{\"resourceType\":\"Observation\"}";
    ct_client_request req = {.method = "POST", .url = url, .body = body, .body_len = strlen(body),
                             .bearer_token = TOKEN, .headers = {"Prefer: return=minimal"}, .n_headers = 1};
    ct_client_response res;
    ct_error err = {0};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), 0);
    assert_int_equal(res.status, 201);
    assert_int_equal(res.attempts, 1);
    assert_string_equal(res.location, "http://h/fhir/Observation/7/_history/1");
    assert_string_equal(res.etag, "W/\"1\"");
    assert_null(res.body);
    ct_client_response_free(&res);
    responder_join(&f->r);
    const char *q = f->r.requests[0];
    assert_non_null(strstr(q, "POST /fhir/Observation HTTP/1.1\r\n"));
    assert_non_null(strstr(q, "\r\nAuthorization: Bearer " TOKEN "\r\n"));
    assert_non_null(strstr(q, "\r\nContent-Type: application/fhir+json\r\n"));
    assert_non_null(strstr(q, "\r\nAccept: application/fhir+json\r\n"));
    assert_non_null(strstr(q, "\r\nPrefer: return=minimal\r\n"));
    assert_false(has_header(q, "Expect"));
    assert_string_equal(request_body(&f->r, 0), body);
}

static void test_methods_and_handle_reset(void **state)
{
    fixture *f = *state;
    answer(&f->r, 201, NULL, "");
    answer(&f->r, 200, "ETag: W/\"2\"\r\n", "{\"resourceType\":\"Patient\",\"id\":\"p\"}");
    answer(&f->r, 200, NULL, "");
    responder_add(&f->r, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Patient/p", f->url);
    ct_client_request req = {.method = "PUT", .url = url, .body = "{}", .body_len = 2, .bearer_token = TOKEN,
                             .headers = {"If-Match: W/\"1\""}, .n_headers = 1};
    ct_client_response res;
    assert_int_equal(ct_client_send(f->c, &req, &res, NULL), 0);
    assert_int_equal(res.status, 201);
    ct_client_response_free(&res);
    ct_client_request get = {.method = "GET", .url = url, .bearer_token = TOKEN};
    assert_int_equal(ct_client_send(f->c, &get, &res, NULL), 0);
    assert_int_equal(res.status, 200);
    assert_string_equal(res.etag, "W/\"2\"");
    assert_string_equal(res.content_type, "application/fhir+json");
    assert_string_equal(res.body, "{\"resourceType\":\"Patient\",\"id\":\"p\"}");
    assert_int_equal(res.body_len, strlen(res.body));
    ct_client_response_free(&res);
    ct_client_request del = {.method = "DELETE", .url = url};
    assert_int_equal(ct_client_send(f->c, &del, &res, NULL), 0);
    ct_client_response_free(&res);
    /* A download on the same client afterwards is a plain GET: nothing of
     * the requests before (method, token, headers) is left on the handle. */
    char dl_url[160], dest[128];
    snprintf(dl_url, sizeof dl_url, "http://127.0.0.1:%d/file.txt", f->r.port);
    snprintf(dest, sizeof dest, "%s/file.txt", f->dir);
    assert_int_equal(ct_client_download(f->c, dl_url, dest, 0, NULL, NULL, NULL, NULL), 0);
    unlink(dest);
    responder_join(&f->r);
    assert_non_null(strstr(f->r.requests[0], "PUT /fhir/Patient/p HTTP/1.1\r\n"));
    assert_non_null(strstr(f->r.requests[0], "\r\nIf-Match: W/\"1\"\r\n"));
    assert_string_equal(request_body(&f->r, 0), "{}");
    assert_non_null(strstr(f->r.requests[1], "GET /fhir/Patient/p HTTP/1.1\r\n"));
    assert_false(has_header(f->r.requests[1], "Content-Type"));
    assert_false(has_header(f->r.requests[1], "If-Match"));
    assert_string_equal(request_body(&f->r, 1), "");
    assert_non_null(strstr(f->r.requests[2], "DELETE /fhir/Patient/p HTTP/1.1\r\n"));
    assert_false(has_header(f->r.requests[2], "Authorization"));
    assert_non_null(strstr(f->r.requests[3], "GET /file.txt HTTP/1.1\r\n"));
    assert_false(has_header(f->r.requests[3], "Authorization"));
    assert_null(strstr(f->r.requests[3], "application/fhir+json"));
    assert_false(has_header(f->r.requests[3], "Content-Length"));
    assert_false(has_header(f->r.requests[3], "Prefer"));
}

static void test_5xx_retried_then_success(void **state)
{
    fixture *f = *state;
    outcome(&f->r, 503, "busy");
    answer(&f->r, 500, "Retry-After: 1\r\n", "{}");
    answer(&f->r, 201, NULL, "");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Observation", f->url);
    ct_client_request req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    ct_client_response res;
    assert_int_equal(ct_client_send(f->c, &req, &res, NULL), 0);
    assert_int_equal(res.attempts, 3);
    assert_int_equal(res.status, 201);
    ct_client_response_free(&res);
    assert_int_equal(f->retries_seen, 2);
    assert_int_equal(f->retry_attempts[0], 2);
    assert_int_equal(f->retry_attempts[1], 3);
    assert_int_equal(f->retry_waits[0], 1);
    /* Retry-After: 1 s asked, capped at backoff_max_ms (4). */
    assert_int_equal(f->retry_waits[1], 4);
    responder_join(&f->r);
    /* The same body each time. */
    for (int i = 0; i < 3; i++)
        assert_string_equal(request_body(&f->r, i), "{}");
}

static void test_4xx_final_with_diagnostics(void **state)
{
    fixture *f = *state;
    outcome(&f->r, 422, "status is not an Observation status");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Observation", f->url);
    ct_client_request req = {.method = "POST", .url = url, .body = "{}", .body_len = 2, .bearer_token = TOKEN};
    ct_client_response res;
    ct_error err = {0};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENET);
    assert_int_equal(res.status, 422);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(f->retries_seen, 0);
    assert_string_equal(res.diagnostics, "status is not an Observation status (at Observation.status)");
    char want[256];
    snprintf(want, sizeof want, "POST %s: HTTP 422: status is not an Observation status (at Observation.status)",
             url);
    assert_string_equal(err.msg, want);
    assert_null(strstr(err.msg, "tok-EN"));
    assert_non_null(res.body); /* the OperationOutcome itself stays readable */
    ct_client_response_free(&res);
}

static void test_404_410_not_found(void **state)
{
    fixture *f = *state;
    outcome(&f->r, 404, "no Patient/p");
    responder_add(&f->r, "HTTP/1.1 410 Gone\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Patient/p", f->url);
    ct_client_request req = {.method = "GET", .url = url};
    ct_client_response res;
    ct_error err = {0};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENOTFOUND);
    assert_int_equal(res.status, 404);
    assert_non_null(strstr(err.msg, "HTTP 404: no Patient/p"));
    ct_client_response_free(&res);
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENOTFOUND);
    assert_int_equal(res.status, 410);
    assert_int_equal(res.attempts, 1);
    ct_client_response_free(&res);
}

static void test_5xx_gives_up(void **state)
{
    fixture *f = *state;
    f->opt.max_retries = 2;
    for (int i = 0; i < 3; i++)
        outcome(&f->r, 503, "down for maintenance");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Observation", f->url);
    ct_client_request req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    ct_client_response res;
    ct_error err = {0};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENET);
    assert_int_equal(res.attempts, 3);
    assert_non_null(strstr(err.msg, "HTTP 503: down for maintenance"));
    assert_non_null(strstr(err.msg, "(gave up after 3 attempts)"));
    ct_client_response_free(&res);
}

static void test_redirect_not_followed(void **state)
{
    fixture *f = *state;
    responder_add(&f->r, "HTTP/1.1 301 Moved\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Observation", f->url);
    ct_client_request req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    ct_client_response res;
    ct_error err = {0};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENET);
    assert_int_equal(res.status, 301);
    assert_int_equal(res.attempts, 1);
    assert_non_null(strstr(err.msg, "HTTP 301 to http://127.0.0.1:1/elsewhere"));
    assert_non_null(strstr(err.msg, "redirects are not followed"));
    ct_client_response_free(&res);
}

static void test_answer_bounded(void **state)
{
    fixture *f = *state;
    char big[2001];
    memset(big, 'x', 2000);
    big[2000] = '\0';
    answer(&f->r, 200, NULL, big);
    answer(&f->r, 500, NULL, big);
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Patient/p", f->url);
    ct_client_request req = {.method = "GET", .url = url, .max_response_bytes = 1000, .no_retry = 1};
    ct_client_response res;
    ct_error err = {0};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ELIMIT);
    assert_non_null(strstr(err.msg, "larger than 1000 bytes"));
    assert_true(res.body_len <= 1000);
    ct_client_response_free(&res);
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ELIMIT);
    assert_non_null(strstr(err.msg, "HTTP 500 with an answer larger than 1000 bytes"));
    ct_client_response_free(&res);
}

static void test_stop_during_backoff(void **state)
{
    fixture *f = *state;
    f->opt.backoff_base_ms = 30000;
    f->opt.backoff_max_ms = 30000;
    outcome(&f->r, 503, "busy");
    outcome(&f->r, 503, "busy");
    start(f);
    char url[160];
    snprintf(url, sizeof url, "%s/Observation", f->url);
    ct_client_request req = {.method = "POST", .url = url, .body = "{}", .body_len = 2, .should_stop = stop_fn,
                             .cb_ctx = f};
    ct_client_response res;
    ct_error err = {0};
    /* Asked before the pause: no pause, no retry hook. */
    f->stop_now = 1;
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENET);
    assert_int_equal(res.stopped, 1);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(f->retries_seen, 0);
    assert_non_null(strstr(err.msg, "HTTP 503: busy"));
    assert_non_null(strstr(err.msg, "stopped before retrying"));
    ct_client_response_free(&res);
    /* Asked during the pause of 30 s: heard within a slice, not after 30 s
     * (20 s leaves room for any machine). */
    f->stop_now = 0;
    f->stop_on_retry = 1;
    double t = now_s();
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENET);
    assert_true(now_s() - t < 20.0);
    assert_int_equal(res.stopped, 1);
    assert_int_equal(res.attempts, 1);
    assert_int_equal(f->retries_seen, 1);
    assert_int_equal(f->retry_waits[0], 30000);
    ct_client_response_free(&res);
}

static void test_connection_refused(void **state)
{
    fixture *f = *state;
    f->opt.max_retries = 1;
    assert_int_equal(ct_client_new(&f->opt, &f->c, NULL), 0);
    char url[160];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/fhir/Observation", closed_port());
    ct_client_request req = {.method = "POST", .url = url, .body = "{}", .body_len = 2};
    ct_client_response res;
    ct_error err = {0};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_ENET);
    assert_int_equal(res.attempts, 2);
    assert_int_equal(res.status, 0);
    assert_int_equal(f->retries_seen, 1);
    assert_non_null(strstr(err.msg, "gave up after 2 attempts"));
    ct_client_response_free(&res);
}

static void test_bad_requests_refused(void **state)
{
    fixture *f = *state;
    assert_int_equal(ct_client_new(&f->opt, &f->c, NULL), 0);
    ct_client_response res;
    ct_error err = {0};
    ct_client_request req = {.method = "PATCH", .url = "http://127.0.0.1:1/fhir/Patient/p"};
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    req.method = "GET";
    req.body = "{}";
    req.body_len = 2;
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    req.body = NULL;
    req.headers[0] = "X-Evil: 1\r\nX-More: 2";
    req.n_headers = 1;
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    req.headers[0] = "no colon";
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    req.n_headers = CT_CLIENT_MAX_EXTRA_HEADERS + 1;
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    req.n_headers = 0;
    req.bearer_token = "secret with space";
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    assert_null(strstr(err.msg, "secret"));
    req.bearer_token = NULL;
    req.content_type = "text/plain\r\nX: y";
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    req.content_type = NULL;
    req.url = "ftp://127.0.0.1/x";
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    req.url = NULL;
    assert_int_equal(ct_client_send(f->c, &req, &res, &err), CT_EINVAL);
    assert_int_equal(res.attempts, 0);
}

/* ---- ct_client_stream_record ------------------------------------------------------------ */

static void cb_begin(void *ctx, const ct_client_stream_info *info)
{
    fixture *f = ctx;
    f->began++;
    assert_string_equal(info->record, "r1");
    assert_int_equal(info->n_leads, 2);
    assert_string_equal(info->lead_names[0], "II");
    assert_int_equal(info->mdc_codes[0], 131330);
    assert_int_equal(info->mdc_codes[1], 131331);
}

static void cb_patient(void *ctx, const char *id, int created)
{
    fixture *f = ctx;
    f->patient_calls++;
    f->patient_created = created;
    assert_string_equal(id, "p-1");
}

static void cb_sent(void *ctx, int64_t k, int64_t n_obs, const char *location)
{
    fixture *f = ctx;
    assert_int_equal(k, f->n_sent);
    f->n_sent++;
    snprintf(f->last_location, sizeof f->last_location, "%s", location);
}

static void cb_retry(void *ctx, int64_t k, int attempt, long wait_ms, const char *reason)
{
    fixture *f = ctx;
    assert_true(f->retries_seen < 8);
    f->retry_k[f->retries_seen] = k;
    f->retry_attempts[f->retries_seen++] = attempt;
}

static const ct_client_stream_callbacks *callbacks(fixture *f)
{
    f->cb = (ct_client_stream_callbacks){.begin = cb_begin, .patient = cb_patient, .sent = cb_sent,
                                         .retry = cb_retry, .should_stop = stop_fn, .ctx = f};
    return &f->cb;
}

static ct_client_stream_options stream_opts(fixture *f)
{
    ct_client_stream_options o = {.base_url = f->url, .bearer_token = TOKEN, .patient_id = "p-1",
                                  .ensure_patient = 1, .seconds_per_obs = 1.0, .speed = 0.0,
                                  .start_ms = 1795305600000 /* 2026-11-22T00:00:00Z */};
    return o;
}

static void created(responder *r, int n)
{
    responder_add(r, "HTTP/1.1 201 Created\r\nLocation: http://h/fhir/Observation/%d/_history/1\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n", n);
}

/* Observation request i, read back through the fhir room, holds samples
 * [first, first + count) of the fixture's record. */
static void check_observation(fixture *f, int i, int64_t first, int64_t count, int64_t start_ms)
{
    const char *q = f->r.requests[i];
    assert_non_null(strstr(q, "POST /fhir/Observation HTTP/1.1\r\n"));
    assert_non_null(strstr(q, "\r\nAuthorization: Bearer " TOKEN "\r\n"));
    assert_non_null(strstr(q, "\r\nPrefer: return=minimal\r\n"));
    const char *body = request_body(&f->r, i);
    json_t *j = NULL;
    ct_fhir_issue issue;
    assert_int_equal(ct_fhir_parse(body, strlen(body), NULL, &j, &issue), 0);
    ct_fhir_ecg ecg;
    int rc = ct_fhir_ecg_from_json(j, NULL, &ecg, &issue);
    if (rc)
        fail_msg("observation %d: %s (at %s)", i, issue.diagnostics, issue.expression);
    json_decref(j);
    assert_string_equal(ecg.patient_id, "p-1");
    assert_int_equal(ecg.status, CT_FHIR_OBS_FINAL);
    assert_int_equal(ecg.start_ms, start_ms + first * 1000 / FS);
    assert_int_equal(ecg.end_ms, start_ms + (first + count) * 1000 / FS);
    assert_int_equal(ecg.n_leads, 2);
    assert_int_equal(ecg.leads[0].lead->mdc_code, 131330);
    assert_string_equal(ecg.leads[0].text, "II");
    assert_int_equal(ecg.leads[1].lead->mdc_code, 131331);
    assert_true(fabs(ecg.leads[0].fs_hz - FS) < 1e-9);
    /* 200 ADC units per mV, baseline 10; the second lead's 2 units per uV are 2000 per mV. */
    assert_true(ecg.leads[0].exact && ecg.leads[1].exact);
    assert_true(fabs(ecg.leads[0].gain_adu_per_mv - 200.0) < 1e-9);
    assert_true(fabs(ecg.leads[0].baseline_adu - 10.0) < 1e-9);
    assert_true(fabs(ecg.leads[1].gain_adu_per_mv - 2000.0) < 1e-9);
    assert_true(fabs(ecg.leads[1].baseline_adu) < 1e-9);
    for (int l = 0; l < 2; l++) {
        assert_int_equal(ecg.leads[l].n_samples, (size_t)count);
        for (int64_t k = 0; k < count; k++)
            assert_int_equal(ecg.leads[l].samples[k], f->sig[l][first + k]);
    }
    ct_fhir_ecg_free(&ecg);
}

static void test_stream_creates_patient_and_sends_all(void **state)
{
    fixture *f = *state;
    outcome(&f->r, 404, "no Patient/p-1");
    responder_add(&f->r, "HTTP/1.1 201 Created\r\nLocation: http://h/fhir/Patient/p-1/_history/1\r\n"
                         "Content-Length: 0\r\nConnection: close\r\n\r\n");
    for (int i = 1; i <= 3; i++)
        created(&f->r, i);
    start(f);
    ct_client_stream_options o = stream_opts(f);
    ct_client_stream_result res;
    ct_error err = {0};
    int rc = ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.n_obs_planned, 3);
    assert_int_equal(res.n_obs_sent, 3);
    assert_int_equal(res.n_samples_sent, N_SAMPLES);
    assert_int_equal(res.n_leads, 2);
    assert_true(fabs(res.ecg_seconds - 3.0) < 1e-9);
    assert_int_equal(res.retries, 0);
    assert_int_equal(res.patient_created, 1);
    assert_int_equal(res.stopped, 0);
    assert_int_equal(res.start_ms, o.start_ms);
    assert_string_equal(res.last_location, "http://h/fhir/Observation/3/_history/1");
    assert_int_equal(f->began, 1);
    assert_int_equal(f->patient_calls, 1);
    assert_int_equal(f->patient_created, 1);
    assert_int_equal(f->n_sent, 3);
    responder_join(&f->r);
    assert_int_equal(f->r.served, 5);
    assert_non_null(strstr(f->r.requests[0], "GET /fhir/Patient/p-1 HTTP/1.1\r\n"));
    assert_non_null(strstr(f->r.requests[1], "PUT /fhir/Patient/p-1 HTTP/1.1\r\n"));
    assert_non_null(strstr(f->r.requests[1], "\r\nAuthorization: Bearer " TOKEN "\r\n"));
    assert_string_equal(request_body(&f->r, 1), "{\"resourceType\":\"Patient\",\"id\":\"p-1\"}");
    for (int i = 0; i < 3; i++)
        check_observation(f, 2 + i, (int64_t)i * FS, FS, o.start_ms);
}

static void test_stream_patient_exists_short_last(void **state)
{
    fixture *f = *state;
    answer(&f->r, 200, NULL, "{\"resourceType\":\"Patient\",\"id\":\"p-1\"}");
    /* 1.2 s per Observation: 120, 120 and a short 60. */
    for (int i = 1; i <= 3; i++)
        created(&f->r, i);
    start(f);
    ct_client_stream_options o = stream_opts(f);
    o.seconds_per_obs = 1.2;
    ct_client_stream_result res;
    ct_error err = {0};
    int rc = ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.n_obs_sent, 3);
    assert_int_equal(res.patient_created, 0);
    assert_int_equal(f->patient_created, 0);
    responder_join(&f->r);
    assert_int_equal(f->r.served, 4);
    check_observation(f, 1, 0, 120, o.start_ms);
    check_observation(f, 2, 120, 120, o.start_ms);
    check_observation(f, 3, 240, 60, o.start_ms);
}

static void test_stream_no_patient_limit(void **state)
{
    fixture *f = *state;
    created(&f->r, 1);
    created(&f->r, 2);
    start(f);
    ct_client_stream_options o = stream_opts(f);
    o.ensure_patient = 0;
    o.limit_seconds = 1.5;
    o.bearer_token = NULL;
    ct_client_stream_result res;
    ct_error err = {0};
    int rc = ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.n_obs_planned, 2);
    assert_int_equal(res.n_samples_sent, 150);
    assert_int_equal(f->patient_calls, 0);
    responder_join(&f->r);
    assert_non_null(strstr(f->r.requests[1], "POST /fhir/Observation HTTP/1.1\r\n"));
    assert_false(has_header(f->r.requests[1], "Authorization"));
}

static void test_stream_4xx_stops_with_diagnostics(void **state)
{
    fixture *f = *state;
    answer(&f->r, 200, NULL, "{\"resourceType\":\"Patient\",\"id\":\"p-1\"}");
    created(&f->r, 1);
    outcome(&f->r, 422, "SampledData.period must be positive");
    start(f);
    ct_client_stream_options o = stream_opts(f);
    ct_client_stream_result res;
    ct_error err = {0};
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err), CT_ENET);
    assert_int_equal(res.n_obs_sent, 1);
    assert_int_equal(res.retries, 0);
    assert_int_equal(f->retries_seen, 0);
    assert_non_null(strstr(err.msg, "record r1: Observation 2 of 3 (from 1.000 s): POST "));
    assert_non_null(strstr(err.msg, "HTTP 422: SampledData.period must be positive (at Observation.status)"));
    assert_null(strstr(err.msg, "tok-EN"));
    responder_join(&f->r);
    assert_int_equal(f->r.served, 3);
}

static void test_stream_5xx_retried(void **state)
{
    fixture *f = *state;
    answer(&f->r, 200, NULL, "{\"resourceType\":\"Patient\",\"id\":\"p-1\"}");
    created(&f->r, 1);
    outcome(&f->r, 503, "busy");
    outcome(&f->r, 502, "bad gateway");
    created(&f->r, 2);
    created(&f->r, 3);
    start(f);
    ct_client_stream_options o = stream_opts(f);
    ct_client_stream_result res;
    ct_error err = {0};
    int rc = ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.n_obs_sent, 3);
    assert_int_equal(res.retries, 2);
    assert_int_equal(f->retries_seen, 2);
    assert_int_equal(f->retry_k[0], 1);
    assert_int_equal(f->retry_attempts[0], 2);
    assert_int_equal(f->retry_attempts[1], 3);
    responder_join(&f->r);
    /* The retried Observation is the same one, sent whole again. */
    assert_string_equal(request_body(&f->r, 2), request_body(&f->r, 4));
    check_observation(f, 4, FS, FS, o.start_ms);
}

static void test_stream_patient_refused(void **state)
{
    fixture *f = *state;
    outcome(&f->r, 401, "the access token was not accepted");
    start(f);
    ct_client_stream_options o = stream_opts(f);
    ct_client_stream_result res;
    ct_error err = {0};
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err), CT_ENET);
    assert_non_null(strstr(err.msg, "Patient/p-1: GET "));
    assert_non_null(strstr(err.msg, "HTTP 401: the access token was not accepted"));
    assert_int_equal(res.n_obs_sent, 0);
    assert_int_equal(f->patient_calls, 0);
}

static void test_stream_patient_forbidden(void **state)
{
    fixture *f = *state;
    outcome(&f->r, 403, "the token may not read Patients");
    outcome(&f->r, 403, "the token may not read Patients");
    start(f);
    ct_client_stream_options o = stream_opts(f);
    ct_client_stream_result res;
    ct_error err = {0};
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err), CT_ENET);
    assert_non_null(strstr(err.msg, "Patient/p-1: GET "));
    assert_non_null(strstr(err.msg, "HTTP 403: the token may not read Patients"));
    assert_non_null(strstr(err.msg, "--no-patient"));
    /* Without an error to fill, the code is still the request's. */
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, NULL), CT_ENET);
    responder_join(&f->r);
    assert_int_equal(f->r.served, 2);
}

static void test_stream_stop_between_observations(void **state)
{
    fixture *f = *state;
    answer(&f->r, 200, NULL, "{\"resourceType\":\"Patient\",\"id\":\"p-1\"}");
    created(&f->r, 1);
    start(f);
    f->stop_after_sent = 1;
    ct_client_stream_options o = stream_opts(f);
    o.speed = 1.0;
    ct_client_stream_result res;
    ct_error err = {0};
    double t = now_s();
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err), 0);
    double elapsed = now_s() - t;
    assert_int_equal(res.stopped, 1);
    assert_int_equal(res.n_obs_sent, 1);
    assert_int_equal(res.n_samples_sent, FS);
    /* The first Observation was due after 1 s of "acquisition". */
    assert_true(elapsed >= 0.99);
    responder_join(&f->r);
    assert_int_equal(f->r.served, 2);
}

static void test_stream_paced(void **state)
{
    fixture *f = *state;
    for (int i = 1; i <= 6; i++)
        created(&f->r, i);
    start(f);
    ct_client_stream_options o = stream_opts(f);
    o.ensure_patient = 0;
    o.seconds_per_obs = 0.5;
    o.speed = 2.0;
    ct_client_stream_result res;
    ct_error err = {0};
    double t = now_s();
    int rc = ct_client_stream_record(f->c, f->record, &o, callbacks(f), &res, &err);
    double elapsed = now_s() - t;
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.n_obs_sent, 6);
    /* 3 s of ECG at twice real time: the last Observation leaves 1.5 s in.
     * A lower bound only: a slow machine may take longer, never shorter. */
    assert_true(elapsed >= 1.49);
    assert_true(res.wall_seconds >= 1.49);
    assert_true(res.max_late_ms >= 0);
    responder_join(&f->r);
    for (int i = 0; i < 6; i++)
        check_observation(f, i, (int64_t)i * 50, 50, o.start_ms);
}

static void test_stream_refuses_records_it_cannot_send(void **state)
{
    fixture *f = *state;
    assert_int_equal(ct_client_new(&f->opt, &f->c, NULL), 0);
    /* Nobody listens: any request would fail with CT_ENET, not these. */
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/fhir", closed_port());
    ct_client_stream_options o = stream_opts(f);
    ct_client_stream_result res;
    ct_error err = {0};
    char path[128];

    write_record(f, "r2", "MLII", "mV", "ABP", "mmHg");
    snprintf(path, sizeof path, "%s/r2", f->dir);
    assert_int_equal(ct_client_stream_record(f->c, path, &o, NULL, &res, &err), CT_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "record r2: signal 1 (ABP) is not an ECG lead"));

    write_record(f, "r3", "MLII", "mV", "II", "mV");
    snprintf(path, sizeof path, "%s/r3", f->dir);
    assert_int_equal(ct_client_stream_record(f->c, path, &o, NULL, &res, &err), CT_EUNSUPPORTED);
    assert_string_equal(err.msg, "record r3: signals 0 (MLII) and 1 (II) are both lead II");

    write_record(f, "r4", "V2", "mmHg", "V3", "mV");
    snprintf(path, sizeof path, "%s/r4", f->dir);
    assert_int_equal(ct_client_stream_record(f->c, path, &o, NULL, &res, &err), CT_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "signal 0 (V2) has gain 200 ADC units per mmHg"));

    snprintf(path, sizeof path, "%s/missing", f->dir);
    assert_true(ct_client_stream_record(f->c, path, &o, NULL, &res, &err) < 0);
    assert_non_null(strstr(err.msg, "missing"));
    assert_int_equal(res.n_obs_planned, 0);

    /* Options are checked before the record is read. */
    o.patient_id = "p_1";
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, NULL, &res, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "'p_1' is not a FHIR id"));
    o = stream_opts(f);
    o.speed = 0.001;
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, NULL, &res, &err), CT_EINVAL);
    o = stream_opts(f);
    o.base_url = "ftp://example.org/fhir";
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, NULL, &res, &err), CT_EINVAL);
    o = stream_opts(f);
    o.bearer_token = "has space";
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, NULL, &res, &err), CT_EINVAL);
    o = stream_opts(f);
    o.seconds_per_obs = 0;
    assert_int_equal(ct_client_stream_record(f->c, f->record, &o, NULL, &res, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "record r1: seconds per observation 0"));
}

/* MIT-BIH 100 cut as a gateway would: the real record through the same
 * path, only the first 25 s so the test stays small. */
static void test_stream_mitdb_100(void **state)
{
    fixture *f = *state;
    const char *db = getenv("CARDIOTWIN_MITDB");
    if (!db || !*db)
        db = "../shared/data/mitdb";
    char path[512];
    snprintf(path, sizeof path, "%s/100", db);
    created(&f->r, 1);
    created(&f->r, 2);
    created(&f->r, 3);
    start(f);
    ct_client_stream_options o = stream_opts(f);
    o.ensure_patient = 0;
    o.seconds_per_obs = 10;
    o.limit_seconds = 25;
    ct_client_stream_result res;
    ct_error err = {0};
    int rc = ct_client_stream_record(f->c, path, &o, NULL, &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.n_obs_sent, 3);
    assert_int_equal(res.n_samples_sent, 9000);
    responder_join(&f->r);
    ct_wfdb_header *hdr = calloc(1, sizeof *hdr);
    ct_wfdb_signals sig;
    assert_int_equal(ct_wfdb_header_read(path, hdr, NULL), 0);
    assert_int_equal(ct_wfdb_signals_read(path, hdr, &sig, NULL), 0);
    int64_t at = 0;
    for (int i = 0; i < 3; i++) {
        const char *body = request_body(&f->r, i);
        json_t *j = NULL;
        ct_fhir_ecg ecg;
        assert_int_equal(ct_fhir_parse(body, strlen(body), NULL, &j, NULL), 0);
        assert_int_equal(ct_fhir_ecg_from_json(j, NULL, &ecg, NULL), 0);
        json_decref(j);
        assert_int_equal(ecg.start_ms, o.start_ms + at * 1000 / 360);
        assert_string_equal(ecg.leads[0].text, "MLII");
        assert_int_equal(ecg.leads[0].lead->mdc_code, 131330);
        assert_string_equal(ecg.leads[1].text, "V5");
        assert_int_equal(ecg.leads[1].lead->mdc_code, 131335);
        assert_true(fabs(ecg.leads[0].baseline_adu - 1024.0) < 1e-9);
        for (int l = 0; l < 2; l++)
            for (size_t k = 0; k < ecg.leads[l].n_samples; k++)
                assert_int_equal(ecg.leads[l].samples[k], sig.samples[l][at + (int64_t)k]);
        at += (int64_t)ecg.leads[0].n_samples;
        ct_fhir_ecg_free(&ecg);
    }
    assert_int_equal(at, 9000);
    ct_wfdb_signals_free(&sig);
    free(hdr);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_post_sends_and_captures),
        T(test_methods_and_handle_reset),
        T(test_5xx_retried_then_success),
        T(test_4xx_final_with_diagnostics),
        T(test_404_410_not_found),
        T(test_5xx_gives_up),
        T(test_redirect_not_followed),
        T(test_answer_bounded),
        T(test_stop_during_backoff),
        T(test_connection_refused),
        T(test_bad_requests_refused),
        T(test_stream_creates_patient_and_sends_all),
        T(test_stream_patient_exists_short_last),
        T(test_stream_no_patient_limit),
        T(test_stream_4xx_stops_with_diagnostics),
        T(test_stream_5xx_retried),
        T(test_stream_patient_refused),
        T(test_stream_patient_forbidden),
        T(test_stream_stop_between_observations),
        T(test_stream_paced),
        T(test_stream_refuses_records_it_cannot_send),
        T(test_stream_mitdb_100),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
