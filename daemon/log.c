/* stderr logger with sd-daemon priority prefixes and a simple rate limiter. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int max_level = LOG_INFO;
static int stderr_tty = -1;     /* "<N>" prefixes are for journald, not for a terminal */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER; /* serialises lines from data-plane threads */

static const char *const level_names[] = { "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug" };

void elvis_log_set_level(int level) { max_level = level; }
int elvis_log_get_level(void) { return max_level; }

int elvis_log_level_parse(const char *s)
{
        if (s[0] >= '0' && s[0] <= '7' && s[1] == '\0')
                return s[0] - '0';
        for (int i = 0; i < 8; i++)
                if (strcmp(s, level_names[i]) == 0)
                        return i;
        if (strcmp(s, "error") == 0)
                return LOG_ERR;
        if (strcmp(s, "warn") == 0)
                return LOG_WARNING;
        return -EINVAL;
}

const char *elvis_log_level_name(int level)
{
        return level >= 0 && level < 8 ? level_names[level] : "invalid";
}

void elvis_logv(int level, const char *fmt, va_list ap)
{
        char msg[2048];
        char *line, *save = NULL;

        if (level > max_level)
                return;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        pthread_mutex_lock(&log_lock);
        if (stderr_tty < 0)
                stderr_tty = isatty(STDERR_FILENO);
        for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                if (stderr_tty)
                        fprintf(stderr, "%s\n", line);
                else
                        fprintf(stderr, "<%d>%s\n", level, line);
        fflush(stderr);
        pthread_mutex_unlock(&log_lock);
}

void elvis_log(int level, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        elvis_logv(level, fmt, ap);
        va_end(ap);
}

int elvis_log_errno(int level, int err, const char *fmt, ...)
{
        va_list ap;
        int saved = errno;

        va_start(ap, fmt);
        elvis_logv(level, fmt, ap);
        va_end(ap);
        errno = saved;
        return err < 0 ? err : -err;
}

bool elvis_ratelimit_ok(struct elvis_ratelimit *rl, uint64_t now_ns)
{
        if (now_ns - rl->begin_ns >= rl->interval_ns || rl->begin_ns == 0) {
                if (rl->suppressed)
                        elvis_log(LOG_WARNING, "%llu similar messages suppressed",
                                  (unsigned long long)rl->suppressed);
                rl->begin_ns = now_ns ? now_ns : 1;
                rl->printed = 0;
                rl->suppressed = 0;
        }
        if (rl->printed < rl->burst) {
                rl->printed++;
                return true;
        }
        rl->suppressed++;
        return false;
}
