/* cardiotwin detect: runs the beat and rhythm detector (the ecg room, through
 * the twin room's record runner) on one WFDB record and prints or writes what
 * it finds: beats as CSV, an MIT annotation file with beats and rhythm
 * changes, or the per-beat features the beat classifier is trained on
 * (scripts/train_beat_model.py reads them). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/twin.h"
#include "cardiotwin/wfdb.h"

#define CMD "detect"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin detect [options] RECORD\n"
            "\n"
            "Runs the streaming beat and rhythm detector over a WFDB record, as the\n"
            "live pipeline runs it over a bedside stream.\n"
            "\n"
            "RECORD is a record path without extension (../shared/data/mitdb/100), or\n"
            "a bare name (100) found in the current folder, else in $CARDIOTWIN_MITDB.\n"
            "\n"
            "options:\n"
            "  --lead N|all      signal to read: an index from 0, or all of them\n"
            "                    (default: all; the detector fuses the leads)\n"
            "  --format FORMAT   csv       'sample,symbol' then one line per beat\n"
            "                              (symbols N, A, V, F, Q) on stdout (default)\n"
            "                    wfdb      write DIR/RECORD.cta, an MIT annotation file\n"
            "                              with beats and rhythm changes ('+' with aux\n"
            "                              \"(N\", \"(AFIB\", \"(VT\", ...), signal quality\n"
            "                              ('~') and notes for pauses and V runs\n"
            "                    features  'sample,symbol,confidence,f0..f19': the\n"
            "                              beat features (docs/detector.md) on stdout,\n"
            "                              detections dropped as artefacts included\n"
            "                              (symbol '|')\n"
            "  --out DIR         folder for --format wfdb (default: the current folder)\n"
            "  -h, --help        print this help\n"
            "\n"
            "exit codes: 0 done, 1 the record could not be read or written, 2 usage.\n");
}

typedef struct features_out {
    FILE *f;
} features_out;

static void print_feature_beat(void *ctx, const ct_ecg_beat *b)
{
    features_out *fo = ctx;
    fprintf(fo->f, "%lld,%s,%.3f", (long long)b->sample,
            b->is_artifact ? "|" : ct_ecg_beat_class_mnemonic(b->cls), (double)b->confidence);
    for (int i = 0; i < CT_ECG_N_FEATURES; i++)
        fprintf(fo->f, ",%.6g", b->features ? (double)b->features[i] : 0.0);
    fputc('\n', fo->f);
}

/* Record path from the argument: as given when it names a folder or a local
 * header exists, else in $CARDIOTWIN_MITDB. */
static int resolve(const char *arg, char *path, size_t cap, char *name, size_t name_cap)
{
    size_t len = strlen(arg);
    if (len == 0 || len >= cap - 8)
        return ct_cli_usage(CMD, "'%s' is not a record name", arg);
    if (len > 4 && strcmp(arg + len - 4, ".hea") == 0)
        len -= 4;
    const char *slash = memchr(arg, '/', len) ? strrchr(arg, '/') : NULL;
    const char *base = slash ? slash + 1 : arg;
    size_t blen = len - (size_t)(base - arg);
    if (blen == 0 || blen >= name_cap)
        return ct_cli_usage(CMD, "'%s' is not a record name", arg);
    memcpy(name, base, blen);
    name[blen] = '\0';
    char hea[PATH_MAX + 16];
    snprintf(path, cap, "%.*s", (int)len, arg);
    snprintf(hea, sizeof hea, "%s.hea", path);
    if (!slash && access(hea, R_OK) != 0) {
        const char *dir = getenv("CARDIOTWIN_MITDB");
        if (dir && *dir) {
            int n = snprintf(path, cap, "%s/%s", dir, name);
            if (n < 0 || (size_t)n >= cap)
                return ct_cli_fail(CMD, "record %s: path too long", name);
            snprintf(hea, sizeof hea, "%s.hea", path);
        }
    }
    if (access(hea, R_OK) != 0)
        return ct_cli_fail(CMD, "record %s: no such record (%s not found)", name, hea);
    return CT_EXIT_OK;
}

int ct_cmd_detect(const ct_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        {"lead", required_argument, NULL, 'l'},
        {"format", required_argument, NULL, 'f'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int lead = -1;
    const char *format = "csv";
    const char *out_dir = ".";
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hl:f:o:", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (strcmp(optarg, "all") == 0) {
                lead = -1;
            } else {
                char *end = NULL;
                long v = strtol(optarg, &end, 10);
                if (!*optarg || *end || v < 0 || v >= CT_WFDB_MAX_SIGNALS)
                    return ct_cli_usage(CMD, "--lead wants a signal index from 0 or 'all', not '%s'",
                                        optarg);
                lead = (int)v;
            }
            break;
        case 'f':
            if (strcmp(optarg, "csv") && strcmp(optarg, "wfdb") && strcmp(optarg, "features"))
                return ct_cli_usage(CMD, "--format is csv, wfdb or features, not '%s'", optarg);
            format = optarg;
            break;
        case 'o':
            if (!*optarg)
                return ct_cli_usage(CMD, "--out needs a folder");
            out_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return CT_EXIT_OK;
        default:
            return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return ct_cli_usage(CMD, optind >= argc ? "give one RECORD" : "give one RECORD only");

    char path[PATH_MAX];
    char name[64];
    int rc = resolve(argv[optind], path, sizeof path, name, sizeof name);
    if (rc)
        return rc;

    ct_error err;
    ct_error_clear(&err);
    ct_wfdb_header *hdr = calloc(1, sizeof *hdr);
    if (!hdr)
        return ct_cli_fail(CMD, "out of memory");
    ct_wfdb_signals sig;
    memset(&sig, 0, sizeof sig);
    if (ct_wfdb_header_read(path, hdr, &err) || ct_wfdb_signals_read(path, hdr, &sig, &err)) {
        free(hdr);
        return ct_cli_fail(CMD, "%s", err.msg);
    }
    if (lead >= sig.n_signals) {
        int ns = sig.n_signals;
        ct_wfdb_signals_free(&sig);
        free(hdr);
        return ct_cli_usage(CMD, "record %s has signals 0..%d, not %d", name, ns - 1, lead);
    }

    if (strcmp(format, "features") == 0) {
        features_out fo = {stdout};
        printf("sample,symbol,confidence");
        for (int i = 0; i < CT_ECG_N_FEATURES; i++)
            printf(",f%d", i);
        printf("\n");
        ct_ecg_sink sink = {print_feature_beat, NULL, &fo};
        rc = ct_twin_run_record(hdr, &sig, lead, &sink, CT_TWIN_KEEP_ARTIFACTS, &err);
        ct_wfdb_signals_free(&sig);
        free(hdr);
        if (rc)
            return ct_cli_fail(CMD, "%s", err.msg);
        return fflush(stdout) == 0 ? CT_EXIT_OK : ct_cli_fail(CMD, "cannot write to stdout");
    }

    ct_wfdb_annotation *ann = NULL;
    size_t n_ann = 0;
    rc = ct_twin_detect_record(hdr, &sig, lead, &ann, &n_ann, &err);
    ct_wfdb_signals_free(&sig);
    if (rc) {
        free(hdr);
        return ct_cli_fail(CMD, "%s", err.msg);
    }
    size_t n_beats = 0;
    for (size_t i = 0; i < n_ann; i++)
        n_beats += ct_wfdb_ann_is_beat(ann[i].code) ? 1 : 0;
    if (strcmp(format, "csv") == 0) {
        printf("sample,symbol\n");
        for (size_t i = 0; i < n_ann; i++)
            if (ct_wfdb_ann_is_beat(ann[i].code))
                printf("%lld,%s\n", (long long)ann[i].sample, ct_wfdb_ann_mnemonic(ann[i].code));
        rc = fflush(stdout) == 0 ? CT_EXIT_OK : ct_cli_fail(CMD, "cannot write to stdout");
    } else {
        if (ct_wfdb_ann_write(out_dir, hdr->record_name, "cta", ann, n_ann, &err)) {
            rc = ct_cli_fail(CMD, "%s", err.msg);
        } else {
            if (!cli->quiet)
                fprintf(stderr, "cardiotwin detect: record %s: %zu beats, %zu annotations in %s/%s.cta\n",
                        name, n_beats, n_ann, out_dir, hdr->record_name);
            rc = CT_EXIT_OK;
        }
    }
    free(ann);
    free(hdr);
    return rc;
}
