/* Unit tests: strict JSON codecs for VMs, sidecores, policy and the whole state. */
#include <criterion/criterion.h>

#include "../../daemon/codec.h"

#include <errno.h>

static int decode_vm(const char *text, enum elvis_decode_mode mode, struct elvis_vm *vm, struct elvis_err *e)
{
        json_error_t jerr;
        json_t *j = json_loads(text, JSON_ALLOW_NUL, &jerr);
        int r;

        cr_assert_not_null(j, "test JSON is valid: %s", jerr.text);
        r = elvis_vm_from_json(j, mode, vm, e);
        json_decref(j);
        return r;
}

static void expect_bad(const char *text, enum elvis_decode_mode mode, const char *needle)
{
        struct elvis_vm vm = { 0 };
        struct elvis_err e = { 0 };

        cr_assert_eq(decode_vm(text, mode, &vm, &e), -EINVAL, "accepted: %s", text);
        cr_assert(strstr(e.detail, needle), "detail '%s' lacks '%s' for %s", e.detail, needle, text);
}

Test(codec, vm_create_defaults)
{
        struct elvis_vm vm;
        struct elvis_err e = { 0 };

        cr_assert_eq(decode_vm("{\"name\":\"web1\",\"devices\":[{},{\"backend\":\"loopback\",\"queues\":4}]}",
                               ELVIS_DECODE_CREATE, &vm, &e), 0, "%s", e.detail);
        cr_assert_str_eq(vm.name, "web1");
        cr_assert_eq(vm.policy.weight, 100);
        cr_assert_eq(vm.policy.exitless, ELVIS_EXITLESS_AUTO);
        cr_assert_eq(vm.ndevices, 2);
        cr_assert_str_eq(vm.devices[0].id, "net0");
        cr_assert_eq(vm.devices[0].backend, ELVIS_BACKEND_TAP);
        cr_assert_eq(vm.devices[0].queues, 1);
        cr_assert_str_eq(vm.devices[1].id, "net1");
        cr_assert_eq(vm.devices[1].queues, 4);
        cr_assert_eq(vm.numa, -1);
}

Test(codec, vm_create_rejects_bad_input)
{
        expect_bad("{}", ELVIS_DECODE_CREATE, "'name' is required");
        expect_bad("[]", ELVIS_DECODE_CREATE, "must be a JSON object");
        expect_bad("{\"name\":\"a\",\"colour\":1}", ELVIS_DECODE_CREATE, "unknown field 'colour'");
        expect_bad("{\"name\":\"a\",\"id\":4}", ELVIS_DECODE_CREATE, "'id' is read-only");
        expect_bad("{\"name\":\"a\",\"cpus\":\"1\"}", ELVIS_DECODE_CREATE, "'cpus' is read-only");
        expect_bad("{\"name\":\"a\",\"pinned_cpus\":\"1\"}", ELVIS_DECODE_CREATE, "'pinned_cpus' is read-only");
        expect_bad("{\"name\":7}", ELVIS_DECODE_CREATE, "must be a string");
        expect_bad("{\"name\":\"1abc\"}", ELVIS_DECODE_CREATE, "must start with a letter");
        expect_bad("{\"name\":\"a/b\"}", ELVIS_DECODE_CREATE, "must start with a letter");
        expect_bad("{\"name\":\"a\",\"vcpus\":-1}", ELVIS_DECODE_CREATE, "between 0 and 256");
        expect_bad("{\"name\":\"a\",\"vcpus\":1.5}", ELVIS_DECODE_CREATE, "must be an integer");
        expect_bad("{\"name\":\"a\",\"vcpus\":\"2\"}", ELVIS_DECODE_CREATE, "must be an integer");
        expect_bad("{\"name\":\"a\",\"policy\":{\"weight\":0}}", ELVIS_DECODE_CREATE, "between 1 and 10000");
        expect_bad("{\"name\":\"a\",\"policy\":{\"weight\":10001}}", ELVIS_DECODE_CREATE, "between 1 and 10000");
        expect_bad("{\"name\":\"a\",\"policy\":{\"exitless\":\"sometimes\"}}", ELVIS_DECODE_CREATE,
                   "one of auto, always, never");
        expect_bad("{\"name\":\"a\",\"policy\":{\"nice\":1}}", ELVIS_DECODE_CREATE, "unknown field 'nice'");
        expect_bad("{\"name\":\"a\",\"devices\":{}}", ELVIS_DECODE_CREATE, "must be an array");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"queues\":0}]}", ELVIS_DECODE_CREATE, "between 1 and 16");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"queues\":17}]}", ELVIS_DECODE_CREATE, "between 1 and 16");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"scsi\"}]}", ELVIS_DECODE_CREATE, "one of net, blk");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"backend\":\"loopback\",\"tap\":\"t0\"}]}", ELVIS_DECODE_CREATE,
                   "only valid with backend");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"tap\":\"a/b\"}]}", ELVIS_DECODE_CREATE, "not a valid interface");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"tap\":\"0123456789abcdef\"}]}", ELVIS_DECODE_CREATE,
                   "longer than 15");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"id\":\"x\"},{\"id\":\"x\"}]}", ELVIS_DECODE_CREATE,
                   "duplicate device id");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"socket\":\"/tmp/x\"}]}", ELVIS_DECODE_CREATE, "read-only");
        expect_bad("{\"name\":\"a\",\"devices\":[{},{},{},{},{},{},{},{},{}]}", ELVIS_DECODE_CREATE, "at most 8");
        expect_bad("{\"name\":\"a\",\"domain\":\"x/y\"}", ELVIS_DECODE_CREATE, "control character or '/'");
        expect_bad("{\"name\":\"a\\u0000b\"}", ELVIS_DECODE_CREATE, "NUL");
}

Test(codec, vm_patch_keeps_other_fields)
{
        struct elvis_vm vm = { 0 };
        struct elvis_err e = { 0 };

        cr_assert_eq(decode_vm("{\"name\":\"a\",\"vcpus\":2,\"policy\":{\"weight\":5}}", ELVIS_DECODE_CREATE, &vm, &e),
                     0);
        vm.id = 9;
        cr_assert_eq(decode_vm("{\"policy\":{\"exitless\":\"never\"}}", ELVIS_DECODE_PATCH, &vm, &e), 0, "%s",
                     e.detail);
        cr_assert_eq(vm.policy.weight, 5);
        cr_assert_eq(vm.policy.exitless, ELVIS_EXITLESS_NEVER);
        cr_assert_eq(vm.vcpus, 2);
        cr_assert_eq(vm.id, 9);
        expect_bad("{\"vcpus\":4}", ELVIS_DECODE_PATCH, "cannot be changed");
        expect_bad("{\"devices\":[]}", ELVIS_DECODE_PATCH, "cannot be changed");
}

static void sample_state(struct elvis_state *s)
{
        struct elvis_vm *vm;

        cr_assert_eq(elvis_state_init(s), 0);
        s->sidecores[0] = (struct elvis_sidecore){ .id = 1, .cpu = 7, .numa = 0, .automatic = true, .created = 5 };
        s->nsidecores = 1;
        vm = &s->vms[0];
        *vm = (struct elvis_vm){ .id = 3, .vcpus = 2, .numa = 0, .created = 100 };
        snprintf(vm->name, sizeof(vm->name), "db");
        snprintf(vm->domain, sizeof(vm->domain), "db-domain");
        elvis_cpuset_parse("2-3", &vm->cpus);
        vm->policy = (struct elvis_vm_policy){ 250, ELVIS_EXITLESS_ALWAYS };
        vm->ndevices = 1;
        vm->devices[0] = (struct elvis_device){ .backend = ELVIS_BACKEND_TAP, .queues = 2, .sidecore = { 1, 0 } };
        snprintf(vm->devices[0].id, sizeof(vm->devices[0].id), "net0");
        snprintf(vm->devices[0].tap, sizeof(vm->devices[0].tap), "tap0");
        snprintf(vm->devices[0].socket, sizeof(vm->devices[0].socket), "/run/elvis/vm3-net0.sock");
        s->nvms = 1;
        s->next_vm_id = 4;
        s->next_sidecore_id = 2;
        s->policy.budget_packets = 77;
        s->policy.scale_up_idle = 0.2;
}

Test(codec, state_roundtrip)
{
        struct elvis_state s, back;
        struct elvis_err e = { 0 };
        json_t *j;

        sample_state(&s);
        j = elvis_state_to_json(&s);
        cr_assert_eq(elvis_state_init(&back), 0);
        cr_assert_eq(elvis_state_from_json(j, &back, &e), 0, "%s", e.detail);
        cr_assert_eq(back.nvms, 1);
        cr_assert_eq(back.nsidecores, 1);
        cr_assert_eq(back.next_vm_id, 4);
        cr_assert_eq(back.vms[0].id, 3);
        cr_assert_str_eq(back.vms[0].domain, "db-domain");
        cr_assert(elvis_cpuset_equal(&back.vms[0].cpus, &s.vms[0].cpus));
        cr_assert_eq(back.vms[0].policy.weight, 250);
        cr_assert_eq(back.vms[0].devices[0].sidecore[0], 1);
        cr_assert_eq(back.vms[0].devices[0].sidecore[1], 0);
        cr_assert_str_eq(back.vms[0].devices[0].socket, "/run/elvis/vm3-net0.sock");
        cr_assert(back.sidecores[0].automatic);
        cr_assert_eq(back.sidecores[0].cpu, 7);
        cr_assert_eq(back.policy.budget_packets, 77);
        cr_assert_float_eq(back.policy.scale_up_idle, 0.2, 1e-12);
        json_decref(j);
        elvis_state_fini(&s);
        elvis_state_fini(&back);
}

static void expect_state_rejected(void (*mutate)(json_t *j), const char *needle)
{
        struct elvis_state s, back;
        struct elvis_err e = { 0 };
        json_t *j;

        sample_state(&s);
        j = elvis_state_to_json(&s);
        mutate(j);
        cr_assert_eq(elvis_state_init(&back), 0);
        back.nvms = 0;
        cr_assert_lt(elvis_state_from_json(j, &back, &e), 0);
        cr_assert(strstr(e.detail, needle), "'%s' lacks '%s'", e.detail, needle);
        cr_assert_eq(back.next_vm_id, 1, "target unchanged on failure");
        json_decref(j);
        elvis_state_fini(&s);
        elvis_state_fini(&back);
}

static void m_missing_sidecore(json_t *j)
{
        json_array_clear(json_object_get(j, "sidecores"));
}

static void m_dup_vm(json_t *j)
{
        json_t *vms = json_object_get(j, "vms");
        json_t *copy = json_deep_copy(json_array_get(vms, 0));
        json_object_set_new(copy, "name", json_string("other"));
        json_object_set_new(copy, "cpus", json_string(""));
        json_object_set_new(copy, "vcpus", json_integer(0));
        json_array_append_new(vms, copy);
}

static void m_cpu_twice(json_t *j)
{
        json_t *sc = json_array_get(json_object_get(j, "sidecores"), 0);
        json_object_set_new(sc, "cpu", json_integer(2));
}

static void m_version(json_t *j)
{
        json_object_set_new(j, "version", json_integer(99));
}

static void m_format(json_t *j)
{
        json_object_del(j, "format");
}

static void m_next_id(json_t *j)
{
        json_object_set_new(j, "next_vm_id", json_integer(2));
}

static void m_vcpus_mismatch(json_t *j)
{
        json_object_set_new(json_array_get(json_object_get(j, "vms"), 0), "vcpus", json_integer(5));
}

static void m_cpus_and_pins(json_t *j)
{
        json_object_set_new(json_array_get(json_object_get(j, "vms"), 0), "pinned_cpus", json_string("2-5"));
}

static void m_bad_pins(json_t *j)
{
        json_object_set_new(json_array_get(json_object_get(j, "vms"), 0), "pinned_cpus", json_string("5-2"));
}

static void m_bad_policy(json_t *j)
{
        json_object_set_new(json_object_get(j, "policy"), "min_sidecores", json_integer(500));
}

Test(codec, state_cross_checks)
{
        expect_state_rejected(m_missing_sidecore, "missing sidecore 1");
        expect_state_rejected(m_dup_vm, "duplicate VM id 3");
        expect_state_rejected(m_cpu_twice, "already taken");
        expect_state_rejected(m_version, "version 99 is not supported");
        expect_state_rejected(m_format, "not an ELVIS state file");
        expect_state_rejected(m_next_id, "not below next_vm_id");
        expect_state_rejected(m_vcpus_mismatch, "5 vcpus but cpus lists 2");
        expect_state_rejected(m_bad_policy, "exceeds max_sidecores");
        expect_state_rejected(m_cpus_and_pins, "both cpus and pinned_cpus");
        expect_state_rejected(m_bad_pins, "'pinned_cpus' is not a valid CPU list");
}

/* vcpu-pinning respect: the orchestrator's CPUs are stored instead of a reservation; they
 * may overlap a sidecore (a conflict to report, not a damaged file). */
Test(codec, state_with_orchestrator_pins)
{
        struct elvis_state s, back;
        struct elvis_err e = { 0 };
        json_t *j;

        sample_state(&s);
        j = elvis_state_to_json(&s);
        cr_assert_null(json_object_get(json_array_get(json_object_get(j, "vms"), 0), "pinned_cpus"),
                       "no pins, no key: older releases can read the file");
        json_decref(j);
        elvis_cpuset_zero(&s.vms[0].cpus);
        elvis_cpuset_parse("6-7", &s.vms[0].pinned);
        j = elvis_state_to_json(&s);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "vms"), 0), "pinned_cpus")),
                         "6-7");
        cr_assert_eq(elvis_state_init(&back), 0);
        cr_assert_eq(elvis_state_from_json(j, &back, &e), 0, "%s", e.detail);
        cr_assert(elvis_cpuset_empty(&back.vms[0].cpus));
        cr_assert(elvis_cpuset_equal(&back.vms[0].pinned, &s.vms[0].pinned), "sidecore 1 on CPU 7 is no obstacle");
        json_decref(j);
        elvis_state_fini(&s);
        elvis_state_fini(&back);
}

/* A live migration's mark: stored only while set (older releases read the file), given
 * by a request only as "incoming" (the qemu hook's migrate), never patched. */
Test(codec, vm_migration_mark)
{
        struct elvis_state s, back;
        struct elvis_vm vm;
        struct elvis_err e = { 0 };
        json_t *j, *v;

        sample_state(&s);
        j = elvis_state_to_json(&s);
        cr_assert_null(json_object_get(json_array_get(json_object_get(j, "vms"), 0), "migration"),
                       "no migration, no key in the state file");
        json_decref(j);
        v = elvis_vm_to_json(&s.vms[0]);
        cr_assert(json_is_null(json_object_get(v, "migration")), "the API shows null");
        json_decref(v);
        s.vms[0].migration = ELVIS_MIGRATION_OUTGOING;
        j = elvis_state_to_json(&s);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "vms"), 0), "migration")),
                         "outgoing");
        cr_assert_eq(elvis_state_init(&back), 0);
        cr_assert_eq(elvis_state_from_json(j, &back, &e), 0, "%s", e.detail);
        cr_assert_eq(back.vms[0].migration, ELVIS_MIGRATION_OUTGOING, "a restart finds the mark");
        json_decref(j);
        elvis_state_fini(&s);
        elvis_state_fini(&back);

        cr_assert_eq(decode_vm("{\"name\":\"a\",\"migration\":\"incoming\"}", ELVIS_DECODE_CREATE, &vm, &e), 0, "%s",
                     e.detail);
        cr_assert_eq(vm.migration, ELVIS_MIGRATION_INCOMING);
        cr_assert_eq(decode_vm("{\"name\":\"a\",\"migration\":null}", ELVIS_DECODE_CREATE, &vm, &e), 0, "%s", e.detail);
        cr_assert_eq(vm.migration, ELVIS_MIGRATION_NONE);
        expect_bad("{\"name\":\"a\",\"migration\":\"outgoing\"}", ELVIS_DECODE_CREATE,
                   "may only be 'incoming' or 'none'");
        expect_bad("{\"name\":\"a\",\"migration\":\"sideways\"}", ELVIS_DECODE_CREATE,
                   "one of none, incoming, outgoing, got 'sideways'");
        expect_bad("{\"name\":\"a\",\"migration\":1}", ELVIS_DECODE_CREATE, "must be a string");
        expect_bad("{\"migration\":\"none\"}", ELVIS_DECODE_PATCH, "'migration' cannot be changed");
}

Test(codec, policy_patch_and_validation)
{
        struct elvis_policy p;
        struct elvis_err e = { 0 };
        json_t *j;

        elvis_policy_defaults(&p);
        j = json_pack("{s:s, s:f, s:i}", "mode", "dynamic", "scale_up_idle", 0.05, "max_sidecores", 4);
        cr_assert_eq(elvis_policy_from_json(j, ELVIS_DECODE_PATCH, &p, &e), 0, "%s", e.detail);
        cr_assert_eq(p.mode, ELVIS_MODE_DYNAMIC);
        cr_assert_eq(p.max_sidecores, 4);
        cr_assert_eq(p.interval_ms, 100, "untouched fields keep their values");
        json_decref(j);

        j = json_pack("{s:f}", "scale_up_idle", 0.9);
        cr_assert_eq(elvis_policy_from_json(j, ELVIS_DECODE_PATCH, &p, &e), -EINVAL);
        cr_assert(strstr(e.detail, "must be below scale_down_idle"), "%s", e.detail);
        cr_assert_float_eq(p.scale_up_idle, 0.05, 1e-12, "nothing applied on error");
        json_decref(j);

        j = json_pack("{s:i}", "interval_ms", 5);
        cr_assert_eq(elvis_policy_from_json(j, ELVIS_DECODE_PATCH, &p, &e), -EINVAL);
        json_decref(j);
        j = json_pack("{s:s}", "mode", "turbo");
        cr_assert_eq(elvis_policy_from_json(j, ELVIS_DECODE_PATCH, &p, &e), -EINVAL);
        json_decref(j);
        j = json_pack("{s:i}", "budget_packets", -3);
        cr_assert_eq(elvis_policy_from_json(j, ELVIS_DECODE_PATCH, &p, &e), -EINVAL);
        json_decref(j);
        j = json_pack("{s:b}", "budget_bytes", 1);
        cr_assert_eq(elvis_policy_from_json(j, ELVIS_DECODE_PATCH, &p, &e), -EINVAL);
        json_decref(j);
}

Test(codec, sidecore_create)
{
        struct elvis_sidecore sc;
        struct elvis_err e = { 0 };
        json_t *j = json_pack("{s:i}", "cpu", 3);

        cr_assert_eq(elvis_sidecore_from_json(j, ELVIS_DECODE_CREATE, &sc, &e), 0);
        cr_assert_eq(sc.cpu, 3);
        json_decref(j);
        j = json_pack("{s:i}", "id", 3);
        cr_assert_eq(elvis_sidecore_from_json(j, ELVIS_DECODE_CREATE, &sc, &e), -EINVAL);
        json_decref(j);
        j = json_pack("{s:i}", "cpu", 4096);
        cr_assert_eq(elvis_sidecore_from_json(j, ELVIS_DECODE_CREATE, &sc, &e), -EINVAL);
        json_decref(j);
}

/* Who may connect (vmm_uid/vmm_gid) and whether a tap is adopted: validated, kept in the
 * state, fixed once the VM exists. */
Test(codec, vmm_identity_and_tap_adoption)
{
        struct elvis_vm vm = { 0 };
        struct elvis_err e = { 0 };
        json_t *j;

        cr_assert_eq(decode_vm("{\"name\":\"a\",\"vmm_uid\":64055,\"vmm_gid\":994,"
                               "\"devices\":[{\"backend\":\"tap\",\"tap\":\"tapx\",\"adopt\":true}]}",
                               ELVIS_DECODE_CREATE, &vm, &e), 0, "%s", e.detail);
        cr_assert(vm.vmm_uid_set && vm.vmm_uid == 64055 && vm.vmm_gid_set && vm.vmm_gid == 994);
        cr_assert(vm.devices[0].tap_adopt);
        j = elvis_vm_to_json(&vm);
        cr_assert_eq(json_integer_value(json_object_get(j, "vmm_uid")), 64055);
        cr_assert(json_is_true(json_object_get(json_array_get(json_object_get(j, "devices"), 0), "adopt")));
        json_decref(j);
        expect_bad("{\"name\":\"a\",\"vmm_uid\":-1}", ELVIS_DECODE_CREATE, "vmm_uid");
        expect_bad("{\"name\":\"a\",\"vmm_uid\":4294967295}", ELVIS_DECODE_CREATE, "vmm_uid");
        expect_bad("{\"name\":\"a\",\"vmm_gid\":\"kvm\"}", ELVIS_DECODE_CREATE, "vmm_gid");
        expect_bad("{\"vmm_uid\":5}", ELVIS_DECODE_PATCH, "cannot be changed");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"backend\":\"loopback\",\"adopt\":true}]}", ELVIS_DECODE_CREATE,
                   "adopt");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"backend\":\"tap\",\"tap\":\"t\",\"adopt\":1}]}", ELVIS_DECODE_CREATE,
                   "adopt");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"backend\":\"tap\",\"tap\":\"tap%d\"}]}", ELVIS_DECODE_CREATE,
                   "tap is not a valid interface name");
}

/* blk devices: type defaults to net; a blk device's id, backend, size and fields. */
Test(codec, blk_device_create)
{
        struct elvis_vm vm;
        struct elvis_err e = { 0 };

        cr_assert_eq(decode_vm("{\"name\":\"db\",\"devices\":[{},{\"type\":\"blk\",\"path\":\"/srv/i/a.img\"},"
                               "{\"type\":\"blk\",\"backend\":\"null\",\"queues\":4},"
                               "{\"type\":\"blk\",\"backend\":\"null\",\"size\":\"64M\",\"readonly\":true},"
                               "{\"type\":\"blk\",\"backend\":\"file\",\"path\":\"/srv/i/b.img\",\"readonly\":true,"
                               "\"id\":\"data\",\"queues\":2}]}",
                               ELVIS_DECODE_CREATE, &vm, &e), 0, "%s", e.detail);
        cr_assert_eq(vm.ndevices, 5);
        cr_assert_eq(vm.devices[0].type, ELVIS_DEVICE_NET);
        cr_assert_str_eq(vm.devices[0].id, "net0");
        cr_assert_eq(vm.devices[1].type, ELVIS_DEVICE_BLK);
        cr_assert_str_eq(vm.devices[1].id, "blk1");
        cr_assert_eq(vm.devices[1].backend, ELVIS_BACKEND_FILE);
        cr_assert_str_eq(vm.devices[1].path, "/srv/i/a.img");
        cr_assert_not(vm.devices[1].readonly);
        cr_assert_eq(vm.devices[2].backend, ELVIS_BACKEND_NULL);
        cr_assert_eq(vm.devices[2].size_bytes, 1ull << 30, "1 GiB by default");
        cr_assert_eq(vm.devices[2].queues, 4);
        cr_assert_eq(vm.devices[3].size_bytes, 64ull << 20);
        cr_assert(vm.devices[3].readonly);
        cr_assert_str_eq(vm.devices[4].id, "data");
        cr_assert(vm.devices[4].readonly);
        cr_assert_eq(vm.devices[4].queues, 2);
}

Test(codec, blk_device_rejects_bad_combinations)
{
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\"}]}", ELVIS_DECODE_CREATE, "needs a path");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"tap\"}]}", ELVIS_DECODE_CREATE,
                   "cannot serve a blk device");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"loopback\"}]}", ELVIS_DECODE_CREATE,
                   "cannot serve a blk device");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"backend\":\"file\"}]}", ELVIS_DECODE_CREATE,
                   "cannot serve a net device");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"path\":\"/i/a\",\"tap\":\"t0\"}]}",
                   ELVIS_DECODE_CREATE, "only valid for net devices");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"adopt\":true}]}",
                   ELVIS_DECODE_CREATE, "only valid for net devices");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"path\":\"/i/a\"}]}", ELVIS_DECODE_CREATE, "only valid for blk");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"readonly\":true}]}", ELVIS_DECODE_CREATE, "only valid for blk");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"size\":512}]}", ELVIS_DECODE_CREATE, "only valid for blk");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"path\":\"a.img\"}]}", ELVIS_DECODE_CREATE,
                   "must be absolute");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"path\":\"/i/a\"}]}",
                   ELVIS_DECODE_CREATE, "only valid with backend \"file\"");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"path\":\"/i/a\",\"size\":\"1G\"}]}",
                   ELVIS_DECODE_CREATE, "only valid with backend \"null\"");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"path\":\"/i/a\",\"readonly\":\"yes\"}]}",
                   ELVIS_DECODE_CREATE, "readonly must be true or false");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"size\":0}]}",
                   ELVIS_DECODE_CREATE, "positive multiple of 512");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"size\":1000}]}",
                   ELVIS_DECODE_CREATE, "positive multiple of 512");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"size\":\"8X\"}]}",
                   ELVIS_DECODE_CREATE, "K, M, G or T suffix");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"size\":-512}]}",
                   ELVIS_DECODE_CREATE, "K, M, G or T suffix");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"size\":\"2048T\"}]}",
                   ELVIS_DECODE_CREATE, "K, M, G or T suffix");
        expect_bad("{\"name\":\"a\",\"devices\":[{\"type\":\"blk\",\"backend\":\"null\",\"queues\":17}]}",
                   ELVIS_DECODE_CREATE, "between 1 and 16");
}

Test(codec, size_parse)
{
        uint64_t v = 0;

        cr_assert_eq(elvis_size_parse("4096", &v), 0);
        cr_assert_eq(v, 4096);
        cr_assert_eq(elvis_size_parse("8G", &v), 0);
        cr_assert_eq(v, 8ull << 30);
        cr_assert_eq(elvis_size_parse("1TiB", &v), 0);
        cr_assert_eq(v, 1ull << 40);
        cr_assert_eq(elvis_size_parse("512k", &v), 0);
        cr_assert_eq(v, 512ull << 10);
        cr_assert_eq(elvis_size_parse("", &v), -EINVAL);
        cr_assert_eq(elvis_size_parse("G", &v), -EINVAL);
        cr_assert_eq(elvis_size_parse("1 G", &v), -EINVAL);
        cr_assert_eq(elvis_size_parse("-1", &v), -EINVAL);
        cr_assert_eq(elvis_size_parse("1B", &v), -EINVAL);
        cr_assert_eq(elvis_size_parse("99999999999999999999", &v), -ERANGE);
        cr_assert_eq(elvis_size_parse("1025T", &v), -ERANGE);
}

/* A blk device written to the state file reads back the same. */
Test(codec, blk_device_state_roundtrip)
{
        struct elvis_vm vm, back;
        struct elvis_err e = { 0 };
        json_t *j;

        cr_assert_eq(decode_vm("{\"name\":\"db\",\"devices\":[{\"type\":\"blk\",\"path\":\"/srv/i/a.img\",\"readonly\":true,"
                               "\"queues\":3},{\"type\":\"blk\",\"backend\":\"null\",\"size\":\"2G\"}]}",
                               ELVIS_DECODE_CREATE, &vm, &e), 0, "%s", e.detail);
        vm.id = 3;
        j = elvis_vm_to_json(&vm);
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(j, "devices"), 0), "type")),
                         "blk");
        cr_assert_null(json_object_get(json_array_get(json_object_get(j, "devices"), 0), "tap"));
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(j, "devices"), 1), "size")),
                     2ll << 30);
        memset(&back, 0, sizeof(back));
        cr_assert_eq(elvis_vm_from_json(j, ELVIS_DECODE_STATE, &back, &e), 0, "%s", e.detail);
        json_decref(j);
        cr_assert_eq(back.devices[0].type, ELVIS_DEVICE_BLK);
        cr_assert_eq(back.devices[0].backend, ELVIS_BACKEND_FILE);
        cr_assert_str_eq(back.devices[0].path, "/srv/i/a.img");
        cr_assert(back.devices[0].readonly);
        cr_assert_eq(back.devices[0].queues, 3);
        cr_assert_eq(back.devices[1].backend, ELVIS_BACKEND_NULL);
        cr_assert_eq(back.devices[1].size_bytes, 2ull << 30);
        cr_assert_not(back.devices[1].readonly);
}
