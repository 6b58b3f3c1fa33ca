/* elvis-manager-fake: the real daemon with the fake data plane registered as
 * "user-process" (what auto picks without elvis.ko) and "user", for functional tests of
 * the control path; also as "kernel" when asked for by "--dataplane kernel" (never for
 * auto, which must keep choosing "user-process"). With
 * ELVIS_FAKE_KERNEL=unusable a "kernel" data plane is present but cannot be opened,
 * as elvis.ko is for a daemon without CAP_NET_ADMIN. */
#include "../../api/api.h"
#include "../../daemon/manager.h"
#include "fake_dataplane.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static bool unusable_available(void)
{
        return true;
}

static int unusable_open(const struct elvis_dp_config *cfg, void **ret)
{
        (void)cfg;
        (void)ret;
        return -EACCES;
}

static const struct elvis_dataplane_ops unusable_kernel = {
        .kind = "kernel",
        .available = unusable_available,
        .open = unusable_open,
};

static const struct elvis_dataplane_entry with_unusable_kernel[] = {
        { "user-process", &elvis_fake_dataplane },
        { "user", &elvis_fake_dataplane },
        { "kernel", &unusable_kernel },
        { NULL, NULL },
};

static const struct elvis_dataplane_entry user_only[] = {
        { "user-process", &elvis_fake_dataplane },
        { "user", &elvis_fake_dataplane },
        { NULL, NULL },
};

static const struct elvis_dataplane_entry with_kernel[] = {
        { "user-process", &elvis_fake_dataplane },
        { "user", &elvis_fake_dataplane },
        { "kernel", &elvis_fake_dataplane },
        { NULL, NULL },
};

int main(int argc, char **argv)
{
        const struct elvis_dataplane_entry *dp = user_only;

        const char *k = getenv("ELVIS_FAKE_KERNEL");

        for (int i = 1; i + 1 < argc; i++)
                if (strcmp(argv[i], "--dataplane") == 0 && strcmp(argv[i + 1], "kernel") == 0)
                        dp = with_kernel;
        if (k && strcmp(k, "unusable") == 0)
                dp = with_unusable_kernel;
        return elvis_manager_main(argc, argv, dp, &elvis_api_frontend);
}
