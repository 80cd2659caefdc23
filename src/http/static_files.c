/* http room, static files: the dashboard's pages (web/: index.html, js/,
 * css/, vendor/) served from the directory given as web_root, publicly,
 * since they hold no patient data (docs/dashboard.md).
 *
 * The one idea: a request path is never trusted to stay inside web_root
 * just because it looks clean. The router has already decoded it and
 * refused dot segments; here every segment that starts with '.' is
 * refused too (no .git, no editor backups), the file is resolved with
 * realpath() so that a symlink pointing out of the root is caught, and the
 * result must still lie under the resolved root. Only regular files up to
 * CT_HTTP_STATIC_MAX_BYTES are served.
 *
 * Files are read whole for each request: the few files the page needs are
 * small, and the ETag (inode, size and modification time, no read needed)
 * lets a browser that revalidates (Cache-Control: no-cache) get a 304
 * without the file being read. An in-memory cache would save the read and
 * cost a way to notice edits; not needed at a handful of viewers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dash_internal.h"

static const struct {
    const char *ext;
    const char *type;
} content_types[] = {
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"ico", "image/x-icon"},
    {"woff2", "font/woff2"},
    {"txt", "text/plain; charset=utf-8"},
};

static const char *content_type_for(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (dot)
        for (size_t i = 0; i < sizeof content_types / sizeof content_types[0]; i++)
            if (strcasecmp(dot + 1, content_types[i].ext) == 0)
                return content_types[i].type;
    return "application/octet-stream";
}

/* 1 when some segment of path starts with '.' or the path holds a
 * backslash or a control character: nothing the page asks for. */
static int path_suspicious(const char *path)
{
    for (const char *p = path; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '\\')
            return 1;
        if (c == '/' && p[1] == '.')
            return 1;
    }
    return 0;
}

/* Does If-None-Match (a list of entity tags, or "*") name etag? Weak
 * comparison, as RFC 9110 13.1.2 asks for this header. */
static int etag_matches(const char *inm, const char *etag)
{
    const char *strong = etag[0] == 'W' && etag[1] == '/' ? etag + 2 : etag;
    size_t n = strlen(strong);
    const char *p = inm;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/')
            p += 2;
        size_t len = strcspn(p, ",");
        while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len == n && memcmp(p, strong, n) == 0)
            return 1;
        p += strcspn(p, ",");
    }
    return 0;
}

int ct_http_handle_static(ct_http_req *req)
{
    const struct ct_http_dash *d = req->srv->dash;
    if (!d || !d->web_root[0])
        return ct_http_send_error(req, 404, "no resource at this path (this server has no dashboard)");
    const char *path = req->path;
    if (path_suspicious(path))
        return ct_http_send_error(req, 404, "no such file");
    char want[CT_HTTP_PATH_MAX];
    int w = snprintf(want, sizeof want, "%s%s", d->web_root, strcmp(path, "/") == 0 ? "/index.html" : path);
    if (w < 0 || (size_t)w >= sizeof want)
        return ct_http_send_error(req, 404, "no such file");
    char real[PATH_MAX];
    if (!realpath(want, real))
        return ct_http_send_error(req, 404, "no such file");
    /* Symlinks may point anywhere; what they resolve to must be ours. */
    if (strncmp(real, d->web_root, d->web_root_len) != 0 || real[d->web_root_len] != '/')
        return ct_http_send_error(req, 404, "no such file");
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0)
        return ct_http_send_error(req, 404, "no such file");
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ct_http_send_error(req, 404, "no such file");
    }
    if (sb.st_size > CT_HTTP_STATIC_MAX_BYTES) {
        close(fd);
        ct_http_log(req->srv, CT_HTTP_LOG_WARNING, "static file %s is %lld bytes, over the limit of %d: not served",
                    real, (long long)sb.st_size, CT_HTTP_STATIC_MAX_BYTES);
        return ct_http_send_error(req, 404, "no such file");
    }
    char etag[96];
    snprintf(etag, sizeof etag, "\"%llx-%llx-%llx.%lx\"", (unsigned long long)sb.st_ino,
             (unsigned long long)sb.st_size, (unsigned long long)sb.st_mtim.tv_sec,
             (unsigned long)sb.st_mtim.tv_nsec);
    ct_http_header hdr[] = {{"ETag", etag}};
    ct_http_resp r = {
        .status = 200,
        .content_type = content_type_for(real),
        .cache_control = "no-cache",
        .csp = CT_HTTP_DASH_CSP,
        .headers = hdr,
        .n_headers = 1,
    };
    const char *inm = mg_get_header(req->conn, "If-None-Match");
    if (inm && etag_matches(inm, etag)) {
        close(fd);
        r.status = 304;
        r.content_type = NULL;
        return ct_http_send(req, &r);
    }
    size_t size = (size_t)sb.st_size;
    char *body = malloc(size ? size : 1);
    if (!body) {
        close(fd);
        return ct_http_send_error(req, 503, "out of memory reading a static file; try again");
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, body + got, size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (got != size) {
        free(body);
        ct_http_log(req->srv, CT_HTTP_LOG_ERROR, "static file %s: read %zu of %zu bytes", real, got, size);
        return ct_http_send_error(req, 500, "the file could not be read");
    }
    r.body = body;
    r.body_len = size;
    int st = ct_http_send(req, &r);
    free(body);
    return st;
}
