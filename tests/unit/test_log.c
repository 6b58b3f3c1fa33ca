/* Unit tests of the logger: where messages go (journal, terminal, prefixed lines), the
 * journal fields of a message, and what lands on stderr. */
#include <criterion/criterion.h>

#include "../../daemon/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static char tmpdir[64];

static void setup(void)
{
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/elvis-log-XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                cr_log_warn("cannot remove %s", tmpdir);
}

TestSuite(log, .init = setup, .fini = teardown);

static int open_file(const char *name)
{
        char path[128];
        int fd;

        snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
        fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        return fd;
}

static void stream_of(int fd, char *buf, size_t size, long long ino_delta)
{
        struct stat st;

        cr_assert_eq(fstat(fd, &st), 0);
        snprintf(buf, size, "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino + ino_delta);
}

/* A unix socket standing in for journald's, in the test's directory. */
static const char *journal_socket(void)
{
        static struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%.60s/journal.sock", tmpdir);
        cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        return sa.sun_path;
}

Test(log, journal_only_when_journal_stream_names_this_fd)
{
        int fd = open_file("stderr"), other = open_file("other");
        const char *sock = journal_socket();
        char js[64], bad[96], missing[160];

        stream_of(fd, js, sizeof(js), 0);
        cr_assert_eq(elvis_log_target_for(fd, js, sock), ELVIS_LOG_JOURNAL);
        snprintf(missing, sizeof(missing), "%s/no-journal.sock", tmpdir);
        cr_assert_eq(elvis_log_target_for(fd, js, missing), ELVIS_LOG_PREFIXED, "journald's socket is missing");
        cr_assert_eq(elvis_log_target_for(fd, js, tmpdir), ELVIS_LOG_PREFIXED, "not a socket");
        stream_of(other, js, sizeof(js), 0);
        cr_assert_eq(elvis_log_target_for(fd, js, sock), ELVIS_LOG_PREFIXED, "another file's stream: %s", js);
        stream_of(fd, js, sizeof(js), 1);
        cr_assert_eq(elvis_log_target_for(fd, js, sock), ELVIS_LOG_PREFIXED, "another inode");
        cr_assert_eq(elvis_log_target_for(fd, NULL, sock), ELVIS_LOG_PREFIXED);
        cr_assert_eq(elvis_log_target_for(fd, "", sock), ELVIS_LOG_PREFIXED);
        stream_of(fd, js, sizeof(js), 0);
        snprintf(bad, sizeof(bad), "%sx", js);
        cr_assert_eq(elvis_log_target_for(fd, bad, sock), ELVIS_LOG_PREFIXED, "trailing garbage: %s", bad);
        cr_assert_eq(elvis_log_target_for(fd, strchr(js, ':') + 1, sock), ELVIS_LOG_PREFIXED, "no device");
        close(other);
        cr_assert_eq(elvis_log_target_for(other, js, sock), ELVIS_LOG_PREFIXED, "a closed fd");
        close(fd);
}

Test(log, terminal_gets_plain_lines)
{
        int master = posix_openpt(O_RDWR | O_NOCTTY), tty;
        const char *sock = journal_socket();
        char js[64];

        cr_assert_geq(master, 0);
        cr_assert_eq(grantpt(master), 0);
        cr_assert_eq(unlockpt(master), 0);
        tty = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
        cr_assert_geq(tty, 0);
        cr_assert_eq(elvis_log_target_for(tty, NULL, sock), ELVIS_LOG_PLAIN);
        stream_of(tty, js, sizeof(js), 0);
        cr_assert_eq(elvis_log_target_for(tty, js, sock), ELVIS_LOG_JOURNAL, "journald's stream wins");
        close(tty);
        close(master);
}

/* The fields as "KEY=value" strings, newline separated, for comparisons. */
static char *joined(const struct iovec *iov, size_t n)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        for (size_t i = 0; i < n; i++)
                fprintf(f, "%.*s\n", (int)iov[i].iov_len, (const char *)iov[i].iov_base);
        fclose(f);
        return out;
}

/* want with each "@" replaced by this program's name (SYSLOG_IDENTIFIER). */
static char *expected(const char *want)
{
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        for (const char *p = want; *p; p++)
                if (*p == '@')
                        fputs(program_invocation_short_name, f);
                else
                        fputc(*p, f);
        fclose(f);
        return out;
}

Test(log, journal_fields_of_a_device_message)
{
        char buf[1024];
        struct iovec iov[16];
        size_t n = elvis_log_journal_fields(LOG_WARNING, ELVIS_LOG_DEVICE(7, "web1", "net0"), "daemon/manager.c", 42,
                                            "reconcile", "data plane failed\nsecond line", buf, sizeof(buf), iov, 16);
        char *got = joined(iov, n), *want = expected("MESSAGE=data plane failed\nsecond line\n"
                                                     "PRIORITY=4\n"
                                                     "SYSLOG_IDENTIFIER=@\n"
                                                     "CODE_FILE=daemon/manager.c\n"
                                                     "CODE_LINE=42\n"
                                                     "CODE_FUNC=reconcile\n"
                                                     "ELVIS_VM_ID=7\n"
                                                     "ELVIS_VM=web1\n"
                                                     "ELVIS_DEVICE=net0\n");

        cr_assert_str_eq(got, want);
        free(got);
        free(want);
}

Test(log, journal_fields_of_sidecore_and_plain_messages)
{
        const struct {
                int level;
                const struct elvis_log_subject *subject;
                const char *file, *func, *message, *want;
        } cases[] = {
                { LOG_NOTICE, ELVIS_LOG_SIDECORE(3), "d.c", "f", "sidecore 3 added",
                  "MESSAGE=sidecore 3 added\nPRIORITY=5\nSYSLOG_IDENTIFIER=@\nCODE_FILE=d.c\nCODE_LINE=1\n"
                  "CODE_FUNC=f\nELVIS_SIDECORE=3\n" },
                /* the data plane's port: no location, no subject */
                { LOG_ERR, NULL, NULL, NULL, "ring error", "MESSAGE=ring error\nPRIORITY=3\nSYSLOG_IDENTIFIER=@\n" },
                /* a VM known by id only */
                { LOG_INFO, ELVIS_LOG_VM(2, NULL), NULL, NULL, "m",
                  "MESSAGE=m\nPRIORITY=6\nSYSLOG_IDENTIFIER=@\nELVIS_VM_ID=2\n" },
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char buf[1024], *got, *want;
                struct iovec iov[16];
                size_t n = elvis_log_journal_fields(cases[i].level, cases[i].subject, cases[i].file, 1, cases[i].func,
                                                    cases[i].message, buf, sizeof(buf), iov, 16);

                got = joined(iov, n);
                want = expected(cases[i].want);
                cr_assert_str_eq(got, want, "case %zu", i);
                free(got);
                free(want);
        }
}

Test(log, journal_message_is_cut_to_fit_never_dropped)
{
        char buf[32], msg[100];
        struct iovec iov[16];
        size_t n;

        memset(msg, 'x', sizeof(msg) - 1);
        msg[sizeof(msg) - 1] = '\0';
        n = elvis_log_journal_fields(LOG_INFO, ELVIS_LOG_VM(1, "a"), "f.c", 1, "f", msg, buf, sizeof(buf), iov, 16);
        cr_assert_eq(n, 1, "only the message fits");
        cr_assert_eq(iov[0].iov_len, sizeof(buf) - 1);
        cr_assert(strncmp(iov[0].iov_base, "MESSAGE=xxxx", 12) == 0);
        /* room for two fields only */
        n = elvis_log_journal_fields(LOG_INFO, NULL, NULL, 0, NULL, "hi", buf, sizeof(buf), iov, 2);
        cr_assert_eq(n, 2);
        cr_assert_eq(elvis_log_journal_fields(LOG_INFO, NULL, NULL, 0, NULL, "hi", buf, 4, iov, 16), 0);
}

/* Runs fn with stderr going to a file and returns what it wrote. */
static char *capture_stderr(void (*fn)(void))
{
        int fd = open_file("captured"), saved = dup(STDERR_FILENO);
        char *out = calloc(1, 4096);

        cr_assert_geq(saved, 0);
        fflush(stderr);
        dup2(fd, STDERR_FILENO);
        fn();
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        cr_assert_geq(pread(fd, out, 4095, 0), 0);
        close(fd);
        return out;
}

static void log_some(void)
{
        elvis_log_set_level(LOG_INFO);
        log_at(LOG_NOTICE, ELVIS_LOG_VM(1, "web1"), "VM %u '%s' added\nsecond line", 1, "web1");
        log_debug("dropped: above the level");
        errno = EAGAIN;
        log_warning("errno survives: %m");
        cr_assert_eq(errno, EAGAIN, "a log call keeps errno");
}

Test(log, prefixed_lines_for_pipes_and_files)
{
        char *out;

        elvis_log_set_target(ELVIS_LOG_PREFIXED);
        out = capture_stderr(log_some);
        cr_assert_str_eq(out, "<5>VM 1 'web1' added\n<5>second line\n<4>errno survives: Resource temporarily unavailable\n");
        free(out);
}

Test(log, plain_lines_on_a_terminal)
{
        char *out;

        elvis_log_set_target(ELVIS_LOG_PLAIN);
        out = capture_stderr(log_some);
        cr_assert_str_eq(out, "VM 1 'web1' added\nsecond line\nerrno survives: Resource temporarily unavailable\n");
        free(out);
}
