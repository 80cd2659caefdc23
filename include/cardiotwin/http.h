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

#include "cardiotwin/audit.h"
#include "cardiotwin/error.h"
#include "cardiotwin/store.h"

#define CT_HTTP_DEFAULT_BIND "127.0.0.1"
#define CT_HTTP_DEFAULT_PORT 8443
#define CT_HTTP_DEFAULT_THREADS 16
#define CT_HTTP_MAX_THREADS 256
/* A FHIR Bundle carrying 30 minutes of two-lead ECG at 360 Hz as text is
 * about 4 MB; 16 MiB leaves room without letting one request take the box. */
#define CT_HTTP_DEFAULT_MAX_BODY_BYTES (16LL * 1024 * 1024)
#define CT_HTTP_MAX_BODY_BYTES_LIMIT (1024LL * 1024 * 1024)
/* How often the outbox is pushed upstream (1 s .. 1 h). */
#define CT_HTTP_DEFAULT_PUSH_INTERVAL_MS 5000L
#define CT_HTTP_MAX_PUSH_INTERVAL_MS 3600000L
#define CT_HTTP_MAX_DEMO_PATIENTS 16
/* One Observation a second per demo patient keeps the database of a demo
 * left running small; a bedside gateway that feeds a live display posts
 * more often (--demo-chunk-ms 100 shows what that costs and gains). */
#define CT_HTTP_DEFAULT_DEMO_CHUNK_MS 1000
#define CT_HTTP_MIN_DEMO_CHUNK_MS 100
#define CT_HTTP_MAX_DEMO_CHUNK_MS 1000
#define CT_HTTP_DEFAULT_RATE_PER_S 200.0
#define CT_HTTP_DEFAULT_RATE_BURST 400.0

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
    /* Mutual TLS: the verified client certificate of the connection, or
     * NULL for both when it presented none. */
    const char *client_cert_subject;  /* RFC 2253 */
    const char *client_cert_sha256;   /* "AB:CD:..." */
} ct_http_access;

typedef enum ct_http_log_level {
    CT_HTTP_LOG_ERROR,    /* something failed: a handshake, a write, set-up */
    CT_HTTP_LOG_WARNING,  /* works, but someone should look (expiring certificate) */
    CT_HTTP_LOG_INFO,     /* what an operator wants to know once (certificate in use) */
} ct_http_log_level;

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
    const char *db_path;       /* SQLite database of the FHIR API and of the API tokens
                                * (opened and migrated at start); NULL: no token can be
                                * checked, so every route that needs one answers 401 */
    /* The live twin (docs/twin.md), when db_path is set: ECG Observations
     * posted to the API run through the detector and the alert policy, and
     * alerts become DiagnosticReports. */
    const char *policy_path;   /* the alert policy (JSON); NULL: the embedded default */
    const char *upstream_url;  /* NULL: reports stay here; else an http(s) FHIR base that a
                                * background thread pushes them to (ct_twin_push; the
                                * process must have called ct_client_global_init) */
    const char *upstream_ca_file;  /* NULL: the system's CA store, for upstream_url */
    long push_interval_ms;     /* between two pushes; 0: CT_HTTP_DEFAULT_PUSH_INTERVAL_MS */
    /* The dashboard (docs/dashboard.md). */
    const char *web_root;      /* directory served at / (index.html, js/, css/, vendor/);
                                * NULL: no dashboard, / answers 404 */
    int demo_patients;         /* 0: none; else this many synthetic patients (the synth room)
                                * are streamed live into the twin, 1..CT_HTTP_MAX_DEMO_PATIENTS;
                                * needs db_path */
    int demo_chunk_ms;         /* each demo Observation covers this long (a gateway's posting
                                * interval): CT_HTTP_MIN_DEMO_CHUNK_MS..CT_HTTP_MAX_DEMO_CHUNK_MS,
                                * a multiple of 25; 0: CT_HTTP_DEFAULT_DEMO_CHUNK_MS */
    /* Mutual TLS for device gateways (docs/security.md). */
    const char *client_ca_file;/* PEM CA bundle that signs gateway certificates; NULL: off */
    int client_cert_required;  /* with client_ca_file: 1 refuses a handshake without a
                                * certificate it signed; 0 verifies one when presented */
    /* Requests per credential (token or session) per second, as a token
     * bucket: rate_limit_per_s refilled per second, rate_limit_burst deep.
     * 0 for both: CT_HTTP_DEFAULT_RATE_PER_S / _BURST; a negative rate turns the limit off
     * (benchmarks). Over the limit: 429 with Retry-After. */
    double rate_limit_per_s;
    double rate_limit_burst;
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

/* ---- API tokens and roles (tokens.c, scopes.c; docs/security.md) ------------------
 * Every route but /healthz, /fhir/metadata and the SMART configuration
 * needs "Authorization: Bearer TOKEN". A token is made by an operator
 * (`cardiotwin token create`), shown once, and stored only as its SHA-256;
 * the server finds it by that hash on every request, so a revocation takes
 * effect at the next request. Its role names the SMART v2 scopes it holds;
 * a token bound to a patient holds the patient/ form of them and sees only
 * that patient's compartment. */

/* "ct_" and 32 random bytes in base64url without padding (43 characters). */
#define CT_HTTP_TOKEN_PREFIX "ct_"
#define CT_HTTP_TOKEN_RANDOM_BYTES 32
#define CT_HTTP_TOKEN_LEN 46
#define CT_HTTP_TOKEN_BUF (CT_HTTP_TOKEN_LEN + 1)
#define CT_HTTP_TOKEN_MAX_DAYS 3650

/* A role: its scopes, and those of a token bound to a patient (NULL when
 * the role cannot be bound to one). */
typedef struct ct_http_role_info {
    const char *name;            /* "device", "clinician", "auditor", "admin" */
    const char *scopes;          /* e.g. "system/Observation.c system/Device.r" */
    const char *patient_scopes;  /* e.g. "patient/Observation.c patient/Device.r", or NULL */
    const char *summary;         /* one line for --help */
} ct_http_role_info;

/* The role of that name, or NULL. */
const ct_http_role_info *ct_http_role_lookup(const char *name);
/* The i-th role (0, 1, ...), NULL past the last: for listing them. */
const ct_http_role_info *ct_http_role_at(size_t i);

typedef struct ct_http_token_spec {
    const char *name;            /* [A-Za-z][A-Za-z0-9._-]*, at most 64; never used before */
    const char *role;            /* a ct_http_role_info name */
    const char *patient;         /* NULL or "": not bound; else the id of an existing Patient */
    int expires_days;            /* 0: never; else 1..CT_HTTP_TOKEN_MAX_DAYS */
    int64_t now_ms;              /* 0: the clock (tests give a time) */
} ct_http_token_spec;

/* Makes a token: 32 bytes from OpenSSL's RAND_bytes as "ct_" + base64url,
 * written to token (CT_HTTP_TOKEN_BUF bytes; the only copy: the caller
 * shows it once and wipes it), and stores its SHA-256, role, scopes,
 * patient and expiry with a "token-create" audit entry by `by`, in one
 * transaction (not inside a caller's: CT_EINVAL). row (may be NULL) gets
 * the stored row. CT_EINVAL for a bad name, an unknown role, a role that
 * cannot be bound to a patient, days out of range; CT_ENOTFOUND when the
 * patient is not a stored Patient; CT_EEXIST when the name was ever used. */
int ct_http_token_create(ct_store *st, const ct_http_token_spec *spec, const ct_audit_actor *by,
                         char *token, size_t cap, ct_store_token *row, ct_error *err);

/* Revokes the token named name_or_id (all digits: its id), with a
 * "token-revoke" audit entry by `by`, in one transaction. A token already
 * revoked is left as it is (*already = 1, no audit entry, returns 0).
 * CT_ENOTFOUND when there is no such token. row (may be NULL) gets it. */
int ct_http_token_revoke(ct_store *st, const char *name_or_id, const ct_audit_actor *by, ct_store_token *row,
                         int *already, ct_error *err);

typedef enum ct_http_token_state {
    CT_HTTP_TOKEN_ACTIVE = 0,
    CT_HTTP_TOKEN_EXPIRED,
    CT_HTTP_TOKEN_REVOKED
} ct_http_token_state;
/* What the server would make of the token at now_ms; "active", "expired", "revoked". */
ct_http_token_state ct_http_token_state_at(const ct_store_token *t, int64_t now_ms);
const char *ct_http_token_state_name(ct_http_token_state s);

/* ---- dashboard users (users.c, sessions.c; docs/security.md, "Users and login") ----
 * A user is a person who logs in to the dashboard with a name and a
 * password and then holds a session cookie. Users have the tokens' roles
 * (clinician, auditor, admin: a device has a token, not a password) and may
 * be bound to a patient like a token. Passwords are stored as scrypt
 * output; every change is written to the audit log in the same
 * transaction as the row. */
#define CT_HTTP_PASSWORD_MIN 12      /* characters (bytes) */
#define CT_HTTP_PASSWORD_MAX 1024
#define CT_HTTP_LOGIN_MAX_FAILURES 5 /* consecutive failures that lock an account ... */
#define CT_HTTP_LOGIN_LOCK_MS (15LL * 60 * 1000) /* ... for this long */
#define CT_HTTP_SESSION_IDLE_MS (30LL * 60 * 1000)
#define CT_HTTP_SESSION_MAX_MS (12LL * 3600 * 1000)

/* A KDF and its parameters, as stored with each user. */
typedef struct ct_http_kdf_params {
    char kdf[16];                /* "scrypt" or "pbkdf2-sha256" */
    int64_t cost;                /* scrypt N (a power of two), or PBKDF2 iterations */
    int64_t block;               /* scrypt r; 1 for PBKDF2 */
    int64_t parallel;            /* scrypt p; 1 for PBKDF2 */
} ct_http_kdf_params;

/* The parameters new passwords get: scrypt N=2^17, r=8, p=1 (128 MiB). */
void ct_http_kdf_default(ct_http_kdf_params *p);
/* Checks parameters against what this build will run (no more than 1 GiB
 * of memory or about a minute of CPU for one hash): stored parameters come
 * from a file, and a row with absurd ones must not take the server down. */
int ct_http_kdf_check(const ct_http_kdf_params *p, ct_error *err);
/* Derives the 32-byte hash of the password (n bytes) with salt. */
int ct_http_password_hash(const ct_http_kdf_params *p, const char *password, size_t n, const unsigned char *salt,
                          size_t salt_len, unsigned char out[32], ct_error *err);
/* *match = 1 when the password is the user's (the comparison takes the
 * same time wherever the hashes differ). */
int ct_http_password_check(const ct_store_user *u, const char *password, size_t n, int *match, ct_error *err);

typedef struct ct_http_user_spec {
    const char *name;            /* [A-Za-z][A-Za-z0-9._-]*, at most 64; never used before */
    const char *role;            /* clinician, auditor or admin */
    const char *patient;         /* NULL or "": not bound; else an existing Patient (clinician only) */
    const char *password;        /* CT_HTTP_PASSWORD_MIN..MAX bytes, no control characters */
    size_t password_len;
    const ct_http_kdf_params *kdf; /* NULL: ct_http_kdf_default (tests pass cheaper ones) */
    int64_t now_ms;              /* 0: the clock */
} ct_http_user_spec;

/* Makes a user with a "user-create" audit entry by `by`, in one
 * transaction. CT_EINVAL for a bad name, role, password or binding;
 * CT_ENOTFOUND when the patient is not a stored Patient; CT_EEXIST when the
 * name was ever used. row (may be NULL) gets the stored row. */
int ct_http_user_create(ct_store *st, const ct_http_user_spec *spec, const ct_audit_actor *by, ct_store_user *row,
                        ct_error *err);
/* A new password for user `name` (kdf NULL: the default parameters): clears
 * the failure count and the lock and ends the user's open sessions, with a
 * "user-update" audit entry. CT_ENOTFOUND: no such user. */
int ct_http_user_set_password(ct_store *st, const char *name, const char *password, size_t n,
                              const ct_http_kdf_params *kdf, const ct_audit_actor *by, ct_error *err);
/* Disables user `name` for good and ends its sessions ("user-delete" audit
 * entry). Already disabled: *already = 1, nothing written, returns 0. */
int ct_http_user_disable(ct_store *st, const char *name, const ct_audit_actor *by, int *already, ct_error *err);
/* Clears the failure count and the lock ("user-update" audit entry).
 * *was_locked (may be NULL) says whether a lock was in force. */
int ct_http_user_unlock(ct_store *st, const char *name, const ct_audit_actor *by, int *was_locked, ct_error *err);
/* "active", "locked" (at now_ms) or "disabled". */
const char *ct_http_user_state(const ct_store_user *u, int64_t now_ms);

#endif
