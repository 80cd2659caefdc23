/* Error values shared by every room: a code plus one human line. The message
 * buffer is fixed so that reporting an error never allocates. */
#include "cardiotwin/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int ct_error_set(ct_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int ct_error_prefix(ct_error *err, const char *fmt, ...)
{
    if (!err)
        return CT_EINVAL;
    char prefix[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* Truncation is accepted: the message stays one bounded line. */
    char joined[CT_ERROR_MSG_MAX];
    size_t used = strnlen(prefix, sizeof joined - 3);
    memcpy(joined, prefix, used);
    memcpy(joined + used, ": ", 2);
    used += 2;
    size_t room = sizeof joined - used - 1;
    size_t tail = strnlen(err->msg, room);
    memcpy(joined + used, err->msg, tail);
    joined[used + tail] = '\0';
    memcpy(err->msg, joined, sizeof joined);
    return err->code;
}

void ct_error_clear(ct_error *err)
{
    if (err) {
        err->code = CT_OK;
        err->msg[0] = '\0';
    }
}

const char *ct_error_name(int code)
{
    switch (code) {
    case CT_OK: return "ok";
    case CT_EINVAL: return "invalid";
    case CT_EIO: return "io";
    case CT_EFORMAT: return "format";
    case CT_ECHECKSUM: return "checksum";
    case CT_ENOMEM: return "nomem";
    case CT_ELIMIT: return "limit";
    case CT_EDB: return "db";
    case CT_ENOTFOUND: return "notfound";
    case CT_EEXIST: return "exists";
    case CT_ENET: return "net";
    case CT_ETLS: return "tls";
    case CT_EVERSION: return "version";
    case CT_EUNSUPPORTED: return "unsupported";
    default: return "unknown";
    }
}
