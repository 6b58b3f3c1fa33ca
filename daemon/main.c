/* elvis-manager entry point: the product's data-plane registry. */
#include "manager.h"

#include "../dataplane/kernel_dp.h"
#include "../dataplane/user_dp.h"

#include <stddef.h>

static const struct elvis_dataplane_entry dataplanes[] = {
        { "user", &elvis_user_dataplane },
        { "kernel", &elvis_kernel_dataplane },
        { NULL, NULL },
};

int main(int argc, char **argv)
{
        return elvis_manager_main(argc, argv, dataplanes);
}
