/* elvis-manager-fake: the real daemon with the fake data plane registered as "user",
 * for functional tests of the control path. */
#include "../../daemon/manager.h"
#include "fake_dataplane.h"

#include <stddef.h>

static const struct elvis_dataplane_entry dataplanes[] = {
        { "user", &elvis_fake_dataplane },
        { NULL, NULL },
};

int main(int argc, char **argv)
{
        return elvis_manager_main(argc, argv, dataplanes);
}
