/* Inside the twin room: the patient table, a patient's live state, and the
 * functions the room's files share. Not a public header. */
#ifndef CARDIOTWIN_TWIN_INTERNAL_H
#define CARDIOTWIN_TWIN_INTERNAL_H

#include <pthread.h>

#include "cardiotwin/twin.h"

/* Counts behind an alert, from its onset on. */
typedef struct tw_counts {
    int64_t beats, pvc, sveb, pauses, vruns;
} tw_counts;

/* One policy alert from RAISED until its CLEARED has been stored. Shared by
 * the pending transitions that name it (refs). */
typedef struct tw_alert {
    int refs;
    int open;                      /* the policy has not cleared it yet */
    uint64_t policy_id;            /* the evaluator's id */
    int64_t row_id;                /* twin_alert.id, 0 until RAISED is stored */
    int64_t stream_id;             /* twin_stream.id */
    ct_policy_rule rule;
    ct_policy_priority priority;
    int64_t onset_sample;
    int64_t onset_ms;
    tw_counts counts;              /* beats from onset_sample on, as they come */
    char report_id[CT_FHIR_ID_MAX + 1];
    int64_t report_version;        /* stored versions so far */
    char summary[256];
    int acknowledged;
} tw_alert;

/* An alert transition waiting to be stored: a copy of what the policy said,
 * with its strings kept, and the counts at that moment. */
typedef struct tw_pending {
    tw_alert *alert;
    ct_policy_alert a;             /* values.quality/rhythm point into the strings below */
    char quality[16], rhythm[16], worst_quality[16], worst_rhythm[16];
    char live_rhythm[16];          /* the detector's rhythm label at that moment */
    tw_counts counts;
    int64_t stream_id;
    int64_t t0_ms;
    double fs_hz;
    char note[160];                /* "no ECG was received for 30 s" when a gap caused it */
    int restarted;                 /* ended because the previous run of the server stopped */
} tw_pending;

/* The live state of one patient. Everything below `lock` is guarded by it. */
typedef struct tw_patient {
    pthread_mutex_t lock;
    char id[CT_FHIR_ID_MAX + 1];
    struct ct_twin *twin;          /* the sinks' way back */

    /* the stream */
    int has_stream;
    ct_store_twin_stream stream;   /* as stored (next_sample kept current) */
    int n_leads;
    int lead_codes[CT_ECG_MAX_LEADS];
    /* the current segment */
    int64_t seg_id, seg_record_id, seg_first_sample;
    int64_t signal_ids[CT_ECG_MAX_LEADS];
    double gain[CT_ECG_MAX_LEADS];
    double baseline[CT_ECG_MAX_LEADS];

    /* analysis; det_base is the stream index of the detector's sample 0 */
    ct_ecg_detector *det;
    int64_t det_base;
    ct_policy_eval *ev;
    int say_ok;                    /* tell the policy the new detector sees again */
    int64_t gap_from, gap_to;      /* the last gap (stream samples), for reports */

    /* live view */
    int16_t *ring;                 /* planar: lead l at ring + l * ring_cap */
    size_t ring_cap, ring_n;       /* frames */
    int64_t ring_end;              /* stream index after the newest frame */
    ct_twin_live_beat *beats;
    size_t beats_cap, beats_n, beats_head;
    char rhythm[16];
    char quality[16];
    double hr_bpm;
    int64_t updated_ms;

    /* alerts */
    tw_alert *open[CT_POLICY_N_RULES];
    tw_pending *pending;
    size_t n_pending, cap_pending;
    int pending_overflow;          /* a transition could not even be queued */

    /* beats found and not yet stored (beats.c), oldest first */
    ct_store_twin_beat *beat_q;
    size_t n_beat_q, cap_beat_q;
    size_t beats_lost;             /* could not even be queued (out of memory); said once */

    /* per call */
    size_t call_beats;
} tw_patient;

struct ct_twin {
    ct_twin_options opt;
    char *upstream;
    ct_policy *owned_policy;
    const ct_policy *policy;
    char device_id[CT_FHIR_ID_MAX + 1];
    pthread_mutex_t table_lock;
    tw_patient **patients;         /* sorted by id */
    size_t n_patients, cap_patients;
};

struct ct_twin_ticket {
    ct_twin *t;
    tw_patient *p;
    const ct_fhir_ecg *ecg;
    char obs_id[CT_FHIR_ID_MAX + 1];
    ct_twin_verdict verdict;
    int new_stream;                /* end the live stream (if any), start another */
    int new_segment;               /* same stream, new stored segment */
    int64_t start_sample;          /* stream index of the Observation's first sample */
    int64_t skip;                  /* leading samples equal to what is stored */
    int64_t n_new;                 /* samples to take */
    int64_t gap_samples;           /* missing before start_sample (+ skip) */
    int bridge;                    /* the gap is stored as missing samples */
    int map[CT_ECG_MAX_LEADS];     /* stream lead l is ecg lead map[l] */
    int64_t t0_ms;                 /* new stream: its t0 */
    /* filled by write */
    int written;
    ct_store_twin_stream stream;
    int64_t seg_id, seg_record_id;
    int64_t signal_ids[CT_ECG_MAX_LEADS];
};

/* twin.c */
int tw_lock(const ct_twin *t, tw_patient *p, ct_error *err);
void tw_unlock(tw_patient *p);
/* Finds (create 1: or adds) a patient; NULL with err filled. */
tw_patient *tw_patient_get(ct_twin *t, const char *id, int create, ct_error *err);
int tw_random_id(char out[37]);
int64_t tw_now_ms(void);

/* ingest.c: analysis of a patient's stream */
int tw_analysis_start(ct_twin *t, tw_patient *p, int64_t first_sample, ct_error *err);
void tw_analysis_free(tw_patient *p);
/* Finishes the detector and the policy (alerts cleared as ended). */
void tw_analysis_finish(ct_twin *t, tw_patient *p);

/* beats.c: the beats the detector found, queued in on_beat and stored in
 * batches outside any transaction (never one per beat). */
void tw_beat_queue(tw_patient *p, const ct_ecg_beat *b);
/* Stores every queued beat in one operation; on failure they stay queued
 * (for the next call) and err says why. *stored: beats written. */
int tw_beats_write(ct_twin *t, tw_patient *p, ct_store *st, size_t *stored, ct_error *err);
void tw_beats_free(tw_patient *p);

/* report.c */
/* Queues a policy transition (called from the policy's sink). */
void tw_pending_add(ct_twin *t, tw_patient *p, const ct_policy_alert *a);
/* Stores the pending transitions in order; stops at the first failure. */
int tw_pending_write(ct_twin *t, tw_patient *p, ct_store *st, size_t *written, ct_error *err);
void tw_pending_clear(tw_patient *p);
void tw_alert_release(tw_alert *a);
/* Beat counts since `from` found in the recent-beat ring. */
void tw_counts_from_ring(const tw_patient *p, int64_t from, int64_t to, double pause_ms, tw_counts *c);
/* Ends the alerts a previous run left open (ct_twin_new). */
int tw_end_orphan_alerts(ct_twin *t, ct_store *st, ct_error *err);
/* Writes the detector Device if absent. */
int tw_device_ensure(ct_twin *t, ct_store *st, ct_error *err);

/* index.c: search index rows of a resource the twin writes, by the fhir
 * room's extractor. tw_index_free is safe after a failed extract. */
typedef struct tw_index {
    ct_store_index_entry *e;
    size_t n;
    ct_fhir_index src;
} tw_index;
int tw_index_extract(const json_t *res, const char *type, tw_index *out);
void tw_index_free(tw_index *x);

#endif
