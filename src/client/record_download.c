/* client: downloading a whole WFDB record. The one idea: a record is
 * downloaded into a staging folder beside its destination,
 * DEST/.partial-RECORD/, checked there as a whole (record_verify.c), and only
 * then renamed file by file into DEST, header last. So nothing unverified
 * ever sits under DEST/RECORD.*, and a record whose header is in DEST has all
 * its other files there too. The staging folder keeps .part files after a
 * network failure, so the next call resumes them; after a verification
 * failure or a refusal it is removed. A lock file inside it (flock) keeps two
 * processes from appending to the same .part files.
 *
 * Files are fetched one after the other on one client, so that the
 * connection is reused; a record is three files for MIT-BIH, and parallel
 * transfers would not pay for their complexity. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client_internal.h"
#include "record_internal.h"

int ct_client_make_dirs(const char *path, ct_error *err)
{
    if (!path || !*path)
        return ct_error_set(err, CT_EINVAL, "no folder named");
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

void ct_client_sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd); /* best effort: the renames are already done */
        close(fd);
    }
}

void ct_client_staging_remove(const char *stage)
{
    DIR *dir = opendir(stage);
    if (dir) {
        struct dirent *e;
        int n = 0;
        char path[PATH_MAX];
        while ((e = readdir(dir)) != NULL && n++ < CT_CLIENT_MAX_STAGING_ENTRIES) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if ((size_t)snprintf(path, sizeof path, "%s/%s", stage, e->d_name) < sizeof path)
                unlink(path);
        }
        closedir(dir);
    }
    rmdir(stage);
}

int ct_client_staging_has_part(const char *stage)
{
    DIR *dir = opendir(stage);
    if (!dir)
        return 0;
    struct dirent *e;
    int found = 0, n = 0;
    while (!found && (e = readdir(dir)) != NULL && n++ < CT_CLIENT_MAX_STAGING_ENTRIES) {
        size_t len = strlen(e->d_name);
        found = len > 5 && strcmp(e->d_name + len - 5, ".part") == 0;
    }
    closedir(dir);
    return found;
}

/* ---- one record --------------------------------------------------------------- */

/* One record download, and the client's own hooks while ours stand in. */
typedef struct record_dl {
    ct_client *c;
    const char *base_url;
    const char *dest;
    const char *record;
    const char *file;                 /* being fetched, for the hooks */
    const ct_client_record_callbacks *cb;
    ct_client_record_result *res;
    ct_client_progress_fn saved_progress;
    ct_client_retry_fn saved_retry;
    void *saved_ctx;
} record_dl;

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    record_dl *d = ctx;
    if (d->cb && d->cb->file_progress)
        d->cb->file_progress(d->cb->ctx, d->record, d->file, done, total);
    if (d->saved_progress)
        d->saved_progress(d->saved_ctx, done, total);
}

static void on_retry(void *ctx, int attempt, long wait_ms, const char *reason)
{
    record_dl *d = ctx;
    d->res->retries++;
    if (d->cb && d->cb->retry)
        d->cb->retry(d->cb->ctx, d->record, d->file, attempt, wait_ms, reason);
    if (d->saved_retry)
        d->saved_retry(d->saved_ctx, attempt, wait_ms, reason);
}

/* Downloads one file into the staging folder unless a whole copy is there. */
static int fetch(record_dl *d, const char *stage, const char *file, int64_t max_bytes,
                 ct_client_verify_fn verify, ct_error *err)
{
    char dest[PATH_MAX];
    int rc = ct_client_join_path(dest, sizeof dest, stage, file, err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(dest, &st) == 0)
        return 0; /* fetched by an earlier call; the record check covers it */
    char url[CT_CLIENT_MAX_URL];
    rc = ct_client_url_join(d->base_url, file, url, sizeof url, err);
    if (rc)
        return rc;
    d->file = file;
    if (d->cb && d->cb->file_begin)
        d->cb->file_begin(d->cb->ctx, d->record, file);
    ct_client_part_ctx v = {d->record, file};
    ct_client_result res;
    rc = ct_client_download(d->c, url, dest, max_bytes, verify, &v, &res, err);
    if (d->cb && d->cb->file_end)
        d->cb->file_end(d->cb->ctx, d->record, file);
    if (rc)
        ct_client_name_file(err, d->record, file);
    d->res->resumed += res.resumed;
    d->res->restarted += res.restarted;
    if (rc == 0)
        d->res->bytes += res.bytes;
    return rc;
}

/* Moves the verified files from the staging folder into DEST: signals and
 * annotations first, the header last, so that a header in DEST always means
 * the whole record is there. */
static int move_into_place(const record_dl *d, const char *stage, const ct_client_record_check *chk,
                           ct_error *err)
{
    char names[CT_WFDB_MAX_SIGNALS + 2][256];
    int n = 0;
    for (int i = 0; i < chk->files.n; i++)
        snprintf(names[n++], sizeof names[0], "%s", chk->files.name[i]);
    snprintf(names[n++], sizeof names[0], "%s.atr", d->record);
    snprintf(names[n++], sizeof names[0], "%s.hea", d->record);
    for (int i = 0; i < n; i++) {
        char from[PATH_MAX], to[PATH_MAX];
        int rc = ct_client_join_path(from, sizeof from, stage, names[i], err);
        if (rc == 0)
            rc = ct_client_join_path(to, sizeof to, d->dest, names[i], err);
        if (rc)
            return rc;
        if (rename(from, to) != 0)
            return ct_error_set(err, CT_EIO, "record %s: cannot move %s to %s: %s", d->record, from,
                                to, strerror(errno));
    }
    ct_client_sync_dir(d->dest);
    return 0;
}

static void fill_result(ct_client_record_result *res, const ct_client_record_check *chk)
{
    res->n_files = chk->files.n + 2;
    res->n_signals = chk->n_signals;
    res->n_samples = chk->n_samples;
    res->n_annotations = chk->n_annotations;
}

/* Fetches the record's files into the staging folder, which the caller holds
 * locked; on success chk describes the verified record. */
static int fetch_all(record_dl *d, const char *stage, const char *hea_name, const char *atr_name,
                     ct_error *err)
{
    int rc = fetch(d, stage, hea_name, CT_WFDB_MAX_HEADER_BYTES, ct_client_verify_header_part, err);
    if (rc)
        return rc;
    /* Parsed again from its staging name: an earlier call may have fetched
     * it, and then no verify hook ran in this one. */
    ct_wfdb_header *h = malloc(sizeof *h);
    if (!h)
        return ct_error_set(err, CT_ENOMEM, "record %s: out of memory", d->record);
    ct_client_record_files rf;
    memset(&rf, 0, sizeof rf);
    char path[PATH_MAX];
    rc = ct_client_join_path(path, sizeof path, stage, d->record, err);
    if (rc == 0)
        rc = ct_wfdb_header_read(path, h, err);
    if (rc == 0)
        rc = ct_client_header_files(h, d->record, &rf, err);
    free(h);
    for (int i = 0; rc == 0 && i < rf.n; i++)
        rc = fetch(d, stage, rf.name[i], rf.max_bytes[i], NULL, err);
    if (rc == 0)
        rc = fetch(d, stage, atr_name, CT_CLIENT_MAX_ANN_DOWNLOAD_BYTES,
                   ct_client_verify_annotation_part, err);
    return rc;
}

static int download_record(record_dl *d, ct_error *err)
{
    const char *record = d->record;
    ct_client_record_result *res = d->res;
    char hea_name[CT_CLIENT_RECORD_NAME_MAX + 8], atr_name[CT_CLIENT_RECORD_NAME_MAX + 8];
    char final_hea[PATH_MAX];
    snprintf(hea_name, sizeof hea_name, "%s.hea", record);
    snprintf(atr_name, sizeof atr_name, "%s.atr", record);
    int rc = ct_client_join_path(final_hea, sizeof final_hea, d->dest, hea_name, err);
    if (rc)
        return rc;

    ct_client_record_check chk;
    struct stat st;
    int replacing = 0;
    if (stat(final_hea, &st) == 0) {
        ct_error verr = {0};
        if (ct_client_verify_record(d->dest, record, &chk, &verr) == 0) {
            fill_result(res, &chk);
            res->status = CT_CLIENT_RECORD_PRESENT;
            return 0;
        }
        replacing = 1;
        snprintf(res->unverified, sizeof res->unverified, "%s", verr.msg);
        if (d->cb && d->cb->replacing)
            d->cb->replacing(d->cb->ctx, record, verr.msg);
    }

    char stage[PATH_MAX], lock_path[PATH_MAX];
    char stage_name[CT_CLIENT_RECORD_NAME_MAX + 16];
    snprintf(stage_name, sizeof stage_name, ".partial-%s", record);
    rc = ct_client_join_path(stage, sizeof stage, d->dest, stage_name, err);
    if (rc == 0)
        rc = ct_client_join_path(lock_path, sizeof lock_path, stage, ".lock", err);
    if (rc)
        return rc;
    if (mkdir(stage, 0755) != 0 && errno != EEXIST)
        return ct_error_set(err, CT_EIO, "record %s: cannot create %s: %s", record, stage,
                            strerror(errno));
    /* lstat: a symbolic link planted under the staging name is not followed. */
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

    rc = fetch_all(d, stage, hea_name, atr_name, err);
    int fetched = rc == 0;
    if (rc == 0)
        rc = ct_client_verify_record(stage, record, &chk, err);
    if (rc == 0)
        rc = move_into_place(d, stage, &chk, err);

    if (rc != 0) {
        /* Network trouble keeps the .part files for the next call; anything
         * else (a refusal, a file that failed verification) starts over. */
        int keep = !fetched && rc == CT_ENET && ct_client_staging_has_part(stage);
        if (!keep)
            ct_client_staging_remove(stage);
        close(lock_fd);
        return rc;
    }
    /* The lock is held until the folder is gone, so that no other run can
     * start filling it in between. */
    ct_client_staging_remove(stage);
    close(lock_fd);
    fill_result(res, &chk);
    res->status = replacing ? CT_CLIENT_RECORD_REPLACED : CT_CLIENT_RECORD_DOWNLOADED;
    return 0;
}

int ct_client_download_record(ct_client *c, const char *base_url, const char *dest_dir,
                              const char *record, const ct_client_record_callbacks *cb,
                              ct_client_record_result *res, ct_error *err)
{
    ct_client_record_result local;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    if (!c || !base_url || !dest_dir || !*dest_dir)
        return ct_error_set(err, CT_EINVAL, "record download: no client, base URL or destination");
    if (!ct_client_record_name_ok(record))
        return ct_error_set(err, CT_EINVAL,
                            "'%s' is not a record name (letters, digits and '_', at most %d)",
                            record ? record : "", CT_CLIENT_RECORD_NAME_MAX);
    /* A bad base URL is refused before anything is created. */
    char url[CT_CLIENT_MAX_URL];
    char hea_name[CT_CLIENT_RECORD_NAME_MAX + 8];
    snprintf(hea_name, sizeof hea_name, "%s.hea", record);
    int rc = ct_client_url_join(base_url, hea_name, url, sizeof url, err);
    if (rc) {
        ct_client_name_file(err, record, hea_name);
        return rc;
    }

    record_dl d = {.c = c, .base_url = base_url, .dest = dest_dir, .record = record, .cb = cb,
                   .res = res, .saved_progress = c->opt.on_progress,
                   .saved_retry = c->opt.on_retry, .saved_ctx = c->opt.cb_ctx};
    /* Our hooks stand in for the client's for the length of the call, since
     * only they know which file a transfer is for; they call the client's own
     * in turn. The client is single-threaded, so nobody else sees the swap. */
    c->opt.on_progress = on_progress;
    c->opt.on_retry = on_retry;
    c->opt.cb_ctx = &d;
    rc = download_record(&d, err);
    c->opt.on_progress = d.saved_progress;
    c->opt.on_retry = d.saved_retry;
    c->opt.cb_ctx = d.saved_ctx;
    if (rc)
        res->status = CT_CLIENT_RECORD_FAILED;
    return rc;
}
