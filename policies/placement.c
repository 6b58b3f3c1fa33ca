/* vCPU, sidecore and queue placement over the topology model. */
#include <elvis/placement.h>

#include <errno.h>
#include <stdio.h>

static bool core_free(const struct elvis_core *c, const elvis_cpuset *allowed, const elvis_cpuset *busy)
{
        ELVIS_CPUSET_FOREACH(cpu, &c->pus)
                if (!elvis_cpuset_has(allowed, cpu) || elvis_cpuset_has(busy, cpu))
                        return false;
        return true;
}

elvis_cpuset elvis_placement_free_cpus(const struct elvis_topology *t, const elvis_cpuset *allowed,
                                       const elvis_cpuset *busy)
{
        elvis_cpuset free;

        elvis_cpuset_zero(&free);
        for (size_t i = 0; i < t->ncores; i++)
                if (core_free(&t->cores[i], allowed, busy))
                        elvis_cpuset_or(&free, &t->cores[i].pus);
        return free;
}

/* Free whole-core PUs on one node (numa -1: the whole machine). */
static elvis_cpuset node_free(const struct elvis_topology *t, const elvis_cpuset *free, int numa)
{
        elvis_cpuset s = *free;

        if (numa >= 0) {
                const struct elvis_numa_node *n = elvis_topology_numa(t, numa);
                if (n)
                        elvis_cpuset_and(&s, &n->cpus);
                else
                        elvis_cpuset_zero(&s);
        }
        return s;
}

/* Takes whole cores in order until n PUs are collected. */
static elvis_cpuset take(const struct elvis_topology *t, const elvis_cpuset *from, unsigned n)
{
        elvis_cpuset out;
        unsigned got = 0;

        elvis_cpuset_zero(&out);
        for (size_t i = 0; i < t->ncores && got < n; i++) {
                if (!elvis_cpuset_intersects(&t->cores[i].pus, from))
                        continue;
                ELVIS_CPUSET_FOREACH(cpu, &t->cores[i].pus) {
                        if (got == n || !elvis_cpuset_has(from, cpu))
                                break;
                        elvis_cpuset_set(&out, cpu);
                        got++;
                }
        }
        return out;
}

int elvis_place_vcpus(const struct elvis_topology *t, const elvis_cpuset *allowed, const elvis_cpuset *busy,
                      unsigned nvcpus, elvis_cpuset *ret_cpus, int *ret_numa, char *reason, size_t len)
{
        elvis_cpuset free = elvis_placement_free_cpus(t, allowed, busy);
        unsigned best_room = 0, largest = 0, total = elvis_cpuset_count(&free);
        int best = -2, largest_node = -1;

        if (nvcpus == 0) {
                elvis_cpuset_zero(ret_cpus);
                *ret_numa = -1;
                return 0;
        }
        for (size_t i = 0; i < t->nnuma; i++) {
                elvis_cpuset s = node_free(t, &free, t->numa[i].os_index);
                unsigned room = elvis_cpuset_count(&s);
                if (room > largest) {
                        largest = room;
                        largest_node = t->numa[i].os_index;
                }
                if (room >= nvcpus && (best == -2 || room < best_room)) {
                        best = t->numa[i].os_index;
                        best_room = room;
                }
        }
        if (best == -2) {
                if (total < nvcpus) {
                        if (t->nnuma > 1)
                                snprintf(reason, len,
                                         "needs %u CPU%s on whole free cores, %u free on the host (largest free: %u on node %d)",
                                         nvcpus, nvcpus == 1 ? "" : "s", total, largest, largest_node);
                        else
                                snprintf(reason, len, "needs %u CPU%s on whole free cores, %u free on the host",
                                         nvcpus, nvcpus == 1 ? "" : "s", total);
                        return -ENOSPC;
                }
                best = -1;      /* spans nodes */
        }
        {
                elvis_cpuset s = node_free(t, &free, best);
                *ret_cpus = take(t, &s, nvcpus);
        }
        *ret_numa = best;
        return 0;
}

int elvis_place_sidecore(const struct elvis_topology *t, const elvis_cpuset *allowed, const elvis_cpuset *busy,
                         int numa_pref, int *ret_cpu, char *reason, size_t len)
{
        elvis_cpuset free = elvis_placement_free_cpus(t, allowed, busy);

        for (int pass = 0; pass < 2; pass++) {
                int numa = pass == 0 ? numa_pref : -1;
                elvis_cpuset s;

                if (pass == 0 && numa_pref < 0)
                        continue;
                s = node_free(t, &free, numa);
                for (size_t i = t->ncores; i-- > 0;) {
                        int first = elvis_cpuset_next(&t->cores[i].pus, 0);
                        if (first >= 0 && elvis_cpuset_has(&s, first)) {
                                *ret_cpu = first;
                                return 0;
                        }
                }
        }
        snprintf(reason, len, "no whole free core for a sidecore (%u CPUs free, all on partly used cores or none)",
                 elvis_cpuset_count(&free));
        return -ENOSPC;
}

int elvis_placement_nic_node(const struct elvis_topology *t)
{
        for (size_t i = 0; i < t->nnics; i++)
                if (t->nics[i].numa >= 0)
                        return t->nics[i].numa;
        return -1;
}

uint32_t elvis_pick_sidecore(const struct elvis_state *s, int numa, unsigned limit)
{
        uint32_t best = 0;
        unsigned best_load = 0;

        for (int pass = 0; pass < 2 && !best; pass++)
                for (unsigned i = 0; i < s->nsidecores; i++) {
                        const struct elvis_sidecore *sc = &s->sidecores[i];
                        unsigned load;
                        if (pass == 0 && numa >= 0 && sc->numa != numa)
                                continue;
                        load = elvis_state_sidecore_load(s, sc->id);
                        if (load >= limit)
                                continue;
                        if (!best || load < best_load) {
                                best = sc->id;
                                best_load = load;
                        }
                }
        return best;
}

elvis_cpuset elvis_placement_pinned_cpus(const elvis_cpuset *sets, unsigned n, const elvis_cpuset *host)
{
        elvis_cpuset out;

        elvis_cpuset_zero(&out);
        for (unsigned i = 0; i < n; i++) {
                elvis_cpuset s = sets[i];
                elvis_cpuset_and(&s, host);
                if (!elvis_cpuset_equal(&s, host))
                        elvis_cpuset_or(&out, &s);
        }
        return out;
}

int elvis_placement_pins_node(const struct elvis_topology *t, const elvis_cpuset *pinned)
{
        unsigned most = 0;
        int node = -1;

        for (size_t i = 0; i < t->nnuma; i++) {
                elvis_cpuset s = *pinned;
                unsigned n;
                elvis_cpuset_and(&s, &t->numa[i].cpus);
                n = elvis_cpuset_count(&s);
                if (n > most || (n && n == most && t->numa[i].os_index < node)) {
                        most = n;
                        node = t->numa[i].os_index;
                }
        }
        return node;
}

unsigned elvis_placement_pin_conflicts(const struct elvis_state *s, struct elvis_pin_conflict *ret, unsigned max)
{
        unsigned n = 0;

        for (unsigned i = 0; i < s->nvms; i++)
                for (unsigned k = 0; k < s->nsidecores; k++) {
                        if (!elvis_cpuset_has(&s->vms[i].pinned, s->sidecores[k].cpu))
                                continue;
                        if (n < max)
                                ret[n] = (struct elvis_pin_conflict){ .vm = s->vms[i].id,
                                                                      .sidecore = s->sidecores[k].id,
                                                                      .cpu = s->sidecores[k].cpu };
                        n++;
                }
        return n;
}
