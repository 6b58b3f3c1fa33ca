/* Regret (after IOcm): a scaling change is watched for a grace period. An added sidecore
 * that neither raised the packets served by 5% nor relieved an overload is undone, and
 * additions are banned for a while, ten times longer at each repeat (capped at fifty
 * times). A removal that left a sidecore overloaded is undone the same way. */
#include <elvis/policy.h>

#include <stdio.h>

#define GRACE_EPOCHS 10
#define BAN_EPOCHS 100
#define MIN_GAIN 0.05

static unsigned ban_length(unsigned strikes)
{
        unsigned mult = 1;

        for (unsigned i = 1; i < strikes && mult < 50; i++)
                mult *= 10;
        return BAN_EPOCHS * (mult > 50 ? 50 : mult);
}

bool elvis_policy_regret(const struct elvis_snapshot *s, const struct elvis_policy *p, struct elvis_controller *ctl,
                         struct elvis_plan *plan)
{
        double pps, hot = 0;

        if (ctl->ban_add_epochs)
                ctl->ban_add_epochs--;
        if (ctl->ban_remove_epochs)
                ctl->ban_remove_epochs--;
        if (!ctl->watching || ++ctl->watch_epochs < GRACE_EPOCHS)
                return false;
        ctl->watching = false;
        pps = elvis_snapshot_pps(s);
        for (unsigned i = 0; i < s->nsidecores; i++)
                if (s->sidecores[i].load > hot)
                        hot = s->sidecores[i].load;
        if (ctl->watched_kind == ELVIS_ACT_ADD_SIDECORE) {
                double busy = 0, own = 0;
                for (unsigned i = 0; i < s->nsidecores; i++) {
                        busy += s->sidecores[i].load;
                        if (s->sidecores[i].cpu == ctl->watched_cpu)
                                own = s->sidecores[i].load;
                }
                /* an added core must have served more, or be needed: doing work, and without
                 * it the rest would be hot */
                if (pps >= ctl->pps_before * (1 + MIN_GAIN) || s->nsidecores < 2 ||
                    (own > 0.1 && busy / (s->nsidecores - 1) > (1.0 - p->scale_up_idle) * 0.8))
                        return false;
                for (unsigned i = 0; i < s->nsidecores; i++)
                        if (s->sidecores[i].cpu == ctl->watched_cpu) {
                                ctl->watched_sidecore = s->sidecores[i].id;
                                plan->actions[plan->nactions++] = (struct elvis_action){
                                        .kind = ELVIS_ACT_REMOVE_SIDECORE, .sidecore = ctl->watched_sidecore };
                                ctl->ban_add_epochs = ban_length(++ctl->add_strikes);
                                snprintf(plan->policy, sizeof(plan->policy), "regret");
                                snprintf(plan->reason, sizeof(plan->reason),
                                         "sidecore %u did not pay off (%.0f -> %.0f packets/s served, busiest at %.0f%%): "
                                         "undone, no additions for %u intervals",
                                         ctl->watched_sidecore, ctl->pps_before, pps, 100 * hot, ctl->ban_add_epochs);
                                plan->before_sidecores = s->nsidecores;
                                plan->after_sidecores = s->nsidecores - 1;
                                return true;
                        }
                return false;
        }
        /* a removal that left a sidecore overloaded comes back */
        if (hot <= 1.0 - p->scale_up_idle || !s->nfree)
                return false;
        plan->actions[plan->nactions++] = (struct elvis_action){ .kind = ELVIS_ACT_ADD_SIDECORE,
                                                                  .cpu = ctl->watched_cpu >= 0 ? ctl->watched_cpu
                                                                                               : s->free[0].cpu };
        for (unsigned i = 0; i < s->nfree; i++)
                if (s->free[i].cpu == ctl->watched_cpu)
                        goto found;
        plan->actions[0].cpu = s->free[0].cpu;
found:
        ctl->ban_remove_epochs = ban_length(++ctl->remove_strikes);
        snprintf(plan->policy, sizeof(plan->policy), "regret");
        snprintf(plan->reason, sizeof(plan->reason),
                 "removing sidecore %u overloaded the rest (%.0f%%): a sidecore comes back on CPU %d, no removals for %u intervals",
                 ctl->watched_sidecore, 100 * hot, plan->actions[0].cpu, ctl->ban_remove_epochs);
        plan->before_sidecores = s->nsidecores;
        plan->after_sidecores = s->nsidecores + 1;
        return true;
}
