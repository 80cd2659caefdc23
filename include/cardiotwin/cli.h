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

/* Helpers of the commands that keep accounts in the database (token, user). */
typedef struct ct_store ct_store;
/* Wall-clock time in ms since the epoch (for states such as "expired"). */
int64_t ct_cli_wall_ms(void);
/* t_ms as "2025-05-01T12:00:00Z" (UTC) into buf, or `dash` when t_ms <= 0. */
void ct_cli_format_time(int64_t t_ms, const char *dash, char *buf, size_t cap);
/* Opens cli->db_path. ct_store_open makes a missing file; with create 0 a
 * missing file is CT_ENOTFOUND instead, so that reading or changing what is
 * not there never leaves an empty database behind. */
int ct_cli_open_store(const ct_cli *cli, int create, ct_store **st, ct_error *err);
/* For a subcommand that takes no option but --help and exactly `want_args`
 * arguments: 0 when argv is so (the arguments start at optind); -1 after
 * printing usage(stdout) for --help; else ct_cli_usage(cmd, "%s", what). */
int ct_cli_no_options(const char *cmd, void (*usage)(FILE *out), int argc, char **argv, int want_args,
                      const char *what);
/* A table column's width: w, or the length of s if that is more. */
int ct_cli_width(int w, const char *s);

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
