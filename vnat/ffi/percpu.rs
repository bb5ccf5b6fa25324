// SPDX-License-Identifier: GPL-2.0

//! Per-CPU counters (`vnat/shim/counters.c`): a namespace's, and the
//! module's totals over all namespaces.

use kernel::prelude::*;

extern "C" {
    fn vnat_shim_counters_alloc() -> *mut c_void;
    fn vnat_shim_counters_free(c: *mut c_void);
    fn vnat_shim_count(c: *mut c_void, i: c_uint, n: u64);
    fn vnat_shim_counter_sum(c: *mut c_void, i: c_uint) -> u64;
}

/// Counters of the shim: [`MAX_COUNTERS`] 64-bit per-CPU counters.
pub(crate) const MAX_COUNTERS: usize = 64;

/// One namespace's per-CPU counters; every add also counts in the module's
/// totals. Adding is a per-CPU add (no atomic); reading sums the CPUs.
///
/// # Invariants
///
/// `ptr` is a per-CPU allocation of the shim, owned by this value.
pub(crate) struct PerCpuCounters {
    ptr: *mut c_void,
}

// SAFETY: Per-CPU counters may be added to and read from any context.
unsafe impl Send for PerCpuCounters {}
// SAFETY: As above; the shim's adds are per CPU and irq safe.
unsafe impl Sync for PerCpuCounters {}

impl PerCpuCounters {
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: No requirements; returns null when memory is short.
        let ptr = unsafe { vnat_shim_counters_alloc() };
        if ptr.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: A fresh allocation, now owned here.
        Ok(Self { ptr })
    }

    /// Adds `n` to counter `i` here and in the totals.
    pub(crate) fn add(&self, i: usize, n: u64) {
        // SAFETY: `ptr` is live (type invariant); the shim ignores an `i`
        // out of range.
        unsafe { vnat_shim_count(self.ptr, i as c_uint, n) }
    }

    /// Counter `i`, summed over the CPUs.
    pub(crate) fn get(&self, i: usize) -> u64 {
        // SAFETY: As in `add`.
        unsafe { vnat_shim_counter_sum(self.ptr, i as c_uint) }
    }
}

impl Drop for PerCpuCounters {
    fn drop(&mut self) {
        // SAFETY: Owned (type invariant), and nothing uses it any more.
        unsafe { vnat_shim_counters_free(self.ptr) }
    }
}

/// Counter `i` of the module's totals over all namespaces, past and present.
pub(crate) fn total_counter(i: usize) -> u64 {
    // SAFETY: A null pointer selects the totals, which live as long as the
    // module; the shim ignores an `i` out of range.
    unsafe { vnat_shim_counter_sum(core::ptr::null_mut(), i as c_uint) }
}
