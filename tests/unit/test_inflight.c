/* Inflight tracking (dataplane/inflight.c): what a block back end that died had in flight
 * comes back in pop order, a batch it was publishing is settled from the guest's used
 * index, and a region the VMM scribbled on is refused. */
#include <criterion/criterion.h>

#include "inflight.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define QS 8

static void *region;
static struct dp_inflight t;
static uint16_t heads[QS];
static const char *why;

static void setup(void)
{
        region = calloc(1, 2 * dp_inflight_queue_size(QS));
        cr_assert_not_null(region);
        dp_inflight_format(region, 2, QS);
        dp_inflight_attach(&t, region, 1, QS);
        why = NULL;
}

static void teardown(void) { free(region); }

TestSuite(inflight, .init = setup, .fini = teardown);

/* a new back end's tracker on the same region */
static int recover(uint16_t guest_used)
{
        struct dp_inflight n;

        dp_inflight_attach(&n, region, 1, QS);
        return dp_inflight_recover(&n, guest_used, heads, &why);
}

Test(inflight, sizes_are_the_spec_layout_aligned)
{
        cr_assert_eq(sizeof(struct dp_inflight_desc), 16);
        cr_assert_eq(sizeof(struct dp_inflight_queue), 16);
        cr_assert_eq(dp_inflight_queue_size(256), 4160, "16 + 256 * 16 = 4112, aligned to 64");
        cr_assert_eq(dp_inflight_queue_size(QS), 192);
        cr_assert_eq(t.r, (void *)((char *)region + 192), "queue 1 follows queue 0");
}

Test(inflight, out_of_order_completions_leave_the_rest_in_pop_order)
{
        const uint16_t popped[] = { 3, 1, 4, 0, 2 };

        for (unsigned i = 0; i < 5; i++)
                dp_inflight_popped(&t, popped[i]);
        dp_inflight_done(&t, 1);
        dp_inflight_done(&t, 0);
        dp_inflight_published(&t, 2);
        cr_assert_eq(recover(2), 3, "%s", why ? why : "");
        cr_assert_eq(heads[0], 3);
        cr_assert_eq(heads[1], 4);
        cr_assert_eq(heads[2], 2);
}

Test(inflight, a_batch_published_to_the_guest_but_not_cleared_is_settled)
{
        dp_inflight_popped(&t, 5);
        dp_inflight_popped(&t, 6);
        dp_inflight_popped(&t, 7);
        dp_inflight_done(&t, 7);
        dp_inflight_done(&t, 5);
        /* the back end dies after the guest saw used index 2, before it cleared the batch */
        cr_assert_eq(recover(2), 1, "%s", why ? why : "");
        cr_assert_eq(heads[0], 6);
        cr_assert_eq(t.r->used_idx, 2, "the region now agrees with the guest");
}

Test(inflight, a_batch_the_guest_never_saw_is_executed_again)
{
        dp_inflight_popped(&t, 2);
        dp_inflight_popped(&t, 1);
        dp_inflight_done(&t, 1);
        /* died before publishing: both still count as in flight, oldest first */
        cr_assert_eq(recover(0), 2, "%s", why ? why : "");
        cr_assert_eq(heads[0], 2);
        cr_assert_eq(heads[1], 1);
}

Test(inflight, counters_continue_after_recovery)
{
        struct dp_inflight n;

        dp_inflight_popped(&t, 4);
        dp_inflight_attach(&n, region, 1, QS);
        cr_assert_eq(dp_inflight_recover(&n, 0, heads, &why), 1);
        dp_inflight_popped(&n, 3);
        cr_assert_gt(n.r->desc[3].counter, n.r->desc[4].counter, "new pops sort after the recovered one");
        cr_assert_eq(recover(0), 2);
        cr_assert_eq(heads[0], 4);
        cr_assert_eq(heads[1], 3);
}

Test(inflight, a_region_the_vmm_scribbled_on_is_refused)
{
        struct dp_inflight_queue *r = t.r;

        r->version = 9;
        cr_assert_eq(recover(0), -EINVAL);
        cr_assert_not_null(why);
        r->version = DP_INFLIGHT_VERSION;
        r->desc_num = QS * 2;
        cr_assert_eq(recover(0), -EINVAL, "a queue size that is not the ring's");
        r->desc_num = QS;
        r->desc[2].inflight = 7;
        cr_assert_eq(recover(0), -EINVAL, "inflight is a flag");
        r->desc[2].inflight = 0;
        /* with a request in flight, the used index and the last batch must add up */
        r->desc[3].inflight = 1;
        cr_assert_eq(recover(QS + 1), -EINVAL, "the guest's used index is further than a ring holds");
        r->last_batch_head = 200;
        cr_assert_eq(recover(1), -EINVAL, "a last batch outside the ring");
        r->last_batch_head = 0;
        r->desc[0].next = 500;
        cr_assert_eq(recover(2), -EINVAL, "a batch chain leading outside the ring");
        r->desc[0].next = 0;
        r->desc[3].inflight = 0;
        cr_assert_eq(recover(0), 0, "consistent again: nothing in flight");
}

/* A fresh region given to a ring that already ran (a new back end after a migration):
 * nothing is in flight, so any used index is taken, and the region follows it. */
Test(inflight, a_fresh_region_takes_any_used_index)
{
        cr_assert_eq(recover(1000), 0, "%s", why ? why : "");
        cr_assert_eq(t.r->used_idx, 1000);
        dp_inflight_popped(&t, 4);
        cr_assert_eq(recover(1000), 1);
        cr_assert_eq(heads[0], 4);
}

/* A head given back to the avail ring is not in flight. */
Test(inflight, an_unpopped_head_is_not_in_flight)
{
        dp_inflight_popped(&t, 1);
        dp_inflight_popped(&t, 2);
        dp_inflight_unpopped(&t, 2);
        cr_assert_eq(recover(0), 1);
        cr_assert_eq(heads[0], 1);
}
