/* Hostile front end: each kind writes one malformed ring or control message and
 * reports how the back end answered: error eventfd, NACK, closed connection, and
 * whether it still answers afterwards. */
#include "emu.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4

enum {
        GET_FEATURES = 1, SET_MEM_TABLE = 5, SET_LOG_BASE = 6, SET_VRING_NUM = 8, SET_VRING_ADDR = 9, SET_VRING_KICK = 12,
        SET_VRING_CALL = 13, SET_VRING_ERR = 14, SET_BACKEND_REQ_FD = 21,
};

static bool err_signalled(struct emu_vq *vq, int ms)
{
        struct pollfd p = { .fd = vq->err_fd, .events = POLLIN };
        uint64_t v;

        return poll(&p, 1, ms) > 0 && eventfd_read(vq->err_fd, &v) == 0 && v;
}

/* The back end still answers on this connection. */
static bool answers(struct emu *e)
{
        uint64_t f;
        uint32_t req, size;

        return emu_send(e, GET_FEATURES, 0, NULL, 0, NULL, 0) == 0 && emu_recv(e, &req, &f, 8, &size) == 0 &&
               req == GET_FEATURES;
}

/* A setting sent with NEED_REPLY: 1 NACK, 0 ACK, -1 no answer or closed. */
static int nack(struct emu *e, uint32_t request, const void *payload, uint32_t size, const int *fds, unsigned nfds)
{
        uint64_t status;
        uint32_t req, len;

        if (emu_send(e, request, 0x8, payload, size, fds, nfds) < 0)
                return -1;
        if (emu_recv(e, &req, &status, 8, &len) < 0)
                return -1;
        return status != 0;
}

static void kick(struct emu_vq *vq)
{
        eventfd_write(vq->kick_fd, 1);
}

static void offer(struct emu_vq *vq, uint16_t head)
{
        uint16_t *avail = vq->avail;

        avail[2 + (vq->avail_idx & (vq->num - 1))] = head;
        vq->avail_idx++;
        __atomic_store_n(&avail[1], vq->avail_idx, __ATOMIC_RELEASE);
}

static uint64_t gpa(struct emu *e, uint64_t off)
{
        (void)e;
        return EMU_GPA_BASE + off;
}

/* A pipe whose buffer is full and whose write end blocks: what a VMM could pass as its
 * call or error "eventfd" to make a careless back end sleep in write(). */
static int full_blocking_pipe(int p[2])
{
        char junk[4096] = { 0 };

        if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0)
                return -1;
        while (write(p[1], junk, sizeof(junk)) > 0)
                ;
        fcntl(p[1], F_SETFL, 0);
        return 0;
}

/* A kick "eventfd" that polls readable and then blocks in read(8): a unix stream socket
 * holding fewer bytes than its SO_RCVLOWAT. */
static int lowat_socket(int sv[2])
{
        int lowat = 64;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -1;
        setsockopt(sv[0], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat));
        return write(sv[1], "12345678", 8) == 8 ? 0 : -1;
}

/* Every vring fd slot with fds of the wrong kind, each sent with NEED_REPLY: 1 when all
 * were refused. */
/* Four fds of kinds a back end must refuse where it wants another: a pipe, a socket,
 * third (whatever is wrong for the message at hand) and a character device. */
struct wrong_fds {
        int pfd[2], sv[2], kinds[4];
};

static int wrong_fds_open(struct wrong_fds *w, int third)
{
        if (pipe2(w->pfd, O_CLOEXEC) < 0)
                return -1;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->sv) < 0) {
                close(w->pfd[0]);
                close(w->pfd[1]);
                return -1;
        }
        w->kinds[0] = w->pfd[0];
        w->kinds[1] = w->sv[0];
        w->kinds[2] = third;
        w->kinds[3] = open("/dev/null", O_RDWR | O_CLOEXEC);
        return 0;
}

static void wrong_fds_close(struct wrong_fds *w)
{
        close(w->pfd[0]);
        close(w->pfd[1]);
        close(w->sv[0]);
        close(w->sv[1]);
        close(w->kinds[3]);
}

static int wrong_kinds(struct emu *e)
{
        struct wrong_fds w;
        int *pfd = w.pfd, *kinds = w.kinds, ok = 1;
        uint64_t file = 1;      /* the TX ring */

        if (wrong_fds_open(&w, e->memfd) < 0)
                return -1;
        for (unsigned r = 0; r < 3; r++) {
                uint32_t req = r == 0 ? SET_VRING_KICK : r == 1 ? SET_VRING_CALL : SET_VRING_ERR;
                for (unsigned k = 0; k < 4; k++)
                        if (nack(e, req, &file, 8, &kinds[k], 1) != 1)
                                ok = 0;
        }
        /* guest memory that is not a memory file, and a back-end channel that is no socket */
        {
                struct {
                        uint32_t n, pad;
                        uint64_t gpa, size, uaddr, offset;
                } t = { 1, 0, EMU_GPA_BASE, 4096, (uintptr_t)e->mem, 0 };
                int ev = e->qp[0].tx.kick_fd;
                if (nack(e, SET_MEM_TABLE, &t, sizeof(t), &pfd[0], 1) != 1 ||
                    nack(e, SET_MEM_TABLE, &t, sizeof(t), &ev, 1) != 1 ||
                    nack(e, SET_BACKEND_REQ_FD, NULL, 0, &ev, 1) != 1)
                        ok = 0;
        }
        wrong_fds_close(&w);
        return ok;
}

struct log_msg {
        uint64_t size, offset;
};

/* SET_LOG_BASE with fds of every wrong kind, and without one: 1 when all were refused. */
static int log_wrong_kinds(struct emu *e)
{
        struct log_msg lm = { 4096, 0 };
        struct wrong_fds w;
        int ok = 1;

        if (wrong_fds_open(&w, e->qp[0].tx.kick_fd) < 0)
                return -1;
        for (unsigned k = 0; k < 4; k++)
                if (nack(e, SET_LOG_BASE, &lm, sizeof(lm), &w.kinds[k], 1) != 1)
                        ok = 0;
        if (nack(e, SET_LOG_BASE, &lm, sizeof(lm), NULL, 0) != 1)
                ok = 0;
        wrong_fds_close(&w);
        return ok;
}

/* Log sizes and offsets that wrap, are empty, huge, or lie beyond the file: 1 when all
 * were refused. */
static int log_bad_ranges(struct emu *e)
{
        const struct log_msg bad[] = {
                { 8192, 0xfffffffffffff000ull },        /* offset + size wraps */
                { 0xffffffffffffffffull, 4096 },        /* likewise, through the size */
                { 0, 0 },
                { 1ull << 31, 0 },                      /* above the 1 GiB bound */
                { 8192, 0 },                            /* larger than the 4 KiB file */
                { 4096, 4096 },                         /* starts at its end */
        };
        int fd = memfd_create("hostile-log", MFD_CLOEXEC), ok = 1;

        if (fd < 0 || ftruncate(fd, 4096) < 0)
                return -1;
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                if (nack(e, SET_LOG_BASE, &bad[i], sizeof(bad[i]), &fd, 1) != 1)
                        ok = 0;
        close(fd);
        return ok;
}

/* A one-byte log (guest pages 0 to 7) and the TX used ring, far above, logged into it
 * (VRING_F_LOG only: with LOG_ALL the looped-back frame's receive buffer would fail
 * first, on the other ring): 1 when the log was accepted, else 0. *ret_log is the log's
 * mapping (4 KiB). */
static int log_too_small(struct emu *e, struct emu_vq *tx, uint8_t **ret_log)
{
        struct log_msg lm = { 1, 0 };
        struct {
                uint32_t index, flags;
                uint64_t desc, used, avail, log;
        } a = { 1, 1, (uintptr_t)e->mem + tx->desc_off, (uintptr_t)e->mem + tx->used_off,
                (uintptr_t)e->mem + tx->avail_off, gpa(e, tx->used_off) };
        int fd = memfd_create("hostile-log", MFD_CLOEXEC), ok;

        if (fd < 0 || ftruncate(fd, 4096) < 0)
                return 0;
        *ret_log = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
        ok = *ret_log != MAP_FAILED && nack(e, SET_LOG_BASE, &lm, sizeof(lm), &fd, 1) == 0 &&
             nack(e, SET_VRING_ADDR, &a, sizeof(a), NULL, 0) == 0;
        if (*ret_log == MAP_FAILED)
                *ret_log = NULL;
        close(fd);
        return ok;
}

/* 1 if the TX ring consumed nothing within ms (a refused fd leaves the ring stopped). */
static int tx_stays_stopped(struct emu *e, struct emu_vq *tx, unsigned ms)
{
        uint16_t used0 = __atomic_load_n(&tx->used[1], __ATOMIC_ACQUIRE);

        emu_tx(e, 0, 1, 64);
        kick(tx);
        usleep(ms * 1000u);
        return __atomic_load_n(&tx->used[1], __ATOMIC_ACQUIRE) == used0;
}

int emu_hostile(struct emu *e, const struct emu_opts *o, const char *kind, unsigned settle_ms)
{
        struct emu_vq *tx, *rx;
        bool err = false, closed = false, alive, log_clean = true;
        uint8_t *log = NULL;
        int na = -2, expect_err = 1;

        if (emu_open(e, o) < 0) {
                printf("{\"kind\": \"%s\", \"error\": \"%s\"}\n", kind, e->error);
                emu_close(e);
                return 1;
        }
        tx = &e->qp[0].tx;
        rx = &e->qp[0].rx;
        struct emu_desc *d = tx->desc;
        uint8_t *table = e->mem + tx->buf_off;          /* scratch space for indirect tables */
        uint64_t buf = gpa(e, tx->buf_off + 4096);

        if (!strcmp(kind, "desc-loop")) {
                d[0] = (struct emu_desc){ buf, 64, DESC_F_NEXT, 1 };
                d[1] = (struct emu_desc){ buf, 64, DESC_F_NEXT, 0 };
                offer(tx, 0);
        } else if (!strcmp(kind, "chain-too-long")) {
                for (unsigned i = 0; i < tx->num; i++)
                        d[i] = (struct emu_desc){ buf, 1, DESC_F_NEXT, (uint16_t)((i + 1) % tx->num) };
                offer(tx, 0);
        } else if (!strcmp(kind, "indirect-oob")) {
                d[0] = (struct emu_desc){ gpa(e, e->mem_size + 4096), 64, DESC_F_INDIRECT, 0 };
                offer(tx, 0);
        } else if (!strcmp(kind, "indirect-nested")) {
                struct emu_desc *t = (struct emu_desc *)table;
                t[0] = (struct emu_desc){ gpa(e, tx->buf_off), 16, DESC_F_INDIRECT, 0 };
                d[0] = (struct emu_desc){ gpa(e, tx->buf_off), 16, DESC_F_INDIRECT, 0 };
                offer(tx, 0);
        } else if (!strcmp(kind, "indirect-bad-len")) {
                d[0] = (struct emu_desc){ gpa(e, tx->buf_off), 17, DESC_F_INDIRECT, 0 };
                offer(tx, 0);
        } else if (!strcmp(kind, "desc-oob")) {
                d[0] = (struct emu_desc){ gpa(e, e->mem_size - 16), 4096, 0, 0 };
                offer(tx, 0);
        } else if (!strcmp(kind, "len-overflow")) {
                d[0] = (struct emu_desc){ 0xfffffffffffff000ull, 0x2000, 0, 0 };
                offer(tx, 0);
        } else if (!strcmp(kind, "avail-idx-jump")) {
                tx->avail_idx = (uint16_t)(tx->avail_idx + tx->num + 7);
                __atomic_store_n(&tx->avail[1], tx->avail_idx, __ATOMIC_RELEASE);
        } else if (!strcmp(kind, "head-oob")) {
                offer(tx, (uint16_t)(tx->num + 3));
        } else if (!strcmp(kind, "rx-readonly")) {
                /* every receive buffer loses its WRITE flag; then a packet must be received */
                for (unsigned i = 0; i < rx->num; i++)
                        rx->desc[i].flags &= (uint16_t)~DESC_F_WRITE;
                emu_tx(e, 0, 1, 64);
                kick(rx);
                tx = rx;        /* the error belongs to the receive queue */
        } else if (!strcmp(kind, "ring-oob")) {
                struct {
                        uint32_t index, flags;
                        uint64_t desc, used, avail, log;
                } a = { 1, 0, (uintptr_t)e->mem + e->mem_size + 4096, (uintptr_t)e->mem + tx->used_off,
                        (uintptr_t)e->mem + tx->avail_off, 0 };
                emu_send(e, SET_VRING_ADDR, 0, &a, sizeof(a), NULL, 0);
        } else if (!strcmp(kind, "mem-bigger-than-fd") || !strcmp(kind, "mem-offset-past-eof")) {
                struct {
                        uint32_t n, pad;
                        uint64_t gpa, size, uaddr, offset;
                } t = { 1, 0, EMU_GPA_BASE, e->mem_size, (uintptr_t)e->mem, 0 };
                if (kind[4] == 'b')
                        t.size = e->mem_size * 2;
                else
                        t.offset = e->mem_size + 4096;
                na = nack(e, SET_MEM_TABLE, &t, sizeof(t), &e->memfd, 1);
                expect_err = 0;
        } else if (!strcmp(kind, "bad-num")) {
                uint32_t nums[] = { 0, 3, 65536 };
                na = 1;
                for (unsigned i = 0; i < 3; i++) {
                        uint32_t s[2] = { 1, nums[i] };
                        if (nack(e, SET_VRING_NUM, s, 8, NULL, 0) != 1)
                                na = 0;
                }
                expect_err = 0;
        } else if (!strcmp(kind, "unknown-request")) {
                na = nack(e, 9999, "junk", 4, NULL, 0);
                expect_err = 0;
        } else if (!strcmp(kind, "oversized-payload")) {
                uint32_t h[3] = { GET_FEATURES, 1, 1u << 30 };
                if (write(e->sock, h, sizeof(h)) != sizeof(h))
                        closed = true;
                expect_err = 0;
        } else if (!strcmp(kind, "fd-flood")) {
                int fds[40];
                uint64_t file = 0;
                for (unsigned i = 0; i < 40; i++)
                        fds[i] = tx->call_fd;
                emu_send(e, SET_VRING_CALL, 0, &file, 8, fds, 40);
                expect_err = 0;
        } else if (!strcmp(kind, "call-pipe") || !strcmp(kind, "err-pipe")) {
                int p[2];
                uint64_t file = 1;
                if (full_blocking_pipe(p) < 0) {
                        printf("{\"kind\": \"%s\", \"error\": \"pipe\"}\n", kind);
                        emu_close(e);
                        return 2;
                }
                na = nack(e, kind[0] == 'c' ? SET_VRING_CALL : SET_VRING_ERR, &file, 8, &p[1], 1);
                if (na == 1 && !tx_stays_stopped(e, tx, settle_ms / 4))
                        na = 0;
                close(p[0]);
                close(p[1]);
                expect_err = 0;
        } else if (!strcmp(kind, "kick-lowat")) {
                int sv[2];
                uint64_t file = 1;
                if (lowat_socket(sv) < 0) {
                        printf("{\"kind\": \"%s\", \"error\": \"socketpair\"}\n", kind);
                        emu_close(e);
                        return 2;
                }
                na = nack(e, SET_VRING_KICK, &file, 8, &sv[0], 1);
                if (na == 1 && !tx_stays_stopped(e, tx, settle_ms / 4))
                        na = 0;
                close(sv[0]);
                close(sv[1]);
                expect_err = 0;
        } else if (!strcmp(kind, "log-wrong-fd-kinds")) {
                na = log_wrong_kinds(e);
                expect_err = 0;
        } else if (!strcmp(kind, "log-overflow")) {
                na = log_bad_ranges(e);
                expect_err = 0;
        } else if (!strcmp(kind, "log-too-small")) {
                /* the used ring's writes fall outside the log: that ring stops with an
                 * error, and nothing is written into the log (nor past it) */
                if (!log_too_small(e, tx, &log)) {
                        na = 0;
                        expect_err = 0;
                } else {
                        emu_tx(e, 0, 1, 64);
                }
        } else if (!strcmp(kind, "wrong-fd-kinds")) {
                na = wrong_kinds(e);
                expect_err = 0;
        } else if (!strcmp(kind, "call-made-blocking")) {
                /* the VMM clears O_NONBLOCK on its (shared) call eventfd and fills the
                 * counter: the next interrupt would sleep; the back end must stop this ring */
                uint64_t full = 0xfffffffffffffffeull, v;
                emu_irq(e, tx, true);
                /* fill while still non-blocking (the back end may add to it meanwhile), then
                 * clear O_NONBLOCK on the file both sides share */
                for (unsigned tries = 0; tries < 1000; tries++) {
                        if (read(tx->call_fd, &v, 8) < 0 && errno != EAGAIN)
                                break;
                        if (write(tx->call_fd, &full, 8) == 8)
                                break;
                }
                fcntl(tx->call_fd, F_SETFL, 0);
                for (unsigned i = 0; i < 8; i++)
                        emu_tx(e, 0, 4, 64);
        } else if (!strcmp(kind, "truncate-memory")) {
                /* guest memory shrinks under the rings: the TX buffers vanish, the rings stay */
                off_t keep = (off_t)tx->buf_off;
                d[0] = (struct emu_desc){ gpa(e, tx->buf_off + 8192), 64, 0, 0 };
                if (ftruncate(e->memfd, keep) < 0)
                        closed = true;
                offer(tx, 0);
                kick(tx);
                err = err_signalled(tx, (int)settle_ms);
                /* and grows back: the back end must not have kept anything stale */
                if (ftruncate(e->memfd, (off_t)e->mem_size) < 0)
                        closed = true;
                expect_err = 2;
        } else if (!strcmp(kind, "half-message") || !strcmp(kind, "header-only")) {
                /* half a header, or a whole header announcing a payload that never comes */
                uint32_t h[3] = { GET_FEATURES, 1, 8 };
                size_t len = kind[0] == 'h' && kind[1] == 'a' ? 2 : sizeof(h);
                if (write(e->sock, h, len) != (ssize_t)len)
                        closed = true;
                /* hold the connection, stalled, for the settle time: the caller checks that
                 * everyone else is still served meanwhile */
                usleep(settle_ms * 1000u);
                expect_err = 0;
        } else {
                printf("{\"kind\": \"%s\", \"error\": \"unknown kind\"}\n", kind);
                emu_close(e);
                return 2;
        }
        if (expect_err == 1) {
                kick(tx);
                err = err_signalled(tx, (int)settle_ms);
        }
        if (log) {
                for (unsigned i = 0; i < 4096; i++)
                        if (log[i])
                                log_clean = false;
                munmap(log, 4096);
        }
        {
                bool stalls = !strcmp(kind, "half-message") || !strcmp(kind, "header-only");
                alive = !closed && !stalls && answers(e);
                if (!alive && !stalls)
                        closed = true;
        }
        printf("{\"kind\": \"%s\", \"err_signalled\": %s, \"nack\": %s, \"closed\": %s, \"still_answers\": %s, "
               "\"log_untouched\": %s}\n",
               kind, err ? "true" : "false", na == 1 ? "true" : na == 0 ? "false" : "null", closed ? "true" : "false",
               alive ? "true" : "false", log_clean ? "true" : "false");
        if (o->linger_ms) {
                /* the verdict is out; the broken rings stay as they are for whoever inspects them */
                fflush(stdout);
                usleep(o->linger_ms * 1000u);
        }
        emu_close(e);
        /* what a careful back end does: error eventfd for ring faults, NACK for bad settings,
         * close for unparseable framing */
        if (!log_clean)
                return 1;
        if (expect_err)
                return err ? 0 : 1;
        if (na != -2)
                return na == 1 ? 0 : 1;
        return 0;
}
