/* ec57/epicmp: atrial fibrillation episode comparison, a re-implementation of
 * WFDB's epicmp -A (the reference implementation named by ANSI/AAMI EC57).
 * The one idea: the comparison runs twice with the roles swapped. For
 * sensitivity the reference episodes are walked and each is "detected" if any
 * test episode overlaps it by more than zero samples; for positive
 * predictivity the test episodes are walked against the reference. The
 * overlaps are summed into the duration statistics. An episode opens at a
 * rhythm annotation whose aux starts with "(AFIB" and closes at the next
 * rhythm annotation that does not; one still open at the end of the list
 * closes at the later of the last annotation and the end of the test period.
 * Only the first episode is clipped to the test period start (one that ends
 * before it is skipped), each is clipped to its end, and epicmp's use of
 * time 0 to mean "no episode" is kept, as are its other edge rules.
 *
 * EC57 (and epicmp since WFDB 10.5) excludes nothing: the reference atrial
 * flutter exclusion of EC38:1998 (epicmp -x) is not implemented.
 *
 * Cost: O(n_ref + n_test) per pass, two passes, no allocation. */
#include <string.h>

#include "cardiotwin/ec57.h"
#include "internal.h"

typedef struct ep_stream {
    const ct_wfdb_annotation *ann;
    size_t n, pos;
    int64_t start, end; /* the current episode; 0, 0 when there is none */
} ep_stream;

static int is_afib(const ct_wfdb_annotation *a)
{
    return a->code == CT_ANN_RHYTHM && strncmp(a->aux, "(AFIB", 5) == 0;
}

/* epicmp find_episode() for AFE. */
static void find_episode(ep_stream *s, int64_t end_time)
{
    const ct_wfdb_annotation *a = NULL;
    s->start = s->end = 0;
    while (s->pos < s->n) {
        a = &s->ann[s->pos++];
        if (is_afib(a)) {
            s->start = a->sample;
            break;
        }
        a = NULL;
    }
    if (!a)
        return;
    int64_t tt = a->sample;
    while (s->pos < s->n) {
        a = &s->ann[s->pos++];
        tt = a->sample;
        if (a->code == CT_ANN_RHYTHM && !is_afib(a)) {
            s->end = a->sample;
            return;
        }
    }
    s->end = end_time > tt ? end_time : tt;
}

/* epicmp find_overlap(): how much of episode w (the window) the episodes of
 * stream b cover. b is left on the last episode examined. */
static int64_t find_overlap(ep_stream *b, const ep_stream *w, int64_t end_time)
{
    int64_t overlap = 0;
    if (b->end == 0)
        return 0;
    while (b->end < w->start) {
        find_episode(b, end_time);
        if (b->start == 0)
            return 0;
    }
    if (b->start > w->end)
        return 0;
    do {
        int64_t o_start = b->start < w->start ? w->start : b->start;
        int64_t o_end = b->end > w->end ? w->end : b->end;
        overlap += o_end - o_start;
        if (b->end >= w->end)
            break;
        find_episode(b, end_time);
    } while (0 < b->start && b->start < w->end);
    return overlap;
}

/* One pass of epicmp(): walks a's episodes, looking for b's. */
static void one_pass(const ct_wfdb_annotation *a_ann, size_t n_a,
                     const ct_wfdb_annotation *b_ann, size_t n_b,
                     int64_t start_time, int64_t end_time,
                     int64_t *match, int64_t *mismatch, int64_t *duration_total,
                     int64_t *overlap_total)
{
    ep_stream a = {a_ann, n_a, 0, 0, 0}, b = {b_ann, n_b, 0, 0, 0};
    *match = *mismatch = *duration_total = *overlap_total = 0;

    do
        find_episode(&a, end_time);
    while (0 < a.end && a.end < start_time);
    if (a.end == 0)
        return;
    if (a.start < start_time)
        a.start = start_time;
    find_episode(&b, end_time);

    while (a.end && (end_time == 0 || a.start < end_time)) {
        if (end_time > 0 && a.end > end_time)
            a.end = end_time;
        int64_t duration = a.end - a.start;
        /* epicmp's minimum episode length is 0 in a standard comparison. */
        if (duration < 0) {
            find_episode(&a, end_time);
            continue;
        }
        *duration_total += duration;
        int64_t overlap = find_overlap(&b, &a, end_time);
        if (overlap > 0) {
            (*match)++;
            *overlap_total += overlap;
        } else {
            (*mismatch)++;
        }
        find_episode(&a, end_time);
    }
}

int ct_ec57_compare_af(const ct_wfdb_annotation *ref, size_t n_ref,
                       const ct_wfdb_annotation *test, size_t n_test,
                       double fs_hz, int64_t start_sample, int64_t end_sample,
                       ct_ec57_af_stats *out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "AF comparison: no place for the result");
    memset(out, 0, sizeof *out);
    if (end_sample < 0)
        return ct_error_set(err, CT_EINVAL,
                            "AF comparison needs the record length (or 0 for none), not %lld",
                            (long long)end_sample);
    int rc = ct_ec57_check_period(fs_hz, start_sample, end_sample, err);
    if (!rc)
        rc = ct_ec57_check_lists(ref, n_ref, test, n_test, err);
    if (rc)
        return rc;
    out->fs_hz = fs_hz;
    one_pass(ref, n_ref, test, n_test, start_sample, end_sample, &out->se_tp, &out->se_fn,
             &out->ref_duration_samples, &out->ref_overlap_samples);
    one_pass(test, n_test, ref, n_ref, start_sample, end_sample, &out->pp_tp, &out->pp_fp,
             &out->test_duration_samples, &out->test_overlap_samples);
    return 0;
}
