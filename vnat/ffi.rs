// SPDX-License-Identifier: GPL-2.0

//! The thin layer between Rust and `vnat/shim.c`.
//!
//! The shim owns the structures whose layout depends on the kernel
//! configuration (`struct kprobe`, `struct nf_hook_ops`, `struct
//! pernet_operations`) and wraps static inline helpers. This file declares its
//! functions and gives each registration a Rust type whose `Drop` undoes it,
//! so that the rest of the module never calls into C directly.

use crate::vcmp::Endpoint;
use kernel::{bindings, error::to_result, prelude::*};

/// Opaque `struct vnat_waker` of the shim.
#[repr(C)]
pub(crate) struct RawWaker {
    _private: [u8; 0],
}

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
    fn vnat_shim_proc_register(net: *mut bindings::net) -> c_int;
    fn vnat_shim_proc_unregister(net: *mut bindings::net);
    fn vnat_shim_net_inum(net: *const bindings::net) -> c_uint;
    pub(crate) fn vnat_shim_waker_new() -> *mut RawWaker;
    pub(crate) fn vnat_shim_waker_set_task(w: *mut RawWaker, task: *mut bindings::task_struct);
    pub(crate) fn vnat_shim_waker_free(w: *mut RawWaker);
    pub(crate) fn vnat_shim_waker_kick(w: *mut RawWaker);
    pub(crate) fn vnat_shim_waker_wait(w: *mut RawWaker, timeout: c_long) -> bool;
    pub(crate) fn vnat_shim_sock_watch(sock: *mut bindings::socket, w: *mut RawWaker);
    pub(crate) fn vnat_shim_sock_unwatch(sock: *mut bindings::socket, w: *mut RawWaker);
    pub(crate) fn vnat_shim_sock_reuseaddr(sock: *mut bindings::socket);
    pub(crate) fn vnat_shim_sock_dead(sock: *mut bindings::socket) -> bool;
    pub(crate) fn vnat_shim_sock_connect(
        sock: *mut bindings::socket,
        daddr: u32,
        port: u16,
    ) -> c_int;
    pub(crate) fn vnat_shim_sock_established(sock: *mut bindings::socket) -> bool;
    pub(crate) fn vnat_shim_pkt_parse(
        skb: *mut bindings::sk_buff,
        p: *mut RawPkt,
        writable: bool,
    ) -> c_int;
    pub(crate) fn vnat_shim_pkt_csum_field_changed(skb: *mut bindings::sk_buff, from: u16, to: u16);
    pub(crate) fn vnat_shim_route_local(skb: *mut bindings::sk_buff, daddr: u32) -> c_int;
    pub(crate) fn vnat_shim_reroute(net: *mut bindings::net, skb: *mut bindings::sk_buff) -> c_int;
    fn vnat_shim_sock_set_transparent(sk: *mut c_void, on: bool);
    fn vnat_shim_sock_hold(sk: *mut c_void);
    fn vnat_shim_sock_kick_retransmit(sk: *mut c_void);
    fn vnat_shim_sock_put(sk: *mut c_void);
    fn vnat_shim_sock_destroyed(sk: *mut c_void) -> bool;
    fn vnat_shim_sock_destroy(sk: *mut c_void);
    fn vnat_shim_sock_keepalive(sk: *mut c_void, on: bool) -> bool;
    fn vnat_shim_signal_holders(
        sk: *mut c_void,
        sig: c_int,
        procs: *mut Process,
        max: c_int,
    ) -> c_int;
    fn vnat_shim_signal_process(nr: c_int, start_boottime: u64, sig: c_int);
    fn vnat_shim_route_source(net: *mut bindings::net, daddr: u32) -> u32;
    fn vnat_shim_genl_register() -> c_int;
    fn vnat_shim_genl_unregister();
    pub(crate) fn vnat_shim_nl_put_conn(
        skb: *mut c_void,
        cb: *mut c_void,
        c: *const NlConn,
    ) -> c_int;
    fn vnat_shim_nl_event(
        net: *mut bindings::net,
        event: u8,
        c: *const NlConn,
        reason: *const kernel::ffi::c_char,
    );
    fn vnat_shim_nl_listening(net: *mut bindings::net) -> bool;
    fn vnat_shim_counters_alloc() -> *mut c_void;
    fn vnat_shim_counters_free(c: *mut c_void);
    fn vnat_shim_count(c: *mut c_void, i: c_uint, n: u64);
    fn vnat_shim_counter_sum(c: *mut c_void, i: c_uint) -> u64;
    fn vnat_shim_udp_lookup(
        net: *mut bindings::net,
        laddr: u32,
        lport: u16,
        raddr: u32,
        rport: u16,
    ) -> *mut c_void;
    fn vnat_shim_inetaddr_register() -> c_int;
    fn vnat_shim_inetaddr_unregister();
}

/// `struct vnat_pkt` of the shim: a packet's writable headers.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RawPkt {
    pub(crate) iph: *mut u8,
    pub(crate) l4: *mut u8,
    pub(crate) proto: u8,
    pub(crate) partial: bool,
    pub(crate) complete: bool,
}

/// Takes a reference on the socket behind a [`crate::virtualization::SockKey`].
pub(crate) fn sock_hold(sk: usize) {
    // SAFETY: Keys are addresses of live sockets, handed to the probes by
    // the kernel; the caller (the probe, or a table that holds a reference)
    // keeps the socket alive during the call.
    unsafe { vnat_shim_sock_hold(sk as *mut c_void) }
}

/// Drops a reference taken with [`sock_hold`].
pub(crate) fn sock_put(sk: usize) {
    // SAFETY: The caller owns a reference taken with `sock_hold`.
    unsafe { vnat_shim_sock_put(sk as *mut c_void) }
}

/// Whether a socket on which the caller holds a reference was destroyed
/// (released by its owner and, for TCP, done with its connection).
pub(crate) fn sock_destroyed(sk: usize) -> bool {
    // SAFETY: The caller's reference keeps the socket's memory alive; the
    // shim only reads its flags and state.
    unsafe { vnat_shim_sock_destroyed(sk as *mut c_void) }
}

/// Nanoseconds of the monotonic clock.
pub(crate) fn now_ns() -> i64 {
    // SAFETY: `ktime_get()` has no preconditions.
    unsafe { bindings::ktime_get() }
}

/// The source address (host byte order) the namespace would use now to send
/// to `daddr`, or `None` without a route.
pub(crate) fn route_source(net: &Net, daddr: u32) -> Option<u32> {
    // SAFETY: `net` is alive (type invariant of `Net`); a route lookup may
    // be done from any context.
    let a = unsafe { vnat_shim_route_source(net.as_ptr(), daddr.to_be()) };
    (a != 0).then(|| u32::from_be(a))
}

/// Aborts the connection of a socket (a TCP one sends a reset); process
/// context, the caller holds a reference.
pub(crate) fn sock_destroy(sk: usize) {
    // SAFETY: The caller holds a reference, so the socket is alive; the
    // protocol's destroy takes the socket's lock, which may sleep: process
    // context, as documented.
    unsafe { vnat_shim_sock_destroy(sk as *mut c_void) }
}

/// Turns the keepalive of a socket on or off, as `SO_KEEPALIVE` does, and
/// says whether it was on. Process context; the caller holds a reference.
pub(crate) fn sock_keepalive(sk: usize, on: bool) -> bool {
    // SAFETY: The caller holds a reference, so the socket is alive; the
    // shim takes the socket's lock, which may sleep: process context, as
    // documented.
    unsafe { vnat_shim_sock_keepalive(sk as *mut c_void, on) }
}

/// Most processes [`signal_holders`] signals.
pub(crate) const MAX_HOLDERS: usize = 4;

/// A process, by global pid number and start time: the number alone may
/// name another process once this one is gone.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Process {
    nr: c_int,
    start_boottime: u64,
}

/// Sends `sig` to the processes that have the socket's file open, at most
/// [`MAX_HOLDERS`]; writes them to `procs` and returns how many. Process
/// context; the caller holds a reference.
pub(crate) fn signal_holders(sk: usize, sig: i32, procs: &mut [Process; MAX_HOLDERS]) -> usize {
    // SAFETY: The caller holds a reference, so the socket is alive; `procs`
    // has room for `MAX_HOLDERS` entries of the shim's `struct
    // vnat_process`; the shim walks the process list under RCU, in process
    // context as documented.
    let n = unsafe {
        vnat_shim_signal_holders(
            sk as *mut c_void,
            sig,
            procs.as_mut_ptr(),
            MAX_HOLDERS as c_int,
        )
    };
    n.clamp(0, MAX_HOLDERS as c_int) as usize
}

/// Sends `sig` to process `p` if it still exists (a process that got its
/// number since is left alone).
pub(crate) fn signal_process(p: Process, sig: i32) {
    // SAFETY: The shim looks the number up under RCU; any context.
    unsafe { vnat_shim_signal_process(p.nr, p.start_boottime, sig) }
}

/// Makes a TCP socket in retransmission backoff retry soon; the caller holds
/// a reference.
pub(crate) fn sock_kick_retransmit(sk: usize) {
    // SAFETY: The caller holds a reference, so the socket is alive; the shim
    // takes the socket's spinlock.
    unsafe { vnat_shim_sock_kick_retransmit(sk as *mut c_void) }
}

/// `struct vnat_nl_conn` of the shim: one connection of a netlink dump,
/// addresses and ports in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct NlConn {
    pub(crate) packets_out: u64,
    pub(crate) packets_in: u64,
    pub(crate) bytes_out: u64,
    pub(crate) bytes_in: u64,
    pub(crate) local_addr: u32,
    pub(crate) remote_addr: u32,
    pub(crate) local_phys_addr: u32,
    pub(crate) remote_phys_addr: u32,
    pub(crate) local_port: u16,
    pub(crate) remote_port: u16,
    pub(crate) local_phys_port: u16,
    pub(crate) remote_phys_port: u16,
    pub(crate) pid: u32,
    pub(crate) update_age_ms: u32,
    pub(crate) proto: u8,
    pub(crate) state: u8,
    pub(crate) origin: u8,
    pub(crate) policy: u8,
    pub(crate) vcmp_state: u8,
    pub(crate) vcmp_attempts: u8,
    pub(crate) helper: u8,
    pub(crate) peer_suspended: u8,
}

/// `struct vnat_nl_resume` of the shim: which connections a `conn-resume`
/// request moves (`by`: 0 local address, 1 pid, 2 five-tuple) and where;
/// addresses and ports in network byte order.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct NlResume {
    pub(crate) local_addr: u32,
    pub(crate) remote_addr: u32,
    pub(crate) new_addr: u32,
    pub(crate) local_port: u16,
    pub(crate) remote_port: u16,
    pub(crate) pid: u32,
    pub(crate) proto: u8,
    pub(crate) by: u8,
}

/// Whether anyone in `net` listens to the `events` group. Any context.
pub(crate) fn nl_listening(net: &Net) -> bool {
    // SAFETY: `net` is alive (type invariant of `Net`); the check reads an
    // RCU-protected bitmap and may be done from any context.
    unsafe { vnat_shim_nl_listening(net.as_ptr()) }
}

/// Multicasts event `event` about connection `c` to the `events` group of
/// `net`, if anyone listens. Any context.
pub(crate) fn nl_event(net: &Net, event: u8, c: &NlConn, reason: Option<&CStr>) {
    let reason = reason.map_or(core::ptr::null(), |r| r.as_char_ptr());
    // SAFETY: `net` is alive (type invariant of `Net`); `c` and `reason`
    // outlive the call, which copies them into the message.
    unsafe { vnat_shim_nl_event(net.as_ptr(), event, c, reason) }
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

/// A reference on a socket, dropped with the value.
///
/// # Invariants
///
/// `sk` is a live socket on which this value owns one reference.
pub(crate) struct SockRef {
    sk: usize,
}

impl SockRef {
    /// The socket's identity, for the connection table.
    pub(crate) fn key(&self) -> usize {
        self.sk
    }
}

impl Drop for SockRef {
    fn drop(&mut self) {
        sock_put(self.sk);
    }
}

/// The user-space UDP socket of namespace `net` that would receive the
/// datagrams of `remote` sent to `local`, if any.
pub(crate) fn udp_lookup(net: &Net, local: Endpoint, remote: Endpoint) -> Option<SockRef> {
    // SAFETY: `net` is alive (type invariant of `Net`); the shim looks the
    // socket up under RCU and returns it with a reference taken, or null.
    let sk = unsafe {
        vnat_shim_udp_lookup(
            net.as_ptr(),
            local.addr.to_be(),
            local.port.to_be(),
            remote.addr.to_be(),
            remote.port.to_be(),
        )
    };
    if sk.is_null() {
        return None;
    }
    // INVARIANT: A non-null result carries the reference the shim took.
    Some(SockRef { sk: sk as usize })
}

/// Sets or clears `IP_TRANSPARENT` on a socket the caller holds a reference on.
pub(crate) fn sock_set_transparent(sk: usize, on: bool) {
    // SAFETY: The caller holds a reference, so the socket is alive.
    unsafe { vnat_shim_sock_set_transparent(sk as *mut c_void, on) }
}

/// A network namespace, as the kernel hands it to pernet operations.
///
/// # Invariants
///
/// `ptr` points to a `struct net` that stays alive for as long as this value
/// lives: the value is created by the pernet init callback and dropped, at
/// the latest, by the pernet exit callback of the same namespace.
#[derive(Clone, Copy)]
pub(crate) struct Net {
    ptr: *mut bindings::net,
}

// SAFETY: A `struct net` may be used from any thread; the invariant keeps it alive.
unsafe impl Send for Net {}
// SAFETY: As above; all the methods take `&self` and are thread safe in C.
unsafe impl Sync for Net {}

impl Net {
    /// # Safety
    ///
    /// `ptr` must be valid for the lifetime of the returned value and of all
    /// its copies (see the type invariant).
    pub(crate) unsafe fn from_raw(ptr: *mut bindings::net) -> Self {
        Self { ptr }
    }

    /// The raw pointer, for the thin layers that call into C.
    pub(crate) fn as_ptr(&self) -> *mut bindings::net {
        self.ptr
    }

    /// The namespace's inode number, as `ls -L -i /proc/self/ns/net` shows it.
    pub(crate) fn inum(&self) -> u32 {
        // SAFETY: `ptr` is valid by the type invariant.
        unsafe { vnat_shim_net_inum(self.ptr) }
    }
}

/// Declares a registration with the shim: `new()` registers, `Drop`
/// unregisters (the pattern of `kernel::miscdevice::MiscDeviceRegistration`).
/// With `per_net`, the registration belongs to one namespace, which outlives
/// it (the invariant of [`Net`]).
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
        pub(crate) struct $name {
            net: Net,
        }

        impl $name {
            pub(crate) fn new(net: Net) -> Result<Self> {
                // SAFETY: `net` is alive (its invariant); `Drop` unregisters.
                to_result(unsafe { $register(net.as_ptr()) })?;
                Ok(Self { net })
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: Registered in this live namespace, by the type
                // invariant. Unregistering waits for callbacks (hooks, file
                // readers) that are running.
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

registration!(
    /// The files `/proc/net/vnat/stats`, `connections` and `control` of a
    /// namespace.
    per_net ProcRegistration: vnat_shim_proc_register, vnat_shim_proc_unregister
);
