/* SPDK's dynamic scheduler, as module/scheduler/dynamic/scheduler_dynamic.c runs it (spdk/spdk
 * at 3230130, 2026; doc/scheduler.md).
 *
 * Modelled:
 *  - one reactor per core of the pool (all the sidecores the trace allows, from the start) and
 *    one SPDK thread per VM queue, spread round robin at start-up;
 *  - once per scheduling period (1 s, the default) a thread's load is busy / (busy + idle) over
 *    its own polls in that period, in whole percent, and a core's busy and idle ticks are
 *    those of its reactor;
 *  - balance(): first every thread under load_limit (20%) goes to the main core; then each
 *    other thread goes where _find_optimal_core() says: the main core if it fits there, else a
 *    lower core if it fits, else, when its core is at core_limit (80%) with more than one
 *    thread, any core it fits on or the least busy one. A thread fits where the core's busy
 *    ticks plus the thread's stay under core_limit (an empty or interrupt-mode core always
 *    fits). _move_thread()'s bookkeeping is kept, including that a source core at or above
 *    core_busy (95%) is not assumed to drop below core_limit;
 *  - a reactor left without threads switches to interrupt mode and costs nothing; the main core
 *    keeps the app thread and always polls.
 * Simplified:
 *  - a thread's idle ticks: a reactor runs its threads in turn, so a thread with a backlog never
 *    polls empty and reads 100% however little of the core it gets, while the core's idle time
 *    is shared evenly by the threads that had nothing left to do;
 *  - threads are visited in core order and within a core in VM order (SPDK: the reactor's list);
 *    cores are numbered in the order the pool got them; no cpumask narrows a thread; NUMA is
 *    ignored, as SPDK ignores it; the governor's frequency changes are not modelled.
 * The earlier model here took a thread's load as served/capacity, which can never exceed its
 * fair share: a thread starved on a shared core looked idle and stayed there. */
#include "sim.h"

#include <math.h>

#define PERIOD_MS 1000
#define LOAD_LIMIT 20
#define CORE_LIMIT 80
#define CORE_BUSY 95
#define MAIN 0
#define TICKS 1e9               /* per second: whole-number ticks, as SPDK's tsc */

struct core {
        uint64_t busy, idle;
        unsigned threads;
};

static unsigned busy_pct(uint64_t busy, uint64_t idle)
{
        return busy + idle ? (unsigned)(busy * 100 / (busy + idle)) : 0;
}

static uint64_t ticks(double seconds)
{
        return (uint64_t)llround(seconds * TICKS);
}

unsigned peer_spdk_polling(const struct sim *s)
{
        unsigned n = 0;

        for (unsigned k = 0; k < s->nsc; k++) {
                bool has = k == MAIN;
                for (unsigned v = 0; v < s->t->nvms && !has; v++)
                        has = s->assign[v] == s->sc[k].id;
                n += has;
        }
        return n;
}

/* The reactors' and threads' busy and idle time over one interval. */
static void account(struct sim *s)
{
        struct spdk_state *sp = &s->spdk;
        double dt = s->t->interval_ms / 1000.0;

        for (unsigned k = 0; k < s->nsc; k++) {
                double busy = 0, idle;
                unsigned threads = 0, drained = 0;
                for (unsigned v = 0; v < s->t->nvms; v++)
                        if (s->assign[v] == s->sc[k].id) {
                                threads++;
                                busy += s->served[v] / s->t->capacity_pps;
                                drained += s->demand[v] - s->served[v] <= 1e-6 * fmax(1, s->demand[v]);
                        }
                if (!threads && k != MAIN)
                        continue;       /* interrupt mode: no stats */
                idle = busy < dt ? dt - busy : 0;
                sp->core_busy[k] += busy;
                sp->core_idle[k] += idle;
                for (unsigned v = 0; v < s->t->nvms; v++)
                        if (s->assign[v] == s->sc[k].id) {
                                bool backlog = s->demand[v] - s->served[v] > 1e-6 * fmax(1, s->demand[v]);
                                sp->thread_busy[v] += s->served[v] / s->t->capacity_pps;
                                sp->thread_idle[v] += backlog ? 0 : idle / drained;
                        }
        }
}

static void move_thread(struct core *c, unsigned *lcore, uint64_t busy_tsc, unsigned v, unsigned dst)
{
        struct core *src = &c[lcore[v]], *d = &c[dst];
        unsigned src_pct = busy_pct(src->busy, src->idle);

        if (src == d)
                return;
        d->busy += busy_tsc;
        d->idle -= d->idle < busy_tsc ? d->idle : busy_tsc;
        d->threads++;
        src->busy -= src->busy < busy_tsc ? src->busy : busy_tsc;
        src->idle += busy_tsc;
        if (src_pct >= CORE_BUSY && busy_pct(src->busy, src->idle) < CORE_LIMIT) {
                uint64_t tsc = src->busy + src->idle;
                src->busy = tsc * CORE_LIMIT / 100;
                src->idle = tsc - src->busy;
        }
        src->threads--;
        lcore[v] = dst;
}

static bool at_limit(const struct core *c)
{
        return c->threads > 1 && c->busy && busy_pct(c->busy, c->idle) >= CORE_LIMIT;
}

static bool fits(const struct core *c, const unsigned *lcore, uint64_t busy_tsc, unsigned v, unsigned dst)
{
        const struct core *d = &c[dst];

        if (lcore[v] == dst || d->busy + d->idle == 0 || d->threads == 0)
                return true;
        if (d->idle < busy_tsc)
                return false;
        return busy_pct(d->busy + busy_tsc, d->idle - busy_tsc) < CORE_LIMIT;
}

static unsigned find_optimal_core(const struct sim *s, const struct core *c, const unsigned *lcore, uint64_t busy_tsc,
                                  unsigned v)
{
        unsigned cur = lcore[v], least = cur;
        bool limit = at_limit(&c[cur]);

        for (unsigned i = 0; i < s->nsc; i++) {
                if (c[i].busy < c[least].busy)
                        least = i;
                if (!fits(c, lcore, busy_tsc, v, i) || i == cur)
                        continue;
                if (i == MAIN)
                        return i;
                if (i < cur && cur != MAIN)
                        return i;
                if (limit)
                        return i;
        }
        return limit ? least : cur;
}

static void balance(struct sim *s)
{
        struct spdk_state *sp = &s->spdk;
        struct core c[ELVIS_MAX_SIDECORES] = { { 0 } };
        unsigned lcore[MAX_VMS], load[MAX_VMS], order[MAX_VMS], n = 0;
        uint64_t busy_tsc[MAX_VMS];

        for (unsigned k = 0; k < s->nsc; k++) {
                c[k].busy = ticks(sp->core_busy[k]);
                c[k].idle = ticks(sp->core_idle[k]);
                c[k].threads = k == MAIN;       /* the app thread */
        }
        for (unsigned v = 0; v < s->t->nvms; v++) {
                lcore[v] = (unsigned)sim_sc_index(s, s->assign[v]);
                c[lcore[v]].threads++;
                busy_tsc[v] = ticks(sp->thread_busy[v]);
                load[v] = busy_pct(busy_tsc[v], ticks(sp->thread_idle[v]));
        }
        for (unsigned k = 0; k < s->nsc; k++)
                for (unsigned v = 0; v < s->t->nvms; v++)
                        if (lcore[v] == k)
                                order[n++] = v;
        for (unsigned i = 0; i < n; i++)
                if (load[order[i]] < LOAD_LIMIT)
                        move_thread(c, lcore, busy_tsc[order[i]], order[i], MAIN);
        for (unsigned i = 0; i < n; i++)
                if (load[order[i]] >= LOAD_LIMIT)
                        move_thread(c, lcore, busy_tsc[order[i]], order[i],
                                    find_optimal_core(s, c, lcore, busy_tsc[order[i]], order[i]));
        for (unsigned v = 0; v < s->t->nvms; v++) {
                sim_move(s, v, s->sc[lcore[v]].id);
                sp->thread_busy[v] = sp->thread_idle[v] = 0;
        }
        for (unsigned k = 0; k < s->nsc; k++)
                sp->core_busy[k] = sp->core_idle[k] = 0;
}

void peer_spdk_step(struct sim *s, uint64_t end_ms)
{
        account(s);
        if (end_ms % PERIOD_MS == 0)
                balance(s);
}
