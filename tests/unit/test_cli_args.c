/* Unit tests: elvisctl's key=value and device SPEC parsing against the schema's types. */
#include <criterion/criterion.h>

#include "../../cli/args.h"

#include <errno.h>
#include <string.h>

static char err[512];

static json_t *pairs(const struct elvis_arg_key *keys, const char *const *args, int *ret)
{
        json_t *obj = json_object();

        *ret = 0;
        for (; *args && *ret == 0; args++)
                *ret = elvis_arg_parse_pair(keys, "policy", *args, obj, err, sizeof(err));
        return obj;
}

Test(cli_args, policy_values_get_the_schema_types)
{
        const char *args[] = { "mode=dynamic", "budget_packets=64", "scale_down_idle=0.7", "improvement_threshold=1",
                               "min_sidecores=-1", NULL };
        int r;
        json_t *o = pairs(elvis_arg_policy_keys, args, &r);

        cr_assert_eq(r, 0, "%s", err);
        cr_assert_str_eq(json_string_value(json_object_get(o, "mode")), "dynamic");
        cr_assert(json_is_integer(json_object_get(o, "budget_packets")));
        cr_assert_eq(json_integer_value(json_object_get(o, "budget_packets")), 64);
        cr_assert(json_is_real(json_object_get(o, "scale_down_idle")));
        cr_assert_float_eq(json_real_value(json_object_get(o, "scale_down_idle")), 0.7, 1e-12);
        /* a whole number for a fractional key is still sent as a JSON number */
        cr_assert(json_is_real(json_object_get(o, "improvement_threshold")));
        /* ranges are the daemon's business: it answers 400 with the detail */
        cr_assert_eq(json_integer_value(json_object_get(o, "min_sidecores")), -1);
        json_decref(o);
}

Test(cli_args, unknown_policy_key_lists_the_valid_ones)
{
        const char *args[] = { "speed=11", NULL };
        int r;
        json_t *o = pairs(elvis_arg_policy_keys, args, &r);

        cr_assert_eq(r, -EINVAL);
        cr_assert(strstr(err, "unknown policy key 'speed'; valid keys: mode exitless min_sidecores"), "%s", err);
        cr_assert(strstr(err, "max_wait_us"), "every key is listed: %s", err);
        cr_assert_eq(json_object_size(o), 0);
        json_decref(o);
}

Test(cli_args, wrong_types_are_refused)
{
        static const char *const bad[] = { "budget_packets=lots", "budget_packets=", "budget_packets=1.5",
                                           "budget_packets= 5", "budget_packets=99999999999999999999",
                                           "scale_up_idle=nan", "scale_up_idle=inf", "scale_up_idle=0.1x",
                                           "scale_up_idle=1e999", "mode=fast", "exitless=", "=5", "mode", NULL };

        for (const char *const *b = bad; *b; b++) {
                json_t *o = json_object();
                cr_assert_eq(elvis_arg_parse_pair(elvis_arg_policy_keys, "policy", *b, o, err, sizeof(err)), -EINVAL,
                             "'%s' was accepted", *b);
                cr_assert_eq(json_object_size(o), 0, "'%s' left something behind", *b);
                json_decref(o);
        }
        json_t *o = json_object();
        elvis_arg_parse_pair(elvis_arg_policy_keys, "policy", "mode=fast", o, err, sizeof(err));
        cr_assert_str_eq(err, "mode must be one of: static dynamic");
        json_decref(o);
}

Test(cli_args, vm_keys_nest_the_policy)
{
        const char *args[] = { "name=web2", "weight=42", "exitless=never", NULL };
        int r;
        json_t *o = pairs(elvis_arg_vm_set_keys, args, &r), *pol;

        cr_assert_eq(r, 0, "%s", err);
        cr_assert_str_eq(json_string_value(json_object_get(o, "name")), "web2");
        pol = json_object_get(o, "policy");
        cr_assert_eq(json_integer_value(json_object_get(pol, "weight")), 42);
        cr_assert_str_eq(json_string_value(json_object_get(pol, "exitless")), "never");
        cr_assert_eq(json_object_size(o), 2);
        json_decref(o);
        cr_assert_null(elvis_arg_find(elvis_arg_vm_set_keys, "vcpus", 5), "vcpus cannot change");
        cr_assert_not_null(elvis_arg_find(elvis_arg_vm_add_keys, "vcpus=4", 5), "matches a prefix of the given length");
}

Test(cli_args, device_specs)
{
        json_t *d = NULL;

        cr_assert_eq(elvis_arg_parse_device("id=mgmt,backend=tap,tap=tapm,queues=2", &d, err, sizeof(err)), 0, "%s",
                     err);
        cr_assert_str_eq(json_string_value(json_object_get(d, "id")), "mgmt");
        cr_assert_str_eq(json_string_value(json_object_get(d, "backend")), "tap");
        cr_assert_str_eq(json_string_value(json_object_get(d, "tap")), "tapm");
        cr_assert_eq(json_integer_value(json_object_get(d, "queues")), 2);
        json_decref(d);
        d = NULL;
        cr_assert_eq(elvis_arg_parse_device("backend=null", &d, err, sizeof(err)), 0);
        json_decref(d);
        d = NULL;
        cr_assert_eq(elvis_arg_parse_device("type=blk,backend=file,path=/var/lib/elvis/images/a.img,readonly=true,"
                                            "queues=4", &d, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(json_string_value(json_object_get(d, "type")), "blk");
        cr_assert_str_eq(json_string_value(json_object_get(d, "backend")), "file");
        cr_assert_str_eq(json_string_value(json_object_get(d, "path")), "/var/lib/elvis/images/a.img");
        cr_assert(json_is_true(json_object_get(d, "readonly")));
        cr_assert_eq(json_integer_value(json_object_get(d, "queues")), 4);
        json_decref(d);
        d = NULL;
        cr_assert_eq(elvis_arg_parse_device("type=blk,backend=null,size=8G", &d, err, sizeof(err)), 0, "%s", err);
        cr_assert_str_eq(json_string_value(json_object_get(d, "size")), "8G", "the API parses sizes");
        json_decref(d);

        static const char *const bad[] = { "", "backend", "backend=tap,", "backend=foo", "speed=1", "queues=two",
                                           "type=disk", "readonly=perhaps", NULL };
        for (const char *const *b = bad; *b; b++) {
                d = NULL;
                cr_assert_eq(elvis_arg_parse_device(*b, &d, err, sizeof(err)), -EINVAL, "'%s' was accepted", *b);
                cr_assert_null(d, "ret set on failure for '%s'", *b);
        }
        elvis_arg_parse_device("speed=1", &d, err, sizeof(err));
        cr_assert_str_eq(err, "unknown --device key 'speed'; valid keys: id type backend tap queues adopt path readonly "
                              "size");
}

Test(cli_args, messages_fit_small_buffers)
{
        char small[16];
        json_t *o = json_object();

        cr_assert_eq(elvis_arg_parse_pair(elvis_arg_policy_keys, "policy", "nosuchkey=1", o, small, sizeof(small)),
                     -EINVAL);
        cr_assert_lt(strlen(small), sizeof(small));
        json_decref(o);
}

Test(cli_args, options_and_numbers)
{
        char *argv[] = { "--cpu", "9", "--cpu=11", "--cpus", "--count", NULL };
        const char *val = NULL;
        unsigned long n = 7;
        int i = 0;

        cr_assert_eq(elvis_arg_option(5, argv, &i, "--cpu", &val), 1);
        cr_assert_eq(i, 1, "moved past the value");
        cr_assert_str_eq(val, "9");
        i = 2;
        cr_assert_eq(elvis_arg_option(5, argv, &i, "--cpu", &val), 1);
        cr_assert_eq(i, 2);
        cr_assert_str_eq(val, "11");
        i = 3;
        cr_assert_eq(elvis_arg_option(5, argv, &i, "--cpu", &val), 0, "--cpus is another option");
        i = 4;
        cr_assert_eq(elvis_arg_option(5, argv, &i, "--count", &val), -1, "the value is missing");
        cr_assert_eq(elvis_arg_uint("42", 42, &n), 0);
        cr_assert_eq(n, 42);
        cr_assert_eq(elvis_arg_uint("43", 42, &n), -EINVAL);
        cr_assert_eq(elvis_arg_uint("-1", 42, &n), -EINVAL);
        cr_assert_eq(elvis_arg_uint(" 1", 42, &n), -EINVAL);
        cr_assert_eq(elvis_arg_uint("1x", 42, &n), -EINVAL);
        cr_assert_eq(elvis_arg_uint("", 42, &n), -EINVAL);
        cr_assert_eq(elvis_arg_uint("99999999999999999999999", ~0ul, &n), -EINVAL);
        cr_assert_eq(n, 42, "set only on success");
}
