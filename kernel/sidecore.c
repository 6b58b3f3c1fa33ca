// SPDX-License-Identifier: GPL-2.0
/* Sidecores: kthreads, each serving the queues of many devices (of many processes) in
 * rounds. A round gives every device with work a budgeted turn in the owner's address
 * space; polled devices get a turn every round. When every device is in notification
 * mode and none has work, the sidecore sleeps until a kick, tap data or a list change. */
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "elvis.h"

/* One pass over the devices; returns packets moved. sc->lock is held throughout, so a
 * device removed from the list is no longer touched once its remover has the lock. The
 * round never waits for a device: turns run with page faults disabled (a fault sends
 * the device to its own slow path, which has it until the fault is served), and a
 * device whose mutex is held is skipped: its holder (the VMM's ioctl, possibly asleep
 * on a fault; the slow path) marks it pending and wakes us when it lets go. */
static unsigned int round_once(struct elvis_sidecore *sc, bool *ret_sleepable, bool *ret_tx_blocked)
{
	struct elvis_net *net;
	unsigned int progress = 0;
	bool sleepable = true, tx_blocked = false;

	mutex_lock(&sc->lock);
	list_for_each_entry(net, &sc->nets, sc_node) {
		if (test_bit(ELVIS_NET_SLOW, &net->pending) || !mutex_trylock(&net->mutex))
			continue;
		if (!elvis_net_live(net)) {
			/* stopped, unconfigured or in error: kicks and ioctls have nothing for
			 * us until a ring comes back, which marks it pending again */
			clear_bit(ELVIS_NET_PENDING, &net->pending);
			mutex_unlock(&net->mutex);
			continue;
		}
		if (net->mode == ELVIS_MODE_POLL || test_and_clear_bit(ELVIS_NET_PENDING, &net->pending))
			progress += elvis_net_turn(net, sc, elvis_now_ns());
		if (!test_bit(ELVIS_NET_SLOW, &net->pending) &&
		    (net->mode == ELVIS_MODE_POLL || test_bit(ELVIS_NET_PENDING, &net->pending)))
			sleepable = false;
		tx_blocked |= net->tx_blocked;
		mutex_unlock(&net->mutex);
	}
	/* round robin: the next round starts one device further */
	if (!list_empty(&sc->nets))
		list_rotate_left(&sc->nets);
	mutex_unlock(&sc->lock);
	*ret_sleepable = sleepable;
	*ret_tx_blocked = tx_blocked;
	return progress;
}

static int sidecore_main(void *data)
{
	struct elvis_sidecore *sc = data;

	while (!kthread_should_stop()) {
		u64 start, end, woke;
		bool sleepable, tx_blocked;
		unsigned int n;

		/* wakers set kicked after making their work visible: a wake-up during the
		 * round below makes us go round again instead of sleeping */
		atomic_set(&sc->kicked, 0);
		smp_mb();       /* pairs with elvis_sidecore_wake() */
		start = elvis_now_ns();
		n = round_once(sc, &sleepable, &tx_blocked);
		end = elvis_now_ns();
		if (n) {
			ELVIS_STAT_ADD(sc->st.busy_ns, end - start);
			ELVIS_STAT_ADD(sc->st.packets, n);
			cond_resched();
			continue;
		}
		ELVIS_STAT_ADD(sc->st.idle_ns, end - start);
		if (!sleepable) {
			/* polling: never hog the CPU against its other threads or the watchdog */
			cond_resched();
			continue;
		}
		set_current_state(TASK_INTERRUPTIBLE);
		if (atomic_read(&sc->kicked) || kthread_should_stop()) {
			__set_current_state(TASK_RUNNING);
			continue;
		}
		WRITE_ONCE(sc->sleeping, true);
		if (tx_blocked)
			schedule_timeout(1);
		else
			schedule();
		WRITE_ONCE(sc->sleeping, false);
		woke = elvis_now_ns();
		ELVIS_STAT_ADD(sc->st.wakeups, 1);
		ELVIS_STAT_ADD(sc->st.idle_ns, woke - end);
	}
	return 0;
}

void elvis_sidecore_wake(struct elvis_sidecore *sc)
{
	if (!sc)
		return;
	/* the caller's work (a pending bit) is visible before kicked, which the sidecore
	 * clears and then reads the pending bits after; wake_up_process() orders the rest */
	smp_mb();
	atomic_set(&sc->kicked, 1);
	wake_up_process(sc->task);
}

int elvis_sidecore_create(int cpu, bool is_default, struct elvis_sidecore **ret)
{
	struct elvis_sidecore *sc;
	struct task_struct *t;
	int id, r;

	lockdep_assert_held(&elvis_lock);
	if (cpu < -1 || cpu >= (int)nr_cpu_ids || (cpu >= 0 && !cpu_online(cpu)) || (cpu < 0 && !is_default))
		return -EINVAL;
	sc = kzalloc(sizeof(*sc), GFP_KERNEL);
	if (!sc)
		return -ENOMEM;
	mutex_init(&sc->lock);
	INIT_LIST_HEAD(&sc->nets);
	sc->cpu = cpu;
	sc->is_default = is_default;
	id = idr_alloc(&elvis_sidecores, sc, 1, ELVIS_MAX_SIDECORES + 1, GFP_KERNEL);
	if (id < 0) {
		r = id;
		goto err_free;
	}
	sc->id = id;
	t = kthread_create(sidecore_main, sc, "elvis-sc%u", sc->id);
	if (IS_ERR(t)) {
		r = PTR_ERR(t);
		goto err_idr;
	}
	if (cpu >= 0)
		kthread_bind(t, cpu);
	get_task_struct(t);
	sc->task = t;
	wake_up_process(t);
	*ret = sc;
	return 0;

err_idr:
	idr_remove(&elvis_sidecores, sc->id);
err_free:
	kfree(sc);
	return r;
}

int elvis_sidecore_destroy(struct elvis_sidecore *sc)
{
	lockdep_assert_held(&elvis_lock);
	if (sc->nnets)
		return -EBUSY;
	idr_remove(&elvis_sidecores, sc->id);
	kthread_stop(sc->task);
	/* wakers read net->sc under RCU and may still hold this sidecore */
	synchronize_rcu();
	put_task_struct(sc->task);
	kfree(sc);
	return 0;
}

void elvis_sidecore_attach(struct elvis_sidecore *sc, struct elvis_net *net)
{
	lockdep_assert_held(&elvis_lock);
	mutex_lock(&sc->lock);
	list_add_tail(&net->sc_node, &sc->nets);
	sc->nnets++;
	WRITE_ONCE(net->sc, sc);
	mutex_unlock(&sc->lock);
	/* the new server picks the ring up where the old one left it: look at it now */
	set_bit(ELVIS_NET_PENDING, &net->pending);
	elvis_sidecore_wake(sc);
}

void elvis_sidecore_detach(struct elvis_net *net)
{
	struct elvis_sidecore *sc = net->sc;

	lockdep_assert_held(&elvis_lock);
	if (!sc)
		return;
	mutex_lock(&sc->lock);
	list_del_init(&net->sc_node);
	sc->nnets--;
	WRITE_ONCE(net->sc, NULL);
	mutex_unlock(&sc->lock);
}

void elvis_sidecore_info(struct elvis_sidecore *sc, struct elvis_sidecore_info *info)
{
	lockdep_assert_held(&elvis_lock);
	memset(info, 0, sizeof(*info));
	info->id = sc->id;
	info->cpu = sc->cpu;
	info->nqueues = sc->nnets;
	info->flags = (READ_ONCE(sc->sleeping) ? ELVIS_SIDECORE_F_SLEEPING : 0) |
		      (sc->is_default ? ELVIS_SIDECORE_F_DEFAULT : 0);
	info->polls = READ_ONCE(sc->st.polls);
	info->empty_polls = READ_ONCE(sc->st.empty_polls);
	info->busy_ns = READ_ONCE(sc->st.busy_ns);
	info->idle_ns = READ_ONCE(sc->st.idle_ns);
	info->packets = READ_ONCE(sc->st.packets);
	info->bytes = READ_ONCE(sc->st.bytes);
	info->wakeups = READ_ONCE(sc->st.wakeups);
}
