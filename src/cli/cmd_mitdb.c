/* cardiotwin mitdb: the MIT-BIH Arrhythmia Database on this machine. Its one
 * subcommand, download, fetches records from PhysioNet (or a mirror) with
 * the client room and checks them with the wfdb room.
 *
 * The one idea: a record is downloaded into a staging folder beside its
 * destination, DEST/.partial-RECORD/, checked there as a whole (header
 * parsed, every signal decoded against the header's first values and
 * checksums, annotations parsed), and only then renamed file by file into
 * DEST, header last. So nothing unverified ever sits under DEST/RECORD.*, and
 * a record whose header is in DEST has all its other files there too. The
 * staging folder keeps .part files after a network failure, so the next run
 * resumes them; after a verification failure it is removed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/client.h"
#include "cardiotwin/wfdb.h"

#define CMD "mitdb download"
#define DEFAULT_BASE_URL "https://physionet.org/files/mitdb/1.0.0/"
#define RECORD_NAME_MAX 63
/* An MIT-BIH .atr is about 20 kB; other PhysioNet databases reach a few MB. */
#define MAX_ANN_DOWNLOAD_BYTES ((int64_t)64 * 1024 * 1024)
/* Entries a staging folder may hold before we refuse to clean it up. */
#define MAX_STAGING_ENTRIES 256

static void usage_mitdb(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin mitdb <subcommand> [options]\n"
            "\n"
            "The MIT-BIH Arrhythmia Database (PhysioNet, mitdb 1.0.0) on this machine.\n"
            "\n"
            "subcommands:\n"
            "  download   fetch records from PhysioNet or a mirror, verify them, and\n"
            "             place them in a folder\n"
            "\n"
            "'cardiotwin mitdb <subcommand> --help' describes a subcommand.\n");
}

static void usage_download(FILE *out)
{
    fprintf(out,
            "usage: cardiotwin mitdb download [options] RECORD...\n"
            "\n"
            "Fetches RECORD.hea, its signal files (RECORD.dat) and RECORD.atr for each\n"
            "RECORD (a name such as 100), verifies them (header, every sample against\n"
            "the header's first values and checksums, annotations), and only then\n"
            "places them in the destination folder. A record already there that\n"
            "verifies is skipped. Transient failures (connection errors, timeouts,\n"
            "HTTP 5xx and 429) are retried with growing pauses and a cut transfer is\n"
            "resumed; HTTP 404 and 403 fail at once. A record that fails leaves\n"
            "nothing under its final names; the others are still downloaded.\n"
            "\n"
            "options:\n"
            "  --base-url URL      where the records are (default:\n"
            "                      " DEFAULT_BASE_URL ")\n"
            "  --dest DIR          folder for the records (default: $CARDIOTWIN_MITDB,\n"
            "                      else ./mitdb); created if missing\n"
            "  --retries N         retries per file after the first attempt (default 4,\n"
            "                      at most 20)\n"
            "  --backoff-ms MS     pause before the first retry, doubled for each next\n"
            "                      one up to 30 s (default 1000)\n"
            "  --ca-file FILE      trust the CA certificates in FILE (PEM) instead of\n"
            "                      the system's; certificates are always verified\n"
            "  -h, --help          print this help\n"
            "\n"
            "output: one line per record on stdout, e.g.\n"
            "  100: downloaded and verified: 3 files, 1954701 bytes, 2 signals of 650000 samples, 2274 annotations\n"
            "  100: already present, verified\n"
            "a progress bar on stderr when it is a terminal; retries are noted on stderr.\n"
            "exit codes: 0 all records present and verified, 1 a record failed, 2 usage.\n");
}

/* ---- small helpers ------------------------------------------------------------ */

static int record_name_ok(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > RECORD_NAME_MAX)
        return 0;
    for (; *r; r++) {
        char ch = *r;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return 0;
    }
    return 1;
}

/* A file name a header may ask us to fetch and create: one plain name, not
 * hidden (our staging folders start with '.'), not one of our .part files,
 * no path. */
static int file_name_ok(const char *f)
{
    size_t n = strlen(f);
    if (n == 0 || n > 200 || f[0] == '.' || (n >= 5 && strcmp(f + n - 5, ".part") == 0))
        return 0;
    for (; *f; f++) {
        char ch = *f;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int join_path(char *out, size_t cap, const char *dir, const char *name, ct_error *err)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return ct_error_set(err, CT_ELIMIT, "path %s/%s is too long", dir, name);
    return 0;
}

/* mkdir -p, for the destination folder. */
static int make_dirs(const char *path, ct_error *err)
{
    char buf[PATH_MAX];
    if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
        return ct_error_set(err, CT_ELIMIT, "folder name %s is too long", path);
    for (char *p = buf + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0755) != 0 && errno != EEXIST)
                return ct_error_set(err, CT_EIO, "cannot create folder %s: %s", buf, strerror(errno));
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return ct_error_set(err, CT_EIO, "%s is not a folder", path);
    return 0;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: the renames are already done */
        close(fd);
    }
}

static int read_small_file(const char *path, int64_t max_bytes, char **buf, size_t *len, ct_error *err)
{
    *buf = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return ct_error_set(err, CT_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return ct_error_set(err, CT_EIO, "%s is not a regular file", path);
    }
    if ((int64_t)st.st_size > max_bytes) {
        fclose(fp);
        return ct_error_set(err, CT_ELIMIT, "%s is %lld bytes, more than the limit of %lld", path,
                            (long long)st.st_size, (long long)max_bytes);
    }
    size_t n = (size_t)st.st_size;
    char *b = malloc(n + 1);
    if (!b) {
        fclose(fp);
        return ct_error_set(err, CT_ENOMEM, "no memory to read %s", path);
    }
    size_t got = fread(b, 1, n, fp);
    int bad = ferror(fp) || got != n;
    fclose(fp);
    if (bad) {
        free(b);
        return ct_error_set(err, CT_EIO, "cannot read %s", path);
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return 0;
}

/* ---- the record ------------------------------------------------------------------ */

typedef struct record_files {
    int n;                                 /* distinct signal files */
    char name[CT_WFDB_MAX_SIGNALS][256];
    int64_t max_bytes[CT_WFDB_MAX_SIGNALS]; /* what the header allows each to be */
} record_files;

/* The signal files a header names, each checked as a plain file name, with
 * an upper bound on its size from the header (so a download cannot be
 * larger than the record it claims to be). */
static int header_files(const ct_wfdb_header *h, const char *record, record_files *rf, ct_error *err)
{
    memset(rf, 0, sizeof *rf);
    char hea[RECORD_NAME_MAX + 8], atr[RECORD_NAME_MAX + 8];
    snprintf(hea, sizeof hea, "%s.hea", record);
    snprintf(atr, sizeof atr, "%s.atr", record);
    if (h->n_signals < 1)
        return ct_error_set(err, CT_EFORMAT, "record %s: %s has no signals", record, hea);
    for (int s = 0; s < h->n_signals && s < CT_WFDB_MAX_SIGNALS; s++) {
        const ct_wfdb_signal *sig = &h->signals[s];
        if (!file_name_ok(sig->file_name) || strcmp(sig->file_name, hea) == 0 ||
            strcmp(sig->file_name, atr) == 0)
            return ct_error_set(err, CT_EFORMAT,
                                "record %s: %s: signal %d names file '%s', which is not a plain "
                                "signal file name",
                                record, hea, s, sig->file_name);
        int bits;
        switch (sig->format) {
        case 212: bits = 12; break;
        case 16: bits = 16; break;
        case 80: bits = 8; break;
        default:
            return ct_error_set(err, CT_EUNSUPPORTED,
                                "record %s: %s: signal %d is in format %d (212, 16 and 80 are read)",
                                record, hea, s, sig->format);
        }
        int spf = sig->samples_per_frame > 0 ? sig->samples_per_frame : 1;
        int i = 0;
        while (i < rf->n && strcmp(rf->name[i], sig->file_name) != 0)
            i++;
        if (i == rf->n) {
            snprintf(rf->name[i], sizeof rf->name[i], "%s", sig->file_name);
            rf->max_bytes[i] = sig->byte_offset > 0 ? sig->byte_offset : 0;
            rf->n++;
        }
        if (h->n_samples < 0 || h->n_samples > CT_WFDB_MAX_DAT_BYTES || spf > 1024 ||
            rf->max_bytes[i] < 0 || rf->max_bytes[i] > CT_WFDB_MAX_DAT_BYTES) {
            rf->max_bytes[i] = -1; /* unknown or absurd: the wfdb room's ceiling applies */
        } else {
            /* bits of this signal over the whole record, rounded up, plus one
             * byte of slack per signal for a 212 pair split at the end; at
             * most 2^31 * 1024 * 16 bits per signal, far from overflow. */
            rf->max_bytes[i] += (h->n_samples * spf * bits + 7) / 8 + 1;
        }
    }
    for (int i = 0; i < rf->n; i++)
        if (rf->max_bytes[i] < 0 || rf->max_bytes[i] > CT_WFDB_MAX_DAT_BYTES)
            rf->max_bytes[i] = CT_WFDB_MAX_DAT_BYTES;
    return 0;
}

/* Makes err say "record R: FILE: ..." whatever room wrote it, so that a
 * person knows which file to look at. */
static void name_file(ct_error *err, const char *record, const char *file)
{
    if (!err)
        return;
    char lead[RECORD_NAME_MAX + 16];
    size_t n = (size_t)snprintf(lead, sizeof lead, "record %s: ", record);
    if (strncmp(err->msg, lead, n) == 0) {
        if (strncmp(err->msg + n, file, strlen(file)) == 0)
            return;
        char rest[CT_ERROR_MSG_MAX];
        snprintf(rest, sizeof rest, "%s", err->msg + n);
        snprintf(err->msg, sizeof err->msg, "%s", rest);
    }
    ct_error_prefix(err, "record %s: %s", record, file);
}

typedef struct record_check {
    int n_signals;
    int64_t n_samples;
    size_t n_annotations;
    record_files files;
} record_check;

static int check_annotations(const ct_wfdb_annotation *ann, size_t n, int64_t n_samples,
                             const char *record, ct_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (ann[i].sample < 0 || (n_samples >= 0 && ann[i].sample > n_samples))
            return ct_error_set(err, CT_EFORMAT,
                                "record %s: %s.atr: annotation %zu is at sample %lld, outside the "
                                "record's %lld samples",
                                record, record, i, (long long)ann[i].sample, (long long)n_samples);
    return 0;
}

/* Verifies DIR/RECORD as a whole: the header, every signal against the
 * header's first values and checksums, the annotations. */
static int verify_record(const char *dir, const char *record, record_check *out, ct_error *err)
{
    memset(out, 0, sizeof *out);
    char path[PATH_MAX];
    int rc = join_path(path, sizeof path, dir, record, err);
    if (rc)
        return rc;
    ct_wfdb_header *h = malloc(sizeof *h);
    if (!h)
        return ct_error_set(err, CT_ENOMEM, "record %s: out of memory", record);
    rc = ct_wfdb_header_read(path, h, err);
    if (rc == 0)
        rc = header_files(h, record, &out->files, err);
    if (rc == 0) {
        ct_wfdb_signals sig;
        rc = ct_wfdb_signals_read(path, h, &sig, err);
        if (rc == 0) {
            out->n_signals = sig.n_signals;
            out->n_samples = sig.n_samples;
            ct_wfdb_signals_free(&sig);
        } else if (out->files.n == 1) {
            name_file(err, record, out->files.name[0]);
        }
    }
    if (rc == 0) {
        ct_wfdb_annotation *ann = NULL;
        size_t n = 0;
        rc = ct_wfdb_ann_read(path, "atr", &ann, &n, err);
        if (rc == 0)
            rc = check_annotations(ann, n, out->n_samples, record, err);
        free(ann);
        out->n_annotations = n;
    }
    free(h);
    return rc;
}

/* ---- downloading ------------------------------------------------------------------- */

typedef struct dl {
    const ct_cli *cli;
    const char *base_url;
    const char *dest;
    ct_client *client;
    ct_progress progress;
    const char *record;   /* being downloaded, for messages */
    const char *file;
    int retries;          /* for the summary of the current record */
    int resumes;
    int restarts;
    int64_t bytes;
} dl;

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    dl *d = ctx;
    d->progress.total = total;
    ct_progress_update(&d->progress, done);
}

static void on_retry(void *ctx, int attempt, long wait_ms, const char *reason)
{
    dl *d = ctx;
    d->retries++;
    ct_progress_finish(&d->progress);
    if (!d->cli->quiet)
        fprintf(stderr, "cardiotwin " CMD ": record %s: %s: %s; attempt %d in %ld ms\n", d->record,
                d->file, reason, attempt, wait_ms);
}

typedef struct verify_ctx {
    const char *record;
    const char *file;
} verify_ctx;

static int verify_header_part(void *ctx, const char *part_path, ct_error *err)
{
    const verify_ctx *v = ctx;
    char *text;
    size_t len;
    int rc = read_small_file(part_path, CT_WFDB_MAX_HEADER_BYTES, &text, &len, err);
    if (rc)
        return rc;
    ct_wfdb_header *h = malloc(sizeof *h);
    if (!h) {
        free(text);
        return ct_error_set(err, CT_ENOMEM, "record %s: out of memory", v->record);
    }
    rc = ct_wfdb_header_parse(text, len, v->record, h, err);
    free(text);
    if (rc == 0) {
        record_files rf;
        rc = header_files(h, v->record, &rf, err);
    }
    free(h);
    return rc;
}

static int verify_annotation_part(void *ctx, const char *part_path, ct_error *err)
{
    const verify_ctx *v = ctx;
    char *buf;
    size_t len;
    int rc = read_small_file(part_path, MAX_ANN_DOWNLOAD_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    ct_wfdb_annotation *ann = NULL;
    size_t n = 0;
    char name[RECORD_NAME_MAX * 2 + 32];
    snprintf(name, sizeof name, "record %s: %s", v->record, v->file);
    rc = ct_wfdb_ann_parse((const uint8_t *)buf, len, name, &ann, &n, err);
    free(buf);
    free(ann);
    return rc;
}

/* Downloads one file into the staging folder unless a whole copy is there. */
static int fetch(dl *d, const char *stage, const char *file, int64_t max_bytes,
                 ct_client_verify_fn verify, ct_error *err)
{
    char dest[PATH_MAX];
    int rc = join_path(dest, sizeof dest, stage, file, err);
    if (rc)
        return rc;
    if (exists(dest))
        return 0; /* fetched by an earlier run; the record check covers it */
    char url[CT_CLIENT_MAX_URL];
    rc = ct_client_url_join(d->base_url, file, url, sizeof url, err);
    if (rc)
        return rc;
    d->file = file;
    ct_progress_start(&d->progress, d->cli, file, -1);
    verify_ctx v = {d->record, file};
    ct_client_result res;
    rc = ct_client_download(d->client, url, dest, max_bytes, verify, &v, &res, err);
    ct_progress_finish(&d->progress);
    if (rc)
        name_file(err, d->record, file);
    d->resumes += res.resumed;
    d->restarts += res.restarted;
    if (rc == 0)
        d->bytes += res.bytes;
    return rc;
}

/* Removes the staging folder and what is in it (only plain files: nothing
 * else is ever put there). */
static void remove_staging(const char *stage)
{
    DIR *dir = opendir(stage);
    if (dir) {
        struct dirent *e;
        int n = 0;
        char path[PATH_MAX];
        while ((e = readdir(dir)) != NULL && n++ < MAX_STAGING_ENTRIES) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if ((size_t)snprintf(path, sizeof path, "%s/%s", stage, e->d_name) < sizeof path)
                unlink(path);
        }
        closedir(dir);
    }
    rmdir(stage);
}

/* 1 when the staging folder holds a .part file worth resuming. */
static int staging_has_part(const char *stage)
{
    DIR *dir = opendir(stage);
    if (!dir)
        return 0;
    struct dirent *e;
    int found = 0, n = 0;
    while (!found && (e = readdir(dir)) != NULL && n++ < MAX_STAGING_ENTRIES) {
        size_t len = strlen(e->d_name);
        found = len > 5 && strcmp(e->d_name + len - 5, ".part") == 0;
    }
    closedir(dir);
    return found;
}

/* Moves the verified files from the staging folder into DEST: signals and
 * annotations first, the header last, so that a header in DEST always means
 * the whole record is there. */
static int move_into_place(const dl *d, const char *stage, const record_check *chk,
                           const char *record, ct_error *err)
{
    char names[CT_WFDB_MAX_SIGNALS + 2][256];
    int n = 0;
    for (int i = 0; i < chk->files.n; i++)
        snprintf(names[n++], sizeof names[0], "%s", chk->files.name[i]);
    snprintf(names[n++], sizeof names[0], "%s.atr", record);
    snprintf(names[n++], sizeof names[0], "%s.hea", record);
    for (int i = 0; i < n; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        int rc = join_path(from, sizeof from, stage, names[i], err);
        if (rc == 0)
            rc = join_path(to, sizeof to, d->dest, names[i], err);
        if (rc)
            return rc;
        if (rename(from, to) != 0)
            return ct_error_set(err, CT_EIO, "record %s: cannot move %s to %s: %s", record, from, to,
                                strerror(errno));
    }
    sync_dir(d->dest);
    return 0;
}

/* Returns 0 and prints the summary, or fills err. */
static int download_record(dl *d, const char *record, ct_error *err)
{
    d->record = record;
    d->retries = 0;
    d->resumes = 0;
    d->restarts = 0;
    d->bytes = 0;

    char hea_name[RECORD_NAME_MAX + 8], atr_name[RECORD_NAME_MAX + 8], final_hea[PATH_MAX];
    snprintf(hea_name, sizeof hea_name, "%s.hea", record);
    snprintf(atr_name, sizeof atr_name, "%s.atr", record);
    int rc = join_path(final_hea, sizeof final_hea, d->dest, hea_name, err);
    if (rc)
        return rc;

    record_check chk;
    if (exists(final_hea)) {
        ct_error verr = {0};
        if (verify_record(d->dest, record, &chk, &verr) == 0) {
            if (!d->cli->quiet)
                printf("%s: already present, verified\n", record);
            return 0;
        }
        if (!d->cli->quiet)
            fprintf(stderr, "cardiotwin " CMD ": record %s: the copy in %s does not verify (%s); "
                            "downloading it again\n", record, d->dest, verr.msg);
    }

    char stage[PATH_MAX], lock_path[PATH_MAX];
    char stage_name[RECORD_NAME_MAX + 16];
    snprintf(stage_name, sizeof stage_name, ".partial-%s", record);
    rc = join_path(stage, sizeof stage, d->dest, stage_name, err);
    if (rc == 0)
        rc = join_path(lock_path, sizeof lock_path, stage, ".lock", err);
    if (rc)
        return rc;
    if (mkdir(stage, 0755) != 0 && errno != EEXIST)
        return ct_error_set(err, CT_EIO, "record %s: cannot create %s: %s", record, stage, strerror(errno));
    struct stat st;
    if (lstat(stage, &st) != 0 || !S_ISDIR(st.st_mode))
        return ct_error_set(err, CT_EIO, "record %s: %s is not a folder", record, stage);
    /* Two runs resuming the same .part files would interleave their bytes. */
    int lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock_fd < 0)
        return ct_error_set(err, CT_EIO, "record %s: cannot open %s: %s", record, lock_path,
                            strerror(errno));
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(lock_fd);
        return ct_error_set(err, CT_EEXIST, "record %s: another download of it into %s is running",
                            record, d->dest);
    }

    rc = fetch(d, stage, hea_name, CT_WFDB_MAX_HEADER_BYTES, verify_header_part, err);
    ct_wfdb_header *h = NULL;
    record_files rf;
    memset(&rf, 0, sizeof rf);
    if (rc == 0) {
        char path[PATH_MAX];
        h = malloc(sizeof *h);
        if (!h)
            rc = ct_error_set(err, CT_ENOMEM, "record %s: out of memory", record);
        if (rc == 0)
            rc = join_path(path, sizeof path, stage, record, err);
        if (rc == 0)
            rc = ct_wfdb_header_read(path, h, err);
        if (rc == 0)
            rc = header_files(h, record, &rf, err);
    }
    for (int i = 0; rc == 0 && i < rf.n; i++)
        rc = fetch(d, stage, rf.name[i], rf.max_bytes[i], NULL, err);
    if (rc == 0)
        rc = fetch(d, stage, atr_name, MAX_ANN_DOWNLOAD_BYTES, verify_annotation_part, err);
    free(h);
    int fetched = rc == 0;
    if (rc == 0)
        rc = verify_record(stage, record, &chk, err);
    if (rc == 0)
        rc = move_into_place(d, stage, &chk, record, err);

    if (rc != 0) {
        /* Network trouble keeps the .part files for the next run; anything
         * else (a refusal, a file that failed verification) starts over. */
        int keep = !fetched && (rc == CT_ENET) && staging_has_part(stage);
        if (!keep)
            remove_staging(stage);
        close(lock_fd);
        return rc;
    }
    remove_staging(stage);
    close(lock_fd);

    if (!d->cli->quiet) {
        printf("%s: downloaded and verified: %d files, %" PRId64 " bytes, %d signals of %" PRId64
               " samples, %zu annotations",
               record, chk.files.n + 2, d->bytes, chk.n_signals, chk.n_samples, chk.n_annotations);
        const char *sep = " (";
        if (d->retries) {
            printf("%s%d retr%s", sep, d->retries, d->retries == 1 ? "y" : "ies");
            sep = ", ";
        }
        if (d->resumes) {
            printf("%s%d resumed", sep, d->resumes);
            sep = ", ";
        }
        if (d->restarts) {
            printf("%s%d restarted from zero", sep, d->restarts);
            sep = ", ";
        }
        printf("%s\n", sep[0] == ',' ? ")" : "");
        fflush(stdout);
    }
    return 0;
}

/* ---- the command ------------------------------------------------------------------- */

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *e;
    errno = 0;
    long v = strtol(s, &e, 10);
    if (errno || e == s || *e || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int cmd_download(const ct_cli *cli, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"base-url", required_argument, NULL, 'u'},
        {"dest", required_argument, NULL, 'd'},
        {"retries", required_argument, NULL, 'r'},
        {"backoff-ms", required_argument, NULL, 'b'},
        {"ca-file", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    ct_client_options copt;
    ct_client_options_default(&copt);
    const char *base_url = DEFAULT_BASE_URL;
    const char *dest = getenv("CARDIOTWIN_MITDB");
    if (!dest || !*dest)
        dest = "mitdb";
    long v;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'u': base_url = optarg; break;
        case 'd':
            if (!*optarg)
                return ct_cli_usage(CMD, "--dest needs a folder");
            dest = optarg;
            break;
        case 'r':
            if (parse_int(optarg, 0, CT_CLIENT_MAX_RETRIES, &v) != 0)
                return ct_cli_usage(CMD, "--retries: '%s' is not a number from 0 to %d", optarg,
                                    CT_CLIENT_MAX_RETRIES);
            copt.max_retries = (int)v;
            break;
        case 'b':
            if (parse_int(optarg, 1, 30000, &v) != 0)
                return ct_cli_usage(CMD, "--backoff-ms: '%s' is not a number from 1 to 30000", optarg);
            copt.backoff_base_ms = v;
            break;
        case 'C':
            if (!*optarg)
                return ct_cli_usage(CMD, "--ca-file needs a file");
            copt.ca_file = optarg;
            break;
        case 'h': usage_download(stdout); return CT_EXIT_OK;
        case ':': return ct_cli_usage(CMD, "%s needs a value", argv[optind - 1]);
        default: return ct_cli_usage(CMD, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ct_cli_usage(CMD, "name at least one RECORD (e.g. 100)");
    for (int i = optind; i < argc; i++)
        if (!record_name_ok(argv[i]))
            return ct_cli_usage(CMD, "'%s' is not a record name (letters, digits and '_', at most %d)",
                                argv[i], RECORD_NAME_MAX);
    ct_error err = {0};
    char probe[CT_CLIENT_MAX_URL];
    if (ct_client_url_join(base_url, "x", probe, sizeof probe, &err) != 0)
        return ct_cli_usage(CMD, "--base-url: %s", err.msg);
    if (make_dirs(dest, &err) != 0)
        return ct_cli_fail(CMD, "%s", err.msg);

    dl d;
    memset(&d, 0, sizeof d);
    d.cli = cli;
    d.base_url = base_url;
    d.dest = dest;
    copt.on_progress = on_progress;
    copt.on_retry = on_retry;
    copt.cb_ctx = &d;
    /* The command is this process's only user of libcurl: it does the
     * process-wide set-up here, once, and undoes it before returning. */
    if (ct_client_global_init(&err) != 0)
        return ct_cli_fail(CMD, "%s", err.msg);
    if (ct_client_new(&copt, &d.client, &err) != 0) {
        ct_client_global_cleanup();
        return ct_cli_fail(CMD, "%s", err.msg);
    }
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        ct_error_clear(&err);
        d.file = NULL;
        if (download_record(&d, argv[i], &err) != 0) {
            ct_cli_fail(CMD, "%s", err.msg);
            failed++;
        }
    }
    ct_client_free(d.client);
    ct_client_global_cleanup();
    return failed ? CT_EXIT_FAIL : CT_EXIT_OK;
}

int ct_cmd_mitdb(const ct_cli *cli, int argc, char **argv)
{
    if (argc < 2)
        return ct_cli_usage("mitdb", "name a subcommand: download");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage_mitdb(stdout);
        return CT_EXIT_OK;
    }
    if (strcmp(sub, "download") == 0)
        return cmd_download(cli, argc - 1, argv + 1);
    return ct_cli_usage("mitdb", "unknown subcommand '%s'", sub);
}
