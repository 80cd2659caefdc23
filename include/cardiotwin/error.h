/* Errors: every fallible function returns 0 or a negative CT_E... code and,
 * when given a ct_error, fills it with one line a person can act on
 * ("record 100: 100.dat is 1949998 bytes, header promises 1950000").
 * Library rooms never print; cli and http decide what people see. */
#ifndef CARDIOTWIN_ERROR_H
#define CARDIOTWIN_ERROR_H

#include <stddef.h>

enum {
    CT_OK = 0,
    CT_EINVAL = -1,    /* a caller passed something that cannot be right */
    CT_EIO = -2,       /* reading or writing a file failed */
    CT_EFORMAT = -3,   /* input is malformed (header, annotation, JSON ...) */
    CT_ECHECKSUM = -4, /* data disagrees with its own checksum */
    CT_ENOMEM = -5,    /* allocation failed */
    CT_ELIMIT = -6,    /* input exceeds a configured or built-in limit */
    CT_EDB = -7,       /* the database refused or failed */
    CT_ENOTFOUND = -8, /* no such record, resource, file */
    CT_EEXIST = -9,    /* already there (and differs) */
    CT_ENET = -10,     /* network transfer failed */
    CT_ETLS = -11,     /* TLS or certificate set-up failed */
    CT_EVERSION = -12, /* data written by a newer cardiotwin */
    CT_EUNSUPPORTED = -13, /* valid input we do not handle (e.g. a format) */
};

#define CT_ERROR_MSG_MAX 512

typedef struct ct_error {
    int code;                   /* the CT_E... code, CT_OK when clear */
    char msg[CT_ERROR_MSG_MAX]; /* one line, no trailing newline */
} ct_error;

#if defined(__GNUC__)
#define CT_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CT_PRINTF(f, a)
#endif

/* Fills err (which may be NULL) and returns code, so that callers can write
 * `return ct_error_set(err, CT_EFORMAT, "...", ...);`. */
int ct_error_set(ct_error *err, int code, const char *fmt, ...) CT_PRINTF(3, 4);

/* Puts "prefix: " in front of the message already in err, to add context
 * on the way up ("import 100: " + "100.dat: ..."). Returns err->code. */
int ct_error_prefix(ct_error *err, const char *fmt, ...) CT_PRINTF(2, 3);

void ct_error_clear(ct_error *err);

/* A short stable name for a code ("format", "checksum"), for logs and JSON. */
const char *ct_error_name(int code);

#endif
