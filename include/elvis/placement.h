/* Placement: pure functions from (topology, what is free, a request) to a plan or a
 * refusal with a reason. Same input, same plan. */
#pragma once
#include <elvis/model.h>
#include <elvis/topology.h>

#include <stddef.h>

/* CPUs the placement may hand out: allowed minus every core that has a busy PU
 * (SMT siblings of a VM's or sidecore's CPU are never shared with someone else). */
elvis_cpuset elvis_placement_free_cpus(const struct elvis_topology *t, const elvis_cpuset *allowed,
                                       const elvis_cpuset *busy);

/* Chooses nvcpus CPUs on whole free cores, within one NUMA node when they fit there
 * (best fit: the node with the least free room that still fits). ret_numa is -1 when
 * the VM had to span nodes. -ENOSPC with a reason when they do not fit at all. */
int elvis_place_vcpus(const struct elvis_topology *t, const elvis_cpuset *allowed, const elvis_cpuset *busy,
                      unsigned nvcpus, elvis_cpuset *ret_cpus, int *ret_numa, char *reason, size_t len);

/* Chooses a CPU for a new sidecore on a whole free core, on numa_pref if >= 0 and
 * possible (else any node); the highest-numbered free core, to keep low cores for VMs. */
int elvis_place_sidecore(const struct elvis_topology *t, const elvis_cpuset *allowed, const elvis_cpuset *busy,
                         int numa_pref, int *ret_cpu, char *reason, size_t len);

/* NUMA node of the host's (first) NIC with a known locality, or -1: where sidecores for
 * guests without a node of their own should go. */
int elvis_placement_nic_node(const struct elvis_topology *t);

/* The sidecore that should serve a new queue: fewest queues among those on numa
 * (any node if numa < 0 or none there) with fewer than limit queues; 0 if none. */
uint32_t elvis_pick_sidecore(const struct elvis_state *s, int numa, unsigned limit);

/* ---- vcpu-pinning respect: an orchestrator's pins are input, never output ---- */

/* The CPUs a VM's vCPUs are pinned to: the union of the n affinity sets (one per vCPU, or
 * one per pin statement), within host. A set that covers every CPU of host is no pin at
 * all (the vCPU floats) and adds nothing. */
elvis_cpuset elvis_placement_pinned_cpus(const elvis_cpuset *sets, unsigned n, const elvis_cpuset *host);

/* The NUMA node holding most of the pinned CPUs (ties: the lower node), -1 when none of
 * them is on a known node: where the VM's sidecores should go. */
int elvis_placement_pins_node(const struct elvis_topology *t, const elvis_cpuset *pinned);

/* A sidecore's CPU that an orchestrator gave to a VM's vCPUs. */
struct elvis_pin_conflict {
        uint32_t vm;
        uint32_t sidecore;
        int cpu;
};

/* Every (VM, sidecore) pair where the sidecore's CPU is among the VM's pinned CPUs, in
 * state order; at most max in ret. Returns how many there are. */
unsigned elvis_placement_pin_conflicts(const struct elvis_state *s, struct elvis_pin_conflict *ret, unsigned max);
