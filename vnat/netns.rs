// SPDX-License-Identifier: GPL-2.0

//! Per network namespace state: each namespace is a host to VNAT.
//!
//! [`NetState`] is what the mechanisms share: the table of virtual
//! connections, the published rules, vnatd's work queue and what wakes it,
//! and the counters. It is reference counted: the namespace's pernet entry
//! (`pernet.rs`) and its vnatd thread each hold it, and the C callbacks
//! (hooks, probes, the address notifier, netlink) borrow it through the
//! pointer the shim keeps for the namespace, which is cleared before the
//! namespace's entry lets go.

use crate::{
    counters::Counter,
    ffi::{self, Net, PerCpuCounters, Waker},
    process_migration::Arrivals,
    requests::Requests,
    rules::RuleTable,
    virtualization::ConnectionTable,
};
use kernel::{
    prelude::*,
    sync::atomic::{Atomic, Full, Relaxed},
};

/// What VNAT keeps for one network namespace.
#[pin_data]
pub(crate) struct NetState {
    /// The translation rules the hooks read.
    pub(crate) rules: RuleTable,
    #[pin]
    pub(crate) connections: ConnectionTable,
    /// Work for vnatd.
    #[pin]
    pub(crate) requests: Requests,
    /// Connections a process brings from another host (`conn-import`).
    #[pin]
    pub(crate) arrivals: Arrivals,
    /// Set when the rules must be built again (a migrated connection closed).
    pub(crate) rules_stale: Atomic<bool>,
    /// Set when a connection whose key this end asks for was recorded.
    pub(crate) keys_wanted: Atomic<bool>,
    /// Set when a packet arrived on the new path of a validating
    /// connection.
    pub(crate) paths_arrived: Atomic<bool>,
    /// vnatd listens on its port.
    pub(crate) listening: Atomic<bool>,
    /// The namespace's hooks are registered (it has translated connections).
    pub(crate) hooked: Atomic<bool>,
    /// The host woke up and connections that sleep suspended found no route
    /// to their peer yet: they resume when an address or a route comes.
    pub(crate) wake_pending: Atomic<bool>,
    /// Suspensions by system sleep asked for, and begun by vnatd: the sleep
    /// notifier waits until they are equal ([`crate::migration::sleep_settled`]).
    pub(crate) sleeps_asked: Atomic<u32>,
    pub(crate) sleeps_begun: Atomic<u32>,
    /// Counts the addresses that came up: a move that is retrying tries
    /// again at once when it changed.
    addresses_up: Atomic<u32>,
    /// When the last one did (`ktime_get()`, ns).
    address_up_ns: Atomic<i64>,
    /// Counts the route changes: a connect that found no route tries again
    /// at once when it changed (a new address's route comes after it).
    routes_changed: Atomic<u32>,
    /// vnatd has a connect that found no route: a route change wakes it.
    route_wanted: Atomic<bool>,
    /// Wakes vnatd.
    waker: Waker,
    counters: PerCpuCounters,
    net: Net,
}

impl NetState {
    /// The state of namespace `net`.
    pub(crate) fn new(net: Net) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            connections <- ConnectionTable::new(),
            requests <- Requests::new(),
            arrivals <- Arrivals::new(),
            rules_stale: Atomic::new(false),
            keys_wanted: Atomic::new(false),
            paths_arrived: Atomic::new(false),
            listening: Atomic::new(false),
            hooked: Atomic::new(false),
            wake_pending: Atomic::new(false),
            sleeps_asked: Atomic::new(0),
            sleeps_begun: Atomic::new(0),
            addresses_up: Atomic::new(0),
            address_up_ns: Atomic::new(i64::MIN / 2),
            routes_changed: Atomic::new(0),
            route_wanted: Atomic::new(false),
            rules: RuleTable::new(),
            waker: Waker::new()?,
            counters: PerCpuCounters::new()?,
            net,
        })
    }

    /// Counts `n` events of kind `c`, here and in the totals.
    pub(crate) fn count(&self, c: Counter, n: u64) {
        self.counters.add(c as usize, n);
    }

    /// Counter `c` of this namespace.
    pub(crate) fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c as usize)
    }

    /// The namespace.
    pub(crate) fn net(&self) -> &Net {
        &self.net
    }

    /// What wakes vnatd.
    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }

    /// Wakes vnatd to look at its requests and the rules, from any context.
    pub(crate) fn kick(&self) {
        self.waker.kick();
    }

    /// Wakes vnatd at the next tick (within a jiffy), from any context but
    /// NMI.
    pub(crate) fn kick_soon(&self) {
        self.waker.kick_soon();
    }

    /// A packet arrived on the new path of a validating connection: wakes
    /// vnatd, once until it looks (any context).
    pub(crate) fn path_arrived(&self) {
        // Every packet of such a path comes here: write only once.
        if !self.paths_arrived.load(Relaxed) && !self.paths_arrived.xchg(true, Full) {
            self.kick();
        }
    }

    /// An address of the namespace came up (any context).
    pub(crate) fn address_came(&self) {
        self.address_up_ns.store(ffi::now_ns(), Relaxed);
        self.addresses_up.add(1, Relaxed);
    }

    /// Nanoseconds since an address last came up (very many if none did).
    pub(crate) fn since_address_came_ns(&self) -> i64 {
        ffi::now_ns().saturating_sub(self.address_up_ns.load(Relaxed))
    }

    /// How many addresses came up so far (wrapping): what changes when one
    /// does.
    pub(crate) fn address_epoch(&self) -> u32 {
        self.addresses_up.load(Relaxed)
    }

    /// A route of the namespace changed (any context): returns whether
    /// vnatd waits for one.
    pub(crate) fn route_changed(&self) -> bool {
        // Full: vnatd sets the flag, then looks at the count
        // ([`Self::want_route`]); one of the two sees the other's write.
        self.routes_changed.fetch_add(1, Full);
        self.route_wanted.load(Relaxed)
    }

    /// vnatd has a connect that found no route (`wanted`), or none; when it
    /// has, a route change from now on wakes it.
    pub(crate) fn want_route(&self, wanted: bool) {
        self.route_wanted.xchg(wanted, Full);
    }

    /// How many route changes there were so far (wrapping).
    pub(crate) fn route_epoch(&self) -> u32 {
        self.routes_changed.load(Relaxed)
    }

    /// Whether vnatd listens on its port.
    pub(crate) fn is_listening(&self) -> bool {
        self.listening.load(Relaxed)
    }

    /// Whether the namespace's hooks are registered.
    pub(crate) fn is_hooked(&self) -> bool {
        self.hooked.load(Relaxed)
    }

    /// Borrows the state behind a pointer the shim passes to a callback.
    ///
    /// # Safety
    ///
    /// `state` must be the pointer the namespace's pernet entry gave the
    /// shim (`pernet.rs`), and that entry must not have let go of the state
    /// yet, for all of `'a`.
    pub(crate) unsafe fn borrow<'a>(state: *const c_void) -> &'a NetState {
        // SAFETY: By the function's requirements, `state` points to a live
        // `NetState`, kept alive by the entry's reference.
        unsafe { &*state.cast::<NetState>() }
    }
}

/// Shows what core formats (an address, an endpoint) in the kernel's
/// formatting macros, which take their own `Display`.
pub(crate) struct Show<T>(pub(crate) T);

impl<T: core::fmt::Display> kernel::fmt::Display for Show<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}
