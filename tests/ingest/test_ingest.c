/* Tests of the ingest room: a real MIT-BIH record stored and read back,
 * idempotent re-import, and hand-made records for the error paths (each of
 * which must leave the database without a trace of the record). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cardiotwin/ingest.h"
#include "cardiotwin/store.h"
#include "cardiotwin/wfdb.h"

typedef struct fixture {
    char dir[64];
    char db[128];
    ct_store *st;
} fixture;

static const char *mitdb(void)
{
    const char *d = getenv("CARDIOTWIN_MITDB");
    return d && *d ? d : "../shared/data/mitdb";
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ct-ingest.XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->db, sizeof f->db, "%s/ct.db", f->dir);
    ct_error err;
    if (ct_store_open(f->db, &f->st, &err) != CT_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ct_store_close(f->st);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

/* A one-signal format-16 record of n samples 0, 1, 2, ... with a correct
 * header checksum, in dir/name. */
static void make_record(const char *dir, const char *name, int n, const char *comment)
{
    int16_t *s = calloc((size_t)n, sizeof *s);
    for (int i = 0; i < n; i++)
        s[i] = (int16_t)(i * 7 - 20);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.dat", dir, name);
    uint8_t *bytes = malloc((size_t)n * 2);
    for (int i = 0; i < n; i++) {
        bytes[2 * i] = (uint8_t)(s[i] & 0xff);
        bytes[2 * i + 1] = (uint8_t)((uint16_t)s[i] >> 8);
    }
    write_file(path, bytes, (size_t)n * 2);
    char hea[512];
    int len = snprintf(hea, sizeof hea, "%s 1 250 %d\n%s.dat 16 200/mV 16 0 %d %d 0 ECG\n%s\n", name, n, name,
                       s[0], ct_wfdb_checksum16(s, n), comment ? comment : "");
    snprintf(path, sizeof path, "%s/%s.hea", dir, name);
    write_file(path, hea, (size_t)len);
    free(bytes);
    free(s);
}

static void make_annotations(const char *dir, const char *name, const int64_t *samples, size_t n)
{
    ct_wfdb_annotation *a = calloc(n, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        a[i].sample = samples[i];
        a[i].code = CT_ANN_NORMAL;
    }
    ct_error err;
    assert_int_equal(ct_wfdb_ann_write(dir, name, "atr", a, n, &err), CT_OK);
    free(a);
}

static int64_t count_records(ct_store *st, const char *source, const char *name)
{
    ct_store_record r;
    return ct_store_record_find(st, source, name, &r, NULL) == CT_OK ? 1 : 0;
}

static void test_import_mitdb_100(void **state)
{
    fixture *f = *state;
    char rec[512];
    snprintf(rec, sizeof rec, "%s/100", mitdb());
    ct_ingest_result res;
    ct_error err;
    int rc = ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err);
    if (rc != CT_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(res.record, "100");
    assert_string_equal(res.source, "mitdb");
    assert_string_equal(res.patient, "mitdb-100");
    assert_int_equal(res.n_signals, 2);
    assert_string_equal(res.leads, "MLII, V5");
    assert_int_equal(res.n_samples, 650000);
    assert_int_equal(res.n_annotations, 2274);
    assert_int_equal(res.n_beats, 2273);
    assert_int_equal(res.already_present, 0);

    /* "# 69 M 1085 1629 x1" */
    ct_store_patient p;
    assert_int_equal(ct_store_patient_get(f->st, "mitdb-100", &p, &err), CT_OK);
    assert_int_equal(p.age_years, 69);
    assert_string_equal(p.sex, "M");

    /* Stored samples equal the decoded file, across a block boundary. */
    ct_wfdb_header hdr;
    ct_wfdb_signals sig;
    assert_int_equal(ct_wfdb_header_read(rec, &hdr, &err), CT_OK);
    assert_int_equal(ct_wfdb_signals_read(rec, &hdr, &sig, &err), CT_OK);
    ct_store_record r;
    assert_int_equal(ct_store_record_find(f->st, "mitdb", "100", &r, &err), CT_OK);
    ct_store_signal *ss = NULL;
    size_t n_ss = 0;
    assert_int_equal(ct_store_signals_list(f->st, r.id, &ss, &n_ss, &err), CT_OK);
    assert_int_equal(n_ss, 2);
    assert_string_equal(ss[1].description, "V5");
    int16_t buf[5000];
    size_t n_read = 0;
    for (int s = 0; s < 2; s++) {
        assert_int_equal(ct_store_samples_read(f->st, ss[s].id, 3000, buf, 5000, &n_read, &err), CT_OK);
        assert_int_equal(n_read, 5000);
        assert_memory_equal(buf, sig.samples[s] + 3000, sizeof buf);
        assert_int_equal(ct_store_samples_read(f->st, ss[s].id, 649000, buf, 5000, &n_read, &err), CT_OK);
        assert_int_equal(n_read, 1000);
        assert_memory_equal(buf, sig.samples[s] + 649000, 1000 * sizeof buf[0]);
    }
    free(ss);
    ct_wfdb_signals_free(&sig);

    /* Again: nothing written, and said so. */
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err), CT_OK);
    assert_int_equal(res.already_present, 1);
    assert_int_equal(res.patient_resource, 0);
    assert_int_equal(res.n_beats, 2273);
}

/* The audit entries of one action for Patient/id. */
static int count_audit(ct_store *st, const char *action, const char *id)
{
    ct_store_audit_iter *it = NULL;
    ct_store_audit_row row;
    ct_error err;
    int n = 0;
    assert_int_equal(ct_store_audit_iter_open(st, 1, &it, &err), CT_OK);
    while (ct_store_audit_iter_next(it, &row, &err) == 1)
        n += strcmp(row.action, action) == 0 && strcmp(row.resource_type, "Patient") == 0 &&
             strcmp(row.resource_id, id) == 0;
    ct_store_audit_iter_close(it);
    return n;
}

/* Patients found by identifier=system|value, as the API's search runs it. */
static int64_t find_by_identifier(ct_store *st, const char *system, const char *value, char *id, size_t cap)
{
    ct_store_search_value v = {.system = system, .code = value};
    ct_store_search_clause c = {.field = CT_STORE_FIELD_INDEX, .param = "identifier",
                                .kind = CT_STORE_INDEX_TOKEN, .missing = -1, .n_values = 1, .values = &v};
    ct_store_search_query q = {.type = "Patient", .n_clauses = 1, .clauses = &c, .count = 10};
    ct_store_search_result r;
    ct_error err;
    assert_int_equal(ct_store_search(st, &q, &r, &err), CT_OK);
    int64_t total = r.total;
    if (id && r.matches.n)
        snprintf(id, cap, "%s", r.matches.rows[0].id);
    ct_store_search_result_free(&r);
    return total;
}

/* The record's patient is a FHIR Patient, written once and recorded by the
 * import's own audit entry (one import, one entry, naming the Patient's
 * version), found by its identifier; a re-import of a record stored without
 * one adds it; a Patient that exists is left as it is. */
static void test_patient_resource(void **state)
{
    fixture *f = *state;
    char rec[512];
    snprintf(rec, sizeof rec, "%s/100", mitdb());
    ct_ingest_result res;
    ct_error err;
    if (ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err) != CT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(res.patient_resource, 1);
    char *json = NULL;
    int64_t version = 0, updated = 0;
    int deleted = 0;
    assert_int_equal(ct_store_resource_get(f->st, "Patient", "mitdb-100", 0, &json, &version, &updated, &deleted,
                                           &err), CT_OK);
    assert_int_equal(version, 1);
    assert_int_equal(deleted, 0);
    assert_true(strncmp(json, "{\"resourceType\":\"Patient\",\"id\":\"mitdb-100\",\"meta\":{}", 48) == 0);
    assert_non_null(strstr(json, "\"identifier\":[{\"system\":\"https://cardiotwin.example/fhir/mitdb-record\","
                                 "\"value\":\"100\"}]"));
    assert_non_null(strstr(json, "MIT-BIH Arrhythmia Database record 100"));
    assert_non_null(strstr(json, "age 69"));
    assert_non_null(strstr(json, "\"gender\":\"male\""));
    free(json);
    char id[65] = "";
    assert_int_equal(find_by_identifier(f->st, "https://cardiotwin.example/fhir/mitdb-record", "100", id, sizeof id), 1);
    assert_string_equal(id, "mitdb-100");
    assert_int_equal(find_by_identifier(f->st, NULL, "100", NULL, 0), 1);
    assert_int_equal(find_by_identifier(f->st, "https://cardiotwin.example/fhir/mitdb-record", NULL, NULL, 0), 1);
    assert_int_equal(find_by_identifier(f->st, "https://cardiotwin.example/fhir/mitdb-record", "101", NULL, 0), 0);
    assert_int_equal(res.patient_resource_version, 1);
    assert_int_equal(count_audit(f->st, "create", "mitdb-100"), 0);
    assert_int_equal(count_audit(f->st, "import", "mitdb-100"), 1);

    /* Re-import: nothing new, no second entry. */
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err), CT_OK);
    assert_int_equal(res.already_present, 1);
    assert_int_equal(res.patient_resource, 0);
    assert_int_equal(count_audit(f->st, "create", "mitdb-100"), 0);
    assert_int_equal(count_audit(f->st, "import", "mitdb-100"), 1);

    /* A record stored before Patients were made (the resource removed by
     * hand here): the re-import adds it back, audited. */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DELETE FROM resource_search WHERE type = 'Patient';"
                                      "DELETE FROM resource WHERE type = 'Patient';"
                                      "DELETE FROM resource_version WHERE type = 'Patient';",
                                  NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(find_by_identifier(f->st, NULL, "100", NULL, 0), 0);
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err), CT_OK);
    assert_int_equal(res.already_present, 1);
    assert_int_equal(res.patient_resource, 1);
    assert_int_equal(find_by_identifier(f->st, NULL, "100", NULL, 0), 1);
    assert_int_equal(count_audit(f->st, "create", "mitdb-100"), 1);
    assert_int_equal(count_audit(f->st, "import", "mitdb-100"), 1);
}

/* A source whose name cannot be a FHIR id: the record is stored, without
 * a Patient resource. */
static void test_patient_id_not_fhir(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "r2", 4000, "# 50 F");
    char rec[600];
    snprintf(rec, sizeof rec, "%s/r2", f->dir);
    ct_ingest_options o = {.source = "my_db"};
    ct_ingest_result res;
    ct_error err;
    if (ct_ingest_wfdb_record(f->st, rec, &o, &res, &err) != CT_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(res.patient, "my_db-r2");
    assert_int_equal(res.patient_resource, 0);
    assert_int_equal(count_records(f->st, "my_db", "r2"), 1);
    char *json = NULL;
    int64_t v, u;
    int d;
    /* "my_db-r2" is not a FHIR id: no Patient can carry it. */
    assert_int_not_equal(ct_store_resource_get(f->st, "Patient", "my_db-r2", 0, &json, &v, &u, &d, &err), CT_OK);
    assert_int_equal(count_audit(f->st, "create", "my_db-r2"), 0);
    /* Another source with a FHIR-id name gets its own identifier system. */
    o.source = "local";
    if (ct_ingest_wfdb_record(f->st, rec, &o, &res, &err) != CT_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(res.patient_resource, 1);
    assert_int_equal(find_by_identifier(f->st, "https://cardiotwin.example/fhir/local-record", "r2", NULL, 0), 1);
    assert_int_equal(ct_store_resource_get(f->st, "Patient", "local-r2", 0, &json, &v, &u, &d, &err), CT_OK);
    assert_non_null(strstr(json, "WFDB record r2 of source local"));
    assert_non_null(strstr(json, "\"gender\":\"female\""));
    free(json);
}

static void test_source_override_and_progress(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "r1", 9000, "# Age: 54 Sex: F");
    int64_t at[] = {10, 400, 8999};
    make_annotations(f->dir, "r1", at, 3);
    char rec[256];
    snprintf(rec, sizeof rec, "%s/r1", f->dir);
    ct_ingest_options opt;
    memset(&opt, 0, sizeof opt);
    opt.source = "ward7";
    ct_ingest_result res;
    ct_error err;
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, &opt, &res, &err), CT_OK);
    assert_string_equal(res.patient, "ward7-r1");
    assert_int_equal(res.n_beats, 3);
    ct_store_patient p;
    assert_int_equal(ct_store_patient_get(f->st, "ward7-r1", &p, &err), CT_OK);
    assert_int_equal(p.age_years, 54);
    assert_string_equal(p.sex, "F");
}

static void on_progress(void *ctx, int64_t done, int64_t total)
{
    int64_t *seen = ctx;
    assert_true(done > seen[0]);
    assert_true(done <= total);
    seen[0] = done;
    seen[1] = total;
}

static void test_progress_reaches_total(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "r2", 123457, "");
    char rec[256];
    snprintf(rec, sizeof rec, "%s/r2", f->dir);
    int64_t seen[2] = {0, 0};
    ct_ingest_options opt;
    memset(&opt, 0, sizeof opt);
    opt.progress = on_progress;
    opt.progress_ctx = seen;
    ct_ingest_result res;
    ct_error err;
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, &opt, &res, &err), CT_OK);
    assert_int_equal(seen[0], 123457);
    assert_int_equal(seen[1], 123457);
    assert_int_equal(res.n_annotations, 0);
}

static void test_annotation_outside_record_refused(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "r3", 1000, "");
    int64_t at[] = {10, 1000};
    make_annotations(f->dir, "r3", at, 2);
    char rec[256];
    snprintf(rec, sizeof rec, "%s/r3", f->dir);
    ct_ingest_result res;
    ct_error err;
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "record r3"));
    assert_non_null(strstr(err.msg, "sample 1000"));
    const char *src = strrchr(f->dir, '/') + 1;
    assert_int_equal(count_records(f->st, src, "r3"), 0);
    ct_store_patient p;
    char pid[160];
    snprintf(pid, sizeof pid, "%s-r3", src);
    assert_int_equal(ct_store_patient_get(f->st, pid, &p, NULL), CT_ENOTFOUND);
}

static void test_required_annotations_missing(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "r4", 500, "");
    char rec[256];
    snprintf(rec, sizeof rec, "%s/r4", f->dir);
    ct_ingest_options opt;
    memset(&opt, 0, sizeof opt);
    opt.require_annotations = 1;
    ct_ingest_result res;
    ct_error err;
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, &opt, &res, &err), CT_ENOTFOUND);
    assert_non_null(strstr(err.msg, "r4"));
    assert_int_equal(count_records(f->st, strrchr(f->dir, '/') + 1, "r4"), 0);
}

static void test_changed_files_under_stored_name_refused(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "r5", 500, "");
    char rec[256];
    snprintf(rec, sizeof rec, "%s/r5", f->dir);
    ct_ingest_result res;
    ct_error err;
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err), CT_OK);
    make_record(f->dir, "r5", 600, "");
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err), CT_EEXIST);
    assert_non_null(strstr(err.msg, "already stored from other files"));
    ct_store_record r;
    assert_int_equal(ct_store_record_find(f->st, strrchr(f->dir, '/') + 1, "r5", &r, &err), CT_OK);
    assert_int_equal(r.n_samples, 500);
}

static void test_checksum_mismatch_writes_nothing(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "r6", 700, "");
    char path[256];
    snprintf(path, sizeof path, "%s/r6.dat", f->dir);
    FILE *fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 301, SEEK_SET);
    fputc(0x40, fp);
    fclose(fp);
    char rec[256];
    snprintf(rec, sizeof rec, "%s/r6", f->dir);
    ct_ingest_result res;
    ct_error err;
    assert_int_equal(ct_ingest_wfdb_record(f->st, rec, NULL, &res, &err), CT_ECHECKSUM);
    assert_non_null(strstr(err.msg, "r6"));
    assert_int_equal(count_records(f->st, strrchr(f->dir, '/') + 1, "r6"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_import_mitdb_100, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patient_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(test_patient_id_not_fhir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_override_and_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress_reaches_total, setup, teardown),
        cmocka_unit_test_setup_teardown(test_annotation_outside_record_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_annotations_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_files_under_stored_name_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_mismatch_writes_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
