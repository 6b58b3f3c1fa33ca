/* elvisctl: command-line client of elvis-manager. Every command comes from one table,
 * from which usage and shell completion are generated. */
#include "client.h"
#include "table.h"
#include "top.h"

#include <elvis/version.h>

#include <errno.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

enum output { OUT_TABLE, OUT_JSON };

struct ctx {
        struct client c;
        enum output out;
};

struct command {
        const char *name;
        const char *sub;
        int (*fn)(struct ctx *x, int argc, char **argv);
        const char *args;
        const char *help;
};

static const struct command commands[];

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
        va_list ap;

        fputs("elvisctl: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\nTry 'elvisctl --help'.\n", stderr);
        return EXIT_USAGE;
}

static void print_json(const json_t *j)
{
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
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

/* "-" for null, else the integer */
static const char *opt_int(const json_t *v, char *buf, size_t size)
{
        if (!json_is_integer(v))
                return "-";
        snprintf(buf, size, "%lld", (long long)json_integer_value(v));
        return buf;
}

static int get(struct ctx *x, const char *path, json_t **ret)
{
        return client_call(&x->c, "GET", path, NULL, ret);
}

/* ---- status ---- */

static int cmd_status(struct ctx *x, int argc, char **argv)
{
        json_t *h, *dp;
        int r;

        if (argc)
                return usage_error("status takes no arguments");
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
        }
        json_decref(h);
        return EXIT_OK;
}

/* ---- topology ---- */

static int cmd_topology(struct ctx *x, int argc, char **argv)
{
        static const char *const h[] = { "CPU", "CORE", "NODE", "SIBLINGS", "ROLE", NULL };
        static const char *const hn[] = { "NIC", "PCI", "NODE", NULL };
        json_t *t, *o;
        struct table *tb;
        size_t i;
        int r;

        if (argc)
                return usage_error("topology takes no arguments");
        if ((r = get(x, "/v1/topology", &t)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(t);
                json_decref(t);
                return EXIT_OK;
        }
        printf("source %s, %lld package(s), %zu NUMA node(s); ELVIS may use CPUs %s, reserved %s\n\n", str(t, "source"),
               num(t, "packages"), json_array_size(json_object_get(t, "numa_nodes")), str(t, "allowed_cpus"),
               str(t, "reserved_cpus"));
        tb = table_new(h);
        json_array_foreach(json_object_get(t, "cpus"), i, o) {
                char role[128], nb[16];
                const char *rl = str(o, "role");
                if (!strcmp(rl, "vcpu"))
                        snprintf(role, sizeof(role), "vcpu of %s (VM %lld)", str(o, "vm_name"), num(o, "vm"));
                else if (!strcmp(rl, "sidecore"))
                        snprintf(role, sizeof(role), "sidecore %lld", num(o, "sidecore"));
                else
                        snprintf(role, sizeof(role), "%s", rl);
                table_row(tb, "%lld|%lld|%s|%s|%s", num(o, "cpu"), num(o, "core"),
                          opt_int(json_object_get(o, "numa_node"), nb, sizeof(nb)), str(o, "siblings"), role);
        }
        table_print(tb, stdout);
        table_free(tb);
        if (json_array_size(json_object_get(t, "nics"))) {
                putchar('\n');
                tb = table_new(hn);
                json_array_foreach(json_object_get(t, "nics"), i, o) {
                        char nb[16];
                        table_row(tb, "%s|%s|%s", str(o, "name"), str(o, "pci"),
                                  opt_int(json_object_get(o, "numa_node"), nb, sizeof(nb)));
                }
                table_print(tb, stdout);
                table_free(tb);
        }
        json_decref(t);
        return EXIT_OK;
}

/* ---- VMs ---- */

/* "1,2,-" for the sidecores serving a device's queue pairs */
static void sidecore_list(const json_t *dev, char *buf, size_t size)
{
        size_t q, n = 0;
        json_t *s;

        buf[0] = '\0';
        json_array_foreach(json_object_get(dev, "sidecores"), q, s) {
                char one[24];
                snprintf(one, sizeof(one), "%s%s", q ? "," : "", opt_int(s, (char[16]){ 0 }, 16));
                if (n + strlen(one) < size) {
                        memcpy(buf + n, one, strlen(one) + 1);
                        n += strlen(one);
                }
        }
}

static void vm_rows(struct table *tb, const json_t *vm)
{
        const json_t *pol = json_object_get(vm, "policy");
        const char *cpus = str(vm, "cpus")[0] ? str(vm, "cpus") : "-";
        json_t *d;
        size_t i;

        if (!json_array_size(json_object_get(vm, "devices")))
                table_row(tb, "%lld|%s|%s|%lld|%s|-|-|-", num(vm, "id"), str(vm, "name"), cpus, num(pol, "weight"),
                          str(pol, "exitless"));
        json_array_foreach(json_object_get(vm, "devices"), i, d) {
                char scs[256], id[24] = "", w[24] = "";
                sidecore_list(d, scs, sizeof(scs));
                if (i == 0) {
                        snprintf(id, sizeof(id), "%lld", num(vm, "id"));
                        snprintf(w, sizeof(w), "%lld", num(pol, "weight"));
                }
                table_row(tb, "%s|%s|%s|%s|%s|%s:%s|%lld|%s", id, i ? "" : str(vm, "name"), i ? "" : cpus, w,
                          i ? "" : str(pol, "exitless"), str(d, "id"), str(d, "backend"), num(d, "queues"), scs);
        }
}

static const char *const vm_headers[] = { "ID", "NAME", "CPUS", "WEIGHT", "EXITLESS", "DEVICE", "QUEUES", "SIDECORES",
                                          NULL };

static int cmd_vm_list(struct ctx *x, int argc, char **argv)
{
        json_t *j, *vm;
        struct table *tb;
        size_t i;
        int r;

        if (argc)
                return usage_error("vm list takes no arguments");
        if ((r = get(x, "/v1/vms", &j)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(j);
        } else {
                tb = table_new(vm_headers);
                json_array_foreach(json_object_get(j, "vms"), i, vm)
                        vm_rows(tb, vm);
                table_print(tb, stdout);
                table_free(tb);
        }
        json_decref(j);
        return EXIT_OK;
}

static int print_vm(struct ctx *x, json_t *vm)
{
        size_t i;
        json_t *d;

        if (x->out == OUT_JSON) {
                print_json(vm);
                return EXIT_OK;
        }
        printf("VM %lld '%s'%s\n  domain:   %s\n  vCPUs:    %lld on CPUs %s (NUMA node %s)\n  policy:   weight %lld, exitless %s\n",
               num(vm, "id"), str(vm, "name"), json_is_true(json_object_get(vm, "dry_run")) ? " (dry run: not created)" : "",
               json_is_string(json_object_get(vm, "domain")) ? str(vm, "domain") : "-", num(vm, "vcpus"),
               str(vm, "cpus")[0] ? str(vm, "cpus") : "-", opt_int(json_object_get(vm, "numa_node"), (char[16]){ 0 }, 16),
               num(json_object_get(vm, "policy"), "weight"), str(json_object_get(vm, "policy"), "exitless"));
        json_array_foreach(json_object_get(vm, "devices"), i, d) {
                size_t q;
                json_t *s;
                printf("  device %s: %s%s%s, %lld queue pair(s)\n    socket: %s\n    sidecores:", str(d, "id"),
                       str(d, "backend"), json_is_string(json_object_get(d, "tap")) ? " " : "",
                       json_is_string(json_object_get(d, "tap")) ? str(d, "tap") : "", num(d, "queues"),
                       json_is_string(json_object_get(d, "socket")) ? str(d, "socket") : "-");
                json_array_foreach(json_object_get(d, "sidecores"), q, s)
                        printf(" %s", opt_int(s, (char[16]){ 0 }, 16));
                putchar('\n');
        }
        return EXIT_OK;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
        char *end;
        unsigned long v;

        if (!*s || *s == '-')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (*end || errno || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* "id=net0,backend=tap,tap=t0,queues=2" */
static int parse_device(const char *spec, json_t *dev)
{
        char *copy = strdup(spec), *save = copy, *kv;
        int r = 0;

        while (r == 0 && (kv = strsep(&save, ","))) {
                char *eq = strchr(kv, '=');
                unsigned long v;
                if (!eq) {
                        r = usage_error("--device: expected key=value, got '%s'", kv);
                        break;
                }
                *eq++ = '\0';
                if (!strcmp(kv, "queues")) {
                        if (parse_uint(eq, 1000, &v) < 0)
                                r = usage_error("--device: queues must be a number");
                        else
                                json_object_set_new(dev, "queues", json_integer((json_int_t)v));
                } else if (!strcmp(kv, "id") || !strcmp(kv, "backend") || !strcmp(kv, "tap")) {
                        json_object_set_new(dev, kv, json_string(eq));
                } else {
                        r = usage_error("--device: unknown key '%s' (id, backend, tap, queues)", kv);
                }
        }
        free(copy);
        return r;
}

static int cmd_vm_add(struct ctx *x, int argc, char **argv)
{
        json_t *body = json_object(), *devs = json_array(), *pol = json_object(), *vm;
        bool dry = false;
        unsigned long v;
        int r = 0;

        if (argc < 1 || argv[0][0] == '-') {
                r = usage_error("vm add needs a NAME");
                goto out;
        }
        json_object_set_new(body, "name", json_string(argv[0]));
        for (int i = 1; i < argc && r == 0; i++) {
                const char *a = argv[i];
                const char *val = i + 1 < argc ? argv[i + 1] : NULL;
                bool takes = strcmp(a, "--dry-run") != 0;
                if (takes && !val) {
                        r = usage_error("%s needs a value", a);
                        break;
                }
                if (!strcmp(a, "--dry-run")) {
                        dry = true;
                } else if (!strcmp(a, "--vcpus")) {
                        if (parse_uint(val, 100000, &v) < 0)
                                r = usage_error("--vcpus must be a number");
                        else
                                json_object_set_new(body, "vcpus", json_integer((json_int_t)v));
                } else if (!strcmp(a, "--domain")) {
                        json_object_set_new(body, "domain", json_string(val));
                } else if (!strcmp(a, "--weight")) {
                        if (parse_uint(val, 1000000, &v) < 0)
                                r = usage_error("--weight must be a number");
                        else
                                json_object_set_new(pol, "weight", json_integer((json_int_t)v));
                } else if (!strcmp(a, "--exitless")) {
                        json_object_set_new(pol, "exitless", json_string(val));
                } else if (!strcmp(a, "--device")) {
                        json_t *dev = json_object();
                        r = parse_device(val, dev);
                        json_array_append_new(devs, dev);
                } else {
                        r = usage_error("vm add: unknown option '%s'", a);
                }
                if (takes)
                        i++;
        }
        if (r)
                goto out;
        if (json_array_size(devs))
                json_object_set(body, "devices", devs);
        if (json_object_size(pol))
                json_object_set(body, "policy", pol);
        r = client_call(&x->c, "POST", dry ? "/v1/vms?dry_run=true" : "/v1/vms", body, &vm);
        if (r == 0) {
                print_vm(x, vm);
                json_decref(vm);
        }
out:
        json_decref(body);
        json_decref(devs);
        json_decref(pol);
        return r;
}

/* /v1/vms/KEY with anything but unreserved characters percent-encoded */
static void vm_path(const char *key, char *buf, size_t size)
{
        size_t n = (size_t)snprintf(buf, size, "/v1/vms/");

        for (; *key && n + 4 < size; key++) {
                unsigned char ch = (unsigned char)*key;
                if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || strchr("-._~", ch))
                        buf[n++] = (char)ch;
                else
                        n += (size_t)snprintf(buf + n, size - n, "%%%02X", ch);
        }
        buf[n] = '\0';
}

static int cmd_vm_show(struct ctx *x, int argc, char **argv)
{
        char path[512];
        json_t *vm;
        int r;

        if (argc != 1)
                return usage_error("vm show needs one ID or NAME");
        vm_path(argv[0], path, sizeof(path));
        if ((r = get(x, path, &vm)))
                return r;
        print_vm(x, vm);
        json_decref(vm);
        return EXIT_OK;
}

static int cmd_vm_set(struct ctx *x, int argc, char **argv)
{
        json_t *body = json_object(), *pol = json_object(), *vm;
        char path[512];
        int r = 0;

        if (argc < 2)
                r = usage_error("vm set needs an ID or NAME and key=value pairs (name, weight, exitless)");
        for (int i = 1; i < argc && r == 0; i++) {
                char *eq = strchr(argv[i], '=');
                unsigned long v;
                if (!eq) {
                        r = usage_error("expected key=value, got '%s'", argv[i]);
                        break;
                }
                *eq++ = '\0';
                if (!strcmp(argv[i], "name"))
                        json_object_set_new(body, "name", json_string(eq));
                else if (!strcmp(argv[i], "exitless"))
                        json_object_set_new(pol, "exitless", json_string(eq));
                else if (!strcmp(argv[i], "weight") && parse_uint(eq, 1000000, &v) == 0)
                        json_object_set_new(pol, "weight", json_integer((json_int_t)v));
                else if (!strcmp(argv[i], "weight"))
                        r = usage_error("weight must be a number");
                else
                        r = usage_error("vm set: unknown key '%s' (name, weight, exitless)", argv[i]);
        }
        if (r == 0) {
                if (json_object_size(pol))
                        json_object_set(body, "policy", pol);
                vm_path(argv[0], path, sizeof(path));
                r = client_call(&x->c, "PATCH", path, body, &vm);
                if (r == 0) {
                        print_vm(x, vm);
                        json_decref(vm);
                }
        }
        json_decref(body);
        json_decref(pol);
        return r;
}

static int cmd_vm_remove(struct ctx *x, int argc, char **argv)
{
        char path[512];
        int r;

        if (argc != 1)
                return usage_error("vm remove needs one ID or NAME");
        vm_path(argv[0], path, sizeof(path));
        r = client_call(&x->c, "DELETE", path, NULL, NULL);
        if (r == 0 && x->out == OUT_TABLE)
                printf("VM %s removed\n", argv[0]);
        else if (r == 0)
                puts("{\"removed\": true}");
        return r;
}

/* ---- sidecores ---- */

static int cmd_sidecore_list(struct ctx *x, int argc, char **argv)
{
        static const char *const h[] = { "ID", "CPU", "NODE", "ORIGIN", "QUEUES", NULL };
        json_t *j, *s, *q;
        struct table *tb;
        size_t i, k;
        int r;

        if (argc)
                return usage_error("sidecore list takes no arguments");
        if ((r = get(x, "/v1/sidecores", &j)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(j);
                json_decref(j);
                return EXIT_OK;
        }
        tb = table_new(h);
        json_array_foreach(json_object_get(j, "sidecores"), i, s) {
                char qs[1024] = "";
                size_t n = 0;
                json_array_foreach(json_object_get(s, "queues"), k, q)
                        if (n < sizeof(qs))
                                n += (size_t)snprintf(qs + n, sizeof(qs) - n, "%s%s/%s/%lld", k ? " " : "",
                                                      str(q, "vm_name"), str(q, "device"), num(q, "queue"));
                table_row(tb, "%lld|%lld|%s|%s|%s", num(s, "id"), num(s, "cpu"),
                          opt_int(json_object_get(s, "numa_node"), (char[16]){ 0 }, 16),
                          json_is_true(json_object_get(s, "automatic")) ? "automatic" : "operator", n ? qs : "-");
        }
        table_print(tb, stdout);
        table_free(tb);
        json_decref(j);
        return EXIT_OK;
}

static int cmd_sidecore_add(struct ctx *x, int argc, char **argv)
{
        json_t *body = json_object(), *sc;
        unsigned long cpu;
        int r;

        if (argc == 2 && !strcmp(argv[0], "--cpu")) {
                if (parse_uint(argv[1], 1 << 20, &cpu) < 0) {
                        json_decref(body);
                        return usage_error("--cpu must be a CPU number");
                }
                json_object_set_new(body, "cpu", json_integer((json_int_t)cpu));
        } else if (argc) {
                json_decref(body);
                return usage_error("sidecore add takes only --cpu N");
        }
        r = client_call(&x->c, "POST", "/v1/sidecores", body, &sc);
        json_decref(body);
        if (r)
                return r;
        if (x->out == OUT_JSON)
                print_json(sc);
        else
                printf("sidecore %lld on CPU %lld\n", num(sc, "id"), num(sc, "cpu"));
        json_decref(sc);
        return EXIT_OK;
}

static int cmd_sidecore_remove(struct ctx *x, int argc, char **argv)
{
        char path[64];
        unsigned long id;
        int r;

        if (argc != 1 || parse_uint(argv[0], 0xffffffffu, &id) < 0)
                return usage_error("sidecore remove needs one sidecore ID");
        snprintf(path, sizeof(path), "/v1/sidecores/%lu", id);
        r = client_call(&x->c, "DELETE", path, NULL, NULL);
        if (r == 0)
                printf(x->out == OUT_JSON ? "{\"removed\": true}\n" : "sidecore %lu removed\n", id);
        return r;
}

/* ---- policy ---- */

static const char *const policy_ints[] = { "min_sidecores", "max_sidecores", "interval_ms", "budget_packets",
                                           "budget_bytes", "poll_start_rate", "poll_stop_idle_ms",
                                           "rebalance_interval_ms", "cooldown_ms", "max_wait_us", NULL };
static const char *const policy_reals[] = { "scale_up_idle", "scale_down_idle", "improvement_threshold", NULL };
static const char *const policy_enums[] = { "mode", "exitless", NULL };

static bool in(const char *const *list, const char *s)
{
        for (; *list; list++)
                if (!strcmp(*list, s))
                        return true;
        return false;
}

static void print_policy(struct ctx *x, json_t *p)
{
        const char *k;
        json_t *v;

        if (x->out == OUT_JSON) {
                print_json(p);
                return;
        }
        json_object_foreach(p, k, v) {
                if (json_is_string(v))
                        printf("%-22s %s\n", k, json_string_value(v));
                else if (json_is_real(v))
                        printf("%-22s %g\n", k, json_real_value(v));
                else
                        printf("%-22s %lld\n", k, (long long)json_integer_value(v));
        }
}

static int cmd_policy_show(struct ctx *x, int argc, char **argv)
{
        json_t *p;
        int r;

        if (argc)
                return usage_error("policy show takes no arguments");
        if ((r = get(x, "/v1/policy", &p)))
                return r;
        print_policy(x, p);
        json_decref(p);
        return EXIT_OK;
}

static int cmd_policy_set(struct ctx *x, int argc, char **argv)
{
        json_t *body = json_object(), *p;
        int r = 0;

        if (!argc)
                r = usage_error("policy set needs key=value pairs");
        for (int i = 0; i < argc && r == 0; i++) {
                char *eq = strchr(argv[i], '='), *end;
                if (!eq) {
                        r = usage_error("expected key=value, got '%s'", argv[i]);
                        break;
                }
                *eq++ = '\0';
                if (in(policy_enums, argv[i])) {
                        json_object_set_new(body, argv[i], json_string(eq));
                } else if (in(policy_ints, argv[i])) {
                        long long v = strtoll(eq, &end, 10);
                        if (!*eq || *end)
                                r = usage_error("%s must be an integer", argv[i]);
                        else
                                json_object_set_new(body, argv[i], json_integer(v));
                } else if (in(policy_reals, argv[i])) {
                        double v = strtod(eq, &end);
                        if (!*eq || *end)
                                r = usage_error("%s must be a number", argv[i]);
                        else
                                json_object_set_new(body, argv[i], json_real(v));
                } else {
                        fprintf(stderr, "elvisctl: unknown policy key '%s'; valid keys:", argv[i]);
                        for (const char *const *l = policy_enums; *l; l++)
                                fprintf(stderr, " %s", *l);
                        for (const char *const *l = policy_ints; *l; l++)
                                fprintf(stderr, " %s", *l);
                        for (const char *const *l = policy_reals; *l; l++)
                                fprintf(stderr, " %s", *l);
                        fputc('\n', stderr);
                        r = EXIT_USAGE;
                }
        }
        if (r == 0 && (r = client_call(&x->c, "PUT", "/v1/policy", body, &p)) == 0) {
                print_policy(x, p);
                json_decref(p);
        }
        json_decref(body);
        return r;
}

/* ---- stats and top ---- */

static const char *const queue_headers[] = { "VM", "DEVICE", "Q", "SIDECORE", "STATE", "POLLING", "TX PKTS",
                                             "RX PKTS", "KICKS", "IRQS", "ERRORS", NULL };

static int cmd_stats(struct ctx *x, int argc, char **argv)
{
        static const char *const h[] = { "SIDECORE", "CPU", "QUEUES", "LOAD", "PACKETS", "POLLS", "EMPTY", "WAKEUPS",
                                         NULL };
        json_t *s, *o;
        struct table *tb;
        size_t i;
        int r;

        if (argc)
                return usage_error("stats takes no arguments");
        if ((r = get(x, "/v1/stats", &s)))
                return r;
        if (x->out == OUT_JSON) {
                print_json(s);
                json_decref(s);
                return EXIT_OK;
        }
        if (!json_is_true(json_object_get(s, "available")))
                printf("the %s data plane is not running: no counters\n", str(s, "dataplane"));
        tb = table_new(h);
        json_array_foreach(json_object_get(s, "sidecores"), i, o)
                table_row(tb, "%lld|%lld|%lld|%.1f%%|%lld|%lld|%lld|%lld", num(o, "id"), num(o, "cpu"), num(o, "queues"),
                          100.0 * json_number_value(json_object_get(o, "load")), num(o, "packets"), num(o, "polls"),
                          num(o, "empty_polls"), num(o, "wakeups"));
        table_print(tb, stdout);
        table_free(tb);
        putchar('\n');
        tb = table_new(queue_headers);
        json_array_foreach(json_object_get(s, "queues"), i, o)
                table_row(tb, "%s|%s|%lld|%s|%s|%s|%lld|%lld|%lld|%lld|%lld", str(o, "vm_name"), str(o, "device"),
                          num(o, "queue"), opt_int(json_object_get(o, "sidecore"), (char[16]){ 0 }, 16),
                          str(o, "state"), json_is_true(json_object_get(o, "polling")) ? "yes" : "no",
                          num(o, "tx_packets"), num(o, "rx_packets"), num(o, "kicks"), num(o, "interrupts"),
                          num(o, "errors"));
        table_print(tb, stdout);
        table_free(tb);
        json_decref(s);
        return EXIT_OK;
}

static void render_top(struct ctx *x, json_t *rates, bool tty)
{
        static const char *const hs[] = { "SIDECORE", "CPU", "QUEUES", "LOAD", "PKTS/S", "STATE", NULL };
        static const char *const hq[] = { "VM", "DEVICE", "Q", "SIDECORE", "PKTS/S", "KICKS/S", "IRQS/S", "POLLING",
                                          "STATE", NULL };
        struct table *tb;
        json_t *o;
        size_t i;

        if (x->out == OUT_JSON) {
                print_json(rates);
                return;
        }
        if (tty)
                fputs("\033[H\033[2J", stdout);
        printf("elvisctl top: rates over the last %.2f s%s\n\n",
               json_real_value(json_object_get(rates, "interval_s")), tty ? " (q quits)" : "");
        tb = table_new(hs);
        json_array_foreach(json_object_get(rates, "sidecores"), i, o)
                table_row(tb, "%lld|%lld|%lld|%.1f%%|%.0f|%s", num(o, "id"), num(o, "cpu"), num(o, "queues"),
                          100.0 * json_real_value(json_object_get(o, "load")), json_real_value(json_object_get(o, "pps")),
                          json_is_true(json_object_get(o, "sleeping")) ? "sleeping" : "polling");
        table_print(tb, stdout);
        table_free(tb);
        putchar('\n');
        tb = table_new(hq);
        json_array_foreach(json_object_get(rates, "queues"), i, o)
                table_row(tb, "%s|%s|%lld|%s|%.0f|%.0f|%.0f|%s|%s", str(o, "vm_name"), str(o, "device"),
                          num(o, "queue"), opt_int(json_object_get(o, "sidecore"), (char[16]){ 0 }, 16),
                          json_real_value(json_object_get(o, "pps")), json_real_value(json_object_get(o, "kicks_ps")),
                          json_real_value(json_object_get(o, "interrupts_ps")),
                          json_is_true(json_object_get(o, "polling")) ? "yes" : "no", str(o, "state"));
        table_print(tb, stdout);
        table_free(tb);
        fflush(stdout);
}

static struct termios saved_tty;
static bool tty_raw;

static void restore_tty(void)
{
        if (tty_raw)
                tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
        tty_raw = false;
}

static void on_term(int sig)
{
        restore_tty();
        signal(sig, SIG_DFL);
        raise(sig);
}

/* Waits up to ms for the interval to pass; true if the user pressed q. */
static bool wait_or_quit(int ms)
{
        struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
        char ch;

        if (!tty_raw) {
                struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
                nanosleep(&ts, NULL);
                return false;
        }
        if (poll(&p, 1, ms) > 0 && read(STDIN_FILENO, &ch, 1) == 1 && (ch == 'q' || ch == 'Q'))
                return true;
        return false;
}

static int cmd_top(struct ctx *x, int argc, char **argv)
{
        bool once = false, tty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
        double interval = 1.0;
        unsigned long count = 0, frames = 0;
        json_t *prev = NULL, *cur, *rates;
        int r;

        for (int i = 0; i < argc; i++) {
                if (!strcmp(argv[i], "--once")) {
                        once = true;
                } else if (!strcmp(argv[i], "--interval") && i + 1 < argc) {
                        char *end;
                        interval = strtod(argv[++i], &end);
                        if (*end || interval < 0.05 || interval > 3600)
                                return usage_error("--interval must be between 0.05 and 3600 seconds");
                } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
                        if (parse_uint(argv[++i], 1000000, &count) < 0 || !count)
                                return usage_error("--count must be a positive number");
                } else {
                        return usage_error("top: unknown option '%s'", argv[i]);
                }
        }
        if (once)
                count = 1;
        if (!tty && !count)
                count = 1;      /* without a terminal nobody can press q */
        if ((r = get(x, "/v1/stats", &prev)))
                return r;
        if (tty && !once) {
                struct termios raw;
                if (tcgetattr(STDIN_FILENO, &saved_tty) == 0) {
                        raw = saved_tty;
                        raw.c_lflag &= ~(unsigned)(ICANON | ECHO);
                        raw.c_cc[VMIN] = 0;
                        raw.c_cc[VTIME] = 0;
                        tty_raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
                        signal(SIGINT, on_term);
                        signal(SIGTERM, on_term);
                        atexit(restore_tty);
                }
        }
        for (;;) {
                if (wait_or_quit((int)(interval * 1000)))
                        break;
                if ((r = get(x, "/v1/stats", &cur)))
                        break;
                rates = elvis_top_rates(prev, cur);
                render_top(x, rates, tty && !once);
                json_decref(rates);
                json_decref(prev);
                prev = cur;
                if (count && ++frames >= count)
                        break;
        }
        json_decref(prev);
        restore_tty();
        return r;
}

static int cmd_metrics(struct ctx *x, int argc, char **argv)
{
        char *text;
        int r;

        if (argc)
                return usage_error("metrics takes no arguments");
        if ((r = client_text(&x->c, "/metrics", &text)))
                return r;
        fputs(text, stdout);
        free(text);
        return EXIT_OK;
}

static int cmd_complete(struct ctx *x, int argc, char **argv);

static const struct command commands[] = {
        { "status", NULL, cmd_status, "", "daemon health, version and data-plane state" },
        { "topology", NULL, cmd_topology, "", "CPUs with their roles, NUMA nodes and NICs" },
        { "vm", "list", cmd_vm_list, "", "list VMs" },
        { "vm", "add", cmd_vm_add,
          "NAME [--vcpus N] [--domain D] [--weight W] [--exitless auto|always|never] [--device SPEC]... [--dry-run]",
          "add a VM; SPEC is key=value,... with id, backend (tap|loopback|null), tap, queues" },
        { "vm", "show", cmd_vm_show, "ID|NAME", "show a VM" },
        { "vm", "set", cmd_vm_set, "ID|NAME key=value...", "change name, weight or exitless" },
        { "vm", "remove", cmd_vm_remove, "ID|NAME", "remove a VM" },
        { "sidecore", "list", cmd_sidecore_list, "", "list sidecores and the queues they serve" },
        { "sidecore", "add", cmd_sidecore_add, "[--cpu N]", "add a sidecore (on a free core unless --cpu)" },
        { "sidecore", "remove", cmd_sidecore_remove, "ID", "remove a sidecore; its queues move to the others" },
        { "policy", "show", cmd_policy_show, "", "show the global policy" },
        { "policy", "set", cmd_policy_set, "key=value...", "change policy parameters" },
        { "stats", NULL, cmd_stats, "", "data-plane counters per sidecore and queue" },
        { "top", NULL, cmd_top, "[--interval SEC] [--count N] [--once]",
          "refreshing view of load, packets/s, kicks/s, interrupts/s (q quits)" },
        { "metrics", NULL, cmd_metrics, "", "Prometheus metrics as served on /metrics" },
        { "__complete", NULL, cmd_complete, NULL, NULL },
        { NULL, NULL, NULL, NULL, NULL },
};

static int cmd_complete(struct ctx *x, int argc, char **argv)
{
        /* __complete            -> commands;  __complete CMD -> its subcommands */
        for (const struct command *c = commands; c->name; c++) {
                if (!c->help)
                        continue;
                if (argc == 0 && (c == commands || strcmp(c->name, c[-1].name)))
                        printf("%s\n", c->name);
                else if (argc >= 1 && !strcmp(c->name, argv[0]) && c->sub)
                        printf("%s\n", c->sub);
        }
        return EXIT_OK;
}

static void usage(FILE *f)
{
        fprintf(f, "Usage: elvisctl [-o table|json] [--socket PATH | --url URL [--token-file FILE] [--cacert FILE]] "
                   "COMMAND [ARGS]\n\nCommands:\n");
        for (const struct command *c = commands; c->name; c++) {
                char left[160];
                if (!c->help)
                        continue;
                snprintf(left, sizeof(left), "%s%s%s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "",
                         c->args[0] ? " " : "", c->args);
                if (strlen(left) > 34)
                        fprintf(f, "  %s\n  %-34s %s\n", left, "", c->help);
                else
                        fprintf(f, "  %-34s %s\n", left, c->help);
        }
        fprintf(f, "\nEnvironment: ELVIS_SOCKET (default /run/elvis/elvis.sock), ELVIS_TOKEN.\n"
                   "Exit status: 0 success, 1 the daemon refused or is unreachable, 2 usage error.\n");
}

static char *read_token(const char *path)
{
        FILE *f = fopen(path, "re");
        char buf[4096];
        size_t n;

        if (!f)
                return NULL;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        while (n && strchr(" \t\r\n", buf[n - 1]))
                buf[--n] = '\0';
        return strdup(buf);
}

int main(int argc, char **argv)
{
        struct ctx x = { .c = { .socket = getenv("ELVIS_SOCKET"), .token = getenv("ELVIS_TOKEN") } };
        char *token = NULL;
        int i = 1, r;

        if (!x.c.socket || !*x.c.socket)
                x.c.socket = "/run/elvis/elvis.sock";
        for (; i < argc && argv[i][0] == '-'; i++) {
                const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
                if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                        usage(stdout);
                        return EXIT_OK;
                } else if (!strcmp(a, "--version")) {
                        printf("elvisctl %s\n", ELVIS_VERSION);
                        return EXIT_OK;
                } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
                        if (!v || (strcmp(v, "table") && strcmp(v, "json")))
                                return usage_error("-o takes table or json");
                        x.out = strcmp(v, "json") ? OUT_TABLE : OUT_JSON;
                        i++;
                } else if (!strcmp(a, "--socket") && v) {
                        x.c.socket = v;
                        i++;
                } else if (!strcmp(a, "--url") && v) {
                        x.c.url = v;
                        i++;
                } else if (!strcmp(a, "--token-file") && v) {
                        free(token);
                        token = read_token(v);
                        if (!token)
                                return usage_error("cannot read token file %s: %s", v, strerror(errno));
                        x.c.token = token;
                        i++;
                } else if (!strcmp(a, "--cacert") && v) {
                        x.c.cacert = v;
                        i++;
                } else {
                        return usage_error("unknown option '%s'", a);
                }
        }
        if (i == argc) {
                usage(stderr);
                return EXIT_USAGE;
        }
        for (const struct command *c = commands; c->name; c++) {
                if (strcmp(c->name, argv[i]))
                        continue;
                if (!c->sub) {
                        r = c->fn(&x, argc - i - 1, argv + i + 1);
                        free(token);
                        return r;
                }
                if (i + 1 < argc && !strcmp(c->sub, argv[i + 1])) {
                        r = c->fn(&x, argc - i - 2, argv + i + 2);
                        free(token);
                        return r;
                }
        }
        free(token);
        for (const struct command *c = commands; c->name; c++)
                if (!strcmp(c->name, argv[i]) && c->sub)
                        return usage_error("'%s' needs a subcommand (see --help)", argv[i]);
        return usage_error("unknown command '%s'", argv[i]);
}
