/* http: cardiotwin's HTTPS server. It wraps civetweb (compiled into the
 * project, see docs/http.md), speaks TLS 1.2 and 1.3 only and never plain
 * HTTP, routes each request through one table (method + path -> handler) so
 * that every handler is reached the same way, and reports what it does
 * through caller-supplied callbacks: the room never prints.
 *
 * Without a certificate of its own the server generates a self-signed one
 * (EC P-256) in a state directory on first start and reuses it afterwards.
 *
 * The on_access and on_log callbacks run on civetweb's worker threads,
 * possibly several at once: they must be thread-safe and quick. */
#ifndef CARDIOTWIN_HTTP_H
#define CARDIOTWIN_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/error.h"

#define CT_HTTP_DEFAULT_BIND "127.0.0.1"
#define CT_HTTP_DEFAULT_PORT 8443
#define CT_HTTP_DEFAULT_THREADS 16
#define CT_HTTP_MAX_THREADS 256
/* A FHIR Bundle carrying 30 minutes of two-lead ECG at 360 Hz as text is
 * about 4 MB; 16 MiB leaves room without letting one request take the box. */
#define CT_HTTP_DEFAULT_MAX_BODY_BYTES (16LL * 1024 * 1024)
#define CT_HTTP_MAX_BODY_BYTES_LIMIT (1024LL * 1024 * 1024)

/* Names of the generated certificate and key inside the state directory. */
#define CT_HTTP_CERT_FILE "cardiotwin-cert.pem"
#define CT_HTTP_KEY_FILE "cardiotwin-key.pem"
#define CT_HTTP_PATH_MAX 4096

/* Validity of a generated certificate: the longest that common TLS clients
 * accept for a server certificate they are told to trust directly. */
#define CT_HTTP_SELF_SIGNED_DAYS 825

typedef struct ct_http_server ct_http_server;

/* One line of the access log, handed to on_access after each routed request.
 * The query string is left out on purpose: FHIR searches carry patient
 * identifiers there, and access logs travel further than the database. */
typedef struct ct_http_access {
    const char *remote_addr;   /* "127.0.0.1", "::1" */
    int remote_port;
    const char *method;        /* "GET" */
    const char *path;          /* decoded path, no query string */
    int status;                /* HTTP status sent */
    int64_t body_bytes;        /* response body bytes sent (0 for HEAD) */
    int64_t duration_us;       /* from routing to the last byte written */
    const char *subject;       /* the authenticated caller, "-" when none */
} ct_http_access;

typedef enum ct_http_log_level {
    CT_HTTP_LOG_ERROR,    /* something failed: a handshake, a write, set-up */
    CT_HTTP_LOG_WARNING,  /* works, but someone should look (expiring certificate) */
    CT_HTTP_LOG_INFO,     /* what an operator wants to know once (certificate in use) */
} ct_http_log_level;

/* Who may call the API. Every route that names a scope (all of /fhir but
 * /fhir/metadata) refuses a caller without credentials, so the API is never
 * open; the modes differ in which credentials exist. */
typedef enum ct_http_auth_mode {
    CT_HTTP_AUTH_NONE = 0,       /* none: every scoped route answers 401 (the default) */
    CT_HTTP_AUTH_STATIC_TOKEN    /* one bearer token given at start grants every scope
                                  * (SMART "system", any type, cruds):
                                  * for a single trusted client */
} ct_http_auth_mode;

/* A static token must be long enough not to be guessed: 32 random base64
 * characters carry 192 bits (`openssl rand -base64 32` makes 44). */
#define CT_HTTP_TOKEN_MIN_LEN 32
#define CT_HTTP_TOKEN_MAX_LEN 512

typedef void (*ct_http_access_fn)(void *user, const ct_http_access *rec);
/* msg is one line without a trailing newline; it never holds key material. */
typedef void (*ct_http_log_fn)(void *user, ct_http_log_level level, const char *msg);

typedef struct ct_http_options {
    const char *bind_addr;     /* IPv4 or IPv6 literal ("::1" or "[::1]"); NULL = CT_HTTP_DEFAULT_BIND */
    int port;                  /* 0..65535; 0 lets the system choose (see ct_http_port) */
    const char *cert_path;     /* PEM certificate chain (leaf first), or NULL ... */
    const char *key_path;      /* ... with its PEM private key; both or neither */
    const char *state_dir;     /* where the self-signed pair lives when cert_path is NULL */
    int threads;               /* worker threads, 1..CT_HTTP_MAX_THREADS */
    int64_t max_body_bytes;    /* larger request bodies get 413, 1..CT_HTTP_MAX_BODY_BYTES_LIMIT */
    const char *db_path;       /* SQLite database of the FHIR API (opened and migrated at
                                * start); NULL: /fhir answers 503 */
    ct_http_auth_mode auth_mode;
    const char *api_token;     /* CT_HTTP_AUTH_STATIC_TOKEN: the token (copied; only its
                                * SHA-256 is kept) */
    const char *api_token_subject; /* who the token stands for in the audit and access
                                    * logs; NULL: "api-token" */
    ct_http_access_fn on_access; /* may be NULL */
    ct_http_log_fn on_log;       /* may be NULL */
    void *log_user;              /* passed to both callbacks */
} ct_http_options;

/* Fills opt with the defaults (port 8443, 16 threads, 16 MiB bodies, no
 * certificate, no callbacks). */
void ct_http_options_init(ct_http_options *opt);

/* Loads (or, without cert_path, generates or reuses) the certificate and
 * key, binds the listening socket and starts the worker threads. The
 * certificate and key are read here, before anything could drop
 * privileges. On failure nothing is left running and err says why (a bad
 * option, a certificate file, a key that does not match, a port in use).
 * Start and stop servers from one thread: civetweb's library set-up is
 * reference-counted but not thread-safe. */
int ct_http_start(const ct_http_options *opt, ct_http_server **out, ct_error *err);

/* Stops accepting, lets the workers finish their current request, joins
 * them and frees everything. NULL is accepted. */
void ct_http_stop(ct_http_server *srv);

/* The port actually bound (the one the system chose when port was 0). */
int ct_http_port(const ct_http_server *srv);

/* "https://127.0.0.1:8443/" or "https://[::1]:8443/". Returns CT_ELIMIT
 * (and a truncated string) when cap is too small; 64 bytes always suffice. */
int ct_http_url(const ct_http_server *srv, char *buf, size_t cap);

/* Path of the certificate being served (given or generated). */
const char *ct_http_cert_path(const ct_http_server *srv);

/* Reads a bearer token from a file for CT_HTTP_AUTH_STATIC_TOKEN: one line
 * (a final newline is dropped), CT_HTTP_TOKEN_MIN_LEN..MAX_LEN characters
 * of RFC 6750's b64token alphabet ([A-Za-z0-9-._~+/] then '='s). A file
 * that group or others can read is refused, as are a directory, a symbolic
 * link's target that is not a regular file, and anything larger. The error
 * never quotes the file's contents. buf needs CT_HTTP_TOKEN_MAX_LEN + 1. */
int ct_http_token_read_file(const char *path, char *buf, size_t cap, ct_error *err);

/* ---- self-signed certificate ------------------------------------------- */
typedef struct ct_http_tls_files {
    char cert_path[CT_HTTP_PATH_MAX];
    char key_path[CT_HTTP_PATH_MAX];
    int created;               /* 1 when this call generated the pair */
} ct_http_tls_files;

/* Makes sure state_dir holds CT_HTTP_CERT_FILE and CT_HTTP_KEY_FILE and
 * fills out with their paths. When neither exists it generates an EC P-256
 * key and a self-signed X.509 v3 certificate for localhost, 127.0.0.1 and
 * ::1, valid CT_HTTP_SELF_SIGNED_DAYS days. The key file is created 0600
 * from the start and both files appear whole or not at all (temporary name,
 * then a link that never replaces an existing file). An existing key is
 * reused as is; one readable or writable by group or others is refused. A
 * key whose certificate is missing gets a new certificate; a certificate
 * without its key is an error (the pair cannot be recovered). state_dir must
 * exist. */
int ct_http_tls_ensure_self_signed(const char *state_dir, ct_http_tls_files *out, ct_error *err);

#endif
