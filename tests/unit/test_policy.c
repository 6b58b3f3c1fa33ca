/* Unit tests: the dynamic policies on hand-made snapshots (pure functions). */
#include <criterion/criterion.h>

#include <elvis/policy.h>

#include <stdlib.h>
#include <string.h>

static struct elvis_snapshot *snap;
static struct elvis_policy pol;
static struct elvis_controller ctl;

static void setup(void)
{
        snap = calloc(1, sizeof(*snap));
        elvis_policy_defaults(&pol);
        pol.mode = ELVIS_MODE_DYNAMIC;
        memset(&ctl, 0, sizeof(ctl));
}

static void teardown(void)
{
        free(snap);
}

TestSuite(policy, .init = setup, .fini = teardown);

static void sidecore(uint32_t id, int cpu, int numa, double load)
{
        snap->sidecores[snap->nsidecores++] = (struct elvis_snap_sidecore){ .id = id, .cpu = cpu, .numa = numa,
                                                                             .load = load, .automatic = true };
}

static void queue(uint32_t vm, uint32_t sc, int numa, double cost)
{
        struct elvis_snap_queue *q = &snap->queues[snap->nqueues++];
        *q = (struct elvis_snap_queue){ .vm = vm, .sidecore = sc, .numa = numa, .cost = cost, .pps = cost * 4e6,
                                        .weight = 100 };
        strcpy(q->device, "net0");
}

static void free_core(int cpu, int numa)
{
        snap->free[snap->nfree].cpu = cpu;
        snap->free[snap->nfree++].numa = numa;
}

static void decide(struct elvis_plan *p, uint64_t t)
{
        snap->now_ms = t;
        elvis_policy_decide(snap, &pol, &ctl, p);
}

Test(policy, adds_a_sidecore_after_three_hot_intervals_and_spreads_queues)
{
        struct elvis_plan p;

        sidecore(1, 2, 0, 0.95);
        for (uint32_t v = 1; v <= 4; v++)
                queue(v, 1, 0, 0.2375);
        free_core(7, 0);
        free_core(15, 1);
        decide(&p, 100);
        cr_assert_eq(p.nactions, 0);
        decide(&p, 200);
        cr_assert_eq(p.nactions, 0, "hysteresis: not after two intervals");
        decide(&p, 300);
        cr_assert_geq(p.nactions, 2);
        cr_assert_eq(p.actions[0].kind, ELVIS_ACT_ADD_SIDECORE);
        cr_assert_eq(p.actions[0].cpu, 7, "a free core on the hot sidecore's node, not node 1");
        cr_assert_eq(p.actions[1].kind, ELVIS_ACT_MOVE_QUEUE);
        cr_assert_eq(p.actions[1].sidecore, 0, "to the sidecore the plan adds");
        cr_assert_str_eq(p.policy, "scaling");
        cr_assert(strstr(p.reason, "busier than 1 - scale_up_idle"), "%s", p.reason);
        cr_assert_lt(p.after_max_load, 0.7);
        decide(&p, 400);
        cr_assert_eq(p.nactions, 0, "cooldown");
}

Test(policy, no_core_for_a_queue_that_cannot_be_split)
{
        struct elvis_plan p;

        sidecore(1, 2, 0, 1.0);
        queue(1, 1, 0, 1.0);
        free_core(7, 0);
        for (uint64_t t = 100; t < 1000; t += 100) {
                decide(&p, t);
                cr_assert_eq(p.nactions, 0, "another core would only idle");
        }
}

Test(policy, prefers_moving_queues_when_the_pool_has_room)
{
        struct elvis_plan p;

        sidecore(1, 2, 0, 0.95);
        sidecore(2, 3, 0, 0.10);
        queue(1, 1, 0, 0.5);
        queue(2, 1, 0, 0.45);
        queue(3, 2, 0, 0.10);
        free_core(7, 0);
        for (uint64_t t = 100; t <= 300; t += 100)
                decide(&p, t);
        cr_assert_str_eq(p.policy, "balance");
        cr_assert_eq(p.nactions, 1);
        cr_assert_eq(p.actions[0].kind, ELVIS_ACT_MOVE_QUEUE);
        cr_assert_eq(p.actions[0].sidecore, 2);
}

Test(policy, balance_needs_the_improvement_threshold_and_the_interval)
{
        struct elvis_plan p;

        sidecore(1, 2, 0, 0.60);
        sidecore(2, 3, 0, 0.40);
        queue(1, 1, 0, 0.35);
        queue(2, 1, 0, 0.25);
        queue(3, 2, 0, 0.40);
        decide(&p, 100);
        cr_assert_eq(p.nactions, 0, "0.60 -> 0.50 is less than the 25%% improvement threshold");
        snap->sidecores[0].load = 0.8;
        snap->queues[0].cost = 0.4;
        snap->queues[1].cost = 0.4;
        snap->sidecores[1].load = 0.1;
        snap->queues[2].cost = 0.1;
        decide(&p, 200);
        cr_assert_str_eq(p.policy, "balance");
        cr_assert_eq(p.nactions, 1, "one move is enough");
        decide(&p, 300);
        cr_assert_eq(p.nactions, 0, "not again before rebalance_interval_ms");
}

Test(policy, moves_stay_on_their_numa_node)
{
        struct elvis_plan p;

        sidecore(1, 2, 0, 0.9);
        sidecore(2, 10, 1, 0.0);
        queue(1, 1, 0, 0.45);
        queue(2, 1, 0, 0.45);
        for (uint64_t t = 100; t <= 1000; t += 100) {
                decide(&p, t);
                for (unsigned i = 0; i < p.nactions; i++)
                        cr_assert_neq(p.actions[i].sidecore, 2, "never onto another node");
        }
}

Test(policy, removes_after_a_long_idle_and_keeps_min)
{
        struct elvis_plan p;
        uint64_t t = 0;
        bool removed = false;

        sidecore(1, 2, 0, 0.05);
        sidecore(2, 3, 0, 0.02);
        queue(1, 1, 0, 0.05);
        queue(2, 2, 0, 0.02);
        for (unsigned i = 0; i < 99; i++) {
                decide(&p, t += 100);
                cr_assert_eq(p.nactions, 0, "not before 100 idle intervals (%u)", i);
        }
        decide(&p, t += 100);
        for (unsigned i = 0; i < p.nactions; i++)
                if (p.actions[i].kind == ELVIS_ACT_REMOVE_SIDECORE) {
                        removed = true;
                        cr_assert_eq(p.actions[i].sidecore, 2, "the least loaded goes");
                }
        cr_assert(removed);
        cr_assert_eq(p.actions[0].kind, ELVIS_ACT_MOVE_QUEUE, "its queue moves first");
        /* with min_sidecores 2 nothing goes */
        teardown();
        setup();
        pol.min_sidecores = 2;
        sidecore(1, 2, 0, 0.05);
        sidecore(2, 3, 0, 0.02);
        for (unsigned i = 0; i < 200; i++) {
                decide(&p, (i + 1) * 100ull);
                cr_assert_eq(p.nactions, 0);
        }
}

Test(policy, regret_undoes_an_idle_addition_and_bans_with_backoff)
{
        struct elvis_plan p;
        uint64_t t = 0;

        sidecore(1, 2, 0, 0.95);
        queue(1, 1, 0, 0.5);
        queue(2, 1, 0, 0.45);
        free_core(7, 0);
        for (int i = 0; i < 3; i++)
                decide(&p, t += 100);
        cr_assert_eq(p.actions[0].kind, ELVIS_ACT_ADD_SIDECORE);
        /* the new sidecore exists but the load vanished: it idles, nothing more is served */
        snap->nfree = 0;
        snap->sidecores[0].load = 0.05;
        sidecore(2, 7, 0, 0.0);
        snap->queues[0].cost = 0.05;
        snap->queues[0].pps = 1000;
        snap->queues[1].cost = 0;
        snap->queues[1].pps = 0;
        for (int i = 0; i < 12 && !p.nactions; i++)
                decide(&p, t += 100);
        for (int i = 0; i < 12 && strcmp(p.policy, "regret"); i++)
                decide(&p, t += 100);
        cr_assert_str_eq(p.policy, "regret");
        cr_assert_eq(p.actions[0].kind, ELVIS_ACT_REMOVE_SIDECORE);
        cr_assert_eq(p.actions[0].sidecore, 2);
        cr_assert_eq(ctl.ban_add_epochs, 100);
}

Test(policy, latency_signal_adds_below_the_load_threshold)
{
        struct elvis_plan p;

        pol.max_wait_us = 100;
        sidecore(1, 2, 0, 0.70);
        snap->sidecores[0].wait_us = 500;
        queue(1, 1, 0, 0.35);
        queue(2, 1, 0, 0.35);
        free_core(7, 0);
        for (uint64_t t = 100; t <= 300; t += 100)
                decide(&p, t);
        cr_assert_str_eq(p.policy, "scaling");
        cr_assert(strstr(p.reason, "waiting longer than max_wait_us"), "%s", p.reason);
}

Test(policy, polling_thresholds_follow_the_rate)
{
        struct elvis_snap_queue busy = { .pps = 2e6 }, trickle = { .pps = 10, .kicks_ps = 5 }, mid = { .pps = 5000 };
        unsigned start, stop;

        elvis_policy_polling(&busy, &pol, &start, &stop);
        cr_assert_gt(stop, pol.poll_stop_idle_ms);
        cr_assert_lt(start, pol.poll_start_rate);
        elvis_policy_polling(&trickle, &pol, &start, &stop);
        cr_assert_lt(stop, pol.poll_stop_idle_ms);
        cr_assert_gt(start, pol.poll_start_rate);
        elvis_policy_polling(&mid, &pol, &start, &stop);
        cr_assert_eq(stop, pol.poll_stop_idle_ms);
        cr_assert_eq(start, pol.poll_start_rate);
}
