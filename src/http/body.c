/* http room, request bodies: the one way a handler reads what a client
 * sent. The router refuses a Content-Length over max_body_bytes before any
 * handler runs, but a chunked body announces no length, so the limit is
 * enforced again here on the bytes as they arrive: at most
 * max_body_bytes + 1 are ever read (the one extra byte tells "exactly at
 * the limit" from "over it"), and the buffer grows by doubling, so a
 * client that lies pays for its own bytes only.
 *
 * "Expect: 100-continue" is answered here, when a handler actually wants
 * the body: civetweb leaves that to request handlers. Once the interim
 * response is written civetweb considers the response started, so
 * response.c then writes the final head itself and closes the connection
 * afterwards (a reconnection for the clients, curl among them, that wait
 * for 100 before sending more than 1 MiB).
 *
 * A body must also keep coming: after BODY_GRACE_MS it must have averaged
 * BODY_MIN_BYTES_PER_S, or the read stops (CT_EIO) and the connection
 * closes. civetweb bounds each read call by request_timeout_ms but not
 * their sum, so without this a client sending one byte every few seconds
 * would hold a worker for as long as it liked (docs/security.md, "Rate
 * limits and slow clients"). 8 KiB/s is a 64 kbit/s link: any gateway
 * that can stream ECG sends faster. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_internal.h"

#define BODY_FIRST_CHUNK (64 * 1024)
/* After a body turned out too large, this much more is read and dropped so
 * that a client only a little over the limit receives the 413 instead of a
 * reset (closing a socket with unread input sends RST, which may destroy
 * the response in flight). Past it the connection is simply closed. */
#define BODY_DRAIN_MAX (1024 * 1024)
#define BODY_GRACE_MS 2000
#define BODY_MIN_BYTES_PER_S 8192

/* 1 while `used` bytes after `elapsed_us` is fast enough to go on. */
static int body_pace_ok(size_t used, int64_t elapsed_us)
{
    int64_t over_ms = elapsed_us / 1000 - BODY_GRACE_MS;
    return over_ms <= 0 || (int64_t)used >= over_ms * BODY_MIN_BYTES_PER_S / 1000;
}

static void drain(ct_http_req *req)
{
    char tmp[8192];
    size_t dropped = 0;
    while (dropped < BODY_DRAIN_MAX) {
        int r = mg_read(req->conn, tmp, sizeof tmp);
        if (r <= 0)
            return;
        dropped += (size_t)r;
    }
}

int ct_http_read_body(ct_http_req *req, char **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    const int64_t max = req->srv->opt.max_body_bytes;
    const int64_t declared = req->ri->content_length;
    const char *expect = mg_get_header(req->conn, "Expect");
    if (expect && strcasecmp(expect, "100-continue") != 0)
        return CT_EUNSUPPORTED;
    if (declared > max)
        return CT_ELIMIT;
    if (!req->unread_body) {
        *out = calloc(1, 1);
        return *out ? CT_OK : CT_ENOMEM;
    }
    if (expect && !req->sent_continue && req->ri->http_version &&
        strcmp(req->ri->http_version, "1.1") == 0) {
        if (mg_write(req->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 25)
            return CT_EIO;
        req->sent_continue = 1;
    }

    size_t limit = (size_t)max + 1;
    size_t cap = declared >= 0 ? (size_t)declared + 1 : BODY_FIRST_CHUNK;
    if (cap > limit + 1)
        cap = limit + 1;
    char *buf = malloc(cap);
    if (!buf)
        return CT_ENOMEM;
    size_t used = 0;
    const int64_t start_us = ct_http_now_us();
    for (;;) {
        if (declared >= 0 && used == (size_t)declared)
            break;
        if (used + 1 >= cap) {
            if (cap >= limit + 1)
                break;
            size_t ncap = cap * 2 > limit + 1 ? limit + 1 : cap * 2;
            char *n = realloc(buf, ncap);
            if (!n) {
                free(buf);
                return CT_ENOMEM;
            }
            buf = n;
            cap = ncap;
        }
        int r = mg_read(req->conn, buf + used, cap - 1 - used);
        if (r < 0) {
            free(buf);
            return CT_EIO;
        }
        if (r == 0)
            break;
        used += (size_t)r;
        if (!body_pace_ok(used, ct_http_now_us() - start_us)) {
            free(buf);
            return CT_EIO;
        }
        if (used > (size_t)max) {
            free(buf);
            drain(req);
            return CT_ELIMIT;
        }
    }
    if (declared >= 0 && used != (size_t)declared) {
        free(buf);
        return CT_EIO;
    }
    buf[used] = '\0';
    req->unread_body = 0;
    *out = buf;
    *len = used;
    return CT_OK;
}
