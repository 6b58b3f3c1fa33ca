/* vhost-user-blk devices of the user data plane: the disk a device serves, the port of
 * the virtio-blk queue model (engine/elvis_blkq.h) on its back ends (the io_uring file
 * back end of blk_file.c, or null), and what keeps a late completion away from guest
 * memory that is gone.
 *
 * Requests in flight when a ring stops (GET_VRING_BASE, a reset, a disconnect). The
 * control thread never waits for a disk: the ring stops at once, what the disk already
 * finished is answered, the rest is abandoned (the model drops their completions, the back
 * end copies nothing for them). A guest that stops a ring with requests in flight gets no
 * answer for them, as after a reset, unless the front end keeps an inflight region
 * (INFLIGHT_SHMFD, below). A ring restarted in place (a new memory table: memory
 * hot-plug) keeps its requests, which complete into it.
 *
 * Inflight tracking (VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD). A disk completes out of
 * order, so a back end that dies (kill -9, a crash) with requests in flight would have
 * the front end restart the ring from the used index: a request popped before one that
 * completed later would never be fetched again, one completed and published would be
 * fetched and done twice. The front end keeps a region we format (GET_INFLIGHT_FD) and
 * hands it to the next back end (SET_INFLIGHT_FD); the queue model records in it every
 * head it pops, the used entries it writes and the index it publishes (inflight.h, the
 * spec's layout), and a ring that starts afresh executes again, oldest first, what the
 * region says is in flight (engine/elvis_blkq.h). The same holds for a ring stopped and
 * started again by the front end: its abandoned requests are executed again once the
 * disk gave the old copies back.
 *
 * A request the kernel still works on may name guest memory by its address in this
 * process, so while a disk holds requests a guest mapping the control thread gives up is
 * not unmapped: after a new memory table it stays mapped as it was (the old addresses
 * still reach the same guest pages, and kept requests complete through them); after a
 * reset or a disconnect it is replaced by an inaccessible reservation (nothing else can be
 * mapped at those addresses, a late write there fails instead of landing in someone
 * else's memory, and the guest's memory is released). Both go at the first memory change,
 * reset or removal after the disks gave everything back; a reservation stays for good if
 * a disk never does (address space only). */
#include "dp.h"

#include "blk_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DISK_DEPTH 128u         /* requests in flight per disk, over all its queues */
#define NULL_DEPTH 32u          /* slots per queue of the null back end (it never holds one) */

static struct dp_blkq *bq_of(struct elvis_blkq *q)
{
        return (struct dp_blkq *)((char *)q - offsetof(struct dp_blkq, q));
}

static void disk_id(struct dp_device *dev)
{
        size_t n = strlen(dev->id);

        /* the serial the guest sees (GET_ID): the device id, 20 bytes at most */
        memset(dev->disk.id, 0, sizeof(dev->disk.id));
        memcpy(dev->disk.id, dev->id, n < sizeof(dev->disk.id) ? n : sizeof(dev->disk.id));
}

static int open_queue(struct dp_device *dev, const struct elvis_dp_device *cfg, unsigned i,
                      struct dp_blk_file_info *info, const char **why)
{
        struct dp_qp *qp = &dev->qp[i];
        struct dp_blkq *b = calloc(1, sizeof(*b));
        unsigned depth = NULL_DEPTH;
        int r;

        if (!b) {
                *why = "out of memory";
                return -ENOMEM;
        }
        b->qp = qp;
        b->efd = -1;
        qp->bq = b;
        if (dev->backend == ELVIS_BACKEND_FILE) {
                struct dp_blk_file_opts o = { .path = cfg->path, .readonly = cfg->readonly };

                depth = DISK_DEPTH / dev->nqp;
                o.depth = depth;
                if (cfg->image_fd) {
                        o.use_fd = true;
                        o.fd = *cfg->image_fd;
                }
                if ((r = dp_blk_file_open(&o, &b->file, info, why)) < 0)
                        return r;
                if ((r = dp_blk_file_eventfd(b->file)) < 0) {
                        *why = "cannot have io_uring completions signalled";
                        return r;
                }
                b->efd = r;
        }
        b->slots = calloc(depth, sizeof(*b->slots));
        if (!b->slots) {
                *why = "out of memory";
                return -ENOMEM;
        }
        elvis_blkq_init(&b->q, &dev->disk, &dev->mem, b->slots, b->free, depth);
        qp->tx.ring = &b->q.vq;
        return 0;
}

int dp_blk_open(struct dp_device *dev, const struct elvis_dp_device *cfg)
{
        struct dp_blk_file_info info = { 0 };
        const char *why = "";
        int r = 0;

        snprintf(dev->path, sizeof(dev->path), "%s", cfg->path ? cfg->path : "");
        dev->disk.readonly = cfg->readonly;
        dev->disk.num_queues = (u16)dev->nqp;
        disk_id(dev);
        if (dev->backend == ELVIS_BACKEND_NULL) {
                if (!cfg->size_bytes || cfg->size_bytes % ELVIS_BLK_SECTOR_SIZE) {
                        log_error("VM %u device %s: a null disk needs a size in whole 512-byte sectors", dev->vm_id,
                                  dev->id);
                        return -EINVAL;
                }
                dev->disk.capacity = cfg->size_bytes / ELVIS_BLK_SECTOR_SIZE;
                dev->disk.blk_size = ELVIS_BLK_SECTOR_SIZE;
        } else if (!cfg->image_fd && (!cfg->path || !cfg->path[0])) {
                log_error("VM %u device %s: a file disk needs an image", dev->vm_id, dev->id);
                return -EINVAL;
        }
        for (unsigned i = 0; i < dev->nqp && r == 0; i++)
                r = open_queue(dev, cfg, i, &info, &why);
        if (r < 0) {
                log_error("VM %u device %s: disk '%s': %s: %s", dev->vm_id, dev->id, dev->path, why, strerror(-r));
                return r;
        }
        if (dev->backend == ELVIS_BACKEND_FILE) {
                dev->disk.capacity = info.capacity;
                dev->disk.blk_size = info.blk_size;
                dev->disk.discard = info.discard;
                dev->disk.write_zeroes = info.write_zeroes;
        } else {
                dev->disk.discard = dev->disk.write_zeroes = !cfg->readonly;
        }
        /* one range per request, of at most 4 MiB, in whole blocks */
        dev->disk.max_discard_sectors = dev->disk.max_write_zeroes_sectors =
                (ELVIS_BLK_MAX_REQ_BYTES / dev->disk.blk_size) * (dev->disk.blk_size / ELVIS_BLK_SECTOR_SIZE);
        if ((r = elvis_blk_disk_check(&dev->disk, &why)) < 0) {
                log_error("VM %u device %s: disk '%s': %s", dev->vm_id, dev->id, dev->path, why);
                return r;
        }
        log_info("VM %u device %s: disk '%s', %llu sectors of 512 bytes, blocks of %u, %s%s", dev->vm_id, dev->id,
                 dev->backend == ELVIS_BACKEND_NULL ? "(null)" : dev->path, (unsigned long long)dev->disk.capacity,
                 dev->disk.blk_size, dev->backend == ELVIS_BACKEND_NULL ? "null" : info.direct ? "O_DIRECT" : "buffered",
                 dev->disk.readonly ? ", read-only" : "");
        return 0;
}

bool dp_blk_close(struct dp_device *dev)
{
        bool clean = true;

        for (unsigned i = 0; i < ELVIS_MAX_QUEUES; i++) {
                struct dp_blkq *b = dev->qp[i].bq;

                if (!b)
                        continue;
                if (b->file && !dp_blk_file_release(b->file))
                        clean = false;
                free(b->slots);
                free(b->heads);
                free(b);
                dev->qp[i].bq = NULL;
        }
        if (!clean) {
                log_warning("VM %u device %s: the disk still held requests at removal; their memory stays reserved",
                            dev->vm_id, dev->id);
                return false;
        }
        dp_blk_unquarantine(dev, false);
        return true;
}

bool dp_blk_busy(const struct dp_device *dev) DP_NO_TSA
{
        for (unsigned i = 0; i < dev->nqp; i++)
                if (dev->qp[i].bq && dev->qp[i].bq->q.inflight)
                        return true;
        return false;
}

void dp_blk_unmap(struct dp_device *dev, const struct dp_region_map *m, enum dp_blk_keep keep)
{
        struct dp_region_map *n;

        if (!m->addr)
                return;
        if (keep != DP_BLK_UNMAP && (n = realloc(dev->quarantine, (dev->nquarantine + 1) * sizeof(*n)))) {
                dev->quarantine = n;
                if (keep == DP_BLK_KEEP_MAPPED ||
                    mmap(m->addr, m->len, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) !=
                            MAP_FAILED) {
                        n[dev->nquarantine++] = *m;
                        log_debug("VM %u device %s: %zu bytes of old guest memory %s while a disk holds requests",
                                  dev->vm_id, dev->id, (size_t)m->len,
                                  keep == DP_BLK_KEEP_MAPPED ? "kept mapped" : "reserved");
                        return;
                }
        }
        if (keep != DP_BLK_UNMAP)
                log_error("VM %u device %s: cannot keep guest memory a disk request may name: %s", dev->vm_id,
                          dev->id, strerror(errno));
        if (munmap(m->addr, m->len) < 0)
                log_error("cannot unmap %zu bytes of a VMM's memory: %s", (size_t)m->len, strerror(errno));
}

void dp_blk_unquarantine(struct dp_device *dev, bool busy)
{
        if (busy)
                return;
        for (unsigned i = 0; i < dev->nquarantine; i++)
                munmap(dev->quarantine[i].addr, dev->quarantine[i].len);
        free(dev->quarantine);
        dev->quarantine = NULL;
        dev->nquarantine = 0;
}

void dp_blk_config(const struct dp_device *dev, uint8_t out[ELVIS_BLK_CONFIG_SIZE])
{
        elvis_blk_config(&dev->disk, out);
}

void dp_blk_vq_refresh(struct dp_qp *qp, bool want)
{
        struct dp_device *dev = qp->dev;
        struct elvis_blkq *q = &qp->bq->q;
        struct dp_guard *g = &dp_guard_tls;
        const char *why = "";
        int r;

        dp_assert_held(&qp->lock);
        q->features = dev->features;
        /* completions answered before the ring stops touch guest memory, which may have shrunk */
        g->dev = dev;
        if (sigsetjmp(g->jb, 0)) {
                g->armed = 0;
                why = "guest memory vanished under the ring (SIGBUS)";
                q->vq.live = false;
                r = elvis_vring_fail(&q->vq.vr, -EFAULT, why);
        } else {
                g->armed = 1;
                r = elvis_blkq_refresh(q, want, &why);
                g->armed = 0;
        }
        if (r < 0) {
                log_warning("VM %u device %s queue %u: ring rejected: %s", dev->vm_id, dev->id, qp->index, why);
                elvis_blkq_error(q);
        }
}

/* ---- the port ---- */

u64 elvis_blkq_port_now(void)
{
        return dp_now_ns();
}

void elvis_blkq_port_notify(struct elvis_blkq *q, unsigned int sig)
{
        struct dp_qp *qp = bq_of(q)->qp;

        dp_assert_held(&qp->lock);
        atomic_fetch_or(&qp->signal, sig);
}

void elvis_blkq_port_changed(struct elvis_blkq *q, bool stopped)
{
        struct dp_qp *qp = bq_of(q)->qp;
        struct dp_device *dev = qp->dev;

        dp_assert_held(&qp->lock);
        if (stopped) {
                uint64_t now = dp_now_ns();

                if (now - qp->err_log_ns > 1000000000ull || !qp->err_log_ns) {
                        qp->err_log_ns = now;
                        log_warning("VM %u device %s queue %u: ring error, queue stopped: %s (%s)", dev->vm_id, dev->id,
                                    qp->index, q->vq.vr.error_what ? q->vq.vr.error_what : "?",
                                    strerror(-q->vq.vr.error));
                }
                atomic_fetch_add(&qp->gen, 1);
        }
        dp_qp_publish(qp);
}

int elvis_blkq_port_submit(struct elvis_blkq *q, const struct elvis_blk_req *r, u32 tag, u8 *status)
{
        struct dp_blkq *b = bq_of(q);

        if (b->file)
                return dp_blk_file_submit(b->file, r, (void *)(uintptr_t)tag);
        /* null: reads are zeroes, the rest is done as soon as asked */
        if (r->type == ELVIS_BLK_T_IN)
                for (u32 i = 0; i < r->niov; i++)
                        memset(r->iov[i].base, 0, r->iov[i].len);
        *status = ELVIS_BLK_S_OK;
        return 1;
}

void elvis_blkq_port_kick(struct elvis_blkq *q)
{
        struct dp_blkq *b = bq_of(q);

        if (b->file)
                dp_blk_file_kick(b->file);
}

static void file_done(void *tag, int status, void *arg)
{
        elvis_blkq_done(arg, (u32)(uintptr_t)tag, (u8)status);
}

unsigned int elvis_blkq_port_reap(struct elvis_blkq *q, unsigned int max)
{
        struct dp_blkq *b = bq_of(q);

        return b->file ? dp_blk_file_reap(b->file, file_done, q, max) : 0;
}

void elvis_blkq_port_track(struct elvis_blkq *q, enum elvis_blkq_track what, u16 v)
{
        struct dp_inflight *t = &bq_of(q)->inflight;

        dp_assert_held(&bq_of(q)->qp->lock);
        switch (what) {
        case ELVIS_BLKQ_POPPED:
                dp_inflight_popped(t, v);
                break;
        case ELVIS_BLKQ_UNPOPPED:
                dp_inflight_unpopped(t, v);
                break;
        case ELVIS_BLKQ_DONE:
                dp_inflight_done(t, v);
                break;
        case ELVIS_BLKQ_PUBLISHED:
                dp_inflight_published(t, v);
                break;
        }
}

int elvis_blkq_port_recover(struct elvis_blkq *q, u16 guest_used, const u16 **ret_heads, u32 *ret_n,
                            const char **why)
{
        struct dp_blkq *b = bq_of(q);
        struct dp_qp *qp = b->qp;
        int n;

        dp_assert_held(&qp->lock);
        if (!b->inflight.r)
                return 0;
        if (q->vq.num != b->inflight.num) {
                *why = "the inflight region is for rings of another size";
                return -EINVAL;
        }
        n = dp_inflight_recover(&b->inflight, guest_used, b->heads, why);
        if (n < 0)
                return n;
        if (n)
                log_info("VM %u device %s queue %u: %d requests a back end before left in flight are executed again",
                         qp->dev->vm_id, qp->dev->id, qp->index, n);
        *ret_heads = b->heads;
        *ret_n = (u32)n;
        return 1;
}

int dp_blk_inflight_attach(struct dp_qp *qp, void *region, uint16_t queue_size)
{
        struct dp_blkq *b = qp->bq;
        u16 *heads;

        dp_assert_held(&qp->lock);
        if (!b)
                return 0;
        if (!region) {
                memset(&b->inflight, 0, sizeof(b->inflight));
                return 0;
        }
        heads = realloc(b->heads, (size_t)queue_size * sizeof(*heads));
        if (!heads)
                return -ENOMEM;
        b->heads = heads;
        dp_inflight_attach(&b->inflight, region, (uint16_t)qp->index, queue_size);
        return 0;
}

void elvis_blkq_port_abandon(struct elvis_blkq *q)
{
        struct dp_blkq *b = bq_of(q);

        if (b->file)
                dp_blk_file_forget(b->file);
}
