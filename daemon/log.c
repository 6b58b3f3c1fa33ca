/* The daemon's logger: journald's native protocol with fields, or lines on stderr. */
#define SD_JOURNAL_SUPPRESS_LOCATION    /* the caller's code location is sent, not this file's */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#define MESSAGE_MAX 2048
#define JOURNAL_FIELDS 12

static int max_level = LOG_INFO;
static int target = -1;                 /* enum elvis_log_target; -1 until the first message */
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

enum elvis_log_target elvis_log_target_for(int fd, const char *journal_stream, const char *journal_socket)
{
        unsigned long long dev, ino;
        struct stat st, sock;
        int end = 0;

        if (fstat(fd, &st) < 0)
                return ELVIS_LOG_PREFIXED;
        if (journal_stream && sscanf(journal_stream, "%llu:%llu%n", &dev, &ino, &end) == 2 &&
            journal_stream[end] == '\0' && dev == (unsigned long long)st.st_dev &&
            ino == (unsigned long long)st.st_ino && stat(journal_socket, &sock) == 0 && S_ISSOCK(sock.st_mode))
                return ELVIS_LOG_JOURNAL;
        return isatty(fd) ? ELVIS_LOG_PLAIN : ELVIS_LOG_PREFIXED;
}

void elvis_log_set_target(enum elvis_log_target t)
{
        __atomic_store_n(&target, (int)t, __ATOMIC_RELAXED);
}

struct fields {
        char *buf;
        size_t size, used;
        struct iovec *iov;
        size_t max, n;
};

static void field(struct fields *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void field(struct fields *f, const char *fmt, ...)
{
        size_t room = f->size - f->used;
        va_list ap;
        int len;

        if (f->n == f->max || room == 0)
                return;
        va_start(ap, fmt);
        len = vsnprintf(f->buf + f->used, room, fmt, ap);
        va_end(ap);
        if (len < 0 || (size_t)len >= room)
                return;
        f->iov[f->n++] = (struct iovec){ .iov_base = f->buf + f->used, .iov_len = (size_t)len };
        f->used += (size_t)len + 1;
}

size_t elvis_log_journal_fields(int level, const struct elvis_log_subject *s, const char *file, int line,
                                const char *func, const char *message, char *buf, size_t size, struct iovec *iov,
                                size_t max)
{
        struct fields f = { .buf = buf, .size = size, .iov = iov, .max = max };
        int len;

        if (max == 0 || size <= strlen("MESSAGE="))
                return 0;
        len = snprintf(buf, size, "MESSAGE=%s", message);
        if (len < 0)
                return 0;
        if ((size_t)len >= size)
                len = (int)size - 1;            /* cut, never dropped */
        iov[f.n++] = (struct iovec){ .iov_base = buf, .iov_len = (size_t)len };
        f.used = (size_t)len + 1;
        field(&f, "PRIORITY=%d", level);
        field(&f, "SYSLOG_IDENTIFIER=%s", program_invocation_short_name);
        if (file) {
                field(&f, "CODE_FILE=%s", file);
                field(&f, "CODE_LINE=%d", line);
                if (func)
                        field(&f, "CODE_FUNC=%s", func);
        }
        if (s && s->vm_set) {
                field(&f, "ELVIS_VM_ID=%u", s->vm_id);
                if (s->vm_name)
                        field(&f, "ELVIS_VM=%s", s->vm_name);
                if (s->device)
                        field(&f, "ELVIS_DEVICE=%s", s->device);
        }
        if (s && s->sidecore_set)
                field(&f, "ELVIS_SIDECORE=%u", s->sidecore);
        return f.n;
}

static void write_lines(bool prefixed, int level, char *msg)
{
        char *line, *save = NULL;

        pthread_mutex_lock(&log_lock);
        for (line = strtok_r(msg, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (prefixed)
                        fprintf(stderr, "<%d>%s\n", level, line);
                else
                        fprintf(stderr, "%s\n", line);
        }
        fflush(stderr);
        pthread_mutex_unlock(&log_lock);
}

static void emit(int level, const struct elvis_log_subject *s, const char *file, int line, const char *func,
                 const char *fmt, va_list ap) __attribute__((format(printf, 6, 0)));
static void emit(int level, const struct elvis_log_subject *s, const char *file, int line, const char *func,
                 const char *fmt, va_list ap)
{
        char msg[MESSAGE_MAX];
        int saved = errno, t;

        if (level > max_level)
                return;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        t = __atomic_load_n(&target, __ATOMIC_RELAXED);
        if (t < 0) {
                t = (int)elvis_log_target_for(STDERR_FILENO, getenv("JOURNAL_STREAM"), ELVIS_JOURNAL_SOCKET);
                __atomic_store_n(&target, t, __ATOMIC_RELAXED);
        }
        if (t == ELVIS_LOG_JOURNAL) {
                char buf[MESSAGE_MAX + 1024];
                struct iovec iov[JOURNAL_FIELDS];
                size_t n = elvis_log_journal_fields(level, s, file, line, func, msg, buf, sizeof(buf), iov,
                                                    JOURNAL_FIELDS);

                if (sd_journal_sendv(iov, (int)n) >= 0) {
                        errno = saved;
                        return;
                }
                t = ELVIS_LOG_PREFIXED;         /* libsystemd could not send it: the stream takes lines */
        }
        write_lines(t == ELVIS_LOG_PREFIXED, level, msg);
        errno = saved;
}

void elvis_log_meta(int level, const struct elvis_log_subject *subject, const char *file, int line, const char *func,
                    const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        emit(level, subject, file, line, func, fmt, ap);
        va_end(ap);
}

void elvis_logv(int level, const char *fmt, va_list ap)
{
        emit(level, NULL, NULL, 0, NULL, fmt, ap);
}

void elvis_log(int level, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        emit(level, NULL, NULL, 0, NULL, fmt, ap);
        va_end(ap);
}

int elvis_log_errno_at(int level, int err, const char *file, int line, const char *func, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        emit(level, NULL, file, line, func, fmt, ap);
        va_end(ap);
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
