/* http room, self-signed certificate: what the server presents when the
 * operator gave it no certificate. A fresh install must be reachable over
 * TLS at once (there is no plain HTTP to fall back to), and a certificate a
 * client has been told to trust must survive restarts, so the pair is made
 * once in the state directory and reused.
 *
 * The one idea: the private key is never, not even for a moment, in a file
 * others can read or in a half-written file under its final name. It is
 * written to a temporary name created O_EXCL with mode 0600, flushed, and
 * then hard-linked to its final name; link(2), unlike rename(2), fails
 * rather than replace a pair another process generated at the same time.
 *
 * Certificate: X.509 v3, EC P-256 key, ECDSA-SHA256, random 159-bit serial,
 * subject and issuer CN=localhost O=cardiotwin, SAN DNS:localhost,
 * IP:127.0.0.1, IP:::1, basicConstraints CA:FALSE, keyUsage
 * digitalSignature, extendedKeyUsage serverAuth, valid from five minutes ago
 * (clients with a slightly slow clock) for CT_HTTP_SELF_SIGNED_DAYS days. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cardiotwin/http.h"

/* Keys and certificates we write are small; a key file bigger than this
 * in the state directory is not ours. */
#define KEY_FILE_MAX_BYTES (64 * 1024)

static int join_path(char *out, size_t cap, const char *dir, const char *name, ct_error *err)
{
    size_t n = strlen(dir);
    const char *sep = (n > 0 && dir[n - 1] == '/') ? "" : "/";
    int w = snprintf(out, cap, "%s%s%s", dir, sep, name);
    if (w < 0 || (size_t)w >= cap)
        return ct_error_set(err, CT_ELIMIT, "state directory path is too long (%zu bytes)", n);
    return 0;
}

/* Writes data under a temporary name next to final_path, then links it to
 * final_path. The temporary file is removed in every case. */
static int write_new_file(const char *final_path, const void *data, size_t len, mode_t mode,
                          ct_error *err)
{
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return ct_error_set(err, CT_ETLS, "%s: no random bytes for a temporary name", final_path);
    char tmp[CT_HTTP_PATH_MAX + 32];
    int w = snprintf(tmp, sizeof tmp, "%s.tmp-%02x%02x%02x%02x%02x%02x%02x%02x", final_path, rnd[0],
                     rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
    if (w < 0 || (size_t)w >= sizeof tmp)
        return ct_error_set(err, CT_ELIMIT, "%s: path is too long", final_path);

    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return ct_error_set(err, CT_EIO, "cannot create %s: %s", tmp, strerror(errno));
    const unsigned char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            return ct_error_set(err, CT_EIO, "cannot write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return ct_error_set(err, CT_EIO, "cannot write %s: %s", tmp, strerror(e));
    }
    if (link(tmp, final_path) != 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST)
            return ct_error_set(err, CT_EEXIST,
                                "%s appeared while cardiotwin was generating it "
                                "(another server starting in the same directory?): start again",
                                final_path);
        return ct_error_set(err, CT_EIO, "cannot create %s: %s", final_path, strerror(e));
    }
    unlink(tmp);
    return 0;
}

/* Makes the new directory entries durable: without this a power cut right
 * after start could leave a server whose clients trust a certificate that no
 * longer exists. */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Opens an existing key file and checks that only its owner can use it.
 * Returns 0 with *fd_out = -1 when the file does not exist. */
static int open_existing_key(const char *path, int *fd_out, ct_error *err)
{
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        return ct_error_set(err, CT_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return ct_error_set(err, CT_EIO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return ct_error_set(err, CT_ETLS, "%s is not a regular file", path);
    }
    if ((st.st_mode & 077) != 0) {
        close(fd);
        return ct_error_set(err, CT_ETLS,
                            "private key %s has mode %04o, so other users may read or change it: "
                            "run 'chmod 600 %s' if it was never exposed, else delete it and %s "
                            "to generate a new pair",
                            path, (unsigned)(st.st_mode & 07777), path, CT_HTTP_CERT_FILE);
    }
    if (st.st_size <= 0 || st.st_size > KEY_FILE_MAX_BYTES) {
        close(fd);
        return ct_error_set(err, CT_ETLS, "private key %s is %lld bytes, not a key cardiotwin wrote",
                            path, (long long)st.st_size);
    }
    *fd_out = fd;
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

/* Reads the private key of an existing pair, to issue a new certificate for
 * it when the certificate went missing. */
static int read_key_fd(int fd, const char *path, EVP_PKEY **out, ct_error *err)
{
    unsigned char *buf = OPENSSL_malloc(KEY_FILE_MAX_BYTES);
    if (!buf)
        return ct_error_set(err, CT_ENOMEM, "out of memory reading %s", path);
    size_t len = 0;
    while (len < KEY_FILE_MAX_BYTES) {
        ssize_t n = read(fd, buf + len, KEY_FILE_MAX_BYTES - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            OPENSSL_clear_free(buf, KEY_FILE_MAX_BYTES);
            return ct_error_set(err, CT_EIO, "cannot read %s: %s", path, strerror(e));
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    BIO *bio = BIO_new_mem_buf(buf, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    BIO_free(bio);
    OPENSSL_clear_free(buf, KEY_FILE_MAX_BYTES);
    if (!key)
        return ct_error_set(err, CT_ETLS, "%s holds no readable unencrypted private key", path);
    *out = key;
    return 0;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    if (!e)
        return -1;
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : -1;
}

static X509 *make_certificate(EVP_PKEY *key)
{
    X509 *x = X509_new();
    BIGNUM *serial = NULL;
    if (!x)
        return NULL;

    unsigned char sb[20];
    if (RAND_bytes(sb, sizeof sb) != 1)
        goto fail;
    /* RFC 5280: positive, at most 20 octets; the fixed second-highest bit
     * keeps it 20 octets long so that no client trims it. */
    sb[0] = (unsigned char)((sb[0] & 0x3f) | 0x40);
    serial = BN_bin2bn(sb, sizeof sb, NULL);
    if (!serial || !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)))
        goto fail;

    if (X509_set_version(x, X509_VERSION_3) != 1)
        goto fail;
    if (!X509_gmtime_adj(X509_getm_notBefore(x), -5 * 60))
        goto fail;
    if (!X509_time_adj_ex(X509_getm_notAfter(x), CT_HTTP_SELF_SIGNED_DAYS, 0, NULL))
        goto fail;

    X509_NAME *name = X509_get_subject_name(x);
    if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"cardiotwin",
                                    -1, -1, 0) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                                    -1, -1, 0) ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
        goto fail;

    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    if (add_ext(x, &v3, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, &v3, NID_key_usage, "critical,digitalSignature") != 0 ||
        add_ext(x, &v3, NID_ext_key_usage, "serverAuth") != 0 ||
        add_ext(x, &v3, NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1") != 0 ||
        add_ext(x, &v3, NID_subject_key_identifier, "hash") != 0)
        goto fail;

    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;
    BN_free(serial);
    return x;
fail:
    BN_free(serial);
    X509_free(x);
    return NULL;
}

/* PEM-encodes the certificate (or, with key set, the private key in
 * PKCS#8) into a secure-heap memory BIO, so the key's bytes are wiped when
 * the BIO is freed. */
static BIO *pem_encode(X509 *cert, EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_secmem());
    if (!bio)
        return NULL;
    int ok = key ? PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)
                 : PEM_write_bio_X509(bio, cert);
    if (ok != 1) {
        BIO_free(bio);
        return NULL;
    }
    return bio;
}

static int write_pem(const char *path, X509 *cert, EVP_PKEY *key, mode_t mode, ct_error *err)
{
    BIO *bio = pem_encode(cert, key);
    if (!bio)
        return ct_error_set(err, CT_ETLS, "cannot encode %s", path);
    char *data = NULL;
    long len = BIO_get_mem_data(bio, &data);
    int rc = (len > 0 && data) ? write_new_file(path, data, (size_t)len, mode, err)
                               : ct_error_set(err, CT_ETLS, "cannot encode %s", path);
    BIO_free(bio);
    return rc;
}

int ct_http_tls_ensure_self_signed(const char *state_dir, ct_http_tls_files *out, ct_error *err)
{
    if (!state_dir || !*state_dir || !out)
        return ct_error_set(err, CT_EINVAL, "no state directory for the self-signed certificate");
    memset(out, 0, sizeof *out);

    struct stat dst;
    if (stat(state_dir, &dst) != 0)
        return ct_error_set(err, CT_EIO, "state directory %s: %s", state_dir, strerror(errno));
    if (!S_ISDIR(dst.st_mode))
        return ct_error_set(err, CT_EINVAL, "state directory %s is not a directory", state_dir);

    int rc = join_path(out->cert_path, sizeof out->cert_path, state_dir, CT_HTTP_CERT_FILE, err);
    if (rc == 0)
        rc = join_path(out->key_path, sizeof out->key_path, state_dir, CT_HTTP_KEY_FILE, err);
    if (rc != 0)
        return rc;

    int key_fd;
    rc = open_existing_key(out->key_path, &key_fd, err);
    if (rc != 0)
        return rc;
    struct stat cst;
    int have_cert = stat(out->cert_path, &cst) == 0;
    if (!have_cert && errno != ENOENT) {
        if (key_fd >= 0)
            close(key_fd);
        return ct_error_set(err, CT_EIO, "cannot stat %s: %s", out->cert_path, strerror(errno));
    }

    if (key_fd >= 0 && have_cert) {
        close(key_fd);
        return 0;
    }
    if (key_fd < 0 && have_cert)
        return ct_error_set(err, CT_ETLS,
                            "%s exists but its key %s does not: delete the certificate to generate "
                            "a new pair, or pass --cert and --key",
                            out->cert_path, out->key_path);

    int have_key = key_fd >= 0;
    EVP_PKEY *key = NULL;
    X509 *cert = NULL;
    if (have_key) {
        /* A crash between the two links leaves the key alone: give it a
         * certificate rather than make an operator clean up. */
        rc = read_key_fd(key_fd, out->key_path, &key, err);
        close(key_fd);
        if (rc != 0)
            return rc;
    } else {
        key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        if (!key)
            return ct_error_set(err, CT_ETLS, "cannot generate an EC P-256 key");
    }

    cert = make_certificate(key);
    if (!cert) {
        EVP_PKEY_free(key);
        return ct_error_set(err, CT_ETLS, "cannot build the self-signed certificate");
    }
    if (!have_key)
        rc = write_pem(out->key_path, NULL, key, 0600, err);
    if (rc == 0)
        rc = write_pem(out->cert_path, cert, NULL, 0644, err);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (rc != 0)
        return rc;
    sync_dir(state_dir);
    out->created = 1;
    return 0;
}
