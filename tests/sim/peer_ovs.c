/* OVS-DPDK's PMD threads with PMD auto load balance, as Documentation/topics/dpdk/pmd.rst
 * documents it and lib/dpif-netdev.c does it (openvswitch/ovs at d6a632a, 2026).
 *
 * Modelled:
 *  - a fixed pool of PMDs per NUMA node (pmd-cpu-mask), which OVS never grows or shrinks. The
 *    operator sizes it for each node's peaks with the headroom auto load balance documents: no
 *    PMD over pmd-auto-lb-load-threshold (95%). A node gets the fewest PMDs with which the
 *    default assignment (below) of every phase's loads keeps each PMD at or under 95% (no
 *    more PMDs than the node has queues: beyond that one queue's load cannot be split);
 *  - rx queues are assigned with the default 'cycles' algorithm: sorted by the processing
 *    cycles they took in the last minute (12 intervals of 5 s), ties by port, and dealt to
 *    their node's PMDs in core order up and down (1,2,3,3,2,1,...); a queue whose node has no
 *    PMD goes to another node's;
 *  - every 5 s each PMD's busy share is taken; a PMD at or over the load threshold for 12
 *    intervals in a row (a minute) is overloaded. Once per pmd-auto-lb-rebal-interval (1 min)
 *    an overloaded PMD triggers a dry run of the assignment (given two PMDs, one with more than
 *    one queue), applied when on some node the variance of the PMDs' integer busy percentages
 *    improves by pmd-auto-lb-improvement-threshold (25%), and not when a queue is polled
 *    across nodes (unless all PMDs share one node).
 * Simplified: a PMD's busy share is what it served over its capacity (OVS counts the cycles of
 * busy iterations); PMDs never sleep (pmd-sleep-max is off by default); each VM has one queue,
 * and a VM without a node belongs to the node of the first PMD. */
#include "sim.h"

#include <math.h>

#define LOAD_THRESHOLD 95       /* % */
#define IMPROVEMENT 25          /* % */
#define REBAL_MS 60000
#define INTERVAL_MS 5000        /* PMD_INTERVAL_LEN */

struct node {
        int numa;
        unsigned npmd, pmd[ELVIS_MAX_SIDECORES];        /* sidecore indices, by core id */
        unsigned rr;
        bool up;
};

static int port_node(const struct sim *s, unsigned v)
{
        return s->t->vm[v].numa >= 0 ? s->t->vm[v].numa : s->sc[0].numa;
}

static unsigned nodes_of(const struct sim *s, struct node *nodes)
{
        unsigned nn = 0;
        bool taken[ELVIS_MAX_SIDECORES] = { false };

        /* PMDs in core id order, grouped by node in the order their first core appears */
        for (unsigned done = 0; done < s->nsc; done++) {
                unsigned k = s->nsc, i;
                for (unsigned j = 0; j < s->nsc; j++)
                        if (!taken[j] && (k == s->nsc || s->sc[j].cpu < s->sc[k].cpu))
                                k = j;
                taken[k] = true;
                for (i = 0; i < nn && nodes[i].numa != s->sc[k].numa; i++)
                        ;
                if (i == nn)
                        nodes[nn++] = (struct node){ .numa = s->sc[k].numa, .up = true };
                nodes[i].pmd[nodes[i].npmd++] = k;
        }
        return nn;
}

/* sched_pmd_next_rr() with updown */
static unsigned next_pmd(struct node *n)
{
        unsigned k = n->pmd[n->rr];

        if (n->up) {
                if (n->rr == n->npmd - 1)
                        n->up = false;
                else
                        n->rr++;
        } else if (n->rr == 0) {
                n->up = true;
        } else {
                n->rr--;
        }
        return k;
}

/* sched_numa_list_schedule() with the 'cycles' algorithm: fills assign[] (sidecore ids). */
static void schedule(const struct sim *s, const double *hist, uint32_t *assign)
{
        struct node nodes[ELVIS_MAX_SIDECORES];
        unsigned nn = nodes_of(s, nodes), order[MAX_VMS], cross = nn - 1;

        for (unsigned v = 0; v < s->t->nvms; v++) {
                unsigned i = v;
                for (; i > 0 && hist[order[i - 1]] < hist[v]; i--)     /* stable: ties keep port order */
                        order[i] = order[i - 1];
                order[i] = v;
        }
        for (unsigned i = 0; i < s->t->nvms; i++) {
                unsigned v = order[i], n;
                for (n = 0; n < nn && nodes[n].numa != port_node(s, v); n++)
                        ;
                if (n == nn)
                        n = cross = (cross + 1) % nn;
                assign[v] = s->sc[next_pmd(&nodes[n])].id;
        }
}

/* sched_numa_variance(): variance of the node's PMDs' integer busy percentages, were the queues
 * placed as assign[] says, from the queues' last minute of cycles. */
static uint64_t variance(const struct sim *s, const struct node *n, const uint32_t *assign, const double *hist)
{
        uint64_t pct[ELVIS_MAX_SIDECORES], sum = 0, mean, sq = 0;

        for (unsigned i = 0; i < n->npmd; i++) {
                double proc = 0;
                for (unsigned v = 0; v < s->t->nvms; v++)
                        if (assign[v] == s->sc[n->pmd[i]].id)
                                proc += hist[v];
                pct[i] = (uint64_t)floor(proc * 100 / (OVS_INTERVALS * INTERVAL_MS / 1000.0) + 1e-9);
                sum += pct[i];
        }
        if (!n->npmd || !sum)
                return 0;
        mean = sum / n->npmd;
        for (unsigned i = 0; i < n->npmd; i++)
                sq += (pct[i] - mean) * (pct[i] - mean);
        return sq / n->npmd;
}

/* The busiest of n PMDs when the 'cycles' algorithm deals out these loads. */
static double dealt_max(const double *load, unsigned nq, unsigned n)
{
        double pmd[ELVIS_MAX_SIDECORES] = { 0 }, sorted[MAX_VMS], max = 0;
        struct node nd = { .npmd = n, .up = true };

        for (unsigned i = 0; i < n; i++)
                nd.pmd[i] = i;
        for (unsigned q = 0; q < nq; q++) {
                unsigned i = q;
                for (; i > 0 && sorted[i - 1] < load[q]; i--)
                        sorted[i] = sorted[i - 1];
                sorted[i] = load[q];
        }
        for (unsigned q = 0; q < nq; q++)
                pmd[next_pmd(&nd)] += sorted[q];
        for (unsigned i = 0; i < n; i++)
                max = fmax(max, pmd[i]);
        return max;
}

/* PMDs the operator gives a node: the fewest with which every phase's loads, dealt by 'cycles',
 * leave each PMD at or under the load threshold (no more than the node has queues). */
static unsigned pool_size(const struct sim *s, int numa)
{
        double load[MAX_VMS];
        unsigned nq = 0, n = 1;

        for (unsigned v = 0; v < s->t->nvms; v++)
                nq += s->t->vm[v].numa == numa;
        for (unsigned ph = 0; ph < s->t->nphases; ph++) {
                unsigned q = 0;
                for (unsigned v = 0; v < s->t->nvms; v++)
                        if (s->t->vm[v].numa == numa)
                                load[q++] = s->t->phase[ph].pps[v] / s->t->capacity_pps;
                while (n < nq && n < ELVIS_MAX_SIDECORES && dealt_max(load, nq, n) > LOAD_THRESHOLD / 100.0 + 1e-9)
                        n++;
        }
        return n;
}

void peer_ovs_start(struct sim *s)
{
        double zero[MAX_VMS] = { 0 };
        uint32_t assign[MAX_VMS];
        int seen[MAX_VMS];
        unsigned nseen = 0, max = s->t->policy.max_sidecores;

        /* a pool per node the VMs live on, each sized for that node's peaks under the threshold */
        for (unsigned v = 0; v < s->t->nvms; v++) {
                int numa = s->t->vm[v].numa;
                unsigned i, want;
                for (i = 0; i < nseen && seen[i] != numa; i++)
                        ;
                if (i < nseen)
                        continue;
                seen[nseen++] = numa;
                want = pool_size(s, numa);
                for (unsigned n = 0; n < want && s->nsc < max; n++) {
                        int cpu = sim_free_cpu(s, numa);
                        if (cpu < 0)
                                break;
                        sim_add_sc(s, cpu);
                }
        }
        if (!s->nsc)
                return;
        /* ports come up with no cycles measured yet */
        schedule(s, zero, assign);
        for (unsigned v = 0; v < s->t->nvms; v++)
                sim_move(s, v, assign[v]);
        s->ovs.next_interval_ms = INTERVAL_MS;
        s->ovs.next_check_ms = REBAL_MS;
}

static void dry_run(struct sim *s)
{
        struct node nodes[ELVIS_MAX_SIDECORES];
        unsigned nn = nodes_of(s, nodes), queues[ELVIS_MAX_SIDECORES] = { 0 };
        double hist[MAX_VMS] = { 0 };
        uint32_t est[MAX_VMS];
        bool multi = false, met = false;

        for (unsigned v = 0; v < s->t->nvms; v++) {
                int k = sim_sc_index(s, s->assign[v]);
                if (k >= 0 && ++queues[k] > 1)
                        multi = true;
                for (unsigned i = 0; i < OVS_INTERVALS; i++)
                        hist[v] += s->ovs.rxq_cycles[v][i];
                /* polled across nodes: the dry run cannot estimate loads */
                if (nn > 1 && k >= 0 && s->sc[k].numa != port_node(s, v))
                        return;
        }
        if (s->nsc < 2 || !multi)
                return;
        schedule(s, hist, est);
        for (unsigned n = 0; n < nn; n++) {
                uint64_t cur = variance(s, &nodes[n], s->assign, hist), after = variance(s, &nodes[n], est, hist);
                if (after < cur && (cur - after) * 100 / cur >= IMPROVEMENT)
                        met = true;
        }
        if (!met)
                return;
        for (unsigned v = 0; v < s->t->nvms; v++)
                sim_move(s, v, est[v]);
        s->ovs.rebalances++;
}

void peer_ovs_step(struct sim *s, uint64_t end_ms)
{
        struct ovs_state *o = &s->ovs;
        double dt = s->t->interval_ms / 1000.0;

        for (unsigned k = 0; k < s->nsc; k++)
                o->pmd_busy[k] += sim_busy(s, k) * dt;
        for (unsigned v = 0; v < s->t->nvms; v++)
                o->rxq_cur[v] += s->served[v] / s->t->capacity_pps;
        if (end_ms < o->next_interval_ms)
                return;
        o->next_interval_ms += INTERVAL_MS;
        for (unsigned k = 0; k < s->nsc; k++) {
                unsigned load = (unsigned)floor(o->pmd_busy[k] * 100 / (INTERVAL_MS / 1000.0) + 1e-9);
                o->pmd_overloaded[k] = load >= LOAD_THRESHOLD ? o->pmd_overloaded[k] + 1 : 0;
                o->pmd_busy[k] = 0;
        }
        for (unsigned v = 0; v < s->t->nvms; v++) {
                o->rxq_cycles[v][o->interval_idx] = o->rxq_cur[v];
                o->rxq_cur[v] = 0;
        }
        o->interval_idx = (o->interval_idx + 1) % OVS_INTERVALS;
        if (end_ms < o->next_check_ms)
                return;
        o->next_check_ms += REBAL_MS;
        for (unsigned k = 0; k < s->nsc; k++)
                if (o->pmd_overloaded[k] >= OVS_INTERVALS) {
                        dry_run(s);
                        break;
                }
}
