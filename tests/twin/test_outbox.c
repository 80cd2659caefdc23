/* Pushing reports upstream through the outbox, against a receiver on
 * 127.0.0.1 that this test runs (a plain HTTP/1.1 server on a thread, with
 * a scripted list of answers): the Bundle's shape (transaction, conditional
 * updates on the twin's identifiers, results referenced by urn:uuid, no
 * reference to what only exists here), a 503 retried after the backoff and
 * not before, a 400 given up with the upstream's diagnostics, an upstream
 * that is down, and a later version superseding an earlier one. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include "twin_test_util.h"

#define FS 360
#define OBS (10 * FS)

/* ---- the receiver ------------------------------------------------------------------ */

#define MAX_REQ 64

typedef struct receiver {
    int fd;
    int port;
    pthread_t th;
    pthread_mutex_t mu;
    int stop;
    int statuses[MAX_REQ]; /* answer i; 0 after the list: 200 */
    int n_statuses;
    int n_req;
    char *bodies[MAX_REQ];
    char lines[MAX_REQ][256];
} receiver;

static void *serve(void *arg)
{
    receiver *r = arg;
    for (;;) {
        struct pollfd p = {r->fd, POLLIN, 0};
        int pr = poll(&p, 1, 50);
        pthread_mutex_lock(&r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            return NULL;
        if (pr <= 0)
            continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        /* Headers, then Content-Length bytes of body. */
        size_t cap = 1 << 20, n = 0;
        char *buf = malloc(cap + 1);
        char *body = NULL;
        size_t want = 0;
        while (buf && n < cap) {
            ssize_t k = recv(c, buf + n, cap - n, 0);
            if (k <= 0)
                break;
            n += (size_t)k;
            buf[n] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (end && !body) {
                body = end + 4;
                char *cl = strstr(buf, "\r\nContent-Length:");
                want = cl && cl < end ? (size_t)strtoul(cl + 17, NULL, 10) : 0;
            }
            if (body && (size_t)(buf + n - body) >= want)
                break;
        }
        pthread_mutex_lock(&r->mu);
        int i = r->n_req < MAX_REQ ? r->n_req++ : MAX_REQ - 1;
        int status = i < r->n_statuses ? r->statuses[i] : 200;
        if (buf) {
            char *eol = strstr(buf, "\r\n");
            snprintf(r->lines[i], sizeof r->lines[i], "%.*s", eol ? (int)(eol - buf) : 0, buf);
            free(r->bodies[i]);
            r->bodies[i] = body ? strdup(body) : NULL;
        }
        pthread_mutex_unlock(&r->mu);
        free(buf);
        const char *ok = "{\"resourceType\":\"Bundle\",\"type\":\"transaction-response\"}";
        const char *bad = "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\","
                          "\"code\":\"invalid\",\"diagnostics\":\"subject Patient/p106 is unknown here\"}]}";
        const char *out = status < 300 ? ok : bad;
        char head[256];
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 %d X\r\nContent-Type: application/fhir+json\r\nContent-Length: %zu\r\n"
                          "Connection: close\r\n\r\n",
                          status, strlen(out));
        if (send(c, head, (size_t)hl, MSG_NOSIGNAL) < 0 || send(c, out, strlen(out), MSG_NOSIGNAL) < 0) {
            /* the client went away: nothing to do */
        }
        close(c);
    }
}

static void receiver_start(receiver *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(r->fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(r->fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r->fd, 16), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(r->fd, (struct sockaddr *)&a, &len), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->th, NULL, serve, r), 0);
}

static void receiver_stop(receiver *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    close(r->fd);
    for (int i = 0; i < MAX_REQ; i++)
        free(r->bodies[i]);
    pthread_mutex_destroy(&r->mu);
}

static int requests(receiver *r)
{
    pthread_mutex_lock(&r->mu);
    int n = r->n_req;
    pthread_mutex_unlock(&r->mu);
    return n;
}

/* ---- the test ---------------------------------------------------------------------- */

static ct_client *client_new(void)
{
    ct_client_options co;
    ct_client_options_default(&co);
    co.connect_timeout_ms = 2000;
    ct_client *c = NULL;
    ct_error err;
    if (ct_client_new(&co, &c, &err) != 0)
        fail_msg("%s", err.msg);
    return c;
}

/* Checks one Bundle the twin sent. */
static void check_bundle(const char *text, const char *report_id)
{
    json_t *b = json_loads(text, 0, NULL);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "transaction");
    json_t *entries = json_object_get(b, "entry");
    size_t n = json_array_size(entries);
    assert_true(n >= 2);
    json_t *rep_entry = json_array_get(entries, n - 1);
    json_t *rep = json_object_get(rep_entry, "resource");
    assert_string_equal(json_string_value(json_object_get(rep, "resourceType")), "DiagnosticReport");
    char url[256];
    snprintf(url, sizeof url, "DiagnosticReport?identifier=%s|%s", CT_TWIN_IDENTIFIER_SYSTEM, report_id);
    assert_string_equal(json_string_value(json_object_get(json_object_get(rep_entry, "request"), "url")), url);
    assert_string_equal(json_string_value(json_object_get(json_object_get(rep_entry, "request"), "method")), "PUT");
    assert_null(json_object_get(rep, "id"));
    assert_null(json_object_get(rep, "meta"));
    /* Each result is an entry of the Bundle, by its urn:uuid. */
    json_t *results = json_object_get(rep, "result");
    assert_int_equal(json_array_size(results), n - 1);
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *e = json_array_get(entries, i);
        const char *full = json_string_value(json_object_get(e, "fullUrl"));
        assert_memory_equal(full, "urn:uuid:", 9);
        assert_string_equal(json_string_value(json_object_get(json_array_get(results, i), "reference")), full);
        json_t *o = json_object_get(e, "resource");
        assert_string_equal(json_string_value(json_object_get(o, "resourceType")), "Observation");
        assert_null(json_object_get(o, "derivedFrom"));
        assert_null(json_object_get(o, "device"));
        assert_null(json_object_get(o, "id"));
        const char *u = json_string_value(json_object_get(json_object_get(e, "request"), "url"));
        assert_non_null(strstr(u, "Observation?identifier=" CT_TWIN_IDENTIFIER_SYSTEM "|"));
    }
    json_decref(b);
}

static void test_push(void **state)
{
    (void)state;
    tt_record *r = tt_load("106");
    tt_db d;
    tt_db_open(&d);
    receiver rv;
    receiver_start(&rv);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d/fhir", rv.port);
    ct_twin_options o;
    ct_twin_options_default(&o);
    o.upstream_base_url = base;
    ct_twin *t = NULL;
    ct_error err;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), 0);
    /* Until the first alert is raised: one row, version 1. */
    ct_twin_ingest_result res;
    int64_t k = 0;
    while (tt_count(&d, "SELECT count(*) FROM twin_outbox") == 0) {
        char id[32];
        snprintf(id, sizeof id, "o%lld", (long long)k);
        assert_int_equal(tt_ingest(t, d.st, r, "p106", id, k * OBS, OBS, TT_T0_MS + k * 10000, &res, &err), 0);
        assert_true(++k < 120);
    }
    ct_client *c = client_new();
    ct_twin_push_options po;
    ct_twin_push_options_default(&po);
    po.base_url = base;
    po.backoff_base_ms = 1000;
    ct_twin_push_result pr;

    /* 503: tried once, due again after the backoff and not before. */
    rv.statuses[0] = 503;
    rv.statuses[1] = 400;
    rv.n_statuses = 2;
    int64_t now = (int64_t)time(NULL) * 1000 + 60000; /* every row is due */
    assert_int_equal(ct_twin_push(d.st, c, &po, now, &pr, &err), 0);
    assert_int_equal(pr.retry, 1);
    assert_int_equal(pr.sent, 0);
    assert_non_null(strstr(pr.last_error, "503"));
    assert_int_equal(requests(&rv), 1);
    assert_non_null(strstr(rv.lines[0], "POST /fhir HTTP/1.1"));
    assert_int_equal(tt_count(&d, "SELECT attempts FROM twin_outbox"), 1);
    assert_int_equal(tt_count(&d, "SELECT next_attempt_ms FROM twin_outbox"), now + 1000);
    assert_int_equal(ct_twin_push(d.st, c, &po, now + 999, &pr, &err), 0);
    assert_int_equal(pr.sent + pr.retry + pr.failed, 0);
    assert_int_equal(requests(&rv), 1);

    /* 400: given up, with the upstream's words. */
    assert_int_equal(ct_twin_push(d.st, c, &po, now + 1000, &pr, &err), 0);
    assert_int_equal(pr.failed, 1);
    assert_non_null(strstr(pr.last_error, "subject Patient/p106 is unknown here"));
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_outbox WHERE state = 'failed'"), 1);
    assert_int_equal(requests(&rv), 2);

    /* An operator sets it back; the upstream takes it. */
    tt_exec(&d, "UPDATE twin_outbox SET state = 'pending', next_attempt_ms = 0");
    assert_int_equal(ct_twin_push(d.st, c, &po, now + 2000, &pr, &err), 0);
    assert_int_equal(pr.sent, 1);
    assert_int_equal(requests(&rv), 3);
    ct_store_twin_alert *al = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_twin_alerts_list(d.st, "p106", 0, 10, &al, &n, &err), 0);
    assert_int_equal(n, 1);
    check_bundle(rv.bodies[2], al[0].report_id);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_outbox WHERE state = 'sent' AND sent_ms IS NOT NULL"),
                     1);
    /* Sent the same state twice (a lost answer): the same conditional
     * updates, nothing new upstream. */
    assert_int_equal(ct_twin_push(d.st, c, &po, now + 3000, &pr, &err), 0);
    assert_int_equal(pr.sent, 0);

    /* The alert clears: version 2 goes out with status final; both rows
     * of a report settled by one Bundle when both are due. */
    assert_int_equal(ct_twin_stream_end(t, d.st, "p106", &err), 0);
    int64_t rows = tt_count(&d, "SELECT count(*) FROM twin_outbox");
    assert_true(rows >= 2);
    tt_exec(&d, "UPDATE twin_outbox SET state = 'pending', next_attempt_ms = 0");
    assert_int_equal(ct_twin_push(d.st, c, &po, now + 4000, &pr, &err), 0);
    assert_int_equal(pr.sent, 1);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_outbox WHERE state = 'sent'"), rows);
    json_t *b = json_loads(rv.bodies[3], 0, NULL);
    json_t *entries = json_object_get(b, "entry");
    json_t *rep = json_object_get(json_array_get(entries, json_array_size(entries) - 1), "resource");
    assert_string_equal(json_string_value(json_object_get(rep, "status")), "final");
    json_decref(b);
    free(al);

    /* The upstream is down: a network failure is transient. */
    receiver_stop(&rv);
    tt_exec(&d, "UPDATE twin_outbox SET state = 'pending', next_attempt_ms = 0, attempts = 0");
    assert_int_equal(ct_twin_push(d.st, c, &po, now + 5000, &pr, &err), 0);
    assert_int_equal(pr.retry, 1);
    assert_int_equal(pr.sent, 0);
    /* ... and after max_attempts it is given up. */
    po.max_attempts = 2;
    assert_int_equal(ct_twin_push(d.st, c, &po, INT64_MAX / 2, &pr, &err), 0);
    assert_int_equal(pr.failed, 1);

    /* Options are checked. */
    po.base_url = "ftp://x";
    assert_int_equal(ct_twin_push(d.st, c, &po, now, &pr, &err), CT_EINVAL);
    ct_client_free(c);
    ct_twin_free(t);
    tt_db_close(&d);
    tt_unload(r);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
