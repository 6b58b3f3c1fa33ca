/* The dynamic sidecore policies: pure functions over an immutable snapshot of the host
 * (sidecores, their load, every queue's measured cost) and the policy parameters,
 * returning a plan and the controller's memory for the next interval. No I/O, clock,
 * logging or globals: the daemon and the simulator feed them the same way. */
#pragma once
#include <elvis/model.h>
#include <elvis/topology.h>

#include <stddef.h>
#include <stdint.h>

#define ELVIS_PLAN_MAX 64
#define ELVIS_SNAP_MAX_QUEUES 1024

struct elvis_snap_sidecore {
        uint32_t id;
        int cpu, numa;
        double load;            /* busy share over the interval, 0..1 */
        double wait_us;         /* mean time buffers waited before pickup (standing queue) */
        bool automatic;
};

struct elvis_snap_queue {
        uint32_t vm;
        char device[ELVIS_DEVICE_ID_MAX];
        unsigned queue;
        uint32_t sidecore;      /* ELVIS_SIDECORE_NONE: vanilla or unserved (not the policies' business) */
        int numa;               /* the VM's node, -1 if none */
        double cost;            /* sidecore time the queue took over the interval, share of one core */
        double pps;             /* packets per second */
        double kicks_ps;
        double wait_us;
        unsigned weight;
};

struct elvis_snapshot {
        uint64_t now_ms;        /* monotonic time of the sample, for cooldowns */
        double interval_s;
        unsigned nsidecores, nqueues;
        struct elvis_snap_sidecore sidecores[ELVIS_MAX_SIDECORES];
        struct elvis_snap_queue queues[ELVIS_SNAP_MAX_QUEUES];
        /* CPUs a new sidecore may take, per NUMA node: chosen by the placement beforehand */
        unsigned nfree;
        struct {
                int cpu, numa;
        } free[ELVIS_MAX_SIDECORES];
};

enum elvis_action_kind {
        ELVIS_ACT_ADD_SIDECORE,         /* on cpu */
        ELVIS_ACT_REMOVE_SIDECORE,      /* id; its queues are moved by MOVE actions first */
        ELVIS_ACT_MOVE_QUEUE,           /* vm/device/queue to sidecore, or (sidecore 0) to the
                                         * new_index-th sidecore this plan adds */
};

struct elvis_action {
        enum elvis_action_kind kind;
        uint32_t sidecore;
        unsigned new_index;
        int cpu;
        uint32_t vm;
        char device[ELVIS_DEVICE_ID_MAX];
        unsigned queue;
};

/* The decision with its reason and before/after figures, for the journal. */
struct elvis_plan {
        unsigned nactions;
        struct elvis_action actions[ELVIS_PLAN_MAX];
        char policy[16];                /* "scaling", "balance", "regret", "latency" */
        char reason[256];
        double before_max_load, after_max_load;
        unsigned before_sidecores, after_sidecores;
};

/* What the controller remembers between intervals (hysteresis, cooldowns, regret). */
struct elvis_controller {
        uint64_t last_change_ms, last_rebalance_ms;
        unsigned hot_epochs, cold_epochs;       /* consecutive intervals over/under the thresholds */
        /* regret: the last scaling change, its efficiency before, and bans */
        bool watching;
        enum elvis_action_kind watched_kind;
        uint32_t watched_sidecore;
        int watched_cpu;
        unsigned watch_epochs;
        double pps_before;                      /* packets per second served before the change */
        unsigned ban_add_epochs, ban_remove_epochs;
        unsigned add_strikes, remove_strikes;
};

/* Runs scaling (with the latency signal and regret), then balancing. Fills plan (possibly
 * empty) and updates ctl. */
void elvis_policy_decide(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                         struct elvis_plan *plan);

/* The individual policies, each in its own file. Each returns true when it planned. */
bool elvis_policy_regret(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                         struct elvis_plan *plan);
bool elvis_policy_scale(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                        struct elvis_plan *plan);
bool elvis_policy_balance(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                          struct elvis_plan *plan);
/* Per-queue polling thresholds from observed rates: poll_start_rate and poll_stop_idle_ms
 * for one queue. */
void elvis_policy_polling(const struct elvis_snap_queue *q, const struct elvis_policy *p, unsigned *ret_start_rate,
                          unsigned *ret_stop_idle_ms);

/* Helpers shared by the policies and the simulator. */
double elvis_snapshot_efficiency(const struct elvis_snapshot *s);
/* Packets per second served by sidecores. */
double elvis_snapshot_pps(const struct elvis_snapshot *s);
/* Assigns queues (largest cost first, onto the least loaded sidecore of the same node)
 * to the given sidecores; fills loads[]; returns the resulting maximum load. */
double elvis_policy_pack(const struct elvis_snapshot *s, const uint32_t *ids, const int *numas, unsigned n,
                         uint32_t *ret_assign, double *ret_loads);
/* Few-moves balancing: starting from assign[] (queue -> sidecore id, 0 for a queue that
 * must go somewhere), moves one queue at a time from the busiest sidecore to the least
 * loaded one on the same node while that lowers the busier of the two; at most max_moves.
 * Returns the resulting maximum load; loads[] follows ids[]. */
double elvis_policy_spread(const struct elvis_snapshot *s, const uint32_t *ids, const int *numas, unsigned n,
                           uint32_t *assign, double *loads, unsigned max_moves);
