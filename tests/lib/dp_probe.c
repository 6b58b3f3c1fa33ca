/* Test builds of elvis-dataplane only (tests/elvis-dataplane-probe): on SIGUSR1 the
 * running data plane tries what its sandbox forbids and prints one line per try,
 *   probe: WHAT refused: REASON   or   probe: WHAT allowed
 * then "probe: done". test_dataplane_proc reads them. With --probe-speak N it is a data
 * plane of protocol version N instead (elvis_dp_probe_speak). Nothing here is in the
 * product. */
#include "../../dataplane/proto.h"

#include <poll.h>
#include <sys/signalfd.h>
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
int elvis_dp_probe_speak(int lfd, int sfd, unsigned version);

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

/* One answer of a version-N data plane: every request refused with -EPROTO in a
 * version-N header, as a data plane of that version answers ours; from version 3 on,
 * HELLO carries its hello and STOP is honoured (returns 1). */
static int speak_once(int conn, unsigned version)
{
        _Alignas(8) unsigned char in[ELVIS_DPP_MSG_MAX], out[ELVIS_DPP_MSG_MAX];
        struct elvis_dpp_hdr h, *o = (void *)out;
        struct elvis_dpp_result res = { .error = -EPROTO };
        struct elvis_dpp_hello hello = { .version = version, .pid = (uint32_t)getpid() };
        ssize_t n = recv(conn, in, sizeof(in), 0);
        size_t len = sizeof(h) + sizeof(res);
        bool stop;

        if (n < (ssize_t)sizeof(h))
                return -1;
        memcpy(&h, in, sizeof(h));
        stop = version >= 3 && h.type == ELVIS_DPP_STOP;
        if (stop)
                res.error = 0;
        else
                snprintf(res.reason, sizeof(res.reason), "protocol version %u, this data plane speaks %u", h.version,
                         version);
        memcpy(out + sizeof(h), &res, sizeof(res));
        if (version >= 3 && h.type == ELVIS_DPP_HELLO) {
                snprintf(hello.kind, sizeof(hello.kind), "user");
                memcpy(out + len, &hello, sizeof(hello));
                len += sizeof(hello);
        }
        *o = (struct elvis_dpp_hdr){ .magic = ELVIS_DPP_MAGIC, .version = (uint16_t)version,
                                     .type = (uint16_t)(h.type | ELVIS_DPP_REPLY), .id = h.id,
                                     .length = (uint32_t)(len - sizeof(h)) };
        if (send(conn, out, len, MSG_NOSIGNAL) < 0)
                return -1;
        fprintf(stderr, "probe: version %u answered request %u of version %u%s\n", version, h.type, h.version,
                stop ? ": stopping" : "");
        return stop;
}

/* Serves lfd as a data plane of protocol version `version` until a signal (0) or,
 * from version 3 on, a STOP (1). */
int elvis_dp_probe_speak(int lfd, int sfd, unsigned version)
{
        int conn = -1, r = 0;

        fprintf(stderr, "probe: speaking protocol version %u\n", version);
        for (;;) {
                struct pollfd p[3] = { { .fd = sfd, .events = POLLIN }, { .fd = lfd, .events = POLLIN },
                                       { .fd = conn, .events = POLLIN } };
                if (poll(p, conn >= 0 ? 3 : 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[0].revents) {
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1)
                                continue;
                        break;
                }
                if (conn >= 0 && p[2].revents && (r = speak_once(conn, version)) != 0) {
                        close(conn);
                        conn = -1;
                        if (r > 0)
                                break;
                        r = 0;
                }
                if (p[1].revents & POLLIN) {
                        int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        if (c >= 0) {
                                if (conn >= 0)
                                        close(conn);
                                conn = c;
                        }
                }
        }
        if (conn >= 0)
                close(conn);
        return r > 0;
}
