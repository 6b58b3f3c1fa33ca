/* elvis-dataplane's least privilege: the capabilities it keeps and the system calls it
 * may make (docs/dataplane-protocol.md, "Least privilege"). Both before any thread
 * starts: capabilities are per thread. */
#pragma once
#include <stdint.h>

/* Keeps CAP_CHOWN, CAP_DAC_OVERRIDE and CAP_FOWNER (vhost-user sockets in the VMM's
 * directories, given to its group) and drops every other capability from the effective,
 * permitted, inheritable, ambient and (where allowed) bounding sets. 0 or -errno. */
int elvis_dp_drop_caps(void);
/* The capabilities elvis_dp_drop_caps() keeps, as a CapEff mask. */
uint64_t elvis_dp_kept_caps(void);
/* Installs the seccomp allow-list on every thread of the process (no new privileges
 * from then on); a call outside it fails with EPERM. 0 or -errno. */
int elvis_dp_seccomp(void);
