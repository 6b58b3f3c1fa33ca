/* Fault containment: what keeps one VMM's file descriptors and guest memory from hurting
 * the other VMs on a sidecore, the vhost-user control thread or the daemon.
 *
 * File descriptors. A VMM hands us eventfds for kicks, calls and errors, and memory files.
 * Each is checked for its kind before use (an eventfd by its anon-inode name, guest memory
 * by F_GET_SEALS, which only shmem and hugetlbfs files answer: RAM-backed, never FUSE or
 * NFS, whose page faults a VMM could stall forever). Our eventfds are made O_NONBLOCK. That
 * flag lives on the open file the VMM shares with us, so a hostile VMM may clear it again
 * and then fill the counter, and our write() would sleep. Every system call on a VMM's fd
 * therefore goes through dp_vmm_signal()/dp_vmm_drain(), which stamp the calling thread's
 * watch; a watchdog thread interrupts (UNSTICK_SIGNAL, a handler without SA_RESTART, so the
 * call returns EINTR) any such call that has slept for a watchdog period, and the caller
 * stops that VMM's queue. A signal that is merely not deliverable now (EAGAIN: counter
 * full) is counted and retried by the caller, never waited for.
 *
 * Guest memory. A VMM may shrink its memory file after SET_MEM_TABLE; touching the lost
 * pages raises SIGBUS. Threads that touch guest memory arm a per-thread guard around each
 * turn (dp_guard_tls: a sigjmp_buf and the device being served). The SIGBUS handler,
 * installed with SA_NODEFER so that jumping out leaves SIGBUS unblocked, checks that the
 * faulting address lies in that device's mappings and siglongjmp()s back to the guard,
 * which stops that queue pair only (error eventfd, counter, rate-limited log). The cost of
 * an armed guard is one sigsetjmp without a signal mask (a register save, no system call)
 * per turn, so it is taken for every region, sealed (F_SEAL_SHRINK) or not. A SIGBUS
 * anywhere else is a bug and takes the default action (or the previous handler's). */
#include "dp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define UNSTICK_SIGNAL (SIGRTMIN + 2)
#define WATCHDOG_PERIOD_MS 50           /* ELVIS_DP_WATCHDOG_MS overrides it (tests) */

__thread struct dp_guard dp_guard_tls;
static __thread struct dp_watch *watch_tls;

static struct sigaction old_sigbus;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned installed;

static bool in_range(const struct dp_region_map *m, const void *addr)
{
        return m->addr && (const char *)addr >= (const char *)m->addr && (const char *)addr < (const char *)m->addr + m->len;
}

/* guest memory, the dirty log or the inflight region (files the VMM may shrink just the same) */
static bool in_device_memory(const struct dp_device *dev, const void *addr)
{
        if (dev && (in_range(&dev->log_map, addr) || in_range(&dev->inflight_map, addr)))
                return true;
        for (unsigned i = 0; dev && i < ELVIS_MEM_MAX_REGIONS; i++) {
                if (in_range(&dev->maps[i], addr))
                        return true;
        }
        return false;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
        struct dp_guard *g = &dp_guard_tls;

        if (g->armed && in_device_memory(g->dev, si->si_addr)) {
                g->armed = 0;
                g->addr = si->si_addr;
                siglongjmp(g->jb, 1);
        }
        /* not guest memory: whoever handled SIGBUS before us, or the default action (the
         * faulting access runs again and the process dumps core) */
        if ((old_sigbus.sa_flags & SA_SIGINFO) && old_sigbus.sa_sigaction) {
                old_sigbus.sa_sigaction(sig, si, uc);
                return;
        }
        if (old_sigbus.sa_handler != SIG_DFL && old_sigbus.sa_handler != SIG_IGN && old_sigbus.sa_handler) {
                old_sigbus.sa_handler(sig);
                return;
        }
        signal(SIGBUS, SIG_DFL);
}

static void on_unstick(int sig, siginfo_t *si, void *uc)
{
        struct dp_watch *w = watch_tls;

        (void)sig;
        (void)si;
        (void)uc;
        if (w && atomic_load_explicit(&w->since, memory_order_relaxed))
                atomic_store_explicit(&w->interrupted, true, memory_order_relaxed);
}

static int install_handlers(void)
{
        struct sigaction sa = { 0 };
        int r = 0;

        pthread_mutex_lock(&install_lock);
        if (installed++ == 0) {
                sa.sa_sigaction = on_sigbus;
                sa.sa_flags = SA_SIGINFO | SA_NODEFER;
                sigemptyset(&sa.sa_mask);
                if (sigaction(SIGBUS, &sa, &old_sigbus) < 0)
                        r = -errno;
                sa.sa_sigaction = on_unstick;
                sa.sa_flags = SA_SIGINFO;       /* no SA_RESTART: the stuck call returns EINTR */
                if (r == 0 && sigaction(UNSTICK_SIGNAL, &sa, NULL) < 0)
                        r = -errno;
                if (r < 0)
                        installed = 0;
        }
        pthread_mutex_unlock(&install_lock);
        return r;
}

static void uninstall_handlers(void)
{
        pthread_mutex_lock(&install_lock);
        if (installed && --installed == 0) {
                sigaction(SIGBUS, &old_sigbus, NULL);
                signal(UNSTICK_SIGNAL, SIG_IGN);
        }
        pthread_mutex_unlock(&install_lock);
}

void dp_watch_enter(struct dp_user *dp, struct dp_watch *w, const char *what)
{
        sigset_t set;

        sigemptyset(&set);
        sigaddset(&set, UNSTICK_SIGNAL);
        sigaddset(&set, SIGBUS);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        w->thread = pthread_self();
        w->what = what;
        atomic_store(&w->since, 0);
        atomic_store(&w->interrupted, false);
        watch_tls = w;
        dp_mutex_lock(&dp->watch_lock);
        w->next = dp->watches;
        dp->watches = w;
        dp_mutex_unlock(&dp->watch_lock);
}

void dp_watch_leave(struct dp_user *dp, struct dp_watch *w)
{
        dp_mutex_lock(&dp->watch_lock);
        for (struct dp_watch **pp = &dp->watches; *pp; pp = &(*pp)->next)
                if (*pp == w) {
                        *pp = w->next;
                        break;
                }
        dp_mutex_unlock(&dp->watch_lock);
        watch_tls = NULL;
}

static void watch_begin(void)
{
        if (watch_tls) {
                atomic_store_explicit(&watch_tls->interrupted, false, memory_order_relaxed);
                atomic_store_explicit(&watch_tls->since, dp_now_ns(), memory_order_release);
        }
}

/* 0, or -ETIMEDOUT when the watchdog had to interrupt the call */
static int watch_end(void)
{
        if (!watch_tls)
                return 0;
        atomic_store_explicit(&watch_tls->since, 0, memory_order_release);
        return atomic_load_explicit(&watch_tls->interrupted, memory_order_relaxed) ? -ETIMEDOUT : 0;
}

int dp_vmm_signal(int fd)
{
        uint64_t one = 1;
        ssize_t w;
        int err, stuck;

        watch_begin();
        w = write(fd, &one, sizeof(one));
        err = errno;
        stuck = watch_end();
        if (w == sizeof(one))
                return 0;
        if (w < 0 && err == EINTR && stuck)
                return -ETIMEDOUT;
        if (w < 0 && (err == EAGAIN || err == EINTR))
                return -EAGAIN;
        return w < 0 ? -err : -EIO;
}

int dp_vmm_drain(int fd, uint64_t *ret)
{
        uint64_t v = 0;
        ssize_t n;
        int err, stuck;

        watch_begin();
        n = read(fd, &v, sizeof(v));
        err = errno;
        stuck = watch_end();
        if (n == sizeof(v)) {
                *ret = v;
                return 0;
        }
        *ret = 0;
        if (n < 0 && err == EINTR && stuck)
                return -ETIMEDOUT;
        if (n < 0 && (err == EAGAIN || err == EINTR))
                return 0;
        return n < 0 ? -err : -EIO;
}

static void *watchdog_main(void *arg)
{
        struct dp_user *dp = arg;
        struct dp_watch self = { 0 };

        dp_watch_enter(dp, &self, "watchdog");  /* only to take UNSTICK_SIGNAL harmlessly */
        while (!atomic_load(&dp->watchdog_stop)) {
                uint64_t now, period = dp->watchdog_ms * 1000000ull;
                /* naps of at most 50 ms: stopping never waits a whole (long) period */
                struct timespec ts = { 0, (long)(period < 50000000ull ? period : 50000000ull) };

                nanosleep(&ts, NULL);
                now = dp_now_ns();
                dp_mutex_lock(&dp->watch_lock);
                for (struct dp_watch *w = dp->watches; w; w = w->next) {
                        uint64_t since = atomic_load_explicit(&w->since, memory_order_acquire);
                        if (w == &self || !since || now - since < period)
                                continue;
                        atomic_fetch_add(&dp->unstuck, 1);
                        if (now - dp->unstick_logged_ns > 1000000000ull || !dp->unstick_logged_ns) {
                                dp->unstick_logged_ns = now;
                                log_warning("%s: a VMM's file descriptor blocked a system call for %llu ms; interrupting it",
                                            w->what, (unsigned long long)((now - since) / 1000000u));
                        }
                        pthread_kill(w->thread, UNSTICK_SIGNAL);
                }
                dp_mutex_unlock(&dp->watch_lock);
        }
        dp_watch_leave(dp, &self);
        return NULL;
}

int dp_contain_start(struct dp_user *dp)
{
        int r = install_handlers();

        if (r < 0)
                return r;
        dp_mutex_init(&dp->watch_lock);
        dp->watchdog_ms = WATCHDOG_PERIOD_MS;
        {
                const char *e = getenv("ELVIS_DP_WATCHDOG_MS");
                long v = e ? strtol(e, NULL, 10) : 0;
                if (v >= 10 && v <= 60000)
                        dp->watchdog_ms = (unsigned)v;
        }
        r = -pthread_create(&dp->watchdog, NULL, watchdog_main, dp);
        if (r < 0) {
                uninstall_handlers();
                return r;
        }
        pthread_setname_np(dp->watchdog, "elvis-watchdog");
        return 0;
}

void dp_contain_stop(struct dp_user *dp)
{
        atomic_store(&dp->watchdog_stop, true);
        pthread_join(dp->watchdog, NULL);
        dp_mutex_destroy(&dp->watch_lock);
        uninstall_handlers();
}

/* ---- what a VMM's file descriptors may be ---- */

int dp_vmm_eventfd_take(int fd, const char **why)
{
        char link[64], target[64];
        ssize_t n;
        int fl;

        /* procfs answers without asking the file's owner anything */
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        if (n < 0) {
                *why = "cannot inspect the file descriptor";
                return -EBADF;
        }
        target[n] = '\0';
        if (strcmp(target, "anon_inode:[eventfd]") != 0) {
                *why = "not an eventfd (kick, call and error descriptors must be eventfds)";
                return -EINVAL;
        }
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)) {
                *why = "cannot make the eventfd non-blocking";
                return -EBADF;
        }
        return 0;
}

int dp_vmm_memfd_check(int fd, struct stat *st, const char **why)
{
        /* F_GET_SEALS works on shmem (memfd, tmpfs, /dev/shm) and hugetlbfs files only; asking
         * it never reaches a file system's owner, while fstat() on a FUSE file would */
        if (fcntl(fd, F_GET_SEALS) < 0) {
                *why = "guest memory must be a memfd, tmpfs or hugetlbfs file";
                return -EINVAL;
        }
        if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
                *why = "guest memory is not a regular file";
                return -EINVAL;
        }
        return 0;
}

int dp_vmm_socket_check(int fd, const char **why)
{
        struct stat st;

        if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)) {
                *why = "not a socket";
                return -EINVAL;
        }
        return 0;
}

void dp_vmm_fd_close(int fd)
{
        struct linger off = { 0, 0 };

        if (fd < 0)
                return;
        /* if this was a socket with SO_LINGER and ours the last reference, close() would wait */
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &off, sizeof(off));
        close(fd);
}
