// SPDX-License-Identifier: GPL-2.0

//! What happens to virtual connections, told as it happens to the `events`
//! group of the netlink family (`vnatctl monitor`, `ynl --subscribe`), and
//! how a connection's record reads on the wire (the attributes and enums of
//! `vnat/vnat.yaml`, generated into `vnat/generated/netlink.rs`, in `struct
//! vnat_nl_conn`: an IPv4 connection's addresses as the u32 attributes, an
//! IPv6 one's as their `*-addr6` forms).

use crate::{
    ffi::{self, NlConn, RawAddr},
    mapping::Hook,
    netns::NetState,
    nl_gen,
    virtualization::{State, VcmpState, VirtualConnection},
};
use kernel::prelude::*;

/// What the `events` group hears (`enum vnat_event` of the spec).
pub(crate) use nl_gen::Event;

fn nl_state(c: &VirtualConnection) -> nl_gen::State {
    match c.state {
        _ if c.suspended => nl_gen::State::Suspended,
        State::Native => nl_gen::State::Native,
        State::Resuming => nl_gen::State::Resuming,
        State::Migrated => nl_gen::State::Migrated,
        State::Validating => nl_gen::State::Validating,
    }
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
            // IPv4 v4-mapped: the shim puts those as the u32 attributes,
            // IPv6 ones as the *-addr6 ones.
            local_addr: RawAddr::from(m.local_virtual.addr),
            remote_addr: RawAddr::from(m.remote_virtual.addr),
            local_phys_addr: RawAddr::from(m.local_physical.addr),
            remote_phys_addr: RawAddr::from(m.remote_physical.addr),
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
            state: nl_state(c) as u8,
            origin: c.origin as u8,
            policy: c.policy as u8,
            vcmp_state: c.vcmp as u8,
            vcmp_attempts: c.vcmp_attempts,
            helper: match c.helper {
                Some(a) => a.helper,
                None => c.peer_helper,
            } as u8,
            peer_suspended: u8::from(c.helper.is_some()),
            auth: c.key.auth as u8,
            vcmp_next_ms: if c.vcmp == VcmpState::Retrying && c.vcmp_next_ns != 0 {
                let ms = (c.vcmp_next_ns - ffi::now_ns()).max(0) / 1_000_000;
                ms.min(i64::from(u32::MAX - 1)) as u32
            } else {
                u32::MAX
            },
        }
    }
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
    let net = state.net();
    if ffi::nl_listening(net) {
        ffi::nl_event(net, e as u8, c, reason);
    }
}
