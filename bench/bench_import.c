/* bench_import: time to import every WFDB record of a folder into a fresh
 * database (decode, checksum, SHA-256 identity, SQLite writes in WAL mode),
 * the work `cardiotwin import` does. Reports each run and the median.
 *
 *   bench_import [--runs N] [DIR]     DIR defaults to $CARDIOTWIN_MITDB
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cardiotwin/ingest.h"
#include "cardiotwin/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    int runs = 5;
    const char *dir = getenv("CARDIOTWIN_MITDB");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else
            dir = argv[i];
    }
    if (!dir || runs < 1 || runs > 100) {
        fprintf(stderr, "usage: bench_import [--runs N] [DIR]   (or set CARDIOTWIN_MITDB)\n");
        return 2;
    }

    char *names[256];
    int n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "bench_import: cannot open %s\n", dir);
        return 1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && n < 256) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".hea") == 0) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%.*s", dir, (int)(len - 4), e->d_name);
            names[n++] = strdup(path);
        }
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    if (n == 0) {
        fprintf(stderr, "bench_import: no .hea files in %s\n", dir);
        return 1;
    }

    char tmpl[] = "/tmp/ct-bench-import.XXXXXX";
    char *tmp = mkdtemp(tmpl);
    if (!tmp) {
        perror("mkdtemp");
        return 1;
    }
    double *secs = calloc((size_t)runs, sizeof *secs);
    long long samples = 0, beats = 0;
    printf("bench_import: %d records from %s, %d runs\n", n, dir, runs);
    for (int r = 0; r < runs; r++) {
        char db[4096];
        snprintf(db, sizeof db, "%s/run%d.db", tmp, r);
        ct_error err;
        ct_error_clear(&err);
        double t0 = now_s();
        ct_store *st = NULL;
        if (ct_store_open(db, &st, &err) != CT_OK) {
            fprintf(stderr, "bench_import: %s\n", err.msg);
            return 1;
        }
        samples = beats = 0;
        for (int i = 0; i < n; i++) {
            ct_ingest_result res;
            if (ct_ingest_wfdb_record(st, names[i], NULL, &res, &err) != CT_OK) {
                fprintf(stderr, "bench_import: %s\n", err.msg);
                return 1;
            }
            samples += res.n_samples * res.n_signals;
            beats += (long long)res.n_beats;
        }
        ct_store_close(st);
        secs[r] = now_s() - t0;
        printf("  run %d: %.3f s\n", r + 1, secs[r]);
        char wal[4200], shm[4200];
        snprintf(wal, sizeof wal, "%s-wal", db);
        snprintf(shm, sizeof shm, "%s-shm", db);
        unlink(db);
        unlink(wal);
        unlink(shm);
    }
    qsort(secs, (size_t)runs, sizeof secs[0], cmp_double);
    double median = runs % 2 ? secs[runs / 2] : (secs[runs / 2 - 1] + secs[runs / 2]) / 2;
    printf("records %d, samples %lld, beats %lld\n", n, samples, beats);
    printf("median %.3f s (min %.3f, max %.3f), %.1f M samples/s\n", median, secs[0],
           secs[runs - 1], (double)samples / median / 1e6);
    rmdir(tmp);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(secs);
    return 0;
}
