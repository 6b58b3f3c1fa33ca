/* Unit tests: the shared virtio-net device model (dataplane/engine/elvis_net.c) on rings
 * built in process memory, with a recording port. Both planes run this code; what is
 * checked here holds for the kernel module too. */
#include <criterion/criterion.h>

#include "elvis_net.h"
#include "../lib/guest_mem.h"

#include <stdlib.h>
#include <string.h>

#define GPA 0x100000ull
#define MEM (1u << 22)
#define NUM 64u
#define BUFSZ 2048u
#define NQ 2

/* per queue pair: [rx desc|avail|used][tx desc|avail|used][rx buffers][tx buffers] */
struct ring {
        uint32_t desc, avail, used, buf;
        uint16_t avail_idx, used_seen;
};

struct pair {
        struct elvis_netq q;
        uint32_t base;
        struct ring r[2];
        /* port records */
        unsigned notified[16];
        unsigned changed, xmits;
        uint64_t xmit_bytes;
        uint8_t last_frame[256];
        int xmit_result;               /* what the back end answers */
        uint8_t rx_frame[4096];
        uint32_t rx_len;
        unsigned rx_left;              /* frames the back end has to give */
};

static uint8_t *mem;
static struct elvis_vring_mem map;
static struct pair *pairs;

static struct pair *pair_of(struct elvis_netq *q)
{
        return (struct pair *)((char *)q - offsetof(struct pair, q));
}

u64 elvis_netq_port_now(void)
{
        static u64 t;
        return t += 1000;
}

int elvis_netq_port_xmit(struct elvis_netq *q, const struct elvis_chain *c, u64 len)
{
        struct pair *p = pair_of(q);
        uint64_t off = 0;

        if (p->xmit_result)
                return p->xmit_result;
        for (u32 i = 0; i < c->nout && off < sizeof(p->last_frame); i++) {
                size_t n = c->iov[i].len < sizeof(p->last_frame) - off ? c->iov[i].len : sizeof(p->last_frame) - off;
                memcpy(p->last_frame + off, c->iov[i].base, n);
                off += n;
        }
        p->xmits++;
        p->xmit_bytes += len;
        return 0;
}

long elvis_netq_port_recv(struct elvis_netq *q, u8 *buf, u32 max)
{
        struct pair *p = pair_of(q);

        if (!p->rx_left || p->rx_len > max)
                return 0;
        p->rx_left--;
        memcpy(buf, p->rx_frame, p->rx_len);
        return p->rx_len;
}

void elvis_netq_port_notify(struct elvis_netq *q, unsigned int sig)
{
        pair_of(q)->notified[sig]++;
}

void elvis_netq_port_changed(struct elvis_netq *q, int stopped)
{
        (void)stopped;
        pair_of(q)->changed++;
}

static uint16_t *u16_at(uint32_t off) { return (uint16_t *)(mem + off); }
static uint32_t *u32_at(uint32_t off) { return (uint32_t *)(mem + off); }

static void setup_pair(struct pair *p, unsigned idx, uint64_t features)
{
        const char *why = NULL;

        p->base = idx * 0x100000u;
        for (int i = 0; i < 2; i++) {
                struct ring *r = &p->r[i];
                r->desc = p->base + (uint32_t)i * 0x8000u;
                r->avail = r->desc + 16 * NUM;
                r->used = r->desc + 0x2000u;
                r->buf = p->base + 0x10000u + (uint32_t)i * 0x40000u;
                p->q.vq[i] = (struct elvis_qvq){ .num = NUM, .desc = (uintptr_t)mem + r->desc,
                                                     .avail = (uintptr_t)mem + r->avail,
                                                     .used = (uintptr_t)mem + r->used, .addr_set = true };
        }
        p->q.mem = &map;
        p->q.features = features;
        p->q.rxbuf = malloc(ELVIS_NET_MAX_FRAME);
        for (int i = 0; i < 2; i++)
                cr_assert_eq(elvis_netq_refresh(&p->q, i, true, &why), 0, "%s", why);
}

static void setup(void)
{
        mem = guest_mem_map(&map, GPA, MEM);
        cr_assert_not_null(mem);
        pairs = calloc(NQ, sizeof(*pairs));
}

static void teardown(void)
{
        for (int i = 0; i < NQ; i++)
                free(pairs[i].q.rxbuf);
        free(pairs);
        free(mem);
}

TestSuite(netq, .init = setup, .fini = teardown);

/* The guest offers one buffer on ring i: a TX frame of len bytes (byte k = k + tag) or an
 * RX buffer of len bytes. */
static void offer(struct pair *p, int i, uint32_t len, uint8_t tag)
{
        struct ring *r = &p->r[i];
        uint16_t id = r->avail_idx % NUM;
        uint32_t buf = r->buf + id * BUFSZ;
        struct elvis_vring_desc *d = (struct elvis_vring_desc *)(mem + r->desc) + id;

        if (i == ELVIS_NETQ_TX)
                for (uint32_t k = 0; k < len; k++)
                        mem[buf + k] = (uint8_t)(k + tag);
        *d = (struct elvis_vring_desc){ GPA + buf, len, i == ELVIS_NETQ_RX ? ELVIS_VRING_DESC_F_WRITE : 0, 0 };
        u16_at(r->avail + 4)[r->avail_idx % NUM] = id;
        r->avail_idx++;
        *u16_at(r->avail + 2) = r->avail_idx;
}

/* The back end has one frame for the guest: len bytes of fill after a zero header. */
static void backend_frame(struct pair *p, uint8_t fill, uint32_t len)
{
        memset(p->rx_frame, fill, len);
        memset(p->rx_frame, 0, 12);
        p->rx_len = len;
        p->rx_left = 1;
}

static uint16_t used_idx(struct pair *p, int i)
{
        return *u16_at(p->r[i].used + 2);
}

static unsigned turn(struct pair *p, const struct elvis_drr_round *round, u32 weight)
{
        struct elvis_turn t = { .now = elvis_netq_port_now(), .exitless = ELVIS_NETQ_NEVER,
                                     .poll_start_rate = 1000, .poll_stop_idle_ns = 1000000, .round = round,
                                     .weight = weight, .budget_packets = 64, .budget_bytes = 65536 };
        return elvis_netq_turn(&p->q, &t);
}

Test(netq, tx_frames_reach_the_back_end_and_come_back_used)
{
        struct pair *p = &pairs[0];

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        for (int k = 0; k < 3; k++)
                offer(p, ELVIS_NETQ_TX, 60, (uint8_t)k);
        cr_assert_eq(turn(p, NULL, 100), 3);
        cr_assert_eq(p->xmits, 3);
        cr_assert_eq(p->xmit_bytes, 180);
        cr_assert_eq(p->last_frame[12], 14, "the last frame's bytes, header included");
        cr_assert_eq(used_idx(p, ELVIS_NETQ_TX), 3);
        cr_assert_eq(*u32_at(p->r[ELVIS_NETQ_TX].used + 8), 0, "TX used length is 0, as vhost-net");
        cr_assert_eq(p->notified[ELVIS_NETQ_SIG_CALL_TX], 1, "one interrupt for the batch");
        cr_assert_eq(p->q.st.tx_packets, 3);
        cr_assert_eq(p->q.st.tx_bytes, 3 * (60 - 12));
}

Test(netq, a_full_back_end_keeps_the_frame_in_the_ring)
{
        struct pair *p = &pairs[0];

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        offer(p, ELVIS_NETQ_TX, 60, 0);
        p->xmit_result = -EAGAIN;
        cr_assert_eq(turn(p, NULL, 100), 0);
        cr_assert(p->q.tx_blocked);
        cr_assert_eq(used_idx(p, ELVIS_NETQ_TX), 0);
        p->xmit_result = 0;
        cr_assert_eq(turn(p, NULL, 100), 1, "sent on the next turn, once");
        cr_assert_eq(p->xmits, 1);
}

Test(netq, a_fault_with_faults_off_is_not_a_ring_error)
{
        struct pair *p = &pairs[0];

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        offer(p, ELVIS_NETQ_TX, 60, 0);
        p->q.nofault = true;
        p->xmit_result = -EFAULT;
        cr_assert_eq(turn(p, NULL, 100), 0);
        cr_assert(p->q.faulted, "handed to the slow path");
        cr_assert_eq(p->q.vq[ELVIS_NETQ_TX].vr.error, 0);
        cr_assert(p->q.vq[ELVIS_NETQ_TX].live);
        p->q.nofault = false;
        p->xmit_result = 0;
        cr_assert_eq(turn(p, NULL, 100), 1, "the slow path's turn sends it");
}

Test(netq, without_mergeable_buffers_num_buffers_is_the_guests)
{
        struct pair *p = &pairs[0];
        uint32_t buf;

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        offer(p, ELVIS_NETQ_RX, BUFSZ, 0);
        buf = p->r[ELVIS_NETQ_RX].buf;
        mem[buf + 10] = 0xcd;
        mem[buf + 11] = 0xab;
        backend_frame(p, 0x5a, 100);
        cr_assert_eq(turn(p, NULL, 100), 1);
        cr_assert_eq(mem[buf + 10], 0xcd, "as vhost-net and QEMU: left as the guest wrote it");
        cr_assert_eq(mem[buf + 11], 0xab);
        cr_assert_eq(mem[buf + 99], 0x5a);
        cr_assert_eq(*u32_at(p->r[ELVIS_NETQ_RX].used + 8), 100, "RX used length is the frame's");
        cr_assert_eq(p->notified[ELVIS_NETQ_SIG_CALL_RX], 1);
}

Test(netq, mergeable_buffers_carry_their_count)
{
        struct pair *p = &pairs[0];
        uint32_t buf;

        setup_pair(p, 0, (1ull << ELVIS_NET_FEAT_VERSION_1) | (1ull << ELVIS_NET_FEAT_MRG_RXBUF));
        offer(p, ELVIS_NETQ_RX, 64, 0);
        offer(p, ELVIS_NETQ_RX, 64, 0);
        buf = p->r[ELVIS_NETQ_RX].buf;
        backend_frame(p, 0x11, 100);
        cr_assert_eq(turn(p, NULL, 100), 1);
        cr_assert_eq(used_idx(p, ELVIS_NETQ_RX), 2, "one frame, two buffers");
        cr_assert_eq(mem[buf + 10], 2);
        cr_assert_eq(mem[buf + 11], 0);
        cr_assert_eq(*u32_at(p->r[ELVIS_NETQ_RX].used + 8), 64);
        cr_assert_eq(*u32_at(p->r[ELVIS_NETQ_RX].used + 16), 36);
}

/* num_buffers wherever the guest split its first buffer: here bytes 0-9 of the header in
 * one descriptor and the rest in the next, the frame then running into a second buffer. */
Test(netq, num_buffers_is_written_across_the_first_buffers_segments)
{
        struct pair *p = &pairs[0];
        struct ring *r = &p->r[ELVIS_NETQ_RX];
        struct elvis_vring_desc *d;
        uint32_t buf, buf2;

        setup_pair(p, 0, (1ull << ELVIS_NET_FEAT_VERSION_1) | (1ull << ELVIS_NET_FEAT_MRG_RXBUF));
        d = (struct elvis_vring_desc *)(mem + r->desc);
        buf = r->buf;
        buf2 = r->buf + 2 * BUFSZ;
        d[0] = (struct elvis_vring_desc){ GPA + buf, 10, ELVIS_VRING_DESC_F_WRITE | ELVIS_VRING_DESC_F_NEXT, 1 };
        d[1] = (struct elvis_vring_desc){ GPA + buf + 1024, 1024, ELVIS_VRING_DESC_F_WRITE, 0 };
        d[2] = (struct elvis_vring_desc){ GPA + buf2, BUFSZ, ELVIS_VRING_DESC_F_WRITE, 0 };
        u16_at(r->avail + 4)[0] = 0;
        u16_at(r->avail + 4)[1] = 2;
        r->avail_idx = 2;
        *u16_at(r->avail + 2) = 2;
        backend_frame(p, 0x33, 1100);
        cr_assert_eq(turn(p, NULL, 100), 1);
        cr_assert_eq(used_idx(p, ELVIS_NETQ_RX), 2, "one frame, two buffers");
        cr_assert_eq(mem[buf + 1024], 2, "num_buffers' low byte, in the first buffer's second segment");
        cr_assert_eq(mem[buf + 1025], 0);
        cr_assert_eq(mem[buf + 1026], 0x33, "the frame after the header");
        cr_assert_eq(mem[buf2], 0x33);
        cr_assert_eq(*u32_at(r->used + 8), 1034);
        cr_assert_eq(*u32_at(r->used + 16), 66);
}

Test(netq, a_frame_without_room_waits_and_asks_for_rx_kicks)
{
        struct pair *p = &pairs[0];

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        backend_frame(p, 0, 100);
        cr_assert_eq(turn(p, NULL, 100), 0);
        cr_assert(p->q.rx_blocked);
        cr_assert_eq(p->q.rxlen, 100, "the frame stays");
        offer(p, ELVIS_NETQ_RX, BUFSZ, 0);
        cr_assert(elvis_netq_enable_notify(&p->q), "buffers arrived while kicks were off");
        cr_assert_eq(turn(p, NULL, 100), 1);
        cr_assert_eq(p->q.st.rx_packets, 1);
}

Test(netq, a_hostile_ring_stops_itself_only)
{
        struct pair *p = &pairs[0];
        struct ring *r;

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        r = &p->r[ELVIS_NETQ_TX];
        offer(p, ELVIS_NETQ_TX, 60, 0);
        ((struct elvis_vring_desc *)(mem + r->desc))[0].addr = GPA + MEM;   /* outside memory */
        turn(p, NULL, 100);
        cr_assert_not(p->q.vq[ELVIS_NETQ_TX].live);
        cr_assert(p->q.vq[ELVIS_NETQ_RX].live, "the other ring keeps going");
        cr_assert_eq(p->notified[ELVIS_NETQ_SIG_ERR_TX], 1);
        cr_assert_eq(p->q.st.errors, 1);
        turn(p, NULL, 100);
        cr_assert_eq(p->notified[ELVIS_NETQ_SIG_ERR_TX], 1, "signalled once");
}

/* Two backlogged pairs on one sidecore whose 64-entry rings hold far fewer packets than
 * a heavy weight's quantum at the default budget (the case that gave DPDK's virtio-user
 * shares of 1:2:2:2 for weights 1:2:3:4): the shares must follow the weights anyway. */
static void weights_hold(u32 w0, u32 w1)
{
        unsigned moved[2] = { 0, 0 };
        struct elvis_drr_round round;
        const u32 w[2] = { w0, w1 };

        for (int i = 0; i < 2; i++) {
                setup_pair(&pairs[i], (unsigned)i, 1ull << ELVIS_NET_FEAT_VERSION_1);
                for (unsigned k = 0; k < NUM; k++)
                        offer(&pairs[i], ELVIS_NETQ_TX, 60, 0);
        }
        for (int r = 0; r < 4000; r++) {
                elvis_drr_round_begin(&round, 64);
                for (int i = 0; i < 2; i++)
                        if (pairs[i].q.sched.drr.busy)
                                elvis_drr_round_fit(&round, w[i], elvis_netq_ring_cap(&pairs[i].q));
                for (int i = 0; i < 2; i++) {
                        struct pair *p = &pairs[i];
                        unsigned n = turn(p, &round, w[i]);

                        moved[i] += n;
                        /* the guest refills what was used: always backlogged */
                        while ((uint16_t)(p->r[ELVIS_NETQ_TX].avail_idx - used_idx(p, ELVIS_NETQ_TX)) < NUM)
                                offer(p, ELVIS_NETQ_TX, 60, 0);
                }
        }
        {
                double want = (double)w1 / w0, got = (double)moved[1] / moved[0];
                cr_assert(got > want * 0.95 && got < want * 1.05, "weights %u:%u gave %u:%u packets (%.2f)", w0, w1,
                          moved[0], moved[1], got);
        }
}

Test(netq, weights_1_to_10_hold_with_small_rings)
{
        weights_hold(100, 1000);
}

Test(netq, weights_at_the_extremes_hold)
{
        weights_hold(1, 4);
}

Test(netq, weights_far_above_the_default_hold)
{
        weights_hold(2500, 7500);
}

/* ---- dirty logging (live migration) through the device model ---- */

static bool logged(const uint8_t *log, uint64_t gpa)
{
        return log[(gpa >> 12) / 8] & (1u << ((gpa >> 12) % 8));
}

static void log_on(struct pair *p, uint8_t *log, size_t size, bool all)
{
        p->q.log = (struct elvis_log){ log, size };
        if (all)
                p->q.features |= 1ull << ELVIS_NET_FEAT_LOG_ALL;
        else
                p->q.features &= ~(1ull << ELVIS_NET_FEAT_LOG_ALL);
        for (int i = 0; i < 2; i++) {
                p->q.vq[i].log_used = true;
                p->q.vq[i].log_addr = GPA + p->r[i].used;
        }
        elvis_netq_log_update(&p->q);
}

Test(netq, received_frames_and_used_entries_are_logged_with_log_all)
{
        struct pair *p = &pairs[0];
        size_t size = (GPA + MEM) / 4096 / 8;
        uint8_t *log = calloc(1, size);
        uint32_t buf;

        setup_pair(p, 0, (1ull << ELVIS_NET_FEAT_VERSION_1) | (1ull << ELVIS_NET_FEAT_MRG_RXBUF));
        log_on(p, log, size, true);
        /* two 2 KiB buffers, a 3000-byte frame: buffer 0 whole and buffer 1's first 952 bytes */
        offer(p, ELVIS_NETQ_RX, BUFSZ, 0);
        offer(p, ELVIS_NETQ_RX, BUFSZ, 0);
        buf = p->r[ELVIS_NETQ_RX].buf;
        backend_frame(p, 0x22, 3000);
        cr_assert_eq(turn(p, NULL, 100), 1);
        cr_assert_eq(used_idx(p, ELVIS_NETQ_RX), 2);
        cr_assert(logged(log, GPA + buf), "the first buffer's page");
        cr_assert(logged(log, GPA + buf + BUFSZ), "the second buffer's page");
        cr_assert(logged(log, GPA + p->r[ELVIS_NETQ_RX].used), "the used ring's page");
        for (uint64_t pg = 0; pg < size * 8; pg++) {
                uint64_t a = pg << 12;
                /* TX's used ring too: its flags were written (kicks off during the turn) */
                bool want = a == ((GPA + buf) & ~0xfffull) || a == ((GPA + p->r[ELVIS_NETQ_RX].used) & ~0xfffull) ||
                            a == ((GPA + p->r[ELVIS_NETQ_TX].used) & ~0xfffull);
                cr_assert_eq(logged(log, a), want, "page %#llx", (unsigned long long)a);
        }
        free(log);
}

Test(netq, without_log_all_only_the_used_ring_is_logged)
{
        struct pair *p = &pairs[0];
        size_t size = (GPA + MEM) / 4096 / 8;
        uint8_t *log = calloc(1, size);

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        log_on(p, log, size, false);
        offer(p, ELVIS_NETQ_RX, BUFSZ, 0);
        backend_frame(p, 0, 100);
        offer(p, ELVIS_NETQ_TX, 60, 0);
        cr_assert_eq(turn(p, NULL, 100), 2);
        cr_assert_not(logged(log, GPA + p->r[ELVIS_NETQ_RX].buf));
        cr_assert(logged(log, GPA + p->r[ELVIS_NETQ_RX].used));
        cr_assert(logged(log, GPA + p->r[ELVIS_NETQ_TX].used), "TX's used ring too; its buffers are only read");
        cr_assert_not(logged(log, GPA + p->r[ELVIS_NETQ_TX].buf));
        free(log);
}

Test(netq, switching_logging_while_frames_flow_loses_and_repeats_nothing)
{
        struct pair *p = &pairs[0];
        size_t size = (GPA + MEM) / 4096 / 8;
        uint8_t *log = calloc(1, size);
        unsigned sent = 0;

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        for (int round = 0; round < 6; round++) {
                if (round % 2)
                        log_on(p, log, size, true);
                else {
                        p->q.log = (struct elvis_log){ EV_UPTR_NULL, 0 };
                        elvis_netq_log_update(&p->q);
                }
                for (int k = 0; k < 5; k++)
                        offer(p, ELVIS_NETQ_TX, 60, (uint8_t)(sent + k));
                cr_assert_eq(turn(p, NULL, 100), 5);
                sent += 5;
                cr_assert_eq(p->xmits, sent, "each frame sent once");
                cr_assert_eq(used_idx(p, ELVIS_NETQ_TX), sent);
        }
        cr_assert(logged(log, GPA + p->r[ELVIS_NETQ_TX].used));
        free(log);
}

Test(netq, a_hostile_log_stops_the_ring_it_would_have_covered)
{
        struct pair *p = &pairs[0];
        uint8_t log[4] = { 0 };

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        /* the log covers pages 0-15 only: every write of this device lies beyond it */
        log_on(p, log, 2, true);
        offer(p, ELVIS_NETQ_RX, BUFSZ, 0);
        backend_frame(p, 0, 100);
        turn(p, NULL, 100);
        cr_assert_not(p->q.vq[ELVIS_NETQ_RX].live, "the queue errors");
        cr_assert_eq(p->notified[ELVIS_NETQ_SIG_ERR_RX], 1);
        cr_assert_eq(used_idx(p, ELVIS_NETQ_RX), 0, "and publishes nothing");
        cr_assert_eq(log[2], 0, "nothing written past the log");
}

/* A turn at a given time with a given kick count and policy (the sidecore's inputs). */
static unsigned turn_at(struct pair *p, u64 now, u64 kicks, enum elvis_turn_exitless exitless)
{
        struct elvis_turn t = { .now = now, .kicks = kicks, .exitless = exitless, .poll_start_rate = 1000,
                                .poll_stop_idle_ns = 5000000, .weight = 100, .budget_packets = 64,
                                .budget_bytes = 65536 };
        return elvis_netq_turn(&p->q, &t);
}

Test(netq, a_peek_stands_in_for_empty_turns_until_the_guest_adds_work)
{
        struct pair *p = &pairs[0];
        u64 now = 1000000;

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        cr_assert_not(elvis_netq_idle(&p->q, now, 0), "no turn yet: one must look first");
        cr_assert_eq(turn_at(p, now, 0, ELVIS_NETQ_ALWAYS), 0);
        for (int k = 1; k <= 5; k++)
                cr_assert(elvis_netq_idle(&p->q, now + (u64)k * 1000, 0), "peek %d after an empty turn", k);
        offer(p, ELVIS_NETQ_TX, 60, 0);
        cr_assert_not(elvis_netq_idle(&p->q, now + 6000, 0), "a new TX buffer needs a turn");
        p->q.sched.drr.credit = 5 << ELVIS_DRR_FRAC;
        p->q.sched.drr.busy = true;
        cr_assert_eq(turn_at(p, now + 7000, 0, ELVIS_NETQ_ALWAYS), 1);
        cr_assert(elvis_netq_idle(&p->q, now + 8000, 0), "after a busy turn, a peek finds the ring empty");
        cr_assert_not(p->q.sched.drr.busy, "and the queue idle");
        cr_assert_eq(p->q.sched.drr.credit, 0, "an idle queue banks no credit");
        cr_assert_eq(turn_at(p, now + 9000, 0, ELVIS_NETQ_ALWAYS), 0);
        cr_assert_eq(p->q.st.polls, 3 + 6, "peeks count as polls");
        cr_assert_eq(p->q.st.empty_polls, 2 + 6, "and as empty ones");
        cr_assert(elvis_netq_idle(&p->q, now + 10000, 0));
        cr_assert_not(elvis_netq_idle(&p->q, now + 10000, 1), "a kick needs a turn (the kick rate)");
        cr_assert(elvis_netq_idle(&p->q, now + 9000 + ELVIS_TURN_RECHECK_NS, 0), "not before enough peeks");
        for (unsigned k = 2; k < ELVIS_TURN_RECHECK_PEEKS; k++)
                cr_assert(elvis_netq_idle(&p->q, now + 10000 + k, 0), "peek %u", k);
        cr_assert_not(elvis_netq_idle(&p->q, now + 9000 + ELVIS_TURN_RECHECK_NS, 0),
                      "a full turn once ELVIS_TURN_RECHECK_NS and ELVIS_TURN_RECHECK_PEEKS have passed");
}

Test(netq, a_peek_sees_receive_buffers_for_a_waiting_frame_and_latched_errors)
{
        struct pair *p = &pairs[0];
        struct ring *r;

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        backend_frame(p, 0, 100);
        cr_assert_eq(turn_at(p, 1000, 0, ELVIS_NETQ_ALWAYS), 0);
        cr_assert_eq(p->q.rxlen, 100, "the frame waits for receive buffers");
        cr_assert(elvis_netq_idle(&p->q, 2000, 0));
        offer(p, ELVIS_NETQ_RX, BUFSZ, 0);
        cr_assert_not(elvis_netq_idle(&p->q, 3000, 0), "receive buffers for the waiting frame need a turn");
        cr_assert_eq(turn_at(p, 4000, 0, ELVIS_NETQ_ALWAYS), 1);
        cr_assert_eq(turn_at(p, 5000, 0, ELVIS_NETQ_ALWAYS), 0);
        /* an avail index gone wild: the peek only says "turn", the turn validates and stops the ring */
        r = &p->r[ELVIS_NETQ_TX];
        *u16_at(r->avail + 2) = (uint16_t)(r->avail_idx + NUM + 1);
        cr_assert_not(elvis_netq_idle(&p->q, 6000, 0));
        cr_assert_eq(p->q.vq[ELVIS_NETQ_TX].vr.error, 0, "the peek latches nothing");
        turn_at(p, 7000, 0, ELVIS_NETQ_ALWAYS);
        cr_assert_not(p->q.vq[ELVIS_NETQ_TX].live, "the turn stopped it");
        cr_assert_eq(p->notified[ELVIS_NETQ_SIG_ERR_TX], 1);
}

Test(netq, a_peeked_queue_still_returns_to_notifications_when_idle)
{
        struct pair *p = &pairs[0];
        u64 now = 1000000, stop = 5000000;
        unsigned peeks = 0;

        setup_pair(p, 0, 1ull << ELVIS_NET_FEAT_VERSION_1);
        p->q.sched.mode = ELVIS_NETQ_POLL;
        offer(p, ELVIS_NETQ_TX, 60, 0);
        cr_assert_eq(turn_at(p, now, 0, ELVIS_NETQ_AUTO), 1);
        /* a sidecore loop: a turn whenever the peek says so, every 10 us */
        for (u64 t = now + 10000; t < now + 2 * stop && p->q.sched.mode == ELVIS_NETQ_POLL; t += 10000) {
                if (elvis_netq_idle(&p->q, t, 0))
                        peeks++;
                else
                        turn_at(p, t, 0, ELVIS_NETQ_AUTO);
        }
        cr_assert_eq(p->q.sched.mode, ELVIS_NETQ_NOTIFY, "back to notifications");
        cr_assert_leq(p->q.sched.last_turn_ns - p->q.sched.last_work_ns, stop + 20000,
                      "within a round of the idle time (%llu ns)",
                      (unsigned long long)(p->q.sched.last_turn_ns - p->q.sched.last_work_ns));
        cr_assert_gt(peeks, 350, "peeks stood in for most turns (%u)", peeks);
}
