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
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/nospec.h>
#include <linux/pagemap.h>
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

/* every dirty-log byte written, by any device (see log_signal) */
static atomic_long_t log_writes = ATOMIC_LONG_INIT(0);

void elvis_net_wake_server(struct elvis_net *net)
{
	rcu_read_lock();
	elvis_sidecore_wake(rcu_dereference(net->sc));
	rcu_read_unlock();
}

/* The engine's dirty-log write (elvis_port.h): the log is the VMM's memory, which it
 * reads and clears concurrently, so the bits are set atomically in the pinned page, as
 * vhost does. In a sidecore turn (faults off) only a resident page is pinned: an absent
 * one is -EFAULT, and the device's slow path repeats the turn with faults allowed. */
int ev_log_or8(void __user *p, u8 bits)
{
	unsigned long addr = (unsigned long)p;
	struct page *page;
	unsigned long *base;
	unsigned int nr = (addr & ~PAGE_MASK) * 8;
	int got;

	/* in a sidecore turn only the lockless walk of the page tables: the slow walk would
	 * take the VMM's mmap lock, which the VMM may hold for as long as it likes (a
	 * reference, not a pin: held for the few instructions below) */
	bool fast = pagefault_disabled();

	if (fast)
		got = get_user_pages_fast_only(addr, 1, FOLL_WRITE, &page);
	else
		got = pin_user_pages_fast(addr, 1, FOLL_WRITE, &page);
	if (got != 1)
		return -EFAULT;
	/* the page lock is the VMM's to hold too (migration, writeback): in a turn only a
	 * free one is taken, else the slow path does this write */
	if (fast && !trylock_page(page)) {
		put_page(page);
		return -EFAULT;
	}
	base = kmap_local_page(page);
	for (unsigned int b = 0; b < 8; b++)
		if (bits & (1u << b))
			set_bit(nr + b, base);
	kunmap_local(base);
	if (fast) {
		set_page_dirty(page);
		unlock_page(page);
		put_page(page);
	} else {
		unpin_user_pages_dirty_lock(&page, 1, true);
	}
	atomic_long_inc(&log_writes);
	return 0;
}

/* Signals the VMM's log eventfd (VHOST_SET_LOG_FD) if the log was written since before, a
 * value of log_writes read before the device's turn or ioctl. The count is global (the
 * engine's write does not know its device): a device logging at the same time as another
 * may signal once too often, which only makes the VMM look at its bitmap again; a write is
 * never left unsignalled. net->mutex held. */
static void log_signal(struct elvis_net *net, long before)
{
	lockdep_assert_held(&net->mutex);
	if (net->log_ctx && atomic_long_read(&log_writes) != before)
		elvis_eventfd_signal(net->log_ctx);
}

/* vhost's log_access_ok: may the log bits of guest range [gpa, gpa + len) be written, with
 * the log at base? vhost's arithmetic is kept, so the ioctls answer as vhost-net's do; it
 * checks ceil(len / 32 KiB) bytes from the byte of gpa, one byte short for a range that
 * straddles a log byte. The engine's bound (log.size, see log_span) is exact, so a write
 * there that leaves the user address space is still refused when it happens: the ring
 * stops with an error. */
static bool log_range_ok(unsigned long base, u64 gpa, u64 len)
{
	u64 byte = gpa >> (ELVIS_LOG_PAGE_SHIFT + 3);

	if (byte > ULONG_MAX - base)
		return false;
	return access_ok((void __user *)(base + (unsigned long)byte),
			 (len + (8ull << ELVIS_LOG_PAGE_SHIFT) - 1) >> (ELVIS_LOG_PAGE_SHIFT + 3));
}

/* With VHOST_F_LOG_ALL every byte the device writes into guest memory is logged: the
 * bits of every region must be writable (vhost's vq_memory_access_ok). */
static bool mem_log_ok(const struct elvis_vring_mem *mem, unsigned long base)
{
	for (u32 i = 0; i < mem->nregions; i++)
		if (!log_range_ok(base, mem->r[i].gpa, mem->r[i].size))
			return false;
	return true;
}

/* vhost's vq_log_access_ok for ring i, with the log at base and these features: the
 * memory's bits with LOG_ALL, the used ring's (log_addr, avail event included) with
 * VHOST_VRING_F_LOG. */
static bool vq_log_ok(struct elvis_net *net, int i, unsigned long base, u64 features)
{
	const struct elvis_qvq *v = &net->q.vq[i];
	u64 used = 4 + 8ull * v->num + (features & (1ull << ELVIS_NET_FEAT_EVENT_IDX) ? 2 : 0);

	if ((features & (1ull << ELVIS_NET_FEAT_LOG_ALL)) && !mem_log_ok(&net->mem, base))
		return false;
	return !v->log_used || log_range_ok(base, v->log_addr, used);
}

/* The kernel's log has no size: vhost-net is given a base only, and a bit may be written
 * wherever its byte is a user address. The engine bounds its writes by log.size, so the
 * size is the longest range from base that access_ok accepts: a bit beyond it is -EFAULT
 * (a ring error), never an address that wrapped or left user space. Bisected rather than
 * computed from TASK_SIZE_MAX, because where access_ok stops at the top of user space is
 * the architecture's and kernel version's business. */
static u64 log_span(unsigned long base)
{
	unsigned long ok = 1, bad = ULONG_MAX - base;

	if (!base || !access_ok((void __user *)base, 1))
		return 0;
	if (access_ok((void __user *)base, bad))
		return bad;
	while (bad - ok > 1) {
		unsigned long mid = ok + (bad - ok) / 2;

		if (access_ok((void __user *)base, mid))
			ok = mid;
		else
			bad = mid;
	}
	return ok;
}

/* For VHOST_F_LOG_ALL (vhost's memory_access_ok with logging): if a ring has a back end,
 * the bits of all of mem can be written. */
static bool log_all_ok(struct elvis_net *net, const struct elvis_vring_mem *mem)
{
	unsigned long base = (unsigned long)ev_uptr_to_u64(net->q.log.base);

	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		if (net->vq[i].backend && !mem_log_ok(mem, base))
			return false;
	return true;
}

/* VHOST_SET_LOG_BASE. vhost-net checks each ring with a back end and keeps the old base
 * on those that fail (the others take the new one); here one log serves both rings, so a
 * failure changes nothing. In place: running rings log from their next write on. */
static int set_log_base(struct elvis_net *net, u64 v)
{
	unsigned long base = (unsigned long)v;

	lockdep_assert_held(&net->mutex);
	if (base != v)
		return -EFAULT;
	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		if (net->vq[i].backend && !vq_log_ok(net, i, base, net->features))
			return -EFAULT;
	/* 0 is vhost's "no log" too: it could only be written at a NULL page */
	net->q.log.base = ev_uptr_from_u64(base);
	net->q.log.size = log_span(base);
	elvis_netq_log_update(&net->q);
	return 0;
}

/* VHOST_SET_LOG_FD: an eventfd, or -1 for none. */
static int set_log_fd(struct elvis_net *net, int __user *argp)
{
	struct eventfd_ctx *ctx = NULL;
	int fd;

	if (get_user(fd, argp))
		return -EFAULT;
	if (fd != -1) {
		ctx = eventfd_ctx_fdget(fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	}
	swap(ctx, net->log_ctx);
	if (ctx)
		eventfd_ctx_put(ctx);
	return 0;
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
	elvis_net_wake_server(net);
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
	if (net->q.vq[0].vr.error || net->q.vq[1].vr.error)
		state = ELVIS_QUEUE_STATE_ERROR;
	else if (elvis_netq_live(&net->q))
		state = ELVIS_QUEUE_STATE_READY;
	else
		state = ELVIS_QUEUE_STATE_UNCONFIGURED;
	spin_lock(&net->view_lock);
	v->state = state;
	v->flags = (net->q.sched.mode == ELVIS_NETQ_POLL ? ELVIS_QUEUE_F_POLLING : 0) |
		   (test_bit(ELVIS_NET_SLOW, &net->pending) ? ELVIS_QUEUE_F_SLOW_PATH : 0);
	v->owner_pid = net->owner_tgid;
	v->backends = (net->vq[ELVIS_NET_VQ_RX].backend ? 1u : 0) | (net->vq[ELVIS_NET_VQ_TX].backend ? 2u : 0);
	v->features = net->features;
	v->ring_num[0] = net->q.vq[0].num;
	v->ring_num[1] = net->q.vq[1].num;
	spin_unlock(&net->view_lock);
}

/* ---- the port of the device model (dataplane/engine/elvis_net.h) ---- */

static struct elvis_net *net_of(struct elvis_netq *q)
{
	return container_of(q, struct elvis_net, q);
}

u64 elvis_netq_port_now(void)
{
	return elvis_now_ns();
}

/* Frames go from guest memory straight into tun, which copies them from our iovecs.
 * With faults off that copy fails on an absent page: tun returns -EFAULT having sent
 * nothing (it counts the attempt in the tap's rx_dropped), the chain is unpopped and
 * the slow path sends it. Copying each frame into a kernel bounce buffer first would
 * keep that counter clean, but would copy every frame, 64 KiB GSO frames included,
 * twice, to spare a counter tick on a path only absent pages take. */
int elvis_netq_port_xmit(struct elvis_netq *q, const struct elvis_chain *c, u64 len)
{
	struct elvis_net *net = net_of(q);
	struct socket *sock = net->vq[ELVIS_NET_VQ_TX].sock;
	struct msghdr msg = { .msg_flags = MSG_DONTWAIT };
	int r;

	for (u32 i = 0; i < c->nout; i++) {
		net->txiov[i].iov_base = c->iov[i].base;
		net->txiov[i].iov_len = c->iov[i].len;
	}
	iov_iter_init(&msg.msg_iter, ITER_SOURCE, net->txiov, c->nout, len);
	r = sock->ops->sendmsg(sock, &msg, len);
	if (r == -EAGAIN || r == -ENOBUFS)
		return -EAGAIN;
	if (r == -EFAULT && q->nofault)
		return -EFAULT;
	if (r != len)
		ev_stat_add(q->st.drops, 1);
	return 0;
}

long elvis_netq_port_recv(struct elvis_netq *q, u8 *buf, u32 max)
{
	struct socket *sock = net_of(q)->vq[ELVIS_NET_VQ_RX].sock;
	struct msghdr msg = { 0 };
	struct kvec kv = { buf, max };
	int got;

	/* tun writes only the legacy 10 header bytes and skips the rest */
	iov_iter_kvec(&msg.msg_iter, ITER_DEST, &kv, 1, max);
	got = sock->ops->recvmsg(sock, &msg, max, MSG_DONTWAIT | MSG_TRUNC);
	return got < 0 ? 0 : got;
}

void elvis_netq_port_notify(struct elvis_netq *q, unsigned int sig)
{
	struct elvis_net *net = net_of(q);
	struct elvis_vq *rx = &net->vq[ELVIS_NET_VQ_RX], *tx = &net->vq[ELVIS_NET_VQ_TX];
	struct eventfd_ctx *ctx;

	switch (sig) {
	case ELVIS_NETQ_SIG_CALL_RX:
	case ELVIS_NETQ_SIG_CALL_TX:
		ctx = sig == ELVIS_NETQ_SIG_CALL_RX ? rx->call : tx->call;
		if (ctx) {
			elvis_eventfd_signal(ctx);
			ELVIS_STAT_ADD(net->interrupts, 1);
		}
		return;
	default:
		ctx = sig == ELVIS_NETQ_SIG_ERR_RX ? rx->err : tx->err;
		if (ctx)
			elvis_eventfd_signal(ctx);
	}
}

/* Listed (in error, polling) before the VMM hears of it. */
void elvis_netq_port_changed(struct elvis_netq *q, int stopped)
{
	struct elvis_net *net = net_of(q);

	view_update(net);
	if (stopped >= 0 && printk_timed_ratelimit(&net->err_log_jiffies, 1000))
		pr_warn("elvis: device %u (pid %d) %s ring error, queue stopped: %s (%d)\n", net->id, net->owner_tgid,
			stopped == ELVIS_NET_VQ_RX ? "rx" : "tx",
			q->vq[stopped].vr.error_what ? q->vq[stopped].vr.error_what : "?", q->vq[stopped].vr.error);
}

/* ---- rings and turns ----
 *
 * Fault containment. A sidecore serves many devices of many VMMs, so it must never sleep
 * on one VMM's memory: its turns run with page faults disabled (sidecore_run), and an
 * access to a guest page that is not resident (swapped out, in a userfaultfd range
 * nobody serves, backed by a slow FUSE file) fails at once with -EFAULT instead of
 * sleeping with sc->lock held. The device model takes such a failure back and stops the
 * turn where nothing is lost or done twice (q->nofault, q->faulted: a chain not sent
 * stays in the ring, one sent whose used entry could not be written is owed, a frame not
 * delivered stays in rxbuf). The device then goes to its slow path: its own thread
 * (slow_main) repeats the turn in the owner's mm with faults allowed, holding only
 * net->mutex, asleep for as long as the VMM takes to serve the fault, and hands the
 * device back to the sidecore afterwards. An access that fails there too is a ring
 * error. The thread is the device's own, not a shared pool's, so no number of stuck
 * devices delays another device's slow path.
 */

/* Follows the configuration: (re)initialises the ring when everything it needs is set.
 * net->mutex held, in the owner's context (the engine reads the used index). */
static int vq_refresh(struct elvis_net *net, struct elvis_vq *vq)
{
	bool want = net->mm && net->mem.nregions && vq->ring->num && vq->ring->addr_set && vq->sock;
	const char *why = "";

	lockdep_assert_held(&net->mutex);
	net->q.features = net->features;
	return elvis_netq_refresh(&net->q, vq == &net->vq[ELVIS_NET_VQ_RX] ? ELVIS_NETQ_RX : ELVIS_NETQ_TX, want, &why);
}

/* Configuration changed under a running ring: a ring that no longer fits is an error. */
static void refresh_all(struct elvis_net *net)
{
	for (int i = 0; i < ELVIS_NET_NVQS; i++)
		if (vq_refresh(net, &net->vq[i]) < 0)
			elvis_netq_error(&net->q, i);
	view_update(net);
}

/* The busy-loop timeout in effect: what the VMM asked for, within busyloop_max_us. */
static u32 busyloop_us(const struct elvis_vq *vq)
{
	return min(READ_ONCE(vq->busyloop_us), READ_ONCE(elvis_params.busyloop_max_us));
}

/* One turn of the device model with this device's parameters; then, if the queue went
 * idle in notification mode, kicks back on (or, like vhost-net's busy loop, a queue given
 * a timeout by QEMU's poll-us keeps being looked at that long after its last work).
 * round: the sidecore's, NULL for the slow path. */
static unsigned int turn(struct elvis_net *net, const struct elvis_drr_round *round, u64 now)
{
	struct elvis_netq *q = &net->q;
	struct elvis_turn t = {
		.now = now,
		.kicks = atomic64_read(&net->kicks),
		.exitless = READ_ONCE(net->exitless),
		.poll_start_rate = READ_ONCE(net->poll_start_rate) ?: READ_ONCE(elvis_params.poll_start_rate),
		.poll_stop_idle_ns = READ_ONCE(net->poll_stop_idle_ns) ?: READ_ONCE(elvis_params.poll_stop_idle_ns),
		.round = round,
		.weight = READ_ONCE(net->weight) ?: ELVIS_WEIGHT_DEFAULT,
		.budget_packets = READ_ONCE(elvis_params.budget_packets),
		.budget_bytes = READ_ONCE(elvis_params.budget_bytes),
	};
	unsigned int total;

	lockdep_assert_held(&net->mutex);
	total = elvis_netq_turn(q, &t);
	WRITE_ONCE(net->work.weight, t.weight);
	WRITE_ONCE(net->work.ring_cap, elvis_netq_ring_cap(q));
	WRITE_ONCE(net->work.busy, q->sched.drr.busy);
	WRITE_ONCE(net->work.moved, total);
	WRITE_ONCE(net->work.last_work, q->sched.last_work_ns);
	/* more may be waiting: another turn before notifications go back on */
	if (total)
		set_bit(ELVIS_NET_PENDING, &net->pending);
	if (q->sched.mode == ELVIS_NETQ_NOTIFY && !total && !q->faulted) {
		u64 spin = (u64)max(busyloop_us(&net->vq[0]), busyloop_us(&net->vq[1])) * 1000;

		if ((spin && elvis_now_ns() - q->sched.last_work_ns < spin) || elvis_netq_enable_notify(q))
			set_bit(ELVIS_NET_PENDING, &net->pending);
	}
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
	if (!READ_ONCE(net->dead) && net->mm && elvis_netq_live(&net->q)) {
		long logged = atomic_long_read(&log_writes);

		kthread_use_mm(net->mm);
		turn(net, NULL, elvis_now_ns());
		kthread_unuse_mm(net->mm);
		log_signal(net, logged);
	}
	clear_bit(ELVIS_NET_SLOW, &net->pending);
	set_bit(ELVIS_NET_PENDING, &net->pending);
	view_update(net);
	mutex_unlock(&net->mutex);
	/* back to whichever sidecore serves it now (a move may have happened meanwhile) */
	elvis_net_wake_server(net);
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

static bool sidecore_run(struct elvis_work *w, const struct elvis_drr_round *round, struct elvis_work_result *res)
{
	struct elvis_net *net = container_of(w, struct elvis_net, work);
	u64 bytes0;

	if (test_bit(ELVIS_NET_SLOW, &net->pending) || !mutex_trylock(&net->mutex))
		return false;
	if (!elvis_netq_live(&net->q)) {
		/* stopped, unconfigured or in error: kicks and ioctls have nothing for us
		 * until a ring comes back, which marks it pending again */
		clear_bit(ELVIS_NET_PENDING, &net->pending);
		WRITE_ONCE(w->busy, false);
		mutex_unlock(&net->mutex);
		return true;
	}
	if (net->q.sched.mode == ELVIS_NETQ_POLL || test_and_clear_bit(ELVIS_NET_PENDING, &net->pending)) {
		long logged = atomic_long_read(&log_writes);

		bytes0 = net->q.st.rx_bytes + net->q.st.tx_bytes;
		kthread_use_mm(net->mm);
		pagefault_disable();
		net->q.nofault = true;
		res->packets = turn(net, round, elvis_now_ns());
		net->q.nofault = false;
		pagefault_enable();
		kthread_unuse_mm(net->mm);
		log_signal(net, logged);
		res->ran = true;
		res->bytes = net->q.st.rx_bytes + net->q.st.tx_bytes - bytes0;
		if (net->q.faulted) {
			set_bit(ELVIS_NET_SLOW, &net->pending);
			view_update(net);
			wake_up_process(net->slow_task);
		}
	}
	res->awake = !test_bit(ELVIS_NET_SLOW, &net->pending) &&
		     (net->q.sched.mode == ELVIS_NETQ_POLL || test_bit(ELVIS_NET_PENDING, &net->pending));
	res->tx_blocked = net->q.tx_blocked;
	mutex_unlock(&net->mutex);
	return true;
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
	if (net->log_ctx)
		eventfd_ctx_put(net->log_ctx);
	net->log_ctx = NULL;
	elvis_netq_reset(&net->q);
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
	/* with LOG_ALL, running rings must be able to log the new memory (vhost's
	 * memory_access_ok) */
	if ((net->features & (1ull << ELVIS_NET_FEAT_LOG_ALL)) && !log_all_ok(net, mem)) {
		r = -EFAULT;
		goto out;
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

	/* like vhost-net, before anything else and with -1 too: the ring must be able to
	 * write its log */
	if (!vq_log_ok(net, (int)(vq - net->vq), (unsigned long)ev_uptr_to_u64(net->q.log.base), net->features))
		return -EFAULT;
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
		net->q.rxlen = 0;
	}
	vq->backend = file;
	vq->sock = sock;
	r = vq_refresh(net, vq);
	if (r < 0) {
		vq->backend = old;
		vq->sock = old ? tun_get_socket(old) : NULL;
		vq->ring->vr.error = 0;
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

/* VHOST_SET_VRING_ADDR. With VHOST_VRING_F_LOG the ring's used-ring writes are logged at
 * log_guest_addr, the used ring's guest address as the VMM gives it (checked against the
 * log like vhost-net does, once the ring has a back end). The same addresses with another
 * log flag, which is how QEMU turns logging on and off, change the running ring in place. */
static int set_vring_addr(struct elvis_net *net, struct elvis_vq *vq, const struct vhost_vring_addr *a)
{
	struct elvis_qvq *r = vq->ring;
	bool log = a->flags & (1u << VHOST_VRING_F_LOG), same;

	if (a->flags & ~(1u << VHOST_VRING_F_LOG))
		return -EOPNOTSUPP;
	if ((a->desc_user_addr & 15) || (a->avail_user_addr & 1) || (a->used_user_addr & 3) ||
	    (a->log_guest_addr & 3))
		return -EINVAL;
	if (vq->backend && log &&
	    !log_range_ok((unsigned long)ev_uptr_to_u64(net->q.log.base), a->log_guest_addr, 4 + 8ull * r->num))
		return -EINVAL;
	same = r->live && r->addr_set && r->desc == a->desc_user_addr && r->avail == a->avail_user_addr &&
	       r->used == a->used_user_addr;
	r->log_used = log;
	r->log_addr = a->log_guest_addr;
	if (same) {
		elvis_netq_log_update(&net->q);
		return 0;
	}
	r->desc = a->desc_user_addr;
	r->avail = a->avail_user_addr;
	r->used = a->used_user_addr;
	r->addr_set = true;
	if (vq_refresh(net, vq) < 0)
		elvis_netq_error(&net->q, (int)(vq - net->vq));
	return 0;
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
		vq->ring->num = s.num;
		return 0;
	case VHOST_SET_VRING_BASE:
		if (copy_from_user(&s, argp, sizeof(s)))
			return -EFAULT;
		if (vq->backend)
			return -EBUSY;
		if (s.num > 0xffff)
			return -EINVAL;
		vq->ring->base = s.num;
		return 0;
	case VHOST_GET_VRING_BASE:
		s.index = idx;
		s.num = vq->ring->live ? vq->ring->vr.last_avail_idx : vq->ring->base;
		return copy_to_user(argp, &s, sizeof(s)) ? -EFAULT : 0;
	case VHOST_SET_VRING_ADDR:
		if (copy_from_user(&a, argp, sizeof(a)))
			return -EFAULT;
		return set_vring_addr(net, vq, &a);
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
		if ((v & (1ull << ELVIS_NET_FEAT_LOG_ALL)) && !log_all_ok(net, &net->mem))
			return -EFAULT;
		if ((v ^ net->features) == (1ull << ELVIS_NET_FEAT_LOG_ALL)) {
			/* QEMU turning logging on or off around a migration: in place, the
			 * rings keep running */
			net->features = v;
			net->q.features = v;
			elvis_netq_log_update(&net->q);
			return 0;
		}
		net->features = v;
		refresh_all(net);
		return 0;
	case VHOST_SET_LOG_BASE:
		if (copy_from_user(&v, argp, sizeof(v)))
			return -EFAULT;
		return set_log_base(net, v);
	case VHOST_SET_LOG_FD:
		return set_log_fd(net, argp);
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

/* elvis_lock held: sc serves the device from now on (NULL: nobody). Once this returns
 * the old sidecore no longer runs it; the ring state lives in the device, so the new one
 * continues exactly where the old one stopped. */
void elvis_net_serve(struct elvis_net *net, struct elvis_sidecore *sc)
{
	struct elvis_sidecore *old = elvis_net_sc(net);

	if (old == sc)
		return;
	if (old)
		elvis_sidecore_detach(old, &net->work);
	RCU_INIT_POINTER(net->sc, NULL);
	if (!sc)
		return;
	elvis_sidecore_attach(sc, &net->work);
	rcu_assign_pointer(net->sc, sc);
	/* the new server picks the ring up where the old one left it: look at it now */
	set_bit(ELVIS_NET_PENDING, &net->pending);
	elvis_sidecore_wake(sc);
}

/* A device with a back end and no sidecore goes to the least loaded one, or to a
 * default unbound sidecore the module creates, so a plain vhostfd user is served. */
static void ensure_served(struct elvis_net *net)
{
	struct elvis_sidecore *sc, *best = NULL;
	int id;

	if (rcu_access_pointer(net->sc) || (!READ_ONCE(net->vq[0].backend) && !READ_ONCE(net->vq[1].backend)))
		return;
	mutex_lock(&elvis_lock);
	if (!elvis_net_sc(net) && idr_find(&elvis_nets, net->id) == net) {
		idr_for_each_entry(&elvis_sidecores, sc, id)
			if (!best || sc->nworks < best->nworks)
				best = sc;
		if (!best && elvis_sidecore_create(-1, true, &best) < 0) {
			pr_warn_ratelimited("elvis: device %u: cannot create a default sidecore\n", net->id);
			best = NULL;
		}
		if (best)
			elvis_net_serve(net, best);
	}
	mutex_unlock(&elvis_lock);
}

static long net_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct elvis_net *net = file->private_data;
	long r, logged;

	if (cmd == ELVIS_NET_IOC_GET_ID)
		return put_user(net->id, (u32 __user *)arg);

	mutex_lock(&net->mutex);
	logged = atomic_long_read(&log_writes);
	/* a ring restarted here writes what it owed its guest */
	r = net_ioctl_locked(net, cmd, (void __user *)arg);
	log_signal(net, logged);
	view_update(net);
	mutex_unlock(&net->mutex);
	/* the configuration may have changed, and a sidecore that found the mutex taken
	 * skipped the device: let it look */
	set_bit(ELVIS_NET_PENDING, &net->pending);
	elvis_net_wake_server(net);
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
	net->q.rxbuf = kvmalloc(ELVIS_NET_MAX_FRAME, GFP_KERNEL_ACCOUNT);
	net->txiov = kvmalloc_array(ELVIS_CHAIN_MAX_IOV, sizeof(*net->txiov), GFP_KERNEL_ACCOUNT);
	if (!net->q.rxbuf || !net->txiov)
		goto err_free;
	refcount_set(&net->refs, 1);
	mutex_init(&net->mutex);
	spin_lock_init(&net->view_lock);
	INIT_LIST_HEAD(&net->work.node);
	net->work.run = sidecore_run;
	net->q.mem = &net->mem;
	elvis_netq_reset(&net->q);
	for (int i = 0; i < ELVIS_NET_NVQS; i++) {
		net->vq[i].ring = &net->q.vq[i];
		poll_init(&net->vq[i].kick_poll, net, EPOLLIN);
	}
	poll_init(&net->tap_poll, net, EPOLLIN);
	atomic64_set(&net->kicks, 0);
	net->weight = ELVIS_WEIGHT_DEFAULT;
	net->exitless = ELVIS_EXITLESS_MODE_AUTO;
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
	kvfree(net->q.rxbuf);
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
	kvfree(net->q.rxbuf);
	kvfree(net);
}

static int net_release(struct inode *inode, struct file *file)
{
	struct elvis_net *net = file->private_data;

	mutex_lock(&elvis_lock);
	idr_remove(&elvis_nets, net->id);
	/* after this no sidecore looks at the device, nor hands it to the slow path */
	elvis_net_serve(net, NULL);
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
	struct elvis_sidecore *sc;

	lockdep_assert_held(&elvis_lock);
	memset(info, 0, sizeof(*info));
	info->device = net->id;
	info->queue = 0;
	sc = elvis_net_sc(net);
	info->sidecore = sc ? sc->id : ELVIS_SIDECORE_NONE;
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
	struct elvis_sidecore *sc = elvis_net_sc(net);

	lockdep_assert_held(&elvis_lock);
	memset(c, 0, sizeof(*c));
	c->device = net->id;
	c->queue = 0;
	c->sidecore = sc ? sc->id : ELVIS_SIDECORE_NONE;
	c->rx_packets = READ_ONCE(net->q.st.rx_packets);
	c->rx_bytes = READ_ONCE(net->q.st.rx_bytes);
	c->tx_packets = READ_ONCE(net->q.st.tx_packets);
	c->tx_bytes = READ_ONCE(net->q.st.tx_bytes);
	c->kicks = atomic64_read(&net->kicks);
	c->interrupts = READ_ONCE(net->interrupts);
	c->polls = READ_ONCE(net->q.st.polls);
	c->empty_polls = READ_ONCE(net->q.st.empty_polls);
	c->busy_ns = READ_ONCE(net->q.st.busy_ns);
	c->errors = READ_ONCE(net->q.st.errors);
	c->drops = READ_ONCE(net->q.st.drops);
	c->wait_ns = READ_ONCE(net->q.st.wait_ns);
	c->wait_samples = READ_ONCE(net->q.st.wait_samples);
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
