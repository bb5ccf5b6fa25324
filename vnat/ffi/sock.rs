// SPDX-License-Identifier: GPL-2.0

//! User sockets, as VNAT records and moves them (`vnat/shim/sock.c`):
//! `struct sock` behind a reference-counted Rust type, so that holding one
//! is what keeps it alive, and every operation on it is safe.

use super::{Net, RawAddr};
use crate::vcmp::Endpoint;
use core::ptr::NonNull;
use kernel::{
    bindings,
    prelude::*,
    sync::aref::{ARef, AlwaysRefCounted},
    types::Opaque,
};

// Pointers to bindgen's kernel structures are fine to pass: C only sees
// pointers, whatever Rust makes of the zero-sized members inside them.
#[expect(improper_ctypes)]
extern "C" {
    fn vnat_shim_sock_hold(sk: *mut bindings::sock);
    fn vnat_shim_sock_put(sk: *mut bindings::sock);
    fn vnat_shim_sock_set_transparent(sk: *mut bindings::sock, on: bool);
    fn vnat_shim_sock_kick_retransmit(sk: *mut bindings::sock);
    fn vnat_shim_tcp_isn(sk: *mut bindings::sock, ours: bool, isn: *mut u32) -> bool;
    fn vnat_shim_sock_destroyed(sk: *mut bindings::sock) -> bool;
    fn vnat_shim_sock_uid(sk: *const bindings::sock) -> u32;
    fn vnat_shim_sock_destroy(sk: *mut bindings::sock);
    fn vnat_shim_sock_keepalive(sk: *mut bindings::sock, on: bool) -> bool;
    fn vnat_shim_signal_holders(
        sk: *mut bindings::sock,
        sig: c_int,
        procs: *mut Process,
        max: c_int,
    ) -> c_int;
    fn vnat_shim_signal_process(nr: c_int, start_boottime: u64, sig: c_int);
    fn vnat_shim_udp_lookup(
        net: *mut bindings::net,
        laddr: *const RawAddr,
        lport: u16,
        raddr: *const RawAddr,
        rport: u16,
    ) -> *mut bindings::sock;
    fn vnat_shim_tcp_exists(
        net: *mut bindings::net,
        laddr: *const RawAddr,
        lport: u16,
        raddr: *const RawAddr,
        rport: u16,
    ) -> bool;
}

/// A socket's `struct sock`.
///
/// # Invariants
///
/// A `&Sock` is a live socket; an [`ARef<Sock>`] owns one reference on it
/// (`sock_hold()`).
#[repr(transparent)]
pub(crate) struct Sock(Opaque<bindings::sock>);

// SAFETY: `sock_hold()` and `sock_put()` may be called from any context,
// and the socket is freed when the last reference is put.
unsafe impl AlwaysRefCounted for Sock {
    fn inc_ref(&self) {
        // SAFETY: The socket is live (type invariant).
        unsafe { vnat_shim_sock_hold(self.0.get()) };
    }

    unsafe fn dec_ref(obj: NonNull<Self>) {
        // SAFETY: The caller gives up a reference it owns.
        unsafe { vnat_shim_sock_put(obj.cast().as_ptr()) };
    }
}

// SAFETY: Every operation below locks as the kernel requires, from any
// thread.
unsafe impl Send for Sock {}
// SAFETY: As above.
unsafe impl Sync for Sock {}

/// Identity of a socket: the address of its `struct sock`, stable while a
/// reference is held.
pub(crate) type SockKey = usize;

impl Sock {
    /// Borrows a socket the kernel passes to a probe handler.
    ///
    /// # Safety
    ///
    /// `ptr` must be a live `struct sock` for all of `'a` (the kernel holds
    /// a reference on it while the probed function runs).
    pub(crate) unsafe fn from_raw<'a>(ptr: *const bindings::sock) -> &'a Sock {
        // SAFETY: By the function's requirements; `Sock` is transparent.
        unsafe { &*ptr.cast() }
    }

    fn as_ptr(&self) -> *mut bindings::sock {
        self.0.get()
    }

    /// Its identity.
    pub(crate) fn key(&self) -> SockKey {
        self.as_ptr() as SockKey
    }

    /// The user who owns it (a kernel uid: `sk_uid`, set when it was
    /// created, the creator's fsuid).
    pub(crate) fn uid(&self) -> u32 {
        // SAFETY: Live by the type invariant; the shim reads one field.
        unsafe { vnat_shim_sock_uid(self.as_ptr()) }
    }

    /// Sets or clears `IP_TRANSPARENT`, and drops the cached route.
    pub(crate) fn set_transparent(&self, on: bool) {
        // SAFETY: Live by the type invariant; the shim sets one bit and
        // resets the cached route, which is safe in any context.
        unsafe { vnat_shim_sock_set_transparent(self.as_ptr(), on) }
    }

    /// An initial sequence number of its TCP connection, if established:
    /// this end's (`ours`; right only for a socket that connected) or the
    /// peer's. A NAT leaves them as they are, so both ends of a connection
    /// know the same ones. Sleeps: takes the socket's lock.
    pub(crate) fn tcp_isn(&self, ours: bool) -> Option<u32> {
        let mut isn = 0u32;
        // SAFETY: Live by the type invariant; `isn` is valid for a write.
        // The shim takes the socket's lock, which may sleep: the kernel's
        // own might_sleep() checks the caller's context.
        unsafe { vnat_shim_tcp_isn(self.as_ptr(), ours, &mut isn) }.then_some(isn)
    }

    /// Makes a TCP socket in retransmission backoff retry at the next tick,
    /// and sends an ACK (a peer validating the path waits for a packet).
    pub(crate) fn kick_retransmit(&self) {
        // SAFETY: Live; the shim takes the socket's spinlock with bottom
        // halves off.
        unsafe { vnat_shim_sock_kick_retransmit(self.as_ptr()) }
    }

    /// Whether it was destroyed: released by its owner and, for TCP, done
    /// with its connection.
    pub(crate) fn is_destroyed(&self) -> bool {
        // SAFETY: Live; the shim only reads its flags and state.
        unsafe { vnat_shim_sock_destroyed(self.as_ptr()) }
    }

    /// Aborts its connection as `ss --kill` does (a TCP one sends a reset;
    /// its owner sees `ECONNABORTED`). Sleeps.
    pub(crate) fn abort(&self) {
        // SAFETY: Live; the protocol's destroy takes the socket's lock.
        unsafe { vnat_shim_sock_destroy(self.as_ptr()) }
    }

    /// Turns keepalive on or off as `SO_KEEPALIVE` does; says whether it
    /// was on. Sleeps.
    pub(crate) fn set_keepalive(&self, on: bool) -> bool {
        // SAFETY: Live; the shim takes the socket's lock.
        unsafe { vnat_shim_sock_keepalive(self.as_ptr(), on) }
    }

    /// Sends `sig` to the processes that have the socket's file open, at
    /// most [`MAX_HOLDERS`]; writes them to `procs` and returns how many.
    pub(crate) fn signal_holders(&self, sig: i32, procs: &mut [Process; MAX_HOLDERS]) -> usize {
        // SAFETY: Live; `procs` has room for `MAX_HOLDERS` entries of
        // `struct vnat_process`; the shim walks the processes under RCU.
        let n = unsafe {
            vnat_shim_signal_holders(self.as_ptr(), sig, procs.as_mut_ptr(), MAX_HOLDERS as c_int)
        };
        n.clamp(0, MAX_HOLDERS as c_int) as usize
    }

    /// The user-space UDP socket of `net` that would receive the datagrams
    /// of `remote` sent to `local`, if any.
    pub(crate) fn udp_lookup(net: &Net, local: Endpoint, remote: Endpoint) -> Option<ARef<Sock>> {
        if !local.same_family(&remote) {
            return None;
        }
        let (l, r) = (RawAddr::from(local.addr), RawAddr::from(remote.addr));
        // SAFETY: `net` is alive (its invariant); `l` and `r` are valid for
        // the call; the shim looks the socket up under RCU and returns it
        // with a reference taken, or null.
        let sk = unsafe {
            vnat_shim_udp_lookup(
                net.as_ptr(),
                &l,
                local.port.to_be(),
                &r,
                remote.port.to_be(),
            )
        };
        // SAFETY: A non-null result carries the reference the shim took,
        // which the `ARef` now owns.
        NonNull::new(sk).map(|sk| unsafe { ARef::from_raw(sk.cast()) })
    }

    /// Whether `net`'s TCP has a connection from `remote` to `local`: half
    /// open, established (whether its application accepted it yet or not)
    /// or in `TIME_WAIT`.
    pub(crate) fn tcp_exists(net: &Net, local: Endpoint, remote: Endpoint) -> bool {
        if !local.same_family(&remote) {
            return false;
        }
        let (l, r) = (RawAddr::from(local.addr), RawAddr::from(remote.addr));
        // SAFETY: `net` is alive (its invariant); `l` and `r` are valid for
        // the call; the shim looks the socket up under RCU and puts the
        // reference the lookup took.
        unsafe {
            vnat_shim_tcp_exists(
                net.as_ptr(),
                &l,
                local.port.to_be(),
                &r,
                remote.port.to_be(),
            )
        }
    }
}

/// Most processes [`Sock::signal_holders`] signals.
pub(crate) const MAX_HOLDERS: usize = 4;

/// A process, by global pid number and start time: the number alone may
/// name another process once this one is gone (`struct vnat_process`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Process {
    nr: c_int,
    start_boottime: u64,
}

// The layout `struct vnat_process` has (vnat/shim/shim.h checks the same).
const _: () = {
    assert!(core::mem::size_of::<Process>() == 16);
    assert!(core::mem::offset_of!(Process, start_boottime) == 8);
};

impl Process {
    /// Sends `sig` to it if it still exists (a process that got its number
    /// since is left alone).
    pub(crate) fn signal(self, sig: i32) {
        // SAFETY: The shim looks the number up under RCU; any context.
        unsafe { vnat_shim_signal_process(self.nr, self.start_boottime, sig) }
    }
}
