/* libvirt integration: vCPU/emulator/iothread pinning (or, under vcpu-pinning respect,
 * reading an orchestrator's pins and reporting sidecores that collide with them),
 * lifecycle events (a stopped or undefined domain releases its VM), adoption of domains
 * that opted in (ELVIS metadata, or named by adopt-domains), re-pinning after a restart.
 * libvirt's event loop runs on the manager's loop. */
#pragma once
#include <elvis/model.h>

#include <jansson.h>

#include "domxml.h"

struct elvis_manager;
struct elvis_err;

/* Connects on the loop's first turn, after READY=1 (libvirtd is ordered after us and may
 * be socket-activated: a connect before READY would wait for it while it waits for us),
 * then keeps retrying in the background; never fails the daemon's start for an unreachable
 * libvirtd. Does nothing with --libvirt-uri none. */
int elvis_libvirt_start(struct elvis_manager *m);
bool elvis_libvirt_connected(const struct elvis_manager *m);
void elvis_libvirt_stop(struct elvis_manager *m);
bool elvis_libvirt_enabled(const struct elvis_manager *m);
/* Reads a domain by name or UUID: 0, -ENOENT, -ENOTCONN (libvirt unreachable). */
int elvis_libvirt_domain(struct elvis_manager *m, const char *domain, struct elvis_domain_info *ret, char *err,
                         size_t errlen);
/* Whether a domain ELVIS was not explicitly asked for (libvirt events, the qemu hook's
 * domain_xml) may be taken: 0, or -EPERM with a detail naming the domain and how to opt in. */
int elvis_libvirt_may_adopt(const struct elvis_manager *m, const struct elvis_domain_info *info,
                            struct elvis_err *e);
/* Releases VMs marked incoming whose domain libvirt has not known for 4 checks in a row
 * (a timer runs it every 30 s; exposed for tests). */
void elvis_libvirt_check_arrivals(struct elvis_manager *m);
/* Adopts the running domains that opted in and are not managed yet (adopt-domains changed). */
void elvis_libvirt_adopt_running(struct elvis_manager *m);
/* What a new VM that names a domain can learn from libvirt (vCPUs, interfaces, QEMU's
 * identity) when the request does not say: 1 with ret filled, 0 when there is nothing to
 * ask (no domain, everything given, libvirt disabled, or unreachable while the vCPUs are
 * known: the pins follow when it is back), or -errno with e set. */
int elvis_libvirt_domain_for(struct elvis_manager *m, const struct elvis_vm *vm, struct elvis_domain_info *ret,
                             struct elvis_err *e);
/* Pins a VM's vCPUs to its CPUs and its emulator and iothreads to the reserved CPUs
 * (under vcpu-pinning respect: reads the domain's pins instead); deferred to the next
 * loop turn (safe from an API request). */
void elvis_libvirt_schedule_pin(struct elvis_manager *m, uint32_t vm_id);
/* vcpu-pinning respect: re-reads every managed domain's vCPU pins now (the periodic poll;
 * lifecycle and tunable events do it per domain). Does nothing in own mode. */
void elvis_libvirt_refresh_pins(struct elvis_manager *m);
/* Appends health warnings: sidecores whose CPU an orchestrator gave to a vCPU. */
void elvis_libvirt_add_warnings(struct elvis_manager *m, json_t *warnings);
/* libvirt's lifecycle callback (live migration included, see libvirt.c); also how the
 * tests deliver the migration events libvirt's test driver cannot produce. dom is a
 * virDomainPtr of any connection to the same libvirt. Always 0. */
struct _virDomain;
int elvis_libvirt_domain_event(struct elvis_manager *m, struct _virDomain *dom, int event, int detail);
/* Logs one line and journals {"event", "vm", "vm_name", "domain", "reason"} (source
 * "libvirt") for a step of a VM's live migration. */
void elvis_libvirt_journal_migration(struct elvis_manager *m, const char *event, const struct elvis_vm *vm,
                                     const char *reason);
/* {"uri", "connected", "error"?, "vcpu_pinning"} */
json_t *elvis_libvirt_status(struct elvis_manager *m);
/* {"state", "vcpu_pins": [cpu lists], "emulator_pin"} from libvirt, null without a domain. */
json_t *elvis_libvirt_vm_info(struct elvis_manager *m, const struct elvis_vm *vm);
