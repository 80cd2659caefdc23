/* libFuzzer harness for ECG Observations from outside: any bytes go through
 * the same path as a POSTed body (bounded parse, resource shape, ECG
 * extraction). Each step must end in success with every promise of its
 * result kept, or in an issue with a status, a type and one line of
 * diagnostics; never a crash, a leak or an out-of-bounds read. An accepted
 * ECG is built back into an Observation and read again: the samples must
 * come back unchanged. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/fhir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_issue(const ct_fhir_issue *is, int rc)
{
    if (rc == 0 || !is->diagnostics[0] || strchr(is->diagnostics, '\n') ||
        !memchr(is->diagnostics, '\0', sizeof is->diagnostics) ||
        !memchr(is->expression, '\0', sizeof is->expression))
        abort();
    if (is->http_status != 400 && is->http_status != 413 && is->http_status != 422 &&
        !(rc == CT_ENOMEM && is->http_status == 500))
        abort();
    /* Whatever the input, the issue can be told to the caller. */
    json_t *oo = ct_fhir_operation_outcome(is, 1);
    if (!oo)
        abort();
    json_decref(oo);
}

static void roundtrip(const ct_fhir_ecg *e)
{
    ct_fhir_ecg_in in;
    memset(&in, 0, sizeof in);
    in.patient_id = e->patient_id;
    in.start_ms = e->start_ms;
    in.fs_hz = e->leads[0].fs_hz;
    in.n_samples = e->leads[0].n_samples;
    in.n_leads = e->n_leads;
    for (int l = 0; l < e->n_leads; l++) {
        in.leads[l].mdc_code = e->leads[l].lead->mdc_code;
        in.leads[l].text = e->leads[l].text[0] ? e->leads[l].text : NULL;
        in.leads[l].gain_adu_per_mv = e->leads[l].gain_adu_per_mv;
        in.leads[l].baseline_adu = (int)floor(e->leads[l].baseline_adu + 0.5);
        in.leads[l].samples = e->leads[l].samples;
    }
    json_t *obs;
    ct_error err;
    /* A start near year 9999 may leave no room for the end: refused. */
    if (ct_fhir_ecg_to_json(&in, &obs, &err) != 0) {
        if (err.code != CT_EINVAL && err.code != CT_ENOMEM)
            abort();
        return;
    }
    ct_fhir_ecg back;
    ct_fhir_issue is;
    if (ct_fhir_ecg_from_json(obs, NULL, &back, &is) != 0)
        abort();
    if (back.n_leads != e->n_leads || back.start_ms != e->start_ms)
        abort();
    for (int l = 0; l < e->n_leads; l++)
        if (back.leads[l].n_samples != e->leads[l].n_samples || !back.leads[l].exact ||
            memcmp(back.leads[l].samples, e->leads[l].samples,
                   e->leads[l].n_samples * sizeof(int16_t)) != 0)
            abort();
    ct_fhir_ecg_free(&back);
    json_decref(obs);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ct_fhir_limits lim = ct_fhir_limits_default();
    lim.max_bytes = 1 << 20;
    json_t *j = NULL;
    ct_fhir_issue is;
    int rc = ct_fhir_parse((const char *)data, size, &lim, &j, &is);
    if (rc) {
        check_issue(&is, rc);
        if (j)
            abort();
        return 0;
    }
    rc = ct_fhir_validate_resource(j, NULL, &is);
    if (rc)
        check_issue(&is, rc);
    ct_fhir_ecg_limits el = ct_fhir_ecg_limits_default();
    el.max_samples = 100000;
    ct_fhir_ecg e;
    rc = ct_fhir_ecg_from_json(j, &el, &e, &is);
    if (rc) {
        check_issue(&is, rc);
        if (e.n_leads != 0)
            abort();
    } else {
        if (e.n_leads < 1 || e.n_leads > CT_FHIR_ECG_MAX_LEADS || !e.patient_id[0] ||
            e.n_warnings > CT_FHIR_ECG_MAX_WARNINGS)
            abort();
        for (int l = 0; l < e.n_leads; l++) {
            const ct_fhir_ecg_lead *L = &e.leads[l];
            if (!L->lead || !L->samples || L->n_samples == 0 || L->n_samples > el.max_samples ||
                L->n_samples != e.leads[0].n_samples || L->n_missing > L->n_samples ||
                !(L->fs_hz > 0) || !(L->gain_adu_per_mv > 0) || !isfinite(L->baseline_adu))
                abort();
            size_t missing = 0;
            for (size_t i = 0; i < L->n_samples; i++)
                missing += L->samples[i] == CT_FHIR_SAMPLE_MISSING;
            if (missing != L->n_missing)
                abort();
        }
        roundtrip(&e);
        ct_fhir_ecg_free(&e);
    }
    json_decref(j);
    return 0;
}
