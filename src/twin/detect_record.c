/* twin/detect_record: runs the streaming detector over a whole decoded WFDB
 * record, as the live pipeline runs it over a stream, and turns what it
 * reports into WFDB annotations. The record is pushed in chunks, never whole,
 * so that what is scored offline is what a bedside stream would get. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/twin.h"

#define CHUNK_FRAMES 4096

int ct_twin_run_record(const ct_wfdb_header *hdr, const ct_wfdb_signals *sig, int lead,
                       const ct_ecg_sink *sink, unsigned flags, ct_error *err)
{
    if (!hdr || !sig)
        return ct_error_set(err, CT_EINVAL, "detect: no record given");
    const char *rec = hdr->record_name;
    if (sig->n_signals < 1 || sig->n_signals > CT_WFDB_MAX_SIGNALS || sig->n_samples < 0)
        return ct_error_set(err, CT_EINVAL, "record %s: no signals to read", rec);
    if (lead < -1 || lead >= sig->n_signals)
        return ct_error_set(err, CT_EINVAL, "record %s: lead %d does not exist (signals 0..%d)",
                            rec, lead, sig->n_signals - 1);
    if (!(hdr->fs_hz >= CT_ECG_MIN_FS_HZ && hdr->fs_hz <= CT_ECG_MAX_FS_HZ))
        return ct_error_set(err, CT_EUNSUPPORTED,
                            "record %s: sampling frequency %g Hz is outside the detector's %g..%g Hz",
                            rec, hdr->fs_hz, CT_ECG_MIN_FS_HZ, CT_ECG_MAX_FS_HZ);

    int idx[CT_ECG_MAX_LEADS];
    int n = 0;
    if (lead >= 0) {
        idx[n++] = lead;
    } else {
        for (int s = 0; s < sig->n_signals && n < CT_ECG_MAX_LEADS; s++)
            idx[n++] = s;
    }
    ct_ecg_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fs_hz = hdr->fs_hz;
    cfg.n_leads = n;
    cfg.keep_artifacts = (flags & CT_TWIN_KEEP_ARTIFACTS) != 0;
    for (int l = 0; l < n; l++) {
        const ct_wfdb_signal *s = &hdr->signals[idx[l]];
        double g = s->gain_given && s->gain_adu_per_unit > 0 ? s->gain_adu_per_unit : 200.0;
        /* Gains are per physical unit; the detector wants ADC units per mV. */
        if (strcmp(s->units, "uV") == 0)
            g *= 1000.0;
        else if (strcmp(s->units, "V") == 0)
            g /= 1000.0;
        cfg.gain_adu_per_mv[l] = g;
        cfg.baseline_adu[l] = s->baseline_adu;
        if (!sig->samples[idx[l]])
            return ct_error_set(err, CT_EINVAL, "record %s: signal %d was not read", rec, idx[l]);
    }

    ct_ecg_detector *d = NULL;
    int rc = ct_ecg_detector_new(&cfg, sink, &d, err);
    if (rc) {
        ct_error_prefix(err, "record %s", rec);
        return rc;
    }
    const int16_t *ptr[CT_ECG_MAX_LEADS];
    int64_t i = 0;
    while (i < sig->n_samples) {
        /* A run of frames with the same leads valid, up to one chunk. */
        unsigned valid = 0;
        for (int l = 0; l < n; l++)
            if (sig->samples[idx[l]][i] != CT_WFDB_INVALID_SAMPLE)
                valid |= 1u << l;
        int64_t j = i + 1;
        while (j < sig->n_samples && j - i < CHUNK_FRAMES) {
            unsigned v = 0;
            for (int l = 0; l < n; l++)
                if (sig->samples[idx[l]][j] != CT_WFDB_INVALID_SAMPLE)
                    v |= 1u << l;
            if (v != valid)
                break;
            j++;
        }
        for (int l = 0; l < n; l++)
            ptr[l] = (valid >> l) & 1u ? sig->samples[idx[l]] + i : NULL;
        rc = ct_ecg_detector_push(d, ptr, (size_t)(j - i));
        if (rc) {
            ct_ecg_detector_free(d);
            return ct_error_set(err, rc, "record %s: the detector refused frames %lld..%lld", rec,
                                (long long)i, (long long)j - 1);
        }
        i = j;
    }
    ct_ecg_detector_finish(d);
    ct_ecg_detector_free(d);
    return 0;
}

int ct_twin_event_annotation(const ct_ecg_event *ev, ct_wfdb_annotation *out)
{
    memset(out, 0, sizeof *out);
    out->sample = ev->sample;
    switch (ev->kind) {
    case CT_EVENT_RHYTHM:
        /* An annotation file marks where a rhythm begins; its end is where
         * the next one begins. */
        if (ev->end_sample != -1)
            return 0;
        out->code = CT_ANN_RHYTHM;
        snprintf(out->aux, sizeof out->aux, "%s", ev->label);
        break;
    case CT_EVENT_QUALITY: {
        /* MIT convention: low nibble = noisy signals, high nibble =
         * unreadable signals; "ok" clears both. */
        out->code = CT_ANN_NOISE;
        int bit = ev->lead >= 0 && ev->lead < 4 ? 1 << ev->lead : 0x0f;
        if (strcmp(ev->label, "noise") == 0)
            out->subtype = bit;
        else if (strcmp(ev->label, "ok") != 0)
            out->subtype = bit << 4;
        if (out->subtype > 127)
            out->subtype = 127;
        out->chan = ev->lead >= 0 && ev->lead < 256 ? ev->lead : 0;
        snprintf(out->aux, sizeof out->aux, "%s", ev->label);
        break;
    }
    case CT_EVENT_PAUSE:
        out->code = CT_ANN_NOTE;
        snprintf(out->aux, sizeof out->aux, "pause %.0f ms", ev->value);
        break;
    case CT_EVENT_ASYSTOLE:
        if (ev->end_sample != -1)
            return 0;
        out->code = CT_ANN_NOTE;
        snprintf(out->aux, sizeof out->aux, "asystole");
        break;
    case CT_EVENT_VRUN:
        out->code = CT_ANN_NOTE;
        snprintf(out->aux, sizeof out->aux, "V %s %.0f", ev->label, ev->value);
        break;
    default:
        return 0;
    }
    out->aux_len = (int)strlen(out->aux);
    return 1;
}

typedef struct collect {
    ct_wfdb_annotation *a;
    size_t n, cap;
    int failed;
} collect;

static void add(collect *c, const ct_wfdb_annotation *ann)
{
    if (c->failed)
        return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4096;
        ct_wfdb_annotation *na = realloc(c->a, cap * sizeof *na);
        if (!na) {
            c->failed = 1;
            return;
        }
        c->a = na;
        c->cap = cap;
    }
    c->a[c->n++] = *ann;
}

static void on_beat(void *ctx, const ct_ecg_beat *b)
{
    static const int codes[] = {CT_ANN_NORMAL, CT_ANN_APC, CT_ANN_PVC, CT_ANN_FUSION,
                                CT_ANN_UNKNOWN};
    ct_wfdb_annotation a;
    memset(&a, 0, sizeof a);
    a.sample = b->sample;
    a.code = (int)b->cls >= 0 && (int)b->cls <= 4 ? codes[b->cls] : CT_ANN_UNKNOWN;
    add(ctx, &a);
}

static void on_event(void *ctx, const ct_ecg_event *ev)
{
    ct_wfdb_annotation a;
    if (ct_twin_event_annotation(ev, &a))
        add(ctx, &a);
}

/* Events can be dated before beats already reported (a rhythm is known a
 * few beats after it began): a stable sort by sample keeps report order on
 * ties. O(n log n), n a few thousand per half hour. */
static void merge_sort(collect *c, ct_wfdb_annotation *tmp, size_t lo, size_t hi)
{
    if (hi - lo < 2)
        return;
    size_t mid = lo + (hi - lo) / 2;
    merge_sort(c, tmp, lo, mid);
    merge_sort(c, tmp, mid, hi);
    size_t i = lo, j = mid, k = lo;
    while (i < mid && j < hi)
        tmp[k++] = c->a[j].sample < c->a[i].sample ? c->a[j++] : c->a[i++];
    while (i < mid)
        tmp[k++] = c->a[i++];
    while (j < hi)
        tmp[k++] = c->a[j++];
    memcpy(c->a + lo, tmp + lo, (hi - lo) * sizeof *tmp);
}

int ct_twin_detect_record(const ct_wfdb_header *hdr, const ct_wfdb_signals *sig, int lead,
                          ct_wfdb_annotation **out, size_t *n_out, ct_error *err)
{
    if (!out || !n_out)
        return ct_error_set(err, CT_EINVAL, "detect: no place to put the annotations");
    *out = NULL;
    *n_out = 0;
    collect c;
    memset(&c, 0, sizeof c);
    ct_ecg_sink sink = {on_beat, on_event, &c};
    int rc = ct_twin_run_record(hdr, sig, lead, &sink, 0, err);
    if (rc == 0 && c.failed)
        rc = ct_error_set(err, CT_ENOMEM, "record %s: out of memory for the annotations",
                          hdr->record_name);
    if (rc == 0 && c.n > 1) {
        ct_wfdb_annotation *tmp = malloc(c.n * sizeof *tmp);
        if (!tmp)
            rc = ct_error_set(err, CT_ENOMEM, "record %s: out of memory for the annotations",
                              hdr->record_name);
        else
            merge_sort(&c, tmp, 0, c.n);
        free(tmp);
    }
    if (rc) {
        free(c.a);
        return rc;
    }
    *out = c.a;
    *n_out = c.n;
    return 0;
}
