/* fhir room, ids, references and time: FHIR ids, Reference strings, the
 * date / dateTime / instant grammars and the search comparison of dates.
 *
 * The one idea: every FHIR date or time is a range of UTC milliseconds,
 * [start, end), whose width is its precision: "2026" is a whole year,
 * "2026-11-22T10:00:00Z" one second. Storing and searching then only compare
 * ranges, which is exactly how FHIR R4 defines date search ("the range of
 * the search value fully contains the range of the target value" ...). The
 * grammars are those of the R4 regexes, checked by hand, plus calendar
 * checks the regexes cannot express (2026-02-30, 2100-02-29). */
#include "cardiotwin/fhir.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* --- ids and references -------------------------------------------------- */

static int id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.';
}

int ct_fhir_id_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > CT_FHIR_ID_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!id_char(s[i]))
            return 0;
    return 1;
}

/* A resource type name: [A-Z][A-Za-z]*, at most CT_FHIR_TYPE_MAX. */
static int type_valid(const char *s, size_t len)
{
    if (len == 0 || len > CT_FHIR_TYPE_MAX || s[0] < 'A' || s[0] > 'Z')
        return 0;
    for (size_t i = 1; i < len; i++)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')))
            return 0;
    return 1;
}

static int hexdig(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int uuid_valid(const char *s, size_t len)
{
    if (len != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!hexdig(s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Parses "Type/id" or "Type/id/_history/vid" at the end of s[0..len). */
static int parse_tail(const char *s, size_t len, ct_fhir_ref *out)
{
    const char *segs[4];
    size_t lens[4];
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '/') {
            if (n == 4)
                return -1;
            segs[n] = s + start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    }
    if (n != 2 && n != 4)
        return -1;
    if (!type_valid(segs[0], lens[0]) || !ct_fhir_id_valid(segs[1], lens[1]))
        return -1;
    if (n == 4 && (lens[2] != 8 || memcmp(segs[2], "_history", 8) != 0 ||
                   !ct_fhir_id_valid(segs[3], lens[3])))
        return -1;
    memcpy(out->type, segs[0], lens[0]);
    out->type[lens[0]] = '\0';
    memcpy(out->id, segs[1], lens[1]);
    out->id[lens[1]] = '\0';
    if (n == 4) {
        memcpy(out->version, segs[3], lens[3]);
        out->version[lens[3]] = '\0';
    }
    return 0;
}

int ct_fhir_ref_parse(const char *s, const char *expression, ct_fhir_ref *out,
                      ct_fhir_issue *issue)
{
    memset(out, 0, sizeof *out);
    char shown[96];
    size_t len = s ? strlen(s) : 0;
    ct_fhir_shown(s ? s : "", len, 60, shown, sizeof shown);
    if (len == 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, expression,
                            "reference is empty; write \"Type/id\"");
    if (len > 9 && memcmp(s, "urn:uuid:", 9) == 0) {
        if (!uuid_valid(s + 9, len - 9))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, expression,
                                "reference \"%s\" is not urn:uuid: followed by a UUID", shown);
        out->kind = CT_FHIR_REF_URN_UUID;
        memcpy(out->id, s + 9, 36);
        out->id[36] = '\0';
        return 0;
    }
    if (s[0] == '#') {
        if (!ct_fhir_id_valid(s + 1, len - 1))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, expression,
                                "reference \"%s\" is not # followed by a contained id", shown);
        out->kind = CT_FHIR_REF_CONTAINED;
        memcpy(out->id, s + 1, len - 1);
        out->id[len - 1] = '\0';
        return 0;
    }
    const char *scheme_end = strstr(s, "://");
    if (scheme_end && (strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0)) {
        /* The tail is the last two segments, or four with _history. */
        const char *host = scheme_end + 3;
        size_t host_at = (size_t)(host - s), slash[4];
        int found = 0;
        for (size_t i = len; i > host_at && found < 4; i--)
            if (s[i - 1] == '/')
                slash[found++] = i - 1;
        size_t cut = len;
        if (found >= 4 && slash[0] - slash[1] == 9 && memcmp(s + slash[1] + 1, "_history", 8) == 0)
            cut = slash[3];
        else if (found >= 2)
            cut = slash[1];
        if (cut == len || cut <= host_at || cut >= sizeof out->base ||
            parse_tail(s + cut + 1, len - cut - 1, out) != 0) {
            memset(out, 0, sizeof *out);
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, expression,
                                "reference \"%s\" does not end in Type/id", shown);
        }
        out->kind = CT_FHIR_REF_ABSOLUTE;
        memcpy(out->base, s, cut);
        out->base[cut] = '\0';
        return 0;
    }
    if (parse_tail(s, len, out) != 0) {
        memset(out, 0, sizeof *out);
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, expression,
                            "reference \"%s\" is not \"Type/id\" (or Type/id/_history/v, "
                            "urn:uuid:..., #id, an absolute URL)",
                            shown);
    }
    out->kind = CT_FHIR_REF_RELATIVE;
    return 0;
}

/* --- calendar ------------------------------------------------------------ */

int64_t ct_fhir_days_from_civil(int64_t y, int m, int d)
{
    /* Howard Hinnant's days_from_civil: exact for the proleptic Gregorian
     * calendar, no tables, no loops. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int64_t ct_fhir_utc_ms(int year, int month, int day, int hour, int minute, int second, int ms)
{
    int64_t days = ct_fhir_days_from_civil(year, month, day);
    return ((days * 24 + hour) * 60 + minute) * 60000 + (int64_t)second * 1000 + ms;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = yoe + era * 400;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = (int)(yy + (*m <= 2));
}

static int is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

int ct_fhir_instant_format(int64_t t_ms, char *buf, size_t cap)
{
    static const int64_t min_ms = -62135596800000LL;  /* 0001-01-01T00:00:00Z */
    static const int64_t max_ms = 253402300799999LL;  /* 9999-12-31T23:59:59.999Z */
    if (!buf || cap < CT_FHIR_INSTANT_CAP || t_ms < min_ms || t_ms > max_ms)
        return CT_EINVAL;
    int64_t days = t_ms >= 0 ? t_ms / 86400000 : -((-t_ms + 86399999) / 86400000);
    int64_t rem = t_ms - days * 86400000;
    int y, m, d;
    civil_from_days(days, &y, &m, &d);
    int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60),
        ms = (int)(rem % 1000);
    snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, h, mi, s, ms);
    return 0;
}

/* --- the grammars -------------------------------------------------------- */

/* Reads exactly n digits at s[*i]; -1 if they are not there. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
    if (len - *i < (size_t)n)
        return -1;
    int v = 0;
    for (int k = 0; k < n; k++) {
        char c = s[*i + (size_t)k];
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    *i += (size_t)n;
    return v;
}

static int dt_fail(ct_fhir_issue *issue, const char *expression, const char *s, size_t len,
                   const char *why)
{
    char shown[80];
    ct_fhir_shown(s, len, 40, shown, sizeof shown);
    return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, expression,
                        "\"%s\" is not a valid date/time: %s", shown, why);
}

int ct_fhir_datetime_parse(const char *s, size_t len, ct_fhir_dt_kind kind, const char *expression,
                           ct_fhir_datetime *out, ct_fhir_issue *issue)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return dt_fail(issue, expression, "", 0, "it is missing");
    size_t i = 0;
    int year = digits(s, len, &i, 4);
    if (year < 0)
        return dt_fail(issue, expression, s, len, "it must start with a 4-digit year");
    if (year == 0)
        return dt_fail(issue, expression, s, len, "year 0000 does not exist");
    int month = 1, day = 1, hour = 0, minute = 0, second = 0, ms = 0;
    ct_fhir_precision prec = CT_FHIR_PREC_YEAR;
    int64_t width_ms = 0, frac_ms = 0;
    if (i < len) {
        if (s[i] != '-' || (i++, month = digits(s, len, &i, 2)) < 0)
            return dt_fail(issue, expression, s, len, "expected -MM after the year");
        if (month < 1 || month > 12)
            return dt_fail(issue, expression, s, len, "month must be 01 to 12");
        prec = CT_FHIR_PREC_MONTH;
    }
    if (i < len) {
        if (s[i] != '-' || (i++, day = digits(s, len, &i, 2)) < 0)
            return dt_fail(issue, expression, s, len, "expected -DD after the month");
        if (day < 1 || day > days_in_month(year, month))
            return dt_fail(issue, expression, s, len, "that day does not exist in that month");
        prec = CT_FHIR_PREC_DAY;
    }
    if (i < len) {
        if (kind == CT_FHIR_DT_DATE)
            return dt_fail(issue, expression, s, len, "a date has no time part");
        if (s[i] != 'T' || (i++, hour = digits(s, len, &i, 2)) < 0)
            return dt_fail(issue, expression, s, len, "expected Thh:mm:ss after the date");
        if (hour > 23)
            return dt_fail(issue, expression, s, len, "hour must be 00 to 23 (24:00 is not allowed)");
        if (i >= len || s[i] != ':' || (i++, minute = digits(s, len, &i, 2)) < 0)
            return dt_fail(issue, expression, s, len, "expected :mm after the hour");
        if (minute > 59)
            return dt_fail(issue, expression, s, len, "minutes must be 00 to 59");
        prec = CT_FHIR_PREC_MINUTE;
        if (i < len && s[i] == ':') {
            i++;
            if ((second = digits(s, len, &i, 2)) < 0)
                return dt_fail(issue, expression, s, len, "expected two digits of seconds");
            /* 60 is a leap second; FHIR's regex allows it. It is counted as
             * the first second of the next minute. */
            if (second > 60)
                return dt_fail(issue, expression, s, len, "seconds must be 00 to 60");
            prec = CT_FHIR_PREC_SECOND;
            if (i < len && s[i] == '.') {
                i++;
                size_t f0 = i;
                int64_t scale = 100;
                while (i < len && s[i] >= '0' && s[i] <= '9') {
                    if (scale > 0)
                        frac_ms += (s[i] - '0') * scale;
                    scale /= 10;
                    i++;
                }
                size_t nd = i - f0;
                if (nd == 0)
                    return dt_fail(issue, expression, s, len, "expected digits after '.'");
                prec = CT_FHIR_PREC_FRACTION;
                width_ms = nd == 1 ? 100 : nd == 2 ? 10 : 1;
                ms = (int)frac_ms;
            }
        } else if (kind != CT_FHIR_DT_SEARCH) {
            return dt_fail(issue, expression, s, len, "a time needs seconds (hh:mm:ss)");
        }
        /* The zone. Only in search values may '+' arrive as a space: a
         * query string decodes '+' to ' ' and clients forget to escape it. */
        if (i >= len)
            return dt_fail(issue, expression, s, len,
                           "a time needs a zone: add Z or +hh:mm / -hh:mm");
        if (s[i] == 'Z') {
            i++;
            out->has_tz = 1;
        } else if (s[i] == '+' || s[i] == '-' || (kind == CT_FHIR_DT_SEARCH && s[i] == ' ')) {
            int sign = s[i] == '-' ? -1 : 1;
            i++;
            int th = digits(s, len, &i, 2);
            if (th < 0 || i >= len || s[i] != ':')
                return dt_fail(issue, expression, s, len, "zone must be +hh:mm or -hh:mm");
            i++;
            int tm = digits(s, len, &i, 2);
            if (tm < 0 || tm > 59 || th > 14 || (th == 14 && tm != 0))
                return dt_fail(issue, expression, s, len, "zone must lie within -14:00..+14:00");
            out->has_tz = 1;
            out->tz_offset_min = sign * (th * 60 + tm);
        } else {
            return dt_fail(issue, expression, s, len,
                           "a time needs a zone: add Z or +hh:mm / -hh:mm");
        }
        if (i != len)
            return dt_fail(issue, expression, s, len, "unexpected text after the zone");
    }
    if (i != len)
        return dt_fail(issue, expression, s, len, "unexpected text");
    if (kind == CT_FHIR_DT_INSTANT && prec < CT_FHIR_PREC_SECOND)
        return dt_fail(issue, expression, s, len,
                       "an instant needs a full date, a time with seconds and a zone");
    int64_t start;
    switch (prec) {
    case CT_FHIR_PREC_YEAR:
        start = ct_fhir_utc_ms(year, 1, 1, 0, 0, 0, 0);
        out->end_ms = ct_fhir_utc_ms(year + 1, 1, 1, 0, 0, 0, 0);
        break;
    case CT_FHIR_PREC_MONTH:
        start = ct_fhir_utc_ms(year, month, 1, 0, 0, 0, 0);
        out->end_ms = start + (int64_t)days_in_month(year, month) * 86400000;
        break;
    case CT_FHIR_PREC_DAY:
        start = ct_fhir_utc_ms(year, month, day, 0, 0, 0, 0);
        out->end_ms = start + 86400000;
        break;
    default:
        start = ct_fhir_utc_ms(year, month, day, hour, minute, second, ms) -
                (int64_t)out->tz_offset_min * 60000;
        out->end_ms = start + (prec == CT_FHIR_PREC_MINUTE   ? 60000
                               : prec == CT_FHIR_PREC_SECOND ? 1000
                                                             : width_ms);
        break;
    }
    out->start_ms = start;
    out->precision = prec;
    return 0;
}

/* --- date search --------------------------------------------------------- */

int ct_fhir_date_matches(ct_fhir_prefix prefix, const ct_fhir_datetime *search,
                         int64_t ts, int64_t te, int64_t now_ms)
{
    int64_t ss = search->start_ms, se = search->end_ms;
    int contains = ss <= ts && te <= se;   /* search range fully contains target */
    int above = te > se;                   /* the range above the search value meets the target */
    int below = ts < ss;                   /* the range below meets the target */
    switch (prefix) {
    case CT_FHIR_PFX_EQ: return contains;
    case CT_FHIR_PFX_NE: return !contains;
    case CT_FHIR_PFX_GT: return above;
    case CT_FHIR_PFX_LT: return below;
    case CT_FHIR_PFX_GE: return above || contains;
    case CT_FHIR_PFX_LE: return below || contains;
    case CT_FHIR_PFX_SA: return ts >= se;
    case CT_FHIR_PFX_EB: return te <= ss;
    case CT_FHIR_PFX_AP: {
        /* R4 recommends 10% of the gap between now and the date. */
        int64_t gap = now_ms > ss ? now_ms - ss : ss - now_ms;
        int64_t widen = gap / 10;
        int64_t ws = ss - widen, we = se > INT64_MAX - widen ? INT64_MAX : se + widen;
        return ts < we && te > ws;
    }
    }
    return 0;
}
