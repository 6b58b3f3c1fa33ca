// SPDX-License-Identifier: GPL-2.0
/* The shared split-virtqueue engine (dataplane/engine), compiled into the module as-is. */
#include "../dataplane/engine/elvis_vring.c"
