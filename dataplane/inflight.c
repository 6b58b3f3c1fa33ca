/* Inflight tracking for vhost-user block devices: see inflight.h. */
#include "inflight.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The VMM shares the region: read each field once, into a local. */
#define READ1(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WRITE1(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

size_t dp_inflight_queue_size(uint16_t queue_size)
{
        size_t n = sizeof(struct dp_inflight_queue) + (size_t)queue_size * sizeof(struct dp_inflight_desc);

        return (n + DP_INFLIGHT_ALIGN - 1) / DP_INFLIGHT_ALIGN * DP_INFLIGHT_ALIGN;
}

static struct dp_inflight_queue *queue_at(void *region, uint16_t q, uint16_t queue_size)
{
        return (struct dp_inflight_queue *)((char *)region + (size_t)q * dp_inflight_queue_size(queue_size));
}

void dp_inflight_format(void *region, uint16_t nq, uint16_t queue_size)
{
        memset(region, 0, (size_t)nq * dp_inflight_queue_size(queue_size));
        for (uint16_t q = 0; q < nq; q++) {
                struct dp_inflight_queue *r = queue_at(region, q, queue_size);

                r->version = DP_INFLIGHT_VERSION;
                r->desc_num = queue_size;
        }
}

void dp_inflight_attach(struct dp_inflight *t, void *region, uint16_t q, uint16_t queue_size)
{
        memset(t, 0, sizeof(*t));
        t->r = queue_at(region, q, queue_size);
        t->num = queue_size;
}

void dp_inflight_popped(struct dp_inflight *t, uint16_t head)
{
        if (!t->r || head >= t->num)
                return;
        WRITE1(t->r->desc[head].counter, ++t->counter);
        /* the counter is in place before the entry says it counts */
        __atomic_store_n(&t->r->desc[head].inflight, 1, __ATOMIC_RELEASE);
}

void dp_inflight_unpopped(struct dp_inflight *t, uint16_t head)
{
        if (!t->r || head >= t->num)
                return;
        WRITE1(t->r->desc[head].inflight, 0);
}

void dp_inflight_done(struct dp_inflight *t, uint16_t head)
{
        if (!t->r || head >= t->num)
                return;
        if (t->batch_n == 0)
                t->batch_head = head;
        else
                WRITE1(t->r->desc[t->batch_tail].next, head);
        t->batch_tail = head;
        t->batch_n++;
        /* before the used index moves: a back end that dies in between leaves a batch the
         * next one can settle */
        __atomic_store_n(&t->r->last_batch_head, t->batch_head, __ATOMIC_RELEASE);
}

void dp_inflight_published(struct dp_inflight *t, uint16_t used_idx)
{
        uint16_t h;

        if (!t->r || t->batch_n == 0)
                return;
        h = t->batch_head;
        for (uint16_t i = 0; i < t->batch_n; i++) {
                WRITE1(t->r->desc[h].inflight, 0);
                h = READ1(t->r->desc[h].next);
                if (h >= t->num)
                        break;
        }
        __atomic_store_n(&t->r->used_idx, used_idx, __ATOMIC_RELEASE);
        t->batch_n = 0;
}

static int by_counter(const void *a, const void *b, void *arg)
{
        const struct dp_inflight_desc *d = arg;
        uint64_t x = d[*(const uint16_t *)a].counter, y = d[*(const uint16_t *)b].counter;

        return x < y ? -1 : x > y;
}

int dp_inflight_recover(struct dp_inflight *t, uint16_t guest_used, uint16_t *heads, const char **why)
{
        struct dp_inflight_queue *r = t->r;
        struct dp_inflight_desc *snap;
        uint16_t used, n = 0, h;
        uint64_t top = 0;

        if (!r)
                return 0;
        if (READ1(r->version) != DP_INFLIGHT_VERSION || READ1(r->desc_num) != t->num) {
                *why = "the inflight region is not of this version or queue size";
                return -EINVAL;
        }
        used = READ1(r->used_idx);
        /* a batch the old back end published in the guest's used ring but did not clear */
        if (used != guest_used) {
                uint16_t done = (uint16_t)(guest_used - used);
                bool any = false;

                for (uint16_t i = 0; i < t->num && !any; i++)
                        any = READ1(r->desc[i].inflight) != 0;
                if (done > t->num && any) {
                        *why = "the used index moved further than a ring holds since the inflight region saw it";
                        return -EINVAL;
                }
                h = READ1(r->last_batch_head);
                for (uint16_t i = 0; i < done && any; i++) {
                        if (h >= t->num) {
                                *why = "the inflight region's last batch leads outside the ring";
                                return -EINVAL;
                        }
                        WRITE1(r->desc[h].inflight, 0);
                        h = READ1(r->desc[h].next);
                }
                WRITE1(r->used_idx, guest_used);
        }
        snap = malloc((size_t)t->num * sizeof(*snap));
        if (!snap) {
                *why = "out of memory";
                return -ENOMEM;
        }
        /* one snapshot, so that the VMM cannot change what was sorted while sorting */
        memcpy(snap, r->desc, (size_t)t->num * sizeof(*snap));
        for (uint16_t i = 0; i < t->num; i++) {
                if (snap[i].inflight > 1) {
                        free(snap);
                        *why = "an inflight entry is neither 0 nor 1";
                        return -EINVAL;
                }
                if (snap[i].inflight) {
                        heads[n++] = i;
                        if (snap[i].counter > top)
                                top = snap[i].counter;
                }
        }
        qsort_r(heads, n, sizeof(*heads), by_counter, snap);
        free(snap);
        t->counter = top;
        t->batch_n = 0;
        return n;
}
