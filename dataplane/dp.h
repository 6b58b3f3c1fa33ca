/* Internals of the user-space data plane: devices (one vhost-user socket each), queue
 * pairs (the unit a sidecore serves: a net queue pair, or one virtqueue of a blk device,
 * kept in the pair's TX place with its model in qp->bq), and servers (sidecore or vanilla
 * threads).
 *
 * Threads and locks. The rule: nobody waits for a thread that a VMM can slow down, and no
 * lock that another VM or the daemon needs is held across a system call on a VMM's fd.
 *  - dp->lock guards the device and server lists and each device's listen socket and conn
 *    pointer. It is held only for short sections with no system call on a VMM's fd.
 *  - The daemon thread calls the data-plane operations (user_dp.c). They take dp->lock and
 *    a server's s->lock, never a qp->lock, and never wait for a server or the control
 *    thread: queue moves and removals are posted, and servers apply them at their next
 *    round. A device is freed when its last reference goes (the device list, its front
 *    end's connection, and every server slot holding one of its queue pairs).
 *  - One control thread (vhost_user.c) runs every vhost-user connection. It finds the
 *    connection under dp->lock, takes a device reference, and handles the message without
 *    dp->lock, taking qp->lock to change rings.
 *  - Server threads (server.c) process queue pairs under qp->lock (trylock), one bounded
 *    turn at a time, and never take dp->lock. Guest notifications are written after
 *    qp->lock is released, through the server's own duplicates of the VMM's eventfds.
 * Lock order: dp->lock, then s->lock, then qp->lock. */
#pragma once
#include <elvis/dataplane.h>

#include "engine/elvis_blkq.h"
#include "engine/elvis_net.h"

#include "dp_log.h"
#include "dp_lock.h"
#include "inflight.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/types.h>
#include <sys/uio.h>

#define DP_MAX_SLOTS 1024               /* queue pairs per server */
#define DP_HDR_LEN ELVIS_NET_HDR_LEN_MRG   /* the tap's until the driver acks features */

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
#define F_LOG_ALL ELVIS_NET_FEAT_LOG_ALL      /* VHOST_F_LOG_ALL */
#define F_INDIRECT_DESC 28
#define F_EVENT_IDX 29
#define F_PROTOCOL_FEATURES 30
#define F_VERSION_1 32
#define BIT(n) (1ull << (n))

/* protocol feature bits */
#define PF_MQ 0
#define PF_LOG_SHMFD 1
#define PF_REPLY_ACK 3
#define PF_BACKEND_REQ 5
#define PF_CONFIG 9
#define PF_INFLIGHT_SHMFD 12
#define PF_STATUS 16

/* Counters of this plane; the device model's are in qp->q.st. */
struct dp_stats {
        uint64_t kicks, interrupts;
        uint64_t signals_deferred;      /* notifications the VMM's eventfd could not take yet */
};

/* Relaxed single-writer counters: the writer holds qp->lock, readers take snapshots. */
#define STAT_ADD(field, n) __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
#define STAT_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* A virtqueue's fds and state on the vhost-user side; its ring (configuration included)
 * is the device model's, in qp->q. */
struct dp_vq {
        struct elvis_qvq *ring;     /* &qp->q.vq[ELVIS_NETQ_RX or _TX]; blk: tx is &qp->bq->q.vq */
        bool started;           /* kick fd received (or NOFD), not yet stopped */
        bool enabled;
        int kick_fd, call_fd, err_fd;
};

/* qp->signal bits: notifications owed to the guest, written outside qp->lock */
#define SIG_CALL_RX ELVIS_NETQ_SIG_CALL_RX
#define SIG_CALL_TX ELVIS_NETQ_SIG_CALL_TX
#define SIG_ERR_RX ELVIS_NETQ_SIG_ERR_RX
#define SIG_ERR_TX ELVIS_NETQ_SIG_ERR_TX

/* qp->pub bits: what observers (stats) may read without qp->lock */
#define PUB_LIVE 1u
#define PUB_ERROR 2u
#define PUB_POLLING 4u


struct dp_device;
struct dp_server;
struct dp_blk_file;

/* A blk virtqueue's model and back end (blk.c). */
struct dp_blkq {
        struct dp_qp *qp;
        struct dp_blk_file *file;       /* file back end; NULL: null back end */
        int efd;                        /* the file back end's completion eventfd, or -1 */
        struct dp_inflight inflight;    /* INFLIGHT_SHMFD: the VMM's record of this queue, or none */
        u16 *heads;                     /* its queue_size heads to execute again (the model's resubmit) */
        u16 free[ELVIS_BLKQ_DEPTH_MAX];
        struct elvis_blkq_slot *slots;
        struct elvis_blkq q;            /* large: last */
};

struct dp_qp {
        struct dp_device *dev;
        unsigned index;
        struct dp_mutex lock;
        struct dp_vq rx DP_GUARDED_BY(lock);    /* vq 2*index */
        struct dp_vq tx DP_GUARDED_BY(lock);    /* vq 2*index+1; blk: vq index */
        struct dp_blkq *bq;             /* blk: the virtqueue's model (its state under lock); NULL for net */
        int tap_fd;                     /* -1: loopback */
        _Atomic uint32_t gen;           /* bumped when fds or readiness change */
        /* serving */
        struct dp_server *_Atomic server;
        _Atomic uint32_t sidecore;
        _Atomic unsigned poll_start_rate;       /* 0: the data plane's global threshold */
        _Atomic unsigned poll_stop_idle_ms;
        _Atomic unsigned signal;        /* SIG_* owed, set under qp->lock, taken by whoever writes */
        _Atomic unsigned pub;           /* PUB_*, written under qp->lock */
        _Atomic bool vmm_fd_stuck;      /* a VMM fd blocked a call: stop the pair at its next turn */
        struct dp_stats st;
        uint64_t err_log_ns;
        struct elvis_netq q DP_GUARDED_BY(lock);        /* the device model (engine/elvis_net.h); large: last */
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
        enum elvis_device_type type;
        enum elvis_backend backend;
        char tap[ELVIS_IFNAME_MAX];
        /* blk */
        struct elvis_blk_disk disk;
        char path[ELVIS_PATH_MAX];
        struct dp_region_map *quarantine;       /* old guest mappings held for requests still on a disk */
        unsigned nquarantine;
        bool tap_adopt;                 /* the tap may exist already (else we must create it) */
        unsigned nqp;
        char socket_path[ELVIS_PATH_MAX];
        _Atomic unsigned weight;
        _Atomic int exitless;           /* enum elvis_exitless */
        _Atomic unsigned refs;
        _Atomic bool connected;
        bool removed;                   /* detached: the control thread drops its front end */
        struct dp_device *close_next;   /* on dp->closing */
        int listen_fd;
        uint64_t listen_id;             /* epoll tag of listen_fd */
        uint64_t sock_dev, sock_ino;    /* the socket file we bound (ours to unlink) */
        uid_t peer_uid;                 /* expected front end credentials; (uid_t)-1: any */
        gid_t peer_gid;
        struct dp_conn *conn;           /* the connected front end, or NULL (control thread) */
        uint64_t features;              /* acked by the front end */
        uint64_t protocol_features;
        bool features_set;
        uint8_t status;
        int backend_req_fd;
        struct elvis_vring_mem mem;
        struct dp_region_map maps[ELVIS_MEM_MAX_REGIONS];
        struct dp_region_map log_map;   /* the VMM's dirty log (SET_LOG_BASE), or none */
        struct dp_region_map inflight_map;      /* blk: the VMM's inflight region (SET_INFLIGHT_FD), or none */
        struct dp_qp qp[ELVIS_MAX_QUEUES];
        struct dp_server *vanilla;      /* exitless never: the device's own thread */
        struct dp_device *next;
};

/* A thread the watchdog interrupts when a system call on a VMM's fd sleeps (contain.c). */
struct dp_watch {
        pthread_t thread;
        const char *what;
        _Atomic uint64_t since;         /* when the current call on a VMM fd began; 0: none */
        _Atomic bool interrupted;
        struct dp_watch *next;
};

/* Per-thread SIGBUS guard around guest-memory accesses (contain.c). */
struct dp_guard {
        sigjmp_buf jb;
        volatile sig_atomic_t armed;
        struct dp_device *volatile dev; /* whose mappings a fault may hit */
        void *volatile addr;            /* the faulting address, after a jump */
};
extern __thread struct dp_guard dp_guard_tls;

struct dp_server {
        struct dp_user *dp;
        uint32_t id;                    /* sidecore id; 0 for vanilla threads */
        int cpu;                        /* -1: not pinned */
        bool vanilla;
        pthread_t thread;
        _Atomic pid_t tid;              /* the thread's id once it runs, for its schedstat */
        int epfd, wake_fd;
        struct dp_mutex lock;           /* protects pending[] and the generation counters */
        struct dp_qp *pending[DP_MAX_SLOTS] DP_GUARDED_BY(lock);
        unsigned npending DP_GUARDED_BY(lock);
        _Atomic uint32_t pending_gen;
        uint32_t applied_gen;
        _Atomic bool stop;
        _Atomic bool exited;
        struct elvis_drr_round drr;     /* this round's weight unit (server thread) */
        uint64_t retire_epoch;          /* dp->ctl_epoch when retired */
        struct dp_watch watch;
        /* owned by the server thread */
        struct dp_slot *slots[DP_MAX_SLOTS];
        unsigned nslots;
        /* this round's interactive slots (elvis_drr_sparse at its start), in slot order */
        struct dp_slot *sparse[DP_MAX_SLOTS];
        unsigned nsparse;
        unsigned rr;                    /* round-robin start */
        struct {
                uint64_t polls, empty_polls, busy_ns, idle_ns, packets, bytes, wakeups;
                uint64_t rounds, empty_rounds;  /* passes over the slots; those that moved nothing */
        } st;
        _Atomic bool sleeping;
        struct dp_server *next;
};

struct dp_params {
        _Atomic unsigned budget_packets, budget_bytes, poll_start_rate, poll_stop_idle_ms;
        _Atomic unsigned vanilla_busyloop_us;   /* vanilla threads: poll emptied rings this long (server.c) */
};

struct dp_user {
        struct dp_mutex lock;
        char run_dir[ELVIS_PATH_MAX];
        bool pin;
        struct dp_device *devices DP_GUARDED_BY(lock);
        struct dp_server *servers DP_GUARDED_BY(lock);  /* sidecores */
        struct dp_server *retired DP_GUARDED_BY(lock);  /* stopped servers not yet joined */
        struct dp_device *closing DP_GUARDED_BY(lock);  /* detached devices whose front end the control thread drops */
        struct dp_params params;
        struct dp_ledger_entry *ledger DP_GUARDED_BY(lock);     /* socket files we created (ledger.c) */
        unsigned nledger DP_GUARDED_BY(lock);
        /* control thread */
        pthread_t ctl_thread;
        int ctl_epfd, ctl_wake_fd;
        _Atomic bool ctl_stop;
        _Atomic uint64_t ctl_epoch;     /* odd while the control thread handles an event */
        struct dp_watch ctl_watch;
        /* watchdog (contain.c) */
        pthread_t watchdog;
        _Atomic bool watchdog_stop;
        unsigned watchdog_ms;           /* a VMM fd call sleeping longer is interrupted */
        struct dp_mutex watch_lock;     /* the list below */
        struct dp_watch *watches DP_GUARDED_BY(watch_lock);
        _Atomic uint64_t unstuck;
        uint64_t unstick_logged_ns;     /* the watchdog logs at most once a second */
};

uint64_t dp_now_ns(void);

/* contain.c */
int dp_contain_start(struct dp_user *dp);
void dp_contain_stop(struct dp_user *dp);
/* The calling thread may be interrupted by the watchdog and takes SIGBUS guards. */
void dp_watch_enter(struct dp_user *dp, struct dp_watch *w, const char *what);
void dp_watch_leave(struct dp_user *dp, struct dp_watch *w);
/* On a VMM's eventfd, never sleeping: 0; -EAGAIN (counter full, retry later); -ETIMEDOUT
 * (the VMM made it blocking and the watchdog interrupted us); other -errno. */
int dp_vmm_signal(int fd);
/* Reads an eventfd's count (0 when there was nothing); errors as above. */
int dp_vmm_drain(int fd, uint64_t *ret);
/* Checks a VMM's fd before use; 0 or -errno with why set. An eventfd is made O_NONBLOCK. */
int dp_vmm_eventfd_take(int fd, const char **why);
int dp_vmm_memfd_check(int fd, struct stat *st, const char **why);
int dp_vmm_socket_check(int fd, const char **why);
/* Closes an fd of any kind a VMM sent without waiting (no lingering socket close). */
void dp_vmm_fd_close(int fd);

/* ledger.c: socket files this data plane created; dp->lock held */
struct dp_ledger_entry;
void dp_ledger_load(struct dp_user *dp);
void dp_ledger_fini(struct dp_user *dp);
bool dp_ledger_owns(const struct dp_user *dp, const char *path, uint64_t dev, uint64_t ino) DP_REQUIRES(dp->lock);
void dp_ledger_add(struct dp_user *dp, const char *path, uint64_t dev, uint64_t ino) DP_REQUIRES(dp->lock);
void dp_ledger_del(struct dp_user *dp, const char *path) DP_REQUIRES(dp->lock);

/* vhost_user.c */
int dp_ctl_start(struct dp_user *dp);
void dp_ctl_stop(struct dp_user *dp);
int dp_device_listen(struct dp_user *dp, struct dp_device *dev) DP_REQUIRES(dp->lock);
/* Closes the listening socket. */
void dp_device_close_listener(struct dp_user *dp, struct dp_device *dev) DP_REQUIRES(dp->lock);
/* Drops the front end, if any; control thread only (or after it stopped). */
void dp_device_disconnect(struct dp_user *dp, struct dp_device *dev, const char *reason);

/* user_dp.c */
void dp_device_get(struct dp_device *dev);
/* The last reference frees the device: taps, eventfds, guest memory. */
void dp_device_put(struct dp_device *dev);

/* net.c */
int dp_tap_open(struct dp_device *dev);
/* Takes nqp queue fds opened elsewhere (after checking them); the caller keeps its own. */
int dp_tap_take(struct dp_device *dev, const int *fds);
void dp_tap_close(struct dp_device *dev);
void dp_tap_configure(struct dp_device *dev);
/* (Re)initialises or stops the rings of a vq from its configuration; qp->lock held. A
 * SIGBUS while reading the ring stops the vq. */
void dp_vq_refresh(struct dp_qp *qp, struct dp_vq *vq) DP_REQUIRES(qp->lock);
/* A fresh queue pair of dev with no fds (its model included). */
void dp_qp_init(struct dp_device *dev, struct dp_qp *qp, unsigned index);
/* Closes the pair's fds and returns its rings and model to their initial state. */
void dp_qp_reset(struct dp_qp *qp);
bool dp_qp_live(const struct dp_qp *qp);
/* The model's scheduling state, counters and ring capacity, whichever model the pair has. */
const struct elvis_sched *dp_qp_sched(const struct dp_qp *qp);
const struct elvis_qstats *dp_qp_stats(const struct dp_qp *qp);
u32 dp_qp_ring_cap(const struct dp_qp *qp);
/* Stops both vqs of a pair after a guest-memory fault (SIGBUS). qp->lock held. */
void dp_qp_memory_fault(struct dp_qp *qp) DP_REQUIRES(qp->lock);
/* Republishes qp->pub after a state change; qp->lock held. */
void dp_qp_publish(struct dp_qp *qp) DP_REQUIRES(qp->lock);
/* Writes the notifications owed (qp->signal) with the given fds (index: SIG_* bit), without
 * qp->lock. Undeliverable ones stay owed; a VMM fd that blocked marks qp->vmm_fd_stuck. */
void dp_qp_flush_signals(struct dp_qp *qp, const int fds[4]);

/* blk.c: vhost-user-blk devices */
/* Sets up the disk (size, features, back ends, one queue model per virtqueue). */
int dp_blk_open(struct dp_device *dev, const struct elvis_dp_device *cfg);
/* At the device's end: closes the back ends without waiting. False if a disk still held
 * requests (their guest mappings must then stay reserved for good). */
bool dp_blk_close(struct dp_device *dev);
void dp_blk_vq_refresh(struct dp_qp *qp, bool want) DP_REQUIRES(qp->lock);
/* Requests of the device on its disks; every queue's lock held. */
bool dp_blk_busy(const struct dp_device *dev);
/* What becomes of a mapping of the VMM's memory that a request still on a disk may name. */
enum dp_blk_keep {
        DP_BLK_UNMAP,           /* nothing in flight: unmapped */
        DP_BLK_KEEP_MAPPED,     /* requests may still complete through it (a new memory table) */
        DP_BLK_RESERVE,         /* requests were abandoned: inaccessible, addresses held */
};
/* Gives up a mapping of the VMM's memory (see enum dp_blk_keep); kept ones go with
 * dp_blk_unquarantine. */
void dp_blk_unmap(struct dp_device *dev, const struct dp_region_map *m, enum dp_blk_keep keep);
/* Releases reserved mappings once the device has nothing in flight (busy false). */
void dp_blk_unquarantine(struct dp_device *dev, bool busy);
/* Tracks the virtqueue of qp in queue qp->index of an inflight region of queue_size
 * entries a queue (region NULL: no tracking); the ring must not be live. 0 or -ENOMEM. */
int dp_blk_inflight_attach(struct dp_qp *qp, void *region, uint16_t queue_size) DP_REQUIRES(qp->lock);
/* The blk device's config space, GET_CONFIG's bytes. */
void dp_blk_config(const struct dp_device *dev, uint8_t out[ELVIS_BLK_CONFIG_SIZE]);

/* server.c */
int dp_server_start(struct dp_user *dp, uint32_t id, int cpu, bool vanilla, struct dp_server **ret);
/* Tells the thread to stop, without waiting; it must serve no queue pair. The caller puts
 * the server on dp->retired (dp->lock held) for dp_servers_reap(). */
void dp_server_retire(struct dp_server *s);
/* Joins and frees retired servers that have exited; with wait_ms, waits that long for
 * each. dp->lock held. */
void dp_servers_reap(struct dp_user *dp, int wait_ms) DP_REQUIRES(dp->lock);
/* The time s's thread waited on a run queue (/proc schedstat); 0 or -errno (-EAGAIN
 * before the thread runs). Reads a file, takes no lock. */
int dp_server_run_delay(struct dp_server *s, uint64_t *ret_ns);
/* Makes s serve qp (s NULL: nobody). It does not wait: the servers apply the change at
 * their next round; qp->lock serialises the old and the new server meanwhile. */
int dp_qp_set_server(struct dp_qp *qp, struct dp_server *s);
/* Wakes whoever serves qp (after a configuration change). */
void dp_qp_kick_server(struct dp_qp *qp);
