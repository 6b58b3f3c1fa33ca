// SPDX-License-Identifier: GPL-2.0
/* The shared virtio-net device model (dataplane/engine), compiled into the module as-is;
 * its port is in net.c. */
#include "../dataplane/engine/elvis_net.c"
