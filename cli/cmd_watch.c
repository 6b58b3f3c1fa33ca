/* elvisctl's commands that keep watching: top (refreshing rates) and events (--follow). */
#include "args.h"
#include "cmd.h"
#include "table.h"
#include "top.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static const struct elvis_column top_sidecore_columns[] = {
        { "SIDECORE", ELVIS_COL_INT, .key = "id" },
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "QUEUES", ELVIS_COL_INT, .key = "queues" },
        { "LOAD", ELVIS_COL_PERCENT, .key = "load", .decimals = 1 },
        { "PKTS/S", ELVIS_COL_REAL, .key = "pps" },
        { "STATE", ELVIS_COL_BOOL, .key = "sleeping", .yes = "sleeping", .no = "polling" },
        { NULL },
};

static const struct elvis_column top_queue_columns[] = {
        { "VM", ELVIS_COL_STR, .key = "vm_name" },
        { "DEVICE", ELVIS_COL_STR, .key = "device" },
        { "TYPE", ELVIS_COL_STR, .key = "type" },
        { "Q", ELVIS_COL_INT, .key = "queue" },
        { "SIDECORE", ELVIS_COL_INT, .key = "sidecore" },
        { "PKTS/S", ELVIS_COL_REAL, .key = "pps" },
        { "KICKS/S", ELVIS_COL_REAL, .key = "kicks_ps" },
        { "IRQS/S", ELVIS_COL_REAL, .key = "interrupts_ps" },
        { "POLLING", ELVIS_COL_BOOL, .key = "polling" },
        { "STATE", ELVIS_COL_STR, .key = "state" },
        { NULL },
};

static void render_top(const json_t *rates, bool keys, FILE *f)
{
        fprintf(f, "elvisctl top: rates over the last %.2f s%s\n", elvis_json_real(rates, "interval_s"),
                keys ? " (q quits)" : "");
        if (!json_is_true(json_object_get(rates, "available")))
                fprintf(f, "the %s data plane is not running: no counters\n", elvis_json_str(rates, "dataplane"));
        fputc('\n', f);
        elvis_table_render(top_sidecore_columns, json_object_get(rates, "sidecores"), f);
        fputc('\n', f);
        elvis_table_render(top_queue_columns, json_object_get(rates, "queues"), f);
}

/* The terminal is in non-canonical mode only while top reads keys. Every way out restores
 * it: the normal return, exit() (atexit), and the signals that end or stop the process. */
static struct termios tty_saved, tty_keys;
static volatile sig_atomic_t tty_raw;

static void tty_restore(void)
{
        if (tty_raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &tty_saved);
        tty_raw = 0;
}

static void on_fatal_signal(int sig)
{
        tty_restore();
        signal(sig, SIG_DFL);
        raise(sig);
}

static void on_continue(int sig);

/* Ctrl-Z: hand the shell a sane terminal, stop, and take it back on SIGCONT. */
static void on_stop(int sig)
{
        int saved = errno;
        bool was_raw = tty_raw;

        tty_restore();
        tty_raw = was_raw ? -1 : 0;     /* -1: to be restored on SIGCONT */
        signal(SIGTSTP, SIG_DFL);
        raise(SIGTSTP);                 /* blocked until we return, then stops us */
        errno = saved;
}

static void on_continue(int sig)
{
        int saved = errno;
        struct sigaction sa = { .sa_handler = on_stop };

        if (tty_raw == -1 && tcsetattr(STDIN_FILENO, TCSANOW, &tty_keys) == 0)
                tty_raw = 1;
        sigaction(SIGTSTP, &sa, NULL);
        errno = saved;
}

static bool tty_enter(void)
{
        static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        struct sigaction sa = { .sa_handler = on_fatal_signal };

        /* a background job touching the terminal would be stopped with SIGTTOU */
        if (tcgetpgrp(STDIN_FILENO) != getpgrp() || tcgetattr(STDIN_FILENO, &tty_saved) < 0)
                return false;
        tty_keys = tty_saved;
        tty_keys.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        tty_keys.c_cc[VMIN] = 0;
        tty_keys.c_cc[VTIME] = 0;
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
                sigaction(fatal[i], &sa, NULL);
        sa.sa_handler = on_stop;
        sigaction(SIGTSTP, &sa, NULL);
        sa.sa_handler = on_continue;
        sigaction(SIGCONT, &sa, NULL);
        atexit(tty_restore);
        if (tcsetattr(STDIN_FILENO, TCSANOW, &tty_keys) < 0)
                return false;
        tty_raw = 1;
        return true;
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits ms; true when the user asked to quit (q, or the terminal went away). */
static bool wait_or_quit(long long ms, bool keys)
{
        long long deadline = now_ms() + ms, left;

        while ((left = deadline - now_ms()) > 0) {
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                char ch;
                int n;

                if (!keys) {
                        struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000 };
                        nanosleep(&ts, NULL);   /* EINTR: the loop sleeps the rest */
                        continue;
                }
                n = poll(&p, 1, (int)left);
                if (n <= 0)
                        continue;
                if (p.revents & (POLLHUP | POLLERR))
                        return true;
                n = (int)read(STDIN_FILENO, &ch, 1);
                if (n == 0 || (n == 1 && (ch == 'q' || ch == 'Q')))
                        return true;
        }
        return false;
}

int elvis_cmd_top(struct elvis_ctl *x, int argc, char **argv)
{
        bool once = false, interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO), keys = false;
        double interval = 1.0;
        unsigned long count = 0, frames = 0;
        json_t *prev = NULL, *cur, *rates;
        const char *val;
        int r, m;

        for (int i = 0; i < argc; i++) {
                if (!strcmp(argv[i], "--once")) {
                        once = true;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--interval", &val))) {
                        char *end;
                        if (m < 0)
                                return elvis_ctl_usage_error(x, "--interval needs a number of seconds");
                        interval = strtod(val, &end);
                        if (!*val || *end || !(interval >= 0.05 && interval <= 3600))
                                return elvis_ctl_usage_error(x, "--interval must be between 0.05 and 3600 seconds");
                } else if ((m = elvis_arg_option(argc, argv, &i, "--count", &val))) {
                        if (m < 0 || elvis_arg_uint(val, 1000000, &count) < 0 || !count)
                                return elvis_ctl_usage_error(x, "--count needs a positive number");
                } else {
                        return elvis_ctl_usage_error(x, "top: unknown option '%s'", argv[i]);
                }
        }
        if (once)
                count = 1;
        if (!interactive && !count)
                count = 1;      /* nobody can press q: one frame, like --once */
        if ((r = elvis_ctl_get(x, "/v1/stats", &prev)))
                return r;
        if (interactive && !once) {
                /* a frame goes out in one write, so the screen never shows half of one */
                setvbuf(stdout, NULL, _IOFBF, 1 << 16);
                keys = tty_enter();
        }
        for (;;) {
                char *frame = NULL;
                size_t len = 0;
                FILE *f;

                if (wait_or_quit((long long)(interval * 1000), keys))
                        break;
                if ((r = elvis_ctl_get(x, "/v1/stats", &cur)))
                        break;
                rates = elvis_top_rates(prev, cur);
                json_decref(prev);
                prev = cur;
                if (!rates) {
                        r = elvis_ctl_error(x, ELVIS_EXIT_API, "out of memory");
                        break;
                }
                if (x->out == ELVIS_OUT_JSON) {
                        elvis_json_print(rates);
                } else if ((f = open_memstream(&frame, &len))) {
                        if (interactive && !once)
                                fputs("\033[H\033[2J", f);   /* home, clear */
                        else if (frames)
                                fputc('\n', f);
                        render_top(rates, keys, f);
                        fclose(f);
                        fwrite(frame, 1, len, stdout);
                        free(frame);
                }
                fflush(stdout);
                json_decref(rates);
                if (count && ++frames >= count)
                        break;
        }
        json_decref(prev);
        tty_restore();
        return r;
}

/* " key=value" for the scalars of o, one level into objects (policy_changed's changes) */
static void print_fields(const json_t *o, bool top)
{
        static const char *const skip[] = { "seq", "time", "source", "event", NULL };
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)o, k, v) {
                bool skipped = false;
                for (const char *const *s = skip; top && *s; s++)
                        skipped = skipped || !strcmp(*s, k);
                if (skipped)
                        continue;
                if (json_is_object(v) && top) {
                        print_fields(v, false);
                } else if (json_is_string(v)) {
                        printf(" %s=%s", k, json_string_value(v));
                } else {
                        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
                        printf(" %s=%s", k, text ? text : "?");
                        free(text);
                }
        }
}

#define EVENT_INDENT "                                      "     /* under the EVENT column */

static void print_event(const json_t *ev)
{
        time_t t = (time_t)elvis_json_int(ev, "time");
        char when[32];
        struct tm tm;

        if (!localtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
                snprintf(when, sizeof(when), "%lld", (long long)t);
        printf("%6lld  %-19s  %-7s  ", elvis_json_int(ev, "seq"), when, elvis_json_str(ev, "source"));
        if (json_is_string(json_object_get(ev, "policy"))) {
                elvis_plan_print_summary(ev, EVENT_INDENT "  ");
                if (json_is_false(json_object_get(ev, "applied")))
                        printf(EVENT_INDENT "not applied: %s\n", elvis_json_str(ev, "error"));
                return;
        }
        printf("%s", elvis_json_str(ev, "event"));
        print_fields(ev, true);
        putchar('\n');
}

int elvis_cmd_events(struct elvis_ctl *x, int argc, char **argv)
{
        unsigned long long since = 0;
        bool follow = false, header = false;
        char boot[40] = "";
        const char *val;
        json_t *doc, *ev;
        char path[96];
        size_t i;
        int r, m;

        for (int k = 0; k < argc; k++) {
                unsigned long v;
                if (!strcmp(argv[k], "--follow"))
                        follow = true;
                else if ((m = elvis_arg_option(argc, argv, &k, "--since", &val)) && m > 0 &&
                         elvis_arg_uint(val, ~0ul, &v) == 0)
                        since = v;
                else if (m)
                        return elvis_ctl_usage_error(x, "--since needs an event number");
                else
                        return elvis_ctl_usage_error(x, "events: unknown option '%s'", argv[k]);
        }
        for (bool first = true;; first = false) {
                /* after the first answer, hold each request until something happens (long poll) */
                if (first) {
                        snprintf(path, sizeof(path), "/v1/events?since=%llu", since);
                } else {
                        snprintf(path, sizeof(path), "/v1/events?since=%llu&wait=25", since);
                        x->c.timeout_s = 40;
                }
                if ((r = elvis_ctl_get(x, path, &doc)))
                        return r;
                {
                        /* a restarted daemon numbers its journal from 1 again: start over */
                        const char *b = json_string_value(json_object_get(doc, "boot"));
                        if (b && boot[0] && strcmp(b, boot) != 0 && since) {
                                json_decref(doc);
                                since = 0;
                                boot[0] = '\0';
                                continue;
                        }
                        if (b)
                                snprintf(boot, sizeof(boot), "%s", b);
                }
                if (x->out == ELVIS_OUT_JSON && !follow)
                        elvis_json_print(doc);
                if (x->out == ELVIS_OUT_TABLE && !header &&
                    (!follow || json_array_size(json_object_get(doc, "events")))) {
                        printf("%6s  %-19s  %-7s  %s\n", "SEQ", "TIME", "SOURCE", "EVENT");
                        header = true;
                }
                json_array_foreach(json_object_get(doc, "events"), i, ev) {
                        if (x->out == ELVIS_OUT_TABLE) {
                                print_event(ev);
                        } else if (follow) {
                                char *line = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
                                if (line)
                                        puts(line);     /* JSON lines: one event each */
                                free(line);
                        }
                        since = (unsigned long long)elvis_json_int(ev, "seq");
                }
                /* same, from a daemon that does not say which run it is */
                if ((unsigned long long)elvis_json_int(doc, "last") < since)
                        since = 0;
                json_decref(doc);
                fflush(stdout);
                if (!follow)
                        return ELVIS_EXIT_OK;
        }
}
