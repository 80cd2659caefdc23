/* The live twin on real MIT-BIH records, streamed as 10-second ECG
 * Observations (through FHIR JSON and back): the beats are exactly those of
 * `cardiotwin detect` on the same record; record 106 (frequent PVCs,
 * bigeminy, a ventricular run) yields the DiagnosticReports a cardiologist
 * would expect, complete and searchable, each version with its Provenance
 * and audit entry; record 100 raises nothing of high priority. */
#include "twin_test_util.h"

/* The beats of ct_twin_detect_record on the whole record. */
static void reference_beats(const tt_record *r, tt_beats *out)
{
    ct_wfdb_annotation *a = NULL;
    size_t n = 0;
    ct_error err;
    if (ct_twin_detect_record(&r->hdr, &r->sig, -1, &a, &n, &err) != 0)
        fail_msg("%s", err.msg);
    for (size_t i = 0; i < n; i++) {
        if (!ct_wfdb_ann_is_beat(a[i].code))
            continue;
        ct_ecg_beat b;
        memset(&b, 0, sizeof b);
        b.sample = a[i].sample;
        b.cls = a[i].code == CT_ANN_PVC ? CT_BEAT_V : a[i].code == CT_ANN_APC ? CT_BEAT_S
              : a[i].code == CT_ANN_FUSION ? CT_BEAT_F : a[i].code == CT_ANN_UNKNOWN ? CT_BEAT_Q : CT_BEAT_N;
        tt_on_beat(out, NULL, &b);
    }
    free(a);
}

static void check_same_beats(const tt_beats *live, const tt_beats *ref)
{
    print_message("beats: live %zu, detect %zu\n", live->n, ref->n);
    assert_true(ref->n > 1000);
    assert_int_equal(live->n, ref->n);
    for (size_t i = 0; i < ref->n; i++) {
        if (live->sample[i] != ref->sample[i] || live->cls[i] != ref->cls[i])
            fail_msg("beat %zu: live %lld %c, detect %lld %c", i, (long long)live->sample[i], live->cls[i],
                     (long long)ref->sample[i], ref->cls[i]);
    }
}

static json_t *read_resource(ct_store *st, const char *type, const char *id, int64_t version)
{
    char *body = NULL;
    ct_error err;
    if (ct_store_resource_get(st, type, id, version, &body, NULL, NULL, NULL, &err) != 0)
        fail_msg("%s/%s: %s", type, id, err.msg);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(j);
    /* Stored with an empty meta, which the server fills when it serves it
     * (versionId, lastUpdated), as the http room stores resources. */
    assert_true(json_is_object(json_object_get(j, "meta")));
    json_object_set_new(json_object_get(j, "meta"), "versionId", json_string("1"));
    ct_fhir_issue is;
    if (ct_fhir_validate_resource(j, type, &is) != 0)
        fail_msg("%s/%s is not a valid resource: %s at %s", type, id, is.diagnostics, is.expression);
    return j;
}

static int has_coding(const json_t *cc_array_or_cc, const char *system, const char *code)
{
    const json_t *arr = json_is_array(cc_array_or_cc) ? cc_array_or_cc : NULL;
    size_t n = arr ? json_array_size(arr) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *cc = arr ? json_array_get(arr, i) : cc_array_or_cc;
        const json_t *codings = json_object_get(cc, "coding");
        for (size_t k = 0; k < json_array_size(codings); k++) {
            const json_t *c = json_array_get(codings, k);
            const char *sys = json_string_value(json_object_get(c, "system"));
            const char *cd = json_string_value(json_object_get(c, "code"));
            if (sys && cd && strcmp(sys, system) == 0 && strcmp(cd, code) == 0)
                return 1;
        }
    }
    return 0;
}

/* Every element the report must have, its results and its Provenance. */
static void check_report(ct_store *st, const ct_twin *t, const ct_store_twin_alert *a, const char *patient)
{
    json_t *r = read_resource(st, "DiagnosticReport", a->report_id, 0);
    const char *status = json_string_value(json_object_get(r, "status"));
    assert_string_equal(status, strcmp(a->state, "open") == 0 ? "preliminary" : "final");
    assert_true(has_coding(json_object_get(r, "category"), "http://loinc.org", "LP29708-2"));
    assert_true(has_coding(json_object_get(r, "code"), "http://loinc.org", "11524-6"));
    char subject[128];
    snprintf(subject, sizeof subject, "Patient/%s", patient);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "subject"), "reference")), subject);
    const json_t *period = json_object_get(r, "effectivePeriod");
    assert_non_null(json_object_get(period, "start"));
    assert_true((json_object_get(period, "end") != NULL) == (strcmp(a->state, "open") != 0));
    assert_non_null(json_object_get(r, "issued"));
    assert_non_null(json_object_get(r, "conclusion"));
    const json_t *idf = json_array_get(json_object_get(r, "identifier"), 0);
    assert_string_equal(json_string_value(json_object_get(idf, "system")), CT_TWIN_IDENTIFIER_SYSTEM);
    assert_string_equal(json_string_value(json_object_get(idf, "value")), a->report_id);
    /* Results: readable derived Observations that lead back to the ECG. */
    const json_t *results = json_object_get(r, "result");
    int hr = 0;
    for (size_t i = 0; i < json_array_size(results); i++) {
        const char *ref = json_string_value(json_object_get(json_array_get(results, i), "reference"));
        assert_non_null(ref);
        assert_memory_equal(ref, "Observation/", 12);
        json_t *o = read_resource(st, "Observation", ref + 12, 0);
        assert_string_equal(json_string_value(json_object_get(o, "status")), status);
        hr += has_coding(json_object_get(o, "code"), "http://loinc.org", "8867-4");
        const json_t *oid = json_array_get(json_object_get(o, "identifier"), 0);
        assert_string_equal(json_string_value(json_object_get(oid, "system")), CT_TWIN_IDENTIFIER_SYSTEM);
        assert_string_equal(json_string_value(json_object_get(oid, "value")), ref + 12);
        const json_t *df = json_object_get(o, "derivedFrom");
        if (strcmp(a->rule, "signal_loss") != 0)
            assert_true(json_array_size(df) >= 1);
        for (size_t k = 0; k < json_array_size(df); k++) {
            const char *src = json_string_value(json_object_get(json_array_get(df, k), "reference"));
            assert_non_null(strstr(src, "Observation/"));
        }
        json_decref(o);
    }
    if (strcmp(a->rule, "signal_loss") != 0)
        assert_true(json_array_size(results) >= 2);
    assert_true(hr <= 1);
    /* One Provenance per version, naming the detector. */
    for (int64_t v = 1; v <= a->report_version; v++) {
        char pid[128];
        snprintf(pid, sizeof pid, "%s-prov-%lld", a->report_id, (long long)v);
        json_t *p = read_resource(st, "Provenance", pid, 0);
        char target[160], who[160];
        snprintf(target, sizeof target, "DiagnosticReport/%s/_history/%lld", a->report_id, (long long)v);
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(p, "target"), 0),
                                                              "reference")),
                            target);
        snprintf(who, sizeof who, "Device/%s", ct_twin_device_id(t));
        assert_string_equal(json_string_value(json_object_get(
                                json_object_get(json_array_get(json_object_get(p, "agent"), 0), "who"), "reference")),
                            who);
        json_decref(p);
    }
    json_decref(r);
}

/* Audit entries with action "alert" per report id. */
static int64_t alert_audits(tt_db *d, const char *report_id)
{
    char sql[256];
    snprintf(sql, sizeof sql,
             "SELECT count(*) FROM audit_log WHERE action = 'alert' AND resource_type = 'DiagnosticReport'"
             " AND resource_id = '%s'", report_id);
    return tt_count(d, sql);
}

static void test_record_106(void **state)
{
    (void)state;
    tt_record *r = tt_load("106");
    tt_db d;
    tt_db_open(&d);
    tt_beats live = {0}, ref = {0};
    ct_twin_options o;
    ct_twin_options_default(&o);
    o.observer.on_beat = tt_on_beat;
    o.observer.on_alert = tt_on_alert;
    o.observer.ctx = &live;
    ct_twin *t = NULL;
    ct_error err;
    if (ct_twin_new(&o, d.st, &t, &err) != 0)
        fail_msg("%s", err.msg);
    tt_stream(t, d.st, r, "mitdb-106", "obs-106", r->sig.n_samples);

    /* The live view while the stream is open. */
    ct_twin_live v;
    assert_int_equal(ct_twin_live_read(t, "mitdb-106", 10, &v, &err), 0);
    assert_int_equal(v.n_samples, 3600);
    assert_int_equal(v.next_sample, r->sig.n_samples);
    assert_int_equal(v.first_sample, r->sig.n_samples - 3600);
    assert_memory_equal(v.samples[0], r->sig.samples[0] + v.first_sample, 3600 * sizeof(int16_t));
    assert_memory_equal(v.samples[1], r->sig.samples[1] + v.first_sample, 3600 * sizeof(int16_t));
    assert_true(v.n_beats >= 100);
    assert_true(v.hr_bpm > 40 && v.hr_bpm < 150);
    assert_int_equal(v.lead_codes[0], 131330);
    assert_int_equal(v.lead_codes[1], 131331);
    assert_true(v.memory_bytes > 50000 && v.memory_bytes < 400000);
    print_message("live: %zu beats kept, HR %.0f, rhythm %s, %zu open alerts, %zu bytes\n", v.n_beats, v.hr_bpm,
                  v.rhythm, v.n_alerts, v.memory_bytes);
    ct_twin_live_free(&v);

    assert_int_equal(ct_twin_stream_end(t, d.st, "mitdb-106", &err), 0);
    reference_beats(r, &ref);
    check_same_beats(&live, &ref);

    ct_store_twin_alert *al = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_twin_alerts_list(d.st, "mitdb-106", 0, 1000, &al, &n, &err), 0);
    int vrun = 0, pvc = 0, transitions = 0;
    for (size_t i = 0; i < n; i++) {
        print_message("alert %lld %s %s %s v%lld: %s\n", (long long)al[i].id, al[i].rule, al[i].priority,
                      al[i].state, (long long)al[i].report_version, al[i].summary);
        assert_string_not_equal(al[i].state, "open");
        check_report(d.st, t, &al[i], "mitdb-106");
        json_t *rep = read_resource(d.st, "DiagnosticReport", al[i].report_id, 0);
        const json_t *cc = json_object_get(rep, "conclusionCode");
        if (strcmp(al[i].rule, "ventricular_run") == 0) {
            vrun++;
            assert_string_equal(al[i].priority, "high");
            assert_true(has_coding(cc, "http://snomed.info/sct", "164895002"));
        } else if (strcmp(al[i].rule, "pvc_burden") == 0) {
            pvc++;
            assert_true(has_coding(cc, "http://snomed.info/sct", "427172004"));
        }
        json_decref(rep);
        /* Every version of every report has its audit entry. */
        assert_int_equal(alert_audits(&d, al[i].report_id), al[i].report_version);
        transitions += (int)al[i].report_version;
    }
    print_message("106: %zu alerts, %d ventricular run, %d PVC burden\n", n, vrun, pvc);
    assert_true(vrun >= 1);
    assert_true(pvc >= 1);
    assert_int_equal((int)live.alerts, transitions);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM audit_log WHERE action = 'alert'"), transitions);

    /* The reports are found by the FHIR search the API runs. */
    ct_store_search_value pv = {.ref_type = "Patient", .ref_id = "mitdb-106"};
    ct_store_search_value cv = {.system = "http://snomed.info/sct", .code = "164895002"};
    ct_store_search_clause cl[2] = {
        {.field = CT_STORE_FIELD_INDEX, .param = "patient", .kind = CT_STORE_INDEX_REFERENCE, .missing = -1,
         .n_values = 1, .values = &pv},
        {.field = CT_STORE_FIELD_INDEX, .param = "conclusion", .kind = CT_STORE_INDEX_TOKEN, .missing = -1,
         .n_values = 1, .values = &cv}};
    ct_store_search_query q = {.type = "DiagnosticReport", .n_clauses = 2, .clauses = cl, .count = 100,
                               .include_param = "result", .include_type = "Observation"};
    ct_store_search_result sr;
    assert_int_equal(ct_store_search(d.st, &q, &sr, &err), 0);
    assert_int_equal(sr.total, vrun);
    assert_true(sr.included.n >= 2 * (size_t)vrun);
    ct_store_search_result_free(&sr);

    /* The samples are stored as received. */
    int16_t buf[3600];
    size_t got = 0;
    ct_store_twin_stream *ls = NULL;
    size_t nls = 0;
    assert_int_equal(ct_store_twin_streams_live(d.st, &ls, &nls, &err), 0);
    assert_int_equal(nls, 0); /* ended */
    free(ls);
    ct_store_record rec;
    assert_int_equal(ct_store_record_find(d.st, "twin", "stream-1-0", &rec, &err), 0);
    assert_int_equal(rec.n_samples, r->sig.n_samples);
    ct_store_signal *sig = NULL;
    size_t nsig = 0;
    assert_int_equal(ct_store_signals_list(d.st, rec.id, &sig, &nsig, &err), 0);
    assert_int_equal(nsig, 2);
    assert_string_equal(sig[0].description, "MLII");
    assert_int_equal(ct_store_samples_read(d.st, sig[1].id, 360000, buf, 3600, &got, &err), 0);
    assert_int_equal(got, 3600);
    assert_memory_equal(buf, r->sig.samples[1] + 360000, sizeof buf);
    free(sig);

    free(al);
    tt_beats_free(&live);
    tt_beats_free(&ref);
    ct_twin_free(t);
    tt_db_close(&d);
    tt_unload(r);
}

static void test_record_100(void **state)
{
    (void)state;
    tt_record *r = tt_load("100");
    tt_db d;
    tt_db_open(&d);
    tt_beats live = {0}, ref = {0};
    ct_twin_options o;
    ct_twin_options_default(&o);
    o.observer.on_beat = tt_on_beat;
    o.observer.ctx = &live;
    ct_twin *t = NULL;
    ct_error err;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), 0);
    tt_stream(t, d.st, r, "mitdb-100", "obs-100", r->sig.n_samples);
    assert_int_equal(ct_twin_stream_end(t, d.st, "mitdb-100", &err), 0);
    reference_beats(r, &ref);
    check_same_beats(&live, &ref);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_alert WHERE priority = 'high'"), 0);
    print_message("100: %lld alerts (none high)\n", (long long)tt_count(&d, "SELECT count(*) FROM twin_alert"));
    /* 180 Observations taken, each once. */
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_source"), 181);
    assert_int_equal(tt_count(&d, "SELECT sum(n_samples) FROM twin_source"), r->sig.n_samples);
    tt_beats_free(&live);
    tt_beats_free(&ref);
    ct_twin_free(t);
    tt_db_close(&d);
    tt_unload(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_106),
        cmocka_unit_test(test_record_100),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
