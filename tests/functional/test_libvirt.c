/* Functional tests of the libvirt integration against libvirt's test driver
 * (test:///default, shared by every connection of one process): a manager runs in this
 * process, the test drives libvirt from its own connection and checks what libvirt
 * reports. Quirks: pin calls take flags=0 only, at most 8 host CPUs, no NUMA cells. */
#include <criterion/criterion.h>

#include "../../daemon/control.h"
#include "../../daemon/libvirt.h"
#include "../../daemon/log.h"
#include "../../daemon/manager.h"
#include "../fakes/fake_dataplane.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* the fake under the name auto picks without elvis.ko, as elvis-manager-fake does */
static const struct elvis_dataplane_entry dataplanes[] = { { "user-process", &elvis_fake_dataplane },
                                                           { "user", &elvis_fake_dataplane },
                                                           { NULL, NULL } };
static struct elvis_manager *m;
static virConnectPtr conn;
static char dir[64];

static void quiet(void *u, virErrorPtr e) {}

static void start(const char *pinning)
{
        char sock[128], state[128], run[128], pin[32], images[160], imgarg[200];
        char *argv[] = { "elvis-manager", "--config", "", "--socket", sock, "--state-dir", state, "--run-dir", run,
                         "--libvirt-uri", "test:///default", "--topology-xml", ELVIS_SOURCE_DIR "/tests/data/topo-2x4.xml",
                         "--reserved-cpus", "0", "--log-level", "warning", pin, imgarg, NULL };
        struct elvis_config_errors errs = { 0 };
        enum elvis_config_action action;

        snprintf(dir, sizeof(dir), "/tmp/elvis-lv-XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        snprintf(sock, sizeof(sock), "%s/api.sock", dir);
        snprintf(state, sizeof(state), "%s/state", dir);
        snprintf(run, sizeof(run), "%s/run", dir);
        snprintf(pin, sizeof(pin), "--vcpu-pinning=%s", pinning);
        snprintf(images, sizeof(images), "%s/images", dir);
        cr_assert_eq(mkdir(images, 0755), 0);
        snprintf(imgarg, sizeof(imgarg), "--image-dir=%s", images);
        cr_assert_eq(elvis_manager_new(19, argv, dataplanes, &m), 0);
        cr_assert_eq(elvis_config_load(19, argv, &m->cfg, &action, &errs), 0);
        elvis_log_set_level(LOG_WARNING);
        cr_assert_eq(elvis_manager_start(m), 0);
        virSetErrorFunc(NULL, quiet);
        conn = virConnectOpen("test:///default");
        cr_assert_not_null(conn);
        cr_assert_not(elvis_libvirt_connected(m), "the first connect waits for the loop (after READY=1)");
        for (int i = 0; i < 500 && !elvis_libvirt_connected(m); i++)
                elvis_loop_iterate(m->loop, 10);
        cr_assert(elvis_libvirt_connected(m), "connected on the loop's first turns");
}

static void setup(void)
{
        start("own");
}

static void setup_respect(void)
{
        start("respect");
}

static void teardown(void)
{
        char cmd[128];

        virConnectClose(conn);
        elvis_manager_free(m);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(libvirt, .init = setup, .fini = teardown, .timeout = 60);

/* Runs the manager's loop until cond holds (events are delivered there), at most 5 s. */
static bool run_until(bool (*cond)(void))
{
        for (int i = 0; i < 500; i++) {
                if (cond())
                        return true;
                elvis_loop_iterate(m->loop, 10);
        }
        return cond();
}

static char *pin_of(virDomainPtr dom, unsigned vcpu)
{
        static char buf[64];
        unsigned char maps[8];
        elvis_cpuset s;

        cr_assert_geq(virDomainGetVcpuPinInfo(dom, 2, maps, 1, 0), 0, "%s", virGetLastErrorMessage());
        elvis_cpuset_zero(&s);
        for (int c = 0; c < 8; c++)
                if (VIR_CPU_USABLE(maps, 1, vcpu, c))
                        elvis_cpuset_set(&s, c);
        elvis_cpuset_format(&s, buf, sizeof(buf));
        return buf;
}

static bool no_vms(void) { return m->state.nvms == 0; }
static bool connected(void) { return elvis_libvirt_connected(m); }

/* A few loop turns: deferred work (pins) runs. */
static void settle(void)
{
        for (int i = 0; i < 5; i++)
                elvis_loop_iterate(m->loop, 10);
}
static bool one_vm(void) { return m->state.nvms == 1; }

/* What POST /v1/vms does for a VM that names a domain: ask libvirt, then add. */
static int add_domain(struct elvis_vm *vm, struct elvis_err *e)
{
        struct elvis_domain_info info;
        int r = elvis_libvirt_domain_for(m, vm, &info, e);

        return r < 0 ? r : elvis_manager_vm_add_domain(m, vm, r > 0 ? &info : NULL, false, e);
}

Test(libvirt, add_by_name_reads_vcpus_and_pins)
{
        struct elvis_vm vm = { .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO } };
        struct elvis_err e = { 0 };
        virDomainPtr dom = virDomainLookupByName(conn, "test");
        char want[16];

        snprintf(vm.name, sizeof(vm.name), "t1");
        snprintf(vm.domain, sizeof(vm.domain), "test");
        cr_assert_eq(add_domain(&vm, &e), 0, "%s", e.detail);
        cr_assert_eq(vm.vcpus, 2, "the vCPU count came from the domain");
        settle();               /* the pin is deferred to the next loop turns */
        for (unsigned i = 0; i < 2; i++) {
                snprintf(want, sizeof(want), "%d", elvis_cpuset_next(&vm.cpus, 0) + (int)i);
                cr_assert_str_eq(pin_of(dom, i), want, "vCPU %u", i);
        }
        {
                json_t *info = elvis_libvirt_vm_info(m, elvis_state_vm(&m->state, vm.id));
                cr_assert_str_eq(json_string_value(json_object_get(info, "state")), "running");
                cr_assert_eq(json_array_size(json_object_get(info, "vcpu_pins")), 2);
                cr_assert_str_eq(json_string_value(json_object_get(info, "emulator_pin")), "0",
                                 "emulator on the reserved CPU");
                json_decref(info);
        }
        virDomainFree(dom);
}

Test(libvirt, add_by_uuid_and_unknown_domains)
{
        struct elvis_vm vm = { .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO } };
        struct elvis_err e = { 0 };

        snprintf(vm.name, sizeof(vm.name), "byuuid");
        snprintf(vm.domain, sizeof(vm.domain), "6695eb01-f6a4-8304-79aa-97f2502e193f");
        cr_assert_eq(add_domain(&vm, &e), 0, "%s", e.detail);
        cr_assert_eq(vm.vcpus, 2);
        memset(&vm, 0, sizeof(vm));
        vm.policy = (struct elvis_vm_policy){ 100, ELVIS_EXITLESS_AUTO };
        snprintf(vm.name, sizeof(vm.name), "ghost");
        snprintf(vm.domain, sizeof(vm.domain), "no-such-domain");
        cr_assert_eq(add_domain(&vm, &e), -ENOENT);
        cr_assert(strstr(e.detail, "libvirt has no domain 'no-such-domain'"), "%s", e.detail);
}

Test(libvirt, stopping_the_domain_releases_the_vm)
{
        struct elvis_vm vm = { .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO } };
        struct elvis_err e = { 0 };
        virDomainPtr dom = virDomainLookupByName(conn, "test");

        snprintf(vm.name, sizeof(vm.name), "t1");
        snprintf(vm.domain, sizeof(vm.domain), "test");
        cr_assert_eq(add_domain(&vm, &e), 0, "%s", e.detail);
        cr_assert_eq(m->state.nvms, 1);
        cr_assert_eq(virDomainDestroy(dom), 0);
        cr_assert(run_until(no_vms), "the lifecycle event released the VM");
        cr_assert(elvis_cpuset_empty(&(elvis_cpuset){ 0 }));
        virDomainFree(dom);
}

Test(libvirt, domains_with_elvis_metadata_are_adopted)
{
        const char *xml = "<domain type='test'><name>meta1</name><memory>65536</memory><vcpu>1</vcpu>"
                          "<os><type>hvm</type></os>"
                          "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1' weight='300' exitless='always'/>"
                          "</metadata></domain>";
        virDomainPtr dom = virDomainDefineXML(conn, xml);

        cr_assert_not_null(dom, "%s", virGetLastErrorMessage());
        cr_assert_eq(virDomainCreate(dom), 0);
        cr_assert(run_until(one_vm), "the STARTED event adopted the domain");
        cr_assert_str_eq(m->state.vms[0].name, "meta1");
        cr_assert_eq(m->state.vms[0].policy.weight, 300);
        cr_assert_eq(m->state.vms[0].policy.exitless, ELVIS_EXITLESS_ALWAYS);
        cr_assert_eq(m->state.vms[0].vcpus, 1);
        cr_assert_eq(virDomainUndefineFlags(dom, 0) == 0 || virDomainDestroy(dom) == 0, 1);
        virDomainDestroy(dom);
        cr_assert(run_until(no_vms), "stop/undefine released it again");
        virDomainFree(dom);
}

Test(libvirt, restart_repins_drifted_vcpus)
{
        struct elvis_vm vm = { .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO } };
        struct elvis_err e = { 0 };
        virDomainPtr dom = virDomainLookupByName(conn, "test");
        unsigned char all = 0xff;
        char want[16];

        snprintf(vm.name, sizeof(vm.name), "t1");
        snprintf(vm.domain, sizeof(vm.domain), "test");
        cr_assert_eq(add_domain(&vm, &e), 0, "%s", e.detail);
        settle();
        /* someone re-pins vCPU 1 behind our back */
        cr_assert_eq(virDomainPinVcpu(dom, 1, &all, 1), 0);
        cr_assert_str_eq(pin_of(dom, 1), "0-7");
        /* what a restart does: reconnect and reconcile */
        elvis_libvirt_stop(m);
        cr_assert_eq(elvis_libvirt_start(m), 0);
        cr_assert(run_until(connected));
        snprintf(want, sizeof(want), "%d", elvis_cpuset_next(&vm.cpus, 0) + 1);
        cr_assert_str_eq(pin_of(dom, 1), want, "the drifted pin was corrected");
        virDomainFree(dom);
}

Test(libvirt, domain_xml_from_the_hook)
{
        struct elvis_domain_info info;
        struct elvis_vm vm = { .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO } };
        struct elvis_err e = { 0 };
        char err[256], xml[1024], path[128], outside[] = "/tmp/elvis-hooked.sock";

        snprintf(path, sizeof(path), "%s/run/hooked.sock", dir);
        /* a running domain's XML: QEMU's DAC identity and a vhost-user socket under run-dir */
        snprintf(xml, sizeof(xml),
                 "<domain><name>hooked</name><vcpu>2</vcpu><seclabel type='dynamic' model='dac' relabel='yes'>"
                 "<label>+64055:+994</label><imagelabel>+64055:+994</imagelabel></seclabel><devices>"
                 "<interface type='vhostuser'><source type='unix' path='%s' mode='client'/></interface></devices>"
                 "</domain>", path);
        cr_assert_eq(elvis_domxml_parse(xml, strlen(xml), &info, err, sizeof(err)), 0);
        cr_assert(info.vmm_uid_set && info.vmm_uid == 64055 && info.vmm_gid_set && info.vmm_gid == 994);
        snprintf(vm.name, sizeof(vm.name), "hooked");
        snprintf(vm.domain, sizeof(vm.domain), "hooked");
        cr_assert_eq(elvis_manager_vm_add_domain(m, &vm, &info, false, &e), 0, "%s", e.detail);
        cr_assert_eq(vm.vcpus, 2);
        cr_assert_eq(vm.ndevices, 1);
        cr_assert_str_eq(vm.devices[0].socket, path, "QEMU connects where the XML says");
        cr_assert(vm.vmm_uid_set && vm.vmm_uid == 64055, "only QEMU's uid may connect");
        /* a path outside run-dir (and any vhost-user-dir) is refused, naming the rule */
        snprintf(xml, sizeof(xml),
                 "<domain><name>outside</name><vcpu>1</vcpu><devices><interface type='vhostuser'>"
                 "<source type='unix' path='%s' mode='client'/></interface></devices></domain>", outside);
        cr_assert_eq(elvis_domxml_parse(xml, strlen(xml), &info, err, sizeof(err)), 0);
        memset(&vm, 0, sizeof(vm));
        vm.numa = -1;
        vm.policy = (struct elvis_vm_policy){ 100, ELVIS_EXITLESS_AUTO };
        snprintf(vm.name, sizeof(vm.name), "outside");
        snprintf(vm.domain, sizeof(vm.domain), "outside");
        cr_assert_eq(elvis_manager_vm_add_domain(m, &vm, &info, false, &e), -EACCES);
        cr_assert(strstr(e.detail, "outside run-dir"), "%s", e.detail);
}

/* A domain with vhostuser disks is adopted with a blk device for each disk an
 * <elvis:disk> names (its image from there: libvirt's disk element has none), under the
 * same image-dir rules as the API; a vhostuser disk without one is someone else's. */
static bool disky_adopted(void) { return m->state.nvms == 1; }

Test(libvirt, vhostuser_disks_are_adopted_as_blk_devices)
{
        char xml[3072], img[128];
        const struct elvis_device *d;
        virDomainPtr dom;
        FILE *f;

        snprintf(img, sizeof(img), "%s/images/disky.img", dir);
        f = fopen(img, "w");
        cr_assert_not_null(f);
        fclose(f);
        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>disky</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
                 "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'>"
                 "<elvis:disk target='vdb' backend='file' path='%s' readonly='yes'/>"
                 "<elvis:disk target='vdc' id='scratch' backend='null' size='1048576'/></elvis:policy></metadata>"
                 "<memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking><devices>"
                 "<disk type='vhostuser' device='disk'><driver name='qemu' type='raw' queues='2'/>"
                 "<source type='unix' path='%s/run/disky-vdb.sock'><reconnect enabled='yes' timeout='1'/></source>"
                 "<target dev='vdb' bus='virtio'/></disk>"
                 "<disk type='vhostuser' device='disk'><driver name='qemu' type='raw'/>"
                 "<source type='unix' path='%s/run/disky-vdc.sock'/><target dev='vdc' bus='virtio'/></disk>"
                 "<disk type='vhostuser' device='disk'><driver name='qemu' type='raw'/>"
                 "<source type='unix' path='/run/someone-else.sock'/><target dev='vdd' bus='virtio'/></disk>"
                 "</devices></domain>", img, dir, dir);
        dom = virDomainDefineXML(conn, xml);
        cr_assert_not_null(dom, "%s", virGetLastErrorMessage());
        cr_assert_eq(virDomainCreate(dom), 0, "%s", virGetLastErrorMessage());
        cr_assert(run_until(disky_adopted), "the STARTED event adopted the domain");
        cr_assert_eq(m->state.vms[0].ndevices, 2, "vdd is not ELVIS's");
        d = &m->state.vms[0].devices[0];
        cr_assert_eq(d->type, ELVIS_DEVICE_BLK);
        cr_assert_eq(d->backend, ELVIS_BACKEND_FILE);
        cr_assert_str_eq(d->path, img);
        cr_assert(d->readonly);
        cr_assert_eq(d->queues, 2, "the disk's <driver queues>");
        cr_assert(strstr(d->socket, "/run/disky-vdb.sock"), "%s", d->socket);
        cr_assert_not_null(elvis_images_find(&m->images, m->state.vms[0].id, d->id), "the manager opened the image");
        d = &m->state.vms[0].devices[1];
        cr_assert_str_eq(d->id, "scratch");
        cr_assert_eq(d->backend, ELVIS_BACKEND_NULL);
        cr_assert_eq(d->size_bytes, 1048576);
        virDomainDestroy(dom);
        virDomainUndefine(dom);
        virDomainFree(dom);
        cr_assert(run_until(no_vms), "stop/undefine released it again");
        cr_assert_eq(m->images.n, 0, "and closed its image");
}

/* The same rules as the API: an image outside every image-dir is refused, naming it. */
Test(libvirt, a_disk_image_outside_image_dir_is_refused)
{
        struct elvis_domain_info info;
        struct elvis_vm vm = { .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO } };
        struct elvis_err e = { 0 };
        char err[256], xml[1024];

        snprintf(xml, sizeof(xml),
                 "<domain><name>escape</name><vcpu>1</vcpu><metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'>"
                 "<elvis:disk target='vdb' path='/etc/shadow'/></elvis:policy></metadata>"
                 "<devices><disk type='vhostuser' device='disk'><source type='unix' path='%s/run/e.sock'/>"
                 "<target dev='vdb' bus='virtio'/></disk></devices></domain>", dir);
        cr_assert_eq(elvis_domxml_parse(xml, strlen(xml), &info, err, sizeof(err)), 0, "%s", err);
        snprintf(vm.name, sizeof(vm.name), "escape");
        snprintf(vm.domain, sizeof(vm.domain), "escape");
        cr_assert_eq(elvis_manager_vm_add_domain(m, &vm, &info, false, &e), -EACCES);
        cr_assert(strstr(e.detail, "'/etc/shadow' is outside every image-dir"), "%s", e.detail);
        cr_assert_eq(m->state.nvms, 0);
        cr_assert_eq(m->images.n, 0);
}

/* A domain defined and started from the test's own connection: name, vCPUs, optional metadata. */
static virDomainPtr start_domain(const char *name, const char *metadata)
{
        char xml[1024];
        virDomainPtr dom;

        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>%s</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
                 "%s</domain>", name, metadata ? metadata : "");
        dom = virDomainDefineXML(conn, xml);
        cr_assert_not_null(dom, "%s", virGetLastErrorMessage());
        cr_assert_eq(virDomainCreate(dom), 0, "%s", virGetLastErrorMessage());
        return dom;
}

static void drop_domain(virDomainPtr dom)
{
        virDomainDestroy(dom);
        virDomainUndefine(dom);
        virDomainFree(dom);
}

static bool has_vm(const char *name)
{
        for (unsigned i = 0; i < m->state.nvms; i++)
                if (!strcmp(m->state.vms[i].name, name))
                        return true;
        return false;
}

static bool marker_adopted(void) { return has_vm("marker"); }
static bool marker2_adopted(void) { return has_vm("marker2"); }

#define META "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'/></metadata>"

/* A domain without ELVIS metadata is not pinned when it starts (an orchestrator's instance
 * on a shared host); events arrive in order, so once a later domain with metadata is
 * adopted, the earlier one's STARTED event has been handled. */
Test(libvirt, domains_without_metadata_are_left_alone)
{
        virDomainPtr plain = start_domain("plain1", NULL), marker;
        struct elvis_domain_info info = { .name = "plain1" };
        struct elvis_err e = { 0 };

        marker = start_domain("marker", META);
        cr_assert(run_until(marker_adopted), "the domain with metadata was adopted");
        cr_assert_eq(m->state.nvms, 1, "only the domain with metadata: %u VMs", m->state.nvms);
        cr_assert_not(has_vm("plain1"));
        /* the line the log gets names the domain and both ways to opt in */
        cr_assert_eq(elvis_libvirt_may_adopt(m, &info, &e), -EPERM);
        cr_assert(strstr(e.detail, "domain plain1 has no ELVIS metadata"), "%s", e.detail);
        cr_assert(strstr(e.detail, "left alone"), "%s", e.detail);
        cr_assert(strstr(e.detail, "<elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'/>"), "%s", e.detail);
        cr_assert(strstr(e.detail, "adopt-domains"), "%s", e.detail);
        drop_domain(plain);
        drop_domain(marker);
}

/* adopt-domains names domains to take without metadata: at their start, and on a reconnect
 * (the daemon's restart, or libvirtd's) for those already running; others stay alone. */
Test(libvirt, adopt_domains_names_domains_without_metadata)
{
        virDomainPtr web, db, late, marker, marker2;

        free(m->cfg.adopt_domains);
        m->cfg.adopt_domains = strdup("web-*, other");
        web = start_domain("web-1", NULL);
        db = start_domain("db-1", NULL);
        marker = start_domain("marker", META);
        cr_assert(run_until(marker_adopted));
        cr_assert(has_vm("web-1"), "named by adopt-domains");
        cr_assert_not(has_vm("db-1"), "neither metadata nor adopt-domains");
        cr_assert_eq(m->state.nvms, 2);
        /* the list grows while db-1 runs: the next reconnect adopts it */
        free(m->cfg.adopt_domains);
        m->cfg.adopt_domains = strdup("web-*,db-?");
        elvis_libvirt_stop(m);
        cr_assert_eq(elvis_libvirt_start(m), 0);
        cr_assert(run_until(connected));
        cr_assert(has_vm("db-1"), "re-adopted on reconnect");
        cr_assert_eq(m->state.nvms, 3);
        /* what SIGHUP does when adopt-domains changes: running domains it now names */
        late = start_domain("late-1", NULL);
        marker2 = start_domain("marker2", META);
        cr_assert(run_until(marker2_adopted));
        cr_assert_not(has_vm("late-1"));
        free(m->cfg.adopt_domains);
        m->cfg.adopt_domains = strdup("late-*");
        elvis_libvirt_adopt_running(m);
        cr_assert(has_vm("late-1"));
        cr_assert_eq(m->state.nvms, 5);
        drop_domain(web);
        drop_domain(db);
        drop_domain(late);
        drop_domain(marker);
        drop_domain(marker2);
        cr_assert(run_until(no_vms), "stopping them released all five");
}

/* ---- vcpu-pinning respect: the orchestrator (here: the test's own connection) owns the
 * pins; ELVIS reads them, keeps its sidecores off them and reports collisions ---- */

TestSuite(libvirt_respect, .init = setup_respect, .fini = teardown, .timeout = 60);

/* The orchestrator's pin of one vCPU to one CPU (the test driver takes flags=0 only). */
static void orchestrator_pins(virDomainPtr dom, unsigned vcpu, int cpu)
{
        unsigned char map = (unsigned char)(1u << cpu);

        cr_assert_eq(virDomainPinVcpu(dom, vcpu, &map, 1), 0, "%s", virGetLastErrorMessage());
}

/* A one-byte CPU map as a cpuset string (static buffer). */
static char *map_string(unsigned char map)
{
        static char buf[64];
        elvis_cpuset s;

        elvis_cpuset_zero(&s);
        for (int c = 0; c < 8; c++)
                if (map & (1u << c))
                        elvis_cpuset_set(&s, c);
        elvis_cpuset_format(&s, buf, sizeof(buf));
        return buf;
}

static char *emulator_pin_of(virDomainPtr dom)
{
        unsigned char map = 0;

        cr_assert_geq(virDomainGetEmulatorPinInfo(dom, &map, 1, 0), 0, "%s", virGetLastErrorMessage());
        return map_string(map);
}

static char *fmt(const elvis_cpuset *s)
{
        static char buf[64];
        elvis_cpuset_format(s, buf, sizeof(buf));
        return buf;
}

/* The test domain as a VM with one loopback device, so that it needs a sidecore. */
static const struct elvis_vm *add_with_device(void)
{
        struct elvis_vm vm = { .numa = -1, .policy = { 100, ELVIS_EXITLESS_AUTO }, .ndevices = 1 };
        struct elvis_err e = { 0 };

        snprintf(vm.name, sizeof(vm.name), "t1");
        snprintf(vm.domain, sizeof(vm.domain), "test");
        vm.devices[0] = (struct elvis_device){ .backend = ELVIS_BACKEND_LOOPBACK, .queues = 1 };
        snprintf(vm.devices[0].id, sizeof(vm.devices[0].id), "net0");
        cr_assert_eq(add_domain(&vm, &e), 0, "%s", e.detail);
        return elvis_state_vm(&m->state, vm.id);
}

static unsigned journal_count(const char *event)
{
        uint64_t last;
        json_t *a = elvis_journal_since(m, 0, 1000, &last), *ev;
        unsigned n = 0;
        size_t i;

        json_array_foreach(a, i, ev) {
                const char *name = json_string_value(json_object_get(ev, "event"));
                n += name && strcmp(name, event) == 0;
        }
        json_decref(a);
        return n;
}

static json_t *health_warnings(void)
{
        json_t *h = elvis_manager_health(m), *w = json_incref(json_object_get(h, "warnings"));

        json_decref(h);
        cr_assert(json_is_array(w), "health has a warnings array");
        return w;
}

Test(libvirt_respect, pins_are_left_alone_and_sidecores_go_around_them)
{
        virDomainPtr dom = virDomainLookupByName(conn, "test");
        const struct elvis_vm *vm;
        json_t *st;

        /* the orchestrator put both vCPUs on node 1's two highest CPUs */
        orchestrator_pins(dom, 0, 6);
        orchestrator_pins(dom, 1, 7);
        vm = add_with_device();
        cr_assert_eq(vm->vcpus, 2, "the vCPU count came from the domain");
        cr_assert(elvis_cpuset_empty(&vm->cpus), "ELVIS reserved nothing of its own");
        cr_assert_str_eq(fmt(&vm->pinned), "6-7", "the orchestrator's CPUs are the VM's");
        cr_assert_eq(vm->numa, 1);
        cr_assert_eq(m->state.nsidecores, 1);
        cr_assert_eq(m->state.sidecores[0].cpu, 5, "node 1 of the pins, on the highest core they leave free");
        settle();
        cr_assert_str_eq(pin_of(dom, 0), "6", "not re-pinned");
        cr_assert_str_eq(pin_of(dom, 1), "7", "not re-pinned");
        cr_assert_str_eq(emulator_pin_of(dom), "0-7", "the emulator was not moved to the reserved CPU");
        /* a restart corrects no drift: there is none to correct */
        elvis_libvirt_stop(m);
        cr_assert_eq(elvis_libvirt_start(m), 0);
        settle();
        cr_assert_str_eq(pin_of(dom, 0), "6");
        cr_assert_str_eq(pin_of(dom, 1), "7");
        st = elvis_libvirt_status(m);
        cr_assert_str_eq(json_string_value(json_object_get(st, "vcpu_pinning")), "respect");
        json_decref(st);
        /* an operator cannot put a sidecore on a pinned CPU either */
        {
                struct elvis_sidecore sc;
                struct elvis_err e = { 0 };
                cr_assert_eq(elvis_manager_sidecore_add(m, 7, &sc, &e), -EBUSY);
        }
        virDomainFree(dom);
}

static bool pinned_on_4(void)
{
        return m->state.nvms == 1 && strcmp(fmt(&m->state.vms[0].pinned), "4,7") == 0;
}

Test(libvirt_respect, a_new_pin_is_read_at_the_next_event)
{
        virDomainPtr dom = virDomainLookupByName(conn, "test");

        orchestrator_pins(dom, 0, 6);
        orchestrator_pins(dom, 1, 7);
        add_with_device();
        settle();
        cr_assert_eq(virDomainSuspend(dom), 0);
        orchestrator_pins(dom, 0, 4);
        cr_assert_eq(virDomainResume(dom), 0);
        cr_assert(run_until(pinned_on_4), "the RESUMED event re-read the pins");
        cr_assert_str_eq(pin_of(dom, 0), "4");
        virDomainFree(dom);
}

static bool one_conflict_journalled(void)
{
        return journal_count("pin_conflict") == 1;
}

static bool conflict_resolved(void)
{
        return journal_count("pin_conflict_resolved") == 1;
}

Test(libvirt_respect, a_sidecore_cpu_given_to_a_vcpu_is_reported_once)
{
        virDomainPtr dom = virDomainLookupByName(conn, "test");
        const struct elvis_vm *vm;
        json_t *w, *c;
        uint32_t sc;

        orchestrator_pins(dom, 0, 6);
        orchestrator_pins(dom, 1, 7);
        vm = add_with_device();
        sc = m->state.sidecores[0].id;
        cr_assert_eq(m->state.sidecores[0].cpu, 5);
        w = health_warnings();
        cr_assert_eq(json_array_size(w), 0, "no conflict yet");
        json_decref(w);
        /* the orchestrator moves vCPU 1 onto the sidecore's CPU; the test driver sends no
         * tunable event, so the periodic re-read finds it */
        orchestrator_pins(dom, 1, 5);
        elvis_libvirt_refresh_pins(m);
        vm = elvis_state_vm(&m->state, m->state.vms[0].id);
        cr_assert_str_eq(fmt(&vm->pinned), "5-6");
        w = health_warnings();
        cr_assert_eq(json_array_size(w), 1);
        c = json_array_get(w, 0);
        cr_assert_str_eq(json_string_value(json_object_get(c, "kind")), "pin_conflict");
        cr_assert_eq(json_integer_value(json_object_get(c, "cpu")), 5);
        cr_assert_eq(json_integer_value(json_object_get(c, "sidecore")), sc);
        cr_assert_str_eq(json_string_value(json_object_get(c, "vm_name")), "t1");
        cr_assert(strstr(json_string_value(json_object_get(c, "message")), "CPU 5"), "%s",
                  json_string_value(json_object_get(c, "message")));
        json_decref(w);
        cr_assert(run_until(one_conflict_journalled), "the conflict is journalled");
        /* later checks (a re-read, any other change) find the same conflict: no second report */
        elvis_libvirt_refresh_pins(m);
        settle();
        {
                struct elvis_vm patched;
                struct elvis_err e = { 0 };
                json_t *patch = json_pack("{s:{s:i}}", "policy", "weight", 200);
                cr_assert_eq(elvis_manager_vm_patch(m, m->state.vms[0].id, patch, &patched, &e), 0, "%s", e.detail);
                json_decref(patch);
        }
        settle();
        cr_assert_eq(journal_count("pin_conflict"), 1, "one report per conflict, not one per check");
        cr_assert_str_eq(pin_of(dom, 1), "5", "ELVIS reports; it does not pin back");
        /* the orchestrator moves it away again */
        orchestrator_pins(dom, 1, 7);
        elvis_libvirt_refresh_pins(m);
        w = health_warnings();
        cr_assert_eq(json_array_size(w), 0);
        json_decref(w);
        cr_assert(run_until(conflict_resolved), "the end of the conflict is journalled");
        virDomainFree(dom);
}

Test(libvirt_respect, adopted_domains_keep_their_pins)
{
        const char *xml = "<domain type='test'><name>meta2</name><memory>65536</memory><vcpu>1</vcpu>"
                          "<cputune><vcpupin vcpu='0' cpuset='3'/></cputune><os><type>hvm</type></os>"
                          "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1' weight='300'/>"
                          "</metadata></domain>";
        virDomainPtr dom = virDomainDefineXML(conn, xml);

        cr_assert_not_null(dom, "%s", virGetLastErrorMessage());
        cr_assert_eq(virDomainCreate(dom), 0);
        cr_assert(run_until(one_vm), "the STARTED event adopted the domain");
        cr_assert_str_eq(fmt(&m->state.vms[0].pinned), "3");
        cr_assert(elvis_cpuset_empty(&m->state.vms[0].cpus));
        cr_assert_eq(m->state.vms[0].numa, 0);
        settle();
        {
                unsigned char map = 0;
                cr_assert_geq(virDomainGetVcpuPinInfo(dom, 1, &map, 1, 0), 0);
                cr_assert_eq(map, 1u << 3, "still where the domain said");
        }
        virDomainDestroy(dom);
        virDomainUndefine(dom);
        cr_assert(run_until(no_vms));
        virDomainFree(dom);
}

/* ---- live migration: libvirt's test driver cannot migrate, so its domains are put in
 * the state a migration leaves them in (paused, destroyed, resumed) and the migration
 * events are handed to the lifecycle handler, elvis_libvirt_domain_event(), which the
 * manager's libvirt callback calls for every event. What libvirt sends on its own for
 * those state changes (SUSPENDED_PAUSED, STOPPED_DESTROYED, RESUMED_UNPAUSED) still
 * arrives through the manager's connection. ---- */

TestSuite(migration, .init = setup, .fini = teardown, .timeout = 60);

#define META_NET                                                                                                 \
        "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1' weight='300'/></metadata>"

/* The last journal event of that name: its reason (a static copy), or NULL. */
static const char *journal_reason(const char *event)
{
        static char buf[1024];
        uint64_t last;
        json_t *a = elvis_journal_since(m, 0, 1000, &last), *ev;
        const char *found = NULL;
        size_t i;

        json_array_foreach(a, i, ev) {
                const char *name = json_string_value(json_object_get(ev, "event"));
                if (name && strcmp(name, event) == 0) {
                        snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(ev, "reason")));
                        found = buf;
                }
        }
        json_decref(a);
        return found;
}

/* What state.json says about VM name: its "migration" ("" when the key is absent), or
 * NULL when the file has no such VM. */
static const char *saved_migration(const char *name)
{
        static char buf[32];
        char path[160];
        json_error_t jerr;
        json_t *j, *vm;
        const char *r = NULL;
        size_t i;

        snprintf(path, sizeof(path), "%s/state/state.json", dir);
        j = json_load_file(path, 0, &jerr);
        cr_assert_not_null(j, "%s: %s", path, jerr.text);
        json_array_foreach(json_object_get(j, "vms"), i, vm)
                if (strcmp(json_string_value(json_object_get(vm, "name")), name) == 0) {
                        json_t *mig = json_object_get(vm, "migration");
                        snprintf(buf, sizeof(buf), "%s", mig ? json_string_value(mig) : "");
                        r = buf;
                }
        json_decref(j);
        return r;
}

static struct elvis_vm *vm_named(const char *name)
{
        return elvis_state_vm_by_name(&m->state, name);
}

/* The source: "test" (2 vCPUs) as VM t1 with a loopback device on a sidecore. */
static uint32_t source_vm(void)
{
        uint32_t id = add_with_device()->id;

        settle();
        cr_assert_eq(m->state.nsidecores, 1, "the device has a sidecore");
        cr_assert_neq(m->state.vms[0].devices[0].sidecore[0], 0, "its queue is served");
        return id;
}

static bool t1_gone(void) { return !vm_named("t1"); }

Test(migration, the_source_keeps_the_vm_until_the_domain_stops_here)
{
        virDomainPtr dom = virDomainLookupByName(conn, "test");
        uint32_t id = source_vm(), sc = m->state.sidecores[0].id;
        elvis_cpuset cpus = vm_named("t1")->cpus;
        const char *why;

        /* the switch-over: QEMU pauses the guest here and hands its rings over */
        cr_assert_eq(virDomainSuspend(dom), 0);
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED);
        settle();
        cr_assert_not_null(vm_named("t1"), "kept while the domain is paused here");
        cr_assert_eq(vm_named("t1")->migration, ELVIS_MIGRATION_OUTGOING);
        cr_assert(elvis_cpuset_equal(&vm_named("t1")->cpus, &cpus), "its CPUs are still its own");
        cr_assert_eq(m->state.nsidecores, 1);
        cr_assert_eq(vm_named("t1")->devices[0].sidecore[0], sc, "its queue is still served by the same sidecore");
        cr_assert_str_eq(saved_migration("t1"), "outgoing", "state.json says so before the journal does");
        {
                char want[16];
                snprintf(want, sizeof(want), "%d", elvis_cpuset_next(&cpus, 0));
                cr_assert_str_eq(pin_of(dom, 0), want, "its vCPU pins stay");
        }
        why = journal_reason("migrating_out");
        cr_assert_not_null(why, "the hand-over is journalled");
        cr_assert(strstr(why, "domain test is paused here for a live migration's switch-over"), "%s", why);
        cr_assert_null(journal_reason("migrated_out"));
        /* the destination took over: QEMU stops here */
        cr_assert_eq(virDomainDestroy(dom), 0);
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_MIGRATED);
        cr_assert(t1_gone(), "released once the domain is gone from this host");
        cr_assert_null(saved_migration("t1"), "and gone from state.json");
        settle();
        cr_assert_eq(m->state.nsidecores, 0, "the idle automatic sidecore went with it");
        why = journal_reason("migrated_out");
        cr_assert_not_null(why);
        cr_assert(strstr(why, "domain test migrated to another host and stopped here: VM 1 't1' removed"), "%s", why);
        cr_assert(strstr(why, "1 device(s) released"), "%s", why);
        cr_assert_null(elvis_state_vm(&m->state, id));
        /* libvirt's own STOPPED_DESTROYED arrives after: nothing left to do */
        settle();
        cr_assert_eq(journal_count("migrated_out"), 1);
        virDomainFree(dom);
}

static bool t1_not_migrating(void) { return vm_named("t1") && vm_named("t1")->migration == ELVIS_MIGRATION_NONE; }

/* The migration fails after the switch-over began: QEMU resumes the guest here. */
Test(migration, a_failed_migration_leaves_the_source_intact)
{
        virDomainPtr dom = virDomainLookupByName(conn, "test");
        uint32_t sc;
        elvis_cpuset cpus;
        const char *why;

        source_vm();
        sc = m->state.sidecores[0].id;
        cpus = vm_named("t1")->cpus;
        cr_assert_eq(virDomainSuspend(dom), 0);
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED);
        cr_assert_eq(vm_named("t1")->migration, ELVIS_MIGRATION_OUTGOING);
        /* libvirt resumes it (RESUMED_MIGRATED on a source; the test driver says UNPAUSED) */
        cr_assert_eq(virDomainResume(dom), 0);
        cr_assert(run_until(t1_not_migrating), "the resume ended the migration here");
        cr_assert(elvis_cpuset_equal(&vm_named("t1")->cpus, &cpus));
        cr_assert_eq(m->state.nsidecores, 1);
        cr_assert_eq(vm_named("t1")->devices[0].sidecore[0], sc);
        cr_assert_str_eq(saved_migration("t1"), "", "state.json: no migration");
        why = journal_reason("migration_out_failed");
        cr_assert_not_null(why);
        cr_assert(strstr(why, "domain test resumed here: its migration failed or was cancelled"), "%s", why);
        cr_assert_null(journal_reason("migrated_out"));
        /* the same through the event a real source gets */
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED);
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_MIGRATED);
        cr_assert_eq(vm_named("t1")->migration, ELVIS_MIGRATION_NONE);
        cr_assert_eq(journal_count("migration_out_failed"), 2);
        virDomainFree(dom);
}

/* The destination's domain as libvirt starts it for an incoming migration: ELVIS
 * metadata, one vCPU, a vhost-user interface under run-dir; QEMU runs, the guest not. */
static virDomainPtr incoming_domain(const char *name)
{
        char xml[1024];
        virDomainPtr dom;

        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>%s</name><memory>65536</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
                 META_NET "<devices><interface type='vhostuser'><source type='unix' path='%s/run/%s.sock' "
                 "mode='client'/><model type='virtio'/></interface></devices></domain>", name, dir, name);
        dom = virDomainDefineXML(conn, xml);
        cr_assert_not_null(dom, "%s", virGetLastErrorMessage());
        cr_assert_eq(virDomainCreate(dom), 0, "%s", virGetLastErrorMessage());
        cr_assert_eq(virDomainSuspend(dom), 0);
        return dom;
}

static char *pin_of_one(virDomainPtr dom)
{
        unsigned char map = 0;

        cr_assert_geq(virDomainGetVcpuPinInfo(dom, 1, &map, 1, 0), 0, "%s", virGetLastErrorMessage());
        return map_string(map);
}

Test(migration, the_destination_adopts_before_the_guest_runs)
{
        virDomainPtr dom = incoming_domain("mig1");
        const struct elvis_vm *vm;
        char sock[160], want[16];
        const char *why;

        snprintf(sock, sizeof(sock), "%s/run/mig1.sock", dir);
        /* handled at once, without a loop turn */
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        vm = vm_named("mig1");
        cr_assert_not_null(vm, "adopted from its metadata");
        cr_assert_eq(vm->migration, ELVIS_MIGRATION_INCOMING);
        cr_assert_eq(vm->policy.weight, 300);
        cr_assert_eq(vm->ndevices, 1);
        cr_assert_str_eq(vm->devices[0].socket, sock, "the device listens where the domain's QEMU connects");
        cr_assert_eq(m->state.nsidecores, 1, "a sidecore serves it");
        cr_assert_neq(vm->devices[0].sidecore[0], 0);
        snprintf(want, sizeof(want), "%d", elvis_cpuset_next(&vm->cpus, 0));
        settle();
        /* a real libvirtd holds the incoming migration's job until the guest resumes: a pin
         * call would block the loop until it timed out (the qemu hook puts the pins in the
         * incoming XML instead) */
        cr_assert_str_eq(pin_of_one(dom), "0-7", "no pin call while the migration runs");
        cr_assert_str_eq(saved_migration("mig1"), "incoming");
        why = journal_reason("migration_in");
        cr_assert_not_null(why);
        cr_assert(strstr(why, "domain mig1 arrives by live migration: adopted from its metadata as VM 'mig1'"), "%s", why);
        cr_assert(strstr(why, "1 device(s) ready) before its guest runs here"), "%s", why);
        /* the switch-over completed: libvirt resumes the guest here */
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_RESUMED, VIR_DOMAIN_EVENT_RESUMED_MIGRATED);
        vm = vm_named("mig1");
        cr_assert_eq(vm->migration, ELVIS_MIGRATION_NONE);
        cr_assert_str_eq(pin_of_one(dom), want, "pinned as the migration completes");
        cr_assert_str_eq(saved_migration("mig1"), "");
        why = journal_reason("migrated_in");
        cr_assert_not_null(why);
        cr_assert(strstr(why, "domain mig1 resumed here: its migration completed"), "%s", why);
        /* libvirt's own events for the same domain (STARTED, SUSPENDED) change nothing */
        settle();
        cr_assert_eq(m->state.nvms, 1);
        cr_assert_eq(journal_count("migration_in"), 1);
        drop_domain(dom);
        cr_assert(run_until(no_vms));
}

static bool mig2_gone(void) { return !vm_named("mig2"); }

/* The migration fails before the guest ran here: libvirt kills the incoming QEMU. */
Test(migration, a_failed_incoming_migration_cleans_the_destination)
{
        virDomainPtr dom = incoming_domain("mig2");
        char sock[160];
        const char *why;

        snprintf(sock, sizeof(sock), "%s/run/mig2.sock", dir);
        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        cr_assert_not_null(vm_named("mig2"));
        cr_assert_eq(m->state.nsidecores, 1);
        cr_assert_eq(virDomainDestroy(dom), 0);
        /* a real destination gets STOPPED_FAILED; the test driver's STOPPED_DESTROYED is as good */
        cr_assert(run_until(mig2_gone), "the stop released it");
        settle();
        cr_assert_eq(m->state.nsidecores, 0, "its sidecore went with it");
        cr_assert_null(saved_migration("mig2"));
        why = journal_reason("migration_in_failed");
        cr_assert_not_null(why);
        cr_assert(strstr(why, "domain mig2 stopped before its incoming migration completed: VM 1 'mig2' removed"), "%s",
                  why);
        cr_assert_null(journal_reason("migrated_in"));
        virDomainUndefine(dom);
        virDomainFree(dom);
}

/* libvirt can fail an incoming migration after the hook added the VM and before the
 * domain exists, with no event: the VM is released after four checks find no domain,
 * and not before; one whose domain exists is never released this way. */
Test(migration, an_arrival_that_never_comes_is_released_after_a_grace_period)
{
        virDomainPtr dom = incoming_domain("mig3"), here = incoming_domain("mig4");
        const char *why;

        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        elvis_libvirt_domain_event(m, here, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        cr_assert_not_null(vm_named("mig3"));
        cr_assert_str_eq(saved_migration("mig3"), "incoming");
        /* the domain vanishes from libvirt; its events are not delivered (the loop does not run) */
        cr_assert_eq(virDomainDestroy(dom), 0);
        cr_assert_eq(virDomainUndefine(dom), 0);
        for (int i = 0; i < 3; i++)
                elvis_libvirt_check_arrivals(m);
        cr_assert_not_null(vm_named("mig3"), "three checks are not enough");
        cr_assert_null(journal_reason("migration_in_failed"));
        elvis_libvirt_check_arrivals(m);
        cr_assert_null(vm_named("mig3"), "the fourth releases it");
        why = journal_reason("migration_in_failed");
        cr_assert_not_null(why);
        cr_assert(strstr(why, "never appeared in libvirt"), "%s", why);
        cr_assert_not_null(vm_named("mig4"), "a VM whose domain exists stays");
        cr_assert_str_eq(saved_migration("mig4"), "incoming");
        virDomainFree(dom);
        drop_domain(here);
}

/* A domain that did not opt in is not adopted on arrival either. */
Test(migration, an_incoming_domain_without_metadata_is_left_alone)
{
        virDomainPtr dom = start_domain("plain-in", NULL);

        elvis_libvirt_domain_event(m, dom, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        cr_assert_eq(m->state.nvms, 0);
        cr_assert_null(journal_reason("migration_in"));
        drop_domain(dom);
}

/* What a restart of the manager does on the libvirt side: the state it loads from
 * state.json, reconciled with libvirt's view when it connects. */
static void restart_libvirt_side(void)
{
        struct elvis_state loaded;
        char aside[256];

        elvis_libvirt_stop(m);
        cr_assert_eq(elvis_state_init(&loaded), 0);
        cr_assert_eq(elvis_store_load(&m->store, &loaded, aside, sizeof(aside)), 1, "state.json is readable");
        elvis_state_fini(&m->state);
        m->state = loaded;
        cr_assert_eq(elvis_libvirt_start(m), 0);
        cr_assert(run_until(connected));
}

Test(migration, a_restart_mid_migration_reconciles)
{
        virDomainPtr src = virDomainLookupByName(conn, "test"), in1, in2, in3;

        /* the source: paused for the switch-over, then it stopped while ELVIS was away */
        source_vm();
        cr_assert_eq(virDomainSuspend(src), 0);
        elvis_libvirt_domain_event(m, src, VIR_DOMAIN_EVENT_SUSPENDED, VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED);
        /* three arrivals: one completes while ELVIS is away, one fails, one still runs */
        in1 = incoming_domain("in1");
        in2 = incoming_domain("in2");
        in3 = incoming_domain("in3");
        elvis_libvirt_domain_event(m, in1, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        elvis_libvirt_domain_event(m, in2, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        elvis_libvirt_domain_event(m, in3, VIR_DOMAIN_EVENT_STARTED, VIR_DOMAIN_EVENT_STARTED_MIGRATED);
        settle();
        cr_assert_eq(m->state.nvms, 4);
        cr_assert_str_eq(saved_migration("t1"), "outgoing");
        cr_assert_str_eq(saved_migration("in1"), "incoming");
        elvis_libvirt_stop(m);
        cr_assert_eq(virDomainDestroy(src), 0);
        cr_assert_eq(virDomainResume(in1), 0);
        cr_assert_eq(virDomainDestroy(in2), 0);
        restart_libvirt_side();
        cr_assert_null(vm_named("t1"), "the source's domain stopped: released");
        cr_assert_not_null(journal_reason("migrated_out"));
        cr_assert(strstr(journal_reason("migrated_out"), "domain test left this host (migrated while ELVIS was away)"),
                  "%s", journal_reason("migrated_out"));
        cr_assert_not_null(vm_named("in1"));
        cr_assert_eq(vm_named("in1")->migration, ELVIS_MIGRATION_NONE, "in1 runs: its migration completed");
        cr_assert_str_eq(saved_migration("in1"), "");
        cr_assert(strstr(journal_reason("migrated_in"), "domain in1 runs here: its migration completed"), "%s",
                  journal_reason("migrated_in"));
        cr_assert_null(vm_named("in2"), "in2 stopped before it arrived: cleaned");
        cr_assert(strstr(journal_reason("migration_in_failed"), "domain in2 did not arrive"), "%s",
                  journal_reason("migration_in_failed"));
        cr_assert_not_null(vm_named("in3"));
        cr_assert_eq(vm_named("in3")->migration, ELVIS_MIGRATION_INCOMING, "in3 still waits for its guest");
        cr_assert_str_eq(saved_migration("in3"), "incoming");
        cr_assert_eq(m->state.nvms, 2);
        virDomainUndefine(src);
        virDomainFree(src);
        drop_domain(in1);
        virDomainUndefine(in2);
        virDomainFree(in2);
        drop_domain(in3);
}

/* Undefining a running domain leaves it running (transient): its VM stays. */
Test(migration, undefining_a_running_domain_keeps_its_vm)
{
        virDomainPtr dom = start_domain("transient1", META);

        cr_assert(run_until(one_vm));
        cr_assert_eq(virDomainUndefine(dom), 0);
        settle();
        cr_assert_eq(m->state.nvms, 1, "still runs here");
        cr_assert_eq(virDomainDestroy(dom), 0);
        cr_assert(run_until(no_vms), "released when it stops");
        virDomainFree(dom);
}
