/* twin: the live state of each monitored patient; it wires stream -> detect
 * -> policy -> sinks, so that a record imported from MIT-BIH and an
 * Observation posted by a bedside gateway go through the same detector.
 *
 * ct_twin_detect_record runs the streaming detector (the ecg room) over a
 * whole decoded record, exactly as the live pipeline would, and returns what
 * it found as WFDB annotations: beats (N, A, V, F, Q codes) and rhythm
 * changes (RHYTHM with aux "(AFIB", "(N", ...), in time order, so that they
 * can be written as an annotation file or scored by the ec57 room. lead is a
 * signal index, or -1 for all leads. On success *out is malloc'd (free with
 * free()) and *n_out is its length. */
#ifndef CARDIOTWIN_TWIN_H
#define CARDIOTWIN_TWIN_H

#include <stddef.h>

#include "cardiotwin/ecg.h"
#include "cardiotwin/error.h"
#include "cardiotwin/wfdb.h"

int ct_twin_detect_record(const ct_wfdb_header *hdr, const ct_wfdb_signals *sig, int lead /* -1 = all */, ct_wfdb_annotation **out, size_t *n_out, ct_error *err);

/* The same run, with the detector's own beats and events delivered to sink
 * as they are found (for callers that want confidences or features). The
 * record is pushed in chunks of at most 4096 frames; a sample marked invalid
 * by WFDB (CT_WFDB_INVALID_SAMPLE) is pushed as an absent lead. */
int ct_twin_run_record(const ct_wfdb_header *hdr, const ct_wfdb_signals *sig, int lead,
                       const ct_ecg_sink *sink, ct_error *err);

/* The WFDB annotation that stands for a detector event (RHYTHM '+' with the
 * label as aux, NOISE '~' for quality, NOTE '"' for pauses, asystole and
 * ventricular runs), or 0 when the event has no annotation. */
int ct_twin_event_annotation(const ct_ecg_event *ev, ct_wfdb_annotation *out);

#endif
