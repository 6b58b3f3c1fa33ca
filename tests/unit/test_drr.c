/* Unit tests: weighted deficit round robin (dataplane/engine/elvis_drr.h) against rings
 * that hold only so many packets, as a saturated sidecore sees them. */
#include <criterion/criterion.h>

#include "elvis_drr.h"

#include <math.h>

struct simq {
        struct elvis_drr_queue q;
        u32 weight, ring_cap;
        u64 moved;
};

/* rounds of a sidecore whose producers keep every ring full */
static void run(struct simq *qs, unsigned n, u32 budget, unsigned rounds)
{
        struct elvis_drr_round r;

        for (unsigned round = 0; round < rounds; round++) {
                elvis_drr_round_begin(&r, budget);
                for (unsigned i = 0; i < n; i++)
                        if (qs[i].q.busy || round == 0)
                                elvis_drr_round_fit(&r, qs[i].weight, qs[i].ring_cap);
                for (unsigned i = 0; i < n; i++) {
                        u32 g = elvis_drr_grant(&r, &qs[i].q, qs[i].weight, qs[i].ring_cap);
                        u32 moved = g < qs[i].ring_cap ? g : qs[i].ring_cap;
                        if (!g)
                                continue;
                        qs[i].moved += moved;
                        elvis_drr_charge(&qs[i].q, moved, moved < g);
                }
        }
}

static void expect_shares(const struct simq *qs, unsigned n, double tolerance)
{
        u64 total = 0, wsum = 0;

        for (unsigned i = 0; i < n; i++) {
                total += qs[i].moved;
                wsum += qs[i].weight;
        }
        cr_assert_gt(total, 0);
        for (unsigned i = 0; i < n; i++) {
                double share = (double)qs[i].moved / (double)total, want = (double)qs[i].weight / (double)wsum;
                cr_assert_lt(fabs(share - want) / want, tolerance, "queue %u (weight %u): share %.4f, want %.4f", i,
                             qs[i].weight, share, want);
        }
}

/* The case that failed: 256-entry rings of two-descriptor packets (128 at once) and the
 * default budget of 64 packets per 100 of weight. */
Test(drr, weights_above_a_ringful_still_hold)
{
        struct simq qs[4] = { { .weight = 100, .ring_cap = 128 }, { .weight = 200, .ring_cap = 128 },
                              { .weight = 300, .ring_cap = 128 }, { .weight = 400, .ring_cap = 128 } };

        run(qs, 4, 64, 10000);
        expect_shares(qs, 4, 0.01);
}

Test(drr, one_to_ten_and_the_extremes)
{
        struct simq a[2] = { { .weight = 100, .ring_cap = 128 }, { .weight = 1000, .ring_cap = 128 } };
        struct simq b[2] = { { .weight = 1, .ring_cap = 128 }, { .weight = 10000, .ring_cap = 128 } };

        run(a, 2, 64, 10000);
        expect_shares(a, 2, 0.01);
        run(b, 2, 64, 200000);
        expect_shares(b, 2, 0.05);
        cr_assert_gt(b[0].moved, 0, "weight 1 is served too");
}

/* Rings of different sizes: the smallest ringful per weight sets the unit for all. */
Test(drr, mixed_ring_sizes)
{
        struct simq qs[3] = { { .weight = 100, .ring_cap = 512 }, { .weight = 300, .ring_cap = 64 },
                              { .weight = 600, .ring_cap = 2048 } };

        run(qs, 3, 64, 20000);
        expect_shares(qs, 3, 0.01);
}

/* Small weights and big rings: the budget itself is the unit, as before. */
Test(drr, the_budget_applies_when_rings_are_big_enough)
{
        struct elvis_drr_round r;
        struct elvis_drr_queue q = { 0 };

        elvis_drr_round_begin(&r, 64);
        elvis_drr_round_fit(&r, 100, 4096);
        cr_assert_eq(elvis_drr_grant(&r, &q, 100, 4096), 64);
        cr_assert_eq(elvis_drr_grant(&r, &q, 200, 4096), 64 + 128 > 2 * 4096 ? 2 * 4096 : 64 + 128);
        elvis_drr_charge(&q, 10, true);
        cr_assert_eq(q.credit, (s64)(64 + 128 - 10) << ELVIS_DRR_FRAC, "still backlogged: it keeps the rest");
        cr_assert(q.busy);
        elvis_drr_charge(&q, 0, true);
        cr_assert_eq(q.credit, 0, "a queue that found nothing forfeits its credit");
        cr_assert(!q.busy);
}

/* An interactive queue (little work, lately) next to backlogged ones: their turns shrink
 * to ELVIS_DRR_SPARSE_PACKETS at the default weight, and their shares still hold. */
Test(drr, an_interactive_queue_shortens_every_turn_and_the_shares_hold)
{
        struct simq qs[3] = { { .weight = 100, .ring_cap = 1024 }, { .weight = 200, .ring_cap = 1024 },
                              { .weight = 300, .ring_cap = 1024 } };
        struct elvis_drr_round r;
        u64 now = 10 * ELVIS_DRR_SPARSE_NS;

        cr_assert(elvis_drr_sparse(1, now - 1000, now), "one request lately: interactive");
        cr_assert(elvis_drr_sparse(0, now - ELVIS_DRR_SPARSE_NS + 1, now));
        cr_assert_not(elvis_drr_sparse(ELVIS_DRR_SPARSE_ITEMS + 1, now - 1000, now), "a backlogged turn is not");
        cr_assert_not(elvis_drr_sparse(0, now - ELVIS_DRR_SPARSE_NS, now), "idle for long: not interactive");
        cr_assert_not(elvis_drr_sparse(0, 0, now), "never had work");

        elvis_drr_round_begin(&r, 128);
        elvis_drr_round_interactive(&r);
        cr_assert_eq(r.unit, (u64)ELVIS_DRR_SPARSE_PACKETS << ELVIS_DRR_FRAC);
        for (unsigned round = 0; round < 20000; round++) {
                elvis_drr_round_begin(&r, 128);
                for (unsigned i = 0; i < 3; i++)
                        elvis_drr_round_fit(&r, qs[i].weight, qs[i].ring_cap);
                elvis_drr_round_interactive(&r);
                for (unsigned i = 0; i < 3; i++) {
                        u32 g = elvis_drr_grant(&r, &qs[i].q, qs[i].weight, qs[i].ring_cap);

                        cr_assert_leq(g, ELVIS_DRR_SPARSE_PACKETS * qs[i].weight / 100 + 1,
                                      "queue %u's turn is short: %u", i, g);
                        qs[i].moved += g;
                        elvis_drr_charge(&qs[i].q, g, false);
                }
        }
        expect_shares(qs, 3, 0.01);
        /* and a small budget is never raised by it */
        elvis_drr_round_begin(&r, 8);
        elvis_drr_round_interactive(&r);
        cr_assert_eq(r.unit, (u64)8 << ELVIS_DRR_FRAC);
}

/* Quiet queues next to busy ones, simulated over 10 ms of 1 us rounds: one that had work
 * lately is looked at every ELVIS_QUIET_PEEK_ROUNDS rounds; one idle for longer than an
 * interactive gap at most once per ELVIS_IDLE_PEEK_NS after its last peek, and again
 * within ELVIS_QUIET_PEEK_ROUNDS rounds once a kick clears its wait. */
static unsigned looks(u64 start, u64 last_work, u64 kick_at, u64 *first_after_kick)
{
        u64 next_peek = 0;
        unsigned n = 0;

        *first_after_kick = 0;
        for (u32 round = 0; round < 10000; round++) {
                u64 now = start + round * 1000ull;

                if (kick_at && now >= kick_at && now - 1000 < kick_at)
                        next_peek = 0;          /* the kick's event, as on_kick does */
                if (!elvis_drr_quiet_due(round + 3, true, true, now, last_work, next_peek))
                        continue;
                n++;
                next_peek = now + ELVIS_IDLE_PEEK_NS;
                if (kick_at && now >= kick_at && !*first_after_kick)
                        *first_after_kick = now;
        }
        return n;
}

Test(drr, a_long_idle_queue_is_peeked_less_often_next_to_busy_ones)
{
        u64 start = 100 * ELVIS_DRR_SPARSE_NS, first;
        unsigned recent, idle, never, kicked;

        /* worked 1 ms before the window: every 4th round until 2 ms have passed, then the floor */
        recent = looks(start, start - 1000000, 0, &first);
        idle = looks(start, start - 5 * ELVIS_DRR_SPARSE_NS, 0, &first);
        never = looks(start, 0, 0, &first);
        cr_assert_eq(never, idle, "never worked is idle: %u against %u", never, idle);
        /* 10 ms of 1 us rounds: 2500 looks at every 4th round; 10 ms / 50 us = 200 at the floor,
         * a look landing on the first 4th round at or after it (52 us apart) */
        cr_assert(idle >= 190 && idle <= 201, "a long idle queue: %u looks in 10 ms", idle);
        cr_assert(recent >= 250 + 150 && recent <= 250 + 201,
                  "1 ms of every 4th round while interactive, then the floor: %u", recent);
        /* a kick 5.0105 ms in: looked at within 4 rounds, not at the end of the 50 us wait */
        kicked = looks(start, 0, start + 5010500, &first);
        cr_assert_geq(kicked, idle, "the kick took no look away");
        cr_assert(first >= start + 5010500 && first - (start + 5010500) <= 4000,
                  "the kicked queue was looked at %llu ns after the kick",
                  (unsigned long long)(first - (start + 5010500)));
}

/* Credit a queue banked while its guest refilled behind it (turns that ran dry having
 * moved some) does not make a long turn while an interactive queue waits: the grant is
 * the round's quantum; the bank is still there once the interactive queue has gone. */
Test(drr, banked_credit_waits_while_an_interactive_queue_is_there)
{
        struct elvis_drr_queue q = { 0 };
        struct elvis_drr_round r;
        u32 g;

        for (int i = 0; i < 8; i++) {           /* 8 turns of 128 granted, 10 moved each */
                elvis_drr_round_begin(&r, 128);
                g = elvis_drr_grant(&r, &q, 100, 64);
                elvis_drr_charge(&q, g < 10 ? g : 10, true);
        }
        cr_assert_geq(q.credit >> ELVIS_DRR_FRAC, 100, "credit banked: %lld", (long long)(q.credit >> ELVIS_DRR_FRAC));
        elvis_drr_round_begin(&r, 128);
        elvis_drr_round_interactive(&r);
        g = elvis_drr_grant(&r, &q, 100, 64);
        cr_assert_leq(g, ELVIS_DRR_SPARSE_PACKETS + 1, "an interactive round's turn: %u", g);
        elvis_drr_charge(&q, g, false);
        elvis_drr_round_begin(&r, 128);
        g = elvis_drr_grant(&r, &q, 100, 64);
        cr_assert_gt(g, 64, "the bank is spent once the interactive queue has gone: %u", g);
}

/* Rounds that moved nothing: with work lately on some queue (a guest between bursts), a
 * long-idle quiet queue still waits ELVIS_IDLE_PEEK_NS, an interactive one is looked at
 * every round; with no work lately anywhere, every quiet queue every round. */
Test(drr, between_bursts_only_long_idle_queues_wait)
{
        u64 now = 100 * ELVIS_DRR_SPARSE_NS;

        for (u32 slot = 0; slot < 4; slot++) {
                cr_assert(elvis_drr_quiet_due(slot, false, true, now, now - 1000, now + 1000),
                          "interactive, slot %u: every round", slot);
                cr_assert_not(elvis_drr_quiet_due(slot, false, true, now, 0, now + 1000),
                              "long idle, peeked 49 us ago, slot %u: waits", slot);
                cr_assert(elvis_drr_quiet_due(slot, false, true, now, 0, now), "long idle, its wait over");
                cr_assert(elvis_drr_quiet_due(slot, false, false, now, 0, now + 1000),
                          "nothing recent anywhere, slot %u: every round", slot);
        }
        cr_assert_not(elvis_drr_quiet_due(1, true, true, now, now - 1000, 0), "busy: every 4th round only");
}
