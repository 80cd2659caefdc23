/* policy room, internal: the schema of a policy file (rules and their fields,
 * with types, ranges and where each lives in ct_policy_rules) shared by the
 * loader, the JSON writer and the evaluator. */
#ifndef CT_POLICY_INTERNAL_H
#define CT_POLICY_INTERNAL_H

#include <stddef.h>

#include "cardiotwin/embedded.h"
#include "cardiotwin/policy.h"

/* The default policy, embedded by cmake/embed.cmake (CMakeLists.txt). */
extern const ct_embedded_file ct_policy_embedded[];
extern const size_t ct_policy_embedded_count;

typedef enum ct_pfield_kind {
    CT_PF_BOOL,     /* int, JSON true/false */
    CT_PF_PRIORITY, /* ct_policy_priority, JSON "high"/"medium"/"low" */
    CT_PF_NUMBER,   /* double */
    CT_PF_INT       /* int, JSON integer */
} ct_pfield_kind;

typedef struct ct_pfield {
    const char *name;
    ct_pfield_kind kind;
    double min, max;   /* inclusive, for numbers */
    size_t offset;     /* in ct_policy_rules */
} ct_pfield;

typedef struct ct_prule {
    const char *name;
    size_t offset;     /* of the rule's struct (whose first member is its ct_policy_common) */
    const ct_pfield *fields;
    int n_fields;
    int first_field;   /* index of fields[0] in the flat numbering 0..CT_POLICY_N_FIELDS-1 */
} ct_prule;

/* Every field of every rule, numbered flat for "which fields did a patient
 * override" bitmaps. */
#define CT_POLICY_N_FIELDS 44

extern const ct_prule ct_policy_schema[CT_POLICY_N_RULES];

static inline ct_policy_common *ct_policy_common_of(ct_policy_rules *r, int rule)
{
    return (ct_policy_common *)((char *)r + ct_policy_schema[rule].offset);
}

static inline const ct_policy_common *ct_policy_common_ofc(const ct_policy_rules *r, int rule)
{
    return (const ct_policy_common *)((const char *)r + ct_policy_schema[rule].offset);
}

/* Cross-field checks (thresholds against each other) once a layer is merged;
 * fills msg with "<rule>: ..." and returns nonzero when they fail. */
int ct_policy_check_consistency(const ct_policy_rules *r, char *msg, size_t size);

#endif
