/* Rates for elvisctl top, computed from two /v1/stats documents (pure). */
#pragma once
#include <jansson.h>

/* Returns {"interval_s", "available", "dataplane",
 *          "sidecores": [{id, cpu, queues, sleeping, load, pps}],
 *          "queues": [{vm, vm_name, device, queue, sidecore, state, polling, pps, kicks_ps, interrupts_ps}]}
 * for the objects of cur; load is delta busy_ns / (delta busy_ns + delta idle_ns) in [0, 1],
 * pps counts rx + tx. An object absent from prev (new), a counter that went backwards (the
 * daemon restarted) or a timestamp that did not advance gives rate 0, never a division by
 * zero. NULL only when out of memory. */
json_t *elvis_top_rates(const json_t *prev, const json_t *cur);
