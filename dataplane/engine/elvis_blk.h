/* The virtio-blk request model, shared by every plane that serves block devices (the
 * user data plane's vhost-user-blk back end; the kernel plane could compile it too).
 * It turns a popped descriptor chain into a validated request and completes requests:
 * the status byte, the used entry with the bytes written, the dirty log. What executes a
 * request (io_uring on a file, a null device) is the plane's.
 *
 * Everything a guest controls is checked before a request reaches a back end: the header
 * where it belongs, a writable status byte at the end, data lengths in whole sectors,
 * sector + length without overflow and within capacity, the number of segments, writes to
 * a read-only disk, the ranges of DISCARD and WRITE_ZEROES. A request that fails a check
 * is answered (IOERR or UNSUPP) and never executed; a chain with no place for a status is
 * a ring error, as a driver that cannot be answered is broken.
 *
 * Request layout (virtio 1.x, any layout): device-readable bytes start with the 16-byte
 * header {le32 type, le32 reserved, le64 sector}; OUT data follows in the readable part,
 * IN data fills the writable part; the last writable byte is the status. */
#pragma once
#include "elvis_vring.h"

#define ELVIS_BLK_SECTOR_SHIFT 9
#define ELVIS_BLK_SECTOR_SIZE 512u
#define ELVIS_BLK_HDR_LEN 16u
#define ELVIS_BLK_ID_BYTES 20u
#define ELVIS_BLK_CONFIG_SIZE 60u
#define ELVIS_BLK_SEG_MAX 126u                  /* data segments a request may have (config seg_max) */
#define ELVIS_BLK_SIZE_MAX (1u << 20)           /* bytes one segment may hold (config size_max) */
#define ELVIS_BLK_MAX_REQ_BYTES (4u << 20)      /* data bytes of one IN or OUT request */
#define ELVIS_BLK_RANGE_LEN 16u                 /* {le64 sector, le32 num_sectors, le32 flags} */

/* request types and statuses */
#define ELVIS_BLK_T_IN 0u
#define ELVIS_BLK_T_OUT 1u
#define ELVIS_BLK_T_FLUSH 4u
#define ELVIS_BLK_T_GET_ID 8u
#define ELVIS_BLK_T_DISCARD 11u
#define ELVIS_BLK_T_WRITE_ZEROES 13u
#define ELVIS_BLK_S_OK 0
#define ELVIS_BLK_S_IOERR 1
#define ELVIS_BLK_S_UNSUPP 2
#define ELVIS_BLK_RANGE_F_UNMAP 1u

/* feature bits */
#define ELVIS_BLK_F_SIZE_MAX 1
#define ELVIS_BLK_F_SEG_MAX 2
#define ELVIS_BLK_F_RO 5
#define ELVIS_BLK_F_BLK_SIZE 6
#define ELVIS_BLK_F_FLUSH 9
#define ELVIS_BLK_F_MQ 12
#define ELVIS_BLK_F_DISCARD 13
#define ELVIS_BLK_F_WRITE_ZEROES 14

/* What a back end serves. */
struct elvis_blk_disk {
        u64 capacity;                   /* 512-byte sectors */
        u32 blk_size;                   /* logical block size, a power of two >= 512 */
        u16 num_queues;
        bool readonly;
        bool discard, write_zeroes;     /* the back end can do them */
        u32 max_discard_sectors, max_write_zeroes_sectors;
        char id[ELVIS_BLK_ID_BYTES];    /* GET_ID: serial, not NUL-terminated when 20 long */
};

/* A validated request. */
struct elvis_blk_req {
        u16 head;
        u32 type;
        u64 sector;                     /* first sector (IN, OUT; DISCARD/WRITE_ZEROES: the range's) */
        u64 len;                        /* data bytes (IN, OUT) or range bytes (DISCARD, WRITE_ZEROES) */
        bool unmap;                     /* WRITE_ZEROES may deallocate */
        ev_uptr status;                 /* the status byte in guest memory */
        u32 niov;                       /* data segments: IN writable, OUT readable */
        struct elvis_iov iov[ELVIS_BLK_SEG_MAX];
};

/* The features a disk offers (device bits only; the plane adds transport bits). */
u64 elvis_blk_features(const struct elvis_blk_disk *d);
/* Validates a disk description: 0, or -EINVAL with why. */
int elvis_blk_disk_check(const struct elvis_blk_disk *d, const char **why);
/* The config space (little endian, ELVIS_BLK_CONFIG_SIZE bytes). */
void elvis_blk_config(const struct elvis_blk_disk *d, u8 out[ELVIS_BLK_CONFIG_SIZE]);

/* Parses a chain popped with ELVIS_CHAIN_ANY into r. Returns:
 *   ELVIS_BLK_S_OK      r is a request for the back end (IN, OUT, FLUSH, DISCARD,
 *                       WRITE_ZEROES), or a GET_ID the caller answers with elvis_blk_get_id;
 *   ELVIS_BLK_S_IOERR / ELVIS_BLK_S_UNSUPP   answer it now with elvis_blk_complete
 *                       (r->head and r->status are set);
 *   -EPROTO             no writable status byte: the caller fails the ring;
 *   -EFAULT             the header could not be read (a fault). */
int elvis_blk_parse(const struct elvis_blk_disk *d, const struct elvis_chain *c, struct elvis_blk_req *r);
/* Writes the disk's id into a GET_ID request's buffer; returns the bytes written. */
int elvis_blk_get_id(const struct elvis_blk_disk *d, const struct elvis_blk_req *r, u32 *written);
/* Completes a request: the status byte, the dirty log (the data an IN wrote, written
 * bytes of GET_ID, the status), and the used entry, whose length is the bytes written
 * (data + 1 for a successful IN, the id's bytes + 1 for GET_ID, else 1). The caller
 * publishes and signals. 0 or the ring's latched error. */
int elvis_blk_complete(struct elvis_vring *vr, const struct elvis_blk_req *r, u8 status, u32 written);
