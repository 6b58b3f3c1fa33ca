// SPDX-License-Identifier: GPL-2.0
/* /dev/elvis-net: the vhost-net ioctl ABI (the subset QEMU uses with vhostfd=) on top of
 * the shared virtqueue engine, with a tap back end. One open file is one queue pair
 * (vq 0 receive, vq 1 transmit); a sidecore serves it (see sidecore.c). TX sends the
 * guest's buffers straight from its memory to the tap socket; RX takes a frame from
 * the tap into a bounce buffer and copies it into the guest's buffers (mergeable or
 * not). The virtio-net header passes through the tap unchanged, offloads included.
 * Sidecore turns never sleep on guest memory: see "fault containment" below. */
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/if_tun.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/net.h>
#include <linux/nospec.h>
#include <linux/netdevice.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/uaccess.h>
#include <linux/vhost.h>
#include <linux/vmalloc.h>
#include <net/net_namespace.h>
#include <net/sock.h>

#include "elvis.h"

#define KICK_WINDOW_NS (10 * NSEC_PER_MSEC)    /* kick rate is measured over 10 ms windows */
#define TX_BATCH 32
#define NUM_BUFFERS_OFF 10

static unsigned int hdr_len(const struct elvis_net *net)
{
	return net->features & ((1ull << ELVIS_NET_F_VERSION_1) | (1ull << ELVIS_NET_F_MRG_RXBUF)) ?
		       ELVIS_HDR_LEN_MRG : ELVIS_HDR_LEN;
}

/* wait-queue hooks: a kick or tap data marks the device and wakes its sidecore */
static int poll_wake(wait_queue_entry_t *wait, unsigned int mode, int sync, void *key)
{
	struct elvis_poll *p = container_of(wait, struct elvis_poll, wait);
	struct elvis_net *net = p->net;
	__poll_t mask = key_to_poll(key);

	if (mask && !(mask & p->mask))
		return 0;
	if (p != &net->tap_poll)
		atomic64_inc(&net->kicks);
	set_bit(ELVIS_NET_PENDING, &net->pending);
	rcu_read_lock();
	elvis_sidecore_wake(READ_ONCE(net->sc));
	rcu_read_unlock();
	return 0;
}

static void poll_queue(struct file *file, wait_queue_head_t *wqh, poll_table *pt)
{
	struct elvis_poll *p = container_of(pt, struct elvis_poll, table);

	p->wqh = wqh;
	add_wait_queue(wqh, &p->wait);
}

static void poll_init(struct elvis_poll *p, struct elvis_net *net, __poll_t mask)
{
	init_waitqueue_func_entry(&p->wait, poll_wake);
	init_poll_funcptr(&p->table, poll_queue);
	p->mask = mask;
	p->net = net;
	p->wqh = NULL;
}

static void poll_start(struct elvis_poll *p, struct file *file)
{
	__poll_t mask;

	if (p->wqh)
		return;
	mask = vfs_poll(file, &p->table);
	if (mask & p->mask)
		poll_wake(&p->wait, 0, 0, poll_to_key(mask));
}

/* After this returns the callback neither runs nor will run. */
static void poll_stop(struct elvis_poll *p)
{
	if (!p->wqh)
		return;
	remove_wait_queue(p->wqh, &p->wait);
	p->wqh = NULL;
}

/* Copies what /dev/elvis lists into the view (all but the tap, see tap_track). */
static void view_update(struct elvis_net *net)
{
	struct elvis_net_view *v = &net->view;
	u32 state;

	lockdep_assert_held(&net->mutex);
	if (net->vq[0].vr.error || net->vq[1].vr.error)
		state = ELVIS_QUEUE_STATE_ERROR;
	else if (elvis_net_live(net))
		state = ELVIS_QUEUE_STATE_READY;
	else
		state = ELVIS_QUEUE_STATE_UNCONFIGURED;
	spin_lock(&net->view_lock);
	v->state = state;
	v->flags = (net->mode == ELVIS_MODE_POLL ? ELVIS_QUEUE_F_POLLING : 0) |
		   (test_bit(ELVIS_NET_SLOW, &net->pending) ? ELVIS_QUEUE_F_SLOW_PATH : 0);
	v->owner_pid = net->owner_tgid;
	v->backends = (net->vq[ELVIS_NET_VQ_RX].backend ? 1u : 0) | (net->vq[ELVIS_NET_VQ_TX].backend ? 2u : 0);
	v->features = net->features;
	v->ring_num[0] = net->vq[0].num;
	v->ring_num[1] = net->vq[1].num;
	spin_unlock(&net->view_lock);
}

/* A malformed ring stops that virtqueue only: error eventfd, counter, rate-limited log. */
static void vq_error(struct elvis_net *net, struct elvis_vq *vq)
{
	vq->live = false;
	ELVIS_STAT_ADD(net->st.errors, 1);
	/* listed in error before the VMM hears of it */
	view_update(net);
	if (!vq->err_signalled) {
		vq->err_signalled = true;
		if (vq->err)
			elvis_eventfd_signal(vq->err);
	}
	if (printk_timed_ratelimit(&net->err_log_jiffies, 1000))
		pr_warn("elvis: device %u (pid %d) %s ring error, queue stopped: %s (%d)\n", net->id, net->owner_tgid,
			vq == &net->vq[ELVIS_NET_VQ_RX] ? "rx" : "tx",
			vq->vr.error_what ? vq->vr.error_what : "?", vq->vr.error);
}

/* ---- fault containment ----
 *
 * A sidecore serves many devices of many VMMs, so it must never sleep on one VMM's
 * memory: its turns run with page faults disabled (elvis_net_turn), and an access to a
 * guest page that is not resident (swapped out, in a userfaultfd range nobody serves,
 * backed by a slow FUSE file) fails at once with -EFAULT instead of sleeping with
 * sc->lock held. Such a failure is not a ring error yet. turn_fault() takes back the
 * error the engine latched and the turn stops where nothing is lost or done twice:
 *   - TX: a chain that could not be popped stays in the ring; a chain whose frame the
 *     tap could not copy is unpopped (nothing was sent); a chain the tap took whose used
 *     entry could not be written is owed (tx_owed) and completed first by the next turn,
 *     never sent again;
 *   - RX: every buffer popped for the frame goes back, its unpublished used entries
 *     vanish, and the frame stays in rxbuf for the next turn;
 *   - used index, notification flags: left as they were, written by the next turn.
 * The device then goes to its slow path: its own thread (slow_main) repeats the turn in
 * the owner's mm with faults allowed, holding only net->mutex, asleep for as long as the
 * VMM takes to serve the fault, and hands the device back to the sidecore afterwards.
 * An access that fails there too is a ring error, as it always was. The thread is the
 * device's own, not a shared pool's, so no number of stuck devices delays another
 * device's slow path.
 */

/* After an engine call on vq: true if it failed with faults off (the turn must stop and
 * go to the slow path), false if it succeeded or failed for real. */
static bool turn_fault(struct elvis_net *net, struct elvis_vq *vq)
{
	if (!net->nofault || vq->vr.error != -EFAULT)
		return false;
	vq->vr.error = 0;
	vq->vr.error_what = NULL;
	net->faulted = true;
	return true;
}

/* Guest kicks off for a turn. A write that faulted leaves the ring's record of what the
 * guest sees as it was, so the slow path's turn writes it. */
static void notify_disable(struct elvis_net *net, struct elvis_vq *vq)
{
	bool enabled = vq->vr.notify_enabled;
	u16 written = vq->vr.event_written;

	elvis_vring_notify_disable(&vq->vr);
	if (turn_fault(net, vq)) {
		vq->vr.notify_enabled = enabled;
		vq->vr.event_written = written;
	}
}

/* Guest kicks back on; true if buffers arrived meanwhile (no kick will come for them).
 * The engine also answers "nothing new" when it cannot read the avail index, which
 * with faults off may just be an absent page: ask again through a call that latches
 * the failure, so that it goes to the slow path instead of losing the wake-up. */
static bool notify_enable(struct elvis_net *net, struct elvis_vq *vq)
{
	bool more = elvis_vring_notify_enable(&vq->vr);

	if (!more && net->nofault && !vq->vr.error)
		more = elvis_vring_pending(&vq->vr) > 0;
	if (turn_fault(net, vq))
		return false;
	return more;
}

/* Publishes the used entries pushed so far and interrupts the guest if it wants. With
 * faults off, a used_event or flags word that cannot be read counts as "wants": a
 * spurious interrupt at worst, never a missing one. */
static void signal_guest(struct elvis_net *net, struct elvis_vq *vq)
{
	u16 before = vq->vr.published_used;

	if (!vq->live)
		return;
	if (elvis_vring_publish(&vq->vr) < 0) {
		if (!turn_fault(net, vq))
			vq_error(net, vq);
		return;
	}
	if (vq->vr.published_used == before)
		return;
	if (elvis_vring_need_signal(&vq->vr) && vq->call) {
		elvis_eventfd_signal(vq->call);
		ELVIS_STAT_ADD(net->st.interrupts, 1);
	}
}

/* A completed TX chain of len bytes, header included. */
static void tx_count(struct elvis_net *net, u64 len)
{
	unsigned int hl = hdr_len(net);

	ELVIS_STAT_ADD(net->st.tx_packets, 1);
	ELVIS_STAT_ADD(net->st.tx_bytes, len > hl ? len - hl : 0);
}

/* Follows the configuration: (re)initialises the ring when everything it needs is set.
 * net->mutex held, in the owner's context (the engine reads the used index). */
static int vq_refresh(struct elvis_net *net, struct elvis_vq *vq)
{
	bool want = net->mm && net->mem.nregions && vq->num && vq->addr_set && vq->sock;
	const char *why = "";
	int r;

	lockdep_assert_held(&net->mutex);
	/* the ring restarts from guest memory: what a turn cut short by a fault left
	 * unwritten (an owed TX entry, unpublished used entries) is written now, in the
	 * owner's ioctl, where faults may sleep; an entry owed to a ring stopped by an
	 * error is forgotten, the restarted ring must not see its head */
	if (vq == &net->vq[ELVIS_NET_VQ_TX]) {
		if (vq->live && net->tx_owed && !elvis_vring_push(&vq->vr, net->tx_owed_head, 0))
			tx_count(net, net->tx_owed_len);
		net->tx_owed = false;
	}
	if (vq->live) {
		signal_guest(net, vq);
		vq->base = vq->vr.last_avail_idx;
	}
	if (!want) {
		vq->live = false;
		return 0;
	}
	r = elvis_vring_init(&vq->vr, &net->mem, vq->num, vq->desc, vq->avail, vq->used, vq->base,
			     net->features & (1ull << ELVIS_NET_F_EVENT_IDX),
			     net->features & (1ull << ELVIS_NET_F_INDIRECT_DESC), &why);
	if (r < 0) {
		vq->live = false;
		vq->vr.error = 0;
		elvis_vring_fail(&vq->vr, r, why);
		return r;
	}
	vq->live = true;
	vq->err_signalled = false;
	if (net->mode == ELVIS_MODE_POLL)
		elvis_vring_notify_disable(&vq->vr);
	return 0;
}

/* Configuration changed under a running ring: a ring that no longer fits is an error. */
static void refresh_all(struct elvis_net *net)
{
	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		if (vq_refresh(net, &net->vq[i]) < 0)
			vq_error(net, &net->vq[i]);
}

bool elvis_net_live(const struct elvis_net *net)
{
	return net->vq[ELVIS_NET_VQ_RX].live || net->vq[ELVIS_NET_VQ_TX].live;
}

static void set_mode(struct elvis_net *net, enum elvis_net_mode mode)
{
	if (net->mode == mode)
		return;
	net->mode = mode;
	/* the idle clock starts now, not at the last work done before polling */
	net->last_work_ns = elvis_now_ns();
	if (mode == ELVIS_MODE_POLL)
		for (int i = 0; i < ELVIS_NET_NVQS; i++)
			if (net->vq[i].live)
				notify_disable(net, &net->vq[i]);
	view_update(net);
}

/* Copies len bytes of a kernel buffer into a chain's writable segments. */
static int copy_into(const u8 *src, size_t len, const struct elvis_chain *c, size_t *ret_done)
{
	size_t done = 0;

	for (u32 i = c->nout; i < c->nout + c->nin && done < len; i++) {
		size_t n = min_t(size_t, c->iov[i].len, len - done);

		if (copy_to_user(c->iov[i].base, src + done, n))
			return -EFAULT;
		done += n;
	}
	*ret_done = done;
	return 0;
}

/* Reads or writes num_buffers (bytes 10-11 of the header), wherever the guest split its
 * first buffer. */
static int num_buffers_rw(const struct elvis_iov *iov, u32 niov, u8 bytes[2], bool write)
{
	u32 off = NUM_BUFFERS_OFF, k = 0;

	for (u32 i = 0; i < niov && k < 2; i++) {
		while (k < 2 && off < iov[i].len) {
			u8 __user *p = (u8 __user *)iov[i].base + off;

			if (write ? put_user(bytes[k], p) : get_user(bytes[k], p))
				return -EFAULT;
			k++;
			off++;
		}
		off -= iov[i].len;
	}
	return 0;
}

/* Puts back the buffers popped for a frame and forgets its unpublished used entries. */
static void deliver_undo(struct elvis_vq *vq, u16 popped, u16 used)
{
	elvis_vring_unpop(&vq->vr, popped);
	vq->vr.used_idx = (u16)(vq->vr.used_idx - used);
}

/* Delivers one frame (header included) to the receive ring. 1: delivered or dropped
 * for good; 0: no room now; -EAGAIN: a guest page faulted with faults off (nothing
 * happened, the frame is to be delivered again); other <0: ring error (latched). */
static int deliver(struct elvis_net *net, u8 *data, size_t len)
{
	struct elvis_vq *vq = &net->vq[ELVIS_NET_VQ_RX];
	struct elvis_chain *c = &net->chain;
	bool mrg = net->features & (1ull << ELVIS_NET_F_MRG_RXBUF);
	struct elvis_iov first[8];
	u32 nfirst = 0;
	size_t off = 0;
	u16 popped = 0, used = 0;
	int r;

	while (off < len) {
		size_t n;

		r = elvis_vring_pop(&vq->vr, c, ELVIS_CHAIN_WRITE);
		if (r < 0)
			goto fail;
		if (r == 0) {
			/* roll back: popped buffers go back, unpublished used entries vanish */
			deliver_undo(vq, popped, used);
			return 0;
		}
		popped++;
		if (!mrg && c->in_len < len) {
			/* like vhost-net: a frame that cannot fit is discarded, the buffer kept */
			elvis_vring_unpop(&vq->vr, 1);
			ELVIS_STAT_ADD(net->st.drops, 1);
			return 1;
		}
		if (used == 0) {
			nfirst = min_t(u32, c->nin, ARRAY_SIZE(first));
			memcpy(first, &c->iov[c->nout], nfirst * sizeof(first[0]));
			/* without mergeable buffers num_buffers is left as the guest had it, as
			 * vhost-net and QEMU do: tun does not write it either */
			if (!mrg && hdr_len(net) == ELVIS_HDR_LEN_MRG &&
			    num_buffers_rw(first, nfirst, data + NUM_BUFFERS_OFF, false)) {
				r = elvis_vring_fail(&vq->vr, -EFAULT, "cannot read a receive buffer");
				goto fail;
			}
		}
		if (copy_into(data + off, len - off, c, &n)) {
			r = elvis_vring_fail(&vq->vr, -EFAULT, "cannot write a receive buffer");
			goto fail;
		}
		off += n;
		r = elvis_vring_push(&vq->vr, c->head, (u32)n);
		if (r < 0)
			goto fail;
		used++;
		if (n == 0 && off < len) {      /* a zero-sized buffer: nothing ever fits */
			ELVIS_STAT_ADD(net->st.drops, 1);
			return 1;
		}
	}
	if (mrg) {
		u8 nb[2] = { used & 0xff, used >> 8 };

		if (num_buffers_rw(first, nfirst, nb, true)) {
			r = elvis_vring_fail(&vq->vr, -EFAULT, "cannot write num_buffers");
			goto fail;
		}
	}
	return 1;

fail:
	if (turn_fault(net, vq)) {
		/* bytes already copied into the buffers are harmless: the guest gets the
		 * buffers back only with the whole frame */
		deliver_undo(vq, popped, used);
		return -EAGAIN;
	}
	return r;
}

/* The used entry of a TX chain (length 0, as vhost-net), with the counters. A chain the
 * tap took is never sent again: if its entry cannot be written with faults off, it is
 * owed, and the next turn (the slow path's) writes it before anything else. */
static bool tx_complete(struct elvis_net *net, struct elvis_vq *vq, u16 head, u64 len)
{
	if (elvis_vring_push(&vq->vr, head, 0) < 0) {
		if (turn_fault(net, vq)) {
			net->tx_owed = true;
			net->tx_owed_head = head;
			net->tx_owed_len = len;
		} else {
			vq_error(net, vq);
		}
		return false;
	}
	net->tx_owed = false;
	tx_count(net, len);
	return true;
}

/* Frames go from guest memory straight into tun, which copies them from our iovecs.
 * With faults off that copy fails on an absent page: tun returns -EFAULT having sent
 * nothing (it counts the attempt in the tap's rx_dropped), the chain is unpopped and
 * the slow path sends it. Copying each frame into a kernel bounce buffer first would
 * keep that counter clean and make the failure ours rather than tun's, but would copy
 * every frame, 64 KiB GSO frames included, twice, to spare a counter tick on a path
 * that only absent pages take; so frames are not bounced. */
static unsigned int tx_batch(struct elvis_net *net, unsigned int limit, s64 *bytes)
{
	struct elvis_vq *vq = &net->vq[ELVIS_NET_VQ_TX];
	struct elvis_chain *c = &net->chain;
	unsigned int n = 0, hl = hdr_len(net);

	if (net->tx_owed && vq->live) {
		u64 len = net->tx_owed_len;

		if (!tx_complete(net, vq, net->tx_owed_head, len))
			return 0;
		*bytes -= len;
		n++;
	}
	while (n < limit && *bytes > 0 && vq->live && !net->faulted) {
		struct msghdr msg = { .msg_flags = MSG_DONTWAIT };
		u64 len;
		int r;

		r = elvis_vring_pop(&vq->vr, c, ELVIS_CHAIN_READ);
		if (r <= 0) {
			if (r < 0 && !turn_fault(net, vq))
				vq_error(net, vq);
			break;
		}
		len = c->out_len;
		if (len < hl || len > ELVIS_RX_MAX) {
			ELVIS_STAT_ADD(net->st.drops, 1);
		} else {
			for (u32 i = 0; i < c->nout; i++) {
				net->txiov[i].iov_base = c->iov[i].base;
				net->txiov[i].iov_len = c->iov[i].len;
			}
			iov_iter_init(&msg.msg_iter, ITER_SOURCE, net->txiov, c->nout, len);
			r = vq->sock->ops->sendmsg(vq->sock, &msg, len);
			if (r == -EAGAIN || r == -ENOBUFS) {
				elvis_vring_unpop(&vq->vr, 1);
				net->tx_blocked = true;
				break;
			}
			if (r == -EFAULT && net->nofault) {
				elvis_vring_unpop(&vq->vr, 1);
				net->faulted = true;
				break;
			}
			if (r != len)
				ELVIS_STAT_ADD(net->st.drops, 1);
		}
		if (!tx_complete(net, vq, c->head, len))
			break;
		*bytes -= len;
		n++;
	}
	return n;
}

static unsigned int rx_batch(struct elvis_net *net, unsigned int limit, s64 *bytes)
{
	struct elvis_vq *vq = &net->vq[ELVIS_NET_VQ_RX];
	unsigned int n = 0, hl = hdr_len(net);

	while (n < limit && *bytes > 0 && vq->live && !net->faulted) {
		int r;

		if (!net->rxlen) {
			struct msghdr msg = { 0 };
			struct kvec kv = { net->rxbuf, ELVIS_RX_MAX };
			int got;

			/* tun writes only the legacy 10 header bytes and skips the rest */
			memset(net->rxbuf, 0, ELVIS_HDR_LEN_MRG);
			iov_iter_kvec(&msg.msg_iter, ITER_DEST, &kv, 1, ELVIS_RX_MAX);
			got = vq->sock->ops->recvmsg(vq->sock, &msg, ELVIS_RX_MAX, MSG_DONTWAIT | MSG_TRUNC);
			if (got < 0)
				break;
			if (got < hl || got > ELVIS_RX_MAX) {
				ELVIS_STAT_ADD(net->st.drops, 1);
				*bytes -= min_t(int, got, ELVIS_RX_MAX);
				continue;
			}
			net->rxlen = got;
		}
		r = deliver(net, net->rxbuf, net->rxlen);
		if (r == 0) {
			net->rx_blocked = true;
			break;
		}
		if (r == -EAGAIN)       /* faulted: the frame stays in rxbuf */
			break;
		if (r < 0) {
			vq_error(net, vq);
			break;
		}
		ELVIS_STAT_ADD(net->st.rx_packets, 1);
		ELVIS_STAT_ADD(net->st.rx_bytes, net->rxlen - hl);
		*bytes -= net->rxlen;
		net->rxlen = 0;
		n++;
	}
	return n;
}

/* Notifications back on after a turn that ran dry. True if work arrived meanwhile.
 * Receive kicks are only wanted while frames wait for guest buffers (as vhost-net);
 * transmit buffers the tap refused are retried on a timer, not in a loop. */
static bool enable_notify(struct elvis_net *net)
{
	struct elvis_vq *tx = &net->vq[ELVIS_NET_VQ_TX], *rx = &net->vq[ELVIS_NET_VQ_RX];
	bool pending = false;

	if (tx->live && notify_enable(net, tx) && !net->tx_blocked)
		pending = true;
	if (rx->live && net->rx_blocked && notify_enable(net, rx))
		pending = true;
	return pending;
}

/* The busy-loop timeout in effect: what the VMM asked for, within busyloop_max_us. */
static u32 busyloop_us(const struct elvis_vq *vq)
{
	return min(READ_ONCE(vq->busyloop_us), READ_ONCE(elvis_params.busyloop_max_us));
}

/* One budgeted turn: TX then RX batches until the budget or the work runs out, then the
 * guest is signalled and, if the queue went idle, asked for kicks again. sc: the
 * sidecore whose turn this is, NULL for the slow path. */
static unsigned int turn(struct elvis_net *net, struct elvis_sidecore *sc, u64 now)
{
	u32 exitless = READ_ONCE(net->exitless);
	u32 rate = READ_ONCE(net->poll_start_rate) ?: READ_ONCE(elvis_params.poll_start_rate);
	u64 stop = READ_ONCE(net->poll_stop_idle_ns) ?: READ_ONCE(elvis_params.poll_stop_idle_ns);
	u32 w = READ_ONCE(net->weight) ?: ELVIS_WEIGHT_DEFAULT;
	u64 kicks = atomic64_read(&net->kicks);
	u64 bytes0 = net->st.rx_bytes + net->st.tx_bytes;
	s64 pk, by;
	unsigned int n, total = 0;
	u64 t1;

	lockdep_assert_held(&net->mutex);
	net->faulted = false;
	if (now - net->window_start_ns > KICK_WINDOW_NS) {
		net->window_start_ns = now;
		net->window_kicks = kicks;
	}
	if (exitless == ELVIS_EXITLESS_MODE_ALWAYS ||
	    (exitless == ELVIS_EXITLESS_MODE_AUTO && (kicks - net->window_kicks) * 100 >= rate))
		set_mode(net, ELVIS_MODE_POLL);
	if (exitless == ELVIS_EXITLESS_MODE_NEVER)
		set_mode(net, ELVIS_MODE_NOTIFY);
	/* while a turn runs the guest need not kick: the ring is being looked at; when
	 * polling this also refreshes the avail event so a stale one is never crossed */
	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		if (net->vq[i].live && (net->vq[i].vr.notify_enabled || net->mode == ELVIS_MODE_POLL))
			notify_disable(net, &net->vq[i]);

	pk = (s64)READ_ONCE(elvis_params.budget_packets) * w / ELVIS_WEIGHT_DEFAULT;
	by = (s64)READ_ONCE(elvis_params.budget_bytes) * w / ELVIS_WEIGHT_DEFAULT;
	net->deficit_packets += max_t(s64, pk, 1);
	net->deficit_bytes += max_t(s64, by, 1500);
	net->rx_blocked = false;
	net->tx_blocked = false;
	while (net->deficit_packets > 0 && net->deficit_bytes > 0 && !net->faulted) {
		unsigned int limit = min_t(s64, net->deficit_packets, TX_BATCH);

		n = tx_batch(net, limit, &net->deficit_bytes);
		n += rx_batch(net, limit, &net->deficit_bytes);
		net->deficit_packets -= n;
		total += n;
		if (n == 0)
			break;
	}
	/* also after a fault: what was done before it reaches the guest now, not when the
	 * VMM gets round to serving the fault */
	signal_guest(net, &net->vq[ELVIS_NET_VQ_TX]);
	signal_guest(net, &net->vq[ELVIS_NET_VQ_RX]);

	t1 = elvis_now_ns();
	ELVIS_STAT_ADD(net->st.polls, 1);
	if (sc)
		ELVIS_STAT_ADD(sc->st.polls, 1);
	if (total) {
		ELVIS_STAT_ADD(net->st.busy_ns, t1 - now);
		/* how long the queue waited for this turn since its last one ended */
		if (net->last_turn_ns && now > net->last_turn_ns) {
			ELVIS_STAT_ADD(net->st.wait_ns, now - net->last_turn_ns);
			ELVIS_STAT_ADD(net->st.wait_samples, 1);
		}
		net->last_work_ns = t1;
		if (sc)
			ELVIS_STAT_ADD(sc->st.bytes, net->st.rx_bytes + net->st.tx_bytes - bytes0);
		/* more may be waiting: another turn before notifications go back on */
		set_bit(ELVIS_NET_PENDING, &net->pending);
	} else {
		ELVIS_STAT_ADD(net->st.empty_polls, 1);
		if (sc)
			ELVIS_STAT_ADD(sc->st.empty_polls, 1);
	}
	/* deficit round robin: a queue that ran dry forfeits what it did not use */
	if (net->deficit_packets > 0 && net->deficit_bytes > 0)
		net->deficit_packets = net->deficit_bytes = 0;
	if (exitless == ELVIS_EXITLESS_MODE_AUTO && net->mode == ELVIS_MODE_POLL && t1 - net->last_work_ns > stop)
		set_mode(net, ELVIS_MODE_NOTIFY);
	if (net->mode == ELVIS_MODE_NOTIFY && !total && !net->faulted) {
		/* like vhost-net's busy loop: a queue given a timeout (QEMU's poll-us) keeps
		 * being looked at, kicks off, that long after its last work */
		u64 spin = (u64)max(busyloop_us(&net->vq[0]), busyloop_us(&net->vq[1])) * 1000;

		if ((spin && t1 - net->last_work_ns < spin) || enable_notify(net))
			set_bit(ELVIS_NET_PENDING, &net->pending);
	}
	/* an error latched where nobody looked (a notification write) stops its queue now;
	 * with faults off every -EFAULT was taken back above, so what is left is real */
	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		if (net->vq[i].live && net->vq[i].vr.error)
			vq_error(net, &net->vq[i]);
	net->last_turn_ns = t1;
	return total;
}

/* ---- the slow path ---- */

/* The device's own thread: it sleeps until a sidecore hands it the device (SLOW), runs
 * one turn where page faults may sleep, and gives the device back. It holds a reference
 * to the device and to the module. Closing the file stops an idle thread (kthread_stop,
 * and the closer drops those references: a thread stopped before it ever ran never
 * enters slow_main). A thread that has the device may be asleep on a fault for as long
 * as the VMM likes (a VMM's exit closes this file before its userfaultfd), so it is not
 * waited for: told the device is dead, it finishes its turn, drops both references
 * itself and exits. */
static void net_put(struct elvis_net *net);

static void slow_turn(struct elvis_net *net)
{
	mutex_lock(&net->mutex);
	if (!READ_ONCE(net->dead) && net->mm && elvis_net_live(net)) {
		kthread_use_mm(net->mm);
		turn(net, NULL, elvis_now_ns());
		kthread_unuse_mm(net->mm);
	}
	clear_bit(ELVIS_NET_SLOW, &net->pending);
	set_bit(ELVIS_NET_PENDING, &net->pending);
	view_update(net);
	mutex_unlock(&net->mutex);
	/* back to whichever sidecore serves it now (a move may have happened meanwhile) */
	rcu_read_lock();
	elvis_sidecore_wake(READ_ONCE(net->sc));
	rcu_read_unlock();
}

static int slow_main(void *data)
{
	struct elvis_net *net = data;

	for (;;) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop()) {
			__set_current_state(TASK_RUNNING);
			return 0;
		}
		if (READ_ONCE(net->dead))
			break;
		if (!test_bit(ELVIS_NET_SLOW, &net->pending)) {
			schedule();
			continue;
		}
		__set_current_state(TASK_RUNNING);
		slow_turn(net);
	}
	__set_current_state(TASK_RUNNING);
	net_put(net);
	module_put_and_kthread_exit(0);
}

/* At the first VHOST_SET_OWNER, in the owner's ioctl. */
static int slow_thread_start(struct elvis_net *net)
{
	struct task_struct *t;

	lockdep_assert_held(&net->mutex);
	if (net->slow_task)
		return 0;
	t = kthread_create(slow_main, net, "elvis-net%u", net->id);
	if (IS_ERR(t))
		return PTR_ERR(t);
	__module_get(THIS_MODULE);
	refcount_inc(&net->refs);
	/* release wakes it after telling it to exit: the task must outlive the thread */
	get_task_struct(t);
	net->slow_task = t;
	wake_up_process(t);
	return 0;
}

/* A sidecore's turn faulted: from now on the sidecore skips the device (SLOW) and its
 * thread has it. */
static void slow_start(struct elvis_net *net)
{
	lockdep_assert_held(&net->mutex);
	set_bit(ELVIS_NET_SLOW, &net->pending);
	view_update(net);
	wake_up_process(net->slow_task);
}

unsigned int elvis_net_turn(struct elvis_net *net, struct elvis_sidecore *sc, u64 now)
{
	unsigned int n;

	lockdep_assert_held(&net->mutex);
	kthread_use_mm(net->mm);
	pagefault_disable();
	net->nofault = true;
	n = turn(net, sc, now);
	net->nofault = false;
	pagefault_enable();
	kthread_unuse_mm(net->mm);
	if (net->faulted)
		slow_start(net);
	return n;
}

/* ioctls */

/* Which tap a back end file is: tun exposes that only through its fdinfo ("iff:\t<name>",
 * the same text /proc/PID/fdinfo shows), so render that and look the name up. 0: none. */
static int tap_ifindex(struct file *file, struct socket *sock)
{
	char buf[256], *p, *end;
	struct seq_file m = { .buf = buf, .size = sizeof(buf) };
	struct net_device *dev;
	int ifindex = 0;

	if (!file->f_op->show_fdinfo)
		return 0;
	file->f_op->show_fdinfo(&m, file);
	buf[min_t(size_t, m.count, sizeof(buf) - 1)] = 0;
	p = strstr(buf, "iff:\t");
	if (!p)
		return 0;
	p += 5;
	end = strchrnul(p, '\n');
	if (end - p <= 0 || end - p >= IFNAMSIZ)
		return 0;
	*end = 0;
	dev = dev_get_by_name(sock_net(sock->sk), p);
	if (dev) {
		ifindex = dev->ifindex;
		dev_put(dev);
	}
	return ifindex;
}

/* Puts the back end's tap (RX's, else TX's) in the view, by index and namespace: the
 * listing names it from those, so it never touches the back end file, and a renamed
 * tap shows under its new name. */
static void tap_track(struct elvis_net *net)
{
	struct elvis_vq *bvq = net->vq[ELVIS_NET_VQ_RX].backend ? &net->vq[ELVIS_NET_VQ_RX] : &net->vq[ELVIS_NET_VQ_TX];
	struct net *ns = NULL, *old;
	int ifindex = 0;

	lockdep_assert_held(&net->mutex);
	if (bvq->backend) {
		ifindex = tap_ifindex(bvq->backend, bvq->sock);
		if (ifindex)
			ns = get_net(sock_net(bvq->sock->sk));
	}
	spin_lock(&net->view_lock);
	old = net->view.tap_netns;
	net->view.tap_netns = ns;
	net->view.tap_ifindex = ifindex;
	spin_unlock(&net->view_lock);
	if (old)
		put_net(old);
}

static void vq_reset(struct elvis_net *net, struct elvis_vq *vq)
{
	poll_stop(&vq->kick_poll);
	if (vq->kick)
		fput(vq->kick);
	if (vq->call)
		eventfd_ctx_put(vq->call);
	if (vq->err)
		eventfd_ctx_put(vq->err);
	if (vq->backend)
		fput(vq->backend);
	memset(&vq->vr, 0, sizeof(vq->vr));
	vq->num = 0;
	vq->desc = vq->avail = vq->used = 0;
	vq->base = 0;
	vq->addr_set = false;
	vq->live = false;
	vq->err_signalled = false;
	vq->busyloop_us = 0;
	vq->kick = NULL;
	vq->call = vq->err = NULL;
	vq->backend = NULL;
	vq->sock = NULL;
}

/* Back to the state of a fresh open. */
static void net_reset(struct elvis_net *net)
{
	lockdep_assert_held(&net->mutex);
	poll_stop(&net->tap_poll);
	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		vq_reset(net, &net->vq[i]);
	if (net->mm)
		mmput(net->mm);
	net->mm = NULL;
	net->owner_tgid = 0;
	net->features = 0;
	net->backend_features = 0;
	memset(&net->mem, 0, sizeof(net->mem));
	net->rxlen = 0;
	net->tx_owed = false;
	net->mode = ELVIS_MODE_NOTIFY;
	tap_track(net);
}

/* The table is copied and checked whole before it replaces the old one; both stay off
 * the stack, whatever ELVIS_MEM_MAX_REGIONS is. */
static int set_mem_table(struct elvis_net *net, void __user *argp)
{
	struct vhost_memory hdr;
	struct vhost_memory_region *regs;
	struct elvis_vring_mem *mem;
	const char *why = "";
	int r;

	if (copy_from_user(&hdr, argp, sizeof(hdr)))
		return -EFAULT;
	if (hdr.padding)
		return -EOPNOTSUPP;
	if (hdr.nregions > ELVIS_MEM_MAX_REGIONS)
		return -E2BIG;
	if (hdr.nregions == 0) {
		/* like vhost: an empty table is allowed, rings just cannot run */
		memset(&net->mem, 0, sizeof(net->mem));
		refresh_all(net);
		return 0;
	}
	regs = memdup_user((u8 __user *)argp + offsetof(struct vhost_memory, regions),
			   hdr.nregions * sizeof(*regs));
	if (IS_ERR(regs))
		return PTR_ERR(regs);
	mem = kzalloc(sizeof(*mem), GFP_KERNEL_ACCOUNT);
	if (!mem) {
		r = -ENOMEM;
		goto out;
	}
	mem->nregions = hdr.nregions;
	for (u32 i = 0; i < hdr.nregions; i++) {
		struct elvis_mem_region *m = &mem->r[i];

		m->gpa = regs[i].guest_phys_addr;
		m->size = regs[i].memory_size;
		m->vmm_addr = regs[i].userspace_addr;
		m->base = ev_uptr_from_u64(regs[i].userspace_addr);
		if (m->vmm_addr != (unsigned long)m->vmm_addr || !access_ok(m->base, m->size)) {
			r = -EFAULT;
			goto out;
		}
	}
	r = elvis_mem_validate(mem, &why);
	if (r)
		goto out;
	net->mem = *mem;
	refresh_all(net);
out:
	kfree(mem);
	kfree(regs);
	return r;
}

static int set_backend(struct elvis_net *net, struct elvis_vq *vq, int fd)
{
	struct file *file = NULL, *old = vq->backend;
	struct socket *sock = NULL;
	int r;

	if (fd != -1) {
		file = fget(fd);
		if (!file)
			return -EBADF;
		sock = tun_get_socket(file);
		if (IS_ERR(sock)) {
			fput(file);
			return -ENOTSOCK;
		}
	}
	if (vq == &net->vq[ELVIS_NET_VQ_RX]) {
		poll_stop(&net->tap_poll);
		net->rxlen = 0;
	}
	vq->backend = file;
	vq->sock = sock;
	r = vq_refresh(net, vq);
	if (r < 0) {
		vq->backend = old;
		vq->sock = old ? tun_get_socket(old) : NULL;
		vq->vr.error = 0;
		vq_refresh(net, vq);
		if (file)
			fput(file);
		file = old;
		old = NULL;
	}
	if (vq == &net->vq[ELVIS_NET_VQ_RX] && vq->backend)
		poll_start(&net->tap_poll, vq->backend);
	if (old)
		fput(old);
	tap_track(net);
	return r;
}

static long vring_ioctl(struct elvis_net *net, unsigned int cmd, void __user *argp)
{
	struct vhost_vring_state s;
	struct vhost_vring_addr a;
	struct vhost_vring_file f;
	struct elvis_vq *vq;
	u32 idx;

	/* every vring command starts with the index */
	if (get_user(idx, (u32 __user *)argp))
		return -EFAULT;
	if (idx >= ELVIS_NET_NVQS)
		return -ENOBUFS;
	vq = &net->vq[array_index_nospec(idx, ELVIS_NET_NVQS)];

	switch (cmd) {
	case VHOST_SET_VRING_NUM:
		if (copy_from_user(&s, argp, sizeof(s)))
			return -EFAULT;
		if (vq->backend)
			return -EBUSY;
		if (!s.num || s.num > ELVIS_VRING_MAX_NUM || (s.num & (s.num - 1)))
			return -EINVAL;
		vq->num = s.num;
		return 0;
	case VHOST_SET_VRING_BASE:
		if (copy_from_user(&s, argp, sizeof(s)))
			return -EFAULT;
		if (vq->backend)
			return -EBUSY;
		if (s.num > 0xffff)
			return -EINVAL;
		vq->base = s.num;
		return 0;
	case VHOST_GET_VRING_BASE:
		s.index = idx;
		s.num = vq->live ? vq->vr.last_avail_idx : vq->base;
		return copy_to_user(argp, &s, sizeof(s)) ? -EFAULT : 0;
	case VHOST_SET_VRING_ADDR:
		if (copy_from_user(&a, argp, sizeof(a)))
			return -EFAULT;
		if (a.flags)
			return -EOPNOTSUPP;     /* VHOST_VRING_F_LOG: no dirty logging */
		if ((a.desc_user_addr & 15) || (a.avail_user_addr & 1) || (a.used_user_addr & 3))
			return -EINVAL;
		vq->desc = a.desc_user_addr;
		vq->avail = a.avail_user_addr;
		vq->used = a.used_user_addr;
		vq->addr_set = true;
		if (vq_refresh(net, vq) < 0)
			vq_error(net, vq);
		return 0;
	case VHOST_SET_VRING_KICK: {
		struct file *kick = NULL;

		if (copy_from_user(&f, argp, sizeof(f)))
			return -EFAULT;
		if (f.fd != VHOST_FILE_UNBIND) {
			kick = eventfd_fget(f.fd);
			if (IS_ERR(kick))
				return PTR_ERR(kick);
		}
		poll_stop(&vq->kick_poll);
		if (vq->kick)
			fput(vq->kick);
		vq->kick = kick;
		if (kick)
			poll_start(&vq->kick_poll, kick);
		return 0;
	}
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR: {
		struct eventfd_ctx *ctx = NULL, **slot = cmd == VHOST_SET_VRING_CALL ? &vq->call : &vq->err;

		if (copy_from_user(&f, argp, sizeof(f)))
			return -EFAULT;
		if (f.fd != VHOST_FILE_UNBIND) {
			ctx = eventfd_ctx_fdget(f.fd);
			if (IS_ERR(ctx))
				return PTR_ERR(ctx);
		}
		if (*slot)
			eventfd_ctx_put(*slot);
		*slot = ctx;
		return 0;
	}
	case VHOST_NET_SET_BACKEND:
		if (copy_from_user(&f, argp, sizeof(f)))
			return -EFAULT;
		return set_backend(net, vq, f.fd);
	case VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
		if (copy_from_user(&s, argp, sizeof(s)))
			return -EFAULT;
		/* Clamped to busyloop_max_us, not refused: vhost-net takes any value and
		 * QEMU gives up on the netdev when this fails, so a VM configured for
		 * vhost-net still starts. GET answers the value in effect. */
		WRITE_ONCE(vq->busyloop_us, min(s.num, READ_ONCE(elvis_params.busyloop_max_us)));
		return 0;
	case VHOST_GET_VRING_BUSYLOOP_TIMEOUT:
		s.index = idx;
		s.num = busyloop_us(vq);
		return copy_to_user(argp, &s, sizeof(s)) ? -EFAULT : 0;
	}
	return -ENOTTY;
}

static long net_ioctl_locked(struct elvis_net *net, unsigned int cmd, void __user *argp)
{
	u64 v;
	int r;

	switch (cmd) {
	case VHOST_GET_FEATURES:
		v = ELVIS_NET_FEATURES;
		return copy_to_user(argp, &v, sizeof(v)) ? -EFAULT : 0;
	case VHOST_GET_BACKEND_FEATURES:
		v = 0;
		return copy_to_user(argp, &v, sizeof(v)) ? -EFAULT : 0;
	case VHOST_SET_BACKEND_FEATURES:
		if (copy_from_user(&v, argp, sizeof(v)))
			return -EFAULT;
		if (v)
			return -EOPNOTSUPP;
		net->backend_features = v;
		return 0;
	case VHOST_SET_OWNER:
		if (net->mm)
			return -EBUSY;
		r = slow_thread_start(net);
		if (r)
			return r;
		net->mm = get_task_mm(current);
		if (!net->mm)
			return -EINVAL;
		net->owner_tgid = task_tgid_nr(current);
		return 0;
	}
	/* everything else is the owner's */
	if (!net->mm || net->mm != current->mm)
		return -EPERM;
	switch (cmd) {
	case VHOST_RESET_OWNER:
		net_reset(net);
		return 0;
	case VHOST_SET_FEATURES:
		if (copy_from_user(&v, argp, sizeof(v)))
			return -EFAULT;
		if (v & ~ELVIS_NET_FEATURES)
			return -EOPNOTSUPP;
		net->features = v;
		refresh_all(net);
		return 0;
	case VHOST_SET_MEM_TABLE:
		return set_mem_table(net, argp);
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_BASE:
	case VHOST_GET_VRING_BASE:
	case VHOST_SET_VRING_ADDR:
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
	case VHOST_NET_SET_BACKEND:
	case VHOST_SET_VRING_BUSYLOOP_TIMEOUT:
	case VHOST_GET_VRING_BUSYLOOP_TIMEOUT:
		return vring_ioctl(net, cmd, argp);
	}
	return -ENOTTY;
}

/* A device with a back end and no sidecore goes to the least loaded one, or to a
 * default unbound sidecore the module creates, so a plain vhostfd user is served. */
static void ensure_served(struct elvis_net *net)
{
	struct elvis_sidecore *sc, *best = NULL;
	int id;

	if (READ_ONCE(net->sc) || (!READ_ONCE(net->vq[0].backend) && !READ_ONCE(net->vq[1].backend)))
		return;
	mutex_lock(&elvis_lock);
	if (!net->sc && idr_find(&elvis_nets, net->id) == net) {
		idr_for_each_entry(&elvis_sidecores, sc, id)
			if (!best || sc->nnets < best->nnets)
				best = sc;
		if (!best && elvis_sidecore_create(-1, true, &best) < 0) {
			pr_warn_ratelimited("elvis: device %u: cannot create a default sidecore\n", net->id);
			best = NULL;
		}
		if (best)
			elvis_sidecore_attach(best, net);
	}
	mutex_unlock(&elvis_lock);
}

static long net_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct elvis_net *net = file->private_data;
	long r;

	if (cmd == ELVIS_NET_IOC_GET_ID)
		return put_user(net->id, (u32 __user *)arg);

	mutex_lock(&net->mutex);
	r = net_ioctl_locked(net, cmd, (void __user *)arg);
	view_update(net);
	mutex_unlock(&net->mutex);
	/* the configuration may have changed, and a sidecore that found the mutex taken
	 * skipped the device: let it look */
	set_bit(ELVIS_NET_PENDING, &net->pending);
	rcu_read_lock();
	elvis_sidecore_wake(READ_ONCE(net->sc));
	rcu_read_unlock();
	if (r == -ENOTTY)
		return r;
	ensure_served(net);
	return r;
}

static int net_open(struct inode *inode, struct file *file)
{
	struct elvis_net *net;
	int id;

	net = kvzalloc(sizeof(*net), GFP_KERNEL_ACCOUNT);
	if (!net)
		return -ENOMEM;
	net->rxbuf = kvmalloc(ELVIS_RX_MAX, GFP_KERNEL_ACCOUNT);
	net->txiov = kvmalloc_array(ELVIS_CHAIN_MAX_IOV, sizeof(*net->txiov), GFP_KERNEL_ACCOUNT);
	if (!net->rxbuf || !net->txiov)
		goto err_free;
	refcount_set(&net->refs, 1);
	mutex_init(&net->mutex);
	spin_lock_init(&net->view_lock);
	INIT_LIST_HEAD(&net->sc_node);
	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		poll_init(&net->vq[i].kick_poll, net, EPOLLIN);
	poll_init(&net->tap_poll, net, EPOLLIN);
	atomic64_set(&net->kicks, 0);
	net->weight = ELVIS_WEIGHT_DEFAULT;
	net->exitless = ELVIS_EXITLESS_MODE_AUTO;
	net->mode = ELVIS_MODE_NOTIFY;
	mutex_lock(&elvis_lock);
	id = idr_alloc_cyclic(&elvis_nets, net, 1, INT_MAX, GFP_KERNEL);
	mutex_unlock(&elvis_lock);
	if (id < 0)
		goto err_free;
	net->id = id;
	file->private_data = net;
	return stream_open(inode, file);

err_free:
	kvfree(net->txiov);
	kvfree(net->rxbuf);
	kvfree(net);
	return -ENOMEM;
}

/* The last reference: the file's, or the slow-path thread's when it outlived the file. */
static void net_put(struct elvis_net *net)
{
	if (!refcount_dec_and_test(&net->refs))
		return;
	mutex_lock(&net->mutex);
	net_reset(net);
	mutex_unlock(&net->mutex);
	if (net->slow_task)
		put_task_struct(net->slow_task);
	mutex_destroy(&net->mutex);
	kvfree(net->txiov);
	kvfree(net->rxbuf);
	kvfree(net);
}

static int net_release(struct inode *inode, struct file *file)
{
	struct elvis_net *net = file->private_data;

	mutex_lock(&elvis_lock);
	idr_remove(&elvis_nets, net->id);
	/* after this no sidecore looks at the device, nor hands it to the slow path */
	elvis_sidecore_detach(net);
	mutex_unlock(&elvis_lock);
	if (net->slow_task && test_bit(ELVIS_NET_SLOW, &net->pending)) {
		/* it may be asleep on a fault: it exits by itself after its turn (the wake is
		 * for one that has just finished and is about to sleep; one asleep on the
		 * fault only retries it) */
		WRITE_ONCE(net->dead, true);
		wake_up_process(net->slow_task);
	} else if (net->slow_task) {
		/* idle, and stays so: stopped here, so a closed device leaves no thread (nor
		 * a module reference: rmmod works at once) behind */
		kthread_stop(net->slow_task);
		net_put(net);
		module_put(THIS_MODULE);
	}
	net_put(net);
	return 0;
}

/* From the view and the parameters /dev/elvis itself sets: never waits for net->mutex. */
void elvis_net_info(struct elvis_net *net, struct elvis_queue_info *info)
{
	const struct elvis_net_view *v = &net->view;

	lockdep_assert_held(&elvis_lock);
	memset(info, 0, sizeof(*info));
	info->device = net->id;
	info->queue = 0;
	info->sidecore = net->sc ? net->sc->id : ELVIS_SIDECORE_NONE;
	info->weight = READ_ONCE(net->weight);
	info->exitless = READ_ONCE(net->exitless);
	info->poll_start_rate = READ_ONCE(net->poll_start_rate);
	info->poll_stop_idle_ns = READ_ONCE(net->poll_stop_idle_ns);
	spin_lock(&net->view_lock);
	info->state = v->state;
	info->owner_pid = v->owner_pid;
	info->backends = v->backends;
	info->features = v->features;
	info->flags = v->flags;
	info->ring_num[0] = v->ring_num[0];
	info->ring_num[1] = v->ring_num[1];
	if (v->tap_netns) {
		struct net_device *dev;

		rcu_read_lock();
		dev = dev_get_by_index_rcu(v->tap_netns, v->tap_ifindex);
		if (dev) {
			strscpy(info->tap, dev->name, sizeof(info->tap));
			info->tap_ifindex = v->tap_ifindex;
		}
		rcu_read_unlock();
	}
	spin_unlock(&net->view_lock);
}

void elvis_net_counters(struct elvis_net *net, struct elvis_queue_counters *c)
{
	struct elvis_sidecore *sc = net->sc;

	lockdep_assert_held(&elvis_lock);
	memset(c, 0, sizeof(*c));
	c->device = net->id;
	c->queue = 0;
	c->sidecore = sc ? sc->id : ELVIS_SIDECORE_NONE;
	c->rx_packets = READ_ONCE(net->st.rx_packets);
	c->rx_bytes = READ_ONCE(net->st.rx_bytes);
	c->tx_packets = READ_ONCE(net->st.tx_packets);
	c->tx_bytes = READ_ONCE(net->st.tx_bytes);
	c->kicks = atomic64_read(&net->kicks);
	c->interrupts = READ_ONCE(net->st.interrupts);
	c->polls = READ_ONCE(net->st.polls);
	c->empty_polls = READ_ONCE(net->st.empty_polls);
	c->busy_ns = READ_ONCE(net->st.busy_ns);
	c->errors = READ_ONCE(net->st.errors);
	c->drops = READ_ONCE(net->st.drops);
	c->wait_ns = READ_ONCE(net->st.wait_ns);
	c->wait_samples = READ_ONCE(net->st.wait_samples);
}

static const struct file_operations net_fops = {
	.owner = THIS_MODULE,
	.open = net_open,
	.release = net_release,
	.unlocked_ioctl = net_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice net_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "elvis-net",
	.fops = &net_fops,
	.mode = 0660,
};

int elvis_net_register(void)
{
	return misc_register(&net_misc);
}

void elvis_net_unregister(void)
{
	misc_deregister(&net_misc);
}
