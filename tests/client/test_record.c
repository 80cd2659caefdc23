/* Unit tests of the client room's record download, without the network: the
 * name checks, the header-derived file list and size bounds, the whole-record
 * check on hand-made records (format 16, written here) and on MIT-BIH 100
 * ($CARDIOTWIN_MITDB), the staging folder's clean-up and what it refuses to
 * remove, and ct_client_download_record driven through the paths that need
 * no server: a record already in place, a record whose files an earlier run
 * left whole in its staging folder, a held lock, a bad base URL, and a port
 * that refuses connections (loopback only). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../src/client/record_internal.h"
#include "cardiotwin/client.h"
#include "cardiotwin/wfdb.h"

/* ---- helpers ------------------------------------------------------------------ */

static void fmt(char *buf, size_t cap, const char *f, ...) CT_PRINTF(3, 4);
static void fmt(char *buf, size_t cap, const char *f, ...)
{
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(buf, cap, f, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < cap);
}

static const char *mitdb_dir(void)
{
    const char *d = getenv("CARDIOTWIN_MITDB");
    if (!d || !*d)
        fail_msg("CARDIOTWIN_MITDB is not set (ctest sets it)");
    return d;
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static int existsf(const char *f, ...) CT_PRINTF(1, 2);
static int existsf(const char *f, ...)
{
    char path[PATH_MAX];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(path, sizeof path, f, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof path);
    return exists(path);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void write_text(const char *path, const char *text)
{
    write_file(path, text, strlen(text));
}

/* Reads a whole file; the caller frees. */
static char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    long n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    buf[n] = '\0';
    *len = (size_t)n;
    return buf;
}

static void copy_file(const char *from, const char *to)
{
    size_t len;
    char *buf = slurp(from, &len);
    write_file(to, buf, len);
    free(buf);
}

static int same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = slurp(a, &la), *y = slurp(b, &lb);
    int same = la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* rm -rf, without following symbolic links. */
static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        assert_non_null(d);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char child[PATH_MAX];
            fmt(child, sizeof child, "%s/%s", path, e->d_name);
            remove_tree(child);
        }
        closedir(d);
        assert_int_equal(rmdir(path), 0);
    } else {
        assert_int_equal(unlink(path), 0);
    }
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

/* A hand-made record DIR/NAME: one signal in format 16 of n samples (a saw),
 * its header with the first value and checksum (checksum_delta added, to
 * make it wrong), and NAME.atr with a beat every 10 samples plus, when
 * ann_past_end, one at n + 5. */
static void make_record(const char *dir, const char *name, int n, int checksum_delta,
                        int ann_past_end)
{
    int16_t *s = malloc((size_t)n * sizeof *s);
    assert_non_null(s);
    uint8_t *bytes = malloc((size_t)n * 2);
    assert_non_null(bytes);
    int sum = 0;
    for (int i = 0; i < n; i++) {
        s[i] = (int16_t)((i * 37) % 400 - 200);
        sum += s[i];
        bytes[2 * i] = (uint8_t)((uint16_t)s[i] & 0xff);
        bytes[2 * i + 1] = (uint8_t)((uint16_t)s[i] >> 8);
    }
    int checksum = (int16_t)(uint16_t)(sum + checksum_delta);
    char path[PATH_MAX], text[512];
    fmt(path, sizeof path, "%s/%s.dat", dir, name);
    write_file(path, bytes, (size_t)n * 2);
    fmt(text, sizeof text, "%s 1 360 %d\n%s.dat 16 200 16 0 %d %d 0 MLII\n", name, n, name, s[0],
        checksum);
    fmt(path, sizeof path, "%s/%s.hea", dir, name);
    write_text(path, text);

    size_t n_ann = (size_t)(n / 10) + (ann_past_end ? 1 : 0);
    ct_wfdb_annotation *ann = calloc(n_ann, sizeof *ann);
    assert_non_null(ann);
    for (int i = 0; i < n / 10; i++) {
        ann[i].sample = i * 10 + 5;
        ann[i].code = CT_ANN_NORMAL;
    }
    if (ann_past_end) {
        ann[n_ann - 1].sample = n + 5;
        ann[n_ann - 1].code = CT_ANN_NORMAL;
    }
    ct_error err = {0};
    assert_int_equal(ct_wfdb_ann_write(dir, name, "atr", ann, n_ann, &err), 0);
    free(ann);
    free(bytes);
    free(s);
}

/* A temporary folder per test, with dest/ inside it. */
typedef struct fixture {
    char dir[64];
    char dest[128];
    char stage[192];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    fmt(f->dir, sizeof f->dir, "/tmp/ct_client_record_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    fmt(f->dest, sizeof f->dest, "%s/dest", f->dir);
    assert_int_equal(mkdir(f->dest, 0755), 0);
    fmt(f->stage, sizeof f->stage, "%s/.partial-r1", f->dest);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    remove_tree(f->dir);
    free(f);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return ct_client_global_init(NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    ct_client_global_cleanup();
    return 0;
}

/* ---- names ---------------------------------------------------------------------- */

static void test_record_name_ok(void **state)
{
    (void)state;
    char longest[CT_CLIENT_RECORD_NAME_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[CT_CLIENT_RECORD_NAME_MAX] = '\0';
    assert_true(ct_client_record_name_ok("100"));
    assert_true(ct_client_record_name_ok("a_B9"));
    assert_true(ct_client_record_name_ok(longest));
    longest[CT_CLIENT_RECORD_NAME_MAX] = 'a';
    longest[CT_CLIENT_RECORD_NAME_MAX + 1] = '\0';
    assert_false(ct_client_record_name_ok(longest));
    const char *bad[] = {"", "../100", "100/x", "10 0", "100.hea", ".100", "-1", "1\n", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ct_client_record_name_ok(bad[i]));
    assert_false(ct_client_record_name_ok(NULL));
}

static void test_file_name_ok(void **state)
{
    (void)state;
    assert_true(ct_client_file_name_ok("100.dat"));
    assert_true(ct_client_file_name_ok("x-y_Z.2.dat"));
    assert_true(ct_client_file_name_ok("a.partial"));
    char name[CT_CLIENT_FILE_NAME_MAX + 2];
    memset(name, 'd', sizeof name);
    name[CT_CLIENT_FILE_NAME_MAX] = '\0';
    assert_true(ct_client_file_name_ok(name));
    name[CT_CLIENT_FILE_NAME_MAX] = 'd';
    name[CT_CLIENT_FILE_NAME_MAX + 1] = '\0';
    assert_false(ct_client_file_name_ok(name));
    const char *bad[] = {"", ".hidden", ".partial-100", "..", "../666.dat", "a/b.dat", "/etc/passwd",
                         "100.dat.part", ".part", "a b.dat", "a\\b", "100.dat\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(ct_client_file_name_ok(bad[i]));
}

/* ---- the files a header names ----------------------------------------------------- */

static int parse_header(const char *text, const char *record, ct_wfdb_header *h)
{
    ct_error err = {0};
    int rc = ct_wfdb_header_parse(text, strlen(text), record, h, &err);
    if (rc)
        fail_msg("header did not parse: %s", err.msg);
    return rc;
}

static void test_header_files_bounds(void **state)
{
    (void)state;
    ct_wfdb_header *h = malloc(sizeof *h);
    assert_non_null(h);
    ct_client_record_files rf;
    ct_error err = {0};

    /* MIT-BIH style: two 212 signals in one file, 650000 samples each. */
    parse_header("100 2 360 650000\n"
                 "100.dat 212 200 11 1024 995 -22131 0 MLII\n"
                 "100.dat 212 200 11 1024 1011 20052 0 V5\n",
                 "100", h);
    assert_int_equal(ct_client_header_files(h, "100", &rf, &err), 0);
    assert_int_equal(rf.n, 1);
    assert_string_equal(rf.name[0], "100.dat");
    /* 650000 * 12 bits = 975000 bytes, plus one byte of slack, per signal. */
    assert_int_equal(rf.max_bytes[0], 2 * (975000 + 1));

    /* Two files, formats 16 and 80, and a byte offset that counts too. */
    parse_header("r2 2 250 1000\n"
                 "a.dat 16+512 200 16 0 0 0 0 I\n"
                 "b.dat 80 200 8 0 0 0 0 II\n",
                 "r2", h);
    assert_int_equal(ct_client_header_files(h, "r2", &rf, &err), 0);
    assert_int_equal(rf.n, 2);
    assert_string_equal(rf.name[0], "a.dat");
    assert_string_equal(rf.name[1], "b.dat");
    assert_int_equal(rf.max_bytes[0], 512 + 2000 + 1);
    assert_int_equal(rf.max_bytes[1], 1000 + 1);

    /* No sample count: only the wfdb room's ceiling bounds the file. */
    parse_header("r3 1 250\nr3.dat 16 200 16 0 0 0 0 I\n", "r3", h);
    assert_int_equal(ct_client_header_files(h, "r3", &rf, &err), 0);
    assert_int_equal(rf.n, 1);
    assert_int_equal(rf.max_bytes[0], CT_WFDB_MAX_DAT_BYTES);
    free(h);
}

static void test_header_files_refusals(void **state)
{
    (void)state;
    ct_wfdb_header *h = malloc(sizeof *h);
    assert_non_null(h);
    ct_client_record_files rf;
    ct_error err = {0};

    parse_header("666 1 360 650000\n../666.dat 212 200 11 1024 995 -22131 0 MLII\n", "666", h);
    assert_int_equal(ct_client_header_files(h, "666", &rf, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record 666: 666.hea: signal 0 names file '../666.dat', which is "
                                 "not a plain signal file name");

    /* A signal file may not overwrite the header or the annotations. */
    parse_header("r 2 360 10\nr.dat 16 200 16 0 0 0 0 I\nr.atr 16 200 16 0 0 0 0 II\n", "r", h);
    ct_error_clear(&err);
    assert_int_equal(ct_client_header_files(h, "r", &rf, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "signal 1 names file 'r.atr'"));
    parse_header("r 1 360 10\nr.hea 16 200 16 0 0 0 0 I\n", "r", h);
    assert_int_equal(ct_client_header_files(h, "r", &rf, &err), CT_EFORMAT);
    parse_header("r 1 360 10\n.partial-r 16 200 16 0 0 0 0 I\n", "r", h);
    assert_int_equal(ct_client_header_files(h, "r", &rf, &err), CT_EFORMAT);
    parse_header("r 1 360 10\nr.dat.part 16 200 16 0 0 0 0 I\n", "r", h);
    assert_int_equal(ct_client_header_files(h, "r", &rf, &err), CT_EFORMAT);

    /* A format the wfdb room does not read (its header parser refuses one
     * too: this is the check for a header that came some other way). */
    parse_header("r 1 360 10\nr.dat 16 200 16 0 0 0 0 I\n", "r", h);
    h->signals[0].format = 310;
    ct_error_clear(&err);
    assert_int_equal(ct_client_header_files(h, "r", &rf, &err), CT_EUNSUPPORTED);
    assert_string_equal(err.msg, "record r: r.hea: signal 0 is in format 310 (212, 16 and 80 are read)");

    /* No signals at all. */
    parse_header("r 0 360 10\n", "r", h);
    ct_error_clear(&err);
    assert_int_equal(ct_client_header_files(h, "r", &rf, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record r: r.hea has no signals");
    free(h);
}

/* ---- messages, annotations, small files -------------------------------------------- */

static void test_name_file(void **state)
{
    (void)state;
    ct_error err = {0};
    ct_error_set(&err, CT_ECHECKSUM, "record 100: signal 0 (MLII): checksum 1 in data, header says 2");
    ct_client_name_file(&err, "100", "100.dat");
    assert_string_equal(err.msg, "record 100: 100.dat: signal 0 (MLII): checksum 1 in data, header says 2");
    assert_int_equal(err.code, CT_ECHECKSUM);
    /* Already named: left alone. */
    ct_client_name_file(&err, "100", "100.dat");
    assert_string_equal(err.msg, "record 100: 100.dat: signal 0 (MLII): checksum 1 in data, header says 2");
    ct_error_set(&err, CT_ENET, "HTTP 503 from http://x/100.hea (gave up after 2 attempts)");
    ct_client_name_file(&err, "100", "100.hea");
    assert_string_equal(err.msg, "record 100: 100.hea: HTTP 503 from http://x/100.hea (gave up after 2 attempts)");
    ct_client_name_file(NULL, "100", "100.hea"); /* no error to fill: nothing happens */
}

static void test_check_annotations(void **state)
{
    (void)state;
    ct_wfdb_annotation ann[3];
    memset(ann, 0, sizeof ann);
    ann[0].sample = 0;
    ann[1].sample = 500;
    ann[2].sample = 1000;
    ct_error err = {0};
    assert_int_equal(ct_client_check_annotations(ann, 3, 1000, "r", &err), 0);
    assert_int_equal(ct_client_check_annotations(ann, 3, -1, "r", &err), 0);
    assert_int_equal(ct_client_check_annotations(ann, 3, 999, "r", &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record r: r.atr: annotation 2 is at sample 1000, outside the "
                                 "record's 999 samples");
    ann[1].sample = -1;
    assert_int_equal(ct_client_check_annotations(ann, 3, -1, "r", &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "annotation 1 is at sample -1"));
    assert_int_equal(ct_client_check_annotations(ann, 0, 0, "r", &err), 0);
}

static void test_read_small_file(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    fmt(path, sizeof path, "%s/small", f->dir);
    write_text(path, "0123456789");
    char *buf = NULL;
    size_t len = 0;
    ct_error err = {0};
    assert_int_equal(ct_client_read_small_file(path, 10, &buf, &len, &err), 0);
    assert_int_equal(len, 10);
    assert_string_equal(buf, "0123456789");
    free(buf);
    assert_int_equal(ct_client_read_small_file(path, 9, &buf, &len, &err), CT_ELIMIT);
    assert_null(buf);
    assert_non_null(strstr(err.msg, "is 10 bytes, more than the limit of 9"));
    assert_int_equal(ct_client_read_small_file(f->dest, 1000, &buf, &len, &err), CT_EIO);
    assert_non_null(strstr(err.msg, "is not a regular file"));
    fmt(path, sizeof path, "%s/missing", f->dir);
    assert_int_equal(ct_client_read_small_file(path, 1000, &buf, &len, &err), CT_EIO);
    assert_non_null(strstr(err.msg, "cannot open"));
}

static void test_make_dirs(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    ct_error err = {0};
    fmt(path, sizeof path, "%s/a/b/c", f->dir);
    assert_int_equal(ct_client_make_dirs(path, &err), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(ct_client_make_dirs(path, &err), 0); /* already there */
    fmt(path, sizeof path, "%s/a/b/c/", f->dir);
    assert_int_equal(ct_client_make_dirs(path, &err), 0);

    fmt(path, sizeof path, "%s/file", f->dir);
    write_text(path, "x");
    assert_int_equal(ct_client_make_dirs(path, &err), CT_EIO);
    assert_non_null(strstr(err.msg, "is not a folder"));
    fmt(path, sizeof path, "%s/file/sub", f->dir);
    assert_int_equal(ct_client_make_dirs(path, &err), CT_EIO);
    assert_non_null(strstr(err.msg, "cannot create folder"));
    assert_int_equal(ct_client_make_dirs("", &err), CT_EINVAL);
}

/* ---- the whole-record check ----------------------------------------------------------- */

static void test_verify_mitdb_100(void **state)
{
    (void)state;
    ct_client_record_check chk;
    ct_error err = {0};
    int rc = ct_client_verify_record(mitdb_dir(), "100", &chk, &err);
    if (rc)
        fail_msg("100 did not verify: %s", err.msg);
    assert_int_equal(chk.n_signals, 2);
    assert_int_equal(chk.n_samples, 650000);
    assert_int_equal(chk.n_annotations, 2274);
    assert_int_equal(chk.files.n, 1);
    assert_string_equal(chk.files.name[0], "100.dat");
}

static void test_verify_hand_made(void **state)
{
    fixture *f = *state;
    make_record(f->dir, "good", 1000, 0, 0);
    ct_client_record_check chk;
    ct_error err = {0};
    int rc = ct_client_verify_record(f->dir, "good", &chk, &err);
    if (rc)
        fail_msg("hand-made record did not verify: %s", err.msg);
    assert_int_equal(chk.n_signals, 1);
    assert_int_equal(chk.n_samples, 1000);
    assert_int_equal(chk.n_annotations, 100);
    assert_int_equal(chk.files.n, 1);
    assert_string_equal(chk.files.name[0], "good.dat");

    /* A wrong checksum is named by record and file. */
    make_record(f->dir, "sum", 1000, 1, 0);
    assert_int_not_equal(ct_client_verify_record(f->dir, "sum", &chk, &err), 0);
    assert_true(strncmp(err.msg, "record sum: sum.dat", 19) == 0);
    assert_non_null(strstr(err.msg, "checksum"));

    /* A signal file cut short. */
    make_record(f->dir, "short", 1000, 0, 0);
    char path[PATH_MAX];
    fmt(path, sizeof path, "%s/short.dat", f->dir);
    assert_int_equal(truncate(path, 1000), 0);
    ct_error_clear(&err);
    assert_int_not_equal(ct_client_verify_record(f->dir, "short", &chk, &err), 0);
    assert_non_null(strstr(err.msg, "short.dat"));
    assert_non_null(strstr(err.msg, "1000 bytes"));

    /* An annotation past the record's end. */
    make_record(f->dir, "late", 1000, 0, 1);
    ct_error_clear(&err);
    assert_int_equal(ct_client_verify_record(f->dir, "late", &chk, &err), CT_EFORMAT);
    assert_string_equal(err.msg, "record late: late.atr: annotation 100 is at sample 1005, outside "
                                 "the record's 1000 samples");

    /* No annotation file. */
    make_record(f->dir, "noatr", 1000, 0, 0);
    fmt(path, sizeof path, "%s/noatr.atr", f->dir);
    assert_int_equal(unlink(path), 0);
    ct_error_clear(&err);
    assert_int_not_equal(ct_client_verify_record(f->dir, "noatr", &chk, &err), 0);
    assert_non_null(strstr(err.msg, "noatr.atr"));

    /* A header naming a file outside its folder is refused before any read. */
    make_record(f->dir, "evil", 1000, 0, 0);
    fmt(path, sizeof path, "%s/evil.hea", f->dir);
    write_text(path, "evil 1 360 1000\n../evil.dat 16 200 16 0 0 0 0 I\n");
    ct_error_clear(&err);
    assert_int_not_equal(ct_client_verify_record(f->dir, "evil", &chk, &err), 0);
    assert_non_null(strstr(err.msg, "../evil.dat"));

    /* No header at all. */
    ct_error_clear(&err);
    assert_int_not_equal(ct_client_verify_record(f->dir, "none", &chk, &err), 0);
    assert_non_null(strstr(err.msg, "none"));
}

static void test_verify_parts(void **state)
{
    fixture *f = *state;
    char path[PATH_MAX];
    ct_error err = {0};
    ct_client_part_ctx hv = {"r", "r.hea"};
    fmt(path, sizeof path, "%s/r.hea.part", f->dir);
    write_text(path, "r 1 360 1000\nr.dat 16 200 16 0 0 0 0 I\n");
    assert_int_equal(ct_client_verify_header_part(&hv, path, &err), 0);
    write_text(path, "r 1 360 1000\n../r.dat 16 200 16 0 0 0 0 I\n");
    assert_int_equal(ct_client_verify_header_part(&hv, path, &err), CT_EFORMAT);
    assert_non_null(strstr(err.msg, "'../r.dat'"));
    write_text(path, "<html>not found</html>\n");
    ct_error_clear(&err);
    assert_int_equal(ct_client_verify_header_part(&hv, path, &err), CT_EFORMAT);
    assert_true(strncmp(err.msg, "record r: ", 10) == 0);
    /* Larger than any header may be. */
    char *big = malloc(CT_WFDB_MAX_HEADER_BYTES + 2);
    assert_non_null(big);
    memset(big, '#', CT_WFDB_MAX_HEADER_BYTES + 1);
    big[CT_WFDB_MAX_HEADER_BYTES + 1] = '\0';
    write_text(path, big);
    free(big);
    assert_int_equal(ct_client_verify_header_part(&hv, path, &err), CT_ELIMIT);

    make_record(f->dir, "a", 100, 0, 0);
    ct_client_part_ctx av = {"a", "a.atr"};
    fmt(path, sizeof path, "%s/a.atr", f->dir);
    assert_int_equal(ct_client_verify_annotation_part(&av, path, &err), 0);
    /* An annotation file cut in the middle of a word. */
    assert_int_equal(truncate(path, 5), 0);
    ct_error_clear(&err);
    assert_int_equal(ct_client_verify_annotation_part(&av, path, &err), CT_EFORMAT);
    assert_true(strncmp(err.msg, "record a: a.atr", 15) == 0);
}

/* ---- the staging folder --------------------------------------------------------------- */

static void test_staging_remove_plain_files(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->stage, 0755), 0);
    char path[PATH_MAX], outside[PATH_MAX];
    const char *names[] = {".lock", "r1.hea", "r1.dat.part", "r1.atr"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        fmt(path, sizeof path, "%s/%s", f->stage, names[i]);
        write_text(path, "x");
    }
    /* A symbolic link goes, what it points to stays. */
    fmt(outside, sizeof outside, "%s/keep-me", f->dir);
    write_text(outside, "precious");
    fmt(path, sizeof path, "%s/link", f->stage);
    assert_int_equal(symlink(outside, path), 0);
    ct_client_staging_remove(f->stage);
    assert_false(exists(f->stage));
    assert_true(exists(outside));
    ct_client_staging_remove(f->stage); /* already gone: nothing to do, no crash */
}

static void test_staging_remove_refuses_a_folder_inside(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->stage, 0755), 0);
    char path[PATH_MAX];
    fmt(path, sizeof path, "%s/r1.dat.part", f->stage);
    write_text(path, "x");
    fmt(path, sizeof path, "%s/sub", f->stage);
    assert_int_equal(mkdir(path, 0755), 0);
    fmt(path, sizeof path, "%s/sub/data", f->stage);
    write_text(path, "not ours");
    ct_client_staging_remove(f->stage);
    /* Not entered, not removed: the folder and what is in it stay. */
    assert_true(existsf("%s/sub/data", f->stage));
    assert_false(existsf("%s/r1.dat.part", f->stage));
    assert_int_equal(count_entries(f->stage), 1);
}

static void test_staging_remove_refuses_too_many_entries(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->stage, 0755), 0);
    char path[PATH_MAX];
    int n = CT_CLIENT_MAX_STAGING_ENTRIES + 40;
    for (int i = 0; i < n; i++) {
        fmt(path, sizeof path, "%s/f%04d", f->stage, i);
        write_text(path, "x");
    }
    ct_client_staging_remove(f->stage);
    /* Only the first entries are looked at: the folder is not emptied and stays. */
    assert_true(exists(f->stage));
    int left = count_entries(f->stage);
    assert_true(left >= n - CT_CLIENT_MAX_STAGING_ENTRIES);
    assert_true(left < n);
}

static void test_staging_has_part(void **state)
{
    fixture *f = *state;
    assert_false(ct_client_staging_has_part(f->stage)); /* no folder */
    assert_int_equal(mkdir(f->stage, 0755), 0);
    assert_false(ct_client_staging_has_part(f->stage));
    char path[PATH_MAX];
    fmt(path, sizeof path, "%s/.lock", f->stage);
    write_text(path, "");
    fmt(path, sizeof path, "%s/.part", f->stage);
    write_text(path, "");
    fmt(path, sizeof path, "%s/r1.hea", f->stage);
    write_text(path, "x");
    assert_false(ct_client_staging_has_part(f->stage));
    fmt(path, sizeof path, "%s/r1.dat.part", f->stage);
    write_text(path, "x");
    assert_true(ct_client_staging_has_part(f->stage));
}

/* ---- ct_client_download_record without a server --------------------------------------- */

typedef struct seen {
    int begins, progresses, ends, retries, replacing;
    char last_record[64];
    char last_file[64];
    char replacing_reason[CT_ERROR_MSG_MAX];
    int client_retries; /* the client's own hook */
    int retry_attempts[8];
} seen;

static void cb_begin(void *ctx, const char *record, const char *file)
{
    seen *s = ctx;
    s->begins++;
    fmt(s->last_record, sizeof s->last_record, "%s", record);
    fmt(s->last_file, sizeof s->last_file, "%s", file);
}

static void cb_progress(void *ctx, const char *record, const char *file, int64_t done, int64_t total)
{
    seen *s = ctx;
    s->progresses++;
}

static void cb_end(void *ctx, const char *record, const char *file)
{
    seen *s = ctx;
    s->ends++;
    assert_string_equal(file, s->last_file);
}

static void cb_retry(void *ctx, const char *record, const char *file, int attempt, long wait_ms,
                     const char *reason)
{
    seen *s = ctx;
    assert_string_equal(record, s->last_record);
    assert_string_equal(file, s->last_file);
    assert_true(s->retries < 8);
    s->retry_attempts[s->retries++] = attempt;
}

static void cb_replacing(void *ctx, const char *record, const char *reason)
{
    seen *s = ctx;
    s->replacing++;
    /* Said before anything is fetched. */
    assert_int_equal(s->begins, 0);
    fmt(s->replacing_reason, sizeof s->replacing_reason, "%s", reason);
}

static void client_on_retry(void *ctx, int attempt, long wait_ms, const char *reason)
{
    seen *s = ctx;
    s->client_retries++;
}

static ct_client *new_client(int max_retries, seen *s)
{
    ct_client_options o;
    ct_client_options_default(&o);
    o.max_retries = max_retries;
    o.backoff_base_ms = 1;
    o.backoff_max_ms = 2;
    o.on_retry = client_on_retry;
    o.cb_ctx = s;
    ct_client *c = NULL;
    ct_error err = {0};
    if (ct_client_new(&o, &c, &err) != 0)
        fail_msg("client: %s", err.msg);
    return c;
}

static ct_client_record_callbacks callbacks(seen *s)
{
    ct_client_record_callbacks cb = {cb_begin, cb_progress, cb_end, cb_retry, cb_replacing, s};
    return cb;
}

/* A loopback port nobody listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Never contacted by the tests that use it: every file is already on disk. */
#define NO_SERVER "http://127.0.0.1:9/files/"

static void test_download_record_already_present(void **state)
{
    fixture *f = *state;
    make_record(f->dest, "r1", 2000, 0, 0);
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_callbacks cb = callbacks(&s);
    ct_client_record_result res;
    ct_error err = {0};
    int rc = ct_client_download_record(c, NO_SERVER, f->dest, "r1", &cb, &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.status, CT_CLIENT_RECORD_PRESENT);
    assert_int_equal(res.n_files, 3);
    assert_int_equal(res.n_signals, 1);
    assert_int_equal(res.n_samples, 2000);
    assert_int_equal(res.n_annotations, 200);
    assert_int_equal(res.bytes, 0);
    assert_int_equal(s.begins + s.ends + s.retries + s.replacing, 0);
    assert_false(exists(f->stage));
    assert_int_equal(count_entries(f->dest), 3);
    /* No callbacks, no result: the same, quietly. */
    assert_int_equal(ct_client_download_record(c, NO_SERVER, f->dest, "r1", NULL, NULL, &err), 0);
    ct_client_free(c);
}

/* Files an earlier run fetched whole are not fetched again: with all three in
 * the staging folder, the record is checked and moved into place. */
static void test_download_record_from_staging(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->stage, 0755), 0);
    make_record(f->stage, "r1", 3000, 0, 0);
    char hea[PATH_MAX];
    fmt(hea, sizeof hea, "%s/r1.hea", f->stage);
    size_t hea_len;
    char *hea_text = slurp(hea, &hea_len);
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_callbacks cb = callbacks(&s);
    ct_client_record_result res;
    ct_error err = {0};
    int rc = ct_client_download_record(c, NO_SERVER, f->dest, "r1", &cb, &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.status, CT_CLIENT_RECORD_DOWNLOADED);
    assert_int_equal(res.n_files, 3);
    assert_int_equal(res.n_samples, 3000);
    assert_int_equal(res.n_annotations, 300);
    assert_int_equal(res.bytes, 0); /* nothing transferred by this call */
    assert_int_equal(res.retries + res.resumed + res.restarted, 0);
    assert_int_equal(s.begins, 0);
    assert_false(exists(f->stage));
    assert_int_equal(count_entries(f->dest), 3);
    size_t len;
    fmt(hea, sizeof hea, "%s/r1.hea", f->dest);
    char *moved = slurp(hea, &len);
    assert_int_equal(len, hea_len);
    assert_memory_equal(moved, hea_text, len);
    free(moved);
    free(hea_text);
    ct_client_free(c);
}

/* The same with MIT-BIH 100: format 212, two signals in one file. */
static void test_download_record_mitdb_100_from_staging(void **state)
{
    fixture *f = *state;
    fmt(f->stage, sizeof f->stage, "%s/.partial-100", f->dest);
    assert_int_equal(mkdir(f->stage, 0755), 0);
    const char *ext[] = {"hea", "dat", "atr"};
    char from[PATH_MAX], to[PATH_MAX];
    for (int i = 0; i < 3; i++) {
        fmt(from, sizeof from, "%s/100.%s", mitdb_dir(), ext[i]);
        fmt(to, sizeof to, "%s/100.%s", f->stage, ext[i]);
        copy_file(from, to);
    }
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_result res;
    ct_error err = {0};
    int rc = ct_client_download_record(c, NO_SERVER, f->dest, "100", NULL, &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.status, CT_CLIENT_RECORD_DOWNLOADED);
    assert_int_equal(res.n_files, 3);
    assert_int_equal(res.n_signals, 2);
    assert_int_equal(res.n_samples, 650000);
    assert_int_equal(res.n_annotations, 2274);
    assert_false(exists(f->stage));
    for (int i = 0; i < 3; i++) {
        fmt(from, sizeof from, "%s/100.%s", mitdb_dir(), ext[i]);
        fmt(to, sizeof to, "%s/100.%s", f->dest, ext[i]);
        assert_true(same_file(from, to));
    }
    ct_client_free(c);
}

/* A staged record that does not verify: nothing reaches its final names and
 * the staging folder is removed, so the next run starts over. */
static void test_download_record_staged_bad_record_removed(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->stage, 0755), 0);
    make_record(f->stage, "r1", 1000, 7, 0);
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_result res;
    ct_error err = {0};
    assert_int_not_equal(ct_client_download_record(c, NO_SERVER, f->dest, "r1", NULL, &res, &err), 0);
    assert_int_equal(res.status, CT_CLIENT_RECORD_FAILED);
    assert_true(strncmp(err.msg, "record r1: r1.dat", 17) == 0);
    assert_non_null(strstr(err.msg, "checksum"));
    assert_false(exists(f->stage));
    assert_int_equal(count_entries(f->dest), 0);
    ct_client_free(c);
}

/* A copy in dest that does not verify is replaced by a verified one, and the
 * caller is told before anything is fetched. */
static void test_download_record_replaces_unverified_copy(void **state)
{
    fixture *f = *state;
    make_record(f->dest, "r1", 1000, 3, 0); /* wrong checksum */
    assert_int_equal(mkdir(f->stage, 0755), 0);
    make_record(f->stage, "r1", 1000, 0, 0);
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_callbacks cb = callbacks(&s);
    ct_client_record_result res;
    ct_error err = {0};
    int rc = ct_client_download_record(c, NO_SERVER, f->dest, "r1", &cb, &res, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(res.status, CT_CLIENT_RECORD_REPLACED);
    assert_int_equal(s.replacing, 1);
    assert_non_null(strstr(s.replacing_reason, "checksum"));
    assert_string_equal(res.unverified, s.replacing_reason);
    ct_client_record_check chk;
    assert_int_equal(ct_client_verify_record(f->dest, "r1", &chk, &err), 0);
    assert_false(exists(f->stage));
    ct_client_free(c);
}

static void test_download_record_lock_held(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->stage, 0755), 0);
    char lock[PATH_MAX], part[PATH_MAX];
    fmt(lock, sizeof lock, "%s/.lock", f->stage);
    fmt(part, sizeof part, "%s/r1.hea.part", f->stage);
    write_text(part, "r1 1 36");
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_result res;
    ct_error err = {0};
    char msg[512];
    fmt(msg, sizeof msg, "record r1: another download of it into %s is running", f->dest);
    assert_int_equal(ct_client_download_record(c, NO_SERVER, f->dest, "r1", NULL, &res, &err),
                     CT_EEXIST);
    assert_string_equal(err.msg, msg);
    /* The other run's files are left alone. */
    assert_true(exists(part));
    assert_true(exists(lock));
    close(fd);
    ct_client_free(c);
}

static void test_download_record_refuses_bad_arguments(void **state)
{
    fixture *f = *state;
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_result res;
    ct_error err = {0};
    assert_int_equal(ct_client_download_record(c, NO_SERVER, f->dest, "../r1", NULL, &res, &err),
                     CT_EINVAL);
    assert_non_null(strstr(err.msg, "is not a record name"));
    assert_int_equal(ct_client_download_record(c, "file:///etc/", f->dest, "r1", NULL, &res, &err),
                     CT_EINVAL);
    assert_string_equal(err.msg, "record r1: r1.hea: base URL: URL file:///etc/: only http:// and "
                                 "https:// are supported");
    assert_int_equal(ct_client_download_record(c, "http://h/x?q=1", f->dest, "r1", NULL, &res, &err),
                     CT_EINVAL);
    assert_int_equal(ct_client_download_record(NULL, NO_SERVER, f->dest, "r1", NULL, &res, &err),
                     CT_EINVAL);
    assert_int_equal(ct_client_download_record(c, NO_SERVER, "", "r1", NULL, &res, &err), CT_EINVAL);
    assert_int_equal(res.status, CT_CLIENT_RECORD_FAILED);
    assert_int_equal(count_entries(f->dest), 0); /* nothing created */
    ct_client_free(c);
}

/* Connection refused on every attempt: the retry hooks (ours and the
 * client's own) are called with the file at fault, the error names it, and a
 * staging folder without .part files is not kept. Afterwards the client's
 * own hooks are its own again. */
static void test_download_record_connection_refused(void **state)
{
    fixture *f = *state;
    char url[64];
    fmt(url, sizeof url, "http://127.0.0.1:%d/", closed_port());
    seen s = {0};
    ct_client *c = new_client(2, &s);
    ct_client_record_callbacks cb = callbacks(&s);
    ct_client_record_result res;
    ct_error err = {0};
    assert_int_equal(ct_client_download_record(c, url, f->dest, "r1", &cb, &res, &err), CT_ENET);
    assert_true(strncmp(err.msg, "record r1: r1.hea: ", 19) == 0);
    assert_non_null(strstr(err.msg, "gave up after 3 attempts"));
    assert_int_equal(res.status, CT_CLIENT_RECORD_FAILED);
    assert_int_equal(res.retries, 2);
    assert_int_equal(s.retries, 2);
    assert_int_equal(s.retry_attempts[0], 2);
    assert_int_equal(s.retry_attempts[1], 3);
    assert_int_equal(s.client_retries, 2);
    assert_int_equal(s.begins, 1);
    assert_int_equal(s.ends, 1);
    assert_string_equal(s.last_file, "r1.hea");
    assert_false(exists(f->stage));
    assert_int_equal(count_entries(f->dest), 0);

    /* A plain download on the same client: only the client's own hook. */
    char dest[PATH_MAX], file_url[128];
    fmt(dest, sizeof dest, "%s/x.dat", f->dir);
    fmt(file_url, sizeof file_url, "%sx.dat", url);
    assert_int_equal(ct_client_download(c, file_url, dest, 0, NULL, NULL, NULL, &err), CT_ENET);
    assert_int_equal(s.client_retries, 4);
    assert_int_equal(s.retries, 2);
    ct_client_free(c);
}

/* After a network failure a staging folder holding .part files is kept, so
 * that the next run resumes them; the whole files in it stay too. */
static void test_download_record_network_failure_keeps_parts(void **state)
{
    fixture *f = *state;
    assert_int_equal(mkdir(f->stage, 0755), 0);
    char path[PATH_MAX];
    fmt(path, sizeof path, "%s/r1.hea", f->stage);
    write_text(path, "r1 1 360 1000\nr1.dat 16 200 16 0 0 0 0 I\n");
    fmt(path, sizeof path, "%s/r1.dat.part", f->stage);
    write_text(path, "0123456789");
    char url[64];
    fmt(url, sizeof url, "http://127.0.0.1:%d/", closed_port());
    seen s = {0};
    ct_client *c = new_client(0, &s);
    ct_client_record_callbacks cb = callbacks(&s);
    ct_client_record_result res;
    ct_error err = {0};
    assert_int_equal(ct_client_download_record(c, url, f->dest, "r1", &cb, &res, &err), CT_ENET);
    assert_true(strncmp(err.msg, "record r1: r1.dat: ", 19) == 0);
    assert_int_equal(s.begins, 1); /* the header was already there */
    assert_string_equal(s.last_file, "r1.dat");
    assert_true(existsf("%s/r1.dat.part", f->stage));
    assert_true(existsf("%s/r1.hea", f->stage));
    assert_false(existsf("%s/r1.hea", f->dest));
    ct_client_free(c);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_name_ok),
        cmocka_unit_test(test_file_name_ok),
        cmocka_unit_test(test_header_files_bounds),
        cmocka_unit_test(test_header_files_refusals),
        cmocka_unit_test(test_name_file),
        cmocka_unit_test(test_check_annotations),
        T(test_read_small_file),
        T(test_make_dirs),
        cmocka_unit_test(test_verify_mitdb_100),
        T(test_verify_hand_made),
        T(test_verify_parts),
        T(test_staging_remove_plain_files),
        T(test_staging_remove_refuses_a_folder_inside),
        T(test_staging_remove_refuses_too_many_entries),
        T(test_staging_has_part),
        T(test_download_record_already_present),
        T(test_download_record_from_staging),
        T(test_download_record_mitdb_100_from_staging),
        T(test_download_record_staged_bad_record_removed),
        T(test_download_record_replaces_unverified_copy),
        T(test_download_record_lock_held),
        T(test_download_record_refuses_bad_arguments),
        T(test_download_record_connection_refused),
        T(test_download_record_network_failure_keeps_parts),
    };
#undef T
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
