/* The daemon's logger. Under journald (stderr is the stream $JOURNAL_STREAM names) each
 * message goes through sd_journal_sendv with its priority, code location and what it
 * concerns (ELVIS_VM=, ELVIS_VM_ID=, ELVIS_DEVICE=, ELVIS_SIDECORE=); otherwise it is a
 * line on stderr, with an sd-daemon "<N>" priority prefix unless stderr is a terminal. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

struct iovec;

void elvis_log_set_level(int level);
int elvis_log_get_level(void);
/* "err", "warning", "notice", "info", "debug" (or 0-7); returns the level or -EINVAL. */
int elvis_log_level_parse(const char *s);
const char *elvis_log_level_name(int level);

enum elvis_log_target {
        ELVIS_LOG_PREFIXED,             /* "<N>message" lines: a pipe, a file, systemd without journald */
        ELVIS_LOG_PLAIN,                /* a terminal: the message alone */
        ELVIS_LOG_JOURNAL,              /* journald's native protocol, with fields */
};
#define ELVIS_JOURNAL_SOCKET "/run/systemd/journal/socket"
/* The target for messages written to fd, given $JOURNAL_STREAM ("DEV:INO", may be NULL):
 * the journal only when it names fd's own device and inode (a child whose stderr was
 * redirected does not inherit the decision) and journal_socket, journald's native socket,
 * exists: libsystemd drops messages silently when it is missing. */
enum elvis_log_target elvis_log_target_for(int fd, const char *journal_stream, const char *journal_socket);
/* Overrides the target; by default it is chosen for stderr at the first message. */
void elvis_log_set_target(enum elvis_log_target target);

/* What a message concerns. A VM is named by id, and by name where the caller has it; a
 * device belongs to the VM. */
struct elvis_log_subject {
        bool vm_set;
        uint32_t vm_id;
        const char *vm_name;            /* may be NULL */
        const char *device;             /* may be NULL */
        bool sidecore_set;
        uint32_t sidecore;
};
#define ELVIS_LOG_VM(id, name) (&(const struct elvis_log_subject){ .vm_set = true, .vm_id = (id), .vm_name = (name) })
#define ELVIS_LOG_DEVICE(id, name, dev) \
        (&(const struct elvis_log_subject){ .vm_set = true, .vm_id = (id), .vm_name = (name), .device = (dev) })
#define ELVIS_LOG_SIDECORE(id) (&(const struct elvis_log_subject){ .sidecore_set = true, .sidecore = (id) })

/* The journal fields of one message, each "KEY=value", in iov (at most max of them),
 * their text in buf: MESSAGE, PRIORITY, SYSLOG_IDENTIFIER, CODE_FILE, CODE_LINE,
 * CODE_FUNC (where file is given), then the subject's. Returns how many were filled; a
 * field that does not fit in buf is left out, MESSAGE (first) is cut to fit. */
size_t elvis_log_journal_fields(int level, const struct elvis_log_subject *subject, const char *file, int line,
                                const char *func, const char *message, char *buf, size_t size, struct iovec *iov,
                                size_t max);

/* Logs one message (several lines on stderr when it has newlines); above the level it is
 * dropped. subject and file may be NULL. */
void elvis_log_meta(int level, const struct elvis_log_subject *subject, const char *file, int line, const char *func,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
void elvis_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void elvis_logv(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Logs and returns -abs(err), for "log and return in one step"; errno is kept for %m. */
int elvis_log_errno_at(int level, int err, const char *file, int line, const char *func, const char *fmt, ...)
        __attribute__((format(printf, 6, 7)));
#define elvis_log_errno(level, err, ...) elvis_log_errno_at(level, err, __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Rate limiting for repeated messages: at most burst messages per interval. */
struct elvis_ratelimit {
        uint64_t interval_ns;
        unsigned burst;
        uint64_t begin_ns;
        unsigned printed;
        uint64_t suppressed;
};
#define ELVIS_RATELIMIT_INIT(interval_ms, b) { .interval_ns = (uint64_t)(interval_ms) * 1000000u, .burst = (b) }
/* True when the caller may log now; now_ns is CLOCK_MONOTONIC. */
bool elvis_ratelimit_ok(struct elvis_ratelimit *rl, uint64_t now_ns);

#define log_at(level, subject, ...) elvis_log_meta(level, subject, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_error(...) log_at(LOG_ERR, NULL, __VA_ARGS__)
#define log_warning(...) log_at(LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) log_at(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...) log_at(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, NULL, __VA_ARGS__)
