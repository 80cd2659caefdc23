/* http room, rate limits: how fast one credential, one client address or
 * one kind of audit entry may go. authorize() (router.c) takes a token per
 * request from the caller's bucket (keyed by token or session id), the
 * login handler from the client address's, and the audit of refused
 * requests from its own, so that no single source can flood the workers or
 * the audit log.
 *
 * The one idea: a token bucket (rate r per second, depth b) costs two
 * numbers per key and answers in O(1): a client may send b requests at
 * once and r per second after that, and a refused client is told exactly
 * when the next token arrives (Retry-After). The buckets live in one fixed
 * table of CT_HTTP_LIMITER_SLOTS entries in the server object, indexed by
 * a keyed hash of the key (SHA-256 under a random per-server seed, so that
 * nobody can choose keys that collide on purpose) with a probe window of 8
 * slots. When the window is full the bucket least recently used is
 * dropped; a bucket that comes back is full, so under pressure the limiter
 * only becomes more lenient, never refuses the wrong client, and its
 * memory never grows. One mutex guards it: a take is a hash and a few
 * compares, far below the cost of the TLS record the request came in.
 *
 * The table also holds the KDF gate: at most CT_HTTP_KDF_MAX_CONCURRENT
 * password hashes run at once, because each scrypt run holds 128 MiB. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "http_internal.h"

#define PROBE 8

typedef struct slot {
    unsigned char key[16];        /* the key's keyed hash, truncated */
    int used;
    ct_http_bucket bucket;
    int64_t suppressed;
    int64_t touched_us;
} slot;

struct ct_http_limiter {
    pthread_mutex_t lock;
    pthread_cond_t kdf_cond;
    int kdf_running;
    unsigned char seed[32];
    slot slots[CT_HTTP_LIMITER_SLOTS];
};

int64_t ct_http_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int ct_http_bucket_take(ct_http_bucket *b, double rate_per_s, double burst, int64_t now_us, int64_t *retry_after_ms)
{
    if (retry_after_ms)
        *retry_after_ms = 0;
    if (burst < 1)
        burst = 1;
    if (b->last_us == 0) {
        b->tokens = burst;
        b->last_us = now_us;
    } else if (now_us > b->last_us) {
        /* A clock that went backwards (it cannot, monotonic) would only
         * delay the refill. */
        b->tokens += (double)(now_us - b->last_us) * rate_per_s / 1e6;
        if (b->tokens > burst)
            b->tokens = burst;
        b->last_us = now_us;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    if (retry_after_ms) {
        double wait_ms = rate_per_s > 0 ? (1.0 - b->tokens) * 1000.0 / rate_per_s : 3600e3;
        int64_t w = (int64_t)wait_ms;
        *retry_after_ms = (double)w < wait_ms ? w + 1 : w;
    }
    return 0;
}

ct_http_limiter *ct_http_limiter_new(void)
{
    ct_http_limiter *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    if (RAND_bytes(l->seed, sizeof l->seed) != 1 || pthread_mutex_init(&l->lock, NULL) != 0) {
        free(l);
        return NULL;
    }
    if (pthread_cond_init(&l->kdf_cond, NULL) != 0) {
        pthread_mutex_destroy(&l->lock);
        free(l);
        return NULL;
    }
    return l;
}

void ct_http_limiter_free(ct_http_limiter *l)
{
    if (!l)
        return;
    pthread_cond_destroy(&l->kdf_cond);
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static void keyed_hash(const ct_http_limiter *l, const char *key, unsigned char out[16])
{
    unsigned char full[32];
    unsigned int n = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
             EVP_DigestUpdate(c, l->seed, sizeof l->seed) == 1 && EVP_DigestUpdate(c, key, strlen(key)) == 1 &&
             EVP_DigestFinal_ex(c, full, &n) == 1;
    EVP_MD_CTX_free(c);
    if (!ok) {
        /* Without a hash every key shares one slot: stricter, still bounded. */
        memset(out, 0xff, 16);
        return;
    }
    memcpy(out, full, 16);
}

int ct_http_limiter_take(ct_http_limiter *l, const char *key, double rate_per_s, double burst, int64_t now_us,
                         int64_t *retry_after_ms, int64_t *suppressed)
{
    if (retry_after_ms)
        *retry_after_ms = 0;
    if (suppressed)
        *suppressed = 0;
    if (!l || !key)
        return 1;
    unsigned char h[16];
    keyed_hash(l, key, h);
    size_t start = ((size_t)h[0] | (size_t)h[1] << 8 | (size_t)h[2] << 16) % CT_HTTP_LIMITER_SLOTS;
    pthread_mutex_lock(&l->lock);
    slot *found = NULL, *empty = NULL, *oldest = NULL;
    for (size_t i = 0; i < PROBE; i++) {
        slot *s = &l->slots[(start + i) % CT_HTTP_LIMITER_SLOTS];
        if (s->used && memcmp(s->key, h, sizeof h) == 0) {
            found = s;
            break;
        }
        if (!s->used && !empty)
            empty = s;
        if (s->used && (!oldest || s->touched_us < oldest->touched_us))
            oldest = s;
    }
    if (!found) {
        found = empty ? empty : oldest;
        memset(found, 0, sizeof *found);
        memcpy(found->key, h, sizeof h);
        found->used = 1;
    }
    found->touched_us = now_us;
    int ok = ct_http_bucket_take(&found->bucket, rate_per_s, burst, now_us, retry_after_ms);
    if (ok) {
        if (suppressed)
            *suppressed = found->suppressed;
        found->suppressed = 0;
    } else {
        found->suppressed++;
    }
    pthread_mutex_unlock(&l->lock);
    return ok;
}

void ct_http_kdf_gate_enter(ct_http_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    while (l->kdf_running >= CT_HTTP_KDF_MAX_CONCURRENT)
        pthread_cond_wait(&l->kdf_cond, &l->lock);
    l->kdf_running++;
    pthread_mutex_unlock(&l->lock);
}

void ct_http_kdf_gate_leave(ct_http_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->kdf_running--;
    pthread_cond_signal(&l->kdf_cond);
    pthread_mutex_unlock(&l->lock);
}
