/* A guest emulator over vhost-user: plays the VMM (memory, rings, eventfds) and a
 * virtio-net driver, for tests and benchmarks on machines without KVM. */
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EMU_MAX_QP 8
#define EMU_MAX_DEVICES 64
#define EMU_BUF 2048                    /* per descriptor buffer */
#define EMU_HDR 12
#define EMU_GPA_BASE 0x100000ull        /* guest physical base, deliberately not our VA */

struct emu_vq {
        uint16_t num;
        struct emu_desc *desc;
        uint16_t *avail;                /* flags, idx, ring[num], used_event */
        uint16_t *used;                 /* flags, idx, ring (as u32 pairs), avail_event */
        uint64_t desc_off, avail_off, used_off, buf_off;
        uint16_t avail_idx;             /* next avail index to publish */
        uint16_t used_last;             /* next used entry to consume */
        uint16_t kicked_idx;            /* avail idx at the last kick decision */
        uint16_t free[32768];
        uint16_t nfree;
        int kick_fd, call_fd, err_fd;
        uint64_t kicks, interrupts;
        uint64_t kick_ns;               /* guest time in kicks: the eventfd write, or the modelled exit */
};

struct emu_desc {
        uint64_t addr;
        uint32_t len;
        uint16_t flags;
        uint16_t next;
};

struct emu_qp {
        struct emu_vq rx, tx;
        uint64_t tx_seq, rx_expect;
        uint64_t tx_packets, rx_packets, lost, dup_or_reordered;
        /* dirty log: after log_skip more receive entries, each must have its pages marked */
        bool log_check;
        uint16_t log_skip;
        uint64_t log_checked, log_missing;
};

struct emu_opts {
        const char *socket;
        unsigned queues;
        unsigned ring;
        unsigned mem_mb;
        bool no_event_idx, no_mrg, no_indirect;
        /* Modelled exit costs, 0 = none. A kick takes exit_cost_ns of guest time in all,
         * the eventfd write included (spun in place of it, not on top); an interrupt adds
         * irq_cost_ns where it is taken (0: posted interrupts, free to the guest). */
        uint64_t exit_cost_ns;
        uint64_t irq_cost_ns;
        int timeout_ms;                 /* per control reply */
        unsigned linger_ms;             /* hostile: stay connected this long after the verdict */
};

struct emu {
        struct emu_opts o;
        int sock, memfd;
        uint8_t *mem;
        size_t mem_size;
        uint64_t features, protocol_features;
        unsigned nqp;
        int logfd;                      /* the dirty log (emu_log), or -1 */
        uint8_t *log;
        size_t log_size;
        struct emu_qp qp[EMU_MAX_QP];
        char error[256];
};

/* Connect, negotiate and start all rings; returns 0 or -1 with e->error set. */
int emu_open(struct emu *e, const struct emu_opts *o);
/* Stops the rings (GET_VRING_BASE) and disconnects. */
void emu_close(struct emu *e);

/* Pieces of emu_open for other device types (blk.c): guest memory and the connection;
 * a setting (acknowledged with REPLY_ACK); a u64 query; a ring's layout in guest memory
 * at *off, its start, making posted entries visible (kicking if the device wants). */
int emu_mem_connect(struct emu *e, const struct emu_opts *o);
int emu_msg_set(struct emu *e, uint32_t request, const void *payload, uint32_t size, const int *fds, unsigned nfds);
int emu_msg_get_u64(struct emu *e, uint32_t request, uint64_t *v);
int emu_mem_table(struct emu *e);
void emu_vq_setup(struct emu *e, struct emu_vq *vq, size_t *off);
int emu_vq_start(struct emu *e, struct emu_vq *vq, uint32_t index);
/* Starts a ring again on a new connection from the used index in guest memory (what QEMU
 * does after losing its back end), and kicks it once. */
int emu_vq_restart(struct emu *e, struct emu_vq *vq, uint32_t index);
void emu_vq_publish(struct emu *e, struct emu_vq *vq);

/* Dirty logging as QEMU drives it for a migration: on, a log covering guest memory
 * (SET_LOG_BASE, the empty reply of LOG_SHMFD), LOG_ALL and every ring's used-ring
 * address; off, both cleared. The rings keep running. 0 or -1 with e->error set. */
int emu_log(struct emu *e, bool on);
/* Log bits set for pages outside guest memory (a careful back end sets none). */
uint64_t emu_log_stray(const struct emu *e);

/* Low-level protocol access (hostile modes). */
int emu_connect(struct emu *e);
int emu_send(struct emu *e, uint32_t request, uint32_t flags, const void *payload, uint32_t size, const int *fds,
             unsigned nfds);
/* Reads one reply: 0 with the payload, -ETIMEDOUT, -EPIPE (closed), -EPROTO. */
int emu_recv(struct emu *e, uint32_t *request, void *payload, uint32_t max, uint32_t *size);
/* The same for a reply that may carry one fd (*fd, -1 if none). */
int emu_recv_fd(struct emu *e, uint32_t *request, void *payload, uint32_t max, uint32_t *size, int *fd);

/* Driver. All of these are bounded: they never wait without a deadline. */
unsigned emu_tx(struct emu *e, unsigned qp, unsigned count, unsigned size);    /* posts up to count packets */
unsigned emu_tx_reclaim(struct emu *e, unsigned qp);
unsigned emu_rx(struct emu *e, unsigned qp);                                    /* consumes and reposts */
void emu_rx_post_all(struct emu *e, unsigned qp);
/* Interrupt control for a vq: wanted = the device should signal the next completion. */
void emu_irq(struct emu *e, struct emu_vq *vq, bool wanted);
/* Waits for the call eventfd of vq up to ms; true if an interrupt came (counted). */
bool emu_wait_irq(struct emu *e, struct emu_vq *vq, int ms);
void emu_drain_irqs(struct emu *e, struct emu_vq *vq);
bool emu_has_event_idx(const struct emu *e);
uint64_t emu_now_ns(void);
/* Runs this process on one CPU (cpu < 0: anywhere). */
void emu_pin_cpu(int cpu);
/* Busy-waits ns nanoseconds (guest CPU spent on a modelled cost). */
void emu_spin_ns(uint64_t ns);

/* Runs one hostile kind against a fresh connection and prints a JSON verdict; 0 when
 * the back end reacted as a careful one must (error eventfd, NACK or close), else 1. */
int emu_hostile(struct emu *e, const struct emu_opts *o, const char *kind, unsigned settle_ms);
