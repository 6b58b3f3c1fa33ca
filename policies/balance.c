/* Balancing: queues onto sidecores by measured cost (largest first onto the least
 * loaded, NUMA-local), applied only when the busiest sidecore gets lighter by at least
 * improvement_threshold, and not more often than rebalance_interval_ms (OVS auto-lb's
 * dry run, without its one-minute sampling). */
#include <elvis/policy.h>

#include <stdio.h>
#include <string.h>

#define MIN_BUSY 0.3    /* nothing to gain balancing sidecores that are mostly idle */

bool elvis_policy_balance(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                          struct elvis_plan *plan)
{
        uint32_t ids[ELVIS_MAX_SIDECORES], assign[ELVIS_SNAP_MAX_QUEUES] = { 0 };
        int numas[ELVIS_MAX_SIDECORES];
        double loads[ELVIS_MAX_SIDECORES], before = 0, after;
        unsigned moves = 0;

        if (s->nsidecores < 2)
                return false;
        if (ctl->last_rebalance_ms && s->now_ms - ctl->last_rebalance_ms < p->rebalance_interval_ms)
                return false;
        for (unsigned i = 0; i < s->nsidecores; i++) {
                ids[i] = s->sidecores[i].id;
                numas[i] = s->sidecores[i].numa;
                if (s->sidecores[i].load > before)
                        before = s->sidecores[i].load;
        }
        if (before < MIN_BUSY)
                return false;
        after = elvis_policy_pack(s, ids, numas, s->nsidecores, assign, loads);
        /* a packing from measured costs predicts the busiest load; the current one is measured */
        if (after > before * (1.0 - p->improvement_threshold))
                return false;
        plan->before_max_load = before;
        plan->after_max_load = after;
        plan->before_sidecores = plan->after_sidecores = s->nsidecores;
        for (unsigned i = 0; i < s->nqueues && plan->nactions < ELVIS_PLAN_MAX; i++) {
                const struct elvis_snap_queue *q = &s->queues[i];
                if (!q->sidecore || assign[i] == q->sidecore)
                        continue;
                plan->actions[plan->nactions] = (struct elvis_action){ .kind = ELVIS_ACT_MOVE_QUEUE,
                                                                       .sidecore = assign[i], .vm = q->vm,
                                                                       .queue = q->queue };
                memcpy(plan->actions[plan->nactions].device, q->device, sizeof(q->device));
                plan->nactions++;
                moves++;
        }
        if (!moves)
                return false;
        ctl->last_rebalance_ms = s->now_ms;
        snprintf(plan->policy, sizeof(plan->policy), "balance");
        snprintf(plan->reason, sizeof(plan->reason),
                 "busiest sidecore at %.0f%%, %.0f%% after moving %u queue(s) (improvement threshold %.0f%%)",
                 100 * before, 100 * after, moves, 100 * p->improvement_threshold);
        return true;
}
