/* Regret (after IOcm): a scaling change is watched for a grace period; if packets per busy
 * core-second did not improve, it is undone and the same kind of change is banned for a
 * while, ten times longer at each repeat (capped at fifty times). A removal that made a
 * sidecore overloaded is always undone. */
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
        double eff, hot = 0;

        if (ctl->ban_add_epochs)
                ctl->ban_add_epochs--;
        if (ctl->ban_remove_epochs)
                ctl->ban_remove_epochs--;
        if (!ctl->watching || ++ctl->watch_epochs < GRACE_EPOCHS)
                return false;
        ctl->watching = false;
        eff = elvis_snapshot_efficiency(s);
        for (unsigned i = 0; i < s->nsidecores; i++)
                if (s->sidecores[i].load > hot)
                        hot = s->sidecores[i].load;
        if (ctl->watched_kind == ELVIS_ACT_ADD_SIDECORE) {
                /* an added core must have made work cheaper or relieved overload */
                if (eff >= ctl->eff_before * (1 + MIN_GAIN) || hot > 1.0 - p->scale_up_idle)
                        return false;
                for (unsigned i = 0; i < s->nsidecores; i++)
                        if (s->sidecores[i].id == ctl->watched_sidecore) {
                                plan->actions[plan->nactions++] = (struct elvis_action){
                                        .kind = ELVIS_ACT_REMOVE_SIDECORE, .sidecore = ctl->watched_sidecore };
                                ctl->ban_add_epochs = ban_length(++ctl->add_strikes);
                                snprintf(plan->policy, sizeof(plan->policy), "regret");
                                snprintf(plan->reason, sizeof(plan->reason),
                                         "sidecore %u did not pay off (%.0f -> %.0f packets per busy core-second): "
                                         "undone, no additions for %u intervals",
                                         ctl->watched_sidecore, ctl->eff_before, eff, ctl->ban_add_epochs);
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
