/* bench_api: the FHIR API under load, through HTTPS, as bedside gateways use it.
 *
 *   bench_api [--runs N] [--seconds S] [--clients 1,8,32] [--record R] [--alert-record R]
 *             [--patients N] [--threads N] [--url BASE --token-file FILE --ca-file PEM]
 *
 * Without --url the real server is started in this process (ct_http_start on
 * 127.0.0.1, port chosen by the system, a SQLite file and a self-signed
 * certificate in a temporary state directory, the live twin on, the
 * per-credential rate limit off: rate_limit_per_s = -1), and every client
 * gets a device token of its own (ct_http_token_create). With --url it talks
 * to a running server with the one token of --token-file (the memory figures
 * are then left out: they are measured in this process).
 *
 * What it measures, each a median over --runs runs:
 *
 *  - throughput and latency: C clients (threads, each one libcurl easy handle
 *    kept alive, each its own patient, so the twin runs one stream per
 *    client) POST 10 s two-lead 360 Hz ECG Observations of the MIT-BIH record
 *    (default 100) as `cardiotwin stream` posts them (the ekg shape of
 *    ct_fhir_ecg_to_json, Prefer: return=minimal), back to back for
 *    --seconds; Observations created per second (201 answers / wall time),
 *    p50 and p99 of the POST round trip;
 *  - alert latency: one client streams the alert record (default 106, which
 *    has ventricular runs and PVC bursts) as fast as the server answers;
 *    after every POST it asks DiagnosticReport?patient=X&_count=0. For each
 *    POST after which the total grew (the Observation that completed an
 *    alert's condition), it records the time from the POST leaving to the
 *    search answer that shows the report: an upper bound of "Observation in
 *    -> DiagnosticReport stored", since the server commits reports before it
 *    answers the POST (docs/twin.md);
 *  - memory per monitored patient: ct_twin_patient_memory_bytes of a twin
 *    run here on its own database (what the twin holds), and the growth of
 *    this process's resident set while --patients new patients each post
 *    one Observation to the server (twin state plus SQLite's cache).
 *
 * The clients run in this process too, on the same 2 cores: their CPU time
 * (TLS, libcurl) is taken from the server's. Bodies are built before the
 * clock starts (the record's chunks as templates; per POST only the patient
 * id and the two times are written into a copy).
 *
 * Run it on a Release build: cmake -DCMAKE_BUILD_TYPE=Release. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cardiotwin/http.h"
#include "cardiotwin/twin.h"
#include "cardiotwin/wfdb.h"

#define PROG "bench_api"
#define MAX_CLIENTS 256
#define MAX_LEVELS 8
#define MAX_RUNS 50
/* Placeholders written into the templates, replaced in every copy: an id of
 * the width of every real one, and two instants 10 s apart. */
#define PATIENT_FMT "bench-%02d-%02d-%03d"
#define PATIENT_PLACEHOLDER "bench-00-00-000"
#define T_PLACEHOLDER_MS 946684800000LL   /* 2000-01-01T00:00:00.000Z */
#define T0_MS 1767225600000LL             /* 2026-01-01: the benchmark's streams begin here */
#define OBS_SECONDS 10

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The p-quantile of sorted v (nearest rank). */
static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return pct(v, n, 0.5);
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    return p;
}

/* ---- bodies ------------------------------------------------------------------ */

/* One 10 s chunk of a record as the text of an ECG Observation, with the
 * offsets of what changes from one POST to the next. */
typedef struct template {
    char *text;
    size_t len;
    size_t off_patient, off_start, off_end;
} template;

typedef struct record {
    char name[32];
    size_t n;            /* chunks */
    template *t;
} record;

static int template_make(const ct_wfdb_header *h, const ct_wfdb_signals *sig, int64_t from, size_t n,
                         template *out, ct_error *err)
{
    ct_fhir_ecg_in in;
    memset(&in, 0, sizeof in);
    in.patient_id = PATIENT_PLACEHOLDER;
    in.start_ms = T_PLACEHOLDER_MS;
    in.fs_hz = h->fs_hz;
    in.n_samples = n;
    in.n_leads = sig->n_signals < 2 ? sig->n_signals : 2;
    for (int l = 0; l < in.n_leads; l++) {
        const ct_fhir_lead_info *li = ct_fhir_lead_by_name(h->signals[l].description);
        if (!li)
            li = ct_fhir_lead_by_code(131329 + l);
        in.leads[l].mdc_code = li->mdc_code;
        in.leads[l].text = h->signals[l].description;
        in.leads[l].gain_adu_per_mv = h->signals[l].gain_adu_per_unit;
        in.leads[l].baseline_adu = h->signals[l].baseline_adu;
        in.leads[l].samples = sig->samples[l] + from;
    }
    json_t *j = NULL;
    int rc = ct_fhir_ecg_to_json(&in, &j, err);
    if (rc)
        return rc;
    out->text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!out->text)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    out->len = strlen(out->text);
    char s0[CT_FHIR_INSTANT_CAP], s1[CT_FHIR_INSTANT_CAP];
    ct_fhir_instant_format(T_PLACEHOLDER_MS, s0, sizeof s0);
    ct_fhir_instant_format(T_PLACEHOLDER_MS + OBS_SECONDS * 1000, s1, sizeof s1);
    const char *p = strstr(out->text, PATIENT_PLACEHOLDER), *a = strstr(out->text, s0),
               *b = strstr(out->text, s1);
    if (!p || !a || !b)
        return ct_error_set(err, CT_EFORMAT, "the Observation text lacks its patient or times");
    out->off_patient = (size_t)(p - out->text);
    out->off_start = (size_t)(a - out->text);
    out->off_end = (size_t)(b - out->text);
    return 0;
}

/* The record's whole 10 s chunks (a shorter last one is left out, so that
 * chunk k always ends where k + 1 begins). */
static int record_load(const char *mitdb, const char *name, record *out, ct_error *err)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", mitdb, name);
    snprintf(out->name, sizeof out->name, "%s", name);
    ct_wfdb_header h;
    ct_wfdb_signals sig;
    int rc = ct_wfdb_header_read(path, &h, err);
    if (rc || (rc = ct_wfdb_signals_read(path, &h, &sig, err)))
        return rc;
    int64_t step = (int64_t)(OBS_SECONDS * h.fs_hz);
    if (h.fs_hz != 360.0 || step <= 0) {
        ct_wfdb_signals_free(&sig);
        return ct_error_set(err, CT_EUNSUPPORTED, "record %s: %g Hz; the benchmark sends 360 Hz", name, h.fs_hz);
    }
    out->n = (size_t)(sig.n_samples / step);
    out->t = calloc(out->n ? out->n : 1, sizeof *out->t);
    for (size_t k = 0; out->t && k < out->n && rc == 0; k++)
        rc = template_make(&h, &sig, (int64_t)k * step, (size_t)step, &out->t[k], err);
    ct_wfdb_signals_free(&sig);
    if (!out->t)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    return rc;
}

/* Observation k of a patient: chunk k of the record (again from the start
 * once past its end), starting at T0 + 10 s * k. buf holds at least len. */
static void body_fill(const record *r, const char *patient, int64_t k, char *buf, size_t *len)
{
    const template *t = &r->t[(size_t)k % r->n];
    memcpy(buf, t->text, t->len);
    memcpy(buf + t->off_patient, patient, strlen(PATIENT_PLACEHOLDER));
    char s[CT_FHIR_INSTANT_CAP];
    ct_fhir_instant_format(T0_MS + k * OBS_SECONDS * 1000, s, sizeof s);
    memcpy(buf + t->off_start, s, CT_FHIR_INSTANT_CAP - 1);
    ct_fhir_instant_format(T0_MS + (k + 1) * OBS_SECONDS * 1000, s, sizeof s);
    memcpy(buf + t->off_end, s, CT_FHIR_INSTANT_CAP - 1);
    *len = t->len;
}

static size_t record_max_len(const record *r)
{
    size_t m = 0;
    for (size_t k = 0; k < r->n; k++)
        m = r->t[k].len > m ? r->t[k].len : m;
    return m;
}

/* ---- HTTP ------------------------------------------------------------------------ */

typedef struct conn {
    CURL *h;
    struct curl_slist *post_headers, *get_headers;
    char resp[4096];     /* the start of the answer, for error messages and totals */
    size_t resp_n;
} conn;

static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    conn *c = ctx;
    size_t k = size * n, room = sizeof c->resp - 1 - c->resp_n;
    memcpy(c->resp + c->resp_n, p, k < room ? k : room);
    c->resp_n += k < room ? k : room;
    c->resp[c->resp_n] = '\0';
    return k;
}

typedef struct target {
    char base[512];      /* ".../fhir" */
    char ca_file[1024];
} target;

static int conn_open(conn *c, const target *tg, const char *token)
{
    memset(c, 0, sizeof *c);
    c->h = curl_easy_init();
    if (!c->h)
        return -1;
    char auth[128];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    c->post_headers = curl_slist_append(NULL, "Content-Type: application/fhir+json");
    c->post_headers = curl_slist_append(c->post_headers, "Prefer: return=minimal");
    c->post_headers = curl_slist_append(c->post_headers, auth);
    c->get_headers = curl_slist_append(NULL, auth);
    curl_easy_setopt(c->h, CURLOPT_CAINFO, tg->ca_file);
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    return 0;
}

static void conn_close(conn *c)
{
    if (c->h)
        curl_easy_cleanup(c->h);
    curl_slist_free_all(c->post_headers);
    curl_slist_free_all(c->get_headers);
}

/* The HTTP status, or -1 when the request failed on the way. */
static long conn_post(conn *c, const char *url, const char *body, size_t len)
{
    c->resp_n = 0;
    c->resp[0] = '\0';
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->post_headers);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK) {
        snprintf(c->resp, sizeof c->resp, "%s", curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static long conn_get(conn *c, const char *url)
{
    c->resp_n = 0;
    c->resp[0] = '\0';
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->get_headers);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK) {
        snprintf(c->resp, sizeof c->resp, "%s", curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* ---- the server, in process or not -------------------------------------------------- */

typedef struct setup {
    target tg;
    ct_http_server *srv;
    char dir[512], db[600];
    char (*tokens)[CT_HTTP_TOKEN_BUF];
    size_t n_tokens;
    int threads;
} setup;

static void on_log(void *user, ct_http_log_level level, const char *msg)
{
    if (level == CT_HTTP_LOG_ERROR)
        fprintf(stderr, PROG ": server: %s\n", msg);
}

static int server_start(setup *s, size_t n_tokens, ct_error *err)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/bench_api_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir))
        return ct_error_set(err, CT_EIO, "cannot make a directory in %s", tmp && *tmp ? tmp : "/tmp");
    snprintf(s->db, sizeof s->db, "%s/ct.db", s->dir);
    ct_store *st = NULL;
    int rc = ct_store_open(s->db, &st, err);
    if (rc)
        return rc;
    s->tokens = xmalloc(n_tokens * sizeof *s->tokens);
    ct_audit_actor by = {"bench", "operator", "cli"};
    for (size_t i = 0; i < n_tokens && rc == 0; i++) {
        char name[32];
        snprintf(name, sizeof name, "gateway-%zu", i);
        ct_http_token_spec spec = {.name = name, .role = i ? "device" : "admin"};
        rc = ct_http_token_create(st, &spec, &by, s->tokens[i], sizeof s->tokens[i], NULL, err);
    }
    ct_store_close(st);
    if (rc)
        return rc;
    s->n_tokens = n_tokens;
    ct_http_options o;
    ct_http_options_init(&o);
    o.port = 0;
    o.state_dir = s->dir;
    o.db_path = s->db;
    if (s->threads > 0)
        o.threads = s->threads;
    o.rate_limit_per_s = -1;
    o.on_log = on_log;
    if ((rc = ct_http_start(&o, &s->srv, err)))
        return rc;
    char url[64];
    ct_http_url(s->srv, url, sizeof url);
    snprintf(s->tg.base, sizeof s->tg.base, "%sfhir", url);
    snprintf(s->tg.ca_file, sizeof s->tg.ca_file, "%s", ct_http_cert_path(s->srv));
    return 0;
}

static void server_stop(setup *s)
{
    ct_http_stop(s->srv);
    if (s->dir[0]) {
        const char *names[] = {"ct.db", "ct.db-wal", "ct.db-shm", CT_HTTP_CERT_FILE, CT_HTTP_KEY_FILE};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            char p[700];
            snprintf(p, sizeof p, "%s/%s", s->dir, names[i]);
            unlink(p);
        }
        rmdir(s->dir);
    }
    free(s->tokens);
}

/* Token of client i: its own (in process: token 0 is the admin's, used for
 * the searches), or the one given. */
static const char *token_of(const setup *s, size_t i)
{
    return s->tokens[s->n_tokens > 1 ? 1 + i % (s->n_tokens - 1) : 0];
}

/* ---- throughput --------------------------------------------------------------------- */

typedef struct worker {
    const setup *s;
    const record *rec;
    int client;
    int run, level;
    atomic_int *stop;
    pthread_barrier_t *go;
    double *lat;
    size_t n_lat, cap_lat;
    size_t ok, failed;
    char first_error[256];
} worker;

static void *work(void *arg)
{
    worker *w = arg;
    conn c;
    char patient[32], url[600];
    snprintf(patient, sizeof patient, PATIENT_FMT, w->run, w->level, w->client);
    snprintf(url, sizeof url, "%s/Observation", w->s->tg.base);
    char *body = xmalloc(record_max_len(w->rec));
    size_t len;
    if (conn_open(&c, &w->s->tg, token_of(w->s, (size_t)w->client)) != 0) {
        snprintf(w->first_error, sizeof w->first_error, "libcurl: no handle");
        pthread_barrier_wait(w->go);
        free(body);
        return NULL;
    }
    /* The TLS handshake happens before the clock starts: keep-alive
     * connections are what a gateway holds. */
    conn_get(&c, url);
    pthread_barrier_wait(w->go);
    for (int64_t k = 0; !atomic_load(w->stop); k++) {
        body_fill(w->rec, patient, k, body, &len);
        double t0 = now_ms();
        long status = conn_post(&c, url, body, len);
        double dt = now_ms() - t0;
        if (status == 201) {
            if (w->n_lat == w->cap_lat) {
                w->cap_lat = w->cap_lat ? 2 * w->cap_lat : 4096;
                double *n = realloc(w->lat, w->cap_lat * sizeof *n);
                if (!n)
                    break;
                w->lat = n;
            }
            w->lat[w->n_lat++] = dt;
            w->ok++;
        } else {
            if (!w->failed)
                snprintf(w->first_error, sizeof w->first_error, "HTTP %ld: %.200s", status, c.resp);
            w->failed++;
        }
    }
    conn_close(&c);
    free(body);
    return NULL;
}

typedef struct level_result {
    double obs_per_s, p50_ms, p99_ms;
    size_t failed;
} level_result;

static int run_level(const setup *s, const record *rec, int run, int level, int clients, double seconds,
                     level_result *out)
{
    worker *w = calloc((size_t)clients, sizeof *w);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    pthread_barrier_t go;
    atomic_int stop = 0;
    if (!w || !th || pthread_barrier_init(&go, NULL, (unsigned)clients + 1) != 0) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    for (int i = 0; i < clients; i++) {
        w[i] = (worker){.s = s, .rec = rec, .client = i, .run = run, .level = level, .go = &go, .stop = &stop};
        if (pthread_create(&th[i], NULL, work, &w[i]) != 0) {
            fprintf(stderr, PROG ": cannot start client thread %d\n", i);
            exit(1);
        }
    }
    pthread_barrier_wait(&go);
    double start = now_ms();
    struct timespec d = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&d, &d) != 0)
        ;
    atomic_store(&stop, 1);
    for (int i = 0; i < clients; i++)
        pthread_join(th[i], NULL);
    double wall = now_ms() - start;
    pthread_barrier_destroy(&go);
    size_t n = 0, ok = 0, failed = 0;
    for (int i = 0; i < clients; i++) {
        n += w[i].n_lat;
        ok += w[i].ok;
        failed += w[i].failed;
        if (w[i].failed)
            fprintf(stderr, PROG ": client %d: %zu refused, first: %s\n", i, w[i].failed, w[i].first_error);
    }
    double *all = xmalloc(n * sizeof *all);
    size_t o = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + o, w[i].lat, w[i].n_lat * sizeof *all);
        o += w[i].n_lat;
        free(w[i].lat);
    }
    qsort(all, n, sizeof *all, cmp_double);
    out->obs_per_s = wall > 0 ? 1000.0 * (double)ok / wall : 0;
    out->p50_ms = pct(all, n, 0.5);
    out->p99_ms = pct(all, n, 0.99);
    out->failed = failed;
    free(all);
    free(w);
    free(th);
    return 0;
}

/* ---- alert latency ------------------------------------------------------------------ */

static long total_of(const char *json)
{
    const char *p = strstr(json, "\"total\":");
    return p ? strtol(p + 8, NULL, 10) : -1;
}

typedef struct alert_result {
    size_t reports_seen;     /* POSTs after which the report total grew */
    double med_ms, max_ms;   /* POST leaving -> search answer showing the report */
    double post_med_ms;      /* those POSTs' own round trips */
    int missed;              /* a report seen only after a later POST (0 expected) */
} alert_result;

static int run_alert(const setup *s, const record *rec, int run, alert_result *out)
{
    conn c;
    memset(out, 0, sizeof *out);
    if (conn_open(&c, &s->tg, s->tokens[0]) != 0)
        return -1;
    char patient[32], url[600], search[700];
    snprintf(patient, sizeof patient, PATIENT_FMT, run, 99, 0);
    snprintf(url, sizeof url, "%s/Observation", s->tg.base);
    snprintf(search, sizeof search, "%s/DiagnosticReport?patient=%s&_count=0", s->tg.base, patient);
    char *body = xmalloc(record_max_len(rec));
    double *lat = xmalloc(rec->n * sizeof *lat), *post = xmalloc(rec->n * sizeof *post);
    long seen = 0;
    int rc = 0;
    for (size_t k = 0; k < rec->n; k++) {
        size_t len;
        body_fill(rec, patient, (int64_t)k, body, &len);
        double t0 = now_ms();
        long st = conn_post(&c, url, body, len);
        double t1 = now_ms();
        if (st != 201) {
            fprintf(stderr, PROG ": alert record %s, Observation %zu: HTTP %ld: %.200s\n", rec->name, k, st, c.resp);
            rc = -1;
            break;
        }
        st = conn_get(&c, search);
        double t2 = now_ms();
        long total = st == 200 ? total_of(c.resp) : -1;
        if (total < 0) {
            fprintf(stderr, PROG ": DiagnosticReport search: HTTP %ld: %.200s\n", st, c.resp);
            rc = -1;
            break;
        }
        if (total > seen) {
            lat[out->reports_seen] = t2 - t0;
            post[out->reports_seen] = t1 - t0;
            out->reports_seen++;
            seen = total;
        }
    }
    if (out->reports_seen) {
        out->max_ms = 0;
        for (size_t i = 0; i < out->reports_seen; i++)
            out->max_ms = lat[i] > out->max_ms ? lat[i] : out->max_ms;
        out->med_ms = median(lat, out->reports_seen);
        out->post_med_ms = median(post, out->reports_seen);
    }
    free(lat);
    free(post);
    free(body);
    conn_close(&c);
    return rc;
}

/* ---- memory --------------------------------------------------------------------------- */

/* What the twin holds for one patient streaming the record, in a twin of
 * its own (the server's is not reachable from outside the http room). */
static size_t twin_patient_bytes(const setup *s, const record *rec, ct_error *err)
{
    char db[700];
    snprintf(db, sizeof db, "%s/twin-only.db", s->dir);
    ct_store *st = NULL;
    ct_twin *t = NULL;
    size_t bytes = 0;
    if (ct_store_open(db, &st, err) == 0 && ct_twin_new(NULL, st, &t, err) == 0) {
        char *body = xmalloc(record_max_len(rec));
        for (int64_t k = 0; k < 3; k++) {
            size_t len;
            body_fill(rec, PATIENT_PLACEHOLDER, k, body, &len);
            json_t *j = NULL;
            ct_fhir_ecg e;
            ct_fhir_issue is;
            if (ct_fhir_parse(body, len, NULL, &j, &is) != 0 || ct_fhir_ecg_from_json(j, NULL, &e, &is) != 0) {
                json_decref(j);
                break;
            }
            char id[64];
            snprintf(id, sizeof id, "mem-%lld", (long long)k);
            ct_twin_ingest_ecg(t, st, &e, id, NULL, err);
            ct_fhir_ecg_free(&e);
            json_decref(j);
        }
        free(body);
        bytes = ct_twin_patient_memory_bytes(t, PATIENT_PLACEHOLDER);
    }
    ct_twin_free(t);
    ct_store_close(st);
    char p[720];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", db, sfx[i]);
        unlink(p);
    }
    return bytes;
}

/* Resident growth of this process (server included) per new patient
 * posting one Observation. */
static double rss_per_patient_kb(const setup *s, const record *rec, int patients)
{
    conn c;
    if (conn_open(&c, &s->tg, token_of(s, 0)) != 0)
        return -1;
    char url[600];
    snprintf(url, sizeof url, "%s/Observation", s->tg.base);
    char *body = xmalloc(record_max_len(rec));
    long before = rss_kb();
    for (int i = 0; i < patients; i++) {
        char patient[32];
        snprintf(patient, sizeof patient, PATIENT_FMT, 98, i / 1000, i % 1000);
        size_t len;
        body_fill(rec, patient, 0, body, &len);
        long st = conn_post(&c, url, body, len);
        if (st != 201) {
            fprintf(stderr, PROG ": memory patient %d: HTTP %ld: %.200s\n", i, st, c.resp);
            break;
        }
    }
    long after = rss_kb();
    free(body);
    conn_close(&c);
    return (double)(after - before) / patients;
}

/* ---- main ----------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: " PROG " [options]\n"
            "  ECG Observations created per second through the FHIR API (HTTPS, live twin on) with\n"
            "  several concurrent gateways, their latency, the delay to an alert's DiagnosticReport\n"
            "  and the memory per monitored patient. Records come from $CARDIOTWIN_MITDB\n"
            "  (default ../shared/data/mitdb). Build it Release.\n"
            "\n"
            "  --runs N            repeat everything N times, print medians (default 3, 1..%d)\n"
            "  --seconds S         length of each throughput measurement (default 10)\n"
            "  --clients LIST      concurrent clients, comma-separated (default 1,8,32; each 1..%d)\n"
            "  --record R          record posted for throughput (default 100)\n"
            "  --alert-record R    record streamed for the alert latency (default 106)\n"
            "  --patients N        new patients for the resident-memory growth (default 200; 0: skip)\n"
            "  --threads N         server worker threads, in-process server only (default %d)\n"
            "  --url BASE          a running server's FHIR base (https://host:port/fhir) instead of\n"
            "                      one in this process; needs --token-file and --ca-file\n"
            "  --token-file FILE   bearer token for --url (an admin token: it posts and searches)\n"
            "  --ca-file PEM       the CA (or self-signed certificate) that --url's server presents\n"
            "  --help              this text\n",
            MAX_RUNS, MAX_CLIENTS, CT_HTTP_DEFAULT_THREADS);
}

static int parse_clients(const char *s, int *levels, int *n)
{
    *n = 0;
    while (*s) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v < 1 || v > MAX_CLIENTS || *n >= MAX_LEVELS)
            return -1;
        levels[(*n)++] = (int)v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    return *n ? 0 : -1;
}

static int read_token(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return ok && buf[0] ? 0 : -1;
}

int main(int argc, char **argv)
{
    int runs = 3, patients = 200, threads = 0;
    double seconds = 10;
    int levels[MAX_LEVELS] = {1, 8, 32}, n_levels = 3;
    const char *rec_name = "100", *alert_name = "106", *url = NULL, *token_file = NULL, *ca_file = NULL;
    static const struct option longopts[] = {
        {"runs", required_argument, NULL, 'r'},      {"seconds", required_argument, NULL, 's'},
        {"clients", required_argument, NULL, 'c'},   {"record", required_argument, NULL, 'R'},
        {"alert-record", required_argument, NULL, 'A'}, {"patients", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},   {"url", required_argument, NULL, 'u'},
        {"token-file", required_argument, NULL, 'T'}, {"ca-file", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case 'r': runs = (int)strtol(optarg, &end, 10); if (*end || runs < 1 || runs > MAX_RUNS) goto bad; break;
        case 's': seconds = strtod(optarg, &end); if (*end || !(seconds >= 0.5 && seconds <= 3600)) goto bad; break;
        case 'c': if (parse_clients(optarg, levels, &n_levels)) goto bad; break;
        case 'R': rec_name = optarg; break;
        case 'A': alert_name = optarg; break;
        case 'p': patients = (int)strtol(optarg, &end, 10); if (*end || patients < 0 || patients > 100000) goto bad; break;
        case 't': threads = (int)strtol(optarg, &end, 10); if (*end || threads < 1 || threads > CT_HTTP_MAX_THREADS) goto bad; break;
        case 'u': url = optarg; break;
        case 'T': token_file = optarg; break;
        case 'C': ca_file = optarg; break;
        case 'h': usage(stdout); return 0;
        default: goto bad;
        }
    }
    if (optind != argc || (url && (!token_file || !ca_file)) || (!url && (token_file || ca_file)))
        goto bad;
    const char *mitdb = getenv("CARDIOTWIN_MITDB");
    if (!mitdb || !*mitdb)
        mitdb = "../shared/data/mitdb";

    ct_error err = {0};
    record rec = {0}, alert = {0};
    if (record_load(mitdb, rec_name, &rec, &err) || record_load(mitdb, alert_name, &alert, &err)) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, PROG ": libcurl cannot start\n");
        return 1;
    }
    int max_clients = 0;
    for (int i = 0; i < n_levels; i++)
        max_clients = levels[i] > max_clients ? levels[i] : max_clients;
    setup s;
    memset(&s, 0, sizeof s);
    s.threads = threads;
    if (url) {
        snprintf(s.tg.base, sizeof s.tg.base, "%s", url);
        snprintf(s.tg.ca_file, sizeof s.tg.ca_file, "%s", ca_file);
        s.tokens = xmalloc(sizeof *s.tokens);
        if (read_token(token_file, s.tokens[0], sizeof s.tokens[0]) != 0) {
            fprintf(stderr, PROG ": %s: cannot read a token from it\n", token_file);
            return 1;
        }
        s.n_tokens = 1;
    } else if (server_start(&s, (size_t)max_clients + 1, &err) != 0) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    printf(PROG ": %s, record %s (%zu Observations of 10 s, 2 leads, 360 Hz), %d run(s) of %.0f s per level\n",
           url ? url : "in-process server (rate limit off, one device token per client)", rec.name, rec.n, runs,
           seconds);
    fflush(stdout);

    double v_tput[MAX_LEVELS][MAX_RUNS], v_p50[MAX_LEVELS][MAX_RUNS], v_p99[MAX_LEVELS][MAX_RUNS];
    double a_med[MAX_RUNS], a_max[MAX_RUNS], a_post[MAX_RUNS];
    size_t failed = 0, a_reports = 0;
    int status = 0;
    for (int r = 0; r < runs; r++) {
        for (int l = 0; l < n_levels; l++) {
            level_result lr;
            run_level(&s, &rec, r, l, levels[l], seconds, &lr);
            v_tput[l][r] = lr.obs_per_s;
            v_p50[l][r] = lr.p50_ms;
            v_p99[l][r] = lr.p99_ms;
            failed += lr.failed;
            fprintf(stderr, PROG ": run %d, %d client(s): %.0f Observations/s, p50 %.2f ms, p99 %.2f ms\n", r + 1,
                    levels[l], lr.obs_per_s, lr.p50_ms, lr.p99_ms);
        }
        alert_result ar;
        if (run_alert(&s, &alert, r, &ar) != 0)
            status = 1;
        a_med[r] = ar.med_ms;
        a_max[r] = ar.max_ms;
        a_post[r] = ar.post_med_ms;
        a_reports = ar.reports_seen;
    }
    printf("\n%-8s %14s %10s %10s\n", "clients", "Observations/s", "p50 ms", "p99 ms");
    for (int l = 0; l < n_levels; l++)
        printf("%-8d %14.0f %10.2f %10.2f\n", levels[l], median(v_tput[l], (size_t)runs),
               median(v_p50[l], (size_t)runs), median(v_p99[l], (size_t)runs));
    printf("\nalert record %s: %zu POSTs completed a report; Observation sent -> report found by search: "
           "median %.1f ms, max %.1f ms (those POSTs alone: median %.1f ms)\n",
           alert.name, a_reports, median(a_med, (size_t)runs), median(a_max, (size_t)runs),
           median(a_post, (size_t)runs));
    if (!url) {
        size_t bytes = twin_patient_bytes(&s, &rec, &err);
        printf("memory per monitored patient: twin state %zu bytes", bytes);
        if (patients > 0)
            printf("; resident growth over %d new patients: %.0f KiB each", patients,
                   rss_per_patient_kb(&s, &rec, patients));
        printf("\n");
    }
    if (failed) {
        printf("%zu POSTs were refused (see stderr)\n", failed);
        status = 1;
    }
    if (!url)
        server_stop(&s);
    else
        free(s.tokens);
    curl_global_cleanup();
    return status;
bad:
    usage(stderr);
    return 2;
}
