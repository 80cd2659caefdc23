/* The self-signed certificate: what is generated (a certificate a TLS
 * client accepts for localhost, 127.0.0.1 and ::1, with its key), how the
 * key file is created (0600 whatever the umask, no temporary left behind),
 * that later calls reuse the pair byte for byte, and every refusal: a key
 * others can read, a certificate without its key, a key that is not a key,
 * a missing state directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cardiotwin/http.h"

typedef struct fixture {
    char dir[64];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/ct-http-cert-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, fp) : 0;
    fclose(fp);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    assert_int_equal(chmod(path, mode), 0);
}

static X509 *load_cert(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(x);
    return x;
}

static EVP_PKEY *load_key(const char *path)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    EVP_PKEY *k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(k);
    return k;
}

static int count_entries(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* Does the certificate's subjectAltName hold this DNS name or IP address
 * (raw bytes)? */
static int has_san(X509 *x, int type, const void *value, size_t len)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != type)
            continue;
        ASN1_STRING *s = type == GEN_DNS ? g->d.dNSName : g->d.iPAddress;
        if ((size_t)ASN1_STRING_length(s) == len && memcmp(ASN1_STRING_get0_data(s), value, len) == 0)
            found = 1;
    }
    GENERAL_NAMES_free(names);
    return found;
}

static void test_generates_a_usable_pair(void **state)
{
    fixture *f = *state;
    ct_http_tls_files files;
    ct_error err = {0};
    /* A umask of 0 would make a naive open(..., 0666) world-readable: the
     * key must be 0600 regardless. */
    mode_t old = umask(0);
    int rc = ct_http_tls_ensure_self_signed(f->dir, &files, &err);
    umask(old);
    assert_int_equal(rc, 0);
    assert_int_equal(files.created, 1);

    char want[256];
    snprintf(want, sizeof want, "%s/%s", f->dir, CT_HTTP_KEY_FILE);
    assert_string_equal(files.key_path, want);
    snprintf(want, sizeof want, "%s/%s", f->dir, CT_HTTP_CERT_FILE);
    assert_string_equal(files.cert_path, want);

    struct stat st;
    assert_int_equal(stat(files.key_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(count_entries(f->dir), 2); /* no temporary left behind */

    X509 *x = load_cert(files.cert_path);
    EVP_PKEY *k = load_key(files.key_path);
    assert_int_equal(X509_get_version(x), X509_VERSION_3);
    assert_int_equal(X509_check_private_key(x, k), 1);

    /* The key: EC on P-256. */
    assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
    char group[64];
    size_t glen = 0;
    assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof group, &glen), 1);
    assert_string_equal(group, "prime256v1");

    /* Self-signed: the signature verifies with its own key. */
    EVP_PKEY *pub = X509_get0_pubkey(x);
    assert_int_equal(X509_verify(x, pub), 1);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)), 0);

    /* Names a local client will use. */
    static const unsigned char v4[4] = {127, 0, 0, 1};
    static const unsigned char v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_true(has_san(x, GEN_DNS, "localhost", 9));
    assert_true(has_san(x, GEN_IPADD, v4, sizeof v4));
    assert_true(has_san(x, GEN_IPADD, v6, sizeof v6));
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_not_equal(X509_check_host(x, "example.org", 0, 0, NULL), 1);

    /* A server certificate, not a CA. */
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    assert_non_null(bc);
    assert_false(bc->ca);
    BASIC_CONSTRAINTS_free(bc);
    assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
    assert_false(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
    assert_true(X509_get_extended_key_usage(x) & XKU_SSL_SERVER);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);

    /* Valid now, for CT_HTTP_SELF_SIGNED_DAYS days. */
    assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
    int days = 0, secs = 0;
    assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x)), 1);
    assert_int_equal(days, CT_HTTP_SELF_SIGNED_DAYS);

    /* Serial: positive, 20 octets of randomness. */
    BIGNUM *serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    assert_non_null(serial);
    assert_false(BN_is_negative(serial));
    assert_int_equal(BN_num_bytes(serial), 20);
    BN_free(serial);

    EVP_PKEY_free(k);
    X509_free(x);
}

static void test_second_call_reuses_the_same_bytes(void **state)
{
    fixture *f = *state;
    ct_http_tls_files a, b;
    ct_error err = {0};
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &a, &err), 0);
    size_t clen1, klen1, clen2, klen2;
    char *c1 = read_all(a.cert_path, &clen1), *k1 = read_all(a.key_path, &klen1);
    assert_non_null(c1);
    assert_non_null(k1);

    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &b, &err), 0);
    assert_int_equal(b.created, 0);
    char *c2 = read_all(b.cert_path, &clen2), *k2 = read_all(b.key_path, &klen2);
    assert_int_equal(clen1, clen2);
    assert_int_equal(klen1, klen2);
    assert_memory_equal(c1, c2, clen1);
    assert_memory_equal(k1, k2, klen1);

    /* A trailing slash on the directory names the same files. */
    char slashed[80];
    snprintf(slashed, sizeof slashed, "%s/", f->dir);
    assert_int_equal(ct_http_tls_ensure_self_signed(slashed, &b, &err), 0);
    assert_int_equal(b.created, 0);
    assert_string_equal(b.key_path, a.key_path);
    free(c1);
    free(k1);
    free(c2);
    free(k2);
}

static void test_two_directories_get_different_keys_and_serials(void **state)
{
    fixture *f = *state;
    char other[80];
    snprintf(other, sizeof other, "%s/other", f->dir);
    assert_int_equal(mkdir(other, 0700), 0);
    ct_http_tls_files a, b;
    ct_error err = {0};
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &a, &err), 0);
    assert_int_equal(ct_http_tls_ensure_self_signed(other, &b, &err), 0);
    X509 *xa = load_cert(a.cert_path), *xb = load_cert(b.cert_path);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(xa), X509_get0_serialNumber(xb)), 0);
    assert_int_not_equal(EVP_PKEY_eq(X509_get0_pubkey(xa), X509_get0_pubkey(xb)), 1);
    X509_free(xa);
    X509_free(xb);
    unlink(b.cert_path);
    unlink(b.key_path);
    rmdir(other);
}

static void expect_loose_mode_refused(fixture *f, mode_t mode, const char *mode_text)
{
    ct_http_tls_files files;
    ct_error err = {0};
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &files, &err), 0);
    size_t len1, len2;
    char *before = read_all(files.cert_path, &len1);
    assert_int_equal(chmod(files.key_path, mode), 0);

    ct_http_tls_files again;
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &again, &err), CT_ETLS);
    assert_int_equal(err.code, CT_ETLS);
    assert_non_null(strstr(err.msg, files.key_path));
    assert_non_null(strstr(err.msg, mode_text));
    assert_non_null(strstr(err.msg, "chmod 600"));

    /* Refusing changes nothing: no new pair replaced the old one. */
    struct stat st;
    assert_int_equal(stat(files.key_path, &st), 0);
    assert_int_equal(st.st_mode & 07777, mode);
    char *after = read_all(files.cert_path, &len2);
    assert_int_equal(len1, len2);
    assert_memory_equal(before, after, len1);
    free(before);
    free(after);
}

static void test_world_readable_key_is_refused(void **state)
{
    expect_loose_mode_refused(*state, 0644, "mode 0644");
}

static void test_group_readable_key_is_refused(void **state)
{
    expect_loose_mode_refused(*state, 0640, "mode 0640");
}

static void test_missing_certificate_is_reissued_for_the_same_key(void **state)
{
    fixture *f = *state;
    ct_http_tls_files files;
    ct_error err = {0};
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &files, &err), 0);
    size_t klen1, klen2;
    char *k1 = read_all(files.key_path, &klen1);
    assert_int_equal(unlink(files.cert_path), 0);

    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &files, &err), 0);
    assert_int_equal(files.created, 1);
    char *k2 = read_all(files.key_path, &klen2);
    assert_int_equal(klen1, klen2);
    assert_memory_equal(k1, k2, klen1);
    X509 *x = load_cert(files.cert_path);
    EVP_PKEY *k = load_key(files.key_path);
    assert_int_equal(X509_check_private_key(x, k), 1);
    assert_int_equal(count_entries(f->dir), 2);
    EVP_PKEY_free(k);
    X509_free(x);
    free(k1);
    free(k2);
}

static void test_certificate_without_key_is_an_error(void **state)
{
    fixture *f = *state;
    ct_http_tls_files files;
    ct_error err = {0};
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &files, &err), 0);
    assert_int_equal(unlink(files.key_path), 0);
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &files, &err), CT_ETLS);
    assert_non_null(strstr(err.msg, CT_HTTP_CERT_FILE));
    assert_non_null(strstr(err.msg, "does not"));
    /* No key was made for a certificate it cannot match. */
    assert_int_equal(count_entries(f->dir), 1);
}

static void test_key_file_that_is_not_a_key(void **state)
{
    fixture *f = *state;
    char key[256];
    snprintf(key, sizeof key, "%s/%s", f->dir, CT_HTTP_KEY_FILE);
    write_file(key, "-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", 0600);
    ct_http_tls_files files;
    ct_error err = {0};
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &files, &err), CT_ETLS);
    assert_non_null(strstr(err.msg, key));
    assert_int_equal(count_entries(f->dir), 1);

    /* An empty key file is not reused either. */
    write_file(key, "", 0600);
    assert_int_equal(ct_http_tls_ensure_self_signed(f->dir, &files, &err), CT_ETLS);
    assert_non_null(strstr(err.msg, "0 bytes"));
}

static void test_bad_state_directory(void **state)
{
    fixture *f = *state;
    ct_http_tls_files files;
    ct_error err = {0};
    char missing[128];
    snprintf(missing, sizeof missing, "%s/nope", f->dir);
    assert_int_equal(ct_http_tls_ensure_self_signed(missing, &files, &err), CT_EIO);
    assert_non_null(strstr(err.msg, missing));

    char file[128];
    snprintf(file, sizeof file, "%s/plain", f->dir);
    write_file(file, "x", 0600);
    assert_int_equal(ct_http_tls_ensure_self_signed(file, &files, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "not a directory"));

    assert_int_equal(ct_http_tls_ensure_self_signed("", &files, &err), CT_EINVAL);
    assert_int_equal(ct_http_tls_ensure_self_signed(NULL, &files, &err), CT_EINVAL);

    unlink(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_generates_a_usable_pair, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_call_reuses_the_same_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_directories_get_different_keys_and_serials, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_world_readable_key_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_readable_key_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_certificate_is_reissued_for_the_same_key, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_certificate_without_key_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_that_is_not_a_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_state_directory, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
