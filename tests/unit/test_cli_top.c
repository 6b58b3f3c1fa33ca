/* Unit tests: elvisctl top's rates at the edges (no data plane, clock not advancing,
 * objects appearing and vanishing). The main arithmetic is covered by test_top.c. */
#include <criterion/criterion.h>

#include "../../cli/top.h"

static json_t *doc(const char *text)
{
        json_error_t e;
        json_t *j = json_loads(text, 0, &e);

        cr_assert_not_null(j, "%s", e.text);
        return j;
}

static double rate(const json_t *r, const char *array, size_t i, const char *key)
{
        return json_real_value(json_object_get(json_array_get(json_object_get(r, array), i), key));
}

Test(cli_top, no_data_plane_gives_empty_tables)
{
        json_t *a = doc("{\"dataplane\":\"kernel\",\"available\":false,\"timestamp_ns\":0,"
                        "\"sidecores\":[],\"queues\":[],\"vms\":[]}");
        json_t *r = elvis_top_rates(a, a);

        cr_assert_not_null(r);
        cr_assert(json_is_false(json_object_get(r, "available")));
        cr_assert_str_eq(json_string_value(json_object_get(r, "dataplane")), "kernel");
        cr_assert_eq(json_array_size(json_object_get(r, "sidecores")), 0);
        cr_assert_eq(json_array_size(json_object_get(r, "queues")), 0);
        json_decref(a);
        json_decref(r);
}

Test(cli_top, clock_that_did_not_advance_gives_zero_rates)
{
        json_t *a = doc("{\"available\":true,\"timestamp_ns\":5,\"sidecores\":[{\"id\":1,\"packets\":0,"
                        "\"busy_ns\":0,\"idle_ns\":0}],\"queues\":[{\"vm\":1,\"device\":\"net0\",\"queue\":0,"
                        "\"rx_packets\":0,\"tx_packets\":0,\"kicks\":0,\"interrupts\":0}]}");
        json_t *b = doc("{\"available\":true,\"timestamp_ns\":5,\"sidecores\":[{\"id\":1,\"packets\":100,"
                        "\"busy_ns\":30,\"idle_ns\":10}],\"queues\":[{\"vm\":1,\"device\":\"net0\",\"queue\":0,"
                        "\"rx_packets\":7,\"tx_packets\":9,\"kicks\":3,\"interrupts\":4}]}");
        json_t *r = elvis_top_rates(a, b);

        cr_assert_float_eq(json_real_value(json_object_get(r, "interval_s")), 0, 1e-12);
        cr_assert_float_eq(rate(r, "sidecores", 0, "pps"), 0, 1e-12);
        cr_assert_float_eq(rate(r, "queues", 0, "pps"), 0, 1e-12);
        cr_assert_float_eq(rate(r, "queues", 0, "kicks_ps"), 0, 1e-12);
        /* load is a ratio of two deltas and needs no clock */
        cr_assert_float_eq(rate(r, "sidecores", 0, "load"), 0.75, 1e-12);
        json_decref(a);
        json_decref(b);
        json_decref(r);
}

Test(cli_top, queues_are_matched_by_vm_device_and_queue)
{
        json_t *a = doc("{\"timestamp_ns\":0,\"sidecores\":[],\"queues\":["
                        "{\"vm\":1,\"device\":\"net0\",\"queue\":1,\"rx_packets\":1000,\"tx_packets\":0},"
                        "{\"vm\":1,\"device\":\"net0\",\"queue\":0,\"rx_packets\":0,\"tx_packets\":0},"
                        "{\"vm\":2,\"device\":\"net0\",\"queue\":0,\"rx_packets\":50,\"tx_packets\":0}]}");
        json_t *b = doc("{\"timestamp_ns\":1000000000,\"sidecores\":[],\"queues\":["
                        "{\"vm\":1,\"device\":\"net0\",\"queue\":0,\"rx_packets\":10,\"tx_packets\":5,"
                        "\"vm_name\":\"a\",\"state\":\"ready\",\"polling\":true,\"sidecore\":null},"
                        "{\"vm\":1,\"device\":\"net0\",\"queue\":1,\"rx_packets\":1100,\"tx_packets\":0}]}");
        json_t *r = elvis_top_rates(a, b), *q0;

        cr_assert_eq(json_array_size(json_object_get(r, "queues")), 2, "VM 2's queue vanished");
        cr_assert_float_eq(rate(r, "queues", 0, "pps"), 15, 1e-9);
        cr_assert_float_eq(rate(r, "queues", 1, "pps"), 100, 1e-9);
        q0 = json_array_get(json_object_get(r, "queues"), 0);
        cr_assert_str_eq(json_string_value(json_object_get(q0, "vm_name")), "a");
        cr_assert_str_eq(json_string_value(json_object_get(q0, "state")), "ready");
        cr_assert(json_is_true(json_object_get(q0, "polling")));
        cr_assert(json_is_null(json_object_get(q0, "sidecore")), "an unserved queue stays null");
        json_decref(a);
        json_decref(b);
        json_decref(r);
}

Test(cli_top, missing_documents_do_not_crash)
{
        json_t *b = doc("{\"timestamp_ns\":1,\"sidecores\":[{\"id\":1}],\"queues\":[{\"vm\":1}]}");
        json_t *r = elvis_top_rates(NULL, b);

        cr_assert_not_null(r);
        cr_assert_float_eq(rate(r, "sidecores", 0, "load"), 0, 1e-12);
        json_decref(r);
        r = elvis_top_rates(b, NULL);
        cr_assert_eq(json_array_size(json_object_get(r, "queues")), 0);
        json_decref(r);
        json_decref(b);
}
