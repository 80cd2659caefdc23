/* cardiotwin stream: the device simulator. Replays a WFDB record to a FHIR
 * server as ECG Observations, the way a bedside gateway sends them; the
 * work is the client room's ct_client_stream_record (include/cardiotwin/
 * client.h, docs/stream.md). This file parses the options, reads the token,
 * draws the progress bar, notes retries and prints the summary.
 *
 * Ctrl-C (SIGINT) and SIGTERM stop the stream after the request in flight.
 * They are blocked for the length of the run and taken synchronously with
 * sigtimedwait() when the client room polls should_stop, so no signal
 * handler and no global flag are needed, and libcurl is never interrupted
 * half-way through a request. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/client.h"
#include "cardiotwin/fhir.h"

#define CMD "stream"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin stream RECORD --to URL [options]\n"
            "\n"
            "Replays the WFDB record RECORD (a path without extension, e.g.\n"
            "../shared/data/mitdb/100) to the FHIR server at URL as a bedside gateway\n"
            "would: ECG Observations of N seconds of every lead, each POSTed to\n"
            "URL/Observation once its last sample has been \"acquired\": in real time\n"
            "by default, faster with --speed. The Patient is created first unless it\n"
            "exists. Server errors (5xx) and lost connections are retried with growing\n"
            "pauses; a refusal (4xx) stops the stream with the server's diagnostics.\n"
            "Ctrl-C stops it after the request in flight.\n"
            "\n"
            "options:\n"
            "  --to URL            the FHIR base, e.g. https://127.0.0.1:8443/fhir (required)\n"
            "  --token-file FILE   bearer token for the server, one line in FILE, which\n"
            "                      group and others may not read (chmod 600); never printed\n"
            "  --token TOKEN       the same on the command line (visible to other users of\n"
            "                      this machine in the process list until the command\n"
            "                      blanks it: prefer --token-file)\n"
            "  --speed X|max       1 real time (default), 10 ten times faster, 0.5 half\n"
            "                      speed, max as fast as the server answers\n"
            "  --seconds-per-observation N\n"
            "                      seconds of ECG in each Observation (default 10; may be\n"
            "                      a decimal, at most 3600)\n"
            "  --patient ID        the Patient's FHIR id (default: FOLDER-RECORD, as\n"
            "                      'cardiotwin import' names it, e.g. mitdb-100)\n"
            "  --no-patient        leave the Patient alone: it exists, or the token may not\n"
            "                      read or write Patients (a device token)\n"
            "  --start INSTANT     effective time of the first sample, e.g.\n"
            "                      2026-11-22T10:00:00Z (default: when the stream begins)\n"
            "  --limit-seconds S   send only the first S seconds of the record\n"
            "  --ca-file FILE      trust the CA certificates in FILE (PEM) instead of the\n"
            "                      system's, e.g. the server's self-signed certificate;\n"
            "                      certificates are always verified\n"
            "  --retries N         retries per request after the first attempt (default 4,\n"
            "                      at most 20)\n"
            "  --backoff-ms MS     pause before the first retry, doubled for each next one\n"
            "                      up to 30 s (default 1000)\n"
            "  -h, --help          print this help\n"
            "\n"
            "output: a progress bar on stderr when it is a terminal, retries noted on\n"
            "stderr, and one summary line on stdout, e.g.\n"
            "  100: 181 Observations sent to Patient/mitdb-100: 650000 samples per lead,\n"
            "  2 leads, 1805.556 s of ECG in 1805.6 s (1.00x, 0.10 Observations/s), 0 retries\n"
            "exit codes: 0 the record was sent, 1 a request failed or the stream was\n"
            "stopped, 2 usage.\n");
}

/* ---- what a person sees ------------------------------------------------------------ */

typedef struct view {
    const ct_cli *cli;
    const char *record;
    ct_progress progress;
    sigset_t stop_set;
    int stop_signal;       /* the signal that asked to stop, 0 if none */
} view;

static void on_begin(void *ctx, const ct_client_stream_info *info)
{
    view *v = ctx;
    if (!v->cli->quiet) {
        char leads[256] = "";
        size_t used = 0;
        for (int l = 0; l < info->n_leads && used < sizeof leads; l++) {
            const ct_fhir_lead_info *li = ct_fhir_lead_by_code(info->mdc_codes[l]);
            const char *lead = li ? li->name : "?";
            int n = strcmp(info->lead_names[l], lead) == 0
                        ? snprintf(leads + used, sizeof leads - used, "%s%s", l ? ", " : "", lead)
                        : snprintf(leads + used, sizeof leads - used, "%s%s as lead %s", l ? ", " : "",
                                   info->lead_names[l], lead);
            if (n < 0)
                break;
            used += (size_t)n;
        }
        fprintf(stderr, "cardiotwin " CMD ": record %s: %d lead%s (%s), %" PRId64 " Observation%s of %" PRId64
                        " samples at %g Hz\n",
                info->record, info->n_leads, info->n_leads == 1 ? "" : "s", leads, info->plan.n_obs,
                info->plan.n_obs == 1 ? "" : "s", info->plan.samples_per_obs, info->plan.fs_hz);
    }
    ct_progress_start(&v->progress, v->cli, info->record, info->plan.n_obs);
}

static void on_patient(void *ctx, const char *patient_id, int created)
{
    view *v = ctx;
    if (!v->cli->quiet)
        fprintf(stderr, "cardiotwin " CMD ": Patient/%s %s\n", patient_id,
                created ? "created" : "already on the server");
}

static void on_sent(void *ctx, int64_t k, int64_t n_obs, const char *location)
{
    view *v = ctx;
    ct_progress_update(&v->progress, k + 1);
}

static void on_retry(void *ctx, int64_t k, int attempt, long wait_ms, const char *reason)
{
    view *v = ctx;
    ct_progress_finish(&v->progress);
    if (v->cli->quiet)
        return;
    if (k < 0)
        fprintf(stderr, "cardiotwin " CMD ": Patient: %s; attempt %d in %ld ms\n", reason, attempt, wait_ms);
    else
        fprintf(stderr, "cardiotwin " CMD ": Observation %" PRId64 ": %s; attempt %d in %ld ms\n", k + 1,
                reason, attempt, wait_ms);
}

/* Takes a pending SIGINT or SIGTERM, if any, without waiting. */
static int should_stop(void *ctx)
{
    view *v = ctx;
    if (v->stop_signal)
        return 1;
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(&v->stop_set, NULL, &zero);
    if (sig > 0)
        v->stop_signal = sig;
    return v->stop_signal != 0;
}

static void print_summary(const char *record, const char *patient, const ct_client_stream_result *r,
                          int failed, int stop_signal)
{
    if (stop_signal)
        printf("%s: stopped by %s after %" PRId64 " of %" PRId64 " Observations", record,
               stop_signal == SIGINT ? "SIGINT" : "SIGTERM", r->n_obs_sent, r->n_obs_planned);
    else if (failed)
        printf("%s: %" PRId64 " of %" PRId64 " Observations sent before the failure", record, r->n_obs_sent,
               r->n_obs_planned);
    else
        printf("%s: %" PRId64 " Observation%s sent", record, r->n_obs_sent, r->n_obs_sent == 1 ? "" : "s");
    double rate = r->wall_seconds > 0 ? (double)r->n_obs_sent / r->wall_seconds : 0.0;
    double factor = r->wall_seconds > 0 ? r->ecg_seconds / r->wall_seconds : 0.0;
    printf(" to Patient/%s: %" PRId64 " samples per lead, %d lead%s, %.3f s of ECG in %.1f s (%.2fx, %.2f "
           "Observations/s), %d retr%s\n",
           patient, r->n_samples_sent, r->n_leads, r->n_leads == 1 ? "" : "s", r->ecg_seconds,
           r->wall_seconds, factor, rate, r->retries, r->retries == 1 ? "y" : "ies");
    fflush(stdout);
}

/* ---- the command ------------------------------------------------------------------- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double lo, double hi, double *out)
{
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

enum {
    OPT_TO = 1000,
    OPT_TOKEN,
    OPT_TOKEN_FILE,
    OPT_SPEED,
    OPT_SPO,
    OPT_PATIENT,
    OPT_NO_PATIENT,
    OPT_START,
    OPT_LIMIT,
    OPT_CA,
    OPT_RETRIES,
    OPT_BACKOFF,
};

int ct_cmd_stream(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"to", required_argument, NULL, OPT_TO},
        {"token", required_argument, NULL, OPT_TOKEN},
        {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
        {"speed", required_argument, NULL, OPT_SPEED},
        {"seconds-per-observation", required_argument, NULL, OPT_SPO},
        {"patient", required_argument, NULL, OPT_PATIENT},
        {"no-patient", no_argument, NULL, OPT_NO_PATIENT},
        {"start", required_argument, NULL, OPT_START},
        {"limit-seconds", required_argument, NULL, OPT_LIMIT},
        {"ca-file", required_argument, NULL, OPT_CA},
        {"retries", required_argument, NULL, OPT_RETRIES},
        {"backoff-ms", required_argument, NULL, OPT_BACKOFF},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ct_client_options copt;
    ct_client_options_default(&copt);
    /* One request may not hang the stream: a stalled answer is cut and retried. */
    copt.attempt_timeout_ms = 60000;
    ct_client_stream_options sopt = {.seconds_per_obs = 10.0, .speed = 1.0, .ensure_patient = 1,
                                     .start_ms = CT_CLIENT_STREAM_NOW};
    char *token_arg = NULL;
    const char *token_file = NULL, *patient = NULL;
    long lv;
    double dv;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_TO: sopt.base_url = optarg; break;
        case OPT_TOKEN:
            /* Checked without ever echoing it. */
            if (!ct_client_token_ok(optarg))
                return ct_cli_usage(CMD, "--token must be 1..%d characters of A-Z a-z 0-9 - . _ ~ + / "
                                         "followed by optional '='", CT_CLIENT_MAX_TOKEN);
            token_arg = optarg;
            break;
        case OPT_TOKEN_FILE:
            if (!*optarg)
                return ct_cli_usage(CMD, "--token-file needs a file");
            token_file = optarg;
            break;
        case OPT_SPEED:
            if (strcmp(optarg, "max") == 0)
                sopt.speed = 0.0;
            else if (parse_double(optarg, CT_CLIENT_STREAM_MIN_SPEED, CT_CLIENT_STREAM_MAX_SPEED, &dv) == 0)
                sopt.speed = dv;
            else
                return ct_cli_usage(CMD, "--speed: '%s' is not 'max' or a number from %g to %g", optarg,
                                    CT_CLIENT_STREAM_MIN_SPEED, CT_CLIENT_STREAM_MAX_SPEED);
            break;
        case OPT_SPO:
            if (parse_double(optarg, 0.0, CT_CLIENT_STREAM_MAX_SECONDS_PER_OBS, &dv) != 0 || dv <= 0.0)
                return ct_cli_usage(CMD, "--seconds-per-observation: '%s' is not a number of seconds above 0 "
                                         "and at most %g", optarg, CT_CLIENT_STREAM_MAX_SECONDS_PER_OBS);
            sopt.seconds_per_obs = dv;
            break;
        case OPT_PATIENT:
            if (!ct_fhir_id_valid(optarg, strlen(optarg)))
                return ct_cli_usage(CMD, "--patient: '%s' is not a FHIR id (letters, digits, '-' and '.', "
                                         "at most 64)", optarg);
            patient = optarg;
            break;
        case OPT_NO_PATIENT: sopt.ensure_patient = 0; break;
        case OPT_START: {
            ct_fhir_datetime dt;
            if (ct_fhir_datetime_parse(optarg, strlen(optarg), CT_FHIR_DT_INSTANT, "--start", &dt, NULL) != 0)
                return ct_cli_usage(CMD, "--start: '%s' is not an instant with seconds and a zone, e.g. "
                                         "2026-11-22T10:00:00Z", optarg);
            sopt.start_ms = dt.start_ms;
            break;
        }
        case OPT_LIMIT:
            if (parse_double(optarg, 0.0, 1e9, &dv) != 0 || dv <= 0.0)
                return ct_cli_usage(CMD, "--limit-seconds: '%s' is not a number of seconds above 0", optarg);
            sopt.limit_seconds = dv;
            break;
        case OPT_CA:
            if (!*optarg)
                return ct_cli_usage(CMD, "--ca-file needs a file");
            copt.ca_file = optarg;
            break;
        case OPT_RETRIES:
            if (parse_long(optarg, 0, CT_CLIENT_MAX_RETRIES, &lv) != 0)
                return ct_cli_usage(CMD, "--retries: '%s' is not a number from 0 to %d", optarg,
                                    CT_CLIENT_MAX_RETRIES);
            copt.max_retries = (int)lv;
            break;
        case OPT_BACKOFF:
            if (parse_long(optarg, 1, 30000, &lv) != 0)
                return ct_cli_usage(CMD, "--backoff-ms: '%s' is not a number from 1 to 30000", optarg);
            copt.backoff_base_ms = lv;
            break;
        case 'h': usage(stdout); return CT_EXIT_OK;
        case ':': return ct_cli_usage(CMD, "%s needs a value", argv[optind - 1]);
        default: return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ct_cli_usage(CMD, "name a RECORD (a path without extension, e.g. mitdb/100)");
    if (optind + 1 < argc)
        return ct_cli_usage(CMD, "name one RECORD only ('%s' is one too many)", argv[optind + 1]);
    const char *record_path = argv[optind];
    if (!sopt.base_url)
        return ct_cli_usage(CMD, "--to URL is required (the FHIR base, e.g. https://127.0.0.1:8443/fhir)");
    if (token_arg && token_file)
        return ct_cli_usage(CMD, "give --token-file or --token, not both");
    ct_error err = {0};
    char probe[CT_CLIENT_MAX_URL];
    if (ct_client_url_join(sopt.base_url, "Observation", probe, sizeof probe, &err) != 0)
        return ct_cli_usage(CMD, "--to: %s", err.msg);
    char derived[CT_FHIR_ID_MAX + 1];
    if (!patient) {
        if (ct_client_stream_patient_id(record_path, derived, sizeof derived, &err) != 0)
            return ct_cli_usage(CMD, "%s", err.msg);
        patient = derived;
    }
    sopt.patient_id = patient;

    char token[CT_CLIENT_MAX_TOKEN + 1] = "";
    if (token_file) {
        if (ct_client_token_read_file(token_file, token, sizeof token, &err) != 0)
            return ct_cli_fail(CMD, "%s", err.msg);
        sopt.bearer_token = token;
    } else if (token_arg) {
        /* Copied, then blanked in argv: the process list shows "xxx" from
         * here on (it showed the token until now: prefer --token-file). */
        size_t n = strlen(token_arg);
        memcpy(token, token_arg, n + 1);
        memset(token_arg, 'x', n);
        sopt.bearer_token = token;
    }

    ct_client *client;
    if (ct_client_new(&copt, &client, &err) != 0) {
        explicit_bzero(token, sizeof token);
        return ct_cli_fail(CMD, "%s", err.msg);
    }
    view shown = {.cli = cli};
    sigemptyset(&shown.stop_set);
    sigaddset(&shown.stop_set, SIGINT);
    sigaddset(&shown.stop_set, SIGTERM);
    sigset_t old_mask;
    sigprocmask(SIG_BLOCK, &shown.stop_set, &old_mask);
    const ct_client_stream_callbacks cb = {
        .begin = on_begin,
        .patient = on_patient,
        .sent = on_sent,
        .retry = on_retry,
        .should_stop = should_stop,
        .ctx = &shown,
    };
    ct_client_stream_result res;
    int rc = ct_client_stream_record(client, record_path, &sopt, &cb, &res, &err);
    ct_progress_finish(&shown.progress);
    explicit_bzero(token, sizeof token);
    ct_client_free(client);

    const char *slash = strrchr(record_path, '/');
    const char *record = slash ? slash + 1 : record_path;
    int status = CT_EXIT_OK;
    if (rc != CT_OK) {
        ct_cli_fail(CMD, "%s", err.msg);
        status = CT_EXIT_FAIL;
    }
    /* Nothing was sent when the record itself could not be read. */
    if (!cli->quiet && (res.n_obs_planned > 0 || shown.stop_signal))
        print_summary(record, patient, &res, rc != CT_OK, shown.stop_signal);
    if (shown.stop_signal)
        status = CT_EXIT_FAIL;

    /* A second Ctrl-C may be pending: take it before the old mask returns,
     * or it would end the process on the way out. */
    struct timespec zero = {0, 0};
    while (sigtimedwait(&shown.stop_set, NULL, &zero) > 0) {
    }
    sigprocmask(SIG_SETMASK, &old_mask, NULL);
    return status;
}
