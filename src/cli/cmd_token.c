/* cardiotwin token: make, list and revoke the API's bearer tokens. The work
 * is the http room's (ct_http_token_create, ct_http_token_revoke: the
 * token, its hash, its scopes and the audit entry in one transaction);
 * this file parses options and talks to the operator.
 *
 * `token create` prints the token alone on stdout, once, so that a script
 * can capture it (TOKEN=$(cardiotwin token create ...)); everything else
 * goes to stderr. The token is wiped from memory once printed: it exists
 * nowhere else, the database keeps only its SHA-256. The operator running
 * the command (the OS user) is the actor of the audit entry. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/cli.h"
#include "cardiotwin/http.h"
#include "cardiotwin/store.h"

#define CMD "token"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin token create --role ROLE --name NAME [--patient ID] [--expires DAYS]\n"
            "       cardiotwin token list\n"
            "       cardiotwin token revoke NAME|ID\n"
            "\n"
            "Bearer tokens open the HTTPS API: clients send 'Authorization: Bearer TOKEN'.\n"
            "A token is 32 random bytes shown once when it is made; the database keeps only\n"
            "its SHA-256, so a lost token cannot be shown again: revoke it and make another.\n"
            "Its role decides what it may do, as SMART v2 scopes:\n"
            "\n");
    for (size_t i = 0; ct_http_role_at(i); i++) {
        const ct_http_role_info *r = ct_http_role_at(i);
        fprintf(out, "  %-10s %s\n  %-10s %s\n", r->name, r->scopes, "", r->summary);
        if (r->patient_scopes)
            fprintf(out, "  %-10s with --patient: %s\n", "", r->patient_scopes);
    }
    fprintf(out,
            "\n"
            "  create   make a token and print it alone on standard output\n"
            "  list     every token with its state; never the token itself\n"
            "  revoke   refuse the token from its next request on (it stays listed)\n"
            "\n"
            "create options:\n"
            "  --role ROLE     device, clinician, auditor or admin (required)\n"
            "  --name NAME     who or what holds it, e.g. ward3-gateway (required): 1 to 64\n"
            "                  of A-Z a-z 0-9 . _ - starting with a letter. It names the caller\n"
            "                  in the audit and access logs, so a name is never used twice,\n"
            "                  not even after a revoke.\n"
            "  --patient ID    bind the token to Patient/ID (device and clinician only): it\n"
            "                  then sees and writes that patient's compartment only. The\n"
            "                  Patient must exist.\n"
            "  --expires DAYS  refuse the token DAYS days from now, 1..%d (default: never)\n"
            "  -h, --help      print this help\n"
            "\n"
            "Every create and revoke is written to the audit log with the operator (the\n"
            "user running this command) as its actor. docs/security.md has the details.\n"
            "The database is --db (default: $CARDIOTWIN_DB, else ./cardiotwin.db).\n"
            "exit codes: 0 ok, 1 failure, 2 usage.\n",
            CT_HTTP_TOKEN_MAX_DAYS);
}

static int cmd_create(const ct_cli *cli, int argc, char **argv)
{
    enum { OPT_ROLE = 1000, OPT_NAME, OPT_PATIENT, OPT_EXPIRES };
    static const struct option longopts[] = {
        {"role", required_argument, NULL, OPT_ROLE},
        {"name", required_argument, NULL, OPT_NAME},
        {"patient", required_argument, NULL, OPT_PATIENT},
        {"expires", required_argument, NULL, OPT_EXPIRES},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ct_http_token_spec spec = {0};
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
        case OPT_ROLE:
            spec.role = optarg;
            break;
        case OPT_NAME:
            spec.name = optarg;
            break;
        case OPT_PATIENT:
            spec.patient = optarg;
            break;
        case OPT_EXPIRES: {
            char *end;
            errno = 0;
            long d = strtol(optarg, &end, 10);
            if (errno || !*optarg || *end || d < 1 || d > CT_HTTP_TOKEN_MAX_DAYS)
                return ct_cli_usage(CMD, "--expires '%s' is not a number of days 1..%d", optarg,
                                    CT_HTTP_TOKEN_MAX_DAYS);
            spec.expires_days = (int)d;
            break;
        }
        case ':':
            return ct_cli_usage(CMD, "%s needs a value", argv[optind - 1]);
        default:
            return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ct_cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
    if (!spec.role)
        return ct_cli_usage(CMD, "create needs --role (device, clinician, auditor or admin)");
    if (!spec.name)
        return ct_cli_usage(CMD, "create needs --name: who or what will hold the token");
    const ct_http_role_info *role = ct_http_role_lookup(spec.role);
    if (!role)
        return ct_cli_usage(CMD, "--role '%s' is not device, clinician, auditor or admin", spec.role);
    if (spec.patient && !role->patient_scopes)
        return ct_cli_usage(CMD, "--patient: a %s token cannot be bound to a patient (only device and clinician)",
                            role->name);

    char who[CT_AUDIT_ACTOR_MAX + 1];
    ct_audit_actor by;
    ct_audit_actor_local(&by, who, sizeof who);
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_cli_open_store(cli, 1, &st, &err) != CT_OK)
        return ct_cli_fail(CMD, "%s", err.msg);
    char token[CT_HTTP_TOKEN_BUF];
    ct_store_token row;
    int rc = ct_http_token_create(st, &spec, &by, token, sizeof token, &row, &err);
    ct_store_close(st);
    if (rc != CT_OK)
        return ct_cli_fail(CMD, "create %s: %s", spec.name, err.msg);
    /* The token alone on stdout, then gone from this process. */
    int ok = printf("%s\n", token) > 0 && fflush(stdout) == 0;
    OPENSSL_cleanse(token, sizeof token);
    if (!ok)
        return ct_cli_fail(CMD, "create %s: the token was made (id %lld) but could not be written to standard "
                           "output; revoke it with 'cardiotwin token revoke %lld'",
                           row.name, (long long)row.id, (long long)row.id);
    if (!cli->quiet) {
        char exp[32];
        ct_cli_format_time(row.expires_ms, "never", exp, sizeof exp);
        fprintf(stderr, "cardiotwin %s: created token %lld '%s': role %s (%s)%s%s, expires %s. It is shown this "
                "once: store it now.\n",
                CMD, (long long)row.id, row.name, row.role, row.scopes, row.patient[0] ? ", bound to Patient/" : "",
                row.patient, exp);
    }
    return CT_EXIT_OK;
}

static int cmd_list(const ct_cli *cli, int argc, char **argv)
{
    int u = ct_cli_no_options(CMD, usage, argc, argv, 0, "list takes no arguments");
    if (u)
        return u < 0 ? CT_EXIT_OK : u;
    ct_store *st = NULL;
    ct_error err = {0};
    ct_store_token *t = NULL;
    size_t n = 0;
    if (ct_cli_open_store(cli, 0, &st, &err) != CT_OK || ct_store_token_list(st, &t, &n, &err) != CT_OK) {
        ct_store_close(st);
        return ct_cli_fail(CMD, "list: %s", err.msg);
    }
    ct_store_close(st);
    /* Column widths from the content: names and patients are up to 64. */
    int wn = 4, wp = 7;
    for (size_t i = 0; i < n; i++) {
        wn = ct_cli_width(wn, t[i].name);
        wp = ct_cli_width(wp, t[i].patient);
    }
    int64_t now = ct_cli_wall_ms();
    printf("%-4s %-*s %-9s %-*s %-7s %-20s %-20s %-20s %-20s %s\n", "ID", wn, "NAME", "ROLE", wp, "PATIENT",
           "STATE", "CREATED", "EXPIRES", "REVOKED", "LAST-USED", "SCOPES");
    for (size_t i = 0; i < n; i++) {
        char created[32], expires[32], revoked[32], used[32];
        ct_cli_format_time(t[i].created_ms, "-", created, sizeof created);
        ct_cli_format_time(t[i].expires_ms, "never", expires, sizeof expires);
        ct_cli_format_time(t[i].revoked_ms, "-", revoked, sizeof revoked);
        ct_cli_format_time(t[i].last_used_ms, "never", used, sizeof used);
        printf("%-4lld %-*s %-9s %-*s %-7s %-20s %-20s %-20s %-20s %s\n", (long long)t[i].id, wn, t[i].name, t[i].role,
               wp, t[i].patient[0] ? t[i].patient : "-", ct_http_token_state_name(ct_http_token_state_at(&t[i], now)),
               created, expires, revoked, used, t[i].scopes);
    }
    free(t);
    if (fflush(stdout) != 0)
        return ct_cli_fail(CMD, "list: cannot write to standard output");
    return CT_EXIT_OK;
}

static int cmd_revoke(const ct_cli *cli, int argc, char **argv)
{
    int u = ct_cli_no_options(CMD, usage, argc, argv, 1, "revoke takes one token name or id");
    if (u)
        return u < 0 ? CT_EXIT_OK : u;
    const char *which = argv[optind];
    char who[CT_AUDIT_ACTOR_MAX + 1];
    ct_audit_actor by;
    ct_audit_actor_local(&by, who, sizeof who);
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_cli_open_store(cli, 0, &st, &err) != CT_OK)
        return ct_cli_fail(CMD, "revoke: %s", err.msg);
    ct_store_token row;
    int already = 0;
    int rc = ct_http_token_revoke(st, which, &by, &row, &already, &err);
    ct_store_close(st);
    if (rc == CT_ENOTFOUND)
        return ct_cli_fail(CMD, "revoke: there is no token %s ('cardiotwin token list' shows them)", which);
    if (rc != CT_OK)
        return ct_cli_fail(CMD, "revoke %s: %s", which, err.msg);
    if (!cli->quiet) {
        char when[32];
        ct_cli_format_time(row.revoked_ms, "-", when, sizeof when);
        if (already)
            fprintf(stderr, "cardiotwin %s: token %lld '%s' was already revoked at %s by %s\n", CMD,
                    (long long)row.id, row.name, when, row.revoked_by);
        else
            fprintf(stderr, "cardiotwin %s: revoked token %lld '%s' (role %s): refused from its next request on\n",
                    CMD, (long long)row.id, row.name, row.role);
    }
    return CT_EXIT_OK;
}

int ct_cmd_token(const ct_cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return ct_cli_usage(CMD, "needs a subcommand: create, list or revoke");
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return CT_EXIT_OK;
    }
    if (strcmp(sub, "create") == 0)
        return cmd_create(cli, argc - 1, argv + 1);
    if (strcmp(sub, "list") == 0)
        return cmd_list(cli, argc - 1, argv + 1);
    if (strcmp(sub, "revoke") == 0)
        return cmd_revoke(cli, argc - 1, argv + 1);
    return ct_cli_usage(CMD, "unknown subcommand '%s' (create, list or revoke)", sub);
}
