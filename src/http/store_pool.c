/* http room, database connections: the FHIR API's stores. civetweb runs
 * handlers on several worker threads at once and a ct_store (one SQLite
 * connection) must be used by one thread at a time, so each request takes
 * a store from a small pool hanging off the server and gives it back when
 * its handler returns (the router does that, so a handler cannot forget).
 * The one idea: connections are opened lazily and never more than the
 * workers that ever needed one at the same time (at most `threads`), WAL
 * lets those readers run beside the one writer, and BEGIN IMMEDIATE makes
 * writers queue on the busy timeout instead of failing. The mutex guards
 * only the list of idle stores, never a query.
 *
 * The WAL is checkpointed here too, by a thread of the server, not by the
 * requests: SQLite's automatic checkpoint runs inside the COMMIT that
 * crosses 1000 WAL pages (about every 25 ECG Observations), copying the
 * pages and syncing the WAL and the database, so one request in 25 paid
 * for the others and set the tail latency. Pooled connections turn it off
 * (ct_store_wal_watch) and signal the thread when the WAL has grown by
 * CKPT_WAKE_PAGES since its last checkpoint; the thread also runs every
 * CKPT_PERIOD_MS, so that a quiet server's last commits reach a synced file
 * within a second. Its checkpoints are PASSIVE (they take no write lock and
 * wait for nobody). Under a steady stream of writers a passive checkpoint
 * never finds the WAL quiet, so SQLite never starts it over and it grows;
 * past CKPT_MAX_PAGES the thread closes a gate that holds new transactions
 * back in ct_store_begin (the writers would otherwise always win the write
 * lock: their busy waits are short, a long waiter's are not), lets those
 * under way finish, runs a TRUNCATE and opens the gate: a pause of a few
 * milliseconds every CKPT_MAX_PAGES, and a WAL that cannot grow without
 * bound. docs/store.md, "Durability and checkpoints". */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cardiotwin/store.h"
#include "http_internal.h"

#define CKPT_PERIOD_MS 1000
#define CKPT_WAKE_PAGES 1000    /* 8 MiB of 8 KiB pages: SQLite's own threshold */
#define CKPT_MAX_PAGES 8192     /* 64 MiB: past this, the gate and a TRUNCATE */

struct ct_http_ckpt {
    ct_http_server *srv;
    ct_store *st;                 /* the thread's own connection */
    pthread_t thread;
    pthread_mutex_t lock;         /* guards stop, wanted, gate; with cond and opened */
    pthread_cond_t cond;
    pthread_cond_t opened;        /* the gate opened again */
    int stop, wanted;
    atomic_int gate;              /* 1: new transactions wait (read without the lock first) */
    /* Read by committing threads without the lock: */
    atomic_int base_pages;        /* WAL frames the last checkpoint saw */
    atomic_int signalled;         /* a wake-up is pending: do not signal again */
};

/* The wal hook of every pooled connection: runs on the committing thread
 * before its request is answered, so it only compares and, rarely,
 * signals. A WAL smaller than the base was restarted from its start. */
static void ckpt_on_commit(void *user, int wal_pages)
{
    struct ct_http_ckpt *c = user;
    int base = atomic_load_explicit(&c->base_pages, memory_order_relaxed);
    int grown = wal_pages >= base ? wal_pages - base : wal_pages;
    if (grown < CKPT_WAKE_PAGES || atomic_exchange(&c->signalled, 1))
        return;
    pthread_mutex_lock(&c->lock);
    c->wanted = 1;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* ct_store_begin of every pooled connection: almost always one relaxed
 * load; while the gate is closed, a wait for it to open. */
static void ckpt_before_begin(void *user)
{
    struct ct_http_ckpt *c = user;
    if (!atomic_load_explicit(&c->gate, memory_order_acquire))
        return;
    pthread_mutex_lock(&c->lock);
    while (atomic_load(&c->gate))
        pthread_cond_wait(&c->opened, &c->lock);
    pthread_mutex_unlock(&c->lock);
}

static void gate_set(struct ct_http_ckpt *c, int closed)
{
    pthread_mutex_lock(&c->lock);
    atomic_store(&c->gate, closed);
    if (!closed)
        pthread_cond_broadcast(&c->opened);
    pthread_mutex_unlock(&c->lock);
}

static void ckpt_run(struct ct_http_ckpt *c)
{
    ct_error err = {0};
    int log = 0, copied = 0;
    int rc = ct_store_checkpoint(c->st, CT_STORE_CHECKPOINT_PASSIVE, &log, &copied, &err);
    if (rc == CT_OK && log >= CKPT_MAX_PAGES) {
        /* Transactions under way finish (TRUNCATE waits for them within
         * the busy wait); new ones wait at the gate, at most that long. */
        gate_set(c, 1);
        rc = ct_store_checkpoint(c->st, CT_STORE_CHECKPOINT_TRUNCATE, &log, &copied, &err);
        gate_set(c, 0);
        if (rc == CT_OK)
            log = copied = 0;
    }
    if (rc != CT_OK)
        ct_http_log(c->srv, CT_HTTP_LOG_ERROR, "WAL checkpoint: %s (retried in %d ms)", err.msg, CKPT_PERIOD_MS);
    atomic_store(&c->base_pages, log);
    atomic_store(&c->signalled, 0);
}

static void *ckpt_main(void *arg)
{
    struct ct_http_ckpt *c = arg;
    pthread_mutex_lock(&c->lock);
    while (!c->stop) {
        if (!c->wanted) {
            struct timespec until;
            clock_gettime(CLOCK_MONOTONIC, &until);
            until.tv_sec += CKPT_PERIOD_MS / 1000;
            until.tv_nsec += (long)(CKPT_PERIOD_MS % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            int w = 0;
            while (!c->stop && !c->wanted && w != ETIMEDOUT)
                w = pthread_cond_timedwait(&c->cond, &c->lock, &until);
            if (c->stop)
                break;
        }
        c->wanted = 0;
        pthread_mutex_unlock(&c->lock);
        ckpt_run(c);
        pthread_mutex_lock(&c->lock);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

static void ckpt_free(struct ct_http_ckpt *c, int started)
{
    if (!c)
        return;
    if (started) {
        pthread_mutex_lock(&c->lock);
        c->stop = 1;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        pthread_join(c->thread, NULL);
        pthread_cond_destroy(&c->opened);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
    }
    ct_store_close(c->st);
    free(c);
}

/* Opens the thread's connection and starts it. The condition variable
 * waits on CLOCK_MONOTONIC: a clock stepped back must not stop checkpoints. */
static int ckpt_start(ct_http_server *srv, ct_error *err)
{
    struct ct_http_ckpt *c = calloc(1, sizeof *c);
    if (!c)
        return ct_error_set(err, CT_ENOMEM, "out of memory for the checkpoint thread");
    c->srv = srv;
    int rc = ct_store_open(srv->db_path, &c->st, err);
    if (rc != CT_OK) {
        ckpt_free(c, 0);
        return ct_error_prefix(err, "the checkpoint thread's connection");
    }
    pthread_condattr_t ca;
    if (pthread_mutex_init(&c->lock, NULL) != 0) {
        ckpt_free(c, 0);
        return ct_error_set(err, CT_ENOMEM, "cannot create a mutex");
    }
    if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&c->cond, &ca) != 0) {
        pthread_mutex_destroy(&c->lock);
        ckpt_free(c, 0);
        return ct_error_set(err, CT_ENOMEM, "cannot create a condition variable");
    }
    pthread_condattr_destroy(&ca);
    if (pthread_cond_init(&c->opened, NULL) != 0) {
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        ckpt_free(c, 0);
        return ct_error_set(err, CT_ENOMEM, "cannot create a condition variable");
    }
    if (pthread_create(&c->thread, NULL, ckpt_main, c) != 0) {
        pthread_cond_destroy(&c->opened);
        pthread_cond_destroy(&c->cond);
        pthread_mutex_destroy(&c->lock);
        ckpt_free(c, 0);
        return ct_error_set(err, CT_ENOMEM, "cannot start the checkpoint thread");
    }
    srv->ckpt = c;
    return CT_OK;
}

/* A pooled connection leaves checkpoints to the thread. */
static void pool_watch(ct_http_server *srv, ct_store *st)
{
    if (srv->ckpt)
        ct_store_wal_watch(st, ckpt_on_commit, ckpt_before_begin, srv->ckpt);
}

int ct_http_pool_init(ct_http_server *srv, ct_error *err)
{
    if (pthread_mutex_init(&srv->pool_lock, NULL) != 0)
        return ct_error_set(err, CT_ENOMEM, "cannot create a mutex");
    srv->pool_lock_ready = 1;
    if (!srv->opt.db_path)
        return CT_OK;
    size_t n = strlen(srv->opt.db_path);
    if (n == 0 || n >= sizeof srv->db_path)
        return ct_error_set(err, CT_EINVAL, "database path is empty or longer than %zu bytes",
                            sizeof srv->db_path - 1);
    memcpy(srv->db_path, srv->opt.db_path, n + 1);
    srv->opt.db_path = srv->db_path;
    srv->pool_cap = (size_t)srv->opt.threads;
    srv->pool = calloc(srv->pool_cap, sizeof *srv->pool);
    if (!srv->pool)
        return ct_error_set(err, CT_ENOMEM, "out of memory for %zu database connections", srv->pool_cap);
    /* Opening once here migrates the database and refuses a bad one before
     * the server listens. */
    ct_store *st = NULL;
    int rc = ct_store_open(srv->db_path, &st, err);
    if (rc != CT_OK)
        return rc;
    srv->pool[srv->pool_n++] = st;
    if ((rc = ckpt_start(srv, err)) != CT_OK)
        return rc;
    pool_watch(srv, st);
    return CT_OK;
}

void ct_http_pool_free(ct_http_server *srv)
{
    /* The stores first: their wal hooks point at the checkpointer. */
    for (size_t i = 0; i < srv->pool_n; i++)
        ct_store_close(srv->pool[i]);
    ckpt_free(srv->ckpt, srv->ckpt != NULL);
    srv->ckpt = NULL;
    free(srv->pool);
    srv->pool = NULL;
    srv->pool_n = srv->pool_cap = 0;
    if (srv->pool_lock_ready)
        pthread_mutex_destroy(&srv->pool_lock);
    srv->pool_lock_ready = 0;
}

int ct_http_store_acquire(ct_http_req *req, ct_store **out, ct_error *err)
{
    ct_http_server *srv = req->srv;
    *out = NULL;
    if (req->store) {
        *out = req->store;
        return CT_OK;
    }
    if (!srv->db_path[0])
        return ct_error_set(err, CT_EUNSUPPORTED, "this server was started without a database");
    ct_store *st = NULL;
    pthread_mutex_lock(&srv->pool_lock);
    if (srv->pool_n > 0)
        st = srv->pool[--srv->pool_n];
    pthread_mutex_unlock(&srv->pool_lock);
    if (!st) {
        int rc = ct_store_open(srv->db_path, &st, err);
        if (rc != CT_OK)
            return rc;
        pool_watch(srv, st);
    }
    req->store = st;
    *out = st;
    return CT_OK;
}

void ct_http_store_release(ct_http_req *req)
{
    ct_store *st = req->store;
    if (!st)
        return;
    req->store = NULL;
    /* A handler that left a transaction open is a bug; the next request on
     * this connection must not inherit it. */
    ct_store_rollback(st);
    ct_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->pool_lock);
    int kept = srv->pool_n < srv->pool_cap;
    if (kept)
        srv->pool[srv->pool_n++] = st;
    pthread_mutex_unlock(&srv->pool_lock);
    if (!kept)
        ct_store_close(st);
}
