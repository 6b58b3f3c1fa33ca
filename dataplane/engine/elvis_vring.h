/* The split-virtqueue engine, shared by the user-space data plane and elvis.ko.
 *
 * It validates everything a guest controls: ring addresses, avail indexes, heads,
 * descriptor chains (loops, length, direction), indirect tables, buffer addresses and
 * lengths against the guest memory map. A bad ring makes the engine return an error
 * and latch it in the ring (vr->error); it never reads or writes outside the regions
 * it was given. No locking here: a ring is used by one thread at a time, the caller's
 * job. Guest memory is reached only through the accessors of elvis_port.h. */
#pragma once
#include "elvis_port.h"

#define ELVIS_VRING_MAX_NUM 32768u
#define ELVIS_MEM_MAX_REGIONS 64u     /* vhost-net's default max_mem_regions */
#define ELVIS_CHAIN_MAX_IOV 1024u      /* like vhost's UIO_MAXIOV */

/* virtio split ring layout (virtio 1.x, little endian) */
#define ELVIS_VRING_DESC_F_NEXT 1
#define ELVIS_VRING_DESC_F_WRITE 2
#define ELVIS_VRING_DESC_F_INDIRECT 4
#define ELVIS_VRING_USED_F_NO_NOTIFY 1
#define ELVIS_VRING_AVAIL_F_NO_INTERRUPT 1

struct elvis_vring_desc {
        ev_le64_t addr;
        ev_le32_t len;
        ev_le16_t flags;
        ev_le16_t next;
};

struct elvis_mem_region {
        u64 gpa;                /* guest physical start */
        u64 size;
        u64 vmm_addr;           /* the VMM's virtual address of gpa (ring addresses use these) */
        ev_uptr base;           /* accessor-space address of gpa */
};

struct elvis_vring_mem {
        u32 nregions;
        struct elvis_mem_region r[ELVIS_MEM_MAX_REGIONS];
};

/* The VMM's dirty log for live migration, vhost's layout: bit (gpa / 4096) % 8 of byte
 * gpa / 4096 / 8 is set when the device wrote guest page gpa / 4096. */
#define ELVIS_LOG_PAGE_SHIFT 12
struct elvis_log {
        ev_uptr base;           /* accessor-space address of byte 0; EV_UPTR_NULL: none */
        u64 size;               /* bytes the VMM gave (vhost-user); the kernel plane checks its range */
};

struct elvis_iov {
        ev_uptr base;
        u32 len;
};

/* A popped descriptor chain: device-readable segments first, then device-writable. */
struct elvis_chain {
        u16 head;
        u32 nout, nin;
        u64 out_len, in_len;
        struct elvis_iov iov[ELVIS_CHAIN_MAX_IOV];
};

enum elvis_chain_dir {
        ELVIS_CHAIN_READ,       /* TX: only device-readable buffers allowed */
        ELVIS_CHAIN_WRITE,      /* RX: only device-writable buffers allowed */
        ELVIS_CHAIN_ANY,
};

struct elvis_vring {
        u16 num;
        ev_uptr desc, avail, used;
        const struct elvis_vring_mem *mem;
        u16 last_avail_idx;     /* next avail entry to consume */
        u16 avail_idx;          /* last avail->idx read */
        u16 used_idx;           /* next used entry to fill (published by elvis_vring_publish) */
        u16 published_used;     /* used->idx as last written */
        u16 signalled_used;
        bool signalled_valid;
        bool event_idx;
        bool indirect;
        bool notify_enabled;    /* guest kicks wanted */
        u16 event_written;      /* last avail_event stored while kicks are off */
        /* dirty logging (see elvis_vring_set_log) */
        const struct elvis_log *log;
        u64 log_used_gpa;       /* guest physical address of the used ring */
        bool log_used;          /* VHOST_VRING_F_LOG: used-ring writes are logged */
        bool log_data;          /* VHOST_F_LOG_ALL: buffers written are logged (elvis_vring_log_chain) */
        int error;              /* 0, or the first error: the ring is stopped */
        const char *error_what;
};

/* Translates a guest physical range into accessor segments (a range may span adjacent
 * regions). 0, -EFAULT (not mapped or wraps), or -E2BIG (more than max segments). */
int elvis_mem_map(const struct elvis_vring_mem *mem, u64 gpa, u64 len, struct elvis_iov *iov, u32 max,
                  u32 *ret_n);
/* Translates a VMM virtual range (ring addresses) that must lie in one region. */
int elvis_mem_map_vmm(const struct elvis_vring_mem *mem, u64 vmm_addr, u64 len, ev_uptr *ret);
/* Checks a memory table: sizes non-zero, no 64-bit wrap, no overlapping guest ranges. */
int elvis_mem_validate(const struct elvis_vring_mem *mem, const char **why);

/* Sets the ring up from the VMM's ring addresses; validates num (power of two, <= 32768),
 * alignment and that the three rings are mapped. base is the first avail index to use. */
int elvis_vring_init(struct elvis_vring *vr, const struct elvis_vring_mem *mem, u32 num, u64 desc, u64 avail,
                     u64 used, u16 base, bool event_idx, bool indirect, const char **why);
/* Entries available to pop: >= 0, or a negative error (latched). */
int elvis_vring_pending(struct elvis_vring *vr);
/* 1 with a chain, 0 when empty, negative error (latched). */
int elvis_vring_pop(struct elvis_vring *vr, struct elvis_chain *c, enum elvis_chain_dir dir);
/* A hint for a batch of small chains: the start of the buffer of the chain `ahead`
 * entries after the next one to pop is fetched into the cache, so that serving the
 * chains before it overlaps the misses a copy of each would take one after another.
 * Only avail entries already seen are looked at; anything odd is left to the pop, which
 * reads and checks everything again. Never fails, changes nothing. */
void elvis_vring_prefetch(struct elvis_vring *vr, u16 ahead);
/* The chain at head, with every check pop makes, without taking an avail entry: a
 * request an earlier back end popped and never completed, executed again (vhost-user
 * inflight tracking). 1, or a negative error (latched). */
int elvis_vring_pop_head(struct elvis_vring *vr, u16 head, struct elvis_chain *c, enum elvis_chain_dir dir);
/* Returns the last n popped chains to the ring (they will be popped again). */
void elvis_vring_unpop(struct elvis_vring *vr, u16 n);
int elvis_vring_push(struct elvis_vring *vr, u16 head, u32 len);
/* Makes pushed entries visible to the guest. */
int elvis_vring_publish(struct elvis_vring *vr);
/* After publish: does the guest want an interrupt for what was published since the last
 * signal (EVENT_IDX used_event, or VRING_AVAIL_F_NO_INTERRUPT)? */
bool elvis_vring_need_signal(struct elvis_vring *vr);
/* Stops guest kicks (polling) / restarts them. Enable returns true when work arrived
 * meanwhile, which the caller must process since no kick will come for it. */
void elvis_vring_notify_disable(struct elvis_vring *vr);
/* Would elvis_vring_notify_disable write anything? (kicks on, or with EVENT_IDX an avail
 * event a quarter of the index space behind) */
static inline bool elvis_vring_notify_disable_due(const struct elvis_vring *vr)
{
        return vr->notify_enabled || (vr->event_idx && (u16)(vr->last_avail_idx - vr->event_written) > 0x4000);
}
bool elvis_vring_notify_enable(struct elvis_vring *vr);
/* A peek for an idle ring: false if a turn has anything to do with it (an error latched,
 * guest kicks on, used entries unpublished), or, with look, if the guest's avail index
 * moved or cannot be read. Reads nothing else and latches nothing: a turn validates. */
static inline bool elvis_vring_quiet(const struct elvis_vring *vr, bool look)
{
        u16 idx;

        if (vr->error || vr->notify_enabled || vr->used_idx != vr->published_used)
                return false;
        return !look || (!ev_load16(ev_uptr_add(vr->avail, 2), &idx) && idx == vr->last_avail_idx);
}
/* Marks the guest pages of [gpa, gpa + len) dirty, one atomic OR per log byte touched.
 * 0, or -EFAULT: no log, the range wraps, or a bit lies beyond log->size (nothing after
 * the first such bit is written). */
int elvis_log_write(const struct elvis_log *log, u64 gpa, u64 len);
/* Turns logging of this ring's writes on or off; the ring's position is untouched, so
 * switching never loses or repeats an entry. log is the device's, and must outlive the
 * ring's use of it. */
void elvis_vring_set_log(struct elvis_vring *vr, const struct elvis_log *log, bool log_data, bool log_used,
                         u64 log_used_gpa);
/* With log_data: logs the first len bytes written into c's device-writable segments
 * (what a used entry of length len covers). 0 or the latched -EFAULT. */
int elvis_vring_log_chain(struct elvis_vring *vr, const struct elvis_chain *c, u64 len);
/* The same for any segments the device wrote: the first len bytes of iov[0..n). */
int elvis_vring_log_iov(struct elvis_vring *vr, const struct elvis_iov *iov, u32 n, u64 len);
/* Latches an error; returns it. */
int elvis_vring_fail(struct elvis_vring *vr, int err, const char *what);

/* virtio's vring_need_event: would moving from old to new cross event? */
static inline bool elvis_need_event(u16 event, u16 new_idx, u16 old)
{
        return (u16)(new_idx - event - 1) < (u16)(new_idx - old);
}
