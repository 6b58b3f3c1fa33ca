/* Test-only data plane implementing the data-plane interface. */
#pragma once
#include <elvis/dataplane.h>

extern const struct elvis_dataplane_ops elvis_fake_dataplane;
