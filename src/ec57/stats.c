/* ec57/stats: the statistics EC57 reports, computed from the tallies of
 * bxb.c and epicmp.c. The one idea: per-record figures follow bxb and epicmp,
 * aggregate figures follow sumstats, because that is how the field's numbers
 * are made; where the two programs disagree (sumstats' SVEB +P, its duration
 * statistics rebuilt from rounded text) this file does what sumstats does and
 * says so. An undefined statistic (nothing to divide by) stays undefined:
 * defined = 0 and percent NAN, never a number that could be mistaken for a
 * result. */
#include <math.h>
#include <string.h>

#include "cardiotwin/ec57.h"
#include "internal.h"

enum { N = CT_EC57_N, S = CT_EC57_S, V = CT_EC57_V, F = CT_EC57_F, Q = CT_EC57_Q,
       O = CT_EC57_O, X = CT_EC57_X };

static ct_ec57_stat ratio(int64_t num, int64_t den)
{
    ct_ec57_stat s = {0, NAN, num, den};
    if (den > 0) {
        s.defined = 1;
        s.percent = (100.0 * (double)num) / (double)den;
    }
    return s;
}

static ct_ec57_stat undefined(void)
{
    ct_ec57_stat s = {0, NAN, 0, 0};
    return s;
}

/* The counts behind each statistic, as bxb names them. */
typedef struct counts {
    int64_t qtp, qfn, qfp;
    int64_t vtp, vfn, vfp, vtn;
    int64_t stp, sfn, sfp;
    int64_t sfp_sumstats;
} counts;

static void tally(const ct_ec57_beat_stats *st, counts *c)
{
    const int64_t(*m)[CT_EC57_N_CLASSES] = st->m;
    memset(c, 0, sizeof *c);
    for (int r = N; r <= Q; r++) {
        for (int t = N; t <= Q; t++)
            c->qtp += m[r][t];
        c->qfn += m[r][O] + m[r][X];
    }
    for (int r = O; r <= X; r++)
        for (int t = N; t <= Q; t++)
            c->qfp += m[r][t];
    c->vtp = m[V][V];
    c->vfn = m[V][N] + m[V][S] + m[V][F] + m[V][Q] + m[V][O] + m[V][X];
    c->vfp = m[N][V] + m[S][V] + m[O][V] + m[X][V];
    /* Every pair in which neither side says V, and no beat is missed. */
    for (int r = N; r <= X; r++) {
        if (r == V)
            continue;
        for (int t = N; t <= Q; t++)
            if (t != V)
                c->vtn += m[r][t];
    }
    c->stp = m[S][S];
    c->sfn = m[S][N] + m[S][V] + m[S][F] + m[S][Q] + m[S][O] + m[S][X];
    c->sfp = m[N][S] + m[V][S] + m[F][S] + m[O][S] + m[X][S];
    /* sumstats reads "Fs'" (Fs + Qs) but leaves it out of SVEB +P. */
    c->sfp_sumstats = m[N][S] + m[V][S] + m[O][S] + m[X][S];
}

int64_t ct_ec57_reference_beats(const ct_ec57_beat_stats *s)
{
    int64_t n = 0;
    for (int r = N; r <= Q; r++)
        for (int t = N; t <= X; t++)
            n += s->m[r][t];
    return n;
}

void ct_ec57_beat_summary_record(const ct_ec57_beat_stats *s, ct_ec57_beat_summary *out)
{
    counts c;
    tally(s, &c);
    out->qrs_se = ratio(c.qtp, c.qtp + c.qfn);
    out->qrs_pp = ratio(c.qtp, c.qtp + c.qfp);
    out->veb_se = ratio(c.vtp, c.vtp + c.vfn);
    out->veb_pp = ratio(c.vtp, c.vtp + c.vfp);
    out->veb_fpr = ratio(c.vfp, c.vtn + c.vfp);
    out->sveb_se = ratio(c.stp, c.stp + c.sfn);
    out->sveb_pp = ratio(c.stp, c.stp + c.sfp);
    out->rr_rms_ms = undefined();
    if (s->rr_pairs > 0) {
        /* bxb: sqrt(ssrre/nrre) * 1000 / strtim("1"). */
        int64_t one_s = ct_ec57_seconds_to_samples(1.0, s->fs_hz);
        if (one_s > 0) {
            out->rr_rms_ms.defined = 1;
            out->rr_rms_ms.percent =
                sqrt(s->rr_sq_err_samples2 / (double)s->rr_pairs) * 1000.0 / (double)one_s;
            out->rr_rms_ms.den = s->rr_pairs;
        }
    }
}

void ct_ec57_beat_stats_add(ct_ec57_beat_stats *acc, const ct_ec57_beat_stats *s)
{
    for (int r = 0; r < CT_EC57_N_CLASSES; r++)
        for (int t = 0; t < CT_EC57_N_CLASSES; t++)
            acc->m[r][t] += s->m[r][t];
    acc->rr_pairs += s->rr_pairs;
    acc->rr_sq_err_samples2 += s->rr_sq_err_samples2;
    acc->test_shutdown_samples += s->test_shutdown_samples;
}

void ct_ec57_beat_summary_gross(const ct_ec57_beat_stats *recs, size_t n,
                                ct_ec57_beat_summary *out)
{
    ct_ec57_beat_stats sum;
    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < n; i++)
        ct_ec57_beat_stats_add(&sum, &recs[i]);
    counts c;
    tally(&sum, &c);
    ct_ec57_beat_summary_record(&sum, out);
    out->sveb_pp = ratio(c.stp, c.stp + c.sfp_sumstats);
    out->rr_rms_ms = undefined();
}

/* sumstats' average: the mean of num/den over the records where den > 0. */
typedef struct mean_acc {
    double sum;
    int64_t n;
} mean_acc;

static void mean_add(mean_acc *a, int64_t num, int64_t den)
{
    if (den > 0) {
        a->sum += (double)num / (double)den;
        a->n++;
    }
}

static ct_ec57_stat mean_of(const mean_acc *a)
{
    ct_ec57_stat s = {0, NAN, 0, a->n};
    if (a->n > 0) {
        s.defined = 1;
        s.percent = 100.0 * a->sum / (double)a->n;
    }
    return s;
}

void ct_ec57_beat_summary_average(const ct_ec57_beat_stats *recs, size_t n,
                                  ct_ec57_beat_summary *out)
{
    mean_acc qs = {0, 0}, qp = {0, 0}, vs = {0, 0}, vp = {0, 0}, vf = {0, 0}, ss = {0, 0},
             sp = {0, 0};
    for (size_t i = 0; i < n; i++) {
        counts c;
        tally(&recs[i], &c);
        mean_add(&qs, c.qtp, c.qtp + c.qfn);
        mean_add(&qp, c.qtp, c.qtp + c.qfp);
        mean_add(&vs, c.vtp, c.vtp + c.vfn);
        mean_add(&vp, c.vtp, c.vtp + c.vfp);
        mean_add(&vf, c.vfp, c.vtn + c.vfp);
        mean_add(&ss, c.stp, c.stp + c.sfn);
        mean_add(&sp, c.stp, c.stp + c.sfp_sumstats);
    }
    out->qrs_se = mean_of(&qs);
    out->qrs_pp = mean_of(&qp);
    out->veb_se = mean_of(&vs);
    out->veb_pp = mean_of(&vp);
    out->veb_fpr = mean_of(&vf);
    out->sveb_se = mean_of(&ss);
    out->sveb_pp = mean_of(&sp);
    out->rr_rms_ms = undefined();
}

/* ---- atrial fibrillation ---------------------------------------------------- */

int ct_ec57_epicmp_round(double percent)
{
    return (int)(percent + 0.5);
}

void ct_ec57_af_summary_record(const ct_ec57_af_stats *s, ct_ec57_af_summary *out)
{
    out->episode_se = ratio(s->se_tp, s->se_tp + s->se_fn);
    out->episode_pp = ratio(s->pp_tp, s->pp_tp + s->pp_fp);
    out->duration_se = ratio(s->ref_overlap_samples, s->ref_duration_samples);
    out->duration_pp = ratio(s->test_overlap_samples, s->test_duration_samples);
}

/* A duration as epicmp prints it (mstimstr: whole seconds, then milliseconds
 * rounded) and sumstats reads it back (strtim at 1000 Hz): milliseconds. */
static int64_t printed_ms(int64_t samples, double fs_hz)
{
    if (samples <= 0)
        return 0;
    int64_t s = (int64_t)((double)samples / fs_hz);
    int64_t ms = (int64_t)(((double)samples - (double)s * fs_hz) * 1000.0 / fs_hz + 0.5);
    if (ms == 1000) {
        ms = 0;
        s++;
    }
    return s * 1000 + ms;
}

/* The percentage epicmp prints (an integer, "-" read back as 0), over 100. */
static double printed_fraction(int64_t num, int64_t den)
{
    if (den <= 0)
        return 0.0;
    return ct_ec57_epicmp_round((100.0 * (double)num) / (double)den) / 100.0;
}

typedef struct af_sumstats {
    int64_t ets, efn, etp, efp;
    int64_t overlap_ms, ref_ms, test_ms;
    mean_acc es, ep;
    double cds, cdp;
    int64_t nds, ndp;
} af_sumstats;

static void af_sumstats_run(const ct_ec57_af_stats *recs, size_t n, af_sumstats *a)
{
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        const ct_ec57_af_stats *r = &recs[i];
        a->ets += r->se_tp;
        a->efn += r->se_fn;
        a->etp += r->pp_tp;
        a->efp += r->pp_fp;
        mean_add(&a->es, r->se_tp, r->se_tp + r->se_fn);
        mean_add(&a->ep, r->pp_tp, r->pp_tp + r->pp_fp);
        int64_t rt = printed_ms(r->ref_duration_samples, r->fs_hz);
        int64_t tt = printed_ms(r->test_duration_samples, r->fs_hz);
        a->ref_ms += rt;
        a->test_ms += tt;
        double ds = printed_fraction(r->ref_overlap_samples, r->ref_duration_samples);
        double dp = printed_fraction(r->test_overlap_samples, r->test_duration_samples);
        if (rt > 0) {
            a->cds += ds;
            a->nds++;
        }
        if (tt > 0) {
            a->cdp += dp;
            a->ndp++;
        }
        /* sumstats keeps one overlap per record, from the longer side, and
         * adds it to a long (the sum is truncated each time). */
        if (rt > tt)
            a->overlap_ms = (int64_t)((double)a->overlap_ms + (double)rt * ds);
        else if (tt > 0)
            a->overlap_ms = (int64_t)((double)a->overlap_ms + (double)tt * dp);
    }
}

void ct_ec57_af_summary_gross(const ct_ec57_af_stats *recs, size_t n, ct_ec57_af_summary *out)
{
    af_sumstats a;
    af_sumstats_run(recs, n, &a);
    out->episode_se = ratio(a.ets, a.ets + a.efn);
    out->episode_pp = ratio(a.etp, a.etp + a.efp);
    out->duration_se = ratio(a.overlap_ms, a.ref_ms);
    out->duration_pp = ratio(a.overlap_ms, a.test_ms);
}

void ct_ec57_af_summary_average(const ct_ec57_af_stats *recs, size_t n, ct_ec57_af_summary *out)
{
    af_sumstats a;
    af_sumstats_run(recs, n, &a);
    out->episode_se = mean_of(&a.es);
    out->episode_pp = mean_of(&a.ep);
    mean_acc ds = {a.cds, a.nds}, dp = {a.cdp, a.ndp};
    out->duration_se = mean_of(&ds);
    out->duration_pp = mean_of(&dp);
}
