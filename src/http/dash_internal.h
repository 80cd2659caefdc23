/* Inside the http room: the dashboard's server side (docs/dashboard.md):
 * static files (static_files.c), the JSON API under /api (dash_api.c) and
 * the WebSocket feed at /ws/feed (ws_feed.c). Nothing here is visible
 * outside src/http. */
#ifndef CT_HTTP_DASH_INTERNAL_H
#define CT_HTTP_DASH_INTERNAL_H

#include <jansson.h>

#include "cardiotwin/store.h"
#include "cardiotwin/twin.h"
#include "http_internal.h"

/* The dashboard pages' Content-Security-Policy: their own origin only. */
#define CT_HTTP_DASH_CSP                                                                             \
    "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; " \
    "base-uri 'none'; form-action 'self'"
/* Largest static file served; three.module.js is about 1.3 MB. */
#define CT_HTTP_STATIC_MAX_BYTES (8 * 1024 * 1024)
/* WebSockets open at once. Each holds a civetweb worker for its life, so
 * at most half the workers go to sockets and the API stays reachable. */
#define CT_HTTP_WS_MAX_SOCKETS 64
/* Bytes waiting to be written to one socket; a viewer that falls this far
 * behind is dropped. At 16x replay two leads are ~25 kB/s. */
#define CT_HTTP_WS_QUEUE_MAX_BYTES (2 * 1024 * 1024)
/* Beats, events and alerts waiting for their samples to be sent. */
#define CT_HTTP_WS_PENDING_MAX 4096
/* The feeder's period: the contract asks for data at least every 100 ms. */
#define CT_HTTP_WS_TICK_MS 40
/* Largest text message a client may send. */
#define CT_HTTP_WS_MSG_MAX 1024

typedef struct ct_http_ws_hub ct_http_ws_hub;

/* The dashboard's state in the server (srv->dash). */
struct ct_http_dash {
    char web_root[CT_HTTP_PATH_MAX]; /* resolved (realpath), "" without one */
    size_t web_root_len;
    ct_http_ws_hub *hub;
};

/* Resolves opt.web_root (a directory, or CT_EINVAL/CT_ENOTFOUND naming it)
 * and makes the WebSocket hub; called before the twin exists. */
int ct_http_dash_init(ct_http_server *srv, ct_error *err);
/* Registers /ws/feed with civetweb and starts the feeder thread; after
 * mg_start2 and the twin. */
int ct_http_dash_start(ct_http_server *srv, ct_error *err);
/* Stops the feeder and frees everything; after civetweb's workers have
 * stopped (no socket is left) and before the twin is freed. NULL-safe. */
void ct_http_dash_free(ct_http_server *srv);
/* The twin's observer, fanned out to the sockets that watch the patient. */
ct_twin_observer ct_http_ws_observer(ct_http_server *srv);

/* ---- handlers -------------------------------------------------------------- */
int ct_http_handle_static(ct_http_req *req);
int ct_http_handle_api_sources(ct_http_req *req);
int ct_http_handle_api_alerts(ct_http_req *req);
int ct_http_handle_api_alert_ack(ct_http_req *req);
int ct_http_handle_api_strip(ct_http_req *req);

/* ---- shared by dash_api.c and ws_feed.c ------------------------------------ */
/* An alert row as /api/alerts shows it (a new reference). */
json_t *ct_http_dash_alert_json(const ct_store_twin_alert *a);
/* A record's id as the dashboard names it: its name, or "source:name"
 * when another source has a record of that name. */
void ct_http_dash_record_id(const ct_store_record *all, size_t n, size_t i, char *buf, size_t cap);
/* Finds a record by that id among all. Returns its index, -1 when none. */
long ct_http_dash_record_find(const ct_store_record *all, size_t n, const char *id);
/* Leads as MDC codes: the code of a lead name ("MLII" -> 131330), 0 if
 * it is not one the fhir room knows. */
int ct_http_dash_lead_code(const char *name);
/* Writes one audit entry for a read of patient data by the caller. */
int ct_http_dash_audit(ct_store *st, const ct_http_caller *c, const char *client, const char *request_id,
                       const char *action, const char *type, const char *id, const char *patient,
                       const char *detail, ct_error *err);

#endif
