/* The kernel data plane: elvis-manager drives elvis.ko through /dev/elvis (ABI:
 * kernel/uapi/elvis.h).
 *
 * The module's devices are opened by the VMM (QEMU's vhostfd, one /dev/elvis-net file
 * per queue pair), not by the daemon, so a daemon device is bound to module devices by
 * its tap: the served module devices whose back end is that tap are its queue pairs. A
 * queue pair keeps its module device while that device exists; new ones go, in ascending
 * device id (the order QEMU opens them), to the queue pairs that have none. The binding
 * is refreshed whenever counters are read (every control interval), so a VM started
 * after it was added, or restarted, gets its queues onto the planned sidecores within
 * one interval.
 *
 * Daemon sidecores map to module sidecores created on the same CPU. Stopping the daemon
 * leaves the module's sidecores serving; a restarted daemon adopts the bound sidecore on
 * each of its sidecores' CPUs, and removes (after moving their queues) bound sidecores
 * it did not adopt, retrying every interval until that works. Module devices no daemon
 * queue claims stay where the module put them until their sidecore is removed; then they
 * move to the daemon's sidecore with the fewest queues, else to an unbound sidecore
 * (ELVIS_SIDECORE_F_DEFAULT: the module's own default one, or one created for them).
 * Empty unbound sidecores are removed while the daemon has sidecores of its own. */
#include "kernel_dp.h"

#include "dp_log.h"

#include <uapi/elvis.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

struct kqueue {
        uint32_t sidecore;              /* the daemon's assignment, ELVIS_SIDECORE_NONE: the module's choice */
        unsigned start_rate, stop_idle_ms;      /* own polling thresholds, 0: global */
        uint32_t kdev;                  /* module device bound to this queue pair, 0: none */
        uint32_t kcur;                  /* the module sidecore serving it when last seen */
};

struct kdevice {
        struct kdevice *next;
        uint32_t vm_id;
        char id[ELVIS_DEVICE_ID_MAX];
        char tap[ELVIS_IFNAME_MAX];
        unsigned nqp;
        unsigned weight;
        enum elvis_exitless exitless;
        bool warned_extra;
        struct kqueue q[ELVIS_MAX_QUEUES];
};

struct ksidecore {
        struct ksidecore *next;
        uint32_t id, kid;               /* the daemon's id, the module's */
        int cpu;
};

struct kdp {
        int fd;
        struct kdevice *devices;
        struct ksidecore *sidecores;
        /* bound module sidecores that existed when we opened: those not adopted by the
         * first sync are a previous daemon's leftovers, removed (retried) from then on */
        uint32_t preexisting[ELVIS_MAX_SIDECORES];
        unsigned npreexisting;
        bool swept;
        int last_err;                   /* of the last sync, logged when it changes */
        bool clamp_logged;
};

static int kioctl(struct kdp *k, unsigned long cmd, void *arg)
{
        return ioctl(k->fd, cmd, arg) < 0 ? -errno : 0;
}

/* One array command into a malloc'ed buffer the caller frees; retries while the module
 * has more elements than room. */
static int read_array(struct kdp *k, unsigned long cmd, size_t elem_size, void **ret, uint32_t *count)
{
        struct elvis_ioc_array a = { .elem_size = (uint32_t)elem_size };
        void *buf = NULL;
        int r;

        for (int attempt = 0; attempt < 8; attempt++) {
                if ((r = kioctl(k, cmd, &a)) < 0)
                        break;
                if (a.count <= a.capacity && (buf || a.count == 0)) {
                        *ret = buf;
                        *count = a.count;
                        return 0;
                }
                free(buf);
                a.capacity = a.count + 16;
                buf = calloc(a.capacity, elem_size);
                if (!buf)
                        return -ENOMEM;
                a.ptr = (uintptr_t)buf;
        }
        free(buf);
        return r < 0 ? r : -EAGAIN;
}

static int list_queues(struct kdp *k, struct elvis_queue_info **ret, uint32_t *n)
{
        return read_array(k, ELVIS_IOC_LIST_QUEUES, sizeof(**ret), (void **)ret, n);
}

static int list_sidecores(struct kdp *k, struct elvis_sidecore_info **ret, uint32_t *n)
{
        return read_array(k, ELVIS_IOC_LIST_SIDECORES, sizeof(**ret), (void **)ret, n);
}

/* Module sidecore kid in a LIST_SIDECORES result, or NULL. */
static const struct elvis_sidecore_info *info_of(const struct elvis_sidecore_info *sc, uint32_t n, uint32_t kid)
{
        for (uint32_t i = 0; i < n; i++)
                if (sc[i].id == kid)
                        return &sc[i];
        return NULL;
}

static struct ksidecore *find_sidecore(struct kdp *k, uint32_t id)
{
        for (struct ksidecore *s = k->sidecores; s; s = s->next)
                if (s->id == id)
                        return s;
        return NULL;
}

static struct ksidecore *find_sidecore_kid(struct kdp *k, uint32_t kid)
{
        for (struct ksidecore *s = k->sidecores; s; s = s->next)
                if (s->kid == kid)
                        return s;
        return NULL;
}

static struct kdevice *find_device(struct kdp *k, uint32_t vm, const char *id)
{
        for (struct kdevice *d = k->devices; d; d = d->next)
                if (d->vm_id == vm && strcmp(d->id, id) == 0)
                        return d;
        return NULL;
}

/* The daemon queue a module device is bound to, if any. */
static struct kqueue *bound_queue(struct kdp *k, uint32_t kdev, struct kdevice **ret_dev)
{
        for (struct kdevice *d = k->devices; d; d = d->next)
                for (unsigned i = 0; i < d->nqp; i++)
                        if (d->q[i].kdev == kdev) {
                                if (ret_dev)
                                        *ret_dev = d;
                                return &d->q[i];
                        }
        return NULL;
}

static int move(struct kdp *k, uint32_t kdev, uint32_t kid)
{
        struct elvis_ioc_queue_move m = { .device = kdev, .queue = 0, .sidecore = kid };

        return kioctl(k, ELVIS_IOC_QUEUE_MOVE, &m);
}

/* Moves daemon queue d/qi, bound to module device kdev, onto daemon sidecore s. */
static int move_queue(struct kdp *k, struct kdevice *d, unsigned qi, uint32_t kdev, const struct ksidecore *s)
{
        int r = move(k, kdev, s->kid);

        if (r == 0 && d->q[qi].kcur != s->kid)
                log_info("VM %u device %s queue %u: module device %u (tap %s) now on sidecore %u (module sidecore %u)",
                         d->vm_id, d->id, qi, kdev, d->tap, s->id, s->kid);
        if (r == 0)
                d->q[qi].kcur = s->kid;
        return r;
}

static uint32_t mode_of(enum elvis_exitless e)
{
        switch (e) {
        case ELVIS_EXITLESS_ALWAYS:
                return ELVIS_EXITLESS_MODE_ALWAYS;
        case ELVIS_EXITLESS_NEVER:
                return ELVIS_EXITLESS_MODE_NEVER;
        default:
                return ELVIS_EXITLESS_MODE_AUTO;
        }
}

/* Makes module device info->device carry the daemon queue's placement and policy. */
/* The per-queue SET_POLL carrying daemon queue d/qi's policy to module device kdev. */
static struct elvis_ioc_poll policy_of(const struct kdevice *d, unsigned qi, uint32_t kdev)
{
        return (struct elvis_ioc_poll){
                .scope = ELVIS_POLL_SCOPE_QUEUE,
                .device = kdev,
                .mask = ELVIS_POLL_SET_START_RATE | ELVIS_POLL_SET_STOP_IDLE | ELVIS_POLL_SET_WEIGHT |
                        ELVIS_POLL_SET_EXITLESS,
                .poll_start_rate = d->q[qi].start_rate,
                .poll_stop_idle_ns = (uint64_t)d->q[qi].stop_idle_ms * 1000000u,
                .weight = d->weight,
                .exitless = mode_of(d->exitless),
        };
}

/* Sends device d's policy to its bound module devices now (a policy change through the
 * API takes effect before the reply); a device gone meanwhile is rebound by the next sync. */
static int push_policy(struct kdp *k, struct kdevice *d)
{
        for (unsigned qi = 0; qi < d->nqp; qi++) {
                struct elvis_ioc_poll p = policy_of(d, qi, d->q[qi].kdev);
                int r;
                if (!d->q[qi].kdev)
                        continue;
                r = kioctl(k, ELVIS_IOC_SET_POLL, &p);
                if (r == -ENOENT)
                        d->q[qi].kdev = 0;
                else if (r < 0)
                        return r;
        }
        return 0;
}

static int apply(struct kdp *k, struct kdevice *d, unsigned qi, const struct elvis_queue_info *info)
{
        const struct kqueue *q = &d->q[qi];
        struct ksidecore *s = q->sidecore ? find_sidecore(k, q->sidecore) : NULL;
        struct elvis_ioc_poll p = policy_of(d, qi, info->device);
        int r = 0;

        /* only served devices move: one without a back end gets a sidecore from the module
         * when QEMU starts it, and the next sync moves it */
        if (s && info->sidecore && info->sidecore != s->kid)
                r = move_queue(k, d, qi, info->device, s);
        if (info->weight != p.weight || info->exitless != p.exitless || info->poll_start_rate != p.poll_start_rate ||
            info->poll_stop_idle_ns != p.poll_stop_idle_ns) {
                int r2 = kioctl(k, ELVIS_IOC_SET_POLL, &p);
                if (r == 0)
                        r = r2;
        }
        return r == -ENOENT ? 0 : r;    /* the device went away meanwhile: nothing to apply */
}

static int cmp_device(const void *a, const void *b)
{
        const struct elvis_queue_info *x = a, *y = b;

        return x->device < y->device ? -1 : x->device > y->device;
}

/* A home for queues leaving sidecore kid: the module sidecore with the fewest queues
 * among the others (the daemon's first), else a new unbound one. */
static int other_home(struct kdp *k, uint32_t kid, uint32_t *ret)
{
        struct elvis_sidecore_info *sc = NULL;
        uint32_t n = 0, best = 0, best_q = UINT32_MAX;
        bool best_ours = false;
        int r = list_sidecores(k, &sc, &n);

        if (r < 0)
                return r;
        for (uint32_t i = 0; i < n; i++) {
                bool ours = find_sidecore_kid(k, sc[i].id) != NULL;
                if (sc[i].id == kid || (!ours && sc[i].cpu >= 0))
                        continue;       /* not there, nor onto a bound sidecore nobody manages */
                if ((ours && !best_ours) || (ours == best_ours && sc[i].nqueues < best_q)) {
                        best = sc[i].id;
                        best_q = sc[i].nqueues;
                        best_ours = ours;
                }
        }
        free(sc);
        if (!best) {
                struct elvis_ioc_sidecore c = { .cpu = -1, .flags = ELVIS_SIDECORE_F_DEFAULT };
                if ((r = kioctl(k, ELVIS_IOC_SIDECORE_CREATE, &c)) < 0)
                        return r;
                log_info("created unbound module sidecore %u for queues no sidecore of ours serves", c.id);
                best = c.id;
        }
        *ret = best;
        return 0;
}

/* Moves every queue off module sidecore kid except those the daemon assigned to it
 * (-EBUSY if there are any), then destroys it. */
static int drain_and_destroy(struct kdp *k, uint32_t kid, uint32_t own_id)
{
        struct elvis_ioc_sidecore c = { .id = kid };
        int r = 0;

        /* the module may hand a new device to this sidecore between the moves and the
         * destroy: try a few times */
        for (int attempt = 0; attempt < 4; attempt++) {
                struct elvis_queue_info *qs = NULL;
                uint32_t n = 0, home = 0;

                if ((r = list_queues(k, &qs, &n)) < 0)
                        return r;
                for (uint32_t i = 0; i < n && r == 0; i++) {
                        struct kqueue *q;
                        if (qs[i].sidecore != kid)
                                continue;
                        q = bound_queue(k, qs[i].device, NULL);
                        if (own_id && q && q->sidecore == own_id) {
                                r = -EBUSY;
                                break;
                        }
                        /* chosen per queue, so they spread over the least loaded */
                        if ((r = other_home(k, kid, &home)) < 0)
                                break;
                        r = move(k, qs[i].device, home);
                        if (r == 0) {
                                log_info("module device %u (tap %s) moved from module sidecore %u to %u", qs[i].device,
                                         qs[i].tap, kid, home);
                                if (q)
                                        q->kcur = home;
                        } else if (r == -ENOENT) {
                                r = 0;
                        }
                }
                free(qs);
                if (r < 0)
                        return r;
                r = kioctl(k, ELVIS_IOC_SIDECORE_DESTROY, &c);
                if (r != -EBUSY)
                        return r == -ENOENT ? 0 : r;
        }
        return r;
}

static bool listed(const struct elvis_queue_info *qs, uint32_t n, uint32_t kdev, const char *tap)
{
        for (uint32_t i = 0; i < n; i++)
                if (qs[i].device == kdev)
                        return qs[i].sidecore && strcmp(qs[i].tap, tap) == 0;
        return false;
}

/* Keeps each queue pair's module device while it is listed (served, same tap), then
 * hands the tap's other module devices, lowest id first, to the pairs without one. */
static void bind_device(struct kdevice *d, const struct elvis_queue_info *qs, uint32_t n)
{
        unsigned extra = 0;

        for (unsigned i = 0; i < d->nqp; i++)
                if (d->q[i].kdev && !listed(qs, n, d->q[i].kdev, d->tap))
                        d->q[i].kdev = 0;
        for (uint32_t i = 0; i < n; i++) {
                unsigned free_qp = d->nqp, mine = d->nqp;
                if (!qs[i].sidecore || strcmp(qs[i].tap, d->tap) != 0)
                        continue;
                for (unsigned q = 0; q < d->nqp; q++) {
                        if (d->q[q].kdev == qs[i].device)
                                mine = q;
                        if (!d->q[q].kdev && free_qp == d->nqp)
                                free_qp = q;
                }
                if (mine < d->nqp)
                        continue;
                if (free_qp < d->nqp)
                        d->q[free_qp].kdev = qs[i].device;
                else
                        extra++;
        }
        if (extra && !d->warned_extra)
                log_warning("VM %u device %s: %u more module devices use tap %s than its %u queue pair(s); "
                            "those are not managed", d->vm_id, d->id, extra, d->tap, d->nqp);
        d->warned_extra = extra > 0;
}

/* Retires a previous daemon's bound sidecores that nobody adopted; failures are retried
 * at the next sync. */
static void sweep(struct kdp *k)
{
        unsigned kept = 0;

        for (unsigned i = 0; i < k->npreexisting; i++) {
                uint32_t kid = k->preexisting[i];
                int r;
                if (find_sidecore_kid(k, kid))
                        continue;       /* adopted: ours now */
                r = drain_and_destroy(k, kid, 0);
                if (r < 0) {
                        if (!k->swept)
                                log_warning("removing module sidecore %u left by a previous run: %s (retrying)", kid,
                                            strerror(-r));
                        k->preexisting[kept++] = kid;
                } else {
                        log_info("removed module sidecore %u left by a previous run (its queues moved)", kid);
                }
        }
        k->npreexisting = kept;
        k->swept = true;
}

/* While the daemon has sidecores, empty unbound ones (the module's default, or one we
 * created to park queues) only attract new devices onto a thread no CPU is reserved
 * for: the module hands a new device to the sidecore with the fewest queues. sc is the
 * tick's LIST_SIDECORES (a sidecore that got a queue since refuses with EBUSY). */
static void retire_empty_unbound(struct kdp *k, const struct elvis_sidecore_info *sc, uint32_t n)
{
        if (!k->sidecores)
                return;
        for (uint32_t i = 0; i < n; i++) {
                struct elvis_ioc_sidecore c = { .id = sc[i].id };
                if (sc[i].cpu == -1 && sc[i].nqueues == 0 && kioctl(k, ELVIS_IOC_SIDECORE_DESTROY, &c) == 0)
                        log_info("removed empty unbound module sidecore %u (the daemon's sidecores serve)", sc[i].id);
        }
}

/* Binds daemon devices to the module's devices in qs (its queue list, sorted by device
 * id) and applies placements and policies; also retires a previous daemon's sidecores
 * that were not adopted. Failures are logged (when they change) and retried at the next
 * sync; placements changed here are in each bound queue's kcur, not in qs. */
static void sync_module(struct kdp *k, const struct elvis_queue_info *qs, uint32_t n)
{
        int r, first = 0;

        for (struct kdevice *d = k->devices; d; d = d->next) {
                bind_device(d, qs, n);
                for (uint32_t i = 0; i < n; i++)
                        for (unsigned q = 0; q < d->nqp; q++)
                                if (d->q[q].kdev == qs[i].device) {
                                        d->q[q].kcur = qs[i].sidecore;
                                        r = apply(k, d, q, &qs[i]);
                                        if (r < 0 && first == 0)
                                                first = r;
                                }
        }
        if (k->npreexisting)
                sweep(k);
        if (first < 0 && first != k->last_err)
                log_warning("applying placements to elvis.ko: %s (retried every control interval)", strerror(-first));
        k->last_err = first;
}

static bool kernel_available(void)
{
        return access(ELVIS_CONTROL_DEVICE, F_OK) == 0;
}

static int kernel_open(const struct elvis_dp_config *cfg, void **ret)
{
        struct elvis_ioc_version v;
        struct elvis_sidecore_info *sc = NULL;
        uint32_t n = 0;
        struct kdp *k;
        int r;

        (void)cfg;      /* no sockets; sidecores are always bound (the module checks the CPU) */
        k = calloc(1, sizeof(*k));
        if (!k)
                return -ENOMEM;
        k->fd = open(ELVIS_CONTROL_DEVICE, O_RDWR | O_CLOEXEC);
        if (k->fd < 0) {
                r = -errno;
                log_error("cannot open %s: %s%s", ELVIS_CONTROL_DEVICE, strerror(-r),
                          r == -EACCES || r == -EPERM ? " (it needs CAP_NET_ADMIN)" : "");
                free(k);
                return r;
        }
        if ((r = kioctl(k, ELVIS_IOC_VERSION, &v)) < 0 || v.abi != ELVIS_IOC_ABI_VERSION) {
                if (r == 0) {
                        log_error("elvis.ko speaks control ABI %u, this elvis-manager ABI %u: load the matching module",
                                  v.abi, ELVIS_IOC_ABI_VERSION);
                        r = -EPROTO;
                } else {
                        log_error("%s does not answer ELVIS_IOC_VERSION: %s", ELVIS_CONTROL_DEVICE, strerror(-r));
                }
                goto fail;
        }
        if ((r = list_sidecores(k, &sc, &n)) < 0)
                goto fail;
        for (uint32_t i = 0; i < n && k->npreexisting < ELVIS_MAX_SIDECORES; i++)
                if (sc[i].cpu >= 0 && !(sc[i].flags & ELVIS_SIDECORE_F_DEFAULT))
                        k->preexisting[k->npreexisting++] = sc[i].id;
        free(sc);
        log_info("elvis.ko control ABI %u, %u CPUs, features %#llx, %u bound sidecore(s) already running", v.abi,
                 v.nr_cpus, (unsigned long long)v.features, k->npreexisting);
        *ret = k;
        return 0;
fail:
        close(k->fd);
        free(k);
        return r;
}

static void kernel_close(void *p)
{
        struct kdp *k = p;

        /* the module's sidecores keep serving the VMs: a restarted daemon adopts them */
        while (k->devices) {
                struct kdevice *d = k->devices;
                k->devices = d->next;
                free(d);
        }
        while (k->sidecores) {
                struct ksidecore *s = k->sidecores;
                k->sidecores = s->next;
                free(s);
        }
        close(k->fd);
        free(k);
}

static int kernel_health(void *p, char *detail, size_t len)
{
        struct kdp *k = p;
        struct elvis_ioc_version v;
        struct elvis_sidecore_info *sc = NULL;
        uint32_t n = 0;
        unsigned ns = 0, nd = 0, nb = 0;
        int r = kioctl(k, ELVIS_IOC_VERSION, &v);

        if (r < 0) {
                snprintf(detail, len, "elvis.ko control device does not answer: %s", strerror(-r));
                return r;
        }
        if ((r = list_sidecores(k, &sc, &n)) < 0) {
                snprintf(detail, len, "elvis.ko does not list its sidecores: %s", strerror(-r));
                return r;
        }
        for (struct ksidecore *s = k->sidecores; s; s = s->next) {
                ns++;
                if (!info_of(sc, n, s->kid) && r == 0) {
                        snprintf(detail, len, "sidecore %u (module sidecore %u on CPU %d) was destroyed behind "
                                 "elvis-manager's back", s->id, s->kid, s->cpu);
                        r = -ENOENT;
                }
        }
        free(sc);
        if (r < 0)
                return r;
        for (struct kdevice *d = k->devices; d; d = d->next) {
                nd++;
                for (unsigned i = 0; i < d->nqp; i++)
                        nb += d->q[i].kdev != 0;
        }
        snprintf(detail, len, "elvis.ko kernel data plane (ABI %u): %u sidecores, %u devices, %u queue pairs bound",
                 v.abi, ns, nd, nb);
        return 0;
}

static int kernel_sidecore_create(void *p, uint32_t id, int cpu)
{
        struct kdp *k = p;
        struct elvis_sidecore_info *sc = NULL;
        struct elvis_ioc_sidecore c = { .cpu = cpu };
        struct ksidecore *s;
        uint32_t n = 0, adopt = 0, adopt_q = 0;
        int r;

        if (find_sidecore(k, id))
                return -EEXIST;
        if (cpu < 0)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s)
                return -ENOMEM;
        /* a sidecore a previous run left on this CPU keeps its queues: adopt it */
        if ((r = list_sidecores(k, &sc, &n)) < 0)
                goto fail;
        /* the one serving the most queues, if a previous run left several on this CPU */
        for (uint32_t i = 0; i < n; i++)
                if (sc[i].cpu == cpu && !(sc[i].flags & ELVIS_SIDECORE_F_DEFAULT) && !find_sidecore_kid(k, sc[i].id))
                        for (unsigned j = 0; j < k->npreexisting; j++)
                                if (k->preexisting[j] == sc[i].id && (!adopt || sc[i].nqueues > adopt_q)) {
                                        adopt = sc[i].id;
                                        adopt_q = sc[i].nqueues;
                                }
        free(sc);
        if (adopt) {
                c.id = adopt;
                log_info("sidecore %u: adopted module sidecore %u already running on CPU %d", id, adopt, cpu);
        } else if ((r = kioctl(k, ELVIS_IOC_SIDECORE_CREATE, &c)) < 0) {
                goto fail;
        }
        s->id = id;
        s->kid = c.id;
        s->cpu = cpu;
        s->next = k->sidecores;
        k->sidecores = s;
        return 0;
fail:
        free(s);
        return r;
}

static int kernel_sidecore_destroy(void *p, uint32_t id)
{
        struct kdp *k = p;
        struct ksidecore **pp, *s;
        int r;

        for (pp = &k->sidecores; (s = *pp); pp = &s->next)
                if (s->id == id)
                        break;
        if (!s)
                return -ENOENT;
        r = drain_and_destroy(k, s->kid, id);
        if (r < 0)
                return r;
        *pp = s->next;
        free(s);
        return 0;
}

static int kernel_device_attach(void *p, const struct elvis_dp_device *cfg)
{
        struct kdp *k = p;
        struct kdevice *d;

        /* the module's back end is the tap QEMU hands to /dev/elvis-net */
        if (cfg->type != ELVIS_DEVICE_NET || cfg->backend != ELVIS_BACKEND_TAP || !cfg->tap || !cfg->tap[0])
                return -EOPNOTSUPP;
        if (cfg->queues < 1 || cfg->queues > ELVIS_MAX_QUEUES)
                return -EINVAL;
        if (find_device(k, cfg->vm_id, cfg->device_id))
                return -EEXIST;
        d = calloc(1, sizeof(*d));
        if (!d)
                return -ENOMEM;
        d->vm_id = cfg->vm_id;
        snprintf(d->id, sizeof(d->id), "%s", cfg->device_id);
        snprintf(d->tap, sizeof(d->tap), "%s", cfg->tap);
        d->nqp = cfg->queues;
        d->weight = cfg->weight;
        d->exitless = cfg->exitless;
        d->next = k->devices;
        k->devices = d;
        log_info("VM %u device %s: served by elvis.ko once its VMM opens /dev/elvis-net with tap %s (%u queue pair%s)",
                 d->vm_id, d->id, d->tap, d->nqp, d->nqp > 1 ? "s" : "");
        /* bound by the next sync (within a control interval): syncing here would list the
         * module once per device when a saved state with many VMs is restored */
        return 0;
}

static int kernel_device_detach(void *p, uint32_t vm, const char *id)
{
        struct kdp *k = p;

        /* its module devices stay served where they are: they belong to the VMM */
        for (struct kdevice **pp = &k->devices, *d; (d = *pp); pp = &d->next)
                if (d->vm_id == vm && strcmp(d->id, id) == 0) {
                        *pp = d->next;
                        free(d);
                        return 0;
                }
        return -ENOENT;
}

static int kernel_device_set_policy(void *p, uint32_t vm, const char *id, unsigned weight, enum elvis_exitless ex)
{
        struct kdp *k = p;
        struct kdevice *d = find_device(k, vm, id);

        if (!d)
                return -ENOENT;
        if (weight < ELVIS_WEIGHT_MIN || weight > ELVIS_WEIGHT_MAX || ex >= __ELVIS_EXITLESS_MAX)
                return -EINVAL;
        d->weight = weight;
        d->exitless = ex;
        return push_policy(k, d);
}

static bool module_has_sidecore(struct kdp *k, uint32_t kid)
{
        struct elvis_sidecore_info *sc = NULL;
        uint32_t n = 0;
        bool found;

        if (list_sidecores(k, &sc, &n) < 0)
                return true;    /* cannot tell: do not claim it is gone */
        found = info_of(sc, n, kid) != NULL;
        free(sc);
        return found;
}

static int kernel_queue_assign(void *p, uint32_t vm, const char *id, unsigned queue, uint32_t sidecore)
{
        struct kdp *k = p;
        struct kdevice *d = find_device(k, vm, id);
        struct ksidecore *s = NULL;

        if (!d || queue >= d->nqp || (sidecore && !(s = find_sidecore(k, sidecore))))
                return -ENOENT;
        d->q[queue].sidecore = sidecore;
        if (s && d->q[queue].kdev && d->q[queue].kcur != s->kid) {
                /* bound already: move now, so a sidecore emptied by this can be destroyed next */
                int r = move_queue(k, d, queue, d->q[queue].kdev, s);
                if (r == -ENOENT && !module_has_sidecore(k, s->kid)) {
                        log_error("sidecore %u: module sidecore %u was destroyed behind elvis-manager's back", s->id,
                                  s->kid);
                        return -ENOENT;
                }
                if (r == -ENOENT)
                        d->q[queue].kdev = 0;   /* the device is gone; the next sync binds its successor */
                else if (r < 0)
                        return r;
        }
        return 0;
}

static int kernel_set_params(void *p, const struct elvis_dp_params *params)
{
        struct kdp *k = p;
        /* the module's ranges are narrower: at least 1 kick/s (0 would mean "poll from the
         * first kick", which 1 kick/s is in effect), at most 16 MiB per turn;
         * vanilla_busyloop_us is the user plane's: elvis.ko serves exitless never
         * queues on its sidecores, without a thread per device */
        struct elvis_ioc_poll g = {
                .scope = ELVIS_POLL_SCOPE_GLOBAL,
                .mask = ELVIS_POLL_SET_START_RATE | ELVIS_POLL_SET_STOP_IDLE | ELVIS_POLL_SET_BUDGET_PACKETS |
                        ELVIS_POLL_SET_BUDGET_BYTES,
                .poll_start_rate = params->poll_start_rate ? params->poll_start_rate : 1,
                .poll_stop_idle_ns = (uint64_t)(params->poll_stop_idle_ms ? params->poll_stop_idle_ms : 1) * 1000000u,
                .budget_packets = params->budget_packets,
                .budget_bytes = params->budget_bytes > (16u << 20) ? 16u << 20 : params->budget_bytes,
        };

        if (params->budget_bytes > g.budget_bytes && !k->clamp_logged) {
                log_notice("budget_bytes %u is above elvis.ko's limit: the module uses %u", params->budget_bytes,
                           g.budget_bytes);
                k->clamp_logged = true;
        }
        return kioctl(k, ELVIS_IOC_SET_POLL, &g);
}

static int kernel_queue_set_poll(void *p, uint32_t vm, const char *id, unsigned queue, unsigned start_rate,
                                 unsigned stop_idle_ms)
{
        struct kdp *k = p;
        struct kdevice *d = find_device(k, vm, id);

        if (!d || queue >= d->nqp)
                return -ENOENT;
        d->q[queue].start_rate = start_rate;
        d->q[queue].stop_idle_ms = stop_idle_ms;
        return push_policy(k, d);
}

static enum elvis_dp_queue_state state_of(uint32_t s)
{
        switch (s) {
        case ELVIS_QUEUE_STATE_READY:
                return ELVIS_QUEUE_READY;
        case ELVIS_QUEUE_STATE_ERROR:
                return ELVIS_QUEUE_ERROR;
        default:
                return ELVIS_QUEUE_DISCONNECTED;
        }
}

static void sidecore_stats(struct elvis_dp_sidecore_stats *o, const struct elvis_sidecore_info *x)
{
        o->nqueues = x->nqueues;
        o->sleeping = x->flags & ELVIS_SIDECORE_F_SLEEPING;
        o->polls = x->polls;
        o->empty_polls = x->empty_polls;
        o->busy_ns = x->busy_ns;
        o->idle_ns = x->idle_ns;
        o->packets = x->packets;
        o->bytes = x->bytes;
        o->wakeups = x->wakeups;
}

static void queue_stats(struct elvis_dp_queue_stats *o, const struct elvis_queue_counters *x)
{
        o->rx_packets = x->rx_packets;
        o->rx_bytes = x->rx_bytes;
        o->tx_packets = x->tx_packets;
        o->tx_bytes = x->tx_bytes;
        o->kicks = x->kicks;
        o->interrupts = x->interrupts;
        o->polls = x->polls;
        o->empty_polls = x->empty_polls;
        o->busy_ns = x->busy_ns;
        o->wait_ns = x->wait_ns;
        o->wait_samples = x->wait_samples;
        o->errors = x->errors;
        o->drops = x->drops;
}

/* The control tick: bind the devices VMMs opened since, move their queues where the
 * plan says, retire empty unbound sidecores. */
static int kernel_sync(void *p)
{
        struct kdp *k = p;
        struct elvis_sidecore_info *sc = NULL;
        struct elvis_queue_info *qs = NULL;
        uint32_t nsc = 0, nq = 0;
        int r;

        if ((r = list_queues(k, &qs, &nq)) < 0)
                goto out;
        if (nq)
                qsort(qs, nq, sizeof(*qs), cmp_device);
        sync_module(k, qs, nq);
        if ((r = list_sidecores(k, &sc, &nsc)) < 0)
                goto out;
        retire_empty_unbound(k, sc, nsc);
out:
        free(qs);
        free(sc);
        return r;
}

static int kernel_stats_read(void *p, struct elvis_dp_stats *st)
{
        struct kdp *k = p;
        struct elvis_sidecore_info *sc = NULL;
        struct elvis_queue_info *qs = NULL;
        struct elvis_queue_counters *cs = NULL;
        uint32_t nsc = 0, nq = 0, nc = 0;
        unsigned ns = 0, total = 0;
        int r;

        memset(st, 0, sizeof(*st));
        if ((r = list_queues(k, &qs, &nq)) < 0)
                goto out;
        if (nq)
                qsort(qs, nq, sizeof(*qs), cmp_device);
        if ((r = list_sidecores(k, &sc, &nsc)) < 0 ||
            (r = read_array(k, ELVIS_IOC_READ_COUNTERS, sizeof(*cs), (void **)&cs, &nc)) < 0)
                goto out;
        for (struct ksidecore *s = k->sidecores; s; s = s->next)
                ns++;
        for (struct kdevice *d = k->devices; d; d = d->next)
                total += d->nqp;
        st->sidecores = calloc(ns ? ns : 1, sizeof(*st->sidecores));
        st->queues = calloc(total ? total : 1, sizeof(*st->queues));
        if (!st->sidecores || !st->queues) {
                r = -ENOMEM;
                goto out;
        }
        {
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                st->timestamp_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        }
        for (struct ksidecore *s = k->sidecores; s; s = s->next) {
                struct elvis_dp_sidecore_stats *o = &st->sidecores[st->nsidecores++];
                o->id = s->id;
                o->cpu = s->cpu;
                const struct elvis_sidecore_info *x = info_of(sc, nsc, s->kid);
                if (x)
                        sidecore_stats(o, x);
        }
        for (struct kdevice *d = k->devices; d; d = d->next)
                for (unsigned qi = 0; qi < d->nqp; qi++) {
                        struct elvis_dp_queue_stats *o = &st->queues[st->nqueues++];
                        uint32_t kdev = d->q[qi].kdev;
                        o->vm_id = d->vm_id;
                        snprintf(o->device, sizeof(o->device), "%s", d->id);
                        o->queue = qi;
                        /* not running: its assignment, as the user data plane reports it */
                        o->sidecore = d->q[qi].sidecore;
                        o->state = ELVIS_QUEUE_DISCONNECTED;
                        for (uint32_t i = 0; kdev && i < nq; i++)
                                if (qs[i].device == kdev) {
                                        /* where the module has it now, as listed */
                                        struct ksidecore *s = find_sidecore_kid(k, qs[i].sidecore);
                                        o->sidecore = s ? s->id : ELVIS_SIDECORE_NONE;
                                        o->state = state_of(qs[i].state);
                                        o->polling = qs[i].flags & ELVIS_QUEUE_F_POLLING;
                                }
                        for (uint32_t i = 0; kdev && i < nc; i++)
                                if (cs[i].device == kdev)
                                        queue_stats(o, &cs[i]);
                }
        r = 0;
out:
        free(sc);
        free(qs);
        free(cs);
        if (r < 0)
                elvis_dp_stats_fini(st);
        return r;
}

const struct elvis_dataplane_ops elvis_kernel_dataplane = {
        .kind = "kernel",
        .available = kernel_available,
        .open = kernel_open,
        .close = kernel_close,
        .health = kernel_health,
        .sidecore_create = kernel_sidecore_create,
        .sidecore_destroy = kernel_sidecore_destroy,
        .device_attach = kernel_device_attach,
        .device_detach = kernel_device_detach,
        .device_set_policy = kernel_device_set_policy,
        .queue_assign = kernel_queue_assign,
        .set_params = kernel_set_params,
        .queue_set_poll = kernel_queue_set_poll,
        .stats_read = kernel_stats_read,
        .sync = kernel_sync,
};
