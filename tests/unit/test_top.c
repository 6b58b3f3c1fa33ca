/* Unit tests: elvisctl top's rate computation over two stats documents. */
#include <criterion/criterion.h>

#include "../../cli/top.h"

static json_t *stats(long long ts, long long busy, long long idle, long long pkts, long long kicks, long long tx)
{
        return json_pack("{s:I, s:[{s:i, s:i, s:I, s:I, s:I, s:i, s:b}], s:[{s:i, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:b, s:s}]}",
                         "timestamp_ns", (json_int_t)ts, "sidecores", "id", 1, "cpu", 3, "busy_ns", (json_int_t)busy,
                         "idle_ns", (json_int_t)idle, "packets", (json_int_t)pkts, "queues", 1, "sleeping", 0, "queues",
                         "vm", 7, "vm_name", "web", "device", "net0", "queue", 0, "sidecore", 1, "tx_packets",
                         (json_int_t)tx, "rx_packets", (json_int_t)0, "kicks", (json_int_t)kicks, "interrupts",
                         (json_int_t)(kicks / 2), "polling", 1, "state", "ready");
}

Test(top, rates_over_the_interval)
{
        json_t *a = stats(1000000000, 0, 0, 0, 0, 0);
        json_t *b = stats(3000000000, 500000000, 1500000000, 2000000, 400, 1000000);
        json_t *r = elvis_top_rates(a, b), *sc, *q;

        cr_assert_float_eq(json_real_value(json_object_get(r, "interval_s")), 2.0, 1e-9);
        sc = json_array_get(json_object_get(r, "sidecores"), 0);
        cr_assert_float_eq(json_real_value(json_object_get(sc, "load")), 0.25, 1e-9);
        cr_assert_float_eq(json_real_value(json_object_get(sc, "pps")), 1e6, 1e-3);
        q = json_array_get(json_object_get(r, "queues"), 0);
        cr_assert_float_eq(json_real_value(json_object_get(q, "pps")), 5e5, 1e-3);
        cr_assert_float_eq(json_real_value(json_object_get(q, "kicks_ps")), 200, 1e-9);
        cr_assert_float_eq(json_real_value(json_object_get(q, "interrupts_ps")), 100, 1e-9);
        cr_assert_str_eq(json_string_value(json_object_get(q, "vm_name")), "web");
        json_decref(a);
        json_decref(b);
        json_decref(r);
}

Test(top, counters_going_backwards_count_as_zero)
{
        json_t *a = stats(1000000000, 900, 100, 50000, 10, 40000);
        json_t *b = stats(2000000000, 100, 100, 10, 1, 5);     /* the daemon restarted */
        json_t *r = elvis_top_rates(a, b);

        cr_assert_float_eq(json_real_value(json_object_get(json_array_get(json_object_get(r, "queues"), 0), "pps")), 0,
                           1e-9);
        cr_assert_float_eq(json_real_value(json_object_get(json_array_get(json_object_get(r, "sidecores"), 0), "pps")),
                           0, 1e-9);
        json_decref(a);
        json_decref(b);
        json_decref(r);
}

Test(top, new_objects_have_no_rate_yet)
{
        json_t *a = json_pack("{s:I, s:[], s:[]}", "timestamp_ns", (json_int_t)1, "sidecores", "queues");
        json_t *b = stats(1000000001, 10, 10, 10, 10, 10);
        json_t *r = elvis_top_rates(a, b);

        cr_assert_eq(json_array_size(json_object_get(r, "queues")), 1);
        cr_assert_float_eq(json_real_value(json_object_get(json_array_get(json_object_get(r, "queues"), 0), "pps")), 0,
                           1e-9);
        json_decref(a);
        json_decref(b);
        json_decref(r);
}
