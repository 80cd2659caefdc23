/* cardiotwin import: stores WFDB records in the database, one summary line
 * per record on stdout, a progress bar on a terminal. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/cli.h"
#include "cardiotwin/ingest.h"
#include "cardiotwin/store.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin import [options] RECORD...\n"
            "\n"
            "Stores WFDB records in the database: a patient per record, its signals\n"
            "(checked against the header's checksums first) and its reference\n"
            "annotations. RECORD is a path without extension, e.g.\n"
            "../shared/data/mitdb/100 (reads 100.hea, 100.dat and 100.atr).\n"
            "Importing the same files again changes nothing. A record that fails\n"
            "leaves the database as it was; the others are still imported.\n"
            "\n"
            "options:\n"
            "  --source NAME       collection the records belong to (default: the\n"
            "                      name of the record's folder, e.g. mitdb); the\n"
            "                      patient is stored as NAME-RECORD\n"
            "  --annotator NAME    reference annotation file to store (default: atr)\n"
            "  --require-annotations\n"
            "                      fail a record that has no annotation file\n"
            "  --db FILE           database (default: $CARDIOTWIN_DB, else ./cardiotwin.db)\n"
            "  -h, --help          print this help\n"
            "\n"
            "output: one line per record:\n"
            "  100: imported 2 leads (MLII, V5), 30:05.556, 650000 samples per lead, 2274 annotations, 2273 beats\n"
            "exit codes: 0 all records imported or already present, 1 a record failed, 2 usage.\n");
}

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    ct_progress *p = ctx;
    p->total = total;
    ct_progress_update(p, done);
}

static void format_duration(double s, char *buf, size_t len)
{
    long long ms = (long long)(s * 1000.0 + 0.5);
    long long h = ms / 3600000, m = (ms / 60000) % 60, sec = (ms / 1000) % 60, frac = ms % 1000;
    if (h > 0)
        snprintf(buf, len, "%lld:%02lld:%02lld.%03lld", h, m, sec, frac);
    else
        snprintf(buf, len, "%lld:%02lld.%03lld", m, sec, frac);
}

int ct_cmd_import(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"source", required_argument, NULL, 's'},
        {"annotator", required_argument, NULL, 'a'},
        {"require-annotations", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ct_ingest_options opt;
    memset(&opt, 0, sizeof opt);
    /* The audit log names the local user who ran the import. */
    char user[CT_AUDIT_ACTOR_MAX + 1];
    ct_audit_actor actor;
    ct_audit_actor_local(&actor, user, sizeof user);
    opt.actor = &actor;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!*optarg || strlen(optarg) >= 64 || strchr(optarg, '/'))
                return ct_cli_usage("import", "--source: '%s' is not a collection name (1-63 characters, no '/')", optarg);
            opt.source = optarg;
            break;
        case 'a':
            if (!*optarg || strlen(optarg) >= 32 || strchr(optarg, '/'))
                return ct_cli_usage("import", "--annotator: '%s' is not an annotator name", optarg);
            opt.annotator = optarg;
            break;
        case 'r': opt.require_annotations = 1; break;
        case 'h': usage(stdout); return CT_EXIT_OK;
        default:
            return ct_cli_usage("import", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ct_cli_usage("import", "no RECORD given");

    ct_error err;
    ct_error_clear(&err);
    ct_store *st = NULL;
    if (ct_store_open(cli->db_path, &st, &err) != CT_OK)
        return ct_cli_fail("import", "%s", err.msg);

    int failed = 0;
    for (int i = optind; i < argc; i++) {
        const char *rec = argv[i];
        ct_progress bar;
        ct_progress_start(&bar, cli, rec, 0);
        opt.progress = on_progress;
        opt.progress_ctx = &bar;
        ct_ingest_result res;
        ct_error_clear(&err);
        int rc = ct_ingest_wfdb_record(st, rec, &opt, &res, &err);
        ct_progress_finish(&bar);
        if (rc != CT_OK) {
            ct_cli_fail("import", "%s", err.msg);
            failed++;
            continue;
        }
        if (cli->quiet)
            continue;
        char dur[32];
        format_duration(res.duration_s, dur, sizeof dur);
        if (res.already_present)
            printf("%s: already imported, unchanged (%d leads, %s, %lld samples per lead, %zu annotations, %zu beats)\n",
                   res.record, res.n_signals, dur, (long long)res.n_samples, res.n_annotations, res.n_beats);
        else
            printf("%s: imported %d leads (%s), %s, %lld samples per lead, %zu annotations, %zu beats\n",
                   res.record, res.n_signals, res.leads, dur, (long long)res.n_samples,
                   res.n_annotations, res.n_beats);
        fflush(stdout);
    }
    ct_store_close(st);
    if (failed)
        return ct_cli_fail("import", "%d of %d records failed", failed, argc - optind);
    return CT_EXIT_OK;
}
