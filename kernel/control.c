// SPDX-License-Identifier: GPL-2.0
/* /dev/elvis: the control device elvis-manager drives (uapi/elvis.h is its ABI). Every
 * command is one registry operation under elvis_lock, and none waits for a device's
 * mutex (see the lock order in elvis.h): a VMM stuck on its own memory cannot hold up
 * listings, moves or parameters. */
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/uaccess.h>

#include "elvis.h"

enum array_kind { ARRAY_SIDECORES, ARRAY_QUEUES, ARRAY_COUNTERS };

union array_elem {
	struct elvis_sidecore_info sc;
	struct elvis_queue_info q;
	struct elvis_queue_counters c;
};

static const u32 array_min_size[] = {
	[ARRAY_SIDECORES] = ELVIS_SIDECORE_INFO_SIZE_V1,
	[ARRAY_QUEUES] = ELVIS_QUEUE_INFO_SIZE_V1,
	[ARRAY_COUNTERS] = ELVIS_QUEUE_COUNTERS_SIZE_V1,
};

static const u32 array_our_size[] = {
	[ARRAY_SIDECORES] = sizeof(struct elvis_sidecore_info),
	[ARRAY_QUEUES] = sizeof(struct elvis_queue_info),
	[ARRAY_COUNTERS] = sizeof(struct elvis_queue_counters),
};

/* Writes one element at index i, truncated or zero-extended to the caller's size. */
static int put_elem(const struct elvis_ioc_array *a, u32 i, const union array_elem *e, u32 ours)
{
	u8 __user *dst = u64_to_user_ptr(a->ptr) + (u64)i * a->elem_size;
	u32 n = min(ours, a->elem_size);

	if (copy_to_user(dst, e, n))
		return -EFAULT;
	if (a->elem_size > n && clear_user(dst + n, a->elem_size - n))
		return -EFAULT;
	return 0;
}

static int fill_array(void __user *argp, enum array_kind kind)
{
	struct elvis_ioc_array a;
	union array_elem e;
	u32 count = 0;
	int id, r = 0;

	if (copy_from_user(&a, argp, sizeof(a)))
		return -EFAULT;
	if (a.pad || a.elem_size < array_min_size[kind] || a.elem_size > 4096 || (a.capacity && !a.ptr))
		return -EINVAL;
	mutex_lock(&elvis_lock);
	if (kind == ARRAY_SIDECORES) {
		struct elvis_sidecore *sc;

		idr_for_each_entry(&elvis_sidecores, sc, id) {
			if (count < a.capacity) {
				elvis_sidecore_info(sc, &e.sc);
				r = put_elem(&a, count, &e, array_our_size[kind]);
				if (r)
					break;
			}
			count++;
		}
	} else {
		struct elvis_net *net;

		idr_for_each_entry(&elvis_nets, net, id) {
			if (count < a.capacity) {
				if (kind == ARRAY_QUEUES)
					elvis_net_info(net, &e.q);
				else
					elvis_net_counters(net, &e.c);
				r = put_elem(&a, count, &e, array_our_size[kind]);
				if (r)
					break;
			}
			count++;
		}
	}
	mutex_unlock(&elvis_lock);
	if (r)
		return r;
	a.count = count;
	return copy_to_user(argp, &a, sizeof(a)) ? -EFAULT : 0;
}

static int sidecore_create(void __user *argp)
{
	struct elvis_ioc_sidecore s;
	struct elvis_sidecore *sc;
	int r;

	if (copy_from_user(&s, argp, sizeof(s)))
		return -EFAULT;
	/* cpu >= 0 and no flags: bound; cpu -1 with F_DEFAULT: an unbound one */
	if (s.pad || (s.flags & ~ELVIS_SIDECORE_F_DEFAULT) || (s.flags ? s.cpu != -1 : s.cpu < 0))
		return -EINVAL;
	mutex_lock(&elvis_lock);
	r = elvis_sidecore_create(s.cpu, s.flags != 0, &sc);
	if (!r)
		s.id = sc->id;
	mutex_unlock(&elvis_lock);
	if (r)
		return r;
	/* the sidecore stays: destroying it is an explicit command */
	return copy_to_user(argp, &s, sizeof(s)) ? -EFAULT : 0;
}

static int sidecore_destroy(void __user *argp)
{
	struct elvis_ioc_sidecore s;
	struct elvis_sidecore *sc;
	int r;

	if (copy_from_user(&s, argp, sizeof(s)))
		return -EFAULT;
	if (s.flags || s.pad)
		return -EINVAL;
	mutex_lock(&elvis_lock);
	sc = idr_find(&elvis_sidecores, s.id);
	r = sc ? elvis_sidecore_destroy(sc) : -ENOENT;
	mutex_unlock(&elvis_lock);
	return r;
}

static int queue_move(void __user *argp)
{
	struct elvis_ioc_queue_move m;
	struct elvis_sidecore *sc;
	struct elvis_net *net;
	int r = 0;

	if (copy_from_user(&m, argp, sizeof(m)))
		return -EFAULT;
	if (m.pad)
		return -EINVAL;
	mutex_lock(&elvis_lock);
	net = idr_find(&elvis_nets, m.device);
	sc = idr_find(&elvis_sidecores, m.sidecore);
	if (!net || !sc || m.queue != 0) {
		r = -ENOENT;
	} else {
		elvis_net_serve(net, sc);
	}
	mutex_unlock(&elvis_lock);
	return r;
}

static int set_poll(void __user *argp)
{
	struct elvis_ioc_poll p;
	struct elvis_net *net;
	u32 m;

	if (copy_from_user(&p, argp, sizeof(p)))
		return -EFAULT;
	m = p.mask;
	if (p.pad || p.scope >= __ELVIS_POLL_SCOPE_MAX || (m & ~__ELVIS_POLL_SET_ALL))
		return -EINVAL;
	/* fields outside the mask must be zero */
	if ((!(m & ELVIS_POLL_SET_START_RATE) && p.poll_start_rate) ||
	    (!(m & ELVIS_POLL_SET_STOP_IDLE) && p.poll_stop_idle_ns) ||
	    (!(m & ELVIS_POLL_SET_BUDGET_PACKETS) && p.budget_packets) ||
	    (!(m & ELVIS_POLL_SET_BUDGET_BYTES) && p.budget_bytes) || (!(m & ELVIS_POLL_SET_WEIGHT) && p.weight) ||
	    (!(m & ELVIS_POLL_SET_EXITLESS) && p.exitless))
		return -EINVAL;
	if ((m & ELVIS_POLL_SET_BUDGET_PACKETS) && (p.budget_packets < 1 || p.budget_packets > 65536))
		return -EINVAL;
	if ((m & ELVIS_POLL_SET_BUDGET_BYTES) && (p.budget_bytes < 1500 || p.budget_bytes > (16u << 20)))
		return -EINVAL;
	if ((m & ELVIS_POLL_SET_WEIGHT) && (p.weight < ELVIS_WEIGHT_MIN || p.weight > ELVIS_WEIGHT_MAX))
		return -EINVAL;
	if ((m & ELVIS_POLL_SET_EXITLESS) && p.exitless >= __ELVIS_EXITLESS_MODE_MAX)
		return -EINVAL;
	if (p.scope == ELVIS_POLL_SCOPE_GLOBAL) {
		if (p.device || p.queue || (m & (ELVIS_POLL_SET_WEIGHT | ELVIS_POLL_SET_EXITLESS)))
			return -EINVAL;
		if ((m & ELVIS_POLL_SET_START_RATE) && !p.poll_start_rate)
			return -EINVAL;
		if ((m & ELVIS_POLL_SET_STOP_IDLE) && !p.poll_stop_idle_ns)
			return -EINVAL;
		mutex_lock(&elvis_lock);
		if (m & ELVIS_POLL_SET_START_RATE)
			WRITE_ONCE(elvis_params.poll_start_rate, p.poll_start_rate);
		if (m & ELVIS_POLL_SET_STOP_IDLE)
			WRITE_ONCE(elvis_params.poll_stop_idle_ns, p.poll_stop_idle_ns);
		if (m & ELVIS_POLL_SET_BUDGET_PACKETS)
			WRITE_ONCE(elvis_params.budget_packets, p.budget_packets);
		if (m & ELVIS_POLL_SET_BUDGET_BYTES)
			WRITE_ONCE(elvis_params.budget_bytes, p.budget_bytes);
		mutex_unlock(&elvis_lock);
		return 0;
	}
	if (m & (ELVIS_POLL_SET_BUDGET_PACKETS | ELVIS_POLL_SET_BUDGET_BYTES))
		return -EINVAL;
	mutex_lock(&elvis_lock);
	net = idr_find(&elvis_nets, p.device);
	if (!net || p.queue != 0) {
		mutex_unlock(&elvis_lock);
		return -ENOENT;
	}
	/* under elvis_lock alone (turns read them with READ_ONCE): never behind a device's
	 * mutex, which its owner's ioctl may hold while asleep on a fault */
	if (m & ELVIS_POLL_SET_START_RATE)
		WRITE_ONCE(net->poll_start_rate, p.poll_start_rate);
	if (m & ELVIS_POLL_SET_STOP_IDLE)
		WRITE_ONCE(net->poll_stop_idle_ns, p.poll_stop_idle_ns);
	if (m & ELVIS_POLL_SET_WEIGHT)
		WRITE_ONCE(net->weight, p.weight);
	if (m & ELVIS_POLL_SET_EXITLESS)
		WRITE_ONCE(net->exitless, p.exitless);
	/* a mode change takes effect at the next turn */
	set_bit(ELVIS_NET_PENDING, &net->pending);
	elvis_sidecore_wake(elvis_net_sc(net));
	mutex_unlock(&elvis_lock);
	return 0;
}

static long control_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case ELVIS_IOC_VERSION: {
		struct elvis_ioc_version v = {
			.abi = ELVIS_IOC_ABI_VERSION,
			.nr_cpus = nr_cpu_ids,
			.features = ELVIS_NET_FEATURES,
		};

		return copy_to_user(argp, &v, sizeof(v)) ? -EFAULT : 0;
	}
	case ELVIS_IOC_SIDECORE_CREATE:
		return sidecore_create(argp);
	case ELVIS_IOC_SIDECORE_DESTROY:
		return sidecore_destroy(argp);
	case ELVIS_IOC_LIST_SIDECORES:
		return fill_array(argp, ARRAY_SIDECORES);
	case ELVIS_IOC_LIST_QUEUES:
		return fill_array(argp, ARRAY_QUEUES);
	case ELVIS_IOC_READ_COUNTERS:
		return fill_array(argp, ARRAY_COUNTERS);
	case ELVIS_IOC_QUEUE_MOVE:
		return queue_move(argp);
	case ELVIS_IOC_SET_POLL:
		return set_poll(argp);
	}
	return -ENOTTY;
}

static int control_open(struct inode *inode, struct file *file)
{
	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	return stream_open(inode, file);
}

static const struct file_operations control_fops = {
	.owner = THIS_MODULE,
	.open = control_open,
	.unlocked_ioctl = control_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static struct miscdevice control_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "elvis",
	.fops = &control_fops,
	.mode = 0600,
};

int elvis_control_register(void)
{
	return misc_register(&control_misc);
}

void elvis_control_unregister(void)
{
	misc_deregister(&control_misc);
}
