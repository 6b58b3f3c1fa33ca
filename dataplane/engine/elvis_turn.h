/* What every device model's queue does with its sidecore, whatever it carries: the
 * weighted turn (deficit round robin, elvis_drr.h), adaptive polling (the guest's kick
 * rate starts it, idle time stops it) and the per-queue counters. The virtio-net model
 * (elvis_net.c) and the virtio-blk queue model (elvis_blkq.c) call these at the start and
 * at the end of their turns, so a net queue and a blk queue on one sidecore get the same
 * share for the same weight and poll by the same rules.
 *
 * The model owns its rings: these functions decide, the model applies (it switches guest
 * notifications off when the mode becomes POLL). Pure arithmetic, no port: compiled into
 * both planes. */
#pragma once
#include "elvis_drr.h"
#include "elvis_vring.h"

#define ELVIS_TURN_KICK_WINDOW_NS 10000000ull   /* kick rate is measured over 10 ms windows */
/* An idle queue is peeked at (elvis_netq_idle, elvis_blkq_idle) instead of turned; a full
 * turn still comes once both this time and this many peeks have passed, for what only a
 * turn applies: a new policy, the kick window. (Peeks too: a sidecore slowed down, under
 * a debugger or valgrind, keeps its proportions.) */
#define ELVIS_TURN_RECHECK_NS 1000000ull
#define ELVIS_TURN_RECHECK_PEEKS 64u

/* transport feature bits every model's rings read */
#define ELVIS_VQ_FEAT_LOG_ALL 26                /* VHOST_F_LOG_ALL: log every guest write */
#define ELVIS_VQ_FEAT_INDIRECT_DESC 28
#define ELVIS_VQ_FEAT_EVENT_IDX 29

/* same values as the API's enum elvis_exitless and the module's ELVIS_EXITLESS_MODE_* */
enum elvis_turn_exitless { ELVIS_TURN_AUTO, ELVIS_TURN_ALWAYS, ELVIS_TURN_NEVER };
enum elvis_turn_mode { ELVIS_TURN_NOTIFY, ELVIS_TURN_POLL };

/* A virtqueue as the front end configured it, and its ring once live. */
struct elvis_qvq {
        struct elvis_vring vr;
        /* configuration from the front end */
        u32 num;
        u64 desc, avail, used;                  /* VMM addresses */
        u16 base;
        u64 log_addr;                           /* guest physical address of the used ring */
        bool log_used;                          /* VHOST_VRING_F_LOG was set with the addresses */
        bool addr_set;
        bool live;                              /* vr is initialised and may be processed */
        bool err_signalled;
};

/* Starts v's ring from its configuration, with the features the driver acked. On failure
 * the ring is stopped with the error latched (what the queue's error path reports) and
 * the error returned; on success it is live with its error notification re-armed. */
static inline int elvis_qvq_start(struct elvis_qvq *v, const struct elvis_vring_mem *mem, u64 features,
                                  const char **why)
{
        int r = elvis_vring_init(&v->vr, mem, v->num, v->desc, v->avail, v->used, v->base,
                                 features & (1ull << ELVIS_VQ_FEAT_EVENT_IDX),
                                 features & (1ull << ELVIS_VQ_FEAT_INDIRECT_DESC), why);

        if (r < 0) {
                v->live = false;
                v->vr.error = 0;
                elvis_vring_fail(&v->vr, r, *why);
                return r;
        }
        v->live = true;
        v->err_signalled = false;
        return 0;
}

/* Single-writer counters (the thread serving the queue); readers take snapshots. A blk
 * queue counts reads as rx, writes as tx, other requests in tx_packets. */
struct elvis_qstats {
        u64 rx_packets, rx_bytes, tx_packets, tx_bytes;
        u64 drops, errors, polls, empty_polls, busy_ns, wait_ns, wait_samples;
};

/* What a turn may do, from the plane's parameters. */
struct elvis_turn {
        u64 now;
        u64 kicks;                              /* guest kicks so far, monotonic */
        enum elvis_turn_exitless exitless;
        u32 poll_start_rate;                    /* kicks per second that start polling */
        u64 poll_stop_idle_ns;                  /* idle time that stops it */
        const struct elvis_drr_round *round;    /* sidecore round, or NULL: a fixed budget */
        u32 weight;
        u32 budget_packets, budget_bytes;       /* per turn at the default weight (100) */
};

/* A queue's standing with its sidecore. */
struct elvis_sched {
        enum elvis_turn_mode mode;
        u64 last_work_ns, last_turn_ns, window_start_ns, window_kicks;
        u64 quiet_until;                        /* peeks may stand in for turns until then */
        u64 recheck_ns;                         /* and, up to ELVIS_TURN_RECHECK_PEEKS peeks, until then */
        u64 kicks_seen;                         /* guest kicks at the last turn */
        u64 peeks;                              /* empty polls by peek since the last turn (counted there) */
        struct elvis_drr_queue drr;
        s64 deficit_packets, deficit_bytes;     /* what is left of this turn's grant */
};

static inline void elvis_sched_reset(struct elvis_sched *s)
{
        memset(s, 0, sizeof(*s));
        s->mode = ELVIS_TURN_NOTIFY;
}

/* May a peek stand in for a turn now? With no guest kick since the last turn, before the
 * idle clock would return a polling queue to notifications, and until the recheck is due
 * (ELVIS_TURN_RECHECK_NS and ELVIS_TURN_RECHECK_PEEKS after that turn). The model's peek
 * checks its rings. */
static inline bool elvis_sched_quiet(const struct elvis_sched *s, u64 now, u64 kicks)
{
        return now < s->quiet_until && kicks == s->kicks_seen &&
               (now < s->recheck_ns || s->peeks < ELVIS_TURN_RECHECK_PEEKS);
}

/* A peek found nothing: what an empty turn does to the schedule. An empty poll (counted
 * at the next turn); the queue is idle, so a credit left from a busy turn is forfeited, as
 * in DRR (elvis_drr_charge): an idle queue banks nothing; its wait for service restarts
 * now. */
static inline void elvis_sched_peeked(struct elvis_sched *s, u64 now)
{
        s->peeks++;
        s->last_turn_ns = now;
        s->drr.busy = false;
        s->drr.credit = 0;
}

/* The mode the policy and the guest's kick rate want now (the kick window advances). */
static inline enum elvis_turn_mode elvis_sched_want(struct elvis_sched *s, const struct elvis_turn *t)
{
        if (t->now - s->window_start_ns > ELVIS_TURN_KICK_WINDOW_NS) {
                s->window_start_ns = t->now;
                s->window_kicks = t->kicks;
        }
        if (t->exitless == ELVIS_TURN_NEVER)
                return ELVIS_TURN_NOTIFY;
        if (t->exitless == ELVIS_TURN_ALWAYS ||
            (t->exitless == ELVIS_TURN_AUTO && (t->kicks - s->window_kicks) * 100 >= t->poll_start_rate))
                return ELVIS_TURN_POLL;
        return s->mode;
}

/* A mode change the model made at time now: the idle clock starts then, not at the last
 * work done before polling. True if the mode changed. */
static inline bool elvis_sched_set_mode(struct elvis_sched *s, enum elvis_turn_mode mode, u64 now)
{
        if (s->mode == mode)
                return false;
        s->mode = mode;
        s->last_work_ns = now;
        return true;
}

/* This turn's grant. With a sidecore round, deficit round robin (elvis_drr.h) over what
 * the rings hold at once (ring_cap items); alone, the fixed budget scaled by weight.
 * Bytes follow items at the budget's ratio, and one item of min_bytes always fits.
 * False: a small weight still saving up. */
static inline bool elvis_sched_grant(struct elvis_sched *s, const struct elvis_turn *t, u32 ring_cap, s64 min_bytes)
{
        u32 bp = t->budget_packets ? t->budget_packets : 1;
        s64 per = (s64)t->budget_bytes / bp;
        u64 items;

        if (t->round)
                items = elvis_drr_grant(t->round, &s->drr, t->weight, ring_cap);
        else
                items = (u64)bp * (t->weight ? t->weight : 100) / 100;
        if (!items)
                return false;
        s->deficit_packets = (s64)items;
        s->deficit_bytes = (s64)items * (per > 0 ? per : 1);
        if (s->deficit_bytes < min_bytes)
                s->deficit_bytes = min_bytes;
        return true;
}

/* After the turn: total items moved, t1 the turn's end (t->now when nothing was done: an
 * empty turn is worth no clock read). Counts the poll, busy and wait time, charges the
 * round. True when the queue, polling under AUTO, has been idle long enough to go back to
 * notifications (the model switches). */
static inline bool elvis_sched_end(struct elvis_sched *s, struct elvis_qstats *st, const struct elvis_turn *t,
                                   unsigned int total, u64 t1)
{
        bool idle;

        ev_stat_add(st->polls, 1 + s->peeks);
        if (s->peeks)
                ev_stat_add(st->empty_polls, s->peeks);
        s->peeks = 0;
        s->kicks_seen = t->kicks;
        if (total) {
                ev_stat_add(st->busy_ns, t1 - t->now);
                /* how long the queue waited for this turn since its last one ended */
                if (s->last_turn_ns && t->now > s->last_turn_ns) {
                        ev_stat_add(st->wait_ns, t->now - s->last_turn_ns);
                        ev_stat_add(st->wait_samples, 1);
                }
                s->last_work_ns = t1;
        } else {
                ev_stat_add(st->empty_polls, 1);
        }
        if (t->round)
                elvis_drr_charge(&s->drr, total, s->deficit_packets > 0 && s->deficit_bytes > 0);
        /* t1 may be the turn's start, older than a mode change this turn made (which
         * restarts the idle clock): never idle then */
        idle = t->exitless == ELVIS_TURN_AUTO && s->mode == ELVIS_TURN_POLL && t1 > s->last_work_ns &&
               t1 - s->last_work_ns > t->poll_stop_idle_ns;
        s->last_turn_ns = t1;
        /* peeks may stand in for turns after an empty one, until the recheck period ends
         * or the idle clock would stop polling (a turn must do that) */
        s->quiet_until = 0;
        s->recheck_ns = t1 + ELVIS_TURN_RECHECK_NS;
        if (!idle)
                s->quiet_until = t->exitless == ELVIS_TURN_AUTO && s->mode == ELVIS_TURN_POLL ?
                                         s->last_work_ns + t->poll_stop_idle_ns + 1 : ~0ull;
        return idle;
}
