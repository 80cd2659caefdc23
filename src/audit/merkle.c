/* audit/merkle: the Merkle tree over the log's entries, as RFC 6962 section
 * 2.1 defines it (the tree of Certificate Transparency): leaf =
 * SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right), and for n
 * leaves the left subtree holds the largest power of two smaller than n.
 *
 * The one idea: that shape is the binary representation of n. A tree of n
 * leaves is a row of perfect subtrees, one per bit set in n, largest first
 * (13 = 8 + 4 + 1); appending a leaf is adding 1 in binary, carries being
 * merges of equal subtrees; and the root folds the row from the right. So
 * the whole state is at most 64 hashes, the "frontier", whatever the size of
 * the log: verify and export stream the entries once and never hold more,
 * and a checkpoint stores its frontier so that the next one hashes only the
 * entries added since. A perfect, aligned subtree given by its root (what a
 * filtered export carries for entries it leaves out) is added the same way
 * as a leaf, one level higher. */
#include "audit_impl.h"

#include <string.h>

#include <openssl/evp.h>

void ct_audit_sha256(const void *a, size_t alen, const void *b, size_t blen, unsigned char out[32])
{
    /* EVP_MD_CTX allocation failing is the only error; a zero hash then
     * cannot verify anything, which is the safe side. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 || (alen && EVP_DigestUpdate(ctx, a, alen) != 1) ||
        (blen && EVP_DigestUpdate(ctx, b, blen) != 1) || EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32)
        memset(out, 0, 32);
    EVP_MD_CTX_free(ctx);
}

void ct_audit_node_hash(const unsigned char left[32], const unsigned char right[32], unsigned char out[32])
{
    unsigned char buf[65];
    buf[0] = 0x01;
    memcpy(buf + 1, left, 32);
    memcpy(buf + 33, right, 32);
    ct_audit_sha256(buf, sizeof buf, NULL, 0, out);
}

void ct_audit_hex(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int ct_audit_unhex(const char *s, unsigned char *out, size_t n)
{
    if (!s || strlen(s) != 2 * n)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

void ct_audit_merkle_init(ct_audit_merkle *m)
{
    memset(m, 0, sizeof *m);
}

/* Pushes a perfect subtree of 2^level leaves; the tree's size must be a
 * multiple of 2^level. Every 1 bit of size >> level is a carry: the subtree
 * of that size on the right end merges with the new one. */
static void push(ct_audit_merkle *m, int level, const unsigned char root[32])
{
    unsigned char h[32];
    memcpy(h, root, 32);
    for (uint64_t k = m->size >> level; k & 1; k >>= 1) {
        ct_audit_node_hash(m->node[m->n - 1], h, h);
        m->n--;
    }
    memcpy(m->node[m->n], h, 32);
    m->n++;
    m->size += (uint64_t)1 << level;
}

void ct_audit_merkle_add_leaf_hash(ct_audit_merkle *m, const unsigned char leaf[32])
{
    push(m, 0, leaf);
}

void ct_audit_merkle_add(ct_audit_merkle *m, const void *data, size_t len)
{
    unsigned char leaf[32];
    ct_audit_sha256("\0", 1, data, len, leaf);
    push(m, 0, leaf);
}

int ct_audit_merkle_add_subtree(ct_audit_merkle *m, int log2_size, const unsigned char root[32])
{
    if (log2_size < 0 || log2_size > 62)
        return CT_EINVAL;
    uint64_t sz = (uint64_t)1 << log2_size;
    if (m->size % sz != 0 || m->size > UINT64_MAX / 2 - sz)
        return CT_EINVAL;
    push(m, log2_size, root);
    return CT_OK;
}

void ct_audit_merkle_root(const ct_audit_merkle *m, unsigned char root[32])
{
    if (m->n == 0) {
        ct_audit_sha256(NULL, 0, NULL, 0, root);
        return;
    }
    unsigned char h[32];
    memcpy(h, m->node[m->n - 1], 32);
    for (int i = m->n - 2; i >= 0; i--)
        ct_audit_node_hash(m->node[i], h, h);
    memcpy(root, h, 32);
}

int ct_audit_merkle_restore(ct_audit_merkle *m, uint64_t size, const unsigned char (*node)[32], int n)
{
    if (n < 0 || n > 64 || __builtin_popcountll(size) != n)
        return CT_EINVAL;
    ct_audit_merkle_init(m);
    m->size = size;
    m->n = n;
    if (n)
        memcpy(m->node, node, (size_t)n * 32);
    return CT_OK;
}
