/* Test builds of elvis-dataplane only (tests/elvis-dataplane-probe): on SIGUSR1 the
 * running data plane tries what its sandbox forbids and prints one line per try,
 *   probe: WHAT refused: REASON   or   probe: WHAT allowed
 * then "probe: done". test_dataplane_proc reads them. Nothing here is in the product. */
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

void elvis_dp_probe(void);

static void report(const char *what, int r, int err)
{
        if (r < 0)
                fprintf(stderr, "probe: %s refused: %s\n", what, strerror(err));
        else
                fprintf(stderr, "probe: %s allowed\n", what);
}

static void try_socket(const char *what, int family, int type, int proto)
{
        int fd = socket(family, type | SOCK_CLOEXEC, proto);

        report(what, fd, errno);
        if (fd >= 0)
                close(fd);
}

void elvis_dp_probe(void)
{
        char *const argv[] = { "elvis-probe", NULL };
        struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI };
        pid_t pid;
        int fd, r;

        try_socket("socket(AF_INET)", AF_INET, SOCK_STREAM, 0);
        try_socket("socket(AF_INET6)", AF_INET6, SOCK_DGRAM, 0);
        try_socket("socket(AF_NETLINK)", AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
        try_socket("socket(AF_UNIX)", AF_UNIX, SOCK_STREAM, 0);
        /* a path that does not exist: without the filter this fails with ENOENT and the
         * data plane stays what it is */
        r = execve("/nonexistent/elvis-probe", argv, argv + 1);
        report("execve", r, errno);
        pid = fork();
        if (pid == 0)
                _exit(0);
        report("fork", pid, errno);
        if (pid > 0)
                waitpid(pid, NULL, 0);
        r = kill(getppid(), 0);
        report("kill(another process)", r, errno);
        fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "elvprobe%d", (int)getpid() % 10000);
                r = ioctl(fd, TUNSETIFF, &ifr);
                report("ioctl(TUNSETIFF)", r, errno);
                close(fd);
        }
        fprintf(stderr, "probe: done\n");
}
