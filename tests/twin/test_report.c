/* Alert reports as stored units: a store that fails in the middle of a
 * report leaves nothing of it behind and the twin writes it whole once the
 * store is back; the outbox holds one row per report version; a restart
 * ends the alerts left open and resumes the streams; acknowledgment is
 * audited once; patients are served in parallel and a patient held too
 * long answers "busy" instead of blocking. Record 106 supplies the alerts. */
#include <pthread.h>

#include "twin_test_util.h"

#define FS 360
#define OBS (10 * FS)
#define UPSTREAM "https://upstream.example/fhir"

static ct_twin *twin_new(tt_db *d, const char *upstream, long lock_ms, tt_beats *obs)
{
    ct_twin_options o;
    ct_twin_options_default(&o);
    o.upstream_base_url = upstream;
    if (lock_ms)
        o.lock_timeout_ms = lock_ms;
    if (obs) {
        o.observer.on_beat = tt_on_beat;
        o.observer.on_alert = tt_on_alert;
        o.observer.ctx = obs;
    }
    ct_twin *t = NULL;
    ct_error err;
    if (ct_twin_new(&o, d->st, &t, &err) != 0)
        fail_msg("%s", err.msg);
    return t;
}

static int64_t at_ms(int64_t frame)
{
    return TT_T0_MS + frame * 1000 / FS;
}

/* Observation k of record r for patient. */
static int obs_k(ct_twin *t, ct_store *st, const tt_record *r, const char *patient, int64_t k,
                 ct_twin_ingest_result *res, ct_error *err)
{
    char id[64];
    snprintf(id, sizeof id, "%s-%lld", patient, (long long)k);
    return tt_ingest(t, st, r, patient, id, k * OBS, OBS, at_ms(k * OBS), res, err);
}

static int64_t rows_of_reports(tt_db *d)
{
    return tt_count(d, "SELECT count(*) FROM resource_version WHERE type IN ('DiagnosticReport', 'Observation',"
                       " 'Provenance')") +
           tt_count(d, "SELECT count(*) FROM twin_alert") + tt_count(d, "SELECT count(*) FROM twin_outbox") +
           tt_count(d, "SELECT count(*) FROM audit_log WHERE action = 'alert'") +
           tt_count(d, "SELECT count(*) FROM resource_search WHERE type <> 'Device'");
}

/* Every stored version of every report is whole: its results and
 * Provenance exist, its alert row names it, its audit entry and outbox row
 * are there. */
static void check_whole(tt_db *d)
{
    int64_t versions = tt_count(d, "SELECT ifnull(sum(report_version), 0) FROM twin_alert");
    assert_true(versions > 0);
    assert_int_equal(tt_count(d, "SELECT count(*) FROM resource_version WHERE type = 'DiagnosticReport'"), versions);
    assert_int_equal(tt_count(d, "SELECT count(*) FROM resource_version WHERE type = 'Provenance'"), versions);
    assert_int_equal(tt_count(d, "SELECT count(*) FROM audit_log WHERE action = 'alert'"), versions);
    assert_int_equal(tt_count(d, "SELECT count(*) FROM twin_outbox WHERE resource_type = 'DiagnosticReport'"),
                     versions);
    /* Each report version's results exist at the version its Provenance names. */
    assert_int_equal(tt_count(d, "SELECT count(*) FROM twin_alert a WHERE NOT EXISTS (SELECT 1 FROM resource r"
                                 " WHERE r.type = 'DiagnosticReport' AND r.id = a.report_id AND"
                                 " r.version = a.report_version)"),
                     0);
    assert_true(tt_count(d, "SELECT count(*) FROM resource_version WHERE type = 'Observation'") >= 2 * versions);
}

static void test_atomic_reports(void **state)
{
    (void)state;
    tt_record *r = tt_load("106");
    tt_db d;
    tt_db_open(&d);
    ct_twin *t = twin_new(&d, UPSTREAM, 0, NULL);
    const int64_t base = rows_of_reports(&d);
    /* The store fails in the middle of a report (its outbox row), then at
     * its last step (the audit entry). */
    tt_exec(&d, "CREATE TRIGGER fail_outbox BEFORE INSERT ON twin_outbox BEGIN"
                " SELECT RAISE(ABORT, 'injected failure'); END");
    ct_twin_ingest_result res;
    ct_error err;
    int64_t k = 0, failed_at = -1;
    for (; k < 60; k++) {
        assert_int_equal(obs_k(t, d.st, r, "p106", k, &res, &err), 0);
        if (res.report_error) {
            failed_at = k;
            break;
        }
    }
    assert_true(failed_at >= 0);
    print_message("first report refused at Observation %lld: %s\n", (long long)failed_at, res.report_error_msg);
    assert_non_null(strstr(res.report_error_msg, "injected failure"));
    assert_true(res.reports_pending >= 1);
    assert_int_equal(rows_of_reports(&d), base);
    tt_exec(&d, "DROP TRIGGER fail_outbox");
    tt_exec(&d, "CREATE TRIGGER fail_audit BEFORE INSERT ON audit_log WHEN NEW.action = 'alert' BEGIN"
                " SELECT RAISE(ABORT, 'injected failure'); END");
    /* The ECG keeps flowing; the report waits, whole or nothing. */
    for (k = failed_at + 1; k < failed_at + 4; k++) {
        assert_int_equal(obs_k(t, d.st, r, "p106", k, &res, &err), 0);
        assert_int_equal(res.report_error != 0, 1);
        assert_true(res.reports_pending >= 1);
        assert_int_equal(rows_of_reports(&d), base);
    }
    ct_twin_live v;
    assert_int_equal(ct_twin_live_read(t, "p106", 1, &v, &err), 0);
    assert_true(v.pending >= 1);
    ct_twin_live_free(&v);
    size_t pending = 0;
    assert_int_not_equal(ct_twin_flush(t, d.st, &pending, &err), 0);
    assert_true(pending >= 1);
    assert_int_equal(rows_of_reports(&d), base);
    /* The store recovers: everything the policy said is written, in order. */
    tt_exec(&d, "DROP TRIGGER fail_audit");
    assert_int_equal(ct_twin_flush(t, d.st, &pending, &err), 0);
    assert_int_equal(pending, 0);
    check_whole(&d);
    for (; k < 180; k++) {
        assert_int_equal(obs_k(t, d.st, r, "p106", k, &res, &err), 0);
        assert_int_equal(res.report_error, 0);
    }
    assert_int_equal(ct_twin_stream_end(t, d.st, "p106", &err), 0);
    check_whole(&d);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_alert WHERE state = 'open'"), 0);

    /* The outbox: oldest first, and a delivered row is not due again. */
    ct_store_twin_outbox *ob = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_twin_outbox_due(d.st, INT64_MAX, 1000, &ob, &n, &err), 0);
    assert_int_equal((int64_t)n, tt_count(&d, "SELECT count(*) FROM twin_outbox"));
    assert_string_equal(ob[0].resource_type, "DiagnosticReport");
    assert_int_equal(ob[0].resource_version, 1);
    assert_int_equal(ob[0].attempts, 0);
    assert_int_equal(ct_store_twin_outbox_mark(d.st, ob[0].id, "sent", 0, NULL, &err), 0);
    assert_int_equal(ct_store_twin_outbox_mark(d.st, ob[1].id, "pending", INT64_MAX - 1, "HTTP 503", &err), 0);
    assert_int_equal(ct_store_twin_outbox_mark(d.st, ob[1].id, "lost", 0, NULL, &err), CT_EINVAL);
    free(ob);
    assert_int_equal(ct_store_twin_outbox_due(d.st, INT64_MAX - 2, 1000, &ob, &n, &err), 0);
    assert_int_equal((int64_t)n, tt_count(&d, "SELECT count(*) FROM twin_outbox") - 2);
    free(ob);
    assert_int_equal(tt_count(&d, "SELECT attempts FROM twin_outbox WHERE last_error = 'HTTP 503'"), 1);
    /* Queuing a version twice delivers it once. */
    int64_t before = tt_count(&d, "SELECT count(*) FROM twin_outbox");
    ct_store_twin_alert *al = NULL;
    assert_int_equal(ct_store_twin_alerts_list(d.st, NULL, 0, 1, &al, &n, &err), 0);
    assert_int_equal(ct_store_twin_outbox_add(d.st, "DiagnosticReport", al[0].report_id, 1, &err), 0);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_outbox"), before);
    free(al);

    ct_twin_free(t);
    tt_db_close(&d);
    tt_unload(r);
}

static void test_restart_and_acknowledge(void **state)
{
    (void)state;
    tt_record *r = tt_load("106");
    tt_db d;
    tt_db_open(&d);
    ct_twin *t = twin_new(&d, NULL, 0, NULL);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM resource WHERE type = 'Device'"), 1);
    ct_twin_ingest_result res;
    ct_error err;
    int64_t k = 0;
    for (; k < 180; k++) {
        assert_int_equal(obs_k(t, d.st, r, "p106", k, &res, &err), 0);
        if (tt_count(&d, "SELECT count(*) FROM twin_alert WHERE state = 'open'") > 0)
            break;
    }
    assert_true(k < 180);
    k++;
    ct_store_twin_alert *al = NULL;
    size_t n = 0;
    assert_int_equal(ct_store_twin_alerts_list(d.st, "p106", 1, 10, &al, &n, &err), 0);
    assert_int_equal(n, 1);
    ct_store_twin_alert open = al[0];
    free(al);
    print_message("open at Observation %lld: alert %lld %s\n", (long long)k, (long long)open.id, open.summary);

    /* Acknowledged once, audited once; the live view shows it. */
    ct_audit_actor nurse = {"nurse-1", "clinician", "10.0.0.7"};
    assert_int_equal(ct_twin_acknowledge(t, d.st, open.id, &nurse, &err), 0);
    assert_int_equal(ct_twin_acknowledge(t, d.st, open.id, &nurse, &err), CT_EEXIST);
    assert_non_null(strstr(err.msg, "already acknowledged by nurse-1"));
    assert_int_equal(ct_twin_acknowledge(t, d.st, 999999, &nurse, &err), CT_ENOTFOUND);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM audit_log WHERE action = 'acknowledge' AND"
                                  " actor = 'nurse-1' AND actor_role = 'clinician'"),
                     1);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_alert WHERE acknowledged_by = 'nurse-1'"), 1);
    ct_twin_live v;
    assert_int_equal(ct_twin_live_read(t, "p106", 0, &v, &err), 0);
    assert_int_equal(v.n_alerts, 1);
    assert_int_equal(v.alerts[0].id, open.id);
    assert_int_equal(v.alerts[0].acknowledged, 1);
    assert_string_equal(v.alerts[0].report_id, open.report_id);
    ct_twin_live_free(&v);

    /* Another patient whose gateway went quiet two days ago. */
    assert_int_equal(obs_k(t, d.st, r, "quiet", 0, &res, &err), 0);
    tt_exec(&d, "UPDATE twin_stream SET updated_ms = updated_ms - 2 * 86400000 WHERE patient = 'quiet'");

    /* The service stops with the alert open and the stream live. */
    ct_twin_free(t);
    t = twin_new(&d, UPSTREAM, 0, NULL);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_stream WHERE patient = 'quiet' AND state = 'ended'"), 1);
    assert_int_equal(ct_twin_live_read(t, "quiet", 0, &v, &err), CT_ENOTFOUND);
    assert_int_equal(obs_k(t, d.st, r, "quiet", 1, &res, &err), 0);
    assert_int_equal(res.verdict, CT_TWIN_STARTED);
    assert_int_equal(res.stream_seq, 2);
    ct_store_twin_alert after;
    assert_int_equal(ct_store_twin_alert_get(d.st, open.id, &after, &err), 0);
    assert_string_equal(after.state, "ended");
    assert_int_equal(after.report_version, open.report_version + 1);
    assert_int_equal(after.end_sample, k * OBS);
    char *body = NULL;
    assert_int_equal(ct_store_resource_get(d.st, "DiagnosticReport", open.report_id, 0, &body, NULL, NULL, NULL,
                                           &err), 0);
    json_t *j = json_loads(body, 0, NULL);
    free(body);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "final");
    assert_non_null(strstr(json_string_value(json_object_get(j, "conclusion")), "restarted"));
    assert_non_null(json_object_get(json_object_get(j, "effectivePeriod"), "end"));
    const char *hr = json_string_value(json_object_get(json_array_get(json_object_get(j, "result"), 0), "reference"));
    assert_non_null(hr);
    assert_int_equal(ct_store_resource_get(d.st, "Observation", hr + 12, 0, &body, NULL, NULL, NULL, &err), 0);
    assert_non_null(strstr(body, "\"status\":\"final\""));
    free(body);
    json_decref(j);
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM audit_log WHERE action = 'alert' AND resource_id = '%s'",
             open.report_id);
    assert_int_equal(tt_count(&d, sql), after.report_version);
    snprintf(sql, sizeof sql, "SELECT count(*) FROM twin_outbox WHERE resource_id = '%s' AND resource_version = %lld",
             open.report_id, (long long)after.report_version);
    assert_int_equal(tt_count(&d, sql), 1);
    /* The stream goes on where it stopped. */
    assert_int_equal(ct_twin_live_read(t, "p106", 0, &v, &err), 0);
    assert_int_equal(v.stream_seq, 1);
    assert_int_equal(v.next_sample, k * OBS);
    assert_int_equal(v.n_alerts, 0);
    ct_twin_live_free(&v);
    assert_int_equal(obs_k(t, d.st, r, "p106", k, &res, &err), 0);
    assert_int_equal(res.verdict, CT_TWIN_APPENDED);
    assert_int_equal(res.stream_seq, 1);
    assert_int_equal(obs_k(t, d.st, r, "p106", k - 1, &res, &err), 0);
    assert_int_equal(res.verdict, CT_TWIN_DUPLICATE);
    /* A second Device is not written by a second start. */
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM resource_version WHERE type = 'Device'"), 1);
    ct_twin_free(t);
    tt_db_close(&d);
    tt_unload(r);
}

/* ---- threads ---------------------------------------------------------------------- */

#define N_THREADS 4

typedef struct worker {
    const char *path;
    ct_twin *t;
    const tt_record *r;
    char patient[16];
    int64_t n_obs;
    int rc;
    char msg[512];
} worker;

typedef struct per_patient {
    tt_beats b[N_THREADS];
} per_patient;

static void pp_on_beat(void *ctx, const char *patient, const ct_ecg_beat *b)
{
    per_patient *pp = ctx;
    int i = patient[1] - '0';
    if (i >= 0 && i < N_THREADS)
        tt_on_beat(&pp->b[i], patient, b);
}

static void *work(void *arg)
{
    worker *w = arg;
    ct_store *st = NULL;
    ct_error err;
    if ((w->rc = ct_store_open(w->path, &st, &err)) != 0) {
        snprintf(w->msg, sizeof w->msg, "%s", err.msg);
        return NULL;
    }
    for (int64_t k = 0; k < w->n_obs && w->rc == 0; k++) {
        ct_twin_ingest_result res;
        w->rc = obs_k(w->t, st, w->r, w->patient, k, &res, &err);
        if (w->rc)
            snprintf(w->msg, sizeof w->msg, "%s", err.msg);
        else if (res.report_error) {
            snprintf(w->msg, sizeof w->msg, "%s", res.report_error_msg);
            w->rc = res.report_error;
        }
    }
    ct_store_close(st);
    return NULL;
}

static void test_parallel_patients(void **state)
{
    (void)state;
    tt_record *r = tt_load("106");
    tt_db d;
    tt_db_open(&d);
    per_patient pp;
    memset(&pp, 0, sizeof pp);
    ct_twin_options o;
    ct_twin_options_default(&o);
    o.observer.on_beat = pp_on_beat;
    o.observer.ctx = &pp;
    ct_twin *t = NULL;
    ct_error err;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), 0);
    pthread_t th[N_THREADS];
    worker w[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].path = d.path;
        w[i].t = t;
        w[i].r = r;
        w[i].n_obs = 60;
        snprintf(w[i].patient, sizeof w[i].patient, "c%d", i);
        assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        if (w[i].rc)
            fail_msg("%s: %s", w[i].patient, w[i].msg);
    }
    /* The same ECG gives the same beats, whoever ran beside it. */
    assert_true(pp.b[0].n > 500);
    for (int i = 1; i < N_THREADS; i++) {
        assert_int_equal(pp.b[i].n, pp.b[0].n);
        assert_memory_equal(pp.b[i].sample, pp.b[0].sample, pp.b[0].n * sizeof *pp.b[0].sample);
        assert_memory_equal(pp.b[i].cls, pp.b[0].cls, pp.b[0].n);
    }
    assert_int_equal(tt_count(&d, "SELECT count(DISTINCT patient) FROM twin_stream"), N_THREADS);
    assert_int_equal(tt_count(&d, "SELECT count(*) FROM twin_source"), N_THREADS * 60);
    char (*ids)[CT_FHIR_ID_MAX + 1] = NULL;
    size_t n = 0;
    assert_int_equal(ct_twin_patients(t, &ids, &n, &err), 0);
    assert_int_equal(n, N_THREADS);
    assert_string_equal(ids[0], "c0");
    free(ids);
    for (int i = 0; i < N_THREADS; i++)
        tt_beats_free(&pp.b[i]);
    ct_twin_free(t);
    tt_db_close(&d);
    tt_unload(r);
}

typedef struct busy_arg {
    ct_twin *t;
    const char *path;
    const tt_record *r;
    int rc;
    char msg[512];
} busy_arg;

static void *busy_work(void *arg)
{
    busy_arg *b = arg;
    ct_store *st = NULL;
    ct_error err;
    /* No cmocka assertion here: they jump, and this is another thread. */
    if ((b->rc = ct_store_open(b->path, &st, &err)) != 0) {
        snprintf(b->msg, sizeof b->msg, "%s", err.msg);
        return NULL;
    }
    ct_twin_ingest_result res;
    b->rc = obs_k(b->t, st, b->r, "p1", 0, &res, &err);
    snprintf(b->msg, sizeof b->msg, "%s", b->rc ? err.msg : "");
    ct_store_close(st);
    return NULL;
}

static void test_busy_patient(void **state)
{
    (void)state;
    tt_record *r = tt_load("100");
    tt_db d;
    tt_db_open(&d);
    ct_twin *t = twin_new(&d, NULL, 200, NULL);
    ct_fhir_ecg e;
    tt_observation(r, "p1", 0, OBS, at_ms(0), NULL, 0, 0, &e);
    ct_twin_ticket *tk = NULL;
    ct_twin_ingest_result res;
    ct_error err;
    assert_int_equal(ct_twin_ecg_begin(t, d.st, &e, "held", &tk, &res, &err), 0);
    busy_arg b = {t, d.path, r, 0, ""};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, busy_work, &b), 0);
    pthread_join(th, NULL);
    assert_int_equal(b.rc, CT_ELIMIT);
    assert_non_null(strstr(b.msg, "busy"));
    assert_int_equal(ct_twin_ecg_end(tk, d.st, 0, &res, &err), 0);
    assert_int_equal(pthread_create(&th, NULL, busy_work, &b), 0);
    pthread_join(th, NULL);
    assert_int_equal(b.rc, 0);
    ct_fhir_ecg_free(&e);
    ct_twin_free(t);
    tt_db_close(&d);
    tt_unload(r);
}

static void test_options(void **state)
{
    (void)state;
    tt_db d;
    tt_db_open(&d);
    ct_twin_options o;
    ct_twin *t = NULL;
    ct_error err;
    ct_twin_options_default(&o);
    o.gap_bridge_max_s = 0;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "gap_bridge_max_s"));
    ct_twin_options_default(&o);
    o.align_tolerance_samples = 0.75;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), CT_EINVAL);
    assert_non_null(strstr(err.msg, "align_tolerance_samples"));
    ct_twin_options_default(&o);
    o.upstream_base_url = "ftp://x";
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), CT_EINVAL);
    assert_null(t);
    ct_twin_options_default(&o);
    o.max_patients = 1;
    assert_int_equal(ct_twin_new(&o, d.st, &t, &err), 0);
    tt_record *r = tt_load("100");
    ct_twin_ingest_result res;
    assert_int_equal(tt_ingest(t, d.st, r, "a", "a0", 0, OBS, at_ms(0), &res, &err), 0);
    assert_int_equal(tt_ingest(t, d.st, r, "b", "b0", 0, OBS, at_ms(0), &res, &err), CT_ELIMIT);
    assert_non_null(strstr(err.msg, "monitors 1 patients"));
    assert_int_equal(ct_twin_live_read(t, "nobody", 0, &(ct_twin_live){0}, &err), CT_ENOTFOUND);
    assert_int_equal(ct_twin_stream_end(t, d.st, "b", &err), CT_ENOTFOUND);
    assert_true(ct_twin_patient_memory_bytes(t, "a") > 0);
    tt_unload(r);
    ct_twin_free(t);
    tt_db_close(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_atomic_reports),
        cmocka_unit_test(test_restart_and_acknowledge),
        cmocka_unit_test(test_parallel_patients),
        cmocka_unit_test(test_busy_patient),
        cmocka_unit_test(test_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
