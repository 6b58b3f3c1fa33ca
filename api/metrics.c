/* Prometheus text exposition (format 0.0.4) of the stats document. */
#include "internal.h"

#include "../daemon/control.h"
#include "../daemon/manager.h"

#include <elvis/version.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct metric {
        const char *key;        /* field in the stats object */
        const char *name;
        const char *type;       /* counter or gauge */
        double scale;           /* ns -> s */
        const char *help;
};

static const struct metric sidecore_metrics[] = {
        { "queues", "elvis_sidecore_queues", "gauge", 1, "Queue pairs served by the sidecore." },
        { "sleeping", "elvis_sidecore_sleeping", "gauge", 1, "1 when every queue is in notification mode." },
        { "load", "elvis_sidecore_load", "gauge", 1, "Busy share of the sidecore's time since it started." },
        { "polls", "elvis_sidecore_polls_total", "counter", 1, "Ring polls." },
        { "empty_polls", "elvis_sidecore_empty_polls_total", "counter", 1, "Ring polls that found no work." },
        { "busy_ns", "elvis_sidecore_busy_seconds_total", "counter", 1e-9, "Time spent processing buffers." },
        { "idle_ns", "elvis_sidecore_idle_seconds_total", "counter", 1e-9, "Time spent polling empty rings or asleep." },
        { "packets", "elvis_sidecore_packets_total", "counter", 1, "Packets moved." },
        { "bytes", "elvis_sidecore_bytes_total", "counter", 1, "Bytes moved." },
        { "wakeups", "elvis_sidecore_wakeups_total", "counter", 1, "Wake-ups from sleep by a guest kick." },
        /* user data plane only: absent where the data plane cannot measure it */
        { "stolen_ns", "elvis_sidecore_stolen_seconds_total", "counter", 1e-9,
          "Time the sidecore was ready to run while another task held its CPU." },
        { "rounds", "elvis_sidecore_rounds_total", "counter", 1, "Passes of the sidecore over its queues." },
        { "empty_rounds", "elvis_sidecore_empty_rounds_total", "counter", 1,
          "Passes of the sidecore over its queues that moved nothing." },
};

static const struct metric queue_metrics[] = {
        { "polling", "elvis_queue_polling", "gauge", 1, "1 while guest notifications are suppressed and the queue is polled." },
        { "rx_packets", "elvis_queue_rx_packets_total", "counter", 1, "Packets delivered to the guest." },
        { "rx_bytes", "elvis_queue_rx_bytes_total", "counter", 1, "Bytes delivered to the guest." },
        { "tx_packets", "elvis_queue_tx_packets_total", "counter", 1, "Packets sent by the guest." },
        { "tx_bytes", "elvis_queue_tx_bytes_total", "counter", 1, "Bytes sent by the guest." },
        { "kicks", "elvis_queue_kicks_total", "counter", 1, "Guest-to-host notifications (exits in a real VM)." },
        { "interrupts", "elvis_queue_interrupts_total", "counter", 1, "Host-to-guest notifications sent." },
        { "polls", "elvis_queue_polls_total", "counter", 1, "Polls of the queue's rings." },
        { "empty_polls", "elvis_queue_empty_polls_total", "counter", 1, "Polls that found no work." },
        { "busy_ns", "elvis_queue_busy_seconds_total", "counter", 1e-9, "Data-plane time spent on the queue." },
        { "wait_ns", "elvis_queue_wait_seconds_total", "counter", 1e-9, "Total time buffers waited before pickup." },
        { "wait_samples", "elvis_queue_wait_samples_total", "counter", 1, "Buffers whose wait was measured." },
        { "errors", "elvis_queue_errors_total", "counter", 1, "Ring errors (malformed descriptors and the like)." },
        { "drops", "elvis_queue_drops_total", "counter", 1,
          "Frames discarded: a bad size, no room in the guest's buffer, or in flight when a ring stopped." },
        { "signals_deferred", "elvis_queue_signals_deferred_total", "counter", 1,
          "Guest notifications the VMM's eventfd could not take at once (retried later)." },
};

/* gauges over a queue's "state": 1 in that state, else 0 */
static const struct {
        const char *state;
        const char *name;
        const char *help;
} queue_states[] = {
        { "ready", "elvis_queue_connected", "1 while a front end drives the queue." },
        { "error", "elvis_queue_error", "1 while the queue is stopped after a bad ring (until its front end resets it)." },
};

static const struct metric vm_metrics[] = {
        { "weight", "elvis_vm_weight", "gauge", 1, "Fair-share weight of the VM." },
        { "busy_ns", "elvis_vm_busy_seconds_total", "counter", 1e-9, "Shared sidecore time consumed by the VM." },
        { "packets", "elvis_vm_packets_total", "counter", 1, "Packets moved for the VM." },
        { "bytes", "elvis_vm_bytes_total", "counter", 1, "Bytes moved for the VM." },
};

static void label_escape(FILE *f, const char *s)
{
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        fprintf(f, "\\%c", *s);
                else if (*s == '\n')
                        fputs("\\n", f);
                else
                        fputc(*s, f);
        }
}

static double number(json_t *v)
{
        if (json_is_boolean(v))
                return json_is_true(v) ? 1 : 0;
        return json_number_value(v);
}

typedef void (*labels_fn)(FILE *f, json_t *obj);

static void sidecore_labels(FILE *f, json_t *o)
{
        fprintf(f, "sidecore=\"%lld\",cpu=\"%lld\"", (long long)json_integer_value(json_object_get(o, "id")),
                (long long)json_integer_value(json_object_get(o, "cpu")));
}

static void queue_labels(FILE *f, json_t *o)
{
        json_t *sc = json_object_get(o, "sidecore");

        fprintf(f, "vm=\"%lld\",vm_name=\"", (long long)json_integer_value(json_object_get(o, "vm")));
        label_escape(f, json_string_value(json_object_get(o, "vm_name")));
        fputs("\",device=\"", f);
        label_escape(f, json_string_value(json_object_get(o, "device")));
        /* net or blk: a disk's rx/tx are reads/writes, so dashboards split by it */
        fputs("\",type=\"", f);
        label_escape(f, json_is_string(json_object_get(o, "type")) ? json_string_value(json_object_get(o, "type")) : "net");
        fprintf(f, "\",queue=\"%lld\",sidecore=\"", (long long)json_integer_value(json_object_get(o, "queue")));
        if (json_is_integer(sc))
                fprintf(f, "%lld", (long long)json_integer_value(sc));
        fputc('"', f);
}

static void vm_labels(FILE *f, json_t *o)
{
        fprintf(f, "vm=\"%lld\",vm_name=\"", (long long)json_integer_value(json_object_get(o, "id")));
        label_escape(f, json_string_value(json_object_get(o, "name")));
        fputc('"', f);
}

static void family(FILE *f, const struct metric *ms, size_t n, json_t *array, labels_fn labels)
{
        for (size_t i = 0; i < n; i++) {
                size_t k;
                json_t *o;

                fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", ms[i].name, ms[i].help, ms[i].name, ms[i].type);
                json_array_foreach(array, k, o) {
                        json_t *v = json_object_get(o, ms[i].key);

                        if (!v)
                                continue;
                        fprintf(f, "%s{", ms[i].name);
                        labels(f, o);
                        fprintf(f, "} %.9g\n", number(v) * ms[i].scale);
                }
        }
}

static void queue_state_family(FILE *f, json_t *queues)
{
        for (size_t i = 0; i < sizeof(queue_states) / sizeof(queue_states[0]); i++) {
                size_t k;
                json_t *o;

                fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", queue_states[i].name, queue_states[i].help,
                        queue_states[i].name);
                json_array_foreach(queues, k, o) {
                        const char *state = json_string_value(json_object_get(o, "state"));

                        fprintf(f, "%s{", queue_states[i].name);
                        queue_labels(f, o);
                        fprintf(f, "} %d\n", state && strcmp(state, queue_states[i].state) == 0);
                }
        }
}

static void decisions(FILE *f, struct elvis_manager *m)
{
        json_t *a = elvis_control_decisions(m), *o;
        size_t i;

        fputs("# HELP elvis_decisions_total Control-loop plans, per policy, applied or failed.\n"
              "# TYPE elvis_decisions_total counter\n", f);
        json_array_foreach(a, i, o) {
                const char *policy = json_string_value(json_object_get(o, "policy"));

                for (int applied = 1; applied >= 0; applied--) {
                        fputs("elvis_decisions_total{policy=\"", f);
                        label_escape(f, policy);
                        fprintf(f, "\",outcome=\"%s\"} %lld\n", applied ? "applied" : "failed",
                                (long long)json_integer_value(json_object_get(o, applied ? "applied" : "failed")));
                }
        }
        json_decref(a);
}

char *elvis_metrics_render(struct elvis_manager *m, const json_t *stats)
{
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);

        if (!f)
                return NULL;
        fprintf(f, "# HELP elvis_info Build and data-plane information.\n# TYPE elvis_info gauge\n"
                   "elvis_info{version=\"%s\",dataplane=\"%s\"} 1\n", ELVIS_VERSION, m->dp_kind);
        fprintf(f, "# HELP elvis_dataplane_up 1 when the data plane is running.\n# TYPE elvis_dataplane_up gauge\n"
                   "elvis_dataplane_up %d\n", json_is_true(json_object_get(stats, "available")) ? 1 : 0);
        fprintf(f, "# HELP elvis_vms Managed VMs.\n# TYPE elvis_vms gauge\nelvis_vms %u\n", elvis_manager_state(m)->nvms);
        fprintf(f, "# HELP elvis_sidecores Sidecores in the state.\n# TYPE elvis_sidecores gauge\nelvis_sidecores %u\n",
                elvis_manager_state(m)->nsidecores);
        family(f, sidecore_metrics, sizeof(sidecore_metrics) / sizeof(sidecore_metrics[0]),
               json_object_get(stats, "sidecores"), sidecore_labels);
        family(f, queue_metrics, sizeof(queue_metrics) / sizeof(queue_metrics[0]), json_object_get(stats, "queues"),
               queue_labels);
        queue_state_family(f, json_object_get(stats, "queues"));
        family(f, vm_metrics, sizeof(vm_metrics) / sizeof(vm_metrics[0]), json_object_get(stats, "vms"), vm_labels);
        decisions(f, m);
        if (fclose(f) != 0) {
                free(buf);
                return NULL;
        }
        return buf;
}

char *elvis_metrics_scrape(struct elvis_manager *m)
{
        json_t *stats = elvis_manager_stats(m);
        char *text = stats ? elvis_metrics_render(m, stats) : NULL;

        json_decref(stats);
        return text;
}
