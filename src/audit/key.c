/* audit/key: the Ed25519 key that signs checkpoints, and the signed message.
 *
 * The one idea: the key lives outside the database, in a PEM file next to
 * it (or wherever the operator says), so that whoever can rewrite the
 * database but not read that file cannot forge a checkpoint; the public
 * half is written beside it for auditors, who should keep their own copy.
 * The file is created whole or not at all: written to a temporary file
 * (mode 0600 from the start), synced, then hard-linked to its final name,
 * which fails if another process got there first, in which case that
 * process's key is used. The signed message is a few lines of text so that
 * an auditor can rebuild it with printf and check it with
 * `openssl pkeyutl -verify -rawin`. */
#include "audit_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* A PEM key file is a few hundred bytes; anything much larger is not one. */
#define KEY_FILE_MAX 16384

struct ct_audit_key {
    EVP_PKEY *pkey;
    int has_private;
    char id[65];
};

static int openssl_error(ct_error *err, int code, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    return ct_error_set(err, code, "%s%s%s", what, e ? ": " : "", buf);
}

/* Wraps an EVP_PKEY (taken over) after checking that it is Ed25519. */
static int wrap(EVP_PKEY *pkey, int has_private, const char *what, ct_audit_key **out, ct_error *err)
{
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(pkey);
        return ct_error_set(err, CT_EFORMAT, "%s: not an Ed25519 key", what);
    }
    unsigned char raw[32];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey, raw, &n) != 1 || n != 32) {
        EVP_PKEY_free(pkey);
        return openssl_error(err, CT_EFORMAT, what);
    }
    ct_audit_key *k = calloc(1, sizeof *k);
    if (!k) {
        EVP_PKEY_free(pkey);
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    }
    k->pkey = pkey;
    k->has_private = has_private;
    unsigned char id[32];
    ct_audit_sha256(raw, 32, NULL, 0, id);
    ct_audit_hex(id, 32, k->id);
    *out = k;
    return CT_OK;
}

void ct_audit_key_free(ct_audit_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    free(k);
}

int ct_audit_key_has_private(const ct_audit_key *k)
{
    return k && k->has_private;
}

const char *ct_audit_key_id(const ct_audit_key *k)
{
    return k ? k->id : "";
}

int ct_audit_key_from_raw(const unsigned char raw[32], int is_private, ct_audit_key **out, ct_error *err)
{
    if (!out || !raw)
        return ct_error_set(err, CT_EINVAL, "ct_audit_key_from_raw: missing argument");
    *out = NULL;
    EVP_PKEY *p = is_private ? EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, raw, 32)
                             : EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, 32);
    if (!p)
        return openssl_error(err, CT_EFORMAT, "raw Ed25519 key");
    return wrap(p, is_private, "raw key", out, err);
}

/* Reads a small file whole (key files are bounded). */
static int read_small(const char *path, char **data, size_t *len, struct stat *sb, ct_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return ct_error_set(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        close(fd);
        return ct_error_set(err, CT_EIO, "%s: not a regular file", path);
    }
    if (sb->st_size > KEY_FILE_MAX) {
        close(fd);
        return ct_error_set(err, CT_ELIMIT, "%s: %lld bytes, too large for a key file", path,
                            (long long)sb->st_size);
    }
    char *buf = malloc((size_t)sb->st_size + 1);
    if (!buf) {
        close(fd);
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    }
    size_t got = 0;
    while (got < (size_t)sb->st_size) {
        ssize_t r = read(fd, buf + got, (size_t)sb->st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *data = buf;
    *len = got;
    return CT_OK;
}

int ct_audit_key_load(const char *path, ct_audit_key **out, ct_error *err)
{
    if (!out || !path)
        return ct_error_set(err, CT_EINVAL, "ct_audit_key_load: missing argument");
    *out = NULL;
    char *data = NULL;
    size_t len = 0;
    struct stat sb;
    int rc = read_small(path, &data, &len, &sb, err);
    if (rc != CT_OK)
        return rc;
    int is_private = strstr(data, "PRIVATE KEY-----") != NULL;
    if (is_private && (sb.st_mode & 077)) {
        free(data);
        return ct_error_set(err, CT_EINVAL, "%s: private key readable by others (mode %04o); "
                            "chmod 600 it", path, (unsigned)(sb.st_mode & 0777));
    }
    BIO *bio = BIO_new_mem_buf(data, (int)len);
    EVP_PKEY *p = NULL;
    if (bio)
        p = is_private ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    OPENSSL_cleanse(data, len);
    free(data);
    if (!p) {
        char what[512];
        snprintf(what, sizeof what, "%s: not a PEM %s key", path, is_private ? "private" : "public");
        return openssl_error(err, CT_EFORMAT, what);
    }
    return wrap(p, is_private, path, out, err);
}

/* Writes PEM to a new temporary file in dir, synced; *tmp gets its path. */
static int write_temp(const char *dir, const char *base, EVP_PKEY *p, int private_half, mode_t mode,
                      char *tmp, size_t cap, ct_error *err)
{
    snprintf(tmp, cap, "%s/.%s.XXXXXX", dir, base);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return ct_error_set(err, CT_EIO, "%s: cannot create a file: %s", dir, strerror(errno));
    int rc = CT_OK;
    if (fchmod(fd, mode) != 0) {
        rc = ct_error_set(err, CT_EIO, "%s: chmod: %s", tmp, strerror(errno));
    } else {
        BIO *bio = BIO_new(BIO_s_mem());
        int ok = bio && (private_half ? PEM_write_bio_PrivateKey(bio, p, NULL, NULL, 0, NULL, NULL)
                                      : PEM_write_bio_PUBKEY(bio, p));
        char *mem = NULL;
        long n = ok ? BIO_get_mem_data(bio, &mem) : 0;
        if (!ok || n <= 0) {
            rc = openssl_error(err, CT_EIO, "writing a PEM key");
        } else {
            ssize_t w = write(fd, mem, (size_t)n);
            if (w != n || fsync(fd) != 0)
                rc = ct_error_set(err, CT_EIO, "%s: %s", tmp, w != n ? "short write" : strerror(errno));
        }
        BIO_free(bio);
    }
    if (close(fd) != 0 && rc == CT_OK)
        rc = ct_error_set(err, CT_EIO, "%s: %s", tmp, strerror(errno));
    if (rc != CT_OK)
        unlink(tmp);
    return rc;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int ct_audit_key_open_dir(const char *dir, int create, ct_audit_key **out, int *created, ct_error *err)
{
    if (!dir || !out)
        return ct_error_set(err, CT_EINVAL, "ct_audit_key_open_dir: missing argument");
    *out = NULL;
    if (created)
        *created = 0;
    char path[4096], pub[4096], tmp[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, CT_AUDIT_KEY_FILE) >= sizeof path ||
        (size_t)snprintf(pub, sizeof pub, "%s/%s", dir, CT_AUDIT_PUB_FILE) >= sizeof pub)
        return ct_error_set(err, CT_EINVAL, "key folder path too long");
    ct_error local;
    ct_error_clear(&local);
    int made = 0;
    int rc = ct_audit_key_load(path, out, &local);
    if (rc != CT_ENOTFOUND || !create) {
        if (rc != CT_OK && err)
            *err = local;
        if (rc != CT_OK || !create)
            return rc;
    } else {
        EVP_PKEY *p = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        if (!p)
            return openssl_error(err, CT_EIO, "generating an Ed25519 key");
        rc = write_temp(dir, CT_AUDIT_KEY_FILE, p, 1, 0600, tmp, sizeof tmp, err);
        if (rc == CT_OK) {
            /* link() will not replace an existing file: the first writer wins. */
            int linked = link(tmp, path) == 0;
            int e = errno;
            unlink(tmp);
            if (!linked && e != EEXIST)
                rc = ct_error_set(err, CT_EIO, "%s: %s", path, strerror(e));
            made = linked;
        }
        EVP_PKEY_free(p);
        if (rc != CT_OK)
            return rc;
        if ((rc = ct_audit_key_load(path, out, err)) != CT_OK)
            return rc;
    }
    /* The public half, for auditors: written when missing (a key made
     * here, or one the operator put in place), never overwritten. */
    if (access(pub, F_OK) != 0) {
        rc = write_temp(dir, CT_AUDIT_PUB_FILE, (*out)->pkey, 0, 0644, tmp, sizeof tmp, err);
        if (rc == CT_OK && rename(tmp, pub) != 0) {
            rc = ct_error_set(err, CT_EIO, "%s: %s", pub, strerror(errno));
            unlink(tmp);
        }
        /* Without it a new key could not be handed to auditors; an
         * existing key still signs (a read-only key folder, say). */
        if (rc != CT_OK && made) {
            ct_audit_key_free(*out);
            *out = NULL;
            return rc;
        }
        ct_error_clear(err);
    }
    sync_dir(dir);
    if (created)
        *created = made;
    return CT_OK;
}

/* ---- checkpoints ------------------------------------------------------------------- */

size_t ct_audit_checkpoint_message(const ct_audit_checkpoint_info *cp, char *out, size_t cap)
{
    char head[65], root[65];
    ct_audit_hex(cp->head_hash, 32, head);
    ct_audit_hex(cp->merkle_root, 32, root);
    int n = snprintf(out, cap,
                     "cardiotwin audit checkpoint v1\n"
                     "checkpoint %lld\n"
                     "size %lld\n"
                     "head %s\n"
                     "root %s\n"
                     "time_ms %lld\n",
                     (long long)cp->id, (long long)cp->size, head, root, (long long)cp->time_ms);
    return n < 0 ? 0 : (size_t)n;
}

int ct_audit_checkpoint_sign(const ct_audit_key *key, ct_audit_checkpoint_info *cp, ct_error *err)
{
    if (!key || !cp)
        return ct_error_set(err, CT_EINVAL, "ct_audit_checkpoint_sign: missing argument");
    if (!key->has_private)
        return ct_error_set(err, CT_EINVAL, "signing a checkpoint needs the private key, not the public one");
    char msg[CT_AUDIT_CHECKPOINT_MSG_MAX];
    size_t len = ct_audit_checkpoint_message(cp, msg, sizeof msg);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    size_t sig_len = 64;
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
             EVP_DigestSign(ctx, cp->signature, &sig_len, (const unsigned char *)msg, len) == 1 && sig_len == 64;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return openssl_error(err, CT_EIO, "signing a checkpoint");
    memcpy(cp->key_id, key->id, 65);
    return CT_OK;
}

int ct_audit_checkpoint_check_signature(const ct_audit_key *key, const ct_audit_checkpoint_info *cp,
                                        ct_error *err)
{
    if (!key || !cp)
        return ct_error_set(err, CT_EINVAL, "checking a checkpoint signature: missing argument");
    if (strcmp(cp->key_id, key->id) != 0)
        return ct_error_set(err, CT_ECHECKSUM, "checkpoint %lld was signed by key %.16s..., not by the "
                            "given public key %.16s...", (long long)cp->id, cp->key_id, key->id);
    char msg[CT_AUDIT_CHECKPOINT_MSG_MAX];
    size_t len = ct_audit_checkpoint_message(cp, msg, sizeof msg);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key->pkey) != 1) {
        EVP_MD_CTX_free(ctx);
        return openssl_error(err, CT_ENOMEM, "checking a checkpoint signature");
    }
    int v = EVP_DigestVerify(ctx, cp->signature, 64, (const unsigned char *)msg, len);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    if (v != 1)
        return ct_error_set(err, CT_ECHECKSUM, "checkpoint %lld: the signature does not verify (the "
                            "checkpoint was altered or forged)", (long long)cp->id);
    return CT_OK;
}
