/* Files compiled into the binary by cmake/embed.cmake (migrations, FHIR
 * artefacts), so that what the binary runs is what it was built with. */
#ifndef CARDIOTWIN_EMBEDDED_H
#define CARDIOTWIN_EMBEDDED_H
#include <stddef.h>

typedef struct ct_embedded_file {
    const char *name;          /* base name, e.g. "0001_initial.sql" */
    const unsigned char *data; /* bytes, followed by one NUL */
    size_t size;               /* bytes, without the NUL */
} ct_embedded_file;

/* migrations/NNNN_name.sql, sorted by name; the list ends with a NULL name. */
extern const ct_embedded_file ct_migrations[];
extern const size_t ct_migrations_count;

#endif
