// SPDX-License-Identifier: GPL-2.0

//! Socket tracking: interception of connect, accept and close (paper 4.1).
//!
//! The paper patched the system call table; a module today uses kprobes. The
//! shim probes the kernel functions that every path of each call goes
//! through, once the connection's 4-tuple is known:
//!
//! - `tcp_connect()`: called by `tcp_v4_connect()` after the source address
//!   and port are chosen, for blocking and non-blocking `connect()`, for
//!   `sendto()` with `MSG_FASTOPEN` and for io_uring; the connection is
//!   recorded from its SYN on.
//! - `__inet_accept()`: where every `accept()`, `accept4()` and io_uring
//!   accept of an inet socket grafts the child socket (its third argument)
//!   onto the new `struct socket`, after any blocking wait. A plain kprobe
//!   there, unlike a kretprobe on `inet_csk_accept()`, holds no instance
//!   while a thread sleeps in `accept()`, so any number of blocked acceptors
//!   cannot make it miss.
//! - `tcp_v4_destroy_sock()`: the end of a connection, however it ends:
//!   after `close()` or the exit of its process, once the FIN exchange is
//!   over (or at once for a reset or a connection never established). A
//!   migrated connection is translated until then, so its FIN and the
//!   peer's reach their destination.
//!
//! With the `location_hiding` knob on, a connection opened between two
//! hosts whose connections moved is recorded with their moved addresses
//! (`location_hiding.rs`).
//!
//! Only IPv4 connections of TCP and UDP sockets owned by user space are
//! tracked (those of AF_INET sockets and of dual-stack AF_INET6 ones with a
//! v4-mapped peer: vnat/shim/probes.c); the kernel's own,
//! such as vnatd's, are not. Connections that exist when a namespace's state
//! is set up (at insmod, for every namespace) are found in the kernel's
//! established-socket hash and recorded with origin `existing` and pid 0:
//! they too can migrate (paper section 4).

use crate::{
    counters::Counter,
    events::{self, Event},
    ffi::{RawAddr, Sock},
    helper,
    knobs::LOCATION_HIDING,
    mapping::PROTO_TCP,
    netns::NetState,
    process_migration,
    vcmp::Endpoint,
    virtualization::{Asking, Origin, State, VirtualConnection},
};
use core::net::{IpAddr, Ipv4Addr};
use kernel::{bindings, prelude::*, sync::atomic::Release};

/// Forgets the records of socket `sk`, which was destroyed; returns how many
/// there were.
fn forget(state: &NetState, sk: &Sock) -> usize {
    let gone = state.connections.remove(sk, |c| {
        // A socket that closes while its peer is suspended: its stopped
        // processes, if any are left, continue.
        if let Some(a) = &c.helper {
            helper::release(None, a);
        }
        events::event(state, Event::Closed, c, None);
    });
    if gone.records > 0 {
        state.count(Counter::ConnectionsForgotten, gone.records as u64);
    }
    if gone.translated {
        // Their rules must go; vnatd rebuilds them.
        state.rules_stale.store(true, Release);
        state.kick();
    }
    gone.records
}

/// Forgets the records of sockets that were destroyed without the close
/// probe seeing it; returns how many records went.
///
/// The kprobe core skips a probe hit on a CPU where a probe handler is
/// running already (and counts it as missed): our probes sit on function
/// entries, where kprobes use ftrace and run their handlers with interrupts
/// on, so a socket destroyed in softirq context (the peer's last ACK, a
/// timer) while this CPU is inside one of our handlers goes unseen. Only the
/// close probe can be hit that way (connect and accept run in process
/// context). Its record would keep a reference on the socket, and the socket
/// one on its namespace, for ever: a deleted namespace would never be freed.
/// vnatd calls this when the kprobes' missed count grows.
pub(crate) fn forget_destroyed(state: &NetState) -> usize {
    const BATCH: usize = 16;
    let mut after = None;
    let mut n = 0;
    loop {
        let mut dead: [Option<kernel::sync::aref::ARef<Sock>>; BATCH] = Default::default();
        let (found, last) = state.connections.destroyed(after, &mut dead);
        // Each socket is held here while its records go, and let go after.
        for sk in dead[..found].iter().flatten() {
            n += forget(state, sk);
        }
        if last.is_none() {
            if n > 0 {
                state.count(Counter::ConnectionsReaped, n as u64);
            }
            return n;
        }
        after = last;
    }
}

/// Called by the shim's bind probe for a user TCP or UDP socket of the
/// namespace that binds `addr` (network byte order): whether it may, and
/// is made `IP_TRANSPARENT`, although the address is not this host's. So it
/// may if location hiding is on and the address is one this host's TCP
/// connections moved away from, or if a connection expected here
/// (`conn-import`) has it as its local virtual address: CRIU restores a
/// process's socket at the address it had on the other host.
#[no_mangle]
extern "C" fn vnat_rs_bind_virtual(state: *const c_void, proto: u8, addr: u32) -> bool {
    // SAFETY: As in `vnat_rs_sock_event`.
    let state = unsafe { NetState::borrow(state) };
    let addr = IpAddr::V4(Ipv4Addr::from_bits(u32::from_be(addr)));
    (proto == PROTO_TCP && LOCATION_HIDING.get_bool() && state.rules.hidden_local(addr))
        || state.arrivals.binds(proto, addr)
}

/// What a probe saw (`enum vnat_ev` of `vnat/shim/probes.c`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
enum SockEvent {
    Connect = 0,
    Accept = 1,
    Close = 2,
    Existing = 3,
}

impl TryFrom<c_uint> for SockEvent {
    type Error = Error;

    fn try_from(n: c_uint) -> Result<Self> {
        Ok(match n {
            0 => Self::Connect,
            1 => Self::Accept,
            2 => Self::Close,
            3 => Self::Existing,
            _ => return Err(EINVAL),
        })
    }
}

/// Called by the shim's probe handlers; addresses and ports are in network
/// byte order. Runs with preemption disabled, in process context (connect,
/// accept, close) or softirq (close).
#[no_mangle]
extern "C" fn vnat_rs_sock_event(
    state: *const c_void,
    event: c_uint,
    sk: *const bindings::sock,
    proto: u8,
    saddr: *const RawAddr,
    sport: u16,
    daddr: *const RawAddr,
    dport: u16,
    pid: c_int,
) {
    // SAFETY: The shim passes the state of the socket's namespace, which
    // cannot exit while a user socket of it is open; at module unload the
    // probes are unregistered (waiting for running handlers) before any
    // state goes.
    let state = unsafe { NetState::borrow(state) };
    // SAFETY: The probed function holds the socket during the handler.
    let sk = unsafe { Sock::from_raw(sk) };
    let origin = match SockEvent::try_from(event) {
        Ok(SockEvent::Connect) => Origin::Connect,
        Ok(SockEvent::Accept) => Origin::Accept,
        Ok(SockEvent::Existing) => Origin::Existing,
        Ok(SockEvent::Close) => {
            forget(state, sk);
            return;
        }
        Err(_) => return,
    };
    // SAFETY: The shim passes two addresses on its stack, valid for the
    // call.
    let (saddr, daddr) = unsafe { (*saddr, *daddr) };
    // Virtual endpoints are the initial physical ones (paper 3.1).
    let (local, remote) = (
        Endpoint::from_v6(saddr.0, u16::from_be(sport)),
        Endpoint::from_v6(daddr.0, u16::from_be(dport)),
    );
    // A process that moved here with its connections: CRIU restores a
    // socket as a connect from its local virtual endpoint to its remote
    // one, which takes the connection's saved state.
    let (arrived, expired) = match origin {
        Origin::Existing => (None, 0),
        _ => state.arrivals.take(proto, local, remote),
    };
    if expired > 0 {
        state.count(Counter::ImportsExpired, expired as u64);
    }
    // `conn-import` checked the saved state: it restores. The record is
    // made once, here, and changed in place: it is copied once, into the
    // table (TCP_CRR's cost per connection is mostly such copies).
    let mut conn = VirtualConnection::new(proto, local, remote, pid, origin);
    let mut keys = None;
    let mut imported = false;
    if let Some((s, k)) = arrived {
        if let Ok(c) = process_migration::restore(&s, pid) {
            (conn, keys, imported) = (c, k, true);
        }
    }
    // Location hiding: a connection opened between two hosts whose
    // connections moved has their physical addresses from the start.
    let hidden = (origin != Origin::Existing && !imported && LOCATION_HIDING.get_bool())
        .then(|| state.rules.hidden_mapping(proto, local, remote))
        .flatten();
    if let Some(m) = hidden {
        conn.hide(m);
    }
    match state.connections.insert_keyed(sk, &conn, keys) {
        Ok(_) => {
            state.count(Counter::ConnectionsTracked, 1);
            if imported {
                state.count(Counter::ConnectionsImported, 1);
            }
            if conn.state != State::Native {
                // Its rules: vnatd builds them.
                state.rules_stale.store(true, Release);
                state.kick();
            }
            if hidden.is_some() {
                // The hooks hide its packets until its rules are built.
                state.count(Counter::HiddenConnections, 1);
            }
            events::event(state, Event::Virtualized, &conn, None);
            // This end asks the peer for the connection's key: vnatd does,
            // batched, at the next tick (within a jiffy: 4 ms at HZ=250);
            // woken once per batch, by the first connection of it. Not at
            // once: a connection that is over sooner (TCP_CRR's, a web
            // client's) is never asked for, and a host that opens
            // thousands a second wakes vnatd once a tick, not once each
            // (TCP_CRR with the key, 1024 bytes, side by side: 0.952 of
            // vanilla woken at once, 0.976 so; 0.982 without the key).
            if conn.key.asking == Asking::Due && !state.keys_wanted.xchg(true, Release) {
                state.kick_soon();
            }
        }
        Err(_) => state.count(Counter::ConnectionsUntrackedNomem, 1),
    }
}
