/* Weighted deficit round robin for queues whose rings hold only so many packets.
 *
 * A queue's quantum per turn is its weight times a per-weight unit. A quantum larger than
 * what the queue's rings can hold at once can never be spent in one turn: the ring runs
 * dry, the queue forfeits the rest, and every heavy queue ends up with one ring's worth
 * per round (weights 100:200:300:400 on 256-entry rings with two descriptors a packet
 * gave shares of 1:2:2:2). So the unit is sized each round: it is the budget's unit,
 * lowered until the busiest-weighted busy queue's quantum fits its rings. Every quantum
 * scales together and the ratios hold at any weight. Quanta are kept in 1/1024 packet,
 * and a queue still backlogged keeps its fractional credit, so a weight of 1 next to one
 * of 10,000 still gets its share. Pure arithmetic: shared by both data planes. */
#pragma once
#include "elvis_port.h"

#define ELVIS_DRR_FRAC 10               /* credit in 1/1024 packet */

struct elvis_drr_round {
        u64 unit;                       /* packets per weight unit this round, << ELVIS_DRR_FRAC, / 100 */
        bool interactive;               /* an interactive queue is waiting: no turn beyond its quantum */
};

struct elvis_drr_queue {
        s64 credit;                     /* << ELVIS_DRR_FRAC */
        bool busy;                      /* moved packets in its last turn */
};

/* Starts a round with the budget: budget_packets per turn at the default weight (100). */
static inline void elvis_drr_round_begin(struct elvis_drr_round *r, u32 budget_packets)
{
        r->unit = (u64)(budget_packets ? budget_packets : 1) << ELVIS_DRR_FRAC;
        r->interactive = false;
}

/* A busy queue of this weight whose rings hold ring_cap packets at once: lowers the unit
 * so that its quantum fits. */
static inline void elvis_drr_round_fit(struct elvis_drr_round *r, u32 weight, u32 ring_cap)
{
        u64 limit;

        if (!weight || !ring_cap)
                return;
        limit = ((u64)ring_cap << ELVIS_DRR_FRAC) * 100 / weight;
        if (limit < r->unit)
                r->unit = limit ? limit : 1;
}

/* Latency next to throughput. A queue that had work lately (within ELVIS_DRR_SPARSE_NS)
 * but little of it (its last turn moved at most ELVIS_DRR_SPARSE_ITEMS) is interactive: a
 * request-response guest, whose every request waits for the turns of the backlogged
 * queues ahead of it in the round. While one is there, the unit is capped so that a
 * turn at the default weight moves at most ELVIS_DRR_SPARSE_PACKETS: every quantum
 * shrinks by the same factor, so the shares hold, and the interactive queue waits for
 * a round of short turns instead of long ones. Credit a backlogged queue banked while its
 * guest refilled behind it (elvis_drr_charge) stays banked meanwhile: a turn spends at
 * most this round's quantum, or one banked turn would be as long as the rounds this
 * shortens. What it costs the backlogged queues is a turn's fixed cost more often
 * (measured in bench/RESULTS.md, "Latency isolation"). */
#define ELVIS_DRR_SPARSE_NS 2000000ull
#define ELVIS_DRR_SPARSE_ITEMS 4u
#define ELVIS_DRR_SPARSE_PACKETS 16u

/* Had work within an interactive queue's gap (a queue that never had any: no). */
static inline bool elvis_drr_recent(u64 last_work_ns, u64 now)
{
        return last_work_ns && now - last_work_ns < ELVIS_DRR_SPARSE_NS;
}

static inline bool elvis_drr_sparse(u32 moved, u64 last_work_ns, u64 now)
{
        return moved <= ELVIS_DRR_SPARSE_ITEMS && elvis_drr_recent(last_work_ns, now);
}

/* Whether a queue whose last look found nothing (a quiet one) is looked at (peeked) this
 * round. Next to busy queues (busy: the last round moved something), in one round of
 * ELVIS_QUIET_PEEK_ROUNDS (slot: its round-robin position plus the round number, which
 * staggers them), so new work on it waits that many rounds at most. A quiet queue with no
 * work for longer than an interactive queue's gap (ELVIS_DRR_SPARSE_NS, or never) also
 * waits ELVIS_IDLE_PEEK_NS after its last peek (next_peek_ns; 0 once a kick or tap data
 * came) while any queue on the sidecore had work within that gap (recent), busy round or
 * not: with short rounds next to many idle devices the peeks took a quarter of the
 * sidecore, and a round of them between a guest's bursts delays the next pickup
 * (bench/RESULTS.md, "Per-device cost"); a queue silent that long pays more for a wake-up
 * from sleep anyway. With no recent work anywhere, every quiet queue is peeked every
 * round: nothing else waits for the sidecore. */
#define ELVIS_QUIET_PEEK_ROUNDS 4u
#define ELVIS_IDLE_PEEK_NS 50000ull

static inline bool elvis_drr_quiet_due(u32 slot, bool busy, bool recent, u64 now, u64 last_work_ns,
                                       u64 next_peek_ns)
{
        if (busy && slot % ELVIS_QUIET_PEEK_ROUNDS)
                return false;
        if (!busy && !recent)
                return true;
        return now >= next_peek_ns || elvis_drr_recent(last_work_ns, now);
}

static inline void elvis_drr_round_interactive(struct elvis_drr_round *r)
{
        u64 limit = (u64)ELVIS_DRR_SPARSE_PACKETS << ELVIS_DRR_FRAC;

        if (limit < r->unit)
                r->unit = limit;
        r->interactive = true;
}

/* Credits a queue for its turn; returns the whole packets it may move now (0 while a
 * small weight accumulates). */
static inline u32 elvis_drr_grant(const struct elvis_drr_round *r, struct elvis_drr_queue *q, u32 weight,
                                  u32 ring_cap)
{
        s64 cap = (s64)(2 * (u64)(ring_cap ? ring_cap : 1)) << ELVIS_DRR_FRAC;
        s64 quantum = (s64)(r->unit * weight / 100);

        q->credit += quantum;
        if (q->credit > cap)
                q->credit = cap;        /* a queue never saves up more than two ringfuls */
        if (r->interactive && q->credit > quantum + ((s64)1 << ELVIS_DRR_FRAC))
                return (u32)((quantum >> ELVIS_DRR_FRAC) + 1);
        return (u32)(q->credit >> ELVIS_DRR_FRAC);
}

/* After the turn: moved packets of granted. ran_dry: the queue had no more work before
 * its grant (or byte budget) was spent. A queue that found nothing at all is idle and
 * forfeits its credit, as in DRR; one that moved some is still backlogged (its guest was
 * refilling the ring behind us) and keeps the rest, up to the cap, for its next turn. */
static inline void elvis_drr_charge(struct elvis_drr_queue *q, u32 moved, bool ran_dry)
{
        q->busy = moved > 0;
        if (ran_dry && !moved)
                q->credit = 0;
        else
                q->credit -= (s64)moved << ELVIS_DRR_FRAC;
        if (q->credit < 0)
                q->credit = 0;
}
