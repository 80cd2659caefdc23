/* Tests of policy loading: the default policy and its documented values,
 * layering (deployment over default, patient over deployment), the JSON
 * written back out, and one hand-made file for every way a policy is refused,
 * each with the JSON path the message must name. */
#include "policy_test_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *source_dir(void)
{
    const char *d = getenv("CT_SOURCE_DIR");
    if (!d)
        fail_msg("CT_SOURCE_DIR is not set (run under ctest)");
    return d;
}

static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Asserts that json is refused with `code` and a message that starts with
 * each fragment that starts with "test.json: " and contains the others. */
static void expect_refused_n(const char *json, size_t len, int code, const char *const *frags)
{
    ct_policy *p = (ct_policy *)(uintptr_t)1;
    ct_error err;
    ct_error_clear(&err);
    int rc = ct_policy_parse(json, len, "test.json", &p, &err);
    if (rc != code)
        fail_msg("expected %d, got %d (%s) for %.200s", code, rc, err.msg, json);
    assert_null(p);
    assert_int_equal(err.code, code);
    assert_null(strchr(err.msg, '\n'));
    for (; *frags; frags++) {
        if (strncmp(*frags, "test.json: ", 11) == 0) {
            if (strncmp(err.msg, *frags, strlen(*frags)) != 0)
                fail_msg("message '%s' does not start with '%s'", err.msg, *frags);
        } else if (!strstr(err.msg, *frags))
            fail_msg("message '%s' lacks '%s'", err.msg, *frags);
    }
}

#define REFUSED(json, code, ...)                                                          \
    do {                                                                                   \
        const char *frags_[] = {__VA_ARGS__, NULL};                                        \
        expect_refused_n((json), strlen(json), (code), frags_);                            \
    } while (0)

static void test_default_values(void **state)
{
    (void)state;
    ct_policy *p = policy_from(NULL);
    ct_policy_rules r;
    assert_int_equal(ct_policy_rules_for(p, NULL, &r), 0);
    assert_string_equal(ct_policy_name(p), "cardiotwin default");
    assert_int_equal(ct_policy_patient_count(p), 0);
    /* The values docs/policy.md promises. */
    assert_true(r.hr_high.c.enabled && r.hr_high.c.priority == CT_POLICY_MEDIUM);
    assert_true(r.hr_high.threshold_bpm == 120 && r.hr_high.onset_delay_s == 10);
    assert_true(r.hr_high.clear_hysteresis_bpm == 5 && r.hr_high.c.clear_delay_s == 10);
    assert_true(r.hr_high.extreme_bpm == 150 && r.hr_high.extreme_priority == CT_POLICY_HIGH);
    assert_true(r.hr_low.c.enabled && r.hr_low.c.priority == CT_POLICY_MEDIUM);
    assert_true(r.hr_low.threshold_bpm == 50 && r.hr_low.onset_delay_s == 10);
    assert_true(r.hr_low.clear_hysteresis_bpm == 5 && r.hr_low.c.clear_delay_s == 10);
    assert_true(r.hr_low.extreme_bpm == 40 && r.hr_low.extreme_priority == CT_POLICY_HIGH);
    assert_true(r.pause.c.enabled && r.pause.c.priority == CT_POLICY_MEDIUM);
    assert_true(r.pause.threshold_ms == 3000 && r.pause.c.clear_delay_s == 30);
    assert_true(r.asystole.c.enabled && r.asystole.c.priority == CT_POLICY_HIGH);
    assert_true(r.asystole.threshold_ms == 4000 && r.asystole.c.clear_delay_s == 10);
    assert_true(r.ventricular_run.c.enabled && r.ventricular_run.c.priority == CT_POLICY_HIGH);
    assert_true(r.ventricular_run.min_beats == 3 && r.ventricular_run.min_rate_bpm == 100);
    assert_true(r.ventricular_run.c.clear_delay_s == 30);
    assert_true(r.afib.c.enabled && r.afib.c.priority == CT_POLICY_MEDIUM);
    assert_true(r.afib.min_duration_s == 30 && r.afib.c.clear_delay_s == 60);
    assert_true(r.pvc_burden.c.enabled && r.pvc_burden.c.priority == CT_POLICY_LOW);
    assert_true(r.pvc_burden.threshold_per_min == 10 && r.pvc_burden.window_s == 60);
    assert_true(r.pvc_burden.onset_delay_s == 0 && r.pvc_burden.clear_hysteresis_per_min == 2);
    assert_true(r.pvc_burden.c.clear_delay_s == 30);
    assert_true(r.signal_loss.c.enabled && r.signal_loss.c.priority == CT_POLICY_MEDIUM);
    assert_true(r.signal_loss.onset_delay_s == 10 && r.signal_loss.c.clear_delay_s == 10);
    ct_policy_free(p);
}

/* What the binary embeds is the file in the source tree, byte for byte. */
static void test_embedded_is_source_file(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/src/policy/default_policy.json", source_dir());
    size_t len, elen;
    char *disk = read_whole(path, &len);
    const char *emb = ct_policy_default_json(&elen);
    assert_int_equal(elen, len);
    assert_memory_equal(emb, disk, len);
    /* Loading that file as a deployment policy changes nothing. */
    ct_policy *p = NULL, *d = policy_from(NULL);
    ct_error err;
    assert_int_equal(ct_policy_load_file(path, &p, &err), 0);
    ct_policy_rules a, b;
    ct_policy_rules_for(p, NULL, &a);
    ct_policy_rules_for(d, NULL, &b);
    assert_memory_equal(&a, &b, sizeof a);
    ct_policy_free(p);
    ct_policy_free(d);
    free(disk);
}

/* The complete example of docs/policy.md loads and means what the text says. */
static void test_docs_example(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/docs/policy.md", source_dir());
    size_t len;
    char *md = read_whole(path, &len);
    const char *mark = strstr(md, "<!-- example policy -->");
    if (!mark)
        fail_msg("docs/policy.md has no '<!-- example policy -->' block");
    const char *start = strstr(mark, "```json\n");
    assert_non_null(start);
    start += 8;
    const char *end = strstr(start, "```");
    assert_non_null(end);
    ct_policy *p = NULL;
    ct_error err;
    ct_error_clear(&err);
    if (ct_policy_parse(start, (size_t)(end - start), "docs/policy.md", &p, &err) != 0)
        fail_msg("the example in docs/policy.md is refused: %s", err.msg);
    ct_policy_rules r;
    assert_int_equal(ct_policy_rules_for(p, "mitdb-106", &r), 1);
    assert_true(r.pvc_burden.threshold_per_min == 20);
    assert_int_equal(ct_policy_rules_for(p, "mitdb-100", &r), 0);
    assert_true(r.pvc_burden.threshold_per_min == 10);
    ct_policy_free(p);
    free(md);
}

static void test_partial_deployment(void **state)
{
    (void)state;
    ct_policy *p = policy_from("{\"version\": 1, \"rules\": {\"hr_high\": {\"threshold_bpm\": 130},"
                               " \"afib\": {\"enabled\": false}}}");
    ct_policy *d = policy_from(NULL);
    ct_policy_rules r, def;
    ct_policy_rules_for(p, NULL, &r);
    ct_policy_rules_for(d, NULL, &def);
    assert_true(r.hr_high.threshold_bpm == 130);
    assert_int_equal(r.afib.c.enabled, 0);
    /* Everything else keeps the default. */
    r.hr_high.threshold_bpm = def.hr_high.threshold_bpm;
    r.afib.c.enabled = def.afib.c.enabled;
    assert_memory_equal(&r, &def, sizeof r);
    assert_string_equal(ct_policy_name(p), "");
    ct_policy_free(p);
    ct_policy_free(d);
}

static void test_patient_override(void **state)
{
    (void)state;
    ct_policy *p = policy_from(
        "{\"version\":1, \"name\": \"ward 5\", \"rules\": {\"hr_high\": {\"threshold_bpm\": 130}},"
        " \"patients\": {\"mitdb-106\": {\"rules\": {\"pvc_burden\": {\"threshold_per_min\": 20}}},"
        "               \"mitdb-200\": {\"rules\": {\"hr_high\": {\"extreme_bpm\": 170}}},"
        "               \"a\": {}}}");
    assert_int_equal(ct_policy_patient_count(p), 3);
    ct_policy_rules dep, r106, r200, other;
    assert_int_equal(ct_policy_rules_for(p, NULL, &dep), 0);
    assert_int_equal(ct_policy_rules_for(p, "mitdb-106", &r106), 1);
    assert_int_equal(ct_policy_rules_for(p, "mitdb-200", &r200), 1);
    assert_int_equal(ct_policy_rules_for(p, "mitdb-100", &other), 0);
    assert_true(dep.pvc_burden.threshold_per_min == 10);
    assert_true(r106.pvc_burden.threshold_per_min == 20);
    /* An override inherits the deployment's values, not the default's. */
    assert_true(r106.hr_high.threshold_bpm == 130);
    assert_true(r200.hr_high.threshold_bpm == 130 && r200.hr_high.extreme_bpm == 170);
    assert_true(r200.pvc_burden.threshold_per_min == 10);
    assert_memory_equal(&other, &dep, sizeof dep);
    r106.pvc_burden.threshold_per_min = 10;
    assert_memory_equal(&r106, &dep, sizeof dep);
    ct_policy_free(p);
}

static void test_to_json_round_trip(void **state)
{
    (void)state;
    const char *src =
        "{\"version\":1, \"name\": \"ICU\", \"rules\": {\"hr_low\": {\"threshold_bpm\": 45.5}},"
        " \"patients\": {\"p2\": {\"rules\": {\"pause\": {\"threshold_ms\": 2500, \"priority\": \"high\"}}},"
        "               \"p1\": {\"rules\": {\"afib\": {\"enabled\": false}}}}}";
    ct_policy *p = policy_from(src);
    char *js = NULL;
    ct_error err;
    assert_int_equal(ct_policy_to_json(p, NULL, &js, &err), 0);
    assert_non_null(strstr(js, "\"threshold_bpm\": 45.5"));
    assert_non_null(strstr(js, "\"threshold_bpm\": 120")); /* whole numbers as integers */
    assert_null(strstr(js, "120.0"));
    ct_policy *q = policy_from(js);
    char *js2 = NULL;
    assert_int_equal(ct_policy_to_json(q, NULL, &js2, &err), 0);
    assert_string_equal(js, js2);
    const char *ids[] = {NULL, "p1", "p2", "nobody"};
    for (int i = 0; i < 4; i++) {
        ct_policy_rules a, b;
        assert_int_equal(ct_policy_rules_for(p, ids[i], &a), ct_policy_rules_for(q, ids[i], &b));
        assert_memory_equal(&a, &b, sizeof a);
    }
    /* Overrides are written as given, not merged. */
    assert_non_null(strstr(js, "\"p1\": {\n      \"rules\": {\n        \"afib\": {\n          \"enabled\": false\n        }"));

    /* A patient's view is merged. */
    char *pj = NULL;
    assert_int_equal(ct_policy_to_json(p, "p2", &pj, &err), 0);
    assert_non_null(strstr(pj, "\"patient\": \"p2\""));
    assert_non_null(strstr(pj, "\"overridden\": true"));
    assert_non_null(strstr(pj, "\"threshold_ms\": 2500"));
    assert_non_null(strstr(pj, "\"threshold_bpm\": 45.5"));
    assert_null(strstr(pj, "\"patients\""));
    free(pj);
    assert_int_equal(ct_policy_to_json(p, "nobody", &pj, &err), 0);
    assert_non_null(strstr(pj, "\"overridden\": false"));
    assert_non_null(strstr(pj, "\"threshold_ms\": 3000"));
    free(pj);
    free(js);
    free(js2);
    ct_policy_free(p);
    ct_policy_free(q);
}

static void test_refused_fields(void **state)
{
    (void)state;
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"threshold_bpm\":\"fast\"}}}", CT_EFORMAT,
            "test.json: rules.hr_high.threshold_bpm: expected a number between 20 and 300, got \"fast\"");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"threshold_bpm\":500}}}", CT_EFORMAT,
            "test.json: rules.hr_high.threshold_bpm: expected a number between 20 and 300, got 500");
    REFUSED("{\"version\":1,\"rules\":{\"hr_low\":{\"onset_delay_s\":-1}}}", CT_EFORMAT,
            "test.json: rules.hr_low.onset_delay_s: expected a number between 0 and 300, got -1");
    REFUSED("{\"version\":1,\"rules\":{\"pause\":{\"threshold_ms\":null}}}", CT_EFORMAT,
            "rules.pause.threshold_ms: expected a number", "got null");
    REFUSED("{\"version\":1,\"rules\":{\"ventricular_run\":{\"min_beats\":2.5}}}", CT_EFORMAT,
            "test.json: rules.ventricular_run.min_beats: expected an integer between 3 and 100, got 2.5");
    REFUSED("{\"version\":1,\"rules\":{\"ventricular_run\":{\"min_beats\":2}}}", CT_EFORMAT,
            "rules.ventricular_run.min_beats: expected an integer between 3 and 100, got 2");
    REFUSED("{\"version\":1,\"rules\":{\"afib\":{\"enabled\":\"yes\"}}}", CT_EFORMAT,
            "test.json: rules.afib.enabled: expected true or false, got \"yes\"");
    REFUSED("{\"version\":1,\"rules\":{\"afib\":{\"enabled\":1}}}", CT_EFORMAT,
            "test.json: rules.afib.enabled: expected true or false, got 1");
    REFUSED("{\"version\":1,\"rules\":{\"asystole\":{\"priority\":\"urgent\"}}}", CT_EFORMAT,
            "test.json: rules.asystole.priority: expected \"high\", \"medium\" or \"low\", got \"urgent\"");
    REFUSED("{\"version\":1,\"rules\":{\"asystole\":{\"priority\":\"HIGH\"}}}", CT_EFORMAT,
            "rules.asystole.priority: expected \"high\"");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"extreme_priority\":[]}}}", CT_EFORMAT,
            "rules.hr_high.extreme_priority", "got an array");
    /* A typo must not silently leave a rule at its default. */
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"treshold_bpm\":130}}}", CT_EFORMAT,
            "test.json: rules.hr_high.treshold_bpm: unknown field (hr_high takes enabled, priority, "
            "threshold_bpm, onset_delay_s, clear_hysteresis_bpm, clear_delay_s, extreme_bpm or "
            "extreme_priority)");
    REFUSED("{\"version\":1,\"rules\":{\"pause\":{\"onset_delay_s\":5}}}", CT_EFORMAT,
            "rules.pause.onset_delay_s: unknown field");
    REFUSED("{\"version\":1,\"rules\":{\"hr_hihg\":{\"threshold_bpm\":130}}}", CT_EFORMAT,
            "test.json: rules.hr_hihg: unknown rule (the rules are hr_high, hr_low, pause, asystole, "
            "ventricular_run, afib, pvc_burden or signal_loss)");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":true}}", CT_EFORMAT,
            "test.json: rules.hr_high: expected an object of fields, got true");
    REFUSED("{\"version\":1,\"rules\":[]}", CT_EFORMAT,
            "test.json: rules: expected an object of rules, got an array");
    /* Keys from the file are shown without their control characters. */
    REFUSED("{\"version\":1,\"rules\":{\"a\\nb\":{}}}", CT_EFORMAT, "rules.a?b: unknown rule");
}

static void test_refused_document(void **state)
{
    (void)state;
    REFUSED("{\"rules\":{}}", CT_EFORMAT, "test.json: version: missing (this cardiotwin reads version 1)");
    REFUSED("{\"version\":\"1\"}", CT_EFORMAT, "test.json: version: expected the integer 1, got \"1\"");
    REFUSED("{\"version\":0}", CT_EFORMAT, "test.json: version: expected the integer 1, got 0");
    REFUSED("{\"version\":2, \"rules\":{\"new_rule\":{}}}", CT_EVERSION,
            "test.json: version: 2 is newer than this cardiotwin, which reads version 1");
    REFUSED("{\"version\":1, \"rule\":{}}", CT_EFORMAT,
            "test.json: rule: unknown key (a policy holds version, name, rules and patients)");
    REFUSED("[1]", CT_EFORMAT, "test.json: expected a JSON object at the top, got an array");
    REFUSED("{\"version\":1, \"name\": 5}", CT_EFORMAT, "test.json: name: expected a string");
    REFUSED("{\"version\":1, \"name\": \"a\\u0007b\"}", CT_EFORMAT, "test.json: name: expected a string");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"threshold_bpm\":130,\"threshold_bpm\":140}}}",
            CT_EFORMAT, "test.json: line 1", "duplicate");
    /* Malformed JSON: the line and column of the fault. */
    REFUSED("{\n  \"version\": 1,\n  \"rules\": {\n    \"hr_high\": {\"threshold_bpm\": 130,}\n  }\n}\n",
            CT_EFORMAT, "test.json: line 4, column 38: malformed JSON");
    REFUSED("", CT_EFORMAT, "test.json: line 1, column 0: malformed JSON");
    REFUSED("{\"version\":1} x", CT_EFORMAT, "test.json: line 1, column 15: malformed JSON");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"threshold_bpm\":1e999}}}", CT_EFORMAT,
            "test.json: line 1", "malformed JSON");
    /* Embedded NUL bytes are not JSON. */
    expect_refused_n("{\"version\":1}\0", 14, CT_EFORMAT, (const char *const[]){"malformed JSON", NULL});
}

static void test_refused_cross_field(void **state)
{
    (void)state;
    REFUSED("{\"version\":1,\"rules\":{\"hr_low\":{\"threshold_bpm\":130, \"extreme_bpm\": 40}}}", CT_EFORMAT,
            "test.json: rules.hr_low.threshold_bpm: 130 is not below hr_high.threshold_bpm 120");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"extreme_bpm\":110}}}", CT_EFORMAT,
            "test.json: rules.hr_high.extreme_bpm: 110 is below threshold_bpm 120");
    REFUSED("{\"version\":1,\"rules\":{\"hr_low\":{\"extreme_bpm\":55}}}", CT_EFORMAT,
            "test.json: rules.hr_low.extreme_bpm: 55 is above threshold_bpm 50");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"priority\":\"high\",\"extreme_priority\":\"medium\"}}}",
            CT_EFORMAT, "test.json: rules.hr_high.extreme_priority: \"medium\" is lower than priority \"high\"");
    REFUSED("{\"version\":1,\"rules\":{\"hr_high\":{\"threshold_bpm\":40,\"clear_hysteresis_bpm\":45}}}",
            CT_EFORMAT, "rules.hr_high.clear_hysteresis_bpm: 45 would never let an alert at 40 bpm clear");
    REFUSED("{\"version\":1,\"rules\":{\"pvc_burden\":{\"threshold_per_min\":2}}}", CT_EFORMAT,
            "test.json: rules.pvc_burden.clear_hysteresis_per_min: 2 would never let an alert at 2 per minute clear");
    /* A patient cannot break what it inherits either. */
    REFUSED("{\"version\":1,\"patients\":{\"p\":{\"rules\":{\"hr_high\":{\"threshold_bpm\":45}}}}}", CT_EFORMAT,
            "test.json: patients.p.rules.hr_low.threshold_bpm: 50 is not below hr_high.threshold_bpm 45");
}

static void test_refused_patients(void **state)
{
    (void)state;
    REFUSED("{\"version\":1,\"patients\":{\"mitdb-106\":{\"rules\":{\"vfib\":{\"enabled\":true}}}}}",
            CT_EFORMAT, "test.json: patients.mitdb-106.rules.vfib: unknown rule");
    REFUSED("{\"version\":1,\"patients\":{\"mitdb-106\":{\"rules\":{\"pvc_burden\":{\"threshold\":20}}}}}",
            CT_EFORMAT, "test.json: patients.mitdb-106.rules.pvc_burden.threshold: unknown field");
    REFUSED("{\"version\":1,\"patients\":{\"mitdb-106\":{\"rules\":{\"pvc_burden\":{\"threshold_per_min\":0}}}}}",
            CT_EFORMAT,
            "test.json: patients.mitdb-106.rules.pvc_burden.threshold_per_min: expected a number between 1 and 200, got 0");
    REFUSED("{\"version\":1,\"patients\":{\"mitdb-106\":{\"pvc_burden\":{}}}}", CT_EFORMAT,
            "test.json: patients.mitdb-106.pvc_burden: unknown key (a patient override holds only \"rules\")");
    REFUSED("{\"version\":1,\"patients\":{\"mitdb-106\":[]}}", CT_EFORMAT,
            "test.json: patients.mitdb-106: expected an object");
    REFUSED("{\"version\":1,\"patients\":{\"\":{}}}", CT_EFORMAT, "test.json: patients.: a patient id is 1 to 127");
    REFUSED("{\"version\":1,\"patients\":{\" x\":{}}}", CT_EFORMAT, "patients. x: a patient id");
    REFUSED("{\"version\":1,\"patients\":[]}", CT_EFORMAT, "test.json: patients: expected an object");
    /* An id as long as the store's identifier allows is fine, one more is not. */
    char doc[512], id[200];
    memset(id, 'x', 127);
    id[127] = '\0';
    snprintf(doc, sizeof doc, "{\"version\":1,\"patients\":{\"%s\":{}}}", id);
    ct_policy_free(policy_from(doc));
    memset(id, 'x', 128);
    id[128] = '\0';
    snprintf(doc, sizeof doc, "{\"version\":1,\"patients\":{\"%s\":{}}}", id);
    REFUSED(doc, CT_EFORMAT, "a patient id is 1 to 127 printable characters");
}

static char *many_patients(int n)
{
    size_t cap = (size_t)n * 64 + 64, used = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    used += (size_t)snprintf(s, cap, "{\"version\":1,\"patients\":{");
    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, cap - used, "%s\"p%d\":{\"rules\":{\"afib\":{\"enabled\":false}}}",
                                 i ? "," : "", i);
    snprintf(s + used, cap - used, "}}");
    return s;
}

static void test_limits(void **state)
{
    (void)state;
    char *s = many_patients(CT_POLICY_MAX_PATIENTS);
    ct_policy *p = policy_from(s);
    assert_int_equal(ct_policy_patient_count(p), CT_POLICY_MAX_PATIENTS);
    ct_policy_rules r;
    assert_int_equal(ct_policy_rules_for(p, "p9999", &r), 1);
    assert_int_equal(r.afib.c.enabled, 0);
    assert_int_equal(ct_policy_rules_for(p, "p10000", &r), 0);
    ct_policy_free(p);
    free(s);
    s = many_patients(CT_POLICY_MAX_PATIENTS + 1);
    REFUSED(s, CT_ELIMIT, "test.json: patients: 10001 overrides, the limit is 10000");
    free(s);

    size_t big = (size_t)CT_POLICY_MAX_BYTES + 1;
    char *b = malloc(big + 1);
    assert_non_null(b);
    memset(b, ' ', big);
    memcpy(b, "{\"version\":1}", 13);
    b[big] = '\0';
    expect_refused_n(b, big, CT_ELIMIT,
                     (const char *const[]){"test.json: 2097153 bytes, the limit for a policy is 2097152", NULL});
    /* Exactly at the limit is accepted. */
    p = NULL;
    ct_error err;
    assert_int_equal(ct_policy_parse(b, big - 1, "test.json", &p, &err), 0);
    ct_policy_free(p);
    free(b);
}

static void test_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/ct_policy_test_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    ct_policy *p = NULL;
    ct_error err;

    snprintf(path, sizeof path, "%s/missing.json", dir);
    assert_int_equal(ct_policy_load_file(path, &p, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, path));
    assert_null(p);

    assert_int_equal(ct_policy_load_file(dir, &p, &err), CT_EIO);
    assert_non_null(strstr(err.msg, "not a regular file"));

    snprintf(path, sizeof path, "%s/policy.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\": 1,\n \"rules\": {\"hr_high\": {\"threshold_bpm\": \"fast\"}}}\n", f);
    fclose(f);
    assert_int_equal(ct_policy_load_file(path, &p, &err), CT_EFORMAT);
    char want[512];
    snprintf(want, sizeof want,
             "%s: rules.hr_high.threshold_bpm: expected a number between 20 and 300, got \"fast\"", path);
    assert_string_equal(err.msg, want);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"version\": 1, \"rules\": {\"hr_high\": {\"threshold_bpm\": 110}}}\n", f);
    fclose(f);
    assert_int_equal(ct_policy_load_file(path, &p, &err), 0);
    ct_policy_rules r;
    ct_policy_rules_for(p, NULL, &r);
    assert_true(r.hr_high.threshold_bpm == 110);
    ct_policy_free(p);

    /* A large file is refused from its size, without reading it. */
    snprintf(path, sizeof path, "%s/huge.json", dir);
    int fd = open(path, O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 3 * 1024 * 1024), 0);
    close(fd);
    assert_int_equal(ct_policy_load_file(path, &p, &err), CT_ELIMIT);
    snprintf(want, sizeof want, "%s: 3145728 bytes, the limit for a policy is 2097152", path);
    assert_string_equal(err.msg, want);
    unlink(path);
    snprintf(path, sizeof path, "%s/policy.json", dir);
    unlink(path);
    rmdir(dir);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(ct_policy_rule_name(CT_POLICY_HR_HIGH), "hr_high");
    assert_string_equal(ct_policy_rule_name(CT_POLICY_SIGNAL_LOSS), "signal_loss");
    assert_null(ct_policy_rule_name(CT_POLICY_N_RULES));
    assert_null(ct_policy_rule_name((ct_policy_rule)-1));
    assert_string_equal(ct_policy_priority_name(CT_POLICY_HIGH), "high");
    assert_string_equal(ct_policy_priority_name(CT_POLICY_LOW), "low");
    assert_null(ct_policy_priority_name((ct_policy_priority)0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_values),
        cmocka_unit_test(test_embedded_is_source_file),
        cmocka_unit_test(test_docs_example),
        cmocka_unit_test(test_partial_deployment),
        cmocka_unit_test(test_patient_override),
        cmocka_unit_test(test_to_json_round_trip),
        cmocka_unit_test(test_refused_fields),
        cmocka_unit_test(test_refused_document),
        cmocka_unit_test(test_refused_cross_field),
        cmocka_unit_test(test_refused_patients),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_files),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
