/* twin: the live state of each monitored patient; it wires stream -> detect
 * -> policy -> sinks, so that a record imported from MIT-BIH and an
 * Observation posted by a bedside gateway go through the same detector.
 *
 * ct_twin_detect_record runs the streaming detector (the ecg room) over a
 * whole decoded record, exactly as the live pipeline would, and returns what
 * it found as WFDB annotations: beats (N, A, V, F, Q codes) and rhythm
 * changes (RHYTHM with aux "(AFIB", "(N", ...), in time order, so that they
 * can be written as an annotation file or scored by the ec57 room. lead is a
 * signal index, or -1 for all leads. On success *out is malloc'd (free with
 * free()) and *n_out is its length. */
#ifndef CARDIOTWIN_TWIN_H
#define CARDIOTWIN_TWIN_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/client.h"
#include "cardiotwin/ecg.h"
#include "cardiotwin/error.h"
#include "cardiotwin/fhir.h"
#include "cardiotwin/policy.h"
#include "cardiotwin/store.h"
#include "cardiotwin/wfdb.h"

int ct_twin_detect_record(const ct_wfdb_header *hdr, const ct_wfdb_signals *sig, int lead /* -1 = all */, ct_wfdb_annotation **out, size_t *n_out, ct_error *err);

/* The same run, with the detector's own beats and events delivered to sink
 * as they are found (for callers that want confidences or features). The
 * record is pushed in chunks of at most 4096 frames; a sample marked invalid
 * by WFDB (CT_WFDB_INVALID_SAMPLE) is pushed as an absent lead. flags:
 * CT_TWIN_KEEP_ARTIFACTS also delivers the detections the classifier drops
 * as artefacts (ct_ecg_beat.is_artifact), for retraining. */
#define CT_TWIN_KEEP_ARTIFACTS 1u
int ct_twin_run_record(const ct_wfdb_header *hdr, const ct_wfdb_signals *sig, int lead,
                       const ct_ecg_sink *sink, unsigned flags, ct_error *err);

/* The WFDB annotation that stands for a detector event (RHYTHM '+' with the
 * label as aux, NOISE '~' for quality, NOTE '"' for pauses, asystole and
 * ventricular runs), or 0 when the event has no annotation. */
int ct_twin_event_annotation(const ct_ecg_event *ev, ct_wfdb_annotation *out);

/* ======================================================================== */
/* The live twin (src/twin/: twin.c ingest.c beats.c report.c index.c outbox.c; docs/twin.md) */
/* ======================================================================== */
/* One ct_twin per server holds the live state of every monitored patient:
 * the patient's ECG stream (successive Observations stitched by their
 * effective time), the detector running on it, the policy evaluator fed by
 * the detector, and a live view for the dashboard. Each alert transition of
 * the policy becomes a version of a DiagnosticReport with its derived
 * Observations and a Provenance, stored with the alert row, an outbox row
 * (when an upstream is configured) and an audit entry in one transaction.
 *
 * Threads: every entry point may be called from any thread at once. Each
 * patient has its own lock (work on two patients runs in parallel); a
 * short lock guards the patient table. The ct_store passed in is the
 * caller's connection, used by one thread at a time as store.h requires.
 * Lock order: a patient's lock is taken before the database's write lock,
 * never after; so call ct_twin_ecg_begin before ct_store_begin (see the
 * sequence below). A patient lock that cannot be had within
 * lock_timeout_ms gives CT_ELIMIT ("busy, retry"), never a deadlock. */
typedef struct ct_twin ct_twin;

/* The detector Device the twin writes at start, "cardiotwin-ecg-detector-"
 * followed by the version (a new software version is a new Device). */
#define CT_TWIN_DEVICE_NAME "cardiotwin ECG detector"
#define CT_TWIN_DEVICE_ID_PREFIX "cardiotwin-ecg-detector-"
/* System of the identifier of every report and derived Observation the
 * twin writes (value: its id here), so that an upstream server can create
 * or update it conditionally, exactly once. */
#define CT_TWIN_IDENTIFIER_SYSTEM CT_FHIR_CANONICAL_BASE "/twin-resource"

/* Taps on what the twin sees, for a live feed (the dashboard's WebSocket)
 * and for tests. Called with the patient's lock held, from inside the
 * ingesting call: copy what you need and return; never call the twin back.
 * Samples are stream indices. Any callback may be NULL. */
typedef struct ct_twin_observer {
    void (*on_beat)(void *ctx, const char *patient_id, const ct_ecg_beat *beat);
    void (*on_event)(void *ctx, const char *patient_id, const ct_ecg_event *event);
    void (*on_alert)(void *ctx, const char *patient_id, const ct_policy_alert *alert);
    void *ctx;
} ct_twin_observer;

typedef struct ct_twin_options {
    const ct_policy *policy;       /* borrowed, must outlive the twin; NULL: the default policy */
    double align_tolerance_samples;/* an Observation continues the stream if it starts within this
                                      many samples of where the last ended (default 0.5, max 0.5) */
    double gap_bridge_max_s;       /* gaps up to this are stored as missing samples and shown to the
                                      detector as leads off; longer ones start a new segment after a
                                      lead-off marker of this length (default 60, 1..3600) */
    size_t max_patients;           /* patients monitored at once (default 1000, max 100000) */
    double live_seconds;           /* samples kept per lead for the live view (default 30, 1..600) */
    size_t live_beats;             /* recent beats kept (default 512, 16..65536) */
    size_t max_pending;            /* alert transitions a patient may hold while the store fails
                                      (default 256, 8..65536); beyond, ingest refuses with CT_ELIMIT */
    size_t max_pending_beats;      /* beats a patient may hold while the store fails (default 20000,
                                      1000..1000000, 40 bytes each); beyond, ingest refuses with
                                      CT_ELIMIT */
    size_t max_sources;            /* source Observations named by one report (default 100, 1..1000) */
    long lock_timeout_ms;          /* wait for a patient's lock (default 10000) */
    double stream_idle_end_s;      /* at start, a live stream idle this long is ended instead of
                                      restored (default 86400, 60..31536000) */
    const char *upstream_base_url; /* NULL: no outbox rows; else reports are queued for it */
    ct_twin_observer observer;     /* copied; all NULL: none */
} ct_twin_options;

void ct_twin_options_default(ct_twin_options *o);

/* Creates the twin: checks the options, writes the detector Device if it is
 * not stored yet (audited), and restores every live stream of the database
 * (their stitching resumes where it stopped; their detectors start afresh,
 * and alerts left open by the previous run are ended with a final report
 * saying so). Streams idle for stream_idle_end_s are ended instead.
 * Restored streams count even beyond max_patients. st is used during the
 * call only. */
int ct_twin_new(const ct_twin_options *opt, ct_store *st, ct_twin **out, ct_error *err);
void ct_twin_free(ct_twin *t);

/* The id of the detector Device ("cardiotwin-ecg-detector-0.1.0"). */
const char *ct_twin_device_id(const ct_twin *t);

/* ---- ECG in ------------------------------------------------------------ */

/* What the twin made of an Observation. */
typedef enum ct_twin_verdict {
    CT_TWIN_APPENDED = 0,   /* continued the stream where it ended */
    CT_TWIN_STARTED,        /* began a new stream (first Observation, or sampling rate or leads
                               changed: the previous stream ended) */
    CT_TWIN_GAP,            /* continued the stream after a gap (gap_ms); see new_segment */
    CT_TWIN_DUPLICATE,      /* the same Observation id, or the same samples at the same time,
                               was taken before: nothing to do */
    CT_TWIN_IGNORED         /* a status the twin does not analyse (registered, cancelled,
                               entered-in-error, unknown) */
} ct_twin_verdict;

typedef struct ct_twin_ingest_result {
    ct_twin_verdict verdict;
    int new_segment;          /* a new stored segment began (gap longer than gap_bridge_max_s,
                                 or a new calibration of the leads) */
    int64_t stream_seq;       /* the patient's stream number (1, 2, ...), as stored once taken */
    int64_t start_sample;     /* the Observation's first sample in the stream */
    int64_t n_samples;        /* samples taken (after an identical overlap: only the new ones) */
    int64_t overlap_samples;  /* leading samples equal to what the stream already held */
    int64_t gap_ms;           /* the gap before it (CT_TWIN_GAP), else 0 */
    size_t beats;             /* beats the detector reported during this call */
    size_t beats_stored;      /* beats stored during this call (this call's and earlier ones that
                                 waited for the store) */
    size_t beats_pending;     /* beats still waiting for the store (an error below) */
    size_t reports_written;   /* alert transitions stored during this call */
    size_t reports_pending;   /* transitions still waiting for the store (an error below) */
    int report_error;         /* 0, or the CT_E... code of the last failed write of a report or of
                                 the beats (report_error_msg says which) */
    char report_error_msg[CT_ERROR_MSG_MAX];
    char message[256];        /* one line for the caller's log: what happened */
} ct_twin_ingest_result;

typedef struct ct_twin_ticket ct_twin_ticket;

/* Ingesting in three steps, so that an HTTP handler stores the Observation
 * resource and its samples in one transaction:
 *
 *   ct_twin_ecg_begin(twin, st, &ecg, id, &ticket, &res, &err);   // locks the patient
 *   ct_store_begin(st); ...write the Observation and its audit entry...
 *   ct_twin_ecg_write(ticket, st, &err);                            // samples, stream row
 *   ok = ct_store_commit(st) == 0;  (or ct_store_rollback)
 *   ct_twin_ecg_end(ticket, st, ok, &res, &err);                    // detector, reports; unlocks
 *
 * begin decides, under the patient's lock and outside any transaction.
 * Refusals (nothing is written; the message names the Observation, the
 * patient and the times at fault): CT_EEXIST when the Observation overlaps
 * samples already taken with different data, or reaches back before the
 * stream's current stored segment (HTTP 409); CT_EUNSUPPORTED for a
 * sampling rate outside the detector's 125..1000 Hz and CT_EINVAL for an
 * id that is not a FHIR id, no patient, a lead given twice or a gain out
 * of range (HTTP 422); CT_ELIMIT when the patient is busy beyond
 * lock_timeout_ms, the twin already monitors max_patients, or max_pending
 * reports wait for the database (HTTP 503, retry later). Success with
 * res.verdict CT_TWIN_DUPLICATE or CT_TWIN_IGNORED and *ticket NULL when
 * there is nothing to do. Otherwise *ticket holds the patient's lock (and
 * a pointer to ecg, which must stay valid) until end, which must be called (with committed 0 after a rollback: the twin
 * then forgets the Observation). write must run inside the caller's
 * transaction. end runs outside any transaction: it feeds the detector and
 * the policy, stores the beats the detector found (with any that waited
 * from earlier calls) in one operation of their own, never one write per
 * beat, then writes each alert transition in a transaction of its own;
 * beats or a report the store refuses stay pending and are retried by the
 * next call for that patient (res.report_error says why). A beat is stored
 * once whatever the retries (ct_store_twin_beats_insert ignores a beat it
 * holds); beats still pending when the process stops are lost, as pending
 * reports are. begin refuses with CT_ELIMIT while max_pending_beats wait. */
int ct_twin_ecg_begin(ct_twin *t, ct_store *st, const ct_fhir_ecg *ecg, const char *observation_id,
                      ct_twin_ticket **ticket, ct_twin_ingest_result *res, ct_error *err);
int ct_twin_ecg_write(ct_twin_ticket *ticket, ct_store *st, ct_error *err);
int ct_twin_ecg_end(ct_twin_ticket *ticket, ct_store *st, int committed, ct_twin_ingest_result *res,
                    ct_error *err);

/* The three steps at once, the samples in a transaction of their own (for
 * callers that stored the Observation already, tests and tools). Must be
 * called outside a transaction. */
int ct_twin_ingest_ecg(ct_twin *t, ct_store *st, const ct_fhir_ecg *ecg, const char *observation_id,
                       ct_twin_ingest_result *res, ct_error *err);

/* Ends a patient's stream (discharge, end of a recording): the detector is
 * finished (its last beats are stored), the policy clears every open alert
 * as ended by the stream, and those reports are written. The next
 * Observation starts a new stream; so does one with another sampling rate
 * or lead set, which finishes the old stream's detector the same way.
 * CT_ENOTFOUND when the patient has no live stream. */
int ct_twin_stream_end(ct_twin *t, ct_store *st, const char *patient_id, ct_error *err);

/* Retries the beats and alert transitions still pending for every patient
 * (after a store failure); returns how many transitions are still pending
 * in *n_pending (beats: ct_twin_live_read's beats_pending), and the last
 * error if any write failed. */
int ct_twin_flush(ct_twin *t, ct_store *st, size_t *n_pending, ct_error *err);

/* Marks an alert acknowledged by `who` (audited as "acknowledge", in one
 * transaction with the alert row). CT_ENOTFOUND: no such alert;
 * CT_EEXIST: already acknowledged (the message says by whom). */
int ct_twin_acknowledge(ct_twin *t, ct_store *st, int64_t alert_id, const ct_audit_actor *who,
                        ct_error *err);

/* ---- the live view ---------------------------------------------------------- */

typedef struct ct_twin_live_beat {
    int64_t sample;           /* stream index of the R peak */
    int64_t t_ms;             /* its UTC time */
    char cls;                 /* 'N', 'A', 'V', 'F', 'Q' */
    float hr_bpm;             /* the detector's averaged rate at that beat, 0 unknown */
    float rr_ms;              /* interval from the previous beat, 0 for the first */
} ct_twin_live_beat;

typedef struct ct_twin_live_alert {
    int64_t id;               /* the alert row (ct_twin_acknowledge); 0 while its report waits
                                 for the store */
    ct_policy_rule rule;
    ct_policy_priority priority;
    int64_t onset_ms;
    char report_id[CT_FHIR_ID_MAX + 1];
    char summary[256];
    int acknowledged;
} ct_twin_live_alert;

typedef struct ct_twin_live {
    char patient_id[CT_FHIR_ID_MAX + 1];
    int64_t stream_seq;       /* 0 when the patient has no live stream */
    int64_t t0_ms;            /* time of stream sample 0 */
    double fs_hz;
    int n_leads;
    int lead_codes[CT_ECG_MAX_LEADS];  /* MDC codes */
    double gain_adu_per_mv[CT_ECG_MAX_LEADS];
    double baseline_adu[CT_ECG_MAX_LEADS];
    int64_t next_sample;      /* where the stream ends */
    int64_t updated_ms;       /* wall clock of the last Observation taken */
    int64_t first_sample;     /* stream index of samples[l][0] */
    size_t n_samples;         /* per lead; missing samples are CT_FHIR_SAMPLE_MISSING */
    int16_t *samples[CT_ECG_MAX_LEADS];
    size_t n_beats;           /* oldest first */
    ct_twin_live_beat *beats;
    double hr_bpm;            /* the detector's averaged rate at the last beat, 0 unknown */
    char rhythm[16];          /* the detector's rhythm label ("(N", "(AFIB" ...), "" unknown */
    char quality[16];         /* "ok", "noise", "flat", "lead-off" */
    size_t n_alerts;          /* open alerts, in rule order */
    ct_twin_live_alert alerts[CT_POLICY_N_RULES];
    size_t pending;           /* alert transitions waiting for the store */
    size_t beats_pending;     /* beats waiting for the store */
    size_t memory_bytes;      /* what the twin holds for this patient */
} ct_twin_live;

/* A copy of the patient's live state, the last `seconds` of samples (at
 * most live_seconds; 0: all that is kept). CT_ENOTFOUND for a patient the
 * twin has not seen. Free with ct_twin_live_free. */
int ct_twin_live_read(ct_twin *t, const char *patient_id, double seconds, ct_twin_live *out,
                      ct_error *err);
void ct_twin_live_free(ct_twin_live *v);

/* The ids of the patients the twin holds (malloc'd array of n; free()). */
int ct_twin_patients(ct_twin *t, char (**ids)[CT_FHIR_ID_MAX + 1], size_t *n, ct_error *err);

/* Bytes held for one patient at this configuration (detector, evaluator,
 * rings), for capacity planning: fs_hz and n_leads of its stream. */
size_t ct_twin_patient_memory_bytes(const ct_twin *t, const char *patient_id);

/* ---- pushing reports upstream (src/twin/outbox.c) ---------------------------- */

typedef struct ct_twin_push_options {
    const char *base_url;      /* the upstream FHIR base, http(s):// (required) */
    const char *bearer_token;  /* NULL: no Authorization */
    int max_attempts;          /* a row is given up ("failed") after this many (default 50, 1..1000) */
    long backoff_base_ms;      /* wait before the second attempt, doubled each time (default 5000) */
    long backoff_max_ms;       /* longest wait (default 600000) */
    size_t batch;              /* rows taken per call (default 32, 1..1000) */
} ct_twin_push_options;

void ct_twin_push_options_default(ct_twin_push_options *o);

typedef struct ct_twin_push_result {
    size_t sent;               /* Bundles delivered (each settles every row of its report up to the
                                  version it carried) */
    size_t retry;              /* rows to try again later (5xx, 408, 429, network) */
    size_t failed;             /* rows given up (another 4xx, a report gone, max_attempts) */
    char last_error[CT_ERROR_MSG_MAX];
} ct_twin_push_result;

/* Delivers the outbox rows due at now_ms, oldest first, each as one FHIR
 * transaction Bundle POSTed to base_url: the report's latest version and its
 * result Observations, each a conditional update on its identifier
 * (CT_TWIN_IDENTIFIER_SYSTEM), so a retry after a lost answer creates
 * nothing twice and a later version supersedes an earlier one. References
 * to resources that live only here (the source ECG, the Device) are left
 * out; the subject is sent as it is (upstream must know the patient by the
 * same id). One attempt per row per call (the outbox does the retrying,
 * durably): a transient failure moves the row's next attempt by the
 * backoff, any other refusal fails it with the server's diagnostics.
 * Returns 0 unless the store failed; delivery failures are in res. Uses st
 * outside a transaction, and c from this thread only. */
int ct_twin_push(ct_store *st, ct_client *c, const ct_twin_push_options *o, int64_t now_ms,
                 ct_twin_push_result *res, ct_error *err);

#endif
