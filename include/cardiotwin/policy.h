/* policy: the clinical alert policy and its evaluation. A policy is a JSON
 * file (docs/policy.md), one per deployment, with per-patient overrides; it
 * sets, for each rule (heart rate high and low, pause, asystole, ventricular
 * run, atrial fibrillation, PVC burden, signal loss), whether it is enabled,
 * its priority (high, medium, low as in IEC 60601-1-8), its limits, its onset
 * delay and its clear hysteresis. A loaded ct_policy is immutable: threads may
 * share it.
 *
 * The evaluator (ct_policy_eval) is the state of one monitored patient. It is
 * fed the detector's beats and events (include/cardiotwin/ecg.h) and the
 * passage of time, all in samples, and reports alert transitions (RAISED,
 * UPDATED, CLEARED) to a sink. Time comes only from sample indices, never from
 * a clock, so a record gives the same alerts at every speed and in every
 * chunking. It allocates only in ct_policy_eval_new and does no I/O. */
#ifndef CARDIOTWIN_POLICY_H
#define CARDIOTWIN_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/ecg.h"
#include "cardiotwin/error.h"

/* Limits of a policy file. */
#define CT_POLICY_MAX_BYTES (2 * 1024 * 1024)
#define CT_POLICY_MAX_PATIENTS 10000
#define CT_POLICY_PATIENT_ID_MAX 128 /* bytes with the NUL, as the store's patient identifier */
#define CT_POLICY_NAME_MAX 128       /* the policy's optional "name", bytes with the NUL */

typedef enum ct_policy_priority {
    CT_POLICY_LOW = 1,
    CT_POLICY_MEDIUM = 2,
    CT_POLICY_HIGH = 3
} ct_policy_priority;

typedef enum ct_policy_rule {
    CT_POLICY_HR_HIGH = 0,
    CT_POLICY_HR_LOW,
    CT_POLICY_PAUSE,
    CT_POLICY_ASYSTOLE,
    CT_POLICY_VENTRICULAR_RUN,
    CT_POLICY_AFIB,
    CT_POLICY_PVC_BURDEN,
    CT_POLICY_SIGNAL_LOSS,
    CT_POLICY_N_RULES
} ct_policy_rule;

/* What every rule has. The onset delay is a field of its own only where a
 * condition can be "held": for pause, asystole and ventricular runs the
 * threshold itself is the delay, for atrial fibrillation it is
 * min_duration_s. */
typedef struct ct_policy_common {
    int enabled;                 /* 0: the rule never raises */
    ct_policy_priority priority;
    double clear_delay_s;        /* the clear condition must hold this long */
} ct_policy_common;

typedef struct ct_policy_hr_rule {
    ct_policy_common c;
    double threshold_bpm;        /* high: raise above it; low: below it */
    double onset_delay_s;
    double clear_hysteresis_bpm; /* clear at threshold - (high) or + (low) this */
    double extreme_bpm;          /* beyond it (held onset_delay_s) the priority escalates */
    ct_policy_priority extreme_priority; /* >= priority; equal: no escalation */
} ct_policy_hr_rule;

typedef struct ct_policy_pause_rule {
    ct_policy_common c;
    double threshold_ms;         /* an RR interval at least this long is a pause */
} ct_policy_pause_rule;

typedef struct ct_policy_asystole_rule {
    ct_policy_common c;
    double threshold_ms;         /* no beat for this long */
} ct_policy_asystole_rule;

typedef struct ct_policy_vrun_rule {
    ct_policy_common c;
    int min_beats;               /* consecutive V beats ... */
    double min_rate_bpm;         /* ... at this rate or faster */
} ct_policy_vrun_rule;

typedef struct ct_policy_afib_rule {
    ct_policy_common c;
    double min_duration_s;       /* an AF episode must last this long */
} ct_policy_afib_rule;

typedef struct ct_policy_pvc_rule {
    ct_policy_common c;
    double threshold_per_min;    /* raise above this many V beats per minute */
    double window_s;             /* counted over the last window_s seconds */
    double onset_delay_s;
    double clear_hysteresis_per_min;
} ct_policy_pvc_rule;

typedef struct ct_policy_signal_rule {
    ct_policy_common c;
    double onset_delay_s;
} ct_policy_signal_rule;

/* One patient's rules, every field set. */
typedef struct ct_policy_rules {
    ct_policy_hr_rule hr_high;
    ct_policy_hr_rule hr_low;
    ct_policy_pause_rule pause;
    ct_policy_asystole_rule asystole;
    ct_policy_vrun_rule ventricular_run;
    ct_policy_afib_rule afib;
    ct_policy_pvc_rule pvc_burden;
    ct_policy_signal_rule signal_loss;
} ct_policy_rules;

typedef struct ct_policy ct_policy;

/* The default policy compiled into the binary (src/policy/default_policy.json). */
int ct_policy_load_default(ct_policy **out, ct_error *err);

/* A deployment policy. Fields and rules it leaves out keep the values of the
 * default policy; anything it names must exist and be in range. Errors are
 * CT_EFORMAT (with the JSON path at fault, or line and column for malformed
 * JSON), CT_ELIMIT (size, patients), CT_EVERSION (a newer "version"),
 * CT_ENOTFOUND / CT_EIO (file). Messages start with `path` (or `name`). */
int ct_policy_load_file(const char *path, ct_policy **out, ct_error *err);
int ct_policy_parse(const char *json, size_t len, const char *name, ct_policy **out,
                    ct_error *err);
void ct_policy_free(ct_policy *p);

/* The rules in force for a patient (the deployment's rules merged with the
 * patient's override), or the deployment's for patient_id NULL or a patient
 * without an override. Returns 1 if the patient has an override, else 0. */
int ct_policy_rules_for(const ct_policy *p, const char *patient_id, ct_policy_rules *out);

/* The policy in force as JSON (malloc'd, NUL-terminated; free with free()).
 * patient_id NULL: the whole deployment policy, every rule field written
 * out, plus the patient overrides as given; loading it gives the same policy.
 * For a patient: {"version":1,"patient":ID,"overridden":bool,"rules":{merged}}. */
int ct_policy_to_json(const ct_policy *p, const char *patient_id, char **out, ct_error *err);

size_t ct_policy_patient_count(const ct_policy *p);
/* The policy's "name", "" if it has none. */
const char *ct_policy_name(const ct_policy *p);

/* The embedded default policy text (not NUL-terminated in general: use len). */
const char *ct_policy_default_json(size_t *len);

/* "hr_high", "ventricular_run", ...; "high", "medium", "low". NULL if out of range. */
const char *ct_policy_rule_name(ct_policy_rule rule);
const char *ct_policy_priority_name(ct_policy_priority priority);

/* ---- evaluation ------------------------------------------------------------ */

typedef enum ct_policy_transition {
    CT_POLICY_RAISED = 1,
    CT_POLICY_UPDATED = 2, /* the priority escalated (heart rate beyond extreme_bpm) */
    CT_POLICY_CLEARED = 3
} ct_policy_transition;

/* The numbers behind an alert. Fields that do not concern the rule are 0
 * (except hr_bpm, given with every alert when known). */
typedef struct ct_policy_values {
    double hr_bpm;        /* median of the last 8 RR intervals, 0 if unknown */
    double pause_ms;      /* pause and asystole: the interval without a beat */
    int run_beats;        /* ventricular_run: V beats in the run */
    double run_rate_bpm;  /* ventricular_run: rate over the run */
    double af_duration_s; /* afib: how long the episode has lasted */
    double pvc_per_min;   /* pvc_burden: V beats in the window, per minute */
    const char *quality;  /* signal_loss: "noise", "flat", "lead-off"; else NULL */
    const char *rhythm;   /* ventricular_run raised by an episode: "(VT" or "(VFL"; else NULL */
} ct_policy_values;

typedef struct ct_policy_alert {
    ct_policy_transition transition;
    uint64_t id;               /* 1, 2, ... per evaluator; an alert's transitions share it */
    ct_policy_rule rule;
    ct_policy_priority priority; /* current (after an escalation, the higher) */
    const char *patient_id;    /* as given to ct_policy_eval_new ("" if none) */
    double fs_hz;
    int64_t sample;            /* when this transition happens */
    int64_t onset_sample;      /* when the condition began */
    int64_t end_sample;        /* CLEARED: when the condition ended; else -1 */
    double threshold;          /* the limit crossed (bpm, ms, beats, s, per min); 0 for signal_loss */
    ct_policy_values values;   /* at this transition */
    ct_policy_values worst;    /* the most extreme since the onset */
    int stream_ended;          /* CLEARED by ct_policy_eval_finish, not by the patient */
} ct_policy_alert;

/* Called from inside the feeding functions; the alert is valid during the call. */
typedef struct ct_policy_sink {
    void (*on_alert)(void *ctx, const ct_policy_alert *alert);
    void *ctx;
} ct_policy_sink;

typedef struct ct_policy_eval_config {
    const char *patient_id;    /* selects the override; NULL: deployment rules */
    double fs_hz;              /* CT_ECG_MIN_FS_HZ..CT_ECG_MAX_FS_HZ */
    int n_leads;               /* 1..CT_ECG_MAX_LEADS, for quality events */
    int64_t start_sample;      /* sample index at which the stream (re)starts */
} ct_policy_eval_config;

typedef struct ct_policy_eval ct_policy_eval;

/* Takes a copy of the patient's rules: the policy may be freed afterwards. */
int ct_policy_eval_new(const ct_policy *p, const ct_policy_eval_config *cfg,
                       const ct_policy_sink *sink, ct_policy_eval **out, ct_error *err);
void ct_policy_eval_free(ct_policy_eval *e);

/* A beat from the detector. Beats come in sample order; time advances to the
 * beat first, so alerts due before it are reported first. CT_EINVAL: NULL
 * arguments, a beat not after the previous one, after finish. */
int ct_policy_eval_beat(ct_policy_eval *e, const ct_ecg_beat *beat);

/* A rhythm or quality event. Rhythm: "(AFIB" opens an AF episode, "(VT" and
 * "(VFL" a ventricular one, any other label closes them; an event that comes
 * with end_sample set is a whole episode. During ventricular flutter or
 * fibrillation ("(VFL") there are no QRS complexes to time: pause and
 * asystole are not measured across it. Quality: the lead's state from
 * `sample` on (lead -1: every lead); "ok", "noise", "flat", "lead-off", any
 * other label counts as noise. PAUSE, ASYSTOLE and VRUN events are ignored:
 * the policy measures those from the beats with its own thresholds.
 * CT_EINVAL: NULL arguments, a lead out of range, after finish. */
int ct_policy_eval_event(ct_policy_eval *e, const ct_ecg_event *event);

/* The passage of time: every beat and event up to now_sample has been
 * delivered. For a live detector that is ct_ecg_detector_samples() minus
 * CT_ECG_MAX_LATENCY_MS worth of samples. Asystole and the clearing of
 * alerts need it when no beat comes. A now_sample in the past is ignored. */
int ct_policy_advance(ct_policy_eval *e, int64_t now_sample);

/* End of a finite stream: advances to end_sample, then clears every open
 * alert (stream_ended 1). Feeding is refused afterwards. */
int ct_policy_eval_finish(ct_policy_eval *e, int64_t end_sample);

/* The open alerts as they stand (transition RAISED or UPDATED, values now),
 * in rule order; returns how many are open (may exceed max). */
size_t ct_policy_eval_open_alerts(const ct_policy_eval *e, ct_policy_alert *out, size_t max);

/* The rules the evaluator applies. */
const ct_policy_rules *ct_policy_eval_rules(const ct_policy_eval *e);

/* Bytes the evaluator holds, fixed at creation. */
size_t ct_policy_eval_memory_bytes(const ct_policy_eval *e);

/* One line for people: "HR high 134 bpm (limit 120)". Returns what snprintf returns. */
int ct_policy_alert_describe(const ct_policy_alert *a, char *buf, size_t size);

#endif
