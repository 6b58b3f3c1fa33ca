/* kernel/uapi/elvis.h compiles standalone in user space, without implicit padding
 * (-Wpadded -pedantic), and its layout stays what the module was built with. */
#include <uapi/elvis.h>

#include <stddef.h>

#define AT(type, field, off) _Static_assert(offsetof(type, field) == (off), #type "." #field " moved: ABI break")

AT(struct elvis_ioc_version, features, 8);
AT(struct elvis_ioc_array, count, 16);
AT(struct elvis_sidecore_info, polls, 16);
AT(struct elvis_sidecore_info, wakeups, 64);
AT(struct elvis_queue_info, features, 24);
AT(struct elvis_queue_info, poll_stop_idle_ns, 48);
AT(struct elvis_queue_info, ring_num, 56);
AT(struct elvis_queue_info, tap, 72);
AT(struct elvis_queue_counters, rx_packets, 16);
AT(struct elvis_queue_counters, drops, 96);
AT(struct elvis_queue_counters, wait_samples, 112);
AT(struct elvis_ioc_poll, poll_stop_idle_ns, 24);
AT(struct elvis_ioc_poll, exitless, 40);
AT(struct elvis_ioc_queue_move, sidecore, 8);
_Static_assert(ELVIS_IOC_ABI_VERSION == 1, "bump the checks above with the ABI version");

int elvis_uapi_check(void);
int elvis_uapi_check(void)
{
	return ELVIS_IOC_ABI_VERSION;
}
