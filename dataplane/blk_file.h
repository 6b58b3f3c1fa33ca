/* The file back end of vhost-user-blk: a raw image file or block device, driven through
 * io_uring so that a sidecore never blocks on a disk.
 *
 * One back end per disk, with its own ring: a slow disk fills only its own ring, so no
 * request waits behind another VM's I/O. Submissions are queued during a turn and handed
 * to the kernel once at its end (dp_blk_file_kick); io_uring tries buffered I/O without
 * blocking and hands what would block to its workers, so the submitting call never waits
 * for the disk either (a page-cache hit is copied in the call). Completions are
 * reaped without waiting (dp_blk_file_reap), by the sidecore, in its turns.
 *
 * O_DIRECT by default where the file system takes it (tmpfs does not: the back end says
 * so and uses the page cache). With O_DIRECT, a request whose guest buffers are not
 * aligned to the device goes through an aligned bounce buffer of the back end's.
 *
 * The queue depth is bounded (depth, at most 256): a full back end answers -EAGAIN and
 * the request stays in the guest's ring. */
#pragma once
#include "elvis_blk.h"

#include <stdbool.h>

struct dp_blk_file;

struct dp_blk_file_opts {
        const char *path;
        bool use_fd;            /* serve a duplicate of fd (opened by the caller); path is only shown */
        int fd;
        bool readonly;
        bool buffered;          /* no O_DIRECT even where it works */
        unsigned depth;         /* requests in flight, 1..256 (0: 64) */
};

/* What the back end found when it opened the image. */
struct dp_blk_file_info {
        u64 capacity;           /* 512-byte sectors, whole blocks */
        u32 blk_size;           /* logical block size: the device's, or 512 for a file */
        bool direct;            /* O_DIRECT in use */
        bool block_device;
        bool discard, write_zeroes;
};

/* Opens path (a regular file or a block device, never following a final symlink), or
 * duplicates o->fd, and sets up its ring. 0, or a negative errno with why. */
int dp_blk_file_open(const struct dp_blk_file_opts *o, struct dp_blk_file **ret, struct dp_blk_file_info *info,
                     const char **why);
/* Queues a validated request (elvis_blk_parse: IN, OUT, FLUSH, DISCARD, WRITE_ZEROES).
 * 0 queued, -EAGAIN the depth is used up (try later), other negative: answer IOERR now.
 * tag comes back with the completion. */
int dp_blk_file_submit(struct dp_blk_file *f, const struct elvis_blk_req *r, void *tag);
/* Hands queued requests to the kernel; never waits for the disk. */
void dp_blk_file_kick(struct dp_blk_file *f);
/* Reaps up to max completions without waiting: done(tag, status, arg) for each, status
 * an ELVIS_BLK_S_* value (a short read or write is an I/O error). Returns how many. */
unsigned dp_blk_file_reap(struct dp_blk_file *f, void (*done)(void *tag, int status, void *arg), void *arg,
                          unsigned max);
/* Requests handed to the kernel and not reaped yet. */
unsigned dp_blk_file_inflight(const struct dp_blk_file *f);
/* Every request in flight now is forgotten: its completion still comes back through
 * reap (as an I/O error) but copies nothing into the guest buffers it named. */
void dp_blk_file_forget(struct dp_blk_file *f);
/* An eventfd the kernel signals on each completion (for the sidecore's epoll), made on
 * first call; the back end owns it. -errno if the ring cannot have one. */
int dp_blk_file_eventfd(struct dp_blk_file *f);
/* Closes without waiting. False if requests were still in flight: then their buffers are
 * left allocated (the kernel may still write them) and so must every guest mapping they
 * named be (the caller keeps those reserved). */
bool dp_blk_file_release(struct dp_blk_file *f);
/* Waits for what is in flight (their completions are dropped: the guest's memory may be
 * gone), then closes. */
void dp_blk_file_close(struct dp_blk_file *f);
