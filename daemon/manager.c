/* Manager core: startup, transactions over the state, data-plane reconciliation. */
#include "manager.h"

#include <elvis/placement.h>
#include <elvis/policy.h>
#include <elvis/reconcile.h>
#include <elvis/version.h>

#include "domxml.h"
#include "log.h"
#include "paths.h"
#include "topology_hwloc.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/* Static placement packs at most this many queue pairs on a sidecore before opening
 * another one (IBM's ELVIS served devices_per_worker=7 devices per worker). */
#define QUEUES_PER_SIDECORE 8

static bool dp_ready(const struct elvis_manager *m)
{
        return m->dp_status == ELVIS_DP_RUNNING && m->dp;
}

/* ---- reconciliation: bring the data plane from state a to state b ---- */

static void dp_device_from(const struct elvis_manager *m, const struct elvis_state *s, const struct elvis_vm *vm,
                           const struct elvis_device *d, struct elvis_dp_device *out)
{
        bool uid_set = false, gid_set = false;
        uint32_t uid = 0, gid = 0;

        /* the VM's own VMM identity, else the configured default */
        if (m->cfg.vmm_user && *m->cfg.vmm_user)
                elvis_identity_parse(m->cfg.vmm_user, &uid_set, &uid, &gid_set, &gid);
        if (vm->vmm_uid_set || vm->vmm_gid_set) {
                uid_set = vm->vmm_uid_set;
                uid = vm->vmm_uid;
                gid_set = vm->vmm_gid_set;
                gid = vm->vmm_gid;
        }
        *out = (struct elvis_dp_device){
                .vm_id = vm->id,
                .vm_name = vm->name,
                .device_id = d->id,
                .type = d->type,
                .backend = d->backend,
                .path = d->type == ELVIS_DEVICE_BLK && d->path[0] ? d->path : NULL,
                .readonly = d->readonly,
                .size_bytes = d->size_bytes,
                .tap = d->tap,
                .tap_adopt = d->tap_adopt,
                .vmm_uid = uid_set ? (int64_t)uid : -1,
                .vmm_gid = gid_set ? (int64_t)gid : -1,
                .queues = d->queues,
                .socket_path = d->socket,
                .weight = vm->policy.weight,
                .exitless = elvis_effective_exitless(&s->policy, vm),
        };
}

/* One step of the diff on the data plane. */
static int apply_step(struct elvis_manager *m, const struct elvis_state *b, const struct elvis_step *sp)
{
        const struct elvis_dataplane_ops *ops = m->dp_ops;
        const struct elvis_vm *vm = NULL;
        const struct elvis_device *dev = NULL;
        struct elvis_dp_device cfg;
        void *dp = m->dp;

        switch (sp->kind) {
        case ELVIS_STEP_SIDECORE_CREATE:
                return ops->sidecore_create(dp, sp->sidecore, sp->cpu);
        case ELVIS_STEP_DEVICE_ATTACH:
        case ELVIS_STEP_DEVICE_POLICY:
                dev = elvis_state_find_device(b, sp->vm, sp->device, &vm);
                if (!dev)
                        return -ENOENT;
                dp_device_from(m, b, vm, dev, &cfg);
                if (sp->kind == ELVIS_STEP_DEVICE_ATTACH && dev->type == ELVIS_DEVICE_BLK &&
                    dev->backend == ELVIS_BACKEND_FILE) {
                        /* the image is the manager's to open, under the image-dir rules */
                        struct elvis_image *img = elvis_images_find(&m->images, vm->id, dev->id);
                        if (!img)
                                return -EBADF;
                        cfg.image_fd = &img->fd;
                }
                return sp->kind == ELVIS_STEP_DEVICE_ATTACH ? ops->device_attach(dp, &cfg) :
                        ops->device_set_policy(dp, vm->id, dev->id, cfg.weight, cfg.exitless);
        case ELVIS_STEP_QUEUE_ASSIGN:
                return ops->queue_assign(dp, sp->vm, sp->device, sp->queue, sp->sidecore);
        case ELVIS_STEP_DEVICE_DETACH:
                return ops->device_detach(dp, sp->vm, sp->device);
        case ELVIS_STEP_SIDECORE_DESTROY:
                return ops->sidecore_destroy(dp, sp->sidecore);
        case ELVIS_STEP_PARAMS: {
                struct elvis_dp_params p = {
                        .budget_packets = b->policy.budget_packets,
                        .budget_bytes = b->policy.budget_bytes,
                        .poll_start_rate = b->policy.poll_start_rate,
                        .poll_stop_idle_ms = b->policy.poll_stop_idle_ms,
                        .vanilla_busyloop_us = b->policy.vanilla_busyloop_us,
                };
                return ops->set_params(dp, &p);
        }
        default:
                return -EINVAL;
        }
}

/* The name of VM id in s, for log fields; NULL when s has no such VM. */
static const char *vm_name(const struct elvis_state *s, uint32_t id)
{
        for (unsigned i = 0; i < s->nvms; i++)
                if (s->vms[i].id == id)
                        return s->vms[i].name;
        return NULL;
}

/* Brings the data plane from a to b with the steps of the pure diff (policies/). The
 * first failure stops it (the caller rolls back), or, best effort, is logged and passed. */
static int reconcile(struct elvis_manager *m, const struct elvis_state *a, const struct elvis_state *b,
                     bool best_effort, struct elvis_err *e)
{
        size_t max = elvis_reconcile_max(a, b), n;
        struct elvis_step *steps;
        int first = 0;

        if (!dp_ready(m))
                return 0;
        steps = calloc(max, sizeof(*steps));
        if (!steps)
                return elvis_err_set(e, -ENOMEM, "out of memory");
        n = elvis_reconcile_diff(a, b, steps, max);
        for (size_t i = 0; i < n; i++) {
                const struct elvis_step *sp = &steps[i];
                const struct elvis_device *dev;
                int r = apply_step(m, b, sp);

                if (r >= 0)
                        continue;
                if (best_effort) {
                        bool on_sidecore = sp->kind == ELVIS_STEP_SIDECORE_CREATE ||
                                           sp->kind == ELVIS_STEP_SIDECORE_DESTROY;
                        const char *name = vm_name(b, sp->vm) ? vm_name(b, sp->vm) : vm_name(a, sp->vm);

                        log_at(LOG_WARNING,
                               on_sidecore ? ELVIS_LOG_SIDECORE(sp->sidecore) :
                                             ELVIS_LOG_DEVICE(sp->vm, name, sp->device[0] ? sp->device : NULL),
                               "data plane failed to %s (VM %u %s %u): %s", elvis_step_name(sp->kind), sp->vm,
                               sp->device, on_sidecore ? sp->sidecore : sp->queue, strerror(-r));
                        if (!first) {
                                first = r;
                                elvis_err_set(e, r, "data plane refused to %s: %s", elvis_step_name(sp->kind),
                                              strerror(-r));
                        }
                        continue;
                }
                dev = sp->kind == ELVIS_STEP_DEVICE_ATTACH ? elvis_state_find_device(b, sp->vm, sp->device, NULL) : NULL;
                if (dev && dev->socket[0])
                        elvis_err_set(e, r, "data plane refused to attach device %s of VM %u on %s: %s%s", dev->id,
                                      sp->vm, dev->socket, strerror(-r),
                                      r == -EEXIST ? " (a file or a socket ELVIS did not create)" : "");
                else if (sp->kind == ELVIS_STEP_SIDECORE_CREATE || sp->kind == ELVIS_STEP_SIDECORE_DESTROY)
                        elvis_err_set(e, r, "data plane refused to %s %u (CPU %d): %s", elvis_step_name(sp->kind),
                                      sp->sidecore, sp->cpu, strerror(-r));
                else
                        elvis_err_set(e, r, "data plane refused to %s (VM %u %s %u): %s", elvis_step_name(sp->kind),
                                      sp->vm, sp->device, sp->queue, strerror(-r));
                first = r;
                break;
        }
        free(steps);
        return first;
}

/* ---- placement helpers over a scratch state ---- */

static elvis_cpuset busy_cpus(const struct elvis_state *s)
{
        return elvis_state_used_cpus(s);
}

static int new_sidecore(struct elvis_manager *m, struct elvis_state *s, int cpu, bool automatic,
                        struct elvis_sidecore **ret)
{
        struct elvis_sidecore *sc;

        if (s->nsidecores >= ELVIS_MAX_SIDECORES)
                return -ENOSPC;
        sc = &s->sidecores[s->nsidecores++];
        *sc = (struct elvis_sidecore){
                .id = s->next_sidecore_id++,
                .cpu = cpu,
                .numa = elvis_topology_cpu_numa(&m->topo, cpu),
                .automatic = automatic,
                .created = time(NULL),
        };
        if (ret)
                *ret = sc;
        return 0;
}

/* Gives every unserved queue of an exitless device a sidecore (creating automatic ones
 * while the policy and free cores allow) and takes queues of vanilla devices off them. */
static void assign_queues(struct elvis_manager *m, struct elvis_state *s, bool may_create)
{
        for (unsigned i = 0; i < s->nvms; i++) {
                struct elvis_vm *vm = &s->vms[i];
                bool vanilla = elvis_effective_exitless(&s->policy, vm) == ELVIS_EXITLESS_NEVER;

                for (unsigned d = 0; d < vm->ndevices; d++) {
                        struct elvis_device *dev = &vm->devices[d];
                        for (unsigned q = 0; q < dev->queues; q++) {
                                uint32_t sc;
                                if (vanilla) {
                                        dev->sidecore[q] = ELVIS_SIDECORE_NONE;
                                        continue;
                                }
                                if (dev->sidecore[q] && elvis_state_sidecore(s, dev->sidecore[q]))
                                        continue;
                                dev->sidecore[q] = ELVIS_SIDECORE_NONE;
                                sc = elvis_pick_sidecore(s, vm->numa, QUEUES_PER_SIDECORE);
                                if (!sc && may_create && s->nsidecores < s->policy.max_sidecores) {
                                        elvis_cpuset busy = busy_cpus(s);
                                        struct elvis_sidecore *nsc;
                                        char reason[160];
                                        int cpu;
                                        int near = vm->numa >= 0 ? vm->numa : elvis_placement_nic_node(&m->topo);
                                        if (elvis_place_sidecore(&m->topo, &m->allowed, &busy, near, &cpu, reason,
                                                                 sizeof(reason)) == 0 &&
                                            new_sidecore(m, s, cpu, true, &nsc) == 0)
                                                sc = nsc->id;
                                }
                                if (!sc)        /* over the soft limit rather than unserved */
                                        sc = elvis_pick_sidecore(s, vm->numa, UINT32_MAX);
                                dev->sidecore[q] = sc;
                        }
                }
        }
}

/* Automatic sidecores that serve nothing are released. */
static void drop_idle_automatic(struct elvis_state *s)
{
        for (unsigned i = 0; i < s->nsidecores;) {
                if (s->sidecores[i].automatic && elvis_state_sidecore_load(s, s->sidecores[i].id) == 0) {
                        memmove(&s->sidecores[i], &s->sidecores[i + 1],
                                (s->nsidecores - i - 1) * sizeof(s->sidecores[0]));
                        s->nsidecores--;
                } else {
                        i++;
                }
        }
}

unsigned elvis_manager_vm_unserved(const struct elvis_state *s, const struct elvis_vm *vm)
{
        unsigned n = 0;

        if (elvis_effective_exitless(&s->policy, vm) == ELVIS_EXITLESS_NEVER)
                return 0;
        for (unsigned d = 0; d < vm->ndevices; d++)
                for (unsigned q = 0; q < vm->devices[d].queues; q++)
                        n += vm->devices[d].sidecore[q] == ELVIS_SIDECORE_NONE;
        return n;
}

static unsigned unserved_queues(const struct elvis_state *s)
{
        unsigned n = 0;

        for (unsigned i = 0; i < s->nvms; i++)
                n += elvis_manager_vm_unserved(s, &s->vms[i]);
        return n;
}

void elvis_manager_unserved_reason(struct elvis_manager *m, char *buf, size_t size)
{
        elvis_cpuset busy = busy_cpus(&m->state);
        int cpu;

        if (m->state.nsidecores >= m->state.policy.max_sidecores)
                snprintf(buf, size, "the policy allows no more sidecores (max_sidecores %u)",
                         m->state.policy.max_sidecores);
        else if (elvis_place_sidecore(&m->topo, &m->allowed, &busy, -1, &cpu, buf, size) == 0)
                snprintf(buf, size, "CPU %d is free for a sidecore now (elvisctl sidecore add --cpu %d)", cpu, cpu);
        else
                snprintf(buf + strlen(buf), size - strlen(buf), "; removing a VM frees its cores for one");
}

/* ---- transactions ---- */

int elvis_manager_listen(struct elvis_manager *m, elvis_listener_fn fn, void *userdata)
{
        if (m->nlisteners == ELVIS_MAX_LISTENERS)
                return -ENOSPC;
        m->listeners[m->nlisteners].fn = fn;
        m->listeners[m->nlisteners].userdata = userdata;
        m->nlisteners++;
        return 0;
}

void elvis_manager_unlisten(struct elvis_manager *m, elvis_listener_fn fn, void *userdata)
{
        for (unsigned i = 0; i < m->nlisteners; i++)
                if (m->listeners[i].fn == fn && m->listeners[i].userdata == userdata) {
                        memmove(&m->listeners[i], &m->listeners[i + 1], (m->nlisteners - i - 1) * sizeof(m->listeners[0]));
                        m->nlisteners--;
                        return;
                }
}

void elvis_manager_publish(struct elvis_manager *m, enum elvis_event ev, const struct elvis_state *old)
{
        for (unsigned i = 0; i < m->nlisteners; i++)
                m->listeners[i].fn(m, ev, old, m->listeners[i].userdata);
}

/* libsystemd's sd_notify is a blocking send: it waits only while the service manager
 * leaves its queue full, and then the watchdog would not be heard either. */
void elvis_manager_changed(struct elvis_manager *m)
{
        sd_notifyf(0, "STATUS=%u VMs, %u sidecores, %s data plane %s", m->state.nvms, m->state.nsidecores, m->dp_kind,
                   m->dp_status == ELVIS_DP_RUNNING ? "running" : "not running");
}

static int scratch(struct elvis_manager *m, struct elvis_state *next)
{
        int r = elvis_state_init(next);
        if (r < 0)
                return r;
        elvis_state_copy(next, &m->state);
        return 0;
}

/* Applies next to the data plane, persists it, and makes it current; on failure
 * nothing changes (the data plane is rolled back). Consumes next. */
static int commit(struct elvis_manager *m, struct elvis_state *next, struct elvis_err *e)
{
        int r;

        r = reconcile(m, &m->state, next, false, e);
        if (r < 0) {
                reconcile(m, next, &m->state, true, NULL);
                elvis_state_fini(next);
                return r;
        }
        r = elvis_store_save(&m->store, next);
        if (r < 0) {
                reconcile(m, next, &m->state, true, NULL);
                elvis_state_fini(next);
                return elvis_err_set(e, r, "cannot persist the state: %s", strerror(-r));
        }
        /* next becomes current; the old state is what subscribers compare against */
        {
                struct elvis_state old = m->state;
                m->state = *next;
                *next = old;
        }
        elvis_manager_changed(m);
        elvis_manager_publish(m, ELVIS_EVENT_COMMIT, next);
        elvis_state_fini(next);
        return 0;
}

int elvis_manager_reconcile(struct elvis_manager *m, const struct elvis_state *from, const struct elvis_state *to,
                            struct elvis_err *e)
{
        return reconcile(m, from, to, true, e);
}

struct elvis_vm *elvis_manager_find_vm(struct elvis_manager *m, const char *key)
{
        char *end;
        unsigned long id;

        if (key[0] >= '0' && key[0] <= '9') {
                id = strtoul(key, &end, 10);
                if (*end || id == 0 || id > UINT32_MAX || (key[0] == '0'))
                        return NULL;
                return elvis_state_vm(&m->state, (uint32_t)id);
        }
        return elvis_state_vm_by_name(&m->state, key);
}

static bool tap_taken(const struct elvis_state *s, const char *tap, uint32_t except_vm)
{
        for (unsigned i = 0; i < s->nvms; i++)
                if (s->vms[i].id != except_vm)
                        for (unsigned d = 0; d < s->vms[i].ndevices; d++)
                                if (s->vms[i].devices[d].backend == ELVIS_BACKEND_TAP &&
                                    strcmp(s->vms[i].devices[d].tap, tap) == 0)
                                        return true;
        return false;
}

/* The user data plane, in this process or in elvis-dataplane: vhost-user sockets, taps
 * it creates itself. */
static bool vhost_user_plane(const struct elvis_manager *m)
{
        return strcmp(m->dp_kind, "user") == 0 || strcmp(m->dp_kind, "user-process") == 0;
}

/* A name for a tap the request did not name: elvisVM-DEV, or with a suffix when another
 * manager on this host (or anyone else) already has an interface by that name. */
static void pick_tap_name(const struct elvis_manager *m, const struct elvis_state *s, uint32_t vm, unsigned d,
                          char out[ELVIS_IFNAME_MAX])
{
        bool user = vhost_user_plane(m);

        for (unsigned k = 0; k < 100; k++) {
                if (k == 0)
                        snprintf(out, ELVIS_IFNAME_MAX, "elvis%u-%u", vm % 100000u, d % ELVIS_MAX_DEVICES);
                else
                        snprintf(out, ELVIS_IFNAME_MAX, "elvis%u-%u-%u", vm % 100000u, d % ELVIS_MAX_DEVICES, k);
                if (!tap_taken(s, out, 0) && !(user && if_nametoindex(out)))
                        return;
        }
}

/* A VM named by a libvirt domain takes its vCPU count, VMM identity and vhost-user
 * interfaces from the domain when the request does not give them, and under
 * vcpu-pinning respect always its pins. The caller looked the
 * domain up (the API through libvirt, or the qemu hook's XML); without it a domain name
 * is a label. */
static int fill_from_domain(struct elvis_manager *m, struct elvis_vm *vm, const struct elvis_domain_info *given)
{
        struct elvis_domain_info info;

        if (!vm->domain[0] || !given)
                return 0;
        if (elvis_config_respects_pins(&m->cfg)) {
                elvis_cpuset sets[2] = { given->vcpupin, given->vcpu_cpuset };
                vm->pinned = elvis_placement_pinned_cpus(sets, given->vcpu_cpuset_applies ? 2 : 1, &m->topo.online);
        }
        if (vm->vcpus && vm->ndevices)
                return 0;
        info = *given;
        if (!vm->vcpus)
                vm->vcpus = info.vcpus;
        if (!vm->vmm_uid_set && !vm->vmm_gid_set) {
                vm->vmm_uid_set = info.vmm_uid_set;
                vm->vmm_uid = info.vmm_uid;
                vm->vmm_gid_set = info.vmm_gid_set;
                vm->vmm_gid = info.vmm_gid;
        }
        if (!vm->ndevices)
                vm->ndevices = elvis_domxml_devices(&info, vm->devices);
        return 0;
}

/* Opens vm's images (blk file devices) into the manager's table, refusing paths outside
 * the image-dir rules and an image another device writes (or that this one would write
 * while another reads it). On failure none of vm's images stay open. */
static int open_images(struct elvis_manager *m, struct elvis_vm *vm, struct elvis_err *e)
{
        for (unsigned d = 0; d < vm->ndevices; d++) {
                struct elvis_device *dev = &vm->devices[d];
                const struct elvis_image *owner = NULL;
                char canon[ELVIS_IMAGE_PATH_MAX], why[512];
                int fd, r;

                if (dev->type != ELVIS_DEVICE_BLK || dev->backend != ELVIS_BACKEND_FILE)
                        continue;
                r = elvis_image_open(dev->path, m->cfg.image_dirs, dev->readonly, &fd, canon, why, sizeof(why));
                if (r < 0) {
                        elvis_images_drop_vm(&m->images, vm->id);
                        return elvis_err_set(e, r, "device %s: %s", dev->id, why);
                }
                memcpy(dev->path, canon, strlen(canon) + 1);
                r = elvis_images_add(&m->images, vm->id, dev->id, fd, dev->readonly, &owner);
                if (r == -EEXIST) {
                        const struct elvis_vm *ovm = owner->vm == vm->id ? vm : elvis_state_vm(&m->state, owner->vm);
                        r = elvis_err_set(e, -EEXIST,
                                          "device %s: image %s is already used by VM '%s' device %s (an image "
                                          "written by one device is used by no other)", dev->id, dev->path,
                                          ovm ? ovm->name : "?", owner->device);
                }
                if (r < 0) {
                        elvis_images_drop_vm(&m->images, vm->id);
                        return r == -EEXIST ? r : elvis_err_set(e, r, "device %s: %s", dev->id, strerror(-r));
                }
        }
        return 0;
}

unsigned elvis_manager_images_reopen(struct elvis_manager *m)
{
        unsigned failed = 0;

        for (unsigned i = 0; i < m->state.nvms; i++) {
                struct elvis_vm *vm = &m->state.vms[i];
                for (unsigned d = 0; d < vm->ndevices; d++) {
                        struct elvis_device *dev = &vm->devices[d];
                        const struct elvis_image *owner = NULL;
                        char canon[ELVIS_IMAGE_PATH_MAX], why[512];
                        int fd, r;

                        if (dev->type != ELVIS_DEVICE_BLK || dev->backend != ELVIS_BACKEND_FILE ||
                            elvis_images_find(&m->images, vm->id, dev->id))
                                continue;
                        r = elvis_image_open(dev->path, m->cfg.image_dirs, dev->readonly, &fd, canon, why,
                                             sizeof(why));
                        if (r == 0 && (r = elvis_images_add(&m->images, vm->id, dev->id, fd, dev->readonly, &owner)) < 0)
                                snprintf(why, sizeof(why), "image %s: %s", dev->path,
                                         r == -EEXIST ? "another device uses it" : strerror(-r));
                        if (r < 0) {
                                log_at(LOG_ERR, ELVIS_LOG_DEVICE(vm->id, vm->name, dev->id),
                                       "VM %u device %s is not served: %s", vm->id, dev->id, why);
                                failed++;
                        }
                }
        }
        return failed;
}

int elvis_manager_vm_add_domain(struct elvis_manager *m, struct elvis_vm *vm, const struct elvis_domain_info *info,
                                bool dry_run, struct elvis_err *e)
{
        fill_from_domain(m, vm, info);
        return elvis_manager_vm_add(m, vm, dry_run, e);
}

int elvis_manager_vm_add(struct elvis_manager *m, struct elvis_vm *vm, bool dry_run, struct elvis_err *e)
{
        struct elvis_state next;
        struct elvis_vm *nvm;
        elvis_cpuset busy;
        char reason[256];
        int r;

        if (m->state.nvms >= ELVIS_MAX_VMS)
                return elvis_err_set(e, -ENOSPC, "at most %d VMs can be managed", ELVIS_MAX_VMS);
        if (elvis_state_vm_by_name(&m->state, vm->name))
                return elvis_err_set(e, -EEXIST, "a VM named '%s' already exists", vm->name);
        for (unsigned i = 0; vm->domain[0] && i < m->state.nvms; i++)
                if (strcmp(m->state.vms[i].domain, vm->domain) == 0)
                        return elvis_err_set(e, -EEXIST, "libvirt domain '%s' is already managed as VM '%s'",
                                             vm->domain, m->state.vms[i].name);
        r = scratch(m, &next);
        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        nvm = &next.vms[next.nvms];
        *nvm = *vm;
        nvm->id = next.next_vm_id;
        nvm->created = time(NULL);
        busy = busy_cpus(&next);
        if (elvis_config_respects_pins(&m->cfg) && vm->domain[0]) {
                /* the orchestrator placed the vCPUs: their CPUs are taken, the sidecores go
                 * near them */
                elvis_cpuset_zero(&nvm->cpus);
                nvm->numa = elvis_placement_pins_node(&m->topo, &nvm->pinned);
        } else {
                elvis_cpuset_zero(&nvm->pinned);
                r = elvis_place_vcpus(&m->topo, &m->allowed, &busy, vm->vcpus, &nvm->cpus, &nvm->numa, reason,
                                      sizeof(reason));
                if (r < 0) {
                        r = elvis_err_set(e, r, "cannot place VM '%s': %s", vm->name, reason);
                        elvis_state_fini(&next);
                        return r;
                }
        }
        for (unsigned d = 0; d < nvm->ndevices; d++) {
                struct elvis_device *dev = &nvm->devices[d];
                if (dev->backend == ELVIS_BACKEND_TAP && !dev->tap[0])
                        pick_tap_name(m, &next, nvm->id, d, dev->tap);
                if (dev->backend == ELVIS_BACKEND_TAP && tap_taken(&next, dev->tap, 0)) {
                        r = elvis_err_set(e, -EEXIST, "tap '%s' is already used by another VM", dev->tap);
                        elvis_state_fini(&next);
                        return r;
                }
                /* the user data plane creates its taps; an interface of that name belongs to
                 * someone else unless the request says to adopt it */
                if (dev->backend == ELVIS_BACKEND_TAP && !dev->tap_adopt && vhost_user_plane(m) &&
                    if_nametoindex(dev->tap)) {
                        r = elvis_err_set(e, -EEXIST,
                                          "interface '%s' already exists and ELVIS did not create it for this VM "
                                          "(set \"adopt\": true on the device to use it)", dev->tap);
                        elvis_state_fini(&next);
                        return r;
                }
                for (unsigned k = 0; k < d; k++)
                        if (dev->backend == ELVIS_BACKEND_TAP && nvm->devices[k].backend == ELVIS_BACKEND_TAP &&
                            strcmp(nvm->devices[k].tap, dev->tap) == 0) {
                                r = elvis_err_set(e, -EINVAL, "devices %s and %s use the same tap '%s'",
                                                     nvm->devices[k].id, dev->id, dev->tap);
                                elvis_state_fini(&next);
                                return r;
                        }
                if (dev->type == ELVIS_DEVICE_BLK && !vhost_user_plane(m)) {
                        r = elvis_err_set(e, -EINVAL,
                                          "device %s: the %s data plane cannot serve blk devices (vhost-user-blk "
                                          "needs --dataplane user or user-process)", dev->id, m->dp_kind);
                        elvis_state_fini(&next);
                        return r;
                }
                memset(dev->sidecore, 0, sizeof(dev->sidecore));
                /* a socket path only comes from the libvirt domain (the VMM connects there) */
                if (vhost_user_plane(m) && dev->socket[0]) {
                        const struct elvis_socket_rules rules = { .run_dir = m->cfg.run_dir,
                                                                  .extra_dirs = m->cfg.vhost_user_dirs,
                                                                  .api_socket = m->cfg.socket };
                        char canon[ELVIS_PATH_MAX], why[512];
                        r = elvis_socket_path_check(dev->socket, &rules, canon, sizeof(canon), why, sizeof(why));
                        if (r < 0) {
                                r = elvis_err_set(e, r, "device %s: %s", dev->id, why);
                                elvis_state_fini(&next);
                                return r;
                        }
                        memcpy(dev->socket, canon, strlen(canon) + 1);
                        for (unsigned i = 0; i < next.nvms; i++)
                                for (unsigned k = 0; k < next.vms[i].ndevices; k++)
                                        if (strcmp(next.vms[i].devices[k].socket, dev->socket) == 0) {
                                                r = elvis_err_set(e, -EEXIST, "vhost-user socket %s is already used by VM '%s'",
                                                                  dev->socket, next.vms[i].name);
                                                elvis_state_fini(&next);
                                                return r;
                                        }
                } else if (vhost_user_plane(m)) {
                        char path[512];
                        snprintf(path, sizeof(path), "%s/vm%u-%s.sock", m->cfg.run_dir, nvm->id, dev->id);
                        if (strlen(path) >= sizeof(dev->socket)) {
                                r = elvis_err_set(e, -ENAMETOOLONG, "vhost-user socket path %s is too long", path);
                                elvis_state_fini(&next);
                                return r;
                        }
                        memcpy(dev->socket, path, strlen(path) + 1);
                } else {
                        dev->socket[0] = '\0';
                }
        }
        r = open_images(m, nvm, e);
        if (r < 0) {
                elvis_state_fini(&next);
                return r;
        }
        next.nvms++;
        next.next_vm_id++;
        assign_queues(m, &next, true);  /* unserved queues are reported when committed */
        *vm = *nvm;
        if (dry_run) {
                elvis_images_drop_vm(&m->images, vm->id);
                elvis_state_fini(&next);
                return 0;
        }
        r = commit(m, &next, e);
        if (r < 0)
                elvis_images_drop_vm(&m->images, vm->id);
        if (r == 0 && elvis_config_respects_pins(&m->cfg) && vm->domain[0])
                log_at(LOG_NOTICE, ELVIS_LOG_VM(vm->id, vm->name),
                       "VM %u '%s' added: %u vCPU(s) pinned by the orchestrator to CPUs %s, %u device(s)", vm->id,
                       vm->name, vm->vcpus,
                       elvis_cpuset_empty(&vm->pinned) ? "- (not pinned)" :
                       (elvis_cpuset_format(&vm->pinned, reason, sizeof(reason)), reason), vm->ndevices);
        else if (r == 0)
                log_at(LOG_NOTICE, ELVIS_LOG_VM(vm->id, vm->name), "VM %u '%s' added: %u vCPU(s) on CPUs %s, %u device(s)",
                       vm->id, vm->name, vm->vcpus,
                       vm->vcpus ? (elvis_cpuset_format(&vm->cpus, reason, sizeof(reason)), reason) : "-", vm->ndevices);
        return r;
}

/* A scratch copy of the state and VM id in it; 0, or the error set (nothing to free). */
static int scratch_vm(struct elvis_manager *m, struct elvis_state *next, uint32_t id, struct elvis_vm **ret,
                      struct elvis_err *e)
{
        int r = scratch(m, next);

        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        *ret = elvis_state_vm(next, id);
        if (!*ret) {
                elvis_state_fini(next);
                return elvis_err_set(e, -ENOENT, "no VM with id %u", id);
        }
        return 0;
}

int elvis_manager_vm_set_pins(struct elvis_manager *m, uint32_t id, const elvis_cpuset *pinned, struct elvis_err *e)
{
        struct elvis_state next;
        struct elvis_vm *vm;
        int r;

        r = scratch_vm(m, &next, id, &vm, e);
        if (r < 0)
                return r;
        /* from now on the orchestrator's pins, not ELVIS's reservation, say where it runs */
        elvis_cpuset_zero(&vm->cpus);
        vm->pinned = *pinned;
        vm->numa = elvis_placement_pins_node(&m->topo, pinned);
        return commit(m, &next, e);
}

int elvis_manager_vm_set_migration(struct elvis_manager *m, uint32_t id, enum elvis_migration migration,
                                   struct elvis_err *e)
{
        struct elvis_state next;
        struct elvis_vm *vm;
        int r;

        if (migration >= __ELVIS_MIGRATION_MAX)
                return elvis_err_set(e, -EINVAL, "invalid migration state %d", (int)migration);
        r = scratch_vm(m, &next, id, &vm, e);
        if (r < 0)
                return r;
        if (vm->migration == migration) {
                elvis_state_fini(&next);
                return 0;
        }
        vm->migration = migration;
        return commit(m, &next, e);
}

int elvis_manager_vm_patch(struct elvis_manager *m, uint32_t id, const json_t *patch, struct elvis_vm *ret,
                           struct elvis_err *e)
{
        struct elvis_state next;
        struct elvis_vm *vm, *other;
        int r;

        r = scratch_vm(m, &next, id, &vm, e);
        if (r < 0)
                return r;
        r = elvis_vm_from_json(patch, ELVIS_DECODE_PATCH, vm, e);
        if (r < 0) {
                elvis_state_fini(&next);
                return r;
        }
        other = NULL;
        for (unsigned i = 0; i < next.nvms && !other; i++)
                if (&next.vms[i] != vm && strcmp(next.vms[i].name, vm->name) == 0)
                        other = &next.vms[i];
        if (other) {
                r = elvis_err_set(e, -EEXIST, "a VM named '%s' already exists", vm->name);
                elvis_state_fini(&next);
                return r;
        }
        assign_queues(m, &next, true);
        drop_idle_automatic(&next);
        *ret = *vm;
        r = commit(m, &next, e);
        if (r == 0)
                log_at(LOG_NOTICE, ELVIS_LOG_VM(ret->id, ret->name), "VM %u '%s' updated: weight %u, exitless %s", ret->id,
                       ret->name, ret->policy.weight, elvis_exitless_name(ret->policy.exitless));
        return r;
}

int elvis_manager_vm_remove(struct elvis_manager *m, uint32_t id, struct elvis_err *e)
{
        struct elvis_state next;
        char name[ELVIS_VM_NAME_MAX];
        unsigned i;
        int r;

        r = scratch(m, &next);
        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        for (i = 0; i < next.nvms && next.vms[i].id != id; i++)
                ;
        if (i == next.nvms) {
                r = elvis_err_set(e, -ENOENT, "no VM with id %u", id);
                elvis_state_fini(&next);
                return r;
        }
        snprintf(name, sizeof(name), "%s", next.vms[i].name);
        memmove(&next.vms[i], &next.vms[i + 1], (next.nvms - i - 1) * sizeof(next.vms[0]));
        next.nvms--;
        assign_queues(m, &next, true);  /* the cores it frees may serve queues that had none */
        drop_idle_automatic(&next);
        r = commit(m, &next, e);
        if (r == 0) {
                elvis_images_drop_vm(&m->images, id);   /* the data plane has let go of its copies */
                log_at(LOG_NOTICE, ELVIS_LOG_VM(id, name), "VM %u '%s' removed", id, name);
        }
        return r;
}

int elvis_manager_sidecore_add(struct elvis_manager *m, int cpu, struct elvis_sidecore *ret, struct elvis_err *e)
{
        struct elvis_state next;
        struct elvis_sidecore *sc;
        elvis_cpuset busy = busy_cpus(&m->state);
        char reason[200];
        int r;

        if (m->state.nsidecores >= m->state.policy.max_sidecores)
                return elvis_err_set(e, -ENOSPC, "policy max_sidecores (%u) reached", m->state.policy.max_sidecores);
        if (cpu >= 0) {
                struct elvis_sidecore *there = elvis_state_sidecore_on_cpu(&m->state, cpu);
                elvis_cpuset sib;
                if (!elvis_topology_pu(&m->topo, cpu))
                        return elvis_err_set(e, -EINVAL, "CPU %d does not exist on this host", cpu);
                if (elvis_cpuset_has(&m->cfg.reserved_cpus, cpu))
                        return elvis_err_set(e, -EBUSY, "CPU %d is reserved for housekeeping", cpu);
                if (!elvis_cpuset_has(&m->allowed, cpu))
                        return elvis_err_set(e, -EBUSY, "CPU %d is not in the CPUs ELVIS may use (--cpus)", cpu);
                if (there)
                        return elvis_err_set(e, -EEXIST, "CPU %d already runs sidecore %u", cpu, there->id);
                sib = elvis_topology_siblings(&m->topo, cpu);
                if (elvis_cpuset_intersects(&sib, &busy))
                        return elvis_err_set(e, -EBUSY, "CPU %d (or an SMT sibling) is already used by a VM or sidecore",
                                             cpu);
        } else {
                r = elvis_place_sidecore(&m->topo, &m->allowed, &busy, -1, &cpu, reason, sizeof(reason));
                if (r < 0)
                        return elvis_err_set(e, r, "%s", reason);
        }
        r = scratch(m, &next);
        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        r = new_sidecore(m, &next, cpu, false, &sc);
        if (r < 0) {
                r = elvis_err_set(e, r, "too many sidecores");
                elvis_state_fini(&next);
                return r;
        }
        *ret = *sc;
        assign_queues(m, &next, false);
        r = commit(m, &next, e);
        if (r == 0)
                log_at(LOG_NOTICE, ELVIS_LOG_SIDECORE(ret->id), "sidecore %u added on CPU %d", ret->id, ret->cpu);
        return r;
}

int elvis_manager_sidecore_remove(struct elvis_manager *m, uint32_t id, struct elvis_err *e)
{
        struct elvis_state next;
        unsigned i, load;
        int r;

        for (i = 0; i < m->state.nsidecores && m->state.sidecores[i].id != id; i++)
                ;
        if (i == m->state.nsidecores)
                return elvis_err_set(e, -ENOENT, "no sidecore with id %u", id);
        r = scratch(m, &next);
        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        load = elvis_state_sidecore_load(&next, id);
        memmove(&next.sidecores[i], &next.sidecores[i + 1], (next.nsidecores - i - 1) * sizeof(next.sidecores[0]));
        next.nsidecores--;
        assign_queues(m, &next, false);         /* its queues move to the remaining sidecores */
        if (unserved_queues(&next) > unserved_queues(&m->state)) {
                elvis_state_fini(&next);
                return elvis_err_set(e, -EBUSY,
                                     "sidecore %u serves %u queue(s) and no other sidecore can take them; add a sidecore first",
                                     id, load);
        }
        r = commit(m, &next, e);
        if (r == 0)
                log_at(LOG_NOTICE, ELVIS_LOG_SIDECORE(id), "sidecore %u removed; %u queue(s) moved to other sidecores", id,
                       load);
        return r;
}

int elvis_manager_apply_plan(struct elvis_manager *m, const struct elvis_plan *plan, struct elvis_err *e)
{
        struct elvis_state next;
        uint32_t added[ELVIS_PLAN_MAX];
        unsigned before, nadded = 0;
        int r;

        r = scratch(m, &next);
        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        before = unserved_queues(&next);
        for (unsigned i = 0; i < plan->nactions; i++) {
                const struct elvis_action *a = &plan->actions[i];
                if (a->kind == ELVIS_ACT_ADD_SIDECORE) {
                        elvis_cpuset busy = busy_cpus(&next), sib = elvis_topology_siblings(&m->topo, a->cpu);
                        struct elvis_sidecore *sc;
                        if (!elvis_cpuset_has(&m->allowed, a->cpu) || elvis_cpuset_intersects(&sib, &busy) ||
                            next.nsidecores >= next.policy.max_sidecores) {
                                r = elvis_err_set(e, -EBUSY, "CPU %d is no longer free for a sidecore", a->cpu);
                                goto fail;
                        }
                        if ((r = new_sidecore(m, &next, a->cpu, true, &sc)) < 0) {
                                elvis_err_set(e, r, "too many sidecores");
                                goto fail;
                        }
                        added[nadded++] = sc->id;
                } else if (a->kind == ELVIS_ACT_MOVE_QUEUE) {
                        struct elvis_vm *vm = elvis_state_vm(&next, a->vm);
                        struct elvis_device *d = vm ? elvis_vm_device(vm, a->device) : NULL;
                        uint32_t to = a->sidecore ? a->sidecore : a->new_index < nadded ? added[a->new_index] : 0;
                        if (!d || a->queue >= d->queues || !to || !elvis_state_sidecore(&next, to)) {
                                r = elvis_err_set(e, -ENOENT, "queue %u of VM %u device %s or sidecore %u is gone",
                                                  a->queue, a->vm, a->device, to);
                                goto fail;
                        }
                        d->sidecore[a->queue] = to;
                } else {
                        unsigned k;
                        for (k = 0; k < next.nsidecores && next.sidecores[k].id != a->sidecore; k++)
                                ;
                        if (k == next.nsidecores) {
                                r = elvis_err_set(e, -ENOENT, "sidecore %u is gone", a->sidecore);
                                goto fail;
                        }
                        memmove(&next.sidecores[k], &next.sidecores[k + 1],
                                (next.nsidecores - k - 1) * sizeof(next.sidecores[0]));
                        next.nsidecores--;
                }
        }
        assign_queues(m, &next, false);
        if (unserved_queues(&next) > before) {
                r = elvis_err_set(e, -EBUSY, "the plan would leave queues without a sidecore");
                goto fail;
        }
        return commit(m, &next, e);
fail:
        elvis_state_fini(&next);
        return r;
}

int elvis_manager_policy_set(struct elvis_manager *m, const json_t *patch, struct elvis_err *e)
{
        struct elvis_state next;
        int r;

        r = scratch(m, &next);
        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        r = elvis_policy_from_json(patch, ELVIS_DECODE_PATCH, &next.policy, e);
        if (r < 0) {
                elvis_state_fini(&next);
                return r;
        }
        if (next.nsidecores > next.policy.max_sidecores) {
                r = elvis_err_set(e, -EBUSY, "max_sidecores %u is below the %u sidecores running; remove some first",
                                  next.policy.max_sidecores, next.nsidecores);
                elvis_state_fini(&next);
                return r;
        }
        assign_queues(m, &next, true);
        drop_idle_automatic(&next);
        r = commit(m, &next, e);
        if (r == 0)
                log_notice("policy updated (mode %s, exitless %s)", elvis_mode_name(m->state.policy.mode),
                           elvis_exitless_name(m->state.policy.exitless));
        return r;
}
