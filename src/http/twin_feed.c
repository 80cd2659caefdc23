/* http room, the live twin's life in the server: the server owns one
 * ct_twin, created at start on the API's database with the alert policy in
 * force and freed at stop, after the workers that feed it have finished
 * (fhir_ops.c hands it each ECG Observation). With an upstream FHIR base,
 * one background thread empties the twin's durable outbox into it
 * (ct_twin_push) every push interval.
 *
 * The one idea: the push thread owns its own store connection and its own
 * HTTP client, so it shares nothing with the workers but the database file;
 * it sleeps on a condition variable so that a stop wakes it at once, and a
 * push already under way is allowed to finish (the outbox keeps whatever it
 * did not deliver for the next run). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cardiotwin/client.h"
#include "cardiotwin/policy.h"
#include "cardiotwin/store.h"
#include "cardiotwin/twin.h"
#include "dash_internal.h"
#include "http_internal.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long push_interval_ms(const ct_http_server *srv)
{
    return srv->opt.push_interval_ms > 0 ? srv->opt.push_interval_ms : CT_HTTP_DEFAULT_PUSH_INTERVAL_MS;
}

static void push_once(ct_http_server *srv, ct_store *st)
{
    ct_twin_push_options po;
    ct_twin_push_options_default(&po);
    po.base_url = srv->upstream_url;
    ct_twin_push_result res;
    memset(&res, 0, sizeof res);
    ct_error err = {0};
    if (ct_twin_push(st, srv->push_client, &po, wall_ms(), &res, &err) != 0) {
        ct_http_log(srv, CT_HTTP_LOG_ERROR, "pushing reports to %s: %s", srv->upstream_url, err.msg);
        return;
    }
    if (res.sent || res.retry || res.failed)
        ct_http_log(srv, res.failed ? CT_HTTP_LOG_WARNING : CT_HTTP_LOG_INFO,
                    "pushed to %s: %zu delivered, %zu to retry, %zu given up%s%s", srv->upstream_url, res.sent,
                    res.retry, res.failed, res.last_error[0] ? "; last error: " : "", res.last_error);
}

static void *push_main(void *arg)
{
    ct_http_server *srv = arg;
    ct_store *st = NULL;
    ct_error err = {0};
    if (ct_store_open(srv->db_path, &st, &err) != 0) {
        ct_http_log(srv, CT_HTTP_LOG_ERROR, "the push thread cannot open the database, no report is pushed: %s",
                    err.msg);
        return NULL;
    }
    long interval = push_interval_ms(srv);
    pthread_mutex_lock(&srv->push_lock);
    while (!srv->push_stop) {
        pthread_mutex_unlock(&srv->push_lock);
        push_once(srv, st);
        pthread_mutex_lock(&srv->push_lock);
        if (srv->push_stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += interval / 1000;
        until.tv_nsec += (interval % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!srv->push_stop) {
            int rc = pthread_cond_timedwait(&srv->push_cond, &srv->push_lock, &until);
            if (rc == ETIMEDOUT)
                break;
        }
    }
    pthread_mutex_unlock(&srv->push_lock);
    ct_store_close(st);
    return NULL;
}

static int start_push(ct_http_server *srv, ct_error *err)
{
    long iv = srv->opt.push_interval_ms;
    if (iv < 0 || iv > CT_HTTP_MAX_PUSH_INTERVAL_MS || (iv > 0 && iv < 1000))
        return ct_error_set(err, CT_EINVAL, "push interval %ld ms is out of range 1000..%ld", iv,
                            CT_HTTP_MAX_PUSH_INTERVAL_MS);
    ct_client_options co;
    ct_client_options_default(&co);
    /* The outbox does the retrying, durably: one attempt per push. */
    co.max_retries = 0;
    co.ca_file = srv->upstream_ca[0] ? srv->upstream_ca : NULL;
    int rc = ct_client_new(&co, &srv->push_client, err);
    if (rc != 0) {
        ct_error_prefix(err, "upstream %s", srv->upstream_url);
        return rc;
    }

    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca) != 0)
        return ct_error_set(err, CT_ENOMEM, "cannot set up the push thread's clock");
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_cond_init(&srv->push_cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!ok)
        return ct_error_set(err, CT_ENOMEM, "cannot create the push thread's condition variable");
    if (pthread_mutex_init(&srv->push_lock, NULL) != 0) {
        pthread_cond_destroy(&srv->push_cond);
        return ct_error_set(err, CT_ENOMEM, "cannot create the push thread's mutex");
    }
    srv->push_sync_ready = 1;
    if (pthread_create(&srv->push_thread, NULL, push_main, srv) != 0)
        return ct_error_set(err, CT_ENOMEM, "cannot start the thread that pushes reports to %s", srv->upstream_url);
    srv->push_running = 1;
    return 0;
}

static int copy_opt(char *dst, size_t cap, const char *src, const char *what, ct_error *err)
{
    size_t n = strlen(src);
    if (n == 0 || n >= cap)
        return ct_error_set(err, CT_EINVAL, "%s is %s", what, n == 0 ? "empty" : "too long");
    memcpy(dst, src, n + 1);
    return 0;
}

int ct_http_twin_init(ct_http_server *srv, ct_error *err)
{
    if (!srv->db_path[0]) {
        if (srv->opt.upstream_url)
            return ct_error_set(err, CT_EINVAL, "an upstream needs a database to keep the reports in");
        return 0;
    }
    int rc = 0;
    if (srv->opt.upstream_url) {
        rc = copy_opt(srv->upstream_url, sizeof srv->upstream_url, srv->opt.upstream_url, "the upstream URL", err);
        if (rc == 0 && strncmp(srv->upstream_url, "https://", 8) != 0 && strncmp(srv->upstream_url, "http://", 7) != 0)
            rc = ct_error_set(err, CT_EINVAL, "upstream '%s' is not an http:// or https:// URL", srv->upstream_url);
        if (rc == 0 && srv->opt.upstream_ca_file)
            rc = copy_opt(srv->upstream_ca, sizeof srv->upstream_ca, srv->opt.upstream_ca_file,
                          "the upstream CA file", err);
        if (rc != 0)
            return rc;
    }
    if (srv->opt.policy_path)
        rc = ct_policy_load_file(srv->opt.policy_path, &srv->policy, err);
    else
        rc = ct_policy_load_default(&srv->policy, err);
    if (rc != 0)
        return rc;

    ct_twin_options to;
    ct_twin_options_default(&to);
    to.policy = srv->policy;
    to.upstream_base_url = srv->upstream_url[0] ? srv->upstream_url : NULL;
    /* Beats, events and alerts for the dashboard's live feed (ws_feed.c). */
    to.observer = ct_http_ws_observer(srv);
    ct_store *st = NULL;
    rc = ct_store_open(srv->db_path, &st, err);
    if (rc == 0) {
        rc = ct_twin_new(&to, st, &srv->twin, err);
        ct_store_close(st);
    }
    if (rc != 0) {
        ct_error_prefix(err, "starting the live twin");
        return rc;
    }
    ct_http_log(srv, CT_HTTP_LOG_INFO, "live twin started with the %s alert policy, detector %s",
                srv->opt.policy_path ? srv->opt.policy_path : "default", ct_twin_device_id(srv->twin));
    if (srv->upstream_url[0]) {
        rc = start_push(srv, err);
        if (rc != 0)
            return rc;
        ct_http_log(srv, CT_HTTP_LOG_INFO, "reports are pushed to %s every %ld ms", srv->upstream_url,
                    push_interval_ms(srv));
    }
    return 0;
}

void ct_http_twin_free(ct_http_server *srv)
{
    if (srv->push_running) {
        pthread_mutex_lock(&srv->push_lock);
        srv->push_stop = 1;
        pthread_cond_signal(&srv->push_cond);
        pthread_mutex_unlock(&srv->push_lock);
        pthread_join(srv->push_thread, NULL);
        srv->push_running = 0;
    }
    if (srv->push_sync_ready) {
        pthread_cond_destroy(&srv->push_cond);
        pthread_mutex_destroy(&srv->push_lock);
        srv->push_sync_ready = 0;
    }
    ct_client_free(srv->push_client);
    srv->push_client = NULL;
    ct_twin_free(srv->twin);
    srv->twin = NULL;
    ct_policy_free(srv->policy);
    srv->policy = NULL;
}
