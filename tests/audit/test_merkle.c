/* Tests of the streaming RFC 6962 Merkle tree: the Certificate Transparency
 * test vectors (roots of 0..8 leaves and subtree hashes from their audit
 * paths, as published with the RFC's reference implementation), agreement
 * with the recursive definition for every size up to 300, subtrees given
 * by their roots (what a filtered export carries), and frontiers restored
 * from a checkpoint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../src/audit/audit_impl.h"

/* The eight leaves of the CT test vectors. */
static const struct {
    const char *data;
    size_t len;
} leaves[8] = {
    {"", 0},
    {"\x00", 1},
    {"\x10", 1},
    {"\x20\x21", 2},
    {"\x30\x31", 2},
    {"\x40\x41\x42\x43", 4},
    {"\x50\x51\x52\x53\x54\x55\x56\x57", 8},
    {"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f", 16},
};

static const char *const roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

static void root_hex(const ct_audit_merkle *m, char out[65])
{
    unsigned char r[32];
    ct_audit_merkle_root(m, r);
    ct_audit_hex(r, 32, out);
}

static void unhex32(const char *s, unsigned char out[32])
{
    assert_int_equal(ct_audit_unhex(s, out, 32), 0);
}

static void test_ct_vectors(void **state)
{
    (void)state;
    for (int n = 0; n <= 8; n++) {
        ct_audit_merkle m;
        ct_audit_merkle_init(&m);
        for (int i = 0; i < n; i++)
            ct_audit_merkle_add(&m, leaves[i].data, leaves[i].len);
        char hex[65];
        root_hex(&m, hex);
        assert_string_equal(hex, roots[n]);
        assert_int_equal(m.size, (uint64_t)n);
        assert_int_equal(m.n, __builtin_popcount((unsigned)n));
    }
}

/* Subtree roots from the vectors' audit paths: leaf 5 of 8 has the path
 * [leaf 4, MTH(D[6:8]), MTH(D[0:4])]; leaf 0 of 8 has [leaf 1, MTH(D[2:4]),
 * MTH(D[4:8])]. A tree assembled from them has the root of 8 leaves. */
static void test_subtrees(void **state)
{
    (void)state;
    unsigned char d0_4[32], d6_8[32], d4_8[32], d2_4[32], leaf1[32];
    unhex32("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7", d0_4);
    unhex32("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0", d6_8);
    unhex32("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4", d4_8);
    unhex32("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e", d2_4);
    unhex32("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7", leaf1);
    char hex[65];

    ct_audit_merkle m;
    ct_audit_merkle_init(&m);
    assert_int_equal(ct_audit_merkle_add_subtree(&m, 2, d0_4), CT_OK);
    ct_audit_merkle_add(&m, leaves[4].data, leaves[4].len);
    ct_audit_merkle_add(&m, leaves[5].data, leaves[5].len);
    assert_int_equal(ct_audit_merkle_add_subtree(&m, 1, d6_8), CT_OK);
    root_hex(&m, hex);
    assert_string_equal(hex, roots[8]);

    ct_audit_merkle_init(&m);
    ct_audit_merkle_add(&m, leaves[0].data, leaves[0].len);
    ct_audit_merkle_add_leaf_hash(&m, leaf1);
    assert_int_equal(ct_audit_merkle_add_subtree(&m, 1, d2_4), CT_OK);
    root_hex(&m, hex);
    assert_string_equal(hex, roots[4]);
    assert_int_equal(ct_audit_merkle_add_subtree(&m, 2, d4_8), CT_OK);
    root_hex(&m, hex);
    assert_string_equal(hex, roots[8]);

    /* Only aligned subtrees fit: 8 + 4 is fine, 12 + 8 is not. */
    assert_int_equal(ct_audit_merkle_add_subtree(&m, 2, d4_8), CT_OK);
    assert_int_equal(m.size, 12);
    assert_int_equal(ct_audit_merkle_add_subtree(&m, 3, d4_8), CT_EINVAL);
    assert_int_equal(ct_audit_merkle_add_subtree(&m, -1, d4_8), CT_EINVAL);
    assert_int_equal(ct_audit_merkle_add_subtree(&m, 63, d4_8), CT_EINVAL);
    assert_int_equal(m.size, 12);
}

/* MTH straight from RFC 6962 section 2.1, recursively. */
static void mth(const unsigned char (*leaf)[32], size_t n, unsigned char out[32])
{
    if (n == 0) {
        ct_audit_sha256(NULL, 0, NULL, 0, out);
        return;
    }
    if (n == 1) {
        memcpy(out, leaf[0], 32);
        return;
    }
    size_t k = 1;
    while (k * 2 < n)
        k *= 2;
    unsigned char l[32], r[32];
    mth(leaf, k, l);
    mth(leaf + k, n - k, r);
    ct_audit_node_hash(l, r, out);
}

static void test_matches_recursive_definition(void **state)
{
    (void)state;
    enum { N = 300 };
    static unsigned char leaf[N][32];
    for (int i = 0; i < N; i++) {
        unsigned char data[4] = {(unsigned char)(i >> 8), (unsigned char)i, 0xa5, (unsigned char)(i * 7)};
        ct_audit_sha256("\0", 1, data, sizeof data, leaf[i]);
    }
    ct_audit_merkle m;
    ct_audit_merkle_init(&m);
    for (int n = 0; n <= N; n++) {
        unsigned char want[32], got[32];
        mth(leaf, (size_t)n, want);
        ct_audit_merkle_root(&m, got);
        if (memcmp(want, got, 32) != 0)
            fail_msg("root of %d leaves differs from the recursive MTH", n);
        /* The frontier alone carries the tree: restore it and go on. */
        ct_audit_merkle r;
        assert_int_equal(ct_audit_merkle_restore(&r, m.size, (const unsigned char(*)[32])m.node, m.n), CT_OK);
        ct_audit_merkle_root(&r, got);
        assert_memory_equal(want, got, 32);
        if (n < N)
            ct_audit_merkle_add_leaf_hash(&m, leaf[n]);
    }
    ct_audit_merkle r;
    assert_int_equal(ct_audit_merkle_restore(&r, 7, (const unsigned char(*)[32])m.node, 2), CT_EINVAL);
    assert_int_equal(ct_audit_merkle_restore(&r, 7, (const unsigned char(*)[32])m.node, 3), CT_OK);
}

/* A large tree costs 64 hashes of memory: 2^40 leaves is 40 subtrees of
 * 2^39 ... as roots, root computed without any leaf. */
static void test_large_sizes(void **state)
{
    (void)state;
    ct_audit_merkle m;
    ct_audit_merkle_init(&m);
    unsigned char h[32] = {1};
    for (int b = 40; b >= 0; b -= 3)
        assert_int_equal(ct_audit_merkle_add_subtree(&m, b, h), CT_OK);
    uint64_t want = 0;
    for (int b = 40; b >= 0; b -= 3)
        want += (uint64_t)1 << b;
    assert_int_equal(m.size, want);
    assert_int_equal(m.n, __builtin_popcountll(want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ct_vectors),
        cmocka_unit_test(test_subtrees),
        cmocka_unit_test(test_matches_recursive_definition),
        cmocka_unit_test(test_large_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
