/* client: cardiotwin's outbound HTTP, on libcurl. Its first job is fetching
 * one file (a PhysioNet record file, later an upstream FHIR resource) to a
 * path on disk so that a failed or hostile transfer can never leave a partial
 * or unverified file under the final name; on top of it,
 * ct_client_download_record fetches a whole WFDB record the same way. Its
 * second is talking to a FHIR server: ct_client_send (one JSON request,
 * bounded answer, retries) and, on top of it, ct_client_stream_record, the
 * device simulator behind `cardiotwin stream`.
 *
 * A download writes DEST.part, resumes it with a Range request after a cut
 * connection, retries transient failures (connection errors, timeouts, HTTP
 * 5xx and 429) with exponential backoff, refuses bodies larger than a limit,
 * and renames DEST.part to DEST only after the caller's verification passed.
 * Only http and https are spoken; HTTPS peers are always verified (a private
 * CA file may be named, verification may not be turned off). See
 * docs/client.md for the policy in full.
 *
 * libcurl needs one process-wide initialisation: ct_client_global_init() is
 * called once by the program's main wiring (the CLI) before any client is
 * made, ct_client_global_cleanup() once at the end. The room itself keeps no
 * global state. */
#ifndef CARDIOTWIN_CLIENT_H
#define CARDIOTWIN_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/error.h"
#include "cardiotwin/wfdb.h"

/* Hard ceilings on what options may ask for, so a typo cannot make a client
 * retry for a day or accept an unbounded body. */
#define CT_CLIENT_MAX_RETRIES 20
#define CT_CLIENT_MAX_BACKOFF_MS (10L * 60 * 1000)
#define CT_CLIENT_MAX_REDIRECTS 20
#define CT_CLIENT_MAX_URL 2048
/* Largest body any download may accept: 16 GiB. */
#define CT_CLIENT_MAX_BYTES_CEILING ((int64_t)16 * 1024 * 1024 * 1024)

/* Called as bytes arrive. done_bytes counts the whole file, including what a
 * resumed transfer already had on disk; total_bytes is -1 while unknown. */
typedef void (*ct_client_progress_fn)(void *ctx, int64_t done_bytes, int64_t total_bytes);

/* Called before each retry: attempt is the number of the attempt about to be
 * made (2 for the first retry), wait_ms the pause before it, reason one line
 * ("HTTP 503", "connection refused ..."). For the caller's log only. */
typedef void (*ct_client_retry_fn)(void *ctx, int attempt, long wait_ms, const char *reason);

/* Called once the whole body sits in part_path and before it is renamed to
 * its final name. Returning non-zero (a CT_E... code, with err filled) keeps
 * the file from its final name: the .part file is removed. */
typedef int (*ct_client_verify_fn)(void *ctx, const char *part_path, ct_error *err);

typedef struct ct_client_options {
    int max_retries;            /* retries after the first attempt (default 4, at most 20) */
    long backoff_base_ms;       /* pause before the first retry, doubled for each next one (default 1000) */
    long backoff_max_ms;        /* cap of one pause, also of a server's Retry-After (default 30000) */
    long connect_timeout_ms;    /* TCP + TLS set-up (default 15000) */
    long stall_timeout_ms;      /* abort an attempt that moves less than stall_min_bytes_per_s for this long (default 30000) */
    long stall_min_bytes_per_s; /* default 1024 */
    long attempt_timeout_ms;    /* whole attempt, 0 for none: a slow but moving transfer is allowed (default 0) */
    long max_redirects;         /* redirects followed per attempt (default 5, at most 20) */
    int64_t max_bytes;          /* largest body accepted unless a download asks for less (default 256 MiB) */
    const char *user_agent;     /* NULL: "cardiotwin/<version>" */
    const char *ca_file;        /* NULL: the system's CA store; else a PEM bundle to trust instead */
    ct_client_progress_fn on_progress; /* may be NULL */
    ct_client_retry_fn on_retry;       /* may be NULL */
    void *cb_ctx;                      /* handed to on_progress and on_retry */
} ct_client_options;

/* What one download did, for the caller's summary. */
typedef struct ct_client_result {
    int attempts;           /* requests made, 1 when the first one succeeded */
    int resumed;            /* attempts that continued a .part file with a 206 */
    int restarted;          /* attempts that had a .part file but had to start from zero */
    long http_status;       /* status of the last response, 0 if none arrived */
    int64_t bytes;          /* size of the file on success */
} ct_client_result;

typedef struct ct_client ct_client;

/* libcurl's process-wide set-up and tear-down: call each once, from main. */
int ct_client_global_init(ct_error *err);
void ct_client_global_cleanup(void);

/* Fills o with the defaults above. */
void ct_client_options_default(ct_client_options *o);

/* Checks every field against its bounds; the message names the field. */
int ct_client_options_check(const ct_client_options *o, ct_error *err);

/* A client holds one libcurl handle, so consecutive downloads from the same
 * host reuse the connection. Not for use by two threads at once. The options
 * (and the strings they point to) are copied. */
int ct_client_new(const ct_client_options *opt, ct_client **out, ct_error *err);
void ct_client_free(ct_client *c);

/* Fetches url into dest_path by way of dest_path.part, as described at the
 * top of this header. max_bytes (0: the client's max_bytes; a larger value is
 * clamped to it) bounds the body. verify may be NULL. res may be NULL.
 *
 * Errors: CT_EINVAL (bad URL or path), CT_ENOTFOUND (HTTP 404/410),
 * CT_ELIMIT (body too large), CT_ETLS (certificate or TLS failure),
 * CT_ENET (other HTTP or transfer failure, after retries if transient),
 * CT_EIO (local disk), or whatever verify returned. On a transient failure
 * that used up its retries the .part file is kept if it holds any bytes, so
 * a later call resumes; on any other failure it is removed. */
int ct_client_download(ct_client *c, const char *url, const char *dest_path, int64_t max_bytes,
                       ct_client_verify_fn verify, void *verify_ctx, ct_client_result *res,
                       ct_error *err);

/* Joins a base URL (http:// or https://, no query or fragment) and one path
 * segment: exactly one '/' between them, characters outside RFC 3986's
 * unreserved set percent-encoded. "." and ".." and names with '/' are refused.
 * CT_ELIMIT when out_size is too small. */
int ct_client_url_join(const char *base, const char *name, char *out, size_t out_size,
                       ct_error *err);

/* Pause before retry number `retry` (1 for the first retry):
 * backoff_base_ms * 2^(retry-1), capped at backoff_max_ms. */
long ct_client_backoff_ms(const ct_client_options *o, int retry);

/* ---- WFDB records (PhysioNet) ------------------------------------------------
 *
 * A record (RECORD.hea, the signal files its header names, RECORD.atr) is
 * downloaded into a staging folder beside its destination,
 * DEST/.partial-RECORD/, checked there as a whole with the wfdb room (header
 * parsed, every signal decoded against the header's first values and
 * checksums, annotations parsed and inside the record), and only then renamed
 * file by file into DEST, header last. So nothing unverified ever sits under
 * DEST/RECORD.*, and a header in DEST means its whole record is there. After
 * a network failure the staging folder keeps its .part files for the next
 * call to resume; after any other failure it is removed. A lock file in it
 * keeps two downloads of one record into one folder apart. */

/* Longest record name; a record name is letters, digits and '_'. */
#define CT_CLIENT_RECORD_NAME_MAX 63

/* What a record download came to. */
typedef enum ct_client_record_status {
    CT_CLIENT_RECORD_FAILED = 0, /* the call failed: its error says why */
    CT_CLIENT_RECORD_PRESENT,    /* already in dest_dir and verified: nothing was fetched */
    CT_CLIENT_RECORD_DOWNLOADED, /* fetched, verified and moved into dest_dir */
    CT_CLIENT_RECORD_REPLACED,   /* the copy in dest_dir did not verify: fetched again,
                                    verified, and put in its place */
} ct_client_record_status;

/* What one record download did, for the caller's summary. The record's
 * figures (n_files ... n_annotations) are those of the verified record
 * (PRESENT, DOWNLOADED, REPLACED); on failure they are 0 and the counters
 * say what was tried. */
typedef struct ct_client_record_result {
    ct_client_record_status status;
    int n_files;           /* header, signal files and annotations */
    int n_signals;
    int64_t n_samples;     /* per signal */
    size_t n_annotations;
    int64_t bytes;         /* downloaded by this call; a file an earlier call finished is not counted */
    int retries;           /* over all files */
    int resumed;           /* attempts that continued a .part file */
    int restarted;         /* attempts that had a .part file but had to start from zero */
    char unverified[CT_ERROR_MSG_MAX]; /* REPLACED: why the old copy did not verify */
} ct_client_record_result;

/* Hooks for a person watching a record download; each may be NULL. record is
 * the record's name, file the name of one of its files ("100.dat"). */
typedef struct ct_client_record_callbacks {
    /* A file's transfer begins (not called for a file the staging folder
     * already holds whole from an earlier call). */
    void (*file_begin)(void *ctx, const char *record, const char *file);
    /* Bytes of that file arrived, as ct_client_progress_fn. */
    void (*file_progress)(void *ctx, const char *record, const char *file, int64_t done_bytes,
                          int64_t total_bytes);
    /* That file's transfer ended, well or not. */
    void (*file_end)(void *ctx, const char *record, const char *file);
    /* A retry of that file is about to be made, as ct_client_retry_fn. */
    void (*retry)(void *ctx, const char *record, const char *file, int attempt, long wait_ms,
                  const char *reason);
    /* The copy in dest_dir does not verify (reason: the check's error) and is
     * about to be downloaded again; called before any transfer. */
    void (*replacing)(void *ctx, const char *record, const char *reason);
    void *ctx;             /* handed to every hook */
} ct_client_record_callbacks;

/* 1 when record is a record name: 1..CT_CLIENT_RECORD_NAME_MAX letters,
 * digits and '_' (so never a path, never hidden), else 0. */
int ct_client_record_name_ok(const char *record);

/* mkdir -p, for a download's destination folder: every missing folder of
 * path is created (0755). CT_EIO naming the folder that could not be made,
 * or when path exists and is not a folder; CT_EINVAL for an empty path,
 * CT_ELIMIT for one longer than PATH_MAX. */
int ct_client_make_dirs(const char *path, ct_error *err);

/* Downloads WFDB record `record` from base_url (http:// or https://, the
 * folder holding RECORD.hea) into dest_dir, which must exist, as described
 * above: a record whose header is already in dest_dir and verifies is left
 * as it is (PRESENT); one that does not verify is downloaded again and
 * replaced (REPLACED). Each file is fetched with ct_client_download, with its
 * size bounded by the header (signal files), CT_WFDB_MAX_HEADER_BYTES
 * (header) or 64 MiB (annotations). cb and res may be NULL. The client's own
 * on_progress and on_retry hooks are called as well as cb's.
 *
 * Errors are one line starting "record RECORD: FILE: " when a file is at
 * fault: CT_EINVAL (bad record name or base URL), CT_EEXIST (another download
 * of the record into dest_dir is running), those of ct_client_download
 * (CT_ENOTFOUND, CT_ENET, CT_ETLS, CT_ELIMIT, CT_EIO), and those of the wfdb
 * room's readers (CT_EFORMAT, CT_ECHECKSUM, CT_EUNSUPPORTED ...). */
int ct_client_download_record(ct_client *c, const char *base_url, const char *dest_dir,
                              const char *record, const ct_client_record_callbacks *cb,
                              ct_client_record_result *res, ct_error *err);

/* ---- requests to a FHIR server ------------------------------------------------
 *
 * One request with a JSON body (or none) whose answer is kept in memory:
 * status, Location, ETag and a bounded body. Transient failures (connection
 * errors, timeouts, HTTP 408, 429 and 5xx) are retried with the client's
 * backoff, as downloads are; other answers are final. Redirects are not
 * followed: a FHIR write answered with a 3xx fails rather than turning into
 * a GET. A retried POST may create the resource twice when the first
 * attempt reached the server and only its answer was lost: callers whose
 * writes must be exactly-once use a conditional create (If-None-Exist). */

/* Largest response body kept by default (a bigger one fails the request). */
#define CT_CLIENT_DEFAULT_MAX_RESPONSE ((size_t)1024 * 1024)
/* Longest bearer token accepted (an OAuth JWT is usually under 2 KiB). */
#define CT_CLIENT_MAX_TOKEN 4096
/* Extra header lines one request may carry. */
#define CT_CLIENT_MAX_EXTRA_HEADERS 8

/* Polled before each retry and during the pause before it (every 100 ms at
 * most); non-zero ends the call without a further attempt
 * (ct_client_response.stopped). A request already on the wire is not cut. */
typedef int (*ct_client_stop_fn)(void *ctx);

typedef struct ct_client_request {
    const char *method;         /* "GET", "POST", "PUT" or "DELETE" */
    const char *url;            /* http:// or https:// */
    const char *body;           /* NULL: no body */
    size_t body_len;
    const char *content_type;   /* of body; NULL: "application/fhir+json" */
    const char *accept;         /* NULL: "application/fhir+json" */
    const char *bearer_token;   /* NULL: no Authorization header. Never written into a message */
    /* "Name: value" lines (If-None-Exist, If-Match, Prefer ...), printable
     * ASCII, at most CT_CLIENT_MAX_EXTRA_HEADERS. */
    const char *headers[CT_CLIENT_MAX_EXTRA_HEADERS];
    int n_headers;
    size_t max_response_bytes;  /* 0: CT_CLIENT_DEFAULT_MAX_RESPONSE */
    int no_retry;               /* 1: one attempt only */
    ct_client_retry_fn on_retry;/* NULL: the client's own on_retry */
    ct_client_stop_fn should_stop; /* NULL: never stop early */
    void *cb_ctx;               /* handed to on_retry and should_stop */
} ct_client_request;

typedef struct ct_client_response {
    long status;                /* HTTP status of the last answer, 0 if none arrived */
    int attempts;               /* requests made */
    int stopped;                /* 1: should_stop ended the call before an answer was final */
    char location[CT_CLIENT_MAX_URL]; /* Location header, "" if none (cut if longer) */
    char etag[128];             /* ETag header, "" if none */
    char content_type[128];     /* Content-Type header, "" if none */
    /* The body, NUL-terminated (malloc'd, free with ct_client_response_free);
     * NULL when empty. */
    char *body;
    size_t body_len;
    /* For a 4xx or 5xx with an OperationOutcome: its issues' diagnostics (or
     * details.text, or code) joined with "; ", each with its expression, on
     * one line; else "". */
    char diagnostics[CT_ERROR_MSG_MAX];
} ct_client_response;

/* Sends req and fills res (which the caller frees with
 * ct_client_response_free, whatever the outcome). Returns 0 for a 2xx
 * answer. Otherwise: CT_ENOTFOUND (404, 410), CT_ENET (another status, with
 * res->status set, after retries if transient; or a transfer failure),
 * CT_ETLS (certificate or TLS set-up), CT_ELIMIT (an answer larger than
 * max_response_bytes), CT_EINVAL (bad URL, method or header). The message
 * is one line: "POST URL: HTTP 422: <diagnostics>". When should_stop ended
 * the call, it returns CT_ENET with res->stopped = 1. The bearer token
 * never appears in a message. */
int ct_client_send(ct_client *c, const ct_client_request *req, ct_client_response *res,
                   ct_error *err);
void ct_client_response_free(ct_client_response *res);

/* Diagnostics of an OperationOutcome body, as in ct_client_response: a
 * one-line summary in out ("" when body is not an OperationOutcome). */
void ct_client_outcome_summary(const char *body, size_t len, char *out, size_t cap);

/* 1 when s is 1..CT_CLIENT_MAX_TOKEN characters of RFC 6750's b64token
 * alphabet (letters, digits, "-._~+/" then '=' padding). */
int ct_client_token_ok(const char *s);

/* Reads a bearer token from path: one line (a final LF or CRLF is dropped),
 * checked with ct_client_token_ok. The file must be a regular file that
 * group and others can neither read nor write (chmod 600): a secret others
 * could read is refused rather than used. Errors name the file, never its
 * content. buf is wiped on failure. */
int ct_client_token_read_file(const char *path, char *buf, size_t cap, ct_error *err);

/* ---- replaying a WFDB record as ECG Observations ------------------------------
 *
 * `cardiotwin stream` (docs/stream.md): a record is cut into Observations of
 * N seconds of all its leads, each built with the fhir room's
 * ct_fhir_ecg_to_json and POSTed to BASE/Observation, paced as a bedside
 * gateway would send them: an Observation leaves once its last sample has
 * been "acquired", that is (end sample / fs) / speed after the stream began
 * on a monotonic clock. Due times come from the sample index, never from
 * the previous send, so pacing does not drift; a slow answer makes the next
 * Observations leave at once until the schedule is met again. The effective
 * times are start_ms + sample / fs, rounded to the millisecond from the
 * absolute sample index, so Observation k+1 starts where k ends. */

#define CT_CLIENT_STREAM_MAX_SECONDS_PER_OBS 3600.0
#define CT_CLIENT_STREAM_MIN_SPEED 0.01
#define CT_CLIENT_STREAM_MAX_SPEED 100000.0
/* ct_client_stream_options.start_ms: the moment the stream begins. */
#define CT_CLIENT_STREAM_NOW INT64_MIN

/* How a record of n_samples per signal is cut. */
typedef struct ct_client_stream_plan {
    double fs_hz;
    int64_t n_samples;        /* per signal, to be sent (after limit_seconds) */
    int64_t samples_per_obs;  /* round(seconds_per_obs * fs_hz) */
    int64_t n_obs;            /* ceil(n_samples / samples_per_obs); the last may be shorter */
} ct_client_stream_plan;

/* Cuts a record: seconds_per_obs in (0, 3600] making 1 to 1,000,000 samples
 * (the fhir room's limit per lead); limit_seconds 0 for the whole record,
 * else the first limit_seconds (at least one sample). CT_EINVAL naming the
 * value at fault. */
int ct_client_stream_plan_make(int64_t record_samples, double fs_hz, double seconds_per_obs,
                               double limit_seconds, ct_client_stream_plan *out, ct_error *err);
/* First sample and sample count of observation k (0 <= k < n_obs). */
void ct_client_stream_obs_range(const ct_client_stream_plan *p, int64_t k, int64_t *first,
                                int64_t *count);
/* Wall-clock time of a sample index: start_ms + round(sample * 1000 / fs). */
int64_t ct_client_stream_sample_ms(const ct_client_stream_plan *p, int64_t start_ms,
                                   int64_t sample);
/* When observation k is due, in ms after the stream began: the time its
 * last sample is acquired at `speed` (0: as fast as the server answers,
 * always 0). */
int64_t ct_client_stream_due_ms(const ct_client_stream_plan *p, int64_t k, double speed);

/* The Patient id the importer would use for a record path:
 * "<folder>-<record>" ("../data/mitdb/100" -> "mitdb-100"), the folder
 * being the last component of the record's folder after resolving it.
 * CT_EINVAL when that is not a FHIR id ([A-Za-z0-9.-], at most 64). */
int ct_client_stream_patient_id(const char *record_path, char *out, size_t cap, ct_error *err);

typedef struct ct_client_stream_options {
    const char *base_url;      /* the FHIR base, e.g. "https://host:8443/fhir" */
    const char *bearer_token;  /* NULL: none */
    const char *patient_id;    /* a FHIR id (required) */
    /* 1: make sure Patient/ID exists first: GET it, and PUT it when the
     * server answers 404 or 410 (an update that creates, R4's
     * "update as create"). 0: leave patients to the server's owner. */
    int ensure_patient;
    double seconds_per_obs;    /* (0, 3600]; 10 for a bedside gateway */
    double speed;              /* 1 real time, 10 ten times faster, 0 unpaced */
    double limit_seconds;      /* 0: the whole record */
    /* Effective time of the first sample, UTC ms; CT_CLIENT_STREAM_NOW:
     * the wall-clock time at which the stream begins (after the Patient). */
    int64_t start_ms;
} ct_client_stream_options;

/* What is known once the record is read and before the first request. */
typedef struct ct_client_stream_info {
    const char *record;        /* the record's name ("100") */
    int n_leads;
    const char *lead_names[CT_WFDB_MAX_SIGNALS]; /* signal descriptions ("MLII") */
    int mdc_codes[CT_WFDB_MAX_SIGNALS];          /* their MDC lead codes */
    ct_client_stream_plan plan;
} ct_client_stream_info;

/* Hooks for a person watching; each may be NULL. */
typedef struct ct_client_stream_callbacks {
    void (*begin)(void *ctx, const ct_client_stream_info *info);
    /* Patient/ID was found (created = 0) or created (1). */
    void (*patient)(void *ctx, const char *patient_id, int created);
    /* Observation k (0-based) was accepted; location is the server's
     * Location header ("" if none). */
    void (*sent)(void *ctx, int64_t k, int64_t n_obs, const char *location);
    /* A retry of observation k (-1: the Patient) is about to be made. */
    void (*retry)(void *ctx, int64_t k, int attempt, long wait_ms, const char *reason);
    /* Polled before each Observation, and every 100 ms while waiting for
     * one to be due or for a retry: non-zero stops the stream after the
     * request in flight, cleanly (res->stopped = 1, return 0). */
    int (*should_stop)(void *ctx);
    void *ctx;
} ct_client_stream_callbacks;

typedef struct ct_client_stream_result {
    int64_t n_obs_planned;
    int64_t n_obs_sent;
    int64_t start_ms;          /* effective time of the first sample, UTC ms */
    int64_t n_samples_sent;    /* per lead */
    int n_leads;
    double ecg_seconds;        /* of ECG sent */
    double wall_seconds;       /* from the first due time's clock start to the last answer */
    int retries;               /* over all requests, the Patient's included */
    int patient_created;       /* 1: this call created Patient/ID */
    int stopped;               /* 1: should_stop ended the stream early */
    int64_t max_late_ms;       /* most an Observation left after its due time */
    char last_location[CT_CLIENT_MAX_URL];
} ct_client_stream_result;

/* Replays the WFDB record at record_path (a path without extension) as
 * described above. The record is read and checked whole first (every signal
 * must be a lead the fhir room knows, ct_fhir_lead_by_name, in mV, uV or V,
 * calibrated), so that a bad record fails before any request. Holds the
 * whole record in memory (O(record) = 2.6 MB for an MIT-BIH record; a
 * streaming reader would make it O(observation), not needed for records of
 * this size). cb and res may be NULL.
 *
 * Errors: those of the wfdb room; CT_EUNSUPPORTED for a signal that is not
 * an ECG lead we can send (named); those of ct_client_send, prefixed with
 * "Observation K of N (record R, from T s)" or "Patient/ID". A 4xx stops
 * the stream at once with the server's diagnostics; a 5xx or a connection
 * failure is retried per the client's options, then stops it. */
int ct_client_stream_record(ct_client *c, const char *record_path,
                            const ct_client_stream_options *opt,
                            const ct_client_stream_callbacks *cb, ct_client_stream_result *res,
                            ct_error *err);

#endif
