/* The logging port of the data planes (dp_log.h). */
#include "dp_log.h"

#include <stdio.h>

static void to_stderr(int priority, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void to_stderr(int priority, const char *fmt, va_list ap)
{
        fprintf(stderr, "<%d>", priority);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
}

static elvis_dp_log_fn logger = to_stderr;

void elvis_dp_set_logger(elvis_dp_log_fn fn)
{
        logger = fn ? fn : to_stderr;
}

void dp_log(int priority, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        logger(priority, fmt, ap);
        va_end(ap);
}
