/* bench_audit: what the audit log costs and how fast it verifies.
 *
 * 1. A write transaction storing one small FHIR resource version, with and
 *    without its audit entry (interleaved, so that both see the same
 *    database size): median and 95th percentile per transaction, and the
 *    ratio. The database is a real file in WAL mode, synchronous=NORMAL, as
 *    the server runs it.
 * 2. Verify, checkpoint and export speed over a log of M entries, in
 *    entries per second.
 *
 *   bench_audit [--ops N] [--entries M]      defaults: 5000, 200000
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/store.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static void die(const char *what, const ct_error *err)
{
    fprintf(stderr, "bench_audit: %s: %s\n", what, err->msg);
    exit(1);
}

static void entry_for(ct_audit_entry *e, const char *id, int64_t version, int i)
{
    static const char *const patients[] = {"mitdb-100", "mitdb-101", "mitdb-102", "mitdb-103"};
    memset(e, 0, sizeof *e);
    e->actor = (ct_audit_actor){"gateway-7", "device", "192.0.2.31"};
    e->action = version == 1 ? "create" : "update";
    e->resource_type = "Observation";
    e->resource_id = id;
    e->resource_version = version;
    e->patient = patients[i % 4];
    e->request_id = "6f1c2a1e-5b1f-4a51-9d3c-2f8e4b7a9c10";
}

int main(int argc, char **argv)
{
    long ops = 5000, entries = 200000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--ops") == 0 && i + 1 < argc)
            ops = atol(argv[++i]);
        else if (strcmp(argv[i], "--entries") == 0 && i + 1 < argc)
            entries = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_audit [--ops N] [--entries M]\n");
            return 2;
        }
    }
    if (ops < 10 || entries < 10) {
        fprintf(stderr, "bench_audit: --ops and --entries must be at least 10\n");
        return 2;
    }
    char tmpl[] = "/tmp/ct-bench-audit.XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    char path[256], path2[256];
    snprintf(path, sizeof path, "%s/ops.db", dir);
    snprintf(path2, sizeof path2, "%s/log.db", dir);
    ct_error err;
    ct_store *st = NULL;
    if (ct_store_open(path, &st, &err) != CT_OK)
        die(path, &err);

    /* An Observation-sized body (a few hundred bytes of JSON). */
    char body[600];
    memset(body, 'x', sizeof body);
    memcpy(body, "{\"resourceType\":\"Observation\",\"note\":\"", 38);
    memcpy(body + sizeof body - 3, "\"}", 3);
    size_t body_len = strlen(body);

    double *plain = calloc((size_t)ops, sizeof *plain), *audited = calloc((size_t)ops, sizeof *audited);
    if (!plain || !audited)
        return 1;
    long n_plain = 0, n_audited = 0;
    for (long i = 0; i < 2 * ops + 200; i++) {
        int with_audit = i % 2;
        char id[32];
        snprintf(id, sizeof id, "o%ld", i / 4); /* creates and updates */
        double t0 = now_s();
        int64_t version = 0;
        if (ct_store_begin(st, &err) != CT_OK ||
            ct_store_resource_put(st, "Observation", id, body, body_len, &version, &err) != CT_OK)
            die("put", &err);
        if (with_audit) {
            ct_audit_entry e;
            entry_for(&e, id, version, (int)i);
            if (ct_audit_append(st, &e, NULL, &err) != CT_OK)
                die("append", &err);
        }
        if (ct_store_commit(st, &err) != CT_OK)
            die("commit", &err);
        double dt = now_s() - t0;
        if (i < 200)
            continue; /* warm-up: caches, page allocation */
        if (with_audit)
            audited[n_audited++] = dt;
        else
            plain[n_plain++] = dt;
    }
    double p50 = pct(plain, (size_t)n_plain, 0.5), p95 = pct(plain, (size_t)n_plain, 0.95);
    double a50 = pct(audited, (size_t)n_audited, 0.5), a95 = pct(audited, (size_t)n_audited, 0.95);
    printf("write transaction, one resource version (%ld each, WAL, synchronous=NORMAL):\n", ops);
    printf("  without audit: median %7.1f us   p95 %7.1f us\n", p50 * 1e6, p95 * 1e6);
    printf("  with audit:    median %7.1f us   p95 %7.1f us\n", a50 * 1e6, a95 * 1e6);
    printf("  auditing adds  median %7.1f us   ratio %.2f\n", (a50 - p50) * 1e6, a50 / p50);
    ct_store_close(st);

    /* A log of M entries, appended 1000 to a transaction. */
    if (ct_store_open(path2, &st, &err) != CT_OK)
        die(path2, &err);
    double t0 = now_s();
    for (long i = 0; i < entries;) {
        if (ct_store_begin(st, &err) != CT_OK)
            die("begin", &err);
        for (long j = 0; j < 1000 && i < entries; j++, i++) {
            char id[32];
            snprintf(id, sizeof id, "o%ld", i);
            ct_audit_entry e;
            entry_for(&e, id, 1, (int)i);
            if (ct_audit_append(st, &e, NULL, &err) != CT_OK)
                die("append", &err);
        }
        if (ct_store_commit(st, &err) != CT_OK)
            die("commit", &err);
    }
    double t_append = now_s() - t0;
    printf("log of %ld entries:\n", entries);
    printf("  append (1000 per transaction): %9.0f entries/s\n", (double)entries / t_append);

    ct_audit_report rep;
    t0 = now_s();
    if (ct_audit_verify(st, 0, NULL, &rep, &err) != CT_OK)
        die("verify", &err);
    double t_verify = now_s() - t0;
    printf("  verify, no checkpoint:         %9.0f entries/s (%.2f s)\n", (double)entries / t_verify, t_verify);

    ct_audit_key *key = NULL;
    unsigned char seed[32] = {42};
    if (ct_audit_key_from_raw(seed, 1, &key, &err) != CT_OK)
        die("key", &err);
    ct_audit_checkpoint_info *cp = malloc(sizeof *cp);
    int created = 0;
    t0 = now_s();
    if (!cp || ct_audit_checkpoint(st, key, cp, &created, &err) != CT_OK)
        die("checkpoint", &err);
    double t_cp = now_s() - t0;
    printf("  first checkpoint (all):        %9.0f entries/s (%.2f s)\n", (double)entries / t_cp, t_cp);
    t0 = now_s();
    if (ct_audit_verify(st, 0, key, &rep, &err) != CT_OK)
        die("verify", &err);
    t_verify = now_s() - t0;
    printf("  verify with checkpoint:        %9.0f entries/s (%.2f s)\n", (double)entries / t_verify, t_verify);
    /* 1000 entries more, then what a periodic check costs: --from past
     * the checkpoint re-hashes only what follows it. */
    if (ct_store_begin(st, &err) != CT_OK)
        die("begin", &err);
    for (long i = 0; i < 1000; i++) {
        ct_audit_entry e;
        entry_for(&e, "late", 1, (int)i);
        if (ct_audit_append(st, &e, NULL, &err) != CT_OK)
            die("append", &err);
    }
    if (ct_store_commit(st, &err) != CT_OK)
        die("commit", &err);
    t0 = now_s();
    if (ct_audit_verify(st, entries + 1, key, &rep, &err) != CT_OK)
        die("verify --from", &err);
    printf("  verify --from after it:        %9.3f s (%lld entries re-hashed)\n", now_s() - t0,
           (long long)rep.entries_checked);
    t0 = now_s();
    if (ct_audit_checkpoint(st, key, cp, &created, &err) != CT_OK)
        die("checkpoint", &err);
    printf("  next checkpoint (1000 new):    %9.3f s\n", now_s() - t0);

    FILE *null = fopen("/dev/null", "w");
    ct_audit_export_options opt;
    memset(&opt, 0, sizeof opt);
    ct_audit_export_result res;
    for (int f = 0; f < 2 && null; f++) {
        opt.format = f ? CT_AUDIT_FORMAT_FHIR : CT_AUDIT_FORMAT_NDJSON;
        t0 = now_s();
        if (ct_audit_export(st, &opt, null, &res, &err) != CT_OK)
            die("export", &err);
        double t = now_s() - t0;
        printf("  export %-6s                   %9.0f entries/s (%.2f s)\n", f ? "fhir" : "ndjson",
               (double)entries / t, t);
    }
    opt.format = CT_AUDIT_FORMAT_NDJSON;
    opt.patient = "mitdb-101";
    t0 = now_s();
    if (null && ct_audit_export(st, &opt, null, &res, &err) != CT_OK)
        die("export", &err);
    printf("  export ndjson --patient (1/4): %9.0f entries/s of the log (%lld nodes)\n",
           (double)entries / (now_s() - t0), (long long)res.nodes);
    if (null)
        fclose(null);
    free(cp);
    ct_audit_key_free(key);
    ct_store_close(st);
    free(plain);
    free(audited);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
