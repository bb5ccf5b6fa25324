// SPDX-License-Identifier: GPL-2.0

//! What happens to virtual connections, told as it happens to the `events`
//! group of the netlink family (`vnatctl monitor`, `ynl --subscribe`), and
//! how a connection's record reads on the wire (the attributes of
//! `vnat/vnat.yaml`, in `struct vnat_nl_conn`).

use crate::{
    ffi::{self, NlConn},
    mapping::Hook,
    netns::NetState,
    virtualization::{Origin, State, VirtualConnection},
};
use kernel::prelude::*;

/// `VNAT_POLICY_DEFAULT`: the connection follows the `conflict_policy` knob.
pub(crate) const POLICY_DEFAULT: u8 = 2;

/// `enum vnat_event` (`vnat/vnat.yaml`): what the `events` group hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Event {
    /// VNAT started tracking the connection.
    Virtualized = 0,
    /// Its socket closed.
    Closed = 1,
    /// This end moved; the update is on its way.
    Resuming = 2,
    /// The peer confirmed.
    Resumed = 3,
    /// The peer refused or did not answer; the connection is as it was.
    Failed = 4,
    /// The peer moved and we accepted its update.
    PeerMoved = 5,
    /// We refused a peer's update.
    Refused = 6,
    /// A virtual address conflict was resolved (reason says how).
    Conflict = 7,
    /// This end was suspended; the peer answered (or did not).
    Suspended = 8,
    /// The peer suspended its end; a helper keeps ours.
    PeerSuspended = 9,
    /// The helper of a connection whose peer was suspended was undone.
    HelperReleased = 10,
}

/// Tells the namespace's `events` group; nothing if nobody listens. Any
/// context, also under the connection table's lock. The record is built
/// only if someone listens: every connect, accept and close comes here.
pub(crate) fn event(state: &NetState, e: Event, c: &VirtualConnection, reason: Option<&CStr>) {
    let net = state.net();
    if ffi::nl_listening(net) {
        ffi::nl_event(net, e as u8, &NlConn::from(c), reason);
    }
}

/// As [`event`], for a record already copied out.
pub(crate) fn event_raw(state: &NetState, e: Event, c: &NlConn, reason: Option<&CStr>) {
    ffi::nl_event(state.net(), e as u8, c, reason);
}

impl From<&VirtualConnection> for NlConn {
    fn from(c: &VirtualConnection) -> Self {
        let m = &c.mapping;
        let h = &c.hits;
        // A packet passes two hooks of its direction; either or both may
        // rewrite it: count it once.
        let dir = |a: Hook, b: Hook, v: &[u64; 4]| v[a as usize].max(v[b as usize]);
        Self {
            packets_out: dir(Hook::LocalOut, Hook::PostRouting, &h.packets),
            packets_in: dir(Hook::PreRouting, Hook::LocalIn, &h.packets),
            bytes_out: dir(Hook::LocalOut, Hook::PostRouting, &h.bytes),
            bytes_in: dir(Hook::PreRouting, Hook::LocalIn, &h.bytes),
            local_addr: m.local_virtual.addr.to_be(),
            remote_addr: m.remote_virtual.addr.to_be(),
            local_phys_addr: m.local_physical.addr.to_be(),
            remote_phys_addr: m.remote_physical.addr.to_be(),
            local_port: m.local_virtual.port.to_be(),
            remote_port: m.remote_virtual.port.to_be(),
            local_phys_port: m.local_physical.port.to_be(),
            remote_phys_port: m.remote_physical.port.to_be(),
            pid: c.pid as u32,
            update_age_ms: if c.updated_ns == 0 {
                u32::MAX
            } else {
                let ms = (ffi::now_ns() - c.updated_ns).max(0) / 1_000_000;
                ms.min(i64::from(u32::MAX - 1)) as u32
            },
            proto: m.proto,
            state: match c.state {
                _ if c.suspended => 3,
                State::Native => 0,
                State::Resuming => 1,
                State::Migrated => 2,
            },
            origin: match c.origin {
                Origin::Connect => 0,
                Origin::Accept => 1,
                Origin::Existing => 2,
                Origin::Update => 3,
            },
            policy: c.policy.map_or(POLICY_DEFAULT, |p| p as u8),
            vcmp_state: c.vcmp as u8,
            vcmp_attempts: c.vcmp_attempts,
            helper: match c.helper {
                Some(a) => a.helper as u8,
                None => c.peer_helper as u8,
            },
            peer_suspended: u8::from(c.helper.is_some()),
        }
    }
}
