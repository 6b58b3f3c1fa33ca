/* Scaling: the right number of sidecores. One is added when the pool stays busy beyond
 * the high threshold (IOcm: idle below 0.12), or when buffers wait longer than max_wait
 * on a busy sidecore (a standing queue, the latency signal), and a free core exists on
 * the right node; one is removed when the rest would carry the load comfortably. Changes
 * need the condition for several intervals (hysteresis) and respect a cooldown. */
#include <elvis/policy.h>

#include <stdio.h>
#include <string.h>

#define HOT_EPOCHS 3            /* intervals a sidecore must be overloaded before adding */
#define COLD_EPOCHS 20          /* intervals the pool must be idle before removing */
#define LATENCY_MIN_LOAD 0.5    /* below this a long wait is a scheduling hiccup, not a queue */

static double max_load(const struct elvis_snapshot *s, unsigned *ret_idx)
{
        double m = -1;

        for (unsigned i = 0; i < s->nsidecores; i++)
                if (s->sidecores[i].load > m) {
                        m = s->sidecores[i].load;
                        *ret_idx = i;
                }
        return m < 0 ? 0 : m;
}

static void plan_moves(const struct elvis_snapshot *s, const uint32_t *ids, const int *numas, unsigned n,
                       struct elvis_plan *plan, uint32_t new_id)
{
        uint32_t assign[ELVIS_SNAP_MAX_QUEUES] = { 0 };
        double loads[ELVIS_MAX_SIDECORES + 1];

        plan->after_max_load = elvis_policy_pack(s, ids, numas, n, assign, loads);
        for (unsigned i = 0; i < s->nqueues && plan->nactions < ELVIS_PLAN_MAX; i++) {
                const struct elvis_snap_queue *q = &s->queues[i];
                if (!q->sidecore || assign[i] == q->sidecore)
                        continue;
                plan->actions[plan->nactions++] = (struct elvis_action){
                        .kind = ELVIS_ACT_MOVE_QUEUE, .sidecore = assign[i] == new_id ? 0 : assign[i], .vm = q->vm,
                        .queue = q->queue };
                memcpy(plan->actions[plan->nactions - 1].device, q->device, sizeof(q->device));
        }
}

bool elvis_policy_scale(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                        struct elvis_plan *plan)
{
        double busy = 0, hot_limit = 1.0 - p->scale_up_idle;
        unsigned hot_idx = 0, n = s->nsidecores;
        double hottest = max_load(s, &hot_idx);
        bool latency = false, hot, cold;

        for (unsigned i = 0; i < n; i++) {
                busy += s->sidecores[i].load;
                if (s->sidecores[i].wait_us > p->max_wait_us && s->sidecores[i].load >= LATENCY_MIN_LOAD)
                        latency = true;
        }
        hot = n && (hottest > hot_limit || latency);
        /* the pool's idle share above scale_down_idle, and one core fewer would not be hot */
        cold = n > p->min_sidecores && n > 1 && 1.0 - busy / n > p->scale_down_idle && busy / (n - 1) < hot_limit * 0.5;
        ctl->hot_epochs = hot ? ctl->hot_epochs + 1 : 0;
        ctl->cold_epochs = cold ? ctl->cold_epochs + 1 : 0;
        if (s->now_ms - ctl->last_change_ms < p->cooldown_ms && ctl->last_change_ms)
                return false;
        plan->before_max_load = hottest;
        plan->before_sidecores = n;
        if ((ctl->hot_epochs >= HOT_EPOCHS || n < p->min_sidecores) && n < p->max_sidecores && !ctl->ban_add_epochs) {
                int numa = s->sidecores[hot_idx].numa, cpu = -1;
                uint32_t ids[ELVIS_MAX_SIDECORES + 1];
                int numas[ELVIS_MAX_SIDECORES + 1];
                /* a free core on the hot sidecore's node; elsewhere only if nothing is node-bound */
                for (unsigned i = 0; i < s->nfree && cpu < 0; i++)
                        if (numa < 0 || s->free[i].numa == numa || s->free[i].numa < 0)
                                cpu = s->free[i].cpu;
                if (cpu < 0)
                        return false;
                for (unsigned i = 0; i < n; i++) {
                        ids[i] = s->sidecores[i].id;
                        numas[i] = s->sidecores[i].numa;
                }
                ids[n] = UINT32_MAX;    /* the sidecore this plan adds */
                numas[n] = numa;
                plan->actions[plan->nactions++] = (struct elvis_action){ .kind = ELVIS_ACT_ADD_SIDECORE, .cpu = cpu };
                plan_moves(s, ids, numas, n + 1, plan, UINT32_MAX);
                plan->after_sidecores = n + 1;
                snprintf(plan->policy, sizeof(plan->policy), "scaling");
                if (n < p->min_sidecores)
                        snprintf(plan->reason, sizeof(plan->reason), "below min_sidecores (%u): adding one on CPU %d",
                                 p->min_sidecores, cpu);
                else
                        snprintf(plan->reason, sizeof(plan->reason),
                                 "sidecore %u %s for %u intervals: adding one on CPU %d",
                                 s->sidecores[hot_idx].id,
                                 latency ? "has buffers waiting longer than max_wait_us" : "is busier than 1 - scale_up_idle",
                                 ctl->hot_epochs, cpu);
                ctl->hot_epochs = 0;
                return true;
        }
        if (ctl->cold_epochs >= COLD_EPOCHS && !ctl->ban_remove_epochs) {
                /* drop the least loaded (an automatic one when possible) */
                unsigned victim = 0;
                uint32_t ids[ELVIS_MAX_SIDECORES];
                int numas[ELVIS_MAX_SIDECORES];
                unsigned k = 0;
                for (unsigned i = 1; i < n; i++)
                        if ((s->sidecores[i].automatic && !s->sidecores[victim].automatic) ||
                            (s->sidecores[i].automatic == s->sidecores[victim].automatic &&
                             s->sidecores[i].load < s->sidecores[victim].load))
                                victim = i;
                for (unsigned i = 0; i < n; i++)
                        if (i != victim) {
                                ids[k] = s->sidecores[i].id;
                                numas[k++] = s->sidecores[i].numa;
                        }
                plan_moves(s, ids, numas, k, plan, UINT32_MAX);
                if (plan->after_max_load > hot_limit * 0.5) {
                        plan->nactions = 0;     /* the rest would be too busy after all */
                        return false;
                }
                plan->actions[plan->nactions++] = (struct elvis_action){ .kind = ELVIS_ACT_REMOVE_SIDECORE,
                                                                          .sidecore = s->sidecores[victim].id };
                plan->after_sidecores = n - 1;
                snprintf(plan->policy, sizeof(plan->policy), "scaling");
                snprintf(plan->reason, sizeof(plan->reason),
                         "pool idle %.0f%% (> scale_down_idle) for %u intervals: removing sidecore %u", 100 * (1.0 - busy / n),
                         ctl->cold_epochs, s->sidecores[victim].id);
                ctl->cold_epochs = 0;
                return true;
        }
        return false;
}
