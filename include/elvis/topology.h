/* The host topology as ELVIS sees it: packages, NUMA nodes, L3 groups, cores, PUs, NICs.
 * A plain value built by the daemon from hwloc (live host or XML); policies only read it. */
#pragma once
#include <elvis/cpuset.h>

#define ELVIS_NAME_MAX 64

struct elvis_pu {
        int os_index;   /* Linux CPU number */
        int core;       /* index into elvis_topology.cores */
        int numa;       /* NUMA node os_index, -1 if unknown */
        int package;    /* package os_index */
        int l3;         /* L3 group index, -1 if none */
};

struct elvis_core {
        int index;      /* dense index */
        int os_index;   /* hwloc core os_index (may repeat across packages) */
        int package;
        int numa;
        elvis_cpuset pus;
};

struct elvis_numa_node {
        int os_index;
        uint64_t memory_bytes;
        elvis_cpuset cpus;
};

struct elvis_nic {
        char name[ELVIS_NAME_MAX];      /* OS device name, e.g. "eth0" (may be empty) */
        char pci[16];                   /* "0000:3b:00.0" */
        int numa;                       /* -1 if unknown */
        uint16_t vendor, device;
};

struct elvis_topology {
        char source[128];               /* "live host", "xml:/path", "synthetic:..." */
        int npackages;
        size_t npus, ncores, nnuma, nnics, nl3;
        struct elvis_pu *pus;           /* sorted by os_index */
        struct elvis_core *cores;
        struct elvis_numa_node *numa;   /* sorted by os_index */
        struct elvis_nic *nics;
        elvis_cpuset online;            /* every PU */
};

void elvis_topology_free(struct elvis_topology *t);
const struct elvis_pu *elvis_topology_pu(const struct elvis_topology *t, int cpu);
const struct elvis_numa_node *elvis_topology_numa(const struct elvis_topology *t, int os_index);
/* NUMA node of a CPU, or -1. */
int elvis_topology_cpu_numa(const struct elvis_topology *t, int cpu);
/* SMT siblings of cpu (including cpu), or an empty set if cpu is unknown. */
elvis_cpuset elvis_topology_siblings(const struct elvis_topology *t, int cpu);
/* Deep copy; returns 0 or -ENOMEM. */
int elvis_topology_copy(const struct elvis_topology *src, struct elvis_topology *ret);
