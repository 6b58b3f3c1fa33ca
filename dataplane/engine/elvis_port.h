/* Port layer of the virtqueue engine: the only place that differs between user space
 * and the kernel module. The engine reaches guest memory only through these accessors,
 * on addresses it got from elvis_vring_mem translation ("accessor space": a host pointer
 * into our mapping in user space, a __user pointer into the VMM's mm in the kernel).
 * Every accessor returns 0 or -EFAULT. */
#pragma once

#ifdef __KERNEL__
#include <linux/compiler.h>
#include <linux/errno.h>
#include <linux/prefetch.h>
#include <linux/string.h>
#include <linux/types.h>
#include <linux/uaccess.h>
#include <asm/barrier.h>

typedef __le16 ev_le16_t;
typedef __le32 ev_le32_t;
typedef __le64 ev_le64_t;
typedef void __user *ev_uptr;
#define EV_UPTR_NULL ((ev_uptr)NULL)
#define ev_uptr_add(p, off) ((ev_uptr)((char __user *)(p) + (off)))
#define ev_uptr_from_u64(v) ((ev_uptr)(uintptr_t)(v))
#define ev_uptr_to_u64(p) ((u64)(uintptr_t)(p))

static inline int ev_load16(ev_uptr p, u16 *v)
{
        __le16 x;
        if (get_user(x, (__le16 __user *)p))
                return -EFAULT;
        *v = le16_to_cpu(x);
        return 0;
}

static inline int ev_store16(ev_uptr p, u16 v)
{
        return put_user(cpu_to_le16(v), (__le16 __user *)p) ? -EFAULT : 0;
}

static inline int ev_copy_from(void *dst, ev_uptr src, size_t n)
{
        return copy_from_user(dst, src, n) ? -EFAULT : 0;
}

static inline int ev_copy_to(ev_uptr dst, const void *src, size_t n)
{
        return copy_to_user(dst, src, n) ? -EFAULT : 0;
}

/* Atomically ORs bits into one byte of the VMM's dirty log (a __user address): defined
 * by the kernel plane, which pins the page (with page faults off, only a page already
 * mapped: -EFAULT otherwise, and the turn is repeated where faults may sleep). */
int ev_log_or8(ev_uptr p, u8 bits);

#define ev_rmb() smp_rmb()
#define ev_wmb() smp_wmb()
#define ev_mb() smp_mb()
#define ev_le16(x) le16_to_cpu(x)
#define ev_le32(x) le32_to_cpu(x)
#define ev_le64(x) le64_to_cpu(x)
#define ev_likely(x) likely(x)
#define ev_unlikely(x) unlikely(x)
/* single-writer counter: readers see whole values */
#define ev_stat_add(field, n) WRITE_ONCE(field, READ_ONCE(field) + (n))
/* a hint: never faults, whatever the address */
#define ev_prefetch(p) prefetch((const void __force *)(p))

#else /* user space */

#include <endian.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t s64;
typedef uint16_t ev_le16_t;
typedef uint32_t ev_le32_t;
typedef uint64_t ev_le64_t;

typedef void *ev_uptr;
#define EV_UPTR_NULL ((ev_uptr)NULL)
#define ev_uptr_add(p, off) ((ev_uptr)((char *)(p) + (off)))
#define ev_uptr_from_u64(v) ((ev_uptr)(uintptr_t)(v))
#define ev_uptr_to_u64(p) ((u64)(uintptr_t)(p))

/* Guest memory is shared with a running guest: every access is a single volatile
 * load or store so the compiler neither tears nor repeats it. */
static inline int ev_load16(ev_uptr p, u16 *v)
{
        *v = le16toh(*(volatile u16 *)p);
        return 0;
}

static inline int ev_store16(ev_uptr p, u16 v)
{
        *(volatile u16 *)p = htole16(v);
        return 0;
}

static inline int ev_copy_from(void *dst, ev_uptr src, size_t n)
{
        memcpy(dst, src, n);
        return 0;
}

static inline int ev_copy_to(ev_uptr dst, const void *src, size_t n)
{
        memcpy(dst, src, n);
        return 0;
}

/* The dirty log is shared with a VMM that fetches-and-clears it concurrently, and other
 * sidecores set bits in the same bytes: one atomic OR, ordered after the data it covers. */
static inline int ev_log_or8(ev_uptr p, u8 bits)
{
        __atomic_fetch_or((u8 *)p, bits, __ATOMIC_RELEASE);
        return 0;
}

#define ev_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define ev_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define ev_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define ev_le16(x) le16toh(x)
#define ev_le32(x) le32toh(x)
#define ev_le64(x) le64toh(x)
#define ev_likely(x) __builtin_expect(!!(x), 1)
#define ev_unlikely(x) __builtin_expect(!!(x), 0)
/* single-writer counter: readers see whole values */
#define ev_stat_add(field, n) \
        __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
/* a hint: never faults, whatever the address */
#define ev_prefetch(p) __builtin_prefetch((const void *)(p))

#endif
