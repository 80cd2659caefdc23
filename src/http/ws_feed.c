/* http room, the dashboard's WebSocket feed (/ws/feed, docs/dashboard.md):
 * each browser tab opens one socket, subscribes to one source (a live
 * patient of the twin, or an imported record replayed at a chosen speed)
 * and receives its samples, beats, events, alerts and numerics.
 *
 * The one idea: three kinds of thread, none of which ever waits on
 * another viewer's network.
 *   - civetweb's worker of each socket authenticates the upgrade (the same
 *     ct_http_authenticate as every route, plus an Origin check), then
 *     only reads the client's messages, checks them and leaves them as
 *     commands for the feeder.
 *   - one feeder thread serves every socket from that socket's own cursor
 *     every CT_HTTP_WS_TICK_MS: for a replay it reads the next samples from
 *     the store, pushes them through a detector and a policy evaluator of
 *     its own (so beats, events and alerts come out exactly as from
 *     `cardiotwin detect` and the live twin, and always after the samples
 *     that hold them); for a live patient it copies what is new from the
 *     twin's live view, and releases the beats, events and alerts the
 *     twin's observer handed over once their samples have gone out.
 *   - one sender thread per socket writes that socket's queue. The queue
 *     is bounded in bytes: a viewer that does not read fills its own queue
 *     and is dropped (close 1008); it never grows memory or slows the
 *     feeder, which only appends.
 * Lock order: the hub's lock before a socket's, never the other way. The
 * twin's observer runs under a patient's lock and takes the hub's lock,
 * so the feeder never calls the twin while holding either.
 *
 * Costs (measured, docs/dashboard.md "Server side"): a replay subscribe
 * is a few store reads and a detector allocation, no whole-record work; a
 * feeder tick is one store read per lead per replaying socket. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/rand.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/ecg.h"
#include "cardiotwin/fhir.h"
#include "cardiotwin/policy.h"
#include "dash_internal.h"

#define MAX_CMDS 16
#define LIVE_DEFAULT_SECONDS 10.0
#define LIVE_MAX_SECONDS 600.0
#define SPEED_MIN 0.25
#define SPEED_MAX 16.0
#define PVC_RING 1024
#define STATUS_EVERY_MS 1000

/* ---- time ------------------------------------------------------------------------- */

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the state -------------------------------------------------------------------- */

typedef struct ws_msg {
    struct ws_msg *next;
    int opcode;
    size_t len;
    unsigned char data[];
} ws_msg;

enum { CMD_SUBSCRIBE = 1, CMD_PAUSE, CMD_RESUME, CMD_SPEED, CMD_SEEK };
enum { SRC_NONE = 0, SRC_PATIENT, SRC_RECORD };

typedef struct ws_cmd {
    int kind;
    int source;
    char id[160];
    double seconds, speed, start_s, t_s;
} ws_cmd;

/* A beat, event or alert of the live twin, held until its samples went out. */
enum { ITEM_BEAT = 1, ITEM_EVENT, ITEM_ALERT };
typedef struct ws_item {
    int kind;
    int64_t sample;            /* released once the cursor is past it */
    ct_twin_live_beat beat;
    ct_ecg_event event;
    /* alert */
    ct_policy_rule rule;
    ct_policy_priority priority;
    ct_policy_transition transition;
    int stream_ended;
    int64_t onset_sample, end_sample;
    char summary[256];
} ws_item;

typedef struct replay {
    int64_t record_id;
    char id[160];
    char patient[128];
    int n_leads;
    int64_t signal_id[CT_ECG_MAX_LEADS];
    double fs_hz;
    int64_t n_samples;
    int64_t start;             /* where the detector began (seek point) */
    int64_t cursor;            /* next sample to send */
    double carry;              /* fraction of a sample owed from the last tick */
    double speed;
    int paused, ended;
    int64_t last_us;
    ct_ecg_detector *det;
    ct_policy_eval *pol;
} replay;

typedef struct live {
    char patient[CT_FHIR_ID_MAX + 1];
    int64_t stream_seq;        /* 0: not started yet */
    int64_t cursor;
    int64_t t0_ms;
    double fs_hz;
    double first_seconds;
    int n_leads;
    int missing_reported;
    int64_t last_beat;         /* the latest beat sent: the view and the observer overlap */
} live;

typedef struct ws_sock {
    ct_http_ws_hub *hub;
    struct mg_connection *conn;
    ct_http_caller caller;
    char client[48];
    /* hub lock */
    int refs;
    int gone;
    /* sock lock */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    ws_msg *head, *tail;
    size_t queued;
    int dropped;
    int stop;
    ws_cmd cmds[MAX_CMDS];
    size_t n_cmds;
    char watch[CT_FHIR_ID_MAX + 1];  /* the live patient whose observer items we keep */
    ws_item *items;
    size_t n_items, cap_items;
    pthread_t sender;
    int sender_running;
    /* feeder only */
    int source;
    replay rp;
    live lv;
    char rhythm[16], quality[16];
    double hr_bpm;
    int64_t pvc[PVC_RING];      /* samples of recent V beats (replay) */
    size_t pvc_n, pvc_head;
    int64_t last_status_us;
    json_t *beats;             /* beats found during one push (replay) */
} ws_sock;

typedef struct auth_slot {
    const struct mg_connection *conn;
    ct_http_caller caller;
    char request_id[72];
    int used;
} auth_slot;

struct ct_http_ws_hub {
    ct_http_server *srv;
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* refs reaching 0; the feeder's sleep */
    ws_sock **socks;
    size_t n_socks, max_socks;
    auth_slot *slots;           /* one per civetweb worker connection */
    size_t n_slots;
    int stop;
    pthread_t feeder;
    int feeder_running;
    ct_store *st;               /* the feeder's connection */
    /* measured by the feeder, for the docs and the log */
    int64_t tick_us_max, tick_us_sum, ticks;
};

/* ---- the send queue -------------------------------------------------------------- */

/* Appends a message; a queue over its limit drops the viewer. */
static void enqueue(ws_sock *s, int opcode, const void *data, size_t len)
{
    ws_msg *m = malloc(sizeof *m + len);
    pthread_mutex_lock(&s->lock);
    if (s->dropped || s->stop || !m) {
        if (!m)
            s->dropped = 1;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        free(m);
        return;
    }
    if (s->queued + len > CT_HTTP_WS_QUEUE_MAX_BYTES) {
        s->dropped = 1;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        free(m);
        ct_http_log(s->hub->srv, CT_HTTP_LOG_WARNING,
                    "WebSocket of %s from %s dropped: it did not read %zu bytes queued for it", s->caller.subject,
                    s->client, s->queued);
        return;
    }
    m->next = NULL;
    m->opcode = opcode;
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    if (s->tail)
        s->tail->next = m;
    else
        s->head = m;
    s->tail = m;
    s->queued += len;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void send_json(ws_sock *s, json_t *o)
{
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (text)
        enqueue(s, MG_WEBSOCKET_OPCODE_TEXT, text, strlen(text));
    free(text);
}

static void send_error(ws_sock *s, const char *fmt, ...) CT_PRINTF(2, 3);
static void send_error(ws_sock *s, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    send_json(s, json_pack("{s:s,s:s}", "type", "error", "message", msg));
}

static void *sender_main(void *arg)
{
    ws_sock *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->head && !s->stop && !s->dropped)
            pthread_cond_wait(&s->cond, &s->lock);
        if (s->stop || s->dropped)
            break;
        ws_msg *m = s->head;
        s->head = m->next;
        if (!s->head)
            s->tail = NULL;
        s->queued -= m->len;
        pthread_mutex_unlock(&s->lock);
        int rc = mg_websocket_write(s->conn, m->opcode, (const char *)m->data, m->len);
        free(m);
        pthread_mutex_lock(&s->lock);
        if (rc <= 0)
            s->dropped = 1;
    }
    int say_bye = s->dropped && !s->stop;
    while (s->head) {
        ws_msg *m = s->head;
        s->head = m->next;
        free(m);
    }
    s->tail = NULL;
    s->queued = 0;
    pthread_mutex_unlock(&s->lock);
    if (say_bye) {
        /* RFC 6455 7.4.1: 1008, policy violation (the viewer stopped reading). */
        static const char bye[] = "\x03\xf0too slow";
        mg_websocket_write(s->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, bye, sizeof bye - 1);
    }
    return NULL;
}

/* ---- JSON for the page ---------------------------------------------------------- */

static const char *event_kind(ct_ecg_event_kind k)
{
    switch (k) {
    case CT_EVENT_RHYTHM: return "rhythm";
    case CT_EVENT_QUALITY: return "quality";
    case CT_EVENT_PAUSE: return "pause";
    case CT_EVENT_ASYSTOLE: return "asystole";
    case CT_EVENT_VRUN: return "vrun";
    }
    return "other";
}

static json_t *event_json(const ct_ecg_event *e, int64_t offset)
{
    return json_pack("{s:s,s:s,s:s,s:I,s:o,s:f}", "type", "event", "kind", event_kind(e->kind), "label", e->label,
                     "sample", (json_int_t)(e->sample + offset), "end_sample",
                     e->end_sample >= 0 ? json_integer(e->end_sample + offset) : json_null(), "value", e->value);
}

static json_t *beat_json(int64_t sample, char cls, double hr_bpm, double rr_ms)
{
    char c[2] = {cls, 0};
    return json_pack("{s:I,s:s,s:f,s:f}", "sample", (json_int_t)sample, "cls", c, "hr_bpm", hr_bpm, "rr_ms", rr_ms);
}

/* An alert with no row behind it (a replay's, or a live one not stored yet). */
static json_t *alert_json_unstored(const char *patient, ct_policy_rule rule, ct_policy_priority prio,
                                   ct_policy_transition tr, int stream_ended, int64_t onset_sample,
                                   int64_t end_sample, double fs_hz, int64_t t0_ms, const char *summary)
{
    const char *state = tr == CT_POLICY_CLEARED ? (stream_ended ? "ended" : "cleared") : "open";
    const char *rn = ct_policy_rule_name(rule), *pn = ct_policy_priority_name(prio);
    json_t *a = json_pack("{s:n,s:s,s:s,s:s,s:s,s:I,s:o,s:s,s:n,s:b,s:n,s:n}", "id", "patient", patient, "rule",
                          rn ? rn : "?", "priority", pn ? pn : "?", "state", state, "onset_ms",
                          (json_int_t)(t0_ms + llround((double)onset_sample * 1000.0 / fs_hz)), "end_ms",
                          tr == CT_POLICY_CLEARED && end_sample >= 0
                              ? json_integer(t0_ms + llround((double)end_sample * 1000.0 / fs_hz))
                              : json_null(),
                          "summary", summary, "report_id", "acknowledged", 0, "acknowledged_by", "acknowledged_ms");
    return json_pack("{s:s,s:o}", "type", "alert", "alert", a);
}

/* ---- binary sample frames --------------------------------------------------------- */

static void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* leads[l][i], n frames from first_sample, into one 'S' frame. */
static void send_samples(ws_sock *s, int n_leads, const int16_t *const *leads, size_t n, int64_t first_sample,
                         double server_ms)
{
    size_t len = 24 + n * (size_t)n_leads * 2;
    unsigned char *b = malloc(len);
    if (!b) {
        pthread_mutex_lock(&s->lock);
        s->dropped = 1;
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->lock);
        return;
    }
    b[0] = 0x53;
    b[1] = 1;
    put_le(b + 2, (uint64_t)n_leads, 2);
    put_le(b + 4, (uint64_t)n, 4);
    put_le(b + 8, (uint64_t)first_sample, 8);
    uint64_t bits;
    memcpy(&bits, &server_ms, sizeof bits);
    put_le(b + 16, bits, 8);
    unsigned char *p = b + 24;
    for (size_t i = 0; i < n; i++)
        for (int l = 0; l < n_leads; l++, p += 2)
            put_le(p, (uint16_t)leads[l][i], 2);
    enqueue(s, MG_WEBSOCKET_OPCODE_BINARY, b, len);
    free(b);
}

/* ---- replay of a stored record ----------------------------------------------------- */

static void pvc_add(ws_sock *s, int64_t sample)
{
    s->pvc[s->pvc_head] = sample;
    s->pvc_head = (s->pvc_head + 1) % PVC_RING;
    if (s->pvc_n < PVC_RING)
        s->pvc_n++;
}

static int pvc_last_minute(const ws_sock *s, int64_t now_sample, double fs_hz)
{
    int64_t from = now_sample - (int64_t)llround(60.0 * fs_hz);
    int n = 0;
    for (size_t i = 0; i < s->pvc_n; i++)
        n += s->pvc[i] > from && s->pvc[i] <= now_sample;
    return n;
}

static void flush_beats(ws_sock *s)
{
    if (s->beats && json_array_size(s->beats) > 0) {
        send_json(s, json_pack("{s:s,s:O}", "type", "beats", "beats", s->beats));
        json_array_clear(s->beats);
    }
}

static void rp_on_beat(void *ctx, const ct_ecg_beat *b)
{
    ws_sock *s = ctx;
    int64_t at = s->rp.start + b->sample;
    if (!s->beats)
        s->beats = json_array();
    json_array_append_new(s->beats, beat_json(at, ct_ecg_beat_class_mnemonic(b->cls)[0], b->hr_bpm, b->rr_ms));
    if (b->cls == CT_BEAT_V)
        pvc_add(s, at);
    s->hr_bpm = b->hr_bpm;
    if (s->rp.pol)
        ct_policy_eval_beat(s->rp.pol, b);
}

static void note_event(ws_sock *s, const ct_ecg_event *e)
{
    if (e->kind == CT_EVENT_RHYTHM && e->end_sample < 0)
        snprintf(s->rhythm, sizeof s->rhythm, "%s", e->label);
    else if (e->kind == CT_EVENT_QUALITY)
        snprintf(s->quality, sizeof s->quality, "%s", e->label);
}

static void rp_on_event(void *ctx, const ct_ecg_event *e)
{
    ws_sock *s = ctx;
    flush_beats(s);
    note_event(s, e);
    send_json(s, event_json(e, s->rp.start));
    if (s->rp.pol)
        ct_policy_eval_event(s->rp.pol, e);
}

static void rp_on_alert(void *ctx, const ct_policy_alert *a)
{
    ws_sock *s = ctx;
    flush_beats(s);
    char summary[256];
    ct_policy_alert_describe(a, summary, sizeof summary);
    send_json(s, alert_json_unstored(s->rp.patient, a->rule, a->priority, a->transition, a->stream_ended,
                                     s->rp.start + a->onset_sample,
                                     a->end_sample >= 0 ? s->rp.start + a->end_sample : -1, s->rp.fs_hz, 0, summary));
}

static void rp_close_detector(replay *r)
{
    ct_ecg_detector_free(r->det);
    r->det = NULL;
    ct_policy_eval_free(r->pol);
    r->pol = NULL;
}

static void stream_message_record(ws_sock *s, const ct_store_signal *sigs)
{
    replay *r = &s->rp;
    json_t *leads = json_array();
    for (int l = 0; l < r->n_leads; l++) {
        int code = ct_http_dash_lead_code(sigs[l].description);
        double g = sigs[l].gain_adu_per_unit > 0 ? sigs[l].gain_adu_per_unit : 200.0;
        if (strcmp(sigs[l].units, "uV") == 0)
            g *= 1000.0;
        else if (strcmp(sigs[l].units, "V") == 0)
            g /= 1000.0;
        json_array_append_new(leads, json_pack("{s:s,s:o,s:f,s:i}", "name", sigs[l].description, "code",
                                               code ? json_integer(code) : json_null(), "gain_adu_per_mv", g,
                                               "baseline_adu", sigs[l].baseline_adu));
    }
    send_json(s, json_pack("{s:s,s:s,s:s,s:f,s:o,s:I,s:i,s:f,s:b,s:f}", "type", "stream", "source", "record", "id",
                           r->id, "fs_hz", r->fs_hz, "leads", leads, "first_sample", (json_int_t)r->cursor, "t0_ms", 0,
                           "speed", r->speed, "live", 0, "duration_s", (double)r->n_samples / r->fs_hz));
}

/* (Re)starts the detector and the evaluator at `at` and announces the stream. */
static int rp_start_at(ws_sock *s, int64_t at, ct_error *err)
{
    replay *r = &s->rp;
    rp_close_detector(r);
    ct_store_signal *sigs = NULL;
    size_t ns = 0;
    int rc = ct_store_signals_list(s->hub->st, r->record_id, &sigs, &ns, err);
    if (rc != 0)
        return rc;
    if ((int)ns < r->n_leads) {
        free(sigs);
        return ct_error_set(err, CT_EDB, "record %s lost signals", r->id);
    }
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = r->fs_hz;
    cfg.n_leads = r->n_leads;
    /* As ct_twin_run_record sets the detector up for `cardiotwin detect`. */
    for (int l = 0; l < r->n_leads; l++) {
        double g = sigs[l].gain_adu_per_unit > 0 ? sigs[l].gain_adu_per_unit : 200.0;
        if (strcmp(sigs[l].units, "uV") == 0)
            g *= 1000.0;
        else if (strcmp(sigs[l].units, "V") == 0)
            g /= 1000.0;
        cfg.gain_adu_per_mv[l] = g;
        cfg.baseline_adu[l] = sigs[l].baseline_adu;
    }
    ct_ecg_sink sink = {rp_on_beat, rp_on_event, s};
    rc = ct_ecg_detector_new(&cfg, &sink, &r->det, err);
    if (rc == 0) {
        ct_policy_eval_config pc = {.patient_id = r->patient, .fs_hz = r->fs_hz, .n_leads = r->n_leads,
                                    .start_sample = 0};
        ct_policy_sink ps = {rp_on_alert, s};
        rc = ct_policy_eval_new(s->hub->srv->policy, &pc, &ps, &r->pol, err);
    }
    if (rc != 0) {
        free(sigs);
        rp_close_detector(r);
        return rc;
    }
    r->start = at;
    r->cursor = at;
    r->carry = 0;
    r->ended = 0;
    r->last_us = mono_us();
    s->pvc_n = s->pvc_head = 0;
    s->hr_bpm = 0;
    s->rhythm[0] = '\0';
    snprintf(s->quality, sizeof s->quality, "ok");
    stream_message_record(s, sigs);
    free(sigs);
    return 0;
}

static void rp_push(ws_sock *s, int16_t *const *buf, size_t n)
{
    replay *r = &s->rp;
    /* Runs of frames with the same leads present, as ct_twin_run_record
     * pushes them: an invalid sample is an absent lead. */
    const int16_t *ptr[CT_ECG_MAX_LEADS];
    size_t i = 0;
    while (i < n) {
        unsigned valid = 0;
        for (int l = 0; l < r->n_leads; l++)
            valid |= (unsigned)(buf[l][i] != CT_WFDB_INVALID_SAMPLE) << l;
        size_t j = i + 1;
        for (; j < n; j++) {
            unsigned v = 0;
            for (int l = 0; l < r->n_leads; l++)
                v |= (unsigned)(buf[l][j] != CT_WFDB_INVALID_SAMPLE) << l;
            if (v != valid)
                break;
        }
        for (int l = 0; l < r->n_leads; l++)
            ptr[l] = (valid >> l) & 1u ? buf[l] + i : NULL;
        ct_ecg_detector_push(r->det, ptr, j - i);
        i = j;
    }
    int64_t lat = (int64_t)llround(CT_ECG_MAX_LATENCY_MS * r->fs_hz / 1000.0);
    int64_t done = ct_ecg_detector_samples(r->det) - lat;
    if (done > 0)
        ct_policy_advance(r->pol, done);
}

static void rp_tick(ws_sock *s, int64_t now_us)
{
    replay *r = &s->rp;
    int64_t dt = now_us - r->last_us;
    r->last_us = now_us;
    if (r->paused || r->ended || !r->det)
        return;
    double want = (double)dt / 1e6 * r->fs_hz * r->speed + r->carry;
    /* A feeder held up (a slow disk) slows the replay down rather than
     * sending a burst: at most half a second of playing time per tick. */
    double cap = r->fs_hz * r->speed * 0.5 + 1.0;
    if (want > cap)
        want = cap;
    int64_t n = (int64_t)want;
    r->carry = want - (double)n;
    if (n > r->n_samples - r->cursor)
        n = r->n_samples - r->cursor;
    if (n > 0) {
        int16_t *buf[CT_ECG_MAX_LEADS];
        int16_t *all = malloc((size_t)n * (size_t)r->n_leads * sizeof *all);
        if (!all) {
            send_error(s, "record %s: out of memory, replay stopped", r->id);
            r->ended = 1;
            return;
        }
        ct_error err = {0};
        for (int l = 0; l < r->n_leads; l++) {
            buf[l] = all + (size_t)l * (size_t)n;
            size_t got = 0;
            if (ct_store_samples_read(s->hub->st, r->signal_id[l], r->cursor, buf[l], (size_t)n, &got, &err) != 0 ||
                got != (size_t)n) {
                ct_http_log(s->hub->srv, CT_HTTP_LOG_ERROR, "replay of record %s: %s", r->id,
                            err.msg[0] ? err.msg : "short read");
                send_error(s, "record %s: its samples could not be read; replay stopped", r->id);
                r->ended = 1;
                free(all);
                return;
            }
        }
        send_samples(s, r->n_leads, (const int16_t *const *)buf, (size_t)n, r->cursor, (double)wall_ms());
        r->cursor += n;
        rp_push(s, buf, (size_t)n);
        flush_beats(s);
        free(all);
    }
    if (r->cursor >= r->n_samples) {
        ct_ecg_detector_finish(r->det);
        ct_policy_eval_finish(r->pol, r->cursor - r->start);
        flush_beats(s);
        r->ended = 1;
        send_error(s, "record %s ended at %.1f s", r->id, (double)r->n_samples / r->fs_hz);
    }
}

static int rp_subscribe(ws_sock *s, const ws_cmd *c, ct_error *err)
{
    ct_store *st = s->hub->st;
    ct_store_record *recs = NULL;
    size_t n = 0;
    int rc = ct_store_records_list(st, 0, &recs, &n, err);
    if (rc != 0)
        return rc;
    long i = ct_http_dash_record_find(recs, n, c->id);
    if (i < 0) {
        free(recs);
        return ct_error_set(err, CT_ENOTFOUND, "no record %s (GET /api/sources lists them)", c->id);
    }
    ct_store_record rec = recs[i];
    free(recs);
    if (!(rec.fs_hz >= CT_ECG_MIN_FS_HZ && rec.fs_hz <= CT_ECG_MAX_FS_HZ) || rec.n_signals < 1)
        return ct_error_set(err, CT_EUNSUPPORTED, "record %s: %g Hz, %d signals: the detector cannot replay it",
                            c->id, rec.fs_hz, rec.n_signals);
    double start = c->start_s * rec.fs_hz;
    if (start >= (double)rec.n_samples)
        return ct_error_set(err, CT_EINVAL, "record %s is %.1f s long; start_s %.1f is past its end", c->id,
                            (double)rec.n_samples / rec.fs_hz, c->start_s);
    ct_store_signal *sigs = NULL;
    size_t ns = 0;
    if ((rc = ct_store_signals_list(st, rec.id, &sigs, &ns, err)) != 0)
        return rc;
    replay *r = &s->rp;
    rp_close_detector(r);
    memset(r, 0, sizeof *r);
    r->record_id = rec.id;
    snprintf(r->id, sizeof r->id, "%s", c->id);
    r->n_leads = ns < CT_ECG_MAX_LEADS ? (int)ns : CT_ECG_MAX_LEADS;
    for (int l = 0; l < r->n_leads; l++)
        r->signal_id[l] = sigs[l].id;
    free(sigs);
    r->fs_hz = rec.fs_hz;
    r->n_samples = rec.n_samples;
    r->speed = c->speed;
    ct_store_patient pat;
    if (rec.patient_id > 0 && ct_store_patient_by_id(st, rec.patient_id, &pat, NULL) == 0)
        snprintf(r->patient, sizeof r->patient, "%s", pat.identifier);
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_str(&d, "via", "/ws/feed");
    ct_audit_detail_str(&d, "source", "record");
    ct_audit_detail_str(&d, "record", r->id);
    ct_audit_detail_int(&d, "start_ms", (int64_t)llround(c->start_s * 1000.0));
    if ((rc = ct_http_dash_audit(st, &s->caller, s->client, "", "read", "Observation", "", r->patient,
                                 ct_audit_detail_json(&d), err)) != 0)
        return rc;
    if ((rc = rp_start_at(s, (int64_t)start, err)) != 0)
        return rc;
    s->source = SRC_RECORD;
    return 0;
}

/* ---- a live patient ---------------------------------------------------------------------- */

static void status_message(ws_sock *s, int64_t sample, double fs_hz)
{
    send_json(s, json_pack("{s:s,s:f,s:s,s:i,s:s,s:I}", "type", "status", "hr_bpm", s->hr_bpm, "rhythm", s->rhythm,
                           "pvc_per_min", fs_hz > 0 ? pvc_last_minute(s, sample, fs_hz) : 0, "quality",
                           s->quality[0] ? s->quality : "ok", "sample", (json_int_t)sample));
}

static void lv_stream_message(ws_sock *s, const ct_twin_live *v)
{
    json_t *leads = json_array();
    for (int l = 0; l < v->n_leads; l++) {
        const ct_fhir_lead_info *li = ct_fhir_lead_by_code(v->lead_codes[l]);
        json_array_append_new(leads, json_pack("{s:s,s:i,s:f,s:f}", "name", li ? li->name : "?", "code",
                                               v->lead_codes[l], "gain_adu_per_mv", v->gain_adu_per_mv[l],
                                               "baseline_adu", v->baseline_adu[l]));
    }
    send_json(s, json_pack("{s:s,s:s,s:s,s:f,s:o,s:I,s:I,s:i,s:b,s:n}", "type", "stream", "source", "patient", "id",
                           s->lv.patient, "fs_hz", v->fs_hz, "leads", leads, "first_sample", (json_int_t)s->lv.cursor,
                           "t0_ms", (json_int_t)v->t0_ms, "speed", 1, "live", 1, "duration_s"));
}

/* The row behind a live alert, once the twin has stored it. */
static json_t *lv_alert(ws_sock *s, const ws_item *it)
{
    ct_store_twin_alert *rows = NULL;
    size_t n = 0;
    json_t *out = NULL;
    const char *rn = ct_policy_rule_name(it->rule);
    if (rn && ct_store_twin_alerts_list(s->hub->st, s->lv.patient, 0, 16, &rows, &n, NULL) == 0) {
        for (size_t i = 0; i < n && !out; i++)
            if (strcmp(rows[i].rule, rn) == 0 && rows[i].onset_sample == it->onset_sample)
                out = json_pack("{s:s,s:o}", "type", "alert", "alert", ct_http_dash_alert_json(&rows[i]));
        free(rows);
    }
    if (!out)
        out = alert_json_unstored(s->lv.patient, it->rule, it->priority, it->transition, it->stream_ended,
                                  it->onset_sample, it->end_sample, s->lv.fs_hz, s->lv.t0_ms, it->summary);
    return out;
}

/* Sends the observer's items whose samples have gone out, oldest first. */
static void lv_release(ws_sock *s)
{
    ws_item *take = NULL;
    size_t n_take = 0;
    pthread_mutex_lock(&s->lock);
    if (s->n_items > 0) {
        take = malloc(s->n_items * sizeof *take);
        size_t keep = 0;
        for (size_t i = 0; i < s->n_items; i++) {
            if (take && s->items[i].sample < s->lv.cursor)
                take[n_take++] = s->items[i];
            else
                s->items[keep++] = s->items[i];
        }
        s->n_items = keep;
    }
    pthread_mutex_unlock(&s->lock);
    json_t *beats = json_array();
    for (size_t i = 0; i < n_take; i++)
        if (take[i].kind == ITEM_BEAT && take[i].beat.sample > s->lv.last_beat) {
            s->lv.last_beat = take[i].beat.sample;
            json_array_append_new(beats, beat_json(take[i].beat.sample, take[i].beat.cls, take[i].beat.hr_bpm,
                                                   take[i].beat.rr_ms));
        }
    if (json_array_size(beats) > 0)
        send_json(s, json_pack("{s:s,s:o}", "type", "beats", "beats", beats));
    else
        json_decref(beats);
    for (size_t i = 0; i < n_take; i++) {
        if (take[i].kind == ITEM_EVENT)
            send_json(s, event_json(&take[i].event, 0));
        else if (take[i].kind == ITEM_ALERT)
            send_json(s, lv_alert(s, &take[i]));
    }
    free(take);
}

static void lv_tick(ws_sock *s, ct_twin *tw)
{
    live *L = &s->lv;
    ct_twin_live v;
    ct_error err = {0};
    /* Only what the cursor needs: a little more than a tick's worth, read
     * again at the right length when more arrived (a 10 s Observation). */
    double secs = L->stream_seq == 0 ? L->first_seconds : 1.0;
    int rc = ct_twin_live_read(tw, L->patient, secs, &v, &err);
    if (rc == 0 && L->stream_seq == v.stream_seq && L->stream_seq != 0 && L->cursor < v.first_sample &&
        v.next_sample - L->cursor <= (int64_t)(LIVE_MAX_SECONDS * v.fs_hz)) {
        double more = (double)(v.next_sample - L->cursor) / v.fs_hz + 0.1;
        ct_twin_live_free(&v);
        rc = ct_twin_live_read(tw, L->patient, more, &v, &err);
    }
    if (rc != 0) {
        if (!L->missing_reported)
            send_error(s, "Patient/%s is not monitored by the live twin", L->patient);
        L->missing_reported = 1;
        return;
    }
    if (v.stream_seq == 0 || v.n_leads < 1 || !(v.fs_hz > 0)) {
        if (!L->missing_reported && L->stream_seq != 0)
            send_error(s, "the live stream of Patient/%s ended", L->patient);
        L->missing_reported = 1;
        ct_twin_live_free(&v);
        return;
    }
    L->missing_reported = 0;
    int pending_beats = 0;
    int64_t end = v.first_sample + (int64_t)v.n_samples;
    if (v.stream_seq != L->stream_seq || L->cursor < v.first_sample || L->cursor > end) {
        L->stream_seq = v.stream_seq;
        L->cursor = v.first_sample;
        L->t0_ms = v.t0_ms;
        L->fs_hz = v.fs_hz;
        L->n_leads = v.n_leads;
        L->last_beat = -1;
        lv_stream_message(s, &v);
        pending_beats = 1;
    }
    if (end > L->cursor) {
        size_t off = (size_t)(L->cursor - v.first_sample), n = (size_t)(end - L->cursor);
        const int16_t *ptr[CT_ECG_MAX_LEADS];
        for (int l = 0; l < v.n_leads; l++)
            ptr[l] = v.samples[l] + off;
        send_samples(s, v.n_leads, ptr, n, L->cursor, (double)v.updated_ms);
        L->cursor = end;
    }
    if (pending_beats) {
        /* The beats already found in the samples just sent: the observer
         * only hands over those found from now on. */
        json_t *beats = json_array();
        for (size_t i = 0; i < v.n_beats; i++)
            if (v.beats[i].sample >= v.first_sample && v.beats[i].sample < L->cursor) {
                json_array_append_new(beats, beat_json(v.beats[i].sample, v.beats[i].cls, v.beats[i].hr_bpm,
                                                       v.beats[i].rr_ms));
                L->last_beat = v.beats[i].sample;
            }
        if (json_array_size(beats) > 0)
            send_json(s, json_pack("{s:s,s:o}", "type", "beats", "beats", beats));
        else
            json_decref(beats);
    }
    s->hr_bpm = v.hr_bpm;
    snprintf(s->rhythm, sizeof s->rhythm, "%s", v.rhythm);
    snprintf(s->quality, sizeof s->quality, "%s", v.quality);
    s->pvc_n = s->pvc_head = 0;
    for (size_t i = 0; i < v.n_beats; i++)
        if (v.beats[i].cls == 'V')
            pvc_add(s, v.beats[i].sample);
    ct_twin_live_free(&v);
    lv_release(s);
}

static int lv_subscribe(ws_sock *s, const ws_cmd *c, ct_error *err)
{
    ct_twin *tw = s->hub->srv->twin;
    ct_twin_live v;
    if (!tw)
        return ct_error_set(err, CT_EUNSUPPORTED, "this server runs no live twin");
    int rc = ct_twin_live_read(tw, c->id, 0.01, &v, err);
    if (rc == CT_ENOTFOUND)
        return ct_error_set(err, CT_ENOTFOUND, "Patient/%s is not monitored by the live twin", c->id);
    if (rc != 0)
        return rc;
    ct_twin_live_free(&v);
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_str(&d, "via", "/ws/feed");
    ct_audit_detail_str(&d, "source", "patient");
    ct_audit_detail_int(&d, "seconds", (int64_t)llround(c->seconds));
    if ((rc = ct_http_dash_audit(s->hub->st, &s->caller, s->client, "", "read", "Observation", "", c->id,
                                 ct_audit_detail_json(&d), err)) != 0)
        return rc;
    rp_close_detector(&s->rp);
    memset(&s->lv, 0, sizeof s->lv);
    snprintf(s->lv.patient, sizeof s->lv.patient, "%.64s", c->id);
    s->lv.first_seconds = c->seconds;
    pthread_mutex_lock(&s->lock);
    snprintf(s->watch, sizeof s->watch, "%.64s", c->id);
    s->n_items = 0;
    pthread_mutex_unlock(&s->lock);
    s->source = SRC_PATIENT;
    return 0;
}

/* ---- the feeder ---------------------------------------------------------------------------- */

static void apply_cmd(ws_sock *s, const ws_cmd *c)
{
    ct_error err = {0};
    if (c->kind == CMD_SUBSCRIBE) {
        pthread_mutex_lock(&s->lock);
        s->watch[0] = '\0';
        s->n_items = 0;
        pthread_mutex_unlock(&s->lock);
        s->source = SRC_NONE;
        int64_t t0 = mono_us();
        int rc = c->source == SRC_RECORD ? rp_subscribe(s, c, &err) : lv_subscribe(s, c, &err);
        if (rc == 0)
            ct_http_log(s->hub->srv, CT_HTTP_LOG_INFO, "live feed: %s (%s) from %s watches %s %s (set up in %.3f ms)",
                        s->caller.subject, s->caller.role, s->client, c->source == SRC_RECORD ? "record" : "Patient/",
                        c->id, (double)(mono_us() - t0) / 1000.0);
        if (rc != 0) {
            if (rc != CT_ENOTFOUND && rc != CT_EINVAL && rc != CT_EUNSUPPORTED)
                ct_http_log(s->hub->srv, CT_HTTP_LOG_ERROR, "WebSocket subscribe of %s to %s: %s", s->caller.subject,
                            c->id, err.msg);
            send_error(s, "%s", err.msg);
        }
        s->last_status_us = 0;
        return;
    }
    if (s->source == SRC_PATIENT) {
        /* A live source keeps moving; the page stops drawing on pause. */
        if (c->kind == CMD_SPEED || c->kind == CMD_SEEK)
            send_error(s, "%s applies to a replayed record, not to a live patient",
                       c->kind == CMD_SPEED ? "speed" : "seek");
        return;
    }
    if (s->source != SRC_RECORD) {
        send_error(s, "subscribe to a source first");
        return;
    }
    replay *r = &s->rp;
    switch (c->kind) {
    case CMD_PAUSE: r->paused = 1; break;
    case CMD_RESUME:
        r->paused = 0;
        r->last_us = mono_us();
        break;
    case CMD_SPEED: r->speed = c->speed; break;
    case CMD_SEEK: {
        double at = c->t_s * r->fs_hz;
        if (at >= (double)r->n_samples) {
            send_error(s, "record %s is %.1f s long; cannot seek to %.1f s", r->id, (double)r->n_samples / r->fs_hz,
                       c->t_s);
            break;
        }
        if (rp_start_at(s, (int64_t)at, &err) != 0)
            send_error(s, "%s", err.msg);
        break;
    }
    default: break;
    }
}

static void serve_socket(ws_sock *s, ct_twin *tw, int64_t now_us)
{
    ws_cmd cmds[MAX_CMDS];
    size_t n;
    pthread_mutex_lock(&s->lock);
    int dropped = s->dropped || s->stop;
    n = s->n_cmds;
    memcpy(cmds, s->cmds, n * sizeof cmds[0]);
    s->n_cmds = 0;
    pthread_mutex_unlock(&s->lock);
    if (dropped)
        return;
    for (size_t i = 0; i < n; i++)
        apply_cmd(s, &cmds[i]);
    int64_t sample = 0;
    double fs = 0;
    if (s->source == SRC_RECORD) {
        rp_tick(s, now_us);
        sample = s->rp.cursor;
        fs = s->rp.fs_hz;
    } else if (s->source == SRC_PATIENT && tw) {
        lv_tick(s, tw);
        sample = s->lv.cursor;
        fs = s->lv.fs_hz;
    }
    if (s->source != SRC_NONE && now_us - s->last_status_us >= STATUS_EVERY_MS * 1000) {
        s->last_status_us = now_us;
        status_message(s, sample, fs);
    }
}

static void *feeder_main(void *arg)
{
    ct_http_ws_hub *h = arg;
    ws_sock **mine = calloc(h->max_socks ? h->max_socks : 1, sizeof *mine);
    pthread_mutex_lock(&h->lock);
    while (!h->stop && mine) {
        size_t n = 0;
        for (size_t i = 0; i < h->n_socks; i++) {
            h->socks[i]->refs++;
            mine[n++] = h->socks[i];
        }
        pthread_mutex_unlock(&h->lock);
        int64_t t0 = mono_us();
        for (size_t i = 0; i < n; i++)
            serve_socket(mine[i], h->srv->twin, t0);
        int64_t took = mono_us() - t0;
        pthread_mutex_lock(&h->lock);
        for (size_t i = 0; i < n; i++)
            if (--mine[i]->refs == 0 && mine[i]->gone)
                pthread_cond_broadcast(&h->cond);
        if (n > 0) {
            h->ticks++;
            h->tick_us_sum += took;
            if (took > h->tick_us_max)
                h->tick_us_max = took;
        }
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t wait_us = CT_HTTP_WS_TICK_MS * 1000 - took;
        if (wait_us < 1000)
            wait_us = 1000;
        until.tv_nsec += (long)(wait_us % 1000000) * 1000;
        until.tv_sec += (time_t)(wait_us / 1000000) + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        if (!h->stop)
            pthread_cond_timedwait(&h->cond, &h->lock, &until);
    }
    pthread_mutex_unlock(&h->lock);
    free(mine);
    return NULL;
}

/* ---- the twin's observer ------------------------------------------------------------------ */

static int grow_items(ws_item **v, size_t *cap, size_t n)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    if (nc > CT_HTTP_WS_PENDING_MAX)
        nc = CT_HTTP_WS_PENDING_MAX;
    if (nc <= n)
        return -1;
    ws_item *nv = realloc(*v, nc * sizeof *nv);
    if (!nv)
        return -1;
    *v = nv;
    *cap = nc;
    return 0;
}

static void fan_out(ct_http_server *srv, const char *patient_id, const ws_item *it)
{
    ct_http_ws_hub *h = srv->dash ? srv->dash->hub : NULL;
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_socks; i++) {
        ws_sock *s = h->socks[i];
        pthread_mutex_lock(&s->lock);
        if (!s->dropped && strcmp(s->watch, patient_id) == 0) {
            if (s->n_items >= CT_HTTP_WS_PENDING_MAX ||
                grow_items(&s->items, &s->cap_items, s->n_items) != 0) {
                s->dropped = 1;
                pthread_cond_signal(&s->cond);
            } else {
                s->items[s->n_items++] = *it;
            }
        }
        pthread_mutex_unlock(&s->lock);
    }
    pthread_mutex_unlock(&h->lock);
}

static void obs_beat(void *ctx, const char *patient_id, const ct_ecg_beat *b)
{
    ws_item it;
    memset(&it, 0, sizeof it);
    it.kind = ITEM_BEAT;
    it.sample = b->sample;
    it.beat.sample = b->sample;
    it.beat.cls = ct_ecg_beat_class_mnemonic(b->cls)[0];
    it.beat.hr_bpm = b->hr_bpm;
    it.beat.rr_ms = b->rr_ms;
    fan_out(ctx, patient_id, &it);
}

static void obs_event(void *ctx, const char *patient_id, const ct_ecg_event *e)
{
    ws_item it;
    memset(&it, 0, sizeof it);
    it.kind = ITEM_EVENT;
    it.sample = e->sample;
    it.event = *e;
    fan_out(ctx, patient_id, &it);
}

static void obs_alert(void *ctx, const char *patient_id, const ct_policy_alert *a)
{
    ws_item it;
    memset(&it, 0, sizeof it);
    it.kind = ITEM_ALERT;
    it.sample = a->sample;
    it.rule = a->rule;
    it.priority = a->priority;
    it.transition = a->transition;
    it.stream_ended = a->stream_ended;
    it.onset_sample = a->onset_sample;
    it.end_sample = a->end_sample;
    ct_policy_alert_describe(a, it.summary, sizeof it.summary);
    fan_out(ctx, patient_id, &it);
}

ct_twin_observer ct_http_ws_observer(ct_http_server *srv)
{
    ct_twin_observer o = {obs_beat, obs_event, obs_alert, srv};
    return o;
}

/* ---- civetweb's callbacks ------------------------------------------------------------------ */

static void access_line(ct_http_server *srv, const struct mg_request_info *ri, int status, const char *subject,
                        int64_t start_us)
{
    if (!srv->opt.on_access)
        return;
    ct_http_access rec = {
        .remote_addr = ri->remote_addr,
        .remote_port = ri->remote_port,
        .method = "GET",
        .path = "/ws/feed",
        .status = status,
        .body_bytes = 0,
        .duration_us = mono_us() - start_us,
        .subject = subject,
    };
    srv->opt.on_access(srv->opt.log_user, &rec);
}

/* Origin must be this server as the browser reached it: "https://" and
 * the Host header. A page of another site may hold the user's cookie in
 * a WebSocket (browsers send it), never this Origin. */
static int origin_ok(const struct mg_connection *conn)
{
    const char *origin = mg_get_header(conn, "Origin");
    const char *host = mg_get_header(conn, "Host");
    if (!origin || !host || !*host || strncasecmp(origin, "https://", 8) != 0)
        return 0;
    return strcasecmp(origin + 8, host) == 0;
}

/* civetweb refuses its response-header API on an upgrade request, so a
 * refusal is written here as ct_http_send would write it: the security
 * headers, the JSON error, and the connection closed after it. */
static int refuse(ct_http_req *req, int status, const char *www, const char *msg)
{
    json_t *o = json_pack("{s:i,s:s,s:s}", "status", status, "error",
                          status == 401 ? "unauthorized" : status == 403 ? "forbidden" : "unavailable", "message",
                          msg ? msg : "");
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    size_t blen = body ? strlen(body) : 0;
    char head[2048];
    size_t n = 0;
    int w = snprintf(head, sizeof head, "HTTP/1.1 %d %s\r\n", status, mg_get_response_code_text(req->conn, status));
    for (size_t i = 0; w >= 0 && (size_t)w < sizeof head - n && i < ct_http_n_security_headers; i++) {
        n += (size_t)w;
        w = snprintf(head + n, sizeof head - n, "%s: %s\r\n", ct_http_security_headers[i].name,
                     ct_http_security_headers[i].value);
    }
    if (w >= 0 && (size_t)w < sizeof head - n) {
        n += (size_t)w;
        w = snprintf(head + n, sizeof head - n,
                     "%s%s%sCache-Control: no-store\r\nContent-Type: application/json\r\nX-Request-Id: %s\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     www ? "WWW-Authenticate: " : "", www ? www : "", www ? "\r\n" : "", req->request_id, blen);
    }
    mg_disable_keep_alive(req->conn);
    if (w >= 0 && (size_t)w < sizeof head - n) {
        n += (size_t)w;
        if (mg_write(req->conn, head, n) == (int)n && blen)
            mg_write(req->conn, body, blen);
    }
    free(body);
    return status;
}

/* Before the handshake: who is it, may they read ECG, is the page ours,
 * is there room. A refusal is an ordinary HTTP answer (401, 403, 503). */
static int ws_connect(const struct mg_connection *cconn, void *cbdata)
{
    ct_http_server *srv = cbdata;
    ct_http_ws_hub *h = srv->dash ? srv->dash->hub : NULL;
    /* civetweb hands a const connection to this callback; answering a
     * refusal needs the writable one it is. */
    struct mg_connection *conn = (struct mg_connection *)cconn;
    ct_http_req req;
    memset(&req, 0, sizeof req);
    req.conn = conn;
    req.srv = srv;
    req.ri = mg_get_request_info(conn);
    req.method = "GET";
    req.method_bit = CT_HTTP_GET;
    req.path = "/ws/feed";
    req.start_us = mono_us();
    unsigned char rnd[12];
    if (RAND_bytes(rnd, sizeof rnd) == 1)
        for (size_t i = 0; i < sizeof rnd; i++)
            snprintf(req.request_id + 2 * i, 3, "%02x", rnd[i]);
    snprintf(req.caller.subject, sizeof req.caller.subject, "-");
    if (!req.ri)
        return 1;
    int status = 0;
    const char *why = "";
    ct_http_auth_result auth = h ? ct_http_authenticate(&req, &why) : CT_HTTP_AUTH_UNAVAILABLE;
    if (auth == CT_HTTP_AUTH_UNAVAILABLE)
        status = refuse(&req, 503, NULL, why[0] ? why : "the live feed is not available on this server");
    else if (auth == CT_HTTP_AUTH_INVALID)
        status = refuse(&req, 401, "Bearer realm=\"cardiotwin\", error=\"invalid_token\"", why);
    else if (auth == CT_HTTP_AUTH_NONE)
        status = refuse(&req, 401, "Bearer realm=\"cardiotwin\"",
                        "the live feed needs a session (log in) or an access token");
    else if (ct_http_caller_grant(&req, "Observation", CT_HTTP_PERM_R) == CT_HTTP_GRANT_NONE)
        status = refuse(&req, 403, "Bearer realm=\"cardiotwin\", error=\"insufficient_scope\"",
                        "the live feed needs the scope user/Observation.r (or patient/Observation.r)");
    else if (!origin_ok(conn))
        status = refuse(&req, 403, NULL, "the Origin header is not this server's own origin");
    ct_http_store_release(&req);
    if (status == 0) {
        pthread_mutex_lock(&h->lock);
        size_t free_slot = h->n_slots;
        for (size_t i = 0; i < h->n_slots; i++) {
            if (h->slots[i].used && h->slots[i].conn == cconn) {
                free_slot = i; /* a stale one of this worker: its handshake failed */
                break;
            }
            if (!h->slots[i].used && free_slot == h->n_slots)
                free_slot = i;
        }
        if (h->n_socks >= h->max_socks || free_slot == h->n_slots) {
            status = -503;
        } else {
            auth_slot *sl = &h->slots[free_slot];
            sl->used = 1;
            sl->conn = cconn;
            sl->caller = req.caller;
            memcpy(sl->request_id, req.request_id, sizeof sl->request_id);
        }
        pthread_mutex_unlock(&h->lock);
        if (status == -503) {
            char msg[128];
            snprintf(msg, sizeof msg, "too many live feeds are open (at most %zu); close a tab and retry", h->max_socks);
            status = refuse(&req, 503, NULL, msg);
        }
    }
    access_line(srv, req.ri, status ? status : 101, req.caller.subject, req.start_us);
    return status != 0;
}

static void ws_ready(struct mg_connection *conn, void *cbdata)
{
    ct_http_server *srv = cbdata;
    ct_http_ws_hub *h = srv->dash->hub;
    ws_sock *s = calloc(1, sizeof *s);
    int ok = s != NULL;
    pthread_mutex_lock(&h->lock);
    size_t k = h->n_slots;
    for (size_t i = 0; i < h->n_slots; i++)
        if (h->slots[i].used && h->slots[i].conn == conn)
            k = i;
    if (k < h->n_slots) {
        if (s)
            s->caller = h->slots[k].caller;
        h->slots[k].used = 0;
    }
    ok = ok && k < h->n_slots && h->n_socks < h->max_socks;
    pthread_mutex_unlock(&h->lock);
    if (ok) {
        s->hub = h;
        s->conn = conn;
        const struct mg_request_info *ri = mg_get_request_info(conn);
        snprintf(s->client, sizeof s->client, "%s", ri ? ri->remote_addr : "");
        ok = pthread_mutex_init(&s->lock, NULL) == 0;
        if (ok && pthread_cond_init(&s->cond, NULL) != 0) {
            pthread_mutex_destroy(&s->lock);
            ok = 0;
        }
        if (ok && pthread_create(&s->sender, NULL, sender_main, s) != 0) {
            pthread_cond_destroy(&s->cond);
            pthread_mutex_destroy(&s->lock);
            ok = 0;
        }
    }
    if (!ok) {
        free(s);
        static const char bye[] = "\x03\xf3server busy";
        mg_websocket_write(conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, bye, sizeof bye - 1);
        mg_set_user_connection_data(conn, NULL);
        return;
    }
    s->sender_running = 1;
    snprintf(s->quality, sizeof s->quality, "ok");
    pthread_mutex_lock(&h->lock);
    h->socks[h->n_socks++] = s;
    pthread_mutex_unlock(&h->lock);
    mg_set_user_connection_data(conn, s);
    send_json(s, json_pack("{s:s,s:s,s:s,s:I}", "type", "hello", "user", s->caller.subject, "role", s->caller.role,
                           "server_ms", (json_int_t)wall_ms()));
}

static int num_field(json_t *o, const char *key, double lo, double hi, double dflt, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_number(v))
        return -1;
    double d = json_number_value(v);
    if (!(d >= lo && d <= hi))
        return -1;
    *out = d;
    return 0;
}

/* Checks one client message and leaves it for the feeder. */
static void handle_text(ws_sock *s, const char *data, size_t len)
{
    if (len > CT_HTTP_WS_MSG_MAX) {
        send_error(s, "message of %zu bytes is over the limit of %d", len, CT_HTTP_WS_MSG_MAX);
        return;
    }
    json_error_t jerr;
    json_t *o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        send_error(s, "the message is not a JSON object");
        return;
    }
    ws_cmd c;
    memset(&c, 0, sizeof c);
    const char *type = json_string_value(json_object_get(o, "type"));
    if (!type) {
        send_error(s, "the message has no \"type\"");
    } else if (strcmp(type, "subscribe") == 0) {
        const char *src = json_string_value(json_object_get(o, "source"));
        const char *id = json_string_value(json_object_get(o, "id"));
        c.kind = CMD_SUBSCRIBE;
        c.source = src && strcmp(src, "patient") == 0 ? SRC_PATIENT : src && strcmp(src, "record") == 0 ? SRC_RECORD : 0;
        if (!c.source)
            send_error(s, "subscribe: \"source\" must be \"patient\" or \"record\"");
        else if (!id || !*id || strlen(id) >= sizeof c.id ||
                 (c.source == SRC_PATIENT && !ct_fhir_id_valid(id, strlen(id))))
            send_error(s, "subscribe: \"id\" must name a %s", c.source == SRC_PATIENT ? "patient (a FHIR id)" : "record");
        else if (num_field(o, "seconds", 0.0, LIVE_MAX_SECONDS, LIVE_DEFAULT_SECONDS, &c.seconds) != 0)
            send_error(s, "subscribe: \"seconds\" must be a number 0..%g", LIVE_MAX_SECONDS);
        else if (num_field(o, "speed", SPEED_MIN, SPEED_MAX, 1.0, &c.speed) != 0)
            send_error(s, "subscribe: \"speed\" must be a number %g..%g", SPEED_MIN, SPEED_MAX);
        else if (num_field(o, "start_s", 0.0, 1e9, 0.0, &c.start_s) != 0)
            send_error(s, "subscribe: \"start_s\" must be a number of seconds >= 0");
        else if (s->caller.patient[0] && c.source == SRC_RECORD)
            send_error(s, "this access is bound to Patient/%s: it cannot replay records", s->caller.patient);
        else if (s->caller.patient[0] && strcmp(id, s->caller.patient) != 0)
            send_error(s, "this access is bound to Patient/%s and cannot see another patient", s->caller.patient);
        else {
            snprintf(c.id, sizeof c.id, "%s", id);
            if (c.seconds <= 0)
                c.seconds = LIVE_DEFAULT_SECONDS;
            c.kind = -CMD_SUBSCRIBE; /* checked: queue it */
        }
    } else if (strcmp(type, "pause") == 0) {
        c.kind = -CMD_PAUSE;
    } else if (strcmp(type, "resume") == 0) {
        c.kind = -CMD_RESUME;
    } else if (strcmp(type, "speed") == 0) {
        if (num_field(o, "value", SPEED_MIN, SPEED_MAX, -1, &c.speed) != 0 || c.speed < 0)
            send_error(s, "speed: \"value\" must be a number %g..%g", SPEED_MIN, SPEED_MAX);
        else
            c.kind = -CMD_SPEED;
    } else if (strcmp(type, "seek") == 0) {
        if (num_field(o, "t_s", 0.0, 1e9, -1, &c.t_s) != 0 || c.t_s < 0)
            send_error(s, "seek: \"t_s\" must be a number of seconds >= 0");
        else
            c.kind = -CMD_SEEK;
    } else {
        send_error(s, "unknown message type \"%.40s\" (subscribe, pause, resume, speed, seek)", type);
    }
    json_decref(o);
    if (c.kind >= 0)
        return;
    c.kind = -c.kind;
    pthread_mutex_lock(&s->lock);
    int full = s->n_cmds >= MAX_CMDS;
    if (!full)
        s->cmds[s->n_cmds++] = c;
    pthread_mutex_unlock(&s->lock);
    if (full)
        send_error(s, "too many messages at once; wait for the answers");
}

static int ws_data(struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    (void)cbdata;
    ws_sock *s = mg_get_user_connection_data(conn);
    if (!s)
        return 0;
    pthread_mutex_lock(&s->lock);
    int dropped = s->dropped;
    pthread_mutex_unlock(&s->lock);
    if (dropped)
        return 0;
    int opcode = bits & 0x0f;
    int fin = (bits & 0x80) != 0;
    switch (opcode) {
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE:
        return 0;
    case MG_WEBSOCKET_OPCODE_PING:
        enqueue(s, MG_WEBSOCKET_OPCODE_PONG, data, len <= 125 ? len : 125);
        return 1;
    case MG_WEBSOCKET_OPCODE_PONG:
        return 1;
    case MG_WEBSOCKET_OPCODE_TEXT:
        if (!fin)
            send_error(s, "fragmented messages are not accepted; send each message in one frame");
        else
            handle_text(s, data, len);
        return 1;
    case MG_WEBSOCKET_OPCODE_CONTINUATION:
        return 1; /* the rest of a fragmented message, refused above */
    default:
        send_error(s, "only JSON text messages are accepted");
        return 1;
    }
}

static void ws_close(const struct mg_connection *conn, void *cbdata)
{
    ct_http_server *srv = cbdata;
    ct_http_ws_hub *h = srv->dash->hub;
    ws_sock *s = mg_get_user_connection_data(conn);
    if (!s)
        return;
    mg_set_user_connection_data(conn, NULL);
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->n_socks; i++)
        if (h->socks[i] == s) {
            h->socks[i] = h->socks[--h->n_socks];
            break;
        }
    s->gone = 1;
    while (s->refs > 0)
        pthread_cond_wait(&h->cond, &h->lock);
    pthread_mutex_unlock(&h->lock);
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    if (s->sender_running)
        pthread_join(s->sender, NULL);
    rp_close_detector(&s->rp);
    json_decref(s->beats);
    free(s->items);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* ---- life of the hub ---------------------------------------------------------------------------- */

static int hub_new(ct_http_server *srv, ct_http_ws_hub **out, ct_error *err)
{
    ct_http_ws_hub *h = calloc(1, sizeof *h);
    if (!h)
        return ct_error_set(err, CT_ENOMEM, "out of memory for the live feed");
    h->srv = srv;
    size_t half = (size_t)(srv->opt.threads / 2);
    h->max_socks = half < 1 ? 1 : half > CT_HTTP_WS_MAX_SOCKETS ? CT_HTTP_WS_MAX_SOCKETS : half;
    h->n_slots = (size_t)srv->opt.threads + 1;
    h->socks = calloc(h->max_socks, sizeof *h->socks);
    h->slots = calloc(h->n_slots, sizeof *h->slots);
    pthread_condattr_t ca;
    int ok = h->socks && h->slots && pthread_condattr_init(&ca) == 0;
    if (ok) {
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        ok = pthread_cond_init(&h->cond, &ca) == 0;
        pthread_condattr_destroy(&ca);
        if (ok && pthread_mutex_init(&h->lock, NULL) != 0) {
            pthread_cond_destroy(&h->cond);
            ok = 0;
        }
    }
    if (!ok) {
        free(h->socks);
        free(h->slots);
        free(h);
        return ct_error_set(err, CT_ENOMEM, "cannot set up the live feed");
    }
    *out = h;
    return 0;
}

int ct_http_dash_init(ct_http_server *srv, ct_error *err)
{
    struct ct_http_dash *d = calloc(1, sizeof *d);
    if (!d)
        return ct_error_set(err, CT_ENOMEM, "out of memory for the dashboard");
    srv->dash = d;
    if (srv->opt.web_root) {
        char real[PATH_MAX];
        if (!realpath(srv->opt.web_root, real))
            return ct_error_set(err, CT_ENOTFOUND, "web root %s: %s", srv->opt.web_root, strerror(errno));
        struct stat sb;
        if (stat(real, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return ct_error_set(err, CT_EINVAL, "web root %s is not a directory", srv->opt.web_root);
        size_t n = strlen(real);
        if (n >= sizeof d->web_root)
            return ct_error_set(err, CT_ELIMIT, "web root %s: path too long", srv->opt.web_root);
        memcpy(d->web_root, real, n + 1);
        d->web_root_len = n;
        /* "/" as the root would make every path "inside" it. */
        if (n == 1)
            return ct_error_set(err, CT_EINVAL, "web root %s is the file system root", srv->opt.web_root);
    }
    if (!srv->db_path[0])
        return 0;
    return hub_new(srv, &d->hub, err);
}

int ct_http_dash_start(ct_http_server *srv, ct_error *err)
{
    ct_http_ws_hub *h = srv->dash ? srv->dash->hub : NULL;
    if (!h)
        return 0;
    int rc = ct_store_open(srv->db_path, &h->st, err);
    if (rc != 0) {
        ct_error_prefix(err, "the live feed");
        return rc;
    }
    if (pthread_create(&h->feeder, NULL, feeder_main, h) != 0)
        return ct_error_set(err, CT_ENOMEM, "cannot start the live feed's thread");
    h->feeder_running = 1;
    mg_set_websocket_handler(srv->mg, "/ws/feed", ws_connect, ws_ready, ws_data, ws_close, srv);
    return 0;
}

void ct_http_dash_free(ct_http_server *srv)
{
    struct ct_http_dash *d = srv ? srv->dash : NULL;
    if (!d)
        return;
    ct_http_ws_hub *h = d->hub;
    if (h) {
        if (h->feeder_running) {
            pthread_mutex_lock(&h->lock);
            h->stop = 1;
            pthread_cond_broadcast(&h->cond);
            pthread_mutex_unlock(&h->lock);
            pthread_join(h->feeder, NULL);
        }
        if (h->ticks > 0)
            ct_http_log(srv, CT_HTTP_LOG_INFO, "live feed: %lld ticks with viewers, %.3f ms mean, %.3f ms longest",
                        (long long)h->ticks, (double)h->tick_us_sum / (double)h->ticks / 1000.0,
                        (double)h->tick_us_max / 1000.0);
        ct_store_close(h->st);
        pthread_cond_destroy(&h->cond);
        pthread_mutex_destroy(&h->lock);
        free(h->socks);
        free(h->slots);
        free(h);
    }
    free(d);
    srv->dash = NULL;
}
