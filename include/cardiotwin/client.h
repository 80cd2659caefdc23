/* client: cardiotwin's outbound HTTP, on libcurl. Its first job is fetching
 * one file (a PhysioNet record file, later an upstream FHIR resource) to a
 * path on disk so that a failed or hostile transfer can never leave a partial
 * or unverified file under the final name; on top of it,
 * ct_client_download_record fetches a whole WFDB record the same way.
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

#endif
