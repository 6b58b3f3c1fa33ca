/* The virtio-net device model, shared by the user-space data plane and elvis.ko: one
 * queue pair (vq 0 receive, vq 1 transmit) on top of the ring engine. It owns what a
 * device does with its rings: TX and RX batches, delivery into receive buffers (mergeable
 * or not), the used-ring publishing and guest interrupts, ring errors, the weighted turn
 * (elvis_drr.h) and adaptive polling (kick rate in, idle time out).
 *
 * What differs between the planes is behind the port below, a handful of functions each
 * plane defines: the back end (a tap socket in the kernel; a tap fd, a null sink or a
 * loopback in user space), how a notification reaches the guest, and what to do when a
 * ring stops (log, publish state). Guest memory is reached through elvis_port.h.
 *
 * Locking: none here. A queue pair is used by one thread at a time (qp->lock in user
 * space, net->mutex in the kernel), the caller's job.
 *
 * Faults: a plane that runs turns with page faults disabled (the kernel's sidecores) sets
 * q->nofault. An access that fails then is not a ring error: the engine takes the error
 * back, stops the turn where nothing is lost or done twice and sets q->faulted; the plane
 * repeats the turn where faults may sleep (see kernel/net.c, "slow path"). */
#pragma once
#include "elvis_turn.h"

#define ELVIS_NET_HDR_LEN 10                    /* legacy virtio_net_hdr */
#define ELVIS_NET_HDR_LEN_MRG 12                /* virtio_net_hdr_v1 / _mrg_rxbuf */
#define ELVIS_NET_MAX_FRAME (65536 + 256)       /* largest frame either way, header included */
#define ELVIS_NET_TX_BATCH 32

/* feature bits the model reads */
#define ELVIS_NET_FEAT_MRG_RXBUF 15
#define ELVIS_NET_FEAT_LOG_ALL 26               /* VHOST_F_LOG_ALL: log every guest write */
#define ELVIS_NET_FEAT_INDIRECT_DESC 28
#define ELVIS_NET_FEAT_EVENT_IDX 29
#define ELVIS_NET_FEAT_VERSION_1 32

#define ELVIS_NETQ_RX 0
#define ELVIS_NETQ_TX 1

/* notifications for the guest (elvis_netq_port_notify) */
#define ELVIS_NETQ_SIG_CALL_RX 1u
#define ELVIS_NETQ_SIG_CALL_TX 2u
#define ELVIS_NETQ_SIG_ERR_RX 4u
#define ELVIS_NETQ_SIG_ERR_TX 8u

/* the turn's modes and policies (elvis_turn.h), under the names the planes use */
#define ELVIS_NETQ_AUTO ELVIS_TURN_AUTO
#define ELVIS_NETQ_ALWAYS ELVIS_TURN_ALWAYS
#define ELVIS_NETQ_NEVER ELVIS_TURN_NEVER
#define ELVIS_NETQ_NOTIFY ELVIS_TURN_NOTIFY
#define ELVIS_NETQ_POLL ELVIS_TURN_POLL

struct elvis_netq {
        struct elvis_qvq vq[2];
        const struct elvis_vring_mem *mem;
        struct elvis_log log;                   /* the VMM's dirty log, or base EV_UPTR_NULL */
        u64 features;                           /* acked by the driver */
        struct elvis_sched sched;               /* mode, DRR credit, this turn's grant (elvis_turn.h) */
        bool rx_blocked;                        /* a frame waits for guest receive buffers */
        bool tx_blocked;                        /* the back end refused a frame: retry later */
        bool tx_waits_rx;                       /* loopback: a frame waits for receive buffers */
        bool nofault, faulted;                  /* see above */
        bool tx_owed;                           /* a frame the back end took whose used entry is unwritten */
        u16 tx_owed_head;
        u64 tx_owed_len;
        u8 *rxbuf;                              /* ELVIS_NET_MAX_FRAME bytes, the plane's */
        u32 rxlen;                              /* a frame in rxbuf not delivered yet */
        struct elvis_qstats st;
        struct elvis_chain chain;               /* TX; large, as is the next */
        struct elvis_chain rx_chain;            /* RX (loopback delivers while a TX chain is out) */
};

/* ---- the port: each plane defines these ---- */

/* Hands one TX frame (header included, len bytes in c's readable segments) to the back
 * end. 0: taken or dropped for good (the plane counts a drop); -EAGAIN: the back end is
 * full, retry later; -ENOSPC: no receive buffer for it (loopback), retry when the guest
 * adds some; -EFAULT with q->nofault: a guest page is absent, nothing was sent. */
int elvis_netq_port_xmit(struct elvis_netq *q, const struct elvis_chain *c, u64 len);
/* Reads one frame from the back end into buf: its length, or <= 0 when there is none. */
long elvis_netq_port_recv(struct elvis_netq *q, u8 *buf, u32 max);
/* A notification the guest is owed (ELVIS_NETQ_SIG_*): written now or right after the
 * turn, never waited for. */
void elvis_netq_port_notify(struct elvis_netq *q, unsigned int sig);
/* The pair's state changed (a ring stopped with an error, the mode changed). */
void elvis_netq_port_changed(struct elvis_netq *q, int stopped_vq);
u64 elvis_netq_port_now(void);

/* ---- the model ---- */

unsigned int elvis_netq_hdr_len(const struct elvis_netq *q);
/* Packets the rings hold at once, for the weighted turn: half of the smallest live ring,
 * two descriptors a packet (while a turn takes one half, the guest refills the other). */
u32 elvis_netq_ring_cap(const struct elvis_netq *q);
bool elvis_netq_live(const struct elvis_netq *q);
/* Back to a driver-less pair: rings unconfigured, notifications, nothing owed, no dirty
 * log (the plane releases its mapping). Keeps the counters, the memory table pointer and
 * rxbuf. */
void elvis_netq_reset(struct elvis_netq *q);
/* (Re)initialises a ring from its configuration when want, stops it otherwise; what a
 * running ring owed its guest is written first and its position kept. 0, or the
 * negative error latched in the ring (the caller reports it: elvis_netq_error). */
int elvis_netq_refresh(struct elvis_netq *q, int vq, bool want, const char **why);
/* Stops a ring after an error: counter, the error notification once, port_changed. */
void elvis_netq_error(struct elvis_netq *q, int vq);
/* Stops both rings with err (guest memory vanished, the VMM's fds misbehave). */
void elvis_netq_fail(struct elvis_netq *q, int err, const char *what);
/* Applies the dirty-log configuration (q->log, the LOG_ALL feature, each ring's log_used
 * and log_addr) to the live rings in place: turning logging on or off while the rings run
 * neither loses nor repeats a frame. refresh applies it too. */
void elvis_netq_log_update(struct elvis_netq *q);
void elvis_netq_set_mode(struct elvis_netq *q, enum elvis_turn_mode mode);
/* One turn: the mode follows the policy and the kick rate, the grant follows the weight,
 * TX then RX batches until it or the work runs out, used rings published and the guest
 * interrupted if it asked; a queue idle long enough stops polling. Packets moved. */
unsigned int elvis_netq_turn(struct elvis_netq *q, const struct elvis_turn *t);
/* Instead of a turn, for a queue that had nothing: true if a turn now would find nothing
 * in the rings and change nothing (elvis_sched_quiet; no frame owed, refused or faulted;
 * no new TX buffer; for a frame that waits, no new receive buffer), counted as an empty
 * poll. It reads one avail index or two and writes no guest memory. What the back end may
 * hold for the receive ring (a tap's data) is the plane's to know: it turns the queue
 * when there is any. False: turn it. */
bool elvis_netq_idle(struct elvis_netq *q, u64 now, u64 kicks);
/* Guest kicks back on after a turn that found nothing. True if work arrived meanwhile
 * (no kick will come for it). Receive kicks are wanted only while a frame waits. */
bool elvis_netq_enable_notify(struct elvis_netq *q);
/* Delivers one frame (header included) to the receive ring: 1 delivered or dropped for
 * good, 0 no room now, -EAGAIN faulted with nofault (nothing happened), other < 0 ring
 * error (latched; the caller stops the ring). Counts the packet when delivered. */
int elvis_netq_deliver(struct elvis_netq *q, u8 *data, u32 len);
