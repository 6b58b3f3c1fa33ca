/* elvis-dataplane's capabilities and seccomp allow-list. The list is what the vhost-user
 * plane does after start-up: unix sockets (the protocol, vhost-user, NSS for the VMM's
 * group), guest memory maps, eventfds, epoll, the tap queues it was given, its own
 * threads and signals, files under its run directory, and disk images through io_uring
 * (vhost-user-blk: the ring's three calls, and the size ioctls of a block device). No other socket family, no
 * new process or program, no tap creation, no signals to other processes. */
#include "sandbox.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif

#define BIT64(c) (1ull << (c))

uint64_t elvis_dp_kept_caps(void)
{
        return BIT64(CAP_CHOWN) | BIT64(CAP_DAC_OVERRIDE) | BIT64(CAP_FOWNER);
}

int elvis_dp_drop_caps(void)
{
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2];
        uint64_t keep = elvis_dp_kept_caps();

        /* the bounding set needs CAP_SETPCAP to shrink: a non-root data plane has nothing
         * to bound, so EPERM there is not an error; the loop ends at the kernel's last cap */
        for (int c = 0; prctl(PR_CAPBSET_READ, c) >= 0; c++)
                if (!(keep & BIT64(c)) && prctl(PR_CAPBSET_DROP, c) < 0 && errno != EPERM)
                        return -errno;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        if (syscall(SYS_capget, &h, d) < 0)
                return -errno;
        for (int i = 0; i < 2; i++) {
                uint32_t k = (uint32_t)(keep >> (32 * i));
                d[i].effective &= k;
                d[i].permitted &= k;
                d[i].inheritable &= k;
        }
        if (syscall(SYS_capset, &h, d) < 0)
                return -errno;
        return 0;
}

/* Allowed whatever their arguments. */
static const char *const always[] = {
        /* files and fds */
        "read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close", "fcntl", "dup", "dup3",
        "fstat", "newfstatat", "statx", "stat", "lstat", "open", "openat", "readlink", "readlinkat", "unlink",
        "unlinkat", "rename", "renameat", "renameat2", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown",
        "fchownat", "umask", "flock", "fsync", "fdatasync", "getdents64", "access", "faccessat", "faccessat2",
        /* memory: guest memory, thread stacks, malloc */
        "mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
        /* vhost-user-blk's inflight regions (GET_INFLIGHT_FD): a sealed memfd of a set size */
        "memfd_create", "ftruncate",
        /* threads, their signals and scheduling */
        "futex", "set_robust_list", "get_robust_list", "rseq", "set_tid_address", "exit", "exit_group", "gettid",
        "getpid", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigtimedwait", "sigaltstack",
        "sched_yield", "sched_setaffinity", "sched_getaffinity", "getcpu", "nanosleep", "clock_nanosleep",
        "clock_gettime", "clock_getres", "gettimeofday", "time", "getrandom", "restart_syscall", "getrusage",
        "getuid", "geteuid", "getgid", "getegid", "getgroups", "uname", "sysinfo",
        /* events */
        "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "eventfd2", "poll", "ppoll",
        "signalfd4",
        /* vhost-user-blk's file back end: every read, write, flush and discard is an
         * io_uring operation, so no pread/fallocate of its own */
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        /* unix sockets (socket() itself only for AF_UNIX, below) */
        "accept", "accept4", "bind", "listen", "connect", "getsockopt", "setsockopt", "sendmsg", "recvmsg",
        "sendto", "recvfrom", "shutdown", "getsockname", "getpeername",
#ifdef SANITIZED
        /* the sanitizers' runtimes: LeakSanitizer stops the world from a ptrace'ing clone
         * (CLONE_VM, below) and reads /proc/self/maps */
        "ptrace", "wait4", "prctl", "getppid", "pipe2", "sched_getparam", "getrlimit", "prlimit64", "getdents",
#endif
};

static int allow(scmp_filter_ctx ctx, const char *name, unsigned n, const struct scmp_arg_cmp *cmp)
{
        int nr = seccomp_syscall_resolve_name(name);

        /* a name this architecture does not have (stat on arm64, say) needs no rule */
        if (nr == __NR_SCMP_ERROR)
                return 0;
        return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
}

int elvis_dp_seccomp(void)
{
        static const unsigned long ioctls[] = { TUNSETVNETHDRSZ, TUNSETOFFLOAD, TUNGETIFF, TUNGETVNETHDRSZ,
                                                FIONBIO, FIONREAD, BLKGETSIZE64, BLKSSZGET };
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
        struct scmp_arg_cmp cmp;
        int r = 0;

        if (!ctx)
                return -ENOMEM;
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        for (size_t i = 0; r == 0 && i < sizeof(always) / sizeof(always[0]); i++)
                r = allow(ctx, always[i], 0, NULL);
        /* sockets: unix only (no network listener, no netlink) */
        cmp = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
        if (r == 0)
                r = allow(ctx, "socket", 1, &cmp);
        /* new threads, never new processes (glibc falls back from clone3, whose flags a
         * filter cannot see, to clone) */
        cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
        if (r == 0)
                r = allow(ctx, "clone", 1, &cmp);
#ifdef SANITIZED
        cmp = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_VM, CLONE_VM);
        if (r == 0)
                r = allow(ctx, "clone", 1, &cmp);
#endif
        if (r == 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        /* signals to its own threads only (the watchdog's, pthread_kill, raise) */
        cmp = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid());
        if (r == 0)
                r = allow(ctx, "tgkill", 1, &cmp);
        /* the tap queues it was given: their header and offloads, never TUNSETIFF; a block
         * device image's size */
        for (size_t i = 0; r == 0 && i < sizeof(ioctls) / sizeof(ioctls[0]); i++) {
                cmp = SCMP_A1(SCMP_CMP_EQ, ioctls[i]);
                r = allow(ctx, "ioctl", 1, &cmp);
        }
#ifndef SANITIZED
        /* thread names */
        for (int o = PR_SET_NAME; r == 0 && o <= PR_GET_NAME; o++) {
                cmp = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)o);
                r = allow(ctx, "prctl", 1, &cmp);
        }
#endif
        if (r == 0)
                r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}
