/* elvis-blk-serve: one vhost-user-blk device of the user data plane on a sidecore, for
 * shell tests that compare it with a peer (tests/blk/emu-vs-qsd) until the daemon's side
 * of blk devices exists. Made through the plane's operations, as the daemon would.
 *   elvis-blk-serve SOCKET IMAGE|null:BYTES [QUEUES]
 * Prints "ready" once the socket listens; serves until SIGTERM or SIGINT. Test tool only. */
#include "../../dataplane/user_dp.h"

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
        char dir[ELVIS_PATH_MAX];
        struct elvis_dp_config cfg = { .run_dir = dir };
        struct elvis_dp_device d = { .vm_id = 1, .vm_name = "peer", .device_id = "disk0", .type = ELVIS_DEVICE_BLK,
                                     .backend = ELVIS_BACKEND_FILE, .queues = 1, .weight = ELVIS_WEIGHT_DEFAULT,
                                     .exitless = ELVIS_EXITLESS_AUTO, .vmm_uid = -1, .vmm_gid = -1 };
        sigset_t set;
        void *dp;
        int r, sig;

        if (argc < 3 || argc > 4 || strlen(argv[1]) >= sizeof(dir)) {
                fprintf(stderr, "usage: elvis-blk-serve SOCKET IMAGE|null:BYTES [QUEUES]\n");
                return 2;
        }
        snprintf(dir, sizeof(dir), "%s", argv[1]);
        snprintf(dir, sizeof(dir), "%s", dirname(dir));
        d.socket_path = argv[1];
        if (!strncmp(argv[2], "null:", 5)) {
                d.backend = ELVIS_BACKEND_NULL;
                d.size_bytes = strtoull(argv[2] + 5, NULL, 10);
        } else {
                d.path = argv[2];
        }
        if (argc == 4)
                d.queues = (unsigned)atoi(argv[3]);
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        pthread_sigmask(SIG_BLOCK, &set, NULL);         /* before the plane's threads start */
        if ((r = elvis_user_dataplane.open(&cfg, &dp)) < 0 || (r = elvis_user_dataplane.sidecore_create(dp, 1, -1)) < 0 ||
            (r = elvis_user_dataplane.device_attach(dp, &d)) < 0) {
                fprintf(stderr, "elvis-blk-serve: %s\n", strerror(-r));
                return 1;
        }
        for (unsigned i = 0; i < d.queues; i++)
                if ((r = elvis_user_dataplane.queue_assign(dp, 1, "disk0", i, 1)) < 0) {
                        fprintf(stderr, "elvis-blk-serve: queue %u: %s\n", i, strerror(-r));
                        return 1;
                }
        printf("ready\n");
        fflush(stdout);
        sigwait(&set, &sig);
        for (unsigned i = 0; i < d.queues; i++)
                elvis_user_dataplane.queue_assign(dp, 1, "disk0", i, 0);
        elvis_user_dataplane.device_detach(dp, 1, "disk0");
        elvis_user_dataplane.close(dp);
        return 0;
}
