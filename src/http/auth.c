/* http room, credentials: who a caller is and what they may do, decided
 * from the request alone. authorize() in router.c is the one caller of
 * ct_http_authenticate and the one place routes' scopes are compared with
 * the caller's; this file holds the pieces it uses.
 *
 * The one idea: today the only credential is one static bearer token, set
 * when the server starts (`cardiotwin serve --api-token-file`), which
 * stands for one trusted client with every scope. Only its SHA-256 is
 * kept, and a presented token is hashed and compared in constant time, so
 * neither its length nor its bytes leak through timing, and no copy of it
 * outlives ct_http_start. Tokens per user, roles and revocation replace
 * ct_http_authenticate's body later; handlers never change, because they
 * only read req->caller.
 *
 * Scopes follow SMART App Launch v2: "user/Observation.rs" grants read and
 * search on Observation. Routes ask for one permission each
 * ("user/Observation.r"). "user/" and "system/" scopes are treated alike
 * (both act with the caller's full authority); "patient/" scopes would need
 * a compartment check on every result and grant nothing yet. The SMART v1
 * forms ".read", ".write" and ".*" are read as "rs", "cud" and "cruds". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "http_internal.h"

#define STATIC_TOKEN_SCOPES "system/*.cruds"
#define STATIC_TOKEN_ROLE "system"

static int b64token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_' || c == '~' || c == '+' || c == '/';
}

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
static int token_syntax_ok(const char *t, size_t n)
{
    size_t i = 0;
    while (i < n && b64token_char(t[i]))
        i++;
    if (i == 0)
        return 0;
    while (i < n && t[i] == '=')
        i++;
    return i == n;
}

int ct_http_token_read_file(const char *path, char *buf, size_t cap, ct_error *err)
{
    if (!path || !buf || cap < CT_HTTP_TOKEN_MAX_LEN + 1)
        return ct_error_set(err, CT_EINVAL, "ct_http_token_read_file: missing argument");
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ct_error_set(err, CT_EIO, "token file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return ct_error_set(err, CT_EIO, "token file %s: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return ct_error_set(err, CT_EINVAL, "token file %s is not a regular file", path);
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return ct_error_set(err, CT_EINVAL,
                            "token file %s can be read or written by group or others (mode %03o); "
                            "chmod 600 it, and make a new token if others may have read it",
                            path, (unsigned)(sb.st_mode & 0777));
    }
    char tmp[CT_HTTP_TOKEN_MAX_LEN + 3];
    size_t n = 0;
    for (;;) {
        ssize_t r = read(fd, tmp + n, sizeof tmp - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            OPENSSL_cleanse(tmp, sizeof tmp);
            return ct_error_set(err, CT_EIO, "token file %s: %s", path, strerror(e));
        }
        if (r == 0 || (n += (size_t)r) == sizeof tmp)
            break;
    }
    close(fd);
    if (n > 0 && tmp[n - 1] == '\n')
        n--;
    if (n > 0 && tmp[n - 1] == '\r')
        n--;
    int rc = CT_OK;
    if (n == sizeof tmp - 1 || n > CT_HTTP_TOKEN_MAX_LEN)
        rc = ct_error_set(err, CT_ELIMIT, "token file %s: the token is longer than %d characters", path,
                          CT_HTTP_TOKEN_MAX_LEN);
    else if (n < CT_HTTP_TOKEN_MIN_LEN)
        rc = ct_error_set(err, CT_EINVAL,
                          "token file %s: the token has %zu characters, fewer than %d (make one with "
                          "'openssl rand -base64 32')",
                          path, n, CT_HTTP_TOKEN_MIN_LEN);
    else if (!token_syntax_ok(tmp, n))
        rc = ct_error_set(err, CT_EINVAL,
                          "token file %s: the token must be one line of A-Z a-z 0-9 - . _ ~ + / "
                          "followed by optional '=' (RFC 6750)",
                          path);
    if (rc == CT_OK) {
        memcpy(buf, tmp, n);
        buf[n] = '\0';
    }
    OPENSSL_cleanse(tmp, sizeof tmp);
    return rc;
}

static int sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;
    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

int ct_http_auth_init(ct_http_server *srv, const ct_http_options *opt, ct_error *err)
{
    const char *subject = opt->api_token_subject ? opt->api_token_subject : "api-token";
    size_t sl = strlen(subject);
    if (sl == 0 || sl >= sizeof srv->token_subject)
        return ct_error_set(err, CT_EINVAL, "token subject must be 1 to %zu characters",
                            sizeof srv->token_subject - 1);
    for (size_t i = 0; i < sl; i++)
        if ((unsigned char)subject[i] < 0x21 || subject[i] == 0x7f)
            return ct_error_set(err, CT_EINVAL, "token subject holds a space or control character");
    memcpy(srv->token_subject, subject, sl + 1);
    srv->opt.api_token_subject = srv->token_subject;
    srv->opt.api_token = NULL; /* the caller's string may go; the hash stays */
    switch (opt->auth_mode) {
    case CT_HTTP_AUTH_NONE:
        return CT_OK;
    case CT_HTTP_AUTH_STATIC_TOKEN: {
        const char *t = opt->api_token;
        size_t n = t ? strnlen(t, CT_HTTP_TOKEN_MAX_LEN + 1) : 0;
        if (n < CT_HTTP_TOKEN_MIN_LEN || n > CT_HTTP_TOKEN_MAX_LEN || !token_syntax_ok(t, n))
            return ct_error_set(err, CT_EINVAL, "the API token must be %d to %d characters of RFC 6750's "
                                "token alphabet", CT_HTTP_TOKEN_MIN_LEN, CT_HTTP_TOKEN_MAX_LEN);
        if (sha256(t, n, srv->token_sha256) != 0)
            return ct_error_set(err, CT_ENOMEM, "cannot hash the API token");
        return CT_OK;
    }
    }
    return ct_error_set(err, CT_EINVAL, "unknown authentication mode %d", (int)opt->auth_mode);
}

int ct_http_authenticate(ct_http_req *req)
{
    ct_http_caller *c = &req->caller;
    const char *h = mg_get_header(req->conn, "Authorization");
    if (!h)
        return 0;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return -1;
    const char *t = h + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    if (req->srv->opt.auth_mode != CT_HTTP_AUTH_STATIC_TOKEN || n == 0 || n > CT_HTTP_TOKEN_MAX_LEN)
        return -1;
    unsigned char hash[32];
    if (sha256(t, n, hash) != 0 || CRYPTO_memcmp(hash, req->srv->token_sha256, sizeof hash) != 0)
        return -1;
    c->authenticated = 1;
    snprintf(c->subject, sizeof c->subject, "%s", req->srv->token_subject);
    snprintf(c->role, sizeof c->role, "%s", STATIC_TOKEN_ROLE);
    snprintf(c->scopes, sizeof c->scopes, "%s", STATIC_TOKEN_SCOPES);
    return 1;
}

/* SMART permissions of a scope's suffix as a bit set of c r u d s. */
static unsigned perm_bits(const char *p, size_t n)
{
    if (n == 4 && memcmp(p, "read", 4) == 0)
        return 2u | 16u;
    if (n == 5 && memcmp(p, "write", 5) == 0)
        return 1u | 4u | 8u;
    if (n == 1 && p[0] == '*')
        return 31u;
    static const char order[] = "cruds";
    unsigned bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        /* SMART v2 writes the letters in this order, each at most once. */
        while (k < 5 && order[k] != p[i])
            k++;
        if (k == 5)
            return 0;
        bits |= 1u << k;
        k++;
    }
    return bits;
}

typedef struct scope {
    const char *ctx;
    size_t ctx_len;
    const char *type;
    size_t type_len;
    unsigned perms;
} scope;

static int scope_parse(const char *s, size_t n, scope *out)
{
    const char *slash = memchr(s, '/', n);
    if (!slash)
        return -1;
    const char *dot = memchr(slash, '.', (size_t)(s + n - slash));
    if (!dot)
        return -1;
    out->ctx = s;
    out->ctx_len = (size_t)(slash - s);
    out->type = slash + 1;
    out->type_len = (size_t)(dot - slash - 1);
    /* SMART v2 may add a query after '?' (finer grants); none is granted yet. */
    const char *q = memchr(dot, '?', (size_t)(s + n - dot));
    out->perms = perm_bits(dot + 1, (size_t)((q ? q : s + n) - dot - 1));
    return out->type_len && out->perms ? 0 : -1;
}

static int ctx_full(const scope *s)
{
    return (s->ctx_len == 4 && memcmp(s->ctx, "user", 4) == 0) ||
           (s->ctx_len == 6 && memcmp(s->ctx, "system", 6) == 0);
}

int ct_http_scope_grants(const char *granted, const char *required)
{
    if (!granted || !required)
        return 0;
    scope need;
    if (scope_parse(required, strlen(required), &need) != 0)
        return 0;
    for (const char *p = granted; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        scope have;
        if (n && scope_parse(p, n, &have) == 0 && ctx_full(&have) && ctx_full(&need) &&
            ((have.type_len == 1 && have.type[0] == '*') ||
             (have.type_len == need.type_len && memcmp(have.type, need.type, need.type_len) == 0)) &&
            (have.perms & need.perms) == need.perms)
            return 1;
        p += n;
    }
    return 0;
}
