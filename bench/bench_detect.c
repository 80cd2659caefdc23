/* bench_detect: throughput of the detector as a bedside stream would use it,
 * on every record in $CARDIOTWIN_MITDB (default ../shared/data/mitdb):
 * decode the format-212 signal file (held in memory), push the samples in
 * chunks of 4096 frames through detection and classification, one lead and
 * then two leads. Median of RUNS runs over the whole set, single thread,
 * so the figure is per core. Also the memory one detector stream holds.
 *
 *   bench_detect [RUNS]      (build with -DCMAKE_BUILD_TYPE=Release) */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cardiotwin/ecg.h"
#include "cardiotwin/wfdb.h"

#define MAX_RECORDS 64
#define CHUNK 4096

typedef struct record {
    char name[64];
    ct_wfdb_header hdr;
    uint8_t *dat;
    size_t dat_len;
} record;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const record *)a)->name, ((const record *)b)->name);
}

static void on_beat(void *ctx, const ct_ecg_beat *b)
{
    (*(long *)ctx) += b->cls == CT_BEAT_V ? 1 : 0;
    (*(long *)ctx) += 1;
}

/* Decodes and detects one record with n_leads leads; returns beats seen. */
static long run_record(const record *r, int n_leads, int16_t **buf)
{
    int64_t nf = r->hdr.n_samples;
    int ns = r->hdr.n_signals;
    ct_wfdb_decode_212(r->dat, r->dat_len, ns, nf, buf);
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = r->hdr.fs_hz;
    cfg.n_leads = n_leads;
    for (int l = 0; l < n_leads; l++) {
        cfg.gain_adu_per_mv[l] = r->hdr.signals[l].gain_adu_per_unit;
        cfg.baseline_adu[l] = r->hdr.signals[l].baseline_adu;
    }
    long beats = 0;
    ct_ecg_sink sink = {on_beat, NULL, &beats};
    ct_ecg_detector *d = NULL;
    if (ct_ecg_detector_new(&cfg, &sink, &d, NULL))
        return -1;
    for (int64_t i = 0; i < nf; i += CHUNK) {
        const int16_t *ptr[2] = {buf[0] + i, buf[1] + i};
        size_t m = (size_t)(nf - i < CHUNK ? nf - i : CHUNK);
        ct_ecg_detector_push(d, ptr, m);
    }
    ct_ecg_detector_finish(d);
    ct_ecg_detector_free(d);
    return beats;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    if (runs < 1 || runs > 100)
        runs = 5;
    const char *dir = getenv("CARDIOTWIN_MITDB");
    if (!dir || !*dir)
        dir = "../shared/data/mitdb";
    DIR *dh = opendir(dir);
    if (!dh) {
        fprintf(stderr, "bench_detect: cannot open %s (set CARDIOTWIN_MITDB)\n", dir);
        return 1;
    }
    static record recs[MAX_RECORDS];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dh)) && n < MAX_RECORDS) {
        size_t len = strlen(de->d_name);
        if (len < 5 || len - 4 >= sizeof recs[n].name || strcmp(de->d_name + len - 4, ".hea"))
            continue;
        record *r = &recs[n];
        memcpy(r->name, de->d_name, len - 4);
        r->name[len - 4] = '\0';
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, r->name);
        ct_error err;
        if (ct_wfdb_header_read(path, &r->hdr, &err) || r->hdr.n_signals != 2 ||
            r->hdr.signals[0].format != 212 || r->hdr.n_samples <= 0) {
            fprintf(stderr, "bench_detect: skipping %s (%s)\n", r->name,
                    err.code ? err.msg : "not a two-signal format 212 record");
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, r->hdr.signals[0].file_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        r->dat = malloc((size_t)sz);
        if (!r->dat || fread(r->dat, 1, (size_t)sz, f) != (size_t)sz) {
            fclose(f);
            free(r->dat);
            continue;
        }
        fclose(f);
        r->dat_len = (size_t)sz;
        n++;
    }
    closedir(dh);
    if (n == 0) {
        fprintf(stderr, "bench_detect: no records in %s\n", dir);
        return 1;
    }
    qsort(recs, (size_t)n, sizeof recs[0], cmp_name);
    int64_t max_nf = 0, total = 0;
    for (int i = 0; i < n; i++) {
        if (recs[i].hdr.n_samples > max_nf)
            max_nf = recs[i].hdr.n_samples;
        total += recs[i].hdr.n_samples;
    }
    int16_t *buf[2] = {malloc((size_t)max_nf * 2), malloc((size_t)max_nf * 2)};
    if (!buf[0] || !buf[1])
        return 1;

    printf("bench_detect: %d records, %lld samples per lead (%.1f hours at %g Hz), %d runs\n\n",
           n, (long long)total, (double)total / recs[0].hdr.fs_hz / 3600.0, recs[0].hdr.fs_hz,
           runs);
    printf("%-8s %14s %14s %12s %10s\n", "leads", "Msamples/s", "Mframes/s", "x real time",
           "beats");
    for (int leads = 1; leads <= 2; leads++) {
        double t[100];
        long beats = 0;
        for (int k = 0; k < runs; k++) {
            double t0 = now_s();
            beats = 0;
            for (int i = 0; i < n; i++)
                beats += run_record(&recs[i], leads, buf);
            t[k] = now_s() - t0;
        }
        qsort(t, (size_t)runs, sizeof t[0], cmp_double);
        double med = t[runs / 2];
        double fps = (double)total / med;
        printf("%-8d %14.1f %14.1f %12.0f %10ld\n", leads, fps * leads / 1e6, fps / 1e6,
               fps / recs[0].hdr.fs_hz, beats);
    }

    printf("\nmemory per detector stream (state and every buffer, fixed at creation):\n");
    printf("%-10s %8s %12s\n", "fs (Hz)", "leads", "bytes");
    static const double rates[] = {125, 250, 360, 500, 1000};
    for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++)
        for (int leads = 1; leads <= 12; leads = leads == 1 ? 2 : leads == 2 ? 12 : 13) {
            ct_ecg_config cfg;
            memset(&cfg, 0, sizeof cfg);
            cfg.fs_hz = rates[r];
            cfg.n_leads = leads;
            for (int l = 0; l < leads; l++)
                cfg.gain_adu_per_mv[l] = 200;
            ct_ecg_detector *d = NULL;
            if (ct_ecg_detector_new(&cfg, NULL, &d, NULL) == 0) {
                printf("%-10g %8d %12zu\n", rates[r], leads, ct_ecg_detector_memory_bytes(d));
                ct_ecg_detector_free(d);
            }
        }
    for (int i = 0; i < n; i++)
        free(recs[i].dat);
    free(buf[0]);
    free(buf[1]);
    return 0;
}
