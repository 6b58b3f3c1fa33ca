/* The file back end of vhost-user-blk through io_uring: see blk_file.h. */
#include "blk_file.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define DEPTH_MAX 256u
#define DEPTH_DEFAULT 64u
#define CLOSE_WAIT_MS 1000

struct slot {
        void *tag;
        u32 type;
        u64 len;
        s64 want;                       /* the result that means success */
        u32 niov;
        struct elvis_iov guest[ELVIS_BLK_SEG_MAX];      /* an IN through the bounce buffer copies back here */
        struct iovec iov[ELVIS_BLK_SEG_MAX];
        void *bounce;                   /* aligned, ELVIS_BLK_MAX_REQ_BYTES, made on first need */
        bool bounced;
        bool busy;                      /* submitted, not reaped */
        bool forgotten;                 /* dp_blk_file_forget: the guest buffers are not ours any more */
};

struct dp_blk_file {
        int fd, efd;
        struct io_uring ring;
        struct dp_blk_file_info info;
        u32 mem_align, off_align;       /* O_DIRECT's alignment of buffers and of offsets/lengths */
        unsigned depth, queued, inflight, nfree;
        u16 *free;                      /* free slot indexes, a stack */
        struct slot *slots;
};

static int image_size(int fd, const struct stat *st, u64 *bytes, u32 *lbs)
{
        if (S_ISREG(st->st_mode)) {
                *bytes = (u64)st->st_size;
                *lbs = ELVIS_BLK_SECTOR_SIZE;
                return 0;
        }
        int ss = 0;
        if (ioctl(fd, BLKGETSIZE64, bytes) < 0 || ioctl(fd, BLKSSZGET, &ss) < 0)
                return -errno;
        *lbs = ss >= (int)ELVIS_BLK_SECTOR_SIZE ? (u32)ss : ELVIS_BLK_SECTOR_SIZE;
        return 0;
}

/* O_DIRECT's alignment from the file system (statx DIOALIGN, Linux 6.1), else the
 * logical block size for buffers and offsets alike. */
static void dio_alignment(struct dp_blk_file *f, u32 lbs)
{
        struct statx sx;

        f->mem_align = f->off_align = lbs;
        if (statx(f->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
            sx.stx_dio_offset_align) {
                f->mem_align = sx.stx_dio_mem_align ? sx.stx_dio_mem_align : lbs;
                f->off_align = sx.stx_dio_offset_align;
        }
}

int dp_blk_file_open(const struct dp_blk_file_opts *o, struct dp_blk_file **ret, struct dp_blk_file_info *info,
                     const char **why)
{
        unsigned depth = o->depth ? o->depth : DEPTH_DEFAULT;
        int flags = (o->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY;
        struct dp_blk_file *f;
        struct stat st;
        u64 bytes = 0;
        u32 lbs = ELVIS_BLK_SECTOR_SIZE;
        int r;

        if (depth > DEPTH_MAX) {
                *why = "queue depth must be 1 to 256";
                return -EINVAL;
        }
        f = calloc(1, sizeof(*f));
        if (!f) {
                *why = "out of memory";
                return -ENOMEM;
        }
        f->fd = f->efd = -1;
        f->info.direct = !o->buffered;
        if (o->use_fd) {
                int fl;

                /* O_DIRECT is ours to choose: the caller's open file takes it, where the
                 * file system allows it */
                f->fd = fcntl(o->fd, F_DUPFD_CLOEXEC, 3);
                fl = f->fd < 0 ? -1 : fcntl(f->fd, F_GETFL);
                if (fl < 0) {
                        r = -errno;
                        *why = "cannot use the image's file descriptor";
                        goto fail;
                }
                if (!o->readonly && (fl & O_ACCMODE) != O_RDWR) {
                        r = -EBADF;
                        *why = "the image's file descriptor is not open for writing";
                        goto fail;
                }
                if (f->info.direct && !(fl & O_DIRECT) && fcntl(f->fd, F_SETFL, fl | O_DIRECT) < 0)
                        f->info.direct = false;
                if (!f->info.direct && (fl & O_DIRECT) && o->buffered)
                        fcntl(f->fd, F_SETFL, fl & ~O_DIRECT);
                f->info.direct = fcntl(f->fd, F_GETFL) & O_DIRECT;
        } else {
                f->fd = open(o->path, flags | (f->info.direct ? O_DIRECT : 0));
                if (f->fd < 0 && errno == EINVAL && f->info.direct) {
                        /* the file system has no O_DIRECT (tmpfs): the page cache it is */
                        f->info.direct = false;
                        f->fd = open(o->path, flags);
                }
        }
        if (f->fd < 0) {
                r = -errno;
                *why = r == -ELOOP ? "the image is a symbolic link" : "cannot open the image";
                goto fail;
        }
        if (fstat(f->fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
                r = -EINVAL;
                *why = "the image is neither a regular file nor a block device";
                goto fail;
        }
        if ((r = image_size(f->fd, &st, &bytes, &lbs)) < 0) {
                *why = "cannot read the block device's size";
                goto fail;
        }
        dio_alignment(f, lbs);
        if (f->info.direct && f->off_align > lbs && f->off_align <= 4096)
                lbs = f->off_align;     /* the guest then issues what O_DIRECT takes */
        f->info.blk_size = lbs;
        f->info.capacity = (bytes / lbs) * (lbs / ELVIS_BLK_SECTOR_SIZE);
        f->info.block_device = S_ISBLK(st.st_mode);
        f->info.discard = f->info.write_zeroes = !o->readonly;
        if (!f->info.capacity) {
                r = -EINVAL;
                *why = "the image is smaller than one block";
                goto fail;
        }
        f->depth = depth;
        f->slots = calloc(depth, sizeof(*f->slots));
        f->free = calloc(depth, sizeof(*f->free));
        if (!f->slots || !f->free) {
                r = -ENOMEM;
                *why = "out of memory";
                goto fail;
        }
        for (unsigned i = 0; i < depth; i++)
                f->free[i] = (u16)(depth - 1 - i);
        f->nfree = depth;
        if ((r = io_uring_queue_init(depth, &f->ring, 0)) < 0) {
                *why = "cannot set up io_uring";
                free(f->slots);
                f->slots = NULL;
                goto fail;
        }
        *info = f->info;
        *ret = f;
        return 0;
fail:
        if (f->fd >= 0)
                close(f->fd);
        free(f->slots);
        free(f->free);
        free(f);
        return r;
}

static bool aligned(const struct dp_blk_file *f, const struct elvis_blk_req *r)
{
        for (u32 i = 0; i < r->niov; i++)
                if ((uintptr_t)r->iov[i].base % f->mem_align || r->iov[i].len % f->off_align)
                        return false;
        return true;
}

int dp_blk_file_submit(struct dp_blk_file *f, const struct elvis_blk_req *r, void *tag)
{
        struct io_uring_sqe *sqe;
        struct slot *s;
        u16 idx;
        u64 off = r->sector << ELVIS_BLK_SECTOR_SHIFT;
        bool data = r->type == ELVIS_BLK_T_IN || r->type == ELVIS_BLK_T_OUT;

        if (!f->nfree)
                return -EAGAIN;
        if (r->len > ELVIS_BLK_MAX_REQ_BYTES)
                return -EINVAL;
        sqe = io_uring_get_sqe(&f->ring);
        if (!sqe)
                return -EAGAIN;
        idx = f->free[f->nfree - 1];
        s = &f->slots[idx];
        s->tag = tag;
        s->type = r->type;
        s->len = r->len;
        s->bounced = data && f->info.direct && !aligned(f, r);
        if (s->bounced && !s->bounce &&
            posix_memalign(&s->bounce, f->mem_align > 4096 ? f->mem_align : 4096, ELVIS_BLK_MAX_REQ_BYTES)) {
                s->bounce = NULL;
                io_uring_prep_nop(sqe);         /* the sqe is taken: give it something harmless */
                sqe->user_data = UINT64_MAX;
                f->queued++;
                return -ENOMEM;
        }
        switch (r->type) {
        case ELVIS_BLK_T_IN:
        case ELVIS_BLK_T_OUT:
                s->niov = r->niov;
                s->want = (s64)r->len;
                if (s->bounced) {
                        memcpy(s->guest, r->iov, r->niov * sizeof(r->iov[0]));
                        if (r->type == ELVIS_BLK_T_OUT) {
                                u64 k = 0;
                                for (u32 i = 0; i < r->niov; i++) {
                                        memcpy((u8 *)s->bounce + k, r->iov[i].base, r->iov[i].len);
                                        k += r->iov[i].len;
                                }
                                io_uring_prep_write(sqe, f->fd, s->bounce, (unsigned)r->len, off);
                        } else {
                                io_uring_prep_read(sqe, f->fd, s->bounce, (unsigned)r->len, off);
                        }
                } else {
                        for (u32 i = 0; i < r->niov; i++)
                                s->iov[i] = (struct iovec){ r->iov[i].base, r->iov[i].len };
                        if (r->type == ELVIS_BLK_T_OUT)
                                io_uring_prep_writev(sqe, f->fd, s->iov, r->niov, off);
                        else
                                io_uring_prep_readv(sqe, f->fd, s->iov, r->niov, off);
                }
                break;
        case ELVIS_BLK_T_FLUSH:
                s->want = 0;
                io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
                break;
        case ELVIS_BLK_T_DISCARD:
        case ELVIS_BLK_T_WRITE_ZEROES: {
                /* a hole reads back as zeros in a file; a block device is told to zero */
                int mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
                if (r->type == ELVIS_BLK_T_WRITE_ZEROES && f->info.block_device && !r->unmap)
                        mode = FALLOC_FL_KEEP_SIZE | FALLOC_FL_ZERO_RANGE;
                s->want = 0;
                io_uring_prep_fallocate(sqe, f->fd, mode, (off_t)off, (off_t)r->len);
                break;
        }
        default:
                io_uring_prep_nop(sqe);
                sqe->user_data = UINT64_MAX;
                f->queued++;
                return -EINVAL;
        }
        /* Buffered I/O is not forced to io-wq: io_uring tries it without blocking first
         * (a page-cache hit is a copy, done here on the sidecore's core and budget) and
         * hands only what would block to its workers, so the submitting call still never
         * waits for the disk. Forcing every request through io-wq cost a thread switch per
         * request (depth-1 latency) and moved the copies onto unpinned worker threads. */
        io_uring_sqe_set_data64(sqe, idx);
        s->busy = true;
        s->forgotten = false;
        f->nfree--;
        f->queued++;
        return 0;
}

void dp_blk_file_kick(struct dp_blk_file *f)
{
        int n;

        if (!f->queued)
                return;
        n = io_uring_submit(&f->ring);
        if (n > 0) {
                f->inflight += (unsigned)n;
                f->queued -= (unsigned)n < f->queued ? (unsigned)n : f->queued;
        }
}

unsigned dp_blk_file_reap(struct dp_blk_file *f, void (*done)(void *tag, int status, void *arg), void *arg,
                          unsigned max)
{
        struct io_uring_cqe *cqe;
        unsigned n = 0;

        while (n < max && io_uring_peek_cqe(&f->ring, &cqe) == 0) {
                u64 idx = io_uring_cqe_get_data64(cqe);
                int32_t res = cqe->res;

                io_uring_cqe_seen(&f->ring, cqe);
                if (f->inflight)
                        f->inflight--;
                if (idx >= f->depth)
                        continue;       /* a filler nop */
                struct slot *s = &f->slots[idx];
                int status = res == s->want && !s->forgotten ? ELVIS_BLK_S_OK : ELVIS_BLK_S_IOERR;
                s->busy = false;
                if (status == ELVIS_BLK_S_OK && s->bounced && s->type == ELVIS_BLK_T_IN) {
                        u64 k = 0;
                        for (u32 i = 0; i < s->niov; i++) {
                                memcpy(s->guest[i].base, (u8 *)s->bounce + k, s->guest[i].len);
                                k += s->guest[i].len;
                        }
                }
                f->free[f->nfree++] = (u16)idx;
                done(s->tag, status, arg);
                n++;
        }
        return n;
}

void dp_blk_file_forget(struct dp_blk_file *f)
{
        for (unsigned i = 0; i < f->depth; i++)
                if (f->slots[i].busy)
                        f->slots[i].forgotten = true;
}

int dp_blk_file_eventfd(struct dp_blk_file *f)
{
        int r;

        if (f->efd >= 0)
                return f->efd;
        f->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (f->efd < 0)
                return -errno;
        if ((r = io_uring_register_eventfd(&f->ring, f->efd)) < 0) {
                close(f->efd);
                f->efd = -1;
                return r;
        }
        return f->efd;
}

bool dp_blk_file_release(struct dp_blk_file *f)
{
        bool clean;

        if (!f)
                return true;
        dp_blk_file_kick(f);
        clean = f->inflight == 0;
        /* the ring's teardown lets the kernel finish what is in flight on its own */
        io_uring_queue_exit(&f->ring);
        close(f->fd);
        if (f->efd >= 0)
                close(f->efd);
        if (clean) {
                for (unsigned i = 0; i < f->depth; i++)
                        free(f->slots[i].bounce);
                free(f->slots);
        }
        free(f->free);
        free(f);
        return clean;
}

unsigned dp_blk_file_inflight(const struct dp_blk_file *f)
{
        return f->inflight + f->queued;
}

void dp_blk_file_close(struct dp_blk_file *f)
{
        bool leak = false;

        if (!f)
                return;
        dp_blk_file_kick(f);
        /* bounce buffers may still be written by the kernel: wait a bounded time, and if
         * the disk does not answer, keep them (a leak, never a write into freed memory) */
        for (int waited = 0; f->inflight && waited < CLOSE_WAIT_MS; waited += 10) {
                struct __kernel_timespec ts = { 0, 10 * 1000 * 1000 };
                struct io_uring_cqe *cqe;

                if (io_uring_wait_cqe_timeout(&f->ring, &cqe, &ts) == 0) {
                        io_uring_cqe_seen(&f->ring, cqe);
                        f->inflight--;
                }
        }
        leak = f->inflight != 0;
        io_uring_queue_exit(&f->ring);
        close(f->fd);
        if (f->efd >= 0)
                close(f->efd);
        if (!leak) {
                for (unsigned i = 0; i < f->depth; i++)
                        free(f->slots[i].bounce);
                free(f->slots);
        }
        free(f->free);
        free(f);
}
