/* The manager's channels to elvis-dataplane and its observer thread: see remote_obs.h. */
#include "remote_obs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static uint64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int dpp_connect(const char *path, unsigned timeout_ms)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
        int fd;

        if (strlen(path) >= sizeof(a.sun_path))
                return -ENAMETOOLONG;
        memcpy(a.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        return fd;
}

int dpp_chan_call(struct dpp_chan *c, uint16_t type, const void *payload, size_t len, const int *fds, unsigned nfds,
                  const struct elvis_dpp_result **ret_res, const void **ret_body, size_t *ret_len,
                  unsigned *ret_version, char *why, size_t wlen)
{
        int rfds[ELVIS_DPP_FDS_MAX], r;
        uint32_t id = ++c->next_id;
        size_t n = elvis_dpp_encode(c->out, type, id, payload, len);
        unsigned nr;
        ssize_t got;

        if (c->sock < 0) {
                snprintf(why, wlen, "not connected");
                return -ENOTCONN;
        }
        if ((r = elvis_dpp_send(c->sock, c->out, n, fds, nfds)) < 0) {
                snprintf(why, wlen, "sending: %s", strerror(-r));
                return -ENOTCONN;
        }
        got = elvis_dpp_recv(c->sock, c->in, sizeof(c->in), rfds, ELVIS_DPP_FDS_MAX, &nr);
        for (unsigned i = 0; i < nr; i++)
                close(rfds[i]);
        if (got <= 0) {
                if (got == 0)
                        snprintf(why, wlen, "it closed the connection");
                else if (got == -EAGAIN)
                        snprintf(why, wlen, "no answer in time");
                else
                        snprintf(why, wlen, "%s", strerror((int)-got));
                return -ENOTCONN;
        }
        r = elvis_dpp_check_reply(c->in, (size_t)got, type, id, ret_res, ret_body, ret_len, why, wlen);
        if (r == -EPROTO && ret_version)
                *ret_version = ((const struct elvis_dpp_hdr *)c->in)->version;
        if (r < 0)
                return r == -EPROTO ? -EPROTO : -ENOTCONN;
        return 0;
}

int dpp_chan_pages(struct dpp_chan *c, uint16_t type, size_t item, void **ret, unsigned *ret_n, char *why,
                   size_t wlen)
{
        unsigned char *arr = NULL;
        unsigned n = 0, total = 0;
        int r;

        do {
                struct elvis_dpp_page pg = { .start = n };
                const struct elvis_dpp_result *res;
                const void *body;
                size_t blen;

                r = dpp_chan_call(c, type, &pg, sizeof(pg), NULL, 0, &res, &body, &blen, NULL, why, wlen);
                if (r == 0 && res->error < 0) {
                        snprintf(why, wlen, "%s", res->reason);
                        r = res->error;
                }
                if (r < 0)
                        goto fail;
                if (blen != (size_t)res->count * item || (n == 0 && res->total > 1u << 20) ||
                    (n > 0 && res->total != total) || res->count > res->total - n ||
                    (res->count == 0 && n < res->total)) {
                        snprintf(why, wlen, "a list page of request %u does not add up", type);
                        r = -EBADMSG;
                        goto fail;
                }
                if (n == 0) {
                        total = res->total;
                        arr = malloc(total ? (size_t)total * item : 1);
                        if (!arr) {
                                snprintf(why, wlen, "out of memory");
                                r = -ENOMEM;
                                goto fail;
                        }
                }
                memcpy(arr + (size_t)n * item, body, blen);
                n += res->count;
        } while (n < total);
        *ret = arr;
        *ret_n = n;
        return 0;
fail:
        free(arr);
        return r;
}

int dpp_stats_build(struct elvis_dp_stats *st, const struct elvis_dpp_sidecore_stats *sc, unsigned nsc,
                    const struct elvis_dpp_queue_stats *qs, unsigned nq, uint64_t now_ns)
{
        memset(st, 0, sizeof(*st));
        st->sidecores = calloc(nsc ? nsc : 1, sizeof(*st->sidecores));
        st->queues = calloc(nq ? nq : 1, sizeof(*st->queues));
        if (!st->sidecores || !st->queues) {
                elvis_dp_stats_fini(st);
                return -ENOMEM;
        }
        st->timestamp_ns = nsc ? sc[0].timestamp_ns : nq ? qs[0].timestamp_ns : now_ns;
        for (unsigned i = 0; i < nsc; i++)
                elvis_dpp_sidecore_stats_to(&st->sidecores[st->nsidecores++], &sc[i]);
        for (unsigned i = 0; i < nq; i++)
                elvis_dpp_queue_stats_to(&st->queues[st->nqueues++], &qs[i]);
        return 0;
}

/* ---- the observer ---- */

struct dpp_observer {
        char path[ELVIS_PATH_MAX + 32];
        pthread_t thread;
        pthread_mutex_t lock;
        pthread_cond_t cond;            /* wakes the thread (a fresh sample wanted, stop) */
        pthread_cond_t answered;        /* a sample came in */
        bool stop;
        uint64_t want, got;             /* generations of fresh samples asked for and delivered */
        /* the last answer */
        bool have;
        int health_r;
        char health[ELVIS_DPP_DETAIL_MAX];
        struct elvis_dpp_sidecore_stats *sc;
        unsigned nsc;
        struct elvis_dpp_queue_stats *qs;
        unsigned nq;
        uint64_t asking_since;          /* a question outstanding since; 0: none */
        char why[160];                  /* why the last question failed; "" when it did not */
        struct dpp_chan ch;             /* the thread's own */
};

/* HELLO in this version; false (why set) for another version or no answer. */
static bool greet(struct dpp_observer *o, char *why, size_t wlen)
{
        struct elvis_dpp_hello hello = { .version = ELVIS_DPP_VERSION, .pid = (uint32_t)getpid() };
        const struct elvis_dpp_result *res;
        const void *body;
        size_t blen;
        unsigned version = 0;
        int r = dpp_chan_call(&o->ch, ELVIS_DPP_HELLO, &hello, sizeof(hello), NULL, 0, &res, &body, &blen, &version,
                              why, wlen);

        if (r == -EPROTO && version && version != ELVIS_DPP_VERSION)
                snprintf(why, wlen, "it speaks protocol version %u", version);
        return r == 0 && res->error == 0;
}

/* One round: health, then both counter lists. */
static int ask(struct dpp_observer *o, char *why, size_t wlen)
{
        const struct elvis_dpp_result *res;
        const void *body;
        size_t blen;
        char detail[ELVIS_DPP_DETAIL_MAX] = "";
        void *sc = NULL, *qs = NULL;
        unsigned nsc = 0, nq = 0;
        int r, hr;

        r = dpp_chan_call(&o->ch, ELVIS_DPP_HEALTH, NULL, 0, NULL, 0, &res, &body, &blen, NULL, why, wlen);
        if (r < 0)
                return r;
        hr = res->error;
        if (blen == sizeof(detail))
                memcpy(detail, body, sizeof(detail) - 1);
        if ((r = dpp_chan_pages(&o->ch, ELVIS_DPP_STATS_SIDECORES, sizeof(struct elvis_dpp_sidecore_stats), &sc, &nsc,
                                why, wlen)) < 0)
                return r;
        if ((r = dpp_chan_pages(&o->ch, ELVIS_DPP_STATS_QUEUES, sizeof(struct elvis_dpp_queue_stats), &qs, &nq, why,
                                wlen)) < 0) {
                free(sc);
                return r;
        }
        pthread_mutex_lock(&o->lock);
        free(o->sc);
        free(o->qs);
        o->sc = sc;
        o->nsc = nsc;
        o->qs = qs;
        o->nq = nq;
        o->health_r = hr;
        memcpy(o->health, detail, sizeof(detail));
        o->have = true;
        pthread_mutex_unlock(&o->lock);
        return 0;
}

static void *observer_main(void *arg)
{
        struct dpp_observer *o = arg;
        char why[160];

        pthread_mutex_lock(&o->lock);
        while (!o->stop) {
                uint64_t gen = o->want;
                struct timespec until;
                int r;

                if (!o->asking_since)
                        o->asking_since = mono_ns();
                pthread_mutex_unlock(&o->lock);
                why[0] = '\0';
                if (o->ch.sock < 0) {
                        r = dpp_connect(o->path, OBS_TIMEOUT_MS);
                        if (r < 0)
                                snprintf(why, sizeof(why), "cannot connect: %s", strerror(-r));
                        o->ch.sock = r < 0 ? -1 : r;
                        if (o->ch.sock >= 0 && !greet(o, why, sizeof(why))) {
                                close(o->ch.sock);
                                o->ch.sock = -1;
                        }
                }
                r = o->ch.sock >= 0 ? ask(o, why, sizeof(why)) : -ENOTCONN;
                if (r < 0 && o->ch.sock >= 0) {
                        /* a late answer must not be taken for the next question's */
                        close(o->ch.sock);
                        o->ch.sock = -1;
                }
                pthread_mutex_lock(&o->lock);
                snprintf(o->why, sizeof(o->why), "%s", r < 0 ? why : "");
                if (r == 0) {
                        o->asking_since = 0;
                        if (o->got < gen)
                                o->got = gen;
                        pthread_cond_broadcast(&o->answered);
                }
                /* after a failure, the period passes before the next try whoever waits */
                if (o->stop || (r == 0 && o->want > o->got))
                        continue;
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_nsec += OBS_PERIOD_MS * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&o->cond, &o->lock, &until);
        }
        pthread_mutex_unlock(&o->lock);
        return NULL;
}

int dpp_observer_start(const char *path, struct dpp_observer **ret)
{
        struct dpp_observer *o = calloc(1, sizeof(*o));
        pthread_condattr_t ca;
        int r;

        if (!o)
                return -ENOMEM;
        snprintf(o->path, sizeof(o->path), "%s", path);
        o->ch.sock = -1;
        pthread_mutex_init(&o->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&o->cond, &ca);
        pthread_cond_init(&o->answered, &ca);
        pthread_condattr_destroy(&ca);
        if ((r = pthread_create(&o->thread, NULL, observer_main, o)) != 0) {
                pthread_cond_destroy(&o->cond);
                pthread_cond_destroy(&o->answered);
                pthread_mutex_destroy(&o->lock);
                free(o);
                return -r;
        }
        pthread_setname_np(o->thread, "elvis-dp-obs");
        *ret = o;
        return 0;
}

void dpp_observer_stop(struct dpp_observer *o)
{
        if (!o)
                return;
        pthread_mutex_lock(&o->lock);
        o->stop = true;
        pthread_cond_broadcast(&o->cond);
        pthread_mutex_unlock(&o->lock);
        pthread_join(o->thread, NULL);
        if (o->ch.sock >= 0)
                close(o->ch.sock);
        free(o->sc);
        free(o->qs);
        pthread_cond_destroy(&o->cond);
        pthread_cond_destroy(&o->answered);
        pthread_mutex_destroy(&o->lock);
        free(o);
}

uint64_t dpp_observer_silent_ns(struct dpp_observer *o, char *why, size_t wlen)
{
        uint64_t since, now = mono_ns();

        pthread_mutex_lock(&o->lock);
        since = o->asking_since;
        if (why)
                snprintf(why, wlen, "%s", o->why);
        pthread_mutex_unlock(&o->lock);
        return since && now > since ? now - since : 0;
}

int dpp_observer_health(struct dpp_observer *o, char *detail, size_t len)
{
        int r;

        pthread_mutex_lock(&o->lock);
        r = o->have ? o->health_r : -EAGAIN;
        if (o->have)
                snprintf(detail, len, "%s", o->health);
        pthread_mutex_unlock(&o->lock);
        return r;
}

int dpp_observer_stats(struct dpp_observer *o, struct elvis_dp_stats *st)
{
        uint64_t gen, now = mono_ns();
        struct timespec until;
        int r = 0;

        pthread_mutex_lock(&o->lock);
        /* a silent data plane: what it said last, at once */
        if (!(o->asking_since && now - o->asking_since > (uint64_t)OBS_FRESH_WAIT_MS * 1000000u)) {
                gen = ++o->want;
                pthread_cond_broadcast(&o->cond);
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_nsec += OBS_FRESH_WAIT_MS * 1000000L;
                until.tv_sec += until.tv_nsec / 1000000000L;
                until.tv_nsec %= 1000000000L;
                while (o->got < gen && r == 0)
                        r = pthread_cond_timedwait(&o->answered, &o->lock, &until);
        }
        if (!o->have)
                r = -ETIMEDOUT;
        else
                r = dpp_stats_build(st, o->sc, o->nsc, o->qs, o->nq, now);
        pthread_mutex_unlock(&o->lock);
        return r;
}
