/* Unit tests: the io_uring file back end of vhost-user-blk (dataplane/blk_file.c) on real
 * files: data integrity with aligned and unaligned buffers, flush, discard and write
 * zeroes, the depth bound, what it refuses to open, and that reaping never waits. */
#include <criterion/criterion.h>

#include "blk_file.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define IMAGE_BYTES (1u << 20)

static char path[64];
static struct dp_blk_file *f;
static struct dp_blk_file_info info;
static int done_status[512];
static unsigned ndone;

static void make_image(const char *dir)
{
        int fd;

        snprintf(path, sizeof(path), "%s/elvis-blk-XXXXXX", dir);
        fd = mkstemp(path);
        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, IMAGE_BYTES), 0);
        close(fd);
}

static void open_image(bool readonly, unsigned depth)
{
        const char *why = "";
        struct dp_blk_file_opts o = { .path = path, .readonly = readonly, .depth = depth };

        cr_assert_eq(dp_blk_file_open(&o, &f, &info, &why), 0, "%s", why);
}

static void setup(void)
{
        make_image("/tmp");
        f = NULL;
        ndone = 0;
}

static void teardown(void)
{
        dp_blk_file_close(f);
        unlink(path);
}

TestSuite(blk_file, .init = setup, .fini = teardown);

static void on_done(void *tag, int status, void *arg)
{
        (void)arg;
        done_status[(uintptr_t)tag] = status;
        ndone++;
}

/* Waits (bounded) until n completions arrived: reaping itself never waits. */
static void reap_all(unsigned n)
{
        for (int i = 0; i < 5000 && ndone < n; i++) {
                if (!dp_blk_file_reap(f, on_done, NULL, 64))
                        usleep(1000);
        }
        cr_assert_eq(ndone, n, "completions: %u of %u", ndone, n);
}

static struct elvis_blk_req rw(uint32_t type, uint64_t sector, void *buf, uint32_t len, unsigned segs)
{
        struct elvis_blk_req r = { .type = type, .sector = sector, .len = len, .niov = segs };

        for (unsigned i = 0; i < segs; i++)     /* the last segment takes the remainder */
                r.iov[i] = (struct elvis_iov){ (uint8_t *)buf + i * (len / segs),
                                               i + 1 < segs ? len / segs : len - (segs - 1) * (len / segs) };
        return r;
}

static void io(uint32_t type, uint64_t sector, void *buf, uint32_t len, unsigned segs, int want)
{
        struct elvis_blk_req r = rw(type, sector, buf, len, segs);
        unsigned before = ndone;

        cr_assert_eq(dp_blk_file_submit(f, &r, (void *)(uintptr_t)before), 0);
        dp_blk_file_kick(f);
        reap_all(before + 1);
        cr_assert_eq(done_status[before], want, "type %u at sector %llu", type, (unsigned long long)sector);
}

Test(blk_file, what_is_written_reads_back_with_any_buffer_alignment)
{
        uint8_t *a, *b = malloc(65536 + 1), *un;

        open_image(false, 16);
        cr_assert_eq(info.capacity, IMAGE_BYTES / 512);
        cr_assert(info.direct, "ext4 takes O_DIRECT");
        cr_assert_eq(posix_memalign((void **)&a, 4096, 65536), 0);
        un = b + 1;      /* not aligned to anything: the bounce buffer's case */
        srandom(1405);
        for (int round = 0; round < 40; round++) {
                uint64_t sector = (uint64_t)(random() % (IMAGE_BYTES / 512 - 128)) & ~7ull;
                uint32_t len = 4096u * (1 + (uint32_t)(random() % 16));
                uint8_t *buf = round % 2 ? un : a;

                for (uint32_t k = 0; k < len; k++)
                        buf[k] = (uint8_t)random();
                uint8_t *copy = malloc(len);
                memcpy(copy, buf, len);
                io(ELVIS_BLK_T_OUT, sector, buf, len, round % 3 + 1, ELVIS_BLK_S_OK);
                memset(buf, 0, len);
                io(ELVIS_BLK_T_IN, sector, buf, len, (round + 1) % 3 + 1, ELVIS_BLK_S_OK);
                cr_assert_eq(memcmp(buf, copy, len), 0, "round %d: data differs", round);
                free(copy);
        }
        io(ELVIS_BLK_T_FLUSH, 0, NULL, 0, 0, ELVIS_BLK_S_OK);
        free(a);
        free(b);
}

Test(blk_file, discard_and_write_zeroes_read_back_as_zeros)
{
        uint8_t *buf;

        open_image(false, 4);
        cr_assert_eq(posix_memalign((void **)&buf, 4096, 16384), 0);
        memset(buf, 0xab, 16384);
        io(ELVIS_BLK_T_OUT, 64, buf, 16384, 1, ELVIS_BLK_S_OK);
        struct elvis_blk_req d = { .type = ELVIS_BLK_T_DISCARD, .sector = 64, .len = 8192 };
        cr_assert_eq(dp_blk_file_submit(f, &d, (void *)(uintptr_t)ndone), 0);
        dp_blk_file_kick(f);
        reap_all(ndone + 1);
        struct elvis_blk_req z = { .type = ELVIS_BLK_T_WRITE_ZEROES, .sector = 80, .len = 4096 };
        cr_assert_eq(dp_blk_file_submit(f, &z, (void *)(uintptr_t)ndone), 0);
        dp_blk_file_kick(f);
        reap_all(ndone + 1);
        cr_assert_eq(done_status[ndone - 1], ELVIS_BLK_S_OK);
        io(ELVIS_BLK_T_IN, 64, buf, 16384, 1, ELVIS_BLK_S_OK);
        for (int k = 0; k < 8192; k++)
                cr_assert_eq(buf[k], 0, "discarded byte %d", k);
        for (int k = 8192; k < 12288; k++)
                cr_assert_eq(buf[k], 0, "zeroed byte %d", k);
        for (int k = 12288; k < 16384; k++)
                cr_assert_eq(buf[k], 0xab, "kept byte %d", k);
        free(buf);
}

Test(blk_file, the_queue_depth_is_a_bound)
{
        static uint8_t buf[4][4096] __attribute__((aligned(4096)));

        open_image(false, 4);
        for (unsigned i = 0; i < 4; i++) {
                struct elvis_blk_req r = rw(ELVIS_BLK_T_IN, i * 8, buf[i], 4096, 1);
                cr_assert_eq(dp_blk_file_submit(f, &r, (void *)(uintptr_t)i), 0);
        }
        struct elvis_blk_req r = rw(ELVIS_BLK_T_IN, 0, buf[0], 4096, 1);
        cr_assert_eq(dp_blk_file_submit(f, &r, NULL), -EAGAIN, "a fifth request waits in the guest's ring");
        cr_assert_eq(dp_blk_file_inflight(f), 4);
        dp_blk_file_kick(f);
        reap_all(4);
        cr_assert_eq(dp_blk_file_inflight(f), 0);
        cr_assert_eq(dp_blk_file_submit(f, &r, (void *)(uintptr_t)4), 0, "room again");
        dp_blk_file_kick(f);
        reap_all(5);
}

Test(blk_file, reaping_an_idle_back_end_returns_at_once)
{
        open_image(false, 4);
        cr_assert_eq(dp_blk_file_reap(f, on_done, NULL, 64), 0);
        cr_assert_eq(ndone, 0);
}

Test(blk_file, a_short_read_is_an_io_error)
{
        static uint8_t buf[4096] __attribute__((aligned(4096)));

        open_image(false, 4);
        cr_assert_eq(truncate(path, 4096), 0, "the image shrank under the back end");
        io(ELVIS_BLK_T_IN, 64, buf, 4096, 1, ELVIS_BLK_S_IOERR);
}

Test(blk_file, a_read_only_image_takes_no_write)
{
        static uint8_t buf[4096] __attribute__((aligned(4096)));

        open_image(true, 4);
        cr_assert_not(info.discard);
        io(ELVIS_BLK_T_OUT, 0, buf, 4096, 1, ELVIS_BLK_S_IOERR);
}

Test(blk_file, buffered_when_asked_and_on_tmpfs_whatever_it_takes)
{
        static uint8_t buf[512];
        const char *why = "";
        struct dp_blk_file_opts o = { .path = path, .buffered = true };

        cr_assert_eq(dp_blk_file_open(&o, &f, &info, &why), 0, "%s", why);
        cr_assert_not(info.direct, "--buffered: the page cache");
        dp_blk_file_close(f);
        f = NULL;
        /* tmpfs takes O_DIRECT only from Linux 6.6: either way the data round trips */
        unlink(path);
        make_image("/dev/shm");
        open_image(false, 4);
        memset(buf, 7, sizeof(buf));
        io(ELVIS_BLK_T_OUT, 3, buf, 512, 1, ELVIS_BLK_S_OK);
        memset(buf, 0, sizeof(buf));
        io(ELVIS_BLK_T_IN, 3, buf, 512, 1, ELVIS_BLK_S_OK);
        cr_assert_eq(buf[511], 7);
}

Test(blk_file, links_directories_and_devices_are_refused)
{
        char link[80];
        const char *why = "";
        struct dp_blk_file_opts o = { .path = link };

        snprintf(link, sizeof(link), "%s.link", path);
        cr_assert_eq(symlink(path, link), 0);
        cr_assert_eq(dp_blk_file_open(&o, &f, &info, &why), -ELOOP);
        cr_assert(strstr(why, "symbolic link"), "%s", why);
        unlink(link);
        o.path = "/tmp";
        cr_assert_lt(dp_blk_file_open(&o, &f, &info, &why), 0);
        o.path = "/dev/null";
        cr_assert_eq(dp_blk_file_open(&o, &f, &info, &why), -EINVAL);
        cr_assert(strstr(why, "neither a regular file nor a block device"), "%s", why);
        o.path = path;
        o.depth = 1000;
        cr_assert_eq(dp_blk_file_open(&o, &f, &info, &why), -EINVAL);
        cr_assert_null(f);
}
