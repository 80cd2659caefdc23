/* cli: the `cardiotwin` command line. Argument parsing, progress display and
 * exit codes live here; the work itself lives in the rooms. Each command is a
 * function in src/cli/cmd_NAME.c registered in src/cli/main.c.
 *
 * Exit codes: 0 ok, 1 failure, 2 usage. Errors go to stderr as one line that
 * names the command and the file, record or field at fault. */
#ifndef CARDIOTWIN_CLI_H
#define CARDIOTWIN_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "cardiotwin/error.h"

enum { CT_EXIT_OK = 0, CT_EXIT_FAIL = 1, CT_EXIT_USAGE = 2 };

/* What main has wired for every command: global options and the terminal. */
typedef struct ct_cli {
    const char *db_path;   /* --db, else $CARDIOTWIN_DB, else ./cardiotwin.db */
    int stderr_is_tty;     /* progress bars only on a terminal */
    int quiet;             /* --quiet: no summaries, errors only */
} ct_cli;

typedef struct ct_cli_command {
    const char *name;
    const char *summary;   /* one line for `cardiotwin --help` */
    int (*run)(const ct_cli *cli, int argc, char **argv); /* argv[0] is the command name */
} ct_cli_command;

/* Prints "cardiotwin CMD: MESSAGE" on stderr and returns CT_EXIT_FAIL. */
int ct_cli_fail(const char *cmd, const char *fmt, ...) CT_PRINTF(2, 3);
/* Prints "cardiotwin CMD: MESSAGE (try 'cardiotwin CMD --help')" and returns CT_EXIT_USAGE. */
int ct_cli_usage(const char *cmd, const char *fmt, ...) CT_PRINTF(2, 3);

/* A progress bar on stderr, drawn only when stderr is a terminal and at most
 * ten times a second; silent otherwise. */
typedef struct ct_progress {
    int enabled;
    char label[64];
    int64_t total;
    int64_t done;
    int64_t last_draw_ms;
    int drawn;
} ct_progress;

void ct_progress_start(ct_progress *p, const ct_cli *cli, const char *label, int64_t total);
void ct_progress_update(ct_progress *p, int64_t done);
/* Clears the bar line so that the next line printed starts clean. */
void ct_progress_finish(ct_progress *p);

/* Commands (src/cli/cmd_*.c). */
int ct_cmd_import(const ct_cli *cli, int argc, char **argv);
int ct_cmd_mitdb(const ct_cli *cli, int argc, char **argv);
int ct_cmd_serve(const ct_cli *cli, int argc, char **argv);
int ct_cmd_eval(const ct_cli *cli, int argc, char **argv);
int ct_cmd_detect(const ct_cli *cli, int argc, char **argv);
int ct_cmd_audit(const ct_cli *cli, int argc, char **argv);
int ct_cmd_stream(const ct_cli *cli, int argc, char **argv);
int ct_cmd_token(const ct_cli *cli, int argc, char **argv);
int ct_cmd_user(const ct_cli *cli, int argc, char **argv);

#endif
