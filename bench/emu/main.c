/* elvis-guest: command-line front end of the guest emulator.
 *   elvis-guest --socket PATH [--socket PATH...] [--mode stream|rr|rx|hostile] [options]
 * Prints one JSON line per device with what it measured; exits non-zero on failure.
 * SIGINT or SIGTERM ends the run early, with its figures printed.
 * Several sockets (stream and rx modes) are driven round robin by this one process, as
 * if each guest had a vCPU of its own: no ring waits for a time slice of its guest. */
#include "emu.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* SIGINT or SIGTERM: stop sending and report, as at the end of --seconds */
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
        (void)sig;
        stop_requested = 1;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

static double cpu_seconds(void)
{
        struct rusage ru;

        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
               ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* One JSON line for device e; cpus is its share of this process's CPU time. */
static void print_result(struct emu *e, const char *mode, double secs, double cpus, const struct emu_opts *o,
                         const uint64_t *lat, size_t nlat, uint64_t after_idle_ns)
{
        uint64_t tx = 0, rx = 0, kicks = 0, irqs = 0, lost = 0, dup = 0, kick_ns = 0;

        for (unsigned i = 0; i < e->nqp; i++) {
                emu_drain_irqs(e, &e->qp[i].rx);
                emu_drain_irqs(e, &e->qp[i].tx);
                tx += e->qp[i].tx_packets;
                rx += e->qp[i].rx_packets;
                kicks += e->qp[i].tx.kicks + e->qp[i].rx.kicks;
                kick_ns += e->qp[i].tx.kick_ns + e->qp[i].rx.kick_ns;
                irqs += e->qp[i].tx.interrupts + e->qp[i].rx.interrupts;
                lost += e->qp[i].lost;
                dup += e->qp[i].dup_or_reordered;
        }
        printf("{\"mode\": \"%s\", \"socket\": \"%s\", \"seconds\": %.3f, \"tx_packets\": %llu, \"rx_packets\": %llu, "
               "\"tx_pps\": %.0f, \"rx_pps\": %.0f, \"kicks\": %llu, \"interrupts\": %llu, "
               "\"kicks_per_1000_packets\": %.3f, \"interrupts_per_1000_packets\": %.3f, \"lost\": %llu, "
               "\"dup_or_reordered\": %llu, \"in_flight\": %llu, \"event_idx\": %s, \"mrg_rxbuf\": %s, "
               "\"cpu_seconds\": %.3f, \"exit_cost_ns\": %llu, \"irq_cost_ns\": %llu, \"kick_ns\": %llu",
               mode, e->o.socket, secs, (unsigned long long)tx, (unsigned long long)rx, (double)tx / secs,
               (double)rx / secs, (unsigned long long)kicks, (unsigned long long)irqs,
               tx + rx ? 1000.0 * (double)kicks / (double)(tx + rx) : 0.0,
               tx + rx ? 1000.0 * (double)irqs / (double)(tx + rx) : 0.0, (unsigned long long)lost,
               (unsigned long long)dup, (unsigned long long)(e->qp[0].tx_seq - e->qp[0].rx_expect),
               emu_has_event_idx(e) ? "true" : "false", (e->features & (1ull << 15)) ? "true" : "false", cpus,
               (unsigned long long)o->exit_cost_ns, (unsigned long long)o->irq_cost_ns, (unsigned long long)kick_ns);
        if (e->log) {
                uint64_t checked = 0, missing = 0;
                for (unsigned i = 0; i < e->nqp; i++) {
                        checked += e->qp[i].log_checked;
                        missing += e->qp[i].log_missing;
                }
                printf(", \"log_checked\": %llu, \"log_missing\": %llu, \"log_stray\": %llu",
                       (unsigned long long)checked, (unsigned long long)missing,
                       (unsigned long long)emu_log_stray(e));
        }
        if (nlat) {
                double sum = 0;
                for (size_t i = 0; i < nlat; i++)
                        sum += (double)lat[i];
                printf(", \"rr_count\": %zu, \"mean_ns\": %.0f, \"p50_ns\": %llu, \"p99_ns\": %llu, \"p999_ns\": %llu",
                       nlat, sum / (double)nlat, (unsigned long long)lat[nlat / 2],
                       (unsigned long long)lat[nlat * 99 / 100], (unsigned long long)lat[nlat * 999 / 1000]);
        }
        if (after_idle_ns)
                printf(", \"after_idle_ns\": %llu", (unsigned long long)after_idle_ns);
        printf("}\n");
}

/* One request on the first queue and its reply: 1 and *ret_ns its latency, 0 when the
 * transmit ring was full (reclaimed, try again), -1 when no reply came within 2 s. */
static int rr_once(struct emu *ep, unsigned size, bool poll_wait, uint64_t *ret_ns)
{
        uint64_t t0 = emu_now_ns(), deadline = t0 + 2000000000ull;

        emu_irq(ep, &ep->qp[0].rx, !poll_wait);
        if (!emu_tx(ep, 0, 1, size)) {
                emu_tx_reclaim(ep, 0);
                return 0;
        }
        while (!emu_rx(ep, 0) && emu_now_ns() < deadline)
                if (!poll_wait)
                        emu_wait_irq(ep, &ep->qp[0].rx, 100);
        if (emu_now_ns() >= deadline) {
                fprintf(stderr, "elvis-guest: no reply within 2 s\n");
                return -1;
        }
        *ret_ns = emu_now_ns() - t0;
        emu_tx_reclaim(ep, 0);
        return 1;
}

static void usage(void)
{
        fprintf(stderr,
                "usage: elvis-guest --socket PATH [--socket PATH...] [--mode stream|rr|rx|hostile] [--kind K]\n"
                "       [--linger S] [--seconds S] [--count N] [--idle S]\n"
                "       [--size B] [--queues N] [--ring N] [--mem-mb N] [--cpu N] [--wait poll|interrupt]\n"
                "       [--exit-cost-ns N] [--irq-cost-ns N] [--no-event-idx] [--no-mrg] [--no-indirect] [--batch N] [--work-ns N]\n"
                "       [--dirty-log]   (stream: dirty logging on for the middle third, as a migration does)\n"
                "       [--idle S]      (rr: then S s idle, every socket still connected, and one more request,\n"
                "                        timed apart as after_idle_ns; prints {\"idle\": true} when the idle time starts;\n"
                "                        several sockets: requests on the first, the others connected and idle)\n"
                "  --exit-cost-ns: a kick takes N ns of guest time in all (the eventfd write spun up to N);\n"
                "  --irq-cost-ns: each interrupt taken adds N ns (0: posted interrupts)\n");
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "socket", 1, 0, 's' }, { "mode", 1, 0, 'm' }, { "seconds", 1, 0, 'S' }, { "count", 1, 0, 'n' },
                { "size", 1, 0, 'z' }, { "queues", 1, 0, 'q' }, { "ring", 1, 0, 'r' }, { "mem-mb", 1, 0, 'M' },
                { "cpu", 1, 0, 'c' }, { "wait", 1, 0, 'w' }, { "exit-cost-ns", 1, 0, 'x' }, { "kind", 1, 0, 'k' },
                { "no-event-idx", 0, 0, 'E' }, { "no-mrg", 0, 0, 'G' }, { "no-indirect", 0, 0, 'I' },
                { "batch", 1, 0, 'b' }, { "work-ns", 1, 0, 'W' }, { "linger", 1, 0, 'L' }, { "help", 0, 0, 'h' },
                { "dirty-log", 0, 0, 'D' }, { "irq-cost-ns", 1, 0, 'X' }, { "idle", 1, 0, 'i' },
                { 0, 0, 0, 0 },
        };
        struct emu_opts o = { .queues = 1, .ring = 256 };
        const char *mode = "stream", *wait = "interrupt", *kind = NULL;
        double seconds = 2.0, idle = 0;
        unsigned long long count = 0, work_ns = 0;
        unsigned size = 64, batch = 32;
        int cpu = -1, c;
        bool dirty_log = false;
        unsigned log_phase = 0;         /* --dirty-log: 0 before, 1 on, 2 off again */
        static struct emu devs[EMU_MAX_DEVICES];
        const char *sockets[EMU_MAX_DEVICES];
        unsigned ndev = 0;
        struct emu *ep = &devs[0];
        uint64_t start, end, stopped = 0, *lat = NULL, after_idle = 0;
        size_t nlat = 0;
        double cpu0, secs, cpus;
        int rc = 0;

        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 's':
                        if (ndev == EMU_MAX_DEVICES) {
                                fprintf(stderr, "elvis-guest: at most %u sockets\n", EMU_MAX_DEVICES);
                                return 2;
                        }
                        sockets[ndev++] = optarg;
                        break;
                case 'm': mode = optarg; break;
                case 'S': seconds = atof(optarg); break;
                case 'n': count = strtoull(optarg, NULL, 10); break;
                case 'z': size = (unsigned)atoi(optarg); break;
                case 'q': o.queues = (unsigned)atoi(optarg); break;
                case 'r': o.ring = (unsigned)atoi(optarg); break;
                case 'M': o.mem_mb = (unsigned)atoi(optarg); break;
                case 'c': cpu = atoi(optarg); break;
                case 'w': wait = optarg; break;
                case 'x': o.exit_cost_ns = strtoull(optarg, NULL, 10); break;
                case 'X': o.irq_cost_ns = strtoull(optarg, NULL, 10); break;
                case 'k': kind = optarg; break;
                case 'E': o.no_event_idx = true; break;
                case 'G': o.no_mrg = true; break;
                case 'I': o.no_indirect = true; break;
                case 'b': batch = (unsigned)atoi(optarg); break;
                case 'W': work_ns = strtoull(optarg, NULL, 10); break;
                case 'L': o.linger_ms = (unsigned)(atof(optarg) * 1000); break;
                case 'D': dirty_log = true; break;
                case 'i': idle = atof(optarg); break;
                default: usage(); return 2;
                }
        }
        if (!ndev || seconds <= 0 || seconds > 3600 || !batch ||
            (ndev > 1 && strcmp(mode, "stream") && strcmp(mode, "rx") && !(idle > 0 && !strcmp(mode, "rr")))) {
                usage();
                return 2;
        }
        emu_pin_cpu(cpu);
        if (!strcmp(mode, "hostile")) {
                if (!kind) {
                        usage();
                        return 2;
                }
                o.socket = sockets[0];
                return emu_hostile(ep, &o, kind, 2000);
        }
        for (unsigned d = 0; d < ndev; d++) {
                o.socket = sockets[d];
                if (emu_open(&devs[d], &o) < 0) {
                        printf("{\"error\": \"%s: %s\"}\n", sockets[d], devs[d].error);
                        for (unsigned k = 0; k <= d; k++)
                                emu_close(&devs[k]);
                        return 1;
                }
        }
        signal(SIGINT, on_stop);
        signal(SIGTERM, on_stop);
        cpu0 = cpu_seconds();
        start = emu_now_ns();
        end = start + (uint64_t)(seconds * 1e9);
        if (!strcmp(mode, "stream") || !strcmp(mode, "rx")) {
                bool tx = !strcmp(mode, "stream");
                unsigned long long sent = 0;
                /* a busy guest polls its rings (NAPI): no interrupts wanted */
                for (unsigned d = 0; d < ndev; d++)
                        for (unsigned i = 0; i < devs[d].nqp; i++) {
                                emu_irq(&devs[d], &devs[d].qp[i].rx, false);
                                emu_irq(&devs[d], &devs[d].qp[i].tx, false);
                        }
                while (emu_now_ns() < end && (!count || sent < count) && !stop_requested) {
                        /* the middle third of the count (or of the time) runs with logging on */
                        unsigned third = count ? (unsigned)(3 * sent / count) : (unsigned)(3 * (emu_now_ns() - start) / (end - start));
                        if (dirty_log && log_phase < 2 && third > log_phase) {
                                bool on = log_phase == 0;
                                for (unsigned d = 0; d < ndev; d++)
                                        if (emu_log(&devs[d], on) < 0) {
                                                printf("{\"error\": \"%s: %s\"}\n", sockets[d], devs[d].error);
                                                rc = 1;
                                        }
                                if (rc)
                                        break;
                                log_phase++;
                        }
                        for (unsigned d = 0; d < ndev; d++) {
                                struct emu *e = &devs[d];
                                for (unsigned i = 0; i < e->nqp; i++) {
                                        if (tx) {
                                                unsigned want = batch;
                                                if (count && count - sent < want)
                                                        want = (unsigned)(count - sent);
                                                unsigned n = emu_tx(e, i, want, size);
                                                sent += n;
                                                emu_spin_ns(n * work_ns);    /* the guest stack's cost (modelled) */
                                                emu_tx_reclaim(e, i);
                                        }
                                        emu_rx(e, i);
                                }
                        }
                }
                /* the rate is over the sending time; then collect what is still in flight
                 * (bounded): every transmit buffer back, and, from a back end that
                 * reflects them, the frames still on their way to the receive ring (a
                 * 200 ms lull ends the wait: a sink reflects nothing, and a loaded host
                 * can hold a sidecore off for tens of milliseconds) */
                stopped = emu_now_ns();
                for (uint64_t stop = stopped + 1000000000ull, last_rx = stopped; tx && emu_now_ns() < stop;) {
                        bool done = true, echo_done = true;
                        uint64_t now;
                        for (unsigned d = 0; d < ndev; d++)
                                for (unsigned i = 0; i < devs[d].nqp; i++) {
                                        struct emu_qp *q = &devs[d].qp[i];
                                        uint64_t before = q->rx_packets;
                                        emu_tx_reclaim(&devs[d], i);
                                        emu_rx(&devs[d], i);
                                        if (q->rx_packets != before)
                                                last_rx = emu_now_ns();
                                        done &= q->tx.nfree == q->tx.num;
                                        echo_done &= q->rx_expect == q->tx_seq;
                                }
                        now = emu_now_ns();
                        if (done && (echo_done || now - last_rx > 200000000ull))
                                break;
                }
        } else if (!strcmp(mode, "rr")) {
                bool poll_wait = !strcmp(wait, "poll");
                size_t cap = 1 << 20;
                int r;
                lat = malloc(cap * sizeof(*lat));
                while (emu_now_ns() < end && (!count || nlat < count) && nlat < cap && !stop_requested) {
                        r = rr_once(ep, size, poll_wait, &lat[nlat]);
                        if (r < 0)
                                break;
                        nlat += (size_t)r;
                }
                qsort(lat, nlat, sizeof(*lat), cmp_u64);
                if (idle > 0) {
                        struct timespec ts = { (time_t)idle, (long)((idle - (double)(time_t)idle) * 1e9) };

                        /* the guest sleeps: no request and no polling, every socket connected */
                        stopped = emu_now_ns();
                        printf("{\"idle\": true}\n");
                        fflush(stdout);
                        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                                ;
                        while ((r = rr_once(ep, size, poll_wait, &after_idle)) == 0)
                                ;
                        if (r < 0)
                                rc = 1;
                }
        } else {
                usage();
                rc = 2;
        }
        secs = (double)((stopped ? stopped : emu_now_ns()) - start) / 1e9;
        cpus = cpu_seconds() - cpu0;
        for (unsigned d = 0; rc == 0 && d < ndev; d++)
                print_result(&devs[d], mode, secs, cpus / ndev, &o, lat, nlat, d ? 0 : after_idle);
        free(lat);
        for (unsigned d = 0; d < ndev; d++)
                emu_close(&devs[d]);
        return rc;
}
