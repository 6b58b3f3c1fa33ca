/* The virtio-blk request model: see elvis_blk.h. */
#include "elvis_blk.h"

static inline void put_le16(u8 *p, u16 v)
{
        p[0] = (u8)v;
        p[1] = (u8)(v >> 8);
}

static inline void put_le32(u8 *p, u32 v)
{
        put_le16(p, (u16)v);
        put_le16(p + 2, (u16)(v >> 16));
}

static inline u32 get_le32(const u8 *p)
{
        return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static inline u64 get_le64(const u8 *p)
{
        return (u64)get_le32(p) | (u64)get_le32(p + 4) << 32;
}

u64 elvis_blk_features(const struct elvis_blk_disk *d)
{
        u64 f = 1ull << ELVIS_BLK_F_SIZE_MAX | 1ull << ELVIS_BLK_F_SEG_MAX | 1ull << ELVIS_BLK_F_BLK_SIZE |
                1ull << ELVIS_BLK_F_FLUSH;

        if (d->num_queues > 1)
                f |= 1ull << ELVIS_BLK_F_MQ;
        if (d->readonly)
                f |= 1ull << ELVIS_BLK_F_RO;
        if (d->discard && !d->readonly)
                f |= 1ull << ELVIS_BLK_F_DISCARD;
        if (d->write_zeroes && !d->readonly)
                f |= 1ull << ELVIS_BLK_F_WRITE_ZEROES;
        return f;
}

int elvis_blk_disk_check(const struct elvis_blk_disk *d, const char **why)
{
        if (d->blk_size < ELVIS_BLK_SECTOR_SIZE || d->blk_size > 65536 || (d->blk_size & (d->blk_size - 1))) {
                *why = "block size must be a power of two from 512 to 65536";
                return -EINVAL;
        }
        if (d->capacity % (d->blk_size / ELVIS_BLK_SECTOR_SIZE)) {
                *why = "capacity is not a whole number of blocks";
                return -EINVAL;
        }
        if (d->num_queues == 0) {
                *why = "a disk needs at least one queue";
                return -EINVAL;
        }
        return 0;
}

void elvis_blk_config(const struct elvis_blk_disk *d, u8 out[ELVIS_BLK_CONFIG_SIZE])
{
        u32 per_block = d->blk_size / ELVIS_BLK_SECTOR_SIZE;

        memset(out, 0, ELVIS_BLK_CONFIG_SIZE);
        put_le32(out + 0, (u32)d->capacity);
        put_le32(out + 4, (u32)(d->capacity >> 32));
        put_le32(out + 8, ELVIS_BLK_SIZE_MAX);
        put_le32(out + 12, ELVIS_BLK_SEG_MAX);
        put_le32(out + 20, d->blk_size);
        /* topology (24..31) and writeback (32) stay 0: no hints, write-through as seen
         * by the guest (FLUSH is still honoured) */
        put_le16(out + 34, d->num_queues);
        /* one range per DISCARD / WRITE_ZEROES request, aligned to blocks */
        put_le32(out + 36, d->max_discard_sectors);
        put_le32(out + 40, 1);
        put_le32(out + 44, per_block);
        put_le32(out + 48, d->max_write_zeroes_sectors);
        put_le32(out + 52, 1);
        out[56] = 1;    /* write_zeroes_may_unmap */
}

/* Copies n bytes from offset off of the readable part of c. */
static int read_out(const struct elvis_chain *c, u64 off, u8 *dst, u32 n)
{
        for (u32 i = 0; i < c->nout && n; i++) {
                u64 l = c->iov[i].len;

                if (off >= l) {
                        off -= l;
                        continue;
                }
                u64 k = l - off < n ? l - off : n;
                if (ev_copy_from(dst, ev_uptr_add(c->iov[i].base, off), k))
                        return -EFAULT;
                dst += k;
                n -= (u32)k;
                off = 0;
        }
        return n ? -EFAULT : 0;
}

/* Collects len bytes of segments [first, end) of c starting at byte skip into r->iov.
 * false: too many segments or a segment larger than size_max. */
static bool collect(const struct elvis_chain *c, u32 first, u32 end, u64 skip, u64 len, struct elvis_blk_req *r)
{
        r->niov = 0;
        for (u32 i = first; i < end && len; i++) {
                u64 l = c->iov[i].len;

                if (skip >= l) {
                        skip -= l;
                        continue;
                }
                l -= skip;
                if (l > len)
                        l = len;
                if (r->niov == ELVIS_BLK_SEG_MAX || l > ELVIS_BLK_SIZE_MAX)
                        return false;
                r->iov[r->niov].base = ev_uptr_add(c->iov[i].base, skip);
                r->iov[r->niov].len = (u32)l;
                r->niov++;
                len -= l;
                skip = 0;
        }
        return len == 0;
}

/* sector .. sector + bytes / 512 lies within the disk, in whole blocks */
static bool in_range(const struct elvis_blk_disk *d, u64 sector, u64 bytes)
{
        u64 per_block = d->blk_size / ELVIS_BLK_SECTOR_SIZE;

        if (bytes % d->blk_size || sector % per_block)
                return false;
        return sector <= d->capacity && (bytes >> ELVIS_BLK_SECTOR_SHIFT) <= d->capacity - sector;
}

int elvis_blk_parse(const struct elvis_blk_disk *d, const struct elvis_chain *c, struct elvis_blk_req *r)
{
        const struct elvis_iov *last;
        u8 hdr[ELVIS_BLK_HDR_LEN], range[ELVIS_BLK_RANGE_LEN];
        u32 win = c->nout, wend = c->nout + c->nin;
        u64 data_in;

        r->head = c->head;
        r->niov = 0;
        r->len = 0;
        r->unmap = false;
        if (!c->nin)
                return -EPROTO;         /* nowhere to put a status: not a request we can answer */
        last = &c->iov[wend - 1];
        r->status = ev_uptr_add(last->base, last->len - 1);
        data_in = c->in_len - 1;
        if (c->out_len < ELVIS_BLK_HDR_LEN)
                return ELVIS_BLK_S_IOERR;
        if (read_out(c, 0, hdr, sizeof(hdr)))
                return -EFAULT;
        r->type = get_le32(hdr);
        r->sector = get_le64(hdr + 8);

        switch (r->type) {
        case ELVIS_BLK_T_IN:
                if (c->out_len != ELVIS_BLK_HDR_LEN || data_in > ELVIS_BLK_MAX_REQ_BYTES)
                        return ELVIS_BLK_S_IOERR;
                if (!in_range(d, r->sector, data_in) || !collect(c, win, wend, 0, data_in, r))
                        return ELVIS_BLK_S_IOERR;
                r->len = data_in;
                return ELVIS_BLK_S_OK;
        case ELVIS_BLK_T_OUT:
                if (d->readonly || data_in)
                        return ELVIS_BLK_S_IOERR;
                r->len = c->out_len - ELVIS_BLK_HDR_LEN;
                if (r->len > ELVIS_BLK_MAX_REQ_BYTES || !in_range(d, r->sector, r->len) ||
                    !collect(c, 0, c->nout, ELVIS_BLK_HDR_LEN, r->len, r)) {
                        r->len = 0;
                        return ELVIS_BLK_S_IOERR;
                }
                return ELVIS_BLK_S_OK;
        case ELVIS_BLK_T_FLUSH:
                if (c->out_len != ELVIS_BLK_HDR_LEN || data_in)
                        return ELVIS_BLK_S_IOERR;
                return ELVIS_BLK_S_OK;
        case ELVIS_BLK_T_GET_ID:
                if (c->out_len != ELVIS_BLK_HDR_LEN || !data_in ||
                    !collect(c, win, wend, 0, data_in < ELVIS_BLK_ID_BYTES ? data_in : ELVIS_BLK_ID_BYTES, r))
                        return ELVIS_BLK_S_IOERR;
                return ELVIS_BLK_S_OK;
        case ELVIS_BLK_T_DISCARD:
        case ELVIS_BLK_T_WRITE_ZEROES: {
                bool discard = r->type == ELVIS_BLK_T_DISCARD;
                u32 flags, sectors;

                if (discard ? !d->discard : !d->write_zeroes)
                        return ELVIS_BLK_S_UNSUPP;
                if (d->readonly || data_in)
                        return ELVIS_BLK_S_IOERR;
                /* one range, as the config space says (max_*_seg = 1) */
                if (c->out_len != ELVIS_BLK_HDR_LEN + ELVIS_BLK_RANGE_LEN)
                        return ELVIS_BLK_S_IOERR;
                if (read_out(c, ELVIS_BLK_HDR_LEN, range, sizeof(range)))
                        return -EFAULT;
                r->sector = get_le64(range);
                sectors = get_le32(range + 8);
                flags = get_le32(range + 12);
                /* reserved bits, or unmap on a discard, are not for this device */
                if (flags & ~ELVIS_BLK_RANGE_F_UNMAP || (discard && flags))
                        return ELVIS_BLK_S_UNSUPP;
                if (sectors > (discard ? d->max_discard_sectors : d->max_write_zeroes_sectors) ||
                    !in_range(d, r->sector, (u64)sectors << ELVIS_BLK_SECTOR_SHIFT))
                        return ELVIS_BLK_S_IOERR;
                r->len = (u64)sectors << ELVIS_BLK_SECTOR_SHIFT;
                r->unmap = flags & ELVIS_BLK_RANGE_F_UNMAP;
                return ELVIS_BLK_S_OK;
        }
        default:
                return ELVIS_BLK_S_UNSUPP;
        }
}

int elvis_blk_get_id(const struct elvis_blk_disk *d, const struct elvis_blk_req *r, u32 *written)
{
        u32 off = 0;

        for (u32 i = 0; i < r->niov; i++) {
                if (ev_copy_to(r->iov[i].base, d->id + off, r->iov[i].len))
                        return -EFAULT;
                off += r->iov[i].len;
        }
        *written = off;
        return 0;
}

int elvis_blk_complete(struct elvis_vring *vr, const struct elvis_blk_req *r, u8 status, u32 written)
{
        u64 data = 0;
        struct elvis_iov st = { r->status, 1 };

        if (status == ELVIS_BLK_S_OK && r->type == ELVIS_BLK_T_IN)
                data = r->len;
        else if (status == ELVIS_BLK_S_OK && r->type == ELVIS_BLK_T_GET_ID)
                data = written;
        if (ev_copy_to(r->status, &status, 1))
                return elvis_vring_fail(vr, -EFAULT, "cannot write a block request's status");
        if (elvis_vring_log_iov(vr, r->iov, data ? r->niov : 0, data) || elvis_vring_log_iov(vr, &st, 1, 1))
                return vr->error;
        return elvis_vring_push(vr, r->head, (u32)data + 1);
}
