/* twin/beats: every beat the detector finds is stored (twin_beat,
 * migrations/0008_twin_beats.sql), so that GET /api/beats can serve a
 * stream's beats after the live view's few hundred have moved on.
 *
 * The one idea: beats are queued, never written one by one. The detector
 * reports them from inside its push, under the patient's lock, where
 * nothing may touch the database (the caller may be holding no
 * transaction, or the wrong one); the queue is written as one operation by
 * whoever finished pushing: ct_twin_ecg_end, ct_twin_stream_end,
 * ct_twin_flush, or ct_twin_ecg_begin when the queue has grown to
 * max_pending_beats. A write the store refuses leaves the queue whole and
 * is retried by the next of those calls, in order, so no beat is dropped
 * while the database is briefly unwell; the store ignores a beat it holds
 * already, so writing a batch twice stores each beat once. Beats still
 * queued when the process stops are lost with the detector's state, as
 * pending alert reports are (docs/twin.md, Failures). Cost: one insert per
 * beat inside one transaction per call, about 10-15 beats per 10 s
 * Observation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "twin_internal.h"

void tw_beat_queue(tw_patient *p, const ct_ecg_beat *b)
{
    if (p->n_beat_q == p->cap_beat_q) {
        size_t cap = p->cap_beat_q ? 2 * p->cap_beat_q : 64;
        ct_store_twin_beat *q = cap > p->cap_beat_q ? realloc(p->beat_q, cap * sizeof *q) : NULL;
        if (!q) {
            p->beats_lost++;
            return;
        }
        p->beat_q = q;
        p->cap_beat_q = cap;
    }
    ct_store_twin_beat *w = &p->beat_q[p->n_beat_q++];
    w->stream_id = p->stream.id;
    w->sample = b->sample;
    w->cls = ct_ecg_beat_class_mnemonic(b->cls)[0];
    /* The store keeps what a person reads: a rate from 0 to 1000 bpm
     * (anything else is the detector having none) and a whole RR. */
    w->hr_bpm = b->hr_bpm > 0 && b->hr_bpm <= 1000 ? b->hr_bpm : 0;
    w->rr_ms = b->rr_ms > 0 ? b->rr_ms : 0;
}

int tw_beats_write(ct_twin *t, tw_patient *p, ct_store *st, size_t *stored, ct_error *err)
{
    (void)t;
    *stored = 0;
    if (!st || ct_store_in_transaction(st))
        return ct_error_set(err, CT_EINVAL, "patient %s: beats are written outside a transaction", p->id);
    if (p->n_beat_q) {
        size_t added = 0;
        int rc = ct_store_twin_beats_insert(st, p->beat_q, p->n_beat_q, &added, err);
        if (rc != CT_OK) {
            ct_error_prefix(err, "patient %s: storing %zu beats (kept for the next call)", p->id, p->n_beat_q);
            return rc;
        }
        *stored = p->n_beat_q;
        p->n_beat_q = 0;
        /* A burst (a stream's end after an outage) need not hold its
         * memory for the patient's lifetime. */
        if (p->cap_beat_q > 1024) {
            free(p->beat_q);
            p->beat_q = NULL;
            p->cap_beat_q = 0;
        }
    }
    if (p->beats_lost) {
        /* Said once: the caller logs it; those beats are gone. */
        size_t lost = p->beats_lost;
        p->beats_lost = 0;
        return ct_error_set(err, CT_ENOMEM, "patient %s: %zu beats were not stored for want of memory", p->id,
                            lost);
    }
    return CT_OK;
}

void tw_beats_free(tw_patient *p)
{
    free(p->beat_q);
    p->beat_q = NULL;
    p->n_beat_q = p->cap_beat_q = 0;
}
