/* The virtio-net device model shared by both data planes: see elvis_net.h. */
#include "elvis_net.h"

#define NUM_BUFFERS_OFF 10

static inline u64 min_u64(u64 a, u64 b)
{
        return a < b ? a : b;
}

unsigned int elvis_netq_hdr_len(const struct elvis_netq *q)
{
        return q->features & ((1ull << ELVIS_NET_FEAT_VERSION_1) | (1ull << ELVIS_NET_FEAT_MRG_RXBUF)) ?
                       ELVIS_NET_HDR_LEN_MRG : ELVIS_NET_HDR_LEN;
}

bool elvis_netq_live(const struct elvis_netq *q)
{
        return q->vq[ELVIS_NETQ_RX].live || q->vq[ELVIS_NETQ_TX].live;
}

void elvis_netq_reset(struct elvis_netq *q)
{
        memset(q->vq, 0, sizeof(q->vq));
        q->log.base = EV_UPTR_NULL;
        q->log.size = 0;
        q->features = 0;
        elvis_sched_reset(&q->sched);
        q->rx_blocked = q->tx_blocked = q->tx_waits_rx = false;
        q->faulted = false;
        q->tx_owed = false;
        q->rxlen = 0;
}

u32 elvis_netq_ring_cap(const struct elvis_netq *q)
{
        u32 num = 0;

        for (int i = 0; i < 2; i++)
                if (q->vq[i].live && (!num || q->vq[i].num < num))
                        num = q->vq[i].num;
        return num / 4 ? num / 4 : 1;
}

static unsigned int sig_call(int vq)
{
        return vq == ELVIS_NETQ_RX ? ELVIS_NETQ_SIG_CALL_RX : ELVIS_NETQ_SIG_CALL_TX;
}

void elvis_netq_error(struct elvis_netq *q, int vq)
{
        struct elvis_qvq *v = &q->vq[vq];

        v->live = false;
        ev_stat_add(q->st.errors, 1);
        /* observers see the ring stopped before the VMM hears of it */
        elvis_netq_port_changed(q, vq);
        if (!v->err_signalled) {
                v->err_signalled = true;
                elvis_netq_port_notify(q, vq == ELVIS_NETQ_RX ? ELVIS_NETQ_SIG_ERR_RX : ELVIS_NETQ_SIG_ERR_TX);
        }
}

void elvis_netq_fail(struct elvis_netq *q, int err, const char *what)
{
        q->rxlen = 0;
        for (int i = 0; i < 2; i++) {
                if (!q->vq[i].live && q->vq[i].vr.error)
                        continue;
                if (!q->vq[i].vr.error)
                        elvis_vring_fail(&q->vq[i].vr, err, what);
                elvis_netq_error(q, i);
        }
}

/* After an engine call on vq: true if it failed with faults off (the turn must stop and go
 * where faults may sleep), false if it succeeded or failed for real. */
static bool turn_fault(struct elvis_netq *q, int vq)
{
        struct elvis_vring *vr = &q->vq[vq].vr;

        if (!q->nofault || vr->error != -EFAULT)
                return false;
        vr->error = 0;
        vr->error_what = NULL;
        q->faulted = true;
        return true;
}

/* Guest kicks off. A write that faulted leaves the ring's record of what the guest sees as
 * it was, so the repeated turn writes it. */
static void notify_disable(struct elvis_netq *q, int vq)
{
        struct elvis_vring *vr = &q->vq[vq].vr;
        bool enabled = vr->notify_enabled;
        u16 written = vr->event_written;

        elvis_vring_notify_disable(vr);
        if (turn_fault(q, vq)) {
                vr->notify_enabled = enabled;
                vr->event_written = written;
        }
}

/* Guest kicks back on; true if buffers arrived meanwhile. The ring engine also answers
 * "nothing new" when it cannot read the avail index, which with faults off may only be an
 * absent page: ask again through a call that latches the failure, so that it is repeated
 * where faults may sleep instead of losing the wake-up. */
static bool notify_enable(struct elvis_netq *q, int vq)
{
        struct elvis_vring *vr = &q->vq[vq].vr;
        bool more = elvis_vring_notify_enable(vr);

        if (!more && q->nofault && !vr->error)
                more = elvis_vring_pending(vr) > 0;
        if (turn_fault(q, vq))
                return false;
        return more;
}

/* Publishes the used entries pushed so far and interrupts the guest if it wants. With
 * faults off, a used_event or flags word that cannot be read counts as "wants": a spurious
 * interrupt at worst, never a missing one. */
static void signal_guest(struct elvis_netq *q, int vq)
{
        struct elvis_qvq *v = &q->vq[vq];
        u16 before = v->vr.published_used;

        /* nothing pushed since the last publish: nothing to publish or signal */
        if (!v->live || v->vr.used_idx == before)
                return;
        if (elvis_vring_publish(&v->vr) < 0) {
                if (!turn_fault(q, vq))
                        elvis_netq_error(q, vq);
                return;
        }
        if (v->vr.published_used != before && elvis_vring_need_signal(&v->vr))
                elvis_netq_port_notify(q, sig_call(vq));
}

static void tx_count(struct elvis_netq *q, u64 len)
{
        unsigned int hl = elvis_netq_hdr_len(q);

        ev_stat_add(q->st.tx_packets, 1);
        ev_stat_add(q->st.tx_bytes, len > hl ? len - hl : 0);
}

int elvis_netq_refresh(struct elvis_netq *q, int vq, bool want, const char **why)
{
        struct elvis_qvq *v = &q->vq[vq];
        int r;

        /* the ring restarts from guest memory: what a turn cut short by a fault left
         * unwritten (an owed TX entry, unpublished used entries) is written now; an entry
         * owed to a ring stopped by an error is forgotten, the restarted ring must not
         * see its head */
        if (vq == ELVIS_NETQ_TX) {
                if (v->live && q->tx_owed && !elvis_vring_push(&v->vr, q->tx_owed_head, 0))
                        tx_count(q, q->tx_owed_len);
                q->tx_owed = false;
        }
        if (v->live) {
                signal_guest(q, vq);
                v->base = v->vr.last_avail_idx;
        }
        if (!want) {
                v->live = false;
                return 0;
        }
        if ((r = elvis_qvq_start(v, q->mem, q->features, why)) < 0)
                return r;
        elvis_netq_log_update(q);
        if (q->sched.mode == ELVIS_NETQ_POLL)
                elvis_vring_notify_disable(&v->vr);
        return 0;
}

void elvis_netq_log_update(struct elvis_netq *q)
{
        bool on = q->log.base != EV_UPTR_NULL;

        for (int i = 0; i < 2; i++) {
                struct elvis_qvq *v = &q->vq[i];

                if (v->live)
                        elvis_vring_set_log(&v->vr, on ? &q->log : NULL,
                                            q->features & (1ull << ELVIS_NET_FEAT_LOG_ALL), v->log_used,
                                            v->log_addr);
        }
}

void elvis_netq_set_mode(struct elvis_netq *q, enum elvis_turn_mode mode)
{
        if (q->sched.mode == mode || !elvis_sched_set_mode(&q->sched, mode, elvis_netq_port_now()))
                return;
        if (mode == ELVIS_NETQ_POLL)
                for (int i = 0; i < 2; i++)
                        if (q->vq[i].live)
                                notify_disable(q, i);
        elvis_netq_port_changed(q, -1);
}

/* Reads or writes num_buffers (bytes 10-11 of the header), wherever the guest split its
 * first buffer. */
static int num_buffers_rw(const struct elvis_iov *iov, u32 niov, u8 bytes[2], bool write)
{
        u32 off = NUM_BUFFERS_OFF, k = 0;

        /* one access per segment the two bytes fall in (one, for most drivers) */
        for (u32 i = 0; i < niov && k < 2; i++) {
                if (off < iov[i].len) {
                        u32 n = iov[i].len - off < 2 - k ? iov[i].len - off : 2 - k;
                        ev_uptr p = ev_uptr_add(iov[i].base, off);

                        if (write ? ev_copy_to(p, &bytes[k], n) : ev_copy_from(&bytes[k], p, n))
                                return -EFAULT;
                        k += n;
                        off += n;
                }
                off -= iov[i].len;
        }
        return 0;
}

/* Copies len bytes into a chain's writable segments. */
static int copy_into(const u8 *src, u64 len, const struct elvis_chain *c, u64 *ret_done)
{
        u64 done = 0;

        for (u32 i = c->nout; i < c->nout + c->nin && done < len; i++) {
                u64 n = min_u64(c->iov[i].len, len - done);

                if (ev_copy_to(c->iov[i].base, src + done, n))
                        return -EFAULT;
                done += n;
        }
        *ret_done = done;
        return 0;
}

/* Puts back the buffers popped for a frame and forgets its unpublished used entries. */
static void deliver_undo(struct elvis_vring *vr, u16 popped, u16 used)
{
        elvis_vring_unpop(vr, popped);
        vr->used_idx = (u16)(vr->used_idx - used);
}

int elvis_netq_deliver(struct elvis_netq *q, u8 *data, u32 len)
{
        struct elvis_qvq *v = &q->vq[ELVIS_NETQ_RX];
        struct elvis_chain *c = &q->rx_chain;
        bool mrg = q->features & (1ull << ELVIS_NET_FEAT_MRG_RXBUF);
        unsigned int hl = elvis_netq_hdr_len(q);
        struct elvis_iov first_copy[8];
        const struct elvis_iov *first = NULL;  /* the first buffer's segments */
        u32 nfirst = 0;
        u64 off = 0;
        u16 popped = 0, used = 0;
        int r;

        if (!v->live) {
                ev_stat_add(q->st.drops, 1);
                return 1;
        }
        while (off < len) {
                u64 n;

                /* a frame that needs a second buffer: the pop reuses the chain, keep the
                 * first buffer's segments for num_buffers (most frames fit one buffer
                 * and pay no copy) */
                if (used == 1) {
                        memcpy(first_copy, first, nfirst * sizeof(first[0]));
                        first = first_copy;
                }
                r = elvis_vring_pop(&v->vr, c, ELVIS_CHAIN_WRITE);
                if (r < 0)
                        goto fail;
                if (r == 0) {
                        /* roll back: popped buffers go back, unpublished used entries vanish */
                        deliver_undo(&v->vr, popped, used);
                        return 0;
                }
                popped++;
                if (!mrg && c->in_len < len) {
                        /* like vhost-net: a frame that cannot fit is discarded, the buffer kept */
                        elvis_vring_unpop(&v->vr, 1);
                        ev_stat_add(q->st.drops, 1);
                        return 1;
                }
                if (used == 0) {
                        nfirst = c->nin < 8 ? c->nin : 8;
                        first = &c->iov[c->nout];
                        /* without mergeable buffers num_buffers is left as the guest had it,
                         * as vhost-net and QEMU do: tun does not write it either */
                        if (!mrg && hl == ELVIS_NET_HDR_LEN_MRG &&
                            num_buffers_rw(first, nfirst, data + NUM_BUFFERS_OFF, false)) {
                                r = elvis_vring_fail(&v->vr, -EFAULT, "cannot read a receive buffer");
                                goto fail;
                        }
                }
                if (copy_into(data + off, len - off, c, &n)) {
                        r = elvis_vring_fail(&v->vr, -EFAULT, "cannot write a receive buffer");
                        goto fail;
                }
                off += n;
                if (elvis_vring_log_chain(&v->vr, c, n)) {
                        r = v->vr.error;
                        goto fail;
                }
                r = elvis_vring_push(&v->vr, c->head, (u32)n);
                if (r < 0)
                        goto fail;
                used++;
                if (n == 0 && off < len) {      /* a zero-sized buffer: nothing ever fits */
                        ev_stat_add(q->st.drops, 1);
                        return 1;
                }
        }
        if (mrg) {
                u8 nb[2] = { (u8)(used & 0xff), (u8)(used >> 8) };

                if (num_buffers_rw(first, nfirst, nb, true)) {
                        r = elvis_vring_fail(&v->vr, -EFAULT, "cannot write num_buffers");
                        goto fail;
                }
                /* written after its buffer was logged: logged again, or a VMM that fetched
                 * the bitmap in between would migrate the page without it */
                if (elvis_vring_log_iov(&v->vr, first, nfirst, NUM_BUFFERS_OFF + 2)) {
                        r = v->vr.error;
                        goto fail;
                }
        }
        ev_stat_add(q->st.rx_packets, 1);
        ev_stat_add(q->st.rx_bytes, len > hl ? len - hl : 0);
        return 1;

fail:
        if (turn_fault(q, ELVIS_NETQ_RX)) {
                /* bytes already copied are harmless: the guest gets the buffers back only
                 * with the whole frame */
                deliver_undo(&v->vr, popped, used);
                return -EAGAIN;
        }
        return r;
}

/* A TX used entry that could not be written: with faults off it is owed (the chain the
 * back end took is never sent again; the next turn writes the entry before anything
 * else), otherwise the ring stops. */
static void tx_push_failed(struct elvis_netq *q, u16 head, u64 len)
{
        if (turn_fault(q, ELVIS_NETQ_TX)) {
                q->tx_owed = true;
                q->tx_owed_head = head;
                q->tx_owed_len = len;
        } else {
                elvis_netq_error(q, ELVIS_NETQ_TX);
        }
}

/* The used entry of a TX chain (length 0, as vhost-net). */
static inline bool tx_complete(struct elvis_netq *q, u16 head, u64 len)
{
        if (ev_unlikely(elvis_vring_push(&q->vq[ELVIS_NETQ_TX].vr, head, 0) < 0)) {
                tx_push_failed(q, head, len);
                return false;
        }
        q->tx_owed = false;
        return true;
}

/* How far ahead of the chain being sent tx_batch has the next frames fetched: small
 * frames from a guest on another CPU are each a cache miss, and a copy per frame one
 * after another waits for every one of them in turn (bench/RESULTS.md, "per-device
 * cost"). */
#define TX_PREFETCH_AHEAD 4

/* Frames completed in a batch are counted once at its end: the counters are shared
 * cache lines that readers snapshot. */
static unsigned int tx_batch(struct elvis_netq *q, unsigned int limit)
{
        struct elvis_qvq *v = &q->vq[ELVIS_NETQ_TX];
        struct elvis_chain *c = &q->chain;
        unsigned int n = 0, hl = elvis_netq_hdr_len(q);
        u64 bytes = 0, drops = 0;
        s64 deficit = q->sched.deficit_bytes;
        bool first = true;

        if (q->tx_owed && v->live) {
                u64 len = q->tx_owed_len;

                if (!tx_complete(q, q->tx_owed_head, len))
                        return 0;
                deficit -= (s64)len;
                bytes += len > hl ? len - hl : 0;
                n++;
        }
        while (n < limit && deficit > 0 && v->live && !q->faulted) {
                u64 len;
                int r = elvis_vring_pop(&v->vr, c, ELVIS_CHAIN_READ);

                if (r <= 0) {
                        if (r < 0 && !turn_fault(q, ELVIS_NETQ_TX))
                                elvis_netq_error(q, ELVIS_NETQ_TX);
                        break;
                }
                /* the frames of the chains behind this one start on their way into the
                 * cache while this one is copied (the first pop has read the avail index) */
                if (first)
                        for (u16 a = 0; a + 1 < TX_PREFETCH_AHEAD; a++)
                                elvis_vring_prefetch(&v->vr, a);
                first = false;
                elvis_vring_prefetch(&v->vr, TX_PREFETCH_AHEAD - 1);
                len = c->out_len;
                if (ev_unlikely(len < hl || len > ELVIS_NET_MAX_FRAME)) {
                        drops++;
                } else {
                        r = elvis_netq_port_xmit(q, c, len);
                        if (ev_unlikely(r < 0)) {
                                if (r == -EAGAIN || r == -ENOSPC || (r == -EFAULT && q->nofault)) {
                                        elvis_vring_unpop(&v->vr, 1);
                                        if (r == -EAGAIN)
                                                q->tx_blocked = true;
                                        else if (r == -ENOSPC)
                                                q->rx_blocked = q->tx_waits_rx = true;
                                        else
                                                q->faulted = true;
                                }
                                break;  /* otherwise the port stopped a ring */
                        }
                }
                if (!tx_complete(q, c->head, len))
                        break;
                deficit -= (s64)len;
                bytes += len > hl ? len - hl : 0;
                n++;
        }
        q->sched.deficit_bytes = deficit;
        if (n) {
                ev_stat_add(q->st.tx_packets, n);
                ev_stat_add(q->st.tx_bytes, bytes);
        }
        if (drops)
                ev_stat_add(q->st.drops, drops);
        return n;
}

static unsigned int rx_batch(struct elvis_netq *q, unsigned int limit)
{
        struct elvis_qvq *v = &q->vq[ELVIS_NETQ_RX];
        unsigned int n = 0, hl = elvis_netq_hdr_len(q);

        while (n < limit && q->sched.deficit_bytes > 0 && v->live && !q->faulted && q->rxbuf) {
                int r;

                if (!q->rxlen) {
                        long got;

                        /* a back end may write only the legacy 10 header bytes */
                        memset(q->rxbuf, 0, ELVIS_NET_HDR_LEN_MRG);
                        got = elvis_netq_port_recv(q, q->rxbuf, ELVIS_NET_MAX_FRAME);
                        if (got <= 0)
                                break;
                        if ((u64)got < hl || got > ELVIS_NET_MAX_FRAME) {
                                ev_stat_add(q->st.drops, 1);
                                q->sched.deficit_bytes -= got < ELVIS_NET_MAX_FRAME ? got : ELVIS_NET_MAX_FRAME;
                                continue;
                        }
                        q->rxlen = (u32)got;
                }
                r = elvis_netq_deliver(q, q->rxbuf, q->rxlen);
                if (r == 0) {
                        q->rx_blocked = true;
                        break;
                }
                if (r == -EAGAIN)       /* faulted: the frame stays in rxbuf */
                        break;
                if (r < 0) {
                        elvis_netq_error(q, ELVIS_NETQ_RX);
                        break;
                }
                q->sched.deficit_bytes -= q->rxlen;
                q->rxlen = 0;
                n++;
        }
        return n;
}

/* The mode the policy and the guest's kick rate want, and kicks off while the turn runs
 * (when polling this also refreshes the avail event, so a stale one is never crossed). */
static void turn_mode(struct elvis_netq *q, const struct elvis_turn *t)
{
        elvis_netq_set_mode(q, elvis_sched_want(&q->sched, t));
        for (int i = 0; i < 2; i++)
                if (q->vq[i].live && (q->vq[i].vr.notify_enabled ||
                                      (q->sched.mode == ELVIS_NETQ_POLL && elvis_vring_notify_disable_due(&q->vq[i].vr))))
                        notify_disable(q, i);
}

/* Errors latched where nobody looked (a notification write) stop their ring now; with
 * faults off every -EFAULT was taken back, so what is left is real. */
static void reap_errors(struct elvis_netq *q)
{
        for (int i = 0; i < 2; i++)
                if (q->vq[i].live && q->vq[i].vr.error)
                        elvis_netq_error(q, i);
}

unsigned int elvis_netq_turn(struct elvis_netq *q, const struct elvis_turn *t)
{
        struct elvis_sched *s = &q->sched;
        unsigned int n, total = 0;
        u64 t1;

        q->faulted = false;
        q->rx_blocked = false;
        q->tx_blocked = false;
        q->tx_waits_rx = false;
        turn_mode(q, t);
        /* one frame of any size always fits the byte grant */
        if (!elvis_sched_grant(s, t, elvis_netq_ring_cap(q), ELVIS_NET_MAX_FRAME))
                return 0;
        while (s->deficit_packets > 0 && s->deficit_bytes > 0 && !q->faulted) {
                unsigned int limit = s->deficit_packets < ELVIS_NET_TX_BATCH ? (unsigned int)s->deficit_packets :
                                                                               ELVIS_NET_TX_BATCH;

                n = tx_batch(q, limit);
                n += rx_batch(q, limit);
                s->deficit_packets -= n;
                total += n;
                if (n == 0)
                        break;
        }
        /* also after a fault: what was done before it reaches the guest now */
        signal_guest(q, ELVIS_NETQ_TX);
        signal_guest(q, ELVIS_NETQ_RX);

        /* an empty turn took no time worth a clock read: many idle queues on a sidecore
         * must cost little each */
        t1 = total ? elvis_netq_port_now() : t->now;
        if (elvis_sched_end(s, &q->st, t, total, t1))
                elvis_netq_set_mode(q, ELVIS_NETQ_NOTIFY);
        reap_errors(q);
        return total;
}

bool elvis_netq_idle(struct elvis_netq *q, u64 now, u64 kicks)
{
        struct elvis_qvq *tx = &q->vq[ELVIS_NETQ_TX], *rx = &q->vq[ELVIS_NETQ_RX];

        if (!elvis_sched_quiet(&q->sched, now, kicks) || q->tx_owed || q->tx_blocked || q->faulted)
                return false;
        /* a loopback frame waiting for receive buffers holds TX back: only RX can move it */
        if (tx->live && !elvis_vring_quiet(&tx->vr, !q->tx_waits_rx))
                return false;
        if (rx->live && !elvis_vring_quiet(&rx->vr, q->rxlen || q->tx_waits_rx))
                return false;
        elvis_sched_peeked(&q->sched, now);
        return true;
}

bool elvis_netq_enable_notify(struct elvis_netq *q)
{
        bool pending = false;

        /* a frame the back end refused is retried on a timer, not in a loop; a loopback
         * frame waits for receive buffers, not for transmit kicks */
        if (q->vq[ELVIS_NETQ_TX].live && notify_enable(q, ELVIS_NETQ_TX) && !q->tx_blocked && !q->tx_waits_rx)
                pending = true;
        if (q->vq[ELVIS_NETQ_RX].live && q->rx_blocked && notify_enable(q, ELVIS_NETQ_RX))
                pending = true;
        reap_errors(q);
        return pending;
}
