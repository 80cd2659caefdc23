/* The pure parts of the login (src/http/sessions.c, ratelimit.c,
 * users.c): cookie parsing against hostile headers, the shape of session
 * secrets, the CSRF comparison, the lockout rule, the token bucket with a
 * made-up clock, the bounded limiter table, and the limits on KDF
 * parameters a database row may ask for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/http_internal.h"

static void test_cookie_parsing(void **state)
{
    (void)state;
    char v[64];
    assert_int_equal(ct_http_cookie_get("ct_session=abc", "ct_session", v, sizeof v), 1);
    assert_string_equal(v, "abc");
    assert_int_equal(ct_http_cookie_get("a=1; ct_session=xyz; b=2", "ct_session", v, sizeof v), 1);
    assert_string_equal(v, "xyz");
    assert_int_equal(ct_http_cookie_get("  a=1 ;ct_session = \"q\" ;", "ct_session", v, sizeof v), 1);
    assert_string_equal(v, "q");
    /* Absent, or only a name that contains ours. */
    assert_int_equal(ct_http_cookie_get("x_ct_session=1; ct_session_old=2", "ct_session", v, sizeof v), 0);
    assert_string_equal(v, "");
    assert_int_equal(ct_http_cookie_get(NULL, "ct_session", v, sizeof v), 0);
    assert_int_equal(ct_http_cookie_get("", "ct_session", v, sizeof v), 0);
    assert_int_equal(ct_http_cookie_get(";;;; ;", "ct_session", v, sizeof v), 0);
    assert_int_equal(ct_http_cookie_get("ct_session", "ct_session", v, sizeof v), 0);
    /* Twice: ambiguous, refused, and the buffer holds neither. */
    assert_int_equal(ct_http_cookie_get("ct_session=a; ct_session=b", "ct_session", v, sizeof v), -1);
    assert_string_equal(v, "");
    /* A value that does not fit is refused, never cut. */
    char big[200];
    memset(big, 'A', sizeof big);
    memcpy(big, "ct_session=", 11);
    big[sizeof big - 1] = '\0';
    assert_int_equal(ct_http_cookie_get(big, "ct_session", v, sizeof v), -1);
    /* Empty value: found, empty (the caller refuses its shape). */
    assert_int_equal(ct_http_cookie_get("ct_session=", "ct_session", v, sizeof v), 1);
    assert_string_equal(v, "");
    /* A lone quote is kept as is (not a quoted value). */
    assert_int_equal(ct_http_cookie_get("ct_session=\"", "ct_session", v, sizeof v), 1);
    assert_string_equal(v, "\"");
}

static void test_secret_shape(void **state)
{
    (void)state;
    const char *good = "XOw51LT9RNcYTNXZbzISzTet57ZWpofeKO1jzVI42cc";
    assert_int_equal(strlen(good), CT_HTTP_SECRET_LEN);
    assert_true(ct_http_secret_well_formed(good, strlen(good)));
    /* A non-canonical last character (low bits set) spells the same bytes
     * differently: refused. 'd' is index 29, 29 & 3 != 0. */
    char bad[64];
    snprintf(bad, sizeof bad, "%.42sd", good);
    assert_false(ct_http_secret_well_formed(bad, strlen(bad)));
    snprintf(bad, sizeof bad, "%.41s=c", good);
    assert_false(ct_http_secret_well_formed(bad, strlen(bad)));
    assert_false(ct_http_secret_well_formed(good, strlen(good) - 1));
    assert_false(ct_http_secret_well_formed("", 0));
    assert_false(ct_http_secret_well_formed(NULL, 43));
    /* A bearer token is not a session cookie. */
    assert_false(ct_http_secret_well_formed("ct_q3VxXOw51LT9RNcYTNXZbzISzTet57ZWpofeKO1jz", 46));
}

static void test_csrf_compare(void **state)
{
    (void)state;
    const char *t = "9_EXg29F_SUTGBH59agYSKyZFiuuCimVhu62xsefoW0";
    assert_true(ct_http_csrf_equal(t, t));
    char copy[64];
    snprintf(copy, sizeof copy, "%s", t);
    assert_true(ct_http_csrf_equal(copy, t));
    copy[42] = 'A';
    assert_false(ct_http_csrf_equal(copy, t));
    copy[42] = t[42];
    copy[0] = 'x';
    assert_false(ct_http_csrf_equal(copy, t));
    assert_false(ct_http_csrf_equal(NULL, t));
    assert_false(ct_http_csrf_equal("", t));
    assert_false(ct_http_csrf_equal(t, ""));
    assert_false(ct_http_csrf_equal("", ""));
    assert_false(ct_http_csrf_equal(NULL, NULL));
    /* A prefix, or the token with more after it. */
    snprintf(copy, sizeof copy, "%.20s", t);
    assert_false(ct_http_csrf_equal(copy, t));
    snprintf(copy, sizeof copy, "%sx", t);
    assert_false(ct_http_csrf_equal(copy, t));
}

static void test_lockout_rule(void **state)
{
    (void)state;
    int64_t failed = -1, locked = -1, now = 1700000000000;
    int64_t count = 0;
    for (int i = 1; i < CT_HTTP_LOGIN_MAX_FAILURES; i++) {
        ct_http_lockout_after_failure(count, now, &failed, &locked);
        assert_int_equal(failed, i);
        assert_int_equal(locked, 0);
        count = failed;
    }
    ct_http_lockout_after_failure(count, now, &failed, &locked);
    assert_int_equal(failed, 0);
    assert_int_equal(locked, now + CT_HTTP_LOGIN_LOCK_MS);
    assert_int_equal(CT_HTTP_LOGIN_LOCK_MS, 15 * 60 * 1000);
    /* A count stored over the limit (an older build, a hand edit) locks. */
    ct_http_lockout_after_failure(99, now, &failed, &locked);
    assert_int_equal(failed, 0);
    assert_int_equal(locked, now + CT_HTTP_LOGIN_LOCK_MS);
    ct_http_lockout_after_failure(-3, now, &failed, &locked);
    assert_int_equal(failed, 1);
    assert_int_equal(locked, 0);
}

static void test_bucket(void **state)
{
    (void)state;
    ct_http_bucket b = {0};
    int64_t t = 5000000, retry = -1;
    /* New: full. A burst of 3 passes, the 4th waits 1/rate. */
    for (int i = 0; i < 3; i++)
        assert_true(ct_http_bucket_take(&b, 2.0, 3.0, t, &retry));
    assert_false(ct_http_bucket_take(&b, 2.0, 3.0, t, &retry));
    assert_int_equal(retry, 500);
    /* 250 ms later half a token: still refused, 250 ms to go. */
    assert_false(ct_http_bucket_take(&b, 2.0, 3.0, t + 250000, &retry));
    assert_int_equal(retry, 250);
    /* 500 ms: one. */
    assert_true(ct_http_bucket_take(&b, 2.0, 3.0, t + 500000, &retry));
    assert_int_equal(retry, 0);
    assert_false(ct_http_bucket_take(&b, 2.0, 3.0, t + 500000, NULL));
    /* A long pause refills to the burst, not beyond. */
    t += 3600000000LL;
    int passed = 0;
    while (ct_http_bucket_take(&b, 2.0, 3.0, t, NULL))
        passed++;
    assert_int_equal(passed, 3);
    /* A clock that goes backwards gives nothing. */
    assert_false(ct_http_bucket_take(&b, 2.0, 3.0, t - 10000000, NULL));
    /* Rate 200/s burst 400: 400 at once, then 200 over the next second. */
    ct_http_bucket c = {0};
    passed = 0;
    for (int i = 0; i < 1000; i++)
        passed += ct_http_bucket_take(&c, 200.0, 400.0, t, NULL);
    assert_int_equal(passed, 400);
    passed = 0;
    for (int ms = 1; ms <= 1000; ms++)
        while (ct_http_bucket_take(&c, 200.0, 400.0, t + ms * 1000LL, NULL))
            passed++;
    assert_int_equal(passed, 200);
    /* Rounding: a wait of 1/3 s is announced as 334 ms, never 333. */
    ct_http_bucket d = {0};
    assert_true(ct_http_bucket_take(&d, 3.0, 1.0, t, NULL));
    assert_false(ct_http_bucket_take(&d, 3.0, 1.0, t, &retry));
    assert_int_equal(retry, 334);
}

static void test_limiter_table(void **state)
{
    (void)state;
    ct_http_limiter *l = ct_http_limiter_new();
    assert_non_null(l);
    int64_t t = 1000000, retry = 0, supp = -1;
    assert_true(ct_http_limiter_take(l, "tok:1", 1.0, 2.0, t, &retry, &supp));
    assert_int_equal(supp, 0);
    assert_true(ct_http_limiter_take(l, "tok:1", 1.0, 2.0, t, &retry, &supp));
    assert_false(ct_http_limiter_take(l, "tok:1", 1.0, 2.0, t, &retry, &supp));
    assert_int_equal(retry, 1000);
    assert_false(ct_http_limiter_take(l, "tok:1", 1.0, 2.0, t, &retry, &supp));
    /* Another key has its own bucket. */
    assert_true(ct_http_limiter_take(l, "tok:2", 1.0, 2.0, t, &retry, &supp));
    /* The next token taken reports the two refusals in between. */
    assert_true(ct_http_limiter_take(l, "tok:1", 1.0, 2.0, t + 1000000, &retry, &supp));
    assert_int_equal(supp, 2);
    assert_false(ct_http_limiter_take(l, "tok:1", 1.0, 2.0, t + 1000000, &retry, &supp));
    /* Far more keys than slots: memory stays fixed and a dropped bucket
     * comes back full, so nobody new is refused. */
    char key[32];
    for (int i = 0; i < 3 * CT_HTTP_LIMITER_SLOTS; i++) {
        snprintf(key, sizeof key, "addr:%d", i);
        assert_true(ct_http_limiter_take(l, key, 1.0, 1.0, t + 2000000 + i, NULL, NULL));
    }
    /* A key used a moment ago is still limited unless it was evicted;
     * the most recent one always is. */
    snprintf(key, sizeof key, "addr:%d", 3 * CT_HTTP_LIMITER_SLOTS - 1);
    assert_false(ct_http_limiter_take(l, key, 1.0, 1.0, t + 2000000 + 3 * CT_HTTP_LIMITER_SLOTS, NULL, NULL));
    /* NULL limiter or key: no limit (a server without a table). */
    assert_true(ct_http_limiter_take(NULL, "x", 1.0, 1.0, t, NULL, NULL));
    /* The KDF gate lets one through and back. */
    ct_http_kdf_gate_enter(l);
    ct_http_kdf_gate_leave(l);
    ct_http_limiter_free(l);
}

static void test_kdf_limits(void **state)
{
    (void)state;
    ct_http_kdf_params p;
    ct_http_kdf_default(&p);
    assert_string_equal(p.kdf, "scrypt");
    assert_int_equal(p.cost, 131072);
    assert_int_equal(p.block, 8);
    assert_int_equal(p.parallel, 1);
    ct_error err = {0};
    assert_int_equal(ct_http_kdf_check(&p, &err), 0);
    p.cost = 131071; /* not a power of two */
    assert_int_equal(ct_http_kdf_check(&p, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "power of two"));
    p.cost = 1 << 20;
    p.block = 16; /* 2 GiB */
    assert_int_equal(ct_http_kdf_check(&p, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "MiB"));
    p.block = 65;
    p.cost = 1024;
    assert_int_equal(ct_http_kdf_check(&p, &err), CT_EFORMAT);
    snprintf(p.kdf, sizeof p.kdf, "md5");
    p.block = 8;
    assert_int_equal(ct_http_kdf_check(&p, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "md5"));
    snprintf(p.kdf, sizeof p.kdf, "pbkdf2-sha256");
    p.cost = 600000;
    p.block = 1;
    p.parallel = 1;
    assert_int_equal(ct_http_kdf_check(&p, &err), 0);
    p.cost = 100000000;
    assert_int_equal(ct_http_kdf_check(&p, &err), CT_EFORMAT);
    /* Out-of-range parameters never reach OpenSSL. */
    unsigned char out[32], salt[16] = {0};
    assert_int_equal(ct_http_password_hash(&p, "x", 1, salt, sizeof salt, out, &err), CT_EFORMAT);
    /* PBKDF2-HMAC-SHA256 against RFC 7914 section 11's vector ("passwd",
     * "salt", c=1): the first 32 bytes of its 64. */
    p.cost = 1;
    static const unsigned char want[32] = {0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91,
                                           0xc2, 0x25, 0x44, 0xb6, 0x05, 0xf9, 0x41, 0x85, 0x21, 0x6d, 0xde,
                                           0x04, 0x65, 0xe6, 0x8b, 0x9d, 0x57, 0xc2, 0x0d, 0xac, 0xbc};
    assert_int_equal(ct_http_password_hash(&p, "passwd", 6, (const unsigned char *)"salt", 4, out, &err), 0);
    assert_memory_equal(out, want, 32);
    /* scrypt against RFC 7914 section 12's second vector ("password",
     * "NaCl", N=1024, r=8, p=16): its first 32 bytes. */
    snprintf(p.kdf, sizeof p.kdf, "scrypt");
    p.cost = 1024;
    p.block = 8;
    p.parallel = 16;
    static const unsigned char want_s[32] = {0xfd, 0xba, 0xbe, 0x1c, 0x9d, 0x34, 0x72, 0x00, 0x78, 0x56, 0xe7,
                                             0x19, 0x0d, 0x01, 0xe9, 0xfe, 0x7c, 0x6a, 0xd7, 0xcb, 0xc8, 0x23,
                                             0x78, 0x30, 0xe7, 0x73, 0x76, 0x63, 0x4b, 0x37, 0x31, 0x62};
    assert_int_equal(ct_http_password_hash(&p, "password", 8, (const unsigned char *)"NaCl", 4, out, &err), 0);
    assert_memory_equal(out, want_s, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_parsing), cmocka_unit_test(test_secret_shape),
        cmocka_unit_test(test_csrf_compare),   cmocka_unit_test(test_lockout_rule),
        cmocka_unit_test(test_bucket),         cmocka_unit_test(test_limiter_table),
        cmocka_unit_test(test_kdf_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
