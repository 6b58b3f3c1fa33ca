/* Unit tests: the data-plane steps between two states (policies/reconcile.c), without
 * any data plane: what is created, moved and removed, and in which order. */
#include <criterion/criterion.h>

#include <elvis/reconcile.h>

#include <stdio.h>
#include <string.h>

static struct elvis_state a, b;

static void setup(void)
{
        cr_assert_eq(elvis_state_init(&a), 0);
        cr_assert_eq(elvis_state_init(&b), 0);
        elvis_policy_defaults(&a.policy);
        elvis_policy_defaults(&b.policy);
}

static void teardown(void)
{
        elvis_state_fini(&a);
        elvis_state_fini(&b);
}

TestSuite(reconcile, .init = setup, .fini = teardown);

static void add_sidecore(struct elvis_state *s, uint32_t id, int cpu)
{
        s->sidecores[s->nsidecores++] = (struct elvis_sidecore){ .id = id, .cpu = cpu, .numa = 0 };
}

static struct elvis_vm *add_vm(struct elvis_state *s, uint32_t id, unsigned queues, uint32_t sidecore)
{
        struct elvis_vm *vm = &s->vms[s->nvms++];

        memset(vm, 0, sizeof(*vm));
        vm->id = id;
        snprintf(vm->name, sizeof(vm->name), "vm%u", id);
        vm->numa = -1;
        vm->policy = (struct elvis_vm_policy){ ELVIS_WEIGHT_DEFAULT, ELVIS_EXITLESS_AUTO };
        vm->ndevices = 1;
        snprintf(vm->devices[0].id, sizeof(vm->devices[0].id), "net0");
        vm->devices[0].queues = queues;
        for (unsigned q = 0; q < queues; q++)
                vm->devices[0].sidecore[q] = sidecore;
        return vm;
}

static size_t diff(struct elvis_step *steps, size_t max)
{
        cr_assert_leq(elvis_reconcile_max(&a, &b), max);
        return elvis_reconcile_diff(&a, &b, steps, max);
}

static size_t index_of(const struct elvis_step *s, size_t n, enum elvis_step_kind k, uint32_t sidecore)
{
        for (size_t i = 0; i < n; i++)
                if (s[i].kind == k && (k != ELVIS_STEP_QUEUE_ASSIGN || s[i].sidecore == sidecore))
                        return i;
        cr_assert_fail("no %s step", elvis_step_name(k));
        return n;
}

Test(reconcile, nothing_to_do_between_equal_states)
{
        struct elvis_step s[64];

        add_sidecore(&a, 1, 2);
        add_vm(&a, 1, 2, 1);
        elvis_state_copy(&b, &a);
        cr_assert_eq(diff(s, 64), 0);
}

Test(reconcile, a_new_vm_gets_its_sidecore_first)
{
        struct elvis_step s[64];
        size_t n;

        add_sidecore(&b, 1, 2);
        add_vm(&b, 7, 2, 1);
        n = diff(s, 64);
        cr_assert_eq(n, 4, "create, attach, two queues");
        cr_assert_eq(s[0].kind, ELVIS_STEP_SIDECORE_CREATE);
        cr_assert_eq(s[0].cpu, 2);
        cr_assert_eq(s[1].kind, ELVIS_STEP_DEVICE_ATTACH);
        cr_assert_str_eq(s[1].device, "net0");
        cr_assert_eq(s[2].kind, ELVIS_STEP_QUEUE_ASSIGN);
        cr_assert_eq(s[3].queue, 1);
        cr_assert_eq(s[3].sidecore, 1);
}

Test(reconcile, a_move_then_the_old_sidecore_goes)
{
        struct elvis_step s[64];
        size_t n;

        add_sidecore(&a, 1, 2);
        add_vm(&a, 1, 1, 1);
        add_sidecore(&b, 2, 3);
        add_vm(&b, 1, 1, 2);
        n = diff(s, 64);
        cr_assert_eq(n, 3);
        cr_assert_lt(index_of(s, n, ELVIS_STEP_SIDECORE_CREATE, 0), index_of(s, n, ELVIS_STEP_QUEUE_ASSIGN, 2));
        cr_assert_lt(index_of(s, n, ELVIS_STEP_QUEUE_ASSIGN, 2), index_of(s, n, ELVIS_STEP_SIDECORE_DESTROY, 0));
}

Test(reconcile, a_removed_vm_leaves_its_sidecore_before_it_detaches)
{
        struct elvis_step s[64];
        size_t n;

        add_sidecore(&a, 1, 2);
        add_vm(&a, 3, 2, 1);
        add_sidecore(&b, 1, 2);
        n = diff(s, 64);
        cr_assert_eq(n, 3);
        cr_assert_eq(s[0].kind, ELVIS_STEP_QUEUE_ASSIGN);
        cr_assert_eq(s[0].sidecore, ELVIS_SIDECORE_NONE);
        cr_assert_eq(s[2].kind, ELVIS_STEP_DEVICE_DETACH);
        cr_assert_eq(s[2].vm, 3);
}

Test(reconcile, policy_and_parameters)
{
        struct elvis_step s[64];
        size_t n;

        add_sidecore(&a, 1, 2);
        add_vm(&a, 1, 1, 1);
        elvis_state_copy(&b, &a);
        b.vms[0].policy.weight = 400;
        b.policy.budget_packets = 32;
        n = diff(s, 64);
        cr_assert_eq(n, 2);
        cr_assert_eq(s[0].kind, ELVIS_STEP_DEVICE_POLICY);
        cr_assert_eq(s[1].kind, ELVIS_STEP_PARAMS);
        /* the global switch to never makes every VM's effective mode change */
        elvis_state_copy(&b, &a);
        b.policy.exitless = ELVIS_EXITLESS_NEVER;
        n = diff(s, 64);
        cr_assert_eq(n, 1);
        cr_assert_eq(s[0].kind, ELVIS_STEP_DEVICE_POLICY);
}
