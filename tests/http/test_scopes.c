/* SMART v2 scopes, the roles' scopes, and the token's text: the pure parts
 * of authorization (src/http/scopes.c, src/http/tokens.c), each rule on
 * its own. What the server does with them end to end is
 * tests/integration/test_access.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/http/http_internal.h"

static ct_http_scope parse(const char *s)
{
    ct_http_scope sc;
    assert_int_equal(ct_http_scope_parse(s, strlen(s), &sc), 0);
    return sc;
}

static void refused(const char *s)
{
    ct_http_scope sc;
    if (ct_http_scope_parse(s, strlen(s), &sc) != -1)
        fail_msg("'%s' parsed as a scope", s);
}

static void test_parse(void **state)
{
    (void)state;
    ct_http_scope sc = parse("patient/Observation.rs");
    assert_int_equal(sc.ctx, CT_HTTP_CTX_PATIENT);
    assert_string_equal(sc.type, "Observation");
    assert_int_equal(sc.perms, CT_HTTP_PERM_R | CT_HTTP_PERM_S);
    assert_false(sc.has_query);
    sc = parse("user/*.cruds");
    assert_int_equal(sc.ctx, CT_HTTP_CTX_USER);
    assert_string_equal(sc.type, "*");
    assert_int_equal(sc.perms, CT_HTTP_PERM_ALL);
    sc = parse("system/Device.r");
    assert_int_equal(sc.ctx, CT_HTTP_CTX_SYSTEM);
    assert_int_equal(sc.perms, CT_HTTP_PERM_R);
    sc = parse("system/Observation.cd");
    assert_int_equal(sc.perms, CT_HTTP_PERM_C | CT_HTTP_PERM_D);
    /* SMART v1 forms. */
    assert_int_equal(parse("user/*.read").perms, CT_HTTP_PERM_R | CT_HTTP_PERM_S);
    assert_int_equal(parse("user/Patient.write").perms, CT_HTTP_PERM_C | CT_HTTP_PERM_U | CT_HTTP_PERM_D);
    assert_int_equal(parse("patient/*.*").perms, CT_HTTP_PERM_ALL);
    /* A v2 granular filter is seen, so that it can be refused. */
    sc = parse("patient/Observation.rs?category=vital-signs");
    assert_true(sc.has_query);
    assert_string_equal(sc.type, "Observation");
    assert_true(parse("user/Observation.rs?code=http://loinc.org|8867-4").has_query);
    /* Not resource scopes, or broken ones. */
    refused("openid");
    refused("launch/patient");
    refused("fhirUser");
    refused("offline_access");
    refused("");
    refused("user/Observation");
    refused("user/Observation.");
    refused("user/.r");
    refused("admin/*.r");
    refused("User/Patient.r");
    refused("user/patient.r");       /* types start upper-case */
    refused("user/Obser-vation.r");
    refused("user/Patient.rc");      /* out of order */
    refused("user/Patient.rr");      /* repeated */
    refused("user/Patient.rx");      /* unknown letter */
    refused("user/Patient.R");
    refused("user/Patient.reads");
    refused("user/**.r");
    char long_type[128] = "user/";
    memset(long_type + 5, 'A', CT_FHIR_TYPE_MAX + 1);
    memcpy(long_type + 5 + CT_FHIR_TYPE_MAX + 1, ".r", 3);
    refused(long_type);
    long_type[5 + CT_FHIR_TYPE_MAX] = '.'; /* 64 letters: the longest type */
    long_type[5 + CT_FHIR_TYPE_MAX + 1] = 'r';
    long_type[5 + CT_FHIR_TYPE_MAX + 2] = '\0';
    assert_int_equal(strlen(parse(long_type).type), CT_FHIR_TYPE_MAX);
    ct_http_scope out;
    assert_int_equal(ct_http_scope_parse(NULL, 0, &out), -1);
    /* Only n bytes are read: "user/Patient.r" inside a longer string. */
    assert_int_equal(ct_http_scope_parse("user/Patient.rs junk", 14, &out), 0);
    assert_int_equal(out.perms, CT_HTTP_PERM_R);
}

static void test_perm_bits(void **state)
{
    (void)state;
    assert_int_equal(ct_http_perm_bit('c'), CT_HTTP_PERM_C);
    assert_int_equal(ct_http_perm_bit('r'), CT_HTTP_PERM_R);
    assert_int_equal(ct_http_perm_bit('u'), CT_HTTP_PERM_U);
    assert_int_equal(ct_http_perm_bit('d'), CT_HTTP_PERM_D);
    assert_int_equal(ct_http_perm_bit('s'), CT_HTTP_PERM_S);
    assert_int_equal(ct_http_perm_bit('x'), 0);
    assert_int_equal(ct_http_perm_bit('\0'), 0);
    assert_int_equal(ct_http_perm_bit('R'), 0);
}

static void test_grant(void **state)
{
    (void)state;
    const unsigned C = CT_HTTP_PERM_C, R = CT_HTTP_PERM_R, U = CT_HTTP_PERM_U, D = CT_HTTP_PERM_D,
                   S = CT_HTTP_PERM_S;
    assert_int_equal(ct_http_scopes_grant("user/*.rs", "Observation", R), CT_HTTP_GRANT_ALL);
    assert_int_equal(ct_http_scopes_grant("user/*.rs", "Observation", S), CT_HTTP_GRANT_ALL);
    assert_int_equal(ct_http_scopes_grant("user/*.rs", "Observation", C), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("user/*.rs", "Observation", R | S), CT_HTTP_GRANT_ALL);
    assert_int_equal(ct_http_scopes_grant("user/*.rs", "Observation", R | U), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("system/Observation.c", "Observation", C), CT_HTTP_GRANT_ALL);
    assert_int_equal(ct_http_scopes_grant("system/Observation.c", "Device", C), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("patient/*.rs", "Patient", R), CT_HTTP_GRANT_PATIENT);
    assert_int_equal(ct_http_scopes_grant("patient/*.rs", "Patient", D), CT_HTTP_GRANT_NONE);
    /* Permissions may come from several scopes; the narrowest grant wins. */
    assert_int_equal(ct_http_scopes_grant("user/Observation.r user/Observation.s", "Observation", R | S),
                     CT_HTTP_GRANT_ALL);
    assert_int_equal(ct_http_scopes_grant("user/Observation.r patient/Observation.s", "Observation", R | S),
                     CT_HTTP_GRANT_PATIENT);
    assert_int_equal(ct_http_scopes_grant("user/Observation.r patient/Observation.s", "Observation", R),
                     CT_HTTP_GRANT_ALL);
    /* The widest scope for one permission counts. */
    assert_int_equal(ct_http_scopes_grant("patient/*.rs user/Observation.r", "Observation", R), CT_HTTP_GRANT_ALL);
    /* Granular filters cannot be enforced: they grant nothing. */
    assert_int_equal(ct_http_scopes_grant("user/Observation.rs?category=vital-signs", "Observation", R),
                     CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("user/Observation.rs?category=x user/Patient.r", "Patient", R),
                     CT_HTTP_GRANT_ALL);
    /* Other words, extra spaces, garbage around them. */
    assert_int_equal(ct_http_scopes_grant("  openid   launch/patient user/Device.r  ", "Device", R),
                     CT_HTTP_GRANT_ALL);
    assert_int_equal(ct_http_scopes_grant("user/Obs.r", "Observation", R), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("user/Observation.r", "Obs", R), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("user/Observationx.r", "Observation", R), CT_HTTP_GRANT_NONE);
    /* Bad questions get no grant. */
    assert_int_equal(ct_http_scopes_grant("user/*.cruds", "Observation", 0), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("user/*.cruds", "Observation", 64), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("user/*.cruds", "", R), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant(NULL, "Patient", R), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("", "Patient", R), CT_HTTP_GRANT_NONE);
    assert_int_equal(ct_http_scopes_grant("user/*.cruds", NULL, R), CT_HTTP_GRANT_NONE);
    /* The full-access question (ct_http_scope_grants) never counts patient/. */
    assert_true(ct_http_scope_grants("system/*.cruds", "user/Observation.d"));
    assert_false(ct_http_scope_grants("patient/*.cruds", "user/Observation.r"));
    assert_false(ct_http_scope_grants("user/*.cruds", "patient/Observation.r"));
    assert_false(ct_http_scope_grants("user/*.cruds", "user/*.r"));
    assert_false(ct_http_scope_grants("user/*.cruds", "user/Observation.r?x=1"));
    assert_false(ct_http_scope_grants("user/*.cruds", NULL));
}

/* What each role may do, as the route table asks it: one type, one letter. */
static void test_roles(void **state)
{
    (void)state;
    static const char *const types[] = {"Patient", "Observation", "DiagnosticReport", "Device", "Provenance",
                                        "AuditEvent"};
    static const char letters[] = "cruds";
    /* Expected: for each role, for each type, the letters granted. */
    static const struct {
        const char *role;
        const char *granted[6];
    } want[] = {
        {"device", {"", "c", "", "r", "", ""}},
        /* The user/ wildcard does not reach the audit log (scopes.c). */
        {"clinician", {"rs", "rs", "rs", "rs", "rs", ""}},
        {"auditor", {"", "", "", "", "", "rs"}},
        {"admin", {"cruds", "cruds", "cruds", "cruds", "cruds", "cruds"}},
    };
    size_t n_roles = 0;
    while (ct_http_role_at(n_roles))
        n_roles++;
    assert_int_equal(n_roles, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const ct_http_role_info *r = ct_http_role_lookup(want[i].role);
        assert_non_null(r);
        assert_ptr_equal(r, ct_http_role_at(i));
        assert_non_null(r->summary);
        for (int bound = 0; bound < 2; bound++) {
            char scopes[256];
            int rc = ct_http_role_scopes(r->name, bound, scopes, sizeof scopes);
            if (bound && !r->patient_scopes) {
                assert_int_equal(rc, -1);
                continue;
            }
            assert_int_equal(rc, 0);
            for (size_t t = 0; t < 6; t++)
                for (int l = 0; l < 5; l++) {
                    int expect = strchr(want[i].granted[t], letters[l]) != NULL;
                    ct_http_grant g = ct_http_scopes_grant(scopes, types[t], ct_http_perm_bit(letters[l]));
                    ct_http_grant want_g = !expect ? CT_HTTP_GRANT_NONE
                                           : bound ? CT_HTTP_GRANT_PATIENT
                                                   : CT_HTTP_GRANT_ALL;
                    if (g != want_g)
                        fail_msg("role %s%s on %s.%c: grant %d, expected %d", r->name, bound ? " (bound)" : "",
                                 types[t], letters[l], (int)g, (int)want_g);
                }
        }
    }
    /* The issue's scopes, literally. */
    assert_string_equal(ct_http_role_lookup("device")->scopes, "system/Observation.c system/Device.r");
    assert_string_equal(ct_http_role_lookup("clinician")->scopes, "user/*.rs");
    assert_string_equal(ct_http_role_lookup("auditor")->scopes, "system/AuditEvent.rs");
    assert_string_equal(ct_http_role_lookup("admin")->scopes, "system/*.cruds");
    assert_null(ct_http_role_lookup("root"));
    assert_null(ct_http_role_lookup(NULL));
    assert_null(ct_http_role_lookup("Admin"));
    char buf[8];
    assert_int_equal(ct_http_role_scopes("clinician", 0, buf, sizeof buf), -1); /* the clinician scopes need 10 bytes */
    assert_int_equal(ct_http_role_scopes("nobody", 0, buf, sizeof buf), -1);
    char need[300];
    ct_http_scope_describe("Observation", CT_HTTP_PERM_C, need, sizeof need);
    assert_non_null(strstr(need, "user/Observation.c"));
    assert_non_null(strstr(need, "system/Observation.c"));
    assert_non_null(strstr(need, "patient/Observation.c"));
}

static void test_token_text(void **state)
{
    (void)state;
    ct_error err = {0};
    enum { N = 500 };
    static char seen[N][CT_HTTP_TOKEN_BUF];
    for (int i = 0; i < N; i++) {
        assert_int_equal(ct_http_token_generate(seen[i], sizeof seen[i], &err), 0);
        assert_int_equal(strlen(seen[i]), CT_HTTP_TOKEN_LEN);
        assert_memory_equal(seen[i], "ct_", 3);
        assert_true(ct_http_token_well_formed(seen[i], CT_HTTP_TOKEN_LEN));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(seen[i], seen[j]);
    }
    /* Every base64url character turns up: the 256 bits are spread over the
     * whole alphabet, not a hex subset. */
    int used[256] = {0};
    for (int i = 0; i < N; i++)
        for (int k = 3; k < CT_HTTP_TOKEN_LEN; k++)
            used[(unsigned char)seen[i][k]] = 1;
    int distinct = 0;
    for (int c = 0; c < 256; c++)
        distinct += used[c];
    assert_int_equal(distinct, 64);
    char small[CT_HTTP_TOKEN_LEN];
    assert_int_equal(ct_http_token_generate(small, sizeof small, &err), CT_EINVAL);

    char t[CT_HTTP_TOKEN_BUF];
    memcpy(t, seen[0], sizeof t);
    assert_false(ct_http_token_well_formed(t, CT_HTTP_TOKEN_LEN - 1));
    assert_false(ct_http_token_well_formed(NULL, CT_HTTP_TOKEN_LEN));
    t[0] = 'C';
    assert_false(ct_http_token_well_formed(t, CT_HTTP_TOKEN_LEN));
    memcpy(t, seen[0], sizeof t);
    t[10] = '+'; /* base64, not base64url */
    assert_false(ct_http_token_well_formed(t, CT_HTTP_TOKEN_LEN));
    t[10] = '=';
    assert_false(ct_http_token_well_formed(t, CT_HTTP_TOKEN_LEN));
    memcpy(t, seen[0], sizeof t);
    /* The last character holds 4 bits and two zero bits: 'B' (1) is not a
     * canonical ending, 'A', 'E', 'I' ... are. */
    t[CT_HTTP_TOKEN_LEN - 1] = 'B';
    assert_false(ct_http_token_well_formed(t, CT_HTTP_TOKEN_LEN));
    t[CT_HTTP_TOKEN_LEN - 1] = 'E';
    assert_true(ct_http_token_well_formed(t, CT_HTTP_TOKEN_LEN));
    assert_true(ct_http_token_well_formed("ct_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", CT_HTTP_TOKEN_LEN));
    assert_false(ct_http_token_well_formed("xx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", CT_HTTP_TOKEN_LEN));

    /* SHA-256 as FIPS 180-2 gives it. */
    unsigned char h[32];
    static const unsigned char abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                          0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                          0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    assert_int_equal(ct_http_token_hash("abc", 3, h), 0);
    assert_memory_equal(h, abc, 32);
    unsigned char h2[32];
    assert_int_equal(ct_http_token_hash(seen[0], CT_HTTP_TOKEN_LEN, h), 0);
    assert_int_equal(ct_http_token_hash(seen[1], CT_HTTP_TOKEN_LEN, h2), 0);
    assert_memory_not_equal(h, h2, 32);
}

static void test_token_state(void **state)
{
    (void)state;
    ct_store_token t;
    memset(&t, 0, sizeof t);
    t.created_ms = 1000;
    assert_int_equal(ct_http_token_state_at(&t, 5000), CT_HTTP_TOKEN_ACTIVE);
    t.expires_ms = 2000;
    assert_int_equal(ct_http_token_state_at(&t, 1999), CT_HTTP_TOKEN_ACTIVE);
    assert_int_equal(ct_http_token_state_at(&t, 2000), CT_HTTP_TOKEN_EXPIRED);
    t.revoked_ms = 1500;
    /* Revocation says more than expiry. */
    assert_int_equal(ct_http_token_state_at(&t, 2500), CT_HTTP_TOKEN_REVOKED);
    assert_int_equal(ct_http_token_state_at(&t, 1600), CT_HTTP_TOKEN_REVOKED);
    assert_string_equal(ct_http_token_state_name(CT_HTTP_TOKEN_ACTIVE), "active");
    assert_string_equal(ct_http_token_state_name(CT_HTTP_TOKEN_EXPIRED), "expired");
    assert_string_equal(ct_http_token_state_name(CT_HTTP_TOKEN_REVOKED), "revoked");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),      cmocka_unit_test(test_perm_bits),  cmocka_unit_test(test_grant),
        cmocka_unit_test(test_roles),      cmocka_unit_test(test_token_text), cmocka_unit_test(test_token_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
