/* Shared pieces of the command line: one-line errors, the progress bar and
 * what the account commands (token, user) share. The bar is drawn on stderr
 * only when stderr is a terminal, so that logs and pipes get nothing but the
 * summaries. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cardiotwin/cli.h"
#include "cardiotwin/store.h"

CT_PRINTF(3, 0) static void vprint_line(const char *cmd, const char *suffix, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    /* One line, whatever the message holds. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (cmd && *cmd)
        fprintf(stderr, "cardiotwin %s: %s%s\n", cmd, msg, suffix);
    else
        fprintf(stderr, "cardiotwin: %s%s\n", msg, suffix);
}

int ct_cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprint_line(cmd, "", fmt, ap);
    va_end(ap);
    return CT_EXIT_FAIL;
}

int ct_cli_usage(const char *cmd, const char *fmt, ...)
{
    char suffix[128];
    snprintf(suffix, sizeof suffix, " (try 'cardiotwin %s --help')", cmd ? cmd : "");
    va_list ap;
    va_start(ap, fmt);
    vprint_line(cmd, suffix, fmt, ap);
    va_end(ap);
    return CT_EXIT_USAGE;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void progress_draw(ct_progress *p)
{
    enum { WIDTH = 30 };
    double frac = p->total > 0 ? (double)p->done / (double)p->total : 0.0;
    if (frac > 1.0)
        frac = 1.0;
    int filled = (int)(frac * WIDTH);
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[WIDTH] = '\0';
    fprintf(stderr, "\r%-24.24s [%s] %3d%%", p->label, bar, (int)(frac * 100.0));
    fflush(stderr);
    p->drawn = 1;
}

void ct_progress_start(ct_progress *p, const ct_cli *cli, const char *label, int64_t total)
{
    memset(p, 0, sizeof *p);
    p->enabled = cli && cli->stderr_is_tty && !cli->quiet;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    p->total = total;
    p->last_draw_ms = -1000;
}

void ct_progress_update(ct_progress *p, int64_t done)
{
    p->done = done;
    if (!p->enabled)
        return;
    int64_t t = now_ms();
    if (t - p->last_draw_ms < 100 && done < p->total)
        return;
    p->last_draw_ms = t;
    progress_draw(p);
}

void ct_progress_finish(ct_progress *p)
{
    if (p->enabled && p->drawn) {
        fprintf(stderr, "\r%*s\r", 24 + 2 + 30 + 6, "");
        fflush(stderr);
    }
    p->drawn = 0;
}

int64_t ct_cli_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ct_cli_format_time(int64_t t_ms, const char *dash, char *buf, size_t cap)
{
    if (t_ms <= 0) {
        snprintf(buf, cap, "%s", dash);
        return;
    }
    time_t s = (time_t)(t_ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, cap, "%lld", (long long)t_ms);
}

int ct_cli_open_store(const ct_cli *cli, int create, ct_store **st, ct_error *err)
{
    struct stat sb;
    if (!create && stat(cli->db_path, &sb) != 0)
        return ct_error_set(err, CT_ENOTFOUND, "%s: %s (give --db)", cli->db_path, strerror(errno));
    return ct_store_open(cli->db_path, st, err);
}

int ct_cli_no_options(const char *cmd, void (*usage)(FILE *out), int argc, char **argv, int want_args,
                      const char *what)
{
    static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    optind = 0;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", longopts, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            usage(stdout);
            return -1;
        }
        return ct_cli_usage(cmd, "unknown option '%s'", argv[optind - 1]);
    }
    if (argc - optind != want_args)
        return ct_cli_usage(cmd, "%s", what);
    return 0;
}

int ct_cli_width(int w, const char *s)
{
    size_t n = strlen(s);
    return n > (size_t)w ? (int)n : w;
}
