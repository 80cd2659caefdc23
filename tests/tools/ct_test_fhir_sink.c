/* ct_test_fhir_sink: a stand-in FHIR server for `cardiotwin stream`'s
 * integration test, and the checker of what it received.
 *
 * Serving (default): civetweb on 127.0.0.1, a port the kernel picks, with
 *   GET  /fhir/Patient/ID    200 with the stored Patient, or 404
 *   PUT  /fhir/Patient/ID    stores DIR/Patient-ID.json; 201 (200 if it was there)
 *   POST /fhir/Observation   stores the body as DIR/obs-NNNNNN.json (1, 2, ...
 *                            in order of arrival); 201 with Location and ETag
 * and an OperationOutcome for every refusal. It misbehaves on request:
 *   --token-file F      require "Authorization: Bearer <the token in F>" (401)
 *   --fail-at K         the attempts to store Observation K (1-based) ...
 *   --fail-times N      ... are refused N times (default 1) ...
 *   --fail-status S     ... with status S (default 503) ...
 *   --retry-after SEC   ... and this Retry-After header
 *   --tls PEM           speak HTTPS with the key and certificate in PEM
 *   --lifetime SEC      exit after SEC seconds even without SIGTERM (600)
 * It prints "port N" first, then one line per request, before answering:
 *   POST /fhir/Observation status=201 obs=3 auth=ok type=application/fhir+json prefer=return=minimal bytes=30512
 * (the token itself is never printed), and exits on SIGTERM or SIGINT.
 *
 * Verifying (--verify DIR --record PATH --patient ID --seconds N
 * [--limit-seconds S] [--start-ms MS]): reads DIR/obs-000001.json, ... back
 * through the fhir room's ct_fhir_ecg_from_json and checks them against the
 * record read with the wfdb room: the count, the subject, each lead's MDC
 * code and scale, every sample (their concatenation is the record), and
 * effective times that start at MS (when given) and follow each other with
 * no gap and no overlap. Prints "verified N observations, M samples per
 * lead" or the first difference, and exits 0 or 1. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>

#include "cardiotwin/fhir.h"
#include "cardiotwin/wfdb.h"

#define MAX_BODY ((long long)64 * 1024 * 1024)

typedef struct sink {
    char dir[PATH_MAX];
    char token[4097];       /* "" when none is required */
    int port;
    int fail_at;            /* 0: off */
    int fail_times;
    int fail_status;
    int retry_after_s;      /* -1: no header */
    pthread_mutex_t lock;   /* guards the counters, the files and stdout */
    int n_obs;              /* Observations stored */
    int failed;             /* refusals given to Observation fail_at so far */
} sink;

static void log_line(sink *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void log_line(sink *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

/* An OperationOutcome with one issue; diagnostics must not need escaping. */
static void reply_outcome(struct mg_connection *conn, int status, const char *text, const char *code,
                          const char *diagnostics, const char *extra_headers)
{
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\",\"code\":\"%s\","
                     "\"diagnostics\":\"%s\",\"expression\":[\"Observation\"]}]}",
                     code, diagnostics);
    mg_printf(conn,
              "HTTP/1.1 %d %s\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n%s"
              "Connection: close\r\n\r\n%s",
              status, text, n, extra_headers ? extra_headers : "", body);
}

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return "Status";
    }
}

/* Reads the whole body (Content-Length or chunked) into a malloc'd buffer. */
static char *read_body(struct mg_connection *conn, long long *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf)
        return NULL;
    for (;;) {
        if (n == cap) {
            if ((long long)cap * 2 > MAX_BODY) {
                free(buf);
                *len = -1;
                return NULL;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
            cap *= 2;
        }
        int r = mg_read(conn, buf + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *len = (long long)n;
    return buf;
}

static int write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char tmp[PATH_MAX + 300], path[PATH_MAX + 300];
    snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name);
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return -1;
    int ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static int id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '.'))
            return 0;
    return 1;
}

static int handle(struct mg_connection *conn, void *cbdata)
{
    sink *s = cbdata;
    const struct mg_request_info *ri = mg_get_request_info(conn);
    const char *method = ri->request_method;
    const char *uri = ri->local_uri ? ri->local_uri : "";
    const char *type = mg_get_header(conn, "Content-Type");
    const char *prefer = mg_get_header(conn, "Prefer");
    const char *authz = mg_get_header(conn, "Authorization");
    const char *auth = "none";
    if (authz) {
        auth = "wrong";
        if (strncmp(authz, "Bearer ", 7) == 0 && s->token[0] && strcmp(authz + 7, s->token) == 0)
            auth = "ok";
    }
    long long len = 0;
    char *body = NULL;
    if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        body = read_body(conn, &len);
        if (!body) {
            pthread_mutex_lock(&s->lock);
            log_line(s, "%s %s status=413 auth=%s", method, uri, auth);
            pthread_mutex_unlock(&s->lock);
            reply_outcome(conn, 413, "Payload Too Large", "too-long", "sink: body over 64 MiB", NULL);
            return 413;
        }
    }
    pthread_mutex_lock(&s->lock);
    int status = 0, obs = 0;
    char headers[512] = "";
    char diag[256] = "";
    const char *issue = "processing";
    char *answer = NULL; /* a 200's body */
    if (s->token[0] && strcmp(auth, "ok") != 0) {
        status = 401;
        issue = "login";
        snprintf(diag, sizeof diag, "sink: %s bearer token", authz ? "wrong" : "no");
        snprintf(headers, sizeof headers, "WWW-Authenticate: Bearer realm=\"sink\"\r\n");
    } else if (strcmp(uri, "/fhir/Observation") == 0 && strcmp(method, "POST") == 0) {
        obs = s->n_obs + 1;
        if (!type || strncmp(type, "application/fhir+json", 21) != 0) {
            status = 415;
            snprintf(diag, sizeof diag, "sink: Content-Type must be application/fhir+json");
        } else if (obs == s->fail_at && s->failed < s->fail_times) {
            s->failed++;
            status = s->fail_status;
            issue = status >= 500 ? "transient" : "invalid";
            snprintf(diag, sizeof diag, "sink: refusing Observation %d on purpose (%d of %d)", obs, s->failed,
                     s->fail_times);
            if (s->retry_after_s >= 0)
                snprintf(headers, sizeof headers, "Retry-After: %d\r\n", s->retry_after_s);
        } else {
            char name[64];
            snprintf(name, sizeof name, "obs-%06d.json", obs);
            if (write_file(s->dir, name, body, (size_t)len) != 0) {
                status = 500;
                snprintf(diag, sizeof diag, "sink: cannot store %s", name);
            } else {
                s->n_obs = obs;
                status = 201;
                snprintf(headers, sizeof headers,
                         "Location: http://127.0.0.1:%d/fhir/Observation/%d/_history/1\r\nETag: W/\"1\"\r\n",
                         s->port, obs);
            }
        }
    } else if (strncmp(uri, "/fhir/Patient/", 14) == 0 && id_ok(uri + 14) &&
               (strcmp(method, "GET") == 0 || strcmp(method, "PUT") == 0)) {
        const char *id = uri + 14;
        char name[96], path[PATH_MAX + 100];
        snprintf(name, sizeof name, "Patient-%s.json", id);
        snprintf(path, sizeof path, "%s/%s", s->dir, name);
        struct stat st;
        int exists = stat(path, &st) == 0;
        if (strcmp(method, "GET") == 0) {
            if (!exists) {
                status = 404;
                issue = "not-found";
                snprintf(diag, sizeof diag, "sink: no Patient/%s", id);
            } else {
                FILE *f = fopen(path, "rb");
                answer = calloc(1, (size_t)st.st_size + 1);
                if (f && answer && fread(answer, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
                    status = 200;
                } else {
                    status = 500;
                    snprintf(diag, sizeof diag, "sink: cannot read Patient/%s", id);
                }
                if (f)
                    fclose(f);
            }
        } else if (!type || strncmp(type, "application/fhir+json", 21) != 0) {
            status = 415;
            snprintf(diag, sizeof diag, "sink: Content-Type must be application/fhir+json");
        } else if (write_file(s->dir, name, body, (size_t)len) != 0) {
            status = 500;
            snprintf(diag, sizeof diag, "sink: cannot store Patient/%s", id);
        } else {
            status = exists ? 200 : 201;
            snprintf(headers, sizeof headers,
                     "Location: http://127.0.0.1:%d/fhir/Patient/%s/_history/1\r\nETag: W/\"1\"\r\n", s->port,
                     id);
        }
    } else {
        status = 404;
        issue = "not-found";
        snprintf(diag, sizeof diag, "sink: nothing at %s %s", method, uri[0] == '/' ? "this path" : "-");
    }
    log_line(s, "%s %s status=%d obs=%d auth=%s type=%s prefer=%s bytes=%lld", method, uri, status, obs, auth,
             type ? type : "-", prefer ? prefer : "-", len);
    pthread_mutex_unlock(&s->lock);
    free(body);

    if (status == 200 && answer) {
        mg_printf(conn,
                  "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+json\r\nContent-Length: %zu\r\n"
                  "ETag: W/\"1\"\r\nConnection: close\r\n\r\n%s",
                  strlen(answer), answer);
    } else if (status == 200 || status == 201) {
        mg_printf(conn, "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: close\r\n\r\n", status,
                  status == 201 ? "Created" : "OK", headers);
    } else {
        reply_outcome(conn, status, status_text(status), issue, diag, headers);
    }
    free(answer);
    return status;
}

static int log_message(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    fprintf(stderr, "ct_test_fhir_sink: %s\n", message);
    return 1;
}

/* civetweb's listener notices mg_stop only when its poll wakes; knocking on
 * the port wakes it at once. */
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

static int serve(sink *s, const char *tls_pem, long long lifetime_s)
{
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
        fprintf(stderr, "ct_test_fhir_sink: could not start the server\n");
        mg_exit_library();
        return 1;
    }
    struct mg_server_port ports[4];
    int n = mg_get_server_ports(ctx, 4, ports);
    if (n < 1) {
        fprintf(stderr, "ct_test_fhir_sink: no listening port\n");
        mg_stop(ctx);
        mg_exit_library();
        return 1;
    }
    s->port = ports[0].port;
    mg_set_request_handler(ctx, "**", handle, s);
    pthread_mutex_lock(&s->lock);
    log_line(s, "port %d", s->port);
    pthread_mutex_unlock(&s->lock);

    struct timespec limit = {.tv_sec = (time_t)lifetime_s, .tv_nsec = 0};
    int sig;
    do {
        sig = sigtimedwait(&stop, NULL, &limit);
    } while (sig < 0 && errno == EINTR);
    if (sig < 0)
        fprintf(stderr, "ct_test_fhir_sink: lifetime of %lld s reached, stopping\n", lifetime_s);
    waker w = {.port = s->port};
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
    return 0;
}

/* ---- verifying --------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && st.st_size >= 0 && st.st_size < MAX_BODY) {
        buf = malloc((size_t)st.st_size + 1);
        if (buf && fread(buf, 1, (size_t)st.st_size, f) == (size_t)st.st_size) {
            buf[st.st_size] = '\0';
            *len = (size_t)st.st_size;
        } else {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    return buf;
}

static int verify(const char *dir, const char *record, const char *patient, double seconds,
                  double limit_s, int has_start, long long start_ms)
{
    ct_error err = {0};
    ct_wfdb_header *hdr = calloc(1, sizeof *hdr);
    ct_wfdb_signals sig;
    memset(&sig, 0, sizeof sig);
    if (!hdr || ct_wfdb_header_read(record, hdr, &err) != 0 || ct_wfdb_signals_read(record, hdr, &sig, &err) != 0) {
        printf("cannot read %s: %s\n", record, err.msg);
        free(hdr);
        return 1;
    }
    double fs = hdr->fs_hz;
    int64_t n_total = sig.n_samples;
    if (limit_s > 0 && (int64_t)floor(limit_s * fs + 0.5) < n_total)
        n_total = (int64_t)floor(limit_s * fs + 0.5);
    int64_t spo = (int64_t)floor(seconds * fs + 0.5);
    int64_t want_obs = (n_total + spo - 1) / spo;
    int rc = 1;
    int64_t at = 0, k = 0, prev_end = 0, first_start = 0;
    for (;; k++) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/obs-%06lld.json", dir, (long long)(k + 1));
        size_t len = 0;
        char *text = slurp(path, &len);
        if (!text)
            break;
        json_t *j = NULL;
        ct_fhir_issue issue;
        ct_fhir_ecg ecg;
        memset(&ecg, 0, sizeof ecg);
        int prc = ct_fhir_parse(text, len, NULL, &j, &issue);
        free(text);
        if (prc != 0) {
            printf("observation %lld: not JSON: %s\n", (long long)(k + 1), issue.diagnostics);
            goto out;
        }
        const char *type = ct_fhir_resource_type(j);
        if (!type || strcmp(type, "Observation") != 0 || ct_fhir_validate_resource(j, "Observation", &issue) != 0 ||
            ct_fhir_ecg_from_json(j, NULL, &ecg, &issue) != 0) {
            printf("observation %lld: not a valid ECG Observation: %s (at %s)\n", (long long)(k + 1),
                   type ? issue.diagnostics : "no resourceType Observation", issue.expression);
            json_decref(j);
            goto out;
        }
        json_decref(j);
        const char *bad = NULL;
        char why[512] = "";
        int64_t count = (int64_t)ecg.leads[0].n_samples;
        int64_t want_count = n_total - at < spo ? n_total - at : spo;
        int64_t want_start = (k == 0 ? (has_start ? start_ms : ecg.start_ms) : prev_end);
        if (k == 0)
            first_start = ecg.start_ms;
        int64_t want_end = first_start + (int64_t)floor((double)(at + count) * 1000.0 / fs + 0.5);
        if (strcmp(ecg.patient_id, patient) != 0)
            snprintf(why, sizeof why, "subject Patient/%s, expected Patient/%s", ecg.patient_id, patient);
        else if (ecg.status != CT_FHIR_OBS_FINAL)
            bad = "status is not final";
        else if (ecg.n_leads != hdr->n_signals)
            snprintf(why, sizeof why, "%d leads, the record has %d", ecg.n_leads, hdr->n_signals);
        else if (count != want_count)
            snprintf(why, sizeof why, "%lld samples per lead, expected %lld", (long long)count,
                     (long long)want_count);
        else if (ecg.start_ms != want_start)
            snprintf(why, sizeof why, "starts at %lld ms, expected %lld (the previous one's end)",
                     (long long)ecg.start_ms, (long long)want_start);
        else if (ecg.end_ms != want_end)
            snprintf(why, sizeof why, "ends at %lld ms, expected %lld", (long long)ecg.end_ms, (long long)want_end);
        for (int l = 0; !bad && !why[0] && l < ecg.n_leads; l++) {
            const ct_fhir_ecg_lead *el = &ecg.leads[l];
            const ct_wfdb_signal *ws = &hdr->signals[l];
            const ct_fhir_lead_info *li = ct_fhir_lead_by_name(ws->description);
            if (!li || el->lead->mdc_code != li->mdc_code)
                snprintf(why, sizeof why, "lead %d has MDC %d, signal %s is %d", l, el->lead->mdc_code,
                         ws->description, li ? li->mdc_code : -1);
            else if (strcmp(el->text, ws->description) != 0)
                snprintf(why, sizeof why, "lead %d text '%s', expected '%s'", l, el->text, ws->description);
            else if (!el->exact || fabs(el->gain_adu_per_mv - ws->gain_adu_per_unit) > 1e-9 ||
                     fabs(el->baseline_adu - ws->baseline_adu) > 1e-9)
                snprintf(why, sizeof why, "lead %d scale: exact %d gain %g baseline %g, expected gain %g baseline %d",
                         l, el->exact, el->gain_adu_per_mv, el->baseline_adu, ws->gain_adu_per_unit,
                         ws->baseline_adu);
            else if (fabs(el->fs_hz - fs) > 1e-9)
                snprintf(why, sizeof why, "lead %d at %g Hz, the record at %g", l, el->fs_hz, fs);
            else
                for (int64_t i = 0; i < count; i++)
                    if (el->samples[i] != sig.samples[l][at + i]) {
                        snprintf(why, sizeof why, "lead %d sample %lld is %d, the record's sample %lld is %d", l,
                                 (long long)i, el->samples[i], (long long)(at + i), sig.samples[l][at + i]);
                        break;
                    }
        }
        prev_end = ecg.end_ms;
        ct_fhir_ecg_free(&ecg);
        if (bad || why[0]) {
            printf("observation %lld: %s\n", (long long)(k + 1), bad ? bad : why);
            goto out;
        }
        at += count;
    }
    if (k != want_obs)
        printf("%lld observations, expected %lld\n", (long long)k, (long long)want_obs);
    else if (at != n_total)
        printf("%lld samples per lead, expected %lld\n", (long long)at, (long long)n_total);
    else {
        printf("verified %lld observations, %lld samples per lead, first start %lld ms\n", (long long)k,
               (long long)at, (long long)first_start);
        rc = 0;
    }
out:
    ct_wfdb_signals_free(&sig);
    free(hdr);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: ct_test_fhir_sink [--token-file F] [--fail-at K [--fail-times N] [--fail-status S]\n"
                 "                         [--retry-after SEC]] [--tls PEM] [--lifetime SEC] --capture DIR\n"
                 "       ct_test_fhir_sink --verify DIR --record PATH --patient ID --seconds N\n"
                 "                         [--limit-seconds S] [--start-ms MS]\n");
}

int main(int argc, char **argv)
{
    enum { O_CAPTURE = 1000, O_TOKEN, O_FAIL_AT, O_FAIL_TIMES, O_FAIL_STATUS, O_RETRY_AFTER, O_TLS, O_LIFE,
           O_VERIFY, O_RECORD, O_PATIENT, O_SECONDS, O_LIMIT, O_START };
    static const struct option longopts[] = {
        {"capture", required_argument, NULL, O_CAPTURE},   {"token-file", required_argument, NULL, O_TOKEN},
        {"fail-at", required_argument, NULL, O_FAIL_AT},   {"fail-times", required_argument, NULL, O_FAIL_TIMES},
        {"fail-status", required_argument, NULL, O_FAIL_STATUS},
        {"retry-after", required_argument, NULL, O_RETRY_AFTER},
        {"tls", required_argument, NULL, O_TLS},           {"lifetime", required_argument, NULL, O_LIFE},
        {"verify", required_argument, NULL, O_VERIFY},     {"record", required_argument, NULL, O_RECORD},
        {"patient", required_argument, NULL, O_PATIENT},   {"seconds", required_argument, NULL, O_SECONDS},
        {"limit-seconds", required_argument, NULL, O_LIMIT}, {"start-ms", required_argument, NULL, O_START},
        {"help", no_argument, NULL, 'h'},                  {NULL, 0, NULL, 0},
    };
    sink *s = calloc(1, sizeof *s);
    if (!s)
        return 1;
    s->fail_times = 1;
    s->fail_status = 503;
    s->retry_after_s = -1;
    const char *capture = NULL, *tls_pem = NULL, *verify_dir = NULL, *record = NULL, *patient = NULL;
    double seconds = 0, limit_s = 0;
    long long lifetime_s = 600, v, start_ms = 0;
    int has_start = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case O_CAPTURE: capture = optarg; break;
        case O_TOKEN: {
            FILE *f = fopen(optarg, "r");
            if (!f || !fgets(s->token, sizeof s->token, f)) {
                fprintf(stderr, "ct_test_fhir_sink: cannot read %s\n", optarg);
                return 2;
            }
            fclose(f);
            s->token[strcspn(s->token, "\r\n")] = '\0';
            break;
        }
        case O_FAIL_AT:
            if (parse_ll(optarg, 1, 1000000, &v) != 0)
                return 2;
            s->fail_at = (int)v;
            break;
        case O_FAIL_TIMES:
            if (parse_ll(optarg, 0, 1000000, &v) != 0)
                return 2;
            s->fail_times = (int)v;
            break;
        case O_FAIL_STATUS:
            if (parse_ll(optarg, 400, 599, &v) != 0)
                return 2;
            s->fail_status = (int)v;
            break;
        case O_RETRY_AFTER:
            if (parse_ll(optarg, 0, 3600, &v) != 0)
                return 2;
            s->retry_after_s = (int)v;
            break;
        case O_TLS: tls_pem = optarg; break;
        case O_LIFE:
            if (parse_ll(optarg, 1, 86400, &lifetime_s) != 0)
                return 2;
            break;
        case O_VERIFY: verify_dir = optarg; break;
        case O_RECORD: record = optarg; break;
        case O_PATIENT: patient = optarg; break;
        case O_SECONDS: seconds = strtod(optarg, NULL); break;
        case O_LIMIT: limit_s = strtod(optarg, NULL); break;
        case O_START:
            if (parse_ll(optarg, LLONG_MIN, LLONG_MAX, &start_ms) != 0)
                return 2;
            has_start = 1;
            break;
        case 'h': usage(stdout); free(s); return 0;
        default: usage(stderr); free(s); return 2;
        }
    }
    int rc;
    if (verify_dir) {
        if (!record || !patient || !(seconds > 0)) {
            usage(stderr);
            free(s);
            return 2;
        }
        rc = verify(verify_dir, record, patient, seconds, limit_s, has_start, start_ms);
    } else {
        if (!capture || optind != argc || !realpath(capture, s->dir)) {
            usage(stderr);
            free(s);
            return 2;
        }
        rc = serve(s, tls_pem, lifetime_s);
    }
    explicit_bzero(s->token, sizeof s->token);
    free(s);
    return rc;
}
