/* Rates for elvisctl top, computed from two /v1/stats documents (pure). */
#pragma once
#include <jansson.h>

/* {"interval_s", "sidecores":[{id,cpu,load,pps,queues,sleeping}],
 *  "queues":[{vm_name,device,queue,sidecore,pps,kicks_ps,interrupts_ps,polling,state}]}.
 * Counters that went backwards (a restart) count as zero. */
json_t *elvis_top_rates(const json_t *prev, const json_t *cur);
