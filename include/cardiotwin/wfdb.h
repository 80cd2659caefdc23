/* wfdb: reading WFDB records (headers, signal files in formats 212, 16 and
 * 80, MIT-format annotation files) and writing MIT-format annotation files
 * that PhysioNet's own tools (rdann, bxb) read. Pure C and libc: no SQLite,
 * no FHIR, no network, so that a researcher can lift this room alone.
 *
 * Vocabulary is WFDB's: a record has signals sampled at fs_hz; a frame is one
 * sample of every signal; an annotator (e.g. "atr") names an annotation file
 * RECORD.ANNOTATOR. A "record path" is a path without extension
 * ("../shared/data/mitdb/100"); the files of a record live beside its header.
 *
 * Nothing here trusts its input: every length is checked, every size bounded
 * (CT_WFDB_MAX_*), and errors name the record, file and field at fault. */
#ifndef CARDIOTWIN_WFDB_H
#define CARDIOTWIN_WFDB_H

#include <stddef.h>
#include <stdint.h>

#include "cardiotwin/error.h"

#define CT_WFDB_MAX_SIGNALS 32
#define CT_WFDB_MAX_HEADER_BYTES (256 * 1024)
/* Largest signal file we read whole: 2^31 bytes (an MIT-BIH record is 1.95 MB). */
#define CT_WFDB_MAX_DAT_BYTES ((int64_t)1 << 31)
/* Largest annotation file: 256 MiB. */
#define CT_WFDB_MAX_ANN_BYTES ((int64_t)256 * 1024 * 1024)
#define CT_WFDB_MAX_COMMENTS 4096
/* Most annotations one file may hold (each costs sizeof(ct_wfdb_annotation),
 * about 290 bytes, in memory): a week of beats at 200 bpm is 2 million. */
#define CT_WFDB_MAX_ANNOTATIONS (2 * 1024 * 1024)
/* WFDB's marker for a missing sample (format 16: -32768; 212: -2048). */
#define CT_WFDB_INVALID_SAMPLE (-32768)

typedef struct ct_wfdb_signal {
    char file_name[256];      /* e.g. "100.dat", relative to the header's folder */
    int format;               /* 212, 16 or 80 (others are refused on read) */
    int samples_per_frame;    /* only 1 is supported for reading */
    int skew;                 /* in samples */
    int64_t byte_offset;      /* bytes to skip at the start of the file */
    double gain_adu_per_unit; /* ADC units per physical unit (200 by default) */
    int gain_given;           /* 0 when the header left the gain out */
    int baseline_adu;         /* ADC value of 0 physical units (default: adc_zero) */
    char units[32];           /* physical units, "mV" by default */
    int adc_resolution_bits;  /* e.g. 11 (default 12 for 212, 16 for 16, 8 for 80) */
    int adc_zero;             /* ADC value at the middle of the input range */
    int initial_value;        /* first sample's value, if has_initial_value */
    int has_initial_value;
    int checksum;             /* 16-bit signed sum of all samples, if has_checksum */
    int has_checksum;
    int block_size;           /* 0 for ordinary files */
    char description[128];    /* e.g. "MLII", "V5" */
} ct_wfdb_signal;

typedef struct ct_wfdb_header {
    char record_name[64];
    int n_segments;           /* 0: single-segment record (multi-segment is refused) */
    int n_signals;
    double fs_hz;             /* sampling frequency per signal (default 250) */
    double counter_freq_hz;   /* 0 when absent */
    double base_counter;
    int64_t n_samples;        /* samples per signal; -1 when the header omits it */
    char base_time[32];       /* as written, "" when absent */
    char base_date[32];
    ct_wfdb_signal signals[CT_WFDB_MAX_SIGNALS];
    char comments[CT_WFDB_MAX_COMMENTS]; /* '#' lines, '#' and one space removed, '\n'-joined */
    int comments_truncated;   /* 1 when comment lines were left out for lack of room */
} ct_wfdb_header;

/* Parses header text (CRLF or LF, comments, blank lines). record_name is used
 * in messages and checked against the header's own record line. */
int ct_wfdb_header_parse(const char *text, size_t len, const char *record_name,
                         ct_wfdb_header *out, ct_error *err);

/* Reads RECORD.hea for record_path (path without extension). */
int ct_wfdb_header_read(const char *record_path, ct_wfdb_header *out, ct_error *err);

/* The signals of a record, decoded whole, one array per signal ("planar").
 * samples[s][i] is sample i of signal s, in ADC units. */
typedef struct ct_wfdb_signals {
    int n_signals;
    int64_t n_samples;            /* per signal */
    int16_t *samples[CT_WFDB_MAX_SIGNALS];
} ct_wfdb_signals;

/* Reads and decodes every signal file of the record, then checks each
 * signal's first value and 16-bit checksum against the header: a mismatch is
 * CT_ECHECKSUM naming the record and signal. A file shorter or longer than
 * the header promises is CT_EFORMAT. On success *out owns its arrays. */
int ct_wfdb_signals_read(const char *record_path, const ct_wfdb_header *hdr,
                         ct_wfdb_signals *out, ct_error *err);
void ct_wfdb_signals_free(ct_wfdb_signals *s);

/* Decoding kernels for in-memory signal files: n_frames frames of n_signals
 * interleaved samples from `in` (in_len bytes) into out (planar: out[s][i]).
 * Returns the number of frames decoded (less than asked when in is short),
 * or CT_EINVAL for impossible arguments (n_signals outside 1..MAX_SIGNALS,
 * n_frames < 0, a NULL array). The format's own marker for a missing sample
 * (212: -2048, 80: -128) comes out as CT_WFDB_INVALID_SAMPLE. */
int64_t ct_wfdb_decode_212(const uint8_t *in, size_t in_len, int n_signals,
                           int64_t n_frames, int16_t *const *out);
int64_t ct_wfdb_decode_16(const uint8_t *in, size_t in_len, int n_signals,
                          int64_t n_frames, int16_t *const *out);
int64_t ct_wfdb_decode_80(const uint8_t *in, size_t in_len, int n_signals,
                          int64_t n_frames, int16_t *const *out);

/* WFDB's 16-bit checksum: the sum of the samples, kept to 16 bits, signed.
 * (ct_wfdb_signals_read sums the values as stored in the file, so a missing
 * sample counts as -2048 in format 212 and -128 in format 80, as in WFDB.) */
int ct_wfdb_checksum16(const int16_t *samples, int64_t n);

/* ---- annotations ---------------------------------------------------------- */

/* MIT annotation codes (WFDB's ecgcodes.h). */
enum {
    CT_ANN_NOTQRS = 0, CT_ANN_NORMAL = 1, CT_ANN_LBBB = 2, CT_ANN_RBBB = 3,
    CT_ANN_ABERR = 4, CT_ANN_PVC = 5, CT_ANN_FUSION = 6, CT_ANN_NPC = 7,
    CT_ANN_APC = 8, CT_ANN_SVPB = 9, CT_ANN_VESC = 10, CT_ANN_NESC = 11,
    CT_ANN_PACE = 12, CT_ANN_UNKNOWN = 13, CT_ANN_NOISE = 14, CT_ANN_ARFCT = 16,
    CT_ANN_STCH = 18, CT_ANN_TCH = 19, CT_ANN_SYSTOLE = 20, CT_ANN_DIASTOLE = 21,
    CT_ANN_NOTE = 22, CT_ANN_MEASURE = 23, CT_ANN_PWAVE = 24, CT_ANN_BBB = 25,
    CT_ANN_PACESP = 26, CT_ANN_TWAVE = 27, CT_ANN_RHYTHM = 28, CT_ANN_UWAVE = 29,
    CT_ANN_LEARN = 30, CT_ANN_FLWAV = 31, CT_ANN_VFON = 32, CT_ANN_VFOFF = 33,
    CT_ANN_AESC = 34, CT_ANN_SVESC = 35, CT_ANN_LINK = 36, CT_ANN_NAPC = 37,
    CT_ANN_PFUS = 38, CT_ANN_WFON = 39, CT_ANN_WFOFF = 40, CT_ANN_RONT = 41,
    CT_ANN_ACMAX = 49
};

#define CT_WFDB_MAX_AUX 255

typedef struct ct_wfdb_annotation {
    int64_t sample;   /* time, in samples from the start of the record */
    int code;         /* CT_ANN_..., 1..49 (0, NOTQRS, is legal in a file but rare) */
    int subtype;      /* -128..127 */
    int chan;         /* 0..255 */
    int num;          /* -128..127 */
    int aux_len;      /* 0..255 bytes in aux (not NUL-terminated in the file) */
    char aux[CT_WFDB_MAX_AUX + 1]; /* NUL-terminated copy, e.g. "(AFIB" */
} ct_wfdb_annotation;

/* MIT mnemonic of a code ("N", "V", "+"), "?" for unknown codes. */
const char *ct_wfdb_ann_mnemonic(int code);
/* Code of a mnemonic, or -1. */
int ct_wfdb_ann_code(const char *mnemonic);
/* 1 if the code is a beat (WFDB's isqrs), else 0. */
int ct_wfdb_ann_is_beat(int code);

/* Parses an MIT-format annotation file held in memory. SKIP, NUM, SUB, CHN
 * and AUX are applied to the annotation they qualify (num and chan carry over
 * to later annotations, as in WFDB); *out is malloc'd (free with free()),
 * *n_out its length. name is used in messages. A file cut short, an AUX
 * running past the end, a time before sample 0, a code 50..58, bytes after
 * the end marker: CT_EFORMAT. Over CT_WFDB_MAX_ANN_BYTES or
 * CT_WFDB_MAX_ANNOTATIONS: CT_ELIMIT. On error *out is NULL. */
int ct_wfdb_ann_parse(const uint8_t *buf, size_t len, const char *name,
                      ct_wfdb_annotation **out, size_t *n_out, ct_error *err);

/* Reads RECORD.ANNOTATOR for record_path. */
int ct_wfdb_ann_read(const char *record_path, const char *annotator,
                     ct_wfdb_annotation **out, size_t *n_out, ct_error *err);

/* Encodes annotations in MIT format exactly as WFDB's putann() does: SKIP for
 * steps over 1023 samples or backwards, NUM/CHN only where the field changes,
 * SUB when nonzero, AUX when aux_len > 0, then the end-of-file word. Give them
 * in WFDB's canonical order (by sample, then num, then chan); any other order
 * is still written faithfully. A field out of range is CT_EINVAL. *buf is
 * malloc'd. */
int ct_wfdb_ann_encode(const ct_wfdb_annotation *ann, size_t n,
                       uint8_t **buf, size_t *len, ct_error *err);

/* Writes DIR/RECORD.ANNOTATOR atomically (temporary file, fsync, rename, mode
 * 0644): readers see the old file or the new one, never part of one. */
int ct_wfdb_ann_write(const char *dir, const char *record_name, const char *annotator,
                      const ct_wfdb_annotation *ann, size_t n, ct_error *err);

#endif
