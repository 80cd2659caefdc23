/* synth: what the room's files share: the generator's state, the beat and
 * truth rings, the PRNG and the beat morphologies. Not part of the API. */
#ifndef CARDIOTWIN_SYNTH_INTERNAL_H
#define CARDIOTWIN_SYNTH_INTERNAL_H

#include <stdint.h>

#include "cardiotwin/synth.h"

/* Longest a beat's waves reach before and after its R peak (P wave onset,
 * end of a slow PVC T wave): beats are scheduled this far ahead of the
 * sample being drawn and retired this long after. */
#define SYN_LEAD_S 0.45
#define SYN_TAIL_S 0.95

/* Beats alive at once: from SYN_TAIL_S behind to SYN_LEAD_S ahead at the
 * shortest RR the model draws (0.24 s) is under 7; the ring is a power of
 * two with room to spare. */
#define SYN_BEAT_RING 32
/* Truth items waiting for their sample to be drawn: at most three per beat
 * ahead (rhythm change, beat, pause). */
#define SYN_TRUTH_RING 64
#define SYN_MAX_WAVES 6
#define SYN_RESP_HZ 0.3

typedef struct syn_wave {
    double t_s;     /* centre relative to the R peak */
    double amp_mv;
    double sigma_s;
} syn_wave;

typedef enum syn_kind { SYN_SINUS = 0, SYN_CONDUCTED = 1, SYN_VENTRICULAR = 2 } syn_kind;

typedef struct syn_beat {
    int64_t r;             /* R-peak frame */
    int64_t first, last;   /* frames its waves can touch */
    int n_waves[CT_SYNTH_MAX_LEADS];
    syn_wave w[CT_SYNTH_MAX_LEADS][SYN_MAX_WAVES];
} syn_beat;

/* xoshiro256** (Blackman and Vigna), seeded through splitmix64: small,
 * fast, and the same on every platform, unlike rand(). */
typedef struct syn_rng {
    uint64_t s[4];
} syn_rng;

enum { SYN_RHY_SINUS = 0, SYN_RHY_AF = 1 };

struct ct_synth {
    ct_synth_options o;
    syn_rng rhythm_rng;    /* draws the beats; never touched by rendering */
    syn_rng noise_rng;     /* draws the noise, two normals per frame */
    int64_t frames;        /* frames generated so far */
    size_t truth_dropped;

    /* Rhythm model (schedule.c). Times are frames; the R peak of every beat
     * falls on a frame, so that the truth is exact. */
    int started;
    int64_t last_r;        /* R peak of the last scheduled beat */
    double sinus_next;     /* when the sinus node fires next (frame, fractional) */
    double lf_state;       /* slow RR drift (AR(1)), fraction of RR */
    int rhythm;            /* SYN_RHY_SINUS or SYN_RHY_AF */
    int last_ectopic;      /* the last beat was a V beat */
    int vt_left;           /* V beats still to come in the current run */
    int vt_return;         /* the run just ended: the next beat resumes the rhythm */
    double last_rr_s;      /* interval before the last beat, for QT */
    double next_vt_s;      /* time of the next run (s since start) */
    double next_pause_s;   /* time of the next pause */
    double sinus_until_af_s; /* seconds of sinus rhythm left before AF begins */
    int64_t af_end;        /* frame at which the current AF episode ends */
    int64_t af_from[4], af_to[4]; /* fibrillatory-wave spans, oldest first */
    int n_af;

    /* Beats scheduled and not yet retired, oldest first. */
    syn_beat beats[SYN_BEAT_RING];
    unsigned beat_head, n_beats;
    /* Truth items not yet drawn, in frame order. */
    ct_synth_truth truth[SYN_TRUTH_RING];
    unsigned truth_head, n_truth;

    /* Respiration (0.3 Hz) drives the baseline wander, the amplitude of the
     * beats and the sinus arrhythmia alike, with one phase. */
    double resp_phase;
    double wander_phase[CT_SYNTH_MAX_LEADS];
    double af_phase;       /* start phase of the fibrillatory wave */
};

/* rng.c */
void ct_synth_rng_seed(syn_rng *r, uint64_t seed);
uint64_t ct_synth_rng_next(syn_rng *r);
double ct_synth_rng_uniform(syn_rng *r);   /* [0, 1) */
double ct_synth_rng_normal(syn_rng *r);    /* N(0, 1), polar method */

/* schedule.c: draws beats until one starts after frame `until`. */
void ct_synth_schedule(ct_synth *s, int64_t until);

/* morph.c: fills b's waves (and first/last) for a beat of `kind` whose QT
 * follows the cycle length rr_s, its amplitude scaled by `jitter`. */
void ct_synth_morph(const ct_synth *s, syn_beat *b, syn_kind kind, double rr_s, double amp);

#endif
