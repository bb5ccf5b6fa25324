// SPDX-License-Identifier: GPL-2.0

//! Per network namespace state: each namespace is a host to VNAT.
//!
//! The pernet operations of the shim call [`vnat_rs_net_init`] when a
//! namespace appears (or for every existing one at module load) and
//! [`vnat_rs_net_exit`] when it goes away (or for every one at unload). A
//! namespace's [`NetState`] owns, in this order of teardown, its `vnatd`
//! thread (which owns the namespace's four netfilter hooks while it has
//! translated connections), its procfs files and its table of virtual
//! connections.

use crate::{
    ffi::{self, Net, PerCpuCounters, ProcRegistration},
    mapping::PROTO_UDP,
    migration::Requests,
    translation::RuleTable,
    virtualization::ConnectionTable,
    vnatd::Vnatd,
};
use kernel::{
    bindings,
    prelude::*,
    seq_file::{seq_print, SeqFile},
    sync::{atomic::Atomic, SetOnce},
    types::ForeignOwnable,
};

/// The counters VNAT keeps, per namespace and in total: generated from the
/// `u64` attributes of the set `stats` of `vnat/vnat.yaml`.
pub(crate) use crate::nl_gen::Counter;

const NR_COUNTERS: usize = Counter::ALL.len();
const _: () = assert!(NR_COUNTERS <= ffi::MAX_COUNTERS);

/// Totals over all namespaces, past and present, shown in configfs.
pub(crate) struct Totals;

impl Totals {
    pub(crate) fn get(&self, c: Counter) -> u64 {
        ffi::total_counter(c as usize)
    }
}

/// See [`Totals`].
pub(crate) static TOTALS: Totals = Totals;

/// What VNAT keeps for one network namespace.
///
/// Field order is teardown order: the daemon stops first (and its hooks go
/// with it), then the files, and the table of connections last.
#[pin_data]
pub(crate) struct NetState {
    /// Set once, right after the rest of the state is in place.
    vnatd: SetOnce<Vnatd>,
    /// The translation rules the hooks read.
    pub(crate) rules: RuleTable,
    _proc: ProcRegistration,
    #[pin]
    pub(crate) connections: ConnectionTable,
    /// Work for vnatd.
    #[pin]
    pub(crate) requests: Requests,
    /// Set when the rules must be built again (a migrated connection closed).
    pub(crate) rules_stale: Atomic<bool>,
    counters: PerCpuCounters,
    net: Net,
}

impl NetState {
    /// Counts `n` events of kind `c`, here and in the totals.
    pub(crate) fn count(&self, c: Counter, n: u64) {
        self.counters.add(c as usize, n);
    }

    pub(crate) fn counter(&self, c: Counter) -> u64 {
        self.counters.get(c as usize)
    }

    pub(crate) fn net(&self) -> Net {
        self.net
    }

    /// Whether vnatd listens on the VCMP port.
    pub(crate) fn vcmp_listening(&self) -> bool {
        self.vnatd.as_ref().is_some_and(|d| d.listening())
    }

    /// Whether the namespace's netfilter hooks are registered.
    pub(crate) fn hooks_registered(&self) -> bool {
        self.vnatd.as_ref().is_some_and(|d| d.hooked())
    }

    /// Wakes vnatd to look at its requests and the rules.
    pub(crate) fn kick(&self) {
        if let Some(d) = self.vnatd.as_ref() {
            d.kick();
        }
    }

    fn new(ns: Net) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            connections <- ConnectionTable::new(),
            requests <- Requests::new(),
            rules_stale: Atomic::new(false),
            rules: RuleTable::new(),
            counters: PerCpuCounters::new()?,
            net: ns,
            _proc: ProcRegistration::new(ns)?,
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
    seq_print!(
        m,
        "hooks_registered {}\n",
        u8::from(state.vnatd.as_ref().is_some_and(|d| d.hooked()))
    );
}

fn show_connections(state: &NetState, m: &SeqFile) {
    seq_print!(
        m,
        "proto local remote pid origin state local_physical remote_physical\n"
    );
    state.connections.for_each(|_, c| {
        let p = &c.mapping;
        let proto = if p.proto == PROTO_UDP { "udp" } else { "tcp" };
        seq_print!(
            m,
            "{} {} {} {} {} {} {} {}\n",
            proto,
            Ep(p.local_virtual),
            Ep(p.remote_virtual),
            c.pid,
            c.origin.as_str(),
            if c.suspended {
                "suspended"
            } else {
                c.state.as_str()
            },
            Ep(p.local_physical),
            Ep(p.remote_physical)
        );
    });
}

/// Called by the shim for a write to `/proc/net/vnat/control`, by a writer
/// with `CAP_NET_ADMIN` in the namespace. Returns the bytes taken or an errno.
#[no_mangle]
extern "C" fn vnat_rs_control(state: *mut c_void, buf: *const u8, size: usize) -> c_int {
    // SAFETY: As in `vnat_rs_proc_show`.
    let state = unsafe { borrow(state) };
    // SAFETY: The shim passes the written bytes, copied into the kernel.
    let input = unsafe { core::slice::from_raw_parts(buf, size) };
    match crate::migration::parse_command(input) {
        Ok(r) => match state.requests.push(r) {
            Ok(()) => {
                state.kick();
                size as c_int
            }
            Err(e) => e.to_errno(),
        },
        Err(e) => {
            pr_warn!(
                "netns {}: control: refused '{}': expected 'migrate OLD_ADDR NEW_ADDR'\n",
                state.net.inum(),
                crate::config::Printable(input)
            );
            e.to_errno()
        }
    }
}

/// Called by the shim's inetaddr notifier when `addr` (network byte order)
/// appears on or goes away from an interface of the namespace.
#[no_mangle]
extern "C" fn vnat_rs_addr_event(state: *mut c_void, up: bool, addr: u32) {
    // SAFETY: As in `vnat_rs_proc_show`; the notifier runs under RTNL while
    // the namespace is alive.
    let state = unsafe { borrow(state) };
    if crate::migration::address_event(state, up, u32::from_be(addr)) {
        state.kick();
    }
}

/// Formats an endpoint as `a.b.c.d:port`.
pub(crate) struct Ep(pub(crate) crate::vcmp::Endpoint);

impl kernel::fmt::Display for Ep {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.0.addr.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}:{}", self.0.port)
    }
}

/// Formats an IPv4 address in host byte order as dotted quad.
pub(crate) struct Ipv4(pub(crate) u32);

impl kernel::fmt::Display for Ipv4 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let [a, b, c, d] = self.0.to_be_bytes();
        write!(f, "{a}.{b}.{c}.{d}")
    }
}
