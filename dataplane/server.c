/* Server threads: sidecores (pinned, many queue pairs of many VMs, adaptive polling,
 * deficit round robin by VM weight) and vanilla threads (one per device, notification
 * driven, like stock vhost-net). Both run the same loop; a vanilla server polls only for
 * vanilla_busyloop_us after its rings went empty, as vhost-net's busyloop_timeout. */
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
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define EVENT_CHECK_ROUNDS 64           /* while busy, look at kicks every so many rounds */
#define EVENT_CHECK_NS 20000ull         /* while polling idle rings, every 20 us */
#define TAP_CHECK_ROUNDS 4              /* while busy, with taps of quiet queues watched instead of read */
#define SPARSE_EXTRA_LOOKS 4            /* an interactive queue's looks between backlogged turns, a round */
#define VANILLA_PACKETS 256             /* vhost-net's VHOST_NET_PKT_WEIGHT */
#define VANILLA_BYTES 0x80000           /* vhost-net's VHOST_NET_WEIGHT */

enum reg_kind { REG_TX_KICK, REG_RX_KICK, REG_TAP, REG_DISK, REG_MAX };

struct dp_slot;

struct reg {
        struct dp_slot *slot;
        enum reg_kind kind;
        int fd;                 /* our dup, registered in the server's epoll */
        uint32_t events;
};

struct dp_slot {
        struct dp_qp *qp;
        uint32_t reg_gen;
        struct reg regs[REG_MAX];
        int sig_fds[4];                 /* our duplicates of the call and error eventfds (SIG_* order) */
        bool live;
        /* the pair's DRR inputs, copied under qp->lock (busy and weight at each turn, ring
         * capacity at each generation): the round reads them without every pair's lock */
        bool busy;
        u32 weight, ring_cap;                      /* a ring was live when last looked at under the lock */
        /* what its last turn moved and when it last had work: an interactive queue
         * (elvis_drr_sparse) shortens everybody's turns */
        u32 moved;
        uint64_t last_work;
        /* quiet: its last look was a peek that found nothing (see peek()); polling: its mode
         * then; tap_ready: the tap reported data since its last turn */
        bool quiet, polling, tap_ready;
        /* while others are busy, a queue idle for longer than ELVIS_DRR_SPARSE_NS is not
         * peeked again before this time (elvis_drr_quiet_due); a kick or tap data clears it */
        uint64_t next_peek;
        /* looks it had this round after backlogged turns, as an interactive queue */
        unsigned extra;
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

/* Kicks still unread on a kick fd about to be replaced: counted now, or a session that
 * ended before the sidecore read its eventfd (it found the work in the ring) would never
 * show them. */
static void drain_kicks(struct dp_slot *sl, struct reg *g)
{
        uint64_t v = 0;

        if (g->fd >= 0 && dp_vmm_drain(g->fd, &v) == 0 && v)
                STAT_ADD(sl->qp->st.kicks, v);
}

/* qp->lock held: follow the queue pair's current fds (dups keep numbers stable, and let
 * the server notify the guest after it released qp->lock). */
static bool sync_fds(struct dp_server *s, struct dp_slot *sl) DP_REQUIRES(sl->qp->lock)
{
        struct dp_qp *qp = sl->qp;
        uint32_t gen = atomic_load(&qp->gen);

        if (gen == sl->reg_gen)
                return false;
        sig_fd_set(&sl->sig_fds[0], qp->rx.call_fd);
        sig_fd_set(&sl->sig_fds[1], qp->tx.call_fd);
        sig_fd_set(&sl->sig_fds[2], qp->rx.err_fd);
        sig_fd_set(&sl->sig_fds[3], qp->tx.err_fd);
        drain_kicks(sl, &sl->regs[REG_TX_KICK]);
        drain_kicks(sl, &sl->regs[REG_RX_KICK]);
        reg_set(s, &sl->regs[REG_TX_KICK], qp->tx.ring->live ? qp->tx.kick_fd : -1, EPOLLIN);
        reg_set(s, &sl->regs[REG_RX_KICK], qp->rx.ring->live ? qp->rx.kick_fd : -1, EPOLLIN);
        reg_set(s, &sl->regs[REG_TAP], qp->rx.ring->live ? qp->tap_fd : -1, EPOLLIN);
        /* a blk queue's disk completions wake the sidecore like kicks */
        if (sl->regs[REG_DISK].fd < 0 && qp->bq && qp->bq->efd >= 0)
                reg_set(s, &sl->regs[REG_DISK], qp->bq->efd, EPOLLIN);
        sl->reg_gen = gen;
        /* with reg_gen, or the round would skip a queue that became live meanwhile */
        sl->live = dp_qp_live(qp);
        /* ring sizes and liveness change only with a generation bump */
        sl->ring_cap = dp_qp_ring_cap(qp);
        return true;
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
        dp_mutex_lock(&s->lock);
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
        dp_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < ndrop; i++)
                slot_free(s, drop[i]);
}

static u32 weight_of(const struct dp_qp *qp)
{
        unsigned w = atomic_load_explicit(&qp->dev->weight, memory_order_relaxed);

        return w ? w : ELVIS_WEIGHT_DEFAULT;
}

static enum elvis_turn_exitless effective(const struct dp_server *s, const struct dp_qp *qp)
{
        return s->vanilla ? ELVIS_NETQ_NEVER : (enum elvis_turn_exitless)atomic_load(&qp->dev->exitless);
}

static inline const struct elvis_sched *sched_of(const struct dp_qp *qp) DP_REQUIRES(qp->lock)
{
        return qp->bq ? &qp->bq->q.sched : &qp->q.sched;
}

/* One turn on a slot: the device model's (engine/elvis_net.c, engine/elvis_blkq.c), with this plane's
 * parameters and budget. qp->lock held. Returns packets moved. */
static unsigned turn(struct dp_server *s, struct dp_slot *sl, uint64_t now) DP_REQUIRES(sl->qp->lock)
{
        struct dp_qp *qp = sl->qp;
        struct dp_params *p = &s->dp->params;
        unsigned rate = atomic_load_explicit(&qp->poll_start_rate, memory_order_relaxed);
        unsigned stop = atomic_load_explicit(&qp->poll_stop_idle_ms, memory_order_relaxed);
        struct elvis_turn t = {
                .now = now,
                .kicks = STAT_GET(qp->st.kicks),
                .exitless = effective(s, qp),
                .poll_start_rate = rate ? rate : atomic_load(&p->poll_start_rate),
                .poll_stop_idle_ns = (uint64_t)(stop ? stop : atomic_load(&p->poll_stop_idle_ms)) * 1000000ull,
                .round = s->vanilla ? NULL : &s->drr,
                .weight = s->vanilla ? ELVIS_WEIGHT_DEFAULT : weight_of(qp),
                .budget_packets = s->vanilla ? VANILLA_PACKETS : atomic_load(&p->budget_packets),
                .budget_bytes = s->vanilla ? VANILLA_BYTES : atomic_load(&p->budget_bytes),
        };
        unsigned n;

        dp_assert_held(&qp->lock);
        if (atomic_exchange(&qp->vmm_fd_stuck, false)) {
                /* the VMM made one of its eventfds blocking: a broken or hostile VMM */
                if (qp->bq)
                        elvis_blkq_fail(&qp->bq->q, -EBADF, "an eventfd of the VMM blocked (it cleared O_NONBLOCK)");
                else
                        elvis_netq_fail(&qp->q, -EBADF, "an eventfd of the VMM blocked (it cleared O_NONBLOCK)");
                sl->busy = false;
                return 0;
        }
        n = qp->bq ? elvis_blkq_turn(&qp->bq->q, &t) : elvis_netq_turn(&qp->q, &t);
        sl->busy = dp_qp_sched(qp)->drr.busy;
        sl->weight = t.weight;
        sl->moved = n;
        sl->last_work = dp_qp_sched(qp)->last_work_ns;
        STAT_ADD(s->st.polls, 1);
        if (n)
                STAT_ADD(s->st.packets, n);
        else
                STAT_ADD(s->st.empty_polls, 1);
        dp_qp_publish(qp);
        return n;
}

/* A turn with a SIGBUS guard (see contain.c): a guest memory file that shrank under us
 * stops this queue pair and nothing else. qp->lock held. Returns packets moved. */
static unsigned guarded_turn(struct dp_server *s, struct dp_slot *sl, uint64_t *now) DP_REQUIRES(sl->qp->lock)
{
        struct dp_guard *g = &dp_guard_tls;
        unsigned n;

        g->dev = sl->qp->dev;
        if (sigsetjmp(g->jb, 0)) {
                dp_qp_memory_fault(sl->qp);
                return 0;
        }
        g->armed = 1;
        n = turn(s, sl, *now);
        g->armed = 0;
        /* the turn's end is the next one's start: one clock read per turn that did work,
         * none for an empty one */
        if (dp_qp_sched(sl->qp)->last_turn_ns > *now)
                *now = dp_qp_sched(sl->qp)->last_turn_ns;
        return n;
}

/* Instead of a turn, for a queue whose last turn or peek found nothing: true if a turn now
 * would find nothing either (the model's peek, elvis_netq_idle or elvis_blkq_idle, under
 * a SIGBUS guard), nor anything in its tap. A tap is not read here: it is watched in the
 * server's epoll, whose EPOLLIN sets tap_ready (handle_events), and re-armed when a turn
 * had left it unwatched (a frame waiting for receive buffers). qp->lock held. */
static bool peek(struct dp_server *s, struct dp_slot *sl, uint64_t now, bool *ret_tap) DP_REQUIRES(sl->qp->lock)
{
        struct dp_qp *qp = sl->qp;
        struct dp_guard *g = &dp_guard_tls;
        bool idle;

        if (now >= sched_of(sl->qp)->quiet_until || atomic_load_explicit(&qp->vmm_fd_stuck, memory_order_relaxed))
                return false;
        if (!qp->bq && qp->tap_fd >= 0 && qp->q.vq[ELVIS_NETQ_RX].live && !qp->q.rxlen) {
                if (sl->tap_ready)
                        return false;
                reg_events(s, &sl->regs[REG_TAP], EPOLLIN);
                if (sl->regs[REG_TAP].events != EPOLLIN)
                        return false;
                *ret_tap = true;
        }
        g->dev = qp->dev;
        if (sigsetjmp(g->jb, 0)) {
                dp_qp_memory_fault(sl->qp);
                return false;
        }
        g->armed = 1;
        idle = qp->bq ? elvis_blkq_idle(&qp->bq->q, now, STAT_GET(qp->st.kicks)) :
                        elvis_netq_idle(&qp->q, now, STAT_GET(qp->st.kicks));
        g->armed = 0;
        return idle;
}

/* True if there were notifications to write. */
static bool flush_signals(struct dp_slot *sl)
{
        if (!atomic_load_explicit(&sl->qp->signal, memory_order_relaxed))
                return false;
        dp_qp_flush_signals(sl->qp, sl->sig_fds);
        return true;
}

/* The kick rate the device model turns into polling is counted here. */
static void on_kick(struct dp_slot *sl, int fd)
{
        struct dp_qp *qp = sl->qp;
        uint64_t v = 0;

        if (dp_vmm_drain(fd, &v) == -ETIMEDOUT)
                atomic_store(&qp->vmm_fd_stuck, true);
        if (v)
                STAT_ADD(qp->st.kicks, v);
        sl->next_peek = 0;      /* a kicked queue waits ELVIS_QUIET_PEEK_ROUNDS rounds at most */
}

static void handle_events(struct dp_server *s, struct epoll_event *ev, int n)
{
        for (int i = 0; i < n; i++) {
                struct reg *g = ev[i].data.ptr;
                uint64_t v;

                if (!g) {
                        eventfd_read(s->wake_fd, &v);
                        continue;
                }
                if (g->kind == REG_DISK) {
                        /* completions: the next round reaps them */
                        eventfd_read(g->fd, &v);
                        continue;
                }
                if (g->kind == REG_TAP) {
                        /* data waits in the tap: the slot's next look turns it, which reads it */
                        g->slot->tap_ready = true;
                        g->slot->next_peek = 0;
                        continue;
                }
                on_kick(g->slot, g->fd);
        }
}

/* Notifications back on for one slot; true if work showed up meanwhile. qp->lock held,
 * guest memory touched under a SIGBUS guard. */
static bool guarded_enable_notify(struct dp_qp *qp) DP_REQUIRES(qp->lock)
{
        struct dp_guard *g = &dp_guard_tls;
        bool pending;

        g->dev = qp->dev;
        if (sigsetjmp(g->jb, 0)) {
                dp_qp_memory_fault(qp);
                return true;
        }
        g->armed = 1;
        pending = qp->bq ? elvis_blkq_enable_notify(&qp->bq->q) : elvis_netq_enable_notify(&qp->q);
        g->armed = 0;
        return pending;
}

static bool prepare_slot(struct dp_server *s, struct dp_slot *sl) DP_REQUIRES(sl->qp->lock)
{
        struct dp_qp *qp = sl->qp;
        bool pending;

        dp_assert_held(&qp->lock);
        pending = guarded_enable_notify(qp);

        dp_qp_publish(qp);
        /* tap data without guest buffers would wake us forever: wait for an RX kick */
        reg_events(s, &sl->regs[REG_TAP], qp->q.rx_blocked || !qp->rx.ring->live ? 0 : EPOLLIN);
        return pending;
}

/* Before sleeping: every queue back to notifications. False if work showed up. */
static bool prepare_sleep(struct dp_server *s)
{
        bool pending = false;

        for (unsigned i = 0; i < s->nslots; i++) {
                struct dp_slot *sl = s->slots[i];
                struct dp_qp *qp = sl->qp;

                if (!dp_mutex_trylock(&sl->qp->lock))
                        return false;
                sync_fds(s, sl);
                if (!sl->live && !dp_qp_live(qp)) {
                        dp_mutex_unlock(&sl->qp->lock);
                        flush_signals(sl);
                        continue;
                }
                pending |= prepare_slot(s, sl);
                dp_mutex_unlock(&sl->qp->lock);
                flush_signals(sl);
        }
        return !pending;
}

static long involuntary_switches(void)
{
        struct rusage ru;

        return getrusage(RUSAGE_THREAD, &ru) == 0 ? ru.ru_nivcsw : 0;
}

/* vhost-net's busyloop_timeout for a vanilla thread whose rings just went empty: keep
 * polling them, guest notifications still off, for vanilla_busyloop_us before turning
 * them back on and sleeping. As vhost-net stops at need_resched(), the wait ends early
 * when another thread wants this CPU: each iteration yields, and a switch away (counted
 * as involuntary for a yield) ends it. *until is the window's end, 0 when none is open.
 * True: poll the rings again. */
static bool vanilla_busyloop(struct dp_server *s, uint64_t now, uint64_t *until, long *switches)
{
        unsigned us = atomic_load_explicit(&s->dp->params.vanilla_busyloop_us, memory_order_relaxed);

        if (!us)
                return false;
        if (!*until) {
                *until = now + (uint64_t)us * 1000u;
                *switches = involuntary_switches();
                return true;
        }
        if (now < *until) {
                sched_yield();
                if (involuntary_switches() == *switches)
                        return true;
        }
        *until = 0;
        return false;
}

/* What a round gathers from its looks at the slots. */
struct round_acc {
        unsigned progress;
        bool all_notify, tx_blocked, disk_wait, taps;
        bool clock_fresh;       /* the last look ended on a clock read (a turn that did work) */
};

/* One look at a slot in a round: a peek when it was quiet (peek()), else the model's
 * turn. Returns what it moved. */
static unsigned look(struct dp_server *s, struct dp_slot *sl, uint64_t *now, struct round_acc *acc)
{
        struct dp_qp *qp = sl->qp;
        unsigned moved = 0;
        bool spent, fresh;

        acc->clock_fresh = false;
        if (!dp_mutex_trylock(&sl->qp->lock)) {
                acc->all_notify = false;        /* the control thread is reconfiguring it */
                return 0;
        }
        fresh = atomic_load_explicit(&qp->gen, memory_order_acquire) != sl->reg_gen && sync_fds(s, sl);
        sl->live = dp_qp_live(qp);
        if (sl->live) {
                bool tap = false;

                sl->quiet = !fresh && peek(s, sl, *now, &tap);
                if (sl->quiet) {
                        sl->busy = false;       /* the peek forfeited its credit */
                        sl->next_peek = *now + ELVIS_IDLE_PEEK_NS;
                        STAT_ADD(s->st.polls, 1);
                        STAT_ADD(s->st.empty_polls, 1);
                        acc->taps |= tap;
                } else {
                        sl->tap_ready = false;
                        moved = guarded_turn(s, sl, now);
                        acc->progress += moved;
                        acc->clock_fresh = moved > 0;
                }
                sl->polling = sched_of(sl->qp)->mode == ELVIS_TURN_POLL;
                if (sl->polling)
                        acc->all_notify = false;
                acc->tx_blocked |= qp->q.tx_blocked;
                acc->disk_wait |= qp->bq && qp->bq->q.inflight;
        } else {
                sl->quiet = false;
        }
        /* read under the lock: the control thread may reset the pair */
        spent = s->vanilla && dp_qp_sched(qp)->deficit_packets <= 0;
        dp_mutex_unlock(&sl->qp->lock);
        /* eventfd writes and a yield take time the turn's clock read did not see */
        if (flush_signals(sl) || spent)
                acc->clock_fresh = false;
        if (spent)
                sched_yield();  /* the budget ran out: let the other device threads run */
        return moved;
}

static void *server_main(void *arg)
{
        struct dp_server *s = arg;
        struct epoll_event ev[64];
        unsigned rounds = 0, last_progress = 0;
        uint64_t last_events = 0, busy_until = 0, next_start = 0;
        long switches = 0;

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
                /* A clock read costs as much as a few frames (about 30 ns in a VM): a round
                 * that follows another with nothing in between starts where that one ended,
                 * and a round whose last look was a turn that did work ends at that turn's
                 * end (bench/RESULTS.md, "forward path"). Busy and idle time still add up. */
                uint64_t start = next_start ? next_start : dp_now_ns(), end, now = start;
                struct round_acc acc = { .all_notify = true };

                next_start = 0;
                /* after a round that moved packets, quiet queues wait their turn to be peeked;
                 * while any queue had work lately, long-idle ones wait (elvis_drr_quiet_due) */
                bool busy = last_progress && !s->vanilla, recent = false;

                apply_pending(s);
                /* this round's unit: every busy queue's quantum must fit its rings */
                elvis_drr_round_begin(&s->drr, atomic_load(&s->dp->params.budget_packets));
                s->nsparse = 0;
                /* a slot idle for long costs this walk two loads and no store */
                for (unsigned k = 0; k < s->nslots && !s->vanilla; k++) {
                        struct dp_slot *sl = s->slots[k];

                        if (!sl->live)
                                continue;
                        if (sl->busy)
                                elvis_drr_round_fit(&s->drr, sl->weight, sl->ring_cap);
                        if (!elvis_drr_recent(sl->last_work, start))
                                continue;
                        recent = true;
                        if (elvis_drr_sparse(sl->moved, sl->last_work, start)) {
                                elvis_drr_round_interactive(&s->drr);
                                sl->extra = 0;  /* looks are counted for interactive slots only */
                                s->sparse[s->nsparse++] = sl;
                        }
                }
                /* round robin from s->rr; the index wraps by a compare, not a division per
                 * slot (a profile with 64 slots had the division among the round's top costs) */
                for (unsigned k = 0, n = s->nslots, idx = n ? s->rr % n : 0; k < n;
                     k++, idx = idx + 1 == n ? 0 : idx + 1) {
                        struct dp_slot *sl = s->slots[idx];
                        unsigned moved;

                        /* a queue pair without a live ring becomes live only with a generation
                         * bump: until then skip it without taking its lock, so many idle or
                         * unconnected devices cost the busy ones next to nothing */
                        if (!sl->live && atomic_load(&sl->qp->gen) == sl->reg_gen)
                                continue;
                        /* a quiet queue: looked at when elvis_drr_quiet_due */
                        if (sl->quiet &&
                            !elvis_drr_quiet_due(s->rr + idx, busy, recent, now, sl->last_work, sl->next_peek)) {
                                acc.all_notify &= !sl->polling;
                                continue;
                        }
                        moved = look(s, sl, &now, &acc);
                        /* after a backlogged turn, the interactive queues get a look: their
                         * requests wait for one short turn, not a round of them */
                        if (moved > ELVIS_DRR_SPARSE_ITEMS)
                                for (unsigned m = 0; m < s->nsparse; m++) {
                                        struct dp_slot *t = s->sparse[m];

                                        /* still interactive: its own look this round may
                                         * have found it backlogged */
                                        if (t != sl && t->live && t->extra < SPARSE_EXTRA_LOOKS &&
                                            elvis_drr_sparse(t->moved, t->last_work, start)) {
                                                t->extra++;
                                                look(s, t, &now, &acc);
                                        }
                                }
                }
                s->rr++;
                last_progress = acc.progress;
                STAT_ADD(s->st.rounds, 1);
                if (!acc.progress)
                        STAT_ADD(s->st.empty_rounds, 1);
                end = acc.clock_fresh ? now : dp_now_ns();
                if (acc.progress) {
                        busy_until = 0;
                        STAT_ADD(s->st.busy_ns, end - start);
                        /* kicks every so often; tap data on a quiet queue sooner */
                        if (++rounds % EVENT_CHECK_ROUNDS == 0 || (acc.taps && rounds % TAP_CHECK_ROUNDS == 0)) {
                                int n = epoll_wait(s->epfd, ev, 64, 0);
                                handle_events(s, ev, n);
                        } else {
                                next_start = end;
                        }
                        continue;
                }
                STAT_ADD(s->st.idle_ns, end - start);
                /* Only disk requests outstanding: what completes them may be an io_uring
                 * worker (a page-cache read cannot be done without blocking, so the kernel
                 * hands it to a worker), and a worker inherits the sidecore's CPU. Spinning
                 * on would keep it off that CPU until the scheduler's slice ends (up to
                 * milliseconds): give the CPU up for it instead. With nothing else runnable
                 * on the CPU this returns at once. */
                if (acc.disk_wait && !acc.all_notify)
                        sched_yield();
                if (!acc.all_notify || !s->nslots) {
                        int n;
                        /* polling: a syscall per empty round would slow the next pickup down;
                         * look at kicks and the control eventfd every so often instead */
                        if (s->nslots && end - last_events < EVENT_CHECK_NS && !acc.taps) {
                                if (!acc.disk_wait)     /* no yield above */
                                        next_start = end;
                                continue;
                        }
                        last_events = end;
                        if (!s->nslots) {
                                /* nothing to serve: sleep until the daemon changes the list */
                                atomic_store(&s->sleeping, true);
                                n = epoll_wait(s->epfd, ev, 64, -1);
                                atomic_store(&s->sleeping, false);
                        } else {
                                n = epoll_wait(s->epfd, ev, 64, 0);
                        }
                        handle_events(s, ev, n);
                        STAT_ADD(s->st.idle_ns, dp_now_ns() - end);
                        continue;
                }
                if (s->vanilla && vanilla_busyloop(s, end, &busy_until, &switches))
                        continue;
                if (!prepare_sleep(s))
                        continue;
                atomic_store(&s->sleeping, true);
                {
                        int n = epoll_wait(s->epfd, ev, 64, acc.tx_blocked ? 1 : -1);
                        uint64_t woke = dp_now_ns();
                        atomic_store(&s->sleeping, false);
                        STAT_ADD(s->st.wakeups, 1);
                        handle_events(s, ev, n);
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
        dp_mutex_init(&s->lock);
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
        dp_mutex_destroy(&s->lock);
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
        dp_mutex_lock(&s->lock);
        if (add) {
                if (s->npending == DP_MAX_SLOTS) {
                        dp_mutex_unlock(&s->lock);
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
        dp_mutex_unlock(&s->lock);
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
