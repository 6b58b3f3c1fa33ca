/* The sd_notify protocol, sent without ever blocking: a service manager that stops
 * reading must not stall the daemon's event loop. */
#pragma once

/* Sends "KEY=VALUE\n..." to $NOTIFY_SOCKET if set; silently drops it when the socket
 * is full. Returns 0, or -errno. */
int elvis_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
