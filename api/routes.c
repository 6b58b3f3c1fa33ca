/* Route handlers: decode, one manager call, encode or one error exit. */
#include "internal.h"
#include "problem.h"

#include "../daemon/codec.h"
#include "../daemon/domxml.h"
#include "../daemon/control.h"
#include "../daemon/libvirt.h"
#include "../daemon/log.h"
#include "../daemon/loop.h"
#include "../daemon/manager.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void api_fail_status(struct api_ctx *x, unsigned status, const char *detail)
{
        x->status = status;
        json_decref(x->out);
        x->out = elvis_problem_new(status, detail);
}

void api_fail(struct api_ctx *x, int err, const char *detail)
{
        api_fail_status(x, elvis_http_status_for_errno(err), detail && *detail ? detail : strerror(abs(err)));
}

void api_ok(struct api_ctx *x, unsigned status, json_t *doc)
{
        x->status = status;
        x->out = doc;
}

/* Changes made through the API go to the journal too, next to the policies' own: a VM
 * by its id and name, a sidecore (which has no name) by its id and CPU. */
static void journal_vm(struct api_ctx *x, const char *event, uint32_t id, const char *name)
{
        elvis_journal_add(x->m, "api", json_pack("{s:s, s:i, s:s}", "event", event, "id", (int)id, "name", name));
}

static void journal_sidecore(struct api_ctx *x, const char *event, uint32_t id, int cpu)
{
        elvis_journal_add(x->m, "api", json_pack("{s:s, s:i, s:i}", "event", event, "id", (int)id, "cpu", cpu));
}

static bool query_flag(struct api_ctx *x, const char *name, bool *ret)
{
        const char *v = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name);

        *ret = false;
        if (!v)
                return true;
        if (!strcmp(v, "1") || !strcmp(v, "true") || !*v)
                *ret = true;
        else if (strcmp(v, "0") && strcmp(v, "false")) {
                char detail[128];
                snprintf(detail, sizeof(detail), "query parameter %s must be true or false", name);
                api_fail_status(x, 400, detail);
                return false;
        }
        return true;
}

static struct elvis_vm *vm_from_path(struct api_ctx *x)
{
        struct elvis_vm *vm = elvis_manager_find_vm(x->m, x->id);
        char detail[160];

        if (!vm) {
                snprintf(detail, sizeof(detail), "no VM with id or name '%.64s'", x->id);
                api_fail_status(x, 404, detail);
        }
        return vm;
}

static bool sidecore_id(struct api_ctx *x, uint32_t *ret)
{
        char *end;
        unsigned long v;

        if (x->id[0] < '1' || x->id[0] > '9' || strlen(x->id) > 10)
                goto bad;
        v = strtoul(x->id, &end, 10);
        if (*end || v > UINT32_MAX)
                goto bad;
        *ret = (uint32_t)v;
        return true;
bad:
        api_fail_status(x, 404, "sidecore ids are positive integers");
        return false;
}

static void h_health(struct api_ctx *x)
{
        api_ok(x, 200, elvis_manager_health(x->m));
}

/* Readiness, apart from liveness (/v1/health answers 200 whenever the daemon answers at
 * all): 200 while the data plane runs, else 503 saying why, for probes and load
 * balancers that only look at the status. */
static void h_health_ready(struct api_ctx *x)
{
        json_t *h = elvis_manager_health(x->m), *dp = json_object_get(h, "dataplane");
        const char *detail = json_string_value(json_object_get(dp, "detail"));
        char why[320];

        if (!strcmp(json_string_value(json_object_get(h, "status")), "ok")) {
                api_ok(x, 200, json_pack("{s:b, s:s, s:s}", "ready", 1, "status", "ok", "detail", detail ? detail : ""));
        } else {
                snprintf(why, sizeof(why), "not ready: %s", detail && *detail ? detail : "no data plane runs");
                api_fail_status(x, 503, why);
                json_object_set_new(x->out, "ready", json_false());
        }
        json_decref(h);
}

static void h_topology(struct api_ctx *x)
{
        api_ok(x, 200, elvis_manager_topology(x->m));
}

static void h_vms_list(struct api_ctx *x)
{
        json_t *a = json_array();

        const struct elvis_state *st = elvis_manager_state(x->m);

        for (unsigned i = 0; i < st->nvms; i++)
                json_array_append_new(a, elvis_vm_to_json(&st->vms[i]));
        api_ok(x, 200, json_pack("{s:o}", "vms", a));
}

/* The qemu hook posts the domain XML itself: libvirtd is busy starting the domain and
 * must not be called back. Name, domain, policy come from it unless the body says. */
static int from_domain_xml(json_t *body, struct elvis_domain_info *info, struct elvis_err *e)
{
        json_t *dx = json_object_get(body, "domain_xml");
        char err[256], name[ELVIS_VM_NAME_MAX];
        int r;

        if (!json_is_string(dx))
                return elvis_err_set(e, -EINVAL, "VM: field 'domain_xml' must be a string");
        r = elvis_domxml_parse(json_string_value(dx), json_string_length(dx), info, err, sizeof(err));
        if (r < 0)
                return elvis_err_set(e, r, "%s", err);
        json_object_del(body, "domain_xml");
        if (!json_object_get(body, "name")) {
                elvis_domxml_vm_name(info->name, name, sizeof(name));
                json_object_set_new(body, "name", json_string(name));
        }
        if (!json_object_get(body, "domain"))
                json_object_set_new(body, "domain", json_string(info->uuid[0] ? info->uuid : info->name));
        if (!json_object_get(body, "policy") && info->has_policy)
                json_object_set_new(body, "policy", json_pack("{s:i, s:s}", "weight", (int)info->policy.weight,
                                                              "exitless", elvis_exitless_name(info->policy.exitless)));
        return 0;
}

static void h_vms_create(struct api_ctx *x)
{
        struct elvis_domain_info info;
        struct elvis_err e = { 0 };
        struct elvis_vm vm;
        json_t *body = NULL;
        bool dry_run, have_info = false;
        int r = 0;

        if (!query_flag(x, "dry_run", &dry_run))
                return;
        memset(&vm, 0, sizeof(vm));
        if (json_object_get(x->body, "domain_xml")) {
                body = json_deep_copy(x->body);
                r = from_domain_xml(body, &info, &e);
                have_info = r == 0;
                /* the hook hands over every domain libvirt starts: only those that opted in */
                if (r == 0 && elvis_libvirt_may_adopt(x->m, &info, &e) < 0) {
                        json_decref(body);
                        api_fail(x, e.code, e.detail);
                        json_object_set_new(x->out, "type", json_string(ELVIS_PROBLEM_NOT_OPTED_IN));
                        return;
                }
        }
        if (r == 0)
                r = elvis_vm_from_json(body ? body : x->body, ELVIS_DECODE_CREATE, &vm, &e);
        json_decref(body);
        /* a domain named without its XML: ask libvirt what it can tell */
        if (r == 0 && !have_info) {
                r = elvis_libvirt_domain_for(x->m, &vm, &info, &e);
                have_info = r > 0;
                r = r < 0 ? r : 0;
        }
        if (r == 0)
                r = elvis_manager_vm_add_domain(x->m, &vm, have_info ? &info : NULL, dry_run, &e);
        if (r < 0)
                { api_fail(x, r, e.detail); return; }
        if (dry_run) {
                json_t *doc = elvis_vm_to_json(&vm);
                json_object_set_new(doc, "dry_run", json_true());
                { api_ok(x, 200, doc); return; }
        }
        snprintf(x->location, sizeof(x->location), "/v1/vms/%u", vm.id);
        journal_vm(x, "vm_added", vm.id, vm.name);
        if (vm.migration == ELVIS_MIGRATION_INCOMING) {
                char reason[512];
                snprintf(reason, sizeof(reason),
                         "domain %s arrives by live migration: VM '%s' added with its CPUs and %u device(s) "
                         "before its QEMU starts here", have_info && info.name[0] ? info.name : vm.domain[0] ? vm.domain : "-",
                         vm.name, vm.ndevices);
                elvis_libvirt_journal_migration(x->m, "migration_in", &vm, reason);
        }
        api_ok(x, 201, elvis_vm_to_json(&vm));
}

static void h_vm_get(struct api_ctx *x)
{
        struct elvis_vm *vm = vm_from_path(x);
        json_t *j;

        if (!vm)
                return;
        j = elvis_vm_to_json(vm);
        /* live view from libvirt: a pin that drifted shows here */
        json_object_set_new(j, "libvirt", elvis_libvirt_vm_info(x->m, vm));
        api_ok(x, 200, j);
}

static void h_vm_patch(struct api_ctx *x)
{
        struct elvis_vm *vm = vm_from_path(x), out;
        struct elvis_err e = { 0 };
        int r;

        if (!vm)
                return;
        r = elvis_manager_vm_patch(x->m, vm->id, x->body, &out, &e);
        if (r < 0)
                { api_fail(x, r, e.detail); return; }
        api_ok(x, 200, elvis_vm_to_json(&out));
}

static void h_vm_delete(struct api_ctx *x)
{
        struct elvis_vm *vm = vm_from_path(x);
        struct elvis_err e = { 0 };
        int r;

        if (!vm)
                return;
        {
                struct elvis_vm was = *vm;
                r = elvis_manager_vm_remove(x->m, was.id, &e);
                if (r == 0)
                        journal_vm(x, "vm_removed", was.id, was.name);
                /* the qemu hook's release on a source can come before libvirt's STOPPED_MIGRATED
                 * event, and on a destination before STOPPED: the migration's end is told either way */
                if (r == 0 && was.migration) {
                        char reason[512];
                        snprintf(reason, sizeof(reason), "domain %s %s: VM %u '%s' removed through the API (qemu hook release)",
                                 was.domain[0] ? was.domain : "-",
                                 was.migration == ELVIS_MIGRATION_OUTGOING ? "stopped here after its switch-over" :
                                                                             "stopped before its incoming migration completed",
                                 was.id, was.name);
                        elvis_libvirt_journal_migration(x->m, was.migration == ELVIS_MIGRATION_OUTGOING ? "migrated_out" :
                                                        "migration_in_failed", &was, reason);
                }
        }
        if (r < 0)
                { api_fail(x, r, e.detail); return; }
        api_ok(x, 200, json_pack("{s:b}", "removed", 1));
}

static void h_sidecores_list(struct api_ctx *x)
{
        json_t *a = json_array();

        const struct elvis_state *st = elvis_manager_state(x->m);

        for (unsigned i = 0; i < st->nsidecores; i++)
                json_array_append_new(a, elvis_sidecore_to_json(st, &st->sidecores[i]));
        api_ok(x, 200, json_pack("{s:o}", "sidecores", a));
}

static void h_sidecores_create(struct api_ctx *x)
{
        struct elvis_sidecore req = { .cpu = -1 }, sc;
        struct elvis_err e = { 0 };
        int r = 0;

        if (x->body)
                r = elvis_sidecore_from_json(x->body, ELVIS_DECODE_CREATE, &req, &e);
        if (r == 0)
                r = elvis_manager_sidecore_add(x->m, req.cpu, &sc, &e);
        if (r < 0)
                { api_fail(x, r, e.detail); return; }
        snprintf(x->location, sizeof(x->location), "/v1/sidecores/%u", sc.id);
        journal_sidecore(x, "sidecore_added", sc.id, sc.cpu);
        api_ok(x, 201, elvis_sidecore_to_json(&x->m->state, elvis_state_sidecore(&x->m->state, sc.id)));
}

static void h_sidecore_get(struct api_ctx *x)
{
        struct elvis_sidecore *sc;
        uint32_t id;

        if (!sidecore_id(x, &id))
                return;
        sc = elvis_state_sidecore(&x->m->state, id);
        if (!sc) {
                char detail[64];
                snprintf(detail, sizeof(detail), "no sidecore with id %u", id);
                api_fail_status(x, 404, detail);
                return;
        }
        api_ok(x, 200, elvis_sidecore_to_json(&x->m->state, sc));
}

static void h_sidecore_delete(struct api_ctx *x)
{
        struct elvis_err e = { 0 };
        struct elvis_sidecore *sc;
        uint32_t id;
        int r, cpu;

        if (!sidecore_id(x, &id))
                return;
        sc = elvis_state_sidecore(&x->m->state, id);
        cpu = sc ? sc->cpu : -1;
        r = elvis_manager_sidecore_remove(x->m, id, &e);
        if (r == 0)
                journal_sidecore(x, "sidecore_removed", id, cpu);
        if (r < 0)
                { api_fail(x, r, e.detail); return; }
        api_ok(x, 200, json_pack("{s:b}", "removed", 1));
}

static void h_policy_get(struct api_ctx *x)
{
        api_ok(x, 200, elvis_policy_to_json(&elvis_manager_state(x->m)->policy));
}

static void h_policy_put(struct api_ctx *x)
{
        struct elvis_err e = { 0 };
        int r = elvis_manager_policy_set(x->m, x->body, &e);

        if (r == 0)
                elvis_journal_add(x->m, "api", json_pack("{s:s, s:O}", "event", "policy_changed", "changes", x->body));
        if (r < 0)
                { api_fail(x, r, e.detail); return; }
        api_ok(x, 200, elvis_policy_to_json(&elvis_manager_state(x->m)->policy));
}

static void h_stats(struct api_ctx *x)
{
        api_ok(x, 200, elvis_manager_stats(x->m));
}

static void h_metrics(struct api_ctx *x)
{
        x->text = elvis_metrics_scrape(x->m);
        if (!x->text)
                { api_fail(x, -ENOMEM, "cannot render metrics"); return; }
        x->status = 200;
        x->text_type = ELVIS_METRICS_CONTENT_TYPE;
}

static bool query_uint(struct api_ctx *x, const char *name, unsigned long long max, unsigned long long *ret)
{
        const char *v = MHD_lookup_connection_value(x->conn, MHD_GET_ARGUMENT_KIND, name);
        char *end, detail[128];

        if (!v)
                return true;
        errno = 0;
        *ret = strtoull(v, &end, 10);
        if (!*v || *end || errno || *ret > max || v[0] == '-') {
                snprintf(detail, sizeof(detail), "query parameter %s must be an integer up to %llu", name, max);
                api_fail_status(x, 400, detail);
                return false;
        }
        return true;
}

/* The journal; ?since=SEQ returns what came after; ?wait=S holds the request up to S
 * seconds until something does (long poll, for elvisctl events --follow). */
static void h_events(struct api_ctx *x)
{
        unsigned long long since = 0, wait = 0;
        uint64_t last;
        json_t *events;

        if (!query_uint(x, "since", UINT64_MAX / 2, &since) || !query_uint(x, "wait", 60, &wait))
                return;
        events = elvis_journal_since(x->m, since, 500, &last);
        if (!json_array_size(events) && wait && !x->waited_out) {
                if (!*x->deadline_ns)
                        *x->deadline_ns = elvis_now_ns() + wait * 1000000000ull;
                json_decref(events);
                api_suspend(x, *x->deadline_ns);
                if (x->suspended)
                        return;
                events = elvis_journal_since(x->m, since, 500, &last);
        }
        api_ok(x, 200, json_pack("{s:o, s:I, s:s}", "events", events, "last", (json_int_t)last, "boot",
                                 elvis_journal_boot(x->m)));
}

static void h_plan(struct api_ctx *x)
{
        api_ok(x, 200, elvis_control_plan(x->m));
}

const struct api_route elvis_api_route_table[] = {
        { "GET", "/v1/health", h_health, false, false },
        { "GET", "/v1/health/ready", h_health_ready, false, false },
        { "GET", "/v1/topology", h_topology, false, false },
        { "GET", "/v1/vms", h_vms_list, false, false },
        { "POST", "/v1/vms", h_vms_create, true, false },
        { "GET", "/v1/vms/{id}", h_vm_get, false, false },
        { "PATCH", "/v1/vms/{id}", h_vm_patch, true, false },
        { "DELETE", "/v1/vms/{id}", h_vm_delete, false, false },
        { "GET", "/v1/sidecores", h_sidecores_list, false, false },
        { "POST", "/v1/sidecores", h_sidecores_create, true, true },
        { "GET", "/v1/sidecores/{id}", h_sidecore_get, false, false },
        { "DELETE", "/v1/sidecores/{id}", h_sidecore_delete, false, false },
        { "GET", "/v1/policy", h_policy_get, false, false },
        { "PUT", "/v1/policy", h_policy_put, true, false },
        { "PATCH", "/v1/policy", h_policy_put, true, false },
        { "GET", "/v1/stats", h_stats, false, false },
        { "GET", "/v1/events", h_events, false, false },
        { "GET", "/v1/plan", h_plan, false, false },
        { "GET", "/metrics", h_metrics, false, false },
};
const size_t elvis_api_route_count = sizeof(elvis_api_route_table) / sizeof(elvis_api_route_table[0]);
