/* http room, the demo feeder (`cardiotwin serve --demo N`): N synthetic
 * patients (the synth room) stream live ECG into the server's live twin,
 * one second per patient every second, for as long as the server runs, so
 * that the dashboard has something true to show the moment it opens.
 *
 * The one idea: the feeder is a client of the FHIR API that happens to live
 * in the process. Each second of each patient becomes an ECG Observation
 * (the specification's ekg shape, built by ct_fhir_ecg_to_json) and goes
 * through ct_http_prepare_body and ct_http_op_create, the very functions a
 * POST /fhir/Observation goes through: the same validation, the same
 * storage of resource and samples, the same audit entry (actor "demo-feed",
 * role "system"), the same three steps of the twin and so the same beats,
 * alerts and DiagnosticReports. Nothing is stored that a gateway could not
 * have posted.
 *
 * Time: chunk k of every patient covers [t0 + k s, t0 + (k+1) s) of real UTC
 * time and is posted once that second is over, so successive Observations
 * stitch into one stream. A feeder that falls more than DEMO_MAX_BEHIND_MS
 * behind (a slow disk) skips to the present, leaving a gap the twin sees as
 * such, and says so once; it never queues. Memory is fixed at start (one
 * second of samples per patient) apart from each second's JSON text. The
 * thread sleeps on a condition variable, so a stop wakes it at once. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cardiotwin/fhir.h"
#include "cardiotwin/store.h"
#include "cardiotwin/synth.h"
#include "fhir_internal.h"

#define DEMO_FS_HZ 360.0
#define DEMO_MAX_FRAMES 360          /* DEMO_FS_HZ * CT_HTTP_MAX_d->chunk_ms / 1000 */
#define DEMO_MAX_BEHIND_MS 5000
#define DEMO_GAIN_ADU_PER_MV 200.0
#define DEMO_ID_SYSTEM "https://cardiotwin.example/demo"
#define DEMO_ACTOR "demo-feed"
/* What the feeder may do, as a token's scopes would say it: create and
 * read Observations and keep its own Patients. */
#define DEMO_SCOPES "system/Patient.cru system/Observation.cr"

typedef struct demo_patient {
    char id[24];                     /* "demo-1" .. "demo-16" */
    ct_synth *synth;
    int16_t lead[CT_SYNTH_MAX_LEADS][DEMO_MAX_FRAMES];
    int failures;                    /* posts refused so far (logged sparingly) */
} demo_patient;

struct ct_http_demo {
    ct_http_server *srv;
    int n;
    int64_t chunk_ms;                /* one Observation per patient covers this long */
    size_t frames;                   /* samples per lead in it */
    demo_patient p[CT_HTTP_MAX_DEMO_PATIENTS];
    pthread_t thread;
    int running;
    pthread_mutex_t lock;            /* guards stop; with cond */
    pthread_cond_t cond;
    int sync_ready;
    int stop;
    int64_t seq;                     /* numbers the feeder's request ids */
    int said_behind;
};

static const char *const number_names[CT_HTTP_MAX_DEMO_PATIENTS] = {
    "One",  "Two",    "Three",    "Four",     "Five",    "Six",     "Seven",   "Eight",
    "Nine", "Ten",    "Eleven",   "Twelve",   "Thirteen", "Fourteen", "Fifteen", "Sixteen"};

/* The four profiles, cycled through patients 1, 2, 3, 4, 5 ... */
static void profile(int k, ct_synth_options *o)
{
    ct_synth_options_default(o);
    o->fs_hz = DEMO_FS_HZ;
    o->n_leads = 2;
    o->gain_adu_per_mv = DEMO_GAIN_ADU_PER_MV;
    o->seed = 1000u + (uint64_t)k;
    switch (k % 4) {
    case 0:
        /* Frequent PVCs and a 5-beat run about every minute, the first
         * within 5..25 s: the default policy's ventricular-run alert comes
         * with it; the V beats (8 PVCs and about 6 run beats a minute) pass
         * the PVC-burden limit of 10 a minute once its 60 s window fills. */
        o->hr_bpm = 78;
        o->pvc_per_min = 8;
        o->vt_every_s = 50;
        o->vt_beats = 5;
        o->vt_rate_bpm = 170;
        break;
    case 1:
        /* Paroxysmal AF: 90 s episodes, about 30 s of sinus rhythm between. */
        o->hr_bpm = 72;
        o->af_every_s = 30;
        o->af_duration_s = 90;
        o->af_rate_bpm = 115;
        break;
    case 2:
        /* Sinus bradycardia with 3 s pauses now and then. */
        o->hr_bpm = 45;
        o->hrv_fraction = 0.04;
        o->pause_every_s = 45;
        o->pause_ms = 3200;
        break;
    default:
        o->hr_bpm = 70;
        break;
    }
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A request context for the feeder's own interactions: authenticated as
 * the system actor "demo-feed", no connection, no client address. */
static void feeder_request(ct_http_demo *d, ct_http_req *req)
{
    memset(req, 0, sizeof *req);
    req->srv = d->srv;
    req->method = "POST";
    req->method_bit = CT_HTTP_POST;
    req->path = "/fhir";
    req->caller.authenticated = 1;
    snprintf(req->caller.subject, sizeof req->caller.subject, "%s", DEMO_ACTOR);
    snprintf(req->caller.role, sizeof req->caller.role, "system");
    snprintf(req->caller.scopes, sizeof req->caller.scopes, "%s", DEMO_SCOPES);
    snprintf(req->request_id, sizeof req->request_id, "demo-feed-%lld", (long long)++d->seq);
}

static void feeder_fhir(ct_http_req *req, ct_store *st, ct_http_fhir *f)
{
    memset(f, 0, sizeof *f);
    f->req = req;
    f->st = st;
    snprintf(f->base, sizeof f->base, "%s", CT_FHIR_CANONICAL_BASE);
}

/* Creates Patient/<id> (an update with the id, as PUT would) unless a live
 * version exists. */
static int ensure_patient(ct_http_demo *d, ct_store *st, int k)
{
    demo_patient *p = &d->p[k];
    int deleted = 0;
    ct_error err = {0};
    int rc = ct_store_resource_get(st, "Patient", p->id, 0, NULL, NULL, NULL, &deleted, &err);
    if (rc == 0 && !deleted)
        return 0;
    if (rc != 0 && rc != CT_ENOTFOUND) {
        ct_http_log(d->srv, CT_HTTP_LOG_ERROR, "demo feed: cannot look up Patient/%s: %s", p->id, err.msg);
        return rc;
    }
    char body[640];
    int w = snprintf(body, sizeof body,
                     "{\"resourceType\":\"Patient\",\"id\":\"%s\","
                     "\"identifier\":[{\"system\":\"" DEMO_ID_SYSTEM "\",\"value\":\"%s\"}],"
                     "\"active\":true,"
                     "\"name\":[{\"use\":\"official\",\"text\":\"Demo %s\",\"family\":\"Demo\",\"given\":[\"%s\"]}]}",
                     p->id, p->id, number_names[k], number_names[k]);
    if (w < 0 || (size_t)w >= sizeof body)
        return CT_ELIMIT;
    ct_http_req req;
    ct_http_fhir f;
    feeder_request(d, &req);
    feeder_fhir(&req, st, &f);
    ct_http_result r = {0};
    ct_http_prepared prep;
    if (ct_http_prepare_body(&f, body, (size_t)w, "Patient", p->id, NULL, &prep, &r) == 0)
        ct_http_op_update(&f, &prep, 0, &r);
    ct_http_prepared_free(&prep);
    int ok = r.status == 200 || r.status == 201;
    if (!ok)
        ct_http_log(d->srv, CT_HTTP_LOG_ERROR, "demo feed: Patient/%s refused (%d): %s", p->id, r.status,
                    r.issue.diagnostics);
    ct_http_result_clear(&r);
    return ok ? 0 : CT_EDB;
}

/* One chunk of one patient, posted as an ECG Observation. */
static void feed_patient(ct_http_demo *d, ct_store *st, demo_patient *p, int64_t start_ms)
{
    int16_t *leads[CT_SYNTH_MAX_LEADS] = {p->lead[0], p->lead[1]};
    ct_synth_generate(p->synth, leads, d->frames, NULL, 0, NULL);

    ct_fhir_ecg_in in;
    memset(&in, 0, sizeof in);
    in.status = "final";
    in.patient_id = p->id;
    in.start_ms = start_ms;
    in.fs_hz = DEMO_FS_HZ;
    in.n_samples = d->frames;
    in.n_leads = CT_SYNTH_MAX_LEADS;
    for (int l = 0; l < CT_SYNTH_MAX_LEADS; l++) {
        in.leads[l].mdc_code = ct_synth_lead_code(p->synth, l);
        in.leads[l].gain_adu_per_mv = DEMO_GAIN_ADU_PER_MV;
        in.leads[l].baseline_adu = 0;
        in.leads[l].samples = p->lead[l];
    }
    json_t *j = NULL;
    ct_error err = {0};
    char *text = NULL;
    if (ct_fhir_ecg_to_json(&in, &j, &err) == 0)
        text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    char id[37];
    if (!text || ct_http_new_id(id) != 0) {
        if (p->failures++ == 0)
            ct_http_log(d->srv, CT_HTTP_LOG_ERROR, "demo feed: cannot build the Observation of Patient/%s: %s",
                        p->id, err.msg[0] ? err.msg : "out of memory");
        free(text);
        return;
    }
    ct_http_req req;
    ct_http_fhir f;
    feeder_request(d, &req);
    feeder_fhir(&req, st, &f);
    ct_http_result r = {0};
    ct_http_prepared prep;
    if (ct_http_prepare_body(&f, text, strlen(text), "Observation", NULL, id, &prep, &r) == 0)
        ct_http_op_create(&f, &prep, NULL, &r);
    ct_http_prepared_free(&prep);
    free(text);
    /* The first refusal and then one a minute: a broken disk must not
     * flood the log with N lines a second. */
    if (r.status != 201 && p->failures++ % 60 == 0)
        ct_http_log(d->srv, CT_HTTP_LOG_ERROR, "demo feed: Observation of Patient/%s refused (%d, %d so far): %s",
                    p->id, r.status, p->failures, r.issue.diagnostics);
    ct_http_result_clear(&r);
}

/* Waits until the wall clock reaches due_ms or a stop; 1 when stopped. */
static int wait_until(ct_http_demo *d, int64_t due_ms)
{
    pthread_mutex_lock(&d->lock);
    while (!d->stop) {
        int64_t left = due_ms - wall_ms();
        if (left <= 0)
            break;
        /* At most a second at a time: the wall clock may be set while we
         * sleep on the monotonic one. */
        if (left > 1000)
            left = 1000;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += left / 1000;
        until.tv_nsec += (left % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = pthread_cond_timedwait(&d->cond, &d->lock, &until);
        if (rc != 0 && rc != ETIMEDOUT)
            break;
    }
    int stopped = d->stop;
    pthread_mutex_unlock(&d->lock);
    return stopped;
}

static void *demo_main(void *arg)
{
    ct_http_demo *d = arg;
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_store_open(d->srv->db_path, &st, &err) != 0) {
        ct_http_log(d->srv, CT_HTTP_LOG_ERROR, "demo feed: cannot open the database, no demo patient is fed: %s",
                    err.msg);
        return NULL;
    }
    for (int k = 0; k < d->n; k++)
        if (ensure_patient(d, st, k) != 0) {
            ct_store_close(st);
            return NULL;
        }
    ct_http_log(d->srv, CT_HTTP_LOG_INFO, "demo feed: %d synthetic patient%s (demo-1..demo-%d) streaming live", d->n,
                d->n == 1 ? "" : "s", d->n);
    /* The first second is the one that just ended: data at once. */
    int64_t t0 = (wall_ms() / d->chunk_ms - 1) * d->chunk_ms;
    int64_t k = 0;
    for (;;) {
        int64_t start = t0 + k * d->chunk_ms;
        if (wait_until(d, start + d->chunk_ms))
            break;
        int64_t behind = wall_ms() - (start + d->chunk_ms);
        if (behind > DEMO_MAX_BEHIND_MS) {
            int64_t skip_to = (wall_ms() - t0) / d->chunk_ms - 1;
            if (!d->said_behind) {
                d->said_behind = 1;
                ct_http_log(d->srv, CT_HTTP_LOG_WARNING,
                            "demo feed: %lld ms behind real time (the database is slow); skipping %lld s ahead, "
                            "the streams get a gap (said once)",
                            (long long)behind, (long long)(skip_to - k));
            }
            k = skip_to;
            start = t0 + k * d->chunk_ms;
        }
        for (int i = 0; i < d->n; i++)
            feed_patient(d, st, &d->p[i], start);
        k++;
    }
    ct_store_close(st);
    return NULL;
}

static void demo_free(ct_http_demo *d)
{
    if (!d)
        return;
    for (int i = 0; i < d->n; i++)
        ct_synth_free(d->p[i].synth);
    if (d->sync_ready) {
        pthread_cond_destroy(&d->cond);
        pthread_mutex_destroy(&d->lock);
    }
    free(d);
}

int ct_http_demo_init(ct_http_server *srv, ct_error *err)
{
    int n = srv->opt.demo_patients;
    if (n == 0)
        return 0;
    if (n < 0 || n > CT_HTTP_MAX_DEMO_PATIENTS)
        return ct_error_set(err, CT_EINVAL, "%d demo patients is out of range 1..%d", n, CT_HTTP_MAX_DEMO_PATIENTS);
    if (!srv->db_path[0] || !srv->twin)
        return ct_error_set(err, CT_EINVAL, "demo patients need a database and the live twin to stream into");
    int chunk_ms = srv->opt.demo_chunk_ms ? srv->opt.demo_chunk_ms : CT_HTTP_DEFAULT_DEMO_CHUNK_MS;
    /* Whole samples at 360 Hz: a multiple of 25 ms (9 samples). */
    if (chunk_ms < CT_HTTP_MIN_DEMO_CHUNK_MS || chunk_ms > CT_HTTP_MAX_DEMO_CHUNK_MS || chunk_ms % 25 != 0)
        return ct_error_set(err, CT_EINVAL, "demo chunk of %d ms: must be %d..%d ms, a multiple of 25", chunk_ms,
                            CT_HTTP_MIN_DEMO_CHUNK_MS, CT_HTTP_MAX_DEMO_CHUNK_MS);
    ct_http_demo *d = calloc(1, sizeof *d);
    if (!d)
        return ct_error_set(err, CT_ENOMEM, "out of memory for the demo feed");
    d->srv = srv;
    d->chunk_ms = chunk_ms;
    d->frames = (size_t)(DEMO_FS_HZ * chunk_ms / 1000.0 + 0.5);
    for (int k = 0; k < n; k++) {
        demo_patient *p = &d->p[k];
        snprintf(p->id, sizeof p->id, "demo-%d", k + 1);
        ct_synth_options o;
        profile(k, &o);
        int rc = ct_synth_new(&o, &p->synth, err);
        if (rc != 0) {
            demo_free(d);
            return ct_error_prefix(err, "demo patient %s", p->id);
        }
        d->n = k + 1;
    }
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0) {
        demo_free(d);
        return ct_error_set(err, CT_ENOMEM, "cannot set up the demo feed's clock");
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_cond_init(&d->cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (ok && pthread_mutex_init(&d->lock, NULL) != 0) {
        pthread_cond_destroy(&d->cond);
        ok = 0;
    }
    if (!ok) {
        demo_free(d);
        return ct_error_set(err, CT_ENOMEM, "cannot create the demo feed's condition variable");
    }
    d->sync_ready = 1;
    srv->demo = d;
    return 0;
}

int ct_http_demo_start(ct_http_server *srv, ct_error *err)
{
    ct_http_demo *d = srv->demo;
    if (!d || d->running)
        return 0;
    if (pthread_create(&d->thread, NULL, demo_main, d) != 0)
        return ct_error_set(err, CT_ENOMEM, "cannot start the demo feed's thread");
    d->running = 1;
    return 0;
}

void ct_http_demo_stop(ct_http_server *srv)
{
    ct_http_demo *d = srv->demo;
    if (!d)
        return;
    if (d->running) {
        pthread_mutex_lock(&d->lock);
        d->stop = 1;
        pthread_cond_signal(&d->cond);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
        d->running = 0;
    }
    demo_free(d);
    srv->demo = NULL;
}
