// SPDX-License-Identifier: GPL-2.0

//! The thin layer between Rust and the C shim (`vnat/shim/`).
//!
//! The shim owns the structures whose layout depends on the kernel
//! configuration (`struct kprobe`, `struct nf_hook_ops`, `struct
//! pernet_operations`, the genl family) and wraps static inline helpers.
//! Each file here declares the functions of one C file and wraps them in
//! safe types: a registration is a value whose `Drop` undoes it, a socket
//! is an [`ARef<Sock>`](kernel::sync::aref::ARef), a packet's headers are
//! byte slices. No safe function here asks anything of its caller. The
//! rest of the module does not call the shim; a few kernel functions it
//! calls through `bindings` where it owns what they act on (vnatd's kernel
//! sockets and thread, `get_random_u32()`).
//!
//! | file         | C                | what                                   |
//! |--------------|------------------|----------------------------------------|
//! | `ffi.rs`     | `pernet.c`, `hooks.c`, `probes.c`, `notifier.c` | namespaces and the registrations |
//! | `sock.rs`    | `sock.c`         | user sockets: references, moves, helpers |
//! | `skb.rs`     | `hooks.c`        | packets at the hooks                   |
//! | `percpu.rs`  | `counters.c`     | per-CPU counters                       |
//! | `waker.rs`   | `kthread.c`      | what wakes vnatd                       |
//! | `genl.rs`    | `netlink.c`      | the netlink family's records and events |
//! | `crypto.rs`  | `crypto.c`       | the security key's X25519, HMAC-SHA256, comparison |
//! | `trace.rs`   | `trace.c`        | the trace events of a move             |

mod crypto;
mod genl;
mod percpu;
mod skb;
mod sock;
pub(crate) mod trace;
mod waker;

pub(crate) use crypto::{random_u32, HmacSha256, Secret, X25519Secret};
pub(crate) use genl::{nl_event, nl_listening, nl_put_conn, nl_put_saved, NlBy, NlConn, NlResume};
pub(crate) use percpu::{total_counter, PerCpuCounters, MAX_COUNTERS};
pub(crate) use skb::{Read, Skb, TcpFound, Unreadable};
pub(crate) use sock::{Process, Sock, SockKey, MAX_HOLDERS};
pub(crate) use waker::{RawWaker, Waker};

use crate::vcmp::Endpoint;
use core::{net::IpAddr, ptr::NonNull};
use kernel::{bindings, error::to_result, prelude::*};

// Pointers to bindgen's kernel structures are fine to pass: C only sees
// pointers, whatever Rust makes of the zero-sized members inside them.
#[expect(improper_ctypes)]
extern "C" {
    fn vnat_shim_pernet_register() -> c_int;
    fn vnat_shim_pernet_unregister();
    fn vnat_shim_hooks_register(net: *mut bindings::net) -> c_int;
    fn vnat_shim_hooks_unregister(net: *mut bindings::net);
    fn vnat_shim_kprobes_register() -> c_int;
    fn vnat_shim_kprobes_unregister();
    fn vnat_shim_kprobes_missed() -> c_ulong;
    fn vnat_shim_genl_register() -> c_int;
    fn vnat_shim_genl_unregister();
    fn vnat_shim_inetaddr_register() -> c_int;
    fn vnat_shim_inetaddr_unregister();
    fn vnat_shim_pm_register() -> c_int;
    fn vnat_shim_pm_unregister();
    fn vnat_shim_route_source(
        net: *mut bindings::net,
        daddr: *const RawAddr,
        out: *mut RawAddr,
    ) -> bool;
    fn vnat_shim_route_moved(
        net: *mut bindings::net,
        saddr: *const RawAddr,
        daddr: *const RawAddr,
        out: *mut RawAddr,
    ) -> bool;
    fn vnat_shim_addr_kind(net: *mut bindings::net, a: *const RawAddr) -> c_int;
}

/// `VNAT_ADDR_LOCAL` of `vnat/shim/shim.h`.
const ADDR_LOCAL: c_int = 1;
/// `VNAT_ADDR_REMOTE`.
const ADDR_REMOTE: c_int = 2;

/// An address as the shim takes it: `struct in6_addr`, an IPv4 address
/// v4-mapped (`::ffff:a.b.c.d`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawAddr(pub(crate) [u8; 16]);

/// IPv4 mapped; an IPv6 address as it is (a mapped one is the same bytes).
impl From<IpAddr> for RawAddr {
    fn from(a: IpAddr) -> Self {
        Self(match a {
            IpAddr::V4(a) => crate::vcmp::mapped(a),
            IpAddr::V6(a) => a.octets(),
        })
    }
}

impl From<RawAddr> for IpAddr {
    fn from(a: RawAddr) -> Self {
        Endpoint::from_v6(a.0, 0).addr
    }
}

/// Nanoseconds of the monotonic clock.
pub(crate) fn now_ns() -> i64 {
    // SAFETY: `ktime_get()` has no preconditions.
    unsafe { bindings::ktime_get() }
}

/// A reference on this module: while one exists, `rmmod vnat` is refused
/// ("Module vnat is in use") and `lsmod` counts it. Held for a namespace's
/// migrated connections, whose packets need the module's rules for as
/// long as the connections live.
///
/// # Invariants
///
/// Every value is owned, directly or not, by a namespace's state, which
/// the module's exit drops (pernet exit) before the module is freed: the
/// `module_put()` of its drop never touches a freed module.
pub(crate) struct ModuleRef(());

impl ModuleRef {
    /// Takes a reference.
    pub(crate) fn new() -> Self {
        // SAFETY: `THIS_MODULE` is this module, whose code is running, so it
        // is loaded; `__module_get()` takes a reference on a loaded module
        // in any context (an atomic increment), even while it is being
        // removed (its exit then drops what holds the reference: see the
        // type invariant).
        unsafe { bindings::__module_get(this_module()) };
        Self(())
    }
}

impl Drop for ModuleRef {
    fn drop(&mut self) {
        // SAFETY: The reference taken by `new()`, on a module that is not
        // freed yet (the type invariant); `module_put()` may be called in
        // any context.
        unsafe { bindings::module_put(this_module()) };
    }
}

fn this_module() -> *mut bindings::module {
    <crate::LocalModule as kernel::ModuleMetadata>::THIS_MODULE.as_ptr()
}

/// A network namespace, as the kernel hands it to pernet operations. Not
/// `Clone`: one value, owned by the namespace's state, which the pernet
/// exit callback drops; everything else borrows it.
///
/// # Invariants
///
/// `ptr` points to a `struct net` that stays alive for as long as this
/// value lives.
pub(crate) struct Net {
    ptr: NonNull<bindings::net>,
}

// SAFETY: A `struct net` may be used from any thread; the invariant keeps it alive.
unsafe impl Send for Net {}
// SAFETY: As above; all the methods take `&self` and are thread safe in C.
unsafe impl Sync for Net {}

impl Net {
    /// # Safety
    ///
    /// `ptr` must be a namespace that stays alive as long as the returned
    /// value (see the type invariant).
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::net) -> Result<Self> {
        // INVARIANT: By the function's requirements.
        Ok(Self {
            ptr: NonNull::new(ptr).ok_or(EINVAL)?,
        })
    }

    /// The raw pointer, for the thin layers that call into C.
    pub(crate) fn as_ptr(&self) -> *mut bindings::net {
        self.ptr.as_ptr()
    }

    /// The namespace's inode number, as `ls -L -i /proc/self/ns/net` shows it.
    pub(crate) fn inum(&self) -> u32 {
        // SAFETY: `ptr` is valid by the type invariant; `ns.inum` is set at
        // creation and never changes.
        unsafe { (*self.as_ptr()).ns.inum }
    }

    /// The source address the namespace would use now to send to `daddr`,
    /// of its family, or `None` without a route (or, over IPv6, without a
    /// usable source address: a tentative or link-local one is not).
    pub(crate) fn route_source(&self, daddr: IpAddr) -> Option<IpAddr> {
        let (d, mut out) = (RawAddr::from(daddr), RawAddr::default());
        // SAFETY: `ptr` is valid by the type invariant; both addresses are
        // valid for the call; a route lookup may be done from any context.
        unsafe { vnat_shim_route_source(self.as_ptr(), &d, &mut out) }
            .then(|| out.into())
            .filter(|&a| usable_source(a))
    }

    /// The address the host now sends to `daddr` from, if the route there
    /// no longer leaves through the interface of `saddr` (or `saddr` is
    /// gone). `None` also for addresses of two families.
    pub(crate) fn route_moved(&self, saddr: IpAddr, daddr: IpAddr) -> Option<IpAddr> {
        let (s, d, mut out) = (
            RawAddr::from(saddr),
            RawAddr::from(daddr),
            RawAddr::default(),
        );
        // SAFETY: As in `route_source`; the shim takes RCU itself for the
        // address lookup.
        unsafe { vnat_shim_route_moved(self.as_ptr(), &s, &d, &mut out) }
            .then(|| out.into())
            .filter(|&a| usable_source(a))
    }

    fn addr_kind(&self, addr: IpAddr) -> c_int {
        let a = RawAddr::from(addr);
        // SAFETY: `ptr` is valid by the type invariant; the lookups take
        // RCU themselves and may be done from any context.
        unsafe { vnat_shim_addr_kind(self.as_ptr(), &a) }
    }

    /// Whether `addr` is the unicast address of another host as the
    /// namespace sees it: not its own, nor a broadcast (also of one of its
    /// subnets), multicast, loopback or unspecified address.
    pub(crate) fn is_remote_unicast(&self, addr: IpAddr) -> bool {
        self.addr_kind(addr) == ADDR_REMOTE
    }

    /// Whether `addr` is one of the namespace's own addresses (over IPv6,
    /// also while it is tentative).
    pub(crate) fn is_local(&self, addr: IpAddr) -> bool {
        self.addr_kind(addr) == ADDR_LOCAL
    }
}

/// Whether a source address the kernel chose is one a connection may move
/// to: not an IPv6 link-local one, which the kernel takes when an
/// interface has no other address yet (it means nothing off the link, and
/// VNAT's peers are not on it), nor loopback (`::1`, which IPv6's source
/// selection falls back to when the route's interface has only tentative
/// addresses, during SLAAC), nor any other martian.
fn usable_source(a: IpAddr) -> bool {
    let e = Endpoint::from_ip(a, 0);
    !e.is_link_local() && !e.is_martian()
}

/// Declares a registration with the shim: `new()` registers, `Drop`
/// unregisters (the pattern of `kernel::miscdevice::MiscDeviceRegistration`).
/// With `per_net`, the registration belongs to one namespace, which must
/// outlive it.
macro_rules! registration {
    ($(#[$doc:meta])* $name:ident: $register:ident, $unregister:ident) => {
        $(#[$doc])*
        ///
        /// # Invariants
        ///
        /// Registered for as long as this value lives.
        pub(crate) struct $name(());

        impl $name {
            pub(crate) fn new() -> Result<Self> {
                // SAFETY: What the shim registers is static and registered
                // once, by this value; `Drop` unregisters it.
                to_result(unsafe { $register() })?;
                Ok(Self(()))
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: Registered, by the type invariant. Unregistering
                // waits for callbacks that are running.
                unsafe { $unregister() };
            }
        }
    };
    ($(#[$doc:meta])* per_net $name:ident: $register:ident, $unregister:ident) => {
        $(#[$doc])*
        ///
        /// # Invariants
        ///
        /// Registered in `net` for as long as this value lives.
        /// `net` outlives it.
        pub(crate) struct $name {
            net: NonNull<bindings::net>,
        }

        // SAFETY: Registering and unregistering may be done from any thread.
        unsafe impl Send for $name {}
        // SAFETY: As above; `&self` offers nothing.
        unsafe impl Sync for $name {}

        impl $name {
            /// # Safety
            ///
            /// `net` must outlive the returned value.
            pub(crate) unsafe fn new(net: &Net) -> Result<Self> {
                // SAFETY: `net` is alive (its invariant); `Drop` unregisters.
                to_result(unsafe { $register(net.as_ptr()) })?;
                // INVARIANT: Registered; the caller keeps `net` alive.
                Ok(Self { net: net.ptr })
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: Registered in this live namespace, by the type
                // invariant. Unregistering waits for the callbacks that are
                // running.
                unsafe { $unregister(self.net.as_ptr()) };
            }
        }
    };
}

registration!(
    /// The module's pernet operations: while registered, every network
    /// namespace, present and future, has a [`crate::netns::NetState`].
    /// Registering runs the per-namespace set-up for every namespace that
    /// exists already.
    PernetRegistration: vnat_shim_pernet_register, vnat_shim_pernet_unregister
);

registration!(
    /// The inetaddr notifier that triggers automatic resume (paper 3.3.1).
    InetaddrRegistration: vnat_shim_inetaddr_register, vnat_shim_inetaddr_unregister
);

registration!(
    /// The system sleep notifier: connections suspended before the system
    /// sleeps, resumed on wake.
    PmRegistration: vnat_shim_pm_register, vnat_shim_pm_unregister
);

registration!(
    /// The kprobes on connect, accept, disconnect and close of TCP and UDP
    /// sockets (paper section 4.1).
    KprobeRegistration: vnat_shim_kprobes_register, vnat_shim_kprobes_unregister
);

impl KprobeRegistration {
    /// How many probe hits were missed (a probe hit while another ran).
    pub(crate) fn missed() -> u64 {
        // SAFETY: Reads counters of static structures; always valid.
        (unsafe { vnat_shim_kprobes_missed() }) as u64
    }
}

registration!(
    /// The generic netlink family `vnat` (`vnat/vnat.yaml`, `netlink.rs`).
    GenlRegistration: vnat_shim_genl_register, vnat_shim_genl_unregister
);

registration!(
    /// The four IPv4 netfilter hooks of a namespace (paper section 4.2).
    per_net HookRegistration: vnat_shim_hooks_register, vnat_shim_hooks_unregister
);
