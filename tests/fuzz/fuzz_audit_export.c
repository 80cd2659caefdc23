/* libFuzzer harness for the audit export reader behind `audit verify
 * --file` (NDJSON and FHIR Bundle, told apart by content): any bytes must
 * give a verdict, either OK or an error whose one-line message is also the
 * report's problem; never a crash, a hang, an out-of-bounds read or an
 * unbounded allocation. The checkpoints of the seed corpus
 * (tests/fuzz/corpus/fuzz_audit_export/) are signed with the key below, so
 * that mutations reach the signature and Merkle checks too.
 *
 * The corpus was made with a key directory holding this seed's key as
 * PKCS#8 PEM, `cardiotwin audit checkpoint --key-dir` and `audit export`. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cardiotwin/audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char seed[32];
    memset(seed, 0x11, sizeof seed);
    ct_audit_key *key = NULL;
    ct_error err;
    /* The private key verifies with its public half, as a public key does. */
    if (ct_audit_key_from_raw(seed, 1, &key, &err) != CT_OK)
        abort();
    ct_audit_report rep;
    ct_error_clear(&err);
    int rc = ct_audit_verify_buffer((const char *)data, size, "fuzz", key, &rep, &err);
    if (rc == CT_OK) {
        if (!rep.ok || rep.problem[0] || rep.log_size < 0 || rep.entries_checked > rep.log_size)
            abort();
    } else {
        if (rep.ok || err.code != rc || !err.msg[0] || strchr(err.msg, '\n') || strcmp(err.msg, rep.problem) != 0)
            abort();
        if (rc != CT_EFORMAT && rc != CT_ECHECKSUM && rc != CT_EVERSION && rc != CT_ENOMEM)
            abort();
    }
    ct_audit_key_free(key);
    return 0;
}
