/* Scaling: the right number of sidecores per NUMA node. A node gets more sidecores when
 * one of its sidecores stays busier than 1 - scale_up_idle (IOcm's 12% idle), or keeps
 * buffers waiting longer than max_wait_us while busy (a standing queue, the latency
 * signal); as many as its load needs at once, on free cores of that node. A sidecore goes
 * when the pool is idle beyond scale_down_idle for long and the rest would stay well below
 * the high mark. Both need the condition for several intervals and respect a cooldown;
 * queues move as little as possible (a few queues onto the new core, or the leaving
 * core's queues onto the least loaded). */
#include <elvis/policy.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define HOT_EPOCHS 3            /* intervals overloaded before adding */
#define COLD_EPOCHS 100         /* intervals idle before removing: slow down, quick up */
#define LATENCY_MIN_LOAD 0.5    /* below this a long wait is a scheduling hiccup, not a queue */
#define TARGET_LOAD 0.7         /* how busy sidecores should be after an addition */

static void emit_moves(const struct elvis_snapshot *s, const uint32_t *assign, struct elvis_plan *plan,
                       uint32_t new_base, unsigned nnew)
{
        for (unsigned i = 0; i < s->nqueues && plan->nactions < ELVIS_PLAN_MAX; i++) {
                const struct elvis_snap_queue *q = &s->queues[i];
                struct elvis_action *a;
                if (!q->sidecore || assign[i] == q->sidecore)
                        continue;
                a = &plan->actions[plan->nactions++];
                *a = (struct elvis_action){ .kind = ELVIS_ACT_MOVE_QUEUE, .vm = q->vm, .queue = q->queue,
                                            .sidecore = assign[i] };
                /* a queue for a sidecore this plan adds names it by its place among the additions */
                if (assign[i] >= new_base && assign[i] < new_base + nnew) {
                        a->sidecore = 0;
                        a->new_index = assign[i] - new_base;
                }
                memcpy(a->device, q->device, sizeof(q->device));
        }
}

bool elvis_policy_scale(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                        struct elvis_plan *plan)
{
        double busy = 0, hot_limit = 1.0 - p->scale_up_idle, hottest = 0;
        unsigned n = s->nsidecores, hot_idx = 0;
        bool latency = false, hot = false, cold;
        int hot_numa = -1;

        for (unsigned i = 0; i < n; i++) {
                const struct elvis_snap_sidecore *c = &s->sidecores[i];
                bool lat = c->wait_us > p->max_wait_us && c->load >= LATENCY_MIN_LOAD;
                busy += c->load;
                if (c->load > hottest) {
                        hottest = c->load;
                        hot_idx = i;
                }
                if ((c->load > hot_limit || lat) && !hot) {
                        /* the node that needs cores is where the hot sidecore's queues live */
                        double by_node[2][ELVIS_MAX_SIDECORES] = { { 0 } };
                        unsigned nn = 0;
                        hot = true;
                        hot_numa = c->numa;
                        for (unsigned q = 0; q < s->nqueues; q++) {
                                unsigned k;
                                if (s->queues[q].sidecore != c->id || s->queues[q].numa < 0)
                                        continue;
                                for (k = 0; k < nn && (int)by_node[0][k] != s->queues[q].numa; k++)
                                        ;
                                if (k == nn && nn < ELVIS_MAX_SIDECORES)
                                        by_node[0][nn++] = s->queues[q].numa;
                                if (k < ELVIS_MAX_SIDECORES)
                                        by_node[1][k] += s->queues[q].cost;
                        }
                        for (unsigned k = 0; k < nn; k++)
                                if (k == 0 || by_node[1][k] > by_node[1][0]) {
                                        hot_numa = (int)by_node[0][k];
                                        by_node[1][0] = by_node[1][k];
                                }
                        latency = lat && c->load <= hot_limit;
                        hot_idx = i;
                }
        }
        cold = n > p->min_sidecores && n > 1 && 1.0 - busy / n > p->scale_down_idle && busy / (n - 1) < hot_limit * 0.5;
        ctl->hot_epochs = hot ? ctl->hot_epochs + 1 : 0;
        ctl->cold_epochs = cold ? ctl->cold_epochs + 1 : 0;
        if (ctl->last_change_ms && s->now_ms - ctl->last_change_ms < p->cooldown_ms)
                return false;
        plan->before_max_load = hottest;
        plan->before_sidecores = n;
        if (((ctl->hot_epochs >= HOT_EPOCHS && !ctl->ban_add_epochs) || n < p->min_sidecores) && n < p->max_sidecores) {
                uint32_t ids[ELVIS_MAX_SIDECORES + ELVIS_PLAN_MAX], assign[ELVIS_SNAP_MAX_QUEUES];
                int numas[ELVIS_MAX_SIDECORES + ELVIS_PLAN_MAX];
                double loads[ELVIS_MAX_SIDECORES + ELVIS_PLAN_MAX], node_load = 0;
                unsigned on_node = 0, want, nnew = 0;
                const uint32_t base = UINT32_MAX - ELVIS_PLAN_MAX;

                for (unsigned i = 0; i < n; i++)
                        if (hot_numa < 0 || s->sidecores[i].numa == hot_numa)
                                on_node++;
                /* the node's demand: what its queues cost, wherever they are served now */
                for (unsigned q = 0; q < s->nqueues; q++)
                        if (s->queues[q].sidecore && (hot_numa < 0 || s->queues[q].numa == hot_numa ||
                                                      s->queues[q].numa < 0))
                                node_load += s->queues[q].cost;
                /* enough cores for the node's load at the target, at least one more */
                want = (unsigned)ceil(node_load / TARGET_LOAD);
                /* when moving queues between the sidecores there are relieves the hot one, that
                 * is cheaper than a core: the balance policy does it (at once, it is hot) */
                if (!latency && n >= p->min_sidecores && n) {
                        for (unsigned i = 0; i < s->nqueues; i++)
                                assign[i] = s->queues[i].sidecore;
                        for (unsigned i = 0; i < n; i++) {
                                ids[i] = s->sidecores[i].id;
                                numas[i] = s->sidecores[i].numa;
                        }
                        if (elvis_policy_spread(s, ids, numas, n, assign, loads, s->nqueues) < hot_limit - 0.05 &&
                            hottest < 0.97)
                                return false;
                }
                want = want > on_node ? want - on_node : 1;
                if (latency)
                        want = 1;
                for (unsigned i = 0; i < n; i++) {
                        ids[i] = s->sidecores[i].id;
                        numas[i] = s->sidecores[i].numa;
                }
                for (unsigned f = 0; f < s->nfree && nnew < want && n + nnew < p->max_sidecores &&
                                     plan->nactions < ELVIS_PLAN_MAX / 2; f++) {
                        if (hot_numa >= 0 && s->free[f].numa >= 0 && s->free[f].numa != hot_numa)
                                continue;
                        plan->actions[plan->nactions++] = (struct elvis_action){ .kind = ELVIS_ACT_ADD_SIDECORE,
                                                                                  .cpu = s->free[f].cpu };
                        ids[n + nnew] = base + nnew;
                        numas[n + nnew] = s->free[f].numa;
                        nnew++;
                }
                if (!nnew)
                        return false;   /* no free core on the right node */
                for (unsigned i = 0; i < s->nqueues; i++)
                        assign[i] = s->queues[i].sidecore;
                plan->after_max_load = elvis_policy_spread(s, ids, numas, n + nnew, assign, loads, s->nqueues);
                /* one queue that fills a core cannot be split: another core would only idle */
                if (loads[hot_idx] > s->sidecores[hot_idx].load - 0.05 && !latency && n >= p->min_sidecores) {
                        plan->nactions = 0;
                        return false;
                }
                emit_moves(s, assign, plan, base, nnew);
                plan->after_sidecores = n + nnew;
                snprintf(plan->policy, sizeof(plan->policy), "scaling");
                if (n < p->min_sidecores)
                        snprintf(plan->reason, sizeof(plan->reason), "below min_sidecores (%u): adding %u", p->min_sidecores,
                                 nnew);
                else
                        snprintf(plan->reason, sizeof(plan->reason),
                                 "sidecore %u %s for %u intervals (node %d at %.0f%% of %u cores): adding %u",
                                 s->sidecores[hot_idx].id,
                                 latency ? "kept buffers waiting longer than max_wait_us" : "was busier than 1 - scale_up_idle",
                                 ctl->hot_epochs, hot_numa, 100 * node_load, on_node, nnew);
                ctl->hot_epochs = 0;
                return true;
        }
        if (ctl->cold_epochs >= COLD_EPOCHS && !ctl->ban_remove_epochs) {
                uint32_t ids[ELVIS_MAX_SIDECORES], assign[ELVIS_SNAP_MAX_QUEUES];
                int numas[ELVIS_MAX_SIDECORES];
                double loads[ELVIS_MAX_SIDECORES];
                unsigned victim = 0, k = 0;

                /* the least loaded goes, an automatic one when possible */
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
                for (unsigned i = 0; i < s->nqueues; i++)
                        assign[i] = s->queues[i].sidecore == s->sidecores[victim].id ? 0 : s->queues[i].sidecore;
                plan->after_max_load = elvis_policy_spread(s, ids, numas, k, assign, loads, 0);
                if (plan->after_max_load > hot_limit * 0.5)
                        return false;   /* the rest would be too busy after all */
                emit_moves(s, assign, plan, UINT32_MAX, 0);
                plan->actions[plan->nactions++] = (struct elvis_action){ .kind = ELVIS_ACT_REMOVE_SIDECORE,
                                                                          .sidecore = s->sidecores[victim].id };
                plan->after_sidecores = n - 1;
                snprintf(plan->policy, sizeof(plan->policy), "scaling");
                snprintf(plan->reason, sizeof(plan->reason),
                         "pool %.0f%% idle (over scale_down_idle) for %u intervals: removing sidecore %u",
                         100 * (1.0 - busy / n), ctl->cold_epochs, s->sidecores[victim].id);
                ctl->cold_epochs = 0;
                return true;
        }
        return false;
}
