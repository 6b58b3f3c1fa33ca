/* hwloc discovery into struct elvis_topology. */
#include "topology_hwloc.h"

#include <errno.h>
#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int numa_of_cpuset(hwloc_topology_t topo, hwloc_const_cpuset_t cpuset)
{
        hwloc_obj_t node = NULL, found = NULL;

        if (!cpuset || hwloc_bitmap_iszero(cpuset))
                return -1;
        while ((node = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, node)))
                if (node->cpuset && hwloc_bitmap_isincluded(cpuset, node->cpuset)) {
                        if (found)
                                return -1;      /* ambiguous: several nodes cover it */
                        found = node;
                }
        return found ? (int)found->os_index : -1;
}

static int cmp_pu(const void *a, const void *b)
{
        const struct elvis_pu *x = a, *y = b;
        return (x->os_index > y->os_index) - (x->os_index < y->os_index);
}

static int cmp_numa(const void *a, const void *b)
{
        const struct elvis_numa_node *x = a, *y = b;
        return (x->os_index > y->os_index) - (x->os_index < y->os_index);
}

static void cpuset_from_hwloc(elvis_cpuset *dst, hwloc_const_bitmap_t src)
{
        unsigned id;

        elvis_cpuset_zero(dst);
        hwloc_bitmap_foreach_begin(id, src) {
                elvis_cpuset_set(dst, (int)id);
        }
        hwloc_bitmap_foreach_end();
}

static int build(hwloc_topology_t topo, struct elvis_topology *t, char *err, size_t errlen)
{
        int npu = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
        int ncore = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        int nnuma = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
        int nl3 = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_L3CACHE);
        hwloc_obj_t obj;

        if (npu <= 0) {
                snprintf(err, errlen, "topology has no processing units");
                return -EINVAL;
        }
        if (ncore <= 0)
                ncore = npu;    /* no core level: each PU is its own core */
        t->pus = calloc((size_t)npu, sizeof(*t->pus));
        t->cores = calloc((size_t)ncore, sizeof(*t->cores));
        t->numa = calloc(nnuma > 0 ? (size_t)nnuma : 1, sizeof(*t->numa));
        if (!t->pus || !t->cores || !t->numa)
                return -ENOMEM;
        t->npackages = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PACKAGE);
        if (t->npackages <= 0)
                t->npackages = 1;
        t->nl3 = nl3 > 0 ? (size_t)nl3 : 0;

        for (int i = 0; i < nnuma; i++) {
                obj = hwloc_get_obj_by_type(topo, HWLOC_OBJ_NUMANODE, (unsigned)i);
                t->numa[i].os_index = (int)obj->os_index;
                t->numa[i].memory_bytes = obj->attr ? obj->attr->numanode.local_memory : 0;
                cpuset_from_hwloc(&t->numa[i].cpus, obj->cpuset);
        }
        t->nnuma = (size_t)nnuma;
        qsort(t->numa, t->nnuma, sizeof(*t->numa), cmp_numa);

        for (int i = 0; i < npu; i++) {
                hwloc_obj_t pu = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)i);
                hwloc_obj_t core = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_CORE, pu);
                hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pu);
                hwloc_obj_t l3 = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_L3CACHE, pu);
                struct elvis_pu *p = &t->pus[i];
                int ci = core ? (int)core->logical_index : i;

                if (!elvis_cpuset_valid_cpu((int)pu->os_index)) {
                        snprintf(err, errlen, "CPU %u is beyond the supported %d CPUs", pu->os_index,
                                 ELVIS_MAX_CPUS);
                        return -ERANGE;
                }
                p->os_index = (int)pu->os_index;
                p->core = ci;
                p->package = pkg ? (int)pkg->os_index : 0;
                p->l3 = l3 ? (int)l3->logical_index : -1;
                p->numa = numa_of_cpuset(topo, pu->cpuset);
                elvis_cpuset_set(&t->online, p->os_index);
                if (ci < ncore) {
                        struct elvis_core *c = &t->cores[ci];
                        c->index = ci;
                        c->os_index = core ? (int)core->os_index : p->os_index;
                        c->package = p->package;
                        c->numa = p->numa;
                        elvis_cpuset_set(&c->pus, p->os_index);
                }
        }
        t->npus = (size_t)npu;
        t->ncores = (size_t)ncore;
        qsort(t->pus, t->npus, sizeof(*t->pus), cmp_pu);

        /* NICs: PCI network controllers (class 0x02xx), named by their OS device if bound */
        obj = NULL;
        while ((obj = hwloc_get_next_pcidev(topo, obj))) {
                hwloc_obj_t anc, child;
                struct elvis_nic *nics, *n;

                if ((obj->attr->pcidev.class_id >> 8) != 0x02)
                        continue;
                nics = realloc(t->nics, (t->nnics + 1) * sizeof(*nics));
                if (!nics)
                        return -ENOMEM;
                t->nics = nics;
                n = &t->nics[t->nnics++];
                memset(n, 0, sizeof(*n));
                snprintf(n->pci, sizeof(n->pci), "%04x:%02x:%02x.%01x", obj->attr->pcidev.domain,
                         obj->attr->pcidev.bus, obj->attr->pcidev.dev, obj->attr->pcidev.func);
                n->vendor = obj->attr->pcidev.vendor_id;
                n->device = obj->attr->pcidev.device_id;
                for (child = obj->io_first_child; child; child = child->next_sibling)
                        if (child->type == HWLOC_OBJ_OS_DEVICE && child->attr->osdev.type == HWLOC_OBJ_OSDEV_NETWORK &&
                            child->name) {
                                snprintf(n->name, sizeof(n->name), "%s", child->name);
                                break;
                        }
                anc = hwloc_get_non_io_ancestor_obj(topo, obj);
                n->numa = anc ? numa_of_cpuset(topo, anc->cpuset) : -1;
        }
        return 0;
}

int elvis_topology_load(enum elvis_topology_input input, const char *arg, struct elvis_topology *ret, char *err,
                        size_t errlen)
{
        struct elvis_topology t = { 0 };
        hwloc_topology_t topo;
        int r;

        if (hwloc_topology_init(&topo) < 0) {
                snprintf(err, errlen, "hwloc initialisation failed");
                return -ENOMEM;
        }
        hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
        switch (input) {
        case ELVIS_TOPOLOGY_XML:
                r = hwloc_topology_set_xml(topo, arg);
                snprintf(t.source, sizeof(t.source), "xml:%s", arg);
                break;
        case ELVIS_TOPOLOGY_SYNTHETIC:
                r = hwloc_topology_set_synthetic(topo, arg);
                snprintf(t.source, sizeof(t.source), "synthetic:%s", arg);
                break;
        default:
                r = 0;
                snprintf(t.source, sizeof(t.source), "live host");
                break;
        }
        if (r < 0) {
                r = errno ? -errno : -EINVAL;
                snprintf(err, errlen, "cannot use %s: %s", t.source, strerror(-r));
                hwloc_topology_destroy(topo);
                return r;
        }
        if (hwloc_topology_load(topo) < 0) {
                r = errno ? -errno : -EINVAL;
                snprintf(err, errlen, "cannot load topology from %s: %s", t.source, strerror(-r));
                hwloc_topology_destroy(topo);
                return r;
        }
        r = build(topo, &t, err, errlen);
        hwloc_topology_destroy(topo);
        if (r < 0) {
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                elvis_topology_free(&t);
                return r;
        }
        *ret = t;
        return 0;
}
