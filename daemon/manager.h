/* The manager: owns configuration, topology, state and the data plane, and performs every
 * change the API asks for as one transaction (validate, apply to the data plane, persist,
 * then answer). Everything here runs on the event-loop thread. */
#pragma once
#include <elvis/dataplane.h>
#include <elvis/model.h>
#include <elvis/topology.h>

#include "codec.h"
#include "config.h"
#include "images.h"
#include "loop.h"
#include "store.h"

#include <jansson.h>
#include <time.h>

struct elvis_libvirt;
struct elvis_manager;
struct elvis_control;
struct elvis_plan;

enum elvis_dp_status {
        ELVIS_DP_ABSENT,        /* no data plane of the configured kind in this build/host */
        ELVIS_DP_FAILED,        /* present but failed to start */
        ELVIS_DP_RUNNING,
};

/* A front end (the REST API): started with the manager, told to stop accepting on
 * shutdown, drained, stopped. The daemon knows it only through this table, which the
 * composition root (main.c) hands to elvis_manager_main(). */
struct elvis_frontend_ops {
        int (*start)(struct elvis_manager *m, void **ret_fe);
        void (*quiesce)(void *fe);
        unsigned (*connections)(const void *fe);
        void (*stop)(void *fe);
};

/* What subscribers hear. COMMIT: a change is durable and current; old is the state
 * before it. JOURNAL: an event was added to the decision journal; old is NULL. */
enum elvis_event {
        ELVIS_EVENT_COMMIT,
        ELVIS_EVENT_JOURNAL,
};
typedef void (*elvis_listener_fn)(struct elvis_manager *m, enum elvis_event ev, const struct elvis_state *old,
                                  void *userdata);
#define ELVIS_MAX_LISTENERS 8

struct elvis_manager {
        int argc;
        char **argv;
        struct elvis_config cfg;
        struct elvis_loop *loop;
        struct elvis_topology topo;
        elvis_cpuset allowed;           /* cpus (or online) minus reserved-cpus */
        struct elvis_state state;
        struct elvis_store store;
        const struct elvis_dataplane_entry *dataplanes;    /* NULL-terminated registry */
        const struct elvis_dataplane_ops *dp_ops;
        void *dp;
        char dp_kind[16];
        enum elvis_dp_status dp_status;
        char dp_detail[256];
        const struct elvis_frontend_ops *fe_ops;        /* NULL: no front end (tests) */
        void *fe;
        struct {
                elvis_listener_fn fn;
                void *userdata;
        } listeners[ELVIS_MAX_LISTENERS];
        unsigned nlisteners;
        struct elvis_libvirt *libvirt;
        struct elvis_control *control;
        struct elvis_images images;     /* blk file devices' images, open while the device exists */
        uint64_t start_ns;
        time_t start_wall;
        struct elvis_loop_source *watchdog;
        bool stopping;
};

int elvis_manager_new(int argc, char **argv, const struct elvis_dataplane_entry *dataplanes,
                      struct elvis_manager **ret);
void elvis_manager_free(struct elvis_manager *m);
/* Loads config, topology and state, starts the data plane and the front end, runs the
 * loop. Exit code. */
int elvis_manager_main(int argc, char **argv, const struct elvis_dataplane_entry *dataplanes,
                       const struct elvis_frontend_ops *frontend);

/* Subscribers (the journal's readers, libvirt pinning, the control loop, systemd
 * status) hear of every commit and journal event on the loop thread, in the order they
 * subscribed. A listener must not commit from inside its call: it schedules work. */
int elvis_manager_listen(struct elvis_manager *m, elvis_listener_fn fn, void *userdata);
void elvis_manager_unlisten(struct elvis_manager *m, elvis_listener_fn fn, void *userdata);
void elvis_manager_publish(struct elvis_manager *m, enum elvis_event ev, const struct elvis_state *old);
/* The current state, for readers (the API's GET routes, metrics): never to be changed. */
static inline const struct elvis_state *elvis_manager_state(const struct elvis_manager *m)
{
        return &m->state;
}

/* Startup pieces, exposed for tests that drive a manager without the API. */
int elvis_manager_start(struct elvis_manager *m);

/* Transactions: 0 on success (the change is durable), else -errno with a reason in e. */
int elvis_manager_vm_add(struct elvis_manager *m, struct elvis_vm *vm, bool dry_run, struct elvis_err *e);
/* Same, completing vCPUs and devices from the libvirt domain: from info when given (the
 * qemu hook sends the XML), else by asking libvirt. */
struct elvis_domain_info;
int elvis_manager_vm_add_domain(struct elvis_manager *m, struct elvis_vm *vm, const struct elvis_domain_info *info,
                                bool dry_run, struct elvis_err *e);
int elvis_manager_vm_patch(struct elvis_manager *m, uint32_t id, const json_t *patch, struct elvis_vm *ret,
                           struct elvis_err *e);
int elvis_manager_vm_remove(struct elvis_manager *m, uint32_t id, struct elvis_err *e);
/* vcpu-pinning respect: records the CPUs the orchestrator pinned a VM's vCPUs to (what
 * libvirt reports), which ELVIS then treats as taken; the VM's node follows them. */
int elvis_manager_vm_set_pins(struct elvis_manager *m, uint32_t id, const elvis_cpuset *pinned, struct elvis_err *e);
/* Records where a VM is in a live migration (a commit: state.json says it before the
 * journal does); its CPUs, sidecores and queues stay as they are. */
int elvis_manager_vm_set_migration(struct elvis_manager *m, uint32_t id, enum elvis_migration migration,
                                   struct elvis_err *e);
/* cpu < 0: choose one. */
int elvis_manager_sidecore_add(struct elvis_manager *m, int cpu, struct elvis_sidecore *ret, struct elvis_err *e);
int elvis_manager_sidecore_remove(struct elvis_manager *m, uint32_t id, struct elvis_err *e);
int elvis_manager_policy_set(struct elvis_manager *m, const json_t *patch, struct elvis_err *e);
/* Applies a policy plan (add sidecores, move queues, remove sidecores) as one transaction. */
int elvis_manager_apply_plan(struct elvis_manager *m, const struct elvis_plan *plan, struct elvis_err *e);

/* Brings the data plane from state `from` to `to`, continuing past failures (each is
 * logged); returns the first error. Used to restore a saved state at startup. */
int elvis_manager_reconcile(struct elvis_manager *m, const struct elvis_state *from, const struct elvis_state *to,
                            struct elvis_err *e);
/* Opens the images of the blk devices in the current state (after a restart), under the
 * image-dir rules of now; a device whose image cannot be opened is logged and left out
 * of the data plane. Returns how many failed. */
unsigned elvis_manager_images_reopen(struct elvis_manager *m);
/* Called after every committed change (systemd STATUS=). */
void elvis_manager_changed(struct elvis_manager *m);

/* How many queues of vm's exitless devices no sidecore serves (vanilla ones need none). */
unsigned elvis_manager_vm_unserved(const struct elvis_state *s, const struct elvis_vm *vm);
/* Why queues go without a sidecore now: the policy's limit, or why placement finds no
 * core (or the core it would take now). */
void elvis_manager_unserved_reason(struct elvis_manager *m, char *buf, size_t size);

/* Lookup by decimal id or by name. */
struct elvis_vm *elvis_manager_find_vm(struct elvis_manager *m, const char *key);

/* status "ok" when the data plane runs (the daemon is ready), else "degraded"; warnings
 * list what needs an operator without making the daemon unready (queues without a
 * sidecore). */
json_t *elvis_manager_health(struct elvis_manager *m);
json_t *elvis_manager_topology(struct elvis_manager *m);
/* Posted interrupts (APICv/AVIC), halt polling, isolcpus and nohz_full of the sidecores'
 * CPUs, from sysfs; "unknown" where the host does not say. */
json_t *elvis_manager_exitless_probe(struct elvis_manager *m);
/* Stats from the data plane joined with the state (names, CPUs). */
json_t *elvis_manager_stats(struct elvis_manager *m);
