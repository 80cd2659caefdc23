/* main: wires the command line. Global options (--db, --quiet, --help,
 * --version) are taken from anywhere before a "--", so that both
 * `cardiotwin --db x.db import 100` and `cardiotwin import 100 --db x.db`
 * work; the rest goes to the command. This is the only place with process-wide
 * state (the ct_cli handed to every command). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/client.h"
#include "cardiotwin/version.h"

static const ct_cli_command commands[] = {
    {"import", "store WFDB records (signals and reference annotations) in the database", ct_cmd_import},
    {"mitdb", "download MIT-BIH Arrhythmia Database records from PhysioNet", ct_cmd_mitdb},
    {"serve", "run the HTTPS server", ct_cmd_serve},
    {"eval", "score the detector against reference annotations (EC57)", ct_cmd_eval},
    {"detect", "run the beat and rhythm detector on a WFDB record", ct_cmd_detect},
    {"audit", "verify, checkpoint and export the tamper-evident audit log", ct_cmd_audit},
    {"stream", "replay a WFDB record to a FHIR server as ECG Observations", ct_cmd_stream},
    {"token", "create, list and revoke the API's bearer tokens", ct_cmd_token},
    {"user", "create, list, disable and unlock dashboard users; set passwords", ct_cmd_user},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void print_help(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin [--db FILE] [--quiet] <command> [options] [args]\n"
            "\n"
            "cardiotwin is a heart digital twin service: it stores ECG records, detects\n"
            "beats and arrhythmias, and serves them over HTTPS.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "global options:\n"
            "  --db FILE     database file (default: $CARDIOTWIN_DB, else ./cardiotwin.db)\n"
            "  --quiet       print errors only\n"
            "  --version     print the version and exit\n"
            "  --help        print this help and exit\n"
            "\n"
            "'cardiotwin <command> --help' describes a command.\n"
            "exit codes: 0 ok, 1 failure, 2 usage error.\n");
}

static int run(int argc, char **argv)
{
    ct_cli cli = {0};
    cli.db_path = getenv("CARDIOTWIN_DB");
    if (!cli.db_path || !*cli.db_path)
        cli.db_path = "cardiotwin.db";
    cli.stderr_is_tty = isatty(STDERR_FILENO);

    /* Take the global options out of argv, keeping the rest in order. */
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    if (!rest) {
        fprintf(stderr, "cardiotwin: out of memory\n");
        return CT_EXIT_FAIL;
    }
    int n_rest = 0;
    int want_help = 0, want_version = 0, after_dashdash = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (after_dashdash) {
            rest[n_rest++] = argv[i];
        } else if (strcmp(a, "--") == 0) {
            after_dashdash = 1;
            rest[n_rest++] = argv[i];
        } else if (strcmp(a, "--db") == 0) {
            if (i + 1 >= argc || argv[i + 1][0] == '\0') {
                free(rest);
                fprintf(stderr, "cardiotwin: --db needs a FILE (try 'cardiotwin --help')\n");
                return CT_EXIT_USAGE;
            }
            cli.db_path = argv[++i];
        } else if (strncmp(a, "--db=", 5) == 0) {
            if (a[5] == '\0') {
                free(rest);
                fprintf(stderr, "cardiotwin: --db needs a FILE (try 'cardiotwin --help')\n");
                return CT_EXIT_USAGE;
            }
            cli.db_path = a + 5;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            cli.quiet = 1;
        } else if (n_rest == 0 && (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)) {
            want_help = 1;
        } else if (n_rest == 0 && (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0)) {
            want_version = 1;
        } else {
            rest[n_rest++] = argv[i];
        }
    }

    int rc;
    if (want_version) {
        printf("cardiotwin %s\n", CT_VERSION);
        rc = CT_EXIT_OK;
    } else if (want_help || n_rest == 0) {
        print_help(want_help ? stdout : stderr);
        rc = want_help ? CT_EXIT_OK : CT_EXIT_USAGE;
    } else if (strcmp(rest[0], "help") == 0) {
        rc = CT_EXIT_OK;
        if (n_rest > 1) {
            char *sub_argv[] = {rest[1], "--help", NULL};
            rest[0] = rest[1];
            const ct_cli_command *c = NULL;
            for (size_t i = 0; i < N_COMMANDS; i++)
                if (strcmp(commands[i].name, rest[1]) == 0)
                    c = &commands[i];
            rc = c ? c->run(&cli, 2, sub_argv)
                   : ct_cli_usage("help", "unknown command '%s'", rest[1]);
        } else {
            print_help(stdout);
        }
    } else {
        const ct_cli_command *c = NULL;
        for (size_t i = 0; i < N_COMMANDS; i++)
            if (strcmp(commands[i].name, rest[0]) == 0)
                c = &commands[i];
        if (!c) {
            fprintf(stderr, "cardiotwin: unknown command '%s' (try 'cardiotwin --help')\n", rest[0]);
            rc = CT_EXIT_USAGE;
        } else {
            rc = c->run(&cli, n_rest, rest);
        }
    }
    free(rest);
    return rc;
}

int main(int argc, char **argv)
{
    /* libcurl's process-wide set-up, once, before any command may use it,
     * and its tear-down on every way out. */
    ct_error init_err = {0};
    if (ct_client_global_init(&init_err) != 0)
        return ct_cli_fail(NULL, "%s", init_err.msg);
    int rc = run(argc, argv);
    ct_client_global_cleanup();
    return rc;
}
