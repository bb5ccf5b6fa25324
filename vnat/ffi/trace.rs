// SPDX-License-Identifier: GPL-2.0

//! VNAT's trace events (`vnat/shim/trace.h`, `vnat:*` in tracefs and
//! `perf`): the steps of a move, for whoever dissects one (`make bench`).
//! Each takes the namespace's inode number; disabled, an event costs a call
//! and a static branch.

use super::RawAddr;
use core::net::IpAddr;
use kernel::prelude::*;

extern "C" {
    fn vnat_shim_trace_wake(netns: c_uint, requests: bool);
    fn vnat_shim_trace_move(netns: c_uint, connections: c_uint);
    fn vnat_shim_trace_round(netns: c_uint, us: *const c_uint);
    fn vnat_shim_thread_cpu_ns() -> u64;
    fn vnat_shim_trace_vcmp(
        netns: c_uint,
        peer: *const RawAddr,
        bytes: c_uint,
        answer: bool,
        sent: bool,
    );
    fn vnat_shim_trace_rules(
        netns: c_uint,
        connections: c_uint,
        whole: bool,
        copied: bool,
        changes: c_uint,
    );
    fn vnat_shim_trace_kick(netns: c_uint, connections: c_uint);
}

/// Saturates a count to the events' `unsigned int`.
fn uint(n: usize) -> c_uint {
    c_uint::try_from(n).unwrap_or(c_uint::MAX)
}

/// vnatd woke up, with requests to take or not.
pub(crate) fn wake(netns: u32, requests: bool) {
    // SAFETY: No preconditions.
    unsafe { vnat_shim_trace_wake(netns, requests) }
}

/// The parts of one round of vnatd, in nanoseconds of its thread's CPU
/// time ([`thread_cpu_ns`]): taking requests, serving peers, conversing
/// with peers, the rules, the kicks, the replaced tables; then the round's
/// own length on the clock (see `trace.h`).
pub(crate) fn round(netns: u32, ns: [i64; 7]) {
    let us = ns.map(|n| c_uint::try_from(n.max(0) / 1000).unwrap_or(c_uint::MAX));
    // SAFETY: `us` holds the seven values the shim reads, for the call.
    unsafe { vnat_shim_trace_round(netns, us.as_ptr()) }
}

/// The CPU time of the calling thread so far, in nanoseconds: what the
/// scheduler accounts to it, the softirqs that ran on it included.
pub(crate) fn thread_cpu_ns() -> i64 {
    // SAFETY: No preconditions.
    let ns = unsafe { vnat_shim_thread_cpu_ns() };
    i64::try_from(ns).unwrap_or(i64::MAX)
}

/// A move began: `connections` have a new local address.
pub(crate) fn moved(netns: u32, connections: usize) {
    // SAFETY: No preconditions.
    unsafe { vnat_shim_trace_move(netns, uint(connections)) }
}

/// Which way VCMP bytes went, and whose they are.
#[derive(Clone, Copy)]
pub(crate) enum Vcmp {
    /// This end asks (a conversation with the peer's vnatd).
    Request,
    /// This end serves the peer (answers to a client).
    Answer,
}

/// `bytes` of VCMP go to `peer`'s vnatd (`sent`: offered to the socket) or
/// came from it.
pub(crate) fn vcmp(netns: u32, peer: IpAddr, bytes: usize, kind: Vcmp, sent: bool) {
    let peer = RawAddr::from(peer);
    // SAFETY: `peer` is a valid `struct in6_addr` for the call.
    unsafe {
        vnat_shim_trace_vcmp(
            netns,
            &peer,
            uint(bytes),
            matches!(kind, Vcmp::Answer),
            sent,
        )
    }
}

/// A new table of rules, of `connections` translated connections, is live:
/// built `whole`, or patched with `changes` records' changes, from a
/// `copied` table or the spare.
pub(crate) fn rules(netns: u32, connections: usize, whole: bool, copied: bool, changes: usize) {
    // SAFETY: No preconditions.
    unsafe { vnat_shim_trace_rules(netns, uint(connections), whole, copied, uint(changes)) }
}

/// `connections` whose rules went live were told to retransmit now.
pub(crate) fn kick(netns: u32, connections: usize) {
    // SAFETY: No preconditions.
    unsafe { vnat_shim_trace_kick(netns, uint(connections)) }
}
