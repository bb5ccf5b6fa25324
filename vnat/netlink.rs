// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `vnat` (spec: `vnat/vnat.yaml`; its numbers
//! and enums generated from it into `vnat/generated/`): how administrators
//! and tools list virtual connections and tell VNAT that a host moved (paper
//! 3.3: VNAT "simply needs to be notified"). `vnat/netlink.c` registers the
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
//! - the `events` group: what happens to connections ([`Event`]), as it
//!   happens, for `vnatctl monitor` and `ynl --subscribe`.

use crate::{
    ffi::{self, NlConn},
    helper::Helper,
    mapping::Hook,
    migration::{Request, Selector},
    netns::{self, Counter, NetState},
    nl_gen::{self, attr::stats},
    vcmp::Endpoint,
    virtualization::{Key, Origin, Policy, State, VcmpState, VirtualConnection},
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
    }
}

fn nl_origin(o: Origin) -> nl_gen::Origin {
    match o {
        Origin::Connect => nl_gen::Origin::Connect,
        Origin::Accept => nl_gen::Origin::Accept,
        Origin::Existing => nl_gen::Origin::Existing,
        Origin::Update => nl_gen::Origin::Update,
    }
}

fn nl_policy(p: Option<Policy>) -> nl_gen::Policy {
    match p {
        Some(Policy::Abort) => nl_gen::Policy::Abort,
        Some(Policy::Preempt) => nl_gen::Policy::Preempt,
        None => nl_gen::Policy::Default,
    }
}

fn nl_helper(h: Helper) -> nl_gen::Helper {
    match h {
        Helper::None => nl_gen::Helper::None,
        Helper::Keepalive => nl_gen::Helper::Keepalive,
        Helper::Stop => nl_gen::Helper::Stop,
    }
}

fn nl_vcmp_state(v: VcmpState) -> nl_gen::VcmpState {
    match v {
        VcmpState::Idle => nl_gen::VcmpState::Idle,
        VcmpState::Connecting => nl_gen::VcmpState::Connecting,
        VcmpState::Waiting => nl_gen::VcmpState::Waiting,
        VcmpState::Failed => nl_gen::VcmpState::Failed,
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
            state: nl_state(c) as u8,
            origin: nl_origin(c.origin) as u8,
            policy: nl_policy(c.policy) as u8,
            vcmp_state: nl_vcmp_state(c.vcmp) as u8,
            vcmp_attempts: c.vcmp_attempts,
            helper: nl_helper(match c.helper {
                Some(a) => a.helper,
                None => c.peer_helper,
            }) as u8,
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

/// Called by the shim for `conn-set`: the conflict policy (`enum
/// vnat_policy`) and the helper (`enum vnat_helper`) of the connection `r`
/// names (`by` is five-tuple) become `policy` and `helper`, each unless
/// `u8::MAX` (what the shim passes for an attribute the request did not
/// carry). `default` (either) makes the connection follow its knob
/// (`conflict_policy`, `suspend_helper`). Returns 0 or `-ENOENT`.
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
extern "C" fn vnat_rs_nl_stats(state: *mut c_void, values: *mut u64, n: c_uint) {
    // SAFETY: As in `vnat_rs_nl_dump`.
    let state = unsafe { netns::borrow(state) };
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
    set(stats::VCMP_LISTENING, state.vcmp_listening().into());
    set(stats::HOOKS_REGISTERED, state.hooks_registered().into());
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
