/* elvisctl: command-line client of elvis-manager. Every command comes from one table,
 * from which the usage text and the shell completion are generated. */
#include "args.h"
#include "client.h"
#include "table.h"
#include "top.h"

#include <elvis/version.h>

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum {
        EXIT_OK = 0,
        EXIT_API = 1,           /* the daemon refused, or cannot be reached */
        EXIT_USAGE = 2,
};

enum output { OUT_TABLE, OUT_JSON };

struct command;

struct ctx {
        struct elvis_client c;
        enum output out;
        const struct command *cmd;      /* the one running, for its usage line */
};

struct command {
        const char *name;
        const char *sub;
        int (*fn)(struct ctx *x, int argc, char **argv);
        const char *args;
        const char *help;               /* NULL: hidden */
};

/* Global options: parsing, usage and completion all read this. */
struct global_option {
        const char *shrt;
        const char *name;
        const char *arg;
        const char *help;
};

static const struct global_option global_options[] = {
        { "-o", "--output", "table|json", "table (default), or json: the API's documents" },
        { NULL, "--socket", "PATH", "default $ELVIS_SOCKET, else /run/elvis/elvis.sock" },
        { NULL, "--url", "URL", "the TCP listener instead, e.g. https://host:8443" },
        { NULL, "--token-file", "FILE", "bearer token for --url (default $ELVIS_TOKEN)" },
        { NULL, "--cacert", "FILE", "CA that signed the daemon's TLS certificate" },
        { "-h", "--help", NULL, "show this help (one command's: COMMAND --help)" },
        { NULL, "--version", NULL, "print the version" },
        { NULL, NULL, NULL, NULL },
};

static const struct command commands[];

static void command_usage(const struct command *c, FILE *f);

static int usage_error(const struct ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const struct ctx *x, const char *fmt, ...)
{
        va_list ap;

        fputs("elvisctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        if (x && x->cmd)
                command_usage(x->cmd, stderr);
        else
                fputs("Try 'elvisctl --help'.\n", stderr);
        return EXIT_USAGE;
}

static bool has_control(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return true;
        return false;
}

static char *scrubbed(const char *s)
{
        char *copy = strdup(s);

        for (char *p = copy; p && *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                        *p = '?';
        return copy;
}

/* Replaces control characters in every string and key of doc with '?'. Text output prints
 * names that libvirt or a hostile client chose; an escape sequence in one must not drive
 * the terminal. (JSON output needs nothing: the encoder escapes them.) */
static void scrub(json_t *doc)
{
        const char *k;
        json_t *v;
        void *tmp;
        size_t i;

        if (json_is_string(doc) && has_control(json_string_value(doc))) {
                char *clean = scrubbed(json_string_value(doc));
                if (clean)
                        json_string_set(doc, clean);
                free(clean);
        } else if (json_is_array(doc)) {
                json_array_foreach(doc, i, v)
                        scrub(v);
        } else if (json_is_object(doc)) {
                json_object_foreach_safe(doc, tmp, k, v) {
                        scrub(v);
                        if (has_control(k)) {
                                char *clean = scrubbed(k);
                                if (clean)
                                        json_object_set(doc, clean, v); /* clean keys are never visited twice */
                                json_object_del(doc, k);
                                free(clean);
                        }
                }
        }
}

/* One request; a failure is printed as one line and becomes exit status 1. */
static int call(struct ctx *x, const char *method, const char *path, const json_t *body, json_t **ret)
{
        int r = elvis_client_call(&x->c, method, path, body, ret);

        if (r < 0) {
                fprintf(stderr, "elvisctl: %s\n", x->c.error);
                return EXIT_API;
        }
        if (ret && x->out == OUT_TABLE)
                scrub(*ret);
        return EXIT_OK;
}

static int get(struct ctx *x, const char *path, json_t **ret)
{
        return call(x, "GET", path, NULL, ret);
}

static void print_json(const json_t *j)
{
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(12));

        if (s)
                puts(s);
        free(s);
}

static const char *str(const json_t *o, const char *k)
{
        const char *s = json_string_value(json_object_get(o, k));

        return s ? s : "-";
}

static long long num(const json_t *o, const char *k)
{
        return (long long)json_integer_value(json_object_get(o, k));
}

static double real(const json_t *o, const char *k)
{
        return json_number_value(json_object_get(o, k));
}

/* The integer v, or "-" for null (an unplaced queue, a CPU without NUMA information). */
static const char *opt_int(const json_t *v, char *buf, size_t size)
{
        if (!json_is_integer(v))
                return "-";
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return buf;
}

#define OPT_INT(v) opt_int((v), (char[24]){ 0 }, 24)

/* ---- status ---- */

static void print_libvirt_health(const json_t *lv)
{
        const char *uri = str(lv, "uri"), *err = json_string_value(json_object_get(lv, "error"));

        if (!json_is_object(lv))
                return;
        if (!strcmp(uri, "none"))
                printf("libvirt:    not used (libvirt-uri none)\n");
        else
                printf("libvirt:    %s, %s%s%s\n", uri, json_is_true(json_object_get(lv, "connected")) ? "connected" :
                       "not connected", err ? ": " : "", err ? err : "");
}

static int cmd_status(struct ctx *x, int argc, char **argv)
{
        json_t *h, *dp;
        int r;

        if (argc)
                return usage_error(x, "status takes no arguments");
        if ((r = get(x, "/v1/health", &h)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(h);
        } else {
                dp = json_object_get(h, "dataplane");
                printf("status:     %s\nversion:    %s\nuptime:     %lld s\ndata plane: %s (%s): %s\n"
                       "VMs:        %lld\nsidecores:  %lld\ntopology:   %s\n",
                       str(h, "status"), str(h, "version"), num(h, "uptime_s"), str(dp, "kind"), str(dp, "state"),
                       str(dp, "detail"), num(h, "vms"), num(h, "sidecores"), str(h, "topology"));
                print_libvirt_health(json_object_get(h, "libvirt"));
        }
        json_decref(h);
        return EXIT_OK;
}

/* ---- topology ---- */

/* "vcpu of web1 (VM 1)", "sidecore 3", or the role as it is */
static void cpu_role(const json_t *cpu, char *buf, size_t size)
{
        const char *role = str(cpu, "role");

        if (!strcmp(role, "vcpu"))
                snprintf(buf, size, "vcpu of %s (VM %lld)", str(cpu, "vm_name"), num(cpu, "vm"));
        else if (!strcmp(role, "sidecore"))
                snprintf(buf, size, "sidecore %lld", num(cpu, "sidecore"));
        else
                snprintf(buf, size, "%s", role);
}

/* What the host offers for exit-less operation; sidecores on CPUs the scheduler still
 * uses for other tasks are named, since their polling competes with them. */
static void print_exitless(const json_t *ex)
{
        const json_t *hp = json_object_get(ex, "halt_poll_ns"), *sc;
        const char *src = json_string_value(json_object_get(ex, "posted_interrupts_source"));
        char shared[256] = "";
        size_t i, n = 0;

        if (!json_is_object(ex))
                return;
        printf("exit-less support: posted interrupts %s%s%s%s, halt_poll_ns %s, isolated CPUs %s, nohz_full CPUs %s\n",
               str(ex, "posted_interrupts"), src ? " (" : "", src ? src : "", src ? ")" : "",
               json_is_integer(hp) ? OPT_INT(hp) : str(ex, "halt_poll_ns"),
               str(ex, "isolated_cpus")[0] ? str(ex, "isolated_cpus") : "none",
               str(ex, "nohz_full_cpus")[0] ? str(ex, "nohz_full_cpus") : "none");
        json_array_foreach(json_object_get(ex, "sidecores"), i, sc) {
                int k;
                if (!json_is_false(json_object_get(sc, "isolated")))
                        continue;
                k = snprintf(shared + n, sizeof(shared) - n, "%s%lld", n ? "," : "", num(sc, "cpu"));
                if (k < 0 || (size_t)k >= sizeof(shared) - n)
                        break;
                n += (size_t)k;
        }
        if (n)
                printf("sidecores on CPUs not isolated from the scheduler: %s\n", shared);
}

/* "8086:1572": a NIC's PCI vendor and device */
static void nic_id(const json_t *nic, char *buf, size_t size)
{
        snprintf(buf, size, "%s:%s", str(nic, "vendor"), str(nic, "device"));
}

static const struct elvis_column cpu_columns[] = {
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "CORE", ELVIS_COL_INT, .key = "core" },
        { "NODE", ELVIS_COL_INT, .key = "numa_node" },
        { "SIBLINGS", ELVIS_COL_STR, .key = "siblings" },
        { "ROLE", ELVIS_COL_FN, .fn = cpu_role },
        { NULL },
};

static const struct elvis_column nic_columns[] = {
        { "NIC", ELVIS_COL_STR, .key = "name" },
        { "PCI", ELVIS_COL_STR, .key = "pci" },
        { "NODE", ELVIS_COL_INT, .key = "numa_node" },
        { "ID", ELVIS_COL_FN, .fn = nic_id },
        { NULL },
};

static int cmd_topology(struct ctx *x, int argc, char **argv)
{
        json_t *t;
        int r;

        if (argc)
                return usage_error(x, "topology takes no arguments");
        if ((r = get(x, "/v1/topology", &t)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(t);
                json_decref(t);
                return EXIT_OK;
        }
        printf("source %s, %lld package(s), %zu NUMA node(s); ELVIS may use CPUs %s, reserved %s\n",
               str(t, "source"), num(t, "packages"), json_array_size(json_object_get(t, "numa_nodes")),
               str(t, "allowed_cpus"), str(t, "reserved_cpus"));
        print_exitless(json_object_get(t, "exitless"));
        putchar('\n');
        elvis_table_render(cpu_columns, json_object_get(t, "cpus"), stdout);
        if (json_array_size(json_object_get(t, "nics"))) {
                putchar('\n');
                elvis_table_render(nic_columns, json_object_get(t, "nics"), stdout);
        }
        json_decref(t);
        return EXIT_OK;
}

/* ---- VMs ---- */

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
                int k = snprintf(buf + n, size - n, "%s%s", q ? "," : "", OPT_INT(s));
                if (k < 0 || (size_t)k >= size - n)
                        break;
                n += (size_t)k;
        }
}

static const char *vm_cpus(const json_t *vm)
{
        const char *cpus = str(vm, "cpus");

        return cpus[0] ? cpus : "-";
}

/* "net0:loopback" */
static void device_label(const json_t *dev, char *buf, size_t size)
{
        snprintf(buf, size, "%s:%s", str(dev, "id"), str(dev, "backend"));
}

/* One line per device; the VM's own columns only on its first. */
static const struct elvis_column vm_columns[] = {
        { "ID", ELVIS_COL_INT, .key = "id" },
        { "NAME", ELVIS_COL_STR, .key = "name" },
        { "CPUS", ELVIS_COL_CPUS, .key = "cpus" },
        { "WEIGHT", ELVIS_COL_INT, .key = "policy.weight" },
        { "EXITLESS", ELVIS_COL_STR, .key = "policy.exitless" },
        { "DEVICE", ELVIS_COL_FN, .each = "devices", .fn = device_label },
        { "QUEUES", ELVIS_COL_INT, .key = "queues", .each = "devices" },
        { "SIDECORES", ELVIS_COL_FN, .each = "devices", .fn = device_sidecores },
        { NULL },
};

static int cmd_vm_list(struct ctx *x, int argc, char **argv)
{
        json_t *j;
        int r;

        if (argc)
                return usage_error(x, "vm list takes no arguments");
        if ((r = get(x, "/v1/vms", &j)))
                return r;
        if (x->out == OUT_JSON)
                print_json(j);
        else
                elvis_table_render(vm_columns, json_object_get(j, "vms"), stdout);
        json_decref(j);
        return EXIT_OK;
}

/* GET /v1/vms/{id} adds the live libvirt view: a pin that drifted shows here. */
static void print_libvirt(const json_t *lv)
{
        const char *state = str(lv, "state");
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
                printf(", emulator %s", str(lv, "emulator_pin"));
        putchar('\n');
}

static void print_vm(struct ctx *x, const json_t *vm)
{
        const json_t *pol = json_object_get(vm, "policy");
        json_t *d, *tap;
        size_t i;

        if (x->out == OUT_JSON) {
                print_json(vm);
                return;
        }
        printf("VM %lld '%s'%s\n", num(vm, "id"), str(vm, "name"),
               json_is_true(json_object_get(vm, "dry_run")) ? " (dry run: not created)" : "");
        printf("  domain:   %s\n", str(vm, "domain"));
        if (num(vm, "vcpus"))
                printf("  vCPUs:    %lld on CPUs %s (NUMA node %s)\n", num(vm, "vcpus"), vm_cpus(vm),
                       OPT_INT(json_object_get(vm, "numa_node")));
        else
                printf("  vCPUs:    no dedicated cores\n");
        printf("  policy:   weight %lld, exitless %s\n", num(pol, "weight"), str(pol, "exitless"));
        print_libvirt(json_object_get(vm, "libvirt"));
        json_array_foreach(json_object_get(vm, "devices"), i, d) {
                char scs[256];
                tap = json_object_get(d, "tap");
                device_sidecores(d, scs, sizeof(scs));
                printf("  device %s: %s%s%s, %lld queue pair(s)\n", str(d, "id"), str(d, "backend"),
                       json_is_string(tap) ? " " : "", json_is_string(tap) ? json_string_value(tap) : "",
                       num(d, "queues"));
                printf("    socket:    %s\n    sidecores: %s\n", str(d, "socket"), scs);
        }
}

static int cmd_vm_add(struct ctx *x, int argc, char **argv)
{
        json_t *body = json_object(), *devs = json_array(), *dev, *vm;
        const struct elvis_arg_key *k;
        const char *name = NULL, *val;
        char err[512];
        bool dry = false;
        int r = EXIT_OK;

        if (!body || !devs) {
                r = usage_error(x, "out of memory");
                goto out;
        }
        for (int i = 0; i < argc && r == EXIT_OK; i++) {
                const char *a = argv[i];
                size_t n = strcspn(a, "=");
                if (!strcmp(a, "--dry-run")) {
                        dry = true;
                } else if (a[0] != '-') {
                        if (name)
                                r = usage_error(x, "vm add takes one NAME; '%s' is a second one", a);
                        name = a;
                } else if (elvis_arg_option(argc, argv, &i, "--device", &val) == 1) {
                        if (elvis_arg_parse_device(val, &dev, err, sizeof(err)) < 0)
                                r = usage_error(x, "%s", err);
                        else
                                json_array_append_new(devs, dev);
                } else if (n > 2 && a[1] == '-' && (k = elvis_arg_find(elvis_arg_vm_add_keys, a + 2, n - 2))) {
                        char opt[32];
                        snprintf(opt, sizeof(opt), "--%s", k->name);
                        if (elvis_arg_option(argc, argv, &i, opt, &val) < 0)
                                r = usage_error(x, "%s needs a value", opt);
                        else if (elvis_arg_parse_value(k, val, body, err, sizeof(err)) < 0)
                                r = usage_error(x, "%s", err);
                } else if (!strcmp(a, "--device")) {
                        r = usage_error(x, "--device needs a SPEC");
                } else {
                        r = usage_error(x, "vm add: unknown option '%s'", a);
                }
        }
        if (r)
                goto out;
        if (!name) {
                r = usage_error(x, "vm add needs a NAME");
                goto out;
        }
        json_object_set_new(body, "name", json_string(name));
        if (json_array_size(devs))
                json_object_set(body, "devices", devs);
        r = call(x, "POST", dry ? "/v1/vms?dry_run=true" : "/v1/vms", body, &vm);
        if (r == EXIT_OK) {
                print_vm(x, vm);
                json_decref(vm);
        }
out:
        json_decref(body);
        json_decref(devs);
        return r;
}

static int cmd_vm_show(struct ctx *x, int argc, char **argv)
{
        char path[512];
        json_t *vm;
        int r;

        if (argc != 1)
                return usage_error(x, "vm show needs one ID or NAME");
        vm_path(argv[0], path, sizeof(path));
        if ((r = get(x, path, &vm)))
                return r;
        print_vm(x, vm);
        json_decref(vm);
        return EXIT_OK;
}

static int cmd_vm_set(struct ctx *x, int argc, char **argv)
{
        json_t *body, *vm;
        char path[512], err[512];
        int r = EXIT_OK;

        if (argc < 2 || strchr(argv[0], '='))
                return usage_error(x, "vm set needs an ID or NAME, then key=value pairs");
        body = json_object();
        for (int i = 1; i < argc && r == EXIT_OK; i++)
                if (elvis_arg_parse_pair(elvis_arg_vm_set_keys, "vm set", argv[i], body, err, sizeof(err)) < 0)
                        r = usage_error(x, "%s", err);
        if (r == EXIT_OK) {
                vm_path(argv[0], path, sizeof(path));
                r = call(x, "PATCH", path, body, &vm);
                if (r == EXIT_OK) {
                        print_vm(x, vm);
                        json_decref(vm);
                }
        }
        json_decref(body);
        return r;
}

/* The libvirt domain XML pieces that connect a domain to ELVIS's data plane. */
static int cmd_vm_xml(struct ctx *x, int argc, char **argv)
{
        json_t *vm, *h, *d, *pol;
        char path[512];
        const char *kind;
        size_t i;
        int r;

        if (argc != 1)
                return usage_error(x, "vm xml needs one ID or NAME");
        vm_path(argv[0], path, sizeof(path));
        if ((r = get(x, path, &vm)))
                return r;
        if ((r = get(x, "/v1/health", &h))) {
                json_decref(vm);
                return r;
        }
        kind = str(json_object_get(h, "dataplane"), "kind");
        pol = json_object_get(vm, "policy");
        printf("<!-- ELVIS: VM %lld '%s', %s data plane; paste into the domain XML -->\n", num(vm, "id"),
               str(vm, "name"), kind);
        if (num(vm, "vcpus"))
                printf("<!-- elvis-manager pins its %lld vCPU(s) to CPUs %s and its emulator threads to the "
                       "reserved CPUs -->\n", num(vm, "vcpus"), str(vm, "cpus"));
        printf("<metadata>\n  <elvis:policy xmlns:elvis='https://elvis.dev/xmlns/1' weight='%lld' exitless='%s'/>\n"
               "</metadata>\n", num(pol, "weight"), str(pol, "exitless"));
        if (!strcmp(kind, "user"))
                printf("<memoryBacking>\n  <source type='memfd'/>\n  <access mode='shared'/>\n</memoryBacking>\n");
        printf("<devices>\n");
        json_array_foreach(json_object_get(vm, "devices"), i, d) {
                if (!strcmp(kind, "user")) {
                        printf("  <interface type='vhostuser'>\n    <source type='unix' path='%s' mode='client'/>\n"
                               "    <model type='virtio'/>\n", str(d, "socket"));
                        if (num(d, "queues") > 1)
                                printf("    <driver queues='%lld'/>\n", num(d, "queues"));
                } else {
                        /* libvirt creates the tap under the name elvis-manager looks for and
                         * hands QEMU /dev/elvis-net as its vhost device */
                        printf("  <interface type='ethernet'>\n    <target dev='%s'/>\n"
                               "    <model type='virtio'/>\n    <driver name='vhost' queues='%lld'/>\n"
                               "    <backend vhost='/dev/elvis-net'/>\n", str(d, "tap"), num(d, "queues"));
                }
                printf("  </interface>\n");
        }
        printf("</devices>\n");
        json_decref(vm);
        json_decref(h);
        return EXIT_OK;
}

static int cmd_vm_remove(struct ctx *x, int argc, char **argv)
{
        char path[512];
        json_t *res;
        int r;

        if (argc != 1)
                return usage_error(x, "vm remove needs one ID or NAME");
        vm_path(argv[0], path, sizeof(path));
        if ((r = call(x, "DELETE", path, NULL, &res)))
                return r;
        if (x->out == OUT_JSON)
                print_json(res);
        else
                printf("VM %s removed\n", argv[0]);
        json_decref(res);
        return EXIT_OK;
}

/* ---- sidecores ---- */

/* "web1/net0/0 web1/net0/1": the queues a sidecore serves; "-" for none */
static void sidecore_queues(const json_t *sc, char *buf, size_t size)
{
        size_t k, n = 0;
        json_t *q;

        snprintf(buf, size, "-");
        json_array_foreach(json_object_get(sc, "queues"), k, q) {
                int w = snprintf(buf + n, size - n, "%s%s/%s/%lld", k ? " " : "", str(q, "vm_name"), str(q, "device"),
                                 num(q, "queue"));
                if (w < 0 || (size_t)w >= size - n) {
                        snprintf(buf + n, size - n, " ...");
                        break;
                }
                n += (size_t)w;
        }
}

static const struct elvis_column sidecore_columns[] = {
        { "ID", ELVIS_COL_INT, .key = "id" },
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "NODE", ELVIS_COL_INT, .key = "numa_node" },
        { "ORIGIN", ELVIS_COL_BOOL, .key = "automatic", .yes = "automatic", .no = "operator" },
        { "QUEUES", ELVIS_COL_FN, .fn = sidecore_queues },
        { NULL },
};

static int cmd_sidecore_list(struct ctx *x, int argc, char **argv)
{
        json_t *j;
        int r;

        if (argc)
                return usage_error(x, "sidecore list takes no arguments");
        if ((r = get(x, "/v1/sidecores", &j)))
                return r;
        if (x->out == OUT_JSON)
                print_json(j);
        else
                elvis_table_render(sidecore_columns, json_object_get(j, "sidecores"), stdout);
        json_decref(j);
        return EXIT_OK;
}

static void print_sidecore(struct ctx *x, const json_t *sc)
{
        char qs[4096];

        if (x->out == OUT_JSON) {
                print_json(sc);
                return;
        }
        sidecore_queues(sc, qs, sizeof(qs));
        printf("sidecore %lld on CPU %lld\n  NUMA node: %s\n  origin:    %s\n  queues:    %s\n", num(sc, "id"),
               num(sc, "cpu"), OPT_INT(json_object_get(sc, "numa_node")),
               json_is_true(json_object_get(sc, "automatic")) ? "automatic" : "operator", qs);
}

static int cmd_sidecore_add(struct ctx *x, int argc, char **argv)
{
        json_t *body = json_object(), *sc;
        unsigned long cpu;
        const char *val;
        int r = EXIT_OK;

        for (int i = 0; i < argc && r == EXIT_OK; i++) {
                int m = elvis_arg_option(argc, argv, &i, "--cpu", &val);
                if (m < 0)
                        r = usage_error(x, "--cpu needs a CPU number");
                else if (m == 0)
                        r = usage_error(x, "sidecore add: unexpected argument '%s'", argv[i]);
                else if (elvis_arg_uint(val, 1u << 20, &cpu) < 0)
                        r = usage_error(x, "--cpu must be a CPU number, got '%s'", val);
                else
                        json_object_set_new(body, "cpu", json_integer((json_int_t)cpu));
        }
        if (r == EXIT_OK)
                r = call(x, "POST", "/v1/sidecores", body, &sc);
        json_decref(body);
        if (r)
                return r;
        print_sidecore(x, sc);
        json_decref(sc);
        return EXIT_OK;
}

static int sidecore_path(struct ctx *x, int argc, char **argv, char *path, size_t size)
{
        unsigned long id;

        if (argc != 1 || elvis_arg_uint(argv[0], 0xffffffffu, &id) < 0 || id == 0)
                return usage_error(x, "sidecore %s needs one sidecore ID (a positive number)", x->cmd->sub);
        snprintf(path, size, "/v1/sidecores/%lu", id);
        return EXIT_OK;
}

static int cmd_sidecore_show(struct ctx *x, int argc, char **argv)
{
        char path[64];
        json_t *sc;
        int r;

        if ((r = sidecore_path(x, argc, argv, path, sizeof(path))) || (r = get(x, path, &sc)))
                return r;
        print_sidecore(x, sc);
        json_decref(sc);
        return EXIT_OK;
}

static int cmd_sidecore_remove(struct ctx *x, int argc, char **argv)
{
        char path[64];
        json_t *res;
        int r;

        if ((r = sidecore_path(x, argc, argv, path, sizeof(path))) || (r = call(x, "DELETE", path, NULL, &res)))
                return r;
        if (x->out == OUT_JSON)
                print_json(res);
        else
                printf("sidecore %s removed\n", argv[0]);
        json_decref(res);
        return EXIT_OK;
}

/* ---- policy ---- */

static void print_policy(struct ctx *x, const json_t *p)
{
        const char *k;
        json_t *v;

        if (x->out == OUT_JSON) {
                print_json(p);
                return;
        }
        json_object_foreach((json_t *)p, k, v) {
                if (json_is_string(v))
                        printf("%-22s %s\n", k, json_string_value(v));
                else if (json_is_real(v))
                        printf("%-22s %g\n", k, json_real_value(v));
                else if (json_is_integer(v))
                        printf("%-22s %lld\n", k, (long long)json_integer_value(v));
                else if (json_is_boolean(v))
                        printf("%-22s %s\n", k, json_is_true(v) ? "true" : "false");
                else
                        printf("%-22s -\n", k);
        }
}

static int cmd_policy_show(struct ctx *x, int argc, char **argv)
{
        json_t *p;
        int r;

        if (argc)
                return usage_error(x, "policy show takes no arguments");
        if ((r = get(x, "/v1/policy", &p)))
                return r;
        print_policy(x, p);
        json_decref(p);
        return EXIT_OK;
}

static int cmd_policy_set(struct ctx *x, int argc, char **argv)
{
        json_t *body, *p;
        char err[512];
        int r = EXIT_OK;

        if (!argc)
                return usage_error(x, "policy set needs key=value pairs");
        body = json_object();
        for (int i = 0; i < argc && r == EXIT_OK; i++)
                if (elvis_arg_parse_pair(elvis_arg_policy_keys, "policy", argv[i], body, err, sizeof(err)) < 0)
                        r = usage_error(x, "%s", err);
        if (r == EXIT_OK && (r = call(x, "PUT", "/v1/policy", body, &p)) == EXIT_OK) {
                print_policy(x, p);
                json_decref(p);
        }
        json_decref(body);
        return r;
}

/* ---- stats and top ---- */

static const struct elvis_column stats_sidecore_columns[] = {
        { "SIDECORE", ELVIS_COL_INT, .key = "id" },
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "QUEUES", ELVIS_COL_INT, .key = "queues" },
        { "LOAD", ELVIS_COL_PERCENT, .key = "load", .decimals = 1 },
        { "PACKETS", ELVIS_COL_INT, .key = "packets" },
        { "POLLS", ELVIS_COL_INT, .key = "polls" },
        { "EMPTY", ELVIS_COL_INT, .key = "empty_polls" },
        { "WAKEUPS", ELVIS_COL_INT, .key = "wakeups" },
        { NULL },
};

static const struct elvis_column stats_queue_columns[] = {
        { "VM", ELVIS_COL_STR, .key = "vm_name" },
        { "DEVICE", ELVIS_COL_STR, .key = "device" },
        { "Q", ELVIS_COL_INT, .key = "queue" },
        { "SIDECORE", ELVIS_COL_INT, .key = "sidecore" },
        { "STATE", ELVIS_COL_STR, .key = "state" },
        { "POLLING", ELVIS_COL_BOOL, .key = "polling" },
        { "TX PKTS", ELVIS_COL_INT, .key = "tx_packets" },
        { "RX PKTS", ELVIS_COL_INT, .key = "rx_packets" },
        { "KICKS", ELVIS_COL_INT, .key = "kicks" },
        { "IRQS", ELVIS_COL_INT, .key = "interrupts" },
        { "ERRORS", ELVIS_COL_INT, .key = "errors" },
        { NULL },
};

static int cmd_stats(struct ctx *x, int argc, char **argv)
{
        json_t *s;
        int r;

        if (argc)
                return usage_error(x, "stats takes no arguments");
        if ((r = get(x, "/v1/stats", &s)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(s);
                json_decref(s);
                return EXIT_OK;
        }
        if (!json_is_true(json_object_get(s, "available")))
                printf("the %s data plane is not running: no counters\n\n", str(s, "dataplane"));
        elvis_table_render(stats_sidecore_columns, json_object_get(s, "sidecores"), stdout);
        putchar('\n');
        elvis_table_render(stats_queue_columns, json_object_get(s, "queues"), stdout);
        json_decref(s);
        return EXIT_OK;
}

static const struct elvis_column top_sidecore_columns[] = {
        { "SIDECORE", ELVIS_COL_INT, .key = "id" },
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "QUEUES", ELVIS_COL_INT, .key = "queues" },
        { "LOAD", ELVIS_COL_PERCENT, .key = "load", .decimals = 1 },
        { "PKTS/S", ELVIS_COL_REAL, .key = "pps" },
        { "STATE", ELVIS_COL_BOOL, .key = "sleeping", .yes = "sleeping", .no = "polling" },
        { NULL },
};

static const struct elvis_column top_queue_columns[] = {
        { "VM", ELVIS_COL_STR, .key = "vm_name" },
        { "DEVICE", ELVIS_COL_STR, .key = "device" },
        { "Q", ELVIS_COL_INT, .key = "queue" },
        { "SIDECORE", ELVIS_COL_INT, .key = "sidecore" },
        { "PKTS/S", ELVIS_COL_REAL, .key = "pps" },
        { "KICKS/S", ELVIS_COL_REAL, .key = "kicks_ps" },
        { "IRQS/S", ELVIS_COL_REAL, .key = "interrupts_ps" },
        { "POLLING", ELVIS_COL_BOOL, .key = "polling" },
        { "STATE", ELVIS_COL_STR, .key = "state" },
        { NULL },
};

static void render_top(const json_t *rates, bool keys, FILE *f)
{
        fprintf(f, "elvisctl top: rates over the last %.2f s%s\n", real(rates, "interval_s"),
                keys ? " (q quits)" : "");
        if (!json_is_true(json_object_get(rates, "available")))
                fprintf(f, "the %s data plane is not running: no counters\n", str(rates, "dataplane"));
        fputc('\n', f);
        elvis_table_render(top_sidecore_columns, json_object_get(rates, "sidecores"), f);
        fputc('\n', f);
        elvis_table_render(top_queue_columns, json_object_get(rates, "queues"), f);
}

/* The terminal is in non-canonical mode only while top reads keys. Every way out restores
 * it: the normal return, exit() (atexit), and the signals that end or stop the process. */
static struct termios tty_saved, tty_keys;
static volatile sig_atomic_t tty_raw;

static void tty_restore(void)
{
        if (tty_raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &tty_saved);
        tty_raw = 0;
}

static void on_fatal_signal(int sig)
{
        tty_restore();
        signal(sig, SIG_DFL);
        raise(sig);
}

static void on_continue(int sig);

/* Ctrl-Z: hand the shell a sane terminal, stop, and take it back on SIGCONT. */
static void on_stop(int sig)
{
        int saved = errno;
        bool was_raw = tty_raw;

        tty_restore();
        tty_raw = was_raw ? -1 : 0;     /* -1: to be restored on SIGCONT */
        signal(SIGTSTP, SIG_DFL);
        raise(SIGTSTP);                 /* blocked until we return, then stops us */
        errno = saved;
}

static void on_continue(int sig)
{
        int saved = errno;
        struct sigaction sa = { .sa_handler = on_stop };

        if (tty_raw == -1 && tcsetattr(STDIN_FILENO, TCSANOW, &tty_keys) == 0)
                tty_raw = 1;
        sigaction(SIGTSTP, &sa, NULL);
        errno = saved;
}

static bool tty_enter(void)
{
        static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
        struct sigaction sa = { .sa_handler = on_fatal_signal };

        /* a background job touching the terminal would be stopped with SIGTTOU */
        if (tcgetpgrp(STDIN_FILENO) != getpgrp() || tcgetattr(STDIN_FILENO, &tty_saved) < 0)
                return false;
        tty_keys = tty_saved;
        tty_keys.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        tty_keys.c_cc[VMIN] = 0;
        tty_keys.c_cc[VTIME] = 0;
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
                sigaction(fatal[i], &sa, NULL);
        sa.sa_handler = on_stop;
        sigaction(SIGTSTP, &sa, NULL);
        sa.sa_handler = on_continue;
        sigaction(SIGCONT, &sa, NULL);
        atexit(tty_restore);
        if (tcsetattr(STDIN_FILENO, TCSANOW, &tty_keys) < 0)
                return false;
        tty_raw = 1;
        return true;
}

static long long now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits ms; true when the user asked to quit (q, or the terminal went away). */
static bool wait_or_quit(long long ms, bool keys)
{
        long long deadline = now_ms() + ms, left;

        while ((left = deadline - now_ms()) > 0) {
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                char ch;
                int n;

                if (!keys) {
                        struct timespec ts = { (time_t)(left / 1000), (long)(left % 1000) * 1000000 };
                        nanosleep(&ts, NULL);   /* EINTR: the loop sleeps the rest */
                        continue;
                }
                n = poll(&p, 1, (int)left);
                if (n <= 0)
                        continue;
                if (p.revents & (POLLHUP | POLLERR))
                        return true;
                n = (int)read(STDIN_FILENO, &ch, 1);
                if (n == 0 || (n == 1 && (ch == 'q' || ch == 'Q')))
                        return true;
        }
        return false;
}

static int cmd_top(struct ctx *x, int argc, char **argv)
{
        bool once = false, interactive = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO), keys = false;
        double interval = 1.0;
        unsigned long count = 0, frames = 0;
        json_t *prev = NULL, *cur, *rates;
        const char *val;
        int r, m;

        for (int i = 0; i < argc; i++) {
                if (!strcmp(argv[i], "--once")) {
                        once = true;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--interval", &val))) {
                        char *end;
                        if (m < 0)
                                return usage_error(x, "--interval needs a number of seconds");
                        interval = strtod(val, &end);
                        if (!*val || *end || !(interval >= 0.05 && interval <= 3600))
                                return usage_error(x, "--interval must be between 0.05 and 3600 seconds");
                } else if ((m = elvis_arg_option(argc, argv, &i, "--count", &val))) {
                        if (m < 0 || elvis_arg_uint(val, 1000000, &count) < 0 || !count)
                                return usage_error(x, "--count needs a positive number");
                } else {
                        return usage_error(x, "top: unknown option '%s'", argv[i]);
                }
        }
        if (once)
                count = 1;
        if (!interactive && !count)
                count = 1;      /* nobody can press q: one frame, like --once */
        if ((r = get(x, "/v1/stats", &prev)))
                return r;
        if (interactive && !once) {
                /* a frame goes out in one write, so the screen never shows half of one */
                setvbuf(stdout, NULL, _IOFBF, 1 << 16);
                keys = tty_enter();
        }
        for (;;) {
                char *frame = NULL;
                size_t len = 0;
                FILE *f;

                if (wait_or_quit((long long)(interval * 1000), keys))
                        break;
                if ((r = get(x, "/v1/stats", &cur)))
                        break;
                rates = elvis_top_rates(prev, cur);
                json_decref(prev);
                prev = cur;
                if (!rates) {
                        fprintf(stderr, "elvisctl: out of memory\n");
                        r = EXIT_API;
                        break;
                }
                if (x->out == OUT_JSON) {
                        print_json(rates);
                } else if ((f = open_memstream(&frame, &len))) {
                        if (interactive && !once)
                                fputs("\033[H\033[2J", f);   /* home, clear */
                        else if (frames)
                                fputc('\n', f);
                        render_top(rates, keys, f);
                        fclose(f);
                        fwrite(frame, 1, len, stdout);
                        free(frame);
                }
                fflush(stdout);
                json_decref(rates);
                if (count && ++frames >= count)
                        break;
        }
        json_decref(prev);
        tty_restore();
        return r;
}

/* ---- events and plan ---- */

static void describe_action(const json_t *a, char *buf, size_t size)
{
        const char *kind = str(a, "action");
        long long to = num(a, "to_sidecore");

        if (!strcmp(kind, "add_sidecore"))
                snprintf(buf, size, "add a sidecore on CPU %lld", num(a, "cpu"));
        else if (!strcmp(kind, "remove_sidecore"))
                snprintf(buf, size, "remove sidecore %lld", num(a, "sidecore"));
        else if (!strcmp(kind, "move_queue") && to > 0)
                snprintf(buf, size, "move VM %lld %s queue %lld to sidecore %lld", num(a, "vm"), str(a, "device"),
                         num(a, "queue"), to);
        else if (!strcmp(kind, "move_queue"))   /* -1 - n: the n-th sidecore this plan adds */
                snprintf(buf, size, "move VM %lld %s queue %lld to new sidecore #%lld", num(a, "vm"), str(a, "device"),
                         num(a, "queue"), -to);
        else
                snprintf(buf, size, "%s", kind);
}

/* "reason; max load 92% -> 61%, sidecores 1 -> 2" for a plan or a control event */
static void print_plan_summary(const json_t *p, const char *indent)
{
        const json_t *b = json_object_get(p, "before"), *a = json_object_get(p, "after"), *act;
        char line[256];
        size_t i;

        printf("%s: %s; max load %.0f%% -> %.0f%%, sidecores %lld -> %lld\n", str(p, "policy"), str(p, "reason"),
               100.0 * real(b, "max_load"), 100.0 * real(a, "max_load"), num(b, "sidecores"), num(a, "sidecores"));
        json_array_foreach(json_object_get(p, "actions"), i, act) {
                describe_action(act, line, sizeof(line));
                printf("%s%s\n", indent, line);
        }
}

/* " key=value" for the scalars of o, one level into objects (policy_changed's changes) */
static void print_fields(const json_t *o, bool top)
{
        static const char *const skip[] = { "seq", "time", "source", "event", NULL };
        const char *k;
        json_t *v;

        json_object_foreach((json_t *)o, k, v) {
                bool skipped = false;
                for (const char *const *s = skip; top && *s; s++)
                        skipped = skipped || !strcmp(*s, k);
                if (skipped)
                        continue;
                if (json_is_object(v) && top) {
                        print_fields(v, false);
                } else if (json_is_string(v)) {
                        printf(" %s=%s", k, json_string_value(v));
                } else {
                        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(6));
                        printf(" %s=%s", k, text ? text : "?");
                        free(text);
                }
        }
}

#define EVENT_INDENT "                                      "     /* under the EVENT column */

static void print_event(const json_t *ev)
{
        time_t t = (time_t)num(ev, "time");
        char when[32];
        struct tm tm;

        if (!localtime_r(&t, &tm) || !strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm))
                snprintf(when, sizeof(when), "%lld", (long long)t);
        printf("%6lld  %-19s  %-7s  ", num(ev, "seq"), when, str(ev, "source"));
        if (json_is_string(json_object_get(ev, "policy"))) {
                print_plan_summary(ev, EVENT_INDENT "  ");
                if (json_is_false(json_object_get(ev, "applied")))
                        printf(EVENT_INDENT "not applied: %s\n", str(ev, "error"));
                return;
        }
        printf("%s", str(ev, "event"));
        print_fields(ev, true);
        putchar('\n');
}

static int cmd_events(struct ctx *x, int argc, char **argv)
{
        unsigned long long since = 0;
        bool follow = false, header = false;
        char boot[40] = "";
        const char *val;
        json_t *doc, *ev;
        char path[96];
        size_t i;
        int r, m;

        for (int k = 0; k < argc; k++) {
                unsigned long v;
                if (!strcmp(argv[k], "--follow"))
                        follow = true;
                else if ((m = elvis_arg_option(argc, argv, &k, "--since", &val)) && m > 0 &&
                         elvis_arg_uint(val, ~0ul, &v) == 0)
                        since = v;
                else if (m)
                        return usage_error(x, "--since needs an event number");
                else
                        return usage_error(x, "events: unknown option '%s'", argv[k]);
        }
        for (bool first = true;; first = false) {
                /* after the first answer, hold each request until something happens (long poll) */
                if (first) {
                        snprintf(path, sizeof(path), "/v1/events?since=%llu", since);
                } else {
                        snprintf(path, sizeof(path), "/v1/events?since=%llu&wait=25", since);
                        x->c.timeout_s = 40;
                }
                if ((r = get(x, path, &doc)))
                        return r;
                {
                        /* a restarted daemon numbers its journal from 1 again: start over */
                        const char *b = json_string_value(json_object_get(doc, "boot"));
                        if (b && boot[0] && strcmp(b, boot) != 0 && since) {
                                json_decref(doc);
                                since = 0;
                                boot[0] = '\0';
                                continue;
                        }
                        if (b)
                                snprintf(boot, sizeof(boot), "%s", b);
                }
                if (x->out == OUT_JSON && !follow)
                        print_json(doc);
                if (x->out == OUT_TABLE && !header && (!follow || json_array_size(json_object_get(doc, "events")))) {
                        printf("%6s  %-19s  %-7s  %s\n", "SEQ", "TIME", "SOURCE", "EVENT");
                        header = true;
                }
                json_array_foreach(json_object_get(doc, "events"), i, ev) {
                        if (x->out == OUT_TABLE) {
                                print_event(ev);
                        } else if (follow) {
                                char *line = json_dumps(ev, JSON_COMPACT | JSON_REAL_PRECISION(12));
                                if (line)
                                        puts(line);     /* JSON lines: one event each */
                                free(line);
                        }
                        since = (unsigned long long)num(ev, "seq");
                }
                /* same, from a daemon that does not say which run it is */
                if ((unsigned long long)num(doc, "last") < since)
                        since = 0;
                json_decref(doc);
                fflush(stdout);
                if (!follow)
                        return EXIT_OK;
        }
}

static const struct elvis_column plan_sidecore_columns[] = {
        { "SIDECORE", ELVIS_COL_INT, .key = "id" },
        { "CPU", ELVIS_COL_INT, .key = "cpu" },
        { "LOAD", ELVIS_COL_PERCENT, .key = "load", .decimals = 1 },
        { "WAIT(us)", ELVIS_COL_REAL, .key = "wait_us", .decimals = 1 },
        { NULL },
};

static const struct elvis_column plan_queue_columns[] = {
        { "VM", ELVIS_COL_INT, .key = "vm" },
        { "DEVICE", ELVIS_COL_STR, .key = "device" },
        { "Q", ELVIS_COL_INT, .key = "queue" },
        { "SIDECORE", ELVIS_COL_INT, .key = "sidecore" },
        { "PKTS/S", ELVIS_COL_REAL, .key = "pps" },
        { "KICKS/S", ELVIS_COL_REAL, .key = "kicks_ps" },
        { "COST", ELVIS_COL_REAL, .key = "cost", .decimals = 4 },
        { "WAIT(us)", ELVIS_COL_REAL, .key = "wait_us", .decimals = 1 },
        { NULL },
};

static int cmd_plan(struct ctx *x, int argc, char **argv)
{
        const json_t *snap, *plan;
        json_t *doc;
        int r;

        if (argc)
                return usage_error(x, "plan takes no arguments");
        if ((r = get(x, "/v1/plan", &doc)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(doc);
                json_decref(doc);
                return EXIT_OK;
        }
        snap = json_object_get(doc, "snapshot");
        plan = json_object_get(doc, "plan");
        if (!json_is_object(snap)) {
                printf("no plan: %s\n", str(doc, "note"));
                json_decref(doc);
                return EXIT_OK;
        }
        printf("mode %s; the last sample, over %.2f s, with %lld free core(s):\n\n", str(doc, "mode"),
               real(snap, "interval_s"), num(snap, "free_cores"));
        elvis_table_render(plan_sidecore_columns, json_object_get(snap, "sidecores"), stdout);
        putchar('\n');
        elvis_table_render(plan_queue_columns, json_object_get(snap, "queues"), stdout);
        putchar('\n');
        if (json_is_object(plan)) {
                printf("plan: ");
                print_plan_summary(plan, "  ");
        } else {
                printf("plan: nothing to change\n");
        }
        if (strcmp(str(doc, "mode"), "dynamic"))
                printf("(mode %s: the control loop applies nothing; elvisctl policy set mode=dynamic)\n",
                       str(doc, "mode"));
        json_decref(doc);
        return EXIT_OK;
}

static int cmd_metrics(struct ctx *x, int argc, char **argv)
{
        char *text;

        if (argc)
                return usage_error(x, "metrics takes no arguments");
        if (elvis_client_text(&x->c, "/metrics", &text) < 0) {
                fprintf(stderr, "elvisctl: %s\n", x->c.error);
                return EXIT_API;
        }
        fputs(text, stdout);
        free(text);
        return EXIT_OK;
}

static int cmd_complete(struct ctx *x, int argc, char **argv);

static const struct command commands[] = {
        { "status", NULL, cmd_status, "", "daemon health, version and data-plane state" },
        { "topology", NULL, cmd_topology, "", "each CPU's core, NUMA node, siblings and role; NICs" },
        { "vm", "list", cmd_vm_list, "", "VMs with their CPUs, policy, devices and sidecores" },
        { "vm", "add", cmd_vm_add,
          "NAME [--vcpus N] [--domain D] [--weight W] [--exitless auto|always|never] [--vmm-uid UID] [--vmm-gid GID] "
          "[--device SPEC]... [--dry-run]",
          "add a VM; SPEC is key=value,... with keys id, backend (tap|loopback|null), tap, queues" },
        { "vm", "show", cmd_vm_show, "ID|NAME", "show a VM" },
        { "vm", "set", cmd_vm_set, "ID|NAME key=value...", "change a VM's name, weight or exitless" },
        { "vm", "remove", cmd_vm_remove, "ID|NAME", "remove a VM, releasing its CPUs and queues" },
        { "vm", "xml", cmd_vm_xml, "ID|NAME", "libvirt domain XML that connects the VM to ELVIS" },
        { "sidecore", "list", cmd_sidecore_list, "", "list sidecores and the queues they serve" },
        { "sidecore", "add", cmd_sidecore_add, "[--cpu N]", "add a sidecore (on a free core unless --cpu)" },
        { "sidecore", "show", cmd_sidecore_show, "ID", "show a sidecore" },
        { "sidecore", "remove", cmd_sidecore_remove, "ID", "remove a sidecore; its queues move to the others" },
        { "policy", "show", cmd_policy_show, "", "show the global policy" },
        { "policy", "set", cmd_policy_set, "key=value...", "change global policy parameters" },
        { "stats", NULL, cmd_stats, "", "data-plane counters per sidecore and queue" },
        { "top", NULL, cmd_top, "[--interval SEC] [--count N] [--once]",
          "refreshing load, packets/s, kicks/s, interrupts/s" },
        { "events", NULL, cmd_events, "[--since SEQ] [--follow]", "journal of control decisions and changes" },
        { "plan", NULL, cmd_plan, "", "what the dynamic policies would change now (dry run)" },
        { "metrics", NULL, cmd_metrics, "", "Prometheus metrics as served on /metrics" },
        { "__complete", NULL, cmd_complete, "[WORD...]", NULL },
        { NULL, NULL, NULL, NULL, NULL },
};

/* ---- usage and completion, generated from the tables above ---- */

#define HELP_COLUMN 25
#define LINE_WIDTH 79

/* Prints text's words from column col (after a blank when space_first), breaking lines
 * before LINE_WIDTH and indenting continuations; returns the column it ends in. */
static int wrap(FILE *f, int col, int indent, const char *text, bool space_first)
{
        bool fresh = !space_first;

        text += strspn(text, " ");
        while (*text) {
                /* "[--exitless auto|always|never]..." stays on one line */
                const char *close = *text == '[' ? strchr(text, ']') : NULL;
                int n = close ? (int)(close - text) + (int)strcspn(close, " ") : (int)strcspn(text, " ");
                if (!fresh && col + 1 + n > LINE_WIDTH) {
                        fprintf(f, "\n%*s", indent, "");
                        col = indent;
                        fresh = true;
                }
                if (!fresh)
                        col += fprintf(f, " ");
                col += fprintf(f, "%.*s", n, text);
                fresh = false;
                text += n;
                text += strspn(text, " ");
        }
        return col;
}

/* The help text in its column, on the next line when the left part is too wide. */
static void help_line(FILE *f, int col, const char *help)
{
        if (col + 2 > HELP_COLUMN) {
                fprintf(f, "\n%*s", HELP_COLUMN, "");
                col = HELP_COLUMN;
        } else {
                col += fprintf(f, "%*s", HELP_COLUMN - col, "");
        }
        wrap(f, col, HELP_COLUMN, help, false);
        fputc('\n', f);
}

static void command_line(const struct command *c, FILE *f)
{
        int col = fprintf(f, "  %s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");

        help_line(f, wrap(f, col, 8, c->args, true), c->help);
}

/* The short hint after a usage error inside a command. */
static void command_usage(const struct command *c, FILE *f)
{
        int col = fprintf(f, "usage: elvisctl %s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");

        wrap(f, col, 8, c->args, true);
        fputc('\n', f);
}

/* Every command of a group ("vm ..."), for "elvisctl vm" and "elvisctl vm --help". */
static void group_usage(const char *name, FILE *f)
{
        fprintf(f, "Usage: elvisctl [OPTIONS] COMMAND [ARGS]\n\n");
        for (const struct command *c = commands; c->name; c++)
                if (c->help && !strcmp(c->name, name))
                        command_line(c, f);
}

static void usage(FILE *f)
{
        fprintf(f, "Usage: elvisctl [OPTIONS] COMMAND [ARGS]\n\nCommands:\n");
        for (const struct command *c = commands; c->name; c++)
                if (c->help)
                        command_line(c, f);
        fprintf(f, "\nOptions:\n");
        for (const struct global_option *o = global_options; o->name; o++)
                help_line(f, fprintf(f, "  %s%s%s%s%s", o->shrt ? o->shrt : "", o->shrt ? ", " : "", o->name,
                                     o->arg ? " " : "", o->arg ? o->arg : ""), o->help);
        fprintf(f, "\nExit status: 0 success, 1 the daemon refused or cannot be reached, 2 usage\n"
                   "error. See elvisctl(1).\n");
}

/* An option of a command's synopsis: "[--exitless auto|always|never]" gives name
 * "--exitless" and value "auto|always|never"; flags have an empty value. */
struct synopsis_option {
        char name[32];
        char value[64];
};

static size_t synopsis_options(const char *args, struct synopsis_option *opts, size_t max)
{
        char copy[256], *save = NULL, *tok;
        size_t n = 0;

        snprintf(copy, sizeof(copy), "%s", args);
        for (tok = strtok_r(copy, " ", &save); tok && n < max; tok = strtok_r(NULL, " ", &save)) {
                bool flag;
                tok += strspn(tok, "[");
                if (strncmp(tok, "--", 2))
                        continue;
                flag = strchr(tok, ']') != NULL;
                snprintf(opts[n].name, sizeof(opts[n].name), "%.*s", (int)strcspn(tok, "]"), tok);
                opts[n].value[0] = '\0';
                if (!flag && (tok = strtok_r(NULL, " ", &save)))
                        snprintf(opts[n].value, sizeof(opts[n].value), "%.*s", (int)strcspn(tok, "]"), tok);
                n++;
        }
        return n;
}

/* "auto|always|never" -> one word a line; placeholders (N, SEC) have no candidates. */
static void print_choices(const char *value)
{
        char copy[64], *save = NULL, *w;

        if (!value[0] || strpbrk(value, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
                return;
        snprintf(copy, sizeof(copy), "%s", value);
        for (w = strtok_r(copy, "|", &save); w; w = strtok_r(NULL, "|", &save))
                puts(w);
}

static void print_keys(const struct elvis_arg_key *keys)
{
        for (const struct elvis_arg_key *k = keys; k->name; k++) {
                if (k->type != ELVIS_ARG_ENUM)
                        printf("%s=\n", k->name);
                else
                        for (const char *const *c = k->choices; *c; c++)
                                printf("%s=%s\n", k->name, *c);
        }
}

/* Names from a list the daemon serves; silent when it cannot be reached (a shell is waiting). */
static void print_names(struct ctx *x, const char *path, const char *array, const char *field)
{
        json_t *j = NULL, *o;
        size_t i;

        x->c.timeout_s = 2;
        if (elvis_client_call(&x->c, "GET", path, NULL, &j) < 0)
                return;
        json_array_foreach(json_object_get(j, array), i, o) {
                json_t *v = json_object_get(o, field);
                if (json_is_string(v))
                        puts(json_string_value(v));
                else if (json_is_integer(v))
                        printf("%lld\n", (long long)json_integer_value(v));
        }
        json_decref(j);
}

/* Hidden helper of the bash completion: given the words before the cursor (global options
 * removed), prints the candidates for the next word, one a line. "__complete --options"
 * lists the global options. Everything comes from the tables, so completion cannot drift
 * from the binary. */
static int cmd_complete(struct ctx *x, int argc, char **argv)
{
        struct synopsis_option opts[16];
        const struct command *c = NULL;
        bool positional = false;
        size_t nopts;
        int first;

        if (argc == 1 && !strcmp(argv[0], "--options")) {
                for (const struct global_option *o = global_options; o->name; o++)
                        printf("%s%s%s\n", o->shrt ? o->shrt : "", o->shrt ? "\n" : "", o->name);
                return EXIT_OK;
        }
        for (const struct command *k = commands; k->name; k++) {
                if (!k->help)
                        continue;
                if (argc == 0 && (k == commands || strcmp(k->name, k[-1].name)))
                        puts(k->name);
                else if (argc == 1 && !strcmp(k->name, argv[0]) && k->sub)
                        puts(k->sub);
                else if (argc >= 1 && !strcmp(k->name, argv[0]) && (!k->sub || (argc >= 2 && !strcmp(k->sub, argv[1]))))
                        c = k;
        }
        if (!c || (c->sub && argc < 2))
                return EXIT_OK;
        first = c->sub ? 2 : 1;
        nopts = synopsis_options(c->args, opts, 16);
        for (int i = first; i < argc; i++) {
                bool value_next = false;
                for (size_t o = 0; o < nopts; o++)
                        if (!strcmp(argv[i], opts[o].name) && opts[o].value[0])
                                value_next = true;
                if (value_next && i + 1 == argc) {      /* the cursor is on this option's value */
                        if (!strcmp(argv[i], "--device"))
                                print_keys(elvis_arg_device_keys);
                        for (size_t o = 0; o < nopts; o++)
                                if (!strcmp(argv[i], opts[o].name))
                                        print_choices(opts[o].value);
                        return EXIT_OK;
                }
                if (value_next)
                        i++;
                else if (argv[i][0] != '-')
                        positional = true;
        }
        for (size_t o = 0; o < nopts; o++)
                puts(opts[o].name);
        if (!positional && !strncmp(c->args, "ID|NAME", 7))
                print_names(x, "/v1/vms", "vms", "name");
        else if (!positional && !strcmp(c->args, "ID"))
                print_names(x, "/v1/sidecores", "sidecores", "id");
        else if (positional && !strcmp(c->name, "vm") && !strcmp(c->sub, "set"))
                print_keys(elvis_arg_vm_set_keys);
        else if (!strcmp(c->name, "policy") && !strcmp(c->sub, "set"))
                print_keys(elvis_arg_policy_keys);
        return EXIT_OK;
}

static char *read_token(const char *path)
{
        char buf[4097];
        size_t n;
        FILE *f = fopen(path, "re");

        if (!f) {
                fprintf(stderr, "elvisctl: cannot read token file %s: %s\n", path, strerror(errno));
                return NULL;
        }
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n && strchr(" \t\r\n", buf[n - 1]))
                buf[--n] = '\0';
        return strdup(buf);
}

/* A token goes into an HTTP header: a line break in it would add headers of its own. */
static bool token_ok(const char *token, const char *origin)
{
        for (const char *p = token; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                        fprintf(stderr, "elvisctl: the token in %s contains control characters\n", origin);
                        return false;
                }
        if (!*token) {
                fprintf(stderr, "elvisctl: the token in %s is empty\n", origin);
                return false;
        }
        return true;
}

/* Parses the global options before the command; returns the index of the command word,
 * or -exit status when the program is done (help, version, errors). */
static int parse_globals(struct ctx *x, int argc, char **argv, const char **ret_token_file)
{
        int i;

        for (i = 1; i < argc && argv[i][0] == '-'; i++) {
                const char *a = argv[i], *v = NULL;
                int m;

                if (!strcmp(a, "--"))
                        return i + 1;
                if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        usage(stdout);
                        return -EXIT_OK;
                }
                if (!strcmp(a, "--version")) {
                        printf("elvisctl %s\n", ELVIS_VERSION);
                        return -EXIT_OK;
                }
                if (!strncmp(a, "-o", 2) && a[2] && a[2] != '=') {
                        v = a + 2;      /* -ojson */
                        m = 1;
                } else if (!(m = elvis_arg_option(argc, argv, &i, "-o", &v))) {
                        m = elvis_arg_option(argc, argv, &i, "--output", &v);
                }
                if (m) {
                        if (m < 0 || (strcmp(v, "table") && strcmp(v, "json")))
                                return -usage_error(NULL, "-o takes table or json");
                        x->out = strcmp(v, "json") ? OUT_TABLE : OUT_JSON;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--socket", &v))) {
                        if (m < 0 || !*v)
                                return -usage_error(NULL, "--socket needs a PATH");
                        x->c.socket = v;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--url", &v))) {
                        if (m < 0 || (strncmp(v, "https://", 8) && strncmp(v, "http://", 7)))
                                return -usage_error(NULL, "--url needs an http:// or https:// URL");
                        x->c.url = v;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--token-file", &v))) {
                        if (m < 0)
                                return -usage_error(NULL, "--token-file needs a FILE");
                        *ret_token_file = v;
                } else if ((m = elvis_arg_option(argc, argv, &i, "--cacert", &v))) {
                        if (m < 0)
                                return -usage_error(NULL, "--cacert needs a FILE");
                        x->c.cacert = v;
                } else {
                        return -usage_error(NULL, "unknown option '%s'", a);
                }
        }
        return i;
}

static bool is_help(const char *a)
{
        return !strcmp(a, "-h") || !strcmp(a, "--help");
}

/* Finds the command argv[0] names and runs it; returns the exit status. */
static int dispatch(struct ctx *x, int argc, char **argv)
{
        const struct command *group = NULL, *c = NULL;
        int skip;

        for (const struct command *k = commands; k->name && !group; k++)
                if (!strcmp(k->name, argv[0]))
                        group = k;
        if (!group)
                return usage_error(NULL, "unknown command '%s'", argv[0]);
        if (group->sub && (argc < 2 || is_help(argv[1]))) {
                if (argc >= 2) {
                        group_usage(group->name, stdout);
                        return EXIT_OK;
                }
                fprintf(stderr, "elvisctl: %s needs a subcommand\n", group->name);
                group_usage(group->name, stderr);
                return EXIT_USAGE;
        }
        for (c = group; c->name && !strcmp(c->name, group->name); c++)
                if (!c->sub || !strcmp(c->sub, argv[1]))
                        break;
        if (!c->name || strcmp(c->name, group->name)) {
                fprintf(stderr, "elvisctl: unknown %s subcommand '%s'\n", group->name, argv[1]);
                group_usage(group->name, stderr);
                return EXIT_USAGE;
        }
        skip = c->sub ? 2 : 1;
        for (int i = skip; i < argc && c->help; i++) {
                if (is_help(argv[i])) {
                        command_line(c, stdout);
                        return EXIT_OK;
                }
                /* "elvisctl vm list -o json": say where it goes rather than "unknown option" */
                for (const struct global_option *o = global_options; o->name; o++)
                        if (o->arg && (!strcmp(argv[i], o->name) || (o->shrt && !strcmp(argv[i], o->shrt)) ||
                                       (!strncmp(argv[i], o->name, strlen(o->name)) &&
                                        argv[i][strlen(o->name)] == '=')))
                                return usage_error(NULL, "%s is a global option and goes before the command: "
                                                   "elvisctl [OPTIONS] COMMAND [ARGS]", o->name);
        }
        x->cmd = c;
        return c->fn(x, argc - skip, argv + skip);
}

int main(int argc, char **argv)
{
        struct ctx x = { .c = { .socket = getenv("ELVIS_SOCKET"), .token = getenv("ELVIS_TOKEN") } };
        const char *token_file = NULL;
        char *token = NULL;
        int i, r;

        if (!x.c.socket || !*x.c.socket)
                x.c.socket = "/run/elvis/elvis.sock";
        if (x.c.token && !*x.c.token)
                x.c.token = NULL;
        i = parse_globals(&x, argc, argv, &token_file);
        if (i <= 0)
                return -i;
        if (i == argc) {
                usage(stderr);
                return EXIT_USAGE;
        }
        if (token_file) {
                token = read_token(token_file);
                if (!token || !token_ok(token, token_file)) {
                        free(token);
                        return EXIT_API;
                }
                x.c.token = token;
        } else if (x.c.token && !token_ok(x.c.token, "ELVIS_TOKEN")) {
                return EXIT_API;
        }
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                fprintf(stderr, "elvisctl: cannot initialise libcurl\n");
                free(token);
                return EXIT_API;
        }
        r = dispatch(&x, argc - i, argv + i);
        curl_global_cleanup();
        free(token);
        return r;
}
