/* Unit tests: the virtio-blk queue model (dataplane/engine/elvis_blkq.c) on rings in
 * process memory, with a recording back end that completes at once or when told, and
 * a net queue pair next to it on one weighted round (the turn both share,
 * engine/elvis_turn.h). */
#include <criterion/criterion.h>

#include "elvis_blkq.h"
#include "elvis_net.h"
#include "../lib/guest_mem.h"

#include <stdlib.h>
#include <string.h>

#define GPA 0x100000ull
#define MEM (1u << 22)
#define BLK_NUM 256u
#define NSLOT (BLK_NUM / 4)             /* four descriptors a request slot */
#define DEPTH 32u
#define NET_NUM 64u
#define BLK_RING 0x200000u              /* desc, avail at +0x1000, used at +0x2000 */
#define BLK_BUF 0x210000u               /* per slot: header at 0, data at 512, status at 4608; 8 KiB */
#define NET_RING 0x000000u
#define NET_BUF 0x010000u

static uint8_t *mem;
static struct elvis_vring_mem map;
static struct elvis_blk_disk disk = { .capacity = 2048, .blk_size = 512, .num_queues = 1, .discard = true,
                                      .write_zeroes = true, .max_discard_sectors = 8192,
                                      .max_write_zeroes_sectors = 8192, .id = "elvis-test-disk" };

static struct {
        struct elvis_blkq q;
        struct elvis_blkq_slot slots[DEPTH];
        u16 free[DEPTH];
        uint16_t avail_idx;
        /* back end */
        bool async;
        unsigned limit;                 /* async: requests it takes at once */
        u32 pending[DEPTH];
        unsigned npending;
        bool complete;                  /* async: the pending ones are done */
        unsigned kicks, abandons, notified[16], changed;
        /* inflight tracking: what the model told, and what a recovery hands it */
        struct { enum elvis_blkq_track what; u16 v; } track[64];
        unsigned ntrack;
        bool tracking;
        int recover_err;
        u16 recover_heads[8];
        u32 nrecover;
        bool submitted_untracked;       /* the back end saw a new head the record did not have */
} *b;

static struct {
        struct elvis_netq q;
        uint16_t avail_idx;
} *n;

/* ---- ports ---- */

static u64 clock_ns;

u64 elvis_blkq_port_now(void)
{
        return clock_ns += 1000;
}

u64 elvis_netq_port_now(void)
{
        return clock_ns += 1000;
}

/* Whether the record holds head as popped and not yet done. */
static bool tracked_in_flight(u16 head)
{
        bool in = false;

        for (unsigned i = 0; i < b->ntrack; i++)
                if (b->track[i].v == head && b->track[i].what != ELVIS_BLKQ_PUBLISHED)
                        in = b->track[i].what == ELVIS_BLKQ_POPPED;
        for (unsigned i = 0; i < b->nrecover; i++)
                in |= b->recover_heads[i] == head;
        return in;
}

void elvis_blkq_port_track(struct elvis_blkq *q, enum elvis_blkq_track what, u16 v)
{
        (void)q;
        if (b->ntrack < 64)
                b->track[b->ntrack++] = (typeof(b->track[0])){ what, v };
}

int elvis_blkq_port_recover(struct elvis_blkq *q, u16 guest_used, const u16 **ret_heads, u32 *ret_n,
                            const char **why)
{
        (void)q;
        (void)guest_used;
        if (!b || !b->tracking)
                return 0;
        if (b->recover_err) {
                *why = "a record that does not add up";
                return b->recover_err;
        }
        *ret_heads = b->recover_heads;
        *ret_n = b->nrecover;
        return 1;
}

int elvis_blkq_port_submit(struct elvis_blkq *q, const struct elvis_blk_req *r, u32 tag, u8 *status)
{
        (void)q;
        if (b->tracking && !tracked_in_flight(r->head))
                b->submitted_untracked = true;
        if (b->async) {
                if (b->npending == b->limit)
                        return -EAGAIN;
                b->pending[b->npending++] = tag;
                return 0;
        }
        if (r->type == ELVIS_BLK_T_IN)
                for (u32 i = 0; i < r->niov; i++)
                        memset(r->iov[i].base, 0, r->iov[i].len);
        *status = ELVIS_BLK_S_OK;
        return 1;
}

void elvis_blkq_port_kick(struct elvis_blkq *q)
{
        (void)q;
        b->kicks++;
}

unsigned int elvis_blkq_port_reap(struct elvis_blkq *q, unsigned int max)
{
        unsigned k = 0;

        if (!b->complete)
                return 0;
        while (b->npending && k < max) {
                elvis_blkq_done(q, b->pending[--b->npending], ELVIS_BLK_S_OK);
                k++;
        }
        return k;
}

void elvis_blkq_port_abandon(struct elvis_blkq *q)
{
        (void)q;
        b->abandons++;
}

void elvis_blkq_port_notify(struct elvis_blkq *q, unsigned int sig)
{
        (void)q;
        b->notified[sig]++;
}

void elvis_blkq_port_changed(struct elvis_blkq *q, bool stopped)
{
        (void)q;
        (void)stopped;
        b->changed++;
}

int elvis_netq_port_xmit(struct elvis_netq *q, const struct elvis_chain *c, u64 len)
{
        (void)q;
        (void)c;
        (void)len;
        return 0;
}

long elvis_netq_port_recv(struct elvis_netq *q, u8 *buf, u32 max)
{
        (void)q;
        (void)buf;
        (void)max;
        return 0;
}

void elvis_netq_port_notify(struct elvis_netq *q, unsigned int sig)
{
        (void)q;
        (void)sig;
}

void elvis_netq_port_changed(struct elvis_netq *q, int stopped)
{
        (void)q;
        (void)stopped;
}

/* ---- the guest ---- */

static uint16_t *u16_at(uint32_t off) { return (uint16_t *)(mem + off); }

static struct elvis_vring_desc *desc_at(uint32_t ring, unsigned i)
{
        return (struct elvis_vring_desc *)(mem + ring) + i;
}

static uint8_t *slot_mem(unsigned s)
{
        return mem + BLK_BUF + s * 8192u;
}

static void setup(void)
{
        const char *why = NULL;

        mem = guest_mem_map(&map, GPA, MEM);
        cr_assert_not_null(mem);
        b = calloc(1, sizeof(*b));
        n = calloc(1, sizeof(*n));
        elvis_blkq_init(&b->q, &disk, &map, b->slots, b->free, DEPTH);
        b->q.vq = (struct elvis_qvq){ .num = BLK_NUM, .desc = (uintptr_t)mem + BLK_RING,
                                      .avail = (uintptr_t)mem + BLK_RING + 0x1000,
                                      .used = (uintptr_t)mem + BLK_RING + 0x2000, .addr_set = true };
        b->q.features = 1ull << 32;
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        b->limit = DEPTH;
}

static void teardown(void)
{
        free(b);
        free(n);
        free(mem);
}

TestSuite(blkq, .init = setup, .fini = teardown);

/* Offers a request in slot avail_idx % NSLOT: type, sector, data bytes (IN: writable,
 * filled with 0xa5; OUT: readable), and a status byte (writable unless ro_status). */
static unsigned offer(uint32_t type, uint64_t sector, uint32_t len, bool ro_status)
{
        unsigned s = b->avail_idx % NSLOT, d = 4 * s, k = 0;
        uint8_t *m = slot_mem(s);
        uint64_t g = GPA + BLK_BUF + s * 8192u;
        uint32_t zero = 0;

        memcpy(m, &type, 4);
        memcpy(m + 4, &zero, 4);
        memcpy(m + 8, &sector, 8);
        memset(m + 512, 0xa5, 4096);
        m[4608] = 0xff;
        *desc_at(BLK_RING, d) = (struct elvis_vring_desc){ g, 16, ELVIS_VRING_DESC_F_NEXT, (uint16_t)(d + 1) };
        if (len) {
                k++;
                *desc_at(BLK_RING, d + k) = (struct elvis_vring_desc){
                        g + 512, len,
                        (uint16_t)(ELVIS_VRING_DESC_F_NEXT | (type == ELVIS_BLK_T_OUT ? 0 : ELVIS_VRING_DESC_F_WRITE)),
                        (uint16_t)(d + k + 1) };
        }
        k++;
        *desc_at(BLK_RING, d + k) = (struct elvis_vring_desc){ g + 4608, 1,
                                                               ro_status ? 0 : ELVIS_VRING_DESC_F_WRITE, 0 };
        u16_at(BLK_RING + 0x1000 + 4)[b->avail_idx % BLK_NUM] = (uint16_t)d;
        b->avail_idx++;
        *u16_at(BLK_RING + 0x1000 + 2) = b->avail_idx;
        return s;
}

static uint16_t blk_used(void)
{
        return *u16_at(BLK_RING + 0x2000 + 2);
}

static uint32_t used_len(unsigned k)
{
        return ((uint32_t *)(mem + BLK_RING + 0x2000 + 4))[2 * (k % BLK_NUM) + 1];
}

static unsigned blk_turn(const struct elvis_drr_round *round, u32 weight)
{
        struct elvis_turn t = { .now = elvis_blkq_port_now(), .exitless = ELVIS_TURN_NEVER,
                                .poll_start_rate = 1000, .poll_stop_idle_ns = 1000000, .round = round,
                                .weight = weight, .budget_packets = 64, .budget_bytes = 65536 };
        return elvis_blkq_turn(&b->q, &t);
}

Test(blkq, requests_complete_with_status_length_and_counters)
{
        unsigned s;

        s = offer(ELVIS_BLK_T_IN, 8, 4096, false);
        cr_assert_eq(blk_turn(NULL, 100), 1);
        cr_assert_eq(blk_used(), 1);
        cr_assert_eq(slot_mem(s)[4608], ELVIS_BLK_S_OK);
        cr_assert_eq(slot_mem(s)[512], 0, "the back end's data reached the buffer");
        cr_assert_eq(used_len(0), 4097, "data and status written");
        cr_assert_eq(b->q.st.rx_packets, 1);
        cr_assert_eq(b->q.st.rx_bytes, 4096);
        offer(ELVIS_BLK_T_OUT, 16, 1024, false);
        offer(ELVIS_BLK_T_FLUSH, 0, 0, false);
        s = offer(ELVIS_BLK_T_GET_ID, 0, 20, false);
        cr_assert_eq(blk_turn(NULL, 100), 3);
        cr_assert_eq(blk_used(), 4);
        cr_assert_eq(used_len(1), 1, "a write writes only its status");
        cr_assert_eq(b->q.st.tx_packets, 3, "writes, flushes and GET_ID count as tx");
        cr_assert_eq(b->q.st.tx_bytes, 1024);
        cr_assert_eq(memcmp(slot_mem(s) + 512, "elvis-test-disk", 15), 0);
        cr_assert_eq(used_len(3), 21);
        cr_assert_gt(b->kicks, 0, "the back end is kicked once a turn");
        cr_assert_gt(b->notified[ELVIS_BLKQ_SIG_CALL], 0);
}

Test(blkq, bad_requests_are_answered_and_the_queue_goes_on)
{
        unsigned s1 = offer(ELVIS_BLK_T_IN, disk.capacity, 4096, false);      /* beyond the disk */
        unsigned s2 = offer(ELVIS_BLK_T_OUT, 0, 100, false);                   /* not whole sectors */
        unsigned s3 = offer(77, 0, 0, false);                                  /* unknown type */
        unsigned s4 = offer(ELVIS_BLK_T_IN, 0, 4096, false);

        cr_assert_eq(blk_turn(NULL, 100), 4);
        cr_assert_eq(slot_mem(s1)[4608], ELVIS_BLK_S_IOERR);
        cr_assert_eq(slot_mem(s2)[4608], ELVIS_BLK_S_IOERR);
        cr_assert_eq(slot_mem(s3)[4608], ELVIS_BLK_S_UNSUPP);
        cr_assert_eq(slot_mem(s4)[4608], ELVIS_BLK_S_OK);
        cr_assert_eq(slot_mem(s1)[512], 0xa5, "a refused read writes no data");
        cr_assert_eq(used_len(0), 1);
        cr_assert_eq(b->q.st.drops, 3);
        cr_assert_eq(b->q.st.errors, 0);
        cr_assert(elvis_blkq_live(&b->q));
}

Test(blkq, a_request_without_a_status_stops_the_ring)
{
        offer(ELVIS_BLK_T_FLUSH, 0, 0, true);
        blk_turn(NULL, 100);
        cr_assert_not(elvis_blkq_live(&b->q));
        cr_assert_eq(b->q.st.errors, 1);
        cr_assert_eq(blk_used(), 0);
        cr_assert_eq(b->notified[ELVIS_BLKQ_SIG_ERR], 1);
        blk_turn(NULL, 100);
        cr_assert_eq(b->notified[ELVIS_BLKQ_SIG_ERR], 1, "signalled once");
}

Test(blkq, a_full_back_end_leaves_requests_in_the_ring)
{
        b->async = true;
        b->limit = 2;
        for (int i = 0; i < 5; i++)
                offer(ELVIS_BLK_T_IN, (uint64_t)i * 8, 4096, false);
        cr_assert_eq(blk_turn(NULL, 100), 2);
        cr_assert(b->q.blocked);
        cr_assert_eq(b->q.vq.vr.last_avail_idx, 2, "the third request is still the guest's");
        cr_assert_eq(blk_used(), 0);
        cr_assert_not(elvis_blkq_enable_notify(&b->q), "a full back end waits for a completion, not a kick");
        b->complete = true;
        cr_assert_eq(blk_turn(NULL, 100), 2, "two completions make room for two more");
        cr_assert_eq(blk_used(), 2);
        blk_turn(NULL, 100);
        blk_turn(NULL, 100);
        cr_assert_eq(blk_used(), 5);
        cr_assert_eq(b->q.st.rx_packets, 5);
        cr_assert_eq(b->q.inflight, 0);
}

Test(blkq, requests_in_flight_when_the_ring_stops)
{
        const char *why = NULL;
        unsigned done, lost;

        b->async = true;
        done = offer(ELVIS_BLK_T_IN, 0, 4096, false);
        blk_turn(NULL, 100);
        /* finished before the stop: answered by the stop */
        b->complete = true;
        cr_assert_eq(elvis_blkq_refresh(&b->q, false, &why), 0);
        cr_assert_eq(blk_used(), 1);
        cr_assert_eq(slot_mem(done)[4608], ELVIS_BLK_S_OK);
        cr_assert_eq(b->abandons, 0, "nothing left to abandon");

        /* still on the disk at the stop: abandoned, and its late completion writes nothing */
        b->complete = false;
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        lost = offer(ELVIS_BLK_T_IN, 8, 4096, false);
        blk_turn(NULL, 100);
        cr_assert_eq(b->q.inflight, 1);
        cr_assert_eq(elvis_blkq_refresh(&b->q, false, &why), 0);
        cr_assert_eq(b->abandons, 1, "the back end is told");
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        b->complete = true;
        blk_turn(NULL, 100);
        cr_assert_eq(b->q.inflight, 0, "the slot came back");
        cr_assert_eq(slot_mem(lost)[4608], 0xff, "no status for an abandoned request");
        cr_assert_eq(blk_used(), 1, "no used entry either");
        /* the restarted ring serves the next request normally */
        offer(ELVIS_BLK_T_IN, 16, 4096, false);
        blk_turn(NULL, 100);
        blk_turn(NULL, 100);
        cr_assert_eq(blk_used(), 2);
}

Test(blkq, a_ring_restarted_in_place_keeps_its_requests)
{
        const char *why = NULL;
        unsigned s;

        b->async = true;
        s = offer(ELVIS_BLK_T_IN, 0, 4096, false);
        blk_turn(NULL, 100);
        cr_assert_eq(b->q.inflight, 1);
        /* a new memory table (the same ring): the request is still owed */
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        cr_assert_eq(b->abandons, 0);
        b->complete = true;
        blk_turn(NULL, 100);
        cr_assert_eq(blk_used(), 1);
        cr_assert_eq(slot_mem(s)[4608], ELVIS_BLK_S_OK);

        /* the ring moved: what was in flight is not its any more */
        b->complete = false;
        offer(ELVIS_BLK_T_IN, 8, 4096, false);
        blk_turn(NULL, 100);
        b->q.vq.used += 0x100;
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        cr_assert_eq(b->abandons, 1);
}

/* ---- one round, a net queue pair and a blk queue ---- */

static void net_setup(void)
{
        const char *why = NULL;

        n->q.vq[ELVIS_NETQ_TX] = (struct elvis_qvq){ .num = NET_NUM, .desc = (uintptr_t)mem + NET_RING,
                                                     .avail = (uintptr_t)mem + NET_RING + 16 * NET_NUM,
                                                     .used = (uintptr_t)mem + NET_RING + 0x2000, .addr_set = true };
        n->q.mem = &map;
        n->q.features = 1ull << ELVIS_NET_FEAT_VERSION_1;
        cr_assert_eq(elvis_netq_refresh(&n->q, ELVIS_NETQ_TX, true, &why), 0, "%s", why);
}

static void net_offer(void)
{
        uint16_t id = n->avail_idx % NET_NUM;

        *desc_at(NET_RING, id) = (struct elvis_vring_desc){ GPA + NET_BUF + id * 2048u, 60, 0, 0 };
        u16_at(NET_RING + 16 * NET_NUM + 4)[n->avail_idx % NET_NUM] = id;
        n->avail_idx++;
        *u16_at(NET_RING + 16 * NET_NUM + 2) = n->avail_idx;
}

static uint16_t net_used(void)
{
        return *u16_at(NET_RING + 0x2000 + 2);
}

static void weights_hold(u32 wnet, u32 wblk)
{
        struct elvis_drr_round round;
        unsigned moved_net = 0, moved_blk = 0;

        net_setup();
        for (int r = 0; r < 3000; r++) {
                struct elvis_turn t = { .now = elvis_netq_port_now(), .exitless = ELVIS_TURN_NEVER,
                                        .poll_start_rate = 1000, .poll_stop_idle_ns = 1000000, .round = &round,
                                        .weight = wnet, .budget_packets = 64, .budget_bytes = 65536 };

                /* both guests keep their rings full */
                while ((uint16_t)(n->avail_idx - net_used()) < NET_NUM)
                        net_offer();
                while ((uint16_t)(b->avail_idx - blk_used()) < NSLOT)
                        offer(ELVIS_BLK_T_IN, (uint64_t)(b->avail_idx % 256) * 8, 4096, false);
                elvis_drr_round_begin(&round, 64);
                if (n->q.sched.drr.busy)
                        elvis_drr_round_fit(&round, wnet, elvis_netq_ring_cap(&n->q));
                if (b->q.sched.drr.busy)
                        elvis_drr_round_fit(&round, wblk, elvis_blkq_ring_cap(&b->q));
                moved_net += elvis_netq_turn(&n->q, &t);
                moved_blk += blk_turn(&round, wblk);
        }
        double want = (double)wblk / wnet, got = (double)moved_blk / moved_net;
        cr_assert(got > want * 0.95 && got < want * 1.05, "weights net %u : blk %u gave %u:%u items (%.2f)", wnet, wblk,
                  moved_net, moved_blk, got);
}

/* ---- inflight tracking (the plane's record, INFLIGHT_SHMFD) ---- */

static int track_at(enum elvis_blkq_track what, u16 v)
{
        for (unsigned i = 0; i < b->ntrack; i++)
                if (b->track[i].what == what && b->track[i].v == v)
                        return (int)i;
        return -1;
}

static uint32_t used_id(unsigned k)
{
        return ((uint32_t *)(mem + BLK_RING + 0x2000 + 4))[2 * (k % BLK_NUM)];
}

Test(blkq, heads_are_recorded_before_the_back_end_sees_them_and_cleared_when_published)
{
        b->tracking = true;
        b->async = true;
        offer(ELVIS_BLK_T_IN, 0, 4096, false);          /* head 0 */
        offer(ELVIS_BLK_T_OUT, 8, 4096, false);         /* head 4 */
        cr_assert_eq(blk_turn(NULL, 100), 2);
        cr_assert_not(b->submitted_untracked, "the back end saw a head the record did not hold");
        cr_assert_eq(track_at(ELVIS_BLKQ_POPPED, 0), 0);
        cr_assert_eq(track_at(ELVIS_BLKQ_POPPED, 4), 1);
        cr_assert_eq(b->ntrack, 2, "nothing done, nothing published yet");
        b->complete = true;
        blk_turn(NULL, 100);
        cr_assert_eq(blk_used(), 2);
        cr_assert_geq(track_at(ELVIS_BLKQ_DONE, 0), 2);
        cr_assert_geq(track_at(ELVIS_BLKQ_DONE, 4), 2);
        cr_assert_eq(track_at(ELVIS_BLKQ_PUBLISHED, 2), 4, "published after both used entries");
        /* a full back end: the head goes back to the ring, and out of the record */
        b->complete = false;
        b->limit = 0;
        offer(ELVIS_BLK_T_IN, 16, 4096, false);         /* head 8 */
        blk_turn(NULL, 100);
        cr_assert_eq(b->q.vq.vr.last_avail_idx, 2);
        cr_assert_gt(track_at(ELVIS_BLKQ_UNPOPPED, 8), track_at(ELVIS_BLKQ_POPPED, 8));
        cr_assert_geq(track_at(ELVIS_BLKQ_POPPED, 8), 0);
}

/* A back end popped heads 0, 4 and 8, completed 4 (the guest saw it) and died: the next
 * one executes 0 and 8 again, in the record's order, before the avail ring's next (12),
 * and takes nothing twice. */
Test(blkq, a_ring_that_starts_afresh_executes_what_was_in_flight_first)
{
        const char *why = NULL;

        for (int i = 0; i < 4; i++)
                offer(ELVIS_BLK_T_IN, (uint64_t)i * 8, 4096, false);
        ((uint32_t *)(mem + BLK_RING + 0x2000 + 4))[0] = 4;
        *u16_at(BLK_RING + 0x2000 + 2) = 1;
        cr_assert_eq(elvis_blkq_refresh(&b->q, false, &why), 0);
        b->tracking = true;
        b->recover_heads[0] = 8;
        b->recover_heads[1] = 0;
        b->nrecover = 2;
        b->q.vq.base = 1;                               /* what the front end sets: the used index */
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        cr_assert_eq(b->q.vq.vr.last_avail_idx, 3, "used index + in flight");
        cr_assert_eq(blk_turn(NULL, 100), 3);
        cr_assert_eq(blk_used(), 4);
        cr_assert_eq(used_id(1), 8);
        cr_assert_eq(used_id(2), 0);
        cr_assert_eq(used_id(3), 12);
        cr_assert_eq(track_at(ELVIS_BLKQ_POPPED, 8), -1, "already in the record");
        cr_assert_geq(track_at(ELVIS_BLKQ_POPPED, 12), 0);
        cr_assert_not(b->submitted_untracked);
        cr_assert_eq(blk_turn(NULL, 100), 0, "nothing twice");
}

Test(blkq, a_record_that_does_not_add_up_stops_the_ring)
{
        const char *why = NULL;

        offer(ELVIS_BLK_T_IN, 0, 4096, false);
        cr_assert_eq(elvis_blkq_refresh(&b->q, false, &why), 0);
        b->tracking = true;
        b->recover_err = -EINVAL;
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), -EINVAL);
        cr_assert_not(elvis_blkq_live(&b->q));
        cr_assert_not_null(why);
        /* more in flight than the guest made available: the avail ring would be skipped */
        b->recover_err = 0;
        b->recover_heads[0] = 0;
        b->recover_heads[1] = 4;
        b->nrecover = 2;
        why = NULL;
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), -EINVAL);
        cr_assert_not(elvis_blkq_live(&b->q));
        cr_assert(strstr(why, "more requests in flight"), "%s", why);
        /* and a bad head among them fails as a bad avail entry would */
        b->recover_heads[0] = BLK_NUM + 3;
        b->nrecover = 1;
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        blk_turn(NULL, 100);
        cr_assert_not(elvis_blkq_live(&b->q));
        cr_assert_eq(blk_used(), 0);
}

/* A ring stopped with a request on the disk and started again: the request is executed
 * again only once the disk gave the abandoned copy back. */
Test(blkq, a_request_executed_again_waits_for_its_abandoned_copy)
{
        const char *why = NULL;
        unsigned s;

        b->async = true;
        s = offer(ELVIS_BLK_T_IN, 0, 4096, false);
        cr_assert_eq(blk_turn(NULL, 100), 1);
        cr_assert_eq(elvis_blkq_refresh(&b->q, false, &why), 0);
        cr_assert_eq(b->abandons, 1);
        b->tracking = true;
        b->recover_heads[0] = 0;
        b->nrecover = 1;
        cr_assert_eq(elvis_blkq_refresh(&b->q, true, &why), 0, "%s", why);
        cr_assert_eq(blk_turn(NULL, 100), 0, "the old copy is still on the disk");
        cr_assert_eq(b->npending, 1);
        cr_assert_not(elvis_blkq_enable_notify(&b->q), "a completion wakes the queue, not a kick");
        b->complete = true;
        cr_assert_eq(blk_turn(NULL, 100), 1, "the copy came back; the request runs again");
        cr_assert_eq(blk_used(), 0, "the abandoned copy answered nothing");
        blk_turn(NULL, 100);
        cr_assert_eq(blk_used(), 1);
        cr_assert_eq(slot_mem(s)[4608], ELVIS_BLK_S_OK);
}

Test(blkq, weights_hold_between_a_net_and_a_blk_queue_1_3)
{
        weights_hold(100, 300);
}

Test(blkq, weights_hold_between_a_net_and_a_blk_queue_5_1)
{
        weights_hold(500, 100);
}

Test(blkq, a_peek_stands_in_for_empty_turns_until_a_request_or_a_completion)
{
        u64 now;

        b->async = true;
        blk_turn(NULL, 100);
        now = clock_ns;
        cr_assert(elvis_blkq_idle(&b->q, now + 1, 0), "an empty turn, then peeks");
        offer(ELVIS_BLK_T_IN, 8, 4096, false);
        cr_assert_not(elvis_blkq_idle(&b->q, now + 2, 0), "a new request needs a turn");
        cr_assert_eq(blk_turn(NULL, 100), 1);
        cr_assert_eq(blk_turn(NULL, 100), 0, "started, not done");
        cr_assert_not(elvis_blkq_idle(&b->q, clock_ns + 1, 0), "a request in flight: turns reap");
        b->complete = true;
        blk_turn(NULL, 100);
        cr_assert_eq(blk_used(), 1, "completed by a turn");
        blk_turn(NULL, 100);
        cr_assert(elvis_blkq_idle(&b->q, clock_ns + 1, 0));
        cr_assert_eq(b->q.st.empty_polls, 5, "four empty turns and the first peek; the last peek not yet");
        blk_turn(NULL, 100);
        cr_assert_eq(b->q.st.empty_polls, 7, "counted with the next turn");
}
