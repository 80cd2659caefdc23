/* ecg/classify: AAMI beat classes from morphology and timing.
 *
 * The one idea: a beat is judged against the patient's own dominant beat, not
 * against a population. Each beat is cut out on a fixed 250 Hz grid (-100 ms
 * .. +160 ms around its fiducial point, baseline taken just before the
 * window) in up to three leads and matched to a small set of running
 * templates (up to 8 morphology clusters, joined at correlation >= 0.90 and
 * amplitude within 0.6..1.6x). The dominant template is the most frequent
 * recent morphology, favoured when its beats come on time and are narrow, so
 * that bigeminy does not elect the ectopic beat. Features of the beat relative
 * to the dominant template (QRS width, correlation, amplitude and area
 * differences, slope), its timing (prematurity against recent intervals) and
 * its cluster (how common, how premature, how wide) feed a logistic model
 * for V against the rest, trained on the 28 development records of MIT-BIH
 * (scripts/train_beat_model.py writes beat_model.c); a linear model over
 * relative features is what carries from patient to patient (estimated by
 * leave-one-record-out, docs/detector.md). A second logistic model over
 * the same features judges whether the detection is a beat at all: what it
 * scores as an artefact (noise that passed the QRS detector: no template,
 * high-frequency content, a noisy context) is not reported. S is a rule on
 * prematurity and morphology. F and Q are not predicted: fusion beats fall
 * to N or V, which EC57 scores as it does.
 *
 * Cost: one correlation per template and lead per beat (5 shifts x 41
 * points), nothing per sample. Everything uses data up to the moment the
 * beat is reported, so the latency bound holds.
 *
 * References: P. de Chazal, M. O'Dwyer, R. B. Reilly, "Automatic
 * classification of heartbeats using ECG morphology and heartbeat interval
 * features", IEEE TBME 51(7):1196-1206, 2004 (features, DS1/DS2 split);
 * P. S. Hamilton, "Open source ECG analysis", Computers in Cardiology 2002
 * (template matching, dominant beat); M. Llamedo, J. P. Martinez,
 * "An automatic patient-adapted ECG heartbeat classifier allowing expert
 * assistance", IEEE TBME 59(8):2312-2320, 2012. */
#include <math.h>
#include <string.h>

#include "ecg_internal.h"

#define QRS_A ((CT_CLS_PRE_MS - 60) / CT_CLS_STEP_MS)  /* -60 ms */
#define QRS_B ((CT_CLS_PRE_MS + 100) / CT_CLS_STEP_MS) /* +100 ms */
#define MAX_SHIFT 2
#define JOIN_CORR 0.90f
#define DECAY 0.995f

/* The feature vector handed to the model and to the sink (training): each
 * entry is a measurement of the beat against the dominant template, its
 * timing or its cluster, clamped and transformed so that a linear model can
 * use it (docs/detector.md lists them). */
enum {
    F_WIDTH_DIFF = 0,  /* QRS width - dominant width, ms, clamped -20..80 */
    F_WIDTH_EXCESS,    /* max(0, width diff - 20 ms) */
    F_DECORR,          /* 1 - correlation with the dominant (leads weighted) */
    F_DECORR_MIN,      /* 1 - worst lead correlation */
    F_AMP,             /* log2 amplitude ratio beat/dominant */
    F_AREA,            /* ln |beat - dominant| / |dominant| over the QRS */
    F_PREM,            /* RR / median of recent RR (<= 1.5) */
    F_RR_RATIO,        /* RR / previous RR (<= 1.5) */
    F_CL_FRAC,         /* share of recent beats in the beat's cluster */
    F_CL_PREM,         /* mean prematurity of the cluster (<= 1.5) */
    F_CL_WIDTH_DIFF,   /* cluster width - dominant width, ms, clamped */
    F_CL_DECORR,       /* 1 - correlation of the cluster with the dominant */
    F_IS_DOM,          /* the beat joined the dominant cluster */
    F_SLOPE,           /* ln max slope ratio beat/dominant */
    F_NOISE,           /* between-beat activity / QRS level of the leads (<= 1) */
    F_HF,              /* ln high-frequency content ratio beat/dominant */
    F_POST,            /* difference after the QRS (+100..+160 ms), per amplitude */
    F_DECORR_WIDE,     /* (1 - corr) * max(0, width diff) */
    F_EARLY_WIDE,      /* max(0, 1 - prematurity) * max(0, width diff) */
    F_PREM_N           /* RR / median of recent normal RR (<= 1.5) */
};

/* Supraventricular rule (no trained model: the inter-patient evidence for
 * one is weak): a beat shaped like the dominant one, narrow, at least 15%
 * earlier than the recent normal intervals and 10% earlier than the last. */
#define S_MIN_CORR 0.90f
#define S_MAX_PREM_N 0.85f
#define S_MAX_RR_RATIO 0.90f
#define S_MAX_WIDTH_DIFF 20.0f

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

float ct_linear_model_score(const ct_linear_model *m, const float *feat)
{
    float s = m->bias;
    for (int i = 0; i < CT_ECG_N_FEATURES; i++)
        s += m->weight[i] * feat[i];
    return s;
}

size_t ct_classify_bytes(double fs_hz, int n_leads)
{
    (void)fs_hz;
    (void)n_leads;
    return 0;
}

void ct_classify_init(ct_classify *c, double fs_hz, int n_leads, const double *gain_adu_per_mv,
                      void *mem)
{
    (void)gain_adu_per_mv;
    (void)mem;
    memset(c, 0, sizeof *c);
    c->fs_hz = fs_hz;
    c->n_leads = n_leads;
    c->n_morph = n_leads < CT_CLS_MAX_LEADS ? n_leads : CT_CLS_MAX_LEADS;
    c->dominant = -1;
    c->last_fid = -1;
}

/* The raw samples around a beat, copied once with prefix sums so that the
 * grid (box-smoothed, linearly interpolated) can be cut, and cut again at a
 * shifted centre, at O(1) per grid point. */
typedef ct_classify span;

static void span_load(ct_classify *sp, const ct_qrs *q, int64_t fid)
{
    const ct_classify *c = sp;
    const double fs = c->fs_hz;
    sp->span_h = (int)floor(fs * 0.003 + 0.5);
    /* Window, plus room for a re-centring of +-60 ms and the smoothing. */
    int64_t a = fid - (int64_t)ceil(fs * (CT_CLS_PRE_MS + 64) / 1000.0) - sp->span_h - 2;
    int64_t b = fid + (int64_t)ceil(fs * (CT_CLS_POST_MS + 64) / 1000.0) + sp->span_h + 2;
    if (b - a + 1 > CT_CLS_SPAN_MAX)
        b = a + CT_CLS_SPAN_MAX - 1;
    sp->span_start = a;
    sp->span_len = (int)(b - a + 1);
    int64_t newest = q->n - 1;
    int64_t oldest = q->n - (int64_t)q->ring + 1 + CT_QRS_BLOCK;
    if (oldest < 0)
        oldest = 0;
    for (int l = 0; l < c->n_morph; l++) {
        const int32_t *raw = q->lead[l].raw;
        int64_t acc = 0;
        sp->span_ps[l][0] = 0;
        for (int i = 0; i < sp->span_len; i++) {
            int64_t r = a + i;
            r = r < oldest ? oldest : (r > newest ? newest : r);
            acc += raw[r & q->mask];
            sp->span_ps[l][i + 1] = acc;
        }
    }
}

/* Mean of raw samples [r0, r1] of lead l (clamped to the span). */
static float span_mean(const span *sp, int l, int64_t r0, int64_t r1)
{
    int64_t i0 = r0 - sp->span_start, i1 = r1 - sp->span_start + 1;
    if (i0 < 0)
        i0 = 0;
    if (i1 > sp->span_len)
        i1 = sp->span_len;
    if (i1 <= i0) {
        int64_t k = i0 >= sp->span_len ? sp->span_len - 1 : 0;
        return (float)(sp->span_ps[l][k + 1] - sp->span_ps[l][k]);
    }
    return (float)(sp->span_ps[l][i1] - sp->span_ps[l][i0]) / (float)(i1 - i0);
}

/* Cuts the beat centred on fid onto the grid, baseline (the mean of the
 * first 12 ms of the window) removed. */
static void cut_beat(const ct_classify *c, const span *sp, int64_t fid,
                     float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS])
{
    const double fs = c->fs_hz;
    const int h = sp->span_h;
    int64_t b0 = fid - (int64_t)floor(fs * CT_CLS_PRE_MS / 1000.0 + 0.5);
    int64_t b1 = fid - (int64_t)floor(fs * (CT_CLS_PRE_MS - 12) / 1000.0 + 0.5);
    for (int l = 0; l < c->n_morph; l++) {
        float base = span_mean(sp, l, b0, b1);
        for (int k = 0; k < CT_CLS_NPTS; k++) {
            double pos = (double)fid + (-CT_CLS_PRE_MS + k * CT_CLS_STEP_MS) * fs / 1000.0;
            int64_t i0 = (int64_t)floor(pos);
            float fr = (float)(pos - (double)i0);
            float v0 = span_mean(sp, l, i0 - h, i0 + h);
            float v1 = span_mean(sp, l, i0 + 1 - h, i0 + 1 + h);
            g[l][k] = (1.0f - fr) * v0 + fr * v1 - base;
        }
    }
}

static float peak_to_peak(const float *w)
{
    float mn = w[QRS_A], mx = w[QRS_A];
    for (int k = QRS_A; k <= QRS_B; k++) {
        if (w[k] < mn)
            mn = w[k];
        if (w[k] > mx)
            mx = w[k];
    }
    return mx - mn;
}

/* Energy width: the time holding the central 80% of the summed squared slope
 * of the leads (in ADC units, so that the lead with the largest QRS leads and
 * a small noisy one cannot widen it); squaring keeps noise and slow waves
 * from widening it either. */
static float width_ms(const ct_classify *c, float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS],
                      const float *lw, float *max_slope)
{
    float s[CT_CLS_NPTS];
    memset(s, 0, sizeof s);
    float ms = 0.0f;
    for (int l = 0; l < c->n_morph; l++) {
        if (lw[l] <= 0.0f)
            continue;
        float k_norm = lw[l];
        for (int k = 0; k + 1 < CT_CLS_NPTS; k++) {
            float d = fabsf(g[l][k + 1] - g[l][k]) * k_norm;
            s[k] += d * d;
            if (d > ms)
                ms = d;
        }
    }
    if (max_slope)
        *max_slope = ms;
    float tot = 0.0f;
    for (int k = 0; k + 1 < CT_CLS_NPTS; k++)
        tot += s[k];
    if (tot <= 0.0f)
        return 0.0f;
    float acc = 0.0f;
    int k10 = 0, k90 = CT_CLS_NPTS - 2;
    int got10 = 0;
    for (int k = 0; k + 1 < CT_CLS_NPTS; k++) {
        acc += s[k];
        if (!got10 && acc >= 0.1f * tot) {
            k10 = k;
            got10 = 1;
        }
        if (acc >= 0.9f * tot) {
            k90 = k;
            break;
        }
    }
    return (float)((k90 - k10 + 1) * CT_CLS_STEP_MS);
}

/* Centre of the summed slope energy over the QRS window, ms from the grid's
 * zero (the fiducial point). */
static float slope_centre_ms(const ct_classify *c, float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS],
                             const float *lw)
{
    float num = 0.0f, den = 0.0f;
    for (int l = 0; l < c->n_morph; l++) {
        if (lw[l] <= 0.0f)
            continue;
        for (int k = QRS_A; k < QRS_B; k++) {
            float d = fabsf(g[l][k + 1] - g[l][k]) * lw[l];
            d *= d;
            num += d * ((float)k + 0.5f);
            den += d;
        }
    }
    if (den <= 0.0f)
        return 0.0f;
    return (num / den) * CT_CLS_STEP_MS - CT_CLS_PRE_MS;
}

/* Correlation of beat lead b with template lead t over the QRS, at the
 * best of 2 * MAX_SHIFT + 1 shifts (one pass, one accumulator per shift). */
static float corr_shift(const float *b, const float *t, int *best_shift)
{
    enum { NS = 2 * MAX_SHIFT + 1 };
    float sbt[NS] = {0}, sb[NS] = {0}, sbb[NS] = {0};
    float st = 0, stt = 0;
    const int n = QRS_B - QRS_A + 1;
    for (int k = QRS_A; k <= QRS_B; k++) {
        float y = t[k];
        st += y;
        stt += y * y;
        for (int s = 0; s < NS; s++) {
            float x = b[k + s - MAX_SHIFT];
            sbt[s] += x * y;
        }
    }
    /* The beat's window sums slide by one point per shift. */
    float s0 = 0, ss0 = 0;
    for (int k = QRS_A - MAX_SHIFT; k <= QRS_B - MAX_SHIFT; k++) {
        s0 += b[k];
        ss0 += b[k] * b[k];
    }
    for (int s = 0; s < NS; s++) {
        sb[s] = s0;
        sbb[s] = ss0;
        if (s + 1 < NS) {
            float out = b[QRS_A - MAX_SHIFT + s], in = b[QRS_B - MAX_SHIFT + s + 1];
            s0 += in - out;
            ss0 += in * in - out * out;
        }
    }
    float vt = stt - st * st / (float)n;
    float best = -1.0f;
    int bs = 0;
    for (int s = 0; s < NS; s++) {
        float cov = sbt[s] - sb[s] * st / (float)n;
        float vb = sbb[s] - sb[s] * sb[s] / (float)n;
        float r = (vb > 1e-9f && vt > 1e-9f) ? cov / sqrtf(vb * vt) : 0.0f;
        if (r > best) {
            best = r;
            bs = s - MAX_SHIFT;
        }
    }
    if (best_shift)
        *best_shift = bs;
    return best;
}

/* High-frequency content: summed |second difference| over the window,
 * per unit of QRS amplitude (noise and fibrillation waves raise it). */
static float hf_content(const ct_classify *c, float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS],
                        const float *lw)
{
    float num = 0.0f, den = 0.0f;
    for (int l = 0; l < c->n_morph; l++) {
        if (lw[l] <= 0.0f)
            continue;
        float pp = peak_to_peak(g[l]);
        if (pp <= 1e-6f)
            continue;
        float acc = 0.0f;
        for (int k = 1; k + 1 < CT_CLS_NPTS; k++)
            acc += fabsf(g[l][k + 1] - 2.0f * g[l][k] + g[l][k - 1]);
        num += lw[l] * acc / pp;
        den += lw[l];
    }
    return den > 0.0f ? num / den : 0.0f;
}

typedef struct match {
    float corr;      /* weighted over leads */
    float corr_min;  /* worst lead */
    float amp_ratio; /* beat / template, weighted */
    float area;      /* |beat - template| / |template| */
    float post;      /* the same after the QRS (+100..+160 ms), per unit of amplitude */
    int sh[CT_CLS_MAX_LEADS]; /* best alignment of each lead, grid points */
} match;

static match compare(const ct_classify *c, float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS],
                     const ct_template *t, const float *lw)
{
    match m = {0.0f, 1.0f, 1.0f, 1.0f, 0.0f, {0}};
    float wsum = 0.0f, csum = 0.0f, asum = 0.0f, psum = 0.0f, ar_num = 0.0f, ar_den = 0.0f;
    for (int l = 0; l < c->n_morph; l++) {
        if (lw[l] <= 0.0f)
            continue;
        int sh = 0;
        float r = corr_shift(g[l], t->wave[l], &sh);
        m.sh[l] = sh;
        float tpp = t->amp[l] > 1e-6f ? t->amp[l] : 1e-6f;
        float bpp = peak_to_peak(g[l]);
        float diff = 0.0f, ref = 0.0f;
        for (int k = QRS_A; k <= QRS_B; k++) {
            diff += fabsf(g[l][k + sh] - t->wave[l][k]);
            ref += fabsf(t->wave[l][k]);
        }
        float post = 0.0f;
        for (int k = QRS_B; k < CT_CLS_NPTS - MAX_SHIFT; k++)
            post += fabsf(g[l][k + sh] - t->wave[l][k]);
        post /= (float)(CT_CLS_NPTS - MAX_SHIFT - QRS_B) * tpp;
        /* Leads weigh by quality and by how much QRS they carry. */
        float w = lw[l] * tpp;
        wsum += w;
        csum += w * r;
        asum += w * (ref > 1e-6f ? diff / ref : 1.0f);
        psum += w * post;
        ar_num += lw[l] * bpp;
        ar_den += lw[l] * tpp;
        if (r < m.corr_min)
            m.corr_min = r;
    }
    if (wsum > 0.0f) {
        m.corr = csum / wsum;
        m.area = asum / wsum;
        m.post = psum / wsum;
    }
    if (ar_den > 0.0f)
        m.amp_ratio = ar_num / ar_den;
    return m;
}

static float median_or(const float *h, int n, float def)
{
    return n > 0 ? ct_median8(h, n) : def;
}

static void template_set(ct_classify *c, ct_template *t, float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS],
                         const float *lw, int64_t beat_no, float prem)
{
    memset(t, 0, sizeof *t);
    for (int l = 0; l < c->n_morph; l++) {
        memcpy(t->wave[l], g[l], sizeof t->wave[l]);
        t->amp[l] = peak_to_peak(g[l]);
    }
    t->count = 1.0f;
    t->n_total = 1.0f;
    t->prem_sum = prem;
    t->width_ms = width_ms(c, t->wave, lw, &t->max_slope);
    t->hf = hf_content(c, t->wave, lw);
    t->last_beat = beat_no;
    t->used = 1;
    t->id = c->next_id++;
}

static void template_join(ct_classify *c, ct_template *t, float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS],
                          const float *lw, int64_t beat_no, float prem, const match *m)
{
    /* Running average, faster while the template is young. */
    float a = t->n_total < 8.0f ? 1.0f / (t->n_total + 1.0f) : 0.125f;
    for (int l = 0; l < c->n_morph; l++) {
        int sh = m->sh[l];
        for (int k = 0; k < CT_CLS_NPTS; k++) {
            int kk = k + sh;
            if (kk < 0)
                kk = 0;
            if (kk >= CT_CLS_NPTS)
                kk = CT_CLS_NPTS - 1;
            t->wave[l][k] += a * (g[l][kk] - t->wave[l][k]);
        }
        t->amp[l] = peak_to_peak(t->wave[l]);
    }
    t->count += 1.0f;
    t->n_total += 1.0f;
    t->prem_sum += prem;
    t->width_ms = width_ms(c, t->wave, lw, &t->max_slope);
    t->hf = hf_content(c, t->wave, lw);
    t->last_beat = beat_no;
}

/* The dominant template: most frequent recently, favoured when on time and
 * narrow; it changes only when another is clearly ahead. */
static void elect_dominant(ct_classify *c)
{
    float min_w = 1e9f;
    for (int k = 0; k < CT_CLS_MAX_TEMPLATES; k++)
        if (c->tpl[k].used && c->tpl[k].count >= 3.0f && c->tpl[k].width_ms < min_w)
            min_w = c->tpl[k].width_ms;
    int best = -1;
    float best_s = 0.0f, cur_s = 0.0f;
    for (int k = 0; k < CT_CLS_MAX_TEMPLATES; k++) {
        const ct_template *t = &c->tpl[k];
        if (!t->used)
            continue;
        float prem = t->prem_sum / (t->count > 0 ? t->count : 1.0f);
        float s = t->count;
        if (prem >= 0.92f)
            s *= 2.0f;
        if (t->width_ms <= 1.2f * min_w)
            s *= 1.5f;
        if (k == c->dominant)
            cur_s = s;
        if (s > best_s) {
            best_s = s;
            best = k;
        }
    }
    if (c->dominant < 0 || !c->tpl[c->dominant].used || best_s > 1.3f * cur_s)
        c->dominant = best;
}

int ct_classify_beat(ct_classify *c, const ct_qrs *q, const ct_qrs_beat *qb, ct_ecg_beat *out,
                     float *feat)
{
    float g[CT_CLS_MAX_LEADS][CT_CLS_NPTS];
    float lw[CT_CLS_MAX_LEADS];
    float lwsum = 0.0f;
    for (int l = 0; l < c->n_morph; l++) {
        const ct_qrs_lead *L = &q->lead[l];
        lw[l] = L->state == LEAD_ON ? L->weight : 0.0f;
        lwsum += lw[l];
    }
    if (lwsum <= 0.05f)
        for (int l = 0; l < c->n_morph; l++)
            lw[l] = q->lead[l].state == LEAD_ON ? 1.0f : 0.0f;
    /* Align on the centre of the QRS slope energy, not on the fiducial
     * extremum: the largest peak may flip between R and S from beat to beat,
     * the energy centre does not. */
    span_load(c, q, qb->sample);
    cut_beat(c, c, qb->sample, g);
    float centre_ms = slope_centre_ms(c, g, lw);
    int64_t shift = (int64_t)floor(centre_ms * c->fs_hz / 1000.0 + 0.5);
    if (shift != 0)
        cut_beat(c, c, qb->sample + shift, g);

    /* Timing. */
    float rr_ms = 0.0f;
    if (c->last_fid >= 0)
        rr_ms = (float)((double)(qb->sample - c->last_fid) * 1000.0 / c->fs_hz);
    float rr_med = median_or(c->rr_hist, c->n_rr, rr_ms > 0 ? rr_ms : 800.0f);
    float nrr_med = median_or(c->nrr_hist, c->n_nrr, rr_med);
    float prem = rr_ms > 0 ? rr_ms / rr_med : 1.0f;
    float prem_n = rr_ms > 0 ? rr_ms / nrr_med : 1.0f;
    float rr_ratio = (rr_ms > 0 && c->last_rr_ms > 0) ? rr_ms / c->last_rr_ms : 1.0f;

    /* Best matching template: the dominant one first, which most beats
     * match at once; the others only when it is not a near-perfect match. */
    const ct_template *D = c->dominant >= 0 ? &c->tpl[c->dominant] : NULL;
    match dm = {1.0f, 1.0f, 1.0f, 0.0f, 0.0f, {0}};
    int best = -1;
    match bm = dm;
    if (D) {
        dm = compare(c, g, D, lw);
        if (dm.amp_ratio >= 0.6f && dm.amp_ratio <= 1.6f) {
            best = c->dominant;
            bm = dm;
        }
    }
    if (best < 0 || bm.corr < 0.97f) {
        for (int k = 0; k < CT_CLS_MAX_TEMPLATES; k++) {
            if (!c->tpl[k].used || k == c->dominant)
                continue;
            match m = compare(c, g, &c->tpl[k], lw);
            if (m.amp_ratio < 0.6f || m.amp_ratio > 1.6f)
                continue;
            if (best < 0 || m.corr > bm.corr) {
                best = k;
                bm = m;
            }
        }
    }
    if (best >= 0 && bm.corr < JOIN_CORR)
        best = -1;

    float max_slope = 0.0f;
    float w = width_ms(c, g, lw, &max_slope);
    float d_slope = D ? D->max_slope : max_slope;
    float dhf = D ? D->hf : 0.0f;

    /* Join or found a cluster. */
    for (int k = 0; k < CT_CLS_MAX_TEMPLATES; k++)
        c->tpl[k].count *= DECAY, c->tpl[k].prem_sum *= DECAY;
    if (best >= 0) {
        template_join(c, &c->tpl[best], g, lw, c->n_beats, prem, &bm);
    } else {
        int slot = -1;
        for (int k = 0; k < CT_CLS_MAX_TEMPLATES && slot < 0; k++)
            if (!c->tpl[k].used)
                slot = k;
        if (slot < 0) {
            float lo = 1e30f;
            for (int k = 0; k < CT_CLS_MAX_TEMPLATES; k++)
                if (k != c->dominant && c->tpl[k].count < lo) {
                    lo = c->tpl[k].count;
                    slot = k;
                }
        }
        template_set(c, &c->tpl[slot], g, lw, c->n_beats, prem);
        best = slot;
    }
    const ct_template *T = &c->tpl[best];
    float total = 0.0f;
    for (int k = 0; k < CT_CLS_MAX_TEMPLATES; k++)
        if (c->tpl[k].used)
            total += c->tpl[k].count;
    match cm = dm;
    if (D && best != c->dominant)
        cm = compare(c, (float(*)[CT_CLS_NPTS])T->wave, D, lw);
    else if (D)
        cm.corr = 1.0f;
    float dw = D && D->width_ms > 0 ? D->width_ms : (w > 0 ? w : 100.0f);

    float nz = 0.0f, nw = 0.0f;
    for (int l = 0; l < q->n_leads; l++) {
        const ct_qrs_lead *L = &q->lead[l];
        if (L->state == LEAD_ON && L->level > 1e-9f) {
            float wl = L->weight > 0.05f ? L->weight : 0.05f;
            nz += wl * L->noise / L->level;
            nw += wl;
        }
    }
    float hf = hf_content(c, g, lw);
    if (!D)
        dhf = hf;
    float wd = clampf(w - dw, -20.0f, 80.0f);
    float corr = clampf(dm.corr, -1.0f, 1.0f);
    feat[F_WIDTH_DIFF] = wd;
    feat[F_WIDTH_EXCESS] = wd > 20.0f ? wd - 20.0f : 0.0f;
    feat[F_DECORR] = 1.0f - corr;
    feat[F_DECORR_MIN] = 1.0f - clampf(dm.corr_min, -1.0f, 1.0f);
    feat[F_AMP] = log2f(dm.amp_ratio > 1e-3f ? dm.amp_ratio : 1e-3f);
    feat[F_AREA] = logf(dm.area > 0.05f ? dm.area : 0.05f);
    feat[F_PREM] = prem < 1.5f ? prem : 1.5f;
    feat[F_RR_RATIO] = rr_ratio < 1.5f ? rr_ratio : 1.5f;
    feat[F_CL_FRAC] = total > 0 ? T->count / total : 1.0f;
    float clp = T->prem_sum / (T->count > 0 ? T->count : 1.0f);
    feat[F_CL_PREM] = clp < 1.5f ? clp : 1.5f;
    feat[F_CL_WIDTH_DIFF] = clampf(T->width_ms - dw, -20.0f, 80.0f);
    feat[F_CL_DECORR] = 1.0f - clampf(cm.corr, -1.0f, 1.0f);
    feat[F_IS_DOM] = (D && best == c->dominant) ? 1.0f : 0.0f;
    float sr = d_slope > 0 ? max_slope / d_slope : 1.0f;
    feat[F_SLOPE] = logf(sr > 0.05f ? sr : 0.05f);
    feat[F_NOISE] = nw > 0 ? (nz / nw < 1.0f ? nz / nw : 1.0f) : 1.0f;
    float hr_ = dhf > 1e-6f ? hf / dhf : 1.0f;
    feat[F_HF] = logf(hr_ > 0.1f ? hr_ : 0.1f);
    feat[F_POST] = dm.post;
    feat[F_DECORR_WIDE] = (1.0f - corr) * (wd > 0 ? wd : 0.0f);
    feat[F_EARLY_WIDE] = (prem < 1.0f ? 1.0f - prem : 0.0f) * (wd > 0 ? wd : 0.0f);
    feat[F_PREM_N] = prem_n < 1.5f ? prem_n : 1.5f;

    elect_dominant(c);

    /* Until a dominant beat exists there is nothing to compare with. */
    float sv = D ? ct_linear_model_score(&ct_beat_model_v, feat) : -10.0f;
    float pv = 1.0f / (1.0f + expf(-sv));
    int is_s = D && dm.corr >= S_MIN_CORR && prem_n < S_MAX_PREM_N &&
               rr_ratio < S_MAX_RR_RATIO && w - dw < S_MAX_WIDTH_DIFF;
    if (pv >= 0.5f) {
        out->cls = CT_BEAT_V;
        out->confidence = pv;
    } else if (is_s) {
        out->cls = CT_BEAT_S;
        /* How far inside the rule the beat is. */
        out->confidence = clampf(0.5f + (S_MAX_PREM_N - prem_n) * 2.0f, 0.5f, 1.0f) * (1.0f - pv);
    } else {
        out->cls = CT_BEAT_N;
        out->confidence = 1.0f - pv;
    }
    out->template_id = T->id;
    out->rr_ms = rr_ms;
    /* An artefact leaves the interval histories alone. */
    if (D && ct_linear_model_score(&ct_beat_model_artifact, feat) >= 0.0f)
        return 0;

    /* Interval histories. */
    if (rr_ms > 0.0f && rr_ms < 3000.0f) {
        ct_hist_push(c->rr_hist, rr_ms);
        if (c->n_rr < CT_HIST)
            c->n_rr++;
        /* "Normal" intervals join two beats of the dominant morphology: a
         * matter of templates, not of the trained model, so that the
         * features the model is trained on do not depend on it. */
        int dom = feat[F_IS_DOM] > 0.5f;
        if (dom && c->last_dom) {
            ct_hist_push(c->nrr_hist, rr_ms);
            if (c->n_nrr < CT_HIST)
                c->n_nrr++;
        }
    }
    float hr_rr = c->n_nrr >= 2 ? ct_median8(c->nrr_hist, c->n_nrr)
                                : (c->n_rr >= 2 ? ct_median8(c->rr_hist, c->n_rr) : 0.0f);
    out->hr_bpm = hr_rr > 0 ? 60000.0f / hr_rr : 0.0f;
    c->last_rr_ms = rr_ms;
    c->last_fid = qb->sample;
    c->last_cls = out->cls;
    c->last_dom = feat[F_IS_DOM] > 0.5f;
    c->n_beats++;
    return 1;
}
