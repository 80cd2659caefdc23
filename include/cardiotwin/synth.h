/* synth: synthetic ECG with known truth, for the live demo and for tests.
 *
 * A generator makes a continuous multi-lead ECG, frame by frame, from a
 * beat-by-beat rhythm model: sinus rhythm with heart-rate variability,
 * isolated premature ventricular beats (no P wave, wide QRS, compensatory
 * pause), runs of ventricular tachycardia, episodes of atrial fibrillation
 * (irregular RR, no P wave, fibrillatory baseline), sinus pauses, baseline
 * wander and noise. The waveform of each beat is a sum of Gaussian waves
 * (P, Q, R, S, T) in the manner of McSharry et al.'s dynamical model (IEEE
 * TBME 2003), evaluated directly in time rather than integrated, so that a
 * given seed always gives the same samples whatever the chunk sizes.
 *
 * Every beat it draws is reported as truth (its R-peak sample and its
 * class), and every rhythm change as an annotation, so that a test can
 * score the detector against what was generated. No allocation per sample;
 * no I/O; the only state is the generator. Uses the ecg room's types only. */
#ifndef CARDIOTWIN_SYNTH_H
#define CARDIOTWIN_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/ecg.h"
#include "cardiotwin/error.h"

#define CT_SYNTH_MAX_LEADS 2   /* lead II and V1 */

typedef struct ct_synth_options {
    double fs_hz;              /* 125..1000 (default 360) */
    int n_leads;               /* 1..CT_SYNTH_MAX_LEADS (default 2: II, V1) */
    double gain_adu_per_mv;    /* ADC units per mV (default 200) */
    int baseline_adu;          /* ADC value of 0 mV (default 0) */
    double hr_bpm;             /* mean sinus rate, 20..250 (default 72) */
    double hrv_fraction;       /* beat-to-beat RR variability, SD as a fraction of RR, 0..0.2
                                  (default 0.03) */
    double pvc_per_min;        /* isolated PVCs per minute on average, 0..30 (default 0) */
    double vt_every_s;         /* a ventricular run starts on average every this many seconds,
                                  0: never (default 0) */
    int vt_beats;              /* beats in each run, 3..50 (default 5) */
    double vt_rate_bpm;        /* rate of the runs, 100..250 (default 170) */
    double af_every_s;         /* an AF episode starts on average every this many seconds of
                                  sinus rhythm, 0: never (default 0) */
    double af_duration_s;      /* length of each AF episode, 10..3600 (default 60) */
    double af_rate_bpm;        /* mean ventricular rate in AF (default 110) */
    double pause_every_s;      /* a sinus pause on average every this many seconds, 0: never */
    double pause_ms;           /* its length, 1500..10000 (default 3000) */
    double noise_uv;           /* RMS of white noise, 0..500 (default 15) */
    double wander_uv;          /* amplitude of a 0.3 Hz baseline wander, 0..2000 (default 50) */
    uint64_t seed;             /* same seed, same options: same samples */
} ct_synth_options;

/* Fills o with the defaults above (normal sinus rhythm at 72 bpm). */
void ct_synth_options_default(ct_synth_options *o);

/* What was generated: a beat (sym 'N', 'V'), or a rhythm change (sym '+'
 * with aux "(N", "(AFIB", "(VT"), or a pause (sym '"', aux "PAUSE"), with
 * WFDB's MIT codes in mind so that they can be scored like annotations. */
typedef struct ct_synth_truth {
    int64_t sample;            /* frame index since the generator began (R peak for a beat) */
    char sym;                  /* 'N', 'V', '+', '"' */
    char aux[8];               /* for '+' and '"', else "" */
} ct_synth_truth;

typedef struct ct_synth ct_synth;

/* CT_EINVAL, with the option at fault named, for a value out of range. */
int ct_synth_new(const ct_synth_options *o, ct_synth **out, ct_error *err);
void ct_synth_free(ct_synth *s);

/* Generates the next n frames into leads[l][0..n-1] (planar, like the
 * detector's push; each of the n_leads pointers must be valid). Truth items
 * whose sample falls inside these frames are written to truth (at most
 * truth_cap; *n_truth gets how many were written, and any that did not fit
 * are dropped, counted in ct_synth_truth_dropped). truth may be NULL. */
void ct_synth_generate(ct_synth *s, int16_t *const *leads, size_t n, ct_synth_truth *truth,
                       size_t truth_cap, size_t *n_truth);

/* Frames generated so far. */
int64_t ct_synth_frames(const ct_synth *s);
/* Truth items that did not fit in the caller's array so far. */
size_t ct_synth_truth_dropped(const ct_synth *s);
/* The MDC code of lead l (131330 for II, 131331 for V1), for FHIR. */
int ct_synth_lead_code(const ct_synth *s, int l);
/* "II", "V1". */
const char *ct_synth_lead_name(const ct_synth *s, int l);

#endif
