/* SPDX-License-Identifier: GPL-2.0 */
/* Internals of elvis.ko: net devices (one /dev/elvis-net file, one queue pair), sidecores
 * (kthreads serving many devices) and the registry the control device walks.
 *
 * Locks:
 *   elvis_lock          the registry (device and sidecore idrs), the global parameters,
 *                       the per-queue parameters /dev/elvis sets (weight, exitless, polling
 *                       thresholds: written under it, read by turns with READ_ONCE), and
 *                       which sidecore serves which device (net->sc: assigned under it,
 *                       read under RCU by wakers; elvis_net_sc() with it held);
 *   sc->lock            a sidecore's work list; the sidecore holds it for a whole round,
 *                       so whoever removes a work from the list under it knows the
 *                       sidecore no longer runs it;
 *   net->mutex          a device's configuration and ring state; its ioctls, the
 *                       sidecore's turns and its slow path take it;
 *   net->view_lock      (spinlock) the copy of a device's state /dev/elvis lists.
 * Order: elvis_lock -> sc->lock -> net->mutex -> net->view_lock, and elvis_lock ->
 * net->view_lock. The sidecore only trylocks net->mutex, and nothing holding elvis_lock
 * or sc->lock ever waits for a net->mutex: its holder may be the VMM's own ioctl asleep
 * on a page of its memory (copy_from_user on a userfaultfd page that is never served),
 * and that must stall only that device. A device ioctl drops net->mutex before it calls
 * into the registry (ensure_served).
 *
 * Fault containment: a sidecore's turn runs with page faults disabled, so an absent
 * guest page makes the access fail instead of sleeping with sc->lock held; the device is
 * then handed to its own slow-path thread, which repeats the turn with faults allowed
 * holding only net->mutex, and gives it back to the sidecore when the fault is served
 * (net.c, "slow path").
 */
#ifndef ELVIS_H
#define ELVIS_H

#include <linux/eventfd.h>
#include <linux/idr.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/rcupdate.h>
#include <linux/refcount.h>
#include <linux/spinlock.h>
#include <linux/types.h>
#include <linux/uio.h>
#include <linux/version.h>
#include <linux/wait.h>

#include "uapi/elvis.h"
#include "elvis_net.h"

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
#error "elvis.ko needs Linux 5.10 or newer (kthread_use_mm, ITER_* iov_iter directions)"
#endif

/* eventfd_signal() lost its count argument in 6.8 */
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
#define elvis_eventfd_signal(ctx) eventfd_signal(ctx)
#else
#define elvis_eventfd_signal(ctx) eventfd_signal(ctx, 1)
#endif

/* module_put_and_exit() became module_put_and_kthread_exit() in 5.17 */
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 17, 0)
#define module_put_and_kthread_exit(code) module_put_and_exit(code)
#endif

/* ITER_SOURCE/ITER_DEST replaced READ/WRITE as iov_iter directions in 6.1 */
#ifndef ITER_SOURCE
#define ITER_SOURCE WRITE
#define ITER_DEST READ
#endif

#define ELVIS_NET_VQ_RX ELVIS_NETQ_RX
#define ELVIS_NET_VQ_TX ELVIS_NETQ_TX
#define ELVIS_NET_NVQS 2

struct elvis_sidecore;
struct elvis_net;

/* a wait-queue hook on a file (kick eventfd or tap), like vhost_poll */
struct elvis_poll {
	poll_table table;
	wait_queue_head_t *wqh;
	wait_queue_entry_t wait;
	__poll_t mask;
	struct elvis_net *net;
};

/* A virtqueue's files; its ring (configuration included) is the device model's, in net->q. */
struct elvis_vq {
	struct elvis_qvq *ring;     /* &net->q.vq[i] */
	u32 busyloop_us;                /* VHOST_SET_VRING_BUSYLOOP_TIMEOUT (QEMU's tap poll-us) */
	struct file *kick;
	struct elvis_poll kick_poll;
	struct eventfd_ctx *call, *err;
	struct file *backend;           /* tap file (VHOST_NET_SET_BACKEND) */
	struct socket *sock;
};

/* Single-writer counters: the writer holds net->mutex, readers take snapshots. */
#define ELVIS_STAT_ADD(field, n) WRITE_ONCE(field, READ_ONCE(field) + (n))

struct elvis_work;

/* What one turn of a work did, for the sidecore's round. */
struct elvis_work_result {
	unsigned int packets;
	u64 bytes;
	bool ran;                       /* a turn ran (a poll, even an empty one) */
	bool awake;                     /* the work wants another turn without a wake-up */
	bool tx_blocked;                /* its back end refused frames: look again in a tick */
};

/* Work a sidecore runs in rounds, registered by a back end (the vhost way: the sidecore
 * knows nothing of devices). run() must not sleep on anything a VMM controls: it trylocks
 * the back end's state and returns false when it cannot have it now (its holder wakes the
 * sidecore when done). The DRR fields are written by run() and read by the round. */
struct elvis_work {
	struct list_head node;          /* on sc->works, under sc->lock */
	bool (*run)(struct elvis_work *w, const struct elvis_drr_round *round, struct elvis_work_result *res);
	u32 weight, ring_cap;           /* WRITE_ONCE by run(), READ_ONCE by the round */
	bool busy;
	u32 moved;                      /* by its last turn, and when it last had work: */
	u64 last_work;                  /* an interactive work shortens every turn (elvis_drr_sparse) */
};

/* What LIST_QUEUES shows of a device that only its owner's ioctls and turns change:
 * copied here under net->view_lock whenever it changes, so a listing never needs
 * net->mutex. */
struct elvis_net_view {
	u32 state;                      /* enum elvis_queue_state */
	u32 flags;                      /* ELVIS_QUEUE_F_* */
	s32 owner_pid;
	u32 backends;
	u64 features;
	u32 ring_num[2];
	int tap_ifindex;                /* the back end tap, found when it was attached */
	struct net *tap_netns;          /* its namespace, with a reference; NULL: no tap */
};

struct elvis_net {
	u32 id;
	refcount_t refs;                /* the open file, and the slow-path thread while it runs */
	struct mutex mutex;
	struct mm_struct *mm;           /* owner's, with a reference (get_task_mm) */
	pid_t owner_tgid;
	u64 features;
	u64 backend_features;
	struct elvis_vring_mem mem;
	struct eventfd_ctx *log_ctx;    /* VHOST_SET_LOG_FD: signalled after dirty-log writes */
	struct elvis_vq vq[ELVIS_NET_NVQS];
	struct elvis_poll tap_poll;     /* RX back end readable */
	/* serving: sc and work.node change under elvis_lock and the sidecores' locks; wakers
	 * (wait-queue callbacks, ioctls) read sc under RCU, and a sidecore is freed only
	 * after a grace period */
	struct elvis_sidecore __rcu *sc;
	struct elvis_work work;
	unsigned long pending;          /* ELVIS_NET_PENDING, ELVIS_NET_SLOW */
	/* parameters set through /dev/elvis */
	u32 weight, exitless, poll_start_rate;
	u64 poll_stop_idle_ns;
	struct iovec *txiov;
	bool dead;                      /* the file is closed: the slow-path thread exits */
	struct task_struct *slow_task;  /* created by the first VHOST_SET_OWNER */
	spinlock_t view_lock;
	struct elvis_net_view view;
	atomic64_t kicks;
	u64 interrupts;
	unsigned long err_log_jiffies;
	struct elvis_netq q;            /* the device model (dataplane/engine/elvis_net.h); large: last */
};

#define ELVIS_NET_PENDING 0             /* a kick, tap data or new configuration since the last turn */
#define ELVIS_NET_SLOW 1                /* the slow path has the device: sidecores skip it */

struct elvis_sidecore_stats {
	u64 polls, empty_polls, busy_ns, idle_ns, packets, bytes, wakeups;
};

struct elvis_sidecore {
	u32 id;
	int cpu;                        /* -1: not bound */
	bool is_default;
	struct task_struct *task;
	struct mutex lock;
	struct list_head works;
	unsigned int nworks;
	struct elvis_drr_round drr;     /* this round's weight unit */
	atomic_t kicked;                /* set by wakers, cleared at the start of each round */
	bool sleeping;
	unsigned int rr;
	struct elvis_sidecore_stats st;
};

struct elvis_params {
	u32 budget_packets, budget_bytes, poll_start_rate;
	u64 poll_stop_idle_ns;
	u32 busyloop_max_us;            /* module parameter busyloop_max_us */
};

/* main.c: the registry */
extern struct mutex elvis_lock;
extern struct idr elvis_nets;
extern struct idr elvis_sidecores;
extern struct elvis_params elvis_params;

/* net.c */
int elvis_net_register(void);
void elvis_net_unregister(void);
void elvis_net_info(struct elvis_net *net, struct elvis_queue_info *info);
/* elvis_lock held: which sidecore serves the device (NULL: none); never waits for it */
void elvis_net_serve(struct elvis_net *net, struct elvis_sidecore *sc);
void elvis_net_counters(struct elvis_net *net, struct elvis_queue_counters *c);

/* sidecore.c: all with elvis_lock held */
int elvis_sidecore_create(int cpu, bool is_default, struct elvis_sidecore **ret);
int elvis_sidecore_destroy(struct elvis_sidecore *sc);
void elvis_sidecore_attach(struct elvis_sidecore *sc, struct elvis_work *w);
void elvis_sidecore_detach(struct elvis_sidecore *sc, struct elvis_work *w);
/* from any context, including wait-queue callbacks */
void elvis_sidecore_wake(struct elvis_sidecore *sc);
/* Wakes whichever sidecore serves the device now (none: nothing). */
void elvis_net_wake_server(struct elvis_net *net);
/* The device's sidecore, elvis_lock held. */
static inline struct elvis_sidecore *elvis_net_sc(struct elvis_net *net)
{
	return rcu_dereference_protected(net->sc, lockdep_is_held(&elvis_lock));
}
void elvis_sidecore_info(struct elvis_sidecore *sc, struct elvis_sidecore_info *info);

/* control.c */
int elvis_control_register(void);
void elvis_control_unregister(void);

static inline u64 elvis_now_ns(void)
{
	return ktime_get_ns();
}

#endif
