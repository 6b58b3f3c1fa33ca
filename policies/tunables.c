/* The policy tunables table (include/elvis/tunables.h). */
#include <elvis/model.h>
#include <elvis/tunables.h>
#include <uapi/elvis.h>

#include <string.h>

#define U(field, lo, hi, d, u, text) \
        { #field, ELVIS_TUNABLE_UINT, offsetof(struct elvis_policy, field), lo, hi, d, 0, 0, u, text }
#define D(field, lo, hi, d, lo_open, hi_open, text) \
        { #field, ELVIS_TUNABLE_DOUBLE, offsetof(struct elvis_policy, field), lo, hi, d, lo_open, hi_open, "", text }

const struct elvis_tunable elvis_tunables[] = {
        U(min_sidecores, 0, ELVIS_MAX_SIDECORES, 0, "", "sidecores kept even when idle"),
        U(max_sidecores, 1, ELVIS_MAX_SIDECORES, 64, "", "most sidecores dynamic mode creates"),
        U(interval_ms, 10, 60000, 100, "ms", "control loop period (IOcm's epoch)"),
        U(budget_packets, ELVIS_BUDGET_PACKETS_MIN, ELVIS_BUDGET_PACKETS_MAX, ELVIS_BUDGET_PACKETS_DEFAULT, "packets",
          "per queue per turn at weight 100; heavier weights scale it, within what the rings hold"),
        U(budget_bytes, ELVIS_BUDGET_BYTES_MIN, ELVIS_BUDGET_BYTES_MAX, ELVIS_BUDGET_BYTES_DEFAULT, "bytes",
          "per queue per turn at weight 100"),
        U(poll_start_rate, 0, 10000000, ELVIS_POLL_START_RATE_DEFAULT, "kicks/s",
          "kick rate that switches a queue to polling (exitless auto)"),
        U(poll_stop_idle_ms, 1, 600000, ELVIS_POLL_STOP_IDLE_MS_DEFAULT, "ms",
          "idle time that switches a polled queue back to notifications"),
        U(vanilla_busyloop_us, 0, 100000, 0, "us",
          "exitless never: a device thread polls its emptied rings this long before it sleeps (vhost-net's "
          "busyloop_timeout; 0: off)"),
        D(scale_up_idle, 0, 1, 0.12, 0, 1, "add a sidecore when the busiest is idle less than this (IOcm)"),
        D(scale_down_idle, 0, 1, 0.80, 1, 0, "remove one when all are idle more than this (IOcm)"),
        D(improvement_threshold, 0, 1, 0.25, 0, 0, "rebalance only for at least this much less imbalance (OVS)"),
        U(rebalance_interval_ms, 0, 3600000, 10000, "ms", "least time between rebalances"),
        U(cooldown_ms, 0, 3600000, 1000, "ms", "least time between two scaling steps"),
        U(max_wait_us, 1, 10000000, 200, "us", "queue wait that counts as saturation"),
};

const size_t elvis_ntunables = sizeof(elvis_tunables) / sizeof(elvis_tunables[0]);

const struct elvis_tunable *elvis_tunable_find(const char *name)
{
        for (size_t i = 0; i < elvis_ntunables; i++)
                if (strcmp(elvis_tunables[i].name, name) == 0)
                        return &elvis_tunables[i];
        return NULL;
}
