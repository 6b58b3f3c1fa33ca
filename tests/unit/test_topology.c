/* Unit tests: topology from hwloc synthetic descriptions and XML, and the model queries. */
#include <criterion/criterion.h>

#include "../../daemon/topology_hwloc.h"

#include <errno.h>

Test(topology, synthetic_two_sockets_smt)
{
        struct elvis_topology t;
        char err[256];
        elvis_cpuset sib;

        cr_assert_eq(elvis_topology_load(ELVIS_TOPOLOGY_SYNTHETIC, "package:2 numa:1 core:8 pu:2", &t, err,
                                         sizeof(err)), 0, "%s", err);
        cr_assert_eq(t.npus, 32);
        cr_assert_eq(t.ncores, 16);
        cr_assert_eq(t.nnuma, 2);
        cr_assert_eq(t.npackages, 2);
        cr_assert_eq(t.nnics, 0, "synthetic topologies have no I/O devices");
        cr_assert_eq(elvis_cpuset_count(&t.online), 32);
        sib = elvis_topology_siblings(&t, 5);
        cr_assert_eq(elvis_cpuset_count(&sib), 2);
        cr_assert(elvis_cpuset_has(&sib, 4) && elvis_cpuset_has(&sib, 5));
        cr_assert_eq(elvis_topology_cpu_numa(&t, 0), 0);
        cr_assert_eq(elvis_topology_cpu_numa(&t, 31), 1);
        cr_assert_eq(elvis_topology_cpu_numa(&t, 99), -1);
        cr_assert_null(elvis_topology_pu(&t, 32));
        cr_assert_eq(elvis_cpuset_count(&elvis_topology_numa(&t, 1)->cpus), 16);
        elvis_topology_free(&t);
}

Test(topology, synthetic_small_no_smt)
{
        struct elvis_topology t, copy;
        char err[256];

        cr_assert_eq(elvis_topology_load(ELVIS_TOPOLOGY_SYNTHETIC, "package:1 core:2 pu:1", &t, err, sizeof(err)), 0);
        cr_assert_eq(t.npus, 2);
        cr_assert_eq(t.ncores, 2);
        cr_assert_eq(elvis_cpuset_count(&t.cores[1].pus), 1);
        cr_assert_eq(elvis_topology_copy(&t, &copy), 0);
        elvis_topology_free(&t);
        cr_assert_eq(copy.npus, 2, "a copy outlives its source");
        cr_assert_eq(copy.pus[1].os_index, 1);
        elvis_topology_free(&copy);
}

Test(topology, xml_four_nodes_with_nic)
{
        struct elvis_topology t;
        char err[256];

        cr_assert_eq(elvis_topology_load(ELVIS_TOPOLOGY_XML, ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml", &t, err,
                                         sizeof(err)), 0, "%s", err);
        cr_assert_eq(t.npus, 32);
        cr_assert_eq(t.nnuma, 4);
        cr_assert_eq(t.nl3, 4);
        cr_assert_eq(t.nnics, 1);
        cr_assert_str_eq(t.nics[0].name, "ens2f0");
        cr_assert_str_eq(t.nics[0].pci, "0000:80:00.0");
        cr_assert_eq(t.nics[0].numa, 2);
        cr_assert_eq(t.nics[0].vendor, 0x8086);
        cr_assert_eq(elvis_topology_cpu_numa(&t, 16), 2);
        cr_assert_eq(t.pus[17].l3, 2);
        cr_assert(strstr(t.source, "xml:"));
        elvis_topology_free(&t);
}

Test(topology, bad_inputs_fail_with_a_message)
{
        struct elvis_topology t;
        char err[256] = "";

        cr_assert_lt(elvis_topology_load(ELVIS_TOPOLOGY_XML, "/nonexistent.xml", &t, err, sizeof(err)), 0);
        cr_assert(strstr(err, "/nonexistent.xml"), "%s", err);
        err[0] = '\0';
        cr_assert_lt(elvis_topology_load(ELVIS_TOPOLOGY_SYNTHETIC, "banana:7", &t, err, sizeof(err)), 0);
        cr_assert_neq(err[0], '\0');
        err[0] = '\0';
        cr_assert_lt(elvis_topology_load(ELVIS_TOPOLOGY_XML, ELVIS_SOURCE_DIR "/tests/data/config/ok-full.conf", &t,
                                         err, sizeof(err)), 0, "a non-XML file is refused");
}

Test(topology, live_host_loads)
{
        struct elvis_topology t;
        char err[256];

        cr_assert_eq(elvis_topology_load(ELVIS_TOPOLOGY_LIVE, NULL, &t, err, sizeof(err)), 0, "%s", err);
        cr_assert_geq(t.npus, 1);
        cr_assert_geq(t.ncores, 1);
        cr_assert_str_eq(t.source, "live host");
        elvis_topology_free(&t);
}
