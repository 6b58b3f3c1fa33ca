/* The data-plane steps that take one state to another: a pure diff over the model, in
 * an order every data plane accepts (sidecores before the queues that go onto them,
 * queues off a sidecore before it goes). The manager applies the steps and undoes them on
 * failure; tests check the diff without any data plane. */
#pragma once
#include <elvis/model.h>

#include <stddef.h>

enum elvis_step_kind {
        ELVIS_STEP_SIDECORE_CREATE,     /* sidecore, cpu */
        ELVIS_STEP_DEVICE_ATTACH,       /* vm, device: as in the target state */
        ELVIS_STEP_DEVICE_POLICY,       /* vm, device: weight or effective exitless changed */
        ELVIS_STEP_QUEUE_ASSIGN,        /* vm, device, queue, sidecore (ELVIS_SIDECORE_NONE: unassign) */
        ELVIS_STEP_DEVICE_DETACH,       /* vm, device */
        ELVIS_STEP_SIDECORE_DESTROY,    /* sidecore */
        ELVIS_STEP_PARAMS,              /* the data-plane parameters of the target policy */
        __ELVIS_STEP_MAX
};

struct elvis_step {
        enum elvis_step_kind kind;
        uint32_t vm;
        char device[ELVIS_DEVICE_ID_MAX];
        unsigned queue;
        uint32_t sidecore;
        int cpu;
};

/* How many steps elvis_reconcile_diff() may need for these two states. */
size_t elvis_reconcile_max(const struct elvis_state *from, const struct elvis_state *to);
/* Writes the steps from `from` to `to` into out (room for max) and returns their number. */
size_t elvis_reconcile_diff(const struct elvis_state *from, const struct elvis_state *to, struct elvis_step *out,
                            size_t max);
const char *elvis_step_name(enum elvis_step_kind k);
