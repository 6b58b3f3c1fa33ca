/* elvis-sim: replays load traces through the real policy code (policies/) with a sidecore
 * capacity model, next to re-implementations of the reference rules (static maximum,
 * IOcm, OVS-DPDK's PMD auto load balance, SPDK's dynamic scheduler: peer_*.c), and reports
 * sidecore-seconds, overloaded intervals, the worst per-VM wait and queue moves.
 *   elvis-sim [--decisions] [--markdown | --table] [--check] [--golden FILE] TRACE.json...
 * --markdown prints a table per trace, --table one table for all of them. --check verifies
 * each trace's "expect" block; --golden compares the output with FILE instead of printing it.
 * Either exits 1 when it does not hold. */
#include "sim.h"

#include "../../daemon/topology_hwloc.h"

#include <elvis/placement.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OVERLOAD 1.0            /* demand beyond a sidecore's capacity */

static const char *const rule_names[] = { "ELVIS", "static max", "IOcm", "OVS auto-lb", "SPDK dynamic" };

static _Noreturn void die(const char *msg, const char *what)
{
        fprintf(stderr, "elvis-sim: %s%s%s\n", msg, what ? ": " : "", what ? what : "");
        exit(2);
}

static double positive(json_t *v, const char *what, const char *path)
{
        char msg[160];

        if (!json_is_number(v) || json_number_value(v) < 0) {
                snprintf(msg, sizeof(msg), "%s must be a number >= 0", what);
                die(msg, path);
        }
        return json_number_value(v);
}

static void load_trace(const char *path, struct trace *t)
{
        json_error_t jerr;
        json_t *j = json_load_file(path, 0, &jerr), *v;
        char err[256];
        size_t i;

        if (!j)
                die("cannot read trace", jerr.text);
        memset(t, 0, sizeof(*t));
        snprintf(t->name, sizeof(t->name), "%s", json_string_value(json_object_get(j, "name")) ?: path);
        t->interval_ms = (unsigned)json_integer_value(json_object_get(j, "interval_ms"));
        if (!t->interval_ms)
                t->interval_ms = 100;
        t->capacity_pps = json_number_value(json_object_get(j, "capacity_pps"));
        if (t->capacity_pps <= 0)
                die("capacity_pps must be positive", path);
        if (elvis_topology_load(ELVIS_TOPOLOGY_SYNTHETIC, json_string_value(json_object_get(j, "topology")), &t->topo,
                                err, sizeof(err)) < 0)
                die("bad topology", err);
        t->allowed = t->topo.online;
        elvis_cpuset_clear(&t->allowed, 0);     /* housekeeping */
        elvis_policy_defaults(&t->policy);
        t->policy.mode = ELVIS_MODE_DYNAMIC;
        t->policy.interval_ms = t->interval_ms;
        if ((v = json_object_get(j, "max_sidecores")))
                t->policy.max_sidecores = (unsigned)json_integer_value(v);
        if (!t->policy.max_sidecores || t->policy.max_sidecores > ELVIS_MAX_SIDECORES)
                die("max_sidecores out of range", path);
        if ((v = json_object_get(j, "max_wait_us")))
                t->policy.max_wait_us = (unsigned)json_integer_value(v);
        json_array_foreach(json_object_get(j, "vms"), i, v) {
                const char *name = json_string_value(json_object_get(v, "name"));
                if (i >= MAX_VMS)
                        die("too many VMs", path);
                if (!name || !*name)
                        die("a VM without a name", path);
                snprintf(t->vm[i].name, sizeof(t->vm[i].name), "%s", name);
                t->vm[i].numa = json_object_get(v, "numa") ? (int)json_integer_value(json_object_get(v, "numa")) : -1;
                t->vm[i].weight = json_object_get(v, "weight") ? (unsigned)json_integer_value(json_object_get(v, "weight"))
                                                               : 100;
                if (!t->vm[i].weight)
                        die("a VM's weight must be positive", name);
                t->nvms++;
        }
        json_array_foreach(json_object_get(j, "phases"), i, v) {
                const char *k;
                json_t *p;
                if (i >= MAX_PHASES)
                        die("too many phases", path);
                t->phase[i].seconds = positive(json_object_get(v, "seconds"), "a phase's seconds", path);
                json_object_foreach(json_object_get(v, "pps"), k, p) {
                        unsigned n;
                        for (n = 0; n < t->nvms && strcmp(k, t->vm[n].name); n++)
                                ;
                        if (n == t->nvms)
                                die("a phase names a VM the trace does not have", k);
                        t->phase[i].pps[n] = positive(p, "pps", path);
                }
                t->nphases++;
        }
        if (!t->nvms || !t->nphases)
                die("a trace needs vms and phases", path);
        t->expect = json_incref(json_object_get(j, "expect"));
        json_decref(j);
}

/* ---- capacity model ---- */

/* Weighted max-min fair share of one sidecore's capacity among its queues (what deficit
 * round robin with per-VM weights converges to). */
static void serve(struct sim *s, unsigned k, double dt)
{
        double cap = s->t->capacity_pps * dt, want = 0;
        bool active[MAX_VMS] = { false };
        unsigned n = 0;

        for (unsigned v = 0; v < s->t->nvms; v++)
                if (s->assign[v] == s->sc[k].id && s->demand[v] > 0) {
                        active[v] = true;
                        want += s->demand[v];
                        n++;
                }
        s->load[k] = want / cap;
        while (n && cap > 1e-9) {
                double wsum = 0, used = 0;
                for (unsigned v = 0; v < s->t->nvms; v++)
                        if (active[v])
                                wsum += s->t->vm[v].weight;
                for (unsigned v = 0; v < s->t->nvms; v++) {
                        double share;
                        if (!active[v])
                                continue;
                        share = cap * s->t->vm[v].weight / wsum;
                        if (s->demand[v] - s->served[v] <= share + 1e-9) {
                                used += s->demand[v] - s->served[v];
                                s->served[v] = s->demand[v];
                                active[v] = false;
                                n--;
                        }
                }
                if (used < 1e-9) {      /* nobody satisfied: split what is left by weight */
                        for (unsigned v = 0; v < s->t->nvms; v++)
                                if (active[v])
                                        s->served[v] += cap * s->t->vm[v].weight / wsum;
                        break;
                }
                cap -= used;
        }
}

double sim_busy(const struct sim *s, unsigned k)
{
        return s->load[k] > 1 ? 1 : s->load[k];
}

int sim_sc_index(const struct sim *s, uint32_t id)
{
        for (unsigned k = 0; k < s->nsc; k++)
                if (s->sc[k].id == id)
                        return (int)k;
        return -1;
}

static bool cpu_used(const struct sim *s, int cpu)
{
        for (unsigned k = 0; k < s->nsc; k++)
                if (s->sc[k].cpu == cpu)
                        return true;
        return false;
}

int sim_free_cpu(const struct sim *s, int numa)
{
        elvis_cpuset busy;
        int cpu;
        char reason[128];

        elvis_cpuset_zero(&busy);
        for (unsigned k = 0; k < s->nsc; k++)
                elvis_cpuset_set(&busy, s->sc[k].cpu);
        if (elvis_place_sidecore(&s->t->topo, &s->t->allowed, &busy, numa, &cpu, reason, sizeof(reason)) == 0)
                return cpu;
        return -1;
}

uint32_t sim_add_sc(struct sim *s, int cpu)
{
        s->sc[s->nsc].id = ++s->next_id;
        s->sc[s->nsc].cpu = cpu;
        s->sc[s->nsc].numa = elvis_topology_cpu_numa(&s->t->topo, cpu);
        s->load[s->nsc] = 0;
        s->nsc++;
        s->changes++;
        return s->next_id;
}

void sim_move(struct sim *s, unsigned v, uint32_t to)
{
        if (s->assign[v] != to) {
                if (s->assign[v])
                        s->moves++;
                s->assign[v] = to;
        }
}

void sim_remove_sc(struct sim *s, uint32_t id)
{
        int k = sim_sc_index(s, id);

        if (k < 0 || s->nsc < 2)
                return;
        s->sc[k] = s->sc[--s->nsc];
        s->load[k] = s->load[s->nsc];
        s->changes++;
        /* orphans go to the least loaded sidecore, NUMA-local when there is one */
        for (unsigned v = 0; v < s->t->nvms; v++)
                if (s->assign[v] == id) {
                        int best = -1;
                        for (int pass = 0; pass < 2 && best < 0; pass++)
                                for (unsigned j = 0; j < s->nsc; j++)
                                        if ((pass || s->t->vm[v].numa < 0 || s->sc[j].numa == s->t->vm[v].numa) &&
                                            (best < 0 || s->load[j] < s->load[best]))
                                                best = (int)j;
                        sim_move(s, v, s->sc[best].id);
                }
}

/* Round robin over the sidecores on each VM's node (what simple rules do after a change). */
void sim_round_robin(struct sim *s)
{
        unsigned next = 0;

        for (unsigned v = 0; v < s->t->nvms; v++) {
                int pick = -1;
                for (unsigned tries = 0; tries < s->nsc && pick < 0; tries++) {
                        unsigned j = (next + tries) % s->nsc;
                        if (s->t->vm[v].numa < 0 || s->sc[j].numa == s->t->vm[v].numa)
                                pick = (int)j;
                }
                if (pick < 0)
                        pick = (int)(next % s->nsc);
                next = (unsigned)pick + 1;
                sim_move(s, v, s->sc[pick].id);
        }
}

/* ---- ELVIS: the real policies ---- */

static void snapshot(const struct sim *s, struct elvis_snapshot *snap, uint64_t now_ms)
{
        memset(snap, 0, sizeof(*snap));
        snap->now_ms = now_ms;
        snap->interval_s = s->t->interval_ms / 1000.0;
        for (unsigned k = 0; k < s->nsc; k++) {
                snap->sidecores[k] = (struct elvis_snap_sidecore){ .id = s->sc[k].id, .cpu = s->sc[k].cpu,
                                                                    .numa = s->sc[k].numa, .automatic = true,
                                                                    .load = sim_busy(s, k) };
        }
        snap->nsidecores = s->nsc;
        for (unsigned v = 0; v < s->t->nvms; v++) {
                struct elvis_snap_queue *q = &snap->queues[snap->nqueues++];
                int k = sim_sc_index(s, s->assign[v]);
                *q = (struct elvis_snap_queue){ .vm = v + 1, .queue = 0, .sidecore = s->assign[v],
                                                .numa = s->t->vm[v].numa, .weight = s->t->vm[v].weight,
                                                .pps = s->served[v] / snap->interval_s,
                                                .cost = s->served[v] / snap->interval_s / s->t->capacity_pps,
                                                .wait_us = s->wait_us[v] };
                snprintf(q->device, sizeof(q->device), "net0");
                if (k >= 0 && q->wait_us > snap->sidecores[k].wait_us)
                        snap->sidecores[k].wait_us = q->wait_us;
        }
        {
                elvis_cpuset busy, free;
                elvis_cpuset_zero(&busy);
                for (unsigned k = 0; k < s->nsc; k++)
                        elvis_cpuset_set(&busy, s->sc[k].cpu);
                free = elvis_placement_free_cpus(&s->t->topo, &s->t->allowed, &busy);
                for (size_t i = s->t->topo.ncores; i-- > 0 && snap->nfree < ELVIS_MAX_SIDECORES;) {
                        int cpu = elvis_cpuset_next(&s->t->topo.cores[i].pus, 0);
                        if (cpu >= 0 && elvis_cpuset_has(&free, cpu)) {
                                snap->free[snap->nfree].cpu = cpu;
                                snap->free[snap->nfree++].numa = elvis_topology_cpu_numa(&s->t->topo, cpu);
                        }
                }
        }
}

static void rule_elvis(struct sim *s, uint64_t now_ms, FILE *out)
{
        struct elvis_snapshot *snap = malloc(sizeof(*snap));
        struct elvis_plan plan;
        uint32_t added[ELVIS_PLAN_MAX];
        unsigned nadded = 0;

        if (!snap)
                die("out of memory", NULL);
        snapshot(s, snap, now_ms);
        elvis_policy_decide(snap, &s->t->policy, &s->ctl, &plan);
        free(snap);
        if (!plan.nactions)
                return;
        if (out)
                fprintf(out, "  t=%6.1fs %-8s %s\n", now_ms / 1000.0, plan.policy, plan.reason);
        for (unsigned i = 0; i < plan.nactions; i++) {
                const struct elvis_action *a = &plan.actions[i];
                if (a->kind == ELVIS_ACT_ADD_SIDECORE && !cpu_used(s, a->cpu))
                        added[nadded++] = sim_add_sc(s, a->cpu);
                else if (a->kind == ELVIS_ACT_MOVE_QUEUE && a->vm >= 1 && a->vm <= s->t->nvms)
                        sim_move(s, a->vm - 1,
                                 a->sidecore ? a->sidecore : a->new_index < nadded ? added[a->new_index] : 0);
                else if (a->kind == ELVIS_ACT_REMOVE_SIDECORE)
                        sim_remove_sc(s, a->sidecore);
        }
}

/* ---- running ---- */

static void start_pool(struct sim *s)
{
        unsigned start = s->rule == R_ELVIS || s->rule == R_IOCM ? 1 : s->t->policy.max_sidecores;

        if (s->rule == R_OVS) {
                peer_ovs_start(s);      /* its own pool per node, and its own first assignment */
        } else {
                for (unsigned i = 0; i < start; i++) {
                        int cpu = sim_free_cpu(s, -1);
                        if (cpu >= 0)
                                sim_add_sc(s, cpu);
                }
                sim_round_robin(s);
        }
        if (!s->nsc)
                die("the topology has no free core for a sidecore", s->t->name);
        s->changes = 0;
        s->moves = 0;
}

static void run(struct sim *s, FILE *decisions)
{
        const struct trace *t = s->t;
        double dt = t->interval_ms / 1000.0;
        uint64_t now = 0;

        start_pool(s);
        if (decisions)
                fprintf(decisions, "%s / %s\n", t->name, rule_names[s->rule]);
        for (unsigned ph = 0; ph < t->nphases; ph++)
                for (double e = 0; e < t->phase[ph].seconds - 1e-9; e += dt, now += t->interval_ms) {
                        bool over = false;
                        for (unsigned v = 0; v < t->nvms; v++) {
                                s->demand[v] = t->phase[ph].pps[v] * dt + s->backlog[v];
                                s->vm_offered[v] += t->phase[ph].pps[v] * dt;
                                s->served[v] = 0;
                        }
                        for (unsigned k = 0; k < s->nsc; k++) {
                                serve(s, k, dt);
                                over |= s->load[k] > OVERLOAD;
                        }
                        for (unsigned v = 0; v < t->nvms; v++) {
                                double rate = t->capacity_pps;
                                int k = sim_sc_index(s, s->assign[v]);
                                double rho = k >= 0 && s->load[k] < 0.999 ? s->load[k] : 0.999;
                                s->backlog[v] = s->demand[v] - s->served[v];
                                s->vm_served[v] += s->served[v];
                                /* a buffer waits for the backlog ahead of it, plus M/M/1 queueing */
                                s->wait_us[v] = (s->backlog[v] / rate + (1.0 / rate) * rho / (1 - rho)) * 1e6;
                                if (s->wait_us[v] > s->max_wait_us && s->demand[v] > 0)
                                        s->max_wait_us = s->wait_us[v];
                        }
                        /* SPDK's reactors without threads sleep in interrupt mode; the others poll */
                        s->sidecore_seconds += (s->rule == R_SPDK ? peer_spdk_polling(s) : s->nsc) * dt;
                        s->overloaded += over;
                        s->intervals++;
                        switch (s->rule) {
                        case R_ELVIS: rule_elvis(s, now, decisions); break;
                        case R_IOCM: peer_iocm_step(s); break;
                        case R_OVS: peer_ovs_step(s, now + t->interval_ms); break;
                        case R_SPDK: peer_spdk_step(s, now + t->interval_ms); break;
                        default: break;
                        }
                        s->epoch++;
                }
        s->total_s = now / 1000.0;
}

struct result {
        double sidecore_seconds, overload_pct, max_wait_us, changes_per_min, served_share;
        unsigned moves, final_sidecores;
};

static struct result simulate(const struct trace *t, enum rule r, FILE *decisions)
{
        struct sim *s = calloc(1, sizeof(*s));
        struct result res;
        double off = 0, srv = 0;

        if (!s)
                die("out of memory", NULL);
        s->t = t;
        s->rule = r;
        run(s, decisions);
        for (unsigned v = 0; v < t->nvms; v++) {
                off += s->vm_offered[v];
                srv += s->vm_served[v];
        }
        res = (struct result){ .sidecore_seconds = s->sidecore_seconds,
                               .overload_pct = 100.0 * s->overloaded / (s->intervals ? s->intervals : 1),
                               .max_wait_us = s->max_wait_us, .moves = s->moves,
                               .changes_per_min = s->total_s > 0 ? s->changes * 60.0 / s->total_s : 0,
                               .served_share = off > 0 ? srv / off : 1, .final_sidecores = s->nsc };
        free(s);
        return res;
}

static double expect_num(const struct trace *t, const char *k, double dflt)
{
        json_t *v = json_object_get(t->expect, k);
        return v ? json_number_value(v) : dflt;
}

/* The trace's "expect" block against ELVIS's figures; returns the number of failures. */
static int check(const struct trace *t, const struct result *res)
{
        const struct result *e = &res[R_ELVIS];
        double best = res[R_IOCM].overload_pct < res[R_SPDK].overload_pct ? res[R_IOCM].overload_pct
                                                                            : res[R_SPDK].overload_pct;
        int fails = 0;

#define EXPECT(cond, ...) do { if (!(cond)) { fprintf(stderr, "%s: ", t->name); fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); fails++; } } while (0)
        EXPECT(e->sidecore_seconds < res[R_STATIC].sidecore_seconds || !expect_num(t, "saves_cpu", 1),
               "ELVIS used %.1f sidecore-seconds, static max %.1f", e->sidecore_seconds, res[R_STATIC].sidecore_seconds);
        EXPECT(e->overload_pct <= expect_num(t, "max_overload_pct", 100), "ELVIS overloaded %.1f%% of intervals",
               e->overload_pct);
        /* no more overload than the rules that scale too (static set-ups never do) */
        EXPECT(e->overload_pct <= best + 2.0, "ELVIS overloaded %.1f%% of intervals, a scaling reference rule %.1f%%",
               e->overload_pct, best);
        EXPECT(e->moves <= res[R_OVS].moves || e->moves <= expect_num(t, "max_moves", 0),
               "ELVIS moved %u queues, OVS auto-lb %u", e->moves, res[R_OVS].moves);
        EXPECT(e->changes_per_min <= expect_num(t, "max_changes_per_min", 1e9), "ELVIS made %.1f changes per minute",
               e->changes_per_min);
        EXPECT(e->max_wait_us <= expect_num(t, "max_wait_us", 1e18), "ELVIS's worst wait %.0f us", e->max_wait_us);
        EXPECT(e->final_sidecores <= expect_num(t, "final_sidecores_max", 1e9), "ELVIS ended with %u sidecores",
               e->final_sidecores);
        EXPECT(e->final_sidecores >= expect_num(t, "final_sidecores_min", 0), "ELVIS ended with %u sidecores",
               e->final_sidecores);
#undef EXPECT
        return fails;
}

enum format { F_TEXT, F_MARKDOWN, F_TABLE };

static void print(FILE *out, enum format f, const struct trace *t, const struct result *res, bool first)
{
        if (f == F_MARKDOWN)
                fprintf(out, "\n### %s\n\n| policy | sidecore-seconds | intervals overloaded | max wait (us) | queue moves "
                             "| changes/min | served |\n|---|---|---|---|---|---|---|\n", t->name);
        else if (f == F_TABLE && first)
                fprintf(out, "| trace | policy | sidecore-seconds | intervals overloaded | max wait (us) | queue moves "
                             "| changes/min | served |\n|---|---|---|---|---|---|---|---|\n");
        else if (f == F_TEXT)
                fprintf(out, "%-22s %-16s %10s %8s %12s %6s %8s\n", t->name, "policy", "core-s", "overld%", "max wait us",
                        "moves", "chg/min");
        for (int r = 0; r < R_MAX; r++) {
                if (f == F_TEXT)
                        fprintf(out, "%-22s %-16s %10.1f %8.1f %12.0f %6u %8.1f\n", "", rule_names[r],
                                res[r].sidecore_seconds, res[r].overload_pct, res[r].max_wait_us, res[r].moves,
                                res[r].changes_per_min);
                else
                        fprintf(out, "%s%s%s| %s | %.1f | %.1f%% | %.0f | %u | %.1f | %.1f%% |\n",
                                f == F_TABLE ? "| " : "", f == F_TABLE && !r ? t->name : "", f == F_TABLE ? " " : "",
                                rule_names[r], res[r].sidecore_seconds, res[r].overload_pct, res[r].max_wait_us,
                                res[r].moves, res[r].changes_per_min, 100 * res[r].served_share);
        }
}

/* 0 when the file holds exactly text; else reports the first line that differs. */
static int golden(const char *path, const char *text)
{
        FILE *f = fopen(path, "r");
        char *want = NULL;
        size_t cap = 0, len;
        unsigned line = 1;

        if (!f) {
                fprintf(stderr, "elvis-sim: cannot read golden %s: %s\n", path, strerror(errno));
                return 1;
        }
        len = getdelim(&want, &cap, '\0', f) > 0 ? strlen(want) : 0;
        fclose(f);
        if (len == strlen(text) && !memcmp(want, text, len)) {
                free(want);
                return 0;
        }
        for (size_t i = 0; i < len && text[i] && want[i] == text[i]; i++)
                line += want[i] == '\n';
        fprintf(stderr, "elvis-sim: output differs from %s at line %u; if the change is meant, regenerate it with the "
                        "same arguments minus --golden and --check, and say why in the commit\n", path, line);
        free(want);
        return 1;
}

int main(int argc, char **argv)
{
        bool decisions = false, checking = false;
        enum format format = F_TEXT;
        const char *golden_path = NULL;
        char *text = NULL;
        size_t text_len = 0;
        FILE *out = stdout;
        int status = 0, ntraces = 0;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--golden")) {
                        if (++i == argc)
                                die("--golden needs a file", NULL);
                        golden_path = argv[i];
                }
        }
        if (golden_path && !(out = open_memstream(&text, &text_len)))
                die("out of memory", NULL);
        for (int i = 1; i < argc; i++) {
                struct trace *t;
                struct result res[R_MAX];
                if (!strcmp(argv[i], "--decisions")) {
                        decisions = true;
                        continue;
                }
                if (!strcmp(argv[i], "--markdown") || !strcmp(argv[i], "--table")) {
                        format = argv[i][2] == 'm' ? F_MARKDOWN : F_TABLE;
                        continue;
                }
                if (!strcmp(argv[i], "--check")) {
                        checking = true;
                        continue;
                }
                if (!strcmp(argv[i], "--golden")) {
                        i++;
                        continue;
                }
                if (argv[i][0] == '-')
                        die("unknown option", argv[i]);
                t = calloc(1, sizeof(*t));
                if (!t)
                        die("out of memory", NULL);
                load_trace(argv[i], t);
                for (int r = 0; r < R_MAX; r++)
                        res[r] = simulate(t, (enum rule)r, decisions && r == R_ELVIS ? out : NULL);
                print(out, format, t, res, ntraces++ == 0);
                if (checking && t->expect && check(t, res))
                        status = 1;
                json_decref(t->expect);
                elvis_topology_free(&t->topo);
                free(t);
        }
        if (!ntraces)
                die("no trace given", "elvis-sim [--decisions] [--markdown | --table] [--check] [--golden FILE] TRACE.json...");
        if (golden_path) {
                fclose(out);
                status |= golden(golden_path, text);
                free(text);
        }
        return status;
}
