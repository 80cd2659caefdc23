/* Inside the store room: the ct_store struct, its cache of prepared
 * statements, and the helpers every store source shares (errors, the
 * "operation" transaction wrapper, text copies). Not a public header. */
#ifndef CARDIOTWIN_STORE_IMPL_H
#define CARDIOTWIN_STORE_IMPL_H

#include <sqlite3.h>

#include "cardiotwin/store.h"

/* Every statement the store runs more than once. Prepared on first use with
 * SQLITE_PREPARE_PERSISTENT and kept until ct_store_close, so that writing a
 * block costs a bind and a step, never a parse. */
enum ct_store_stmt_id {
    STMT_BEGIN,
    STMT_COMMIT,
    STMT_ROLLBACK,
    STMT_SAVEPOINT,
    STMT_RELEASE,
    STMT_ROLLBACK_TO,
    STMT_PATIENT_INSERT,
    STMT_PATIENT_GET,
    STMT_RECORD_FIND,
    STMT_RECORD_INSERT,
    STMT_RECORD_DELETE,
    STMT_SIGNAL_INSERT,
    STMT_SIGNAL_LIST,
    STMT_SIGNAL_GET,
    STMT_SIGNAL_GROW,
    STMT_RECORD_GROW,
    STMT_BLOCK_LAST,
    STMT_BLOCK_RANGE,
    STMT_BLOCK_INSERT,
    STMT_BLOCK_UPDATE,
    STMT_ANN_INSERT,
    STMT_ANN_READ,
    STMT_RES_CURRENT,
    STMT_RES_VERSION_INSERT,
    STMT_RES_UPSERT,
    STMT_RES_GET_LATEST,
    STMT_RES_GET_VERSION,
    /* audit_rows.c prepares these from its own table (ct_store_stmt does
     * not know their SQL); ct_store_close finalizes them with the rest. */
    STMT_AUDIT_BEGIN_READ,
    STMT_AUDIT_LAST,
    STMT_AUDIT_INSERT,
    STMT_AUDIT_GET,
    STMT_CKPT_INSERT,
    STMT_CKPT_LATEST,
    STMT_CKPT_AT_OR_BELOW,
    /* search.c prepares these from its own table, like audit_rows.c. */
    STMT_SEARCH_BEGIN_READ,
    STMT_SEARCH_CURRENT,
    STMT_SEARCH_NEVER_EXISTED,
    STMT_SEARCH_INDEX_DELETE,
    STMT_SEARCH_INDEX_INSERT,
    STMT_SEARCH_HISTORY,
    STMT_SEARCH_HISTORY_COUNT,
    STMT_SEARCH_REFERENCE,
    STMT_SEARCH_GET_CURRENT,
    /* twin_rows.c prepares these from its own table, like audit_rows.c. */
    STMT_TWIN_STREAM_INSERT,
    STMT_TWIN_STREAM_UPDATE,
    STMT_TWIN_STREAMS_LIVE,
    STMT_TWIN_SEGMENT_INSERT,
    STMT_TWIN_SEGMENT_AT,
    STMT_TWIN_SEGMENT_LAST,
    STMT_TWIN_SOURCE_INSERT,
    STMT_TWIN_SOURCE_FIND,
    STMT_TWIN_SOURCES,
    STMT_TWIN_SOURCES_COUNT,
    STMT_TWIN_ALERT_INSERT,
    STMT_TWIN_ALERT_UPDATE,
    STMT_TWIN_ALERT_GET,
    STMT_TWIN_ALERT_ACK,
    STMT_TWIN_OUTBOX_ADD,
    STMT_TWIN_OUTBOX_DUE,
    STMT_TWIN_OUTBOX_MARK,
    STMT_TWIN_OUTBOX_SETTLE,
    /* token_rows.c prepares these from its own table, like audit_rows.c. */
    STMT_TOKEN_INSERT,
    STMT_TOKEN_FIND_HASH,
    STMT_TOKEN_GET,
    STMT_TOKEN_GET_BY_NAME,
    STMT_TOKEN_LIST,
    STMT_TOKEN_REVOKE,
    STMT_TOKEN_TOUCH,
    /* user_rows.c prepares these from its own table, like audit_rows.c. */
    STMT_USER_INSERT,
    STMT_USER_GET,
    STMT_USER_GET_BY_NAME,
    STMT_USER_LIST,
    STMT_USER_SET_PASSWORD,
    STMT_USER_DISABLE,
    STMT_USER_LOGIN_STATE,
    STMT_SESSION_INSERT,
    STMT_SESSION_FIND_HASH,
    STMT_SESSION_TOUCH,
    STMT_SESSION_END,
    STMT_SESSION_END_USER,
    /* beat_rows.c prepares these from its own table, like audit_rows.c. */
    STMT_TWIN_BEAT_INSERT,
    STMT_TWIN_BEAT_READ,
    STMT_COUNT_
};

struct ct_store {
    sqlite3 *db;
    char path[4096];
    int schema_version;
    int in_txn;        /* ct_store_begin was called and not yet ended */
    int txn_broken;    /* SQLite rolled the caller's transaction back */
    void *wal_watch;   /* ct_store_wal_watch's callback, owned (store.c) */
    int busy_limit_ms; /* > 0: the busy wait's limit for now, instead of 5 s */
    sqlite3_stmt *stmt[STMT_COUNT_];
    /* One block of encoded samples: the write path's only buffer. */
    unsigned char block[2 * CT_STORE_BLOCK_SAMPLES];
};

/* The cached statement `id`, reset and unbound, or NULL with err filled. */
sqlite3_stmt *ct_store_stmt(ct_store *st, enum ct_store_stmt_id id, ct_error *err);
/* The cached statement `id`, prepared from `sql` on first use: for the
 * files that keep their SQL beside their code (audit_rows.c, token_rows.c
 * ...). A NULL sql is CT_EINVAL naming `what` ("no SQL for token statement
 * 7"); ct_store_stmt is this with store.c's own table. */
sqlite3_stmt *ct_store_stmt_from(ct_store *st, enum ct_store_stmt_id id, const char *sql, const char *what,
                                 ct_error *err);
/* Resets and unbinds a statement after use (the cache keeps it). */
void ct_store_stmt_done(sqlite3_stmt *s);

/* 1 when s is a name of tokens and users: a letter, then letters, digits,
 * '.', '_' or '-', max bytes at most (the schema's CHECK, here so that the
 * refusal can name the field). */
int ct_store_name_ok(const char *s, size_t max);
/* 1 when s holds no space, control byte or DEL. */
int ct_store_printable(const char *s);

/* A twin_stream row selected as CT_STORE_TWIN_STREAM_COLUMNS, into *s
 * (twin_rows.c; also read by beat_rows.c and dash_rows.c). */
#define CT_STORE_TWIN_STREAM_COLUMNS \
    "id, patient, seq, t0_ms, fs_hz, leads, next_sample, state, created_ms, updated_ms"
int ct_store_twin_stream_read_row(ct_store *st, sqlite3_stmt *q, ct_store_twin_stream *s, ct_error *err);

/* CT_EDB (or a finer code for constraint failures the caller asked about)
 * with "what: <sqlite message>". */
int ct_store_db_error(ct_store *st, ct_error *err, const char *fmt, ...) CT_PRINTF(3, 4);

/* Makes room for element n of a growing array *v of *cap elements of
 * elem_size bytes: doubles the capacity (first_cap when empty) when full.
 * Returns 0, or -1 (nothing changed) when the size would overflow or
 * realloc fails. Every list-reading function of the room grows this way. */
int ct_store_grow(void **v, size_t *cap, size_t n, size_t elem_size, size_t first_cap);

/* An operation is what one public write function does: all or nothing.
 * Outside a caller transaction it is its own BEGIN IMMEDIATE ... COMMIT;
 * inside one it is a SAVEPOINT, so a failed call leaves the caller's
 * transaction as it was before the call and usable. */
int ct_store_op_begin(ct_store *st, ct_error *err);
int ct_store_op_end(ct_store *st, int rc, ct_error *err);

/* Copies column `col` (TEXT or NULL) into dst[cap]; CT_EDB when it does not
 * fit, which only a database written by someone else can cause. */
int ct_store_copy_text(ct_store *st, sqlite3_stmt *s, int col, char *dst, size_t cap,
                       const char *what, ct_error *err);

/* 0 when s is a NUL-terminated string shorter than cap (and non-empty if
 * required), else CT_EINVAL naming the field. */
int ct_store_check_text(const char *s, size_t cap, int required, const char *field,
                        ct_error *err);

/* UTC milliseconds since the epoch. */
int64_t ct_store_now_ms(void);

#endif
