/* vhost-user front end and virtio-net driver of the guest emulator. */
#include "emu.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum {
        GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, SET_MEM_TABLE = 5, SET_VRING_NUM = 8, SET_VRING_ADDR = 9,
        SET_LOG_BASE = 6, SET_VRING_BASE = 10, GET_VRING_BASE = 11, SET_VRING_KICK = 12, SET_VRING_CALL = 13, SET_VRING_ERR = 14,
        GET_PROTOCOL_FEATURES = 15, SET_PROTOCOL_FEATURES = 16, GET_QUEUE_NUM = 17, SET_VRING_ENABLE = 18,
};

#define F_MRG_RXBUF 15
#define F_MQ 22
#define F_INDIRECT 28
#define F_EVENT_IDX 29
#define F_PROTOCOL 30
#define F_VERSION_1 32
#define F_LOG_ALL 26
#define PF_MQ 0
#define PF_LOG_SHMFD 1
#define PF_REPLY_ACK 3
#define NEED_REPLY 0x8
#define DESC_F_WRITE 2
#define USED_F_NO_NOTIFY 1
#define AVAIL_F_NO_INTERRUPT 1

uint64_t emu_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int fail(struct emu *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct emu *e, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(e->error, sizeof(e->error), fmt, ap);
        va_end(ap);
        return -1;
}

void emu_pin_cpu(int cpu)
{
        cpu_set_t set;

        if (cpu < 0)
                return;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        sched_setaffinity(0, sizeof(set), &set);
}

void emu_spin_ns(uint64_t ns)
{
        uint64_t end = emu_now_ns() + ns;
        while (ns && emu_now_ns() < end)
                ;
}

int emu_connect(struct emu *e)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(e->o.socket) >= sizeof(sa.sun_path))
                return fail(e, "socket path too long");
        e->sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        memcpy(sa.sun_path, e->o.socket, strlen(e->o.socket) + 1);
        if (e->sock < 0 || connect(e->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return fail(e, "cannot connect to %s: %s", e->o.socket, strerror(errno));
        return 0;
}

int emu_send(struct emu *e, uint32_t request, uint32_t flags, const void *payload, uint32_t size, const int *fds,
             unsigned nfds)
{
        uint8_t buf[12 + 4096];
        uint32_t f = flags | 0x1;
        char cbuf[CMSG_SPACE(sizeof(int) * 64)];
        struct iovec iov = { buf, 12 + size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

        if (size > 4096)
                return -EINVAL;
        memcpy(buf, &request, 4);
        memcpy(buf + 4, &f, 4);
        memcpy(buf + 8, &size, 4);
        if (size)
                memcpy(buf + 12, payload, size);
        if (nfds) {
                struct cmsghdr *cm;
                mh.msg_control = cbuf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
                memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
        }
        return sendmsg(e->sock, &mh, MSG_NOSIGNAL) == (ssize_t)(12 + size) ? 0 : -errno;
}

static int read_full(struct emu *e, void *buf, size_t len, int ms)
{
        size_t got = 0;

        while (got < len) {
                struct pollfd p = { .fd = e->sock, .events = POLLIN };
                ssize_t n;
                if (poll(&p, 1, ms) <= 0)
                        return -ETIMEDOUT;
                n = recv(e->sock, (char *)buf + got, len - got, 0);
                if (n <= 0)
                        return -EPIPE;
                got += (size_t)n;
        }
        return 0;
}

int emu_recv(struct emu *e, uint32_t *request, void *payload, uint32_t max, uint32_t *size)
{
        uint32_t hdr[3];
        int r = read_full(e, hdr, 12, e->o.timeout_ms);

        if (r < 0)
                return r;
        if (hdr[2] > max)
                return -EPROTO;
        r = read_full(e, payload, hdr[2], e->o.timeout_ms);
        if (r < 0)
                return r;
        *request = hdr[0];
        *size = hdr[2];
        return 0;
}

int emu_recv_fd(struct emu *e, uint32_t *request, void *payload, uint32_t max, uint32_t *size, int *fd)
{
        uint32_t hdr[3];
        char cbuf[CMSG_SPACE(sizeof(int))];
        struct iovec iov = { hdr, 12 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        struct pollfd p = { .fd = e->sock, .events = POLLIN };
        ssize_t n;
        int r;

        *fd = -1;
        if (poll(&p, 1, e->o.timeout_ms) <= 0)
                return -ETIMEDOUT;
        n = recvmsg(e->sock, &mh, MSG_CMSG_CLOEXEC);
        if (n <= 0)
                return -EPIPE;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && cm->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(fd, CMSG_DATA(cm), sizeof(int));
        if (n < 12 && (r = read_full(e, (char *)hdr + n, 12 - (size_t)n, e->o.timeout_ms)) < 0)
                return r;
        if (hdr[2] > max)
                return -EPROTO;
        if ((r = read_full(e, payload, hdr[2], e->o.timeout_ms)) < 0)
                return r;
        *request = hdr[0];
        *size = hdr[2];
        return 0;
}

static int get_u64(struct emu *e, uint32_t request, uint64_t *v)
{
        uint32_t req, size;
        int r = emu_send(e, request, 0, NULL, 0, NULL, 0);

        if (r == 0)
                r = emu_recv(e, &req, v, 8, &size);
        if (r == 0 && (req != request || size != 8))
                r = -EPROTO;
        if (r < 0)
                return fail(e, "request %u failed: %s", request, strerror(-r));
        return 0;
}

/* Sends a setting; with REPLY_ACK waits for the acknowledgment. */
static int set(struct emu *e, uint32_t request, const void *payload, uint32_t size, const int *fds, unsigned nfds)
{
        bool ack = e->protocol_features & (1ull << PF_REPLY_ACK);
        uint64_t status;
        uint32_t req, len;
        int r = emu_send(e, request, ack ? NEED_REPLY : 0, payload, size, fds, nfds);

        if (r == 0 && ack) {
                r = emu_recv(e, &req, &status, 8, &len);
                if (r == 0 && (req != request || len != 8 || status != 0))
                        r = -EPROTO;
        }
        if (r < 0)
                return fail(e, "request %u was refused or failed: %s", request, strerror(-r));
        return 0;
}

bool emu_has_event_idx(const struct emu *e)
{
        return e->features & (1ull << F_EVENT_IDX);
}

static size_t align_up(size_t v, size_t a)
{
        return (v + a - 1) & ~(a - 1);
}

static void vq_layout(struct emu *e, struct emu_vq *vq, size_t *off)
{
        unsigned n = e->o.ring;

        vq->num = (uint16_t)n;
        vq->desc_off = *off;
        *off = align_up(*off + 16ull * n, 64);
        vq->avail_off = *off;
        *off = align_up(*off + 6 + 2ull * n, 4096);
        vq->used_off = *off;
        *off = align_up(*off + 6 + 8ull * n, 4096);
        vq->buf_off = *off;
        *off += (size_t)EMU_BUF * n;
        vq->desc = (struct emu_desc *)(e->mem + vq->desc_off);
        vq->avail = (uint16_t *)(e->mem + vq->avail_off);
        vq->used = (uint16_t *)(e->mem + vq->used_off);
        vq->nfree = 0;
        for (unsigned i = n; i-- > 0;)
                vq->free[vq->nfree++] = (uint16_t)i;
        vq->kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        vq->call_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        vq->err_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

static int start_vq(struct emu *e, struct emu_vq *vq, uint32_t index, uint16_t base)
{
        uint32_t state[2] = { index, vq->num };
        struct {
                uint32_t index, flags;
                uint64_t desc, used, avail, log;
        } addr = { index, 0, (uintptr_t)e->mem + vq->desc_off, (uintptr_t)e->mem + vq->used_off,
                   (uintptr_t)e->mem + vq->avail_off, 0 };
        uint64_t file;

        if (set(e, SET_VRING_NUM, state, 8, NULL, 0) || set(e, SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0))
                return -1;
        state[1] = base;
        if (set(e, SET_VRING_BASE, state, 8, NULL, 0))
                return -1;
        file = index;
        if (set(e, SET_VRING_CALL, &file, 8, &vq->call_fd, 1) || set(e, SET_VRING_ERR, &file, 8, &vq->err_fd, 1) ||
            set(e, SET_VRING_KICK, &file, 8, &vq->kick_fd, 1))
                return -1;
        if (e->features & (1ull << F_PROTOCOL)) {
                state[1] = 1;
                if (set(e, SET_VRING_ENABLE, state, 8, NULL, 0))
                        return -1;
        }
        return 0;
}

int emu_mem_connect(struct emu *e, const struct emu_opts *o)
{
        memset(e, 0, sizeof(*e));
        e->o = *o;
        e->sock = e->memfd = e->logfd = -1;
        if (!e->o.ring)
                e->o.ring = 256;
        if (!e->o.queues)
                e->o.queues = 1;
        if (!e->o.mem_mb)
                e->o.mem_mb = 64;
        if (!e->o.timeout_ms)
                e->o.timeout_ms = 5000;
        if (e->o.queues > EMU_MAX_QP || e->o.ring > 32768 || (e->o.ring & (e->o.ring - 1)))
                return fail(e, "bad queue count or ring size");
        e->mem_size = (size_t)e->o.mem_mb << 20;
        e->memfd = memfd_create("elvis-emu-guest", MFD_CLOEXEC);
        if (e->memfd < 0 || ftruncate(e->memfd, (off_t)e->mem_size) < 0)
                return fail(e, "memfd: %s", strerror(errno));
        e->mem = mmap(NULL, e->mem_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, e->memfd, 0);
        if (e->mem == MAP_FAILED)
                return fail(e, "mmap: %s", strerror(errno));
        return emu_connect(e);
}

int emu_msg_set(struct emu *e, uint32_t request, const void *payload, uint32_t size, const int *fds, unsigned nfds)
{
        return set(e, request, payload, size, fds, nfds);
}

int emu_msg_get_u64(struct emu *e, uint32_t request, uint64_t *v)
{
        return get_u64(e, request, v);
}

void emu_vq_setup(struct emu *e, struct emu_vq *vq, size_t *off)
{
        vq_layout(e, vq, off);
}

int emu_vq_start(struct emu *e, struct emu_vq *vq, uint32_t index)
{
        return start_vq(e, vq, index, 0);
}

int emu_vq_restart(struct emu *e, struct emu_vq *vq, uint32_t index)
{
        /* QEMU after a back end it lost: the ring resumes from the used index */
        if (start_vq(e, vq, index, __atomic_load_n(&vq->used[1], __ATOMIC_ACQUIRE)))
                return -1;
        eventfd_write(vq->kick_fd, 1);
        return 0;
}

int emu_mem_table(struct emu *e)
{
        struct {
                uint32_t n, pad;
                uint64_t gpa, size, uaddr, offset;
        } table = { 1, 0, EMU_GPA_BASE, e->mem_size, (uintptr_t)e->mem, 0 };

        return set(e, SET_MEM_TABLE, &table, sizeof(table), &e->memfd, 1);
}

int emu_open(struct emu *e, const struct emu_opts *o)
{
        uint64_t offered, want, pf;
        size_t off = 0;

        if (emu_mem_connect(e, o) || get_u64(e, GET_FEATURES, &offered))
                return -1;
        want = (1ull << F_VERSION_1) | (1ull << F_PROTOCOL);
        if (!o->no_event_idx)
                want |= 1ull << F_EVENT_IDX;
        if (!o->no_mrg)
                want |= 1ull << F_MRG_RXBUF;
        if (!o->no_indirect)
                want |= 1ull << F_INDIRECT;
        if (e->o.queues > 1)
                want |= 1ull << F_MQ;
        e->features = offered & want;
        if (e->features & (1ull << F_PROTOCOL)) {
                if (get_u64(e, GET_PROTOCOL_FEATURES, &pf))
                        return -1;
                pf &= (1ull << PF_MQ) | (1ull << PF_LOG_SHMFD) | (1ull << PF_REPLY_ACK);
                if (emu_send(e, SET_PROTOCOL_FEATURES, 0, &pf, 8, NULL, 0))
                        return fail(e, "SET_PROTOCOL_FEATURES failed");
                e->protocol_features = pf;
                if (e->o.queues > 1) {
                        uint64_t nq;
                        if (get_u64(e, GET_QUEUE_NUM, &nq))
                                return -1;
                        if (nq < e->o.queues)
                                return fail(e, "back end offers %llu queue pairs, %u wanted", (unsigned long long)nq,
                                            e->o.queues);
                }
        }
        if (set(e, SET_OWNER, NULL, 0, NULL, 0) || set(e, SET_FEATURES, &e->features, 8, NULL, 0))
                return -1;
        e->nqp = e->o.queues;
        for (unsigned i = 0; i < e->nqp; i++) {
                vq_layout(e, &e->qp[i].rx, &off);
                vq_layout(e, &e->qp[i].tx, &off);
        }
        if (off > e->mem_size)
                return fail(e, "guest memory too small for %u queue pairs of %u entries", e->nqp, e->o.ring);
        if (emu_mem_table(e))
                return -1;
        for (unsigned i = 0; i < e->nqp; i++) {
                emu_rx_post_all(e, i);
                if (start_vq(e, &e->qp[i].rx, 2 * i, 0) || start_vq(e, &e->qp[i].tx, 2 * i + 1, 0))
                        return -1;
        }
        return 0;
}

void emu_close(struct emu *e)
{
        for (unsigned i = 0; i < e->nqp && e->sock >= 0; i++)
                for (uint32_t k = 0; k < 2; k++) {
                        uint32_t state[2] = { 2 * i + k, 0 }, req, size;
                        if (emu_send(e, GET_VRING_BASE, 0, state, 8, NULL, 0) == 0)
                                emu_recv(e, &req, state, 8, &size);
                }
        if (e->sock >= 0)
                close(e->sock);
        for (unsigned i = 0; i < EMU_MAX_QP; i++) {
                struct emu_vq *v[2] = { &e->qp[i].rx, &e->qp[i].tx };
                for (int k = 0; k < 2; k++)
                        if (v[k]->kick_fd > 0) {
                                close(v[k]->kick_fd);
                                close(v[k]->call_fd);
                                close(v[k]->err_fd);
                        }
        }
        if (e->mem && e->mem != MAP_FAILED)
                munmap(e->mem, e->mem_size);
        if (e->memfd >= 0)
                close(e->memfd);
        e->sock = e->memfd = -1;
        if (e->log)
                munmap(e->log, e->log_size);
        e->log = NULL;
        if (e->logfd >= 0)
                close(e->logfd);
        e->logfd = -1;
        e->mem = NULL;
}

/* ---- driver ---- */

#define AVAIL_IDX(vq) ((vq)->avail[1])
#define AVAIL_RING(vq, i) ((vq)->avail[2 + (i)])
#define USED_EVENT(vq) ((vq)->avail[2 + (vq)->num])
#define USED_FLAGS(vq) ((vq)->used[0])
#define USED_IDX(vq) ((vq)->used[1])
#define AVAIL_EVENT(vq) ((vq)->used[2 + 4 * (vq)->num])

static inline uint16_t load16(volatile uint16_t *p)
{
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline bool need_event(uint16_t event, uint16_t new_idx, uint16_t old)
{
        return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

/* Publishes posted entries and kicks only if the device asked for it, like Linux's
 * virtqueue_kick_prepare. */
static void publish(struct emu *e, struct emu_vq *vq)
{
        uint16_t old = vq->kicked_idx, new_idx = vq->avail_idx;
        bool kick;

        if (old == new_idx)
                return;
        __atomic_store_n(&AVAIL_IDX(vq), new_idx, __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        if (emu_has_event_idx(e))
                kick = need_event(load16(&AVAIL_EVENT(vq)), new_idx, old);
        else
                kick = !(load16(&USED_FLAGS(vq)) & USED_F_NO_NOTIFY);
        vq->kicked_idx = new_idx;
        if (kick) {
                uint64_t t0 = emu_now_ns(), t1;
                eventfd_write(vq->kick_fd, 1);
                vq->kicks++;
                /* the modelled exit replaces the write's cost: spin for what is left of it */
                t1 = emu_now_ns();
                if (e->o.exit_cost_ns > t1 - t0)
                        emu_spin_ns(e->o.exit_cost_ns - (t1 - t0));
                vq->kick_ns += emu_now_ns() - t0;
        }
}

void emu_vq_publish(struct emu *e, struct emu_vq *vq)
{
        publish(e, vq);
}

void emu_irq(struct emu *e, struct emu_vq *vq, bool wanted)
{
        if (emu_has_event_idx(e))
                /* wanted: signal at the next completion; else keep the event behind us */
                __atomic_store_n(&USED_EVENT(vq), (uint16_t)(wanted ? vq->used_last : vq->used_last - 1),
                                 __ATOMIC_RELEASE);
        else
                __atomic_store_n(&vq->avail[0], (uint16_t)(wanted ? 0 : AVAIL_F_NO_INTERRUPT), __ATOMIC_RELEASE);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

bool emu_wait_irq(struct emu *e, struct emu_vq *vq, int ms)
{
        struct pollfd p = { .fd = vq->call_fd, .events = POLLIN };
        uint64_t v;

        if (poll(&p, 1, ms) <= 0 || eventfd_read(vq->call_fd, &v) < 0)
                return false;
        vq->interrupts += v;
        emu_spin_ns(e->o.irq_cost_ns * v);
        return true;
}

void emu_drain_irqs(struct emu *e, struct emu_vq *vq)
{
        uint64_t v;

        if (eventfd_read(vq->call_fd, &v) == 0) {
                vq->interrupts += v;
                emu_spin_ns(e->o.irq_cost_ns * v);
        }
}

static bool logged(const struct emu *e, uint64_t gpa, uint64_t len)
{
        for (uint64_t p = gpa >> 12; p <= (gpa + len - 1) >> 12; p++)
                if (p / 8 >= e->log_size || !(__atomic_load_n(&e->log[p / 8], __ATOMIC_ACQUIRE) & (1u << (p % 8))))
                        return false;
        return true;
}

static int set_vring_log(struct emu *e, struct emu_vq *vq, uint32_t index, bool on)
{
        struct {
                uint32_t index, flags;
                uint64_t desc, used, avail, log;
        } addr = { index, on ? 1u : 0u, (uintptr_t)e->mem + vq->desc_off, (uintptr_t)e->mem + vq->used_off,
                   (uintptr_t)e->mem + vq->avail_off, EMU_GPA_BASE + vq->used_off };

        return set(e, SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0);
}

/* One bit per page from guest-physical 0 to the end of guest memory, handed over as QEMU
 * does: no NEED_REPLY, and with LOG_SHMFD an empty reply comes back. */
static int log_base(struct emu *e)
{
        struct {
                uint64_t size, offset;
        } lm;
        uint32_t req, size;
        uint64_t junk;
        int r;

        e->log_size = ((EMU_GPA_BASE + e->mem_size) >> 15) + 1;
        e->logfd = memfd_create("elvis-emu-log", MFD_CLOEXEC);
        if (e->logfd < 0 || ftruncate(e->logfd, (off_t)e->log_size) < 0)
                return fail(e, "log memfd: %s", strerror(errno));
        e->log = mmap(NULL, e->log_size, PROT_READ | PROT_WRITE, MAP_SHARED, e->logfd, 0);
        if (e->log == MAP_FAILED) {
                e->log = NULL;
                return fail(e, "log mmap: %s", strerror(errno));
        }
        lm.size = e->log_size;
        lm.offset = 0;
        r = emu_send(e, SET_LOG_BASE, 0, &lm, sizeof(lm), &e->logfd, 1);
        if (r == 0)
                r = emu_recv(e, &req, &junk, sizeof(junk), &size);
        if (r == 0 && (req != SET_LOG_BASE || size != 0))
                r = -EPROTO;
        if (r < 0)
                return fail(e, "SET_LOG_BASE: %s", strerror(-r));
        return 0;
}

int emu_log(struct emu *e, bool on)
{
        uint64_t f = e->features | (on ? 1ull << F_LOG_ALL : 0);

        if (!(e->protocol_features & (1ull << PF_LOG_SHMFD)))
                return fail(e, "the back end does not offer LOG_SHMFD");
        if (on && e->logfd < 0 && log_base(e) < 0)
                return -1;
        for (unsigned i = 0; i < e->nqp; i++)
                e->qp[i].log_check = false;
        if (set(e, SET_FEATURES, &f, 8, NULL, 0))
                return -1;
        for (unsigned i = 0; i < e->nqp; i++)
                if (set_vring_log(e, &e->qp[i].rx, 2 * i, on) || set_vring_log(e, &e->qp[i].tx, 2 * i + 1, on))
                        return -1;
        /* the back end acknowledged: every entry published from now on was written with
         * logging on (its turns publish before they release the queue) */
        for (unsigned i = 0; on && i < e->nqp; i++) {
                struct emu_vq *rx = &e->qp[i].rx;
                e->qp[i].log_skip = (uint16_t)(load16(&USED_IDX(rx)) - rx->used_last);
                e->qp[i].log_check = true;
        }
        return 0;
}

uint64_t emu_log_stray(const struct emu *e)
{
        uint64_t n = 0;

        for (uint64_t p = 0; e->log && p < (uint64_t)e->log_size * 8; p++)
                if ((e->log[p / 8] & (1u << (p % 8))) &&
                    (p < EMU_GPA_BASE >> 12 || p > (EMU_GPA_BASE + e->mem_size - 1) >> 12))
                        n++;
        return n;
}

unsigned emu_tx(struct emu *e, unsigned qpi, unsigned count, unsigned size)
{
        struct emu_qp *qp = &e->qp[qpi];
        struct emu_vq *vq = &qp->tx;
        unsigned n = 0;

        if (size > EMU_BUF - EMU_HDR)
                size = EMU_BUF - EMU_HDR;
        if (size < 16)
                size = 16;
        while (n < count && vq->nfree) {
                uint16_t id = vq->free[--vq->nfree];
                uint8_t *buf = e->mem + vq->buf_off + (size_t)id * EMU_BUF;
                memset(buf, 0, EMU_HDR);
                memcpy(buf + EMU_HDR, &qp->tx_seq, 8);
                memcpy(buf + EMU_HDR + 8, &qpi, 4);
                vq->desc[id] = (struct emu_desc){ EMU_GPA_BASE + vq->buf_off + (uint64_t)id * EMU_BUF, EMU_HDR + size, 0,
                                                  0 };
                AVAIL_RING(vq, vq->avail_idx & (vq->num - 1)) = id;
                vq->avail_idx++;
                qp->tx_seq++;
                n++;
        }
        publish(e, vq);
        return n;
}

unsigned emu_tx_reclaim(struct emu *e, unsigned qpi)
{
        struct emu_qp *qp = &e->qp[qpi];
        struct emu_vq *vq = &qp->tx;
        uint16_t idx = load16(&USED_IDX(vq));
        unsigned n = 0;

        while (vq->used_last != idx) {
                uint32_t id = ((uint32_t *)&vq->used[2])[2 * (vq->used_last & (vq->num - 1))];
                if (id < vq->num)
                        vq->free[vq->nfree++] = (uint16_t)id;
                vq->used_last++;
                n++;
        }
        qp->tx_packets += n;
        return n;
}

void emu_rx_post_all(struct emu *e, unsigned qpi)
{
        struct emu_vq *vq = &e->qp[qpi].rx;

        while (vq->nfree) {
                uint16_t id = vq->free[--vq->nfree];
                vq->desc[id] = (struct emu_desc){ EMU_GPA_BASE + vq->buf_off + (uint64_t)id * EMU_BUF, EMU_BUF,
                                                  DESC_F_WRITE, 0 };
                AVAIL_RING(vq, vq->avail_idx & (vq->num - 1)) = id;
                vq->avail_idx++;
        }
        /* the ring is not started yet on the first call: just make the entries visible */
        __atomic_store_n(&AVAIL_IDX(vq), vq->avail_idx, __ATOMIC_RELEASE);
        vq->kicked_idx = vq->avail_idx;
}

unsigned emu_rx(struct emu *e, unsigned qpi)
{
        struct emu_qp *qp = &e->qp[qpi];
        struct emu_vq *vq = &qp->rx;
        uint16_t idx = load16(&USED_IDX(vq));
        unsigned n = 0;

        while (vq->used_last != idx) {
                uint32_t *elem = &((uint32_t *)&vq->used[2])[2 * (vq->used_last & (vq->num - 1))];
                uint32_t id = elem[0], len = elem[1];
                if (qp->log_check && qp->log_skip)
                        qp->log_skip--;
                else if (qp->log_check && id < vq->num) {
                        /* the bytes written into the buffer, and the used entry itself */
                        uint64_t slot = vq->used_last & (vq->num - 1);
                        qp->log_checked++;
                        if ((len && !logged(e, EMU_GPA_BASE + vq->buf_off + (uint64_t)id * EMU_BUF, len)) ||
                            !logged(e, EMU_GPA_BASE + vq->used_off + 4 + 8 * slot, 8))
                                qp->log_missing++;
                }
                vq->used_last++;
                if (id >= vq->num)
                        continue;
                if (len >= EMU_HDR + 8) {
                        uint64_t seq;
                        memcpy(&seq, e->mem + vq->buf_off + (size_t)id * EMU_BUF + EMU_HDR, 8);
                        if (seq == qp->rx_expect) {
                                qp->rx_expect++;
                        } else if (seq > qp->rx_expect) {
                                qp->lost += seq - qp->rx_expect;
                                qp->rx_expect = seq + 1;
                        } else {
                                qp->dup_or_reordered++;
                        }
                }
                qp->rx_packets++;
                n++;
                /* repost the buffer */
                vq->desc[id] = (struct emu_desc){ EMU_GPA_BASE + vq->buf_off + (uint64_t)id * EMU_BUF, EMU_BUF,
                                                  DESC_F_WRITE, 0 };
                AVAIL_RING(vq, vq->avail_idx & (vq->num - 1)) = (uint16_t)id;
                vq->avail_idx++;
        }
        publish(e, vq);
        return n;
}
