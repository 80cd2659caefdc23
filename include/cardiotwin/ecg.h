/* ecg: pure signal processing on integer ECG samples: the streaming beat
 * detector (QRS detection on one or more leads), beat classes in the AAMI
 * EC57 sense, rhythm episodes and signal quality. No I/O, no FHIR, no SQLite,
 * and no allocation per sample: all memory is taken in ct_ecg_detector_new.
 *
 * Streaming contract: samples are pushed in frames (one sample of every lead)
 * in any chunking; the events reported are the same whether a record is
 * pushed one frame at a time or whole. Each beat is reported within
 * CT_ECG_MAX_LATENCY_MS of its fiducial point (the R peak).
 *
 * The first CT_ECG_LEARN_MS of a stream are spent learning the signal
 * levels: no beat is reported before then (a lead that comes back after
 * being off, flat or dead re-learns its own level for half as long while the
 * other leads go on). docs/detector.md describes the algorithm, its parameters and the
 * results measured on the MIT-BIH Arrhythmia Database. */
#ifndef CARDIOTWIN_ECG_H
#define CARDIOTWIN_ECG_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/error.h"

#define CT_ECG_MAX_LEADS 12
#define CT_ECG_MIN_FS_HZ 125.0
#define CT_ECG_MAX_FS_HZ 1000.0
#define CT_ECG_MAX_LATENCY_MS 300
#define CT_ECG_LEARN_MS 2000

typedef struct ct_ecg_config {
    double fs_hz;                           /* 125..1000 */
    int n_leads;                            /* 1..CT_ECG_MAX_LEADS */
    double gain_adu_per_mv[CT_ECG_MAX_LEADS]; /* ADC units per mV, per lead (> 0) */
    int baseline_adu[CT_ECG_MAX_LEADS];     /* ADC value of 0 mV, per lead */
    int keep_artifacts;   /* 1: also deliver detections judged artefacts (is_artifact
                             set), e.g. to retrain the classifier; 0: drop them */
} ct_ecg_config;

/* AAMI EC57 beat classes, written with MIT mnemonics. */
typedef enum ct_ecg_beat_class {
    CT_BEAT_N = 0, /* normal and bundle branch block beats: 'N' */
    CT_BEAT_S = 1, /* supraventricular ectopic: 'A' */
    CT_BEAT_V = 2, /* ventricular ectopic: 'V' */
    CT_BEAT_F = 3, /* fusion of ventricular and normal: 'F' */
    CT_BEAT_Q = 4  /* paced or unclassifiable: 'Q' */
} ct_ecg_beat_class;

/* Number of morphology/rhythm features computed for each beat (see
 * docs/detector.md for their meaning); they feed the beat classifier and are
 * handed to the sink so that the classifier can be retrained. */
#define CT_ECG_N_FEATURES 20

typedef struct ct_ecg_beat {
    int64_t sample;          /* fiducial point, in samples since the stream began */
    ct_ecg_beat_class cls;
    float confidence;        /* 0..1 */
    int64_t reported_at;     /* sample count pushed when the beat was reported */
    float rr_ms;             /* interval from the previous beat, 0 for the first */
    float hr_bpm;            /* averaged heart rate (last 8 normal intervals), 0 if unknown */
    int template_id;         /* morphology cluster the beat joined (0..), -1 if none */
    const float *features;   /* CT_ECG_N_FEATURES values, valid during the callback only */
    int is_artifact;         /* only with keep_artifacts: the classifier judged this
                                detection an artefact, not a beat */
} ct_ecg_beat;

/* Rhythm and quality events: an episode opens (onset) and later closes. */
typedef enum ct_ecg_event_kind {
    CT_EVENT_RHYTHM = 0,     /* a rhythm episode starts; label e.g. "(N", "(AFIB", "(VT", "(B", "(T" */
    CT_EVENT_QUALITY = 1,    /* signal quality changes; label "ok", "noise", "flat", "lead-off" */
    CT_EVENT_PAUSE = 2,      /* a pause (RR over the pause threshold) ended at `sample` */
    CT_EVENT_ASYSTOLE = 3,   /* no beat for the asystole threshold */
    CT_EVENT_VRUN = 4        /* couplet, triplet or run of V beats; label "couplet", "triplet", "run" */
} ct_ecg_event_kind;

typedef struct ct_ecg_event {
    ct_ecg_event_kind kind;
    int64_t sample;          /* when the event starts (sample index) */
    int64_t end_sample;      /* when it ends, or -1 if still open */
    int lead;                /* for quality events, the lead (-1: all leads); else -1 */
    double value;            /* e.g. heart rate in bpm, pause length in ms, run length in beats */
    char label[16];
} ct_ecg_event;

/* Where the detector delivers what it finds; called from inside push (and
 * finish). Either callback may be NULL. */
typedef struct ct_ecg_sink {
    void (*on_beat)(void *ctx, const ct_ecg_beat *beat);
    void (*on_event)(void *ctx, const ct_ecg_event *event);
    void *ctx;
} ct_ecg_sink;

typedef struct ct_ecg_detector ct_ecg_detector;

int ct_ecg_detector_new(const ct_ecg_config *cfg, const ct_ecg_sink *sink,
                        ct_ecg_detector **out, ct_error *err);
void ct_ecg_detector_free(ct_ecg_detector *d);

/* Pushes n frames: leads[l][i] is sample i of lead l (planar, ADC units).
 * A lead may be NULL to say it is absent for this chunk (lead off).
 * Returns 0, or CT_EINVAL for a NULL detector/leads array, or after finish. */
int ct_ecg_detector_push(ct_ecg_detector *d, const int16_t *const *leads, size_t n);

/* Flushes what is still pending at the end of a finite record: closes open
 * episodes (end_sample set). No beat pending at the end is reported, since
 * its decision window is incomplete. Push is refused afterwards. */
void ct_ecg_detector_finish(ct_ecg_detector *d);

/* Bytes the detector holds (its state and every buffer), fixed at creation. */
size_t ct_ecg_detector_memory_bytes(const ct_ecg_detector *d);

/* Samples pushed so far. */
int64_t ct_ecg_detector_samples(const ct_ecg_detector *d);

/* MIT mnemonic of a beat class: "N", "A", "V", "F", "Q". */
const char *ct_ecg_beat_class_mnemonic(ct_ecg_beat_class cls);

#endif
