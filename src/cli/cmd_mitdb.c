/* cardiotwin mitdb: the MIT-BIH Arrhythmia Database on this machine. Its one
 * subcommand, download, fetches records from PhysioNet (or a mirror) with
 * the client room's ct_client_download_record, which stages, verifies and
 * places each record (see include/cardiotwin/client.h and docs/client.md).
 * This file parses the options, draws the progress bar, notes retries and
 * prints one summary line per record. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/client.h"

#define CMD "mitdb download"
#define DEFAULT_BASE_URL "https://physionet.org/files/mitdb/1.0.0/"

static void usage_mitdb(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin mitdb <subcommand> [options]\n"
            "\n"
            "The MIT-BIH Arrhythmia Database (PhysioNet, mitdb 1.0.0) on this machine.\n"
            "\n"
            "subcommands:\n"
            "  download   fetch records from PhysioNet or a mirror, verify them, and\n"
            "             place them in a folder\n"
            "\n"
            "'cardiotwin mitdb <subcommand> --help' describes a subcommand.\n");
}

static void usage_download(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin mitdb download [options] RECORD...\n"
            "\n"
            "Fetches RECORD.hea, its signal files (RECORD.dat) and RECORD.atr for each\n"
            "RECORD (a name such as 100), verifies them (header, every sample against\n"
            "the header's first values and checksums, annotations), and only then\n"
            "places them in the destination folder. A record already there that\n"
            "verifies is skipped. Transient failures (connection errors, timeouts,\n"
            "HTTP 5xx and 429) are retried with growing pauses and a cut transfer is\n"
            "resumed; HTTP 404 and 403 fail at once. A record that fails leaves\n"
            "nothing under its final names; the others are still downloaded.\n"
            "\n"
            "options:\n"
            "  --base-url URL      where the records are (default:\n"
            "                      " DEFAULT_BASE_URL ")\n"
            "  --dest DIR          folder for the records (default: $CARDIOTWIN_MITDB,\n"
            "                      else ./mitdb); created if missing\n"
            "  --retries N         retries per file after the first attempt (default 4,\n"
            "                      at most 20)\n"
            "  --backoff-ms MS     pause before the first retry, doubled for each next\n"
            "                      one up to 30 s (default 1000)\n"
            "  --ca-file FILE      trust the CA certificates in FILE (PEM) instead of\n"
            "                      the system's; certificates are always verified\n"
            "  -h, --help          print this help\n"
            "\n"
            "output: one line per record on stdout, e.g.\n"
            "  100: downloaded and verified: 3 files, 1954701 bytes, 2 signals of 650000 samples, 2274 annotations\n"
            "  100: already present, verified\n"
            "a progress bar on stderr when it is a terminal; retries are noted on stderr.\n"
            "exit codes: 0 all records present and verified, 1 a record failed, 2 usage.\n");
}

/* ---- what a person sees ------------------------------------------------------------ */

typedef struct view {
    const ct_cli *cli;
    const char *dest;
    ct_progress progress;
} view;

static void on_file_begin(void *ctx, const char *record, const char *file)
{
    view *v = ctx;
    ct_progress_start(&v->progress, v->cli, file, -1);
}

static void on_file_progress(void *ctx, const char *record, const char *file, int64_t done,
                             int64_t total)
{
    view *v = ctx;
    v->progress.total = total;
    ct_progress_update(&v->progress, done);
}

static void on_file_end(void *ctx, const char *record, const char *file)
{
    view *v = ctx;
    ct_progress_finish(&v->progress);
}

static void on_retry(void *ctx, const char *record, const char *file, int attempt, long wait_ms,
                     const char *reason)
{
    view *v = ctx;
    ct_progress_finish(&v->progress);
    if (!v->cli->quiet)
        fprintf(stderr, "cardiotwin " CMD ": record %s: %s: %s; attempt %d in %ld ms\n", record, file,
                reason, attempt, wait_ms);
}

static void on_replacing(void *ctx, const char *record, const char *reason)
{
    view *v = ctx;
    if (!v->cli->quiet)
        fprintf(stderr, "cardiotwin " CMD ": record %s: the copy in %s does not verify (%s); "
                        "downloading it again\n", record, v->dest, reason);
}

static void print_summary(const char *record, const ct_client_record_result *r)
{
    if (r->status == CT_CLIENT_RECORD_PRESENT) {
        printf("%s: already present, verified\n", record);
        return;
    }
    printf("%s: downloaded and verified: %d files, %" PRId64 " bytes, %d signals of %" PRId64
           " samples, %zu annotations",
           record, r->n_files, r->bytes, r->n_signals, r->n_samples, r->n_annotations);
    const char *sep = " (";
    if (r->retries) {
        printf("%s%d retr%s", sep, r->retries, r->retries == 1 ? "y" : "ies");
        sep = ", ";
    }
    if (r->resumed) {
        printf("%s%d resumed", sep, r->resumed);
        sep = ", ";
    }
    if (r->restarted) {
        printf("%s%d restarted from zero", sep, r->restarted);
        sep = ", ";
    }
    printf("%s\n", sep[0] == ',' ? ")" : "");
    fflush(stdout);
}

/* ---- the command ------------------------------------------------------------------- */

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int cmd_download(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"base-url", required_argument, NULL, 'u'},
        {"dest", required_argument, NULL, 'd'},
        {"retries", required_argument, NULL, 'r'},
        {"backoff-ms", required_argument, NULL, 'b'},
        {"ca-file", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ct_client_options copt;
    ct_client_options_default(&copt);
    const char *base_url = DEFAULT_BASE_URL;
    const char *dest = getenv("CARDIOTWIN_MITDB");
    if (!dest || !*dest)
        dest = "mitdb";
    long v;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u': base_url = optarg; break;
        case 'd':
            if (!*optarg)
                return ct_cli_usage(CMD, "--dest needs a folder");
            dest = optarg;
            break;
        case 'r':
            if (parse_int(optarg, 0, CT_CLIENT_MAX_RETRIES, &v) != 0)
                return ct_cli_usage(CMD, "--retries: '%s' is not a number from 0 to %d", optarg,
                                    CT_CLIENT_MAX_RETRIES);
            copt.max_retries = (int)v;
            break;
        case 'b':
            if (parse_int(optarg, 1, 30000, &v) != 0)
                return ct_cli_usage(CMD, "--backoff-ms: '%s' is not a number from 1 to 30000", optarg);
            copt.backoff_base_ms = v;
            break;
        case 'C':
            if (!*optarg)
                return ct_cli_usage(CMD, "--ca-file needs a file");
            copt.ca_file = optarg;
            break;
        case 'h': usage_download(stdout); return CT_EXIT_OK;
        case ':': return ct_cli_usage(CMD, "%s needs a value", argv[optind - 1]);
        default: return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ct_cli_usage(CMD, "name at least one RECORD (e.g. 100)");
    for (int i = optind; i < argc; i++)
        if (!ct_client_record_name_ok(argv[i]))
            return ct_cli_usage(CMD, "'%s' is not a record name (letters, digits and '_', at most %d)",
                                argv[i], CT_CLIENT_RECORD_NAME_MAX);
    ct_error err = {0};
    char probe[CT_CLIENT_MAX_URL];
    if (ct_client_url_join(base_url, "x", probe, sizeof probe, &err) != 0)
        return ct_cli_usage(CMD, "--base-url: %s", err.msg);
    if (ct_client_make_dirs(dest, &err) != 0)
        return ct_cli_fail(CMD, "%s", err.msg);

    /* libcurl's process-wide set-up is main's (ct_client_global_init). */
    ct_client *client;
    if (ct_client_new(&copt, &client, &err) != 0)
        return ct_cli_fail(CMD, "%s", err.msg);
    view shown = {.cli = cli, .dest = dest};
    const ct_client_record_callbacks cb = {
        .file_begin = on_file_begin,
        .file_progress = on_file_progress,
        .file_end = on_file_end,
        .retry = on_retry,
        .replacing = on_replacing,
        .ctx = &shown,
    };
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        ct_error_clear(&err);
        ct_client_record_result res;
        if (ct_client_download_record(client, base_url, dest, argv[i], &cb, &res, &err) != 0) {
            ct_cli_fail(CMD, "%s", err.msg);
            failed++;
        } else if (!cli->quiet) {
            print_summary(argv[i], &res);
        }
    }
    ct_client_free(client);
    return failed ? CT_EXIT_FAIL : CT_EXIT_OK;
}

int ct_cmd_mitdb(const ct_cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return ct_cli_usage("mitdb", "name a subcommand: download");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage_mitdb(stdout);
        return CT_EXIT_OK;
    }
    if (strcmp(sub, "download") == 0)
        return cmd_download(cli, argc - 1, argv + 1);
    return ct_cli_usage("mitdb", "unknown subcommand '%s'", sub);
}
