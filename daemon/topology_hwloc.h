/* Builds the plain topology model from hwloc: the live host, an XML export or a
 * synthetic description. */
#pragma once
#include <elvis/topology.h>

#include <stddef.h>

enum elvis_topology_input {
        ELVIS_TOPOLOGY_LIVE,
        ELVIS_TOPOLOGY_XML,             /* arg: path to an hwloc XML file */
        ELVIS_TOPOLOGY_SYNTHETIC,       /* arg: e.g. "package:2 numa:1 core:8 pu:2" */
};

/* Returns 0, or -errno with a message in err. */
int elvis_topology_load(enum elvis_topology_input input, const char *arg, struct elvis_topology *ret, char *err,
                        size_t errlen);
