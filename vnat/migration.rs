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

use crate::{
    command::Command,
    ffi::{self, NlConn},
    helper::{self, Helper},
    netlink::{self, Event},
    netns::{Counter, NetState},
    vcmp::{Endpoint, Message, SuspendReply, Update, UpdateReply, PROTO_UDP},
    virtualization::{Key, Origin, Policy, State, VcmpState, VirtualConnection},
};
use kernel::{new_spinlock_irq, prelude::*, sync::SpinLockIrq};

/// Which connections a request moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Selector {
    /// Those whose local physical address is this one (host byte order):
    /// a host's move.
    Address(u32),
    /// Those opened by this process (thread group id): a process's move.
    Pid(i32),
    /// The one with these virtual endpoints.
    Connection {
        /// IP protocol number.
        proto: u8,
        /// Local virtual endpoint.
        local: Endpoint,
        /// Remote virtual endpoint.
        remote: Endpoint,
    },
}

impl Selector {
    /// Whether `c` is one of the selected connections.
    pub(crate) fn matches(&self, c: &VirtualConnection) -> bool {
        let m = &c.mapping;
        match *self {
            Selector::Address(a) => m.local_physical.addr == a,
            Selector::Pid(p) => c.pid == p,
            Selector::Connection {
                proto,
                local,
                remote,
            } => m.proto == proto && m.local_virtual == local && m.remote_virtual == remote,
        }
    }
}

impl kernel::fmt::Display for Selector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let quad = |f: &mut core::fmt::Formatter<'_>, a: u32| {
            let [a, b, c, d] = a.to_be_bytes();
            write!(f, "{a}.{b}.{c}.{d}")
        };
        match self {
            Selector::Address(a) => {
                f.write_str("from ")?;
                quad(f, *a)
            }
            Selector::Pid(p) => write!(f, "of pid {p}"),
            Selector::Connection { local, remote, .. } => {
                quad(f, local.addr)?;
                write!(f, ":{} -> ", local.port)?;
                quad(f, remote.addr)?;
                write!(f, ":{}", remote.port)
            }
        }
    }
}

/// A request to vnatd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// The selected connections move to local address `to` (host byte
    /// order).
    Migrate {
        /// Which connections.
        which: Selector,
        /// The address they use from now on.
        to: u32,
    },
    /// The selected connections are suspended here (paper 3.3.1).
    Suspend {
        /// Which connections.
        which: Selector,
    },
}

/// Pending work of one namespace's vnatd: requests, and addresses that went
/// away while connections used them (automatic resume, paper 3.3.1).
#[pin_data]
pub(crate) struct Requests {
    /// Taken by the address notifier and the control file (process context)
    /// and by vnatd.
    #[pin]
    inner: SpinLockIrq<RequestsInner>,
}

struct RequestsInner {
    queue: KVec<Request>,
    lost: KVec<u32>,
}

impl Requests {
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_spinlock_irq!(RequestsInner { queue: KVec::new(), lost: KVec::new() }, "vnat_requests"),
        })
    }

    /// Queues a request; vnatd must be woken afterwards.
    pub(crate) fn push(&self, r: Request) -> Result {
        self.inner.lock().queue.push(r, GFP_ATOMIC)?;
        Ok(())
    }

    /// Takes every queued request.
    pub(crate) fn take(&self) -> KVec<Request> {
        core::mem::take(&mut self.inner.lock().queue)
    }
}

/// The address notifier saw `addr` (host byte order) appear or go away.
/// Returns whether vnatd has a new request.
pub(crate) fn address_event(state: &NetState, up: bool, addr: u32) -> bool {
    if !crate::config::AUTO_MIGRATE.get_bool() {
        return false;
    }
    if !up {
        let mut used = false;
        state
            .connections
            .for_each(|_, c| used |= c.mapping.local_physical.addr == addr);
        if used {
            let mut inner = state.requests.inner.lock();
            if !inner.lost.contains(&addr) && inner.lost.push(addr, GFP_ATOMIC).is_err() {
                state.count(Counter::MigrationsFailed, 1);
            }
        }
        return false;
    }
    let mut inner = state.requests.inner.lock();
    let lost = core::mem::take(&mut inner.lost);
    let mut queued = false;
    for from in lost {
        if from != addr
            && inner
                .queue
                .push(
                    Request::Migrate {
                        which: Selector::Address(from),
                        to: addr,
                    },
                    GFP_ATOMIC,
                )
                .is_ok()
        {
            queued = true;
        }
    }
    queued
}

/// A message to send to a peer's vnatd: which connection, and the message.
pub(crate) struct Outgoing {
    /// The connection.
    pub(crate) key: Key,
    /// The peer's vnatd address (the connection's remote physical address).
    pub(crate) peer: u32,
    /// The `VNAT_UPD` or `VNAT_SUS` for it.
    pub(crate) msg: Message,
    /// The connection as the `resuming` event shows it.
    pub(crate) event: NlConn,
}

/// Keeps a socket's `IP_TRANSPARENT` in step with its mapping: needed while
/// its local virtual address is not where it sends from. An unconnected UDP
/// socket chooses its source per datagram and serves other peers too: it is
/// left alone.
fn sync_transparency(k: Key, c: &VirtualConnection) {
    if c.origin.owns_socket() {
        ffi::sock_set_transparent(k.sk, c.mapping.local_physical != c.mapping.local_virtual);
    }
}

/// Step 1: moves the connections `which` selects to local address `to` and
/// says which updates to send. The caller publishes the rules, sends the
/// updates and tells the events group.
pub(crate) fn begin(
    state: &NetState,
    which: Selector,
    to: u32,
    out: &mut KVec<Outgoing>,
) -> Result {
    let mut err = Ok(());
    state.connections.update(|key, c| {
        // A suspended connection resumes also where it is: its peer must
        // hear of it, to undo its helper.
        let moves = c.mapping.local_physical.addr != to || c.suspended;
        if !which.matches(c) || !moves || err.is_err() {
            return false;
        }
        let update = Update {
            proto: c.mapping.proto,
            remote_virtual: c.mapping.remote_virtual,
            local_virtual: c.mapping.local_virtual,
            local_physical: Endpoint::new(to, c.mapping.local_physical.port),
        };
        let peer = c.mapping.remote_physical.addr;
        let previous = c.mapping.local_physical;
        c.mapping.local_physical = update.local_physical;
        let event = NlConn::from(&*c);
        c.mapping.local_physical = previous;
        // Allocation under the table lock: atomic.
        if let Err(e) = out.push(
            Outgoing {
                key,
                peer,
                msg: Message::Update(update),
                event,
            },
            GFP_ATOMIC,
        ) {
            err = Err(e.into());
            return false;
        }
        c.suspended = false;
        if c.state != State::Resuming {
            c.previous_local = c.mapping.local_physical;
        }
        c.mapping.local_physical = update.local_physical;
        c.state = State::Resuming;
        c.vcmp = VcmpState::Idle;
        c.vcmp_attempts = 0;
        sync_transparency(key, c);
        true
    });
    err
}

/// Step 3, on the peer: applies a received `VNAT_UPD`; returns the reply and
/// the connection, if known. The caller publishes the rules before it sends
/// the reply.
pub(crate) fn accept_update(state: &NetState, u: &Update) -> (UpdateReply, Option<Key>) {
    // The sender's virtual endpoint is our remote one, and the other way round.
    let found = state
        .connections
        .find(u.proto, u.remote_virtual, u.local_virtual)
        .map(|(k, _)| k)
        .or_else(|| udp_flow(state, u));
    let Some(key) = found else {
        state.count(Counter::UpdatesRefused, 1);
        refuse_unknown(state, u, c"no such virtual connection");
        return (UpdateReply::REFUSED, None);
    };
    if let Some(refusal) = resolve_conflict(state, key, u) {
        return refusal;
    }
    let reply = state.connections.with(key, |c| {
        c.mapping.remote_physical = u.local_physical;
        c.updated_ns = ffi::now_ns();
        if c.state != State::Resuming {
            c.settle();
        }
        let reply = UpdateReply {
            local_physical: c.mapping.local_physical,
        };
        // The peer resumed: its helper here is done.
        let helper = c.helper.take();
        if helper.is_some() {
            ffi::sock_hold(key.sk);
        }
        (reply, NlConn::from(&*c), helper)
    });
    match reply {
        Some((r, now, helper)) => {
            state.count(Counter::UpdatesAccepted, 1);
            if let Some(a) = helper {
                helper::release(Some(key.sk), &a);
                ffi::sock_put(key.sk);
                state.count(Counter::HelpersReleased, 1);
                // The event names the helper that was undone.
                let released = NlConn {
                    helper: a.helper as u8,
                    ..now
                };
                netlink::event_raw(
                    state,
                    Event::HelperReleased,
                    &released,
                    Some(c"the peer resumed"),
                );
            }
            netlink::event_raw(state, Event::PeerMoved, &now, None);
            (r, Some(key))
        }
        None => {
            state.count(Counter::UpdatesRefused, 1);
            (UpdateReply::REFUSED, None)
        }
    }
}

/// A peer's `VNAT_UPD` or `VNAT_SUS` named a connection we do not have:
/// counted, and announced as a `refused` event showing the connection as
/// the peer named it, from our side.
fn refuse_unknown(state: &NetState, u: &Update, reason: &CStr) {
    state.count(Counter::VcmpUnknownConnection, 1);
    let asked = VirtualConnection::new(
        u.proto,
        u.remote_virtual,
        u.local_virtual,
        0,
        Origin::Update,
    );
    let mut asked = NlConn::from(&asked);
    asked.remote_phys_addr = u.local_physical.addr.to_be();
    asked.remote_phys_port = u.local_physical.port.to_be();
    netlink::event_raw(state, Event::Refused, &asked, Some(reason));
}

/// Paper 3.4.3: if the physical endpoints connection `key` would have after
/// update `u` are those of another live connection here, the two cannot
/// coexist. The connection's policy decides: `abort` refuses the update
/// (returned, to be sent), `preempt` aborts the other connection (as `ss
/// --kill` does) and lets the update through.
fn resolve_conflict(state: &NetState, key: Key, u: &Update) -> Option<(UpdateReply, Option<Key>)> {
    let (local, policy) = state
        .connections
        .with(key, |c| (c.mapping.local_physical, c.policy()))?;
    let (other, c) = state
        .connections
        .conflict(key, u.proto, local, u.local_physical)?;
    let reply = match policy {
        Policy::Abort => {
            state.count(Counter::ConflictsAborted, 1);
            state.count(Counter::UpdatesRefused, 1);
            netlink::event(
                state,
                Event::Conflict,
                &c,
                Some(c"in the way of a migrating connection, which was refused (policy abort)"),
            );
            Some((UpdateReply::REFUSED, None))
        }
        Policy::Preempt => {
            preempt(
                state,
                other,
                &c,
                c"aborted to make way for a migrating connection (policy preempt)",
            );
            return None;
        }
    };
    ffi::sock_put(other.sk);
    reply
}

/// Aborts connection `other` (record `c`), found by
/// [`crate::virtualization::ConnectionTable::conflict`], as `ss --kill` does, and drops the socket
/// reference that came with it; counted and announced with `reason`.
fn preempt(state: &NetState, other: Key, c: &VirtualConnection, reason: &CStr) {
    state.count(Counter::ConflictsPreempted, 1);
    netlink::event(state, Event::Conflict, c, Some(reason));
    ffi::sock_destroy(other.sk);
    ffi::sock_put(other.sk);
}

/// A UDP "connection" is often served by an unconnected socket, which has no
/// record until its peer moves (paper 3.5): if the update names a local UDP
/// socket that would receive the peer's datagrams, the flow is recorded now.
fn udp_flow(state: &NetState, u: &Update) -> Option<Key> {
    if u.proto != PROTO_UDP {
        return None;
    }
    // Our end is the one the sender calls remote.
    let sk = ffi::udp_lookup(&state.net(), u.remote_virtual, u.local_virtual)?;
    let conn = VirtualConnection::new(
        PROTO_UDP,
        u.remote_virtual,
        u.local_virtual,
        0,
        Origin::Update,
    );
    let key = state.connections.insert(sk.key(), conn);
    if key.is_err() {
        state.count(Counter::ConnectionsUntracked, 1);
    }
    key.ok()
}

/// Step 4: the peer answered the update of connection `key`.
pub(crate) fn finish(state: &NetState, key: Key, reply: &UpdateReply) {
    if reply.is_refused() {
        state.count(Counter::UpdatesRefused, 1);
        abort(
            state,
            key,
            c"the peer refused the update (no such virtual connection there, or a conflict its policy aborted)",
        );
        return;
    }
    let done = state.connections.with(key, |c| {
        c.mapping.remote_physical = reply.local_physical;
        c.updated_ns = ffi::now_ns();
        c.vcmp = VcmpState::Idle;
        c.peer_helper = Helper::None;
        c.settle();
        sync_transparency(key, c);
        NlConn::from(&*c)
    });
    if let Some(now) = done {
        state.count(Counter::MigrationsCompleted, 1);
        netlink::event_raw(state, Event::Resumed, &now, None);
        preempted_here(state, key);
    }
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
        other,
        &c,
        c"aborted: a migrated connection has its endpoints now (the peer let it through)",
    );
}

/// The update of connection `key` failed for `reason`: the connection is
/// left as it was before the move.
pub(crate) fn abort(state: &NetState, key: Key, reason: &CStr) {
    state.count(Counter::MigrationsFailed, 1);
    let back = state.connections.with(key, |c| {
        c.vcmp = VcmpState::Failed;
        c.mapping.local_physical = c.previous_local;
        c.settle();
        sync_transparency(key, c);
        NlConn::from(&*c)
    });
    if let Some(back) = back {
        netlink::event_raw(state, Event::Failed, &back, Some(reason));
    }
}

/// Suspends the connections `which` selects (those not suspended already,
/// nor in the middle of a move) and says which `VNAT_SUS` to send. Nothing
/// else changes: suspending needs nothing (paper 3.3.1).
pub(crate) fn begin_suspend(state: &NetState, which: Selector, out: &mut KVec<Outgoing>) -> Result {
    let mut err = Ok(());
    state.connections.update(|key, c| {
        if !which.matches(c) || c.suspended || c.state == State::Resuming || err.is_err() {
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
        c.suspended = true;
        c.peer_helper = Helper::None;
        c.vcmp = VcmpState::Idle;
        c.vcmp_attempts = 0;
        let event = NlConn::from(&*c);
        // Allocation under the table lock: atomic.
        if let Err(e) = out.push(
            Outgoing {
                key,
                peer,
                msg,
                event,
            },
            GFP_ATOMIC,
        ) {
            c.suspended = false;
            err = Err(e.into());
            return false;
        }
        true
    });
    err
}

/// On the peer: the sender's end of a connection is suspended. Activates
/// this host's helper for it (process context, no lock held) and returns
/// the reply.
pub(crate) fn accept_suspend(state: &NetState, u: &Update) -> SuspendReply {
    let found = state
        .connections
        .find(u.proto, u.remote_virtual, u.local_virtual);
    let Some((key, _)) = found else {
        state.count(Counter::SuspendsRefused, 1);
        refuse_unknown(state, u, c"suspend: no such virtual connection");
        return SuspendReply::REFUSED;
    };
    // Already kept by a helper (the peer suspended again): say which; else
    // hold the socket while the helper is activated without the lock.
    let wanted = state.connections.with(key, |c| match c.helper {
        Some(a) => Err(SuspendReply {
            local_physical: c.mapping.local_physical,
            helper: a.helper as u8,
        }),
        None => {
            ffi::sock_hold(key.sk);
            Ok((
                c.helper_choice.unwrap_or_else(Helper::default_now),
                c.mapping.proto,
                !c.origin.owns_socket(),
            ))
        }
    });
    let (want, proto, shared) = match wanted {
        Some(Ok(w)) => w,
        Some(Err(same)) => return same,
        None => return SuspendReply::REFUSED,
    };
    let active = helper::activate(key.sk, proto, shared, want);
    let done = state.connections.with(key, |c| {
        c.helper = Some(active);
        (c.mapping.local_physical, NlConn::from(&*c))
    });
    let reply = match done {
        Some((local_physical, now)) => {
            state.count(Counter::SuspendsAccepted, 1);
            netlink::event_raw(
                state,
                Event::PeerSuspended,
                &now,
                Some(active.helper.as_cstr()),
            );
            SuspendReply {
                local_physical,
                helper: active.helper as u8,
            }
        }
        None => {
            // Closed meanwhile.
            helper::release(Some(key.sk), &active);
            SuspendReply::REFUSED
        }
    };
    ffi::sock_put(key.sk);
    reply
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
            let h = Helper::from_u8(r.helper).unwrap_or(Helper::None);
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
        netlink::event_raw(state, Event::Suspended, &now, Some(reason));
    }
}

/// Undoes the helpers that have been at work longer than `older_than_ns`
/// (all of them if `None`: vnatd is stopping). Process context.
pub(crate) fn release_helpers(state: &NetState, older_than_ns: Option<i64>) {
    let now = ffi::now_ns();
    let mut taken = KVec::new();
    state.connections.update(|key, c| {
        let Some(a) = c.helper else {
            return false;
        };
        if older_than_ns.is_some_and(|t| now - a.since_ns < t) {
            return false;
        }
        // Allocation under the table lock: atomic; on failure, next time.
        if taken.push((key, a, NlConn::from(&*c)), GFP_ATOMIC).is_err() {
            return false;
        }
        ffi::sock_hold(key.sk);
        c.helper = None;
        true
    });
    for (key, a, mut conn) in taken {
        helper::release(Some(key.sk), &a);
        ffi::sock_put(key.sk);
        if older_than_ns.is_some() {
            state.count(Counter::HelpersExpired, 1);
            conn.peer_suspended = 0;
            netlink::event_raw(
                state,
                Event::HelperReleased,
                &conn,
                Some(c"timed out (helper_timeout_s): the peer did not resume"),
            );
        }
    }
}

/// Once the rules of a migration are live, makes the connection retry what
/// it could not deliver during the move now, not after its backoff.
pub(crate) fn kick(state: &NetState, key: Key) {
    // The kick takes the socket's lock, under which the close probe takes
    // the table lock: hold a reference, not the table lock, while kicking.
    if state
        .connections
        .with(key, |_| ffi::sock_hold(key.sk))
        .is_some()
    {
        ffi::sock_kick_retransmit(key.sk);
        ffi::sock_put(key.sk);
    }
}

/// Parses a line written to `/proc/net/vnat/control`.
pub(crate) fn parse_command(input: &[u8]) -> Result<Request> {
    match crate::command::parse(input) {
        Some(Command::Migrate { from, to }) => Ok(Request::Migrate {
            which: Selector::Address(from),
            to,
        }),
        None => Err(EINVAL),
    }
}
