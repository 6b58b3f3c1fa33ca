/* Unit tests: the virtio-blk request model (dataplane/engine/elvis_blk.c) on rings built
 * in process memory: what a driver sends, and everything a hostile one can write. */
#include <criterion/criterion.h>

#include "elvis_blk.h"
#include "../lib/guest_mem.h"

#include <stdlib.h>
#include <string.h>

#define GPA 0x100000ull
#define MEM (1u << 22)
#define NUM 16u
#define DESC 0x0u
#define AVAIL 0x1000u
#define USED 0x2000u
#define HDR 0x4000u             /* request headers */
#define STATUS 0x5000u          /* status bytes */
#define DATA 0x10000u           /* data buffers */

static uint8_t *mem;
static struct elvis_vring_mem map;
static struct elvis_vring vr;
static struct elvis_chain chain;
static struct elvis_blk_req req;
static struct elvis_blk_disk disk;
static unsigned ndesc;

static void setup(void)
{
        const char *why = NULL;

        mem = guest_mem_map(&map, GPA, MEM);
        cr_assert_not_null(mem);
        cr_assert_eq(guest_ring_init(&vr, &map, mem, NUM, DESC, AVAIL, USED, &why), 0, "%s", why);
        disk = (struct elvis_blk_disk){ .capacity = 2048, .blk_size = 512, .num_queues = 1, .discard = true,
                                        .write_zeroes = true, .max_discard_sectors = 1024,
                                        .max_write_zeroes_sectors = 1024, .id = "elvis-disk-0" };
        ndesc = 0;
}

static void teardown(void)
{
        free(mem);
}

TestSuite(blk, .init = setup, .fini = teardown);

/* The driver's side: a chain of descriptors, offered and popped. */
struct seg {
        uint64_t off;   /* offset in mem */
        uint32_t len;
        bool writable;
};

static uint16_t *avail_idx(void) { return (uint16_t *)(mem + AVAIL + 2); }
static uint32_t *used_elem(unsigned i) { return (uint32_t *)(mem + USED + 4) + 2 * i; }

static int pop(const struct seg *s, unsigned n)
{
        unsigned head = ndesc;
        struct elvis_vring_desc *d = (struct elvis_vring_desc *)(mem + DESC);

        for (unsigned i = 0; i < n; i++, ndesc++)
                d[ndesc % NUM] = (struct elvis_vring_desc){ GPA + s[i].off, s[i].len,
                                                            (uint16_t)((s[i].writable ? ELVIS_VRING_DESC_F_WRITE : 0) |
                                                                       (i + 1 < n ? ELVIS_VRING_DESC_F_NEXT : 0)),
                                                            (uint16_t)((ndesc + 1) % NUM) };
        ((uint16_t *)(mem + AVAIL + 4))[*avail_idx() % NUM] = (uint16_t)(head % NUM);
        (*avail_idx())++;
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_ANY), 1);
        return elvis_blk_parse(&disk, &chain, &req);
}

static void header(uint32_t type, uint64_t sector)
{
        memcpy(mem + HDR, &type, 4);
        memset(mem + HDR + 4, 0, 4);
        memcpy(mem + HDR + 8, &sector, 8);
}

/* a request with data: header, len bytes at DATA, status */
static int request(uint32_t type, uint64_t sector, uint32_t len)
{
        struct seg s[3] = { { HDR, 16, false }, { DATA, len, type != ELVIS_BLK_T_OUT }, { STATUS, 1, true } };

        header(type, sector);
        mem[STATUS] = 0xff;
        if (!len) {
                s[1] = s[2];
                return pop(s, 2);
        }
        return pop(s, 3);
}

static void complete(int status, uint32_t written)
{
        cr_assert_eq(elvis_blk_complete(&vr, &req, (uint8_t)status, written), 0);
        cr_assert_eq(elvis_vring_publish(&vr), 0);
}

Test(blk, a_read_goes_to_the_back_end_and_completes_with_its_length)
{
        cr_assert_eq(request(ELVIS_BLK_T_IN, 8, 4096), ELVIS_BLK_S_OK);
        cr_assert_eq(req.type, ELVIS_BLK_T_IN);
        cr_assert_eq(req.sector, 8);
        cr_assert_eq(req.len, 4096);
        cr_assert_eq(req.niov, 1);
        cr_assert_eq(req.iov[0].base, mem + DATA);
        cr_assert_eq(req.status, mem + STATUS);
        complete(ELVIS_BLK_S_OK, 0);
        cr_assert_eq(mem[STATUS], ELVIS_BLK_S_OK);
        cr_assert_eq(used_elem(0)[1], 4097, "data and status written");
}

Test(blk, a_write_carries_its_readable_data)
{
        cr_assert_eq(request(ELVIS_BLK_T_OUT, 0, 1024), ELVIS_BLK_S_OK);
        cr_assert_eq(req.len, 1024);
        cr_assert_eq(req.iov[0].base, mem + DATA);
        complete(ELVIS_BLK_S_OK, 0);
        cr_assert_eq(used_elem(0)[1], 1, "only the status was written");
}

Test(blk, header_and_data_in_one_descriptor_any_layout)
{
        struct seg s[2] = { { HDR, 16 + 512, false }, { STATUS, 1, true } };

        header(ELVIS_BLK_T_OUT, 4);
        cr_assert_eq(pop(s, 2), ELVIS_BLK_S_OK);
        cr_assert_eq(req.len, 512);
        cr_assert_eq(req.iov[0].base, mem + HDR + 16);
}

Test(blk, a_header_split_across_descriptors_is_read_whole)
{
        struct seg s[3] = { { HDR, 8, false }, { HDR + 8, 8, false }, { STATUS, 1, true } };

        header(ELVIS_BLK_T_FLUSH, 0);
        cr_assert_eq(pop(s, 3), ELVIS_BLK_S_OK);
        cr_assert_eq(req.type, ELVIS_BLK_T_FLUSH);
}

Test(blk, get_id_is_answered_from_the_disk)
{
        cr_assert_eq(request(ELVIS_BLK_T_GET_ID, 0, ELVIS_BLK_ID_BYTES), ELVIS_BLK_S_OK);
        uint32_t w = 0;
        cr_assert_eq(elvis_blk_get_id(&disk, &req, &w), 0);
        cr_assert_eq(w, ELVIS_BLK_ID_BYTES);
        complete(ELVIS_BLK_S_OK, w);
        cr_assert_str_eq((char *)mem + DATA, "elvis-disk-0");
        cr_assert_eq(used_elem(0)[1], ELVIS_BLK_ID_BYTES + 1);
}

Test(blk, requests_beyond_the_disk_are_errors)
{
        cr_assert_eq(request(ELVIS_BLK_T_IN, 2048 - 7, 4096), ELVIS_BLK_S_IOERR, "last sector + 1");
        complete(ELVIS_BLK_S_IOERR, 0);
        cr_assert_eq(mem[STATUS], ELVIS_BLK_S_IOERR);
        cr_assert_eq(used_elem(0)[1], 1, "an error writes the status only");
        cr_assert_eq(request(ELVIS_BLK_T_IN, 2048 - 8, 4096), ELVIS_BLK_S_OK, "up to the last sector");
        cr_assert_eq(request(ELVIS_BLK_T_OUT, UINT64_MAX - 1, 1024), ELVIS_BLK_S_IOERR, "sector + length wraps");
        cr_assert_eq(request(ELVIS_BLK_T_IN, 1ull << 55, 512), ELVIS_BLK_S_IOERR);
}

Test(blk, lengths_must_be_whole_blocks)
{
        cr_assert_eq(request(ELVIS_BLK_T_IN, 0, 100), ELVIS_BLK_S_IOERR);
        disk.blk_size = 4096;
        disk.capacity = 2048;
        cr_assert_eq(request(ELVIS_BLK_T_OUT, 0, 512), ELVIS_BLK_S_IOERR, "a 4 KiB disk takes 4 KiB units");
        cr_assert_eq(request(ELVIS_BLK_T_OUT, 1, 4096), ELVIS_BLK_S_IOERR, "at block-aligned sectors");
        cr_assert_eq(request(ELVIS_BLK_T_OUT, 8, 4096), ELVIS_BLK_S_OK);
}

Test(blk, a_read_only_disk_refuses_every_write)
{
        disk.readonly = true;
        cr_assert_eq(request(ELVIS_BLK_T_OUT, 0, 512), ELVIS_BLK_S_IOERR);
        cr_assert_eq(request(ELVIS_BLK_T_IN, 0, 512), ELVIS_BLK_S_OK, "reads still work");
        cr_assert(elvis_blk_features(&disk) & (1ull << ELVIS_BLK_F_RO));
        cr_assert_not(elvis_blk_features(&disk) & (1ull << ELVIS_BLK_F_DISCARD), "no discard offered on it");
}

Test(blk, a_chain_without_a_writable_status_is_a_broken_driver)
{
        struct seg s[1] = { { HDR, 16, false } };

        header(ELVIS_BLK_T_IN, 0);
        cr_assert_eq(pop(s, 1), -EPROTO);
}

Test(blk, malformed_requests_are_answered_not_executed)
{
        struct seg shorthdr[2] = { { HDR, 8, false }, { STATUS, 1, true } };

        header(ELVIS_BLK_T_IN, 0);
        cr_assert_eq(pop(shorthdr, 2), ELVIS_BLK_S_IOERR, "header shorter than 16 bytes");
        cr_assert_eq(request(99, 0, 512), ELVIS_BLK_S_UNSUPP, "unknown type");
        cr_assert_eq(request(0x80000000u, 0, 0), ELVIS_BLK_S_UNSUPP, "legacy barrier");
        cr_assert_eq(request(ELVIS_BLK_T_FLUSH, 0, 512), ELVIS_BLK_S_IOERR, "a flush with data");
        cr_assert_eq(request(ELVIS_BLK_T_GET_ID, 0, 0), ELVIS_BLK_S_IOERR, "an id with no buffer");
        /* a write whose writable part is more than its status */
        struct seg w[3] = { { HDR, 16 + 512, false }, { DATA, 512, true }, { STATUS, 1, true } };
        header(ELVIS_BLK_T_OUT, 0);
        cr_assert_eq(pop(w, 3), ELVIS_BLK_S_IOERR);
}

Test(blk, too_many_segments_are_refused)
{
        struct elvis_chain c = { .head = 0, .nout = 1, .nin = ELVIS_BLK_SEG_MAX + 2 };

        header(ELVIS_BLK_T_IN, 0);
        c.iov[0] = (struct elvis_iov){ mem + HDR, 16 };
        c.out_len = 16;
        for (unsigned i = 0; i < ELVIS_BLK_SEG_MAX + 1; i++)
                c.iov[1 + i] = (struct elvis_iov){ mem + DATA + 512 * i, 512 };
        c.iov[ELVIS_BLK_SEG_MAX + 2] = (struct elvis_iov){ mem + STATUS, 1 };
        c.in_len = 512ull * (ELVIS_BLK_SEG_MAX + 1) + 1;
        cr_assert_eq(elvis_blk_parse(&disk, &c, &req), ELVIS_BLK_S_IOERR);
        c.nin--;
        c.iov[ELVIS_BLK_SEG_MAX + 1] = (struct elvis_iov){ mem + STATUS, 1 };
        c.in_len -= 512;
        cr_assert_eq(elvis_blk_parse(&disk, &c, &req), ELVIS_BLK_S_OK, "seg_max segments are fine");
        cr_assert_eq(req.niov, ELVIS_BLK_SEG_MAX);
}

static int range_request(uint32_t type, uint64_t sector, uint32_t sectors, uint32_t flags, unsigned nranges)
{
        struct seg s[2] = { { HDR, 16 + 16 * nranges, false }, { STATUS, 1, true } };

        header(type, 0);
        memcpy(mem + HDR + 16, &sector, 8);
        memcpy(mem + HDR + 24, &sectors, 4);
        memcpy(mem + HDR + 28, &flags, 4);
        return pop(s, 2);
}

Test(blk, discard_and_write_zeroes_take_one_checked_range)
{
        cr_assert_eq(range_request(ELVIS_BLK_T_DISCARD, 16, 64, 0, 1), ELVIS_BLK_S_OK);
        cr_assert_eq(req.sector, 16);
        cr_assert_eq(req.len, 64 * 512);
        cr_assert_eq(range_request(ELVIS_BLK_T_DISCARD, 16, 64, ELVIS_BLK_RANGE_F_UNMAP, 1), ELVIS_BLK_S_UNSUPP,
                     "unmap is not a discard flag");
        cr_assert_eq(range_request(ELVIS_BLK_T_WRITE_ZEROES, 16, 64, ELVIS_BLK_RANGE_F_UNMAP, 1), ELVIS_BLK_S_OK);
        cr_assert(req.unmap);
        cr_assert_eq(range_request(ELVIS_BLK_T_WRITE_ZEROES, 16, 64, 4, 1), ELVIS_BLK_S_UNSUPP, "reserved flags");
        cr_assert_eq(range_request(ELVIS_BLK_T_DISCARD, 16, 2048, 0, 1), ELVIS_BLK_S_IOERR, "above max sectors");
        cr_assert_eq(range_request(ELVIS_BLK_T_DISCARD, 2000, 64, 0, 1), ELVIS_BLK_S_IOERR, "beyond the disk");
        cr_assert_eq(range_request(ELVIS_BLK_T_DISCARD, 16, 64, 0, 2), ELVIS_BLK_S_IOERR, "more than one range");
        disk.discard = false;
        cr_assert_eq(range_request(ELVIS_BLK_T_DISCARD, 16, 64, 0, 1), ELVIS_BLK_S_UNSUPP, "not offered");
}

Test(blk, the_config_space_has_virtios_layout)
{
        uint8_t cfg[ELVIS_BLK_CONFIG_SIZE];
        uint64_t cap;
        uint32_t v;
        uint16_t q;

        disk.capacity = 0x123456789ull;
        disk.blk_size = 4096;
        disk.num_queues = 4;
        elvis_blk_config(&disk, cfg);
        memcpy(&cap, cfg, 8);
        cr_assert_eq(cap, 0x123456789ull);
        memcpy(&v, cfg + 12, 4);
        cr_assert_eq(v, ELVIS_BLK_SEG_MAX);
        memcpy(&v, cfg + 20, 4);
        cr_assert_eq(v, 4096);
        memcpy(&q, cfg + 34, 2);
        cr_assert_eq(q, 4);
        memcpy(&v, cfg + 40, 4);
        cr_assert_eq(v, 1, "one discard range");
        memcpy(&v, cfg + 44, 4);
        cr_assert_eq(v, 8, "discards aligned to blocks");
        cr_assert(elvis_blk_features(&disk) & (1ull << ELVIS_BLK_F_MQ));
        cr_assert(elvis_blk_features(&disk) & (1ull << ELVIS_BLK_F_FLUSH));
}

Test(blk, disk_descriptions_are_checked)
{
        const char *why;

        cr_assert_eq(elvis_blk_disk_check(&disk, &why), 0);
        disk.blk_size = 1000;
        cr_assert_eq(elvis_blk_disk_check(&disk, &why), -EINVAL);
        disk.blk_size = 4096;
        disk.capacity = 9;
        cr_assert_eq(elvis_blk_disk_check(&disk, &why), -EINVAL, "capacity not in whole blocks");
        disk.capacity = 8;
        disk.num_queues = 0;
        cr_assert_eq(elvis_blk_disk_check(&disk, &why), -EINVAL);
}

Test(blk, a_read_logs_the_pages_it_wrote_for_live_migration)
{
        size_t size = (GPA + MEM) >> 15;
        uint8_t *log = calloc(1, size);
        struct elvis_log l = { log, size };

        elvis_vring_set_log(&vr, &l, true, false, 0);
        cr_assert_eq(request(ELVIS_BLK_T_IN, 0, 8192), ELVIS_BLK_S_OK);
        complete(ELVIS_BLK_S_OK, 0);
        for (uint64_t a = GPA; a < GPA + MEM; a += 4096) {
                uint64_t pg = a >> 12;
                bool want = a == GPA + DATA || a == GPA + DATA + 4096 || a == GPA + STATUS;
                cr_assert_eq(!!(log[pg / 8] & (1u << (pg % 8))), want, "page %#llx", (unsigned long long)a);
        }
        free(log);
}
