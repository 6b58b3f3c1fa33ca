/* elvis-dataplane: the user-space data plane in a process of its own. It hosts the
 * vhost-user plane (user_dp.c) and serves the data-plane protocol (proto.h) on
 * RUN_DIR/dataplane.sock; it outlives the elvis-manager that started it. No HTTP, TLS,
 * libvirt or XML is linked in. Before any thread starts it drops every capability but
 * the three its sockets need and installs a seccomp allow-list (sandbox.c).
 * Under systemd, elvis-dataplane.socket listens and passes the socket (LISTEN_FDS).
 *   elvis-dataplane --run-dir DIR [--no-pin] [--ready-fd N] [--no-seccomp] */
#include "proto_server.h"
#include "user_dp.h"

#include "dp_log.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS 8

#ifdef ELVIS_DP_PROBE
void elvis_dp_probe(void);
int elvis_dp_probe_speak(int lfd, int sfd, unsigned version);
#endif

static void usage(FILE *f)
{
        fprintf(f, "usage: elvis-dataplane --run-dir DIR [--no-pin] [--ready-fd N] [--no-seccomp]\n"
                   "Serves vhost-user devices and sidecores for elvis-manager over DIR/%s.\n",
                   ELVIS_DPP_SOCKET_NAME);
}

static int listen_on(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        int fd;

        if (strlen(path) >= sizeof(a.sun_path))
                return -ENAMETOOLONG;
        memcpy(a.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return -errno;
        /* the lock is ours: a socket file left here is a dead data plane's */
        if (unlink(path) < 0 && errno != ENOENT)
                goto fail;
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || chmod(path, 0600) < 0 || listen(fd, MAX_CONNS) < 0)
                goto fail;
        return fd;
fail:;
        int r = -errno;
        close(fd);
        return r;
}

/* Socket activation (elvis-dataplane.socket): systemd listens on the socket and passes
 * it as fd 3; it stays systemd's, so a front end's manager can connect while we restart.
 * -ENOENT when we were not started that way. */
static int listen_fd_from_systemd(void)
{
        const char *pid = getenv("LISTEN_PID"), *n = getenv("LISTEN_FDS");
        int type = 0, acc = 0, fd = 3;
        socklen_t l1 = sizeof(type), l2 = sizeof(acc);
        struct sockaddr_un a;
        socklen_t al = sizeof(a);

        if (!pid || !n || strtol(pid, NULL, 10) != (long)getpid())
                return -ENOENT;
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        if (strcmp(n, "1") != 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0 ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l2) < 0 || getsockname(fd, (struct sockaddr *)&a, &al) < 0 ||
            a.sun_family != AF_UNIX || type != SOCK_SEQPACKET || !acc)
                return -EINVAL;
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
                return -errno;
        return fd;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "run-dir", required_argument, NULL, 'r' }, { "no-pin", no_argument, NULL, 'n' },
                { "ready-fd", required_argument, NULL, 'f' }, { "no-seccomp", no_argument, NULL, 's' },
                { "help", no_argument, NULL, 'h' },
#ifdef ELVIS_DP_PROBE
                /* test builds: a data plane of another protocol version (tests/lib/dp_probe.c) */
                { "probe-speak", required_argument, NULL, 'v' },
#endif
                { 0 },
        };
        struct elvis_dp_config cfg = { .pin = true };
        char sock_path[ELVIS_PATH_MAX], lock_path[256];
        struct elvis_dpp_server *srv = NULL;
        struct pollfd pfd[2 + MAX_CONNS];
        int conns[MAX_CONNS], nconns = 0, ready_fd = -1, lock_fd, lfd, sfd, c, r;
        void *dp = NULL;
        bool seccomp = true, activated, stop = false;
        const char *why = "a signal";
#ifdef ELVIS_DP_PROBE
        unsigned speak = 0;
#endif
        sigset_t mask;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'r': cfg.run_dir = optarg; break;
                case 'n': cfg.pin = false; break;
                case 'f': ready_fd = atoi(optarg); break;
                case 's': seccomp = false; break;
                case 'h': usage(stdout); return 0;
#ifdef ELVIS_DP_PROBE
                case 'v': speak = (unsigned)atoi(optarg); break;
#endif
                default: usage(stderr); return 2;
                }
        }
        if (!cfg.run_dir || optind != argc) {
                usage(stderr);
                return 2;
        }
        prctl(PR_SET_NAME, "elvis-dataplane");
        /* the manager that reads our stderr may be gone: a write must not kill us */
        signal(SIGPIPE, SIG_IGN);
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
#ifdef ELVIS_DP_PROBE
        sigaddset(&mask, SIGUSR1);
#endif
        sigprocmask(SIG_BLOCK, &mask, NULL);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC);
        if (snprintf(sock_path, sizeof(sock_path), "%s/%s", cfg.run_dir, ELVIS_DPP_SOCKET_NAME) >= (int)sizeof(sock_path) ||
            snprintf(lock_path, sizeof(lock_path), "%s/%s", cfg.run_dir, ELVIS_DPP_LOCK_NAME) >= (int)sizeof(lock_path)) {
                log_error("elvis-dataplane: run directory %s: path too long", cfg.run_dir);
                return 1;
        }
        lfd = listen_fd_from_systemd();
        activated = lfd >= 0;
        if (lfd == -EINVAL || (lfd < 0 && lfd != -ENOENT)) {
                log_error("elvis-dataplane: LISTEN_FDS does not pass one listening unix SOCK_SEQPACKET socket");
                return 1;
        }
        lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
                log_error("elvis-dataplane: %s: %s", lock_path,
                          errno == EWOULDBLOCK ? "another elvis-dataplane serves this run directory" : strerror(errno));
                return 1;
        }
        /* capabilities are per thread: both before the plane starts any */
        if ((r = elvis_dp_drop_caps()) < 0) {
                log_error("elvis-dataplane: dropping capabilities: %s", strerror(-r));
                return 1;
        }
        if (seccomp && (r = elvis_dp_seccomp()) < 0) {
                log_error("elvis-dataplane: installing the seccomp allow-list: %s (--no-seccomp runs without it)",
                          strerror(-r));
                return 1;
        }
        r = elvis_user_dataplane.open(&cfg, &dp);
        if (r < 0) {
                log_error("elvis-dataplane: the user data plane failed to start: %s", strerror(-r));
                return 1;
        }
        if ((r = elvis_dpp_server_new(&elvis_user_dataplane, dp, &srv)) < 0 ||
            (!activated && (lfd = listen_on(sock_path)) < 0)) {
                log_error("elvis-dataplane: cannot serve %s: %s", sock_path, strerror(-(r < 0 ? r : lfd)));
                elvis_user_dataplane.close(dp);
                elvis_dpp_server_free(srv);
                return 1;
        }
        log_info("elvis-dataplane %d: protocol %u on %s%s; capabilities: chown, dac_override, fowner at most; seccomp %s",
                 (int)getpid(), ELVIS_DPP_VERSION, sock_path, activated ? " (systemd's socket)" : "",
                 seccomp ? "allow-list on" : "off (--no-seccomp)");
        if (ready_fd >= 0) {
                if (write(ready_fd, "1", 1) < 0)
                        log_warning("elvis-dataplane: telling the manager it is ready: %s", strerror(errno));
                close(ready_fd);
        }
#ifdef ELVIS_DP_PROBE
        if (speak) {
                stop = true;
                why = elvis_dp_probe_speak(lfd, sfd, speak) ? "a STOP" : "a signal";
        }
#endif
        while (!stop) {
                pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
                pfd[1] = (struct pollfd){ .fd = lfd, .events = nconns < MAX_CONNS ? POLLIN : 0 };
                for (int i = 0; i < nconns; i++)
                        pfd[2 + i] = (struct pollfd){ .fd = conns[i], .events = POLLIN };
                if (poll(pfd, 2 + (nfds_t)nconns, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("elvis-dataplane: poll: %s", strerror(errno));
                        break;
                }
                if (pfd[0].revents) {
#ifdef ELVIS_DP_PROBE
                        /* test builds: SIGUSR1 tries what the sandbox forbids (tests/lib/dp_probe.c) */
                        struct signalfd_siginfo si;
                        if (read(sfd, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGUSR1) {
                                elvis_dp_probe();
                                continue;
                        }
#endif
                        break;
                }
                for (int i = nconns - 1; i >= 0; i--) {
                        if (!pfd[2 + i].revents)
                                continue;
                        if (elvis_dpp_server_handle(srv, conns[i]) < 0) {
                                elvis_dpp_server_forget(srv, conns[i]);
                                close(conns[i]);
                                conns[i] = conns[--nconns];
                        }
                }
                if (elvis_dpp_server_stopping(srv)) {
                        why = "a STOP from the manager";
                        break;
                }
                if (pfd[1].revents & POLLIN) {
                        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
                        /* a manager that stops reading must not stall this loop for long */
                        struct timeval tv = { .tv_sec = 2 };
                        if (cfd >= 0) {
                                setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                                conns[nconns++] = cfd;
                        }
                }
        }
        log_info("elvis-dataplane %d: stopping on %s; its devices and sidecores go with it", (int)getpid(), why);
        for (int i = 0; i < nconns; i++)
                close(conns[i]);
        close(lfd);
        if (!activated)
                unlink(sock_path);
        elvis_user_dataplane.close(dp);
        elvis_dpp_server_free(srv);
        close(lock_fd);
        close(sfd);
        return 0;
}
