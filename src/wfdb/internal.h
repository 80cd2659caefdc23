/* Private helpers shared by the wfdb room's sources: paths beside a record
 * and whole-file reads bounded by a limit. Not part of the public API. */
#ifndef CT_WFDB_INTERNAL_H
#define CT_WFDB_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/error.h"

/* The last component of a path ("../data/100" -> "100"). */
const char *ct_wfdb_io_basename(const char *path);

/* out = the folder of record_path joined with name, then suffix (may be "").
 * "../data/100" + "100.dat" -> "../data/100.dat"; "100" + "x" -> "x".
 * Returns 0, or CT_EINVAL when the result does not fit in cap. */
int ct_wfdb_io_sibling(char *out, size_t cap, const char *record_path, const char *name,
                       const char *suffix);

/* Reads the whole regular file at path into a malloc'd buffer (*buf, *len),
 * refusing files over max_bytes before allocating. `who` starts every error
 * message ("record 100"). A missing file is CT_ENOTFOUND. */
int ct_wfdb_io_read_file(const char *path, const char *who, int64_t max_bytes, uint8_t **buf,
                         size_t *len, ct_error *err);

#endif
