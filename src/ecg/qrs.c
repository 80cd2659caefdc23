/* ecg/qrs: streaming multi-lead QRS detection.
 *
 * The one idea: each lead is turned into a QRS "energy" feature by cheap
 * integer filters (Pan & Tompkins 1985; Hamilton & Tompkins 1986), the
 * features of all leads are normalised by each lead's own QRS level and
 * summed with weights that measure each lead's quality, and one set of
 * adaptive thresholds decides on the fused feature. A lead that goes flat,
 * off, dead or noisy loses its weight, so it can neither hide nor invent
 * beats; two good leads add their evidence, and when they disagree about a
 * candidate each votes with what it sees.
 *
 * Per lead, at any sampling rate (every length below is round(fs * time)):
 *   low-pass   two boxcars of 25 ms (zeros at 40 Hz and its multiples),
 *   high-pass  subtract a centred 95 ms boxcar (about 5 Hz),
 *   derivative over 8 ms, absolute value,
 *   moving-window integral over 80 ms  -> mwi (the lead's feature).
 * All boxcars are running sums on power-of-two rings: O(1) per sample, no
 * multiplication in the integer part, exact (no drift). The filters run by
 * blocks of frames ahead of the decisions (they depend on the input only).
 *
 * Fused feature F = sum_l w_l * mwi_l / level_l / sum_l w_l, where level_l is
 * the median of the lead's last 8 QRS peaks and w_l in [0,1] falls as the
 * ratio (largest mwi between beats) / level_l rises (noise, big T waves).
 *
 * Decision on F (Hamilton & Tompkins 1986, made causal):
 *   - a candidate is the largest local maximum of F; it is decided WAIT
 *     (130 ms) after it unless a larger one arrives first, or later while F
 *     still climbs, never later than the latency bound allows;
 *   - threshold = noise + f * (qrs - noise), medians of the last 8 noise and
 *     QRS peaks; Hamilton's f = 0.3125 becomes f = 0.2 + 2 noise/qrs, at
 *     most 0.35: a clean signal can afford to hear small beats (aberrant,
 *     low-slope premature beats), a noisy one cannot;
 *   - refractory period 200 ms; between 200 and 360 ms a candidate under 0.7
 *     of the QRS level whose maximal slope is under half that of the QRS is
 *     a T wave (Pan & Tompkins);
 *   - a candidate whose derivative swings one way only is a baseline shift
 *     (Hamilton's BLSCheck);
 *   - instead of a search-back (which would report beats long after they
 *     happened) the threshold follows the expected RR interval: up to 2.2x
 *     for very early candidates when the signal is noisy, full until 0.7 RR,
 *     0.8 at 1.0 RR, half from 1.5 RR on;
 *   - when the leads disagree, each votes (leads_agree).
 * The fiducial point is the extremum of the band-passed signal of the lead
 * that contributes most to the peak, searched +-70 ms around the feature's
 * centre and never earlier than CT_ECG_MAX_LATENCY_MS before the decision,
 * which bounds the latency by construction (measured: docs/detector.md).
 *
 * References:
 *   J. Pan, W. J. Tompkins, "A real-time QRS detection algorithm",
 *     IEEE Trans. Biomed. Eng. 32(3):230-236, 1985.
 *   P. S. Hamilton, W. J. Tompkins, "Quantitative investigation of QRS
 *     detection rules using the MIT/BIH arrhythmia database",
 *     IEEE Trans. Biomed. Eng. 33(12):1157-1165, 1986.
 *   P. S. Hamilton, "Open source ECG analysis", Computers in Cardiology
 *     29:101-104, 2002.
 *   G. B. Moody, R. G. Mark, "Development and evaluation of a 2-lead ECG
 *     analysis program", Computers in Cardiology 9:39-44, 1982 (two-lead
 *     detection and its evaluation on the MIT-BIH database). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ecg_internal.h"

/* Parameters (seconds unless said otherwise; docs/detector.md). */
#define P_LP_S 0.025          /* each of the two low-pass boxcars */
#define P_HP_S 0.095          /* high-pass boxcar */
#define P_DER_S 0.008         /* derivative span */
#define P_MWI_S 0.080         /* moving-window integral */
#define P_WAIT_S 0.130        /* decision wait after a candidate */
#define P_REFRACTORY_S 0.200
#define P_TWAVE_S 0.360       /* T-wave zone end */
#define P_TW_LEVEL 0.7f       /* a T wave stays under this share of the QRS level */
#define P_RING_S 2.5          /* history kept per lead */
#define P_FID_HALF_S 0.070    /* fiducial search, each side of the feature centre */
#define P_TH0 0.2f            /* threshold fraction on a clean signal ... */
#define P_THK 2.0f            /* ... rising with noise/QRS ... */
#define P_TH 0.35f            /* ... up to this */
#define P_EARLY_X 0.6f        /* before this share of RR, early candidates ... */
#define P_EARLY_K 1.2f        /* ... pay up to this much more threshold, */
#define P_EARLY_R0 0.03f      /* from no extra at noise/QRS 0.03 */
#define P_EARLY_R1 0.07f      /* to the full extra at 0.10 */
#define P_VOTE_TH 0.4f        /* a lead sees a QRS at this share of its level */
#define P_SILENT 0.25f        /* a lead is silent under this share */
#define P_PLAUS 5.0f          /* far beyond its level, a lead's "yes" fades */
#define P_DEAD 0.03f          /* a lead this quiet while another sees beats is dead */

static int iround(double v)
{
    return (int)floor(v + 0.5);
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

size_t ct_qrs_ring_len(double fs_hz)
{
    size_t need = (size_t)ceil(fs_hz * P_RING_S);
    size_t r = 1;
    while (r < need)
        r <<= 1;
    return r;
}

size_t ct_qrs_bytes(double fs_hz, int n_leads)
{
    size_t r = ct_qrs_ring_len(fs_hz);
    return (size_t)n_leads * r * (5 * sizeof(int32_t) + sizeof(float));
}

static int ilog2_floor(int v)
{
    int s = 0;
    while ((1 << (s + 1)) <= v)
        s++;
    return s;
}

void ct_qrs_init(ct_qrs *q, double fs_hz, int n_leads, const double *gain_adu_per_mv, void *mem)
{
    memset(q, 0, sizeof *q);
    q->fs_hz = fs_hz;
    q->n_leads = n_leads;
    q->ring = ct_qrs_ring_len(fs_hz);
    q->mask = (uint32_t)(q->ring - 1);
    q->L1 = iround(fs_hz * P_LP_S);
    if (q->L1 < 2)
        q->L1 = 2;
    q->L2 = iround(fs_hz * P_HP_S) | 1; /* odd: integer centre */
    q->Dhp = (q->L2 - 1) / 2;
    q->K = iround(fs_hz * P_DER_S);
    if (q->K < 1)
        q->K = 1;
    q->L3 = iround(fs_hz * P_MWI_S);
    q->hp_delay = (q->L1 - 1) + q->Dhp;
    q->delay = q->hp_delay + q->K / 2 + (q->L3 - 1) / 2;
    q->wait = iround(fs_hz * P_WAIT_S);
    q->max_latency = (int)floor(fs_hz * CT_ECG_MAX_LATENCY_MS / 1000.0);
    q->refractory = iround(fs_hz * P_REFRACTORY_S);
    q->wait_max = q->max_latency - q->delay - 2;
    q->twave = iround(fs_hz * P_TWAVE_S);
    q->learn = iround(fs_hz * CT_ECG_LEARN_MS / 1000.0);
    q->blk_len = iround(fs_hz * 0.5);
    q->last_beat_t = -1;
    q->last_fid = -1;

    int sh2 = ilog2_floor(q->L1 * q->L1);
    q->sh2 = sh2;
    char *p = mem;
    size_t r = q->ring;
    for (int l = 0; l < n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        L->raw = (int32_t *)p;
        p += r * sizeof(int32_t);
        L->lp1 = (int32_t *)p;
        p += r * sizeof(int32_t);
        L->lp2 = (int32_t *)p;
        p += r * sizeof(int32_t);
        L->hp = (int32_t *)p;
        p += r * sizeof(int32_t);
        L->der = (int32_t *)p;
        p += r * sizeof(int32_t);
        L->mwi = (float *)p;
        p += r * sizeof(float);
        double g = gain_adu_per_mv[l] > 0 ? gain_adu_per_mv[l] : 200.0;
        /* lp2 is kept at gain L1^2 >> sh2; hp adds L2; mwi adds L3. The scale
         * makes mwi roughly "mV of slope" whatever fs and gain are. */
        double lp_gain = (double)(q->L1 * q->L1) / (double)(1 << sh2);
        L->mwi_scale = (float)(1.0 / (g * lp_gain * q->L2 * q->L3));
        L->state = LEAD_SETTLING;
        L->reported_state = -1;
        L->blk_min = INT32_MAX;
        L->blk_max = INT32_MIN;
        L->flat_thresh = (int32_t)(0.02 * g) > 2 ? (int32_t)(0.02 * g) : 2;
    }
}

/* Fills a lead's rings as if it had always been at v: no start-up step. */
static void prefill(ct_qrs *q, ct_qrs_lead *L, int32_t v)
{
    int32_t a = v * q->L1;
    int32_t b = (int32_t)(((int64_t)a * q->L1) >> q->sh2);
    for (size_t i = 0; i < q->ring; i++) {
        L->raw[i] = v;
        L->lp1[i] = a;
        L->lp2[i] = b;
        L->hp[i] = 0;
        L->der[i] = 0;
        L->mwi[i] = 0.0f;
    }
    L->s1 = (int64_t)a;
    L->s2 = (int64_t)a * q->L1;
    L->s3 = (int64_t)b * q->L2;
    L->s4 = 0;
    L->hold = v;
}

/* Weight of a lead from how its between-beat activity compares with its QRS. */
static float quality_weight(float noise, float level)
{
    if (level <= 1e-9f)
        return 0.0f;
    float rho = noise / level;
    return clampf((0.8f - rho) / 0.4f, 0.0f, 1.0f);
}

static void update_weights(ct_qrs *q)
{
    float sum = 0.0f;
    int n_on = 0;
    for (int l = 0; l < q->n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        if (L->state == LEAD_ON && L->level > 1e-9f) {
            sum += L->weight;
            n_on++;
        }
    }
    for (int l = 0; l < q->n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        if (L->state != LEAD_ON || L->level <= 1e-9f) {
            L->w_norm = 0.0f;
            continue;
        }
        /* All leads poor: still listen to them, equally. */
        float w = sum > 0.05f ? L->weight / sum : 1.0f / (float)n_on;
        L->w_norm = w / L->level;
    }
}

static void lead_set_state(ct_qrs *q, ct_qrs_lead *L, int state)
{
    if (L->state == state)
        return;
    L->state = state;
    L->state_since = q->n;
    q->quality_changed = 1;
    if (state == LEAD_SETTLING) {
        L->learn_max = 0.0f;
        L->learn_sum = 0.0;
        L->learn_n = 0;
    }
    /* The others take over (or share again) at once. */
    if (q->learned)
        update_weights(q);
}

/* A lead's learning window ended: set its levels from what it showed. */
static void lead_learned(ct_qrs *q, ct_qrs_lead *L)
{
    if (L->learn_max <= 1e-9f) {
        L->level = 0.0f;
        L->weight = 0.0f;
        return;
    }
    float mean = (float)(L->learn_sum / (double)(L->learn_n > 0 ? L->learn_n : 1));
    int keep = L->n_peak > 0 && L->level > 0.25f * L->learn_max && L->level < 4.0f * L->learn_max;
    if (!keep) {
        float lv = 0.6f * L->learn_max;
        for (int i = 0; i < CT_HIST; i++)
            L->peak_hist[i] = lv;
        L->level = lv;
        L->n_peak = 0;
        float nz = 1.5f * mean;
        for (int i = 0; i < CT_HIST; i++)
            L->noise_hist[i] = nz;
        L->noise = nz;
        L->n_noise = 0;
        /* Before beats are seen, judge the lead by how peaky it is: an ECG's
         * feature is high for a tenth of the time, noise's all the time. */
        float r = mean / L->learn_max;
        L->weight = clampf((0.45f - r) / 0.2f, 0.0f, 1.0f);
    }
    lead_set_state(q, L, LEAD_ON);
}

static void global_learned(ct_qrs *q)
{
    q->learned = 1;
    update_weights(q);
    float noise = 0.0f;
    for (int l = 0; l < q->n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        float mean = (float)(L->learn_sum / (double)(L->learn_n > 0 ? L->learn_n : 1));
        noise += L->w_norm * 1.5f * mean;
    }
    for (int i = 0; i < CT_HIST; i++) {
        q->qrs_hist[i] = 1.0f;
        q->noise_hist[i] = noise;
        q->rr_hist[i] = (float)(0.8 * q->fs_hz);
    }
    q->qrs_level = 1.0f;
    q->noise_level = noise;
    q->rr_mean = (float)(0.8 * q->fs_hz);
}

static float max_mwi(const ct_qrs *q, const ct_qrs_lead *L, int64_t a, int64_t b)
{
    float m = 0.0f;
    for (int64_t t = a; t <= b; t++) {
        float v = L->mwi[t & q->mask];
        if (v > m)
            m = v;
    }
    return m;
}

static int32_t max_abs_der(const ct_qrs *q, const ct_qrs_lead *L, int64_t a, int64_t b)
{
    int32_t m = 0;
    for (int64_t t = a; t <= b; t++) {
        int32_t v = L->der[t & q->mask];
        if (v < 0)
            v = -v;
        if (v > m)
            m = v;
    }
    return m;
}

/* Hamilton's baseline-shift check: a QRS swings both ways within 150 ms. */
static int baseline_shift(const ct_qrs *q, const ct_qrs_lead *L, int64_t t)
{
    int64_t a = t - q->L3 - iround(q->fs_hz * 0.14);
    int32_t mx = 0, mn = 0;
    int64_t tmx = t, tmn = t;
    for (int64_t i = a; i <= t; i++) {
        int32_t v = L->der[i & q->mask];
        if (v > mx) {
            mx = v;
            tmx = i;
        }
        if (v < mn) {
            mn = v;
            tmn = i;
        }
    }
    mn = -mn;
    int64_t dt = tmx > tmn ? tmx - tmn : tmn - tmx;
    if (mx > (mn >> 3) && mn > (mx >> 3) && dt < iround(q->fs_hz * 0.15))
        return 0;
    return 1;
}

/* When the leads disagree about a candidate, each casts a vote weighted by
 * its quality and by how clear its view is right now: a "yes" from a lead
 * that was already busy just before (a noise burst) or that jumps far beyond
 * its usual QRS level (an electrode artefact) counts little; a "no" counts
 * when the lead is quiet and was quiet before. Beats seen by every lead never
 * reach the vote. */
static int leads_agree(const ct_qrs *q, int64_t t)
{
    int64_t w = iround(q->fs_hz * 0.06);
    float yes = 0.0f, no = 0.0f;
    int n_yes = 0, n_no = 0;
    for (int l = 0; l < q->n_leads; l++) {
        const ct_qrs_lead *L = &q->lead[l];
        if (L->state != LEAD_ON || L->level <= 1e-9f || L->weight < 0.1f)
            continue;
        float e = max_mwi(q, L, t - w, t + w) / L->level;
        int64_t a = t - iround(q->fs_hz * 0.45);
        if (q->last_beat_t >= 0 && a < q->last_beat_t + iround(q->fs_hz * 0.25))
            a = q->last_beat_t + iround(q->fs_hz * 0.25);
        int64_t b = t - iround(q->fs_hz * 0.15);
        float pre = b > a ? max_mwi(q, L, a, b) / L->level : L->noise / L->level;
        if (e >= P_VOTE_TH) {
            float clear = clampf((e - pre) / e, 0.0f, 1.0f);
            float plaus = clampf((P_PLAUS - e) / (0.5f * P_PLAUS), 0.2f, 1.0f);
            yes += L->weight * clear * plaus;
            n_yes++;
        } else {
            float quiet = clampf((P_VOTE_TH - pre) / 0.3f, 0.0f, 1.0f);
            float silent = clampf((P_SILENT - e) / 0.15f, 0.0f, 1.0f);
            /* A lead quieter than it ever is between beats is saturated or
             * dead, not watching: its silence proves nothing. */
            float rho = L->noise / L->level;
            float alive = clampf(pre / (0.5f * rho + 1e-6f), 0.0f, 1.0f);
            no += L->weight * quiet * silent * alive;
            n_no++;
        }
    }
    if (n_yes == 0 || n_no == 0)
        return 1;
    return yes >= no;
}

static float threshold_profile(const ct_qrs *q, int64_t dt, float rho)
{
    if (q->last_beat_t < 0)
        return 1.0f;
    float x = (float)dt / q->rr_mean;
    /* Early candidates pay more, the more noise there is about. */
    float k = P_EARLY_K * clampf((rho - P_EARLY_R0) / P_EARLY_R1, 0.0f, 1.0f);
    if (x < P_EARLY_X)
        return 1.0f + k * (P_EARLY_X - x) / P_EARLY_X;
    if (x < 0.7f)
        return 1.0f;
    if (x < 1.0f)
        return 1.0f - 0.2f * (x - 0.7f) / 0.3f;
    if (x < 1.5f)
        return 0.8f - 0.3f * (x - 1.0f) / 0.5f;
    return 0.5f;
}

static void accept(ct_qrs *q, float v, int64_t t, int primary, float th, ct_qrs_beat *beat)
{
    int64_t n = q->n;
    /* Fiducial: extremum of the band-passed primary lead. */
    const ct_qrs_lead *P = &q->lead[primary];
    int64_t c = t - q->delay;
    int64_t half = iround(q->fs_hz * P_FID_HALF_S);
    int64_t lo = c - half, hi = c + half;
    int64_t earliest = n + 1 - q->max_latency;
    if (lo < earliest)
        lo = earliest;
    if (hi > n - q->hp_delay)
        hi = n - q->hp_delay;
    if (hi < lo)
        hi = lo;
    int64_t fid = lo;
    int32_t best = -1;
    for (int64_t r = lo; r <= hi; r++) {
        int32_t h = P->hp[(r + q->hp_delay) & q->mask];
        if (h < 0)
            h = -h;
        if (h > best) {
            best = h;
            fid = r;
        }
    }
    if (fid < 0)
        fid = 0;

    /* Per-lead levels, noise and slope, measured around this beat. */
    int64_t w8 = iround(q->fs_hz * 0.08);
    for (int l = 0; l < q->n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        if (L->state != LEAD_ON)
            continue;
        float pk = max_mwi(q, L, t - w8, t + w8 < n ? t + w8 : n);
        ct_hist_push(L->peak_hist, pk);
        if (L->n_peak < CT_HIST)
            L->n_peak++;
        L->level = ct_median8(L->peak_hist, CT_HIST);
        ct_hist_push(L->slope_hist, (float)max_abs_der(q, L, t - q->L3, t));
        L->slope = ct_median8(L->slope_hist, L->n_peak);
        if (q->last_beat_t >= 0) {
            int64_t a = q->last_beat_t + iround(q->fs_hz * 0.25);
            int64_t b = t - iround(q->fs_hz * 0.12);
            int64_t oldest = n - (int64_t)q->ring + 1 + CT_QRS_BLOCK;
            if (a < oldest)
                a = oldest;
            if (a < t - iround(q->fs_hz * 2.0))
                a = t - iround(q->fs_hz * 2.0);
            if (b > a) {
                ct_hist_push(L->noise_hist, max_mwi(q, L, a, b));
                if (L->n_noise < CT_HIST)
                    L->n_noise++;
                /* Fast attack: two noisy intervals in a row count at once. */
                float recent = 0.5f * (L->noise_hist[0] + L->noise_hist[1]);
                float med = ct_median8(L->noise_hist, CT_HIST);
                L->noise = recent > med ? recent : med;
            }
        }
        L->weight = quality_weight(L->noise, L->level);
        /* Noise is reported with hysteresis, so that it does not flicker. */
        int noisy = L->noisy ? L->weight < 0.5f : L->weight < 0.2f;
        if (noisy != L->noisy) {
            L->noisy = noisy;
            q->quality_changed = 1;
        }
    }
    update_weights(q);

    ct_hist_push(q->qrs_hist, v);
    q->qrs_level = ct_median8(q->qrs_hist, CT_HIST);
    if (q->last_beat_t >= 0) {
        int64_t dt = t - q->last_beat_t;
        if (dt < iround(q->fs_hz * 3.0)) {
            ct_hist_push(q->rr_hist, (float)dt);
            q->rr_mean = ct_median8(q->rr_hist, CT_HIST);
        }
    }
    q->last_beat_t = t;
    q->last_fid = fid;
    q->n_beats++;
    beat->sample = fid;
    beat->feat_t = t;
    beat->strength = th > 0 ? v / th : 0.0f;
    beat->primary = primary;
}

static int decide(ct_qrs *q, float v, int64_t t, ct_qrs_beat *beat)
{
    int64_t dt = q->last_beat_t >= 0 ? t - q->last_beat_t : INT64_MAX;
    if (dt < q->refractory)
        return 0;
    /* Hamilton's fraction, lowered when the recent noise peaks are small
     * against the beats: a clean signal can afford to hear small beats. */
    float rho = q->qrs_level > 1e-9f ? q->noise_level / q->qrs_level : 1.0f;
    float frac = clampf(P_TH0 + P_THK * rho, P_TH0, P_TH);
    float th = q->noise_level + frac * (q->qrs_level - q->noise_level);
    float thm = th * threshold_profile(q, dt, rho);
    if (v < thm) {
        ct_hist_push(q->noise_hist, v);
        q->noise_level = ct_median8(q->noise_hist, CT_HIST);
        return 0;
    }
    /* The lead that contributes most to this peak speaks for the beat. */
    int primary = 0;
    float best = -1.0f;
    for (int l = 0; l < q->n_leads; l++) {
        const ct_qrs_lead *L = &q->lead[l];
        float c = L->w_norm * L->mwi[t & q->mask];
        if (c > best) {
            best = c;
            primary = l;
        }
    }
    const ct_qrs_lead *P = &q->lead[primary];
    if (!leads_agree(q, t)) {
        ct_hist_push(q->noise_hist, v);
        q->noise_level = ct_median8(q->noise_hist, CT_HIST);
        return 0;
    }
    if (baseline_shift(q, P, t)) {
        ct_hist_push(q->noise_hist, v);
        q->noise_level = ct_median8(q->noise_hist, CT_HIST);
        return 0;
    }
    /* A T wave is slow and smaller than the beats; a wide premature beat
     * (R on T) is slow too but carries as much energy as a QRS. */
    if (dt < q->twave && P->n_peak > 0 && v < P_TW_LEVEL * q->qrs_level) {
        float s = (float)max_abs_der(q, P, t - q->L3, t);
        if (s < 0.5f * P->slope) {
            ct_hist_push(q->noise_hist, v);
            q->noise_level = ct_median8(q->noise_hist, CT_HIST);
            return 0;
        }
    }
    accept(q, v, t, primary, th, beat);
    return 1;
}

/* Every half second: a lead is flat when its samples stayed within 2 ADC
 * steps or 20 uV for three blocks in a row, or dead when for two blocks its
 * QRS feature stayed under P_DEAD of its own QRS level while another lead
 * saw beats (an amplifier saturated after a step decays slowly: its range is
 * not flat, but it sees nothing; during a pause every lead is quiet and none
 * is dead). Either way it stops voting and re-learns its level when it
 * moves again. */
static void block_check(ct_qrs *q)
{
    int seen = 0;
    for (int l = 0; l < q->n_leads; l++) {
        const ct_qrs_lead *L = &q->lead[l];
        if (L->state == LEAD_ON && L->level > 0.0f && L->blk_mwi >= 0.5f * L->level)
            seen = 1;
    }
    for (int l = 0; l < q->n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        if (L->blk_max >= L->blk_min) { /* the lead was present */
            int32_t range = L->blk_max - L->blk_min;
            int quiet = L->state == LEAD_ON && L->n_peak > 0 && L->blk_mwi < P_DEAD * L->level;
            int alive = L->blk_mwi >= 2.0f * P_DEAD * L->level;
            if (range <= L->flat_thresh) {
                if (++L->flat_blocks >= 3 && L->state != LEAD_FLAT)
                    lead_set_state(q, L, LEAD_FLAT);
            } else if (quiet && seen) {
                if (++L->flat_blocks >= 2 && L->state != LEAD_FLAT)
                    lead_set_state(q, L, LEAD_FLAT);
            } else if (quiet) {
                /* Everyone quiet: a pause, not evidence either way. */
            } else if (L->state != LEAD_FLAT || alive || L->level <= 0.0f) {
                L->flat_blocks = 0;
                if (L->state == LEAD_FLAT)
                    lead_set_state(q, L, LEAD_SETTLING);
            }
        }
        L->blk_min = INT32_MAX;
        L->blk_max = INT32_MIN;
        L->blk_mwi = 0.0f;
    }
}

/* The filters of every lead over a block of frames, ahead of the decision
 * logic: they depend on nothing but the input, so running them by blocks
 * (their running sums in registers) changes no result. */
void ct_qrs_filter(ct_qrs *q, const int16_t *const *in, const int32_t *base, size_t nb)
{
    const uint32_t m = q->mask;
    const int L1 = q->L1, L2 = q->L2, Dhp = q->Dhp, K = q->K, L3 = q->L3;
    const int sh2 = q->sh2;
    for (int l = 0; l < q->n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        const int16_t *x = in[l];
        if (x && (L->filt_off || q->nf == 0))
            prefill(q, L, (int32_t)x[0] - base[l]);
        L->filt_off = x == NULL;
        int32_t *raw = L->raw, *lp1 = L->lp1, *lp2 = L->lp2, *hp = L->hp, *der = L->der;
        float *mwi = L->mwi;
        int64_t s1 = L->s1, s2 = L->s2, s3 = L->s3, s4 = L->s4;
        const float scale = L->mwi_scale;
        const int32_t bl = base[l];
        int32_t hold = L->hold;
        uint32_t i = (uint32_t)q->nf & m;
        for (size_t j = 0; j < nb; j++, i = (i + 1) & m) {
            int32_t xv = x ? (int32_t)x[j] - bl : hold;
            hold = xv;
            raw[i] = xv;
            s1 += xv - raw[(i - L1) & m];
            int32_t a = (int32_t)s1;
            lp1[i] = a;
            s2 += a - lp1[(i - L1) & m];
            int32_t b = (int32_t)(s2 >> sh2);
            lp2[i] = b;
            s3 += b - lp2[(i - L2) & m];
            int32_t h = (int32_t)((int64_t)lp2[(i - Dhp) & m] * L2 - s3);
            hp[i] = h;
            int32_t d = h - hp[(i - K) & m];
            der[i] = d;
            int32_t old = der[(i - L3) & m];
            s4 += (d < 0 ? -d : d) - (old < 0 ? -old : old);
            mwi[i] = (float)s4 * scale;
        }
        L->s1 = s1;
        L->s2 = s2;
        L->s3 = s3;
        L->s4 = s4;
        L->hold = hold;
    }
    q->nf += (int64_t)nb;
}

int ct_qrs_step(ct_qrs *q, const uint8_t *present, ct_qrs_beat *beat)
{
    const uint32_t m = q->mask;
    const int64_t n = q->n;
    const uint32_t i = (uint32_t)n & m;
    float F = 0.0f;
    int settle = q->learn / 2;

    for (int l = 0; l < q->n_leads; l++) {
        ct_qrs_lead *L = &q->lead[l];
        if (present[l]) {
            if (L->state == LEAD_OFF)
                lead_set_state(q, L, LEAD_SETTLING);
        } else if (L->state != LEAD_OFF) {
            lead_set_state(q, L, LEAD_OFF);
        }
        float mw = L->mwi[i];
        if (present[l]) {
            int32_t xv = L->raw[i];
            if (xv < L->blk_min)
                L->blk_min = xv;
            if (xv > L->blk_max)
                L->blk_max = xv;
            if (mw > L->blk_mwi)
                L->blk_mwi = mw;
        }
        if (L->state == LEAD_ON) {
            F += L->w_norm * mw;
        } else if (L->state == LEAD_SETTLING) {
            /* Skip the filters' own settling, then learn the levels. */
            int64_t age = n - L->state_since;
            if (age >= q->L2 + q->L3) {
                if (mw > L->learn_max)
                    L->learn_max = mw;
                L->learn_sum += mw;
                L->learn_n++;
            }
            int64_t need = q->learned ? settle : q->learn;
            if (age + 1 >= need) {
                lead_learned(q, L);
                if (q->learned)
                    update_weights(q);
            }
        }
    }
    if (++q->blk_count >= q->blk_len) {
        q->blk_count = 0;
        block_check(q);
    }
    if (!q->learned) {
        if (n + 1 >= q->learn)
            global_learned(q);
        q->n++;
        return 0;
    }

    int got = 0;
    if (q->f1 > q->f2 && q->f1 >= F) {
        if (!q->have_cand || q->f1 > q->cand_v) {
            q->have_cand = 1;
            q->cand_v = q->f1;
            q->cand_t = n - 1;
        }
    }
    q->f2 = q->f1;
    q->f1 = F;
    /* Decide WAIT after the candidate, later while the feature is still
     * climbing towards something larger (a QRS after a tall P wave), but
     * never so late that the beat would miss its latency bound. */
    if (q->have_cand && n - q->cand_t >= q->wait &&
        (F <= q->f2 || F < 0.3f * q->cand_v || n - q->cand_t >= q->wait_max)) {
        q->have_cand = 0;
        got = decide(q, q->cand_v, q->cand_t, beat);
    }
    q->n++;
    return got;
}

/* The common case, all leads present and on, the levels learnt: the same
 * decisions as ct_qrs_step, frame after frame, with the feature and peak
 * state in locals. Leaves at the first frame that needs more than that (a
 * block check, a candidate to decide, stop_at reached) so that the general
 * path handles it; returns the frames consumed. */
static size_t fast_steps(ct_qrs *q, size_t nb, int64_t stop_at)
{
    const uint32_t m = q->mask;
    const int nl = q->n_leads;
    int64_t n = q->n;
    float f1 = q->f1, f2 = q->f2;
    int have = q->have_cand;
    float cv = q->cand_v;
    int64_t ct = q->cand_t;
    int blk = q->blk_count;
    size_t j = 0;
    while (j < nb && n < stop_at && blk + 1 < q->blk_len) {
        const uint32_t i = (uint32_t)n & m;
        float F = 0.0f;
        for (int l = 0; l < nl; l++) {
            ct_qrs_lead *L = &q->lead[l];
            float mw = L->mwi[i];
            int32_t xv = L->raw[i];
            if (xv < L->blk_min)
                L->blk_min = xv;
            if (xv > L->blk_max)
                L->blk_max = xv;
            if (mw > L->blk_mwi)
                L->blk_mwi = mw;
            F += L->w_norm * mw;
        }
        if (f1 > f2 && f1 >= F && (!have || f1 > cv)) {
            have = 1;
            cv = f1;
            ct = n - 1;
        }
        if (have && n - ct >= q->wait && (F <= f1 || F < 0.3f * cv || n - ct >= q->wait_max))
            break; /* the general path decides this frame */
        f2 = f1;
        f1 = F;
        blk++;
        n++;
        j++;
    }
    q->n = n;
    q->f1 = f1;
    q->f2 = f2;
    q->have_cand = have;
    q->cand_v = cv;
    q->cand_t = ct;
    q->blk_count = blk;
    return j;
}

size_t ct_qrs_steps(ct_qrs *q, const uint8_t *present, size_t nb, int64_t stop_at,
                    ct_qrs_beat *beat, int *got)
{
    *got = 0;
    size_t j = 0;
    while (j < nb) {
        int fast = q->learned;
        for (int l = 0; l < q->n_leads && fast; l++)
            fast = present[l] && q->lead[l].state == LEAD_ON;
        if (fast) {
            j += fast_steps(q, nb - j, stop_at);
            if (j >= nb || q->n >= stop_at)
                return j;
        }
        *got = ct_qrs_step(q, present, beat);
        j++;
        if (*got || q->quality_changed || q->n >= stop_at)
            return j;
    }
    return j;
}
