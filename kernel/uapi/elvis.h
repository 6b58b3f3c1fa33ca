/* SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT */
/*
 * The ABI of elvis.ko's control device /dev/elvis. This file is the only definition of
 * that ABI: the module and elvis-manager both include it as-is. Changing the layout or
 * the meaning of anything here breaks user space; add commands and fields at the end
 * of structures (the array commands carry an element size for that), bump
 * ELVIS_IOC_ABI_VERSION when a change is not backwards compatible.
 *
 * Objects
 *   sidecore  a kernel thread (bound to a CPU, or unbound for the default one) that
 *             polls the virtqueues of many devices of many processes. Ids start at 1;
 *             0 (ELVIS_SIDECORE_NONE) means "none".
 *   device    one open file of /dev/elvis-net (the vhost-net compatible device): one
 *             virtio-net queue pair with its tap back end, owned by the process that
 *             issued VHOST_SET_OWNER (QEMU opens one per queue pair). Ids start at 1 and
 *             are never reused while the module is loaded.
 *   queue     (device id, queue index): the unit a sidecore serves. A /dev/elvis-net
 *             device has exactly one queue pair, index 0.
 *
 * A device that gets a back end (VHOST_NET_SET_BACKEND) while no sidecore serves it is
 * given to the sidecore serving the fewest queues; when there is no sidecore at all the
 * module creates a default, unbound one (ELVIS_SIDECORE_F_DEFAULT), so a plain QEMU
 * "-netdev tap,vhost=on,vhostfd=N" user is served without any daemon. The default
 * sidecore is an ordinary sidecore afterwards: queues move off it, DESTROY removes it.
 *
 * Every command returns 0 or -1 with errno. /dev/elvis opens only with CAP_NET_ADMIN
 * (it is created mode 0600). All structures use fixed-width types, explicit padding
 * (which must be zero on input, else EINVAL) and identical layouts on 32 and 64 bits.
 *
 * ELVIS_IOC_VERSION (read): fills struct elvis_ioc_version. abi is ELVIS_IOC_ABI_VERSION
 *     of the running module; user space refuses to drive a module with another value.
 *
 * ELVIS_IOC_SIDECORE_CREATE (read/write): starts a sidecore kthread bound to cpu,
 *     which must be online (EINVAL otherwise), with flags 0; or, with flags
 *     ELVIS_SIDECORE_F_DEFAULT and cpu -1, an unbound sidecore like the one the module
 *     creates itself (a place to park queues no bound sidecore should serve). Any other
 *     combination is EINVAL. On return id holds the new sidecore's id. ENOSPC past
 *     ELVIS_MAX_SIDECORES.
 *
 * ELVIS_IOC_SIDECORE_DESTROY (write): stops sidecore id. EBUSY while it serves any
 *     queue (move them first), ENOENT if there is no such sidecore.
 *
 * ELVIS_IOC_LIST_SIDECORES, ELVIS_IOC_LIST_QUEUES, ELVIS_IOC_READ_COUNTERS (read/write):
 *     array commands on struct elvis_ioc_array. User space sets ptr to a buffer of
 *     capacity elements of elem_size bytes each; the module writes
 *     min(capacity, available) elements, each truncated or zero-extended to elem_size,
 *     and sets count to the number available (which may exceed capacity: retry with a
 *     larger buffer). capacity 0 with ptr 0 just returns count. elem_size must be at
 *     least the ELVIS_*_SIZE_V1 of the element type, else EINVAL.
 *     LIST_SIDECORES fills struct elvis_sidecore_info, LIST_QUEUES struct
 *     elvis_queue_info, READ_COUNTERS struct elvis_queue_counters. The sidecore counters
 *     are in struct elvis_sidecore_info. Per-VM time is the sum of busy_ns over the
 *     queues whose owner_pid is that VM's VMM process.
 *
 * ELVIS_IOC_QUEUE_MOVE (write): serve queue (device, queue) from sidecore. The move is
 *     live: the old sidecore finishes its current turn on the queue, the new one starts
 *     from the same ring position, so no buffer is lost or processed twice. ENOENT for
 *     an unknown device, queue or sidecore.
 *
 * ELVIS_IOC_SET_POLL (write): polling parameters. scope ELVIS_POLL_SCOPE_GLOBAL sets the
 *     defaults of every queue (device, queue must be 0); ELVIS_POLL_SCOPE_QUEUE sets one
 *     queue's own values. mask says which fields to apply (ELVIS_POLL_SET_*); fields not
 *     in mask must be 0. For a queue, poll_start_rate and
 *     poll_stop_idle_ns of 0 mean "use the global value". Budgets are global only
 *     (EINVAL in queue scope); weight and exitless are per queue only (the weight of a
 *     device scales its budget: budget * weight / ELVIS_WEIGHT_DEFAULT per turn).
 *     Ranges: weight ELVIS_WEIGHT_MIN..ELVIS_WEIGHT_MAX, budget_packets and
 *     budget_bytes ELVIS_BUDGET_*_MIN..ELVIS_BUDGET_*_MAX, exitless <
 *     __ELVIS_EXITLESS_MODE_MAX; else EINVAL. Defaults (the ELVIS_*_DEFAULT values below,
 *     those of the daemon's tunables table, which a test checks against them): 128
 *     packets and 128 KiB per turn, polling from 1000 kicks/s, back to notifications
 *     after 1 s idle, weight 100, exitless auto. Exitless never keeps the queue on its sidecore, notification
 *     driven only.
 *
 * ELVIS_NET_IOC_GET_ID (read, on /dev/elvis-net, not /dev/elvis): the device id of that
 *     open file, so whoever holds the fd (the daemon, given QEMU's vhostfd) can name it
 *     in the commands above. Any process holding the fd may ask.
 *
 * VHOST_SET_VRING_BUSYLOOP_TIMEOUT (on /dev/elvis-net): unlike vhost-net, which takes any
 *     32-bit number of microseconds, the timeout is clamped (not refused, so a VMM set up
 *     for vhost-net still starts) to the module parameter busyloop_max_us: by default
 *     ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT (50 ms), settable by root up to
 *     ELVIS_NET_BUSYLOOP_MAX_US_LIMIT (1 s). VHOST_GET_VRING_BUSYLOOP_TIMEOUT answers the
 *     value in effect.
 *
 * Fault containment: a sidecore never sleeps on a VMM's memory. When a guest page a
 *     queue needs is not resident (swapped out, a userfaultfd range, a FUSE-backed file),
 *     the queue leaves its sidecore for its device's own thread, which waits for the
 *     page in the VMM's context; meanwhile LIST_QUEUES shows ELVIS_QUEUE_F_SLOW_PATH and
 *     the sidecore serves its other queues. When the page arrives the queue continues
 *     where it stopped, nothing lost or repeated, and goes back to its sidecore. Only an
 *     address that faults for good is a ring error (ELVIS_QUEUE_STATE_ERROR). No command
 *     here waits for a device's own ioctls, so a VMM stuck on its memory in the middle
 *     of one does not hold them up.
 *
 * Adaptive polling (exitless auto): a queue is served in notification mode (the guest
 * kicks, the sidecore sleeps when every queue it serves is idle) until its kick rate
 * reaches poll_start_rate kicks/s; then the sidecore polls it with guest notifications
 * suppressed (VRING_USED_F_NO_NOTIFY or the EVENT_IDX avail event) until it has been
 * idle for poll_stop_idle_ns.
 */
#ifndef _UAPI_LINUX_ELVIS_H
#define _UAPI_LINUX_ELVIS_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define ELVIS_IOC_ABI_VERSION 1
#define ELVIS_IOC_MAGIC 0xEC

#define ELVIS_CONTROL_DEVICE "/dev/elvis"
#define ELVIS_NET_DEVICE "/dev/elvis-net"

#define ELVIS_MAX_SIDECORES 256
#define ELVIS_SIDECORE_NONE 0u
#define ELVIS_WEIGHT_MIN 1
#define ELVIS_WEIGHT_MAX 10000
#define ELVIS_WEIGHT_DEFAULT 100
#define ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT 50000u
#define ELVIS_NET_BUSYLOOP_MAX_US_LIMIT 1000000u
/* Turn budgets and polling thresholds (ELVIS_IOC_SET_POLL). Widening a range is
 * compatible; narrowing one breaks callers. */
#define ELVIS_BUDGET_PACKETS_MIN 1u
#define ELVIS_BUDGET_PACKETS_MAX 65536u
#define ELVIS_BUDGET_PACKETS_DEFAULT 128u
#define ELVIS_BUDGET_BYTES_MIN 1500u
#define ELVIS_BUDGET_BYTES_MAX (64u << 20)
#define ELVIS_BUDGET_BYTES_DEFAULT (128u << 10)
#define ELVIS_POLL_START_RATE_DEFAULT 1000u     /* kicks/s */
#define ELVIS_POLL_STOP_IDLE_MS_DEFAULT 1000u

#if defined(__cplusplus)
#define ELVIS_UAPI_ASSERT_SIZE(type, size) static_assert(sizeof(type) == (size), #type " is ABI: its size is fixed")
#else
#define ELVIS_UAPI_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " is ABI: its size is fixed")
#endif

struct elvis_ioc_version {
	__u32 abi;              /* ELVIS_IOC_ABI_VERSION */
	__u32 nr_cpus;          /* nr_cpu_ids of the host, for validating cpu numbers */
	__u64 features;         /* ELVIS_NET_* virtio feature bits /dev/elvis-net offers */
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_ioc_version, 16);

struct elvis_ioc_sidecore {
	__u32 id;               /* out for CREATE, in for DESTROY */
	__s32 cpu;              /* in for CREATE */
	__u32 flags;            /* 0 */
	__u32 pad;
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_ioc_sidecore, 16);

struct elvis_ioc_array {
	__u64 ptr;              /* user pointer to capacity elements of elem_size bytes */
	__u32 elem_size;
	__u32 capacity;
	__u32 count;            /* out: elements available */
	__u32 pad;
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_ioc_array, 24);

#define ELVIS_SIDECORE_F_SLEEPING (1u << 0)     /* every queue it serves is in notification mode */
#define ELVIS_SIDECORE_F_DEFAULT (1u << 1)      /* created by the module for a device without one */

struct elvis_sidecore_info {
	__u32 id;
	__s32 cpu;              /* -1: not bound (the default sidecore) */
	__u32 nqueues;
	__u32 flags;            /* ELVIS_SIDECORE_F_* */
	__u64 polls;            /* queue turns taken */
	__u64 empty_polls;      /* turns that found no work */
	__u64 busy_ns;          /* time in rounds that moved packets */
	__u64 idle_ns;          /* time in empty rounds and asleep */
	__u64 packets;
	__u64 bytes;
	__u64 wakeups;          /* returns from sleep */
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_sidecore_info, 72);
#define ELVIS_SIDECORE_INFO_SIZE_V1 72

enum elvis_queue_state {
	ELVIS_QUEUE_STATE_UNCONFIGURED, /* no owner, memory table, rings or back end yet */
	ELVIS_QUEUE_STATE_READY,
	ELVIS_QUEUE_STATE_ERROR,        /* a ring was malformed: stopped, error eventfd signalled */
	__ELVIS_QUEUE_STATE_MAX
};

enum elvis_exitless_mode {
	ELVIS_EXITLESS_MODE_AUTO,       /* poll while busy, notifications while idle */
	ELVIS_EXITLESS_MODE_ALWAYS,     /* always polled */
	ELVIS_EXITLESS_MODE_NEVER,      /* notification driven only */
	__ELVIS_EXITLESS_MODE_MAX
};

#define ELVIS_QUEUE_F_POLLING (1u << 0)         /* guest notifications suppressed */
#define ELVIS_QUEUE_F_SLOW_PATH (1u << 1)       /* waiting for a guest page, off its sidecore */

struct elvis_queue_info {
	__u32 device;
	__u32 queue;            /* 0 */
	__u32 sidecore;         /* ELVIS_SIDECORE_NONE until a back end is set */
	__u32 state;            /* enum elvis_queue_state */
	__s32 owner_pid;        /* tgid of the VMM (VHOST_SET_OWNER), 0 when none */
	__u32 backends;         /* bit 0: RX (vq 0) has a tap back end, bit 1: TX (vq 1) */
	__u64 features;         /* virtio features acked by the VMM */
	__u32 flags;            /* ELVIS_QUEUE_F_* */
	__u32 weight;
	__u32 exitless;         /* enum elvis_exitless_mode */
	__u32 poll_start_rate;  /* own value, 0: global */
	__u64 poll_stop_idle_ns;        /* own value, 0: global */
	__u32 ring_num[2];      /* RX (vq 0), TX (vq 1) sizes */
	__u32 tap_ifindex;      /* the back end tap (RX's, else TX's) in the owner's netns, 0: none */
	__u32 pad;
	char tap[16];           /* its name, NUL-terminated, "" when none */
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_queue_info, 88);
#define ELVIS_QUEUE_INFO_SIZE_V1 88

struct elvis_queue_counters {
	__u32 device;
	__u32 queue;
	__u32 sidecore;
	__u32 pad;
	__u64 rx_packets, rx_bytes;     /* towards the guest; bytes without the virtio-net header */
	__u64 tx_packets, tx_bytes;     /* from the guest */
	__u64 kicks;                    /* guest->host notifications received */
	__u64 interrupts;               /* host->guest notifications sent */
	__u64 polls, empty_polls;       /* turns taken, turns without work */
	__u64 busy_ns;                  /* sidecore time spent on this queue */
	__u64 errors;                   /* ring errors (the ring stops) */
	__u64 drops;                    /* packets dropped: undersized, oversized, back end refused */
	/* added after the first release (elem_size 104 still works, without them): */
	__u64 wait_ns;                  /* sum over turns that found work of the time since the queue's previous turn */
	__u64 wait_samples;             /* the number of such turns (wait_ns / wait_samples: mean wait) */
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_queue_counters, 120);
#define ELVIS_QUEUE_COUNTERS_SIZE_V1 104

enum elvis_poll_scope {
	ELVIS_POLL_SCOPE_GLOBAL,
	ELVIS_POLL_SCOPE_QUEUE,
	__ELVIS_POLL_SCOPE_MAX
};

#define ELVIS_POLL_SET_START_RATE (1u << 0)
#define ELVIS_POLL_SET_STOP_IDLE (1u << 1)
#define ELVIS_POLL_SET_BUDGET_PACKETS (1u << 2)
#define ELVIS_POLL_SET_BUDGET_BYTES (1u << 3)
#define ELVIS_POLL_SET_WEIGHT (1u << 4)
#define ELVIS_POLL_SET_EXITLESS (1u << 5)
#define __ELVIS_POLL_SET_ALL ((1u << 6) - 1)

struct elvis_ioc_poll {
	__u32 scope;            /* enum elvis_poll_scope */
	__u32 device;
	__u32 queue;
	__u32 mask;             /* ELVIS_POLL_SET_* */
	__u32 poll_start_rate;  /* kicks/s at which a queue starts being polled */
	__u32 budget_packets;   /* per turn at ELVIS_WEIGHT_DEFAULT */
	__u64 poll_stop_idle_ns;        /* idle time after which a polled queue goes back to notifications */
	__u32 budget_bytes;
	__u32 weight;
	__u32 exitless;         /* enum elvis_exitless_mode */
	__u32 pad;
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_ioc_poll, 48);

struct elvis_ioc_queue_move {
	__u32 device;
	__u32 queue;
	__u32 sidecore;
	__u32 pad;
};
ELVIS_UAPI_ASSERT_SIZE(struct elvis_ioc_queue_move, 16);

#define ELVIS_IOC_VERSION _IOR(ELVIS_IOC_MAGIC, 0x00, struct elvis_ioc_version)
#define ELVIS_IOC_SIDECORE_CREATE _IOWR(ELVIS_IOC_MAGIC, 0x01, struct elvis_ioc_sidecore)
#define ELVIS_IOC_SIDECORE_DESTROY _IOW(ELVIS_IOC_MAGIC, 0x02, struct elvis_ioc_sidecore)
#define ELVIS_IOC_LIST_SIDECORES _IOWR(ELVIS_IOC_MAGIC, 0x03, struct elvis_ioc_array)
#define ELVIS_IOC_LIST_QUEUES _IOWR(ELVIS_IOC_MAGIC, 0x04, struct elvis_ioc_array)
#define ELVIS_IOC_QUEUE_MOVE _IOW(ELVIS_IOC_MAGIC, 0x05, struct elvis_ioc_queue_move)
#define ELVIS_IOC_SET_POLL _IOW(ELVIS_IOC_MAGIC, 0x06, struct elvis_ioc_poll)
#define ELVIS_IOC_READ_COUNTERS _IOWR(ELVIS_IOC_MAGIC, 0x07, struct elvis_ioc_array)

#define ELVIS_NET_IOC_GET_ID _IOR(ELVIS_IOC_MAGIC, 0x40, __u32)

/* virtio feature bits /dev/elvis-net offers (VHOST_GET_FEATURES) */
#define ELVIS_NET_F_MRG_RXBUF 15
#define ELVIS_NET_F_LOG_ALL 26          /* VHOST_F_LOG_ALL: dirty logging for live migration */
#define ELVIS_NET_F_INDIRECT_DESC 28
#define ELVIS_NET_F_EVENT_IDX 29
#define ELVIS_NET_F_VERSION_1 32
#define ELVIS_NET_FEATURES ((1ull << ELVIS_NET_F_MRG_RXBUF) | (1ull << ELVIS_NET_F_LOG_ALL) | \
			    (1ull << ELVIS_NET_F_INDIRECT_DESC) | (1ull << ELVIS_NET_F_EVENT_IDX) | \
			    (1ull << ELVIS_NET_F_VERSION_1))

#endif /* _UAPI_LINUX_ELVIS_H */
