/* elvisctl vm: list, add, show, set, remove a VM, and the libvirt XML that connects it. */
#include "args.h"
#include "cmd.h"
#include "table.h"

#include <stdbool.h>
#include <string.h>

/* /v1/vms/KEY with anything but unreserved characters percent-encoded */
static void vm_path(const char *key, char *buf, size_t size)
{
        size_t n = (size_t)snprintf(buf, size, "/v1/vms/");

        for (; *key && n + 4 < size; key++) {
                unsigned char ch = (unsigned char)*key;
                if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
                    strchr("-._~", ch))
                        buf[n++] = (char)ch;
                else
                        n += (size_t)snprintf(buf + n, size - n, "%%%02X", ch);
        }
        buf[n] = '\0';
}

/* "1,2,-": the sidecores serving a device's queue pairs; "-" for none */
static void device_sidecores(const json_t *dev, char *buf, size_t size)
{
        size_t q, n = 0;
        json_t *s;

        snprintf(buf, size, "-");
        json_array_foreach(json_object_get(dev, "sidecores"), q, s) {
                int k = snprintf(buf + n, size - n, "%s%s", q ? "," : "", ELVIS_INT_TEXT(s));
                if (k < 0 || (size_t)k >= size - n)
                        break;
                n += (size_t)k;
        }
}

static const char *vm_cpus(const json_t *vm)
{
        const char *cpus = elvis_json_str(vm, "cpus");

        return cpus[0] ? cpus : "-";
}

static bool is_blk(const json_t *dev)
{
        return !strcmp(elvis_json_str(dev, "type"), "blk");
}

/* "net0:loopback", "data:blk/file" */
static void device_label(const json_t *dev, char *buf, size_t size)
{
        snprintf(buf, size, "%s:%s%s", elvis_json_str(dev, "id"), is_blk(dev) ? "blk/" : "",
                 elvis_json_str(dev, "backend"));
}

/* ELVIS's own CPUs, or those an orchestrator pinned the vCPUs to (vcpu-pinning respect) */
static void vm_cpus_cell(const json_t *vm, char *buf, size_t size)
{
        const char *pinned = elvis_json_str(vm, "pinned_cpus");

        if (pinned[0])
                snprintf(buf, size, "%s (orchestrator)", pinned);
        else
                snprintf(buf, size, "%s", vm_cpus(vm));
}

/* One line per device; the VM's own columns only on its first. */
static const struct elvis_column vm_columns[] = {
        { "ID", ELVIS_COL_INT, .key = "id" },
        { "NAME", ELVIS_COL_STR, .key = "name" },
        { "CPUS", ELVIS_COL_FN, .fn = vm_cpus_cell },
        { "WEIGHT", ELVIS_COL_INT, .key = "policy.weight" },
        { "EXITLESS", ELVIS_COL_STR, .key = "policy.exitless" },
        { "DEVICE", ELVIS_COL_FN, .each = "devices", .fn = device_label },
        { "QUEUES", ELVIS_COL_INT, .key = "queues", .each = "devices" },
        { "SIDECORES", ELVIS_COL_FN, .each = "devices", .fn = device_sidecores },
        { NULL },
};

int elvis_cmd_vm_list(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *j;
        int r;

        if ((r = elvis_ctl_show(x, argc, "/v1/vms", &j)) || !j)
                return r;
        elvis_table_render(vm_columns, json_object_get(j, "vms"), stdout);
        json_decref(j);
        return ELVIS_EXIT_OK;
}

/* GET /v1/vms/{id} adds the live libvirt view: a pin that drifted shows here. */
static void print_libvirt(const json_t *lv)
{
        const char *state = elvis_json_str(lv, "state");
        json_t *pin;
        size_t i;

        if (!json_is_object(lv))
                return;
        if (!strcmp(state, "absent")) {
                printf("  libvirt:  domain not defined\n");
                return;
        }
        printf("  libvirt:  %s, vCPU pins", state);
        json_array_foreach(json_object_get(lv, "vcpu_pins"), i, pin)
                printf(" %s", json_string_value(pin) ? json_string_value(pin) : "-");
        if (!json_array_size(json_object_get(lv, "vcpu_pins")))
                printf(" -");
        if (json_is_string(json_object_get(lv, "emulator_pin")))
                printf(", emulator %s", elvis_json_str(lv, "emulator_pin"));
        putchar('\n');
}

static void print_vm(struct elvis_ctl *x, const json_t *vm)
{
        const json_t *pol = json_object_get(vm, "policy");
        json_t *d, *tap;
        size_t i;

        if (x->out == ELVIS_OUT_JSON) {
                elvis_json_print(vm);
                return;
        }
        printf("VM %lld '%s'%s\n", elvis_json_int(vm, "id"), elvis_json_str(vm, "name"),
               json_is_true(json_object_get(vm, "dry_run")) ? " (dry run: not created)" : "");
        printf("  domain:   %s\n", elvis_json_str(vm, "domain"));
        if (elvis_json_int(vm, "vcpus") && elvis_json_str(vm, "pinned_cpus")[0])
                printf("  vCPUs:    %lld, pinned by the orchestrator to CPUs %s (NUMA node %s)\n",
                       elvis_json_int(vm, "vcpus"), elvis_json_str(vm, "pinned_cpus"),
                       ELVIS_INT_TEXT(json_object_get(vm, "numa_node")));
        else if (elvis_json_int(vm, "vcpus"))
                printf("  vCPUs:    %lld on CPUs %s (NUMA node %s)\n", elvis_json_int(vm, "vcpus"), vm_cpus(vm),
                       ELVIS_INT_TEXT(json_object_get(vm, "numa_node")));
        else
                printf("  vCPUs:    no dedicated cores\n");
        printf("  policy:   weight %lld, exitless %s\n", elvis_json_int(pol, "weight"),
               elvis_json_str(pol, "exitless"));
        if (json_is_string(json_object_get(vm, "migration")))
                printf("  migration: %s\n", strcmp(elvis_json_str(vm, "migration"), "incoming") == 0 ?
                       "incoming (adopted here; its guest has not run here yet)" :
                       "outgoing (paused here for the switch-over; served until it stops here)");
        print_libvirt(json_object_get(vm, "libvirt"));
        json_array_foreach(json_object_get(vm, "devices"), i, d) {
                char scs[256];
                tap = json_object_get(d, "tap");
                device_sidecores(d, scs, sizeof(scs));
                if (is_blk(d) && !strcmp(elvis_json_str(d, "backend"), "file"))
                        printf("  device %s: blk file %s%s, %lld virtqueue(s)\n", elvis_json_str(d, "id"),
                               elvis_json_str(d, "path"), json_is_true(json_object_get(d, "readonly")) ?
                               " (read-only)" : "", elvis_json_int(d, "queues"));
                else if (is_blk(d))
                        printf("  device %s: blk %s, %lld bytes%s, %lld virtqueue(s)\n", elvis_json_str(d, "id"),
                               elvis_json_str(d, "backend"), elvis_json_int(d, "size"),
                               json_is_true(json_object_get(d, "readonly")) ? " (read-only)" : "",
                               elvis_json_int(d, "queues"));
                else
                        printf("  device %s: %s%s%s, %lld queue pair(s)\n", elvis_json_str(d, "id"),
                               elvis_json_str(d, "backend"), json_is_string(tap) ? " " : "",
                               json_is_string(tap) ? json_string_value(tap) : "", elvis_json_int(d, "queues"));
                printf("    socket:    %s\n    sidecores: %s\n", elvis_json_str(d, "socket"), scs);
        }
}

int elvis_cmd_vm_add(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *body = json_object(), *devs = json_array(), *dev, *vm;
        const struct elvis_arg_key *k;
        const char *name = NULL, *val;
        char err[512];
        bool dry = false;
        int r = ELVIS_EXIT_OK;

        if (!body || !devs) {
                r = elvis_ctl_usage_error(x, "out of memory");
                goto out;
        }
        for (int i = 0; i < argc && r == ELVIS_EXIT_OK; i++) {
                const char *a = argv[i];
                size_t n = strcspn(a, "=");
                if (!strcmp(a, "--dry-run")) {
                        dry = true;
                } else if (a[0] != '-') {
                        if (name)
                                r = elvis_ctl_usage_error(x, "vm add takes one NAME; '%s' is a second one", a);
                        name = a;
                } else if (elvis_arg_option(argc, argv, &i, "--device", &val) == 1) {
                        if (elvis_arg_parse_device(val, &dev, err, sizeof(err)) < 0)
                                r = elvis_ctl_usage_error(x, "%s", err);
                        else
                                json_array_append_new(devs, dev);
                } else if (n > 2 && a[1] == '-' && (k = elvis_arg_find(elvis_arg_vm_add_keys, a + 2, n - 2))) {
                        char opt[32];
                        snprintf(opt, sizeof(opt), "--%s", k->name);
                        if (elvis_arg_option(argc, argv, &i, opt, &val) < 0)
                                r = elvis_ctl_usage_error(x, "%s needs a value", opt);
                        else if (elvis_arg_parse_value(k, val, body, err, sizeof(err)) < 0)
                                r = elvis_ctl_usage_error(x, "%s", err);
                } else if (!strcmp(a, "--device")) {
                        r = elvis_ctl_usage_error(x, "--device needs a SPEC");
                } else {
                        r = elvis_ctl_usage_error(x, "vm add: unknown option '%s'", a);
                }
        }
        if (r)
                goto out;
        if (!name) {
                r = elvis_ctl_usage_error(x, "vm add needs a NAME");
                goto out;
        }
        json_object_set_new(body, "name", json_string(name));
        if (json_array_size(devs))
                json_object_set(body, "devices", devs);
        r = elvis_ctl_call(x, "POST", dry ? "/v1/vms?dry_run=true" : "/v1/vms", body, &vm);
        if (r == ELVIS_EXIT_OK) {
                print_vm(x, vm);
                json_decref(vm);
        }
out:
        json_decref(body);
        json_decref(devs);
        return r;
}

/* The path of the one VM that vm show, xml and remove name. */
static int vm_arg_path(struct elvis_ctl *x, int argc, char **argv, char *path, size_t size)
{
        if (argc != 1)
                return elvis_ctl_usage_error(x, "vm %s needs one ID or NAME", x->cmd->sub);
        vm_path(argv[0], path, size);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_vm_show(struct elvis_ctl *x, int argc, char **argv)
{
        char path[512];
        json_t *vm;
        int r;

        if ((r = vm_arg_path(x, argc, argv, path, sizeof(path))) || (r = elvis_ctl_get(x, path, &vm)))
                return r;
        print_vm(x, vm);
        json_decref(vm);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_vm_set(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *body, *vm;
        char path[512], err[512];
        int r = ELVIS_EXIT_OK;

        if (argc < 2 || strchr(argv[0], '='))
                return elvis_ctl_usage_error(x, "vm set needs an ID or NAME, then key=value pairs");
        body = json_object();
        for (int i = 1; i < argc && r == ELVIS_EXIT_OK; i++)
                if (elvis_arg_parse_pair(elvis_arg_vm_set_keys, "vm set", argv[i], body, err, sizeof(err)) < 0)
                        r = elvis_ctl_usage_error(x, "%s", err);
        if (r == ELVIS_EXIT_OK) {
                vm_path(argv[0], path, sizeof(path));
                r = elvis_ctl_call(x, "PATCH", path, body, &vm);
                if (r == ELVIS_EXIT_OK) {
                        print_vm(x, vm);
                        json_decref(vm);
                }
        }
        json_decref(body);
        return r;
}

/* The guest's name for the n-th ELVIS disk: vdb, vdc, ... (vda is left to the domain's
 * boot disk), then vdaa after vdz as libvirt counts. */
static void disk_name(unsigned n, char *buf, size_t size)
{
        n += 1;
        if (n < 26)
                snprintf(buf, size, "vd%c", 'a' + n);
        else
                snprintf(buf, size, "vd%c%c", 'a' + (int)(n / 26 - 1) % 26, 'a' + (int)(n % 26));
}

/* The libvirt domain XML pieces that connect a domain to ELVIS's data plane. */
int elvis_cmd_vm_xml(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *vm, *h, *d, *pol;
        char path[512];
        const char *kind;
        unsigned disk;
        bool vhost;
        size_t i;
        int r;

        if ((r = vm_arg_path(x, argc, argv, path, sizeof(path))) || (r = elvis_ctl_get(x, path, &vm)))
                return r;
        if ((r = elvis_ctl_get(x, "/v1/health", &h))) {
                json_decref(vm);
                return r;
        }
        kind = elvis_json_str(json_object_get(h, "dataplane"), "kind");
        pol = json_object_get(vm, "policy");
        printf("<!-- ELVIS: VM %lld '%s', %s data plane; paste into the domain XML -->\n", elvis_json_int(vm, "id"),
               elvis_json_str(vm, "name"), kind);
        if (elvis_json_int(vm, "vcpus") && elvis_json_str(vm, "cpus")[0])
                printf("<!-- elvis-manager pins its %lld vCPU(s) to CPUs %s and its emulator threads to the "
                       "reserved CPUs -->\n", elvis_json_int(vm, "vcpus"), elvis_json_str(vm, "cpus"));
        vhost = !strcmp(kind, "user") || !strcmp(kind, "user-process");
        printf("<metadata>\n  <elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1' weight='%lld' exitless='%s'",
               elvis_json_int(pol, "weight"), elvis_json_str(pol, "exitless"));
        /* a vhostuser <disk> names no image: libvirt adoption reads it from here (inside the
         * policy: libvirt keeps one <metadata> element per namespace) */
        disk = 0;
        json_array_foreach(json_object_get(vm, "devices"), i, d)
                if (vhost && is_blk(d)) {
                        char dev[8];
                        if (!disk)
                                printf(">\n");
                        disk_name(disk++, dev, sizeof(dev));
                        if (!strcmp(elvis_json_str(d, "backend"), "file"))
                                printf("    <elvis:disk target='%s' id='%s' backend='file' path='%s' readonly='%s' "
                                       "queues='%lld'/>\n", dev, elvis_json_str(d, "id"), elvis_json_str(d, "path"),
                                       json_is_true(json_object_get(d, "readonly")) ? "yes" : "no",
                                       elvis_json_int(d, "queues"));
                        else
                                printf("    <elvis:disk target='%s' id='%s' backend='null' size='%lld' readonly='%s' "
                                       "queues='%lld'/>\n", dev, elvis_json_str(d, "id"), elvis_json_int(d, "size"),
                                       json_is_true(json_object_get(d, "readonly")) ? "yes" : "no",
                                       elvis_json_int(d, "queues"));
                }
        printf(disk ? "  </elvis:policy>\n</metadata>\n" : "/>\n</metadata>\n");
        if (vhost)
                printf("<memoryBacking>\n  <source type='memfd'/>\n  <access mode='shared'/>\n</memoryBacking>\n");
        printf("<devices>\n");
        disk = 0;
        json_array_foreach(json_object_get(vm, "devices"), i, d) {
                if (is_blk(d)) {
                        char dev[8];
                        if (!vhost) {
                                printf("  <!-- device %s (blk): the %s data plane cannot serve it -->\n",
                                       elvis_json_str(d, "id"), kind);
                                continue;
                        }
                        disk_name(disk++, dev, sizeof(dev));
                        /* vhost-user-blk: the data plane is the whole disk (image, format,
                         * read-only flag); QEMU dials again every second while it restarts */
                        printf("  <disk type='vhostuser' device='disk'>\n    <driver name='qemu' type='raw'");
                        if (elvis_json_int(d, "queues") > 1)
                                printf(" queues='%lld'", elvis_json_int(d, "queues"));
                        printf("/>\n    <source type='unix' path='%s'>\n"
                               "      <reconnect enabled='yes' timeout='1'/>\n    </source>\n"
                               "    <target dev='%s' bus='virtio'/>\n  </disk>\n", elvis_json_str(d, "socket"), dev);
                        continue;
                }
                if (vhost) {
                        /* QEMU dials again every second while the data plane restarts */
                        printf("  <interface type='vhostuser'>\n    <source type='unix' path='%s' mode='client'>\n"
                               "      <reconnect enabled='yes' timeout='1'/>\n    </source>\n"
                               "    <model type='virtio'/>\n", elvis_json_str(d, "socket"));
                        if (elvis_json_int(d, "queues") > 1)
                                printf("    <driver queues='%lld'/>\n", elvis_json_int(d, "queues"));
                } else {
                        /* libvirt creates the tap under the name elvis-manager looks for and
                         * hands QEMU /dev/elvis-net as its vhost device */
                        printf("  <interface type='ethernet'>\n    <target dev='%s'/>\n"
                               "    <model type='virtio'/>\n    <driver name='vhost' queues='%lld'/>\n"
                               "    <backend vhost='/dev/elvis-net'/>\n", elvis_json_str(d, "tap"),
                               elvis_json_int(d, "queues"));
                }
                printf("  </interface>\n");
        }
        printf("</devices>\n");
        json_decref(vm);
        json_decref(h);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_vm_remove(struct elvis_ctl *x, int argc, char **argv)
{
        char path[512];
        int r;

        if ((r = vm_arg_path(x, argc, argv, path, sizeof(path))))
                return r;
        return elvis_ctl_remove(x, path, "VM", argv[0]);
}
