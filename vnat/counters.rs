// SPDX-License-Identifier: GPL-2.0

//! The counters VNAT keeps, per namespace and in total: what each one
//! counts (the spec's `stats` attribute set, whose documentation says it),
//! and the totals over all namespaces (configfs `counters`). The per-CPU
//! storage is the shim's ([`crate::ffi::PerCpuCounters`]).

use crate::ffi;

/// The counters VNAT keeps, per namespace and in total: generated from the
/// `u64` attributes of the set `stats` of `vnat/vnat.yaml`, which
/// `stats-get` answers with.
pub(crate) use crate::nl_gen::Counter;

const NR_COUNTERS: usize = Counter::ALL.len();
const _: () = assert!(NR_COUNTERS <= ffi::MAX_COUNTERS);

/// Counter `c` over all namespaces, past and present (configfs `counters`).
pub(crate) fn total(c: Counter) -> u64 {
    ffi::total_counter(c as usize)
}
