// SPDX-License-Identifier: GPL-2.0

//! Per network namespace state: each namespace is a host to VNAT.
//!
//! The pernet operations of the shim call [`vnat_rs_net_init`] when a
//! namespace appears (or for every existing one at module load) and
//! [`vnat_rs_net_exit`] when it goes away (or for every one at unload). A
//! namespace's [`NetState`] owns, in this order of teardown, its `vnatd`
//! thread, its four netfilter hooks, its procfs files and its table of
//! virtual connections.

use crate::{
    ffi::{HookRegistration, Net, ProcRegistration},
    virtualization::ConnectionTable,
    vnatd::Vnatd,
};
use kernel::{
    bindings,
    prelude::*,
    seq_file::{seq_print, SeqFile},
    sync::{
        atomic::{Atomic, Relaxed},
        SetOnce,
    },
    types::ForeignOwnable,
};

macro_rules! counters {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// The counters VNAT keeps, per namespace and in total.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(usize)]
        pub(crate) enum Counter {
            $($(#[$doc])* $variant,)*
        }

        impl Counter {
            /// Every counter, in display order.
            pub(crate) const ALL: &'static [Counter] = &[$(Counter::$variant,)*];

            /// The counter's name in `/proc/net/vnat/stats` and configfs.
            pub(crate) const fn name(self) -> &'static str {
                match self {
                    $(Counter::$variant => $name,)*
                }
            }
        }
    };
}

counters! {
    /// Packets seen by the PREROUTING hook (incoming DNAT).
    HookPreRouting = "hook_prerouting_packets",
    /// Packets seen by the LOCAL_IN hook (incoming SNAT).
    HookLocalIn = "hook_local_in_packets",
    /// Packets seen by the LOCAL_OUT hook (outgoing DNAT).
    HookLocalOut = "hook_local_out_packets",
    /// Packets seen by the POSTROUTING hook (outgoing SNAT).
    HookPostRouting = "hook_postrouting_packets",
    /// Connections recorded at connect or accept.
    ConnectionsTracked = "connections_tracked",
    /// Connections forgotten at close.
    ConnectionsForgotten = "connections_forgotten",
    /// Connections left untracked because memory was short.
    ConnectionsUntracked = "connections_untracked_nomem",
    /// VCMP connections accepted by vnatd.
    VcmpClientsAccepted = "vcmp_clients_accepted",
    /// VCMP connections refused because vnatd had `vcmp_max_clients` already.
    VcmpClientsRefused = "vcmp_clients_refused",
    /// VCMP connections closed after `vcmp_idle_timeout_ms` without a message.
    VcmpClientsIdleClosed = "vcmp_clients_idle_closed",
    /// Well-formed VCMP messages received.
    VcmpMessages = "vcmp_messages",
    /// Malformed VCMP messages received (each closes its connection).
    VcmpMalformed = "vcmp_malformed",
    /// `VNAT_UPD` messages naming no known virtual connection (refused).
    VcmpUnknownConnection = "vcmp_unknown_connection",
    /// Attempts to listen on the VCMP port that failed.
    VcmpListenFailed = "vcmp_listen_failed",
}

const NR_COUNTERS: usize = Counter::ALL.len();

/// A set of counters.
pub(crate) struct Counters([Atomic<u64>; NR_COUNTERS]);

impl Counters {
    pub(crate) const fn new() -> Self {
        Self([const { Atomic::new(0) }; NR_COUNTERS])
    }

    pub(crate) fn get(&self, c: Counter) -> u64 {
        self.0[c as usize].load(Relaxed)
    }

    fn add(&self, c: Counter, n: u64) {
        self.0[c as usize].add(n, Relaxed);
    }
}

/// Totals over all namespaces, past and present, shown in configfs.
pub(crate) static TOTALS: Counters = Counters::new();

/// What VNAT keeps for one network namespace.
///
/// Field order is teardown order: the daemon stops before the hooks go, the
/// hooks before the files, and the table of connections last.
#[pin_data]
pub(crate) struct NetState {
    /// Set once, right after the rest of the state is in place.
    vnatd: SetOnce<Vnatd>,
    _hooks: HookRegistration,
    _proc: ProcRegistration,
    #[pin]
    pub(crate) connections: ConnectionTable,
    counters: Counters,
    net: Net,
}

impl NetState {
    /// Counts `n` events of kind `c`, here and in the totals.
    pub(crate) fn count(&self, c: Counter, n: u64) {
        self.counters.add(c, n);
        TOTALS.add(c, n);
    }

    pub(crate) fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c)
    }

    pub(crate) fn net(&self) -> Net {
        self.net
    }

    fn new(ns: Net) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            connections <- ConnectionTable::new(),
            counters: Counters::new(),
            net: ns,
            _proc: ProcRegistration::new(ns)?,
            _hooks: HookRegistration::new(ns)?,
            vnatd: SetOnce::new(),
        })
    }
}

/// Called by the shim's pernet init for every namespace.
///
/// Returns the namespace's state as an opaque pointer, or an `ERR_PTR`.
#[no_mangle]
extern "C" fn vnat_rs_net_init(net: *mut bindings::net) -> *mut c_void {
    // SAFETY: The pernet init callback gets a live namespace that stays alive
    // until the exit callback, which drops the state and with it every copy.
    let net = unsafe { Net::from_raw(net) };
    let state = match KBox::pin_init(NetState::new(net), GFP_KERNEL) {
        Ok(s) => s,
        Err(e) => return e.to_ptr(),
    };
    // The daemon borrows the state, which is pinned and dropped only after
    // the daemon has stopped (it is the first field to drop).
    match Vnatd::start(&state) {
        Ok(d) => {
            state.vnatd.populate(d);
        }
        Err(e) => {
            pr_warn!("netns {}: vnatd did not start: {:?}\n", net.inum(), e);
            return e.to_ptr();
        }
    }
    state.into_foreign()
}

/// Called by the shim's pernet exit for every namespace.
#[no_mangle]
extern "C" fn vnat_rs_net_exit(state: *mut c_void) {
    // SAFETY: `state` came from `into_foreign` in `vnat_rs_net_init`, and the
    // shim has cleared its copy: hooks, probes and procfs readers of the
    // namespace can no longer obtain it.
    drop(unsafe { <Pin<KBox<NetState>>>::from_foreign(state) });
}

/// Borrows the state behind a pointer the shim passes to a callback.
///
/// # Safety
///
/// `state` must come from [`vnat_rs_net_init`] and [`vnat_rs_net_exit`] must
/// not have been called for it yet, for all of `'a`.
pub(crate) unsafe fn borrow<'a>(state: *mut c_void) -> &'a NetState {
    // SAFETY: By the function's safety requirements.
    unsafe { <Pin<KBox<NetState>>>::borrow(state) }.get_ref()
}

/// Called by the shim to fill `/proc/net/vnat/stats` (file 0) or
/// `/proc/net/vnat/connections` (file 1).
#[no_mangle]
extern "C" fn vnat_rs_proc_show(state: *mut c_void, file: c_uint, m: *mut bindings::seq_file) {
    // SAFETY: The shim passes the live state of the namespace the file belongs
    // to; files are removed before the state is freed.
    let state = unsafe { borrow(state) };
    // SAFETY: The shim passes the seq_file of the running show callback.
    let m = unsafe { SeqFile::from_raw(m) };
    match file {
        0 => show_stats(state, m),
        _ => show_connections(state, m),
    }
}

fn show_stats(state: &NetState, m: &SeqFile) {
    seq_print!(m, "netns {}\n", state.net.inum());
    for &c in Counter::ALL {
        seq_print!(m, "{} {}\n", c.name(), state.counter(c));
    }
    seq_print!(m, "connections {}\n", state.connections.len());
    seq_print!(
        m,
        "vcmp_listening {}\n",
        u8::from(state.vnatd.as_ref().is_some_and(|d| d.listening()))
    );
}

fn show_connections(state: &NetState, m: &SeqFile) {
    seq_print!(m, "proto local remote pid origin\n");
    state.connections.for_each(|c| {
        seq_print!(
            m,
            "tcp {}:{} {}:{} {} {}\n",
            Ipv4(c.local.addr),
            c.local.port,
            Ipv4(c.remote.addr),
            c.remote.port,
            c.pid,
            c.origin.as_str()
        );
    });
}

/// Formats an IPv4 address in host byte order as dotted quad.
pub(crate) struct Ipv4(pub(crate) u32);

impl kernel::fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.0.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}")
    }
}
