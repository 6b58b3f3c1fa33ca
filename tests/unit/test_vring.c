/* Unit tests: the virtqueue engine on rings built in process memory, the normal path,
 * notification suppression and every malformation a hostile guest can write. */
#include <criterion/criterion.h>

#include "elvis_vring.h"
#include "../lib/guest_mem.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define GPA 0x100000ull
#define MEM (1u << 20)
#define NUM 8u
#define DESC 0x0u
#define AVAIL 0x1000u
#define USED 0x2000u
#define BUF 0x10000u

static uint8_t *mem;
static struct elvis_vring_mem map;
static struct elvis_vring vr;
static struct elvis_chain chain;

static struct elvis_vring_desc *desc(unsigned i) { return (struct elvis_vring_desc *)(mem + DESC) + i; }
static uint16_t *avail_flags(void) { return (uint16_t *)(mem + AVAIL); }
static uint16_t *avail_idx(void) { return (uint16_t *)(mem + AVAIL + 2); }
static uint16_t *avail_ring(unsigned i) { return (uint16_t *)(mem + AVAIL + 4) + i; }
static uint16_t *used_event(void) { return avail_ring(NUM); }
static uint16_t *used_flags(void) { return (uint16_t *)(mem + USED); }
static uint16_t *used_idx(void) { return (uint16_t *)(mem + USED + 2); }
static uint32_t *used_elem(unsigned i) { return (uint32_t *)(mem + USED + 4) + 2 * i; }
static uint16_t *avail_event(void) { return (uint16_t *)(mem + USED + 4 + 8 * NUM); }

static void setup(void)
{
        const char *why = NULL;

        mem = guest_mem_map(&map, GPA, MEM);
        cr_assert_not_null(mem);
        cr_assert_eq(guest_ring_init(&vr, &map, mem, NUM, DESC, AVAIL, USED, &why), 0, "%s", why);
}

static void teardown(void)
{
        free(mem);
}

TestSuite(vring, .init = setup, .fini = teardown);

static void set_desc(unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
        *desc(i) = (struct elvis_vring_desc){ addr, len, flags, next };
}

static void offer(uint16_t head)
{
        uint16_t idx = *avail_idx();
        *avail_ring(idx % NUM) = head;
        *avail_idx() = (uint16_t)(idx + 1);
}

static void expect_error(enum elvis_chain_dir dir, int err, const char *needle)
{
        cr_assert_eq(elvis_vring_pop(&vr, &chain, dir), err);
        cr_assert_eq(vr.error, err, "the error is latched");
        cr_assert(strstr(vr.error_what, needle), "'%s' lacks '%s'", vr.error_what, needle);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, dir), err, "a stopped ring stays stopped");
}

Test(vring, pop_push_publish)
{
        set_desc(0, GPA + BUF, 12, ELVIS_VRING_DESC_F_NEXT, 1);
        set_desc(1, GPA + BUF + 100, 64, 0, 0);
        offer(0);
        cr_assert_eq(elvis_vring_pending(&vr), 1);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1);
        cr_assert_eq(chain.head, 0);
        cr_assert_eq(chain.nout, 2);
        cr_assert_eq(chain.out_len, 76);
        cr_assert_eq(chain.iov[1].base, mem + BUF + 100);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 0, "empty");
        cr_assert_eq(elvis_vring_push(&vr, 0, 0), 0);
        cr_assert_eq(*used_idx(), 0, "not visible before publish");
        cr_assert_eq(elvis_vring_publish(&vr), 0);
        cr_assert_eq(*used_idx(), 1);
        cr_assert_eq(used_elem(0)[0], 0);
}

Test(vring, writable_chain_and_indirect)
{
        struct elvis_vring_desc *table = (struct elvis_vring_desc *)(mem + 0x8000);

        table[0] = (struct elvis_vring_desc){ GPA + BUF, 12, ELVIS_VRING_DESC_F_WRITE | ELVIS_VRING_DESC_F_NEXT, 1 };
        table[1] = (struct elvis_vring_desc){ GPA + BUF + 4096, 1500, ELVIS_VRING_DESC_F_WRITE, 0 };
        set_desc(3, GPA + 0x8000, 32, ELVIS_VRING_DESC_F_INDIRECT, 0);
        offer(3);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_WRITE), 1);
        cr_assert_eq(chain.nin, 2);
        cr_assert_eq(chain.in_len, 1512);
        cr_assert_eq(chain.head, 3);
}

Test(vring, buffer_spanning_two_regions)
{
        const char *why;

        /* split the memory into two adjacent guest regions */
        map.nregions = 2;
        map.r[0].size = MEM / 2;
        map.r[1] = (struct elvis_mem_region){ .gpa = GPA + MEM / 2, .size = MEM / 2,
                                              .vmm_addr = (uint64_t)(uintptr_t)mem + MEM / 2, .base = mem + MEM / 2 };
        cr_assert_eq(elvis_mem_validate(&map, &why), 0);
        set_desc(0, GPA + MEM / 2 - 10, 30, 0, 0);
        offer(0);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1);
        cr_assert_eq(chain.nout, 2);
        cr_assert_eq(chain.iov[0].len, 10);
        cr_assert_eq(chain.iov[1].len, 20);
}

Test(vring, unpop_returns_chains)
{
        set_desc(0, GPA + BUF, 64, 0, 0);
        set_desc(1, GPA + BUF, 64, 0, 0);
        offer(0);
        offer(1);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1);
        elvis_vring_unpop(&vr, 2);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1);
        cr_assert_eq(chain.head, 0, "the same chains come back, in order");
}

Test(vring, event_idx_notifications)
{
        /* guest kicks suppressed: avail_event stays behind whatever the guest adds */
        elvis_vring_notify_disable(&vr);
        cr_assert_not(vr.notify_enabled);
        for (uint16_t old = 0; old < 4; old++)
                cr_assert_not(elvis_need_event(*avail_event(), (uint16_t)(old + 1), old), "guest would kick at %u", old);
        /* re-enabled: the next addition kicks; pending work is reported */
        cr_assert_not(elvis_vring_notify_enable(&vr));
        cr_assert(elvis_need_event(*avail_event(), 1, 0));
        set_desc(0, GPA + BUF, 64, 0, 0);
        offer(0);
        elvis_vring_notify_disable(&vr);
        cr_assert(elvis_vring_notify_enable(&vr), "work that arrived meanwhile is reported");

        /* interrupts: honour used_event */
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1);
        elvis_vring_push(&vr, 0, 0);
        elvis_vring_publish(&vr);
        cr_assert(elvis_vring_need_signal(&vr), "first completion signals");
        *used_event() = 5;      /* the guest wants an interrupt only after entry 5 */
        for (int i = 0; i < 3; i++) {
                elvis_vring_push(&vr, 0, 0);
                elvis_vring_publish(&vr);
                cr_assert_not(elvis_vring_need_signal(&vr), "used %u", *used_idx());
        }
        for (int i = 0; i < 2; i++)
                elvis_vring_push(&vr, 0, 0);
        elvis_vring_publish(&vr);
        cr_assert(elvis_vring_need_signal(&vr), "crossing used_event signals");
}

Test(vring, flag_notifications_without_event_idx)
{
        const char *why;

        cr_assert_eq(elvis_vring_init(&vr, &map, NUM, (uintptr_t)mem + DESC, (uintptr_t)mem + AVAIL,
                                      (uintptr_t)mem + USED, 0, false, false, &why), 0);
        elvis_vring_notify_disable(&vr);
        cr_assert_eq(*used_flags(), ELVIS_VRING_USED_F_NO_NOTIFY);
        elvis_vring_notify_enable(&vr);
        cr_assert_eq(*used_flags(), 0);
        set_desc(0, GPA + BUF, 64, 0, 0);
        offer(0);
        elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ);
        elvis_vring_push(&vr, 0, 0);
        elvis_vring_publish(&vr);
        *avail_flags() = ELVIS_VRING_AVAIL_F_NO_INTERRUPT;
        cr_assert_not(elvis_vring_need_signal(&vr));
        *avail_flags() = 0;
        cr_assert(elvis_vring_need_signal(&vr));
        elvis_vring_publish(&vr);
        cr_assert_not(elvis_vring_need_signal(&vr), "nothing new was published: no interrupt");
        /* indirect descriptors were not negotiated */
        set_desc(1, GPA + 0x8000, 32, ELVIS_VRING_DESC_F_INDIRECT, 0);
        offer(1);
        expect_error(ELVIS_CHAIN_READ, -EPROTO, "without VIRTIO_RING_F_INDIRECT_DESC");
}

Test(vring, hostile_descriptor_loop)
{
        set_desc(0, GPA + BUF, 64, ELVIS_VRING_DESC_F_NEXT, 1);
        set_desc(1, GPA + BUF, 64, ELVIS_VRING_DESC_F_NEXT, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -ELOOP, "loops");
}

Test(vring, hostile_chain_longer_than_ring)
{
        for (unsigned i = 0; i < NUM; i++)
                set_desc(i, GPA + BUF, 1, ELVIS_VRING_DESC_F_NEXT, (uint16_t)((i + 1) % NUM));
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -ELOOP, "longer than the ring");
}

Test(vring, hostile_next_out_of_ring)
{
        set_desc(0, GPA + BUF, 64, ELVIS_VRING_DESC_F_NEXT, 200);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EPROTO, "next is out of the ring");
}

Test(vring, hostile_indirect_out_of_memory)
{
        set_desc(0, GPA + MEM - 16, 64, ELVIS_VRING_DESC_F_INDIRECT, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EFAULT, "indirect table is outside");
}

Test(vring, hostile_indirect_nested)
{
        struct elvis_vring_desc *table = (struct elvis_vring_desc *)(mem + 0x8000);

        table[0] = (struct elvis_vring_desc){ GPA + 0x8000, 16, ELVIS_VRING_DESC_F_INDIRECT, 0 };
        set_desc(0, GPA + 0x8000, 16, ELVIS_VRING_DESC_F_INDIRECT, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EPROTO, "nested indirect");
}

Test(vring, hostile_indirect_bad_length)
{
        set_desc(0, GPA + 0x8000, 17, ELVIS_VRING_DESC_F_INDIRECT, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EPROTO, "multiple of 16");
}

Test(vring, hostile_indirect_loop)
{
        struct elvis_vring_desc *table = (struct elvis_vring_desc *)(mem + 0x8000);

        table[0] = (struct elvis_vring_desc){ GPA + BUF, 8, ELVIS_VRING_DESC_F_NEXT, 1 };
        table[1] = (struct elvis_vring_desc){ GPA + BUF, 8, ELVIS_VRING_DESC_F_NEXT, 0 };
        set_desc(0, GPA + 0x8000, 32, ELVIS_VRING_DESC_F_INDIRECT, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -ELOOP, "indirect descriptor chain loops");
}

Test(vring, hostile_buffer_outside_memory)
{
        set_desc(0, GPA + MEM - 10, 64, 0, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EFAULT, "outside guest memory");
}

Test(vring, hostile_buffer_below_memory)
{
        set_desc(0, 0x1000, 64, 0, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EFAULT, "outside guest memory");
}

Test(vring, hostile_length_wraps)
{
        set_desc(0, UINT64_MAX - 10, 64, 0, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EFAULT, "wraps");
}

Test(vring, hostile_avail_index_jump)
{
        *avail_idx() = NUM + 1;
        cr_assert_eq(elvis_vring_pending(&vr), -EPROTO);
        cr_assert(strstr(vr.error_what, "more than the ring size"));
}

Test(vring, hostile_head_out_of_ring)
{
        offer(NUM);
        expect_error(ELVIS_CHAIN_READ, -EPROTO, "avail ring entry is out of the ring");
}

Test(vring, hostile_readonly_receive_buffer)
{
        set_desc(0, GPA + BUF, 64, 0, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_WRITE, -EPROTO, "read-only buffer in a receive chain");
}

Test(vring, hostile_writable_transmit_buffer)
{
        set_desc(0, GPA + BUF, 64, ELVIS_VRING_DESC_F_WRITE, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EPROTO, "device-writable buffer in a transmit chain");
}

Test(vring, hostile_readable_after_writable)
{
        set_desc(0, GPA + BUF, 64, ELVIS_VRING_DESC_F_WRITE | ELVIS_VRING_DESC_F_NEXT, 1);
        set_desc(1, GPA + BUF, 64, 0, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_ANY, -EPROTO, "readable buffer after a writable one");
}

Test(vring, hostile_indirect_with_next)
{
        set_desc(0, GPA + 0x8000, 16, ELVIS_VRING_DESC_F_INDIRECT | ELVIS_VRING_DESC_F_NEXT, 1);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -EPROTO, "indirect descriptor inside a chain");
}

Test(vring, hostile_too_many_segments)
{
        struct elvis_vring_desc *table = (struct elvis_vring_desc *)(mem + 0x20000);

        /* 1024 table entries, each spanning the region split: 2048 segments */
        map.nregions = 2;
        map.r[0].size = MEM / 2;
        map.r[1] = (struct elvis_mem_region){ .gpa = GPA + MEM / 2, .size = MEM / 2,
                                              .vmm_addr = (uint64_t)(uintptr_t)mem + MEM / 2, .base = mem + MEM / 2 };
        for (unsigned i = 0; i < 1024; i++)
                table[i] = (struct elvis_vring_desc){ GPA + MEM / 2 - 1, 2, i < 1023 ? ELVIS_VRING_DESC_F_NEXT : 0,
                                                      (uint16_t)(i + 1) };
        set_desc(0, GPA + 0x20000, 1024 * 16, ELVIS_VRING_DESC_F_INDIRECT, 0);
        offer(0);
        expect_error(ELVIS_CHAIN_READ, -E2BIG, "too many segments");
}

Test(vring, init_rejects_bad_rings)
{
        struct elvis_vring v;
        const char *why;
        uintptr_t b = (uintptr_t)mem;

        cr_assert_eq(elvis_vring_init(&v, &map, 0, b, b + AVAIL, b + USED, 0, true, true, &why), -EINVAL);
        cr_assert_eq(elvis_vring_init(&v, &map, 3, b, b + AVAIL, b + USED, 0, true, true, &why), -EINVAL);
        cr_assert_eq(elvis_vring_init(&v, &map, 65536, b, b + AVAIL, b + USED, 0, true, true, &why), -EINVAL);
        cr_assert_eq(elvis_vring_init(&v, &map, 8, b + 8, b + AVAIL, b + USED, 0, true, true, &why), -EINVAL,
                     "misaligned descriptor table");
        cr_assert_eq(elvis_vring_init(&v, &map, 8, b + MEM - 64, b + AVAIL, b + USED, 0, true, true, &why), -EFAULT,
                     "descriptor table runs past memory");
        cr_assert_eq(elvis_vring_init(&v, &map, 8, b, b + AVAIL, 0x10, 0, true, true, &why), -EFAULT);
        cr_assert_eq(elvis_vring_init(&v, &map, 8, b, UINT64_MAX - 1, b + USED, 0, true, true, &why), -EFAULT);
        cr_assert_eq(elvis_vring_init(&v, &map, 32768, b, b + 0x80000, b + 0x90000, 0, true, true, &why), 0,
                     "%s", why);
}

Test(vring, memory_table_validation)
{
        struct elvis_vring_mem m = { 0 };
        const char *why;

        cr_assert_eq(elvis_mem_validate(&m, &why), -EINVAL);
        m.nregions = 2;
        m.r[0] = (struct elvis_mem_region){ .gpa = 0, .size = 4096, .vmm_addr = 1 << 20 };
        m.r[1] = (struct elvis_mem_region){ .gpa = 2048, .size = 4096, .vmm_addr = 2 << 20 };
        cr_assert_eq(elvis_mem_validate(&m, &why), -EINVAL);
        cr_assert(strstr(why, "overlap"));
        m.r[1].gpa = UINT64_MAX - 10;
        cr_assert_eq(elvis_mem_validate(&m, &why), -EINVAL);
        m.r[1].gpa = 4096;
        cr_assert_eq(elvis_mem_validate(&m, &why), 0);
        /* as many regions as vhost-net takes by default, not one more */
        m.nregions = ELVIS_MEM_MAX_REGIONS;
        for (unsigned i = 0; i < ELVIS_MEM_MAX_REGIONS; i++)
                m.r[i] = (struct elvis_mem_region){ .gpa = i * 8192ull, .size = 4096, .vmm_addr = (1ull << 30) + i * 4096 };
        cr_assert_eq(elvis_mem_validate(&m, &why), 0, "%s", why);
        cr_assert_eq(ELVIS_MEM_MAX_REGIONS, 64u);
        m.nregions = ELVIS_MEM_MAX_REGIONS + 1;
        cr_assert_eq(elvis_mem_validate(&m, &why), -EINVAL);
}

/* ---- the dirty log (live migration): vhost's layout, one bit per 4 KiB guest page ---- */

static bool bit(const uint8_t *log, uint64_t page)
{
        return log[page / 8] & (1u << (page % 8));
}

static unsigned bits_set(const uint8_t *log, size_t size)
{
        unsigned n = 0;

        for (size_t i = 0; i < size; i++)
                n += (unsigned)__builtin_popcount(log[i]);
        return n;
}

Test(vring, log_write_sets_the_pages_a_range_touches)
{
        uint8_t bytes[64] = { 0 };
        struct elvis_log log = { bytes, sizeof(bytes) };

        cr_assert_eq(elvis_log_write(&log, 0x1000, 1), 0);
        cr_assert(bit(bytes, 1));
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 1, "one byte at a page start: one page");
        memset(bytes, 0, sizeof(bytes));
        cr_assert_eq(elvis_log_write(&log, 0x1fff, 2), 0, "two bytes across a page boundary");
        cr_assert(bit(bytes, 1) && bit(bytes, 2));
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 2);
        memset(bytes, 0, sizeof(bytes));
        cr_assert_eq(elvis_log_write(&log, 0x7000, 0x1000), 0, "a whole page and not the next");
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 1);
        cr_assert(bit(bytes, 7));
        memset(bytes, 0, sizeof(bytes));
        /* pages 6 to 17 span three log bytes, each ORed whole */
        cr_assert_eq(elvis_log_write(&log, 0x6800, 12 * 0x1000 - 0x800), 0);
        for (uint64_t p = 0; p < 64 * 8; p++)
                cr_assert_eq(bit(bytes, p), p >= 6 && p <= 17, "page %llu", (unsigned long long)p);
        cr_assert_eq(elvis_log_write(&log, 0x123456, 0), 0, "nothing written, nothing logged");
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 12);
}

Test(vring, log_write_keeps_bits_already_set)
{
        uint8_t bytes[4] = { 0xa5, 0, 0, 0 };
        struct elvis_log log = { bytes, sizeof(bytes) };

        cr_assert_eq(elvis_log_write(&log, 0x1000, 1), 0);
        cr_assert_eq(bytes[0], 0xa7, "OR, never a store over the VMM's bits");
}

Test(vring, log_write_at_large_guest_addresses)
{
        /* a guest with memory above 4 GiB and 1 TiB: the byte index is gpa >> 15 */
        uint64_t gpa = (1ull << 40) + 5 * 4096 + 17;
        size_t size = (size_t)((gpa >> 15) + 1);
        uint8_t *bytes = calloc(1, size);
        struct elvis_log log = { bytes, size };

        cr_assert_not_null(bytes);
        cr_assert_eq(elvis_log_write(&log, gpa, 100), 0);
        cr_assert_eq(bytes[size - 1], 1u << 5);
        cr_assert_eq(bits_set(bytes, size), 1);
        cr_assert_eq(elvis_log_write(&log, 4ull << 30, 1), 0, "4 GiB exactly");
        cr_assert(bit(bytes, (4ull << 30) >> 12));
        free(bytes);
}

Test(vring, log_write_refuses_what_lies_outside_the_log)
{
        uint8_t bytes[3] = { 0 };
        struct elvis_log log = { bytes, 2 };      /* pages 0 to 15 */

        cr_assert_eq(elvis_log_write(&log, 16 * 4096, 1), -EFAULT, "first page beyond the log");
        cr_assert_eq(elvis_log_write(&log, 15 * 4096, 4097), -EFAULT, "a range running past its end");
        cr_assert_eq(bytes[2], 0, "nothing beyond the log is written");
        cr_assert_eq(elvis_log_write(&log, UINT64_MAX - 10, 100), -EFAULT, "a range that wraps");
        cr_assert_eq(elvis_log_write(NULL, 0, 1), -EFAULT, "no log");
        log.base = EV_UPTR_NULL;
        cr_assert_eq(elvis_log_write(&log, 0, 1), -EFAULT);
}

struct log_writer {
        struct elvis_log *log;
        unsigned first;
};

/* Each thread sets every 4th page from its own offset, so all four touch every byte. */
static void *set_quarter(void *arg)
{
        struct log_writer *w = arg;

        for (uint64_t p = w->first; p < w->log->size * 8; p += 4)
                if (elvis_log_write(w->log, p << 12, 1))
                        return (void *)1;
        return NULL;
}

Test(vring, log_writes_from_concurrent_sidecores_all_land)
{
        enum { SIZE = 1 << 16 };
        uint8_t *bytes = calloc(1, SIZE);
        struct elvis_log log = { bytes, SIZE };
        struct log_writer w[4];
        pthread_t t[4];

        cr_assert_not_null(bytes);
        for (unsigned i = 0; i < 4; i++) {
                w[i] = (struct log_writer){ &log, i };
                cr_assert_eq(pthread_create(&t[i], NULL, set_quarter, &w[i]), 0);
        }
        for (unsigned i = 0; i < 4; i++) {
                void *ret;
                cr_assert_eq(pthread_join(t[i], &ret), 0);
                cr_assert_null(ret);
        }
        for (size_t i = 0; i < SIZE; i++)
                cr_assert_eq(bytes[i], 0xff, "byte %zu lost a bit", i);
        free(bytes);
}

Test(vring, used_ring_writes_are_logged_through_the_vmms_address)
{
        uint8_t bytes[64] = { 0 };
        struct elvis_log log = { bytes, sizeof(bytes) };
        /* the VMM may give any guest address for the used ring's log: here page 100 */
        const uint64_t log_gpa = 100 * 4096;

        elvis_vring_set_log(&vr, &log, false, true, log_gpa);
        set_desc(0, GPA + BUF, 64, ELVIS_VRING_DESC_F_WRITE, 0);
        offer(0);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_WRITE), 1);
        cr_assert_eq(elvis_vring_log_chain(&vr, &chain, 64), 0);
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 0, "buffers are logged only with LOG_ALL");
        cr_assert_eq(elvis_vring_push(&vr, 0, 64), 0);
        cr_assert_eq(elvis_vring_publish(&vr), 0);
        cr_assert(bit(bytes, 100));
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 1);

        elvis_vring_set_log(&vr, &log, true, true, log_gpa);
        memset(bytes, 0, sizeof(bytes));
        set_desc(1, GPA + BUF + 0x1ff0, 0x20, ELVIS_VRING_DESC_F_WRITE, 0);
        offer(1);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_WRITE), 1);
        cr_assert_eq(elvis_vring_log_chain(&vr, &chain, 0x10), 0, "the first 16 bytes: one page");
        cr_assert(bit(bytes, (GPA + BUF + 0x1ff0) >> 12));
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 1);
        cr_assert_eq(elvis_vring_log_chain(&vr, &chain, 0x20), 0, "all 32: the next page too");
        cr_assert(bit(bytes, (GPA + BUF + 0x2000) >> 12));

        /* logging off: the ring goes on where it was, writing nothing to the log */
        elvis_vring_set_log(&vr, NULL, false, false, 0);
        memset(bytes, 0, sizeof(bytes));
        cr_assert_eq(elvis_vring_push(&vr, 1, 0x20), 0);
        cr_assert_eq(elvis_vring_publish(&vr), 0);
        cr_assert_eq(*used_idx(), 2, "no entry lost or repeated across the switches");
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 0);
}

Test(vring, a_used_ring_log_outside_the_log_stops_the_ring)
{
        uint8_t bytes[8] = { 0 };
        struct elvis_log log = { bytes, 4 };       /* pages 0 to 31 */

        elvis_vring_set_log(&vr, &log, false, true, 64ull * 4096);
        cr_assert_eq(elvis_vring_push(&vr, 0, 0), -EFAULT);
        cr_assert(strstr(vr.error_what, "dirty log"), "%s", vr.error_what);
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 0, "nothing written anywhere");
        cr_assert_eq(*used_idx(), 0);
}

Test(vring, a_used_ring_log_address_that_wraps_stops_the_ring)
{
        uint8_t bytes[8] = { 0 };
        struct elvis_log log = { bytes, sizeof(bytes) };

        /* the first used entry, at offset 4, would wrap to gpa 2: page 0, inside the log */
        elvis_vring_set_log(&vr, &log, false, true, UINT64_MAX - 1);
        cr_assert_eq(elvis_vring_push(&vr, 0, 0), -EFAULT);
        cr_assert(strstr(vr.error_what, "dirty log"), "%s", vr.error_what);
        cr_assert_eq(bits_set(bytes, sizeof(bytes)), 0, "no page marked for a wrapped address");
}

/* The prefetch hint reads ahead of the pop and changes nothing: whatever the guest wrote
 * ahead (a head out of the ring, a buffer outside memory, an indirect table, a zero
 * length), the ring's state and error stay as they were, and the pops that follow find
 * every chain and every error as they would have without it. */
Test(vring, prefetch_changes_nothing)
{
        set_desc(0, GPA + BUF, 76, 0, 0);
        set_desc(1, GPA + MEM + 4096, 64, 0, 0);              /* outside guest memory */
        set_desc(2, GPA + BUF + 256, 16, ELVIS_VRING_DESC_F_INDIRECT, 0);
        set_desc(3, GPA + BUF + 512, 0, 0, 0);
        offer(0);
        offer(3);
        offer(1);
        offer(2);
        *avail_ring(4) = 200;                                   /* a head out of the ring */
        *avail_idx() = 5;
        /* pending starts the new entries' descriptors on their way: the head out of the
         * ring is skipped there, not an error */
        cr_assert_eq(elvis_vring_pending(&vr), 5);
        cr_assert_eq(vr.error, 0, "pending's descriptor prefetch never stops the ring");
        for (uint16_t a = 0; a < 10; a++) {
                uint16_t last = vr.last_avail_idx, avail = vr.avail_idx;

                elvis_vring_prefetch(&vr, a);
                cr_assert_eq(vr.last_avail_idx, last);
                cr_assert_eq(vr.avail_idx, avail);
                cr_assert_eq(vr.error, 0, "a hint never stops the ring (ahead %u)", a);
        }
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1);
        cr_assert_eq(chain.head, 0);
        cr_assert_eq(chain.out_len, 76);
        elvis_vring_prefetch(&vr, 0);
        elvis_vring_prefetch(&vr, 2);
        cr_assert_eq(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 1, "the zero-length chain is still there");
        cr_assert_eq(chain.head, 3);
        cr_assert_eq(vr.error, 0);
        /* the buffer outside memory: the pop, not the hint, stops the ring */
        expect_error(ELVIS_CHAIN_READ, -EFAULT, "outside guest memory");
        elvis_vring_prefetch(&vr, 0);
        cr_assert_lt(elvis_vring_pop(&vr, &chain, ELVIS_CHAIN_READ), 0, "a stopped ring stays stopped");
}
