// SPDX-License-Identifier: GPL-2.0
/*
 * VNAT's trace events (trace.h): defined here; the Rust side fires them
 * through the functions below (the trace_*() calls are static inlines).
 * vnat/ffi/trace.rs; notifier.c fires vnat_address and vnat_route itself.
 */

#define CREATE_TRACE_POINTS
#include "trace.h"

#include <linux/sched.h>
#include <linux/sched/clock.h>

#include "shim.h"

void vnat_shim_trace_wake(unsigned int netns, bool requests)
{
	trace_vnat_wake(netns, requests);
}

void vnat_shim_trace_round(unsigned int netns, const unsigned int *us)
{
	trace_vnat_round(netns, us[0], us[1], us[2], us[3], us[4], us[5], us[6]);
}

/*
 * The CPU time of the calling thread so far, in nanoseconds, as the
 * scheduler accounts it (task_sched_runtime(), which modules cannot call):
 * what it accounted at its last tick or switch, and the time it has run
 * since, on the clock the run queue reads. Interrupts off, so that no tick
 * accounts in between the two loads; another CPU that accounts this thread
 * meanwhile (a remote wake-up's enqueue, a read of its schedstat) can still
 * move up to a tick between two readings, not on one CPU. Without
 * IRQ_TIME_ACCOUNTING, the interrupts and softirqs that ran on the thread
 * count as its time.
 */
u64 vnat_shim_thread_cpu_ns(void)
{
	unsigned long flags;
	s64 since;
	u64 ns;

	local_irq_save(flags);
	since = (s64)(local_clock() - current->se.exec_start);
	ns = current->se.sum_exec_runtime + max_t(s64, since, 0);
	local_irq_restore(flags);
	return ns;
}

void vnat_shim_trace_move(unsigned int netns, unsigned int connections)
{
	trace_vnat_move(netns, connections);
}

void vnat_shim_trace_vcmp(unsigned int netns, const struct in6_addr *peer, unsigned int bytes,
			  bool answer, bool sent)
{
	if (sent)
		trace_vnat_vcmp_sent(netns, peer, bytes, answer);
	else
		trace_vnat_vcmp_received(netns, peer, bytes, answer);
}

void vnat_shim_trace_rules(unsigned int netns, unsigned int connections, bool whole,
			   bool copied, unsigned int changes)
{
	trace_vnat_rules(netns, connections, whole, copied, changes);
}

void vnat_shim_trace_kick(unsigned int netns, unsigned int connections)
{
	trace_vnat_kick(netns, connections);
}
