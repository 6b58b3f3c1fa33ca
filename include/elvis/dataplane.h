/* The data-plane interface: what elvis-manager asks of a data plane (the user-space
 * vhost-user engine, the elvis.ko kernel module, or a test fake). Every operation
 * returns 0 or a negative errno and is called from the daemon's event-loop thread only.
 * Identifiers are the daemon's: VM ids, device ids, queue-pair indexes, sidecore ids. */
#pragma once
#include <elvis/model.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct elvis_dp_config {
        const char *run_dir;            /* where vhost-user sockets live */
        bool pin;                       /* pin sidecore threads (false when the topology is not the live host) */
};

struct elvis_dp_device {
        uint32_t vm_id;
        const char *vm_name;
        const char *device_id;
        enum elvis_device_type type;
        enum elvis_backend backend;
        const char *tap;                /* tap backend: interface name */
        bool tap_adopt;                 /* use the interface if it exists (else it must not) */
        /* tap backend, optional: one queue fd per queue pair, opened by the caller, which
         * keeps and closes them (the data plane keeps duplicates). NULL: the data plane
         * opens the tap itself (it then needs CAP_NET_ADMIN). */
        const int *tap_fds;
        /* blk, file backend: the image. image_fd, when not NULL, points to the image opened
         * by the caller (O_RDWR, or O_RDONLY when readonly; O_DIRECT is the data plane's
         * choice), which keeps and closes it; the data plane keeps a duplicate and never
         * opens path then (path is only shown). NULL: the data plane opens path itself. */
        const char *path;
        const int *image_fd;
        bool readonly;
        uint64_t size_bytes;            /* blk, null backend: the disk's size */
        unsigned queues;                /* net: queue pairs; blk: virtqueues */
        const char *socket_path;        /* user data plane: vhost-user socket to listen on */
        unsigned weight;
        enum elvis_exitless exitless;   /* effective policy */
        int64_t vmm_uid, vmm_gid;       /* who may connect to the socket (root always); -1: anyone */
};

struct elvis_dp_params {
        unsigned budget_packets;        /* per turn at the default weight */
        unsigned budget_bytes;
        unsigned poll_start_rate;       /* kicks/s */
        unsigned poll_stop_idle_ms;
        unsigned vanilla_busyloop_us;   /* exitless never: polling of emptied rings before sleep */
};

struct elvis_dp_sidecore_stats {
        uint32_t id;
        int cpu;
        unsigned nqueues;
        bool sleeping;                  /* every queue in notification mode */
        uint64_t polls, empty_polls;
        uint64_t busy_ns, idle_ns;
        uint64_t packets, bytes;
        uint64_t wakeups;               /* returns from sleep */
        /* Time the sidecore was ready to run while another task held its CPU (the
         * kernel's run-queue delay of its thread). Only when stolen_known. */
        bool stolen_known;
        uint64_t stolen_ns;
        /* Passes of the sidecore's loop over its queues, and those that moved nothing (a
         * polling sidecore's empty look at every queue, or the look before it sleeps). A
         * per-sidecore unit of work that means the same whatever a pass does for an idle
         * queue (a turn or a peek). Only when rounds_known (the user data plane). */
        bool rounds_known;
        uint64_t rounds, empty_rounds;
};

enum elvis_dp_queue_state {
        ELVIS_QUEUE_DISCONNECTED,       /* no front end yet */
        ELVIS_QUEUE_READY,
        ELVIS_QUEUE_ERROR,              /* stopped after a bad ring */
        __ELVIS_DP_QUEUE_STATE_MAX
};

/* A net queue pair, or a blk virtqueue: then rx_* count reads (data towards the guest),
 * tx_* writes (data from the guest), and FLUSH, GET_ID, DISCARD and WRITE_ZEROES count in
 * tx_packets with no bytes. */
struct elvis_dp_queue_stats {
        uint32_t vm_id;
        char device[ELVIS_DEVICE_ID_MAX];
        enum elvis_device_type type;
        unsigned queue;                 /* net: queue pair; blk: virtqueue */
        uint32_t sidecore;              /* ELVIS_SIDECORE_NONE: vanilla thread or unserved */
        enum elvis_dp_queue_state state;
        bool polling;                   /* guest notifications suppressed */
        uint64_t rx_packets, rx_bytes;  /* towards the guest */
        uint64_t tx_packets, tx_bytes;  /* from the guest */
        uint64_t kicks;                 /* guest->host notifications received (exits) */
        uint64_t interrupts;            /* host->guest notifications sent */
        uint64_t polls, empty_polls;
        uint64_t busy_ns;               /* time the data plane spent on this queue */
        uint64_t wait_ns, wait_samples; /* buffers' wait before pickup, sum and count */
        uint64_t errors;                /* rings stopped as malformed */
        uint64_t drops;                 /* frames discarded: bad size, no room, ring stopped with frames in flight */
        uint64_t signals_deferred;      /* notifications the VMM's eventfd could not take at once (retried) */
};

struct elvis_dp_stats {
        uint64_t timestamp_ns;          /* CLOCK_MONOTONIC when read */
        unsigned nsidecores, nqueues;
        struct elvis_dp_sidecore_stats *sidecores;
        struct elvis_dp_queue_stats *queues;
};

void elvis_dp_stats_fini(struct elvis_dp_stats *st);

/* The data planes log through this function (syslog priorities); the daemon installs its
 * own before it opens one. NULL: standard error. */
typedef void (*elvis_dp_log_fn)(int priority, const char *fmt, va_list ap);
void elvis_dp_set_logger(elvis_dp_log_fn fn);

struct elvis_dataplane_ops;

/* A registry entry: the data plane that serves a configured kind ("user", "kernel"). */
struct elvis_dataplane_entry {
        const char *kind;
        const struct elvis_dataplane_ops *ops;
};

struct elvis_dataplane_ops {
        const char *kind;               /* implementation name shown in health ("user", "kernel", ...) */
        /* Whether this data plane can run on this host (e.g. the module's device exists). */
        bool (*available)(void);
        int (*open)(const struct elvis_dp_config *cfg, void **ret_dp);
        void (*close)(void *dp);
        /* 0 when healthy; a short human-readable state in detail either way. */
        int (*health)(void *dp, char *detail, size_t len);
        int (*sidecore_create)(void *dp, uint32_t id, int cpu);
        /* -EBUSY while queues are assigned to it. */
        int (*sidecore_destroy)(void *dp, uint32_t id);
        int (*device_attach)(void *dp, const struct elvis_dp_device *dev);
        int (*device_detach)(void *dp, uint32_t vm_id, const char *device);
        int (*device_set_policy)(void *dp, uint32_t vm_id, const char *device, unsigned weight,
                                 enum elvis_exitless exitless);
        /* Serve a queue pair from a sidecore (ELVIS_SIDECORE_NONE: unassign); moves are live. */
        int (*queue_assign)(void *dp, uint32_t vm_id, const char *device, unsigned queue,
                            uint32_t sidecore);
        int (*set_params)(void *dp, const struct elvis_dp_params *params);
        /* Optional: polling thresholds of one queue pair (0 = the global ones). */
        int (*queue_set_poll)(void *dp, uint32_t vm_id, const char *device, unsigned queue, unsigned start_rate,
                              unsigned stop_idle_ms);
        /* Fills ret with arrays the caller releases with elvis_dp_stats_fini(). Reads only:
         * it never changes the data plane (GET /v1/stats and /metrics call it). */
        int (*stats_read)(void *dp, struct elvis_dp_stats *ret);
        /* Optional: brings what the data plane does by itself in line with the daemon's
         * plan (elvis.ko: binds the devices VMMs opened, moves their queues, retires spare
         * sidecores). Called from the control tick only. */
        int (*sync)(void *dp);
};
