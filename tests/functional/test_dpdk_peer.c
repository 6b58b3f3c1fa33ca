/* Functional tests against a real front end nobody here wrote: DPDK's virtio-user PMD
 * (dpdk-testpmd) connects to the vhost-user socket that elvis-manager created for a VM
 * and drives traffic through a sidecore. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct daemon d;

static void setup(void)
{
        daemon_init(&d, ELVIS_MANAGER);
        daemon_arg(&d, "--dataplane");
        daemon_arg(&d, "user");
        cr_assert_eq(daemon_start(&d), 0);
}

static void teardown(void)
{
        daemon_cleanup(&d);
}

TestSuite(dpdk_peer, .init = setup, .fini = teardown, .timeout = 120);

static bool have_testpmd(void)
{
        if (access("/usr/bin/dpdk-testpmd", X_OK) == 0)
                return true;
        cr_log_warn("dpdk-testpmd is not installed (scripts/deps installs dpdk-dev)");
        return false;
}

static json_t *add_vm(const char *name, const char *backend, const char *exitless)
{
        char body[256];
        struct resp r;
        json_t *vm;

        snprintf(body, sizeof(body), "{\"name\":\"%s\",\"devices\":[{\"backend\":\"%s\"}],\"policy\":{\"exitless\":\"%s\"}}",
                 name, backend, exitless);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        vm = json_incref(r.json);
        resp_free(&r);
        return vm;
}

static char *testpmd(const char *socket, const char *mode, int seconds)
{
        return testpmd_run(&socket, 1, mode, seconds);
}

static json_t *queue_stats(void)
{
        struct resp r;
        json_t *q;

        cr_assert_eq(http_json(&d, "GET", "/v1/stats", NULL, &r), 0);
        q = json_incref(json_array_get(json_object_get(r.json, "queues"), 0));
        resp_free(&r);
        return q;
}

static long long field(json_t *o, const char *k)
{
        return (long long)json_integer_value(json_object_get(o, k));
}

Test(dpdk_peer, txonly_into_a_polled_null_device)
{
        json_t *vm, *q;
        const char *sock;
        char *out;

        if (!have_testpmd())
                cr_skip_test("dpdk-testpmd missing");
        vm = add_vm("dpdk1", "null", "always");
        sock = json_string_value(json_object_get(json_array_get(json_object_get(vm, "devices"), 0), "socket"));
        out = testpmd(sock, "txonly", 4);
        cr_assert(strstr(out, "Tx-pps"), "testpmd did not run:\n%s", out);
        q = queue_stats();
        cr_log_info("tx_packets %lld kicks %lld interrupts %lld", field(q, "tx_packets"), field(q, "kicks"),
                    field(q, "interrupts"));
        cr_assert_gt(field(q, "tx_packets"), 100000, "traffic went through the sidecore");
        cr_assert_eq(field(q, "errors"), 0);
        /* polled: the guest driver saw VRING_USED_F_NO_NOTIFY and stopped kicking. A notified
         * device takes about one kick per 32-packet burst; a few kicks at start-up are fine
         * (the sidecore may be slow to start polling under ThreadSanitizer). */
        cr_assert_lt(field(q, "kicks") * 10000, field(q, "tx_packets"), "kicks %lld for %lld packets",
                     field(q, "kicks"), field(q, "tx_packets"));
        free(out);
        json_decref(q);
        json_decref(vm);
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(dpdk_peer, io_forwarding_through_loopback)
{
        json_t *vm, *q;
        const char *sock;
        char *out, *p;
        long long rx = 0;

        if (!have_testpmd())
                cr_skip_test("dpdk-testpmd missing");
        vm = add_vm("dpdk2", "loopback", "auto");
        sock = json_string_value(json_object_get(json_array_get(json_object_get(vm, "devices"), 0), "socket"));
        out = testpmd(sock, "io", 4);
        q = queue_stats();
        /* testpmd's own counters: what our loopback reflected came back to it */
        p = strstr(out, "Accumulated forward statistics");
        cr_assert_not_null(p, "%s", out);
        cr_assert(sscanf(strstr(p, "RX-packets:") + 11, "%lld", &rx) == 1);
        /* frames the loopback held when testpmd stopped its rings are drops, not errors */
        cr_log_info("testpmd received %lld, elvis reflected %lld, dropped %lld", rx, field(q, "rx_packets"),
                    field(q, "drops"));
        cr_assert_gt(rx, 1000);
        cr_assert_geq(field(q, "rx_packets"), rx, "every packet testpmd got was one elvis delivered");
        cr_assert_eq(field(q, "tx_packets"), field(q, "rx_packets") + field(q, "drops"),
                     "every frame the guest sent was reflected or counted as dropped");
        if (field(q, "errors") != 0) {
                char *log = daemon_log(&d);

                cr_assert_fail("queue errors %lld (drops %lld)\nmanager log:\n%s\ntestpmd:\n%s", field(q, "errors"),
                               field(q, "drops"), log ? log : "", out);
        }
        free(out);
        json_decref(q);
        json_decref(vm);
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(dpdk_peer, vanilla_device_takes_kicks)
{
        json_t *vm, *q;
        const char *sock;
        char *out;

        if (!have_testpmd())
                cr_skip_test("dpdk-testpmd missing");
        vm = add_vm("dpdk3", "null", "never");
        sock = json_string_value(json_object_get(json_array_get(json_object_get(vm, "devices"), 0), "socket"));
        cr_assert(json_is_null(json_array_get(json_object_get(json_array_get(json_object_get(vm, "devices"), 0),
                                                              "sidecores"), 0)), "vanilla: no sidecore");
        out = testpmd(sock, "txonly", 3);
        q = queue_stats();
        cr_log_info("vanilla: tx_packets %lld kicks %lld", field(q, "tx_packets"), field(q, "kicks"));
        cr_assert_gt(field(q, "tx_packets"), 10000);
        cr_assert_gt(field(q, "kicks"), 10, "a notification-driven thread needs kicks");
        free(out);
        json_decref(q);
        json_decref(vm);
        cr_assert_eq(daemon_stop(&d), 0);
}
