/* ecg internals: the three stages of the detector and the state they share.
 * qrs.c finds beats (filters, fused detection feature, adaptive thresholds,
 * fiducial point); classify.c gives each beat a class from its morphology and
 * its timing; rhythm.c turns the beat sequence into rhythm episodes and
 * events; detector.c wires them behind the public API of cardiotwin/ecg.h.
 *
 * Every buffer is carved from one allocation made at creation; the rings are
 * powers of two long so that indexing is a mask. */
#ifndef CT_ECG_INTERNAL_H
#define CT_ECG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/ecg.h"

#define CT_HIST 8 /* length of the level and interval histories */

/* Lead states for detection weighting and quality events. */
enum { LEAD_ON = 0, LEAD_SETTLING = 1, LEAD_FLAT = 2, LEAD_OFF = 3 };

typedef struct ct_qrs_lead {
    /* Rings indexed by the shared sample counter (mask). */
    int32_t *raw;   /* input minus baseline, ADC units */
    int32_t *lp1;   /* first boxcar sum */
    int32_t *lp2;   /* second boxcar sum (low-passed, gain L1^2) */
    int32_t *hp;    /* band-passed (gain L1^2 * L2) */
    int32_t *der;   /* signed derivative of hp */
    float *mwi;     /* moving integral of |der|, scaled to mV-ish units */
    int64_t s1, s2, s3, s4;
    int32_t hold;   /* last input value, held while the lead is off */
    int filt_off;   /* the filters last saw the lead absent */
    int32_t flat_thresh; /* ADC range under which half a second is flat */
    float mwi_scale;

    /* Levels of this lead at accepted beats (medians of CT_HIST values). */
    float peak_hist[CT_HIST];
    float noise_hist[CT_HIST];
    float slope_hist[CT_HIST];
    int n_peak, n_noise;
    float level;      /* median QRS peak of mwi on this lead */
    float noise;      /* median of the largest mwi between beats */
    float slope;      /* median max |der| of the QRS on this lead */
    float weight;     /* quality weight 0..1 */
    float w_norm;     /* weight / level / sum(weights): F = sum(w_norm * mwi) */

    /* Lead state: off (NULL pushed), flat, settling after a change, on. */
    int state;
    int64_t state_since;
    float learn_max;
    double learn_sum;
    int64_t learn_n;
    /* Flat-line detection on blocks of ~250 ms. */
    int32_t blk_min, blk_max;
    float blk_mwi;
    int flat_blocks;
    int noisy;        /* last reported noise state */
    int reported_state; /* last quality state reported for this lead (-1: none) */
} ct_qrs_lead;

/* What the QRS stage hands on for each accepted beat. */
typedef struct ct_qrs_beat {
    int64_t sample;     /* fiducial (R peak), raw sample index */
    int64_t feat_t;     /* peak of the fused feature */
    float strength;     /* fused peak / threshold */
    int primary;        /* lead used for the fiducial */
} ct_qrs_beat;

typedef struct ct_qrs {
    double fs_hz;
    int n_leads;
    uint32_t mask;
    size_t ring;
    /* Filter lengths in samples, derived from fs (docs/detector.md). */
    int L1, L2, Dhp, K, L3;
    int sh2;            /* lp2 = second boxcar sum >> sh2 */
    int delay;          /* raw sample -> center of its mwi bump */
    int hp_delay;       /* raw sample -> the same sample in hp */
    int wait;           /* decision wait after a feature peak */
    int wait_max;       /* longest wait the latency bound allows */
    int refractory;
    int twave;          /* T-wave zone end */
    int learn;          /* learning samples */
    int blk_len;        /* flat-line check block, samples */
    int blk_count;
    int max_latency;    /* samples */
    int64_t n;          /* samples decided on */
    int64_t nf;         /* samples filtered (ahead of n by at most a block) */

    float f1, f2;       /* F[n-1], F[n-2] */
    int have_cand;
    float cand_v;
    int64_t cand_t;

    float qrs_hist[CT_HIST];
    float noise_hist[CT_HIST];
    float rr_hist[CT_HIST];
    float qrs_level, noise_level, rr_mean;
    int64_t last_beat_t;   /* feature time of the last beat, -1 none */
    int64_t last_fid;      /* fiducial of the last beat */
    int n_beats;
    int learned;
    int quality_changed; /* a lead changed state: the detector reports it */

    ct_qrs_lead lead[CT_ECG_MAX_LEADS];
} ct_qrs;

size_t ct_qrs_ring_len(double fs_hz);
size_t ct_qrs_bytes(double fs_hz, int n_leads);
/* Carves buffers from mem (ct_qrs_bytes long, suitably aligned). */
void ct_qrs_init(ct_qrs *q, double fs_hz, int n_leads, const double *gain_adu_per_mv, void *mem);
/* Largest block of frames filtered ahead of the decisions. */
#define CT_QRS_BLOCK 64
/* Filters nb (<= CT_QRS_BLOCK) frames of every lead into the rings: in[l]
 * points at lead l's samples (NULL: absent), base[l] is its baseline. */
void ct_qrs_filter(ct_qrs *q, const int16_t *const *in, const int32_t *base, size_t nb);
/* Decides on the next filtered frame; present[l] is 0 for an absent lead.
 * Returns 1 and fills *beat when a beat is decided. */
int ct_qrs_step(ct_qrs *q, const uint8_t *present, ct_qrs_beat *beat);
/* ct_qrs_step over up to nb frames, stopping after a frame that decided a
 * beat (*got = 1), changed a lead's quality, or reached sample stop_at.
 * Returns the frames consumed. */
size_t ct_qrs_steps(ct_qrs *q, const uint8_t *present, size_t nb, int64_t stop_at,
                    ct_qrs_beat *beat, int *got);

/* ---- classification (classify.c) ---------------------------------------- */
/* Beats are compared on a fixed 250 Hz grid from -100 ms to +160 ms around
 * the fiducial point, whatever the sampling rate. */
#define CT_CLS_STEP_MS 4
#define CT_CLS_PRE_MS 100
#define CT_CLS_POST_MS 160
#define CT_CLS_NPTS ((CT_CLS_PRE_MS + CT_CLS_POST_MS) / CT_CLS_STEP_MS + 1)
#define CT_CLS_MAX_TEMPLATES 8
#define CT_CLS_MAX_LEADS 3 /* morphology uses the first three leads */

typedef struct ct_template {
    float wave[CT_CLS_MAX_LEADS][CT_CLS_NPTS];
    float count;      /* recency-weighted number of members */
    float n_total;    /* members ever */
    float prem_sum;   /* recency-weighted sum of members' prematurity */
    float width_ms;   /* width of the template itself */
    float max_slope;  /* its largest slope (width_ms's by-product) */
    float hf;         /* its high-frequency content */
    float amp[CT_CLS_MAX_LEADS]; /* peak-to-peak per lead */
    int64_t last_beat;
    int used;
    int id;
} ct_template;

#define CT_CLS_SPAN_MAX 1024

typedef struct ct_classify {
    double fs_hz;
    int n_leads;
    int n_morph;        /* leads used for morphology (<= CT_CLS_MAX_LEADS) */
    ct_template tpl[CT_CLS_MAX_TEMPLATES];
    int dominant;       /* index of the dominant (normal) template, -1 none */
    int next_id;
    int64_t n_beats;
    int64_t last_fid;
    float rr_hist[CT_HIST]; /* recent RR intervals, ms */
    int n_rr;
    float last_rr_ms;
    float nrr_hist[CT_HIST]; /* recent RR intervals ending in a normal beat, ms */
    int n_nrr;
    int last_cls;
    int last_dom;       /* the last beat joined the dominant template */
    /* Scratch: prefix sums of the raw samples around the current beat. */
    int64_t span_start;
    int span_len;
    int span_h;
    int64_t span_ps[CT_CLS_MAX_LEADS][CT_CLS_SPAN_MAX + 1];
} ct_classify;

size_t ct_classify_bytes(double fs_hz, int n_leads);
void ct_classify_init(ct_classify *c, double fs_hz, int n_leads, const double *gain_adu_per_mv,
                      void *mem);
/* Fills out->cls, confidence, rr_ms, hr_bpm, template_id and feat.
 * Returns 1 for a beat, 0 for a detection judged an artefact (not to be
 * reported; the intervals then run from the last real beat). */
int ct_classify_beat(ct_classify *c, const ct_qrs *q, const ct_qrs_beat *qb, ct_ecg_beat *out,
                      float *feat);

/* The trained model (beat_model.c, written by scripts/train_beat_model.py):
 * score = bias + weight . features; a beat is V when the score is >= 0. */
typedef struct ct_linear_model {
    float weight[CT_ECG_N_FEATURES];
    float bias;
} ct_linear_model;

extern const ct_linear_model ct_beat_model_v;
extern const ct_linear_model ct_beat_model_artifact;
float ct_linear_model_score(const ct_linear_model *m, const float *feat);

/* ---- rhythm (rhythm.c) ------------------------------------------------------ */
typedef void (*ct_event_fn)(void *ctx, const ct_ecg_event *ev);

#define CT_RHY_HIST 32

typedef struct ct_rhythm {
    double fs_hz;
    int n_leads;
    int64_t next_check;      /* sample at which tick() has something to check */
    /* Recent beats, newest last (ring of CT_RHY_HIST). */
    int64_t b_sample[CT_RHY_HIST];
    uint8_t b_cls[CT_RHY_HIST];
    float b_rr_ms[CT_RHY_HIST];
    int n_b, head;
    int64_t n_beats;
    float hr_bpm;            /* averaged heart rate from the classifier */
    /* Current rhythm and the candidate waiting to replace it. */
    int rhythm;              /* RHY_... or -1 before the first claim */
    int64_t rhythm_since;
    int cand;
    int cand_count;
    int64_t cand_since;
    int af;                  /* AF hysteresis state */
    /* Ventricular run in progress. */
    int v_run;
    int64_t v_run_start;
    int64_t v_run_last;
    int vt_open;
    /* Asystole. */
    int64_t last_beat;
    int asystole_open;
    int64_t asystole_start;
    /* Quality per lead and overall. */
    int lead_q[CT_ECG_MAX_LEADS]; /* last reported: 0 ok, 1 noise, 2 flat, 3 lead-off, -1 none */
    int all_bad;             /* no usable lead: no rhythm is claimed */
} ct_rhythm;

void ct_rhythm_init(ct_rhythm *r, double fs_hz, int n_leads);
void ct_rhythm_beat(ct_rhythm *r, const ct_ecg_beat *b, ct_event_fn fn, void *ctx);
void ct_rhythm_quality(ct_rhythm *r, const ct_qrs *q, ct_event_fn fn, void *ctx);
void ct_rhythm_tick(ct_rhythm *r, int64_t now, ct_event_fn fn, void *ctx);
void ct_rhythm_finish(ct_rhythm *r, int64_t now, ct_event_fn fn, void *ctx);

static inline float ct_median8(const float *v, int n)
{
    float t[CT_HIST];
    if (n <= 0)
        return 0.0f;
    if (n > CT_HIST)
        n = CT_HIST;
    for (int i = 0; i < n; i++) {
        float x = v[i];
        int j = i;
        while (j > 0 && t[j - 1] > x) {
            t[j] = t[j - 1];
            j--;
        }
        t[j] = x;
    }
    return (n & 1) ? t[n / 2] : 0.5f * (t[n / 2 - 1] + t[n / 2]);
}

static inline void ct_hist_push(float *h, float v)
{
    for (int i = CT_HIST - 1; i > 0; i--)
        h[i] = h[i - 1];
    h[0] = v;
}

#endif
