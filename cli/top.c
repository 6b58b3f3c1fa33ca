/* Rate computation for elvisctl top: pure functions of two stats documents. */
#include "top.h"

#include <stdbool.h>
#include <string.h>

static double delta(const json_t *a, const json_t *b, const char *key)
{
        json_int_t x = json_integer_value(json_object_get(a, key));
        json_int_t y = json_integer_value(json_object_get(b, key));

        return y >= x ? (double)(y - x) : 0.0;
}

/* The object of array whose keys all equal obj's: sidecores by id, queues by VM, device, queue. */
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

static void copy(json_t *dst, const json_t *src, const char *key)
{
        json_t *v = json_object_get(src, key);

        json_object_set_new(dst, key, v ? json_incref(v) : json_null());
}

static double rate(const json_t *p, const json_t *o, const char *key, double secs)
{
        return p && secs > 0 ? delta(p, o, key) / secs : 0.0;
}

static json_t *sidecore_rates(const json_t *p, const json_t *o, double secs)
{
        double busy = p ? delta(p, o, "busy_ns") : 0, idle = p ? delta(p, o, "idle_ns") : 0;
        json_t *r = json_object();

        if (!r)
                return NULL;
        copy(r, o, "id");
        copy(r, o, "cpu");
        copy(r, o, "queues");
        copy(r, o, "sleeping");
        json_object_set_new(r, "load", json_real(busy + idle > 0 ? busy / (busy + idle) : 0.0));
        json_object_set_new(r, "pps", json_real(rate(p, o, "packets", secs)));
        return r;
}

static json_t *queue_rates(const json_t *p, const json_t *o, double secs)
{
        json_t *r = json_object();

        if (!r)
                return NULL;
        copy(r, o, "vm");
        copy(r, o, "vm_name");
        copy(r, o, "device");
        copy(r, o, "type");
        copy(r, o, "queue");
        copy(r, o, "sidecore");
        copy(r, o, "state");
        copy(r, o, "polling");
        json_object_set_new(r, "pps", json_real(rate(p, o, "rx_packets", secs) + rate(p, o, "tx_packets", secs)));
        json_object_set_new(r, "kicks_ps", json_real(rate(p, o, "kicks", secs)));
        json_object_set_new(r, "interrupts_ps", json_real(rate(p, o, "interrupts", secs)));
        return r;
}

json_t *elvis_top_rates(const json_t *prev, const json_t *cur)
{
        static const char *const sc_keys[] = { "id", NULL };
        static const char *const q_keys[] = { "vm", "device", "queue", NULL };
        double secs = delta(prev, cur, "timestamp_ns") / 1e9;
        json_t *out = json_object(), *scs = json_array(), *qs = json_array(), *o;
        size_t i;

        if (!out || !scs || !qs) {
                json_decref(out);
                json_decref(scs);
                json_decref(qs);
                return NULL;
        }
        json_array_foreach(json_object_get(cur, "sidecores"), i, o)
                json_array_append_new(scs, sidecore_rates(find(json_object_get(prev, "sidecores"), o, sc_keys), o,
                                                          secs));
        json_array_foreach(json_object_get(cur, "queues"), i, o)
                json_array_append_new(qs, queue_rates(find(json_object_get(prev, "queues"), o, q_keys), o, secs));
        json_object_set_new(out, "interval_s", json_real(secs));
        json_object_set_new(out, "available", json_boolean(json_is_true(json_object_get(cur, "available"))));
        copy(out, cur, "dataplane");
        json_object_set_new(out, "sidecores", scs);
        json_object_set_new(out, "queues", qs);
        return out;
}
