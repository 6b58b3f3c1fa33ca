/* The kernel data plane: elvis.ko driven through its control device /dev/elvis. */
#pragma once
#include <elvis/dataplane.h>

extern const struct elvis_dataplane_ops elvis_kernel_dataplane;
