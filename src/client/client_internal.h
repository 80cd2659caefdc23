/* client room, private: the client handle shared by client.c, download.c,
 * request.c and stream.c. */
#ifndef CARDIOTWIN_CLIENT_INTERNAL_H
#define CARDIOTWIN_CLIENT_INTERNAL_H

#include <curl/curl.h>

#include "cardiotwin/client.h"

#define CT_CLIENT_UA_MAX 257
#define CT_CLIENT_PATH_MAX 4096

struct ct_client {
    CURL *curl;
    ct_client_options opt;            /* user_agent and ca_file point into this struct */
    char user_agent[CT_CLIENT_UA_MAX];
    char ca_file[CT_CLIENT_PATH_MAX];
    char errbuf[CURL_ERROR_SIZE];     /* libcurl's detail for the last failure */
};

/* An absolute http(s) URL without spaces or control characters. */
int ct_client_url_check(const char *url, ct_error *err);

/* How download.c and request.c read libcurl's verdict on an attempt:
 * worth another attempt (connection refused or reset, timeouts, a cut body,
 * a handshake cut short), and a certificate or TLS set-up failure. */
int ct_client_curl_is_transient(CURLcode rc);
int ct_client_curl_is_tls(CURLcode rc);

/* Sets the options every transfer of c starts from (ct_client_new, and
 * request.c after curl_easy_reset). */
CURLcode ct_client_apply_defaults(ct_client *c);

#endif
