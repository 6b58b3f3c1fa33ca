/* elvisctl's commands about the host and the daemon: status, topology, stats, metrics. */
#include "cmd.h"
#include "table.h"

#include <stdlib.h>
#include <string.h>

static void print_libvirt_health(const json_t *lv)
{
        const char *uri = elvis_json_str(lv, "uri"), *err = json_string_value(json_object_get(lv, "error"));

        if (!json_is_object(lv))
                return;
        if (!strcmp(uri, "none"))
                printf("libvirt:    not used (libvirt-uri none)\n");
        else
                printf("libvirt:    %s, %s%s%s\n", uri, json_is_true(json_object_get(lv, "connected")) ? "connected" :
                       "not connected", err ? ": " : "", err ? err : "");
        if (!strcmp(elvis_json_str(lv, "vcpu_pinning"), "respect"))
                printf("pinning:    vCPUs are pinned by the orchestrator (vcpu-pinning respect)\n");
}

/* status --ready: exit 0 when the daemon is ready (its data plane runs), else the
 * daemon's 503 as any refused request (exit 1). */
static int status_ready(struct elvis_ctl *x)
{
        json_t *doc;
        int r;

        if ((r = elvis_ctl_get(x, "/v1/health/ready", &doc)))
                return r;
        if (x->out == ELVIS_OUT_JSON)
                elvis_json_print(doc);
        else
                printf("ready: %s\n", elvis_json_str(doc, "detail"));
        json_decref(doc);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_status(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *h, *dp, *w;
        size_t i;
        int r;

        if (argc == 1 && !strcmp(argv[0], "--ready"))
                return status_ready(x);
        if (argc)
                return elvis_ctl_usage_error(x, "status: unexpected argument '%s'", argv[0]);
        if ((r = elvis_ctl_show(x, argc, "/v1/health", &h)) || !h)
                return r;
        dp = json_object_get(h, "dataplane");
        printf("status:     %s\nversion:    %s\nuptime:     %lld s\ndata plane: %s (%s): %s\n"
               "VMs:        %lld\nsidecores:  %lld\ntopology:   %s\n",
               elvis_json_str(h, "status"), elvis_json_str(h, "version"), elvis_json_int(h, "uptime_s"),
               elvis_json_str(dp, "kind"), elvis_json_str(dp, "state"), elvis_json_str(dp, "detail"),
               elvis_json_int(h, "vms"), elvis_json_int(h, "sidecores"), elvis_json_str(h, "topology"));
        print_libvirt_health(json_object_get(h, "libvirt"));
        json_array_foreach(json_object_get(h, "warnings"), i, w)
                printf("warning:    %s\n", elvis_json_str(w, "message"));
        json_decref(h);
        return ELVIS_EXIT_OK;
}

/* "vcpu of web1 (VM 1)", "sidecore 3", or the role as it is */
static void cpu_role(const json_t *cpu, char *buf, size_t size)
{
        const char *role = elvis_json_str(cpu, "role");

        if (!strcmp(role, "vcpu"))
                snprintf(buf, size, "vcpu of %s (VM %lld)", elvis_json_str(cpu, "vm_name"), elvis_json_int(cpu, "vm"));
        else if (!strcmp(role, "sidecore"))
                snprintf(buf, size, "sidecore %lld", elvis_json_int(cpu, "sidecore"));
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
               elvis_json_str(ex, "posted_interrupts"), src ? " (" : "", src ? src : "", src ? ")" : "",
               json_is_integer(hp) ? ELVIS_INT_TEXT(hp) : elvis_json_str(ex, "halt_poll_ns"),
               elvis_json_str(ex, "isolated_cpus")[0] ? elvis_json_str(ex, "isolated_cpus") : "none",
               elvis_json_str(ex, "nohz_full_cpus")[0] ? elvis_json_str(ex, "nohz_full_cpus") : "none");
        json_array_foreach(json_object_get(ex, "sidecores"), i, sc) {
                int k;
                if (!json_is_false(json_object_get(sc, "isolated")))
                        continue;
                k = snprintf(shared + n, sizeof(shared) - n, "%s%lld", n ? "," : "", elvis_json_int(sc, "cpu"));
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
        snprintf(buf, size, "%s:%s", elvis_json_str(nic, "vendor"), elvis_json_str(nic, "device"));
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

int elvis_cmd_topology(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *t;
        int r;

        if ((r = elvis_ctl_show(x, argc, "/v1/topology", &t)) || !t)
                return r;
        printf("source %s, %lld package(s), %zu NUMA node(s); ELVIS may use CPUs %s, reserved %s\n",
               elvis_json_str(t, "source"), elvis_json_int(t, "packages"),
               json_array_size(json_object_get(t, "numa_nodes")), elvis_json_str(t, "allowed_cpus"),
               elvis_json_str(t, "reserved_cpus"));
        print_exitless(json_object_get(t, "exitless"));
        putchar('\n');
        elvis_table_render(cpu_columns, json_object_get(t, "cpus"), stdout);
        if (json_array_size(json_object_get(t, "nics"))) {
                putchar('\n');
                elvis_table_render(nic_columns, json_object_get(t, "nics"), stdout);
        }
        json_decref(t);
        return ELVIS_EXIT_OK;
}

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
        { "TYPE", ELVIS_COL_STR, .key = "type" },
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

int elvis_cmd_stats(struct elvis_ctl *x, int argc, char **argv)
{
        json_t *s;
        int r;

        if ((r = elvis_ctl_show(x, argc, "/v1/stats", &s)) || !s)
                return r;
        if (!json_is_true(json_object_get(s, "available")))
                printf("the %s data plane is not running: no counters\n\n", elvis_json_str(s, "dataplane"));
        elvis_table_render(stats_sidecore_columns, json_object_get(s, "sidecores"), stdout);
        putchar('\n');
        elvis_table_render(stats_queue_columns, json_object_get(s, "queues"), stdout);
        json_decref(s);
        return ELVIS_EXIT_OK;
}

int elvis_cmd_metrics(struct elvis_ctl *x, int argc, char **argv)
{
        char *text;
        int r;

        if (argc)
                return elvis_ctl_usage_error(x, "metrics takes no arguments");
        if ((r = elvis_client_text(&x->c, "/metrics", &text)) < 0)
                return elvis_ctl_api_error(x, r);
        fputs(text, stdout);
        free(text);
        return ELVIS_EXIT_OK;
}
