/* cardiotwin serve: runs the HTTPS server until SIGINT or SIGTERM. The
 * signals are blocked before the server starts, so that every civetweb
 * worker inherits the mask and the main thread alone receives them, in
 * sigwait: no handler, no flag shared between threads, and the stop
 * happens in ordinary code (ct_http_stop joins the workers).
 *
 * stdout gets exactly one line, "cardiotwin: listening on URL", flushed
 * at once, so that scripts can wait for it and read the port; everything
 * else (access log, server messages) goes to stderr. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/http.h"
#include "cardiotwin/store.h"

#define CMD "serve"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin serve [--bind ADDR] [--port N] [--cert PEM --key PEM] [--threads N]\n"
            "                        [--max-body-bytes N] [--policy FILE]\n"
            "                        [--upstream URL [--upstream-ca-file PEM]]\n"
            "                        [--client-ca PEM [--client-cert required|optional]]\n"
            "                        [--web-root DIR | --no-web]\n"
            "                        [--rate-limit N] [--rate-burst N]\n"
            "                        [--demo N [--demo-chunk-ms MS]]\n"
            "\n"
            "Runs the HTTPS server (TLS 1.2 and 1.3 only; there is no plain-HTTP port)\n"
            "until SIGINT or SIGTERM, then stops cleanly and exits 0. Once listening it\n"
            "prints 'cardiotwin: listening on https://ADDR:PORT/' on stdout; the access\n"
            "log and server messages go to stderr (--quiet keeps errors and warnings only).\n"
            "\n"
            "options:\n"
            "  --bind ADDR    IPv4 or IPv6 address to listen on (default %s;\n"
            "                 0.0.0.0 or :: for every interface)\n"
            "  --port N       TCP port, 0..65535 (default %d; 0 lets the system choose,\n"
            "                 and the line on stdout tells which)\n"
            "  --cert PEM     certificate chain, leaf first (needs --key)\n"
            "  --key PEM      its unencrypted private key; must not be readable by others\n"
            "  --threads N    worker threads, 1..%d (default %d): one per open connection\n"
            "  --max-body-bytes N\n"
            "                 largest request body, 1..%lld (default %lld); larger\n"
            "                 ones get 413\n"
            "  --policy FILE  the alert policy (JSON, docs/policy.md); default: the one\n"
            "                 built in. An invalid file is refused at start\n"
            "  --upstream URL a FHIR base (http:// or https://) that every alert report\n"
            "                 is pushed to from a durable outbox, every 5 s\n"
            "  --upstream-ca-file PEM\n"
            "                 trust these CAs for --upstream instead of the system's\n"
            "  --client-ca PEM\n"
            "                 mutual TLS for device gateways: verify client certificates\n"
            "                 against these CA certificates (and no others)\n"
            "  --client-cert required|optional\n"
            "                 with --client-ca: refuse a handshake without a certificate\n"
            "                 (required, the default) or verify one when presented\n"
            "                 (optional). A bearer token is still needed for /fhir\n"
            "  --web-root DIR the dashboard's files, served at / (docs/dashboard.md);\n"
            "                 default: the 'web' directory next to the cardiotwin\n"
            "                 executable, when it exists (the build puts it there)\n"
            "  --no-web       serve no dashboard: / answers 404\n"
            "  --rate-limit N requests a second one token or login session may make,\n"
            "                 1..1000000 (0: the default, %g; -1: no limit); over it: 429\n"
            "                 with Retry-After\n"
            "  --rate-burst N requests it may make at once before that rate applies,\n"
            "                 1..1000000 (0: the default, %g)\n"
            "  --demo N       stream N synthetic patients (demo-1..demo-N), 0..%d, live\n"
            "                 into the twin, one Observation each per chunk, until\n"
            "                 the server stops: PVCs with ventricular runs, paroxysmal AF,\n"
            "                 bradycardia with pauses, normal sinus rhythm, in turn\n"
            "                 (docs/synth.md). Stored as posted Observations would be;\n"
            "                 default 0\n"
            "  --demo-chunk-ms MS  how much ECG each demo Observation carries, as a\n"
            "                 gateway's posting interval: %d..%d ms in steps of 25\n"
            "                 (default %d; shorter: less delay on the dashboard, more\n"
            "                 rows in the database)\n"
            "  --help         print this help and exit\n"
            "\n"
            "Without --cert and --key, a self-signed certificate for localhost, 127.0.0.1\n"
            "and ::1 is generated on first start next to the database (%s and\n"
            "%s, the key with mode 0600) and reused afterwards; give\n"
            "clients that certificate to trust (e.g. curl --cacert).\n"
            "\n"
            "The FHIR R4 API lives under /fhir (docs/api.md) and keeps its resources in\n"
            "the database (--db), which is created and migrated at start. Clients send\n"
            "'Authorization: Bearer TOKEN' with a token made by 'cardiotwin token create'\n"
            "(docs/security.md); the server looks every token up in the database, so a\n"
            "revoked or expired one is refused at its next request. Tokens never appear\n"
            "in the logs: the access log names the token's name.\n"
            "\n"
            "ECG Observations (MDC 131328) posted to the API feed the live twin: the\n"
            "detector runs on each patient's stream and every alert of the policy\n"
            "becomes a DiagnosticReport with a Provenance (docs/twin.md).\n"
            "\n"
            "routes: GET /healthz -> {\"status\":\"ok\",\"version\":\"...\"} (public)\n"
            "        GET /fhir/metadata, GET /.well-known/smart-configuration (public)\n"
            "        /fhir/{Patient,Observation,DiagnosticReport,Device,Provenance}\n"
            "        [/ID[/_history[/N]]], POST /fhir (batch, transaction)\n"
            "        GET /fhir/AuditEvent[/SEQ] (the audit log, auditors)\n",
            CT_HTTP_DEFAULT_BIND, CT_HTTP_DEFAULT_PORT, CT_HTTP_MAX_THREADS,
            CT_HTTP_DEFAULT_THREADS,
            (long long)CT_HTTP_MAX_BODY_BYTES_LIMIT, (long long)CT_HTTP_DEFAULT_MAX_BODY_BYTES,
            CT_HTTP_DEFAULT_RATE_PER_S, CT_HTTP_DEFAULT_RATE_BURST, CT_HTTP_MAX_DEMO_PATIENTS,
            CT_HTTP_MIN_DEMO_CHUNK_MS, CT_HTTP_MAX_DEMO_CHUNK_MS, CT_HTTP_DEFAULT_DEMO_CHUNK_MS,
            CT_HTTP_CERT_FILE, CT_HTTP_KEY_FILE);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* What callbacks print with: the log callbacks run on worker threads and
 * read this only. */
typedef struct serve_log {
    int quiet;
} serve_log;

/* Bytes a client chose (the decoded path) and civetweb's messages may hold
 * control characters; one log line must stay one line. */
static void print_escaped(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
            fprintf(f, "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

static void utc_now(char *buf, size_t cap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

static void on_access(void *user, const ct_http_access *a)
{
    const serve_log *lg = user;
    if (lg->quiet)
        return;
    char when[40];
    utc_now(when, sizeof when);
    /* One fprintf-family sequence under the stream lock, so that lines from
     * concurrent workers do not interleave. */
    flockfile(stderr);
    fprintf(stderr, "%s %s %s \"%s ", when, a->remote_addr, a->subject, a->method);
    print_escaped(stderr, a->path);
    fprintf(stderr, "\" %d %lld %.3fms", a->status, (long long)a->body_bytes, (double)a->duration_us / 1000.0);
    if (a->client_cert_sha256) {
        fprintf(stderr, " cert=\"");
        print_escaped(stderr, a->client_cert_subject ? a->client_cert_subject : "");
        fprintf(stderr, "\" sha256=%s", a->client_cert_sha256);
    }
    fputc('\n', stderr);
    funlockfile(stderr);
}

static void on_log(void *user, ct_http_log_level level, const char *msg)
{
    const serve_log *lg = user;
    if (lg->quiet && level == CT_HTTP_LOG_INFO)
        return;
    static const char *const names[] = {"error", "warning", "info"};
    const char *name = (unsigned)level < 3 ? names[level] : "log";
    char when[40];
    utc_now(when, sizeof when);
    flockfile(stderr);
    fprintf(stderr, "%s cardiotwin %s: %s: ", when, CMD, name);
    print_escaped(stderr, msg);
    fputc('\n', stderr);
    funlockfile(stderr);
}

/* An API nobody can call is worth a warning at start: the operator may
 * have forgotten the tokens. The database is migrated by now. */
static void warn_without_tokens(const char *db_path)
{
    ct_store *st = NULL;
    ct_store_token *toks = NULL;
    size_t n = 0, active = 0;
    ct_error err = {0};
    if (ct_store_open(db_path, &st, &err) != CT_OK || ct_store_token_list(st, &toks, &n, &err) != CT_OK) {
        ct_store_close(st);
        return; /* the server itself will say what is wrong with the database */
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    for (size_t i = 0; i < n; i++)
        active += ct_http_token_state_at(&toks[i], now) == CT_HTTP_TOKEN_ACTIVE;
    free(toks);
    ct_store_close(st);
    if (active == 0) {
        char when[40];
        utc_now(when, sizeof when);
        fprintf(stderr, "%s cardiotwin %s: warning: the database holds no active API token: every request but "
                "/healthz, /fhir/metadata and the SMART configuration answers 401; make one with 'cardiotwin "
                "token create --role ROLE --name NAME'\n", when, CMD);
    }
}

/* The dashboard's files as the build lays them out: "web" next to the
 * executable (build/<type>/web). 0 when that directory exists. */
static int default_web_root(char *buf, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return -1;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return -1;
    *slash = '\0';
    int w = snprintf(buf, cap, "%s/web", exe);
    struct stat sb;
    if (w < 0 || (size_t)w >= cap || stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return -1;
    return 0;
}

/* The generated certificate lives next to the database. */
static int db_dir(const char *db_path, char *buf, size_t cap)
{
    const char *slash = strrchr(db_path, '/');
    int w;
    if (!slash)
        w = snprintf(buf, cap, ".");
    else if (slash == db_path)
        w = snprintf(buf, cap, "/");
    else
        w = snprintf(buf, cap, "%.*s", (int)(slash - db_path), db_path);
    return (w < 0 || (size_t)w >= cap) ? -1 : 0;
}

int ct_cmd_serve(const ct_cli *cli, int argc, char **argv)
{
    enum { OPT_BIND = 1000, OPT_PORT, OPT_CERT, OPT_KEY, OPT_THREADS, OPT_TOKEN_FILE, OPT_MAX_BODY,
           OPT_POLICY, OPT_UPSTREAM, OPT_UPSTREAM_CA, OPT_CLIENT_CA, OPT_CLIENT_CERT };
    enum { OPT_WEB_ROOT = 1100, OPT_NO_WEB };
    enum { OPT_RATE_LIMIT = 1200, OPT_RATE_BURST };
    enum { OPT_DEMO = 1300, OPT_DEMO_CHUNK };
    static const struct option longopts[] = {
        {"bind", required_argument, NULL, OPT_BIND},
        {"port", required_argument, NULL, OPT_PORT},
        {"cert", required_argument, NULL, OPT_CERT},
        {"key", required_argument, NULL, OPT_KEY},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"api-token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY},
        {"policy", required_argument, NULL, OPT_POLICY},
        {"upstream", required_argument, NULL, OPT_UPSTREAM},
        {"upstream-ca-file", required_argument, NULL, OPT_UPSTREAM_CA},
        {"client-ca", required_argument, NULL, OPT_CLIENT_CA},
        {"client-cert", required_argument, NULL, OPT_CLIENT_CERT},
        {"web-root", required_argument, NULL, OPT_WEB_ROOT},
        {"no-web", no_argument, NULL, OPT_NO_WEB},
        {"rate-limit", required_argument, NULL, OPT_RATE_LIMIT},
        {"rate-burst", required_argument, NULL, OPT_RATE_BURST},
        {"demo", required_argument, NULL, OPT_DEMO},
        {"demo-chunk-ms", required_argument, NULL, OPT_DEMO_CHUNK},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };

    ct_http_options opt;
    ct_http_options_init(&opt);
    const char *client_cert_mode = NULL;
    int no_web = 0;
    char web_default[PATH_MAX];
    long v;
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
        case OPT_BIND:
            opt.bind_addr = optarg;
            break;
        case OPT_PORT:
            if (parse_int(optarg, 0, 65535, &v) != 0)
                return ct_cli_usage(CMD, "--port '%s' is not a port number 0..65535", optarg);
            opt.port = (int)v;
            break;
        case OPT_CERT:
            opt.cert_path = optarg;
            break;
        case OPT_KEY:
            opt.key_path = optarg;
            break;
        case OPT_THREADS:
            if (parse_int(optarg, 1, CT_HTTP_MAX_THREADS, &v) != 0)
                return ct_cli_usage(CMD, "--threads '%s' is not a number 1..%d", optarg,
                                    CT_HTTP_MAX_THREADS);
            opt.threads = (int)v;
            break;
        case OPT_TOKEN_FILE:
            /* Gone: say where tokens live now instead of "unknown option". */
            return ct_cli_usage(CMD, "--api-token-file is gone: tokens live in the database; make one with "
                                "'cardiotwin token create --role admin --name NAME' and send it as before");
        case OPT_MAX_BODY: {
            char *end;
            errno = 0;
            long long n = strtoll(optarg, &end, 10);
            if (errno || *end || !*optarg || n < 1 || n > CT_HTTP_MAX_BODY_BYTES_LIMIT)
                return ct_cli_usage(CMD, "--max-body-bytes '%s' is not a number 1..%lld", optarg,
                                    (long long)CT_HTTP_MAX_BODY_BYTES_LIMIT);
            opt.max_body_bytes = n;
            break;
        }
        case OPT_POLICY:
            if (!*optarg)
                return ct_cli_usage(CMD, "--policy needs a file name");
            opt.policy_path = optarg;
            break;
        case OPT_UPSTREAM:
            if (strncmp(optarg, "https://", 8) != 0 && strncmp(optarg, "http://", 7) != 0)
                return ct_cli_usage(CMD, "--upstream '%s' is not an http:// or https:// URL", optarg);
            opt.upstream_url = optarg;
            break;
        case OPT_UPSTREAM_CA:
            if (!*optarg)
                return ct_cli_usage(CMD, "--upstream-ca-file needs a file name");
            opt.upstream_ca_file = optarg;
            break;
        case OPT_CLIENT_CA:
            if (!*optarg)
                return ct_cli_usage(CMD, "--client-ca needs a file name");
            opt.client_ca_file = optarg;
            break;
        case OPT_WEB_ROOT:
            if (!*optarg)
                return ct_cli_usage(CMD, "--web-root needs a directory");
            opt.web_root = optarg;
            break;
        case OPT_NO_WEB:
            no_web = 1;
            break;
        case OPT_CLIENT_CERT:
            if (strcmp(optarg, "required") != 0 && strcmp(optarg, "optional") != 0)
                return ct_cli_usage(CMD, "--client-cert '%s' is neither 'required' nor 'optional'", optarg);
            client_cert_mode = optarg;
            break;
        case OPT_RATE_LIMIT:
            if (parse_int(optarg, -1, 1000000, &v) != 0)
                return ct_cli_usage(CMD, "--rate-limit '%s' is not a number 1..1000000 (0: default, -1: off)",
                                    optarg);
            opt.rate_limit_per_s = v == 0 ? CT_HTTP_DEFAULT_RATE_PER_S : (double)v;
            break;
        case OPT_RATE_BURST:
            if (parse_int(optarg, 0, 1000000, &v) != 0)
                return ct_cli_usage(CMD, "--rate-burst '%s' is not a number 1..1000000 (0: default)", optarg);
            opt.rate_limit_burst = v == 0 ? CT_HTTP_DEFAULT_RATE_BURST : (double)v;
            break;
        case OPT_DEMO:
            if (parse_int(optarg, 0, CT_HTTP_MAX_DEMO_PATIENTS, &v) != 0)
                return ct_cli_usage(CMD, "--demo '%s' is not a number of patients 0..%d", optarg,
                                    CT_HTTP_MAX_DEMO_PATIENTS);
            opt.demo_patients = (int)v;
            break;
        case OPT_DEMO_CHUNK:
            if (parse_int(optarg, CT_HTTP_MIN_DEMO_CHUNK_MS, CT_HTTP_MAX_DEMO_CHUNK_MS, &v) != 0 || v % 25 != 0)
                return ct_cli_usage(CMD, "--demo-chunk-ms '%s' is not %d..%d ms in steps of 25", optarg,
                                    CT_HTTP_MIN_DEMO_CHUNK_MS, CT_HTTP_MAX_DEMO_CHUNK_MS);
            opt.demo_chunk_ms = (int)v;
            break;
        case ':':
            return ct_cli_usage(CMD, "%s needs a value", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < OPT_BIND)
                return ct_cli_usage(CMD, "unknown option '-%c'", optopt);
            return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ct_cli_usage(CMD, "unexpected argument '%s'", argv[optind]);
    if (opt.upstream_ca_file && !opt.upstream_url)
        return ct_cli_usage(CMD, "--upstream-ca-file needs --upstream");
    if (no_web && opt.web_root)
        return ct_cli_usage(CMD, "--web-root and --no-web contradict each other");
    if (no_web)
        opt.web_root = NULL;
    else if (!opt.web_root && default_web_root(web_default, sizeof web_default) == 0)
        opt.web_root = web_default;
    if (client_cert_mode && !opt.client_ca_file)
        return ct_cli_usage(CMD, "--client-cert needs --client-ca (the CAs to verify certificates with)");
    opt.client_cert_required = opt.client_ca_file && (!client_cert_mode || strcmp(client_cert_mode, "required") == 0);
    if (!opt.cert_path != !opt.key_path)
        return ct_cli_usage(CMD, "%s needs %s as well", opt.cert_path ? "--cert" : "--key",
                            opt.cert_path ? "--key" : "--cert");
    if ((opt.cert_path && !*opt.cert_path) || (opt.key_path && !*opt.key_path))
        return ct_cli_usage(CMD, "--cert and --key need file names");

    char state_dir[PATH_MAX];
    if (!opt.cert_path) {
        if (db_dir(cli->db_path, state_dir, sizeof state_dir) != 0)
            return ct_cli_fail(CMD, "database path %s is too long", cli->db_path);
        opt.state_dir = state_dir;
    }
    opt.db_path = cli->db_path;
    serve_log lg = {.quiet = cli->quiet};
    opt.on_access = on_access;
    opt.on_log = on_log;
    opt.log_user = &lg;

    sigset_t stop_signals, old_mask;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask) != 0)
        return ct_cli_fail(CMD, "cannot block SIGINT and SIGTERM");

    ct_http_server *srv = NULL;
    ct_error err = {0};
    int started = ct_http_start(&opt, &srv, &err);
    if (started != 0) {
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
        return ct_cli_fail(CMD, "%s", err.msg);
    }
    if (!cli->quiet)
        warn_without_tokens(cli->db_path);
    char url[96];
    ct_http_url(srv, url, sizeof url);
    printf("cardiotwin: listening on %s\n", url);
    fflush(stdout);

    int sig = SIGTERM;
    if (sigwait(&stop_signals, &sig) != 0)
        sig = SIGTERM; /* only EINVAL, for a set we built ourselves: stop anyway */
    if (!cli->quiet) {
        char when[40];
        utc_now(when, sizeof when);
        fprintf(stderr, "%s cardiotwin %s: info: %s received, stopping\n", when, CMD,
                sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    ct_http_stop(srv);
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    return CT_EXIT_OK;
}
