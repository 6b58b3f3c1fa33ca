/* virtio-net on top of the engine: transmit (guest -> tap or loopback), receive
 * (tap or loopback -> guest, with mergeable buffers), notifications and ring errors. */
#include "dp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define TX_BATCH 32
#define NUM_BUFFERS_OFF 10

uint64_t dp_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned hdr_len(const struct dp_device *dev)
{
        return dev->features & (BIT(F_VERSION_1) | BIT(F_MRG_RXBUF)) ? 12 : 10;
}

/* One fd per queue pair. Unless the device adopts an existing interface, the first open
 * must create it (IFF_TUN_EXCL): attaching to someone else's tap, multiqueue or not, would
 * hand their traffic to this VM. The other queues attach to the interface just made. */
int dp_tap_open(struct dp_device *dev)
{
        int r = 0;

        for (unsigned i = 0; i < dev->nqp && r == 0; i++) {
                struct ifreq ifr = { 0 };
                int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC), hdr = DP_HDR_LEN;

                if (fd < 0) {
                        r = -errno;
                        break;
                }
                ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (dev->nqp > 1 ? IFF_MULTI_QUEUE : 0);
                if (i == 0 && !dev->tap_adopt)
                        ifr.ifr_flags |= IFF_TUN_EXCL;
                memcpy(ifr.ifr_name, dev->tap, strlen(dev->tap) + 1);
                if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
                        r = errno == EBUSY && i == 0 && !dev->tap_adopt ? -EEXIST : -errno;
                        close(fd);
                        break;
                }
                /* TUNSETIFF may hand back another name if ours was a template */
                if (strcmp(ifr.ifr_name, dev->tap) != 0) {
                        close(fd);
                        r = -EINVAL;
                        break;
                }
                dev->qp[i].tap_fd = fd;
        }
        if (r == 0)
                return 0;
        if (r == -EEXIST)
                log_error("VM %u device %s: interface '%s' already exists and the device does not adopt it", dev->vm_id,
                          dev->id, dev->tap);
        else
                log_error("VM %u device %s: cannot open tap '%s': %s", dev->vm_id, dev->id, dev->tap, strerror(-r));
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

void dp_vq_init(struct dp_vq *vq)
{
        memset(vq, 0, sizeof(*vq));
        vq->kick_fd = vq->call_fd = vq->err_fd = -1;
}

void dp_vq_reset(struct dp_vq *vq)
{
        int fds[3] = { vq->kick_fd, vq->call_fd, vq->err_fd };

        for (int i = 0; i < 3; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        dp_vq_init(vq);
}

static int vring_init_guarded(struct dp_qp *qp, struct dp_vq *vq, const char **why)
{
        struct dp_device *dev = qp->dev;
        struct dp_guard *g = &dp_guard_tls;
        int r;

        /* the ring's used index is read from guest memory, which may have shrunk */
        g->dev = dev;
        if (sigsetjmp(g->jb, 0)) {
                *why = "guest memory vanished under the ring (SIGBUS)";
                return -EFAULT;
        }
        g->armed = 1;
        r = elvis_vring_init(&vq->vr, &dev->mem, vq->num, vq->desc_addr, vq->avail_addr, vq->used_addr, vq->base,
                             dev->features & BIT(F_EVENT_IDX), dev->features & BIT(F_INDIRECT_DESC), why);
        if (r == 0 && qp->mode == QP_POLL)
                elvis_vring_notify_disable(&vq->vr);
        g->armed = 0;
        return r;
}

void dp_vq_refresh(struct dp_qp *qp, struct dp_vq *vq)
{
        struct dp_device *dev = qp->dev;
        bool want = vq->started && vq->enabled && vq->addr_set && vq->num && dev->mem.nregions;
        const char *why = "";
        int r;

        if (!want) {
                if (vq->live)
                        vq->base = vq->vr.last_avail_idx;
                vq->live = false;
                atomic_fetch_add(&qp->gen, 1);
                dp_qp_publish(qp);
                return;
        }
        /* keep the position of a running ring across memory table changes */
        if (vq->live)
                vq->base = vq->vr.last_avail_idx;
        r = vring_init_guarded(qp, vq, &why);
        if (r < 0) {
                log_warning("VM %u device %s queue %u: ring rejected: %s", dev->vm_id, dev->id, qp->index, why);
                vq->live = false;
                elvis_vring_fail(&vq->vr, r, why);
                dp_qp_error(qp, vq);
        } else {
                vq->live = true;
                vq->err_signalled = false;
        }
        atomic_fetch_add(&qp->gen, 1);
        dp_qp_publish(qp);
}

bool dp_qp_live(const struct dp_qp *qp)
{
        return qp->rx.live || qp->tx.live;
}

void dp_qp_publish(struct dp_qp *qp)
{
        unsigned pub = 0;

        if (dp_qp_live(qp))
                pub |= PUB_LIVE;
        if (qp->rx.vr.error || qp->tx.vr.error)
                pub |= PUB_ERROR;
        if (qp->mode == QP_POLL || (qp->tx.live && !qp->tx.vr.notify_enabled))
                pub |= PUB_POLLING;
        atomic_store_explicit(&qp->pub, pub, memory_order_relaxed);
}

/* A malformed ring stops that virtqueue only: error eventfd, counter, rate-limited log. */
void dp_qp_error(struct dp_qp *qp, struct dp_vq *vq)
{
        struct dp_device *dev = qp->dev;
        uint64_t now = dp_now_ns();

        vq->live = false;
        STAT_ADD(qp->st.errors, 1);
        if (!vq->err_signalled) {
                vq->err_signalled = true;
                atomic_fetch_or(&qp->signal, vq == &qp->rx ? SIG_ERR_RX : SIG_ERR_TX);
        }
        if (now - qp->err_log_ns > 1000000000ull || !qp->err_log_ns) {
                qp->err_log_ns = now;
                log_warning("VM %u device %s queue %u %s: ring error, queue stopped: %s (%s)", dev->vm_id, dev->id,
                            qp->index, vq == &qp->rx ? "rx" : "tx", vq->vr.error_what ? vq->vr.error_what : "?",
                            strerror(-vq->vr.error));
        }
        atomic_fetch_add(&qp->gen, 1);
        dp_qp_publish(qp);
}

void dp_qp_memory_fault(struct dp_qp *qp, const void *addr)
{
        struct dp_vq *vqs[2] = { &qp->rx, &qp->tx };

        (void)addr;
        qp->rxlen = 0;
        for (int i = 0; i < 2; i++) {
                if (!vqs[i]->live && vqs[i]->vr.error)
                        continue;
                elvis_vring_fail(&vqs[i]->vr, -EFAULT, "guest memory vanished under the ring (SIGBUS)");
                dp_qp_error(qp, vqs[i]);
        }
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
                                __atomic_fetch_add(&qp->st.interrupts, 1, __ATOMIC_RELAXED);
                        continue;
                }
                __atomic_fetch_add(&qp->st.signals_deferred, 1, __ATOMIC_RELAXED);
                if (r == -EAGAIN)
                        left |= bit;    /* the counter is full: retried at the next flush */
                else
                        atomic_store(&qp->vmm_fd_stuck, true);
        }
        if (left)
                atomic_fetch_or(&qp->signal, left);
}

struct cursor {
        const struct elvis_iov *iov;
        u32 n, i, off;
};

/* Copies up to len bytes from the cursor into a chain's writable segments. */
static u64 copy_into(struct cursor *src, const struct elvis_chain *dst, u64 len)
{
        u64 done = 0;
        u32 di = dst->nout, doff = 0;

        while (done < len && src->i < src->n && di < dst->nout + dst->nin) {
                u32 a = src->iov[src->i].len - src->off, b = dst->iov[di].len - doff;
                u64 chunk = a < b ? a : b;
                if (chunk > len - done)
                        chunk = len - done;
                memcpy((char *)dst->iov[di].base + doff, (const char *)src->iov[src->i].base + src->off, chunk);
                done += chunk;
                src->off += (u32)chunk;
                doff += (u32)chunk;
                if (src->off == src->iov[src->i].len) {
                        src->i++;
                        src->off = 0;
                }
                if (doff == dst->iov[di].len) {
                        di++;
                        doff = 0;
                }
        }
        return done;
}

/* Sets num_buffers (bytes 10-11 of the header) in the first buffer, wherever the guest
 * split it. */
static void set_num_buffers(const struct elvis_iov *iov, u32 n, u32 niov, u16 value)
{
        u8 bytes[2] = { (u8)(value & 0xff), (u8)(value >> 8) };
        u32 off = NUM_BUFFERS_OFF;

        for (u32 i = 0, k = 0; i < niov && k < 2; i++) {
                while (k < 2 && off < iov[i].len) {
                        ((volatile u8 *)iov[i].base)[off] = bytes[k++];
                        off++;
                }
                off -= iov[i].len;
        }
        (void)n;
}

/* Delivers one packet (virtio-net header included) to the guest's receive ring.
 * 1: delivered (or dropped because it can never fit); 0: no room now; <0: ring error. */
static int deliver(struct dp_qp *qp, const struct elvis_iov *src, u32 nsrc, u64 len)
{
        struct dp_device *dev = qp->dev;
        struct dp_vq *rx = &qp->rx;
        bool mrg = dev->features & BIT(F_MRG_RXBUF);
        struct cursor cur = { src, nsrc, 0, 0 };
        struct elvis_iov first[8];
        u32 nfirst = 0;
        u16 used = 0;
        u64 left = len;

        if (!rx->live) {
                STAT_ADD(qp->st.drops, 1);
                return 1;
        }
        while (left) {
                int r = elvis_vring_pop(&rx->vr, &qp->chain2, ELVIS_CHAIN_WRITE);
                u64 n;

                if (r < 0)
                        return r;
                if (r == 0) {
                        /* roll back: popped buffers return to the ring, unpublished used entries vanish */
                        elvis_vring_unpop(&rx->vr, used);
                        rx->vr.used_idx = (u16)(rx->vr.used_idx - used);
                        return 0;
                }
                if (!mrg && qp->chain2.in_len < len) {
                        elvis_vring_unpop(&rx->vr, 1);
                        STAT_ADD(qp->st.drops, 1);
                        return 1;
                }
                if (used == 0) {
                        nfirst = qp->chain2.nin < 8 ? qp->chain2.nin : 8;
                        memcpy(first, &qp->chain2.iov[qp->chain2.nout], nfirst * sizeof(first[0]));
                }
                n = copy_into(&cur, &qp->chain2, left);
                left -= n;
                used++;
                if (elvis_vring_push(&rx->vr, qp->chain2.head, (u32)n) < 0)
                        return rx->vr.error;
                if (n == 0 && left) {   /* a zero-sized receive buffer: nothing fits, ever */
                        STAT_ADD(qp->st.drops, 1);
                        return 1;
                }
        }
        if (hdr_len(dev) == 12)
                set_num_buffers(first, 0, nfirst, mrg ? used : 1);
        return 1;
}

static struct iovec *iovecs(struct dp_qp *qp)
{
        static __thread struct iovec v[ELVIS_CHAIN_MAX_IOV];
        (void)qp;
        return v;
}

/* Publishes the used ring; the interrupt the guest asked for is owed, written by the
 * server once qp->lock is released. */
static void signal_guest(struct dp_qp *qp, struct dp_vq *vq)
{
        if (!vq->live || elvis_vring_publish(&vq->vr) < 0)
                return;
        if (elvis_vring_need_signal(&vq->vr))
                atomic_fetch_or(&qp->signal, vq == &qp->rx ? SIG_CALL_RX : SIG_CALL_TX);
}

/* The null back end reads each frame, as a real back end copies it into an skb or a
 * NIC buffer, then drops it: benchmarks then pay for touching the data, not only for
 * moving ring indexes. */
static void sink_read(const struct elvis_chain *c)
{
        static __thread u8 sink[65536];
        size_t off = 0;

        for (u32 i = 0; i < c->nout && off < sizeof(sink); i++) {
                size_t n = c->iov[i].len < sizeof(sink) - off ? c->iov[i].len : sizeof(sink) - off;
                ev_copy_from(sink + off, c->iov[i].base, n);
                off += n;
        }
}

static unsigned tx_batch(struct dp_qp *qp, unsigned limit, int64_t *bytes)
{
        struct dp_vq *tx = &qp->tx;
        struct dp_device *dev = qp->dev;
        unsigned n = 0;

        while (n < limit && *bytes > 0 && tx->live) {
                int r = elvis_vring_pop(&tx->vr, &qp->chain, ELVIS_CHAIN_READ);
                u64 len;

                if (r <= 0) {
                        if (r < 0)
                                dp_qp_error(qp, tx);
                        break;
                }
                len = qp->chain.out_len;
                if (len < hdr_len(dev)) {
                        STAT_ADD(qp->st.drops, 1);
                } else if (qp->dev->backend == ELVIS_BACKEND_NULL) {
                        sink_read(&qp->chain);
                } else if (qp->tap_fd >= 0) {
                        struct iovec *v = iovecs(qp);
                        ssize_t w;
                        for (u32 i = 0; i < qp->chain.nout; i++)
                                v[i] = (struct iovec){ qp->chain.iov[i].base, qp->chain.iov[i].len };
                        w = writev(qp->tap_fd, v, (int)qp->chain.nout);
                        if (w < 0 && errno == EAGAIN) {
                                elvis_vring_unpop(&tx->vr, 1);
                                qp->tx_blocked = true;
                                break;
                        }
                        if (w < 0)
                                STAT_ADD(qp->st.drops, 1);
                } else {
                        r = deliver(qp, qp->chain.iov, qp->chain.nout, len);
                        if (r == 0) {
                                /* loopback: wait for receive buffers rather than drop */
                                elvis_vring_unpop(&tx->vr, 1);
                                qp->rx_blocked = true;
                                break;
                        }
                        if (r < 0) {
                                dp_qp_error(qp, &qp->rx);
                                elvis_vring_unpop(&tx->vr, 1);
                                break;
                        }
                        STAT_ADD(qp->st.rx_packets, 1);
                        STAT_ADD(qp->st.rx_bytes, len - hdr_len(dev));
                }
                if (elvis_vring_push(&tx->vr, qp->chain.head, 0) < 0) {
                        dp_qp_error(qp, tx);
                        break;
                }
                STAT_ADD(qp->st.tx_packets, 1);
                STAT_ADD(qp->st.tx_bytes, len > hdr_len(dev) ? len - hdr_len(dev) : 0);
                *bytes -= (int64_t)len;
                n++;
        }
        return n;
}

static unsigned rx_batch(struct dp_qp *qp, unsigned limit, int64_t *bytes)
{
        struct dp_vq *rx = &qp->rx;
        unsigned n = 0;

        if (qp->tap_fd < 0)
                return 0;
        while (n < limit && *bytes > 0 && rx->live) {
                struct elvis_iov one;
                int r;

                if (!qp->rxlen) {
                        ssize_t got;
                        if (!qp->rxbuf && !(qp->rxbuf = malloc(DP_MAX_PACKET)))
                                break;
                        got = read(qp->tap_fd, qp->rxbuf, DP_MAX_PACKET);
                        if (got < 0)
                                break;
                        if ((size_t)got < hdr_len(qp->dev)) {
                                STAT_ADD(qp->st.drops, 1);
                                continue;
                        }
                        qp->rxlen = (size_t)got;
                }
                one = (struct elvis_iov){ qp->rxbuf, (u32)qp->rxlen };
                r = deliver(qp, &one, 1, qp->rxlen);
                if (r == 0) {
                        qp->rx_blocked = true;
                        break;
                }
                if (r < 0) {
                        dp_qp_error(qp, rx);
                        break;
                }
                STAT_ADD(qp->st.rx_packets, 1);
                STAT_ADD(qp->st.rx_bytes, qp->rxlen - hdr_len(qp->dev));
                *bytes -= (int64_t)qp->rxlen;
                qp->rxlen = 0;
                n++;
        }
        return n;
}

unsigned dp_qp_process(struct dp_qp *qp, int64_t *budget_packets, int64_t *budget_bytes)
{
        unsigned total = 0;

        qp->rx_blocked = false;
        qp->tx_blocked = false;
        while (*budget_packets > 0 && *budget_bytes > 0) {
                unsigned limit = *budget_packets < TX_BATCH ? (unsigned)*budget_packets : TX_BATCH, n;

                n = tx_batch(qp, limit, budget_bytes);
                n += rx_batch(qp, limit, budget_bytes);
                *budget_packets -= n;
                total += n;
                if (n == 0)
                        break;
        }
        signal_guest(qp, &qp->tx);
        signal_guest(qp, &qp->rx);
        return total;
}
