/* http room, health: GET /healthz answers whether this process is up and
 * which version it runs, for load balancers, systemd watchdogs and the
 * integration tests. It is public and touches nothing (no database, no
 * twin), so it stays cheap enough to poll every second and says "ok" only
 * for "the HTTPS server answers"; readiness of the pipeline will be a
 * separate, authenticated endpoint. */
#include <stdlib.h>

#include <jansson.h>

#include "cardiotwin/version.h"
#include "http_internal.h"

int ct_http_handle_healthz(ct_http_req *req)
{
    json_t *o = json_pack("{s:s,s:s}", "status", "ok", "version", CT_VERSION);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return ct_http_send_error(req, 500, "out of memory");
    int rc = ct_http_send_json(req, 200, text);
    free(text);
    return rc;
}
