/* elvisctl's arguments: options and numbers, and key=value pairs checked against the API
 * schema's types (pure, no I/O). */
#pragma once
#include <jansson.h>
#include <stddef.h>

enum elvis_arg_type {
        ELVIS_ARG_STRING,
        ELVIS_ARG_ENUM,
        ELVIS_ARG_INT,          /* JSON integer */
        ELVIS_ARG_NUMBER,       /* JSON number, may be fractional */
        ELVIS_ARG_BOOL,         /* yes/no, true/false, 1/0 */
};

struct elvis_arg_key {
        const char *name;
        enum elvis_arg_type type;
        const char *parent;             /* object the key belongs in ("policy"), NULL for the top level */
        const char *const *choices;     /* ELVIS_ARG_ENUM: NULL-terminated */
        const char *json;               /* the JSON field when it is not spelled like name */
};

/* Key sets, each ending with a { NULL } entry; they follow api/openapi.yaml. Only types
 * and enums are checked here: ranges stay with the daemon, the one place that knows them. */
extern const struct elvis_arg_key elvis_arg_policy_keys[];     /* Policy */
extern const struct elvis_arg_key elvis_arg_vm_add_keys[];     /* vm add --KEY VALUE */
extern const struct elvis_arg_key elvis_arg_vm_set_keys[];     /* VmPatch */
extern const struct elvis_arg_key elvis_arg_device_keys[];     /* DeviceCreate */

/* The key called name (len bytes), or NULL. */
const struct elvis_arg_key *elvis_arg_find(const struct elvis_arg_key *keys, const char *name, size_t len);
/* Converts value to k's type and stores it in obj (under k->parent when set, creating it).
 * Returns 0, or -EINVAL with a one-line message in err. */
int elvis_arg_parse_value(const struct elvis_arg_key *k, const char *value, json_t *obj, char *err, size_t size);
/* Parses one "key=value" against keys; what names the key set in messages ("policy").
 * Unknown keys are refused with the list of valid ones. */
int elvis_arg_parse_pair(const struct elvis_arg_key *keys, const char *what, const char *arg, json_t *obj, char *err,
                         size_t size);
/* Parses a device SPEC "key=value,key=value" into a new DeviceCreate object in *ret. */
int elvis_arg_parse_device(const char *spec, json_t **ret, char *err, size_t size);
/* Matches argv[*i] as "NAME VALUE" or "NAME=VALUE". Returns 1 and the value in *ret (moving
 * *i past it), 0 when argv[*i] is another word, -1 when the value is missing. */
int elvis_arg_option(int argc, char **argv, int *i, const char *name, const char **ret);
/* Parses a decimal number from 0 to max, without sign, blanks or suffix. Returns 0, or -EINVAL. */
int elvis_arg_uint(const char *s, unsigned long max, unsigned long *ret);
