/* ec57/bxb: beat-by-beat comparison, a re-implementation of the algorithm of
 * WFDB's bxb (the reference implementation named by ANSI/AAMI EC57:1998,
 * section 4.2, and EC38). The one idea: bxb is a two-stream merge that always
 * looks one annotation ahead in each stream (T, T' for the reference; t, t'
 * for the test). A reference beat T and the test beat t nearest to it are
 * paired when |T - t| <= 150 ms and no neighbour is a better partner; every
 * other beat is paired with a pseudo-beat (O, or X during shutdown). Because
 * the numbers must equal bxb's, this file keeps bxb's state machine as it is,
 * including the treatment of the first and last beats of the test period, of
 * VF episodes ([ and ]) and of shutdown (NOISE annotations with subtype bits 4
 * and 5 set), and the look-ahead tie-break added to bxb in November 2002.
 * docs/ec57.md states each rule in words.
 *
 * Cost: O(n_ref + n_test), no allocation. */
#include <math.h>
#include <string.h>

#include "cardiotwin/ec57.h"
#include "internal.h"

/* bxb's "huge_time": the time of a stream that has ended. */
#define HUGE_TIME INT64_MAX

/* Pseudo-labels bxb uses besides the class letters: '*' for a beat not to be
 * counted (VF, end of file) and 0 for "nothing read yet". */
#define LABEL_NONE 0
#define LABEL_SKIP '*'

typedef struct bxb_stream {
    const ct_wfdb_annotation *ann;
    size_t n, pos;
    int is_test;
    int64_t cur, next;       /* bxb T, T' (t, t' for the test stream) */
    int cur_cls, next_cls;   /* bxb A, A' as letters */
    int64_t prev;            /* bxb TT: time of the previous beat */
    int64_t rr;              /* RR interval ending at cur, 0 if not valid */
    /* The current and the previous shutdown and VF periods, -1 when none:
     * bxb remembers two of each and no more. */
    int64_t sdon, sdoff, psdon, psdoff;
    int64_t vfon, vfoff, pvfon, pvfoff;
} bxb_stream;

typedef struct bxb_state {
    bxb_stream ref, test;
    int64_t match_dt;
    int64_t end_time;
    ct_ec57_beat_stats *out;
} bxb_state;

int64_t ct_ec57_seconds_to_samples(double seconds, double fs_hz)
{
    /* WFDB strtim: (long)(x * f + 0.5), truncation towards zero included. */
    return (int64_t)(seconds * fs_hz + 0.5);
}

int64_t ct_ec57_match_window(double fs_hz)
{
    return ct_ec57_seconds_to_samples(CT_EC57_MATCH_WINDOW_S, fs_hz);
}

int64_t ct_ec57_standard_start(double fs_hz)
{
    return ct_ec57_seconds_to_samples(CT_EC57_LEARNING_PERIOD_S, fs_hz);
}

/* WFDB ecgmap.h isqrs(), then bxb's amap() with SVEB statistics on. */
static int bxb_label(int code)
{
    switch (code) {
    case CT_ANN_NORMAL:
    case CT_ANN_LBBB:
    case CT_ANN_RBBB:
    case CT_ANN_BBB:
        return 'N';
    case CT_ANN_NPC:
    case CT_ANN_APC:
    case CT_ANN_SVPB:
    case CT_ANN_ABERR:
    case CT_ANN_NESC:
    case CT_ANN_AESC:
    case CT_ANN_SVESC:
        return 'S';
    case CT_ANN_PVC:
    case CT_ANN_RONT:
    case CT_ANN_VESC:
        return 'V';
    case CT_ANN_FUSION:
        return 'F';
    case CT_ANN_UNKNOWN:
    case CT_ANN_PACE:  /* paced and paced-fusion beats count as Q (bxb) */
    case CT_ANN_PFUS:
    case CT_ANN_LEARN:
        return 'Q';
    case CT_ANN_FLWAV: /* a beat to isqrs, "other" to amap */
        return 'O';
    default:
        return LABEL_NONE;
    }
}

int ct_ec57_beat_class(int code)
{
    switch (bxb_label(code)) {
    case 'N': return CT_EC57_N;
    case 'S': return CT_EC57_S;
    case 'V': return CT_EC57_V;
    case 'F': return CT_EC57_F;
    case 'Q': return CT_EC57_Q;
    case 'O': return CT_EC57_O;
    default: return -1;
    }
}

char ct_ec57_class_letter(int cls)
{
    static const char letters[CT_EC57_N_CLASSES] = {'N', 'S', 'V', 'F', 'Q', 'O', 'X'};
    return cls >= 0 && cls < CT_EC57_N_CLASSES ? letters[cls] : '?';
}

static int label_index(int label)
{
    switch (label) {
    case 'N': return CT_EC57_N;
    case 'S': return CT_EC57_S;
    case 'V': return CT_EC57_V;
    case 'F': return CT_EC57_F;
    case 'Q': return CT_EC57_Q;
    case 'O': return CT_EC57_O;
    case 'X': return CT_EC57_X;
    default: return -1;
    }
}

static int is_shutdown_start(const ct_wfdb_annotation *a)
{
    return a->code == CT_ANN_NOISE && (a->subtype & 0x30) == 0x30;
}

static const ct_wfdb_annotation *stream_get(bxb_stream *s)
{
    return s->pos < s->n ? &s->ann[s->pos++] : NULL;
}

static void stream_init(bxb_stream *s, const ct_wfdb_annotation *ann, size_t n, int is_test)
{
    memset(s, 0, sizeof *s);
    s->ann = ann;
    s->n = n;
    s->is_test = is_test;
    s->sdon = s->sdoff = s->psdon = s->psdoff = -1;
    s->vfon = s->vfoff = s->pvfon = s->pvfoff = -1;
}

static int64_t abs64(int64_t v)
{
    return v >= 0 ? v : -v;
}

/* bxb getref()/gettest(): advance to the next beat, reading the non-beat
 * annotations on the way for VF and shutdown. */
static void stream_next(bxb_state *b, bxb_stream *s)
{
    s->prev = s->cur;
    s->cur = s->next;
    s->cur_cls = s->next_cls;

    /* An RR interval is not valid across the first or last beat, or across
     * VF or shutdown (only the two most recent periods are known). */
    if (s->prev == 0 || s->cur == HUGE_TIME ||
        (s->prev <= s->vfon && s->vfon < s->cur) ||
        (s->prev <= s->sdon && s->sdon < s->cur) ||
        (s->prev <= s->pvfon && s->pvfon < s->cur) ||
        (s->prev <= s->psdon && s->psdon < s->cur))
        s->rr = 0;
    else
        s->rr = s->cur - s->prev;

    const ct_wfdb_annotation *a;
    while ((a = stream_get(s)) != NULL) {
        int label = bxb_label(a->code);
        if (label != LABEL_NONE) {
            s->next = a->sample;
            s->next_cls = label;
            return;
        }
        if (is_shutdown_start(a)) {
            s->psdon = s->sdon;
            s->psdoff = s->sdoff;
            s->sdon = a->sample;
            a = stream_get(s);
            if (!a) {
                /* Shutdown to the end of the file. bxb closes it for the
                 * reference only; for the test it tallies the duration up to
                 * the end of the test period and leaves sdoff as it was. */
                s->next = HUGE_TIME;
                s->next_cls = LABEL_SKIP;
                if (!s->is_test)
                    s->sdoff = HUGE_TIME;
                else if (b->end_time > 0)
                    b->out->test_shutdown_samples += b->end_time - s->sdon;
                return;
            }
            if (a->code == CT_ANN_NOISE && !is_shutdown_start(a)) {
                s->sdoff = a->sample;
            } else {
                /* AHA convention: one mark in the middle of the unreadable
                 * interval; it is taken to start match_dt after the current
                 * beat (or VF end) and to end match_dt before the next mark. */
                s->sdon = (s->vfoff > s->cur ? s->vfoff : s->cur) + b->match_dt;
                s->sdoff = a->sample - b->match_dt;
                if (s->sdon > s->sdoff)
                    s->sdon = s->sdoff;
                s->pos--; /* ungetann */
            }
            if (s->is_test)
                b->out->test_shutdown_samples += s->sdoff - s->sdon;
        } else if (a->code == CT_ANN_VFON) {
            s->pvfon = s->vfon;
            s->pvfoff = s->vfoff;
            s->vfon = a->sample;
            /* Everything up to VFOFF, beats included, is not read. */
            do {
                a = stream_get(s);
                if (!a) {
                    s->next = HUGE_TIME;
                    s->next_cls = LABEL_SKIP;
                    return;
                }
            } while (a->code != CT_ANN_VFOFF);
            s->vfoff = a->sample;
        }
    }
    s->next = HUGE_TIME;
    s->next_cls = LABEL_SKIP;
}

/* bxb rpann(): the pseudo-label for a test beat with no reference partner. */
static int ref_pseudo_label(const bxb_stream *r, int64_t t)
{
    if ((r->vfon != -1 && r->vfon <= t && (t <= r->vfoff || r->vfoff == -1)) ||
        (r->pvfon != -1 && r->pvfon <= t && t <= r->pvfoff))
        return LABEL_SKIP; /* test beats in reference VF are not counted */
    if ((r->sdon != -1 && r->sdon <= t && (t <= r->sdoff || r->sdoff == -1)) ||
        (r->psdon != -1 && r->psdon <= t && t <= r->psdoff))
        return 'X';
    return 'O';
}

/* bxb tpann(): the pseudo-label for a reference beat the test missed. There
 * is no VF case: bxb gives test-marked VF no special treatment here. */
static int test_pseudo_label(const bxb_stream *ts, int64_t t)
{
    if ((ts->sdon != -1 && ts->sdon <= t && (t <= ts->sdoff || ts->sdoff == -1)) ||
        (ts->psdon != -1 && ts->psdon <= t && t <= ts->psdoff))
        return 'X';
    return 'O';
}

/* bxb pair(): count one pair; the RR error is tallied on every call, counted
 * pair or not, as bxb does. */
static void count_pair(bxb_state *b, int ref_label, int test_label)
{
    int r = label_index(ref_label), t = label_index(test_label);
    if (r >= 0 && t >= 0 && !(r >= CT_EC57_O && t >= CT_EC57_O))
        b->out->m[r][t]++;
    if (b->ref.rr > 0 && b->test.rr > 0) {
        double d = (double)(b->ref.rr - b->test.rr);
        b->out->rr_sq_err_samples2 += d * d;
        b->out->rr_pairs++;
    }
}

static int check_list(const ct_wfdb_annotation *ann, size_t n, const char *which, ct_error *err)
{
    if (n > 0 && !ann)
        return ct_error_set(err, CT_EINVAL, "%s annotations: NULL list of %zu", which, n);
    for (size_t i = 0; i < n; i++) {
        if (ann[i].sample < 0 || ann[i].sample > CT_EC57_MAX_SAMPLE)
            return ct_error_set(err, CT_EINVAL, "%s annotation %zu: sample %lld is out of range",
                                which, i, (long long)ann[i].sample);
        if (i > 0 && ann[i].sample < ann[i - 1].sample)
            return ct_error_set(err, CT_EINVAL,
                                "%s annotation %zu (sample %lld) precedes annotation %zu "
                                "(sample %lld): annotations must be in time order",
                                which, i, (long long)ann[i].sample, i - 1,
                                (long long)ann[i - 1].sample);
    }
    return 0;
}

int ct_ec57_check_period(double fs_hz, int64_t start_sample, int64_t end_sample, ct_error *err)
{
    if (!(fs_hz > 0.0) || !isfinite(fs_hz) || fs_hz > 1e9)
        return ct_error_set(err, CT_EINVAL, "sampling frequency %g Hz is not usable", fs_hz);
    if (start_sample < 0 || start_sample > CT_EC57_MAX_SAMPLE)
        return ct_error_set(err, CT_EINVAL, "test period start %lld is out of range",
                            (long long)start_sample);
    if (end_sample < CT_EC57_END_OF_REFERENCE || end_sample > CT_EC57_MAX_SAMPLE)
        return ct_error_set(err, CT_EINVAL, "test period end %lld is out of range",
                            (long long)end_sample);
    if (end_sample > 0 && end_sample < start_sample)
        return ct_error_set(err, CT_EINVAL, "test period ends (%lld) before it starts (%lld)",
                            (long long)end_sample, (long long)start_sample);
    return 0;
}

int ct_ec57_check_lists(const ct_wfdb_annotation *ref, size_t n_ref,
                        const ct_wfdb_annotation *test, size_t n_test, ct_error *err)
{
    int rc = check_list(ref, n_ref, "reference", err);
    return rc ? rc : check_list(test, n_test, "test", err);
}

int ct_ec57_compare_beats(const ct_wfdb_annotation *ref, size_t n_ref,
                          const ct_wfdb_annotation *test, size_t n_test,
                          double fs_hz, int64_t start_sample, int64_t end_sample,
                          ct_ec57_beat_stats *out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "beat comparison: no place for the result");
    memset(out, 0, sizeof *out);
    int rc = ct_ec57_check_period(fs_hz, start_sample, end_sample, err);
    if (!rc)
        rc = ct_ec57_check_lists(ref, n_ref, test, n_test, err);
    if (rc)
        return rc;

    bxb_state b;
    memset(&b, 0, sizeof b);
    b.out = out;
    b.match_dt = ct_ec57_match_window(fs_hz);
    b.end_time = end_sample;
    out->fs_hz = fs_hz;
    out->match_window_samples = b.match_dt;
    out->start_sample = start_sample;
    out->end_sample = end_sample;
    stream_init(&b.ref, ref, n_ref, 0);
    stream_init(&b.test, test, n_test, 1);
    bxb_stream *R = &b.ref, *Ts = &b.test;
    const int64_t start = start_sample, match_dt = b.match_dt;

    /* The first reference beat of the test period; the last test beat before
     * it (cur) and the first test beat of the test period (next). */
    do
        stream_next(&b, R);
    while (R->cur < start);
    do
        stream_next(&b, Ts);
    while (Ts->next < start);

    if (R->cur - Ts->cur < abs64(R->cur - Ts->next) && R->cur - Ts->cur <= match_dt) {
        /* A test beat just before the start matches the first reference beat.
         * (Both labels are 0 only for start 0: nothing read yet.) */
        if (R->cur_cls != LABEL_NONE || Ts->cur_cls != LABEL_NONE)
            count_pair(&b, R->cur_cls, Ts->cur_cls);
        stream_next(&b, R);
        stream_next(&b, Ts);
    } else {
        /* A test beat within the window after the start that matches a
         * reference beat before the start is dropped uncounted. */
        stream_next(&b, Ts);
        if (Ts->cur - start <= match_dt && abs64(R->cur - Ts->next) < abs64(R->cur - Ts->cur))
            stream_next(&b, Ts);
    }

    const int64_t end = end_sample;
    while ((end > 0 && (R->cur <= end || Ts->cur <= end)) ||
           (end == CT_EC57_END_OF_REFERENCE && R->cur != HUGE_TIME) ||
           (end == CT_EC57_END_OF_EITHER && R->cur != HUGE_TIME && Ts->cur != HUGE_TIME)) {
        int64_t T = R->cur, Tn = R->next, t = Ts->cur, tn = Ts->next;
        if (t < T) {
            /* The test beat comes first: pair it if no neighbour is closer. */
            if (T - t <= match_dt && (T - t < abs64(T - tn) || abs64(Tn - tn) < abs64(T - tn))) {
                count_pair(&b, R->cur_cls, Ts->cur_cls);
                stream_next(&b, R);
                stream_next(&b, Ts);
            } else {
                count_pair(&b, ref_pseudo_label(R, t), Ts->cur_cls);
                stream_next(&b, Ts);
            }
        } else {
            if (t - T <= match_dt && (t - T < abs64(t - Tn) || abs64(tn - Tn) < abs64(t - Tn))) {
                count_pair(&b, R->cur_cls, Ts->cur_cls);
                stream_next(&b, Ts);
                stream_next(&b, R);
            } else {
                count_pair(&b, R->cur_cls, test_pseudo_label(Ts, T));
                stream_next(&b, R);
            }
        }
    }
    return 0;
}
