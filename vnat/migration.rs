// SPDX-License-Identifier: GPL-2.0

//! Connection migration (paper section 3.3): what suspending, resuming and
//! updating a connection do to its mapping. The VCMP conversations that
//! carry the updates are vnatd's (`vnatd_kthread/vnatd.rs`).
//!
//! Suspending needs nothing (3.3.1): a host may vanish from a network
//! without notice. When it is told (`conn-suspend`), [`begin_suspend`]
//! marks the connections and vnatd sends each peer `VNAT_SUS`; the peer, in
//! [`accept_suspend`], activates a connection migration helper
//! (`helper.rs`) and answers which; [`suspend_answered`] records it. The
//! helper is undone when the peer's `VNAT_UPD` comes ([`accept_update`]).
//!
//! Resuming (3.3.2) starts when the host has a new address, or when a
//! suspended connection is resumed where it is:
//!
//! 1. [`begin`]: every connection whose local physical address was the old
//!    one gets the new one and the state `Resuming`; its incoming rules go
//!    live at once, so that the peer's packets are understood as soon as the
//!    peer knows the new address; its outgoing packets keep their old form
//!    until then, since the peer would answer the new one with a reset.
//! 2. vnatd sends `VNAT_UPD` to each peer's vnatd, one TCP stream per peer,
//!    batched.
//! 3. The peer, in [`accept_update`], points the connection's remote
//!    physical endpoint at the new one, publishes its rules, and only then
//!    answers `VNAT_UPD_R` with its own current physical endpoint.
//! 4. [`finish`] records that endpoint and translates both ways; if the peer
//!    refuses, or does not answer after the retries, [`abort`] puts the
//!    connection back as it was.
//!
//! What starts a move by itself (`auto_migrate`): an address that
//! connections used went away, and another came up ([`address_event`]);
//! or the host already reaches the peer from another address
//! ([`reroute`]: a second network was up before the first went, or, with
//! `migrate_on` `on-route-change`, the route to the peer changed).

use crate::{
    authentication::{self, Source},
    counters::Counter,
    events::{self, Event},
    ffi::{self, NlConn, RawAddr, Sock},
    helper::{self, Helper},
    knobs::{MigrateOn, VcmpAuth, AUTO_MIGRATE, SLEEP_SUSPEND, VCMP_UDP_FLOWS},
    netns::{NetState, Show},
    requests::{Request, Selector},
    vcmp::{Endpoint, Message, SuspendReply, Update, UpdateReply, PROTO_UDP},
    virtualization::{Key, Origin, State, VcmpState, VirtualConnection},
};
use core::net::IpAddr;
use kernel::{
    prelude::*,
    str::CString,
    sync::{
        aref::ARef,
        atomic::{Acquire, Relaxed},
    },
};

/// The address notifier saw `addr` appear or go away.
/// Returns whether vnatd has a new request.
pub(crate) fn address_event(state: &NetState, up: bool, addr: IpAddr) -> bool {
    if up {
        // A move that is retrying tries again now: the network may be
        // ready (also when this address is not the one it moved to).
        state.address_came();
        // So do the connections that sleep suspended and that found no
        // route on wake.
        if state.wake_pending.load(Relaxed) {
            state.requests.reroute();
        }
    }
    if !AUTO_MIGRATE.get_bool() {
        return up;
    }
    if up {
        state.requests.address_found(addr);
        return true;
    }
    let mut used = false;
    state
        .connections
        .for_each(|_, c| used |= c.mapping.local_physical.addr == addr);
    if used && !state.requests.address_lost(addr) {
        state.count(Counter::MigrationsFailed, 1);
    }
    // The host may reach the peers from another address already.
    used && state.requests.reroute()
}

/// A route or routing rule of the namespace changed (any context). Returns
/// whether vnatd has a new request.
pub(crate) fn route_event(state: &NetState) -> bool {
    // A connect that found no route (a new address's event comes before
    // its route) tries again now, not after its pause.
    let awaited = state.route_changed();
    // A lost address's connections wait for a route from another address:
    // an IPv6 address's local route comes when its duplicate address
    // detection is over, when it becomes usable.
    let wanted = state.wake_pending.load(Relaxed)
        || (AUTO_MIGRATE.get_bool()
            && (MigrateOn::get() == MigrateOn::RouteChange || state.requests.has_lost()));
    (wanted && state.requests.reroute()) || awaited
}

/// Called by the shim's route notifier (a FIB notifier of the namespace)
/// when an IPv4 route or routing rule changes.
#[no_mangle]
extern "C" fn vnat_rs_route_event(state: *const c_void) {
    // SAFETY: The shim passes the state of the namespace whose routes
    // changed; its notifier is unregistered before the state goes.
    let state = unsafe { NetState::borrow(state) };
    if route_event(state) {
        state.kick();
    }
}

/// Queues the moves of the connections whose route to their peer now
/// leaves through another interface than the one that has their address:
/// those whose address went away, and with `migrate_on` `on-route-change`
/// any. Connections in the middle of a move or suspended are left to it;
/// returns whether there were any (vnatd looks again once its moves are
/// over). Called by vnatd (process context): the paths (local address,
/// peer) are copied out under the table lock, and looked up once each
/// outside it.
pub(crate) fn reroute(state: &NetState) -> bool {
    let any = MigrateOn::get() == MigrateOn::RouteChange;
    let net = state.net();
    let mut skipped = false;
    let Some(paths) = paths_of(state, |c| {
        let busy = c.state == State::Resuming || c.suspended;
        skipped |= busy;
        !busy
    }) else {
        return false;
    };
    for &(from, peer) in paths.iter() {
        // Without `on-route-change`, only the paths whose address went.
        let moves = any || !net.is_local(from);
        if !moves || !net.is_remote_unicast(peer) {
            continue;
        }
        if let Some(to) = net.route_moved(from, peer) {
            let which = Selector::Path { from, peer };
            if state.requests.push(Request::Migrate { which, to }).is_err() {
                state.count(Counter::MigrationsFailed, 1);
            }
        }
    }
    skipped
}

/// The distinct paths (local physical address, remote physical address)
/// of the connections `pick` takes, sorted; `None` if memory is short.
/// Copied out under the table lock, so that each path is looked up once,
/// outside it.
fn paths_of(
    state: &NetState,
    mut pick: impl FnMut(&VirtualConnection) -> bool,
) -> Option<KVVec<(IpAddr, IpAddr)>> {
    let mut paths = KVVec::new();
    loop {
        // Room for every connection's path, and a few that come meanwhile.
        paths
            .reserve(state.connections.len() + 16, GFP_KERNEL)
            .ok()?;
        let mut full = false;
        state.connections.for_each(|_, c| {
            if pick(c) {
                let p = (
                    c.mapping.local_physical.addr,
                    c.mapping.remote_physical.addr,
                );
                full |= paths.push_within_capacity(p).is_err();
            }
        });
        if !full {
            break;
        }
        paths.clear();
    }
    paths.sort_unstable();
    let mut last = None;
    paths.retain(|p| {
        let new = last != Some(*p);
        last = Some(*p);
        new
    });
    Some(paths)
}

/// Called by the shim's inetaddr and inet6addr notifiers when `addr`
/// (IPv4 v4-mapped) appears on or goes away from an interface of the
/// namespace (any context: a router advertisement's address comes in
/// softirq).
#[no_mangle]
extern "C" fn vnat_rs_addr_event(state: *const c_void, up: bool, addr: *const RawAddr) {
    // SAFETY: The shim passes the state of the namespace whose address
    // changed; the notifier runs while a device of the namespace has the
    // address, so the namespace is alive.
    let state = unsafe { NetState::borrow(state) };
    // SAFETY: The shim passes an address valid for the call.
    let addr = IpAddr::from(unsafe { *addr });
    if address_event(state, up, addr) {
        state.kick();
    }
}

/// A message to send to a peer's vnatd: which connection, and the message.
pub(crate) struct Outgoing {
    /// The connection.
    pub(crate) key: Key,
    /// The peer's vnatd address (the connection's remote physical address).
    pub(crate) peer: IpAddr,
    /// The local physical address the message names, which the peer
    /// believes it only from: where it is sent from.
    pub(crate) from: IpAddr,
    /// The `VNAT_UPD` or `VNAT_SUS` for it.
    pub(crate) msg: Message,
    /// The connection as the `resuming` event shows it.
    pub(crate) event: NlConn,
}

/// Keeps a socket's `IP_TRANSPARENT` in step with its mapping: needed while
/// its local virtual address is not where it sends from. An unconnected UDP
/// socket chooses its source per datagram and serves other peers too: it is
/// left alone.
fn sync_transparency(sk: &Sock, c: &VirtualConnection) {
    if c.origin.owns_socket() {
        sk.set_transparent(c.mapping.local_physical != c.mapping.local_virtual);
    }
}

/// Step 1: moves the connections `which` selects to local address `to` and
/// says which updates to send. The caller publishes the rules, sends the
/// updates and tells the events group.
pub(crate) fn begin(
    state: &NetState,
    which: Selector,
    to: IpAddr,
    out: &mut KVVec<Outgoing>,
) -> Result {
    // Room for every connection, and a few that come meanwhile, reserved
    // here: under the table lock an allocation is atomic, which could not
    // grow a vector of 10,000 records (an order above what kmalloc gives;
    // the ones left over were not moved).
    out.reserve(state.connections.len() + 16, GFP_KERNEL)?;
    let mut err = Ok(());
    state.connections.update(|key, sk, c| {
        if !which.matches(c) || !c.moves_to(to) || err.is_err() {
            return false;
        }
        let update = Update {
            proto: c.mapping.proto,
            remote_virtual: c.mapping.remote_virtual,
            local_virtual: c.mapping.local_virtual,
            local_physical: Endpoint::from_ip(to, c.mapping.local_physical.port),
        };
        let peer = c.mapping.remote_physical.addr;
        let previous = c.mapping.local_physical;
        c.mapping.local_physical = update.local_physical;
        let event = NlConn::from(&*c);
        c.mapping.local_physical = previous;
        // Past the room (more than a few connections came meanwhile): left
        // where they are, and logged as memory short.
        if out
            .push_within_capacity(Outgoing {
                key,
                peer,
                from: to,
                msg: Message::Update(update),
                event,
            })
            .is_err()
        {
            err = Err(ENOMEM);
            return false;
        }
        c.suspended = false;
        c.slept = false;
        if c.state != State::Resuming {
            c.previous_local = c.mapping.local_physical;
        }
        c.mapping.local_physical = update.local_physical;
        c.state = State::Resuming;
        c.vcmp = VcmpState::Idle;
        c.vcmp_attempts = 0;
        sync_transparency(sk, c);
        true
    });
    err
}

/// The update of connection `key` to where its peer is now, if the
/// connection is in the middle of its own move: the peer moved too and told
/// us, maybe while our update went to its old address (both ends moving at
/// once, paper 3.4.2); the caller sends it unless a conversation with the
/// peer's new address carries it already.
pub(crate) fn resend(state: &NetState, key: Key) -> Option<Outgoing> {
    state.connections.with(key, |c| {
        let m = &c.mapping;
        if c.state != State::Resuming {
            return None;
        }
        Some(Outgoing {
            key,
            peer: m.remote_physical.addr,
            from: m.local_physical.addr,
            msg: Message::Update(Update {
                proto: m.proto,
                remote_virtual: m.remote_virtual,
                local_virtual: m.local_virtual,
                local_physical: m.local_physical,
            }),
            event: NlConn::from(&*c),
        })
    })?
}

/// What became of a `VNAT_UPD` or `VNAT_SUS` a peer sent.
pub(crate) struct Verdict<R> {
    /// The reply to send.
    pub(crate) reply: R,
    /// The connection whose mapping changed: its rules are published, and
    /// it is kicked, before the reply goes out.
    pub(crate) changed: Option<Key>,
    /// Refused for a reason that guessing gives (no such connection, not
    /// from the address it names, a martian address): such refusals close
    /// the stream after `vcmp_max_refusals`; refusals by policy do not.
    pub(crate) suspicious: bool,
}

impl<R> Verdict<R> {
    /// A verdict that changes no mapping.
    fn unchanged(reply: R, suspicious: bool) -> Self {
        Self {
            reply,
            changed: None,
            suspicious,
        }
    }

    /// The refusal `refused` of message `u`, for `why` (counted, with the
    /// count of refusals of its kind, `kind`) and `reason` (the `refused`
    /// event's).
    fn refused(
        state: &NetState,
        u: &Update,
        refused: R,
        kind: Counter,
        why: Counter,
        reason: &CStr,
        suspicious: bool,
    ) -> Self {
        state.count(why, 1);
        state.count(kind, 1);
        refuse(state, u, reason);
        Self::unchanged(refused, suspicious)
    }
}

/// Step 3, on the peer: applies a `VNAT_UPD` received on a VCMP connection
/// from `from`, either under the key of connection `opened` (version 2,
/// opened by [`authentication::open`]) or, for version 1 (`None`), only as
/// [`authentication::v1_refused`] says. Version 1 is believed only from the
/// address it names; version 2 puts the peer where the stream comes from
/// ([`Source::believe`]): behind a NAT, the NAT's address with the named
/// port, and then the connection validates that path
/// ([`State::Validating`]) before anything is sent there. The caller
/// publishes the rules before it sends the reply. An update that changes
/// nothing (a retry whose reply was lost, or a peer repeating itself) is
/// answered without touching anything.
pub(crate) fn accept_update(
    state: &NetState,
    u: &Update,
    from: Source,
    opened: Option<Key>,
) -> Verdict<UpdateReply> {
    let refused = |why, reason, suspicious| {
        let r = UpdateReply::REFUSED;
        Verdict::refused(
            state,
            u,
            r,
            Counter::UpdatesRefused,
            why,
            reason,
            suspicious,
        )
    };
    let (at, unseen) = match from.believe(u.local_physical, opened.is_some()) {
        Ok(b) => b,
        Err((why, reason)) => return refused(why, reason, true),
    };
    let u = &Update {
        local_physical: at,
        ..*u
    };
    // The sender's virtual endpoint is our remote one, and the other way round.
    let found = match opened {
        Some(k) => Some(k),
        None => match state
            .connections
            .find(u.proto, u.remote_virtual, u.local_virtual)
        {
            Some((k, c)) => match authentication::v1_refused(&c) {
                Some(reason) => return refused(Counter::VcmpV1Refused, reason, true),
                None => Some(k),
            },
            None => None,
        },
    };
    let key = match found {
        Some(k) => k,
        None if VcmpAuth::get() == VcmpAuth::Required => {
            return refused(
                Counter::VcmpV1Refused,
                c"version 1 is not believed (vcmp_auth is required)",
                true,
            )
        }
        None => match udp_flow(state, u) {
            Ok(Some(k)) => k,
            Ok(None) => {
                return refused(
                    Counter::VcmpUnknownConnection,
                    c"no such virtual connection",
                    true,
                )
            }
            Err(()) => {
                return refused(
                    Counter::VcmpUdpFlowsRefused,
                    c"an update may not create a UDP flow (vcmp_udp_flows is 0)",
                    false,
                )
            }
        },
    };
    if let Some(reply) = resolve_conflict(state, key, u) {
        return Verdict::unchanged(reply, false);
    }
    let reply = state.connections.with_sock(key, |sk, c| {
        let reply = UpdateReply {
            local_physical: c.mapping.local_physical,
        };
        if c.mapping.remote_physical == u.local_physical
            && c.state != State::Resuming
            && c.helper.is_none()
        {
            return (reply, None);
        }
        // A path the hooks already send on (a packet came from it) is the
        // one ours keep going to while the new one is not seen.
        if c.state == State::Validating && state.rules.path_seen(key, c) {
            c.previous_remote = c.mapping.remote_physical;
        }
        c.mapping.remote_physical = u.local_physical;
        c.updated_ns = ffi::now_ns();
        c.unvalidated = unseen && u.local_physical != c.previous_remote;
        // A resuming end settles when its own update is answered.
        if c.state != State::Resuming {
            c.settle();
        }
        // The peer resumed: its helper here is done (undone out of the
        // lock, with the socket held).
        let helper = c.helper.take().map(|a| (a, ARef::from(sk)));
        (reply, Some((NlConn::from(&*c), helper)))
    });
    match reply {
        Some((r, None)) => {
            state.count(Counter::UpdatesAccepted, 1);
            Verdict {
                reply: r,
                changed: None,
                suspicious: false,
            }
        }
        Some((r, Some((now, helper)))) => {
            state.count(Counter::UpdatesAccepted, 1);
            if let Some((a, sk)) = helper {
                helper::release(Some(&sk), &a);
                state.count(Counter::HelpersReleased, 1);
                // The event names the helper that was undone.
                let released = NlConn {
                    helper: a.helper as u8,
                    ..now
                };
                events::event_raw(
                    state,
                    Event::HelperReleased,
                    &released,
                    Some(c"the peer resumed"),
                );
            }
            events::event_raw(state, Event::PeerMoved, &now, None);
            Verdict {
                reply: r,
                changed: Some(key),
                suspicious: false,
            }
        }
        None => {
            // Closed meanwhile.
            state.count(Counter::UpdatesRefused, 1);
            Verdict::unchanged(UpdateReply::REFUSED, false)
        }
    }
}

/// A peer's `VNAT_UPD` or `VNAT_SUS` was refused for `reason`: announced as
/// a `refused` event showing the connection as the peer named it, from our
/// side.
fn refuse(state: &NetState, u: &Update, reason: &CStr) {
    let asked = VirtualConnection::new(
        u.proto,
        u.remote_virtual,
        u.local_virtual,
        0,
        Origin::Update,
    );
    let mut asked = NlConn::from(&asked);
    asked.remote_phys_addr = RawAddr::from(u.local_physical.addr);
    asked.remote_phys_port = u.local_physical.port.to_be();
    events::event_raw(state, Event::Refused, &asked, Some(reason));
}

/// Paper 3.4.3: if the physical endpoints connection `key` would have after
/// update `u` are those of another live connection here, the two cannot
/// coexist. The connection's policy decides: `abort` refuses the update
/// (returned, to be sent), `preempt` aborts the other connection (as `ss
/// --kill` does) and lets the update through.
fn resolve_conflict(state: &NetState, key: Key, u: &Update) -> Option<UpdateReply> {
    let (local, preempts) = state
        .connections
        .with(key, |c| (c.mapping.local_physical, c.preempts()))?;
    let (other, c) = state
        .connections
        .conflict(key, u.proto, local, u.local_physical)?;
    if preempts {
        preempt(
            state,
            &other,
            &c,
            c"aborted to make way for a migrating connection (policy preempt)",
        );
        return None;
    }
    state.count(Counter::ConflictsAborted, 1);
    state.count(Counter::UpdatesRefused, 1);
    events::event(
        state,
        Event::Conflict,
        &c,
        Some(c"in the way of a migrating connection, which was refused (policy abort)"),
    );
    Some(UpdateReply::REFUSED)
}

/// Aborts connection `other` (record `c`), found by
/// [`crate::virtualization::ConnectionTable::conflict`], as `ss --kill`
/// does; counted and announced with `reason`.
fn preempt(state: &NetState, other: &Sock, c: &VirtualConnection, reason: &CStr) {
    state.count(Counter::ConflictsPreempted, 1);
    events::event(state, Event::Conflict, c, Some(reason));
    other.abort();
}

/// A UDP "connection" is often served by an unconnected socket, which has no
/// record until its peer moves (paper 3.5) or asks for its key: if a
/// version-1 update names a local UDP socket that would receive the peer's
/// datagrams, from another host, the flow is recorded now, its key
/// returned. `Err` if there is such a socket but `vcmp_udp_flows` forbids
/// it (see there).
fn udp_flow(state: &NetState, u: &Update) -> Result<Option<Key>, ()> {
    if u.proto != PROTO_UDP {
        return Ok(None);
    }
    // Our end is the one the sender calls remote.
    if Sock::udp_lookup(state.net(), u.remote_virtual, u.local_virtual).is_none() {
        return Ok(None);
    }
    if !VCMP_UDP_FLOWS.get_bool() {
        return Err(());
    }
    Ok(authentication::record_udp_flow(
        state,
        u.remote_virtual,
        u.local_virtual,
    ))
}

/// Step 4: the peer, reached at `peer`, answered the update of connection
/// `key`: the move is complete. Where the reply says the peer is, is
/// believed as an update is ([`Source`]), else the peer stays where it is
/// recorded: a peer that moves too answers from the old address it was
/// reached at, naming its new one, which is taken only from its own update
/// (both ends moving at once, paper 3.4.2). Under the key, the peer also
/// said where the update came from (`seen`): if not from this end's
/// address, a NAT is between, the `resumed` event says where the peer sees
/// this end, and true is returned: the peer validates the path, waiting for
/// a packet of the connection.
pub(crate) fn finish(
    state: &NetState,
    key: Key,
    reply: &UpdateReply,
    peer: Source,
    seen: Option<Endpoint>,
) -> bool {
    if reply.is_refused() {
        state.count(Counter::UpdatesRefused, 1);
        abort(
            state,
            key,
            c"the peer refused the update (no such virtual connection there, or a conflict its policy aborted)",
        );
        return false;
    }
    let believed = peer.refuses(reply.local_physical.addr).is_none();
    let done = state.connections.with_sock(key, |sk, c| {
        // The peer answered from where it says it is: seen there.
        if believed && reply.local_physical != c.mapping.remote_physical {
            c.unvalidated = false;
            c.mapping.remote_physical = reply.local_physical;
        }
        c.updated_ns = ffi::now_ns();
        c.vcmp = VcmpState::Idle;
        c.peer_helper = Helper::None;
        c.settle();
        sync_transparency(sk, c);
        (NlConn::from(&*c), c.mapping.local_physical.addr)
    });
    let Some((now, ours)) = done else {
        return false;
    };
    state.count(Counter::MigrationsCompleted, 1);
    let nat = seen.filter(|s| s.addr != ours);
    let behind = nat.and_then(|s| {
        CString::try_from_fmt(fmt!(
            "a NAT is between: the peer sees this end's updates come from {}",
            Show(s)
        ))
        .ok()
    });
    events::event_raw(state, Event::Resumed, &now, behind.as_deref());
    preempted_here(state, key);
    nat.is_some()
}

/// Paper 3.4.3 on the moving end: the peer accepted the update of
/// connection `key`, so a native connection here with the physical
/// endpoints `key` has now lost them (their packets reach `key`; the peer
/// preempted its end, or had none). It is aborted as the peer aborted its
/// end, rather than left to its own timeouts.
fn preempted_here(state: &NetState, key: Key) {
    let Some((proto, local, remote)) = state.connections.with(key, |c| {
        let m = &c.mapping;
        (m.proto, m.local_physical, m.remote_physical)
    }) else {
        return;
    };
    let Some((other, c)) = state.connections.conflict(key, proto, local, remote) else {
        return;
    };
    preempt(
        state,
        &other,
        &c,
        c"aborted: a migrated connection has its endpoints now (the peer let it through)",
    );
}

/// The update of connection `key` failed for `reason`: the connection is
/// left as it was before the move.
pub(crate) fn abort(state: &NetState, key: Key, reason: &CStr) {
    state.count(Counter::MigrationsFailed, 1);
    let back = state.connections.with_sock(key, |sk, c| {
        c.vcmp = VcmpState::Failed;
        c.mapping.local_physical = c.previous_local;
        c.settle();
        sync_transparency(sk, c);
        NlConn::from(&*c)
    });
    if let Some(back) = back {
        events::event_raw(state, Event::Failed, &back, Some(reason));
    }
}

/// Address `addr` went away and no address of its family came for
/// `resume_deadline_s`: its connections have nowhere to go (an IPv6 one
/// on an IPv4-only network). Each is told failed to the events group, and
/// left as it is: an address of its family that comes later still moves
/// it. Called by vnatd.
pub(crate) fn stranded(state: &NetState, addr: IpAddr) {
    let mut rows = KVVec::new();
    // Room for every connection's row, and a few that come meanwhile:
    // nothing is allocated under the table lock.
    if rows
        .reserve(state.connections.len() + 16, GFP_KERNEL)
        .is_err()
    {
        return;
    }
    state.connections.for_each(|_, c| {
        if c.mapping.local_physical.addr == addr && c.state != State::Resuming && !c.suspended {
            // Past the room: untold (connections that came since).
            let _ = rows.push_within_capacity(NlConn::from(c));
        }
    });
    let reason = if addr.is_ipv6() {
        c"no IPv6 address to move to within resume_deadline_s: the host is on a network without IPv6"
    } else {
        c"no IPv4 address to move to within resume_deadline_s: the host is on a network without IPv4"
    };
    for row in &rows {
        state.count(Counter::MigrationsFailed, 1);
        events::event_raw(state, Event::Failed, row, Some(reason));
    }
    if !rows.is_empty() {
        pr_info!(
            "netns {}: {} connection(s) of {} stranded: {}\n",
            state.net().inum(),
            rows.len(),
            Show(addr),
            reason.to_str().unwrap_or("")
        );
    }
}

/// The update of connection `key`, which is moving, got no answer in
/// `vcmp_retries` more attempts: vnatd goes on trying until
/// `resume_deadline_s`. Told to the events group.
pub(crate) fn retrying(state: &NetState, key: Key) {
    if let Some(now) = state.connections.with(key, |c| NlConn::from(&*c)) {
        events::event_raw(
            state,
            Event::Retrying,
            &now,
            Some(c"the peer's vnatd did not answer: trying again with backoff until resume_deadline_s"),
        );
    }
}

/// Suspends the connections `which` selects (those not suspended already,
/// nor in the middle of a move) and says which `VNAT_SUS` to send. Nothing
/// else changes: suspending needs nothing (paper 3.3.1).
pub(crate) fn begin_suspend(
    state: &NetState,
    which: Selector,
    sleep: bool,
    out: &mut KVVec<Outgoing>,
) -> Result {
    // As in `begin`.
    out.reserve(state.connections.len() + 16, GFP_KERNEL)?;
    let mut err = Ok(());
    let net = state.net();
    state.connections.update(|key, _, c| {
        if !which.matches(c) || c.suspended || c.state == State::Resuming || err.is_err() {
            return false;
        }
        // System sleep: the connections with another host (whose peers'
        // vnatds are not going to sleep with this one).
        if sleep && !net.is_remote_unicast(c.mapping.remote_physical.addr) {
            return false;
        }
        let m = &c.mapping;
        let msg = Message::Suspend(Update {
            proto: m.proto,
            remote_virtual: m.remote_virtual,
            local_virtual: m.local_virtual,
            local_physical: m.local_physical,
        });
        let peer = m.remote_physical.addr;
        let from = m.local_physical.addr;
        c.suspended = true;
        c.slept = sleep;
        c.peer_helper = Helper::None;
        // Sleep waits until the peers answered ([`sleep_settled`]): from
        // now on, not once vnatd connects.
        c.vcmp = if sleep {
            VcmpState::Connecting
        } else {
            VcmpState::Idle
        };
        c.vcmp_attempts = 0;
        let event = NlConn::from(&*c);
        if out
            .push_within_capacity(Outgoing {
                key,
                peer,
                from,
                msg,
                event,
            })
            .is_err()
        {
            c.suspended = false;
            c.slept = false;
            c.vcmp = VcmpState::Idle;
            err = Err(ENOMEM);
            return false;
        }
        true
    });
    err
}

/// The host is going to sleep (`sleeping`: queues the suspension of its
/// connections, if `sleep_suspend` says so) or woke up (vnatd looks for
/// connections that sleep suspended, whatever the knob says now). Returns
/// whether vnatd has work. Any context.
pub(crate) fn sleep_event(state: &NetState, sleeping: bool) -> bool {
    if !sleeping {
        state.wake_pending.store(true, Relaxed);
        state.requests.reroute();
        return true;
    }
    if !SLEEP_SUSPEND.get_bool() {
        return false;
    }
    let r = Request::Suspend {
        which: Selector::All,
        sleep: true,
    };
    if state.requests.push(r).is_err() {
        state.count(Counter::MigrationsFailed, 1);
        return false;
    }
    state.sleeps_asked.add(1, Relaxed);
    true
}

/// Whether the suspensions that sleep asked for are over: vnatd began
/// them, and each peer answered or did not in time.
pub(crate) fn sleep_settled(state: &NetState) -> bool {
    let (asked, begun) = (
        state.sleeps_asked.load(Relaxed),
        state.sleeps_begun.load(Acquire),
    );
    // Begun may run ahead of asked for a moment (vnatd took the request
    // before the notifier counted it).
    if (begun.wrapping_sub(asked) as i32) < 0 {
        return false;
    }
    let mut settled = true;
    state.connections.for_each(|_, c| {
        settled &= !(c.slept
            && c.suspended
            && matches!(c.vcmp, VcmpState::Connecting | VcmpState::Waiting));
    });
    settled
}

/// What the shim's sleep notifier asks of a namespace.
#[repr(u32)]
enum SleepAsk {
    /// The host goes to sleep.
    Sleep = 0,
    /// The host woke up.
    Wake = 1,
    /// Whether the suspensions are over.
    Settled = 2,
}

/// Called by the shim's PM notifier, for every namespace: see
/// [`SleepAsk`]. Returns whether vnatd has work (sleep, wake), or whether
/// the suspensions are over (settled).
#[no_mangle]
extern "C" fn vnat_rs_sleep(state: *const c_void, ask: c_uint) -> bool {
    // SAFETY: The shim passes the state of a live namespace, under RCU,
    // which the namespace's exit waits for before the state goes.
    let state = unsafe { NetState::borrow(state) };
    match ask {
        a if a == SleepAsk::Sleep as u32 || a == SleepAsk::Wake as u32 => {
            let work = sleep_event(state, a == SleepAsk::Sleep as u32);
            if work {
                state.kick();
            }
            work
        }
        a if a == SleepAsk::Settled as u32 => sleep_settled(state),
        _ => true,
    }
}

/// Queues the resume of the connections that sleep suspended, each from
/// the address the host now reaches its peer from. Returns whether some
/// have no route to their peer yet (they resume when an address or a
/// route comes: [`NetState::wake_pending`]). Called by vnatd.
pub(crate) fn wake(state: &NetState) -> bool {
    let Some(paths) = paths_of(state, |c| c.slept) else {
        return true;
    };
    let mut unroutable = false;
    for &(from, peer) in paths.iter() {
        match state.net().route_source(peer) {
            Some(to) => {
                let which = Selector::Slept { from, peer };
                // Memory short: left for the next address or route.
                unroutable |= state.requests.push(Request::Migrate { which, to }).is_err();
            }
            None => unroutable = true,
        }
    }
    unroutable
}

/// On the peer: the sender's end of a connection is suspended, says a
/// `VNAT_SUS` received on a VCMP connection from `from`. Activates this
/// host's helper for it (process context, no lock held) and returns the
/// reply. Without authentication, a suspension is believed only from the
/// connection's remote physical address, and only if that is another
/// host's ([`Source`]; a connection of this host with itself has a local
/// one, which anyone on the host can send from): nobody else can make this
/// host stop processes or turn keepalives off. Version 1 (`opened` `None`)
/// is believed as an update is; version 2 was opened under the key of
/// connection `opened`.
pub(crate) fn accept_suspend(
    state: &NetState,
    u: &Update,
    from: Source,
    opened: Option<Key>,
) -> Verdict<SuspendReply> {
    let refused = |why, reason| {
        let r = SuspendReply::REFUSED;
        Verdict::refused(state, u, r, Counter::SuspendsRefused, why, reason, true)
    };
    let found = state
        .connections
        .find(u.proto, u.remote_virtual, u.local_virtual);
    let Some((key, c)) = found else {
        return refused(
            Counter::VcmpUnknownConnection,
            c"suspend: no such virtual connection",
        );
    };
    if let Some((why, reason)) = from.refuses(c.mapping.remote_physical.addr) {
        return refused(why, reason);
    }
    match (opened, authentication::v1_refused(&c)) {
        (Some(k), _) if k != key => {
            return refused(Counter::VcmpAuthFailed, c"suspend: not under its key")
        }
        (None, Some(reason)) => return refused(Counter::VcmpV1Refused, reason),
        _ => {}
    }
    // Already kept by a helper (the peer suspended again): say which; else
    // hold the socket while the helper is activated without the lock.
    let wanted = state.connections.with_sock(key, |sk, c| match c.helper {
        Some(a) => Err(SuspendReply {
            local_physical: c.mapping.local_physical,
            helper: a.helper as u8,
        }),
        None => Ok((
            ARef::from(sk),
            c.helper_choice,
            c.mapping.proto,
            !c.origin.owns_socket(),
        )),
    });
    let (sk, want, proto, shared) = match wanted {
        Some(Ok(w)) => w,
        Some(Err(same)) => return Verdict::unchanged(same, false),
        None => return Verdict::unchanged(SuspendReply::REFUSED, false),
    };
    let active = helper::activate(&sk, proto, shared, want);
    let done = state.connections.with(key, |c| {
        c.helper = Some(active);
        (c.mapping.local_physical, NlConn::from(&*c))
    });
    match done {
        Some((local_physical, now)) => {
            state.count(Counter::SuspendsAccepted, 1);
            events::event_raw(
                state,
                Event::PeerSuspended,
                &now,
                Some(active.helper.as_cstr()),
            );
            Verdict::unchanged(
                SuspendReply {
                    local_physical,
                    helper: active.helper as u8,
                },
                false,
            )
        }
        None => {
            // Closed meanwhile.
            helper::release(Some(&sk), &active);
            Verdict::unchanged(SuspendReply::REFUSED, false)
        }
    }
}

/// On the suspended end: the peer answered the `VNAT_SUS` of connection
/// `key` with `reply`, or did not answer (`None`). The suspension stands
/// either way; the event says what keeps the other end.
pub(crate) fn suspend_answered(state: &NetState, key: Key, reply: Option<&SuspendReply>) {
    let (reason, helper, vcmp) = match reply {
        Some(r) if r.is_refused() => {
            state.count(Counter::SuspendsRefused, 1);
            (
                c"the peer has no such virtual connection: no helper there",
                Helper::None,
                VcmpState::Failed,
            )
        }
        Some(r) => {
            let h = Helper::try_from(r.helper).unwrap_or(Helper::None);
            (h.as_cstr(), h, VcmpState::Idle)
        }
        None => (
            c"the peer's vnatd did not answer: no helper there",
            Helper::None,
            VcmpState::Failed,
        ),
    };
    let now = state.connections.with(key, |c| {
        c.peer_helper = helper;
        c.vcmp = vcmp;
        NlConn::from(&*c)
    });
    if let Some(now) = now {
        events::event_raw(state, Event::Suspended, &now, Some(reason));
    }
}

/// Undoes the helpers that have been at work longer than `older_than_ns`
/// (all of them if `None`: vnatd is stopping). Process context.
pub(crate) fn release_helpers(state: &NetState, older_than_ns: Option<i64>) {
    let now = ffi::now_ns();
    let mut taken = KVec::new();
    state.connections.update(|_, sk, c| {
        let Some(a) = c.helper else {
            return false;
        };
        if older_than_ns.is_some_and(|t| now - a.since_ns < t) {
            return false;
        }
        // Allocation under the table lock: atomic; on failure, next time.
        if taken
            .push((ARef::from(sk), a, NlConn::from(&*c)), GFP_ATOMIC)
            .is_err()
        {
            return false;
        }
        c.helper = None;
        true
    });
    for (sk, a, mut conn) in taken {
        helper::release(Some(&sk), &a);
        if older_than_ns.is_some() {
            state.count(Counter::HelpersExpired, 1);
            conn.peer_suspended = 0;
            events::event_raw(
                state,
                Event::HelperReleased,
                &conn,
                Some(c"timed out (helper_timeout_s): the peer did not resume"),
            );
        }
    }
}

/// The hooks saw packets arrive on the new paths of validating connections:
/// those whose packets did arrive are settled (from now on ours go there
/// too), counted, announced and added to `to_kick`. Returns whether any
/// was, so that the rules are published again.
pub(crate) fn paths_validated(state: &NetState, to_kick: &mut KVec<Key>) -> bool {
    let mut done = KVec::new();
    state.connections.update(|k, sk, c| {
        if c.state != State::Validating || !state.rules.path_seen(k, c) {
            return false;
        }
        // Allocation under the table lock: atomic; on failure, next time
        // (the flag is set again so that there is one).
        if done.reserve(1, GFP_ATOMIC).is_err() {
            state.paths_arrived.store(true, Relaxed);
            return false;
        }
        c.unvalidated = false;
        c.settle();
        sync_transparency(sk, c);
        done.push((k, NlConn::from(&*c)), GFP_ATOMIC).ok();
        true
    });
    let any = !done.is_empty();
    for (k, now) in done {
        state.count(Counter::PathsValidated, 1);
        events::event_raw(
            state,
            Event::PeerMoved,
            &now,
            Some(c"the peer's packets arrive on its new path: ours go there now"),
        );
        to_kick.push(k, GFP_KERNEL).ok();
    }
    any
}

/// Once the rules of a migration are live, makes the connection retry what
/// it could not deliver during the move now, not after its backoff, and
/// send a packet on its new path (a TCP ACK): a peer validating that path
/// (behind a NAT) waits for one; a stateful firewall in front of either
/// end (no NAT, an IPv6 home router) lets the peer's packets in only once
/// one went out; and it carries the window, which a window update lost
/// during the move left closed. Each is a packet through both stacks: a
/// third of the time restoring 10,000 connections takes (`make bench`).
pub(crate) fn kick(state: &NetState, key: Key) {
    // The kick takes the socket's lock, under which the close probe takes
    // the table lock: hold a reference, not the table lock, while kicking.
    if let Some(sk) = state.connections.sock(key) {
        sk.kick_retransmit();
    }
}
