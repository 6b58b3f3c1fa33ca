/* The user-space data plane behind the data-plane interface: vhost-user devices,
 * sidecore threads and vanilla (thread per device) threads. */
#include "user_dp.h"

#include "dp.h"

#include <uapi/elvis.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

static bool user_available(void)
{
        return access("/dev/net/tun", F_OK) == 0 || true;     /* loopback devices work everywhere */
}

static int user_open(const struct elvis_dp_config *cfg, void **ret)
{
        struct dp_user *dp = calloc(1, sizeof(*dp));
        int r;

        if (!dp)
                return -ENOMEM;
        dp_mutex_init(&dp->lock);
        snprintf(dp->run_dir, sizeof(dp->run_dir), "%s", cfg->run_dir);
        dp->pin = cfg->pin;
        /* until the daemon's policy arrives (set_params): the ABI header's defaults */
        atomic_store(&dp->params.budget_packets, ELVIS_BUDGET_PACKETS_DEFAULT);
        atomic_store(&dp->params.budget_bytes, ELVIS_BUDGET_BYTES_DEFAULT);
        atomic_store(&dp->params.poll_start_rate, ELVIS_POLL_START_RATE_DEFAULT);
        atomic_store(&dp->params.poll_stop_idle_ms, ELVIS_POLL_STOP_IDLE_MS_DEFAULT);
        dp_ledger_load(dp);
        r = dp_contain_start(dp);
        if (r < 0) {
                dp_ledger_fini(dp);
                free(dp);
                return r;
        }
        r = dp_ctl_start(dp);
        if (r < 0) {
                dp_contain_stop(dp);
                dp_ledger_fini(dp);
                free(dp);
                return r;
        }
        *ret = dp;
        return 0;
}

static struct dp_server *find_server(struct dp_user *dp, uint32_t id)
{
        for (struct dp_server *s = dp->servers; s; s = s->next)
                if (s->id == id)
                        return s;
        return NULL;
}

static struct dp_device *find_device(struct dp_user *dp, uint32_t vm, const char *id)
{
        for (struct dp_device *d = dp->devices; d; d = d->next)
                if (d->vm_id == vm && strcmp(d->id, id) == 0)
                        return d;
        return NULL;
}

static void qp_fini(struct dp_qp *qp)
{
        dp_qp_reset(qp);
        free(qp->q.rxbuf);
        qp->q.rxbuf = NULL;
        dp_mutex_destroy(&qp->lock);
}

void dp_device_get(struct dp_device *dev)
{
        atomic_fetch_add(&dev->refs, 1);
}

/* Nothing references the device any more: no list, no front end, no server slot. */
void dp_device_put(struct dp_device *dev)
{
        bool disks_clean;

        if (atomic_fetch_sub(&dev->refs, 1) != 1)
                return;
        dp_tap_close(dev);
        /* a disk that still holds requests may write guest memory by address: then the
         * mappings stay, reserved (blk.c) */
        disks_clean = dp_blk_close(dev);
        for (unsigned i = 0; i < ELVIS_MEM_MAX_REGIONS; i++)
                dp_blk_unmap(dev, &dev->maps[i], disks_clean ? DP_BLK_UNMAP : DP_BLK_RESERVE);
        free(dev->quarantine);          /* the list; what it lists stays reserved when a disk held on */
        if (dev->log_map.addr)
                munmap(dev->log_map.addr, dev->log_map.len);
        if (dev->inflight_map.addr)
                munmap(dev->inflight_map.addr, dev->inflight_map.len);
        if (dev->backend_req_fd >= 0)
                close(dev->backend_req_fd);
        for (unsigned i = 0; i < ELVIS_MAX_QUEUES; i++)
                qp_fini(&dev->qp[i]);
        free(dev);
}

static void retire(struct dp_user *dp, struct dp_server *s)
{
        dp_server_retire(s);
        s->next = dp->retired;
        dp->retired = s;
}

static void stop_vanilla(struct dp_user *dp, struct dp_device *dev)
{
        if (!dev->vanilla)
                return;
        for (unsigned i = 0; i < dev->nqp; i++)
                if (atomic_load(&dev->qp[i].server) == dev->vanilla)
                        dp_qp_set_server(&dev->qp[i], NULL);
        retire(dp, dev->vanilla);
        dev->vanilla = NULL;
}

/* dp->lock held: unlists the device and gives up its queues and its socket; the control
 * thread drops the front end, and the last reference frees it. Nothing here waits. */
static void device_remove(struct dp_user *dp, struct dp_device *dev) DP_REQUIRES(dp->lock)
{
        for (unsigned i = 0; i < dev->nqp; i++)
                dp_qp_set_server(&dev->qp[i], NULL);
        stop_vanilla(dp, dev);
        dp_device_close_listener(dp, dev);
        dev->removed = true;
        dev->close_next = dp->closing;
        dp->closing = dev;              /* the list's reference passes to the closing list */
        eventfd_write(dp->ctl_wake_fd, 1);
}

static void user_close(void *p)
{
        struct dp_user *dp = p;

        /* the control thread first: after it, nobody else touches connections */
        dp_ctl_stop(dp);
        dp_mutex_lock(&dp->lock);
        while (dp->devices) {
                struct dp_device *d = dp->devices;
                dp->devices = d->next;
                device_remove(dp, d);
        }
        while (dp->servers) {
                struct dp_server *s = dp->servers;
                dp->servers = s->next;
                retire(dp, s);
        }
        while (dp->closing) {
                struct dp_device *d = dp->closing;
                dp->closing = d->close_next;
                dp_device_disconnect(dp, d, "data plane stopped");
                dp_device_put(d);
        }
        dp_servers_reap(dp, 5000);
        dp_mutex_unlock(&dp->lock);
        if (dp->retired) {
                /* a thread is stuck for good: leave its memory rather than pull it away */
                log_error("user data plane: %s still running at exit", "server threads");
                return;
        }
        dp_contain_stop(dp);
        dp_ledger_fini(dp);
        dp_mutex_destroy(&dp->lock);
        free(dp);
}

static int user_health(void *p, char *detail, size_t len)
{
        struct dp_user *dp = p;
        unsigned ns = 0, nd = 0, nc = 0;

        dp_mutex_lock(&dp->lock);
        for (struct dp_server *s = dp->servers; s; s = s->next)
                ns++;
        for (struct dp_device *d = dp->devices; d; d = d->next) {
                nd++;
                nc += atomic_load(&d->connected);
        }
        dp_mutex_unlock(&dp->lock);
        snprintf(detail, len, "user-space vhost-user data plane: %u sidecores, %u devices, %u connected", ns, nd, nc);
        return 0;
}

static int user_sidecore_create(void *p, uint32_t id, int cpu)
{
        struct dp_user *dp = p;
        struct dp_server *s;
        int r;

        dp_mutex_lock(&dp->lock);
        dp_servers_reap(dp, 0);
        if (find_server(dp, id)) {
                dp_mutex_unlock(&dp->lock);
                return -EEXIST;
        }
        r = dp_server_start(dp, id, cpu, false, &s);
        if (r == 0) {
                s->next = dp->servers;
                dp->servers = s;
        }
        dp_mutex_unlock(&dp->lock);
        return r;
}

static int user_sidecore_destroy(void *p, uint32_t id)
{
        struct dp_user *dp = p;
        struct dp_server **pp, *s;
        int r = -ENOENT;

        dp_mutex_lock(&dp->lock);
        for (pp = &dp->servers; (s = *pp); pp = &s->next)
                if (s->id == id) {
                        dp_mutex_lock(&s->lock);
                        r = s->npending ? -EBUSY : 0;
                        dp_mutex_unlock(&s->lock);
                        if (r == 0) {
                                *pp = s->next;
                                retire(dp, s);
                        }
                        break;
                }
        dp_mutex_unlock(&dp->lock);
        return r;
}

static int start_vanilla(struct dp_user *dp, struct dp_device *dev)
{
        int r = dp_server_start(dp, 0, -1, true, &dev->vanilla);

        for (unsigned i = 0; r == 0 && i < dev->nqp; i++)
                r = dp_qp_set_server(&dev->qp[i], dev->vanilla);
        return r;
}

static int user_device_attach(void *p, const struct elvis_dp_device *cfg)
{
        struct dp_user *dp = p;
        struct dp_device *dev;
        int r;

        if (!cfg->socket_path || !cfg->socket_path[0] || cfg->queues < 1 || cfg->queues > ELVIS_MAX_QUEUES)
                return -EINVAL;
        if (!elvis_backend_serves(cfg->type, cfg->backend))
                return -EOPNOTSUPP;
        dev = calloc(1, sizeof(*dev));
        if (!dev)
                return -ENOMEM;
        dev->dp = dp;
        dev->vm_id = cfg->vm_id;
        snprintf(dev->id, sizeof(dev->id), "%s", cfg->device_id);
        snprintf(dev->vm_name, sizeof(dev->vm_name), "%s", cfg->vm_name);
        dev->type = cfg->type;
        dev->backend = cfg->backend;
        snprintf(dev->tap, sizeof(dev->tap), "%s", cfg->tap ? cfg->tap : "");
        dev->tap_adopt = cfg->tap_adopt;
        dev->peer_uid = cfg->vmm_uid >= 0 ? (uid_t)cfg->vmm_uid : (uid_t)-1;
        dev->peer_gid = cfg->vmm_gid >= 0 ? (gid_t)cfg->vmm_gid : (gid_t)-1;
        dev->nqp = cfg->queues;
        snprintf(dev->socket_path, sizeof(dev->socket_path), "%s", cfg->socket_path);
        atomic_store(&dev->weight, cfg->weight);
        atomic_store(&dev->exitless, cfg->exitless);
        atomic_store(&dev->refs, 1);    /* the device list's */
        dev->listen_fd = -1;
        dev->backend_req_fd = -1;
        for (unsigned i = 0; i < ELVIS_MAX_QUEUES; i++) {
                struct dp_qp *qp = &dev->qp[i];
                dp_qp_init(dev, qp, i);
                atomic_store(&qp->gen, 1);
                dp_mutex_init(&qp->lock);
        }
        dp_mutex_lock(&dp->lock);
        if (find_device(dp, cfg->vm_id, cfg->device_id)) {
                r = -EEXIST;
                goto fail;
        }
        if (dev->backend == ELVIS_BACKEND_TAP &&
            (r = cfg->tap_fds ? dp_tap_take(dev, cfg->tap_fds) : dp_tap_open(dev)) < 0)
                goto fail;
        if (dev->type == ELVIS_DEVICE_BLK && (r = dp_blk_open(dev, cfg)) < 0)
                goto fail;
        r = dp_device_listen(dp, dev);
        if (r < 0)
                goto fail;
        if (cfg->exitless == ELVIS_EXITLESS_NEVER && (r = start_vanilla(dp, dev)) < 0)
                goto fail;
        dev->next = dp->devices;
        dp->devices = dev;
        dp_mutex_unlock(&dp->lock);
        log_info("VM %u device %s: vhost-user%s socket %s (%s backend%s%s, %u %s%s)", dev->vm_id, dev->id,
                 dev->type == ELVIS_DEVICE_BLK ? "-blk" : "", dev->socket_path, elvis_backend_name(dev->backend),
                 dev->tap[0] ? " " : "", dev->tap, dev->nqp, dev->type == ELVIS_DEVICE_BLK ? "virtqueue" : "queue pair",
                 dev->nqp > 1 ? "s" : "");
        return 0;
fail:
        for (unsigned i = 0; i < dev->nqp; i++)
                dp_qp_set_server(&dev->qp[i], NULL);
        stop_vanilla(dp, dev);
        dp_device_close_listener(dp, dev);
        dp_mutex_unlock(&dp->lock);
        dp_device_put(dev);
        return r;
}

static int user_device_detach(void *p, uint32_t vm, const char *id)
{
        struct dp_user *dp = p;
        struct dp_device **pp, *d;
        int r = -ENOENT;

        dp_mutex_lock(&dp->lock);
        for (pp = &dp->devices; (d = *pp); pp = &d->next)
                if (d->vm_id == vm && strcmp(d->id, id) == 0) {
                        r = 0;
                        for (unsigned i = 0; i < d->nqp; i++) {
                                struct dp_server *s = atomic_load(&d->qp[i].server);
                                if (s && s != d->vanilla)
                                        r = -EBUSY;     /* still on a sidecore */
                        }
                        if (r == 0) {
                                *pp = d->next;
                                device_remove(dp, d);
                        }
                        break;
                }
        dp_mutex_unlock(&dp->lock);
        return r;
}

static int user_device_set_policy(void *p, uint32_t vm, const char *id, unsigned weight, enum elvis_exitless ex)
{
        struct dp_user *dp = p;
        struct dp_device *d;
        int r = 0;

        dp_mutex_lock(&dp->lock);
        d = find_device(dp, vm, id);
        if (!d) {
                dp_mutex_unlock(&dp->lock);
                return -ENOENT;
        }
        atomic_store(&d->weight, weight);
        if ((int)ex != atomic_load(&d->exitless)) {
                bool was_vanilla = atomic_load(&d->exitless) == ELVIS_EXITLESS_NEVER;
                atomic_store(&d->exitless, ex);
                if (ex == ELVIS_EXITLESS_NEVER && !was_vanilla)
                        r = start_vanilla(dp, d);
                else if (ex != ELVIS_EXITLESS_NEVER && was_vanilla)
                        stop_vanilla(dp, d);
        }
        dp_mutex_unlock(&dp->lock);
        return r;
}

static int user_queue_assign(void *p, uint32_t vm, const char *id, unsigned queue, uint32_t sidecore)
{
        struct dp_user *dp = p;
        struct dp_device *d;
        struct dp_server *s = NULL;
        int r;

        dp_mutex_lock(&dp->lock);
        d = find_device(dp, vm, id);
        if (!d || queue >= d->nqp || (sidecore && !(s = find_server(dp, sidecore)))) {
                dp_mutex_unlock(&dp->lock);
                return -ENOENT;
        }
        if (!sidecore && d->vanilla)
                s = d->vanilla;         /* a vanilla device keeps its own thread */
        r = dp_qp_set_server(&d->qp[queue], s);
        if (r == 0)
                atomic_store(&d->qp[queue].sidecore, sidecore);
        dp_mutex_unlock(&dp->lock);
        return r;
}

static int user_set_params(void *p, const struct elvis_dp_params *params)
{
        struct dp_user *dp = p;

        atomic_store(&dp->params.budget_packets, params->budget_packets);
        atomic_store(&dp->params.budget_bytes, params->budget_bytes);
        atomic_store(&dp->params.poll_start_rate, params->poll_start_rate);
        atomic_store(&dp->params.poll_stop_idle_ms, params->poll_stop_idle_ms);
        atomic_store(&dp->params.vanilla_busyloop_us, params->vanilla_busyloop_us);
        return 0;
}

static int user_queue_set_poll(void *p, uint32_t vm, const char *id, unsigned queue, unsigned start_rate,
                               unsigned stop_idle_ms)
{
        struct dp_user *dp = p;
        struct dp_device *d;

        dp_mutex_lock(&dp->lock);
        d = find_device(dp, vm, id);
        if (!d || queue >= d->nqp) {
                dp_mutex_unlock(&dp->lock);
                return -ENOENT;
        }
        atomic_store(&d->qp[queue].poll_start_rate, start_rate);
        atomic_store(&d->qp[queue].poll_stop_idle_ms, stop_idle_ms);
        dp_mutex_unlock(&dp->lock);
        return 0;
}

static void qp_stats(struct dp_qp *qp, struct elvis_dp_queue_stats *q)
{
        struct dp_device *d = qp->dev;
        const struct elvis_qstats *m = dp_qp_stats(qp);

        q->vm_id = d->vm_id;
        snprintf(q->device, sizeof(q->device), "%s", d->id);
        unsigned pub = atomic_load_explicit(&qp->pub, memory_order_relaxed);

        q->type = d->type;
        q->queue = qp->index;
        q->sidecore = atomic_load(&qp->sidecore);
        /* published by whoever changed the rings: reading never waits for a turn */
        if (pub & PUB_ERROR)
                q->state = ELVIS_QUEUE_ERROR;
        else if (atomic_load(&d->connected) && (pub & PUB_LIVE))
                q->state = ELVIS_QUEUE_READY;
        else
                q->state = ELVIS_QUEUE_DISCONNECTED;
        q->polling = pub & PUB_POLLING;
        q->rx_packets = STAT_GET(m->rx_packets);
        q->rx_bytes = STAT_GET(m->rx_bytes);
        q->tx_packets = STAT_GET(m->tx_packets);
        q->tx_bytes = STAT_GET(m->tx_bytes);
        q->kicks = STAT_GET(qp->st.kicks);
        q->interrupts = STAT_GET(qp->st.interrupts);
        q->polls = STAT_GET(m->polls);
        q->empty_polls = STAT_GET(m->empty_polls);
        q->busy_ns = STAT_GET(m->busy_ns);
        q->wait_ns = STAT_GET(m->wait_ns);
        q->wait_samples = STAT_GET(m->wait_samples);
        q->errors = STAT_GET(m->errors);
        q->drops = STAT_GET(m->drops);
        q->signals_deferred = STAT_GET(qp->st.signals_deferred);
}

static int user_stats_read(void *p, struct elvis_dp_stats *st)
{
        struct dp_user *dp = p;
        unsigned ns = 0, nq = 0;

        memset(st, 0, sizeof(*st));
        dp_mutex_lock(&dp->lock);
        for (struct dp_server *s = dp->servers; s; s = s->next)
                ns++;
        for (struct dp_device *d = dp->devices; d; d = d->next)
                nq += d->nqp;
        st->sidecores = calloc(ns ? ns : 1, sizeof(*st->sidecores));
        st->queues = calloc(nq ? nq : 1, sizeof(*st->queues));
        if (!st->sidecores || !st->queues) {
                dp_mutex_unlock(&dp->lock);
                elvis_dp_stats_fini(st);
                return -ENOMEM;
        }
        st->timestamp_ns = dp_now_ns();
        for (struct dp_server *s = dp->servers; s; s = s->next) {
                struct elvis_dp_sidecore_stats *o = &st->sidecores[st->nsidecores++];
                o->id = s->id;
                o->cpu = s->cpu;
                dp_mutex_lock(&s->lock);
                o->nqueues = s->npending;
                dp_mutex_unlock(&s->lock);
                o->sleeping = atomic_load(&s->sleeping);
                o->polls = STAT_GET(s->st.polls);
                o->empty_polls = STAT_GET(s->st.empty_polls);
                o->busy_ns = STAT_GET(s->st.busy_ns);
                o->idle_ns = STAT_GET(s->st.idle_ns);
                o->packets = STAT_GET(s->st.packets);
                o->wakeups = STAT_GET(s->st.wakeups);
                o->rounds_known = true;
                o->rounds = STAT_GET(s->st.rounds);
                o->empty_rounds = STAT_GET(s->st.empty_rounds);
                o->stolen_known = dp_server_run_delay(s, &o->stolen_ns) == 0;
        }
        for (struct dp_device *d = dp->devices; d; d = d->next)
                for (unsigned i = 0; i < d->nqp; i++) {
                        struct elvis_dp_queue_stats *q = &st->queues[st->nqueues++];
                        qp_stats(&d->qp[i], q);
                        for (unsigned k = 0; k < st->nsidecores; k++)
                                if (st->sidecores[k].id == q->sidecore && q->sidecore)
                                        st->sidecores[k].bytes += q->rx_bytes + q->tx_bytes;
                }
        dp_mutex_unlock(&dp->lock);
        return 0;
}

const struct elvis_dataplane_ops elvis_user_dataplane = {
        .kind = "user",
        .available = user_available,
        .open = user_open,
        .close = user_close,
        .health = user_health,
        .sidecore_create = user_sidecore_create,
        .sidecore_destroy = user_sidecore_destroy,
        .device_attach = user_device_attach,
        .device_detach = user_device_detach,
        .device_set_policy = user_device_set_policy,
        .queue_assign = user_queue_assign,
        .set_params = user_set_params,
        .queue_set_poll = user_queue_set_poll,
        .stats_read = user_stats_read,
};
