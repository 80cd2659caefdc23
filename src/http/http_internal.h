/* Inside the http room: the server object, the request context every
 * handler receives, the route table's shape and the TLS helpers. Nothing
 * here is visible outside src/http. */
#ifndef CT_HTTP_INTERNAL_H
#define CT_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <civetweb.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "cardiotwin/fhir.h"
#include "cardiotwin/http.h"

/* ---- the server ----------------------------------------------------------- */
struct ct_http_server {
    struct mg_context *mg;
    ct_http_options opt;          /* copy; strings point into the buffers below */
    char bind_addr[64];           /* without brackets */
    int bind_is_ipv6;
    int port;                     /* bound port */
    char cert_path[CT_HTTP_PATH_MAX];
    char key_path[CT_HTTP_PATH_MAX];
    char extra_headers[512];      /* security headers for civetweb's own error pages */
    X509 *cert;                   /* loaded by ct_http_start, installed by init_ssl, */
    STACK_OF(X509) *chain;        /* then released: the SSL_CTX keeps its own */
    EVP_PKEY *key;                /* references and nothing else holds the key */
    ct_error tls_err;             /* why init_ssl refused, for ct_http_start */
    STACK_OF(X509) *client_cas;   /* mutual TLS: the CAs of opt.client_ca_file, until init_ssl */
    pthread_mutex_t log_lock;     /* guards the two fields below */
    int starting;                 /* civetweb messages are captured, not forwarded */
    char start_msg[CT_ERROR_MSG_MAX];
    int lib_initialized;          /* mg_init_library succeeded: call mg_exit_library */
    /* The FHIR API (store_pool.c, auth.c, fhir_handlers.c). */
    char db_path[CT_HTTP_PATH_MAX];   /* "" when the API has no database */
    pthread_mutex_t pool_lock;        /* guards the idle stores */
    int pool_lock_ready;
    struct ct_store **pool;           /* idle connections, one per worker at most */
    size_t pool_n, pool_cap;
    struct ct_http_ckpt *ckpt;        /* the WAL checkpoint thread (store_pool.c) */
    char *capability;                 /* the CapabilityStatement as served */
    size_t capability_len;
    /* The live twin (twin_feed.c): NULL when the API has no database. */
    struct ct_twin *twin;
    struct ct_policy *policy;         /* the twin's, freed after it */
    /* The push thread, when an upstream is configured. */
    char upstream_url[CT_HTTP_PATH_MAX];
    char upstream_ca[CT_HTTP_PATH_MAX];
    struct ct_client *push_client;
    pthread_t push_thread;
    int push_running;                 /* the thread was started: join it */
    pthread_mutex_t push_lock;        /* guards push_stop; with push_cond */
    pthread_cond_t push_cond;
    int push_sync_ready;
    int push_stop;
    /* The dashboard (dash_internal.h): web root and WebSocket feed. */
    struct ct_http_dash *dash;
    /* Rate limits, login throttling and the KDF gate (ratelimit.c). */
    struct ct_http_limiter *limiter;
    /* The demo feeder (demo_feed.c), with --demo N: NULL otherwise. */
    struct ct_http_demo *demo;
};

/* ---- the live twin (twin_feed.c) ------------------------------------------- */
/* Loads the policy, creates the twin on the API's database and, with an
 * upstream, starts the push thread. Nothing to do without a database. */
int ct_http_twin_init(ct_http_server *srv, ct_error *err);
/* Stops the push thread (waiting for a push under way) and frees the twin.
 * Call after the workers are stopped. */
void ct_http_twin_free(ct_http_server *srv);

/* ---- the demo feeder (demo_feed.c) ------------------------------------------- */
typedef struct ct_http_demo ct_http_demo;
/* With opt.demo_patients > 0: checks it (1..CT_HTTP_MAX_DEMO_PATIENTS, a
 * database and the twin) and makes the generators, before anything is
 * started, so that a refusal comes first. Call after ct_http_twin_init.
 * Nothing to do with 0. */
int ct_http_demo_init(ct_http_server *srv, ct_error *err);
/* Starts the feeder's thread, once the server is fully up: the thread
 * then reads nothing that start-up still writes. */
int ct_http_demo_start(ct_http_server *srv, ct_error *err);
/* Stops the feeder (promptly: it waits on a condition variable) and frees
 * it. Call before ct_http_twin_free. Nothing to do without a feeder. */
void ct_http_demo_stop(ct_http_server *srv);

/* Logs through opt.on_log (if any). The message must not hold secrets. */
void ct_http_log(ct_http_server *srv, ct_http_log_level level, const char *fmt, ...) CT_PRINTF(3, 4);

/* ---- methods ----------------------------------------------------------- */
enum {
    CT_HTTP_GET = 1u << 0,
    CT_HTTP_HEAD = 1u << 1,
    CT_HTTP_POST = 1u << 2,
    CT_HTTP_PUT = 1u << 3,
    CT_HTTP_DELETE = 1u << 4,
    CT_HTTP_PATCH = 1u << 5,
    CT_HTTP_OPTIONS = 1u << 6,
};

/* ---- who is calling -------------------------------------------------------
 * Filled by the router's authorize step, the one place that reads bearer
 * tokens (auth.c); handlers only ever read it. */
typedef struct ct_http_caller {
    int authenticated;        /* 0: anonymous */
    int64_t token_id;         /* the token's row (0 when anonymous) */
    char subject[128];        /* the token's name; "-" when anonymous */
    char role[32];            /* "device", "clinician", "auditor", "admin" */
    char scopes[512];         /* granted scopes, space-separated (SMART v2) */
    char patient[65];         /* the Patient id the token is bound to, "" if none */
    int64_t session_id;       /* > 0: authenticated by the session cookie (sessions.c) */
    char csrf[65];            /* that session's CSRF token */
    int64_t session_expires_ms; /* and its absolute end */
    /* When ct_http_authenticate refuses a credential that still names
     * someone (a revoked or expired token, an ended session): who, for the
     * audit of the refusal. The fields above stay anonymous. */
    char refused_name[128];
    char refused_role[32];
} ct_http_caller;

/* ---- scopes (scopes.c: pure) ------------------------------------------------
 * SMART App Launch v2 scopes, "context/Type.perms". The file's opening
 * comment has the rules. */
enum {
    CT_HTTP_PERM_C = 1u << 0,
    CT_HTTP_PERM_R = 1u << 1,
    CT_HTTP_PERM_U = 1u << 2,
    CT_HTTP_PERM_D = 1u << 3,
    CT_HTTP_PERM_S = 1u << 4,
    CT_HTTP_PERM_ALL = 31u,
};
typedef enum ct_http_scope_ctx {
    CT_HTTP_CTX_PATIENT = 1,
    CT_HTTP_CTX_USER,
    CT_HTTP_CTX_SYSTEM
} ct_http_scope_ctx;

typedef struct ct_http_scope {
    ct_http_scope_ctx ctx;
    char type[CT_FHIR_TYPE_MAX + 1];   /* a resource type, or "*" */
    unsigned perms;                    /* CT_HTTP_PERM_* bits, never 0 */
    int has_query;                     /* a v2 "?param=value" restriction follows */
} ct_http_scope;

/* Parses one scope (n bytes at s). 0, or -1 when it is not a resource
 * scope of SMART v1 or v2 syntax (openid, launch/patient, a bad letter). */
int ct_http_scope_parse(const char *s, size_t n, ct_http_scope *out);
/* CT_HTTP_PERM_* of 'c', 'r', 'u', 'd', 's'; 0 for anything else. */
unsigned ct_http_perm_bit(char letter);

typedef enum ct_http_grant {
    CT_HTTP_GRANT_NONE = 0,    /* no scope covers it */
    CT_HTTP_GRANT_PATIENT,     /* only within the bound patient's compartment */
    CT_HTTP_GRANT_ALL          /* on any resource of the type */
} ct_http_grant;
/* What the space-separated granted scopes allow for `perms` (all of them)
 * on resources of `type`. Scopes with a "?" filter grant nothing. */
ct_http_grant ct_http_scopes_grant(const char *granted, const char *type, unsigned perms);
/* 1 when granted covers `required` ("user/Observation.r") without a
 * compartment restriction. */
int ct_http_scope_grants(const char *granted, const char *required);
/* The role's scopes (patient_bound: their patient/ form) into buf; -1 for
 * an unknown role, a role that cannot be bound, or a buffer too small. */
int ct_http_role_scopes(const char *role, int patient_bound, char *buf, size_t cap);
/* "user/T.p or system/T.p (or patient/T.p ...)" for a 403's diagnostics. */
void ct_http_scope_describe(const char *type, unsigned perm, char *buf, size_t cap);

/* A route's scope: "Type.p", one resource type and one permission letter
 * (any context may grant it), or CT_HTTP_SCOPE_AUTHENTICATED: any
 * authenticated caller, the handler checking finer scopes itself (Bundles,
 * entry by entry). */
#define CT_HTTP_SCOPE_AUTHENTICATED "authenticated"

typedef struct ct_http_req ct_http_req;
typedef struct ct_http_route ct_http_route;

/* A handler answers exactly once through ct_http_send* and returns the
 * status it sent (what ct_http_send* return). */
typedef int (*ct_http_handler_fn)(ct_http_req *req);

struct ct_http_route {
    unsigned methods;         /* CT_HTTP_GET | CT_HTTP_HEAD ... */
    const char *path;         /* "/healthz", "/fhir" */
    int prefix;               /* 1: also path/anything (segment boundary) */
    const char *scope;        /* scope the caller must hold; NULL = public */
    ct_http_handler_fn fn;
};

/* The request context: one per request, on the worker's stack. */
struct ct_http_req {
    struct mg_connection *conn;
    ct_http_server *srv;
    const struct mg_request_info *ri;
    const char *method;       /* "GET" */
    unsigned method_bit;      /* CT_HTTP_GET ..., 0 for a method we do not know */
    const char *path;         /* decoded, no dot segments, no %00 or %2F, no query;
                               * NULL when the request path was refused */
    const char *query;        /* raw query string or NULL */
    const char *path_rest;    /* what follows route->path ("" or "/..."), for prefix routes */
    const ct_http_route *route;
    ct_http_caller caller;    /* who is asking: set by authorize, before the handler */
    int unread_body;          /* the request has a body nobody has read yet; a
                               * reader of the body clears it once it is all in */
    int64_t start_us;         /* monotonic, for the access log */
    int status;               /* sent status, 0 until then */
    int64_t body_bytes;       /* response body bytes written */
    char request_id[72];      /* X-Request-Id as sent (if sane) or made here; echoed back */
    int sent_continue;        /* "100 Continue" written: the response head is written raw */
    struct ct_store *store;   /* from the pool (store_pool.c), returned after the handler */
    /* Mutual TLS: the client certificate the handshake verified, "" when
     * the connection has none (tls.c, ct_http_tls_peer). */
    char peer_subject[256];   /* RFC 2253, e.g. "CN=ward3-gateway,O=Hospital" */
    char peer_sha256[96];     /* "AB:CD:..." as openssl x509 -fingerprint -sha256 */
};

/* The same check authorize() makes, for work a handler discovers inside
 * one request (each entry of a Bundle, the search inside a conditional
 * create): what the caller's scopes grant for perms on type. */
ct_http_grant ct_http_caller_grant(const ct_http_req *req, const char *type, unsigned perms);

/* ---- request bodies (body.c) ---------------------------------------------- */
/* Reads the whole body into *out (malloc'd, NUL-terminated, *len bytes),
 * never more than max_body_bytes whatever the framing (Content-Length or
 * chunked), and clears unread_body. Answers "Expect: 100-continue" first.
 * Returns 0, or CT_ELIMIT (over the limit: the connection will close),
 * CT_EIO (the client stopped sending or broke the chunking), CT_ENOMEM,
 * CT_EUNSUPPORTED (an Expect other than 100-continue). Sends nothing. */
int ct_http_read_body(ct_http_req *req, char **out, size_t *len);

/* ---- stores for the API (store_pool.c) -------------------------------------- */
/* Opens and migrates the database once at start (the first pooled store). */
int ct_http_pool_init(ct_http_server *srv, ct_error *err);
void ct_http_pool_free(ct_http_server *srv);
/* A store for this request (req->store), from the pool or newly opened;
 * returned by the router after the handler. CT_EUNSUPPORTED when the server
 * has no database. */
int ct_http_store_acquire(ct_http_req *req, struct ct_store **out, ct_error *err);
void ct_http_store_release(ct_http_req *req);

/* ---- credentials (auth.c, tokens.c) ------------------------------------------ */
typedef enum ct_http_auth_result {
    CT_HTTP_AUTH_OK = 1,           /* a valid token: req->caller is filled */
    CT_HTTP_AUTH_NONE = 0,         /* no Authorization header */
    CT_HTTP_AUTH_INVALID = -1,     /* presented and refused (why says why, for the 401) */
    CT_HTTP_AUTH_UNAVAILABLE = -2  /* the token could not be checked (no database): 503 */
} ct_http_auth_result;
/* Reads the Authorization header, looks the token up by its SHA-256 and
 * fills req->caller. Records the token's use at most once a minute. *why
 * gets a sentence for the client (never the token). Takes the request's
 * store (req->store) when a token is presented. */
ct_http_auth_result ct_http_authenticate(ct_http_req *req, const char **why);
/* Token text and hashing (tokens.c). */
/* A new token into out (CT_HTTP_TOKEN_BUF bytes). CT_EIO when OpenSSL has
 * no random bytes to give. */
int ct_http_token_generate(char *out, size_t cap, ct_error *err);
/* 1 when t (n bytes) has the shape of a token this server makes. */
int ct_http_token_well_formed(const char *t, size_t n);
/* SHA-256 of the n bytes of t. 0, or -1 (OpenSSL failed). */
int ct_http_token_hash(const char *t, size_t n, unsigned char out[32]);
/* The CapabilityStatement as served (fhir/CapabilityStatement.json with the
 * version filled in). */
int ct_http_capability_init(ct_http_server *srv, ct_error *err);

/* civetweb request handler registered for "/": routes every request. */
int ct_http_dispatch(struct mg_connection *conn, void *cbdata);

/* ---- rate limits (ratelimit.c) ------------------------------------------------
 * A token bucket: `tokens` refill at rate_per_s up to burst; a request
 * takes one. Pure, so that the arithmetic is tested with a made-up clock. */
typedef struct ct_http_bucket {
    double tokens;
    int64_t last_us;          /* monotonic time of the last refill; 0: new (full) */
} ct_http_bucket;
/* 1 when a token was taken; else 0 and *retry_after_ms (may be NULL) says
 * when the next one will be there. */
int ct_http_bucket_take(ct_http_bucket *b, double rate_per_s, double burst, int64_t now_us,
                        int64_t *retry_after_ms);

/* A bounded table of buckets keyed by what they limit ("tok:12",
 * "ses:4", "login:10.0.0.7"), shared by the workers under one mutex. When
 * the table is full the bucket used least recently in the key's
 * neighbourhood is dropped: a dropped bucket comes back full, so eviction
 * can only make a limit more lenient, never refuse someone wrongly. */
typedef struct ct_http_limiter ct_http_limiter;
#define CT_HTTP_LIMITER_SLOTS 4096
ct_http_limiter *ct_http_limiter_new(void);
void ct_http_limiter_free(ct_http_limiter *l);
/* Takes a token from key's bucket (see ct_http_bucket_take). When
 * suppressed is not NULL the bucket also counts refusals: *suppressed gets
 * how many were refused since the last token taken (for "and N more"). */
int ct_http_limiter_take(ct_http_limiter *l, const char *key, double rate_per_s, double burst, int64_t now_us,
                         int64_t *retry_after_ms, int64_t *suppressed);
/* How many scrypt runs may be under way at once (each holds 128 MiB). */
#define CT_HTTP_KDF_MAX_CONCURRENT 4
void ct_http_kdf_gate_enter(ct_http_limiter *l);
void ct_http_kdf_gate_leave(ct_http_limiter *l);
/* Monotonic microseconds. */
int64_t ct_http_now_us(void);

/* ---- sessions (sessions.c) ------------------------------------------------------
 * The session cookie and the CSRF token are 32 random bytes in base64url
 * without padding (43 characters). */
#define CT_HTTP_SESSION_COOKIE "ct_session"
#define CT_HTTP_SECRET_LEN 43
/* Finds cookie `name` in a Cookie header (RFC 6265 5.4: "a=b; c=d") and
 * copies its value into out. 1 found, 0 absent, -1 refused: present twice
 * (two sessions would be ambiguous), or a value longer than cap - 1. */
int ct_http_cookie_get(const char *header, const char *name, char *out, size_t cap);
/* 1 when s (n bytes) is 43 characters of canonical base64url. */
int ct_http_secret_well_formed(const char *s, size_t n);
/* Compares a presented CSRF token with the session's in constant time
 * (for equal lengths). 1 equal, 0 not (or either is NULL or empty). */
int ct_http_csrf_equal(const char *presented, const char *expected);
/* The lockout rule: after a failed login with failed_before failures
 * already counted, *failed_after and *locked_until_ms (0: not locked) are
 * what to store. CT_HTTP_LOGIN_MAX_FAILURES in a row lock the account
 * CT_HTTP_LOGIN_LOCK_MS, and the count starts again. */
void ct_http_lockout_after_failure(int64_t failed_before, int64_t now_ms, int64_t *failed_after,
                                   int64_t *locked_until_ms);

typedef enum ct_http_login_outcome {
    CT_HTTP_LOGIN_OK = 0,      /* out holds the session */
    CT_HTTP_LOGIN_REFUSED,     /* unknown user, wrong password, disabled: the same 401 */
    CT_HTTP_LOGIN_LOCKED,      /* 429 with Retry-After (retry_after_ms) */
} ct_http_login_outcome;

typedef struct ct_http_login_result {
    ct_http_login_outcome outcome;
    char cookie[CT_HTTP_SECRET_LEN + 1];  /* the session cookie's value (OK only) */
    ct_store_session session;
    ct_store_user user;
    int64_t retry_after_ms;
} ct_http_login_result;

/* Checks name and password and, on success, opens a session; writes the
 * lockout bookkeeping and a "login" audit entry (success, failure, lock)
 * naming client and request_id, in one transaction. An unknown name costs
 * one KDF run like a known one. kdf: the parameters for new hashes (NULL:
 * the default), also used to re-hash a password stored with others.
 * Returns 0 with out->outcome, or a CT_E... code when the database failed. */
int ct_http_login(ct_store *st, const char *name, const char *password, size_t n, const char *client,
                  const char *request_id, int64_t now_ms, const ct_http_kdf_params *kdf, ct_http_limiter *gate,
                  ct_http_login_result *out, ct_error *err);
/* Ends the session with a "logout" audit entry naming the user. */
int ct_http_logout(ct_store *st, int64_t session_id, const char *name, const char *role, const char *patient,
                   const char *client, const char *request_id, ct_error *err);
/* Checks the value of a session cookie (auth.c reads it from the request)
 * and fills req->caller from the session's user: subject, role, the role's
 * scopes (patient/ ones for a bound user), patient, session id and CSRF
 * token. Takes the request's store. On a refusal of a known session,
 * refused_name and refused_role name its user. */
ct_http_auth_result ct_http_session_check(ct_http_req *req, const char *cookie, const char **why);
/* Handlers: POST /auth/login, GET /auth/session, POST /auth/logout. */
int ct_http_handle_login(ct_http_req *req);
int ct_http_handle_session(ct_http_req *req);
int ct_http_handle_logout(ct_http_req *req);

/* ---- responses (response.c) ------------------------------------------------ */
typedef struct ct_http_resp {
    int status;
    const char *content_type;   /* NULL: no body expected */
    const void *body;
    size_t body_len;
    const char *allow;          /* Allow header (405), or NULL */
    const char *www_authenticate; /* WWW-Authenticate header (401), or NULL */
    const char *cache_control;  /* NULL: "no-store" (responses may carry patient data) */
    const char *csp;            /* NULL: the API's Content-Security-Policy; the dashboard's
                                 * pages send their own (static_files.c) */
    int close;                  /* 1: close the connection after this response */
    const struct ct_http_header *headers; /* more headers (Location, ETag ...), or NULL */
    size_t n_headers;
} ct_http_resp;

/* Sends the status line, the security headers and the body (none for
 * HEAD). Returns r->status, or -1 when the response could not be started
 * (already sent). */
int ct_http_send(ct_http_req *req, const ct_http_resp *r);
/* Sends a JSON text (NUL-terminated) with Content-Type application/json. */
int ct_http_send_json(ct_http_req *req, int status, const char *json);
/* Sends {"status":N,"error":"<reason phrase>","message":"..."}. The message
 * is JSON-escaped; never put request data or secrets in it. */
int ct_http_send_error(ct_http_req *req, int status, const char *message);
/* The same with the other fields of head (allow, close ...) kept. */
int ct_http_send_error_resp(ct_http_req *req, const ct_http_resp *head, const char *message);

/* The headers every response carries, for responses we build and (through
 * civetweb's additional_header) for the ones civetweb builds itself. */
typedef struct ct_http_header {
    const char *name;
    const char *value;
} ct_http_header;
extern const ct_http_header ct_http_security_headers[];
extern const size_t ct_http_n_security_headers;
/* Two years, as Mozilla's profile and the HSTS preload list ask. */
#define CT_HTTP_HSTS_MAX_AGE "63072000"

/* ---- handlers ------------------------------------------------------------ */
int ct_http_handle_healthz(ct_http_req *req);
/* GET /.well-known/smart-configuration (and under /fhir): the SMART
 * configuration document (smart_config.c). */
int ct_http_handle_smart_configuration(ct_http_req *req);
/* GET /api/beats: a twin stream's stored beats, paged (beats_api.c). */
int ct_http_handle_api_beats(ct_http_req *req);
/* Whether errors on this path are FHIR OperationOutcomes (under /fhir). */
int ct_http_is_fhir_path(const char *path);

/* ---- TLS (tls.c) ------------------------------------------------------------ */
/* Reads the certificate chain and the private key (refusing a key file that
 * others can read, an encrypted key, a key that does not match, oversized
 * files) into srv->cert, srv->chain and srv->key. strict_key_mode: refuse
 * group access too (for the generated key). */
int ct_http_tls_load(ct_http_server *srv, int strict_key_mode, ct_error *err);
/* Applies our TLS policy to civetweb's SSL_CTX and installs the loaded
 * certificate and key. */
int ct_http_tls_configure(ct_http_server *srv, SSL_CTX *ctx, ct_error *err);
void ct_http_tls_release(ct_http_server *srv);
/* "AB:CD:..." SHA-256 fingerprint of cert; buf needs 96 bytes. */
void ct_http_tls_fingerprint(X509 *cert, char *buf, size_t cap);
/* Mutual TLS: reads opt.client_ca_file (PEM, one or more CA certificates)
 * into srv->client_cas, with an error naming the file and the certificate
 * at fault. Nothing to do without the option. */
int ct_http_tls_load_client_ca(ct_http_server *srv, ct_error *err);
/* Fills req->peer_subject and req->peer_sha256 from the connection's
 * verified client certificate (empty without one). */
void ct_http_tls_peer(ct_http_req *req);
/* Chain length a client certificate may have below its trusted CA. */
#define CT_HTTP_CLIENT_VERIFY_DEPTH 4

#define CT_HTTP_TLS12_CIPHERS                                                   \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define CT_HTTP_TLS_GROUPS "X25519:P-256:P-384"
/* PEM files larger than this are not certificates or keys we serve. */
#define CT_HTTP_PEM_MAX_BYTES (256 * 1024)

#endif
