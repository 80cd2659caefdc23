/* http room, database connections: the FHIR API's stores. civetweb runs
 * handlers on several worker threads at once and a ct_store (one SQLite
 * connection) must be used by one thread at a time, so each request takes
 * a store from a small pool hanging off the server and gives it back when
 * its handler returns (the router does that, so a handler cannot forget).
 * The one idea: connections are opened lazily and never more than the
 * workers that ever needed one at the same time (at most `threads`), WAL
 * lets those readers run beside the one writer, and BEGIN IMMEDIATE makes
 * writers queue on the busy timeout instead of failing. The mutex guards
 * only the list of idle stores, never a query. */
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/store.h"
#include "http_internal.h"

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
    return CT_OK;
}

void ct_http_pool_free(ct_http_server *srv)
{
    for (size_t i = 0; i < srv->pool_n; i++)
        ct_store_close(srv->pool[i]);
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
