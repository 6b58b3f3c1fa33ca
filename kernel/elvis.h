/* SPDX-License-Identifier: GPL-2.0 */
/* Internals of elvis.ko: net devices (one /dev/elvis-net file, one queue pair), sidecores
 * (kthreads serving many devices) and the registry the control device walks.
 *
 * Locks:
 *   elvis_lock          the registry (device and sidecore idrs), the global parameters,
 *                       the per-queue parameters /dev/elvis sets (weight, exitless, polling
 *                       thresholds: written under it, read by turns with READ_ONCE), and
 *                       which sidecore serves which device (net->sc);
 *   sc->lock            a sidecore's device list; the sidecore holds it for a whole round,
 *                       so whoever removes a device from the list under it knows the
 *                       sidecore no longer looks at that device;
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
#include "elvis_vring.h"

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

#define ELVIS_NET_VQ_RX 0
#define ELVIS_NET_VQ_TX 1
#define ELVIS_NET_NVQS 2
#define ELVIS_HDR_LEN_MRG 12            /* virtio_net_hdr_v1 / virtio_net_hdr_mrg_rxbuf */
#define ELVIS_HDR_LEN 10                /* legacy virtio_net_hdr */
#define ELVIS_RX_MAX (65536 + 256)      /* largest frame taken from the tap, header included */

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

struct elvis_vq {
	struct elvis_vring vr;
	u32 num;
	u64 desc, avail, used;
	u16 base;
	bool addr_set;
	bool live;                      /* vr is initialised and may be processed */
	bool err_signalled;
	u32 busyloop_us;                /* VHOST_SET_VRING_BUSYLOOP_TIMEOUT (QEMU's tap poll-us) */
	struct file *kick;
	struct elvis_poll kick_poll;
	struct eventfd_ctx *call, *err;
	struct file *backend;           /* tap file (VHOST_NET_SET_BACKEND) */
	struct socket *sock;
};

enum elvis_net_mode { ELVIS_MODE_NOTIFY, ELVIS_MODE_POLL };

struct elvis_net_stats {
	u64 rx_packets, rx_bytes, tx_packets, tx_bytes;
	u64 interrupts, polls, empty_polls, busy_ns, errors, drops;
	u64 wait_ns, wait_samples;
};

/* Single-writer counters: the writer holds net->mutex, readers take snapshots. */
#define ELVIS_STAT_ADD(field, n) WRITE_ONCE(field, READ_ONCE(field) + (n))

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
	struct elvis_vq vq[ELVIS_NET_NVQS];
	struct elvis_poll tap_poll;     /* RX back end readable */
	/* serving: sc and sc_node change under elvis_lock and the sidecores' locks */
	struct elvis_sidecore *sc;
	struct list_head sc_node;
	unsigned long pending;          /* ELVIS_NET_PENDING, ELVIS_NET_SLOW */
	enum elvis_net_mode mode;
	u64 last_work_ns, last_turn_ns, window_start_ns, window_kicks;
	s64 deficit_packets, deficit_bytes;
	bool rx_blocked, tx_blocked;
	/* parameters set through /dev/elvis */
	u32 weight, exitless, poll_start_rate;
	u64 poll_stop_idle_ns;
	/* a frame read from the tap that could not be delivered yet */
	u8 *rxbuf;
	size_t rxlen;
	struct iovec *txiov;
	/* fault containment: see the slow path in net.c */
	bool nofault;                   /* this turn runs with page faults disabled */
	bool faulted;                   /* ... and a guest access failed: the slow path repeats it */
	bool tx_owed;                   /* a chain the tap took whose used entry is still unwritten */
	u16 tx_owed_head;
	u64 tx_owed_len;
	bool dead;                      /* the file is closed: the slow-path thread exits */
	struct task_struct *slow_task;  /* created by the first VHOST_SET_OWNER */
	spinlock_t view_lock;
	struct elvis_net_view view;
	atomic64_t kicks;
	struct elvis_net_stats st;
	unsigned long err_log_jiffies;
	struct elvis_chain chain;       /* large: last */
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
	struct list_head nets;
	unsigned int nnets;
	atomic_t kicked;                /* set by wakers, cleared at the start of each round */
	bool sleeping;
	unsigned int rr;
	struct elvis_sidecore_stats st;
	struct rcu_head rcu;
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
/* One sidecore turn on a device, with net->mutex held: in the owner's mm, page faults
 * disabled; a fault hands the device to its slow path (ELVIS_NET_SLOW). Packets moved. */
unsigned int elvis_net_turn(struct elvis_net *net, struct elvis_sidecore *sc, u64 now);
bool elvis_net_live(const struct elvis_net *net);
void elvis_net_info(struct elvis_net *net, struct elvis_queue_info *info);
void elvis_net_counters(struct elvis_net *net, struct elvis_queue_counters *c);

/* sidecore.c: all with elvis_lock held */
int elvis_sidecore_create(int cpu, bool is_default, struct elvis_sidecore **ret);
int elvis_sidecore_destroy(struct elvis_sidecore *sc);
void elvis_sidecore_attach(struct elvis_sidecore *sc, struct elvis_net *net);
void elvis_sidecore_detach(struct elvis_net *net);
/* from any context, including wait-queue callbacks */
void elvis_sidecore_wake(struct elvis_sidecore *sc);
void elvis_sidecore_info(struct elvis_sidecore *sc, struct elvis_sidecore_info *info);

/* control.c */
int elvis_control_register(void);
void elvis_control_unregister(void);

static inline u64 elvis_now_ns(void)
{
	return ktime_get_ns();
}

#endif
