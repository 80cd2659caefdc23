/* The server in-process: every option ct_http_start must refuse (with a
 * message naming the value or file at fault), then real servers on ports
 * the system picks, over IPv4 and IPv6, answered by an OpenSSL client that
 * verifies the generated certificate against itself: the routes' statuses
 * and headers, the access records and the log lines. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cardiotwin/http.h"
#include "cardiotwin/version.h"

typedef struct fixture {
    char dir[64];
    char other[96];
    ct_http_tls_files files;   /* generated in dir */
    ct_http_tls_files others;  /* generated in other */
} fixture;

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ct-http-srv-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->other, sizeof f->other, "%s/other", f->dir);
    if (mkdir(f->other, 0700) != 0)
        return -1;
    ct_error err = {0};
    if (ct_http_tls_ensure_self_signed(f->dir, &f->files, &err) != 0 ||
        ct_http_tls_ensure_self_signed(f->other, &f->others, &err) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rm_tree(f->dir);
    free(f);
    return 0;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb");
    assert_non_null(in);
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, in);
    fclose(in);
    buf[n] = '\0';
    write_file(to, buf, mode);
}

/* Starting must fail with code and a message holding each of the needles. */
static void expect_start_fails(const ct_http_options *opt, int code, const char *needle1,
                               const char *needle2)
{
    ct_http_server *srv = (ct_http_server *)1;
    ct_error err = {0};
    assert_int_equal(ct_http_start(opt, &srv, &err), code);
    assert_null(srv);
    assert_int_equal(err.code, code);
    if (needle1 && !strstr(err.msg, needle1))
        fail_msg("'%s' not in '%s'", needle1, err.msg);
    if (needle2 && !strstr(err.msg, needle2))
        fail_msg("'%s' not in '%s'", needle2, err.msg);
}

static void test_defaults(void **state)
{
    (void)state;
    ct_http_options opt;
    ct_http_options_init(&opt);
    assert_string_equal(opt.bind_addr, "127.0.0.1");
    assert_int_equal(opt.port, 8443);
    assert_int_equal(opt.threads, CT_HTTP_DEFAULT_THREADS);
    assert_true(opt.max_body_bytes == CT_HTTP_DEFAULT_MAX_BODY_BYTES);
    assert_null(opt.cert_path);
    assert_null(opt.key_path);
    assert_null(opt.on_access);
}

static void test_bad_options_are_refused(void **state)
{
    fixture *f = *state;
    ct_http_options opt;

    ct_http_options_init(&opt);
    opt.state_dir = f->dir;
    opt.port = 65536;
    expect_start_fails(&opt, CT_EINVAL, "port 65536", NULL);
    opt.port = -1;
    expect_start_fails(&opt, CT_EINVAL, "port -1", NULL);

    ct_http_options_init(&opt);
    opt.state_dir = f->dir;
    opt.threads = 0;
    expect_start_fails(&opt, CT_EINVAL, "0 worker threads", NULL);
    opt.threads = CT_HTTP_MAX_THREADS + 1;
    expect_start_fails(&opt, CT_EINVAL, "worker threads", NULL);

    ct_http_options_init(&opt);
    opt.state_dir = f->dir;
    opt.max_body_bytes = 0;
    expect_start_fails(&opt, CT_EINVAL, "body limit", NULL);

    ct_http_options_init(&opt);
    opt.cert_path = f->files.cert_path;
    expect_start_fails(&opt, CT_EINVAL, "both or neither", NULL);
    ct_http_options_init(&opt);
    opt.key_path = f->files.key_path;
    expect_start_fails(&opt, CT_EINVAL, "both or neither", NULL);

    ct_http_options_init(&opt);
    expect_start_fails(&opt, CT_EINVAL, "state directory", NULL);

    ct_http_options_init(&opt);
    opt.state_dir = f->dir;
    opt.bind_addr = "localhost";
    expect_start_fails(&opt, CT_EINVAL, "'localhost'", "IPv4 or IPv6");
    opt.bind_addr = "999.1.1.1";
    expect_start_fails(&opt, CT_EINVAL, "'999.1.1.1'", NULL);
    opt.bind_addr = "[127.0.0.1";
    expect_start_fails(&opt, CT_EINVAL, NULL, NULL);
    opt.bind_addr = "";
    expect_start_fails(&opt, CT_EINVAL, NULL, NULL);

    expect_start_fails(NULL, CT_EINVAL, NULL, NULL);
}

static void test_bad_certificates_are_refused(void **state)
{
    fixture *f = *state;
    ct_http_options opt;
    ct_http_options_init(&opt);
    opt.port = 0;

    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.pem", f->dir);
    opt.cert_path = missing;
    opt.key_path = f->files.key_path;
    expect_start_fails(&opt, CT_ENOTFOUND, missing, "No such file");

    /* Key of one pair, certificate of another. */
    opt.cert_path = f->files.cert_path;
    opt.key_path = f->others.key_path;
    expect_start_fails(&opt, CT_ETLS, "does not match", f->others.key_path);
    expect_start_fails(&opt, CT_ETLS, f->files.cert_path, NULL);

    /* An operator's key may be group-readable (ssl-cert), never world-readable. */
    char key[128];
    snprintf(key, sizeof key, "%s/op-key.pem", f->dir);
    copy_file(f->files.key_path, key, 0604);
    opt.key_path = key;
    expect_start_fails(&opt, CT_ETLS, key, "mode 0604");

    /* An encrypted key would make OpenSSL ask for a passphrase on the
     * terminal; it is refused instead. */
    FILE *fp = fopen(f->files.key_path, "r");
    assert_non_null(fp);
    EVP_PKEY *pk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(pk);
    char enc[128];
    snprintf(enc, sizeof enc, "%s/enc-key.pem", f->dir);
    fp = fopen(enc, "w");
    assert_non_null(fp);
    assert_int_equal(PEM_write_PrivateKey(fp, pk, EVP_aes_256_cbc(), (unsigned char *)"secret", 6,
                                          NULL, NULL),
                     1);
    fclose(fp);
    chmod(enc, 0600);
    EVP_PKEY_free(pk);
    opt.key_path = enc;
    expect_start_fails(&opt, CT_ETLS, enc, "encrypted");

    /* Not a certificate at all, and a chain whose second member is broken. */
    char bad[128];
    snprintf(bad, sizeof bad, "%s/bad-cert.pem", f->dir);
    write_file(bad, "hello\n", 0644);
    opt.cert_path = bad;
    opt.key_path = f->files.key_path;
    expect_start_fails(&opt, CT_ETLS, bad, "no PEM certificate");

    char chain[128];
    snprintf(chain, sizeof chain, "%s/chain.pem", f->dir);
    fp = fopen(f->files.cert_path, "r");
    assert_non_null(fp);
    char leaf[4096];
    size_t n = fread(leaf, 1, sizeof leaf - 1, fp);
    fclose(fp);
    leaf[n] = '\0';
    char text[8192];
    snprintf(text, sizeof text, "%s-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
             leaf);
    write_file(chain, text, 0644);
    opt.cert_path = chain;
    expect_start_fails(&opt, CT_ETLS, chain, "certificate #2");

    /* A directory is not a certificate. */
    opt.cert_path = f->other;
    expect_start_fails(&opt, CT_EINVAL, f->other, "not a regular file");

    /* The generated key must be 0600, not merely not world-readable. */
    ct_http_options_init(&opt);
    opt.port = 0;
    opt.state_dir = f->dir;
    assert_int_equal(chmod(f->files.key_path, 0640), 0);
    expect_start_fails(&opt, CT_ETLS, f->files.key_path, "mode 0640");
    assert_int_equal(chmod(f->files.key_path, 0600), 0);
}

/* ---- a real server, a real TLS client ----------------------------------- */
typedef struct seen {
    pthread_mutex_t lock;
    int n_access;
    char last_path[128];
    char last_method[16];
    int last_status;
    long long last_bytes;
    int n_info;
    char info[2048];
} seen;

static void on_access(void *user, const ct_http_access *a)
{
    seen *s = user;
    pthread_mutex_lock(&s->lock);
    s->n_access++;
    snprintf(s->last_path, sizeof s->last_path, "%s", a->path);
    snprintf(s->last_method, sizeof s->last_method, "%s", a->method);
    s->last_status = a->status;
    s->last_bytes = (long long)a->body_bytes;
    pthread_mutex_unlock(&s->lock);
}

static void on_log(void *user, ct_http_log_level level, const char *msg)
{
    seen *s = user;
    pthread_mutex_lock(&s->lock);
    if (level == CT_HTTP_LOG_INFO) {
        s->n_info++;
        size_t used = strlen(s->info);
        snprintf(s->info + used, sizeof s->info - used, "%s\n", msg);
    }
    pthread_mutex_unlock(&s->lock);
}

/* Sends one request over TLS, verifying the server against ca_file for the
 * IP address ip; returns the whole response (status line to body). */
static char *https_request(const char *ip, int port, const char *ca_file, const char *request)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST};
    struct addrinfo *ai = NULL;
    assert_int_equal(getaddrinfo(ip, portstr, &hints, &ai), 0);
    int fd = socket(ai->ai_family, ai->ai_socktype, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, ai->ai_addr, ai->ai_addrlen), 0);
    freeaddrinfo(ai);

    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_load_verify_locations(ctx, ca_file, NULL), 1);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL *ssl = SSL_new(ctx);
    assert_non_null(ssl);
    assert_int_equal(X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ip), 1);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
        char why[256];
        ERR_error_string_n(ERR_get_error(), why, sizeof why);
        fail_msg("TLS handshake with %s:%d failed: %s", ip, port, why);
    }
    assert_int_equal(SSL_get_verify_result(ssl), X509_V_OK);
    assert_true(SSL_version(ssl) >= TLS1_2_VERSION);
    assert_int_equal(SSL_write(ssl, request, (int)strlen(request)), (int)strlen(request));

    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        int n = SSL_read(ssl, buf + len, (int)(cap - 1 - len));
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len >= cap - 1)
            break;
    }
    buf[len] = '\0';
    SSL_shutdown(ssl);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return buf;
}

static void test_serves_healthz_over_ipv4_and_ipv6(void **state)
{
    fixture *f = *state;
    static const char *const addrs[] = {"127.0.0.1", "::1"};
    for (int i = 0; i < 2; i++) {
        seen s = {0};
        pthread_mutex_init(&s.lock, NULL);
        ct_http_options opt;
        ct_http_options_init(&opt);
        opt.port = 0;
        opt.threads = 2;
        opt.bind_addr = addrs[i];
        opt.state_dir = f->dir;
        opt.on_access = on_access;
        opt.on_log = on_log;
        opt.log_user = &s;
        ct_http_server *srv = NULL;
        ct_error err = {0};
        int rc = ct_http_start(&opt, &srv, &err);
        if (rc != 0)
            fail_msg("start on %s: %s", addrs[i], err.msg);
        int port = ct_http_port(srv);
        assert_true(port > 0 && port <= 65535);
        char url[64], want[64];
        assert_int_equal(ct_http_url(srv, url, sizeof url), 0);
        snprintf(want, sizeof want, i == 0 ? "https://127.0.0.1:%d/" : "https://[::1]:%d/", port);
        assert_string_equal(url, want);
        assert_int_equal(ct_http_url(srv, url, 8), CT_ELIMIT);
        assert_string_equal(ct_http_cert_path(srv), f->files.cert_path);

        char *r = https_request(addrs[i], port, f->files.cert_path,
                                "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
        assert_non_null(strstr(r, "\r\nStrict-Transport-Security: max-age=63072000\r\n"));
        assert_non_null(strstr(r, "\r\nX-Content-Type-Options: nosniff\r\n"));
        assert_non_null(strstr(r, "\r\nCache-Control: no-store\r\n"));
        assert_non_null(strstr(r, "\r\nContent-Type: application/json\r\n"));
        assert_non_null(strstr(r, "\r\n\r\n{\"status\":\"ok\",\"version\":\"" CT_VERSION "\"}"));
        free(r);

        r = https_request(addrs[i], port, f->files.cert_path,
                          "DELETE /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert_non_null(strstr(r, "HTTP/1.1 405 "));
        assert_non_null(strstr(r, "\r\nAllow: GET, HEAD\r\n"));
        assert_non_null(strstr(r, "\"error\":\"method_not_allowed\""));
        free(r);

        r = https_request(addrs[i], port, f->files.cert_path,
                          "GET /fhir/Patient?name=secret HTTP/1.1\r\nHost: localhost\r\n"
                          "Connection: close\r\n\r\n");
        /* The FHIR API without credentials: refused, as an OperationOutcome. */
        assert_non_null(strstr(r, "HTTP/1.1 401 "));
        assert_non_null(strstr(r, "\r\nStrict-Transport-Security: max-age=63072000\r\n"));
        assert_non_null(strstr(r, "\r\nWWW-Authenticate: Bearer realm=\"cardiotwin\"\r\n"));
        assert_non_null(strstr(r, "\"resourceType\":\"OperationOutcome\""));
        free(r);

        r = https_request(addrs[i], port, f->files.cert_path,
                          "HEAD /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
        assert_non_null(strstr(r, "\r\nContent-Length: 33\r\n"));
        assert_null(strstr(r, "{\"status\""));
        free(r);

        ct_http_stop(srv);
        /* After stop every worker has finished, so the records are all in. */
        assert_int_equal(s.n_access, 4);
        assert_string_equal(s.last_method, "HEAD");
        assert_string_equal(s.last_path, "/healthz");
        assert_int_equal(s.last_status, 200);
        assert_int_equal(s.last_bytes, 0);
        assert_int_equal(s.n_info, 1);
        assert_non_null(strstr(s.info, "SHA-256"));
        assert_non_null(strstr(s.info, f->files.cert_path));
        assert_null(strstr(s.info, "PRIVATE"));
        pthread_mutex_destroy(&s.lock);
    }
}

static void test_operator_certificate_and_port_in_use(void **state)
{
    fixture *f = *state;
    /* The other pair, given explicitly, with a group-readable key. */
    assert_int_equal(chmod(f->others.key_path, 0640), 0);
    ct_http_options opt;
    ct_http_options_init(&opt);
    opt.port = 0;
    opt.threads = 1;
    opt.cert_path = f->others.cert_path;
    opt.key_path = f->others.key_path;
    ct_http_server *a = NULL;
    ct_error err = {0};
    if (ct_http_start(&opt, &a, &err) != 0)
        fail_msg("start: %s", err.msg);
    assert_string_equal(ct_http_cert_path(a), f->others.cert_path);
    char *r = https_request("127.0.0.1", ct_http_port(a), f->others.cert_path,
                            "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    free(r);

    /* A second server on the same port says so. */
    char port[16];
    snprintf(port, sizeof port, "%d", ct_http_port(a));
    opt.port = ct_http_port(a);
    expect_start_fails(&opt, CT_ENET, port, "in use");
    ct_http_stop(a);

    /* Once stopped, the port is free again. */
    ct_http_server *b = NULL;
    if (ct_http_start(&opt, &b, &err) != 0)
        fail_msg("restart on port %d: %s", opt.port, err.msg);
    assert_int_equal(ct_http_port(b), opt.port);
    ct_http_stop(b);
    ct_http_stop(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test_setup_teardown(test_bad_options_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_certificates_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serves_healthz_over_ipv4_and_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_operator_certificate_and_port_in_use, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
