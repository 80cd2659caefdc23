/* bench_twin: the live twin's costs, without HTTP.
 *
 *   bench_twin [RECORD ...]        (default: 106 119 203 208 223)
 *
 * Each MIT-BIH record (from $CARDIOTWIN_MITDB) is streamed as 10-second ECG
 * Observations (both leads, 360 Hz, built as FHIR JSON and parsed back as a
 * gateway's would arrive) into a twin on a SQLite file in $TMPDIR, one
 * patient per record, one thread. It prints:
 *
 *  - alert latency: for every Observation whose ingest stored at least one
 *    alert report, the time from the call (the Observation's arrival) to
 *    its return, by which the DiagnosticReport, its results, Provenance,
 *    alert row and audit entry are committed: median, p99, max;
 *  - ingest latency and throughput over all Observations (samples stored,
 *    detector, policy, reports);
 *  - memory per monitored patient: what the twin holds for one patient
 *    (ct_twin_patient_memory_bytes), and the process's resident growth for
 *    200 more patients with 10 s of ECG each.
 *
 * Run it on a Release build: cmake -DCMAKE_BUILD_TYPE=Release. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cardiotwin/twin.h"

#define T0_MS 1767225600000LL

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

typedef struct samples {
    double *v;
    size_t n, cap;
} samples;

static void add(samples *s, double x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        double *nv = realloc(s->v, s->cap * sizeof *nv);
        if (!nv) {
            fprintf(stderr, "bench_twin: out of memory\n");
            exit(1);
        }
        s->v = nv;
    }
    s->v[s->n++] = x;
}

/* Frames [from, from + n) of a record as a parsed ECG Observation. */
static int observation(const ct_wfdb_header *h, const ct_wfdb_signals *sig, const char *patient, int64_t from,
                       size_t n, ct_fhir_ecg *out)
{
    ct_fhir_ecg_in in;
    memset(&in, 0, sizeof in);
    in.patient_id = patient;
    in.start_ms = T0_MS + (int64_t)((double)from * 1000.0 / h->fs_hz + 0.5);
    in.fs_hz = h->fs_hz;
    in.n_samples = n;
    in.n_leads = sig->n_signals < 2 ? sig->n_signals : 2;
    for (int l = 0; l < in.n_leads; l++) {
        const ct_fhir_lead_info *li = ct_fhir_lead_by_name(h->signals[l].description);
        if (!li)
            li = ct_fhir_lead_by_code(131329 + l);
        in.leads[l].mdc_code = li->mdc_code;
        in.leads[l].text = h->signals[l].description;
        in.leads[l].gain_adu_per_mv = h->signals[l].gain_adu_per_unit;
        in.leads[l].baseline_adu = h->signals[l].baseline_adu;
        in.leads[l].samples = sig->samples[l] + from;
    }
    json_t *j = NULL;
    ct_error err;
    if (ct_fhir_ecg_to_json(&in, &j, &err) != 0) {
        fprintf(stderr, "bench_twin: %s\n", err.msg);
        return -1;
    }
    ct_fhir_issue is;
    int rc = ct_fhir_ecg_from_json(j, NULL, out, &is);
    json_decref(j);
    if (rc)
        fprintf(stderr, "bench_twin: %s\n", is.diagnostics);
    return rc;
}

int main(int argc, char **argv)
{
    const char *defaults[] = {"106", "119", "203", "208", "223"};
    const char **recs = argc > 1 ? (const char **)argv + 1 : defaults;
    int n_recs = argc > 1 ? argc - 1 : (int)(sizeof defaults / sizeof *defaults);
    const char *mitdb = getenv("CARDIOTWIN_MITDB");
    if (!mitdb || !*mitdb)
        mitdb = "../shared/data/mitdb";
    const char *tmp = getenv("TMPDIR");
    char db[512];
    snprintf(db, sizeof db, "%s/bench_twin_%ld.db", tmp && *tmp ? tmp : "/tmp", (long)getpid());

    ct_error err;
    ct_store *st = NULL;
    ct_twin *t = NULL;
    if (ct_store_open(db, &st, &err) != 0 || ct_twin_new(NULL, st, &t, &err) != 0) {
        fprintf(stderr, "bench_twin: %s\n", err.msg);
        return 1;
    }
    samples alert = {0}, all = {0};
    size_t reports = 0, obs = 0;
    double total_ms = 0, parse_ms = 0;
    size_t patient_bytes = 0;
    for (int r = 0; r < n_recs; r++) {
        char path[1024], patient[64];
        snprintf(path, sizeof path, "%s/%s", mitdb, recs[r]);
        snprintf(patient, sizeof patient, "mitdb-%s", recs[r]);
        ct_wfdb_header h;
        ct_wfdb_signals sig;
        if (ct_wfdb_header_read(path, &h, &err) != 0 || ct_wfdb_signals_read(path, &h, &sig, &err) != 0) {
            fprintf(stderr, "bench_twin: %s\n", err.msg);
            return 1;
        }
        const int64_t step = (int64_t)(10 * h.fs_hz);
        for (int64_t k = 0; k * step < sig.n_samples; k++) {
            int64_t from = k * step;
            size_t n = (size_t)(from + step <= sig.n_samples ? step : sig.n_samples - from);
            double p0 = now_ms();
            ct_fhir_ecg e;
            if (observation(&h, &sig, patient, from, n, &e) != 0)
                return 1;
            char id[96];
            snprintf(id, sizeof id, "%s-%lld", patient, (long long)k);
            ct_twin_ingest_result res;
            double t0 = now_ms();
            parse_ms += t0 - p0;
            int rc = ct_twin_ingest_ecg(t, st, &e, id, &res, &err);
            double dt = now_ms() - t0;
            ct_fhir_ecg_free(&e);
            if (rc || res.report_error) {
                fprintf(stderr, "bench_twin: %s: %s\n", id, rc ? err.msg : res.report_error_msg);
                return 1;
            }
            add(&all, dt);
            total_ms += dt;
            obs++;
            if (res.reports_written) {
                add(&alert, dt);
                reports += res.reports_written;
            }
        }
        size_t b = ct_twin_patient_memory_bytes(t, patient);
        if (b > patient_bytes)
            patient_bytes = b;
        if (ct_twin_stream_end(t, st, patient, &err) != 0) {
            fprintf(stderr, "bench_twin: %s\n", err.msg);
            return 1;
        }
        ct_wfdb_signals_free(&sig);
    }
    qsort(alert.v, alert.n, sizeof *alert.v, cmp_double);
    qsort(all.v, all.n, sizeof *all.v, cmp_double);
    printf("records: %d, Observations: %zu (10 s, 2 leads, 360 Hz), alert reports stored: %zu\n", n_recs, obs,
           reports);
    printf("alert latency (Observation in -> DiagnosticReport committed), %zu Observations: "
           "median %.2f ms, p99 %.2f ms, max %.2f ms\n",
           alert.n, pct(alert.v, alert.n, 0.5), pct(alert.v, alert.n, 0.99), alert.n ? alert.v[alert.n - 1] : 0);
    printf("ingest latency, all Observations: median %.2f ms, p99 %.2f ms; %.0f Observations/s in the twin "
           "(+ %.2f ms each to build and parse the FHIR JSON)\n",
           pct(all.v, all.n, 0.5), pct(all.v, all.n, 0.99), total_ms > 0 ? 1000.0 * (double)obs / total_ms : 0,
           obs ? parse_ms / (double)obs : 0);
    printf("memory per patient (twin state, 2 leads at 360 Hz): %zu bytes\n", patient_bytes);

    /* Resident growth for 200 more patients. */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", mitdb, recs[0]);
    ct_wfdb_header h;
    ct_wfdb_signals sig;
    if (ct_wfdb_header_read(path, &h, &err) != 0 || ct_wfdb_signals_read(path, &h, &sig, &err) != 0) {
        fprintf(stderr, "bench_twin: %s\n", err.msg);
        return 1;
    }
    long before = rss_kb();
    const int extra = 200;
    for (int i = 0; i < extra; i++) {
        char patient[32], id[48];
        snprintf(patient, sizeof patient, "bench-%d", i);
        snprintf(id, sizeof id, "bench-%d-0", i);
        ct_fhir_ecg e;
        if (observation(&h, &sig, patient, 0, (size_t)(10 * h.fs_hz), &e) != 0)
            return 1;
        ct_twin_ingest_result res;
        if (ct_twin_ingest_ecg(t, st, &e, id, &res, &err) != 0) {
            fprintf(stderr, "bench_twin: %s\n", err.msg);
            return 1;
        }
        ct_fhir_ecg_free(&e);
    }
    long after = rss_kb();
    printf("resident memory: +%ld KiB for %d patients, %.0f KiB per patient (with SQLite's cache)\n",
           after - before, extra, (double)(after - before) / extra);
    ct_wfdb_signals_free(&sig);
    free(alert.v);
    free(all.v);
    ct_twin_free(t);
    ct_store_close(st);
    char p2[600];
    unlink(db);
    snprintf(p2, sizeof p2, "%s-wal", db);
    unlink(p2);
    snprintf(p2, sizeof p2, "%s-shm", db);
    unlink(p2);
    return 0;
}
