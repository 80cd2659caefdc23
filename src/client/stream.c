/* client: the device simulator. A WFDB record is replayed to a FHIR server
 * as a bedside gateway sends ECG: Observations of N seconds of all leads,
 * POSTed one after the other as they "fill up". The one idea: everything is
 * computed from the sample index, never accumulated. Observation k holds
 * samples [k*S, min((k+1)*S, n)) with S = round(N * fs); its effective start
 * is start_ms + round(first * 1000 / fs) and it is due (last sample / fs) /
 * speed after the stream began, on the monotonic clock. A late answer
 * therefore never shifts the schedule: the next Observations leave at once
 * until the clock is met again, and k+1 always starts where k ends.
 *
 * The record is read and checked whole before the first request, so that a
 * record we cannot send fails without leaving half a patient on the server.
 * Requests go through ct_client_send (request.c): 5xx and connection
 * failures are retried with the client's backoff, a 4xx stops the stream
 * with the server's diagnostics. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cardiotwin/fhir.h"
#include "client_internal.h"

/* ---- the cutting and the schedule (pure) ----------------------------------------- */

int ct_client_stream_plan_make(int64_t record_samples, double fs_hz, double seconds_per_obs,
                               double limit_seconds, ct_client_stream_plan *out, ct_error *err)
{
    memset(out, 0, sizeof *out);
    if (!(fs_hz >= 1.0 && fs_hz <= 100000.0))
        return ct_error_set(err, CT_EINVAL, "sampling frequency %g Hz is outside 1..100000", fs_hz);
    if (record_samples < 1)
        return ct_error_set(err, CT_EINVAL, "the record holds no samples");
    if (!(seconds_per_obs > 0.0 && seconds_per_obs <= CT_CLIENT_STREAM_MAX_SECONDS_PER_OBS))
        return ct_error_set(err, CT_EINVAL, "seconds per observation %g is outside (0, %g]",
                            seconds_per_obs, CT_CLIENT_STREAM_MAX_SECONDS_PER_OBS);
    double spo = floor(seconds_per_obs * fs_hz + 0.5);
    if (spo < 1.0)
        return ct_error_set(err, CT_EINVAL, "%g s per observation is less than one sample at %g Hz",
                            seconds_per_obs, fs_hz);
    if (spo > (double)CT_FHIR_ECG_DEFAULT_MAX_SAMPLES)
        return ct_error_set(err, CT_EINVAL,
                            "%g s per observation is %.0f samples at %g Hz, more than the %zu a FHIR "
                            "Observation may carry per lead",
                            seconds_per_obs, spo, fs_hz, CT_FHIR_ECG_DEFAULT_MAX_SAMPLES);
    if (!(limit_seconds >= 0.0) || !isfinite(limit_seconds))
        return ct_error_set(err, CT_EINVAL, "limit of %g s is not a duration", limit_seconds);
    int64_t n = record_samples;
    if (limit_seconds > 0.0) {
        double lim = floor(limit_seconds * fs_hz + 0.5);
        if (lim < 1.0)
            return ct_error_set(err, CT_EINVAL, "a limit of %g s is less than one sample at %g Hz",
                                limit_seconds, fs_hz);
        if (lim < (double)n)
            n = (int64_t)lim;
    }
    out->fs_hz = fs_hz;
    out->n_samples = n;
    out->samples_per_obs = (int64_t)spo;
    out->n_obs = (n + out->samples_per_obs - 1) / out->samples_per_obs;
    return CT_OK;
}

void ct_client_stream_obs_range(const ct_client_stream_plan *p, int64_t k, int64_t *first,
                                int64_t *count)
{
    int64_t f = k * p->samples_per_obs;
    int64_t c = p->n_samples - f;
    if (c > p->samples_per_obs)
        c = p->samples_per_obs;
    if (c < 0)
        c = 0;
    *first = f;
    *count = c;
}

int64_t ct_client_stream_sample_ms(const ct_client_stream_plan *p, int64_t start_ms, int64_t sample)
{
    /* Exact in a double up to 2^53 ms: a sample index of a 2 GiB record
     * times 1000 is far below. */
    return start_ms + (int64_t)floor((double)sample * 1000.0 / p->fs_hz + 0.5);
}

int64_t ct_client_stream_due_ms(const ct_client_stream_plan *p, int64_t k, double speed)
{
    if (!(speed > 0.0))
        return 0;
    int64_t first, count;
    ct_client_stream_obs_range(p, k, &first, &count);
    return (int64_t)floor((double)(first + count) * 1000.0 / (p->fs_hz * speed) + 0.5);
}

/* ---- the Patient's id -------------------------------------------------------------- */

int ct_client_stream_patient_id(const char *record_path, char *out, size_t cap, ct_error *err)
{
    if (out && cap)
        out[0] = '\0';
    if (!record_path || !*record_path || !out || cap == 0)
        return ct_error_set(err, CT_EINVAL, "patient id: no record path");
    const char *slash = strrchr(record_path, '/');
    const char *name = slash ? slash + 1 : record_path;
    if (!*name)
        return ct_error_set(err, CT_EINVAL, "'%s' is not a record path (expected e.g. data/mitdb/100)",
                            record_path);
    char dir[PATH_MAX];
    if (slash) {
        size_t n = (size_t)(slash - record_path);
        if (n >= sizeof dir)
            return ct_error_set(err, CT_EINVAL, "record path too long: %.64s...", record_path);
        if (n == 0)
            n = 1; /* "/100": the root folder */
        memcpy(dir, record_path, n);
        dir[n] = '\0';
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    /* The folder's own name, as the importer takes it: "." and ".." resolved. */
    char abs[PATH_MAX];
    const char *use = realpath(dir, abs) ? abs : dir;
    const char *fslash = strrchr(use, '/');
    const char *folder = fslash ? fslash + 1 : use;
    if (!*folder)
        folder = "wfdb";
    char id[2 * CT_FHIR_ID_MAX + 2];
    int len = snprintf(id, sizeof id, "%s-%s", folder, name);
    if (len < 0 || (size_t)len >= sizeof id || !ct_fhir_id_valid(id, (size_t)len))
        return ct_error_set(err, CT_EINVAL,
                            "record %s: '%.*s-%.64s' is not a FHIR id (letters, digits, '-' and '.', at "
                            "most 64): name the patient",
                            name, 64, folder, name);
    if ((size_t)len >= cap)
        return ct_error_set(err, CT_ELIMIT, "patient id %s does not fit in %zu bytes", id, cap);
    memcpy(out, id, (size_t)len + 1);
    return CT_OK;
}

/* ---- the stream -------------------------------------------------------------------- */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct stream_ctx {
    const ct_client_stream_callbacks *cb;
    int64_t k;      /* the Observation being sent, -1 for the Patient */
} stream_ctx;

static int should_stop(void *ud)
{
    const stream_ctx *s = ud;
    return s->cb && s->cb->should_stop && s->cb->should_stop(s->cb->ctx);
}

static void on_retry(void *ud, int attempt, long wait_ms, const char *reason)
{
    const stream_ctx *s = ud;
    if (s->cb && s->cb->retry)
        s->cb->retry(s->cb->ctx, s->k, attempt, wait_ms, reason);
}

/* Sleeps until the monotonic clock reads until_ns, in slices of 100 ms so
 * that a stop is heard; returns 1 when asked to stop. */
static int wait_until(int64_t until_ns, stream_ctx *s)
{
    for (;;) {
        if (should_stop(s))
            return 1;
        int64_t now = mono_ns();
        if (now >= until_ns)
            return 0;
        int64_t step = until_ns - now;
        if (step > 100000000)
            step = 100000000;
        int64_t at = now + step;
        struct timespec ts = {.tv_sec = (time_t)(at / 1000000000), .tv_nsec = (long)(at % 1000000000)};
        int rc;
        do {
            rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        } while (rc == EINTR);
    }
}

/* ADC units per mV from the header's gain and units. 0 when the units are
 * not an electric potential we know. */
static double gain_per_mv(const ct_wfdb_signal *sig)
{
    const char *u = sig->units;
    if (!*u || strcmp(u, "mV") == 0)
        return sig->gain_adu_per_unit;
    if (strcmp(u, "uV") == 0 || strcmp(u, "\xc2\xb5V") == 0 || strcmp(u, "\xce\xbcV") == 0)
        return sig->gain_adu_per_unit * 1000.0;
    if (strcmp(u, "V") == 0)
        return sig->gain_adu_per_unit / 1000.0;
    return 0.0;
}

static const char *record_name(const char *record_path)
{
    const char *slash = strrchr(record_path, '/');
    return slash ? slash + 1 : record_path;
}

/* Every signal must be a lead we can send, once. */
static int map_leads(const ct_wfdb_header *hdr, const char *name, ct_client_stream_info *info,
                     ct_fhir_ecg_in *in, ct_error *err)
{
    if (hdr->n_signals < 1)
        return ct_error_set(err, CT_EFORMAT, "record %s has no signals", name);
    if (hdr->n_signals > CT_FHIR_ECG_MAX_LEADS)
        return ct_error_set(err, CT_EUNSUPPORTED, "record %s has %d signals; an ECG Observation carries at most %d",
                            name, hdr->n_signals, CT_FHIR_ECG_MAX_LEADS);
    for (int s = 0; s < hdr->n_signals; s++) {
        const ct_wfdb_signal *sig = &hdr->signals[s];
        const ct_fhir_lead_info *lead = ct_fhir_lead_by_name(sig->description);
        if (!lead)
            return ct_error_set(err, CT_EUNSUPPORTED,
                                "record %s: signal %d (%s) is not an ECG lead that can be sent (I, II, III, "
                                "aVR, aVL, aVF, V1-V6, MLI, MLII or MLIII)",
                                name, s, sig->description[0] ? sig->description : "no description");
        for (int t = 0; t < s; t++)
            if (in->leads[t].mdc_code == lead->mdc_code)
                return ct_error_set(err, CT_EUNSUPPORTED, "record %s: signals %d (%s) and %d (%s) are both lead %s",
                                    name, t, hdr->signals[t].description, s, sig->description, lead->name);
        double g = gain_per_mv(sig);
        if (!(g > 0.0) || !isfinite(g))
            return ct_error_set(err, CT_EUNSUPPORTED,
                                "record %s: signal %d (%s) has gain %g ADC units per %s; a calibrated gain "
                                "in mV, uV or V is needed",
                                name, s, sig->description, sig->gain_adu_per_unit,
                                sig->units[0] ? sig->units : "mV");
        in->leads[s].mdc_code = lead->mdc_code;
        /* FHIR's code.text keeps the record's own name ("MLII" for a modified lead II). */
        in->leads[s].text = sig->description[0] && strlen(sig->description) <= 31 ? sig->description : NULL;
        in->leads[s].gain_adu_per_mv = g;
        in->leads[s].baseline_adu = sig->baseline_adu;
        info->lead_names[s] = sig->description;
        info->mdc_codes[s] = lead->mdc_code;
    }
    in->n_leads = hdr->n_signals;
    info->n_leads = hdr->n_signals;
    return CT_OK;
}

static int join2(const char *base, const char *a, const char *b, char *out, size_t cap, ct_error *err)
{
    char tmp[CT_CLIENT_MAX_URL];
    int rc = ct_client_url_join(base, a, b ? tmp : out, b ? sizeof tmp : cap, err);
    if (rc == CT_OK && b)
        rc = ct_client_url_join(tmp, b, out, cap, err);
    return rc;
}

/* Names the Patient in err; a 403 is most likely a token made for a device,
 * which may post Observations but not touch Patients: say what to do. */
static int patient_failed(ct_error *err, int rc, const char *patient_id, long status)
{
    ct_error_prefix(err, "Patient/%s", patient_id);
    if (err && status == 403) {
        char msg[CT_ERROR_MSG_MAX];
        snprintf(msg, sizeof msg, "%s", err->msg);
        rc = ct_error_set(err, rc, "%s (a token that may not read or write Patients, such as a device's, "
                                   "streams with --no-patient once the Patient exists)", msg);
    }
    return rc;
}

/* GET Patient/ID; when the server has none (404, 410), PUT it. */
static int ensure_patient(ct_client *c, const ct_client_stream_options *opt, stream_ctx *sc,
                          ct_client_stream_result *res, ct_error *err)
{
    char url[CT_CLIENT_MAX_URL];
    int rc = join2(opt->base_url, "Patient", opt->patient_id, url, sizeof url, err);
    if (rc)
        return rc;
    sc->k = -1;
    ct_client_request req = {.method = "GET", .url = url, .bearer_token = opt->bearer_token,
                             .on_retry = on_retry, .should_stop = should_stop, .cb_ctx = sc};
    ct_client_response r;
    rc = ct_client_send(c, &req, &r, err);
    res->retries += r.attempts > 1 ? r.attempts - 1 : 0;
    int stopped = r.stopped;
    long status = r.status;
    ct_client_response_free(&r);
    if (rc == CT_OK || stopped) {
        res->stopped = stopped;
        return stopped ? CT_OK : rc;
    }
    if (rc != CT_ENOTFOUND)
        return patient_failed(err, rc, opt->patient_id, status);

    json_t *p = json_pack("{s:s,s:s}", "resourceType", "Patient", "id", opt->patient_id);
    char *body = p ? json_dumps(p, JSON_COMPACT) : NULL;
    json_decref(p);
    if (!body)
        return ct_error_set(err, CT_ENOMEM, "Patient/%s: out of memory", opt->patient_id);
    ct_error_clear(err);
    req.method = "PUT";
    req.body = body;
    req.body_len = strlen(body);
    req.headers[0] = "Prefer: return=minimal";
    req.n_headers = 1;
    rc = ct_client_send(c, &req, &r, err);
    free(body);
    res->retries += r.attempts > 1 ? r.attempts - 1 : 0;
    res->stopped = r.stopped;
    status = r.status;
    if (rc == CT_OK)
        res->patient_created = r.status == 201;
    ct_client_response_free(&r);
    if (res->stopped)
        return CT_OK;
    if (rc)
        return patient_failed(err, rc, opt->patient_id, status);
    return CT_OK;
}

static int check_options(const ct_client_stream_options *opt, ct_error *err)
{
    if (!opt || !opt->base_url || !opt->patient_id)
        return ct_error_set(err, CT_EINVAL, "stream: missing base URL or patient");
    if (!ct_fhir_id_valid(opt->patient_id, strlen(opt->patient_id)))
        return ct_error_set(err, CT_EINVAL, "stream: patient '%.80s' is not a FHIR id (letters, digits, "
                                            "'-' and '.', at most 64)", opt->patient_id);
    if (opt->bearer_token && !ct_client_token_ok(opt->bearer_token))
        return ct_error_set(err, CT_EINVAL, "stream: the bearer token is not 1..%d characters of RFC "
                                            "6750's alphabet", CT_CLIENT_MAX_TOKEN);
    if (!(opt->speed == 0.0 ||
          (opt->speed >= CT_CLIENT_STREAM_MIN_SPEED && opt->speed <= CT_CLIENT_STREAM_MAX_SPEED)))
        return ct_error_set(err, CT_EINVAL, "stream: speed %g is outside %g..%g (0: unpaced)", opt->speed,
                            CT_CLIENT_STREAM_MIN_SPEED, CT_CLIENT_STREAM_MAX_SPEED);
    char probe[CT_CLIENT_MAX_URL];
    int rc = ct_client_url_join(opt->base_url, "Observation", probe, sizeof probe, err);
    if (rc)
        return rc;
    return CT_OK;
}

/* Builds and sends Observation k. */
static int send_one(ct_client *c, const char *obs_url, const ct_client_stream_options *opt,
                    const ct_client_stream_plan *plan, const ct_wfdb_signals *sig, ct_fhir_ecg_in *in,
                    int64_t start_ms, int64_t k, stream_ctx *sc, ct_client_stream_result *res,
                    ct_error *err)
{
    int64_t first, count;
    ct_client_stream_obs_range(plan, k, &first, &count);
    in->start_ms = ct_client_stream_sample_ms(plan, start_ms, first);
    in->n_samples = (size_t)count;
    for (int l = 0; l < in->n_leads; l++)
        in->leads[l].samples = sig->samples[l] + first;
    json_t *obs = NULL;
    int rc = ct_fhir_ecg_to_json(in, &obs, err);
    if (rc)
        return rc;
    char *body = json_dumps(obs, JSON_COMPACT);
    json_decref(obs);
    if (!body)
        return ct_error_set(err, CT_ENOMEM, "out of memory for the Observation's JSON");
    sc->k = k;
    ct_client_request req = {.method = "POST", .url = obs_url, .body = body, .body_len = strlen(body),
                             .bearer_token = opt->bearer_token, .on_retry = on_retry,
                             .should_stop = should_stop, .cb_ctx = sc};
    req.headers[0] = "Prefer: return=minimal";
    req.n_headers = 1;
    ct_client_response r;
    rc = ct_client_send(c, &req, &r, err);
    free(body);
    res->retries += r.attempts > 1 ? r.attempts - 1 : 0;
    if (r.stopped)
        res->stopped = 1;
    if (rc == CT_OK) {
        res->n_obs_sent++;
        res->n_samples_sent += count;
        snprintf(res->last_location, sizeof res->last_location, "%s", r.location);
        if (sc->cb && sc->cb->sent)
            sc->cb->sent(sc->cb->ctx, k, plan->n_obs, r.location);
    }
    ct_client_response_free(&r);
    return res->stopped ? CT_OK : rc;
}

int ct_client_stream_record(ct_client *c, const char *record_path,
                            const ct_client_stream_options *opt,
                            const ct_client_stream_callbacks *cb, ct_client_stream_result *res,
                            ct_error *err)
{
    ct_client_stream_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!c || !record_path || !*record_path)
        return ct_error_set(err, CT_EINVAL, "stream: no client or record");
    int rc = check_options(opt, err);
    if (rc)
        return rc;
    char obs_url[CT_CLIENT_MAX_URL];
    if ((rc = ct_client_url_join(opt->base_url, "Observation", obs_url, sizeof obs_url, err)) != CT_OK)
        return rc;
    const char *name = record_name(record_path);

    ct_wfdb_header *hdr = calloc(1, sizeof *hdr);
    ct_fhir_ecg_in *in = calloc(1, sizeof *in);
    ct_client_stream_info *info = calloc(1, sizeof *info);
    ct_wfdb_signals sig;
    memset(&sig, 0, sizeof sig);
    if (!hdr || !in || !info) {
        rc = ct_error_set(err, CT_ENOMEM, "stream: out of memory");
        goto done;
    }
    if ((rc = ct_wfdb_header_read(record_path, hdr, err)) != CT_OK)
        goto done;
    if ((rc = map_leads(hdr, name, info, in, err)) != CT_OK)
        goto done;
    /* Fail on the cutting before reading a large record. */
    if (hdr->n_samples > 0 &&
        (rc = ct_client_stream_plan_make(hdr->n_samples, hdr->fs_hz, opt->seconds_per_obs,
                                         opt->limit_seconds, &info->plan, err)) != CT_OK) {
        ct_error_prefix(err, "record %s", name);
        goto done;
    }
    if ((rc = ct_wfdb_signals_read(record_path, hdr, &sig, err)) != CT_OK)
        goto done;
    if ((rc = ct_client_stream_plan_make(sig.n_samples, hdr->fs_hz, opt->seconds_per_obs,
                                         opt->limit_seconds, &info->plan, err)) != CT_OK) {
        ct_error_prefix(err, "record %s", name);
        goto done;
    }
    const ct_client_stream_plan *plan = &info->plan;
    info->record = name;
    in->patient_id = opt->patient_id;
    in->fs_hz = hdr->fs_hz;
    res->n_obs_planned = plan->n_obs;
    res->n_leads = in->n_leads;
    if (cb && cb->begin)
        cb->begin(cb->ctx, info);

    stream_ctx sc = {.cb = cb, .k = -1};
    if (opt->ensure_patient) {
        if ((rc = ensure_patient(c, opt, &sc, res, err)) != CT_OK || res->stopped)
            goto done;
        if (cb && cb->patient)
            cb->patient(cb->ctx, opt->patient_id, res->patient_created);
    }

    int64_t t0 = mono_ns();
    int64_t start_ms = opt->start_ms == CT_CLIENT_STREAM_NOW ? wall_ms() : opt->start_ms;
    res->start_ms = start_ms;
    for (int64_t k = 0; k < plan->n_obs; k++) {
        int64_t due_ns = t0 + ct_client_stream_due_ms(plan, k, opt->speed) * 1000000;
        if (wait_until(due_ns, &sc)) {
            res->stopped = 1;
            break;
        }
        int64_t late_ms = (mono_ns() - due_ns) / 1000000;
        if (late_ms > res->max_late_ms)
            res->max_late_ms = late_ms;
        rc = send_one(c, obs_url, opt, plan, &sig, in, start_ms, k, &sc, res, err);
        if (rc != CT_OK) {
            int64_t first, count;
            ct_client_stream_obs_range(plan, k, &first, &count);
            ct_error_prefix(err, "record %s: Observation %lld of %lld (from %.3f s)", name, (long long)(k + 1),
                            (long long)plan->n_obs, (double)first / plan->fs_hz);
            break;
        }
        if (res->stopped)
            break;
    }
    res->wall_seconds = (double)(mono_ns() - t0) / 1e9;
    res->ecg_seconds = (double)res->n_samples_sent / plan->fs_hz;

done:
    ct_wfdb_signals_free(&sig);
    free(info);
    free(in);
    free(hdr);
    return rc;
}
