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
//!   the connections at one local address resume at another; the answer
//!   says how many.

use crate::{
    ffi::{self, NlConn},
    migration::Request,
    netns,
    virtualization::{Key, Origin, State, VirtualConnection},
};
use kernel::prelude::*;

impl From<&VirtualConnection> for NlConn {
    fn from(c: &VirtualConnection) -> Self {
        let m = &c.mapping;
        Self {
            local_addr: m.local_virtual.addr.to_be(),
            remote_addr: m.remote_virtual.addr.to_be(),
            local_phys_addr: m.local_physical.addr.to_be(),
            remote_phys_addr: m.remote_physical.addr.to_be(),
            local_port: m.local_virtual.port.to_be(),
            remote_port: m.remote_virtual.port.to_be(),
            local_phys_port: m.local_physical.port.to_be(),
            remote_phys_port: m.remote_physical.port.to_be(),
            pid: c.pid as u32,
            proto: m.proto,
            state: match c.state {
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
    let after = (args[0] != 0)
        .then(|| Key::from_raw(args[0] as usize, args[1] as u32, args[2] as u16));
    let mut last = after;
    state.connections.for_each_after(after, |k, c| {
        let msg = NlConn::from(c);
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

/// Called by the shim for `conn-resume`: the connections at local physical
/// address `from` resume at `to` (both in network byte order). Returns how
/// many connections that covers, or a negative errno: `EINVAL` for a zero
/// or unchanged address, `ENOENT` when no connection is at `from`.
#[no_mangle]
extern "C" fn vnat_rs_nl_resume(state: *mut c_void, from: u32, to: u32) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { netns::borrow(state) };
    let (from, to) = (u32::from_be(from), u32::from_be(to));
    if from == 0 || to == 0 || from == to {
        return EINVAL.to_errno();
    }
    let mut n: c_int = 0;
    state.connections.for_each(|_, c| {
        if c.mapping.local_physical.addr == from {
            n += 1;
        }
    });
    if n == 0 {
        return ENOENT.to_errno();
    }
    if let Err(e) = state.requests.push(Request::Migrate { from, to }) {
        return e.to_errno();
    }
    state.kick();
    n
}
