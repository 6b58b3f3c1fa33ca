/* Logging to stderr with sd-daemon "<N>" priority prefixes, so journald keeps levels. */
#pragma once
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

void elvis_log_set_level(int level);
int elvis_log_get_level(void);
/* "err", "warning", "notice", "info", "debug" (or 0-7); returns the level or -EINVAL. */
int elvis_log_level_parse(const char *s);
const char *elvis_log_level_name(int level);
/* Writes each line of the message with a "<level>" prefix; lines above the level are dropped. */
void elvis_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void elvis_logv(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Logs and returns -abs(err), for "log and return in one step". */
int elvis_log_errno(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

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

#define log_error(...) elvis_log(LOG_ERR, __VA_ARGS__)
#define log_warning(...) elvis_log(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) elvis_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) elvis_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) elvis_log(LOG_DEBUG, __VA_ARGS__)
