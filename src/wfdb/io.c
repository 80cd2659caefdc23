/* wfdb room, file access: every file of a record is found beside its header
 * and read whole, after its size has been checked against a limit, so that
 * no size taken from outside ever reaches malloc unchecked. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *ct_wfdb_io_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int ct_wfdb_io_sibling(char *out, size_t cap, const char *record_path, const char *name,
                       const char *suffix)
{
    size_t dir_len = (size_t)(ct_wfdb_io_basename(record_path) - record_path);
    int n = snprintf(out, cap, "%.*s%s%s", (int)dir_len, record_path, name, suffix);
    if (n < 0 || (size_t)n >= cap)
        return CT_EINVAL;
    return 0;
}

int ct_wfdb_io_read_file(const char *path, const char *who, int64_t max_bytes, uint8_t **buf,
                         size_t *len, ct_error *err)
{
    *buf = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return ct_error_set(err, e == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: cannot open %s: %s",
                            who, path, strerror(e));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        int e = errno;
        fclose(f);
        return ct_error_set(err, CT_EIO, "%s: cannot stat %s: %s", who, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return ct_error_set(err, CT_EFORMAT, "%s: %s is not a regular file", who, path);
    }
    if ((int64_t)st.st_size > max_bytes) {
        fclose(f);
        return ct_error_set(err, CT_ELIMIT, "%s: %s is %lld bytes, more than the %lld allowed",
                            who, path, (long long)st.st_size, (long long)max_bytes);
    }
    size_t size = (size_t)st.st_size;
    uint8_t *data = malloc(size ? size : 1);
    if (!data) {
        fclose(f);
        return ct_error_set(err, CT_ENOMEM, "%s: no memory for %zu bytes of %s", who, size, path);
    }
    size_t got = size ? fread(data, 1, size, f) : 0;
    int read_failed = ferror(f);
    fclose(f);
    if (read_failed || got != size) {
        free(data);
        return ct_error_set(err, CT_EIO, "%s: read %zu of %zu bytes of %s", who, got, size, path);
    }
    *buf = data;
    *len = size;
    return 0;
}
