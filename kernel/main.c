// SPDX-License-Identifier: GPL-2.0
/* elvis.ko: module entry, the registry of devices and sidecores, global parameters. */
#include <linux/module.h>

#include "elvis.h"

DEFINE_MUTEX(elvis_lock);
DEFINE_IDR(elvis_nets);
DEFINE_IDR(elvis_sidecores);

/* the same defaults as the user-space data plane */
struct elvis_params elvis_params = {
	.budget_packets = 128,
	.budget_bytes = 128 * 1024,
	.poll_start_rate = 1000,
	.poll_stop_idle_ns = 1000ull * NSEC_PER_MSEC,
};

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
