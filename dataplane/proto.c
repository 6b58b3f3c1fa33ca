/* The data-plane protocol's codec: checking, encoding, one-datagram I/O with fds, and
 * the conversions between wire structs and the data-plane interface. No state. */
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS ELVIS_DPP_FDS_MAX

static int fail(int r, char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(int r, char *why, size_t len, const char *fmt, ...)
{
        va_list ap;

        if (why && len) {
                va_start(ap, fmt);
                vsnprintf(why, len, fmt, ap);
                va_end(ap);
        }
        return r;
}

bool elvis_dpp_is_observation(uint16_t type)
{
        return type >= ELVIS_DPP_HELLO && type <= ELVIS_DPP_STATS_QUEUES;
}

size_t elvis_dpp_request_size(uint16_t type)
{
        switch (type) {
        case ELVIS_DPP_HELLO: return sizeof(struct elvis_dpp_hello);
        case ELVIS_DPP_HEALTH: return 0;
        case ELVIS_DPP_LIST_SIDECORES:
        case ELVIS_DPP_LIST_DEVICES:
        case ELVIS_DPP_STATS_SIDECORES:
        case ELVIS_DPP_STATS_QUEUES: return sizeof(struct elvis_dpp_page);
        case ELVIS_DPP_SIDECORE_CREATE:
        case ELVIS_DPP_SIDECORE_DESTROY: return sizeof(struct elvis_dpp_sidecore);
        case ELVIS_DPP_DEVICE_ATTACH: return sizeof(struct elvis_dpp_device);
        case ELVIS_DPP_DEVICE_DETACH:
        case ELVIS_DPP_QUEUE_ASSIGN: return sizeof(struct elvis_dpp_queue_ref);
        case ELVIS_DPP_DEVICE_SET_POLICY: return sizeof(struct elvis_dpp_policy);
        case ELVIS_DPP_SET_PARAMS: return sizeof(struct elvis_dpp_params);
        case ELVIS_DPP_QUEUE_SET_POLL: return sizeof(struct elvis_dpp_queue_poll);
        default: return 0;      /* HEALTH and STOP carry nothing */
        }
}

static bool known(uint16_t type)
{
        return type == ELVIS_DPP_HEALTH || type == ELVIS_DPP_STOP || elvis_dpp_request_size(type) > 0;
}

/* A fixed-size string field: terminated inside its array; non-empty when required. */
static bool str_ok(const char *s, size_t cap, bool required)
{
        size_t n = strnlen(s, cap);
        return n < cap && (!required || n > 0);
}

static int check_payload(uint16_t type, const void *p, char *why, size_t len)
{
        switch (type) {
        case ELVIS_DPP_DEVICE_ATTACH: {
                const struct elvis_dpp_device *d = p;
                if (!str_ok(d->vm_name, sizeof(d->vm_name), false) || !str_ok(d->device_id, sizeof(d->device_id), true) ||
                    !str_ok(d->tap, sizeof(d->tap), false) || !str_ok(d->socket_path, sizeof(d->socket_path), true) ||
                    !str_ok(d->path, sizeof(d->path), false))
                        return fail(-EBADMSG, why, len, "device: a name or path is empty or not terminated");
                if (d->type >= __ELVIS_DEVICE_TYPE_MAX || d->backend >= __ELVIS_BACKEND_MAX ||
                    d->exitless >= __ELVIS_EXITLESS_MAX)
                        return fail(-EINVAL, why, len, "device: type %u, backend %u or exitless %u out of range", d->type,
                                    d->backend, d->exitless);
                if (!elvis_backend_serves(d->type, d->backend))
                        return fail(-EINVAL, why, len, "device: backend %s cannot serve a %s device",
                                    elvis_backend_name(d->backend), elvis_device_type_name(d->type));
                if (d->queues < 1 || d->queues > ELVIS_MAX_QUEUES)
                        return fail(-EINVAL, why, len, "device: %u queues (1..%u)", d->queues, ELVIS_MAX_QUEUES);
                if (d->weight < ELVIS_WEIGHT_MIN || d->weight > ELVIS_WEIGHT_MAX)
                        return fail(-EINVAL, why, len, "device: weight %u out of range", d->weight);
                if (d->backend == ELVIS_BACKEND_TAP && !elvis_ifname_valid(d->tap))
                        return fail(-EINVAL, why, len, "device: a tap device needs a valid interface name");
                if (d->flags & ~(ELVIS_DPP_DEV_TAP_ADOPT | ELVIS_DPP_DEV_READONLY))
                        return fail(-EINVAL, why, len, "device: unknown flags %#x", d->flags);
                if (d->vmm_uid < -1 || d->vmm_gid < -1 || d->vmm_uid > UINT32_MAX || d->vmm_gid > UINT32_MAX)
                        return fail(-EINVAL, why, len, "device: VMM uid/gid out of range");
                if (d->type == ELVIS_DEVICE_NET) {
                        if (d->flags & ELVIS_DPP_DEV_READONLY || d->path[0] || d->size_bytes || d->image_dev ||
                            d->image_ino)
                                return fail(-EINVAL, why, len, "device: a net device has no image, size or readonly");
                        return 0;
                }
                if (d->tap[0] || d->flags & ELVIS_DPP_DEV_TAP_ADOPT)
                        return fail(-EINVAL, why, len, "device: a blk device has no tap");
                if (d->backend == ELVIS_BACKEND_FILE && (!d->path[0] || d->size_bytes))
                        return fail(-EINVAL, why, len, "device: a blk file device needs a path and no size");
                if (d->backend == ELVIS_BACKEND_NULL &&
                    (d->path[0] || d->image_dev || d->image_ino || !d->size_bytes || d->size_bytes % 512))
                        return fail(-EINVAL, why, len,
                                    "device: a blk null device needs a size in whole sectors and no image");
                return 0;
        }
        case ELVIS_DPP_DEVICE_DETACH:
        case ELVIS_DPP_QUEUE_ASSIGN: {
                const struct elvis_dpp_queue_ref *q = p;
                if (!str_ok(q->device_id, sizeof(q->device_id), true))
                        return fail(-EBADMSG, why, len, "device id empty or not terminated");
                if (type == ELVIS_DPP_QUEUE_ASSIGN && q->queue >= ELVIS_MAX_QUEUES)
                        return fail(-EINVAL, why, len, "queue %u out of range", q->queue);
                return 0;
        }
        case ELVIS_DPP_DEVICE_SET_POLICY: {
                const struct elvis_dpp_policy *q = p;
                if (!str_ok(q->device_id, sizeof(q->device_id), true))
                        return fail(-EBADMSG, why, len, "device id empty or not terminated");
                if (q->weight < ELVIS_WEIGHT_MIN || q->weight > ELVIS_WEIGHT_MAX || q->exitless >= __ELVIS_EXITLESS_MAX)
                        return fail(-EINVAL, why, len, "weight %u or exitless %u out of range", q->weight, q->exitless);
                return 0;
        }
        case ELVIS_DPP_QUEUE_SET_POLL: {
                const struct elvis_dpp_queue_poll *q = p;
                if (!str_ok(q->device_id, sizeof(q->device_id), true))
                        return fail(-EBADMSG, why, len, "device id empty or not terminated");
                if (q->queue >= ELVIS_MAX_QUEUES)
                        return fail(-EINVAL, why, len, "queue %u out of range", q->queue);
                return 0;
        }
        case ELVIS_DPP_SIDECORE_CREATE: {
                const struct elvis_dpp_sidecore *s = p;
                if (s->id == ELVIS_SIDECORE_NONE || s->cpu < -1)
                        return fail(-EINVAL, why, len, "sidecore %u on CPU %d", s->id, s->cpu);
                return 0;
        }
        case ELVIS_DPP_HELLO: {
                const struct elvis_dpp_hello *h = p;
                if (!str_ok(h->kind, sizeof(h->kind), false))
                        return fail(-EBADMSG, why, len, "hello: kind not terminated");
                return 0;
        }
        default:
                return 0;
        }
}

int elvis_dpp_check_request(const void *buf, size_t len, unsigned nfds, struct elvis_dpp_hdr *ret_hdr, char *why,
                            size_t whylen)
{
        const void *p = (const char *)buf + sizeof(struct elvis_dpp_hdr);
        struct elvis_dpp_hdr h;
        size_t want;
        int r;

        if (len < sizeof(h))
                return fail(-EBADMSG, why, whylen, "truncated: %zu bytes, a header has %zu", len, sizeof(h));
        memcpy(&h, buf, sizeof(h));
        *ret_hdr = h;
        if (h.magic != ELVIS_DPP_MAGIC)
                return fail(-EBADMSG, why, whylen, "bad magic %#x", h.magic);
        if (h.version != ELVIS_DPP_VERSION)
                return fail(-EPROTO, why, whylen, "protocol version %u, this data plane speaks %u", h.version,
                            ELVIS_DPP_VERSION);
        if (len > ELVIS_DPP_MSG_MAX)
                return fail(-EMSGSIZE, why, whylen, "%zu bytes, at most %u", len, ELVIS_DPP_MSG_MAX);
        if (h.type & ELVIS_DPP_REPLY || !known(h.type))
                return fail(-EOPNOTSUPP, why, whylen, "unknown request type %u", h.type);
        if (h.length != len - sizeof(h))
                return fail(-EBADMSG, why, whylen, "header says %u payload bytes, datagram has %zu", h.length,
                            len - sizeof(h));
        want = elvis_dpp_request_size(h.type);
        if (h.length != want)
                return fail(-EBADMSG, why, whylen, "type %u carries %zu bytes, got %u", h.type, want, h.length);
        r = check_payload(h.type, p, why, whylen);
        if (r < 0)
                return r;
        want = h.type == ELVIS_DPP_DEVICE_ATTACH ? elvis_dpp_device_nfds(p) : 0;
        if (nfds != want)
                return fail(-EBADF, why, whylen,
                            "type %u carries %zu file descriptor(s) (a tap's queues or a blk image), got %u", h.type,
                            want, nfds);
        return 0;
}

int elvis_dpp_check_reply(const void *buf, size_t len, uint16_t type, uint32_t id,
                          const struct elvis_dpp_result **ret_res, const void **ret_body, size_t *ret_body_len,
                          char *why, size_t whylen)
{
        struct elvis_dpp_hdr h;
        const struct elvis_dpp_result *res;

        if (len < sizeof(h) + sizeof(*res))
                return fail(-EBADMSG, why, whylen, "reply truncated: %zu bytes", len);
        memcpy(&h, buf, sizeof(h));
        if (h.magic == ELVIS_DPP_MAGIC && h.version != ELVIS_DPP_VERSION)
                return fail(-EPROTO, why, whylen, "the data plane speaks protocol version %u, not %u", h.version,
                            ELVIS_DPP_VERSION);
        if (h.magic != ELVIS_DPP_MAGIC || h.length != len - sizeof(h))
                return fail(-EBADMSG, why, whylen, "reply with a bad header");
        if (h.id != id || h.type != (type | ELVIS_DPP_REPLY))
                return fail(-EBADMSG, why, whylen, "reply %u to type %u, expected %u to %u", h.id, h.type, id, type);
        res = (const void *)((const char *)buf + sizeof(h));
        if (strnlen(res->reason, sizeof(res->reason)) == sizeof(res->reason))
                return fail(-EBADMSG, why, whylen, "reply reason not terminated");
        *ret_res = res;
        *ret_body = (const char *)buf + sizeof(h) + sizeof(*res);
        *ret_body_len = len - sizeof(h) - sizeof(*res);
        return 0;
}

size_t elvis_dpp_encode(void *buf, uint16_t type, uint32_t id, const void *payload, size_t len)
{
        struct elvis_dpp_hdr h = {
                .magic = ELVIS_DPP_MAGIC, .version = ELVIS_DPP_VERSION, .type = type, .id = id, .length = (uint32_t)len,
        };

        if (len > ELVIS_DPP_MSG_MAX - sizeof(h))
                return 0;
        memcpy(buf, &h, sizeof(h));
        if (payload && len)
                memcpy((char *)buf + sizeof(h), payload, len);
        return sizeof(h) + len;
}

int elvis_dpp_send(int sock, const void *msg, size_t len, const int *fds, unsigned nfds)
{
        struct iovec iov = { .iov_base = (void *)msg, .iov_len = len };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
        } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        ssize_t n;

        if (nfds > MAX_FDS)
                return -EINVAL;
        if (nfds) {
                memset(&ctl, 0, sizeof(ctl));
                mh.msg_control = ctl.buf;
                mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
                struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
                memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
        }
        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        return (size_t)n == len ? 0 : -EIO;
}

ssize_t elvis_dpp_recv(int sock, void *buf, size_t cap, int *ret_fds, unsigned max, unsigned *ret_nfds)
{
        struct iovec iov = { .iov_base = buf, .iov_len = cap };
        union {
                struct cmsghdr h;
                char buf[CMSG_SPACE(MAX_FDS * sizeof(int))];
        } ctl;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
        unsigned nfds = 0;
        ssize_t n;

        *ret_nfds = 0;
        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        /* every fd that came along is ours to close, whatever else is wrong */
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (nfds < max)
                                ret_fds[nfds] = fd;
                        else
                                close(fd);
                        nfds++;
                }
        }
        *ret_nfds = nfds < max ? nfds : max;
        if (mh.msg_flags & MSG_TRUNC)
                return -EMSGSIZE;
        /* more fds than fit: the kernel dropped (and released) the rest */
        if (mh.msg_flags & MSG_CTRUNC || nfds > max)
                return -EBADF;
        return n;
}

unsigned elvis_dpp_device_nfds(const struct elvis_dpp_device *w)
{
        if (w->type == ELVIS_DEVICE_NET && w->backend == ELVIS_BACKEND_TAP)
                return w->queues;
        return w->type == ELVIS_DEVICE_BLK && w->backend == ELVIS_BACKEND_FILE ? 1 : 0;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
        snprintf(dst, cap, "%s", src ? src : "");
}

void elvis_dpp_device_from(struct elvis_dpp_device *w, const struct elvis_dp_device *d)
{
        memset(w, 0, sizeof(*w));
        w->vm_id = d->vm_id;
        w->backend = d->backend;
        w->queues = d->queues;
        w->weight = d->weight;
        w->exitless = d->exitless;
        w->flags = (d->tap_adopt ? ELVIS_DPP_DEV_TAP_ADOPT : 0) | (d->readonly ? ELVIS_DPP_DEV_READONLY : 0);
        w->vmm_uid = d->vmm_uid;
        w->vmm_gid = d->vmm_gid;
        w->type = d->type;
        w->size_bytes = d->size_bytes;
        copy_str(w->vm_name, sizeof(w->vm_name), d->vm_name);
        copy_str(w->device_id, sizeof(w->device_id), d->device_id);
        copy_str(w->tap, sizeof(w->tap), d->tap);
        copy_str(w->socket_path, sizeof(w->socket_path), d->socket_path);
        copy_str(w->path, sizeof(w->path), d->path);
}

void elvis_dpp_device_to(struct elvis_dp_device *d, const struct elvis_dpp_device *w)
{
        *d = (struct elvis_dp_device){
                .vm_id = w->vm_id,
                .vm_name = w->vm_name,
                .device_id = w->device_id,
                .type = (enum elvis_device_type)w->type,
                .backend = (enum elvis_backend)w->backend,
                .tap = w->tap,
                .tap_adopt = w->flags & ELVIS_DPP_DEV_TAP_ADOPT,
                .path = w->path[0] ? w->path : NULL,
                .readonly = w->flags & ELVIS_DPP_DEV_READONLY,
                .size_bytes = w->size_bytes,
                .queues = w->queues,
                .socket_path = w->socket_path,
                .weight = w->weight,
                .exitless = (enum elvis_exitless)w->exitless,
                .vmm_uid = w->vmm_uid,
                .vmm_gid = w->vmm_gid,
        };
}

void elvis_dpp_sidecore_stats_from(struct elvis_dpp_sidecore_stats *w, const struct elvis_dp_sidecore_stats *s,
                                   uint64_t ts)
{
        *w = (struct elvis_dpp_sidecore_stats){
                .id = s->id, .cpu = s->cpu, .nqueues = s->nqueues,
                .flags = (s->sleeping ? ELVIS_DPP_SC_SLEEPING : 0) | (s->stolen_known ? ELVIS_DPP_SC_STOLEN_KNOWN : 0) |
                         (s->rounds_known ? ELVIS_DPP_SC_ROUNDS_KNOWN : 0),
                .polls = s->polls, .empty_polls = s->empty_polls, .busy_ns = s->busy_ns, .idle_ns = s->idle_ns,
                .packets = s->packets, .bytes = s->bytes, .wakeups = s->wakeups, .stolen_ns = s->stolen_ns,
                .timestamp_ns = ts, .rounds = s->rounds, .empty_rounds = s->empty_rounds,
        };
}

void elvis_dpp_sidecore_stats_to(struct elvis_dp_sidecore_stats *s, const struct elvis_dpp_sidecore_stats *w)
{
        *s = (struct elvis_dp_sidecore_stats){
                .id = w->id, .cpu = w->cpu, .nqueues = w->nqueues, .sleeping = w->flags & ELVIS_DPP_SC_SLEEPING,
                .polls = w->polls, .empty_polls = w->empty_polls, .busy_ns = w->busy_ns, .idle_ns = w->idle_ns,
                .packets = w->packets, .bytes = w->bytes, .wakeups = w->wakeups,
                .stolen_known = w->flags & ELVIS_DPP_SC_STOLEN_KNOWN, .stolen_ns = w->stolen_ns,
                .rounds_known = w->flags & ELVIS_DPP_SC_ROUNDS_KNOWN, .rounds = w->rounds,
                .empty_rounds = w->empty_rounds,
        };
}

void elvis_dpp_queue_stats_from(struct elvis_dpp_queue_stats *w, const struct elvis_dp_queue_stats *q, uint64_t ts)
{
        *w = (struct elvis_dpp_queue_stats){
                .vm_id = q->vm_id, .queue = q->queue, .sidecore = q->sidecore, .state = q->state,
                .flags = q->polling ? ELVIS_DPP_Q_POLLING : 0, .type = q->type,
                .rx_packets = q->rx_packets, .rx_bytes = q->rx_bytes, .tx_packets = q->tx_packets,
                .tx_bytes = q->tx_bytes, .kicks = q->kicks, .interrupts = q->interrupts, .polls = q->polls,
                .empty_polls = q->empty_polls, .busy_ns = q->busy_ns, .wait_ns = q->wait_ns,
                .wait_samples = q->wait_samples, .errors = q->errors, .signals_deferred = q->signals_deferred,
                .timestamp_ns = ts, .drops = q->drops,
        };
        copy_str(w->device_id, sizeof(w->device_id), q->device);
}

void elvis_dpp_queue_stats_to(struct elvis_dp_queue_stats *q, const struct elvis_dpp_queue_stats *w)
{
        *q = (struct elvis_dp_queue_stats){
                .vm_id = w->vm_id, .queue = w->queue, .sidecore = w->sidecore,
                .state = w->state < __ELVIS_DP_QUEUE_STATE_MAX ? (enum elvis_dp_queue_state)w->state :
                                                                 ELVIS_QUEUE_ERROR,
                .polling = w->flags & ELVIS_DPP_Q_POLLING,
                .type = w->type < __ELVIS_DEVICE_TYPE_MAX ? (enum elvis_device_type)w->type : ELVIS_DEVICE_NET,
                .rx_packets = w->rx_packets, .rx_bytes = w->rx_bytes, .tx_packets = w->tx_packets,
                .tx_bytes = w->tx_bytes, .kicks = w->kicks, .interrupts = w->interrupts, .polls = w->polls,
                .empty_polls = w->empty_polls, .busy_ns = w->busy_ns, .wait_ns = w->wait_ns,
                .wait_samples = w->wait_samples, .errors = w->errors, .signals_deferred = w->signals_deferred,
                .drops = w->drops,
        };
        snprintf(q->device, sizeof(q->device), "%.*s", (int)sizeof(w->device_id) - 1, w->device_id);
}
