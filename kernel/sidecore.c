// SPDX-License-Identifier: GPL-2.0
/* Sidecores: kthreads, each running the registered work of many queues (of many devices
 * and processes) in rounds, as vhost workers run vhost_work. A round gives every work a
 * weighted turn; the back end decides whether there is anything to do. When no work
 * wants to be looked at again, the sidecore sleeps until a waker (a kick, tap data, a
 * list change) calls elvis_sidecore_wake(). */
#include <linux/kthread.h>
#include <linux/sched.h>
#include <linux/slab.h>

#include "elvis.h"

/* One pass over the registered work; returns packets moved. sc->lock is held throughout,
 * so a work removed from the list is no longer touched once its remover has the lock. The
 * round never waits for a work: run() trylocks its back end's state and skips it when
 * someone else has it (that holder wakes us when it lets go). Each round sizes the DRR
 * unit so that the busiest-weighted busy work's quantum fits its rings, and caps it
 * while an interactive work waits among backlogged ones (elvis_drr.h). */
static unsigned int round_once(struct elvis_sidecore *sc, bool *ret_sleepable, bool *ret_tx_blocked)
{
	struct elvis_work *w;
	unsigned int progress = 0;
	bool sleepable = true, tx_blocked = false;
	u64 now = elvis_now_ns();

	mutex_lock(&sc->lock);
	elvis_drr_round_begin(&sc->drr, READ_ONCE(elvis_params.budget_packets));
	list_for_each_entry(w, &sc->works, node) {
		if (READ_ONCE(w->busy))
			elvis_drr_round_fit(&sc->drr, READ_ONCE(w->weight), READ_ONCE(w->ring_cap));
		if (elvis_drr_sparse(READ_ONCE(w->moved), READ_ONCE(w->last_work), now))
			elvis_drr_round_interactive(&sc->drr);
	}
	list_for_each_entry(w, &sc->works, node) {
		struct elvis_work_result res = { 0 };

		if (!w->run(w, &sc->drr, &res))
			continue;
		if (res.ran) {
			ELVIS_STAT_ADD(sc->st.polls, 1);
			if (!res.packets)
				ELVIS_STAT_ADD(sc->st.empty_polls, 1);
		}
		progress += res.packets;
		ELVIS_STAT_ADD(sc->st.bytes, res.bytes);
		if (res.awake)
			sleepable = false;
		tx_blocked |= res.tx_blocked;
	}
	/* round robin: the next round starts one work further */
	if (!list_empty(&sc->works))
		list_rotate_left(&sc->works);
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
	INIT_LIST_HEAD(&sc->works);
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
	if (sc->nworks)
		return -EBUSY;
	idr_remove(&elvis_sidecores, sc->id);
	kthread_stop(sc->task);
	/* wakers read net->sc under RCU and may still hold this sidecore */
	synchronize_rcu();
	put_task_struct(sc->task);
	kfree(sc);
	return 0;
}

/* The back end sets whatever its wakers read (its sidecore pointer) and wakes us. */
void elvis_sidecore_attach(struct elvis_sidecore *sc, struct elvis_work *w)
{
	lockdep_assert_held(&elvis_lock);
	mutex_lock(&sc->lock);
	list_add_tail(&w->node, &sc->works);
	sc->nworks++;
	mutex_unlock(&sc->lock);
}

/* Once this returns, sc's thread no longer runs w. */
void elvis_sidecore_detach(struct elvis_sidecore *sc, struct elvis_work *w)
{
	lockdep_assert_held(&elvis_lock);
	mutex_lock(&sc->lock);
	list_del_init(&w->node);
	sc->nworks--;
	mutex_unlock(&sc->lock);
}

void elvis_sidecore_info(struct elvis_sidecore *sc, struct elvis_sidecore_info *info)
{
	lockdep_assert_held(&elvis_lock);
	memset(info, 0, sizeof(*info));
	info->id = sc->id;
	info->cpu = sc->cpu;
	info->nqueues = sc->nworks;
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
