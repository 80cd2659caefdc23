/* http room, SMART configuration: GET /.well-known/smart-configuration
 * (and the same under /fhir, the FHIR base URL, where SMART App Launch 2.0
 * puts it). Public, like /fhir/metadata: it says how to get access, so it
 * cannot need access.
 *
 * The one idea: the document is honest about an API that has bearer tokens
 * and SMART v2 scopes but no OAuth 2.0 authorization server. Tokens are
 * made by an operator (`cardiotwin token create`), so there is no
 * authorization_endpoint (SMART requires one only with the launch-ehr or
 * launch-standalone capability, which this server does not claim), no
 * token_endpoint and no PKCE method to list; grant_types_supported is
 * empty because no grant exists, rather than left out. A client that needs
 * an authorization server learns here that there is none. capabilities
 * lists what the resource server does understand: user-level and
 * patient-level scopes (not "permission-v2": its granular "?param=" form
 * grants nothing here, see scopes.c). scopes_supported is every scope a
 * role can hold, generated from the role table so that it cannot drift. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "http_internal.h"

/* Appends each scope of the space-separated list that is not in arr yet. */
static int add_scopes(json_t *arr, const char *list)
{
    for (const char *p = list; p && *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n) {
            int seen = 0;
            size_t i;
            json_t *v;
            json_array_foreach(arr, i, v) {
                const char *s = json_string_value(v);
                if (s && strlen(s) == n && memcmp(s, p, n) == 0)
                    seen = 1;
            }
            if (!seen && json_array_append_new(arr, json_stringn(p, n)) != 0)
                return -1;
        }
        p += n;
    }
    return 0;
}

int ct_http_handle_smart_configuration(ct_http_req *req)
{
    json_t *scopes = json_array();
    int bad = !scopes;
    for (size_t i = 0; !bad && ct_http_role_at(i); i++) {
        const ct_http_role_info *r = ct_http_role_at(i);
        bad = add_scopes(scopes, r->scopes) != 0 || add_scopes(scopes, r->patient_scopes) != 0;
    }
    json_t *doc = bad ? NULL
                      : json_pack("{s:[s,s], s:O, s:[]}", "capabilities", "permission-patient", "permission-user",
                                  "scopes_supported", scopes, "grant_types_supported");
    json_decref(scopes);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text)
        return ct_http_send_error(req, 503, "out of memory");
    /* SMART: application/json whatever the client's Accept says. */
    ct_http_resp r = {
        .status = 200,
        .content_type = "application/json",
        .body = text,
        .body_len = strlen(text),
        .cache_control = "public, max-age=300",
    };
    int rc = ct_http_send(req, &r);
    free(text);
    return rc;
}
