/* Split-virtqueue engine: validation-first descriptor walking, used ring publication,
 * notification suppression (VRING_USED_F_NO_NOTIFY / EVENT_IDX). */
#include "elvis_vring.h"

#define AVAIL_FLAGS 0
#define AVAIL_IDX 2
#define AVAIL_RING 4
#define USED_FLAGS 0
#define USED_IDX 2
#define USED_RING 4

int elvis_vring_fail(struct elvis_vring *vr, int err, const char *what)
{
        if (!vr->error) {
                vr->error = err;
                vr->error_what = what;
        }
        return vr->error;
}

int elvis_mem_validate(const struct elvis_vring_mem *mem, const char **why)
{
        if (mem->nregions == 0 || mem->nregions > ELVIS_MEM_MAX_REGIONS) {
                *why = "memory table must have 1 to 64 regions";
                return -EINVAL;
        }
        for (u32 i = 0; i < mem->nregions; i++) {
                const struct elvis_mem_region *r = &mem->r[i];
                if (r->size == 0 || r->gpa + r->size < r->gpa || r->vmm_addr + r->size < r->vmm_addr) {
                        *why = "memory region is empty or wraps around";
                        return -EINVAL;
                }
                for (u32 k = 0; k < i; k++) {
                        const struct elvis_mem_region *o = &mem->r[k];
                        if (r->gpa < o->gpa + o->size && o->gpa < r->gpa + r->size) {
                                *why = "memory regions overlap in guest physical space";
                                return -EINVAL;
                        }
                }
        }
        return 0;
}

int elvis_log_write(const struct elvis_log *log, u64 gpa, u64 len)
{
        u64 page, last;

        if (!len)
                return 0;
        if (!log || log->base == EV_UPTR_NULL || gpa + len - 1 < gpa)
                return -EFAULT;
        page = gpa >> ELVIS_LOG_PAGE_SHIFT;
        last = (gpa + len - 1) >> ELVIS_LOG_PAGE_SHIFT;
        /* the data this covers is visible before its bits */
        ev_wmb();
        while (page <= last) {
                u64 byte = page >> 3;
                u8 bits = 0;

                if (byte >= log->size)
                        return -EFAULT;
                /* every page of this byte in the range: one atomic OR */
                do {
                        bits |= (u8)(1u << (page & 7));
                        page++;
                } while (page <= last && (page & 7));
                if (ev_log_or8(ev_uptr_add(log->base, byte), bits))
                        return -EFAULT;
        }
        return 0;
}

void elvis_vring_set_log(struct elvis_vring *vr, const struct elvis_log *log, bool log_data, bool log_used,
                         u64 log_used_gpa)
{
        vr->log = log;
        vr->log_data = log && log_data;
        vr->log_used = log && log_used;
        vr->log_used_gpa = log_used_gpa;
}

/* Logs a write of len bytes at offset off of the used ring. */
static int log_used(struct elvis_vring *vr, u64 off, u64 len)
{
        if (ev_likely(!vr->log_used))
                return 0;
        /* an address the VMM gave that wraps marks no page: an error, like one beyond the log */
        if (vr->log_used_gpa + off < vr->log_used_gpa || elvis_log_write(vr->log, vr->log_used_gpa + off, len))
                return elvis_vring_fail(vr, -EFAULT, "cannot write the dirty log");
        return 0;
}

/* The guest physical address of an accessor-space address inside one region. */
static int gpa_of(const struct elvis_vring_mem *mem, ev_uptr p, u64 *gpa)
{
        u64 a = ev_uptr_to_u64(p);

        for (u32 i = 0; i < mem->nregions; i++) {
                u64 b = ev_uptr_to_u64(mem->r[i].base);

                if (a >= b && a - b < mem->r[i].size) {
                        *gpa = mem->r[i].gpa + (a - b);
                        return 0;
                }
        }
        return -EFAULT;
}

int elvis_vring_log_iov(struct elvis_vring *vr, const struct elvis_iov *iov, u32 n, u64 len)
{
        if (ev_likely(!vr->log_data))
                return 0;
        for (u32 i = 0; i < n && len; i++) {
                u64 k = iov[i].len < len ? iov[i].len : len, gpa;

                if (gpa_of(vr->mem, iov[i].base, &gpa) || elvis_log_write(vr->log, gpa, k))
                        return elvis_vring_fail(vr, -EFAULT, "cannot write the dirty log");
                len -= k;
        }
        return 0;
}

int elvis_vring_log_chain(struct elvis_vring *vr, const struct elvis_chain *c, u64 len)
{
        return elvis_vring_log_iov(vr, &c->iov[c->nout], c->nin, len);
}

static const struct elvis_mem_region *find_gpa(const struct elvis_vring_mem *mem, u64 gpa)
{
        for (u32 i = 0; i < mem->nregions; i++)
                if (gpa >= mem->r[i].gpa && gpa - mem->r[i].gpa < mem->r[i].size)
                        return &mem->r[i];
        return NULL;
}

int elvis_mem_map(const struct elvis_vring_mem *mem, u64 gpa, u64 len, struct elvis_iov *iov, u32 max, u32 *ret_n)
{
        u32 n = 0;

        if (gpa + len < gpa)
                return -EFAULT;
        while (len) {
                const struct elvis_mem_region *r = find_gpa(mem, gpa);
                u64 off, chunk;

                if (!r)
                        return -EFAULT;
                if (n == max)
                        return -E2BIG;
                off = gpa - r->gpa;
                chunk = r->size - off;
                if (chunk > len)
                        chunk = len;
                if (chunk > 0xffffffffu)
                        chunk = 0xffffffffu;
                iov[n].base = ev_uptr_add(r->base, off);
                iov[n].len = (u32)chunk;
                n++;
                gpa += chunk;
                len -= chunk;
        }
        *ret_n = n;
        return 0;
}

int elvis_mem_map_vmm(const struct elvis_vring_mem *mem, u64 vmm_addr, u64 len, ev_uptr *ret)
{
        if (vmm_addr + len < vmm_addr)
                return -EFAULT;
        for (u32 i = 0; i < mem->nregions; i++) {
                const struct elvis_mem_region *r = &mem->r[i];
                if (vmm_addr >= r->vmm_addr && vmm_addr - r->vmm_addr <= r->size &&
                    len <= r->size - (vmm_addr - r->vmm_addr)) {
                        *ret = ev_uptr_add(r->base, vmm_addr - r->vmm_addr);
                        return 0;
                }
        }
        return -EFAULT;
}

int elvis_vring_init(struct elvis_vring *vr, const struct elvis_vring_mem *mem, u32 num, u64 desc, u64 avail,
                     u64 used, u16 base, bool event_idx, bool indirect, const char **why)
{
        struct elvis_vring v;
        u16 used_idx;

        memset(&v, 0, sizeof(v));
        if (num == 0 || num > ELVIS_VRING_MAX_NUM || (num & (num - 1))) {
                *why = "ring size must be a power of two between 1 and 32768";
                return -EINVAL;
        }
        if ((desc & 15) || (avail & 1) || (used & 3)) {
                *why = "ring addresses are misaligned";
                return -EINVAL;
        }
        if (elvis_mem_map_vmm(mem, desc, 16ull * num, &v.desc) ||
            elvis_mem_map_vmm(mem, avail, 6ull + 2ull * num, &v.avail) ||
            elvis_mem_map_vmm(mem, used, 6ull + 8ull * num, &v.used)) {
                *why = "ring addresses are outside guest memory";
                return -EFAULT;
        }
        if (ev_load16(ev_uptr_add(v.used, USED_IDX), &used_idx)) {
                *why = "cannot read the used ring";
                return -EFAULT;
        }
        v.num = (u16)(num == 32768 ? 32768 : num);
        v.mem = mem;
        v.last_avail_idx = base;
        v.avail_idx = base;
        v.used_idx = used_idx;
        v.published_used = used_idx;
        v.event_idx = event_idx;
        v.indirect = indirect;
        v.notify_enabled = true;
        *vr = v;
        return 0;
}

/* num is a power of two up to 32768; as u16 32768 is 0x8000 and the mask still works. */
static inline u16 slot(const struct elvis_vring *vr, u16 idx)
{
        return (u16)(idx & (u16)(vr->num - 1));
}

/* The avail ring's entry for index idx: the head the guest offered there. */
static inline int avail_head(const struct elvis_vring *vr, u16 idx, u16 *head)
{
        return ev_load16(ev_uptr_add(vr->avail, AVAIL_RING + 2u * slot(vr, idx)), head);
}

/* How many newly published chains' first descriptors pending() starts fetching. */
#define PREFETCH_DESCS 32

/* The descriptors of the entries the guest just published, [from, to), start on their way
 * into the cache at once: each was written by the guest on another CPU, and a walk of one
 * chain after another would wait for every miss in turn (a profile of the forward path had
 * a fifth of its samples there). An entry is read, never trusted: one out of the ring is
 * skipped and left to the pop. */
static void prefetch_descs(const struct elvis_vring *vr, u16 from, u16 to)
{
        u16 n = (u16)(to - from);

        if (n > PREFETCH_DESCS)
                n = PREFETCH_DESCS;
        for (u16 k = 0; k < n; k++) {
                u16 head;

                if (avail_head(vr, (u16)(from + k), &head) || head >= vr->num)
                        return;
                ev_prefetch(ev_uptr_add(vr->desc, (u64)head * sizeof(struct elvis_vring_desc)));
        }
}

int elvis_vring_pending(struct elvis_vring *vr)
{
        u16 idx, n;

        if (ev_unlikely(vr->error))
                return vr->error;
        if (ev_load16(ev_uptr_add(vr->avail, AVAIL_IDX), &idx))
                return elvis_vring_fail(vr, -EFAULT, "cannot read avail index");
        n = (u16)(idx - vr->last_avail_idx);
        if (ev_unlikely(n > vr->num))
                return elvis_vring_fail(vr, -EPROTO, "avail index moved by more than the ring size");
        prefetch_descs(vr, vr->avail_idx, idx);
        vr->avail_idx = idx;
        return n;
}

static int add_buffer(struct elvis_vring *vr, struct elvis_chain *c, const struct elvis_vring_desc *d,
                      enum elvis_chain_dir dir)
{
        u64 addr = ev_le64(d->addr);
        u32 len = ev_le32(d->len);
        bool writable = ev_le16(d->flags) & ELVIS_VRING_DESC_F_WRITE;
        u32 n, room = ELVIS_CHAIN_MAX_IOV - c->nout - c->nin;
        int r;

        if (writable && dir == ELVIS_CHAIN_READ)
                return elvis_vring_fail(vr, -EPROTO, "device-writable buffer in a transmit chain");
        if (!writable && dir == ELVIS_CHAIN_WRITE)
                return elvis_vring_fail(vr, -EPROTO, "read-only buffer in a receive chain");
        if (!writable && c->nin)
                return elvis_vring_fail(vr, -EPROTO, "readable buffer after a writable one");
        if (len == 0)
                return 0;
        if (addr + len < addr)
                return elvis_vring_fail(vr, -EFAULT, "buffer address plus length wraps around");
        r = elvis_mem_map(vr->mem, addr, len, &c->iov[c->nout + c->nin], room, &n);
        if (r == -E2BIG)
                return elvis_vring_fail(vr, -E2BIG, "descriptor chain has too many segments");
        if (r < 0)
                return elvis_vring_fail(vr, -EFAULT, "buffer is outside guest memory");
        if (writable) {
                c->nin += n;
                c->in_len += len;
        } else {
                c->nout += n;
                c->out_len += len;
        }
        return 0;
}

static int walk_indirect(struct elvis_vring *vr, struct elvis_chain *c, const struct elvis_vring_desc *ind,
                         enum elvis_chain_dir dir)
{
        u64 addr = ev_le64(ind->addr);
        u32 len = ev_le32(ind->len), count, i = 0, seen = 0;
        struct elvis_iov seg;
        u32 nseg;

        if (!vr->indirect)
                return elvis_vring_fail(vr, -EPROTO, "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
        if (ev_le16(ind->flags) & ELVIS_VRING_DESC_F_NEXT)
                return elvis_vring_fail(vr, -EPROTO, "indirect descriptor with NEXT set");
        if (len == 0 || len % sizeof(struct elvis_vring_desc))
                return elvis_vring_fail(vr, -EPROTO, "indirect table length is not a multiple of 16");
        count = len / sizeof(struct elvis_vring_desc);
        if (count > ELVIS_CHAIN_MAX_IOV)
                return elvis_vring_fail(vr, -E2BIG, "indirect table is too large");
        /* the table must be contiguous in our view: one segment */
        if (elvis_mem_map(vr->mem, addr, len, &seg, 1, &nseg))
                return elvis_vring_fail(vr, -EFAULT, "indirect table is outside guest memory");
        for (;;) {
                struct elvis_vring_desc d;
                u16 flags;
                int r;

                if (++seen > count)
                        return elvis_vring_fail(vr, -ELOOP, "indirect descriptor chain loops");
                if (ev_copy_from(&d, ev_uptr_add(seg.base, (u64)i * sizeof(d)), sizeof(d)))
                        return elvis_vring_fail(vr, -EFAULT, "cannot read indirect descriptor");
                flags = ev_le16(d.flags);
                if (flags & ELVIS_VRING_DESC_F_INDIRECT)
                        return elvis_vring_fail(vr, -EPROTO, "nested indirect descriptor");
                r = add_buffer(vr, c, &d, dir);
                if (r < 0)
                        return r;
                if (!(flags & ELVIS_VRING_DESC_F_NEXT))
                        return 0;
                i = ev_le16(d.next);
                if (i >= count)
                        return elvis_vring_fail(vr, -EPROTO, "indirect descriptor next is out of the table");
        }
}

/* The chain at head into c, every descriptor checked. */
static int walk_chain(struct elvis_vring *vr, u16 head, struct elvis_chain *c, enum elvis_chain_dir dir)
{
        u32 seen = 0;
        u16 i;
        int r;

        c->head = head;
        c->nout = c->nin = 0;
        c->out_len = c->in_len = 0;
        i = head;
        for (;;) {
                struct elvis_vring_desc d;
                u16 flags;

                if (++seen > vr->num)
                        return elvis_vring_fail(vr, -ELOOP, "descriptor chain loops or is longer than the ring");
                if (ev_copy_from(&d, ev_uptr_add(vr->desc, (u64)i * sizeof(d)), sizeof(d)))
                        return elvis_vring_fail(vr, -EFAULT, "cannot read descriptor");
                flags = ev_le16(d.flags);
                if (flags & ELVIS_VRING_DESC_F_INDIRECT) {
                        if (seen > 1 || (flags & ELVIS_VRING_DESC_F_NEXT))
                                return elvis_vring_fail(vr, -EPROTO, "indirect descriptor inside a chain");
                        r = walk_indirect(vr, c, &d, dir);
                        if (r < 0)
                                return r;
                        break;
                }
                r = add_buffer(vr, c, &d, dir);
                if (r < 0)
                        return r;
                if (!(flags & ELVIS_VRING_DESC_F_NEXT))
                        break;
                i = ev_le16(d.next);
                if (i >= vr->num)
                        return elvis_vring_fail(vr, -EPROTO, "descriptor next is out of the ring");
        }
        return 0;
}

int elvis_vring_pop(struct elvis_vring *vr, struct elvis_chain *c, enum elvis_chain_dir dir)
{
        u16 head;
        int r;

        if (ev_unlikely(vr->error))
                return vr->error;
        if (vr->last_avail_idx == vr->avail_idx) {
                r = elvis_vring_pending(vr);
                if (r <= 0)
                        return r;
        }
        /* the avail index was read before the ring entry it covers */
        ev_rmb();
        if (avail_head(vr, vr->last_avail_idx, &head))
                return elvis_vring_fail(vr, -EFAULT, "cannot read avail ring");
        if (head >= vr->num)
                return elvis_vring_fail(vr, -EPROTO, "avail ring entry is out of the ring");
        r = walk_chain(vr, head, c, dir);
        if (r < 0)
                return r;
        vr->last_avail_idx++;
        return 1;
}

void elvis_vring_prefetch(struct elvis_vring *vr, u16 ahead)
{
        struct elvis_vring_desc d;
        struct elvis_iov seg;
        u32 len, n;
        u64 addr;
        u16 head;

        if (vr->error || (u16)(vr->avail_idx - vr->last_avail_idx) <= ahead)
                return;
        if (avail_head(vr, (u16)(vr->last_avail_idx + ahead), &head) || head >= vr->num)
                return;
        if (ev_copy_from(&d, ev_uptr_add(vr->desc, (u64)head * sizeof(d)), sizeof(d)))
                return;
        addr = ev_le64(d.addr);
        len = ev_le32(d.len);
        if (ev_le16(d.flags) & ELVIS_VRING_DESC_F_INDIRECT || !len)
                return;
        /* the first two cache lines: a small frame and its header */
        if (elvis_mem_map(vr->mem, addr, len < 128 ? len : 128, &seg, 1, &n) < 0)
                return;
        ev_prefetch(seg.base);
        if (seg.len > 64)
                ev_prefetch(ev_uptr_add(seg.base, 64));
}

int elvis_vring_pop_head(struct elvis_vring *vr, u16 head, struct elvis_chain *c, enum elvis_chain_dir dir)
{
        int r;

        if (ev_unlikely(vr->error))
                return vr->error;
        if (head >= vr->num)
                return elvis_vring_fail(vr, -EPROTO, "a head to execute again is out of the ring");
        r = walk_chain(vr, head, c, dir);
        return r < 0 ? r : 1;
}

void elvis_vring_unpop(struct elvis_vring *vr, u16 n)
{
        vr->last_avail_idx = (u16)(vr->last_avail_idx - n);
}

int elvis_vring_push(struct elvis_vring *vr, u16 head, u32 len)
{
        struct {
                ev_le32_t id;
                ev_le32_t len;
        } elem;
        u64 off = USED_RING + 8ull * slot(vr, vr->used_idx);

        if (ev_unlikely(vr->error))
                return vr->error;
#ifdef __KERNEL__
        elem.id = cpu_to_le32(head);
        elem.len = cpu_to_le32(len);
#else
        elem.id = htole32(head);
        elem.len = htole32(len);
#endif
        if (ev_copy_to(ev_uptr_add(vr->used, off), &elem, sizeof(elem)))
                return elvis_vring_fail(vr, -EFAULT, "cannot write used ring");
        if (log_used(vr, off, sizeof(elem)))
                return vr->error;
        vr->used_idx++;
        return 0;
}

int elvis_vring_publish(struct elvis_vring *vr)
{
        if (vr->used_idx == vr->published_used)
                return 0;
        /* used elements are visible before the index that covers them */
        ev_wmb();
        if (ev_store16(ev_uptr_add(vr->used, USED_IDX), vr->used_idx))
                return elvis_vring_fail(vr, -EFAULT, "cannot write used index");
        if (log_used(vr, USED_IDX, 2))
                return vr->error;
        vr->published_used = vr->used_idx;
        return 0;
}

bool elvis_vring_need_signal(struct elvis_vring *vr)
{
        u16 old = vr->signalled_used, event, flags;
        bool first = !vr->signalled_valid;

        /* nothing published since the last signal: nothing to signal */
        if (!first && old == vr->published_used)
                return false;
        /* the used index store is ordered before reading the guest's suppression state */
        ev_mb();
        if (vr->event_idx) {
                if (ev_load16(ev_uptr_add(vr->avail, AVAIL_RING + 2u * vr->num), &event))
                        return true;
        } else {
                if (ev_load16(ev_uptr_add(vr->avail, AVAIL_FLAGS), &flags))
                        return true;
                if (flags & ELVIS_VRING_AVAIL_F_NO_INTERRUPT)
                        return false;       /* not signalled: still owed when allowed again */
        }
        vr->signalled_used = vr->published_used;
        vr->signalled_valid = true;
        return first || !vr->event_idx || elvis_need_event(event, vr->published_used, old);
}

static void write_avail_event(struct elvis_vring *vr, u16 v)
{
        if (ev_store16(ev_uptr_add(vr->used, USED_RING + 8ull * vr->num), v))
                elvis_vring_fail(vr, -EFAULT, "cannot write avail event");
        else
                log_used(vr, USED_RING + 8ull * vr->num, 2);
}

static void write_used_flags(struct elvis_vring *vr, u16 v)
{
        if (ev_store16(ev_uptr_add(vr->used, USED_FLAGS), v))
                elvis_vring_fail(vr, -EFAULT, "cannot write used flags");
        else
                log_used(vr, USED_FLAGS, 2);
}

void elvis_vring_notify_disable(struct elvis_vring *vr)
{
        if (vr->event_idx) {
                /* Just behind what we consumed: the guest's next additions never cross it.
                 * Rewritten only every quarter of the index space, so the cache line the
                 * guest reads on every addition is not bounced by each poll. */
                if (elvis_vring_notify_disable_due(vr)) {
                        vr->event_written = vr->last_avail_idx;
                        write_avail_event(vr, (u16)(vr->last_avail_idx - 1));
                }
        } else if (vr->notify_enabled)
                write_used_flags(vr, ELVIS_VRING_USED_F_NO_NOTIFY);
        vr->notify_enabled = false;
}

bool elvis_vring_notify_enable(struct elvis_vring *vr)
{
        u16 idx;

        if (vr->event_idx)
                write_avail_event(vr, vr->last_avail_idx);
        else
                write_used_flags(vr, 0);
        vr->notify_enabled = true;
        /* the guest may have added buffers before it saw notifications back on */
        ev_mb();
        if (ev_load16(ev_uptr_add(vr->avail, AVAIL_IDX), &idx))
                return false;
        return idx != vr->last_avail_idx;
}
