/* client room, private: the pieces of a record download shared by
 * record_verify.c and record_download.c, and reached by the room's tests. */
#ifndef CARDIOTWIN_CLIENT_RECORD_INTERNAL_H
#define CARDIOTWIN_CLIENT_RECORD_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/client.h"
#include "cardiotwin/wfdb.h"

/* An MIT-BIH .atr is about 20 kB; other PhysioNet databases reach a few MB. */
#define CT_CLIENT_MAX_ANN_DOWNLOAD_BYTES ((int64_t)64 * 1024 * 1024)
/* Directory entries (".", ".." included) a staging folder is read for; one
 * holding more was not made by us and is not emptied. */
#define CT_CLIENT_MAX_STAGING_ENTRIES 256
/* Longest signal file name a header may give us. */
#define CT_CLIENT_FILE_NAME_MAX 200

/* The distinct signal files a header names. */
typedef struct ct_client_record_files {
    int n;
    char name[CT_WFDB_MAX_SIGNALS][256];
    int64_t max_bytes[CT_WFDB_MAX_SIGNALS]; /* what the header allows each to be */
} ct_client_record_files;

/* What a whole-record check found. */
typedef struct ct_client_record_check {
    int n_signals;
    int64_t n_samples;
    size_t n_annotations;
    ct_client_record_files files;
} ct_client_record_check;

/* A file name a header may ask us to fetch and create: one plain name of
 * letters, digits, '_', '.' and '-', at most CT_CLIENT_FILE_NAME_MAX, not
 * hidden (staging folders start with '.'), not ending in ".part". */
int ct_client_file_name_ok(const char *f);

/* out = dir/name; CT_ELIMIT when it does not fit in cap. */
int ct_client_join_path(char *out, size_t cap, const char *dir, const char *name, ct_error *err);

/* Reads a regular file of at most max_bytes whole, NUL-terminated; *buf is
 * the caller's to free. CT_ELIMIT when larger, CT_EIO when not a regular file
 * or unreadable. */
int ct_client_read_small_file(const char *path, int64_t max_bytes, char **buf, size_t *len,
                              ct_error *err);

/* The signal files header h of record names, each checked with
 * ct_client_file_name_ok and distinct from RECORD.hea and RECORD.atr, with an
 * upper bound on its size from the header (at most CT_WFDB_MAX_DAT_BYTES), so
 * that a download cannot be larger than the record it claims to be. Formats
 * other than 212, 16 and 80: CT_EUNSUPPORTED. */
int ct_client_header_files(const ct_wfdb_header *h, const char *record, ct_client_record_files *rf,
                           ct_error *err);

/* Makes err read "record R: FILE: ..." whichever room wrote it, without
 * doubling a lead that is already there. */
void ct_client_name_file(ct_error *err, const char *record, const char *file);

/* Every annotation at a sample inside the record's n_samples (n_samples < 0:
 * unknown, only negative samples are refused). */
int ct_client_check_annotations(const ct_wfdb_annotation *ann, size_t n, int64_t n_samples,
                                const char *record, ct_error *err);

/* Verifies DIR/RECORD as a whole: the header, every signal against the
 * header's first values and checksums, the annotations. Reads every sample:
 * O(record size) time, the decoded signals in memory (8 bytes per sample
 * pair for MIT-BIH). */
int ct_client_verify_record(const char *dir, const char *record, ct_client_record_check *out,
                            ct_error *err);

/* The verify hooks of ct_client_download for RECORD.hea and RECORD.atr:
 * ctx is a ct_client_part_ctx. */
typedef struct ct_client_part_ctx {
    const char *record;
    const char *file;
} ct_client_part_ctx;
int ct_client_verify_header_part(void *ctx, const char *part_path, ct_error *err);
int ct_client_verify_annotation_part(void *ctx, const char *part_path, ct_error *err);

/* Removes the staging folder and what we put in it: every entry is
 * unlink(2)ed (a symbolic link goes, never what it points to), a folder inside
 * is not entered, and only the first CT_CLIENT_MAX_STAGING_ENTRIES entries are
 * looked at. So a staging folder holding what we never put there (a folder,
 * hundreds of files) is not emptied and stays, for a person to look at. */
void ct_client_staging_remove(const char *stage);

/* 1 when the staging folder holds a .part file worth resuming. */
int ct_client_staging_has_part(const char *stage);

/* fsync of a folder, best effort: makes renames into it durable. */
void ct_client_sync_dir(const char *dir);

#endif
