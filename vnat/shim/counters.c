// SPDX-License-Identifier: GPL-2.0
/*
 * Per-CPU counters: a namespace's, and the totals over all of them.
 * vnat/counters.rs, vnat/ffi/percpu.rs.
 */

#include <linux/percpu.h>

#include "shim.h"

/*
 * A hook counts every packet it sees: plain per-CPU adds, no atomic and no
 * shared cache line, as for the kernel's own SNMP counters. Readers sum.
 */
static DEFINE_PER_CPU(u64 [VNAT_MAX_COUNTERS], vnat_totals);

void *vnat_shim_counters_alloc(void)
{
	return (void __force *)alloc_percpu(u64 [VNAT_MAX_COUNTERS]);
}

void vnat_shim_counters_free(void *c)
{
	free_percpu((u64 (__percpu *)[VNAT_MAX_COUNTERS])(void __percpu __force *)c);
}

/* Adds @n to counter @i of namespace counters @c and of the totals. */
void vnat_shim_count(void *c, unsigned int i, u64 n)
{
	u64 (__percpu *ns)[VNAT_MAX_COUNTERS] = (void __percpu __force *)c;

	if (i >= VNAT_MAX_COUNTERS)
		return;
	this_cpu_add((*ns)[i], n);
	this_cpu_add(vnat_totals[i], n);
}

/* Counter @i of namespace counters @c, or of the totals if @c is NULL. */
u64 vnat_shim_counter_sum(void *c, unsigned int i)
{
	u64 (__percpu *ns)[VNAT_MAX_COUNTERS] = (void __percpu __force *)c;
	u64 sum = 0;
	int cpu;

	if (i >= VNAT_MAX_COUNTERS)
		return 0;
	for_each_possible_cpu(cpu)
		sum += c ? (*per_cpu_ptr(ns, cpu))[i] : per_cpu(vnat_totals, cpu)[i];
	return sum;
}
