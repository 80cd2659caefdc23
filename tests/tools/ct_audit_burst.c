/* ct_audit_burst: writes as fast as it can, each transaction storing one
 * FHIR resource version and its audit entry, until killed or N transactions
 * are done. tests/integration/test_audit_kill.sh kills it with SIGKILL at
 * random moments and then checks that the log verifies and that every
 * stored version has exactly its entry.
 *
 *   ct_audit_burst DB [N]      N 0 or absent: until killed
 *
 * Prints the number of transactions committed when it ends normally. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cardiotwin/audit.h"
#include "cardiotwin/store.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: ct_audit_burst DB [N]\n");
        return 2;
    }
    long long n = argc == 3 ? atoll(argv[2]) : 0;
    ct_error err;
    ct_store *st = NULL;
    if (ct_store_open(argv[1], &st, &err) != CT_OK) {
        fprintf(stderr, "ct_audit_burst: %s\n", err.msg);
        return 1;
    }
    /* A body of a couple of KiB: a small Observation's worth of writing. */
    char body[2048];
    int len = snprintf(body, sizeof body, "{\"resourceType\":\"Observation\",\"status\":\"final\",\"note\":\"");
    memset(body + len, 'x', sizeof body - (size_t)len - 4);
    memcpy(body + sizeof body - 4, "\"}", 3);
    size_t body_len = strlen(body);
    long long done = 0;
    for (long long i = 0; n == 0 || i < n; i++) {
        char id[64], patient[32];
        /* Unique across runs: the pid differs each time. */
        snprintf(id, sizeof id, "b%ld-%lld", (long)getpid(), i / 3);
        snprintf(patient, sizeof patient, "burst-%lld", i % 5);
        int64_t version = 0;
        int rc = ct_store_begin(st, &err);
        if (rc == CT_OK)
            rc = ct_store_resource_put(st, "Observation", id, body, body_len, &version, &err);
        if (rc == CT_OK) {
            ct_audit_entry e;
            memset(&e, 0, sizeof e);
            e.actor = (ct_audit_actor){"burst", "device", "192.0.2.99"};
            e.action = version == 1 ? "create" : "update";
            e.resource_type = "Observation";
            e.resource_id = id;
            e.resource_version = version;
            e.patient = patient;
            rc = ct_audit_append(st, &e, NULL, &err);
        }
        if (rc == CT_OK)
            rc = ct_store_commit(st, &err);
        else
            ct_store_rollback(st);
        if (rc != CT_OK) {
            fprintf(stderr, "ct_audit_burst: transaction %lld: %s\n", i, err.msg);
            ct_store_close(st);
            return 1;
        }
        done++;
    }
    ct_store_close(st);
    printf("%lld\n", done);
    return 0;
}
