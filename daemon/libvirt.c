/* libvirt client on the manager's event loop. */
#include "libvirt.h"

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
        int lifecycle_cb, metadata_cb;
        struct elvis_loop_source *retry;
        struct elvis_loop_source *deferred;
        uint32_t pending_pins[64];
        unsigned npending;
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

bool elvis_libvirt_enabled(const struct elvis_manager *m)
{
        return m->cfg.libvirt_uri && strcmp(m->cfg.libvirt_uri, "none") != 0;
}

int elvis_libvirt_domain_for(struct elvis_manager *m, const struct elvis_vm *vm, struct elvis_domain_info *ret,
                             struct elvis_err *e)
{
        char err[256];
        int r;

        if (!vm->domain[0] || (vm->vcpus && vm->ndevices) || !elvis_libvirt_enabled(m))
                return 0;       /* without libvirt a domain name is a label */
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
        virDomainFree(dom);
        if (!xml) {
                snprintf(err, errlen, "cannot read the XML of domain '%s': %s", domain, lv_error());
                return -EIO;
        }
        r = elvis_domxml_parse(xml, strlen(xml), ret, err, errlen);
        free(xml);
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

/* Pins vCPU i to the VM's i-th CPU; corrects drift and says so. */
static void pin_vm(struct elvis_manager *m, const struct elvis_vm *vm, bool report_drift)
{
        virDomainPtr dom;
        int ncpus, maplen, active;
        unsigned flags;
        unsigned char map[ELVIS_MAX_CPUS / 8], cur[ELVIS_MAX_CPUS / 8 * 8];
        unsigned i = 0;

        if (!vm->domain[0] || !m->libvirt || !m->libvirt->conn || (dom = lookup(m, vm->domain)) == NULL)
                return;
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

static void on_deferred(struct elvis_loop_source *src, void *userdata)
{
        struct elvis_manager *m = userdata;
        struct elvis_libvirt *lv = m->libvirt;

        while (lv->npending) {
                struct elvis_vm *vm = elvis_state_vm(&m->state, lv->pending_pins[--lv->npending]);
                if (vm)
                        pin_vm(m, vm, false);
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

static void adopt(struct elvis_manager *m, virDomainPtr dom)
{
        struct elvis_domain_info info;
        struct elvis_vm vm = { .numa = -1 };
        struct elvis_err e = { 0 };
        char *xml = virDomainGetXMLDesc(dom, 0), err[256];
        int r;

        if (!xml)
                return;
        r = elvis_domxml_parse(xml, strlen(xml), &info, err, sizeof(err));
        free(xml);
        if (r < 0) {
                log_warning("domain %s: not adopted: %s", virDomainGetName(dom), err);
                return;
        }
        if (elvis_libvirt_may_adopt(m, &info, &e) < 0) {
                log_info("%s", e.detail);
                return;
        }
        elvis_domxml_vm_name(info.name, vm.name, sizeof(vm.name));
        snprintf(vm.domain, sizeof(vm.domain), "%s", info.uuid[0] ? info.uuid : info.name);
        vm.vcpus = info.vcpus;
        vm.policy = info.policy;
        vm.ndevices = info.nifaces;
        for (unsigned i = 0; i < info.nifaces; i++) {
                snprintf(vm.devices[i].id, sizeof(vm.devices[i].id), "net%u", i);
                vm.devices[i].backend = ELVIS_BACKEND_TAP;
                vm.devices[i].queues = 1;
                snprintf(vm.devices[i].socket, sizeof(vm.devices[i].socket), "%s", info.sockets[i]);
        }
        r = elvis_manager_vm_add(m, &vm, false, &e);
        if (r < 0)
                log_error("domain %s opted in (%s) but cannot be adopted: %s", info.name,
                          info.has_policy ? "ELVIS metadata" : "adopt-domains", e.detail);
        else
                log_notice("domain %s adopted as VM %u '%s' (%s; weight %u, exitless %s)", info.name, vm.id, vm.name,
                           info.has_policy ? "ELVIS metadata" : "adopt-domains", vm.policy.weight,
                           elvis_exitless_name(vm.policy.exitless));
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

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
        struct elvis_manager *m = opaque;
        struct elvis_vm *vm = vm_for_domain(m, dom);
        struct elvis_err e = { 0 };

        switch (event) {
        case VIR_DOMAIN_EVENT_STARTED:
        case VIR_DOMAIN_EVENT_RESUMED:
                if (vm)
                        pin_vm(m, vm, true);
                else if (event == VIR_DOMAIN_EVENT_STARTED)
                        adopt(m, dom);
                break;
        case VIR_DOMAIN_EVENT_STOPPED:
        case VIR_DOMAIN_EVENT_UNDEFINED:
                if (vm) {
                        uint32_t id = vm->id;
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
 * disappeared while we were away released, running domains that opted in adopted. */
static void reconcile(struct elvis_manager *m)
{
        for (unsigned i = 0; i < m->state.nvms;) {
                struct elvis_vm *vm = &m->state.vms[i];
                virDomainPtr dom;
                if (!vm->domain[0]) {
                        i++;
                        continue;
                }
                dom = lookup(m, vm->domain);
                if (!dom) {
                        struct elvis_err e = { 0 };
                        log_notice("domain %s no longer exists: releasing VM '%s'", vm->domain, vm->name);
                        if (elvis_manager_vm_remove(m, vm->id, &e) == 0)
                                continue;       /* the array shifted */
                        i++;
                        continue;
                }
                pin_vm(m, vm, true);
                virDomainFree(dom);
                i++;
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
                if (!vm_for_domain(m, doms[i]))
                        adopt(m, doms[i]);
                virDomainFree(doms[i]);
        }
        free(doms);
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

/* A VM that names a domain gets its pins whenever its CPUs, or its domain, change. */
static void on_commit(struct elvis_manager *m, enum elvis_event ev, const struct elvis_state *old, void *userdata)
{
        if (ev != ELVIS_EVENT_COMMIT)
                return;
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
        if ((r = elvis_loop_add_timer(m->loop, 0, false, on_retry, m, &lv->retry)) < 0 ||
            (r = elvis_loop_add_timer(m->loop, 0, false, on_deferred, m, &lv->deferred)) < 0)
                return r;
        elvis_loop_timer_rearm(lv->retry, 1, false);
        return elvis_manager_listen(m, on_commit, lv);
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
                virConnectUnregisterCloseCallback(lv->conn, on_close);
                virConnectClose(lv->conn);
        }
        elvis_loop_source_free(lv->retry);
        elvis_loop_source_free(lv->deferred);
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

        if (!elvis_libvirt_enabled(m))
                return json_pack("{s:s, s:b}", "uri", "none", "connected", 0);
        return json_pack("{s:s, s:b, s:s?}", "uri", m->cfg.libvirt_uri, "connected", lv && lv->conn != NULL, "error",
                         lv && lv->last_error[0] ? lv->last_error : NULL);
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
