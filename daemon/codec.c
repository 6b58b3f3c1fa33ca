/* Strict JSON encoding and decoding of VMs, sidecores, policy and the whole state. */
#include "codec.h"

#include <elvis/tunables.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_FORMAT "elvis-state"
#define STATE_VERSION 1

int elvis_err_set(struct elvis_err *e, int code, const char *fmt, ...)
{
        va_list ap;

        if (e) {
                e->code = code;
                va_start(ap, fmt);
                vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
                va_end(ap);
        }
        return code;
}

json_t *elvis_cpuset_to_json(const elvis_cpuset *set)
{
        char buf[4096];

        elvis_cpuset_format(set, buf, sizeof(buf));
        return json_string(buf);
}

/* Fails on any key of obj not in allowed (NULL-terminated). */
static int check_keys(const json_t *obj, const char *const *allowed, const char *what, struct elvis_err *e)
{
        const char *key;
        json_t *v;

        if (!json_is_object(obj))
                return elvis_err_set(e, -EINVAL, "%s must be a JSON object", what);
        json_object_foreach((json_t *)obj, key, v) {
                bool ok = false;
                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = strcmp(*a, key) == 0;
                if (!ok)
                        return elvis_err_set(e, -EINVAL, "unknown field '%.64s' in %s", key, what);
        }
        return 0;
}

static int get_uint(const json_t *obj, const char *key, const char *what, long long lo, long long hi,
                    bool required, unsigned long long *ret, struct elvis_err *e)
{
        json_t *v = json_object_get(obj, key);
        long long x;

        if (!v || json_is_null(v)) {
                if (required)
                        return elvis_err_set(e, -EINVAL, "%s: field '%s' is required", what, key);
                return 0;
        }
        if (!json_is_integer(v))
                return elvis_err_set(e, -EINVAL, "%s: field '%s' must be an integer", what, key);
        x = json_integer_value(v);
        if (x < lo || x > hi)
                return elvis_err_set(e, -EINVAL, "%s: field '%s' must be between %lld and %lld, got %lld", what,
                                     key, lo, hi, x);
        *ret = (unsigned long long)x;
        return 1;
}

static int get_double(const json_t *obj, const char *key, const char *what, double lo, double hi, double *ret,
                      struct elvis_err *e)
{
        json_t *v = json_object_get(obj, key);
        double x;

        if (!v)
                return 0;
        if (!json_is_number(v))
                return elvis_err_set(e, -EINVAL, "%s: field '%s' must be a number", what, key);
        x = json_number_value(v);
        if (!isfinite(x) || x < lo || x > hi)
                return elvis_err_set(e, -EINVAL, "%s: field '%s' must be between %g and %g", what, key, lo, hi);
        *ret = x;
        return 1;
}

/* Copies a string field into buf (size includes NUL); returns 1 if present, 0 if absent. */
static int get_string(const json_t *obj, const char *key, const char *what, char *buf, size_t size, bool required,
                      bool allow_null, struct elvis_err *e)
{
        json_t *v = json_object_get(obj, key);
        const char *s;

        if (!v || (allow_null && json_is_null(v))) {
                if (required)
                        return elvis_err_set(e, -EINVAL, "%s: field '%s' is required", what, key);
                if (v)
                        buf[0] = '\0';
                return v ? 1 : 0;
        }
        if (!json_is_string(v))
                return elvis_err_set(e, -EINVAL, "%s: field '%s' must be a string", what, key);
        s = json_string_value(v);
        if (strlen(s) != json_string_length(v))
                return elvis_err_set(e, -EINVAL, "%s: field '%s' contains a NUL character", what, key);
        if (strlen(s) >= size)
                return elvis_err_set(e, -EINVAL, "%s: field '%s' is longer than %zu characters", what, key, size - 1);
        memcpy(buf, s, strlen(s) + 1);
        return 1;
}

static int get_enum(const json_t *obj, const char *key, const char *what, int (*parse)(const char *),
                    const char *choices, int *ret, struct elvis_err *e)
{
        char buf[32];
        int r = get_string(obj, key, what, buf, sizeof(buf), false, false, e);

        if (r <= 0)
                return r == -EINVAL && e && strstr(e->detail, "longer") ?
                       elvis_err_set(e, -EINVAL, "%s: field '%s' must be one of %s", what, key, choices) : r;
        r = parse(buf);
        if (r < 0)
                return elvis_err_set(e, -EINVAL, "%s: field '%s' must be one of %s, got '%s'", what, key, choices, buf);
        *ret = r;
        return 1;
}

static int get_cpuset(const json_t *obj, const char *key, const char *what, elvis_cpuset *ret, struct elvis_err *e)
{
        char buf[4096];
        int r = get_string(obj, key, what, buf, sizeof(buf), false, false, e);

        if (r <= 0)
                return r;
        if (elvis_cpuset_parse(buf, ret) < 0)
                return elvis_err_set(e, -EINVAL, "%s: field '%s' is not a valid CPU list", what, key);
        return 1;
}

static int reject_readonly(const json_t *obj, const char *const *readonly, const char *what, struct elvis_err *e)
{
        for (const char *const *k = readonly; *k; k++)
                if (json_object_get(obj, *k))
                        return elvis_err_set(e, -EINVAL, "%s: field '%s' is read-only", what, *k);
        return 0;
}

/* ---- VM policy ---- */

static json_t *vm_policy_to_json(const struct elvis_vm_policy *p)
{
        return json_pack("{s:i, s:s}", "weight", (json_int_t)p->weight, "exitless", elvis_exitless_name(p->exitless));
}

static int vm_policy_from_json(const json_t *j, struct elvis_vm_policy *p, struct elvis_err *e)
{
        static const char *const keys[] = { "weight", "exitless", NULL };
        unsigned long long u;
        int r, x;

        r = check_keys(j, keys, "policy", e);
        if (r < 0)
                return r;
        r = get_uint(j, "weight", "policy", ELVIS_WEIGHT_MIN, ELVIS_WEIGHT_MAX, false, &u, e);
        if (r < 0)
                return r;
        if (r)
                p->weight = (unsigned)u;
        r = get_enum(j, "exitless", "policy", elvis_exitless_parse, "auto, always, never", &x, e);
        if (r < 0)
                return r;
        if (r)
                p->exitless = x;
        return 0;
}

/* ---- devices ---- */

static json_t *device_to_json(const struct elvis_device *d)
{
        json_t *j = json_object(), *scs = json_array();

        json_object_set_new(j, "id", json_string(d->id));
        json_object_set_new(j, "type", json_string(elvis_device_type_name(d->type)));
        json_object_set_new(j, "backend", json_string(elvis_backend_name(d->backend)));
        if (d->type == ELVIS_DEVICE_BLK) {
                json_object_set_new(j, "path", d->backend == ELVIS_BACKEND_FILE ? json_string(d->path) : json_null());
                json_object_set_new(j, "readonly", json_boolean(d->readonly));
                if (d->backend == ELVIS_BACKEND_NULL)
                        json_object_set_new(j, "size", json_integer((json_int_t)d->size_bytes));
        } else {
                json_object_set_new(j, "tap", d->backend == ELVIS_BACKEND_TAP ? json_string(d->tap) : json_null());
                if (d->backend == ELVIS_BACKEND_TAP)
                        json_object_set_new(j, "adopt", json_boolean(d->tap_adopt));
        }
        json_object_set_new(j, "queues", json_integer(d->queues));
        json_object_set_new(j, "socket", d->socket[0] ? json_string(d->socket) : json_null());
        for (unsigned q = 0; q < d->queues; q++)
                json_array_append_new(scs, d->sidecore[q] ? json_integer(d->sidecore[q]) : json_null());
        json_object_set_new(j, "sidecores", scs);
        return j;
}

int elvis_size_parse(const char *s, uint64_t *ret)
{
        unsigned long long v;
        unsigned shift = 0;
        char *end;

        if (*s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno)
                return -ERANGE;
        switch (*end) {
        case '\0': break;
        case 'K': case 'k': shift = 10; end++; break;
        case 'M': case 'm': shift = 20; end++; break;
        case 'G': case 'g': shift = 30; end++; break;
        case 'T': case 't': shift = 40; end++; break;
        default: return -EINVAL;
        }
        if (*end == 'i' && shift)
                end++;
        if (*end == 'B' && shift)
                end++;
        if (*end)
                return -EINVAL;
        if (v > (ELVIS_BLK_SIZE_MAX >> shift))
                return -ERANGE;
        *ret = (uint64_t)v << shift;
        return 0;
}

/* A blk device's size: bytes as an integer, or a string with a K, M, G or T suffix
 * (powers of 1024); whole 512-byte sectors, at least one. */
static int get_size(const json_t *obj, const char *what, uint64_t *ret, struct elvis_err *e)
{
        json_t *v = json_object_get(obj, "size");
        uint64_t x;

        if (!v)
                return 0;
        if (json_is_integer(v) && json_integer_value(v) >= 0) {
                x = (uint64_t)json_integer_value(v);
        } else if (!json_is_string(v) || elvis_size_parse(json_string_value(v), &x) < 0) {
                return elvis_err_set(e, -EINVAL,
                                     "%s: size must be bytes, or a number with a K, M, G or T suffix (\"8G\"), up to "
                                     "%llu TiB", what, (unsigned long long)(ELVIS_BLK_SIZE_MAX >> 40));
        }
        if (x == 0 || x % 512 || x > ELVIS_BLK_SIZE_MAX)
                return elvis_err_set(e, -EINVAL, "%s: size must be a positive multiple of 512 bytes, at most %llu TiB",
                                     what, (unsigned long long)(ELVIS_BLK_SIZE_MAX >> 40));
        *ret = x;
        return 1;
}

/* The fields of a blk device (path, readonly, size); none of a net device's. */
static int blk_from_json(const json_t *j, const char *what, struct elvis_device *d, struct elvis_err *e)
{
        json_t *ro = json_object_get(j, "readonly");
        int r;

        if (json_object_get(j, "tap") || json_object_get(j, "adopt"))
                return elvis_err_set(e, -EINVAL, "%s: tap and adopt are only valid for net devices", what);
        r = get_string(j, "path", what, d->path, sizeof(d->path), false, true, e);
        if (r < 0)
                return r;
        if (d->backend == ELVIS_BACKEND_FILE && !d->path[0])
                return elvis_err_set(e, -EINVAL, "%s: a blk device with backend \"file\" needs a path (its image)",
                                     what);
        if (d->backend != ELVIS_BACKEND_FILE && d->path[0])
                return elvis_err_set(e, -EINVAL, "%s: path is only valid with backend \"file\"", what);
        if (d->path[0] && d->path[0] != '/')
                return elvis_err_set(e, -EINVAL, "%s: path must be absolute, got '%.200s'", what, d->path);
        if (ro && !json_is_boolean(ro))
                return elvis_err_set(e, -EINVAL, "%s: readonly must be true or false", what);
        d->readonly = ro && json_is_true(ro);
        if (d->backend == ELVIS_BACKEND_NULL) {
                d->size_bytes = ELVIS_BLK_SIZE_DEFAULT;
                r = get_size(j, what, &d->size_bytes, e);
                if (r < 0)
                        return r;
        } else if (json_object_get(j, "size") && !json_is_null(json_object_get(j, "size"))) {
                return elvis_err_set(e, -EINVAL, "%s: size is only valid with backend \"null\" (a file's size is "
                                     "its image's)", what);
        }
        return 0;
}

static int device_from_json(const json_t *j, enum elvis_decode_mode mode, unsigned index, struct elvis_device *d,
                            struct elvis_err *e)
{
        static const char *const keys[] = { "id",   "type",     "backend", "tap",    "adopt",     "path",
                                            "readonly", "size", "queues",  "socket", "sidecores", NULL };
        static const char *const readonly[] = { "socket", "sidecores", NULL };
        char what[48];
        unsigned long long u;
        int r, x;

        snprintf(what, sizeof(what), "devices[%u]", index);
        r = check_keys(j, keys, what, e);
        if (r < 0)
                return r;
        if (mode != ELVIS_DECODE_STATE && (r = reject_readonly(j, readonly, what, e)) < 0)
                return r;
        memset(d, 0, sizeof(*d));
        d->type = ELVIS_DEVICE_NET;
        r = get_enum(j, "type", what, elvis_device_type_parse, "net, blk", &x, e);
        if (r < 0)
                return r;
        if (r)
                d->type = x;
        d->backend = d->type == ELVIS_DEVICE_BLK ? ELVIS_BACKEND_FILE : ELVIS_BACKEND_TAP;
        d->queues = 1;
        snprintf(d->id, sizeof(d->id), "%s%u", d->type == ELVIS_DEVICE_BLK ? "blk" : "net", index);
        r = get_string(j, "id", what, d->id, sizeof(d->id), mode == ELVIS_DECODE_STATE, false, e);
        if (r < 0)
                return r;
        if (!elvis_device_id_valid(d->id))
                return elvis_err_set(e, -EINVAL,
                                     "%s: id must start with a letter and contain only letters, digits, '-' and '_' (max %d)",
                                     what, ELVIS_DEVICE_ID_MAX - 1);
        r = get_enum(j, "backend", what, elvis_backend_parse,
                     d->type == ELVIS_DEVICE_BLK ? "file, null" : "tap, loopback, null", &x, e);
        if (r < 0)
                return r;
        if (r)
                d->backend = x;
        if (!elvis_backend_serves(d->type, d->backend))
                return elvis_err_set(e, -EINVAL, "%s: backend \"%s\" cannot serve a %s device (%s)", what,
                                     elvis_backend_name(d->backend), elvis_device_type_name(d->type),
                                     d->type == ELVIS_DEVICE_BLK ? "blk: file or null" : "net: tap, loopback or null");
        if (d->type == ELVIS_DEVICE_BLK) {
                r = blk_from_json(j, what, d, e);
                if (r < 0)
                        return r;
                goto queues;
        }
        if (json_object_get(j, "path") || json_object_get(j, "readonly") || json_object_get(j, "size"))
                return elvis_err_set(e, -EINVAL, "%s: path, readonly and size are only valid for blk devices", what);
        r = get_string(j, "tap", what, d->tap, sizeof(d->tap), false, true, e);
        if (r < 0)
                return r;
        if (d->backend == ELVIS_BACKEND_TAP) {
                if (d->tap[0] && !elvis_ifname_valid(d->tap))
                        return elvis_err_set(e, -EINVAL, "%s: tap is not a valid interface name", what);
        } else if (d->tap[0]) {
                return elvis_err_set(e, -EINVAL, "%s: tap is only valid with backend \"tap\"", what);
        }
        {
                json_t *a = json_object_get(j, "adopt");
                if (a && !json_is_boolean(a))
                        return elvis_err_set(e, -EINVAL, "%s: adopt must be true or false", what);
                d->tap_adopt = a && json_is_true(a);
                if (d->tap_adopt && (d->backend != ELVIS_BACKEND_TAP || !d->tap[0]))
                        return elvis_err_set(e, -EINVAL, "%s: adopt needs backend \"tap\" and a tap name", what);
        }
queues:
        r = get_uint(j, "queues", what, 1, ELVIS_MAX_QUEUES, false, &u, e);
        if (r < 0)
                return r;
        if (r)
                d->queues = (unsigned)u;
        if (mode == ELVIS_DECODE_STATE) {
                json_t *scs = json_object_get(j, "sidecores");
                r = get_string(j, "socket", what, d->socket, sizeof(d->socket), false, true, e);
                if (r < 0)
                        return r;
                if (scs && (!json_is_array(scs) || json_array_size(scs) != d->queues))
                        return elvis_err_set(e, -EINVAL, "%s: sidecores must be an array of %u entries", what,
                                             d->queues);
                for (unsigned q = 0; scs && q < d->queues; q++) {
                        json_t *v = json_array_get(scs, q);
                        if (json_is_null(v))
                                continue;
                        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
                            json_integer_value(v) > UINT32_MAX)
                                return elvis_err_set(e, -EINVAL, "%s: sidecores[%u] must be a sidecore id or null",
                                                     what, q);
                        d->sidecore[q] = (uint32_t)json_integer_value(v);
                }
        }
        return 0;
}

/* ---- VMs ---- */

json_t *elvis_vm_to_json(const struct elvis_vm *vm)
{
        json_t *j = json_object(), *devs = json_array();

        json_object_set_new(j, "id", json_integer(vm->id));
        json_object_set_new(j, "name", json_string(vm->name));
        json_object_set_new(j, "domain", vm->domain[0] ? json_string(vm->domain) : json_null());
        json_object_set_new(j, "vcpus", json_integer(vm->vcpus));
        json_object_set_new(j, "cpus", elvis_cpuset_to_json(&vm->cpus));
        json_object_set_new(j, "pinned_cpus", elvis_cpuset_to_json(&vm->pinned));
        json_object_set_new(j, "numa_node", vm->numa >= 0 ? json_integer(vm->numa) : json_null());
        json_object_set_new(j, "policy", vm_policy_to_json(&vm->policy));
        json_object_set_new(j, "vmm_uid", vm->vmm_uid_set ? json_integer(vm->vmm_uid) : json_null());
        json_object_set_new(j, "vmm_gid", vm->vmm_gid_set ? json_integer(vm->vmm_gid) : json_null());
        for (unsigned i = 0; i < vm->ndevices; i++)
                json_array_append_new(devs, device_to_json(&vm->devices[i]));
        json_object_set_new(j, "devices", devs);
        json_object_set_new(j, "created", json_integer(vm->created));
        json_object_set_new(j, "migration",
                            vm->migration ? json_string(elvis_migration_name(vm->migration)) : json_null());
        return j;
}

int elvis_vm_from_json(const json_t *j, enum elvis_decode_mode mode, struct elvis_vm *vm, struct elvis_err *e)
{
        static const char *const keys[] = { "id",      "name",    "domain",  "vcpus",   "cpus",    "pinned_cpus",
                                            "numa_node", "policy", "vmm_uid", "vmm_gid", "devices", "created",
                                            "migration", NULL };
        static const char *const readonly[] = { "id", "cpus", "pinned_cpus", "numa_node", "created", NULL };
        static const char *const immutable[] = { "domain", "vcpus", "devices", "vmm_uid", "vmm_gid", "migration", NULL };
        struct elvis_vm v = *vm;
        unsigned long long u;
        json_t *devs, *pol;
        int r;

        r = check_keys(j, keys, "VM", e);
        if (r < 0)
                return r;
        if (mode != ELVIS_DECODE_STATE && (r = reject_readonly(j, readonly, "VM", e)) < 0)
                return r;
        if (mode == ELVIS_DECODE_PATCH) {
                for (const char *const *k = immutable; *k; k++)
                        if (json_object_get(j, *k))
                                return elvis_err_set(e, -EINVAL,
                                                     "VM: field '%s' cannot be changed; remove and add the VM again", *k);
        } else {
                memset(&v, 0, sizeof(v));
                v.numa = -1;
                v.policy.weight = ELVIS_WEIGHT_DEFAULT;
                v.policy.exitless = ELVIS_EXITLESS_AUTO;
        }
        if (mode == ELVIS_DECODE_STATE) {
                r = get_uint(j, "id", "VM", 1, UINT32_MAX, true, &u, e);
                if (r < 0)
                        return r;
                v.id = (uint32_t)u;
                r = get_cpuset(j, "cpus", "VM", &v.cpus, e);
                if (r < 0)
                        return r;
                r = get_cpuset(j, "pinned_cpus", "VM", &v.pinned, e);
                if (r < 0)
                        return r;
                r = get_uint(j, "numa_node", "VM", 0, ELVIS_MAX_CPUS, false, &u, e);
                if (r < 0)
                        return r;
                if (r)
                        v.numa = (int)u;
                r = get_uint(j, "created", "VM", 0, INT64_MAX, false, &u, e);
                if (r < 0)
                        return r;
                v.created = (int64_t)u;
        }
        r = get_string(j, "name", "VM", v.name, sizeof(v.name), mode != ELVIS_DECODE_PATCH, false, e);
        if (r < 0)
                return r;
        if (!elvis_vm_name_valid(v.name))
                return elvis_err_set(e, -EINVAL,
                                     "VM: name must start with a letter and contain only letters, digits, '-', '_' and '.' (max %d)",
                                     ELVIS_VM_NAME_MAX - 1);
        r = get_string(j, "domain", "VM", v.domain, sizeof(v.domain), false, true, e);
        if (r < 0)
                return r;
        for (const char *c = v.domain; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == '/')
                        return elvis_err_set(e, -EINVAL, "VM: domain contains a control character or '/'");
        r = get_uint(j, "vcpus", "VM", 0, ELVIS_MAX_VCPUS, false, &u, e);
        if (r < 0)
                return r;
        if (r)
                v.vcpus = (unsigned)u;
        pol = json_object_get(j, "policy");
        if (pol && (r = vm_policy_from_json(pol, &v.policy, e)) < 0)
                return r;
        if (json_is_null(json_object_get(j, "migration")))
                v.migration = ELVIS_MIGRATION_NONE;
        else if (mode != ELVIS_DECODE_PATCH) {
                int x;
                r = get_enum(j, "migration", "VM", elvis_migration_parse, "none, incoming, outgoing", &x, e);
                if (r < 0)
                        return r;
                /* a request may only say that the VM arrives (the qemu hook's migrate); the
                 * daemon learns that one leaves from libvirt */
                if (r && mode == ELVIS_DECODE_CREATE && x == ELVIS_MIGRATION_OUTGOING)
                        return elvis_err_set(e, -EINVAL, "VM: field 'migration' may only be 'incoming' or 'none' "
                                                         "when adding a VM");
                if (r)
                        v.migration = (enum elvis_migration)x;
        }
        /* uid/gid (uid_t)-1 means "none" to the kernel: not a valid identity */
        r = get_uint(j, "vmm_uid", "VM", 0, UINT32_MAX - 1, false, &u, e);
        if (r < 0)
                return r;
        if (r) {
                v.vmm_uid_set = true;
                v.vmm_uid = (uint32_t)u;
        }
        r = get_uint(j, "vmm_gid", "VM", 0, UINT32_MAX - 1, false, &u, e);
        if (r < 0)
                return r;
        if (r) {
                v.vmm_gid_set = true;
                v.vmm_gid = (uint32_t)u;
        }
        devs = json_object_get(j, "devices");
        if (devs) {
                if (!json_is_array(devs))
                        return elvis_err_set(e, -EINVAL, "VM: devices must be an array");
                if (json_array_size(devs) > ELVIS_MAX_DEVICES)
                        return elvis_err_set(e, -EINVAL, "VM: at most %d devices", ELVIS_MAX_DEVICES);
                v.ndevices = (unsigned)json_array_size(devs);
                for (unsigned i = 0; i < v.ndevices; i++) {
                        r = device_from_json(json_array_get(devs, i), mode, i, &v.devices[i], e);
                        if (r < 0)
                                return r;
                        for (unsigned k = 0; k < i; k++)
                                if (strcmp(v.devices[k].id, v.devices[i].id) == 0)
                                        return elvis_err_set(e, -EINVAL, "VM: duplicate device id '%s'",
                                                             v.devices[i].id);
                }
        }
        /* cpus is empty when an orchestrator owns the vCPUs' pins (vcpu-pinning respect) */
        if (mode == ELVIS_DECODE_STATE && !elvis_cpuset_empty(&v.cpus) && elvis_cpuset_count(&v.cpus) != v.vcpus)
                return elvis_err_set(e, -EINVAL, "VM %u: %u vcpus but cpus lists %u CPUs", v.id, v.vcpus,
                                     elvis_cpuset_count(&v.cpus));
        if (mode == ELVIS_DECODE_STATE && !elvis_cpuset_empty(&v.cpus) && !elvis_cpuset_empty(&v.pinned))
                return elvis_err_set(e, -EINVAL, "VM %u: both cpus and pinned_cpus are set", v.id);
        *vm = v;
        return 0;
}

/* ---- sidecores ---- */

json_t *elvis_sidecore_to_json(const struct elvis_state *s, const struct elvis_sidecore *sc)
{
        json_t *j = json_object(), *queues = json_array();

        json_object_set_new(j, "id", json_integer(sc->id));
        json_object_set_new(j, "cpu", json_integer(sc->cpu));
        json_object_set_new(j, "numa_node", sc->numa >= 0 ? json_integer(sc->numa) : json_null());
        json_object_set_new(j, "automatic", json_boolean(sc->automatic));
        json_object_set_new(j, "created", json_integer(sc->created));
        if (s) {
                for (unsigned i = 0; i < s->nvms; i++)
                        for (unsigned d = 0; d < s->vms[i].ndevices; d++)
                                for (unsigned q = 0; q < s->vms[i].devices[d].queues; q++)
                                        if (s->vms[i].devices[d].sidecore[q] == sc->id)
                                                json_array_append_new(queues,
                                                        json_pack("{s:i, s:s, s:s, s:i}", "vm", (json_int_t)s->vms[i].id,
                                                                  "vm_name", s->vms[i].name, "device",
                                                                  s->vms[i].devices[d].id, "queue", (json_int_t)q));
                json_object_set_new(j, "queues", queues);
        } else {
                json_decref(queues);
        }
        return j;
}

int elvis_sidecore_from_json(const json_t *j, enum elvis_decode_mode mode, struct elvis_sidecore *sc,
                             struct elvis_err *e)
{
        static const char *const keys[] = { "id", "cpu", "numa_node", "automatic", "created", "queues", NULL };
        static const char *const readonly[] = { "id", "numa_node", "automatic", "created", "queues", NULL };
        struct elvis_sidecore v = { .cpu = -1, .numa = -1 };
        unsigned long long u;
        int r;

        r = check_keys(j, keys, "sidecore", e);
        if (r < 0)
                return r;
        if (mode != ELVIS_DECODE_STATE && (r = reject_readonly(j, readonly, "sidecore", e)) < 0)
                return r;
        r = get_uint(j, "cpu", "sidecore", 0, ELVIS_MAX_CPUS - 1, mode == ELVIS_DECODE_STATE, &u, e);
        if (r < 0)
                return r;
        if (r)
                v.cpu = (int)u;
        if (mode == ELVIS_DECODE_STATE) {
                json_t *a = json_object_get(j, "automatic");
                r = get_uint(j, "id", "sidecore", 1, UINT32_MAX, true, &u, e);
                if (r < 0)
                        return r;
                v.id = (uint32_t)u;
                r = get_uint(j, "numa_node", "sidecore", 0, ELVIS_MAX_CPUS, false, &u, e);
                if (r < 0)
                        return r;
                if (r)
                        v.numa = (int)u;
                if (a && !json_is_boolean(a))
                        return elvis_err_set(e, -EINVAL, "sidecore: field 'automatic' must be a boolean");
                v.automatic = a && json_is_true(a);
                r = get_uint(j, "created", "sidecore", 0, INT64_MAX, false, &u, e);
                if (r < 0)
                        return r;
                v.created = (int64_t)u;
        }
        *sc = v;
        return 0;
}

/* ---- policy ---- */

json_t *elvis_policy_to_json(const struct elvis_policy *p)
{
        json_t *j = json_pack("{s:s, s:s}", "mode", elvis_mode_name(p->mode), "exitless",
                              elvis_exitless_name(p->exitless));

        for (size_t i = 0; j && i < elvis_ntunables; i++) {
                const struct elvis_tunable *t = &elvis_tunables[i];
                const char *f = (const char *)p + t->offset;

                json_object_set_new(j, t->name,
                                    t->kind == ELVIS_TUNABLE_UINT ? json_integer(*(const unsigned *)f) :
                                                                    json_real(*(const double *)f));
        }
        return j;
}

/* The keys a policy object may have: the enumerations and every tunable. */
#define POLICY_KEYS_MAX (2 + 64 + 1)
static void policy_keys(const char *keys[POLICY_KEYS_MAX])
{
        size_t n = 0;

        keys[n++] = "mode";
        keys[n++] = "exitless";
        for (size_t i = 0; i < elvis_ntunables && n < POLICY_KEYS_MAX - 1; i++)
                keys[n++] = elvis_tunables[i].name;
        keys[n] = NULL;
}

int elvis_policy_from_json(const json_t *j, enum elvis_decode_mode mode, struct elvis_policy *p, struct elvis_err *e)
{
        struct elvis_policy v = *p;
        const char *keys[POLICY_KEYS_MAX];
        char msg[256];
        int r, x;

        if (mode == ELVIS_DECODE_CREATE)
                elvis_policy_defaults(&v);
        policy_keys(keys);
        r = check_keys(j, keys, "policy", e);
        if (r < 0)
                return r;
        r = get_enum(j, "mode", "policy", elvis_mode_parse, "static, dynamic", &x, e);
        if (r < 0)
                return r;
        if (r)
                v.mode = x;
        r = get_enum(j, "exitless", "policy", elvis_exitless_parse, "auto, always, never", &x, e);
        if (r < 0)
                return r;
        if (r)
                v.exitless = x;
        for (size_t i = 0; i < elvis_ntunables; i++) {
                const struct elvis_tunable *t = &elvis_tunables[i];
                char *f = (char *)&v + t->offset;
                unsigned long long u;

                if (t->kind == ELVIS_TUNABLE_DOUBLE) {
                        r = get_double(j, t->name, "policy", -1e9, 1e9, (double *)f, e);
                        if (r < 0)
                                return r;
                        continue;
                }
                r = get_uint(j, t->name, "policy", 0, UINT32_MAX, false, &u, e);
                if (r < 0)
                        return r;
                if (r)
                        *(unsigned *)f = (unsigned)u;
        }
        r = elvis_policy_validate(&v, msg, sizeof(msg));
        if (r < 0)
                return elvis_err_set(e, r, "policy: %s", msg);
        *p = v;
        return 0;
}

/* ---- whole state ---- */

json_t *elvis_state_to_json(const struct elvis_state *s)
{
        json_t *j = json_object(), *vms = json_array(), *scs = json_array();

        json_object_set_new(j, "format", json_string(STATE_FORMAT));
        json_object_set_new(j, "version", json_integer(STATE_VERSION));
        json_object_set_new(j, "next_vm_id", json_integer(s->next_vm_id));
        json_object_set_new(j, "next_sidecore_id", json_integer(s->next_sidecore_id));
        json_object_set_new(j, "policy", elvis_policy_to_json(&s->policy));
        for (unsigned i = 0; i < s->nvms; i++) {
                json_t *vm = elvis_vm_to_json(&s->vms[i]);
                /* written only when there are pins: state files of own-mode hosts stay
                 * readable by the releases before vcpu-pinning */
                if (elvis_cpuset_empty(&s->vms[i].pinned))
                        json_object_del(vm, "pinned_cpus");
                if (!s->vms[i].migration)
                        json_object_del(vm, "migration");
                json_array_append_new(vms, vm);
        }
        for (unsigned i = 0; i < s->nsidecores; i++)
                json_array_append_new(scs, elvis_sidecore_to_json(NULL, &s->sidecores[i]));
        json_object_set_new(j, "vms", vms);
        json_object_set_new(j, "sidecores", scs);
        return j;
}

static int cross_check(struct elvis_state *s, struct elvis_err *e)
{
        elvis_cpuset used;

        elvis_cpuset_zero(&used);
        for (unsigned i = 0; i < s->nsidecores; i++) {
                struct elvis_sidecore *sc = &s->sidecores[i];
                if (sc->id >= s->next_sidecore_id)
                        return elvis_err_set(e, -EINVAL, "sidecore id %u is not below next_sidecore_id", sc->id);
                for (unsigned k = 0; k < i; k++)
                        if (s->sidecores[k].id == sc->id)
                                return elvis_err_set(e, -EINVAL, "duplicate sidecore id %u", sc->id);
                if (elvis_cpuset_has(&used, sc->cpu))
                        return elvis_err_set(e, -EINVAL, "CPU %d used by two sidecores", sc->cpu);
                elvis_cpuset_set(&used, sc->cpu);
        }
        for (unsigned i = 0; i < s->nvms; i++) {
                struct elvis_vm *vm = &s->vms[i];
                if (vm->id >= s->next_vm_id)
                        return elvis_err_set(e, -EINVAL, "VM id %u is not below next_vm_id", vm->id);
                for (unsigned k = 0; k < i; k++) {
                        if (s->vms[k].id == vm->id)
                                return elvis_err_set(e, -EINVAL, "duplicate VM id %u", vm->id);
                        if (strcmp(s->vms[k].name, vm->name) == 0)
                                return elvis_err_set(e, -EINVAL, "duplicate VM name '%s'", vm->name);
                }
                if (elvis_cpuset_intersects(&used, &vm->cpus))
                        return elvis_err_set(e, -EINVAL, "VM %u uses a CPU that is already taken", vm->id);
                elvis_cpuset_or(&used, &vm->cpus);
                for (unsigned d = 0; d < vm->ndevices; d++)
                        for (unsigned q = 0; q < vm->devices[d].queues; q++) {
                                uint32_t sc = vm->devices[d].sidecore[q];
                                if (sc && !elvis_state_sidecore(s, sc))
                                        return elvis_err_set(e, -EINVAL, "VM %u device %s queue %u refers to missing sidecore %u",
                                                             vm->id, vm->devices[d].id, q, sc);
                        }
        }
        return 0;
}

int elvis_state_from_json(const json_t *j, struct elvis_state *out, struct elvis_err *e)
{
        static const char *const keys[] = { "format", "version", "next_vm_id", "next_sidecore_id", "policy", "vms",
                                            "sidecores", NULL };
        struct elvis_state s;
        unsigned long long u;
        json_t *vms, *scs, *pol;
        const char *fmt;
        int r;

        r = check_keys(j, keys, "state", e);
        if (r < 0)
                return r;
        fmt = json_string_value(json_object_get(j, "format"));
        if (!fmt || strcmp(fmt, STATE_FORMAT) != 0)
                return elvis_err_set(e, -EINVAL, "not an ELVIS state file (format is not \"%s\")", STATE_FORMAT);
        r = get_uint(j, "version", "state", 1, INT32_MAX, true, &u, e);
        if (r < 0)
                return r;
        if (u != STATE_VERSION)
                return elvis_err_set(e, -EPROTONOSUPPORT, "state file version %llu is not supported (expected %d)", u,
                                     STATE_VERSION);
        r = elvis_state_init(&s);
        if (r < 0)
                return elvis_err_set(e, r, "out of memory");
        r = get_uint(j, "next_vm_id", "state", 1, UINT32_MAX, true, &u, e);
        if (r < 0)
                goto fail;
        s.next_vm_id = (uint32_t)u;
        r = get_uint(j, "next_sidecore_id", "state", 1, UINT32_MAX, true, &u, e);
        if (r < 0)
                goto fail;
        s.next_sidecore_id = (uint32_t)u;
        pol = json_object_get(j, "policy");
        if (pol && (r = elvis_policy_from_json(pol, ELVIS_DECODE_PATCH, &s.policy, e)) < 0)
                goto fail;
        vms = json_object_get(j, "vms");
        scs = json_object_get(j, "sidecores");
        if ((vms && !json_is_array(vms)) || (scs && !json_is_array(scs))) {
                r = elvis_err_set(e, -EINVAL, "state: vms and sidecores must be arrays");
                goto fail;
        }
        if (json_array_size(vms) > ELVIS_MAX_VMS || json_array_size(scs) > ELVIS_MAX_SIDECORES) {
                r = elvis_err_set(e, -EINVAL, "state: too many VMs or sidecores");
                goto fail;
        }
        for (size_t i = 0; i < json_array_size(scs); i++) {
                r = elvis_sidecore_from_json(json_array_get(scs, i), ELVIS_DECODE_STATE, &s.sidecores[i], e);
                if (r < 0)
                        goto fail;
                s.nsidecores++;
        }
        for (size_t i = 0; i < json_array_size(vms); i++) {
                r = elvis_vm_from_json(json_array_get(vms, i), ELVIS_DECODE_STATE, &s.vms[i], e);
                if (r < 0)
                        goto fail;
                s.nvms++;
        }
        r = cross_check(&s, e);
        if (r < 0)
                goto fail;
        elvis_state_copy(out, &s);
        elvis_state_fini(&s);
        return 0;
fail:
        elvis_state_fini(&s);
        return r;
}
