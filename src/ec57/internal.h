/* ec57 internals shared by bxb.c, epicmp.c and stats.c; not part of the
 * room's interface. */
#ifndef CARDIOTWIN_EC57_INTERNAL_H
#define CARDIOTWIN_EC57_INTERNAL_H

#include "cardiotwin/ec57.h"

/* Argument checks common to both comparisons; they fill err and return
 * CT_EINVAL naming what is wrong. */
int ct_ec57_check_period(double fs_hz, int64_t start_sample, int64_t end_sample, ct_error *err);
int ct_ec57_check_lists(const ct_wfdb_annotation *ref, size_t n_ref,
                        const ct_wfdb_annotation *test, size_t n_test, ct_error *err);

#endif
