/* The data-plane steps between two states (include/elvis/reconcile.h). */
#include <elvis/reconcile.h>

#include <stdio.h>
#include <string.h>

static bool has_sidecore(const struct elvis_state *s, uint32_t id)
{
        for (unsigned i = 0; i < s->nsidecores; i++)
                if (s->sidecores[i].id == id)
                        return true;
        return false;
}

static size_t devices_steps(const struct elvis_state *s)
{
        size_t n = 0;

        for (unsigned i = 0; i < s->nvms; i++)
                for (unsigned d = 0; d < s->vms[i].ndevices; d++)
                        n += 2 + s->vms[i].devices[d].queues;
        return n;
}

size_t elvis_reconcile_max(const struct elvis_state *from, const struct elvis_state *to)
{
        return from->nsidecores + to->nsidecores + devices_steps(from) + devices_steps(to) + 1;
}

struct out {
        struct elvis_step *v;
        size_t n, max;
};

static void add(struct out *o, enum elvis_step_kind k, uint32_t vm, const char *dev, unsigned q, uint32_t sc, int cpu)
{
        struct elvis_step *s;

        if (o->n == o->max)
                return;         /* cannot happen with elvis_reconcile_max() room */
        s = &o->v[o->n++];
        memset(s, 0, sizeof(*s));
        s->kind = k;
        s->vm = vm;
        if (dev)
                snprintf(s->device, sizeof(s->device), "%s", dev);
        s->queue = q;
        s->sidecore = sc;
        s->cpu = cpu;
}

size_t elvis_reconcile_diff(const struct elvis_state *a, const struct elvis_state *b, struct elvis_step *v,
                            size_t max)
{
        struct out o = { v, 0, max };

        for (unsigned i = 0; i < b->nsidecores; i++)
                if (!has_sidecore(a, b->sidecores[i].id))
                        add(&o, ELVIS_STEP_SIDECORE_CREATE, 0, NULL, 0, b->sidecores[i].id, b->sidecores[i].cpu);
        for (unsigned i = 0; i < b->nvms; i++) {
                const struct elvis_vm *vm = &b->vms[i];
                for (unsigned d = 0; d < vm->ndevices; d++) {
                        const struct elvis_device *dev = &vm->devices[d];
                        const struct elvis_vm *old_vm = NULL;
                        const struct elvis_device *old = elvis_state_find_device(a, vm->id, dev->id, &old_vm);

                        if (!old)
                                add(&o, ELVIS_STEP_DEVICE_ATTACH, vm->id, dev->id, 0, 0, -1);
                        else if (old_vm->policy.weight != vm->policy.weight ||
                                 elvis_effective_exitless(&a->policy, old_vm) != elvis_effective_exitless(&b->policy, vm))
                                add(&o, ELVIS_STEP_DEVICE_POLICY, vm->id, dev->id, 0, 0, -1);
                        for (unsigned q = 0; q < dev->queues; q++) {
                                uint32_t was = old ? old->sidecore[q] : ELVIS_SIDECORE_NONE;
                                if (was != dev->sidecore[q])
                                        add(&o, ELVIS_STEP_QUEUE_ASSIGN, vm->id, dev->id, q, dev->sidecore[q], -1);
                        }
                }
        }
        for (unsigned i = 0; i < a->nvms; i++) {
                const struct elvis_vm *vm = &a->vms[i];
                for (unsigned d = 0; d < vm->ndevices; d++) {
                        const struct elvis_device *dev = &vm->devices[d];
                        if (elvis_state_find_device(b, vm->id, dev->id, NULL))
                                continue;
                        for (unsigned q = 0; q < dev->queues; q++)
                                if (dev->sidecore[q])
                                        add(&o, ELVIS_STEP_QUEUE_ASSIGN, vm->id, dev->id, q, ELVIS_SIDECORE_NONE, -1);
                        add(&o, ELVIS_STEP_DEVICE_DETACH, vm->id, dev->id, 0, 0, -1);
                }
        }
        for (unsigned i = 0; i < a->nsidecores; i++)
                if (!has_sidecore(b, a->sidecores[i].id))
                        add(&o, ELVIS_STEP_SIDECORE_DESTROY, 0, NULL, 0, a->sidecores[i].id, a->sidecores[i].cpu);
        if (a->policy.budget_packets != b->policy.budget_packets || a->policy.budget_bytes != b->policy.budget_bytes ||
            a->policy.poll_start_rate != b->policy.poll_start_rate ||
            a->policy.poll_stop_idle_ms != b->policy.poll_stop_idle_ms ||
            a->policy.vanilla_busyloop_us != b->policy.vanilla_busyloop_us)
                add(&o, ELVIS_STEP_PARAMS, 0, NULL, 0, 0, -1);
        return o.n;
}

const char *elvis_step_name(enum elvis_step_kind k)
{
        static const char *const names[] = {
                [ELVIS_STEP_SIDECORE_CREATE] = "create sidecore", [ELVIS_STEP_DEVICE_ATTACH] = "attach device",
                [ELVIS_STEP_DEVICE_POLICY] = "set policy of",      [ELVIS_STEP_QUEUE_ASSIGN] = "assign queue of",
                [ELVIS_STEP_DEVICE_DETACH] = "detach device",      [ELVIS_STEP_SIDECORE_DESTROY] = "destroy sidecore",
                [ELVIS_STEP_PARAMS] = "set parameters",
        };
        return k < __ELVIS_STEP_MAX ? names[k] : "?";
}
