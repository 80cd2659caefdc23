/* ec57: scoring a detector against reference annotations the way the field
 * does it, ANSI/AAMI EC57 as implemented by WFDB's reference programs: bxb
 * (beat by beat: QRS, VEB and SVEB sensitivity and positive predictivity),
 * epicmp (atrial fibrillation episodes and durations) and sumstats (gross and
 * average statistics over a set of records).
 *
 * The rule of this room is reproduction, not interpretation: for the same two
 * annotation lists every count here equals the count bxb or epicmp prints,
 * including their quirks at the edges of the test period (docs/ec57.md lists
 * them). Pure functions: no I/O, no allocation, nothing printed.
 *
 * Times are sample numbers from the start of the record (annotation.sample);
 * a "test period" runs from start_sample (EC57: 5 minutes in) to end_sample
 * (EC57: the end of the record). */
#ifndef CARDIOTWIN_EC57_H
#define CARDIOTWIN_EC57_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/error.h"
#include "cardiotwin/wfdb.h"

/* EC57's constants, in seconds (bxb: strtim(".15") and strtim("5:0")). */
#define CT_EC57_MATCH_WINDOW_S 0.15
#define CT_EC57_LEARNING_PERIOD_S 300.0

/* Special end_sample values of ct_ec57_compare_beats (bxb's -t). A positive
 * end_sample is the last sample of the test period (bxb: the record length). */
#define CT_EC57_END_OF_REFERENCE (-1) /* until the reference annotations end */
#define CT_EC57_END_OF_EITHER 0       /* until either annotation list ends ("-t 0") */

/* Annotation times are accepted up to this bound, far beyond any record, so
 * that no arithmetic on them can overflow. */
#define CT_EC57_MAX_SAMPLE ((int64_t)1 << 50)

/* Beat classes of the confusion matrix, in bxb's order. N, S, V, F and Q are
 * AAMI classes; O and X are bxb's pseudo-beats: as a reference row, a test
 * beat with no reference beat (X: during reference-marked shutdown); as a
 * test column, a reference beat the test missed (x: during test shutdown). */
typedef enum ct_ec57_class {
    CT_EC57_N = 0,
    CT_EC57_S = 1,
    CT_EC57_V = 2,
    CT_EC57_F = 3,
    CT_EC57_Q = 4,
    CT_EC57_O = 5,
    CT_EC57_X = 6,
    CT_EC57_N_CLASSES = 7
} ct_ec57_class;

/* One record's beat-by-beat comparison. m[ref][test] counts beat pairs:
 * m[CT_EC57_V][CT_EC57_N] is bxb's Vn (a reference VEB the test called
 * normal). The four cells O/X x o/x are always 0. */
typedef struct ct_ec57_beat_stats {
    int64_t m[CT_EC57_N_CLASSES][CT_EC57_N_CLASSES];
    int64_t rr_pairs;             /* pairs with both RR intervals valid (bxb nrre) */
    double rr_sq_err_samples2;    /* sum of squared RR differences (bxb ssrre) */
    int64_t test_shutdown_samples; /* test-marked shutdown, bxb's tally before rounding */
    /* The rules applied, so that a report can state them. */
    double fs_hz;
    int64_t match_window_samples;
    int64_t start_sample;
    int64_t end_sample;
} ct_ec57_beat_stats;

/* WFDB's strtim for a number of seconds: (long)(seconds * fs_hz + 0.5). */
int64_t ct_ec57_seconds_to_samples(double seconds, double fs_hz);
/* EC57's match window (0.15 s) and test period start (5 min), in samples. */
int64_t ct_ec57_match_window(double fs_hz);
int64_t ct_ec57_standard_start(double fs_hz);

/* The class bxb gives a MIT annotation code (with SVEB statistics, i.e. bxb
 * -S/-L/-C), or -1 if bxb does not read the code as a beat. Note: bxb puts
 * nodal and atrial escape beats (j, e) in S, and ventricular flutter waves
 * (!) in O. */
int ct_ec57_beat_class(int code);
/* 'N', 'S', 'V', 'F', 'Q', 'O', 'X' (upper case); '?' out of range. */
char ct_ec57_class_letter(int cls);

/* Compares test beats with reference beats exactly as bxb does: 150 ms match
 * window, bxb's look-ahead when two candidates fall in the window, the test
 * period from start_sample to end_sample (or a CT_EC57_END_* value),
 * reference VF episodes ([ ... ]) excluded, shutdown (NOISE with subtype bits
 * 4 and 5 set) tallied as X. Both lists must be in time order (as in an
 * annotation file); non-beat annotations are read for VF, shutdown and
 * nothing else. Fails (CT_EINVAL) only on arguments that cannot be right:
 * fs_hz not positive, unsorted or out-of-range times, start after end. */
int ct_ec57_compare_beats(const ct_wfdb_annotation *ref, size_t n_ref,
                          const ct_wfdb_annotation *test, size_t n_test,
                          double fs_hz, int64_t start_sample, int64_t end_sample,
                          ct_ec57_beat_stats *out, ct_error *err);

/* A statistic in percent. Undefined (no denominator, bxb prints "-") is
 * defined == 0 and percent NAN: never 0, never 100. For a ratio, num and den
 * are its counts; for an average over records, den is the number of records
 * in the mean and num is 0. */
typedef struct ct_ec57_stat {
    int defined;
    double percent;
    int64_t num;
    int64_t den;
} ct_ec57_stat;

typedef struct ct_ec57_beat_summary {
    ct_ec57_stat qrs_se, qrs_pp;   /* all beats */
    ct_ec57_stat veb_se, veb_pp;   /* ventricular ectopic beats */
    ct_ec57_stat veb_fpr;          /* VEB false positive rate */
    ct_ec57_stat sveb_se, sveb_pp; /* supraventricular ectopic beats */
    ct_ec57_stat rr_rms_ms;        /* RMS RR interval error in ms (ratio: num, den unused) */
} ct_ec57_beat_summary;

/* Reference beats counted in the test period (every row but O and X). */
int64_t ct_ec57_reference_beats(const ct_ec57_beat_stats *s);

/* One record's statistics, exactly as bxb computes them. */
void ct_ec57_beat_summary_record(const ct_ec57_beat_stats *s, ct_ec57_beat_summary *out);

/* Adds s's matrix and tallies into acc (a zeroed acc starts a sum). */
void ct_ec57_beat_stats_add(ct_ec57_beat_stats *acc, const ct_ec57_beat_stats *s);

/* Gross (statistics of the summed matrices) and average (mean over the
 * records where a statistic is defined) statistics, exactly as sumstats
 * computes them from bxb -L lines. One difference from the per-record
 * figures is sumstats' own: its SVEB +P leaves Fs (a fusion beat called S)
 * out of the false positives. rr_rms_ms is undefined in both. */
void ct_ec57_beat_summary_gross(const ct_ec57_beat_stats *recs, size_t n,
                                ct_ec57_beat_summary *out);
void ct_ec57_beat_summary_average(const ct_ec57_beat_stats *recs, size_t n,
                                  ct_ec57_beat_summary *out);

/* ---- atrial fibrillation (epicmp -A) ------------------------------------ */

/* One record's AF comparison. An episode runs from a rhythm annotation whose
 * aux starts with "(AFIB" to the next rhythm annotation that does not. */
typedef struct ct_ec57_af_stats {
    int64_t se_tp, se_fn;          /* reference episodes overlapped / not (epicmp STP, FN) */
    int64_t pp_tp, pp_fp;          /* test episodes overlapped / not (epicmp PTP, FP) */
    int64_t ref_duration_samples;  /* reference AF in the test period */
    int64_t ref_overlap_samples;   /* ... of which the test also called AF */
    int64_t test_duration_samples; /* test AF in the test period */
    int64_t test_overlap_samples;  /* ... of which the reference also called AF */
    double fs_hz;
} ct_ec57_af_stats;

/* Compares AF episodes exactly as epicmp -A does (EC57: no exclusions, no
 * minimum length). end_sample is the record length, or CT_EC57_END_OF_EITHER
 * for no end; fs_hz is only recorded, for reports. */
int ct_ec57_compare_af(const ct_wfdb_annotation *ref, size_t n_ref,
                       const ct_wfdb_annotation *test, size_t n_test,
                       double fs_hz, int64_t start_sample, int64_t end_sample,
                       ct_ec57_af_stats *out, ct_error *err);

typedef struct ct_ec57_af_summary {
    ct_ec57_stat episode_se, episode_pp;
    ct_ec57_stat duration_se, duration_pp;
} ct_ec57_af_summary;

/* Per record, as epicmp (which prints these percentages rounded to integers:
 * see ct_ec57_epicmp_round). */
void ct_ec57_af_summary_record(const ct_ec57_af_stats *s, ct_ec57_af_summary *out);
/* Gross and average as sumstats computes them from epicmp -l lines: episode
 * statistics from the counts; duration statistics from each record's
 * durations in milliseconds and its rounded percentages, as sumstats reads
 * them back from the text (docs/ec57.md). */
void ct_ec57_af_summary_gross(const ct_ec57_af_stats *recs, size_t n, ct_ec57_af_summary *out);
void ct_ec57_af_summary_average(const ct_ec57_af_stats *recs, size_t n, ct_ec57_af_summary *out);
/* epicmp's integer rounding of a percentage: (int)(percent + 0.5). */
int ct_ec57_epicmp_round(double percent);

#endif
