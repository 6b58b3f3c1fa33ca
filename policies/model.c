/* The managed-state model: defaults, validation, lookups and copies. */
#include <elvis/dataplane.h>
#include <elvis/model.h>
#include <elvis/tunables.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void elvis_policy_defaults(struct elvis_policy *p)
{
        *p = (struct elvis_policy){ .mode = ELVIS_MODE_STATIC, .exitless = ELVIS_EXITLESS_AUTO };
        for (size_t i = 0; i < elvis_ntunables; i++) {
                const struct elvis_tunable *t = &elvis_tunables[i];
                char *f = (char *)p + t->offset;

                if (t->kind == ELVIS_TUNABLE_UINT)
                        *(unsigned *)f = (unsigned)t->def;
                else
                        *(double *)f = t->def;
        }
}

/* A tunable's bounds, from the table: 0, or -EINVAL with the message in err. */
static int check_tunable(const struct elvis_policy *p, const struct elvis_tunable *t, char *err, size_t errlen)
{
        const char *f = (const char *)p + t->offset;

        if (t->kind == ELVIS_TUNABLE_UINT) {
                unsigned v = *(const unsigned *)f;

                if (v >= t->min && v <= t->max)
                        return 0;
                snprintf(err, errlen, "%s must be between %.0f and %.0f%s%s", t->name, t->min, t->max,
                         t->unit[0] ? " " : "", t->unit);
        } else {
                double v = *(const double *)f;

                if ((t->min_open ? v > t->min : v >= t->min) && (t->max_open ? v < t->max : v <= t->max))
                        return 0;
                snprintf(err, errlen, "%s must be in %c%g, %g%c", t->name, t->min_open ? '(' : '[', t->min, t->max,
                         t->max_open ? ')' : ']');
        }
        return -EINVAL;
}

#define CHECK(cond, ...) do { if (!(cond)) { snprintf(err, errlen, __VA_ARGS__); return -EINVAL; } } while (0)

int elvis_policy_validate(const struct elvis_policy *p, char *err, size_t errlen)
{
        CHECK(p->mode < __ELVIS_MODE_MAX, "mode must be static or dynamic");
        CHECK(p->exitless < __ELVIS_EXITLESS_MAX, "exitless must be auto, always or never");
        CHECK(p->min_sidecores <= p->max_sidecores, "min_sidecores (%u) exceeds max_sidecores (%u)",
              p->min_sidecores, p->max_sidecores);
        for (size_t i = 0; i < elvis_ntunables; i++)
                if (check_tunable(p, &elvis_tunables[i], err, errlen) < 0)
                        return -EINVAL;
        CHECK(p->scale_up_idle < p->scale_down_idle, "scale_up_idle (%g) must be below scale_down_idle (%g)",
              p->scale_up_idle, p->scale_down_idle);
        return 0;
}

int elvis_state_init(struct elvis_state *s)
{
        memset(s, 0, sizeof(*s));
        s->vms = calloc(ELVIS_MAX_VMS, sizeof(*s->vms));
        s->sidecores = calloc(ELVIS_MAX_SIDECORES, sizeof(*s->sidecores));
        if (!s->vms || !s->sidecores) {
                elvis_state_fini(s);
                return -ENOMEM;
        }
        s->next_vm_id = 1;
        s->next_sidecore_id = 1;
        elvis_policy_defaults(&s->policy);
        return 0;
}

void elvis_state_fini(struct elvis_state *s)
{
        if (!s)
                return;
        free(s->vms);
        free(s->sidecores);
        memset(s, 0, sizeof(*s));
}

void elvis_state_copy(struct elvis_state *dst, const struct elvis_state *src)
{
        struct elvis_vm *vms = dst->vms;
        struct elvis_sidecore *scs = dst->sidecores;

        memcpy(vms, src->vms, src->nvms * sizeof(*vms));
        memcpy(scs, src->sidecores, src->nsidecores * sizeof(*scs));
        *dst = *src;
        dst->vms = vms;
        dst->sidecores = scs;
}

struct elvis_vm *elvis_state_vm(struct elvis_state *s, uint32_t id)
{
        for (unsigned i = 0; i < s->nvms; i++)
                if (s->vms[i].id == id)
                        return &s->vms[i];
        return NULL;
}

struct elvis_vm *elvis_state_vm_by_name(struct elvis_state *s, const char *name)
{
        for (unsigned i = 0; i < s->nvms; i++)
                if (strcmp(s->vms[i].name, name) == 0)
                        return &s->vms[i];
        return NULL;
}

struct elvis_sidecore *elvis_state_sidecore(struct elvis_state *s, uint32_t id)
{
        for (unsigned i = 0; i < s->nsidecores; i++)
                if (s->sidecores[i].id == id)
                        return &s->sidecores[i];
        return NULL;
}

struct elvis_sidecore *elvis_state_sidecore_on_cpu(struct elvis_state *s, int cpu)
{
        for (unsigned i = 0; i < s->nsidecores; i++)
                if (s->sidecores[i].cpu == cpu)
                        return &s->sidecores[i];
        return NULL;
}

struct elvis_device *elvis_vm_device(struct elvis_vm *vm, const char *id)
{
        for (unsigned i = 0; i < vm->ndevices; i++)
                if (strcmp(vm->devices[i].id, id) == 0)
                        return &vm->devices[i];
        return NULL;
}

unsigned elvis_state_sidecore_load(const struct elvis_state *s, uint32_t sidecore)
{
        unsigned n = 0;

        for (unsigned i = 0; i < s->nvms; i++)
                for (unsigned d = 0; d < s->vms[i].ndevices; d++)
                        for (unsigned q = 0; q < s->vms[i].devices[d].queues; q++)
                                n += s->vms[i].devices[d].sidecore[q] == sidecore;
        return n;
}

elvis_cpuset elvis_state_used_cpus(const struct elvis_state *s)
{
        elvis_cpuset used;

        elvis_cpuset_zero(&used);
        for (unsigned i = 0; i < s->nvms; i++) {
                elvis_cpuset_or(&used, &s->vms[i].cpus);
                elvis_cpuset_or(&used, &s->vms[i].pinned);
        }
        for (unsigned i = 0; i < s->nsidecores; i++)
                elvis_cpuset_set(&used, s->sidecores[i].cpu);
        return used;
}

enum elvis_exitless elvis_effective_exitless(const struct elvis_policy *p, const struct elvis_vm *vm)
{
        if (p->exitless == ELVIS_EXITLESS_NEVER)
                return ELVIS_EXITLESS_NEVER;
        if (vm->policy.exitless == ELVIS_EXITLESS_AUTO)
                return p->exitless;
        return vm->policy.exitless;
}

static const char *const exitless_names[] = { "auto", "always", "never" };
static const char *const backend_names[] = { "tap", "loopback", "null", "file" };
static const char *const device_type_names[] = { "net", "blk" };
static const char *const mode_names[] = { "static", "dynamic" };
static const char *const migration_names[] = { "none", "incoming", "outgoing" };

static int parse_name(const char *const *names, int n, const char *s)
{
        for (int i = 0; i < n; i++)
                if (s && strcmp(names[i], s) == 0)
                        return i;
        return -EINVAL;
}

const char *elvis_exitless_name(enum elvis_exitless e)
{
        return e < __ELVIS_EXITLESS_MAX ? exitless_names[e] : "invalid";
}

int elvis_exitless_parse(const char *s) { return parse_name(exitless_names, __ELVIS_EXITLESS_MAX, s); }

const char *elvis_migration_name(enum elvis_migration m)
{
        return m < __ELVIS_MIGRATION_MAX ? migration_names[m] : "invalid";
}

int elvis_migration_parse(const char *s) { return parse_name(migration_names, __ELVIS_MIGRATION_MAX, s); }

const char *elvis_device_type_name(enum elvis_device_type t)
{
        return t < __ELVIS_DEVICE_TYPE_MAX ? device_type_names[t] : "invalid";
}

int elvis_device_type_parse(const char *s) { return parse_name(device_type_names, __ELVIS_DEVICE_TYPE_MAX, s); }

bool elvis_backend_serves(enum elvis_device_type t, enum elvis_backend b)
{
        if (t == ELVIS_DEVICE_BLK)
                return b == ELVIS_BACKEND_FILE || b == ELVIS_BACKEND_NULL;
        return t == ELVIS_DEVICE_NET && (b == ELVIS_BACKEND_TAP || b == ELVIS_BACKEND_LOOPBACK || b == ELVIS_BACKEND_NULL);
}

const char *elvis_backend_name(enum elvis_backend b)
{
        return b < __ELVIS_BACKEND_MAX ? backend_names[b] : "invalid";
}

int elvis_backend_parse(const char *s) { return parse_name(backend_names, __ELVIS_BACKEND_MAX, s); }

const char *elvis_mode_name(enum elvis_policy_mode m)
{
        return m < __ELVIS_MODE_MAX ? mode_names[m] : "invalid";
}

int elvis_mode_parse(const char *s) { return parse_name(mode_names, __ELVIS_MODE_MAX, s); }

/* Names start with a letter so they never look like numeric ids in a URL. */
bool elvis_vm_name_valid(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n >= ELVIS_VM_NAME_MAX || !isalpha((unsigned char)name[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
                        return false;
        return true;
}

bool elvis_device_id_valid(const char *id)
{
        size_t n = strlen(id);

        if (n == 0 || n >= ELVIS_DEVICE_ID_MAX || !isalpha((unsigned char)id[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)id[i]) && id[i] != '-' && id[i] != '_')
                        return false;
        return true;
}

/* Letters, digits, '_', '.' and '-' only: no '%' (the kernel would expand "tap%d" into a
 * new interface per open), no '/' or ':' , nothing a shell or sysfs path would mind. */
bool elvis_ifname_valid(const char *name)
{
        size_t n = strlen(name);

        if (n == 0 || n >= ELVIS_IFNAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)name[i]) && name[i] != '_' && name[i] != '.' && name[i] != '-')
                        return false;
        return true;
}

const struct elvis_device *elvis_state_find_device(const struct elvis_state *s, uint32_t vm, const char *device,
                                                   const struct elvis_vm **ret_vm)
{
        for (unsigned i = 0; i < s->nvms; i++)
                if (s->vms[i].id == vm)
                        for (unsigned d = 0; d < s->vms[i].ndevices; d++)
                                if (strcmp(s->vms[i].devices[d].id, device) == 0) {
                                        if (ret_vm)
                                                *ret_vm = &s->vms[i];
                                        return &s->vms[i].devices[d];
                                }
        return NULL;
}

/* Declared with the data-plane interface; here so that every data plane (in the daemon
 * or in elvis-dataplane) and the daemon share one definition. */
void elvis_dp_stats_fini(struct elvis_dp_stats *st)
{
        if (!st)
                return;
        free(st->sidecores);
        free(st->queues);
        st->sidecores = NULL;
        st->queues = NULL;
        st->nsidecores = st->nqueues = 0;
}
