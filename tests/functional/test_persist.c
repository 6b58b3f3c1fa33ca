/* Functional tests: state survives restarts and kill -9, corruption is moved aside,
 * and a failing data plane leaves nothing half-applied. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TOPO ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml"

static struct daemon d;
static char fake_log_env[200], fake_log[160];

static void init_fake(void)
{
        daemon_init(&d, ELVIS_MANAGER_FAKE);
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, TOPO);
        snprintf(fake_log, sizeof(fake_log), "%s/fake.log", d.dir);
        snprintf(fake_log_env, sizeof(fake_log_env), "ELVIS_FAKE_LOG=%s", fake_log);
        daemon_env(&d, fake_log_env);
}

static void fini(void)
{
        daemon_cleanup(&d);
}

TestSuite(persist, .init = init_fake, .fini = fini, .timeout = 120);

static long post(const char *path, const char *body)
{
        struct resp r;
        long s;

        if (http_json(&d, "POST", path, body, &r) != 0)
                return -1;
        s = r.status;
        resp_free(&r);
        return s;
}

static json_t *get_json(const char *path)
{
        struct resp r;
        json_t *j;

        cr_assert_eq(http_json(&d, "GET", path, NULL, &r), 0);
        cr_assert_eq(r.status, 200);
        j = json_incref(r.json);
        resp_free(&r);
        return j;
}

Test(persist, restart_restores_vms_sidecores_policy_and_dataplane)
{
        json_t *before, *after;
        char *log;

        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(post("/v1/sidecores", "{\"cpu\":9}"), 201);
        cr_assert_eq(post("/v1/vms", "{\"name\":\"a\",\"vcpus\":2,\"devices\":[{\"backend\":\"loopback\",\"queues\":2}]}"),
                     201);
        cr_assert_eq(post("/v1/vms", "{\"name\":\"b\",\"domain\":\"dom-b\",\"policy\":{\"weight\":7},"
                                     "\"devices\":[{\"tap\":\"tb\"}]}"), 201);
        {
                struct resp r;
                cr_assert_eq(http_json(&d, "PUT", "/v1/policy", "{\"budget_packets\":33}", &r), 0);
                cr_assert_eq(r.status, 200);
                resp_free(&r);
        }
        before = get_json("/v1/vms");
        cr_assert_eq(daemon_stop(&d), 0);
        unlink(fake_log);
        cr_assert_eq(daemon_start(&d), 0);
        after = get_json("/v1/vms");
        cr_assert(json_equal(before, after), "VMs differ after restart");
        json_decref(before);
        json_decref(after);
        after = get_json("/v1/policy");
        cr_assert_eq(json_integer_value(json_object_get(after, "budget_packets")), 33);
        json_decref(after);
        after = get_json("/v1/sidecores/1");
        cr_assert_eq(json_integer_value(json_object_get(after, "cpu")), 9);
        json_decref(after);
        /* the fresh data plane got everything back */
        log = slurp_file(fake_log);
        cr_assert(strstr(log, "sidecore_create 1 9"), "%s", log);
        cr_assert(strstr(log, "device_attach 1 net0 queues=2 backend=loopback"), "%s", log);
        cr_assert(strstr(log, "device_attach 2 net0 queues=1 backend=tap"), "%s", log);
        cr_assert(strstr(log, "queue_assign 1 net0 1 1"), "%s", log);
        cr_assert(strstr(log, "set_params budget_packets=33"), "%s", log);
        free(log);
        /* ids continue after a restart */
        cr_assert_eq(post("/v1/vms", "{\"name\":\"c\"}"), 201);
        after = get_json("/v1/vms/c");
        cr_assert_eq(json_integer_value(json_object_get(after, "id")), 3);
        json_decref(after);
        cr_assert_eq(daemon_stop(&d), 0);
}

/* A first start has nothing to restore and says so; the next start restores what the
 * first one saved on its way out. */
Test(persist, first_start_restores_nothing_the_next_one_does)
{
        char *log;

        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(daemon_stop(&d), 0);
        log = daemon_log(&d);
        cr_assert(strstr(log, "/state.json yet (first start): starting with no VMs and no sidecores"), "%s", log);
        cr_assert_null(strstr(log, "restored"), "nothing was restored on a first start:\n%s", log);
        free(log);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(daemon_stop(&d), 0);
        log = daemon_log(&d);
        cr_assert(strstr(log, "state: 0 VMs, 0 sidecores restored from "), "%s", log);
        {
                const char *first = strstr(log, "first start");
                cr_assert(first && !strstr(first + 1, "first start"), "only the first start says so:\n%s", log);
        }
        free(log);
}

Test(persist, corrupt_state_is_moved_aside)
{
        char path[256], *log;
        FILE *f;
        json_t *vms;

        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(daemon_stop(&d), 0);
        snprintf(path, sizeof(path), "%s/state.json", d.state_dir);
        f = fopen(path, "w");
        fputs("{\"format\":\"elvis-state\",\"vers", f);
        fclose(f);
        cr_assert_eq(daemon_start(&d), 0, "a corrupt state file does not stop the daemon");
        vms = get_json("/v1/vms");
        cr_assert_eq(json_array_size(json_object_get(vms, "vms")), 0);
        json_decref(vms);
        log = daemon_log(&d);
        cr_assert(strstr(log, "moved corrupt state file to"), "%s", log);
        free(log);
        cr_assert_eq(daemon_stop(&d), 0);
}

static void failing_dataplane_keeps_state(const char *op, const char *body, const char *path, const char *method)
{
        char env[64], statepath[256], *before, *after;
        struct resp r;

        snprintf(env, sizeof(env), "ELVIS_FAKE_FAIL=%s", op);
        daemon_env(&d, env);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(post("/v1/vms", "{\"name\":\"base\",\"devices\":[{\"backend\":\"loopback\"}]}"),
                     strcmp(op, "device_attach") && strcmp(op, "queue_assign") && strcmp(op, "sidecore_create")
                             ? 201 : 500);
        snprintf(statepath, sizeof(statepath), "%s/state.json", d.state_dir);
        before = slurp_file(statepath);
        cr_assert_eq(http_json(&d, method, path, body, &r), 0);
        cr_assert_eq(r.status, 500, "%s with %s failing: %ld %s", path, op, r.status, r.body);
        cr_assert(strstr(json_string_value(json_object_get(r.json, "detail")), "data plane refused"));
        resp_free(&r);
        after = slurp_file(statepath);
        cr_assert_str_eq(before, after, "state changed although the data plane refused");
        free(before);
        free(after);
        cr_assert_eq(daemon_stop(&d), 0);
}

Test(persist, failed_attach_changes_nothing)
{
        failing_dataplane_keeps_state("device_attach", "{\"name\":\"x\",\"devices\":[{}]}", "/v1/vms", "POST");
}

Test(persist, failed_queue_assign_changes_nothing)
{
        failing_dataplane_keeps_state("queue_assign", "{\"name\":\"x\",\"devices\":[{}]}", "/v1/vms", "POST");
}

Test(persist, failed_detach_changes_nothing)
{
        failing_dataplane_keeps_state("device_detach", NULL, "/v1/vms/base", "DELETE");
}

Test(persist, failed_policy_push_changes_nothing)
{
        failing_dataplane_keeps_state("set_params", "{\"budget_packets\":5}", "/v1/policy", "PUT");
}

/* A writer adds VMs as fast as it can; the daemon is killed with SIGKILL at a random
 * moment. Every VM whose 201 arrived must be there after a restart, and the state file
 * must never be torn (the restart would log it as corrupt). */
Test(persist, kill9_during_writes_never_tears_state)
{
        unsigned seed = (unsigned)time(NULL);

        srand(seed);
        cr_log_info("seed %u", seed);
        cr_assert_eq(daemon_start(&d), 0);
        for (int round = 0; round < 8; round++) {
                int pipefd[2];
                pid_t writer;
                char acked[64][32];
                int nacked = 0;

                cr_assert_eq(pipe(pipefd), 0);
                writer = fork();
                if (writer == 0) {
                        close(pipefd[0]);
                        for (int i = 0; i < 400; i++) {
                                char body[96];
                                struct resp r;
                                snprintf(body, sizeof(body), "{\"name\":\"r%dv%d\",\"devices\":[{\"backend\":\"loopback\"}]}",
                                         round, i);
                                if (http_json(&d, "POST", "/v1/vms", body, &r) != 0)
                                        _exit(0);
                                if (r.status == 201 && dprintf(pipefd[1], "r%dv%d\n", round, i) < 0)
                                        _exit(0);
                                resp_free(&r);
                        }
                        _exit(0);
                }
                close(pipefd[1]);
                /* let some writes through, then kill at a random point */
                {
                        FILE *in = fdopen(pipefd[0], "r");
                        char line[32];
                        int want = 1 + rand() % 6;
                        while (nacked < want && fgets(line, sizeof(line), in)) {
                                line[strcspn(line, "\n")] = '\0';
                                snprintf(acked[nacked++], sizeof(acked[0]), "%s", line);
                        }
                        usleep((useconds_t)(rand() % 3000));
                        daemon_kill9(&d);
                        while (nacked < 64 && fgets(line, sizeof(line), in)) {
                                line[strcspn(line, "\n")] = '\0';
                                snprintf(acked[nacked++], sizeof(acked[0]), "%s", line);
                        }
                        fclose(in);
                }
                waitpid(writer, NULL, 0);
                cr_assert_eq(daemon_start(&d), 0, "round %d: restart after kill -9", round);
                {
                        char *log = daemon_log(&d);
                        cr_assert_null(strstr(log, "corrupt"), "round %d: torn state file:\n%s", round, log);
                        free(log);
                }
                for (int i = 0; i < nacked; i++) {
                        char path[96];
                        struct resp r;
                        snprintf(path, sizeof(path), "/v1/vms/%.31s", acked[i]);
                        cr_assert_eq(http_json(&d, "GET", path, NULL, &r), 0);
                        cr_assert_eq(r.status, 200, "round %d: acknowledged VM %s lost", round, acked[i]);
                        resp_free(&r);
                }
                cr_assert_gt(nacked, 0);
        }
        cr_assert_eq(daemon_stop(&d), 0);
}
