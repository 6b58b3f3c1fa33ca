/* The user-space port of the virtio-net device model (engine/elvis_net.h): the back ends
 * (tap, null sink, loopback), notifications owed to the guest, ring set-up from the
 * vhost-user configuration under a SIGBUS guard, and what observers see. */
#include "dp.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>


uint64_t dp_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned hdr_len(const struct dp_device *dev)
{
        return dev->features & (BIT(F_VERSION_1) | BIT(F_MRG_RXBUF)) ? ELVIS_NET_HDR_LEN_MRG : ELVIS_NET_HDR_LEN;
}

_Static_assert(DP_HDR_LEN == ELVIS_TAP_HDR_LEN, "a tap opened elsewhere starts with the header we expect");

static int tap_rxbufs(struct dp_device *dev)
{
        for (unsigned i = 0; i < dev->nqp; i++)
                if (!dev->qp[i].q.rxbuf && !(dev->qp[i].q.rxbuf = malloc(ELVIS_NET_MAX_FRAME)))
                        return -ENOMEM;
        return 0;
}

/* One fd per queue pair (tap.c says who may create the interface). */
int dp_tap_open(struct dp_device *dev)
{
        int fds[ELVIS_MAX_QUEUES], r = elvis_tap_open(dev->tap, dev->nqp, dev->tap_adopt, fds);

        for (unsigned i = 0; r == 0 && i < dev->nqp; i++)
                dev->qp[i].tap_fd = fds[i];
        if (r == 0 && (r = tap_rxbufs(dev)) == 0)
                return 0;
        if (r == -EEXIST)
                log_error("VM %u device %s: interface '%s' already exists and the device does not adopt it", dev->vm_id,
                          dev->id, dev->tap);
        else
                log_error("VM %u device %s: cannot open tap '%s': %s", dev->vm_id, dev->id, dev->tap, strerror(-r));
        dp_tap_close(dev);
        return r;
}

/* Queues another process opened (elvis-manager, for elvis-dataplane): checked, and
 * duplicated, so the caller keeps and closes its own. */
int dp_tap_take(struct dp_device *dev, const int *fds)
{
        const char *why = NULL;
        int r = 0;

        for (unsigned i = 0; i < dev->nqp && r == 0; i++) {
                if ((r = elvis_tap_check_fd(fds[i], dev->tap, dev->nqp, &why)) < 0)
                        break;
                int fd = fcntl(fds[i], F_DUPFD_CLOEXEC, 3), fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);

                dev->qp[i].tap_fd = fd;
                if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
                        r = -errno;
                        why = strerror(errno);
                }
        }
        if (r == 0 && (r = tap_rxbufs(dev)) == 0)
                return 0;
        log_error("VM %u device %s: refusing the fds passed for tap '%s': %s", dev->vm_id, dev->id, dev->tap,
                  why ? why : strerror(-r));
        dp_tap_close(dev);
        return r;
}

void dp_tap_close(struct dp_device *dev)
{
        for (unsigned i = 0; i < ELVIS_MAX_QUEUES; i++)
                if (dev->qp[i].tap_fd >= 0) {
                        close(dev->qp[i].tap_fd);
                        dev->qp[i].tap_fd = -1;
                }
}

/* The tap's vnet header size and offloads follow what the guest acked: the header
 * passes through unchanged, so checksum and segmentation offloads do too. */
void dp_tap_configure(struct dp_device *dev)
{
        int hdr = (int)hdr_len(dev);
        unsigned off = 0;

        if (dev->features & BIT(F_GUEST_CSUM)) {
                off |= TUN_F_CSUM;
                if (dev->features & BIT(F_GUEST_TSO4))
                        off |= TUN_F_TSO4;
                if (dev->features & BIT(F_GUEST_TSO6))
                        off |= TUN_F_TSO6;
                if (dev->features & BIT(F_GUEST_ECN))
                        off |= TUN_F_TSO_ECN;
        }
        for (unsigned i = 0; i < dev->nqp; i++) {
                if (dev->qp[i].tap_fd < 0)
                        continue;
                if (ioctl(dev->qp[i].tap_fd, TUNSETVNETHDRSZ, &hdr) < 0 ||
                    ioctl(dev->qp[i].tap_fd, TUNSETOFFLOAD, off) < 0)
                        log_warning("VM %u device %s: tap '%s' rejected header size %d / offloads %#x: %m", dev->vm_id,
                                    dev->id, dev->tap, hdr, off);
        }
}

static void vq_init(struct dp_vq *vq, struct elvis_qvq *ring)
{
        vq->ring = ring;
        vq->started = vq->enabled = false;
        vq->kick_fd = vq->call_fd = vq->err_fd = -1;
}

void dp_qp_init(struct dp_device *dev, struct dp_qp *qp, unsigned index)
{
        qp->dev = dev;
        qp->index = index;
        qp->tap_fd = -1;
        qp->q.mem = &dev->mem;
        elvis_netq_reset(&qp->q);
        vq_init(&qp->rx, &qp->q.vq[ELVIS_NETQ_RX]);
        vq_init(&qp->tx, &qp->q.vq[ELVIS_NETQ_TX]);
}

void dp_qp_reset(struct dp_qp *qp)
{
        struct dp_vq *vqs[2] = { &qp->rx, &qp->tx };

        for (int i = 0; i < 2; i++) {
                int fds[3] = { vqs[i]->kick_fd, vqs[i]->call_fd, vqs[i]->err_fd };

                for (int k = 0; k < 3; k++)
                        if (fds[k] >= 0)
                                close(fds[k]);
                vq_init(vqs[i], vqs[i]->ring);
        }
        elvis_netq_reset(&qp->q);
        if (qp->bq)
                elvis_blkq_reset(&qp->bq->q);
}

static struct dp_qp *qp_of(struct elvis_netq *q)
{
        return (struct dp_qp *)((char *)q - offsetof(struct dp_qp, q));
}

static int vq_index(const struct dp_qp *qp, const struct dp_vq *vq)
{
        return vq == &qp->rx ? ELVIS_NETQ_RX : ELVIS_NETQ_TX;
}

static int refresh_guarded(struct dp_qp *qp, int i, bool want, const char **why)
{
        struct dp_guard *g = &dp_guard_tls;
        int r;

        /* the ring's used index is read from guest memory, which may have shrunk */
        g->dev = qp->dev;
        if (sigsetjmp(g->jb, 0)) {
                *why = "guest memory vanished under the ring (SIGBUS)";
                qp->q.vq[i].live = false;
                return elvis_vring_fail(&qp->q.vq[i].vr, -EFAULT, *why);
        }
        g->armed = 1;
        r = elvis_netq_refresh(&qp->q, i, want, why);
        g->armed = 0;
        return r;
}

void dp_vq_refresh(struct dp_qp *qp, struct dp_vq *vq)
{
        struct dp_device *dev = qp->dev;
        struct elvis_qvq *ring = vq->ring;
        bool want = vq->started && vq->enabled && ring->addr_set && ring->num && dev->mem.nregions;
        const char *why = "";
        int i = vq_index(qp, vq);

        dp_assert_held(&qp->lock);

        if (qp->bq) {
                /* a blk virtqueue has only its TX place */
                if (vq != &qp->tx)
                        return;
                dp_blk_vq_refresh(qp, want);
                atomic_fetch_add(&qp->gen, 1);
                dp_qp_publish(qp);
                return;
        }
        qp->q.features = dev->features;
        if (refresh_guarded(qp, i, want, &why) < 0) {
                log_warning("VM %u device %s queue %u: ring rejected: %s", dev->vm_id, dev->id, qp->index, why);
                elvis_netq_error(&qp->q, i);
        }
        atomic_fetch_add(&qp->gen, 1);
        dp_qp_publish(qp);
}

bool dp_qp_live(const struct dp_qp *qp)
{
        return qp->bq ? elvis_blkq_live(&qp->bq->q) : elvis_netq_live(&qp->q);
}

const struct elvis_sched *dp_qp_sched(const struct dp_qp *qp)
{
        return qp->bq ? &qp->bq->q.sched : &qp->q.sched;
}

const struct elvis_qstats *dp_qp_stats(const struct dp_qp *qp)
{
        return qp->bq ? &qp->bq->q.st : &qp->q.st;
}

u32 dp_qp_ring_cap(const struct dp_qp *qp)
{
        return qp->bq ? elvis_blkq_ring_cap(&qp->bq->q) : elvis_netq_ring_cap(&qp->q);
}

void dp_qp_publish(struct dp_qp *qp)
{
        const struct elvis_qvq *tx = &qp->q.vq[ELVIS_NETQ_TX];
        unsigned pub = 0;

        if (qp->bq) {
                const struct elvis_blkq *b = &qp->bq->q;

                pub = (b->vq.live ? PUB_LIVE : 0) | (b->vq.vr.error ? PUB_ERROR : 0) |
                      (b->sched.mode == ELVIS_TURN_POLL || (b->vq.live && !b->vq.vr.notify_enabled) ? PUB_POLLING : 0);
                atomic_store_explicit(&qp->pub, pub, memory_order_relaxed);
                return;
        }
        if (dp_qp_live(qp))
                pub |= PUB_LIVE;
        if (qp->q.vq[ELVIS_NETQ_RX].vr.error || tx->vr.error)
                pub |= PUB_ERROR;
        if (qp->q.sched.mode == ELVIS_NETQ_POLL || (tx->live && !tx->vr.notify_enabled))
                pub |= PUB_POLLING;
        atomic_store_explicit(&qp->pub, pub, memory_order_relaxed);
}

void dp_qp_memory_fault(struct dp_qp *qp)
{
        if (qp->bq) {
                elvis_blkq_fail(&qp->bq->q, -EFAULT, "guest memory vanished under the ring (SIGBUS)");
                return;
        }
        elvis_netq_fail(&qp->q, -EFAULT, "guest memory vanished under the ring (SIGBUS)");
}

void dp_qp_flush_signals(struct dp_qp *qp, const int fds[4])
{
        unsigned owed = atomic_exchange(&qp->signal, 0), left = 0;

        for (unsigned i = 0; i < 4; i++) {
                unsigned bit = 1u << i;
                int r;

                if (!(owed & bit))
                        continue;
                if (fds[i] < 0)
                        continue;       /* nobody to tell (no fd yet): nothing is owed */
                r = dp_vmm_signal(fds[i]);
                if (r == 0) {
                        if (bit & (SIG_CALL_RX | SIG_CALL_TX))
                                STAT_ADD(qp->st.interrupts, 1);
                        continue;
                }
                STAT_ADD(qp->st.signals_deferred, 1);
                if (r == -EAGAIN)
                        left |= bit;    /* the counter is full: retried at the next flush */
                else
                        atomic_store(&qp->vmm_fd_stuck, true);
        }
        if (left)
                atomic_fetch_or(&qp->signal, left);
}

/* ---- the port ---- */

u64 elvis_netq_port_now(void)
{
        return dp_now_ns();
}

/* Written by the server once qp->lock is released (dp_qp_flush_signals). */
void elvis_netq_port_notify(struct elvis_netq *q, unsigned int sig)
{
        dp_assert_held(&qp_of(q)->lock);
        atomic_fetch_or(&qp_of(q)->signal, sig);
}

/* A stopped ring: rate-limited log, and observers and servers see it. */
void elvis_netq_port_changed(struct elvis_netq *q, int stopped)
{
        struct dp_qp *qp = qp_of(q);
        struct dp_device *dev = qp->dev;

        dp_assert_held(&qp->lock);      /* the model runs under it */
        if (stopped >= 0) {
                const struct elvis_vring *vr = &q->vq[stopped].vr;
                uint64_t now = dp_now_ns();

                if (now - qp->err_log_ns > 1000000000ull || !qp->err_log_ns) {
                        qp->err_log_ns = now;
                        log_warning("VM %u device %s queue %u %s: ring error, queue stopped: %s (%s)", dev->vm_id,
                                    dev->id, qp->index, stopped == ELVIS_NETQ_RX ? "rx" : "tx",
                                    vr->error_what ? vr->error_what : "?", strerror(-vr->error));
                }
                atomic_fetch_add(&qp->gen, 1);
        }
        dp_qp_publish(qp);
}

/* The null back end reads each frame, as a real back end copies it into an skb or a
 * NIC buffer, then drops it: benchmarks then pay for touching the data, not only for
 * moving ring indexes. */
static __thread u8 sink[65536];

static __attribute__((noinline)) int sink_read_segments(const struct elvis_chain *c)
{
        size_t off = 0;

        for (u32 i = 0; i < c->nout && off < sizeof(sink); i++) {
                size_t n = c->iov[i].len < sizeof(sink) - off ? c->iov[i].len : sizeof(sink) - off;
                ev_copy_from(sink + off, c->iov[i].base, n);
                off += n;
        }
        return 0;
}

/* A frame in one segment (virtio-user and most drivers put the header in front of the
 * data) is one copy with no loop to set up. */
static inline int sink_read(const struct elvis_chain *c)
{
        if (ev_likely(c->nout == 1)) {
                ev_copy_from(sink, c->iov[0].base, c->iov[0].len < sizeof(sink) ? c->iov[0].len : sizeof(sink));
                return 0;
        }
        return sink_read_segments(c);
}

/* Loopback: the frame goes to the pair's own receive ring, through a bounce buffer
 * (receive and transmit buffers may overlap in guest memory). */
static __attribute__((noinline)) int loop_back(struct elvis_netq *q, const struct elvis_chain *c, u64 len)
{
        static __thread u8 frame[ELVIS_NET_MAX_FRAME];
        u64 off = 0;
        int r;

        for (u32 i = 0; i < c->nout; i++) {
                ev_copy_from(frame + off, c->iov[i].base, c->iov[i].len);
                off += c->iov[i].len;
        }
        r = elvis_netq_deliver(q, frame, (u32)len);
        if (r == 0)
                return -ENOSPC;
        if (r < 0) {
                elvis_netq_error(q, ELVIS_NETQ_RX);
                return r;
        }
        return 0;
}

static __attribute__((noinline)) int tap_write(struct elvis_netq *q, struct dp_qp *qp, const struct elvis_chain *c)
{
        static __thread struct iovec v[ELVIS_CHAIN_MAX_IOV];

        for (u32 i = 0; i < c->nout; i++)
                v[i] = (struct iovec){ c->iov[i].base, c->iov[i].len };
        if (writev(qp->tap_fd, v, (int)c->nout) < 0) {
                if (errno == EAGAIN)
                        return -EAGAIN;
                ev_stat_add(q->st.drops, 1);
        }
        return 0;
}

/* Per frame: a dispatch of tail calls, so the null sink pays for no register saves. */
int elvis_netq_port_xmit(struct elvis_netq *q, const struct elvis_chain *c, u64 len)
{
        struct dp_qp *qp = qp_of(q);

        if (qp->dev->backend == ELVIS_BACKEND_NULL)
                return sink_read(c);
        if (qp->tap_fd < 0)
                return loop_back(q, c, len);
        return tap_write(q, qp, c);
}

long elvis_netq_port_recv(struct elvis_netq *q, u8 *buf, u32 max)
{
        struct dp_qp *qp = qp_of(q);
        ssize_t got;

        if (qp->tap_fd < 0)
                return 0;
        got = read(qp->tap_fd, buf, max);
        return got < 0 ? 0 : got;
}
