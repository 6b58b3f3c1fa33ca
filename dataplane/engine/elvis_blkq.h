/* The virtio-blk queue model: one virtqueue of a vhost-user-blk device as a unit a
 * sidecore serves, next to net queue pairs and by the same rules (elvis_turn.h: weighted
 * turns, adaptive polling, counters). A turn reaps what the back end completed, then pops,
 * validates (elvis_blk.h) and starts requests until its grant, the ring or the back end's
 * depth runs out, hands them to the back end once, publishes and signals.
 *
 * Requests run asynchronously: a request started in one turn completes in a later one
 * (the plane's back end calls elvis_blkq_done from its reap), or at once for a back end
 * that needs no waiting (null). A back end that is full leaves requests in the guest's
 * ring, where they wait for a completion: never behind another queue's disk.
 *
 * Stopping a ring with requests in flight (the front end stops it, resets the device or
 * goes, or moves the ring): what the back end already finished is completed first; the
 * rest is abandoned: its completions, when they come, write nothing (no status, no used
 * entry: that ring position belongs to a new ring now), and the back end is told
 * (port_abandon) so that it copies nothing into guest memory either. A ring restarted in
 * place (a new memory table or new features, the same ring addresses and size) keeps its
 * requests: they complete into it. The plane keeps the guest's old mappings while the
 * back end may still use them (reserved and inaccessible once abandoned, mapped as they
 * were while requests may still complete through them).
 *
 * Inflight tracking (vhost-user INFLIGHT_SHMFD): the plane may record, in memory the VMM
 * keeps across back-end restarts, which heads are in flight (port_track: popped before
 * the back end sees them, done when their used entry is written, published with the used
 * index). A ring that starts afresh asks the plane what an earlier back end left in
 * flight (port_recover) and executes those heads again, oldest first and before any new
 * avail entry, with last_avail at used index + their number; while abandoned requests of
 * this queue are still on the disk, it waits for them first, so one request never runs
 * twice at once.
 *
 * Locking: none here; one thread at a time per queue (the caller's lock). */
#pragma once
#include "elvis_blk.h"
#include "elvis_turn.h"

/* notifications for the guest (port_notify): the same bits as a net pair's TX vq, so a
 * plane keeps a blk virtqueue in the TX place of its queue slot */
#define ELVIS_BLKQ_SIG_CALL 2u
#define ELVIS_BLKQ_SIG_ERR 8u
#define ELVIS_BLKQ_DEPTH_MAX 256u

struct elvis_blkq_slot {
        struct elvis_blk_req req;
        u32 epoch;                      /* the ring's epoch when it started */
        bool busy;
};

struct elvis_blkq {
        struct elvis_qvq vq;
        const struct elvis_vring_mem *mem;
        struct elvis_log log;                   /* the VMM's dirty log, or base EV_UPTR_NULL */
        u64 features;                           /* acked by the driver */
        const struct elvis_blk_disk *disk;
        struct elvis_sched sched;
        struct elvis_qstats st;
        bool blocked;                           /* the back end was full: requests wait in the ring */
        u32 epoch;                              /* bumped when the ring stops: older requests are abandoned */
        u64 ring_desc, ring_avail, ring_used;   /* the live ring's configuration, to know a restart in place */
        u32 ring_num;
        u32 depth, nfree;
        u32 inflight;                           /* started, not given back by the back end (abandoned included) */
        u32 active;                             /* of those, the ones the ring still waits for */
        const u16 *resubmit;                    /* heads to execute again (port_recover), the plane's */
        u32 nresubmit, resubmitted;
        u16 *free;                              /* depth entries, the plane's */
        struct elvis_blkq_slot *slots;          /* depth entries, the plane's */
        struct elvis_chain chain;               /* large: last */
};

/* ---- the port: the plane defines these ---- */

/* Starts a validated request (IN, OUT, FLUSH, DISCARD, WRITE_ZEROES). 0: started, its
 * completion comes through elvis_blkq_done(q, tag, status); 1: done already, *status set;
 * -EAGAIN: the back end is full (the request goes back to the ring); other negative: the
 * request fails (IOERR). */
int elvis_blkq_port_submit(struct elvis_blkq *q, const struct elvis_blk_req *r, u32 tag, u8 *status);
/* Hands what this turn started to the back end, once per turn; never waits. */
void elvis_blkq_port_kick(struct elvis_blkq *q);
/* Takes up to max completions without waiting, calling elvis_blkq_done for each. */
unsigned int elvis_blkq_port_reap(struct elvis_blkq *q, unsigned int max);
/* Every request in flight now is abandoned: when they complete, nothing may be copied into
 * guest memory for them. */
void elvis_blkq_port_abandon(struct elvis_blkq *q);
void elvis_blkq_port_notify(struct elvis_blkq *q, unsigned int sig);
/* The queue's state changed (stopped after an error: stopped true; the mode changed). */
void elvis_blkq_port_changed(struct elvis_blkq *q, bool stopped);
u64 elvis_blkq_port_now(void);

enum elvis_blkq_track {
        ELVIS_BLKQ_POPPED,      /* v: a head taken from the avail ring, before the back end sees it */
        ELVIS_BLKQ_UNPOPPED,    /* v: that head went back to the avail ring (the back end was full) */
        ELVIS_BLKQ_DONE,        /* v: a head whose used entry was written, not yet published */
        ELVIS_BLKQ_PUBLISHED,   /* v: the used index now published */
};
/* Inflight tracking; a plane that does none ignores it. */
void elvis_blkq_port_track(struct elvis_blkq *q, enum elvis_blkq_track what, u16 v);
/* The ring starts afresh and guest_used is its used index: 0 without tracking; 1 with
 * tracking, *ret_n heads (at most the ring's size, each below it, the plane's array) to
 * execute again oldest first; negative with why when the record cannot be trusted (the
 * ring then does not start). */
int elvis_blkq_port_recover(struct elvis_blkq *q, u16 guest_used, const u16 **ret_heads, u32 *ret_n,
                            const char **why);

/* ---- the model ---- */

/* Sets up a queue (slots and free are the plane's arrays of depth entries, depth 1 to
 * ELVIS_BLKQ_DEPTH_MAX); the ring is unconfigured. */
void elvis_blkq_init(struct elvis_blkq *q, const struct elvis_blk_disk *disk, const struct elvis_vring_mem *mem,
                     struct elvis_blkq_slot *slots, u16 *free, u32 depth);
/* Back to a driver-less queue: ring unconfigured (requests in flight abandoned), notifications,
 * no dirty log. Keeps the counters and what init gave. */
void elvis_blkq_reset(struct elvis_blkq *q);
bool elvis_blkq_live(const struct elvis_blkq *q);
/* Requests the ring holds at once, for the weighted turn. */
u32 elvis_blkq_ring_cap(const struct elvis_blkq *q);
/* (Re)initialises the ring from its configuration when want, stops it otherwise; what the
 * back end finished is completed first, the rest abandoned unless the ring restarts in
 * place. 0 or the ring's error. */
int elvis_blkq_refresh(struct elvis_blkq *q, bool want, const char **why);
/* Stops the ring after an error: counter, the error notification once, port_changed. */
void elvis_blkq_error(struct elvis_blkq *q);
void elvis_blkq_fail(struct elvis_blkq *q, int err, const char *what);
void elvis_blkq_log_update(struct elvis_blkq *q);
void elvis_blkq_set_mode(struct elvis_blkq *q, enum elvis_turn_mode mode);
/* One turn; returns the requests started or answered. */
unsigned int elvis_blkq_turn(struct elvis_blkq *q, const struct elvis_turn *t);
/* Instead of a turn, for a queue that had nothing: true if a turn now would find nothing
 * (elvis_sched_quiet; nothing in flight to reap, the back end not full, no new request in
 * the ring), counted as an empty poll. False: turn it. */
bool elvis_blkq_idle(struct elvis_blkq *q, u64 now, u64 kicks);
/* Guest kicks back on after an empty turn; true if requests arrived meanwhile (and the
 * back end has room for them). */
bool elvis_blkq_enable_notify(struct elvis_blkq *q);
/* A completion from the back end (its reap, or port_submit's caller for "done"). */
void elvis_blkq_done(struct elvis_blkq *q, u32 tag, u8 status);
