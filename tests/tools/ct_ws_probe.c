/* ct_ws_probe: a WebSocket client for the integration tests of the
 * dashboard's feed (/ws/feed, docs/dashboard.md). It connects over TLS,
 * sends the HTTP upgrade with a random Sec-WebSocket-Key and checks the
 * Sec-WebSocket-Accept, sends the scripted messages as masked text frames
 * at the times given, and prints one line per server message until the
 * duration is over: text messages as they came (they are JSON), binary
 * sample frames as a JSON summary. With --samples FILE every sample frame
 * is also written there as "sample lead0 lead1 ..." lines, for comparing
 * with the stored record.
 *
 *   ct_ws_probe --port N --cafile PEM [--host H] [--token T | --cookie C]
 *               [--origin URL | --no-origin] [--send MS:TEXT]... [--duration-ms N]
 *               [--samples FILE]
 *
 * A refused upgrade prints {"upgrade":STATUS,"body":...} and exits 3.
 * Exit 0 after the duration, 1 on a protocol error, 2 on usage. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#define MAX_SENDS 32
#define MAX_FRAME (16u * 1024 * 1024)

typedef struct send_at {
    long at_ms;
    const char *text;
    int done;
} send_at;

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int write_all(SSL *ssl, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n > 0) {
        int w = SSL_write(ssl, p, (int)n);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A masked client frame (RFC 6455 5.3). */
static int send_frame(SSL *ssl, int opcode, const void *data, size_t n)
{
    unsigned char *f = malloc(n + 14);
    if (!f)
        return -1;
    size_t h = 0;
    f[h++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[h++] = (unsigned char)(0x80 | n);
    } else if (n < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = (unsigned char)(n >> 8);
        f[h++] = (unsigned char)n;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[h++] = (unsigned char)((uint64_t)n >> (8 * i));
    }
    unsigned char mask[4];
    RAND_bytes(mask, 4);
    memcpy(f + h, mask, 4);
    h += 4;
    const unsigned char *d = data;
    for (size_t i = 0; i < n; i++)
        f[h + i] = d[i] ^ mask[i & 3];
    int rc = write_all(ssl, f, h + n);
    free(f);
    return rc;
}

/* Reads exactly n bytes, waiting at most until deadline_ms. 1 ok, 0
 * timeout, -1 closed or error. */
static int read_exact(SSL *ssl, int fd, unsigned char *buf, size_t n, int64_t deadline_ms)
{
    size_t got = 0;
    while (got < n) {
        if (SSL_pending(ssl) == 0) {
            int64_t left = deadline_ms - mono_ms();
            if (left <= 0)
                return got == 0 ? 0 : -1;
            struct pollfd p = {fd, POLLIN, 0};
            int pr = poll(&p, 1, (int)(left > 50 ? 50 : left));
            if (pr < 0 && errno != EINTR)
                return -1;
            if (pr <= 0)
                continue;
        }
        int r = SSL_read(ssl, buf + got, (int)(n - got));
        if (r <= 0) {
            int e = SSL_get_error(ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                continue;
            return -1;
        }
        got += (size_t)r;
    }
    return 1;
}

static void print_json_string(const unsigned char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"' || s[i] == '\\')
            printf("\\%c", s[i]);
        else if (s[i] < 0x20)
            printf("\\u%04x", s[i]);
        else
            putchar(s[i]);
    }
    putchar('"');
}

static uint64_t le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int finish(SSL *ssl, SSL_CTX *ctx, int fd, FILE *samples, int rc)
{
    fflush(stdout);
    if (samples)
        fclose(samples);
    if (ssl) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    SSL_CTX_free(ctx);
    close(fd);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: ct_ws_probe --port N --cafile PEM [--host H] [--token T | --cookie C]\n"
                    "                   [--origin URL | --no-origin] [--send MS:TEXT]... [--duration-ms N]\n"
                    "                   [--samples FILE]\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1", *cafile = NULL, *token = NULL, *cookie = NULL, *origin = NULL;
    const char *samples_path = NULL;
    int port = 0, no_origin = 0;
    long duration_ms = 3000;
    send_at sends[MAX_SENDS];
    size_t n_sends = 0;
    static const struct option opts[] = {
        {"host", required_argument, NULL, 'H'},      {"port", required_argument, NULL, 'p'},
        {"cafile", required_argument, NULL, 'c'},    {"token", required_argument, NULL, 't'},
        {"cookie", required_argument, NULL, 'k'},    {"origin", required_argument, NULL, 'o'},
        {"no-origin", no_argument, NULL, 'O'},       {"send", required_argument, NULL, 's'},
        {"duration-ms", required_argument, NULL, 'd'}, {"samples", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'H': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': cafile = optarg; break;
        case 't': token = optarg; break;
        case 'k': cookie = optarg; break;
        case 'o': origin = optarg; break;
        case 'O': no_origin = 1; break;
        case 'd': duration_ms = atol(optarg); break;
        case 'S': samples_path = optarg; break;
        case 's': {
            char *colon = strchr(optarg, ':');
            if (!colon || n_sends >= MAX_SENDS) {
                usage();
                return 2;
            }
            *colon = '\0';
            sends[n_sends].at_ms = atol(optarg);
            sends[n_sends].text = colon + 1;
            sends[n_sends].done = 0;
            n_sends++;
            break;
        }
        default: usage(); return 2;
        }
    }
    if (port <= 0 || !cafile) {
        usage();
        return 2;
    }
    FILE *samples = NULL;
    if (samples_path && !(samples = fopen(samples_path, "w"))) {
        fprintf(stderr, "ct_ws_probe: %s: %s\n", samples_path, strerror(errno));
        return 1;
    }

    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai) {
        fprintf(stderr, "ct_ws_probe: cannot resolve %s\n", host);
        return 1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        fprintf(stderr, "ct_ws_probe: connect %s:%d: %s\n", host, port, strerror(errno));
        freeaddrinfo(ai);
        return 1;
    }
    freeaddrinfo(ai);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_load_verify_locations(ctx, cafile, NULL) != 1) {
        fprintf(stderr, "ct_ws_probe: cannot load %s\n", cafile);
        return finish(NULL, ctx, fd, samples, 1);
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, host);
    SSL_set1_host(ssl, host);
    if (SSL_connect(ssl) != 1) {
        fprintf(stderr, "ct_ws_probe: TLS handshake failed\n");
        ERR_print_errors_fp(stderr);
        return finish(ssl, ctx, fd, samples, 1);
    }

    unsigned char keyraw[16];
    RAND_bytes(keyraw, sizeof keyraw);
    char key[32];
    EVP_EncodeBlock((unsigned char *)key, keyraw, sizeof keyraw);
    char req[2048], hdr[1024] = "", default_origin[300];
    size_t hn = 0;
    if (token)
        hn += (size_t)snprintf(hdr + hn, sizeof hdr - hn, "Authorization: Bearer %s\r\n", token);
    if (cookie && hn < sizeof hdr)
        hn += (size_t)snprintf(hdr + hn, sizeof hdr - hn, "Cookie: %s\r\n", cookie);
    if (!origin) {
        snprintf(default_origin, sizeof default_origin, "https://%s:%d", host, port);
        origin = default_origin;
    }
    if (!no_origin && hn < sizeof hdr)
        hn += (size_t)snprintf(hdr + hn, sizeof hdr - hn, "Origin: %s\r\n", origin);
    int rn = snprintf(req, sizeof req,
                      "GET /ws/feed HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                      host, port, key, hdr);
    if (write_all(ssl, req, (size_t)rn) != 0)
        return finish(ssl, ctx, fd, samples, 1);

    /* The response head, byte by byte up to the blank line. */
    char head[8192];
    size_t n = 0;
    int64_t deadline = mono_ms() + 10000;
    while (n < sizeof head - 1) {
        unsigned char ch;
        if (read_exact(ssl, fd, &ch, 1, deadline) != 1)
            break;
        head[n++] = (char)ch;
        if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[n] = '\0';
    int status = 0;
    sscanf(head, "HTTP/1.1 %d", &status);
    if (status != 101) {
        long clen = 0;
        for (const char *cl = head; *cl; cl++)
            if (strncasecmp(cl, "\r\nContent-Length:", 17) == 0) {
                clen = atol(cl + 17);
                break;
            }
        if (clen < 0 || clen > 65536)
            clen = 0;
        unsigned char *body = calloc(1, (size_t)clen + 1);
        if (body && clen > 0)
            read_exact(ssl, fd, body, (size_t)clen, mono_ms() + 5000);
        printf("{\"upgrade\":%d,\"body\":", status);
        print_json_string(body ? body : (const unsigned char *)"", body ? strlen((char *)body) : 0);
        printf("}\n");
        free(body);
        return finish(ssl, ctx, fd, samples, 3);
    }
    /* RFC 6455 4.2.2: Accept = base64(SHA-1(key + GUID)). */
    char cat[128];
    snprintf(cat, sizeof cat, "%s258EAFA5-E914-47DA-95CA-C5AB0DC85B11", key);
    unsigned char sha[20];
    EVP_Digest(cat, strlen(cat), sha, NULL, EVP_sha1(), NULL);
    char accept[40];
    EVP_EncodeBlock((unsigned char *)accept, sha, sizeof sha);
    if (!strstr(head, accept)) {
        fprintf(stderr, "ct_ws_probe: Sec-WebSocket-Accept is wrong\n%s", head);
        return finish(ssl, ctx, fd, samples, 1);
    }

    int64_t t0 = mono_ms(), end = t0 + duration_ms;
    int rc = 0;
    for (;;) {
        int64_t now = mono_ms();
        for (size_t i = 0; i < n_sends; i++)
            if (!sends[i].done && now - t0 >= sends[i].at_ms) {
                sends[i].done = 1;
                if (send_frame(ssl, 1, sends[i].text, strlen(sends[i].text)) != 0) {
                    fprintf(stderr, "ct_ws_probe: write failed\n");
                    rc = 1;
                }
            }
        if (rc || now >= end)
            break;
        int64_t next = end;
        for (size_t i = 0; i < n_sends; i++)
            if (!sends[i].done && t0 + sends[i].at_ms < next)
                next = t0 + sends[i].at_ms;
        unsigned char h2[2];
        int r = read_exact(ssl, fd, h2, 2, next);
        if (r == 0)
            continue;
        if (r < 0) {
            printf("{\"closed\":\"connection\"}\n");
            break;
        }
        int opcode = h2[0] & 0x0f, fin = h2[0] & 0x80;
        uint64_t len = h2[1] & 0x7f;
        unsigned char ext[8];
        if (len == 126) {
            if (read_exact(ssl, fd, ext, 2, mono_ms() + 5000) != 1)
                break;
            len = le((unsigned char[]){ext[1], ext[0]}, 2);
        } else if (len == 127) {
            if (read_exact(ssl, fd, ext, 8, mono_ms() + 5000) != 1)
                break;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = (len << 8) | ext[i];
        }
        if ((h2[1] & 0x80) || len > MAX_FRAME || !fin) {
            fprintf(stderr, "ct_ws_probe: bad server frame (masked, fragmented or %llu bytes)\n",
                    (unsigned long long)len);
            rc = 1;
            break;
        }
        unsigned char *p = malloc(len + 1);
        if (!p || (len > 0 && read_exact(ssl, fd, p, len, mono_ms() + 5000) != 1)) {
            free(p);
            rc = 1;
            break;
        }
        p[len] = '\0';
        if (opcode == 1) {
            printf("%s\n", (char *)p);
        } else if (opcode == 2) {
            if (len < 24) {
                printf("{\"binary\":\"short\",\"bytes\":%llu}\n", (unsigned long long)len);
            } else {
                unsigned nl = (unsigned)le(p + 2, 2), nf = (unsigned)le(p + 4, 4);
                int64_t first = (int64_t)le(p + 8, 8);
                uint64_t bits = le(p + 16, 8);
                double server_ms;
                memcpy(&server_ms, &bits, sizeof server_ms);
                int ok = len == 24 + (uint64_t)nl * nf * 2;
                printf("{\"binary\":%d,\"version\":%d,\"n_leads\":%u,\"n_frames\":%u,\"first_sample\":%lld,"
                       "\"server_ms\":%.0f,\"size_ok\":%s}\n",
                       p[0], p[1], nl, nf, (long long)first, server_ms, ok ? "true" : "false");
                if (samples && ok)
                    for (unsigned f = 0; f < nf; f++) {
                        fprintf(samples, "%lld", (long long)(first + f));
                        for (unsigned l = 0; l < nl; l++)
                            fprintf(samples, " %d", (int)(int16_t)le(p + 24 + 2 * ((size_t)f * nl + l), 2));
                        fputc('\n', samples);
                    }
            }
        } else if (opcode == 8) {
            unsigned code = len >= 2 ? (unsigned)((p[0] << 8) | p[1]) : 0;
            printf("{\"closed\":%u}\n", code);
            free(p);
            break;
        } else if (opcode == 9) {
            send_frame(ssl, 10, p, len);
        }
        free(p);
        fflush(stdout);
    }
    send_frame(ssl, 8, "\x03\xe8", 2);
    return finish(ssl, ctx, fd, samples, rc);
}
