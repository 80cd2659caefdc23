/* cardiotwin eval: scores the detector (or any test annotation file) against
 * the reference annotations of WFDB records with the ec57 room, which
 * reproduces bxb, epicmp and sumstats. Per record: beat-by-beat and AF
 * statistics; then gross and average statistics over all records and again
 * without the paced records (102, 104, 107, 217), as ecgeval's "MITx DB".
 * Text in a layout close to sumstats' tables, or one JSON document. All
 * records are resolved and their headers read before any work starts, so that
 * a misspelt record fails at once and no partial summary is ever printed. */
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/ec57.h"
#include "cardiotwin/twin.h"
#include "cardiotwin/wfdb.h"

#define CMD "eval"
#define MAX_RECORDS 4096

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin eval [options] RECORD...\n"
            "\n"
            "Scores beat detection and classification, and atrial fibrillation\n"
            "detection, against a record's reference annotations (RECORD.atr) with\n"
            "the rules of ANSI/AAMI EC57 as WFDB's bxb, epicmp and sumstats apply them:\n"
            "150 ms match window, the first 5 minutes excluded, beats in reference\n"
            "VF excluded, AAMI classes N S V F Q (docs/ec57.md has every rule).\n"
            "\n"
            "RECORD is a record path without extension (../shared/data/mitdb/100), or\n"
            "a bare name (100) looked up in --records-dir, else $CARDIOTWIN_MITDB,\n"
            "else the current folder.\n"
            "\n"
            "options:\n"
            "  --test-annotator ANN  score the annotation file RECORD.ANN instead of\n"
            "                        running the detector (e.g. a file written by\n"
            "                        another detector; 'atr' scores 100%%)\n"
            "  --lead N|all          signal the detector reads: an index from 0, or\n"
            "                        all of them (default: all)\n"
            "  --records-dir DIR     where bare record names are found\n"
            "  --json                print one JSON document instead of the tables\n"
            "  -h, --help            print this help\n"
            "\n"
            "output: one line per record (reference beats in the test period; QRS,\n"
            "VEB and SVEB sensitivity and positive predictivity in %%; AF episode and\n"
            "duration sensitivity and positive predictivity in whole %%), then\n"
            "gross and average lines over all records and over the records that are\n"
            "not paced. '-' marks a statistic with nothing to divide by.\n"
            "exit codes: 0 scored, 1 a record could not be read or scored, 2 usage.\n");
}

typedef struct eval_record {
    char name[256];  /* basename, as printed */
    char path[PATH_MAX];
    int paced;
    ct_wfdb_header hdr;
    int64_t start, end;
    ct_ec57_beat_stats beats;
    ct_ec57_af_stats af;
} eval_record;

static int is_paced_name(const char *name)
{
    static const char *const paced[] = {"102", "104", "107", "217"};
    for (size_t i = 0; i < sizeof paced / sizeof paced[0]; i++)
        if (strcmp(name, paced[i]) == 0)
            return 1;
    return 0;
}

static int file_exists(const char *path)
{
    return access(path, R_OK) == 0;
}

/* Fills r->path and r->name from the argument; 0 or an exit code. */
static int resolve(const char *arg, const char *dir, eval_record *r)
{
    if (!*arg || strlen(arg) >= sizeof r->path - 8)
        return ct_cli_usage(CMD, "'%s' is not a record name", arg);
    const char *slash = strrchr(arg, '/');
    const char *base = slash ? slash + 1 : arg;
    if (!*base)
        return ct_cli_usage(CMD, "'%s' is not a record name (it ends with '/')", arg);
    size_t blen = strlen(base);
    if (blen > 4 && strcmp(base + blen - 4, ".hea") == 0)
        blen -= 4; /* accept 100.hea for 100 */
    if (blen >= sizeof r->name)
        return ct_cli_usage(CMD, "'%s' is not a record name", arg);
    memcpy(r->name, base, blen);
    r->name[blen] = '\0';
    int n;
    if (slash || !dir)
        n = snprintf(r->path, sizeof r->path, "%.*s", (int)(strlen(arg) - (strlen(base) - blen)), arg);
    else
        n = snprintf(r->path, sizeof r->path, "%s/%s", dir, r->name);
    if (n < 0 || (size_t)n >= sizeof r->path)
        return ct_cli_fail(CMD, "record %s: path too long", r->name);
    char hea[PATH_MAX + 8];
    snprintf(hea, sizeof hea, "%s.hea", r->path);
    if (!file_exists(hea))
        return ct_cli_fail(CMD, "record %s: no such record (%s not found)", r->name, hea);
    r->paced = is_paced_name(r->name);
    return CT_EXIT_OK;
}

/* Reads, detects (or reads the test annotator) and scores one record. */
static int score_record(eval_record *r, const char *test_annotator, int lead, ct_error *err)
{
    ct_wfdb_annotation *ref = NULL, *test = NULL;
    size_t n_ref = 0, n_test = 0;
    int rc = ct_wfdb_ann_read(r->path, "atr", &ref, &n_ref, err);
    if (rc)
        return rc;
    if (test_annotator) {
        rc = ct_wfdb_ann_read(r->path, test_annotator, &test, &n_test, err);
    } else {
        if (lead >= r->hdr.n_signals) {
            free(ref);
            return ct_error_set(err, CT_EINVAL, "--lead %d: the record has %d signals (0..%d)",
                                lead, r->hdr.n_signals, r->hdr.n_signals - 1);
        }
        ct_wfdb_signals sig;
        memset(&sig, 0, sizeof sig);
        rc = ct_wfdb_signals_read(r->path, &r->hdr, &sig, err);
        if (!rc) {
            rc = ct_twin_detect_record(&r->hdr, &sig, lead, &test, &n_test, err);
            if (rc)
                ct_error_prefix(err, "detector");
        }
        ct_wfdb_signals_free(&sig);
    }
    if (!rc) {
        double fs = r->hdr.fs_hz;
        r->start = ct_ec57_standard_start(fs);
        /* bxb and epicmp: the end of the record if the header gives its
         * length, else the end of the reference annotations. */
        r->end = r->hdr.n_samples > 0 ? r->hdr.n_samples : CT_EC57_END_OF_REFERENCE;
        rc = ct_ec57_compare_beats(ref, n_ref, test, n_test, fs, r->start, r->end, &r->beats, err);
        if (!rc && r->end > 0)
            rc = ct_ec57_compare_af(ref, n_ref, test, n_test, fs, r->start, r->end, &r->af, err);
        else if (!rc) {
            /* epicmp without a record length processes no episode at all. */
            memset(&r->af, 0, sizeof r->af);
            r->af.fs_hz = fs;
        }
    }
    free(ref);
    free(test);
    return rc;
}

/* ---- text ---------------------------------------------------------------- */

static void put_pct(const ct_ec57_stat *s)
{
    if (s->defined)
        printf(" %7.2f", s->percent);
    else
        printf("       -");
}

/* epicmp prints (int)(x + 0.5), sumstats "%3.0f". */
static void put_int_pct(const ct_ec57_stat *s, int epicmp_rounding)
{
    if (!s->defined)
        printf("      -");
    else if (epicmp_rounding)
        printf(" %6d", ct_ec57_epicmp_round(s->percent));
    else
        printf(" %6.0f", s->percent);
}

static void print_header(void)
{
    printf("Record   Beats  QRS Se  QRS +P  VEB Se  VEB +P SVEB Se SVEB +P"
           " AF ESe AF E+P AF DSe AF D+P\n");
}

static void print_line(const char *label, const char *beats, const ct_ec57_beat_summary *b,
                       const ct_ec57_af_summary *a, int epicmp_rounding)
{
    printf("%-7s %6s", label, beats);
    put_pct(&b->qrs_se);
    put_pct(&b->qrs_pp);
    put_pct(&b->veb_se);
    put_pct(&b->veb_pp);
    put_pct(&b->sveb_se);
    put_pct(&b->sveb_pp);
    put_int_pct(&a->episode_se, epicmp_rounding);
    put_int_pct(&a->episode_pp, epicmp_rounding);
    put_int_pct(&a->duration_se, epicmp_rounding);
    put_int_pct(&a->duration_pp, epicmp_rounding);
    printf("\n");
}

/* Gross and average over the records selected by keep (NULL: all). */
static size_t gather(const eval_record *recs, size_t n, int skip_paced,
                     ct_ec57_beat_stats *beats, ct_ec57_af_stats *af)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_paced && recs[i].paced)
            continue;
        beats[k] = recs[i].beats;
        af[k] = recs[i].af;
        k++;
    }
    return k;
}

static void print_summary(const char *title, const eval_record *recs, size_t n, int skip_paced,
                          ct_ec57_beat_stats *beats, ct_ec57_af_stats *af)
{
    size_t k = gather(recs, n, skip_paced, beats, af);
    ct_ec57_beat_summary bg, ba;
    ct_ec57_af_summary ag, aa;
    ct_ec57_beat_summary_gross(beats, k, &bg);
    ct_ec57_beat_summary_average(beats, k, &ba);
    ct_ec57_af_summary_gross(af, k, &ag);
    ct_ec57_af_summary_average(af, k, &aa);
    ct_ec57_beat_stats sum;
    memset(&sum, 0, sizeof sum);
    for (size_t i = 0; i < k; i++)
        ct_ec57_beat_stats_add(&sum, &beats[i]);
    const int64_t(*m)[CT_EC57_N_CLASSES] = sum.m;
    int64_t veb = 0, sveb = 0;
    for (int t = 0; t < CT_EC57_N_CLASSES; t++) {
        veb += m[CT_EC57_V][t];
        sveb += m[CT_EC57_S][t];
    }
    char total[32];
    snprintf(total, sizeof total, "%lld", (long long)ct_ec57_reference_beats(&sum));
    printf("\n%s (%zu record%s)\n", title, k, k == 1 ? "" : "s");
    print_line("Gross", total, &bg, &ag, 0);
    print_line("Average", "", &ba, &aa, 0);
    printf("Total QRS complexes: %lld  Total VEBs: %lld  Total SVEBs: %lld\n",
           (long long)ct_ec57_reference_beats(&sum), (long long)veb, (long long)sveb);
}

static void print_text(const eval_record *recs, size_t n, const char *source,
                       ct_ec57_beat_stats *beats, ct_ec57_af_stats *af)
{
    printf("EC57 evaluation of %s against the reference annotations (atr)\n", source);
    printf("Beats: bxb rules (150 ms window, from 5:00 to the end of the record); "
           "AF: epicmp -A; totals: sumstats\n\n");
    print_header();
    size_t n_paced = 0;
    for (size_t i = 0; i < n; i++) {
        ct_ec57_beat_summary b;
        ct_ec57_af_summary a;
        ct_ec57_beat_summary_record(&recs[i].beats, &b);
        ct_ec57_af_summary_record(&recs[i].af, &a);
        char count[32];
        snprintf(count, sizeof count, "%lld", (long long)ct_ec57_reference_beats(&recs[i].beats));
        print_line(recs[i].name, count, &b, &a, 1);
        n_paced += recs[i].paced != 0;
    }
    print_summary("All records", recs, n, 0, beats, af);
    if (n_paced > 0)
        print_summary("Excluding paced records (102, 104, 107, 217)", recs, n, 1, beats, af);
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *stat_json(const ct_ec57_stat *s, int is_average)
{
    json_t *o = json_object();
    json_object_set_new(o, "defined", json_boolean(s->defined));
    json_object_set_new(o, "percent", s->defined ? json_real(s->percent) : json_null());
    if (is_average) {
        json_object_set_new(o, "records", json_integer(s->den));
    } else {
        json_object_set_new(o, "num", json_integer(s->num));
        json_object_set_new(o, "den", json_integer(s->den));
    }
    return o;
}

static json_t *beat_summary_json(const ct_ec57_beat_summary *b, int is_average)
{
    json_t *o = json_object();
    json_object_set_new(o, "qrs_se", stat_json(&b->qrs_se, is_average));
    json_object_set_new(o, "qrs_pp", stat_json(&b->qrs_pp, is_average));
    json_object_set_new(o, "veb_se", stat_json(&b->veb_se, is_average));
    json_object_set_new(o, "veb_pp", stat_json(&b->veb_pp, is_average));
    json_object_set_new(o, "veb_fpr", stat_json(&b->veb_fpr, is_average));
    json_object_set_new(o, "sveb_se", stat_json(&b->sveb_se, is_average));
    json_object_set_new(o, "sveb_pp", stat_json(&b->sveb_pp, is_average));
    return o;
}

static json_t *af_summary_json(const ct_ec57_af_summary *a, int is_average)
{
    json_t *o = json_object();
    json_object_set_new(o, "episode_se", stat_json(&a->episode_se, is_average));
    json_object_set_new(o, "episode_pp", stat_json(&a->episode_pp, is_average));
    json_object_set_new(o, "duration_se", stat_json(&a->duration_se, is_average));
    json_object_set_new(o, "duration_pp", stat_json(&a->duration_pp, is_average));
    return o;
}

static json_t *matrix_json(const ct_ec57_beat_stats *s)
{
    json_t *o = json_object();
    json_object_set_new(o, "rows", json_string("NSVFQOX"));
    json_object_set_new(o, "columns", json_string("nsvfqox"));
    json_t *rows = json_array();
    for (int r = 0; r < CT_EC57_N_CLASSES; r++) {
        json_t *row = json_array();
        for (int t = 0; t < CT_EC57_N_CLASSES; t++)
            json_array_append_new(row, json_integer(s->m[r][t]));
        json_array_append_new(rows, row);
    }
    json_object_set_new(o, "counts", rows);
    return o;
}

static json_t *summary_json(const eval_record *recs, size_t n, int skip_paced,
                            ct_ec57_beat_stats *beats, ct_ec57_af_stats *af)
{
    size_t k = gather(recs, n, skip_paced, beats, af);
    ct_ec57_beat_summary bg, ba;
    ct_ec57_af_summary ag, aa;
    ct_ec57_beat_summary_gross(beats, k, &bg);
    ct_ec57_beat_summary_average(beats, k, &ba);
    ct_ec57_af_summary_gross(af, k, &ag);
    ct_ec57_af_summary_average(af, k, &aa);
    ct_ec57_beat_stats sum;
    memset(&sum, 0, sizeof sum);
    int64_t ref_af = 0, ref_ov = 0, test_af = 0, test_ov = 0;
    json_t *names = json_array();
    for (size_t i = 0; i < k; i++) {
        ct_ec57_beat_stats_add(&sum, &beats[i]);
        ref_af += af[i].ref_duration_samples;
        ref_ov += af[i].ref_overlap_samples;
        test_af += af[i].test_duration_samples;
        test_ov += af[i].test_overlap_samples;
    }
    for (size_t i = 0; i < n; i++)
        if (!(skip_paced && recs[i].paced))
            json_array_append_new(names, json_string(recs[i].name));
    json_t *o = json_object();
    json_object_set_new(o, "records", names);
    json_object_set_new(o, "reference_beats", json_integer(ct_ec57_reference_beats(&sum)));
    json_object_set_new(o, "matrix", matrix_json(&sum));
    json_object_set_new(o, "gross", beat_summary_json(&bg, 0));
    json_object_set_new(o, "average", beat_summary_json(&ba, 1));
    json_object_set_new(o, "af_gross", af_summary_json(&ag, 0));
    json_object_set_new(o, "af_average", af_summary_json(&aa, 1));
    /* The exact pooled AF durations, for readers who want the plain ratio
     * rather than sumstats' reconstruction. */
    json_t *d = json_object();
    json_object_set_new(d, "ref_duration_samples", json_integer(ref_af));
    json_object_set_new(d, "ref_overlap_samples", json_integer(ref_ov));
    json_object_set_new(d, "test_duration_samples", json_integer(test_af));
    json_object_set_new(d, "test_overlap_samples", json_integer(test_ov));
    json_object_set_new(o, "af_durations", d);
    return o;
}

static int print_json(const eval_record *recs, size_t n, const char *test_annotator, int lead,
                      ct_ec57_beat_stats *beats, ct_ec57_af_stats *af)
{
    json_t *root = json_object();
    json_object_set_new(root, "standard", json_string("ANSI/AAMI EC57: WFDB bxb, epicmp -A, sumstats"));
    json_object_set_new(root, "test", test_annotator ? json_string(test_annotator)
                                                     : json_string("detector"));
    json_object_set_new(root, "lead", lead < 0 ? json_string("all") : json_integer(lead));
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const eval_record *r = &recs[i];
        json_t *o = json_object();
        ct_ec57_beat_summary b;
        ct_ec57_af_summary a;
        ct_ec57_beat_summary_record(&r->beats, &b);
        ct_ec57_af_summary_record(&r->af, &a);
        json_object_set_new(o, "record", json_string(r->name));
        json_object_set_new(o, "path", json_string(r->path));
        json_object_set_new(o, "paced", json_boolean(r->paced));
        json_object_set_new(o, "fs_hz", json_real(r->hdr.fs_hz));
        json_object_set_new(o, "start_sample", json_integer(r->start));
        json_object_set_new(o, "end_sample", json_integer(r->end));
        json_object_set_new(o, "match_window_samples", json_integer(r->beats.match_window_samples));
        json_object_set_new(o, "reference_beats", json_integer(ct_ec57_reference_beats(&r->beats)));
        json_object_set_new(o, "matrix", matrix_json(&r->beats));
        json_object_set_new(o, "beats", beat_summary_json(&b, 0));
        json_object_set_new(o, "rr_rms_error_ms", b.rr_rms_ms.defined ? json_real(b.rr_rms_ms.percent)
                                                                       : json_null());
        json_object_set_new(o, "rr_pairs", json_integer(r->beats.rr_pairs));
        json_object_set_new(o, "test_shutdown_samples", json_integer(r->beats.test_shutdown_samples));
        json_t *afo = af_summary_json(&a, 0);
        json_object_set_new(afo, "ref_duration_samples", json_integer(r->af.ref_duration_samples));
        json_object_set_new(afo, "ref_overlap_samples", json_integer(r->af.ref_overlap_samples));
        json_object_set_new(afo, "test_duration_samples", json_integer(r->af.test_duration_samples));
        json_object_set_new(afo, "test_overlap_samples", json_integer(r->af.test_overlap_samples));
        json_object_set_new(o, "af", afo);
        json_array_append_new(arr, o);
    }
    json_object_set_new(root, "records", arr);
    json_t *sum = json_object();
    json_object_set_new(sum, "all", summary_json(recs, n, 0, beats, af));
    json_object_set_new(sum, "excluding_paced", summary_json(recs, n, 1, beats, af));
    json_object_set_new(root, "summary", sum);
    int rc = json_dumpf(root, stdout, JSON_INDENT(2));
    json_decref(root);
    if (rc != 0 || fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        return ct_cli_fail(CMD, "could not write the JSON document to standard output");
    return CT_EXIT_OK;
}

/* ---- the command ------------------------------------------------------------ */

static int parse_lead(const char *s, int *lead)
{
    if (strcmp(s, "all") == 0) {
        *lead = -1;
        return 0;
    }
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v >= CT_WFDB_MAX_SIGNALS)
        return -1;
    *lead = (int)v;
    return 0;
}

static int valid_annotator(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 31)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int ct_cmd_eval(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"lead", required_argument, NULL, 'l'},
        {"records-dir", required_argument, NULL, 'd'},
        {"test-annotator", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, lead = -1;
    const char *dir = NULL, *test_annotator = NULL;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'l':
            if (parse_lead(optarg, &lead) != 0)
                return ct_cli_usage(CMD, "--lead: '%s' is not a signal index or 'all'", optarg);
            break;
        case 'd':
            if (!*optarg)
                return ct_cli_usage(CMD, "--records-dir needs a DIR");
            dir = optarg;
            break;
        case 't':
            if (!valid_annotator(optarg))
                return ct_cli_usage(CMD, "--test-annotator: '%s' is not an annotator name", optarg);
            test_annotator = optarg;
            break;
        case 'h': usage(stdout); return CT_EXIT_OK;
        case ':':
            return ct_cli_usage(CMD, "option '%s' needs a value", argv[optind - 1]);
        default:
            return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ct_cli_usage(CMD, "no RECORD given");
    size_t n = (size_t)(argc - optind);
    if (n > MAX_RECORDS)
        return ct_cli_usage(CMD, "%zu records given, at most %d at once", n, MAX_RECORDS);
    if (!dir) {
        const char *env = getenv("CARDIOTWIN_MITDB");
        dir = env && *env ? env : ".";
    }

    eval_record *recs = calloc(n, sizeof *recs);
    ct_ec57_beat_stats *beats = calloc(n, sizeof *beats);
    ct_ec57_af_stats *af = calloc(n, sizeof *af);
    if (!recs || !beats || !af) {
        free(recs);
        free(beats);
        free(af);
        return ct_cli_fail(CMD, "out of memory for %zu records", n);
    }
    int rc = CT_EXIT_OK;
    ct_error err;
    for (size_t i = 0; i < n && rc == CT_EXIT_OK; i++) {
        rc = resolve(argv[optind + (int)i], dir, &recs[i]);
        if (rc == CT_EXIT_OK) {
            ct_error_clear(&err);
            if (ct_wfdb_header_read(recs[i].path, &recs[i].hdr, &err) != 0)
                rc = ct_cli_fail(CMD, "record %s: %s", recs[i].name, err.msg);
        }
    }
    ct_progress bar;
    ct_progress_start(&bar, cli, test_annotator ? "scoring" : "detecting", (int64_t)n);
    for (size_t i = 0; i < n && rc == CT_EXIT_OK; i++) {
        ct_progress_update(&bar, (int64_t)i);
        ct_error_clear(&err);
        if (score_record(&recs[i], test_annotator, lead, &err) != 0) {
            ct_progress_finish(&bar);
            /* wfdb's messages already name the record; ec57's do not. */
            if (strncmp(err.msg, "record ", 7) == 0)
                rc = ct_cli_fail(CMD, "%s", err.msg);
            else
                rc = ct_cli_fail(CMD, "record %s: %s", recs[i].name, err.msg);
        }
    }
    ct_progress_update(&bar, (int64_t)n);
    ct_progress_finish(&bar);

    if (rc == CT_EXIT_OK) {
        if (json) {
            rc = print_json(recs, n, test_annotator, lead, beats, af);
        } else if (!cli->quiet) {
            char source[64];
            if (test_annotator)
                snprintf(source, sizeof source, "annotator '%s'", test_annotator);
            else if (lead < 0)
                snprintf(source, sizeof source, "the detector (all leads)");
            else
                snprintf(source, sizeof source, "the detector (lead %d)", lead);
            print_text(recs, n, source, beats, af);
            if (fflush(stdout) != 0)
                rc = ct_cli_fail(CMD, "could not write to standard output");
        }
    }
    free(recs);
    free(beats);
    free(af);
    return rc;
}
