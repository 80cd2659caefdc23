/* http room, scopes: what a SMART App Launch v2 scope string grants, and
 * which scopes each role holds. Pure functions of their arguments (no
 * server, no store), so that every rule below is tested on its own
 * (tests/http/test_scopes.c).
 *
 * The one idea: a resource scope is context/type.permissions, e.g.
 * "user/Observation.rs". The context says whose data: "patient/" only the
 * compartment of the patient the token is bound to, "user/" whatever the
 * user may see, "system/" a backend service acting for itself. This server
 * has no finer per-user access rules, so "user/" and "system/" grant the
 * same (everything of that type); "patient/" grants the same interactions
 * limited to one patient's compartment, which the FHIR handlers enforce
 * (compartment.c). The type is a resource type or "*". The permissions are
 * a subset of c r u d s (create, read, update, delete, search) written in
 * that order, each at most once; SMART v1's "read", "write" and "*" are
 * read as rs, cud and cruds. A v2 scope may add "?param=value" to grant
 * only matching resources: this server cannot enforce such a filter, so
 * that scope grants nothing rather than more than it says. Anything that is
 * not a resource scope (openid, launch/patient, garbage) grants nothing.
 *
 * A request asks for one type and one or more permissions; the answer is
 * the widest grant that covers all of them (ct_http_scopes_grant): every
 * permission must be covered, by one scope or by several. */
#include <stdio.h>
#include <string.h>

#include "http_internal.h"

/* ---- roles ------------------------------------------------------------------------------ */

static const ct_http_role_info roles[] = {
    {"device", "system/Observation.c system/Device.r", "patient/Observation.c patient/Device.r",
     "a device gateway: posts ECG Observations and reads its Device"},
    {"clinician", "user/*.rs", "patient/*.rs", "reads and searches every resource, writes nothing"},
    {"auditor", "system/AuditEvent.rs", NULL, "reads and searches the audit log"},
    {"admin", "system/*.cruds", NULL, "every interaction on every resource"},
};
#define N_ROLES (sizeof roles / sizeof roles[0])

const ct_http_role_info *ct_http_role_lookup(const char *name)
{
    for (size_t i = 0; name && i < N_ROLES; i++)
        if (strcmp(roles[i].name, name) == 0)
            return &roles[i];
    return NULL;
}

const ct_http_role_info *ct_http_role_at(size_t i)
{
    return i < N_ROLES ? &roles[i] : NULL;
}

/* ---- one scope ---------------------------------------------------------------------------- */

unsigned ct_http_perm_bit(char letter)
{
    static const char order[] = "cruds";
    const char *p = letter ? strchr(order, letter) : NULL;
    return p ? 1u << (p - order) : 0;
}

static unsigned perm_bits(const char *p, size_t n)
{
    if (n == 4 && memcmp(p, "read", 4) == 0)
        return CT_HTTP_PERM_R | CT_HTTP_PERM_S;
    if (n == 5 && memcmp(p, "write", 5) == 0)
        return CT_HTTP_PERM_C | CT_HTTP_PERM_U | CT_HTTP_PERM_D;
    if (n == 1 && p[0] == '*')
        return CT_HTTP_PERM_ALL;
    static const char order[] = "cruds";
    unsigned bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        while (k < 5 && order[k] != p[i])
            k++;
        if (k == 5)
            return 0; /* unknown letter, repeated, or out of order */
        bits |= 1u << k;
        k++;
    }
    return bits;
}

static int type_ok(const char *t, size_t n)
{
    if (n == 1 && t[0] == '*')
        return 1;
    if (n == 0 || n > CT_FHIR_TYPE_MAX || t[0] < 'A' || t[0] > 'Z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((t[i] >= 'A' && t[i] <= 'Z') || (t[i] >= 'a' && t[i] <= 'z')))
            return 0;
    return 1;
}

int ct_http_scope_parse(const char *s, size_t n, ct_http_scope *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return -1;
    const char *slash = memchr(s, '/', n);
    if (!slash)
        return -1;
    size_t cl = (size_t)(slash - s);
    if (cl == 7 && memcmp(s, "patient", 7) == 0)
        out->ctx = CT_HTTP_CTX_PATIENT;
    else if (cl == 4 && memcmp(s, "user", 4) == 0)
        out->ctx = CT_HTTP_CTX_USER;
    else if (cl == 6 && memcmp(s, "system", 6) == 0)
        out->ctx = CT_HTTP_CTX_SYSTEM;
    else
        return -1;
    const char *end = s + n;
    const char *q = memchr(slash, '?', (size_t)(end - slash));
    const char *body_end = q ? q : end;
    /* The last dot: a type never holds one, "*.read" has one. */
    const char *dot = NULL;
    for (const char *p = slash + 1; p < body_end; p++)
        if (*p == '.')
            dot = p;
    if (!dot)
        return -1;
    size_t tl = (size_t)(dot - slash - 1);
    if (!type_ok(slash + 1, tl))
        return -1;
    memcpy(out->type, slash + 1, tl);
    out->type[tl] = '\0';
    out->perms = perm_bits(dot + 1, (size_t)(body_end - dot - 1));
    if (!out->perms)
        return -1;
    out->has_query = q != NULL;
    return 0;
}

/* ---- a set of scopes ---------------------------------------------------------------------- */

/* The audit log is not patient data that a wildcard hands out: a
 * clinician's user/ wildcard reads every resource, not who read them. Only
 * a scope naming AuditEvent, or the system/ wildcard (the admin's), reaches it, and
 * never a patient/ one: the log is about everyone. */
static int audit_withheld(const ct_http_scope *sc, const char *type)
{
    if (strcmp(type, "AuditEvent") != 0)
        return 0;
    if (sc->ctx == CT_HTTP_CTX_PATIENT)
        return 1;
    return strcmp(sc->type, "*") == 0 && sc->ctx != CT_HTTP_CTX_SYSTEM;
}

ct_http_grant ct_http_scopes_grant(const char *granted, const char *type, unsigned perms)
{
    if (!granted || !type || !*type || !perms || (perms & ~CT_HTTP_PERM_ALL))
        return CT_HTTP_GRANT_NONE;
    /* For each permission the widest grant of any scope; the answer is the
     * narrowest of those, so every permission asked for is covered. */
    ct_http_grant best[5] = {CT_HTTP_GRANT_NONE, CT_HTTP_GRANT_NONE, CT_HTTP_GRANT_NONE, CT_HTTP_GRANT_NONE,
                             CT_HTTP_GRANT_NONE};
    for (const char *p = granted; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        ct_http_scope sc;
        if (n && ct_http_scope_parse(p, n, &sc) == 0 && !sc.has_query &&
            (strcmp(sc.type, "*") == 0 || strcmp(sc.type, type) == 0) && !audit_withheld(&sc, type)) {
            ct_http_grant g = sc.ctx == CT_HTTP_CTX_PATIENT ? CT_HTTP_GRANT_PATIENT : CT_HTTP_GRANT_ALL;
            for (int b = 0; b < 5; b++)
                if ((sc.perms & (1u << b)) && g > best[b])
                    best[b] = g;
        }
        p += n;
    }
    ct_http_grant out = CT_HTTP_GRANT_ALL;
    for (int b = 0; b < 5; b++)
        if ((perms & (1u << b)) && best[b] < out)
            out = best[b];
    return out;
}

int ct_http_scope_grants(const char *granted, const char *required)
{
    ct_http_scope need;
    if (!required || ct_http_scope_parse(required, strlen(required), &need) != 0 || need.has_query ||
        need.ctx == CT_HTTP_CTX_PATIENT || strcmp(need.type, "*") == 0)
        return 0;
    return ct_http_scopes_grant(granted, need.type, need.perms) == CT_HTTP_GRANT_ALL;
}

int ct_http_role_scopes(const char *role, int patient_bound, char *buf, size_t cap)
{
    const ct_http_role_info *r = ct_http_role_lookup(role);
    const char *s = !r ? NULL : patient_bound ? r->patient_scopes : r->scopes;
    if (!s || !buf || cap == 0)
        return -1;
    int w = snprintf(buf, cap, "%s", s);
    return w < 0 || (size_t)w >= cap ? -1 : 0;
}

void ct_http_scope_describe(const char *type, unsigned perm, char *buf, size_t cap)
{
    static const char order[] = "cruds";
    char letters[6];
    size_t n = 0;
    for (int b = 0; b < 5; b++)
        if (perm & (1u << b))
            letters[n++] = order[b];
    letters[n] = '\0';
    snprintf(buf, cap, "user/%s.%s or system/%s.%s (or patient/%s.%s for the patient a token is bound to)", type,
             letters, type, letters, type, letters);
}
