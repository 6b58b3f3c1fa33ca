/* Queries over the plain topology model. */
#include <elvis/topology.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void elvis_topology_free(struct elvis_topology *t)
{
        if (!t)
                return;
        free(t->pus);
        free(t->cores);
        free(t->numa);
        free(t->nics);
        memset(t, 0, sizeof(*t));
}

const struct elvis_pu *elvis_topology_pu(const struct elvis_topology *t, int cpu)
{
        size_t lo = 0, hi = t->npus;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (t->pus[mid].os_index == cpu)
                        return &t->pus[mid];
                if (t->pus[mid].os_index < cpu)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return NULL;
}

const struct elvis_numa_node *elvis_topology_numa(const struct elvis_topology *t, int os_index)
{
        for (size_t i = 0; i < t->nnuma; i++)
                if (t->numa[i].os_index == os_index)
                        return &t->numa[i];
        return NULL;
}

int elvis_topology_cpu_numa(const struct elvis_topology *t, int cpu)
{
        const struct elvis_pu *pu = elvis_topology_pu(t, cpu);
        return pu ? pu->numa : -1;
}

elvis_cpuset elvis_topology_siblings(const struct elvis_topology *t, int cpu)
{
        const struct elvis_pu *pu = elvis_topology_pu(t, cpu);
        elvis_cpuset none;

        if (pu && pu->core >= 0 && (size_t)pu->core < t->ncores)
                return t->cores[pu->core].pus;
        elvis_cpuset_zero(&none);
        return none;
}

static void *dup_array(const void *src, size_t n, size_t size, int *err)
{
        void *p;

        if (!n)
                return NULL;
        p = malloc(n * size);
        if (!p) {
                *err = -ENOMEM;
                return NULL;
        }
        memcpy(p, src, n * size);
        return p;
}

int elvis_topology_copy(const struct elvis_topology *src, struct elvis_topology *ret)
{
        struct elvis_topology t = *src;
        int err = 0;

        t.pus = dup_array(src->pus, src->npus, sizeof(*src->pus), &err);
        t.cores = dup_array(src->cores, src->ncores, sizeof(*src->cores), &err);
        t.numa = dup_array(src->numa, src->nnuma, sizeof(*src->numa), &err);
        t.nics = dup_array(src->nics, src->nnics, sizeof(*src->nics), &err);
        if (err) {
                elvis_topology_free(&t);
                return err;
        }
        *ret = t;
        return 0;
}
