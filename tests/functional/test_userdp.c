/* Functional tests of the user-space data plane with the guest emulator: lossless
 * loopback, every hostile ring and control message while another VM keeps streaming on
 * the same sidecore, stalled control connections, live queue moves under sequence
 * numbered traffic, adaptive polling and sleep, vanilla mode, multiqueue, reconnects.
 * ELVIS_TEST_DATAPLANE=user-process runs them against elvis-dataplane instead of the
 * in-process plane (ctest test_userdp_process). */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GUEST ELVIS_BUILD_DIR "/bench/elvis-guest"
#define TOPO ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml"

static struct daemon d;
static pid_t plane;             /* the process that serves the devices: the manager, or elvis-dataplane */

static bool separate(void)
{
        const char *p = getenv("ELVIS_TEST_DATAPLANE");

        return p && strcmp(p, "user-process") == 0;
}

static void start_env(bool xml, const char *env)
{
        daemon_init(&d, ELVIS_MANAGER);
        if (env)
                daemon_env(&d, env);    /* elvis-dataplane inherits it */
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, separate() ? "user-process" : "user");
        if (xml) {
                /* more CPUs than the host has: sidecores run unpinned, placement has room */
                daemon_arg(&d, "--topology-xml");
                daemon_arg(&d, TOPO);
        }
        cr_assert_eq(daemon_start(&d), 0);
        plane = separate() ? daemon_dataplane_pid(&d) : d.pid;
        cr_assert_gt(plane, 0, "no data plane serves");
}

static void start(bool xml) { start_env(xml, NULL); }
static void setup(void) { start(false); }
static void setup_xml(void) { start(true); }
/* a watchdog that lets a blocked call on a VMM's fd sleep for 8 s: a wedged sidecore */
static void setup_wedge(void) { start_env(true, "ELVIS_DP_WATCHDOG_MS=8000"); }

static void teardown(void)
{
        if (daemon_alive(&d))
                cr_expect_eq(daemon_stop(&d), 0, "clean exit (and no leaks under ASan)");
        if (separate() && plane > 0)
                dataplane_end(plane);
        daemon_cleanup(&d);
}

TestSuite(userdp, .init = setup, .fini = teardown, .timeout = 180);
TestSuite(userdp_xml, .init = setup_xml, .fini = teardown, .timeout = 180);
TestSuite(userdp_wedge, .init = setup_wedge, .fini = teardown, .timeout = 120);

/* in a network namespace of its own: the taps it makes and feeds touch no host interface */
static void setup_netns(void)
{
        cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
        start(false);
}

TestSuite(userdp_netns, .init = setup_netns, .fini = teardown, .timeout = 180);

static char *add_vm(const char *name, const char *device, const char *exitless)
{
        char body[256], *sock;
        struct resp r;

        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"devices\":[%s],\"policy\":{\"exitless\":\"%s\"}}", name,
                 device, exitless);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        sock = strdup(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0),
                                                        "socket")));
        resp_free(&r);
        return sock;
}

/* Runs the emulator and returns its JSON verdict. */
static json_t *guest(const char *sock, const char *const *args, int *status)
{
        const char *argv[32] = { GUEST, "--socket", sock };
        char *out, *err;
        size_t n = 3;
        json_t *j;
        int st;

        for (size_t i = 0; args[i] && n < 31; i++)
                argv[n++] = args[i];
        argv[n] = NULL;
        st = run_cmd(argv, NULL, &out, &err);
        j = json_loads(out, 0, NULL);
        if (!j)
                cr_log_error("elvis-guest printed no JSON (exit %d):\n%s%s", st, out, err);
        free(out);
        free(err);
        if (status)
                *status = st;
        return j;
}

#define GUEST_RUN(sock, st, ...) guest(sock, (const char *const[]){ __VA_ARGS__, NULL }, st)

static long long n(json_t *j, const char *k)
{
        return (long long)json_integer_value(json_object_get(j, k));
}

static json_t *queue(unsigned index)
{
        struct resp r;
        json_t *q;

        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        q = json_incref(json_array_get(json_object_get(r.json, "queues"), index));
        resp_free(&r);
        return q;
}

static int count_fds(pid_t pid)
{
        char path[64];
        DIR *dir;
        int c = 0;

        snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
        dir = opendir(path);
        if (!dir)
                return -1;
        while (readdir(dir))
                c++;
        closedir(dir);
        return c;
}

Test(userdp, lossless_loopback_stream)
{
        char *sock = add_vm("a", "{\"backend\":\"loopback\"}", "always");
        int st;
        json_t *j = GUEST_RUN(sock, &st, "--mode", "stream", "--count", "300000", "--seconds", "30");

        cr_assert_eq(st, 0);
        cr_assert_eq(n(j, "tx_packets"), 300000);
        cr_assert_eq(n(j, "rx_packets"), 300000, "every packet came back");
        cr_assert_eq(n(j, "lost"), 0);
        cr_assert_eq(n(j, "dup_or_reordered"), 0);
        cr_assert(json_is_true(json_object_get(j, "event_idx")));
        cr_assert_lt(n(j, "kicks"), 10, "polled: the guest stops kicking (%lld kicks)", n(j, "kicks"));
        json_decref(j);
        free(sock);
}

/* Mappings of the daemon whose file name contains name (a memfd shows as /memfd:NAME). */
static int mappings_of(pid_t pid, const char *name)
{
        char path[64], line[512];
        FILE *f;
        int c = 0;

        snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
        f = fopen(path, "r");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (strstr(line, name))
                        c++;
        fclose(f);
        return c;
}

/* The daemon drops a front end's log when it disconnects: polled, as nothing announces
 * that the control thread has handled the hang-up (5 s at most). */
static bool log_unmapped(const char *name)
{
        for (int i = 0; i < 500; i++) {
                if (mappings_of(d.pid, name) == 0)
                        return true;
                usleep(10000);
        }
        return false;
}

/* Dirty logging switched on and off while frames stream (what QEMU does around a live
 * migration): no frame lost or repeated, every receive buffer the device filled and its
 * used entry marked in the log while it was on, no bit outside guest memory; also with
 * two queue pairs (one log, installed in both) and without mergeable buffers. */
Test(userdp, dirty_log_toggled_under_traffic)
{
        char *one = add_vm("a", "{\"backend\":\"loopback\"}", "always");
        char *two = add_vm("b", "{\"backend\":\"loopback\",\"queues\":2}", "always");
        const char *const cases[][3] = { { "1", "", "" }, { "2", "", "" }, { "1", "--no-mrg", "" } };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *sock = cases[i][0][0] == '2' ? two : one;
                int st;
                json_t *j = cases[i][1][0] ? GUEST_RUN(sock, &st, "--mode", "stream", "--count", "300000", "--seconds",
                                                       "30", "--dirty-log", "--queues", cases[i][0], cases[i][1])
                                           : GUEST_RUN(sock, &st, "--mode", "stream", "--count", "300000", "--seconds",
                                                       "30", "--dirty-log", "--queues", cases[i][0]);

                cr_assert_not_null(j);
                cr_assert_eq(st, 0, "case %zu: %s", i, json_dumps(j, 0));
                cr_assert_eq(n(j, "rx_packets"), 300000, "case %zu: every packet came back", i);
                cr_assert_eq(n(j, "lost"), 0, "case %zu", i);
                cr_assert_eq(n(j, "dup_or_reordered"), 0, "case %zu", i);
                cr_assert_gt(n(j, "log_checked"), 50000, "case %zu: the middle third ran logged: %s", i,
                             json_dumps(j, 0));
                cr_assert_eq(n(j, "log_missing"), 0, "case %zu: entries whose pages are not in the log", i);
                cr_assert_eq(n(j, "log_stray"), 0, "case %zu: bits outside guest memory", i);
                json_decref(j);
                cr_assert(log_unmapped("elvis-emu-log"), "case %zu: the log is still mapped after the disconnect", i);
        }
        free(one);
        free(two);
}

Test(userdp, multiqueue_and_reconnect)
{
        char *sock = add_vm("mq", "{\"backend\":\"loopback\",\"queues\":2}", "always");
        json_t *j, *q0, *q1;
        int st;

        for (int round = 0; round < 3; round++) {       /* the front end may come back */
                j = GUEST_RUN(sock, &st, "--mode", "stream", "--queues", "2", "--count", "50000", "--seconds", "20");
                cr_assert_eq(st, 0, "round %d", round);
                cr_assert_eq(n(j, "rx_packets"), 50000, "round %d: the count is over both queue pairs", round);
                cr_assert_eq(n(j, "lost"), 0);
                json_decref(j);
        }
        q0 = queue(0);
        q1 = queue(1);
        cr_assert_gt(n(q0, "tx_packets"), 60000, "both queue pairs carried traffic");
        cr_assert_gt(n(q1, "tx_packets"), 60000, "both queue pairs carried traffic");
        cr_assert_eq(n(q0, "tx_packets") + n(q1, "tx_packets"), 150000);
        json_decref(q0);
        json_decref(q1);
        free(sock);
}

/* Front ends that come and go while the sidecore goes to sleep and wakes up, each session
 * short: every frame sent must come back before the guest leaves. (It found the emulator
 * leaving before the last reflected frames arrived; the sidecore race of a queue becoming
 * live just before the sidecore sleeps shows up under load in hostile_rings_hurt_nobody_else.) */
Test(userdp, short_sessions_on_a_sleeping_sidecore)
{
        char *sock = add_vm("short", "{\"backend\":\"loopback\"}", "auto");
        json_t *j;
        int st;

        for (int round = 0; round < 40; round++) {
                j = GUEST_RUN(sock, &st, "--mode", "stream", "--count", "64", "--seconds", "10");
                cr_assert_eq(st, 0, "round %d", round);
                cr_assert_eq(n(j, "rx_packets"), 64, "round %d: %lld of 64 came back: %s", round, n(j, "rx_packets"), json_dumps(j, 0));
                json_decref(j);
        }
        free(sock);
}

Test(userdp, vanilla_takes_kicks_and_no_sidecore)
{
        char *sock = add_vm("v", "{\"backend\":\"loopback\"}", "never");
        int st;
        json_t *j = GUEST_RUN(sock, &st, "--mode", "stream", "--count", "100000", "--seconds", "20"), *q;

        cr_assert_eq(st, 0);
        cr_assert_eq(n(j, "lost"), 0);
        q = queue(0);
        cr_assert(json_is_null(json_object_get(q, "sidecore")));
        cr_assert_gt(n(q, "kicks"), 10, "notification driven: %lld kicks", n(q, "kicks"));
        json_decref(q);
        json_decref(j);
        free(sock);
}

/* A paced stream, one frame every 20 us of guest work: a vanilla thread that sleeps as
 * soon as its ring is empty is woken by a kick for nearly every frame; with a 50 us
 * busy-poll window (vhost-net's busyloop_timeout) it is still polling when the next frame
 * comes, so the guest kicks far less. Counted on both sides: the guest's kicks and the
 * queue's. */
static void paced_vanilla_stream(const char *sock, unsigned busyloop_us, long long *ret_guest, long long *ret_queue)
{
        char body[64], count[16];
        struct resp r;
        json_t *j, *q;
        long long before;
        int st;

        snprintf(body, sizeof(body), "{\"vanilla_busyloop_us\":%u}", busyloop_us);
        cr_assert_eq(http_json(&d, "PUT", "/v1/policy", body, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(r.json, "vanilla_busyloop_us")), busyloop_us);
        resp_free(&r);
        q = queue(0);
        before = n(q, "kicks");
        json_decref(q);
        snprintf(count, sizeof(count), "%d", 5000);
        j = GUEST_RUN(sock, &st, "--mode", "stream", "--count", count, "--batch", "1", "--work-ns", "20000",
                      "--seconds", "30", "--cpu", "0");
        cr_assert_eq(st, 0);
        cr_assert_eq(n(j, "rx_packets"), 5000, "every frame came back: %s", json_dumps(j, 0));
        cr_assert_eq(n(j, "lost"), 0);
        *ret_guest = n(j, "kicks");
        json_decref(j);
        q = queue(0);
        *ret_queue = n(q, "kicks") - before;
        json_decref(q);
}

/* The vanilla thread on CPU 1, the guest on CPU 0: a busy-polling thread that shares
 * its CPU with the guest stops polling whenever the guest wants to run (as vhost-net's
 * does at need_resched()), which is right there but not what this test measures. */
static void pin_vanilla(void)
{
        char path[320], comm[32];
        unsigned pinned = 0;
        cpu_set_t one;
        DIR *dir;
        struct dirent *e;

        CPU_ZERO(&one);
        CPU_SET(1, &one);
        snprintf(path, sizeof(path), "/proc/%d/task", (int)plane);
        dir = opendir(path);
        cr_assert_not_null(dir);
        while ((e = readdir(dir))) {
                FILE *f;
                snprintf(path, sizeof(path), "/proc/%d/task/%s/comm", (int)plane, e->d_name);
                if (e->d_name[0] == '.' || !(f = fopen(path, "re")))
                        continue;
                if (fgets(comm, sizeof(comm), f) && strcmp(comm, "elvis-vanilla\n") == 0 &&
                    sched_setaffinity(atoi(e->d_name), sizeof(one), &one) == 0)
                        pinned++;
                fclose(f);
        }
        closedir(dir);
        cr_assert_eq(pinned, 1, "one vanilla thread pinned (%u)", pinned);
}

Test(userdp, vanilla_busyloop_takes_fewer_kicks)
{
        char *sock;
        long long guest_off, queue_off, guest_on, queue_on;
        struct resp r;

        if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
                cr_skip_test("needs 2 CPUs: the guest on one, the vanilla thread on the other");
        sock = add_vm("vb", "{\"backend\":\"loopback\"}", "never");
        pin_vanilla();
        paced_vanilla_stream(sock, 0, &guest_off, &queue_off);
        paced_vanilla_stream(sock, 50, &guest_on, &queue_on);
        cr_log_info("kicks for 5000 paced frames: %lld (queue %lld) without busy polling, %lld (queue %lld) with 50 us",
                    guest_off, queue_off, guest_on, queue_on);
        /* Unloaded, nearly every one of the 5000 frames takes a kick without the window and
         * under 1% with it. On a loaded machine the thread is slow to get back to sleep, so
         * fewer frames find it asleep, and a polling thread gives its CPU up sooner: the
         * bounds leave room for that, and still fail if the window changes nothing. */
        cr_assert_gt(guest_off, 250, "without busy polling the thread sleeps between frames: %lld kicks", guest_off);
        cr_assert_lt(guest_on * 3, guest_off, "with it, far fewer kicks: %lld against %lld", guest_on, guest_off);
        cr_assert_lt(queue_on * 3, queue_off, "the queue counts them too: %lld against %lld", queue_on, queue_off);
        /* out of range: refused, and the setting stays */
        cr_assert_eq(http_json(&d, "PUT", "/v1/policy", "{\"vanilla_busyloop_us\":100001}", &r), 0);
        cr_assert_eq(r.status, 400, "%s", r.body);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/v1/policy", NULL, &r), 0);
        cr_assert_eq(json_integer_value(json_object_get(r.json, "vanilla_busyloop_us")), 50);
        resp_free(&r);
        free(sock);
}

Test(userdp, adaptive_polling_sleeps_when_idle)
{
        char *sock = add_vm("auto", "{\"backend\":\"loopback\"}", "auto");
        struct resp r;
        json_t *j;
        int st;

        cr_assert_eq(http_json(&d, "PUT", "/v1/policy", "{\"poll_stop_idle_ms\":50,\"poll_start_rate\":100}", &r), 0);
        cr_assert_eq(r.status, 200);
        resp_free(&r);
        j = GUEST_RUN(sock, &st, "--mode", "stream", "--seconds", "1");
        cr_assert_eq(st, 0);
        cr_assert_gt(n(j, "rx_packets"), 1000);
        cr_assert_eq(n(j, "lost"), 0);
        /* busy: the guest kicked only until the queue switched to polling */
        cr_assert_lt(n(j, "kicks") * 1000, n(j, "tx_packets"), "%lld kicks for %lld packets", n(j, "kicks"),
                     n(j, "tx_packets"));
        json_decref(j);
        /* idle: back to notifications, and the sidecore sleeps (bounded wait on a state) */
        for (int i = 0; i < 200; i++) {
                cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
                if (json_is_true(json_object_get(json_array_get(json_object_get(r.json, "sidecores"), 0), "sleeping"))) {
                        resp_free(&r);
                        break;
                }
                resp_free(&r);
                cr_assert_lt(i, 199, "the sidecore never went to sleep");
                usleep(10000);
        }
        json_decref(j = queue(0));
        free(sock);
}

static const char *const kinds[] = { "desc-loop", "chain-too-long", "indirect-oob", "indirect-nested", "indirect-bad-len",
                                     "desc-oob", "len-overflow", "avail-idx-jump", "head-oob", "rx-readonly", "ring-oob",
                                     "mem-bigger-than-fd", "mem-offset-past-eof", "bad-num", "unknown-request",
                                     "oversized-payload", "fd-flood", NULL };

/* What a hostile VMM does with its file descriptors and its memory. */
static const char *const vmm_kinds[] = { "call-pipe", "err-pipe", "kick-lowat", "wrong-fd-kinds", "call-made-blocking",
                                         "truncate-memory", NULL };

/* Runs one hostile kind against "evil" while "good", on the same sidecore, streams
 * sequence-numbered frames and the REST API is asked every 100 ms: good loses and
 * reorders nothing, no API answer takes a second, and the daemon lives. */
static void hostile_next_to_victim(const char *evil, const char *good, const char *kind, double *ret_p99)
{
        struct api_probe probe;
        pid_t pid = fork();
        int st, wst;
        json_t *h, *g;

        if (pid == 0) {
                const char *argv[] = { GUEST, "--socket", good, "--mode", "stream", "--count", "200000",
                                       "--seconds", "20", NULL };
                char *out, *err;
                int rc = run_cmd(argv, NULL, &out, &err);
                json_t *j = json_loads(out, 0, NULL);
                bool ok = rc == 0 && j && n(j, "lost") == 0 && n(j, "dup_or_reordered") == 0 &&
                          n(j, "rx_packets") == 200000;
                if (!ok)        /* what the good guest saw, for the failure message */
                        fprintf(stderr, "good guest (rc %d): %s %s\n", rc, out, err);
                _exit(ok ? 0 : 3);
        }
        api_probe_start(&probe, &d);
        h = GUEST_RUN(evil, &st, "--mode", "hostile", "--kind", kind);
        cr_assert_not_null(h, "%s", kind);
        cr_assert_eq(st, 0, "%s: the back end did not react as it must: %s", kind, json_dumps(h, 0));
        cr_assert_eq(waitpid(pid, &wst, 0), pid);
        api_probe_stop(&probe);
        cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "%s: the good VM lost or reordered traffic meanwhile", kind);
        json_decref(h);
        cr_assert(daemon_alive(&d), "%s killed the daemon", kind);
        cr_assert_gt(probe.n, 0, "%s: the API probe ran", kind);
        cr_assert_eq(probe.failed, 0, "%s: %u API requests failed", kind, probe.failed);
        cr_assert_lt(api_probe_max_ms(&probe), 1000.0, "%s: an API request took %.0f ms", kind, api_probe_max_ms(&probe));
        cr_log_info("%s: %u API probes, p99 %.1f ms, max %.1f ms", kind, probe.n, api_probe_p99_ms(&probe),
                    api_probe_max_ms(&probe));
        if (ret_p99)
                *ret_p99 = api_probe_p99_ms(&probe);
        g = queue(1);
        cr_assert_neq(strcmp(json_string_value(json_object_get(g, "state")), "error"), 0);
        json_decref(g);
}

/* Each hostile kind hits VM "evil" while VM "good" streams on the same sidecore. */
Test(userdp, hostile_rings_hurt_nobody_else)
{
        char *evil = add_vm("evil", "{\"backend\":\"loopback\"}", "always");
        char *good = add_vm("good", "{\"backend\":\"loopback\"}", "always");
        int fds0 = -1;

        for (const char *const *k = kinds; *k; k++) {
                hostile_next_to_victim(evil, good, *k, NULL);
                if (k == kinds)
                        fds0 = count_fds(plane);
        }
        cr_assert_leq(count_fds(plane), fds0 + 2, "file descriptors leaked: %d after vs %d", count_fds(plane), fds0);
        free(evil);
        free(good);
}

/* A VMM's fds of the wrong kind, a call eventfd it makes blocking, guest memory it
 * truncates under an active ring: each stops only the VMM's own queue, and the device
 * serves its next front end normally. */
Test(userdp, hostile_vmm_hurts_nobody_else)
{
        char *evil = add_vm("evil", "{\"backend\":\"loopback\"}", "always");
        char *good = add_vm("good", "{\"backend\":\"loopback\"}", "always");
        double worst_p99 = 0;
        int fds0 = count_fds(plane);

        for (const char *const *k = vmm_kinds; *k; k++) {
                double p99;
                json_t *j;
                int st;

                hostile_next_to_victim(evil, good, *k, &p99);
                if (p99 > worst_p99)
                        worst_p99 = p99;
                /* the same device, a well-behaved front end: served again */
                j = GUEST_RUN(evil, &st, "--mode", "stream", "--count", "20000", "--seconds", "10");
                cr_assert_eq(st, 0, "%s: the device does not serve its next front end", *k);
                cr_assert_eq(n(j, "rx_packets"), 20000, "%s: %s", *k, json_dumps(j, 0));
                json_decref(j);
        }
        cr_log_info("worst API p99 under a hostile VMM: %.1f ms", worst_p99);
        cr_assert_leq(count_fds(plane), fds0 + 2, "file descriptors leaked: %d after vs %d", count_fds(plane), fds0);
        free(evil);
        free(good);
}

/* A VMM's bad dirty logs: fds of the wrong kind, sizes and offsets that wrap or lie
 * beyond the file, and a log too small for the used ring it is told to log (that ring
 * stops, nothing is written into the log). Only that VMM's queue is affected, and the
 * device serves its next front end. */
Test(userdp, hostile_dirty_log_hurts_nobody_else)
{
        static const char *const log_kinds[] = { "log-wrong-fd-kinds", "log-overflow", "log-too-small", NULL };
        char *evil = add_vm("evil", "{\"backend\":\"loopback\"}", "always");
        char *good = add_vm("good", "{\"backend\":\"loopback\"}", "always");
        int fds0 = count_fds(d.pid);

        for (const char *const *k = log_kinds; *k; k++) {
                json_t *j;
                int st;

                hostile_next_to_victim(evil, good, *k, NULL);
                cr_assert(log_unmapped("hostile-log"), "%s: a refused or dropped log is still mapped", *k);
                j = GUEST_RUN(evil, &st, "--mode", "stream", "--count", "20000", "--seconds", "10", "--dirty-log");
                cr_assert_eq(st, 0, "%s: the device does not serve its next front end", *k);
                cr_assert_eq(n(j, "rx_packets"), 20000, "%s: %s", *k, json_dumps(j, 0));
                cr_assert_eq(n(j, "log_missing"), 0, "%s: %s", *k, json_dumps(j, 0));
                json_decref(j);
        }
        cr_assert_leq(count_fds(d.pid), fds0 + 2, "file descriptors leaked: %d after vs %d", count_fds(d.pid), fds0);
        free(evil);
        free(good);
}

/* Connects to a vhost-user socket as another uid (in the socket's group, so the file
 * mode lets it in) and reports whether the daemon kept the connection: true when it
 * was closed at once. */
static bool foreign_uid_refused(const char *sock)
{
        struct stat st;
        pid_t pid;
        int wst;

        cr_assert_eq(stat(sock, &st), 0);
        pid = fork();
        if (pid == 0) {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };
                struct pollfd p;
                char c;
                int fd;

                if (setgroups(0, NULL) < 0 || setgid(st.st_gid) < 0 || setuid(65534) < 0)
                        _exit(10);
                fd = socket(AF_UNIX, SOCK_STREAM, 0);
                snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                        _exit(11);
                /* a refused peer sees the connection closed; an accepted one hears nothing */
                p = (struct pollfd){ .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 3000) != 1 || read(fd, &c, 1) != 0)
                        _exit(1);
                _exit(0);
        }
        cr_assert_eq(waitpid(pid, &wst, 0), pid);
        cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) < 10, "the foreign-uid client could not even connect (%d)",
                  WEXITSTATUS(wst));
        return WEXITSTATUS(wst) == 0;
}

/* A VM whose VMM runs as root (vmm_uid 0): a process with another uid is refused, while
 * the socket is idle (the VMM restarting) and while it is busy, and the real front end
 * is served before, during and after. */
Test(userdp, foreign_uid_cannot_take_a_socket)
{
        struct resp r;
        char *sock;
        pid_t pid;
        int wst;

        cr_assert_eq(http_json(&d, "POST", "/v1/vms",
                               "{\"name\":\"owned\",\"vmm_uid\":0,\"devices\":[{\"backend\":\"loopback\"}]}", &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(r.json, "vmm_uid")), 0);
        sock = strdup(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0), "socket")));
        resp_free(&r);
        /* the test's temp root is private; the other uid must reach the socket file */
        cr_assert_eq(chmod(d.dir, 0711), 0);
        cr_assert(foreign_uid_refused(sock), "an idle socket accepted a process with another uid");
        pid = fork();
        if (pid == 0) {
                const char *argv[] = { GUEST, "--socket", sock, "--mode", "stream", "--count", "200000", "--seconds", "20", NULL };
                char *out;
                int rc = run_cmd(argv, NULL, &out, NULL);
                json_t *j = json_loads(out, 0, NULL);
                _exit(rc == 0 && j && n(j, "lost") == 0 && n(j, "rx_packets") == 200000 ? 0 : 3);
        }
        for (int i = 0; i < 100; i++) {         /* until the real front end is connected */
                json_t *q = queue(0);
                bool ready = !strcmp(json_string_value(json_object_get(q, "state")), "ready");
                json_decref(q);
                if (ready)
                        break;
                usleep(20000);
        }
        cr_assert(foreign_uid_refused(sock), "a busy socket accepted a process with another uid");
        cr_assert_eq(waitpid(pid, &wst, 0), pid);
        cr_assert(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "the VM's own front end was disturbed");
        {
                char *log = daemon_log(&d);
                cr_assert(strstr(log, "refusing a front end"), "the refusal is logged");
                free(log);
        }
        free(sock);
}

/* How many times the daemon logged a front end connecting on sock. */
static int connections(const char *sock)
{
        char *log = daemon_log(&d), needle[256];
        int c = 0;

        snprintf(needle, sizeof(needle), "front end connected on %s", sock);
        for (const char *p = log; (p = strstr(p, needle)); p += strlen(needle))
                c++;
        free(log);
        return c;
}

/* A front end that stops in the middle of a message (half a header, or a header whose
 * payload never comes) stalls its own connection only: another VM negotiates and streams
 * meanwhile. DPDK 22.11's single control thread blocks on the second kind. */
Test(userdp, stalled_control_connection_blocks_nobody)
{
        static const char *const stalls[] = { "half-message", "header-only", NULL };
        char *evil = add_vm("staller", "{\"backend\":\"loopback\"}", "always");
        char *good = add_vm("other", "{\"backend\":\"loopback\"}", "always");
        int before = connections(evil);

        for (const char *const *k = stalls; *k; k++) {
                pid_t pid = fork();
                json_t *j;
                int st;

                if (pid == 0) {
                        const char *argv[] = { GUEST, "--socket", evil, "--mode", "hostile", "--kind", *k, NULL };
                        int null = open("/dev/null", O_WRONLY);
                        dup2(null, 1);
                        execv(GUEST, (char *const *)argv);      /* the kill below reaches the staller itself */
                        _exit(127);
                }
                /* until the daemon has its connection (the staller holds it for 2 s) */
                for (int i = 0; i < 250 && connections(evil) <= before; i++)
                        usleep(20000);
                cr_assert_gt(connections(evil), before, "%s: the staller connected", *k);
                before = connections(evil);
                j = GUEST_RUN(good, &st, "--mode", "stream", "--count", "50000", "--seconds", "10");
                cr_assert_eq(st, 0, "%s: another VM negotiates and streams while one connection is stalled", *k);
                cr_assert_eq(n(j, "rx_packets"), 50000);
                json_decref(j);
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
        }
        free(evil);
        free(good);
}

/* Waits for the stream and checks it: every frame back, none lost or reordered. */
static json_t *stream_checked(struct bg_stream *b)
{
        json_t *j = stream_finish(b);

        cr_assert_gt(n(j, "tx_packets"), 1000, "only %lld frames", n(j, "tx_packets"));
        cr_assert_eq(n(j, "rx_packets"), n(j, "tx_packets"), "every frame sent came back: %lld of %lld",
                     n(j, "rx_packets"), n(j, "tx_packets"));
        cr_assert_eq(n(j, "lost"), 0);
        cr_assert_eq(n(j, "dup_or_reordered"), 0);
        return j;
}

/* Sidecores are added and removed while a stream runs: each removal moves the queue
 * live to another sidecore. Nothing may be lost, duplicated or reordered. */
Test(userdp_xml, queue_moves_under_traffic_lose_nothing)
{
        char *sock = add_vm("mover", "{\"backend\":\"loopback\"}", "always");
        struct bg_stream bg;
        int moves = 0;
        char path[64];
        json_t *j;

        stream_start(&bg, sock, "12");
        for (uint32_t id = 1; id < 60 && waitpid(bg.pid, NULL, WNOHANG) == 0; id++) {
                struct resp r;
                /* a new sidecore, then the old one goes: its queue moves */
                cr_assert_eq(http_json(&d, "POST", "/v1/sidecores", "{}", &r), 0);
                cr_assert_eq(r.status, 201, "%s", r.body);
                resp_free(&r);
                snprintf(path, sizeof(path), "/v1/sidecores/%u", id);
                cr_assert_eq(http_json(&d, "DELETE", path, NULL, &r), 0);
                cr_assert_eq(r.status, 200, "%s", r.body);
                resp_free(&r);
                moves++;
                usleep(20000);
        }
        j = stream_checked(&bg);
        cr_log_info("%d live moves during %lld packets", moves, n(j, "rx_packets"));
        cr_assert_geq(moves, 3, "the stream ended before the queue moved");
        cr_assert_gt(n(j, "tx_packets"), 10000);
        json_decref(j);
        free(sock);
}

static long long sidecore_polls(uint32_t id)
{
        struct resp r;
        json_t *scs;
        long long polls = -1;

        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        scs = json_object_get(r.json, "sidecores");
        for (size_t i = 0; i < json_array_size(scs); i++)
                if (json_integer_value(json_object_get(json_array_get(scs, i), "id")) == id)
                        polls = n(json_array_get(scs, i), "polls");
        resp_free(&r);
        return polls;
}

static double timed(const char *method, const char *path, const char *body, long want)
{
        struct timespec t0, t1;
        struct resp r;

        clock_gettime(CLOCK_MONOTONIC, &t0);
        cr_assert_eq(http_json(&d, method, path, body, &r), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        cr_assert_eq(r.status, want, "%s %s: %s", method, path, r.body);
        resp_free(&r);
        return (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
}

/* A sidecore wedged in a VMM's eventfd (the VMM made it blocking; the watchdog is set to
 * wait 8 s here): the API still adds a sidecore, removes the wedged one (moving its
 * queues), and removes the hostile VM, each within a second, leaving no stale sidecore,
 * queue or socket; the other VM's stream moves on without losing a frame. */
Test(userdp_wedge, control_plane_never_waits_for_a_wedged_sidecore)
{
        char *evil = add_vm("evil", "{\"backend\":\"loopback\"}", "always");
        char *good = add_vm("good", "{\"backend\":\"loopback\"}", "always");
        struct bg_stream victim;
        pid_t hostile;
        long long before, after = 0;
        struct resp r;
        bool wedged = false;
        double ms, total;

        stream_start(&victim, good, "12");
        hostile = fork();
        if (hostile == 0) {
                const char *argv[] = { GUEST, "--socket", evil, "--mode", "hostile", "--kind", "call-made-blocking", NULL };
                _exit(run_cmd(argv, NULL, NULL, NULL));
        }
        /* the wedge shows as a sidecore that stops counting its rounds */
        for (int i = 0; i < 60 && !wedged; i++) {
                before = sidecore_polls(1);
                usleep(100000);
                after = sidecore_polls(1);
                wedged = before > 0 && after == before;
        }
        cr_assert(wedged, "sidecore 1 never wedged (polls %lld -> %lld)", before, after);
        total = ms = timed("POST", "/v1/sidecores", "{}", 201);
        cr_assert_lt(ms, 1000.0, "adding a sidecore took %.0f ms", ms);
        total += ms = timed("DELETE", "/v1/sidecores/1", NULL, 200);
        cr_assert_lt(ms, 1000.0, "removing the wedged sidecore took %.0f ms", ms);
        total += ms = timed("DELETE", "/v1/vms/evil", NULL, 200);
        cr_assert_lt(ms, 1000.0, "removing the hostile VM took %.0f ms", ms);
        cr_log_info("add %s, remove the wedged sidecore, remove the VM: %.1f ms in all", "a sidecore", total);
        /* all within the 8 s the sidecore stays wedged (it is unlisted now, so its counters
         * are gone from the API) */
        cr_assert_lt(total, 5000.0, "the three calls took %.0f ms in all", total);
        cr_assert_neq(access(evil, F_OK), 0, "the hostile VM's socket is gone");
        cr_assert_eq(http_json(&d, "GET", "/v1/sidecores", NULL, &r), 0);
        cr_assert_eq(json_array_size(json_object_get(r.json, "sidecores")), 1, "%s", r.body);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        cr_assert_eq(json_array_size(json_object_get(r.json, "queues")), 1, "no stale queue: %s", r.body);
        resp_free(&r);
        json_decref(stream_checked(&victim));
        waitpid(hostile, NULL, 0);
        free(evil);
        free(good);
}

/* The value of one sample of /metrics whose line starts with prefix (name and labels up to
 * where they differ), or -1 when there is none. */
static double metric(const char *prefix)
{
        struct resp r;
        double v = -1;
        const char *p;

        cr_assert_eq(http_json(&d, "GET", "/metrics", NULL, &r), 0);
        cr_assert_eq(r.status, 200);
        for (p = r.body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
                if (!strncmp(p, prefix, strlen(prefix))) {
                        const char *sp = strchr(p, ' ');
                        v = sp ? atof(sp + 1) : -1;
                        break;
                }
        resp_free(&r);
        return v;
}

/* A queue stopped by a bad ring shows in /metrics while its front end stays, and its
 * error counter keeps the event after the front end has gone (what the alert rules in
 * packaging/prometheus/ watch). */
Test(userdp, metrics_show_a_stopped_queue)
{
        char *evil = add_vm("evil", "{\"backend\":\"loopback\"}", "always");
        const char *q = "{vm=\"1\",vm_name=\"evil\",device=\"net0\",type=\"net\",queue=\"0\",sidecore=\"1\"} ";
        char error[160], connected[160], errors[160];
        pid_t pid;
        int st;
        bool seen = false;

        snprintf(error, sizeof(error), "elvis_queue_error%s", q);
        snprintf(connected, sizeof(connected), "elvis_queue_connected%s", q);
        snprintf(errors, sizeof(errors), "elvis_queue_errors_total%s", q);
        cr_assert_eq(metric(error), 0, "no error before the guest comes");
        cr_assert_eq(metric(errors), 0);
        pid = fork();
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                execl(GUEST, GUEST, "--socket", evil, "--mode", "hostile", "--kind", "desc-loop", "--linger", "30",
                      (char *)NULL);
                _exit(127);
        }
        cr_assert_gt(pid, 0);
        for (int i = 0; i < 300 && !seen; i++) {
                seen = metric(error) == 1;
                if (!seen)
                        usleep(20000);
        }
        cr_assert(seen, "elvis_queue_error never became 1 for the looping ring");
        cr_assert_eq(metric(connected), 0, "a stopped queue is not counted as driven");
        cr_assert_geq(metric(errors), 1);
        kill(pid, SIGTERM);
        cr_assert_eq(waitpid(pid, &st, 0), pid);
        cr_assert_geq(metric(errors), 1, "the counter outlives the front end");
        free(evil);
}

/* elvis_sidecore_stolen_seconds_total: a CPU hog on the polling sidecore's own CPU takes
 * about half of it; the metric must see at least a fifth of the time. */
Test(userdp, stolen_time_of_a_shared_cpu)
{
        char *sock = add_vm("poll", "{\"backend\":\"loopback\"}", "always");
        struct resp r;
        int cpu, st;
        pid_t hog, guest_pid;
        char name[64], connected[160];
        double before, after;
        uint64_t t0, t1;
        struct timespec ts;

        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        cpu = (int)json_integer_value(json_object_get(json_array_get(json_object_get(r.json, "sidecores"), 0), "cpu"));
        resp_free(&r);
        cr_assert_geq(cpu, 0);
        snprintf(name, sizeof(name), "elvis_sidecore_stolen_seconds_total{sidecore=\"1\",cpu=\"%d\"} ", cpu);
        /* a connected, polled queue keeps the sidecore running */
        guest_pid = fork();
        if (guest_pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, 1);
                execl(GUEST, GUEST, "--socket", sock, "--mode", "stream", "--seconds", "60", "--count", "1000000000",
                      (char *)NULL);
                _exit(127);
        }
        cr_assert_gt(guest_pid, 0);
        snprintf(connected, sizeof(connected), "elvis_queue_connected{vm=\"1\",vm_name=\"poll\",device=\"net0\",type=\"net\","
                                               "queue=\"0\",sidecore=\"1\"} ");
        for (int i = 0; i < 500 && metric(connected) != 1; i++)
                usleep(20000);
        cr_assert_eq(metric(connected), 1, "the guest never connected");
        hog = fork();
        if (hog == 0) {
                cpu_set_t set;
                CPU_ZERO(&set);
                CPU_SET(cpu, &set);
                if (sched_setaffinity(0, sizeof(set), &set) < 0)
                        _exit(1);
                for (;;)
                        ;
        }
        cr_assert_gt(hog, 0);
        before = metric(name);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t0 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        usleep(2000000);
        after = metric(name);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t1 = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        kill(hog, SIGKILL);
        waitpid(hog, NULL, 0);
        kill(guest_pid, SIGTERM);
        cr_assert_eq(waitpid(guest_pid, &st, 0), guest_pid);
        cr_assert_geq(before, 0, "the user data plane exports %s", name);
        cr_log_info("stolen %.3f s of %.3f s", after - before, (double)(t1 - t0) / 1e9);
        cr_assert_gt(after - before, 0.2 * (double)(t1 - t0) / 1e9, "stolen %.3f s of %.3f s with a hog on CPU %d",
                     after - before, (double)(t1 - t0) / 1e9, cpu);
        free(sock);
}

/* Counts the queues in state (from /v1/stats) and returns the one of VM name, if any. */
static json_t *queues_in(const char *state, const char *name, int *ret_n)
{
        json_t *qs, *q, *found = NULL;
        struct resp r;
        size_t i;

        *ret_n = 0;
        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        qs = json_object_get(r.json, "queues");
        json_array_foreach(qs, i, q) {
                if (!strcmp(json_string_value(json_object_get(q, "state")) ?: "", state))
                        (*ret_n)++;
                if (name && !strcmp(json_string_value(json_object_get(q, "vm_name")) ?: "", name))
                        found = json_incref(q);
        }
        resp_free(&r);
        return found;
}

static json_t *sidecore0(void)
{
        struct resp r;
        json_t *s;

        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        s = json_incref(json_array_get(json_object_get(r.json, "sidecores"), 0));
        resp_free(&r);
        return s;
}

/* One sidecore, 64 connected devices: 63 with a front end that posts receive buffers and
 * sends nothing (they are peeked, not turned), one that asks and waits for each answer
 * (loopback request-response), so that every request is new work on a queue that was
 * idle. Every request is answered, none after a recheck period (1 ms) at the median; and
 * once everything is idle, adaptive polling still puts the queues back on notifications:
 * the sidecore sleeps, and the next requests come with guest kicks and wake-ups. */
Test(userdp, new_work_next_to_63_connected_idle_queues)
{
        /* 8 MB of guest memory each (rings and receive buffers need about 1 MB): 63 front
         * ends at the emulator's default 64 MB had 4 GB to zero before the last connected */
        const char *idle_argv[2 * 63 + 10] = { GUEST, "--mode", "rx", "--seconds", "90", "--mem-mb", "8" };
        char *socks[63], *sock, name[16];
        long long kicks, wakeups;
        struct resp r;
        size_t argc = 7;
        json_t *j, *q, *s;
        pid_t idle;
        int st, live = 0;

        cr_assert_eq(http_json(&d, "PUT", "/v1/policy",
                               "{\"max_sidecores\":1,\"poll_stop_idle_ms\":50,\"poll_start_rate\":100}", &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        resp_free(&r);
        for (int i = 0; i < 63; i++) {
                snprintf(name, sizeof(name), "idle%d", i);
                socks[i] = add_vm(name, "{\"backend\":\"null\"}", "auto");
                idle_argv[argc++] = "--socket";
                idle_argv[argc++] = socks[i];
        }
        sock = add_vm("asker", "{\"backend\":\"loopback\"}", "auto");
        idle = fork();
        if (idle == 0) {
                execv(GUEST, (char *const *)idle_argv);
                _exit(127);
        }
        cr_assert_gt(idle, 0);
        /* 63 handshakes one after another: up to 60 s on a loaded host, and the emulator
         * must still be there (one that gave up is a failure of its own) */
        for (int i = 0; i < 3000 && live < 63; i++) {
                if (waitpid(idle, &st, WNOHANG) == idle)
                        cr_assert_fail("the idle front ends' emulator exited (status %d) with %d of 63 connected", st,
                                       live);
                json_decref(queues_in("ready", NULL, &live));
                usleep(20000);
        }
        if (live < 63) {        /* before teardown removes the sockets under it */
                kill(idle, SIGKILL);
                waitpid(idle, NULL, 0);
        }
        cr_assert_geq(live, 63, "the idle front ends connected (%d of 63)", live);

        j = GUEST_RUN(sock, &st, "--mode", "rr", "--count", "2000", "--seconds", "60");
        cr_assert_eq(st, 0);
        cr_assert_eq(n(j, "rr_count"), 2000, "every request answered: %s", json_dumps(j, 0));
        cr_assert_lt(n(j, "p50_ns"), 1000000, "picked up within rounds, not at a recheck: p50 %lld ns",
                     n(j, "p50_ns"));
        json_decref(j);
        q = queues_in("ready", "asker", &live);
        cr_assert_not_null(q);
        cr_assert_eq(live, 63, "the idle queues are still connected (the asker left)");
        kicks = n(q, "kicks");
        json_decref(q);

        /* idle: every queue back on notifications, and the sidecore sleeps */
        for (int i = 0;; i++) {
                s = sidecore0();
                if (json_is_true(json_object_get(s, "sleeping")))
                        break;
                json_decref(s);
                cr_assert_lt(i, 500, "the sidecore never went to sleep next to 63 idle queues");
                usleep(10000);
        }
        wakeups = n(s, "wakeups");
        json_decref(s);
        q = queues_in("ready", "idle0", &live);
        cr_assert_not(json_is_true(json_object_get(q, "polling")), "an idle queue is on notifications");
        json_decref(q);
        /* a new front end on the sleeping sidecore: its kicks wake it, nothing is lost */
        j = GUEST_RUN(sock, &st, "--mode", "rr", "--count", "5", "--seconds", "20");
        cr_assert_eq(st, 0);
        cr_assert_eq(n(j, "rr_count"), 5, "every request answered: %s", json_dumps(j, 0));
        cr_assert_gt(n(j, "kicks"), 0, "the guest kicked: notifications were on");
        json_decref(j);
        q = queues_in("ready", "asker", &live);
        s = sidecore0();
        cr_assert_neq(n(q, "kicks"), kicks, "the kicks reached the queue");
        cr_assert_gt(n(s, "wakeups"), wakeups, "a kick woke the sidecore");
        json_decref(q);
        json_decref(s);

        kill(idle, SIGTERM);
        waitpid(idle, NULL, 0);
        for (int i = 0; i < 63; i++)
                free(socks[i]);
        free(sock);
}

static pid_t guest_bg(const char *const *argv)
{
        pid_t pid = fork();

        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY);
                dup2(null, STDOUT_FILENO);
                execv(GUEST, (char *const *)argv);
                _exit(127);
        }
        cr_assert_gt(pid, 0);
        return pid;
}

static long long queue_counter(const char *vm, const char *key)
{
        int live;
        json_t *q = queues_in("ready", vm, &live);
        long long v;

        cr_assert_not_null(q, "no connected queue of %s", vm);
        v = n(q, key);
        json_decref(q);
        return v;
}

static uint64_t mono_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A tap-backed queue that has nothing to do next to a streaming one on the same polling
 * sidecore: it is peeked, not turned, and its tap is not read but watched (EPOLLIN). Frames
 * written into the tap, one at a time, each reach the guest's receive ring promptly; none
 * is lost or repeated; the stream went on meanwhile. The sidecore's rounds (and empty
 * rounds) reach /v1/stats. */
Test(userdp_netns, tap_data_on_a_quiet_queue_next_to_a_busy_one)
{
        const char *tap = "elvq0";
        unsigned char frame[60] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 1, 0x88, 0xb5 };
        struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_halen = ETH_ALEN };
        struct ifreq ifr = { 0 };
        char *tsock, *bsock, path[128];
        const char *rx_argv[8], *tx_argv[16];
        long long rx0, tx0, rounds0;
        uint64_t lat[200];
        pid_t rx, tx;
        json_t *s;
        int fd, live = 0;
        FILE *f;
        struct resp r;

        cr_assert_eq(http_json(&d, "PUT", "/v1/policy", "{\"max_sidecores\":1}", &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        resp_free(&r);
        tsock = add_vm("tapq", "{\"backend\":\"tap\",\"tap\":\"elvq0\"}", "always");
        bsock = add_vm("busy", "{\"backend\":\"null\"}", "always");
        /* no IPv6 on the tap: nothing but the test's frames goes through it */
        snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", tap);
        if ((f = fopen(path, "we"))) {
                fputs("1", f);
                fclose(f);
        }
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
        cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0, "%s: %s", tap, strerror(errno));
        ifr.ifr_flags |= IFF_UP;
        cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0, "%s up: %s", tap, strerror(errno));
        close(fd);

        memcpy(rx_argv, (const char *[]){ GUEST, "--socket", tsock, "--mode", "rx", "--seconds", "90", NULL },
               sizeof(rx_argv));
        memcpy(tx_argv, (const char *[]){ GUEST, "--socket", bsock, "--mode", "stream", "--size", "1400", "--batch",
                                          "64", "--seconds", "90", NULL },
               sizeof(const char *) * 12);
        rx = guest_bg(rx_argv);
        tx = guest_bg(tx_argv);
        for (int i = 0; live < 2 || queue_counter("busy", "tx_packets") == 0; i++) {
                cr_assert_lt(i, 1000, "the front ends connected (%d of 2) and the stream started", live);
                json_decref(queues_in("ready", NULL, &live));
                usleep(10000);
        }
        s = sidecore0();
        cr_assert(json_is_integer(json_object_get(s, "rounds")), "no rounds in the sidecore's stats");
        rounds0 = n(s, "rounds");
        json_decref(s);

        fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0, "AF_PACKET: %s", strerror(errno));
        to.sll_ifindex = (int)if_nametoindex(tap);
        cr_assert_gt(to.sll_ifindex, 0);
        memcpy(to.sll_addr, frame, ETH_ALEN);
        rx0 = queue_counter("tapq", "rx_packets");
        tx0 = queue_counter("busy", "tx_packets");
        for (int k = 0; k < 200; k++) {
                uint64_t t0 = mono_ns(), dt;

                frame[14] = (unsigned char)k;
                cr_assert_eq(sendto(fd, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)),
                             (ssize_t)sizeof(frame), "into %s: %s", tap, strerror(errno));
                /* its arrival in the guest's ring: the queue's receive counter */
                while (queue_counter("tapq", "rx_packets") < rx0 + k + 1) {
                        cr_assert_lt(mono_ns() - t0, 5000000000ull, "frame %d never reached the guest", k);
                        usleep(200);
                }
                dt = mono_ns() - t0;
                for (int i = k;; i--) {   /* sorted as they come */
                        if (i == 0 || lat[i - 1] <= dt) {
                                lat[i] = dt;
                                break;
                        }
                        lat[i] = lat[i - 1];
                }
        }
        close(fd);
        cr_assert_eq(queue_counter("tapq", "rx_packets"), rx0 + 200, "each frame delivered once");
        cr_assert_gt(queue_counter("busy", "tx_packets"), tx0, "the other queue streamed meanwhile");
        s = sidecore0();
        cr_assert_gt(n(s, "rounds"), rounds0, "the sidecore's rounds are counted");
        cr_assert_leq(n(s, "empty_rounds"), n(s, "rounds"));
        json_decref(s);
        cr_log_info("200 tap frames on a quiet queue: median %.0f us, worst %.0f us (stats reads included)",
                    (double)lat[100] / 1e3, (double)lat[199] / 1e3);
        /* a frame the quiet queue did not notice would wait for a recheck, or forever; the
         * median, since a loaded host stalls any thread now and then */
        cr_assert_lt(lat[100], 100000000ull, "median delivery %llu ns", (unsigned long long)lat[100]);
        kill(tx, SIGTERM);
        kill(rx, SIGTERM);
        waitpid(tx, NULL, 0);
        waitpid(rx, NULL, 0);
        free(tsock);
        free(bsock);
}
