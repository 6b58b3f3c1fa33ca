/* The data-plane protocol between elvis-manager and elvis-dataplane: fixed-size,
 * fixed-width messages over a unix SOCK_SEQPACKET socket, one message per datagram.
 * docs/dataplane-protocol.md is the prose spec; this header is the wire format.
 * Changing any struct or value here breaks a running peer: bump ELVIS_DPP_VERSION.
 *
 * Every message starts with struct elvis_dpp_hdr; length is the payload's size, which
 * must be exactly the size that type's payload has. A reply repeats the request's id,
 * has type | ELVIS_DPP_REPLY and starts with struct elvis_dpp_result.
 *
 * Since version 3, two requests mean the same in every version, so that a manager can
 * replace a data plane of another version: HELLO of any version is answered with the
 * data plane's own hello (an error reply, -EPROTO, when the versions differ), and STOP
 * of any version is honoured. Their type numbers, the header and struct elvis_dpp_hello
 * never change. */
#pragma once
#include <elvis/dataplane.h>
#include <elvis/model.h>

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ELVIS_DPP_MAGIC 0x454c5644u     /* "DVLE" little endian: ELVD */
/* 2: DEVICE_ATTACH of a tap carries its queue fds; 3: HELLO and STOP in every version;
 * 4: queue drops, blk devices (type, image fd); 5: SET_PARAMS carries vanilla_busyloop_us;
 * 6: sidecore stats carry rounds and empty rounds */
#define ELVIS_DPP_VERSION 6u
#define ELVIS_DPP_MSG_MAX 16384u        /* a whole datagram, header included */
#define ELVIS_DPP_SOCKET_NAME "dataplane.sock"
#define ELVIS_DPP_LOCK_NAME "dataplane.lock"
#define ELVIS_DPP_REASON_MAX 96
#define ELVIS_DPP_FDS_MAX ELVIS_MAX_QUEUES     /* file descriptors one datagram may carry */

#define ELVIS_DPP_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " is wire format: its size is fixed")

struct elvis_dpp_hdr {
        uint32_t magic;
        uint16_t version;
        uint16_t type;
        uint32_t id;                    /* chosen by the requester, echoed in the reply */
        uint32_t length;                /* payload bytes after this header */
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_hdr, 16);

#define ELVIS_DPP_REPLY 0x8000u

enum elvis_dpp_type {
        /* observation: never change the data plane */
        ELVIS_DPP_HELLO = 1,            /* -> struct elvis_dpp_hello */
        ELVIS_DPP_HEALTH,               /* -> char detail[ELVIS_DPP_DETAIL_MAX] */
        ELVIS_DPP_LIST_SIDECORES,       /* page -> struct elvis_dpp_sidecore[] */
        ELVIS_DPP_LIST_DEVICES,         /* page -> struct elvis_dpp_device_item[] */
        ELVIS_DPP_STATS_SIDECORES,      /* page -> struct elvis_dpp_sidecore_stats[] */
        ELVIS_DPP_STATS_QUEUES,         /* page -> struct elvis_dpp_queue_stats[] */
        /* state changes */
        ELVIS_DPP_SIDECORE_CREATE = 32, /* struct elvis_dpp_sidecore */
        ELVIS_DPP_SIDECORE_DESTROY,     /* struct elvis_dpp_sidecore (cpu ignored) */
        ELVIS_DPP_DEVICE_ATTACH,        /* struct elvis_dpp_device; a tap: + one fd per queue pair; a blk
                                         * file: + the image's fd */
        ELVIS_DPP_DEVICE_DETACH,        /* struct elvis_dpp_queue_ref (queue ignored) */
        ELVIS_DPP_DEVICE_SET_POLICY,    /* struct elvis_dpp_policy */
        ELVIS_DPP_QUEUE_ASSIGN,         /* struct elvis_dpp_queue_ref */
        ELVIS_DPP_SET_PARAMS,           /* struct elvis_dpp_params */
        ELVIS_DPP_QUEUE_SET_POLL,       /* struct elvis_dpp_queue_poll */
        /* no payload; the data plane answers, then stops (its devices and sidecores go) */
        ELVIS_DPP_STOP = 64,
        __ELVIS_DPP_TYPE_MAX
};

#define ELVIS_DPP_DETAIL_MAX 256

struct elvis_dpp_result {
        int32_t error;                  /* 0 or a negative errno */
        uint32_t total;                 /* paged replies: items the data plane has; else 0 */
        uint32_t count;                 /* paged replies: items in this reply; else 0 */
        uint32_t reserved;
        char reason[ELVIS_DPP_REASON_MAX];      /* errors: why, NUL terminated */
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_result, 112);

struct elvis_dpp_page {
        uint32_t start;                 /* index of the first item wanted */
        uint32_t reserved;
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_page, 8);

struct elvis_dpp_hello {
        uint32_t version;               /* ELVIS_DPP_VERSION of the sender */
        uint32_t pid;                   /* the sender's process */
        uint64_t started_ns;            /* reply: CLOCK_MONOTONIC when the data plane started */
        char kind[16];                  /* reply: the hosted plane's kind ("user") */
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_hello, 32);

struct elvis_dpp_sidecore {
        uint32_t id;
        int32_t cpu;                    /* -1: unpinned */
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_sidecore, 8);

#define ELVIS_DPP_DEV_TAP_ADOPT (1u << 0)     /* net: the manager adopted an existing interface */
#define ELVIS_DPP_DEV_READONLY (1u << 1)      /* blk: a read-only disk (a file's fd is O_RDONLY) */

struct elvis_dpp_device {
        uint32_t vm_id;
        uint32_t backend;               /* enum elvis_backend, one that serves type */
        uint32_t queues;                /* 1..ELVIS_MAX_QUEUES: net queue pairs, blk virtqueues */
        uint32_t weight;                /* ELVIS_WEIGHT_MIN..MAX */
        uint32_t exitless;              /* enum elvis_exitless */
        uint32_t flags;                 /* ELVIS_DPP_DEV_* */
        int64_t vmm_uid, vmm_gid;       /* -1: anyone */
        char vm_name[ELVIS_VM_NAME_MAX];
        char device_id[ELVIS_DEVICE_ID_MAX];
        char tap[ELVIS_IFNAME_MAX];     /* net, tap backend; else empty */
        char socket_path[ELVIS_PATH_MAX];
        uint32_t type;                  /* enum elvis_device_type (version 4) */
        /* blk (version 4); zero for net */
        uint64_t size_bytes;            /* null backend: whole 512-byte sectors; file: 0 */
        uint64_t image_dev, image_ino;  /* file backend: the image's st_dev and st_ino, as the fd says */
        char path[ELVIS_IMAGE_PATH_MAX];        /* file backend: the image, for display (never opened) */
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_device, 528);

/* LIST_DEVICES: a device as attached, with what was applied to it since. */
struct elvis_dpp_device_item {
        struct elvis_dpp_device dev;
        uint32_t sidecore[ELVIS_MAX_QUEUES];
        uint32_t start_rate[ELVIS_MAX_QUEUES];
        uint32_t stop_idle_ms[ELVIS_MAX_QUEUES];
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_device_item, 720);

struct elvis_dpp_queue_ref {
        uint32_t vm_id;
        uint32_t queue;
        uint32_t sidecore;              /* QUEUE_ASSIGN: ELVIS_SIDECORE_NONE unassigns */
        uint32_t reserved;
        char device_id[ELVIS_DEVICE_ID_MAX];
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_queue_ref, 32);

struct elvis_dpp_policy {
        uint32_t vm_id;
        uint32_t weight;
        uint32_t exitless;
        uint32_t reserved;
        char device_id[ELVIS_DEVICE_ID_MAX];
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_policy, 32);

struct elvis_dpp_queue_poll {
        uint32_t vm_id;
        uint32_t queue;
        uint32_t start_rate;
        uint32_t stop_idle_ms;
        char device_id[ELVIS_DEVICE_ID_MAX];
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_queue_poll, 32);

struct elvis_dpp_params {
        uint32_t budget_packets;
        uint32_t budget_bytes;
        uint32_t poll_start_rate;
        uint32_t poll_stop_idle_ms;
        uint32_t vanilla_busyloop_us;
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_params, 20);

#define ELVIS_DPP_SC_SLEEPING (1u << 0)
#define ELVIS_DPP_SC_STOLEN_KNOWN (1u << 1)
#define ELVIS_DPP_SC_ROUNDS_KNOWN (1u << 2)     /* version 6 */

struct elvis_dpp_sidecore_stats {
        uint32_t id;
        int32_t cpu;
        uint32_t nqueues;
        uint32_t flags;                 /* ELVIS_DPP_SC_* */
        uint64_t polls, empty_polls, busy_ns, idle_ns, packets, bytes, wakeups, stolen_ns;
        uint64_t timestamp_ns;          /* CLOCK_MONOTONIC of the read */
        uint64_t rounds, empty_rounds;  /* since version 6, with ELVIS_DPP_SC_ROUNDS_KNOWN */
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_sidecore_stats, 104);

#define ELVIS_DPP_Q_POLLING (1u << 0)

struct elvis_dpp_queue_stats {
        uint32_t vm_id;
        uint32_t queue;
        uint32_t sidecore;
        uint32_t state;                 /* enum elvis_dp_queue_state */
        uint32_t flags;                 /* ELVIS_DPP_Q_* */
        uint32_t type;                  /* enum elvis_device_type (version 4) */
        char device_id[ELVIS_DEVICE_ID_MAX];
        uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes, kicks, interrupts, polls, empty_polls;
        uint64_t busy_ns, wait_ns, wait_samples, errors, signals_deferred;
        uint64_t timestamp_ns;
        uint64_t drops;                 /* since version 4 */
};
ELVIS_DPP_ASSERT_SIZE(struct elvis_dpp_queue_stats, 160);

/* Items of a paged reply that fit in one datagram. */
#define ELVIS_DPP_PAGE_ITEMS(type) \
        ((ELVIS_DPP_MSG_MAX - sizeof(struct elvis_dpp_hdr) - sizeof(struct elvis_dpp_result)) / sizeof(type))

/* Whether a request type only observes. */
bool elvis_dpp_is_observation(uint16_t type);
/* The payload size a request of type carries; 0 for an unknown type. */
size_t elvis_dpp_request_size(uint16_t type);

/* Checks a received request: header, size, strings, enums and how many fds came along
 * (a tap's DEVICE_ATTACH: one per queue pair; a blk file's: one, the image; anything
 * else: none). On failure returns
 * a negative errno and says why in why; ret_hdr is filled whenever the header could be
 * read (so the error reply can carry the id). What the fds are is the server's check. */
int elvis_dpp_check_request(const void *buf, size_t len, unsigned nfds, struct elvis_dpp_hdr *ret_hdr, char *why,
                            size_t whylen);
/* Checks a received reply to request (type, id); on success ret_res points into buf and
 * ret_body/ret_body_len give what follows the result. */
int elvis_dpp_check_reply(const void *buf, size_t len, uint16_t type, uint32_t id,
                          const struct elvis_dpp_result **ret_res, const void **ret_body, size_t *ret_body_len,
                          char *why, size_t whylen);

/* Writes header + payload into buf (ELVIS_DPP_MSG_MAX bytes); returns the message size,
 * 0 when it does not fit. payload NULL: the caller writes the len bytes after the header. */
size_t elvis_dpp_encode(void *buf, uint16_t type, uint32_t id, const void *payload, size_t len);

/* One datagram out; nfds (at most ELVIS_DPP_FDS_MAX) fds go along with SCM_RIGHTS. */
int elvis_dpp_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds);
/* One datagram in (blocking per the socket's mode). Returns its size, 0 at EOF or a
 * negative errno; -EMSGSIZE for a datagram longer than cap (consumed); -EBADF when more
 * than max (or ELVIS_DPP_FDS_MAX) fds came along. fds that came along are returned in
 * ret_fds (up to max, close-on-exec; the rest closed) with their count in ret_nfds; the
 * caller closes them. */
ssize_t elvis_dpp_recv(int sock, void *buf, size_t cap, int *ret_fds, unsigned max, unsigned *ret_nfds);

/* How many fds a DEVICE_ATTACH of w carries. */
unsigned elvis_dpp_device_nfds(const struct elvis_dpp_device *w);

/* Conversions between the wire and the data-plane interface (image_dev and image_ino
 * are the caller's to fill, image_fd too). */
void elvis_dpp_device_from(struct elvis_dpp_device *w, const struct elvis_dp_device *d);
/* d's strings point into w. */
void elvis_dpp_device_to(struct elvis_dp_device *d, const struct elvis_dpp_device *w);
void elvis_dpp_sidecore_stats_from(struct elvis_dpp_sidecore_stats *w, const struct elvis_dp_sidecore_stats *s,
                                   uint64_t ts);
void elvis_dpp_sidecore_stats_to(struct elvis_dp_sidecore_stats *s, const struct elvis_dpp_sidecore_stats *w);
void elvis_dpp_queue_stats_from(struct elvis_dpp_queue_stats *w, const struct elvis_dp_queue_stats *q, uint64_t ts);
void elvis_dpp_queue_stats_to(struct elvis_dp_queue_stats *q, const struct elvis_dpp_queue_stats *w);
