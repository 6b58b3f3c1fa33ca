/* Per-queue polling thresholds from observed rates: a queue with steady traffic keeps
 * polling through short gaps; a queue that only trickles returns to notifications fast
 * and needs a real burst of kicks to be polled again. */
#include <elvis/policy.h>

void elvis_policy_polling(const struct elvis_snap_queue *q, const struct elvis_policy *p, unsigned *ret_start_rate,
                          unsigned *ret_stop_idle_ms)
{
        unsigned start = p->poll_start_rate, stop = p->poll_stop_idle_ms;

        if (q->pps > 100000) {
                /* busy: polling pays; stay through gaps of several times the default */
                stop = stop * 4 > 60000 ? 60000 : stop * 4;
                start = start / 2;
        } else if (q->pps < 100 && q->kicks_ps < p->poll_start_rate / 10.0) {
                /* trickle: a polled core would spin for nothing */
                stop = stop / 4 ? stop / 4 : 1;
                start = start * 2;
        }
        *ret_start_rate = start;
        *ret_stop_idle_ms = stop;
}
