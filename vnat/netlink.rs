// SPDX-License-Identifier: GPL-2.0

//! The generic netlink family `vnat` (spec: `vnat/vnat.yaml`; its numbers
//! and enums generated from it into `vnat/generated/`): how administrators
//! and tools list virtual connections and tell VNAT that a host moved (paper
//! 3.3: VNAT "simply needs to be notified"). `vnat/shim/netlink.c` registers the
//! family and frames the messages; this file decides what they say.
//!
//! Addresses are IPv4 or IPv6: an IPv4 one is the u32 attribute it always
//! was (`local-addr`, ...), an IPv6 one its `*-addr6` form; the shim frames
//! and parses either, and hands them over as [`RawAddr`] (IPv4 v4-mapped).
//!
//! - `conn-get` (dump): the virtual connections of the caller's namespace,
//!   with their virtual and physical endpoints, state, origin and owner;
//!   all of them with `CAP_NET_ADMIN` in the namespace's user namespace,
//!   else those of the caller's own sockets (as `ss -p` shows processes).
//! - `conn-resume` (`CAP_NET_ADMIN` in the namespace's user namespace):
//!   the connections of a local address (a host's move), of a process, or
//!   one connection, resume at a new local address; the answer says how
//!   many.
//! - `conn-suspend` (same rights, same selectors): they are suspended, and
//!   their peers keep them with a helper until they resume.
//! - `conn-set` (same rights): one connection's conflict policy and helper.
//! - `conn-export` (dump, same rights): the saved state, keys included, of
//!   a process's connections, of one connection, or of all, for a process
//!   that moves to another host; `conn-import` (same rights) expects them
//!   there.
//! - `stats-get` (unprivileged): the namespace's counters ([`Counter`]).
//! - the `events` group (`CAP_NET_ADMIN`, as it shows every connection):
//!   what happens to connections (`events.rs`), as it happens, for
//!   `vnatctl monitor` and `ynl --subscribe`.

use crate::{
    counters::Counter,
    export::{Refused, Saved},
    ffi::{self, NlConn, RawAddr},
    helper::Helper,
    netns::NetState,
    nl_gen::attr::stats,
    process_migration::{self, NotExpected},
    requests::{Request, Selector},
    vcmp::Endpoint,
    virtualization::{Key, Policy},
};
use core::net::IpAddr;
use kernel::prelude::*;

/// The words of a dump's memory between parts (`cb->args`, of six) that
/// [`vnat_rs_nl_dump`] uses: the socket of the last connection put (0: no
/// part yet), its remote address's 16 bytes as four 32-bit words (a `long`
/// may have 32 bits), and its remote port.
const DUMP_ARGS: usize = 6;

/// Called by the shim for each part of a `conn-get` dump. `args` are the
/// dump's six words of memory between parts: whether a part ended early,
/// and the key of the last connection it put. `all`: the caller may see
/// every connection; else only those of sockets of user `uid` (a kernel
/// uid, as the caller's socket has it).
#[no_mangle]
extern "C" fn vnat_rs_nl_dump(
    state: *const c_void,
    skb: *mut c_void,
    cb: *mut c_void,
    args: *mut c_long,
    all: bool,
    uid: u32,
) {
    // SAFETY: The shim passes the live state of the caller's namespace (the
    // caller's netlink socket holds the namespace), and `cb->args`, six
    // longs owned by this dump.
    let (state, args) = unsafe {
        (
            NetState::borrow(state),
            core::slice::from_raw_parts_mut(args, DUMP_ARGS),
        )
    };
    let after = dump_position(args);
    let mut last = after;
    state.connections.for_each_after(after, |k, sk, c| {
        if !all && sk.uid() != uid {
            return true;
        }
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
    set_dump_position(args, last);
}

/// Called by the shim for each part of a `conn-export` dump (the caller
/// has `CAP_NET_ADMIN`): the saved state, keys included, of the
/// connections `r` selects (by process or one by its five-tuple; null: of
/// all), that a process moving to another host takes with it
/// (`process_migration.rs`). `args` as for [`vnat_rs_nl_dump`]. The UDP
/// flows of unconnected sockets are not saved: they are their peers'
/// moves. Returns 0, or a refusal of `r` (nothing dumped) as a negative
/// errno with its reason in `why`: `EINVAL` for a five-tuple of two
/// families or a selection by address.
#[no_mangle]
extern "C" fn vnat_rs_nl_export(
    state: *const c_void,
    skb: *mut c_void,
    cb: *mut c_void,
    args: *mut c_long,
    r: *const ffi::NlResume,
    why: *mut *const kernel::ffi::c_char,
) -> c_int {
    // SAFETY: As in `vnat_rs_nl_dump`; `r` is null or points to the shim's
    // request, a whole `struct vnat_nl_resume` on its stack that nothing
    // changes during the call.
    let (state, args, r) = unsafe {
        (
            NetState::borrow(state),
            core::slice::from_raw_parts_mut(args, DUMP_ARGS),
            r.as_ref(),
        )
    };
    let which = match r.map(export_selector).transpose() {
        Ok(which) => which,
        // SAFETY: The shim passes a place for the reason, read after the call.
        Err(e) => return unsafe { answer(Err(e), why) },
    };
    let after = dump_position(args);
    let mut last = after;
    state.connections.for_each_keyed_after(after, |k, c, keys| {
        if !c.origin.owns_socket() || which.as_ref().is_some_and(|w| !w.matches(c)) {
            return true;
        }
        let saved = process_migration::save(c, keys);
        let mut bytes = saved.encode();
        // SAFETY: `skb` and `cb` are the dump's, as the shim passed them.
        let put = unsafe { ffi::nl_put_saved(skb, cb, &NlConn::from(c), &bytes) };
        crate::export::wipe(&mut bytes);
        if put {
            last = Some(k);
        }
        put
    });
    set_dump_position(args, last);
    0
}

/// Called by the shim for `conn-import` (the caller has `CAP_NET_ADMIN`):
/// the connection `saved` (`len` bytes) describes, which `conn-export`
/// saved on another host, is expected here. Returns 0, or a negative
/// errno with its reason in `why`.
#[no_mangle]
extern "C" fn vnat_rs_nl_import(
    state: *const c_void,
    saved: *const u8,
    len: u32,
    why: *mut *const kernel::ffi::c_char,
) -> c_int {
    // SAFETY: The shim passes the live state of the caller's namespace, the
    // attribute's payload, `len` bytes valid during the call, and a place
    // for the reason.
    unsafe {
        let bytes = core::slice::from_raw_parts(saved, len as usize);
        answer(import(NetState::borrow(state), bytes).map(|()| 0), why)
    }
}

fn import(state: &NetState, bytes: &[u8]) -> Result<(), Refusal> {
    let saved = match Saved::decode(bytes) {
        Ok((s, n)) if n == bytes.len() => s,
        Ok(_) => return Err(Refusal::new(EINVAL, c"saved state has bytes after its end")),
        Err(e @ Refused::Version) => return Err(Refusal::new(EPROTO, e.why())),
        Err(e) => return Err(Refusal::new(EINVAL, e.why())),
    };
    if saved.local_virtual.is_v6() {
        return Err(Refusal::new(
            EAFNOSUPPORT,
            c"moving a process's IPv6 connections is not supported yet",
        ));
    }
    // What the record will be: a value out of the spec's enums is refused
    // now, not when the socket comes.
    if process_migration::restore(&saved, 0).is_err() {
        return Err(Refusal::new(
            EINVAL,
            c"saved state has an origin, policy, helper or key state this module does not know",
        ));
    }
    if state
        .connections
        .find(saved.proto, saved.local_virtual, saved.remote_virtual)
        .is_some()
    {
        return Err(Refusal::new(
            EEXIST,
            c"this connection is recorded here already",
        ));
    }
    match state.arrivals.expect(saved) {
        Ok(expired) => {
            if expired > 0 {
                state.count(Counter::ImportsExpired, expired as u64);
            }
            Ok(())
        }
        Err(NotExpected::Twice) => Err(Refusal::new(
            EEXIST,
            c"this connection is expected here already",
        )),
        Err(NotExpected::Full) => Err(Refusal::new(
            ENOSPC,
            c"too many connections are expected here",
        )),
        Err(NotExpected::NoMemory) => Err(ENOMEM.into()),
    }
}

/// Where the previous part of a dump stopped (`args` as in
/// [`vnat_rs_nl_dump`]).
fn dump_position(args: &[c_long]) -> Option<Key> {
    // Each word holds 32 bits at most: as u32 first, so that a negative
    // long (bit 31 set, on a 32-bit machine) comes back whole.
    let word = |i: usize| u64::from(args[i] as u32);
    (args[0] != 0).then(|| {
        let addr = [(word(1) << 32) | word(2), (word(3) << 32) | word(4)];
        Key::from_raw(args[0] as usize, addr, args[5] as u16)
    })
}

/// Keeps where this part of a dump stopped, if it put anything.
fn set_dump_position(args: &mut [c_long], last: Option<Key>) {
    if let Some(k) = last {
        let (sk, addr, port) = k.to_raw();
        args[0] = sk as c_long;
        args[1] = (addr[0] >> 32) as u32 as c_long;
        args[2] = addr[0] as u32 as c_long;
        args[3] = (addr[1] >> 32) as u32 as c_long;
        args[4] = addr[1] as u32 as c_long;
        args[5] = port as c_long;
    }
}

/// Why a command was refused: the errno, and the reason user space reads in
/// the extended ack (`vnatctl` prints it).
#[derive(Debug)]
struct Refusal {
    err: Error,
    why: Option<&'static CStr>,
}

impl Refusal {
    const fn new(err: Error, why: &'static CStr) -> Self {
        Self {
            err,
            why: Some(why),
        }
    }
}

impl From<Error> for Refusal {
    fn from(err: Error) -> Self {
        Self { err, why: None }
    }
}

/// What an entry point answers the shim: `Ok(n)` as is, a refusal as its
/// negative errno, with its reason written to `why` for the extack.
///
/// # Safety
///
/// `why` must be valid for a write.
unsafe fn answer(r: Result<c_int, Refusal>, why: *mut *const kernel::ffi::c_char) -> c_int {
    match r {
        Ok(n) => n,
        Err(Refusal { err, why: reason }) => {
            if let Some(reason) = reason {
                // SAFETY: Valid by the function's requirements; the reason
                // is static, so the shim may keep it in the extack.
                unsafe { why.write(reason.as_char_ptr()) };
            }
            err.to_errno()
        }
    }
}

/// The refusal when nothing matches `which`.
fn nothing_matches(which: &Selector) -> Refusal {
    let why = match which {
        Selector::Address(_) => c"no virtual connection is at this address",
        Selector::Pid(_) => c"this process has no virtual connection",
        Selector::Path { .. } | Selector::Slept { .. } => c"no virtual connection is on this path",
        Selector::All => c"no virtual connection",
        Selector::Connection { .. } => c"no such virtual connection",
    };
    Refusal::new(ENOENT, why)
}

/// Called by the shim for `conn-resume`: the connections `r` selects
/// resume at `r.new_addr` (the shim checked that it is local); if that is
/// all zero (none given), at the address the host would use now to reach
/// the first one's peer, written back to `r.new_addr`. A connection keeps
/// its family: those of the other family than the new address stay where
/// they are ([`VirtualConnection::moves_to`]). Returns how many connections
/// move, or a negative errno with its reason in `why`: `EINVAL` for a zero
/// address or a five-tuple of two families, `EADDRNOTAVAIL` for a
/// link-local new address, `ENOENT` when nothing matches,
/// `EAFNOSUPPORT` when nothing that matches is of the new address's
/// family, `EALREADY` when everything that matches is at the new address,
/// `EHOSTUNREACH` when no address could be chosen.
#[no_mangle]
extern "C" fn vnat_rs_nl_resume(
    state: *const c_void,
    r: *mut ffi::NlResume,
    why: *mut *const kernel::ffi::c_char,
) -> c_int {
    // SAFETY: The shim passes the live state of the caller's namespace (its
    // netlink socket holds the namespace), a request that nothing else uses
    // during the call, and a place for the reason, read after the call.
    unsafe { answer(resume(NetState::borrow(state), &mut *r), why) }
}

fn resume(state: &NetState, r: &mut ffi::NlResume) -> Result<c_int, Refusal> {
    let which = selector(r)?;
    let to = if r.new_addr == RawAddr::default() {
        let mut peer = None;
        state.connections.for_each(|_, c| {
            if peer.is_none() && which.matches(c) {
                peer = Some(c.mapping.remote_physical.addr);
            }
        });
        let peer = peer.ok_or_else(|| nothing_matches(&which))?;
        let to = state.net().route_source(peer).ok_or(Refusal::new(
            EHOSTUNREACH,
            c"no route to the peer to choose an address by: give new-addr",
        ))?;
        r.new_addr = RawAddr::from(to);
        to
    } else {
        IpAddr::from(r.new_addr)
    };
    if Endpoint::from_ip(to, 0).is_link_local() {
        return Err(Refusal::new(
            EADDRNOTAVAIL,
            c"new-addr is link-local, which means nothing without its interface",
        ));
    }
    let (mut matching, mut of_family, mut to_move): (c_int, c_int, c_int) = (0, 0, 0);
    state.connections.for_each(|_, c| {
        if which.matches(c) {
            matching += 1;
            of_family += c_int::from(c.mapping.local_physical.addr.is_ipv6() == to.is_ipv6());
            to_move += c_int::from(c.moves_to(to));
        }
    });
    if matching == 0 {
        return Err(nothing_matches(&which));
    }
    if of_family == 0 {
        return Err(Refusal::new(
            EAFNOSUPPORT,
            c"new-addr is of another family than the connections: a connection keeps its family",
        ));
    }
    if to_move == 0 {
        return Err(Refusal::new(
            EALREADY,
            c"the connections are at new-addr already",
        ));
    }
    state.requests.push(Request::Migrate { which, to })?;
    state.kick();
    Ok(to_move)
}

/// The virtual endpoints of the five-tuple `r` names (IPv4 ones as IPv4,
/// also if the request gave them v4-mapped in the `*-addr6` form); `EINVAL`
/// if they are of two families, which no connection has.
fn tuple(r: &ffi::NlResume) -> Result<(Endpoint, Endpoint), Refusal> {
    let local = Endpoint::from_ip(r.local_addr.into(), u16::from_be(r.local_port));
    let remote = Endpoint::from_ip(r.remote_addr.into(), u16::from_be(r.remote_port));
    if !local.same_family(&remote) {
        return Err(Refusal::new(
            EINVAL,
            c"local and remote addresses of two families: a connection has one",
        ));
    }
    Ok((local, remote))
}

/// The connections a `conn-export` request selects: as [`selector`], not
/// by address (a host's move is no process's).
fn export_selector(r: &ffi::NlResume) -> Result<Selector, Refusal> {
    match selector(r)? {
        Selector::Address(_) => Err(Refusal::new(
            EINVAL,
            c"conn-export selects by pid or by connection, not by local-addr: give the whole five-tuple",
        )),
        which => Ok(which),
    }
}

/// The connections a `conn-resume`, `conn-suspend` or `conn-export`
/// request selects.
fn selector(r: &ffi::NlResume) -> Result<Selector, Refusal> {
    let which = match ffi::NlBy::try_from(r.by)? {
        ffi::NlBy::Address => Selector::Address(r.local_addr.into()),
        ffi::NlBy::Pid => Selector::Pid(r.pid as i32),
        ffi::NlBy::Connection => {
            let (local, remote) = tuple(r)?;
            Selector::Connection {
                proto: r.proto,
                local,
                remote,
            }
        }
    };
    match which {
        Selector::Address(IpAddr::V4(a)) if a.is_unspecified() => {
            Err(Refusal::new(EINVAL, c"local-addr 0.0.0.0 is no address"))
        }
        Selector::Address(IpAddr::V6(a)) if a.is_unspecified() => {
            Err(Refusal::new(EINVAL, c"local-addr6 :: is no address"))
        }
        _ => Ok(which),
    }
}

/// Called by the shim for `conn-suspend`: the connections `r` selects are
/// suspended. Returns how many that covers, or a negative errno with its
/// reason in `why`: `EINVAL` (address 0, a five-tuple of two families),
/// `ENOENT` (nothing matches), `EALREADY` (all of them are suspended).
#[no_mangle]
extern "C" fn vnat_rs_nl_suspend(
    state: *const c_void,
    r: *const ffi::NlResume,
    why: *mut *const kernel::ffi::c_char,
) -> c_int {
    // SAFETY: As in `vnat_rs_nl_resume`.
    unsafe { answer(suspend(NetState::borrow(state), &*r), why) }
}

fn suspend(state: &NetState, r: &ffi::NlResume) -> Result<c_int, Refusal> {
    let which = selector(r)?;
    let (mut matching, mut to_suspend): (c_int, c_int) = (0, 0);
    state.connections.for_each(|_, c| {
        if which.matches(c) {
            matching += 1;
            to_suspend += c_int::from(!c.suspended);
        }
    });
    if matching == 0 {
        return Err(nothing_matches(&which));
    }
    if to_suspend == 0 {
        return Err(Refusal::new(
            EALREADY,
            c"the connections are suspended already",
        ));
    }
    state.requests.push(Request::Suspend {
        which,
        sleep: false,
    })?;
    state.kick();
    Ok(to_suspend)
}

/// Called by the shim for `conn-set`: the conflict policy (`enum
/// vnat_policy`) and the helper (`enum vnat_helper`) of the connection `r`
/// names (`by` is five-tuple) become `policy` and `helper`, each unless
/// `u8::MAX` (what the shim passes for an attribute the request did not
/// carry). `default` (either) makes the connection follow its knob
/// (`conflict_policy`, `suspend_helper`). Returns 0, or `-ENOENT` (or
/// `-EINVAL` for a five-tuple of two families) with its reason in `why`.
#[no_mangle]
extern "C" fn vnat_rs_nl_set(
    state: *const c_void,
    r: *const ffi::NlResume,
    policy: u8,
    helper: u8,
    why: *mut *const kernel::ffi::c_char,
) -> c_int {
    // SAFETY: As in `vnat_rs_nl_resume`.
    unsafe { answer(set(NetState::borrow(state), &*r, policy, helper), why) }
}

fn set(state: &NetState, r: &ffi::NlResume, policy: u8, helper: u8) -> Result<c_int, Refusal> {
    let (local, remote) = tuple(r)?;
    // Values the request's policy refuses do not come here; u8::MAX is
    // "not given".
    let policy = Policy::try_from(policy).ok();
    let helper = Helper::try_from(helper).ok();
    let none = || Refusal::new(ENOENT, c"no such virtual connection");
    let (key, _) = state
        .connections
        .find(r.proto, local, remote)
        .ok_or_else(none)?;
    state
        .connections
        .with(key, |c| {
            if let Some(p) = policy {
                c.policy = p;
            }
            if let Some(h) = helper {
                c.helper_choice = h;
            }
            0
        })
        .ok_or_else(none)
}

/// Called by the shim for `stats-get`: `values[a]` becomes the value of
/// attribute `a` of the set `stats`, for each `a` below `n`: the counters
/// ([`Counter::attr`]), the number of connections, whether vnatd listens
/// and whether the hooks are registered.
#[no_mangle]
extern "C" fn vnat_rs_nl_stats(state: *const c_void, values: *mut u64, n: c_uint) {
    // SAFETY: As in `vnat_rs_nl_dump`, and an array of `n` values that
    // lives across the call, which nothing else uses meanwhile.
    let (state, values) = unsafe {
        (
            NetState::borrow(state),
            core::slice::from_raw_parts_mut(values, n as usize),
        )
    };
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
