/* elvis-manager entry point, the composition root: the product's data planes and its
 * front end, the REST API. */
#include "manager.h"

#include "../api/api.h"
#include "../dataplane/kernel_dp.h"
#include "../dataplane/remote_dp.h"
#include "../dataplane/user_dp.h"

#include <stddef.h>

static const struct elvis_dataplane_entry dataplanes[] = {
        { "user", &elvis_user_dataplane },
        { "kernel", &elvis_kernel_dataplane },
        { "user-process", &elvis_remote_dataplane },
        { NULL, NULL },
};

int main(int argc, char **argv)
{
        return elvis_manager_main(argc, argv, dataplanes, &elvis_api_frontend);
}
