/* Argument parsing for elvisctl: options, numbers, and typed key=value pairs driven by key
 * tables that mirror the API schema. */
#include "args.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const exitless_modes[] = { "auto", "always", "never", NULL };
static const char *const policy_modes[] = { "static", "dynamic", NULL };
static const char *const backends[] = { "tap", "loopback", "null", "file", NULL };
static const char *const device_types[] = { "net", "blk", NULL };

/* In the schema's order, which is also the order `policy show` prints. */
const struct elvis_arg_key elvis_arg_policy_keys[] = {
        { "mode", ELVIS_ARG_ENUM, NULL, policy_modes, NULL },
        { "exitless", ELVIS_ARG_ENUM, NULL, exitless_modes, NULL },
        { "min_sidecores", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "max_sidecores", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "interval_ms", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "budget_packets", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "budget_bytes", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "poll_start_rate", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "poll_stop_idle_ms", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "vanilla_busyloop_us", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "scale_up_idle", ELVIS_ARG_NUMBER, NULL, NULL, NULL },
        { "scale_down_idle", ELVIS_ARG_NUMBER, NULL, NULL, NULL },
        { "improvement_threshold", ELVIS_ARG_NUMBER, NULL, NULL, NULL },
        { "rebalance_interval_ms", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "cooldown_ms", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "max_wait_us", ELVIS_ARG_INT, NULL, NULL, NULL },
        { NULL, 0, NULL, NULL, NULL },
};

const struct elvis_arg_key elvis_arg_vm_add_keys[] = {
        { "vcpus", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "domain", ELVIS_ARG_STRING, NULL, NULL, NULL },
        { "weight", ELVIS_ARG_INT, "policy", NULL, NULL },
        { "exitless", ELVIS_ARG_ENUM, "policy", exitless_modes, NULL },
        { "vmm-uid", ELVIS_ARG_INT, NULL, NULL, "vmm_uid" },
        { "vmm-gid", ELVIS_ARG_INT, NULL, NULL, "vmm_gid" },
        { NULL, 0, NULL, NULL, NULL },
};

const struct elvis_arg_key elvis_arg_vm_set_keys[] = {
        { "name", ELVIS_ARG_STRING, NULL, NULL, NULL },
        { "weight", ELVIS_ARG_INT, "policy", NULL, NULL },
        { "exitless", ELVIS_ARG_ENUM, "policy", exitless_modes, NULL },
        { NULL, 0, NULL, NULL, NULL },
};

const struct elvis_arg_key elvis_arg_device_keys[] = {
        { "id", ELVIS_ARG_STRING, NULL, NULL, NULL },
        { "type", ELVIS_ARG_ENUM, NULL, device_types, NULL },
        { "backend", ELVIS_ARG_ENUM, NULL, backends, NULL },
        { "tap", ELVIS_ARG_STRING, NULL, NULL, NULL },
        { "queues", ELVIS_ARG_INT, NULL, NULL, NULL },
        { "adopt", ELVIS_ARG_BOOL, NULL, NULL, NULL },
        { "path", ELVIS_ARG_STRING, NULL, NULL, NULL },
        { "readonly", ELVIS_ARG_BOOL, NULL, NULL, NULL },
        { "size", ELVIS_ARG_STRING, NULL, NULL, NULL },
        { NULL, 0, NULL, NULL, NULL },
};

static int fail(char *err, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t size, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* Appends " word" to err when it fits. */
static void append(char *err, size_t size, const char *word)
{
        size_t n = strlen(err);

        if (n + 1 + strlen(word) < size)
                snprintf(err + n, size - n, " %s", word);
}

const struct elvis_arg_key *elvis_arg_find(const struct elvis_arg_key *keys, const char *name, size_t len)
{
        for (const struct elvis_arg_key *k = keys; k->name; k++)
                if (strlen(k->name) == len && strncmp(k->name, name, len) == 0)
                        return k;
        return NULL;
}

int elvis_arg_parse_value(const struct elvis_arg_key *k, const char *value, json_t *obj, char *err, size_t size)
{
        json_t *v = NULL, *dst = obj;
        char *end;

        switch (k->type) {
        case ELVIS_ARG_STRING:
                v = json_string(value);
                if (!v)
                        return fail(err, size, "%s must be valid UTF-8 text", k->name);
                break;
        case ELVIS_ARG_ENUM:
                for (const char *const *c = k->choices; *c; c++)
                        if (!strcmp(*c, value))
                                v = json_string(value);
                if (!v) {
                        fail(err, size, "%s must be one of:", k->name);
                        for (const char *const *c = k->choices; *c; c++)
                                append(err, size, *c);
                        return -EINVAL;
                }
                break;
        case ELVIS_ARG_INT: {
                long long n;
                errno = 0;
                n = strtoll(value, &end, 10);
                if (!*value || isspace((unsigned char)*value) || *end || errno)
                        return fail(err, size, "%s must be an integer, got '%s'", k->name, value);
                v = json_integer(n);
                break;
        }
        case ELVIS_ARG_BOOL:
                if (!strcmp(value, "yes") || !strcmp(value, "true") || !strcmp(value, "1"))
                        v = json_true();
                else if (!strcmp(value, "no") || !strcmp(value, "false") || !strcmp(value, "0"))
                        v = json_false();
                else
                        return fail(err, size, "%s must be yes or no, got '%s'", k->name, value);
                break;
        case ELVIS_ARG_NUMBER: {
                double d;
                errno = 0;
                d = strtod(value, &end);
                /* JSON has no NaN or infinity, and jansson refuses them */
                if (!*value || isspace((unsigned char)*value) || *end || errno || !isfinite(d))
                        return fail(err, size, "%s must be a number, got '%s'", k->name, value);
                v = json_real(d);
                break;
        }
        }
        if (!v)
                return fail(err, size, "out of memory");
        if (k->parent) {
                dst = json_object_get(obj, k->parent);
                if (!json_is_object(dst)) {
                        dst = json_object();
                        if (json_object_set_new(obj, k->parent, dst) < 0) {
                                json_decref(v);
                                return fail(err, size, "out of memory");
                        }
                }
        }
        if (json_object_set_new(dst, k->json ? k->json : k->name, v) < 0)
                return fail(err, size, "out of memory");
        return 0;
}

int elvis_arg_parse_pair(const struct elvis_arg_key *keys, const char *what, const char *arg, json_t *obj, char *err,
                         size_t size)
{
        const char *eq = strchr(arg, '=');
        const struct elvis_arg_key *k;

        if (!eq || eq == arg)
                return fail(err, size, "%s: expected key=value, got '%s'", what, arg);
        k = elvis_arg_find(keys, arg, (size_t)(eq - arg));
        if (!k) {
                fail(err, size, "unknown %s key '%.*s'; valid keys:", what, (int)(eq - arg), arg);
                for (k = keys; k->name; k++)
                        append(err, size, k->name);
                return -EINVAL;
        }
        return elvis_arg_parse_value(k, eq + 1, obj, err, size);
}

int elvis_arg_parse_device(const char *spec, json_t **ret, char *err, size_t size)
{
        json_t *dev = json_object();
        char *copy = strdup(spec), *save = copy, *kv;
        int r = 0;

        if (!dev || !copy) {
                r = fail(err, size, "out of memory");
                goto out;
        }
        while (r == 0 && (kv = strsep(&save, ",")))
                r = elvis_arg_parse_pair(elvis_arg_device_keys, "--device", kv, dev, err, size);
out:
        free(copy);
        if (r < 0) {
                json_decref(dev);
                return r;
        }
        *ret = dev;
        return 0;
}

int elvis_arg_option(int argc, char **argv, int *i, const char *name, const char **ret)
{
        size_t n = strlen(name);

        if (strncmp(argv[*i], name, n))
                return 0;
        if (argv[*i][n] == '=') {
                *ret = argv[*i] + n + 1;
                return 1;
        }
        if (argv[*i][n])
                return 0;
        if (*i + 1 >= argc)
                return -1;
        *ret = argv[++*i];
        return 1;
}

int elvis_arg_uint(const char *s, unsigned long max, unsigned long *ret)
{
        char *end;
        unsigned long v;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &end, 10);
        if (*end || errno || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}
