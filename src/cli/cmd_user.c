/* cardiotwin user: make, list, disable and unlock the dashboard's users and
 * set their passwords. The work is the http room's (ct_http_user_create
 * ...: the row, the scrypt hash and the audit entry in one transaction);
 * this file parses options, reads the password and talks to the operator.
 *
 * A password is read from --password-file (its first line) or one line of
 * standard input, with echo off when that is a terminal; it is never an
 * argument (arguments show in `ps` and shell histories) and never printed.
 * The buffer holding it is wiped once it has been hashed. The operator
 * running the command (the OS user) is the actor of the audit entry. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/cli.h"
#include "cardiotwin/http.h"
#include "cardiotwin/store.h"

#define CMD "user"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin user create --name NAME --role ROLE [--patient ID] [--password-file F]\n"
            "       cardiotwin user list\n"
            "       cardiotwin user disable NAME\n"
            "       cardiotwin user unlock NAME\n"
            "       cardiotwin user passwd NAME [--password-file F]\n"
            "\n"
            "Users log in to the dashboard (POST /auth/login) with a name and a password\n"
            "and then hold a session cookie, with the scopes of their role:\n"
            "\n");
    for (size_t i = 0; ct_http_role_at(i); i++) {
        const ct_http_role_info *r = ct_http_role_at(i);
        if (strcmp(r->name, "device") != 0)
            fprintf(out, "  %-10s %s\n", r->name, r->summary);
    }
    fprintf(out,
            "\n"
            "  create   make a user (a device gets a token instead: 'cardiotwin token')\n"
            "  list     every user with its state (active, locked, disabled); never a password\n"
            "  disable  refuse the user from now on and end their sessions (for good)\n"
            "  unlock   lift the lock that %d failed logins in a row put on an account\n"
            "  passwd   set a new password; ends the user's open sessions\n"
            "\n"
            "options:\n"
            "  --name NAME       1 to 64 of A-Z a-z 0-9 . _ - starting with a letter; it names\n"
            "                    the user in the audit log, so a name is never used twice\n"
            "  --role ROLE       clinician, auditor or admin\n"
            "  --patient ID      bind a clinician to Patient/ID (it must exist)\n"
            "  --password-file F read the password from the first line of F; without it, one\n"
            "                    line is read from standard input (not echoed on a terminal).\n"
            "                    At least %d characters, no control characters\n"
            "  -h, --help        print this help\n"
            "\n"
            "Passwords are stored as scrypt (N=2^17, r=8, p=1) with a random salt. Every\n"
            "change is written to the audit log with the operator (the user running this\n"
            "command) as its actor. docs/security.md has the details.\n"
            "The database is --db (default: $CARDIOTWIN_DB, else ./cardiotwin.db).\n"
            "exit codes: 0 ok, 1 failure, 2 usage.\n",
            CT_HTTP_LOGIN_MAX_FAILURES, CT_HTTP_PASSWORD_MIN);
}

/* One line (without its end) into buf; the rest of the stream is not read.
 * 0, or -1 with *why set. */
static int read_line(FILE *f, char *buf, size_t cap, size_t *len, const char **why)
{
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 1 >= cap) {
            *why = "the password is longer than 1024 bytes";
            return -1;
        }
        buf[n++] = (char)c;
    }
    if (ferror(f)) {
        *why = "the password could not be read";
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    *len = n;
    if (n == 0 && c == EOF) {
        *why = "no password was given (an empty input)";
        return -1;
    }
    return 0;
}

/* The password from `file` or standard input, into buf. */
static int read_password(const char *file, const char *who, char *buf, size_t cap, size_t *len)
{
    const char *why = NULL;
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f)
            return ct_cli_fail(CMD, "%s: %s", file, strerror(errno));
        int rc = read_line(f, buf, cap, len, &why);
        fclose(f);
        if (rc != 0)
            return ct_cli_fail(CMD, "%s: %s", file, why);
        return 0;
    }
    int tty = isatty(STDIN_FILENO);
    struct termios old, quiet;
    if (tty) {
        fprintf(stderr, "password for %s (not shown): ", who);
        fflush(stderr);
        if (tcgetattr(STDIN_FILENO, &old) == 0) {
            quiet = old;
            quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
            quiet.c_lflag |= ICANON;
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        } else {
            tty = 0;
        }
    }
    int rc = read_line(stdin, buf, cap, len, &why);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (rc != 0)
        return ct_cli_fail(CMD, "standard input: %s", why);
    return 0;
}

static int cmd_create(const ct_cli *cli, int argc, char **argv)
{
    enum { OPT_ROLE = 1000, OPT_NAME, OPT_PATIENT, OPT_PWFILE };
    static const struct option longopts[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"name", required_argument, NULL, OPT_NAME},
        {"patient", required_argument, NULL, OPT_PATIENT},
        {"password-file", required_argument, NULL, OPT_PWFILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ct_http_user_spec spec = {0};
    const char *pwfile = NULL;
    optind = 0;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'h':
            usage(stdout);
            return CT_EXIT_OK;
        case OPT_ROLE: spec.role = optarg; break;
        case OPT_NAME: spec.name = optarg; break;
        case OPT_PATIENT: spec.patient = optarg; break;
        case OPT_PWFILE: pwfile = optarg; break;
        case ':':
            return ct_cli_usage(CMD, "%s needs a value", argv[optind - 1]);
        default:
            return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ct_cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
    if (!spec.name)
        return ct_cli_usage(CMD, "create needs --name");
    if (!spec.role)
        return ct_cli_usage(CMD, "create needs --role (clinician, auditor or admin)");
    const ct_http_role_info *role = ct_http_role_lookup(spec.role);
    if (!role || strcmp(role->name, "device") == 0)
        return ct_cli_usage(CMD, "--role '%s' is not clinician, auditor or admin (a device gets a token)", spec.role);
    if (spec.patient && strcmp(role->name, "clinician") != 0)
        return ct_cli_usage(CMD, "--patient: only a clinician can be bound to a patient");

    char pw[CT_HTTP_PASSWORD_MAX + 2];
    size_t n = 0;
    int rc = read_password(pwfile, spec.name, pw, sizeof pw, &n);
    if (rc != 0)
        return rc;
    spec.password = pw;
    spec.password_len = n;
    char who[CT_AUDIT_ACTOR_MAX + 1];
    ct_audit_actor by;
    ct_audit_actor_local(&by, who, sizeof who);
    ct_store *st = NULL;
    ct_error err = {0};
    ct_store_user row;
    rc = ct_cli_open_store(cli, 1, &st, &err);
    if (rc == CT_OK)
        rc = ct_http_user_create(st, &spec, &by, &row, &err);
    OPENSSL_cleanse(pw, sizeof pw);
    ct_store_close(st);
    if (rc != CT_OK)
        return ct_cli_fail(CMD, "create %s: %s", spec.name, err.msg);
    if (!cli->quiet)
        fprintf(stderr, "cardiotwin %s: created user %lld '%s': role %s%s%s\n", CMD, (long long)row.id, row.name,
                row.role, row.patient[0] ? ", bound to Patient/" : "", row.patient);
    return CT_EXIT_OK;
}

static int cmd_list(const ct_cli *cli, int argc, char **argv)
{
    int u = ct_cli_no_options(CMD, usage, argc, argv, 0, "list takes no arguments");
    if (u)
        return u < 0 ? CT_EXIT_OK : u;
    ct_store *st = NULL;
    ct_error err = {0};
    ct_store_user *v = NULL;
    size_t n = 0;
    if (ct_cli_open_store(cli, 0, &st, &err) != CT_OK || ct_store_user_list(st, &v, &n, &err) != CT_OK) {
        ct_store_close(st);
        return ct_cli_fail(CMD, "list: %s", err.msg);
    }
    ct_store_close(st);
    int wn = 4, wp = 7;
    for (size_t i = 0; i < n; i++) {
        wn = ct_cli_width(wn, v[i].name);
        wp = ct_cli_width(wp, v[i].patient);
    }
    int64_t now = ct_cli_wall_ms();
    printf("%-4s %-*s %-9s %-*s %-8s %-6s %-20s %-20s %-20s %s\n", "ID", wn, "NAME", "ROLE", wp, "PATIENT", "STATE",
           "FAILED", "CREATED", "LAST-LOGIN", "LOCKED-UNTIL", "KDF");
    for (size_t i = 0; i < n; i++) {
        char created[32], last[32], locked[32], kdf[64];
        ct_cli_format_time(v[i].created_ms, "-", created, sizeof created);
        ct_cli_format_time(v[i].last_login_ms, "never", last, sizeof last);
        ct_cli_format_time(v[i].locked_until_ms > now ? v[i].locked_until_ms : 0, "-", locked, sizeof locked);
        snprintf(kdf, sizeof kdf, "%s:%lld:%lld:%lld", v[i].kdf, (long long)v[i].kdf_cost, (long long)v[i].kdf_block,
                 (long long)v[i].kdf_parallel);
        printf("%-4lld %-*s %-9s %-*s %-8s %-6lld %-20s %-20s %-20s %s\n", (long long)v[i].id, wn, v[i].name,
               v[i].role, wp, v[i].patient[0] ? v[i].patient : "-", ct_http_user_state(&v[i], now),
               (long long)v[i].failed_count, created, last, locked, kdf);
    }
    OPENSSL_cleanse(v, n * sizeof *v);
    free(v);
    if (fflush(stdout) != 0)
        return ct_cli_fail(CMD, "list: cannot write to standard output");
    return CT_EXIT_OK;
}

/* What disable, unlock and passwd do to one named user (the http room's
 * work); `arg` is the call's own in or out value. */
typedef int (*user_change_fn)(ct_store *st, const char *name, const ct_audit_actor *by, void *arg, ct_error *err);

/* Applies `change` to user `name` with the operator as the actor, in the
 * database that must exist, and turns a failure into the command's one
 * line (a missing database reads as a missing user). */
static int change_user(const ct_cli *cli, const char *verb, const char *name, user_change_fn change, void *arg)
{
    char who[CT_AUDIT_ACTOR_MAX + 1];
    ct_audit_actor by;
    ct_audit_actor_local(&by, who, sizeof who);
    ct_store *st = NULL;
    ct_error err = {0};
    int rc = ct_cli_open_store(cli, 0, &st, &err);
    if (rc == CT_OK)
        rc = change(st, name, &by, arg, &err);
    ct_store_close(st);
    if (rc == CT_ENOTFOUND)
        return ct_cli_fail(CMD, "%s: there is no user %s ('cardiotwin user list' shows them)", verb, name);
    if (rc != CT_OK)
        return ct_cli_fail(CMD, "%s %s: %s", verb, name, err.msg);
    return CT_EXIT_OK;
}

static int disable_user(ct_store *st, const char *name, const ct_audit_actor *by, void *already, ct_error *err)
{
    return ct_http_user_disable(st, name, by, already, err);
}

static int unlock_user(ct_store *st, const char *name, const ct_audit_actor *by, void *was_locked, ct_error *err)
{
    return ct_http_user_unlock(st, name, by, was_locked, err);
}

/* disable and unlock: a name, the change, and a line that says whether the
 * change's flag (already disabled, was locked) was set: the words before
 * and after the user's name, for flag 0 and 1. */
typedef struct flag_change {
    const char *verb;
    user_change_fn change;
    const char *said[2][2];
} flag_change;

static const flag_change disable_change = {
    "disable",
    disable_user,
    {{"disabled user ", "; their sessions are ended"}, {"user ", " was already disabled"}},
};
static const flag_change unlock_change = {
    "unlock",
    unlock_user,
    {{"user ", " was not locked; failed logins counted from zero again"},
     {"unlocked user ", "; failed logins counted from zero again"}},
};

static int cmd_flag_change(const ct_cli *cli, const flag_change *fc, int argc, char **argv)
{
    char what[64];
    snprintf(what, sizeof what, "%s takes one user name", fc->verb);
    int u = ct_cli_no_options(CMD, usage, argc, argv, 1, what);
    if (u)
        return u < 0 ? CT_EXIT_OK : u;
    const char *name = argv[optind];
    int flag = 0;
    int rc = change_user(cli, fc->verb, name, fc->change, &flag);
    if (rc == CT_EXIT_OK && !cli->quiet)
        fprintf(stderr, "cardiotwin %s: %s%s%s\n", CMD, fc->said[flag != 0][0], name, fc->said[flag != 0][1]);
    return rc;
}

typedef struct new_password {
    const char *pw;
    size_t len;
} new_password;

static int set_password(ct_store *st, const char *name, const ct_audit_actor *by, void *arg, ct_error *err)
{
    const new_password *p = arg;
    return ct_http_user_set_password(st, name, p->pw, p->len, NULL, by, err);
}

static int cmd_passwd(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"password-file", required_argument, NULL, 'p'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    const char *pwfile = NULL;
    optind = 0;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            usage(stdout);
            return CT_EXIT_OK;
        }
        if (c == 'p') {
            pwfile = optarg;
            continue;
        }
        if (c == ':')
            return ct_cli_usage(CMD, "%s needs a value", argv[optind - 1]);
        return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind != 1)
        return ct_cli_usage(CMD, "passwd takes one user name");
    const char *name = argv[optind];
    char pw[CT_HTTP_PASSWORD_MAX + 2];
    size_t n = 0;
    int rc = read_password(pwfile, name, pw, sizeof pw, &n);
    if (rc != 0)
        return rc;
    new_password np = {pw, n};
    rc = change_user(cli, "passwd", name, set_password, &np);
    OPENSSL_cleanse(pw, sizeof pw);
    if (rc == CT_EXIT_OK && !cli->quiet)
        fprintf(stderr, "cardiotwin %s: new password set for %s; their sessions are ended\n", CMD, name);
    return rc;
}

int ct_cmd_user(const ct_cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return ct_cli_usage(CMD, "needs a subcommand: create, list, disable, unlock or passwd");
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return CT_EXIT_OK;
    }
    if (strcmp(sub, "create") == 0)
        return cmd_create(cli, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return cmd_list(cli, argc - 1, argv + 1);
    if (strcmp(sub, "disable") == 0)
        return cmd_flag_change(cli, &disable_change, argc - 1, argv + 1);
    if (strcmp(sub, "unlock") == 0)
        return cmd_flag_change(cli, &unlock_change, argc - 1, argv + 1);
    if (strcmp(sub, "passwd") == 0)
        return cmd_passwd(cli, argc - 1, argv + 1);
    return ct_cli_usage(CMD, "unknown subcommand '%s' (create, list, disable, unlock or passwd)", sub);
}
