/* The user-space vhost-user data plane, for elvis-manager --dataplane user. */
#pragma once
#include <elvis/dataplane.h>

extern const struct elvis_dataplane_ops elvis_user_dataplane;
