/* http room, TLS policy: which certificate the server presents and how it
 * negotiates. civetweb creates the SSL_CTX and hands it to our init_ssl
 * callback; returning 1 there tells civetweb we did everything, so this
 * file is the whole TLS configuration and nothing in civetweb's options
 * adds to it.
 *
 * The policy is Mozilla's "intermediate" profile: TLS 1.2 and 1.3 only;
 * for TLS 1.2 only AEAD suites with forward secrecy (the list below), for
 * TLS 1.3 OpenSSL's default suites (all three are AEAD); groups X25519,
 * P-256, P-384; the client picks among those suites (all are strong, and a
 * phone without AES hardware rightly prefers ChaCha20); no compression
 * (CRIME), no renegotiation, no session tickets (a ticket key that is never
 * rotated undoes forward secrecy; the server-side session cache still
 * allows resumption).
 *
 * Certificate and key are read into memory by ct_http_tls_load before
 * civetweb starts, and so before it could drop privileges, with every
 * check that can name the file at fault; the key buffer is wiped as soon
 * as it is parsed. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "http_internal.h"

/* Reads a whole PEM file. For a key file, refuses modes that let others
 * read it (group too when strict) and returns a buffer to be released with
 * OPENSSL_clear_free(buf, *cap_out). */
static int read_pem(const char *path, const char *what, int is_key, int strict, char **buf_out,
                    size_t *len_out, size_t *cap_out, ct_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ct_error_set(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s %s: %s", what, path,
                            strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ct_error_set(err, CT_EIO, "%s %s: %s", what, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ct_error_set(err, CT_EINVAL, "%s %s is not a regular file", what, path);
    }
    if (st.st_size <= 0 || st.st_size > CT_HTTP_PEM_MAX_BYTES) {
        close(fd);
        return ct_error_set(err, CT_ELIMIT, "%s %s is %lld bytes, not a PEM file (limit %d)", what,
                            path, (long long)st.st_size, CT_HTTP_PEM_MAX_BYTES);
    }
    mode_t loose = strict ? 077 : 007;
    if (is_key && (st.st_mode & loose) != 0) {
        close(fd);
        return ct_error_set(err, CT_ETLS,
                            "%s %s has mode %04o: other users may read it; run 'chmod %s %s'", what,
                            path, (unsigned)(st.st_mode & 07777), strict ? "600" : "640", path);
    }
    size_t cap = (size_t)st.st_size + 1;
    char *buf = OPENSSL_malloc(cap);
    if (!buf) {
        close(fd);
        return ct_error_set(err, CT_ENOMEM, "out of memory reading %s", path);
    }
    size_t len = 0;
    while (len < cap - 1) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            OPENSSL_clear_free(buf, cap);
            return ct_error_set(err, CT_EIO, "%s %s: %s", what, path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *buf_out = buf;
    *len_out = len;
    *cap_out = cap;
    return 0;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* The first OpenSSL error as text, for messages about a file we parsed. */
static const char *openssl_reason(char *buf, size_t cap)
{
    unsigned long e = ERR_peek_last_error();
    if (e == 0)
        snprintf(buf, cap, "no PEM data");
    else
        ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}

static int load_chain(ct_http_server *srv, ct_error *err)
{
    char *buf;
    size_t len, cap;
    int rc = read_pem(srv->cert_path, "certificate", 0, 0, &buf, &len, &cap, err);
    if (rc != 0)
        return rc;
    char why[256];
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    if (!bio) {
        OPENSSL_free(buf);
        return ct_error_set(err, CT_ENOMEM, "out of memory reading %s", srv->cert_path);
    }
    ERR_clear_error();
    srv->cert = PEM_read_bio_X509_AUX(bio, NULL, no_passphrase, NULL);
    if (!srv->cert) {
        rc = ct_error_set(err, CT_ETLS, "certificate %s: no PEM certificate could be read (%s)",
                          srv->cert_path, openssl_reason(why, sizeof why));
        goto done;
    }
    srv->chain = sk_X509_new_null();
    if (!srv->chain) {
        rc = ct_error_set(err, CT_ENOMEM, "out of memory reading %s", srv->cert_path);
        goto done;
    }
    /* The rest of the file is the chain, leaf's issuer first. */
    for (int i = 2;; i++) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        if (!ca) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break;
            }
            rc = ct_error_set(err, CT_ETLS, "certificate %s: certificate #%d is malformed (%s)",
                              srv->cert_path, i, openssl_reason(why, sizeof why));
            goto done;
        }
        if (!sk_X509_push(srv->chain, ca)) {
            X509_free(ca);
            rc = ct_error_set(err, CT_ENOMEM, "out of memory reading %s", srv->cert_path);
            goto done;
        }
    }
done:
    BIO_free(bio);
    OPENSSL_free(buf);
    return rc;
}

static int load_key(ct_http_server *srv, int strict, ct_error *err)
{
    char *buf;
    size_t len, cap;
    int rc = read_pem(srv->key_path, "private key", 1, strict, &buf, &len, &cap, err);
    if (rc != 0)
        return rc;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    ERR_clear_error();
    srv->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    int encrypted = strstr(buf, "ENCRYPTED") != NULL;
    OPENSSL_clear_free(buf, cap);
    if (!srv->key) {
        char why[256];
        openssl_reason(why, sizeof why);
        if (encrypted)
            return ct_error_set(err, CT_ETLS,
                                "private key %s is encrypted: cardiotwin needs it unencrypted "
                                "(protect the file with mode 0600 instead)",
                                srv->key_path);
        return ct_error_set(err, CT_ETLS, "private key %s: no PEM private key could be read (%s)",
                            srv->key_path, why);
    }
    return 0;
}

static void asn1_time_text(const ASN1_TIME *t, char *buf, size_t cap)
{
    struct tm tm;
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(buf, cap, "%Y-%m-%d %H:%M:%S UTC", &tm);
    else
        snprintf(buf, cap, "(unreadable date)");
}

void ct_http_tls_fingerprint(X509 *cert, char *buf, size_t cap)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (cap == 0)
        return;
    buf[0] = '\0';
    if (!cert || X509_digest(cert, EVP_sha256(), md, &n) != 1)
        return;
    size_t used = 0;
    for (unsigned int i = 0; i < n && used + 3 < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ":%02X" : "%02X", md[i]);
}

int ct_http_tls_load(ct_http_server *srv, int strict_key_mode, ct_error *err)
{
    int rc = load_chain(srv, err);
    if (rc == 0)
        rc = load_key(srv, strict_key_mode, err);
    if (rc == 0 && X509_check_private_key(srv->cert, srv->key) != 1) {
        ERR_clear_error();
        rc = ct_error_set(err, CT_ETLS, "private key %s does not match certificate %s",
                          srv->key_path, srv->cert_path);
    }
    if (rc != 0) {
        ct_http_tls_release(srv);
        return rc;
    }

    char until[64], fp[100];
    asn1_time_text(X509_get0_notAfter(srv->cert), until, sizeof until);
    ct_http_tls_fingerprint(srv->cert, fp, sizeof fp);
    /* A server that refused to start over an expired certificate would turn
     * a renewal reminder into an outage; say it loudly instead. */
    if (X509_cmp_current_time(X509_get0_notAfter(srv->cert)) <= 0)
        ct_http_log(srv, CT_HTTP_LOG_WARNING, "certificate %s expired on %s: clients will refuse it",
                    srv->cert_path, until);
    else if (X509_cmp_time(X509_get0_notAfter(srv->cert), &(time_t){time(NULL) + 30 * 86400}) <= 0)
        ct_http_log(srv, CT_HTTP_LOG_WARNING, "certificate %s expires on %s: renew it",
                    srv->cert_path, until);
    if (X509_cmp_current_time(X509_get0_notBefore(srv->cert)) > 0)
        ct_http_log(srv, CT_HTTP_LOG_WARNING, "certificate %s is not valid yet (check the clock)",
                    srv->cert_path);
    ct_http_log(srv, CT_HTTP_LOG_INFO, "certificate %s, SHA-256 %s, valid until %s", srv->cert_path,
                fp, until);
    return 0;
}

void ct_http_tls_release(ct_http_server *srv)
{
    sk_X509_pop_free(srv->client_cas, X509_free);
    srv->client_cas = NULL;
    X509_free(srv->cert);
    srv->cert = NULL;
    sk_X509_pop_free(srv->chain, X509_free);
    srv->chain = NULL;
    EVP_PKEY_free(srv->key);
    srv->key = NULL;
}

static int configure_client_verify(ct_http_server *srv, SSL_CTX *ctx, ct_error *err);

int ct_http_tls_configure(ct_http_server *srv, SSL_CTX *ctx, ct_error *err)
{
    if (!srv->cert || !srv->key)
        return ct_error_set(err, CT_ETLS, "TLS set-up without a loaded certificate");

    /* civetweb set its own protocol options before calling us; ours win. */
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, 0) != 1)
        return ct_error_set(err, CT_ETLS, "cannot restrict TLS to versions 1.2 and 1.3");
    if (SSL_CTX_set_cipher_list(ctx, CT_HTTP_TLS12_CIPHERS) != 1)
        return ct_error_set(err, CT_ETLS, "OpenSSL accepts none of the TLS 1.2 cipher suites");
    if (SSL_CTX_set1_groups_list(ctx, CT_HTTP_TLS_GROUPS) != 1)
        return ct_error_set(err, CT_ETLS, "OpenSSL refuses the key exchange groups %s",
                            CT_HTTP_TLS_GROUPS);
    /* The DHE suites need parameters; "auto" picks a group matching the
     * strength of an RSA certificate (ffdhe2048 for RSA-2048). */
    SSL_CTX_set_dh_auto(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET |
                                 SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
    SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);

    static const unsigned char sid_ctx[] = "cardiotwin";
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    if (SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1) != 1)
        return ct_error_set(err, CT_ETLS, "cannot set the TLS session context");

    ERR_clear_error();
    if (SSL_CTX_use_certificate(ctx, srv->cert) != 1 || SSL_CTX_set1_chain(ctx, srv->chain) != 1) {
        char why[256];
        return ct_error_set(err, CT_ETLS, "certificate %s refused by OpenSSL (%s)", srv->cert_path,
                            openssl_reason(why, sizeof why));
    }
    if (SSL_CTX_use_PrivateKey(ctx, srv->key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return ct_error_set(err, CT_ETLS, "private key %s does not match certificate %s",
                            srv->key_path, srv->cert_path);
    }
    return srv->client_cas ? configure_client_verify(srv, ctx, err) : 0;
}

/* ---- mutual TLS ------------------------------------------------------------------------------
 * A gateway may prove at the handshake that it holds a certificate signed
 * by a CA the operator named (--client-ca). The chain is checked by
 * OpenSSL against those CAs only (not the system's store: a public CA
 * vouches for domain names, not for our devices), for client use
 * (extendedKeyUsage clientAuth when present), at most
 * CT_HTTP_CLIENT_VERIFY_DEPTH certificates deep. Required mode also refuses
 * a handshake without a certificate; optional mode verifies one when it is
 * presented, and a bad one fails the handshake in both. The certificate
 * authenticates the connection; the bearer token still names the caller
 * and its scopes. */

int ct_http_tls_load_client_ca(ct_http_server *srv, ct_error *err)
{
    const char *path = srv->opt.client_ca_file;
    if (!path)
        return 0;
    char *buf;
    size_t len, cap;
    int rc = read_pem(path, "client CA file", 0, 0, &buf, &len, &cap, err);
    if (rc != 0)
        return rc;
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    srv->client_cas = sk_X509_new_null();
    if (!bio || !srv->client_cas) {
        BIO_free(bio);
        OPENSSL_free(buf);
        return ct_error_set(err, CT_ENOMEM, "out of memory reading %s", path);
    }
    char why[256];
    ERR_clear_error();
    for (int i = 1;; i++) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
        if (!ca) {
            unsigned long e = ERR_peek_last_error();
            if (i > 1 && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
                ERR_clear_error();
                break;
            }
            rc = i == 1 ? ct_error_set(err, CT_ETLS, "client CA file %s: no PEM certificate could be read (%s)", path,
                                       openssl_reason(why, sizeof why))
                        : ct_error_set(err, CT_ETLS, "client CA file %s: certificate #%d is malformed (%s)", path, i,
                                       openssl_reason(why, sizeof why));
            break;
        }
        /* A leaf given by mistake would "trust" one gateway and never
         * verify anything it signs; say so at start. */
        if (X509_check_ca(ca) < 1) {
            char name[256];
            X509_NAME_oneline(X509_get_subject_name(ca), name, sizeof name);
            X509_free(ca);
            rc = ct_error_set(err, CT_ETLS, "client CA file %s: certificate #%d (%s) is not a CA certificate "
                              "(no basicConstraints CA:TRUE)", path, i, name);
            break;
        }
        if (!sk_X509_push(srv->client_cas, ca)) {
            X509_free(ca);
            rc = ct_error_set(err, CT_ENOMEM, "out of memory reading %s", path);
            break;
        }
        if (X509_cmp_current_time(X509_get0_notAfter(ca)) <= 0)
            ct_http_log(srv, CT_HTTP_LOG_WARNING, "client CA file %s: certificate #%d has expired: no client "
                        "certificate it signed will verify", path, i);
    }
    BIO_free(bio);
    OPENSSL_free(buf);
    if (rc == 0)
        ct_http_log(srv, CT_HTTP_LOG_INFO, "mutual TLS: %d CA certificate%s from %s, client certificate %s",
                    sk_X509_num(srv->client_cas), sk_X509_num(srv->client_cas) == 1 ? "" : "s", path,
                    srv->opt.client_cert_required ? "required" : "optional");
    return rc;
}

static int configure_client_verify(ct_http_server *srv, SSL_CTX *ctx, ct_error *err)
{
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
    if (!store || !names) {
        X509_STORE_free(store);
        sk_X509_NAME_free(names);
        return ct_error_set(err, CT_ENOMEM, "out of memory configuring mutual TLS");
    }
    for (int i = 0; i < sk_X509_num(srv->client_cas); i++) {
        X509 *ca = sk_X509_value(srv->client_cas, i);
        X509_NAME *nm = X509_NAME_dup(X509_get_subject_name(ca));
        if (X509_STORE_add_cert(store, ca) != 1 || !nm || !sk_X509_NAME_push(names, nm)) {
            X509_NAME_free(nm);
            X509_STORE_free(store);
            sk_X509_NAME_pop_free(names, X509_NAME_free);
            ERR_clear_error();
            return ct_error_set(err, CT_ETLS, "client CA file: certificate #%d cannot be trusted by OpenSSL",
                                i + 1);
        }
    }
    X509_STORE_set_purpose(store, X509_PURPOSE_SSL_CLIENT);
    /* The context takes both over. The CA names tell a client with several
     * certificates which one to present. */
    SSL_CTX_set_cert_store(ctx, store);
    SSL_CTX_set_client_CA_list(ctx, names);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (srv->opt.client_cert_required ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                       NULL);
    SSL_CTX_set_verify_depth(ctx, CT_HTTP_CLIENT_VERIFY_DEPTH);
    return 0;
}

void ct_http_tls_peer(ct_http_req *req)
{
    req->peer_subject[0] = '\0';
    req->peer_sha256[0] = '\0';
    const struct mg_request_info *ri = req->ri;
    X509 *cert = ri && ri->client_cert ? ri->client_cert->peer_cert : NULL;
    if (!cert)
        return;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio && X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
        int n = BIO_read(bio, req->peer_subject, (int)sizeof req->peer_subject - 1);
        req->peer_subject[n > 0 ? n : 0] = '\0';
    }
    BIO_free(bio);
    ct_http_tls_fingerprint(cert, req->peer_sha256, sizeof req->peer_sha256);
}
