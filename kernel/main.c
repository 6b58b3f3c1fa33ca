// SPDX-License-Identifier: GPL-2.0
/* elvis.ko: module entry, the registry of devices and sidecores, global parameters. */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>

#include "elvis.h"

DEFINE_MUTEX(elvis_lock);
DEFINE_IDR(elvis_nets);
DEFINE_IDR(elvis_sidecores);

/* the defaults of the ABI header, which the daemon's tunables table is checked against */
struct elvis_params elvis_params = {
	.budget_packets = ELVIS_BUDGET_PACKETS_DEFAULT,
	.budget_bytes = ELVIS_BUDGET_BYTES_DEFAULT,
	.poll_start_rate = ELVIS_POLL_START_RATE_DEFAULT,
	.poll_stop_idle_ns = (u64)ELVIS_POLL_STOP_IDLE_MS_DEFAULT * NSEC_PER_MSEC,
	.busyloop_max_us = ELVIS_NET_BUSYLOOP_MAX_US_DEFAULT,
};

/* The longest busy loop a VMM gets (VHOST_SET_VRING_BUSYLOOP_TIMEOUT, QEMU's poll-us).
 * vhost-net bounds it by nothing but its u32 (71 minutes of polling after every burst,
 * on its own thread). Here the polling is a sidecore's: shared with other VMs' queues
 * and outside the VMM's cgroup, so requests are clamped to this; root may move it up to
 * ELVIS_NET_BUSYLOOP_MAX_US_LIMIT, beyond which polling is no latency optimisation. */
static int busyloop_max_set(const char *val, const struct kernel_param *kp)
{
	u32 v;
	int r = kstrtou32(val, 0, &v);

	if (r)
		return r;
	if (v > ELVIS_NET_BUSYLOOP_MAX_US_LIMIT)
		return -EINVAL;
	WRITE_ONCE(elvis_params.busyloop_max_us, v);
	return 0;
}

static const struct kernel_param_ops busyloop_max_ops = {
	.set = busyloop_max_set,
	.get = param_get_uint,
};
module_param_cb(busyloop_max_us, &busyloop_max_ops, &elvis_params.busyloop_max_us, 0644);
MODULE_PARM_DESC(busyloop_max_us,
		 "largest VHOST_SET_VRING_BUSYLOOP_TIMEOUT in effect, in us (default 50000, at most 1000000)");

static int __init elvis_init(void)
{
	int r;

	r = elvis_net_register();
	if (r)
		return r;
	r = elvis_control_register();
	if (r)
		goto err_net;
	pr_info("elvis: /dev/elvis-net and /dev/elvis ready (ABI %d)\n", ELVIS_IOC_ABI_VERSION);
	return 0;

err_net:
	elvis_net_unregister();
	return r;
}

static void __exit elvis_exit(void)
{
	struct elvis_sidecore *sc;
	int id;

	/* open devices hold a module reference: none are left, only idle sidecores */
	elvis_control_unregister();
	elvis_net_unregister();
	mutex_lock(&elvis_lock);
	idr_for_each_entry(&elvis_sidecores, sc, id)
		WARN_ON(elvis_sidecore_destroy(sc));
	mutex_unlock(&elvis_lock);
	idr_destroy(&elvis_sidecores);
	idr_destroy(&elvis_nets);
}

module_init(elvis_init);
module_exit(elvis_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("ELVIS: exit-less virtual I/O, shared sidecore kthreads behind a vhost-net compatible device");
