/* elvis-sim's model, shared by the simulator (sim.c) and the re-implemented peers
 * (peer_*.c): a trace, one run of one rule over it, and the capacity model's helpers. */
#pragma once
#include <elvis/policy.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define MAX_VMS 64
#define MAX_PHASES 64

enum rule { R_ELVIS, R_STATIC, R_IOCM, R_OVS, R_SPDK, R_MAX };

struct trace {
        char name[64];
        unsigned interval_ms;
        double capacity_pps;            /* one sidecore's packets per second */
        unsigned nvms;
        struct {
                char name[32];
                int numa;
                unsigned weight;
        } vm[MAX_VMS];
        unsigned nphases;
        struct {
                double seconds;
                double pps[MAX_VMS];
        } phase[MAX_PHASES];
        struct elvis_topology topo;
        elvis_cpuset allowed;
        struct elvis_policy policy;
        json_t *expect;
};

/* IOcm's moves, each with its own request history and regret penalty. */
enum iocm_move { IOCM_ADD, IOCM_REMOVE, IOCM_NMOVES };
#define IOCM_REQUEST_HISTORY 20
#define IOCM_RATIO_HISTORY 5

struct iocm_state {
        unsigned epoch, last_good;
        bool any_good;
        double ratio[IOCM_RATIO_HISTORY];       /* throughput of the last epochs */
        unsigned nratio;
        struct {
                bool known, this_epoch;
                bool hist[IOCM_REQUEST_HISTORY];
                unsigned len;
                bool failed;
                unsigned penalty, failed_epoch;
        } move[IOCM_NMOVES];
        /* a change under evaluation: the controller sleeps through it */
        unsigned eval_left;
        enum iocm_move eval_move;
        double eval_before, eval_sum;
        unsigned eval_n;
        unsigned rollbacks;
};

#define OVS_INTERVALS 12

struct ovs_state {
        double rxq_cycles[MAX_VMS][OVS_INTERVALS];      /* core-seconds per 5 s interval */
        double rxq_cur[MAX_VMS];
        double pmd_busy[ELVIS_MAX_SIDECORES];           /* core-seconds this interval */
        unsigned pmd_overloaded[ELVIS_MAX_SIDECORES];
        unsigned interval_idx;
        uint64_t next_interval_ms, next_check_ms;
        unsigned rebalances;
};

struct spdk_state {
        double thread_busy[MAX_VMS], thread_idle[MAX_VMS];     /* seconds this period */
        double core_busy[ELVIS_MAX_SIDECORES], core_idle[ELVIS_MAX_SIDECORES];
};

struct sim {
        const struct trace *t;
        enum rule rule;
        unsigned nsc;
        struct {
                uint32_t id;
                int cpu, numa;
        } sc[ELVIS_MAX_SIDECORES];
        uint32_t next_id;
        uint32_t assign[MAX_VMS];       /* sidecore per VM queue */
        double backlog[MAX_VMS];        /* packets waiting */
        double demand[MAX_VMS];         /* packets to serve this interval (new ones and the backlog) */
        double served[MAX_VMS], wait_us[MAX_VMS], load[ELVIS_MAX_SIDECORES];
        struct elvis_controller ctl;
        struct iocm_state iocm;
        struct ovs_state ovs;
        struct spdk_state spdk;
        unsigned epoch;
        /* results */
        double sidecore_seconds, max_wait_us, total_s;
        unsigned overloaded, intervals, moves, changes;
        double vm_served[MAX_VMS], vm_offered[MAX_VMS];
};

/* The capacity model's operations on a run, in sim.c. */
int sim_sc_index(const struct sim *s, uint32_t id);
int sim_free_cpu(const struct sim *s, int numa);
uint32_t sim_add_sc(struct sim *s, int cpu);
void sim_remove_sc(struct sim *s, uint32_t id);
void sim_move(struct sim *s, unsigned v, uint32_t to);
void sim_round_robin(struct sim *s);
/* Busy share of sidecore k over the last interval (0..1). */
double sim_busy(const struct sim *s, unsigned k);

/* The peers: set up their pool before the first interval, then act after each one. */
void peer_iocm_step(struct sim *s);
void peer_ovs_start(struct sim *s);
void peer_ovs_step(struct sim *s, uint64_t now_ms);
void peer_spdk_step(struct sim *s, uint64_t now_ms);
/* Cores SPDK keeps polling: the main core and any core with a thread. */
unsigned peer_spdk_polling(const struct sim *s);
