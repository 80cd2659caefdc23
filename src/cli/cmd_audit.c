/* cardiotwin audit: sign, verify and export the tamper-evident audit log.
 * The work is the audit room's; this file parses options, finds the key
 * files next to the database unless told otherwise, and says what the
 * verification found in one line (or, on failure, names the first bad
 * entry and exits 1). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/cli.h"
#include "cardiotwin/store.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin audit checkpoint [--key-dir DIR]\n"
            "       cardiotwin audit verify [--from N] [--file EXPORT] [--pubkey PEM]\n"
            "       cardiotwin audit export [--format ndjson|fhir] [--since T] [--patient ID] [--out FILE]\n"
            "\n"
            "The audit log records every import and every access to patient data. Each\n"
            "entry is hash-chained to the one before it, and checkpoints sign the log's\n"
            "head (size, chain hash, RFC 6962 Merkle root) with an Ed25519 key kept\n"
            "outside the database. docs/audit.md describes the formats and how to\n"
            "verify an export without cardiotwin.\n"
            "\n"
            "  checkpoint   sign the log's current head\n"
            "  verify       recompute the chain and check every checkpoint\n"
            "  export       write the log as NDJSON or as a FHIR Bundle of AuditEvent\n"
            "\n"
            "'cardiotwin audit COMMAND --help' describes each. The database is --db\n"
            "(default: $CARDIOTWIN_DB, else ./cardiotwin.db).\n"
            "exit codes: 0 ok, 1 failure (verify: the log or export does not verify), 2 usage.\n");
}

static void usage_checkpoint(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin audit checkpoint [--key-dir DIR]\n"
            "\n"
            "Signs the audit log's current head: its size, the hash of its last entry\n"
            "and the Merkle root of all entries. The entries added since the previous\n"
            "checkpoint are re-hashed first; a broken chain is refused, not signed.\n"
            "Does nothing when no entry was added since the last checkpoint. Run it\n"
            "periodically (the server does) and before handing an export to an auditor.\n"
            "\n"
            "options:\n"
            "  --key-dir DIR   folder of the signing key (default: the database's folder).\n"
            "                  DIR/" CT_AUDIT_KEY_FILE " (mode 0600) is created on first use,\n"
            "                  with its public half DIR/" CT_AUDIT_PUB_FILE " for auditors.\n"
            "  -h, --help      print this help\n"
            "\n"
            "output: checkpoint 3: 50 entries, root 9f8e7d6c5b4a3921..., key 5f3c2a1b0e9d8c7b...\n"
            "exit codes: 0 signed or nothing to sign, 1 failure, 2 usage.\n");
}

static void usage_verify(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin audit verify [--from N] [--file EXPORT] [--pubkey PEM]\n"
            "\n"
            "Recomputes the hash chain and the Merkle tree of the audit log and checks\n"
            "every checkpoint: its signature, and that its head and root are those of\n"
            "the log at its size. Reports OK with the counts, or the first bad entry\n"
            "and what is wrong, e.g.\n"
            "  entry 57: hash mismatch: the entry is not what was hashed (a field was changed)\n"
            "  entry 58 missing (the chain jumps from entry 57 to 59)\n"
            "  the log ends at entry 41 but checkpoint 3 signed 50 entries (entries 42..50 were removed)\n"
            "An entry whose time goes back more than 1 s is a warning, not a failure.\n"
            "\n"
            "options:\n"
            "  --from N        start at the newest checkpoint below entry N (its\n"
            "                  signature checked) instead of entry 1: faster on a long log\n"
            "  --file EXPORT   verify an export (NDJSON or FHIR, from 'audit export')\n"
            "                  instead of the database; needs no database\n"
            "  --pubkey PEM    public key to check signatures with (default: the\n"
            "                  database's folder/" CT_AUDIT_PUB_FILE "; with --file there\n"
            "                  is no default). Auditors should use their own copy.\n"
            "  -h, --help      print this help\n"
            "\n"
            "exit codes: 0 verified, 1 does not verify (or cannot be read), 2 usage.\n");
}

static void usage_export(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin audit export [--format ndjson|fhir] [--since T] [--patient ID] [--out FILE]\n"
            "\n"
            "Writes the audit log with its hashes and checkpoints, so that it can be\n"
            "verified offline ('cardiotwin audit verify --file', or the procedure in\n"
            "docs/audit.md). ndjson: one JSON object per line. fhir: a FHIR R4 Bundle\n"
            "of AuditEvent resources (IHE BALP). With a filter, each run of left-out\n"
            "entries is replaced by Merkle subtree hashes: the entries present are\n"
            "proven to be those of the signed log, but nothing proves that the filter\n"
            "let every matching entry through. The export itself is recorded in the log.\n"
            "\n"
            "options:\n"
            "  --format F      ndjson (default) or fhir\n"
            "  --since T       only entries at or after T: 2024-05-01, 2024-05-01T12:00Z,\n"
            "                  2024-05-01T12:00:00.000+02:00, or ms since 1970\n"
            "  --patient ID    only entries about patient ID (e.g. mitdb-100)\n"
            "  --out FILE      write FILE (mode 0600, replaced whole at the end)\n"
            "                  instead of standard output\n"
            "  -h, --help      print this help\n"
            "\n"
            "exit codes: 0 exported, 1 failure, 2 usage.\n");
}

/* The folder of the database file: where the key files live by default. */
static void db_folder(const char *db, char *out, size_t cap)
{
    const char *slash = strrchr(db, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == db)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - db), db);
}

/* ct_store_open would create a missing file: audit commands never do. */
static int open_existing(const ct_cli *cli, ct_store **st, ct_error *err)
{
    struct stat sb;
    if (stat(cli->db_path, &sb) != 0)
        return ct_error_set(err, CT_ENOTFOUND, "%s: %s (give --db)", cli->db_path, strerror(errno));
    return ct_store_open(cli->db_path, st, err);
}

static void short_hex(const unsigned char *h, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        out[2 * i] = hex[h[i] >> 4];
        out[2 * i + 1] = hex[h[i] & 15];
    }
    out[16] = '\0';
}

static int cmd_checkpoint(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"key-dir", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_dir = NULL;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'k': key_dir = optarg; break;
        case 'h': usage_checkpoint(stdout); return CT_EXIT_OK;
        default: return ct_cli_usage("audit checkpoint", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ct_cli_usage("audit checkpoint", "unexpected argument '%s'", argv[optind]);
    char dir[PATH_MAX];
    if (key_dir)
        snprintf(dir, sizeof dir, "%s", key_dir);
    else
        db_folder(cli->db_path, dir, sizeof dir);

    ct_error err;
    ct_error_clear(&err);
    ct_store *st = NULL;
    ct_audit_key *key = NULL;
    int created_key = 0, created = 0;
    if (open_existing(cli, &st, &err) != CT_OK)
        return ct_cli_fail("audit checkpoint", "%s", err.msg);
    if (ct_audit_key_open_dir(dir, 1, &key, &created_key, &err) != CT_OK) {
        ct_store_close(st);
        return ct_cli_fail("audit checkpoint", "%s", err.msg);
    }
    if (created_key && !cli->quiet)
        printf("created the signing key %s/%s; give %s/%s to your auditors\n", dir, CT_AUDIT_KEY_FILE, dir,
               CT_AUDIT_PUB_FILE);
    ct_audit_checkpoint_info *cp = malloc(sizeof *cp);
    int rc = cp ? ct_audit_checkpoint(st, key, cp, &created, &err) : ct_error_set(&err, CT_ENOMEM, "out of memory");
    ct_audit_key_free(key);
    ct_store_close(st);
    if (rc != CT_OK) {
        free(cp);
        return ct_cli_fail("audit checkpoint", "%s", err.msg);
    }
    if (!cli->quiet) {
        char root[17], kid[17];
        short_hex(cp->merkle_root, root);
        snprintf(kid, sizeof kid, "%.16s", cp->key_id);
        if (cp->id == 0)
            printf("the audit log is empty; nothing to sign\n");
        else if (!created)
            printf("checkpoint %lld already signs all %lld entries; nothing to do\n", (long long)cp->id,
                   (long long)cp->size);
        else
            printf("checkpoint %lld: %lld entries, root %s..., key %s...\n", (long long)cp->id, (long long)cp->size,
                   root, kid);
    }
    free(cp);
    return CT_EXIT_OK;
}

static void print_warnings(const ct_audit_report *rep)
{
    if (rep->time_warnings == 0)
        return;
    fprintf(stderr, "cardiotwin audit: warning: entry %lld is %lld.%03lld s earlier than an entry before it "
            "(the clock stepped back?)", (long long)rep->first_time_warning_seq,
            (long long)(rep->first_time_warning_back_ms / 1000), (long long)(rep->first_time_warning_back_ms % 1000));
    if (rep->time_warnings > 1)
        fprintf(stderr, "; %lld entries in all", (long long)rep->time_warnings);
    fputc('\n', stderr);
}

static void print_signed(const ct_audit_report *rep, int64_t entries_total)
{
    if (rep->checkpoints == 0) {
        printf("; no checkpoint signs it yet (run 'cardiotwin audit checkpoint')");
        return;
    }
    printf("; %lld checkpoint%s verified with key %.16s..., the newest signs entries 1..%lld", (long long)rep->checkpoints,
           rep->checkpoints == 1 ? "" : "s", rep->key_id, (long long)rep->signed_size);
    if (entries_total == rep->signed_size + 1)
        printf("; entry %lld is chained but not yet signed", (long long)entries_total);
    else if (entries_total > rep->signed_size)
        printf("; entries %lld..%lld are chained but not yet signed", (long long)(rep->signed_size + 1),
               (long long)entries_total);
}

static int cmd_verify(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"from", required_argument, NULL, 'f'},
        {"file", required_argument, NULL, 'F'},
        {"pubkey", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *pubkey = NULL;
    long long from = 0;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': {
            char *end = NULL;
            errno = 0;
            from = strtoll(optarg, &end, 10);
            if (errno || !end || *end || from < 1)
                return ct_cli_usage("audit verify", "--from: '%s' is not an entry number (1, 2, 3 ...)", optarg);
            break;
        }
        case 'F': file = optarg; break;
        case 'p': pubkey = optarg; break;
        case 'h': usage_verify(stdout); return CT_EXIT_OK;
        default: return ct_cli_usage("audit verify", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ct_cli_usage("audit verify", "unexpected argument '%s'", argv[optind]);
    if (file && from)
        return ct_cli_usage("audit verify", "--from applies to the database, not to --file");

    ct_error err;
    ct_error_clear(&err);
    ct_audit_key *key = NULL;
    char default_pub[PATH_MAX + 64];
    if (!pubkey && !file) {
        char dir[PATH_MAX];
        db_folder(cli->db_path, dir, sizeof dir);
        snprintf(default_pub, sizeof default_pub, "%s/%s", dir, CT_AUDIT_PUB_FILE);
        if (access(default_pub, F_OK) == 0)
            pubkey = default_pub;
    }
    if (pubkey && ct_audit_key_load(pubkey, &key, &err) != CT_OK)
        return ct_cli_fail("audit verify", "%s", err.msg);

    ct_audit_report *rep = calloc(1, sizeof *rep);
    if (!rep) {
        ct_audit_key_free(key);
        return ct_cli_fail("audit verify", "out of memory");
    }
    int rc;
    if (file) {
        rc = ct_audit_verify_file(file, key, rep, &err);
    } else {
        ct_store *st = NULL;
        rc = open_existing(cli, &st, &err);
        if (rc == CT_OK)
            rc = ct_audit_verify(st, from, key, rep, &err);
        ct_store_close(st);
    }
    ct_audit_key_free(key);
    if (rc != CT_OK) {
        free(rep);
        return ct_cli_fail("audit verify", "%s", err.msg);
    }
    print_warnings(rep);
    if (!cli->quiet) {
        if (file) {
            printf("export OK: %s: ", file);
            if (rep->filtered)
                printf("%lld entr%s of a log of %lld (filter: %s; %lld subtree hash%s stand%s for the others)",
                       (long long)rep->entries_checked, rep->entries_checked == 1 ? "y" : "ies",
                       (long long)rep->log_size, rep->filter, (long long)rep->nodes, rep->nodes == 1 ? "" : "es",
                       rep->nodes == 1 ? "s" : "");
            else
                printf("%lld entries, hash chain intact", (long long)rep->log_size);
        } else if (rep->log_size == 0) {
            printf("audit log OK: empty");
        } else {
            printf("audit log OK: %lld entries, hash chain intact", (long long)rep->log_size);
            if (rep->started_at_checkpoint)
                printf(" (entries %lld..%lld re-hashed, from checkpoint %lld)", (long long)rep->first_checked,
                       (long long)rep->log_size, (long long)rep->started_at_checkpoint);
        }
        if (rep->log_size > 0)
            print_signed(rep, rep->log_size);
        printf("\n");
    }
    free(rep);
    return CT_EXIT_OK;
}

static int cmd_export(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"since", required_argument, NULL, 's'},
        {"patient", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ct_audit_export_options opt;
    memset(&opt, 0, sizeof opt);
    const char *out_path = NULL, *since = NULL;
    ct_error err;
    ct_error_clear(&err);
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "ndjson") == 0)
                opt.format = CT_AUDIT_FORMAT_NDJSON;
            else if (strcmp(optarg, "fhir") == 0)
                opt.format = CT_AUDIT_FORMAT_FHIR;
            else
                return ct_cli_usage("audit export", "--format: '%s' is neither ndjson nor fhir", optarg);
            break;
        case 's':
            if (ct_audit_parse_time(optarg, &opt.since_ms, &err) != CT_OK)
                return ct_cli_usage("audit export", "--since: %s", err.msg);
            opt.has_since = 1;
            since = optarg;
            break;
        case 'p':
            if (!*optarg || strlen(optarg) > CT_AUDIT_PATIENT_MAX)
                return ct_cli_usage("audit export", "--patient: '%s' is not a patient identifier", optarg);
            opt.patient = optarg;
            break;
        case 'o': out_path = optarg; break;
        case 'h': usage_export(stdout); return CT_EXIT_OK;
        default: return ct_cli_usage("audit export", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ct_cli_usage("audit export", "unexpected argument '%s'", argv[optind]);

    ct_store *st = NULL;
    if (open_existing(cli, &st, &err) != CT_OK)
        return ct_cli_fail("audit export", "%s", err.msg);

    /* To a temporary file beside FILE, renamed at the end: a failed export
     * never leaves a half file under the name an auditor expects. */
    FILE *out = stdout;
    char tmp[PATH_MAX + 16] = "";
    if (out_path) {
        snprintf(tmp, sizeof tmp, "%s.XXXXXX", out_path);
        int fd = mkstemp(tmp);
        if (fd < 0 || fchmod(fd, 0600) != 0 || !(out = fdopen(fd, "w"))) {
            int e = errno;
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            ct_store_close(st);
            return ct_cli_fail("audit export", "%s: cannot create: %s", out_path, strerror(e));
        }
    }
    ct_audit_export_result res;
    int rc = ct_audit_export(st, &opt, out, &res, &err);
    if (out_path) {
        if (rc == CT_OK && (fflush(out) != 0 || fsync(fileno(out)) != 0))
            rc = ct_error_set(&err, CT_EIO, "%s: %s", out_path, strerror(errno));
        if (fclose(out) != 0 && rc == CT_OK)
            rc = ct_error_set(&err, CT_EIO, "%s: %s", out_path, strerror(errno));
        if (rc == CT_OK && rename(tmp, out_path) != 0)
            rc = ct_error_set(&err, CT_EIO, "%s: %s", out_path, strerror(errno));
        if (rc != CT_OK)
            unlink(tmp);
    }
    if (rc == CT_OK) {
        /* The export is an access to the log like any other. */
        char user[CT_AUDIT_ACTOR_MAX + 1];
        ct_audit_detail *d = malloc(sizeof *d);
        ct_audit_entry e;
        memset(&e, 0, sizeof e);
        ct_audit_actor_local(&e.actor, user, sizeof user);
        e.action = "export";
        e.resource_type = "AuditEvent";
        e.patient = opt.patient;
        e.outcome = CT_AUDIT_OUTCOME_SUCCESS;
        if (d) {
            ct_audit_detail_init(d);
            ct_audit_detail_str(d, "format", opt.format == CT_AUDIT_FORMAT_FHIR ? "fhir" : "ndjson");
            if (since)
                ct_audit_detail_int(d, "since_ms", opt.since_ms);
            ct_audit_detail_int(d, "log_size", res.log_size);
            ct_audit_detail_int(d, "entries", res.entries);
            if (out_path)
                ct_audit_detail_str(d, "file", out_path);
            e.detail = ct_audit_detail_json(d);
        }
        rc = ct_audit_append(st, &e, NULL, &err);
        free(d);
        if (rc != CT_OK)
            ct_error_prefix(&err, "exported, but recording the export failed");
    }
    ct_store_close(st);
    if (rc != CT_OK)
        return ct_cli_fail("audit export", "%s", err.msg);
    if (out_path && !cli->quiet)
        printf("exported %lld of %lld entries to %s (%lld checkpoint%s, %lld subtree hash%s)\n", (long long)res.entries,
               (long long)res.log_size, out_path, (long long)res.checkpoints, res.checkpoints == 1 ? "" : "s",
               (long long)res.nodes, res.nodes == 1 ? "" : "es");
    return CT_EXIT_OK;
}

int ct_cmd_audit(const ct_cli *cli, int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CT_EXIT_USAGE;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return CT_EXIT_OK;
    }
    /* The subcommand sees itself as argv[0]. */
    if (strcmp(sub, "checkpoint") == 0)
        return cmd_checkpoint(cli, argc - 1, argv + 1);
    if (strcmp(sub, "verify") == 0)
        return cmd_verify(cli, argc - 1, argv + 1);
    if (strcmp(sub, "export") == 0)
        return cmd_export(cli, argc - 1, argv + 1);
    return ct_cli_usage("audit", "unknown subcommand '%s' (checkpoint, verify or export)", sub);
}
