/* The data-plane protocol (dataplane/proto.c, proto_server.c, remote_dp.c): the codec
 * against malformed, truncated, oversized and fd-carrying datagrams (each gets one error
 * reply, nothing crashes, no fd stays open), random datagrams, the client and server
 * end to end over the fake data plane, observation that changes nothing, paged
 * counters, and adoption by a second client. */
#include <criterion/criterion.h>

#include "../../dataplane/proto.h"
#include "../../dataplane/proto_server.h"
#include "../../dataplane/remote_dp.h"
#include "../../dataplane/tap.h"
#include "../fakes/fake_dataplane.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct elvis_dataplane_ops *fake = &elvis_fake_dataplane;
static void *fdp;
static struct elvis_dpp_server *srv;
static int sv[2] = { -1, -1 };
static char logpath[64];
static _Alignas(8) unsigned char buf[ELVIS_DPP_MSG_MAX * 2];

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        while ((e = readdir(d)))
                n++;
        closedir(d);
        return n;
}

static void setup(void)
{
        struct elvis_dp_config cfg = { .run_dir = "/nonexistent" };
        int fd;

        snprintf(logpath, sizeof(logpath), "/tmp/test_dpproto.XXXXXX");
        fd = mkstemp(logpath);
        cr_assert_geq(fd, 0);
        close(fd);
        setenv("ELVIS_FAKE_LOG", logpath, 1);
        cr_assert_eq(fake->open(&cfg, &fdp), 0);
        cr_assert_eq(elvis_dpp_server_new(fake, fdp, &srv), 0);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void teardown(void)
{
        if (sv[0] >= 0)
                close(sv[0]);
        if (sv[1] >= 0)
                close(sv[1]);
        sv[0] = sv[1] = -1;
        elvis_dpp_server_free(srv);
        fake->close(fdp);
        unlink(logpath);
        unsetenv("ELVIS_FAKE_LOG");
}

TestSuite(dpproto, .init = setup, .fini = teardown, .timeout = 60);

/* Sends raw bytes with nfds fds, lets the server handle them, returns the reply. */
static const struct elvis_dpp_result *raw_fds(const void *msg, size_t len, const int *fds, unsigned nfds,
                                              struct elvis_dpp_hdr *ret_hdr)
{
        ssize_t n;

        cr_assert_eq(elvis_dpp_send(sv[0], msg, len, fds, nfds), 0);
        cr_assert_eq(elvis_dpp_server_handle(srv, sv[1]), 0, "the server keeps the connection");
        n = recv(sv[0], buf, sizeof(buf), 0);
        cr_assert_geq(n, (ssize_t)(sizeof(struct elvis_dpp_hdr) + sizeof(struct elvis_dpp_result)), "a reply");
        memcpy(ret_hdr, buf, sizeof(*ret_hdr));
        cr_assert_eq(ret_hdr->magic, ELVIS_DPP_MAGIC);
        cr_assert_eq(ret_hdr->length, (size_t)n - sizeof(*ret_hdr));
        return (const void *)(buf + sizeof(*ret_hdr));
}

/* The same with one fd when fd >= 0. */
static const struct elvis_dpp_result *raw(const void *msg, size_t len, int fd, struct elvis_dpp_hdr *ret_hdr)
{
        return raw_fds(msg, len, &fd, fd >= 0 ? 1 : 0, ret_hdr);
}

static int request(uint16_t type, uint32_t id, const void *payload, size_t len)
{
        _Alignas(8) unsigned char m[ELVIS_DPP_MSG_MAX];
        struct elvis_dpp_hdr h;
        size_t n = elvis_dpp_encode(m, type, id, payload, len);
        const struct elvis_dpp_result *res = raw(m, n, -1, &h);

        cr_assert_eq(h.id, id);
        cr_assert_eq(h.type, type | ELVIS_DPP_REPLY);
        return res->error;
}

static struct elvis_dpp_device device(uint32_t vm, const char *id, unsigned queues)
{
        struct elvis_dpp_device d = { .vm_id = vm, .backend = ELVIS_BACKEND_LOOPBACK, .queues = queues,
                                      .weight = 100, .exitless = ELVIS_EXITLESS_ALWAYS, .vmm_uid = -1, .vmm_gid = -1 };

        snprintf(d.vm_name, sizeof(d.vm_name), "vm%u", vm);
        snprintf(d.device_id, sizeof(d.device_id), "%s", id);
        snprintf(d.socket_path, sizeof(d.socket_path), "/run/x/vm%u-%s.sock", vm, id);
        return d;
}

static char *fake_log(void)
{
        FILE *f = fopen(logpath, "re");
        char *s = calloc(1, 65536);
        size_t n = f ? fread(s, 1, 65535, f) : 0;

        if (f)
                fclose(f);
        s[n] = '\0';
        return s;
}

Test(dpproto, well_formed_requests_reach_the_data_plane)
{
        struct elvis_dpp_sidecore sc = { .id = 1, .cpu = 0 };
        struct elvis_dpp_device d = device(7, "net0", 2);
        struct elvis_dpp_queue_ref q = { .vm_id = 7, .queue = 1, .sidecore = 1 };
        char *log;

        snprintf(q.device_id, sizeof(q.device_id), "net0");
        cr_assert_eq(request(ELVIS_DPP_SIDECORE_CREATE, 1, &sc, sizeof(sc)), 0);
        cr_assert_eq(request(ELVIS_DPP_SIDECORE_CREATE, 2, &sc, sizeof(sc)), -EEXIST);
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 3, &d, sizeof(d)), 0);
        cr_assert_eq(request(ELVIS_DPP_QUEUE_ASSIGN, 4, &q, sizeof(q)), 0);
        cr_assert_eq(request(ELVIS_DPP_SIDECORE_DESTROY, 5, &sc, sizeof(sc)), -EBUSY, "queues on it");
        q.vm_id = 8;
        cr_assert_eq(request(ELVIS_DPP_QUEUE_ASSIGN, 6, &q, sizeof(q)), -ENOENT);
        log = fake_log();
        cr_assert(strstr(log, "sidecore_create 1 0"), "%s", log);
        cr_assert(strstr(log, "device_attach 7 net0 queues=2"), "%s", log);
        cr_assert(strstr(log, "queue_assign 7 net0 1 1"), "%s", log);
        free(log);
}

/* Every malformed datagram: one error reply with the reason, no operation, and the
 * connection still serves. */
Test(dpproto, malformed_requests_get_an_error_reply)
{
        _Alignas(8) unsigned char m[ELVIS_DPP_MSG_MAX + 512];
        struct elvis_dpp_device d = device(1, "net0", 1);
        struct elvis_dpp_hello hello = { .version = ELVIS_DPP_VERSION };
        struct elvis_dpp_hdr h, *mh = (void *)m;
        const struct elvis_dpp_result *res;
        size_t n;
        char *log;

        /* truncated header */
        res = raw("DVLE", 4, -1, &h);
        cr_assert_eq(res->error, -EBADMSG);
        cr_assert(strstr(res->reason, "truncated"), "%s", res->reason);
        /* bad magic */
        n = elvis_dpp_encode(m, ELVIS_DPP_HELLO, 9, &hello, sizeof(hello));
        mh->magic = 0x12345678;
        cr_assert_eq(raw(m, n, -1, &h)->error, -EBADMSG);
        cr_assert_eq(h.id, 9, "the error reply names the request");
        /* another version */
        n = elvis_dpp_encode(m, ELVIS_DPP_HELLO, 10, &hello, sizeof(hello));
        mh->version = ELVIS_DPP_VERSION + 1;
        res = raw(m, n, -1, &h);
        cr_assert_eq(res->error, -EPROTO);
        cr_assert(strstr(res->reason, "version"), "%s", res->reason);
        /* unknown types, and a reply sent as a request */
        n = elvis_dpp_encode(m, 999, 11, NULL, 0);
        cr_assert_eq(raw(m, n, -1, &h)->error, -EOPNOTSUPP);
        n = elvis_dpp_encode(m, ELVIS_DPP_HELLO | ELVIS_DPP_REPLY, 12, &hello, sizeof(hello));
        cr_assert_eq(raw(m, n, -1, &h)->error, -EOPNOTSUPP);
        /* header length disagrees with the datagram; payload of the wrong size */
        n = elvis_dpp_encode(m, ELVIS_DPP_DEVICE_ATTACH, 13, &d, sizeof(d));
        mh->length += 4;
        cr_assert_eq(raw(m, n, -1, &h)->error, -EBADMSG);
        n = elvis_dpp_encode(m, ELVIS_DPP_DEVICE_ATTACH, 14, &d, sizeof(d) - 8);
        cr_assert_eq(raw(m, n, -1, &h)->error, -EBADMSG);
        /* strings without their NUL, empty ids, enums and ranges */
        memset(d.device_id, 'x', sizeof(d.device_id));
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 15, &d, sizeof(d)), -EBADMSG);
        d = device(1, "", 1);
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 16, &d, sizeof(d)), -EBADMSG);
        d = device(1, "net0", 1);
        memset(d.socket_path, 'p', sizeof(d.socket_path));
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 17, &d, sizeof(d)), -EBADMSG);
        d = device(1, "net0", 1);
        d.backend = __ELVIS_BACKEND_MAX;
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 18, &d, sizeof(d)), -EINVAL);
        d = device(1, "net0", ELVIS_MAX_QUEUES + 1);
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 19, &d, sizeof(d)), -EINVAL);
        d = device(1, "net0", 1);
        d.weight = 0;
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 20, &d, sizeof(d)), -EINVAL);
        d = device(1, "net0", 1);
        d.flags = 0x80;
        cr_assert_eq(request(ELVIS_DPP_DEVICE_ATTACH, 21, &d, sizeof(d)), -EINVAL);
        struct elvis_dpp_queue_ref q = { .vm_id = 1, .queue = ELVIS_MAX_QUEUES, .device_id = "net0" };
        cr_assert_eq(request(ELVIS_DPP_QUEUE_ASSIGN, 22, &q, sizeof(q)), -EINVAL);
        struct elvis_dpp_sidecore sc = { .id = 0, .cpu = 0 };
        cr_assert_eq(request(ELVIS_DPP_SIDECORE_CREATE, 23, &sc, sizeof(sc)), -EINVAL);
        /* oversized: consumed, answered, the next one served */
        memset(m, 0, sizeof(m));
        n = elvis_dpp_encode(m, ELVIS_DPP_HEALTH, 24, NULL, 0);
        mh->length = sizeof(m) - sizeof(*mh);
        res = raw(m, sizeof(m), -1, &h);
        cr_assert_eq(res->error, -EMSGSIZE);
        cr_assert_eq(h.id, 24);
        cr_assert_eq(request(ELVIS_DPP_HELLO, 25, &hello, sizeof(hello)), 0, "still serving");
        log = fake_log();
        cr_assert(!strstr(log, "device_attach") && !strstr(log, "sidecore_create") && !strstr(log, "queue_assign"),
                  "a refused request reached the data plane: %s", log);
        free(log);
}

/* Only a tap's DEVICE_ATTACH carries fds: one that comes along with anything else is
 * closed, the request refused. */
/* HELLO and STOP mean the same in every version: a manager of another version learns
 * who answers (with -EPROTO) and can stop it; anything else of another version is
 * refused and changes nothing. */
Test(dpproto, hello_and_stop_are_understood_in_every_version)
{
        _Alignas(8) unsigned char m[ELVIS_DPP_MSG_MAX];
        struct elvis_dpp_hello hello = { .version = 1 }, got;
        struct elvis_dpp_sidecore c = { .id = 1, .cpu = -1 };
        struct elvis_dpp_hdr h, *mh = (void *)m;
        const struct elvis_dpp_result *res;
        size_t n;
        char *log;

        n = elvis_dpp_encode(m, ELVIS_DPP_HELLO, 1, &hello, sizeof(hello));
        mh->version = 1;
        res = raw(m, n, -1, &h);
        cr_assert_eq(res->error, -EPROTO);
        cr_assert_eq(h.version, ELVIS_DPP_VERSION, "the reply is in the data plane's version");
        cr_assert_eq(h.length, sizeof(*res) + sizeof(got), "and carries its hello");
        memcpy(&got, res + 1, sizeof(got));
        cr_assert_eq(got.version, ELVIS_DPP_VERSION);
        cr_assert_eq(got.pid, (uint32_t)getpid());
        n = elvis_dpp_encode(m, ELVIS_DPP_SIDECORE_CREATE, 2, &c, sizeof(c));
        mh->version = ELVIS_DPP_VERSION + 7;
        cr_assert_eq(raw(m, n, -1, &h)->error, -EPROTO);
        cr_assert_not(elvis_dpp_server_stopping(srv));
        n = elvis_dpp_encode(m, ELVIS_DPP_STOP, 3, NULL, 0);
        mh->version = ELVIS_DPP_VERSION + 7;
        res = raw(m, n, -1, &h);
        cr_assert_eq(res->error, 0, "%s", res->reason);
        cr_assert_eq(h.type, ELVIS_DPP_STOP | ELVIS_DPP_REPLY);
        cr_assert(elvis_dpp_server_stopping(srv));
        log = fake_log();
        cr_assert_null(strstr(log, "sidecore_create"), "the other version's request reached nothing:\n%s", log);
        free(log);
}

Test(dpproto, unexpected_fds_are_refused_and_closed)
{
        _Alignas(8) unsigned char m[ELVIS_DPP_MSG_MAX];
        struct elvis_dpp_device d = device(1, "net0", 1);
        struct elvis_dpp_hdr h;
        size_t n = elvis_dpp_encode(m, ELVIS_DPP_DEVICE_ATTACH, 5, &d, sizeof(d));
        int p[2], before;
        char c;

        signal(SIGPIPE, SIG_IGN);
        cr_assert_eq(pipe(p), 0);
        before = count_fds();
        cr_assert_eq(raw(m, n, p[0], &h)->error, -EBADF);
        cr_assert_eq(h.id, 5);
        cr_assert_eq(count_fds(), before, "the passed fd was closed");
        close(p[0]);
        /* the server's copy is gone: the pipe's only reader is closed now */
        cr_assert_eq(write(p[1], "x", 1), -1);
        cr_assert_eq(errno, EPIPE);
        (void)c;
        close(p[1]);
        char *log = fake_log();
        cr_assert(!strstr(log, "device_attach"), "%s", log);
        free(log);
}

/* A tap device of a given name for these tests: unique per process. */
static const char *tap_name(char *name, size_t len, const char *tag)
{
        snprintf(name, len, "edpp%s%d", tag, (int)getpid() % 100000);
        return name;
}

static struct elvis_dpp_device tap_device(uint32_t vm, const char *tap, unsigned queues)
{
        struct elvis_dpp_device d = device(vm, "net0", queues);

        d.backend = ELVIS_BACKEND_TAP;
        snprintf(d.tap, sizeof(d.tap), "%s", tap);
        return d;
}

/* Opens a tap as the manager does; skips the test where that takes privileges we lack. */
static void open_tap_or_skip(const char *name, unsigned queues, int *fds)
{
        int r = elvis_tap_open(name, queues, false, fds);

        if (r == -EPERM || r == -EACCES || r == -ENOENT)
                cr_skip_test("cannot create tap %s here (%s): needs CAP_NET_ADMIN and /dev/net/tun", name,
                             strerror(-r));
        cr_assert_eq(r, 0, "tap %s: %s", name, strerror(-r));
}

/* Version 2: a tap's DEVICE_ATTACH carries one fd per queue pair, each a queue of the
 * interface it names; anything else is refused with the reason, and never reaches the
 * data plane. Every fd received is closed. */
Test(dpproto, tap_attach_takes_its_queues_as_fds_and_nothing_else)
{
        _Alignas(8) unsigned char m[ELVIS_DPP_MSG_MAX];
        char name[IFNAMSIZ], other[IFNAMSIZ];
        struct elvis_dpp_device d = tap_device(1, tap_name(name, sizeof(name), "a"), 1);
        const struct elvis_dpp_result *res;
        struct elvis_dpp_hdr h;
        int p[2], tun, fds[2], ofds[1], many[ELVIS_DPP_FDS_MAX + 1], before;
        size_t n;
        char *log;

        signal(SIGPIPE, SIG_IGN);
        open_tap_or_skip(name, 1, fds);
        open_tap_or_skip(tap_name(other, sizeof(other), "b"), 1, ofds);
        cr_assert_eq(pipe(p), 0);
        tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        cr_assert_geq(tun, 0);
        before = count_fds();
        n = elvis_dpp_encode(m, ELVIS_DPP_DEVICE_ATTACH, 40, &d, sizeof(d));
        /* no fd; too many for the queues */
        res = raw_fds(m, n, NULL, 0, &h);
        cr_assert_eq(res->error, -EBADF);
        cr_assert(strstr(res->reason, "file descriptor"), "%s", res->reason);
        res = raw_fds(m, n, (int[]){ fds[0], fds[0] }, 2, &h);
        cr_assert_eq(res->error, -EBADF);
        /* a pipe, an unattached /dev/net/tun, another interface's queue */
        res = raw(m, n, p[0], &h);
        cr_assert_eq(res->error, -EINVAL);
        cr_assert(strstr(res->reason, "not a tap"), "%s", res->reason);
        res = raw(m, n, tun, &h);
        cr_assert_eq(res->error, -EINVAL);
        cr_assert(strstr(res->reason, "not attached"), "%s", res->reason);
        res = raw(m, n, ofds[0], &h);
        cr_assert_eq(res->error, -EINVAL);
        cr_assert(strstr(res->reason, "another interface"), "%s", res->reason);
        /* a one-queue tap for a two-queue device */
        d = tap_device(1, name, 2);
        n = elvis_dpp_encode(m, ELVIS_DPP_DEVICE_ATTACH, 41, &d, sizeof(d));
        res = raw_fds(m, n, (int[]){ fds[0], fds[0] }, 2, &h);
        cr_assert_eq(res->error, -EINVAL);
        cr_assert(strstr(res->reason, "single-queue"), "%s", res->reason);
        /* more fds than any datagram may carry */
        for (unsigned i = 0; i < ELVIS_DPP_FDS_MAX + 1; i++)
                many[i] = fds[0];
        cr_assert_eq(elvis_dpp_send(sv[0], m, n, many, ELVIS_DPP_FDS_MAX + 1), -EINVAL, "the sender refuses");
        log = fake_log();
        cr_assert_not(strstr(log, "device_attach"), "a refused attach reached the data plane: %s", log);
        free(log);
        cr_assert_eq(count_fds(), before, "every fd passed was closed");
        /* the tap's own queue: attached, and the data plane saw it */
        d = tap_device(1, name, 1);
        n = elvis_dpp_encode(m, ELVIS_DPP_DEVICE_ATTACH, 42, &d, sizeof(d));
        res = raw(m, n, fds[0], &h);
        cr_assert_eq(res->error, 0, "%s", res->reason);
        cr_assert_eq(count_fds(), before);
        log = fake_log();
        cr_assert(strstr(log, "backend=tap") && strstr(log, "tap_fds=passed"), "%s", log);
        free(log);
        close(p[0]);
        close(p[1]);
        close(tun);
        close(fds[0]);
        close(ofds[0]);
}

/* Random bytes, and valid headers over random payloads, some with fds: each gets
 * exactly one reply to its id, nothing crashes (ASan) and nothing leaks (LSan, fd
 * count). */
Test(dpproto, random_datagrams)
{
        _Alignas(8) unsigned char m[1024];
        unsigned seed = 12345;
        int p[2], before;

        signal(SIGPIPE, SIG_IGN);
        cr_assert_eq(pipe(p), 0);
        before = count_fds();
        for (unsigned i = 0; i < 3000; i++) {
                struct elvis_dpp_hdr h, *mh = (void *)m;
                size_t len = 1 + rand_r(&seed) % sizeof(m);
                for (size_t k = 0; k < len; k++)
                        m[k] = (unsigned char)rand_r(&seed);
                if (i % 2 && len >= sizeof(*mh)) {
                        static const uint16_t types[] = { 1, 2, 3, 4, 5, 6, 32, 33, 34, 35, 36, 37, 38, 39 };
                        mh->magic = ELVIS_DPP_MAGIC;
                        mh->version = ELVIS_DPP_VERSION;
                        mh->type = types[rand_r(&seed) % 14];
                        if (i % 4 == 1)
                                len = sizeof(*mh) + elvis_dpp_request_size(mh->type);
                        mh->length = (uint32_t)(len - sizeof(*mh));
                        mh->id = i;
                }
                /* every eighth comes with fds that are no tap's queues */
                raw_fds(m, len, p, i % 8 == 3 ? 1 + i % 2 : 0, &h);
                if (i % 2 && len >= sizeof(*mh))
                        cr_assert_eq(h.id, i);
        }
        cr_assert_eq(count_fds(), before, "every fd that came along was closed");
        close(p[0]);
        close(p[1]);
}

/* The client side over a server thread. */
static void *serve(void *arg)
{
        int fd = *(int *)arg;

        while (elvis_dpp_server_handle(srv, fd) == 0)
                ;
        elvis_dpp_server_forget(srv, fd);
        return NULL;
}

struct client {
        pthread_t thread;
        int server_fd;
        void *rdp;
};

static void client_open(struct client *c)
{
        struct elvis_dp_config cfg = { .run_dir = "/nonexistent" };
        int p[2];

        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p), 0);
        c->server_fd = p[1];
        cr_assert_eq(pthread_create(&c->thread, NULL, serve, &c->server_fd), 0);
        cr_assert_eq(elvis_remote_dp_open_fd(p[0], &cfg, &c->rdp), 0);
}

static void client_close(struct client *c)
{
        elvis_remote_dataplane.close(c->rdp);
        pthread_join(c->thread, NULL);
        close(c->server_fd);
}

static struct elvis_dp_device dp_device(uint32_t vm, const char *id, unsigned queues)
{
        return (struct elvis_dp_device){ .vm_id = vm, .vm_name = "v", .device_id = id,
                                         .backend = ELVIS_BACKEND_LOOPBACK, .queues = queues,
                                         .socket_path = "/run/x/s.sock", .weight = 100,
                                         .exitless = ELVIS_EXITLESS_ALWAYS, .vmm_uid = -1, .vmm_gid = -1 };
}

static int count_lines(const char *log, const char *needle)
{
        int n = 0;

        for (const char *p = log; (p = strstr(p, needle)); p++)
                n++;
        return n;
}

Test(dpproto, client_and_server_end_to_end)
{
        const struct elvis_dataplane_ops *ops = &elvis_remote_dataplane;
        struct elvis_dp_stats st;
        struct elvis_dp_params prm = { 64, 65536, 500, 200, 50 };
        struct client c;
        char detail[256], id[8];
        char *log;

        client_open(&c);
        cr_assert_eq(ops->sidecore_create(c.rdp, 1, 0), 0);
        cr_assert_eq(ops->sidecore_create(c.rdp, 2, 1), 0);
        /* more queues than one stats page holds */
        for (unsigned i = 0; i < 10; i++) {
                snprintf(id, sizeof(id), "n%u", i);
                struct elvis_dp_device d = dp_device(1, id, ELVIS_MAX_QUEUES);
                cr_assert_eq(ops->device_attach(c.rdp, &d), 0);
        }
        cr_assert_eq(ops->queue_assign(c.rdp, 1, "n3", 2, 2), 0);
        cr_assert_eq(ops->queue_assign(c.rdp, 1, "n3", 2, 9), -ENOENT, "the data plane's refusal comes back");
        cr_assert_eq(ops->device_set_policy(c.rdp, 1, "n3", 300, ELVIS_EXITLESS_NEVER), 0);
        cr_assert_eq(ops->set_params(c.rdp, &prm), 0);
        cr_assert_eq(ops->sidecore_destroy(c.rdp, 2), -EBUSY);
        cr_assert_eq(ops->health(c.rdp, detail, sizeof(detail)), 0);
        cr_assert(strstr(detail, "fake data plane"), "%s", detail);
        cr_assert_eq(ops->stats_read(c.rdp, &st), 0);
        cr_assert_eq(st.nsidecores, 2);
        cr_assert_eq(st.nqueues, 10 * ELVIS_MAX_QUEUES, "every page read (%u)", st.nqueues);
        cr_assert_gt(st.nqueues, ELVIS_DPP_PAGE_ITEMS(struct elvis_dpp_queue_stats));
        elvis_dp_stats_fini(&st);
        log = fake_log();
        cr_assert(strstr(log, "device_set_policy 1 n3 weight=300 exitless=never"), "%s", log);
        cr_assert(strstr(log, "set_params budget_packets=64 budget_bytes=65536 poll_start_rate=500 "
                             "poll_stop_idle_ms=200 vanilla_busyloop_us=50"), "every parameter crossed: %s", log);
        free(log);
        client_close(&c);
}

/* The manager's side opens a tap device's queues itself (creating the interface) and
 * passes them; its own copies are closed afterwards, and an interface it did not create
 * is refused unless the device adopts it. */
Test(dpproto, the_client_opens_and_passes_tap_queues)
{
        const struct elvis_dataplane_ops *ops = &elvis_remote_dataplane;
        char name[IFNAMSIZ], *log;
        struct elvis_dp_device d = dp_device(1, "net0", 2), e = dp_device(1, "net1", 2);
        struct client c;
        int mine[2], before;

        open_tap_or_skip(tap_name(name, sizeof(name), "c"), 1, mine);
        close(mine[0]);
        client_open(&c);
        before = count_fds();
        d.backend = ELVIS_BACKEND_TAP;
        d.tap = name;
        cr_assert_eq(ops->device_attach(c.rdp, &d), 0);
        cr_assert_eq(count_fds(), before, "the manager keeps no tap fd");
        log = fake_log();
        cr_assert(strstr(log, "device_attach 1 net0 queues=2 backend=tap") && strstr(log, "tap_fds=passed"), "%s",
                  log);
        free(log);
        /* an interface somebody else made: refused before anything is sent, unless adopted */
        open_tap_or_skip(tap_name(name, sizeof(name), "d"), 2, mine);
        e.backend = ELVIS_BACKEND_TAP;
        e.tap = name;
        e.socket_path = "/run/x/e.sock";
        cr_assert_eq(ops->device_attach(c.rdp, &e), -EEXIST);
        log = fake_log();
        cr_assert_not(strstr(log, "device_attach 1 net1"), "%s", log);
        free(log);
        e.tap_adopt = true;
        cr_assert_eq(ops->device_attach(c.rdp, &e), 0);
        cr_assert_eq(count_fds(), before + 2, "only the test's own tap fds are open");
        elvis_tap_close(mine, 2);
        client_close(&c);
}

/* Observation (hello, health, lists, counters) never calls an operation that changes
 * the data plane. */
Test(dpproto, observation_changes_nothing)
{
        const struct elvis_dataplane_ops *ops = &elvis_remote_dataplane;
        struct elvis_dp_device d = dp_device(1, "net0", 2);
        struct elvis_dpp_page pg = { 0 };
        struct elvis_dpp_hello hello = { .version = ELVIS_DPP_VERSION };
        struct elvis_dp_stats st;
        char *before, *after;

        cr_assert_eq(fake->sidecore_create(fdp, 1, 0), 0);
        cr_assert_eq(fake->device_attach(fdp, &d), 0);
        before = fake_log();
        cr_assert_eq(request(ELVIS_DPP_HELLO, 1, &hello, sizeof(hello)), 0);
        cr_assert_eq(request(ELVIS_DPP_HEALTH, 2, NULL, 0), 0);
        for (uint16_t t = ELVIS_DPP_LIST_SIDECORES; t <= ELVIS_DPP_STATS_QUEUES; t++) {
                cr_assert(elvis_dpp_is_observation(t));
                cr_assert_eq(request(t, 10 + t, &pg, sizeof(pg)), 0);
        }
        cr_assert_not(elvis_dpp_is_observation(ELVIS_DPP_SIDECORE_CREATE));
        after = fake_log();
        cr_assert_str_eq(after, before, "an observation reached a state-changing operation");
        free(after);
        (void)ops;
        (void)st;
        free(before);
}

/* A second manager adopts what the first left: identical sidecores and devices are
 * claimed without a call, a changed weight is pushed, and the first sync removes what
 * its state does not have. */
Test(dpproto, a_new_client_adopts_and_sweeps)
{
        const struct elvis_dataplane_ops *ops = &elvis_remote_dataplane;
        struct elvis_dp_device a = dp_device(1, "net0", 2), b = dp_device(2, "net0", 1);
        struct client c1, c2;
        char *log;

        b.socket_path = "/run/x/t.sock";
        client_open(&c1);
        cr_assert_eq(ops->sidecore_create(c1.rdp, 1, 0), 0);
        cr_assert_eq(ops->sidecore_create(c1.rdp, 2, 1), 0);
        cr_assert_eq(ops->device_attach(c1.rdp, &a), 0);
        cr_assert_eq(ops->device_attach(c1.rdp, &b), 0);
        cr_assert_eq(ops->queue_assign(c1.rdp, 1, "net0", 0, 1), 0);
        cr_assert_eq(ops->queue_assign(c1.rdp, 1, "net0", 1, 1), 0);
        cr_assert_eq(ops->queue_assign(c1.rdp, 2, "net0", 0, 2), 0);
        client_close(&c1);              /* the manager goes; the data plane stays */

        client_open(&c2);
        a.weight = 500;
        cr_assert_eq(ops->sidecore_create(c2.rdp, 1, 0), 0);
        cr_assert_eq(ops->device_attach(c2.rdp, &a), 0);
        cr_assert_eq(ops->queue_assign(c2.rdp, 1, "net0", 0, 1), 0);
        cr_assert_eq(ops->sync(c2.rdp), 0);
        log = fake_log();
        cr_assert_eq(count_lines(log, "sidecore_create 1 0"), 1, "sidecore 1 adopted, not re-created:\n%s", log);
        cr_assert_eq(count_lines(log, "device_attach 1 net0"), 1, "device adopted, not re-attached:\n%s", log);
        cr_assert(strstr(log, "device_set_policy 1 net0 weight=500"), "%s", log);
        cr_assert(strstr(log, "queue_assign 1 net0 1 0"), "the queue the state does not place leaves:\n%s", log);
        cr_assert(strstr(log, "device_detach 2 net0"), "VM 2 is not in the state:\n%s", log);
        cr_assert(strstr(log, "sidecore_destroy 2"), "sidecore 2 is not in the state:\n%s", log);
        cr_assert_not(strstr(log, "device_detach 1 net0"), "%s", log);
        free(log);
        client_close(&c2);
}

/* A data plane that goes away: calls fail with ENOTCONN and health says it failed. */
Test(dpproto, a_lost_data_plane_is_reported)
{
        const struct elvis_dataplane_ops *ops = &elvis_remote_dataplane;
        struct elvis_dp_config cfg = { .run_dir = "/nonexistent" };
        char detail[256];
        void *rdp;
        int p[2];

        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p), 0);
        pthread_t t;
        cr_assert_eq(pthread_create(&t, NULL, serve, &p[1]), 0);
        cr_assert_eq(elvis_remote_dp_open_fd(p[0], &cfg, &rdp), 0);
        shutdown(p[1], SHUT_RDWR);
        pthread_join(t, NULL);
        cr_assert_eq(ops->sidecore_create(rdp, 1, 0), -ENOTCONN);
        cr_assert_lt(ops->health(rdp, detail, sizeof(detail)), 0);
        cr_assert(strstr(detail, "failed") && strstr(detail, "lost"), "%s", detail);
        ops->close(rdp);
        close(p[1]);
}

/* ---- blk devices (version 4) ---- */

static char image_path[64];

/* A scratch image file, open as the manager opens one. */
static int image_open(int flags)
{
        int fd;

        if (!image_path[0]) {
                snprintf(image_path, sizeof(image_path), "/tmp/test_dpproto_img.XXXXXX");
                fd = mkstemp(image_path);
                cr_assert_geq(fd, 0);
                cr_assert_eq(ftruncate(fd, 1 << 20), 0);
                close(fd);
        }
        fd = open(image_path, flags | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        return fd;
}

static void image_remove(void)
{
        if (image_path[0])
                unlink(image_path);
        image_path[0] = '\0';
}

static struct elvis_dpp_device blk_device(uint32_t vm, const char *id, int image_fd)
{
        struct elvis_dpp_device d = device(vm, id, 2);
        struct stat st;

        d.type = ELVIS_DEVICE_BLK;
        if (image_fd < 0) {
                d.backend = ELVIS_BACKEND_NULL;
                d.size_bytes = 1 << 20;
                return d;
        }
        d.backend = ELVIS_BACKEND_FILE;
        cr_assert_eq(fstat(image_fd, &st), 0);
        d.image_dev = st.st_dev;
        d.image_ino = st.st_ino;
        snprintf(d.path, sizeof(d.path), "%s", image_path);
        return d;
}

static int attach_raw(const struct elvis_dpp_device *d, uint32_t id, const int *fds, unsigned nfds,
                      char *reason, size_t len)
{
        _Alignas(8) unsigned char m[ELVIS_DPP_MSG_MAX];
        struct elvis_dpp_hdr h;
        size_t n = elvis_dpp_encode(m, ELVIS_DPP_DEVICE_ATTACH, id, d, sizeof(*d));
        const struct elvis_dpp_result *res = raw_fds(m, n, fds, nfds, &h);

        cr_assert_eq(h.id, id);
        if (reason)
                snprintf(reason, len, "%s", res->reason);
        return res->error;
}

/* The wire form of a blk device carries its type, backend, readonly, size and path, and
 * a queue's counters its type. */
Test(dpproto, blk_device_encode_decode)
{
        struct elvis_dp_device in = dp_device(3, "disk", 4), out;
        struct elvis_dp_queue_stats qs = { .vm_id = 3, .type = ELVIS_DEVICE_BLK, .queue = 2, .rx_bytes = 4096 }, qo;
        struct elvis_dpp_queue_stats wq;
        struct elvis_dpp_device w;

        in.type = ELVIS_DEVICE_BLK;
        in.backend = ELVIS_BACKEND_FILE;
        in.path = "/var/lib/elvis/images/a.img";
        in.readonly = true;
        elvis_dpp_device_from(&w, &in);
        cr_assert_eq(w.type, ELVIS_DEVICE_BLK);
        cr_assert(w.flags & ELVIS_DPP_DEV_READONLY);
        cr_assert_eq(elvis_dpp_device_nfds(&w), 1, "a file's image goes along");
        elvis_dpp_device_to(&out, &w);
        cr_assert_eq(out.type, ELVIS_DEVICE_BLK);
        cr_assert_eq(out.backend, ELVIS_BACKEND_FILE);
        cr_assert(out.readonly);
        cr_assert_str_eq(out.path, "/var/lib/elvis/images/a.img");
        cr_assert_null(out.image_fd, "the fd is the server's to set");
        cr_assert_eq(out.queues, 4);
        in.backend = ELVIS_BACKEND_NULL;
        in.path = NULL;
        in.readonly = false;
        in.size_bytes = 8ull << 30;
        elvis_dpp_device_from(&w, &in);
        cr_assert_eq(elvis_dpp_device_nfds(&w), 0);
        cr_assert_not(w.flags & ELVIS_DPP_DEV_READONLY);
        elvis_dpp_device_to(&out, &w);
        cr_assert_eq(out.size_bytes, 8ull << 30);
        cr_assert_null(out.path);
        snprintf(qs.device, sizeof(qs.device), "disk");
        elvis_dpp_queue_stats_from(&wq, &qs, 1);
        elvis_dpp_queue_stats_to(&qo, &wq);
        cr_assert_eq(qo.type, ELVIS_DEVICE_BLK);
        cr_assert_eq(qo.rx_bytes, 4096);
        wq.type = 99;
        elvis_dpp_queue_stats_to(&qo, &wq);
        cr_assert_eq(qo.type, ELVIS_DEVICE_NET, "an unknown type reads as net, not out of range");
}

/* A blk file's DEVICE_ATTACH carries exactly its image, which must be the file it names,
 * open as readonly says; a null disk carries nothing. Bad enums and combinations are
 * refused. Nothing refused reaches the data plane; every fd is closed. */
Test(dpproto, blk_attach_checks_its_image_and_fields)
{
        int rw = image_open(O_RDWR), ro = image_open(O_RDONLY), p[2], two[2], before;
        struct elvis_dpp_device d;
        char why[ELVIS_DPP_REASON_MAX], *log;

        cr_assert_eq(pipe(p), 0);
        before = count_fds();
        d = blk_device(1, "d0", rw);
        cr_assert_eq(attach_raw(&d, 1, NULL, 0, why, sizeof(why)), -EBADF, "no image");
        two[0] = rw;
        two[1] = rw;
        cr_assert_eq(attach_raw(&d, 2, two, 2, why, sizeof(why)), -EBADF, "two fds");
        cr_assert_eq(attach_raw(&d, 3, &p[0], 1, why, sizeof(why)), -EINVAL, "a pipe");
        cr_assert(strstr(why, "not a regular file"), "%s", why);
        cr_assert_eq(attach_raw(&d, 4, &ro, 1, why, sizeof(why)), -EINVAL, "read-only fd for a writable disk");
        cr_assert(strstr(why, "not open for reading and writing"), "%s", why);
        d.image_ino++;
        cr_assert_eq(attach_raw(&d, 5, &rw, 1, why, sizeof(why)), -EINVAL, "another file");
        cr_assert(strstr(why, "another file"), "%s", why);
        d = blk_device(1, "d0", rw);
        d.flags |= ELVIS_DPP_DEV_READONLY;
        cr_assert_eq(attach_raw(&d, 6, &rw, 1, why, sizeof(why)), -EINVAL, "writable fd for a read-only disk");
        /* fields */
        d = blk_device(1, "d0", rw);
        d.type = __ELVIS_DEVICE_TYPE_MAX;
        cr_assert_eq(attach_raw(&d, 7, &rw, 1, why, sizeof(why)), -EINVAL);
        d = blk_device(1, "d0", rw);
        d.backend = ELVIS_BACKEND_TAP;
        snprintf(d.tap, sizeof(d.tap), "tap0");
        cr_assert_eq(attach_raw(&d, 8, &rw, 1, why, sizeof(why)), -EINVAL, "blk over a tap");
        cr_assert(strstr(why, "cannot serve a blk"), "%s", why);
        d = blk_device(1, "d0", rw);
        d.path[0] = '\0';
        cr_assert_eq(attach_raw(&d, 9, &rw, 1, why, sizeof(why)), -EINVAL, "file without a path");
        d = blk_device(1, "d0", rw);
        memset(d.path, 'p', sizeof(d.path));
        cr_assert_eq(attach_raw(&d, 10, &rw, 1, why, sizeof(why)), -EBADMSG, "path not terminated");
        d = blk_device(1, "d0", -1);
        d.size_bytes = 1000;
        cr_assert_eq(attach_raw(&d, 11, NULL, 0, why, sizeof(why)), -EINVAL, "not whole sectors");
        d.size_bytes = 0;
        cr_assert_eq(attach_raw(&d, 12, NULL, 0, why, sizeof(why)), -EINVAL, "no size");
        d = blk_device(1, "d0", -1);
        cr_assert_eq(attach_raw(&d, 13, &rw, 1, why, sizeof(why)), -EBADF, "a null disk carries no fd");
        d = blk_device(1, "d0", -1);
        d.flags |= ELVIS_DPP_DEV_TAP_ADOPT;
        cr_assert_eq(attach_raw(&d, 14, NULL, 0, why, sizeof(why)), -EINVAL);
        d = device(1, "n0", 1);
        d.flags |= ELVIS_DPP_DEV_READONLY;
        cr_assert_eq(attach_raw(&d, 15, NULL, 0, why, sizeof(why)), -EINVAL, "a read-only net device");
        d = device(1, "n0", 1);
        d.size_bytes = 512;
        cr_assert_eq(attach_raw(&d, 16, NULL, 0, why, sizeof(why)), -EINVAL, "a net device with a size");
        log = fake_log();
        cr_assert_not(strstr(log, "device_attach"), "a refused request reached the data plane: %s", log);
        free(log);
        /* and the good ones */
        d = blk_device(1, "d0", rw);
        cr_assert_eq(attach_raw(&d, 20, &rw, 1, why, sizeof(why)), 0, "%s", why);
        d = blk_device(1, "d1", ro);
        d.flags |= ELVIS_DPP_DEV_READONLY;
        cr_assert_eq(attach_raw(&d, 21, &ro, 1, why, sizeof(why)), 0, "%s", why);
        d = blk_device(1, "d2", -1);
        cr_assert_eq(attach_raw(&d, 22, NULL, 0, why, sizeof(why)), 0, "%s", why);
        cr_assert_eq(count_fds(), before, "every fd that came along was closed");
        log = fake_log();
        cr_assert(strstr(log, "device_attach 1 d0 type=blk queues=2 backend=file") && strstr(log, "image_fd=rdwr"),
                  "%s", log);
        cr_assert(strstr(log, "device_attach 1 d1 type=blk") && strstr(log, "readonly=1") &&
                  strstr(log, "image_fd=rdonly"), "%s", log);
        cr_assert(strstr(log, "device_attach 1 d2 type=blk queues=2 backend=null") && strstr(log, "size=1048576") &&
                  strstr(log, "image_fd=none"), "%s", log);
        free(log);
        close(p[0]);
        close(p[1]);
        close(rw);
        close(ro);
        image_remove();
}

/* The manager's side passes the image it was given, keeps one duplicate while the
 * device exists (to give it again to a data plane that restarts), and lists blk devices
 * so that a restarted manager claims an identical one without attaching it again; a
 * device on another image is attached anew. */
Test(dpproto, blk_client_passes_the_image_and_adopts)
{
        const struct elvis_dataplane_ops *ops = &elvis_remote_dataplane;
        struct elvis_dp_device a = dp_device(1, "blk0", 2), n = dp_device(2, "blk0", 1);
        int img = image_open(O_RDWR), before, base;
        struct client c1, c2;
        char *log;

        a.type = n.type = ELVIS_DEVICE_BLK;
        a.backend = ELVIS_BACKEND_FILE;
        a.path = image_path;
        a.image_fd = NULL;
        n.backend = ELVIS_BACKEND_NULL;
        n.size_bytes = 1 << 30;
        n.socket_path = "/run/x/n.sock";
        base = count_fds();
        client_open(&c1);
        cr_assert_eq(ops->device_attach(c1.rdp, &a), -EBADF, "the manager side never opens an image by path");
        a.image_fd = &img;
        before = count_fds();
        cr_assert_eq(ops->device_attach(c1.rdp, &a), 0);
        cr_assert_eq(count_fds(), before + 1, "one duplicate kept for replays");
        cr_assert_eq(ops->device_attach(c1.rdp, &n), 0);
        client_close(&c1);
        cr_assert_eq(count_fds(), base, "closing the client closes it");

        client_open(&c2);
        cr_assert_eq(ops->device_attach(c2.rdp, &a), 0);
        n.size_bytes = 2ull << 30;      /* a null disk of another size is another device */
        cr_assert_eq(ops->device_attach(c2.rdp, &n), 0);
        cr_assert_eq(ops->sync(c2.rdp), 0);
        log = fake_log();
        cr_assert_eq(count_lines(log, "device_attach 1 blk0"), 1, "the blk device was adopted:\n%s", log);
        cr_assert_eq(count_lines(log, "device_attach 2 blk0"), 2, "the changed one attached again:\n%s", log);
        cr_assert(strstr(log, "device_detach 2 blk0"), "%s", log);
        free(log);
        before = count_fds();
        cr_assert_eq(ops->device_detach(c2.rdp, 1, "blk0"), 0);
        cr_assert_eq(count_fds(), before - 1, "the duplicate goes with the device");
        client_close(&c2);
        close(img);
        image_remove();
}
