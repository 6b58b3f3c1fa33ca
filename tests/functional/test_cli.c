/* Functional tests of elvisctl against the real daemon: every command, both output
 * formats, exit codes, the unreachable-daemon hint and completion. */
#include <criterion/criterion.h>

#include "../lib/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOPO ELVIS_SOURCE_DIR "/tests/data/topo-4numa-nic.xml"

static struct daemon d, kd;

/* The fake-data-plane daemon on the 4-node topology; dataplane NULL: the default. */
static void start_on_topology(struct daemon *x, const char *dataplane)
{
        daemon_init(x, ELVIS_MANAGER_FAKE);
        daemon_arg(x, "--topology-xml");
        daemon_arg(x, TOPO);
        if (dataplane) {
                daemon_arg(x, "--dataplane");
                daemon_arg(x, dataplane);
        }
        cr_assert_eq(daemon_start(x), 0);
}

static void setup(void)
{
        start_on_topology(&d, NULL);
}

static void teardown(void)
{
        cr_expect_eq(daemon_stop(&d), 0);
        daemon_cleanup(&d);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

static int cli(char **out, char **err, const char *const *args)
{
        int r = run_cli(&d, out, err, args);
        return r;
}

#define CLI(out, err, ...) cli(out, err, (const char *const[]){ __VA_ARGS__, NULL })

Test(cli, status_and_topology)
{
        char *out, *err;

        cr_assert_eq(CLI(&out, &err, "status"), 0, "%s", err);
        cr_assert(strstr(out, "status:     ok"), "%s", out);
        cr_assert(strstr(out, "data plane: user-process (running)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "topology"), 0);
        cr_assert(strstr(out, "0    0     0     0-1       reserved"), "%s", out);
        cr_assert(strstr(out, "ens2f0  0000:80:00.0  2"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "-o", "json", "topology"), 0);
        {
                json_t *j = json_loads(out, 0, NULL);
                cr_assert_eq(json_array_size(json_object_get(j, "cpus")), 32);
                json_decref(j);
        }
        free(out), free(err);
}

Test(cli, vm_lifecycle)
{
        char *out, *err;

        cr_assert_eq(CLI(&out, &err, "vm", "add", "web1", "--vcpus", "2", "--weight", "300", "--device",
                         "backend=loopback,queues=2", "--device", "id=mgmt,backend=tap,tap=tapm"), 0, "%s", err);
        cr_assert(strstr(out, "VM 1 'web1'"), "%s", out);
        cr_assert(strstr(out, "vCPUs:    2 on CPUs 2-3 (NUMA node 0)"), "%s", out);
        cr_assert(strstr(out, "device mgmt: tap tapm, 1 queue pair(s)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add", "probe", "--vcpus", "4", "--dry-run"), 0);
        cr_assert(strstr(out, "(dry run: not created)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "list"), 0);
        cr_assert(strstr(out, "1   web1  2-3   300     auto      net0:loopback  2       "), "%s", out);
        cr_assert_null(strstr(out, "probe"), "dry run created nothing");
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "set", "web1", "weight=42", "exitless=always", "name=web2"), 0, "%s", err);
        cr_assert(strstr(out, "weight 42, exitless always"));
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "-o", "json", "vm", "show", "web2"), 0);
        {
                json_t *j = json_loads(out, 0, NULL);
                cr_assert_eq(json_integer_value(json_object_get(json_object_get(j, "policy"), "weight")), 42);
                json_decref(j);
        }
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "remove", "1"), 0);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "show", "web2"), 1);
        cr_assert(strstr(err, "elvisctl: no VM with id or name 'web2' (HTTP 404)"), "%s", err);
        free(out), free(err);
}

Test(cli, api_errors_exit_1_with_the_detail)
{
        char *out, *err;

        cr_assert_eq(CLI(&out, &err, "vm", "add", "a"), 0);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add", "a"), 1);
        cr_assert(strstr(err, "a VM named 'a' already exists (HTTP 409)"), "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add", "b", "--weight", "10001"), 1);
        cr_assert(strstr(err, "between 1 and 10000"), "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add", "huge", "--vcpus", "64"), 1);
        cr_assert(strstr(err, "(HTTP 507)"), "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "policy", "set", "max_sidecores=0"), 1);
        free(out), free(err);
}

/* One line of JSON on stderr, parsed; fails the test unless err is exactly that. */
static json_t *problem_line(const char *err)
{
        json_error_t je;
        json_t *j;

        cr_assert(strlen(err) > 1 && err[strlen(err) - 1] == '\n' && !strchr(err, '\n')[1],
                  "one line on stderr: '%s'", err);
        j = json_loads(err, 0, &je);
        cr_assert(json_is_object(j), "not a JSON object (%s): %s", je.text, err);
        return j;
}

/* -o json: a script parses stdout on success and stderr on failure, never plain text. */
Test(cli, json_output_makes_errors_json_too)
{
        char *out, *err;
        json_t *p;

        cr_assert_eq(CLI(&out, &err, "-o", "json", "vm", "show", "nosuch"), 1);
        cr_assert_str_empty(out);
        p = problem_line(err);
        cr_assert_eq(json_integer_value(json_object_get(p, "status")), 404, "%s", err);
        cr_assert_str_eq(json_string_value(json_object_get(p, "detail")), "no VM with id or name 'nosuch'");
        cr_assert(json_is_string(json_object_get(p, "title")), "%s", err);
        cr_assert_eq(json_integer_value(json_object_get(p, "exit")), 1, "%s", err);
        json_decref(p);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "-o", "json", "vm", "add", "a", "--vcpus", "64"), 1);
        p = problem_line(err);
        cr_assert_eq(json_integer_value(json_object_get(p, "status")), 507, "%s", err);
        json_decref(p);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "-o", "json", "vm", "add"), 2);
        cr_assert_str_empty(out);
        p = problem_line(err);
        cr_assert_str_eq(json_string_value(json_object_get(p, "title")), "usage error");
        cr_assert_str_eq(json_string_value(json_object_get(p, "detail")), "vm add needs a NAME");
        cr_assert_eq(strncmp(json_string_value(json_object_get(p, "usage")), "elvisctl vm add NAME [--vcpus N] ", 33), 0,
                     "%s", err);
        cr_assert_null(json_object_get(p, "status"), "no HTTP status when no request was made: %s", err);
        cr_assert_eq(json_integer_value(json_object_get(p, "exit")), 2);
        json_decref(p);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "-o", "json", "frobnicate"), 2);
        p = problem_line(err);
        cr_assert_str_eq(json_string_value(json_object_get(p, "detail")), "unknown command 'frobnicate'");
        json_decref(p);
        free(out), free(err);
        /* table output keeps its one plain line */
        cr_assert_eq(CLI(&out, &err, "vm", "show", "nosuch"), 1);
        cr_assert_str_eq(err, "elvisctl: no VM with id or name 'nosuch' (HTTP 404)\n");
        free(out), free(err);
}

Test(cli, usage_errors_exit_2)
{
        char *out, *err;

        cr_assert_eq(CLI(&out, &err, "frobnicate"), 2);
        cr_assert(strstr(err, "unknown command 'frobnicate'"));
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm"), 2);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add"), 2);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add", "x", "--device", "backend"), 2);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "policy", "set", "speed=11"), 2);
        cr_assert(strstr(err, "valid keys: mode exitless"), "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "policy", "set", "budget_packets=lots"), 2);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "-o", "yaml", "status"), 2);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "sidecore", "remove", "x"), 2);
        free(out), free(err);
}

Test(cli, sidecores_policy_stats_top_metrics)
{
        char *out, *err;

        cr_assert_eq(CLI(&out, &err, "sidecore", "add", "--cpu", "9"), 0, "%s", err);
        cr_assert(strstr(out, "sidecore 1 on CPU 9"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add", "a", "--device", "backend=null"), 0);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "sidecore", "list"), 0);
        cr_assert(strstr(out, "1   9    1     operator  a/net0/0"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "policy", "set", "budget_packets=64", "scale_down_idle=0.7", "mode=dynamic"), 0,
                     "%s", err);
        cr_assert(strstr(out, "budget_packets         64"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "policy", "show"), 0);
        cr_assert(strstr(out, "mode                   dynamic"));
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "stats"), 0);
        cr_assert(strstr(out, "SIDECORE  CPU  QUEUES"), "%s", out);
        cr_assert(strstr(out, "a   net0    net   0  1         ready  yes"), "%s", out);
        free(out), free(err);
        /* no terminal here: one frame over one interval, then exit 0 */
        cr_assert_eq(CLI(&out, &err, "top", "--interval", "0.2"), 0, "%s", err);
        cr_assert(strstr(out, "elvisctl top: rates over the last"), "%s", out);
        cr_assert(strstr(out, "KICKS/S"), "%s", out);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "-o", "json", "top", "--once", "--interval", "0.1"), 0);
        {
                json_t *j = json_loads(out, 0, NULL);
                cr_assert_not_null(j, "%s", out);
                cr_assert_gt(json_real_value(json_object_get(json_array_get(json_object_get(j, "queues"), 0), "pps")), 0,
                             "the fake data plane's counters move between samples");
                json_decref(j);
        }
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "metrics"), 0);
        cr_assert(strstr(out, "# TYPE elvis_queue_kicks_total counter"));
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "sidecore", "remove", "1"), 1, "its queue has nowhere to go");
        free(out), free(err);
}

/* Journal lines name what they are about: a VM by its name, a sidecore by its CPU
 * (it has no name, and "name=null" said nothing). */
Test(cli, events_name_vms_and_sidecores)
{
        char *out, *err;

        cr_assert_eq(CLI(&out, &err, "sidecore", "add", "--cpu", "9"), 0, "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "add", "a", "--device", "backend=null"), 0, "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "remove", "a"), 0, "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "sidecore", "remove", "1"), 0, "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "events"), 0, "%s", err);
        cr_assert(strstr(out, "api      sidecore_added id=1 cpu=9\n"), "%s", out);
        cr_assert(strstr(out, "api      vm_added id=1 name=a\n"), "%s", out);
        cr_assert(strstr(out, "api      vm_removed id=1 name=a\n"), "%s", out);
        cr_assert(strstr(out, "api      sidecore_removed id=1 cpu=9\n"), "%s", out);
        cr_assert_null(strstr(out, "null"), "%s", out);
        free(out), free(err);
}

/* What `vm xml` prints, placed in a minimal domain, must satisfy libvirt's own schema
 * (virt-xml-validate from libvirt-clients): the operator pastes it into a real domain. */
static void assert_valid_domain(const char *fragment)
{
        char path[] = "/tmp/elvis-domxml.XXXXXX";
        const char *argv[] = { "/usr/bin/virt-xml-validate", path, "domain", NULL };
        char *out, *err;
        int fd = mkstemp(path);
        FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
        int r;

        cr_assert_not_null(f);
        fprintf(f, "<domain type='kvm'>\n<name>web1</name>\n<memory unit='MiB'>512</memory>\n<vcpu>2</vcpu>\n"
                   "<os><type arch='x86_64' machine='pc'>hvm</type></os>\n%s</domain>\n", fragment);
        fclose(f);
        r = run_cmd(argv, NULL, &out, &err);
        cr_assert_eq(r, 0, "libvirt's schema rejects the domain built from `vm xml`:\n%s%s\n%s", out, err, fragment);
        unlink(path);
        free(out), free(err);
}

Test(cli, vm_xml_is_a_valid_libvirt_domain_part)
{
        char *out, *err;

        cr_assert_eq(CLI(&out, &err, "vm", "add", "web1", "--vcpus", "2", "--weight", "300", "--device",
                         "backend=loopback,queues=2"), 0, "%s", err);
        free(out), free(err);
        cr_assert_eq(CLI(&out, &err, "vm", "xml", "web1"), 0, "%s", err);
        cr_assert(strstr(out, "<interface type='vhostuser'>"), "%s", out);
        cr_assert(strstr(out, "<access mode='shared'/>"), "vhost-user needs shared guest memory: %s", out);
        cr_assert(strstr(out, "<driver queues='2'/>"), "%s", out);
        cr_assert(strstr(out, "weight='300'"), "%s", out);
        cr_assert(strstr(out, "mode='client'>\n      <reconnect enabled='yes' timeout='1'/>\n    </source>"),
                  "QEMU reconnects when the daemon restarts: %s", out);
        assert_valid_domain(out);
        free(out), free(err);
}

/* A VM with a disk and a NIC: `vm add --device type=blk,...`, `vm show`, `vm list`, the
 * queue type in `top` and `stats`, and `vm xml` with a vhostuser <disk> that libvirt's
 * schema accepts. */
static struct daemon bd;
static char blk_images[160], blk_arg[200];

static void blk_setup(void)
{
        daemon_init(&bd, ELVIS_MANAGER_FAKE);
        daemon_arg(&bd, "--topology-xml");
        daemon_arg(&bd, TOPO);
        snprintf(blk_images, sizeof(blk_images), "%s/images", bd.dir);
        cr_assert_eq(mkdir(blk_images, 0755), 0);
        snprintf(blk_arg, sizeof(blk_arg), "--image-dir=%s", blk_images);
        daemon_arg(&bd, blk_arg);
        cr_assert_eq(daemon_start(&bd), 0);
}

static void blk_teardown(void)
{
        cr_expect_eq(daemon_stop(&bd), 0);
        daemon_cleanup(&bd);
}

Test(cli_blk, a_vm_with_a_disk_and_a_nic, .init = blk_setup, .fini = blk_teardown, .timeout = 60)
{
        char *out, *err, spec[300], img[200];
        FILE *f;

        snprintf(img, sizeof(img), "%s/db.img", blk_images);
        f = fopen(img, "w");
        cr_assert_not_null(f);
        fclose(f);
        snprintf(spec, sizeof(spec), "type=blk,backend=file,path=%s,readonly=true,queues=2", img);
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "sidecore", "add", "--cpu", "9", NULL }), 0,
                     "%s", err);
        free(out), free(err);
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "vm", "add", "db", "--device", spec, "--device",
                                                                     "id=scratch,type=blk,backend=null,size=64M",
                                                                     "--device", "backend=loopback", NULL }),
                     0, "%s", err);
        cr_assert(strstr(out, "device blk0: blk file "), "%s", out);
        cr_assert(strstr(out, "/db.img (read-only), 2 virtqueue(s)"), "%s", out);
        cr_assert(strstr(out, "device scratch: blk null, 67108864 bytes, 1 virtqueue(s)"), "%s", out);
        cr_assert(strstr(out, "device net2: loopback, 1 queue pair(s)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "vm", "list", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "blk0:blk/file") && strstr(out, "scratch:blk/null") && strstr(out, "net2:loopback"),
                  "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "stats", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "db  blk0     blk   0") && strstr(out, "db  blk0     blk   1") &&
                  strstr(out, "db  net2     net   0"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "top", "--once", "--interval", "0.1", NULL }), 0,
                     "%s", err);
        cr_assert(strstr(out, "TYPE") && strstr(out, "scratch  blk") && strstr(out, "net2     net"), "%s", out);
        free(out), free(err);
        /* bad specs: a usage error before any request, or the API's 400 */
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "vm", "add", "x", "--device", "type=disk",
                                                                     NULL }), 2);
        cr_assert(strstr(err, "type must be one of: net blk"), "%s", err);
        free(out), free(err);
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "vm", "add", "x", "--device",
                                                                     "type=blk,backend=tap", NULL }), 1);
        cr_assert(strstr(err, "cannot serve a blk device"), "%s", err);
        free(out), free(err);
        cr_assert_eq(run_cli(&bd, &out, &err, (const char *const[]){ "vm", "xml", "db", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "<disk type='vhostuser' device='disk'>\n    <driver name='qemu' type='raw' "
                              "queues='2'/>\n    <source type='unix' path='"), "%s", out);
        cr_assert(strstr(out, "-blk0.sock'>\n      <reconnect enabled='yes' timeout='1'/>\n    </source>\n"
                              "    <target dev='vdb' bus='virtio'/>\n  </disk>"), "%s", out);
        cr_assert(strstr(out, "<target dev='vdc' bus='virtio'/>"), "%s", out);
        cr_assert(strstr(out, "exitless='auto'>\n    <elvis:disk target='vdb' id='blk0' backend='file' path='"), "%s",
                  out);
        cr_assert(strstr(out, "  </elvis:policy>\n</metadata>"), "%s", out);
        cr_assert(strstr(out, "readonly='yes' queues='2'/>"), "%s", out);
        cr_assert(strstr(out, "target='vdc' id='scratch' backend='null' size='67108864'"), "%s", out);
        cr_assert(strstr(out, "<interface type='vhostuser'>"), "%s", out);
        assert_valid_domain(out);
        free(out), free(err);
}

static void kernel_setup(void)
{
        start_on_topology(&kd, "kernel");
}

static void kernel_teardown(void)
{
        cr_expect_eq(daemon_stop(&kd), 0);
        daemon_cleanup(&kd);
}

Test(cli_kernel, vm_xml_hands_qemu_elvis_net, .init = kernel_setup, .fini = kernel_teardown, .timeout = 60)
{
        char *out, *err;

        cr_assert_eq(run_cli(&kd, &out, &err, (const char *const[]){ "status", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "data plane: kernel (running)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&kd, &out, &err,
                             (const char *const[]){ "vm", "add", "web1", "--vcpus", "2", "--device",
                                                    "backend=tap,tap=tapweb1,queues=2", NULL }),
                     0, "%s", err);
        free(out), free(err);
        cr_assert_eq(run_cli(&kd, &out, &err, (const char *const[]){ "vm", "xml", "web1", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "<interface type='ethernet'>"), "%s", out);
        cr_assert(strstr(out, "<target dev='tapweb1'/>"), "libvirt creates the tap the daemon looks for: %s", out);
        cr_assert(strstr(out, "<driver name='vhost' queues='2'/>"), "%s", out);
        cr_assert(strstr(out, "<backend vhost='/dev/elvis-net'/>"), "%s", out);
        cr_assert_null(strstr(out, "memoryBacking"), "the module needs no shared memory: %s", out);
        assert_valid_domain(out);
        free(out), free(err);
}

static struct daemon rd;

/* A daemon whose libvirt is the test driver with one domain an orchestrator pinned
 * (tests/data/libvirt-orchestrated.xml), under vcpu-pinning respect. */
static void respect_setup(void)
{
        daemon_init(&rd, ELVIS_MANAGER_FAKE);
        daemon_arg(&rd, "--topology-xml");
        daemon_arg(&rd, TOPO);
        daemon_arg(&rd, "--libvirt-uri");
        daemon_arg(&rd, "test://" ELVIS_SOURCE_DIR "/tests/data/libvirt-orchestrated.xml");
        daemon_arg(&rd, "--vcpu-pinning");
        daemon_arg(&rd, "respect");
        cr_assert_eq(daemon_start(&rd), 0);
}

static void respect_teardown(void)
{
        cr_expect_eq(daemon_stop(&rd), 0);
        daemon_cleanup(&rd);
}

/* The orchestrator gave CPU 3, where a sidecore polls, to a vCPU: the VM takes the
 * orchestrator's CPUs, and status and GET /v1/health say what collides. */
Test(cli_respect, a_pinned_sidecore_cpu_is_a_warning, .init = respect_setup, .fini = respect_teardown, .timeout = 60)
{
        struct resp h = { 0 };
        char *out, *err, *log, *hit;
        json_t *w;

        cr_assert_eq(run_cli(&rd, &out, &err, (const char *const[]){ "sidecore", "add", "--cpu", "3", NULL }), 0, "%s",
                     err);
        free(out), free(err);
        cr_assert_eq(run_cli(&rd, &out, &err, (const char *const[]){ "vm", "add", "orch1", "--domain", "orch1", NULL }),
                     0, "%s", err);
        free(out), free(err);
        cr_assert_eq(run_cli(&rd, &out, &err, (const char *const[]){ "vm", "show", "orch1", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "vCPUs:    2, pinned by the orchestrator to CPUs 2-3 (NUMA node 0)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&rd, &out, &err, (const char *const[]){ "vm", "list", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "2-3 (orchestrator)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&rd, &out, &err, (const char *const[]){ "status", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "pinning:    vCPUs are pinned by the orchestrator"), "%s", out);
        cr_assert(strstr(out, "warning:    sidecore 1 polls on CPU 3, which the orchestrator gave to a vCPU of VM "
                              "'orch1' (domain orch1)"), "%s", out);
        free(out), free(err);
        cr_assert_eq(http(&rd, "GET", "/v1/health", NULL, NULL, 0, &h), 0);
        cr_assert_eq(h.status, 200);
        cr_assert_str_eq(json_string_value(json_object_get(h.json, "status")), "ok", "a warning, not a failure");
        w = json_array_get(json_object_get(h.json, "warnings"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(w, "kind")), "pin_conflict", "%s", h.body);
        cr_assert_eq(json_integer_value(json_object_get(w, "cpu")), 3);
        cr_assert_eq(json_integer_value(json_object_get(w, "sidecore")), 1);
        resp_free(&h);
        /* the journal (the daemon's log) has it once */
        log = daemon_log(&rd);
        hit = strstr(log, "sidecore 1 polls on CPU 3");
        cr_assert(hit, "%s", log);
        cr_assert_null(strstr(hit + 1, "sidecore 1 polls on CPU 3"), "reported once: %s", log);
        free(log);
}

Test(cli, help_lists_every_command_and_completion_matches)
{
        char *out, *err, *comp, *e2;

        cr_assert_eq(CLI(&out, &err, "--help"), 0);
        cr_assert_eq(CLI(&comp, &e2, "__complete"), 0);
        for (char *save = NULL, *w = strtok_r(comp, "\n", &save); w; w = strtok_r(NULL, "\n", &save)) {
                char needle[64];
                snprintf(needle, sizeof(needle), "\n  %s", w);
                cr_assert(strstr(out, needle), "completion offers '%s' which --help does not list", w);
        }
        cr_assert_null(strstr(out, "__complete"), "hidden helper stays hidden");
        free(out), free(err), free(comp), free(e2);
}

Test(cli_down, unreachable_daemon_gives_one_line)
{
        const char *argv[] = { ELVISCTL, "--socket", "/nonexistent/elvis.sock", "vm", "list", NULL };
        char *out, *err;

        cr_assert_eq(run_cmd(argv, NULL, &out, &err), 1);
        cr_assert_str_eq(err, "elvisctl: cannot reach elvis-manager at /nonexistent/elvis.sock: is it running? "
                              "(systemctl status elvis-manager)\n");
        free(out), free(err);
}

Test(cli_down, short_v_prints_the_version_like_long_version)
{
        const char *shrt[] = { ELVISCTL, "-V", NULL }, *lng[] = { ELVISCTL, "--version", NULL },
                   *help[] = { ELVISCTL, "--help", NULL };
        char *out, *err, *out2, *err2;

        cr_assert_eq(run_cmd(shrt, NULL, &out, &err), 0, "%s", err);
        cr_assert_eq(run_cmd(lng, NULL, &out2, &err2), 0, "%s", err2);
        cr_assert_eq(strncmp(out, "elvisctl ", 9), 0, "%s", out);
        cr_assert_gt(strlen(out), 10, "%s", out);
        cr_assert_str_eq(out, out2);
        cr_assert_str_empty(err);
        free(out), free(err), free(out2), free(err2);
        cr_assert_eq(run_cmd(help, NULL, &out, &err), 0);
        cr_assert(strstr(out, "  -V, --version"), "%s", out);
        free(out), free(err);
}

Test(cli_down, unreachable_daemon_under_json_is_a_problem_line)
{
        const char *argv[] = { ELVISCTL, "-o", "json", "--socket", "/nonexistent/elvis.sock", "vm", "list", NULL };
        char *out, *err;
        json_t *p;

        cr_assert_eq(run_cmd(argv, NULL, &out, &err), 1);
        cr_assert_str_empty(out);
        p = problem_line(err);
        cr_assert_str_eq(json_string_value(json_object_get(p, "title")), "cannot reach elvis-manager");
        cr_assert_str_eq(json_string_value(json_object_get(p, "detail")),
                         "cannot reach elvis-manager at /nonexistent/elvis.sock: is it running? "
                         "(systemctl status elvis-manager)");
        cr_assert_null(json_object_get(p, "status"), "no answer, no HTTP status: %s", err);
        cr_assert_eq(json_integer_value(json_object_get(p, "exit")), 1);
        json_decref(p);
        free(out), free(err);
}

/* ---- the README's quick tour, run as written on the two kinds of 2-CPU host ---- */

#define TOUR_MAX_LINES 32
#define TOUR_MAX_WORDS 24

struct tour {
        char *text;                                     /* the block, split in place */
        char *words[TOUR_MAX_LINES][TOUR_MAX_WORDS + 1];        /* each command's words, NULL-ended */
        size_t n;
};

/* Splits one command line into shell words: blanks separate, "" quotes (the tour's
 * --config "" and --reserved-cpus ""), and a comment or a trailing & ends it. */
static void tour_words(char *line, char **words)
{
        size_t n = 0;
        char *r = line, *w = line;

        while (*r && n < TOUR_MAX_WORDS) {
                while (*r == ' ')
                        r++;
                if (!*r || *r == '#' || (*r == '&' && !r[1 + strspn(r + 1, " ")]))
                        break;
                words[n++] = w;
                while (*r && *r != ' ') {
                        if (*r == '"') {
                                char *end = strchr(r + 1, '"');
                                cr_assert_not_null(end, "unbalanced quote in the tour: %s", line);
                                memmove(w, r + 1, (size_t)(end - r - 1));
                                w += end - r - 1;
                                r = end + 1;
                        } else {
                                *w++ = *r++;
                        }
                }
                if (*r)
                        r++;
                *w++ = '\0';
        }
        words[n] = NULL;
}

/* The ```sh block after "## A quick tour" in README.md, one command a line. */
static void tour_read(struct tour *t)
{
        char *start, *end, *line, *save = NULL;

        memset(t, 0, sizeof(*t));
        t->text = slurp_file(ELVIS_SOURCE_DIR "/README.md");
        cr_assert_not_null(t->text);
        start = strstr(t->text, "\n## A quick tour\n");
        cr_assert_not_null(start, "README.md has no quick tour");
        start = strstr(start, "\n```sh\n");
        cr_assert_not_null(start);
        start += 7;
        end = strstr(start, "\n```\n");
        cr_assert_not_null(end);
        end[1] = '\0';
        for (char *c; (c = strstr(start, "\\\n"));)    /* continuation lines */
                memset(c, ' ', 2);
        for (line = strtok_r(start, "\n", &save); line && t->n < TOUR_MAX_LINES; line = strtok_r(NULL, "\n", &save)) {
                tour_words(line, t->words[t->n]);
                if (t->words[t->n][0])
                        t->n++;
        }
}

static bool ends_with(const char *s, const char *tail)
{
        size_t n = strlen(s), k = strlen(tail);

        return n >= k && !strcmp(s + n - k, tail);
}

/* Starts d as the tour's first command says, on topology; the harness chooses the
 * paths (socket, state and run dirs), and the fake data plane stands in for the user
 * one, so no tap is created here. */
static void tour_start(struct tour *t, struct daemon *x, const char *topology)
{
        static const char *const harness_sets[] = { "--config", "--socket", "--state-dir", "--run-dir",
                                                    "--libvirt-uri", NULL };
        char **w = t->words[0];

        cr_assert(w[0] && ends_with(w[0], "/elvis-manager"), "the tour starts the daemon first: %s", w[0]);
        daemon_init(x, ELVIS_MANAGER_FAKE);
        for (size_t i = 1; w[i]; i++) {
                bool skip = !strcmp(w[i], "--foreground");
                for (size_t k = 0; harness_sets[k] && !skip; k++)
                        if (!strcmp(w[i], harness_sets[k]))
                                skip = w[++i] != NULL;
                if (!skip)
                        daemon_arg(x, w[i]);
        }
        daemon_arg(x, "--topology-xml");
        daemon_arg(x, topology);
        cr_assert_eq(daemon_start(x), 0);
}

/* Runs every later command of the tour against x; without_vcpus drops "--vcpus N" as the
 * README says to on a one-core host. Each must succeed. */
static void tour_run(struct tour *t, struct daemon *x, bool without_vcpus)
{
        for (size_t l = 1; l < t->n; l++) {
                const char *args[TOUR_MAX_WORDS + 8];
                char **w = t->words[l], *out, *err;
                size_t n = 0;
                int r;

                if (!strcmp(w[0], "export"))
                        continue;       /* ELVIS_SOCKET: run_cli passes --socket */
                if (ends_with(w[0], "/elvisctl")) {
                        for (size_t i = 1; w[i]; i++) {
                                if (!strcmp(w[i], "--follow"))
                                        continue;       /* it would wait for good */
                                if (without_vcpus && !strcmp(w[i], "--vcpus") && w[i + 1]) {
                                        i++;
                                        continue;
                                }
                                args[n++] = w[i];
                        }
                        args[n] = NULL;
                        r = run_cli(x, &out, &err, args);
                } else {
                        cr_assert_str_eq(w[0], "curl", "the tour runs elvisctl and curl only");
                        args[n++] = "/usr/bin/curl";
                        args[n++] = "-sSf";
                        for (size_t i = 1; w[i]; i++) {
                                args[n++] = w[i];
                                if (!strcmp(w[i], "--unix-socket") && w[i + 1])
                                        args[n++] = x->sock, i++;
                        }
                        args[n] = NULL;
                        r = run_cmd(args, NULL, &out, &err);
                }
                cr_assert_eq(r, 0, "tour line %zu (%s %s ...) failed:\n%s%s", l + 1, w[0], w[1] ? w[1] : "", out, err);
                free(out), free(err);
        }
}

/* After the tour: web1's two queues are served, and nothing warns. */
static void tour_check(struct daemon *x)
{
        char *out, *err;

        cr_assert_eq(run_cli(x, &out, &err, (const char *const[]){ "sidecore", "list", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "web1/net0/0 web1/net0/1"), "web1's queues have a sidecore:\n%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(x, &out, &err, (const char *const[]){ "status", NULL }), 0, "%s", err);
        cr_assert_null(strstr(out, "warning"), "%s", out);
        free(out), free(err);
}

Test(tour, readme_tour_on_two_cores, .timeout = 60)
{
        struct daemon x;
        struct tour t;

        tour_read(&t);
        tour_start(&t, &x, ELVIS_SOURCE_DIR "/tests/data/topo-2cpu.xml");
        tour_run(&t, &x, false);
        tour_check(&x);
        cr_assert_eq(daemon_stop(&x), 0);
        daemon_cleanup(&x);
        free(t.text);
}

Test(tour, readme_tour_on_one_core_with_two_threads, .timeout = 60)
{
        struct daemon x;
        struct tour t;

        tour_read(&t);
        tour_start(&t, &x, ELVIS_SOURCE_DIR "/tests/data/topo-1core-smt.xml");
        tour_run(&t, &x, true);
        tour_check(&x);
        cr_assert_eq(daemon_stop(&x), 0);
        daemon_cleanup(&x);
        free(t.text);
}

/* A VM whose queues got no sidecore: status warns, events and plan say so. CPU 0 is
 * reserved on this 2-CPU host and web1's vCPU takes CPU 1. */
Test(cli_small, unserved_queues_show_in_status_events_and_plan, .timeout = 60)
{
        struct daemon x;
        char *out, *err;

        daemon_init(&x, ELVIS_MANAGER_FAKE);
        daemon_arg(&x, "--topology-xml");
        daemon_arg(&x, ELVIS_SOURCE_DIR "/tests/data/topo-2cpu.xml");
        cr_assert_eq(daemon_start(&x), 0);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "vm", "add", "web1", "--vcpus", "1", "--device",
                                                                    "backend=loopback,queues=2", NULL }), 0, "%s", err);
        free(out), free(err);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "status", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "\nwarning:    VM 1 'web1': 2 queue(s) have no sidecore and get no I/O: no whole free "
                              "core for a sidecore"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "status", "--ready", NULL }), 0, "%s", err);
        cr_assert_str_eq(out, "ready: fake data plane (tests only)\n", "a warning leaves the daemon ready");
        free(out), free(err);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "events", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "control  queues_unserved vm=1 name=web1 queues=2 reason=no whole free core"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "plan", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "unserved: 2 queue(s) have no sidecore and get no I/O: web1/net0/0 web1/net0/1\n"), "%s",
                  out);
        cr_assert_null(strstr(out, "nothing to change"), "%s", out);
        free(out), free(err);
        cr_assert_eq(daemon_stop(&x), 0);
        daemon_cleanup(&x);
}

/* Degraded (no data plane): status still answers, status --ready fails like a refusal. */
Test(cli_small, status_ready_fails_when_degraded, .timeout = 60)
{
        struct daemon x;
        char *out, *err;
        json_t *p;

        daemon_init(&x, ELVIS_MANAGER);
        daemon_arg(&x, "--dataplane");
        daemon_arg(&x, "kernel");       /* no elvis.ko on this host */
        cr_assert_eq(daemon_start(&x), 0);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "status", NULL }), 0, "%s", err);
        cr_assert(strstr(out, "status:     degraded\n"), "%s", out);
        free(out), free(err);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "status", "--ready", NULL }), 1);
        cr_assert_str_empty(out);
        cr_assert_str_eq(err, "elvisctl: not ready: kernel data plane is not available on this host (HTTP 503)\n");
        free(out), free(err);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "-o", "json", "status", "--ready", NULL }), 1);
        p = problem_line(err);
        cr_assert_eq(json_integer_value(json_object_get(p, "status")), 503, "%s", err);
        cr_assert(json_is_false(json_object_get(p, "ready")), "%s", err);
        json_decref(p);
        free(out), free(err);
        cr_assert_eq(run_cli(&x, &out, &err, (const char *const[]){ "status", "--bogus", NULL }), 2);
        free(out), free(err);
        cr_assert_eq(daemon_stop(&x), 0);
        daemon_cleanup(&x);
}
