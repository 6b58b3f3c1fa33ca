/* The managed state: VMs, their devices and policy, sidecores and queue assignments,
 * and the global policy. Plain values with no pointers into each other, so a whole
 * state can be copied for undo and handed to pure policy code as a snapshot. */
#pragma once
#include <elvis/cpuset.h>

#include <stdbool.h>
#include <stdint.h>

#define ELVIS_VM_NAME_MAX 64            /* including NUL */
#define ELVIS_DOMAIN_MAX 128            /* libvirt domain name or UUID, including NUL */
#define ELVIS_DEVICE_ID_MAX 16          /* including NUL */
#define ELVIS_IFNAME_MAX 16             /* IFNAMSIZ */
#define ELVIS_PATH_MAX 108              /* sun_path */
#define ELVIS_IMAGE_PATH_MAX 256        /* a disk image's path, including NUL */
#define ELVIS_MAX_DEVICES 8             /* per VM */
#define ELVIS_MAX_QUEUES 16             /* queue pairs per device */
#define ELVIS_MAX_VCPUS 256             /* per VM */
#define ELVIS_MAX_VMS 1024
#define ELVIS_MAX_SIDECORES 256
#define ELVIS_WEIGHT_MIN 1
#define ELVIS_WEIGHT_MAX 10000
#define ELVIS_WEIGHT_DEFAULT 100

enum elvis_exitless {
        ELVIS_EXITLESS_AUTO,    /* poll while busy, notifications while idle */
        ELVIS_EXITLESS_ALWAYS,  /* always served by a polling sidecore */
        ELVIS_EXITLESS_NEVER,   /* vanilla: a notification-driven thread per device */
        __ELVIS_EXITLESS_MAX
};

/* Where a VM is in a live migration (libvirt's events, or the qemu hook's migrate). */
enum elvis_migration {
        ELVIS_MIGRATION_NONE,
        ELVIS_MIGRATION_INCOMING,       /* adopted here for an incoming migration; the guest has not run here yet */
        ELVIS_MIGRATION_OUTGOING,       /* paused here for the switch-over; still served until it stops here */
        __ELVIS_MIGRATION_MAX
};

/* What a device is to the guest. */
enum elvis_device_type {
        ELVIS_DEVICE_NET,               /* virtio-net: queues are queue pairs */
        ELVIS_DEVICE_BLK,               /* virtio-blk (vhost-user-blk, user data planes only): queues are virtqueues */
        __ELVIS_DEVICE_TYPE_MAX
};

/* What serves a device. net: tap, loopback, null; blk: file, null. */
enum elvis_backend {
        ELVIS_BACKEND_TAP,
        ELVIS_BACKEND_LOOPBACK,         /* transmit reflected to receive, losslessly */
        ELVIS_BACKEND_NULL,             /* net: transmit discarded; blk: reads zeroes, writes discarded (benchmarks) */
        ELVIS_BACKEND_FILE,             /* blk: a raw image file or block device, through io_uring */
        __ELVIS_BACKEND_MAX
};

enum elvis_policy_mode {
        ELVIS_MODE_STATIC,
        ELVIS_MODE_DYNAMIC,
        __ELVIS_MODE_MAX
};

#define ELVIS_SIDECORE_NONE 0u          /* sidecore ids start at 1 */

struct elvis_device {
        char id[ELVIS_DEVICE_ID_MAX];
        enum elvis_device_type type;
        enum elvis_backend backend;
        char tap[ELVIS_IFNAME_MAX];     /* tap backend only */
        bool tap_adopt;                 /* tap backend: use an interface that exists already */
        /* blk only */
        char path[ELVIS_IMAGE_PATH_MAX];        /* file backend: the image, resolved under an image directory */
        bool readonly;
        uint64_t size_bytes;            /* null backend: the disk's size (whole 512-byte sectors) */
        unsigned queues;                /* net: queue pairs; blk: virtqueues; 1..ELVIS_MAX_QUEUES */
        uint32_t sidecore[ELVIS_MAX_QUEUES];    /* per queue pair, ELVIS_SIDECORE_NONE if unserved */
        char socket[ELVIS_PATH_MAX];    /* vhost-user socket (user data plane), derived */
};

struct elvis_vm_policy {
        unsigned weight;                /* ELVIS_WEIGHT_MIN..MAX */
        enum elvis_exitless exitless;
};

struct elvis_vm {
        uint32_t id;                    /* server-assigned, never reused */
        char name[ELVIS_VM_NAME_MAX];
        char domain[ELVIS_DOMAIN_MAX];  /* empty: no libvirt domain */
        unsigned vcpus;                 /* dedicated cores requested, 0 = none */
        elvis_cpuset cpus;              /* the CPUs ELVIS reserved (and pins) for the vCPUs */
        /* vcpu-pinning respect: the CPUs an orchestrator pinned the vCPUs to, read from
         * libvirt and never changed by ELVIS; cpus is then empty. Taken like cpus, but may
         * overlap other VMs' pins or a sidecore (a conflict, reported). */
        elvis_cpuset pinned;
        int numa;                       /* node the VM was placed on (or is pinned on), -1 if none */
        struct elvis_vm_policy policy;
        /* who may connect to the VM's vhost-user sockets (SO_PEERCRED); unset: anyone the
         * socket's mode lets in */
        bool vmm_uid_set, vmm_gid_set;
        uint32_t vmm_uid, vmm_gid;
        unsigned ndevices;
        struct elvis_device devices[ELVIS_MAX_DEVICES];
        int64_t created;                /* unix seconds */
        enum elvis_migration migration;
};

struct elvis_sidecore {
        uint32_t id;
        int cpu;
        int numa;
        bool automatic;                 /* created by a policy, not by an operator */
        int64_t created;
};

/* Global policy: data-plane defaults and the control loop's parameters. */
struct elvis_policy {
        enum elvis_policy_mode mode;
        enum elvis_exitless exitless;   /* global switch; a VM's own setting wins unless this is never */
        unsigned min_sidecores;
        unsigned max_sidecores;
        unsigned interval_ms;           /* control loop period */
        unsigned budget_packets;        /* per queue per turn (times VM weight / default weight) */
        unsigned budget_bytes;
        unsigned poll_start_rate;       /* kicks/s that switch a queue to polling */
        unsigned poll_stop_idle_ms;     /* idle time that switches a queue back to notifications */
        unsigned vanilla_busyloop_us;   /* exitless never: poll an emptied ring this long before sleeping */
        double scale_up_idle;           /* add a sidecore when pool idle ratio stays below */
        double scale_down_idle;         /* remove one when the rest would stay above */
        double improvement_threshold;   /* minimum relative gain for a rebalance */
        unsigned rebalance_interval_ms;
        unsigned cooldown_ms;           /* after any change */
        unsigned max_wait_us;           /* latency signal: split when buffers wait longer */
};

struct elvis_state {
        uint32_t next_vm_id;
        uint32_t next_sidecore_id;
        unsigned nvms;
        unsigned nsidecores;
        struct elvis_vm *vms;                   /* capacity ELVIS_MAX_VMS once allocated */
        struct elvis_sidecore *sidecores;       /* capacity ELVIS_MAX_SIDECORES */
        struct elvis_policy policy;
};

void elvis_policy_defaults(struct elvis_policy *p);
/* Validates bounds and relations; returns 0 or -EINVAL with a message in err. */
int elvis_policy_validate(const struct elvis_policy *p, char *err, size_t errlen);

int elvis_state_init(struct elvis_state *s);
void elvis_state_fini(struct elvis_state *s);
/* dst must be initialised; copies everything. */
void elvis_state_copy(struct elvis_state *dst, const struct elvis_state *src);

struct elvis_vm *elvis_state_vm(struct elvis_state *s, uint32_t id);
struct elvis_vm *elvis_state_vm_by_name(struct elvis_state *s, const char *name);
struct elvis_sidecore *elvis_state_sidecore(struct elvis_state *s, uint32_t id);
struct elvis_sidecore *elvis_state_sidecore_on_cpu(struct elvis_state *s, int cpu);
struct elvis_device *elvis_vm_device(struct elvis_vm *vm, const char *id);
/* A VM's device by ids in a state that is only read; its VM in *ret_vm when asked. */
const struct elvis_device *elvis_state_find_device(const struct elvis_state *s, uint32_t vm, const char *device,
                                                   const struct elvis_vm **ret_vm);
/* Number of queue pairs assigned to a sidecore. */
unsigned elvis_state_sidecore_load(const struct elvis_state *s, uint32_t sidecore);
/* CPUs in use by VMs (their own and orchestrator-pinned CPUs) and sidecores. */
elvis_cpuset elvis_state_used_cpus(const struct elvis_state *s);
/* The exitless policy that applies to a VM under the global switch. */
enum elvis_exitless elvis_effective_exitless(const struct elvis_policy *p, const struct elvis_vm *vm);

const char *elvis_exitless_name(enum elvis_exitless e);
int elvis_exitless_parse(const char *s);        /* enum value or -EINVAL */
const char *elvis_migration_name(enum elvis_migration m);      /* "none", "incoming", "outgoing" */
int elvis_migration_parse(const char *s);
const char *elvis_device_type_name(enum elvis_device_type t);
int elvis_device_type_parse(const char *s);
/* Whether a backend can serve a device type. */
bool elvis_backend_serves(enum elvis_device_type t, enum elvis_backend b);
const char *elvis_backend_name(enum elvis_backend b);
int elvis_backend_parse(const char *s);
const char *elvis_mode_name(enum elvis_policy_mode m);
int elvis_mode_parse(const char *s);
bool elvis_vm_name_valid(const char *name);
bool elvis_device_id_valid(const char *id);
bool elvis_ifname_valid(const char *name);
