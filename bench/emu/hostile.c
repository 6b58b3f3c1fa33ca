/* Hostile front end: each kind writes one malformed ring or control message and
 * reports how the back end answered: error eventfd, NACK, closed connection, and
 * whether it still answers afterwards. */
#include "emu.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define DESC_F_NEXT 1
#define DESC_F_WRITE 2
#define DESC_F_INDIRECT 4

enum { GET_FEATURES = 1, SET_MEM_TABLE = 5, SET_VRING_NUM = 8, SET_VRING_ADDR = 9, SET_VRING_CALL = 13 };

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

int emu_hostile(struct emu *e, const struct emu_opts *o, const char *kind, unsigned settle_ms)
{
        struct emu_vq *tx, *rx;
        bool err = false, closed = false, alive;
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
        } else if (!strcmp(kind, "half-message")) {
                uint32_t h = GET_FEATURES;
                if (write(e->sock, &h, 2) != 2)
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
        if (expect_err) {
                kick(tx);
                err = err_signalled(tx, (int)settle_ms);
        }
        alive = !closed && strcmp(kind, "half-message") && answers(e);
        if (!alive && strcmp(kind, "half-message"))
                closed = true;
        printf("{\"kind\": \"%s\", \"err_signalled\": %s, \"nack\": %s, \"closed\": %s, \"still_answers\": %s}\n", kind,
               err ? "true" : "false", na == 1 ? "true" : na == 0 ? "false" : "null", closed ? "true" : "false",
               alive ? "true" : "false");
        emu_close(e);
        /* what a careful back end does: error eventfd for ring faults, NACK for bad settings,
         * close for unparseable framing */
        if (expect_err)
                return err ? 0 : 1;
        if (na != -2)
                return na == 1 ? 0 : 1;
        return 0;
}
