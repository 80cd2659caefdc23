/* http room, users: the people who log in to the dashboard, and their
 * passwords. `cardiotwin user ...` calls the functions below; sessions.c
 * checks a login against the same rows.
 *
 * The one idea: a password is stored only as the output of a slow,
 * memory-hard KDF, with the KDF's name, parameters and a 16-byte random
 * salt next to it, so that stealing the database gives an attacker one
 * expensive guess per KDF run per user and the cost can be raised user by
 * user (a login with old parameters re-hashes the password with the
 * current ones). The KDF is scrypt through OpenSSL with OWASP's first
 * recommendation (Password Storage Cheat Sheet): N = 2^17, r = 8, p = 1,
 * 128 MiB and about a quarter of a second per run on a current core
 * (docs/security.md has the figure measured on the build machine); the
 * server lets at most CT_HTTP_KDF_MAX_CONCURRENT run at once, so memory
 * stays bounded whatever arrives. PBKDF2-HMAC-SHA256 (OWASP: 600 000
 * iterations) is understood too, for rows written by a build configured
 * for FIPS, but never chosen. Hashes are compared with CRYPTO_memcmp.
 *
 * A user row and its audit entry are written in one transaction, like a
 * token's: there is no user, password change, lock release or disabling
 * that nobody is recorded to have made. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cardiotwin/fhir.h"
#include "http_internal.h"

#define SALT_BYTES 16
/* What a stored row may ask of this build: one hash must not take the
 * server's memory or a minute of CPU, whatever the file says. */
#define SCRYPT_MAX_MEM_BYTES (1024LL * 1024 * 1024)
#define PBKDF2_MAX_ITERATIONS 10000000LL

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ct_http_kdf_default(ct_http_kdf_params *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->kdf, sizeof p->kdf, "scrypt");
    p->cost = 1 << 17;
    p->block = 8;
    p->parallel = 1;
}

int ct_http_kdf_check(const ct_http_kdf_params *p, ct_error *err)
{
    if (!p)
        return ct_error_set(err, CT_EINVAL, "no KDF parameters");
    if (strcmp(p->kdf, "scrypt") == 0) {
        int pow2 = p->cost >= 2 && (p->cost & (p->cost - 1)) == 0;
        if (!pow2 || p->cost > (1 << 24))
            return ct_error_set(err, CT_EFORMAT, "scrypt N=%lld is not a power of two in 2..2^24", (long long)p->cost);
        if (p->block < 1 || p->block > 64 || p->parallel < 1 || p->parallel > 64)
            return ct_error_set(err, CT_EFORMAT, "scrypt r=%lld p=%lld: each must lie in 1..64", (long long)p->block,
                                (long long)p->parallel);
        /* scrypt's working memory: 128 r N bytes for V, 128 r p for B. */
        int64_t mem = 128 * p->block * (p->cost + p->parallel);
        if (mem > SCRYPT_MAX_MEM_BYTES)
            return ct_error_set(err, CT_EFORMAT, "scrypt N=%lld r=%lld p=%lld needs %lld MiB, over the %lld MiB allowed",
                                (long long)p->cost, (long long)p->block, (long long)p->parallel,
                                (long long)(mem >> 20), (long long)(SCRYPT_MAX_MEM_BYTES >> 20));
        return CT_OK;
    }
    if (strcmp(p->kdf, "pbkdf2-sha256") == 0) {
        if (p->cost < 1 || p->cost > PBKDF2_MAX_ITERATIONS || p->block != 1 || p->parallel != 1)
            return ct_error_set(err, CT_EFORMAT, "pbkdf2-sha256 with %lld iterations: allowed are 1..%lld (block and "
                                "parallel 1)", (long long)p->cost, PBKDF2_MAX_ITERATIONS);
        return CT_OK;
    }
    return ct_error_set(err, CT_EFORMAT, "KDF '%.15s' is not scrypt or pbkdf2-sha256", p->kdf);
}

int ct_http_password_hash(const ct_http_kdf_params *p, const char *password, size_t n, const unsigned char *salt,
                          size_t salt_len, unsigned char out[32], ct_error *err)
{
    int rc = ct_http_kdf_check(p, err);
    if (rc != CT_OK)
        return rc;
    if (!password || !salt || salt_len == 0 || n > CT_HTTP_PASSWORD_MAX)
        return ct_error_set(err, CT_EINVAL, "ct_http_password_hash: bad argument");
    int ok;
    if (strcmp(p->kdf, "scrypt") == 0) {
        uint64_t maxmem = (uint64_t)(128 * p->block * (p->cost + p->parallel)) + (1u << 20);
        ok = EVP_PBE_scrypt(password, n, salt, salt_len, (uint64_t)p->cost, (uint64_t)p->block,
                            (uint64_t)p->parallel, maxmem, out, 32) == 1;
    } else {
        ok = PKCS5_PBKDF2_HMAC(password, (int)n, salt, (int)salt_len, (int)p->cost, EVP_sha256(), 32, out) == 1;
    }
    if (!ok) {
        OPENSSL_cleanse(out, 32);
        return ct_error_set(err, CT_ENOMEM, "OpenSSL could not run %s (out of memory?)", p->kdf);
    }
    return CT_OK;
}

static void params_of(const ct_store_user *u, ct_http_kdf_params *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->kdf, sizeof p->kdf, "%s", u->kdf);
    p->cost = u->kdf_cost;
    p->block = u->kdf_block;
    p->parallel = u->kdf_parallel;
}

int ct_http_password_check(const ct_store_user *u, const char *password, size_t n, int *match, ct_error *err)
{
    *match = 0;
    ct_http_kdf_params p;
    params_of(u, &p);
    unsigned char h[32];
    int rc = ct_http_password_hash(&p, password, n, u->salt, u->salt_len, h, err);
    if (rc != CT_OK) {
        ct_error_prefix(err, "user %s", u->name);
        return rc;
    }
    *match = CRYPTO_memcmp(h, u->hash, sizeof h) == 0;
    OPENSSL_cleanse(h, sizeof h);
    return CT_OK;
}

/* ---- checks ---------------------------------------------------------------------------- */

static int name_ok(const char *s)
{
    size_t n = s ? strnlen(s, CT_STORE_USER_NAME_MAX + 1) : 0;
    if (n == 0 || n > CT_STORE_USER_NAME_MAX || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* Length in characters (UTF-8 code points), or -1 for a control
 * character: a password typed by a person holds none, and a newline in one
 * is almost always a file read whole by mistake. */
static long password_chars(const char *pw, size_t n)
{
    long chars = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pw[i];
        if (c < 0x20 || c == 0x7f)
            return -1;
        if ((c & 0xc0) != 0x80)
            chars++;
    }
    return chars;
}

static int check_password(const char *pw, size_t n, ct_error *err)
{
    if (!pw)
        return ct_error_set(err, CT_EINVAL, "no password given");
    if (n > CT_HTTP_PASSWORD_MAX)
        return ct_error_set(err, CT_EINVAL, "the password is %zu bytes, more than the %d allowed", n,
                            CT_HTTP_PASSWORD_MAX);
    long chars = password_chars(pw, n);
    if (chars < 0)
        return ct_error_set(err, CT_EINVAL, "the password holds a control character (a newline read with it?)");
    if (chars < CT_HTTP_PASSWORD_MIN)
        return ct_error_set(err, CT_EINVAL, "the password has %ld characters; at least %d are needed", chars,
                            CT_HTTP_PASSWORD_MIN);
    return CT_OK;
}

static int check_actor(const ct_audit_actor *by, ct_error *err)
{
    if (!by || !by->name || !by->name[0] || !by->role || !by->role[0])
        return ct_error_set(err, CT_EINVAL, "a user change needs the operator who makes it");
    if (strlen(by->name) >= sizeof ((ct_store_user *)0)->created_by)
        return ct_error_set(err, CT_EINVAL, "operator name is longer than %zu bytes",
                            sizeof ((ct_store_user *)0)->created_by - 1);
    return CT_OK;
}

/* New salt and hash into u, with parameters p (NULL: the default). */
static int set_hash(ct_store_user *u, const ct_http_kdf_params *p, const char *pw, size_t n, ct_error *err)
{
    ct_http_kdf_params def;
    if (!p) {
        ct_http_kdf_default(&def);
        p = &def;
    }
    snprintf(u->kdf, sizeof u->kdf, "%s", p->kdf);
    u->kdf_cost = p->cost;
    u->kdf_block = p->block;
    u->kdf_parallel = p->parallel;
    u->salt_len = SALT_BYTES;
    if (RAND_bytes(u->salt, SALT_BYTES) != 1)
        return ct_error_set(err, CT_EIO, "OpenSSL's random generator gave no bytes for a salt");
    return ct_http_password_hash(p, pw, n, u->salt, u->salt_len, u->hash, err);
}

static int audit_user(ct_store *st, const char *action, const ct_audit_actor *by, const ct_store_user *u,
                      const char *what, ct_error *err)
{
    ct_audit_detail d;
    ct_audit_detail_init(&d);
    ct_audit_detail_int(&d, "user_id", u->id);
    ct_audit_detail_str(&d, "name", u->name);
    ct_audit_detail_str(&d, "role", u->role);
    ct_audit_detail_str(&d, "change", what);
    if (strcmp(what, "create") == 0 || strcmp(what, "password") == 0) {
        char kdf[96];
        snprintf(kdf, sizeof kdf, "%s N=%lld r=%lld p=%lld", u->kdf, (long long)u->kdf_cost, (long long)u->kdf_block,
                 (long long)u->kdf_parallel);
        ct_audit_detail_str(&d, "kdf", kdf);
    }
    const char *detail = ct_audit_detail_json(&d);
    if (!detail)
        return ct_error_set(err, CT_ELIMIT, "user %s: the audit detail does not fit", u->name);
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor = *by;
    e.action = action;
    e.resource_type = "";
    e.resource_id = "";
    e.patient = u->patient;
    e.outcome = CT_AUDIT_OUTCOME_SUCCESS;
    e.outcome_desc = "";
    e.request_id = "";
    e.detail = detail;
    int rc = ct_audit_append(st, &e, NULL, err);
    if (rc != CT_OK)
        ct_error_prefix(err, "user %s: audit log", u->name);
    return rc;
}

/* ---- changes ------------------------------------------------------------------------------- */

int ct_http_user_create(ct_store *st, const ct_http_user_spec *spec, const ct_audit_actor *by, ct_store_user *row,
                        ct_error *err)
{
    if (!st || !spec)
        return ct_error_set(err, CT_EINVAL, "ct_http_user_create: missing argument");
    if (!name_ok(spec->name))
        return ct_error_set(err, CT_EINVAL,
                            "user name '%.80s' must be 1 to %d of A-Z a-z 0-9 . _ - and start with a letter",
                            spec->name ? spec->name : "", CT_STORE_USER_NAME_MAX);
    const ct_http_role_info *role = ct_http_role_lookup(spec->role);
    if (!role || strcmp(role->name, "device") == 0)
        return ct_error_set(err, CT_EINVAL,
                            "role '%.32s' is not one a person logs in with: clinician, auditor or admin (a device "
                            "gets a token)",
                            spec->role ? spec->role : "");
    int bound = spec->patient && spec->patient[0];
    if (bound && !role->patient_scopes)
        return ct_error_set(err, CT_EINVAL, "a %s cannot be bound to a patient: only a clinician can", role->name);
    if (bound && !ct_fhir_id_valid(spec->patient, strlen(spec->patient)))
        return ct_error_set(err, CT_EINVAL, "patient '%.80s' is not a FHIR id (1 to 64 of A-Z a-z 0-9 - .)",
                            spec->patient);
    int rc;
    if ((rc = check_password(spec->password, spec->password_len, err)) != CT_OK ||
        (rc = check_actor(by, err)) != CT_OK)
        return rc;
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "ct_http_user_create runs its own transaction, not inside one");

    ct_store_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "%s", spec->name);
    snprintf(u.role, sizeof u.role, "%s", role->name);
    if (bound)
        snprintf(u.patient, sizeof u.patient, "%s", spec->patient);
    snprintf(u.created_by, sizeof u.created_by, "%s", by->name);
    u.created_ms = spec->now_ms > 0 ? spec->now_ms : now_ms();
    u.password_ms = u.created_ms;
    /* The KDF runs before the write lock is taken: a quarter of a second
     * inside BEGIN IMMEDIATE would stall every other writer. */
    if ((rc = set_hash(&u, spec->kdf, spec->password, spec->password_len, err)) != CT_OK)
        return rc;
    if ((rc = ct_store_begin(st, err)) != CT_OK)
        return rc;
    if (bound) {
        int deleted = 0;
        ct_error gerr = {0};
        int g = ct_store_resource_get(st, "Patient", u.patient, 0, NULL, NULL, NULL, &deleted, &gerr);
        if (g == CT_ENOTFOUND || (g == CT_OK && deleted))
            rc = ct_error_set(err, CT_ENOTFOUND,
                              "there is no Patient/%s in the database%s: a user bound to it would see nothing; "
                              "create the Patient first",
                              u.patient, deleted ? " (it was deleted)" : "");
        else if (g != CT_OK)
            rc = ct_error_set(err, g, "%s", gerr.msg);
    }
    if (rc == CT_OK)
        rc = ct_store_user_insert(st, &u, err);
    if (rc == CT_OK)
        rc = audit_user(st, "user-create", by, &u, "create", err);
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK) {
        ct_store_rollback(st);
        OPENSSL_cleanse(&u, sizeof u);
        return rc;
    }
    if (row)
        *row = u;
    OPENSSL_cleanse(u.hash, sizeof u.hash);
    return CT_OK;
}

/* Begins a transaction and reads user `name` inside it. */
static int begin_with_user(ct_store *st, const char *name, const ct_audit_actor *by, ct_store_user *u, ct_error *err)
{
    if (!st || !name || !*name)
        return ct_error_set(err, CT_EINVAL, "missing user name");
    int rc = check_actor(by, err);
    if (rc != CT_OK)
        return rc;
    if (ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "user changes run their own transaction, not inside one");
    if ((rc = ct_store_begin(st, err)) != CT_OK)
        return rc;
    rc = ct_store_user_get_by_name(st, name, u, err);
    if (rc != CT_OK)
        ct_store_rollback(st);
    return rc;
}

static int finish(ct_store *st, int rc, ct_error *err)
{
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK)
        ct_store_rollback(st);
    return rc;
}

int ct_http_user_set_password(ct_store *st, const char *name, const char *password, size_t n,
                              const ct_http_kdf_params *kdf, const ct_audit_actor *by, ct_error *err)
{
    int rc = check_password(password, n, err);
    if (rc != CT_OK)
        return rc;
    ct_store_user u;
    memset(&u, 0, sizeof u);
    if ((rc = set_hash(&u, kdf, password, n, err)) != CT_OK)
        return rc;
    ct_store_user cur;
    if ((rc = begin_with_user(st, name, by, &cur, err)) != CT_OK)
        return rc;
    if (cur.disabled_ms > 0) {
        ct_store_rollback(st);
        return ct_error_set(err, CT_EINVAL, "user %s is disabled: a new password would not let them in", cur.name);
    }
    u.id = cur.id;
    snprintf(u.name, sizeof u.name, "%s", cur.name);
    int64_t at = now_ms();
    rc = ct_store_user_set_password(st, &u, at, err);
    /* A new password is usually a response to a leaked one: whoever opened
     * a session with the old one is shown the door too. */
    if (rc == CT_OK)
        rc = ct_store_session_end_user(st, cur.id, at, "password", NULL, err);
    if (rc == CT_OK) {
        snprintf(cur.kdf, sizeof cur.kdf, "%s", u.kdf);
        cur.kdf_cost = u.kdf_cost;
        cur.kdf_block = u.kdf_block;
        cur.kdf_parallel = u.kdf_parallel;
        rc = audit_user(st, "user-update", by, &cur, "password", err);
    }
    OPENSSL_cleanse(&u, sizeof u);
    return finish(st, rc, err);
}

int ct_http_user_disable(ct_store *st, const char *name, const ct_audit_actor *by, int *already, ct_error *err)
{
    if (already)
        *already = 0;
    ct_store_user u;
    int rc = begin_with_user(st, name, by, &u, err);
    if (rc != CT_OK)
        return rc;
    if (u.disabled_ms > 0) {
        ct_store_rollback(st);
        if (already)
            *already = 1;
        return CT_OK;
    }
    int64_t at = now_ms();
    rc = ct_store_user_disable(st, u.id, at, by->name, err);
    if (rc == CT_OK)
        rc = ct_store_session_end_user(st, u.id, at, "disabled", NULL, err);
    if (rc == CT_OK)
        rc = audit_user(st, "user-delete", by, &u, "disable", err);
    return finish(st, rc, err);
}

int ct_http_user_unlock(ct_store *st, const char *name, const ct_audit_actor *by, int *was_locked, ct_error *err)
{
    ct_store_user u;
    int rc = begin_with_user(st, name, by, &u, err);
    if (rc != CT_OK)
        return rc;
    if (was_locked)
        *was_locked = u.locked_until_ms > now_ms();
    rc = ct_store_user_set_login_state(st, u.id, 0, 0, 0, err);
    if (rc == CT_OK)
        rc = audit_user(st, "user-update", by, &u, "unlock", err);
    return finish(st, rc, err);
}

const char *ct_http_user_state(const ct_store_user *u, int64_t t_ms)
{
    if (u->disabled_ms > 0)
        return "disabled";
    if (u->locked_until_ms > t_ms)
        return "locked";
    return "active";
}
