/* Server threads: sidecores (pinned, many queue pairs of many VMs, adaptive polling,
 * deficit round robin by VM weight) and vanilla threads (one per device, notification
 * driven, like stock vhost-net). Both run the same loop; a vanilla server never polls. */
#include "dp.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define KICK_WINDOW_NS 10000000ull      /* kick rate is measured over 10 ms windows */
#define EVENT_CHECK_ROUNDS 64           /* while busy, look at kicks every so many rounds */
#define EVENT_CHECK_NS 20000ull         /* while polling idle rings, every 20 us */
#define VANILLA_PACKETS 256             /* vhost-net's VHOST_NET_PKT_WEIGHT */
#define VANILLA_BYTES 0x80000           /* vhost-net's VHOST_NET_WEIGHT */

enum reg_kind { REG_TX_KICK, REG_RX_KICK, REG_TAP, REG_MAX };

struct dp_slot;

struct reg {
        struct dp_slot *slot;
        enum reg_kind kind;
        int fd;                 /* our dup, registered in the server's epoll */
        uint32_t events;
};

struct dp_slot {
        struct dp_qp *qp;
        struct elvis_drr_queue drr;     /* sidecores: weighted share */
        u32 ring_cap;                   /* largest quantum that never waits on the guest's refill */
        uint32_t reg_gen;
        struct reg regs[REG_MAX];
        int sig_fds[4];                 /* our duplicates of the call and error eventfds (SIG_* order) */
        int64_t deficit_packets, deficit_bytes;
        bool want_poll;
        bool live;                      /* a ring was live when last looked at under the lock */
};

static void reg_drop(struct dp_server *s, struct reg *g)
{
        if (g->fd >= 0) {
                epoll_ctl(s->epfd, EPOLL_CTL_DEL, g->fd, NULL);
                close(g->fd);
        }
        g->fd = -1;
        g->events = 0;
}

static void reg_set(struct dp_server *s, struct reg *g, int fd, uint32_t events)
{
        struct epoll_event ev = { .events = events, .data.ptr = g };

        reg_drop(s, g);
        if (fd < 0)
                return;
        g->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
        if (g->fd < 0)
                return;
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, g->fd, &ev) < 0) {
                close(g->fd);
                g->fd = -1;
                return;
        }
        g->events = events;
}

static void reg_events(struct dp_server *s, struct reg *g, uint32_t events)
{
        struct epoll_event ev = { .events = events, .data.ptr = g };

        if (g->fd < 0 || g->events == events)
                return;
        if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, g->fd, &ev) == 0)
                g->events = events;
}

static void sig_fd_set(int *slot, int fd)
{
        if (*slot >= 0)
                close(*slot);
        *slot = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
}

/* qp->lock held: follow the queue pair's current fds (dups keep numbers stable, and let
 * the server notify the guest after it released qp->lock). */
static void sync_fds(struct dp_server *s, struct dp_slot *sl)
{
        struct dp_qp *qp = sl->qp;
        uint32_t gen = atomic_load(&qp->gen);

        if (gen == sl->reg_gen)
                return;
        {
                u32 num = 0;
                if (qp->tx.live)
                        num = qp->tx.num;
                if (qp->rx.live && (!num || qp->rx.num < num))
                        num = qp->rx.num;
                /* half of what the rings hold (two descriptors a packet): while a turn
                 * takes one half, the guest refills the other, so a quantum that fits never
                 * finds the ring dry merely because the guest had no room */
                sl->ring_cap = num / 4 ? num / 4 : 1;
        }
        sig_fd_set(&sl->sig_fds[0], qp->rx.call_fd);
        sig_fd_set(&sl->sig_fds[1], qp->tx.call_fd);
        sig_fd_set(&sl->sig_fds[2], qp->rx.err_fd);
        sig_fd_set(&sl->sig_fds[3], qp->tx.err_fd);
        reg_set(s, &sl->regs[REG_TX_KICK], qp->tx.live ? qp->tx.kick_fd : -1, EPOLLIN);
        reg_set(s, &sl->regs[REG_RX_KICK], qp->rx.live ? qp->rx.kick_fd : -1, EPOLLIN);
        reg_set(s, &sl->regs[REG_TAP], qp->rx.live ? qp->tap_fd : -1, EPOLLIN);
        sl->reg_gen = gen;
        /* with reg_gen, or the round would skip a queue that became live meanwhile */
        sl->live = dp_qp_live(qp);
}

/* Frees a slot and drops the device reference it held: possibly the last one, which
 * frees the device (no lock may be held). */
static void slot_free(struct dp_server *s, struct dp_slot *sl)
{
        struct dp_device *dev = sl->qp->dev;

        for (int k = 0; k < REG_MAX; k++)
                reg_drop(s, &sl->regs[k]);
        for (int k = 0; k < 4; k++)
                if (sl->sig_fds[k] >= 0)
                        close(sl->sig_fds[k]);
        free(sl);
        dp_device_put(dev);
}

/* s->lock held: qp is on s->pending, so its device is still listed and alive. */
static struct dp_slot *slot_new(struct dp_qp *qp)
{
        struct dp_slot *sl = calloc(1, sizeof(*sl));

        if (!sl)
                return NULL;
        sl->qp = qp;
        for (int k = 0; k < REG_MAX; k++)
                sl->regs[k] = (struct reg){ .slot = sl, .kind = (enum reg_kind)k, .fd = -1 };
        for (int k = 0; k < 4; k++)
                sl->sig_fds[k] = -1;
        dp_device_get(qp->dev);
        return sl;
}

/* Server thread: adopt the list the daemon asked for. Slots it no longer wants are freed
 * after s->lock is released (freeing a device closes and unmaps). */
static void apply_pending(struct dp_server *s)
{
        struct dp_slot *keep[DP_MAX_SLOTS], *drop[DP_MAX_SLOTS];
        unsigned nkeep = 0, ndrop = 0;

        if (atomic_load(&s->pending_gen) == s->applied_gen)
                return;
        pthread_mutex_lock(&s->lock);
        for (unsigned i = 0; i < s->nslots; i++) {
                bool wanted = false;
                for (unsigned k = 0; k < s->npending && !wanted; k++)
                        wanted = s->pending[k] == s->slots[i]->qp;
                if (wanted)
                        keep[nkeep++] = s->slots[i];
                else
                        drop[ndrop++] = s->slots[i];
        }
        for (unsigned k = 0; k < s->npending; k++) {
                bool have = false;
                for (unsigned i = 0; i < nkeep && !have; i++)
                        have = keep[i]->qp == s->pending[k];
                if (!have && nkeep < DP_MAX_SLOTS) {
                        struct dp_slot *sl = slot_new(s->pending[k]);
                        if (sl)
                                keep[nkeep++] = sl;
                }
        }
        memcpy(s->slots, keep, nkeep * sizeof(keep[0]));
        s->nslots = nkeep;
        s->applied_gen = atomic_load(&s->pending_gen);
        pthread_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < ndrop; i++)
                slot_free(s, drop[i]);
}

static u32 weight_of(const struct dp_qp *qp)
{
        unsigned w = atomic_load_explicit(&qp->dev->weight, memory_order_relaxed);

        return w ? w : ELVIS_WEIGHT_DEFAULT;
}

static enum elvis_exitless effective(const struct dp_server *s, const struct dp_qp *qp)
{
        return s->vanilla ? ELVIS_EXITLESS_NEVER : (enum elvis_exitless)atomic_load(&qp->dev->exitless);
}

static void set_mode(struct dp_qp *qp, enum dp_qp_mode mode)
{
        if (qp->mode == mode)
                return;
        qp->mode = mode;
        if (mode == QP_POLL) {
                if (qp->tx.live)
                        elvis_vring_notify_disable(&qp->tx.vr);
                if (qp->rx.live)
                        elvis_vring_notify_disable(&qp->rx.vr);
        }
}

/* One turn on a slot; qp->lock held. Returns packets moved. */
static unsigned turn(struct dp_server *s, struct dp_slot *sl, uint64_t now)
{
        struct dp_qp *qp = sl->qp;
        struct dp_params *p = &s->dp->params;
        enum elvis_exitless ex = effective(s, qp);
        uint64_t t0, t1;
        unsigned n;

        if (atomic_exchange(&qp->vmm_fd_stuck, false)) {
                /* the VMM made one of its eventfds blocking: a broken or hostile VMM */
                if (qp->tx.live)
                        elvis_vring_fail(&qp->tx.vr, -EBADF, "an eventfd of the VMM blocked (it cleared O_NONBLOCK)");
                if (qp->rx.live)
                        elvis_vring_fail(&qp->rx.vr, -EBADF, "an eventfd of the VMM blocked (it cleared O_NONBLOCK)");
                if (qp->tx.live)
                        dp_qp_error(qp, &qp->tx);
                if (qp->rx.live)
                        dp_qp_error(qp, &qp->rx);
                return 0;
        }
        if (ex == ELVIS_EXITLESS_ALWAYS || sl->want_poll)
                set_mode(qp, QP_POLL);
        sl->want_poll = false;
        if (ex == ELVIS_EXITLESS_NEVER)
                set_mode(qp, QP_NOTIFY);
        /* while a turn runs the guest need not kick: the ring is being looked at */
        if (qp->tx.live && qp->tx.vr.notify_enabled)
                elvis_vring_notify_disable(&qp->tx.vr);
        if (qp->rx.live && qp->rx.vr.notify_enabled)
                elvis_vring_notify_disable(&qp->rx.vr);
        if (qp->mode == QP_POLL) {
                /* refresh the event index so a stale one is never crossed */
                if (qp->tx.live)
                        elvis_vring_notify_disable(&qp->tx.vr);
                if (qp->rx.live)
                        elvis_vring_notify_disable(&qp->rx.vr);
        }
        if (s->vanilla) {
                sl->deficit_packets = VANILLA_PACKETS;
                sl->deficit_bytes = VANILLA_BYTES;
        } else {
                u32 granted = elvis_drr_grant(&s->drr, &sl->drr, weight_of(qp), sl->ring_cap);
                u32 bp = atomic_load(&p->budget_packets);
                int64_t per = bp ? (int64_t)atomic_load(&p->budget_bytes) / bp : 1024;

                if (!granted)
                        return 0;       /* a small weight saving up: its turn comes */
                sl->deficit_packets = granted;
                sl->deficit_bytes = (int64_t)granted * (per > 0 ? per : 1);
                if (sl->deficit_bytes < DP_MAX_PACKET)
                        sl->deficit_bytes = DP_MAX_PACKET;      /* one frame of any size fits */
        }
        t0 = now;
        n = dp_qp_process(qp, &sl->deficit_packets, &sl->deficit_bytes);
        t1 = dp_now_ns();
        STAT_ADD(qp->st.polls, 1);
        STAT_ADD(s->st.polls, 1);
        if (n) {
                STAT_ADD(qp->st.busy_ns, t1 - t0);
                if (qp->last_poll_ns) {
                        STAT_ADD(qp->st.wait_ns, t0 - qp->last_poll_ns);
                        STAT_ADD(qp->st.wait_samples, 1);
                }
                qp->last_work_ns = t1;
                STAT_ADD(s->st.packets, n);
        } else {
                STAT_ADD(qp->st.empty_polls, 1);
                STAT_ADD(s->st.empty_polls, 1);
        }
        /* deficit round robin: a queue that ran dry forfeits what it did not use */
        if (!s->vanilla)
                elvis_drr_charge(&sl->drr, n, sl->deficit_packets > 0 && sl->deficit_bytes > 0);
        qp->last_poll_ns = t1;
        {
                unsigned stop = atomic_load_explicit(&qp->poll_stop_idle_ms, memory_order_relaxed);
                if (!stop)
                        stop = atomic_load(&p->poll_stop_idle_ms);
                if (ex == ELVIS_EXITLESS_AUTO && qp->mode == QP_POLL && t1 - qp->last_work_ns > (uint64_t)stop * 1000000ull)
                        set_mode(qp, QP_NOTIFY);
        }
        dp_qp_publish(qp);
        return n;
}

/* A turn with a SIGBUS guard (see contain.c): a guest memory file that shrank under us
 * stops this queue pair and nothing else. qp->lock held. Returns packets moved. */
static unsigned guarded_turn(struct dp_server *s, struct dp_slot *sl)
{
        struct dp_guard *g = &dp_guard_tls;
        unsigned n;

        g->dev = sl->qp->dev;
        if (sigsetjmp(g->jb, 0)) {
                dp_qp_memory_fault(sl->qp, g->addr);
                return 0;
        }
        g->armed = 1;
        n = turn(s, sl, dp_now_ns());
        g->armed = 0;
        return n;
}

static void flush_signals(struct dp_slot *sl)
{
        if (atomic_load_explicit(&sl->qp->signal, memory_order_relaxed))
                dp_qp_flush_signals(sl->qp, sl->sig_fds);
}

static void on_kick(struct dp_server *s, struct dp_slot *sl, int fd, uint64_t now)
{
        struct dp_qp *qp = sl->qp;
        unsigned rate = atomic_load_explicit(&qp->poll_start_rate, memory_order_relaxed);
        uint64_t v = 0;

        if (!rate)
                rate = atomic_load(&s->dp->params.poll_start_rate);
        if (dp_vmm_drain(fd, &v) == -ETIMEDOUT)
                atomic_store(&qp->vmm_fd_stuck, true);
        if (v == 0)
                return;
        STAT_ADD(qp->st.kicks, v);
        if (s->vanilla || atomic_load(&qp->dev->exitless) != ELVIS_EXITLESS_AUTO)
                return;
        if (now - qp->window_start_ns > KICK_WINDOW_NS) {
                qp->window_start_ns = now;
                qp->window_kicks = 0;
        }
        qp->window_kicks += v;
        if (qp->window_kicks * 100 >= rate)     /* kicks per 10 ms window vs kicks/s */
                sl->want_poll = true;
}

static void handle_events(struct dp_server *s, struct epoll_event *ev, int n, uint64_t now)
{
        for (int i = 0; i < n; i++) {
                struct reg *g = ev[i].data.ptr;
                uint64_t v;

                if (!g) {
                        eventfd_read(s->wake_fd, &v);
                        continue;
                }
                if (g->kind == REG_TAP) {
                        /* data waits in the tap: the next round reads it */
                        continue;
                }
                on_kick(s, g->slot, g->fd, now);
        }
}

/* Notifications back on for one slot; true if work showed up meanwhile. qp->lock held,
 * guest memory touched under a SIGBUS guard. */
static bool enable_notify(struct dp_qp *qp)
{
        bool pending = false;

        /* loopback transmit waits for receive buffers, not for itself */
        if (qp->tx.live && elvis_vring_notify_enable(&qp->tx.vr) && !(qp->tap_fd < 0 && qp->rx_blocked))
                pending = true;
        if (qp->rx.live && elvis_vring_notify_enable(&qp->rx.vr) && qp->rx_blocked)
                pending = true;
        return pending;
}

static bool guarded_enable_notify(struct dp_qp *qp)
{
        struct dp_guard *g = &dp_guard_tls;
        bool pending;

        g->dev = qp->dev;
        if (sigsetjmp(g->jb, 0)) {
                dp_qp_memory_fault(qp, g->addr);
                return true;
        }
        g->armed = 1;
        pending = enable_notify(qp);
        g->armed = 0;
        return pending;
}

static bool prepare_slot(struct dp_server *s, struct dp_slot *sl)
{
        struct dp_qp *qp = sl->qp;
        bool pending = guarded_enable_notify(qp);

        dp_qp_publish(qp);
        /* tap data without guest buffers would wake us forever: wait for an RX kick */
        reg_events(s, &sl->regs[REG_TAP], qp->rx_blocked || !qp->rx.live ? 0 : EPOLLIN);
        return pending;
}

/* Before sleeping: every queue back to notifications. False if work showed up. */
static bool prepare_sleep(struct dp_server *s)
{
        bool pending = false;

        for (unsigned i = 0; i < s->nslots; i++) {
                struct dp_slot *sl = s->slots[i];
                struct dp_qp *qp = sl->qp;

                if (pthread_mutex_trylock(&qp->lock))
                        return false;
                sync_fds(s, sl);
                if (!sl->live && !dp_qp_live(qp)) {
                        pthread_mutex_unlock(&qp->lock);
                        flush_signals(sl);
                        continue;
                }
                pending |= prepare_slot(s, sl);
                pthread_mutex_unlock(&qp->lock);
                flush_signals(sl);
        }
        return !pending;
}

static void *server_main(void *arg)
{
        struct dp_server *s = arg;
        struct epoll_event ev[64];
        unsigned rounds = 0;
        uint64_t last_events = 0;

        atomic_store(&s->tid, gettid());
        dp_watch_enter(s->dp, &s->watch, s->vanilla ? "vanilla thread" : "sidecore");
        if (s->cpu >= 0 && s->dp->pin) {
                cpu_set_t set;
                CPU_ZERO(&set);
                CPU_SET(s->cpu, &set);
                if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
                        log_warning("sidecore %u: cannot pin to CPU %d", s->id, s->cpu);
        }
        while (!atomic_load(&s->stop)) {
                uint64_t start = dp_now_ns(), end;
                unsigned progress = 0;
                bool all_notify = true, tx_blocked = false;

                apply_pending(s);
                /* this round's unit: every busy queue's quantum must fit its rings */
                elvis_drr_round_begin(&s->drr, atomic_load(&s->dp->params.budget_packets));
                for (unsigned k = 0; k < s->nslots && !s->vanilla; k++)
                        if (s->slots[k]->live && s->slots[k]->drr.busy)
                                elvis_drr_round_fit(&s->drr, weight_of(s->slots[k]->qp), s->slots[k]->ring_cap);
                for (unsigned k = 0; k < s->nslots; k++) {
                        struct dp_slot *sl = s->slots[(s->rr + k) % s->nslots];
                        struct dp_qp *qp = sl->qp;

                        /* a queue pair without a live ring becomes live only with a generation
                         * bump: until then skip it without taking its lock, so many idle or
                         * unconnected devices cost the busy ones next to nothing */
                        if (!sl->live && atomic_load(&qp->gen) == sl->reg_gen)
                                continue;
                        if (pthread_mutex_trylock(&qp->lock)) {
                                all_notify = false;     /* the control thread is reconfiguring it */
                                continue;
                        }
                        sync_fds(s, sl);
                        sl->live = dp_qp_live(qp);
                        if (sl->live) {
                                progress += guarded_turn(s, sl);
                                if (qp->mode == QP_POLL)
                                        all_notify = false;
                                tx_blocked |= qp->tx_blocked;
                        }
                        pthread_mutex_unlock(&qp->lock);
                        flush_signals(sl);
                        if (s->vanilla && sl->deficit_packets <= 0)
                                sched_yield();  /* the budget ran out: let the other device threads run */
                }
                s->rr++;
                end = dp_now_ns();
                if (progress) {
                        STAT_ADD(s->st.busy_ns, end - start);
                        if (++rounds % EVENT_CHECK_ROUNDS == 0) {
                                int n = epoll_wait(s->epfd, ev, 64, 0);
                                handle_events(s, ev, n, end);
                        }
                        continue;
                }
                STAT_ADD(s->st.idle_ns, end - start);
                if (!all_notify || !s->nslots) {
                        int n;
                        /* polling: a syscall per empty round would slow the next pickup down;
                         * look at kicks and the control eventfd every so often instead */
                        if (s->nslots && end - last_events < EVENT_CHECK_NS)
                                continue;
                        last_events = end;
                        if (!s->nslots) {
                                /* nothing to serve: sleep until the daemon changes the list */
                                atomic_store(&s->sleeping, true);
                                n = epoll_wait(s->epfd, ev, 64, -1);
                                atomic_store(&s->sleeping, false);
                        } else {
                                n = epoll_wait(s->epfd, ev, 64, 0);
                        }
                        handle_events(s, ev, n, dp_now_ns());
                        STAT_ADD(s->st.idle_ns, dp_now_ns() - end);
                        continue;
                }
                if (!prepare_sleep(s))
                        continue;
                atomic_store(&s->sleeping, true);
                {
                        int n = epoll_wait(s->epfd, ev, 64, tx_blocked ? 1 : -1);
                        uint64_t woke = dp_now_ns();
                        atomic_store(&s->sleeping, false);
                        STAT_ADD(s->st.wakeups, 1);
                        handle_events(s, ev, n, woke);
                        STAT_ADD(s->st.idle_ns, woke - end);
                }
        }
        for (unsigned i = 0; i < s->nslots; i++)
                slot_free(s, s->slots[i]);
        s->nslots = 0;
        dp_watch_leave(s->dp, &s->watch);
        atomic_store(&s->exited, true);
        return NULL;
}

int dp_server_run_delay(struct dp_server *s, uint64_t *ret_ns)
{
        pid_t tid = atomic_load(&s->tid);
        unsigned long long run_ns, delay_ns;
        char path[64];
        FILE *f;
        int n;

        if (!tid)
                return -EAGAIN;
        /* "cpu time, run-queue wait, timeslices" in ns (Documentation/scheduler/sched-stats) */
        snprintf(path, sizeof(path), "/proc/self/task/%d/schedstat", (int)tid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        n = fscanf(f, "%llu %llu", &run_ns, &delay_ns);
        fclose(f);
        if (n != 2)
                return -EIO;
        *ret_ns = delay_ns;
        return 0;
}

int dp_server_start(struct dp_user *dp, uint32_t id, int cpu, bool vanilla, struct dp_server **ret)
{
        struct dp_server *s = calloc(1, sizeof(*s));
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
        int r;

        if (!s)
                return -ENOMEM;
        s->dp = dp;
        s->id = id;
        s->cpu = cpu;
        s->vanilla = vanilla;
        pthread_mutex_init(&s->lock, NULL);
        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (s->epfd < 0 || s->wake_fd < 0 || epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wake_fd, &ev) < 0) {
                r = -errno;
                goto fail;
        }
        r = -pthread_create(&s->thread, NULL, server_main, s);
        if (r < 0)
                goto fail;
        {
                char name[16];
                snprintf(name, sizeof(name), vanilla ? "elvis-vanilla" : "elvis-sc%u", id);
                pthread_setname_np(s->thread, name);
        }
        *ret = s;
        return 0;
fail:
        if (s->epfd >= 0)
                close(s->epfd);
        if (s->wake_fd >= 0)
                close(s->wake_fd);
        free(s);
        return r;
}

static void wake(struct dp_server *s)
{
        eventfd_write(s->wake_fd, 1);
}

void dp_server_retire(struct dp_server *s)
{
        s->retire_epoch = atomic_load(&s->dp->ctl_epoch);
        atomic_store(&s->stop, true);
        wake(s);
}

/* The control thread wakes servers through qp->server without dp->lock. A retired server
 * serves no queue pair, so only an event the control thread was already handling when it
 * was retired can still hold its pointer: free it once that event is over. */
static bool ctl_done_with(const struct dp_server *s)
{
        uint64_t now = atomic_load(&s->dp->ctl_epoch);

        return !(s->retire_epoch & 1) || now != s->retire_epoch;
}

static void server_free(struct dp_server *s)
{
        close(s->epfd);
        close(s->wake_fd);
        pthread_mutex_destroy(&s->lock);
        free(s);
}

void dp_servers_reap(struct dp_user *dp, int wait_ms)
{
        struct dp_server **pp = &dp->retired, *s;

        while ((s = *pp)) {
                bool done = atomic_load(&s->exited) && ctl_done_with(s);
                for (int waited = 0; !done && waited < wait_ms; waited++) {
                        struct timespec ts = { 0, 1000000 };
                        nanosleep(&ts, NULL);
                        done = atomic_load(&s->exited) && ctl_done_with(s);
                }
                if (!done) {
                        if (wait_ms)
                                log_error("server thread %u (%s) did not stop within %d ms; leaving it", s->id,
                                          s->vanilla ? "vanilla" : "sidecore", wait_ms);
                        pp = &s->next;
                        continue;
                }
                pthread_join(s->thread, NULL);
                *pp = s->next;
                server_free(s);
        }
}

/* s->lock taken here: the server thread holds it only to copy the list. */
static int list_change(struct dp_server *s, struct dp_qp *qp, bool add)
{
        pthread_mutex_lock(&s->lock);
        if (add) {
                if (s->npending == DP_MAX_SLOTS) {
                        pthread_mutex_unlock(&s->lock);
                        return -ENOSPC;
                }
                s->pending[s->npending++] = qp;
        } else {
                for (unsigned i = 0; i < s->npending; i++)
                        if (s->pending[i] == qp) {
                                s->pending[i] = s->pending[--s->npending];
                                break;
                        }
        }
        atomic_fetch_add(&s->pending_gen, 1);
        pthread_mutex_unlock(&s->lock);
        wake(s);
        return 0;
}

int dp_qp_set_server(struct dp_qp *qp, struct dp_server *s)
{
        struct dp_server *old = atomic_load(&qp->server);
        int r;

        if (old == s)
                return 0;
        if (s) {
                r = list_change(s, qp, true);
                if (r < 0)
                        return r;
        }
        atomic_store(&qp->server, s);
        if (old)
                list_change(old, qp, false);
        return 0;
}

void dp_qp_kick_server(struct dp_qp *qp)
{
        struct dp_server *s = atomic_load(&qp->server);

        if (s)
                wake(s);
}
