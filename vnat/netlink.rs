// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `vnat` (spec: `vnat/vnat.yaml`; its numbers
//! and enums generated from it into `vnat/generated/`): how administrators
//! and tools list virtual connections and tell VNAT that a host moved (paper
//! 3.3: VNAT "simply needs to be notified"). `vnat/shim/netlink.c` registers the
//! family and frames the messages; this file decides what they say.
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
//! - `stats-get` (unprivileged): the namespace's counters ([`Counter`]).
//! - the `events` group: what happens to connections (`events.rs`), as it
//!   happens, for `vnatctl monitor` and `ynl --subscribe`.

use crate::{
    counters::Counter,
    ffi::{self, NlConn},
    helper::Helper,
    netns::NetState,
    nl_gen::{self, attr::stats},
    requests::{Request, Selector},
    vcmp::Endpoint,
    virtualization::{Key, Policy},
};
use kernel::prelude::*;

/// Called by the shim for each part of a `conn-get` dump. `args` are the
/// dump's three words of memory between parts: whether a part ended early,
/// and the key of the last connection it put.
#[no_mangle]
extern "C" fn vnat_rs_nl_dump(
    state: *const c_void,
    skb: *mut c_void,
    cb: *mut c_void,
    args: *mut c_long,
) -> c_int {
    // SAFETY: The shim passes the live state of the caller's namespace (the
    // caller's netlink socket holds the namespace).
    let state = unsafe { NetState::borrow(state) };
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
        // SAFETY: `skb` and `cb` are the dump's, as the shim passed them.
        if !unsafe { ffi::nl_put_conn(skb, cb, &msg) } {
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
extern "C" fn vnat_rs_nl_resume(state: *const c_void, r: *mut ffi::NlResume) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { NetState::borrow(state) };
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
        match state.net().route_source(peer) {
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
extern "C" fn vnat_rs_nl_suspend(state: *const c_void, r: *const ffi::NlResume) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { NetState::borrow(state) };
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

/// Called by the shim for `conn-set`: the conflict policy (`enum
/// vnat_policy`) and the helper (`enum vnat_helper`) of the connection `r`
/// names (`by` is five-tuple) become `policy` and `helper`, each unless
/// `u8::MAX` (what the shim passes for an attribute the request did not
/// carry). `default` (either) makes the connection follow its knob
/// (`conflict_policy`, `suspend_helper`). Returns 0 or `-ENOENT`.
#[no_mangle]
extern "C" fn vnat_rs_nl_set(
    state: *const c_void,
    r: *const ffi::NlResume,
    policy: u8,
    helper: u8,
) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { NetState::borrow(state) };
    // SAFETY: The shim passes a request that lives across the call.
    let r = unsafe { &*r };
    let local = Endpoint::new(u32::from_be(r.local_addr), u16::from_be(r.local_port));
    let remote = Endpoint::new(u32::from_be(r.remote_addr), u16::from_be(r.remote_port));
    // Values the policy refuses do not come here; u8::MAX is "not given".
    let policy = match nl_gen::Policy::try_from(policy) {
        Ok(nl_gen::Policy::Abort) => Some(Some(Policy::Abort)),
        Ok(nl_gen::Policy::Preempt) => Some(Some(Policy::Preempt)),
        Ok(nl_gen::Policy::Default) => Some(None),
        Err(_) => None,
    };
    let helper = match nl_gen::Helper::try_from(helper) {
        Ok(nl_gen::Helper::None) => Some(Some(Helper::None)),
        Ok(nl_gen::Helper::Keepalive) => Some(Some(Helper::Keepalive)),
        Ok(nl_gen::Helper::Stop) => Some(Some(Helper::Stop)),
        Ok(nl_gen::Helper::Default) => Some(None),
        Err(_) => None,
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

/// Called by the shim for `stats-get`: `values[a]` becomes the value of
/// attribute `a` of the set `stats`, for each `a` below `n`: the counters
/// ([`Counter::attr`]), the number of connections, whether vnatd listens
/// and whether the hooks are registered.
#[no_mangle]
extern "C" fn vnat_rs_nl_stats(state: *const c_void, values: *mut u64, n: c_uint) {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { NetState::borrow(state) };
    // SAFETY: The shim passes an array of `n` values that lives across the
    // call, and nothing else uses it meanwhile.
    let values = unsafe { core::slice::from_raw_parts_mut(values, n as usize) };
    let mut set = |a: u16, v: u64| {
        if let Some(x) = values.get_mut(usize::from(a)) {
            *x = v;
        }
    };
    for &c in Counter::ALL {
        set(c.attr(), state.counter(c));
    }
    set(stats::CONNECTIONS, state.connections.len() as u64);
    set(stats::VCMP_LISTENING, state.is_listening().into());
    set(stats::HOOKS_REGISTERED, state.is_hooked().into());
}
