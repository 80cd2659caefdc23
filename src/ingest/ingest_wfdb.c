/* ingest_wfdb: `cardiotwin import` of one WFDB record.
 *
 * The one idea: verify everything, then write once. The header is parsed,
 * every signal decoded and checked against the header's first values and
 * checksums, and the annotation file parsed, all before the first INSERT; the
 * writes then happen in a single transaction. A corrupt .dat therefore fails
 * with a checksum error and leaves the database byte-for-byte as it was.
 *
 * Identity: the record's files (header, signal files, annotation file) are
 * hashed with SHA-256 in a fixed order. Same (source, name) and same hash:
 * nothing to do. Same (source, name), other hash: refused, because silently
 * replacing a patient's stored signal is not something an import should do.
 *
 * The record's patient is also a FHIR Patient (id "<source>-<record>",
 * identifier CT_FHIR_CANONICAL_BASE "/<source>-record" | record name), so
 * that the API, the twin's reports and `cardiotwin stream` name one patient.
 * It is written once, if absent, in the record's transaction, recorded by
 * the import's own audit entry (which names that Patient and its version);
 * a Patient already there (edited since, or made by a
 * client) is left as it is. A re-import of a record stored before Patients
 * were made adds the missing Patient and nothing else. */
#include "cardiotwin/ingest.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <openssl/evp.h>

#include "cardiotwin/fhir.h"
#include "cardiotwin/wfdb.h"

static int64_t now_utc_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* Record name and folder of a record path: "a/b/mitdb/100" -> "100", "mitdb". */
static int split_record_path(const char *record_path, char *name, size_t name_len,
                             char *folder, size_t folder_len, ct_error *err)
{
    const char *slash = strrchr(record_path, '/');
    const char *base = slash ? slash + 1 : record_path;
    if (*base == '\0' || strlen(base) >= name_len)
        return ct_error_set(err, CT_EINVAL, "'%s' is not a record path (expected e.g. data/mitdb/100)",
                            record_path);
    snprintf(name, name_len, "%s", base);

    char dir[PATH_MAX];
    if (slash) {
        size_t n = (size_t)(slash - record_path);
        if (n == 0) {
            snprintf(dir, sizeof dir, "/");
        } else {
            if (n >= sizeof dir)
                return ct_error_set(err, CT_EINVAL, "record path too long: %s", record_path);
            memcpy(dir, record_path, n);
            dir[n] = '\0';
        }
    } else {
        snprintf(dir, sizeof dir, ".");
    }
    char abs[PATH_MAX];
    const char *use = realpath(dir, abs) ? abs : dir;
    const char *fslash = strrchr(use, '/');
    const char *fbase = fslash ? fslash + 1 : use;
    if (!*fbase)
        fbase = "wfdb";
    size_t flen = strlen(fbase);
    if (flen >= folder_len)
        return ct_error_set(err, CT_EINVAL,
                            "record %s: folder name '%s' is too long to name a collection "
                            "(at most %zu characters); give one with --source",
                            name, fbase, folder_len - 1);
    memcpy(folder, fbase, flen + 1);
    return CT_OK;
}

static int hash_file(EVP_MD_CTX *md, const char *path, int missing_ok, ct_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (missing_ok && errno == ENOENT)
            return CT_OK;
        return ct_error_set(err, CT_EIO, "%s: %s", path, strerror(errno));
    }
    /* The file name goes into the hash too, so that swapping two files of a
     * record changes its identity. */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    EVP_DigestUpdate(md, base, strlen(base) + 1);
    unsigned char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        EVP_DigestUpdate(md, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad)
        return ct_error_set(err, CT_EIO, "%s: read error", path);
    return CT_OK;
}

static int record_sha256(const char *record_path, const ct_wfdb_header *hdr,
                         const char *annotator, char out_hex[65], ct_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        return ct_error_set(err, CT_ENOMEM, "cannot start SHA-256");
    }
    char path[PATH_MAX + 64];
    int rc;
    snprintf(path, sizeof path, "%s.hea", record_path);
    rc = hash_file(md, path, 0, err);

    /* Signal files, each once, in header order. */
    const char *slash = strrchr(record_path, '/');
    int dir_len = slash ? (int)(slash - record_path) + 1 : 0;
    for (int s = 0; rc == CT_OK && s < hdr->n_signals; s++) {
        int seen = 0;
        for (int t = 0; t < s; t++)
            if (strcmp(hdr->signals[t].file_name, hdr->signals[s].file_name) == 0)
                seen = 1;
        if (seen)
            continue;
        snprintf(path, sizeof path, "%.*s%s", dir_len, record_path, hdr->signals[s].file_name);
        rc = hash_file(md, path, 0, err);
    }
    if (rc == CT_OK) {
        snprintf(path, sizeof path, "%s.%s", record_path, annotator);
        rc = hash_file(md, path, 1, err);
    }
    unsigned char digest[32];
    unsigned int dlen = 0;
    if (rc == CT_OK && EVP_DigestFinal_ex(md, digest, &dlen) != 1)
        rc = ct_error_set(err, CT_ENOMEM, "cannot finish SHA-256");
    EVP_MD_CTX_free(md);
    if (rc != CT_OK)
        return rc;
    for (unsigned i = 0; i < 32; i++)
        snprintf(out_hex + 2 * i, 3, "%02x", digest[i]);
    return CT_OK;
}

/* MIT-BIH and many WFDB records start their comments with "<age> <sex>",
 * newer ones with "Age: <age> Sex: <sex>". Anything else: unknown. */
static void patient_from_comments(const char *comments, ct_store_patient *p)
{
    p->age_years = -1;
    p->sex[0] = '\0';
    int age = -1;
    char sex = 0;
    char word[16];
    if (sscanf(comments, "%d %1[MFmf]", &age, word) == 2) {
        sex = word[0];
    } else if (sscanf(comments, "Age: %d Sex: %1[MFmf]", &age, word) == 2) {
        sex = word[0];
    }
    if (age >= 0 && age < 130)
        p->age_years = age;
    if (sex)
        snprintf(p->sex, sizeof p->sex, "%c", sex == 'm' ? 'M' : sex == 'f' ? 'F' : sex);
}

/* Text for an XHTML div: the few characters XML gives a meaning. */
static void xhtml_put(char *out, size_t cap, const char *s)
{
    size_t o = strlen(out);
    for (; *s && o + 7 < cap; s++) {
        const char *rep = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;" : NULL;
        if (rep) {
            memcpy(out + o, rep, strlen(rep));
            o += strlen(rep);
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
}

/* The record's Patient in the stored form of the API (resourceType, id, an
 * empty meta the server fills when it serves it, then the rest): identifier,
 * gender when the header says, and a text saying where it comes from. */
static json_t *patient_resource(const ct_ingest_result *res, const ct_store_patient *pat)
{
    char system[256], div[1024];
    snprintf(system, sizeof system, "%s/%s-record", CT_FHIR_CANONICAL_BASE, res->source);
    snprintf(div, sizeof div, "<div xmlns=\"http://www.w3.org/1999/xhtml\">");
    if (strcmp(res->source, "mitdb") == 0) {
        xhtml_put(div, sizeof div, "MIT-BIH Arrhythmia Database record ");
        xhtml_put(div, sizeof div, res->record);
        xhtml_put(div, sizeof div, " (PhysioNet), imported by cardiotwin: a research recording, not a person "
                                   "under care");
    } else {
        xhtml_put(div, sizeof div, "WFDB record ");
        xhtml_put(div, sizeof div, res->record);
        xhtml_put(div, sizeof div, " of source ");
        xhtml_put(div, sizeof div, res->source);
        xhtml_put(div, sizeof div, ", imported by cardiotwin");
    }
    if (pat->age_years >= 0) {
        char age[48];
        snprintf(age, sizeof age, "; age %d at the recording", pat->age_years);
        xhtml_put(div, sizeof div, age);
    }
    xhtml_put(div, sizeof div, ".");
    snprintf(div + strlen(div), sizeof div - strlen(div), "</div>");
    json_t *j = json_pack("{s:s,s:s,s:{},s:[{s:s,s:s}],s:{s:s,s:s}}", "resourceType", "Patient", "id",
                          res->patient, "meta", "identifier", "system", system, "value", res->record, "text",
                          "status", "generated", "div", div);
    if (j && (strcmp(pat->sex, "M") == 0 || strcmp(pat->sex, "F") == 0))
        json_object_set_new(j, "gender", json_string(pat->sex[0] == 'M' ? "male" : "female"));
    return j;
}

/* Writes Patient/<patient> unless it exists, inside the caller's
 * transaction. *written: 1 when it was, and *version its version. With
 * own_entry the write gets a "create" audit entry of its own (a re-import
 * that only adds the Patient); without, the caller's "import" entry, which
 * names the same Patient, records it (one import, one entry). */
static int ensure_patient_resource(ct_store *st, const ct_ingest_options *opt, const ct_ingest_result *res,
                                   const ct_store_patient *pat, int own_entry, int *written,
                                   int64_t *version, ct_error *err)
{
    static const ct_audit_actor unknown = {"unknown", "operator", "local"};
    *written = 0;
    *version = 0;
    /* A source whose name cannot make a FHIR id has no Patient resource;
     * the record is stored all the same. */
    if (!ct_fhir_id_valid(res->patient, strlen(res->patient)))
        return CT_OK;
    json_t *j = patient_resource(res, pat);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    ct_fhir_index x;
    int rc = text ? ct_fhir_index_extract(j, "Patient", &x) : CT_ENOMEM;
    if (rc) {
        free(text);
        json_decref(j);
        return ct_error_set(err, rc, "Patient/%s: cannot build it", res->patient);
    }
    ct_store_index_entry idx[4];
    size_t n = 0;
    for (size_t i = 0; i < x.n && n < sizeof idx / sizeof *idx; i++)
        idx[n++] = (ct_store_index_entry){.param = x.e[i].param, .kind = (ct_store_index_kind)x.e[i].kind,
                                          .system = x.e[i].system, .code = x.e[i].code,
                                          .start_ms = x.e[i].start_ms, .end_ms = x.e[i].end_ms,
                                          .ref_type = x.e[i].ref_type, .ref_id = x.e[i].ref_id};
    ct_store_write w = {.type = "Patient", .id = res->patient, .json = text, .len = strlen(text),
                        .if_absent = 1, .index = idx, .n_index = n};
    ct_store_version_info vi;
    rc = ct_store_resource_write(st, &w, &vi, err);
    ct_fhir_index_free(&x);
    free(text);
    json_decref(j);
    if (rc == CT_EEXIST) {
        ct_error_clear(err);
        return CT_OK;
    }
    if (rc)
        return ct_error_prefix(err, "Patient/%s", res->patient);
    *version = vi.version;
    if (!own_entry) {
        *written = 1;
        return CT_OK;
    }
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor = opt && opt->actor ? *opt->actor : unknown;
    e.action = "create";
    e.resource_type = "Patient";
    e.resource_id = res->patient;
    e.resource_version = vi.version;
    e.patient = res->patient;
    e.outcome = CT_AUDIT_OUTCOME_SUCCESS;
    e.detail = "{\"source\":\"import\"}";
    if ((rc = ct_audit_append(st, &e, NULL, err)) == CT_OK)
        *written = 1;
    return rc;
}

static int store_record(ct_store *st, const ct_wfdb_header *hdr, const ct_wfdb_signals *sig,
                        const ct_wfdb_annotation *ann, size_t n_ann, const char *annotator,
                        const ct_ingest_options *opt, ct_ingest_result *res,
                        const char *sha_hex, ct_error *err)
{
    ct_store_patient pat;
    memset(&pat, 0, sizeof pat);
    snprintf(pat.identifier, sizeof pat.identifier, "%s", res->patient);
    snprintf(pat.name, sizeof pat.name, "%.56s record %.56s", res->source, res->record);
    patient_from_comments(hdr->comments, &pat);
    int rc = ct_store_patient_ensure(st, &pat, err);
    if (rc != CT_OK)
        return rc;
    if ((rc = ensure_patient_resource(st, opt, res, &pat, 0, &res->patient_resource,
                                      &res->patient_resource_version, err)) != CT_OK)
        return rc;

    ct_store_record rec;
    memset(&rec, 0, sizeof rec);
    rec.patient_id = pat.id;
    snprintf(rec.name, sizeof rec.name, "%s", res->record);
    snprintf(rec.source, sizeof rec.source, "%s", res->source);
    rec.fs_hz = hdr->fs_hz;
    rec.n_samples = sig->n_samples;
    rec.n_signals = sig->n_signals;
    memcpy(rec.content_sha256, sha_hex, 65);
    snprintf(rec.comments, sizeof rec.comments, "%s", hdr->comments);
    rec.imported_ms = now_utc_ms();
    if ((rc = ct_store_record_insert(st, &rec, err)) != CT_OK)
        return rc;

    int64_t total = (int64_t)sig->n_signals * sig->n_samples;
    int64_t done = 0;
    for (int s = 0; s < sig->n_signals; s++) {
        const ct_wfdb_signal *hs = &hdr->signals[s];
        ct_store_signal ss;
        memset(&ss, 0, sizeof ss);
        ss.record_id = rec.id;
        ss.index = s;
        snprintf(ss.description, sizeof ss.description, "%s", hs->description);
        snprintf(ss.units, sizeof ss.units, "%s", hs->units);
        ss.gain_adu_per_unit = hs->gain_adu_per_unit;
        ss.baseline_adu = hs->baseline_adu;
        ss.adc_zero = hs->adc_zero;
        ss.adc_resolution_bits = hs->adc_resolution_bits;
        /* The header's own values, already proven against the data; they
         * differ from a sum over our samples only where the file holds the
         * format's missing-sample code, which we widen to -32768. */
        ss.initial_value = hs->has_initial_value ? hs->initial_value
                           : sig->n_samples > 0 ? sig->samples[s][0] : 0;
        ss.checksum = hs->has_checksum ? hs->checksum
                      : ct_wfdb_checksum16(sig->samples[s], sig->n_samples);
        ss.n_samples = sig->n_samples;
        if ((rc = ct_store_signal_insert(st, &ss, err)) != CT_OK)
            return rc;
        /* Written in slices so that the progress bar moves; the store cuts
         * them into its own blocks. */
        const int64_t slice = (int64_t)CT_STORE_BLOCK_SAMPLES * 16;
        for (int64_t at = 0; at < sig->n_samples; at += slice) {
            int64_t n = sig->n_samples - at < slice ? sig->n_samples - at : slice;
            rc = ct_store_samples_write(st, ss.id, at, sig->samples[s] + at, (size_t)n, err);
            if (rc != CT_OK)
                return rc;
            done += n;
            if (opt && opt->progress)
                opt->progress(opt->progress_ctx, done, total);
        }
    }

    if (n_ann > 0) {
        ct_store_annotation *sa = calloc(n_ann, sizeof *sa);
        if (!sa)
            return ct_error_set(err, CT_ENOMEM, "out of memory for %zu annotations", n_ann);
        for (size_t i = 0; i < n_ann; i++) {
            sa[i].sample = ann[i].sample;
            sa[i].code = ann[i].code;
            sa[i].subtype = ann[i].subtype;
            sa[i].chan = ann[i].chan;
            sa[i].num = ann[i].num;
            snprintf(sa[i].aux, sizeof sa[i].aux, "%s", ann[i].aux);
        }
        rc = ct_store_annotations_write(st, rec.id, annotator, sa, n_ann, err);
        free(sa);
    }
    return rc;
}

/* The audit log entry of an import, in the record's own transaction: the
 * record and its trace are stored together or not at all. */
static int audit_import(ct_store *st, const ct_ingest_options *opt, const ct_ingest_result *res,
                        const char *annotator, const char *sha_hex, ct_error *err)
{
    static const ct_audit_actor unknown = {"unknown", "operator", "local"};
    ct_audit_detail *d = malloc(sizeof *d);
    if (!d)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    ct_audit_detail_init(d);
    ct_audit_detail_str(d, "source", res->source);
    ct_audit_detail_str(d, "record", res->record);
    ct_audit_detail_str(d, "sha256", sha_hex);
    ct_audit_detail_int(d, "signals", res->n_signals);
    ct_audit_detail_int(d, "samples_per_signal", res->n_samples);
    ct_audit_detail_str(d, "annotator", annotator);
    ct_audit_detail_int(d, "annotations", (int64_t)res->n_annotations);
    ct_audit_entry e;
    memset(&e, 0, sizeof e);
    e.actor = opt && opt->actor ? *opt->actor : unknown;
    e.action = "import";
    e.resource_type = "Patient";
    e.resource_id = res->patient;
    e.resource_version = res->patient_resource ? res->patient_resource_version : 0;
    e.patient = res->patient;
    e.outcome = CT_AUDIT_OUTCOME_SUCCESS;
    e.detail = ct_audit_detail_json(d);
    int rc = ct_audit_append(st, &e, NULL, err);
    free(d);
    return rc;
}

int ct_ingest_wfdb_record(ct_store *st, const char *record_path,
                          const ct_ingest_options *opt, ct_ingest_result *out, ct_error *err)
{
    if (!st || !record_path || !out)
        return ct_error_set(err, CT_EINVAL, "ct_ingest_wfdb_record: missing argument");
    memset(out, 0, sizeof *out);
    const char *annotator = opt && opt->annotator ? opt->annotator : "atr";

    char folder[64];
    int rc = split_record_path(record_path, out->record, sizeof out->record, folder, sizeof folder, err);
    if (rc != CT_OK)
        return rc;
    snprintf(out->source, sizeof out->source, "%s", opt && opt->source ? opt->source : folder);
    snprintf(out->patient, sizeof out->patient, "%s-%s", out->source, out->record);

    ct_wfdb_header *hdr = calloc(1, sizeof *hdr);
    if (!hdr)
        return ct_error_set(err, CT_ENOMEM, "out of memory");
    ct_wfdb_signals sig;
    memset(&sig, 0, sizeof sig);
    ct_wfdb_annotation *ann = NULL;
    size_t n_ann = 0;

    if ((rc = ct_wfdb_header_read(record_path, hdr, err)) != CT_OK)
        goto done;
    out->n_signals = hdr->n_signals;
    out->fs_hz = hdr->fs_hz;
    for (int s = 0; s < hdr->n_signals; s++) {
        size_t used = strlen(out->leads);
        snprintf(out->leads + used, sizeof out->leads - used, "%s%s", s ? ", " : "",
                 hdr->signals[s].description[0] ? hdr->signals[s].description : "?");
    }

    char sha_hex[65];
    if ((rc = record_sha256(record_path, hdr, annotator, sha_hex, err)) != CT_OK)
        goto done;

    ct_store_record existing;
    rc = ct_store_record_find(st, out->source, out->record, &existing, err);
    if (rc == CT_OK) {
        if (strcmp(existing.content_sha256, sha_hex) != 0) {
            rc = ct_error_set(err, CT_EEXIST,
                              "record %s: %s/%s is already stored from other files "
                              "(stored sha256 %.12s..., these files %.12s...); nothing changed",
                              out->record, out->source, out->record, existing.content_sha256, sha_hex);
            goto done;
        }
        out->already_present = 1;
        /* A record stored before imports made Patients gets its Patient now. */
        ct_store_patient pat;
        if ((rc = ct_store_patient_get(st, out->patient, &pat, err)) != CT_OK)
            goto done;
        if ((rc = ct_store_begin(st, err)) != CT_OK)
            goto done;
        rc = ensure_patient_resource(st, opt, out, &pat, 1, &out->patient_resource,
                                     &out->patient_resource_version, err);
        if (rc == CT_OK)
            rc = ct_store_commit(st, err);
        if (rc != CT_OK) {
            ct_store_rollback(st);
            goto done;
        }
        out->n_samples = existing.n_samples;
        out->duration_s = existing.fs_hz > 0 ? (double)existing.n_samples / existing.fs_hz : 0;
        ct_store_annotation *sa = NULL;
        size_t n_sa = 0;
        if (ct_store_annotations_read(st, existing.id, annotator, &sa, &n_sa, NULL) == CT_OK) {
            out->n_annotations = n_sa;
            for (size_t i = 0; i < n_sa; i++)
                out->n_beats += (size_t)ct_wfdb_ann_is_beat(sa[i].code);
            free(sa);
        }
        rc = CT_OK;
        goto done;
    }
    if (rc != CT_ENOTFOUND)
        goto done;
    ct_error_clear(err);

    /* Verify everything before the first write. */
    if ((rc = ct_wfdb_signals_read(record_path, hdr, &sig, err)) != CT_OK)
        goto done;
    rc = ct_wfdb_ann_read(record_path, annotator, &ann, &n_ann, err);
    if (rc == CT_ENOTFOUND && !(opt && opt->require_annotations)) {
        ct_error_clear(err);
        rc = CT_OK;
        n_ann = 0;
    }
    if (rc != CT_OK)
        goto done;
    for (size_t i = 0; i < n_ann; i++) {
        if (ann[i].sample < 0 || (sig.n_samples > 0 && ann[i].sample >= sig.n_samples)) {
            rc = ct_error_set(err, CT_EFORMAT,
                              "record %s: annotation %zu (%s) at sample %lld is outside the record (%lld samples)",
                              out->record, i, ct_wfdb_ann_mnemonic(ann[i].code),
                              (long long)ann[i].sample, (long long)sig.n_samples);
            goto done;
        }
    }

    out->n_samples = sig.n_samples;
    out->duration_s = hdr->fs_hz > 0 ? (double)sig.n_samples / hdr->fs_hz : 0;
    out->n_annotations = n_ann;
    for (size_t i = 0; i < n_ann; i++)
        out->n_beats += (size_t)ct_wfdb_ann_is_beat(ann[i].code);

    if ((rc = ct_store_begin(st, err)) != CT_OK)
        goto done;
    rc = store_record(st, hdr, &sig, ann, n_ann, annotator, opt, out, sha_hex, err);
    if (rc == CT_OK)
        rc = audit_import(st, opt, out, annotator, sha_hex, err);
    if (rc == CT_OK)
        rc = ct_store_commit(st, err);
    if (rc != CT_OK)
        ct_store_rollback(st);

done:
    if (rc != CT_OK && err && strncmp(err->msg, "record ", 7) != 0)
        ct_error_prefix(err, "record %s", out->record);
    free(ann);
    ct_wfdb_signals_free(&sig);
    free(hdr);
    return rc;
}
