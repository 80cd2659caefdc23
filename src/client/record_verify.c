/* client: the checks a downloaded WFDB record must pass before it may appear
 * under its final names. The one idea: a header fetched from a server is
 * untrusted input that tells us which other files to fetch and create, so
 * every name it gives is checked as one plain file name and every file size
 * is bounded by what the header itself promises; then the record is checked
 * as a whole by the wfdb room (every sample decoded against the header's
 * first values and checksums, the annotations parsed and inside the record).
 * Nothing here touches the network. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "record_internal.h"

int ct_client_record_name_ok(const char *record)
{
    if (!record)
        return 0;
    size_t n = strlen(record);
    if (n == 0 || n > CT_CLIENT_RECORD_NAME_MAX)
        return 0;
    for (; *record; record++) {
        char ch = *record;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return 0;
    }
    return 1;
}

int ct_client_file_name_ok(const char *f)
{
    size_t n = strlen(f);
    if (n == 0 || n > CT_CLIENT_FILE_NAME_MAX || f[0] == '.' ||
        (n >= 5 && strcmp(f + n - 5, ".part") == 0))
        return 0;
    for (; *f; f++) {
        char ch = *f;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.' || ch == '-'))
            return 0;
    }
    return 1;
}

int ct_client_join_path(char *out, size_t cap, const char *dir, const char *name, ct_error *err)
{
    if ((size_t)snprintf(out, cap, "%s/%s", dir, name) >= cap)
        return ct_error_set(err, CT_ELIMIT, "path %s/%s is too long", dir, name);
    return 0;
}

int ct_client_read_small_file(const char *path, int64_t max_bytes, char **buf, size_t *len,
                              ct_error *err)
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

int ct_client_header_files(const ct_wfdb_header *h, const char *record, ct_client_record_files *rf,
                           ct_error *err)
{
    memset(rf, 0, sizeof *rf);
    char hea[CT_CLIENT_RECORD_NAME_MAX + 8], atr[CT_CLIENT_RECORD_NAME_MAX + 8];
    snprintf(hea, sizeof hea, "%s.hea", record);
    snprintf(atr, sizeof atr, "%s.atr", record);
    if (h->n_signals < 1)
        return ct_error_set(err, CT_EFORMAT, "record %s: %s has no signals", record, hea);
    for (int s = 0; s < h->n_signals && s < CT_WFDB_MAX_SIGNALS; s++) {
        const ct_wfdb_signal *sig = &h->signals[s];
        if (!ct_client_file_name_ok(sig->file_name) || strcmp(sig->file_name, hea) == 0 ||
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

void ct_client_name_file(ct_error *err, const char *record, const char *file)
{
    if (!err)
        return;
    char lead[CT_CLIENT_RECORD_NAME_MAX + 16];
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

int ct_client_check_annotations(const ct_wfdb_annotation *ann, size_t n, int64_t n_samples,
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

int ct_client_verify_record(const char *dir, const char *record, ct_client_record_check *out,
                            ct_error *err)
{
    memset(out, 0, sizeof *out);
    char path[PATH_MAX];
    int rc = ct_client_join_path(path, sizeof path, dir, record, err);
    if (rc)
        return rc;
    ct_wfdb_header *h = malloc(sizeof *h);
    if (!h)
        return ct_error_set(err, CT_ENOMEM, "record %s: out of memory", record);
    rc = ct_wfdb_header_read(path, h, err);
    if (rc == 0)
        rc = ct_client_header_files(h, record, &out->files, err);
    if (rc == 0) {
        ct_wfdb_signals sig;
        rc = ct_wfdb_signals_read(path, h, &sig, err);
        if (rc == 0) {
            out->n_signals = sig.n_signals;
            out->n_samples = sig.n_samples;
            ct_wfdb_signals_free(&sig);
        } else if (out->files.n == 1) {
            ct_client_name_file(err, record, out->files.name[0]);
        }
    }
    if (rc == 0) {
        ct_wfdb_annotation *ann = NULL;
        size_t n = 0;
        rc = ct_wfdb_ann_read(path, "atr", &ann, &n, err);
        if (rc == 0)
            rc = ct_client_check_annotations(ann, n, out->n_samples, record, err);
        free(ann);
        out->n_annotations = n;
    }
    free(h);
    return rc;
}

int ct_client_verify_header_part(void *ctx, const char *part_path, ct_error *err)
{
    const ct_client_part_ctx *v = ctx;
    char *text;
    size_t len;
    int rc = ct_client_read_small_file(part_path, CT_WFDB_MAX_HEADER_BYTES, &text, &len, err);
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
        ct_client_record_files rf;
        rc = ct_client_header_files(h, v->record, &rf, err);
    }
    free(h);
    return rc;
}

int ct_client_verify_annotation_part(void *ctx, const char *part_path, ct_error *err)
{
    const ct_client_part_ctx *v = ctx;
    char *buf;
    size_t len;
    int rc = ct_client_read_small_file(part_path, CT_CLIENT_MAX_ANN_DOWNLOAD_BYTES, &buf, &len, err);
    if (rc)
        return rc;
    ct_wfdb_annotation *ann = NULL;
    size_t n = 0;
    char name[CT_CLIENT_RECORD_NAME_MAX * 2 + 32];
    snprintf(name, sizeof name, "record %s: %s", v->record, v->file);
    rc = ct_wfdb_ann_parse((const uint8_t *)buf, len, name, &ann, &n, err);
    free(buf);
    free(ann);
    return rc;
}
