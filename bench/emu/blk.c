/* elvis-guest-blk: the guest emulator's virtio-blk driver over vhost-user, for tests and
 * benchmarks of any vhost-user-blk back end (ELVIS, qemu-storage-daemon, SPDK).
 *   elvis-guest-blk --socket PATH [--mode verify|iops] [--queues N] [--depth N] [--seconds S]
 *                   [--count N] [--bs BYTES] [--rw randread|randwrite] [--ring N] [--cpu N]
 *                   [--hostile KIND]
 * verify: random reads, writes, flushes, write-zeroes and discards over the first 64 MiB
 *   (at most), no two requests in flight on one block; every read is checked against what
 *   was last written (a per-block generation and a pattern derived from it; zeros where
 *   zeroed or never written; blocks after a discard are not checked until rewritten).
 * iops: random reads or writes of --bs bytes at --depth per queue; completions per second,
 *   latency percentiles, notifications per 1,000 requests.
 * ids: random 4 KiB writes over the first --blocks blocks (default 1024) at --depth per
 *   queue, no two in flight on one block, each with a payload unique to the request (its
 *   id and block); every used entry must answer a request in flight, each exactly once.
 *   --model PATH writes what the disk's first --blocks blocks must hold at the end.
 * --inflight: negotiates INFLIGHT_SHMFD, asks the back end for a region once
 *   (GET_INFLIGHT_FD) and hands it over at every connection (SET_INFLIGHT_FD), as QEMU does.
 * --reconnect: when the back end goes (it died), connects again (for up to 15 s), and
 *   starts the rings from the used index, as QEMU does; the workload goes on. The JSON
 *   line counts the reconnects and the requests in flight when the back end went.
 * hostile: --hostile KIND posts one malformed request on queue 0 and reports what became
 *   of it: "answered" with its status (beyond, overflow, unaligned, segments, unsupported:
 *   a device must answer IOERR or UNSUPP and go on, which a good read after it shows), or
 *   not answered within a second (ro-status, bad-addr, loop: no answer is possible, the
 *   device stops the queue; inflight-version, inflight-flag, inflight-count and
 *   inflight-batch hand over an inflight region with garbage in it first, which the
 *   device must refuse by stopping the queue). Exits 0 either way; the caller judges.
 * The driver polls the used rings (interrupts off), kicks as the device asks. Prints one
 * JSON line; exits 1 on a failure (a request error, a mismatch, a stall). */
#include "emu.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { GET_FEATURES = 1, SET_FEATURES = 2, SET_OWNER = 3, GET_PROTOCOL_FEATURES = 15, SET_PROTOCOL_FEATURES = 16,
       GET_QUEUE_NUM = 17, GET_CONFIG = 24, GET_INFLIGHT_FD = 31, SET_INFLIGHT_FD = 32 };

#define F_SEG_MAX 2
#define F_RO 5
#define F_BLK_SIZE 6
#define F_FLUSH 9
#define F_MQ 12
#define F_DISCARD 13
#define F_WRITE_ZEROES 14
#define F_EVENT_IDX 29
#define F_PROTOCOL 30
#define F_VERSION_1 32
#define PF_MQ 0
#define PF_REPLY_ACK 3
#define PF_CONFIG 9
#define PF_INFLIGHT_SHMFD 12

#define T_IN 0u
#define T_OUT 1u
#define T_FLUSH 4u
#define T_DISCARD 11u
#define T_WRITE_ZEROES 13u
#define DESC_F_NEXT 1
#define DESC_F_WRITE 2

#define MAX_Q 8
#define MAX_BS (64u << 10)
#define STATUS_OFF (4096u + MAX_BS)
#define SLOT_STRIDE (STATUS_OFF + 4096u)        /* [16 B header, 16 B range][data at 4096][status] */
#define BLOCK 4096u
#define VERIFY_BLOCKS 16384u            /* 64 MiB */
#define GEN_UNKNOWN UINT32_MAX          /* discarded: contents not promised */

struct slot {
        bool busy;
        uint32_t type, nblocks, gen;
        uint64_t block, t0;
        uint64_t id;                    /* ids mode */
};

struct queue {
        struct emu_vq vq;
        uint64_t slots_off;
        struct slot *slot;
        unsigned inflight;
};

static struct emu e;
static struct queue q[MAX_Q];
static unsigned nq, depth = 16, bs = 4096;
static uint64_t capacity, features;
static uint32_t blk_size = 512;
static uint32_t *gen;
static uint8_t *busy;
static unsigned nblocks;
static uint64_t reads, writes, flushes, zeroes, discards, errors, mismatches;
static uint64_t *lat;
static size_t nlat, lat_cap;
/* inflight tracking and reconnects */
static bool want_inflight, reconnect_mode;
static const char *garbage;             /* --hostile inflight-*: what to scribble in the region */
static struct {
        uint64_t mmap_size, mmap_offset;
        uint16_t num_queues, queue_size;
        uint32_t pad;
} inflight;
static int inflight_fd = -1;
static unsigned ring_size;
static uint64_t reconnects, inflight_at_loss, region_at_loss;
/* ids mode */
static bool ids_mode;
static uint64_t next_id = 1, *owner, submitted, completed, duplicates, out_of_order, last_done_id;

static uint64_t rnd(void)
{
        static uint64_t x = 0x9e3779b97f4a7c15ull;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return x;
}

static uint64_t pattern(uint64_t block, uint32_t g, unsigned word)
{
        uint64_t v = block * 0x9e3779b97f4a7c15ull ^ (uint64_t)g << 32 ^ word;
        v ^= v >> 31;
        v *= 0xbf58476d1ce4e5b9ull;
        return v ^ v >> 29;
}

/* Scribbles on the region as a hostile VMM would (--hostile inflight-*). */
static void scribble(uint8_t *r)
{
        uint16_t v;

        if (!strcmp(garbage, "inflight-version")) {
                v = 9;
                memcpy(r + 8, &v, 2);
        } else if (!strcmp(garbage, "inflight-flag")) {
                r[16 + 16 * 1] = 3;                     /* desc[1].inflight: a flag */
        } else if (!strcmp(garbage, "inflight-count")) {
                /* every head in flight, while the guest made none available */
                for (unsigned i = 0; i < ring_size; i++) {
                        uint64_t counter = i + 1;
                        r[16 + 16 * i] = 1;
                        memcpy(r + 16 + 16 * i + 8, &counter, 8);
                }
        } else if (!strcmp(garbage, "inflight-batch")) {
                /* a request in flight, and a used index further than a ring holds */
                v = 999;
                memcpy(r + 12, &v, 2);
                v = 0x8000;
                memcpy(r + 14, &v, 2);
                r[16] = 1;
        }
}

/* GET_INFLIGHT_FD once (the region is kept across back ends), SET_INFLIGHT_FD every time. */
static int hand_over_inflight(void)
{
        uint32_t req, len;
        int r;

        if (inflight_fd < 0) {
                inflight.num_queues = (uint16_t)nq;
                inflight.queue_size = (uint16_t)ring_size;
                inflight.mmap_size = inflight.mmap_offset = 0;
                if (emu_send(&e, GET_INFLIGHT_FD, 0, &inflight, sizeof(inflight), NULL, 0) ||
                    (r = emu_recv_fd(&e, &req, &inflight, sizeof(inflight), &len, &inflight_fd)) < 0 ||
                    req != GET_INFLIGHT_FD || len != sizeof(inflight) || !inflight.mmap_size || inflight_fd < 0) {
                        snprintf(e.error, sizeof(e.error), "GET_INFLIGHT_FD failed");
                        return -1;
                }
                if (garbage) {
                        uint8_t *m = mmap(NULL, inflight.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, inflight_fd,
                                          (off_t)inflight.mmap_offset);
                        if (m == MAP_FAILED) {
                                snprintf(e.error, sizeof(e.error), "cannot map the inflight region");
                                return -1;
                        }
                        scribble(m);
                        munmap(m, inflight.mmap_size);
                }
        }
        return emu_msg_set(&e, SET_INFLIGHT_FD, &inflight, sizeof(inflight), &inflight_fd, 1);
}

/* Features, protocol features, memory, the inflight region and the rings: on the first
 * connection (again false) or on a new one after the back end went. */
static int handshake(unsigned queues, bool again)
{
        uint64_t offered, pf, want;
        struct {
                uint32_t offset, size, flags;
                uint8_t cfg[60];
        } c = { 0, 60, 0, { 0 } };
        uint32_t req, len;
        size_t off = 0;

        e.protocol_features = 0;
        if (emu_msg_get_u64(&e, GET_FEATURES, &offered))
                return -1;
        want = 1ull << F_VERSION_1 | 1ull << F_PROTOCOL | 1ull << F_SEG_MAX | 1ull << F_BLK_SIZE | 1ull << F_FLUSH |
               1ull << F_RO | 1ull << F_DISCARD | 1ull << F_WRITE_ZEROES | 1ull << F_EVENT_IDX;
        if (queues > 1)
                want |= 1ull << F_MQ;
        if (again && (offered & want) != features) {
                snprintf(e.error, sizeof(e.error), "the back end came back with other features");
                return -1;
        }
        features = offered & want;
        if (!(features & (1ull << F_PROTOCOL)) || emu_msg_get_u64(&e, GET_PROTOCOL_FEATURES, &pf))
                return -1;
        pf &= 1ull << PF_MQ | 1ull << PF_REPLY_ACK | 1ull << PF_CONFIG | (want_inflight ? 1ull << PF_INFLIGHT_SHMFD : 0);
        if (want_inflight && !(pf & (1ull << PF_INFLIGHT_SHMFD))) {
                snprintf(e.error, sizeof(e.error), "the back end does not offer INFLIGHT_SHMFD");
                return -1;
        }
        if (emu_send(&e, SET_PROTOCOL_FEATURES, 0, &pf, 8, NULL, 0))
                return -1;
        e.protocol_features = pf;
        if (again) {
                if (emu_msg_set(&e, SET_OWNER, NULL, 0, NULL, 0) || emu_msg_set(&e, SET_FEATURES, &features, 8, NULL, 0) ||
                    emu_mem_table(&e) || (want_inflight && hand_over_inflight()))
                        return -1;
                for (unsigned i = 0; i < nq; i++)
                        if (emu_vq_restart(&e, &q[i].vq, i))
                                return -1;
                return 0;
        }
        if (!(pf & (1ull << PF_CONFIG))) {
                snprintf(e.error, sizeof(e.error), "the back end has no GET_CONFIG");
                return -1;
        }
        if (emu_send(&e, GET_CONFIG, 0, &c, sizeof(c), NULL, 0) || emu_recv(&e, &req, &c, sizeof(c), &len) ||
            req != GET_CONFIG || len != sizeof(c)) {
                snprintf(e.error, sizeof(e.error), "GET_CONFIG failed");
                return -1;
        }
        memcpy(&capacity, c.cfg, 8);
        if (features & (1ull << F_BLK_SIZE))
                memcpy(&blk_size, c.cfg + 20, 4);
        if (queues > 1) {
                uint16_t cfgq;
                memcpy(&cfgq, c.cfg + 34, 2);
                if (!(features & (1ull << F_MQ)) || cfgq < queues) {
                        snprintf(e.error, sizeof(e.error), "the back end offers %u queues, %u wanted", cfgq, queues);
                        return -1;
                }
        }
        if (emu_msg_set(&e, SET_OWNER, NULL, 0, NULL, 0) || emu_msg_set(&e, SET_FEATURES, &features, 8, NULL, 0))
                return -1;
        /* the shared code enables each ring (SET_VRING_ENABLE) when PROTOCOL_FEATURES was
         * acked, as the spec asks and QEMU does */
        e.features = features;
        nq = queues;
        for (unsigned i = 0; i < nq; i++) {
                emu_vq_setup(&e, &q[i].vq, &off);
                q[i].slots_off = (off + 4095) & ~4095ull;
                off = q[i].slots_off + (size_t)depth * SLOT_STRIDE;
                q[i].slot = calloc(depth, sizeof(struct slot));
                if (!q[i].slot)
                        return -1;
        }
        if (off > e.mem_size) {
                snprintf(e.error, sizeof(e.error), "guest memory too small");
                return -1;
        }
        if (emu_mem_table(&e) || (want_inflight && hand_over_inflight()))
                return -1;
        for (unsigned i = 0; i < nq; i++) {
                if (emu_vq_start(&e, &q[i].vq, i))
                        return -1;
                emu_irq(&e, &q[i].vq, false);
        }
        return 0;
}

static int negotiate(const char *sock, unsigned queues, unsigned ring)
{
        struct emu_opts o = { .socket = sock, .queues = 1, .ring = ring, .mem_mb = 0 };

        ring_size = ring;
        o.mem_mb = (unsigned)((queues * (size_t)depth * SLOT_STRIDE + queues * (ring * 24ull + 16384)) >> 20) + 8;
        if (emu_mem_connect(&e, &o))
                return -1;
        return handshake(queues, false);
}

static unsigned reap(unsigned qi);

/* The back end's end of the connection is gone (it died, or dropped us). */
static bool back_end_gone(void)
{
        struct pollfd p = { .fd = e.sock, .events = POLLRDHUP };

        return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* A new connection to whatever back end listens on the socket now, within 15 s. */
static int reconnect(unsigned long long *done)
{
        uint64_t end = emu_now_ns() + 15000000000ull;
        struct timespec pause = { 0, 5 * 1000 * 1000 };

        /* what the back end answered before it went is ours; the rest was in flight */
        for (unsigned i = 0; i < nq; i++) {
                *done += reap(i);
                inflight_at_loss += q[i].inflight;
        }
        if (inflight_fd >= 0) {
                /* and of those, what the back end had taken: what the next one executes again */
                const uint8_t *m = mmap(NULL, inflight.mmap_size, PROT_READ, MAP_SHARED, inflight_fd,
                                        (off_t)inflight.mmap_offset);

                if (m != MAP_FAILED) {
                        for (unsigned k = 0; k < nq; k++)
                                for (unsigned i = 0; i < ring_size; i++)
                                        region_at_loss += m[inflight.mmap_size / nq * k + 16 + 16 * i] == 1;
                        munmap((void *)m, inflight.mmap_size);
                }
        }
        close(e.sock);
        e.sock = -1;
        /* as QEMU does: a back end that goes again during the handshake is reconnected to
         * in turn (nothing announces a listening socket: try again shortly); every back end
         * connected to counts */
        for (;;) {
                int r = emu_connect(&e);

                if (r == 0)
                        reconnects++;
                if (r == 0 && handshake(nq, true) == 0)
                        break;
                if (e.sock >= 0)
                        close(e.sock);
                e.sock = -1;
                if (emu_now_ns() > end)
                        return -1;
                nanosleep(&pause, NULL);
        }
        return 0;
}

static uint8_t *slot_mem(unsigned qi, unsigned s)
{
        return e.mem + q[qi].slots_off + (size_t)s * SLOT_STRIDE;
}

static uint64_t slot_gpa(unsigned qi, unsigned s)
{
        return EMU_GPA_BASE + q[qi].slots_off + (uint64_t)s * SLOT_STRIDE;
}

/* Posts request s of queue qi: type, first sector, data bytes (IN/OUT) or the range
 * (DISCARD/WRITE_ZEROES). Three descriptors per slot: 3s, 3s+1, 3s+2. */
static void post(unsigned qi, unsigned s, uint32_t type, uint64_t sector, uint32_t len)
{
        struct emu_vq *vq = &q[qi].vq;
        uint8_t *m = slot_mem(qi, s);
        uint64_t g = slot_gpa(qi, s);
        uint16_t d = (uint16_t)(3 * s), n = 0;
        uint32_t zero = 0;

        memcpy(m, &type, 4);
        memcpy(m + 4, &zero, 4);
        memcpy(m + 8, &sector, 8);
        m[STATUS_OFF] = 0xff;        /* status: the back end must overwrite it */
        if (type == T_DISCARD || type == T_WRITE_ZEROES) {
                uint32_t sectors = len >> 9, flags = 0;
                memcpy(m + 16, &sector, 8);
                memcpy(m + 24, &sectors, 4);
                memcpy(m + 28, &flags, 4);
                vq->desc[d] = (struct emu_desc){ g, 32, DESC_F_NEXT, (uint16_t)(d + 1) };
                n = 1;
        } else {
                vq->desc[d] = (struct emu_desc){ g, 16, DESC_F_NEXT, (uint16_t)(d + 1) };
                n = 1;
                if (type == T_IN || type == T_OUT) {
                        vq->desc[d + 1] = (struct emu_desc){ g + 4096, len,
                                                             (uint16_t)(DESC_F_NEXT | (type == T_IN ? DESC_F_WRITE : 0)),
                                                             (uint16_t)(d + 2) };
                        n = 2;
                }
        }
        vq->desc[d + n - 1].next = (uint16_t)(d + n);
        vq->desc[d + n] = (struct emu_desc){ g + STATUS_OFF, 1, DESC_F_WRITE, 0 };
        vq->avail[2 + (vq->avail_idx & (vq->num - 1))] = d;
        vq->avail_idx++;
        q[qi].inflight++;
}

static bool verify_mode;
static bool writes_mode;

/* ids mode: word w of the block a request writes holds its id and block first, then a
 * pattern of both, so that no two requests write the same bytes */
static uint64_t ids_word(uint64_t id, uint64_t block, unsigned w)
{
        if (w == 0)
                return id;
        if (w == 1)
                return block;
        return pattern(block, (uint32_t)id, w) ^ id << 40;
}

/* What the first nblocks blocks must hold: the last write completed on each. */
static int write_model(const char *path)
{
        FILE *f = fopen(path, "w");
        uint64_t buf[BLOCK / 8];

        if (!f)
                return -1;
        for (unsigned b = 0; b < nblocks; b++) {
                for (unsigned w = 0; w < BLOCK / 8; w++)
                        buf[w] = owner[b] ? ids_word(owner[b], b, w) : 0;
                if (fwrite(buf, sizeof(buf), 1, f) != 1) {
                        fclose(f);
                        return -1;
                }
        }
        return fclose(f);
}

/* Starts one request in a free slot of queue qi. */
static void start(unsigned qi, unsigned s)
{
        struct slot *sl = &q[qi].slot[s];
        uint32_t per = BLOCK / 512;
        uint8_t *data = slot_mem(qi, s) + 4096;

        sl->t0 = emu_now_ns();
        if (ids_mode) {
                uint64_t b = rnd() % nblocks;

                for (unsigned tries = 0; busy[b]; tries++) {
                        if (tries == 8)
                                return;         /* the slot waits for the next round */
                        b = rnd() % nblocks;
                }
                sl->type = T_OUT;
                sl->block = b;
                sl->nblocks = 1;
                sl->id = next_id++;
                for (unsigned w = 0; w < BLOCK / 8; w++) {
                        uint64_t v = ids_word(sl->id, b, w);
                        memcpy(data + w * 8, &v, 8);
                }
                busy[b] = 1;
                sl->busy = true;
                submitted++;
                post(qi, s, T_OUT, b * per, BLOCK);
                return;
        }
        if (!verify_mode) {
                uint64_t units = capacity * 512 / bs;
                uint64_t at = (rnd() % (units ? units : 1)) * (bs / 512);
                sl->type = writes_mode ? T_OUT : T_IN;
                sl->busy = true;
                post(qi, s, sl->type, at, bs);
                return;
        }
        unsigned r = (unsigned)(rnd() % 100), nb = 1 + (unsigned)(rnd() % 4);
        uint64_t b = rnd() % (nblocks - nb + 1);
        for (unsigned k = 0; k < nb; k++)
                if (busy[b + k]) {
                        r = 90;         /* a flush instead: it touches no block */
                        break;
                }
        if (r >= 90 && r < 94) {
                sl->type = T_FLUSH;
                sl->nblocks = 0;
                sl->busy = true;
                post(qi, s, T_FLUSH, 0, 0);
                return;
        }
        sl->block = b;
        sl->nblocks = nb;
        if (r < 45 || (r >= 94 && !(features & (1ull << (r < 97 ? F_DISCARD : F_WRITE_ZEROES))))) {
                sl->type = T_OUT;
                sl->gen = gen[b] == GEN_UNKNOWN ? 1 : gen[b] + 1;
                for (unsigned k = 0; k < nb; k++)
                        for (unsigned w = 0; w < BLOCK / 8; w++) {
                                uint64_t v = pattern(b + k, sl->gen, w);
                                memcpy(data + (size_t)k * BLOCK + w * 8, &v, 8);
                        }
        } else if (r < 90) {
                sl->type = T_IN;
                memset(data, 0xa5, (size_t)nb * BLOCK);
        } else {
                sl->type = r < 97 ? T_DISCARD : T_WRITE_ZEROES;
        }
        for (unsigned k = 0; k < nb; k++)
                busy[b + k] = 1;
        sl->busy = true;
        post(qi, s, sl->type, b * per, nb * BLOCK);
}

static void check_read(unsigned qi, unsigned s)
{
        struct slot *sl = &q[qi].slot[s];
        const uint8_t *data = slot_mem(qi, s) + 4096;

        for (unsigned k = 0; k < sl->nblocks; k++) {
                uint32_t g = gen[sl->block + k];
                if (g == GEN_UNKNOWN)
                        continue;
                for (unsigned w = 0; w < BLOCK / 8; w++) {
                        uint64_t v, want = g ? pattern(sl->block + k, g, w) : 0;
                        memcpy(&v, data + (size_t)k * BLOCK + w * 8, 8);
                        if (v != want) {
                                if (!mismatches)
                                        fprintf(stderr, "elvis-guest-blk: block %llu word %u: %016llx, want %016llx\n",
                                                (unsigned long long)(sl->block + k), w, (unsigned long long)v,
                                                (unsigned long long)want);
                                mismatches++;
                                break;
                        }
                }
        }
}

/* Reaps queue qi's completions; returns how many. */
static unsigned reap(unsigned qi)
{
        struct emu_vq *vq = &q[qi].vq;
        uint16_t idx = __atomic_load_n(&vq->used[1], __ATOMIC_ACQUIRE);
        unsigned n = 0;

        while (vq->used_last != idx) {
                uint32_t id = ((uint32_t *)&vq->used[2])[2 * (vq->used_last & (vq->num - 1))];
                unsigned s = id / 3;
                vq->used_last++;
                if (id % 3 || s >= depth || !q[qi].slot[s].busy) {
                        /* no request of ours waits for this: answered twice, or made up */
                        if (ids_mode)
                                duplicates++;
                        else
                                errors++;
                        continue;
                }
                struct slot *sl = &q[qi].slot[s];
                uint8_t status = slot_mem(qi, s)[STATUS_OFF];
                if (status != 0)
                        errors++;
                if (lat && nlat < lat_cap)
                        lat[nlat++] = emu_now_ns() - sl->t0;
                switch (sl->type) {
                case T_IN: reads++; if (verify_mode && !status) check_read(qi, s); break;
                case T_OUT: writes++; break;
                case T_FLUSH: flushes++; break;
                case T_DISCARD: discards++; break;
                default: zeroes++; break;
                }
                if (ids_mode && !status) {
                        owner[sl->block] = sl->id;
                        completed++;
                        out_of_order += sl->id < last_done_id;
                        if (sl->id > last_done_id)
                                last_done_id = sl->id;
                }
                if (verify_mode && !status)
                        for (unsigned k = 0; k < sl->nblocks; k++)
                                gen[sl->block + k] = sl->type == T_OUT ? sl->gen :
                                                     sl->type == T_DISCARD ? GEN_UNKNOWN :
                                                     sl->type == T_WRITE_ZEROES ? 0 : gen[sl->block + k];
                for (unsigned k = 0; k < sl->nblocks; k++)
                        busy[sl->block + k] = 0;
                sl->busy = false;
                q[qi].inflight--;
                n++;
        }
        return n;
}

/* Waits up to ms for queue 0's next used entry; its status byte (slot 0), or -1. */
static int hostile_wait(unsigned ms)
{
        struct emu_vq *vq = &q[0].vq;
        uint64_t end = emu_now_ns() + (uint64_t)ms * 1000000ull;

        while (emu_now_ns() < end) {
                uint16_t idx = __atomic_load_n(&vq->used[1], __ATOMIC_ACQUIRE);

                if (idx != vq->used_last) {
                        vq->used_last++;
                        q[0].inflight--;
                        return slot_mem(0, 0)[STATUS_OFF];
                }
        }
        return -1;
}

/* One malformed request (see the top of the file) on queue 0, slot 0. */
static int hostile(const char *kind)
{
        struct emu_vq *vq = &q[0].vq;
        uint64_t g = slot_gpa(0, 0);
        uint8_t *m = slot_mem(0, 0);
        int status, after = -1;
        bool answerable = true;

        if (!strcmp(kind, "beyond")) {
                post(0, 0, T_IN, capacity, 4096);
        } else if (!strcmp(kind, "overflow")) {
                post(0, 0, T_IN, UINT64_MAX - 7, 4096);
        } else if (!strcmp(kind, "unaligned")) {
                post(0, 0, T_OUT, 0, 100);
        } else if (!strcmp(kind, "unsupported")) {
                post(0, 0, 99, 0, 0);
        } else if (!strcmp(kind, "segments")) {
                /* 200 data segments of 512 bytes, past seg_max; descriptors after the slots' */
                uint16_t d = (uint16_t)(3 * depth), n = 202;
                uint32_t type = T_IN, zero = 0;
                uint64_t sector = 0;

                if ((unsigned)d + n > vq->num) {
                        fprintf(stderr, "elvis-guest-blk: --ring too small for the segments request\n");
                        return 2;
                }
                memcpy(m, &type, 4);
                memcpy(m + 4, &zero, 4);
                memcpy(m + 8, &sector, 8);
                m[STATUS_OFF] = 0xff;
                vq->desc[d] = (struct emu_desc){ g, 16, DESC_F_NEXT, (uint16_t)(d + 1) };
                for (uint16_t k = 1; k <= 200; k++)
                        vq->desc[d + k] = (struct emu_desc){ g + 4096 + (k - 1) * 256u, 256,
                                                             DESC_F_NEXT | DESC_F_WRITE, (uint16_t)(d + k + 1) };
                vq->desc[d + 201] = (struct emu_desc){ g + STATUS_OFF, 1, DESC_F_WRITE, 0 };
                vq->avail[2 + (vq->avail_idx & (vq->num - 1))] = d;
                vq->avail_idx++;
                q[0].inflight++;
        } else if (!strncmp(kind, "inflight-", 9)) {
                /* the region was refused when the ring started: nothing answers now */
                answerable = false;
                post(0, 0, T_IN, 0, 4096);
        } else if (!strcmp(kind, "ro-status") || !strcmp(kind, "bad-addr") || !strcmp(kind, "loop")) {
                answerable = false;
                if (!strcmp(kind, "ro-status")) {
                        /* a flush whose status byte is device-readable: no place for an answer */
                        post(0, 0, T_FLUSH, 0, 0);
                        vq->desc[1].flags = 0;
                } else {
                        post(0, 0, T_IN, 0, 4096);
                        if (!strcmp(kind, "bad-addr"))
                                vq->desc[1].addr = 1ull << 50;  /* far outside guest memory */
                        else
                                vq->desc[1].next = 0;           /* data -> header -> data ... */
                }
        } else {
                fprintf(stderr, "elvis-guest-blk: unknown hostile kind '%s'\n", kind);
                return 2;
        }
        emu_vq_publish(&e, vq);
        status = hostile_wait(answerable ? 2000 : 1000);
        if (status >= 0) {
                /* the queue must go on: a good read of block 0 */
                post(0, 0, T_IN, 0, 4096);
                emu_vq_publish(&e, vq);
                after = hostile_wait(2000);
        }
        printf("{\"hostile\": \"%s\", \"answered\": %s, \"status\": %d, \"after\": %d}\n", kind,
               status >= 0 ? "true" : "false", status, after);
        emu_close(&e);
        return 0;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "socket", 1, 0, 's' }, { "mode", 1, 0, 'm' }, { "queues", 1, 0, 'q' }, { "depth", 1, 0, 'd' },
                { "seconds", 1, 0, 'S' }, { "count", 1, 0, 'n' }, { "bs", 1, 0, 'b' }, { "rw", 1, 0, 'w' },
                { "ring", 1, 0, 'r' }, { "cpu", 1, 0, 'c' }, { "hostile", 1, 0, 'H' }, { "inflight", 0, 0, 'i' },
                { "reconnect", 0, 0, 'R' }, { "blocks", 1, 0, 'B' }, { "model", 1, 0, 'M' }, { 0, 0, 0, 0 },
        };
        const char *sock = NULL, *mode = "verify", *rw = "randread", *hostile_kind = NULL, *model = NULL;
        unsigned want_blocks = 1024;
        unsigned queues = 1, ring = 256;
        double seconds = 2;
        unsigned long long count = 0, done = 0;
        uint64_t kicks = 0, t0, end, last_progress;
        int c, cpu = -1;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 's': sock = optarg; break;
                case 'm': mode = optarg; break;
                case 'q': queues = (unsigned)atoi(optarg); break;
                case 'd': depth = (unsigned)atoi(optarg); break;
                case 'S': seconds = atof(optarg); break;
                case 'n': count = strtoull(optarg, NULL, 10); break;
                case 'b': bs = (unsigned)atoi(optarg); break;
                case 'w': rw = optarg; break;
                case 'r': ring = (unsigned)atoi(optarg); break;
                case 'c': cpu = atoi(optarg); break;
                case 'H': hostile_kind = optarg; break;
                case 'i': want_inflight = true; break;
                case 'R': reconnect_mode = true; break;
                case 'B': want_blocks = (unsigned)atoi(optarg); break;
                case 'M': model = optarg; break;
                default: fprintf(stderr, "elvis-guest-blk: see the comment at the top of bench/emu/blk.c\n"); return 2;
                }
        }
        verify_mode = !strcmp(mode, "verify");
        ids_mode = !strcmp(mode, "ids");
        writes_mode = !strcmp(rw, "randwrite");
        if (hostile_kind && !strncmp(hostile_kind, "inflight-", 9)) {
                want_inflight = true;
                garbage = hostile_kind;
        }
        if (!sock || !queues || queues > MAX_Q || !depth || 3 * depth > ring || bs < 512 || bs > MAX_BS || bs % 512 ||
            seconds <= 0 || seconds > 3600 || (!verify_mode && !ids_mode && strcmp(mode, "iops")) ||
            want_blocks < 2 * depth * queues || want_blocks > VERIFY_BLOCKS || (model && !ids_mode)) {
                fprintf(stderr, "elvis-guest-blk: bad arguments\n");
                return 2;
        }
        emu_pin_cpu(cpu);
        if (negotiate(sock, queues, ring) < 0) {
                printf("{\"error\": \"%s: %s\"}\n", sock, e.error);
                emu_close(&e);
                return 1;
        }
        if (hostile_kind)
                return hostile(hostile_kind);
        if ((verify_mode || ids_mode) && (features & (1ull << F_RO))) {
                printf("{\"error\": \"the disk is read-only: verify needs to write\"}\n");
                return 1;
        }
        nblocks = (unsigned)(capacity * 512 / BLOCK < VERIFY_BLOCKS ? capacity * 512 / BLOCK : VERIFY_BLOCKS);
        if (ids_mode && want_blocks < nblocks)
                nblocks = want_blocks;
        gen = calloc(nblocks + 1, sizeof(*gen));
        owner = calloc(nblocks + 1, sizeof(*owner));
        busy = calloc(nblocks + 1, 1);
        lat_cap = 1 << 20;
        lat = malloc(lat_cap * sizeof(*lat));
        if (!gen || !owner || !busy || !lat || ((verify_mode || ids_mode) && nblocks < 8)) {
                printf("{\"error\": \"the disk is too small or out of memory\"}\n");
                return 1;
        }
        t0 = last_progress = emu_now_ns();
        end = t0 + (uint64_t)(seconds * 1e9);
        while (emu_now_ns() < end && (!count || done < count)) {
                if (reconnect_mode && back_end_gone()) {
                        if (reconnect(&done) < 0) {
                                fprintf(stderr, "elvis-guest-blk: the back end did not come back: %s\n", e.error);
                                errors++;
                                break;
                        }
                        last_progress = emu_now_ns();
                }
                for (unsigned i = 0; i < nq; i++) {
                        for (unsigned s = 0; s < depth && (!count || done + q[i].inflight < count); s++)
                                if (!q[i].slot[s].busy)
                                        start(i, s);
                        uint64_t before = q[i].vq.kicks;
                        emu_vq_publish(&e, &q[i].vq);
                        kicks += q[i].vq.kicks - before;
                        unsigned n = reap(i);
                        done += n;
                        if (n)
                                last_progress = emu_now_ns();
                }
                if (emu_now_ns() - last_progress > 5000000000ull) {
                        fprintf(stderr, "elvis-guest-blk: no completion for 5 s\n");
                        errors++;
                        break;
                }
        }
        double secs = (double)(emu_now_ns() - t0) / 1e9;
        /* what is in flight completes (bounded) before the rings stop */
        for (uint64_t stop = emu_now_ns() + 5000000000ull; emu_now_ns() < stop;) {
                unsigned left = 0;

                if (reconnect_mode && back_end_gone() && reconnect(&done) < 0)
                        break;
                for (unsigned i = 0; i < nq; i++) {
                        done += reap(i);
                        left += q[i].inflight;
                }
                if (!left)
                        break;
        }
        unsigned long long missing = 0;
        for (unsigned i = 0; i < nq; i++)
                missing += q[i].inflight;
        if (missing && !ids_mode)
                errors++;
        if (model && write_model(model) < 0) {
                fprintf(stderr, "elvis-guest-blk: cannot write the model to %s\n", model);
                errors++;
        }
        qsort(lat, nlat, sizeof(*lat), cmp_u64);
        printf("{\"mode\": \"%s\", \"socket\": \"%s\", \"capacity_sectors\": %llu, \"blk_size\": %u, \"queues\": %u, "
               "\"depth\": %u, \"seconds\": %.3f, \"requests\": %llu, \"iops\": %.0f, \"reads\": %llu, \"writes\": %llu, "
               "\"flushes\": %llu, \"write_zeroes\": %llu, \"discards\": %llu, \"errors\": %llu, \"mismatches\": %llu, "
               "\"kicks_per_1000\": %.2f, \"p50_ns\": %llu, \"p99_ns\": %llu, \"features\": \"%#llx\", "
               "\"submitted\": %llu, \"completed\": %llu, \"duplicates\": %llu, \"missing\": %llu, "
               "\"reconnects\": %llu, \"inflight_at_loss\": %llu, \"region_at_loss\": %llu, \"out_of_order\": %llu}\n",
               mode, sock, (unsigned long long)capacity, blk_size, nq, depth, secs, done, (double)done / secs,
               (unsigned long long)reads, (unsigned long long)writes, (unsigned long long)flushes,
               (unsigned long long)zeroes, (unsigned long long)discards, (unsigned long long)errors,
               (unsigned long long)mismatches, done ? 1000.0 * (double)kicks / (double)done : 0.0,
               (unsigned long long)(nlat ? lat[nlat / 2] : 0), (unsigned long long)(nlat ? lat[nlat * 99 / 100] : 0),
               (unsigned long long)features, (unsigned long long)submitted, (unsigned long long)completed,
               (unsigned long long)duplicates, missing, (unsigned long long)reconnects,
               (unsigned long long)inflight_at_loss, (unsigned long long)region_at_loss,
               (unsigned long long)out_of_order);
        emu_close(&e);
        return errors || mismatches || duplicates || missing || !done ? 1 : 0;
}
