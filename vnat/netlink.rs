// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `vnat` (spec: `vnat/vnat.yaml`, numbers:
//! `vnat/netlink.h`): how administrators and tools list virtual connections
//! and tell VNAT that a host moved (paper 3.3: VNAT "simply needs to be
//! notified"). The shim registers the family and frames the messages; this
//! file decides what they say.
//!
//! - `conn-get` (dump, unprivileged): every virtual connection of the
//!   caller's namespace, with its virtual and physical endpoints, state,
//!   origin and owner.
//! - `conn-resume` (`CAP_NET_ADMIN` in the namespace's user namespace):
//!   the connections of a local address (a host's move), of a process, or
//!   one connection, resume at a new local address; the answer says how
//!   many.
//! - `conn-suspend` (same rights, same selectors): they are suspended, and
//!   their peers keep them with a helper until they resume.
//! - `conn-set` (same rights): one connection's conflict policy and helper.
//! - the `events` group: what happens to connections ([`Event`]), as it
//!   happens, for `vnatctl monitor` and `ynl --subscribe`.

use crate::{
    ffi::{self, NlConn},
    helper::Helper,
    mapping::Hook,
    migration::{Request, Selector},
    netns::{self, NetState},
    vcmp::Endpoint,
    virtualization::{Key, Origin, Policy, State, VirtualConnection},
};
use kernel::prelude::*;

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

/// Called by the shim for each part of a `conn-get` dump. `args` are the
/// dump's three words of memory between parts: whether a part ended early,
/// and the key of the last connection it put.
#[no_mangle]
extern "C" fn vnat_rs_nl_dump(
    state: *mut c_void,
    skb: *mut c_void,
    cb: *mut c_void,
    args: *mut c_long,
) -> c_int {
    // SAFETY: The shim passes the live state of the caller's namespace (the
    // caller's netlink socket holds the namespace).
    let state = unsafe { netns::borrow(state) };
    // SAFETY: `args` is `cb->args`, six longs owned by this dump.
    let args = unsafe { core::slice::from_raw_parts_mut(args, 3) };
    let after =
        (args[0] != 0).then(|| Key::from_raw(args[0] as usize, args[1] as u32, args[2] as u16));
    let mut last = after;
    state.connections.for_each_after(after, |k, c| {
        // What the published rules matched, on top of what earlier tables
        // did.
        let mut c = *c;
        c.hits.add(&state.rules.live_hits(k, &c));
        let msg = NlConn::from(&c);
        // SAFETY: `skb` and `cb` are the dump's, valid during this call;
        // `msg` lives across the call.
        if unsafe { ffi::vnat_shim_nl_put_conn(skb, cb, &msg) } != 0 {
            return false;
        }
        last = Some(k);
        true
    });
    if let Some(k) = last {
        let (sk, addr, port) = k.to_raw();
        args[0] = sk as c_long;
        args[1] = addr as c_long;
        args[2] = port as c_long;
    }
    // SAFETY: `skb` is a valid `struct sk_buff` (see above).
    let len = unsafe { (*skb.cast::<kernel::bindings::sk_buff>()).len };
    len as c_int
}

/// Called by the shim for `conn-resume`: the connections `r` selects
/// resume at `r.new_addr`; if that is 0, at the address the host would use
/// now to reach the first one's peer, written back to `r.new_addr`.
/// Returns how many connections that covers, or a negative errno:
/// `EINVAL` for a zero address, `ENOENT` when nothing matches, `EALREADY`
/// when everything that matches is at the new address, `EHOSTUNREACH` when
/// no address could be chosen.
#[no_mangle]
extern "C" fn vnat_rs_nl_resume(state: *mut c_void, r: *mut ffi::NlResume) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { netns::borrow(state) };
    // SAFETY: The shim passes a request that lives across the call, and
    // nothing else uses it meanwhile.
    let r = unsafe { &mut *r };
    let Some(which) = selector(r) else {
        return EINVAL.to_errno();
    };
    let mut to = u32::from_be(r.new_addr);
    if to == 0 {
        let mut peer = None;
        state.connections.for_each(|_, c| {
            if peer.is_none() && which.matches(c) {
                peer = Some(c.mapping.remote_physical.addr);
            }
        });
        let Some(peer) = peer else {
            return ENOENT.to_errno();
        };
        match ffi::route_source(&state.net(), peer) {
            Some(a) => to = a,
            None => return EHOSTUNREACH.to_errno(),
        }
        r.new_addr = to.to_be();
    }
    let (mut matching, mut to_move): (c_int, c_int) = (0, 0);
    state.connections.for_each(|_, c| {
        if which.matches(c) {
            matching += 1;
            if c.mapping.local_physical.addr != to || c.suspended {
                to_move += 1;
            }
        }
    });
    if matching == 0 {
        return ENOENT.to_errno();
    }
    if to_move == 0 {
        return EALREADY.to_errno();
    }
    if let Err(e) = state.requests.push(Request::Migrate { which, to }) {
        return e.to_errno();
    }
    state.kick();
    to_move
}

/// The connections a `conn-resume` or `conn-suspend` request selects
/// (`by`: 0 local address, 1 pid, 2 five-tuple); `None` for address 0.
fn selector(r: &ffi::NlResume) -> Option<Selector> {
    let which = match r.by {
        0 => Selector::Address(u32::from_be(r.local_addr)),
        1 => Selector::Pid(r.pid as i32),
        _ => Selector::Connection {
            proto: r.proto,
            local: Endpoint::new(u32::from_be(r.local_addr), u16::from_be(r.local_port)),
            remote: Endpoint::new(u32::from_be(r.remote_addr), u16::from_be(r.remote_port)),
        },
    };
    (which != Selector::Address(0)).then_some(which)
}

/// Called by the shim for `conn-suspend`: the connections `r` selects are
/// suspended. Returns how many that covers, or `-EINVAL` (address 0),
/// `-ENOENT` (nothing matches), `-EALREADY` (all of them are suspended).
#[no_mangle]
extern "C" fn vnat_rs_nl_suspend(state: *mut c_void, r: *const ffi::NlResume) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { netns::borrow(state) };
    // SAFETY: The shim passes a request that lives across the call.
    let Some(which) = selector(unsafe { &*r }) else {
        return EINVAL.to_errno();
    };
    let (mut matching, mut to_suspend): (c_int, c_int) = (0, 0);
    state.connections.for_each(|_, c| {
        if which.matches(c) {
            matching += 1;
            to_suspend += c_int::from(!c.suspended);
        }
    });
    if matching == 0 {
        return ENOENT.to_errno();
    }
    if to_suspend == 0 {
        return EALREADY.to_errno();
    }
    if let Err(e) = state.requests.push(Request::Suspend { which }) {
        return e.to_errno();
    }
    state.kick();
    to_suspend
}

/// `VNAT_POLICY_DEFAULT`: the connection follows the `conflict_policy` knob.
const POLICY_DEFAULT: u8 = 2;
/// `VNAT_HELPER_DEFAULT`: the connection follows the `suspend_helper` knob.
const HELPER_DEFAULT: u8 = 3;
/// What the shim passes for an attribute the request did not carry.
const UNSET: u8 = u8::MAX;

/// Called by the shim for `conn-set`: the conflict policy (`enum
/// vnat_policy`) and the helper (`enum vnat_helper`) of the connection `r`
/// names (`by` is five-tuple) become `policy` and `helper`, each unless
/// [`UNSET`]. Returns 0 or `-ENOENT`.
#[no_mangle]
extern "C" fn vnat_rs_nl_set(
    state: *mut c_void,
    r: *const ffi::NlResume,
    policy: u8,
    helper: u8,
) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { netns::borrow(state) };
    // SAFETY: The shim passes a request that lives across the call.
    let r = unsafe { &*r };
    let local = Endpoint::new(u32::from_be(r.local_addr), u16::from_be(r.local_port));
    let remote = Endpoint::new(u32::from_be(r.remote_addr), u16::from_be(r.remote_port));
    let policy = match policy {
        0 => Some(Some(Policy::Abort)),
        1 => Some(Some(Policy::Preempt)),
        POLICY_DEFAULT => Some(None),
        _ => None,
    };
    let helper = match helper {
        HELPER_DEFAULT => Some(None),
        UNSET => None,
        h => Helper::from_u8(h).map(Some),
    };
    let Some((key, _)) = state.connections.find(r.proto, local, remote) else {
        return ENOENT.to_errno();
    };
    let set = state.connections.with(key, |c| {
        if let Some(p) = policy {
            c.policy = p;
        }
        if let Some(h) = helper {
            c.helper_choice = h;
        }
    });
    match set {
        Some(()) => 0,
        None => ENOENT.to_errno(),
    }
}

/// `enum vnat_event` (`vnat/netlink.h`): what the `events` group hears.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
    if ffi::nl_listening(&net) {
        ffi::nl_event(&net, e as u8, &NlConn::from(c), reason);
    }
}

/// As [`event`], for a record already copied out.
pub(crate) fn event_raw(state: &NetState, e: Event, c: &NlConn, reason: Option<&CStr>) {
    ffi::nl_event(&state.net(), e as u8, c, reason);
}
