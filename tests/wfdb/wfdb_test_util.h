/* Helpers for the wfdb room's tests: where the MIT-BIH records are, a private
 * temporary folder per test, and small file writers. Everything is static
 * inline so that each test program takes only what it uses. */
#ifndef CT_WFDB_TEST_UTIL_H
#define CT_WFDB_TEST_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardiotwin/wfdb.h"

/* snprintf that refuses to truncate: a test path cut short would test
 * something else than it says. */
static inline void ct_test_fmt(char *buf, size_t cap, const char *fmt, ...) CT_PRINTF(3, 4);
static inline void ct_test_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        fprintf(stderr, "test string too long: %s\n", fmt);
        abort();
    }
}

/* The 28 records of shared/data/mitdb. */
static const char *const ct_test_records[] = {
    "100", "101", "102", "103", "104", "105", "106", "107", "108", "109",
    "112", "114", "115", "116", "118", "119", "122", "124", "201", "203",
    "205", "207", "208", "209", "215", "220", "223", "230",
};
#define CT_TEST_N_RECORDS ((int)(sizeof ct_test_records / sizeof ct_test_records[0]))

/* CARDIOTWIN_MITDB (set by ctest), else ../shared/data/mitdb beside the
 * source tree. The data must be there: a test that cannot find it fails. */
static inline const char *ct_test_mitdb(void)
{
    static char dir[4096];
    const char *env = getenv("CARDIOTWIN_MITDB");
    if (env && *env)
        return env;
    const char *src = getenv("CT_SOURCE_DIR");
    ct_test_fmt(dir, sizeof dir, "%s/../shared/data/mitdb", src && *src ? src : "..");
    return dir;
}

static inline void ct_test_record_path(char *out, size_t cap, const char *rec)
{
    ct_test_fmt(out, cap, "%s/%s", ct_test_mitdb(), rec);
}

static inline char *ct_test_tempdir(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[4096];
    ct_test_fmt(tmpl, sizeof tmpl, "%s/ct_wfdb_test_XXXXXX", base && *base ? base : "/tmp");
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        perror("mkdtemp");
        abort();
    }
    return strdup(dir);
}

/* Removes the files of a flat temporary folder, then the folder. */
static inline void ct_test_rmdir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[8192];
            ct_test_fmt(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static inline void ct_test_write(const char *dir, const char *name, const void *data, size_t len)
{
    char p[8192];
    ct_test_fmt(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(p);
        abort();
    }
}

static inline void ct_test_write_text(const char *dir, const char *name, const char *text)
{
    ct_test_write(dir, name, text, strlen(text));
}

/* Reads a whole file; aborts when it cannot. */
static inline unsigned char *ct_test_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        abort();
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf || (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n)) {
        perror(path);
        abort();
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#endif
