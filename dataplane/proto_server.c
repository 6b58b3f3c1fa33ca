/* Serves the data-plane protocol over a data plane's operation table (see proto.h and
 * docs/dataplane-protocol.md). Observation requests read the record or the counters
 * and never call an operation that changes the data plane. */
#include "proto_server.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


struct elvis_dpp_server {
        const struct elvis_dataplane_ops *ops;
        void *dp;
        uint64_t started_ns;
        struct elvis_dpp_sidecore sc[ELVIS_MAX_SIDECORES];
        unsigned nsc;
        struct elvis_dpp_device_item *dev;
        unsigned ndev, capdev;
        /* the counters snapshot STATS pages are cut from, and whose connection took it */
        struct elvis_dp_stats snap;
        bool have_snap;
        int snap_conn;
        bool stop;                      /* a STOP was answered */
        _Alignas(8) unsigned char in[ELVIS_DPP_MSG_MAX];
        _Alignas(8) unsigned char out[ELVIS_DPP_MSG_MAX];
        _Alignas(8) unsigned char body[ELVIS_DPP_MSG_MAX];  /* a page being filled */
};

static uint64_t now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int elvis_dpp_server_new(const struct elvis_dataplane_ops *ops, void *dp, struct elvis_dpp_server **ret)
{
        struct elvis_dpp_server *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        s->ops = ops;
        s->dp = dp;
        s->started_ns = now_ns();
        s->snap_conn = -1;
        *ret = s;
        return 0;
}

void elvis_dpp_server_free(struct elvis_dpp_server *s)
{
        if (!s)
                return;
        if (s->have_snap)
                elvis_dp_stats_fini(&s->snap);
        free(s->dev);
        free(s);
}

void elvis_dpp_server_forget(struct elvis_dpp_server *s, int conn)
{
        if (s->have_snap && s->snap_conn == conn) {
                elvis_dp_stats_fini(&s->snap);
                s->have_snap = false;
                s->snap_conn = -1;
        }
}

static struct elvis_dpp_device_item *find_dev(struct elvis_dpp_server *s, uint32_t vm, const char *id)
{
        for (unsigned i = 0; i < s->ndev; i++)
                if (s->dev[i].dev.vm_id == vm && strcmp(s->dev[i].dev.device_id, id) == 0)
                        return &s->dev[i];
        return NULL;
}

static int find_sc(struct elvis_dpp_server *s, uint32_t id)
{
        for (unsigned i = 0; i < s->nsc; i++)
                if (s->sc[i].id == id)
                        return (int)i;
        return -1;
}

/* The reply: result, then body (count items of a page, or a fixed struct). */
static int reply(struct elvis_dpp_server *s, int conn, const struct elvis_dpp_hdr *req, int error, const char *reason,
                 uint32_t total, uint32_t count, const void *body, size_t len)
{
        struct elvis_dpp_result res = { .error = error, .total = total, .count = count };
        size_t hl = sizeof(struct elvis_dpp_hdr);

        snprintf(res.reason, sizeof(res.reason), "%s", reason ? reason : "");
        elvis_dpp_encode(s->out, (uint16_t)(req->type | ELVIS_DPP_REPLY), req->id, NULL, sizeof(res) + len);
        memcpy(s->out + hl, &res, sizeof(res));
        if (len)
                memcpy(s->out + hl + sizeof(res), body, len);
        return elvis_dpp_send(conn, s->out, hl + sizeof(res) + len, NULL, 0);
}

static int reply_err(struct elvis_dpp_server *s, int conn, const struct elvis_dpp_hdr *req, int error)
{
        return reply(s, conn, req, error, strerror(-error), 0, 0, NULL, 0);
}

static int take_snapshot(struct elvis_dpp_server *s, int conn)
{
        int r;

        if (s->have_snap)
                elvis_dp_stats_fini(&s->snap);
        s->have_snap = false;
        r = s->ops->stats_read(s->dp, &s->snap);
        if (r < 0)
                return r;
        s->have_snap = true;
        s->snap_conn = conn;
        return 0;
}

/* Paged replies: items [start, start + what fits) of an array of n. */
static int page(struct elvis_dpp_server *s, int conn, const struct elvis_dpp_hdr *req, uint32_t start, unsigned n,
                size_t item, size_t fit, void (*fill)(struct elvis_dpp_server *, unsigned, void *))
{
        unsigned count = 0;

        if (start > n)
                return reply(s, conn, req, -EINVAL, "page starts past the end", n, 0, NULL, 0);
        for (unsigned i = start; i < n && count < fit; i++, count++)
                fill(s, i, s->body + (size_t)count * item);
        return reply(s, conn, req, 0, NULL, n, count, s->body, (size_t)count * item);
}

static void fill_sc(struct elvis_dpp_server *s, unsigned i, void *o) { memcpy(o, &s->sc[i], sizeof(s->sc[i])); }
static void fill_dev(struct elvis_dpp_server *s, unsigned i, void *o) { memcpy(o, &s->dev[i], sizeof(s->dev[i])); }
static void fill_scstat(struct elvis_dpp_server *s, unsigned i, void *o)
{
        elvis_dpp_sidecore_stats_from(o, &s->snap.sidecores[i], s->snap.timestamp_ns);
}
static void fill_qstat(struct elvis_dpp_server *s, unsigned i, void *o)
{
        elvis_dpp_queue_stats_from(o, &s->snap.queues[i], s->snap.timestamp_ns);
}

/* HELLO, in every version: who we are, with error (-EPROTO) when the asker speaks another. */
static int hello(struct elvis_dpp_server *s, int conn, const struct elvis_dpp_hdr *h, int error, const char *why)
{
        struct elvis_dpp_hello o = { .version = ELVIS_DPP_VERSION, .pid = (uint32_t)getpid(),
                                     .started_ns = s->started_ns };

        snprintf(o.kind, sizeof(o.kind), "%s", s->ops->kind);
        return reply(s, conn, h, error, why, 0, 0, &o, sizeof(o));
}

static int observe(struct elvis_dpp_server *s, int conn, const struct elvis_dpp_hdr *h, const void *p)
{
        const struct elvis_dpp_page *pg = p;
        int r;

        switch (h->type) {
        case ELVIS_DPP_HELLO:
                return hello(s, conn, h, 0, NULL);
        case ELVIS_DPP_HEALTH: {
                char detail[ELVIS_DPP_DETAIL_MAX] = "";
                r = s->ops->health ? s->ops->health(s->dp, detail, sizeof(detail)) : 0;
                return reply(s, conn, h, r < 0 ? r : 0, r < 0 ? detail : NULL, 0, 0, detail, sizeof(detail));
        }
        case ELVIS_DPP_LIST_SIDECORES:
                return page(s, conn, h, pg->start, s->nsc, sizeof(struct elvis_dpp_sidecore),
                            ELVIS_DPP_PAGE_ITEMS(struct elvis_dpp_sidecore), fill_sc);
        case ELVIS_DPP_LIST_DEVICES:
                return page(s, conn, h, pg->start, s->ndev, sizeof(struct elvis_dpp_device_item),
                            ELVIS_DPP_PAGE_ITEMS(struct elvis_dpp_device_item), fill_dev);
        case ELVIS_DPP_STATS_SIDECORES:
        case ELVIS_DPP_STATS_QUEUES:
                /* the first page of sidecores starts a read; the others are cut from it */
                if ((h->type == ELVIS_DPP_STATS_SIDECORES && pg->start == 0) || !s->have_snap || s->snap_conn != conn)
                        if ((r = take_snapshot(s, conn)) < 0)
                                return reply_err(s, conn, h, r);
                if (h->type == ELVIS_DPP_STATS_SIDECORES)
                        return page(s, conn, h, pg->start, s->snap.nsidecores, sizeof(struct elvis_dpp_sidecore_stats),
                                    ELVIS_DPP_PAGE_ITEMS(struct elvis_dpp_sidecore_stats), fill_scstat);
                return page(s, conn, h, pg->start, s->snap.nqueues, sizeof(struct elvis_dpp_queue_stats),
                            ELVIS_DPP_PAGE_ITEMS(struct elvis_dpp_queue_stats), fill_qstat);
        }
        return reply_err(s, conn, h, -EOPNOTSUPP);
}

static int add_dev(struct elvis_dpp_server *s, const struct elvis_dpp_device *w)
{
        struct elvis_dpp_device_item *it;

        if (s->ndev == s->capdev) {
                unsigned cap = s->capdev ? s->capdev * 2 : 16;
                void *n = realloc(s->dev, (size_t)cap * sizeof(*s->dev));
                if (!n)
                        return -ENOMEM;
                s->dev = n;
                s->capdev = cap;
        }
        it = &s->dev[s->ndev++];
        memset(it, 0, sizeof(*it));
        it->dev = *w;
        return 0;
}

/* A tap's queues come from the manager, which opened them: each must be a queue of the
 * interface the device names, or the request is refused with the reason. */
static int check_tap_fds(const struct elvis_dpp_device *w, const int *fds, unsigned nfds, char *why, size_t len)
{
        const char *what;
        int r;

        for (unsigned i = 0; i < nfds; i++)
                if ((r = elvis_tap_check_fd(fds[i], w->tap, w->queues, &what)) < 0) {
                        snprintf(why, len, "queue %u of tap '%s': %s", i, w->tap, what);
                        return r;
                }
        return 0;
}

/* A blk file device's image comes from the manager, which opened it under its image-dir
 * rules: a regular file or block device, open read-only exactly when the device is, and
 * the very file the request names (st_dev and st_ino). */
static int check_image_fd(const struct elvis_dpp_device *w, int fd, char *why, size_t len)
{
        bool ro = w->flags & ELVIS_DPP_DEV_READONLY;
        struct stat st;
        int fl;

        if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
                snprintf(why, len, "image of device %s: not a regular file or block device", w->device_id);
                return -EINVAL;
        }
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) != (ro ? O_RDONLY : O_RDWR)) {
                snprintf(why, len, "image of device %s: not open %s", w->device_id,
                         ro ? "read-only" : "for reading and writing");
                return -EINVAL;
        }
        if ((uint64_t)st.st_dev != w->image_dev || (uint64_t)st.st_ino != w->image_ino) {
                snprintf(why, len, "image of device %s: the fd is another file than the request names",
                         w->device_id);
                return -EINVAL;
        }
        return 0;
}

/* State changes: the operation, then the record when it succeeded. */
static int change(struct elvis_dpp_server *s, const struct elvis_dpp_hdr *h, const void *p, const int *fds,
                  unsigned nfds, char *why, size_t whylen)
{
        const struct elvis_dataplane_ops *ops = s->ops;
        struct elvis_dpp_device_item *it;
        int r, i;

        switch (h->type) {
        case ELVIS_DPP_SIDECORE_CREATE: {
                const struct elvis_dpp_sidecore *c = p;
                if (find_sc(s, c->id) >= 0)
                        return -EEXIST;
                if (s->nsc == ELVIS_MAX_SIDECORES)
                        return -ENOSPC;
                r = ops->sidecore_create(s->dp, c->id, c->cpu);
                if (r == 0)
                        s->sc[s->nsc++] = *c;
                return r;
        }
        case ELVIS_DPP_SIDECORE_DESTROY: {
                const struct elvis_dpp_sidecore *c = p;
                r = ops->sidecore_destroy(s->dp, c->id);
                if (r == 0 && (i = find_sc(s, c->id)) >= 0)
                        s->sc[i] = s->sc[--s->nsc];
                return r;
        }
        case ELVIS_DPP_DEVICE_ATTACH: {
                const struct elvis_dpp_device *w = p;
                struct elvis_dp_device d;
                if (find_dev(s, w->vm_id, w->device_id))
                        return -EEXIST;
                if (w->type == ELVIS_DEVICE_BLK) {
                        if (nfds && (r = check_image_fd(w, fds[0], why, whylen)) < 0)
                                return r;
                } else if ((r = check_tap_fds(w, fds, nfds, why, whylen)) < 0) {
                        return r;
                }
                elvis_dpp_device_to(&d, w);
                if (w->type == ELVIS_DEVICE_BLK)
                        d.image_fd = nfds ? &fds[0] : NULL;
                else
                        d.tap_fds = nfds ? fds : NULL;
                r = ops->device_attach(s->dp, &d);
                if (r == 0 && (r = add_dev(s, w)) < 0)
                        ops->device_detach(s->dp, w->vm_id, w->device_id);
                return r;
        }
        case ELVIS_DPP_DEVICE_DETACH: {
                const struct elvis_dpp_queue_ref *q = p;
                r = ops->device_detach(s->dp, q->vm_id, q->device_id);
                if (r == 0 && (it = find_dev(s, q->vm_id, q->device_id)))
                        *it = s->dev[--s->ndev];
                return r;
        }
        case ELVIS_DPP_DEVICE_SET_POLICY: {
                const struct elvis_dpp_policy *q = p;
                r = ops->device_set_policy(s->dp, q->vm_id, q->device_id, q->weight, (enum elvis_exitless)q->exitless);
                if (r == 0 && (it = find_dev(s, q->vm_id, q->device_id))) {
                        it->dev.weight = q->weight;
                        it->dev.exitless = q->exitless;
                }
                return r;
        }
        case ELVIS_DPP_QUEUE_ASSIGN: {
                const struct elvis_dpp_queue_ref *q = p;
                r = ops->queue_assign(s->dp, q->vm_id, q->device_id, q->queue, q->sidecore);
                if (r == 0 && (it = find_dev(s, q->vm_id, q->device_id)))
                        it->sidecore[q->queue] = q->sidecore;
                return r;
        }
        case ELVIS_DPP_SET_PARAMS: {
                const struct elvis_dpp_params *w = p;
                struct elvis_dp_params prm = { .budget_packets = w->budget_packets, .budget_bytes = w->budget_bytes,
                                               .poll_start_rate = w->poll_start_rate,
                                               .poll_stop_idle_ms = w->poll_stop_idle_ms,
                                               .vanilla_busyloop_us = w->vanilla_busyloop_us };
                return ops->set_params(s->dp, &prm);
        }
        case ELVIS_DPP_QUEUE_SET_POLL: {
                const struct elvis_dpp_queue_poll *q = p;
                if (!ops->queue_set_poll)
                        return -EOPNOTSUPP;
                r = ops->queue_set_poll(s->dp, q->vm_id, q->device_id, q->queue, q->start_rate, q->stop_idle_ms);
                if (r == 0 && (it = find_dev(s, q->vm_id, q->device_id))) {
                        it->start_rate[q->queue] = q->start_rate;
                        it->stop_idle_ms[q->queue] = q->stop_idle_ms;
                }
                return r;
        }
        }
        return -EOPNOTSUPP;
}

int elvis_dpp_server_handle(struct elvis_dpp_server *s, int conn)
{
        struct elvis_dpp_hdr h = { 0 };
        int fds[ELVIS_DPP_FDS_MAX];
        unsigned nfds = 0;
        char why[ELVIS_DPP_REASON_MAX] = "";
        ssize_t n;
        int r;

        memset(s->in, 0, sizeof(h));
        n = elvis_dpp_recv(conn, s->in, sizeof(s->in), fds, ELVIS_DPP_FDS_MAX, &nfds);
        if (n == 0) {
                r = -ECONNRESET;
                goto out;
        }
        if (n < 0 && n != -EMSGSIZE && n != -EBADF) {
                r = (int)n;
                goto out;
        }
        if (n == -EMSGSIZE) {
                snprintf(why, sizeof(why), "datagram longer than %u bytes", ELVIS_DPP_MSG_MAX);
                r = -EMSGSIZE;
                /* the header, if any, is in the part that was received */
                memcpy(&h, s->in, sizeof(h));
        } else if (n == -EBADF) {
                memcpy(&h, s->in, sizeof(h));
                snprintf(why, sizeof(why), "more than %u file descriptors", ELVIS_DPP_FDS_MAX);
                r = -EBADF;
        } else {
                r = elvis_dpp_check_request(s->in, (size_t)n, nfds, &h, why, sizeof(why));
        }
        h.type &= (uint16_t)~ELVIS_DPP_REPLY;
        /* the two requests every version understands: a manager of another version
         * learns who we are, and may stop us to start its own */
        if (r == -EPROTO && h.type == ELVIS_DPP_HELLO) {
                r = hello(s, conn, &h, -EPROTO, why);
                goto out;
        }
        if ((r == 0 || r == -EPROTO) && h.type == ELVIS_DPP_STOP) {
                s->stop = true;
                r = reply(s, conn, &h, 0, NULL, 0, 0, NULL, 0);
                goto out;
        }
        if (r == 0 && elvis_dpp_is_observation(h.type)) {
                r = observe(s, conn, &h, s->in + sizeof(h));
                goto out;
        }
        if (r == 0)
                r = change(s, &h, s->in + sizeof(h), fds, nfds, why, sizeof(why));
        /* the data plane keeps duplicates of what it uses: once the reply is out, the
         * sender may count on every fd it passed being closed here */
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
        nfds = 0;
        if (r < 0)
                return reply(s, conn, &h, r, why[0] ? why : strerror(-r), 0, 0, NULL, 0);
        return reply(s, conn, &h, 0, NULL, 0, 0, NULL, 0);
out:
        for (unsigned i = 0; i < nfds; i++)
                close(fds[i]);
        return r;
}

bool elvis_dpp_server_stopping(const struct elvis_dpp_server *s)
{
        return s->stop;
}
