/* The controller: regret first (it may undo the last change), then scaling, then
 * balancing; at most one plan per interval. */
#include <elvis/policy.h>

#include <string.h>

void elvis_policy_decide(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                         struct elvis_plan *plan)
{
        memset(plan, 0, sizeof(*plan));
        if (elvis_policy_regret(s, p, ctl, plan) || elvis_policy_scale(s, p, ctl, plan)) {
                ctl->last_change_ms = s->now_ms;
                /* watch scaling changes (not regret's own undo) */
                if (strcmp(plan->policy, "scaling") == 0) {
                        ctl->watching = true;
                        ctl->watch_epochs = 0;
                        ctl->watched_kind = plan->actions[0].kind == ELVIS_ACT_ADD_SIDECORE ? ELVIS_ACT_ADD_SIDECORE
                                                                                         : ELVIS_ACT_REMOVE_SIDECORE;
                        ctl->pps_before = elvis_snapshot_pps(s);
                        ctl->watched_cpu = -1;
                        ctl->watched_sidecore = 0;
                        for (unsigned i = 0; i < plan->nactions; i++) {
                                if (plan->actions[i].kind == ELVIS_ACT_ADD_SIDECORE && ctl->watched_cpu < 0)
                                        ctl->watched_cpu = plan->actions[i].cpu;
                                if (plan->actions[i].kind == ELVIS_ACT_REMOVE_SIDECORE) {
                                        ctl->watched_sidecore = plan->actions[i].sidecore;
                                        for (unsigned k = 0; k < s->nsidecores; k++)
                                                if (s->sidecores[k].id == plan->actions[i].sidecore)
                                                        ctl->watched_cpu = s->sidecores[k].cpu;
                                }
                        }
                }
                return;
        }
        memset(plan, 0, sizeof(*plan));
        elvis_policy_balance(s, p, ctl, plan);
}
