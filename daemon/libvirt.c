/* libvirt client on the manager's event loop. */
#include "libvirt.h"

#include <elvis/placement.h>

#include "control.h"
#include "log.h"
#include "manager.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#define RECONNECT_US (5 * 1000000ull)
#define MAX_WATCHES 256
/* vcpu-pinning respect: pins are re-read on lifecycle and tunable events, and this often
 * for drivers that send no tunable events */
#define PIN_POLL_US (10 * 1000000ull)
/* A VM marked incoming whose domain libvirt does not know after this many checks, 30 s
 * apart, never arrives: libvirt fails some incoming migrations after the qemu hook ran
 * and before the domain exists, with no event and no release */
#define ARRIVAL_CHECK_US (30 * 1000000ull)
#define ARRIVAL_STRIKES 4
#define MAX_CONFLICTS 64

/* ---- libvirt's event loop implemented on elvis_loop ---- */

struct watch {
        int id;                 /* 0: free slot */
        bool timer;
        int fd;
        struct elvis_loop_source *src;
        void *cb;
        void *opaque;
        virFreeCallback ff;
};

struct elvis_libvirt {
        struct elvis_manager *m;
        virConnectPtr conn;
        int lifecycle_cb, metadata_cb, tunable_cb;
        struct elvis_loop_source *retry;
        struct elvis_loop_source *deferred;
        struct elvis_loop_source *pin_poll;
        uint32_t pending_pins[64];
        unsigned npending;
        struct elvis_loop_source *arrival;
        struct {
                uint32_t id;
                unsigned strikes;
        } absent[64];                   /* incoming VMs libvirt did not know at the last checks */
        unsigned nabsent;
        bool check_conflicts;
        /* conflicts already logged and journalled: each is reported once */
        struct elvis_pin_conflict reported[MAX_CONFLICTS];
        unsigned nreported;
        char last_error[256];
        bool connected_once;
};

static struct elvis_manager *loop_owner;        /* libvirt's event impl is process-wide */
static struct watch watches[MAX_WATCHES];
static int next_watch = 1;
/* free callbacks may not run from inside remove (libvirt may hold locks): run them later */
static struct {
        virFreeCallback ff;
        void *opaque;
} pending_free[MAX_WATCHES];
static unsigned npending_free;
static struct elvis_loop_source *free_timer;

static struct watch *find_watch(int id)
{
        for (int i = 0; i < MAX_WATCHES; i++)
                if (watches[i].id == id)
                        return &watches[i];
        return NULL;
}

static uint32_t to_epoll(int ev)
{
        return (ev & VIR_EVENT_HANDLE_READABLE ? EPOLLIN : 0) | (ev & VIR_EVENT_HANDLE_WRITABLE ? EPOLLOUT : 0);
}

static int from_epoll(uint32_t ev)
{
        return (ev & EPOLLIN ? VIR_EVENT_HANDLE_READABLE : 0) | (ev & EPOLLOUT ? VIR_EVENT_HANDLE_WRITABLE : 0) |
               (ev & EPOLLERR ? VIR_EVENT_HANDLE_ERROR : 0) | (ev & EPOLLHUP ? VIR_EVENT_HANDLE_HANGUP : 0);
}

static void on_fd(struct elvis_loop_source *src, int fd, uint32_t events, void *userdata)
{
        struct watch *w = find_watch((int)(intptr_t)userdata);

        if (w && w->cb)
                ((virEventHandleCallback)w->cb)(w->id, fd, from_epoll(events), w->opaque);
}

static void on_timer(struct elvis_loop_source *src, void *userdata)
{
        struct watch *w = find_watch((int)(intptr_t)userdata);

        if (w && w->cb)
                ((virEventTimeoutCallback)w->cb)(w->id, w->opaque);
}

static void run_frees(struct elvis_loop_source *src, void *userdata)
{
        while (npending_free) {
                npending_free--;
                pending_free[npending_free].ff(pending_free[npending_free].opaque);
        }
}

static struct watch *new_watch(void)
{
        for (int i = 0; i < MAX_WATCHES; i++)
                if (!watches[i].id) {
                        memset(&watches[i], 0, sizeof(watches[i]));
                        watches[i].id = next_watch++;
                        return &watches[i];
                }
        return NULL;
}

static int add_handle(int fd, int event, virEventHandleCallback cb, void *opaque, virFreeCallback ff)
{
        struct watch *w = new_watch();

        if (!w)
                return -1;
        w->fd = fd;
        w->cb = (void *)cb;
        w->opaque = opaque;
        w->ff = ff;
        if (elvis_loop_add_fd(loop_owner->loop, fd, to_epoll(event), on_fd, (void *)(intptr_t)w->id, &w->src) < 0) {
                w->id = 0;
                return -1;
        }
        return w->id;
}

static void update_handle(int id, int event)
{
        struct watch *w = find_watch(id);

        if (w && !w->timer)
                elvis_loop_fd_set_events(w->src, to_epoll(event));
}

static void release(struct watch *w)
{
        elvis_loop_source_free(w->src);
        if (w->ff && npending_free < MAX_WATCHES) {
                pending_free[npending_free].ff = w->ff;
                pending_free[npending_free].opaque = w->opaque;
                npending_free++;
                elvis_loop_timer_rearm(free_timer, 1, false);
        }
        memset(w, 0, sizeof(*w));
}

static int remove_handle(int id)
{
        struct watch *w = find_watch(id);

        if (!w || w->timer)
                return -1;
        release(w);
        return 0;
}

/* libvirt timeouts: -1 disabled, 0 "on every iteration", else a period in ms */
static void arm(struct watch *w, int timeout)
{
        if (timeout < 0)
                elvis_loop_timer_rearm(w->src, 0, false);
        else
                elvis_loop_timer_rearm(w->src, timeout ? (uint64_t)timeout * 1000u : 1, true);
}

static int add_timeout(int timeout, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
        struct watch *w = new_watch();

        if (!w)
                return -1;
        w->timer = true;
        w->cb = (void *)cb;
        w->opaque = opaque;
        w->ff = ff;
        if (elvis_loop_add_timer(loop_owner->loop, 0, false, on_timer, (void *)(intptr_t)w->id, &w->src) < 0) {
                w->id = 0;
                return -1;
        }
        arm(w, timeout);
        return w->id;
}

static void update_timeout(int id, int timeout)
{
        struct watch *w = find_watch(id);

        if (w && w->timer)
                arm(w, timeout);
}

static int remove_timeout(int id)
{
        struct watch *w = find_watch(id);

        if (!w || !w->timer)
                return -1;
        release(w);
        return 0;
}

static void quiet_errors(void *userdata, virErrorPtr err)
{
        /* errors are reported where they are handled, with context */
}

/* ---- helpers ---- */

static const char *lv_error(void)
{
        const char *msg = virGetLastErrorMessage();
        return msg ? msg : "unknown libvirt error";
}

static struct elvis_vm *vm_for_domain(struct elvis_manager *m, virDomainPtr dom)
{
        char uuid[VIR_UUID_STRING_BUFLEN] = "";
        const char *name = virDomainGetName(dom);

        virDomainGetUUIDString(dom, uuid);
        for (unsigned i = 0; i < m->state.nvms; i++) {
                const char *d = m->state.vms[i].domain;
                if (d[0] && ((name && strcmp(d, name) == 0) || strcasecmp(d, uuid) == 0))
                        return &m->state.vms[i];
        }
        return NULL;
}

static virDomainPtr lookup(struct elvis_manager *m, const char *domain)
{
        virDomainPtr dom = NULL;

        if (!m->libvirt || !m->libvirt->conn)
                return NULL;
        if (strlen(domain) == 36 && strspn(domain, "0123456789abcdefABCDEF-") == 36)
                dom = virDomainLookupByUUIDString(m->libvirt->conn, domain);
        if (!dom)
                dom = virDomainLookupByName(m->libvirt->conn, domain);
        return dom;
}

/* The CPUs a domain's vCPUs are pinned to now (live for a running domain, else its
 * config): the union of their affinities, leaving out vCPUs that may run anywhere.
 * 0, or -1 when libvirt cannot say (its error is current). */
static int read_pins(struct elvis_manager *m, virDomainPtr dom, elvis_cpuset *ret)
{
        virDomainInfo di;
        unsigned char *maps;
        elvis_cpuset *sets;
        int ncpus, maplen, n;

        if (virDomainGetInfo(dom, &di) < 0)
                return -1;
        n = di.nrVirtCpu > ELVIS_MAX_VCPUS ? ELVIS_MAX_VCPUS : (int)di.nrVirtCpu;
        if (n <= 0) {
                elvis_cpuset_zero(ret);
                return 0;
        }
        ncpus = virNodeGetCPUMap(m->libvirt->conn, NULL, NULL, 0);
        maplen = VIR_CPU_MAPLEN(ncpus > 0 ? ncpus : ELVIS_MAX_CPUS);
        if (maplen > ELVIS_MAX_CPUS / 8)
                maplen = ELVIS_MAX_CPUS / 8;
        maps = calloc((size_t)n, (size_t)maplen);
        sets = calloc((size_t)n, sizeof(*sets));
        if (!maps || !sets || virDomainGetVcpuPinInfo(dom, n, maps, maplen, 0) < 0) {
                free(maps);
                free(sets);
                return -1;
        }
        for (int i = 0; i < n; i++)
                for (int c = 0; c < maplen * 8; c++)
                        if (VIR_CPU_USABLE(maps, maplen, i, c))
                                elvis_cpuset_set(&sets[i], c);
        *ret = elvis_placement_pinned_cpus(sets, (unsigned)n, &m->topo.online);
        free(maps);
        free(sets);
        return 0;
}

bool elvis_libvirt_enabled(const struct elvis_manager *m)
{
        return m->cfg.libvirt_uri && strcmp(m->cfg.libvirt_uri, "none") != 0;
}

int elvis_libvirt_domain_for(struct elvis_manager *m, const struct elvis_vm *vm, struct elvis_domain_info *ret,
                             struct elvis_err *e)
{
        char err[256];
        int r;

        if (!vm->domain[0] || !elvis_libvirt_enabled(m))
                return 0;       /* without libvirt a domain name is a label */
        /* under vcpu-pinning respect the pins are needed even when the rest is given */
        if (vm->vcpus && vm->ndevices && !elvis_config_respects_pins(&m->cfg))
                return 0;
        r = elvis_libvirt_domain(m, vm->domain, ret, err, sizeof(err));
        if (r == -ENOTCONN && vm->vcpus)
                return 0;
        if (r < 0)
                return elvis_err_set(e, r == -ENOTCONN ? -EAGAIN : r, "%s", err);
        return 1;
}

int elvis_libvirt_domain(struct elvis_manager *m, const char *domain, struct elvis_domain_info *ret, char *err,
                         size_t errlen)
{
        virDomainPtr dom;
        char *xml;
        int r;

        if (!elvis_libvirt_enabled(m)) {
                snprintf(err, errlen, "libvirt is disabled (--libvirt-uri none)");
                return -ENOTCONN;
        }
        if (!m->libvirt || !m->libvirt->conn) {
                snprintf(err, errlen, "libvirt at %s is not reachable", m->cfg.libvirt_uri);
                return -ENOTCONN;
        }
        dom = lookup(m, domain);
        if (!dom) {
                snprintf(err, errlen, "libvirt has no domain '%s'", domain);
                return -ENOENT;
        }
        xml = virDomainGetXMLDesc(dom, 0);
        if (!xml) {
                snprintf(err, errlen, "cannot read the XML of domain '%s': %s", domain, lv_error());
                virDomainFree(dom);
                return -EIO;
        }
        r = elvis_domxml_parse(xml, strlen(xml), ret, err, errlen);
        free(xml);
        /* what libvirt applies (auto placement included) rather than what the XML says */
        if (r == 0 && elvis_config_respects_pins(&m->cfg)) {
                elvis_cpuset pins;
                if (read_pins(m, dom, &pins) == 0) {
                        ret->vcpupin = pins;
                        elvis_cpuset_zero(&ret->vcpu_cpuset);
                        ret->vcpu_cpuset_applies = false;
                }
        }
        virDomainFree(dom);
        return r;
}

/* ---- pinning ---- */

static void map_of(const elvis_cpuset *set, unsigned char *map, int maplen)
{
        memset(map, 0, (size_t)maplen);
        ELVIS_CPUSET_FOREACH(c, set)
                if (c / 8 < maplen)
                        VIR_USE_CPU(map, c);
}

static void map_format(const unsigned char *map, int maplen, char *buf, size_t size)
{
        elvis_cpuset s;

        elvis_cpuset_zero(&s);
        for (int c = 0; c < maplen * 8; c++)
                if (VIR_CPU_USABLE(map, maplen, 0, c))
                        elvis_cpuset_set(&s, c);
        elvis_cpuset_format(&s, buf, size);
}

/* flags first; the test driver only takes 0 */
static int pin_vcpu(virDomainPtr dom, unsigned vcpu, unsigned char *map, int maplen, unsigned flags)
{
        if (virDomainPinVcpuFlags(dom, vcpu, map, maplen, flags) == 0)
                return 0;
        return virDomainPinVcpuFlags(dom, vcpu, map, maplen, 0);
}

static int pin_emulator(virDomainPtr dom, unsigned char *map, int maplen, unsigned flags)
{
        if (virDomainPinEmulator(dom, map, maplen, flags) == 0)
                return 0;
        return virDomainPinEmulator(dom, map, maplen, 0);
}

/* Pins vCPU i to the VM's i-th CPU; corrects drift and says so. Not while the domain
 * arrives by migration: libvirt holds its job until the guest resumes here, and a pin
 * call would block the loop until it times out (30 s). The qemu hook puts the pins in
 * the incoming XML instead; the resume pins it. */
static enum elvis_migration migration_of(virDomainPtr dom);

/* A migration job runs on the domain, in either direction, switch-over or not. */
static bool migration_job(virDomainPtr dom)
{
        virTypedParameterPtr params = NULL;
        int type = 0, nparams = 0, op = 0;
        bool r = false;

        if (migration_of(dom) != ELVIS_MIGRATION_NONE)
                return true;
        if (virDomainGetJobStats(dom, &type, &params, &nparams, 0) < 0)
                return false;
        if (type != VIR_DOMAIN_JOB_NONE && virTypedParamsGetInt(params, nparams, VIR_DOMAIN_JOB_OPERATION, &op) == 1)
                r = op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN || op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT;
        virTypedParamsFree(params, nparams);
        return r;
}

static void pin_vm(struct elvis_manager *m, const struct elvis_vm *vm, bool report_drift)
{
        virDomainPtr dom;
        int ncpus, maplen, active;
        unsigned flags;
        unsigned char map[ELVIS_MAX_CPUS / 8], cur[ELVIS_MAX_CPUS / 8 * 8];
        unsigned i = 0;

        /* libvirt holds a migrating domain's job: a pin call would wait for it (30 s and
         * a retry, per vCPU) with the event loop stopped. Pins wait for the migration's end. */
        if (vm->migration != ELVIS_MIGRATION_NONE)
                return;
        if (!vm->domain[0] || !m->libvirt || !m->libvirt->conn || (dom = lookup(m, vm->domain)) == NULL)
                return;
        if (migration_job(dom)) {
                log_info("domain %s is migrating: its pins are left until the migration ends", vm->domain);
                virDomainFree(dom);
                return;
        }
        ncpus = virNodeGetCPUMap(m->libvirt->conn, NULL, NULL, 0);
        if (ncpus <= 0)
                ncpus = ELVIS_MAX_CPUS;
        maplen = VIR_CPU_MAPLEN(ncpus);
        if (maplen > (int)sizeof(map))
                maplen = sizeof(map);
        active = virDomainIsActive(dom);
        flags = (active == 1 ? VIR_DOMAIN_AFFECT_LIVE : 0) | (virDomainIsPersistent(dom) == 1 ? VIR_DOMAIN_AFFECT_CONFIG : 0);
        if (!flags) {
                virDomainFree(dom);
                return;
        }
        if (report_drift && active == 1 && vm->vcpus && (unsigned)ELVIS_MAX_CPUS / 8 * 8 >= (unsigned)maplen * vm->vcpus &&
            virDomainGetVcpuPinInfo(dom, (int)vm->vcpus, cur, maplen, VIR_DOMAIN_AFFECT_LIVE) < 0)
                report_drift = false;
        ELVIS_CPUSET_FOREACH(cpu, &vm->cpus) {
                elvis_cpuset one;
                char want[32], was[256];
                elvis_cpuset_zero(&one);
                elvis_cpuset_set(&one, cpu);
                map_of(&one, map, maplen);
                if (report_drift && active == 1) {
                        map_format(cur + (size_t)i * (size_t)maplen, maplen, was, sizeof(was));
                        snprintf(want, sizeof(want), "%d", cpu);
                        if (strcmp(was, want) != 0)
                                log_notice("domain %s: vCPU %u was on CPUs %s, pinned back to CPU %d", vm->domain, i,
                                           was, cpu);
                }
                if (pin_vcpu(dom, i, map, maplen, flags) < 0)
                        log_warning("domain %s: cannot pin vCPU %u to CPU %d: %s", vm->domain, i, cpu, lv_error());
                i++;
        }
        if (vm->vcpus && !elvis_cpuset_empty(&m->cfg.reserved_cpus)) {
                virDomainIOThreadInfoPtr *info = NULL;
                int n;
                map_of(&m->cfg.reserved_cpus, map, maplen);
                if (pin_emulator(dom, map, maplen, flags) < 0)
                        log_warning("domain %s: cannot pin emulator threads to the reserved CPUs: %s", vm->domain,
                                    lv_error());
                n = virDomainGetIOThreadInfo(dom, &info, flags & VIR_DOMAIN_AFFECT_LIVE ? VIR_DOMAIN_AFFECT_LIVE : 0);
                for (int k = 0; k < n; k++) {
                        if (virDomainPinIOThread(dom, info[k]->iothread_id, map, maplen, flags) < 0 &&
                            virDomainPinIOThread(dom, info[k]->iothread_id, map, maplen, 0) < 0)
                                log_warning("domain %s: cannot pin iothread %u: %s", vm->domain, info[k]->iothread_id,
                                            lv_error());
                        virDomainIOThreadInfoFree(info[k]);
                }
                free(info);
        }
        log_info("domain %s: %u vCPU(s) pinned (%s%s)", vm->domain, vm->vcpus, active == 1 ? "live" : "",
                 flags & VIR_DOMAIN_AFFECT_CONFIG ? (active == 1 ? " and config" : "config") : "");
        virDomainFree(dom);
}

/* ---- vcpu-pinning respect: the orchestrator's pins are read, never written ---- */

/* Records where the orchestrator pinned a VM's vCPUs (a commit when that changed). The
 * periodic poll is quiet about domains it cannot read; the events are not. */
static void refresh_pins(struct elvis_manager *m, uint32_t vm_id, bool poll)
{
        struct elvis_vm *vm = elvis_state_vm(&m->state, vm_id);
        struct elvis_err e = { 0 };
        char domain[ELVIS_DOMAIN_MAX], list[256];
        elvis_cpuset pins;
        virDomainPtr dom;
        int r;

        if (!vm || !vm->domain[0] || (dom = lookup(m, vm->domain)) == NULL)
                return;
        snprintf(domain, sizeof(domain), "%s", vm->domain);
        r = read_pins(m, dom, &pins);
        virDomainFree(dom);
        if (r < 0) {
                if (poll)
                        log_debug("domain %s: cannot read the vCPU pins: %s", domain, lv_error());
                else
                        log_warning("domain %s: cannot read the vCPU pins: %s", domain, lv_error());
                return;
        }
        if (elvis_cpuset_equal(&pins, &vm->pinned) && elvis_cpuset_empty(&vm->cpus))
                return;
        elvis_cpuset_format(&pins, list, sizeof(list));
        if (elvis_manager_vm_set_pins(m, vm_id, &pins, &e) < 0)
                log_warning("domain %s: its vCPU pins (CPUs %s) could not be recorded: %s", domain,
                            list[0] ? list : "none", e.detail);
        else
                log_info("domain %s: the orchestrator pins its vCPUs to CPUs %s; ELVIS leaves them there", domain,
                         list[0] ? list : "none (they float)");
}

static void poll_pins(struct elvis_loop_source *src, void *userdata)
{
        struct elvis_manager *m = userdata;

        elvis_libvirt_refresh_pins(m);
}

void elvis_libvirt_refresh_pins(struct elvis_manager *m)
{
        uint32_t ids[ELVIS_MAX_VMS];
        unsigned n = 0;

        if (!m->libvirt || !m->libvirt->conn || !elvis_config_respects_pins(&m->cfg))
                return;
        /* by id: every refresh that changes something commits a new state */
        for (unsigned i = 0; i < m->state.nvms && n < ELVIS_MAX_VMS; i++)
                if (m->state.vms[i].domain[0])
                        ids[n++] = m->state.vms[i].id;
        for (unsigned i = 0; i < n; i++)
                refresh_pins(m, ids[i], true);
}

static bool conflict_in(const struct elvis_pin_conflict *list, unsigned n, const struct elvis_pin_conflict *c)
{
        for (unsigned i = 0; i < n; i++)
                if (list[i].vm == c->vm && list[i].sidecore == c->sidecore && list[i].cpu == c->cpu)
                        return true;
        return false;
}

static void conflict_message(struct elvis_manager *m, const struct elvis_pin_conflict *c, char *buf, size_t len)
{
        const struct elvis_vm *vm = elvis_state_vm(&m->state, c->vm);

        snprintf(buf, len,
                 "sidecore %u polls on CPU %d, which the orchestrator gave to a vCPU of VM '%s' (domain %s): they "
                 "share that CPU; move the sidecore (elvisctl sidecore add/remove) or the domain's vcpupin",
                 c->sidecore, c->cpu, vm ? vm->name : "?", vm ? vm->domain : "?");
}

/* Logs and journals every conflict that is new since the last check, once, and every
 * one that went away. */
static void check_conflicts(struct elvis_manager *m)
{
        struct elvis_libvirt *lv = m->libvirt;
        struct elvis_pin_conflict now[MAX_CONFLICTS];
        unsigned n = elvis_placement_pin_conflicts(&m->state, now, MAX_CONFLICTS);
        char msg[512];

        if (n > MAX_CONFLICTS)
                n = MAX_CONFLICTS;
        for (unsigned i = 0; i < n; i++) {
                const struct elvis_vm *vm = elvis_state_vm(&m->state, now[i].vm);
                if (conflict_in(lv->reported, lv->nreported, &now[i]))
                        continue;
                conflict_message(m, &now[i], msg, sizeof(msg));
                log_warning("%s", msg);
                elvis_journal_add(m, "libvirt",
                                  json_pack("{s:s, s:I, s:s, s:s, s:I, s:i, s:s}", "event", "pin_conflict", "vm",
                                            (json_int_t)now[i].vm, "vm_name", vm->name, "domain", vm->domain,
                                            "sidecore", (json_int_t)now[i].sidecore, "cpu", now[i].cpu, "reason", msg));
        }
        for (unsigned i = 0; i < lv->nreported; i++) {
                const struct elvis_pin_conflict *c = &lv->reported[i];
                if (conflict_in(now, n, c))
                        continue;
                log_notice("VM %u and sidecore %u no longer share CPU %d", c->vm, c->sidecore, c->cpu);
                elvis_journal_add(m, "libvirt",
                                  json_pack("{s:s, s:I, s:I, s:i}", "event", "pin_conflict_resolved", "vm",
                                            (json_int_t)c->vm, "sidecore", (json_int_t)c->sidecore, "cpu", c->cpu));
        }
        memcpy(lv->reported, now, n * sizeof(now[0]));
        lv->nreported = n;
}

void elvis_libvirt_add_warnings(struct elvis_manager *m, json_t *warnings)
{
        struct elvis_pin_conflict c[MAX_CONFLICTS];
        unsigned n = elvis_placement_pin_conflicts(&m->state, c, MAX_CONFLICTS);
        char msg[512];

        for (unsigned i = 0; i < n && i < MAX_CONFLICTS; i++) {
                const struct elvis_vm *vm = elvis_state_vm(&m->state, c[i].vm);
                conflict_message(m, &c[i], msg, sizeof(msg));
                json_array_append_new(warnings,
                                      json_pack("{s:s, s:s, s:I, s:s, s:s, s:I, s:i}", "kind", "pin_conflict",
                                                "message", msg, "vm", (json_int_t)c[i].vm, "vm_name", vm->name,
                                                "domain", vm->domain, "sidecore", (json_int_t)c[i].sidecore, "cpu",
                                                c[i].cpu));
        }
}

static void on_deferred(struct elvis_loop_source *src, void *userdata)
{
        struct elvis_manager *m = userdata;
        struct elvis_libvirt *lv = m->libvirt;

        while (lv->npending) {
                uint32_t id = lv->pending_pins[--lv->npending];
                struct elvis_vm *vm = elvis_state_vm(&m->state, id);
                if (!vm)
                        continue;
                if (elvis_config_respects_pins(&m->cfg))
                        refresh_pins(m, id, false);
                else
                        pin_vm(m, vm, false);
        }
        if (lv->check_conflicts) {
                lv->check_conflicts = false;
                check_conflicts(m);
        }
}

void elvis_libvirt_schedule_pin(struct elvis_manager *m, uint32_t vm_id)
{
        struct elvis_libvirt *lv = m->libvirt;

        if (!lv || !lv->conn || !lv->deferred)
                return;
        for (unsigned i = 0; i < lv->npending; i++)
                if (lv->pending_pins[i] == vm_id)
                        return;
        if (lv->npending < sizeof(lv->pending_pins) / sizeof(lv->pending_pins[0]))
                lv->pending_pins[lv->npending++] = vm_id;
        elvis_loop_timer_rearm(lv->deferred, 1, false);
}

/* ---- adoption and lifecycle ---- */

/* Adopts a domain that opted in (as arriving by migration when it does); the new VM's
 * id, or 0 when it was not adopted (each reason logged). */
static uint32_t adopt(struct elvis_manager *m, virDomainPtr dom, enum elvis_migration migration)
{
        struct elvis_domain_info info;
        struct elvis_vm vm = { .numa = -1, .migration = migration };
        struct elvis_err e = { 0 };
        char *xml = virDomainGetXMLDesc(dom, 0), err[256];
        int r;

        if (!xml)
                return 0;
        r = elvis_domxml_parse(xml, strlen(xml), &info, err, sizeof(err));
        free(xml);
        if (r < 0) {
                log_warning("domain %s: not adopted: %s", virDomainGetName(dom), err);
                return 0;
        }
        if (elvis_libvirt_may_adopt(m, &info, &e) < 0) {
                log_info("%s", e.detail);
                return 0;
        }
        elvis_domxml_vm_name(info.name, vm.name, sizeof(vm.name));
        snprintf(vm.domain, sizeof(vm.domain), "%s", info.uuid[0] ? info.uuid : info.name);
        vm.vcpus = info.vcpus;
        vm.policy = info.policy;
        vm.ndevices = elvis_domxml_devices(&info, vm.devices);
        if (elvis_config_respects_pins(&m->cfg) && read_pins(m, dom, &vm.pinned) < 0) {
                elvis_cpuset sets[2] = { info.vcpupin, info.vcpu_cpuset };
                vm.pinned = elvis_placement_pinned_cpus(sets, info.vcpu_cpuset_applies ? 2 : 1, &m->topo.online);
        }
        r = elvis_manager_vm_add(m, &vm, false, &e);
        if (r < 0) {
                log_error("domain %s opted in (%s) but cannot be adopted%s: %s", info.name,
                          info.has_policy ? "ELVIS metadata" : "adopt-domains",
                          migration == ELVIS_MIGRATION_INCOMING ? " for its incoming migration" : "", e.detail);
                return 0;
        }
        log_notice("domain %s adopted as VM %u '%s' (%s; weight %u, exitless %s)", info.name, vm.id, vm.name,
                   info.has_policy ? "ELVIS metadata" : "adopt-domains", vm.policy.weight,
                   elvis_exitless_name(vm.policy.exitless));
        return vm.id;
}

int elvis_libvirt_may_adopt(const struct elvis_manager *m, const struct elvis_domain_info *info,
                            struct elvis_err *e)
{
        if (elvis_domxml_opted_in(info, m->cfg.adopt_domains))
                return 0;
        return elvis_err_set(e, -EPERM,
                             "domain %s has no ELVIS metadata and adopt-domains does not name it: left alone "
                             "(to opt in, " ELVIS_DOMXML_OPT_IN ")",
                             info->name[0] ? info->name : info->uuid);
}

/* ---- live migration ----
 * Source: SUSPENDED_MIGRATED (the switch-over) marks the VM outgoing and changes nothing
 * else: QEMU still drives its devices until it stops, and a failed migration resumes it
 * here. STOPPED_MIGRATED (the domain no longer runs here) releases it. RESUMED while
 * outgoing: the migration failed, the VM stays. Destination: STARTED_MIGRATED (QEMU runs
 * with -incoming, the guest's CPUs do not) adopts it, or marks the VM the qemu hook's
 * migrate already adopted; under vcpu-pinning respect its pins are read then. ELVIS's own
 * pins are not set through libvirt while the migration runs (see pin_vm): the hook's
 * XML carries them, and RESUMED, which completes the migration, applies them; a stop
 * before that cleans it up. Each step is committed (state.json) and then journalled, so a
 * restart in between finds the mark and reconciles it with libvirt's view. */

void elvis_libvirt_journal_migration(struct elvis_manager *m, const char *event, const struct elvis_vm *vm,
                                     const char *reason)
{
        log_at(LOG_NOTICE, ELVIS_LOG_VM(vm->id, vm->name), "%s", reason);
        elvis_journal_add(m, "libvirt",
                          json_pack("{s:s, s:I, s:s, s:s, s:s}", "event", event, "vm", (json_int_t)vm->id, "vm_name",
                                    vm->name, "domain", vm->domain, "reason", reason));
}

/* What libvirt's job says: INCOMING or OUTGOING while a migration job runs on a domain
 * (outgoing only once it is paused for the switch-over), else NONE. */
static enum elvis_migration migration_of(virDomainPtr dom)
{
        virTypedParameterPtr params = NULL;
        int type = 0, nparams = 0, op = 0, state = 0, reason = 0;
        enum elvis_migration r = ELVIS_MIGRATION_NONE;

        if (virDomainGetJobStats(dom, &type, &params, &nparams, 0) < 0) {
                /* the destination answers no job statistics ("only on the source host"):
                 * a domain paused for a migration there is arriving */
                if (virDomainGetState(dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED &&
                    reason == VIR_DOMAIN_PAUSED_MIGRATION)
                        r = ELVIS_MIGRATION_INCOMING;
                return r;
        }
        if (type != VIR_DOMAIN_JOB_NONE &&
            virTypedParamsGetInt(params, nparams, VIR_DOMAIN_JOB_OPERATION, &op) == 1) {
                if (op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN)
                        r = ELVIS_MIGRATION_INCOMING;
                else if (op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT &&
                         virDomainGetState(dom, &state, &reason, 0) == 0 && state == VIR_DOMAIN_PAUSED)
                        r = ELVIS_MIGRATION_OUTGOING;
        }
        virTypedParamsFree(params, nparams);
        return r;
}

/* Marks VM id; 0, or -1 (logged) when the mark could not be committed. */
static int mark(struct elvis_manager *m, uint32_t id, const char *dname, enum elvis_migration migration,
                const char *event, const char *what)
{
        struct elvis_vm *vm = elvis_state_vm(&m->state, id);
        struct elvis_err e = { 0 };
        char reason[1024];

        if (!vm)
                return -1;
        if (elvis_manager_vm_set_migration(m, id, migration, &e) < 0) {
                log_error("domain %s: cannot record its migration state (%s): %s", vm->domain,
                          elvis_migration_name(migration), e.detail);
                return -1;
        }
        vm = elvis_state_vm(&m->state, id);
        snprintf(reason, sizeof(reason), "domain %s %s (VM %u '%s')", dname ? dname : vm->domain, what, vm->id,
                 vm->name);
        elvis_libvirt_journal_migration(m, event, vm, reason);
        return 0;
}

/* Removes VM id after its migration ended here; the journal says how. */
static void release_migrated(struct elvis_manager *m, uint32_t id, const char *dname, const char *event,
                             const char *why)
{
        struct elvis_vm *vm = elvis_state_vm(&m->state, id), copy;
        struct elvis_err e = { 0 };
        char cpus[256], reason[1400];

        if (!vm)
                return;
        copy = *vm;
        elvis_cpuset_format(elvis_cpuset_empty(&copy.cpus) ? &copy.pinned : &copy.cpus, cpus, sizeof(cpus));
        if (elvis_manager_vm_remove(m, id, &e) < 0) {
                log_error("domain %s %s but VM '%s' could not be removed: %s", copy.domain, why, copy.name, e.detail);
                return;
        }
        snprintf(reason, sizeof(reason), "domain %s %s: VM %u '%s' removed, CPUs %s, its sidecore queues and %u device(s) released",
                 dname ? dname : copy.domain, why, copy.id, copy.name, cpus[0] ? cpus : "-", copy.ndevices);
        elvis_libvirt_journal_migration(m, event, &copy, reason);
}

static void pin_now(struct elvis_manager *m, uint32_t id)
{
        struct elvis_vm *vm = elvis_state_vm(&m->state, id);

        if (vm && elvis_config_respects_pins(&m->cfg))
                refresh_pins(m, id, false);
        else if (vm)
                pin_vm(m, vm, true);
}

/* Destination: the domain runs here with -incoming; its guest does not yet. */
static void migration_in(struct elvis_manager *m, virDomainPtr dom, struct elvis_vm *vm)
{
        const char *dname = virDomainGetName(dom);
        uint32_t id;
        char reason[1400], cpus[256];

        if (!vm) {
                id = adopt(m, dom, ELVIS_MIGRATION_INCOMING);
                if (!id)
                        return;
                vm = elvis_state_vm(&m->state, id);
                elvis_cpuset_format(elvis_cpuset_empty(&vm->cpus) ? &vm->pinned : &vm->cpus, cpus, sizeof(cpus));
                snprintf(reason, sizeof(reason),
                         "domain %s arrives by live migration: adopted from its metadata as VM '%s' (CPUs %s, %u device(s) "
                         "ready) before its guest runs here", virDomainGetName(dom), vm->name, cpus[0] ? cpus : "-",
                         vm->ndevices);
                elvis_libvirt_journal_migration(m, "migration_in", vm, reason);
        } else {
                id = vm->id;
                if (vm->migration != ELVIS_MIGRATION_INCOMING &&
                    mark(m, id, dname, ELVIS_MIGRATION_INCOMING, "migration_in",
                         "arrives by live migration: its VM (already managed here) is ready before its guest runs") < 0)
                        return;
        }
        /* respect: the orchestrator's pins for this host, read now (no job needed); own:
         * nothing until the resume (pin_vm) */
        pin_now(m, id);
}

/* Whether the VM was removed (its domain is gone or stopped here). Settles a mark
 * against libvirt's view: a restart mid-migration, or events missed while away. */
static bool settle_migration(struct elvis_manager *m, uint32_t id, virDomainPtr dom)
{
        struct elvis_vm *vm = elvis_state_vm(&m->state, id);
        const char *dname = dom ? virDomainGetName(dom) : NULL;
        int state = VIR_DOMAIN_NOSTATE, reason = 0;
        bool off;

        if (!vm)
                return true;
        if (dom && virDomainGetState(dom, &state, &reason, 0) < 0)
                return false;
        off = !dom || state == VIR_DOMAIN_SHUTOFF || state == VIR_DOMAIN_CRASHED;
        switch (vm->migration) {
        case ELVIS_MIGRATION_OUTGOING:
                if (off) {
                        release_migrated(m, id, dname, "migrated_out", "left this host (migrated while ELVIS was away)");
                        return true;
                }
                if (state == VIR_DOMAIN_RUNNING)
                        mark(m, id, dname, ELVIS_MIGRATION_NONE, "migration_out_failed",
                             "runs here again: its migration failed or was cancelled, its VM is kept as it was");
                return false;
        case ELVIS_MIGRATION_INCOMING:
                /* no domain yet: the hook may have added the VM before libvirt created it;
                 * elvis_libvirt_check_arrivals decides after a grace period */
                if (!dom)
                        return false;
                if (off) {
                        release_migrated(m, id, dname, "migration_in_failed", "did not arrive (its incoming migration failed)");
                        return true;
                }
                if (state == VIR_DOMAIN_RUNNING)
                        mark(m, id, dname, ELVIS_MIGRATION_NONE, "migrated_in",
                             "runs here: its migration completed and its VM is served here");
                return false;
        default:
                if (dom && state == VIR_DOMAIN_SHUTOFF && reason == VIR_DOMAIN_SHUTOFF_MIGRATED) {
                        release_migrated(m, id, dname, "migrated_out", "left this host (migrated while ELVIS was away)");
                        return true;
                }
                if (!dom)
                        return false;
                switch (migration_of(dom)) {
                case ELVIS_MIGRATION_INCOMING:
                        mark(m, id, dname, ELVIS_MIGRATION_INCOMING, "migration_in",
                             "is arriving by live migration: its VM is ready before its guest runs");
                        break;
                case ELVIS_MIGRATION_OUTGOING:
                        mark(m, id, dname, ELVIS_MIGRATION_OUTGOING, "migrating_out",
                             "is paused here for a live migration's switch-over: its VM keeps its CPUs, sidecore "
                             "and queues until the domain stops here");
                        break;
                default:
                        break;
                }
                return false;
        }
}

int elvis_libvirt_domain_event(struct elvis_manager *m, virDomainPtr dom, int event, int detail)
{
        struct elvis_vm *vm = vm_for_domain(m, dom);
        struct elvis_err e = { 0 };
        uint32_t id = vm ? vm->id : 0;
        const char *dname = virDomainGetName(dom);

        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
                if (detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED) {
                        migration_in(m, dom, vm);
                        break;
                }
                if (vm)
                        pin_now(m, id);
                else
                        adopt(m, dom, ELVIS_MIGRATION_NONE);
                break;
        case VIR_DOMAIN_EVENT_RESUMED:
                if (vm && vm->migration == ELVIS_MIGRATION_OUTGOING)
                        mark(m, id, dname, ELVIS_MIGRATION_NONE, "migration_out_failed",
                             "resumed here: its migration failed or was cancelled, its VM is kept as it was");
                else if (vm && vm->migration == ELVIS_MIGRATION_INCOMING)
                        mark(m, id, dname, ELVIS_MIGRATION_NONE, "migrated_in",
                             "resumed here: its migration completed and its VM is served here");
                if (vm)
                        pin_now(m, id);
                break;
        case VIR_DOMAIN_EVENT_SUSPENDED:
                if (!vm || (detail != VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED && detail != VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY))
                        break;
                if (detail == VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY)
                        log_at(LOG_WARNING, ELVIS_LOG_VM(id, vm->name),
                               "domain %s entered post-copy migration, which ELVIS does not support: its data planes "
                               "do not handle userfault-driven post-copy", vm->domain);
                if (vm->migration != ELVIS_MIGRATION_OUTGOING)
                        mark(m, id, dname, ELVIS_MIGRATION_OUTGOING, "migrating_out",
                             "is paused here for a live migration's switch-over: its VM keeps its CPUs, sidecore "
                             "and queues until the domain stops here");
                break;
        case VIR_DOMAIN_EVENT_STOPPED:
        case VIR_DOMAIN_EVENT_UNDEFINED:
                if (!vm)
                        break;
                /* undefining a running domain leaves it running (transient): it still needs us */
                if (event == VIR_DOMAIN_EVENT_UNDEFINED && virDomainIsActive(dom) == 1)
                        break;
                if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED) {
                        release_migrated(m, id, dname, "migrated_out", "migrated to another host and stopped here");
                        break;
                }
                if (vm->migration == ELVIS_MIGRATION_INCOMING) {
                        release_migrated(m, id, dname, "migration_in_failed",
                                         "stopped before its incoming migration completed");
                        break;
                }
                {
                        char name[ELVIS_VM_NAME_MAX];
                        snprintf(name, sizeof(name), "%s", vm->name);
                        if (elvis_manager_vm_remove(m, id, &e) == 0)
                                log_notice("domain %s %s: VM %u '%s' removed, its CPUs and queues released",
                                           virDomainGetName(dom), event == VIR_DOMAIN_EVENT_STOPPED ? "stopped" : "undefined",
                                           id, name);
                        else
                                log_error("domain %s went away but VM '%s' could not be removed: %s",
                                          virDomainGetName(dom), name, e.detail);
                }
                break;
        default:
                break;
        }
        return 0;
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
        return elvis_libvirt_domain_event(opaque, dom, event, detail);
}

/* A live vcpupin (virsh vcpupin, Nova, KubeVirt) arrives as cputune.vcpupinN. */
static void on_tunable(virConnectPtr conn, virDomainPtr dom, virTypedParameterPtr params, int nparams, void *opaque)
{
        struct elvis_manager *m = opaque;
        struct elvis_vm *vm = vm_for_domain(m, dom);

        if (!vm || !elvis_config_respects_pins(&m->cfg))
                return;
        for (int i = 0; i < nparams; i++)
                if (strncmp(params[i].field, "cputune.vcpupin", 15) == 0) {
                        refresh_pins(m, vm->id, false);
                        return;
                }
}

static void on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque)
{
        struct elvis_manager *m = opaque;
        struct elvis_vm *vm = vm_for_domain(m, dom);
        struct elvis_domain_info info;
        struct elvis_err e = { 0 };
        char *xml, err[256];
        json_t *patch;

        if (!vm || (nsuri && strcmp(nsuri, ELVIS_XMLNS) != 0) || !(xml = virDomainGetXMLDesc(dom, 0)))
                return;
        if (elvis_domxml_parse(xml, strlen(xml), &info, err, sizeof(err)) == 0 && info.has_policy) {
                patch = json_pack("{s:{s:i, s:s}}", "policy", "weight", (int)info.policy.weight, "exitless",
                                  elvis_exitless_name(info.policy.exitless));
                if (elvis_manager_vm_patch(m, vm->id, patch, &(struct elvis_vm){ 0 }, &e) < 0)
                        log_warning("domain %s: new ELVIS metadata not applied: %s", info.name, e.detail);
                json_decref(patch);
        }
        free(xml);
}

/* After a (re)connect: pins of managed domains back where they belong, domains that
 * disappeared while we were away released, migrations that moved on while we were away
 * settled, running domains that opted in adopted. */
static void reconcile(struct elvis_manager *m)
{
        uint32_t ids[ELVIS_MAX_VMS];
        unsigned n = 0;

        /* by id: each step may commit and shift the array */
        for (unsigned i = 0; i < m->state.nvms && n < ELVIS_MAX_VMS; i++)
                if (m->state.vms[i].domain[0])
                        ids[n++] = m->state.vms[i].id;
        for (unsigned i = 0; i < n; i++) {
                struct elvis_vm *vm = elvis_state_vm(&m->state, ids[i]);
                virDomainPtr dom;
                bool gone;

                if (!vm)
                        continue;
                dom = lookup(m, vm->domain);
                if (!dom && !vm->migration) {
                        struct elvis_err e = { 0 };
                        log_notice("domain %s no longer exists: releasing VM '%s'", vm->domain, vm->name);
                        elvis_manager_vm_remove(m, vm->id, &e);
                        continue;
                }
                gone = settle_migration(m, ids[i], dom);
                if (dom)
                        virDomainFree(dom);
                if (!gone)
                        pin_now(m, ids[i]);
        }
        elvis_libvirt_adopt_running(m);
}

void elvis_libvirt_adopt_running(struct elvis_manager *m)
{
        virDomainPtr *doms = NULL;
        int n;

        if (!m->libvirt || !m->libvirt->conn)
                return;
        n = virConnectListAllDomains(m->libvirt->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
        for (int i = 0; i < n; i++) {
                if (!vm_for_domain(m, doms[i])) {
                        enum elvis_migration mig = migration_of(doms[i]);
                        uint32_t id = adopt(m, doms[i], mig);
                        struct elvis_vm *vm = id ? elvis_state_vm(&m->state, id) : NULL;
                        if (vm && mig) {
                                char reason[1024];
                                snprintf(reason, sizeof(reason),
                                         mig == ELVIS_MIGRATION_INCOMING ?
                                         "domain %s is arriving by live migration: adopted from its metadata as VM '%s' before its guest runs here" :
                                         "domain %s is paused here for a live migration's switch-over: adopted as VM '%s' until it stops here",
                                         vm->domain, vm->name);
                                elvis_libvirt_journal_migration(m, mig == ELVIS_MIGRATION_INCOMING ? "migration_in" :
                                                                "migrating_out", vm, reason);
                        }
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        check_conflicts(m);
}

static void on_close(virConnectPtr conn, int reason, void *opaque);

static void connect_now(struct elvis_manager *m)
{
        struct elvis_libvirt *lv = m->libvirt;

        lv->conn = virConnectOpen(m->cfg.libvirt_uri);
        if (!lv->conn) {
                snprintf(lv->last_error, sizeof(lv->last_error), "%s", lv_error());
                if (!lv->connected_once)
                        log_warning("libvirt at %s is not reachable (%s); retrying every %llu s", m->cfg.libvirt_uri,
                                    lv->last_error, RECONNECT_US / 1000000);
                elvis_loop_timer_rearm(lv->retry, RECONNECT_US, false);
                return;
        }
        lv->last_error[0] = '\0';
        virConnectSetKeepAlive(lv->conn, 5, 3);
        virConnectRegisterCloseCallback(lv->conn, on_close, m, NULL);
        lv->lifecycle_cb = virConnectDomainEventRegisterAny(lv->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                            VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), m, NULL);
        lv->metadata_cb = virConnectDomainEventRegisterAny(lv->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                                                           VIR_DOMAIN_EVENT_CALLBACK(on_metadata), m, NULL);
        lv->tunable_cb = virConnectDomainEventRegisterAny(lv->conn, NULL, VIR_DOMAIN_EVENT_ID_TUNABLE,
                                                          VIR_DOMAIN_EVENT_CALLBACK(on_tunable), m, NULL);
        log_info("libvirt: connected to %s", m->cfg.libvirt_uri);
        lv->connected_once = true;
        reconcile(m);
}

static void on_retry(struct elvis_loop_source *src, void *userdata)
{
        struct elvis_manager *m = userdata;

        if (!m->libvirt->conn)
                connect_now(m);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
        struct elvis_manager *m = opaque;
        struct elvis_libvirt *lv = m->libvirt;

        log_warning("libvirt: connection to %s closed (reason %d); reconnecting", m->cfg.libvirt_uri, reason);
        if (lv->conn == conn) {
                lv->conn = NULL;
                virConnectClose(conn);
                elvis_loop_timer_rearm(lv->retry, RECONNECT_US, false);
        }
}

/* A VM that names a domain gets its pins (or, under vcpu-pinning respect, has them read)
 * whenever its CPUs, or its domain, change; every change may start or end a conflict. */
static void on_commit(struct elvis_manager *m, enum elvis_event ev, const struct elvis_state *old, void *userdata)
{
        struct elvis_libvirt *lv = userdata;

        if (ev != ELVIS_EVENT_COMMIT)
                return;
        lv->check_conflicts = true;
        elvis_loop_timer_rearm(lv->deferred, 1, false);
        for (unsigned i = 0; i < m->state.nvms; i++) {
                const struct elvis_vm *vm = &m->state.vms[i], *was = NULL;
                for (unsigned k = 0; k < old->nvms && !was; k++)
                        if (old->vms[k].id == vm->id)
                                was = &old->vms[k];
                if (vm->domain[0] &&
                    (!was || strcmp(was->domain, vm->domain) || !elvis_cpuset_equal(&was->cpus, &vm->cpus)))
                        elvis_libvirt_schedule_pin(m, vm->id);
        }
}

static void on_arrival_check(struct elvis_loop_source *src, void *userdata);

int elvis_libvirt_start(struct elvis_manager *m)
{
        struct elvis_libvirt *lv;
        int r;

        if (!elvis_libvirt_enabled(m))
                return 0;
        lv = calloc(1, sizeof(*lv));
        if (!lv)
                return -ENOMEM;
        lv->m = m;
        m->libvirt = lv;
        if (!loop_owner) {
                loop_owner = m;
                virSetErrorFunc(NULL, quiet_errors);
                if ((r = elvis_loop_add_timer(m->loop, 0, false, run_frees, NULL, &free_timer)) < 0)
                        return r;
                virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
                                     remove_timeout);
        }
        lv->lifecycle_cb = lv->metadata_cb = lv->tunable_cb = -1;
        if ((r = elvis_loop_add_timer(m->loop, 0, false, on_retry, m, &lv->retry)) < 0 ||
            (r = elvis_loop_add_timer(m->loop, 0, false, on_deferred, m, &lv->deferred)) < 0)
                return r;
        if (elvis_config_respects_pins(&m->cfg) &&
            (r = elvis_loop_add_timer(m->loop, PIN_POLL_US, true, poll_pins, m, &lv->pin_poll)) < 0)
                return r;
        if ((r = elvis_loop_add_timer(m->loop, ARRIVAL_CHECK_US, true, on_arrival_check, m, &lv->arrival)) < 0)
                return r;
        elvis_loop_timer_rearm(lv->retry, 1, false);
        return elvis_manager_listen(m, on_commit, lv);
}

void elvis_libvirt_check_arrivals(struct elvis_manager *m)
{
        struct elvis_libvirt *lv = m->libvirt;
        uint32_t ids[ELVIS_MAX_VMS];
        unsigned n = 0, kept = 0;

        if (!lv || !lv->conn)
                return;         /* unknown is not absent: wait for libvirt */
        for (unsigned i = 0; i < m->state.nvms && n < ELVIS_MAX_VMS; i++)
                if (m->state.vms[i].migration == ELVIS_MIGRATION_INCOMING)
                        ids[n++] = m->state.vms[i].id;
        for (unsigned i = 0; i < n; i++) {
                struct elvis_vm *vm = elvis_state_vm(&m->state, ids[i]);
                virDomainPtr dom = vm ? lookup(m, vm->domain) : NULL;
                unsigned strikes = 0;

                if (!vm)
                        continue;
                if (dom) {
                        virDomainFree(dom);
                        continue;       /* it exists: its events settle it */
                }
                for (unsigned k = 0; k < lv->nabsent; k++)
                        if (lv->absent[k].id == ids[i])
                                strikes = lv->absent[k].strikes;
                if (++strikes >= ARRIVAL_STRIKES) {
                        release_migrated(m, ids[i], NULL, "migration_in_failed",
                                         "never appeared in libvirt after its incoming migration was announced (libvirt "
                                         "failed it before creating the domain)");
                        continue;
                }
                if (kept < sizeof(lv->absent) / sizeof(lv->absent[0])) {
                        lv->absent[kept].id = ids[i];
                        lv->absent[kept].strikes = strikes;
                        kept++;
                }
        }
        lv->nabsent = kept;
}

static void on_arrival_check(struct elvis_loop_source *src, void *userdata)
{
        (void)src;
        elvis_libvirt_check_arrivals(userdata);
}

void elvis_libvirt_stop(struct elvis_manager *m)
{
        struct elvis_libvirt *lv = m->libvirt;

        if (!lv)
                return;
        elvis_manager_unlisten(m, on_commit, lv);
        if (lv->conn) {
                if (lv->lifecycle_cb >= 0)
                        virConnectDomainEventDeregisterAny(lv->conn, lv->lifecycle_cb);
                if (lv->metadata_cb >= 0)
                        virConnectDomainEventDeregisterAny(lv->conn, lv->metadata_cb);
                if (lv->tunable_cb >= 0)
                        virConnectDomainEventDeregisterAny(lv->conn, lv->tunable_cb);
                virConnectUnregisterCloseCallback(lv->conn, on_close);
                virConnectClose(lv->conn);
        }
        elvis_loop_source_free(lv->retry);
        elvis_loop_source_free(lv->deferred);
        elvis_loop_source_free(lv->pin_poll);
        elvis_loop_source_free(lv->arrival);
        free(lv);
        m->libvirt = NULL;
}

bool elvis_libvirt_connected(const struct elvis_manager *m)
{
        return m->libvirt && m->libvirt->conn;
}

json_t *elvis_libvirt_status(struct elvis_manager *m)
{
        struct elvis_libvirt *lv = m->libvirt;
        const char *pinning = elvis_config_respects_pins(&m->cfg) ? "respect" : "own";

        if (!elvis_libvirt_enabled(m))
                return json_pack("{s:s, s:b, s:s}", "uri", "none", "connected", 0, "vcpu_pinning", pinning);
        return json_pack("{s:s, s:b, s:s?, s:s}", "uri", m->cfg.libvirt_uri, "connected", lv && lv->conn != NULL,
                         "error", lv && lv->last_error[0] ? lv->last_error : NULL, "vcpu_pinning", pinning);
}

/* What libvirt says about a managed VM right now: state and actual pins (drift shows). */
json_t *elvis_libvirt_vm_info(struct elvis_manager *m, const struct elvis_vm *vm)
{
        virDomainPtr dom;
        virDomainInfo di;
        unsigned char maps[ELVIS_MAX_VCPUS * 16];
        int ncpus, maplen, n;
        char buf[256];
        json_t *pins = json_array(), *j;

        if (!vm->domain[0] || !m->libvirt || !m->libvirt->conn) {
                json_decref(pins);
                return json_null();
        }
        dom = lookup(m, vm->domain);
        if (!dom) {
                json_decref(pins);
                return json_pack("{s:s}", "state", "absent");
        }
        ncpus = virNodeGetCPUMap(m->libvirt->conn, NULL, NULL, 0);
        maplen = VIR_CPU_MAPLEN(ncpus > 0 ? ncpus : 64);
        if (maplen > 16)
                maplen = 16;
        n = virDomainGetInfo(dom, &di) == 0 ? (int)di.nrVirtCpu : 0;
        if (n > ELVIS_MAX_VCPUS)
                n = ELVIS_MAX_VCPUS;
        if (n > 0 && virDomainGetVcpuPinInfo(dom, n, maps, maplen, 0) >= 0)
                for (int i = 0; i < n; i++) {
                        map_format(maps + (size_t)i * (size_t)maplen, maplen, buf, sizeof(buf));
                        json_array_append_new(pins, json_string(buf));
                }
        j = json_pack("{s:s, s:o}", "state", virDomainIsActive(dom) == 1 ? "running" : "shut off", "vcpu_pins", pins);
        if (virDomainGetEmulatorPinInfo(dom, maps, maplen, 0) >= 0) {
                map_format(maps, maplen, buf, sizeof(buf));
                json_object_set_new(j, "emulator_pin", json_string(buf));
        }
        virDomainFree(dom);
        return j;
}
