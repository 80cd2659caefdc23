/* Hand-built annotation lists for the ec57 tests: a small growable list and
 * constructors for beats, rhythm changes, noise and VF marks. */
#ifndef CT_TEST_EC57_FIXTURES_H
#define CT_TEST_EC57_FIXTURES_H

#include <stdio.h>
#include <string.h>

#include "cardiotwin/ec57.h"

#define FIX_MAX 4096

typedef struct fix_list {
    ct_wfdb_annotation a[FIX_MAX];
    size_t n;
} fix_list;

static inline ct_wfdb_annotation *fix_add(fix_list *l, int64_t sample, int code)
{
    if (l->n >= FIX_MAX) {
        fprintf(stderr, "fixture list full\n");
        return &l->a[FIX_MAX - 1];
    }
    ct_wfdb_annotation *a = &l->a[l->n++];
    memset(a, 0, sizeof *a);
    a->sample = sample;
    a->code = code;
    return a;
}

static inline void fix_rhythm(fix_list *l, int64_t sample, const char *aux)
{
    ct_wfdb_annotation *a = fix_add(l, sample, CT_ANN_RHYTHM);
    snprintf(a->aux, sizeof a->aux, "%s", aux);
    a->aux_len = (int)strlen(a->aux);
}

static inline void fix_noise(fix_list *l, int64_t sample, int subtype)
{
    fix_add(l, sample, CT_ANN_NOISE)->subtype = subtype;
}

/* n beats of one code, every rr samples from first. */
static inline void fix_beats(fix_list *l, int64_t first, int64_t rr, int n, int code)
{
    for (int i = 0; i < n; i++)
        fix_add(l, first + (int64_t)i * rr, code);
}

#endif
