/* Balancing: queues onto sidecores by measured cost, NUMA-local, moving one queue at a
 * time from the busiest sidecore while that helps; applied only when the busiest
 * sidecore gets lighter by at least improvement_threshold, and not more often than
 * rebalance_interval_ms (OVS auto-lb's dry run, with fewer moves). */
#include <elvis/policy.h>

#include <stdio.h>
#include <string.h>

#define MIN_BUSY 0.3    /* nothing to gain balancing sidecores that are mostly idle */

bool elvis_policy_balance(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                          struct elvis_plan *plan)
{
        uint32_t ids[ELVIS_MAX_SIDECORES], assign[ELVIS_SNAP_MAX_QUEUES];
        int numas[ELVIS_MAX_SIDECORES];
        double loads[ELVIS_MAX_SIDECORES], before = 0, after;
        unsigned moves = 0;

        if (s->nsidecores < 2)
                return false;
        for (unsigned i = 0; i < s->nsidecores; i++) {
                ids[i] = s->sidecores[i].id;
                numas[i] = s->sidecores[i].numa;
                if (s->sidecores[i].load > before)
                        before = s->sidecores[i].load;
        }
        /* the interval limits churn; an overloaded sidecore is worth fixing at once */
        if (ctl->last_rebalance_ms && s->now_ms - ctl->last_rebalance_ms < p->rebalance_interval_ms &&
            before <= 1.0 - p->scale_up_idle)
                return false;
        if (before < MIN_BUSY)
                return false;
        for (unsigned i = 0; i < s->nqueues; i++)
                assign[i] = s->queues[i].sidecore;
        after = elvis_policy_spread(s, ids, numas, s->nsidecores, assign, loads, s->nqueues);
        /* a saturated sidecore reads 100% however much it is short: any real relief counts */
        if (after > before * (1.0 - p->improvement_threshold) &&
            !(before > 1.0 - p->scale_up_idle && after < before - 0.05))
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
