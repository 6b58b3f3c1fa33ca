/* Tap devices, one fd per queue pair: opening them (whoever holds CAP_NET_ADMIN: the
 * in-process plane, or elvis-manager for elvis-dataplane) and checking an fd that
 * another process passed. The two sides apply the same rules. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* The vnet header a tap starts with, until the guest acks features (virtio 1.0's). */
#define ELVIS_TAP_HDR_LEN 12

/* Opens nqp queues of the tap name into fds[0..nqp). Unless adopt, the first open must
 * create the interface (IFF_TUN_EXCL): -EEXIST when it exists. -EINVAL for a name that
 * is not a valid interface name or that the kernel would change (a template). On
 * failure nothing stays open. Does not log. */
int elvis_tap_open(const char *name, unsigned nqp, bool adopt, int *fds);
void elvis_tap_close(int *fds, unsigned n);

/* Checks that fd is a queue of the tap name as elvis_tap_open() leaves it: the tun
 * character device, attached to that interface, a tap with a vnet header and no packet
 * information, multiqueue when nqp > 1. 0, or -EBADF/-EINVAL with why set. */
int elvis_tap_check_fd(int fd, const char *name, unsigned nqp, const char **why);
