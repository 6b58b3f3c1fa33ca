/* Read-only JSON views of the manager: health, topology with CPU roles, statistics. */
#include "manager.h"

#include <elvis/version.h>

#include "libvirt.h"
#include "loop.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dp_status_name(enum elvis_dp_status s)
{
        switch (s) {
        case ELVIS_DP_RUNNING:
                return "running";
        case ELVIS_DP_FAILED:
                return "failed";
        default:
                return "absent";
        }
}

/* What an operator should act on although the daemon serves: VMs whose queues have no
 * sidecore get no I/O, and libvirt's pin conflicts. */
static json_t *warnings(struct elvis_manager *m)
{
        json_t *a = json_array();
        char reason[256] = "", detail[512];

        for (unsigned i = 0; i < m->state.nvms; i++) {
                const struct elvis_vm *vm = &m->state.vms[i];
                unsigned n = elvis_manager_vm_unserved(&m->state, vm);
                if (!n)
                        continue;
                if (!reason[0])
                        elvis_manager_unserved_reason(m, reason, sizeof(reason));
                snprintf(detail, sizeof(detail), "VM %u '%s': %u queue(s) have no sidecore and get no I/O: %s", vm->id,
                         vm->name, n, reason);
                json_array_append_new(a, json_pack("{s:s, s:s, s:i, s:s, s:i}", "kind", "queues_unserved", "message",
                                                   detail, "vm", (int)vm->id, "vm_name", vm->name, "queues", (int)n));
        }
        elvis_libvirt_add_warnings(m, a);
        return a;
}

json_t *elvis_manager_health(struct elvis_manager *m)
{
        char detail[256];
        bool healthy = m->dp_status == ELVIS_DP_RUNNING;
        json_t *dp, *h;

        snprintf(detail, sizeof(detail), "%s", m->dp_detail);
        if (healthy && m->dp_ops->health && m->dp_ops->health(m->dp, detail, sizeof(detail)) < 0)
                healthy = false;
        dp = json_pack("{s:s, s:s, s:s, s:o}", "kind", m->dp_kind, "state",
                       dp_status_name(m->dp_status == ELVIS_DP_RUNNING && !healthy ? ELVIS_DP_FAILED : m->dp_status),
                       "detail",
                       detail, "implementation", m->dp_ops ? json_string(m->dp_ops->kind) : json_null());
        h = json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:i, s:i, s:s}", "status", healthy ? "ok" : "degraded",
                      "version", ELVIS_VERSION, "uptime_s",
                      (json_int_t)((elvis_now_ns() - m->start_ns) / 1000000000u), "started",
                      (json_int_t)m->start_wall, "dataplane", dp, "libvirt", elvis_libvirt_status(m), "vms",
                      (int)m->state.nvms, "sidecores", (int)m->state.nsidecores, "topology", m->topo.source);
        json_object_set_new(h, "warnings", warnings(m));
        return h;
}

static json_t *cpu_role(struct elvis_manager *m, int cpu)
{
        const struct elvis_state *s = &m->state;
        json_t *j = json_object();

        for (unsigned i = 0; i < s->nsidecores; i++)
                if (s->sidecores[i].cpu == cpu) {
                        json_object_set_new(j, "role", json_string("sidecore"));
                        json_object_set_new(j, "sidecore", json_integer(s->sidecores[i].id));
                        return j;
                }
        for (unsigned i = 0; i < s->nvms; i++)
                if (elvis_cpuset_has(&s->vms[i].cpus, cpu) || elvis_cpuset_has(&s->vms[i].pinned, cpu)) {
                        json_object_set_new(j, "role", json_string("vcpu"));
                        json_object_set_new(j, "vm", json_integer(s->vms[i].id));
                        json_object_set_new(j, "vm_name", json_string(s->vms[i].name));
                        return j;
                }
        if (elvis_cpuset_has(&m->cfg.reserved_cpus, cpu))
                json_object_set_new(j, "role", json_string("reserved"));
        else if (!elvis_cpuset_has(&m->allowed, cpu))
                json_object_set_new(j, "role", json_string("host"));
        else
                json_object_set_new(j, "role", json_string("free"));
        return j;
}

static json_t *node_or_null(int numa)
{
        return numa >= 0 ? json_integer(numa) : json_null();
}

json_t *elvis_manager_topology(struct elvis_manager *m)
{
        const struct elvis_topology *t = &m->topo;
        json_t *j = json_object(), *nodes = json_array(), *cores = json_array(), *cpus = json_array(),
               *nics = json_array();

        json_object_set_new(j, "source", json_string(t->source));
        json_object_set_new(j, "packages", json_integer(t->npackages));
        for (size_t i = 0; i < t->nnuma; i++)
                json_array_append_new(nodes, json_pack("{s:i, s:o, s:I}", "id", t->numa[i].os_index, "cpus",
                                                       elvis_cpuset_to_json(&t->numa[i].cpus), "memory_bytes",
                                                       (json_int_t)t->numa[i].memory_bytes));
        for (size_t i = 0; i < t->ncores; i++)
                json_array_append_new(cores, json_pack("{s:i, s:i, s:o, s:o}", "index", t->cores[i].index, "package",
                                                       t->cores[i].package, "numa_node", node_or_null(t->cores[i].numa),
                                                       "cpus", elvis_cpuset_to_json(&t->cores[i].pus)));
        for (size_t i = 0; i < t->npus; i++) {
                const struct elvis_pu *pu = &t->pus[i];
                elvis_cpuset sib = elvis_topology_siblings(t, pu->os_index);
                json_t *c = json_pack("{s:i, s:i, s:i, s:o, s:o, s:o}", "cpu", pu->os_index, "core", pu->core,
                                      "package", pu->package, "numa_node", node_or_null(pu->numa), "l3",
                                      pu->l3 >= 0 ? json_integer(pu->l3) : json_null(), "siblings",
                                      elvis_cpuset_to_json(&sib));
                json_object_update_new(c, cpu_role(m, pu->os_index));
                json_array_append_new(cpus, c);
        }
        for (size_t i = 0; i < t->nnics; i++) {
                char vendor[8], device[8];
                snprintf(vendor, sizeof(vendor), "%04x", t->nics[i].vendor);
                snprintf(device, sizeof(device), "%04x", t->nics[i].device);
                json_array_append_new(nics, json_pack("{s:o, s:s, s:o, s:s, s:s}", "name",
                                                      t->nics[i].name[0] ? json_string(t->nics[i].name) : json_null(),
                                                      "pci", t->nics[i].pci, "numa_node", node_or_null(t->nics[i].numa),
                                                      "vendor", vendor, "device", device));
        }
        json_object_set_new(j, "numa_nodes", nodes);
        json_object_set_new(j, "cores", cores);
        json_object_set_new(j, "cpus", cpus);
        json_object_set_new(j, "nics", nics);
        json_object_set_new(j, "allowed_cpus", elvis_cpuset_to_json(&m->allowed));
        json_object_set_new(j, "reserved_cpus", elvis_cpuset_to_json(&m->cfg.reserved_cpus));
        json_object_set_new(j, "exitless", elvis_manager_exitless_probe(m));
        return j;
}

static const char *queue_state_name(enum elvis_dp_queue_state s)
{
        static const char *const names[] = { "disconnected", "ready", "error" };
        return s < __ELVIS_DP_QUEUE_STATE_MAX ? names[s] : "unknown";
}

json_t *elvis_manager_stats(struct elvis_manager *m)
{
        struct elvis_dp_stats st = { 0 };
        json_t *j = json_object(), *scs = json_array(), *qs = json_array(), *vms = json_array();
        int r = -ENODEV;

        if (m->dp_status == ELVIS_DP_RUNNING)
                r = m->dp_ops->stats_read(m->dp, &st);
        json_object_set_new(j, "dataplane", json_string(m->dp_kind));
        json_object_set_new(j, "available", json_boolean(r == 0));
        json_object_set_new(j, "timestamp_ns", json_integer((json_int_t)(r == 0 ? st.timestamp_ns : elvis_now_ns())));
        for (unsigned i = 0; r == 0 && i < st.nsidecores; i++) {
                const struct elvis_dp_sidecore_stats *s = &st.sidecores[i];
                uint64_t total = s->busy_ns + s->idle_ns;
                json_t *o = json_pack(
                        "{s:i, s:i, s:i, s:b, s:I, s:I, s:I, s:I, s:f, s:I, s:I, s:I}", "id", (int)s->id, "cpu", s->cpu,
                        "queues", (int)s->nqueues, "sleeping", s->sleeping, "polls", (json_int_t)s->polls,
                        "empty_polls", (json_int_t)s->empty_polls, "busy_ns", (json_int_t)s->busy_ns, "idle_ns",
                        (json_int_t)s->idle_ns, "load", total ? (double)s->busy_ns / (double)total : 0.0,
                        "packets", (json_int_t)s->packets, "bytes", (json_int_t)s->bytes, "wakeups",
                        (json_int_t)s->wakeups);
                if (s->stolen_known)
                        json_object_set_new(o, "stolen_ns", json_integer((json_int_t)s->stolen_ns));
                if (s->rounds_known) {
                        json_object_set_new(o, "rounds", json_integer((json_int_t)s->rounds));
                        json_object_set_new(o, "empty_rounds", json_integer((json_int_t)s->empty_rounds));
                }
                json_array_append_new(scs, o);
        }
        for (unsigned i = 0; r == 0 && i < st.nqueues; i++) {
                const struct elvis_dp_queue_stats *q = &st.queues[i];
                struct elvis_vm *vm = elvis_state_vm(&m->state, q->vm_id);
                json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:i, s:o, s:s, s:b}", "vm", (int)q->vm_id, "vm_name",
                                      vm ? vm->name : "", "device", q->device, "type",
                                      elvis_device_type_name(q->type), "queue", (int)q->queue, "sidecore",
                                      q->sidecore ? json_integer(q->sidecore) : json_null(), "state",
                                      queue_state_name(q->state), "polling", q->polling);
                json_object_update_new(o, json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                                                     "rx_packets", (json_int_t)q->rx_packets, "rx_bytes",
                                                     (json_int_t)q->rx_bytes, "tx_packets", (json_int_t)q->tx_packets,
                                                     "tx_bytes", (json_int_t)q->tx_bytes, "kicks", (json_int_t)q->kicks,
                                                     "interrupts", (json_int_t)q->interrupts, "polls",
                                                     (json_int_t)q->polls, "empty_polls", (json_int_t)q->empty_polls,
                                                     "busy_ns", (json_int_t)q->busy_ns, "wait_ns",
                                                     (json_int_t)q->wait_ns, "wait_samples",
                                                     (json_int_t)q->wait_samples, "errors", (json_int_t)q->errors));
                json_object_set_new(o, "signals_deferred", json_integer((json_int_t)q->signals_deferred));
                json_object_set_new(o, "drops", json_integer((json_int_t)q->drops));
                json_array_append_new(qs, o);
        }
        /* per-VM cycles on shared sidecores: what a VM costs, for billing or caps */
        for (unsigned v = 0; r == 0 && v < m->state.nvms; v++) {
                uint64_t busy = 0, pkts = 0, bytes = 0;
                for (unsigned i = 0; i < st.nqueues; i++)
                        if (st.queues[i].vm_id == m->state.vms[v].id) {
                                busy += st.queues[i].busy_ns;
                                pkts += st.queues[i].rx_packets + st.queues[i].tx_packets;
                                bytes += st.queues[i].rx_bytes + st.queues[i].tx_bytes;
                        }
                json_array_append_new(vms, json_pack("{s:i, s:s, s:i, s:I, s:I, s:I}", "id", (int)m->state.vms[v].id,
                                                     "name", m->state.vms[v].name, "weight",
                                                     (int)m->state.vms[v].policy.weight, "busy_ns", (json_int_t)busy,
                                                     "packets", (json_int_t)pkts, "bytes", (json_int_t)bytes));
        }
        json_object_set_new(j, "sidecores", scs);
        json_object_set_new(j, "queues", qs);
        json_object_set_new(j, "vms", vms);
        elvis_dp_stats_fini(&st);
        return j;
}

/* ---- exit-less capability probe: facts from sysfs, "unknown" when absent ---- */

static const char *sysfs_root(void)
{
        const char *r = getenv("ELVIS_SYSFS");     /* tests point this at a fake tree */
        return r && *r ? r : "/sys";
}

static bool read_sys(const char *rel, char *buf, size_t size)
{
        char path[512];
        FILE *f;
        size_t n;

        snprintf(path, sizeof(path), "%s/%s", sysfs_root(), rel);
        f = fopen(path, "re");
        if (!f)
                return false;
        n = fread(buf, 1, size - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
                buf[--n] = '\0';
        return true;
}

static json_t *bool_param(const char *v)
{
        if (!strcmp(v, "Y") || !strcmp(v, "y") || !strcmp(v, "1"))
                return json_string("yes");
        if (!strcmp(v, "N") || !strcmp(v, "n") || !strcmp(v, "0"))
                return json_string("no");
        return json_string("unknown");
}

json_t *elvis_manager_exitless_probe(struct elvis_manager *m)
{
        char v[4096];
        json_t *j = json_object(), *pi = NULL, *scs = json_array();
        elvis_cpuset iso, nohz;
        bool have_iso = false, have_nohz = false;

        if (read_sys("module/kvm_intel/parameters/enable_apicv", v, sizeof(v))) {
                pi = bool_param(v);
                json_object_set_new(j, "posted_interrupts_source", json_string("kvm_intel.enable_apicv"));
        } else if (read_sys("module/kvm_amd/parameters/avic", v, sizeof(v))) {
                pi = bool_param(v);
                json_object_set_new(j, "posted_interrupts_source", json_string("kvm_amd.avic"));
        } else {
                pi = json_string("unknown");
                json_object_set_new(j, "posted_interrupts_source", json_null());
        }
        json_object_set_new(j, "posted_interrupts", pi);
        if (read_sys("module/kvm/parameters/halt_poll_ns", v, sizeof(v)))
                json_object_set_new(j, "halt_poll_ns", json_integer(strtoll(v, NULL, 10)));
        else
                json_object_set_new(j, "halt_poll_ns", json_string("unknown"));
        if ((have_iso = read_sys("devices/system/cpu/isolated", v, sizeof(v))) && elvis_cpuset_parse(v, &iso) < 0)
                have_iso = false;
        json_object_set_new(j, "isolated_cpus", have_iso ? elvis_cpuset_to_json(&iso) : json_string("unknown"));
        if ((have_nohz = read_sys("devices/system/cpu/nohz_full", v, sizeof(v)))) {
                /* "(null)" when nohz_full is off */
                if (!strcmp(v, "(null)"))
                        v[0] = '\0';
                if (elvis_cpuset_parse(v, &nohz) < 0)
                        have_nohz = false;
        }
        json_object_set_new(j, "nohz_full_cpus", have_nohz ? elvis_cpuset_to_json(&nohz) : json_string("unknown"));
        for (unsigned i = 0; i < m->state.nsidecores; i++) {
                int cpu = m->state.sidecores[i].cpu;
                json_array_append_new(scs, json_pack("{s:i, s:i, s:o, s:o}", "sidecore", (int)m->state.sidecores[i].id,
                                                     "cpu", cpu, "isolated",
                                                     have_iso ? json_boolean(elvis_cpuset_has(&iso, cpu)) : json_null(),
                                                     "nohz_full",
                                                     have_nohz ? json_boolean(elvis_cpuset_has(&nohz, cpu)) : json_null()));
        }
        json_object_set_new(j, "sidecores", scs);
        return j;
}
