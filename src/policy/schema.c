/* policy room, schema: the one table that says which rules a policy has,
 * which fields each rule takes, their JSON type and their allowed range.
 *
 * The one idea: the loader, the JSON writer and the documentation all follow
 * this table, and the values themselves live in default_policy.json, so a
 * field's default is written in exactly one place. Ranges are wide enough for
 * any clinical setting seen on bedside monitors and narrow enough that a
 * slip of the keyboard (a heart-rate limit of 1200, a delay in milliseconds
 * where seconds were meant) is refused rather than obeyed. */
#include <stddef.h>
#include <stdio.h>

#include "policy_internal.h"

#define R(member) offsetof(ct_policy_rules, member)
#define COMMON(rule)                                                             \
    {"enabled", CT_PF_BOOL, 0, 1, R(rule.c.enabled)},                            \
    {"priority", CT_PF_PRIORITY, 0, 0, R(rule.c.priority)}
#define CLEAR_DELAY(rule) {"clear_delay_s", CT_PF_NUMBER, 0, 600, R(rule.c.clear_delay_s)}
#define ONSET_DELAY(rule) {"onset_delay_s", CT_PF_NUMBER, 0, 300, R(rule.onset_delay_s)}

static const ct_pfield hr_high_fields[] = {
    COMMON(hr_high),
    {"threshold_bpm", CT_PF_NUMBER, 20, 300, R(hr_high.threshold_bpm)},
    ONSET_DELAY(hr_high),
    {"clear_hysteresis_bpm", CT_PF_NUMBER, 0, 50, R(hr_high.clear_hysteresis_bpm)},
    CLEAR_DELAY(hr_high),
    {"extreme_bpm", CT_PF_NUMBER, 20, 300, R(hr_high.extreme_bpm)},
    {"extreme_priority", CT_PF_PRIORITY, 0, 0, R(hr_high.extreme_priority)},
};

static const ct_pfield hr_low_fields[] = {
    COMMON(hr_low),
    {"threshold_bpm", CT_PF_NUMBER, 20, 300, R(hr_low.threshold_bpm)},
    ONSET_DELAY(hr_low),
    {"clear_hysteresis_bpm", CT_PF_NUMBER, 0, 50, R(hr_low.clear_hysteresis_bpm)},
    CLEAR_DELAY(hr_low),
    {"extreme_bpm", CT_PF_NUMBER, 20, 300, R(hr_low.extreme_bpm)},
    {"extreme_priority", CT_PF_PRIORITY, 0, 0, R(hr_low.extreme_priority)},
};

static const ct_pfield pause_fields[] = {
    COMMON(pause),
    {"threshold_ms", CT_PF_NUMBER, 1500, 15000, R(pause.threshold_ms)},
    CLEAR_DELAY(pause),
};

static const ct_pfield asystole_fields[] = {
    COMMON(asystole),
    {"threshold_ms", CT_PF_NUMBER, 2000, 15000, R(asystole.threshold_ms)},
    CLEAR_DELAY(asystole),
};

static const ct_pfield vrun_fields[] = {
    COMMON(ventricular_run),
    {"min_beats", CT_PF_INT, 3, 100, R(ventricular_run.min_beats)},
    {"min_rate_bpm", CT_PF_NUMBER, 40, 300, R(ventricular_run.min_rate_bpm)},
    CLEAR_DELAY(ventricular_run),
};

static const ct_pfield afib_fields[] = {
    COMMON(afib),
    {"min_duration_s", CT_PF_NUMBER, 0, 3600, R(afib.min_duration_s)},
    CLEAR_DELAY(afib),
};

static const ct_pfield pvc_fields[] = {
    COMMON(pvc_burden),
    {"threshold_per_min", CT_PF_NUMBER, 1, 200, R(pvc_burden.threshold_per_min)},
    {"window_s", CT_PF_NUMBER, 10, 300, R(pvc_burden.window_s)},
    ONSET_DELAY(pvc_burden),
    {"clear_hysteresis_per_min", CT_PF_NUMBER, 0, 200, R(pvc_burden.clear_hysteresis_per_min)},
    CLEAR_DELAY(pvc_burden),
};

static const ct_pfield signal_fields[] = {
    COMMON(signal_loss),
    ONSET_DELAY(signal_loss),
    CLEAR_DELAY(signal_loss),
};

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

const ct_prule ct_policy_schema[CT_POLICY_N_RULES] = {
    [CT_POLICY_HR_HIGH] = {"hr_high", R(hr_high), hr_high_fields, N(hr_high_fields), 0},
    [CT_POLICY_HR_LOW] = {"hr_low", R(hr_low), hr_low_fields, N(hr_low_fields), 8},
    [CT_POLICY_PAUSE] = {"pause", R(pause), pause_fields, N(pause_fields), 16},
    [CT_POLICY_ASYSTOLE] = {"asystole", R(asystole), asystole_fields, N(asystole_fields), 20},
    [CT_POLICY_VENTRICULAR_RUN] = {"ventricular_run", R(ventricular_run), vrun_fields,
                                   N(vrun_fields), 24},
    [CT_POLICY_AFIB] = {"afib", R(afib), afib_fields, N(afib_fields), 29},
    [CT_POLICY_PVC_BURDEN] = {"pvc_burden", R(pvc_burden), pvc_fields, N(pvc_fields), 33},
    [CT_POLICY_SIGNAL_LOSS] = {"signal_loss", R(signal_loss), signal_fields, N(signal_fields), 40},
};

/* The flat numbering above must cover every field exactly once. */
_Static_assert(sizeof hr_high_fields / sizeof hr_high_fields[0] == 8, "hr_high fields");
_Static_assert(sizeof hr_low_fields / sizeof hr_low_fields[0] == 8, "hr_low fields");
_Static_assert(sizeof pause_fields / sizeof pause_fields[0] == 4, "pause fields");
_Static_assert(sizeof asystole_fields / sizeof asystole_fields[0] == 4, "asystole fields");
_Static_assert(sizeof vrun_fields / sizeof vrun_fields[0] == 5, "ventricular_run fields");
_Static_assert(sizeof afib_fields / sizeof afib_fields[0] == 4, "afib fields");
_Static_assert(sizeof pvc_fields / sizeof pvc_fields[0] == 7, "pvc_burden fields");
_Static_assert(sizeof signal_fields / sizeof signal_fields[0] == 4, "signal_loss fields");
_Static_assert(40 + 4 == CT_POLICY_N_FIELDS, "field count");
/* ct_policy_common_of relies on the common part opening every rule. */
_Static_assert(offsetof(ct_policy_hr_rule, c) == 0 && offsetof(ct_policy_pause_rule, c) == 0 &&
                   offsetof(ct_policy_asystole_rule, c) == 0 &&
                   offsetof(ct_policy_vrun_rule, c) == 0 && offsetof(ct_policy_afib_rule, c) == 0 &&
                   offsetof(ct_policy_pvc_rule, c) == 0 && offsetof(ct_policy_signal_rule, c) == 0,
               "common part first");

const char *ct_policy_rule_name(ct_policy_rule rule)
{
    if ((int)rule < 0 || rule >= CT_POLICY_N_RULES)
        return NULL;
    return ct_policy_schema[rule].name;
}

const char *ct_policy_priority_name(ct_policy_priority priority)
{
    switch (priority) {
    case CT_POLICY_HIGH:
        return "high";
    case CT_POLICY_MEDIUM:
        return "medium";
    case CT_POLICY_LOW:
        return "low";
    }
    return NULL;
}

/* Each check says why the combination is refused: a limit that makes a rule
 * always on, never clear, or escalate downwards is a configuration error, not
 * a clinical choice. */
static int check_hr(const ct_policy_hr_rule *r, const char *name, int high, char *msg, size_t size)
{
    if (high ? r->extreme_bpm < r->threshold_bpm : r->extreme_bpm > r->threshold_bpm) {
        snprintf(msg, size, "%s.extreme_bpm: %g is %s threshold_bpm %g", name, r->extreme_bpm,
                 high ? "below" : "above", r->threshold_bpm);
        return 1;
    }
    if (r->extreme_priority < r->c.priority) {
        snprintf(msg, size, "%s.extreme_priority: \"%s\" is lower than priority \"%s\"", name,
                 ct_policy_priority_name(r->extreme_priority), ct_policy_priority_name(r->c.priority));
        return 1;
    }
    if (high && r->clear_hysteresis_bpm >= r->threshold_bpm) {
        snprintf(msg, size, "%s.clear_hysteresis_bpm: %g would never let an alert at %g bpm clear",
                 name, r->clear_hysteresis_bpm, r->threshold_bpm);
        return 1;
    }
    return 0;
}

int ct_policy_check_consistency(const ct_policy_rules *r, char *msg, size_t size)
{
    if (check_hr(&r->hr_high, "hr_high", 1, msg, size) || check_hr(&r->hr_low, "hr_low", 0, msg, size))
        return 1;
    if (r->hr_low.threshold_bpm >= r->hr_high.threshold_bpm) {
        snprintf(msg, size, "hr_low.threshold_bpm: %g is not below hr_high.threshold_bpm %g",
                 r->hr_low.threshold_bpm, r->hr_high.threshold_bpm);
        return 1;
    }
    if (r->pvc_burden.clear_hysteresis_per_min >= r->pvc_burden.threshold_per_min) {
        snprintf(msg, size,
                 "pvc_burden.clear_hysteresis_per_min: %g would never let an alert at %g per minute clear",
                 r->pvc_burden.clear_hysteresis_per_min, r->pvc_burden.threshold_per_min);
        return 1;
    }
    return 0;
}
