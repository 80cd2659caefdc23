/* fhir room, ECG Observations: SampledData to int16 samples and back.
 *
 * The one idea: an ECG Observation (the specification's `ekg` example shape:
 * code MDC 131328, one component per lead, valueSampledData) is the same
 * thing as a WFDB signal with a gain and a baseline. SampledData says
 *     value = data[i] * factor + origin
 * and WFDB says
 *     mV = (sample - baseline) / gain,
 * so a device that sends its ADC codes as data (integers, the usual case)
 * gives us samples = data unchanged, gain = 1000 / factor_uV and
 * baseline = -origin_uV / factor_uV: no sample is ever rounded. Only data
 * that are not int16 integers (decimals, 24-bit codes) are quantised, to
 * 1 uV per unit. Building goes the other way with the WFDB scale, so that
 * build -> parse returns the very same samples.
 *
 * Everything outside is distrusted: counts are checked against limits before
 * any allocation, the data string is walked twice (count and check, then
 * fill) so that memory is exactly one int16 per sample, and every refusal
 * names the FHIRPath of the element at fault. */
#include "cardiotwin/fhir.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static const ct_fhir_lead_info leads_table[] = {
    {131329, "I", "MDC_ECG_ELEC_POTL_I"},     {131330, "II", "MDC_ECG_ELEC_POTL_II"},
    {131389, "III", "MDC_ECG_ELEC_POTL_III"}, {131390, "aVR", "MDC_ECG_ELEC_POTL_AVR"},
    {131391, "aVL", "MDC_ECG_ELEC_POTL_AVL"}, {131392, "aVF", "MDC_ECG_ELEC_POTL_AVF"},
    {131331, "V1", "MDC_ECG_ELEC_POTL_V1"},   {131332, "V2", "MDC_ECG_ELEC_POTL_V2"},
    {131333, "V3", "MDC_ECG_ELEC_POTL_V3"},   {131334, "V4", "MDC_ECG_ELEC_POTL_V4"},
    {131335, "V5", "MDC_ECG_ELEC_POTL_V5"},   {131336, "V6", "MDC_ECG_ELEC_POTL_V6"},
};
#define N_LEADS (sizeof leads_table / sizeof leads_table[0])

const ct_fhir_lead_info *ct_fhir_leads(size_t *n)
{
    if (n)
        *n = N_LEADS;
    return leads_table;
}

const ct_fhir_lead_info *ct_fhir_lead_by_code(int mdc_code)
{
    for (size_t i = 0; i < N_LEADS; i++)
        if (leads_table[i].mdc_code == mdc_code)
            return &leads_table[i];
    return NULL;
}

static int ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'a' && *a <= 'z' ? (char)(*a - 32) : *a;
        char y = *b >= 'a' && *b <= 'z' ? (char)(*b - 32) : *b;
        if (x != y)
            return 0;
    }
    return *a == *b;
}

const ct_fhir_lead_info *ct_fhir_lead_by_name(const char *name)
{
    if (!name)
        return NULL;
    /* WFDB records name modified limb leads "MLI", "MLII", "MLIII". */
    if ((name[0] == 'M' || name[0] == 'm') && (name[1] == 'L' || name[1] == 'l') &&
        (name[2] == 'I' || name[2] == 'i'))
        name += 2;
    for (size_t i = 0; i < N_LEADS; i++)
        if (ieq(name, leads_table[i].name))
            return &leads_table[i];
    return NULL;
}

ct_fhir_ecg_limits ct_fhir_ecg_limits_default(void)
{
    ct_fhir_ecg_limits l = {CT_FHIR_ECG_DEFAULT_MAX_SAMPLES, CT_FHIR_ECG_MAX_LEADS};
    return l;
}

void ct_fhir_ecg_free(ct_fhir_ecg *ecg)
{
    if (!ecg)
        return;
    for (int l = 0; l < CT_FHIR_ECG_MAX_LEADS; l++)
        free(ecg->leads[l].samples);
    memset(ecg, 0, sizeof *ecg);
}

static const char *const obs_status_names[] = {"registered", "preliminary", "final",
                                               "amended",    "corrected",   "cancelled",
                                               "entered-in-error", "unknown"};

/* 1 if coding array `cc` holds (system in MDC systems, code == want) */
static int is_mdc_system(const char *sys)
{
    return sys && (strcmp(sys, CT_FHIR_SYS_MDC) == 0 || strcmp(sys, CT_FHIR_SYS_MDC_ISO) == 0);
}

/* The MDC code of a coding as an int, or -1 when it is not a plain number. */
static int mdc_number(const char *code)
{
    if (!code || !*code || strlen(code) > 9)
        return -1;
    int v = 0;
    for (const char *p = code; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* --- SampledData -------------------------------------------------------- */

typedef struct sd_scan {
    size_t count;      /* values in data */
    size_t missing;    /* E, L, U */
    int all_int16;     /* every number an integer in [-32767, 32767] */
} sd_scan;

/* The token almost every ECG sends: an optional '-' and 1..5 digits without
 * a leading zero (ADC codes). 1 with *v for that; 0 for anything else
 * (fractions, exponents, longer numbers, and every malformed token), which
 * goes to ct_fhir_decimal_parse: same verdict, same value, but a general
 * decimal costs ~4x as much per value and there are 7200 in an Observation. */
static int small_int(const char *s, size_t n, int32_t *v)
{
    size_t i = s[0] == '-';
    size_t digits = n - i;
    if (digits == 0 || digits > 5 || (s[i] == '0' && digits > 1))
        return 0;
    int32_t x = 0;
    for (; i < n; i++) {
        unsigned dg = (unsigned)((unsigned char)s[i] - '0');
        if (dg > 9)
            return 0;
        x = x * 10 + (int32_t)dg;
    }
    *v = s[0] == '-' ? -x : x;
    return 1;
}

/* Walks data once: counts values, checks each one's syntax. Stops with a
 * 422 at the first bad value, or with CT_ELIMIT once over max values. */
static int scan_data(const char *d, size_t len, size_t max, const char *expr, sd_scan *sc,
                     ct_fhir_issue *issue)
{
    memset(sc, 0, sizeof *sc);
    sc->all_int16 = 1;
    size_t i = 0;
    while (i < len) {
        if (d[i] == ' ') {
            i++;
            continue;
        }
        size_t t0 = i;
        while (i < len && d[i] != ' ')
            i++;
        size_t tl = i - t0;
        if (sc->count == max)
            return ct_fhir_fail(issue, CT_ELIMIT, 422, CT_FHIR_IT_TOO_LONG, expr,
                                "data has more than %zu values; send at most %zu samples per "
                                "lead in one Observation",
                                max, max);
        sc->count++;
        if (tl == 1 && (d[t0] == 'E' || d[t0] == 'L' || d[t0] == 'U')) {
            sc->missing++;
            continue;
        }
        int32_t small;
        if (small_int(d + t0, tl, &small)) {
            if (small < -32767 || small > 32767)
                sc->all_int16 = 0;
            continue;
        }
        double v;
        int64_t iv;
        int is_int;
        if (ct_fhir_decimal_parse(d + t0, tl, &v, &iv, &is_int) != 0) {
            char shown[48];
            ct_fhir_shown(d + t0, tl, 24, shown, sizeof shown);
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, expr,
                                "data value %zu (\"%s\") is not a decimal, E, L or U; values "
                                "are separated by single spaces",
                                sc->count, shown);
        }
        if (!is_int || iv < -32767 || iv > 32767)
            sc->all_int16 = 0;
    }
    return 0;
}

/* Scale of an origin unit to microvolts; 0 when unknown. */
static double unit_scale_uv(const char *u)
{
    if (!u)
        return 0;
    if (strcmp(u, "uV") == 0 || strcmp(u, "\xc2\xb5V") == 0 || strcmp(u, "\xce\xbcV") == 0 ||
        strcmp(u, "microvolt") == 0)
        return 1.0;
    if (strcmp(u, "mV") == 0 || strcmp(u, "millivolt") == 0)
        return 1000.0;
    if (strcmp(u, "V") == 0 || strcmp(u, "volt") == 0)
        return 1e6;
    if (strcmp(u, "nV") == 0)
        return 1e-3;
    return 0;
}

static int add_warning(ct_fhir_ecg *e, const char *expr, const char *msg)
{
    if (e->n_warnings >= CT_FHIR_ECG_MAX_WARNINGS)
        return 0;
    for (size_t i = 0; i < e->n_warnings; i++)
        if (strcmp(e->warnings[i].diagnostics, msg) == 0)
            return 0; /* said once per Observation, not once per lead */
    ct_fhir_issue_set(&e->warnings[e->n_warnings++], 0, 200, CT_FHIR_SEV_WARNING,
                      CT_FHIR_IT_INFORMATIONAL, expr, "%s", msg);
    return 0;
}

static int read_sampled_data(const json_t *sd, ct_path *path, size_t max_samples,
                             ct_fhir_ecg *e, ct_fhir_ecg_lead *L, ct_fhir_issue *issue)
{
    size_t mark = path->n;
    int rc;
#define AT(member) (ct_path_pop(path, mark), ct_path_push(path, "%s", member), path->s)
    /* origin: a Quantity whose value is the zero of the data. */
    const json_t *origin = json_object_get(sd, "origin");
    if (!origin)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, AT(".origin"),
                            "SampledData needs origin (a Quantity: value and unit)");
    double ov;
    if (!json_is_object(origin) || ct_fhir_get_number(origin, "value", &ov) != 1)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, AT(".origin.value"),
                            "origin needs a numeric value");
    const char *ucode = ct_fhir_get_string(origin, "code");
    const char *usys = ct_fhir_get_string(origin, "system");
    const char *utext = ct_fhir_get_string(origin, "unit");
    double scale = 0;
    if (ucode && usys && strcmp(usys, CT_FHIR_SYS_UCUM) == 0) {
        if ((scale = unit_scale_uv(ucode)) == 0)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".origin.code"),
                                "origin unit must be a voltage: UCUM uV, mV or V");
    } else if (utext || ucode) {
        if ((scale = unit_scale_uv(utext ? utext : ucode)) == 0)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".origin.unit"),
                                "origin unit must be a voltage: uV, mV or V");
    } else {
        scale = 1.0;
        L->unit_assumed = 1;
        add_warning(e, AT(".origin"),
                    "origin has no unit; the data were taken as microvolts (send origin.code "
                    "uV, mV or V with system http://unitsofmeasure.org)");
    }
    L->origin_uv = ov * scale;
    /* period: milliseconds between samples. */
    double period;
    rc = ct_fhir_get_number(sd, "period", &period);
    if (rc == 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, AT(".period"),
                            "SampledData needs period (milliseconds between samples)");
    if (rc < 0 || !(period >= 0.01 && period <= 1000.0))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".period"),
                            "period must be a number of milliseconds from 0.01 to 1000");
    L->period_ms = period;
    double fs = 1000.0 / period, r = floor(fs + 0.5);
    L->fs_hz = fabs(fs - r) <= 1e-9 * fs ? r : fs;
    double factor = 1.0;
    rc = ct_fhir_get_number(sd, "factor", &factor);
    if (rc < 0 || (rc == 1 && (factor == 0 || !isfinite(factor))))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".factor"),
                            "factor must be a nonzero number");
    L->factor_uv = factor * scale;
    double lim;
    if ((rc = ct_fhir_get_number(sd, "lowerLimit", &lim)) < 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".lowerLimit"),
                            "lowerLimit must be a number");
    if (rc == 1) {
        L->has_lower = 1;
        L->lower_uv = lim * scale;
    }
    if ((rc = ct_fhir_get_number(sd, "upperLimit", &lim)) < 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".upperLimit"),
                            "upperLimit must be a number");
    if (rc == 1) {
        L->has_upper = 1;
        L->upper_uv = lim * scale;
    }
    const json_t *dim = json_object_get(sd, "dimensions");
    if (!dim)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, AT(".dimensions"),
                            "SampledData needs dimensions (1: one lead per component)");
    if (!json_is_integer(dim) || json_integer_value(dim) < 1)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".dimensions"),
                            "dimensions must be a positive integer");
    json_int_t dims = json_integer_value(dim);
    const json_t *data = json_object_get(sd, "data");
    if (!data)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, AT(".data"),
                            "SampledData needs data (the samples, separated by spaces)");
    if (!json_is_string(data))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, AT(".data"),
                            "data must be a string of values separated by spaces");
    const char *d = json_string_value(data);
    size_t dlen = json_string_length(data);
    sd_scan sc;
    if ((rc = scan_data(d, dlen, max_samples, AT(".data"), &sc, issue)) != 0)
        return rc;
    if (sc.count == 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, AT(".data"),
                            "data holds no values");
    if (sc.count % (size_t)dims != 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".data"),
                            "data has %zu values, which is not a multiple of dimensions (%lld)",
                            sc.count, (long long)dims);
    if (dims != 1)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_NOT_SUPPORTED, AT(".dimensions"),
                            "dimensions is %lld; send one lead per component (dimensions 1)",
                            (long long)dims);
    L->samples = malloc(sc.count * sizeof *L->samples);
    if (!L->samples)
        return ct_fhir_fail(issue, CT_ENOMEM, 500, CT_FHIR_IT_EXCEPTION, NULL,
                            "out of memory for %zu samples", sc.count);
    L->n_samples = sc.count;
    L->n_missing = sc.missing;
    L->exact = sc.all_int16 && L->factor_uv > 0;
    if (L->exact) {
        L->gain_adu_per_mv = 1000.0 / L->factor_uv;
        L->baseline_adu = -L->origin_uv / L->factor_uv;
    } else {
        L->gain_adu_per_mv = 1000.0;
        L->baseline_adu = 0;
    }
    /* Second walk: syntax is known good, so only values are computed. */
    size_t i = 0, k = 0;
    while (i < dlen) {
        if (d[i] == ' ') {
            i++;
            continue;
        }
        size_t t0 = i;
        while (i < dlen && d[i] != ' ')
            i++;
        size_t tl = i - t0;
        if (tl == 1 && (d[t0] == 'E' || d[t0] == 'L' || d[t0] == 'U')) {
            L->samples[k++] = CT_FHIR_SAMPLE_MISSING;
            continue;
        }
        int32_t small;
        if (L->exact && small_int(d + t0, tl, &small)) {
            L->samples[k++] = (int16_t)small; /* the first walk saw it within +/-32767 */
            continue;
        }
        double v;
        int64_t iv = 0;
        int is_int;
        ct_fhir_decimal_parse(d + t0, tl, &v, &iv, &is_int);
        if (L->exact) {
            L->samples[k++] = (int16_t)iv;
            continue;
        }
        double uv = v * L->factor_uv + L->origin_uv;
        double q = floor(uv + 0.5);
        if (!(q >= -32767 && q <= 32767))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, AT(".data"),
                                "data value %zu is %.0f uV once scaled, beyond the +/-32767 uV "
                                "an ECG sample may have",
                                k + 1, uv);
        L->samples[k++] = (int16_t)q;
    }
#undef AT
    ct_path_pop(path, mark);
    return 0;
}

/* --- the Observation ---------------------------------------------------- */

static int read_effective(const json_t *obs, ct_fhir_ecg *e, ct_fhir_issue *issue)
{
    const json_t *edt = json_object_get(obs, "effectiveDateTime");
    const json_t *ein = json_object_get(obs, "effectiveInstant");
    const json_t *ep = json_object_get(obs, "effectivePeriod");
    const char *expr;
    const json_t *start;
    if (edt) {
        expr = "Observation.effectiveDateTime";
        start = edt;
    } else if (ein) {
        expr = "Observation.effectiveInstant";
        start = ein;
    } else if (ep) {
        expr = "Observation.effectivePeriod.start";
        start = json_is_object(ep) ? json_object_get(ep, "start") : NULL;
        if (!start)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, expr,
                                "effectivePeriod needs a start: when the first sample was taken");
    } else if (json_object_get(obs, "effectiveTiming")) {
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_NOT_SUPPORTED,
                            "Observation.effectiveTiming",
                            "an ECG needs effectiveDateTime, effectiveInstant or "
                            "effectivePeriod.start, not a Timing");
    } else {
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, "Observation.effective[x]",
                            "an ECG needs the time of its first sample: effectiveDateTime or "
                            "effectivePeriod.start");
    }
    if (!json_is_string(start))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, expr,
                            "the effective time must be a string");
    ct_fhir_datetime dt;
    int rc = ct_fhir_datetime_parse(json_string_value(start), json_string_length(start),
                                    ein ? CT_FHIR_DT_INSTANT : CT_FHIR_DT_DATETIME, expr, &dt,
                                    issue);
    if (rc)
        return rc;
    if (dt.precision < CT_FHIR_PREC_SECOND)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, expr,
                            "an ECG's start needs a time to the second with a zone, "
                            "e.g. 2026-11-22T10:00:00.000Z");
    e->start_ms = dt.start_ms;
    e->start_precision = dt.precision;
    e->end_ms = -1;
    if (ep && !edt && !ein) {
        const json_t *end = json_object_get(ep, "end");
        if (end) {
            if (!json_is_string(end))
                return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE,
                                    "Observation.effectivePeriod.end", "end must be a string");
            ct_fhir_datetime de;
            rc = ct_fhir_datetime_parse(json_string_value(end), json_string_length(end),
                                        CT_FHIR_DT_DATETIME, "Observation.effectivePeriod.end",
                                        &de, issue);
            if (rc)
                return rc;
            if (de.end_ms < dt.start_ms)
                return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_INVARIANT,
                                    "Observation.effectivePeriod.end",
                                    "effectivePeriod ends before it starts");
            e->end_ms = de.start_ms;
        }
    }
    return 0;
}

static int read_lead_code(const json_t *comp, ct_path *path, const ct_fhir_lead_info **out,
                          char *text, size_t text_cap, ct_fhir_issue *issue)
{
    size_t mark = ct_path_push(path, ".code");
    const json_t *code = json_object_get(comp, "code");
    const json_t *coding = json_is_object(code) ? json_object_get(code, "coding") : NULL;
    int seen_mdc = -1;
    for (size_t i = 0; json_is_array(coding) && i < json_array_size(coding); i++) {
        const json_t *c = json_array_get(coding, i);
        if (!json_is_object(c) || !is_mdc_system(ct_fhir_get_string(c, "system")))
            continue;
        int n = mdc_number(ct_fhir_get_string(c, "code"));
        const ct_fhir_lead_info *li = ct_fhir_lead_by_code(n);
        if (li) {
            *out = li;
            const char *t = ct_fhir_get_string(code, "text");
            size_t tl = t ? strlen(t) : 0;
            if (tl >= text_cap) {
                /* Cut on a character boundary: the text must stay UTF-8. */
                tl = text_cap - 1;
                while (tl > 0 && ((unsigned char)t[tl] & 0xc0) == 0x80)
                    tl--;
            }
            if (tl)
                memcpy(text, t, tl);
            text[tl] = '\0';
            for (char *p = text; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    *p = '?';
            ct_path_pop(path, mark);
            return 0;
        }
        seen_mdc = n;
    }
    int rc;
    if (!code)
        rc = ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, path->s,
                          "each component needs a code naming its lead");
    else if (seen_mdc >= 0)
        rc = ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_CODE_INVALID, path->s,
                          "MDC code %d is not a lead we accept: use MDC_ECG_ELEC_POTL_I..V6 "
                          "(131329 I, 131330 II, 131389 III, 131390-131392 aVR aVL aVF, "
                          "131331-131336 V1-V6)",
                          seen_mdc);
    else
        rc = ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_CODE_INVALID, path->s,
                          "the lead must be coded in system " CT_FHIR_SYS_MDC
                          " (or " CT_FHIR_SYS_MDC_ISO "), e.g. 131330 for lead II");
    return rc;
}

static int ecg_from_json(const json_t *obs, const ct_fhir_ecg_limits *lim, ct_fhir_ecg *e,
                         ct_fhir_issue *issue)
{
    int rc = ct_fhir_validate_resource(obs, "Observation", issue);
    if (rc)
        return rc;
    const char *id = ct_fhir_get_string(obs, "id");
    if (id)
        snprintf(e->id, sizeof e->id, "%s", id);
    const json_t *st = json_object_get(obs, "status");
    if (!st)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, "Observation.status",
                            "status is required (e.g. final)");
    int found = 0;
    for (size_t i = 0; json_is_string(st) && i < sizeof obs_status_names / sizeof *obs_status_names;
         i++)
        if (strcmp(json_string_value(st), obs_status_names[i]) == 0) {
            e->status = (ct_fhir_obs_status)i;
            found = 1;
        }
    if (!found)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_CODE_INVALID, "Observation.status",
                            "status must be one of registered, preliminary, final, amended, "
                            "corrected, cancelled, entered-in-error, unknown");
    /* code: MDC_ECG_ELEC_POTL */
    const json_t *code = json_object_get(obs, "code");
    if (!code)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, "Observation.code",
                            "code is required: MDC 131328 (MDC_ECG_ELEC_POTL)");
    const json_t *coding = json_is_object(code) ? json_object_get(code, "coding") : NULL;
    found = 0;
    for (size_t i = 0; json_is_array(coding) && i < json_array_size(coding); i++) {
        const json_t *c = json_array_get(coding, i);
        if (json_is_object(c) && is_mdc_system(ct_fhir_get_string(c, "system")) &&
            mdc_number(ct_fhir_get_string(c, "code")) == CT_FHIR_ECG_CODE)
            found = 1;
    }
    if (!found)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_CODE_INVALID, "Observation.code",
                            "an ECG Observation is coded 131328 (MDC_ECG_ELEC_POTL) in system "
                            CT_FHIR_SYS_MDC " or " CT_FHIR_SYS_MDC_ISO);
    /* subject: the patient on this server */
    const json_t *subject = json_object_get(obs, "subject");
    const char *sref = json_is_object(subject) ? ct_fhir_get_string(subject, "reference") : NULL;
    if (!sref)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED,
                            "Observation.subject.reference",
                            "subject.reference is required: \"Patient/ID\"");
    ct_fhir_ref ref;
    if ((rc = ct_fhir_ref_parse(sref, "Observation.subject.reference", &ref, issue)) != 0)
        return rc;
    if (ref.kind != CT_FHIR_REF_RELATIVE || strcmp(ref.type, "Patient") != 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE,
                            "Observation.subject.reference",
                            "subject must be a Patient on this server, written \"Patient/ID\"");
    snprintf(e->patient_id, sizeof e->patient_id, "%s", ref.id);
    if ((rc = read_effective(obs, e, issue)) != 0)
        return rc;
    const json_t *device = json_object_get(obs, "device");
    const char *dref = json_is_object(device) ? ct_fhir_get_string(device, "reference") : NULL;
    if (dref) {
        if ((rc = ct_fhir_ref_parse(dref, "Observation.device.reference", &ref, issue)) != 0)
            return rc;
        if (ref.kind != CT_FHIR_REF_RELATIVE ||
            (strcmp(ref.type, "Device") != 0 && strcmp(ref.type, "DeviceMetric") != 0))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE,
                                "Observation.device.reference",
                                "device must be written \"Device/ID\"");
        if (strcmp(ref.type, "Device") == 0)
            snprintf(e->device_id, sizeof e->device_id, "%s", ref.id);
    }
    /* The samples live in components; a value[x] at the top would be a
     * second, unlabelled signal. */
    const char *key;
    const json_t *child;
    json_object_foreach((json_t *)obs, key, child) {
        if (strncmp(key, "value", 5) == 0)
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_NOT_SUPPORTED,
                                "Observation.value[x]",
                                "put each lead's samples in its own component, not in "
                                "Observation.value[x]");
    }
    const json_t *comps = json_object_get(obs, "component");
    if (!comps)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, "Observation.component",
                            "an ECG Observation needs one component per lead");
    if (!json_is_array(comps))
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, "Observation.component",
                            "component must be an array");
    size_t nc = json_array_size(comps);
    if (nc > (size_t)lim->max_leads)
        return ct_fhir_fail(issue, CT_ELIMIT, 422, CT_FHIR_IT_TOO_LONG, "Observation.component",
                            "%zu components; an ECG Observation holds at most %d leads", nc,
                            lim->max_leads);
    ct_path path;
    for (size_t c = 0; c < nc; c++) {
        const json_t *comp = json_array_get(comps, c);
        ct_path_init(&path, "Observation");
        ct_path_push(&path, ".component[%zu]", c);
        if (!json_is_object(comp))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path.s,
                                "component must be an object");
        ct_fhir_ecg_lead *L = &e->leads[c];
        if ((rc = read_lead_code(comp, &path, &L->lead, L->text, sizeof L->text, issue)) != 0)
            return rc;
        for (size_t k = 0; k < c; k++)
            if (e->leads[k].lead == L->lead) {
                ct_path_push(&path, ".code");
                return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_DUPLICATE, path.s,
                                    "lead %s appears in component[%zu] and component[%zu]; "
                                    "send each lead once",
                                    L->lead->name, k, c);
            }
        const json_t *sd = json_object_get(comp, "valueSampledData");
        if (!sd) {
            ct_path_push(&path, ".value[x]");
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, path.s,
                                "each lead needs valueSampledData");
        }
        ct_path_push(&path, ".valueSampledData");
        if (!json_is_object(sd))
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_STRUCTURE, path.s,
                                "valueSampledData must be an object");
        if ((rc = read_sampled_data(sd, &path, lim->max_samples, e, L, issue)) != 0)
            return rc;
        e->n_leads = (int)c + 1;
        if (c > 0 && L->period_ms != e->leads[0].period_ms) {
            ct_path_push(&path, ".period");
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, path.s,
                                "period is %g ms but component[0] has %g ms; all leads of one "
                                "Observation share one sampling rate",
                                L->period_ms, e->leads[0].period_ms);
        }
        if (c > 0 && L->n_samples != e->leads[0].n_samples) {
            ct_path_push(&path, ".data");
            return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_VALUE, path.s,
                                "%zu samples but component[0] has %zu; all leads of one "
                                "Observation cover the same time",
                                L->n_samples, e->leads[0].n_samples);
        }
    }
    if (nc == 0)
        return ct_fhir_fail(issue, CT_EFORMAT, 422, CT_FHIR_IT_REQUIRED, "Observation.component",
                            "an ECG Observation needs at least one lead");
    return 0;
}

int ct_fhir_ecg_from_json(const json_t *obs, const ct_fhir_ecg_limits *lim, ct_fhir_ecg *out,
                          ct_fhir_issue *issue)
{
    ct_fhir_ecg_limits dl = ct_fhir_ecg_limits_default();
    if (!lim)
        lim = &dl;
    memset(out, 0, sizeof *out);
    ct_fhir_ecg_limits l = *lim;
    if (l.max_leads < 1 || l.max_leads > CT_FHIR_ECG_MAX_LEADS)
        l.max_leads = CT_FHIR_ECG_MAX_LEADS;
    int rc = ecg_from_json(obs, &l, out, issue);
    if (rc)
        ct_fhir_ecg_free(out);
    return rc;
}

/* --- building ----------------------------------------------------------- */

/* A number as FHIR JSON likes it: an integer when it is one. */
static json_t *num(double v)
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0)
        return json_integer((json_int_t)v);
    return json_real(v);
}

static json_t *coding(const char *system, const char *code, const char *display)
{
    return json_pack("{s:[{s:s,s:s,s:s}]}", "coding", "system", system, "code", code, "display",
                     display);
}

static json_t *sampled_data(const ct_fhir_ecg_lead_in *li, double period_ms, size_t n,
                            ct_error *err)
{
    double factor = 1000.0 / li->gain_adu_per_mv;
    double origin = -(double)li->baseline_adu * factor;
    /* "-32767 " is the widest value: 7 bytes each. */
    char *buf = malloc(n * 7 + 1);
    if (!buf) {
        ct_error_set(err, CT_ENOMEM, "ECG Observation: out of memory for %zu samples", n);
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf[o++] = ' ';
        int16_t x = li->samples[i];
        if (x == CT_FHIR_SAMPLE_MISSING) {
            buf[o++] = 'E';
            continue;
        }
        int v = x;
        if (v < 0) {
            buf[o++] = '-';
            v = -v;
        }
        char tmp[6];
        int k = 0;
        do {
            tmp[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (k)
            buf[o++] = tmp[--k];
    }
    buf[o] = '\0';
    json_t *data = json_stringn_nocheck(buf, o);
    free(buf);
    json_t *sd = json_pack("{s:{s:o,s:s,s:s,s:s},s:o,s:o,s:i,s:o}", "origin", "value", num(origin),
                           "unit", "uV", "system", CT_FHIR_SYS_UCUM, "code", "uV", "period",
                           num(period_ms), "factor", num(factor), "dimensions", 1, "data", data);
    if (!sd)
        ct_error_set(err, CT_ENOMEM, "ECG Observation: out of memory");
    return sd;
}

static int set_new(json_t *obj, const char *key, json_t *v)
{
    return v ? json_object_set_new(obj, key, v) : -1;
}

static int valid_status(const char *s)
{
    for (size_t i = 0; i < sizeof obs_status_names / sizeof *obs_status_names; i++)
        if (strcmp(s, obs_status_names[i]) == 0)
            return 1;
    return 0;
}

static int text_ok(const char *s, size_t max)
{
    size_t n = strlen(s);
    return n >= 1 && n <= max && ct_fhir_utf8_valid((const unsigned char *)s, n, NULL);
}

int ct_fhir_ecg_to_json(const ct_fhir_ecg_in *in, json_t **out, ct_error *err)
{
    *out = NULL;
    if (!in || !in->patient_id || !ct_fhir_id_valid(in->patient_id, strlen(in->patient_id)))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: patient id is missing or not a FHIR id");
    if (in->id && !ct_fhir_id_valid(in->id, strlen(in->id)))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: id \"%.64s\" is not a FHIR id", in->id);
    if (in->device_id && !ct_fhir_id_valid(in->device_id, strlen(in->device_id)))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: device id is not a FHIR id");
    if (!(in->fs_hz >= 1.0 && in->fs_hz <= 100000.0))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: fs %g Hz is outside 1..100000", in->fs_hz);
    if (in->n_leads < 1 || in->n_leads > CT_FHIR_ECG_MAX_LEADS)
        return ct_error_set(err, CT_EINVAL, "ECG Observation: %d leads, expected 1..%d", in->n_leads,
                            CT_FHIR_ECG_MAX_LEADS);
    if (in->n_samples < 1 || in->n_samples > CT_FHIR_ECG_DEFAULT_MAX_SAMPLES)
        return ct_error_set(err, CT_EINVAL, "ECG Observation: %zu samples per lead, expected 1..%zu",
                            in->n_samples, CT_FHIR_ECG_DEFAULT_MAX_SAMPLES);
    if (in->status && !valid_status(in->status))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: status \"%.32s\" is not an Observation status",
                            in->status);
    if ((in->identifier_system && !text_ok(in->identifier_system, 1024)) ||
        (in->identifier_value && !text_ok(in->identifier_value, 1024)))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: identifier is not UTF-8 text of 1..1024 bytes");
    if ((in->identifier_system == NULL) != (in->identifier_value == NULL))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: identifier needs both system and value");
    for (int l = 0; l < in->n_leads; l++) {
        const ct_fhir_ecg_lead_in *li = &in->leads[l];
        if (!ct_fhir_lead_by_code(li->mdc_code))
            return ct_error_set(err, CT_EINVAL, "ECG Observation: lead %d has MDC code %d, not an accepted lead",
                                l, li->mdc_code);
        if (li->text && *li->text && !text_ok(li->text, 31))
            return ct_error_set(err, CT_EINVAL, "ECG Observation: lead %d text is not UTF-8 of at most 31 bytes", l);
        if (!(li->gain_adu_per_mv > 0) || !isfinite(li->gain_adu_per_mv) || !li->samples)
            return ct_error_set(err, CT_EINVAL, "ECG Observation: lead %d needs samples and a gain > 0", l);
        for (int k = 0; k < l; k++)
            if (in->leads[k].mdc_code == li->mdc_code)
                return ct_error_set(err, CT_EINVAL, "ECG Observation: lead %d repeats MDC code %d", l,
                                    li->mdc_code);
    }
    char start[CT_FHIR_INSTANT_CAP], end[CT_FHIR_INSTANT_CAP];
    int64_t dur_ms = (int64_t)floor((double)in->n_samples * 1000.0 / in->fs_hz + 0.5);
    if (ct_fhir_instant_format(in->start_ms, start, sizeof start) ||
        ct_fhir_instant_format(in->start_ms + dur_ms, end, sizeof end))
        return ct_error_set(err, CT_EINVAL, "ECG Observation: start time %lld ms is out of range",
                            (long long)in->start_ms);
    json_t *obs = json_object();
    json_t *comps = json_array();
    char ref[CT_FHIR_ID_MAX + 16];
    int bad = !obs || !comps;
    bad = bad || set_new(obs, "resourceType", json_string("Observation"));
    if (in->id)
        bad = bad || set_new(obs, "id", json_string(in->id));
    bad = bad || set_new(obs, "meta", json_pack("{s:[s]}", "profile", CT_FHIR_ECG_PROFILE));
    if (in->identifier_system)
        bad = bad || set_new(obs, "identifier", json_pack("[{s:s,s:s}]", "system",
                                                          in->identifier_system, "value",
                                                          in->identifier_value));
    bad = bad || set_new(obs, "status", json_string(in->status ? in->status : "final"));
    bad = bad || set_new(obs, "category",
                         json_pack("[{s:[{s:s,s:s,s:s}]}]", "coding", "system",
                                   "http://terminology.hl7.org/CodeSystem/observation-category",
                                   "code", "procedure", "display", "Procedure"));
    bad = bad || set_new(obs, "code", coding(CT_FHIR_SYS_MDC, "131328", "MDC_ECG_ELEC_POTL"));
    snprintf(ref, sizeof ref, "Patient/%s", in->patient_id);
    bad = bad || set_new(obs, "subject", json_pack("{s:s}", "reference", ref));
    bad = bad || set_new(obs, "effectivePeriod", json_pack("{s:s,s:s}", "start", start, "end", end));
    if (in->device_id) {
        snprintf(ref, sizeof ref, "Device/%s", in->device_id);
        bad = bad || set_new(obs, "device", json_pack("{s:s}", "reference", ref));
    }
    bad = bad || json_object_set(obs, "component", comps);
    double period_ms = 1000.0 / in->fs_hz;
    for (int l = 0; !bad && l < in->n_leads; l++) {
        const ct_fhir_ecg_lead_in *li = &in->leads[l];
        const ct_fhir_lead_info *info = ct_fhir_lead_by_code(li->mdc_code);
        char code[16];
        snprintf(code, sizeof code, "%d", info->mdc_code);
        json_t *cc = coding(CT_FHIR_SYS_MDC, code, info->mdc_name);
        if (cc && li->text && *li->text)
            bad = set_new(cc, "text", json_string(li->text));
        json_t *sd = sampled_data(li, period_ms, in->n_samples, err);
        json_t *comp = json_object();
        if (!cc || !sd || !comp || bad) {
            json_decref(cc);
            json_decref(sd);
            json_decref(comp);
            bad = 1;
            break;
        }
        /* set_new and append_new consume their value even when they fail. */
        int r1 = json_object_set_new(comp, "code", cc);
        int r2 = json_object_set_new(comp, "valueSampledData", sd);
        int r3 = json_array_append_new(comps, comp);
        bad = r1 || r2 || r3;
    }
    json_decref(comps);
    if (bad) {
        json_decref(obs);
        return ct_error_set(err, CT_ENOMEM, "ECG Observation: out of memory");
    }
    *out = obs;
    return 0;
}
