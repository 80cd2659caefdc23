/* policy room, loading: reads a policy file (docs/policy.md) into an
 * immutable ct_policy, and writes the policy in force back out as JSON.
 *
 * The one idea: a policy is built in layers, each checked on its own. The
 * default policy compiled into the binary sets every field of every rule; a
 * deployment file changes some of them; a patient's override changes some of
 * those. Every layer is strict: an unknown rule or field, a wrong type or a
 * value out of range refuses the whole file with the JSON path at fault
 * ("policy.json: rules.hr_high.threshold_bpm: expected a number between 20
 * and 300, got \"fast\""), because a misspelt field that is silently ignored
 * is a rule that silently does not apply. Duplicate keys are refused for the
 * same reason. After each layer the cross-field checks run again, so a
 * patient override cannot set a low-rate limit above the high-rate limit it
 * inherits.
 *
 * Cost: the file is parsed by jansson into a tree (a few times its size in
 * memory, bounded by CT_POLICY_MAX_BYTES); each patient keeps a full copy of
 * its merged rules (about 400 bytes), so a lookup is one binary search. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy_internal.h"

typedef struct ct_policy_patient {
    char id[CT_POLICY_PATIENT_ID_MAX];
    ct_policy_rules rules;                 /* merged */
    unsigned char set[CT_POLICY_N_FIELDS]; /* fields the override names */
} ct_policy_patient;

struct ct_policy {
    char name[CT_POLICY_NAME_MAX];
    ct_policy_rules base;
    size_t n_patients;
    ct_policy_patient *patients; /* sorted by id */
};

/* ---- messages ---------------------------------------------------------- */

/* Text from the file as it may appear in a message: at most 40 bytes,
 * control bytes shown as '?', so that a hostile file cannot forge log lines. */
typedef struct shown {
    char s[48];
} shown;

static shown show_text(const char *p, size_t n)
{
    shown out;
    size_t k = n > 40 ? 40 : n;
    for (size_t i = 0; i < k; i++) {
        unsigned char ch = (unsigned char)p[i];
        out.s[i] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (n > 40) {
        memcpy(out.s + k, "...", 3);
        k += 3;
    }
    out.s[k] = '\0';
    return out;
}

static shown show_str(const char *s)
{
    return show_text(s, strlen(s));
}

/* What a JSON value is, for "got ..." in messages. */
static shown show_value(const json_t *v)
{
    shown out;
    switch (json_typeof(v)) {
    case JSON_STRING: {
        shown t = show_text(json_string_value(v), json_string_length(v));
        snprintf(out.s, sizeof out.s, "\"%.44s\"", t.s);
        return out;
    }
    case JSON_INTEGER:
        snprintf(out.s, sizeof out.s, "%lld", (long long)json_integer_value(v));
        return out;
    case JSON_REAL:
        snprintf(out.s, sizeof out.s, "%g", json_real_value(v));
        return out;
    case JSON_TRUE:
        return show_str("true");
    case JSON_FALSE:
        return show_str("false");
    case JSON_NULL:
        return show_str("null");
    case JSON_OBJECT:
        return show_str("an object");
    case JSON_ARRAY:
        return show_str("an array");
    }
    return show_str("?");
}

typedef struct lctx {
    const char *name; /* file name for messages */
    ct_error *err;
} lctx;

static int failp(const lctx *c, int code, const char *path, const char *fmt, ...) CT_PRINTF(4, 5);
static int failp(const lctx *c, int code, const char *path, const char *fmt, ...)
{
    char msg[CT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (path && path[0])
        return ct_error_set(c->err, code, "%s: %s: %s", c->name, path, msg);
    return ct_error_set(c->err, code, "%s: %s", c->name, msg);
}

/* "a, b or c" from a list of names. */
static void join_names(char *buf, size_t size, const char *const *names, int n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && used < size; i++) {
        const char *sep = i == 0 ? "" : (i == n - 1 ? " or " : ", ");
        int w = snprintf(buf + used, size - used, "%s%s", sep, names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

/* ---- one layer of rules ---------------------------------------------------- */

static int find_rule(const char *key)
{
    for (int r = 0; r < CT_POLICY_N_RULES; r++)
        if (strcmp(ct_policy_schema[r].name, key) == 0)
            return r;
    return -1;
}

static int parse_priority(const char *s, ct_policy_priority *out)
{
    if (strcmp(s, "high") == 0)
        *out = CT_POLICY_HIGH;
    else if (strcmp(s, "medium") == 0)
        *out = CT_POLICY_MEDIUM;
    else if (strcmp(s, "low") == 0)
        *out = CT_POLICY_LOW;
    else
        return -1;
    return 0;
}

static int set_field(const lctx *c, const char *path, const ct_pfield *f, const json_t *v,
                     ct_policy_rules *rules)
{
    char *dst = (char *)rules + f->offset;
    switch (f->kind) {
    case CT_PF_BOOL:
        if (!json_is_boolean(v))
            return failp(c, CT_EFORMAT, path, "expected true or false, got %s", show_value(v).s);
        *(int *)(void *)dst = json_is_true(v);
        return 0;
    case CT_PF_PRIORITY: {
        ct_policy_priority p;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
            parse_priority(json_string_value(v), &p) != 0)
            return failp(c, CT_EFORMAT, path, "expected \"high\", \"medium\" or \"low\", got %s",
                         show_value(v).s);
        *(ct_policy_priority *)(void *)dst = p;
        return 0;
    }
    case CT_PF_NUMBER:
    case CT_PF_INT: {
        double x = json_is_number(v) ? json_number_value(v) : NAN;
        int is_int = json_is_integer(v) || (json_is_real(v) && x == floor(x));
        if (!(x >= f->min && x <= f->max) || (f->kind == CT_PF_INT && !is_int))
            return failp(c, CT_EFORMAT, path, "expected %s between %g and %g, got %s",
                         f->kind == CT_PF_INT ? "an integer" : "a number", f->min, f->max,
                         show_value(v).s);
        if (f->kind == CT_PF_INT)
            *(int *)(void *)dst = (int)x;
        else
            *(double *)(void *)dst = x;
        return 0;
    }
    }
    return failp(c, CT_EINVAL, path, "internal: unknown field kind");
}

/* Applies a "rules" object onto `rules`, marking the fields it names in `set`.
 * prefix is the path of the object ("rules", "patients.X.rules"). */
static int parse_rules(const lctx *c, const char *prefix, const json_t *obj, ct_policy_rules *rules,
                       unsigned char *set)
{
    char path[512];
    if (!json_is_object(obj))
        return failp(c, CT_EFORMAT, prefix, "expected an object of rules, got %s", show_value(obj).s);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        shown k = show_str(key);
        snprintf(path, sizeof path, "%s.%s", prefix, k.s);
        int r = find_rule(key);
        if (r < 0) {
            const char *names[CT_POLICY_N_RULES];
            char list[256];
            for (int i = 0; i < CT_POLICY_N_RULES; i++)
                names[i] = ct_policy_schema[i].name;
            join_names(list, sizeof list, names, CT_POLICY_N_RULES);
            return failp(c, CT_EFORMAT, path, "unknown rule (the rules are %s)", list);
        }
        if (!json_is_object(val))
            return failp(c, CT_EFORMAT, path, "expected an object of fields, got %s",
                         show_value(val).s);
        const ct_prule *rd = &ct_policy_schema[r];
        const char *fkey;
        json_t *fval;
        json_object_foreach(val, fkey, fval) {
            char fpath[600];
            shown fk = show_str(fkey);
            snprintf(fpath, sizeof fpath, "%s.%s", path, fk.s);
            int fi = -1;
            for (int i = 0; i < rd->n_fields; i++)
                if (strcmp(rd->fields[i].name, fkey) == 0)
                    fi = i;
            if (fi < 0) {
                const char *names[16];
                char list[320];
                for (int i = 0; i < rd->n_fields; i++)
                    names[i] = rd->fields[i].name;
                join_names(list, sizeof list, names, rd->n_fields);
                return failp(c, CT_EFORMAT, fpath, "unknown field (%s takes %s)", rd->name, list);
            }
            int rc = set_field(c, fpath, &rd->fields[fi], fval, rules);
            if (rc != 0)
                return rc;
            if (set)
                set[rd->first_field + fi] = 1;
        }
    }
    return 0;
}

static int check_layer(const lctx *c, const char *prefix, const ct_policy_rules *rules)
{
    char msg[400];
    if (ct_policy_check_consistency(rules, msg, sizeof msg))
        return failp(c, CT_EFORMAT, NULL, "%s.%s", prefix, msg);
    return 0;
}

/* ---- the document ------------------------------------------------------------ */

static int cmp_patient(const void *a, const void *b)
{
    return strcmp(((const ct_policy_patient *)a)->id, ((const ct_policy_patient *)b)->id);
}

static int valid_patient_id(const char *id, size_t len)
{
    if (len == 0 || len >= CT_POLICY_PATIENT_ID_MAX || strlen(id) != len)
        return 0;
    if (id[0] == ' ' || id[len - 1] == ' ')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)id[i];
        if (ch < 0x20 || ch == 0x7f)
            return 0;
    }
    return 1;
}

static int parse_patients(const lctx *c, const json_t *obj, ct_policy *p)
{
    if (!json_is_object(obj))
        return failp(c, CT_EFORMAT, "patients", "expected an object keyed by patient id, got %s",
                     show_value(obj).s);
    size_t n = json_object_size(obj);
    if (n > CT_POLICY_MAX_PATIENTS)
        return failp(c, CT_ELIMIT, "patients", "%zu overrides, the limit is %d", n,
                     CT_POLICY_MAX_PATIENTS);
    if (n == 0)
        return 0;
    p->patients = calloc(n, sizeof *p->patients);
    if (!p->patients)
        return failp(c, CT_ENOMEM, "patients", "out of memory for %zu overrides", n);
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val) {
        char path[300];
        shown k = show_str(key);
        snprintf(path, sizeof path, "patients.%s", k.s);
        if (!valid_patient_id(key, strlen(key)))
            return failp(c, CT_EFORMAT, path,
                         "a patient id is 1 to %d printable characters without spaces around",
                         CT_POLICY_PATIENT_ID_MAX - 1);
        if (!json_is_object(val))
            return failp(c, CT_EFORMAT, path, "expected an object {\"rules\": {...}}, got %s",
                         show_value(val).s);
        ct_policy_patient *pt = &p->patients[p->n_patients];
        memcpy(pt->id, key, strlen(key) + 1);
        pt->rules = p->base;
        const char *okey;
        json_t *oval;
        json_object_foreach(val, okey, oval) {
            char opath[400];
            shown ok = show_str(okey);
            snprintf(opath, sizeof opath, "%s.%s", path, ok.s);
            if (strcmp(okey, "rules") != 0)
                return failp(c, CT_EFORMAT, opath,
                             "unknown key (a patient override holds only \"rules\")");
            int rc = parse_rules(c, opath, oval, &pt->rules, pt->set);
            if (rc != 0)
                return rc;
        }
        char rpath[400];
        snprintf(rpath, sizeof rpath, "%s.rules", path);
        int rc = check_layer(c, rpath, &pt->rules);
        if (rc != 0)
            return rc;
        p->n_patients++;
    }
    qsort(p->patients, p->n_patients, sizeof *p->patients, cmp_patient);
    for (size_t i = 1; i < p->n_patients; i++)
        if (strcmp(p->patients[i - 1].id, p->patients[i].id) == 0)
            return failp(c, CT_EFORMAT, "patients", "patient \"%s\" appears twice",
                         show_str(p->patients[i].id).s);
    return 0;
}

static int parse_version(const lctx *c, const json_t *root)
{
    const json_t *v = json_object_get(root, "version");
    if (!v)
        return failp(c, CT_EFORMAT, "version", "missing (this cardiotwin reads version 1)");
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return failp(c, CT_EFORMAT, "version", "expected the integer 1, got %s", show_value(v).s);
    if (json_integer_value(v) > 1)
        return failp(c, CT_EVERSION, "version",
                     "%lld is newer than this cardiotwin, which reads version 1",
                     (long long)json_integer_value(v));
    return 0;
}

/* Builds p from one document. base: the rules underneath (NULL for the
 * embedded default, which must then set every field itself). */
static int parse_doc(const lctx *c, const char *text, size_t len, const ct_policy_rules *base,
                     ct_policy *p)
{
    if (len > CT_POLICY_MAX_BYTES)
        return failp(c, CT_ELIMIT, NULL, "%zu bytes, the limit for a policy is %d", len,
                     CT_POLICY_MAX_BYTES);
    json_error_t jerr;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        shown t = show_str(jerr.text);
        return failp(c, CT_EFORMAT, NULL, "line %d, column %d: malformed JSON: %s", jerr.line,
                     jerr.column, t.s);
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = failp(c, CT_EFORMAT, NULL, "expected a JSON object at the top, got %s",
                   show_value(root).s);
        goto done;
    }
    if ((rc = parse_version(c, root)) != 0)
        goto done;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "version") && strcmp(key, "name") && strcmp(key, "rules") &&
            strcmp(key, "patients")) {
            rc = failp(c, CT_EFORMAT, show_str(key).s,
                       "unknown key (a policy holds version, name, rules and patients)");
            goto done;
        }
    }
    const json_t *name = json_object_get(root, "name");
    if (name) {
        const char *s = json_is_string(name) ? json_string_value(name) : NULL;
        int bad = !s || json_string_length(name) >= CT_POLICY_NAME_MAX ||
                  strlen(s) != json_string_length(name);
        for (const char *q = s; !bad && *q; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                bad = 1;
        if (bad) {
            rc = failp(c, CT_EFORMAT, "name",
                       "expected a string of at most %d printable characters, got %s",
                       CT_POLICY_NAME_MAX - 1, show_value(name).s);
            goto done;
        }
        memcpy(p->name, s, json_string_length(name) + 1);
    }
    unsigned char set[CT_POLICY_N_FIELDS] = {0};
    if (base)
        p->base = *base;
    const json_t *rules = json_object_get(root, "rules");
    if (rules && (rc = parse_rules(c, "rules", rules, &p->base, set)) != 0)
        goto done;
    if (!base) {
        for (int r = 0; r < CT_POLICY_N_RULES; r++)
            for (int i = 0; i < ct_policy_schema[r].n_fields; i++)
                if (!set[ct_policy_schema[r].first_field + i]) {
                    char path[80];
                    snprintf(path, sizeof path, "rules.%s.%s", ct_policy_schema[r].name,
                             ct_policy_schema[r].fields[i].name);
                    rc = failp(c, CT_EFORMAT, path, "missing (the default policy sets every field)");
                    goto done;
                }
    }
    if ((rc = check_layer(c, "rules", &p->base)) != 0)
        goto done;
    const json_t *patients = json_object_get(root, "patients");
    if (patients)
        rc = parse_patients(c, patients, p);
done:
    json_decref(root);
    return rc;
}

static ct_policy *policy_alloc(void)
{
    return calloc(1, sizeof(ct_policy));
}

void ct_policy_free(ct_policy *p)
{
    if (!p)
        return;
    free(p->patients);
    free(p);
}

const char *ct_policy_default_json(size_t *len)
{
    if (len)
        *len = ct_policy_embedded[0].size;
    return (const char *)ct_policy_embedded[0].data;
}

int ct_policy_load_default(ct_policy **out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ct_policy_load_default: out is NULL");
    *out = NULL;
    ct_policy *p = policy_alloc();
    if (!p)
        return ct_error_set(err, CT_ENOMEM, "default policy: out of memory");
    lctx c = {"default policy", err};
    size_t len;
    const char *text = ct_policy_default_json(&len);
    int rc = parse_doc(&c, text, len, NULL, p);
    if (rc != 0) {
        ct_policy_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int ct_policy_parse(const char *json, size_t len, const char *name, ct_policy **out, ct_error *err)
{
    if (!out || (!json && len))
        return ct_error_set(err, CT_EINVAL, "ct_policy_parse: NULL argument");
    *out = NULL;
    ct_policy *def = NULL;
    int rc = ct_policy_load_default(&def, err);
    if (rc != 0)
        return rc;
    ct_policy *p = policy_alloc();
    if (!p) {
        ct_policy_free(def);
        return ct_error_set(err, CT_ENOMEM, "%s: out of memory", name ? name : "policy");
    }
    lctx c = {name ? name : "policy", err};
    rc = parse_doc(&c, json ? json : "", len, &def->base, p);
    ct_policy_free(def);
    if (rc != 0) {
        ct_policy_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int ct_policy_load_file(const char *path, ct_policy **out, ct_error *err)
{
    if (!path || !out)
        return ct_error_set(err, CT_EINVAL, "ct_policy_load_file: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ct_error_set(err, errno == ENOENT ? CT_ENOTFOUND : CT_EIO, "%s: cannot open: %s",
                            path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ct_error_set(err, CT_EIO, "%s: not a regular file", path);
    }
    if (st.st_size > CT_POLICY_MAX_BYTES) {
        fclose(f);
        return ct_error_set(err, CT_ELIMIT, "%s: %lld bytes, the limit for a policy is %d", path,
                            (long long)st.st_size, CT_POLICY_MAX_BYTES);
    }
    /* One byte more than allowed, so a file that grew since fstat is caught. */
    char *buf = malloc((size_t)CT_POLICY_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return ct_error_set(err, CT_ENOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, (size_t)CT_POLICY_MAX_BYTES + 1, f);
    int rd_err = ferror(f);
    fclose(f);
    int rc;
    if (rd_err)
        rc = ct_error_set(err, CT_EIO, "%s: read failed", path);
    else if (n > CT_POLICY_MAX_BYTES)
        rc = ct_error_set(err, CT_ELIMIT, "%s: more than %d bytes, the limit for a policy", path,
                          CT_POLICY_MAX_BYTES);
    else
        rc = ct_policy_parse(buf, n, path, out, err);
    free(buf);
    return rc;
}

/* ---- queries ------------------------------------------------------------------- */

static const ct_policy_patient *find_patient(const ct_policy *p, const char *id)
{
    if (!id || p->n_patients == 0)
        return NULL;
    ct_policy_patient key;
    size_t len = strlen(id);
    if (len >= sizeof key.id)
        return NULL;
    memcpy(key.id, id, len + 1);
    return bsearch(&key, p->patients, p->n_patients, sizeof *p->patients, cmp_patient);
}

int ct_policy_rules_for(const ct_policy *p, const char *patient_id, ct_policy_rules *out)
{
    if (!p || !out)
        return 0;
    const ct_policy_patient *pt = find_patient(p, patient_id);
    *out = pt ? pt->rules : p->base;
    return pt != NULL;
}

size_t ct_policy_patient_count(const ct_policy *p)
{
    return p ? p->n_patients : 0;
}

const char *ct_policy_name(const ct_policy *p)
{
    return p ? p->name : "";
}

/* ---- writing ------------------------------------------------------------------- */

static json_t *field_json(const ct_pfield *f, const ct_policy_rules *r)
{
    const char *src = (const char *)r + f->offset;
    switch (f->kind) {
    case CT_PF_BOOL:
        return json_boolean(*(const int *)(const void *)src);
    case CT_PF_PRIORITY:
        return json_string(ct_policy_priority_name(*(const ct_policy_priority *)(const void *)src));
    case CT_PF_INT:
        return json_integer(*(const int *)(const void *)src);
    case CT_PF_NUMBER: {
        double x = *(const double *)(const void *)src;
        /* Whole numbers are written as integers: "120", not "120.0". */
        if (x == floor(x) && fabs(x) < 1e15)
            return json_integer((json_int_t)x);
        return json_real(x);
    }
    }
    return NULL;
}

/* The rules as an object; with `set`, only the fields it marks. */
static json_t *rules_json(const ct_policy_rules *r, const unsigned char *set)
{
    json_t *obj = json_object();
    if (!obj)
        return NULL;
    for (int ri = 0; ri < CT_POLICY_N_RULES; ri++) {
        const ct_prule *rd = &ct_policy_schema[ri];
        json_t *robj = NULL;
        for (int i = 0; i < rd->n_fields; i++) {
            if (set && !set[rd->first_field + i])
                continue;
            if (!robj && (!(robj = json_object()) || json_object_set_new(obj, rd->name, robj))) {
                json_decref(obj);
                return NULL;
            }
            if (json_object_set_new(robj, rd->fields[i].name, field_json(&rd->fields[i], r))) {
                json_decref(obj);
                return NULL;
            }
        }
    }
    return obj;
}

int ct_policy_to_json(const ct_policy *p, const char *patient_id, char **out, ct_error *err)
{
    if (!p || !out)
        return ct_error_set(err, CT_EINVAL, "ct_policy_to_json: NULL argument");
    *out = NULL;
    json_t *root = json_object();
    int bad = !root || json_object_set_new(root, "version", json_integer(1));
    if (!bad && p->name[0])
        bad = json_object_set_new(root, "name", json_string(p->name));
    if (!bad && patient_id) {
        const ct_policy_patient *pt = find_patient(p, patient_id);
        json_t *id = json_string(patient_id);
        if (!id) {
            json_decref(root);
            return ct_error_set(err, CT_EINVAL, "policy: patient id is not UTF-8 text");
        }
        bad = json_object_set_new(root, "patient", id) ||
              json_object_set_new(root, "overridden", json_boolean(pt != NULL)) ||
              json_object_set_new(root, "rules", rules_json(pt ? &pt->rules : &p->base, NULL));
    } else if (!bad) {
        json_t *pats = json_object();
        bad = json_object_set_new(root, "rules", rules_json(&p->base, NULL)) ||
              json_object_set_new(root, "patients", pats);
        for (size_t i = 0; !bad && i < p->n_patients; i++) {
            json_t *o = json_object();
            bad = !o || json_object_set_new(pats, p->patients[i].id, o) ||
                  json_object_set_new(o, "rules", rules_json(&p->patients[i].rules, p->patients[i].set));
        }
    }
    char *s = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    json_decref(root);
    if (!s)
        return ct_error_set(err, CT_ENOMEM, "policy: out of memory writing JSON");
    *out = s;
    return 0;
}
