/* elvis-manager-fake: the real daemon with the fake data plane registered as "user",
 * for functional tests of the control path; also as "kernel" when asked for by
 * "--dataplane kernel" (never for auto, which must keep choosing "user"). */
#include "../../daemon/manager.h"
#include "fake_dataplane.h"

#include <stddef.h>
#include <string.h>

static const struct elvis_dataplane_entry user_only[] = {
        { "user", &elvis_fake_dataplane },
        { NULL, NULL },
};

static const struct elvis_dataplane_entry with_kernel[] = {
        { "user", &elvis_fake_dataplane },
        { "kernel", &elvis_fake_dataplane },
        { NULL, NULL },
};

int main(int argc, char **argv)
{
        const struct elvis_dataplane_entry *dp = user_only;

        for (int i = 1; i + 1 < argc; i++)
                if (strcmp(argv[i], "--dataplane") == 0 && strcmp(argv[i + 1], "kernel") == 0)
                        dp = with_kernel;
        return elvis_manager_main(argc, argv, dp);
}
