/* Unit tests: placement on synthetic and XML topologies: whole cores, NUMA locality,
 * best fit, sidecores near their guests (or the NIC), precise refusals, determinism,
 * and a property test over random add/remove sequences. */
#include <criterion/criterion.h>

#include "../../daemon/topology_hwloc.h"

#include <elvis/placement.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static struct elvis_topology topo(const char *synthetic)
{
        struct elvis_topology t;
        char err[256];

        cr_assert_eq(elvis_topology_load(ELVIS_TOPOLOGY_SYNTHETIC, synthetic, &t, err, sizeof(err)), 0, "%s", err);
        return t;
}

static elvis_cpuset cpus(const char *list)
{
        elvis_cpuset s;
        cr_assert_eq(elvis_cpuset_parse(list, &s), 0);
        return s;
}

static char *fmt(const elvis_cpuset *s)
{
        static char buf[256];
        elvis_cpuset_format(s, buf, sizeof(buf));
        return buf;
}

Test(placement, one_socket_two_cores)
{
        struct elvis_topology t = topo("package:1 core:2 pu:1");
        elvis_cpuset allowed = cpus("1"), busy = cpus(""), got;
        char reason[256];
        int numa, cpu;

        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 1, &got, &numa, reason, sizeof(reason)), 0);
        cr_assert_str_eq(fmt(&got), "1");
        busy = got;
        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 1, &got, &numa, reason, sizeof(reason)), -ENOSPC);
        cr_assert_str_eq(reason, "needs 1 CPU on whole free cores, 0 free on the host");
        cr_assert_eq(elvis_place_sidecore(&t, &allowed, &busy, -1, &cpu, reason, sizeof(reason)), -ENOSPC);
        elvis_topology_free(&t);
}

Test(placement, whole_cores_in_one_node_best_fit)
{
        struct elvis_topology t = topo("package:2 numa:1 core:8 pu:2");
        elvis_cpuset allowed = cpus("2-31"), busy = cpus(""), got;
        char reason[256];
        int numa;

        /* node 0 has 7 free cores (core 0 holds the reserved CPUs), node 1 has 8: best fit is node 0 */
        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 4, &got, &numa, reason, sizeof(reason)), 0);
        cr_assert_eq(numa, 0);
        cr_assert_str_eq(fmt(&got), "2-5", "two whole cores, siblings together");
        elvis_cpuset_or(&busy, &got);
        /* 3 vCPUs take two whole cores: the fourth PU stays with the VM's core, nobody else's */
        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 3, &got, &numa, reason, sizeof(reason)), 0);
        cr_assert_str_eq(fmt(&got), "6-8");
        elvis_cpuset_or(&busy, &got);
        {
                elvis_cpuset free = elvis_placement_free_cpus(&t, &allowed, &busy);
                cr_assert_not(elvis_cpuset_has(&free, 9), "CPU 9 shares a core with the VM's CPU 8");
        }
        /* 12 vCPUs do not fit what is left of node 0 (6 PUs) but fit node 1 */
        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 12, &got, &numa, reason, sizeof(reason)), 0);
        cr_assert_eq(numa, 1);
        cr_assert_str_eq(fmt(&got), "16-27");
        elvis_topology_free(&t);
}

Test(placement, spans_nodes_only_when_no_node_fits)
{
        struct elvis_topology t = topo("package:2 numa:1 core:4 pu:1");
        elvis_cpuset allowed = cpus("0-7"), busy = cpus("0,4"), got;
        char reason[256];
        int numa;

        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 5, &got, &numa, reason, sizeof(reason)), 0);
        cr_assert_eq(numa, -1, "5 vCPUs fit no node of 3 free CPUs each");
        cr_assert_eq(elvis_cpuset_count(&got), 5);
        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 7, &got, &numa, reason, sizeof(reason)), -ENOSPC);
        cr_assert_str_eq(reason, "needs 7 CPUs on whole free cores, 6 free on the host (largest free: 3 on node 0)");
        elvis_topology_free(&t);
}

Test(placement, refusal_names_what_is_short)
{
        struct elvis_topology t = topo("package:2 numa:1 core:4 pu:2");
        elvis_cpuset allowed = cpus("0-15"), busy = cpus("0-9"), got;
        char reason[256];
        int numa;

        cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 8, &got, &numa, reason, sizeof(reason)), -ENOSPC);
        cr_assert_str_eq(reason, "needs 8 CPUs on whole free cores, 6 free on the host (largest free: 6 on node 1)");
        elvis_topology_free(&t);
}

Test(placement, sidecore_prefers_the_vm_node_then_any)
{
        struct elvis_topology t = topo("package:2 numa:1 core:4 pu:2");
        elvis_cpuset allowed = cpus("2-15"), busy = cpus(""), b2;
        char reason[256];
        int cpu;

        cr_assert_eq(elvis_place_sidecore(&t, &allowed, &busy, 0, &cpu, reason, sizeof(reason)), 0);
        cr_assert_eq(cpu, 6, "highest free whole core of node 0");
        cr_assert_eq(elvis_place_sidecore(&t, &allowed, &busy, 1, &cpu, reason, sizeof(reason)), 0);
        cr_assert_eq(cpu, 14);
        b2 = cpus("2-7");
        cr_assert_eq(elvis_place_sidecore(&t, &allowed, &b2, 0, &cpu, reason, sizeof(reason)), 0);
        cr_assert_eq(cpu, 14, "node 0 full: another node rather than nothing");
        elvis_topology_free(&t);
}

Test(placement, sidecore_near_the_nic)
{
        struct elvis_topology t;
        elvis_cpuset allowed, busy = cpus("");
        char err[256], reason[256];
        int cpu;

        cr_assert_eq(elvis_topology_load(ELVIS_TOPOLOGY_XML, ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml", &t, err,
                                         sizeof(err)), 0);
        allowed = cpus("1-31");
        cr_assert_eq(elvis_placement_nic_node(&t), 2);
        cr_assert_eq(elvis_place_sidecore(&t, &allowed, &busy, elvis_placement_nic_node(&t), &cpu, reason,
                                          sizeof(reason)), 0);
        cr_assert_eq(elvis_topology_cpu_numa(&t, cpu), 2);
        elvis_topology_free(&t);
}

Test(placement, pick_sidecore_least_loaded_on_the_node)
{
        struct elvis_state s;

        cr_assert_eq(elvis_state_init(&s), 0);
        s.sidecores[0] = (struct elvis_sidecore){ .id = 1, .cpu = 2, .numa = 0 };
        s.sidecores[1] = (struct elvis_sidecore){ .id = 2, .cpu = 10, .numa = 1 };
        s.sidecores[2] = (struct elvis_sidecore){ .id = 3, .cpu = 4, .numa = 0 };
        s.nsidecores = 3;
        s.vms[0] = (struct elvis_vm){ .id = 1, .ndevices = 1 };
        s.vms[0].devices[0] = (struct elvis_device){ .queues = 2, .sidecore = { 1, 1 } };
        s.nvms = 1;
        cr_assert_eq(elvis_pick_sidecore(&s, 0, 8), 3, "node 0, fewest queues");
        cr_assert_eq(elvis_pick_sidecore(&s, 1, 8), 2);
        cr_assert_eq(elvis_pick_sidecore(&s, 0, 2), 3);
        cr_assert_eq(elvis_pick_sidecore(&s, 5, 8), 2, "no sidecore on node 5: least loaded anywhere");
        cr_assert_eq(elvis_pick_sidecore(&s, 0, 0), 0, "all full");
        elvis_state_fini(&s);
}

Test(placement, deterministic)
{
        struct elvis_topology t = topo("package:2 numa:2 core:4 pu:2");
        elvis_cpuset allowed = cpus("1-31"), busy = cpus("5,9,20"), a, b;
        char reason[256];
        int na, nb;

        for (unsigned v = 1; v <= 12; v++) {
                cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, v, &a, &na, reason, sizeof(reason)), 0);
                cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, v, &b, &nb, reason, sizeof(reason)), 0);
                cr_assert(elvis_cpuset_equal(&a, &b) && na == nb, "%u vCPUs: two different plans", v);
        }
        elvis_topology_free(&t);
}

/* 1,000 random add/remove sequences: a CPU is never handed out twice, reserved CPUs never,
 * and no core is ever split between two owners. */
Test(placement, property_never_double_books)
{
        struct elvis_topology t = topo("package:2 numa:2 core:4 pu:2");
        elvis_cpuset allowed = cpus("2-31");
        unsigned seed = 12345;
        char reason[256];

        for (int seq = 0; seq < 1000; seq++) {
                elvis_cpuset owned[16];
                unsigned nowned = 0;
                for (int step = 0; step < 40; step++) {
                        elvis_cpuset busy, got;
                        int numa, op = rand_r(&seed) % 3;
                        elvis_cpuset_zero(&busy);
                        for (unsigned i = 0; i < nowned; i++)
                                elvis_cpuset_or(&busy, &owned[i]);
                        if (op == 0 && nowned) {                /* remove a random owner */
                                unsigned k = (unsigned)rand_r(&seed) % nowned;
                                owned[k] = owned[--nowned];
                                continue;
                        }
                        if (nowned == 16)
                                continue;
                        if (op == 1) {                          /* a VM */
                                unsigned v = 1 + (unsigned)rand_r(&seed) % 7;
                                if (elvis_place_vcpus(&t, &allowed, &busy, v, &got, &numa, reason, sizeof(reason)))
                                        continue;
                                cr_assert_eq(elvis_cpuset_count(&got), v);
                        } else {                                /* a sidecore */
                                int cpu;
                                if (elvis_place_sidecore(&t, &allowed, &busy, rand_r(&seed) % 3 - 1, &cpu, reason,
                                                         sizeof(reason)))
                                        continue;
                                elvis_cpuset_zero(&got);
                                elvis_cpuset_set(&got, cpu);
                        }
                        cr_assert_not(elvis_cpuset_intersects(&got, &busy), "seq %d step %d: double booking", seq, step);
                        cr_assert_not(elvis_cpuset_has(&got, 0) || elvis_cpuset_has(&got, 1), "reserved CPU handed out");
                        ELVIS_CPUSET_FOREACH(c, &got) {
                                elvis_cpuset sib = elvis_topology_siblings(&t, c);
                                elvis_cpuset_andnot(&sib, &got);
                                cr_assert_not(elvis_cpuset_intersects(&sib, &busy), "seq %d: a core is split", seq);
                        }
                        owned[nowned++] = got;
                }
        }
        elvis_topology_free(&t);
}

/* ---- vcpu-pinning respect: an orchestrator's pins are input ---- */

Test(placement, pinned_cpus_leave_out_floating_vcpus)
{
        struct elvis_topology t = topo("package:2 numa:1 core:8 pu:2");
        elvis_cpuset sets[4] = { cpus("3"), cpus("0-31"), cpus("5,40-41"), cpus("0-63") }, got;

        got = elvis_placement_pinned_cpus(sets, 4, &t.online);
        cr_assert_str_eq(fmt(&got), "3,5", "a vCPU allowed everywhere is not pinned; CPUs the host lacks are dropped");
        got = elvis_placement_pinned_cpus(&sets[1], 1, &t.online);
        cr_assert(elvis_cpuset_empty(&got), "a VM whose vCPUs all float takes no CPU");
        got = elvis_placement_pinned_cpus(sets, 0, &t.online);
        cr_assert(elvis_cpuset_empty(&got));
        elvis_topology_free(&t);
}

Test(placement, pins_node_is_where_most_pins_are)
{
        struct elvis_topology t = topo("package:2 numa:1 core:8 pu:2");
        elvis_cpuset p;

        p = cpus("2-3,20");
        cr_assert_eq(elvis_placement_pins_node(&t, &p), 0);
        p = cpus("4,18-19");
        cr_assert_eq(elvis_placement_pins_node(&t, &p), 1);
        p = cpus("4,20");
        cr_assert_eq(elvis_placement_pins_node(&t, &p), 0, "a tie goes to the lower node");
        p = cpus("");
        cr_assert_eq(elvis_placement_pins_node(&t, &p), -1);
        p = cpus("100");
        cr_assert_eq(elvis_placement_pins_node(&t, &p), -1, "a CPU the topology lacks says nothing");
        elvis_topology_free(&t);
}

/* The orchestrator took node 1's two highest cores (and one PU of the core below): the
 * sidecore goes to node 1, on the highest core none of whose PUs is pinned. */
Test(placement, sidecore_avoids_orchestrator_pins)
{
        struct elvis_topology t = topo("package:2 numa:1 core:8 pu:2");
        elvis_cpuset allowed = cpus("2-31"), busy;
        struct elvis_state s;
        char reason[256];
        int cpu, node;

        cr_assert_eq(elvis_state_init(&s), 0);
        s.vms[0] = (struct elvis_vm){ .id = 1, .vcpus = 4, .numa = -1 };
        s.vms[0].pinned = cpus("27-31");
        s.nvms = 1;
        busy = elvis_state_used_cpus(&s);
        cr_assert_str_eq(fmt(&busy), "27-31", "pinned CPUs are taken");
        node = elvis_placement_pins_node(&t, &s.vms[0].pinned);
        cr_assert_eq(node, 1);
        cr_assert_eq(elvis_place_sidecore(&t, &allowed, &busy, node, &cpu, reason, sizeof(reason)), 0, "%s", reason);
        cr_assert_eq(cpu, 24, "cores 26-27, 28-29 and 30-31 hold pinned PUs");
        /* an ELVIS-placed VM does not get the pinned CPUs either */
        {
                elvis_cpuset got;
                elvis_cpuset_set(&busy, cpu);
                cr_assert_eq(elvis_place_vcpus(&t, &allowed, &busy, 6, &got, &node, reason, sizeof(reason)), 0);
                cr_assert_not(elvis_cpuset_intersects(&got, &s.vms[0].pinned));
        }
        elvis_state_fini(&s);
        elvis_topology_free(&t);
}

Test(placement, pin_conflicts_name_each_pair)
{
        struct elvis_state s;
        struct elvis_pin_conflict c[4];

        cr_assert_eq(elvis_state_init(&s), 0);
        s.sidecores[0] = (struct elvis_sidecore){ .id = 1, .cpu = 5 };
        s.sidecores[1] = (struct elvis_sidecore){ .id = 2, .cpu = 10 };
        s.sidecores[2] = (struct elvis_sidecore){ .id = 3, .cpu = 12 };
        s.nsidecores = 3;
        s.vms[0] = (struct elvis_vm){ .id = 7, .numa = -1, .pinned = cpus("4-5") };
        s.vms[1] = (struct elvis_vm){ .id = 8, .numa = -1, .pinned = cpus("9-10") };
        s.vms[2] = (struct elvis_vm){ .id = 9, .numa = -1, .cpus = cpus("14-15") };
        s.nvms = 3;
        cr_assert_eq(elvis_placement_pin_conflicts(&s, c, 4), 2);
        cr_assert(c[0].vm == 7 && c[0].sidecore == 1 && c[0].cpu == 5);
        cr_assert(c[1].vm == 8 && c[1].sidecore == 2 && c[1].cpu == 10);
        cr_assert_eq(elvis_placement_pin_conflicts(&s, c, 1), 2, "the count is whole even when ret is short");
        s.vms[1].pinned = cpus("9");
        cr_assert_eq(elvis_placement_pin_conflicts(&s, c, 4), 1, "re-pinned away: that conflict is gone");
        elvis_state_fini(&s);
}
