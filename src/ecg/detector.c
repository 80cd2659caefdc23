/* ecg/detector: the public face of the ecg room. It owns one allocation that
 * holds every buffer of the three stages (qrs.c, classify.c, rhythm.c) and
 * runs them frame by frame, so that chunking cannot change what comes out:
 * the stages see one frame at a time whatever the caller pushes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ecg_internal.h"

struct ct_ecg_detector {
    ct_ecg_config cfg;
    ct_ecg_sink sink;
    ct_qrs qrs;
    ct_classify cls;
    ct_rhythm rhythm;
    int finished;
    size_t bytes;
    void *mem;
};

const char *ct_ecg_beat_class_mnemonic(ct_ecg_beat_class cls)
{
    switch (cls) {
    case CT_BEAT_N: return "N";
    case CT_BEAT_S: return "A";
    case CT_BEAT_V: return "V";
    case CT_BEAT_F: return "F";
    case CT_BEAT_Q: return "Q";
    }
    return "Q";
}

int ct_ecg_detector_new(const ct_ecg_config *cfg, const ct_ecg_sink *sink,
                        ct_ecg_detector **out, ct_error *err)
{
    if (!out)
        return ct_error_set(err, CT_EINVAL, "ecg detector: no place to put the detector");
    *out = NULL;
    if (!cfg)
        return ct_error_set(err, CT_EINVAL, "ecg detector: no configuration given");
    if (!(cfg->fs_hz >= CT_ECG_MIN_FS_HZ && cfg->fs_hz <= CT_ECG_MAX_FS_HZ))
        return ct_error_set(err, CT_EINVAL,
                            "ecg detector: sampling frequency %g Hz is outside %g..%g Hz",
                            cfg->fs_hz, CT_ECG_MIN_FS_HZ, CT_ECG_MAX_FS_HZ);
    if (cfg->n_leads < 1 || cfg->n_leads > CT_ECG_MAX_LEADS)
        return ct_error_set(err, CT_EINVAL, "ecg detector: %d leads, expected 1..%d",
                            cfg->n_leads, CT_ECG_MAX_LEADS);
    for (int l = 0; l < cfg->n_leads; l++)
        if (!(cfg->gain_adu_per_mv[l] > 0.0 && cfg->gain_adu_per_mv[l] < 1e7))
            return ct_error_set(err, CT_EINVAL,
                                "ecg detector: lead %d gain %g ADC units/mV is not a positive number",
                                l, cfg->gain_adu_per_mv[l]);
    /* Samples are 16-bit; a baseline outside twice that range is a mistake,
     * and bounding it keeps every filter sum far from overflow. */
    for (int l = 0; l < cfg->n_leads; l++)
        if (cfg->baseline_adu[l] < -65536 || cfg->baseline_adu[l] > 65536)
            return ct_error_set(err, CT_EINVAL,
                                "ecg detector: lead %d baseline %d ADC units is outside -65536..65536",
                                l, cfg->baseline_adu[l]);

    ct_ecg_detector *d = calloc(1, sizeof *d);
    if (!d)
        return ct_error_set(err, CT_ENOMEM, "ecg detector: out of memory");
    d->cfg = *cfg;
    if (sink)
        d->sink = *sink;
    size_t qb = ct_qrs_bytes(cfg->fs_hz, cfg->n_leads);
    size_t cb = ct_classify_bytes(cfg->fs_hz, cfg->n_leads);
    qb = (qb + 63) & ~(size_t)63;
    d->mem = calloc(1, qb + cb + 64);
    if (!d->mem) {
        free(d);
        return ct_error_set(err, CT_ENOMEM, "ecg detector: out of memory (%zu bytes of buffers)",
                            qb + cb);
    }
    d->bytes = sizeof *d + qb + cb + 64;
    ct_qrs_init(&d->qrs, cfg->fs_hz, cfg->n_leads, cfg->gain_adu_per_mv, d->mem);
    ct_classify_init(&d->cls, cfg->fs_hz, cfg->n_leads, cfg->gain_adu_per_mv, (char *)d->mem + qb);
    ct_rhythm_init(&d->rhythm, cfg->fs_hz, cfg->n_leads);
    *out = d;
    return 0;
}

void ct_ecg_detector_free(ct_ecg_detector *d)
{
    if (!d)
        return;
    free(d->mem);
    free(d);
}

size_t ct_ecg_detector_memory_bytes(const ct_ecg_detector *d)
{
    return d ? d->bytes : 0;
}

int64_t ct_ecg_detector_samples(const ct_ecg_detector *d)
{
    return d ? d->qrs.n : 0;
}

static void emit_event(void *ctx, const ct_ecg_event *ev)
{
    const ct_ecg_detector *d = ctx;
    if (d->sink.on_event)
        d->sink.on_event(d->sink.ctx, ev);
}

static void on_qrs_beat(ct_ecg_detector *d, const ct_qrs_beat *qb)
{
    ct_ecg_beat b;
    memset(&b, 0, sizeof b);
    float feat[CT_ECG_N_FEATURES];
    if (!ct_classify_beat(&d->cls, &d->qrs, qb, &b, feat)) {
        /* An artefact, not a beat: no rhythm sees it. */
        if (!d->cfg.keep_artifacts)
            return;
        b.is_artifact = 1;
        b.sample = qb->sample;
        b.reported_at = d->qrs.n;
        b.features = feat;
        if (d->sink.on_beat)
            d->sink.on_beat(d->sink.ctx, &b);
        return;
    }
    b.sample = qb->sample;
    b.reported_at = d->qrs.n;
    b.features = feat;
    ct_rhythm_beat(&d->rhythm, &b, emit_event, d);
    if (d->sink.on_beat)
        d->sink.on_beat(d->sink.ctx, &b);
}

int ct_ecg_detector_push(ct_ecg_detector *d, const int16_t *const *leads, size_t n)
{
    if (!d || (!leads && n > 0) || d->finished)
        return CT_EINVAL;
    const int nl = d->cfg.n_leads;
    uint8_t present[CT_ECG_MAX_LEADS];
    int32_t base[CT_ECG_MAX_LEADS];
    const int16_t *in[CT_ECG_MAX_LEADS];
    for (int l = 0; l < nl; l++) {
        present[l] = leads[l] != NULL;
        base[l] = d->cfg.baseline_adu[l];
    }
    for (size_t i = 0; i < n; i += CT_QRS_BLOCK) {
        size_t nb = n - i < CT_QRS_BLOCK ? n - i : CT_QRS_BLOCK;
        for (int l = 0; l < nl; l++)
            in[l] = leads[l] ? leads[l] + i : NULL;
        ct_qrs_filter(&d->qrs, in, base, nb);
        for (size_t j = 0; j < nb;) {
            ct_qrs_beat qb;
            int got = 0;
            j += ct_qrs_steps(&d->qrs, present, nb - j, d->rhythm.next_check, &qb, &got);
            if (got)
                on_qrs_beat(d, &qb);
            if (d->qrs.quality_changed) {
                d->qrs.quality_changed = 0;
                ct_rhythm_quality(&d->rhythm, &d->qrs, emit_event, d);
            }
            if (d->qrs.n >= d->rhythm.next_check)
                ct_rhythm_tick(&d->rhythm, d->qrs.n, emit_event, d);
        }
    }
    return 0;
}

void ct_ecg_detector_finish(ct_ecg_detector *d)
{
    if (!d || d->finished)
        return;
    d->finished = 1;
    ct_rhythm_finish(&d->rhythm, d->qrs.n, emit_event, d);
}
