/* The user data plane in its own process (elvis-dataplane), for elvis-manager
 * --dataplane user-process: the manager's side of the data-plane protocol. */
#pragma once
#include <elvis/dataplane.h>

extern const struct elvis_dataplane_ops elvis_remote_dataplane;

/* open() on a socket already connected to a data-plane server (fd >= 0; it is owned
 * from then on): for tests. With fd < 0, open() itself. */
int elvis_remote_dp_open_fd(int fd, const struct elvis_dp_config *cfg, void **ret);
