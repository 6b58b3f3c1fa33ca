/* Live test of the control loop: the user-space data plane and guest emulators go through
 * idle -> 1 VM heavy -> 4 VMs heavy -> idle; sidecores are added then removed, queues move
 * with nothing lost (sequence-numbered traffic), and the journal explains every step.
 * Two CPUs here: sidecores share them with the load (the topology says there are more,
 * so threads run unpinned); the test checks behaviour, not speed. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUEST ELVIS_BUILD_DIR "/bench/elvis-guest"
#define TOPO ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml"

static struct daemon d;

static void setup(void)
{
        daemon_init(&d, ELVIS_MANAGER);
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user");
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, TOPO);
        cr_assert_eq(daemon_start(&d), 0);
}

static void teardown(void)
{
        if (daemon_alive(&d))
                cr_expect_eq(daemon_stop(&d), 0);
        daemon_cleanup(&d);
}

TestSuite(dynamic, .init = setup, .fini = teardown, .timeout = 240);

static long nsidecores(void) { return http_count(&d, "/v1/sidecores", "sidecores"); }

/* Starts an emulator streaming count packets; returns its pid, output to a pipe. */
static pid_t stream(const char *sock, const char *count, int *out)
{
        int p[2];
        pid_t pid;

        cr_assert_eq(pipe(p), 0);
        pid = fork();
        if (pid == 0) {
                const char *argv[] = { GUEST, "--socket", sock, "--mode", "stream", "--size", "256", "--count", count,
                                       "--seconds", "120", NULL };
                char *o;
                int rc;
                close(p[0]);
                rc = run_cmd(argv, NULL, &o, NULL);
                if (write(p[1], o, strlen(o)) < 0)
                        rc = 9;
                _exit(rc);
        }
        close(p[1]);
        *out = p[0];
        return pid;
}

static void finish(pid_t pid, int fd, const char *what)
{
        char buf[4096] = "";
        ssize_t n;
        int st;
        json_t *j;

        cr_assert_eq(waitpid(pid, &st, 0), pid);
        n = read(fd, buf, sizeof(buf) - 1);
        buf[n > 0 ? n : 0] = '\0';
        close(fd);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: emulator failed: %s", what, buf);
        j = json_loads(buf, 0, NULL);
        cr_assert_not_null(j, "%s: %s", what, buf);
        cr_assert_eq(json_integer_value(json_object_get(j, "lost")), 0, "%s lost packets: %s", what, buf);
        cr_assert_eq(json_integer_value(json_object_get(j, "dup_or_reordered")), 0, "%s: %s", what, buf);
        cr_assert_eq(json_integer_value(json_object_get(j, "rx_packets")),
                     json_integer_value(json_object_get(j, "tx_packets")), "%s: %s", what, buf);
        json_decref(j);
}

/* Waits (bounded, polling the API's state) until cond holds. */
static bool wait_for(bool (*cond)(void), int seconds)
{
        for (int i = 0; i < seconds * 10; i++) {
                if (cond())
                        return true;
                usleep(100000);
        }
        return cond();
}

static bool grew(void) { return nsidecores() >= 2; }
static bool back_to_one(void) { return nsidecores() == 1; }

Test(dynamic, sidecores_follow_the_load)
{
        const char *names[4] = { "d0", "d1", "d2", "d3" };
        char *socks[4];
        pid_t pids[4];
        int fds[4];
        struct resp r;
        json_t *ev;
        size_t i;
        bool saw_add = false, saw_remove = false;
        static const char *const deciders[3] = { "scaling", "balance", "regret" };
        unsigned applied[3] = { 0 };
        char *metrics;

        cr_assert_eq(http_json(&d, "PUT", "/v1/policy",
                               "{\"mode\":\"dynamic\",\"interval_ms\":50,\"cooldown_ms\":200,\"min_sidecores\":1,"
                               "\"rebalance_interval_ms\":1000}", &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        resp_free(&r);
        for (int v = 0; v < 4; v++) {
                char body[200];
                snprintf(body, sizeof(body), "{\"name\":\"%s\",\"devices\":[{\"backend\":\"loopback\"}],"
                                             "\"policy\":{\"exitless\":\"always\"}}", names[v]);
                cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
                cr_assert_eq(r.status, 201, "%s", r.body);
                socks[v] = strdup(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "devices"), 0),
                                                                    "socket")));
                resp_free(&r);
        }
        /* idle: one sidecore serves all four */
        cr_assert_eq(nsidecores(), 1);
        /* one VM heavy, then four: the pool grows, queues move while traffic runs */
        pids[0] = stream(socks[0], "20000000", &fds[0]);
        usleep(1500000);
        for (int v = 1; v < 4; v++)
                pids[v] = stream(socks[v], "6000000", &fds[v]);
        cr_assert(wait_for(grew, 60), "no sidecore was added under load");
        for (int v = 0; v < 4; v++)
                finish(pids[v], fds[v], names[v]);
        /* idle again: back to one sidecore (after the cold period) */
        cr_assert(wait_for(back_to_one, 90), "sidecores were not released when idle (%ld left)", nsidecores());
        /* no more decisions from here on: the journal and /metrics must agree */
        cr_assert_eq(http_json(&d, "PATCH", "/v1/policy", "{\"mode\":\"static\"}", &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/metrics", NULL, &r), 0);
        metrics = strdup(r.body);
        resp_free(&r);
        /* the journal says why */
        cr_assert_eq(http_json(&d, "GET", "/v1/events?since=0", NULL, &r), 0);
        json_array_foreach(json_object_get(r.json, "events"), i, ev) {
                const char *policy = json_string_value(json_object_get(ev, "policy"));
                const char *reason = json_string_value(json_object_get(ev, "reason"));
                if (!policy)
                        continue;
                cr_assert(reason && *reason, "every decision has a reason");
                cr_assert(json_is_object(json_object_get(ev, "before")) && json_is_object(json_object_get(ev, "after")));
                cr_assert(json_is_true(json_object_get(ev, "applied")), "%s", reason);
                for (unsigned k = 0; k < 3; k++)
                        applied[k] += !strcmp(policy, deciders[k]);
                saw_add |= strstr(reason, "adding") != NULL;
                saw_remove |= strstr(reason, "removing") != NULL;
                cr_log_info("%s: %s", policy, reason);
        }
        resp_free(&r);
        cr_assert(saw_add && saw_remove, "the journal explains the additions and the removals");
        /* elvis_decisions_total counts what the journal lists */
        for (unsigned k = 0; k < 3; k++) {
                char sample[128];
                snprintf(sample, sizeof(sample), "\nelvis_decisions_total{policy=\"%s\",outcome=\"applied\"} %u\n",
                         deciders[k], applied[k]);
                cr_assert(strstr(metrics, sample), "%s: %u applied in the journal; /metrics:\n%s", deciders[k],
                          applied[k], metrics);
                snprintf(sample, sizeof(sample), "\nelvis_decisions_total{policy=\"%s\",outcome=\"failed\"} 0\n",
                         deciders[k]);
                cr_assert(strstr(metrics, sample), "%s: none failed", deciders[k]);
        }
        cr_assert_gt(applied[0], 0, "scaling decided");
        free(metrics);
        for (int v = 0; v < 4; v++)
                free(socks[v]);
}

Test(dynamic, static_mode_keeps_the_placement)
{
        struct resp r;
        char *before;

        cr_assert_eq(http_json(&d, "POST", "/v1/sidecores", "{}", &r), 0);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "POST", "/v1/sidecores", "{}", &r), 0);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", "{\"name\":\"s\",\"devices\":[{\"backend\":\"loopback\",\"queues\":2}]}",
                               &r), 0);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "PUT", "/v1/policy", "{\"mode\":\"dynamic\",\"interval_ms\":50}", &r), 0);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "PUT", "/v1/policy", "{\"mode\":\"static\"}", &r), 0);
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/v1/sidecores", NULL, &r), 0);
        before = strdup(r.body);
        resp_free(&r);
        usleep(500000);
        cr_assert_eq(http_json(&d, "GET", "/v1/sidecores", NULL, &r), 0);
        cr_assert_str_eq(r.body, before, "switching to static leaves the placement as it was");
        resp_free(&r);
        free(before);
        /* the plan endpoint answers either way */
        cr_assert_eq(http_json(&d, "GET", "/v1/plan", NULL, &r), 0);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "mode")), "static");
        resp_free(&r);
}

Test(dynamic, events_long_poll)
{
        struct resp r;
        long long last;
        pid_t pid;

        cr_assert_eq(http_json(&d, "GET", "/v1/events", NULL, &r), 0);
        last = (long long)json_integer_value(json_object_get(r.json, "last"));
        cr_assert(json_is_string(json_object_get(r.json, "boot")));
        cr_assert_eq(strlen(json_string_value(json_object_get(r.json, "boot"))), 16,
                     "events name the daemon run they number");
        resp_free(&r);
        pid = fork();
        if (pid == 0) {
                struct resp r2;
                usleep(300000);
                http_json(&d, "POST", "/v1/vms", "{\"name\":\"poke\"}", &r2);
                _exit(0);
        }
        {
                char path[64];
                snprintf(path, sizeof(path), "/v1/events?since=%lld&wait=10", last);
                cr_assert_eq(http_json(&d, "GET", path, NULL, &r), 0);
        }
        cr_assert_eq(r.status, 200);
        cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 1, "%s", r.body);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "events"), 0), "event")),
                         "vm_added");
        resp_free(&r);
        waitpid(pid, NULL, 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/events?since=999999&wait=1", NULL, &r), 0);
        cr_assert_eq(json_array_size(json_object_get(r.json, "events")), 0, "a wait ends empty at its deadline");
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/v1/events?wait=61", NULL, &r), 0);
        cr_assert_eq(r.status, 400);
        resp_free(&r);
}
