/* The data planes' logging port: they log through a function the daemon installs (its
 * journal-aware logger), so nothing here depends on the daemon. Priorities are syslog's. */
#pragma once
#include <stdarg.h>
#include <syslog.h>

#include <elvis/dataplane.h>

void dp_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) dp_log(LOG_ERR, __VA_ARGS__)
#define log_warning(...) dp_log(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) dp_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) dp_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) dp_log(LOG_DEBUG, __VA_ARGS__)
