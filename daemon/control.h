/* The control loop: every policy interval it samples the data plane, builds a snapshot,
 * runs the dynamic policies (mode dynamic) and applies their plan as one transaction;
 * every decision goes to the journal with its reason and before/after figures. */
#pragma once
#include <elvis/policy.h>

#include <jansson.h>
#include <stdint.h>

struct elvis_manager;

int elvis_control_start(struct elvis_manager *m);
void elvis_control_stop(struct elvis_manager *m);
/* What the policies would do now (nothing is applied): {"snapshot":..., "plan":...}. */
json_t *elvis_control_plan(struct elvis_manager *m);
/* Samples once and runs the policies now (tests and the simulator's live twin). */
void elvis_control_tick(struct elvis_manager *m);

/* Control-loop decisions since the daemon started, per policy ("scaling", "balance",
 * "regret", then any other name a policy gives): [{"policy", "applied", "failed"}]. */
json_t *elvis_control_decisions(struct elvis_manager *m);

/* The journal: a bounded ring of events, numbered from 1. */
void elvis_journal_add(struct elvis_manager *m, const char *source, json_t *event);
/* Events with seq > since (at most max); the newest seq in *ret_last. */
json_t *elvis_journal_since(struct elvis_manager *m, uint64_t since, unsigned max, uint64_t *ret_last);
/* Identifies this daemon run; a client that sees it change starts again from since=0. */
const char *elvis_journal_boot(struct elvis_manager *m);
