/* Unit tests: libvirt domain XML parsing (vCPUs, vhost-user interfaces, ELVIS metadata). */
#include <criterion/criterion.h>

#include "../../daemon/domxml.h"

#include <errno.h>
#include <string.h>

static const char *dom =
        "<domain type='kvm'><name>web-01</name><uuid>c7a5fdbd-cdaf-9455-926a-d65c16db1809</uuid>"
        "<vcpu placement='static' current='3'>8</vcpu>"
        "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1' weight='250' exitless='always'/>"
        "<other:thing xmlns:other='urn:x'/></metadata>"
        "<devices><interface type='vhostuser'><source type='unix' path='/run/elvis/a.sock' mode='client'/>"
        "<model type='virtio'/></interface><interface type='network'><source network='default'/></interface>"
        "<interface type='vhostuser'><source type='unix' path='/run/elvis/b.sock' mode='client'/></interface>"
        "</devices></domain>";

Test(domxml, full_domain)
{
        struct elvis_domain_info i;
        char err[256];

        cr_assert_eq(elvis_domxml_parse(dom, strlen(dom), &i, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(i.name, "web-01");
        cr_assert_str_eq(i.uuid, "c7a5fdbd-cdaf-9455-926a-d65c16db1809");
        cr_assert_eq(i.vcpus, 3, "the current count, not the maximum");
        cr_assert(i.has_policy);
        cr_assert_eq(i.policy.weight, 250);
        cr_assert_eq(i.policy.exitless, ELVIS_EXITLESS_ALWAYS);
        cr_assert_eq(i.nifaces, 2, "only vhost-user interfaces");
        cr_assert_str_eq(i.sockets[1], "/run/elvis/b.sock");
}

Test(domxml, minimal_domain_without_metadata)
{
        const char *x = "<domain><name>x</name><vcpu>2</vcpu></domain>";
        struct elvis_domain_info i;
        char err[256];

        cr_assert_eq(elvis_domxml_parse(x, strlen(x), &i, err, sizeof(err)), 0);
        cr_assert_eq(i.vcpus, 2);
        cr_assert_not(i.has_policy);
        cr_assert_eq(i.policy.weight, ELVIS_WEIGHT_DEFAULT);
        cr_assert_eq(i.nifaces, 0);
}

static void bad(const char *x, const char *needle)
{
        struct elvis_domain_info i;
        char err[256] = "";

        cr_assert_lt(elvis_domxml_parse(x, strlen(x), &i, err, sizeof(err)), 0, "accepted %s", x);
        cr_assert(strstr(err, needle), "'%s' lacks '%s'", err, needle);
}

Test(domxml, rejects_bad_documents)
{
        bad("<domain><name>x</name>", "not well-formed");
        bad("<domain><vcpu>2</vcpu></domain>", "no <name>");
        bad("<domain><name>x</name><vcpu>0</vcpu></domain>", "vcpu count");
        bad("<domain><name>x</name><vcpu>lots</vcpu></domain>", "vcpu count");
        bad("<domain><name>x</name><metadata><e:policy xmlns:e='https://elvis.dev/xmlns/1' weight='0'/></metadata>"
            "</domain>", "weight");
        bad("<domain><name>x</name><metadata><e:policy xmlns:e='https://elvis.dev/xmlns/1' exitless='maybe'/>"
            "</metadata></domain>", "exitless");
        bad("<domain><name>x</name><devices><interface type='vhostuser'><source path='rel.sock'/></interface>"
            "</devices></domain>", "not absolute");
        /* entities are not expanded and nothing is fetched */
        bad("<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><domain><name>&e;</name></domain>", "no <name>");
}

/* vhost-user-blk: a vhostuser <disk> is ELVIS's when an <elvis:disk> names its target,
 * which also says what libvirt cannot: the image (or a null disk's size), read-only. */
#define DISKS_META                                                                                         \
        "<metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'>"                                 \
        "<elvis:disk target='vdb' id='data' backend='file' "                                                \
        "path='/var/lib/elvis/images/db.img' readonly='yes' queues='4'/>"                                   \
        "<elvis:disk target='vdc' backend='null' size='1048576'/>"                                          \
        "</elvis:policy></metadata>"
#define DISK(dev, sock, extra)                                                                             \
        "<disk type='vhostuser' device='disk'><driver name='qemu' type='raw'" extra "/>"                  \
        "<source type='unix' path='" sock "'><reconnect enabled='yes' timeout='1'/></source>"             \
        "<target dev='" dev "' bus='virtio'/></disk>"

Test(domxml, vhostuser_disks_with_elvis_metadata)
{
        const char *x = "<domain><name>db</name><vcpu>1</vcpu>" DISKS_META "<devices>"
                        "<disk type='file' device='disk'><source file='/boot.img'/><target dev='vda'/></disk>"
                        DISK("vdb", "/run/elvis/db-vdb.sock", " queues='4'") DISK("vdc", "/run/elvis/db-vdc.sock", "")
                        DISK("vdd", "/run/spdk/theirs.sock", "")
                        "<interface type='vhostuser'><source type='unix' path='/run/elvis/n.sock' mode='client'/>"
                        "</interface></devices></domain>";
        struct elvis_device devs[ELVIS_MAX_DEVICES];
        struct elvis_domain_info i;
        char err[256];

        cr_assert_eq(elvis_domxml_parse(x, strlen(x), &i, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(i.nifaces, 1);
        cr_assert_eq(i.ndisks, 2, "vdd has no <elvis:disk>: someone else's");
        cr_assert(i.has_policy);
        cr_assert_str_eq(i.disks[0].socket, "/run/elvis/db-vdb.sock");
        cr_assert_eq(i.disks[0].backend, ELVIS_BACKEND_FILE);
        cr_assert_str_eq(i.disks[0].path, "/var/lib/elvis/images/db.img");
        cr_assert(i.disks[0].readonly);
        cr_assert_eq(i.disks[0].queues, 4);
        cr_assert_eq(i.disks[1].backend, ELVIS_BACKEND_NULL);
        cr_assert_eq(i.disks[1].size_bytes, 1048576);
        cr_assert_eq(i.disks[1].queues, 1);
        cr_assert_not(i.disks[1].readonly);
        cr_assert_eq(elvis_domxml_devices(&i, devs), 3);
        cr_assert_str_eq(devs[0].id, "net0");
        cr_assert_eq(devs[0].type, ELVIS_DEVICE_NET);
        cr_assert_str_eq(devs[1].id, "data");
        cr_assert_eq(devs[1].type, ELVIS_DEVICE_BLK);
        cr_assert_str_eq(devs[1].path, "/var/lib/elvis/images/db.img");
        cr_assert_str_eq(devs[1].socket, "/run/elvis/db-vdb.sock");
        cr_assert_eq(devs[1].queues, 4);
        cr_assert_str_eq(devs[2].id, "blk2");
        cr_assert_eq(devs[2].size_bytes, 1048576);
}

Test(domxml, rejects_bad_disk_metadata)
{
#define EL "<elvis:disk "
#define WRAP(meta, dev)                                                                                     \
        "<domain><name>x</name><metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'>" meta       \
        "</elvis:policy></metadata><devices>" dev "</devices></domain>"
        bad(WRAP(EL "target='vdb' path='/i/a.img'/>", ""), "names no <disk type='vhostuser'>");
        bad(WRAP(EL "target='vdb' path='/i/a.img'/>", "<disk type='file'><source file='/x'/><target dev='vdb'/></disk>"),
            "names no <disk type='vhostuser'>");
        bad(WRAP(EL "path='/i/a.img'/>", DISK("vdb", "/run/elvis/s.sock", "")), "no valid target");
        bad(WRAP(EL "target='vdb'/>", DISK("vdb", "/run/elvis/s.sock", "")), "needs the image's path");
        bad(WRAP(EL "target='vdb' path='rel.img'/>", DISK("vdb", "/run/elvis/s.sock", "")), "absolute image path");
        bad(WRAP(EL "target='vdb' backend='tap'/>", DISK("vdb", "/run/elvis/s.sock", "")), "not file or null");
        bad(WRAP(EL "target='vdb' backend='null' size='1000'/>", DISK("vdb", "/run/elvis/s.sock", "")), "size");
        bad(WRAP(EL "target='vdb' path='/i/a' size='4096'/>", DISK("vdb", "/run/elvis/s.sock", "")), "size");
        bad(WRAP(EL "target='vdb' path='/i/a' readonly='maybe'/>", DISK("vdb", "/run/elvis/s.sock", "")), "readonly");
        bad(WRAP(EL "target='vdb' path='/i/a' id='1x'/>", DISK("vdb", "/run/elvis/s.sock", "")), "id");
        bad(WRAP(EL "target='vdb' path='/i/a' queues='2'/>", DISK("vdb", "/run/elvis/s.sock", " queues='4'")),
            "agree");
        bad(WRAP(EL "target='vdb' path='/i/a'/>", DISK("vdb", "/run/elvis/s.sock", " queues='99'")), "queues");
        bad(WRAP(EL "target='vdb' path='/i/a'/>", DISK("vdb", "rel.sock", "")), "absolute socket path");
        bad(WRAP(EL "target='vdb' path='/i/a'/>" EL "target='vdb' path='/i/b'/>", DISK("vdb", "/run/elvis/s.sock", "")),
            "two <elvis:disk>");
        bad(WRAP(EL "target=\"vd'b\" path='/i/a'/>", DISK("vdb", "/run/elvis/s.sock", "")), "no valid target");
        {
                /* outside <elvis:policy> (where libvirt would drop it): not read */
                const char *x = "<domain><name>x</name><metadata><elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1'/>"
                                "<elvis:disk xmlns:elvis='https://elvis.dev/xmlns/1' target='vdb' path='/i/a'/>"
                                "</metadata><devices>" DISK("vdb", "/run/elvis/s.sock", "") "</devices></domain>";
                struct elvis_domain_info i;
                char err[256];
                cr_assert_eq(elvis_domxml_parse(x, strlen(x), &i, err, sizeof(err)), 0, "%s", err);
                cr_assert_eq(i.ndisks, 0);
        }
#undef EL
#undef WRAP
}

Test(domxml, vm_names_from_domain_names)
{
        char out[64];

        elvis_domxml_vm_name("web-01", out, sizeof(out));
        cr_assert_str_eq(out, "web-01");
        elvis_domxml_vm_name("01 db/primary", out, sizeof(out));
        cr_assert_str_eq(out, "vm-01-db-primary");
}

/* Opt-in: ELVIS metadata, or a glob of adopt-domains matching the name or the UUID. */
Test(domxml, opted_in)
{
        struct elvis_domain_info i = { .name = "web-01", .uuid = "c7a5fdbd-cdaf-9455-926a-d65c16db1809" };
        char err[200];

        cr_assert_not(elvis_domxml_opted_in(&i, NULL));
        cr_assert_not(elvis_domxml_opted_in(&i, ""));
        cr_assert_not(elvis_domxml_opted_in(&i, "web-1*,db-*"));
        cr_assert(elvis_domxml_opted_in(&i, "db-*, web-0?"), "spaces around commas are ignored");
        cr_assert(elvis_domxml_opted_in(&i, "C7A5FDBD-*"), "a UUID glob, any case");
        cr_assert_not(elvis_domxml_opted_in(&i, "web"), "a glob matches the whole name");
        i.has_policy = true;
        cr_assert(elvis_domxml_opted_in(&i, ""), "metadata is enough");
        cr_assert_eq(elvis_domxml_globs_check("", err, sizeof(err)), 0);
        cr_assert_eq(elvis_domxml_globs_check("web-*, nova-[0-9]*", err, sizeof(err)), 0);
        cr_assert_eq(elvis_domxml_globs_check("web-*, ", err, sizeof(err)), -EINVAL);
        cr_assert_eq(elvis_domxml_globs_check("a/b", err, sizeof(err)), -EINVAL);
        cr_assert(strstr(err, "'a/b'"), "%s", err);
}

static char *fmt(const elvis_cpuset *s)
{
        static char buf[128];
        elvis_cpuset_format(s, buf, sizeof(buf));
        return buf;
}

/* What an orchestrator writes: <vcpupin> per vCPU, <vcpu cpuset> for the others,
 * libvirt's "^N" exclusions. */
Test(domxml, orchestrator_pins)
{
        const char *x = "<domain><name>nova-1</name><vcpu placement='static' cpuset='0-7,^3'>4</vcpu>"
                        "<cputune><vcpupin vcpu='0' cpuset='10'/><vcpupin vcpu='1' cpuset='11-12'/>"
                        "<emulatorpin cpuset='1'/></cputune></domain>";
        const char *all = "<domain><name>k</name><vcpu>2</vcpu><cputune><vcpupin vcpu='0' cpuset='4'/>"
                          "<vcpupin vcpu='1' cpuset='5'/></cputune></domain>";
        const char *none = "<domain><name>n</name><vcpu>2</vcpu></domain>";
        struct elvis_domain_info i;
        char err[256];

        cr_assert_eq(elvis_domxml_parse(x, strlen(x), &i, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(fmt(&i.vcpupin), "10-12");
        cr_assert_str_eq(fmt(&i.vcpu_cpuset), "0-2,4-7");
        cr_assert(i.vcpu_cpuset_applies, "vCPUs 2 and 3 have no vcpupin of their own");
        cr_assert_eq(elvis_domxml_parse(all, strlen(all), &i, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(fmt(&i.vcpupin), "4-5");
        cr_assert_not(i.vcpu_cpuset_applies);
        cr_assert_eq(elvis_domxml_parse(none, strlen(none), &i, err, sizeof(err)), 0, "%s", err);
        cr_assert(elvis_cpuset_empty(&i.vcpupin) && elvis_cpuset_empty(&i.vcpu_cpuset));
}

Test(domxml, rejects_bad_pins)
{
        bad("<domain><name>x</name><vcpu>1</vcpu><cputune><vcpupin vcpu='0' cpuset='a-b'/></cputune></domain>",
            "<vcpupin vcpu='0' cpuset='a-b'> is not a CPU list");
        bad("<domain><name>x</name><vcpu>1</vcpu><cputune><vcpupin cpuset='1'/></cputune></domain>",
            "no valid vcpu number");
        bad("<domain><name>x</name><vcpu cpuset='^3'>1</vcpu></domain>", "<vcpu cpuset='^3'> is not a CPU list");
        bad("<domain><name>x</name><vcpu cpuset='1,,2'>1</vcpu></domain>", "is not a CPU list");
}
