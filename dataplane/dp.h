/* Internals of the user-space data plane: devices (one vhost-user socket each), queue
 * pairs (the unit a sidecore serves), and servers (sidecore or vanilla threads).
 *
 * Threads and locks:
 *  - the daemon thread calls the data-plane operations (user_dp.c) under dp->lock;
 *  - one control thread (vhost_user.c) runs every vhost-user connection, non-blocking,
 *    and takes dp->lock, then a queue pair's qp->lock, to change rings;
 *  - server threads (server.c) process queue pairs under qp->lock, one turn at a time,
 *    and never take dp->lock. Lock order: dp->lock, then server->lock, then qp->lock. */
#pragma once
#include <elvis/dataplane.h>

#include "engine/elvis_vring.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/uio.h>

#define DP_MAX_SLOTS 1024               /* queue pairs per server */
#define DP_HDR_LEN 12                   /* virtio_net_hdr_v1 / mrg_rxbuf */
#define DP_MAX_PACKET (65536 + DP_HDR_LEN)

/* feature bits */
#define F_CSUM 0
#define F_GUEST_CSUM 1
#define F_GUEST_TSO4 7
#define F_GUEST_TSO6 8
#define F_GUEST_ECN 9
#define F_HOST_TSO4 11
#define F_HOST_TSO6 12
#define F_HOST_ECN 13
#define F_MRG_RXBUF 15
#define F_MQ 22
#define F_INDIRECT_DESC 28
#define F_EVENT_IDX 29
#define F_PROTOCOL_FEATURES 30
#define F_VERSION_1 32
#define BIT(n) (1ull << (n))

/* protocol feature bits */
#define PF_MQ 0
#define PF_REPLY_ACK 3
#define PF_BACKEND_REQ 5
#define PF_STATUS 16

struct dp_stats {
        uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
        uint64_t kicks, interrupts, polls, empty_polls, busy_ns;
        uint64_t wait_ns, wait_samples, errors, drops;
};

/* Relaxed single-writer counters: the writer holds qp->lock, readers take snapshots. */
#define STAT_ADD(field, n) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

struct dp_vq {
        struct elvis_vring vr;
        /* configuration from the front end */
        uint32_t num;
        uint64_t desc_addr, avail_addr, used_addr;
        uint16_t base;
        bool addr_set;
        bool started;           /* kick fd received (or NOFD), not yet stopped */
        bool enabled;
        bool live;              /* vr is initialised and may be processed */
        int kick_fd, call_fd, err_fd;
        bool err_signalled;
};

enum dp_qp_mode { QP_NOTIFY, QP_POLL };

struct dp_device;
struct dp_server;

struct dp_qp {
        struct dp_device *dev;
        unsigned index;
        pthread_mutex_t lock;
        struct dp_vq rx, tx;            /* vq 2*index and 2*index+1 */
        int tap_fd;                     /* -1: loopback */
        _Atomic uint32_t gen;           /* bumped when fds or readiness change */
        /* serving */
        struct dp_server *_Atomic server;
        uint32_t sidecore;
        enum dp_qp_mode mode;
        uint64_t last_work_ns, last_poll_ns;
        uint64_t window_start_ns, window_kicks;
        unsigned poll_start_rate;       /* 0: the data plane's global threshold */
        unsigned poll_stop_idle_ms;
        bool rx_blocked;                /* tap data waits for guest RX buffers */
        bool tx_blocked;                /* tap refused writes (EAGAIN) */
        /* a packet read from the tap that could not be delivered yet */
        uint8_t *rxbuf;
        size_t rxlen;
        struct elvis_chain chain, chain2;
        struct dp_stats st;
        uint64_t err_log_ns;
};

struct dp_region_map {
        void *addr;
        size_t len;
};

struct dp_conn;

struct dp_device {
        struct dp_user *dp;
        uint32_t vm_id;
        char id[ELVIS_DEVICE_ID_MAX];
        char vm_name[ELVIS_VM_NAME_MAX];
        enum elvis_backend backend;
        char tap[ELVIS_IFNAME_MAX];
        unsigned nqp;
        char socket_path[ELVIS_PATH_MAX];
        unsigned weight;
        enum elvis_exitless exitless;
        int listen_fd;
        uint64_t listen_id;             /* epoll tag of listen_fd */
        struct dp_conn *conn;           /* the connected front end, or NULL */
        uint64_t features;              /* acked by the front end */
        uint64_t protocol_features;
        bool features_set;
        uint8_t status;
        int backend_req_fd;
        struct elvis_vring_mem mem;
        struct dp_region_map maps[ELVIS_MEM_MAX_REGIONS];
        struct dp_qp qp[ELVIS_MAX_QUEUES];
        struct dp_server *vanilla;      /* exitless never: the device's own thread */
        struct dp_device *next;
};

struct dp_server {
        struct dp_user *dp;
        uint32_t id;                    /* sidecore id; 0 for vanilla threads */
        int cpu;                        /* -1: not pinned */
        bool vanilla;
        pthread_t thread;
        int epfd, wake_fd;
        pthread_mutex_t lock;           /* protects pending[] and the generation counters */
        pthread_cond_t applied;
        struct dp_qp *pending[DP_MAX_SLOTS];
        unsigned npending;
        _Atomic uint32_t pending_gen;
        uint32_t applied_gen;
        _Atomic bool stop;
        /* owned by the server thread */
        struct dp_slot *slots[DP_MAX_SLOTS];
        unsigned nslots;
        unsigned rr;                    /* round-robin start */
        struct {
                uint64_t polls, empty_polls, busy_ns, idle_ns, packets, bytes, wakeups;
        } st;
        _Atomic bool sleeping;
        struct dp_server *next;
};

struct dp_params {
        _Atomic unsigned budget_packets, budget_bytes, poll_start_rate, poll_stop_idle_ms;
};

struct dp_user {
        pthread_mutex_t lock;
        char run_dir[ELVIS_PATH_MAX];
        bool pin;
        struct dp_device *devices;
        struct dp_server *servers;      /* sidecores */
        struct dp_params params;
        /* control thread */
        pthread_t ctl_thread;
        int ctl_epfd, ctl_wake_fd;
        _Atomic bool ctl_stop;
};

uint64_t dp_now_ns(void);

/* vhost_user.c */
int dp_ctl_start(struct dp_user *dp);
void dp_ctl_stop(struct dp_user *dp);
int dp_device_listen(struct dp_user *dp, struct dp_device *dev);
/* Drops the front end (if any) and closes the socket; caller holds dp->lock. */
void dp_device_close_control(struct dp_user *dp, struct dp_device *dev);

/* net.c */
int dp_tap_open(struct dp_device *dev);
void dp_tap_close(struct dp_device *dev);
void dp_tap_configure(struct dp_device *dev);
/* One turn on a queue pair under qp->lock: moves packets within the budget; returns
 * packets moved. */
unsigned dp_qp_process(struct dp_qp *qp, int64_t *budget_packets, int64_t *budget_bytes);
/* (Re)initialises or stops the rings of a vq from its configuration; qp->lock held. */
void dp_vq_refresh(struct dp_qp *qp, struct dp_vq *vq);
/* init: a fresh vq with no fds; reset: closes the vq's fds and returns it to init. */
void dp_vq_init(struct dp_vq *vq);
void dp_vq_reset(struct dp_vq *vq);
bool dp_qp_live(const struct dp_qp *qp);
void dp_qp_error(struct dp_qp *qp, struct dp_vq *vq);

/* server.c */
int dp_server_start(struct dp_user *dp, uint32_t id, int cpu, bool vanilla, struct dp_server **ret);
/* Stops the thread and frees the server; it must serve no queue pair. */
void dp_server_stop(struct dp_server *s);
/* Makes s serve qp (s NULL: nobody) and waits until the old and new servers applied it. */
int dp_qp_set_server(struct dp_qp *qp, struct dp_server *s);
/* Wakes whoever serves qp (after a configuration change). */
void dp_qp_kick_server(struct dp_qp *qp);
