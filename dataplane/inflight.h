/* Inflight tracking for vhost-user (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD), split rings.
 *
 * A block device completes requests out of order. If its back end dies, the front end
 * restarts the ring from the used index, so a request popped before a later one that
 * completed would be lost, and one completed after it would be done twice. So the back
 * end records, in a memory file it gives the VMM (GET_INFLIGHT_FD) and gets back when a
 * new back end starts (SET_INFLIGHT_FD), which heads it popped and has not completed, in
 * pop order, and which completions it was publishing when it died. The new back end
 * executes exactly the requests recorded in flight, oldest first, before new ones.
 *
 * Layout per queue (the spec's, so that another back end could take a queue over):
 *   u64 features; u16 version; u16 desc_num; u16 last_batch_head; u16 used_idx;
 *   then desc_num entries { u8 inflight; u8 pad[5]; u16 next; u64 counter; }
 * and queues follow each other at a 64-byte aligned stride.
 *
 * The region is shared with the VMM, which may write anything into it at any time:
 * everything read back is checked (heads below desc_num, chains bounded), and a region
 * that does not add up answers an error and is never trusted further. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DP_INFLIGHT_VERSION 1
#define DP_INFLIGHT_ALIGN 64

struct dp_inflight_desc {
        uint8_t inflight;
        uint8_t pad[5];
        uint16_t next;
        uint64_t counter;
};

struct dp_inflight_queue {
        uint64_t features;
        uint16_t version;
        uint16_t desc_num;
        uint16_t last_batch_head;
        uint16_t used_idx;
        struct dp_inflight_desc desc[];
};

/* One queue's tracker, used by the thread that serves the queue. */
struct dp_inflight {
        struct dp_inflight_queue *r;    /* NULL: no tracking (the front end did not ask) */
        uint16_t num;
        uint64_t counter;               /* pop order */
        uint16_t batch_head, batch_tail, batch_n;       /* completions not yet published */
};

/* Bytes one queue of queue_size entries takes, aligned. */
size_t dp_inflight_queue_size(uint16_t queue_size);
/* A fresh region of nq queues: every queue empty, its header written. */
void dp_inflight_format(void *region, uint16_t nq, uint16_t queue_size);
/* Starts tracking queue q of a region of nq queues of queue_size entries. */
void dp_inflight_attach(struct dp_inflight *t, void *region, uint16_t q, uint16_t queue_size);

/* A head was popped. */
void dp_inflight_popped(struct dp_inflight *t, uint16_t head);
/* A head popped went back to the avail ring before anything was done with it. */
void dp_inflight_unpopped(struct dp_inflight *t, uint16_t head);
/* A head's used entry was written, not yet published: it joins the batch. */
void dp_inflight_done(struct dp_inflight *t, uint16_t head);
/* The used index now published is used_idx: the batch is no longer in flight. */
void dp_inflight_published(struct dp_inflight *t, uint16_t used_idx);

/* After SET_INFLIGHT_FD, before the ring is served: guest_used is the used index found in
 * guest memory. Settles a batch that was being published when the old back end died, then
 * fills heads (room for t->num) with the requests still in flight, oldest first. Returns
 * how many, or -EINVAL with why when the region is inconsistent (the queue must then not
 * be served from it). A region with nothing in flight takes any used index (a fresh one
 * given to a ring that already ran: a new back end after a migration). */
int dp_inflight_recover(struct dp_inflight *t, uint16_t guest_used, uint16_t *heads, const char **why);
