/* Shared helpers of the dynamic policies: efficiency and greedy queue packing. */
#include <elvis/policy.h>

#include <string.h>

double elvis_snapshot_pps(const struct elvis_snapshot *s)
{
        double pps = 0;

        for (unsigned i = 0; i < s->nqueues; i++)
                if (s->queues[i].sidecore)
                        pps += s->queues[i].pps;
        return pps;
}

double elvis_snapshot_efficiency(const struct elvis_snapshot *s)
{
        double busy = 0, pps = 0;

        for (unsigned i = 0; i < s->nsidecores; i++)
                busy += s->sidecores[i].load;
        for (unsigned i = 0; i < s->nqueues; i++)
                if (s->queues[i].sidecore)
                        pps += s->queues[i].pps;
        return busy > 1e-9 ? pps / busy : 0.0;
}

/* Largest cost first onto the least loaded sidecore on the queue's node (any node for
 * queues without one, or when the node has no sidecore). Deterministic: ties go to the
 * earlier queue and the lower sidecore index. */
double elvis_policy_pack(const struct elvis_snapshot *s, const uint32_t *ids, const int *numas, unsigned n,
                         uint32_t *ret_assign, double *ret_loads)
{
        bool done[ELVIS_SNAP_MAX_QUEUES] = { false };
        double max = 0;

        for (unsigned k = 0; k < n; k++)
                ret_loads[k] = 0;
        for (unsigned round = 0; round < s->nqueues; round++) {
                int pick = -1, best = -1;
                for (unsigned i = 0; i < s->nqueues; i++)
                        if (!done[i] && s->queues[i].sidecore &&
                            (pick < 0 || s->queues[i].cost > s->queues[pick].cost))
                                pick = (int)i;
                if (pick < 0)
                        break;
                done[pick] = true;
                for (int pass = 0; pass < 2 && best < 0; pass++)
                        for (unsigned k = 0; k < n; k++) {
                                if (pass == 0 && s->queues[pick].numa >= 0 && numas[k] != s->queues[pick].numa)
                                        continue;
                                if (best < 0 || ret_loads[k] < ret_loads[best])
                                        best = (int)k;
                        }
                if (best < 0)
                        continue;
                ret_assign[pick] = ids[best];
                ret_loads[best] += s->queues[pick].cost;
        }
        for (unsigned k = 0; k < n; k++)
                if (ret_loads[k] > max)
                        max = ret_loads[k];
        return max;
}

static int index_of(const uint32_t *ids, unsigned n, uint32_t id)
{
        for (unsigned k = 0; k < n; k++)
                if (ids[k] == id)
                        return (int)k;
        return -1;
}

double elvis_policy_spread(const struct elvis_snapshot *s, const uint32_t *ids, const int *numas, unsigned n,
                           uint32_t *assign, double *loads, unsigned max_moves)
{
        double max = 0;

        for (unsigned k = 0; k < n; k++)
                loads[k] = 0;
        /* homeless queues (their sidecore goes away) land on the least loaded, NUMA-local */
        for (unsigned i = 0; i < s->nqueues; i++) {
                int k = s->queues[i].sidecore ? index_of(ids, n, assign[i]) : -2;
                if (k == -2)
                        continue;       /* not served by a sidecore: not ours */
                if (k < 0) {
                        for (int pass = 0; pass < 2 && k < 0; pass++)
                                for (unsigned j = 0; j < n; j++)
                                        if ((pass || s->queues[i].numa < 0 || numas[j] == s->queues[i].numa) &&
                                            (k < 0 || loads[j] < loads[k]))
                                                k = (int)j;
                        if (k < 0)
                                continue;
                        assign[i] = ids[k];
                }
                loads[k] += s->queues[i].cost;
        }
        /* queues served from another node come home when their node has room */
        for (unsigned i = 0; i < s->nqueues && max_moves; i++) {
                int from = s->queues[i].sidecore ? index_of(ids, n, assign[i]) : -1, to = -1;
                if (from < 0 || s->queues[i].numa < 0 || numas[from] == s->queues[i].numa || numas[from] < 0)
                        continue;
                for (unsigned j = 0; j < n; j++)
                        if (numas[j] == s->queues[i].numa && (to < 0 || loads[j] < loads[to]))
                                to = (int)j;
                if (to < 0 || loads[to] + s->queues[i].cost > 0.7)
                        continue;
                loads[from] -= s->queues[i].cost;
                loads[to] += s->queues[i].cost;
                assign[i] = ids[to];
                max_moves--;
        }
        for (unsigned moved = 0; moved < max_moves; moved++) {
                int best_q = -1, best_to = -1;
                double best_peak = 0;
                for (unsigned i = 0; i < s->nqueues; i++) {
                        int from;
                        if (!s->queues[i].sidecore || (from = index_of(ids, n, assign[i])) < 0)
                                continue;
                        for (unsigned to = 0; to < n; to++) {
                                double a, b, peak;
                                if ((int)to == from || (s->queues[i].numa >= 0 && numas[to] != s->queues[i].numa &&
                                                        numas[to] >= 0))
                                        continue;
                                a = loads[from] - s->queues[i].cost;
                                b = loads[to] + s->queues[i].cost;
                                peak = a > b ? a : b;
                                /* only moves that lower the busier of the pair, by a real margin */
                                if (peak < loads[from] - 0.02 && (best_q < 0 || peak < best_peak ||
                                                                  (peak == best_peak && loads[from] > loads[index_of(ids, n, assign[best_q])]))) {
                                        /* prefer relieving the globally busiest sidecore */
                                        double top = 0;
                                        for (unsigned k = 0; k < n; k++)
                                                if (loads[k] > top)
                                                        top = loads[k];
                                        if (loads[from] < top - 1e-9)
                                                continue;
                                        best_q = (int)i;
                                        best_to = (int)to;
                                        best_peak = peak;
                                }
                        }
                }
                if (best_q < 0)
                        break;
                {
                        int from = index_of(ids, n, assign[best_q]);
                        loads[from] -= s->queues[best_q].cost;
                        loads[best_to] += s->queues[best_q].cost;
                        assign[best_q] = ids[best_to];
                }
        }
        for (unsigned k = 0; k < n; k++)
                if (loads[k] > max)
                        max = loads[k];
        return max;
}
