/* elvis-sim: replays load traces through the real policy code (policies/) with a sidecore
 * capacity model, next to re-implementations of the reference rules (static maximum,
 * IOcm thresholds, OVS-DPDK auto load balance, SPDK's dynamic scheduler), and reports
 * sidecore-seconds, overloaded intervals, the worst per-VM wait and queue moves.
 *   elvis-sim [--decisions] [--markdown] [--check] TRACE.json...
 * --check verifies the trace's "expect" block and exits 1 when it does not hold. */
#include <elvis/policy.h>

#include "../../daemon/topology_hwloc.h"

#include <elvis/placement.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VMS 64
#define MAX_PHASES 64
#define OVERLOAD 1.0            /* demand beyond a sidecore's capacity */

enum rule { R_ELVIS, R_STATIC, R_IOCM, R_OVS, R_SPDK, R_MAX };
static const char *const rule_names[] = { "ELVIS", "static max", "IOcm thresholds", "OVS auto-lb", "SPDK dynamic" };

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
        double served[MAX_VMS], wait_us[MAX_VMS], load[ELVIS_MAX_SIDECORES];
        struct elvis_controller ctl;
        /* rule state */
        unsigned epoch, hist_hot[50], hist_cold[50];
        unsigned hot_samples;
        uint64_t last_change_ms, last_rebal_ms;
        /* results */
        double sidecore_seconds, max_wait_us, total_s;
        unsigned overloaded, intervals, moves, changes;
        double vm_served[MAX_VMS], vm_offered[MAX_VMS];
};

static int die(const char *msg, const char *what)
{
        fprintf(stderr, "elvis-sim: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
        exit(2);
}

static void load_trace(const char *path, struct trace *t)
{
        json_error_t jerr;
        json_t *j = json_load_file(path, 0, &jerr), *v;
        char err[256];
        size_t i;

        if (!j)
                die("cannot read trace", jerr.text);
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s", json_string_value(json_object_get(j, "name")) ?: path);
        t->interval_ms = (unsigned)json_integer_value(json_object_get(j, "interval_ms"));
        if (!t->interval_ms)
                t->interval_ms = 100;
        t->capacity_pps = json_number_value(json_object_get(j, "capacity_pps"));
        if (t->capacity_pps <= 0)
                die("capacity_pps must be positive", path);
        if (elvis_topology_load(ELVIS_TOPOLOGY_SYNTHETIC, json_string_value(json_object_get(j, "topology")), &t->topo,
                                err, sizeof(err)) < 0)
                die("bad topology", err);
        t->allowed = t->topo.online;
        elvis_cpuset_clear(&t->allowed, 0);     /* housekeeping */
        elvis_policy_defaults(&t->policy);
        t->policy.mode = ELVIS_MODE_DYNAMIC;
        t->policy.interval_ms = t->interval_ms;
        if ((v = json_object_get(j, "max_sidecores")))
                t->policy.max_sidecores = (unsigned)json_integer_value(v);
        if ((v = json_object_get(j, "max_wait_us")))
                t->policy.max_wait_us = (unsigned)json_integer_value(v);
        json_array_foreach(json_object_get(j, "vms"), i, v) {
                if (i >= MAX_VMS)
                        die("too many VMs", path);
                snprintf(t->vm[i].name, sizeof(t->vm[i].name), "%s", json_string_value(json_object_get(v, "name")));
                t->vm[i].numa = json_object_get(v, "numa") ? (int)json_integer_value(json_object_get(v, "numa")) : -1;
                t->vm[i].weight = json_object_get(v, "weight") ? (unsigned)json_integer_value(json_object_get(v, "weight"))
                                                               : 100;
                t->nvms++;
        }
        json_array_foreach(json_object_get(j, "phases"), i, v) {
                const char *k;
                json_t *p;
                if (i >= MAX_PHASES)
                        die("too many phases", path);
                t->phase[i].seconds = json_number_value(json_object_get(v, "seconds"));
                json_object_foreach(json_object_get(v, "pps"), k, p)
                        for (unsigned n = 0; n < t->nvms; n++)
                                if (!strcmp(k, t->vm[n].name))
                                        t->phase[i].pps[n] = json_number_value(p);
                t->nphases++;
        }
        t->expect = json_incref(json_object_get(j, "expect"));
        json_decref(j);
}

/* ---- capacity model ---- */

/* Weighted max-min fair share of one sidecore's capacity among its queues (what deficit
 * round robin with per-VM weights converges to). */
static void serve(struct sim *s, unsigned k, const double *demand, double dt)
{
        double cap = s->t->capacity_pps * dt, want = 0;
        bool active[MAX_VMS] = { false };
        unsigned n = 0;

        for (unsigned v = 0; v < s->t->nvms; v++)
                if (s->assign[v] == s->sc[k].id && demand[v] > 0) {
                        active[v] = true;
                        want += demand[v];
                        n++;
                }
        s->load[k] = want / cap;
        while (n && cap > 1e-9) {
                double wsum = 0, used = 0;
                for (unsigned v = 0; v < s->t->nvms; v++)
                        if (active[v])
                                wsum += s->t->vm[v].weight;
                for (unsigned v = 0; v < s->t->nvms; v++) {
                        double share;
                        if (!active[v])
                                continue;
                        share = cap * s->t->vm[v].weight / wsum;
                        if (demand[v] - s->served[v] <= share + 1e-9) {
                                used += demand[v] - s->served[v];
                                s->served[v] = demand[v];
                                active[v] = false;
                                n--;
                        }
                }
                if (used < 1e-9) {      /* nobody satisfied: split what is left by weight */
                        for (unsigned v = 0; v < s->t->nvms; v++)
                                if (active[v])
                                        s->served[v] += cap * s->t->vm[v].weight / wsum;
                        break;
                }
                cap -= used;
        }
}

static int sc_index(const struct sim *s, uint32_t id)
{
        for (unsigned k = 0; k < s->nsc; k++)
                if (s->sc[k].id == id)
                        return (int)k;
        return -1;
}

static bool cpu_used(const struct sim *s, int cpu)
{
        for (unsigned k = 0; k < s->nsc; k++)
                if (s->sc[k].cpu == cpu)
                        return true;
        return false;
}

static int free_cpu(const struct sim *s, int numa)
{
        elvis_cpuset busy;

        elvis_cpuset_zero(&busy);
        for (unsigned k = 0; k < s->nsc; k++)
                elvis_cpuset_set(&busy, s->sc[k].cpu);
        {
                int cpu;
                char reason[128];
                if (elvis_place_sidecore(&s->t->topo, &s->t->allowed, &busy, numa, &cpu, reason, sizeof(reason)) == 0)
                        return cpu;
        }
        return -1;
}

static uint32_t add_sc(struct sim *s, int cpu)
{
        s->sc[s->nsc].id = ++s->next_id;
        s->sc[s->nsc].cpu = cpu;
        s->sc[s->nsc].numa = elvis_topology_cpu_numa(&s->t->topo, cpu);
        s->nsc++;
        s->changes++;
        return s->next_id;
}

static void move(struct sim *s, unsigned v, uint32_t to)
{
        if (s->assign[v] != to) {
                if (s->assign[v])
                        s->moves++;
                s->assign[v] = to;
        }
}

static void remove_sc(struct sim *s, uint32_t id)
{
        int k = sc_index(s, id);

        if (k < 0 || s->nsc < 2)
                return;
        s->sc[k] = s->sc[--s->nsc];
        s->changes++;
        /* orphans go to the least loaded sidecore, NUMA-local when there is one */
        for (unsigned v = 0; v < s->t->nvms; v++)
                if (s->assign[v] == id) {
                        int best = -1;
                        for (int pass = 0; pass < 2 && best < 0; pass++)
                                for (unsigned j = 0; j < s->nsc; j++)
                                        if ((pass || s->t->vm[v].numa < 0 || s->sc[j].numa == s->t->vm[v].numa) &&
                                            (best < 0 || s->load[j] < s->load[best]))
                                                best = (int)j;
                        move(s, v, s->sc[best].id);
                }
}

/* Round robin over the sidecores on each VM's node (what simple rules do after a change). */
static void round_robin(struct sim *s)
{
        unsigned next = 0;

        for (unsigned v = 0; v < s->t->nvms; v++) {
                int pick = -1;
                for (unsigned tries = 0; tries < s->nsc && pick < 0; tries++) {
                        unsigned j = (next + tries) % s->nsc;
                        if (s->t->vm[v].numa < 0 || s->sc[j].numa == s->t->vm[v].numa)
                                pick = (int)j;
                }
                if (pick < 0)
                        pick = (int)(next % s->nsc);
                next = (unsigned)pick + 1;
                move(s, v, s->sc[pick].id);
        }
}

/* ---- the rules ---- */

static void snapshot(const struct sim *s, struct elvis_snapshot *snap, uint64_t now_ms)
{
        memset(snap, 0, sizeof(*snap));
        snap->now_ms = now_ms;
        snap->interval_s = s->t->interval_ms / 1000.0;
        for (unsigned k = 0; k < s->nsc; k++) {
                snap->sidecores[k] = (struct elvis_snap_sidecore){ .id = s->sc[k].id, .cpu = s->sc[k].cpu,
                                                                    .numa = s->sc[k].numa, .automatic = true,
                                                                    .load = s->load[k] > 1 ? 1 : s->load[k] };
        }
        snap->nsidecores = s->nsc;
        for (unsigned v = 0; v < s->t->nvms; v++) {
                struct elvis_snap_queue *q = &snap->queues[snap->nqueues++];
                int k = sc_index(s, s->assign[v]);
                *q = (struct elvis_snap_queue){ .vm = v + 1, .queue = 0, .sidecore = s->assign[v],
                                                .numa = s->t->vm[v].numa, .weight = s->t->vm[v].weight,
                                                .pps = s->served[v] / snap->interval_s,
                                                .cost = s->served[v] / snap->interval_s / s->t->capacity_pps,
                                                .wait_us = s->wait_us[v] };
                snprintf(q->device, sizeof(q->device), "net0");
                if (k >= 0 && q->wait_us > snap->sidecores[k].wait_us)
                        snap->sidecores[k].wait_us = q->wait_us;
        }
        {
                elvis_cpuset busy, free;
                elvis_cpuset_zero(&busy);
                for (unsigned k = 0; k < s->nsc; k++)
                        elvis_cpuset_set(&busy, s->sc[k].cpu);
                free = elvis_placement_free_cpus(&s->t->topo, &s->t->allowed, &busy);
                for (size_t i = s->t->topo.ncores; i-- > 0 && snap->nfree < ELVIS_MAX_SIDECORES;) {
                        int cpu = elvis_cpuset_next(&s->t->topo.cores[i].pus, 0);
                        if (cpu >= 0 && elvis_cpuset_has(&free, cpu)) {
                                snap->free[snap->nfree].cpu = cpu;
                                snap->free[snap->nfree++].numa = elvis_topology_cpu_numa(&s->t->topo, cpu);
                        }
                }
        }
}

static void rule_elvis(struct sim *s, uint64_t now_ms, bool print)
{
        struct elvis_snapshot *snap = malloc(sizeof(*snap));
        struct elvis_plan plan;
        uint32_t added[ELVIS_PLAN_MAX];
        unsigned nadded = 0;

        snapshot(s, snap, now_ms);
        elvis_policy_decide(snap, &s->t->policy, &s->ctl, &plan);
        free(snap);
        if (!plan.nactions)
                return;
        if (print)
                printf("  t=%6.1fs %-8s %s\n", now_ms / 1000.0, plan.policy, plan.reason);
        for (unsigned i = 0; i < plan.nactions; i++) {
                const struct elvis_action *a = &plan.actions[i];
                if (a->kind == ELVIS_ACT_ADD_SIDECORE && !cpu_used(s, a->cpu))
                        added[nadded++] = add_sc(s, a->cpu);
                else if (a->kind == ELVIS_ACT_MOVE_QUEUE && a->vm >= 1 && a->vm <= s->t->nvms)
                        move(s, a->vm - 1, a->sidecore ? a->sidecore : a->new_index < nadded ? added[a->new_index] : 0);
                else if (a->kind == ELVIS_ACT_REMOVE_SIDECORE)
                        remove_sc(s, a->sidecore);
        }
}

static double pool_idle(const struct sim *s)
{
        double busy = 0;

        for (unsigned k = 0; k < s->nsc; k++)
                busy += s->load[k] > 1 ? 1 : s->load[k];
        return s->nsc ? 1 - busy / s->nsc : 1;
}

/* IOcm: every epoch, add below 12% idle / remove above 80% idle, each only when wanted in
 * at least 60% of the last 50 epochs; queues re-spread round robin after a change. */
static void rule_iocm(struct sim *s)
{
        double idle = pool_idle(s);
        unsigned hot = 0, cold = 0, n = s->epoch < 50 ? s->epoch + 1 : 50;

        s->hist_hot[s->epoch % 50] = idle < 0.12;
        s->hist_cold[s->epoch % 50] = idle > 0.8;
        for (unsigned i = 0; i < n; i++) {
                hot += s->hist_hot[i];
                cold += s->hist_cold[i];
        }
        if (hot * 10 >= 6 * 50 && s->nsc < s->t->policy.max_sidecores) {
                int cpu = free_cpu(s, -1);
                if (cpu >= 0) {
                        add_sc(s, cpu);
                        round_robin(s);
                        memset(s->hist_hot, 0, sizeof(s->hist_hot));
                }
        } else if (cold * 10 >= 6 * 50 && s->nsc > 1) {
                remove_sc(s, s->sc[s->nsc - 1].id);
                round_robin(s);
                memset(s->hist_cold, 0, sizeof(s->hist_cold));
        }
}

/* OVS-DPDK: a fixed set of PMDs; every 10 s it samples; a PMD above 95% for a minute
 * triggers a dry-run reassignment by cycles, applied if the load variance improves by
 * 25%, at most once a minute. */
static void rule_ovs(struct sim *s, uint64_t now_ms)
{
        if (now_ms % 10000 >= s->t->interval_ms)
                return;
        {
                bool hot = false;
                for (unsigned k = 0; k < s->nsc; k++)
                        hot |= s->load[k] > 0.95;
                s->hot_samples = hot ? s->hot_samples + 1 : 0;
        }
        if (s->hot_samples < 6 || (s->last_rebal_ms && now_ms - s->last_rebal_ms < 60000))
                return;
        {
                struct elvis_snapshot *snap = malloc(sizeof(*snap));
                uint32_t ids[ELVIS_MAX_SIDECORES], assign[ELVIS_SNAP_MAX_QUEUES] = { 0 };
                int numas[ELVIS_MAX_SIDECORES];
                double loads[ELVIS_MAX_SIDECORES], mean = 0, var0 = 0, var1 = 0;
                snapshot(s, snap, now_ms);
                for (unsigned k = 0; k < s->nsc; k++) {
                        ids[k] = s->sc[k].id;
                        numas[k] = s->sc[k].numa;
                        mean += s->load[k] / s->nsc;
                }
                elvis_policy_pack(snap, ids, numas, s->nsc, assign, loads);
                for (unsigned k = 0; k < s->nsc; k++) {
                        var0 += (s->load[k] - mean) * (s->load[k] - mean);
                        var1 += (loads[k] - mean) * (loads[k] - mean);
                }
                if (var1 <= var0 * 0.75)
                        for (unsigned v = 0; v < s->t->nvms; v++)
                                move(s, v, assign[v]);
                s->last_rebal_ms = now_ms;
                s->hot_samples = 0;
                free(snap);
        }
}

/* SPDK's dynamic scheduler, every second: threads under 20% busy are idle and packed on
 * the main core; busy ones are spread so no core passes 80%; a core without threads
 * does not count (it idles in interrupt mode). */
static void rule_spdk(struct sim *s, uint64_t now_ms)
{
        double cost[MAX_VMS], core[ELVIS_MAX_SIDECORES] = { 0 };

        if (now_ms % 1000 >= s->t->interval_ms)
                return;
        for (unsigned v = 0; v < s->t->nvms; v++)
                cost[v] = s->served[v] / (s->t->interval_ms / 1000.0) / s->t->capacity_pps;
        for (unsigned v = 0; v < s->t->nvms; v++)
                if (cost[v] < 0.2) {
                        move(s, v, s->sc[0].id);
                        core[0] += cost[v];
                }
        for (unsigned v = 0; v < s->t->nvms; v++) {
                int pick = -1;
                if (cost[v] < 0.2)
                        continue;
                for (unsigned k = 0; k < s->nsc && pick < 0; k++)
                        if (core[k] + cost[v] <= 0.8)
                                pick = (int)k;
                if (pick < 0) {
                        pick = 0;
                        for (unsigned k = 1; k < s->nsc; k++)
                                if (core[k] < core[pick])
                                        pick = (int)k;
                }
                core[pick] += cost[v];
                move(s, v, s->sc[pick].id);
        }
}

/* ---- running ---- */

static void run(struct sim *s, bool print)
{
        const struct trace *t = s->t;
        double dt = t->interval_ms / 1000.0;
        uint64_t now = 0;
        unsigned start = s->rule == R_ELVIS || s->rule == R_IOCM ? 1 : t->policy.max_sidecores;

        /* OVS cannot change its PMD count: an operator provisions it for the peak */
        if (s->rule == R_OVS) {
                double peak = 0;
                for (unsigned ph = 0; ph < t->nphases; ph++) {
                        double sum = 0;
                        for (unsigned v = 0; v < t->nvms; v++)
                                sum += t->phase[ph].pps[v];
                        if (sum > peak)
                                peak = sum;
                }
                start = (unsigned)ceil(peak / t->capacity_pps);
                if (start < 1)
                        start = 1;
                if (start > t->policy.max_sidecores)
                        start = t->policy.max_sidecores;
        }

        for (unsigned i = 0; i < start; i++) {
                int cpu = free_cpu(s, -1);
                if (cpu >= 0)
                        add_sc(s, cpu);
        }
        s->changes = 0;
        round_robin(s);
        s->moves = 0;
        if (print)
                printf("%s / %s\n", t->name, rule_names[s->rule]);
        for (unsigned ph = 0; ph < t->nphases; ph++)
                for (double e = 0; e < t->phase[ph].seconds - 1e-9; e += dt, now += t->interval_ms) {
                        double demand[MAX_VMS];
                        bool over = false;
                        unsigned used = 0;
                        for (unsigned v = 0; v < t->nvms; v++) {
                                demand[v] = t->phase[ph].pps[v] * dt + s->backlog[v];
                                s->vm_offered[v] += t->phase[ph].pps[v] * dt;
                                s->served[v] = 0;
                        }
                        for (unsigned k = 0; k < s->nsc; k++) {
                                bool has = false;
                                serve(s, k, demand, dt);
                                for (unsigned v = 0; v < t->nvms; v++)
                                        has |= s->assign[v] == s->sc[k].id && demand[v] > 0;
                                used += has || s->rule != R_SPDK;
                                over |= s->load[k] > OVERLOAD;
                        }
                        for (unsigned v = 0; v < t->nvms; v++) {
                                double rate = t->capacity_pps;
                                s->backlog[v] = demand[v] - s->served[v];
                                s->vm_served[v] += s->served[v];
                                /* a buffer waits for the backlog ahead of it, plus M/M/1 queueing */
                                {
                                        int k = sc_index(s, s->assign[v]);
                                        double rho = k >= 0 && s->load[k] < 0.999 ? s->load[k] : 0.999;
                                        s->wait_us[v] = (s->backlog[v] / rate + (1.0 / rate) * rho / (1 - rho)) * 1e6;
                                }
                                if (s->wait_us[v] > s->max_wait_us && demand[v] > 0)
                                        s->max_wait_us = s->wait_us[v];
                        }
                        if (getenv("ELVIS_SIM_DEBUG") && s->rule == R_ELVIS && now >= 10000 && now <= 12000) {
                                fprintf(stderr, "t=%.1f", now / 1000.0);
                                for (unsigned k = 0; k < s->nsc; k++)
                                        fprintf(stderr, " sc%u(cpu%d n%d)=%.2f", s->sc[k].id, s->sc[k].cpu, s->sc[k].numa, s->load[k]);
                                for (unsigned v = 0; v < t->nvms; v++)
                                        fprintf(stderr, " %s->%u", t->vm[v].name, s->assign[v]);
                                fprintf(stderr, " hot=%u ban=%u\n", s->ctl.hot_epochs, s->ctl.ban_add_epochs);
                        }
                        s->sidecore_seconds += used * dt;
                        s->overloaded += over;
                        s->intervals++;
                        switch (s->rule) {
                        case R_ELVIS: rule_elvis(s, now, print); break;
                        case R_IOCM: rule_iocm(s); break;
                        case R_OVS: rule_ovs(s, now); break;
                        case R_SPDK: rule_spdk(s, now); break;
                        default: break;
                        }
                        s->epoch++;
                }
        s->total_s = now / 1000.0;
}

struct result {
        double sidecore_seconds, overload_pct, max_wait_us, changes_per_min, served_share;
        unsigned moves, final_sidecores;
};

static struct result simulate(const struct trace *t, enum rule r, bool print)
{
        struct sim *s = calloc(1, sizeof(*s));
        struct result res;
        double off = 0, srv = 0;

        s->t = t;
        s->rule = r;
        run(s, print);
        for (unsigned v = 0; v < t->nvms; v++) {
                off += s->vm_offered[v];
                srv += s->vm_served[v];
        }
        res = (struct result){ .sidecore_seconds = s->sidecore_seconds,
                               .overload_pct = 100.0 * s->overloaded / (s->intervals ? s->intervals : 1),
                               .max_wait_us = s->max_wait_us, .moves = s->moves,
                               .changes_per_min = s->total_s > 0 ? s->changes * 60.0 / s->total_s : 0,
                               .served_share = off > 0 ? srv / off : 1, .final_sidecores = s->nsc };
        free(s);
        return res;
}

static double expect_num(const struct trace *t, const char *k, double dflt)
{
        json_t *v = json_object_get(t->expect, k);
        return v ? json_number_value(v) : dflt;
}

int main(int argc, char **argv)
{
        bool decisions = false, markdown = false, check = false;
        int status = 0;

        for (int i = 1; i < argc; i++) {
                struct trace *t;
                struct result res[R_MAX];
                if (!strcmp(argv[i], "--decisions")) {
                        decisions = true;
                        continue;
                }
                if (!strcmp(argv[i], "--markdown")) {
                        markdown = true;
                        continue;
                }
                if (!strcmp(argv[i], "--check")) {
                        check = true;
                        continue;
                }
                t = calloc(1, sizeof(*t));
                load_trace(argv[i], t);
                for (int r = 0; r < R_MAX; r++)
                        res[r] = simulate(t, (enum rule)r, decisions && r == R_ELVIS);
                if (markdown) {
                        printf("\n### %s\n\n| policy | sidecore-seconds | intervals overloaded | max wait (us) | queue moves "
                               "| changes/min | served |\n|---|---|---|---|---|---|---|\n", t->name);
                        for (int r = 0; r < R_MAX; r++)
                                printf("| %s | %.1f | %.1f%% | %.0f | %u | %.1f | %.1f%% |\n", rule_names[r],
                                       res[r].sidecore_seconds, res[r].overload_pct, res[r].max_wait_us, res[r].moves,
                                       res[r].changes_per_min, 100 * res[r].served_share);
                } else {
                        printf("%-22s %-16s %10s %8s %12s %6s %8s\n", t->name, "policy", "core-s", "overld%", "max wait us",
                               "moves", "chg/min");
                        for (int r = 0; r < R_MAX; r++)
                                printf("%-22s %-16s %10.1f %8.1f %12.0f %6u %8.1f\n", "", rule_names[r],
                                       res[r].sidecore_seconds, res[r].overload_pct, res[r].max_wait_us, res[r].moves,
                                       res[r].changes_per_min);
                }
                if (check && t->expect) {
                        const struct result *e = &res[R_ELVIS];
                        int fails = 0;
#define EXPECT(cond, ...) do { if (!(cond)) { fprintf(stderr, "%s: ", t->name); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); fails++; } } while (0)
                        EXPECT(e->sidecore_seconds < res[R_STATIC].sidecore_seconds || !expect_num(t, "saves_cpu", 1),
                               "ELVIS used %.1f sidecore-seconds, static max %.1f", e->sidecore_seconds,
                               res[R_STATIC].sidecore_seconds);
                        EXPECT(e->overload_pct <= expect_num(t, "max_overload_pct", 100),
                               "ELVIS overloaded %.1f%% of intervals", e->overload_pct);
                        /* no more overload than the rules that scale too (static set-ups never do) */
                        {
                                double best = res[R_IOCM].overload_pct < res[R_SPDK].overload_pct ? res[R_IOCM].overload_pct
                                                                                                    : res[R_SPDK].overload_pct;
                                EXPECT(e->overload_pct <= best + 2.0,
                                       "ELVIS overloaded %.1f%% of intervals, a scaling reference rule %.1f%%",
                                       e->overload_pct, best);
                        }
                        EXPECT(e->moves <= res[R_OVS].moves || e->moves <= expect_num(t, "max_moves", 0),
                               "ELVIS moved %u queues, OVS auto-lb %u", e->moves, res[R_OVS].moves);
                        EXPECT(e->changes_per_min <= expect_num(t, "max_changes_per_min", 1e9),
                               "ELVIS made %.1f changes per minute", e->changes_per_min);
                        EXPECT(e->max_wait_us <= expect_num(t, "max_wait_us", 1e18), "ELVIS's worst wait %.0f us",
                               e->max_wait_us);
                        EXPECT(e->final_sidecores <= expect_num(t, "final_sidecores_max", 1e9),
                               "ELVIS ended with %u sidecores", e->final_sidecores);
                        EXPECT(e->final_sidecores >= expect_num(t, "final_sidecores_min", 0),
                               "ELVIS ended with %u sidecores", e->final_sidecores);
                        if (fails)
                                status = 1;
                }
                json_decref(t->expect);
                elvis_topology_free(&t->topo);
                free(t);
        }
        return status;
}
