/* Tests of ids, references, the date/dateTime/instant grammars at every
 * precision and zone (and the impossible ones: 2026-02-30, 24:00, missing
 * zone), instant formatting, and the search comparison of date ranges. */
#include "fhir_test_util.h"

#define H 3600000LL
#define D (24 * H)

static void test_ids(void **state)
{
    (void)state;
    assert_int_equal(ct_fhir_id_valid("abc-DEF.123", 11), 1);
    char id64[65];
    memset(id64, 'a', 64);
    id64[64] = '\0';
    assert_int_equal(ct_fhir_id_valid(id64, 64), 1);
    assert_int_equal(ct_fhir_id_valid(id64, 65), 0);
    assert_int_equal(ct_fhir_id_valid("", 0), 0);
    assert_int_equal(ct_fhir_id_valid("a_b", 3), 0);
    assert_int_equal(ct_fhir_id_valid("a/b", 3), 0);
    assert_int_equal(ct_fhir_id_valid("a b", 3), 0);
    assert_int_equal(ct_fhir_id_valid("\xc3\xa9", 2), 0);
    assert_int_equal(ct_fhir_id_valid(NULL, 0), 0);
}

static void ref_ok(const char *s, ct_fhir_ref_kind kind, const char *type, const char *id,
                   const char *version, const char *base)
{
    ct_fhir_ref r;
    ct_fhir_issue is;
    int rc = ct_fhir_ref_parse(s, "X.ref", &r, &is);
    if (rc)
        fail_msg("%s refused: %s", s, is.diagnostics);
    assert_int_equal(r.kind, kind);
    assert_string_equal(r.type, type);
    assert_string_equal(r.id, id);
    assert_string_equal(r.version, version);
    assert_string_equal(r.base, base);
}

static void ref_bad(const char *s)
{
    ct_fhir_ref r;
    ct_fhir_issue is;
    ct_fhir_issue_clear(&is);
    int rc = ct_fhir_ref_parse(s, "Observation.subject.reference", &r, &is);
    if (rc != CT_EFORMAT)
        fail_msg("%s accepted", s);
    assert_int_equal(is.http_status, 422);
    assert_string_equal(is.expression, "Observation.subject.reference");
    assert_string_equal(r.id, "");
}

static void test_references(void **state)
{
    (void)state;
    ref_ok("Patient/123", CT_FHIR_REF_RELATIVE, "Patient", "123", "", "");
    ref_ok("Patient/123/_history/2", CT_FHIR_REF_RELATIVE, "Patient", "123", "2", "");
    ref_ok("urn:uuid:0b8f3b0e-6e5c-4a4e-9e0b-2f1c3d4e5f60", CT_FHIR_REF_URN_UUID, "",
           "0b8f3b0e-6e5c-4a4e-9e0b-2f1c3d4e5f60", "", "");
    ref_ok("#dev1", CT_FHIR_REF_CONTAINED, "", "dev1", "", "");
    ref_ok("https://h.example/fhir/Patient/9", CT_FHIR_REF_ABSOLUTE, "Patient", "9", "",
           "https://h.example/fhir");
    ref_ok("http://h/fhir/r4/Observation/o.1/_history/7", CT_FHIR_REF_ABSOLUTE, "Observation",
           "o.1", "7", "http://h/fhir/r4");
    ref_ok("https://h/Device/d", CT_FHIR_REF_ABSOLUTE, "Device", "d", "", "https://h");
    ref_bad("");
    ref_bad("Patient");
    ref_bad("Patient/");
    ref_bad("/123");
    ref_bad("patient/123");        /* types start upper-case */
    ref_bad("Patient/1 2");
    ref_bad("Patient/123/_history");
    ref_bad("Patient/123/_hist/2");
    ref_bad("Patient/123/extra");
    ref_bad("Pat1ent/123");
    ref_bad("urn:uuid:not-a-uuid");
    ref_bad("urn:uuid:0b8f3b0e-6e5c-4a4e-9e0b-2f1c3d4e5f6");
    ref_bad("#");
    ref_bad("https://h");
    ref_bad("https:///Patient/1");
    ref_bad("ftp://h/Patient/1");
}

static void dt_ok(const char *s, ct_fhir_dt_kind kind, int64_t start, int64_t end,
                  ct_fhir_precision prec)
{
    ct_fhir_datetime dt;
    ct_fhir_issue is;
    int rc = ct_fhir_datetime_parse(s, strlen(s), kind, "X.t", &dt, &is);
    if (rc)
        fail_msg("\"%s\" refused: %s", s, is.diagnostics);
    if (dt.start_ms != start || dt.end_ms != end)
        fail_msg("\"%s\": [%lld, %lld), want [%lld, %lld)", s, (long long)dt.start_ms,
                 (long long)dt.end_ms, (long long)start, (long long)end);
    assert_int_equal(dt.precision, prec);
}

static void dt_bad(const char *s, ct_fhir_dt_kind kind, const char *frag)
{
    ct_fhir_datetime dt;
    ct_fhir_issue is;
    ct_fhir_issue_clear(&is);
    int rc = ct_fhir_datetime_parse(s, strlen(s), kind, "Observation.effectiveDateTime", &dt, &is);
    expect_issue(rc, &is, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, "Observation.effectiveDateTime", frag);
}

static void test_datetime_precisions(void **state)
{
    (void)state;
    int64_t y2026 = ct_fhir_utc_ms(2026, 1, 1, 0, 0, 0, 0);
    assert_true(y2026 == 1767225600000LL); /* date -u -d 2026-01-01 +%s */
    assert_true(ct_fhir_utc_ms(1970, 1, 1, 0, 0, 0, 0) == 0);
    assert_true(ct_fhir_utc_ms(2000, 3, 1, 0, 0, 0, 0) == 951868800000LL);
    assert_true(ct_fhir_utc_ms(1969, 12, 31, 23, 59, 59, 999) == -1);
    dt_ok("2026", CT_FHIR_DT_DATETIME, y2026, ct_fhir_utc_ms(2027, 1, 1, 0, 0, 0, 0), CT_FHIR_PREC_YEAR);
    dt_ok("2026-02", CT_FHIR_DT_DATE, ct_fhir_utc_ms(2026, 2, 1, 0, 0, 0, 0),
          ct_fhir_utc_ms(2026, 3, 1, 0, 0, 0, 0), CT_FHIR_PREC_MONTH);
    dt_ok("2024-02", CT_FHIR_DT_DATE, ct_fhir_utc_ms(2024, 2, 1, 0, 0, 0, 0),
          ct_fhir_utc_ms(2024, 2, 1, 0, 0, 0, 0) + 29 * D, CT_FHIR_PREC_MONTH);
    dt_ok("2026-12", CT_FHIR_DT_DATETIME, ct_fhir_utc_ms(2026, 12, 1, 0, 0, 0, 0),
          ct_fhir_utc_ms(2027, 1, 1, 0, 0, 0, 0), CT_FHIR_PREC_MONTH);
    dt_ok("2026-11-22", CT_FHIR_DT_DATETIME, ct_fhir_utc_ms(2026, 11, 22, 0, 0, 0, 0),
          ct_fhir_utc_ms(2026, 11, 23, 0, 0, 0, 0), CT_FHIR_PREC_DAY);
    dt_ok("2024-02-29", CT_FHIR_DT_DATE, ct_fhir_utc_ms(2024, 2, 29, 0, 0, 0, 0),
          ct_fhir_utc_ms(2024, 3, 1, 0, 0, 0, 0), CT_FHIR_PREC_DAY);
    dt_ok("2000-02-29", CT_FHIR_DT_DATE, ct_fhir_utc_ms(2000, 2, 29, 0, 0, 0, 0),
          ct_fhir_utc_ms(2000, 3, 1, 0, 0, 0, 0), CT_FHIR_PREC_DAY);
    int64_t t = ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 0);
    dt_ok("2026-11-22T10:00:00Z", CT_FHIR_DT_DATETIME, t, t + 1000, CT_FHIR_PREC_SECOND);
    dt_ok("2026-11-22T10:00:00Z", CT_FHIR_DT_INSTANT, t, t + 1000, CT_FHIR_PREC_SECOND);
    dt_ok("2026-11-22T11:00:00+01:00", CT_FHIR_DT_DATETIME, t, t + 1000, CT_FHIR_PREC_SECOND);
    dt_ok("2026-11-22T05:30:00-04:30", CT_FHIR_DT_DATETIME, t, t + 1000, CT_FHIR_PREC_SECOND);
    dt_ok("2026-11-23T00:00:00+14:00", CT_FHIR_DT_DATETIME, t, t + 1000, CT_FHIR_PREC_SECOND);
    dt_ok("2026-11-22T10:00:00-00:00", CT_FHIR_DT_DATETIME, t, t + 1000, CT_FHIR_PREC_SECOND);
    dt_ok("2026-11-22T10:00:00.1Z", CT_FHIR_DT_INSTANT, t + 100, t + 200, CT_FHIR_PREC_FRACTION);
    dt_ok("2026-11-22T10:00:00.12Z", CT_FHIR_DT_INSTANT, t + 120, t + 130, CT_FHIR_PREC_FRACTION);
    dt_ok("2026-11-22T10:00:00.123Z", CT_FHIR_DT_INSTANT, t + 123, t + 124, CT_FHIR_PREC_FRACTION);
    dt_ok("2026-11-22T10:00:00.123456789Z", CT_FHIR_DT_INSTANT, t + 123, t + 124, CT_FHIR_PREC_FRACTION);
    /* A leap second counts as the first second of the next minute. */
    dt_ok("2016-12-31T23:59:60Z", CT_FHIR_DT_INSTANT, ct_fhir_utc_ms(2017, 1, 1, 0, 0, 0, 0),
          ct_fhir_utc_ms(2017, 1, 1, 0, 0, 1, 0), CT_FHIR_PREC_SECOND);
    /* Crossing the date line backwards. */
    dt_ok("2026-01-01T00:30:00+01:00", CT_FHIR_DT_DATETIME, ct_fhir_utc_ms(2025, 12, 31, 23, 30, 0, 0),
          ct_fhir_utc_ms(2025, 12, 31, 23, 30, 1, 0), CT_FHIR_PREC_SECOND);
    /* Minute precision only in search values; there '+' may arrive as ' '. */
    dt_ok("2026-11-22T10:00Z", CT_FHIR_DT_SEARCH, t, t + 60000, CT_FHIR_PREC_MINUTE);
    dt_ok("2026-11-22T11:00:00 01:00", CT_FHIR_DT_SEARCH, t, t + 1000, CT_FHIR_PREC_SECOND);
    dt_ok("0001-01-01", CT_FHIR_DT_DATE, ct_fhir_utc_ms(1, 1, 1, 0, 0, 0, 0),
          ct_fhir_utc_ms(1, 1, 2, 0, 0, 0, 0), CT_FHIR_PREC_DAY);
    ct_fhir_datetime dt;
    assert_int_equal(ct_fhir_datetime_parse("2026-11-22T11:00:00+01:00", 25, CT_FHIR_DT_DATETIME, NULL, &dt, NULL), 0);
    assert_int_equal(dt.has_tz, 1);
    assert_int_equal(dt.tz_offset_min, 60);
}

static void test_datetime_invalid(void **state)
{
    (void)state;
    dt_bad("2026-02-30", CT_FHIR_DT_DATE, "day does not exist");
    dt_bad("2026-02-29", CT_FHIR_DT_DATE, "day does not exist");
    dt_bad("2100-02-29", CT_FHIR_DT_DATE, "day does not exist");
    dt_bad("2026-04-31", CT_FHIR_DT_DATETIME, "day does not exist");
    dt_bad("2026-13", CT_FHIR_DT_DATETIME, "month");
    dt_bad("2026-00-10", CT_FHIR_DT_DATETIME, "month");
    dt_bad("2026-01-00", CT_FHIR_DT_DATETIME, "day does not exist");
    dt_bad("0000", CT_FHIR_DT_DATETIME, "0000");
    dt_bad("26", CT_FHIR_DT_DATETIME, "4-digit year");
    dt_bad("20261", CT_FHIR_DT_DATETIME, "-MM");
    dt_bad("2026-1-01", CT_FHIR_DT_DATETIME, "-MM");
    dt_bad("2026-11-22T24:00:00Z", CT_FHIR_DT_DATETIME, "24:00");
    dt_bad("2026-11-22T10:60:00Z", CT_FHIR_DT_DATETIME, "minutes");
    dt_bad("2026-11-22T10:00:61Z", CT_FHIR_DT_DATETIME, "seconds");
    dt_bad("2026-11-22T10:00:00", CT_FHIR_DT_DATETIME, "needs a zone");
    dt_bad("2026-11-22T10:00:00.5", CT_FHIR_DT_INSTANT, "needs a zone");
    dt_bad("2026-11-22T10:00Z", CT_FHIR_DT_DATETIME, "needs seconds");
    dt_bad("2026-11-22T10Z", CT_FHIR_DT_DATETIME, ":mm");
    dt_bad("2026-11-22T10:00:00.Z", CT_FHIR_DT_DATETIME, "digits after");
    dt_bad("2026-11-22T10:00:00+15:00", CT_FHIR_DT_DATETIME, "-14:00..+14:00");
    dt_bad("2026-11-22T10:00:00+14:30", CT_FHIR_DT_DATETIME, "-14:00..+14:00");
    dt_bad("2026-11-22T10:00:00+0100", CT_FHIR_DT_DATETIME, "+hh:mm");
    dt_bad("2026-11-22T10:00:00z", CT_FHIR_DT_DATETIME, "zone");
    dt_bad("2026-11-22T10:00:00Z ", CT_FHIR_DT_DATETIME, "after the zone");
    dt_bad("2026-11-22 10:00:00Z", CT_FHIR_DT_DATETIME, "Thh:mm:ss");
    dt_bad("2026-11-22T10:00:00 01:00", CT_FHIR_DT_DATETIME, "zone");  /* ' ' only in search */
    dt_bad("2026-11-22T10:00:00Z", CT_FHIR_DT_DATE, "no time part");
    dt_bad("2026-11-22", CT_FHIR_DT_INSTANT, "instant needs");
    dt_bad("2026", CT_FHIR_DT_INSTANT, "instant needs");
    dt_bad("", CT_FHIR_DT_DATETIME, "4-digit year");
}

static void test_instant_format(void **state)
{
    (void)state;
    char b[CT_FHIR_INSTANT_CAP];
    assert_int_equal(ct_fhir_instant_format(ct_fhir_utc_ms(2026, 11, 22, 10, 0, 0, 123), b, sizeof b), 0);
    assert_string_equal(b, "2026-11-22T10:00:00.123Z");
    assert_int_equal(ct_fhir_instant_format(0, b, sizeof b), 0);
    assert_string_equal(b, "1970-01-01T00:00:00.000Z");
    assert_int_equal(ct_fhir_instant_format(-1, b, sizeof b), 0);
    assert_string_equal(b, "1969-12-31T23:59:59.999Z");
    assert_int_equal(ct_fhir_instant_format(ct_fhir_utc_ms(2024, 2, 29, 23, 59, 59, 999), b, sizeof b), 0);
    assert_string_equal(b, "2024-02-29T23:59:59.999Z");
    assert_int_equal(ct_fhir_instant_format(ct_fhir_utc_ms(1, 1, 1, 0, 0, 0, 0), b, sizeof b), 0);
    assert_string_equal(b, "0001-01-01T00:00:00.000Z");
    assert_int_equal(ct_fhir_instant_format(ct_fhir_utc_ms(1, 1, 1, 0, 0, 0, 0) - 1, b, sizeof b), CT_EINVAL);
    assert_int_equal(ct_fhir_instant_format(ct_fhir_utc_ms(10000, 1, 1, 0, 0, 0, 0), b, sizeof b), CT_EINVAL);
    assert_int_equal(ct_fhir_instant_format(0, b, 24), CT_EINVAL);
    /* Formatting then parsing is the identity, every day for 30 years. */
    for (int64_t ms = ct_fhir_utc_ms(1996, 1, 1, 0, 0, 0, 0); ms < ct_fhir_utc_ms(2026, 1, 1, 0, 0, 0, 0);
         ms += D + 3 * H + 7777) {
        ct_fhir_datetime dt;
        assert_int_equal(ct_fhir_instant_format(ms, b, sizeof b), 0);
        assert_int_equal(ct_fhir_datetime_parse(b, strlen(b), CT_FHIR_DT_INSTANT, NULL, &dt, NULL), 0);
        assert_true(dt.start_ms == ms && dt.end_ms == ms + 1);
    }
}

static ct_fhir_datetime sv(const char *s)
{
    ct_fhir_datetime dt;
    assert_int_equal(ct_fhir_datetime_parse(s, strlen(s), CT_FHIR_DT_SEARCH, NULL, &dt, NULL), 0);
    return dt;
}

static void test_date_matches(void **state)
{
    (void)state;
    /* Search value: the day 2026-11-22 (UTC). Targets: a second inside it,
     * a period straddling its start, periods before and after it. */
    ct_fhir_datetime day = sv("2026-11-22");
    int64_t d0 = day.start_ms, d1 = day.end_ms, now = d1 + 10 * D;
    int64_t in_s = d0 + 10 * H, in_e = in_s + 1000;
    int64_t st_s = d0 - H, st_e = d0 + H;          /* straddles the start */
    int64_t bf_s = d0 - 2 * D, bf_e = d0 - D;       /* wholly before */
    int64_t af_s = d1 + D, af_e = d1 + 2 * D;       /* wholly after */
    int64_t tou_s = d1, tou_e = d1 + H;             /* starts exactly at the end */
    struct {
        ct_fhir_prefix p;
        int in, straddle, before, after, touching;
    } rows[] = {
        {CT_FHIR_PFX_EQ, 1, 0, 0, 0, 0},
        {CT_FHIR_PFX_NE, 0, 1, 1, 1, 1},
        {CT_FHIR_PFX_GT, 0, 0, 0, 1, 1},
        {CT_FHIR_PFX_LT, 0, 1, 1, 0, 0},
        {CT_FHIR_PFX_GE, 1, 0, 0, 1, 1},
        {CT_FHIR_PFX_LE, 1, 1, 1, 0, 0},
        {CT_FHIR_PFX_SA, 0, 0, 0, 1, 1},
        {CT_FHIR_PFX_EB, 0, 0, 1, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *name = ct_fhir_prefix_name(rows[i].p);
        if (ct_fhir_date_matches(rows[i].p, &day, in_s, in_e, now) != rows[i].in ||
            ct_fhir_date_matches(rows[i].p, &day, st_s, st_e, now) != rows[i].straddle ||
            ct_fhir_date_matches(rows[i].p, &day, bf_s, bf_e, now) != rows[i].before ||
            ct_fhir_date_matches(rows[i].p, &day, af_s, af_e, now) != rows[i].after ||
            ct_fhir_date_matches(rows[i].p, &day, tou_s, tou_e, now) != rows[i].touching)
            fail_msg("prefix %s disagrees with the table", name);
    }
    /* An open Period (no end) is after everything. */
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_GT, &day, in_s, INT64_MAX, now), 1);
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_EQ, &day, in_s, INT64_MAX, now), 0);
    /* ap: 10 days from now, so the range widens by one day each side. */
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_AP, &day, d1 + H, d1 + 2 * H, now), 1);
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_AP, &day, d0 - D + H, d0 - D + 2 * H, now), 1);
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_AP, &day, af_s + 3 * H, af_e, now), 0);
    /* ... and not at all when now is the value itself: plain overlap. */
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_AP, &day, d1 + H, d1 + 2 * H, d0), 0);
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_AP, &day, st_s, st_e, d0), 1);
    /* A precise search value against a precise target. */
    ct_fhir_datetime sec = sv("2026-11-22T10:00:00Z");
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_EQ, &sec, sec.start_ms, sec.start_ms + 1, now), 1);
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_EQ, &sec, sec.start_ms + 1000, sec.start_ms + 1001, now), 0);
    assert_int_equal(ct_fhir_date_matches(CT_FHIR_PFX_GE, &sec, sec.start_ms + 1000, sec.start_ms + 1001, now), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_references),
        cmocka_unit_test(test_datetime_precisions),
        cmocka_unit_test(test_datetime_invalid),
        cmocka_unit_test(test_instant_format),
        cmocka_unit_test(test_date_matches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
