/* synth/morph: the shape of each beat, as a sum of Gaussian waves per lead
 * (McSharry et al. 2003 write the same P, Q, R, S, T waves as attractors of
 * a dynamical system; here they are evaluated directly in time).
 *
 * The one idea: a beat's shape is fixed at the moment it is scheduled, from
 * what a clinician would see in lead II and V1:
 *  - sinus beat: P (0.15 mV, 165 ms before R), narrow QRS (about 80 ms),
 *    upright T in II; in V1 a biphasic P, a small r and a deep S;
 *  - conducted beat in atrial fibrillation: the same QRS and T, no P;
 *  - ventricular beat (a right-ventricular focus): no P, a wide slurred QRS
 *    (about 160 ms) upright in II and a deep QS in V1 (left-bundle-branch-like),
 *    and a T wave opposite to the QRS in each lead.
 * The T wave moves with the preceding interval as the QT does (Bazett's
 * square root), and the amplitudes breathe with respiration (lead II and V1
 * in opposite directions, as the heart's axis swings). Each beat is then
 * shifted so that the extremum of its lead II QRS falls exactly on the R
 * peak frame the rhythm chose: the truth is where the peak really is. */
#include <math.h>

#include "synth_internal.h"


typedef struct shape {
    int n;
    syn_wave w[SYN_MAX_WAVES];
    int t_index;   /* which wave is the T wave (moves with the QT) */
} shape;

/* Lead II, then V1, for each kind. T centres and widths are for an RR of
 * 1 s and are scaled by sqrt(RR). */
static const shape shapes[3][CT_SYNTH_MAX_LEADS] = {
    [SYN_SINUS] = {
        {5, {{-0.165, 0.15, 0.024}, {-0.030, -0.10, 0.008}, {0.0, 1.20, 0.010},
             {0.030, -0.25, 0.009}, {0.270, 0.32, 0.050}}, 4},
        {5, {{-0.175, 0.07, 0.018}, {-0.140, -0.06, 0.020}, {-0.012, 0.25, 0.008},
             {0.018, -0.95, 0.012}, {0.270, 0.12, 0.055}}, 4},
    },
    [SYN_CONDUCTED] = {
        {4, {{-0.030, -0.10, 0.008}, {0.0, 1.20, 0.010}, {0.030, -0.25, 0.009},
             {0.270, 0.32, 0.050}}, 3},
        {3, {{-0.012, 0.25, 0.008}, {0.018, -0.95, 0.012}, {0.270, 0.12, 0.055}}, 2},
    },
    [SYN_VENTRICULAR] = {
        {4, {{-0.045, 0.40, 0.020}, {0.0, 1.80, 0.022}, {0.062, -0.50, 0.022},
             {0.330, -0.60, 0.080}}, 3},
        {4, {{-0.055, 0.20, 0.015}, {0.012, -2.00, 0.025}, {0.060, -0.50, 0.020},
             {0.330, 0.60, 0.080}}, 3},
    },
};

/* The QRS extremum of lead II relative to the nominal R centre, found by
 * Newton's method on the derivative of the sum of the beat's waves (the
 * R wave dominates, so it converges from 0 in a few steps). */
static double peak_offset_s(const syn_wave *w, int n)
{
    double t = 0.0;
    for (int it = 0; it < 20; it++) {
        double d1 = 0.0, d2 = 0.0;
        for (int k = 0; k < n; k++) {
            double x = (t - w[k].t_s) / w[k].sigma_s;
            double e = w[k].amp_mv * exp(-0.5 * x * x);
            d1 += -x / w[k].sigma_s * e;
            d2 += (x * x - 1.0) / (w[k].sigma_s * w[k].sigma_s) * e;
        }
        if (!(d2 < 0.0))
            break; /* not near a maximum: keep the nominal centre */
        double step = d1 / d2;
        t -= step;
        if (fabs(step) < 1e-7 || fabs(t) > 0.03) /* converged, or lost: a wave this far is not R */
            break;
    }
    return fabs(t) > 0.03 ? 0.0 : t;
}

void ct_synth_morph(const ct_synth *s, syn_beat *b, syn_kind kind, double rr_s, double jitter)
{
    double t_r = (double)b->r / s->o.fs_hz;
    double resp = sin(2.0 * M_PI * SYN_RESP_HZ * t_r + s->resp_phase);
    double qt = sqrt(rr_s < 0.24 ? 0.24 : rr_s > 2.0 ? 2.0 : rr_s);
    double amp_lead[CT_SYNTH_MAX_LEADS] = {jitter * (1.0 + 0.06 * resp),
                                           jitter * (1.0 - 0.04 * resp)};
    double lo = 0.0, hi = 0.0;
    double shift = 0.0;
    for (int l = 0; l < s->o.n_leads; l++) {
        const shape *sh = &shapes[kind][l];
        b->n_waves[l] = sh->n;
        for (int k = 0; k < sh->n; k++) {
            syn_wave w = sh->w[k];
            if (k == sh->t_index) {
                w.t_s *= qt;
                w.sigma_s *= qt;
            }
            w.amp_mv *= amp_lead[l];
            b->w[l][k] = w;
        }
        if (l == 0)
            shift = peak_offset_s(b->w[0], b->n_waves[0]);
    }
    for (int l = 0; l < s->o.n_leads; l++)
        for (int k = 0; k < b->n_waves[l]; k++) {
            syn_wave *w = &b->w[l][k];
            w->t_s -= shift;
            double a = w->t_s - 5.0 * w->sigma_s, z = w->t_s + 5.0 * w->sigma_s;
            if (a < lo)
                lo = a;
            if (z > hi)
                hi = z;
        }
    /* Shapes are built to stay within SYN_LEAD_S before and SYN_TAIL_S after
     * the peak; the scheduler's look-ahead relies on it. */
    if (lo < -SYN_LEAD_S)
        lo = -SYN_LEAD_S;
    if (hi > SYN_TAIL_S)
        hi = SYN_TAIL_S;
    b->first = b->r + (int64_t)floor(lo * s->o.fs_hz);
    b->last = b->r + (int64_t)ceil(hi * s->o.fs_hz);
}
