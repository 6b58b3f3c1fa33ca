/* IOcm, the dynamic I/O core manager that followed ELVIS, as its published code runs it:
 * mikelangelo-project/dynamic-io-manager (commit f59a2e6, 2017), src/io_workers_manager.py
 * (update_io_core_number) and src/algos/throughput_policy.py (ThroughputRegretPolicy,
 * IOWorkerThroughputPolicy), with the defaults src/create_configuration_file.py writes.
 *
 * Modelled:
 *  - every 0.1 s epoch it sums the I/O cores' idle share in cores (empty cycles over one core's
 *    cycles). Under add_ratio (0.12) it wants a core; over can_remove_ratio (0.8 with one to
 *    three workers, 1.0 with four or more) it may give one back, and does when the VMs' cores
 *    need it or the I/O cores idle more than 1.3 cores. The I/O core goes to, or comes from,
 *    the VMs' cores; devices are laid out by a preconfigured table per worker count.
 *  - a move is made only when it was asked for in at least 60% of its last 20 epochs (with 20
 *    epochs of history), and not within 7.5 epochs of a move that paid off.
 *  - regret: the controller then sleeps for 10 epochs and compares the throughput (bytes per
 *    TSC cycle) of the last 5 with that of the 5 epochs before the move. Equal, or better by
 *    0.01 bytes/cycle, keeps the move and clears every request history and penalty; anything
 *    else rolls it back at once and bans that move for 20 epochs, twice as long at each repeat,
 *    at most 100.
 * Simplified:
 *  - the VMs' own cores are not in the traces: a free core counts as one the VMs can spare, and
 *    they never ask for one back, so a core goes only when the I/O cores idle more than 1.3;
 *  - the margin of 0.01 bytes/cycle becomes packets per second with 64 B frames (the traces'
 *    4 Mpps a core are small-frame rates) at 2.2 GHz, the clock the code's log line assumes;
 *  - the code compares with ==; the noise-free simulator often gives exactly equal figures,
 *    which keep the move, as they would there;
 *  - left out: the batching rule (a core goes while packets average under 1,600 B: the traces
 *    have no packet sizes) and the switch between shared and per-device workers (every rule here
 *    keeps at least one sidecore); the preconfigured table is round robin.
 * ANCHORS.md gives other regret figures (60% of 50 epochs, a 10-epoch grace, 5%, bans of 100
 * epochs x10 capped x50); the code above is what IOcm does, so it is what runs here. */
#include "sim.h"

#include <math.h>
#include <string.h>

#define ADD_RATIO 0.12                  /* idle cores under which a core is added */
#define CAN_REMOVE_RATIO(n) ((n) >= 4 ? 1.0 : 0.8)
#define REMOVE_RATIO 1.3                /* idle cores over which one goes without the VMs asking */
#define REQUEST_SHARE 0.6
#define BLOCK_AFTER_GOOD 7.5            /* epochs: history_length * 1.5 */
#define GRACE 5
#define MEASURE 5
#define PENALTY 20
#define PENALTY_FACTOR 2
#define PENALTY_MAX (PENALTY * 5)
#define MARGIN_PPS (0.01 * 2.2e9 / 64)  /* 0.01 bytes/cycle */

static void push(bool *hist, unsigned *len, bool v)
{
        if (*len == IOCM_REQUEST_HISTORY) {
                memmove(hist, hist + 1, (IOCM_REQUEST_HISTORY - 1) * sizeof(*hist));
                (*len)--;
        }
        hist[(*len)++] = v;
}

/* ThroughputRegretPolicy.update(): a new epoch, its throughput, and "not asked" for every move
 * nobody asked for in the last one. */
static void update(struct iocm_state *io, double tput)
{
        io->epoch++;
        if (io->nratio == IOCM_RATIO_HISTORY)
                memmove(io->ratio, io->ratio + 1, (IOCM_RATIO_HISTORY - 1) * sizeof(io->ratio[0]));
        else
                io->nratio++;
        io->ratio[io->nratio - 1] = tput;
        for (int m = 0; m < IOCM_NMOVES; m++) {
                if (!io->move[m].known)
                        continue;
                if (io->move[m].this_epoch)
                        io->move[m].this_epoch = false;
                else
                        push(io->move[m].hist, &io->move[m].len, false);
        }
}

/* ThroughputRegretPolicy.can_do_move(): records the request and says whether it may happen. */
static bool can_do(struct iocm_state *io, enum iocm_move m)
{
        unsigned asked = 0, len;

        if (io->epoch < io->last_good + BLOCK_AFTER_GOOD)
                return false;
        if (!io->move[m].known) {
                io->move[m].known = true;
                io->move[m].len = 0;
                push(io->move[m].hist, &io->move[m].len, true);
                io->move[m].this_epoch = true;
                return false;
        }
        len = io->move[m].len;
        for (unsigned i = 0; i < len; i++)
                asked += io->move[m].hist[i];
        push(io->move[m].hist, &io->move[m].len, true);
        io->move[m].this_epoch = true;
        if (len < IOCM_REQUEST_HISTORY || asked < REQUEST_SHARE * len)
                return false;
        return !io->move[m].failed || io->epoch > io->move[m].failed_epoch + io->move[m].penalty;
}

static void add_core(struct sim *s)
{
        int cpu = sim_free_cpu(s, -1);

        if (cpu >= 0) {
                sim_add_sc(s, cpu);
                sim_round_robin(s);
        }
}

static void remove_core(struct sim *s)
{
        sim_remove_sc(s, s->sc[s->nsc - 1].id);      /* the last one added */
        sim_round_robin(s);
}

static void start_eval(struct iocm_state *io, enum iocm_move m)
{
        double sum = 0;

        for (unsigned i = 0; i < io->nratio; i++)
                sum += io->ratio[i];
        io->eval_before = io->nratio ? sum / io->nratio : 0;
        io->eval_move = m;
        io->eval_left = GRACE + MEASURE;
        io->eval_sum = 0;
        io->eval_n = 0;
}

/* ThroughputRegretPolicy.is_move_good() at the end of its sleep, and the rollback. */
static void finish_eval(struct sim *s)
{
        struct iocm_state *io = &s->iocm;
        double after = io->eval_n ? io->eval_sum / io->eval_n : 0, before = io->eval_before;
        enum iocm_move m = io->eval_move;

        if (fabs(before - after) <= 1e-9 * fmax(before, 1) || before + MARGIN_PPS < after) {
                io->last_good = io->epoch;
                for (int i = 0; i < IOCM_NMOVES; i++)
                        io->move[i].known = io->move[i].failed = false;
                return;
        }
        io->move[m].penalty = io->move[m].failed ? io->move[m].penalty * PENALTY_FACTOR : PENALTY;
        if (io->move[m].penalty > PENALTY_MAX)
                io->move[m].penalty = PENALTY_MAX;
        io->move[m].failed = true;
        io->move[m].failed_epoch = io->epoch;
        io->rollbacks++;
        if (m == IOCM_ADD)
                remove_core(s);
        else
                add_core(s);
}

void peer_iocm_step(struct sim *s)
{
        struct iocm_state *io = &s->iocm;
        double tput = 0, idle = 0;
        unsigned n = s->nsc, max = s->t->policy.max_sidecores;
        bool add, can_add, can_remove, remove;

        for (unsigned v = 0; v < s->t->nvms; v++)
                tput += s->served[v] / (s->t->interval_ms / 1000.0);
        for (unsigned k = 0; k < n; k++)
                idle += 1 - sim_busy(s, k);
        if (io->eval_left) {
                if (GRACE + MEASURE - io->eval_left >= GRACE) {
                        io->eval_sum += tput;
                        io->eval_n++;
                }
                if (!--io->eval_left)
                        finish_eval(s);
                return;
        }
        update(io, tput);
        add = idle < ADD_RATIO;
        can_remove = idle > CAN_REMOVE_RATIO(n);
        remove = idle > REMOVE_RATIO;
        can_add = sim_free_cpu(s, -1) >= 0;
        if (n <= 1)             /* min_iocores */
                remove = can_remove = false;
        if (n >= max)
                add = can_add = false;
        if (add && can_add && can_do(io, IOCM_ADD)) {
                start_eval(io, IOCM_ADD);
                add_core(s);
        } else if (remove && can_remove && can_do(io, IOCM_REMOVE)) {
                start_eval(io, IOCM_REMOVE);
                remove_core(s);
        }
}
