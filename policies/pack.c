/* Shared helpers of the dynamic policies: efficiency and greedy queue packing. */
#include <elvis/policy.h>

#include <string.h>

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
