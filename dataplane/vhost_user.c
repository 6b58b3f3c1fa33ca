/* vhost-user back end: one listening socket per device, one control thread for all
 * connections. Reads are non-blocking and per connection, so a front end that sends
 * half a message stalls nobody else. Every message is checked (size, index, fds)
 * before it touches a ring; anything wrong gets an error on that connection only. */
#include "dp.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum {
        GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, RESET_OWNER = 4, SET_MEM_TABLE = 5, SET_LOG_BASE = 6,
        SET_LOG_FD = 7, SET_VRING_NUM = 8, SET_VRING_ADDR = 9, SET_VRING_BASE = 10, GET_VRING_BASE = 11,
        SET_VRING_KICK = 12, SET_VRING_CALL = 13, SET_VRING_ERR = 14, GET_PROTOCOL_FEATURES = 15,
        SET_PROTOCOL_FEATURES = 16, GET_QUEUE_NUM = 17, SET_VRING_ENABLE = 18, SET_BACKEND_REQ_FD = 21,
        GET_CONFIG = 24, SET_CONFIG = 25, GET_INFLIGHT_FD = 31, SET_INFLIGHT_FD = 32, RESET_DEVICE = 34,
        SET_STATUS = 39, GET_STATUS = 40,
};

#define HDR_SIZE 12
#define MAX_PAYLOAD 4096
#define MAX_FDS 8
/* regions one SET_MEM_TABLE carries (one fd each; more needs ADD_MEM_REG, not offered) */
#define VU_MAX_REGIONS MAX_FDS
#define FLAG_VERSION 0x1
#define FLAG_REPLY 0x4
#define FLAG_NEED_REPLY 0x8
#define VRING_NOFD 0x100
#define VRING_IDX_MASK 0xff

#define OFFERED_FEATURES (BIT(F_VERSION_1) | BIT(F_EVENT_IDX) | BIT(F_INDIRECT_DESC) | BIT(F_MRG_RXBUF) | \
                          BIT(F_CSUM) | BIT(F_GUEST_CSUM) | BIT(F_GUEST_TSO4) | BIT(F_GUEST_TSO6) |       \
                          BIT(F_GUEST_ECN) | BIT(F_HOST_TSO4) | BIT(F_HOST_TSO6) | BIT(F_HOST_ECN) |      \
                          BIT(F_PROTOCOL_FEATURES) | BIT(F_LOG_ALL))
#define OFFERED_PROTOCOL (BIT(PF_MQ) | BIT(PF_LOG_SHMFD) | BIT(PF_REPLY_ACK) | BIT(PF_BACKEND_REQ) | BIT(PF_STATUS))
/* vhost-user-blk: transport bits as net has them, the disk's own from the request model */
#define OFFERED_BLK_TRANSPORT (BIT(F_VERSION_1) | BIT(F_EVENT_IDX) | BIT(F_INDIRECT_DESC) | BIT(F_PROTOCOL_FEATURES) | \
                               BIT(F_LOG_ALL))
/* GET_CONFIG's payload: {u32 offset, u32 size, u32 flags} then the bytes */
#define CONFIG_HDR 12u
#define CONFIG_MAX 256u         /* VHOST_USER_MAX_CONFIG_SIZE */
/* a bit per 4 KiB guest page: 1 GiB of log covers 32 TiB of guest-physical space */
#define LOG_MAX_SIZE (1ull << 30)
#define VRING_F_LOG 0x1

struct dp_conn {
        struct dp_device *dev;
        int fd;
        uint64_t id;
        uint8_t buf[HDR_SIZE + MAX_PAYLOAD];
        size_t have;
        int fds[MAX_FDS];
        unsigned nfds;
};

struct msg {
        uint32_t request, flags, size;
        const uint8_t *payload;
        int *fds;
        unsigned nfds;
};

static uint64_t next_id = 1;    /* epoll tags; never reused, so a stale event finds nothing */

static uint64_t offered_protocol(const struct dp_device *dev)
{
        return OFFERED_PROTOCOL | (dev->type == ELVIS_DEVICE_BLK ? BIT(PF_CONFIG) | BIT(PF_INFLIGHT_SHMFD) : 0);
}

static uint64_t offered_features(const struct dp_device *dev)
{
        if (dev->type == ELVIS_DEVICE_BLK)
                return OFFERED_BLK_TRANSPORT | elvis_blk_features(&dev->disk);
        return OFFERED_FEATURES | (dev->nqp > 1 ? BIT(F_MQ) : 0);
}

static const char *request_name(uint32_t r)
{
        static const char *const names[] = {
                [GET_FEATURES] = "GET_FEATURES", [SET_FEATURES] = "SET_FEATURES", [SET_OWNER] = "SET_OWNER",
                [RESET_OWNER] = "RESET_OWNER", [SET_MEM_TABLE] = "SET_MEM_TABLE", [SET_LOG_BASE] = "SET_LOG_BASE",
                [SET_LOG_FD] = "SET_LOG_FD", [SET_VRING_NUM] = "SET_VRING_NUM", [SET_VRING_ADDR] = "SET_VRING_ADDR",
                [SET_VRING_BASE] = "SET_VRING_BASE", [GET_VRING_BASE] = "GET_VRING_BASE",
                [SET_VRING_KICK] = "SET_VRING_KICK", [SET_VRING_CALL] = "SET_VRING_CALL",
                [SET_VRING_ERR] = "SET_VRING_ERR", [GET_PROTOCOL_FEATURES] = "GET_PROTOCOL_FEATURES",
                [SET_PROTOCOL_FEATURES] = "SET_PROTOCOL_FEATURES", [GET_QUEUE_NUM] = "GET_QUEUE_NUM",
                [SET_VRING_ENABLE] = "SET_VRING_ENABLE", [SET_BACKEND_REQ_FD] = "SET_BACKEND_REQ_FD",
                [GET_CONFIG] = "GET_CONFIG", [SET_CONFIG] = "SET_CONFIG", [GET_INFLIGHT_FD] = "GET_INFLIGHT_FD",
                [SET_INFLIGHT_FD] = "SET_INFLIGHT_FD", [RESET_DEVICE] = "RESET_DEVICE",
                [SET_STATUS] = "SET_STATUS", [GET_STATUS] = "GET_STATUS",
        };
        return r < sizeof(names) / sizeof(names[0]) && names[r] ? names[r] : "unknown request";
}

/* fds a message carried that no handler kept: of any kind, so closed without waiting */
static void close_fds(int *fds, unsigned n)
{
        for (unsigned i = 0; i < n; i++)
                if (fds[i] >= 0) {
                        dp_vmm_fd_close(fds[i]);
                        fds[i] = -1;
                }
}

/* Error notifications a ring change owes the guest, written after the locks are gone.
 * Control thread: the vq fds are only changed by this thread. */
static void flush_errors(struct dp_device *dev)
{
        for (unsigned i = 0; i < dev->nqp; i++) {
                struct dp_qp *qp = &dev->qp[i];
                int fds[4] = { qp->rx.call_fd, qp->tx.call_fd, qp->rx.err_fd, qp->tx.err_fd };

                if (atomic_load(&qp->signal))
                        dp_qp_flush_signals(qp, fds);
        }
}

/* ---- memory ---- */

/* A mapping of the VMM's memory goes; a failure would leak it for good, so it is said. */
static void unmap_vmm(const struct dp_region_map *m)
{
        if (m->addr && munmap(m->addr, m->len) < 0)
                log_error("cannot unmap %zu bytes of a VMM's memory: %s", (size_t)m->len, strerror(errno));
}

/* busy: a disk still holds abandoned requests that may name this memory (blk.c keeps it
 * reserved) */
static void unmap_memory(struct dp_device *dev, bool busy)
{
        for (unsigned i = 0; i < ELVIS_MEM_MAX_REGIONS; i++)
                if (dev->maps[i].addr) {
                        dp_blk_unmap(dev, &dev->maps[i], busy ? DP_BLK_RESERVE : DP_BLK_UNMAP);
                        dev->maps[i] = (struct dp_region_map){ 0 };
                }
        memset(&dev->mem, 0, sizeof(dev->mem));
        dp_blk_unquarantine(dev, busy);
}

/* Every pair's q->log must no longer point into it (elvis_netq_reset, or a new log
 * installed under the pairs' locks). */
static void unmap_log(struct dp_device *dev)
{
        unmap_vmm(&dev->log_map);
        dev->log_map = (struct dp_region_map){ 0 };
}

/* Every pair of the device, in index order; the analysis cannot follow locks taken in a loop. */
static void lock_all(struct dp_device *dev) DP_NO_TSA
{
        for (unsigned i = 0; i < dev->nqp; i++)
                dp_mutex_lock(&dev->qp[i].lock);
}

static void unlock_all(struct dp_device *dev) DP_NO_TSA
{
        for (unsigned i = dev->nqp; i-- > 0;) {
                dp_qp_kick_server(&dev->qp[i]);
                dp_mutex_unlock(&dev->qp[i].lock);
        }
}

/* Stops every ring and forgets the front end's memory and features. */
static void reset_device(struct dp_device *dev)
{
        bool busy;

        lock_all(dev);
        for (unsigned i = 0; i < dev->nqp; i++) {
                struct dp_qp *qp = &dev->qp[i];
                dp_assert_held(&qp->lock);      /* lock_all */
                dp_qp_reset(qp);
                dp_blk_inflight_attach(qp, NULL, 0);
                atomic_store(&qp->signal, 0);
                atomic_fetch_add(&qp->gen, 1);
                dp_qp_publish(qp);
        }
        busy = dp_blk_busy(dev);
        unmap_memory(dev, busy);
        unmap_log(dev);         /* dp_qp_reset dropped every pair's pointer into it */
        unlock_all(dev);
        unmap_vmm(&dev->inflight_map);  /* no tracker points into it now */
        dev->inflight_map = (struct dp_region_map){ 0 };
        dev->features = 0;
        dev->features_set = false;
        dev->protocol_features = 0;
        dev->status = 0;
        if (dev->backend_req_fd >= 0)
                close(dev->backend_req_fd);
        dev->backend_req_fd = -1;
}

struct region_msg {
        uint64_t gpa, size, uaddr, mmap_offset;
};

static int set_mem_table(struct dp_device *dev, const struct msg *m, const char **why)
{
        struct elvis_vring_mem mem = { 0 };
        struct dp_region_map maps[ELVIS_MEM_MAX_REGIONS] = { { 0 } }, old[ELVIS_MEM_MAX_REGIONS];
        uint32_t n;
        bool busy;
        int r = 0;

        if (m->size < 8) {
                *why = "payload too short";
                return -EINVAL;
        }
        memcpy(&n, m->payload, 4);
        if (n == 0 || n > VU_MAX_REGIONS || m->size != 8 + n * sizeof(struct region_msg)) {
                *why = "region count does not match the payload";
                return -EINVAL;
        }
        if (m->nfds != n) {
                *why = "one file descriptor per region is required";
                return -EINVAL;
        }
        for (uint32_t i = 0; i < n && r == 0; i++) {
                struct region_msg rm;
                struct stat st;
                long page = sysconf(_SC_PAGESIZE);
                uint64_t align, map_off, lead;

                memcpy(&rm, m->payload + 8 + i * sizeof(rm), sizeof(rm));
                r = dp_vmm_memfd_check(m->fds[i], &st, why);
                if (r < 0)
                        break;
                /* a mapping past the end of the file would fault (SIGBUS) on first access */
                if (rm.size == 0 || rm.mmap_offset + rm.size < rm.mmap_offset ||
                    rm.mmap_offset + rm.size > (uint64_t)st.st_size) {
                        *why = "region is larger than its file or its offset lies beyond the end";
                        r = -EINVAL;
                        break;
                }
                align = st.st_blksize > page ? (uint64_t)st.st_blksize : (uint64_t)page;
                map_off = rm.mmap_offset & ~(align - 1);
                lead = rm.mmap_offset - map_off;
                /* whole blocks: munmap of hugetlbfs takes only whole huge pages (a file of
                 * that kind is a whole number of them, so this stays inside it) */
                maps[i].len = (rm.size + lead + align - 1) & ~(align - 1);
                maps[i].addr = mmap(NULL, maps[i].len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fds[i],
                                    (off_t)map_off);
                if (maps[i].addr == MAP_FAILED) {
                        maps[i].addr = NULL;
                        *why = "cannot map region";
                        r = -errno;
                        break;
                }
                mem.r[i] = (struct elvis_mem_region){ .gpa = rm.gpa, .size = rm.size, .vmm_addr = rm.uaddr,
                                                      .base = (char *)maps[i].addr + lead };
                mem.nregions = i + 1;
        }
        if (r == 0)
                r = elvis_mem_validate(&mem, why);
        if (r < 0) {
                for (unsigned i = 0; i < ELVIS_MEM_MAX_REGIONS; i++)
                        unmap_vmm(&maps[i]);
                return r;
        }
        lock_all(dev);
        memcpy(old, dev->maps, sizeof(old));
        dev->mem = mem;
        memcpy(dev->maps, maps, sizeof(maps));
        for (unsigned i = 0; i < dev->nqp; i++) {
                dp_assert_held(&dev->qp[i].lock);       /* lock_all */
                dp_vq_refresh(&dev->qp[i], &dev->qp[i].rx);
                dp_vq_refresh(&dev->qp[i], &dev->qp[i].tx);
        }
        busy = dp_blk_busy(dev);
        unlock_all(dev);
        for (unsigned i = 0; i < ELVIS_MEM_MAX_REGIONS; i++)
                dp_blk_unmap(dev, &old[i], busy ? DP_BLK_KEEP_MAPPED : DP_BLK_UNMAP);
        dp_blk_unquarantine(dev, busy);
        return 0;
}

/* ---- replies ---- */

/* A reply, with one fd when fd >= 0. */
static int send_reply_fd(struct dp_conn *c, const struct msg *m, const void *payload, uint32_t size, int fd)
{
        uint8_t buf[HDR_SIZE + CONFIG_HDR + CONFIG_MAX];
        char cbuf[CMSG_SPACE(sizeof(int))];
        uint32_t flags = FLAG_VERSION | FLAG_REPLY;
        struct iovec iov = { buf, HDR_SIZE + size };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t w;

        memcpy(buf, &m->request, 4);
        memcpy(buf + 4, &flags, 4);
        memcpy(buf + 8, &size, 4);
        if (size)
                memcpy(buf + HDR_SIZE, payload, size);
        if (fd >= 0) {
                struct cmsghdr *cm;

                memset(cbuf, 0, sizeof(cbuf));
                mh.msg_control = cbuf;
                mh.msg_controllen = sizeof(cbuf);
                cm = CMSG_FIRSTHDR(&mh);
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &fd, sizeof(int));
        }
        w = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        return w == (ssize_t)(HDR_SIZE + size) ? 0 : -EPIPE;
}

static int send_reply(struct dp_conn *c, const struct msg *m, const void *payload, uint32_t size)
{
        return send_reply_fd(c, m, payload, size, -1);
}

static int reply_u64(struct dp_conn *c, const struct msg *m, uint64_t v)
{
        return send_reply(c, m, &v, 8);
}

/* ---- vring messages ---- */

static int vq_of(struct dp_device *dev, uint32_t index, struct dp_qp **qp, struct dp_vq **vq, const char **why)
{
        if (dev->type == ELVIS_DEVICE_BLK) {
                /* one virtqueue per unit, in its TX place */
                if (index >= dev->nqp) {
                        *why = "vring index out of range";
                        return -EINVAL;
                }
                *qp = &dev->qp[index];
                *vq = &(*qp)->tx;
                return 0;
        }
        if (index >= 2 * dev->nqp) {
                *why = "vring index out of range";
                return -EINVAL;
        }
        *qp = &dev->qp[index / 2];
        *vq = index % 2 ? &(*qp)->tx : &(*qp)->rx;
        return 0;
}

static int need_size(const struct msg *m, uint32_t size, const char **why)
{
        if (m->size != size) {
                *why = "payload size is wrong for this request";
                return -EINVAL;
        }
        return 0;
}

/* ---- dirty log (live migration) ---- */

struct log_msg {
        uint64_t mmap_size, mmap_offset;
};

/* The front end's dirty bitmap: one memfd, mapped shared, installed in every pair under
 * its lock; the old mapping goes once no pair points into it. With LOG_SHMFD QEMU waits
 * for an empty reply (hw/virtio/vhost-user.c, vhost_user_set_log_base), so a log we
 * cannot use is not answered: the connection closes (request_has_reply), and the front
 * end fails the migration instead of running it with a log nobody writes. */
static int set_log_base(struct dp_device *dev, struct dp_conn *c, const struct msg *m, bool *replied,
                        const char **why)
{
        struct log_msg lm;
        struct dp_region_map map, old;
        struct stat st;
        long page = sysconf(_SC_PAGESIZE);
        uint64_t align, map_off, lead;
        int r;

        if ((r = need_size(m, sizeof(lm), why)) < 0)
                return r;
        memcpy(&lm, m->payload, sizeof(lm));
        if (m->nfds != 1) {
                *why = "exactly one file descriptor expected (the log's memfd)";
                return -EINVAL;
        }
        if (dp_vmm_memfd_check(m->fds[0], &st, why) < 0) {
                *why = "the dirty log must be a memfd, tmpfs or hugetlbfs file";
                return -EINVAL;
        }
        if (lm.mmap_size == 0 || lm.mmap_size > LOG_MAX_SIZE) {
                *why = "log size is zero or above 1 GiB";
                return -EINVAL;
        }
        /* a mapping past the end of the file would fault (SIGBUS) on the first log write */
        if (lm.mmap_offset + lm.mmap_size < lm.mmap_offset || lm.mmap_offset + lm.mmap_size > (uint64_t)st.st_size) {
                *why = "log is larger than its file or its offset lies beyond the end";
                return -EINVAL;
        }
        align = st.st_blksize > page ? (uint64_t)st.st_blksize : (uint64_t)page;
        map_off = lm.mmap_offset & ~(align - 1);
        lead = lm.mmap_offset - map_off;
        map.len = (lm.mmap_size + lead + align - 1) & ~(align - 1);   /* whole blocks, as for guest memory */
        map.addr = mmap(NULL, map.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fds[0], (off_t)map_off);
        if (map.addr == MAP_FAILED) {
                *why = "cannot map the dirty log";
                return -errno;
        }
        lock_all(dev);
        old = dev->log_map;
        dev->log_map = map;
        for (unsigned i = 0; i < dev->nqp; i++) {
                struct dp_qp *qp = &dev->qp[i];

                dp_assert_held(&qp->lock);      /* lock_all */
                if (qp->bq) {
                        qp->bq->q.log.base = (char *)map.addr + lead;
                        qp->bq->q.log.size = lm.mmap_size;
                        elvis_blkq_log_update(&qp->bq->q);
                        continue;
                }
                qp->q.log.base = (char *)map.addr + lead;
                qp->q.log.size = lm.mmap_size;
                elvis_netq_log_update(&qp->q);
        }
        unlock_all(dev);
        unmap_vmm(&old);
        log_info("VM %u device %s: dirty log of %llu bytes from the front end (live migration)", dev->vm_id, dev->id,
                 (unsigned long long)lm.mmap_size);
        if ((dev->protocol_features & BIT(PF_LOG_SHMFD)) &&
            !((m->flags & FLAG_NEED_REPLY) && (dev->protocol_features & BIT(PF_REPLY_ACK)))) {
                *replied = true;
                return send_reply(c, m, NULL, 0);
        }
        return 0;
}

static int vring_fd(struct dp_device *dev, const struct msg *m, const char **why)
{
        uint64_t v;
        struct dp_qp *qp;
        struct dp_vq *vq;
        int fd = -1, old, *slot, r;

        if ((r = need_size(m, 8, why)) < 0)
                return r;
        memcpy(&v, m->payload, 8);
        if (v & ~(uint64_t)(VRING_IDX_MASK | VRING_NOFD)) {
                *why = "unknown flags in vring file message";
                return -EINVAL;
        }
        if ((r = vq_of(dev, (uint32_t)(v & VRING_IDX_MASK), &qp, &vq, why)) < 0)
                return r;
        if (v & VRING_NOFD) {
                if (m->nfds) {
                        *why = "file descriptor sent with the no-fd flag";
                        return -EINVAL;
                }
        } else {
                if (m->nfds != 1) {
                        *why = "exactly one file descriptor expected";
                        return -EINVAL;
                }
                /* anything but an eventfd is refused, and the ring stops until the VMM
                 * starts it again with proper eventfds (SET_VRING_KICK) */
                if ((r = dp_vmm_eventfd_take(m->fds[0], why)) < 0) {
                        dp_mutex_lock(&qp->lock);
                        vq->started = false;
                        dp_vq_refresh(qp, vq);
                        dp_qp_kick_server(qp);
                        dp_mutex_unlock(&qp->lock);
                        return r;
                }
                fd = m->fds[0];
                m->fds[0] = -1;         /* ours now */
        }
        dp_mutex_lock(&qp->lock);
        slot = m->request == SET_VRING_KICK ? &vq->kick_fd : m->request == SET_VRING_CALL ? &vq->call_fd : &vq->err_fd;
        old = *slot;
        *slot = fd;
        if (m->request == SET_VRING_KICK) {
                vq->started = true;
                if (!(dev->features & BIT(F_PROTOCOL_FEATURES)))
                        vq->enabled = true;
        }
        dp_vq_refresh(qp, vq);
        dp_qp_kick_server(qp);
        dp_mutex_unlock(&qp->lock);
        /* servers hold their own duplicates; ours goes outside the lock */
        if (old >= 0)
                close(old);
        return 0;
}

static int vring_state(struct dp_device *dev, struct dp_conn *c, const struct msg *m, const char **why)
{
        struct { uint32_t index, num; } s;
        struct dp_qp *qp;
        struct dp_vq *vq;
        int r;

        if ((r = need_size(m, 8, why)) < 0)
                return r;
        memcpy(&s, m->payload, 8);
        if ((r = vq_of(dev, s.index, &qp, &vq, why)) < 0)
                return r;
        dp_mutex_lock(&qp->lock);
        switch (m->request) {
        case SET_VRING_NUM:
                if (s.num == 0 || s.num > ELVIS_VRING_MAX_NUM || (s.num & (s.num - 1))) {
                        *why = "ring size must be a power of two between 1 and 32768";
                        r = -EINVAL;
                        break;
                }
                vq->ring->num = s.num;
                dp_vq_refresh(qp, vq);
                break;
        case SET_VRING_BASE:
                if (s.num > 0xffff) {
                        *why = "ring base beyond 16 bits";
                        r = -EINVAL;
                        break;
                }
                vq->ring->base = (uint16_t)s.num;
                if (vq->ring->live) {
                        vq->ring->live = false;       /* restart from the new base */
                        dp_vq_refresh(qp, vq);
                }
                break;
        case SET_VRING_ENABLE:
                if (s.num > 1) {
                        *why = "enable must be 0 or 1";
                        r = -EINVAL;
                        break;
                }
                vq->enabled = s.num;
                dp_vq_refresh(qp, vq);
                break;
        case GET_VRING_BASE:
                s.num = vq->ring->live ? vq->ring->vr.last_avail_idx : vq->ring->base;
                /* the ring stops: no more processing, no kicks watched */
                vq->started = false;
                dp_vq_refresh(qp, vq);
                vq->ring->base = (uint16_t)s.num;
                if (vq->kick_fd >= 0)
                        close(vq->kick_fd);
                vq->kick_fd = -1;
                atomic_fetch_add(&qp->gen, 1);
                r = send_reply(c, m, &s, 8);
                break;
        }
        dp_qp_kick_server(qp);
        dp_mutex_unlock(&qp->lock);
        return r;
}

static int vring_addr(struct dp_device *dev, const struct msg *m, const char **why)
{
        struct {
                uint32_t index, flags;
                uint64_t desc, used, avail, log;
        } a;
        struct dp_qp *qp;
        struct dp_vq *vq;
        int r;

        if ((r = need_size(m, sizeof(a), why)) < 0)
                return r;
        memcpy(&a, m->payload, sizeof(a));
        if ((r = vq_of(dev, a.index, &qp, &vq, why)) < 0)
                return r;
        if (a.flags & ~(uint32_t)VRING_F_LOG) {
                *why = "unknown vring address flags";
                return -EINVAL;
        }
        dp_mutex_lock(&qp->lock);
        vq->ring->log_used = a.flags & VRING_F_LOG;
        vq->ring->log_addr = a.log;
        if (vq->ring->live && vq->ring->desc == a.desc && vq->ring->avail == a.avail && vq->ring->used == a.used) {
                /* logging switched on or off (migration): in place, the ring keeps running */
                if (qp->bq)
                        elvis_blkq_log_update(&qp->bq->q);
                else
                        elvis_netq_log_update(&qp->q);
        } else {
                vq->ring->desc = a.desc;
                vq->ring->avail = a.avail;
                vq->ring->used = a.used;
                vq->ring->addr_set = true;
                dp_vq_refresh(qp, vq);
        }
        dp_qp_kick_server(qp);
        dp_mutex_unlock(&qp->lock);
        return 0;
}

static int set_features(struct dp_device *dev, const struct msg *m, const char **why)
{
        uint64_t f;
        bool only_log, log_change;
        int r;

        if ((r = need_size(m, 8, why)) < 0)
                return r;
        memcpy(&f, m->payload, 8);
        if (f & ~offered_features(dev)) {
                *why = "features that were not offered";
                return -EINVAL;
        }
        lock_all(dev);
        only_log = dev->features_set && ((dev->features ^ f) & ~BIT(F_LOG_ALL)) == 0;
        log_change = only_log && ((dev->features ^ f) & BIT(F_LOG_ALL));
        dev->features = f;
        dev->features_set = true;
        for (unsigned i = 0; i < dev->nqp; i++) {
                dp_assert_held(&dev->qp[i].lock);       /* lock_all */
                if (only_log) {
                        /* LOG_ALL on or off while the rings run: no restart, no frame lost or repeated */
                        if (dev->qp[i].bq) {
                                dev->qp[i].bq->q.features = f;
                                elvis_blkq_log_update(&dev->qp[i].bq->q);
                                continue;
                        }
                        dev->qp[i].q.features = f;
                        elvis_netq_log_update(&dev->qp[i].q);
                        continue;
                }
                if (dev->qp[i].rx.ring->live)
                        dp_vq_refresh(&dev->qp[i], &dev->qp[i].rx);
                if (dev->qp[i].tx.ring->live)
                        dp_vq_refresh(&dev->qp[i], &dev->qp[i].tx);
        }
        unlock_all(dev);
        if (log_change)
                log_info("VM %u device %s: dirty logging of every guest write %s (rings keep running)", dev->vm_id,
                         dev->id, f & BIT(F_LOG_ALL) ? "on" : "off");
        if (!only_log) {
                log_info("VM %u device %s: virtio features %#llx negotiated", dev->vm_id, dev->id,
                         (unsigned long long)f);
                dp_tap_configure(dev);
        }
        return 0;
}

/* GET_CONFIG (vhost-user-blk): the front end names a window of the config space; the
 * reply carries the same header and that window. A window outside the space is refused
 * with an empty reply, which a front end takes as a failure. */
static int get_config(struct dp_device *dev, struct dp_conn *c, const struct msg *m, const char **why)
{
        uint8_t out[CONFIG_HDR + CONFIG_MAX] = { 0 }, cfg[ELVIS_BLK_CONFIG_SIZE];
        uint32_t off, size;

        if (dev->type != ELVIS_DEVICE_BLK) {
                *why = "a network device has no config space here";
                send_reply(c, m, NULL, 0);
                return -EOPNOTSUPP;
        }
        if (m->size < CONFIG_HDR) {
                *why = "payload too short";
                send_reply(c, m, NULL, 0);
                return -EINVAL;
        }
        memcpy(&off, m->payload, 4);
        memcpy(&size, m->payload + 4, 4);
        if (size > CONFIG_MAX || off > CONFIG_MAX - size || m->size != CONFIG_HDR + size) {
                *why = "config window beyond the config space, or the payload does not match its size";
                send_reply(c, m, NULL, 0);
                return -EINVAL;
        }
        dp_blk_config(dev, cfg);
        memcpy(out, m->payload, CONFIG_HDR);
        /* fields past the disk's (features not offered) read as zeros */
        for (uint32_t i = 0; i < size; i++)
                out[CONFIG_HDR + i] = off + i < sizeof(cfg) ? cfg[off + i] : 0;
        return send_reply(c, m, out, CONFIG_HDR + size);
}

/* ---- inflight tracking (vhost-user-blk, INFLIGHT_SHMFD; see blk.c) ---- */

struct inflight_msg {
        uint64_t mmap_size, mmap_offset;
        uint16_t num_queues, queue_size;
        uint32_t pad;           /* the struct's C size, which QEMU sends */
};

/* What the front end asks for must fit the device: its queues, a ring size it can have. */
static int inflight_shape(const struct dp_device *dev, const struct inflight_msg *im, const char **why)
{
        if (dev->type != ELVIS_DEVICE_BLK) {
                *why = "only block devices track requests in flight";
                return -EOPNOTSUPP;
        }
        if (im->num_queues == 0 || im->num_queues > dev->nqp) {
                *why = "num_queues is 0 or more than the device's queues";
                return -EINVAL;
        }
        if (im->queue_size == 0 || im->queue_size > ELVIS_VRING_MAX_NUM || (im->queue_size & (im->queue_size - 1))) {
                *why = "queue_size must be a power of two between 1 and 32768";
                return -EINVAL;
        }
        return 0;
}

/* GET_INFLIGHT_FD: a fresh region in a memfd sealed against resizing, formatted, for the
 * front end to keep across our restarts. A request we cannot serve is answered with
 * mmap_size 0, which the front end takes as "no tracking". */
static int get_inflight_fd(struct dp_device *dev, struct dp_conn *c, const struct msg *m, const char **why)
{
        struct inflight_msg im = { 0 };
        size_t size;
        void *p;
        int fd, r;

        if (m->size != sizeof(im)) {
                *why = "payload size is wrong for this request";
                r = -EINVAL;
                goto refuse;
        }
        memcpy(&im, m->payload, sizeof(im));
        if ((r = inflight_shape(dev, &im, why)) < 0)
                goto refuse;
        size = (size_t)im.num_queues * dp_inflight_queue_size(im.queue_size);
        fd = memfd_create("elvis-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                *why = "cannot create the inflight region";
                r = -errno;
                goto refuse;
        }
        if (ftruncate(fd, (off_t)size) < 0 ||
            (p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
                *why = "cannot size or map the inflight region";
                r = -errno;
                close(fd);
                goto refuse;
        }
        dp_inflight_format(p, im.num_queues, im.queue_size);
        munmap(p, size);
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
                *why = "cannot seal the inflight region";
                r = -errno;
                close(fd);
                goto refuse;
        }
        im.mmap_size = size;
        im.mmap_offset = 0;
        r = send_reply_fd(c, m, &im, sizeof(im), fd);
        close(fd);
        if (r == 0)
                log_info("VM %u device %s: inflight region of %u queues of %u entries for the front end", dev->vm_id,
                         dev->id, im.num_queues, im.queue_size);
        return r;
refuse:
        im.mmap_size = 0;
        im.mmap_offset = 0;
        return send_reply(c, m, &im, sizeof(im)) < 0 ? -EPIPE : r;
}

/* SET_INFLIGHT_FD: the region a front end kept (ours, or an earlier back end's), before
 * the rings start. Its shape is checked here; what it says is checked when a ring starts
 * (dp_inflight_recover), and every access to it is under the SIGBUS guard. */
static int set_inflight_fd(struct dp_device *dev, const struct msg *m, const char **why)
{
        struct inflight_msg im;
        struct dp_region_map map, old;
        struct stat st;
        long page = sysconf(_SC_PAGESIZE);
        uint64_t need, align, map_off, lead;
        bool live = false;
        int r = 0;

        if ((r = need_size(m, sizeof(im), why)) < 0)
                return r;
        memcpy(&im, m->payload, sizeof(im));
        if (m->nfds != 1) {
                *why = "exactly one file descriptor expected (the inflight region)";
                return -EINVAL;
        }
        if ((r = inflight_shape(dev, &im, why)) < 0)
                return r;
        need = (uint64_t)im.num_queues * dp_inflight_queue_size(im.queue_size);
        if (im.mmap_size < need) {
                *why = "the region is smaller than num_queues queues of queue_size entries";
                return -EINVAL;
        }
        if (dp_vmm_memfd_check(m->fds[0], &st, why) < 0) {
                *why = "the inflight region must be a memfd, tmpfs or hugetlbfs file";
                return -EINVAL;
        }
        /* a mapping past the end of the file would fault (SIGBUS) on first access */
        if (im.mmap_offset + need < im.mmap_offset || im.mmap_offset + need > (uint64_t)st.st_size) {
                *why = "the region is larger than its file or its offset lies beyond the end";
                return -EINVAL;
        }
        align = st.st_blksize > page ? (uint64_t)st.st_blksize : (uint64_t)page;
        map_off = im.mmap_offset & ~(align - 1);
        lead = im.mmap_offset - map_off;
        map.len = (need + lead + align - 1) & ~(align - 1);
        map.addr = mmap(NULL, map.len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, m->fds[0], (off_t)map_off);
        if (map.addr == MAP_FAILED) {
                *why = "cannot map the inflight region";
                return -errno;
        }
        lock_all(dev);
        for (unsigned i = 0; i < dev->nqp; i++) {
                dp_assert_held(&dev->qp[i].lock);       /* lock_all */
                live |= dp_qp_live(&dev->qp[i]);
        }
        if (live) {
                *why = "the rings are running: the inflight region comes before they start";
                r = -EBUSY;
        }
        for (unsigned i = 0; i < dev->nqp && r == 0; i++) {
                dp_assert_held(&dev->qp[i].lock);       /* lock_all */
                r = dp_blk_inflight_attach(&dev->qp[i], i < im.num_queues ? (char *)map.addr + lead : NULL,
                                           im.queue_size);
        }
        if (r < 0 && !live) {
                /* no queue keeps a pointer into a region refused */
                for (unsigned i = 0; i < dev->nqp; i++) {
                        dp_assert_held(&dev->qp[i].lock);       /* lock_all */
                        dp_blk_inflight_attach(&dev->qp[i], NULL, 0);
                }
                *why = "out of memory";
        }
        old = r == 0 ? dev->inflight_map : map;
        if (r == 0)
                dev->inflight_map = map;
        unlock_all(dev);
        unmap_vmm(&old);
        if (r == 0)
                log_info("VM %u device %s: inflight region of %u queues of %u entries from the front end", dev->vm_id,
                         dev->id, im.num_queues, im.queue_size);
        return r;
}

/* Handles one complete message; returns 0, or -errno with why set (the caller answers). */
static int handle(struct dp_conn *c, struct msg *m, bool *replied, const char **why)
{
        struct dp_device *dev = c->dev;
        uint64_t v;
        int r;

        *replied = false;
        switch (m->request) {
        case GET_FEATURES:
                *replied = true;
                return reply_u64(c, m, offered_features(dev));
        case SET_FEATURES:
                return set_features(dev, m, why);
        case SET_OWNER:
                return 0;
        case RESET_OWNER:
        case RESET_DEVICE:
                reset_device(dev);
                return 0;
        case SET_MEM_TABLE:
                return set_mem_table(dev, m, why);
        case SET_LOG_BASE:
                return set_log_base(dev, c, m, replied, why);
        case SET_LOG_FD:
                /* an eventfd to tell the front end the log changed; QEMU reads the bitmap on
                 * its own schedule and never asks for it, so it is checked and closed */
                if (m->nfds != 1) {
                        *why = "exactly one file descriptor expected";
                        return -EINVAL;
                }
                if ((r = dp_vmm_eventfd_take(m->fds[0], why)) < 0)
                        return r;
                return 0;
        case SET_VRING_NUM:
        case SET_VRING_BASE:
        case SET_VRING_ENABLE:
                return vring_state(dev, c, m, why);
        case GET_VRING_BASE:
                *replied = true;
                r = vring_state(dev, c, m, why);
                *replied = r == 0;
                return r;
        case SET_VRING_ADDR:
                return vring_addr(dev, m, why);
        case SET_VRING_KICK:
        case SET_VRING_CALL:
        case SET_VRING_ERR:
                return vring_fd(dev, m, why);
        case GET_PROTOCOL_FEATURES:
                *replied = true;
                return reply_u64(c, m, offered_protocol(dev));
        case SET_PROTOCOL_FEATURES:
                if ((r = need_size(m, 8, why)) < 0)
                        return r;
                memcpy(&v, m->payload, 8);
                if (v & ~offered_protocol(dev)) {
                        *why = "protocol features that were not offered";
                        return -EINVAL;
                }
                dev->protocol_features = v;
                return 0;
        case GET_QUEUE_NUM:
                *replied = true;
                return reply_u64(c, m, dev->nqp);
        case SET_BACKEND_REQ_FD:
                if (m->nfds != 1) {
                        *why = "exactly one file descriptor expected";
                        return -EINVAL;
                }
                if ((r = dp_vmm_socket_check(m->fds[0], why)) < 0)
                        return r;
                if (dev->backend_req_fd >= 0)
                        close(dev->backend_req_fd);
                dev->backend_req_fd = m->fds[0];
                m->fds[0] = -1;
                return 0;
        case SET_STATUS:
                if ((r = need_size(m, 8, why)) < 0)
                        return r;
                memcpy(&v, m->payload, 8);
                if (v > 0xff) {
                        *why = "status beyond 8 bits";
                        return -EINVAL;
                }
                dev->status = (uint8_t)v;
                return 0;
        case GET_STATUS:
                *replied = true;
                return reply_u64(c, m, dev->status);
        case GET_CONFIG:
                *replied = true;
                return get_config(dev, c, m, why);
        case GET_INFLIGHT_FD:
                *replied = true;
                return get_inflight_fd(dev, c, m, why);
        case SET_INFLIGHT_FD:
                return set_inflight_fd(dev, m, why);
        case SET_CONFIG:
                /* writeback and the other writable fields are not offered */
                *why = "the config space is read-only";
                return -EPERM;
        default:
                *why = "request not supported by this back end";
                return -EOPNOTSUPP;
        }
}

static bool request_has_reply(const struct dp_device *dev, uint32_t request)
{
        return request == GET_FEATURES || request == GET_PROTOCOL_FEATURES || request == GET_VRING_BASE ||
               request == GET_QUEUE_NUM || request == GET_STATUS || request == GET_CONFIG || request == GET_INFLIGHT_FD ||
               (request == SET_LOG_BASE && (dev->protocol_features & BIT(PF_LOG_SHMFD)));
}

static void conn_free(struct dp_user *dp, struct dp_conn *c)
{
        epoll_ctl(dp->ctl_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        close_fds(c->fds, c->nfds);
        free(c);
}

void dp_device_disconnect(struct dp_user *dp, struct dp_device *dev, const char *reason)
{
        struct dp_conn *c = dev->conn;

        if (!c)
                return;
        log_info("VM %u device %s: front end disconnected (%s); rings stopped, waiting for a reconnect", dev->vm_id,
                 dev->id, reason);
        dev->conn = NULL;
        atomic_store(&dev->connected, false);
        reset_device(dev);
        conn_free(dp, c);
        dp_device_put(dev);     /* the connection's reference */
}

static void disconnect(struct dp_user *dp, struct dp_device *dev, const char *reason)
{
        dp_device_disconnect(dp, dev, reason);
}

/* Processes complete messages in the buffer. False when the connection must close. */
static bool process(struct dp_user *dp, struct dp_conn *c)
{
        struct dp_device *dev = c->dev;
        struct msg m;
        const char *why = NULL;
        bool replied;
        int r;

        memcpy(&m.request, c->buf, 4);
        memcpy(&m.flags, c->buf + 4, 4);
        memcpy(&m.size, c->buf + 8, 4);
        m.payload = c->buf + HDR_SIZE;
        m.fds = c->fds;
        m.nfds = c->nfds;
        if ((m.flags & 0x3) != FLAG_VERSION) {
                log_warning("VM %u device %s: vhost-user message with version %u; closing the connection", dev->vm_id,
                            dev->id, m.flags & 0x3);
                return false;
        }
        r = handle(c, &m, &replied, &why);
        close_fds(c->fds, c->nfds);     /* whatever the handler did not keep */
        c->nfds = 0;
        if (r == -EPIPE)
                return false;
        if (r < 0)
                log_warning("VM %u device %s: %s (%u) rejected: %s", dev->vm_id, dev->id, request_name(m.request),
                            m.request, why ? why : strerror(-r));
        else
                log_debug("VM %u device %s: %s", dev->vm_id, dev->id, request_name(m.request));
        if (!replied && (m.flags & FLAG_NEED_REPLY) && (dev->protocol_features & BIT(PF_REPLY_ACK)))
                return reply_u64(c, &m, r < 0 ? 1 : 0) == 0;
        /* a failed request the front end waits an answer for cannot be answered properly */
        if (r < 0 && request_has_reply(dev, m.request) && !replied)
                return false;
        return true;
}

static void on_readable(struct dp_user *dp, struct dp_conn *c)
{
        struct dp_device *dev = c->dev;

        for (;;) {
                char cbuf[CMSG_SPACE(sizeof(int) * MAX_FDS * 2)];
                struct msghdr mh = { 0 };
                struct iovec iov;
                size_t want;
                uint32_t size = 0;
                ssize_t n;

                if (c->have < HDR_SIZE) {
                        want = HDR_SIZE - c->have;
                } else {
                        memcpy(&size, c->buf + 8, 4);
                        if (size > MAX_PAYLOAD) {
                                log_warning("VM %u device %s: vhost-user payload of %u bytes is over the %u limit; closing",
                                            dev->vm_id, dev->id, size, MAX_PAYLOAD);
                                disconnect(dp, dev, "oversized message");
                                return;
                        }
                        want = HDR_SIZE + size - c->have;
                }
                if (want == 0)
                        goto complete;
                iov = (struct iovec){ c->buf + c->have, want };
                mh.msg_iov = &iov;
                mh.msg_iovlen = 1;
                mh.msg_control = cbuf;
                mh.msg_controllen = sizeof(cbuf);
                n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n <= 0) {
                        disconnect(dp, dev, n == 0 ? "closed" : strerror(errno));
                        return;
                }
                for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                                continue;
                        unsigned k = (unsigned)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                        int *fds = (int *)CMSG_DATA(cm);
                        for (unsigned i = 0; i < k; i++) {
                                if (c->nfds < MAX_FDS)
                                        c->fds[c->nfds++] = fds[i];
                                else
                                        close(fds[i]);
                        }
                        if (c->nfds == MAX_FDS && k > MAX_FDS)
                                goto flood;
                }
                if (mh.msg_flags & MSG_CTRUNC)
                        goto flood;
                c->have += (size_t)n;
                if (c->have < HDR_SIZE)
                        continue;
                memcpy(&size, c->buf + 8, 4);
                if (size <= MAX_PAYLOAD && c->have < HDR_SIZE + size)
                        continue;
                if (size > MAX_PAYLOAD)
                        continue;       /* reported at the top of the loop */
complete:
                if (!process(dp, c)) {
                        disconnect(dp, dev, "protocol error");
                        return;
                }
                c->have = 0;
        }
flood:
        log_warning("VM %u device %s: too many file descriptors in one message; closing", dev->vm_id, dev->id);
        disconnect(dp, dev, "file descriptor flood");
}

/* Whether the connecting process is the VMM this device expects (SO_PEERCRED). Root may
 * always connect: it could take the socket over by other means anyway. */
static bool peer_allowed(struct dp_device *dev, int fd)
{
        struct ucred cr;
        socklen_t len = sizeof(cr);

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
                log_warning("VM %u device %s: cannot read the peer's credentials: %m; refusing it", dev->vm_id, dev->id);
                return false;
        }
        if (cr.uid == 0 || ((dev->peer_uid == (uid_t)-1 || cr.uid == dev->peer_uid) &&
                            (dev->peer_gid == (gid_t)-1 || cr.gid == dev->peer_gid)))
                return true;
        log_warning("VM %u device %s: refusing a front end on %s: pid %d runs as uid %u gid %u, the VM's VMM as uid %d gid %d",
                    dev->vm_id, dev->id, dev->socket_path, (int)cr.pid, (unsigned)cr.uid, (unsigned)cr.gid,
                    dev->peer_uid == (uid_t)-1 ? -1 : (int)dev->peer_uid,
                    dev->peer_gid == (gid_t)-1 ? -1 : (int)dev->peer_gid);
        return false;
}

/* The front end of c hung up, and its end of stream is still waiting to be read. */
static bool conn_gone(const struct dp_conn *c)
{
        struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };

        return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* dp->lock held; accept4, getsockopt and a zero-timeout poll do not wait. */
static void on_accept(struct dp_user *dp, struct dp_device *dev) DP_REQUIRES(dp->lock)
{
        struct epoll_event ev = { .events = EPOLLIN };
        struct dp_conn *c;
        int fd;

        /* a VMM that restarts connects again before we read its old connection's end:
         * leave the new one in the backlog until the old one is dropped (the listening
         * socket stays readable, so this comes back in the next round) */
        if (dev->conn && conn_gone(dev->conn))
                return;
        fd = accept4(dev->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0)
                return;
        if (!peer_allowed(dev, fd)) {
                close(fd);
                return;
        }
        if (dev->conn) {
                log_warning("VM %u device %s: refusing a second front end on %s", dev->vm_id, dev->id,
                            dev->socket_path);
                close(fd);
                return;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                close(fd);
                return;
        }
        c->dev = dev;
        c->fd = fd;
        c->id = next_id++;
        ev.data.u64 = c->id;
        if (epoll_ctl(dp->ctl_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                close(fd);
                free(c);
                return;
        }
        dp_device_get(dev);     /* the connection's */
        dev->conn = c;
        atomic_store(&dev->connected, true);
        log_info("VM %u device %s: front end connected on %s", dev->vm_id, dev->id, dev->socket_path);
}

/* Drops the front ends of devices the daemon removed, and their last list reference. */
static void close_removed(struct dp_user *dp)
{
        struct dp_device *list;

        dp_mutex_lock(&dp->lock);
        list = dp->closing;
        dp->closing = NULL;
        dp_mutex_unlock(&dp->lock);
        while (list) {
                struct dp_device *d = list;
                list = d->close_next;
                dp_device_disconnect(dp, d, "device removed");
                dp_device_put(d);
        }
}

static void handle_event(struct dp_user *dp, uint64_t id)
{
        struct dp_device *dev = NULL;

        dp_mutex_lock(&dp->lock);
        for (struct dp_device *d = dp->devices; d; d = d->next) {
                if (d->conn && d->conn->id == id) {
                        dev = d;
                        dp_device_get(dev);
                        break;
                }
                if (d->listen_fd >= 0 && d->listen_id == id) {
                        on_accept(dp, d);
                        break;
                }
        }
        dp_mutex_unlock(&dp->lock);
        if (!dev)
                return;
        /* without dp->lock: the daemon thread never waits for a front end's messages */
        on_readable(dp, dev->conn);
        if (dev->conn)
                flush_errors(dev);
        dp_device_put(dev);
}

static void *ctl_main(void *arg)
{
        struct dp_user *dp = arg;
        struct epoll_event ev[32];

        dp_watch_enter(dp, &dp->ctl_watch, "vhost-user control thread");
        while (!atomic_load(&dp->ctl_stop)) {
                int n = epoll_wait(dp->ctl_epfd, ev, 32, -1);

                atomic_fetch_add(&dp->ctl_epoch, 1);    /* odd: handling events */
                for (int i = 0; i < n; i++) {
                        uint64_t id = ev[i].data.u64, v;

                        if (id == 0) {
                                eventfd_read(dp->ctl_wake_fd, &v);
                                continue;
                        }
                        handle_event(dp, id);
                }
                close_removed(dp);
                atomic_fetch_add(&dp->ctl_epoch, 1);
        }
        dp_watch_leave(dp, &dp->ctl_watch);
        return NULL;
}

int dp_ctl_start(struct dp_user *dp)
{
        struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };

        dp->ctl_epfd = epoll_create1(EPOLL_CLOEXEC);
        dp->ctl_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (dp->ctl_epfd < 0 || dp->ctl_wake_fd < 0 || epoll_ctl(dp->ctl_epfd, EPOLL_CTL_ADD, dp->ctl_wake_fd, &ev) < 0)
                return -errno;
        return -pthread_create(&dp->ctl_thread, NULL, ctl_main, dp);
}

void dp_ctl_stop(struct dp_user *dp)
{
        atomic_store(&dp->ctl_stop, true);
        eventfd_write(dp->ctl_wake_fd, 1);
        pthread_join(dp->ctl_thread, NULL);
        close(dp->ctl_epfd);
        close(dp->ctl_wake_fd);
}

/* vhost-user sockets must be reachable by the VMM: libvirt runs QEMU as libvirt-qemu. */
static void give_socket_to_vmm(const char *path)
{
        static const char *const groups[] = { "libvirt-qemu", "kvm" };

        for (size_t i = 0; i < 2; i++) {
                struct group *g = getgrnam(groups[i]);
                if (g && chown(path, (uid_t)-1, g->gr_gid) == 0)
                        return;
        }
}

/* Makes room for our socket: nothing there, or a socket this data plane created earlier
 * (its ledger, by device and inode). Never another program's socket, never a file. */
static int claim_path(struct dp_user *dp, struct dp_device *dev) DP_REQUIRES(dp->lock)
{
        struct stat st;

        if (lstat(dev->socket_path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode)) {
                log_error("VM %u device %s: %s exists and is not a socket; refusing to replace it", dev->vm_id, dev->id,
                          dev->socket_path);
                return -EEXIST;
        }
        if (!dp_ledger_owns(dp, dev->socket_path, (uint64_t)st.st_dev, (uint64_t)st.st_ino)) {
                log_error("VM %u device %s: %s is a socket ELVIS did not create; refusing to replace it", dev->vm_id,
                          dev->id, dev->socket_path);
                return -EEXIST;
        }
        /* ours, left by an earlier run or device */
        if (unlink(dev->socket_path) < 0 && errno != ENOENT)
                return -errno;
        dp_ledger_del(dp, dev->socket_path);
        return 0;
}

int dp_device_listen(struct dp_user *dp, struct dp_device *dev)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct epoll_event ev = { .events = EPOLLIN };
        struct stat st;
        mode_t old;
        int fd, r;

        if (strlen(dev->socket_path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        r = claim_path(dp, dev);
        if (r < 0)
                return r;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        memcpy(sa.sun_path, dev->socket_path, strlen(dev->socket_path) + 1);
        old = umask(0117);
        r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r < 0) {
                r = -errno;
                log_error("VM %u device %s: cannot bind %s: %s", dev->vm_id, dev->id, dev->socket_path, strerror(-r));
                close(fd);
                return r;
        }
        if (listen(fd, 4) < 0 || lstat(dev->socket_path, &st) < 0) {
                r = -errno;
                log_error("VM %u device %s: cannot listen on %s: %s", dev->vm_id, dev->id, dev->socket_path,
                          strerror(-r));
                unlink(dev->socket_path);       /* just bound by us */
                close(fd);
                return r;
        }
        dev->sock_dev = (uint64_t)st.st_dev;
        dev->sock_ino = (uint64_t)st.st_ino;
        dp_ledger_add(dp, dev->socket_path, dev->sock_dev, dev->sock_ino);
        give_socket_to_vmm(dev->socket_path);
        dev->listen_fd = fd;
        dev->listen_id = next_id++;
        ev.data.u64 = dev->listen_id;
        if (epoll_ctl(dp->ctl_epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                r = -errno;
                dp_device_close_listener(dp, dev);
                return r;
        }
        return 0;
}

void dp_device_close_listener(struct dp_user *dp, struct dp_device *dev)
{
        struct stat st;

        if (dev->listen_fd < 0)
                return;
        epoll_ctl(dp->ctl_epfd, EPOLL_CTL_DEL, dev->listen_fd, NULL);
        close(dev->listen_fd);
        dev->listen_fd = -1;
        /* only the very socket we bound: the path may have been replaced meanwhile */
        if (lstat(dev->socket_path, &st) == 0 && (uint64_t)st.st_dev == dev->sock_dev &&
            (uint64_t)st.st_ino == dev->sock_ino)
                unlink(dev->socket_path);
        dp_ledger_del(dp, dev->socket_path);
}
