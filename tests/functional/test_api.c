/* Functional tests: every route of the REST API, success and error paths, against the
 * real daemon (with the test-only fake data plane, and without any data plane). */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <elvis/cpuset.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOPO ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml"

static struct daemon d;

static void start_fake(void)
{
        daemon_init(&d, ELVIS_MANAGER_FAKE);
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, TOPO);
        cr_assert_eq(daemon_start(&d), 0);
}

static void stop(void)
{
        int r = daemon_stop(&d);
        cr_expect_eq(r, 0, "daemon exit status %d", r);
        daemon_cleanup(&d);
}

TestSuite(api, .init = start_fake, .fini = stop, .timeout = 60);

static json_t *get(const char *path, long expect)
{
        struct resp r;
        json_t *j;

        cr_assert_eq(http_json(&d, "GET", path, NULL, &r), 0);
        cr_assert_eq(r.status, expect, "GET %s: %ld %s", path, r.status, r.body);
        j = json_incref(r.json);
        resp_free(&r);
        return j;
}

static long req(const char *method, const char *path, const char *body, json_t **ret)
{
        struct resp r;
        long s;

        cr_assert_eq(http_json(&d, method, path, body, &r), 0, "%s %s: no answer", method, path);
        if (r.status >= 400) {
                cr_assert_str_eq(r.content_type, "application/problem+json", "%s %s", method, path);
                cr_assert_not_null(r.json, "problem body is JSON");
                cr_assert_eq(json_integer_value(json_object_get(r.json, "status")), r.status);
                cr_assert(json_is_string(json_object_get(r.json, "detail")));
                cr_assert(json_is_string(json_object_get(r.json, "title")));
                cr_assert(json_is_string(json_object_get(r.json, "type")));
        }
        if (ret)
                *ret = json_incref(r.json);
        s = r.status;
        resp_free(&r);
        return s;
}

static const char *detail(json_t *problem)
{
        return json_string_value(json_object_get(problem, "detail"));
}

Test(api, health_with_fake_dataplane)
{
        json_t *h = get("/v1/health", 200);

        cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "ok");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "dataplane"), "kind")), "user-process");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "dataplane"), "implementation")), "fake");
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(h, "dataplane"), "state")), "running");
        cr_assert(json_is_string(json_object_get(h, "version")));
        cr_assert(json_is_integer(json_object_get(h, "uptime_s")));
        cr_assert_eq(json_array_size(json_object_get(h, "warnings")), 0, "nothing to warn about");
        cr_assert(json_is_array(json_object_get(h, "warnings")));
        json_decref(h);
        h = get("/v1/health/ready", 200);
        cr_assert(json_is_true(json_object_get(h, "ready")));
        cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "ok");
        json_decref(h);
}

Test(api, health_head_and_405)
{
        struct resp r;

        cr_assert_eq(http(&d, "HEAD", "/v1/health", NULL, NULL, 0, &r), 0);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(r.body, "");
        resp_free(&r);
        cr_assert_eq(http_json(&d, "DELETE", "/v1/health", NULL, &r), 0);
        cr_assert_eq(r.status, 405);
        cr_assert_str_eq(r.allow, "GET, HEAD");
        resp_free(&r);
        cr_assert_eq(http_json(&d, "PUT", "/v1/vms", "{}", &r), 0);
        cr_assert_eq(r.status, 405);
        cr_assert_str_eq(r.allow, "GET, POST, HEAD");
        resp_free(&r);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms/1", "{}", &r), 0);
        cr_assert_eq(r.status, 405);
        cr_assert_str_eq(r.allow, "GET, PATCH, DELETE, HEAD");
        resp_free(&r);
}

Test(api, unknown_paths_are_404)
{
        cr_assert_eq(req("GET", "/", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/vms/", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v2/health", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/vms/../../etc/passwd", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/vms/%2e%2e%2fetc", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/vms/1/extra", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/vms/nosuch", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/vms/0", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/vms/007", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/sidecores/abc", NULL, NULL), 404);
        cr_assert_eq(req("GET", "/v1/sidecores/99999999999", NULL, NULL), 404);
        {
                json_t *p = NULL;
                cr_assert_eq(req("GET", "/v1/sidecores/4242", NULL, &p), 404);
                cr_assert_str_eq(detail(p), "no sidecore with id 4242", "GET and DELETE say the same");
                json_decref(p);
                cr_assert_eq(req("DELETE", "/v1/sidecores/4242", NULL, &p), 404);
                cr_assert_str_eq(detail(p), "no sidecore with id 4242");
                json_decref(p);
        }
}

Test(api, topology_roles)
{
        json_t *t = get("/v1/topology", 200), *cpus, *nic, *vm = NULL;

        cr_assert_eq(json_array_size(json_object_get(t, "numa_nodes")), 4);
        cpus = json_object_get(t, "cpus");
        cr_assert_eq(json_array_size(cpus), 32);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cpus, 0), "role")), "reserved");
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cpus, 2), "role")), "free");
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(cpus, 2), "siblings")), "2-3");
        nic = json_array_get(json_object_get(t, "nics"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(nic, "name")), "ens2f0");
        cr_assert_eq(json_integer_value(json_object_get(nic, "numa_node")), 2);
        cr_assert_str_eq(json_string_value(json_object_get(t, "allowed_cpus")), "1-31");
        json_decref(t);

        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"db\",\"vcpus\":4}", &vm), 201);
        t = get("/v1/topology", 200);
        cpus = json_object_get(t, "cpus");
        {
                const char *vcpus = json_string_value(json_object_get(vm, "cpus"));
                elvis_cpuset set;
                int n = 0;
                cr_assert_eq(elvis_cpuset_parse(vcpus, &set), 0);
                ELVIS_CPUSET_FOREACH(c, &set) {
                        json_t *cpu = json_array_get(cpus, (size_t)c);
                        cr_assert_str_eq(json_string_value(json_object_get(cpu, "role")), "vcpu");
                        cr_assert_str_eq(json_string_value(json_object_get(cpu, "vm_name")), "db");
                        n++;
                }
                cr_assert_eq(n, 4);
        }
        json_decref(vm);
        json_decref(t);
}

Test(api, vm_create_get_list)
{
        struct resp r;
        json_t *vm, *list, *dev;
        const char *body = "{\"name\":\"web1\",\"vcpus\":2,\"policy\":{\"weight\":300},"
                           "\"devices\":[{\"backend\":\"tap\",\"tap\":\"tapweb1\",\"queues\":2}]}";

        cr_assert_eq(http_json(&d, "POST", "/v1/vms", body, &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        cr_assert_str_eq(r.location, "/v1/vms/1");
        cr_assert_str_eq(r.content_type, "application/json");
        resp_free(&r);
        vm = get("/v1/vms/1", 200);
        cr_assert_str_eq(json_string_value(json_object_get(vm, "name")), "web1");
        cr_assert_eq(json_integer_value(json_object_get(vm, "vcpus")), 2);
        cr_assert_str_eq(json_string_value(json_object_get(vm, "cpus")), "2-3", "one whole core, lowest free");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(vm, "policy"), "weight")), 300);
        dev = json_array_get(json_object_get(vm, "devices"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(dev, "tap")), "tapweb1");
        cr_assert(strstr(json_string_value(json_object_get(dev, "socket")), "/run/vm1-net0.sock"));
        cr_assert_eq(json_array_size(json_object_get(dev, "sidecores")), 2);
        cr_assert(json_is_integer(json_array_get(json_object_get(dev, "sidecores"), 0)),
                  "an automatic sidecore serves the queues");
        json_decref(vm);
        vm = get("/v1/vms/web1", 200);
        cr_assert_eq(json_integer_value(json_object_get(vm, "id")), 1, "lookup by name");
        json_decref(vm);
        list = get("/v1/vms", 200);
        cr_assert_eq(json_array_size(json_object_get(list, "vms")), 1);
        json_decref(list);
}

Test(api, vm_create_errors)
{
        json_t *p = NULL;
        struct resp r;
        char *big;

        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\"", &p), 400);
        cr_assert(strstr(detail(p), "malformed JSON"), "%s", detail(p));
        json_decref(p);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"x\":1}", &p), 400);
        cr_assert(strstr(detail(p), "unknown field 'x'"));
        json_decref(p);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"name\":\"b\"}", NULL), 400);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"vcpus\":1e400}", NULL), 400);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"vcpus\":123456789012345678901234567890}", NULL), 400);
        cr_assert_eq(req("POST", "/v1/vms", NULL, &p), 400);
        cr_assert(strstr(detail(p), "body is required"));
        json_decref(p);
        cr_assert_eq(http(&d, "POST", "/v1/vms", NULL, "{\"name\":\"a\"}", 12, &r), 0);
        cr_assert_eq(r.status, 415, "no content type");
        resp_free(&r);
        cr_assert_eq(http(&d, "POST", "/v1/vms", "text/plain", "{\"name\":\"a\"}", 12, &r), 0);
        cr_assert_eq(r.status, 415);
        resp_free(&r);
        cr_assert_eq(http(&d, "POST", "/v1/vms", "application/json; charset=utf-8", "{\"name\":\"a\"}", 12, &r), 0);
        cr_assert_eq(r.status, 201, "parameters after the media type are fine");
        resp_free(&r);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\"}", &p), 409);
        cr_assert(strstr(detail(p), "already exists"));
        json_decref(p);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"b\",\"devices\":[{\"tap\":\"t0\"}]}", NULL), 201);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"c\",\"devices\":[{\"tap\":\"t0\"}]}", &p), 409);
        cr_assert(strstr(detail(p), "tap 't0' is already used"));
        json_decref(p);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"huge\",\"vcpus\":40}", &p), 507);
        cr_assert(strstr(detail(p), "needs 40 CPUs"), "%s", detail(p));
        json_decref(p);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"d\",\"domain\":\"dom\"}", NULL), 201);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"e\",\"domain\":\"dom\"}", &p), 409);
        json_decref(p);
        big = malloc(2 << 20);
        memset(big, ' ', 2 << 20);
        big[0] = '{';
        big[(2 << 20) - 1] = '}';
        cr_assert_eq(http(&d, "POST", "/v1/vms", "application/json", big, 2 << 20, &r), 0);
        cr_assert_eq(r.status, 413);
        resp_free(&r);
        free(big);
        p = get("/v1/vms", 200);
        cr_assert_eq(json_array_size(json_object_get(p, "vms")), 3, "only the valid requests added VMs");
        json_decref(p);
}

Test(api, vm_dry_run_changes_nothing)
{
        struct resp r;
        json_t *list;

        cr_assert_eq(http_json(&d, "POST", "/v1/vms?dry_run=true", "{\"name\":\"probe\",\"vcpus\":4}", &r), 0);
        cr_assert_eq(r.status, 200);
        cr_assert(json_is_true(json_object_get(r.json, "dry_run")));
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "cpus")), "2-5");
        resp_free(&r);
        cr_assert_eq(http_json(&d, "POST", "/v1/vms?dry_run=maybe", "{\"name\":\"probe\"}", &r), 0);
        cr_assert_eq(r.status, 400);
        resp_free(&r);
        list = get("/v1/vms", 200);
        cr_assert_eq(json_array_size(json_object_get(list, "vms")), 0);
        json_decref(list);
}

Test(api, vm_patch)
{
        json_t *vm = NULL;

        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"devices\":[{\"backend\":\"loopback\"}]}", NULL), 201);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"b\"}", NULL), 201);
        cr_assert_eq(req("PATCH", "/v1/vms/a", "{\"policy\":{\"weight\":42,\"exitless\":\"always\"}}", &vm), 200);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(vm, "policy"), "weight")), 42);
        json_decref(vm);
        cr_assert_eq(req("PATCH", "/v1/vms/1", "{\"name\":\"renamed\"}", NULL), 200);
        vm = get("/v1/vms/renamed", 200);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(vm, "policy"), "exitless")), "always");
        json_decref(vm);
        cr_assert_eq(req("PATCH", "/v1/vms/renamed", "{\"name\":\"b\"}", NULL), 409);
        cr_assert_eq(req("PATCH", "/v1/vms/renamed", "{\"vcpus\":3}", NULL), 400);
        cr_assert_eq(req("PATCH", "/v1/vms/renamed", "{\"policy\":{\"weight\":0}}", NULL), 400);
        cr_assert_eq(req("PATCH", "/v1/vms/nosuch", "{\"name\":\"x\"}", NULL), 404);
        vm = get("/v1/vms/1", 200);
        cr_assert_str_eq(json_string_value(json_object_get(vm, "name")), "renamed", "failed patches changed nothing");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(vm, "policy"), "weight")), 42);
        json_decref(vm);
}

Test(api, vm_exitless_never_is_not_on_a_sidecore)
{
        json_t *vm = NULL, *scs;

        cr_assert_eq(req("POST", "/v1/vms",
                         "{\"name\":\"v\",\"policy\":{\"exitless\":\"never\"},\"devices\":[{\"backend\":\"loopback\"}]}",
                         &vm), 201);
        cr_assert(json_is_null(json_array_get(
                json_object_get(json_array_get(json_object_get(vm, "devices"), 0), "sidecores"), 0)));
        json_decref(vm);
        scs = get("/v1/sidecores", 200);
        cr_assert_eq(json_array_size(json_object_get(scs, "sidecores")), 0);
        json_decref(scs);
        cr_assert_eq(req("PATCH", "/v1/vms/v", "{\"policy\":{\"exitless\":\"auto\"}}", &vm), 200);
        cr_assert(json_is_integer(json_array_get(
                json_object_get(json_array_get(json_object_get(vm, "devices"), 0), "sidecores"), 0)),
                  "switching to exitless puts the queue on a sidecore");
        json_decref(vm);
}

Test(api, vm_delete_releases_cpus)
{
        json_t *t, *p = NULL;

        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"vcpus\":2,\"devices\":[{\"backend\":\"loopback\"}]}",
                         NULL), 201);
        cr_assert_eq(req("DELETE", "/v1/vms/a", NULL, NULL), 200);
        cr_assert_eq(req("DELETE", "/v1/vms/a", NULL, &p), 404);
        json_decref(p);
        cr_assert_eq(req("GET", "/v1/vms/1", NULL, NULL), 404);
        t = get("/v1/topology", 200);
        for (size_t i = 1; i < 32; i++)
                cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(t, "cpus"), i),
                                                                   "role")), "free", "CPU %zu", i);
        json_decref(t);
        t = get("/v1/sidecores", 200);
        cr_assert_eq(json_array_size(json_object_get(t, "sidecores")), 0, "idle automatic sidecore released");
        json_decref(t);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"b\"}", &p), 201);
        cr_assert_eq(json_integer_value(json_object_get(p, "id")), 2, "ids are never reused");
        json_decref(p);
}

Test(api, sidecores)
{
        json_t *sc = NULL, *list, *vm = NULL;
        struct resp r;

        cr_assert_eq(http_json(&d, "POST", "/v1/sidecores", NULL, &r), 0);
        cr_assert_eq(r.status, 201, "empty body: placement picks the CPU: %s", r.body);
        cr_assert_str_eq(r.location, "/v1/sidecores/1");
        cr_assert_eq(json_integer_value(json_object_get(r.json, "cpu")), 30, "highest free whole core");
        resp_free(&r);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"cpu\":5}", &sc), 201);
        cr_assert_eq(json_integer_value(json_object_get(sc, "numa_node")), 0);
        json_decref(sc);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"cpu\":5}", &sc), 409);
        json_decref(sc);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"cpu\":4}", &sc), 409, "SMT sibling of a sidecore");
        json_decref(sc);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"cpu\":0}", &sc), 409);
        cr_assert(strstr(detail(sc), "reserved"));
        json_decref(sc);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"cpu\":999}", &sc), 400);
        cr_assert(strstr(detail(sc), "does not exist"));
        json_decref(sc);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"cpu\":-1}", NULL), 400);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"core\":1}", NULL), 400);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"devices\":[{\"backend\":\"loopback\",\"queues\":2}]}",
                         &vm), 201);
        json_decref(vm);
        list = get("/v1/sidecores", 200);
        cr_assert_eq(json_array_size(json_object_get(list, "sidecores")), 2);
        json_decref(list);
        sc = get("/v1/sidecores/2", 200);
        cr_assert_eq(json_integer_value(json_object_get(sc, "cpu")), 5);
        json_decref(sc);
        cr_assert_eq(req("GET", "/v1/sidecores/9", NULL, NULL), 404);
        /* removing a sidecore moves its queues to the other one */
        cr_assert_eq(req("DELETE", "/v1/sidecores/1", NULL, NULL), 200);
        cr_assert_eq(req("DELETE", "/v1/sidecores/1", NULL, NULL), 404);
        vm = get("/v1/vms/a", 200);
        {
                json_t *scs = json_object_get(json_array_get(json_object_get(vm, "devices"), 0), "sidecores");
                cr_assert_eq(json_integer_value(json_array_get(scs, 0)), 2);
                cr_assert_eq(json_integer_value(json_array_get(scs, 1)), 2);
        }
        json_decref(vm);
        sc = get("/v1/sidecores/2", 200);
        cr_assert_eq(json_array_size(json_object_get(sc, "queues")), 2);
        json_decref(sc);
        cr_assert_eq(req("DELETE", "/v1/sidecores/2", NULL, &sc), 409, "last sidecore with queues");
        cr_assert(strstr(detail(sc), "no other sidecore"), "%s", detail(sc));
        json_decref(sc);
}

Test(api, policy)
{
        json_t *p = get("/v1/policy", 200), *e = NULL;

        cr_assert_str_eq(json_string_value(json_object_get(p, "mode")), "static");
        cr_assert_eq(json_integer_value(json_object_get(p, "interval_ms")), 100);
        cr_assert_float_eq(json_real_value(json_object_get(p, "scale_up_idle")), 0.12, 1e-9);
        json_decref(p);
        cr_assert_eq(req("PUT", "/v1/policy", "{\"budget_packets\":64,\"scale_down_idle\":0.7}", &p), 200);
        cr_assert_eq(json_integer_value(json_object_get(p, "budget_packets")), 64);
        cr_assert_eq(json_integer_value(json_object_get(p, "interval_ms")), 100);
        json_decref(p);
        cr_assert_eq(req("PATCH", "/v1/policy", "{\"mode\":\"dynamic\"}", NULL), 200);
        cr_assert_eq(req("PUT", "/v1/policy", "{\"min_sidecores\":10,\"max_sidecores\":2}", &e), 400);
        cr_assert(strstr(detail(e), "exceeds max_sidecores"));
        json_decref(e);
        cr_assert_eq(req("PUT", "/v1/policy", "{\"speed\":11}", NULL), 400);
        cr_assert_eq(req("PUT", "/v1/policy", "{\"interval_ms\":\"fast\"}", NULL), 400);
        cr_assert_eq(req("PUT", "/v1/policy", "[]", NULL), 400);
        p = get("/v1/policy", 200);
        cr_assert_str_eq(json_string_value(json_object_get(p, "mode")), "dynamic");
        cr_assert_eq(json_integer_value(json_object_get(p, "max_sidecores")), 64, "failed PUT changed nothing");
        json_decref(p);
}

Test(api, stats_and_metrics)
{
        json_t *s;
        struct resp r;

        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"web1\",\"devices\":[{\"backend\":\"loopback\"}]}", NULL), 201);
        s = get("/v1/stats", 200);
        cr_assert(json_is_true(json_object_get(s, "available")));
        cr_assert_eq(json_array_size(json_object_get(s, "sidecores")), 1);
        cr_assert_eq(json_array_size(json_object_get(s, "queues")), 1);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(s, "queues"), 0), "vm_name")),
                         "web1");
        cr_assert_eq(json_array_size(json_object_get(s, "vms")), 1);
        json_decref(s);
        cr_assert_eq(http_json(&d, "GET", "/metrics", NULL, &r), 0);
        cr_assert_eq(r.status, 200);
        cr_assert(strstr(r.content_type, "text/plain"), "%s", r.content_type);
        cr_assert(strstr(r.body, "# TYPE elvis_queue_kicks_total counter"));
        cr_assert(strstr(r.body, "elvis_queue_kicks_total{vm=\"1\",vm_name=\"web1\",device=\"net0\",type=\"net\",queue=\"0\","
                                 "sidecore=\"1\"} "), "%s", r.body);
        cr_assert(strstr(r.body, "elvis_sidecore_busy_seconds_total{sidecore=\"1\",cpu=\""));
        cr_assert(strstr(r.body, "elvis_vm_busy_seconds_total{vm=\"1\",vm_name=\"web1\"}"));
        cr_assert(strstr(r.body, "elvis_dataplane_up 1"));
        cr_assert(strstr(r.body, "\nelvis_queue_connected{vm=\"1\",vm_name=\"web1\",device=\"net0\",type=\"net\",queue=\"0\","
                                 "sidecore=\"1\"} 1\n"), "the fake's queues are ready");
        cr_assert(strstr(r.body, "\nelvis_queue_error{vm=\"1\",vm_name=\"web1\",device=\"net0\",type=\"net\",queue=\"0\","
                                 "sidecore=\"1\"} 0\n"));
        /* every policy's series exists before its first decision */
        cr_assert(strstr(r.body, "\nelvis_decisions_total{policy=\"scaling\",outcome=\"applied\"} 0\n"));
        cr_assert(strstr(r.body, "\nelvis_decisions_total{policy=\"regret\",outcome=\"failed\"} 0\n"));
        /* a data plane that cannot measure stolen time declares the family, with no sample */
        cr_assert(strstr(r.body, "# TYPE elvis_sidecore_stolen_seconds_total counter\n# HELP"), "%s", r.body);
        resp_free(&r);
}

Test(api, socket_is_0660)
{
        struct stat st;

        cr_assert_eq(stat(d.sock, &st), 0);
        cr_assert_eq(st.st_mode & 0777, 0660, "mode %o", st.st_mode & 0777);
        cr_assert(S_ISSOCK(st.st_mode));
}

Test(api_nodp, health_reports_missing_dataplane, .timeout = 60)
{
        struct daemon n;
        struct resp r;
        json_t *dp;

        daemon_init(&n, ELVIS_MANAGER);
        daemon_arg(&n, "--dataplane");
        daemon_arg(&n, "kernel");       /* no elvis.ko on this host */
        cr_assert_eq(daemon_start(&n), 0);
        cr_assert_eq(http_json(&n, "GET", "/v1/health", NULL, &r), 0);
        cr_assert_eq(r.status, 200);
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "degraded");
        dp = json_object_get(r.json, "dataplane");
        cr_assert_str_eq(json_string_value(json_object_get(dp, "state")), "absent");
        cr_assert(json_is_null(json_object_get(dp, "implementation")));
        resp_free(&r);
        /* alive (200 above) but not ready: readiness has a status of its own */
        cr_assert_eq(http_json(&n, "GET", "/v1/health/ready", NULL, &r), 0);
        cr_assert_eq(r.status, 503, "%s", r.body);
        cr_assert_str_eq(r.content_type, "application/problem+json");
        cr_assert(json_is_false(json_object_get(r.json, "ready")), "%s", r.body);
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "detail")),
                         "not ready: kernel data plane is not available on this host");
        resp_free(&r);
        cr_assert_eq(http(&n, "HEAD", "/v1/health/ready", NULL, NULL, 0, &r), 0);
        cr_assert_eq(r.status, 503, "a probe may use HEAD");
        resp_free(&r);
        cr_assert_eq(http_json(&n, "GET", "/v1/stats", NULL, &r), 0);
        cr_assert(json_is_false(json_object_get(r.json, "available")), "no pretend counters");
        cr_assert_eq(json_array_size(json_object_get(r.json, "queues")), 0);
        resp_free(&r);
        cr_assert_eq(daemon_stop(&n), 0);
        daemon_cleanup(&n);
}

/* ---- queues without a sidecore, on a 2-CPU host: CPU 0 is reserved, and a VM with a
 * vCPU takes CPU 1, leaving no core for a sidecore ---- */

#define TOPO_2CPU ELVIS_SOURCE_DIR "/tests/data/topo-2cpu.xml"

static void start_2cpu(void)
{
        daemon_init(&d, ELVIS_MANAGER_FAKE);
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, TOPO_2CPU);
        cr_assert_eq(daemon_start(&d), 0);
}

TestSuite(unserved, .init = start_2cpu, .fini = stop, .timeout = 60);

/* The events after since, waiting (long poll) until at least one is there. */
static json_t *events_after(long long since)
{
        char path[96];
        json_t *doc, *ev;

        snprintf(path, sizeof(path), "/v1/events?since=%lld&wait=10", since);
        doc = get(path, 200);
        ev = json_incref(json_object_get(doc, "events"));
        json_decref(doc);
        cr_assert_gt(json_array_size(ev), 0, "no event within 10 s");
        return ev;
}

static json_t *find_event(json_t *events, const char *name)
{
        json_t *ev;
        size_t i;

        json_array_foreach(events, i, ev) {
                const char *e = json_string_value(json_object_get(ev, "event"));
                if (e && !strcmp(e, name))
                        return ev;
        }
        return NULL;
}

Test(unserved, warned_journalled_planned_and_served_when_a_core_frees)
{
        json_t *h, *w, *evs, *ev, *plan;

        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"a\",\"vcpus\":1}", NULL), 201);
        cr_assert_eq(req("POST", "/v1/vms", "{\"name\":\"web1\",\"devices\":[{\"backend\":\"loopback\",\"queues\":2}]}",
                         NULL), 201, "a VM without a sidecore is still added");
        /* the journal says it once, with the reason */
        evs = events_after(0);
        ev = find_event(evs, "queues_unserved");
        cr_assert_not_null(ev, "%s", json_dumps(evs, 0));
        cr_assert_str_eq(json_string_value(json_object_get(ev, "source")), "control");
        cr_assert_eq(json_integer_value(json_object_get(ev, "vm")), 2);
        cr_assert_str_eq(json_string_value(json_object_get(ev, "name")), "web1");
        cr_assert_eq(json_integer_value(json_object_get(ev, "queues")), 2);
        cr_assert(strstr(json_string_value(json_object_get(ev, "reason")), "no whole free core for a sidecore"), "%s",
                  json_string_value(json_object_get(ev, "reason")));
        json_decref(evs);
        /* health warns, and stays ready: the daemon serves the other VMs */
        h = get("/v1/health", 200);
        cr_assert_str_eq(json_string_value(json_object_get(h, "status")), "ok");
        cr_assert_eq(json_array_size(json_object_get(h, "warnings")), 1, "%s", json_dumps(h, 0));
        w = json_array_get(json_object_get(h, "warnings"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(w, "kind")), "queues_unserved");
        cr_assert_eq(json_integer_value(json_object_get(w, "vm")), 2);
        cr_assert_eq(json_integer_value(json_object_get(w, "queues")), 2);
        cr_assert(strstr(json_string_value(json_object_get(w, "message")),
                         "VM 2 'web1': 2 queue(s) have no sidecore and get no I/O: "), "%s",
                  json_string_value(json_object_get(w, "message")));
        json_decref(h);
        json_decref(get("/v1/health/ready", 200));
        /* the plan lists them instead of "nothing to change" */
        plan = get("/v1/plan", 200);
        cr_assert_eq(json_array_size(json_object_get(plan, "unserved")), 2, "%s", json_dumps(plan, 0));
        ev = json_array_get(json_object_get(plan, "unserved"), 1);
        cr_assert_str_eq(json_string_value(json_object_get(ev, "vm_name")), "web1");
        cr_assert_str_eq(json_string_value(json_object_get(ev, "device")), "net0");
        cr_assert_eq(json_integer_value(json_object_get(ev, "queue")), 1);
        cr_assert(json_is_string(json_object_get(plan, "unserved_reason")));
        json_decref(plan);
        /* a restart restores the state, and says so again */
        cr_assert_eq(daemon_stop(&d), 0);
        cr_assert_eq(daemon_start(&d), 0);
        evs = get("/v1/events", 200);
        ev = find_event(json_object_get(evs, "events"), "queues_unserved");
        cr_assert_not_null(ev, "%s", json_dumps(evs, 0));
        cr_assert_eq(json_integer_value(json_object_get(ev, "vm")), 2);
        cr_assert_eq(json_integer_value(json_object_get(evs, "last")), 1, "%s", json_dumps(evs, 0));
        json_decref(evs);
        /* removing a frees CPU 1: web1's queues get a sidecore there, and that is journalled too */
        cr_assert_eq(req("DELETE", "/v1/vms/a", NULL, NULL), 200);
        evs = events_after(1);
        ev = find_event(evs, "queues_served");
        cr_assert_not_null(ev, "%s", json_dumps(evs, 0));
        cr_assert_eq(json_integer_value(json_object_get(ev, "vm")), 2);
        json_decref(evs);
        h = get("/v1/health", 200);
        cr_assert_eq(json_array_size(json_object_get(h, "warnings")), 0, "%s", json_dumps(h, 0));
        json_decref(h);
        h = get("/v1/vms/web1", 200);
        cr_assert_eq(json_integer_value(json_array_get(json_object_get(json_array_get(json_object_get(h, "devices"), 0),
                                                                       "sidecores"), 0)), 1, "%s", json_dumps(h, 0));
        json_decref(h);
        plan = get("/v1/plan", 200);
        cr_assert_eq(json_array_size(json_object_get(plan, "unserved")), 0);
        cr_assert_null(json_object_get(plan, "unserved_reason"));
        json_decref(plan);
}

/* The exit-less capability probe reads sysfs; ELVIS_SYSFS points it at a tree made here. */
static void start_with_sysfs(bool kvm)
{
        static char env[256];
        char path[256];

        daemon_init(&d, ELVIS_MANAGER_FAKE);
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, TOPO);
        snprintf(env, sizeof(env), "ELVIS_SYSFS=%s/sys", d.dir);
        daemon_env(&d, env);
        if (kvm) {
                static const char *const files[][2] = {
                        { "module/kvm_intel/parameters/enable_apicv", "Y\n" },
                        { "module/kvm/parameters/halt_poll_ns", "200000\n" },
                        { "devices/system/cpu/isolated", "2-3\n" },
                        { "devices/system/cpu/nohz_full", "(null)\n" },
                };
                for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                        char cmd[512];
                        FILE *f;
                        snprintf(path, sizeof(path), "%s/sys/%s", d.dir, files[i][0]);
                        snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
                        cr_assert_eq(system(cmd), 0);
                        cr_assert_not_null(f = fopen(path, "w"));
                        fputs(files[i][1], f);
                        fclose(f);
                }
        }
        cr_assert_eq(daemon_start(&d), 0);
}

TestSuite(probe, .fini = stop, .timeout = 60);

Test(probe, exitless_capabilities_from_sysfs)
{
        json_t *t, *x, *sc;

        start_with_sysfs(true);
        cr_assert_eq(req("POST", "/v1/sidecores", "{\"cpu\":2}", NULL), 201);
        t = get("/v1/topology", 200);
        x = json_object_get(t, "exitless");
        cr_assert_str_eq(json_string_value(json_object_get(x, "posted_interrupts")), "yes");
        cr_assert_str_eq(json_string_value(json_object_get(x, "posted_interrupts_source")), "kvm_intel.enable_apicv");
        cr_assert_eq(json_integer_value(json_object_get(x, "halt_poll_ns")), 200000);
        sc = json_array_get(json_object_get(x, "sidecores"), 0);
        cr_assert_eq(json_integer_value(json_object_get(sc, "cpu")), 2);
        cr_assert(json_is_true(json_object_get(sc, "isolated")), "CPU 2 is in isolcpus");
        cr_assert(json_is_false(json_object_get(sc, "nohz_full")), "nohz_full is off");
        json_decref(t);
}

Test(probe, unknown_when_sysfs_says_nothing)
{
        json_t *t, *x;

        start_with_sysfs(false);
        t = get("/v1/topology", 200);
        x = json_object_get(t, "exitless");
        cr_assert_str_eq(json_string_value(json_object_get(x, "posted_interrupts")), "unknown", "never a guess");
        cr_assert(json_is_null(json_object_get(x, "posted_interrupts_source")));
        cr_assert_str_eq(json_string_value(json_object_get(x, "halt_poll_ns")), "unknown");
        cr_assert_str_eq(json_string_value(json_object_get(x, "isolated_cpus")), "unknown");
        json_decref(t);
}
