/* Control loop and journal. */
#include "control.h"

#include <elvis/placement.h>

#include "log.h"
#include "manager.h"


#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#define JOURNAL_SIZE 1024
#define MAX_DECIDERS 8          /* policy names counted separately in the decision counters */

/* the names the policies put in plan.policy, counted from zero so that a fresh daemon
 * already exports their series */
static const char *const deciders[] = { "scaling", "balance", "regret" };

struct qsample {
        uint32_t vm;
        char device[ELVIS_DEVICE_ID_MAX];
        unsigned queue;
        uint64_t packets, busy_ns, kicks, wait_ns, wait_samples;
        unsigned start_rate, stop_idle_ms;      /* last pushed to the data plane */
};

struct elvis_control {
        struct elvis_loop_source *timer;
        unsigned interval_ms;
        struct elvis_controller ctl;
        /* previous sample, for deltas */
        bool have_prev;
        uint64_t prev_ns;
        unsigned nsc, nq;
        struct {
                uint32_t id;
                uint64_t busy_ns, idle_ns, wait_ns, wait_samples;
        } sc[ELVIS_MAX_SIDECORES];
        struct qsample q[ELVIS_SNAP_MAX_QUEUES];
        struct elvis_snapshot last;
        bool have_last;
        /* journal */
        json_t *ring[JOURNAL_SIZE];
        uint64_t next_seq;
        char boot[17];          /* this daemon run: sequence numbers restart with it */
        /* decisions per policy since the daemon started, for /metrics */
        struct {
                char policy[sizeof(((struct elvis_plan *)0)->policy)];
                uint64_t applied, failed;
        } decisions[MAX_DECIDERS];
        unsigned ndecisions;
};

static uint64_t mono_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- journal ---- */

void elvis_journal_add(struct elvis_manager *m, const char *source, json_t *event)
{
        struct elvis_control *c = m->control;
        uint64_t seq;

        if (!c) {
                json_decref(event);
                return;
        }
        seq = ++c->next_seq;
        json_object_set_new(event, "seq", json_integer((json_int_t)seq));
        json_object_set_new(event, "time", json_integer((json_int_t)time(NULL)));
        json_object_set_new(event, "source", json_string(source));
        json_decref(c->ring[seq % JOURNAL_SIZE]);
        c->ring[seq % JOURNAL_SIZE] = event;
        elvis_manager_publish(m, ELVIS_EVENT_JOURNAL, NULL);
}

const char *elvis_journal_boot(struct elvis_manager *m)
{
        return m->control ? m->control->boot : "";
}

json_t *elvis_journal_since(struct elvis_manager *m, uint64_t since, unsigned max, uint64_t *ret_last)
{
        struct elvis_control *c = m->control;
        json_t *a = json_array();
        uint64_t first;

        *ret_last = c ? c->next_seq : 0;
        if (!c)
                return a;
        first = c->next_seq > JOURNAL_SIZE ? c->next_seq - JOURNAL_SIZE + 1 : 1;
        if (since + 1 > first)
                first = since + 1;
        for (uint64_t s = first; s <= c->next_seq && json_array_size(a) < max; s++)
                if (c->ring[s % JOURNAL_SIZE])
                        json_array_append(a, c->ring[s % JOURNAL_SIZE]);
        return a;
}

/* ---- decision counters ---- */

static void count_decision(struct elvis_control *c, const char *policy, bool applied)
{
        unsigned i;

        for (i = 0; i < c->ndecisions && strcmp(c->decisions[i].policy, policy) != 0; i++)
                ;
        if (i == c->ndecisions) {
                if (i == MAX_DECIDERS)
                        return;
                snprintf(c->decisions[i].policy, sizeof(c->decisions[i].policy), "%s", policy);
                c->ndecisions++;
        }
        if (applied)
                c->decisions[i].applied++;
        else
                c->decisions[i].failed++;
}

json_t *elvis_control_decisions(struct elvis_manager *m)
{
        struct elvis_control *c = m->control;
        json_t *a = json_array();

        for (unsigned i = 0; c && i < c->ndecisions; i++)
                json_array_append_new(a, json_pack("{s:s, s:I, s:I}", "policy", c->decisions[i].policy, "applied",
                                                   (json_int_t)c->decisions[i].applied, "failed",
                                                   (json_int_t)c->decisions[i].failed));
        return a;
}

/* ---- snapshot ---- */

static int find_sc(const struct elvis_control *c, uint32_t id)
{
        for (unsigned i = 0; i < c->nsc; i++)
                if (c->sc[i].id == id)
                        return (int)i;
        return -1;
}

static int find_q(const struct elvis_control *c, const struct elvis_dp_queue_stats *q)
{
        for (unsigned i = 0; i < c->nq; i++)
                if (c->q[i].vm == q->vm_id && c->q[i].queue == q->queue && strcmp(c->q[i].device, q->device) == 0)
                        return (int)i;
        return -1;
}

static uint64_t d64(uint64_t now, uint64_t before)
{
        return now >= before ? now - before : 0;
}

/* Reads the data plane and turns counters into rates over the last interval. false
 * until two samples exist. */
static bool sample(struct elvis_manager *m, struct elvis_snapshot *s)
{
        struct elvis_control *c = m->control;
        struct elvis_dp_stats st = { 0 };
        struct qsample nq[ELVIS_SNAP_MAX_QUEUES];
        unsigned nnq = 0;
        double secs;
        bool ok;

        if (m->dp_status != ELVIS_DP_RUNNING || m->dp_ops->stats_read(m->dp, &st) < 0)
                return false;
        ok = c->have_prev && st.timestamp_ns > c->prev_ns;
        secs = ok ? (double)(st.timestamp_ns - c->prev_ns) / 1e9 : 1;
        memset(s, 0, sizeof(*s));
        s->now_ms = mono_ms();
        s->interval_s = secs;
        for (unsigned i = 0; i < st.nsidecores && s->nsidecores < ELVIS_MAX_SIDECORES; i++) {
                const struct elvis_dp_sidecore_stats *x = &st.sidecores[i];
                struct elvis_sidecore *model = elvis_state_sidecore(&m->state, x->id);
                int k = find_sc(c, x->id);
                uint64_t busy = k >= 0 ? d64(x->busy_ns, c->sc[k].busy_ns) : 0;
                uint64_t idle = k >= 0 ? d64(x->idle_ns, c->sc[k].idle_ns) : 0;
                struct elvis_snap_sidecore *o = &s->sidecores[s->nsidecores++];
                *o = (struct elvis_snap_sidecore){ .id = x->id, .cpu = x->cpu, .numa = model ? model->numa : -1,
                                                    .automatic = model && model->automatic };
                /* busy share of the interval, not of the counted time: a sidecore that slept counts idle */
                o->load = busy / (secs * 1e9);
                if (o->load > 1)
                        o->load = 1;
                (void)idle;
        }
        for (unsigned i = 0; i < st.nqueues && nnq < ELVIS_SNAP_MAX_QUEUES; i++) {
                const struct elvis_dp_queue_stats *x = &st.queues[i];
                struct elvis_vm *vm = elvis_state_vm(&m->state, x->vm_id);
                int k = find_q(c, x);
                struct qsample *n = &nq[nnq++];
                uint64_t pk = x->rx_packets + x->tx_packets;
                *n = (struct qsample){ .vm = x->vm_id, .queue = x->queue, .packets = pk, .busy_ns = x->busy_ns,
                                       .kicks = x->kicks, .wait_ns = x->wait_ns, .wait_samples = x->wait_samples };
                memcpy(n->device, x->device, sizeof(n->device));
                if (k >= 0) {
                        n->start_rate = c->q[k].start_rate;
                        n->stop_idle_ms = c->q[k].stop_idle_ms;
                }
                if (s->nqueues < ELVIS_SNAP_MAX_QUEUES) {
                        struct elvis_snap_queue *o = &s->queues[s->nqueues++];
                        uint64_t ws = k >= 0 ? d64(x->wait_samples, c->q[k].wait_samples) : 0;
                        *o = (struct elvis_snap_queue){ .vm = x->vm_id, .queue = x->queue, .sidecore = x->sidecore,
                                                        .numa = vm ? vm->numa : -1,
                                                        .weight = vm ? vm->policy.weight : ELVIS_WEIGHT_DEFAULT };
                        memcpy(o->device, x->device, sizeof(o->device));
                        if (k >= 0) {
                                o->cost = (double)d64(x->busy_ns, c->q[k].busy_ns) / (secs * 1e9);
                                o->pps = (double)d64(pk, c->q[k].packets) / secs;
                                o->kicks_ps = (double)d64(x->kicks, c->q[k].kicks) / secs;
                                o->wait_us = ws ? (double)d64(x->wait_ns, c->q[k].wait_ns) / (double)ws / 1e3 : 0;
                        }
                }
        }
        /* the sidecore's wait: the worst of its queues' mean waits */
        for (unsigned i = 0; i < s->nqueues; i++)
                for (unsigned k = 0; k < s->nsidecores; k++)
                        if (s->queues[i].sidecore == s->sidecores[k].id && s->queues[i].wait_us > s->sidecores[k].wait_us)
                                s->sidecores[k].wait_us = s->queues[i].wait_us;
        /* remember this sample */
        c->nsc = 0;
        for (unsigned i = 0; i < st.nsidecores && c->nsc < ELVIS_MAX_SIDECORES; i++) {
                c->sc[c->nsc].id = st.sidecores[i].id;
                c->sc[c->nsc].busy_ns = st.sidecores[i].busy_ns;
                c->sc[c->nsc++].idle_ns = st.sidecores[i].idle_ns;
        }
        memcpy(c->q, nq, nnq * sizeof(nq[0]));
        c->nq = nnq;
        c->prev_ns = st.timestamp_ns;
        c->have_prev = true;
        elvis_dp_stats_fini(&st);
        /* free whole cores a new sidecore could take, highest first */
        {
                elvis_cpuset busy = elvis_state_used_cpus(&m->state);
                elvis_cpuset free = elvis_placement_free_cpus(&m->topo, &m->allowed, &busy);
                for (size_t i = m->topo.ncores; i-- > 0 && s->nfree < ELVIS_MAX_SIDECORES;) {
                        int cpu = elvis_cpuset_next(&m->topo.cores[i].pus, 0);
                        if (cpu >= 0 && elvis_cpuset_has(&free, cpu)) {
                                s->free[s->nfree].cpu = cpu;
                                s->free[s->nfree++].numa = elvis_topology_cpu_numa(&m->topo, cpu);
                        }
                }
        }
        return ok;
}

static json_t *plan_to_json(const struct elvis_plan *p)
{
        static const char *const kinds[] = { "add_sidecore", "remove_sidecore", "move_queue" };
        json_t *acts = json_array();

        for (unsigned i = 0; i < p->nactions; i++) {
                const struct elvis_action *a = &p->actions[i];
                json_t *o = json_pack("{s:s}", "action", kinds[a->kind]);
                if (a->kind == ELVIS_ACT_ADD_SIDECORE)
                        json_object_set_new(o, "cpu", json_integer(a->cpu));
                if (a->kind == ELVIS_ACT_REMOVE_SIDECORE)
                        json_object_set_new(o, "sidecore", json_integer(a->sidecore));
                if (a->kind == ELVIS_ACT_MOVE_QUEUE) {
                        json_object_set_new(o, "vm", json_integer(a->vm));
                        json_object_set_new(o, "device", json_string(a->device));
                        json_object_set_new(o, "queue", json_integer(a->queue));
                        json_object_set_new(o, "to_sidecore", a->sidecore ? json_integer(a->sidecore)
                                                                          : json_integer(-1 - (int)a->new_index));
                }
                json_array_append_new(acts, o);
        }
        return json_pack("{s:s, s:s, s:o, s:{s:f, s:i}, s:{s:f, s:i}}", "policy", p->policy, "reason", p->reason,
                         "actions", acts, "before", "max_load", p->before_max_load, "sidecores",
                         (int)p->before_sidecores, "after", "max_load", p->after_max_load, "sidecores",
                         (int)p->after_sidecores);
}

static json_t *snapshot_to_json(const struct elvis_snapshot *s)
{
        json_t *scs = json_array(), *qs = json_array();

        for (unsigned i = 0; i < s->nsidecores; i++)
                json_array_append_new(scs, json_pack("{s:i, s:i, s:f, s:f}", "id", (int)s->sidecores[i].id, "cpu",
                                                     s->sidecores[i].cpu, "load", s->sidecores[i].load, "wait_us",
                                                     s->sidecores[i].wait_us));
        for (unsigned i = 0; i < s->nqueues; i++)
                json_array_append_new(qs, json_pack("{s:i, s:s, s:i, s:o, s:f, s:f, s:f, s:f}", "vm", (int)s->queues[i].vm,
                                                    "device", s->queues[i].device, "queue", (int)s->queues[i].queue,
                                                    "sidecore", s->queues[i].sidecore ? json_integer(s->queues[i].sidecore)
                                                                                     : json_null(),
                                                    "cost", s->queues[i].cost, "pps", s->queues[i].pps, "kicks_ps",
                                                    s->queues[i].kicks_ps, "wait_us", s->queues[i].wait_us));
        return json_pack("{s:f, s:o, s:o, s:i}", "interval_s", s->interval_s, "sidecores", scs, "queues", qs,
                         "free_cores", (int)s->nfree);
}

/* Per-queue polling thresholds, pushed only when they change. */
static void tune_polling(struct elvis_manager *m, const struct elvis_snapshot *s)
{
        struct elvis_control *c = m->control;

        if (!m->dp_ops->queue_set_poll)
                return;
        for (unsigned i = 0; i < s->nqueues; i++) {
                unsigned start, stop;
                int k = -1;
                for (unsigned j = 0; j < c->nq && k < 0; j++)
                        if (c->q[j].vm == s->queues[i].vm && c->q[j].queue == s->queues[i].queue &&
                            !strcmp(c->q[j].device, s->queues[i].device))
                                k = (int)j;
                if (k < 0)
                        continue;
                elvis_policy_polling(&s->queues[i], &m->state.policy, &start, &stop);
                if (c->q[k].start_rate == start && c->q[k].stop_idle_ms == stop)
                        continue;
                if (m->dp_ops->queue_set_poll(m->dp, s->queues[i].vm, s->queues[i].device, s->queues[i].queue, start,
                                              stop) == 0) {
                        c->q[k].start_rate = start;
                        c->q[k].stop_idle_ms = stop;
                }
        }
}

void elvis_control_tick(struct elvis_manager *m)
{
        struct elvis_control *c = m->control;
        struct elvis_snapshot *s = &c->last;
        struct elvis_plan plan;
        struct elvis_err e = { 0 };
        json_t *ev;
        int r;

        /* the only place where the data plane is brought in line between API changes:
         * reads (stats, metrics) never do it */
        if (m->dp_status == ELVIS_DP_RUNNING && m->dp_ops->sync)
                m->dp_ops->sync(m->dp);
        c->have_last = sample(m, s);
        if (!c->have_last || m->state.policy.mode != ELVIS_MODE_DYNAMIC)
                return;
        tune_polling(m, s);
        elvis_policy_decide(s, &m->state.policy, &c->ctl, &plan);
        if (!plan.nactions)
                return;
        r = elvis_manager_apply_plan(m, &plan, &e);
        ev = plan_to_json(&plan);
        json_object_set_new(ev, "applied", json_boolean(r == 0));
        if (r < 0) {
                json_object_set_new(ev, "error", json_string(e.detail));
                log_warning("control: %s plan not applied: %s", plan.policy, e.detail);
        } else {
                log_notice("control: %s: %s", plan.policy, plan.reason);
        }
        count_decision(c, plan.policy, r == 0);
        elvis_journal_add(m, "control", ev);
        /* the data plane's counters now belong to different sidecores: start over */
        c->have_prev = false;
}

static void on_tick(struct elvis_loop_source *src, void *userdata)
{
        elvis_control_tick(userdata);
}

/* A committed policy may have a new interval. */
static void on_commit(struct elvis_manager *m, enum elvis_event ev, const struct elvis_state *old, void *userdata)
{
        struct elvis_control *c = userdata;

        if (ev != ELVIS_EVENT_COMMIT || c->interval_ms == m->state.policy.interval_ms)
                return;
        c->interval_ms = m->state.policy.interval_ms;
        elvis_loop_timer_rearm(c->timer, (uint64_t)c->interval_ms * 1000u, true);
}

int elvis_control_start(struct elvis_manager *m)
{
        struct elvis_control *c = calloc(1, sizeof(*c));
        int r;

        if (!c)
                return -ENOMEM;
        m->control = c;
        {
                uint64_t id = 0;
                if (getrandom(&id, sizeof(id), GRND_NONBLOCK) != (ssize_t)sizeof(id))
                        id = elvis_now_ns() ^ ((uint64_t)getpid() << 32);
                snprintf(c->boot, sizeof(c->boot), "%016llx", (unsigned long long)id);
        }
        for (unsigned i = 0; i < sizeof(deciders) / sizeof(deciders[0]); i++)
                snprintf(c->decisions[c->ndecisions++].policy, sizeof(c->decisions[0].policy), "%s", deciders[i]);
        c->interval_ms = m->state.policy.interval_ms;
        r = elvis_loop_add_timer(m->loop, (uint64_t)c->interval_ms * 1000u, true, on_tick, m, &c->timer);
        return r < 0 ? r : elvis_manager_listen(m, on_commit, c);
}


void elvis_control_stop(struct elvis_manager *m)
{
        struct elvis_control *c = m->control;

        if (!c)
                return;
        elvis_manager_unlisten(m, on_commit, c);
        elvis_loop_source_free(c->timer);
        for (unsigned i = 0; i < JOURNAL_SIZE; i++)
                json_decref(c->ring[i]);
        free(c);
        m->control = NULL;
}

json_t *elvis_control_plan(struct elvis_manager *m)
{
        struct elvis_control *c = m->control;
        struct elvis_controller ctl;
        struct elvis_plan plan;

        if (!c || !c->have_last)
                return json_pack("{s:s, s:n, s:n, s:s}", "mode", elvis_mode_name(m->state.policy.mode), "snapshot",
                                 "plan", "note",
                                 "no sample yet: the data plane is not running or the first interval has not passed");
        ctl = c->ctl;   /* a dry run must not move the real controller's memory */
        elvis_policy_decide(&c->last, &m->state.policy, &ctl, &plan);
        return json_pack("{s:s, s:o, s:o}", "mode", elvis_mode_name(m->state.policy.mode), "snapshot",
                         snapshot_to_json(&c->last), "plan", plan.nactions ? plan_to_json(&plan) : json_null());
}
