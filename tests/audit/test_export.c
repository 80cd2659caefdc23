/* Tests of the exports and of their offline verification: NDJSON and FHIR
 * round trips (whole and filtered), the BALP content of an AuditEvent, and
 * each kind of tampering with an export (a changed field, a removed,
 * duplicated or moved line, a cut file, an edited readable FHIR field, a
 * subtree hash slipped into a whole export), plus files that are not
 * exports at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "../../src/audit/audit_impl.h"
#include "audit_test_util.h"

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("'%s' does not contain '%s'", hay, needle);
}

static char *export_text(fixture *f, ct_audit_format fmt, const char *patient, int64_t since, size_t *len,
                         ct_audit_export_result *res)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *out = open_memstream(&buf, &n);
    assert_non_null(out);
    ct_audit_export_options opt;
    memset(&opt, 0, sizeof opt);
    opt.format = fmt;
    opt.patient = patient;
    opt.has_since = since > 0;
    opt.since_ms = since;
    ct_error err;
    if (ct_audit_export(f->st, &opt, out, res, &err) != CT_OK)
        fail_msg("export: %s", err.msg);
    fclose(out);
    *len = n;
    return buf;
}

static ct_audit_key *make_log(fixture *f)
{
    ct_audit_key *k = NULL;
    ct_error err;
    assert_int_equal(ct_audit_key_open_dir(f->dir, 1, &k, NULL, &err), CT_OK);
    append_many(f->st, 1, 20);
    ct_audit_checkpoint_info cp;
    assert_int_equal(ct_audit_checkpoint(f->st, k, &cp, NULL, &err), CT_OK);
    append_many(f->st, 21, 37);
    assert_int_equal(ct_audit_checkpoint(f->st, k, &cp, NULL, &err), CT_OK);
    append_many(f->st, 38, 40);
    return k;
}

static int verify_text(const char *text, size_t len, const ct_audit_key *k, ct_audit_report *rep, ct_error *err)
{
    ct_error_clear(err);
    return ct_audit_verify_buffer(text, len, "x.ndjson", k, rep, err);
}

static void expect_fail(const char *text, const ct_audit_key *k, int code, int64_t bad_seq, const char *want)
{
    ct_audit_report rep;
    ct_error err;
    int rc = verify_text(text, strlen(text), k, &rep, &err);
    if (rc != code)
        fail_msg("verify returned %d (%s), expected %d with '%s'", rc, err.msg, code, want);
    assert_false(rep.ok);
    assert_contains(err.msg, want);
    assert_string_equal(rep.problem, err.msg);
    if (bad_seq >= 0)
        assert_int_equal(rep.bad_seq, bad_seq);
}

/* Line n (1-based) of text, as a new string; NULL when there is none. */
static char *line_of(const char *text, int n)
{
    const char *p = text;
    for (int i = 1; i < n && p; i++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p || !*p)
        return NULL;
    const char *e = strchr(p, '\n');
    return strndup(p, e ? (size_t)(e - p) : strlen(p));
}

/* The text with line n replaced by repl (NULL: removed). */
static char *replace_line(const char *text, int n, const char *repl)
{
    size_t cap = strlen(text) + (repl ? strlen(repl) : 0) + 2;
    char *out = malloc(cap), *o = out;
    const char *p = text;
    for (int i = 1; *p; i++) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p + 1) : strlen(p);
        if (i == n) {
            if (repl)
                o += sprintf(o, "%s\n", repl);
        } else {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = '\0';
    return out;
}

/* The line that holds entry seq. */
static int line_of_entry(const char *text, int64_t seq)
{
    char needle[64];
    snprintf(needle, sizeof needle, "{\"type\":\"entry\",\"seq\":%lld,", (long long)seq);
    for (int i = 1;; i++) {
        char *l = line_of(text, i);
        if (!l)
            return -1;
        int hit = strncmp(l, needle, strlen(needle)) == 0;
        free(l);
        if (hit)
            return i;
    }
}

static void test_ndjson_round_trip(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = make_log(f);
    size_t len;
    ct_audit_export_result res;
    char *text = export_text(f, CT_AUDIT_FORMAT_NDJSON, NULL, 0, &len, &res);
    assert_int_equal(res.log_size, 40);
    assert_int_equal(res.entries, 40);
    assert_int_equal(res.nodes, 0);
    assert_int_equal(res.checkpoints, 2);
    /* header + 40 entries + 2 checkpoints + end */
    int lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    assert_int_equal(lines, 44);
    char *first = line_of(text, 1);
    assert_contains(first, "{\"type\":\"header\",\"format\":\"cardiotwin-audit-export\",\"version\":1,\"log_size\":40,");
    assert_contains(first, "\"filter\":null}");
    free(first);
    /* The checkpoint of 20 entries comes right after entry 20. */
    char *cp = line_of(text, 1 + 20 + 1);
    assert_contains(cp, "{\"type\":\"checkpoint\",\"checkpoint\":1,\"size\":20,");
    free(cp);
    char *e4 = line_of(text, line_of_entry(text, 4));
    assert_contains(e4, "\"time\":\"2024-05-01T12:00:04.000Z\",\"actor\":\"bob\",\"role\":\"clinician\"");
    assert_contains(e4, "\"detail\":\"{\\\"note\\\":\\\"x\\\"}\"");
    free(e4);

    ct_audit_report rep;
    ct_error err;
    assert_int_equal(verify_text(text, len, k, &rep, &err), CT_OK);
    assert_true(rep.ok);
    assert_int_equal(rep.log_size, 40);
    assert_int_equal(rep.entries_checked, 40);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(rep.signed_size, 37);
    assert_false(rep.filtered);
    /* Without the key, the checkpoints cannot be trusted. */
    assert_int_equal(verify_text(text, len, NULL, &rep, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "checkpoint 1: no public key");
    free(text);
    ct_audit_key_free(k);
}

static void test_ndjson_tampering(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = make_log(f);
    size_t len;
    ct_audit_export_result res;
    char *text = export_text(f, CT_AUDIT_FORMAT_NDJSON, NULL, 0, &len, &res);
    int l7 = line_of_entry(text, 7);

    /* A changed field. */
    char *line = line_of(text, l7);
    char *p = strstr(line, "\"patient\":\"mitdb-100\"");
    assert_non_null(p);
    p[strlen("\"patient\":\"mitdb-10")] = '9';
    char *t = replace_line(text, l7, line);
    expect_fail(t, k, CT_ECHECKSUM, 7, "x.ndjson line 8: entry 7: hash mismatch");
    free(t);
    free(line);
    /* The readable time disagreeing with time_ms. */
    line = line_of(text, l7);
    p = strstr(line, "12:00:07.000Z");
    assert_non_null(p);
    p[7] = '8';
    t = replace_line(text, l7, line);
    expect_fail(t, k, CT_ECHECKSUM, 7, "entry 7: its time text does not match its time_ms");
    free(t);
    free(line);
    /* A removed line. */
    t = replace_line(text, l7, NULL);
    expect_fail(t, k, CT_ECHECKSUM, 7, "entry 7 missing (the chain jumps from entry 6 to 8)");
    free(t);
    /* A duplicated line. */
    line = line_of(text, l7);
    char *dup = malloc(2 * strlen(line) + 2);
    sprintf(dup, "%s\n%s", line, line);
    t = replace_line(text, l7, dup);
    expect_fail(t, k, CT_ECHECKSUM, 7, "entry 7 appears again after entry 7");
    free(t);
    free(dup);
    free(line);
    /* Two lines swapped. */
    char *a = line_of(text, l7), *b = line_of(text, l7 + 1);
    char *t1 = replace_line(text, l7, b);
    t = replace_line(t1, l7 + 1, a);
    expect_fail(t, k, CT_ECHECKSUM, 7, "entry 7 missing (the chain jumps from entry 6 to 8)");
    free(t);
    free(t1);
    free(a);
    free(b);
    /* Cut after entry 30: no end line. */
    int l30 = line_of_entry(text, 30);
    char *cut = strdup(text);
    char *q = cut;
    for (int i = 0; i < l30; i++)
        q = strchr(q, '\n') + 1;
    *q = '\0';
    expect_fail(cut, k, CT_ECHECKSUM, 31, "x.ndjson ends without its end item after entry 30 (cut short?)");
    free(cut);
    /* A checkpoint removed (the last one: the end line's count shows it). */
    int lcp2 = line_of_entry(text, 37) + 1;
    char *cpline = line_of(text, lcp2);
    assert_contains(cpline, "\"checkpoint\":2");
    t = replace_line(text, lcp2, NULL);
    expect_fail(t, k, CT_ECHECKSUM, -1, "the end line counts 40 entries, 0 nodes and 2 checkpoints");
    free(t);
    /* A checkpoint moved after a later entry. */
    t1 = replace_line(text, lcp2, NULL);
    t = replace_line(t1, lcp2, NULL);
    char *e38 = line_of(text, lcp2 + 1);
    char *both = malloc(strlen(e38) + strlen(cpline) + 2);
    sprintf(both, "%s\n%s", e38, cpline);
    free(t);
    t = replace_line(t1, lcp2, both);
    expect_fail(t, k, CT_ECHECKSUM, -1, "checkpoint 2 signed 37 entries but comes after entry 38");
    free(t);
    free(t1);
    free(both);
    free(e38);
    /* A forged checkpoint signature. */
    p = strstr(cpline, "\"signature\":\"");
    p += strlen("\"signature\":\"");
    *p = *p == '0' ? '1' : '0';
    t = replace_line(text, lcp2, cpline);
    expect_fail(t, k, CT_ECHECKSUM, -1, "checkpoint 2: the signature does not verify");
    free(t);
    free(cpline);
    /* A subtree hash in an export that claims to be whole. */
    line = line_of(text, l7);
    t = replace_line(text, l7, "{\"type\":\"node\",\"first_seq\":7,\"size\":1,\"hash\":"
                               "\"0000000000000000000000000000000000000000000000000000000000000000\"}");
    expect_fail(t, k, CT_ECHECKSUM, 7, "replaced by a subtree hash in an export whose header says it holds the whole log");
    free(t);
    free(line);
    /* An extra key, an unknown item, a blank line, garbage. */
    line = line_of(text, l7);
    line[strlen(line) - 1] = '\0';
    char *extra = malloc(strlen(line) + 32);
    sprintf(extra, "%s,\"note\":\"hi\"}", line);
    t = replace_line(text, l7, extra);
    expect_fail(t, k, CT_ECHECKSUM, 7, "x.ndjson line 8: a malformed entry (where entry 7 is expected)");
    free(t);
    free(extra);
    free(line);
    t = replace_line(text, l7, "{\"type\":\"comment\"}");
    expect_fail(t, k, CT_ECHECKSUM, 7, "an item of unknown type");
    free(t);
    t = replace_line(text, l7, "");
    expect_fail(t, k, CT_ECHECKSUM, 7, "an empty line");
    free(t);
    t = replace_line(text, l7, "{\"type\":\"entry\", oops");
    expect_fail(t, k, CT_ECHECKSUM, 7, "not a JSON object");
    free(t);
    /* Something after the end line. */
    size_t n = strlen(text);
    char *more = malloc(n + 64);
    sprintf(more, "%s{\"type\":\"end\"}\n", text);
    expect_fail(more, k, CT_ECHECKSUM, -1, "an item after the end line");
    free(more);
    free(text);
    ct_audit_key_free(k);
}

static void test_filtered_exports(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = make_log(f);
    size_t len;
    ct_audit_export_result res;
    ct_audit_report rep;
    ct_error err;
    /* Patient mitdb-100 holds the odd entries: 20 of 40. */
    char *text = export_text(f, CT_AUDIT_FORMAT_NDJSON, "mitdb-100", 0, &len, &res);
    assert_int_equal(res.entries, 20);
    assert_true(res.nodes >= 20);
    if (verify_text(text, len, k, &rep, &err) != CT_OK)
        fail_msg("%s", err.msg);
    assert_true(rep.filtered);
    assert_string_equal(rep.filter, "patient mitdb-100");
    assert_int_equal(rep.entries_checked, 20);
    assert_int_equal(rep.nodes, res.nodes);
    assert_int_equal(rep.checkpoints, 2);
    assert_int_equal(rep.log_size, 40);
    /* An entry of the filtered export changed: caught by its own hash. */
    int l = line_of_entry(text, 9);
    char *line = line_of(text, l);
    char *p = strstr(line, "\"actor\":\"alice\"");
    assert_non_null(p);
    p[9] = 'A';
    char *t = replace_line(text, l, line);
    expect_fail(t, k, CT_ECHECKSUM, 9, "entry 9: hash mismatch");
    free(t);
    free(line);
    /* A subtree hash changed: the signed root no longer comes out. */
    for (int i = 2;; i++) {
        line = line_of(text, i);
        assert_non_null(line);
        if (strstr(line, "\"type\":\"node\"")) {
            p = strstr(line, "\"hash\":\"") + 8;
            *p = *p == 'a' ? 'b' : 'a';
            t = replace_line(text, i, line);
            expect_fail(t, k, CT_ECHECKSUM, 1, "checkpoint 1 (signed 20 entries) does not match the log");
            free(t);
            free(line);
            break;
        }
        free(line);
    }
    /* An entry removed and its place covered by a forged node. */
    l = line_of_entry(text, 9);
    t = replace_line(text, l, "{\"type\":\"node\",\"first_seq\":9,\"size\":1,\"hash\":"
                              "\"1111111111111111111111111111111111111111111111111111111111111111\"}");
    expect_fail(t, k, CT_ECHECKSUM, 1, "checkpoint 1 (signed 20 entries) does not match the log");
    free(t);
    free(text);

    /* Since the 30th entry's time, and both filters together. */
    text = export_text(f, CT_AUDIT_FORMAT_NDJSON, NULL, INT64_C(1714564800000) + 30000, &len, &res);
    assert_int_equal(res.entries, 11);
    assert_int_equal(verify_text(text, len, k, &rep, &err), CT_OK);
    assert_string_equal(rep.filter, "since 2024-05-01T12:00:30.000Z");
    free(text);
    text = export_text(f, CT_AUDIT_FORMAT_FHIR, "mitdb-101", INT64_C(1714564800000) + 30000, &len, &res);
    assert_int_equal(res.entries, 6);
    if (verify_text(text, len, k, &rep, &err) != CT_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(rep.filter, "since 2024-05-01T12:00:30.000Z, patient mitdb-101");
    free(text);
    /* A filter matching nothing still proves the log's shape. */
    text = export_text(f, CT_AUDIT_FORMAT_NDJSON, "nobody", 0, &len, &res);
    assert_int_equal(res.entries, 0);
    assert_int_equal(verify_text(text, len, k, &rep, &err), CT_OK);
    assert_int_equal(rep.checkpoints, 2);
    free(text);
    ct_audit_key_free(k);
}

static void test_fhir_round_trip(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = make_log(f);
    size_t len;
    ct_audit_export_result res;
    char *text = export_text(f, CT_AUDIT_FORMAT_FHIR, NULL, 0, &len, &res);
    json_error_t jerr;
    json_t *b = json_loadb(text, len, 0, &jerr);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "resourceType")), "Bundle");
    assert_string_equal(json_string_value(json_object_get(b, "type")), "collection");
    json_t *entries = json_object_get(b, "entry");
    assert_int_equal(json_array_size(entries), 44);
    json_t *first = json_object_get(json_array_get(entries, 0), "resource");
    assert_string_equal(json_string_value(json_object_get(first, "resourceType")), "Basic");
    assert_string_equal(json_string_value(json_object_get(first, "id")), "export-header");

    /* Entry 4 (bob's read of ecg-4, detail) as BALP says. */
    json_t *ev = json_object_get(json_array_get(entries, 4), "resource");
    assert_string_equal(json_string_value(json_object_get(ev, "resourceType")), "AuditEvent");
    assert_string_equal(json_string_value(json_object_get(ev, "id")), "4");
    json_t *type = json_object_get(ev, "type");
    assert_string_equal(json_string_value(json_object_get(type, "system")),
                        "http://terminology.hl7.org/CodeSystem/audit-event-type");
    assert_string_equal(json_string_value(json_object_get(type, "code")), "rest");
    json_t *sub0 = json_array_get(json_object_get(ev, "subtype"), 0);
    assert_string_equal(json_string_value(json_object_get(sub0, "system")), "http://hl7.org/fhir/restful-interaction");
    assert_string_equal(json_string_value(json_object_get(sub0, "code")), "read");
    assert_string_equal(json_string_value(json_object_get(ev, "action")), "R");
    assert_string_equal(json_string_value(json_object_get(ev, "recorded")), "2024-05-01T12:00:04.000Z");
    assert_string_equal(json_string_value(json_object_get(ev, "outcome")), "0");
    json_t *agent0 = json_array_get(json_object_get(ev, "agent"), 0);
    assert_true(json_is_true(json_object_get(agent0, "requestor")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(agent0, "who"), "identifier"), "value")), "bob");
    /* A read: the client receives, so it is BALP's Destination. */
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(agent0, "type"), "coding"), 0), "code")), "110152");
    json_t *net = json_object_get(agent0, "network");
    assert_string_equal(json_string_value(json_object_get(net, "address")), "192.0.2.7");
    assert_string_equal(json_string_value(json_object_get(net, "type")), "2");
    json_t *ents = json_object_get(ev, "entity");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(ents, 0), "what"), "reference")),
                        "Observation/ecg-4/_history/1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(json_array_get(ents, 1), "what"), "identifier"), "value")),
                        "mitdb-101");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(ents, 1), "role"), "code")), "1");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(ents, 2), "type"), "code")), "XrequestId");

    ct_audit_report rep;
    ct_error err;
    if (verify_text(text, len, k, &rep, &err) != CT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(rep.log_size, 40);
    assert_int_equal(rep.checkpoints, 2);

    /* Pretty-printed with sorted keys ("entry" before "resourceType"): the
     * same export, still verified. */
    char *pretty = json_dumps(b, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (verify_text(pretty, strlen(pretty), k, &rep, &err) != CT_OK)
        fail_msg("pretty: %s", err.msg);
    free(pretty);

    /* A readable field edited, the hashed bytes left alone. */
    json_object_set_new(ev, "recorded", json_string("2024-05-01T13:00:04.000Z"));
    char *t = json_dumps(b, JSON_COMPACT);
    expect_fail(t, k, CT_ECHECKSUM, 4, "Bundle entry 5: entry 4: the AuditEvent says something else than the entry "
                                       "its hashes cover");
    free(t);
    /* The hashed bytes edited. */
    json_t *chain = json_array_get(json_object_get(ev, "extension"), 0);
    json_t *canon = json_object_get(json_array_get(json_object_get(chain, "extension"), 0), "valueBase64Binary");
    char *c = strdup(json_string_value(canon));
    size_t at = strlen(c) - 12; /* inside the detail text */
    c[at] = c[at] == 'A' ? 'B' : 'A';
    json_string_set(canon, c);
    free(c);
    t = json_dumps(b, JSON_COMPACT);
    expect_fail(t, k, CT_ECHECKSUM, 4, "Bundle entry 5: entry 4: ");
    free(t);
    /* The seq inside the hashed bytes edited. */
    c = strdup(json_string_value(canon));
    c[20] = c[20] == 'A' ? 'B' : 'A'; /* the low byte of seq: 4 becomes 0 */
    json_string_set(canon, c);
    free(c);
    t = json_dumps(b, JSON_COMPACT);
    expect_fail(t, k, CT_ECHECKSUM, 4, "Bundle entry 5: where entry 4 belongs, an entry claims seq");
    free(t);
    /* An AuditEvent removed. */
    json_array_remove(entries, 4);
    t = json_dumps(b, JSON_COMPACT);
    expect_fail(t, k, CT_ECHECKSUM, 4, "entry 4 missing (the chain jumps from entry 3 to 5)");
    free(t);
    /* Not a collection. */
    json_decref(b);
    b = json_loadb(text, len, 0, &jerr);
    assert_non_null(b);
    json_object_set_new(b, "type", json_string("searchset"));
    t = json_dumps(b, JSON_COMPACT);
    expect_fail(t, k, CT_ECHECKSUM, -1, "not a Bundle of type collection");
    free(t);
    json_decref(b);
    /* Cut short, and trailing junk. */
    text[len / 2] = '\0';
    expect_fail(text, k, CT_ECHECKSUM, -1, "a Bundle entry cut short");
    free(text);
    ct_audit_key_free(k);
}

static void test_not_exports(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "not a cardiotwin audit export (it does not start with '{')"},
        {"hello", "not a cardiotwin audit export"},
        {"{}", "not a cardiotwin audit export (an empty object)"},
        {"{\"type\":\"header\"}\n", "not a cardiotwin audit export (no export header first)"},
        {"{\"resourceType\":\"Patient\",\"id\":\"x\"}", "not a cardiotwin audit export"},
        {"{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":[]}", "no export header"},
        {"{\"resourceType\":\"Bundle\",\"entry\":[{\"resource\":{\"resourceType\":\"Patient\"}}]}",
         "not a cardiotwin audit export (a resource that is neither AuditEvent nor Basic)"},
        {"{\"type\":\"header\",\"format\":\"cardiotwin-audit-export\",\"version\":2,\"log_size\":0,\"exported_ms\":0,"
         "\"filter\":null}\n", "export format version 2; this cardiotwin reads version 1"},
        {"{\"type\":\"header\",\"format\":\"cardiotwin-audit-export\",\"version\":1,\"log_size\":0,\"exported_ms\":0,"
         "\"filter\":{\"who\":1}}\n", "the export header's filter is malformed"},
        {"{\"a\":1,\"a\":2}", "a malformed or repeated member"},
        {"{\"entry\":[1,2]", "not a cardiotwin audit export"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ct_audit_report rep;
        ct_error err;
        int rc = ct_audit_verify_buffer(cases[i].text, strlen(cases[i].text), "f", NULL, &rep, &err);
        if (rc == CT_OK)
            fail_msg("case %zu accepted", i);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err.msg, cases[i].want);
        assert_false(rep.ok);
        assert_string_equal(rep.problem, err.msg);
    }
    /* The smallest export: an empty log. */
    const char *empty = "{\"type\":\"header\",\"format\":\"cardiotwin-audit-export\",\"version\":1,\"log_size\":0,"
                        "\"exported_ms\":0,\"filter\":null}\n{\"type\":\"end\",\"log_size\":0,\"entries\":0,\"nodes\":0,"
                        "\"checkpoints\":0}\n";
    ct_audit_report rep;
    ct_error err;
    assert_int_equal(ct_audit_verify_buffer(empty, strlen(empty), "f", NULL, &rep, &err), CT_OK);
    /* A header that promises entries the file does not hold. */
    const char *short_log = "{\"type\":\"header\",\"format\":\"cardiotwin-audit-export\",\"version\":1,\"log_size\":3,"
                            "\"exported_ms\":0,\"filter\":null}\n{\"type\":\"end\",\"log_size\":3,\"entries\":0,"
                            "\"nodes\":0,\"checkpoints\":0}\n";
    assert_int_equal(ct_audit_verify_buffer(short_log, strlen(short_log), "f", NULL, &rep, &err), CT_ECHECKSUM);
    assert_contains(err.msg, "the log ends at entry 0 but should hold 3 entries");
    assert_int_equal(ct_audit_verify_file("/nonexistent/x", NULL, &rep, &err), CT_ENOTFOUND);
}

/* The export file written and read back through the file API. */
static void test_file_api(void **state)
{
    fixture *f = *state;
    ct_audit_key *k = make_log(f);
    char path[256];
    snprintf(path, sizeof path, "%s/export.ndjson", f->dir);
    FILE *out = fopen(path, "w");
    ct_audit_export_options opt;
    memset(&opt, 0, sizeof opt);
    ct_audit_export_result res;
    ct_error err;
    assert_int_equal(ct_audit_export(f->st, &opt, out, &res, &err), CT_OK);
    fclose(out);
    ct_audit_report rep;
    assert_int_equal(ct_audit_verify_file(path, k, &rep, &err), CT_OK);
    assert_int_equal(rep.log_size, 40);
    ct_audit_key_free(k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ndjson_round_trip, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_tampering, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_filtered_exports, fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_fhir_round_trip, fixture_setup, fixture_teardown),
        cmocka_unit_test(test_not_exports),
        cmocka_unit_test_setup_teardown(test_file_api, fixture_setup, fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
