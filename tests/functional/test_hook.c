/* Functional tests of packaging/libvirt/qemu-hook against the daemon (fake data plane, no
 * libvirt): it adds only domains that opted in (ELVIS metadata, or adopt-domains), logs
 * one line for any other and lets it start (exit 0, strict or not); it still fails a
 * domain in strict mode when the daemon cannot be asked. `logger` is replaced by a script
 * that writes the hook's log lines to a file. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HOOK ELVIS_SOURCE_DIR "/packaging/libvirt/qemu-hook"
#define META "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1' weight='250'/></metadata>"

static struct daemon d;
static char bindir[128], logpath[128], conf[128], path_env[4200], log_env[160], sock_env[200];
static char *hook_stdout;       /* what the last hook run printed on standard output */

static void write_file(const char *path, const char *text, mode_t mode)
{
        FILE *f = fopen(path, "w");

        cr_assert_not_null(f, "%s", path);
        fputs(text, f);
        fclose(f);
        cr_assert_eq(chmod(path, mode), 0);
}

static void setup(void)
{
        char logger[160];

        daemon_init(&d, ELVIS_MANAGER_FAKE);
        snprintf(bindir, sizeof(bindir), "%s/bin", d.dir);
        cr_assert_eq(mkdir(bindir, 0755), 0);
        snprintf(logger, sizeof(logger), "%s/logger", bindir);
        write_file(logger, "#!/bin/sh\n# logger -t TAG -- MESSAGE\nshift 3\nprintf '%s\\n' \"$*\" >>\"$HOOK_LOG\"\n",
                   0755);
        snprintf(logpath, sizeof(logpath), "%s/hook.log", d.dir);
        snprintf(path_env, sizeof(path_env), "PATH=%s:%s", bindir, getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin");
        snprintf(log_env, sizeof(log_env), "HOOK_LOG=%s", logpath);
        snprintf(sock_env, sizeof(sock_env), "ELVIS_SOCKET=%s", d.sock);
        snprintf(conf, sizeof(conf), "%s/elvis.conf", d.dir);
        write_file(conf, "# adopt-domains is set by the tests\n", 0644);
        daemon_arg(&d, "--config");
        daemon_arg(&d, conf);
        daemon_arg(&d, "--topology-xml");
        daemon_arg(&d, ELVIS_SOURCE_DIR "/tests/data/topo-2x4.xml");
        cr_assert_eq(daemon_start(&d), 0);
}

static void teardown(void)
{
        if (daemon_alive(&d))
                cr_expect_eq(daemon_stop(&d), 0, "clean exit");
        daemon_cleanup(&d);
        free(hook_stdout);
        hook_stdout = NULL;
}

TestSuite(hook, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the hook as libvirtd does (DOMAIN OPERATION SUBOP EXTRA, the XML on stdin);
 * returns its exit status. strict: ELVIS_HOOK_STRICT=1. */
static int hook(const char *domain, const char *op, const char *metadata, bool strict, const char *socket)
{
        char xml[512], xmlpath[160], sock[200];
        const char *argv[] = { "/bin/sh", "-c", "exec \"$0\" \"$1\" \"$2\" begin - <\"$3\"", HOOK, domain, op,
                               xmlpath, NULL };
        const char *env[] = { path_env, log_env, socket ? sock : sock_env,
                              strict ? "ELVIS_HOOK_STRICT=1" : "ELVIS_HOOK_STRICT=0", NULL };
        char *out, *err;
        int r;

        snprintf(sock, sizeof(sock), "ELVIS_SOCKET=%s", socket ? socket : "");
        snprintf(xml, sizeof(xml), "<domain type='kvm'><name>%s</name><vcpu>1</vcpu>%s<devices/></domain>", domain,
                 metadata ? metadata : "");
        snprintf(xmlpath, sizeof(xmlpath), "%s/%s.xml", d.dir, domain);
        write_file(xmlpath, xml, 0644);
        r = run_cmd(argv, env, &out, &err);
        cr_assert_str_empty(err, "the hook logs through logger: %s", err);
        free(hook_stdout);
        hook_stdout = out;
        free(err);
        return r;
}

/* The hook's log so far ("" when nothing was logged). */
static char *hook_log(void)
{
        char *s = slurp_file(logpath);
        return s ? s : strdup("");
}

static bool vm_listed(const char *name)
{
        struct resp r;
        json_t *vm;
        size_t i;
        bool found = false;

        cr_assert_eq(http_json(&d, "GET", "/v1/vms", NULL, &r), 0);
        json_array_foreach(json_object_get(r.json, "vms"), i, vm)
                found |= strcmp(json_string_value(json_object_get(vm, "name")), name) == 0;
        resp_free(&r);
        return found;
}

Test(hook, domains_without_metadata_are_left_alone)
{
        char *log;

        cr_assert_eq(hook("plain1", "prepare", NULL, false, NULL), 0, "the domain starts");
        cr_assert_eq(hook("plain2", "prepare", NULL, true, NULL), 0, "not opted in is not a failure, even strict");
        cr_assert_not(vm_listed("plain1"));
        cr_assert_not(vm_listed("plain2"));
        log = hook_log();
        cr_assert(strstr(log, "domain plain1 has no ELVIS metadata and adopt-domains does not name it: left alone "
                              "(to opt in, add <elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'/> to its "
                              "<metadata>, or its name to adopt-domains)\n"),
                  "one line naming the domain and how to opt in:\n%s", log);
        cr_assert(strstr(log, "domain plain2 has no ELVIS metadata"), "%s", log);
        free(log);
        cr_assert_eq(hook("plain1", "release", NULL, true, NULL), 0);
        log = hook_log();
        cr_assert_null(strstr(log, "did not release"), "releasing an unmanaged domain is quiet: %s", log);
        free(log);
}

Test(hook, domains_with_metadata_are_added_and_released)
{
        struct resp r;
        char *log;

        cr_assert_eq(hook("meta1", "prepare", META, true, NULL), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms/meta1", NULL, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "policy"), "weight")), 250);
        resp_free(&r);
        cr_assert_eq(hook("meta1", "prepare", META, true, NULL), 0, "a second prepare: already managed");
        cr_assert_eq(hook("meta1", "release", META, true, NULL), 0);
        cr_assert_not(vm_listed("meta1"));
        log = hook_log();
        cr_assert(strstr(log, "meta1 added to elvis-manager\n"), "%s", log);
        cr_assert(strstr(log, "meta1 already managed by elvis-manager\n"), "%s", log);
        cr_assert(strstr(log, "meta1 released by elvis-manager\n"), "%s", log);
        free(log);
}

/* adopt-domains in elvis.conf, and a SIGHUP that changes it (applied live). */
Test(hook, adopt_domains_names_domains_without_metadata)
{
        cr_assert_eq(daemon_stop(&d), 0);
        write_file(conf, "adopt-domains = web-*\n", 0644);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(hook("web-1", "prepare", NULL, true, NULL), 0);
        cr_assert_eq(hook("db-1", "prepare", NULL, true, NULL), 0);
        cr_assert(vm_listed("web-1"), "named by adopt-domains");
        cr_assert_not(vm_listed("db-1"));
        write_file(conf, "adopt-domains = web-*, db-*\n", 0644);
        cr_assert_eq(kill(d.pid, SIGHUP), 0);
        /* the reload runs on the event loop: requests after RELOADING=1 see its outcome */
        cr_assert(daemon_wait_notify(&d, "RELOADING=1", 10000));
        cr_assert_eq(hook("db-1", "prepare", NULL, true, NULL), 0);
        cr_assert(vm_listed("db-1"), "SIGHUP applied the new adopt-domains");
}

/* Strict mode still stops a domain ELVIS should have taken but could not be asked about. */
Test(hook, strict_mode_fails_when_the_daemon_is_unreachable)
{
        char missing[160], *log;

        snprintf(missing, sizeof(missing), "%s/no-such.sock", d.dir);
        cr_assert_eq(hook("meta2", "prepare", META, false, missing), 0, "not strict: the domain starts");
        cr_assert_eq(hook("meta2", "prepare", META, true, missing), 1, "strict: libvirt is told to fail the start");
        log = hook_log();
        cr_assert(strstr(log, "elvis-manager unreachable for meta2"), "%s", log);
        free(log);
}

/* The API's answer the hook relies on: a 403 problem of its own type, naming the domain. */
Test(hook, api_refuses_domain_xml_that_did_not_opt_in)
{
        json_t *body = json_pack("{s:s}", "domain_xml", "<domain><name>plain9</name><vcpu>1</vcpu></domain>");
        char *text = json_dumps(body, 0);
        struct resp r;

        cr_assert_eq(http_json(&d, "POST", "/v1/vms", text, &r), 0);
        cr_assert_eq(r.status, 403, "%s", r.body);
        cr_assert_str_eq(r.content_type, "application/problem+json");
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "type")), "urn:elvis:problem:not-opted-in");
        cr_assert(strstr(json_string_value(json_object_get(r.json, "detail")), "domain plain9 has no ELVIS metadata"),
                  "%s", r.body);
        resp_free(&r);
        free(text);
        json_decref(body);
        cr_assert_not(vm_listed("plain9"));
        /* an explicit request naming the domain (elvisctl vm add --domain) is the operator's choice */
        cr_assert_eq(http_json(&d, "POST", "/v1/vms", "{\"name\": \"plain9\", \"domain\": \"plain9\", \"vcpus\": 1}",
                               &r), 0);
        cr_assert_eq(r.status, 201, "%s", r.body);
        resp_free(&r);
}

/* The destination of a live migration: libvirtd runs `qemu DOM migrate begin -` with the
 * domain XML on stdin before it starts QEMU there, and takes the hook's standard output
 * as the domain XML (empty: unchanged). The source's pins came with the XML: the hook
 * replaces them with the CPUs ELVIS placed the VM on here, and keeps the rest. */
Test(hook, migrate_adds_the_arriving_domain_before_qemu_starts)
{
        struct resp r;
        json_t *ev;
        size_t i;
        bool journalled = false;
        char *log, want[256];

        cr_assert_eq(hook("mig1", "migrate", META "<cputune><vcpupin vcpu='0' cpuset='3'/><emulatorpin cpuset='0'/></cputune>",
                          true, NULL), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms/mig1", NULL, &r), 0);
        cr_assert_eq(r.status, 200, "%s", r.body);
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "migration")), "incoming", "%s", r.body);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r.json, "policy"), "weight")), 250);
        snprintf(want, sizeof(want),
                 "<domain type='kvm'><name>mig1</name><vcpu>1</vcpu>" META
                 "<cputune><vcpupin vcpu=\"0\" cpuset=\"%s\"/><emulatorpin cpuset='0'/></cputune><devices/></domain>",
                 json_string_value(json_object_get(r.json, "cpus")));
        cr_assert_str_neq(json_string_value(json_object_get(r.json, "cpus")), "3", "placed elsewhere than the source's pin");
        cr_assert_str_eq(hook_stdout, want, "the XML with this host's pin, the rest unchanged");
        resp_free(&r);
        cr_assert_eq(http_json(&d, "GET", "/v1/events?since=0", NULL, &r), 0);
        json_array_foreach(json_object_get(r.json, "events"), i, ev)
                if (strcmp(json_string_value(json_object_get(ev, "event")), "migration_in") == 0) {
                        journalled = true;
                        cr_assert_str_eq(json_string_value(json_object_get(ev, "vm_name")), "mig1");
                        cr_assert(strstr(json_string_value(json_object_get(ev, "reason")),
                                         "domain mig1 arrives by live migration: VM 'mig1' added"), "%s", r.body);
                }
        resp_free(&r);
        cr_assert(journalled, "the arrival is journalled");
        /* a domain without <cputune> gets one */
        cr_assert_eq(hook("mig5", "migrate", META, true, NULL), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms/mig5", NULL, &r), 0);
        snprintf(want, sizeof(want),
                 "<domain type='kvm'><name>mig5</name><vcpu>1</vcpu>" META
                 "<devices/><cputune><vcpupin vcpu=\"0\" cpuset=\"%s\"/></cputune></domain>",
                 json_string_value(json_object_get(r.json, "cpus")));
        resp_free(&r);
        cr_assert_str_eq(hook_stdout, want);
        /* then libvirtd prepares QEMU: already there */
        cr_assert_eq(hook("mig1", "prepare", META, true, NULL), 0);
        cr_assert_str_empty(hook_stdout);
        log = hook_log();
        cr_assert(strstr(log, "mig1 added to elvis-manager for its incoming migration\n"), "%s", log);
        cr_assert(strstr(log, "mig1 already managed by elvis-manager\n"), "%s", log);
        free(log);
        {
                const char *argv[] = { ELVISCTL, "vm", "show", "mig1", NULL };
                const char *env[] = { sock_env, NULL };
                char *out, *err;
                cr_assert_eq(run_cmd(argv, env, &out, &err), 0, "%s", err);
                cr_assert(strstr(out, "  migration: incoming (adopted here; its guest has not run here yet)\n"), "%s",
                          out);
                free(out);
                free(err);
        }
        /* the mark is in state.json: a restart mid-migration still knows */
        cr_assert_eq(daemon_stop(&d), 0);
        cr_assert_eq(daemon_start(&d), 0);
        cr_assert_eq(http_json(&d, "GET", "/v1/vms/mig1", NULL, &r), 0);
        cr_assert_str_eq(json_string_value(json_object_get(r.json, "migration")), "incoming", "%s", r.body);
        resp_free(&r);
        /* the migration failed: libvirtd releases the domain, and the journal says so */
        cr_assert_eq(hook("mig1", "release", META, true, NULL), 0);
        cr_assert_not(vm_listed("mig1"));
        journalled = false;
        cr_assert_eq(http_json(&d, "GET", "/v1/events?since=0", NULL, &r), 0);
        json_array_foreach(json_object_get(r.json, "events"), i, ev)
                if (strcmp(json_string_value(json_object_get(ev, "event")), "migration_in_failed") == 0) {
                        journalled = true;
                        cr_assert(strstr(json_string_value(json_object_get(ev, "reason")),
                                         "stopped before its incoming migration completed: VM 1 'mig1' removed "
                                         "through the API (qemu hook release)"), "%s", r.body);
                }
        resp_free(&r);
        cr_assert(journalled, "a failed arrival is journalled");
}

Test(hook, migrate_leaves_domains_that_did_not_opt_in_and_fails_only_when_strict)
{
        char missing[160], *log;

        cr_assert_eq(hook("plainmig", "migrate", NULL, true, NULL), 0, "not opted in: the migration goes on");
        cr_assert_str_empty(hook_stdout);
        cr_assert_not(vm_listed("plainmig"));
        snprintf(missing, sizeof(missing), "%s/no-such.sock", d.dir);
        cr_assert_eq(hook("meta4", "migrate", META, false, missing), 0, "not strict: the migration goes on");
        cr_assert_str_empty(hook_stdout);
        cr_assert_eq(hook("meta4", "migrate", META, true, missing), 1,
                     "strict: libvirtd cancels the incoming migration (the source keeps running)");
        cr_assert_str_empty(hook_stdout);
        log = hook_log();
        cr_assert(strstr(log, "domain plainmig has no ELVIS metadata"), "%s", log);
        cr_assert(strstr(log, "elvis-manager unreachable for meta4"), "%s", log);
        free(log);
}
