/* Rate computation for elvisctl top. */
#include "top.h"

#include <stdbool.h>
#include <string.h>

static double delta(const json_t *a, const json_t *b, const char *key)
{
        json_int_t x = json_integer_value(json_object_get(a, key));
        json_int_t y = json_integer_value(json_object_get(b, key));

        return y >= x ? (double)(y - x) : 0.0;
}

static const json_t *find(const json_t *array, const json_t *obj, const char *const *keys)
{
        size_t i;
        json_t *o;

        json_array_foreach(array, i, o) {
                bool same = true;
                for (const char *const *k = keys; *k && same; k++)
                        same = json_equal(json_object_get(o, *k), json_object_get(obj, *k));
                if (same)
                        return o;
        }
        return NULL;
}

json_t *elvis_top_rates(const json_t *prev, const json_t *cur)
{
        static const char *const sc_keys[] = { "id", NULL };
        static const char *const q_keys[] = { "vm", "device", "queue", NULL };
        double secs = delta(prev, cur, "timestamp_ns") / 1e9;
        json_t *out = json_object(), *scs = json_array(), *qs = json_array(), *o;
        size_t i;

        if (secs <= 0)
                secs = 1e-9;
        json_array_foreach(json_object_get(cur, "sidecores"), i, o) {
                const json_t *p = find(json_object_get(prev, "sidecores"), o, sc_keys);
                double busy = p ? delta(p, o, "busy_ns") : 0, idle = p ? delta(p, o, "idle_ns") : 0;
                json_array_append_new(scs, json_pack("{s:O?, s:O?, s:f, s:f, s:O?, s:O?}", "id", json_object_get(o, "id"),
                                                     "cpu", json_object_get(o, "cpu"), "load",
                                                     busy + idle > 0 ? busy / (busy + idle) : 0.0, "pps",
                                                     p ? delta(p, o, "packets") / secs : 0.0, "queues",
                                                     json_object_get(o, "queues"), "sleeping",
                                                     json_object_get(o, "sleeping")));
        }
        json_array_foreach(json_object_get(cur, "queues"), i, o) {
                const json_t *p = find(json_object_get(prev, "queues"), o, q_keys);
                double pkts = p ? delta(p, o, "rx_packets") + delta(p, o, "tx_packets") : 0;
                json_array_append_new(qs, json_pack("{s:O?, s:O?, s:O?, s:O?, s:f, s:f, s:f, s:O?, s:O?}", "vm_name",
                                                    json_object_get(o, "vm_name"), "device", json_object_get(o, "device"),
                                                    "queue", json_object_get(o, "queue"), "sidecore",
                                                    json_object_get(o, "sidecore"), "pps", pkts / secs, "kicks_ps",
                                                    p ? delta(p, o, "kicks") / secs : 0.0, "interrupts_ps",
                                                    p ? delta(p, o, "interrupts") / secs : 0.0, "polling",
                                                    json_object_get(o, "polling"), "state", json_object_get(o, "state")));
        }
        json_object_set_new(out, "interval_s", json_real(secs));
        json_object_set_new(out, "sidecores", scs);
        json_object_set_new(out, "queues", qs);
        return out;
}
